//! `provenance test` for CEL mutation policies (MutatingAdmissionPolicy, MutatingPolicy):
//! each applies to the resource in turn, as `kyverno test` applies them after the
//! ClusterPolicies, and its output is what its `patchedResources` are compared with.
//! MutatingPolicies with `mutateExisting` also patch copies of the test's `targetResources`.

use provenance_policy::admission::cluster::ClusterSnapshot;
use provenance_policy::admission::loader::LoadedPolicy;
use provenance_policy::admission::request::ResourceInput;
use provenance_policy::cel_policies::mutating_policy::Flavor;
use provenance_policy::kyverno::engine::PolicyResponse;
use provenance_policy::kyverno::mutate::MutateExisting;
use provenance_policy::lang::cel::PolicyInput;
use serde_json::Value;

/// Applies every CEL mutation policy of `policies` to `input` (MutatingAdmissionPolicies
/// first, then MutatingPolicies, each seeing the previous one's output). Returns the policy
/// responses `kyverno test` reports and each policy's output object. `prep` completes the
/// CEL input (context data, namespace object).
pub fn apply(
    policies: &[LoadedPolicy],
    input: &mut ResourceInput,
    params: &[Value],
    prep: impl Fn(&mut PolicyInput),
) -> (Vec<PolicyResponse>, Vec<(String, Value)>) {
    let mut responses = Vec::new();
    let mut patched_by = Vec::new();
    for flavor in [Flavor::Admission, Flavor::Kyverno] {
        for p in policies {
            let LoadedPolicy::Mutating(m) = p else {
                continue;
            };
            if m.flavor() != flavor {
                continue;
            }
            let mut pi = PolicyInput::from(&*input);
            prep(&mut pi);
            let outcome = m.evaluate(&pi, params);
            // `kyverno test` reports nothing for a MutatingAdmissionPolicy that did not apply,
            // nor for a MutatingPolicy with no result whose `matchConstraints` are one plain
            // resource rule; a MutatingPolicy without results is otherwise "excluded".
            if outcome.results.is_empty() && (flavor == Flavor::Admission || simple_match(m)) {
                continue;
            }
            if let Some(o) = outcome.patched {
                input.object = o;
            }
            patched_by.push((m.name().to_owned(), input.object.clone()));
            responses.push(PolicyResponse::new(m.name(), m.kind(), outcome.results));
        }
    }
    (responses, patched_by)
}

/// Whether `matchConstraints` are one resource rule without resource names, selectors or
/// exclusions (`kyverno test` drops a MutatingPolicy's empty response then).
fn simple_match(m: &provenance_policy::cel_policies::mutating_policy::MutatingPolicy) -> bool {
    let Some(mc) = m.match_constraints() else {
        return false;
    };
    let selects = |s: &Option<
        provenance_policy::cel_policies::validating_policy::LabelSelector,
    >| { s.as_ref().is_some_and(|s| !s.is_empty()) };
    !selects(&mc.namespace_selector)
        && !selects(&mc.object_selector)
        && mc.exclude_resource_rules.is_empty()
        && mc.resource_rules.len() == 1
        && mc.resource_rules[0].resource_names.is_empty()
}

/// Applies every MutatingPolicy with `mutateExisting` of `policies` for the trigger
/// `trigger` to `targets`, the only candidates (`kyverno test`'s `targetResources`,
/// `kyverno apply`'s `--target-resources`): they are the cluster data the targets are listed
/// from and the `resource` library's data a `targetMatchConstraints.expression` reads (with
/// what `trigger.context` holds). Returns what each policy that gave results decided; nothing
/// without targets, as `kyverno test` evaluates none then.
pub fn mutate_existing(
    policies: &[LoadedPolicy],
    trigger: &PolicyInput<'_>,
    targets: &[Value],
) -> Vec<MutateExisting> {
    let mutating: Vec<_> = policies
        .iter()
        .filter_map(|p| match p {
            LoadedPolicy::Mutating(m) if m.mutates_existing() => Some(m),
            _ => None,
        })
        .collect();
    if targets.is_empty() || mutating.is_empty() {
        return Vec::new();
    }
    let mut cluster = ClusterSnapshot::new().with_resources_supplied();
    let mut trigger = trigger.clone();
    for t in targets {
        cluster.add_resource(t.clone());
        trigger.context.add_resource(t.clone());
    }
    mutating
        .into_iter()
        .map(|m| m.mutate_existing(&trigger, Some(&cluster)))
        .filter(|e| !e.response.rules.is_empty())
        .collect()
}
