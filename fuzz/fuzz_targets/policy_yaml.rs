//! Policy loading from YAML (Kyverno ClusterPolicy, ValidatingPolicy, VAP, ...).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let _ = provenance_policy::admission::loader::load_policies(s, "fuzz.yaml");
});
