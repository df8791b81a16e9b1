//! Loading policies from files and folders, and reloading them when they change.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use provenance_policy::admission::PolicySet;
use provenance_policy::admission::loader::LoadedPolicy;

/// Policies in force, with what they were loaded from.
pub struct Loaded {
    /// The policies.
    pub set: PolicySet,
    /// Whether a deadline fails open: only when every policy says `failurePolicy: Ignore`.
    pub fail_open: bool,
    /// The stamp of every file read, to notice changes.
    pub stamp: Vec<FileStamp>,
    /// Namespace labels (`namespaceSelector`), by namespace.
    pub namespace_labels: BTreeMap<String, BTreeMap<String, String>>,
}

/// The YAML/JSON files under `paths` (files, or folders searched recursively), sorted.
/// Hidden entries (names starting with `.`) inside folders are skipped: a ConfigMap volume
/// holds each key three times (`key` → `..data/key` → `..<timestamp>/key`), and only the
/// visible one is the policy.
pub fn files(paths: &[PathBuf]) -> Vec<PathBuf> {
    fn walk(p: &Path, out: &mut Vec<PathBuf>) {
        if p.is_dir() {
            let mut entries: Vec<_> = std::fs::read_dir(p)
                .into_iter()
                .flatten()
                .filter_map(Result::ok)
                .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                .map(|e| e.path())
                .collect();
            entries.sort();
            for e in entries {
                walk(&e, out);
            }
        } else if p
            .extension()
            .is_some_and(|e| e == "yaml" || e == "yml" || e == "json")
        {
            out.push(p.to_path_buf());
        }
    }
    let mut out = Vec::new();
    for p in paths {
        walk(p, &mut out);
    }
    out
}

/// What tells that a file changed: its size and modification time, and on Unix its device,
/// inode and status-change time. A replacement with the same size and an old modification
/// time (`cp -p`, `rsync -a`, `tar x` keep it; a date edited in place keeps the size) still
/// gets a new inode or ctime, which no writer can set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStamp {
    path: PathBuf,
    len: u64,
    modified: Option<SystemTime>,
    /// (device, inode, ctime seconds, ctime nanoseconds).
    identity: Option<(u64, u64, i64, i64)>,
}

/// The hold-still rule for a set of watched files (policies, the trust root, cluster
/// resources): a change is acted on once the files have stayed the same for a whole reload
/// period, so a file caught while it is being written is read only after the writer is done.
#[derive(Debug)]
pub struct Watch {
    /// The stamp last acted on (loaded, or found broken: a broken set is reported once per
    /// change, not on every period).
    in_force: Vec<FileStamp>,
    /// A change seen at the previous look, waiting to hold still.
    pending: Option<Vec<FileStamp>>,
}

impl Watch {
    /// Watches files whose stamp in force is `in_force`.
    pub fn new(in_force: Vec<FileStamp>) -> Self {
        Watch {
            in_force,
            pending: None,
        }
    }

    /// Whether `now` (the files' stamp at this look) is a change that held still since the
    /// previous look: then it is the stamp in force from here on, and the caller loads it.
    pub fn settled(&mut self, now: Vec<FileStamp>) -> bool {
        if now == self.in_force {
            self.pending = None;
            false
        } else if self.pending.as_ref() != Some(&now) {
            self.pending = Some(now);
            false
        } else {
            self.pending = None;
            self.in_force = now;
            true
        }
    }
}

/// The change stamp of a list of files.
pub fn stamp(files: &[PathBuf]) -> Vec<FileStamp> {
    files
        .iter()
        .map(|f| {
            let md = std::fs::metadata(f).ok();
            FileStamp {
                path: f.clone(),
                len: md.as_ref().map(|m| m.len()).unwrap_or(0),
                modified: md.as_ref().and_then(|m| m.modified().ok()),
                identity: md.as_ref().and_then(identity),
            }
        })
        .collect()
}

#[cfg(unix)]
fn identity(m: &std::fs::Metadata) -> Option<(u64, u64, i64, i64)> {
    use std::os::unix::fs::MetadataExt;
    Some((m.dev(), m.ino(), m.ctime(), m.ctime_nsec()))
}

#[cfg(not(unix))]
fn identity(_: &std::fs::Metadata) -> Option<(u64, u64, i64, i64)> {
    None
}

/// Largest policy, namespace-labels or trust-root file read.
pub const MAX_FILE_BYTES: u64 = 16 << 20;

/// Reads `path` when it is a regular file (after symbolic links, as a ConfigMap volume has
/// them) of at most [`MAX_FILE_BYTES`]: a FIFO or a device put in its place would block the
/// reload or fill the memory.
pub fn read_regular_file(path: &Path) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let shown = path.display();
    let md = std::fs::metadata(path).map_err(|e| format!("{shown}: {e}"))?;
    if !md.is_file() {
        return Err(format!("{shown}: not a regular file"));
    }
    let mut out = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_end(&mut out))
        .map_err(|e| format!("{shown}: {e}"))?;
    if out.len() as u64 > MAX_FILE_BYTES {
        return Err(format!("{shown}: larger than {MAX_FILE_BYTES} bytes"));
    }
    Ok(out)
}

fn read_text(path: &Path) -> Result<String, String> {
    String::from_utf8(read_regular_file(path)?)
        .map_err(|_| format!("{}: not UTF-8 text", path.display()))
}

/// Loads every policy under `paths` and the namespace labels file. Any error fails the whole
/// load, so a half-written file never replaces the policies in force: an empty file, a
/// document of a kind this engine cannot enforce, and a ClusterPolicy without rules are
/// errors (`webhook.policy.empty_file`, `webhook.policy.unsupported`,
/// `webhook.policy.no_rules`), never a smaller policy set. A rule matching or excluding on
/// `roles` / `clusterRoles` is refused (`webhook.policy.roles_unknown`): the webhook does not
/// look up RBAC, so such a rule could never be decided. A policy for background scans only
/// (`spec.admission: false`, `spec.evaluation.admission.enabled: false`) is refused
/// (`webhook.policy.background_only`).
pub fn load(paths: &[PathBuf], ns_labels: Option<&Path>) -> Result<Loaded, String> {
    let mut set = PolicySet::default();
    let list = files(paths);
    if list.is_empty() {
        return Err(format!("no policy files under {paths:?}"));
    }
    // Stamped before anything is read: a file changed while it is read is a change at the
    // next look, never taken as loaded.
    let mut stamped = list.clone();
    stamped.extend(ns_labels.map(Path::to_path_buf));
    let stamp_before = stamp(&stamped);
    for f in &list {
        let text = read_text(f)?;
        let before = set.policies().len();
        set.add_yaml(&text, &f.display().to_string())
            .map_err(|e| format!("[{}] {e}", e.code()))?;
        // Kyverno does not apply a policy for background scans only to admission requests.
        for doc in provenance_policy::yaml::load_documents(&text, &f.display().to_string())
            .map_err(|e| format!("[{}] {e}", e.code()))?
        {
            let off = doc.pointer("/spec/admission") == Some(&serde_json::Value::Bool(false))
                || doc.pointer("/spec/evaluation/admission/enabled")
                    == Some(&serde_json::Value::Bool(false));
            if off {
                let name = doc
                    .pointer("/metadata/name")
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or_default();
                return Err(format!(
                    "[webhook.policy.background_only] {}: policy {name:?} is for background scans only (admission disabled): Kyverno does not apply it to admission requests",
                    f.display()
                ));
            }
        }
        // A file with no document is a file being written (or truncated to nothing), never
        // "no policies": it must not silently drop what it held.
        if set.policies().len() == before {
            return Err(format!(
                "[webhook.policy.empty_file] {}: no policy document (empty or truncated file)",
                f.display()
            ));
        }
    }
    for p in set.policies() {
        // A policy for something other than admission requests would be out of force here.
        if let Some(why) = p.never_at_admission() {
            return Err(format!("[webhook.policy.not_for_admission] {why}"));
        }
        match p {
            // A policy this engine cannot evaluate would silently be out of enforcement.
            LoadedPolicy::Unsupported { reason, name, .. } => {
                return Err(format!(
                    "[webhook.policy.unsupported] policy {name:?} cannot be enforced: {reason}"
                ));
            }
            LoadedPolicy::Kyverno(cp) if cp.rules.is_empty() => {
                return Err(format!(
                    "[webhook.policy.no_rules] policy {:?} has no rules (truncated file?)",
                    cp.name
                ));
            }
            // The webhook does not look up the requester's RBAC roles: a rule that matches or
            // excludes on them could never be decided (every request would be an error).
            LoadedPolicy::Kyverno(cp) => {
                if let Some(rule) = cp.rules.iter().find(|r| {
                    r.match_block.uses_roles() || r.exclude.as_ref().is_some_and(|e| e.uses_roles())
                }) {
                    return Err(format!(
                        "[webhook.policy.roles_unknown] policy {:?} rule {:?} matches on roles or clusterRoles, which this webhook cannot know (it does not look up RBAC)",
                        cp.name, rule.name
                    ));
                }
            }
            _ => {}
        }
    }
    let mut namespace_labels = BTreeMap::new();
    if let Some(p) = ns_labels {
        let text = read_text(p)?;
        let v = provenance_policy::yaml::load_document(&text, &p.display().to_string())
            .map_err(|e| e.to_string())?;
        namespace_labels = serde_json::from_value(v).map_err(|e| {
            format!(
                "{}: expected {{namespace: {{label: value}}}}: {e}",
                p.display()
            )
        })?;
    }
    let fail_open = !set.policies().is_empty()
        && set.policies().iter().all(|p| match p {
            LoadedPolicy::Kyverno(cp) => cp.failure_policy_ignore,
            _ => false,
        });
    Ok(Loaded {
        set,
        fail_open,
        stamp: stamp_before,
        namespace_labels,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn a_change_is_acted_on_once_it_held_still_for_a_whole_period() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.yaml");
        let look = || stamp(std::slice::from_ref(&path));
        std::fs::write(&path, "a").unwrap();
        let mut watch = Watch::new(look());
        assert!(!watch.settled(look()), "nothing changed");
        std::fs::write(&path, "bb").unwrap();
        assert!(
            !watch.settled(look()),
            "a change seen once may still be written"
        );
        std::fs::write(&path, "ccc").unwrap();
        assert!(!watch.settled(look()), "it moved again: wait again");
        assert!(watch.settled(look()), "held still for a period: load it");
        assert!(!watch.settled(look()), "acted on once");
        // A change undone before it settled is no change.
        let in_force = look();
        std::fs::write(&path, "dddd").unwrap();
        assert!(!watch.settled(look()));
        assert!(!watch.settled(in_force));
        assert!(watch.pending.is_none());
    }

    #[test]
    fn a_same_size_replacement_with_the_old_mtime_is_a_change() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trusted_root.json");
        std::fs::write(&path, "validFor: 2027-01-01").unwrap();
        let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
        let before = stamp(std::slice::from_ref(&path));
        // Same length, renamed into place with the old modification time (as `cp -p` or
        // `rsync -a` leave it).
        let new = dir.path().join("new.json");
        std::fs::write(&new, "validFor: 2026-01-01").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&new)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        std::fs::rename(&new, &path).unwrap();
        let after = stamp(std::slice::from_ref(&path));
        assert_eq!(before[0].len, after[0].len);
        assert_eq!(before[0].modified, after[0].modified);
        assert_ne!(before, after);
        assert_eq!(
            after,
            stamp(std::slice::from_ref(&path)),
            "stable when unchanged"
        );
    }

    #[test]
    fn only_regular_files_of_bounded_size_are_read() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            read_regular_file(dir.path())
                .unwrap_err()
                .contains("not a regular file")
        );
        let link = dir.path().join("link");
        let target = dir.path().join("target.yaml");
        std::fs::write(&target, "a: 1").unwrap();
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(&target, &link).unwrap();
            assert_eq!(read_regular_file(&link).unwrap(), b"a: 1");
            // A FIFO is refused without being opened (opening one would block).
            let fifo = dir.path().join("fifo");
            let made = std::process::Command::new("mkfifo").arg(&fifo).status();
            if made.is_ok_and(|s| s.success()) {
                assert!(
                    read_regular_file(&fifo)
                        .unwrap_err()
                        .contains("not a regular file")
                );
            }
        }
        let big = dir.path().join("big.yaml");
        std::fs::File::create(&big)
            .unwrap()
            .set_len(MAX_FILE_BYTES + 1)
            .unwrap();
        assert!(read_regular_file(&big).unwrap_err().contains("larger than"));
    }
}
