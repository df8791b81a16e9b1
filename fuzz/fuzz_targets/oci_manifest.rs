//! OCI manifests and indexes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use provenance_core::DigestAlgorithm;
use provenance_oci::types::Manifest;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Manifest::from_bytes(data.to_vec(), DigestAlgorithm::Sha256, None) {
        let _ = m.parse();
    }
});
