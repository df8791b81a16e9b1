//! `provenance test`: runs `kyverno-test.yaml` suites the way `kyverno test` does.
//!
//! Each test file names policies, resources, optional values/variables and user info, and the
//! expected result of rules on resources. Every policy is applied to every resource; then each
//! expected result is compared with the actual rule results (autogen rules count for the rule
//! they were generated from). A resource the policy did not match counts as passing, as in
//! `kyverno test`. Expectations that need a feature this engine does not implement are
//! reported as skipped with the reason, never as passed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use provenance_core::{RuleStatus, UnixTime};
use provenance_policy::admission::cluster::ClusterSnapshot;
use provenance_policy::admission::loader::{LoadedPolicy, load_policies};
use provenance_policy::admission::request::{Operation, RequestInfo, ResourceInput};
use provenance_policy::kyverno::engine::{PolicyResponse, UNSUPPORTED, Variables};
use provenance_policy::lang::cel::ContextData;
use provenance_policy::lang::jmespath::Env;
use provenance_policy::yaml::{load_document, load_documents};
use serde_json::{Value, json};

/// One checked expectation.
#[derive(Debug, Clone)]
pub struct Row {
    /// The test file.
    pub file: String,
    /// Policy name as written in the test.
    pub policy: String,
    /// Rule name.
    pub rule: String,
    /// Resource (`kind/namespace/name`).
    pub resource: String,
    /// Expected status.
    pub expected: String,
    /// Actual status (empty when not evaluated).
    pub actual: String,
    /// `Some(true)` passed, `Some(false)` failed, `None` skipped.
    pub ok: Option<bool>,
    /// Why (the rule message, or what is unsupported).
    pub reason: String,
}

impl Row {
    /// The row as one JSON object.
    pub fn to_json(&self) -> Value {
        json!({
            "file": self.file, "policy": self.policy, "rule": self.rule,
            "resource": self.resource, "expected": self.expected, "actual": self.actual,
            "ok": self.ok, "reason": self.reason,
        })
    }
}

/// Finds every `kyverno-test.yaml` under the given paths (files or folders), sorted.
/// `file_name` is the test file's name (`kyverno test --file-name`); with the default,
/// `kyverno-test.yml` is found too.
pub fn discover(paths: &[PathBuf], file_name: &str) -> Vec<PathBuf> {
    fn walk(p: &Path, file_name: &str, out: &mut Vec<PathBuf>) {
        if p.is_file() {
            out.push(p.to_path_buf());
        } else if let Ok(rd) = std::fs::read_dir(p) {
            let mut entries: Vec<_> = rd.filter_map(Result::ok).map(|e| e.path()).collect();
            entries.sort();
            for e in entries {
                if e.is_dir() {
                    walk(&e, file_name, out);
                } else if e.file_name().is_some_and(|n| {
                    n == file_name || (file_name == DEFAULT_TEST_FILE && n == "kyverno-test.yml")
                }) {
                    out.push(e);
                }
            }
        }
    }
    let mut out = Vec::new();
    for p in paths {
        walk(p, file_name, &mut out);
    }
    out
}

/// The test file `kyverno test` looks for by default.
pub const DEFAULT_TEST_FILE: &str = "kyverno-test.yaml";

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_owned))
            .collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    }
}

/// The values of a `Values` document, organised for lookup.
#[derive(Default)]
struct ValuesFile {
    global: Vec<(String, Value)>,
    /// policy -> rule -> values
    rules: BTreeMap<String, Vec<(String, Vec<(String, Value)>)>>,
    /// policy -> resource -> values
    resources: BTreeMap<String, BTreeMap<String, Vec<(String, Value)>>>,
    namespace_labels: BTreeMap<String, BTreeMap<String, String>>,
    /// `namespaces`: Namespace objects (CEL `namespaceObject`, and their labels).
    namespaces: BTreeMap<String, Value>,
    subresources: Vec<Value>,
}

fn pairs(v: Option<&Value>) -> Vec<(String, Value)> {
    match v {
        Some(Value::Object(m)) => m.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        _ => Vec::new(),
    }
}

impl ValuesFile {
    fn from_value(v: &Value) -> Self {
        let mut out = ValuesFile {
            global: pairs(v.get("globalValues")),
            ..ValuesFile::default()
        };
        for p in v
            .get("policies")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let name = p
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            for r in p
                .get("rules")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let rule = r
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                let mut values = pairs(r.get("values"));
                // `foreachValues`: `kyverno test` sets each key to the first value of its list
                // for every element (its element index is never advanced).
                for (k, list) in pairs(r.get("foreachValues")) {
                    if let Some(first) = list.as_array().and_then(|a| a.first()) {
                        values.push((k, first.clone()));
                    }
                }
                out.rules
                    .entry(name.clone())
                    .or_default()
                    .push((rule, values));
            }
            for r in p
                .get("resources")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let res = r
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                out.resources
                    .entry(name.clone())
                    .or_default()
                    .insert(res, pairs(r.get("values")));
            }
        }
        for ns in v
            .get("namespaceSelector")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let name = ns
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let labels = ns
                .get("labels")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| {
                            (
                                k.clone(),
                                v.as_str()
                                    .map(str::to_owned)
                                    .unwrap_or_else(|| v.to_string()),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            out.namespace_labels.insert(name, labels);
        }
        for ns in v
            .get("namespaces")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(name) = ns.pointer("/metadata/name").and_then(Value::as_str) {
                out.namespaces.insert(name.to_owned(), ns.clone());
            }
        }
        out.subresources = v
            .get("subresources")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        out
    }

    fn variables_for(&self, policy: &str, resource: &str) -> Variables {
        let mut global = self.global.clone();
        if let Some(r) = self.resources.get(policy).and_then(|m| m.get(resource)) {
            global.extend(r.iter().cloned());
        }
        Variables {
            global,
            per_rule: self.rules.get(policy).cloned().unwrap_or_default(),
        }
    }

    /// `request.operation` from the values that apply to a resource, if any.
    fn operation_for(&self, resource: &str) -> Option<Operation> {
        let from = |vals: &[(String, Value)]| {
            vals.iter()
                .find(|(k, _)| k == "request.operation")
                .and_then(|(_, v)| v.as_str())
                .and_then(Operation::parse)
        };
        self.resources
            .values()
            .filter_map(|m| m.get(resource))
            .find_map(|v| from(v))
            .or_else(|| from(&self.global))
    }
}

struct Loaded {
    policies: Vec<LoadedPolicy>,
    resources: Vec<Value>,
    params: Vec<Value>,
    /// `targetResources`: the resources mutate-existing rules may select (with the test's
    /// resources and parameters, as `kyverno test`'s fake cluster holds them).
    targets: Vec<Value>,
    /// Whether the cluster data holds the test's resources and parameters already
    /// (`clusterResources`).
    cluster_has_resources: bool,
    values: ValuesFile,
    request_info: RequestInfo,
    /// What `configMap`, `apiCall` and `globalReference` context entries read, when the test
    /// supplies any cluster data.
    cluster: Option<std::sync::Arc<ClusterSnapshot>>,
    /// What the CEL `resource`, `image`, `globalContext` and `http` libraries read.
    cel_context: ContextData,
}

fn load_test(dir: &Path, test: &Value) -> Result<Loaded, String> {
    let mut policies = Vec::new();
    for p in strings(test.get("policies")) {
        if p.starts_with("http://") || p.starts_with("https://") {
            return Err(format!("unsupported: remote policy {p}"));
        }
        let path = dir.join(&p);
        for file in files_of(&path) {
            let text = read(&file)?;
            policies.extend(
                load_policies(&text, &file.display().to_string()).map_err(|e| e.to_string())?,
            );
        }
    }
    // PolicyExceptions: CEL ones attach to their policies; Kyverno's are not evaluated yet.
    for e in strings(test.get("exceptions")) {
        for file in files_of(&dir.join(&e)) {
            let text = read(&file)?;
            for p in load_policies(&text, &file.display().to_string()).map_err(|e| e.to_string())? {
                if let LoadedPolicy::Unsupported {
                    kind, api_version, ..
                } = &p
                {
                    return Err(format!("unsupported: exception {api_version}/{kind}"));
                }
                policies.push(p);
            }
        }
    }
    provenance_policy::admission::loader::link(&mut policies);
    let params = load_resources(dir, &strings(test.get("paramResources")))?;
    let mut resources = load_resources(dir, &strings(test.get("resources")))?;
    // As `kyverno test` does: a namespaced resource without a namespace is in `default`.
    for r in &mut resources {
        let kind = r
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let has_ns = r
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty());
        if !has_ns
            && !provenance_policy::cel_policies::validating_policy::is_cluster_scoped_kind(&kind)
            && let Some(meta) = r.get_mut("metadata").and_then(Value::as_object_mut)
        {
            meta.insert("namespace".into(), Value::String("default".into()));
        }
    }
    load_rest(dir, test, policies, params, resources)
}

fn load_resources(dir: &Path, list: &[String]) -> Result<Vec<Value>, String> {
    let mut resources = Vec::new();
    for r in list {
        let path = dir.join(r);
        for file in files_of(&path) {
            let text = read(&file)?;
            for doc in
                load_documents(&text, &file.display().to_string()).map_err(|e| e.to_string())?
            {
                if doc
                    .get("kind")
                    .and_then(Value::as_str)
                    .is_some_and(|k| k.ends_with("List"))
                    && let Some(items) = doc.get("items").and_then(Value::as_array)
                {
                    resources.extend(items.iter().cloned());
                } else {
                    resources.push(doc);
                }
            }
        }
    }
    Ok(resources)
}

fn load_rest(
    dir: &Path,
    test: &Value,
    policies: Vec<LoadedPolicy>,
    params: Vec<Value>,
    resources: Vec<Value>,
) -> Result<Loaded, String> {
    let mut values = ValuesFile::default();
    if let Some(v) = test.get("variables").and_then(Value::as_str) {
        let text = read(&dir.join(v))?;
        let doc = load_document(&text, v).map_err(|e| e.to_string())?;
        values = ValuesFile::from_value(&doc);
    }
    if let Some(v) = test.get("values").filter(|v| v.is_object()) {
        values = ValuesFile::from_value(v);
    }
    let mut request_info = RequestInfo::default();
    if let Some(u) = test.get("userinfo").and_then(Value::as_str) {
        let text = read(&dir.join(u))?;
        let doc = load_document(&text, u).map_err(|e| e.to_string())?;
        request_info = serde_json::from_value(doc).map_err(|e| format!("{u}: {e}"))?;
    }
    let (cluster, cel_context) = cluster_data(dir, test, &resources, &params)?;
    let targets = load_resources(dir, &strings(test.get("targetResources")))?;
    Ok(Loaded {
        policies,
        resources,
        params,
        targets,
        cluster_has_resources: !strings(test.get("clusterResources")).is_empty(),
        values,
        request_info,
        cluster,
        cel_context,
    })
}

/// The cluster data of a test, as `kyverno test` builds its fake cluster: with
/// `clusterResources`, the cluster holds them, their CRDs and the test's resources and
/// parameters (and CEL look-ups read that cluster); without, CEL look-ups read the `context`
/// file. `globalContextEntries` and `apiCallResponses` answer both kinds of policy.
fn cluster_data(
    dir: &Path,
    test: &Value,
    resources: &[Value],
    params: &[Value],
) -> Result<(Option<std::sync::Arc<ClusterSnapshot>>, ContextData), String> {
    use crate::cluster_data as cd;
    let mut snapshot = ClusterSnapshot::new();
    let mut cel = ContextData::new();
    let cluster_files = strings(test.get("clusterResources"));
    let gce = test
        .get("globalContextEntries")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let responses = test
        .get("apiCallResponses")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if !cluster_files.is_empty() {
        for f in &cluster_files {
            cd::add_cluster_resources_file(&mut snapshot, &dir.join(f), dir)?;
        }
        for r in resources.iter().chain(params) {
            snapshot.add_resource(r.clone());
        }
        cd::add_snapshot_resources(&mut cel, &snapshot);
    } else if let Some(c) = test.get("context").and_then(Value::as_str) {
        cd::add_context_file(&mut cel, &dir.join(c))?;
    }
    cd::add_global_context_entries(&mut snapshot, &mut cel, &gce, dir)?;
    cd::add_api_call_responses(&mut snapshot, &mut cel, &responses)?;
    let any = !cluster_files.is_empty() || !gce.is_empty() || !responses.is_empty();
    Ok((any.then(|| std::sync::Arc::new(snapshot)), cel))
}

fn files_of(path: &Path) -> Vec<PathBuf> {
    if path.is_dir() {
        let mut v: Vec<PathBuf> = std::fs::read_dir(path)
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.extension()
                    .is_some_and(|e| e == "yaml" || e == "yml" || e == "json")
            })
            .collect();
        v.sort();
        v
    } else {
        vec![path.to_path_buf()]
    }
}

fn resource_key(r: &Value) -> (String, String, String, String) {
    let s = |p: &str| {
        r.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    (
        s("/apiVersion"),
        s("/kind"),
        s("/metadata/namespace"),
        s("/metadata/name"),
    )
}

fn input_for(resource: &Value, loaded: &Loaded) -> ResourceInput {
    let (_, kind, ns, name) = resource_key(resource);
    let mut input = ResourceInput::create(resource.clone());
    input.request_info = loaded.request_info.clone();
    if let Some(op) = loaded.values.operation_for(&name) {
        input.operation = op;
    }
    if let Some(labels) = loaded.values.namespace_labels.get(&ns) {
        input.namespace_labels = labels.clone();
    } else if let Some(labels) = loaded
        .values
        .namespaces
        .get(&ns)
        .and_then(|o| o.pointer("/metadata/labels"))
        .and_then(Value::as_object)
    {
        input.namespace_labels = labels
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
            .collect();
    }
    // A resource of a subresource kind (e.g. autoscaling/v1 Scale) is evaluated as the
    // parent kind's subresource, as `kyverno test` does with the values file's subresources.
    let (api_version, ..) = resource_key(resource);
    for s in &loaded.values.subresources {
        let sub = &s["subresource"];
        let sub_gv = match sub["group"].as_str().unwrap_or_default() {
            "" => sub["version"].as_str().unwrap_or_default().to_owned(),
            g => format!("{g}/{}", sub["version"].as_str().unwrap_or_default()),
        };
        if sub["kind"].as_str() == Some(kind.as_str()) && sub_gv == api_version {
            let parent = &s["parentResource"];
            let g = |k: &str| parent[k].as_str().unwrap_or_default().to_owned();
            input.gvk_override = Some((g("group"), g("version"), g("kind")));
            input.subresource = sub["name"]
                .as_str()
                .and_then(|n| n.split('/').nth(1))
                .unwrap_or_default()
                .to_owned();
        }
    }
    input
}

/// Runs one test file.
pub fn run_file(path: &Path, now: UnixTime) -> Vec<Row> {
    let file = path.display().to_string();
    let dir = path.parent().unwrap_or(Path::new("."));
    let err_row = |reason: String, skipped: bool| Row {
        file: file.clone(),
        policy: String::new(),
        rule: String::new(),
        resource: String::new(),
        expected: String::new(),
        actual: String::new(),
        ok: if skipped { None } else { Some(false) },
        reason,
    };
    let tests = match read(path).and_then(|t| load_documents(&t, &file).map_err(|e| e.to_string()))
    {
        Ok(t) => t,
        Err(e) => return vec![err_row(e, false)],
    };
    tests
        .iter()
        .flat_map(|t| run_test(&file, dir, t, now))
        .collect()
}

fn run_test(file: &str, dir: &Path, test: &Value, now: UnixTime) -> Vec<Row> {
    let file = file.to_owned();
    let results = test
        .get("results")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let loaded = load_test(dir, test);
    let loaded = match loaded {
        Ok(l) => l,
        Err(reason) => {
            let skipped = reason.starts_with("unsupported");
            return rows_for_all(
                &file,
                &results,
                if skipped { None } else { Some(false) },
                &reason,
            );
        }
    };
    let env = match &loaded.cluster {
        Some(c) => Env::at(now).with_cluster(c.clone()),
        None => Env::at(now),
    };
    let existing_env = mutate_existing_env(&loaded, now);
    let exceptions: Vec<_> = loaded
        .policies
        .iter()
        .filter_map(|p| match p {
            LoadedPolicy::Exception(e) => Some(e.clone()),
            _ => None,
        })
        .collect();
    // Apply every Kyverno policy to every resource: mutate rules first, policy after policy,
    // each seeing the previous one's output; then validation sees the mutated resource.
    // `op`: the operation a result names (`kyverno test` runs the resources once more per
    // operation the results name), else the values file's or CREATE.
    let evaluate = |op: Option<Operation>| -> Result<Vec<Response>, Vec<Row>> {
        let mut responses: Vec<Response> = Vec::new();
        let mut targets_patched = Vec::new();
        for resource in &loaded.resources {
            let key = resource_key(resource);
            let mut input = input_for(resource, &loaded);
            if let Some(op) = op {
                input.operation = op;
            }
            let mut mutated: Vec<(PolicyResponse, Value)> = Vec::new();
            for p in &loaded.policies {
                if let LoadedPolicy::Kyverno(cp) = p
                    && cp.has_mutate()
                {
                    let vars = loaded.values.variables_for(&cp.name, &key.3);
                    let (mut resp, patched) = cp.mutate(&input, &vars, &env, &exceptions);
                    input.object = patched.clone();
                    // Mutate-existing rules report on the trigger (which they leave as it
                    // is) and patch copies of their targets.
                    if cp.has_mutate_existing() {
                        let existing =
                            cp.mutate_existing(&input, &vars, &existing_env, &exceptions);
                        resp.rules.extend(existing.response.rules.iter().cloned());
                        targets_patched.push((resp.policy.clone(), resp.kind.clone(), existing));
                    }
                    mutated.push((resp, patched));
                }
            }
            // ClusterPolicy validation sees the mutate rules' output; CEL mutation policies
            // (MutatingAdmissionPolicies, then MutatingPolicies) apply next, and the CEL
            // validating policies see their output, as `kyverno test` orders them.
            let cp_input = input.clone();
            let (cel_mutations, cel_patched) = crate::kyverno_test_mutating::apply(
                &loaded.policies,
                &mut input,
                &loaded.params,
                |pi| {
                    pi.context = loaded.cel_context.clone();
                    if let Some(ns) = loaded.values.namespaces.get(&key.2) {
                        pi.namespace_object = Some(ns.clone());
                    }
                },
            );
            let mut pi = provenance_policy::lang::cel::PolicyInput::from(&input);
            pi.context = loaded.cel_context.clone();
            if let Some(ns) = loaded.values.namespaces.get(&key.2) {
                pi.namespace_object = Some(ns.clone());
            }
            let mut rs = cel_mutations;
            let mut patched_by = cel_patched;
            // MutatingPolicies with mutateExisting patch copies of the test's targets; their
            // results are reported for the trigger too, as `kyverno test` reports them.
            {
                let mut trigger = provenance_policy::lang::cel::PolicyInput::from(&cp_input);
                trigger.context = loaded.cel_context.clone();
                if let Some(ns) = loaded.values.namespaces.get(&key.2) {
                    trigger.namespace_object = Some(ns.clone());
                }
                for existing in crate::kyverno_test_mutating::mutate_existing(
                    &loaded.policies,
                    &trigger,
                    &loaded.targets,
                ) {
                    rs.push(existing.response.clone());
                    targets_patched.push((
                        existing.response.policy.clone(),
                        existing.response.kind.clone(),
                        existing,
                    ));
                }
            }
            for p in &loaded.policies {
                match p {
                    LoadedPolicy::Kyverno(cp) => {
                        let vars = loaded.values.variables_for(&cp.name, &key.3);
                        let prepared = provenance_policy::kyverno::engine::Prepared::new(&cp_input)
                            .with_exceptions(exceptions.clone())
                            .without_mutation();
                        let gen_env;
                        let policy_env = if cp.rules.iter().any(|r| {
                            matches!(
                                r.kind,
                                provenance_policy::kyverno::policy::RuleKind::Generate
                            )
                        }) {
                            gen_env = match generate_env(
                                dir,
                                &results,
                                cp,
                                &cp_input.object,
                                &loaded,
                                now,
                            ) {
                                Ok(e) => e,
                                Err(reason) => {
                                    return Err(rows_for_all(
                                        &file,
                                        &results,
                                        Some(false),
                                        &reason,
                                    ));
                                }
                            };
                            &gen_env
                        } else {
                            &env
                        };
                        let mut resp = cp.evaluate_prepared(&prepared, &vars, policy_env);
                        if let Some(i) = mutated.iter().position(|(m, _)| m.policy == resp.policy) {
                            let (m, patched) = mutated.remove(i);
                            let mut rules = m.rules;
                            rules.append(&mut resp.rules);
                            resp.rules = rules;
                            patched_by.push((resp.policy.clone(), patched));
                        }
                        rs.push(resp);
                    }
                    LoadedPolicy::Validating(vp) => rs.push(PolicyResponse::new(
                        vp.name(),
                        "ValidatingPolicy",
                        vp.evaluate(&pi),
                    )),
                    LoadedPolicy::Vap(vap) => rs.push(PolicyResponse::new(
                        vap.name(),
                        "ValidatingAdmissionPolicy",
                        vap.evaluate(&pi, &loaded.params),
                    )),
                    // No registry access here: image verification functions report
                    // `policy.unsupported` (the row is skipped), everything else is evaluated.
                    LoadedPolicy::ImageValidating(ivp) => rs.push(PolicyResponse::new(
                        ivp.name(),
                        "ImageValidatingPolicy",
                        ivp.evaluate(&pi, None, &mut Default::default()),
                    )),
                    LoadedPolicy::Generating(gp) => rs.push(gp.evaluate(&pi)),
                    LoadedPolicy::Deleting(dp) => rs.push(PolicyResponse::new(
                        dp.name(),
                        dp.kind(),
                        dp.decide(&pi, now).to_rule_result().into_iter().collect(),
                    )),
                    LoadedPolicy::Unsupported { .. }
                    | LoadedPolicy::Mutating(_)
                    | LoadedPolicy::MutatingBinding(_)
                    | LoadedPolicy::Binding(_)
                    | LoadedPolicy::CelException(_)
                    | LoadedPolicy::Exception(_) => {}
                    // A kind this harness does not know yet reports nothing: an expectation
                    // for it then fails as a missing result, never as a pass.
                    _ => {}
                }
            }
            responses.push(Response {
                key,
                policies: rs,
                patched_by,
                object: input.object,
            });
        }
        responses.extend(target_responses(&loaded.targets, &targets_patched));
        Ok(responses)
    };
    let mut responses = match evaluate(None) {
        Ok(r) => r,
        Err(rows) => return rows,
    };
    let mut by_operation: BTreeMap<String, Vec<Response>> = BTreeMap::new();
    for op in results
        .iter()
        .filter_map(|r| r.get("operation").and_then(Value::as_str))
    {
        if by_operation.contains_key(op) {
            continue;
        }
        let Some(parsed) = Operation::parse(op) else {
            return rows_for_all(
                &file,
                &results,
                Some(false),
                &format!("unknown operation {op:?} in the test's results"),
            );
        };
        match evaluate(Some(parsed)) {
            Ok(r) => {
                by_operation.insert(op.to_owned(), r);
            }
            Err(rows) => return rows,
        }
    }
    // JSON payloads (`jsonPayloads`, or the older `jsonPayload`): JSON-mode ValidatingPolicies
    // and DeletingPolicies evaluate each document as `object`, named by its file.
    let payloads = match json_payloads(dir, test) {
        Ok(p) => p,
        Err(reason) => {
            return rows_for_all(&file, &results, Some(false), &reason);
        }
    };
    for (name, payload) in payloads {
        let mut rs = Vec::new();
        for p in &loaded.policies {
            match p {
                LoadedPolicy::Validating(vp) if vp.is_json_mode() => rs.push(PolicyResponse::new(
                    vp.name(),
                    vp.kind(),
                    vp.evaluate_payload(&payload, &name, &loaded.cel_context),
                )),
                LoadedPolicy::Deleting(dp) => {
                    let mut pi = provenance_policy::lang::cel::PolicyInput::create(payload.clone());
                    pi.context = loaded.cel_context.clone();
                    let mut rules: Vec<_> =
                        dp.decide(&pi, now).to_rule_result().into_iter().collect();
                    for r in &mut rules {
                        r.resource = provenance_core::ResourceRef {
                            api_version: String::new(),
                            kind: String::new(),
                            namespace: String::new(),
                            name: name.clone(),
                        };
                    }
                    rs.push(PolicyResponse::new(dp.name(), dp.kind(), rules));
                }
                _ => {}
            }
        }
        responses.push(Response {
            key: (String::new(), String::new(), String::new(), name),
            policies: rs,
            patched_by: Vec::new(),
            object: payload,
        });
    }
    // Authorization payloads (`envoyPayloads`, `httpPayloads`): each Envoy or HTTP
    // ValidatingPolicy answers each request of its kind, named by its file.
    let authz = match authz_payloads(dir, test) {
        Ok(p) => p,
        Err(reason) => {
            return rows_for_all(&file, &results, Some(false), &reason);
        }
    };
    for (envoy, name, payload) in authz {
        let rs = loaded
            .policies
            .iter()
            .filter_map(|p| match p {
                LoadedPolicy::Validating(vp)
                    if (envoy && vp.is_envoy_mode()) || (!envoy && vp.is_http_mode()) =>
                {
                    Some(PolicyResponse::new(
                        vp.name(),
                        vp.kind(),
                        vp.evaluate_authz_payload(&payload, &name, &loaded.cel_context, now),
                    ))
                }
                _ => None,
            })
            .collect();
        responses.push(Response {
            key: (String::new(), String::new(), String::new(), name),
            policies: rs,
            patched_by: Vec::new(),
            object: payload,
        });
    }
    let mut rows = Vec::new();
    for r in &results {
        let responses = match r.get("operation").and_then(Value::as_str) {
            Some(op) => by_operation.get(op).map_or(&[][..], Vec::as_slice),
            None => &responses,
        };
        rows.extend(check_expectation(&file, dir, r, &loaded, responses));
    }
    rows
}

/// The test's JSON payloads, each with the name the test gives it: every file must hold one
/// JSON object, as `kyverno test` requires.
fn json_payloads(dir: &Path, test: &Value) -> Result<Vec<(String, Value)>, String> {
    let mut names = strings(test.get("jsonPayloads"));
    if let Some(one) = test.get("jsonPayload").and_then(Value::as_str)
        && !one.is_empty()
    {
        names.push(one.to_owned());
    }
    names
        .into_iter()
        .map(|name| {
            let path = dir.join(&name);
            let text = read(&path)?;
            let v: Value = serde_json::from_str(&text)
                .map_err(|e| format!("JSON payload {name}: not JSON: {e}"))?;
            if !v.is_object() {
                return Err(format!(
                    "JSON payload {name} must be a top-level object (map)"
                ));
            }
            Ok((name, v))
        })
        .collect()
}

/// The test's authorization payloads: `(envoy, name, request)` for each `envoyPayloads` and
/// `httpPayloads` entry, each file one JSON document (its shape is checked when a policy
/// evaluates it).
fn authz_payloads(dir: &Path, test: &Value) -> Result<Vec<(bool, String, Value)>, String> {
    let mut out = Vec::new();
    for (key, envoy) in [("envoyPayloads", true), ("httpPayloads", false)] {
        for name in strings(test.get(key)) {
            let text = read(&dir.join(&name))?;
            let v = json_without_repeated_keys(&text)
                .map_err(|e| format!("{key} {name}: not JSON: {e}"))?;
            out.push((envoy, name, v));
        }
    }
    Ok(out)
}

/// Parses one JSON document, refusing an object that names a key twice (protobuf's JSON
/// reading, which Envoy requests go through, refuses it; a plain JSON reader would keep the
/// last value, so a repeated `authorization` header would hide the first one).
fn json_without_repeated_keys(text: &str) -> Result<Value, String> {
    use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
    struct Strict;
    impl<'de> DeserializeSeed<'de> for Strict {
        type Value = Value;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
            d.deserialize_any(Strict)
        }
    }
    impl<'de> Visitor<'de> for Strict {
        type Value = Value;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON value")
        }
        fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
            Ok(Value::Bool(v))
        }
        fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
            Ok(v.into())
        }
        fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
            Ok(v.into())
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Value, E> {
            serde_json::Number::from_f64(v)
                .map(Value::Number)
                .ok_or_else(|| E::custom("a number that is not finite"))
        }
        fn visit_str<E>(self, v: &str) -> Result<Value, E> {
            Ok(Value::String(v.to_owned()))
        }
        fn visit_string<E>(self, v: String) -> Result<Value, E> {
            Ok(Value::String(v))
        }
        fn visit_unit<E>(self) -> Result<Value, E> {
            Ok(Value::Null)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
            let mut out = Vec::new();
            while let Some(v) = seq.next_element_seed(Strict)? {
                out.push(v);
            }
            Ok(Value::Array(out))
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
            let mut out = serde_json::Map::new();
            while let Some(key) = map.next_key::<String>()? {
                if out.contains_key(&key) {
                    return Err(serde::de::Error::custom(format!("key {key:?} repeated")));
                }
                let value = map.next_value_seed(Strict)?;
                out.insert(key, value);
            }
            Ok(Value::Object(out))
        }
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let v = Strict.deserialize(&mut de).map_err(|e| e.to_string())?;
    de.end().map_err(|e| e.to_string())?;
    Ok(v)
}

/// The cluster mutate-existing rules read their targets from, as `kyverno test`'s fake cluster
/// holds them: the test's cluster data, its resources (as given, not mutated), its
/// `targetResources` and its parameter resources.
fn mutate_existing_env(loaded: &Loaded, now: UnixTime) -> Env {
    let mut snapshot = loaded
        .cluster
        .as_deref()
        .cloned()
        .unwrap_or_default()
        .with_resources_supplied();
    if !loaded.cluster_has_resources {
        for r in loaded.resources.iter().chain(&loaded.params) {
            snapshot.add_resource(r.clone());
        }
    }
    for r in &loaded.targets {
        snapshot.add_resource(r.clone());
    }
    Env::at(now).with_cluster(std::sync::Arc::new(snapshot))
}

/// The responses `kyverno test` checks for each of the test's `targetResources`: for every
/// trigger's policy response, the first rule that patched a resource of the target's
/// apiVersion, kind, name and namespace (any namespace when the target names none), with
/// the patched copy.
fn target_responses(
    targets: &[Value],
    patched: &[(
        String,
        String,
        provenance_policy::kyverno::mutate::MutateExisting,
    )],
) -> Vec<Response> {
    let mut out = Vec::new();
    for target in targets {
        let key = resource_key(target);
        for (policy, kind, existing) in patched {
            let Some(m) = existing.targets.iter().find(|m| {
                m.patched.as_ref().is_some_and(|p| {
                    let k = resource_key(p);
                    k.0 == key.0
                        && k.1 == key.1
                        && k.3 == key.3
                        && (key.2.is_empty() || k.2 == key.2)
                })
            }) else {
                continue;
            };
            let Some(object) = m.patched.clone() else {
                continue;
            };
            out.push(Response {
                key: resource_key(&object),
                policies: vec![PolicyResponse::new(
                    policy.clone(),
                    kind.clone(),
                    vec![m.result.clone()],
                )],
                patched_by: vec![(policy.clone(), object.clone())],
                object,
            });
        }
    }
    out
}

/// The cluster `kyverno test` gives a policy's `generate` rules: the test's cluster data, the
/// trigger resource, and the `cloneSourceResource` files its expectations name for the policy.
fn generate_env(
    dir: &Path,
    results: &[Value],
    policy: &provenance_policy::kyverno::policy::ClusterPolicy,
    trigger: &Value,
    loaded: &Loaded,
    now: UnixTime,
) -> Result<Env, String> {
    let mut snapshot = loaded
        .cluster
        .as_deref()
        .cloned()
        .unwrap_or_default()
        .with_resources_supplied();
    snapshot.add_resource(trigger.clone());
    for r in results {
        let named = r
            .get("policy")
            .and_then(Value::as_str)
            .and_then(|p| p.rsplit('/').next());
        if named != Some(policy.name.as_str()) {
            continue;
        }
        let Some(f) = r.get("cloneSourceResource").and_then(Value::as_str) else {
            continue;
        };
        for res in load_resources(dir, &[f.to_owned()])? {
            snapshot.add_resource(res);
        }
    }
    Ok(Env::at(now).with_cluster(std::sync::Arc::new(snapshot)))
}

/// Kyverno's tracking labels are not compared: `generate.kyverno.io/*` labels are dropped and
/// `app.kubernetes.io/managed-by: kyverno` is set on both sides, as `kyverno test` does.
fn fixup_generate_labels(v: &mut Value) {
    let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    let mut labels: serde_json::Map<String, Value> = meta
        .get("labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter(|(k, _)| !k.starts_with(provenance_policy::kyverno::generate::LABEL_PREFIX))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    labels.insert(
        provenance_policy::kyverno::generate::MANAGED_BY_LABEL.into(),
        Value::String("kyverno".into()),
    );
    meta.insert("labels".into(), Value::Object(labels));
}

/// Compares a generated resource with the resource of the same apiVersion, kind, namespace
/// and name in `file`: `Ok(None)` when equal, `Ok(Some(diff))` when not, `Err` when the file
/// has no such resource or cannot be read.
fn compare_generated(dir: &Path, file: &str, actual: &Value) -> Result<Option<String>, String> {
    let path = dir.join(file);
    let docs = load_resources(dir, &[file.to_owned()])?;
    let key = resource_key(actual);
    let Some(expected) = docs.iter().find(|d| resource_key(d) == key) else {
        return Err(format!(
            "resource with name {} not found in manifest {}",
            key.3,
            path.display()
        ));
    };
    let (mut a, mut e) = (actual.clone(), expected.clone());
    fixup_generate_labels(&mut a);
    fixup_generate_labels(&mut e);
    Ok(difference("generated", &path, &a, &e))
}

/// The rows of a generate rule's result, as `kyverno test` checks them: without generated
/// resources, the status alone; otherwise one row per created resource, compared with
/// `generatedResource` (or any of `generatedResources`) and the status.
fn generate_rows(
    dir: &Path,
    r: &Value,
    rr: &provenance_core::RuleResult,
    generated: &[&provenance_policy::kyverno::generate::GeneratedResource],
    row: &dyn Fn(String, String, Option<bool>, String) -> Row,
    res: &str,
) -> Vec<Row> {
    let expected = r.get("result").and_then(Value::as_str).unwrap_or_default();
    let actual = rr.status.as_str().to_owned();
    let status_ok = RuleStatus::parse(expected) == Some(rr.status);
    if generated.is_empty() {
        return vec![row(
            res.to_owned(),
            actual,
            Some(status_ok),
            rr.message.clone(),
        )];
    }
    let files: Vec<String> = match r.get("generatedResource").and_then(Value::as_str) {
        Some(f) => vec![f.to_owned()],
        None => strings(r.get("generatedResources")),
    };
    let mut rows = Vec::new();
    for g in generated {
        let t = g.target();
        let name = if t.namespace.is_empty() {
            format!("{}/{}", t.kind, t.name)
        } else {
            format!("{}/{}/{}", t.kind, t.namespace, t.name)
        };
        let mut failure = None;
        if !files.is_empty() {
            let mut last = String::new();
            let mut matched = false;
            for f in &files {
                match compare_generated(dir, f, &g.resource) {
                    Ok(None) => {
                        matched = true;
                        break;
                    }
                    Ok(Some(diff)) => last = diff,
                    Err(e) => {
                        if last.is_empty() {
                            last = e;
                        }
                    }
                }
            }
            if !matched {
                failure = Some(last);
            }
        }
        rows.push(match failure {
            Some(why) => row(name, actual.clone(), Some(false), why),
            None => row(
                name,
                actual.clone(),
                Some(status_ok),
                format!("{} (trigger {res})", rr.message),
            ),
        });
    }
    rows
}

/// The responses of every policy for one resource.
struct Response {
    /// apiVersion, kind, namespace, name of the resource as given.
    key: (String, String, String, String),
    policies: Vec<PolicyResponse>,
    /// The resource as each policy with mutate rules left it.
    patched_by: Vec<(String, Value)>,
    /// The resource after every mutation (what validation saw).
    object: Value,
}

/// Drops nulls, empty maps and empty lists, as `kyverno test` does before comparing.
fn tidy(v: &Value) -> Option<Value> {
    match v {
        Value::Null => None,
        Value::Object(m) => {
            let out: serde_json::Map<String, Value> = m
                .iter()
                .filter_map(|(k, v)| tidy(v).map(|v| (k.clone(), v)))
                .collect();
            (!out.is_empty()).then_some(Value::Object(out))
        }
        Value::Array(a) => {
            let out: Vec<Value> = a.iter().filter_map(tidy).collect();
            (!out.is_empty()).then_some(Value::Array(out))
        }
        other => Some(other.clone()),
    }
}

/// Compares `actual` with the resource of the same apiVersion, kind, namespace and name in
/// the `patchedResources` file: `Ok(None)` when equal, `Ok(Some(diff))` when not, `Err` when
/// the file has no such resource or cannot be read.
fn compare_patched(dir: &Path, file: &str, actual: &Value) -> Result<Option<String>, String> {
    let path = dir.join(file);
    let docs = read(&path)
        .and_then(|t| load_documents(&t, &path.display().to_string()).map_err(|e| e.to_string()))?;
    let key = resource_key(actual);
    // Resources are loaded into `default` when they name no namespace; so is the file's.
    let docs: Vec<Value> = docs
        .into_iter()
        .map(|mut d| {
            if key.2 == "default"
                && d.pointer("/metadata/namespace").is_none()
                && let Some(meta) = d.get_mut("metadata").and_then(Value::as_object_mut)
            {
                meta.insert("namespace".into(), Value::String("default".into()));
            }
            d
        })
        .collect();
    let Some(expected) = docs.iter().find(|d| resource_key(d) == key) else {
        return Err(format!(
            "resource with name {} not found in manifest {}",
            key.3,
            path.display()
        ));
    };
    Ok(difference("patched", &path, actual, expected))
}

/// How `actual` differs from `expected` (read from `path`) once both are tidied as `kyverno
/// test` tidies them: `None` when they are the same, else the patch from one to the other.
fn difference(what: &str, path: &Path, actual: &Value, expected: &Value) -> Option<String> {
    let (a, e) = (tidy(actual), tidy(expected));
    if a == e {
        return None;
    }
    let a = a.unwrap_or(Value::Null);
    let e = e.unwrap_or(Value::Null);
    let ops = provenance_policy::kyverno::mutate::json_patch::diff(&e, &a);
    Some(format!(
        "{what} resource does not match {}: from expected to actual: {}",
        path.display(),
        Value::Array(ops)
    ))
}

/// The same row for every expectation of a test (a test that cannot run, or whose setup failed).
fn rows_for_all(file: &str, results: &[Value], ok: Option<bool>, reason: &str) -> Vec<Row> {
    results
        .iter()
        .map(|r| expectation_row(file, r, String::new(), String::new(), ok, reason.to_owned()))
        .collect()
}

fn expectation_row(
    file: &str,
    r: &Value,
    resource: String,
    actual: String,
    ok: Option<bool>,
    reason: String,
) -> Row {
    let s = |k: &str| {
        r.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    Row {
        file: file.to_owned(),
        policy: s("policy"),
        rule: s("rule"),
        resource,
        expected: s("result"),
        actual,
        ok,
        reason,
    }
}

fn check_expectation(
    file: &str,
    dir: &Path,
    r: &Value,
    loaded: &Loaded,
    responses: &[Response],
) -> Vec<Row> {
    let row = |resource: String, actual: String, ok: Option<bool>, reason: String| {
        expectation_row(file, r, resource, actual, ok, reason)
    };
    let policy_name = r.get("policy").and_then(Value::as_str).unwrap_or_default();
    let policy_short = policy_name.rsplit('/').next().unwrap_or_default();
    let expected = r.get("result").and_then(Value::as_str).unwrap_or_default();
    let rule = r.get("rule").and_then(Value::as_str).unwrap_or_default();
    let Some(policy) = loaded.policies.iter().find(|p| p.name() == policy_short) else {
        return vec![row(
            String::new(),
            String::new(),
            Some(false),
            format!("policy {policy_name} not found"),
        )];
    };
    if let LoadedPolicy::Unsupported { reason, .. } = policy {
        return vec![row(String::new(), String::new(), None, reason.clone())];
    }
    let wanted = strings(r.get("resources"));
    let mut matched: Vec<&Response> = Vec::new();
    if wanted.is_empty() {
        matched.extend(responses.iter());
    } else {
        for w in &wanted {
            let found: Vec<_> = responses
                .iter()
                .filter(|resp| match w.split_once('/') {
                    Some((wns, wname)) => *wns == resp.key.2 && *wname == resp.key.3,
                    None => w == &resp.key.3,
                })
                .collect();
            if found.is_empty() {
                return vec![row(
                    w.clone(),
                    String::new(),
                    Some(false),
                    format!("resource {w} not found"),
                )];
            }
            matched.extend(found);
        }
    }
    let patched_file = r.get("patchedResources").and_then(Value::as_str);
    let mut rows = Vec::new();
    for resp in matched {
        let (_, kind, ns, name) = &resp.key;
        let prs = &resp.policies;
        let res = if ns.is_empty() {
            format!("{kind}/{name}")
        } else {
            format!("{kind}/{ns}/{name}")
        };
        let Some(pr) = prs
            .iter()
            .find(|p| p.policy.rsplit('/').next() == Some(policy_short))
        else {
            rows.push(row(res, String::new(), Some(false), "not found".into()));
            continue;
        };
        let ruleless = pr.kind != "ClusterPolicy" && pr.kind != "Policy";
        let rule_results: Vec<_> = pr
            .rules
            .iter()
            .filter(|rr| {
                rule.is_empty()
                    || ruleless
                    || rr.rule == rule
                    || rr.rule == format!("autogen-{rule}")
                    || rr.rule == format!("autogen-cronjob-{rule}")
            })
            .collect();
        if rule_results.is_empty() {
            rows.push(row(
                res,
                String::new(),
                Some(true),
                "excluded: rule did not match the resource".into(),
            ));
            continue;
        }
        for rr in rule_results {
            if let Some(reason) = rr.reasons.iter().find(|x| x.code == UNSUPPORTED) {
                rows.push(row(
                    res.clone(),
                    String::new(),
                    None,
                    reason.message.clone(),
                ));
                continue;
            }
            let is_generate = matches!(policy, LoadedPolicy::Kyverno(cp)
                if cp.rules.iter().any(|x| x.name == rr.rule
                    && matches!(x.kind, provenance_policy::kyverno::policy::RuleKind::Generate)));
            if let LoadedPolicy::Generating(_) = policy {
                // `kyverno test` evaluates GeneratingPolicies without a cluster: the objects
                // are compared as written, without Kyverno's labels and without annotations.
                let generated: Vec<_> = pr
                    .generated
                    .iter()
                    .map(|g| {
                        let mut g = g.clone();
                        if let Some(meta) = g
                            .resource
                            .get_mut("metadata")
                            .and_then(Value::as_object_mut)
                        {
                            meta.remove("annotations");
                        }
                        g
                    })
                    .collect();
                let refs: Vec<_> = generated.iter().collect();
                rows.extend(generate_rows(dir, r, rr, &refs, &row, &res));
                continue;
            }
            if is_generate {
                let generated: Vec<_> = pr
                    .generated
                    .iter()
                    .filter(|g| {
                        g.rule == rr.rule
                            && g.action
                                == provenance_policy::kyverno::generate::GenerateAction::Create
                    })
                    .collect();
                rows.extend(generate_rows(dir, r, rr, &generated, &row, &res));
                continue;
            }
            let actual = rr.status.as_str().to_owned();
            if let Some(pf) = patched_file {
                // A mutate rule is checked against its policy's output, any other rule
                // against the resource it saw (after every mutation), as `kyverno test` does.
                let is_mutate = matches!(policy, LoadedPolicy::Mutating(_))
                    || matches!(policy, LoadedPolicy::Kyverno(cp)
                    if cp.rules.iter().any(|x| x.name == rr.rule
                        && matches!(x.kind, provenance_policy::kyverno::policy::RuleKind::Mutate)));
                let object = resp
                    .patched_by
                    .iter()
                    .find(|(p, _)| is_mutate && p == &pr.policy)
                    .map(|(_, o)| o)
                    .unwrap_or(&resp.object);
                match compare_patched(dir, pf, object) {
                    Ok(None) => {}
                    Ok(Some(diff)) => {
                        rows.push(row(res.clone(), actual, Some(false), diff));
                        continue;
                    }
                    Err(e) if e.contains("not found in manifest") => {
                        rows.push(row(
                            res.clone(),
                            actual,
                            None,
                            format!("{e} (kyverno test reports no result)"),
                        ));
                        continue;
                    }
                    Err(e) => {
                        rows.push(row(res.clone(), actual, Some(false), e));
                        continue;
                    }
                }
            }
            let ok = RuleStatus::parse(expected) == Some(rr.status);
            let mut reason = rr.message.clone();
            if rr.rule != rule && !rule.is_empty() {
                reason = format!("[{}] {reason}", rr.rule);
            }
            rows.push(row(res.clone(), actual, Some(ok), reason));
        }
    }
    rows
}

#[cfg(test)]
mod payload_tests {
    use super::json_without_repeated_keys;

    #[test]
    fn a_repeated_key_is_refused_at_any_depth() {
        let ok = json_without_repeated_keys(r#"{"a": {"b": [1, {"c": null}]}, "d": 1.5}"#);
        assert_eq!(
            ok,
            Ok(serde_json::json!({"a": {"b": [1, {"c": null}]}, "d": 1.5}))
        );
        for bad in [
            r#"{"authorization": "x", "authorization": "y"}"#,
            r#"{"attributes": {"request": {"http": {"headers": {"a": "1", "a": "2"}}}}}"#,
            r#"[{"k": 1, "k": 1}]"#,
            r#"{"a": 1} {"b": 2}"#,
        ] {
            assert!(json_without_repeated_keys(bad).is_err(), "{bad}");
        }
    }
}
