//! MutatingPolicy "mutate existing" (`spec.evaluation.mutateExisting.enabled: true`): for a
//! trigger request the policy matches, the policy selects other resources ("targets") and
//! applies its mutations to each of them.
//!
//! Kyverno applies these mutations in its background controller, after the trigger's
//! admission. This module decides what that controller would write, and writes nothing: the
//! targets are read through the caller's [`ClusterData`] (or, for a
//! `targetMatchConstraints.expression`, through the `resource` library's
//! [`ContextData`](crate::lang::cel::ContextData) in the trigger's input), and the patched
//! copies come back in a [`MutateExisting`], the type ClusterPolicy mutate-existing rules
//! report with.
//!
//! 1. The trigger: `matchConstraints` (no match: no result), then `matchConditions` (false: no
//!    result; an error: `error`).
//! 2. The targets:
//!    - `targetMatchConstraints.expression`, evaluated with the trigger as `object` and the
//!      policy's `variables`: a map with `items` (each item is a target, as a
//!      `resource.list(...)` answers) or one object (a `resource.get(...)`);
//!    - otherwise the resources that `targetMatchConstraints` (or, without resource rules
//!      there, `matchConstraints`) select: every resource rule's group, version and resource
//!      is listed from the cluster data (in the policy's namespace for a
//!      NamespacedMutatingPolicy) and each listed object kept when the constraints match it,
//!      operations aside (a target is not an admission request).
//! 3. Each target, with the target as `object`, no `oldObject`, no `namespaceObject`, and the
//!    trigger's admission request as `request`: CEL PolicyExceptions (`skip`), then
//!    `targetMatchConditions` (false: `skip`), then the mutations, as for an admission
//!    request: `pass` with the patched copy, or `error`. The result's `resource` is the
//!    target.

use std::borrow::Cow;

use provenance_core::outcome::{RuleResult, RuleStatus};
use serde_json::Value;

use super::{MutatingPolicy, invalid};
use crate::Error;
use crate::admission::cluster::{ClusterData, LookupError};
use crate::cel_policies::validating_policy::MatchConstraints;
use crate::kyverno::engine::PolicyResponse;
use crate::kyverno::mutate::{MutateExisting, TargetMutation};
use crate::lang::cel::{
    GroupVersionResource, MatchConditions, NamedProgram, PolicyInput, Program, RequestView,
    VariableScope, compile_named, evaluate_match_conditions, str_field,
};

/// Most targets one trigger may select (a bound on the work one request causes).
const MAX_TARGETS: usize = 10_000;

/// How a mutate-existing MutatingPolicy selects its targets (`spec.targetMatchConstraints`,
/// `spec.targetMatchConditions`).
#[derive(Debug)]
pub(super) struct TargetSelection {
    /// The resource rules and selectors targets are listed and matched with:
    /// `targetMatchConstraints` when it has resource rules, else `matchConstraints`, with
    /// every operation allowed. `None` when an expression selects the targets.
    constraints: Option<MatchConstraints>,
    /// `targetMatchConstraints.expression`.
    expression: Option<Program>,
    /// `targetMatchConditions`, evaluated on each target.
    conditions: Vec<NamedProgram>,
}

impl TargetSelection {
    /// Reads `targetMatchConstraints` and `targetMatchConditions` of a MutatingPolicy spec:
    /// `None` when `spec.evaluation.mutateExisting.enabled` is not true (the fields are then
    /// only checked, as Kyverno compiles them without using them).
    pub(super) fn from_spec(
        spec: &Value,
        match_constraints: Option<&MatchConstraints>,
        policy: &str,
    ) -> Result<Option<Self>, Error> {
        let with_policy = super::with_policy(policy);
        let tmc = spec.get("targetMatchConstraints").filter(|v| !v.is_null());
        let path = "spec.targetMatchConstraints";
        if let Some(t) = tmc
            && !t.is_object()
        {
            return Err(invalid(policy, path, "expected an object"));
        }
        let expression = match tmc.map(|t| (t.get("expression"), t)) {
            None | Some((None | Some(Value::Null), _)) => None,
            Some((Some(Value::String(e)), _)) if e.trim().is_empty() => None,
            Some((Some(Value::String(e)), _)) => {
                Some(Program::compile(e).map_err(|e| match e {
                    Error::Cel { expression, reason } => Error::Cel {
                        expression,
                        reason: format!("{path}.expression: {reason}"),
                    },
                    other => other,
                })?)
            }
            Some((Some(_), _)) => {
                return Err(invalid(
                    policy,
                    format!("{path}.expression"),
                    "expected a string",
                ));
            }
        };
        let target_constraints = tmc
            .map(|t| MatchConstraints::from_value(t, path))
            .transpose()
            .map_err(&with_policy)?;
        let conditions =
            compile_named(spec, "targetMatchConditions", "spec").map_err(&with_policy)?;
        let enabled = spec
            .pointer("/evaluation/mutateExisting/enabled")
            .and_then(Value::as_bool)
            == Some(true);
        if !enabled {
            return Ok(None);
        }
        let constraints = if expression.is_some() {
            None
        } else {
            let (chosen, at) = match target_constraints {
                Some(t) if !t.resource_rules.is_empty() => (t, path),
                _ => (
                    match_constraints.cloned().unwrap_or_default(),
                    "spec.matchConstraints",
                ),
            };
            Some(listable(chosen, at, policy)?)
        };
        Ok(Some(TargetSelection {
            constraints,
            expression,
            conditions,
        }))
    }

    /// The compiled expressions (for the check that every variable they read is declared).
    pub(super) fn programs(&self) -> impl Iterator<Item = &Program> {
        self.expression
            .iter()
            .chain(self.conditions.iter().map(|c| &c.program))
    }
}

/// Checks that the resource rules name what can be listed (no wildcard group, version or
/// resource, no subresource: the cluster data has no discovery) and allows every operation.
fn listable(mut mc: MatchConstraints, at: &str, policy: &str) -> Result<MatchConstraints, Error> {
    let unsupported = |why: &str| Error::Unsupported {
        field: format!("MutatingPolicy {policy}: {at}.resourceRules ({why})"),
    };
    if mc.resource_rules.is_empty() {
        return Err(invalid(
            policy,
            format!("{at}.resourceRules"),
            "mutateExisting needs resource rules (or targetMatchConstraints.expression) to select targets",
        ));
    }
    for r in &mut mc.resource_rules {
        let names = r
            .api_groups
            .iter()
            .chain(&r.api_versions)
            .chain(&r.resources);
        for n in names {
            if n.contains('*') {
                return Err(unsupported(&format!(
                    "wildcard {n:?}: targets are listed by group, version and resource"
                )));
            }
            if n.contains('/') {
                return Err(unsupported(&format!("subresource target {n:?}")));
            }
        }
        if r.api_versions.is_empty() || r.resources.is_empty() {
            return Err(invalid(
                policy,
                format!("{at}.resourceRules"),
                "every resource rule needs apiVersions and resources",
            ));
        }
        // A target is an existing resource, not an admission request: its operation is not
        // matched.
        r.operations = vec!["*".to_owned()];
    }
    Ok(mc)
}

impl MutatingPolicy {
    /// Whether `spec.evaluation.mutateExisting.enabled` is true: the policy mutates
    /// existing resources selected for each trigger ([`MutatingPolicy::mutate_existing`]).
    /// Its mutations still apply to the trigger itself at admission, as in Kyverno.
    pub fn mutates_existing(&self) -> bool {
        self.existing.is_some()
    }

    /// Applies the policy's mutations to the existing resources it selects for the trigger
    /// request `trigger`: targets listed from `cluster` (or selected by
    /// `targetMatchConstraints.expression`, whose `resource.*` calls read `trigger.context`),
    /// patched copies returned, nothing written and the trigger not changed. The response has
    /// one result per target, or one `error` when the targets cannot be selected; no result
    /// when the trigger does not match or nothing is selected. Without cluster data holding
    /// resources, a trigger that matches gives `error` with `policy.unsupported`.
    pub fn mutate_existing(
        &self,
        trigger: &PolicyInput<'_>,
        cluster: Option<&dyn ClusterData>,
    ) -> MutateExisting {
        let mut out = MutateExisting {
            response: PolicyResponse::new(self.name.clone(), self.kind.clone(), Vec::new()),
            targets: Vec::new(),
        };
        let Some(selection) = &self.existing else {
            return out;
        };
        if trigger.object.is_none() {
            return out;
        }
        if let Some(ns) = &self.scope_namespace
            && trigger.namespace() != *ns
        {
            return out;
        }
        match self
            .match_constraints
            .as_ref()
            .map(|mc| mc.try_matches(trigger))
        {
            Some(Ok(true)) => {}
            Some(Err(e)) => {
                out.response
                    .rules
                    .push(self.error_result(trigger, &e, "spec.matchConstraints"));
                return out;
            }
            _ => return out,
        }
        {
            let view = RequestView::new(trigger);
            let scope = VariableScope::new(&view, &self.variables);
            match evaluate_match_conditions(&self.match_conditions, &scope) {
                MatchConditions::Hold => {}
                MatchConditions::False => return out,
                MatchConditions::Errors { first, .. } => {
                    out.response.rules.push(self.error_result(
                        trigger,
                        &first,
                        "spec.matchConditions",
                    ));
                    return out;
                }
            }
        }
        let targets = match self.select_targets(selection, trigger, cluster) {
            Ok(t) => t,
            Err(r) => {
                out.response.rules.push(*r);
                return out;
            }
        };
        for target in targets {
            let (result, patched) = self.mutate_target(selection, trigger, &target);
            out.response.rules.push(result.clone());
            out.targets.push(TargetMutation {
                rule: String::new(),
                target,
                result,
                patched,
            });
        }
        out
    }

    fn select_targets(
        &self,
        selection: &TargetSelection,
        trigger: &PolicyInput<'_>,
        cluster: Option<&dyn ClusterData>,
    ) -> Result<Vec<Value>, Box<RuleResult>> {
        if let Some(expr) = &selection.expression {
            let at = "spec.targetMatchConstraints.expression";
            let view = RequestView::new(trigger);
            let scope = VariableScope::new(&view, &self.variables);
            let out = expr
                .evaluate_json(&scope)
                .map_err(|e| Box::new(self.error_result(trigger, &e, at)))?;
            return targets_of(out).map_err(|reason| {
                let e = invalid(&self.name, at, reason);
                Box::new(self.error_result(trigger, &e, at))
            });
        }
        let Some(constraints) = &selection.constraints else {
            return Ok(Vec::new());
        };
        let Some(cluster) = cluster else {
            let e = Error::Unsupported {
                field: format!(
                    "{} {}: mutateExisting without cluster data (supply the target resources through ClusterData)",
                    self.kind, self.name
                ),
            };
            return Err(Box::new(self.error_result(trigger, &e, "")));
        };
        let at = "spec.targetMatchConstraints";
        let mut targets: Vec<Value> = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for rule in &constraints.resource_rules {
            for group in &rule.api_groups {
                for version in &rule.api_versions {
                    for resource in &rule.resources {
                        let gvr = GroupVersionResource {
                            group: group.clone(),
                            version: version.clone(),
                            resource: resource.clone(),
                        };
                        for item in list(cluster, &gvr, self.scope_namespace.as_deref()).map_err(
                            |source| {
                                let e = Error::MutateTarget {
                                    path: at.to_owned(),
                                    what: format!("{group}/{version} {resource}"),
                                    source,
                                };
                                Box::new(self.error_result(trigger, &e, at))
                            },
                        )? {
                            let candidate = target_input(
                                &item,
                                trigger,
                                gvr.clone(),
                                constraints.namespace_selector.is_some().then_some(cluster),
                            );
                            match constraints.try_matches(&candidate) {
                                Ok(true) => {}
                                Ok(false) => continue,
                                Err(e) => return Err(Box::new(self.error_result(trigger, &e, at))),
                            }
                            let key = candidate.resource_ref();
                            if seen.insert((key.api_version, key.kind, key.namespace, key.name)) {
                                targets.push(item);
                            }
                            if targets.len() > MAX_TARGETS {
                                let e = invalid(
                                    &self.name,
                                    at,
                                    format!("more than {MAX_TARGETS} targets selected"),
                                );
                                return Err(Box::new(self.error_result(trigger, &e, at)));
                            }
                        }
                    }
                }
            }
        }
        Ok(targets)
    }

    /// One target: exceptions, `targetMatchConditions`, then the mutations.
    fn mutate_target(
        &self,
        selection: &TargetSelection,
        trigger: &PolicyInput<'_>,
        target: &Value,
    ) -> (RuleResult, Option<Value>) {
        let input = PolicyInput {
            object: Some(Cow::Borrowed(target)),
            old_object: None,
            operation: trigger.operation,
            user_info: trigger.user_info.clone(),
            dry_run: trigger.dry_run,
            context: trigger.context.clone(),
            ..Default::default()
        };
        if let Some(r) = self.exception_result(&input, trigger) {
            return (r, None);
        }
        {
            let view = RequestView::with_request(&input, trigger);
            let scope = VariableScope::new(&view, &self.variables);
            match evaluate_match_conditions(&selection.conditions, &scope) {
                MatchConditions::Hold => {}
                MatchConditions::False => {
                    return (
                        self.result(&input, "", RuleStatus::Skip, "skip".to_owned()),
                        None,
                    );
                }
                MatchConditions::Errors { first, .. } => {
                    return (
                        self.error_result(&input, &first, "spec.targetMatchConditions"),
                        None,
                    );
                }
            }
        }
        let mut outcome = self.apply_mutations(&input, trigger);
        let result = outcome
            .results
            .pop()
            .unwrap_or_else(|| self.result(&input, "", RuleStatus::Skip, "skip".to_owned()));
        let patched = match result.status {
            RuleStatus::Pass => outcome.patched,
            _ => None,
        };
        (result, patched)
    }
}

/// The targets a `targetMatchConstraints.expression` gave: a map with `items` (a list of
/// objects), or one object.
fn targets_of(v: Value) -> Result<Vec<Value>, String> {
    let Value::Object(mut m) = v else {
        return Err(format!("the expression must give a map, got {v}"));
    };
    let Some(items) = m.remove("items") else {
        return Ok(vec![Value::Object(m)]);
    };
    let Value::Array(items) = items else {
        return Err("items must be a list of objects".to_owned());
    };
    if items.len() > MAX_TARGETS {
        return Err(format!("more than {MAX_TARGETS} targets selected"));
    }
    if items.iter().any(|i| !i.is_object()) {
        return Err("items must be a list of objects".to_owned());
    }
    Ok(items)
}

/// Lists one group, version and resource from the cluster data (in `namespace` when set),
/// as the API server lists it. A resource type the cluster data has nothing of lists empty.
fn list(
    cluster: &dyn ClusterData,
    gvr: &GroupVersionResource,
    namespace: Option<&str>,
) -> Result<Vec<Value>, LookupError> {
    let mut path = if gvr.group.is_empty() {
        format!("/api/{}", gvr.version)
    } else {
        format!("/apis/{}/{}", gvr.group, gvr.version)
    };
    if let Some(ns) = namespace {
        path.push_str(&format!("/namespaces/{ns}"));
    }
    path.push('/');
    path.push_str(&gvr.resource);
    match cluster.api_call("GET", &path, None) {
        Ok(list) => Ok(list
            .get("items")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter(|i| i.is_object()).cloned().collect())
            .unwrap_or_default()),
        Err(LookupError::NotFound { .. }) => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// The input a listed resource is matched with: the resource as `object`, requested as
/// `gvr`, with its namespace's labels when `cluster` (given when a `namespaceSelector` needs
/// them) has the namespace.
fn target_input<'a>(
    item: &'a Value,
    trigger: &PolicyInput<'_>,
    gvr: GroupVersionResource,
    cluster: Option<&dyn ClusterData>,
) -> PolicyInput<'a> {
    let namespace = item
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let namespace_object = match cluster {
        Some(c) if !namespace.is_empty() => c
            .api_call("GET", &format!("/api/v1/namespaces/{namespace}"), None)
            .ok()
            .filter(|n| str_field(n, "kind") == Some("Namespace")),
        _ => None,
    };
    PolicyInput {
        object: Some(Cow::Borrowed(item)),
        operation: trigger.operation,
        namespace_labels_unknown: namespace_object.is_none() && !namespace.is_empty(),
        namespace_object,
        resource: Some(gvr),
        ..Default::default()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests;
