//! Runs Kyverno's own CLI test suite (`corpora/kyverno-cli`) through `provenance test` and
//! guards against regressions: every case listed in `kyverno-cli-passing.txt` must still pass.
//! Suites under `test-fail/` are designed to fail and must fail.
//!
//! Regenerate the list after an improvement with
//! `UPDATE_PASSING=1 cargo test -p provenance-cli --test kyverno_cli_corpus`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn corpus() -> Option<PathBuf> {
    let shared = std::env::var_os("PROVENANCE_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared")));
    let dir = shared.join("corpora/kyverno-cli");
    if dir.is_dir() {
        return Some(dir);
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "shared corpora missing at {}: CI must provide ../shared",
            dir.display()
        );
    }
    eprintln!("SKIPPED: shared corpora not found at {}", dir.display());
    None
}

fn run(dir: &Path) -> Vec<Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_provenance"))
        .args(["test", "--format", "json", "--now", "2026-01-01T00:00:00Z"])
        .arg(dir)
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn key(row: &Value, base: &Path) -> String {
    let file = row["file"].as_str().unwrap();
    let rel = Path::new(file)
        .strip_prefix(base)
        .map(|p| p.display().to_string())
        .unwrap_or(file.to_owned());
    format!(
        "{rel}|{}|{}|{}|{}",
        row["policy"].as_str().unwrap_or_default(),
        row["rule"].as_str().unwrap_or_default(),
        row["resource"].as_str().unwrap_or_default(),
        row["expected"].as_str().unwrap_or_default()
    )
}

#[test]
fn kyverno_cli_suite() {
    let Some(dir) = corpus() else { return };
    let rows = run(&dir);
    let (mut passed, mut failed, mut skipped) = (BTreeSet::new(), BTreeSet::new(), Vec::new());
    let mut fail_suites = BTreeSet::new();
    // Suites that cannot run as published: Kyverno's own repository lacks a file they name,
    // so `kyverno test` fails them too. Their rows count as skipped.
    const INCOMPLETE_UPSTREAM: [(&str, &str); 1] = [(
        "test-context-resource-ivpol/.kyverno-test/kyverno-test.yaml",
        "the suite names resources.yaml, which Kyverno's repository does not have",
    )];
    for row in &rows {
        let k = key(row, &dir);
        let in_fail_suite = k.starts_with("test-fail/");
        if let Some((_, why)) = INCOMPLETE_UPSTREAM
            .iter()
            .find(|(f, _)| k.split('|').next() == Some(*f))
        {
            assert_ne!(
                row["ok"].as_bool(),
                Some(true),
                "{k} passes: update INCOMPLETE_UPSTREAM"
            );
            skipped.push(format!("{k}: incomplete upstream: {why}"));
            continue;
        }
        match row["ok"].as_bool() {
            Some(true) if !in_fail_suite => {
                passed.insert(k);
            }
            Some(true) => {}
            Some(false) if in_fail_suite => {
                fail_suites.insert(k.split('|').next().unwrap().to_owned());
            }
            Some(false) => {
                failed.insert(format!("{k}: got {} ({})", row["actual"], row["reason"]));
            }
            None => skipped.push(format!("{k}: {}", row["reason"])),
        }
    }
    println!(
        "kyverno-cli corpus: {} passed, {} failed, {} skipped (unsupported), {} rows",
        passed.len(),
        failed.len(),
        skipped.len(),
        rows.len()
    );
    for f in &failed {
        println!("  FAIL {f}");
    }
    for s in &skipped {
        println!("  SKIP {s}");
    }
    // Every suite in test-fail/ must report at least one failure, except the documented
    // deviations (docs/kyverno-compatibility.md): Kyverno fails `invalid-ns*` at policy
    // validation; this engine evaluates the policy and reports the expected `fail`.
    const DEVIATIONS: [&str; 2] = [
        "test-fail/invalid-ns/kyverno-test.yaml",
        "test-fail/invalid-ns-deprecated/kyverno-test.yaml",
    ];
    let expected_fail_suites: BTreeSet<String> = std::fs::read_dir(dir.join("test-fail"))
        .unwrap()
        .map(|e| {
            format!(
                "test-fail/{}/kyverno-test.yaml",
                e.unwrap().file_name().to_string_lossy()
            )
        })
        .filter(|s| !DEVIATIONS.contains(&s.as_str()))
        .collect();
    let missing: Vec<_> = expected_fail_suites.difference(&fail_suites).collect();
    assert!(
        missing.is_empty(),
        "suites designed to fail did not fail: {missing:?}"
    );

    let list_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/kyverno-cli-passing.txt");
    if std::env::var_os("UPDATE_PASSING").is_some() {
        let body: String = passed.iter().map(|k| format!("{k}\n")).collect();
        std::fs::write(&list_path, body).unwrap();
        println!(
            "wrote {} passing cases to {}",
            passed.len(),
            list_path.display()
        );
        return;
    }
    let listed = std::fs::read_to_string(&list_path).unwrap();
    let regressions: Vec<&str> = listed
        .lines()
        .filter(|l| !l.is_empty() && !passed.contains(*l))
        .collect();
    assert!(
        regressions.is_empty(),
        "{} previously passing cases no longer pass:\n{}",
        regressions.len(),
        regressions.join("\n")
    );
}
