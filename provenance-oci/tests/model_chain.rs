//! Certificate-chain trust for model signatures (`model_signing sign certificate`): only the
//! self-signed roots among the certificates given are trust anchors, as model-signing's own
//! verifier (an OpenSSL store without partial chains) has it. Intermediates given may help
//! build the path; a path must end at a root valid when the signing certificate was issued.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::{Path, PathBuf};

use provenance_core::UnixTime;
use provenance_core::sign::{CertifiedKey, KeyAlgorithm, SigningKey};
use provenance_oci::model::{
    ModelError, ModelTrust, SignModelOptions, SignatureOptions, VerifyOptions,
};
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
fn a_signing_certificate_with_only_extended_key_usage_code_signing_is_accepted() {
    // model_signing 1.1 reads a missing key usage extension as "look at the extended key
    // usage" (1.0.x required the key usage extension; the current verifier is the reference).
    let root_key = KeyPair::generate().unwrap();
    let p = ca_params("root");
    let root = p.self_signed(&root_key).unwrap();
    let issuer = Issuer::new(p, root_key);
    let mut lp = leaf_params();
    lp.key_usages = Vec::new();
    let (k, kp) = leaf_key();
    let leaf = lp.signed_by(&kp, &issuer).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (m, sig) = signed_model(dir.path(), k, &leaf.pem());
    verify(&m, &sig, &trust(&[&root.pem()])).unwrap();
    // Neither a key usage nor codeSigning: refused.
    let mut lp = leaf_params();
    lp.key_usages = Vec::new();
    lp.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let (k, kp) = leaf_key();
    let leaf = lp.signed_by(&kp, &issuer).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (m, sig) = signed_model(dir.path(), k, &leaf.pem());
    assert_eq!(
        code(verify(&m, &sig, &trust(&[&root.pem()]))),
        "model.certificate_chain"
    );
}

fn verify_strict(m: &Path, sig: &Path, t: &ModelTrust) -> Result<String, ModelError> {
    let opts = VerifyOptions {
        signature: SignatureOptions::strict(),
        ..VerifyOptions::default()
    };
    provenance_oci::model::verify_model(m, sig, t, &opts, now()).map(|r| r.signer)
}

/// A signing certificate that is itself a CA: digitalSignature and keyCertSign, CA:TRUE.
fn ca_leaf_params(cn: &str) -> CertificateParams {
    let mut p = leaf_params();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyCertSign,
    ];
    p
}

#[test]
fn a_ca_signing_certificate_is_accepted_as_model_signing_does_unless_strict() {
    // root -> intermediate (pathlen 0) -> CA leaf: OpenSSL (model_signing) does not check the
    // signing certificate's own basic constraints; webpki calls it CaUsedAsEndEntity.
    let root_key = KeyPair::generate().unwrap();
    let p = ca_params("root");
    let root = p.self_signed(&root_key).unwrap();
    let root_issuer = Issuer::new(p, root_key);
    let inter_key = KeyPair::generate().unwrap();
    let mut ip = ca_params("intermediate");
    ip.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    let inter = ip.signed_by(&inter_key, &root_issuer).unwrap();
    let inter_issuer = Issuer::new(ip, inter_key);
    let (k, kp) = leaf_key();
    let leaf = ca_leaf_params("CA signer")
        .signed_by(&kp, &inter_issuer)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (m, sig) = signed_model(dir.path(), k, &format!("{}{}", leaf.pem(), inter.pem()));
    let signer = verify(&m, &sig, &trust(&[&root.pem()])).unwrap();
    assert!(signer.contains("CA signer"), "{signer}");
    assert_eq!(
        code(verify_strict(&m, &sig, &trust(&[&root.pem()]))),
        "model.certificate_chain"
    );
    // The same path rules as for any leaf: an intermediate alone anchors nothing, an
    // unrelated root neither.
    assert_eq!(
        code(verify(&m, &sig, &trust(&[&inter.pem()]))),
        "model.certificate_chain"
    );
    let other_key = KeyPair::generate().unwrap();
    let other = ca_params("root").self_signed(&other_key).unwrap();
    assert_eq!(
        code(verify(&m, &sig, &trust(&[&other.pem()]))),
        "model.certificate_chain"
    );
}

#[test]
fn a_ca_signing_certificate_under_an_issuer_that_may_not_sign_certificates_is_refused() {
    let root_key = KeyPair::generate().unwrap();
    let p = ca_params("root");
    let root = p.self_signed(&root_key).unwrap();
    let root_issuer = Issuer::new(p, root_key);
    let inter_key = KeyPair::generate().unwrap();
    let mut ip = ca_params("no-certsign intermediate");
    ip.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let inter = ip.signed_by(&inter_key, &root_issuer).unwrap();
    let inter_issuer = Issuer::new(ip, inter_key);
    let (k, kp) = leaf_key();
    let leaf = ca_leaf_params("CA signer")
        .signed_by(&kp, &inter_issuer)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (m, sig) = signed_model(dir.path(), k, &format!("{}{}", leaf.pem(), inter.pem()));
    assert_eq!(
        code(verify(&m, &sig, &trust(&[&root.pem()]))),
        "model.certificate_chain"
    );
    // An intermediate whose path length constraint the path exceeds: root -> A (pathlen 0)
    // -> B -> CA leaf.
    let a_key = KeyPair::generate().unwrap();
    let mut ap = ca_params("A");
    ap.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    let a = ap.signed_by(&a_key, &root_issuer).unwrap();
    let a_issuer = Issuer::new(ap, a_key);
    let b_key = KeyPair::generate().unwrap();
    let bp = ca_params("B");
    let b = bp.signed_by(&b_key, &a_issuer).unwrap();
    let b_issuer = Issuer::new(bp, b_key);
    let (k, kp) = leaf_key();
    let leaf = ca_leaf_params("CA signer")
        .signed_by(&kp, &b_issuer)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (m, sig) = signed_model(
        dir.path(),
        k,
        &format!("{}{}{}", leaf.pem(), b.pem(), a.pem()),
    );
    assert_eq!(
        code(verify(&m, &sig, &trust(&[&root.pem()]))),
        "model.certificate_chain"
    );
    // The same path with A unconstrained verifies.
    let a_key = KeyPair::generate().unwrap();
    let ap = ca_params("A");
    let a = ap.signed_by(&a_key, &root_issuer).unwrap();
    let a_issuer = Issuer::new(ap, a_key);
    let b_key = KeyPair::generate().unwrap();
    let bp = ca_params("B");
    let b = bp.signed_by(&b_key, &a_issuer).unwrap();
    let b_issuer = Issuer::new(bp, b_key);
    let (k, kp) = leaf_key();
    let leaf = ca_leaf_params("CA signer")
        .signed_by(&kp, &b_issuer)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (m, sig) = signed_model(
        dir.path(),
        k,
        &format!("{}{}{}", leaf.pem(), b.pem(), a.pem()),
    );
    verify(&m, &sig, &trust(&[&root.pem()])).unwrap();
}

#[test]
fn a_self_signed_signing_certificate_trusted_directly_is_accepted_unless_strict() {
    let (k, kp) = leaf_key();
    let cert = ca_leaf_params("self-signed signer")
        .self_signed(&kp)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (m, sig) = signed_model(dir.path(), k, &cert.pem());
    verify(&m, &sig, &trust(&[&cert.pem()])).unwrap();
    assert_eq!(
        code(verify_strict(&m, &sig, &trust(&[&cert.pem()]))),
        "model.certificate_chain"
    );
    // Trusting another self-signed certificate with the same name does not do.
    let other_key = KeyPair::generate().unwrap();
    let other = ca_leaf_params("self-signed signer")
        .self_signed(&other_key)
        .unwrap();
    assert_eq!(
        code(verify(&m, &sig, &trust(&[&other.pem()]))),
        "model.certificate_chain"
    );
}
