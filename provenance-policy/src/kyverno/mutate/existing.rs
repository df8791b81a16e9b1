//! Mutate rules that change existing resources (`mutate.targets`, Kyverno's "mutate
//! existing"): for a trigger resource that a rule matches, the rule selects other resources
//! ("targets") from the caller's cluster data and patches each of them.
//!
//! Kyverno applies these rules in its background controller, after the trigger's admission;
//! the trigger itself is never changed. This module decides what that controller would write,
//! and writes nothing: the targets are read through the
//! [`ClusterData`](crate::admission::cluster::ClusterData) in the evaluation [`Env`], and the
//! patched targets come back in a [`MutateExisting`].
//!
//! For each rule with `targets`, in order:
//!
//! 1. `match` / `exclude` against the trigger (no match: no result);
//! 2. the rule's `context`, then its `preconditions` (`skip`, "preconditions not met"), then
//!    PolicyExceptions (`skip`), as Kyverno's mutate-existing handler orders them;
//! 3. each `targets[N]` entry: `{{ }}` variables substituted in `apiVersion`, `kind`,
//!    `namespace`, `name` and `selector` from the trigger's context, then the resources
//!    selected as Kyverno's client selects them. A namespace and a name both set and without
//!    wildcards name one resource: when it is missing the rule reports `error`
//!    (`policy.mutate.target_not_found`). Otherwise every resource of the kind whose
//!    namespace and name match the (wildcard) patterns and whose labels match `selector`
//!    is a target; none is no result at all, as in Kyverno. A namespaced `Policy` reads
//!    targets in its own namespace only;
//! 4. per target: `target` (the resource as stored) is set in the context, the entry's
//!    `context` is loaded and its `preconditions` checked (`skip`), then the rule's
//!    `patchStrategicMerge`, `patchesJson6902` or `foreach` is applied to the target:
//!    `pass` ("mutated Kind/name in namespace ns") with the patched target, `skip` ("no
//!    patches applied") or `error`.
//!
//! Each rule reads the targets as the cluster data holds them: two rules that patch the same
//! target each give their own patched copy.

use std::sync::Arc;

use provenance_core::{ResourceRef, RuleResult, RuleStatus};
use serde_json::Value;

use super::apply;
use crate::Error;
use crate::admission::cluster::LookupError;
use crate::admission::request::ResourceInput;
use crate::kyverno::conditions;
use crate::kyverno::context::{base_context, set_dotted};
use crate::kyverno::engine::{PolicyResponse, RuleEval, Variables, load_context, resource_ref};
use crate::kyverno::exceptions::PolicyException;
use crate::kyverno::matching::LabelSelector;
use crate::kyverno::policy::{ClusterPolicy, Rule, RuleKind};
use crate::lang::jmespath::Env;

/// One resource a mutate-existing rule selected as a target, and what the rule did to it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TargetMutation {
    /// The rule's name.
    pub rule: String,
    /// The target as the cluster data holds it.
    pub target: Value,
    /// The rule's result for this target (also in [`MutateExisting::response`]); its
    /// `resource` is the target.
    pub result: RuleResult,
    /// The patched target, when the result is `pass`.
    pub patched: Option<Value>,
}

/// What a policy's mutate-existing rules decide for one trigger resource.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct MutateExisting {
    /// One result per target of every rule that matched, and one per rule that stopped
    /// before its targets (`skip` on preconditions or an exception, `error` on a failed
    /// context, precondition or target look-up), in rule order.
    pub response: PolicyResponse,
    /// Every target selected, with its result and patched copy, in rule order.
    pub targets: Vec<TargetMutation>,
}

impl MutateExisting {
    /// The targets a rule patched, as `(rule, patched target)`.
    pub fn patched(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.targets
            .iter()
            .filter_map(|t| t.patched.as_ref().map(|p| (t.rule.as_str(), p)))
    }
}

/// Whether a rule's `mutate` block has `targets` (Kyverno's `HasMutateExisting`: any
/// `targets` list, even an empty one).
pub(crate) fn has_targets(rule: &Rule) -> bool {
    matches!(rule.kind, RuleKind::Mutate)
        && rule
            .raw
            .pointer("/mutate/targets")
            .is_some_and(|t| !t.is_null())
}

fn contains_wildcard(s: &str) -> bool {
    s.contains('*') || s.contains('?')
}

/// Checks a rule's `mutate` block when the policy loads: `targets` entries name an
/// `apiVersion` and a `kind` (no subresource, no wildcard kind), a namespaced Policy's
/// targets stay in its namespace, a target `uid` (which Kyverno does not read) is refused,
/// and `mutateExistingOnPolicyUpdate` is a boolean that needs `targets`.
pub(crate) fn check(
    mutate: &Value,
    spec_on_update: bool,
    policy: &str,
    policy_namespace: Option<&str>,
    path: &str,
) -> Result<(), Error> {
    let invalid = |field: String, reason: &str| Error::InvalidPolicy {
        policy: policy.to_owned(),
        path: field,
        reason: reason.to_owned(),
    };
    let on_update = match mutate.get("mutateExistingOnPolicyUpdate") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(invalid(
                format!("{path}.mutateExistingOnPolicyUpdate"),
                "must be a boolean",
            ));
        }
    };
    let targets = match mutate.get("targets") {
        None | Some(Value::Null) => None,
        Some(Value::Array(a)) => Some(a),
        Some(_) => return Err(invalid(format!("{path}.targets"), "must be a list")),
    };
    if (on_update || spec_on_update) && targets.is_none_or(|t| t.is_empty()) {
        return Err(invalid(
            format!("{path}.targets"),
            "targets has to be specified when mutateExistingOnPolicyUpdate is set",
        ));
    }
    for (i, t) in targets.into_iter().flatten().enumerate() {
        let at = format!("{path}.targets[{i}]");
        if !t.is_object() {
            return Err(invalid(at, "must be an object"));
        }
        let text = |k: &str| -> Result<&str, Error> {
            match t.get(k) {
                None | Some(Value::Null) => Ok(""),
                Some(Value::String(s)) => Ok(s),
                Some(_) => Err(invalid(format!("{at}.{k}"), "must be a string")),
            }
        };
        for k in ["apiVersion", "kind"] {
            if text(k)?.is_empty() {
                return Err(invalid(format!("{at}.{k}"), "can not be empty"));
            }
        }
        text("name")?;
        let namespace = text("namespace")?;
        if !text("uid")?.is_empty() {
            return Err(Error::Unsupported {
                field: format!("{at}.uid (policy {policy}: Kyverno does not read a target uid)"),
            });
        }
        let kind = text("kind")?;
        if !kind.contains("{{") {
            check_kind(kind).map_err(|why| Error::Unsupported {
                field: format!("{at}.kind (policy {policy}: {why})"),
            })?;
        }
        if let Some(ns) = policy_namespace
            && !namespace.is_empty()
            && namespace != ns
        {
            return Err(invalid(
                format!("{at}.namespace"),
                "This field can be ignored or should have value of the namespace where the policy is being created",
            ));
        }
        if let Some(s) = t.get("selector").filter(|s| !s.is_null())
            && !has_vars(s)
        {
            LabelSelector::from_value(s, &format!("{at}.selector")).map_err(|e| match e {
                Error::InvalidPolicy { path, reason, .. } => Error::InvalidPolicy {
                    policy: policy.to_owned(),
                    path,
                    reason,
                },
                other => other,
            })?;
        }
    }
    Ok(())
}

fn has_vars(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains("{{"),
        Value::Array(a) => a.iter().any(has_vars),
        Value::Object(m) => m.iter().any(|(k, v)| k.contains("{{") || has_vars(v)),
        _ => false,
    }
}

/// A target kind this engine selects: a plain kind, no subresource (`Deployment/scale`,
/// `Pod.status`) and no wildcard.
fn check_kind(kind: &str) -> Result<(), &'static str> {
    if kind.contains('/') || kind.contains('.') {
        return Err("subresource targets are not evaluated");
    }
    if contains_wildcard(kind) {
        return Err("wildcard target kinds are not evaluated");
    }
    Ok(())
}

/// Kyverno's target filter on a listed resource: an empty namespace pattern matches any
/// namespace, an empty name pattern any name.
fn name_matches(ns_pattern: &str, name_pattern: &str, namespace: &str, name: &str) -> bool {
    use provenance_core::wildcard::wildcard_match;
    match (ns_pattern.is_empty(), name_pattern.is_empty()) {
        (true, true) => true,
        (true, false) => wildcard_match(name_pattern, name),
        (false, _) => {
            wildcard_match(ns_pattern, namespace)
                && (name_pattern.is_empty() || wildcard_match(name_pattern, name))
        }
    }
}

/// Whether a resource's `apiVersion` is what a target's `apiVersion` asks for: `group/version`
/// exactly (wildcards allowed), a bare `version` in any group, as Kyverno's kind selector reads
/// `v1/Secret`.
fn api_version_matches(wanted: &str, actual: &str) -> bool {
    use provenance_core::wildcard::wildcard_match;
    match wanted.split_once('/') {
        Some(_) => wildcard_match(wanted, actual),
        None => {
            let version = actual.rsplit('/').next().unwrap_or(actual);
            wildcard_match(wanted, version)
        }
    }
}

fn str_at<'v>(v: &'v Value, p: &str) -> &'v str {
    v.pointer(p).and_then(Value::as_str).unwrap_or_default()
}

fn labels_of(v: &Value) -> std::collections::BTreeMap<String, String> {
    v.pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// One `targets[N]` entry resolved against the cluster data.
struct Selected<'r> {
    spec: &'r Value,
    index: usize,
    resources: Vec<Value>,
}

impl ClusterPolicy {
    /// Whether the policy has a mutate rule with `targets` (mutate existing).
    pub fn has_mutate_existing(&self) -> bool {
        self.rules.iter().any(has_targets)
    }

    /// Whether Kyverno applies the policy's mutate-existing rules to existing triggers when
    /// the policy is installed or changed: any rule's `mutate.mutateExistingOnPolicyUpdate`,
    /// else `spec.mutateExistingOnPolicyUpdate`. The engine decides one trigger at a time
    /// either way ([`ClusterPolicy::mutate_existing`]); a controller that honours the flag
    /// evaluates the existing triggers itself.
    pub fn mutate_existing_on_policy_update(&self) -> bool {
        self.rules.iter().any(|r| {
            r.raw.pointer("/mutate/mutateExistingOnPolicyUpdate") == Some(&Value::Bool(true))
        }) || self.raw.pointer("/spec/mutateExistingOnPolicyUpdate") == Some(&Value::Bool(true))
    }

    /// Applies the policy's mutate-existing rules (`mutate.targets`) for the trigger
    /// `input`: the targets are read from `env`'s cluster data and patched copies returned;
    /// nothing is written and the trigger is not changed. Without cluster data holding
    /// resources, a rule that matches reports `error` with `policy.unsupported`.
    pub fn mutate_existing(
        &self,
        input: &ResourceInput,
        vars: &Variables,
        env: &Env,
        exceptions: &[Arc<PolicyException>],
    ) -> MutateExisting {
        let mut out = MutateExisting {
            response: PolicyResponse {
                policy: self.display_name(),
                kind: self.kind.clone(),
                rules: Vec::new(),
                generated: Vec::new(),
            },
            targets: Vec::new(),
        };
        let applies_ns = match &self.namespace {
            Some(ns) => input.namespace() == ns,
            None => true,
        };
        if !applies_ns {
            return out;
        }
        let apply_one = self.raw.pointer("/spec/applyRules").and_then(Value::as_str) == Some("One");
        for rule in self.rules.iter().filter(|r| has_targets(r)) {
            let before = out.response.rules.len();
            self.mutate_existing_rule(rule, input, vars, env, exceptions, &mut out);
            if apply_one
                && out.response.rules[before..]
                    .iter()
                    .any(|r| r.status == RuleStatus::Pass)
            {
                break;
            }
        }
        out
    }

    fn mutate_existing_rule(
        &self,
        rule: &Rule,
        input: &ResourceInput,
        vars: &Variables,
        env: &Env,
        exceptions: &[Arc<PolicyException>],
        out: &mut MutateExisting,
    ) {
        let ev = RuleEval {
            policy: self,
            rule,
            env,
            vars,
            resource: resource_ref(input),
        };
        let rules = &mut out.response.rules;
        match rule.match_block.try_matches(input) {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => return rules.push(ev.error(&e)),
        }
        if let Some(ex) = &rule.exclude {
            match ex.try_excludes(input) {
                Ok(false) => {}
                Ok(true) => return,
                Err(e) => return rules.push(ev.error(&e)),
            }
        }
        let mut ctx = base_context(input);
        vars.apply(&mut ctx, &rule.name);
        let base = ctx.clone();
        if let Err(r) = load_context(&ev, &rule.context, &mut ctx, vars, "context", &rule.raw) {
            return rules.push(*r);
        }
        if let Some(pre) = &rule.preconditions {
            match conditions::evaluate_block(pre, &ctx, env, "preconditions") {
                Ok(true) => {}
                Ok(false) => {
                    return rules.push(ev.result(RuleStatus::Skip, "preconditions not met"));
                }
                Err(e) => return rules.push(ev.error(&e)),
            }
        }
        let matched: Vec<&PolicyException> = exceptions
            .iter()
            .filter(|e| e.applies(&self.display_name(), &rule.name, input, &base, env))
            .map(|e| e.as_ref())
            .collect();
        if !matched.is_empty() {
            return rules.push(ev.result(
                RuleStatus::Skip,
                crate::kyverno::exceptions::skip_message(&matched),
            ));
        }
        let mutate = rule.raw.get("mutate").cloned().unwrap_or(Value::Null);
        let specs = mutate
            .get("targets")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut selected = Vec::new();
        for (index, spec) in specs.iter().enumerate() {
            match self.select_targets(&ev, spec, index, &ctx) {
                Ok(resources) => selected.push(Selected {
                    spec,
                    index,
                    resources,
                }),
                Err(r) => out.response.rules.push(*r),
            }
        }
        for sel in selected {
            for target in sel.resources {
                let (result, patched) =
                    self.mutate_target(&ev, &mutate, sel.spec, sel.index, &target, &ctx);
                out.response.rules.push(result.clone());
                out.targets.push(TargetMutation {
                    rule: rule.name.clone(),
                    target,
                    result,
                    patched,
                });
            }
        }
    }

    /// The resources one `targets[N]` entry selects.
    fn select_targets(
        &self,
        ev: &RuleEval<'_>,
        spec: &Value,
        index: usize,
        ctx: &Value,
    ) -> Result<Vec<Value>, Box<RuleResult>> {
        let at = format!("mutate.targets[{index}]");
        let err = |e: &Error| Box::new(ev.error(e));
        let mut selector_spec = serde_json::Map::new();
        for k in ["apiVersion", "kind", "namespace", "name", "selector"] {
            if let Some(v) = spec.get(k).filter(|v| !v.is_null()) {
                selector_spec.insert(k.into(), v.clone());
            }
        }
        let selector_spec = Value::Object(selector_spec);
        let resolved = crate::kyverno::engine::subst(&selector_spec, ctx, ev.env, &at)
            .map_err(|e| err(&e))?
            .into_owned();
        let text = |k: &str| -> Result<String, Box<RuleResult>> {
            match resolved.get(k) {
                None | Some(Value::Null) => Ok(String::new()),
                Some(Value::String(s)) => Ok(s.clone()),
                Some(other) => Err(err(&Error::InvalidPolicy {
                    policy: ev.policy.name.clone(),
                    path: format!("{at}.{k}"),
                    reason: format!("must be a string after substitution, not {other}"),
                })),
            }
        };
        let api_version = text("apiVersion")?;
        let kind = text("kind")?;
        let mut namespace = text("namespace")?;
        let name = text("name")?;
        if api_version.is_empty() || kind.is_empty() {
            return Err(err(&Error::InvalidPolicy {
                policy: ev.policy.name.clone(),
                path: at,
                reason: "apiVersion and kind can not be empty after substitution".into(),
            }));
        }
        if let Err(why) = check_kind(&kind) {
            return Err(Box::new(ev.unsupported(&format!("{at}.kind ({why})"))));
        }
        // A namespaced Policy reads its own namespace only.
        if let Some(ns) = &self.namespace {
            namespace = ns.clone();
        }
        let selector = match resolved.get("selector").filter(|s| !s.is_null()) {
            Some(s) => {
                Some(LabelSelector::from_value(s, &format!("{at}.selector")).map_err(|e| err(&e))?)
            }
            None => None,
        };
        let Some(cluster) = ev.env.cluster.as_ref() else {
            return Err(Box::new(ev.unsupported(&format!(
                "{at} without cluster data (supply the target resources through ClusterData)"
            ))));
        };
        let listed = match cluster.list_resources("", &kind, "") {
            Ok(l) => l,
            Err(LookupError::NotSupplied { what }) => {
                return Err(Box::new(
                    ev.unsupported(&format!("{at} (no {what} supplied)")),
                ));
            }
            Err(source) => {
                return Err(err(&Error::MutateTarget {
                    path: at,
                    what: format!("{api_version} {kind}"),
                    source,
                }));
            }
        };
        let of_kind = listed
            .into_iter()
            .filter(|r| str_at(r, "/kind") == kind)
            .filter(|r| api_version_matches(&api_version, str_at(r, "/apiVersion")));
        // A namespace and a name without wildcards: Kyverno GETs the resource (its selector
        // is not consulted) and a missing one is an error.
        if !namespace.is_empty()
            && !name.is_empty()
            && !contains_wildcard(&namespace)
            && !contains_wildcard(&name)
        {
            let found: Vec<Value> = of_kind
                .filter(|r| {
                    str_at(r, "/metadata/name") == name
                        && (str_at(r, "/metadata/namespace") == namespace
                            || str_at(r, "/metadata/namespace").is_empty())
                })
                .take(1)
                .collect();
            if found.is_empty() {
                return Err(err(&Error::MutateTarget {
                    path: at,
                    what: format!("{api_version} {kind} {namespace}/{name}"),
                    source: LookupError::NotFound {
                        what: format!("{kind} {namespace}/{name}"),
                    },
                }));
            }
            return Ok(found);
        }
        Ok(of_kind
            .filter(|r| {
                name_matches(
                    &namespace,
                    &name,
                    str_at(r, "/metadata/namespace"),
                    str_at(r, "/metadata/name"),
                )
            })
            .filter(|r| selector.as_ref().is_none_or(|s| s.matches(&labels_of(r))))
            .collect())
    }

    /// Applies the rule to one target: the entry's context and preconditions, then the patch.
    fn mutate_target(
        &self,
        rule_ev: &RuleEval<'_>,
        mutate: &Value,
        spec: &Value,
        index: usize,
        target: &Value,
        ctx: &Value,
    ) -> (RuleResult, Option<Value>) {
        let ev = RuleEval {
            policy: rule_ev.policy,
            rule: rule_ev.rule,
            env: rule_ev.env,
            vars: rule_ev.vars,
            resource: target_ref(target),
        };
        let mut ctx = ctx.clone();
        set_dotted(&mut ctx, "target", target.clone());
        let entries = spec
            .get("context")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if let Err(r) = load_context(
            &ev,
            &entries,
            &mut ctx,
            ev.vars,
            &format!("mutate.targets[{index}].context"),
            spec,
        ) {
            return (*r, None);
        }
        if let Some(pre) = spec.get("preconditions").filter(|p| !p.is_null()) {
            match conditions::evaluate_block(
                pre,
                &ctx,
                ev.env,
                &format!("mutate.targets[{index}].preconditions"),
            ) {
                Ok(true) => {}
                Ok(false) => {
                    return (ev.result(RuleStatus::Skip, "preconditions not met"), None);
                }
                Err(e) => return (ev.error(&e), None),
            }
        }
        apply(&ev, mutate, target, &mut ctx)
    }
}

fn target_ref(target: &Value) -> ResourceRef {
    ResourceRef {
        api_version: str_at(target, "/apiVersion").to_owned(),
        kind: str_at(target, "/kind").to_owned(),
        namespace: str_at(target, "/metadata/namespace").to_owned(),
        name: str_at(target, "/metadata/name").to_owned(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn name_patterns_follow_kyverno() {
        assert!(name_matches("", "", "a", "b"));
        assert!(name_matches("", "web-*", "x", "web-1"));
        assert!(!name_matches("", "web-*", "x", "db-1"));
        assert!(name_matches("prod-*", "", "prod-eu", "any"));
        assert!(!name_matches("prod-*", "", "dev", "any"));
        assert!(name_matches("prod-*", "a?", "prod-1", "ab"));
    }

    #[test]
    fn api_versions_follow_the_kind_selector() {
        assert!(api_version_matches("v1", "v1"));
        assert!(api_version_matches("v1", "apps/v1"));
        assert!(api_version_matches("apps/v1", "apps/v1"));
        assert!(!api_version_matches("apps/v1", "batch/v1"));
        assert!(!api_version_matches("v1", "v1beta1"));
    }
}
