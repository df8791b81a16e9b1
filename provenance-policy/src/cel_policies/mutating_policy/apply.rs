//! How a CEL mutation's output changes the object: an apply configuration merged as
//! server-side apply merges (structured merge), or a list of JSON Patch operations applied
//! as the API server applies them (strict RFC 6902).
//!
//! **Structured merge** (`patchType: ApplyConfiguration`): maps are merged field by field,
//! the apply configuration's scalars win; lists the Kubernetes schema declares as
//! `listType: map` (containers by `name`, `volumeMounts` by `mountPath`, ...) are merged by
//! their key, in the order structured-merge-diff gives (the live list's order, with the
//! applied elements interleaved where they are shared and appended where they are new);
//! `finalizers` merge as a set. Every other list is atomic: Kubernetes refuses an apply
//! configuration that sets one ("apply configurations may not modify atomic structs, maps
//! or arrays") and so does this merge, unless the policy opts into replacing atomic values
//! (Kyverno's `spec.evaluation.useServerSideApply`). A `null` in the apply configuration
//! removes the field.

use serde_json::{Map, Value};

use crate::Error;

/// The most elements a merged list may hold (bounds the work on hostile input).
const MAX_LIST: usize = 100_000;
/// The deepest nesting merged.
const MAX_DEPTH: usize = 128;

fn patch_err(field: &str, reason: impl Into<String>) -> Error {
    Error::Patch {
        field: field.to_owned(),
        reason: reason.into(),
    }
}

/// How a list is merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ListType {
    /// `listType: map` with this key.
    Map(&'static str),
    /// `listType: set`.
    Set,
    /// `listType: atomic`: replaced as a whole.
    Atomic,
}

/// The list type of the field `field` of a built-in kind (Kubernetes' OpenAPI list-map keys
/// for the core types). `elements` tell a container's `ports` from a Service's.
fn list_type(field: &str, elements: &[&Value]) -> ListType {
    let has = |k: &str| elements.iter().any(|e| e.get(k).is_some());
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "imagePullSecrets"
        | "resourceClaims"
        | "schedulingGates" => ListType::Map("name"),
        "volumeMounts" => ListType::Map("mountPath"),
        "volumeDevices" => ListType::Map("devicePath"),
        "hostAliases" => ListType::Map("ip"),
        "topologySpreadConstraints" => ListType::Map("topologyKey"),
        "ownerReferences" => ListType::Map("uid"),
        "conditions" => ListType::Map("type"),
        "ports" if has("containerPort") => ListType::Map("containerPort"),
        "ports" if has("port") => ListType::Map("port"),
        "finalizers" => ListType::Set,
        _ => ListType::Atomic,
    }
}

/// API groups whose schema the list types above describe (core, unqualified and `*.k8s.io`).
fn built_in(api_version: &str) -> bool {
    let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
    group.is_empty() || !group.contains('.') || group.ends_with(".k8s.io")
}

/// Merges the apply configuration `patch` into `object` as server-side apply does.
/// `allow_atomic`: replace atomic lists instead of refusing them. `field` names the mutation
/// in errors.
pub(crate) fn apply_configuration(
    object: &Value,
    patch: &Value,
    allow_atomic: bool,
    field: &str,
) -> Result<Value, Error> {
    let Value::Object(p) = patch else {
        return Err(patch_err(
            field,
            format!(
                "an apply configuration must be an Object, got {}",
                type_of(patch)
            ),
        ));
    };
    for key in ["apiVersion", "kind"] {
        if let Some(v) = p.get(key)
            && object.get(key) != Some(v)
        {
            return Err(patch_err(
                field,
                format!(
                    "the apply configuration's {key} ({v}) is not the object's ({})",
                    object.get(key).unwrap_or(&Value::Null)
                ),
            ));
        }
    }
    let schema = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .is_some_and(built_in);
    let mut path = String::new();
    let cx = Cx {
        schema,
        allow_atomic,
        field,
    };
    merge(object, patch, &cx, &mut path, 0)
}

struct Cx<'a> {
    schema: bool,
    allow_atomic: bool,
    field: &'a str,
}

fn type_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "map",
    }
}

fn merge(
    live: &Value,
    patch: &Value,
    cx: &Cx<'_>,
    path: &mut String,
    depth: usize,
) -> Result<Value, Error> {
    if depth > MAX_DEPTH {
        return Err(patch_err(
            cx.field,
            format!("the apply configuration nests deeper than {MAX_DEPTH} levels"),
        ));
    }
    match (live, patch) {
        (Value::Object(l), Value::Object(p)) => {
            let mut out = l.clone();
            for (k, pv) in p {
                if pv.is_null() {
                    out.remove(k);
                    continue;
                }
                let len = path.len();
                path.push('.');
                path.push_str(k);
                let merged = match (l.get(k), pv) {
                    (Some(lv), _) => merge_field(k, lv, pv, cx, path, depth)?,
                    (None, Value::Array(_)) => merge_field(k, &Value::Null, pv, cx, path, depth)?,
                    (None, _) => strip_nulls(pv),
                };
                path.truncate(len);
                out.insert(k.clone(), merged);
            }
            Ok(Value::Object(out))
        }
        (_, p) => Ok(strip_nulls(p)),
    }
}

/// Merges the value of field `key` (live `lv`, applied `pv`).
fn merge_field(
    key: &str,
    lv: &Value,
    pv: &Value,
    cx: &Cx<'_>,
    path: &mut String,
    depth: usize,
) -> Result<Value, Error> {
    let Value::Array(pa) = pv else {
        return merge(lv, pv, cx, path, depth + 1);
    };
    if pa.len() > MAX_LIST {
        return Err(patch_err(
            cx.field,
            format!("{path}: more than {MAX_LIST} list elements"),
        ));
    }
    let empty = Vec::new();
    let la = lv.as_array().unwrap_or(&empty);
    let elements: Vec<&Value> = pa.iter().chain(la.iter()).collect();
    let kind = if cx.schema {
        list_type(key, &elements)
    } else {
        ListType::Atomic
    };
    match kind {
        ListType::Atomic => {
            if !cx.allow_atomic && lv != pv {
                return Err(patch_err(
                    cx.field,
                    format!(
                        "apply configurations may not modify atomic structs, maps or arrays: {}",
                        path.trim_start_matches('.')
                    ),
                ));
            }
            Ok(strip_nulls(pv))
        }
        ListType::Set => Ok(merge_keyed(la, pa, |v| Some(v.clone()), cx, path, depth)?),
        ListType::Map(k) => {
            for (i, e) in pa.iter().enumerate() {
                if e.get(k).is_none_or(Value::is_null) {
                    return Err(patch_err(
                        cx.field,
                        format!(
                            "{}[{i}]: element has no {k:?}, the key of this list",
                            path.trim_start_matches('.')
                        ),
                    ));
                }
            }
            merge_keyed(la, pa, |v| v.get(k).cloned(), cx, path, depth)
        }
    }
}

/// Merges two keyed lists in structured-merge-diff's order: walking both lists, shared
/// elements are merged where the applied list places them, live-only elements keep their
/// place, applied-only elements come in at their position in the applied list.
fn merge_keyed(
    live: &[Value],
    applied: &[Value],
    key: impl Fn(&Value) -> Option<Value>,
    cx: &Cx<'_>,
    path: &mut String,
    depth: usize,
) -> Result<Value, Error> {
    use std::collections::{HashMap, HashSet, VecDeque};
    let text = |v: &Value| key(v).map(|k| k.to_string());
    let lk: Vec<Option<String>> = live.iter().map(text).collect();
    let rk: Vec<Option<String>> = applied.iter().map(text).collect();
    let mut live_at: HashMap<&str, usize> = HashMap::new();
    for (i, k) in lk.iter().enumerate() {
        if let Some(k) = k {
            live_at.entry(k.as_str()).or_insert(i);
        }
    }
    let mut in_applied: HashSet<&str> = HashSet::new();
    for k in rk.iter().flatten() {
        if !in_applied.insert(k.as_str()) {
            return Err(patch_err(
                cx.field,
                format!(
                    "{}: duplicate entries for key {k}",
                    path.trim_start_matches('.')
                ),
            ));
        }
    }
    let applied_has = |k: &Option<String>| k.as_deref().is_some_and(|k| in_applied.contains(k));
    let mut shared: VecDeque<&str> = rk
        .iter()
        .flatten()
        .map(String::as_str)
        .filter(|k| live_at.contains_key(k))
        .collect();
    let mut next_shared = shared.pop_front();
    let mut merged: HashSet<&str> = HashSet::new();
    let mut out = Vec::with_capacity(live.len().max(applied.len()));
    let (mut li, mut ri) = (0, 0);
    let merge_item = |l: Option<&Value>, r: &Value, path: &mut String| match l {
        Some(l) => merge(l, r, cx, path, depth + 1),
        None => Ok(strip_nulls(r)),
    };
    while li < live.len() || ri < applied.len() {
        if li < live.len() && ri < applied.len() {
            if let (Some(l), Some(r)) = (&lk[li], &rk[ri])
                && l == r
            {
                merged.insert(r.as_str());
                out.push(merge_item(Some(&live[li]), &applied[ri], path)?);
                if next_shared == Some(r.as_str()) {
                    next_shared = shared.pop_front();
                }
                li += 1;
                ri += 1;
                continue;
            }
            if applied_has(&lk[li]) && next_shared.is_some_and(|n| Some(n) != lk[li].as_deref()) {
                li += 1;
                continue;
            }
        }
        if li < live.len() {
            if !applied_has(&lk[li]) {
                out.push(live[li].clone());
                li += 1;
                continue;
            }
            if lk[li].as_deref().is_some_and(|k| merged.contains(k)) {
                li += 1;
                continue;
            }
        }
        if ri < applied.len() {
            let k = rk[ri].as_deref();
            let l = k.and_then(|k| live_at.get(k)).map(|&i| &live[i]);
            if let Some(k) = k {
                merged.insert(k);
            }
            out.push(merge_item(l, &applied[ri], path)?);
            if next_shared.is_some() && next_shared == k {
                next_shared = shared.pop_front();
            }
            ri += 1;
        } else {
            // Only live elements that the applied list holds remain, and they were merged.
            li += 1;
        }
    }
    Ok(Value::Array(out))
}

/// An applied value without its `null` fields (a `null` unsets).
fn strip_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, x)| !x.is_null())
                .map(|(k, x)| (k.clone(), strip_nulls(x)))
                .collect::<Map<String, Value>>(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_nulls).collect()),
        other => other.clone(),
    }
}

/// Applies the operations of a `JSONPatch` mutation as the API server does: strict RFC 6902
/// (a `remove` or `replace` of a missing path and an `add` under a missing parent are
/// errors), negative array indices excepted. The object's `apiVersion` and `kind` may not
/// change.
pub(crate) fn apply_json_patch(object: &Value, ops: &[Value], field: &str) -> Result<Value, Error> {
    let mut out = object.clone();
    for (i, op) in ops.iter().enumerate() {
        let f = format!("{field}[{i}]");
        let name = op.get("op").and_then(Value::as_str).unwrap_or_default();
        let p = op.get("path").and_then(Value::as_str).unwrap_or_default();
        if !matches!(
            name,
            "add" | "remove" | "replace" | "move" | "copy" | "test"
        ) {
            return Err(patch_err(
                &f,
                format!("unknown operation {name:?} (add, remove, replace, move, copy, test)"),
            ));
        }
        if !p.is_empty() && !p.starts_with('/') {
            return Err(patch_err(&f, format!("path {p:?} is not a JSON pointer")));
        }
        let parent = p.rsplit_once('/').map(|(a, _)| a).unwrap_or("");
        let exists = |doc: &Value, ptr: &str| ptr.is_empty() || doc.pointer(ptr).is_some();
        let missing = match name {
            "add" | "move" | "copy" => (!exists(&out, parent)).then_some(parent),
            "remove" | "replace" => (!exists(&out, p) && !negative_index(p)).then_some(p),
            _ => None,
        };
        if let Some(m) = missing {
            return Err(patch_err(
                &f,
                format!("{name} {p}: {m:?} does not exist in the object"),
            ));
        }
        out = crate::kyverno::mutate::json_patch::apply(&out, std::slice::from_ref(op), &f)?;
    }
    for key in ["apiVersion", "kind"] {
        if out.get(key) != object.get(key) {
            return Err(patch_err(
                field,
                format!("the patch changed the object's {key}"),
            ));
        }
    }
    Ok(out)
}

fn negative_index(p: &str) -> bool {
    p.rsplit('/').next().is_some_and(|t| {
        t.starts_with('-') && t.len() > 1 && t[1..].bytes().all(|b| b.is_ascii_digit())
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec})
    }

    #[test]
    fn maps_merge_and_scalars_win() {
        let live = pod(json!({"securityContext": {"runAsNonRoot": false, "fsGroup": 1000}}));
        let out = apply_configuration(
            &live,
            &json!({"spec": {"securityContext": {"runAsUser": 1000, "fsGroup": 2000}},
                "metadata": {"labels": {"a": "b"}}}),
            false,
            "m",
        )
        .unwrap();
        assert_eq!(
            out["spec"]["securityContext"],
            json!({"runAsNonRoot": false, "fsGroup": 2000, "runAsUser": 1000})
        );
        assert_eq!(out["metadata"], json!({"name": "p", "labels": {"a": "b"}}));
    }

    #[test]
    fn null_unsets() {
        let live = pod(json!({"hostNetwork": true, "dnsPolicy": "x"}));
        let out = apply_configuration(&live, &json!({"spec": {"hostNetwork": null}}), false, "m")
            .unwrap();
        assert_eq!(out["spec"], json!({"dnsPolicy": "x"}));
    }

    #[test]
    fn containers_merge_by_name_in_live_order() {
        let live = pod(json!({"containers": [
            {"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}]}));
        let out = apply_configuration(
            &live,
            &json!({"spec": {"containers": [
                {"name": "c", "image": "c:1"}, {"name": "b", "image": "b:2"}]}}),
            false,
            "m",
        )
        .unwrap();
        assert_eq!(
            out["spec"]["containers"],
            json!([{"name": "a", "image": "a:1"}, {"name": "c", "image": "c:1"},
                {"name": "b", "image": "b:2"}])
        );
    }

    #[test]
    fn keyed_element_without_key_is_an_error() {
        let live = pod(json!({"containers": [{"name": "a"}]}));
        let e = apply_configuration(
            &live,
            &json!({"spec": {"containers": [{"image": "x"}]}}),
            false,
            "spec.mutations[0]",
        )
        .unwrap_err();
        assert!(e.to_string().contains("spec.containers[0]"), "{e}");
    }

    #[test]
    fn atomic_lists_are_refused_unless_allowed() {
        let live = pod(json!({"containers": [{"name": "a", "args": ["1"]}]}));
        let patch = json!({"spec": {"containers": [{"name": "a", "args": ["2"]}]}});
        let e = apply_configuration(&live, &patch, false, "m").unwrap_err();
        assert!(
            e.to_string().contains("atomic") && e.to_string().contains("spec.containers.args"),
            "{e}"
        );
        let out = apply_configuration(&live, &patch, true, "m").unwrap();
        assert_eq!(out["spec"]["containers"][0]["args"], json!(["2"]));
        // Setting an atomic list to what it already is changes nothing and is accepted.
        let same = json!({"spec": {"containers": [{"name": "a", "args": ["1"]}]}});
        assert!(apply_configuration(&live, &same, false, "m").is_ok());
    }

    #[test]
    fn duplicate_keys_in_the_apply_configuration_are_an_error() {
        let live = pod(json!({"containers": [{"name": "a"}]}));
        let e = apply_configuration(
            &live,
            &json!({"spec": {"containers": [{"name": "b"}, {"name": "b", "image": "x"}]}}),
            false,
            "m",
        )
        .unwrap_err();
        assert!(e.to_string().contains("duplicate"), "{e}");
    }

    #[test]
    fn finalizers_merge_as_a_set() {
        let live = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "finalizers": ["a", "b"]}});
        let out = apply_configuration(
            &live,
            &json!({"metadata": {"finalizers": ["b", "c"]}}),
            false,
            "m",
        )
        .unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["a", "b", "c"]));
    }

    #[test]
    fn kind_cannot_change() {
        let live = pod(json!({}));
        assert!(apply_configuration(&live, &json!({"kind": "Service"}), false, "m").is_err());
        assert!(apply_configuration(&live, &json!([]), false, "m").is_err());
    }

    #[test]
    fn json_patch_is_strict() {
        let live = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
            "data": {"a": "1", "l": [1, 2]}});
        let out = apply_json_patch(
            &live,
            &[
                json!({"op": "add", "path": "/data/b", "value": "2"}),
                json!({"op": "replace", "path": "/data/a", "value": "3"}),
                json!({"op": "remove", "path": "/data/l/0"}),
                json!({"op": "test", "path": "/data/b", "value": "2"}),
                json!({"op": "copy", "from": "/data/a", "path": "/data/c"}),
                json!({"op": "move", "from": "/data/c", "path": "/data/d"}),
                json!({"op": "add", "path": "/data/l/-", "value": 9}),
            ],
            "m",
        )
        .unwrap();
        assert_eq!(
            out["data"],
            json!({"a": "3", "b": "2", "d": "3", "l": [2, 9]})
        );
        for bad in [
            json!({"op": "add", "path": "/metadata/labels/x", "value": "1"}),
            json!({"op": "remove", "path": "/data/zzz"}),
            json!({"op": "replace", "path": "/spec", "value": 1}),
            json!({"op": "test", "path": "/data/a", "value": "9"}),
            json!({"op": "frobnicate", "path": "/data/a"}),
            json!({"op": "replace", "path": "/kind", "value": "Secret"}),
        ] {
            let e = apply_json_patch(&live, std::slice::from_ref(&bad), "spec.mutations[1]")
                .unwrap_err();
            assert!(e.to_string().contains("spec.mutations[1]"), "{bad}: {e}");
        }
    }
}
