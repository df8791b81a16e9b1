//! Model and dataset metadata: OpenSSF model-signing manifests (and the verifier's reading of
//! their serialization method), model-card predicates, Croissant dataset cards.
#![no_main]
use libfuzzer_sys::fuzz_target;
use provenance_attest::Limits;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let _ = provenance_attest::modelcard::ModelCard::from_json_with(data, &limits);
    let _ = provenance_attest::croissant::CroissantDataset::from_json_with(data, &limits);
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    if let Ok(m) = provenance_attest::modelsigning::ModelSigningManifest::from_value(&value, &limits) {
        let _ = m.root_digest();
        let _ = provenance_oci::model::Method::from_manifest(&m);
    }
});
