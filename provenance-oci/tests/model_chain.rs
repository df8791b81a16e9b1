//! Certificate-chain trust for model signatures (`model_signing sign certificate`): only the
//! self-signed roots among the certificates given are trust anchors, as model-signing's own
//! verifier (an OpenSSL store without partial chains) has it. Intermediates given may help
//! build the path; a path must end at a root valid when the signing certificate was issued.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::{Path, PathBuf};

use provenance_core::UnixTime;
use provenance_core::sign::{CertifiedKey, KeyAlgorithm, SigningKey};
use provenance_oci::model::{ModelError, ModelTrust, SignModelOptions, VerifyOptions};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, date_time_ymd,
};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/model-signing")
}

fn pem_of(name: &str) -> String {
    std::fs::read_to_string(fixtures().join("keys").join(name)).unwrap()
}

fn trust(pems: &[&str]) -> ModelTrust {
    ModelTrust::certificate_chain_from_pem(pems.concat().as_bytes()).unwrap()
}

fn now() -> UnixTime {
    provenance_oci::model::system_now()
}

fn verify(m: &Path, sig: &Path, t: &ModelTrust) -> Result<String, ModelError> {
    provenance_oci::model::verify_model(m, sig, t, &VerifyOptions::default(), now())
        .map(|r| r.signer)
}

fn code(r: Result<String, ModelError>) -> String {
    match r {
        Ok(s) => panic!("verified (signer {s}), expected a failure"),
        Err(e) => {
            eprintln!("{e}");
            e.code().to_owned()
        }
    }
}

/// A one-file model signed with `key` and the PEM `chain` (leaf first) in its bundle.
fn signed_model(dir: &Path, key: SigningKey, chain: &str) -> (PathBuf, PathBuf) {
    let m = dir.join("model");
    std::fs::create_dir_all(&m).unwrap();
    std::fs::write(m.join("weights.bin"), b"weights").unwrap();
    let sig = dir.join("model.sig");
    let signer = CertifiedKey::from_pem_chain(key, chain).unwrap();
    provenance_oci::model::sign_model(&m, &sig, &signer, &SignModelOptions::default()).unwrap();
    (m, sig)
}

fn ca_params(cn: &str) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.not_before = date_time_ymd(2025, 1, 1);
    p.not_after = date_time_ymd(2045, 1, 1);
    p
}

fn leaf_params() -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name
        .push(DnType::CommonName, "model signer");
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
    p.not_before = date_time_ymd(2026, 1, 1);
    p.not_after = date_time_ymd(2036, 1, 1);
    p
}

/// A fresh P-256 signing key and the same key for rcgen.
fn leaf_key() -> (SigningKey, KeyPair) {
    let k = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let pem = k.to_pkcs8_pem().unwrap().to_string();
    (k, KeyPair::from_pem(&pem).unwrap())
}

#[test]
fn an_intermediate_alone_is_not_a_trust_anchor() {
    // The fixture signature (model_signing 1.1) carries leaf + intermediate.
    let m = fixtures().join("model");
    let sig = fixtures().join("signatures/cert.sig");
    assert!(verify(&m, &sig, &trust(&[&pem_of("root.pem")])).is_ok());
    assert_eq!(
        code(verify(&m, &sig, &trust(&[&pem_of("inter.pem")]))),
        "model.certificate_chain"
    );
    // Given with an unrelated root, the intermediate still does not anchor anything.
    assert_eq!(
        code(verify(
            &m,
            &sig,
            &trust(&[&pem_of("inter.pem"), &pem_of("other-root.pem")])
        )),
        "model.certificate_chain"
    );
}

#[test]
fn intermediates_given_help_build_the_path_to_a_given_root() {
    let dir = tempfile::tempdir().unwrap();
    // The bundle carries the leaf only.
    let key = SigningKey::from_pem(&pem_of("leaf.key"), None).unwrap();
    let (m, sig) = signed_model(dir.path(), key, &pem_of("leaf.pem"));
    let (root, inter) = (pem_of("root.pem"), pem_of("inter.pem"));
    assert!(verify(&m, &sig, &trust(&[&root, &inter])).is_ok());
    assert!(verify(&m, &sig, &trust(&[&inter, &root])).is_ok());
    assert_eq!(
        code(verify(&m, &sig, &trust(&[&root]))),
        "model.certificate_chain"
    );
    assert_eq!(
        code(verify(&m, &sig, &trust(&[&inter]))),
        "model.certificate_chain"
    );
}

#[test]
fn a_self_issued_certificate_signed_by_another_key_is_not_a_root() {
    // "Root" names itself as its issuer, but another key signed it.
    let real = KeyPair::generate().unwrap();
    let real_issuer = Issuer::new(ca_params("look-alike root"), real);
    let fake_key = KeyPair::generate().unwrap();
    let fake = ca_params("look-alike root")
        .signed_by(&fake_key, &real_issuer)
        .unwrap();
    let fake_issuer = Issuer::new(ca_params("look-alike root"), fake_key);
    let (k, kp) = leaf_key();
    let leaf = leaf_params().signed_by(&kp, &fake_issuer).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (m, sig) = signed_model(dir.path(), k, &leaf.pem());
    assert_eq!(
        code(verify(&m, &sig, &trust(&[&fake.pem()]))),
        "model.certificate_chain"
    );
}

#[test]
fn a_root_not_valid_when_the_leaf_was_issued_anchors_nothing() {
    let root_key = KeyPair::generate().unwrap();
    let mut p = ca_params("expired root");
    p.not_before = date_time_ymd(2020, 1, 1);
    p.not_after = date_time_ymd(2025, 1, 1);
    let root = p.self_signed(&root_key).unwrap();
    let issuer = Issuer::new(p, root_key);
    let (k, kp) = leaf_key();
    let leaf = leaf_params().signed_by(&kp, &issuer).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (m, sig) = signed_model(dir.path(), k, &leaf.pem());
    assert_eq!(
        code(verify(&m, &sig, &trust(&[&root.pem()]))),
        "model.certificate_chain"
    );
    // The same shape with a valid root verifies (the harness is sound).
    let root_key = KeyPair::generate().unwrap();
    let p = ca_params("valid root");
    let root = p.self_signed(&root_key).unwrap();
    let issuer = Issuer::new(p, root_key);
    let (k, kp) = leaf_key();
    let leaf = leaf_params().signed_by(&kp, &issuer).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (m, sig) = signed_model(dir.path(), k, &leaf.pem());
    verify(&m, &sig, &trust(&[&root.pem()])).unwrap();
}

#[test]
fn a_root_or_intermediate_that_may_not_sign_certificates_is_refused() {
    // A self-signed "root" without keyCertSign.
    let root_key = KeyPair::generate().unwrap();
    let mut p = ca_params("no-certsign root");
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let root = p.self_signed(&root_key).unwrap();
    let issuer = Issuer::new(p, root_key);
    let (k, kp) = leaf_key();
    let leaf = leaf_params().signed_by(&kp, &issuer).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (m, sig) = signed_model(dir.path(), k, &leaf.pem());
    assert_eq!(
        code(verify(&m, &sig, &trust(&[&root.pem()]))),
        "model.certificate_chain"
    );
    // A good root, an intermediate CA without keyCertSign.
    let root_key = KeyPair::generate().unwrap();
    let p = ca_params("good root");
    let root = p.self_signed(&root_key).unwrap();
    let root_issuer = Issuer::new(p, root_key);
    let inter_key = KeyPair::generate().unwrap();
    let mut ip = ca_params("no-certsign intermediate");
    ip.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let inter = ip.signed_by(&inter_key, &root_issuer).unwrap();
    let inter_issuer = Issuer::new(ip, inter_key);
    let (k, kp) = leaf_key();
    let leaf = leaf_params().signed_by(&kp, &inter_issuer).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (m, sig) = signed_model(dir.path(), k, &format!("{}{}", leaf.pem(), inter.pem()));
    assert_eq!(
        code(verify(&m, &sig, &trust(&[&root.pem()]))),
        "model.certificate_chain"
    );
}

#[test]
fn a_signing_certificate_without_key_usage_is_refused_as_the_reference_does() {
    let root_key = KeyPair::generate().unwrap();
    let p = ca_params("root");
    let root = p.self_signed(&root_key).unwrap();
    let issuer = Issuer::new(p, root_key);
    // Extended key usage codeSigning, but no key usage extension at all.
    let mut lp = leaf_params();
    lp.key_usages = Vec::new();
    let (k, kp) = leaf_key();
    let leaf = lp.signed_by(&kp, &issuer).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (m, sig) = signed_model(dir.path(), k, &leaf.pem());
    assert_eq!(
        code(verify(&m, &sig, &trust(&[&root.pem()]))),
        "model.certificate_chain"
    );
}
