//! CEL: compile an expression and evaluate it against a fixed Pod request.
#![no_main]
use libfuzzer_sys::fuzz_target;
use provenance_policy::lang::cel::{PolicyInput, Program, RequestView};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let Ok(p) = Program::compile(s) else { return };
    let input = PolicyInput::create(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "namespace": "ml", "labels": {"a": "b"}, "annotations": {"x": "https://y"}},
        "spec": {"containers": [{"name": "c", "image": "nginx:1", "env": [{"name": "DATASET_SHA256", "value": "00"}]}]}
    }));
    let _ = p.evaluate(&RequestView::new(&input));
});
