//! SPDX 2.x and 3.0 JSON.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = provenance_attest::spdx::SpdxDocument::from_json(data);
    let _ = provenance_attest::spdx::Spdx3Document::from_json_with(data, &Default::default());
});
