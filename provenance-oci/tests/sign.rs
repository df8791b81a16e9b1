//! Signing and attesting images into an OCI layout and into a real registry on loopback
//! (docker-registry 2.8, no referrers API: the referrers tag index is written), then reading
//! everything back through `EvidenceSource` and verifying it with `provenance_core::verify`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use common::*;
use provenance_attest::build::{SlsaProvenanceBuilder, resource, statement};
use provenance_core::sign::{KeyAlgorithm, SigningKey, bundle};
use provenance_core::verify::{
    Artifact, Expectation, PUBLIC_GOOD_TRUSTED_ROOT, SignatureMaterial, Verifier,
};
use provenance_core::{Digest, DigestAlgorithm, ImageReference, TrustRoot, UnixTime};
use provenance_oci::sign::{
    SignOptions, attach_sbom, attest_image, attest_image_bundle, sign_image, sign_image_bundle,
};
use provenance_oci::{
    EvidenceSource, LayoutPublisher, LayoutSource, Manifest, Publisher, ReferrersOrigin,
};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use provenance_oci::types::SIGSTORE_BUNDLE_V03;

const NOW: UnixTime = UnixTime(1_800_000_000);

fn verifier() -> Verifier {
    Verifier::new(&TrustRoot::from_trusted_root_json(PUBLIC_GOOD_TRUSTED_ROOT).unwrap()).unwrap()
}

fn exp(key: &SigningKey) -> Expectation {
    Expectation::Key {
        key: key.public_key(),
        allow_no_transparency: true,
    }
}

/// Pushes a one-layer image through a `Publisher`; returns its digest.
async fn push_image<P: Publisher>(p: &P, image: &ImageReference) -> Digest {
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let layer = b"layer bytes";
    let repo = ImageReference::from_name(&image.name()).unwrap();
    p.push_blob(&repo, &Digest::sha256_of(config), config)
        .await
        .unwrap();
    p.push_blob(&repo, &Digest::sha256_of(layer), layer)
        .await
        .unwrap();
    let m = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": Digest::sha256_of(config).to_string(), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": Digest::sha256_of(layer).to_string(), "size": layer.len()}],
    });
    let m = Manifest::from_bytes(
        serde_json::to_vec(&m).unwrap(),
        DigestAlgorithm::Sha256,
        None,
    )
    .unwrap();
    p.push_manifest(image, &m).await.unwrap();
    m.digest
}

fn slsa_statement(digest: &Digest) -> Vec<u8> {
    let p = SlsaProvenanceBuilder::new(
        "https://github.com/actions/runner",
        "https://example.com/build/v1",
    )
    .external_parameter("repository", "https://github.com/acme/app")
    .build()
    .unwrap();
    statement(
        vec![resource("app", digest)],
        "https://slsa.dev/provenance/v1",
        p,
    )
    .unwrap()
    .to_json()
}

/// Signs, attests, attaches an SBOM and writes bundle referrers; then checks what a reader
/// finds and that every signature verifies (and only for the right image and key).
async fn sign_everything_and_read_back<P: Publisher, R: EvidenceSource>(
    p: &P,
    reader: impl Fn() -> R,
    image: &ImageReference,
    expect_origin: Option<ReferrersOrigin>,
) {
    let digest = push_image(p, image).await;
    let key = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let other = SigningKey::generate(KeyAlgorithm::Ed25519).unwrap();
    let mut opts = SignOptions::default();
    opts.annotations.insert("team".into(), "ml".into());
    sign_image(p, image, &digest, &key, &opts).await.unwrap();
    sign_image(p, image, &digest, &other, &SignOptions::default())
        .await
        .unwrap();
    // Signing again with the same key adds a layer (ECDSA is randomized) but never loses one.
    sign_image(p, image, &digest, &key, &opts).await.unwrap();
    let st = slsa_statement(&digest);
    attest_image(p, image, &digest, &key, &st, None)
        .await
        .unwrap();
    attach_sbom(
        p,
        image,
        &digest,
        br#"{"spdxVersion":"SPDX-2.3"}"#,
        "text/spdx+json",
        None,
    )
    .await
    .unwrap();
    sign_image_bundle(p, image, &digest, &key, &bundle::Options::default())
        .await
        .unwrap();
    attest_image_bundle(p, image, &digest, &key, &st, &bundle::Options::default())
        .await
        .unwrap();

    // A statement about another image is refused before anything is written.
    let wrong = slsa_statement(&Digest::sha256_of(b"x"));
    let e = attest_image(p, image, &digest, &key, &wrong, None)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "oci.malformed", "{e}");

    let r = reader();
    let v = verifier();
    let sigs = r.signatures(image, &digest, None).await.unwrap();
    assert_eq!(sigs.len(), 4, "3 legacy layers + 1 bundle referrer");
    let by_key = |k: &SigningKey| {
        sigs.iter()
            .filter(|s| {
                v.verify(Artifact::Digest(&digest), &s.material(), &exp(k), NOW)
                    .is_ok()
            })
            .count()
    };
    assert_eq!(by_key(&key), 3);
    assert_eq!(by_key(&other), 1);
    // The bundle referrer is cosign 3's image signature: a DSSE envelope over the sign/v1
    // Statement naming the digest alone, which verifies as a signature (not an attestation).
    let b = sigs.iter().find(|s| !s.is_simple_signing()).unwrap();
    assert_eq!(b.media_type, SIGSTORE_BUNDLE_V03);
    assert_eq!(
        b.annotations["dev.sigstore.bundle.content"],
        "dsse-envelope"
    );
    assert_eq!(
        b.annotations["dev.sigstore.bundle.predicateType"],
        "https://sigstore.dev/cosign/sign/v1"
    );
    assert!(
        b.annotations
            .contains_key("org.opencontainers.image.created")
    );
    let bundle_json: serde_json::Value = serde_json::from_slice(&b.payload).unwrap();
    assert_eq!(bundle_json["mediaType"], SIGSTORE_BUNDLE_V03);
    let envelope = &bundle_json["dsseEnvelope"];
    assert_eq!(envelope["payloadType"], "application/vnd.in-toto+json");
    let signed: serde_json::Value = serde_json::from_slice(
        &STANDARD
            .decode(envelope["payload"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        signed,
        serde_json::json!({
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"digest": {"sha256": digest.hex()}, "annotations": {}}],
            "predicateType": "https://sigstore.dev/cosign/sign/v1",
            "predicate": {},
        })
    );
    v.verify_image_signature(&digest, &b.material(), &exp(&key), NOW)
        .unwrap();
    for s in &sigs {
        // Nothing verifies for another image digest: a cosign layer names another image, a
        // bundle's Statement another digest.
        let e = v
            .verify(
                Artifact::Digest(&Digest::sha256_of(b"other")),
                &s.material(),
                &exp(&key),
                NOW,
            )
            .unwrap_err();
        let want = if s.is_simple_signing() {
            "verify.cosign.image_digest_mismatch"
        } else {
            "verify.artifact.mismatch"
        };
        assert_eq!(e.code(), want, "{e}");
    }
    let simple = sigs.iter().find(|s| s.is_simple_signing()).unwrap();
    let payload: serde_json::Value = serde_json::from_slice(&simple.payload).unwrap();
    assert_eq!(
        payload["critical"]["identity"]["docker-reference"],
        image.name()
    );
    assert_eq!(payload["optional"]["team"], "ml");

    let atts = r.attestations(image, &digest, None).await.unwrap();
    assert_eq!(atts.len(), 2, "one .att layer + one bundle referrer");
    for a in &atts {
        assert_eq!(
            a.predicate_type.as_deref(),
            Some("https://slsa.dev/provenance/v1")
        );
        let m = if a.is_bundle() {
            SignatureMaterial::Bundle(a.envelope.clone())
        } else {
            SignatureMaterial::Cosign(provenance_core::verify::CosignSignature::new(
                a.envelope.clone(),
                a.annotations.clone(),
            ))
        };
        let ok = v
            .verify(Artifact::Digest(&digest), &m, &exp(&key), NOW)
            .unwrap();
        assert_eq!(ok.payload.unwrap().1, st);
        assert!(
            v.verify(Artifact::Digest(&digest), &m, &exp(&other), NOW)
                .is_err()
        );
    }
    let sboms = r.sboms(image, &digest, None).await.unwrap();
    assert_eq!(sboms.len(), 1);
    assert_eq!(sboms[0].media_type, "text/spdx+json");

    let refs = r.referrers(image, &digest, None).await.unwrap();
    assert_eq!(refs.items.len(), 2);
    if let Some(o) = expect_origin {
        assert_eq!(refs.origin, o);
    }
}

#[tokio::test]
async fn sign_attest_and_attach_into_an_oci_layout() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("layout");
    let p = LayoutPublisher::open(&root).unwrap();
    let image = ImageReference::parse("registry.example.com/ml/app:1.0").unwrap();
    sign_everything_and_read_back(&p, || LayoutSource::open(&root).unwrap(), &image, None).await;
    // Both bundle referrers (the signature and the attestation) are cosign 3's manifest: the
    // bundle artifact type on the manifest and on the empty config, one bundle layer, the
    // content, predicate type and creation annotations.
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("index.json")).unwrap()).unwrap();
    let mut predicate_types = Vec::new();
    for e in index["manifests"].as_array().unwrap() {
        let hex = e["digest"].as_str().unwrap().trim_start_matches("sha256:");
        let m: serde_json::Value =
            serde_json::from_slice(&std::fs::read(root.join("blobs/sha256").join(hex)).unwrap())
                .unwrap();
        if m.get("subject").is_none() {
            continue;
        }
        assert_eq!(m["artifactType"], SIGSTORE_BUNDLE_V03);
        assert_eq!(
            m["config"],
            serde_json::json!({
                "mediaType": EMPTY_CONFIG,
                "artifactType": SIGSTORE_BUNDLE_V03,
                "digest": Digest::sha256_of(b"{}").to_string(),
                "size": 2,
            })
        );
        let layers = m["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 1);
        assert_eq!(layers[0]["mediaType"], SIGSTORE_BUNDLE_V03);
        assert!(layers[0].get("annotations").is_none(), "{m}");
        let ann = &m["annotations"];
        assert_eq!(ann["dev.sigstore.bundle.content"], "dsse-envelope");
        assert!(
            UnixTime::parse_rfc3339(ann["org.opencontainers.image.created"].as_str().unwrap())
                .is_some()
        );
        predicate_types.push(
            ann["dev.sigstore.bundle.predicateType"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    predicate_types.sort();
    assert_eq!(
        predicate_types,
        [
            "https://sigstore.dev/cosign/sign/v1",
            "https://slsa.dev/provenance/v1"
        ]
    );
    // The layout names cosign's tags by full reference.
    let names = LayoutSource::open(&root).unwrap().names();
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("registry.example.com/ml/app:sha256-") && n.ends_with(".sig")),
        "{names:?}"
    );
}

#[tokio::test]
async fn sign_attest_and_attach_into_a_registry_without_referrers_api() {
    let Some(reg) = TestRegistry::start() else {
        return;
    };
    let client = reg.client();
    let image = reg.reference("ml/app:1.0");
    sign_everything_and_read_back(
        &client,
        || reg.client(),
        &image,
        Some(ReferrersOrigin::TagSchema),
    )
    .await;
    // The referrers tag index is an OCI index listing both bundle referrers.
    let digest = client.resolve(&image).await.unwrap();
    let idx = client
        .manifest(&image.with_tag(&format!("sha256-{}", digest.hex())).unwrap())
        .await
        .unwrap();
    assert!(idx.is_index());
    let v: serde_json::Value = serde_json::from_slice(&idx.bytes).unwrap();
    let entries = v["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert!(
        entries
            .iter()
            .all(|e| e["artifactType"] == "application/vnd.dev.sigstore.bundle.v0.3+json")
    );
}

#[tokio::test]
async fn signatures_go_to_an_alternate_repository_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("layout");
    let p = LayoutPublisher::open(&root).unwrap();
    let image = ImageReference::parse("registry.example.com/ml/app:1.0").unwrap();
    let digest = push_image(&p, &image).await;
    let key = SigningKey::generate(KeyAlgorithm::EcdsaP384).unwrap();
    let sigrepo = ImageReference::parse("registry.example.com/signatures").unwrap();
    let opts = SignOptions {
        repository: Some(sigrepo.clone()),
        ..Default::default()
    };
    let out = sign_image(&p, &image, &digest, &key, &opts).await.unwrap();
    assert!(
        out.reference
            .to_string()
            .starts_with("registry.example.com/signatures:sha256-")
    );
    let r = LayoutSource::open(&root).unwrap();
    let sigs = r.signatures(&image, &digest, Some(&sigrepo)).await.unwrap();
    assert_eq!(sigs.len(), 1);
    verifier()
        .verify(
            Artifact::Digest(&digest),
            &sigs[0].material(),
            &exp(&key),
            NOW,
        )
        .unwrap();
}
