//! `--ignore-paths` means the same to `sign model` and `verify model`, model_signing's rule:
//! relative to the current directory (or absolute), kept when inside the model folder.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn provenance(dir: &Path, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_provenance"))
        .current_dir(dir)
        .env_remove("COSIGN_PASSWORD")
        .env_remove("PROVENANCE_PASSWORD")
        .args(args)
        .output()
        .unwrap();
    eprintln!(
        "$ provenance {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `dir/model` with `weights.bin` and `logs/run.txt`, and an unencrypted key pair `k`.
fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("model/logs")).unwrap();
    std::fs::write(d.join("model/weights.bin"), b"weights").unwrap();
    std::fs::write(d.join("model/logs/run.txt"), b"step 1").unwrap();
    let out = provenance(
        d,
        &[
            "generate-key-pair",
            "--output-key-prefix",
            "k",
            "--unencrypted",
        ],
    );
    assert!(out.status.success());
    dir
}

/// Signs `model` with extra arguments; returns the number of files signed and the signed
/// `ignore_paths`.
fn sign(d: &Path, extra: &[&str]) -> (u64, Vec<String>) {
    let mut args = vec![
        "sign",
        "model",
        "model",
        "--private-key",
        "k.key",
        "--signature",
        "model.sig",
    ];
    args.extend_from_slice(extra);
    let out = provenance(d, &args);
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let bundle: Value =
        serde_json::from_slice(&std::fs::read(d.join("model.sig")).unwrap()).unwrap();
    use base64::Engine as _;
    let payload = base64::engine::general_purpose::STANDARD
        .decode(bundle["dsseEnvelope"]["payload"].as_str().unwrap())
        .unwrap();
    let p: Value = serde_json::from_slice(&payload).unwrap();
    let ignores = p["predicate"]["serialization"]["ignore_paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .filter(|s| !s.starts_with(".git"))
        .collect();
    (v["files"].as_u64().unwrap(), ignores)
}

fn verify(d: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "verify",
        "model",
        "model",
        "--signature",
        "model.sig",
        "--public-key",
        "k.pub",
        "-o",
        "json",
    ];
    args.extend_from_slice(extra);
    provenance(d, &args)
}

fn code(o: &Output) -> String {
    let v: Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
    v["code"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| String::from_utf8_lossy(&o.stderr).into_owned())
}

#[test]
fn sign_model_reads_ignore_paths_from_the_current_directory_like_verify() {
    let dir = setup();
    let d = dir.path();
    // model_signing's spelling: the path as the shell sees it.
    assert_eq!(
        sign(d, &["--ignore-paths", "model/logs"]),
        (1, vec!["logs".to_owned()])
    );
    std::fs::write(d.join("model/logs/run.txt"), b"step 2").unwrap();
    assert!(verify(d, &[]).status.success());
    // Absolute paths inside the model count too.
    let abs = d.join("model/logs");
    assert_eq!(
        sign(d, &["--ignore-paths", abs.to_str().unwrap()]),
        (1, vec!["logs".to_owned()])
    );
    // A model-relative spelling run from the parent names `./logs`, outside the model: it
    // ignores nothing (and says so), so the log file is signed and its change is caught.
    let out = provenance(
        d,
        &[
            "sign",
            "model",
            "model",
            "--private-key",
            "k.key",
            "--signature",
            "model.sig",
            "--ignore-paths",
            "logs",
        ],
    );
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not inside the model folder"),
        "no warning"
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["files"], 2);
    std::fs::write(d.join("model/logs/run.txt"), b"step 3").unwrap();
    let out = verify(d, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(code(&out), "model.file_changed");
}

#[test]
fn verify_model_applies_the_same_rule() {
    let dir = setup();
    let d = dir.path();
    assert_eq!(sign(d, &[]), (2, Vec::new()));
    std::fs::write(d.join("model/extra.txt"), b"unsigned").unwrap();
    let out = verify(d, &[]);
    assert_eq!(code(&out), "model.file_extra");
    // Read from the current directory: `extra.txt` names d/extra.txt, not the model's.
    let out = verify(d, &["--ignore-paths", "extra.txt"]);
    assert_eq!(code(&out), "model.file_extra");
    assert!(
        verify(d, &["--ignore-paths", "model/extra.txt"])
            .status
            .success()
    );
    let abs = d.join("model/extra.txt");
    assert!(
        verify(d, &["--ignore-paths", abs.to_str().unwrap()])
            .status
            .success()
    );
}
