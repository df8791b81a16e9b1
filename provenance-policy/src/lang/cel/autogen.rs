//! Pod-controller variants of CEL policies (`ValidatingPolicy`, `ImageValidatingPolicy`), as
//! Kyverno generates them by default.
//!
//! A policy whose `matchConstraints` select exactly Pods (one resource rule: API group `""`,
//! version `v1`, resource `pods`, no resource names; no exclude rules; no object selector)
//! also applies to the pod templates of the Pod controllers named by
//! `spec.autogen.podControllers.controllers` (all of them when that list is not set; none
//! when it is set and empty):
//!
//! | controllers | match | rewrite of `object.` / `oldObject.` paths |
//! |---|---|---|
//! | `daemonsets`, `deployments`, `replicasets`, `statefulsets`, `jobs` | `apps/v1` and `batch/v1` resources | `spec` → `spec.template.spec`, `metadata` → `spec.template.metadata` |
//! | `cronjobs` | `batch/v1 cronjobs` | `spec` → `spec.jobTemplate.spec.template.spec`, `metadata` → `spec.jobTemplate.spec.template.metadata` |
//!
//! Each group of controllers gives one variant: the policy with the same name and a spec whose
//! `matchConstraints` select those controllers (the operations and `namespaceSelector` of the
//! Pod rule carried over) and whose text has the paths rewritten, as Kyverno rewrites the
//! serialized spec: every occurrence of `object.spec` and `object.metadata` (and the
//! `oldObject.` forms) is rewritten, except `object.metadata.namespace`, which stays on the
//! controller. A Pod rule without operations gives no variant.

use serde_json::{Map, Value, json};

/// (controller resource, group, version, cron job form)
const CONTROLLERS: &[(&str, &str, &str, bool)] = &[
    ("daemonsets", "apps", "v1", false),
    ("deployments", "apps", "v1", false),
    ("replicasets", "apps", "v1", false),
    ("statefulsets", "apps", "v1", false),
    ("jobs", "batch", "v1", false),
    ("cronjobs", "batch", "v1", true),
];

fn strings(v: Option<&Value>) -> Vec<&str> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn non_empty_list(v: Option<&Value>) -> bool {
    v.and_then(Value::as_array).is_some_and(|a| !a.is_empty())
}

/// Whether `matchConstraints` select exactly Pods, so that variants can be generated.
pub fn can_autogen(match_constraints: Option<&Value>) -> bool {
    let Some(mc) = match_constraints.filter(|m| m.is_object()) else {
        return false;
    };
    if let Some(os) = mc.get("objectSelector").filter(|o| !o.is_null())
        && (os
            .get("matchLabels")
            .and_then(Value::as_object)
            .is_some_and(|m| !m.is_empty())
            || non_empty_list(os.get("matchExpressions")))
    {
        return false;
    }
    if non_empty_list(mc.get("excludeResourceRules")) {
        return false;
    }
    let rules = mc
        .get("resourceRules")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let [rule] = rules else {
        return false;
    };
    !non_empty_list(rule.get("resourceNames"))
        && strings(rule.get("apiGroups")) == [""]
        && strings(rule.get("apiVersions")) == ["v1"]
        && strings(rule.get("resources")) == ["pods"]
}

/// Rewrites `object.<from>` and `oldObject.<from>` to `<to>` in `text`, leaving occurrences
/// followed by `.namespace` (as a whole path segment) untouched.
fn rewrite(text: &str, from: &str, to: &str) -> String {
    let mut out = text.to_owned();
    for root in ["object.", "oldObject."] {
        let (from, to) = (format!("{root}{from}"), format!("{root}{to}"));
        let mut buf = String::with_capacity(out.len());
        let mut rest = out.as_str();
        while let Some(i) = rest.find(&from) {
            buf.push_str(&rest[..i]);
            let after = &rest[i + from.len()..];
            let protected = after.strip_prefix(".namespace").is_some_and(|next| {
                next.bytes()
                    .next()
                    .is_none_or(|b| !(b == b'_' || b.is_ascii_alphanumeric()))
            });
            buf.push_str(if protected { &from } else { &to });
            rest = after;
        }
        buf.push_str(rest);
        out = buf;
    }
    out
}

/// The Pod-controller variants of a `ValidatingPolicy` or `ImageValidatingPolicy` document
/// (empty when the policy does not select exactly Pods, or names no controllers). Each is a
/// whole policy document with the policy's `apiVersion`, `kind` and `metadata`.
pub fn variants(doc: &Value) -> Vec<Value> {
    let Some(spec) = doc.get("spec").filter(|s| s.is_object()) else {
        return Vec::new();
    };
    let mc = spec.get("matchConstraints");
    if !can_autogen(mc) {
        return Vec::new();
    }
    let chosen: Vec<&str> = match spec.pointer("/autogen/podControllers/controllers") {
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
        _ => CONTROLLERS.iter().map(|c| c.0).collect(),
    };
    let operations = mc
        .and_then(|m| m.pointer("/resourceRules/0/operations"))
        .cloned()
        .unwrap_or(Value::Null);
    if !non_empty_list(Some(&operations)) {
        return Vec::new();
    }
    let namespace_selector = mc.and_then(|m| m.get("namespaceSelector")).cloned();
    let mut out = Vec::new();
    // Kyverno orders the groups by name: `cronjobs`, then `defaults`.
    for cron in [true, false] {
        let targets: Vec<&(&str, &str, &str, bool)> = CONTROLLERS
            .iter()
            .filter(|c| c.3 == cron && chosen.contains(&c.0))
            .collect();
        if targets.is_empty() {
            continue;
        }
        // One resource rule per group/version, resources sorted, groups sorted.
        let mut by_gv: std::collections::BTreeMap<(&str, &str), Vec<&str>> = Default::default();
        for t in &targets {
            by_gv.entry((t.1, t.2)).or_default().push(t.0);
        }
        let rules: Vec<Value> = by_gv
            .into_iter()
            .map(|((g, v), mut res)| {
                res.sort_unstable();
                json!({"apiGroups": [g], "apiVersions": [v], "resources": res, "operations": operations})
            })
            .collect();
        let mut new_mc = Map::new();
        new_mc.insert("resourceRules".into(), Value::Array(rules));
        if let Some(ns) = namespace_selector.clone().filter(|n| !n.is_null()) {
            new_mc.insert("namespaceSelector".into(), ns);
        }
        let mut new_spec = spec.clone();
        new_spec["matchConstraints"] = Value::Object(new_mc);
        let (spec_to, meta_to) = if cron {
            (
                "spec.jobTemplate.spec.template.spec",
                "spec.jobTemplate.spec.template.metadata",
            )
        } else {
            ("spec.template.spec", "spec.template.metadata")
        };
        let text = new_spec.to_string();
        let text = rewrite(&text, "spec", spec_to);
        let text = rewrite(&text, "metadata", meta_to);
        // The rewrite only touches text inside JSON strings and keys of the serialized spec,
        // and never inserts quotes or backslashes, so the result parses.
        let Ok(new_spec) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        let mut variant = doc.clone();
        variant["spec"] = new_spec;
        out.push(variant);
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn pod_policy(extra: Value) -> Value {
        let mut spec = json!({
            "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                "operations": ["CREATE", "UPDATE"], "resources": ["pods"]}]},
            "validations": [{"expression": "object.spec.containers.all(c, has(object.metadata.labels) && object.metadata.namespace != '' && oldObject.spec != null)"}]
        });
        if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                s.insert(k.clone(), v.clone());
            }
        }
        json!({"apiVersion": "policies.kyverno.io/v1", "kind": "ValidatingPolicy",
            "metadata": {"name": "p"}, "spec": spec})
    }

    #[test]
    fn default_variants_rewrite_paths_and_match_controllers() {
        let v = variants(&pod_policy(json!({})));
        assert_eq!(v.len(), 2);
        let cron = &v[0]["spec"];
        assert_eq!(
            cron["matchConstraints"]["resourceRules"],
            json!([{"apiGroups": ["batch"], "apiVersions": ["v1"], "resources": ["cronjobs"], "operations": ["CREATE", "UPDATE"]}])
        );
        assert_eq!(
            cron["validations"][0]["expression"],
            "object.spec.jobTemplate.spec.template.spec.containers.all(c, has(object.spec.jobTemplate.spec.template.metadata.labels) && object.metadata.namespace != '' && oldObject.spec.jobTemplate.spec.template.spec != null)"
        );
        let def = &v[1]["spec"];
        assert_eq!(
            def["matchConstraints"]["resourceRules"],
            json!([
                {"apiGroups": ["apps"], "apiVersions": ["v1"], "resources": ["daemonsets", "deployments", "replicasets", "statefulsets"], "operations": ["CREATE", "UPDATE"]},
                {"apiGroups": ["batch"], "apiVersions": ["v1"], "resources": ["jobs"], "operations": ["CREATE", "UPDATE"]}
            ])
        );
        assert!(
            def["validations"][0]["expression"]
                .as_str()
                .unwrap()
                .starts_with("object.spec.template.spec.containers")
        );
    }

    #[test]
    fn controllers_list_and_blockers() {
        let only = variants(&pod_policy(
            json!({"autogen": {"podControllers": {"controllers": ["deployments"]}}}),
        ));
        assert_eq!(only.len(), 1);
        assert_eq!(
            only[0]["spec"]["matchConstraints"]["resourceRules"][0]["resources"],
            json!(["deployments"])
        );
        assert!(
            variants(&pod_policy(
                json!({"autogen": {"podControllers": {"controllers": []}}})
            ))
            .is_empty()
        );
        let mut p = pod_policy(json!({}));
        p["spec"]["matchConstraints"]["objectSelector"] = json!({"matchLabels": {"a": "b"}});
        assert!(variants(&p).is_empty());
        let mut p = pod_policy(json!({}));
        p["spec"]["matchConstraints"]["resourceRules"][0]["resources"] =
            json!(["pods", "services"]);
        assert!(variants(&p).is_empty());
    }
}
