//! Image references: parse, and a parsed reference must print and re-parse to itself.
#![no_main]
use libfuzzer_sys::fuzz_target;
use provenance_core::ImageReference;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(r) = ImageReference::parse(s) {
        let printed = r.to_string();
        let again = ImageReference::parse(&printed).expect("a printed reference parses");
        assert_eq!(again, r, "round trip of {s:?}");
    }
    if let Ok(r) = ImageReference::parse_raw(s) {
        assert_eq!(r.to_string(), s, "raw parse prints its input");
    }
    let _ = ImageReference::parse_any(s);
    let _ = ImageReference::parse_docker_ref(s);
    let _ = provenance_core::wildcard::path_match(s, "docker.io/library/nginx");
    let _ = provenance_core::wildcard::wildcard_match(s, "docker.io/library/nginx:latest");
});
