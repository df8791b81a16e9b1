//! `provenance generate-key-pair` writes private keys as new 0600 files: never into an existing
//! (perhaps world-readable) file, never through a symlink, and never with a password taken from
//! the command line.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::Path;
use std::process::{Command, Output, Stdio};

fn provenance(dir: &Path, password: Option<&str>, args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_provenance"));
    c.current_dir(dir)
        .env_remove("COSIGN_PASSWORD")
        .env_remove("PROVENANCE_PASSWORD")
        .stdin(Stdio::null())
        .args(args);
    if let Some(p) = password {
        c.env("PROVENANCE_PASSWORD", p);
    }
    let out = c.output().unwrap();
    eprintln!(
        "$ provenance {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777
}

#[cfg(unix)]
#[test]
fn force_over_a_world_readable_key_leaves_a_new_0600_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let key = d.join("u.key");
    std::fs::write(&key, "x\n").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    // A second name for the old file (another user's hard link): it must keep the old bytes.
    std::fs::hard_link(&key, d.join("other-name")).unwrap();

    let out = provenance(
        d,
        None,
        &[
            "generate-key-pair",
            "--output-key-prefix",
            "u",
            "--unencrypted",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("[cli.key.exists]"),
        "{}",
        stderr(&out)
    );

    let out = provenance(
        d,
        None,
        &[
            "generate-key-pair",
            "--output-key-prefix",
            "u",
            "--unencrypted",
            "--force",
        ],
    );
    assert!(out.status.success());
    assert_eq!(mode(&key), 0o600);
    let pem = std::fs::read_to_string(&key).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{pem}");
    assert_eq!(
        std::fs::read_to_string(d.join("other-name")).unwrap(),
        "x\n"
    );
    assert_eq!(mode(&d.join("u.pub")), 0o644);
    // No temporary file is left behind.
    let names: Vec<String> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");

    // Encrypted, under a permissive umask-like starting point: still 0600.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = provenance(
        d,
        Some("pw"),
        &["generate-key-pair", "--output-key-prefix", "u", "--force"],
    );
    assert!(out.status.success());
    assert_eq!(mode(&key), 0o600);
    assert!(
        std::fs::read_to_string(&key)
            .unwrap()
            .starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----")
    );
}

#[cfg(unix)]
#[test]
fn a_symlink_at_the_key_path_is_never_followed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let elsewhere = tempfile::tempdir().unwrap();
    let target = elsewhere.path().join("planted.key");
    // A dangling symlink: `Path::exists` says no, but something is there.
    std::os::unix::fs::symlink(&target, d.join("s.key")).unwrap();
    let out = provenance(
        d,
        None,
        &[
            "generate-key-pair",
            "--output-key-prefix",
            "s",
            "--unencrypted",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("[cli.key.exists]"),
        "{}",
        stderr(&out)
    );
    assert!(!target.exists(), "the key was written through the symlink");

    // With --force the link itself is replaced; its target is never created.
    let out = provenance(
        d,
        None,
        &[
            "generate-key-pair",
            "--output-key-prefix",
            "s",
            "--unencrypted",
            "--force",
        ],
    );
    assert!(out.status.success());
    assert!(!target.exists(), "the key was written through the symlink");
    let m = std::fs::symlink_metadata(d.join("s.key")).unwrap();
    assert!(m.file_type().is_file());
    assert_eq!(mode(&d.join("s.key")), 0o600);

    // A symlink to an existing file: the file keeps its bytes.
    std::fs::write(&target, "keep").unwrap();
    std::fs::remove_file(d.join("s.pub")).unwrap();
    std::os::unix::fs::symlink(&target, d.join("s.pub")).unwrap();
    let out = provenance(
        d,
        None,
        &[
            "generate-key-pair",
            "--output-key-prefix",
            "s",
            "--unencrypted",
            "--force",
        ],
    );
    assert!(out.status.success());
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
    assert!(
        std::fs::symlink_metadata(d.join("s.pub"))
            .unwrap()
            .file_type()
            .is_file()
    );
}

#[test]
fn without_a_password_or_a_terminal_no_encrypted_key_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = provenance(d, None, &["generate-key-pair", "--output-key-prefix", "n"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("[cli.key.no_password]"),
        "{}",
        stderr(&out)
    );
    assert!(!d.join("n.key").exists());
    assert!(!d.join("n.pub").exists());
    // There is no --password flag to leak it through the process list.
    let out = provenance(
        d,
        None,
        &[
            "generate-key-pair",
            "--output-key-prefix",
            "n",
            "--password",
            "pw",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(!d.join("n.key").exists());
}

#[test]
fn sign_password_flag_warns_and_the_environment_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = provenance(
        d,
        Some("pw"),
        &["generate-key-pair", "--output-key-prefix", "k"],
    );
    assert!(out.status.success());
    std::fs::write(d.join("blob.txt"), "hello").unwrap();
    // PROVENANCE_PASSWORD decrypts the key.
    let out = provenance(
        d,
        Some("pw"),
        &[
            "sign",
            "blob",
            "blob.txt",
            "--key",
            "k.key",
            "--output-signature",
            "blob.sig",
        ],
    );
    assert!(out.status.success());
    assert!(!stderr(&out).contains("process list"));
    // --password still works but says what it exposes.
    let out = provenance(
        d,
        None,
        &[
            "sign",
            "blob",
            "blob.txt",
            "--key",
            "k.key",
            "--password",
            "pw",
            "--output-signature",
            "blob2.sig",
        ],
    );
    assert!(out.status.success());
    assert!(stderr(&out).contains("process list"), "{}", stderr(&out));
    // No password anywhere and no terminal: the decryption error, nothing signed.
    let out = provenance(
        d,
        None,
        &[
            "sign",
            "blob",
            "blob.txt",
            "--key",
            "k.key",
            "--output-signature",
            "blob3.sig",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("core.key.decryption"),
        "{}",
        stderr(&out)
    );
}
