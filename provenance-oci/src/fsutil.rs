//! Files of OCI layouts, read and written without trusting what is on disk: only regular
//! files are read (never a symbolic link, device, FIFO or socket; checked on the opened handle,
//! opened without following a final link and without blocking on a FIFO), every read is
//! bounded while reading (a size in the metadata is not trusted: it is 0 for devices), and new
//! files are created exclusively (a link planted where a new file goes is never written
//! through).

use std::io::Read;
use std::path::Path;

use crate::error::Error;

/// Options that open `path` for reading without following a final symbolic link and without
/// blocking (a FIFO would otherwise hang `open` until a writer appears).
fn read_options() -> std::fs::OpenOptions {
    let mut o = std::fs::OpenOptions::new();
    o.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC);
    }
    o
}

/// The error for a path that exists but is not a regular file.
pub(crate) fn not_regular(path: &Path, kind: &str) -> Error {
    Error::UnsafeFile {
        path: path.display().to_string(),
        reason: format!("{kind}, not a regular file"),
    }
}

fn kind_of(t: std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_char_device() || t.is_block_device() {
            return "a device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    if t.is_symlink() {
        "a symbolic link"
    } else if t.is_dir() {
        "a folder"
    } else if t.is_file() {
        "a regular file"
    } else {
        "a special file"
    }
}

/// Opens `path` for reading if, and only if, it is a regular file (checked before opening,
/// without following links, and again on the opened handle). `Ok(None)` when it does not
/// exist.
pub(crate) fn open_regular(path: &Path) -> Result<Option<std::fs::File>, Error> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_file() => {}
        Ok(m) => return Err(not_regular(path, kind_of(m.file_type()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, &e)),
    }
    let f = match read_options().open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        // ELOOP: the file was replaced by a link after the check above.
        Err(e) if e.raw_os_error() == Some(eloop()) => {
            return Err(not_regular(path, "a symbolic link"));
        }
        Err(e) => return Err(Error::io(path, &e)),
    };
    let meta = f.metadata().map_err(|e| Error::io(path, &e))?;
    if !meta.file_type().is_file() {
        return Err(not_regular(path, kind_of(meta.file_type())));
    }
    Ok(Some(f))
}

fn eloop() -> i32 {
    #[cfg(unix)]
    {
        libc::ELOOP
    }
    #[cfg(not(unix))]
    {
        -1
    }
}

/// Reads the regular file `path`, at most `limit` bytes (more is [`Error::TooLarge`] for
/// `what`, found while reading, whatever the metadata says). `Ok(None)` when it does not
/// exist.
pub(crate) fn read_regular(path: &Path, limit: u64, what: &str) -> Result<Option<Vec<u8>>, Error> {
    let Some(f) = open_regular(path)? else {
        return Ok(None);
    };
    let too_large = || Error::TooLarge {
        what: what.to_owned(),
        limit,
    };
    let announced = f.metadata().map(|m| m.len()).unwrap_or(0);
    if announced > limit {
        return Err(too_large());
    }
    let mut out = Vec::with_capacity(announced.min(limit).min(16 << 20) as usize);
    f.take(limit.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| Error::io(path, &e))?;
    if out.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(Some(out))
}

/// Checks that `path`, when it exists, is a real folder (not a link, not a file).
pub(crate) fn check_dir_if_present(path: &Path) -> Result<(), Error> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_dir() => Ok(()),
        Ok(m) => Err(Error::UnsafeFile {
            path: path.display().to_string(),
            reason: format!("{}, not a folder", kind_of(m.file_type())),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(path, &e)),
    }
}

/// Options that create a new file exclusively: it must not exist (not even as a dangling
/// link), so nothing planted at `path` is written through.
pub(crate) fn create_options() -> std::fs::OpenOptions {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .mode(0o644);
    }
    o
}

/// Creates the temporary file `tmp` exclusively (a leftover one, or a link planted there, is
/// removed first: removing a link never touches its target).
pub(crate) fn create_temp(tmp: &Path) -> Result<std::fs::File, Error> {
    match std::fs::remove_file(tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(tmp, &e)),
    }
    create_options().open(tmp).map_err(|e| Error::io(tmp, &e))
}

/// Writes `bytes` to `dest` atomically: into a temporary file created exclusively next to it,
/// then renamed over `dest` (a link at `dest` is replaced, never followed).
pub(crate) fn write_atomic(dest: &Path, bytes: &[u8]) -> Result<(), Error> {
    use std::io::Write;
    let tmp = temp_path(dest);
    let r = (|| {
        let mut f = create_temp(&tmp)?;
        f.write_all(bytes).map_err(|e| Error::io(&tmp, &e))?;
        f.flush().map_err(|e| Error::io(&tmp, &e))?;
        drop(f);
        std::fs::rename(&tmp, dest).map_err(|e| Error::io(dest, &e))
    })();
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r
}

/// The temporary file a write to `dest` goes through.
pub(crate) fn temp_path(dest: &Path) -> std::path::PathBuf {
    let mut name = dest
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    name.push(format!(".partial-{}-{n}", std::process::id()));
    dest.with_file_name(name)
}
