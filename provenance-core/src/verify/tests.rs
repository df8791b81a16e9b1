#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self as sig, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::*;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sigstore");

fn key_only_bundle(spki: &[u8], signature: &[u8], artifact: &[u8]) -> (PublicKey, Vec<u8>) {
    let bundle = serde_json::json!({
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": { "publicKey": { "hint": "k" } },
        "messageSignature": {
            "messageDigest": {
                "algorithm": "SHA2_256",
                "digest": STANDARD.encode(Digest::sha256_of(artifact).as_bytes()),
            },
            "signature": STANDARD.encode(signature),
        },
    });
    (
        PublicKey::from_spki_der(spki).unwrap(),
        serde_json::to_vec(&bundle).unwrap(),
    )
}

fn check_key_only(name: &str, key: PublicKey, bundle: Vec<u8>, artifact: &[u8]) {
    let verifier = Verifier::new(&TrustRoot::default()).unwrap();
    let material = SignatureMaterial::Bundle(bundle);
    let allow = Expectation::Key {
        key: key.clone(),
        allow_no_transparency: true,
    };
    let v = verifier
        .verify(Artifact::Bytes(artifact), &material, &allow, UnixTime(0))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(!v.transparency_verified);
    // Without the dangerous switch, the same material is refused.
    let e = verifier
        .verify(
            Artifact::Bytes(artifact),
            &material,
            &Expectation::key(key.clone()),
            UnixTime(0),
        )
        .unwrap_err();
    assert_eq!(e.code(), "verify.tlog.missing", "{name}");
    // Another artifact is refused.
    let e = verifier
        .verify(Artifact::Bytes(b"other"), &material, &allow, UnixTime(0))
        .unwrap_err();
    assert_eq!(e.code(), "verify.artifact.mismatch", "{name}");
}

#[test]
fn key_algorithms() {
    let rng = SystemRandom::new();
    let artifact = b"model weights";
    for (name, alg) in [
        ("p256", &sig::ECDSA_P256_SHA256_ASN1_SIGNING),
        ("p384", &sig::ECDSA_P384_SHA384_ASN1_SIGNING),
        ("p521", &sig::ECDSA_P521_SHA512_ASN1_SIGNING),
    ] {
        let kp = EcdsaKeyPair::generate(alg).unwrap();
        let s = kp.sign(&rng, artifact).unwrap();
        let spki = kp.public_key().as_der().unwrap();
        let (key, bundle) = key_only_bundle(spki.as_ref(), s.as_ref(), artifact);
        check_key_only(name, key, bundle, artifact);
    }
    let kp = Ed25519KeyPair::generate().unwrap();
    let s = kp.sign(artifact);
    let spki = kp.public_key().as_der().unwrap();
    let (key, bundle) = key_only_bundle(spki.as_ref(), s.as_ref(), artifact);
    check_key_only("ed25519", key, bundle, artifact);

    let kp = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let spki = kp.public_key().as_der().unwrap();
    for (name, pad) in [
        (
            "rsa-pkcs1",
            &sig::RSA_PKCS1_SHA256 as &'static dyn sig::RsaEncoding,
        ),
        ("rsa-pss", &sig::RSA_PSS_SHA256),
    ] {
        let mut s = vec![0; kp.public_modulus_len()];
        kp.sign(pad, &rng, artifact, &mut s).unwrap();
        let (key, bundle) = key_only_bundle(spki.as_ref(), &s, artifact);
        check_key_only(name, key, bundle, artifact);
    }
}

#[test]
fn key_only_against_a_digest() {
    let rng = SystemRandom::new();
    let kp = EcdsaKeyPair::generate(&sig::ECDSA_P256_SHA256_ASN1_SIGNING).unwrap();
    let artifact = b"a large model, hashed elsewhere";
    let s = kp.sign(&rng, artifact).unwrap();
    let (key, bundle) = key_only_bundle(
        kp.public_key().as_der().unwrap().as_ref(),
        s.as_ref(),
        artifact,
    );
    let verifier = Verifier::new(&TrustRoot::default()).unwrap();
    let exp = Expectation::Key {
        key,
        allow_no_transparency: true,
    };
    let d = Digest::sha256_of(artifact);
    verifier
        .verify(
            Artifact::Digest(&d),
            &SignatureMaterial::Bundle(bundle.clone()),
            &exp,
            UnixTime(0),
        )
        .unwrap();
    let other = Digest::sha256_of(b"x");
    let e = verifier
        .verify(
            Artifact::Digest(&other),
            &SignatureMaterial::Bundle(bundle),
            &exp,
            UnixTime(0),
        )
        .unwrap_err();
    assert_eq!(e.code(), "verify.artifact.mismatch");
}

fn fixture_cert() -> Vec<u8> {
    let b: serde_json::Value = serde_json::from_slice(
        &std::fs::read(format!("{FIXTURES}/keyless-msg-v0.3/bundle.sigstore.json")).unwrap(),
    )
    .unwrap();
    STANDARD
        .decode(
            b["verificationMaterial"]["certificate"]["rawBytes"]
                .as_str()
                .unwrap(),
        )
        .unwrap()
}

#[test]
fn certificate_identity_and_kyverno_expectations() {
    let id = CertificateIdentity::from_der(&fixture_cert()).unwrap();
    let subject = "https://github.com/acme/model/.github/workflows/release.yml@refs/heads/main";
    let issuer = "https://token.actions.githubusercontent.com";
    assert_eq!(id.subject(), Some(subject));
    assert_eq!(id.issuer.as_deref(), Some(issuer));
    assert_eq!(id.extension("githubWorkflowRepository"), Some("acme/model"));
    assert_eq!(id.extension("githubWorkflowTrigger"), Some("push"));
    assert_eq!(id.extension("1.3.6.1.4.1.57264.1.8"), Some(issuer));
    assert_eq!(id.extension("oidcIssuer"), Some(issuer));

    let ok = |e: IdentityExpectation| e.compile().unwrap().check(&id);
    let code = |e: IdentityExpectation| match e.compile().and_then(|c| c.check(&id)) {
        Ok(()) => "ok".to_owned(),
        Err(e) => e.code().to_owned(),
    };
    ok(IdentityExpectation::exact(subject, issuer)).unwrap();
    // Kyverno's `subject` is a wildcard pattern; extension values too, and empty means "present".
    ok(IdentityExpectation {
        subject: Some("https://github.com/acme/*@refs/heads/main".into()),
        issuer: Some(issuer.into()),
        additional_extensions: BTreeMap::from([
            ("githubWorkflowRepository".into(), "acme/*".into()),
            ("githubWorkflowSha".into(), String::new()),
        ]),
        ..Default::default()
    })
    .unwrap();
    // `exact` has no wildcards.
    assert_eq!(
        code(IdentityExpectation::exact(
            "https://github.com/acme/*@refs/heads/main",
            issuer
        )),
        "verify.identity.subject"
    );
    ok(IdentityExpectation {
        subject_regexp: Some(r"^https://github\.com/acme/.*@refs/heads/main$".into()),
        issuer_regexp: Some(r"githubusercontent\.com$".into()),
        additional_extensions: BTreeMap::from([
            ("githubWorkflowRepository".into(), "acme/model".into()),
            ("githubWorkflowTrigger".into(), "push".into()),
            ("1.3.6.1.4.1.57264.1.8".into(), issuer.into()),
        ]),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(
        code(IdentityExpectation::exact(
            "https://github.com/acme/other/.github/workflows/release.yml@refs/heads/main",
            issuer
        )),
        "verify.identity.subject"
    );
    assert_eq!(
        code(IdentityExpectation::exact(
            subject,
            "https://accounts.google.com"
        )),
        "verify.identity.issuer"
    );
    assert_eq!(
        code(IdentityExpectation {
            additional_extensions: BTreeMap::from([(
                "githubWorkflowRepository".into(),
                "acme/other".into()
            )]),
            ..IdentityExpectation::exact(subject, issuer)
        }),
        "verify.identity.extension"
    );
    assert_eq!(
        code(IdentityExpectation {
            additional_extensions: BTreeMap::from([("noSuchExtension".into(), "x".into())]),
            ..IdentityExpectation::exact(subject, issuer)
        }),
        "verify.expectation.invalid"
    );
    // An expectation that would accept anyone is refused.
    assert_eq!(
        code(IdentityExpectation {
            issuer: Some(issuer.into()),
            ..Default::default()
        }),
        "verify.expectation.invalid"
    );
    assert_eq!(
        code(IdentityExpectation {
            subject_regexp: Some("(".into()),
            issuer: Some(issuer.into()),
            ..Default::default()
        }),
        "verify.expectation.invalid"
    );
}

#[test]
fn cosign_payload_names_the_image() {
    let digest = Digest::sha256_of(b"manifest");
    let payload = |d: &str, ty: &str| {
        format!(
            r#"{{"critical":{{"identity":{{"docker-reference":"r/x"}},"image":{{"docker-manifest-digest":"{d}"}},"type":"{ty}"}},"optional":null}}"#
        )
    };
    let rng = SystemRandom::new();
    let kp = EcdsaKeyPair::generate(&sig::ECDSA_P256_SHA256_ASN1_SIGNING).unwrap();
    let key = PublicKey::from_spki_der(kp.public_key().as_der().unwrap().as_ref()).unwrap();
    let verifier = Verifier::new(&TrustRoot::default()).unwrap();
    let exp = Expectation::Key {
        key,
        allow_no_transparency: true,
    };
    let run = |p: String| {
        let s = kp.sign(&rng, p.as_bytes()).unwrap();
        let layer = CosignSignature::new(
            p.into_bytes(),
            BTreeMap::from([(ANNOTATION_SIGNATURE.to_owned(), STANDARD.encode(s.as_ref()))]),
        );
        match verifier.verify(
            Artifact::Digest(&digest),
            &SignatureMaterial::Cosign(layer),
            &exp,
            UnixTime(0),
        ) {
            Ok(_) => "ok".to_owned(),
            Err(e) => e.code().to_owned(),
        }
    };
    assert_eq!(
        run(payload(
            &digest.to_string(),
            "cosign container image signature"
        )),
        "ok"
    );
    assert_eq!(
        run(payload(
            &Digest::sha256_of(b"other").to_string(),
            "cosign container image signature"
        )),
        "verify.cosign.image_digest_mismatch"
    );
    assert_eq!(
        run(payload(&digest.to_string(), "something else")),
        "verify.cosign.payload_invalid"
    );
}

#[test]
fn pae_matches_the_dsse_spec() {
    assert_eq!(
        pae("http://example.com/HelloWorld", b"hello world"),
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
    );
}

#[test]
fn verifier_is_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Verifier>();
    assert_send_sync::<Verified>();
    assert_send_sync::<SignatureMaterial>();
    assert_send_sync::<Expectation>();
}

#[test]
fn trust_root_built_in_code_verifies_like_its_json() {
    let dir = format!("{FIXTURES}/keyless-msg-v0.3");
    let read = |n: &str| std::fs::read(format!("{dir}/{n}")).unwrap();
    let expect: serde_json::Value = serde_json::from_slice(&read("expect.json")).unwrap();
    let mut root = TrustRoot::from_trusted_root_json(&read("trusted_root.json")).unwrap();
    root.source_json = None; // as if assembled in code: the verifier writes its own JSON
    let verifier = Verifier::new(&root).unwrap();
    let exp = Expectation::Keyless(IdentityExpectation::exact(
        expect["identity"].as_str().unwrap(),
        expect["issuer"].as_str().unwrap(),
    ));
    let artifact = read("artifact");
    let now = UnixTime(expect["now"].as_i64().unwrap());
    let material = SignatureMaterial::Bundle(read("bundle.sigstore.json"));
    let v = verifier
        .verify(Artifact::Bytes(&artifact), &material, &exp, now)
        .unwrap();
    assert!(v.transparency_verified);
    assert!(v.integrated_time.is_some());
    // `now` before the signature: refused.
    let e = verifier
        .verify(
            Artifact::Bytes(&artifact),
            &material,
            &exp,
            UnixTime(v.integrated_time.unwrap().0 - 1),
        )
        .unwrap_err();
    assert!(e.code().starts_with("verify."), "{e}");
    // Without its CAs and logs, nothing verifies.
    let empty = Verifier::new(&TrustRoot::default()).unwrap();
    assert!(
        empty
            .verify(Artifact::Bytes(&artifact), &material, &exp, now)
            .is_err()
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

    /// Arbitrary bytes as a bundle, a cosign payload or annotations never panic and never verify.
    #[test]
    fn arbitrary_material_is_rejected_without_panicking(
        bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512),
        text in ".{0,256}",
    ) {
        let verifier = Verifier::new(&TrustRoot::default()).unwrap();
        let kp = EcdsaKeyPair::generate(&sig::ECDSA_P256_SHA256_ASN1_SIGNING).unwrap();
        let key = PublicKey::from_spki_der(kp.public_key().as_der().unwrap().as_ref()).unwrap();
        let exp = Expectation::Key { key, allow_no_transparency: true };
        let d = Digest::sha256_of(&bytes);
        for material in [
            SignatureMaterial::Bundle(bytes.clone()),
            SignatureMaterial::Bundle(text.clone().into_bytes()),
            SignatureMaterial::Cosign(CosignSignature::new(
                bytes.clone(),
                BTreeMap::from([
                    (ANNOTATION_SIGNATURE.to_owned(), text.clone()),
                    (ANNOTATION_BUNDLE.to_owned(), text.clone()),
                ]),
            )),
        ] {
            proptest::prop_assert!(verifier
                .verify(Artifact::Digest(&d), &material, &exp, UnixTime(0))
                .is_err());
        }
    }
}

#[test]
fn a_dsse_signature_with_a_null_keyid_verifies_and_the_keyid_is_not_signed() {
    use crate::sign::{KeyAlgorithm, SigningKey, bundle};
    let key = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let digest = Digest::sha256_of(b"model root");
    let statement = serde_json::json!({"_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "model", "digest": {"sha256": digest.hex()}}],
        "predicateType": "https://model_signing/signature/v1.0", "predicate": {}});
    let json = bundle::dsse(
        &key,
        "application/vnd.in-toto+json",
        &serde_json::to_vec(&statement).unwrap(),
    )
    .unwrap();
    let verifier = Verifier::new(&TrustRoot::default()).unwrap();
    let exp = Expectation::Key {
        key: key.public_key(),
        allow_no_transparency: true,
    };
    let with_keyid = |keyid: serde_json::Value| {
        let mut b: serde_json::Value = serde_json::from_slice(&json).unwrap();
        b["dsseEnvelope"]["signatures"][0]["keyid"] = keyid;
        SignatureMaterial::Bundle(serde_json::to_vec(&b).unwrap())
    };
    // As model_signing before 1.0.2 writes it, and any other hint: the same verdict.
    for keyid in [serde_json::Value::Null, serde_json::json!("any hint")] {
        verifier
            .verify_attestation(&digest, &with_keyid(keyid.clone()), &exp, UnixTime(0))
            .unwrap_or_else(|e| panic!("keyid {keyid}: {e}"));
    }
    // A non-string keyid is still malformed.
    let e = verifier
        .verify_attestation(
            &digest,
            &with_keyid(serde_json::json!(7)),
            &exp,
            UnixTime(0),
        )
        .unwrap_err();
    assert_eq!(e.code(), "verify.material.malformed", "{e}");
}

#[test]
fn identity_regexes_have_go_meaning_of_shorthand_classes() {
    let cache = identity::RegexCache::default();
    let re = cache.get(r"^\w+@example\.com$").unwrap();
    assert!(re.is_match("ml_team@example.com"));
    // Full-width letters are `\w` in Rust's Unicode classes, not in Go's.
    assert!(!re.is_match("ｍｌ@example.com"));
}

#[test]
fn the_memo_remembers_failures_briefly_and_apart_from_successes() {
    let kp = EcdsaKeyPair::generate(&sig::ECDSA_P256_SHA256_ASN1_SIGNING).unwrap();
    let artifact = b"model weights";
    let s = kp.sign(&SystemRandom::new(), artifact).unwrap();
    let spki = kp.public_key().as_der().unwrap();
    let (key, good) = key_only_bundle(spki.as_ref(), s.as_ref(), artifact);
    let exp = Expectation::Key {
        key,
        allow_no_transparency: true,
    };
    let verifier = Verifier::new(&TrustRoot::default())
        .unwrap()
        .with_memo(4, 3600);
    let junk = |i: u8| {
        let (_, b) = key_only_bundle(spki.as_ref(), &[i; 64], artifact);
        SignatureMaterial::Bundle(b)
    };
    let at = UnixTime(1_000);
    let first = verifier
        .verify(Artifact::Bytes(artifact), &junk(1), &exp, at)
        .unwrap_err();
    assert_eq!(
        verifier.remembered(),
        Remembered {
            successes: 0,
            failures: 1
        }
    );
    // Served from the memo inside the window: the same error, nothing new remembered.
    let again = verifier
        .verify(Artifact::Bytes(artifact), &junk(1), &exp, UnixTime(1_010))
        .unwrap_err();
    assert_eq!(first, again);
    assert_eq!(verifier.remembered().failures, 1);
    // A remembered failure never touches another material: the good one passes.
    let good = SignatureMaterial::Bundle(good);
    verifier
        .verify(Artifact::Bytes(artifact), &good, &exp, at)
        .unwrap();
    assert_eq!(verifier.remembered().successes, 1);
    // Flooding the failure map (capacity 4) never evicts the remembered success.
    for i in 2..20 {
        verifier
            .verify(Artifact::Bytes(artifact), &junk(i), &exp, at)
            .unwrap_err();
    }
    let r = verifier.remembered();
    assert_eq!(r.successes, 1);
    assert!(r.failures <= 4, "{r:?}");
    // Past the negative window the failure is verified again (and still fails).
    let later = UnixTime(at.0 + NEGATIVE_MEMO_SECONDS);
    let e = verifier
        .verify(Artifact::Bytes(artifact), &junk(1), &exp, later)
        .unwrap_err();
    assert_eq!(e.code(), first.code());
    // Without a memo nothing is remembered.
    let plain = Verifier::new(&TrustRoot::default()).unwrap();
    plain
        .verify(Artifact::Bytes(artifact), &junk(1), &exp, at)
        .unwrap_err();
    assert_eq!(plain.remembered(), Remembered::default());
}

#[test]
fn the_claimed_statement_is_read_from_either_dsse_carrier_and_nothing_else() {
    let statement = serde_json::json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "x", "digest": {"sha256": "ab"}}],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {}
    });
    let envelope = serde_json::json!({
        "payloadType": "application/vnd.in-toto+json",
        "payload": STANDARD.encode(statement.to_string()),
        "signatures": []
    });
    let bundle = serde_json::json!({"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "dsseEnvelope": envelope});
    let from_bundle = SignatureMaterial::Bundle(bundle.to_string().into_bytes());
    assert_eq!(from_bundle.claimed_statement(), Some(statement.clone()));
    assert_eq!(
        from_bundle.claimed_predicate_type().as_deref(),
        Some("https://slsa.dev/provenance/v1")
    );
    let layer = SignatureMaterial::Cosign(CosignSignature::new(
        envelope.to_string().into_bytes(),
        Default::default(),
    ));
    assert_eq!(layer.claimed_statement(), Some(statement));
    // A message signature, a simple-signing layer, a payload that is not JSON: no statement.
    let message = serde_json::json!({"messageSignature": {"signature": "AA=="}});
    assert_eq!(
        SignatureMaterial::Bundle(message.to_string().into_bytes()).claimed_statement(),
        None
    );
    let simple = serde_json::json!({"critical": {"type": "cosign container image signature"}});
    assert_eq!(
        SignatureMaterial::Cosign(CosignSignature::new(
            simple.to_string().into_bytes(),
            Default::default()
        ))
        .claimed_statement(),
        None
    );
    let not_json = serde_json::json!({"dsseEnvelope": {"payload": STANDARD.encode("not json")}});
    assert_eq!(
        SignatureMaterial::Bundle(not_json.to_string().into_bytes()).claimed_predicate_type(),
        None
    );
}
