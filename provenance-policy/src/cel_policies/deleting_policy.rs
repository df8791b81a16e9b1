//! Kyverno's CEL `DeletingPolicy` (`policies.kyverno.io` v1alpha1, v1beta1, v1; also
//! `NamespacedDeletingPolicy`) as a pure decision: for a given resource, whether Kyverno's
//! cleanup controller would delete it when the policy's `schedule` fires. Nothing is ever
//! deleted, and no clock is read: `now` is an argument (CEL `time.now()`).
//!
//! [`DeletingPolicy::decide`] follows Kyverno's DeletingPolicy engine:
//!
//! 1. A resource with `apiVersion` and `kind` must be selected by `matchConstraints` (their
//!    `operations` are ignored, as Kyverno ignores them; no `matchConstraints`: nothing is
//!    selected); a NamespacedDeletingPolicy selects resources of its own namespace only.
//!    A document without `apiVersion` or `kind` (a JSON payload) is not matched, only
//!    evaluated. Not selected: [`Deletion::NotSelected`].
//! 2. CEL PolicyExceptions whose `policyRefs` name the policy (kind `DeletingPolicy`): one
//!    that holds keeps the resource ([`Deletion::Exempt`]).
//! 3. `conditions` in order, with lazy `variables`: the first false keeps the resource
//!    ([`Deletion::Keep`]); an error is [`Deletion::Error`] (fail closed: nothing is
//!    deleted on an error); all true: [`Deletion::Delete`].
//!
//! The expressions see `object`, `namespaceObject` (for a Namespace, the Namespace itself),
//! `variables`, Kyverno's `resource`, `globalContext`, `http` and `image` libraries (answered
//! by the input's [`crate::lang::cel::ContextData`]) and `time.now()`.
//!
//! ```
//! use provenance_core::UnixTime;
//! use provenance_policy::lang::cel::PolicyInput;
//! use provenance_policy::cel_policies::deleting_policy::{DeletingPolicy, Deletion};
//! use serde_json::json;
//!
//! let policy = DeletingPolicy::from_value(&json!({
//!     "apiVersion": "policies.kyverno.io/v1", "kind": "DeletingPolicy",
//!     "metadata": {"name": "expire-scratch-pods"},
//!     "spec": {
//!         "schedule": "*/5 * * * *",
//!         "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
//!             "resources": ["pods"]}]},
//!         "conditions": [{"name": "expired",
//!             "expression": "timestamp(object.metadata.annotations['expires']) < time.now()"}]
//!     }
//! }))?;
//! let pod = PolicyInput::create(json!({
//!     "apiVersion": "v1", "kind": "Pod",
//!     "metadata": {"name": "scratch", "namespace": "ml",
//!         "annotations": {"expires": "2024-01-01T00:00:00Z"}}
//! }));
//! let decision = policy.decide(&pod, UnixTime(1_735_689_600)); // 2025-01-01
//! assert_eq!(decision.outcome, Deletion::Delete);
//! assert!(policy.decide(&pod, UnixTime(1_700_000_000)).outcome != Deletion::Delete);
//! # Ok::<(), provenance_policy::Error>(())
//! ```

use std::sync::Arc;

use provenance_core::UnixTime;
use provenance_core::outcome::{Reason, ResourceRef, RuleResult, RuleStatus};
use serde_json::Value;

use crate::Error;
use crate::cel_policies::generating_policy::{
    ExceptionOutcome, check_spec_keys, evaluate_exceptions, identity,
};
use crate::cel_policies::validating_policy::{CelPolicyException, MatchConstraints};
use crate::lang::cel::{
    KyvernoFn, NamedProgram, PolicyFunctions, PolicyInput, RequestView, Variable, VariableScope,
    check_variables, compile_named, compile_variables, str_field,
};
use crate::schema::Node::{self, Any, Enum, Obj, Str};
use crate::schema::{MATCH_RESOURCES, METADATA, NAME_EXPRESSION};

/// The keys of a DeletingPolicy's `spec`.
const SPEC_FIELDS: &[&str] = &[
    "matchConstraints",
    "conditions",
    "variables",
    "schedule",
    "deletionPropagationPolicy",
];

/// `spec.deletionPropagationPolicy`: how the deletion treats the resource's dependents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeletionPropagation {
    /// Dependents are deleted first.
    Foreground,
    /// The resource is deleted now, dependents by the garbage collector.
    Background,
    /// Dependents are left in place.
    Orphan,
}

/// What a DeletingPolicy decides for one resource.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Deletion {
    /// `matchConstraints` do not select the resource: the policy says nothing about it.
    NotSelected,
    /// Every condition holds: Kyverno would delete the resource when the schedule fires.
    Delete,
    /// A condition is false: the resource stays.
    Keep {
        /// The `name` of the first false condition (its index when it has no name).
        condition: String,
    },
    /// PolicyExceptions apply: the resource stays.
    Exempt {
        /// The exceptions (`namespace/name`).
        exceptions: Vec<String>,
    },
    /// A condition, variable or exception could not be evaluated: the resource stays (fail
    /// closed), and the error says why.
    Error(Error),
}

/// The decision of one DeletingPolicy for one resource.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeletionDecision {
    /// The policy (`namespace/name` for a NamespacedDeletingPolicy).
    pub policy: String,
    /// The resource decided on.
    pub resource: ResourceRef,
    /// The decision.
    pub outcome: Deletion,
    /// `spec.deletionPropagationPolicy`, for the deleter (`None`: the API server's default).
    pub propagation: Option<DeletionPropagation>,
}

impl DeletionDecision {
    /// Whether the resource would be deleted.
    pub fn would_delete(&self) -> bool {
        self.outcome == Deletion::Delete
    }

    /// The result `kyverno test` reports for this decision: `pass` (`resource matched`) when
    /// the resource would be deleted, `fail` (`resource did not match`) when it stays,
    /// `error` when it could not be decided; `None` when the policy does not select it. The
    /// rule name is the policy name.
    pub fn to_rule_result(&self) -> Option<RuleResult> {
        let r = |status: RuleStatus, message: String| {
            RuleResult::new(
                self.policy.clone(),
                self.policy.clone(),
                self.resource.clone(),
                status,
                message,
            )
        };
        Some(match &self.outcome {
            Deletion::NotSelected => return None,
            Deletion::Delete => r(RuleStatus::Pass, "resource matched".to_owned()),
            Deletion::Keep { condition } => {
                r(RuleStatus::Fail, "resource did not match".to_owned()).with_reason(Reason::new(
                    "policy.deleting.condition_false",
                    format!("condition {condition} is false"),
                ))
            }
            Deletion::Exempt { exceptions } => {
                r(RuleStatus::Fail, "resource did not match".to_owned()).with_reason(Reason::new(
                    "policy.deleting.exception",
                    format!("policy exception: {}", exceptions.join(", ")),
                ))
            }
            Deletion::Error(e) => r(RuleStatus::Error, e.to_string())
                .with_reason(Reason::new(e.code(), e.to_string())),
        })
    }
}

/// The field inventory of a DeletingPolicy document, as Kyverno's CRD defines it.
pub(crate) const INVENTORY: Node = Obj(&[
    ("apiVersion", Any),
    ("kind", Any),
    ("metadata", METADATA),
    (
        "spec",
        Obj(&[
            ("matchConstraints", MATCH_RESOURCES),
            ("conditions", NAME_EXPRESSION),
            ("variables", NAME_EXPRESSION),
            ("schedule", Str),
            (
                "deletionPropagationPolicy",
                Enum(&["Foreground", "Background", "Orphan"]),
            ),
        ]),
    ),
    ("status", Any),
]);

/// A compiled DeletingPolicy.
#[derive(Debug)]
pub struct DeletingPolicy {
    name: String,
    kind: String,
    api_version: String,
    scope_namespace: Option<String>,
    match_constraints: Option<MatchConstraints>,
    conditions: Vec<NamedProgram>,
    variables: Vec<Variable>,
    schedule: String,
    propagation: Option<DeletionPropagation>,
    exceptions: Vec<Arc<CelPolicyException>>,
}

impl DeletingPolicy {
    /// Loads and compiles a DeletingPolicy (or NamespacedDeletingPolicy) document.
    ///
    /// Errors: [`Error::InvalidPolicy`] naming the field (`spec.schedule` missing or not a
    /// five-field cron expression, an unknown `deletionPropagationPolicy`, a condition without
    /// `expression`), [`Error::Cel`] for an expression that does not compile,
    /// [`Error::Unsupported`] for unknown `spec` keys.
    pub fn from_value(v: &Value) -> Result<Self, Error> {
        let id = identity(v, "DeletingPolicy")?;
        let policy = id.full_name.clone();
        let invalid = |path: &str, reason: &str| Error::InvalidPolicy {
            policy: policy.clone(),
            path: path.to_owned(),
            reason: reason.to_owned(),
        };
        let spec = v
            .get("spec")
            .filter(|s| s.is_object())
            .ok_or_else(|| invalid("spec", "expected an object"))?;
        check_spec_keys(spec, SPEC_FIELDS, "DeletingPolicy", &policy)?;
        let with_policy = |e: Error| match e {
            Error::InvalidPolicy { path, reason, .. } => Error::InvalidPolicy {
                policy: policy.clone(),
                path,
                reason,
            },
            other => other,
        };
        let schedule = str_field(spec, "schedule").unwrap_or_default().trim();
        if schedule.is_empty() {
            return Err(invalid("spec.schedule", "required: a cron schedule"));
        }
        if !valid_schedule(schedule) {
            return Err(invalid(
                "spec.schedule",
                "expected a cron schedule of five fields (minute hour day-of-month month day-of-week) or a @-descriptor",
            ));
        }
        let propagation = match spec.get("deletionPropagationPolicy") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(match s.as_str() {
                "Foreground" => DeletionPropagation::Foreground,
                "Background" => DeletionPropagation::Background,
                "Orphan" => DeletionPropagation::Orphan,
                _ => {
                    return Err(invalid(
                        "spec.deletionPropagationPolicy",
                        "expected Foreground, Background or Orphan",
                    ));
                }
            }),
            Some(_) => {
                return Err(invalid(
                    "spec.deletionPropagationPolicy",
                    "expected Foreground, Background or Orphan",
                ));
            }
        };
        let mut match_constraints = spec
            .get("matchConstraints")
            .filter(|m| !m.is_null())
            .map(|m| MatchConstraints::from_value(m, "spec.matchConstraints"))
            .transpose()
            .map_err(with_policy)?;
        // Kyverno matches every operation: a deletion is not an admission request.
        if let Some(mc) = &mut match_constraints {
            for r in mc
                .resource_rules
                .iter_mut()
                .chain(mc.exclude_resource_rules.iter_mut())
            {
                r.operations = vec!["*".to_owned()];
            }
        }
        let conditions = compile_named(spec, "conditions", "spec").map_err(with_policy)?;
        let variables = compile_variables(spec, "spec").map_err(with_policy)?;
        check_variables(&variables, conditions.iter().map(|c| &c.program))?;
        Ok(DeletingPolicy {
            name: id.full_name,
            kind: id.kind,
            api_version: id.api_version,
            scope_namespace: (!id.namespace.is_empty()).then_some(id.namespace),
            match_constraints,
            conditions,
            variables,
            schedule: schedule.to_owned(),
            propagation,
            exceptions: Vec::new(),
        })
    }

    /// Attaches the exceptions among `exceptions` whose `policyRefs` name this policy.
    pub fn add_exceptions(&mut self, exceptions: &[Arc<CelPolicyException>]) {
        crate::cel_policies::validating_policy::attach_exceptions(
            &mut self.exceptions,
            &self.name,
            &self.kind,
            exceptions,
        );
    }

    /// The policy name (`namespace/name` for a NamespacedDeletingPolicy).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `DeletingPolicy` or `NamespacedDeletingPolicy`.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The `apiVersion` the policy was written in.
    pub fn api_version(&self) -> &str {
        &self.api_version
    }

    /// `spec.schedule` (cron): when the cleanup controller runs the policy. The decision is
    /// the same whenever it runs for the same resource, cluster data and `now`.
    pub fn schedule(&self) -> &str {
        &self.schedule
    }

    /// `spec.deletionPropagationPolicy`.
    pub fn propagation(&self) -> Option<DeletionPropagation> {
        self.propagation
    }

    /// Decides for the resource in `input` (its `object`; its `context` answers the
    /// `resource`, `globalContext`, `http` and `image` libraries), at time `now`.
    pub fn decide(&self, input: &PolicyInput, now: UnixTime) -> DeletionDecision {
        let mut decision = DeletionDecision {
            policy: self.name.clone(),
            resource: input.resource_ref(),
            outcome: Deletion::NotSelected,
            propagation: self.propagation,
        };
        let object = input.object.as_ref();
        let typed = object.is_some_and(|o| {
            str_field(o, "apiVersion").is_some_and(|s| !s.is_empty())
                && str_field(o, "kind").is_some_and(|s| !s.is_empty())
        });
        if typed {
            if let Some(ns) = &self.scope_namespace
                && input.namespace() != *ns
            {
                return decision;
            }
            match self
                .match_constraints
                .as_ref()
                .map(|mc| mc.try_matches(input))
            {
                Some(Ok(true)) => {}
                Some(Err(e)) => {
                    decision.outcome = Deletion::Error(e);
                    return decision;
                }
                _ => return decision,
            }
        }
        // For a Namespace, `namespaceObject` is the Namespace itself, as in Kyverno.
        let own_namespace;
        let input = if input.namespace_object.is_none()
            && object.is_some_and(|o| {
                str_field(o, "kind") == Some("Namespace")
                    && str_field(o, "apiVersion") == Some("v1")
            }) {
            let mut copy = input.clone();
            copy.namespace_object = copy.object.as_deref().cloned();
            own_namespace = copy;
            &own_namespace
        } else {
            input
        };
        let view = RequestView::new(input);
        let clock = Clock(now);
        let scope = VariableScope::new(&view, &self.variables).with_functions(&clock);
        match evaluate_exceptions(&self.exceptions, &scope) {
            ExceptionOutcome::None => {}
            ExceptionOutcome::Exempt { keys, .. } => {
                decision.outcome = Deletion::Exempt { exceptions: keys };
                return decision;
            }
            ExceptionOutcome::Error(e) => {
                decision.outcome = Deletion::Error(e);
                return decision;
            }
        }
        for (i, c) in self.conditions.iter().enumerate() {
            match c.program.evaluate_bool(&scope) {
                Ok(true) => {}
                Ok(false) => {
                    decision.outcome = Deletion::Keep {
                        condition: if c.name.is_empty() {
                            format!("spec.conditions[{i}]")
                        } else {
                            c.name.clone()
                        },
                    };
                    return decision;
                }
                Err(e) => {
                    decision.outcome = Deletion::Error(e);
                    return decision;
                }
            }
        }
        decision.outcome = Deletion::Delete;
        decision
    }
}

/// Answers `time.now()` with the caller's `now`.
struct Clock(UnixTime);

impl PolicyFunctions for Clock {
    fn call(
        &self,
        f: KyvernoFn,
        _args: &[crate::lang::cel::Value],
    ) -> Result<crate::lang::cel::Value, String> {
        match f {
            KyvernoFn::TimeNow => chrono::DateTime::from_timestamp(self.0.0, 0)
                .map(|t| crate::lang::cel::Value::Timestamp(t.fixed_offset()))
                .ok_or_else(|| format!("time.now: {} is out of range", self.0.0)),
            _ => Err(format!("{f:?} is not available in a DeletingPolicy")),
        }
    }
}

/// Whether `s` is a cron schedule as Kyverno's cleanup controller parses it: five
/// space-separated fields of digits, `*`, `?`, `,`, `-`, `/` and month or day names, or a
/// `@yearly`-style descriptor (`@every <duration>` included).
fn valid_schedule(s: &str) -> bool {
    if let Some(d) = s.strip_prefix('@') {
        return matches!(
            d,
            "yearly" | "annually" | "monthly" | "weekly" | "daily" | "midnight" | "hourly"
        ) || d
            .strip_prefix("every ")
            .is_some_and(|x| !x.trim().is_empty());
    }
    let fields: Vec<&str> = s.split_whitespace().collect();
    fields.len() == 5
        && fields.iter().all(|f| {
            f.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '*' | '?' | ',' | '-' | '/'))
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy(spec: Value) -> Result<DeletingPolicy, Error> {
        DeletingPolicy::from_value(&json!({
            "apiVersion": "policies.kyverno.io/v1", "kind": "DeletingPolicy",
            "metadata": {"name": "cleanup"},
            "spec": spec,
        }))
    }

    fn pods(conditions: Value) -> Value {
        json!({
            "schedule": "0 * * * *",
            "deletionPropagationPolicy": "Foreground",
            "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                "resources": ["pods"]}]},
            "variables": [{"name": "ttl", "expression": "object.metadata.?labels.ttl.orValue('')"}],
            "conditions": conditions,
        })
    }

    fn pod(name: &str, created: &str) -> PolicyInput<'static> {
        PolicyInput::create(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "ml", "creationTimestamp": created,
                "labels": {"ttl": "1h"}}}))
    }

    #[test]
    fn condition_true_deletes_false_keeps() {
        let p = policy(pods(json!([
            {"name": "has-ttl", "expression": "variables.ttl == '1h'"},
            {"name": "old", "expression": "timestamp(object.metadata.creationTimestamp) + duration(variables.ttl) < time.now()"}
        ])))
        .expect("loads");
        let input = pod("p", "2025-01-01T00:00:00Z");
        let later = UnixTime::parse_rfc3339("2025-01-01T02:00:00Z").expect("time");
        let sooner = UnixTime::parse_rfc3339("2025-01-01T00:30:00Z").expect("time");
        let d = p.decide(&input, later);
        assert_eq!(d.outcome, Deletion::Delete);
        assert!(d.would_delete());
        assert_eq!(d.propagation, Some(DeletionPropagation::Foreground));
        let r = d.to_rule_result().expect("a result");
        assert_eq!(
            (r.status, r.message.as_str()),
            (RuleStatus::Pass, "resource matched")
        );
        let d = p.decide(&input, sooner);
        assert_eq!(
            d.outcome,
            Deletion::Keep {
                condition: "old".into()
            }
        );
        let r = d.to_rule_result().expect("a result");
        assert_eq!(r.status, RuleStatus::Fail);
    }

    #[test]
    fn not_selected_and_errors() {
        let p = policy(pods(json!([
            {"name": "lookup", "expression": "resource.Get('v1', 'configmaps', 'ml', 'ttl').data.on == 'yes'"}
        ])))
        .expect("loads");
        let cm = PolicyInput::create(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": "ml"}}));
        let d = p.decide(&cm, UnixTime(0));
        assert_eq!(d.outcome, Deletion::NotSelected);
        assert!(d.to_rule_result().is_none());
        // Missing cluster data: an error, and nothing is deleted.
        let d = p.decide(&pod("p", "2025-01-01T00:00:00Z"), UnixTime(0));
        assert!(matches!(d.outcome, Deletion::Error(_)), "{:?}", d.outcome);
        assert!(!d.would_delete());
        let mut input = pod("p", "2025-01-01T00:00:00Z");
        input
            .context
            .add_resource(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "ttl", "namespace": "ml"}, "data": {"on": "yes"}}));
        assert_eq!(p.decide(&input, UnixTime(0)).outcome, Deletion::Delete);
    }

    #[test]
    fn strict_loading() {
        let err = |spec: Value| policy(spec).expect_err("refused").to_string();
        let mut no_schedule = pods(json!([]));
        no_schedule["schedule"] = Value::Null;
        assert!(err(no_schedule).contains("spec.schedule"));
        let mut bad_schedule = pods(json!([]));
        bad_schedule["schedule"] = json!("every hour");
        assert!(err(bad_schedule).contains("spec.schedule"));
        let mut bad_propagation = pods(json!([]));
        bad_propagation["deletionPropagationPolicy"] = json!("Later");
        assert!(err(bad_propagation).contains("deletionPropagationPolicy"));
        let mut extra = pods(json!([]));
        extra["ttl"] = json!("1h");
        assert!(err(extra).contains("spec.ttl"));
        assert!(err(pods(json!([{"name": "x"}]))).contains("spec.conditions[0]"));
        let text = "apiVersion: policies.kyverno.io/v1\nkind: DeletingPolicy\nmetadata: {name: d}\nspec:\n  schedule: '* * * * *'\n  conditon: []\n";
        let e = crate::admission::loader::load_policies(text, "d.yaml").expect_err("unknown field");
        assert!(e.to_string().contains("conditon"), "{e}");
    }
}
