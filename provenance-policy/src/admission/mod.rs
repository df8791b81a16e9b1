//! Admission decisions: AdmissionReview in, AdmissionReview with a response out.
//!
//! A [`PolicySet`] holds loaded policies. [`PolicySet::decide`] evaluates them against one
//! resource and applies Kyverno's decision rules:
//!
//! - a `fail` of a rule whose failure action is `Enforce` blocks the request;
//! - an `error` of an enforced rule blocks unless the policy's `failurePolicy` is `Ignore`
//!   (fail closed: an unsupported feature in an enforced policy blocks);
//! - `fail` and `error` of `Audit` rules become admission warnings
//!   (`policy <name>.<rule>: <message>`), never blocks;
//! - `generate` rules never block nor warn (Kyverno generates in the background): their
//!   results are in [`Decision::results`], their resources in [`Decision::generated`];
//! - on UPDATE, a failing rule with `allowExistingViolations` (the default) does not block when
//!   the old object violated it too.
//!
//! The blocking message has Kyverno's format: `resource <Kind>/<ns>/<name> was blocked due to
//! the following policies` followed by `policy: {rule: message}` in YAML.
//!
//! The rest of the admission side is in the submodules: [`review`], the front door (one
//! AdmissionReview in, the answer out); [`request`], what a policy is evaluated against;
//! [`loader`], loading policy files into a [`PolicySet`]; [`cluster`], the cluster data rules
//! read; [`report`], PolicyReports from rule results; and, with the `oci` feature, `gather`,
//! evidence gathering from registries and OCI layouts.

pub mod cluster;
#[cfg(feature = "oci")]
pub mod gather;
pub mod loader;
pub mod report;
pub mod request;
pub mod review;

use std::collections::BTreeMap;

use provenance_core::{RuleResult, RuleStatus};
use serde_json::{Value, json};

use crate::Error;
use crate::admission::loader::LoadedPolicy;
use crate::admission::request::{Operation, RequestInfo, ResourceInput, UserInfo};
use crate::kyverno::engine::{PolicyResponse, Prepared, Variables};
use crate::kyverno::policy::{ClusterPolicy, FailureAction};
use crate::lang::jmespath::Env;

/// A set of loaded policies, ready to evaluate requests.
#[derive(Debug, Clone, Default)]
pub struct PolicySet {
    policies: Vec<LoadedPolicy>,
}

/// The outcome of an admission request.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Decision {
    /// Whether the request is admitted.
    pub allowed: bool,
    /// Why it was blocked (empty when allowed).
    pub message: String,
    /// Admission warnings (Audit results).
    pub warnings: Vec<String>,
    /// Every rule result, for reports and logs.
    pub results: Vec<RuleResult>,
    /// RFC 6902 patches (`verifyImages` `mutateDigest`: tags pinned to verified digests).
    pub patches: Vec<Value>,
    /// The results that block the request (a subset of `results`; empty when allowed).
    pub blocking: Vec<RuleResult>,
    /// The resources `generate` rules produce for the request, for the caller to create in
    /// the background as Kyverno does. Generate rules never block a request nor warn: their
    /// `error` results (a missing clone source, say) are in `results` only.
    pub generated: Vec<crate::kyverno::generate::GeneratedResource>,
    /// The RFC 6902 patch `mutate` rules made, from the submitted object to the mutated one
    /// (only from [`PolicySet::decide_mutating`]); `patches` apply after it.
    pub mutation_patches: Vec<Value>,
    /// The `mutate` results that deny the mutating admission request (an `error` of a policy
    /// whose `failurePolicy` is `Fail`, as Kyverno's mutating webhook blocks).
    pub mutation_blocking: Vec<RuleResult>,
    /// The existing resources `mutate` rules with `targets` and MutatingPolicies with
    /// `mutateExisting` patch for the request (only from
    /// [`PolicySet::decide_mutating`]), for the caller to update in the background as Kyverno's
    /// background controller does. These rules never block a request nor warn, and never
    /// change the request's object: their results (an `error` for a target that is missing or
    /// for cluster data that is not supplied) are in `results`.
    pub mutated_targets: Vec<crate::kyverno::mutate::TargetMutation>,
}

impl Decision {
    /// A machine code for each blocking result: the code of its first reason, else
    /// `policy.rule.fail` or `policy.rule.error`, with `<policy>/<rule>`.
    pub fn blocking_codes(&self) -> Vec<(String, String)> {
        self.blocking
            .iter()
            .map(|r| {
                let status = match r.status {
                    RuleStatus::Error => "error",
                    _ => "fail",
                };
                let code = r
                    .reasons
                    .first()
                    .map(|x| x.code.clone())
                    .unwrap_or_else(|| format!("policy.rule.{status}"));
                (code, format!("{}/{}", r.policy, r.rule))
            })
            .collect()
    }
}

impl Decision {
    /// The decision as a **validating** admission webhook must give it: the object is what the
    /// API server will store, so an image a `verifyImages` rule or an ImageValidatingPolicy
    /// would still pin to its digest (a tag the mutating step did not rewrite: an UPDATE it
    /// did not see, a later mutation, a webhook that never ran) is denied, as Kyverno's
    /// validating webhook denies a missing digest. A verified tag could otherwise be moved to
    /// other content after admission. The patches stay listed for the caller to report.
    pub fn validating(mut self) -> Self {
        if self.patches.is_empty() {
            return self;
        }
        let mut images: Vec<String> = Vec::new();
        for p in &self.patches {
            let one = format!(
                "{} (at {})",
                p["value"].as_str().unwrap_or_default(),
                p["path"].as_str().unwrap_or_default()
            );
            if !images.contains(&one) {
                images.push(one);
            }
        }
        let msg = format!(
            "missing digest: the object carries image tags that verification pins to digests and the pinned form was not submitted: {}",
            images.join(", ")
        );
        let resource = self
            .results
            .first()
            .map(|r| r.resource.clone())
            .unwrap_or_default();
        let mut paths: Vec<&str> = Vec::new();
        for p in &self.patches {
            let path = p["path"].as_str().unwrap_or_default();
            if !paths.contains(&path) {
                paths.push(path);
            }
        }
        for path in paths {
            self.blocking.push(
                RuleResult::new(
                    "verifyImages",
                    "digest",
                    resource.clone(),
                    RuleStatus::Fail,
                    msg.clone(),
                )
                .with_reason(
                    provenance_core::Reason::new("policy.verify_images.missing_digest", &msg)
                        .at(path),
                ),
            );
        }
        self.allowed = false;
        self.message = if self.message.is_empty() {
            msg
        } else {
            format!("{}; {msg}", self.message)
        };
        self
    }
}

impl PolicySet {
    /// A set of the given policies.
    pub fn new(policies: Vec<LoadedPolicy>) -> Self {
        PolicySet { policies }
    }

    /// Loads policies from YAML text and adds them.
    pub fn add_yaml(&mut self, text: &str, file: &str) -> Result<(), Error> {
        self.policies
            .extend(crate::admission::loader::load_policies(text, file)?);
        crate::admission::loader::link(&mut self.policies);
        Ok(())
    }

    /// The loaded policies.
    pub fn policies(&self) -> &[LoadedPolicy] {
        &self.policies
    }

    fn kyverno(&self) -> impl Iterator<Item = &ClusterPolicy> {
        self.policies.iter().filter_map(|p| match p {
            LoadedPolicy::Kyverno(cp) => Some(cp.as_ref()),
            _ => None,
        })
    }

    /// Evaluates the JSON-mode ValidatingPolicies (`spec.evaluation.mode: JSON`) against one
    /// JSON document that is not a Kubernetes request: a Terraform plan, a parsed Dockerfile,
    /// a pipeline configuration. `name` names the payload in the results (e.g. its file name).
    /// Kubernetes-mode policies do not apply to payloads, nor JSON-mode ones to requests.
    ///
    /// ```
    /// # use provenance_policy::PolicySet;
    /// # use provenance_core::RuleStatus;
    /// let mut set = PolicySet::default();
    /// set.add_yaml(r#"
    /// apiVersion: policies.kyverno.io/v1
    /// kind: ValidatingPolicy
    /// metadata: {name: no-public-buckets}
    /// spec:
    ///   evaluation: {mode: JSON}
    ///   validations:
    ///   - expression: "object.buckets.all(b, !b.public)"
    ///     message: "buckets must not be public"
    /// "#, "policy.yaml")?;
    /// let plan = serde_json::json!({"buckets": [{"name": "models", "public": true}]});
    /// let responses = set.evaluate_payload(&plan, "plan.json", &Default::default());
    /// assert_eq!(responses[0].rules[0].status, RuleStatus::Fail);
    /// assert_eq!(responses[0].rules[0].resource.name, "plan.json");
    /// # Ok::<(), provenance_policy::Error>(())
    /// ```
    pub fn evaluate_payload(
        &self,
        payload: &Value,
        name: &str,
        context: &crate::lang::cel::ContextData,
    ) -> Vec<PolicyResponse> {
        self.policies
            .iter()
            .filter_map(|p| match p {
                LoadedPolicy::Validating(vp) if vp.is_json_mode() => Some(PolicyResponse {
                    policy: vp.name().to_owned(),
                    kind: vp.kind().to_owned(),
                    rules: vp.evaluate_payload(payload, name, context),
                    generated: Vec::new(),
                }),
                _ => None,
            })
            .collect()
    }

    /// Evaluates every ValidatingPolicy with `evaluation.mode: Envoy` (`envoy`) or `HTTP`
    /// (`!envoy`) against one authorization request (an Envoy `CheckRequest` or an HTTP
    /// `CheckRequest` in JSON), as `kyverno test` evaluates `envoyPayloads` and
    /// `httpPayloads`: one response per policy, named `name`. `now` is the time tokens are
    /// checked against. See [`ValidatingPolicy::authorize`] for the answer itself.
    ///
    /// [`ValidatingPolicy::authorize`]: crate::cel_policies::validating_policy::ValidatingPolicy::authorize
    pub fn evaluate_authz_payload(
        &self,
        envoy: bool,
        request: &Value,
        name: &str,
        context: &crate::lang::cel::ContextData,
        now: provenance_core::UnixTime,
    ) -> Vec<PolicyResponse> {
        self.policies
            .iter()
            .filter_map(|p| match p {
                LoadedPolicy::Validating(vp)
                    if (envoy && vp.is_envoy_mode()) || (!envoy && vp.is_http_mode()) =>
                {
                    Some(PolicyResponse {
                        policy: vp.name().to_owned(),
                        kind: vp.kind().to_owned(),
                        rules: vp.evaluate_authz_payload(request, name, context, now),
                        generated: Vec::new(),
                    })
                }
                _ => None,
            })
            .collect()
    }

    /// Evaluates every policy against one resource.
    pub fn evaluate(&self, input: &ResourceInput, env: &Env) -> Vec<PolicyResponse> {
        let vars = Variables::default();
        let prepared = Prepared::new(input).with_exceptions(self.exceptions());
        let mut out: Vec<PolicyResponse> = self
            .kyverno()
            .map(|p| p.evaluate_prepared(&prepared, &vars, env))
            .collect();
        for vp in self.validating() {
            out.push(PolicyResponse {
                policy: vp.name().to_owned(),
                kind: "ValidatingPolicy".into(),
                rules: vp.evaluate(prepared.cel_input()),
                generated: Vec::new(),
            });
        }
        for vap in self.vaps() {
            out.push(PolicyResponse {
                policy: vap.name().to_owned(),
                kind: "ValidatingAdmissionPolicy".into(),
                rules: vap.evaluate(prepared.cel_input(), &[]),
                generated: Vec::new(),
            });
        }
        for gp in self.generating() {
            out.push(gp.evaluate(prepared.cel_input()));
        }
        let mut verified = BTreeMap::new();
        for ivp in self.image_validating() {
            out.push(PolicyResponse {
                policy: ivp.name().to_owned(),
                kind: "ImageValidatingPolicy".into(),
                rules: ivp.evaluate(prepared.cel_input(), None, &mut verified),
                generated: Vec::new(),
            });
        }
        out
    }

    fn image_validating(
        &self,
    ) -> impl Iterator<Item = &crate::cel_policies::image_validating_policy::ImageValidatingPolicy>
    {
        self.policies.iter().filter_map(|p| match p {
            LoadedPolicy::ImageValidating(p) => Some(p.as_ref()),
            _ => None,
        })
    }

    fn generating(
        &self,
    ) -> impl Iterator<Item = &crate::cel_policies::generating_policy::GeneratingPolicy> {
        self.policies.iter().filter_map(|p| match p {
            LoadedPolicy::Generating(p) => Some(p.as_ref()),
            _ => None,
        })
    }

    fn exceptions(&self) -> Vec<std::sync::Arc<crate::kyverno::exceptions::PolicyException>> {
        self.policies
            .iter()
            .filter_map(|p| match p {
                LoadedPolicy::Exception(e) => Some(e.clone()),
                _ => None,
            })
            .collect()
    }

    fn vaps(
        &self,
    ) -> impl Iterator<Item = &crate::cel_policies::validating_policy::ValidatingAdmissionPolicy>
    {
        self.policies.iter().filter_map(|p| match p {
            LoadedPolicy::Vap(v) => Some(v.as_ref()),
            _ => None,
        })
    }

    fn validating(
        &self,
    ) -> impl Iterator<Item = &crate::cel_policies::validating_policy::ValidatingPolicy> {
        self.policies.iter().filter_map(|p| match p {
            LoadedPolicy::Validating(vp) => Some(vp.as_ref()),
            _ => None,
        })
    }

    /// Evaluates and decides.
    pub fn decide(&self, input: &ResourceInput, env: &Env) -> Decision {
        self.decide_with(input, env, None)
    }

    /// The images the policies' `verifyImages` rules cover in `input`, with the evidence each
    /// needs: step one of the sans-IO flow (gather it, then call [`PolicySet::decide_with`]).
    pub fn image_requests(
        &self,
        input: &ResourceInput,
    ) -> Vec<crate::kyverno::verify_images::ImageRequest> {
        let mut out = Vec::new();
        for p in self.kyverno() {
            for rule in &p.rules {
                if let crate::kyverno::policy::RuleKind::VerifyImages(vi) = &rule.kind
                    && rule.match_block.matches(input)
                    && !rule.exclude.as_ref().is_some_and(|e| e.excludes(input))
                {
                    out.extend(
                        crate::kyverno::verify_images::image_requests_with_extractors(
                            &p.name,
                            &rule.name,
                            vi,
                            rule.raw.get("imageExtractors"),
                            &input.object,
                        ),
                    );
                }
            }
        }
        let mut ivps = self.image_validating().peekable();
        if ivps.peek().is_some() {
            let pi = crate::lang::cel::PolicyInput::from(input);
            for ivp in ivps {
                out.extend(ivp.image_requests(&pi));
            }
        }
        out
    }

    /// Evaluates and decides, with the evidence `verifyImages` rules need.
    pub fn decide_with(
        &self,
        input: &ResourceInput,
        env: &Env,
        images: Option<&crate::kyverno::verify_images::VerifyImagesContext<'_>>,
    ) -> Decision {
        let vars = Variables::default();
        let mut blocked: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        let mut warnings = Vec::new();
        let mut results = Vec::new();
        let mut blocking: Vec<RuleResult> = Vec::new();
        let mut generated = Vec::new();
        // The object is taken as submitted: mutate rules are the mutating step's
        // (`decide_mutating`), a validating webhook receives their output.
        let mut prepared = Prepared::new(input)
            .with_exceptions(self.exceptions())
            .without_mutation();
        if let Some(cx) = images {
            prepared = prepared.with_images(cx);
        }
        for policy in self.kyverno() {
            // `policies.kyverno.io/scored: "false"` reports failures as warnings, for reports
            // only: the admission decision still counts them as failures, as Kyverno does.
            let unscored = policy
                .annotations
                .get("policies.kyverno.io/scored")
                .map(String::as_str)
                == Some("false");
            let failed =
                |s: RuleStatus| s == RuleStatus::Fail || (unscored && s == RuleStatus::Warn);
            let mut resp = policy.evaluate_prepared(&prepared, &vars, env);
            generated.append(&mut resp.generated);
            let old_resp = match (&input.old_object, input.operation) {
                (Some(old), Operation::Update) if resp.rules.iter().any(|r| failed(r.status)) => {
                    let old_input = input.with_objects(old.clone(), None);
                    let old_prepared = Prepared::new(&old_input).without_mutation();
                    Some(policy.evaluate_prepared(&old_prepared, &vars, env))
                }
                _ => None,
            };
            for mut r in resp.rules {
                let Some(rule) = policy.rules.iter().find(|x| x.name == r.rule) else {
                    continue;
                };
                // Kyverno generates in the background: a generate rule never decides
                // admission, whatever the policy's failure action.
                if matches!(rule.kind, crate::kyverno::policy::RuleKind::Generate) {
                    results.push(r);
                    continue;
                }
                if failed(r.status)
                    && rule.allow_existing_violations
                    && old_resp.as_ref().is_some_and(|o| {
                        o.rules.iter().any(|x| x.rule == r.rule && failed(x.status))
                    })
                {
                    r.status = RuleStatus::Skip;
                    r.message = format!("existing violation allowed on UPDATE: {}", r.message);
                }
                let action =
                    policy.rule_failure_action_in(rule, input.namespace(), &input.namespace_labels);
                let blocks = match r.status {
                    s if failed(s) => action == FailureAction::Enforce,
                    RuleStatus::Error => {
                        action == FailureAction::Enforce && !policy.failure_policy_ignore
                    }
                    _ => false,
                };
                if blocks {
                    blocked
                        .entry(policy.name.clone())
                        .or_default()
                        .insert(r.rule.clone(), r.message.clone());
                    blocking.push(r.clone());
                } else if matches!(
                    r.status,
                    RuleStatus::Fail | RuleStatus::Error | RuleStatus::Warn
                ) {
                    warnings.push(format!("policy {}.{}: {}", policy.name, r.rule, r.message));
                }
                results.push(r);
            }
        }
        // ValidatingPolicies: validationActions decide (Deny blocks; Warn and Audit warn).
        for vp in self.validating() {
            let actions = vp.validation_actions();
            let deny =
                actions.contains(&crate::cel_policies::validating_policy::ValidationAction::Deny);
            let ignore = vp.failure_policy()
                == crate::cel_policies::validating_policy::FailurePolicy::Ignore;
            for r in vp.evaluate(prepared.cel_input()) {
                let blocks = match r.status {
                    RuleStatus::Fail => deny,
                    RuleStatus::Error => deny && !ignore,
                    _ => false,
                };
                if blocks {
                    blocked
                        .entry(vp.name().to_owned())
                        .or_default()
                        .insert(r.rule.clone(), r.message.clone());
                    blocking.push(r.clone());
                } else if matches!(r.status, RuleStatus::Fail | RuleStatus::Error) {
                    warnings.push(format!("policy {}: {}", vp.name(), r.message));
                }
                results.push(r);
            }
        }
        // ImageValidatingPolicies: tags are pinned to the resolved digests first (Kyverno's
        // mutating webhook runs before its validating one), then the policies are evaluated
        // against the pinned object; `required` is checked once every policy has verified.
        let mut ivp_patches: Vec<Value> = Vec::new();
        let mut ivp_results: Vec<(
            &crate::cel_policies::image_validating_policy::ImageValidatingPolicy,
            RuleResult,
            Vec<String>,
        )> = Vec::new();
        let mut ivps = self.image_validating().peekable();
        if ivps.peek().is_some() {
            let mut pinned_input = prepared.cel_input().clone();
            let mut digest_errors = Vec::new();
            for ivp in self.image_validating() {
                let (patches, err) = ivp.digest_patches(prepared.cel_input(), images);
                for p in patches {
                    if !ivp_patches.iter().any(|x| x["path"] == p["path"]) {
                        ivp_patches.push(p);
                    }
                }
                if let Some(e) = err {
                    digest_errors.push((ivp, e));
                }
            }
            if let Some(obj) = pinned_input.object.as_mut() {
                for p in &ivp_patches {
                    if let (Some(path), Some(v)) = (p["path"].as_str(), p.get("value"))
                        && let Some(slot) = obj.to_mut().pointer_mut(path)
                    {
                        *slot = v.clone();
                    }
                }
            }
            let verified = std::cell::RefCell::new(BTreeMap::new());
            for ivp in ivps {
                if let Some((_, e)) = digest_errors.iter().find(|(p, _)| std::ptr::eq(*p, ivp)) {
                    let r = RuleResult::new(
                        ivp.name(),
                        "mutateDigest",
                        crate::kyverno::engine::resource_ref(input),
                        RuleStatus::Error,
                        format!("failed to update digest: {}", e.message),
                    )
                    .with_reason(e.clone());
                    ivp_results.push((ivp, r, Vec::new()));
                }
                if let Some((rs, matched)) = ivp.evaluate_matched(&pinned_input, images, &verified)
                {
                    for r in rs {
                        let m = if r.status == RuleStatus::Pass {
                            matched.clone()
                        } else {
                            Vec::new()
                        };
                        ivp_results.push((ivp, r, m));
                    }
                }
            }
            let verified = verified.into_inner();
            for (ivp, r, matched) in &mut ivp_results {
                if r.status == RuleStatus::Pass
                    && let Some(msg) = ivp.enforce_required(matched, &verified)
                {
                    r.status = RuleStatus::Fail;
                    r.message = msg;
                }
            }
        }
        for (ivp, r, _) in ivp_results {
            let deny = ivp
                .validation_actions()
                .contains(&crate::cel_policies::validating_policy::ValidationAction::Deny);
            let ignore = ivp.failure_policy()
                == crate::cel_policies::validating_policy::FailurePolicy::Ignore;
            let blocks = match r.status {
                RuleStatus::Fail => deny,
                RuleStatus::Error => deny && !ignore,
                _ => false,
            };
            if blocks {
                blocked
                    .entry(ivp.name().to_owned())
                    .or_default()
                    .insert(r.rule.clone(), r.message.clone());
                blocking.push(r.clone());
            } else if matches!(r.status, RuleStatus::Fail | RuleStatus::Error) {
                warnings.push(format!("policy {}: {}", ivp.name(), r.message));
            }
            results.push(r);
        }
        // GeneratingPolicies generate in the background: never blocking, never warning.
        for gp in self.generating() {
            let mut resp = gp.evaluate(prepared.cel_input());
            generated.append(&mut resp.generated);
            results.append(&mut resp.rules);
        }
        // ValidatingAdmissionPolicies: the bindings' validationActions decide.
        for vap in self.vaps() {
            let deny = vap.bindings().iter().any(|b| {
                b.validation_actions
                    .contains(&crate::cel_policies::validating_policy::ValidationAction::Deny)
            });
            for r in vap.evaluate(prepared.cel_input(), &[]) {
                if matches!(r.status, RuleStatus::Fail | RuleStatus::Error) {
                    if deny {
                        blocked
                            .entry(vap.name().to_owned())
                            .or_default()
                            .insert(r.rule.clone(), r.message.clone());
                        blocking.push(r.clone());
                    } else {
                        warnings.push(format!("policy {}: {}", vap.name(), r.message));
                    }
                }
                results.push(r);
            }
        }
        let message = if blocked.is_empty() {
            String::new()
        } else {
            let mut body = String::new();
            for (policy, rules) in &blocked {
                body.push_str(&format!("{policy}:\n"));
                for (rule, msg) in rules {
                    body.push_str(&format!("  {rule}: {}\n", yaml_scalar(msg)));
                }
            }
            format!(
                "\n\nresource {}/{}/{} was blocked due to the following policies \n\n{body}",
                input.kind(),
                input.namespace(),
                input.name()
            )
        };
        let mut patches: Vec<Value> = prepared
            .image_outcomes()
            .into_iter()
            .flat_map(|o| o.patches)
            .collect();
        for p in ivp_patches {
            if !patches.iter().any(|x| x["path"] == p["path"]) {
                patches.push(p);
            }
        }
        Decision {
            allowed: blocked.is_empty(),
            message,
            warnings,
            results,
            patches,
            blocking,
            generated,
            mutation_patches: Vec::new(),
            mutation_blocking: Vec::new(),
            mutated_targets: Vec::new(),
        }
    }

    /// The mutating admission step: every policy's `mutate` rules in order (each policy sees
    /// the previous one's output), then the decision of [`PolicySet::decide_with`] on the
    /// mutated object, with the RFC 6902 patch from the submitted object to the mutated one in
    /// `mutation_patches`. A mutate `error` blocks (`mutation_blocking`) once a policy with
    /// `failurePolicy: Fail` has been applied, as Kyverno's mutating webhook decides. Rules with
    /// `mutate.targets` are evaluated against `env`'s cluster data after each policy's other
    /// mutate rules, and MutatingPolicies with `mutateExisting` against the same data before
    /// their mutations apply to the request: their results go to `results` and their patched
    /// targets to `mutated_targets`, never blocking (Kyverno applies them after admission).
    pub fn decide_mutating(
        &self,
        input: &ResourceInput,
        env: &Env,
        images: Option<&crate::kyverno::verify_images::VerifyImagesContext<'_>>,
    ) -> Decision {
        let vars = Variables::default();
        let exceptions = self.exceptions();
        let mut current = input.clone();
        let mut results = Vec::new();
        let mut blocking = Vec::new();
        let mut warnings = Vec::new();
        let mut fail_policy = false;
        let mut mutated_targets = Vec::new();
        for policy in self.kyverno() {
            if !policy.has_mutate() {
                continue;
            }
            fail_policy |= !policy.failure_policy_ignore;
            let (resp, object) = policy.mutate(&current, &vars, env, &exceptions);
            // Mutate-existing rules: reported and their targets returned, never blocking
            // (Kyverno applies them in the background, after admission).
            if policy.has_mutate_existing() {
                let existing = policy.mutate_existing(&current, &vars, env, &exceptions);
                results.extend(existing.response.rules);
                mutated_targets.extend(existing.targets);
            }
            for r in resp.rules {
                if matches!(r.status, RuleStatus::Error | RuleStatus::Fail) {
                    if fail_policy {
                        blocking.push(r.clone());
                    } else {
                        warnings.push(format!("policy {}.{}: {}", policy.name, r.rule, r.message));
                    }
                }
                results.push(r);
            }
            current.object = object;
        }
        // CEL mutation policies after the ClusterPolicies' mutate rules, in the order
        // `kyverno test` applies them: MutatingAdmissionPolicies, then MutatingPolicies.
        let mut cel = crate::cel_policies::mutating_policy::admission::mutate(
            &self.policies,
            &mut current,
            env.cluster.as_deref(),
        );
        results.append(&mut cel.results);
        blocking.append(&mut cel.blocking);
        warnings.append(&mut cel.warnings);
        mutated_targets.append(&mut cel.targets);
        let mut d = self.decide_with(&current, env, images);
        d.mutation_patches =
            crate::kyverno::mutate::json_patch::diff(&input.object, &current.object);
        results.append(&mut d.results);
        d.results = results;
        warnings.append(&mut d.warnings);
        d.warnings = warnings;
        d.mutation_blocking = blocking;
        d.mutated_targets = mutated_targets;
        d
    }
}

/// The `status` of a denied AdmissionResponse: code 403, Kyverno's message, and one
/// `details.causes` entry per blocking result (`reason`: its machine code, `field`:
/// `<policy>/<rule>`), so callers and tests can tell why without parsing the message.
pub fn denied_status(d: &Decision) -> Value {
    let causes: Vec<Value> = d
        .blocking_codes()
        .into_iter()
        .map(|(code, field)| json!({"reason": code, "field": field}))
        .collect();
    json!({"code": 403, "message": d.message, "status": "Failure", "reason": "Forbidden",
        "details": {"causes": causes}})
}

/// Quotes a message as a single-quoted YAML scalar when needed (Kyverno encodes with YAML).
fn yaml_scalar(s: &str) -> String {
    let plain = !s.is_empty()
        && !s.contains([
            ':', '#', '\'', '"', '\n', '{', '}', '[', ']', ',', '&', '*', '!', '|', '>', '%', '@',
            '`',
        ])
        && !s.starts_with([' ', '-', '?'])
        && !s.ends_with(' ');
    if plain {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "''"))
    }
}

/// Builds a [`ResourceInput`] from an AdmissionReview's `request`. With `request_info`
/// `None` the requester's roles are unknown ([`ResourceInput::roles_unknown`]): rules that
/// match on `roles` / `clusterRoles` then error rather than silently not matching. Set
/// [`ResourceInput::namespace_labels_unknown`] when `namespace_labels` is not the namespace's
/// real label set.
pub fn input_from_review(
    review: &Value,
    namespace_labels: BTreeMap<String, String>,
    request_info: Option<RequestInfo>,
) -> Result<ResourceInput, Error> {
    let req = review.get("request").ok_or_else(|| Error::InvalidRequest {
        reason: "missing request".into(),
    })?;
    input_from_request(req.clone(), namespace_labels, request_info)
}

/// [`input_from_review`] taking the AdmissionReview by value: the request's objects are moved
/// into the [`ResourceInput`], not copied.
pub fn input_from_review_owned(
    mut review: Value,
    namespace_labels: BTreeMap<String, String>,
    request_info: Option<RequestInfo>,
) -> Result<ResourceInput, Error> {
    let req = review
        .get_mut("request")
        .map(Value::take)
        .ok_or_else(|| Error::InvalidRequest {
            reason: "missing request".into(),
        })?;
    input_from_request(req, namespace_labels, request_info)
}

/// The request model of an admission `request` (the `request` field of an AdmissionReview),
/// with no namespace labels and unknown roles.
pub(crate) fn request_input(req: Value) -> Result<ResourceInput, Error> {
    if !req.is_object() {
        return Err(Error::InvalidRequest {
            reason: "admission request is not an object".into(),
        });
    }
    input_from_request(req, BTreeMap::new(), None)
}

fn input_from_request(
    mut req: Value,
    namespace_labels: BTreeMap<String, String>,
    request_info: Option<RequestInfo>,
) -> Result<ResourceInput, Error> {
    let bad = |reason: &str| Error::InvalidRequest {
        reason: reason.to_owned(),
    };
    let op = req
        .get("operation")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("missing request.operation"))?;
    let operation = Operation::parse(op).ok_or_else(|| bad("unknown request.operation"))?;
    let mut take = |k: &str| {
        req.get_mut(k)
            .map(Value::take)
            .filter(|o: &Value| !o.is_null())
    };
    let (object, old_object) = (take("object"), take("oldObject"));
    // `userInfo: null` is refused below as before, not taken for an empty user.
    let user_info = req.get_mut("userInfo").map(Value::take);
    let object = match (object, operation) {
        (Some(o), _) => o,
        (None, Operation::Delete) => old_object
            .clone()
            .ok_or_else(|| bad("DELETE without oldObject"))?,
        _ => return Err(bad("missing request.object")),
    };
    if !object.is_object() {
        return Err(bad("request.object is not an object"));
    }
    let user_info: UserInfo = match user_info {
        Some(u) => serde_json::from_value(u).map_err(|e| Error::InvalidRequest {
            reason: format!("request.userInfo: {e}"),
        })?,
        None => UserInfo::default(),
    };
    // Without a caller's RBAC look-up the requester's roles are unknown, not empty.
    let roles_unknown = request_info.is_none();
    let mut info = request_info.unwrap_or_default();
    info.user_info = user_info;
    let kind = req.get("kind");
    let g = |k: &str| {
        kind.and_then(|x| x.get(k))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let mut input = ResourceInput::create(object);
    input.old_object = old_object;
    input.operation = operation;
    input.request_info = info;
    input.namespace_labels = namespace_labels;
    input.roles_unknown = roles_unknown;
    input.request_namespace = req
        .get("namespace")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    input.subresource = req
        .get("subResource")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    input.uid = req
        .get("uid")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    input.dry_run = req.get("dryRun").and_then(Value::as_bool).unwrap_or(false);
    if kind.is_some() {
        input.gvk_override = Some((g("group"), g("version"), g("kind")));
    }
    if let Some(res) = req.get("resource").filter(|r| r.is_object()) {
        let r = |k: &str| {
            res.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let (group, version, plural) = (r("group"), r("version"), r("resource"));
        // A subresource request is matched against its top-level kind (Kyverno resolves it
        // from request.resource): `Pod/exec` for a PodExecOptions, `Deployment/scale` for an
        // autoscaling/v1 Scale.
        if !input.subresource.is_empty() {
            let parent = crate::admission::request::kind_of_resource(&plural)
                .map(str::to_owned)
                .or_else(|| {
                    let k = g("kind");
                    (crate::cel_policies::validating_policy::kind_to_resource(&k) == plural)
                        .then_some(k)
                });
            if let Some(kind) = parent {
                input.gvk_override = Some((group.clone(), version.clone(), kind));
            }
        }
        input.request_resource = Some((group, version, plural));
    }
    Ok(input)
}
