//! CEL mutation policies in the mutating admission step ([`crate::PolicySet::decide_mutating`]).

use provenance_core::{RuleResult, RuleStatus};

use super::{Flavor, MutatingPolicy};
use crate::admission::loader::LoadedPolicy;
use crate::admission::request::ResourceInput;
use crate::cel_policies::validating_policy::FailurePolicy;

/// The CEL mutation policies among `policies`, in evaluation order: every
/// MutatingAdmissionPolicy, then every MutatingPolicy, each in load order.
pub(crate) fn ordered(policies: &[LoadedPolicy]) -> Vec<&MutatingPolicy> {
    let all: Vec<&MutatingPolicy> = policies
        .iter()
        .filter_map(|p| match p {
            LoadedPolicy::Mutating(m) => Some(m.as_ref()),
            _ => None,
        })
        .collect();
    let (mut out, kyverno): (Vec<_>, Vec<_>) = all
        .into_iter()
        .partition(|m| m.flavor() == Flavor::Admission);
    out.extend(kyverno);
    out
}

/// Applies the CEL mutation policies to `current` (each sees the previous one's output) and
/// returns their results, those that deny the request, and warnings. An `error` denies
/// unless the policy's `failurePolicy` is `Ignore`. Parameters for bindings' `paramRef` are
/// not supplied at admission: such a binding is an `error` (fail closed).
pub(crate) fn mutate(
    policies: &[LoadedPolicy],
    current: &mut ResourceInput,
) -> (Vec<RuleResult>, Vec<RuleResult>, Vec<String>) {
    let (mut results, mut blocking, mut warnings) = (Vec::new(), Vec::new(), Vec::new());
    for p in ordered(policies) {
        let pi = crate::lang::cel::PolicyInput::from(&*current);
        let outcome = p.evaluate(&pi, &[]);
        for r in outcome.results {
            if r.status == RuleStatus::Error {
                if p.failure_policy() == FailurePolicy::Fail {
                    blocking.push(r.clone());
                } else {
                    warnings.push(format!("policy {}: {}", p.name(), r.message));
                }
            }
            results.push(r);
        }
        if let Some(o) = outcome.patched {
            current.object = o;
        }
    }
    (results, blocking, warnings)
}
