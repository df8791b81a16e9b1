//! Parallel, bounded-memory hashing (SHA-256 or BLAKE2b-512) of files and file ranges, with an
//! optional digest cache.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use serde::{Deserialize, Serialize};

use super::HashAlgorithm;
use super::error::ModelError;
use super::walk::{self, FileEntry};

/// Read size per call: large sequential reads; memory is `threads x READ_SIZE`.
pub const READ_SIZE: usize = 4 << 20;

/// One unit of hashing work: a byte range of one file (the whole file for `files`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Task {
    /// Index into the entries.
    pub entry: usize,
    /// First byte (included).
    pub start: u64,
    /// Last byte (excluded).
    pub end: u64,
    /// Whole-file task: hash to end of file and require exactly `end` bytes.
    pub whole: bool,
}

/// A persistent digest cache keyed by (path, size, device, inode, mtime, ctime, range).
///
/// A hit skips reading the file. The cache trusts file-system metadata: see
/// `docs/model-verification.md` for the trade-off and use paranoid mode where an attacker may
/// write to the model's file system.
///
/// An entry is only written for bytes known to belong to the key's stat: the file is opened
/// once (never through a symlink) and its `fstat` before and after hashing must equal the stat
/// the walk took ([`FileEntry::stamp`], size), else hashing fails with
/// [`ModelError::Unstable`]. Files modified within [`RACY_WINDOW_NS`] of the hash (git's
/// "racy" rule: a write in the same timestamp tick would not change the stat) are hashed but
/// not cached.
#[derive(Debug, Default)]
pub struct DigestCache {
    path: Option<PathBuf>,
    old: BTreeMap<String, String>,
    new: Mutex<BTreeMap<String, String>>,
}

#[derive(Serialize, Deserialize)]
struct CacheFile {
    version: u32,
    entries: BTreeMap<String, String>,
}

/// A file whose mtime or ctime is this close to the time it is hashed (or later) is not
/// cached: a write within the file system's timestamp granularity could leave its stat
/// unchanged.
pub const RACY_WINDOW_NS: i128 = 2_000_000_000;

/// Largest cache file read.
const MAX_CACHE_BYTES: u64 = 256 << 20;

impl DigestCache {
    /// Opens (or starts) the cache stored at `path`. An unreadable or malformed cache is
    /// treated as empty (a miss only costs time).
    pub fn open(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        let old = std::fs::File::open(&path)
            .ok()
            .and_then(|f| {
                let mut s = Vec::new();
                f.take(MAX_CACHE_BYTES).read_to_end(&mut s).ok()?;
                serde_json::from_slice::<CacheFile>(&s).ok()
            })
            .filter(|c| c.version == 1)
            .map(|c| c.entries)
            .unwrap_or_default();
        DigestCache {
            path: Some(path),
            old,
            new: Mutex::new(BTreeMap::new()),
        }
    }

    fn key(e: &FileEntry, t: &Task, alg: HashAlgorithm) -> String {
        let (dev, ino, m, c) = e.stamp;
        let base = format!(
            "{dev}:{ino}:{m}:{c}:{}:{}:{}:{}",
            e.size, t.start, t.end, e.rel
        );
        match alg {
            // SHA-256 entries keep the key they always had.
            HashAlgorithm::Sha256 => base,
            other => format!("{}:{base}", other.name()),
        }
    }

    fn get(&self, e: &FileEntry, t: &Task, alg: HashAlgorithm) -> Option<Vec<u8>> {
        let hex = self.old.get(&Self::key(e, t, alg))?;
        let v = hex::decode(hex).ok()?;
        (v.len() == alg.digest_len()).then_some(v)
    }

    fn put(&self, e: &FileEntry, t: &Task, alg: HashAlgorithm, d: &[u8]) {
        if let Ok(mut m) = self.new.lock() {
            m.insert(Self::key(e, t, alg), hex::encode(d));
        }
    }

    /// Writes the entries used by the last run, atomically: a fresh temporary file beside the
    /// cache (created exclusively, never through a symlink), then renamed over it.
    pub fn save(&self) -> Result<(), ModelError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let entries = self.new.lock().map(|m| m.clone()).unwrap_or_default();
        let body = serde_json::to_vec(&CacheFile {
            version: 1,
            entries,
        })
        .map_err(|e| ModelError::Config {
            message: e.to_string(),
        })?;
        replace_file(path, &body, 0o600)
    }
}

/// Hashes every task with `alg` on `threads` threads (largest first); results are in task order.
/// Fails on the first error. `cache` hits are not read from disk, and what is read is stored in
/// `cache` when it may be (see [`DigestCache`]). `progress`, when given, is incremented by the
/// bytes covered as they are hashed.
pub fn hash_tasks(
    entries: &[FileEntry],
    tasks: &[Task],
    threads: usize,
    cache: Option<&DigestCache>,
    progress: Option<&std::sync::atomic::AtomicU64>,
    alg: HashAlgorithm,
) -> Result<Vec<Vec<u8>>, ModelError> {
    hash_tasks_with(entries, tasks, threads, cache, cache, progress, alg)
}

/// [`hash_tasks`] looking digests up in `lookup` and storing what was read in `store`
/// (paranoid mode: no lookup, but the cache is refreshed).
pub(crate) fn hash_tasks_with(
    entries: &[FileEntry],
    tasks: &[Task],
    threads: usize,
    lookup: Option<&DigestCache>,
    store: Option<&DigestCache>,
    progress: Option<&std::sync::atomic::AtomicU64>,
    alg: HashAlgorithm,
) -> Result<Vec<Vec<u8>>, ModelError> {
    let mut order: Vec<usize> = (0..tasks.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(tasks[i].end - tasks[i].start));
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let results: Mutex<Vec<Option<Vec<u8>>>> = Mutex::new(vec![None; tasks.len()]);
    let first_err: Mutex<Option<ModelError>> = Mutex::new(None);
    let threads = threads.clamp(1, tasks.len().max(1));
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let mut buf = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&i) = order.get(k) else { break };
                    let t = &tasks[i];
                    let Some(e) = entries.get(t.entry) else { break };
                    let r = match lookup.and_then(|c| c.get(e, t, alg)) {
                        Some(d) => {
                            if let Some(p) = progress {
                                p.fetch_add(t.end - t.start, Ordering::Relaxed);
                            }
                            // A hit was stored under this very stat: keep it.
                            Ok((d, true))
                        }
                        None => {
                            if buf.is_empty() {
                                buf = vec![0u8; READ_SIZE];
                            }
                            hash_range(e, t, &mut buf, progress, alg)
                        }
                    };
                    match r {
                        Ok((d, cacheable)) => {
                            if let (Some(c), true) = (store, cacheable) {
                                c.put(e, t, alg, &d);
                            }
                            if let Ok(mut v) = results.lock() {
                                v[i] = Some(d);
                            }
                        }
                        Err(err) => {
                            stop.store(true, Ordering::Relaxed);
                            if let Ok(mut f) = first_err.lock() {
                                f.get_or_insert(err);
                            }
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = first_err.into_inner().ok().flatten() {
        return Err(e);
    }
    let v = results.into_inner().map_err(|_| ModelError::Config {
        message: "hashing worker panicked".into(),
    })?;
    v.into_iter()
        .map(|d| {
            d.ok_or_else(|| ModelError::Config {
                message: "hashing did not complete".into(),
            })
        })
        .collect()
}

/// Opens a model file for hashing: read-only, never through a symlink at its last component
/// (the walk resolved allowed symlinks already), never blocking on a FIFO swapped in.
fn open_for_hashing(path: &Path) -> std::io::Result<std::fs::File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    }
    opts.open(path)
}

/// Hashes the bytes `t` names of the file the walk saw as `e`, returning the digest and
/// whether it may be cached. The file is opened once; its `fstat` before and after reading
/// must equal the walk's stat and size (else [`ModelError::Unstable`]): the bytes hashed are
/// those of the file the cache key describes, and exactly `e.size` bytes long.
fn hash_range(
    e: &FileEntry,
    t: &Task,
    buf: &mut [u8],
    progress: Option<&std::sync::atomic::AtomicU64>,
    alg: HashAlgorithm,
) -> Result<(Vec<u8>, bool), ModelError> {
    let unstable = || ModelError::Unstable {
        path: e.rel.clone(),
    };
    let mut f = open_for_hashing(&e.abs).map_err(|err| {
        if is_symlink_refusal(&err) {
            unstable()
        } else {
            ModelError::io(&e.abs, &err)
        }
    })?;
    let same_file = |f: &std::fs::File| -> Result<(), ModelError> {
        let m = f.metadata().map_err(|err| ModelError::io(&e.abs, &err))?;
        if m.is_file() && m.len() == e.size && walk::stamp(&m) == e.stamp {
            Ok(())
        } else {
            Err(unstable())
        }
    };
    // The file opened is the one the walk saw (not one swapped in at its path since).
    same_file(&f)?;
    if t.start > 0 {
        f.seek(SeekFrom::Start(t.start))
            .map_err(|err| ModelError::io(&e.abs, &err))?;
    }
    let mut ctx = Hasher::new(alg);
    let mut left = t.end - t.start;
    while left > 0 {
        let want = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
        let n = read_some(&mut f, &mut buf[..want], &e.abs)?;
        if n == 0 {
            return Err(unstable());
        }
        ctx.update(&buf[..n]);
        left -= n as u64;
        if let Some(p) = progress {
            p.fetch_add(n as u64, Ordering::Relaxed);
        }
    }
    if t.whole && read_some(&mut f, &mut buf[..1], &e.abs)? != 0 {
        // The file grew after it was enumerated.
        return Err(unstable());
    }
    // Nothing changed it while it was read (size, mtime, ctime: a shard task notices growth
    // beyond the bytes it reads too).
    same_file(&f)?;
    Ok((ctx.finish(), !racy(e.stamp)))
}

/// `open` refused a symlink (`O_NOFOLLOW`): the walk saw a regular file there.
fn is_symlink_refusal(err: &std::io::Error) -> bool {
    #[cfg(unix)]
    {
        err.raw_os_error() == Some(libc::ELOOP)
    }
    #[cfg(not(unix))]
    {
        let _ = err;
        false
    }
}

/// Whether a file's mtime or ctime is too recent for its stat to identify its content.
fn racy(stamp: (u64, u64, i128, i128)) -> bool {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i128::try_from(d.as_nanos()).unwrap_or(i128::MAX))
        .unwrap_or(0);
    let (_, _, mtime, ctime) = stamp;
    mtime > now - RACY_WINDOW_NS || ctime > now - RACY_WINDOW_NS
}

/// Writes `body` to `path` through a fresh temporary file in the same folder (created with
/// `create_new` and `mode`: an existing name or symlink is never opened), then renames it over
/// `path` (a symlink at `path` is replaced, not followed).
pub(crate) fn replace_file(path: &Path, body: &[u8], mode: u32) -> Result<(), ModelError> {
    use std::io::Write;
    use std::sync::atomic::AtomicU64;
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| ModelError::Config {
            message: format!("{} names no file", path.display()),
        })?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mut attempt = 0;
    let (tmp, mut file) = loop {
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
            Ok(f) => break (tmp, f),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 64 => {
                attempt += 1;
            }
            Err(e) => return Err(ModelError::io(&tmp, &e)),
        }
    };
    let written = file
        .write_all(body)
        .and_then(|()| file.sync_all())
        .and_then(|()| {
            drop(file);
            std::fs::rename(&tmp, path)
        });
    written.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        ModelError::io(path, &e)
    })
}

/// One streaming hash of any supported algorithm.
enum Hasher {
    Sha256(aws_lc_rs::digest::Context),
    Blake2b(Box<blake2::Blake2b512>),
    Blake3(Box<blake3::Hasher>),
}

impl Hasher {
    fn new(alg: HashAlgorithm) -> Self {
        match alg {
            HashAlgorithm::Sha256 => {
                Hasher::Sha256(aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256))
            }
            HashAlgorithm::Blake2b => Hasher::Blake2b(Box::default()),
            HashAlgorithm::Blake3 => Hasher::Blake3(Box::default()),
        }
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha256(c) => c.update(data),
            Hasher::Blake2b(h) => blake2::Digest::update(h.as_mut(), data),
            Hasher::Blake3(h) => {
                h.update(data);
            }
        }
    }

    fn finish(self) -> Vec<u8> {
        match self {
            Hasher::Sha256(c) => c.finish().as_ref().to_vec(),
            Hasher::Blake2b(h) => blake2::Digest::finalize(*h).to_vec(),
            Hasher::Blake3(h) => h.finalize().as_bytes().to_vec(),
        }
    }
}

fn read_some(f: &mut std::fs::File, buf: &mut [u8], path: &Path) -> Result<usize, ModelError> {
    loop {
        match f.read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ModelError::io(path, &e)),
        }
    }
}

/// The number of hashing threads to use by default (the machine's parallelism).
pub fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(std::num::NonZeroUsize::get)
        .unwrap_or(1)
}
