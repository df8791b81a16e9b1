//! The JMESPath compliance suite (as carried by Kyverno's go-jmespath fork), read from the
//! shared corpora at run time. Every case must pass: `result` cases must produce the expected
//! value (a missing key is `null`), `error` cases must fail to compile or to evaluate.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use provenance_policy::lang::jmespath::Expression;
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

/// Equality of JSON values with numbers compared numerically (`1` equals `1.0`).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

#[test]
fn jmespath_compliance() {
    let Some(shared) = shared_dir() else { return };
    let dir = shared.join("corpora/jmespath-compliance");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let (mut total, mut passed) = (0usize, 0usize);
    let mut failures = Vec::new();
    for f in &files {
        let suites: Value = serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap();
        let (mut n, mut ok) = (0usize, 0usize);
        for suite in suites.as_array().unwrap() {
            let given = &suite["given"];
            for case in suite["cases"].as_array().unwrap() {
                n += 1;
                let expr = case["expression"].as_str().unwrap();
                let got = Expression::compile(expr).and_then(|e| e.search(given));
                let good = match (case.get("error"), case.get("result"), &got) {
                    (Some(_), _, Err(_)) => true,
                    (None, Some(want), Ok(v)) => same(want, v),
                    (None, None, Ok(v)) => v.is_null(),
                    _ => false,
                };
                if good {
                    ok += 1;
                } else {
                    failures.push(format!(
                        "{}: {expr:?}: expected {}, got {:?}",
                        f.file_name().unwrap().to_string_lossy(),
                        case.get("error")
                            .map(|e| format!("error {e}"))
                            .unwrap_or_else(|| case
                                .get("result")
                                .cloned()
                                .unwrap_or(Value::Null)
                                .to_string()),
                        got
                    ));
                }
            }
        }
        println!(
            "{}: {ok}/{n} passed",
            f.file_name().unwrap().to_string_lossy()
        );
        total += n;
        passed += ok;
    }
    for fl in &failures {
        println!("FAIL {fl}");
    }
    println!("total: {passed}/{total} passed");
    assert!(total > 0, "no compliance cases found in {}", dir.display());
    assert_eq!(
        passed,
        total,
        "{} compliance case(s) failed",
        total - passed
    );
}
