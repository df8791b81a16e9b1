//! CEL mutation policies in the mutating admission step ([`crate::PolicySet::decide_mutating`]).

use provenance_core::{RuleResult, RuleStatus};

use super::{Flavor, MutatingPolicy};
use crate::admission::cluster::ClusterData;
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

/// What the CEL mutation policies decide in the mutating admission step.
#[derive(Default)]
pub(crate) struct Mutated {
    /// Every result, the mutate-existing targets' included.
    pub(crate) results: Vec<RuleResult>,
    /// The results that deny the request.
    pub(crate) blocking: Vec<RuleResult>,
    /// Warnings for errors that do not deny.
    pub(crate) warnings: Vec<String>,
    /// The existing resources MutatingPolicies with `mutateExisting` patch.
    pub(crate) targets: Vec<crate::kyverno::mutate::TargetMutation>,
}

/// Applies the CEL mutation policies to `current` (each sees the previous one's output). An
/// `error` denies unless the policy's `failurePolicy` is `Ignore`. Parameters for bindings'
/// `paramRef` are not supplied at admission: such a binding is an `error` (fail closed).
/// A MutatingPolicy with `mutateExisting` also selects its targets from `cluster` for the
/// request as it reached the policy; their results never deny (Kyverno applies them after
/// admission).
pub(crate) fn mutate(
    policies: &[LoadedPolicy],
    current: &mut ResourceInput,
    cluster: Option<&dyn ClusterData>,
) -> Mutated {
    let mut m = Mutated::default();
    let (results, blocking, warnings) = (&mut m.results, &mut m.blocking, &mut m.warnings);
    for p in ordered(policies) {
        let pi = crate::lang::cel::PolicyInput::from(&*current);
        if p.mutates_existing() {
            let existing = p.mutate_existing(&pi, cluster);
            results.extend(existing.response.rules);
            m.targets.extend(existing.targets);
        }
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
    m
}
