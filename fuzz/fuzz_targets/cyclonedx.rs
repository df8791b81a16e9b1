//! CycloneDX JSON and XML.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = provenance_attest::cyclonedx::Bom::from_json(data);
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = provenance_attest::cyclonedx::Bom::from_xml(s);
        let _ = provenance_attest::huggingface::HfCard::parse(s);
    }
});
