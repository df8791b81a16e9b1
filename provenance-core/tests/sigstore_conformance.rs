//! The Sigstore bundle-verification conformance cases in `../shared/corpora/sigstore-conformance`:
//! every `_fail` case must be rejected by the expected check, every other case accepted.
//! Prints a per-case table.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::{Path, PathBuf};

use provenance_core::verify::{
    Artifact, Expectation, IdentityExpectation, SignatureMaterial, Verifier,
};
use provenance_core::{PublicKey, TrustRoot, UnixTime};

#[path = "fixtures/common.rs"]
mod common;
use common::*;

/// The checks an expected-failure case may be rejected by: the reason its README gives.
fn expected_codes(case: &str) -> &'static [&'static str] {
    match case {
        "bundle-empty-certificate-chain_fail" => &["verify.material.malformed"],
        "bundle-invalid-base64-signature_fail" => &["verify.material.malformed"],
        "bundle-negative-log-index_fail" => &["verify.tlog.malformed", "verify.material.malformed"],
        "bundle-with-root-cert_fail" => &["verify.material.malformed", "verify.certificate.chain"],
        "checkpoint-bad-keyhint_fail" => &["verify.tlog.checkpoint"],
        "dsse-invalid-sig_fail" => &["verify.signature.invalid"],
        "dsse-mismatch-sig_fail" => &["verify.tlog.entry_mismatch"],
        "inclusion-proof-corrupted-hash_fail" => &["verify.tlog.inclusion_proof"],
        // The README: "not within signing certificate validity".
        "integrated-time-in-future_fail" => {
            &["verify.tlog.integrated_time", "verify.certificate.validity"]
        }
        // The entry's envelope signature is not encoded as Rekor's intoto 0.0.2 bodies encode
        // it, so the body cannot describe this bundle's signature.
        "intoto-log-entry-mismatch_fail" => {
            &["verify.tlog.entry_mismatch", "verify.tlog.malformed"]
        }
        "intoto-set-outside-signing-cert-validity_fail" => {
            &["verify.tlog.integrated_time", "verify.certificate.validity"]
        }
        "invalid-ct-key_fail" => &["verify.certificate.sct", "verify.trust_root.invalid"],
        "managed-key-no-key_fail" => &["verify.material.kind_mismatch"],
        "message-digest-mismatch_fail" => &["verify.artifact.mismatch"],
        "rekor2-checkpoint-missing-log-signature_fail" => &["verify.tlog.checkpoint"],
        "rekor2-checkpoint-missing-root-hash_fail" => {
            &["verify.tlog.checkpoint", "verify.tlog.inclusion_proof"]
        }
        "rekor2-dsse-invalid-sig_fail" => &["verify.signature.invalid"],
        "rekor2-dsse-mismatch-sig_fail" => &["verify.tlog.entry_mismatch"],
        "rekor2-no-inclusion-proof_fail" => &["verify.tlog.inclusion_proof"],
        "rekor2-timestamp-outside-trust-root-tsa-validity_fail" => &[
            "verify.timestamp.authority_validity",
            "verify.timestamp.invalid",
        ],
        "rekor2-timestamp-payload-mismatch_fail" => &["verify.timestamp.invalid"],
        "rekor2-timestamp-untrusted-tsa-without-embedded-cert_fail" => {
            &["verify.timestamp.invalid"]
        }
        "signature-mismatch_fail" => &["verify.signature.invalid", "verify.tlog.entry_mismatch"],
        // The bundle's messageDigest names the supplied artifact, but the logged hashedrekord
        // (and the signature) are over another one: the first check to see it is the entry.
        "wrong-hashedrekord-artifact_fail" => &[
            "verify.artifact.mismatch",
            "verify.tlog.entry_mismatch",
            "verify.signature.invalid",
        ],
        "wrong-hashedrekord-entry_fail" => &["verify.tlog.entry_mismatch"],
        _ => &[],
    }
}

/// Runs one case; returns the outcome as `Ok(summary)` or `Err(code: message)`.
fn run_case(dir: &Path, root_dir: &Path, now: UnixTime) -> Result<String, (String, String)> {
    let root_json = std::fs::read(dir.join("trusted_root.json"))
        .unwrap_or_else(|_| std::fs::read(root_dir.join("production-trusted_root.json")).unwrap());
    let err = |e: provenance_core::Error| (e.code().to_owned(), e.to_string());
    let root = TrustRoot::from_trusted_root_json(&root_json).map_err(err)?;
    let verifier = Verifier::new(&root).map_err(err)?;
    let artifact = std::fs::read(dir.join("artifact"))
        .unwrap_or_else(|_| std::fs::read(root_dir.join("a.txt")).unwrap());
    let bundle = std::fs::read(dir.join("bundle.sigstore.json")).unwrap();
    let expectation = match read_opt(&dir.join("key.pub")) {
        Some(pem) => Expectation::key(PublicKey::from_pem(&pem).map_err(err)?),
        None => Expectation::Keyless(IdentityExpectation::exact(
            read_opt(&dir.join("identity")).unwrap_or_else(|| DEFAULT_IDENTITY.into()),
            read_opt(&dir.join("issuer")).unwrap_or_else(|| DEFAULT_ISSUER.into()),
        )),
    };
    let v = verifier
        .verify(
            Artifact::Bytes(&artifact),
            &SignatureMaterial::Bundle(bundle),
            &expectation,
            now,
        )
        .map_err(err)?;
    Ok(format!(
        "log_index={:?} integrated_time={:?} times={}",
        v.log_index,
        v.integrated_time.map(|t| t.to_string()),
        v.verified_times.len()
    ))
}

#[test]
fn sigstore_conformance() {
    let Some(shared) = shared() else { return };
    let root_dir = shared.join("corpora/sigstore-conformance");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&root_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("bundle.sigstore.json").is_file())
        .collect();
    cases.sort();
    assert!(
        !cases.is_empty(),
        "no conformance cases in {}",
        root_dir.display()
    );
    let now = system_now();
    let (mut pass, mut fail) = (0, Vec::new());
    println!("{:<62} {:<7} {:<7} detail", "case", "expect", "result");
    for dir in &cases {
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let should_fail = name.ends_with("_fail");
        let out = run_case(dir, &root_dir, now);
        let (ok, detail) = match (&out, should_fail) {
            (Ok(s), false) => (true, s.clone()),
            (Ok(s), true) => (false, format!("ACCEPTED a bad bundle: {s}")),
            (Err((code, msg)), true) => {
                let want = expected_codes(&name);
                if want.contains(&code.as_str()) {
                    (true, code.to_string())
                } else {
                    (false, format!("wrong reason {code} (want {want:?}): {msg}"))
                }
            }
            (Err((code, msg)), false) => (false, format!("REJECTED {code}: {msg}")),
        };
        println!(
            "{:<62} {:<7} {:<7} {}",
            name,
            if should_fail { "reject" } else { "accept" },
            if ok { "ok" } else { "WRONG" },
            detail.chars().take(400).collect::<String>()
        );
        if ok {
            pass += 1;
        } else {
            fail.push(name);
        }
    }
    println!(
        "\nconformance: {pass}/{} correct ({} accept cases, {} reject cases)",
        cases.len(),
        cases
            .iter()
            .filter(|c| !c.to_string_lossy().ends_with("_fail"))
            .count(),
        cases
            .iter()
            .filter(|c| c.to_string_lossy().ends_with("_fail"))
            .count()
    );
    assert!(fail.is_empty(), "conformance failures: {fail:?}");
}

/// The project's own fixtures (real `@sigstore/sign` + `@sigstore/mock` output, a local key,
/// cosign layers) all verify; and each is refused without its trust root, after its
/// certificate expired (keyless), and with transparency required (key-only).
#[test]
fn own_fixtures() {
    let fixtures = load_fixtures();
    assert!(fixtures.len() >= 10, "fixtures missing");
    println!("{:<34} {:<8} detail", "fixture", "result");
    for f in &fixtures {
        let verifier = Verifier::new(&f.root).unwrap();
        let v = f.verify_with(&verifier, &f.material);
        match &v {
            Ok(v) => println!(
                "{:<34} {:<8} signer={} log_index={:?} times={} transparency={}",
                f.name,
                "ok",
                match &v.signer {
                    provenance_core::verify::Signer::Key { key_id, .. } => format!("key {key_id}"),
                    provenance_core::verify::Signer::Certificate(c) =>
                        format!("{} via {:?}", c.subject().unwrap_or("?"), c.issuer),
                    _ => "?".into(),
                },
                v.log_index,
                v.verified_times.len(),
                v.transparency_verified
            ),
            Err(e) => println!("{:<34} {:<8} {} {e}", f.name, "FAILED", e.code()),
        }
        assert!(v.is_ok(), "{}: {:?}", f.name, v.err());
        // The public-good root does not trust the mock CA, Rekor or TSA.
        let public = Verifier::new(
            &TrustRoot::from_trusted_root_json(provenance_core::verify::PUBLIC_GOOD_TRUSTED_ROOT)
                .unwrap(),
        )
        .unwrap();
        let key_only = matches!(
            f.expectation,
            Expectation::Key {
                allow_no_transparency: true,
                ..
            }
        );
        if !key_only {
            assert!(
                f.verify_with(&public, &f.material).is_err(),
                "{}: wrong root accepted",
                f.name
            );
        }
        match &f.expectation {
            Expectation::Keyless(_) => {
                // A day later the certificate has long expired, but the signature was made
                // while it was valid: still verifies. A day *earlier* nothing is valid yet.
                let early = verifier.verify(
                    match &f.image_digest {
                        Some(d) => Artifact::Digest(d),
                        None => Artifact::Bytes(&f.artifact),
                    },
                    &f.material,
                    &f.expectation,
                    UnixTime(f.now.0 - 86_400),
                );
                assert!(early.is_err(), "{}: verified before it was signed", f.name);
            }
            Expectation::Key {
                key,
                allow_no_transparency: true,
            } => {
                let strict = Expectation::key(key.clone());
                let artifact = match &f.image_digest {
                    Some(d) => Artifact::Digest(d),
                    None => Artifact::Bytes(&f.artifact),
                };
                let e = verifier
                    .verify(artifact, &f.material, &strict, f.now)
                    .unwrap_err();
                assert_eq!(e.code(), "verify.tlog.missing", "{}", f.name);
            }
            _ => {}
        }
    }
}

/// A real cosign attestation layer (`.att`, DSSE envelope with a SLSA provenance, Fulcio
/// certificate, Rekor SET with a dsse 0.0.1 body) written by slsa-github-generator, from the
/// shared predicates corpus (`oci-cosign-layout`): verified against the public-good root,
/// the in-toto subject bound to the image digest, Kyverno-style identity with extensions.
#[test]
fn real_cosign_attestation_layer() {
    use std::collections::BTreeMap;
    let Some(shared) = shared() else { return };
    let dir = shared.join("corpora/predicates/oci-cosign-layout");
    let blob = |d: &str| std::fs::read(dir.join("layout/blobs/sha256").join(d)).unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&blob(
        "31cc4fb663c8d34e2e6a0bd5f183d576c2811ee286e0998b4c2965e3b35a0d86",
    ))
    .unwrap();
    let layer = &manifest["layers"][0];
    assert_eq!(layer["mediaType"], "application/vnd.dsse.envelope.v1+json");
    let annotations: BTreeMap<String, String> = layer["annotations"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect();
    let payload = blob(
        layer["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:"),
    );
    let image = provenance_core::Digest::parse(
        std::fs::read_to_string(dir.join("layout.digest"))
            .unwrap()
            .trim(),
    )
    .unwrap();
    let root = TrustRoot::from_trusted_root_json(provenance_core::verify::PUBLIC_GOOD_TRUSTED_ROOT)
        .unwrap();
    let verifier = Verifier::new(&root).unwrap();
    let material =
        SignatureMaterial::Cosign(provenance_core::CosignSignature::new(payload, annotations));
    let expectation = Expectation::Keyless(IdentityExpectation {
        subject: Some(
            "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/generator_container_slsa3.yml@refs/tags/v*".into(),
        ),
        issuer: Some(DEFAULT_ISSUER.into()),
        additional_extensions: BTreeMap::from([(
            "githubWorkflowRepository".into(),
            "slsa-framework/example-package".into(),
        )]),
        ..Default::default()
    });
    let now = UnixTime::parse_rfc3339("2026-01-01T00:00:00Z").unwrap();
    let v = verifier
        .verify(Artifact::Digest(&image), &material, &expectation, now)
        .unwrap();
    println!(
        "real cosign attestation: log index {:?}, integrated {:?}, payload {}",
        v.log_index,
        v.integrated_time.map(|t| t.to_string()),
        v.payload.as_ref().map_or("", |p| p.0.as_str())
    );
    assert_eq!(v.log_index, Some(80008005));
    assert_eq!(
        v.payload.as_ref().map(|p| p.0.as_str()),
        Some("application/vnd.in-toto+json")
    );
    // Another image, another repository, or a time before it was logged: refused.
    let other = provenance_core::Digest::sha256_of(b"other image");
    let e = verifier
        .verify(Artifact::Digest(&other), &material, &expectation, now)
        .unwrap_err();
    assert_eq!(e.code(), "verify.cosign.image_digest_mismatch");
    let Expectation::Keyless(mut id) = expectation.clone() else {
        unreachable!()
    };
    id.additional_extensions
        .insert("githubWorkflowRepository".into(), "evil/fork".into());
    let e = verifier
        .verify(
            Artifact::Digest(&image),
            &material,
            &Expectation::Keyless(id),
            now,
        )
        .unwrap_err();
    assert_eq!(e.code(), "verify.identity.extension");
    let e = verifier
        .verify(
            Artifact::Digest(&image),
            &material,
            &expectation,
            UnixTime::parse_rfc3339("2024-01-01T00:00:00Z").unwrap(),
        )
        .unwrap_err();
    assert!(e.code().starts_with("verify."), "{e}");
}
