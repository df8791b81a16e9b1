//! Signing: keys (generate, PKCS#8, SEC1, cosign's encrypted format incl. a key encrypted by
//! an independent implementation), bundles and cosign layers, each checked by verifying with
//! `provenance_core::verify` (ECDSA signatures are randomized: never compared as bytes).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::BTreeMap;
use std::path::Path;

use provenance_core::sign::{KeyAlgorithm, Signer, SigningKey, bundle, cosign_key};
use provenance_core::verify::{
    Artifact, CosignSignature, Expectation, PUBLIC_GOOD_TRUSTED_ROOT, SignatureMaterial, Verifier,
};
use provenance_core::{Digest, KeyKind, PublicKey, TrustRoot, UnixTime};

const NOW: UnixTime = UnixTime(1_800_000_000);
const ALGS: [KeyAlgorithm; 3] = [
    KeyAlgorithm::EcdsaP256,
    KeyAlgorithm::EcdsaP384,
    KeyAlgorithm::Ed25519,
];

fn verifier() -> Verifier {
    Verifier::new(&TrustRoot::from_trusted_root_json(PUBLIC_GOOD_TRUSTED_ROOT).unwrap()).unwrap()
}

fn key_only(key: PublicKey) -> Expectation {
    Expectation::Key {
        key,
        allow_no_transparency: true,
    }
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/signing")
            .join(name),
    )
    .unwrap()
}

#[test]
fn generated_keys_sign_message_bundles_the_verifier_accepts() {
    let v = verifier();
    for alg in ALGS {
        let key = SigningKey::generate(alg).unwrap();
        assert_eq!(key.algorithm(), alg);
        let bundle = bundle::message_signature(&key, b"model weights").unwrap();
        let m = SignatureMaterial::Bundle(bundle.clone());
        v.verify(
            Artifact::Bytes(b"model weights"),
            &m,
            &key_only(key.public_key()),
            NOW,
        )
        .unwrap_or_else(|e| panic!("{alg}: {e}"));
        // Other bytes, another key, or transparency required: refused.
        assert!(
            v.verify(
                Artifact::Bytes(b"other"),
                &m,
                &key_only(key.public_key()),
                NOW
            )
            .is_err()
        );
        let other = SigningKey::generate(alg).unwrap();
        let e = v
            .verify(
                Artifact::Bytes(b"model weights"),
                &m,
                &key_only(other.public_key()),
                NOW,
            )
            .unwrap_err();
        assert_eq!(e.code(), "verify.signature.invalid", "{alg}: {e}");
        let e = v
            .verify(
                Artifact::Bytes(b"model weights"),
                &m,
                &Expectation::key(key.public_key()),
                NOW,
            )
            .unwrap_err();
        assert_eq!(e.code(), "verify.tlog.missing", "{alg}: {e}");
    }
}

#[test]
fn p256_message_bundles_verify_against_the_digest_alone() {
    let key = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let bundle = bundle::message_signature(&key, b"abc").unwrap();
    verifier()
        .verify(
            Artifact::Digest(&Digest::sha256_of(b"abc")),
            &SignatureMaterial::Bundle(bundle),
            &key_only(key.public_key()),
            NOW,
        )
        .unwrap();
}

#[test]
fn dsse_bundles_over_statements_verify_and_bind_the_subject() {
    let v = verifier();
    let artifact = b"dataset.parquet bytes";
    let d = Digest::sha256_of(artifact);
    let statement = serde_json::json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "dataset.parquet", "digest": {"sha256": d.hex()}}],
        "predicateType": "https://example.com/p/v1",
        "predicate": {"a": 1},
    });
    let payload = serde_json::to_vec(&statement).unwrap();
    for alg in ALGS {
        let key = SigningKey::generate(alg).unwrap();
        let b = bundle::dsse(&key, "application/vnd.in-toto+json", &payload).unwrap();
        let m = SignatureMaterial::Bundle(b);
        let ok = v
            .verify(Artifact::Digest(&d), &m, &key_only(key.public_key()), NOW)
            .unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!(ok.payload.unwrap().1, payload);
        let e = v
            .verify(
                Artifact::Digest(&Digest::sha256_of(b"x")),
                &m,
                &key_only(key.public_key()),
                NOW,
            )
            .unwrap_err();
        assert_eq!(e.code(), "verify.artifact.mismatch", "{alg}: {e}");
    }
}

#[test]
fn cosign_simple_signing_layers_verify_as_cosign_layers() {
    let v = verifier();
    let image = Digest::sha256_of(b"manifest");
    for alg in ALGS {
        let key = SigningKey::generate(alg).unwrap();
        let mut optional = BTreeMap::new();
        optional.insert("team".to_owned(), "ml".to_owned());
        let payload = provenance_core::sign::simple_signing_payload(
            "registry.example.com/ml/server",
            &image,
            &optional,
        );
        let text = String::from_utf8(payload.clone()).unwrap();
        assert!(text.starts_with(r#"{"critical":{"identity":{"docker-reference":"registry.example.com/ml/server"},"image":{"docker-manifest-digest":"sha256:"#), "{text}");
        let sig = key.sign(&payload).unwrap();
        let mut ann = BTreeMap::new();
        use base64::Engine;
        ann.insert(
            provenance_core::verify::ANNOTATION_SIGNATURE.to_owned(),
            base64::engine::general_purpose::STANDARD.encode(sig),
        );
        let layer = SignatureMaterial::Cosign(CosignSignature::new(payload, ann));
        v.verify(
            Artifact::Digest(&image),
            &layer,
            &key_only(key.public_key()),
            NOW,
        )
        .unwrap_or_else(|e| panic!("{alg}: {e}"));
        let e = v
            .verify(
                Artifact::Digest(&Digest::sha256_of(b"other")),
                &layer,
                &key_only(key.public_key()),
                NOW,
            )
            .unwrap_err();
        assert_eq!(
            e.code(),
            "verify.cosign.image_digest_mismatch",
            "{alg}: {e}"
        );
    }
}

#[test]
fn pkcs8_and_sec1_round_trips() {
    for alg in ALGS {
        let key = SigningKey::generate(alg).unwrap();
        let pem = key.to_pkcs8_pem().unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        let again = SigningKey::from_pem(&pem, None).unwrap();
        assert_eq!(again.public_key(), key.public_key());
        assert_eq!(again.algorithm(), alg);
        let der = key.to_pkcs8_der().unwrap();
        assert_eq!(
            SigningKey::from_der(&der).unwrap().public_key(),
            key.public_key()
        );
        // A signature by the re-imported key verifies with the original public key.
        let b = bundle::message_signature(&again, b"x").unwrap();
        verifier()
            .verify(
                Artifact::Bytes(b"x"),
                &SignatureMaterial::Bundle(b),
                &key_only(key.public_key()),
                NOW,
            )
            .unwrap();
    }
    assert_eq!(
        SigningKey::generate(KeyAlgorithm::EcdsaP384)
            .unwrap()
            .kind(),
        KeyKind::EcdsaP384
    );
    // A SEC1 `EC PRIVATE KEY` (written by Python's `cryptography`, TraditionalOpenSSL).
    let k = SigningKey::from_pem(&fixture("sec1-p384.pem"), None).unwrap();
    assert_eq!(k.algorithm(), KeyAlgorithm::EcdsaP384);
    assert_eq!(
        k.public_key(),
        PublicKey::from_pem(&fixture("sec1-p384.pub")).unwrap()
    );
    let e = SigningKey::from_pem(
        "-----BEGIN PUBLIC KEY-----\nAA==\n-----END PUBLIC KEY-----\n",
        None,
    )
    .unwrap_err();
    assert_eq!(e.code(), "core.key.private_invalid");
}

#[test]
fn cosign_encrypted_keys_round_trip() {
    for alg in ALGS {
        let key = SigningKey::generate(alg).unwrap();
        let pem = key.to_cosign_pem(b"s3cret").unwrap();
        assert!(pem.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----"));
        let body = pem::parse(&pem).unwrap();
        let doc: serde_json::Value = serde_json::from_slice(body.contents()).unwrap();
        assert_eq!(doc["kdf"]["name"], "scrypt");
        assert_eq!(
            doc["kdf"]["params"],
            serde_json::json!({"N": 32768, "r": 8, "p": 1})
        );
        assert_eq!(doc["cipher"]["name"], "nacl/secretbox");
        let again = SigningKey::from_pem(&pem, Some(b"s3cret")).unwrap();
        assert_eq!(again.public_key(), key.public_key());
        let e = SigningKey::from_pem(&pem, Some(b"wrong")).unwrap_err();
        assert_eq!(e.code(), "core.key.decryption");
        assert_eq!(
            SigningKey::from_pem(&pem, None).unwrap_err().code(),
            "core.key.decryption"
        );
    }
}

#[test]
fn a_key_encrypted_by_an_independent_implementation_imports() {
    // Written by scripts/fixtures/signing/cosign-key-vector.py (hashlib.scrypt + libsodium).
    let password = fixture("cosign.password");
    let public = PublicKey::from_pem(&fixture("cosign.pub")).unwrap();
    for file in ["cosign.key", "cosign-legacy.key"] {
        let key = SigningKey::from_pem(&fixture(file), Some(password.as_bytes())).unwrap();
        assert_eq!(key.public_key(), public, "{file}");
        let b = bundle::message_signature(&key, b"x").unwrap();
        verifier()
            .verify(
                Artifact::Bytes(b"x"),
                &SignatureMaterial::Bundle(b),
                &key_only(public.clone()),
                NOW,
            )
            .unwrap();
        let e = SigningKey::from_pem(&fixture(file), Some(b"nope")).unwrap_err();
        assert_eq!(e.code(), "core.key.decryption");
    }
    // One flipped ciphertext byte fails authentication before anything is decrypted.
    let block = pem::parse(fixture("cosign.key")).unwrap();
    let mut doc: serde_json::Value = serde_json::from_slice(block.contents()).unwrap();
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut ct = b64.decode(doc["ciphertext"].as_str().unwrap()).unwrap();
    let last = ct.len() - 1;
    ct[last] ^= 1;
    doc["ciphertext"] = b64.encode(ct).into();
    let e =
        cosign_key::decrypt(&serde_json::to_vec(&doc).unwrap(), password.as_bytes()).unwrap_err();
    assert_eq!(e.code(), "core.key.decryption");
}

#[test]
fn hostile_scrypt_parameters_are_refused_quickly() {
    let doc = serde_json::json!({
        "kdf": {"name": "scrypt", "params": {"N": 1u64 << 30, "r": 8, "p": 1}, "salt": "AA=="},
        "cipher": {"name": "nacl/secretbox", "nonce": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},
        "ciphertext": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    });
    let e = cosign_key::decrypt(&serde_json::to_vec(&doc).unwrap(), b"x").unwrap_err();
    assert!(e.to_string().contains("exceed"), "{e}");
    let mut d2 = doc.clone();
    d2["kdf"]["params"]["N"] = 1000.into();
    assert!(cosign_key::decrypt(&serde_json::to_vec(&d2).unwrap(), b"x").is_err());
    let mut d3 = doc;
    d3["cipher"]["name"] = "aes-gcm".into();
    assert!(
        cosign_key::decrypt(&serde_json::to_vec(&d3).unwrap(), b"x")
            .unwrap_err()
            .to_string()
            .contains("cipher")
    );
}

#[test]
fn encrypt_with_fixed_salt_and_nonce_is_deterministic_and_decrypts() {
    let p = cosign_key::ScryptParams {
        n: 1024,
        r: 8,
        p: 1,
    };
    let a = cosign_key::encrypt_with(b"secret key bytes", b"pw", p, &[7; 32], &[9; 24]).unwrap();
    let b = cosign_key::encrypt_with(b"secret key bytes", b"pw", p, &[7; 32], &[9; 24]).unwrap();
    assert_eq!(a, b);
    assert_eq!(
        &cosign_key::decrypt(&a, b"pw").unwrap()[..],
        b"secret key bytes"
    );
}
