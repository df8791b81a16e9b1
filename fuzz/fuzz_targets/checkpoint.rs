//! Transparency-log checkpoints (signed notes) inside a real keyless bundle: the fuzzed bytes
//! replace the inclusion proof's checkpoint; verification must never panic and never pass.
#![no_main]
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use provenance_core::verify::{Artifact, Expectation, IdentityExpectation, SignatureMaterial, Verifier};
use provenance_core::{Digest, TrustRoot, UnixTime};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../provenance-core/tests/fixtures/sigstore/keyless-dsse/");

struct Fixture {
    verifier: Verifier,
    bundle: serde_json::Value,
    digest: Digest,
    expectation: Expectation,
    now: UnixTime,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let read = |f: &str| std::fs::read(format!("{DIR}{f}")).expect("fixture");
        let root = TrustRoot::from_trusted_root_json(&read("trusted_root.json")).expect("root");
        let expect: serde_json::Value = serde_json::from_slice(&read("expect.json")).expect("expect");
        Fixture {
            verifier: Verifier::new(&root).expect("verifier"),
            bundle: serde_json::from_slice(&read("bundle.sigstore.json")).expect("bundle"),
            digest: Digest::sha256_of(&read("artifact")),
            expectation: Expectation::Keyless(IdentityExpectation::exact(
                expect["identity"].as_str().unwrap_or_default(),
                expect["issuer"].as_str().unwrap_or_default(),
            )),
            now: UnixTime(expect["now"].as_i64().unwrap_or_default()),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut bundle = f.bundle.clone();
    let Some(cp) = bundle.pointer_mut("/verificationMaterial/tlogEntries/0/inclusionProof/checkpoint/envelope") else {
        return;
    };
    if cp.as_str() == Some(text) {
        return; // the original checkpoint verifies, as it should
    }
    *cp = serde_json::Value::String(text.to_owned());
    let bytes = serde_json::to_vec(&bundle).unwrap_or_default();
    let r = f.verifier.verify(
        Artifact::Digest(&f.digest),
        &SignatureMaterial::Bundle(bytes),
        &f.expectation,
        f.now,
    );
    // An inclusion promise (SET) may still carry the entry, so a pass is possible only when
    // the fuzzed checkpoint is one the log really signed; a forged one must fail.
    if r.is_ok() {
        assert!(
            text.contains("rekor.provenance.test"),
            "a checkpoint from nowhere was accepted"
        );
    }
});
