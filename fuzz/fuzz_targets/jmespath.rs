//! JMESPath with Kyverno's functions: the first line is the expression, the rest the document.
#![no_main]
use libfuzzer_sys::fuzz_target;
use provenance_policy::lang::jmespath::{Env, Expression};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let (expr, doc) = s.split_once('\n').unwrap_or((s, "{}"));
    let Ok(e) = Expression::compile(expr) else { return };
    let doc: serde_json::Value = serde_json::from_str(doc).unwrap_or(serde_json::Value::Null);
    let _ = e.search_with(&doc, &Env::at(provenance_core::UnixTime(1_800_000_000)));
});
