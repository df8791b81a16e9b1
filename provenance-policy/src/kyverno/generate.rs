//! Kyverno `generate` rules (`kyverno.io/v1` ClusterPolicy / Policy) as a pure decision: which
//! resources Kyverno's background controller would create (or update) for a trigger resource.
//!
//! A rule that matches the trigger is checked as Kyverno's admission step checks it: a
//! PolicyException that applies makes it `skip`; its `context` is loaded and its
//! `preconditions` decide (`skip` when they do not hold, `error` when they cannot be
//! evaluated). Then the generation itself runs, as the background controller would:
//!
//! - `data`: the object in `data` with the target's `apiVersion`, `kind` (when `data` has
//!   none), `name` and `namespace` (removed when empty); without `data` (and without `clone`
//!   or `cloneList`) the target is created with its identity and labels only, as Kyverno does;
//! - `clone`: the source (the target's `apiVersion` and `kind`, `clone.namespace` and
//!   `clone.name`) read from the [`ClusterData`] in the [`Env`](crate::lang::jmespath::Env), with
//!   `uid`, `resourceVersion`, `creationTimestamp`, `managedFields` and `selfLink` dropped and
//!   `ownerReferences` dropped when it changes namespace; a clone onto itself generates
//!   nothing;
//! - `cloneList`: every resource of each `kinds` entry (`v1/Secret`, `apps/v1/Deployment`, or
//!   a bare kind) in `cloneList.namespace` that `cloneList.selector` selects, each cloned under
//!   its own name into the target namespace (sources already there are not cloned);
//! - `foreach`: each entry's `list` is evaluated, and for each element (`element`,
//!   `elementIndex`) its `context`, `preconditions` and its own `data` / `clone` /
//!   `cloneList` pattern.
//!
//! `{{ }}` variables are substituted in the whole pattern first (target, `data`, `clone`,
//! `cloneList`). Every generated resource carries Kyverno's labels:
//! `app.kubernetes.io/managed-by: kyverno`, `generate.kyverno.io/policy-name`,
//! `policy-namespace`, `rule-name`, `trigger-group`, `trigger-version`, `trigger-kind`,
//! `trigger-namespace`, `trigger-uid`, and for clones `generate.kyverno.io/clone-source` and
//! the `source-group`, `source-version`, `source-kind`, `source-namespace`, `source-uid` of the
//! source.
//!
//! When the [`ClusterData`] holds the target already, Kyverno leaves it alone unless the rule
//! has `synchronize: true` ([`GenerateAction::Update`]); without cluster data (or without
//! resources in it) every target is created ([`GenerateAction::Create`]).
//!
//! The rule's result is `pass` when the generation succeeded (whatever it generated), `error`
//! when it failed (a clone source that is not there: code `policy.generate.source_not_found`;
//! cluster data that holds no resources: `policy.unsupported`). Generate rules never block an
//! admission request ([`crate::admission`]): Kyverno generates in the background.
//!
//! Nothing here performs the creation: the resources are returned
//! ([`PolicyResponse::generated`](crate::kyverno::engine::PolicyResponse::generated),
//! [`Decision::generated`](crate::admission::Decision::generated)) for the caller to apply.

use std::collections::BTreeMap;

use provenance_core::{ResourceRef, RuleResult, RuleStatus};
use serde_json::{Map, Value, json};

use crate::Error;
use crate::admission::cluster::{ClusterData, LookupError};
use crate::admission::request::ResourceInput;
use crate::kyverno::conditions;
use crate::kyverno::engine::{RuleEval, foreach_list, load_context, subst};
use crate::kyverno::matching::LabelSelector;
use crate::lang::jmespath::QueryResult;

/// The label Kyverno sets on every resource it generates.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";

/// The prefix of the labels Kyverno sets on generated resources to track their policy, rule,
/// trigger and clone source (`generate.kyverno.io/policy-name`, ...).
pub const LABEL_PREFIX: &str = "generate.kyverno.io/";

/// What the background controller would do with a generated resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum GenerateAction {
    /// The target does not exist (or the cluster data does not say): it is created.
    Create,
    /// The target exists and the rule synchronizes: it is replaced by this resource.
    Update,
}

/// One resource a `generate` rule produces for a trigger.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct GeneratedResource {
    /// The policy (`namespace/name` for a namespaced Policy).
    pub policy: String,
    /// The rule.
    pub rule: String,
    /// Create or update.
    pub action: GenerateAction,
    /// The resource as Kyverno would write it, labels included.
    pub resource: Value,
    /// The clone source (`clone`, `cloneList`); `None` for `data`.
    pub source: Option<ResourceRef>,
    /// `generate.synchronize`: the downstream resource follows later changes of the policy,
    /// the trigger or the source.
    pub synchronize: bool,
    /// `generate.orphanDownstreamOnPolicyDelete`: the resource stays when the policy is
    /// deleted.
    pub orphan_downstream_on_policy_delete: bool,
}

impl GeneratedResource {
    /// The resource's `apiVersion`, `kind`, namespace and name.
    pub fn target(&self) -> ResourceRef {
        let s = |p: &str| {
            self.resource
                .pointer(p)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        ResourceRef {
            api_version: s("/apiVersion"),
            kind: s("/kind"),
            namespace: s("/metadata/namespace"),
            name: s("/metadata/name"),
        }
    }
}

/// Checks a rule's `generate` block when the policy loads, as Kyverno's policy validation
/// does: one of `data`, `clone`, `cloneList` and `foreach`; a target `apiVersion`, `kind` and
/// `name` unless the pattern is a `cloneList`; a namespaced Policy generates and clones in its
/// own namespace only. A target `uid` (which Kyverno does not read) is refused.
pub(crate) fn check(
    generate: &Value,
    policy: &str,
    policy_namespace: Option<&str>,
    path: &str,
) -> Result<(), Error> {
    let invalid = |field: &str, reason: String| Error::InvalidPolicy {
        policy: policy.to_owned(),
        path: format!("{path}{field}"),
        reason,
    };
    let present = |v: &Value, k: &str| v.get(k).is_some_and(|x| !x.is_null());
    let clone_set = |v: &Value| {
        v.get("clone").and_then(Value::as_object).is_some_and(|c| {
            c.values()
                .any(|x| x.as_str().is_some_and(|s| !s.is_empty()))
        })
    };
    let clone_list_set = |v: &Value| v.pointer("/cloneList/kinds").is_some_and(|k| !k.is_null());
    let count = [
        present(generate, "data"),
        clone_set(generate),
        clone_list_set(generate),
        present(generate, "foreach"),
    ]
    .into_iter()
    .filter(|b| *b)
    .count();
    if count > 1 {
        return Err(invalid(
            "",
            "only one of generate patterns (data, clone, cloneList and foreach) can be specified"
                .into(),
        ));
    }
    let patterns: Vec<(String, &Value)> = match generate.get("foreach").and_then(Value::as_array) {
        Some(list) => list
            .iter()
            .enumerate()
            .map(|(i, fe)| (format!(".foreach[{i}]"), fe))
            .collect(),
        None => vec![(String::new(), generate)],
    };
    if generate
        .get("foreach")
        .is_some_and(|f| !f.is_null() && !f.is_array())
    {
        return Err(invalid(".foreach", "must be a list".into()));
    }
    for (at, pat) in patterns {
        let text = |k: &str| pat.get(k).and_then(Value::as_str).unwrap_or_default();
        if !text("uid").is_empty() {
            return Err(Error::Unsupported {
                field: format!(
                    "{path}{at}.uid (policy {policy}: Kyverno does not read a target uid)"
                ),
            });
        }
        if at.is_empty() || !pat.is_null() {
            let inner = [present(pat, "data"), clone_set(pat), clone_list_set(pat)]
                .into_iter()
                .filter(|b| *b)
                .count();
            if inner > 1 {
                return Err(invalid(
                    &at,
                    "only one of data, clone and cloneList can be specified".into(),
                ));
            }
        }
        if !clone_list_set(pat) {
            for k in ["kind", "name", "apiVersion"] {
                if text(k).is_empty() {
                    return Err(invalid(
                        &format!("{at}.{k}"),
                        format!("{k} can not be empty"),
                    ));
                }
            }
        }
        if let Some(kinds) = pat.pointer("/cloneList/kinds") {
            let ok = kinds
                .as_array()
                .is_some_and(|a| a.iter().all(|k| k.as_str().is_some_and(|s| !s.is_empty())));
            if !ok {
                return Err(invalid(
                    &format!("{at}.cloneList.kinds"),
                    "must be a list of kinds (`v1/Secret`, `apps/v1/Deployment`)".into(),
                ));
            }
        }
        if let Some(sel) = pat.pointer("/cloneList/selector").filter(|s| !s.is_null()) {
            LabelSelector::from_value(sel, &format!("{path}{at}.cloneList.selector")).map_err(
                |e| match e {
                    Error::InvalidPolicy { path, reason, .. } => Error::InvalidPolicy {
                        policy: policy.to_owned(),
                        path,
                        reason,
                    },
                    other => other,
                },
            )?;
        }
        if let Some(ns) = policy_namespace.filter(|n| !n.is_empty()) {
            let scoped = [
                ("namespace", pat.get("namespace")),
                ("clone.namespace", pat.pointer("/clone/namespace")),
                ("cloneList.namespace", pat.pointer("/cloneList/namespace")),
            ];
            for (field, v) in scoped {
                let Some(v) = v.filter(|v| !v.is_null()) else {
                    if field == "namespace" && !text("kind").is_empty() {
                        return Err(invalid(
                            &format!("{at}.namespace"),
                            format!(
                                "a namespaced policy cannot generate resources in other namespaces, expected: {ns}, received: "
                            ),
                        ));
                    }
                    continue;
                };
                if field == "clone.namespace" && !clone_set(pat) {
                    continue;
                }
                if v.as_str() != Some(ns) {
                    return Err(invalid(
                        &format!("{at}.{field}"),
                        format!(
                            "a namespaced policy cannot generate or clone resources in other namespaces, expected: {ns}, received: {}",
                            v.as_str().unwrap_or_default()
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Whether the rule asks for generation for triggers that existed before the policy
/// (`generate.generateExisting`, else the policy's `spec.generateExisting` or its older name
/// `spec.generateExistingOnPolicyUpdate`).
pub(crate) fn generate_existing(rule_raw: &Value, policy_raw: &Value) -> bool {
    if let Some(b) = rule_raw
        .pointer("/generate/generateExisting")
        .and_then(Value::as_bool)
    {
        return b;
    }
    ["generateExisting", "generateExistingOnPolicyUpdate"]
        .into_iter()
        .any(|k| {
            policy_raw
                .pointer(&format!("/spec/{k}"))
                .and_then(Value::as_bool)
                == Some(true)
        })
}

/// Runs a `generate` rule whose match, exceptions, context and preconditions have passed:
/// `pass` with the generated resources appended to `out`, or `error`.
pub(crate) fn run(
    ev: &RuleEval<'_>,
    ctx: &Value,
    trigger: &ResourceInput,
    out: &mut Vec<GeneratedResource>,
) -> RuleResult {
    let generate = ev.rule.raw.get("generate").cloned().unwrap_or(Value::Null);
    let g = Generator {
        ev,
        trigger: &trigger.object,
        synchronize: generate.get("synchronize").and_then(Value::as_bool) == Some(true),
        orphan: generate
            .get("orphanDownstreamOnPolicyDelete")
            .and_then(Value::as_bool)
            == Some(true),
    };
    let produced = match generate.get("foreach").filter(|f| !f.is_null()) {
        Some(fe) => g.foreach(fe, ctx),
        None => g.pattern(&generate, ctx, "generate"),
    };
    match produced {
        Ok(resources) => {
            let names: Vec<String> = resources
                .iter()
                .map(|r| {
                    let t = r.target();
                    match t.namespace.as_str() {
                        "" => format!("{}/{}", t.kind, t.name),
                        ns => format!("{}/{ns}/{}", t.kind, t.name),
                    }
                })
                .collect();
            let message = if names.is_empty() {
                "no resource to generate".to_owned()
            } else {
                format!("generated {}", names.join(", "))
            };
            out.extend(resources);
            ev.result(RuleStatus::Pass, message)
        }
        Err(r) => *r,
    }
}

type Produced = Result<Vec<GeneratedResource>, Box<RuleResult>>;

struct Generator<'a> {
    ev: &'a RuleEval<'a>,
    trigger: &'a Value,
    synchronize: bool,
    orphan: bool,
}

/// `kinds` entries of a `cloneList`: `v1/Secret` → (`v1`, `Secret`), `apps/v1/Deployment` →
/// (`apps/v1`, `Deployment`), `Secret` → (``, `Secret`).
fn split_kind(entry: &str) -> (String, String) {
    match entry.rsplit_once('/') {
        Some((api_version, kind)) => (api_version.to_owned(), kind.to_owned()),
        None => (String::new(), entry.to_owned()),
    }
}

fn text(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn labels_of(v: &Value) -> BTreeMap<String, String> {
    crate::admission::request::string_map(v.pointer("/metadata/labels"))
}

/// Splits an `apiVersion` into group and version (`apps/v1` → `apps`, `v1`).
fn group_version(api_version: &str) -> (&str, &str) {
    api_version.rsplit_once('/').unwrap_or(("", api_version))
}

/// Runs `f` on the object's `metadata` (created, or replaced when it is not an object).
fn with_metadata(obj: &mut Map<String, Value>, f: impl FnOnce(&mut Map<String, Value>)) {
    let meta = obj
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    if let Value::Object(m) = meta {
        f(m);
    }
}

fn set_labels(obj: &mut Map<String, Value>, labels: &[(&str, String)]) {
    with_metadata(obj, |meta| {
        let entry = meta
            .entry("labels")
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        if let Value::Object(m) = entry {
            for (k, v) in labels {
                m.insert((*k).to_owned(), Value::String(v.clone()));
            }
        }
    });
}

fn set_or_remove(meta: &mut Map<String, Value>, key: &str, value: &str) {
    if value.is_empty() {
        meta.remove(key);
    } else {
        meta.insert(key.to_owned(), Value::String(value.to_owned()));
    }
}

impl Generator<'_> {
    fn error(&self, e: &Error) -> Box<RuleResult> {
        Box::new(self.ev.error(e))
    }

    fn cluster(&self) -> Option<&dyn ClusterData> {
        self.ev.env.cluster.as_deref()
    }

    /// `generate.foreach`: each entry over its list, each element with its own context,
    /// preconditions and pattern.
    fn foreach(&self, entries: &Value, ctx: &Value) -> Produced {
        let Some(entries) = entries.as_array() else {
            return Err(self.error(&Error::InvalidPolicy {
                policy: self.ev.policy.name.clone(),
                path: "generate.foreach".into(),
                reason: "must be a list".into(),
            }));
        };
        let mut out = Vec::new();
        for (fi, fe) in entries.iter().enumerate() {
            let at = format!("generate.foreach[{fi}]");
            let list = match foreach_list(fe, ctx, self.ev.env) {
                Ok(QueryResult::Value(Value::Array(a))) => a,
                Ok(QueryResult::Value(Value::Null)) | Ok(QueryResult::NotFound { .. }) => {
                    Vec::new()
                }
                Ok(QueryResult::Value(other)) => vec![other],
                Err(e) => return Err(self.error(&e)),
            };
            if list.len() > crate::kyverno::mutate::MAX_FOREACH_ELEMENTS {
                return Err(self.error(&Error::InvalidPolicy {
                    policy: self.ev.policy.name.clone(),
                    path: format!("{at}.list"),
                    reason: format!(
                        "{} elements, more than the {} a foreach generates for",
                        list.len(),
                        crate::kyverno::mutate::MAX_FOREACH_ELEMENTS
                    ),
                }));
            }
            for (i, element) in list.iter().enumerate() {
                if element.is_null() {
                    continue;
                }
                let mut c = ctx.clone();
                if let Some(obj) = c.as_object_mut() {
                    obj.insert("element".into(), element.clone());
                    obj.insert("elementIndex".into(), json!(i));
                    obj.insert("element0".into(), element.clone());
                    obj.insert("elementIndex0".into(), json!(i));
                }
                if let Some(entries) = fe.get("context").and_then(Value::as_array) {
                    load_context(
                        self.ev,
                        entries,
                        &mut c,
                        self.ev.vars,
                        &format!("{at}.context"),
                        fe,
                    )?;
                }
                if let Some(pre) = fe.get("preconditions").filter(|p| !p.is_null()) {
                    match conditions::evaluate_block(
                        pre,
                        &c,
                        self.ev.env,
                        &format!("{at}.preconditions"),
                    ) {
                        Ok(true) => {}
                        Ok(false) => continue,
                        Err(e) => return Err(self.error(&e)),
                    }
                }
                out.extend(self.pattern(fe, &c, &at)?);
            }
        }
        Ok(out)
    }

    /// One pattern (the rule's `generate`, or a `foreach` entry): variables substituted, then
    /// `clone`, `cloneList` or `data`.
    fn pattern(&self, block: &Value, ctx: &Value, at: &str) -> Produced {
        let mut pattern = Map::new();
        for k in [
            "apiVersion",
            "kind",
            "name",
            "namespace",
            "data",
            "clone",
            "cloneList",
        ] {
            if let Some(v) = block.get(k).filter(|v| !v.is_null()) {
                pattern.insert(k.to_owned(), v.clone());
            }
        }
        let pattern = Value::Object(pattern);
        let pattern = subst(&pattern, ctx, self.ev.env, at)
            .map_err(|e| self.error(&e))?
            .into_owned();
        let target = ResourceRef {
            api_version: text(&pattern, "apiVersion"),
            kind: text(&pattern, "kind"),
            namespace: text(&pattern, "namespace"),
            name: text(&pattern, "name"),
        };
        let clone_name = pattern
            .pointer("/clone/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !clone_name.is_empty() {
            let source = ResourceRef {
                api_version: target.api_version.clone(),
                kind: target.kind.clone(),
                namespace: pattern
                    .pointer("/clone/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                name: clone_name.to_owned(),
            };
            return Ok(self
                .clone_one(&target, &source, None, &format!("{at}.clone"))?
                .into_iter()
                .collect());
        }
        if let Some(kinds) = pattern
            .pointer("/cloneList/kinds")
            .and_then(Value::as_array)
            .filter(|k| !k.is_empty())
        {
            return self.clone_list(&pattern, kinds, &target.namespace, at);
        }
        // Without `data`, Kyverno still creates the target, with nothing but its identity.
        let data = pattern
            .get("data")
            .cloned()
            .unwrap_or_else(|| Value::Object(Map::new()));
        let Value::Object(mut obj) = data else {
            return Err(self.error(&Error::Generate {
                path: format!("{at}.data"),
                reason: "data is not an object".into(),
            }));
        };
        if target.kind.is_empty() || target.name.is_empty() {
            return Err(self.error(&Error::Generate {
                path: at.to_owned(),
                reason: format!(
                    "the target has no {} after variable substitution",
                    if target.kind.is_empty() {
                        "kind"
                    } else {
                        "name"
                    }
                ),
            }));
        }
        with_metadata(&mut obj, |meta| {
            set_or_remove(meta, "name", &target.name);
            set_or_remove(meta, "namespace", &target.namespace);
        });
        self.stamp(&mut obj, &target);
        Ok(self
            .finish(&target, obj, None, at)?
            .into_iter()
            .collect::<Vec<_>>())
    }

    /// `cloneList`: every selected source of each kind, cloned under its own name into
    /// `namespace`.
    fn clone_list(&self, pattern: &Value, kinds: &[Value], namespace: &str, at: &str) -> Produced {
        let source_ns = pattern
            .pointer("/cloneList/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let selector = match pattern
            .pointer("/cloneList/selector")
            .filter(|s| !s.is_null())
        {
            Some(s) => Some(
                LabelSelector::from_value(s, &format!("{at}.cloneList.selector"))
                    .map_err(|e| self.error(&e))?,
            ),
            None => None,
        };
        let Some(cluster) = self.cluster() else {
            return Err(Box::new(self.ev.unsupported(&format!(
                "{at}.cloneList without cluster data (supply the sources through ClusterData)"
            ))));
        };
        let mut out = Vec::new();
        for (ki, entry) in kinds.iter().enumerate() {
            let path = format!("{at}.cloneList.kinds[{ki}]");
            let (api_version, kind) = split_kind(entry.as_str().unwrap_or_default());
            let sources = match cluster.list_resources(&api_version, &kind, source_ns) {
                Ok(s) => s,
                Err(LookupError::NotSupplied { what }) => {
                    return Err(Box::new(
                        self.ev.unsupported(&format!("{path} (no {what} supplied)")),
                    ));
                }
                Err(source) => {
                    return Err(self.error(&Error::GenerateSource {
                        path,
                        what: format!("list {api_version} {kind} in {source_ns:?}"),
                        source,
                    }));
                }
            };
            for source in sources {
                if let Some(sel) = &selector
                    && !sel.matches(&labels_of(&source))
                {
                    continue;
                }
                let src = ResourceRef {
                    api_version: text(&source, "apiVersion"),
                    kind: text(&source, "kind"),
                    namespace: source
                        .pointer("/metadata/namespace")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    name: source
                        .pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                };
                if src.namespace == namespace {
                    continue;
                }
                let target = ResourceRef {
                    api_version: src.api_version.clone(),
                    kind: src.kind.clone(),
                    namespace: namespace.to_owned(),
                    name: src.name.clone(),
                };
                out.extend(self.clone_one(&target, &src, Some(source), &path)?);
            }
        }
        Ok(out)
    }

    /// Clones `source` (read from the cluster data unless given) to `target`.
    fn clone_one(
        &self,
        target: &ResourceRef,
        source: &ResourceRef,
        given: Option<Value>,
        at: &str,
    ) -> Result<Option<GeneratedResource>, Box<RuleResult>> {
        if source.namespace == target.namespace && source.name == target.name {
            return Ok(None);
        }
        let source_obj = match given {
            Some(s) => s,
            None => {
                let Some(cluster) = self.cluster() else {
                    return Err(Box::new(self.ev.unsupported(&format!(
                        "{at} without cluster data (supply the source through ClusterData)"
                    ))));
                };
                match cluster.resource(
                    &source.api_version,
                    &source.kind,
                    &source.namespace,
                    &source.name,
                ) {
                    Ok(s) => s,
                    Err(LookupError::NotSupplied { what }) => {
                        return Err(Box::new(
                            self.ev.unsupported(&format!("{at} (no {what} supplied)")),
                        ));
                    }
                    Err(e) => {
                        return Err(self.error(&Error::GenerateSource {
                            path: at.to_owned(),
                            what: format!(
                                "{} {} {}/{}",
                                source.api_version, source.kind, source.namespace, source.name
                            ),
                            source: e,
                        }));
                    }
                }
            }
        };
        let Value::Object(mut obj) = source_obj else {
            return Err(self.error(&Error::Generate {
                path: at.to_owned(),
                reason: "the clone source is not an object".into(),
            }));
        };
        let source_uid = obj
            .get("metadata")
            .and_then(|m| m.get("uid"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let source_api = text(&Value::Object(obj.clone()), "apiVersion");
        let (group, version) = group_version(&source_api);
        let source_kind = obj
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        set_labels(
            &mut obj,
            &[
                ("generate.kyverno.io/clone-source", String::new()),
                ("generate.kyverno.io/source-group", group.to_owned()),
                ("generate.kyverno.io/source-version", version.to_owned()),
                ("generate.kyverno.io/source-kind", source_kind),
                (
                    "generate.kyverno.io/source-namespace",
                    source.namespace.clone(),
                ),
                ("generate.kyverno.io/source-uid", source_uid),
            ],
        );
        with_metadata(&mut obj, |meta| {
            if source.namespace != target.namespace {
                meta.remove("ownerReferences");
            }
            for k in [
                "uid",
                "selfLink",
                "creationTimestamp",
                "managedFields",
                "resourceVersion",
            ] {
                meta.remove(k);
            }
            set_or_remove(meta, "name", &target.name);
            set_or_remove(meta, "namespace", &target.namespace);
        });
        self.stamp(&mut obj, target);
        self.finish(target, obj, Some(source.clone()), at)
    }

    /// The target's kind (when the object names none) and apiVersion, and Kyverno's tracking
    /// labels.
    fn stamp(&self, obj: &mut Map<String, Value>, target: &ResourceRef) {
        if obj
            .get("kind")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            obj.insert("kind".into(), Value::String(target.kind.clone()));
        }
        obj.insert(
            "apiVersion".into(),
            Value::String(target.api_version.clone()),
        );
        self.manage_labels(obj);
    }

    /// Kyverno's tracking labels: managed-by, policy, rule and trigger.
    fn manage_labels(&self, obj: &mut Map<String, Value>) {
        let t = self.trigger;
        let api = text(t, "apiVersion");
        let (group, version) = group_version(&api);
        let meta = |k: &str| {
            t.pointer(&format!("/metadata/{k}"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        set_labels(
            obj,
            &[
                (MANAGED_BY_LABEL, "kyverno".to_owned()),
                (
                    "generate.kyverno.io/policy-name",
                    self.ev.policy.name.clone(),
                ),
                (
                    "generate.kyverno.io/policy-namespace",
                    self.ev.policy.namespace.clone().unwrap_or_default(),
                ),
                ("generate.kyverno.io/rule-name", self.ev.rule.name.clone()),
                ("generate.kyverno.io/trigger-version", version.to_owned()),
                ("generate.kyverno.io/trigger-group", group.to_owned()),
                ("generate.kyverno.io/trigger-kind", text(t, "kind")),
                ("generate.kyverno.io/trigger-namespace", meta("namespace")),
                ("generate.kyverno.io/trigger-uid", meta("uid")),
            ],
        );
    }

    /// Decides create or update against the cluster data: an existing target is left alone
    /// unless the rule synchronizes.
    fn finish(
        &self,
        target: &ResourceRef,
        obj: Map<String, Value>,
        source: Option<ResourceRef>,
        at: &str,
    ) -> Result<Option<GeneratedResource>, Box<RuleResult>> {
        let existing = match self.cluster() {
            None => None,
            Some(c) => match c.resource(
                &target.api_version,
                &target.kind,
                &target.namespace,
                &target.name,
            ) {
                Ok(v) => Some(v),
                Err(LookupError::NotSupplied { .. } | LookupError::NotFound { .. }) => None,
                Err(e) => {
                    return Err(self.error(&Error::GenerateSource {
                        path: at.to_owned(),
                        what: format!("target {target}"),
                        source: e,
                    }));
                }
            },
        };
        let resource = Value::Object(obj);
        let action = match existing {
            None => GenerateAction::Create,
            Some(_) if !self.synchronize => return Ok(None),
            Some(_) => GenerateAction::Update,
        };
        Ok(Some(GeneratedResource {
            policy: self.ev.policy.display_name(),
            rule: self.ev.rule.name.clone(),
            action,
            resource,
            source,
            synchronize: self.synchronize,
            orphan_downstream_on_policy_delete: self.orphan,
        }))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use std::sync::Arc;

    use provenance_core::RuleStatus;
    use serde_json::{Value, json};

    use super::{GenerateAction, GeneratedResource};
    use crate::admission::PolicySet;
    use crate::admission::cluster::ClusterSnapshot;
    use crate::admission::loader::{LoadedPolicy, load_policies};
    use crate::admission::request::ResourceInput;
    use crate::kyverno::engine::{PolicyResponse, Variables};
    use crate::lang::jmespath::Env;

    fn policy(rules: &str) -> Box<crate::kyverno::policy::ClusterPolicy> {
        policy_with("ClusterPolicy", "", rules).unwrap()
    }

    fn policy_with(
        kind: &str,
        extra_meta: &str,
        rules: &str,
    ) -> Result<Box<crate::kyverno::policy::ClusterPolicy>, crate::Error> {
        let text = format!(
            "apiVersion: kyverno.io/v1\nkind: {kind}\nmetadata:\n  name: gen\n{extra_meta}spec:\n  validationFailureAction: Enforce\n  rules:\n{rules}"
        );
        match load_policies(&text, "p.yaml")?.remove(0) {
            LoadedPolicy::Kyverno(cp) => Ok(cp),
            other => panic!("{other:?}"),
        }
    }

    fn namespace(name: &str) -> ResourceInput {
        ResourceInput::create(json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "uid": "u-1", "labels": {"team": "ml"}},
        }))
    }

    fn run(
        cp: &crate::kyverno::policy::ClusterPolicy,
        input: &ResourceInput,
        env: &Env,
    ) -> PolicyResponse {
        cp.evaluate(input, &Variables::default(), env)
    }

    fn snapshot(resources: &[Value]) -> Env {
        let mut s = ClusterSnapshot::new().with_resources_supplied();
        for r in resources {
            s.add_resource(r.clone());
        }
        Env::default().with_cluster(Arc::new(s))
    }

    const DATA_RULE: &str = r#"  - name: quota
    match:
      any:
      - resources:
          kinds: [Namespace]
    generate:
      apiVersion: v1
      kind: ResourceQuota
      name: "quota-{{request.object.metadata.labels.team}}"
      namespace: "{{request.object.metadata.name}}"
      synchronize: true
      data:
        metadata:
          labels:
            own: label
        spec:
          hard:
            nvidia.com/gpu: "{{request.object.metadata.labels.team}}"
"#;

    fn one(resp: &PolicyResponse) -> &GeneratedResource {
        assert_eq!(resp.generated.len(), 1, "{:?}", resp);
        &resp.generated[0]
    }

    #[test]
    fn data_substitutes_variables_and_adds_kyverno_labels() {
        let cp = policy(DATA_RULE);
        let resp = run(&cp, &namespace("research"), &Env::default());
        assert_eq!(resp.rules.len(), 1);
        assert_eq!(resp.rules[0].status, RuleStatus::Pass, "{:?}", resp.rules);
        let g = one(&resp);
        assert_eq!(g.action, GenerateAction::Create);
        assert!(g.synchronize);
        assert!(g.source.is_none());
        let r = &g.resource;
        assert_eq!(r["apiVersion"], "v1");
        assert_eq!(r["kind"], "ResourceQuota");
        assert_eq!(r["metadata"]["name"], "quota-ml");
        assert_eq!(r["metadata"]["namespace"], "research");
        assert_eq!(r["spec"]["hard"]["nvidia.com/gpu"], "ml");
        let labels = &r["metadata"]["labels"];
        assert_eq!(labels["own"], "label");
        assert_eq!(labels["app.kubernetes.io/managed-by"], "kyverno");
        assert_eq!(labels["generate.kyverno.io/policy-name"], "gen");
        assert_eq!(labels["generate.kyverno.io/rule-name"], "quota");
        assert_eq!(labels["generate.kyverno.io/trigger-kind"], "Namespace");
        assert_eq!(labels["generate.kyverno.io/trigger-uid"], "u-1");
        assert_eq!(labels["generate.kyverno.io/trigger-version"], "v1");
    }

    #[test]
    fn an_existing_target_is_updated_only_when_synchronized() {
        let existing = json!({
            "apiVersion": "v1", "kind": "ResourceQuota",
            "metadata": {"name": "quota-ml", "namespace": "research"},
        });
        let env = snapshot(std::slice::from_ref(&existing));
        let resp = run(&policy(DATA_RULE), &namespace("research"), &env);
        assert_eq!(one(&resp).action, GenerateAction::Update);
        let unsynced = DATA_RULE.replace("synchronize: true", "synchronize: false");
        let resp = run(&policy(&unsynced), &namespace("research"), &env);
        assert_eq!(resp.rules[0].status, RuleStatus::Pass);
        assert!(resp.generated.is_empty(), "{:?}", resp.generated);
    }

    #[test]
    fn preconditions_that_do_not_hold_skip_the_rule() {
        let rule = DATA_RULE.replace(
            "    generate:\n",
            "    preconditions:\n      all:\n      - key: \"{{request.object.metadata.name}}\"\n        operator: Equals\n        value: production\n    generate:\n",
        );
        let resp = run(&policy(&rule), &namespace("research"), &Env::default());
        assert_eq!(resp.rules[0].status, RuleStatus::Skip);
        assert!(resp.generated.is_empty());
        let resp = run(&policy(&rule), &namespace("production"), &Env::default());
        assert_eq!(resp.rules[0].status, RuleStatus::Pass);
        assert_eq!(one(&resp).resource["metadata"]["namespace"], "production");
    }

    #[test]
    fn an_unresolvable_variable_is_an_error() {
        let rule = DATA_RULE.replace(
            "metadata.labels.team}}\"\n      namespace",
            "metadata.labels.missing}}\"\n      namespace",
        );
        let resp = run(&policy(&rule), &namespace("research"), &Env::default());
        assert_eq!(resp.rules[0].status, RuleStatus::Error, "{:?}", resp.rules);
        assert!(resp.generated.is_empty());
    }

    const CLONE_RULE: &str = r#"  - name: pull-secret
    match:
      any:
      - resources:
          kinds: [Namespace]
    generate:
      apiVersion: v1
      kind: Secret
      name: regcred
      namespace: "{{request.object.metadata.name}}"
      clone:
        namespace: default
        name: regcred
"#;

    fn secret(ns: &str, name: &str, labels: Value) -> Value {
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {
                "name": name, "namespace": ns, "uid": "s-1", "resourceVersion": "7",
                "creationTimestamp": "2026-01-01T00:00:00Z", "labels": labels,
                "ownerReferences": [{"kind": "Thing", "name": "owner"}],
            },
            "type": "Opaque",
            "data": {"password": "cGFzcw=="},
        })
    }

    #[test]
    fn clone_copies_the_source_without_its_server_fields() {
        let env = snapshot(&[secret("default", "regcred", json!({"a": "b"}))]);
        let resp = run(&policy(CLONE_RULE), &namespace("research"), &env);
        assert_eq!(resp.rules[0].status, RuleStatus::Pass, "{:?}", resp.rules);
        let g = one(&resp);
        let src = g.source.as_ref().unwrap();
        assert_eq!(
            (src.namespace.as_str(), src.name.as_str()),
            ("default", "regcred")
        );
        let r = &g.resource;
        assert_eq!(r["metadata"]["namespace"], "research");
        assert_eq!(r["data"]["password"], "cGFzcw==");
        for gone in [
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "ownerReferences",
        ] {
            assert!(r["metadata"].get(gone).is_none(), "{gone} kept: {r}");
        }
        let labels = &r["metadata"]["labels"];
        assert_eq!(labels["a"], "b");
        assert_eq!(labels["generate.kyverno.io/source-namespace"], "default");
        assert_eq!(labels["generate.kyverno.io/source-uid"], "s-1");
        assert_eq!(labels["generate.kyverno.io/clone-source"], "");
        // Cloning onto itself generates nothing.
        let resp = run(&policy(CLONE_RULE), &namespace("default"), &env);
        assert_eq!(resp.rules[0].status, RuleStatus::Pass);
        assert!(resp.generated.is_empty());
    }

    #[test]
    fn a_missing_clone_source_is_an_error() {
        let env = snapshot(&[]);
        let resp = run(&policy(CLONE_RULE), &namespace("research"), &env);
        let r = &resp.rules[0];
        assert_eq!(r.status, RuleStatus::Error);
        assert_eq!(r.reasons[0].code, "policy.generate.source_not_found");
        assert!(r.message.contains("default/regcred"), "{}", r.message);
        assert!(resp.generated.is_empty());
        // Without any cluster data the clone cannot be decided: unsupported, never a pass.
        let resp = run(&policy(CLONE_RULE), &namespace("research"), &Env::default());
        assert_eq!(resp.rules[0].status, RuleStatus::Error);
        assert_eq!(
            resp.rules[0].reasons[0].code,
            crate::kyverno::engine::UNSUPPORTED
        );
    }

    #[test]
    fn clone_list_clones_the_selected_sources_of_each_kind() {
        let rule = r#"  - name: clone-list
    match:
      any:
      - resources:
          kinds: [Namespace]
    generate:
      namespace: "{{request.object.metadata.name}}"
      cloneList:
        namespace: default
        kinds: [v1/Secret, v1/ConfigMap]
        selector:
          matchLabels:
            share: "yes"
"#;
        let cm = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "settings", "namespace": "default", "labels": {"share": "yes"}},
            "data": {"k": "v"},
        });
        let env = snapshot(&[
            secret("default", "shared", json!({"share": "yes"})),
            secret("default", "private", json!({"share": "no"})),
            secret("other", "elsewhere", json!({"share": "yes"})),
            cm,
        ]);
        let resp = run(&policy(rule), &namespace("research"), &env);
        assert_eq!(resp.rules[0].status, RuleStatus::Pass, "{:?}", resp.rules);
        let mut names: Vec<String> = resp
            .generated
            .iter()
            .map(|g| format!("{}/{}", g.target().kind, g.target().name))
            .collect();
        names.sort();
        assert_eq!(names, ["ConfigMap/settings", "Secret/shared"]);
        assert!(
            resp.generated
                .iter()
                .all(|g| g.target().namespace == "research")
        );
    }

    #[test]
    fn foreach_generates_per_element_with_its_preconditions() {
        let rule = r#"  - name: per-port
    match:
      any:
      - resources:
          kinds: [Service]
    generate:
      foreach:
      - list: request.object.spec.ports
        preconditions:
          all:
          - key: "{{element.port}}"
            operator: NotEquals
            value: 22
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        name: "allow-{{element.name}}"
        namespace: "{{request.object.metadata.namespace}}"
        data:
          spec:
            ingress:
            - ports:
              - port: "{{element.port}}"
"#;
        let svc = ResourceInput::create(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "apps"},
            "spec": {"ports": [
                {"name": "http", "port": 80},
                {"name": "ssh", "port": 22},
                {"name": "metrics", "port": 9090},
            ]},
        }));
        let resp = run(&policy(rule), &svc, &Env::default());
        assert_eq!(resp.rules[0].status, RuleStatus::Pass, "{:?}", resp.rules);
        let names: Vec<String> = resp.generated.iter().map(|g| g.target().name).collect();
        assert_eq!(names, ["allow-http", "allow-metrics"]);
        assert_eq!(
            resp.generated[1].resource["spec"]["ingress"][0]["ports"][0]["port"],
            9090
        );
    }

    #[test]
    fn generate_rules_never_block_admission() {
        // Enforce, and the clone source is missing: the rule errors, the request is admitted.
        let cp = policy(CLONE_RULE);
        let set = PolicySet::new(vec![LoadedPolicy::Kyverno(cp)]);
        let d = set.decide(&namespace("research"), &snapshot(&[]));
        assert!(d.allowed, "{}", d.message);
        assert!(d.warnings.is_empty(), "{:?}", d.warnings);
        assert_eq!(d.results.len(), 1);
        assert_eq!(d.results[0].status, RuleStatus::Error);
        // With the source, the decision lists what to generate.
        let env = snapshot(&[secret("default", "regcred", json!({}))]);
        let d = set.decide(&namespace("research"), &env);
        assert!(d.allowed);
        assert_eq!(d.generated.len(), 1);
        assert_eq!(d.generated[0].target().namespace, "research");
    }

    #[test]
    fn loading_refuses_what_kyverno_refuses() {
        let both = CLONE_RULE.replace("      clone:\n", "      data: {a: b}\n      clone:\n");
        let e = policy_with("ClusterPolicy", "", &both).unwrap_err();
        assert!(
            e.to_string().contains("only one of generate patterns"),
            "{e}"
        );
        let no_name = DATA_RULE.replace(
            "      name: \"quota-{{request.object.metadata.labels.team}}\"\n",
            "",
        );
        let e = policy_with("ClusterPolicy", "", &no_name).unwrap_err();
        assert!(e.to_string().contains("generate.name"), "{e}");
        let uid = DATA_RULE.replace("      synchronize: true\n", "      uid: abc\n");
        let e = policy_with("ClusterPolicy", "", &uid).unwrap_err();
        assert_eq!(e.code(), "policy.unsupported", "{e}");
        let typed = DATA_RULE.replace("synchronize: true", "synchronize: \"yes\"");
        let e = policy_with("ClusterPolicy", "", &typed).unwrap_err();
        assert_eq!(e.code(), "policy.invalid", "{e}");
        // A namespaced Policy generates in its own namespace only.
        let e = policy_with("Policy", "  namespace: team-a\n", DATA_RULE).unwrap_err();
        assert!(e.to_string().contains("expected: team-a"), "{e}");
        let own = DATA_RULE.replace(
            "namespace: \"{{request.object.metadata.name}}\"",
            "namespace: team-a",
        );
        policy_with("Policy", "  namespace: team-a\n", &own).unwrap();
    }

    #[test]
    fn generate_existing_is_read_from_the_rule_then_the_spec() {
        let cp = policy(DATA_RULE);
        assert!(!cp.generate_existing(&cp.rules[0]));
        let rule = DATA_RULE.replace(
            "      synchronize: true\n",
            "      synchronize: true\n      generateExisting: true\n",
        );
        let cp = policy(&rule);
        assert!(cp.generate_existing(&cp.rules[0]));
    }
}
