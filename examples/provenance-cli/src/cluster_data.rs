//! Cluster data from files, as `kyverno test` and `kyverno apply` read it: `ClusterResource`
//! documents (and plain resource files), `globalContextEntries`, `apiCallResponses` and the
//! CEL `Context` file.

use std::path::Path;

use provenance_policy::admission::cluster::{CannedResponse, ClusterSnapshot, LookupError};
use provenance_policy::lang::cel::ContextData;
use provenance_policy::lang::jmespath::{Env, search_with};
use provenance_policy::yaml::load_documents;
use serde_json::{Map, Value, json};

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

fn docs_of(path: &Path) -> Result<Vec<Value>, String> {
    let text = read(path)?;
    load_documents(&text, &path.display().to_string()).map_err(|e| e.to_string())
}

/// Adds the resources of one cluster resources file to `snapshot`: a `ClusterResource`
/// document brings its `spec.resources` and the CRDs its `spec.crds` name (paths relative to
/// `base`); any other document is a resource itself
/// ([`ClusterSnapshot::add_cluster_resources`] reads the documents).
pub fn add_cluster_resources_file(
    snapshot: &mut ClusterSnapshot,
    file: &Path,
    base: &Path,
) -> Result<(), String> {
    let crds = snapshot
        .add_cluster_resources(&read(file)?, &file.display().to_string())
        .map_err(|e| e.to_string())?;
    for crd in crds {
        let path = base.join(crd);
        snapshot
            .add_resource_documents(&read(&path)?, &path.display().to_string())
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn search(expr: &str, data: &Value, what: &str) -> Result<Value, LookupError> {
    search_with(expr, data, &Env::default()).map_err(|e| LookupError::Invalid {
        what: what.to_owned(),
        reason: e.to_string(),
    })
}

/// The data of one `globalContextEntries` item: `data`, inline `resources` or
/// `resourceFiles` (a list of resources), then `fieldPath`, then `projections` (a map of
/// their names to their values).
fn global_entry(entry: &Value, dir: &Path) -> Result<Value, LookupError> {
    let name = entry["name"].as_str().unwrap_or_default();
    let what = format!("globalContextEntries {name:?}");
    let invalid = |reason: String| LookupError::Invalid {
        what: what.clone(),
        reason,
    };
    let mut root = if let Some(files) = entry.get("resourceFiles").and_then(Value::as_array) {
        let mut list = Vec::new();
        for f in files.iter().filter_map(Value::as_str) {
            list.extend(
                docs_of(&dir.join(f))
                    .map_err(invalid)?
                    .into_iter()
                    .filter(|d| !d.is_null()),
            );
        }
        Value::Array(list)
    } else if let Some(list) = entry.get("resources").filter(|r| !r.is_null()) {
        list.clone()
    } else {
        match entry.get("data") {
            None | Some(Value::Null) => {
                if entry.get("projections").is_some_and(|p| !p.is_null()) {
                    return Err(invalid("data is required when projections are set".into()));
                }
                Value::Null
            }
            Some(d) => d.clone(),
        }
    };
    if let Some(fp) = entry
        .get("fieldPath")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        root = search(fp, &root, &what)?;
    }
    let Some(projections) = entry.get("projections").and_then(Value::as_array) else {
        return Ok(root);
    };
    let mut out = Map::new();
    for p in projections {
        let pname = p["name"].as_str().unwrap_or_default();
        if pname.is_empty() {
            return Err(invalid("a projection name must not be empty".into()));
        }
        let v = search(p["path"].as_str().unwrap_or_default(), &root, &what)?;
        out.insert(pname.to_owned(), v);
    }
    Ok(Value::Object(out))
}

/// Adds a test's `globalContextEntries` to the snapshot and the CEL context.
pub fn add_global_context_entries(
    snapshot: &mut ClusterSnapshot,
    cel: &mut ContextData,
    entries: &[Value],
    dir: &Path,
) -> Result<(), String> {
    let mut seen = std::collections::BTreeSet::new();
    for entry in entries {
        let name = entry["name"].as_str().unwrap_or_default().trim().to_owned();
        if name.is_empty() {
            return Err("globalContextEntries: name is required".into());
        }
        if !seen.insert(name.clone()) {
            return Err(format!("globalContextEntries: duplicate name {name:?}"));
        }
        match global_entry(entry, dir) {
            Ok(data) => {
                cel.add_global_context(name.clone(), data.clone());
                snapshot.add_global_context(name, data);
            }
            // Kyverno fails the rules that read an entry it cannot resolve.
            Err(e) => snapshot.add_global_context_error(name, e),
        }
    }
    Ok(())
}

/// Adds a test's `apiCallResponses` to the snapshot (for `apiCall`) and the CEL context (for
/// `http.Get/Post`, which answer `{"body": ..., "statusCode": ...}`).
pub fn add_api_call_responses(
    snapshot: &mut ClusterSnapshot,
    cel: &mut ContextData,
    entries: &[Value],
) -> Result<(), String> {
    for (i, e) in entries.iter().enumerate() {
        let url = e["url"].as_str().unwrap_or_default().trim();
        let url_path = e["urlPath"].as_str().unwrap_or_default().trim();
        let target = match (url.is_empty(), url_path.is_empty()) {
            (false, true) => url,
            (true, false) => url_path,
            (true, true) => {
                return Err(format!(
                    "apiCallResponses[{i}]: either url or urlPath is required"
                ));
            }
            (false, false) => {
                return Err(format!(
                    "apiCallResponses[{i}]: url and urlPath are mutually exclusive"
                ));
            }
        };
        let method = e["method"].as_str().map(|m| m.trim().to_uppercase());
        if let Some(m) = method.as_deref().filter(|m| !m.is_empty())
            && m != "GET"
            && m != "POST"
        {
            return Err(format!("apiCallResponses[{i}]: method must be GET or POST"));
        }
        let body = e.pointer("/response/body").cloned().unwrap_or(Value::Null);
        if !body.is_object() {
            return Err(format!(
                "apiCallResponses[{i}] {target:?}: response.body must be a JSON object"
            ));
        }
        let status = match e.pointer("/response/statusCode").and_then(Value::as_u64) {
            None | Some(0) => 200,
            Some(s @ 100..=599) => s as u16,
            Some(s) => {
                return Err(format!(
                    "apiCallResponses[{i}] {target:?}: statusCode {s} must be between 100 and 599"
                ));
            }
        };
        let method = method.filter(|m| !m.is_empty());
        snapshot.add_response(
            method.as_deref(),
            target,
            CannedResponse {
                status,
                body: body.clone(),
            },
        );
        let wrapped = json!({"body": body, "statusCode": status});
        for m in ["GET", "POST"] {
            if method.as_deref().is_none_or(|x| x == m) {
                cel.add_http_response(m, target, wrapped.clone());
            }
        }
    }
    Ok(())
}

/// Adds the resources of `snapshot` to the CEL context (`resource.get/list`).
pub fn add_snapshot_resources(cel: &mut ContextData, snapshot: &ClusterSnapshot) {
    for (plural, r) in snapshot.resources_by_type() {
        cel.add_resource_as(&plural, r.clone());
    }
}

/// Adds a CEL `Context` file (`spec.resources`, `spec.images`) to the CEL context.
pub fn add_context_file(cel: &mut ContextData, file: &Path) -> Result<(), String> {
    for doc in docs_of(file)? {
        for r in doc
            .pointer("/spec/resources")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            cel.add_resource(r.clone());
        }
        for img in doc
            .pointer("/spec/images")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(reference) = img.get("image").and_then(Value::as_str) else {
                return Err(format!(
                    "{}: spec.images: an entry without image",
                    file.display()
                ));
            };
            // Kyverno hands the entry over as it serialises it: registry and repository
            // always present, the rest when set.
            let mut m = img.as_object().cloned().unwrap_or_default();
            for k in ["resolvedImage", "registry", "repository"] {
                m.entry(k).or_insert_with(|| json!(""));
            }
            cel.add_image(reference, Value::Object(m));
        }
    }
    Ok(())
}
