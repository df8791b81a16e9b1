//! Adversarial evidence in an OCI layout written by the test: a gzip bomb as a signature layer,
//! thousands of signature layers on one image, a blob over the size limit, and a layer whose
//! descriptor lies about its size. Each ends in the exact error (or an inert, bounded read)
//! and none in a verified signature.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::Path;

use provenance_core::verify::{
    Artifact, CosignSignature, Expectation, PUBLIC_GOOD_TRUSTED_ROOT, SignatureMaterial, Verifier,
};
use provenance_core::{Digest, ImageReference, PublicKey, TrustRoot, UnixTime};
use provenance_oci::{Error, EvidenceSource, LayoutSource, Limits};
use serde_json::json;

const IMAGE: &str = "registry.provenance.test/acme/model:v1";
const SIG: &str = "dev.cosignproject.cosign/signature";

/// Writes `bytes` as a blob and returns its descriptor fields.
fn blob(root: &Path, bytes: &[u8]) -> (String, u64) {
    let d = Digest::sha256_of(bytes);
    let hex = d.to_string().trim_start_matches("sha256:").to_owned();
    std::fs::create_dir_all(root.join("blobs/sha256")).unwrap();
    std::fs::write(root.join("blobs/sha256").join(&hex), bytes).unwrap();
    (d.to_string(), bytes.len() as u64)
}

/// A layout with one image and a cosign `.sig` manifest holding `layers` (media type, bytes,
/// declared size override). Returns the layout root's image digest.
fn layout(root: &Path, layers: &[(&str, Vec<u8>, Option<u64>)]) -> Digest {
    std::fs::write(
        root.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let (cfg, cfg_size) = blob(root, b"{}");
    let image = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg, "size": cfg_size},
        "layers": []
    });
    let image_bytes = serde_json::to_vec(&image).unwrap();
    let (image_digest, image_size) = blob(root, &image_bytes);
    let descs: Vec<_> = layers
        .iter()
        .map(|(mt, bytes, size)| {
            let (d, n) = blob(root, bytes);
            json!({"mediaType": mt, "digest": d, "size": size.unwrap_or(n),
                   "annotations": {SIG: "MEUCIQDfakefakefakefakefakefakefakefakefakefakefakefakeAiBfakefakefakefakefakefakefakefakefakefakefakefake"}})
        })
        .collect();
    let sig = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg, "size": cfg_size},
        "layers": descs
    });
    let sig_bytes = serde_json::to_vec(&sig).unwrap();
    let (sig_digest, sig_size) = blob(root, &sig_bytes);
    let tag = format!(
        "registry.provenance.test/acme/model:{}.sig",
        image_digest.replace(':', "-")
    );
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": image_digest, "size": image_size,
             "annotations": {"org.opencontainers.image.ref.name": IMAGE}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sig_digest, "size": sig_size,
             "annotations": {"org.opencontainers.image.ref.name": tag}}
        ]
    });
    std::fs::write(root.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    Digest::parse(&image_digest).unwrap()
}

fn bomb() -> Vec<u8> {
    std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/adversarial/zeros-128m.gz"
    ))
    .unwrap()
}

fn key_expectation() -> Expectation {
    // Any key: fuzzed or hostile layers must not verify whatever the key.
    let root = TrustRoot::from_trusted_root_json(PUBLIC_GOOD_TRUSTED_ROOT).unwrap();
    let pem = root.tlogs[0].public_key.to_pem();
    Expectation::Key {
        key: PublicKey::all_from_pem(&pem).unwrap().remove(0),
        allow_no_transparency: true,
    }
}

#[tokio::test]
async fn gzip_bomb_signature_layer_is_read_as_is_and_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let bomb = bomb();
    assert!(bomb.len() < 256 << 10, "the fixture is small compressed");
    let digest = layout(
        dir.path(),
        &[(
            "application/vnd.oci.image.layer.v1.tar+gzip",
            bomb.clone(),
            None,
        )],
    );
    let src = LayoutSource::open(dir.path()).unwrap();
    let img = ImageReference::parse(IMAGE).unwrap();
    assert_eq!(src.resolve(&img).await.unwrap(), digest);
    let sigs = src.signatures(&img, &digest, None).await.unwrap();
    assert_eq!(sigs.len(), 1);
    // Never decompressed: the payload is exactly the compressed bytes.
    assert_eq!(sigs[0].payload, bomb);

    let verifier =
        Verifier::new(&TrustRoot::from_trusted_root_json(PUBLIC_GOOD_TRUSTED_ROOT).unwrap())
            .unwrap();
    let material = SignatureMaterial::Cosign(CosignSignature::new(
        sigs[0].payload.clone(),
        sigs[0].annotations.clone(),
    ));
    let err = verifier
        .verify(
            Artifact::Digest(&digest),
            &material,
            &key_expectation(),
            UnixTime(1_800_000_000),
        )
        .unwrap_err();
    assert_eq!(err.code(), "verify.cosign.payload_invalid", "{err}");
}

#[tokio::test]
async fn thousands_of_signature_layers_hit_the_layer_limit() {
    let dir = tempfile::tempdir().unwrap();
    let layers: Vec<_> = (0..5000)
        .map(|i| {
            (
                "application/vnd.dev.cosign.simplesigning.v1+json",
                format!("{{\"n\":{i}}}").into_bytes(),
                None,
            )
        })
        .collect();
    let digest = layout(dir.path(), &layers);
    let src = LayoutSource::open(dir.path()).unwrap();
    let img = ImageReference::parse(IMAGE).unwrap();
    let err = src.signatures(&img, &digest, None).await.unwrap_err();
    assert!(
        matches!(&err, Error::TooLarge { what, limit } if what == "layers in manifest" && *limit == 256),
        "{err:?}"
    );
    assert_eq!(err.code(), "oci.too_large");

    // Exactly at the limit is fine.
    let dir = tempfile::tempdir().unwrap();
    let digest = layout(dir.path(), &layers[..256]);
    let src = LayoutSource::open(dir.path()).unwrap();
    assert_eq!(
        src.signatures(&img, &digest, None).await.unwrap().len(),
        256
    );
}

#[tokio::test]
async fn oversized_and_lying_layers() {
    let img = ImageReference::parse(IMAGE).unwrap();
    // Over the blob limit, by the descriptor: refused before reading.
    let dir = tempfile::tempdir().unwrap();
    let digest = layout(
        dir.path(),
        &[(
            "application/vnd.dev.cosign.simplesigning.v1+json",
            vec![b'{'; 4096],
            None,
        )],
    );
    let limits = Limits {
        max_blob_bytes: 1024,
        ..Limits::default()
    };
    let src = LayoutSource::open_with_limits(dir.path(), limits).unwrap();
    let err = src.signatures(&img, &digest, None).await.unwrap_err();
    assert!(
        matches!(&err, Error::TooLarge { limit, .. } if *limit == 1024),
        "{err:?}"
    );

    // A descriptor that claims fewer bytes than the blob has: the read is bounded by the
    // claim and the mismatch is an error, not a truncated payload.
    let dir = tempfile::tempdir().unwrap();
    let digest = layout(
        dir.path(),
        &[(
            "application/vnd.dev.cosign.simplesigning.v1+json",
            vec![b' '; 4096],
            Some(100),
        )],
    );
    let src = LayoutSource::open(dir.path()).unwrap();
    let err = src.signatures(&img, &digest, None).await.unwrap_err();
    assert_eq!(err.code(), "oci.malformed", "{err:?}");
    assert!(
        err.to_string()
            .contains("descriptor says 100 bytes, content has 4096"),
        "{err}"
    );
}
