//! The init container's flags against the committed model-signing fixtures
//! (`provenance-oci/tests/fixtures/model-signing`): the spellings it shares with
//! `provenance verify model`, and the options it shares with it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../provenance-oci/tests/fixtures/model-signing")
}

/// Runs the verifier on the fixture model with the key signature; returns the exit code and
/// the JSON result.
fn verify(key_flag: &str, key: &str, extra: &[&str]) -> (i32, serde_json::Value) {
    let f = fixtures();
    let out = Command::new(env!("CARGO_BIN_EXE_model-verifier"))
        .arg("--model")
        .arg(f.join("model"))
        .arg("--signature")
        .arg(f.join("signatures/key.sig"))
        .arg(key_flag)
        .arg(f.join("keys").join(key))
        .args(["--result", "-"])
        .args(extra)
        .env_remove("MODEL_PATH")
        .output()
        .unwrap();
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {} / {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), v)
}

#[test]
fn the_key_flag_has_both_spellings() {
    for flag in ["--public-key", "--key"] {
        let (code, v) = verify(flag, "ec-p256.pub", &[]);
        assert_eq!(code, 0, "{flag}: {v}");
        assert_eq!(v["verified"], true);
        let (code, v) = verify(flag, "other.pub", &[]);
        assert_eq!(code, 1, "{flag}: {v}");
        assert_eq!(v["verified"], false);
    }
}

#[test]
fn the_options_of_verify_model_are_wired() {
    // Threads and the stricter checks do not change the verdict on a plain key signature.
    let (code, v) = verify(
        "--key",
        "ec-p256.pub",
        &[
            "--threads",
            "1",
            "--reject-ca-signing-certificate",
            "--reject-legacy-signatures",
        ],
    );
    assert_eq!(code, 0, "{v}");
    // The signature itself lists the git paths it left out (model_signing records its
    // ignore paths), so counting them here still matches, as with `provenance verify model`.
    let (code, v) = verify("--key", "ec-p256.pub", &["--no-ignore-git-paths"]);
    assert_eq!(code, 0, "{v}");
}
