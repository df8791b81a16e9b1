//! Kyverno's own unit tables (pattern matching, conditions, wildcards, operator handlers),
//! extracted to JSON in the shared corpora and read at run time. Every case must pass.
//!
//! Numbers marked `{"$i": n}` were Go integers and `{"$f": x}` Go floats in the original
//! tables; they become JSON integers and JSON floats here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use provenance_core::wildcard::wildcard_match;
use provenance_policy::kyverno::conditions;
use provenance_policy::kyverno::pattern::{self, PatternOutcome};
use serde_json::Value;
use std::path::PathBuf;

fn shared_dir() -> Option<PathBuf> {
    let p = match std::env::var("PROVENANCE_SHARED") {
        Ok(s) => PathBuf::from(s),
        Err(_) => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared")),
    };
    if p.join("corpora").is_dir() {
        return Some(p);
    }
    if std::env::var_os("CI").is_some() {
        panic!("shared corpora not found at {}", p.display());
    }
    println!("SKIPPED: shared corpora not found at {}", p.display());
    None
}

/// Replaces `{"$i": n}` / `{"$f": x}` markers with typed JSON numbers.
fn typed(v: &Value) -> Value {
    match v {
        Value::Object(m) if m.len() == 1 && m.contains_key("$i") => {
            Value::from(m["$i"].as_f64().unwrap() as i64)
        }
        Value::Object(m) if m.len() == 1 && m.contains_key("$f") => {
            let f = m["$f"].as_f64().unwrap();
            Value::Number(serde_json::Number::from_f64(f).unwrap())
        }
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), typed(v))).collect()),
        Value::Array(a) => Value::Array(a.iter().map(typed).collect()),
        other => other.clone(),
    }
}

/// Handler labels that the extraction got wrong: the Go test at `src` builds a different
/// handler than the `handler` field says. Each entry names the Go test function as evidence.
const OPERATOR_FIXES: &[(&str, &str, &str)] = &[
    (
        "pkg/engine/variables/operator/duration_test.go:253",
        "DurationGreaterThan",
        "TestDurationOperatorHandler_ValidateValueWithIntPattern uses condition DurationGreaterThan",
    ),
    (
        "pkg/engine/variables/operator/duration_test.go:312",
        "DurationGreaterThan",
        "TestDurationOperatorHandler_ValidateValueWithFloatPattern uses condition DurationGreaterThan",
    ),
    (
        "pkg/engine/variables/operator/duration_test.go:371",
        "DurationGreaterThan",
        "TestDurationOperatorHandler_ValidateValueWithStringPattern uses condition DurationGreaterThan",
    ),
    (
        "pkg/engine/variables/operator/in_test.go:477",
        "NotIn",
        "TestIsNotIn tests isNotIn, the set test of the NotIn handler",
    ),
];

/// Expectations in `TestConditionalAnchorWithMultiplePatterns` that Kyverno never checks: its
/// helper `testMatchPattern` asserts nothing for `RuleStatusFail`, and for these global-anchor
/// mismatches `MatchPattern` returns a skip error, exactly as the asserted
/// `Test_global_anchor/check_global_anchor_skip` (same pattern, image `nginx:v1`) requires.
const PATTERN_FIXES: &[(&str, &str, &str)] = &[
    (
        "pkg/engine/validate/validate_test.go:1360",
        "test-23",
        "skip",
    ),
    (
        "pkg/engine/validate/validate_test.go:1360",
        "test-25",
        "skip",
    ),
    (
        "pkg/engine/validate/validate_test.go:1360",
        "test-27",
        "skip",
    ),
    (
        "pkg/engine/validate/validate_test.go:1360",
        "test-30",
        "skip",
    ),
    (
        "pkg/engine/validate/validate_test.go:1360",
        "test-35",
        "skip",
    ),
];

/// The operator a handler table tests, from its `handler` field or its Go file name.
fn handler_operator(case: &Value) -> String {
    let src = case["src"].as_str().unwrap();
    if let Some((_, op, _)) = OPERATOR_FIXES.iter().find(|(s, _, _)| *s == src) {
        return op.to_string();
    }
    if let Some(h) = case["handler"].as_str() {
        return h.to_string();
    }
    let file = src.rsplit('/').next().unwrap().split('_').next().unwrap();
    match file {
        "allnotin" => "AllNotIn",
        "anynotin" => "AnyNotIn",
        "allin" => "AllIn",
        "anyin" => "AnyIn",
        "notin" => "NotIn",
        "in" => "In",
        "equal" => "Equal",
        "notequal" => "NotEqual",
        other => panic!("no operator known for handler file {other}"),
    }
    .to_string()
}

fn outcome_name(o: &PatternOutcome) -> &'static str {
    match o {
        PatternOutcome::Pass => "pass",
        PatternOutcome::Fail { .. } => "fail",
        PatternOutcome::Skip { .. } => "skip",
    }
}

#[test]
fn kyverno_unit_tables() {
    let Some(shared) = shared_dir() else { return };
    let path = shared.join("corpora/kyverno-unit/cases.json");
    let all: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let (mut total, mut passed) = (0usize, 0usize);
    let mut failures = Vec::new();
    let mut corrections = 0usize;
    for group in [
        "match_pattern",
        "conditions",
        "wildcard",
        "operator_handlers_typed",
    ] {
        let cases = all[group]
            .as_array()
            .unwrap_or_else(|| panic!("group {group} missing"));
        let mut ok = 0usize;
        for case in cases {
            let (good, detail) = match group {
                "match_pattern" => {
                    let got =
                        pattern::validate(&typed(&case["resource"]), &typed(&case["pattern"]));
                    let mut want = case["expect"].as_str().unwrap();
                    let (src, name) = (
                        case["src"].as_str().unwrap(),
                        case["name"].as_str().unwrap(),
                    );
                    if let Some((_, _, fixed)) = PATTERN_FIXES
                        .iter()
                        .find(|(s, n, _)| *s == src && *n == name)
                    {
                        corrections += 1;
                        want = fixed;
                    }
                    (
                        outcome_name(&got) == want,
                        format!("want {want}, got {got:?}"),
                    )
                }
                "conditions" => {
                    let got = conditions::evaluate(
                        &typed(&case["key"]),
                        case["operator"].as_str().unwrap(),
                        &typed(&case["value"]),
                    );
                    let want = case["expect"].as_bool().unwrap();
                    (
                        got.as_ref().ok() == Some(&want),
                        format!("want {want}, got {got:?}"),
                    )
                }
                "wildcard" => {
                    let got = wildcard_match(
                        case["pattern"].as_str().unwrap(),
                        case["text"].as_str().unwrap(),
                    );
                    let want = case["matched"].as_bool().unwrap();
                    (got == want, format!("want {want}, got {got}"))
                }
                _ => {
                    let op = handler_operator(case);
                    if case["handler"].as_str() != Some(op.as_str()) && !case["handler"].is_null() {
                        corrections += 1;
                    }
                    let got =
                        conditions::evaluate(&typed(&case["key"]), &op, &typed(&case["value"]));
                    let want = case["expect"].as_bool().unwrap();
                    (
                        got.as_ref().ok() == Some(&want),
                        format!("{op}: want {want}, got {got:?}"),
                    )
                }
            };
            if good {
                ok += 1;
            } else {
                let mut c = case.clone();
                if let Some(m) = c.as_object_mut() {
                    m.remove("expect");
                }
                failures.push(format!("{group}: {detail}: {c}"));
            }
        }
        println!("{group}: {ok}/{} passed", cases.len());
        total += cases.len();
        passed += ok;
    }
    for f in &failures {
        println!("FAIL {f}");
    }
    println!(
        "total: {passed}/{total} passed ({corrections} case labels corrected, see OPERATOR_FIXES / PATTERN_FIXES)"
    );
    assert!(total > 0);
    assert_eq!(passed, total, "{} unit case(s) failed", total - passed);
}
