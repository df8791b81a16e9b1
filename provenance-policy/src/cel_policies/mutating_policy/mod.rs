//! CEL mutation policies: Kubernetes' `MutatingAdmissionPolicy`
//! (`admissionregistration.k8s.io` v1, v1beta1, v1alpha1) with its bindings, and Kyverno's
//! `MutatingPolicy` / `NamespacedMutatingPolicy` (`policies.kyverno.io` v1, v1beta1,
//! v1alpha1).
//!
//! Both kinds evaluate the same way once a request matches:
//!
//! 1. `matchConstraints` (and, for a MutatingAdmissionPolicy with bindings, each binding's
//!    `matchResources`): no match, no result.
//! 2. CEL PolicyExceptions (MutatingPolicy only): an exception that applies gives `skip`
//!    (rule `exception`), as Kyverno reports it.
//! 3. `matchConditions`: one false gives `skip`; an evaluation error gives `error`.
//! 4. `mutations` in order, each seeing the object the previous one produced (`object`),
//!    with the policy's `variables` (evaluated lazily, per mutation): `ApplyConfiguration`
//!    expressions produce an `Object{...}` merged as server-side apply merges
//!    (`apply`), `JSONPatch` expressions a list of `JSONPatch{op, path, value}` applied
//!    as strict RFC 6902. Every expression runs under the CEL cost budget.
//! 5. All applied: `pass` and the mutated object. Any failure: `error` naming the policy, the
//!    mutation index and what failed, and the object is left as it was (a mutation is all or
//!    nothing). With `failurePolicy: Ignore`, an error leaves the object unchanged and is
//!    reported as `skip` for a MutatingAdmissionPolicy (Kubernetes ignores it); a
//!    MutatingPolicy reports `error` as Kyverno's engine does, and the admission decision
//!    does not block on it.
//!
//! Results carry Kyverno's rule names and messages: for a MutatingAdmissionPolicy the rule is
//! the policy name (`mutation is successfully applied`, `match conditions aren't met`); for a
//! MutatingPolicy the rule is empty (`success`, `skip`), `evaluation` for errors.

pub(crate) mod admission;
mod apply;
mod existing;

use std::borrow::Cow;
use std::sync::Arc;

use provenance_core::outcome::{Reason, RuleResult, RuleStatus};
use serde_json::Value;

use crate::Error;
use crate::cel_policies::validating_policy::{
    CelPolicyException, FailurePolicy, MatchConstraints, PolicyBinding,
};
use crate::lang::cel::{
    MatchConditions, NamedProgram, PolicyInput, Program, RequestView, Variable, VariableScope,
    check_variables, compile_named, compile_variables, evaluate_match_conditions, str_field,
};

/// Most mutations one policy may hold.
const MAX_MUTATIONS: usize = 256;

/// How a mutation's expression changes the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// `ApplyConfiguration`: an `Object{...}` merged as server-side apply.
    ApplyConfiguration,
    /// `JSONPatch`: a list of `JSONPatch{op, path, value}` operations.
    JsonPatch,
}

/// One compiled entry of `spec.mutations`.
#[derive(Debug)]
pub struct Mutation {
    /// The patch type.
    pub patch_type: PatchType,
    /// The expression.
    pub program: Program,
}

/// Which kind a [`MutatingPolicy`] was loaded from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// Kubernetes' `MutatingAdmissionPolicy`.
    Admission,
    /// Kyverno's `MutatingPolicy` (or `NamespacedMutatingPolicy`).
    Kyverno,
}

/// A compiled CEL mutation policy: a MutatingAdmissionPolicy (with the bindings
/// [`crate::admission::loader::link`] attached) or a Kyverno MutatingPolicy (with its CEL
/// PolicyExceptions).
#[derive(Debug)]
pub struct MutatingPolicy {
    name: String,
    kind: String,
    flavor: Flavor,
    match_constraints: Option<MatchConstraints>,
    match_conditions: Vec<NamedProgram>,
    variables: Vec<Variable>,
    mutations: Vec<Mutation>,
    failure_policy: FailurePolicy,
    /// Replace atomic lists instead of refusing apply configurations that set them
    /// (MutatingPolicy `spec.evaluation.useServerSideApply`).
    allow_atomic: bool,
    bindings: Vec<PolicyBinding>,
    exceptions: Vec<Arc<CelPolicyException>>,
    /// For a NamespacedMutatingPolicy: the only namespace it applies to.
    scope_namespace: Option<String>,
    /// `spec.evaluation.mutateExisting.enabled: true`: how the policy selects the existing
    /// resources it mutates for a trigger.
    existing: Option<existing::TargetSelection>,
}

/// The outcome of one policy on one request.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MutationOutcome {
    /// The results (empty when the policy does not apply to the request).
    pub results: Vec<RuleResult>,
    /// The object after the policy's mutations (`None`: not changed by this policy).
    pub patched: Option<Value>,
}

fn invalid(policy: &str, path: impl Into<String>, reason: impl Into<String>) -> Error {
    Error::InvalidPolicy {
        policy: policy.to_owned(),
        path: path.into(),
        reason: reason.into(),
    }
}

fn with_policy(name: &str) -> impl Fn(Error) -> Error + '_ {
    move |e| match e {
        Error::InvalidPolicy { path, reason, .. } => Error::InvalidPolicy {
            policy: name.to_owned(),
            path,
            reason,
        },
        other => other,
    }
}

impl MutatingPolicy {
    /// Loads and compiles a MutatingAdmissionPolicy or (Namespaced)MutatingPolicy document.
    /// Field names are checked by the loader's inventory; here every value is checked.
    pub fn from_value(v: &Value) -> Result<Self, Error> {
        let meta = v.get("metadata");
        let name = meta
            .and_then(|m| str_field(m, "name"))
            .unwrap_or_default()
            .to_owned();
        let namespace = meta
            .and_then(|m| str_field(m, "namespace"))
            .unwrap_or_default()
            .to_owned();
        let api_version = str_field(v, "apiVersion").unwrap_or_default();
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let kind = str_field(v, "kind").unwrap_or_default().to_owned();
        let flavor = match (group, kind.as_str()) {
            ("admissionregistration.k8s.io", "MutatingAdmissionPolicy") => Flavor::Admission,
            ("policies.kyverno.io", "MutatingPolicy" | "NamespacedMutatingPolicy") => {
                Flavor::Kyverno
            }
            _ => {
                return Err(invalid(
                    &name,
                    "kind",
                    "expected an admissionregistration.k8s.io MutatingAdmissionPolicy or a policies.kyverno.io MutatingPolicy",
                ));
            }
        };
        if !matches!(version, "v1" | "v1beta1" | "v1alpha1") {
            return Err(invalid(
                &name,
                "apiVersion",
                "expected v1, v1beta1 or v1alpha1",
            ));
        }
        if name.is_empty() {
            return Err(invalid(&name, "metadata.name", "required"));
        }
        let full_name = if kind == "NamespacedMutatingPolicy" {
            if namespace.is_empty() {
                return Err(invalid(
                    &name,
                    "metadata.namespace",
                    "required for a namespaced policy",
                ));
            }
            format!("{namespace}/{name}")
        } else {
            name.clone()
        };
        let spec = v
            .get("spec")
            .filter(|s| s.is_object())
            .ok_or_else(|| invalid(&full_name, "spec", "expected an object"))?;
        let wp = with_policy(&full_name);
        let unsupported = |field: &str| Error::Unsupported {
            field: format!("{kind} {full_name}: {field}"),
        };
        if flavor == Flavor::Kyverno {
            let eval = spec.get("evaluation");
            if let Some(mode) = eval.and_then(|e| str_field(e, "mode"))
                && mode != "Kubernetes"
            {
                return Err(unsupported(&format!("spec.evaluation.mode: {mode}")));
            }
            if spec
                .get("auditAnnotations")
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty())
            {
                return Err(unsupported("spec.auditAnnotations"));
            }
        }
        let failure_policy = match str_field(spec, "failurePolicy") {
            None | Some("Fail") => FailurePolicy::Fail,
            Some("Ignore") => FailurePolicy::Ignore,
            Some(other) => {
                return Err(invalid(
                    &full_name,
                    "spec.failurePolicy",
                    format!("unknown value {other:?} (Fail or Ignore)"),
                ));
            }
        };
        match str_field(spec, "reinvocationPolicy") {
            None | Some("Never") => {}
            // Kubernetes may call the policy again after later mutations; one pass is what
            // `kyverno test` evaluates. The policy's mutations must be idempotent either way.
            Some("IfNeeded") => {}
            Some(other) => {
                return Err(invalid(
                    &full_name,
                    "spec.reinvocationPolicy",
                    format!("unknown value {other:?} (Never or IfNeeded)"),
                ));
            }
        }
        let match_constraints = spec
            .get("matchConstraints")
            .filter(|m| !m.is_null())
            .map(|m| MatchConstraints::from_value(m, "spec.matchConstraints"))
            .transpose()
            .map_err(&wp)?;
        let match_conditions = compile_named(spec, "matchConditions", "spec").map_err(&wp)?;
        let variables = compile_variables(spec, "spec").map_err(&wp)?;
        let mutations = compile_mutations(spec).map_err(&wp)?;
        let existing = if flavor == Flavor::Kyverno {
            existing::TargetSelection::from_spec(spec, match_constraints.as_ref(), &full_name)?
        } else {
            None
        };
        if mutations.is_empty() {
            return Err(invalid(
                &full_name,
                "spec.mutations",
                "at least one mutation is required",
            ));
        }
        check_variables(
            &variables,
            match_conditions
                .iter()
                .map(|m| &m.program)
                .chain(mutations.iter().map(|m| &m.program))
                .chain(existing.iter().flat_map(|e| e.programs())),
        )?;
        let allow_atomic = flavor == Flavor::Kyverno
            && spec
                .pointer("/evaluation/useServerSideApply")
                .and_then(Value::as_bool)
                == Some(true);
        Ok(MutatingPolicy {
            scope_namespace: (kind == "NamespacedMutatingPolicy").then_some(namespace),
            name: full_name.clone(),
            kind,
            flavor,
            match_constraints,
            match_conditions,
            variables,
            mutations,
            failure_policy,
            allow_atomic,
            bindings: Vec::new(),
            exceptions: Vec::new(),
            existing,
        })
    }

    /// The policy name (`namespace/name` for a NamespacedMutatingPolicy).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The kind it was loaded from.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// MutatingAdmissionPolicy or Kyverno MutatingPolicy.
    pub fn flavor(&self) -> Flavor {
        self.flavor
    }

    /// `spec.failurePolicy` (default `Fail`).
    pub fn failure_policy(&self) -> FailurePolicy {
        self.failure_policy
    }

    /// `spec.matchConstraints`.
    pub fn match_constraints(&self) -> Option<&MatchConstraints> {
        self.match_constraints.as_ref()
    }

    /// The attached bindings (MutatingAdmissionPolicy).
    pub fn bindings(&self) -> &[PolicyBinding] {
        &self.bindings
    }

    /// Attaches the MutatingAdmissionPolicyBindings among `bindings` whose `policyName` is
    /// this policy.
    pub fn add_bindings(&mut self, bindings: &[PolicyBinding]) {
        if self.flavor != Flavor::Admission {
            return;
        }
        for b in bindings {
            if b.policy_name == self.name && !self.bindings.iter().any(|x| x.name == b.name) {
                self.bindings.push(b.clone());
            }
        }
    }

    /// Attaches the CEL PolicyExceptions whose `policyRefs` name this MutatingPolicy.
    pub fn add_exceptions(&mut self, exceptions: &[Arc<CelPolicyException>]) {
        if self.flavor != Flavor::Kyverno {
            return;
        }
        let plain = self.name.rsplit('/').next().unwrap_or_default().to_owned();
        for e in exceptions {
            if (e.refers_to(&plain, &self.kind) || e.refers_to(&self.name, &self.kind))
                && !self.exceptions.iter().any(|x| x.key() == e.key())
            {
                self.exceptions.push(e.clone());
            }
        }
    }

    fn result(
        &self,
        input: &PolicyInput,
        rule: &str,
        status: RuleStatus,
        message: String,
    ) -> RuleResult {
        RuleResult::new(
            self.name.clone(),
            rule,
            input.resource_ref(),
            status,
            message,
        )
    }

    fn error_result(&self, input: &PolicyInput, e: &Error, at: &str) -> RuleResult {
        let rule = match self.flavor {
            Flavor::Admission => self.name.clone(),
            Flavor::Kyverno => "evaluation".to_owned(),
        };
        let r = self.result(
            input,
            &rule,
            RuleStatus::Error,
            format!("failed to evaluate policy: {e}"),
        );
        let reason = Reason::new(e.code(), e.to_string());
        r.with_reason(if at.is_empty() { reason } else { reason.at(at) })
    }

    /// Evaluates the policy against one request. `params` are the candidates for bindings'
    /// `paramRef` (`kyverno test`'s `paramResources`; none at admission).
    pub fn evaluate(&self, input: &PolicyInput, params: &[Value]) -> MutationOutcome {
        let none = MutationOutcome {
            results: Vec::new(),
            patched: None,
        };
        if input.object.is_none() {
            // DELETE and CONNECT carry no object to mutate.
            return none;
        }
        if let Some(ns) = &self.scope_namespace
            && input.namespace() != *ns
        {
            return none;
        }
        if self.flavor == Flavor::Admission && !self.bindings.is_empty() {
            return self.evaluate_bindings(input, params);
        }
        match self
            .match_constraints
            .as_ref()
            .map(|mc| mc.try_matches(input))
        {
            Some(Ok(true)) => {}
            Some(Err(e)) => {
                return MutationOutcome {
                    results: vec![self.error_result(input, &e, "spec.matchConstraints")],
                    patched: None,
                };
            }
            // Without matchConstraints a policy matches nothing, as in Kyverno.
            _ => return none,
        }
        if self.flavor == Flavor::Kyverno
            && let Some(r) = self.exception_result(input, input)
        {
            return MutationOutcome {
                results: vec![r],
                patched: None,
            };
        }
        self.run(input)
    }

    /// Kubernetes' binding semantics: each binding whose `matchResources` match (and the
    /// policy's `matchConstraints`) applies the policy, with the parameters its `paramRef`
    /// selects; bindings apply in order, each seeing the previous one's output.
    fn evaluate_bindings(&self, input: &PolicyInput, params: &[Value]) -> MutationOutcome {
        let mut current = input.clone();
        let mut last: Option<MutationOutcome> = None;
        let mut results = Vec::new();
        let mut patched = false;
        for b in &self.bindings {
            let binding_matches = b
                .match_resources
                .as_ref()
                .is_none_or(|mr| mr.matches_selectors_and_rules(&current));
            let policy_matches = match self
                .match_constraints
                .as_ref()
                .map(|mc| mc.try_matches(&current))
            {
                Some(Ok(m)) => m,
                Some(Err(e)) => {
                    results.push(self.error_result(input, &e, "spec.matchConstraints"));
                    continue;
                }
                None => false,
            };
            if !binding_matches || !policy_matches {
                continue;
            }
            let mut with_params = current.clone();
            if b.param_ref.is_some() {
                with_params.params = b.select_params(params);
                if with_params.params.is_none() {
                    let e = Error::InvalidPolicy {
                        policy: self.name.clone(),
                        path: format!("binding {}: spec.paramRef", b.name),
                        reason: "no parameter resource matches the paramRef (none supplied)"
                            .to_owned(),
                    };
                    results.push(self.error_result(input, &e, ""));
                    continue;
                }
            }
            let outcome = self.run(&with_params);
            if let Some(p) = &outcome.patched {
                current.object = Some(Cow::Owned(p.clone()));
                patched = true;
            }
            last = Some(outcome);
        }
        // The last applied binding's result is reported, as `kyverno test` reports it; errors
        // of earlier bindings are kept so that none goes unseen.
        if let Some(mut o) = last {
            results.append(&mut o.results);
        }
        MutationOutcome {
            results,
            patched: if patched {
                current.object.map(Cow::into_owned)
            } else {
                None
            },
        }
    }

    /// The CEL PolicyExceptions that apply (`skip`), evaluated with `input` as `object` and
    /// `request` (the trigger of a mutate-existing target; else `input`) as `request`.
    fn exception_result<'a>(
        &self,
        input: &'a PolicyInput<'a>,
        request: &'a PolicyInput<'a>,
    ) -> Option<RuleResult> {
        if self.exceptions.is_empty() {
            return None;
        }
        let view = RequestView::with_request(input, request);
        let scope = VariableScope::new(&view, &self.variables);
        let mut matched: Vec<&Arc<CelPolicyException>> = Vec::new();
        for ex in &self.exceptions {
            match ex.matches(&scope) {
                Ok(true) => matched.push(ex),
                Ok(false) => {}
                Err(e) => return Some(self.error_result(input, &e, "exception")),
            }
        }
        if matched.is_empty() {
            return None;
        }
        let keys: Vec<&str> = matched.iter().map(|e| e.key()).collect();
        Some(self.result(
            input,
            "exception",
            RuleStatus::Skip,
            format!(
                "rule is skipped due to policy exception: {}",
                keys.join(", ")
            ),
        ))
    }

    /// `matchConditions`, then every mutation in order.
    fn run(&self, input: &PolicyInput) -> MutationOutcome {
        let rule_name = match self.flavor {
            Flavor::Admission => self.name.as_str(),
            Flavor::Kyverno => "",
        };
        {
            let view = RequestView::new(input);
            let scope = VariableScope::new(&view, &self.variables);
            match evaluate_match_conditions(&self.match_conditions, &scope) {
                MatchConditions::Hold => {}
                MatchConditions::False => {
                    let msg = match self.flavor {
                        Flavor::Admission => "match conditions aren't met",
                        Flavor::Kyverno => "skip",
                    };
                    return MutationOutcome {
                        results: vec![self.result(
                            input,
                            rule_name,
                            RuleStatus::Skip,
                            msg.to_owned(),
                        )],
                        patched: None,
                    };
                }
                MatchConditions::Errors { first, .. } => {
                    return self.failed(input, &first, "spec.matchConditions");
                }
            }
        }
        self.apply_mutations(input, input)
    }

    /// Every mutation in order, each seeing the object the previous one produced as `object`;
    /// `request` is the admission request expressions see (`input` itself, or the trigger of
    /// a mutate-existing target).
    fn apply_mutations(&self, input: &PolicyInput, request: &PolicyInput) -> MutationOutcome {
        let rule_name = match self.flavor {
            Flavor::Admission => self.name.as_str(),
            Flavor::Kyverno => "",
        };
        let mut current = input.clone();
        for (i, m) in self.mutations.iter().enumerate() {
            let at = format!("spec.mutations[{i}]");
            let object = current.object.as_deref().cloned().unwrap_or(Value::Null);
            let out = {
                let view = RequestView::with_request(&current, request);
                let scope = VariableScope::new(&view, &self.variables);
                m.program.evaluate_json(&scope)
            };
            let field = format!("{} {}: {at}", self.kind, self.name);
            let applied = out.and_then(|patch| match m.patch_type {
                PatchType::ApplyConfiguration => {
                    apply::apply_configuration(&object, &patch, self.allow_atomic, &field)
                }
                PatchType::JsonPatch => {
                    let ops = json_patch_ops(&patch, &field)?;
                    apply::apply_json_patch(&object, &ops, &field)
                }
            });
            match applied {
                Ok(o) => current.object = Some(Cow::Owned(o)),
                Err(e) => return self.failed(input, &e, &at),
            }
        }
        let message = match self.flavor {
            Flavor::Admission => "mutation is successfully applied",
            Flavor::Kyverno => "success",
        };
        MutationOutcome {
            results: vec![self.result(input, rule_name, RuleStatus::Pass, message.to_owned())],
            patched: current.object.map(Cow::into_owned),
        }
    }

    /// An evaluation failure: `error`, or for a MutatingAdmissionPolicy with
    /// `failurePolicy: Ignore` a `skip` (Kubernetes ignores the error); the object is not
    /// changed.
    fn failed(&self, input: &PolicyInput, e: &Error, at: &str) -> MutationOutcome {
        let mut r = self.error_result(input, e, at);
        if self.flavor == Flavor::Admission && self.failure_policy == FailurePolicy::Ignore {
            r.status = RuleStatus::Skip;
            r.message = format!("error ignored (failurePolicy: Ignore): {e}");
        }
        MutationOutcome {
            results: vec![r],
            patched: None,
        }
    }
}

/// The operations of a `JSONPatch` mutation's result: a list of `{op, path, from, value}`.
fn json_patch_ops(v: &Value, field: &str) -> Result<Vec<Value>, Error> {
    let err = |reason: String| Error::Patch {
        field: field.to_owned(),
        reason,
    };
    let Value::Array(ops) = v else {
        return Err(err(format!(
            "a JSONPatch expression must give a list of JSONPatch, got {v}"
        )));
    };
    for (i, op) in ops.iter().enumerate() {
        let Some(m) = op.as_object() else {
            return Err(err(format!("[{i}]: not a JSONPatch: {op}")));
        };
        if !m.get("op").is_some_and(Value::is_string)
            || !m.get("path").is_some_and(Value::is_string)
        {
            return Err(err(format!("[{i}]: a JSONPatch needs op and path")));
        }
    }
    Ok(ops.clone())
}

fn compile_mutations(spec: &Value) -> Result<Vec<Mutation>, Error> {
    let list = match spec.get("mutations") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(a)) => a,
        Some(_) => return Err(invalid("", "spec.mutations", "expected a list")),
    };
    if list.len() > MAX_MUTATIONS {
        return Err(invalid(
            "",
            "spec.mutations",
            format!("more than {MAX_MUTATIONS} mutations"),
        ));
    }
    let mut out = Vec::with_capacity(list.len());
    for (i, m) in list.iter().enumerate() {
        let at = format!("spec.mutations[{i}]");
        let (patch_type, key) = match str_field(m, "patchType") {
            Some("ApplyConfiguration") => (PatchType::ApplyConfiguration, "applyConfiguration"),
            Some("JSONPatch") => (PatchType::JsonPatch, "jsonPatch"),
            Some(other) => {
                return Err(invalid(
                    "",
                    format!("{at}.patchType"),
                    format!("unknown value {other:?} (ApplyConfiguration or JSONPatch)"),
                ));
            }
            None => return Err(invalid("", format!("{at}.patchType"), "required")),
        };
        let other = if key == "jsonPatch" {
            "applyConfiguration"
        } else {
            "jsonPatch"
        };
        if m.get(other).is_some_and(|x| !x.is_null()) {
            return Err(invalid(
                "",
                format!("{at}.{other}"),
                format!(
                    "must not be set with patchType {}",
                    str_field(m, "patchType").unwrap_or_default()
                ),
            ));
        }
        let expr = m
            .get(key)
            .and_then(|x| str_field(x, "expression"))
            .filter(|e| !e.trim().is_empty())
            .ok_or_else(|| invalid("", format!("{at}.{key}.expression"), "required"))?;
        let program = Program::compile(expr).map_err(|e| match e {
            Error::Cel { expression, reason } => Error::Cel {
                expression,
                reason: format!("{at}.{key}.expression: {reason}"),
            },
            other => other,
        })?;
        out.push(Mutation {
            patch_type,
            program,
        });
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests;
