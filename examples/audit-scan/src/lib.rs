//! # audit-scan
//!
//! A background (audit) scan, as Kyverno's reports controller does it, built from the SDK:
//! evaluate the Pods already running in a cluster against Kyverno policies and write one
//! PolicyReport per namespace. This library is the part a controller embeds (call
//! [`Scanner::scan`] on every resync with the Pods from its informer cache); `src/main.rs`
//! is the command-line wrapper that reads Pods through kube-rs or from a `kubectl get -o json`
//! List file.
//!
//! Background semantics follow Kyverno's scanner:
//!
//! - each resource is evaluated as a `CREATE` with no requester (no `request.userInfo`, roles
//!   or cluster roles), with its namespace's labels for `namespaceSelector`;
//! - a policy takes no part when it opts out (`spec.background: false`; for
//!   `policies.kyverno.io` policies `spec.evaluation.background.enabled: false`), or when it
//!   depends on who made the request: `roles`, `clusterRoles` or `subjects` in a rule's
//!   `match` / `exclude`, or variables `request.userInfo`, `request.roles`,
//!   `request.clusterRoles`, `serviceAccountName`, `serviceAccountNamespace`. Kyverno's
//!   validation refuses such a policy for background mode and its scanner drops it; so do
//!   we, and [`Scanner::skipped`] says which and why;
//! - the `kyverno.io/verify-images` annotations a previous admission left on a resource are
//!   removed before `verifyImages` rules run, so images are verified again, never trusted from
//!   a Pod annotation.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;

use provenance_core::{RuleResult, UnixTime};
use provenance_policy::admission::PolicySet;
use provenance_policy::admission::request::ResourceInput;
use provenance_policy::kyverno::verify_images::{ImageRequest, VerifyImagesContext};
use provenance_policy::lang::jmespath::Env;
use serde_json::Value;

/// Annotations Kyverno writes at admission about verified images; a scan never trusts them.
const IMAGE_VERIFY_ANNOTATIONS: [&str; 2] = [
    "kyverno.io/verify-images",
    "kyverno.io/verify-images-scoped",
];

/// Variables that name the requester; a policy using one cannot run in background mode.
const REQUESTER_VARIABLES: [&str; 5] = [
    "serviceAccountName",
    "serviceAccountNamespace",
    "request.userInfo",
    "request.roles",
    "request.clusterRoles",
];

/// The `/preverify` bodies that warm an admission webhook's caches from the Pods already
/// running: one per distinct (namespace, labels, annotations, images), so the Pods of one
/// ReplicaSet are sent once. Each body is `{"object": pod}` with the Pod as it runs (its
/// images often already pinned to the digests admission verified), without `status` and
/// `metadata.managedFields`; the webhook decides it as it would decide the Pod's next
/// replica, which leaves the evidence and verified checks in its caches.
pub fn warm_bodies(pods: &[Value]) -> Vec<Value> {
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for pod in pods {
        if pod.get("kind").and_then(Value::as_str) != Some("Pod") {
            continue;
        }
        let images: Vec<&str> = ["initContainers", "containers", "ephemeralContainers"]
            .iter()
            .filter_map(|k| pod.pointer(&format!("/spec/{k}")).and_then(Value::as_array))
            .flatten()
            .filter_map(|c| c.get("image").and_then(Value::as_str))
            .collect();
        if images.is_empty() {
            continue;
        }
        let meta = |k: &str| pod.pointer(&format!("/metadata/{k}")).cloned();
        let key = serde_json::json!([
            meta("namespace"),
            meta("labels"),
            meta("annotations"),
            images
        ])
        .to_string();
        if !seen.insert(key) {
            continue;
        }
        let mut object = pod.clone();
        if let Some(o) = object.as_object_mut() {
            o.remove("status");
        }
        if let Some(m) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("managedFields");
        }
        out.push(serde_json::json!({ "object": object }));
    }
    out
}

/// A policy document left out of the scan, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedPolicy {
    /// `Kind/name` of the policy.
    pub policy: String,
    /// Why Kyverno's background scan would not run it.
    pub reason: String,
}

/// Why a policy document takes no part in a background scan (`None`: it does). Documents
/// that are not policies (exceptions, bindings) always take part.
pub fn background_exclusion(doc: &Value) -> Option<String> {
    let api = doc
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let kind = doc.get("kind").and_then(Value::as_str).unwrap_or_default();
    let spec = doc.get("spec")?;
    if api.starts_with("kyverno.io/") && matches!(kind, "ClusterPolicy" | "Policy") {
        if spec.get("background") == Some(&Value::Bool(false)) {
            return Some("spec.background is false".into());
        }
        let rules = spec
            .get("rules")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for (i, rule) in rules.iter().enumerate() {
            for block in ["match", "exclude"] {
                if let Some(path) = rule.get(block).and_then(user_criteria) {
                    return Some(format!(
                        "spec.rules[{i}].{block}.{path} selects by requester, which a background scan does not have"
                    ));
                }
            }
        }
        if let Some(var) = requester_variable(spec) {
            return Some(format!(
                "uses the variable {var}, which a background scan does not have"
            ));
        }
        return None;
    }
    if api.starts_with("policies.kyverno.io/")
        && spec.pointer("/evaluation/background/enabled") == Some(&Value::Bool(false))
    {
        return Some("spec.evaluation.background.enabled is false".into());
    }
    None
}

/// The first `roles` / `clusterRoles` / `subjects` criterion of a `match` or `exclude` block.
fn user_criteria(block: &Value) -> Option<String> {
    let set = |filter: &Value| {
        ["roles", "clusterRoles", "subjects"].into_iter().find(|k| {
            filter
                .get(*k)
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty())
        })
    };
    if let Some(k) = set(block) {
        return Some(k.to_owned());
    }
    for list in ["any", "all"] {
        for (j, filter) in block
            .get(list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            if let Some(k) = set(filter) {
                return Some(format!("{list}[{j}].{k}"));
            }
        }
    }
    None
}

/// The first requester variable used in a `{{ ... }}` anywhere under `v`.
fn requester_variable(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => variables_in(s).into_iter().find_map(|var| {
            REQUESTER_VARIABLES
                .iter()
                .find(|name| mentions(&var, name))
                .map(|name| (*name).to_owned())
        }),
        Value::Array(a) => a.iter().find_map(requester_variable),
        Value::Object(o) => o.values().find_map(requester_variable),
        _ => None,
    }
}

/// The `{{ ... }}` expressions in a string (their inner text).
fn variables_in(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            break;
        };
        out.push(after[..end].to_owned());
        rest = &after[end + 2..];
    }
    out
}

/// Whether `expr` names `name` as a variable: not as the tail of a longer path (`x.name`)
/// and not as the head of a longer identifier (`nameSuffix`), as Kyverno's
/// `[^.](name)\b` checks.
fn mentions(expr: &str, name: &str) -> bool {
    let bytes = expr.as_bytes();
    let mut from = 0;
    while let Some(pos) = expr[from..].find(name) {
        let at = from + pos;
        let end = at + name.len();
        let before_ok = at == 0 || bytes[at - 1] != b'.';
        let after_ok =
            end == bytes.len() || !(bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_');
        if before_ok && after_ok {
            return true;
        }
        from = at + 1;
    }
    false
}

/// The policies of a scan, with those a background scan leaves out set aside.
#[derive(Debug, Clone, Default)]
pub struct Scanner {
    policies: PolicySet,
    skipped: Vec<SkippedPolicy>,
}

impl Scanner {
    /// Builds a scanner from policy documents (each with the file it came from, for
    /// messages): documents that take part are loaded, the others set aside with the reason.
    pub fn from_documents(
        docs: impl IntoIterator<Item = (String, Value)>,
    ) -> Result<Self, provenance_policy::Error> {
        let mut scanner = Scanner::default();
        for (file, doc) in docs {
            if doc.is_null() {
                continue;
            }
            if let Some(reason) = background_exclusion(&doc) {
                let kind = doc.get("kind").and_then(Value::as_str).unwrap_or("?");
                let name = doc
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or("?");
                scanner.skipped.push(SkippedPolicy {
                    policy: format!("{kind}/{name}"),
                    reason,
                });
                continue;
            }
            // JSON is YAML: the loader takes the document as it was read.
            scanner.policies.add_yaml(&doc.to_string(), &file)?;
        }
        Ok(scanner)
    }

    /// The policies that take part.
    pub fn policies(&self) -> &PolicySet {
        &self.policies
    }

    /// The policies left out, and why.
    pub fn skipped(&self) -> &[SkippedPolicy] {
        &self.skipped
    }

    /// One background-scan input per resource: a `CREATE` with no requester, its namespace's
    /// labels, and Kyverno's image-verification annotations removed.
    pub fn inputs(
        &self,
        resources: Vec<Value>,
        namespace_labels: &BTreeMap<String, BTreeMap<String, String>>,
    ) -> Vec<ResourceInput> {
        resources
            .into_iter()
            .map(|mut doc| {
                if let Some(Value::Object(a)) = doc.pointer_mut("/metadata/annotations") {
                    for k in IMAGE_VERIFY_ANNOTATIONS {
                        a.remove(k);
                    }
                }
                let mut input = ResourceInput::create(doc);
                input.admission = false;
                if let Some(l) = namespace_labels.get(input.namespace()) {
                    input.namespace_labels = l.clone();
                }
                input
            })
            .collect()
    }

    /// The images the `verifyImages` rules need evidence for (gather it with
    /// `provenance_policy::admission::gather::gather`, from a registry or an OCI layout).
    pub fn image_requests(&self, inputs: &[ResourceInput]) -> Vec<ImageRequest> {
        inputs
            .iter()
            .flat_map(|i| self.policies.image_requests(i))
            .collect()
    }

    /// Evaluates every input; every rule result, whatever the policy's failure action (an
    /// audit reports, it blocks nothing).
    pub fn scan(
        &self,
        inputs: &[ResourceInput],
        images: &VerifyImagesContext<'_>,
        now: UnixTime,
    ) -> Vec<RuleResult> {
        let env = Env::at(now);
        inputs
            .iter()
            .flat_map(|input| self.policies.decide_with(input, &env, Some(images)).results)
            .collect()
    }
}

/// The PolicyReports for `results`: one per namespace, a ClusterPolicyReport for
/// cluster-scoped resources.
pub fn reports(results: &[RuleResult], now: UnixTime) -> Vec<Value> {
    provenance_policy::admission::report::policy_reports(results, now)
}

/// Labels of the Namespace objects among `resources`.
pub fn namespace_labels(resources: &[Value]) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for d in resources {
        if d.get("kind").and_then(Value::as_str) != Some("Namespace") {
            continue;
        }
        let Some(name) = d.pointer("/metadata/name").and_then(Value::as_str) else {
            continue;
        };
        let labels = out.entry(name.to_owned()).or_default();
        if let Some(Value::Object(l)) = d.pointer("/metadata/labels") {
            for (k, v) in l {
                if let Some(v) = v.as_str() {
                    labels.insert(k.clone(), v.to_owned());
                }
            }
        }
    }
    out
}

/// The items of a `kubectl get -o json` output: a `List` (or `PodList`, ...) is flattened
/// (nested Lists too, four deep at most), a single object is itself.
pub fn list_items(doc: Value) -> Result<Vec<Value>, String> {
    fn walk(doc: Value, out: &mut Vec<Value>, depth: usize) -> Result<(), String> {
        if doc.is_null() {
            return Ok(());
        }
        let kind = doc
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if kind.is_empty() {
            return Err("an item has no kind".into());
        }
        if kind.ends_with("List") {
            if depth > 4 {
                return Err("Lists nested too deeply".into());
            }
            let Some(items) = doc.get("items").and_then(Value::as_array) else {
                return Err(format!("{kind} has no items list"));
            };
            let kind_of_items = kind.trim_end_matches("List").to_owned();
            let api = doc.get("apiVersion").cloned();
            for mut item in items.clone() {
                // The API server leaves kind and apiVersion out of typed list items.
                if let Value::Object(o) = &mut item
                    && !kind_of_items.is_empty()
                {
                    o.entry("kind")
                        .or_insert_with(|| kind_of_items.clone().into());
                    if let Some(a) = &api {
                        o.entry("apiVersion").or_insert_with(|| a.clone());
                    }
                }
                walk(item, out, depth + 1)?;
            }
            return Ok(());
        }
        out.push(doc);
        Ok(())
    }
    let mut out = Vec::new();
    walk(doc, &mut out, 0)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use serde_json::json;

    fn policy(spec: Value) -> Value {
        json!({"apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy",
               "metadata": {"name": "p"}, "spec": spec})
    }

    #[test]
    fn warm_bodies_send_each_replica_set_once_without_status() {
        let pod = |name: &str, ns: &str, hash: &str, image: &str| {
            json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": ns,
                    "labels": {"app": "llm", "pod-template-hash": hash},
                    "managedFields": [{"manager": "kubelet"}]},
                "spec": {"initContainers": [{"name": "i", "image": "init:1"}],
                    "containers": [{"name": "c", "image": image}]},
                "status": {"phase": "Running"}})
        };
        let pods = vec![
            pod("a-1", "ml", "h1", "llm@sha256:aa"),
            pod("a-2", "ml", "h1", "llm@sha256:aa"),
            // another ReplicaSet, another namespace, another image: each sent
            pod("b-1", "ml", "h2", "llm@sha256:aa"),
            pod("a-1", "other", "h1", "llm@sha256:aa"),
            pod("c-1", "ml", "h1", "llm@sha256:bb"),
            json!({"kind": "Namespace", "metadata": {"name": "ml"}}),
            json!({"kind": "Pod", "metadata": {"name": "empty"}, "spec": {}}),
        ];
        let bodies = warm_bodies(&pods);
        let names: Vec<_> = bodies
            .iter()
            .map(|b| {
                format!(
                    "{}/{}",
                    b["object"]["metadata"]["namespace"].as_str().unwrap(),
                    b["object"]["metadata"]["name"].as_str().unwrap()
                )
            })
            .collect();
        assert_eq!(names, ["ml/a-1", "ml/b-1", "other/a-1", "ml/c-1"]);
        let first = &bodies[0]["object"];
        assert!(first.get("status").is_none());
        assert!(first["metadata"].get("managedFields").is_none());
        assert_eq!(first["spec"]["initContainers"][0]["image"], "init:1");
    }

    #[test]
    fn requester_dependent_policies_are_excluded() {
        assert_eq!(
            background_exclusion(&policy(json!({"background": false, "rules": []}))),
            Some("spec.background is false".into())
        );
        let by_role = policy(json!({"rules": [{"name": "r",
            "match": {"any": [{"resources": {"kinds": ["Pod"]}, "clusterRoles": ["admin"]}]}}]}));
        assert!(
            background_exclusion(&by_role)
                .unwrap()
                .contains("spec.rules[0].match.any[0].clusterRoles")
        );
        let legacy = policy(json!({"rules": [{"name": "r",
            "exclude": {"subjects": [{"kind": "User", "name": "x"}]}}]}));
        assert!(
            background_exclusion(&legacy)
                .unwrap()
                .contains("exclude.subjects")
        );
        let user_var = policy(json!({"rules": [{"name": "r", "validate": {
            "message": "by {{ request.userInfo.username }}", "deny": {}}}]}));
        assert!(
            background_exclusion(&user_var)
                .unwrap()
                .contains("request.userInfo")
        );
        let sa = policy(json!({"rules": [{"name": "r", "preconditions": {"all": [
            {"key": "{{serviceAccountName}}", "operator": "Equals", "value": "x"}]}}]}));
        assert!(
            background_exclusion(&sa)
                .unwrap()
                .contains("serviceAccountName")
        );
    }

    #[test]
    fn object_variables_and_lookalikes_are_fine() {
        let ok = policy(json!({"rules": [{"name": "r", "validate": {
            "message": "{{ request.object.spec.serviceAccountName }} {{ request.operation }} {{ serviceAccountNameX }}",
            "pattern": {}}}]}));
        assert_eq!(background_exclusion(&ok), None);
        let vp = json!({"apiVersion": "policies.kyverno.io/v1", "kind": "ValidatingPolicy",
            "metadata": {"name": "v"}, "spec": {"evaluation": {"background": {"enabled": false}}}});
        assert!(background_exclusion(&vp).unwrap().contains("evaluation"));
        let exception = json!({"apiVersion": "kyverno.io/v2", "kind": "PolicyException",
            "metadata": {"name": "e"}, "spec": {"background": false}});
        assert_eq!(background_exclusion(&exception), None);
    }

    #[test]
    fn typed_list_items_get_their_kind() {
        let items = list_items(json!({"apiVersion": "v1", "kind": "PodList",
            "items": [{"metadata": {"name": "a"}}]}))
        .unwrap();
        assert_eq!(items[0]["kind"], "Pod");
        assert_eq!(items[0]["apiVersion"], "v1");
        assert!(list_items(json!({"kind": "List"})).is_err());
    }
}
