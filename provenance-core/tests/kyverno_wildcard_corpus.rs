//! Kyverno's wildcard unit table (`corpora/kyverno-unit/cases.json`, group `wildcard`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::PathBuf;

use provenance_core::wildcard::wildcard_match;
use serde_json::Value;

#[test]
fn kyverno_wildcard_cases() {
    let shared = std::env::var_os("PROVENANCE_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared")));
    let path = shared.join("corpora/kyverno-unit/cases.json");
    if !path.is_file() {
        if std::env::var_os("CI").is_some() {
            panic!(
                "shared corpora missing at {}: CI must provide ../shared",
                path.display()
            );
        }
        eprintln!("SKIPPED: shared corpora not found at {}", path.display());
        return;
    }
    let doc: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let cases = doc["wildcard"].as_array().unwrap();
    let mut failures = Vec::new();
    for c in cases {
        let (p, t) = (c["pattern"].as_str().unwrap(), c["text"].as_str().unwrap());
        let want = c["matched"].as_bool().unwrap();
        if wildcard_match(p, t) != want {
            failures.push(format!(
                "{:?}: pattern {p:?} text {t:?} want {want}",
                c["name"]
            ));
        }
    }
    println!(
        "kyverno wildcard cases: {}/{} passed",
        cases.len() - failures.len(),
        cases.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(cases.len() >= 50);
}
