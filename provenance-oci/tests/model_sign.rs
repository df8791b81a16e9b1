//! Signing model folders (OpenSSF model-signing v1.0) and datasets: what we sign verifies with
//! our verifier (`provenance_oci::model`) and with the reference implementation
//! (`model_signing verify key|certificate`, PyPI model-signing, when installed).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::Command;

use provenance_core::sign::{CertifiedKey, KeyAlgorithm, SigningKey};
use provenance_core::verify::{Expectation, PUBLIC_GOOD_TRUSTED_ROOT};
use provenance_core::{TrustRoot, UnixTime};
use provenance_oci::model::{
    Method, ModelTrust, SignModelOptions, VerifyOptions, sign_dataset, sign_model,
    verify_dataset_attestation, verify_model,
};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/model-signing")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let t = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &t);
        } else {
            std::fs::copy(e.path(), t).unwrap();
        }
    }
}

fn model_copy() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("model");
    copy_dir(&fixtures().join("model"), &m);
    (dir, m)
}

fn now() -> UnixTime {
    provenance_oci::model::system_now()
}

fn fixture_key(name: &str) -> SigningKey {
    SigningKey::from_pem(
        &std::fs::read_to_string(fixtures().join("keys").join(name)).unwrap(),
        None,
    )
    .unwrap()
}

fn certified() -> CertifiedKey {
    let mut chain = std::fs::read_to_string(fixtures().join("keys/leaf.pem")).unwrap();
    chain.push_str(&std::fs::read_to_string(fixtures().join("keys/inter.pem")).unwrap());
    CertifiedKey::from_pem_chain(fixture_key("leaf.key"), &chain).unwrap()
}

fn root_chain() -> ModelTrust {
    ModelTrust::certificate_chain_from_pem(
        &std::fs::read(fixtures().join("keys/root.pem")).unwrap(),
    )
    .unwrap()
}

/// `model_signing` on PATH; in CI its absence is a failure.
fn model_signing_cli() -> bool {
    let ok = Command::new("model_signing")
        .arg("--help")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        if std::env::var_os("CI").is_some() {
            panic!("model_signing not installed: run scripts/ci-setup-model-signing.sh");
        }
        eprintln!("SKIPPED: model_signing not installed (scripts/ci-setup-model-signing.sh)");
    }
    ok
}

fn reference_verifies(model: &Path, signature: &Path, method: &[&str]) -> bool {
    let out = Command::new("model_signing")
        .arg("verify")
        .arg(method[0])
        .arg(model)
        .arg("--signature")
        .arg(signature)
        .args(&method[1..])
        .output()
        .unwrap();
    if !out.status.success() {
        eprintln!(
            "model_signing verify {}: {}{}",
            method[0],
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out.status.success()
}

#[test]
fn key_signed_models_verify_here_and_fail_when_tampered() {
    for alg in [KeyAlgorithm::EcdsaP256, KeyAlgorithm::EcdsaP384] {
        let (dir, m) = model_copy();
        let key = SigningKey::generate(alg).unwrap();
        let sig = dir.path().join("model.sig");
        let signed = sign_model(&m, &sig, &key, &SignModelOptions::default()).unwrap();
        assert_eq!(signed.manifest.files, 5);
        let trust = ModelTrust::Key(key.public_key());
        let report = verify_model(&m, &sig, &trust, &VerifyOptions::default(), now()).unwrap();
        assert_eq!(report.model_name, "model");
        assert_eq!(
            report.root_digest.as_deref(),
            Some(signed.root_digest.to_string().as_str())
        );
        // Another key, or a changed file: refused.
        let other = ModelTrust::Key(SigningKey::generate(alg).unwrap().public_key());
        assert!(verify_model(&m, &sig, &other, &VerifyOptions::default(), now()).is_err());
        std::fs::write(m.join("config.json"), b"{}").unwrap();
        let e = verify_model(&m, &sig, &trust, &VerifyOptions::default(), now()).unwrap_err();
        assert_eq!(e.code(), "model.file_changed");
    }
}

#[test]
fn signature_inside_the_folder_is_left_out_and_shards_work() {
    let (_dir, m) = model_copy();
    let key = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let sig = m.join("model.sig");
    let opts = SignModelOptions {
        method: Method::Shards(1 << 20),
        ..Default::default()
    };
    let signed = sign_model(&m, &sig, &key, &opts).unwrap();
    // The 1.2 MB weights file is cut in two shards.
    assert!(
        signed
            .manifest
            .resources
            .iter()
            .any(|(n, _)| n == "weights/model-00001-of-00001.bin:1048576:1200000"),
        "{:?}",
        signed.manifest.resources
    );
    assert!(
        signed
            .manifest
            .resources
            .iter()
            .all(|(n, _)| !n.starts_with("model.sig"))
    );
    verify_model(
        &m,
        &sig,
        &ModelTrust::Key(key.public_key()),
        &VerifyOptions::default(),
        now(),
    )
    .unwrap();
}

#[test]
fn ignored_paths_are_recorded_and_honoured() {
    let (dir, m) = model_copy();
    std::fs::write(m.join("notes.txt"), b"draft").unwrap();
    let key = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let sig = dir.path().join("model.sig");
    let opts = SignModelOptions {
        ignore_paths: vec!["notes.txt".into()],
        ..Default::default()
    };
    sign_model(&m, &sig, &key, &opts).unwrap();
    std::fs::write(m.join("notes.txt"), b"changed").unwrap();
    verify_model(
        &m,
        &sig,
        &ModelTrust::Key(key.public_key()),
        &VerifyOptions::default(),
        now(),
    )
    .unwrap();
}

#[test]
fn certificate_signed_models_verify_against_the_root() {
    let (dir, m) = model_copy();
    let sig = dir.path().join("model.sig");
    sign_model(&m, &sig, &certified(), &SignModelOptions::default()).unwrap();
    let r = verify_model(&m, &sig, &root_chain(), &VerifyOptions::default(), now()).unwrap();
    assert!(r.signer.starts_with("certificate:"), "{}", r.signer);
    let other = ModelTrust::certificate_chain_from_pem(
        &std::fs::read(fixtures().join("keys/other-root.pem")).unwrap(),
    )
    .unwrap();
    assert!(verify_model(&m, &sig, &other, &VerifyOptions::default(), now()).is_err());
    // A certificate for another key cannot be paired with this key.
    let chain = std::fs::read_to_string(fixtures().join("keys/leaf.pem")).unwrap();
    let e = CertifiedKey::from_pem_chain(
        SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap(),
        &chain,
    )
    .unwrap_err();
    assert_eq!(e.code(), "core.sign.failed");
}

#[test]
fn the_reference_implementation_verifies_what_we_sign() {
    if !model_signing_cli() {
        return;
    }
    let (dir, m) = model_copy();
    // Key: the fixture's key as a PEM public key file model_signing reads.
    let key = fixture_key("ec-p256.key");
    let sig = dir.path().join("key.sig");
    sign_model(&m, &sig, &key, &SignModelOptions::default()).unwrap();
    let pub_path = fixtures().join("keys/ec-p256.pub");
    let key_args = ["key", "--public_key", pub_path.to_str().unwrap()];
    assert!(reference_verifies(&m, &sig, &key_args));
    // The signature inside the folder (model_signing's CLI verifies the `files`
    // serialization only, so shard signatures are checked by our verifier alone).
    let inside = m.join("model.sig");
    sign_model(&m, &inside, &key, &SignModelOptions::default()).unwrap();
    assert!(reference_verifies(&m, &inside, &key_args));
    std::fs::remove_file(&inside).unwrap();
    // Certificate chain.
    let csig = dir.path().join("cert.sig");
    sign_model(&m, &csig, &certified(), &SignModelOptions::default()).unwrap();
    let root = fixtures().join("keys/root.pem");
    let cert_args = ["certificate", "--certificate_chain", root.to_str().unwrap()];
    assert!(reference_verifies(&m, &csig, &cert_args));
    // And it refuses a tampered copy of what we signed (the cross-check can fail).
    std::fs::write(m.join("tokenizer/vocab.txt"), b"tampered").unwrap();
    assert!(!reference_verifies(&m, &sig, &key_args));
    assert!(!reference_verifies(&m, &csig, &cert_args));
}

#[test]
fn datasets_are_signed_as_in_toto_subjects() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("train.parquet");
    std::fs::write(&file, b"rows").unwrap();
    let key = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let predicate = serde_json::json!({
        "name": "train", "sourceUri": "s3://acme/train.parquet", "license": "CC-BY-4.0",
        "digest": {"sha256": provenance_core::Digest::sha256_of(b"rows").hex()},
    });
    let (digest, b) = sign_dataset(
        &file,
        "train.parquet",
        provenance_attest::croissant::DATASET_PROVENANCE_V1,
        predicate,
        &key,
        &VerifyOptions::default(),
    )
    .unwrap();
    assert_eq!(digest, provenance_core::Digest::sha256_of(b"rows"));
    let root = TrustRoot::from_trusted_root_json(PUBLIC_GOOD_TRUSTED_ROOT).unwrap();
    let exp = Expectation::Key {
        key: key.public_key(),
        allow_no_transparency: true,
    };
    let a = verify_dataset_attestation(&file, &b, &exp, &root, &VerifyOptions::default(), now())
        .unwrap();
    assert_eq!(
        a.predicate_type,
        provenance_attest::croissant::DATASET_PROVENANCE_V1
    );
    // A dataset folder: the subject is the folder's dataset digest (paths bound to digests).
    let (_d2, m) = model_copy();
    let (_, fb) = sign_dataset(
        &m,
        "model",
        "https://example.com/p/v1",
        serde_json::json!({"a": 1}),
        &key,
        &VerifyOptions::default(),
    )
    .unwrap();
    verify_dataset_attestation(&m, &fb, &exp, &root, &VerifyOptions::default(), now()).unwrap();
    // The same bytes under another name: the attestation no longer matches.
    std::fs::rename(
        m.join("tokenizer/vocab.txt"),
        m.join("tokenizer/vocab2.txt"),
    )
    .unwrap();
    let e = verify_dataset_attestation(&m, &fb, &exp, &root, &VerifyOptions::default(), now())
        .unwrap_err();
    assert_eq!(e.code(), "model.signature", "{e}");
    std::fs::write(&file, b"other rows").unwrap();
    assert!(
        verify_dataset_attestation(&file, &b, &exp, &root, &VerifyOptions::default(), now())
            .is_err()
    );
}

#[cfg(unix)]
#[test]
fn the_signature_is_written_through_a_fresh_file_never_a_symlink() {
    let (dir, m) = model_copy();
    let d = dir.path();
    let victim = d.join("victim");
    std::fs::write(&victim, b"keep").unwrap();
    // The temporary name a fixed scheme would use, and the signature path itself.
    std::os::unix::fs::symlink(&victim, d.join("model.partial")).unwrap();
    std::os::unix::fs::symlink(&victim, d.join("model.sig")).unwrap();
    let key = fixture_key("ec-p256.key");
    sign_model(&m, &d.join("model.sig"), &key, &SignModelOptions::default()).unwrap();
    assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
    assert!(
        std::fs::symlink_metadata(d.join("model.sig"))
            .unwrap()
            .file_type()
            .is_file()
    );
    let trust = ModelTrust::Key(key.public_key());
    verify_model(
        &m,
        &d.join("model.sig"),
        &trust,
        &VerifyOptions::default(),
        now(),
    )
    .unwrap();
}
