//! Cluster data from files (`--cluster-resources`): the resources `configMap` and `apiCall`
//! (`urlPath` GET) context entries read, in the format `provenance apply --cluster-resources`
//! reads (`ClusterSnapshot::add_cluster_resources`). The webhook has no API access: what the
//! files do not hold is not found, and the rule that needs it reports `error`.

use std::path::{Path, PathBuf};

use provenance_policy::admission::cluster::ClusterSnapshot;

use crate::policies::{self, FileStamp};

/// Most bytes read for one snapshot, over all its files (each file is bounded by
/// [`policies::MAX_FILE_BYTES`] on its own).
pub const MAX_SNAPSHOT_BYTES: u64 = 64 << 20;

/// A snapshot loaded from files, with what it was loaded from.
pub struct Loaded {
    /// The cluster data.
    pub snapshot: std::sync::Arc<ClusterSnapshot>,
    /// The stamp of the files under the configured paths, to notice changes.
    pub stamp: Vec<FileStamp>,
}

/// The files under the configured paths (YAML/JSON; hidden entries skipped), as the policies.
pub fn files(paths: &[PathBuf]) -> Vec<PathBuf> {
    policies::files(paths)
}

/// Loads every file under `paths` into one snapshot. Only regular files are read, each of
/// bounded size and all together at most [`MAX_SNAPSHOT_BYTES`]; the CRD files a
/// `ClusterResource` names (`spec.crds`) are read relative to its folder, the same way. Any
/// error fails the whole load (`webhook.cluster.*` codes), so that a half-written file never
/// replaces the snapshot in force: a file that cannot be read or parsed, and a file without a
/// document (empty, or truncated while being written). A path that does not exist is an
/// error too; an existing folder without files gives an empty snapshot (every look-up is
/// then not found).
pub fn load(paths: &[PathBuf]) -> Result<Loaded, String> {
    for p in paths {
        if !p.exists() {
            return Err(format!(
                "[webhook.cluster.unreadable] {}: no such file or folder",
                p.display()
            ));
        }
    }
    let list = files(paths);
    // Stamped before anything is read: a file changed while it is read is a change at the
    // next look, never taken as loaded.
    let stamp_before = policies::stamp(&list);
    let mut snapshot = ClusterSnapshot::new().with_resources_supplied();
    let mut total = 0u64;
    let mut read = |path: &Path| -> Result<String, String> {
        let bytes = policies::read_regular_file(path)
            .map_err(|e| format!("[webhook.cluster.unreadable] {e}"))?;
        total += bytes.len() as u64;
        if total > MAX_SNAPSHOT_BYTES {
            return Err(format!(
                "[webhook.cluster.too_large] the cluster resources are larger than \
                 {MAX_SNAPSHOT_BYTES} bytes together"
            ));
        }
        String::from_utf8(bytes).map_err(|_| {
            format!(
                "[webhook.cluster.unreadable] {}: not UTF-8 text",
                path.display()
            )
        })
    };
    for f in &list {
        let name = f.display().to_string();
        let text = read(f)?;
        let documents = provenance_policy::yaml::load_documents(&text, &name)
            .map_err(|e| format!("[webhook.cluster.invalid] [{}] {e}", e.code()))?;
        if documents.iter().all(serde_json::Value::is_null) {
            return Err(format!(
                "[webhook.cluster.empty_file] {name}: no document (empty or truncated file)"
            ));
        }
        let crds = snapshot
            .add_cluster_resources(&text, &name)
            .map_err(|e| format!("[webhook.cluster.invalid] [{}] {e}", e.code()))?;
        let base = f.parent().unwrap_or(Path::new("."));
        for crd in crds {
            let path = base.join(crd);
            let text = read(&path)?;
            snapshot
                .add_resource_documents(&text, &path.display().to_string())
                .map_err(|e| format!("[webhook.cluster.invalid] [{}] {e}", e.code()))?;
        }
    }
    Ok(Loaded {
        snapshot: std::sync::Arc::new(snapshot),
        stamp: stamp_before,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use provenance_policy::admission::cluster::ClusterData as _;

    #[test]
    fn resources_cluster_resource_documents_and_their_crds_are_loaded() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("cm.yaml"),
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: teams, namespace: ml}\n\
             data: {teams: vision}\n",
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("more")).unwrap();
        std::fs::write(
            dir.path().join("more/cluster.yaml"),
            "apiVersion: cli.kyverno.io/v1alpha1\nkind: ClusterResource\nspec:\n  crds: [crd.yaml]\n  \
             resources:\n  - {apiVersion: example.com/v1, kind: Quota, metadata: {name: q, namespace: ml}, spec: {gpus: 2}}\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("more/crd.yaml"),
            "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n\
             metadata: {name: gpuquotas.example.com}\n\
             spec: {group: example.com, names: {kind: Quota, plural: gpuquotas}}\n",
        )
        .unwrap();
        // Hidden entries are skipped (a ConfigMap volume's `..data`).
        std::fs::write(dir.path().join(".hidden.yaml"), "{{{ not yaml").unwrap();
        let loaded = load(&[dir.path().to_path_buf()]).unwrap();
        let s = &loaded.snapshot;
        assert_eq!(
            s.config_map("ml", "teams").unwrap()["data"]["teams"],
            "vision"
        );
        let q = s
            .api_call(
                "GET",
                "/apis/example.com/v1/namespaces/ml/gpuquotas/q",
                None,
            )
            .unwrap();
        assert_eq!(q["spec"]["gpus"], 2);
        assert_eq!(
            s.config_map("ml", "absent").unwrap_err().code(),
            "policy.context.not_found"
        );
        // The CRD file is a file of the folder too (read as resources, and again through the
        // ClusterResource that names it: the same objects).
        assert_eq!(loaded.stamp.len(), 3);
    }

    #[test]
    fn a_broken_empty_or_missing_input_fails_the_whole_load() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.yaml"),
            "apiVersion: v1\nkind: ConfigMap\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("b.yaml"), "").unwrap();
        let e = load(&[dir.path().to_path_buf()]).err().unwrap();
        assert!(e.starts_with("[webhook.cluster.empty_file]"), "{e}");
        std::fs::write(dir.path().join("b.yaml"), "kind: [unclosed\n").unwrap();
        let e = load(&[dir.path().to_path_buf()]).err().unwrap();
        assert!(e.starts_with("[webhook.cluster.invalid]"), "{e}");
        std::fs::write(
            dir.path().join("b.yaml"),
            "kind: ClusterResource\nspec: {crds: [missing.yaml]}\n",
        )
        .unwrap();
        let e = load(&[dir.path().to_path_buf()]).err().unwrap();
        assert!(e.starts_with("[webhook.cluster.unreadable]"), "{e}");
        let e = load(&[dir.path().join("nowhere")]).err().unwrap();
        assert!(e.starts_with("[webhook.cluster.unreadable]"), "{e}");
        // An existing folder without files: an empty snapshot, every look-up not found.
        let empty = tempfile::tempdir().unwrap();
        let loaded = load(&[empty.path().to_path_buf()]).unwrap();
        assert_eq!(
            loaded.snapshot.config_map("ml", "x").unwrap_err().code(),
            "policy.context.not_found"
        );
    }
}
