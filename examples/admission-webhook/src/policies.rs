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
    /// (path, size, mtime) of every file read, to notice changes.
    pub stamp: Vec<(PathBuf, u64, Option<SystemTime>)>,
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

/// The change stamp of a list of files.
pub fn stamp(files: &[PathBuf]) -> Vec<(PathBuf, u64, Option<SystemTime>)> {
    files
        .iter()
        .map(|f| {
            let md = std::fs::metadata(f).ok();
            (
                f.clone(),
                md.as_ref().map(|m| m.len()).unwrap_or(0),
                md.and_then(|m| m.modified().ok()),
            )
        })
        .collect()
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
    let mut list = files(paths);
    if list.is_empty() {
        return Err(format!("no policy files under {paths:?}"));
    }
    for f in &list {
        let text = std::fs::read_to_string(f).map_err(|e| format!("{}: {e}", f.display()))?;
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
        let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
        let v = provenance_policy::yaml::load_document(&text, &p.display().to_string())
            .map_err(|e| e.to_string())?;
        namespace_labels = serde_json::from_value(v).map_err(|e| {
            format!(
                "{}: expected {{namespace: {{label: value}}}}: {e}",
                p.display()
            )
        })?;
        list.push(p.to_path_buf());
    }
    let fail_open = !set.policies().is_empty()
        && set.policies().iter().all(|p| match p {
            LoadedPolicy::Kyverno(cp) => cp.failure_policy_ignore,
            _ => false,
        });
    Ok(Loaded {
        set,
        fail_open,
        stamp: stamp(&list),
        namespace_labels,
    })
}
