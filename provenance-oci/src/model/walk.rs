//! Enumerating the files of a model folder the way model-signing does, safely.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::error::ModelError;

/// Largest number of files (after ignores) a model folder may hold.
pub const MAX_FILES: usize = 1_000_000;

/// The git paths model-signing ignores by default (`--ignore-git-paths`): exactly these four
/// names at the model root (and everything under the two folders), not every `.git*` name.
pub const GIT_PATHS: [&str; 4] = [".git", ".gitattributes", ".github", ".gitignore"];

/// A regular file found in the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// POSIX path relative to the model root (`weights/model.bin`).
    pub rel: String,
    /// The path opened for reading (the symlink's in-root target when symlinks are allowed).
    pub abs: PathBuf,
    /// Size in bytes when enumerated.
    pub size: u64,
    /// (device, inode, mtime ns, ctime ns): the cache key beside `rel` and `size`.
    pub stamp: (u64, u64, i128, i128),
}

/// A root-relative ignore list (model-signing's `ignore_paths`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IgnoreSet {
    paths: Vec<Vec<String>>,
}

impl IgnoreSet {
    /// Builds the set from root-relative POSIX paths. Paths that cannot name anything inside
    /// the root (absolute, containing `..`, empty) are dropped, as the reference does.
    pub fn new<I: IntoIterator<Item = S>, S: AsRef<str>>(paths: I) -> Self {
        let mut out = Vec::new();
        for p in paths {
            let p = p.as_ref();
            if p.starts_with('/') {
                continue;
            }
            let parts: Vec<String> = p
                .split('/')
                .filter(|c| !c.is_empty() && *c != ".")
                .map(str::to_owned)
                .collect();
            if parts.is_empty() || parts.iter().any(|c| c == "..") {
                continue;
            }
            out.push(parts);
        }
        IgnoreSet { paths: out }
    }

    /// Adds the default git paths.
    pub fn with_git_paths(mut self) -> Self {
        for g in GIT_PATHS {
            self.paths.push(vec![g.to_owned()]);
        }
        self
    }

    /// Whether `rel` (components) is, or is under, an ignored path.
    pub fn ignores(&self, rel: &[&str]) -> bool {
        self.paths
            .iter()
            .any(|ig| ig.len() <= rel.len() && ig.iter().zip(rel).all(|(a, b)| a == b))
    }

    /// The ignored paths, as POSIX strings.
    pub fn to_strings(&self) -> Vec<String> {
        self.paths.iter().map(|p| p.join("/")).collect()
    }
}

/// Orders paths like Python's `PurePosixPath` (component by component), which is the order
/// model-signing hashes resources in for the root digest.
pub fn path_order(a: &str, b: &str) -> std::cmp::Ordering {
    a.split('/').cmp(b.split('/'))
}

/// Enumerates the regular files under `root` (sorted in model-signing order).
///
/// - ignored paths are skipped before anything else is checked (as the reference does);
/// - a symlink is an error ([`ModelError::Symlink`]) unless `allow_symlinks`; when allowed, it
///   must resolve to a regular file inside the root ([`ModelError::SymlinkEscape`] otherwise)
///   and is hashed under the link's own path; symlinked directories are never descended;
/// - sockets, FIFOs and devices are errors; empty directories contribute nothing;
/// - `only`, when given, keeps just these paths (`--ignore-unsigned-files`).
pub fn walk(
    root: &Path,
    ignore: &IgnoreSet,
    allow_symlinks: bool,
    only: Option<&BTreeSet<String>>,
) -> Result<Vec<FileEntry>, ModelError> {
    let meta = std::fs::metadata(root).map_err(|e| ModelError::io(root, &e))?;
    if !meta.is_dir() {
        return Err(ModelError::Config {
            message: format!("model path {} is not a directory", root.display()),
        });
    }
    let canon_root = root.canonicalize().map_err(|e| ModelError::io(root, &e))?;
    let mut out = Vec::new();
    let mut stack: Vec<(PathBuf, Vec<String>)> = vec![(canon_root.clone(), Vec::new())];
    while let Some((dir, prefix)) = stack.pop() {
        let rd = std::fs::read_dir(&dir).map_err(|e| ModelError::io(&dir, &e))?;
        for ent in rd {
            let ent = ent.map_err(|e| ModelError::io(&dir, &e))?;
            let name = ent.file_name();
            let Some(name) = name.to_str() else {
                return Err(ModelError::UnsafePath {
                    path: format!("{}/{}", prefix.join("/"), name.to_string_lossy()),
                    reason: "file name is not UTF-8",
                });
            };
            let mut comps = prefix.clone();
            comps.push(name.to_owned());
            let rel_parts: Vec<&str> = comps.iter().map(String::as_str).collect();
            let rel = comps.join("/");
            if ignore.ignores(&rel_parts) {
                continue;
            }
            if name.contains('\\') {
                return Err(ModelError::UnsafePath {
                    path: rel,
                    reason: "backslash in a file name",
                });
            }
            let path = ent.path();
            let lmeta = std::fs::symlink_metadata(&path).map_err(|e| ModelError::io(&path, &e))?;
            let ft = lmeta.file_type();
            if ft.is_dir() {
                stack.push((path, comps));
                continue;
            }
            if let Some(only) = only
                && !only.contains(&rel)
            {
                continue;
            }
            let (abs, fmeta) = if ft.is_symlink() {
                if !allow_symlinks {
                    return Err(ModelError::Symlink { path: rel });
                }
                let target = path
                    .canonicalize()
                    .map_err(|_| ModelError::SymlinkEscape { path: rel.clone() })?;
                if !target.starts_with(&canon_root) {
                    return Err(ModelError::SymlinkEscape { path: rel });
                }
                let m = std::fs::metadata(&target).map_err(|e| ModelError::io(&target, &e))?;
                if m.is_dir() {
                    return Err(ModelError::Unsupported {
                        message: format!("{rel:?} is a symlink to a directory (not followed)"),
                    });
                }
                (target, m)
            } else {
                (path, lmeta)
            };
            if !fmeta.is_file() {
                return Err(ModelError::SpecialFile { path: rel });
            }
            out.push(FileEntry {
                rel,
                abs,
                size: fmeta.len(),
                stamp: stamp(&fmeta),
            });
            if out.len() > MAX_FILES {
                return Err(ModelError::TooLarge {
                    what: "number of files in the model",
                    limit: MAX_FILES as u64,
                });
            }
        }
    }
    out.sort_by(|a, b| path_order(&a.rel, &b.rel));
    Ok(out)
}

/// (device, inode, mtime ns, ctime ns) of a file's metadata.
#[cfg(unix)]
pub(crate) fn stamp(m: &std::fs::Metadata) -> (u64, u64, i128, i128) {
    use std::os::unix::fs::MetadataExt;
    (
        m.dev(),
        m.ino(),
        i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
        i128::from(m.ctime()) * 1_000_000_000 + i128::from(m.ctime_nsec()),
    )
}

#[cfg(not(unix))]
pub(crate) fn stamp(m: &std::fs::Metadata) -> (u64, u64, i128, i128) {
    let mtime = m
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(-1);
    (0, 0, mtime, -1)
}

/// Checks that a resource name from a signed manifest is a plain relative POSIX path.
pub fn check_resource_path(name: &str) -> Result<(), ModelError> {
    let bad = |reason| {
        Err(ModelError::UnsafePath {
            path: name.chars().take(256).collect(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("empty path");
    }
    if name.starts_with('/') {
        return bad("absolute path");
    }
    if name.contains('\0') || name.contains('\\') {
        return bad("NUL or backslash in path");
    }
    for c in name.split('/') {
        match c {
            "" => return bad("empty path component"),
            "." | ".." => return bad("`.` or `..` component"),
            _ => {}
        }
    }
    Ok(())
}

/// Ignore paths given on a command line, read the way model-signing's CLI reads them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvedIgnores {
    /// The paths that fall inside the model folder, relative to it (POSIX), for
    /// [`IgnoreSet::new`] / `VerifyOptions::ignore_paths` / `SignModelOptions::ignore_paths`.
    pub inside: Vec<String>,
    /// The paths outside the model folder: they ignore nothing (model-signing leaves them out
    /// of the signature as well); worth a warning.
    pub outside: Vec<PathBuf>,
}

/// Resolves command-line ignore paths against a model folder: a relative path is read from
/// `base` (the current directory for `sign model` and `verify model`, as model-signing's CLI
/// reads them), an absolute one as it is; each is then made relative to `root` (itself read
/// from `base` when relative). `.` and `..` components are resolved lexically, and the final
/// component is never followed as a symlink (ignoring `link` ignores the link, not its
/// target); when the lexical forms differ only by symlinks above the model (`/tmp` and
/// `/private/tmp`), the existing parent folders are compared canonically.
pub fn resolve_ignore_paths(root: &Path, base: &Path, paths: &[PathBuf]) -> ResolvedIgnores {
    let root_lex = lexical(&base.join(root));
    let root_canon = base.join(root).canonicalize().ok();
    let mut out = ResolvedIgnores::default();
    for p in paths {
        let abs = lexical(&base.join(p));
        let rel = abs
            .strip_prefix(&root_lex)
            .ok()
            .map(Path::to_path_buf)
            .or_else(|| {
                // Compare canonically: the parent resolved, the last component kept.
                let name = abs.file_name()?;
                let parent = abs.parent()?.canonicalize().ok()?.join(name);
                let root = root_canon.as_ref()?;
                if &parent == root {
                    return Some(PathBuf::new());
                }
                parent.strip_prefix(root).ok().map(Path::to_path_buf)
            });
        match rel.as_ref().and_then(|r| r.to_str()) {
            // The root itself would ignore everything: model-signing then finds no file.
            Some(r) if !r.is_empty() => out.inside.push(r.replace(std::path::MAIN_SEPARATOR, "/")),
            _ => out.outside.push(p.clone()),
        }
    }
    out
}

/// `path` with `.` removed and `..` applied to the preceding component (never above the
/// root).
fn lexical(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}
