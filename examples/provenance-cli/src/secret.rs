//! Private keys and passwords: files written as new files with their final mode from the
//! first byte (never through a symlink, never by truncating a file someone else can read),
//! and passwords read from the environment or from the terminal with echo off, never from the
//! command line.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::ui::Failure;

/// The environment variables a key password is read from, in order (`COSIGN_PASSWORD` is
/// cosign's).
pub const PASSWORD_VARS: [&str; 2] = ["PROVENANCE_PASSWORD", "COSIGN_PASSWORD"];

/// The first of [`PASSWORD_VARS`] that is set (an empty value is a password, as in cosign).
pub fn password_from_env() -> Option<String> {
    PASSWORD_VARS.iter().find_map(|v| std::env::var(v).ok())
}

/// Whether a password can be asked for: standard input is a terminal.
pub fn can_prompt() -> bool {
    use std::io::IsTerminal;
    std::io::stdin().is_terminal()
}

/// Asks for a password on the terminal (prompt on standard error, echo off while typing);
/// with `confirm`, asks twice and requires the same answer.
pub fn prompt_password(prompt: &str, confirm: bool) -> Result<String, Failure> {
    let first = read_hidden(prompt)?;
    if confirm {
        let again = read_hidden("Enter password for private key again: ")?;
        if again != first {
            return Err(Failure {
                code: "cli.key.password_mismatch".into(),
                ..Failure::usage("the two passwords differ")
            });
        }
    }
    Ok(first)
}

fn read_hidden(prompt: &str) -> Result<String, Failure> {
    use rustix::termios::{LocalModes, OptionalActions, tcgetattr, tcsetattr};
    let stdin = std::io::stdin();
    let io_err = |e: std::io::Error| Failure::usage(format!("reading the password: {e}"));
    let saved = tcgetattr(&stdin).map_err(|e| io_err(e.into()))?;
    let mut quiet = saved.clone();
    quiet.local_modes.remove(LocalModes::ECHO);
    quiet.local_modes.insert(LocalModes::ECHONL);
    tcsetattr(&stdin, OptionalActions::Flush, &quiet).map_err(|e| io_err(e.into()))?;
    let mut err = std::io::stderr();
    let _ = err.write_all(prompt.as_bytes());
    let _ = err.flush();
    let mut line = String::new();
    let read = stdin.read_line(&mut line);
    // Echo back on whatever happened.
    let restored = tcsetattr(&stdin, OptionalActions::Flush, &saved);
    read.map_err(io_err)?;
    restored.map_err(|e| io_err(e.into()))?;
    while line.ends_with('\n') || line.ends_with('\r') {
        line.pop();
    }
    Ok(line)
}

/// Writes `bytes` to `path` as a new file of mode `mode` (Unix). With `overwrite`, whatever
/// `path` was is replaced (a file, or a symlink: the link itself is replaced, its target is
/// never written); without, anything at `path` (a dangling symlink included) fails with
/// [`std::io::ErrorKind::AlreadyExists`], atomically (no check-then-write race).
///
/// The bytes go to a fresh temporary file in the same folder, created exclusively (a name
/// nobody else holds, never a symlink) with `mode` from the start and set again once open
/// (whatever the umask), then renamed over `path` (or hard-linked to it, which never replaces
/// anything). A reader of `path` sees the old file or the new one, never a partial or more
/// readable one.
pub fn replace_file(path: &Path, bytes: &[u8], mode: u32, overwrite: bool) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "the path names no file")
        })?;
    let (tmp, mut file) = create_temp(&dir, &name, mode)?;
    let written = (|| {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        }
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        if overwrite {
            return std::fs::rename(&tmp, path);
        }
        match std::fs::hard_link(&tmp, path) {
            Ok(()) => std::fs::remove_file(&tmp),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(e),
            // A file system without hard links: check, then rename.
            Err(_) if occupied(path) => Err(std::io::ErrorKind::AlreadyExists.into()),
            Err(_) => std::fs::rename(&tmp, path),
        }
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Creates `<dir>/.<name>.<unique>.tmp` with `create_new` (O_EXCL: fails on any existing name,
/// symlinks included) and `mode`.
fn create_temp(dir: &Path, name: &str, mode: u32) -> std::io::Result<(PathBuf, std::fs::File)> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mut last = None;
    for _ in 0..64 {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".{name}.{}.{nanos:08x}{n}.tmp", std::process::id()));
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(mode);
        }
        #[cfg(not(unix))]
        let _ = mode;
        match opts.open(&tmp) {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free temporary file name")))
}

/// Whether anything is at `path`, a dangling symlink included (which `Path::exists` misses).
pub fn occupied(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

#[cfg(all(test, unix))]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn without_overwrite_nothing_at_the_path_is_replaced_or_followed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let target = d.join("target");
        let link = d.join("k.key");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        // The check-free write itself refuses the dangling link (no race with a check).
        let e = replace_file(&link, b"secret", 0o600, false).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists);
        assert!(!target.exists());
        std::fs::write(d.join("plain"), b"old").unwrap();
        let e = replace_file(&d.join("plain"), b"secret", 0o600, false).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(d.join("plain")).unwrap(), b"old");
        // A free path: written, 0600, no temporary file left.
        replace_file(&d.join("new.key"), b"secret", 0o600, false).unwrap();
        let m = std::fs::metadata(d.join("new.key")).unwrap();
        assert_eq!(m.permissions().mode() & 0o777, 0o600);
        assert_eq!(std::os::unix::fs::MetadataExt::nlink(&m), 1);
        let names: Vec<_> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
    }
}
