//! Kyverno patterns: `[resource, pattern]` as JSON.
#![no_main]
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(Value::Array(v)) = serde_json::from_slice::<Value>(data) else { return };
    if v.len() == 2 {
        let _ = provenance_policy::kyverno::pattern::validate(&v[0], &v[1]);
        let _ = provenance_policy::kyverno::pattern::validate_value(&v[0], &v[1]);
        let ctx = serde_json::json!({"request": {"object": v[0].clone()}});
        let _ = provenance_policy::kyverno::variables::substitute(&v[1], &ctx, "fuzz");
        let _ = provenance_policy::kyverno::conditions::evaluate_block(&v[1], &ctx, &Default::default(), "fuzz");
    }
});
