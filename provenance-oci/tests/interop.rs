//! Interoperability with skopeo (Debian): a layout written by skopeo is read by
//! `LayoutSource`, and a layout written by `export` is read by skopeo and copied back into a
//! registry with the same digests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::*;
use provenance_core::verify::{Artifact, Expectation, Verifier};
use provenance_core::{Digest, ImageReference, PublicKey, TrustRoot, UnixTime};
use provenance_oci::{EvidenceSource, LayoutSource};

fn skopeo() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .map(|d| d.join("skopeo"))
        .find(|p| p.is_file());
    if found.is_none() {
        if std::env::var_os("CI").is_some() {
            panic!("skopeo not installed: run scripts/ci-setup-oci.sh");
        }
        eprintln!("SKIPPED: skopeo not installed");
    }
    found
}

fn run(skopeo: &Path, args: &[&str]) -> String {
    let out = Command::new(skopeo).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Pushes an image and a cosign `.sig` built from the `cosign-key-set` fixture, with the
/// config media types cosign itself uses.
async fn push_signed(reg: &TestRegistry) -> (Digest, String) {
    let p = reg.pusher();
    p.blob("acme/model", b"{}").await;
    let manifest = std::fs::read(core_fixture("cosign-key-set/manifest.json")).unwrap();
    let d = p
        .manifest("acme/model", "signed", OCI_MANIFEST, &manifest)
        .await;
    let layer: serde_json::Value = serde_json::from_slice(
        &std::fs::read(core_fixture("cosign-key-set/cosign-layer.json")).unwrap(),
    )
    .unwrap();
    let payload = STANDARD.decode(layer["payload"].as_str().unwrap()).unwrap();
    let config = br#"{"architecture":"","created":"0001-01-01T00:00:00Z","history":[{"created":"0001-01-01T00:00:00Z"}],"os":"","rootfs":{"type":"layers","diff_ids":[]},"config":{}}"#;
    let cd = p.blob("acme/model", config).await;
    let ld = p.blob("acme/model", &payload).await;
    let sig = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd.to_string(), "size": config.len()},
        "layers": [{"mediaType": layer["mediaType"], "digest": ld.to_string(), "size": payload.len(),
                    "annotations": layer["annotations"]}],
    });
    let tag = format!("sha256-{}.sig", d.hex());
    p.manifest(
        "acme/model",
        &tag,
        OCI_MANIFEST,
        &serde_json::to_vec(&sig).unwrap(),
    )
    .await;
    (d, tag)
}

fn verify(d: &Digest, sig: &provenance_oci::SignatureLayer) {
    let dir = core_fixture("cosign-key-set");
    let root =
        TrustRoot::from_trusted_root_json(&std::fs::read(dir.join("trusted_root.json")).unwrap())
            .unwrap();
    let expect: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("expect.json")).unwrap()).unwrap();
    let key = PublicKey::from_pem(&std::fs::read_to_string(dir.join("key.pub")).unwrap()).unwrap();
    Verifier::new(&root)
        .unwrap()
        .verify(
            Artifact::Digest(d),
            &sig.material(),
            &Expectation::key(key),
            UnixTime(expect["now"].as_i64().unwrap()),
        )
        .unwrap();
}

#[tokio::test]
async fn skopeo_layouts_and_exported_layouts_interoperate() {
    let Some(skopeo) = skopeo() else { return };
    let Some(reg) = TestRegistry::start() else {
        return;
    };
    let (d, sig_tag) = push_signed(&reg).await;
    let src = |tag: &str| format!("docker://{}/acme/model:{tag}", reg.addr);

    // 1. skopeo writes a layout; LayoutSource reads it.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("skopeo-layout");
    for tag in ["signed", sig_tag.as_str()] {
        run(
            &skopeo,
            &[
                "copy",
                "--quiet",
                "--preserve-digests",
                "--src-tls-verify=false",
                &src(tag),
                &format!("oci:{}:{tag}", dir.display()),
            ],
        );
    }
    let layout = LayoutSource::open(&dir).unwrap();
    let img = ImageReference::parse("example.com/acme/model:signed").unwrap();
    assert_eq!(layout.resolve(&img).await.unwrap(), d);
    let sigs = layout.signatures(&img, &d, None).await.unwrap();
    assert_eq!(sigs.len(), 1);
    verify(&d, &sigs[0]);

    // 2. export writes a layout; skopeo reads it and copies it back with the same digests.
    let exported = tmp.path().join("exported");
    let client = reg.client();
    provenance_oci::export(
        &client,
        &reg.reference("acme/model:signed"),
        &exported,
        &Default::default(),
    )
    .await
    .unwrap();
    let raw = run(
        &skopeo,
        &[
            "inspect",
            "--raw",
            &format!("oci:{}:{sig_tag}", exported.display()),
        ],
    );
    let sig_manifest = client
        .manifest(&reg.reference(&format!("acme/model:{sig_tag}")))
        .await
        .unwrap();
    assert_eq!(raw.as_bytes(), sig_manifest.bytes.as_slice());
    for tag in ["signed", sig_tag.as_str()] {
        run(
            &skopeo,
            &[
                "copy",
                "--quiet",
                "--preserve-digests",
                "--dest-tls-verify=false",
                &format!("oci:{}:{tag}", exported.display()),
                &format!("docker://{}/copied/model:{tag}", reg.addr),
            ],
        );
    }
    let copied = reg.reference("copied/model:signed");
    assert_eq!(client.resolve(&copied).await.unwrap(), d);
    let sigs = client.signatures(&copied, &d, None).await.unwrap();
    assert_eq!(sigs.len(), 1);
    verify(&d, &sigs[0]);
}
