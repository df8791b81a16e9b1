//! `patchStrategicMerge`: Kyverno's anchors, then a strategic merge as kustomize's kyaml does
//! it for Kyverno.
//!
//! Anchors are resolved against the resource first:
//! - `(key): pattern`, a condition: when the resource's value does not match, the whole patch
//!   is dropped (the rule skips); inside a list of maps, only the elements that match are
//!   patched (the patch element is copied once per matching resource element, named after it).
//! - `<(key): pattern`, a global condition: like a condition, but a failure anywhere (also
//!   inside a list) drops the whole patch.
//! - `+(key): value`, add if not present: set only when the resource has no such key.
//!
//! The merge then follows kustomize (`merge2` with `ListIncreaseDirection: Prepend`): maps
//! merge key by key, `null` deletes, scalars replace; lists the Kubernetes schema gives a merge
//! key (containers, volumes, env, ports, volumeMounts, ...) merge element by element, with the
//! patch's elements first, then the resource's others; other lists are replaced; `$patch:
//! delete` / `replace` / `merge` directives in maps and lists are honoured. A map patched onto a
//! scalar (or the reverse) is an error, as in kustomize.

use serde_json::{Map, Value};

use crate::Error;
use crate::kyverno::pattern::{self, PatternOutcome};

/// The anchor on a key, as Kyverno parses `^(modifier)?\((key)\)$`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Anchor {
    Condition,
    Global,
    AddIfNotPresent,
    Other,
}

fn parse_anchor(key: &str) -> Option<(Anchor, &str)> {
    let k = key.trim();
    let (kind, rest) = match k.chars().next()? {
        '(' => (Anchor::Condition, k),
        '<' => (Anchor::Global, &k[1..]),
        '+' => (Anchor::AddIfNotPresent, &k[1..]),
        '=' | 'X' | '^' => (Anchor::Other, &k[1..]),
        _ => return None,
    };
    let inner = rest.strip_prefix('(')?.strip_suffix(')')?;
    if inner.is_empty() {
        return None;
    }
    Some((kind, inner))
}

fn is_kind(key: &str, f: impl Fn(Anchor) -> bool) -> bool {
    parse_anchor(key).is_some_and(|(a, _)| f(a))
}

/// Condition or global anchor (Kyverno's `ContainsCondition`).
fn contains_condition(a: Anchor) -> bool {
    matches!(a, Anchor::Condition | Anchor::Global)
}

/// Anchors the preprocessing acts on.
fn has_anchor(a: Anchor) -> bool {
    contains_condition(a) || a == Anchor::AddIfNotPresent
}

enum Pre {
    Condition,
    Global(String),
}

/// Resolves the anchors of `patch` against `resource`. `Ok(None)` when a condition failed:
/// the patch does not apply.
pub(crate) fn preprocess(mut patch: Value, resource: &Value) -> Result<Option<Value>, Error> {
    if pre(&mut patch, Some(resource)).is_err() {
        return Ok(None);
    }
    delete_condition_elements(&mut patch);
    Ok(Some(patch))
}

fn pre(patch: &mut Value, resource: Option<&Value>) -> Result<(), Pre> {
    match patch {
        Value::Object(_) => walk_map(patch, resource),
        Value::Array(_) => walk_list(patch, resource),
        _ => Ok(()),
    }
}

fn walk_map(patch: &mut Value, resource: Option<&Value>) -> Result<(), Pre> {
    add_if_not_present(patch, resource);
    validate_conditions(patch, resource, |a| a == Anchor::Global).map_err(Pre::Global)?;
    validate_conditions(patch, resource, |a| a == Anchor::Condition).map_err(|_| Pre::Condition)?;
    let Value::Object(m) = patch else {
        return Ok(());
    };
    let keys: Vec<String> = m
        .keys()
        .filter(|k| !is_kind(k, has_anchor))
        .cloned()
        .collect();
    for k in keys {
        let rv = resource.and_then(|r| r.get(&k));
        if let Some(v) = m.get_mut(&k) {
            pre(v, rv)?;
        }
    }
    Ok(())
}

/// `+(key)`: dropped when the resource has the key, unwrapped otherwise. Returns how many.
fn add_if_not_present(patch: &mut Value, resource: Option<&Value>) -> usize {
    let Value::Object(m) = patch else {
        return 0;
    };
    let anchors: Vec<(String, String)> = m
        .keys()
        .filter_map(|k| match parse_anchor(k) {
            Some((Anchor::AddIfNotPresent, inner)) => Some((k.clone(), inner.to_owned())),
            _ => None,
        })
        .collect();
    for (full, key) in &anchors {
        let present = resource
            .and_then(Value::as_object)
            .is_some_and(|r| r.contains_key(key));
        if let Some(v) = m.remove(full)
            && !present
        {
            m.insert(key.clone(), v);
        }
    }
    anchors.len()
}

fn validate_conditions(
    patch: &mut Value,
    resource: Option<&Value>,
    filter: impl Fn(Anchor) -> bool,
) -> Result<(), String> {
    let Value::Object(m) = patch else {
        return Ok(());
    };
    let anchors: Vec<(String, String)> = m
        .keys()
        .filter_map(|k| match parse_anchor(k) {
            Some((a, inner)) if filter(a) => Some((k.clone(), inner.to_owned())),
            _ => None,
        })
        .collect();
    for (full, key) in anchors {
        let Some(rv) = resource
            .and_then(|r| r.as_object())
            .and_then(|r| r.get(&key))
        else {
            return Err(format!("could not found \"{key}\" key in the resource"));
        };
        let Some(pv) = m.get_mut(&full) else {
            continue;
        };
        if add_if_not_present(pv, Some(rv)) > 0 {
            continue;
        }
        // Scalars are compared as the text YAML gives them, as Kyverno does.
        let scalar = |v: &Value| match v {
            Value::String(_) | Value::Array(_) | Value::Object(_) => v.clone(),
            Value::Null => Value::String("null".into()),
            other => Value::String(other.to_string()),
        };
        match pattern::validate(&scalar(rv), &scalar(pv)) {
            PatternOutcome::Pass => {}
            PatternOutcome::Skip { message, .. } | PatternOutcome::Fail { message, .. } => {
                return Err(message);
            }
        }
    }
    Ok(())
}

fn walk_list(patch: &mut Value, resource: Option<&Value>) -> Result<(), Pre> {
    let Value::Array(list) = patch else {
        return Ok(());
    };
    if !list.first().is_some_and(Value::is_object) {
        return Ok(());
    }
    let resource_elements: &[Value] = resource
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let n = list.len();
    for idx in 0..n {
        let element = list[idx].clone();
        if !has_anchors(&element, has_anchor) {
            continue;
        }
        let global = has_anchors(&element, |a| a == Anchor::Global);
        let mut any_global_passed = false;
        let mut last_global = None;
        // One copy for every resource element, as Kyverno keeps it (an add-if-not-present
        // anchor resolved against one element stays resolved for the next).
        let mut copy = element.clone();
        for re in resource_elements {
            match pre(&mut copy, Some(re)) {
                Ok(()) => {}
                Err(Pre::Condition) => continue,
                Err(Pre::Global(e)) => {
                    last_global = Some(e);
                    continue;
                }
            }
            if global {
                any_global_passed = true;
            } else {
                pattern_for_element(list, &copy, re);
            }
        }
        if resource.is_none() {
            match pre(&mut copy, None) {
                Ok(()) => {
                    if global {
                        any_global_passed = true;
                    }
                }
                Err(Pre::Condition) => continue,
                Err(e) => return Err(e),
            }
        }
        if !any_global_passed && let Some(e) = last_global {
            return Err(Pre::Global(e));
        }
    }
    Ok(())
}

/// Appends to the patch list a copy of `element`, without its anchors, named after the
/// resource element it matched (elements without a name cannot be merged and are left out).
fn pattern_for_element(list: &mut Vec<Value>, element: &Value, resource_element: &Value) {
    let Some(name) = resource_element.get("name").filter(|n| !is_empty(n)) else {
        return;
    };
    let mut fresh = element.clone();
    if delete_anchors(&mut fresh, true, false) {
        return;
    }
    if let Value::Object(m) = &mut fresh {
        m.insert("name".into(), name.clone());
    }
    list.push(fresh);
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::String(s) => s.is_empty(),
        _ => false,
    }
}

fn has_anchors(v: &Value, f: fn(Anchor) -> bool) -> bool {
    match v {
        Value::Object(m) => m.iter().any(|(k, v)| {
            is_kind(k, f) || (!matches!(v, Value::Null) && !is_empty(v) && has_anchors(v, f))
        }),
        Value::String(s) => is_kind(s, contains_condition),
        Value::Array(a) => a.iter().any(|e| has_anchors(e, f)),
        _ => false,
    }
}

fn delete_condition_elements(patch: &mut Value) {
    let Value::Object(m) = patch else {
        return;
    };
    let keys: Vec<String> = m.keys().cloned().collect();
    for k in keys {
        let delete_scalar = is_kind(&k, contains_condition);
        let drop = m
            .get_mut(&k)
            .is_some_and(|v| delete_anchors(v, delete_scalar, false));
        if drop {
            m.remove(&k);
        }
    }
}

/// Removes condition anchors; true when nothing but anchors was there (drop the node).
fn delete_anchors(node: &mut Value, delete_scalar: bool, traverse: bool) -> bool {
    match node {
        Value::Object(m) => delete_anchors_in_map(m, traverse),
        Value::Array(a) => delete_anchors_in_list(a, traverse),
        _ => delete_scalar,
    }
}

fn delete_anchors_in_map(m: &mut Map<String, Value>, traverse: bool) -> bool {
    let anchors: Vec<String> = m
        .keys()
        .filter(|k| is_kind(k, contains_condition))
        .cloned()
        .collect();
    let mut anchors_exist = false;
    for a in &anchors {
        let drop = m
            .get_mut(a)
            .is_some_and(|v| delete_anchors(v, true, traverse));
        if drop {
            m.remove(a);
        } else {
            anchors_exist = true;
        }
    }
    if anchors_exist {
        let remaining: Vec<String> = m
            .keys()
            .filter(|k| is_kind(k, contains_condition))
            .cloned()
            .collect();
        for a in remaining {
            if let (Some(v), Some((_, inner))) = (m.remove(&a), parse_anchor(&a)) {
                m.insert(inner.to_owned(), v);
            }
        }
    }
    let keys: Vec<String> = m.keys().cloned().collect();
    let mut need_to_delete = true;
    for k in keys {
        let drop = m
            .get_mut(&k)
            .is_some_and(|v| delete_anchors(v, false, traverse));
        if drop {
            m.remove(&k);
        } else {
            need_to_delete = false;
        }
    }
    need_to_delete
}

fn delete_anchors_in_list(list: &mut Vec<Value>, traverse: bool) -> bool {
    let was_empty = list.is_empty();
    let mut kept = Vec::with_capacity(list.len());
    for mut element in std::mem::take(list) {
        let drop = if has_anchors(&element, has_anchor) {
            if traverse && element.is_object() {
                delete_anchors(&mut element, true, traverse)
            } else {
                true
            }
        } else {
            delete_anchors(&mut element, false, traverse)
        };
        if !drop {
            kept.push(element);
        }
    }
    *list = kept;
    list.is_empty() && !was_empty
}

// ---------------------------------------------------------------------------------------------

/// How a list merges, from the Kubernetes schema of built-in kinds.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ListKind {
    /// Replaced by the patch's list.
    Replace,
    /// Merged by the value of this key.
    Keyed(&'static str),
    /// A list of scalars merged as a set (`finalizers`).
    Set,
}

/// API groups whose kinds kustomize knows the schema of (built-in Kubernetes types).
fn built_in(api_version: &str) -> bool {
    let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
    group.is_empty() || !group.contains('.') || group.ends_with(".k8s.io")
}

/// The merge strategy of the list at `field` (in a built-in kind); `elements` help tell a
/// container's `ports` (by `containerPort`) from a Service's (by `port`).
fn list_kind(field: &str, elements: &[&Value]) -> ListKind {
    let has = |k: &str| elements.iter().any(|e| e.get(k).is_some());
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "imagePullSecrets"
        | "resourceClaims"
        | "schedulingGates" => ListKind::Keyed("name"),
        "volumeMounts" => ListKind::Keyed("mountPath"),
        "volumeDevices" => ListKind::Keyed("devicePath"),
        "hostAliases" => ListKind::Keyed("ip"),
        "topologySpreadConstraints" => ListKind::Keyed("topologyKey"),
        "ownerReferences" => ListKind::Keyed("uid"),
        "conditions" => ListKind::Keyed("type"),
        "ports" if has("containerPort") => ListKind::Keyed("containerPort"),
        "ports" if has("port") => ListKind::Keyed("port"),
        "finalizers" => ListKind::Set,
        _ => ListKind::Replace,
    }
}

/// Applies a preprocessed patch to `resource` as kustomize's strategic merge does.
pub(crate) fn merge(resource: &Value, patch: &Value) -> Result<Value, Error> {
    let schema = resource
        .get("apiVersion")
        .and_then(Value::as_str)
        .is_some_and(|v| resource.get("kind").is_some() && built_in(v));
    let mut path = Vec::new();
    Ok(merge_value(
        Some(resource.clone()),
        Some(patch.clone()),
        schema,
        &mut path,
    )?
    .unwrap_or(Value::Object(Map::new())))
}

fn kind_name(v: &Value) -> &'static str {
    match v {
        Value::Object(_) => "a map",
        Value::Array(_) => "a list",
        _ => "a scalar",
    }
}

fn wrong_kind(path: &[String], dest: &Value, patch: &Value) -> Error {
    Error::Patch {
        field: "patchStrategicMerge".into(),
        reason: format!(
            "cannot merge {} onto {} at /{}",
            kind_name(patch),
            kind_name(dest),
            path.join("/")
        ),
    }
}

fn directive(v: &mut Value) -> Result<Option<String>, Error> {
    let bad = |d: &str| Error::Patch {
        field: "patchStrategicMerge".into(),
        reason: format!("unknown patch strategy {d:?}"),
    };
    match v {
        Value::Object(m) => match m.get("$patch") {
            None => Ok(None),
            Some(d) => {
                let d = d.as_str().unwrap_or_default().to_owned();
                if !matches!(d.as_str(), "delete" | "replace" | "merge") {
                    return Err(bad(&d));
                }
                m.remove("$patch");
                Ok(Some(d))
            }
        },
        Value::Array(a) => {
            let pos = a.iter().position(|e| {
                e.as_object()
                    .is_some_and(|m| m.len() == 1 && m.contains_key("$patch"))
            });
            let Some(pos) = pos else { return Ok(None) };
            let d = a[pos]["$patch"].as_str().unwrap_or_default().to_owned();
            if !matches!(d.as_str(), "delete" | "replace" | "merge") {
                return Err(bad(&d));
            }
            a.remove(pos);
            Ok(Some(d))
        }
        _ => Ok(None),
    }
}

/// Merges `patch` (kyaml's origin) onto `dest`; `None` removes the field.
fn merge_value(
    dest: Option<Value>,
    patch: Option<Value>,
    schema: bool,
    path: &mut Vec<String>,
) -> Result<Option<Value>, Error> {
    if path.len() > 256 {
        return Err(Error::Patch {
            field: "patchStrategicMerge".into(),
            reason: "nesting deeper than 256 levels".into(),
        });
    }
    let dest = dest.filter(|d| !d.is_null());
    let kind_of = dest.as_ref().or(patch.as_ref().filter(|p| !p.is_null()));
    match kind_of {
        None => {
            // Both missing or null: a null in the patch removes the field.
            Ok(None)
        }
        Some(Value::Object(_)) => {
            if let Some(d) = &dest
                && let Some(p) = patch.as_ref().filter(|p| !p.is_null() && !p.is_object())
            {
                return Err(wrong_kind(path, d, p));
            }
            if let Some(p) = patch.as_ref().filter(|p| !p.is_null() && !p.is_object())
                && dest.is_none()
            {
                return Err(wrong_kind(path, &Value::Object(Map::new()), p));
            }
            merge_map(dest, patch, schema, path)
        }
        Some(Value::Array(_)) => {
            if let (Some(d), Some(p)) = (&dest, &patch)
                && !p.is_null()
                && !p.is_array()
            {
                return Err(wrong_kind(path, d, p));
            }
            merge_list(dest, patch, schema, path)
        }
        Some(_) => {
            if let (Some(d), Some(p)) = (&dest, &patch)
                && (p.is_object() || p.is_array())
            {
                return Err(wrong_kind(path, d, p));
            }
            Ok(match patch {
                Some(Value::Null) => None,
                Some(p) => Some(p),
                None => dest,
            })
        }
    }
}

fn merge_map(
    dest: Option<Value>,
    patch: Option<Value>,
    schema: bool,
    path: &mut Vec<String>,
) -> Result<Option<Value>, Error> {
    let mut patch = patch;
    if matches!(patch, Some(Value::Null)) {
        return Ok(None);
    }
    let d = match &mut patch {
        Some(p) => directive(p)?,
        None => None,
    };
    let base = match (dest, d.as_deref()) {
        (_, Some("delete")) => return Ok(None),
        (None, _) | (_, Some("replace")) => patch.clone().unwrap_or(Value::Object(Map::new())),
        (Some(d), _) => d,
    };
    let Value::Object(mut out) = base else {
        return Ok(Some(base));
    };
    let patch_map = match patch {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    let mut keys: Vec<String> = out.keys().chain(patch_map.keys()).cloned().collect();
    keys.sort();
    keys.dedup();
    for k in keys {
        let p = patch_map.get(&k).cloned();
        if p.is_none() {
            continue;
        }
        path.push(k.clone());
        let merged = merge_value(out.get(&k).cloned(), p, schema, path)?;
        path.pop();
        match merged {
            Some(v) if !v.is_null() => {
                out.insert(k, v);
            }
            _ => {
                out.remove(&k);
            }
        }
    }
    Ok(Some(Value::Object(out)))
}

fn merge_list(
    dest: Option<Value>,
    patch: Option<Value>,
    schema: bool,
    path: &mut Vec<String>,
) -> Result<Option<Value>, Error> {
    let field = path.last().cloned().unwrap_or_default();
    let kind = if schema {
        let mut elements: Vec<&Value> = Vec::new();
        for v in [&dest, &patch].into_iter().flatten() {
            if let Value::Array(a) = v {
                elements.extend(a.iter());
            }
        }
        list_kind(&field, &elements)
    } else {
        ListKind::Replace
    };
    if kind == ListKind::Replace {
        return Ok(match patch {
            Some(Value::Null) => None,
            Some(p) => Some(p),
            None => dest,
        });
    }
    let mut patch = match patch {
        None => return Ok(dest),
        Some(Value::Null) => return Ok(None),
        Some(p) => p,
    };
    let d = directive(&mut patch)?;
    let dest_list = match (dest, d.as_deref()) {
        (_, Some("delete")) => return Ok(None),
        (_, Some("replace")) => {
            // The patch's own elements still merge with themselves (directives elided).
            return merge_list(None, Some(patch), schema, path);
        }
        (Some(Value::Array(a)), _) => a,
        (_, _) => Vec::new(),
    };
    let patch_list = match patch {
        Value::Array(a) => a,
        _ => Vec::new(),
    };
    match kind {
        ListKind::Set => {
            // Linear in the list lengths: membership by the element's JSON text.
            let mut seen = std::collections::HashSet::new();
            let mut out: Vec<Value> = Vec::new();
            for v in patch_list.into_iter().chain(dest_list) {
                if seen.insert(v.to_string()) {
                    out.push(v);
                }
            }
            Ok(Some(Value::Array(out)))
        }
        ListKind::Keyed(key) => {
            // Elements are found by their key's JSON text through maps, so merging two
            // lists costs their lengths, not their product.
            let key_of = |v: &Value| v.get(key).filter(|k| !k.is_null()).cloned();
            // The patch's keys in order, then the resource's others; the first element of
            // each key on either side.
            let mut order: Vec<(String, Value)> = Vec::new();
            let mut patch_at: std::collections::HashMap<String, usize> = Default::default();
            let mut dest_at: std::collections::HashMap<String, usize> = Default::default();
            let mut unkeyed: Vec<Value> = Vec::new();
            for (i, e) in patch_list.iter().enumerate() {
                match key_of(e) {
                    Some(k) => {
                        let text = k.to_string();
                        if !patch_at.contains_key(&text) {
                            patch_at.insert(text.clone(), i);
                            order.push((text, k));
                        }
                    }
                    None => unkeyed.push(e.clone()),
                }
            }
            let mut dest_unkeyed = Vec::new();
            for (i, e) in dest_list.iter().enumerate() {
                match key_of(e) {
                    Some(k) => {
                        let text = k.to_string();
                        if !dest_at.contains_key(&text) {
                            dest_at.insert(text.clone(), i);
                            if !patch_at.contains_key(&text) {
                                order.push((text, k));
                            }
                        }
                    }
                    None => dest_unkeyed.push(e.clone()),
                }
            }
            let mut out = Vec::with_capacity(order.len());
            for (text, k) in order {
                let de = dest_at.get(&text).map(|&i| &dest_list[i]);
                let pe = patch_at.get(&text).map(|&i| &patch_list[i]);
                path.push(format!("[{key}={k}]"));
                let merged = merge_value(de.cloned(), pe.cloned(), schema, path)?;
                path.pop();
                match merged {
                    Some(Value::Object(mut m)) if !m.is_empty() => {
                        m.entry(key.to_owned()).or_insert(k);
                        out.push(Value::Object(m));
                    }
                    Some(Value::Object(_)) | None | Some(Value::Null) => {}
                    Some(other) => out.push(other),
                }
            }
            out.extend(dest_unkeyed);
            out.extend(unkeyed);
            Ok(Some(Value::Array(out)))
        }
        ListKind::Replace => Ok(Some(Value::Array(patch_list))),
    }
}

/// Resolves the anchors of `patch` against `resource` and merges it: `Ok(None)` when a
/// condition anchor does not hold (nothing to patch).
pub fn apply(resource: &Value, patch: &Value) -> Result<Option<Value>, Error> {
    match preprocess(patch.clone(), resource)? {
        Some(p) => merge(resource, &p).map(Some),
        None => Ok(None),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(containers: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
               "spec": {"containers": containers}})
    }

    #[test]
    fn maps_merge_and_null_deletes() {
        let r = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"a": "1", "b": "2"}}});
        let out = apply(&r, &json!({"metadata": {"labels": {"b": null, "c": "3"}}}))
            .unwrap()
            .unwrap();
        assert_eq!(out["metadata"]["labels"], json!({"a": "1", "c": "3"}));
    }

    #[test]
    fn containers_merge_by_name_patch_first() {
        let r = pod(json!([{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]));
        let out = apply(
            &r,
            &json!({"spec": {"containers": [{"name": "b", "imagePullPolicy": "Always"}, {"name": "side", "image": "s"}]}}),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            out["spec"]["containers"],
            json!([{"name": "b", "image": "y", "imagePullPolicy": "Always"},
                   {"name": "side", "image": "s"}, {"name": "a", "image": "x"}])
        );
    }

    #[test]
    fn non_schema_lists_are_replaced() {
        let r = json!({"apiVersion": "example.com/v1", "kind": "Thing", "spec": {"containers": [{"name": "a"}]}});
        let out = apply(&r, &json!({"spec": {"containers": [{"name": "b"}]}}))
            .unwrap()
            .unwrap();
        assert_eq!(out["spec"]["containers"], json!([{"name": "b"}]));
        let r = pod(json!([{"name": "a", "args": ["1", "2"]}]));
        let out = apply(
            &r,
            &json!({"spec": {"containers": [{"name": "a", "args": ["3"]}]}}),
        )
        .unwrap()
        .unwrap();
        assert_eq!(out["spec"]["containers"][0]["args"], json!(["3"]));
    }

    #[test]
    fn condition_anchor_in_list_patches_matching_elements() {
        let r =
            pod(json!([{"name": "a", "image": "nginx:latest"}, {"name": "b", "image": "redis:1"}]));
        let patch =
            json!({"spec": {"containers": [{"(image)": "*:latest", "imagePullPolicy": "Always"}]}});
        let out = apply(&r, &patch).unwrap().unwrap();
        assert_eq!(out["spec"]["containers"][0]["imagePullPolicy"], "Always");
        assert!(
            out["spec"]["containers"][1]
                .get("imagePullPolicy")
                .is_none()
        );
    }

    #[test]
    fn condition_anchor_on_map_skips_whole_patch() {
        let r = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"app": "x"}}});
        let patch = json!({"metadata": {"labels": {"(app)": "y", "team": "t"}}});
        assert_eq!(apply(&r, &patch).unwrap(), None);
        let patch = json!({"metadata": {"labels": {"(app)": "x", "team": "t"}}});
        let out = apply(&r, &patch).unwrap().unwrap();
        assert_eq!(out["metadata"]["labels"], json!({"app": "x", "team": "t"}));
        // A missing key fails the condition too.
        let patch = json!({"metadata": {"(annotations)": {"a": "*"}, "labels": {"t": "1"}}});
        assert_eq!(apply(&r, &patch).unwrap(), None);
    }

    #[test]
    fn add_if_not_present() {
        let r = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"app": "x"}}});
        let patch = json!({"metadata": {"labels": {"+(app)": "y", "+(team)": "t"}}});
        let out = apply(&r, &patch).unwrap().unwrap();
        assert_eq!(out["metadata"]["labels"], json!({"app": "x", "team": "t"}));
    }

    #[test]
    fn global_anchor_in_list_drops_patch() {
        let r = pod(json!([{"name": "a", "image": "nginx"}]));
        let patch = json!({"metadata": {"labels": {"x": "y"}},
            "spec": {"containers": [{"<(image)": "redis*"}]}});
        assert_eq!(apply(&r, &patch).unwrap(), None);
        let patch = json!({"metadata": {"labels": {"x": "y"}},
            "spec": {"containers": [{"<(image)": "nginx*"}]}});
        let out = apply(&r, &patch).unwrap().unwrap();
        assert_eq!(out["metadata"]["labels"]["x"], "y");
        assert_eq!(
            out["spec"]["containers"],
            json!([{"name": "a", "image": "nginx"}])
        );
    }

    #[test]
    fn patch_directives() {
        let r = pod(json!([{"name": "a"}, {"name": "b"}]));
        let out = apply(
            &r,
            &json!({"spec": {"containers": [{"name": "a", "$patch": "delete"}]}}),
        )
        .unwrap()
        .unwrap();
        assert_eq!(out["spec"]["containers"], json!([{"name": "b"}]));
        let out = apply(
            &r,
            &json!({"spec": {"containers": [{"$patch": "replace"}, {"name": "c"}]}}),
        )
        .unwrap()
        .unwrap();
        assert_eq!(out["spec"]["containers"], json!([{"name": "c"}]));
        let e = apply(&r, &json!({"spec": {"$patch": "explode"}})).unwrap_err();
        assert!(e.to_string().contains("unknown patch strategy"), "{e}");
    }

    #[test]
    fn invalid_structure_is_an_error() {
        let r = pod(json!([{"name": "a"}]));
        let e = apply(&r, &json!({"metadata": {"name": {"x": 1}}})).unwrap_err();
        assert_eq!(e.code(), "policy.mutate.patch");
        assert!(
            e.to_string()
                .contains("cannot merge a map onto a scalar at /metadata/name"),
            "{e}"
        );
        let e = apply(&r, &json!({"spec": "x"})).unwrap_err();
        assert!(
            e.to_string().contains("cannot merge a scalar onto a map"),
            "{e}"
        );
    }

    #[test]
    fn env_and_ports_by_key() {
        let r = pod(json!([{"name": "a", "env": [{"name": "X", "value": "1"}],
            "ports": [{"containerPort": 80}]}]));
        let out = apply(&r, &json!({"spec": {"containers": [{"name": "a",
            "env": [{"name": "Y", "value": "2"}], "ports": [{"containerPort": 80, "name": "http"}]}]}}))
        .unwrap()
        .unwrap();
        let c = &out["spec"]["containers"][0];
        assert_eq!(
            c["env"],
            json!([{"name": "Y", "value": "2"}, {"name": "X", "value": "1"}])
        );
        assert_eq!(c["ports"], json!([{"containerPort": 80, "name": "http"}]));
    }
}
