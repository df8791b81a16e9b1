//! Sigstore trusted_root.json loading.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = provenance_core::TrustRoot::from_trusted_root_json(data);
});
