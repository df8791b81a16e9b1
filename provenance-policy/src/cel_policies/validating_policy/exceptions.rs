//! CEL PolicyExceptions (`policies.kyverno.io`) and attaching them to the policies they name.

use std::sync::Arc;

use crate::Error;
use crate::lang::cel::{NamedProgram, VariableScope, compile_named, str_field};
/// A `policies.kyverno.io` PolicyException for CEL policies: `policyRefs` name the policies it
/// applies to, `matchConditions` (CEL) select the requests it exempts.
///
/// Only full exemptions are supported; `images` and `allowedValues` (partial exemptions exposed
/// to the policy as the `exceptions` variable) are [`Error::Unsupported`].
#[derive(Debug)]
pub struct CelPolicyException {
    key: String,
    policy_refs: Vec<(String, String)>,
    pub(super) match_conditions: Vec<NamedProgram>,
    pub(super) report_pass: bool,
    pub(super) priority: i64,
}

impl CelPolicyException {
    /// Whether every `matchConditions` entry holds for the request in `scope` (`Err`: the
    /// first evaluation error).
    pub(crate) fn matches(&self, scope: &VariableScope<'_, '_>) -> Result<bool, Error> {
        for mc in &self.match_conditions {
            if !mc.program.evaluate_bool(scope)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Loads a PolicyException document (`policies.kyverno.io/v1`, `v1beta1`, `v1alpha1`).
    pub fn from_value(v: &serde_json::Value) -> Result<Self, Error> {
        let meta = v.get("metadata");
        let name = meta.and_then(|m| str_field(m, "name")).unwrap_or_default();
        let namespace = meta
            .and_then(|m| str_field(m, "namespace"))
            .unwrap_or_default();
        let key = if namespace.is_empty() {
            name.to_owned()
        } else {
            format!("{namespace}/{name}")
        };
        let invalid = |path: &str, reason: &str| Error::InvalidPolicy {
            policy: key.clone(),
            path: path.to_owned(),
            reason: reason.to_owned(),
        };
        if !str_field(v, "apiVersion").is_some_and(|a| a.starts_with("policies.kyverno.io/"))
            || str_field(v, "kind") != Some("PolicyException")
        {
            return Err(invalid(
                "kind",
                "expected a policies.kyverno.io PolicyException",
            ));
        }
        if name.is_empty() {
            return Err(invalid("metadata.name", "required"));
        }
        let spec = v.get("spec").unwrap_or(&serde_json::Value::Null);
        for field in ["images", "allowedValues"] {
            if spec
                .get(field)
                .and_then(|x| x.as_array())
                .is_some_and(|a| !a.is_empty())
            {
                return Err(Error::Unsupported {
                    field: format!("PolicyException {key}: spec.{field}"),
                });
            }
        }
        // An expiry is a clock reading this crate does not take at load time: an exception
        // past its expiry must not keep exempting, so one that sets it is refused.
        if spec.get("expiresAt").is_some_and(|x| !x.is_null()) {
            return Err(Error::Unsupported {
                field: format!("PolicyException {key}: spec.expiresAt"),
            });
        }
        if let Some(mode) = str_field(spec, "evaluationMode")
            && mode != "Kubernetes"
        {
            return Err(Error::Unsupported {
                field: format!("PolicyException {key}: spec.evaluationMode: {mode}"),
            });
        }
        let policy_refs = spec
            .get("policyRefs")
            .and_then(|r| r.as_array())
            .map(|a| {
                a.iter()
                    .map(|r| {
                        (
                            str_field(r, "name").unwrap_or_default().to_owned(),
                            str_field(r, "kind").unwrap_or_default().to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let match_conditions = compile_named(spec, "matchConditions", "spec")?;
        let priority = meta
            .and_then(|m| m.get("labels"))
            .and_then(|l| str_field(l, "polex.kyverno.io/priority"))
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        Ok(CelPolicyException {
            report_pass: str_field(spec, "reportResult") == Some("pass"),
            key,
            policy_refs,
            match_conditions,
            priority,
        })
    }

    /// `namespace/name` (or `name`).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Whether `reportResult: pass` (else the exempted request is reported `skip`).
    pub(crate) fn reports_pass(&self) -> bool {
        self.report_pass
    }

    /// The `polex.kyverno.io/priority` label (0 when absent).
    pub(crate) fn priority(&self) -> i64 {
        self.priority
    }

    /// Whether `policyRefs` names the policy `name` of `kind`.
    pub fn refers_to(&self, name: &str, kind: &str) -> bool {
        self.policy_refs.iter().any(|(n, k)| n == name && k == kind)
    }
}

/// Attaches to `attached` the exceptions among `candidates` whose `policyRefs` name the policy
/// `name` (`namespace/name` for a namespaced kind: its plain name is compared) of `kind`, each
/// exception once however often the policy set is linked.
pub(crate) fn attach_exceptions(
    attached: &mut Vec<Arc<CelPolicyException>>,
    name: &str,
    kind: &str,
    candidates: &[Arc<CelPolicyException>],
) {
    let plain = name.rsplit('/').next().unwrap_or_default();
    for e in candidates {
        if e.refers_to(plain, kind) && !attached.iter().any(|x| Arc::ptr_eq(x, e)) {
            attached.push(e.clone());
        }
    }
}
