//! `provenance verify model oci://REF --layout DIR`: a model stored as an OCI artifact,
//! verified against its attached model-signing bundle (fixture layout from
//! `scripts/fixtures/model-signing/generate-oci.sh`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../provenance-oci/tests/fixtures/model-signing")
}

fn verify(reference_args: &[&str], key: &str) -> (i32, Value) {
    let f = fixtures();
    let out = Command::cargo_bin("provenance")
        .unwrap()
        .env("NO_COLOR", "1")
        .args(["verify", "model"])
        .args(reference_args)
        .arg("--layout")
        .arg(f.join("oci/layout"))
        .arg("--public-key")
        .arg(f.join("keys").join(key))
        .args(["-o", "json"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {} / {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), v)
}

#[test]
fn oci_model_from_a_layout_verifies_and_fails_with_codes() {
    let index: Value =
        serde_json::from_slice(&std::fs::read(fixtures().join("oci/layout/index.json")).unwrap())
            .unwrap();
    let (code, v) = verify(&["oci://example.com/models/tiny:1.0"], "ec-p256.pub");
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["verified"], true);
    assert_eq!(v["manifestDigest"], index["manifests"][0]["digest"]);
    assert_eq!(v["files"], 5);

    let (code, v) = verify(&["--oci", "example.com/models/tiny:1.0"], "ec-p256.pub");
    assert_eq!(code, 0, "{v}");

    // Another key: the verification fails (1).
    let (code, v) = verify(&["oci://example.com/models/tiny:1.0"], "other.pub");
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["code"], "model.key_mismatch", "{v}");

    // A tag the layout does not have: the evidence cannot be obtained (3).
    let (code, v) = verify(&["oci://example.com/models/tiny:2.0"], "ec-p256.pub");
    assert_eq!(code, 3, "{v}");
    assert_eq!(v["code"], "oci.not_found", "{v}");
}
