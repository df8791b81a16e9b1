//! Models as OCI artifacts (one layer per file) verified against a model-signing bundle
//! attached as an OCI 1.1 referrer, from an OCI layout and from a real registry (referrers API
//! answered 404, so the referrers tag schema is used). Fixtures from
//! `scripts/fixtures/model-signing/generate-oci.sh` (model_signing 1.1.1).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};

use common::{OCI_INDEX, OCI_MANIFEST, TestRegistry};
use provenance_core::{Digest, ImageReference, PublicKey, UnixTime};
use provenance_oci::model::{
    ManifestDiff, ModelError, ModelTrust, OciModelOptions, OciModelReport, verify_oci_model,
};
use provenance_oci::types::SIGSTORE_BUNDLE_V03;
use provenance_oci::{EvidenceSource, LayoutSource, LayoutWriter, Manifest, ReferrersOrigin};
use serde_json::{Value, json};

const TITLE: &str = "org.opencontainers.image.title";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/model-signing")
}

fn layout_dir() -> PathBuf {
    fixtures().join("oci/layout")
}

fn key(name: &str) -> ModelTrust {
    let pem = std::fs::read_to_string(fixtures().join("keys").join(name)).unwrap();
    ModelTrust::Key(PublicKey::from_pem(&pem).unwrap())
}

fn now() -> UnixTime {
    provenance_oci::model::system_now()
}

fn image(s: &str) -> ImageReference {
    ImageReference::parse(s).unwrap()
}

fn model_err(r: Result<OciModelReport, provenance_oci::Error>) -> ModelError {
    match r {
        Err(provenance_oci::Error::Model(e)) => e,
        other => panic!("expected a model error, got {other:?}"),
    }
}

fn diff(changed: &[&str], missing: &[&str], extra: &[&str]) -> ModelError {
    let v = |s: &[&str]| s.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
    ModelError::Mismatch {
        diff: ManifestDiff {
            changed: v(changed),
            missing: v(missing),
            extra: v(extra),
        },
    }
}

/// The model files, in the order the artifact lists them.
fn model_files() -> Vec<(String, Vec<u8>)> {
    [
        "config.json",
        "tokenizer/empty.txt",
        "tokenizer/vocab.txt",
        "weights/model-00001-of-00001.bin",
        "weights/nested/deep/adapter.safetensors",
    ]
    .iter()
    .map(|p| {
        (
            (*p).to_owned(),
            std::fs::read(fixtures().join("model").join(p)).unwrap(),
        )
    })
    .collect()
}

fn sig(name: &str) -> Vec<u8> {
    std::fs::read(fixtures().join("oci").join(name)).unwrap()
}

fn manifest(bytes: Vec<u8>) -> Manifest {
    Manifest::from_bytes(bytes, provenance_core::DigestAlgorithm::Sha256, None).unwrap()
}

/// Writes a model artifact into a fresh layout, tagged `1.0`, with `bundle` attached as a
/// referrer (when given). Layer blobs are **not** written: verification must not need them.
fn build_layout(
    dir: &Path,
    files: &[(String, Vec<u8>)],
    media_type: &str,
    bundle: Option<&[u8]>,
) -> Digest {
    let mut w = LayoutWriter::create(dir).unwrap();
    let config = br#"{"descriptor":{"name":"tiny"}}"#;
    let cd = Digest::sha256_of(config);
    w.put_blob(&cd, config).unwrap();
    let layers: Vec<Value> = files
        .iter()
        .map(|(p, b)| {
            json!({"mediaType": media_type, "digest": Digest::sha256_of(b).to_string(),
                   "size": b.len(), "annotations": {TITLE: p}})
        })
        .collect();
    let m = manifest(
        serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "artifactType": "application/vnd.cncf.model.manifest.v1+json",
            "config": {"mediaType": "application/vnd.cncf.model.config.v1+json",
                       "digest": cd.to_string(), "size": config.len()},
            "layers": layers,
        }))
        .unwrap(),
    );
    w.add_entry(
        &m,
        Some("1.0"),
        Some("application/vnd.cncf.model.manifest.v1+json"),
    )
    .unwrap();
    if let Some(bundle) = bundle {
        let bd = Digest::sha256_of(bundle);
        w.put_blob(&bd, bundle).unwrap();
        w.put_blob(&Digest::sha256_of(b"{}"), b"{}").unwrap();
        let r = manifest(
            serde_json::to_vec(&json!({
                "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": SIGSTORE_BUNDLE_V03,
                "config": {"mediaType": "application/vnd.oci.empty.v1+json",
                           "digest": Digest::sha256_of(b"{}").to_string(), "size": 2},
                "layers": [{"mediaType": SIGSTORE_BUNDLE_V03, "digest": bd.to_string(), "size": bundle.len()}],
                "subject": {"mediaType": OCI_MANIFEST, "digest": m.digest.to_string(), "size": m.bytes.len()},
                "annotations": {"dev.sigstore.bundle.predicateType": "https://model_signing/signature/v1.0"},
            }))
            .unwrap(),
        );
        w.add_entry(&r, None, Some(SIGSTORE_BUNDLE_V03)).unwrap();
    }
    w.finish().unwrap();
    m.digest
}

async fn verify_built(
    files: &[(String, Vec<u8>)],
    media_type: &str,
    bundle: Option<&[u8]>,
    trust: &ModelTrust,
) -> Result<OciModelReport, provenance_oci::Error> {
    let dir = tempfile::tempdir().unwrap();
    build_layout(dir.path(), files, media_type, bundle);
    let src = LayoutSource::open(dir.path()).unwrap();
    verify_oci_model(
        &src,
        &image("example.com/models/tiny:1.0"),
        trust,
        &OciModelOptions::default(),
        now(),
    )
    .await
}

const RAW: &str = "application/vnd.cncf.model.weight.v1.raw";

#[tokio::test]
async fn committed_layout_verifies_with_the_key() {
    let src = LayoutSource::open(layout_dir()).unwrap();
    let r = verify_oci_model(
        &src,
        &image("example.com/models/tiny:1.0"),
        &key("ec-p256.pub"),
        &OciModelOptions::default(),
        now(),
    )
    .await
    .unwrap();
    assert_eq!(r.files, 5);
    assert_eq!(
        r.bytes,
        model_files()
            .iter()
            .map(|(_, b)| b.len() as u64)
            .sum::<u64>()
    );
    assert_eq!(r.model_name, "model");
    assert!(r.signer.starts_with("key:"), "{}", r.signer);
    // The digest the tag resolved to is the manifest the bundle is attached to.
    let index: Value =
        serde_json::from_slice(&std::fs::read(layout_dir().join("index.json")).unwrap()).unwrap();
    assert_eq!(
        r.manifest_digest.to_string(),
        index["manifests"][0]["digest"]
    );
    assert_eq!(
        r.signature_manifest.to_string(),
        index["manifests"][1]["digest"]
    );
}

#[tokio::test]
async fn committed_layout_with_another_key_fails() {
    let src = LayoutSource::open(layout_dir()).unwrap();
    let e = model_err(
        verify_oci_model(
            &src,
            &image("example.com/models/tiny:1.0"),
            &key("other.pub"),
            &OciModelOptions::default(),
            now(),
        )
        .await,
    );
    assert_eq!(e.code(), "model.key_mismatch", "{e}");
}

#[tokio::test]
async fn built_artifact_verifies_without_its_layer_blobs() {
    // build_layout writes no layer blob: a fetch of one would fail with oci.not_found.
    let r = verify_built(
        &model_files(),
        RAW,
        Some(&sig("model.sig")),
        &key("ec-p256.pub"),
    )
    .await
    .unwrap();
    assert_eq!(r.files, 5);
}

#[tokio::test]
async fn a_replaced_layer_is_a_changed_file() {
    let mut files = model_files();
    files[0].1 = b"{\"architectures\":[\"Evil\"]}\n".to_vec();
    let e =
        model_err(verify_built(&files, RAW, Some(&sig("model.sig")), &key("ec-p256.pub")).await);
    assert_eq!(e, diff(&["config.json"], &[], &[]));
    assert_eq!(e.code(), "model.file_changed");
}

#[tokio::test]
async fn two_swapped_layers_are_two_changed_files() {
    let mut files = model_files();
    let (a, b) = (files[2].1.clone(), files[4].1.clone());
    files[2].1 = b;
    files[4].1 = a;
    let e =
        model_err(verify_built(&files, RAW, Some(&sig("model.sig")), &key("ec-p256.pub")).await);
    assert_eq!(
        e,
        diff(
            &[
                "tokenizer/vocab.txt",
                "weights/nested/deep/adapter.safetensors"
            ],
            &[],
            &[]
        )
    );
}

#[tokio::test]
async fn an_added_layer_is_an_extra_file() {
    let mut files = model_files();
    files.push(("weights/backdoor.bin".into(), b"payload".to_vec()));
    let e =
        model_err(verify_built(&files, RAW, Some(&sig("model.sig")), &key("ec-p256.pub")).await);
    assert_eq!(e, diff(&[], &[], &["weights/backdoor.bin"]));
    assert_eq!(e.code(), "model.file_extra");
}

#[tokio::test]
async fn unsigned_git_layers_are_extra_files_unless_the_caller_allows_them() {
    // model.sig (model_signing 1.1, default options) records the git paths in its signed
    // `ignore_paths`: neither they nor the git-path default may excuse a delivered layer.
    let mut files = model_files();
    files.push((
        ".git/config".into(),
        b"[core]\n\tfsmonitor = ./payload\n".to_vec(),
    ));
    files.push((".gitattributes".into(), b"*.bin filter=payload\n".to_vec()));
    let e =
        model_err(verify_built(&files, RAW, Some(&sig("model.sig")), &key("ec-p256.pub")).await);
    assert_eq!(e, diff(&[], &[], &[".git/config", ".gitattributes"]));
    assert_eq!(e.code(), "model.file_extra");
    // Allowed by the caller, explicitly.
    let dir = tempfile::tempdir().unwrap();
    build_layout(dir.path(), &files, RAW, Some(&sig("model.sig")));
    let src = LayoutSource::open(dir.path()).unwrap();
    let allow = |opts: OciModelOptions| {
        let src = &src;
        async move {
            verify_oci_model(
                src,
                &image("example.com/models/tiny:1.0"),
                &key("ec-p256.pub"),
                &opts,
                now(),
            )
            .await
        }
    };
    allow(OciModelOptions {
        ignore_git_paths: true,
        ..OciModelOptions::default()
    })
    .await
    .unwrap();
    allow(OciModelOptions {
        ignore_paths: vec![".git".into(), ".gitattributes".into()],
        ..OciModelOptions::default()
    })
    .await
    .unwrap();
    let e = model_err(
        allow(OciModelOptions {
            ignore_paths: vec![".git".into()],
            ..OciModelOptions::default()
        })
        .await,
    );
    assert_eq!(e, diff(&[], &[], &[".gitattributes"]));
}

#[tokio::test]
async fn a_removed_layer_is_a_missing_file() {
    let mut files = model_files();
    files.remove(2);
    let e =
        model_err(verify_built(&files, RAW, Some(&sig("model.sig")), &key("ec-p256.pub")).await);
    assert_eq!(e, diff(&[], &["tokenizer/vocab.txt"], &[]));
    assert_eq!(e.code(), "model.file_missing");
}

#[tokio::test]
async fn a_bundle_for_another_model_lists_the_differences() {
    // other-model.sig: same key, config.json changed and extra.txt added.
    let e = model_err(
        verify_built(
            &model_files(),
            RAW,
            Some(&sig("other-model.sig")),
            &key("ec-p256.pub"),
        )
        .await,
    );
    assert_eq!(e, diff(&["config.json"], &["extra.txt"], &[]));
    assert_eq!(e.code(), "model.mismatch");
}

#[tokio::test]
async fn the_right_bundle_wins_among_several() {
    // A referrer for another model next to the right one: the right one verifies.
    let dir = tempfile::tempdir().unwrap();
    let d = build_layout(
        dir.path(),
        &model_files(),
        RAW,
        Some(&sig("other-model.sig")),
    );
    let d2 = build_layout(dir.path(), &model_files(), RAW, Some(&sig("model.sig")));
    assert_eq!(d, d2);
    let src = LayoutSource::open(dir.path()).unwrap();
    let refs = src
        .referrers(&image("example.com/models/tiny:1.0"), &d, None)
        .await
        .unwrap();
    assert_eq!(refs.items.len(), 2);
    verify_oci_model(
        &src,
        &image("example.com/models/tiny:1.0"),
        &key("ec-p256.pub"),
        &OciModelOptions::default(),
        now(),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn no_attached_bundle_is_no_signature() {
    let e = model_err(verify_built(&model_files(), RAW, None, &key("ec-p256.pub")).await);
    assert_eq!(e.code(), "model.no_signature", "{e}");
}

#[tokio::test]
async fn archive_layers_and_shard_or_blake2_signatures_need_the_blobs() {
    let e = model_err(
        verify_built(
            &model_files(),
            "application/vnd.oci.image.layer.v1.tar+gzip",
            Some(&sig("model.sig")),
            &key("ec-p256.pub"),
        )
        .await,
    );
    assert_eq!(e.code(), "model.needs_blobs", "{e}");
    assert!(e.to_string().contains("config.json"), "{e}");
    let shards = std::fs::read(fixtures().join("signatures/key-shards.sig")).unwrap();
    let e = model_err(verify_built(&model_files(), RAW, Some(&shards), &key("ec-p256.pub")).await);
    assert_eq!(e.code(), "model.needs_blobs", "{e}");
    assert!(e.to_string().contains("shards"), "{e}");
    let e = model_err(
        verify_built(
            &model_files(),
            RAW,
            Some(&sig("key-blake2.sig")),
            &key("ec-p256.pub"),
        )
        .await,
    );
    assert_eq!(e.code(), "model.needs_blobs", "{e}");
    assert!(e.to_string().contains("blake2b"), "{e}");
}

#[tokio::test]
async fn untitled_and_unsafe_layers_are_refused() {
    let mut files = model_files();
    files[1].0 = "../escape".into();
    let e =
        model_err(verify_built(&files, RAW, Some(&sig("model.sig")), &key("ec-p256.pub")).await);
    assert_eq!(e.code(), "model.oci_layer", "{e}");
    let mut files = model_files();
    files[1].0 = files[0].0.clone();
    let e =
        model_err(verify_built(&files, RAW, Some(&sig("model.sig")), &key("ec-p256.pub")).await);
    assert_eq!(e.code(), "model.oci_layer", "{e}");
}

/// Pushes the committed layout to the registry as `repo:1.0`, with the bundle referrer and the
/// referrers tag-schema index a client writes when the registry has no referrers API.
async fn push_layout(reg: &TestRegistry, repo: &str) -> (Digest, Vec<Digest>) {
    let p = reg.pusher();
    let index: Value =
        serde_json::from_slice(&std::fs::read(layout_dir().join("index.json")).unwrap()).unwrap();
    let read = |d: &str| {
        std::fs::read(
            layout_dir()
                .join("blobs/sha256")
                .join(d.trim_start_matches("sha256:")),
        )
        .unwrap()
    };
    let model = index["manifests"][0].clone();
    let referrer = index["manifests"][1].clone();
    let mbytes = read(model["digest"].as_str().unwrap());
    let m: Value = serde_json::from_slice(&mbytes).unwrap();
    let mut layer_digests = Vec::new();
    for l in m["layers"].as_array().unwrap() {
        layer_digests.push(p.blob(repo, &read(l["digest"].as_str().unwrap())).await);
    }
    p.blob(repo, &read(m["config"]["digest"].as_str().unwrap()))
        .await;
    let md = p.manifest(repo, "1.0", OCI_MANIFEST, &mbytes).await;
    let rbytes = read(referrer["digest"].as_str().unwrap());
    let r: Value = serde_json::from_slice(&rbytes).unwrap();
    p.blob(repo, &read(r["config"]["digest"].as_str().unwrap()))
        .await;
    p.blob(repo, &read(r["layers"][0]["digest"].as_str().unwrap()))
        .await;
    let rd = p
        .manifest(
            repo,
            referrer["digest"].as_str().unwrap(),
            OCI_MANIFEST,
            &rbytes,
        )
        .await;
    let tag_index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [{
        "mediaType": OCI_MANIFEST, "digest": rd.to_string(), "size": rbytes.len(),
        "artifactType": SIGSTORE_BUNDLE_V03, "annotations": r["annotations"].clone()}]});
    p.manifest(
        repo,
        &format!("sha256-{}", md.hex()),
        OCI_INDEX,
        &serde_json::to_vec(&tag_index).unwrap(),
    )
    .await;
    (md, layer_digests)
}

#[tokio::test]
async fn registry_with_tag_fallback_verifies_without_the_layer_blobs() {
    let Some(reg) = TestRegistry::start() else {
        return;
    };
    let (md, layers) = push_layout(&reg, "models/tiny").await;
    let client = reg.client();
    let img = reg.reference("models/tiny:1.0");
    // The registry has no referrers API: discovery goes through the tag schema.
    assert_eq!(client.referrers_api(&img, &md, None).await.unwrap(), None);
    let refs = client
        .referrers(&img, &md, Some(SIGSTORE_BUNDLE_V03))
        .await
        .unwrap();
    assert_eq!(refs.origin, ReferrersOrigin::TagSchema);
    assert_eq!(refs.items.len(), 1);
    // Delete every layer blob: verification reads manifests and the bundle only.
    let http = reqwest::Client::new();
    for d in &layers {
        let r = http
            .delete(format!("http://{}/v2/models/tiny/blobs/{d}", reg.addr))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 202, "delete {d}");
    }
    let r = verify_oci_model(
        &client,
        &img,
        &key("ec-p256.pub"),
        &OciModelOptions::default(),
        now(),
    )
    .await
    .unwrap();
    assert_eq!(r.manifest_digest, md);
    assert_eq!(r.files, 5);
    let e = model_err(
        verify_oci_model(
            &client,
            &img,
            &key("other.pub"),
            &OciModelOptions::default(),
            now(),
        )
        .await,
    );
    assert_eq!(e.code(), "model.key_mismatch");
}

#[tokio::test]
async fn registry_signature_in_another_repository() {
    let Some(reg) = TestRegistry::start() else {
        return;
    };
    push_layout(&reg, "models/tiny").await;
    // The model alone in another repository, its signature only under models/tiny.
    let p = reg.pusher();
    let index: Value =
        serde_json::from_slice(&std::fs::read(layout_dir().join("index.json")).unwrap()).unwrap();
    let d = index["manifests"][0]["digest"].as_str().unwrap();
    let mbytes = std::fs::read(layout_dir().join("blobs/sha256").join(&d[7..])).unwrap();
    let m: Value = serde_json::from_slice(&mbytes).unwrap();
    for b in m["layers"].as_array().unwrap().iter().chain([&m["config"]]) {
        let bd = b["digest"].as_str().unwrap();
        p.blob(
            "mirror/tiny",
            &std::fs::read(layout_dir().join("blobs/sha256").join(&bd[7..])).unwrap(),
        )
        .await;
    }
    p.manifest("mirror/tiny", "1.0", OCI_MANIFEST, &mbytes)
        .await;
    let client = reg.client();
    let img = reg.reference("mirror/tiny:1.0");
    let e = model_err(
        verify_oci_model(
            &client,
            &img,
            &key("ec-p256.pub"),
            &OciModelOptions::default(),
            now(),
        )
        .await,
    );
    assert_eq!(e.code(), "model.no_signature");
    let opts = OciModelOptions {
        repository: Some(reg.reference("models/tiny")),
        ..OciModelOptions::default()
    };
    verify_oci_model(&client, &img, &key("ec-p256.pub"), &opts, now())
        .await
        .unwrap();
}
