//! Integration tests against a real registry (CNCF distribution 2.8, Debian `docker-registry`)
//! started on loopback by each test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::*;
use provenance_core::verify::{Artifact, Expectation, IdentityExpectation, Verifier};
use provenance_core::{Digest, PublicKey, TrustRoot, UnixTime};
use provenance_oci::{EvidenceSource, Limits, Platform, ReferrersOrigin, RegistryConfig, Timeouts};

const BUNDLE_V03: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";

fn read(p: std::path::PathBuf) -> Vec<u8> {
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Pushes the `cosign-key-set` fixture (an image manifest and cosign's `.sig` layer for it,
/// signed with a local key, with a Rekor SET) to `repo`; returns the image digest.
async fn push_cosign_fixture(reg: &TestRegistry, repo: &str, sig_repo: &str) -> Digest {
    let p = reg.pusher();
    p.blob(repo, b"{}").await;
    let manifest = read(core_fixture("cosign-key-set/manifest.json"));
    let d = p.manifest(repo, "signed", OCI_MANIFEST, &manifest).await;
    let layer: serde_json::Value =
        serde_json::from_slice(&read(core_fixture("cosign-key-set/cosign-layer.json"))).unwrap();
    let payload = STANDARD.decode(layer["payload"].as_str().unwrap()).unwrap();
    p.artifact(
        sig_repo,
        &format!("sha256-{}.sig", d.hex()),
        &[(
            layer["mediaType"].as_str().unwrap(),
            payload,
            layer["annotations"].clone(),
        )],
        serde_json::Value::Null,
    )
    .await;
    d
}

fn fixture_verifier(name: &str) -> (Verifier, Expectation, UnixTime) {
    let root = TrustRoot::from_trusted_root_json(&read(core_fixture(&format!(
        "{name}/trusted_root.json"
    ))))
    .unwrap();
    let expect: serde_json::Value =
        serde_json::from_slice(&read(core_fixture(&format!("{name}/expect.json")))).unwrap();
    let now = UnixTime(expect["now"].as_i64().unwrap());
    let expectation = if expect["kind"] == "key" {
        let key = PublicKey::from_pem(
            &String::from_utf8(read(core_fixture(&format!("{name}/key.pub")))).unwrap(),
        )
        .unwrap();
        Expectation::Key {
            key,
            allow_no_transparency: expect["allow_no_transparency"].as_bool().unwrap_or(false),
        }
    } else {
        Expectation::Keyless(IdentityExpectation::exact(
            expect["identity"].as_str().unwrap(),
            expect["issuer"].as_str().unwrap(),
        ))
    };
    (Verifier::new(&root).unwrap(), expectation, now)
}

#[tokio::test]
async fn resolve_fetch_and_not_found() {
    let Some(reg) = TestRegistry::start() else {
        return;
    };
    let p = reg.pusher();
    let (d, bytes, layer) = p.image("acme/app", "v1", b"layer bytes", "amd64").await;
    let c = reg.client();
    let img = reg.reference("acme/app:v1");

    assert_eq!(c.resolve(&img).await.unwrap(), d);
    let m = c.manifest(&img).await.unwrap();
    assert_eq!(m.digest, d);
    assert_eq!(m.bytes, bytes);
    assert!(!m.is_index());
    let m2 = c.manifest_at(&img, &d).await.unwrap();
    assert_eq!(m2.bytes, bytes);
    assert_eq!(
        c.blob(&img, &layer, 1024).await.unwrap(),
        b"layer bytes".to_vec()
    );

    let missing = c
        .resolve(&reg.reference("acme/app:nope"))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), "oci.not_found", "{missing}");
    assert!(!missing.is_infrastructure());
    let missing = c
        .manifest_at(&img, &Digest::sha256_of(b"absent"))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), "oci.not_found");
    let missing = c
        .blob(&img, &Digest::sha256_of(b"absent"), 1024)
        .await
        .unwrap_err();
    assert_eq!(missing.code(), "oci.not_found");
}

#[tokio::test]
async fn size_limits_are_enforced() {
    let Some(reg) = TestRegistry::start() else {
        return;
    };
    let p = reg.pusher();
    let (d, bytes, layer) = p.image("acme/big", "v1", &[7u8; 4096], "amd64").await;
    let c = reg.client_with(RegistryConfig {
        limits: Limits {
            max_manifest_bytes: (bytes.len() - 1) as u64,
            ..Limits::default()
        },
        ..RegistryConfig::default()
    });
    let img = reg.reference("acme/big:v1");
    let e = c.manifest(&img).await.unwrap_err();
    assert_eq!(e.code(), "oci.too_large", "{e}");
    let e = c.manifest_at(&img, &d).await.unwrap_err();
    assert_eq!(e.code(), "oci.too_large");
    let e = reg.client().blob(&img, &layer, 4095).await.unwrap_err();
    assert_eq!(e.code(), "oci.too_large");
    assert!(!e.is_infrastructure());
    assert_eq!(
        reg.client().blob(&img, &layer, 4096).await.unwrap().len(),
        4096
    );
}

#[tokio::test]
async fn multi_arch_index_digest_is_what_resolves() {
    let Some(reg) = TestRegistry::start() else {
        return;
    };
    let p = reg.pusher();
    let (amd, amd_bytes, _) = p.image("acme/multi", "amd", b"amd layer", "amd64").await;
    let (arm, arm_bytes, _) = p.image("acme/multi", "arm", b"arm layer", "arm64").await;
    let idx = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": amd.to_string(), "size": amd_bytes.len(),
             "platform": {"architecture": "amd64", "os": "linux"}},
            {"mediaType": OCI_MANIFEST, "digest": arm.to_string(), "size": arm_bytes.len(),
             "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}},
        ]
    });
    let idx_bytes = serde_json::to_vec(&idx).unwrap();
    let idx_digest = p
        .manifest("acme/multi", "latest", OCI_INDEX, &idx_bytes)
        .await;

    let c = reg.client();
    let img = reg.reference("acme/multi");
    let d = c.resolve(&img).await.unwrap();
    assert_eq!(
        d, idx_digest,
        "a tag on an index resolves to the index digest"
    );
    let m = c.manifest_at(&img, &d).await.unwrap();
    assert!(m.is_index());

    let plat = |os: &str, arch: &str, variant: Option<&str>| {
        let mut p = Platform::default();
        p.set_os(os.into());
        p.set_architecture(arch.into());
        p.set_variant(variant.map(str::to_owned));
        p
    };
    let pm = c
        .platform_manifest(&img, &d, &plat("linux", "arm64", Some("v8")))
        .await
        .unwrap();
    assert_eq!(pm.digest, arm);
    let pm = c
        .platform_manifest(&img, &d, &plat("linux", "amd64", None))
        .await
        .unwrap();
    assert_eq!(pm.digest, amd);
    let e = c
        .platform_manifest(&img, &d, &plat("linux", "arm64", Some("v7")))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "oci.not_found");
}

#[tokio::test]
async fn cosign_signature_discovered_and_verified() {
    let Some(reg) = TestRegistry::start() else {
        return;
    };
    let d = push_cosign_fixture(&reg, "acme/model", "acme/model").await;
    let c = reg.client();
    let img = reg.reference("acme/model:signed");
    assert_eq!(c.resolve(&img).await.unwrap(), d);

    let sigs = c.signatures(&img, &d, None).await.unwrap();
    assert_eq!(sigs.len(), 1);
    let s = &sigs[0];
    assert!(s.is_simple_signing());
    assert!(
        s.annotations
            .contains_key("dev.cosignproject.cosign/signature")
    );
    assert!(s.annotations.contains_key("dev.sigstore.cosign/bundle"));

    let (verifier, expectation, now) = fixture_verifier("cosign-key-set");
    let ok = verifier
        .verify(Artifact::Digest(&d), &s.material(), &expectation, now)
        .unwrap();
    assert!(ok.transparency_verified);

    // The same layer does not verify for another image digest.
    let other = Digest::sha256_of(b"another image");
    let e = verifier
        .verify(Artifact::Digest(&other), &s.material(), &expectation, now)
        .unwrap_err();
    assert_eq!(e.code(), "verify.cosign.image_digest_mismatch", "{e}");

    // No attestations / SBOMs: empty, not an error.
    assert!(c.attestations(&img, &d, None).await.unwrap().is_empty());
    assert!(c.sboms(&img, &d, None).await.unwrap().is_empty());
}

#[tokio::test]
async fn alternate_signature_repository() {
    let Some(reg) = TestRegistry::start() else {
        return;
    };
    let d = push_cosign_fixture(&reg, "acme/model", "signatures/store").await;
    let c = reg.client();
    let img = reg.reference("acme/model:signed");
    assert!(c.signatures(&img, &d, None).await.unwrap().is_empty());
    let repo = reg.reference("signatures/store");
    let sigs = c.signatures(&img, &d, Some(&repo)).await.unwrap();
    assert_eq!(sigs.len(), 1);
    let (verifier, expectation, now) = fixture_verifier("cosign-key-set");
    verifier
        .verify(Artifact::Digest(&d), &sigs[0].material(), &expectation, now)
        .unwrap();
}

#[tokio::test]
async fn attestations_sboms_and_bundle_referrers_via_tag_fallback() {
    let Some(reg) = TestRegistry::start() else {
        return;
    };
    let p = reg.pusher();
    let (d, _, _) = p.image("acme/app", "v2", b"app", "amd64").await;

    // cosign .att with a DSSE envelope layer.
    let envelope = br#"{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[{"sig":"AA=="}]}"#.to_vec();
    p.artifact(
        "acme/app",
        &format!("sha256-{}.att", d.hex()),
        &[(
            "application/vnd.dsse.envelope.v1+json",
            envelope.clone(),
            serde_json::json!({"predicateType": "https://slsa.dev/provenance/v1", "dev.cosignproject.cosign/signature": ""}),
        )],
        serde_json::Value::Null,
    )
    .await;
    // cosign .sbom
    let sbom = br#"{"spdxVersion":"SPDX-2.3"}"#.to_vec();
    p.artifact(
        "acme/app",
        &format!("sha256-{}.sbom", d.hex()),
        &[("text/spdx+json", sbom.clone(), serde_json::Value::Null)],
        serde_json::Value::Null,
    )
    .await;
    // A Sigstore bundle v0.3 referrer (message signature over an artifact) and a DSSE one.
    let msg_bundle = read(core_fixture("keyless-msg-v0.3/bundle.sigstore.json"));
    let dsse_bundle = read(core_fixture("keyless-dsse/bundle.sigstore.json"));
    for (bundle, pt) in [
        (&msg_bundle, "https://sigstore.dev/cosign/sign/v1"),
        (&dsse_bundle, "https://slsa.dev/provenance/v1"),
    ] {
        let (rd, rbytes) = p
            .artifact(
                "acme/app",
                &format!("bundle-{}", &Digest::sha256_of(bundle).hex()[..12]),
                &[(BUNDLE_V03, bundle.clone(), serde_json::Value::Null)],
                serde_json::json!({
                    "artifactType": BUNDLE_V03,
                    "subject": {"mediaType": OCI_MANIFEST, "digest": d.to_string(), "size": 1},
                    "annotations": {"dev.sigstore.bundle.predicateType": pt},
                }),
            )
            .await;
        p.add_to_tag_schema("acme/app", &d, (&rd, rbytes.len(), BUNDLE_V03))
            .await;
    }
    // An unrelated referrer of another artifact type.
    let (od, obytes) = p
        .artifact(
            "acme/app",
            "other-referrer",
            &[("application/json", b"{}".to_vec(), serde_json::Value::Null)],
            serde_json::json!({"artifactType": "application/x-other",
                "subject": {"mediaType": OCI_MANIFEST, "digest": d.to_string(), "size": 1}}),
        )
        .await;
    p.add_to_tag_schema("acme/app", &d, (&od, obytes.len(), "application/x-other"))
        .await;

    let c = reg.client();
    let img = reg.reference("acme/app:v2");

    let all = c.referrers(&img, &d, None).await.unwrap();
    assert_eq!(
        all.origin,
        ReferrersOrigin::TagSchema,
        "distribution 2.8 has no referrers API"
    );
    assert_eq!(all.items.len(), 3);
    let bundles = c.referrers(&img, &d, Some(BUNDLE_V03)).await.unwrap();
    assert_eq!(bundles.items.len(), 2);

    let atts = c.attestations(&img, &d, None).await.unwrap();
    assert_eq!(atts.len(), 2, "{atts:?}");
    assert_eq!(atts[0].envelope, envelope);
    assert_eq!(
        atts[0].predicate_type.as_deref(),
        Some("https://slsa.dev/provenance/v1")
    );
    assert!(!atts[0].is_bundle());
    assert!(atts[1].is_bundle());
    assert_eq!(atts[1].envelope, dsse_bundle);

    let sboms = c.sboms(&img, &d, None).await.unwrap();
    assert_eq!(sboms.len(), 1);
    assert_eq!(sboms[0].bytes, sbom);
    assert_eq!(sboms[0].media_type, "text/spdx+json");

    let sigs = c.signatures(&img, &d, None).await.unwrap();
    assert_eq!(sigs.len(), 1);
    assert_eq!(sigs[0].payload, msg_bundle);
    // The bundle came through byte for byte: it still verifies over its artifact.
    let (verifier, expectation, now) = fixture_verifier("keyless-msg-v0.3");
    let artifact = read(core_fixture("keyless-msg-v0.3/artifact"));
    verifier
        .verify(
            Artifact::Bytes(&artifact),
            &sigs[0].material(),
            &expectation,
            now,
        )
        .unwrap();

    // No referrers for another digest: empty, through the same fallback.
    let none = c
        .referrers(&img, &Digest::sha256_of(b"x"), None)
        .await
        .unwrap();
    assert!(none.items.is_empty());
}

#[tokio::test]
async fn plain_http_needs_explicit_permission_and_network_errors_are_infrastructure() {
    let Some(mut reg) = TestRegistry::start() else {
        return;
    };
    let p = reg.pusher();
    p.image("acme/app", "v1", b"x", "amd64").await;
    let img = reg.reference("acme/app:v1");
    // Without allow_http the client speaks TLS to a plain HTTP port: a network error.
    let strict = provenance_oci::RegistryClient::new(RegistryConfig {
        retries: 0,
        ..RegistryConfig::default()
    })
    .unwrap();
    let e = strict.resolve(&img).await.unwrap_err();
    assert_eq!(e.code(), "oci.network", "{e}");
    assert!(e.is_infrastructure());

    let c = reg.client_with(RegistryConfig {
        retries: 1,
        backoff: Duration::from_millis(10),
        ..RegistryConfig::default()
    });
    c.resolve(&img).await.unwrap();
    reg.stop();
    let e = c.resolve(&img).await.unwrap_err();
    assert_eq!(e.code(), "oci.network", "{e}");
    assert!(e.is_infrastructure());
}

/// A CA and a leaf certificate it issued for `127.0.0.1` (PEM: CA, leaf, leaf key).
fn private_ca() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, SanType};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(Vec::<String>::new()).unwrap();
    leaf.subject_alt_names = vec![SanType::IpAddress([127, 0, 0, 1].into())];
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer).unwrap();
    (ca_cert.pem(), leaf_cert.pem(), leaf_key.serialize_pem())
}

#[tokio::test]
async fn a_private_ca_is_trusted_for_its_registry_only() {
    let (ca, cert, key) = private_ca();
    let Some(reg) = TestRegistry::start_tls(&cert, &key) else {
        return;
    };
    let (d, _, _) = reg
        .tls_pusher(&ca)
        .image("acme/app", "v1", b"x", "amd64")
        .await;
    let img = reg.reference("acme/app:v1");
    let strict = RegistryConfig {
        retries: 0,
        ..RegistryConfig::default()
    };
    // The system's roots do not know the private CA: refused, as a network error.
    let e = provenance_oci::RegistryClient::new(strict.clone())
        .unwrap()
        .resolve(&img)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "oci.network", "{e}");
    // Trusted for another registry only: still refused here.
    let e = provenance_oci::RegistryClient::new(strict.clone().with_ca_pem("other.example", &ca))
        .unwrap()
        .resolve(&img)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "oci.network", "{e}");
    // Trusted for this registry: the tag resolves over HTTPS, and nothing else changes.
    let c = provenance_oci::RegistryClient::new(strict.clone().with_ca_pem(reg.addr.clone(), &ca))
        .unwrap();
    assert_eq!(c.resolve(&img).await.unwrap(), d);
    // A registry written as a URL is a name no image has: refused, not silently unused.
    let e = provenance_oci::RegistryClient::new(
        strict
            .clone()
            .with_ca_pem(format!("https://{}", reg.addr), &ca),
    )
    .unwrap_err();
    assert_eq!(e.code(), "oci.config", "{e}");
    // PEM without a certificate is a configuration error, not an empty list of roots.
    for bad in [
        "",
        "not a certificate",
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    ] {
        let e =
            provenance_oci::RegistryClient::new(strict.clone().with_ca_pem(reg.addr.clone(), bad))
                .unwrap_err();
        assert_eq!(e.code(), "oci.config", "{bad:?}: {e}");
    }
}

#[tokio::test]
async fn export_then_verify_offline_from_layout() {
    let Some(reg) = TestRegistry::start() else {
        return;
    };
    let d = push_cosign_fixture(&reg, "acme/model", "acme/model").await;
    let p = reg.pusher();
    let msg_bundle = read(core_fixture("keyless-msg-v0.3/bundle.sigstore.json"));
    let (rd, rbytes) = p
        .artifact(
            "acme/model",
            "bundle-ref",
            &[(BUNDLE_V03, msg_bundle.clone(), serde_json::Value::Null)],
            serde_json::json!({"artifactType": BUNDLE_V03,
                "subject": {"mediaType": OCI_MANIFEST, "digest": d.to_string(), "size": 1}}),
        )
        .await;
    p.add_to_tag_schema("acme/model", &d, (&rd, rbytes.len(), BUNDLE_V03))
        .await;
    let (img_digest, _, _) = p.image("acme/app", "v1", b"big layer", "amd64").await;

    let c = reg.client();
    let img = reg.reference("acme/model:signed");
    let out = tempfile::tempdir().unwrap();
    let report = provenance_oci::export(&c, &img, out.path(), &Default::default())
        .await
        .unwrap();
    assert_eq!(report.digest, d);
    assert_eq!(report.cosign_tags, vec![format!("sha256-{}.sig", d.hex())]);
    assert_eq!(report.referrers, 1);
    // A second image into the same layout, with its layers.
    let app = reg.reference("acme/app:v1");
    provenance_oci::export(
        &c,
        &app,
        out.path(),
        &provenance_oci::ExportOptions {
            include_layers: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();

    let layout = provenance_oci::LayoutSource::open(out.path()).unwrap();
    let limg =
        provenance_core::ImageReference::parse("anything.example/acme/model:signed").unwrap();
    assert_eq!(layout.resolve(&limg).await.unwrap(), d);
    let lapp = provenance_core::ImageReference::parse("x.example/acme/app:v1").unwrap();
    assert_eq!(layout.resolve(&lapp).await.unwrap(), img_digest);
    let m = layout.manifest(&lapp).await.unwrap().image().unwrap();
    let layer = provenance_core::Digest::parse(m.layers()[0].digest().as_ref()).unwrap();
    assert_eq!(
        layout.blob(&lapp, &layer, 1024).await.unwrap(),
        b"big layer".to_vec()
    );

    let from_registry = c.signatures(&img, &d, None).await.unwrap();
    let from_layout = layout.signatures(&limg, &d, None).await.unwrap();
    assert_eq!(from_layout.len(), 2);
    assert_eq!(from_layout, from_registry);
    let refs = layout.referrers(&limg, &d, Some(BUNDLE_V03)).await.unwrap();
    assert_eq!(refs.origin, ReferrersOrigin::LayoutScan);
    assert_eq!(refs.items.len(), 1);

    let (verifier, expectation, now) = fixture_verifier("cosign-key-set");
    let cosign_layer = from_layout.iter().find(|s| s.is_simple_signing()).unwrap();
    verifier
        .verify(
            Artifact::Digest(&d),
            &cosign_layer.material(),
            &expectation,
            now,
        )
        .unwrap();
}

#[tokio::test]
async fn many_concurrent_requests_share_the_semaphore_and_succeed() {
    let Some(reg) = TestRegistry::start() else {
        return;
    };
    let p = reg.pusher();
    let (d, _, _) = p.image("acme/app", "v1", b"x", "amd64").await;
    let c = std::sync::Arc::new(reg.client_with(RegistryConfig {
        max_concurrent_per_registry: 4,
        timeouts: Timeouts {
            request: Duration::from_secs(20),
            ..Timeouts::default()
        },
        ..RegistryConfig::default()
    }));
    let img = reg.reference("acme/app:v1");
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let c = c.clone();
        let img = img.clone();
        // Through the `Arc<T>` implementation of the trait.
        tasks.push(tokio::spawn(async move {
            <std::sync::Arc<provenance_oci::RegistryClient> as EvidenceSource>::resolve(&c, &img)
                .await
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), d);
    }
    assert_eq!(c.request_count(), 64);
}

#[tokio::test]
async fn mirrors_serve_digests_and_endpoint_replaces_the_registry() {
    use provenance_oci::RegistrySettings;
    let Some(upstream) = TestRegistry::start() else {
        return;
    };
    let Some(mirror) = TestRegistry::start() else {
        return;
    };
    // The mirror holds the content; the upstream only the tag (pushed there too).
    let (d, bytes, layer) = mirror
        .pusher()
        .image("acme/app", "v1", b"mirrored", "amd64")
        .await;
    upstream
        .pusher()
        .image("acme/app", "v1", b"mirrored", "amd64")
        .await;
    // A dead mirror first: skipped.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let cfg = RegistryConfig {
        retries: 0,
        ..RegistryConfig::default()
    }
    .with_registry(
        "registry.example.com",
        RegistrySettings {
            insecure_http: true,
            mirrors: vec![dead, mirror.addr.clone()],
            endpoint: Some(upstream.addr.clone()),
            ..Default::default()
        },
    );
    let c = provenance_oci::RegistryClient::new(cfg).unwrap();
    let img = provenance_core::ImageReference::parse("registry.example.com/acme/app:v1").unwrap();
    assert_eq!(c.resolve(&img).await.unwrap(), d);
    assert_eq!(c.manifest_at(&img, &d).await.unwrap().bytes, bytes);
    assert_eq!(
        c.blob(&img, &layer, 1024).await.unwrap(),
        b"mirrored".to_vec()
    );
    // A blob only the mirror has is fetched from the mirror (and checked).
    let only = mirror
        .pusher()
        .blob("acme/app", b"only on the mirror")
        .await;
    assert_eq!(
        c.blob(&img, &only, 1024).await.unwrap(),
        b"only on the mirror".to_vec()
    );
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("blob");
    c.blob_to_file(&img, &only, 1024, &dest).await.unwrap();
    assert_eq!(
        std::fs::read(&dest).unwrap(),
        b"only on the mirror".to_vec()
    );
    let e = c
        .blob_to_file(&img, &only, 4, &tmp.path().join("small"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "oci.too_large");
    assert!(!tmp.path().join("small").exists());
    // Tags never come from a mirror: an upstream without the tag is not found even though
    // the mirror has it.
    mirror
        .pusher()
        .image("acme/app", "only-on-mirror", b"m", "amd64")
        .await;
    let e = c
        .resolve(
            &provenance_core::ImageReference::parse("registry.example.com/acme/app:only-on-mirror")
                .unwrap(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), "oci.not_found");
}

#[tokio::test]
async fn a_moving_tag_does_not_move_what_was_resolved() {
    let Some(reg) = TestRegistry::start() else {
        return;
    };
    let p = reg.pusher();
    let (d1, bytes1, _) = p.image("acme/app", "latest", b"first", "amd64").await;
    let c = reg.client();
    let img = reg.reference("acme/app:latest");
    assert_eq!(c.resolve(&img).await.unwrap(), d1);
    // The tag moves after resolution.
    let (d2, _, _) = p.image("acme/app", "latest", b"second", "amd64").await;
    assert_ne!(d1, d2);
    // Everything bound to the resolved digest still reads the first manifest...
    assert_eq!(c.manifest_at(&img, &d1).await.unwrap().bytes, bytes1);
    assert_eq!(c.manifest(&img.pinned(&d1)).await.unwrap().digest, d1);
    // ...and a fresh resolution sees the move.
    assert_eq!(c.resolve(&img).await.unwrap(), d2);
}

#[tokio::test]
async fn too_many_layers_in_a_signature_manifest() {
    let Some(reg) = TestRegistry::start() else {
        return;
    };
    let p = reg.pusher();
    let (d, _, _) = p.image("acme/app", "v1", b"x", "amd64").await;
    let layers: Vec<(&str, Vec<u8>, serde_json::Value)> = (0..3)
        .map(|i| {
            (
                "application/vnd.dev.cosign.simplesigning.v1+json",
                format!("payload {i}").into_bytes(),
                serde_json::Value::Null,
            )
        })
        .collect();
    p.artifact(
        "acme/app",
        &format!("sha256-{}.sig", d.hex()),
        &layers,
        serde_json::Value::Null,
    )
    .await;
    let img = reg.reference("acme/app:v1");
    assert_eq!(
        reg.client().signatures(&img, &d, None).await.unwrap().len(),
        3
    );
    let c = reg.client_with(RegistryConfig {
        limits: Limits {
            max_layers: 2,
            ..Limits::default()
        },
        ..RegistryConfig::default()
    });
    // Over the layer limit the `.sig` manifest is not evidence: no signatures (the image
    // fails), never an error that `failurePolicy: Ignore` would admit.
    assert!(c.signatures(&img, &d, None).await.unwrap().is_empty());
}
