//! DSSE envelopes, in-toto Statements and their predicates.
#![no_main]
use libfuzzer_sys::fuzz_target;
use provenance_attest::{Envelope, Limits, Predicate, Statement};

fuzz_target!(|data: &[u8]| {
    let _ = Envelope::from_json(data);
    let _ = provenance_attest::extract_envelopes(data, &Limits::default());
    if let Ok(st) = Statement::from_json(data) {
        let _ = Predicate::parse(&st.predicate_type, st.predicate.clone(), &Limits::default());
    }
});
