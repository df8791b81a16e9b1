//! Mutate patches: `[resource, patchStrategicMerge, patchesJson6902 ops]` as JSON. The
//! strategic merge (with Kyverno's anchors) and the RFC 6902 operations must never panic,
//! and the JSONPatch the admission answer carries (`json_patch::diff`) must turn the
//! submitted object into the mutated one exactly.
#![no_main]
use libfuzzer_sys::fuzz_target;
use provenance_policy::kyverno::mutate::{json_patch, strategic};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(Value::Array(v)) = serde_json::from_slice::<Value>(data) else { return };
    if v.len() != 3 {
        return;
    }
    let resource = &v[0];
    if let Ok(Some(merged)) = strategic::apply(resource, &v[1]) {
        let diff = json_patch::diff(resource, &merged);
        let replayed = json_patch::apply(resource, &diff, "fuzz").expect("a diff applies");
        assert_eq!(replayed, merged, "the diff reproduces the merge");
    }
    if let Value::Array(ops) = &v[2]
        && let Ok(patched) = json_patch::apply(resource, ops, "fuzz")
    {
        let diff = json_patch::diff(resource, &patched);
        let replayed = json_patch::apply(resource, &diff, "fuzz").expect("a diff applies");
        assert_eq!(replayed, patched, "the diff reproduces the patch");
    }
});
