//! Kubernetes' ValidatingAdmissionPolicy with its bindings.

use provenance_core::outcome::RuleResult;

use crate::Error;
use crate::lang::cel::PolicyInput;
use crate::lang::cel::{
    CompiledCelRule, K8sMode, RequestView, check_variables, compile_audit_annotations,
    compile_named, compile_validations, compile_variables, str_field,
};

use super::ValidationAction;
use super::match_constraints::{LabelSelector, MatchConstraints, labels_of, strings};
/// A Kubernetes `admissionregistration.k8s.io/v1` (or `v1beta1`, `v1alpha1`)
/// ValidatingAdmissionPolicy with its bindings, evaluated as `kyverno test` does without a
/// cluster:
///
/// * without bindings: `matchConstraints` select the request;
/// * with bindings: each binding whose `matchResources` match is evaluated (the policy's own
///   `matchConstraints` are not consulted, as in Kyverno's CLI), with the parameter resources
///   its `paramRef` selects (by selector, else by name/namespace); the last binding's result
///   is reported;
/// * results carry the policy name as rule name: `skip` with `match conditions aren't met`,
///   `fail` with Kubernetes' message (`message`, a valid `messageExpression`, else
///   `failed expression: <expression>`), `error` with `expression '<e>' resulted in error: ...`,
///   `pass` with an empty message. No match: no result.
#[derive(Debug)]
pub struct ValidatingAdmissionPolicy {
    name: String,
    match_constraints: Option<MatchConstraints>,
    rule: CompiledCelRule,
    ignore_errors: bool,
    bindings: Vec<PolicyBinding>,
}

/// A ValidatingAdmissionPolicyBinding.
#[derive(Debug, Clone)]
pub struct PolicyBinding {
    /// `metadata.name`
    pub name: String,
    /// `spec.policyName`
    pub policy_name: String,
    /// `spec.validationActions`
    pub validation_actions: Vec<ValidationAction>,
    /// `spec.matchResources`
    pub match_resources: Option<MatchConstraints>,
    /// `spec.paramRef`: (name, namespace, selector).
    pub param_ref: Option<(String, String, Option<LabelSelector>)>,
}

impl PolicyBinding {
    /// Loads a ValidatingAdmissionPolicyBinding document.
    pub fn from_value(v: &serde_json::Value) -> Result<Self, Error> {
        let name = v
            .get("metadata")
            .and_then(|m| str_field(m, "name"))
            .unwrap_or_default()
            .to_owned();
        let spec = v.get("spec").unwrap_or(&serde_json::Value::Null);
        let invalid = |path: &str, reason: &str| Error::InvalidPolicy {
            policy: name.clone(),
            path: path.to_owned(),
            reason: reason.to_owned(),
        };
        let policy_name = str_field(spec, "policyName")
            .ok_or_else(|| invalid("spec.policyName", "required"))?
            .to_owned();
        let mut validation_actions = Vec::new();
        for a in strings(spec, "validationActions") {
            validation_actions.push(match a.as_str() {
                "Deny" => ValidationAction::Deny,
                "Audit" => ValidationAction::Audit,
                "Warn" => ValidationAction::Warn,
                _ => {
                    return Err(invalid(
                        "spec.validationActions",
                        "expected Deny, Audit or Warn",
                    ));
                }
            });
        }
        let match_resources = spec
            .get("matchResources")
            .filter(|m| !m.is_null())
            .map(|m| MatchConstraints::from_value(m, "spec.matchResources"))
            .transpose()?;
        let param_ref = match spec.get("paramRef").filter(|p| !p.is_null()) {
            None => None,
            Some(p) => Some((
                str_field(p, "name").unwrap_or_default().to_owned(),
                str_field(p, "namespace").unwrap_or_default().to_owned(),
                p.get("selector")
                    .filter(|x| !x.is_null())
                    .map(|x| LabelSelector::from_value(x, "spec.paramRef.selector"))
                    .transpose()?,
            )),
        };
        Ok(PolicyBinding {
            name,
            policy_name,
            validation_actions,
            match_resources,
            param_ref,
        })
    }

    pub(crate) fn select_params(&self, params: &[serde_json::Value]) -> Option<serde_json::Value> {
        let (name, namespace, selector) = self.param_ref.as_ref()?;
        let meta = |p: &serde_json::Value, k: &str| -> String {
            p.get("metadata")
                .and_then(|m| str_field(m, k))
                .unwrap_or_default()
                .to_owned()
        };
        if let Some(sel) = selector {
            let items: Vec<serde_json::Value> = params
                .iter()
                .filter(|p| sel.matches(&labels_of(Some(p))))
                .cloned()
                .collect();
            return (!items.is_empty()).then(|| serde_json::json!({ "items": items }));
        }
        params
            .iter()
            .find(|p| {
                let mut m = false;
                if !namespace.is_empty() {
                    m = meta(p, "namespace") == *namespace;
                }
                if !name.is_empty() {
                    m = meta(p, "name") == *name;
                }
                m
            })
            .cloned()
    }
}

impl ValidatingAdmissionPolicy {
    /// Loads and compiles a ValidatingAdmissionPolicy document.
    pub fn from_value(v: &serde_json::Value) -> Result<Self, Error> {
        let name = v
            .get("metadata")
            .and_then(|m| str_field(m, "name"))
            .unwrap_or_default()
            .to_owned();
        let invalid = |path: &str, reason: &str| Error::InvalidPolicy {
            policy: name.clone(),
            path: path.to_owned(),
            reason: reason.to_owned(),
        };
        if !str_field(v, "apiVersion")
            .is_some_and(|a| a.starts_with("admissionregistration.k8s.io/"))
            || str_field(v, "kind") != Some("ValidatingAdmissionPolicy")
        {
            return Err(invalid(
                "kind",
                "expected an admissionregistration.k8s.io ValidatingAdmissionPolicy",
            ));
        }
        if name.is_empty() {
            return Err(invalid("metadata.name", "required"));
        }
        let spec = v
            .get("spec")
            .filter(|s| s.is_object())
            .ok_or_else(|| invalid("spec", "expected an object"))?;
        let match_constraints = spec
            .get("matchConstraints")
            .filter(|m| !m.is_null())
            .map(|m| MatchConstraints::from_value(m, "spec.matchConstraints"))
            .transpose()?;
        let preconditions = compile_named(spec, "matchConditions", "spec")?;
        let variables = compile_variables(spec, "spec")?;
        let validations = compile_validations(spec, "validations", "spec")?;
        let audit_annotations = compile_audit_annotations(spec, "spec")?;
        check_variables(
            &variables,
            preconditions
                .iter()
                .map(|m| &m.program)
                .chain(validations.iter().flat_map(|v| {
                    std::iter::once(&v.expression).chain(v.message_expression.iter())
                }))
                .chain(audit_annotations.iter().map(|a| &a.value)),
        )?;
        Ok(ValidatingAdmissionPolicy {
            ignore_errors: str_field(spec, "failurePolicy") == Some("Ignore"),
            rule: CompiledCelRule::from_parts(
                preconditions,
                variables,
                validations,
                audit_annotations,
            ),
            name,
            match_constraints,
            bindings: Vec::new(),
        })
    }

    /// The policy name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Attaches the bindings among `bindings` whose `policyName` is this policy.
    pub fn add_bindings(&mut self, bindings: &[PolicyBinding]) {
        for b in bindings {
            if b.policy_name == self.name {
                self.bindings.push(b.clone());
            }
        }
    }

    /// The attached bindings.
    pub fn bindings(&self) -> &[PolicyBinding] {
        &self.bindings
    }

    /// Evaluates against one request; `param_resources` are the candidates for bindings'
    /// `paramRef` (`kyverno test`'s `paramResources`). Empty when nothing matches.
    pub fn evaluate(
        &self,
        input: &PolicyInput,
        param_resources: &[serde_json::Value],
    ) -> Vec<RuleResult> {
        let resource = input.resource_ref();
        let mode = K8sMode::AdmissionPolicy {
            ignore_errors: self.ignore_errors,
        };
        let to_result = |o: crate::lang::cel::CelOutcome| {
            RuleResult::new(
                self.name.clone(),
                self.name.clone(),
                resource.clone(),
                o.status,
                o.message,
            )
        };
        if self.bindings.is_empty() {
            return match &self.match_constraints {
                Some(mc) if mc.matches(input) => {
                    vec![to_result(self.rule.k8s_validate(
                        &RequestView::new(input),
                        mode,
                        "",
                    ))]
                }
                _ => Vec::new(),
            };
        }
        let mut last = None;
        for b in &self.bindings {
            if let Some(mr) = &b.match_resources
                && !mr.matches_selectors_and_rules(input)
            {
                continue;
            }
            let outcome = if b.param_ref.is_some() {
                let mut with_params = input.clone();
                with_params.params = b.select_params(param_resources);
                self.rule
                    .k8s_validate(&RequestView::new(&with_params), mode, "")
            } else {
                self.rule.k8s_validate(&RequestView::new(input), mode, "")
            };
            last = Some(outcome);
        }
        last.map(|o| vec![to_result(o)]).unwrap_or_default()
    }
}
