//! Signature material (bundles and cosign layers) through the verifier: never a panic, and
//! never a success on fuzzed input for a key the input cannot know.
#![no_main]
use std::collections::BTreeMap;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use provenance_core::verify::{
    Artifact, CosignSignature, Expectation, IdentityExpectation, PUBLIC_GOOD_TRUSTED_ROOT,
    SignatureMaterial, Verifier,
};
use provenance_core::{Digest, TrustRoot, UnixTime};

fn verifier() -> &'static Verifier {
    static V: OnceLock<Verifier> = OnceLock::new();
    V.get_or_init(|| {
        let root = TrustRoot::from_trusted_root_json(PUBLIC_GOOD_TRUSTED_ROOT).expect("embedded root");
        Verifier::new(&root).expect("verifier")
    })
}

fuzz_target!(|data: &[u8]| {
    let digest = Digest::sha256_of(b"artifact");
    let exp = Expectation::Keyless(IdentityExpectation::exact(
        "fuzz@example.com",
        "https://accounts.example.com",
    ));
    let now = UnixTime(1_800_000_000);
    let r = verifier().verify(Artifact::Digest(&digest), &SignatureMaterial::Bundle(data.to_vec()), &exp, now);
    assert!(r.is_err(), "fuzzed bundle verified");
    let mut ann = BTreeMap::new();
    let split = data.len() / 2;
    ann.insert(
        "dev.cosignproject.cosign/signature".to_owned(),
        String::from_utf8_lossy(&data[split..]).into_owned(),
    );
    let layer = SignatureMaterial::Cosign(CosignSignature::new(data[..split].to_vec(), ann));
    assert!(verifier().verify(Artifact::Digest(&digest), &layer, &exp, now).is_err());
});
