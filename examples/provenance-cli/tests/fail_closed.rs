//! `provenance apply` never evaluates a smaller policy set than it was given.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::process::Command;

#[test]
fn apply_refuses_a_policy_it_cannot_evaluate() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "apiVersion: kyverno.io/v2\nkind: ClusterCleanupPolicy\nmetadata: {name: m}\nspec: {}\n",
    )
    .unwrap();
    let pod = dir.path().join("pod.yaml");
    std::fs::write(
        &pod,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: default}\nspec:\n  containers: [{name: c, image: nginx:1.25}]\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_provenance"))
        .args(["apply", "--policy"])
        .arg(&policy)
        .arg("--resource")
        .arg(&pod)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("[policy.unsupported]"), "{err}");
}
