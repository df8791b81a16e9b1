//! Digests: parse, print, re-parse.
#![no_main]
use libfuzzer_sys::fuzz_target;
use provenance_core::Digest;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(d) = Digest::parse(s) {
        assert_eq!(d.to_string(), s);
        assert!(d.verify(data).is_ok() == (Digest::compute(d.algorithm(), data) == d));
    }
    let _ = provenance_core::UnixTime::parse_rfc3339(s);
    let _ = provenance_core::PublicKey::all_from_pem(s);
    let _ = provenance_core::PublicKey::from_spki_der(data);
});
