//! The front door: one AdmissionReview in, the AdmissionReview to answer with out.
//!
//! An admission webhook built on this crate does four things per request, and this module does
//! each in one call:
//!
//! 1. [`Review::parse`] checks the AdmissionReview (`admission.k8s.io/v1`) and builds the
//!    request model, with the [`RequestFacts`] the API server does not send (the namespace's
//!    labels, the requester's roles). A fact the caller does not know stays *unknown*, and a
//!    rule that depends on it is an `error`, never a silent non-match.
//! 2. [`PolicySet::image_requests_for`] says which images need evidence (for `verifyImages`
//!    and ImageValidatingPolicies); the caller gathers it (`provenance-oci`, or
//!    `respond_online` with the `oci` feature, which does it with a deadline).
//! 3. [`PolicySet::respond`] decides, sans I/O, and builds the complete response: `allowed`,
//!    the `status` of a denial (Kyverno's message, one machine code per blocking rule in
//!    `details.causes`), `warnings`, `auditAnnotations`, and for the mutating phase the
//!    RFC 6902 patch that pins verified images to their digests (`patchType: JSONPatch`).
//! 4. The caller writes [`Answer::review`] back (or, with the `kube` feature,
//!    `Answer::to_kube` gives kube-rs's `AdmissionResponse`).
//!
//! ```
//! use provenance_policy::admission::PolicySet;
//! use provenance_policy::lang::jmespath::Env;
//! use provenance_policy::admission::review::{Phase, RequestFacts, Review};
//! use provenance_policy::core::UnixTime;
//!
//! let mut policies = PolicySet::default();
//! policies.add_yaml(r#"
//! apiVersion: kyverno.io/v1
//! kind: ClusterPolicy
//! metadata: {name: require-team}
//! spec:
//!   validationFailureAction: Enforce
//!   rules:
//!     - name: team-label
//!       match: {any: [{resources: {kinds: [Pod]}}]}
//!       validate:
//!         message: "a team label is required"
//!         pattern: {metadata: {labels: {team: "?*"}}}
//! "#, "policy.yaml")?;
//! let body = br#"{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
//!   "request": {"uid": "42", "operation": "CREATE", "namespace": "ml",
//!     "kind": {"group": "", "version": "v1", "kind": "Pod"},
//!     "resource": {"group": "", "version": "v1", "resource": "pods"},
//!     "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "ml"},
//!                "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}"#;
//! let facts = RequestFacts::new().namespace_labels([("team", "ml")]);
//! let review = Review::from_slice(body, &facts)?;
//! assert!(policies.image_requests_for(&review).is_empty());
//! let answer = policies.respond(&review, Phase::Validate, None, &Env::at(UnixTime(1_800_000_000)));
//! assert!(!answer.decision.allowed);
//! assert_eq!(answer.review["response"]["uid"], "42");
//! assert_eq!(answer.review["response"]["status"]["details"]["causes"][0]["field"], "require-team/team-label");
//! # Ok::<(), provenance_policy::Error>(())
//! ```

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::{Value, json};

use crate::Error;
use crate::admission::request::{RequestInfo, ResourceInput};
use crate::admission::{Decision, PolicySet, denied_status, input_from_review_owned};
use crate::kyverno::verify_images::{ImageRequest, VerifyImagesContext};
use crate::lang::jmespath::Env;

/// Largest AdmissionReview [`Review::from_slice`] reads (the API server sends at most 3 MiB of
/// object, twice for an UPDATE).
pub const MAX_REVIEW_BYTES: usize = 8 << 20;

/// The audit annotation that carries the decision's machine codes.
pub const AUDIT_ANNOTATION: &str = "provenance.dev/decision";

/// What the API server does not send with a request and the caller may know. Each fact left
/// unset is **unknown**: a rule that needs it (`namespaceSelector`, `roles`/`clusterRoles`) is
/// an `error` instead of silently not matching.
///
/// - The namespace's labels come from the Namespace object (a kube-rs `Api<Namespace>` with a
///   reflector cache in a webhook; `kubectl get ns NAME -o json` in a script).
/// - The requester's Roles and ClusterRoles come from the RoleBindings and ClusterRoleBindings
///   naming the user or one of their groups (`request.userInfo`); Kyverno computes them the
///   same way from its RBAC informers.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct RequestFacts {
    /// The labels of the request's namespace.
    pub namespace_labels: Option<BTreeMap<String, String>>,
    /// The requester's namespaced roles (`namespace:role`) and cluster roles.
    pub roles: Option<(Vec<String>, Vec<String>)>,
}

impl RequestFacts {
    /// No facts known.
    pub fn new() -> Self {
        Self::default()
    }

    /// The namespace's complete label set.
    pub fn namespace_labels<K: Into<String>, V: Into<String>>(
        mut self,
        labels: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.namespace_labels = Some(
            labels
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        );
        self
    }

    /// The requester's complete roles (`namespace:role`) and cluster roles.
    pub fn roles(
        mut self,
        roles: impl IntoIterator<Item = impl Into<String>>,
        cluster_roles: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        self.roles = Some((
            roles.into_iter().map(Into::into).collect(),
            cluster_roles.into_iter().map(Into::into).collect(),
        ));
        self
    }
}

/// Which admission webhook the answer is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// A mutating webhook: never denies; answers with the patch pinning verified images to
    /// their digests (Kyverno's `mutateDigest`).
    Mutate,
    /// A validating webhook: denies what the policies block, and an image that verification
    /// would still pin (the object the API server stores must carry the digest:
    /// [`Decision::validating`]).
    Validate,
}

/// A checked AdmissionReview and the request model built from it.
#[derive(Debug, Clone)]
pub struct Review {
    input: ResourceInput,
    uid: Value,
}

impl Review {
    /// Reads an AdmissionReview from its JSON bytes (at most [`MAX_REVIEW_BYTES`]).
    pub fn from_slice(bytes: &[u8], facts: &RequestFacts) -> Result<Self, Error> {
        if bytes.len() > MAX_REVIEW_BYTES {
            return Err(Error::InvalidRequest {
                reason: format!("AdmissionReview larger than {MAX_REVIEW_BYTES} bytes"),
            });
        }
        let v: Value = serde_json::from_slice(bytes).map_err(|e| Error::InvalidRequest {
            reason: format!("invalid AdmissionReview JSON: {e}"),
        })?;
        Self::from_value(v, facts)
    }

    /// [`Review::parse`] taking the AdmissionReview by value: its objects are moved into the
    /// request model instead of copied (the webhook's path: parsed once, never copied).
    pub fn from_value(review: Value, facts: &RequestFacts) -> Result<Self, Error> {
        let (uid, info) = Self::check(&review, facts)?;
        let mut input = input_from_review_owned(
            review,
            facts.namespace_labels.clone().unwrap_or_default(),
            info,
        )?;
        input.namespace_labels_unknown = facts.namespace_labels.is_none();
        Ok(Review { input, uid })
    }

    /// Checks an AdmissionReview (`apiVersion: admission.k8s.io/v1`, `kind: AdmissionReview`,
    /// a `request` with a `uid`) and builds the request model with `facts`.
    /// The objects are copied; [`Review::from_value`] moves them instead.
    pub fn parse(review: &Value, facts: &RequestFacts) -> Result<Self, Error> {
        Self::check(review, facts)?;
        Self::from_value(review.clone(), facts)
    }

    /// The checks of [`Review::parse`]: the review's type, its request `uid`; and the
    /// requester's roles from `facts`.
    fn check(review: &Value, facts: &RequestFacts) -> Result<(Value, Option<RequestInfo>), Error> {
        let bad = |reason: String| Error::InvalidRequest { reason };
        match review.get("apiVersion").and_then(Value::as_str) {
            Some("admission.k8s.io/v1") => {}
            other => {
                return Err(bad(format!(
                    "unsupported apiVersion {other:?}: admission.k8s.io/v1 is expected"
                )));
            }
        }
        if review.get("kind").and_then(Value::as_str) != Some("AdmissionReview") {
            return Err(bad("kind must be AdmissionReview".into()));
        }
        let uid = review
            .pointer("/request/uid")
            .filter(|u| u.as_str().is_some_and(|s| !s.is_empty()))
            .cloned()
            .ok_or_else(|| bad("request.uid is missing".into()))?;
        let info = facts.roles.as_ref().map(|(r, c)| RequestInfo {
            roles: r.clone(),
            cluster_roles: c.clone(),
            ..RequestInfo::default()
        });
        Ok((uid, info))
    }

    /// The request model (resource, old object, operation, user, facts).
    pub fn input(&self) -> &ResourceInput {
        &self.input
    }

    /// The request's `uid`, echoed in the response.
    pub fn uid(&self) -> &Value {
        &self.uid
    }
}

/// The answer to one AdmissionReview.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Answer {
    /// The decision behind it (every rule result, the blocking ones, warnings, patches).
    pub decision: Decision,
    /// The AdmissionReview to send back (`response` filled in).
    pub review: Value,
    /// The RFC 6902 operations the answer's `patch` carries (mutating answers only; empty
    /// otherwise): apply them to `request.object` with
    /// [`crate::kyverno::mutate::json_patch::apply`] to get the object the API server goes on with,
    /// e.g. to validate it next as the API server's validating webhook call would.
    pub patch: Vec<Value>,
}

impl Answer {
    /// Builds the AdmissionReview answering `uid` with `decision` for `phase`.
    fn new(uid: &Value, decision: Decision, phase: Phase) -> Self {
        let decision = match phase {
            Phase::Validate => decision.validating(),
            Phase::Mutate => decision,
        };
        // The mutating step denies only when a mutation failed under `failurePolicy: Fail`;
        // validation failures are the validating step's.
        let allowed = match phase {
            Phase::Mutate => decision.mutation_blocking.is_empty(),
            Phase::Validate => decision.allowed,
        };
        let mut response = json!({"uid": uid, "allowed": allowed});
        if !allowed && phase == Phase::Mutate {
            let mut d = decision.clone();
            d.blocking = decision.mutation_blocking.clone();
            d.message = decision
                .mutation_blocking
                .iter()
                .map(|r| {
                    format!(
                        "mutation policy {} rule {} failed: {}",
                        r.policy, r.rule, r.message
                    )
                })
                .collect::<Vec<_>>()
                .join("; ");
            response["status"] = denied_status(&d);
        } else if !allowed {
            response["status"] = denied_status(&decision);
        }
        if !decision.warnings.is_empty() {
            response["warnings"] = json!(decision.warnings);
        }
        let mut ops = Vec::new();
        if phase == Phase::Mutate
            && allowed
            && (!decision.patches.is_empty() || !decision.mutation_patches.is_empty())
        {
            // The mutate rules' patch first; the digest pins were computed on its output.
            ops = decision.mutation_patches.clone();
            ops.extend(decision.patches.iter().cloned());
            let patch = serde_json::to_string(&ops).unwrap_or_default();
            response["patchType"] = json!("JSONPatch");
            response["patch"] = json!(base64::engine::general_purpose::STANDARD.encode(patch));
        }
        if phase == Phase::Validate
            && (!decision.blocking.is_empty() || !decision.warnings.is_empty())
        {
            response["auditAnnotations"] = json!({ AUDIT_ANNOTATION: audit_value(&decision) });
        }
        Answer {
            review: json!({
                "apiVersion": "admission.k8s.io/v1",
                "kind": "AdmissionReview",
                "response": response,
            }),
            decision,
            patch: ops,
        }
    }

    /// The answer's JSON bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        serde_json::to_vec(&self.review).unwrap_or_default()
    }
}

/// The audit annotation's value: the blocking codes (`code` at `policy/rule`) and the number
/// of warnings, kept under 4 KiB.
fn audit_value(d: &Decision) -> String {
    let causes: Vec<Value> = d
        .blocking_codes()
        .into_iter()
        .map(|(code, field)| json!({"code": code, "at": field}))
        .collect();
    let mut v = json!({"allowed": d.allowed, "blocking": causes, "warnings": d.warnings.len()});
    let mut s = v.to_string();
    while s.len() > 4096 {
        let Some(list) = v["blocking"].as_array_mut() else {
            break;
        };
        if list.pop().is_none() {
            break;
        }
        v["truncated"] = json!(true);
        s = v.to_string();
    }
    s
}

impl PolicySet {
    /// The images of `review` that need evidence, and what evidence each needs.
    pub fn image_requests_for(&self, review: &Review) -> Vec<ImageRequest> {
        self.image_requests(review.input())
    }

    /// Decides `review` and builds the complete answer for `phase`, sans I/O. `images` is the
    /// gathered evidence and the verifier; without it every `verifyImages` rule and
    /// ImageValidatingPolicy that covers an image is an `error` saying the evidence is missing
    /// (an enforced one denies), never a pass.
    pub fn respond(
        &self,
        review: &Review,
        phase: Phase,
        images: Option<&VerifyImagesContext<'_>>,
        env: &Env,
    ) -> Answer {
        let decision = match phase {
            Phase::Mutate => self.decide_mutating(review.input(), env, images),
            Phase::Validate => self.decide_with(review.input(), env, images),
        };
        Answer::new(review.uid(), decision, phase)
    }
}

/// Gathers the evidence `review` needs from `source` and answers it, all within `deadline`.
/// When the deadline passes first the request is denied (fail closed: `policy.deadline_exceeded`
/// in the status causes), in the mutating phase as in the validating one, with no patch. Registry failures inside the
/// deadline are `error` results of the rules that needed the evidence.
#[cfg(feature = "oci")]
pub async fn respond_online<S>(
    policies: &PolicySet,
    review: &Review,
    phase: Phase,
    source: std::sync::Arc<S>,
    verifier: &provenance_core::verify::Verifier,
    deadline: std::time::Duration,
    now: provenance_core::UnixTime,
) -> Answer
where
    S: provenance_oci::source::EvidenceSource + 'static,
{
    let Some(evidence) = gather_online(policies, review, source, deadline).await else {
        return deadline_exceeded(review, phase, deadline);
    };
    let cx = VerifyImagesContext::new(&evidence, verifier, now);
    policies.respond(review, phase, Some(&cx), &Env::at(now))
}

/// The first half of [`respond_online`]: the evidence `review` needs, gathered from `source`
/// within `deadline`, or `None` when the deadline passed first (answer with
/// [`deadline_exceeded`]). A caller whose [`Env`] reads live cluster data calls this, then
/// [`PolicySet::respond`] where blocking is allowed (the evaluation is synchronous, and so are
/// its cluster look-ups).
#[cfg(feature = "oci")]
pub async fn gather_online<S>(
    policies: &PolicySet,
    review: &Review,
    source: std::sync::Arc<S>,
    deadline: std::time::Duration,
) -> Option<BTreeMap<String, crate::kyverno::verify_images::ImageEvidence>>
where
    S: provenance_oci::source::EvidenceSource + 'static,
{
    let requests = policies.image_requests_for(review);
    if requests.is_empty() {
        return Some(BTreeMap::new());
    }
    tokio::time::timeout(
        deadline,
        crate::admission::gather::gather(source, &requests, 8),
    )
    .await
    .ok()
}

/// The answer when evidence was not gathered within `deadline`: a denial (fail closed), with
/// `policy.deadline_exceeded` in the status causes and no patch, in the mutating phase as in
/// the validating one.
#[cfg(feature = "oci")]
pub fn deadline_exceeded(review: &Review, phase: Phase, deadline: std::time::Duration) -> Answer {
    use provenance_core::{Reason, RuleResult, RuleStatus};
    let msg = format!(
        "evidence was not gathered within the deadline of {} ms; denied (fail closed)",
        deadline.as_millis()
    );
    let r = RuleResult::new(
        "provenance",
        "deadline",
        crate::kyverno::engine::resource_ref(review.input()),
        RuleStatus::Error,
        msg.clone(),
    )
    .with_reason(Reason::new("policy.deadline_exceeded", &msg));
    let decision = Decision {
        allowed: false,
        message: msg,
        warnings: Vec::new(),
        results: vec![r.clone()],
        patches: Vec::new(),
        blocking: vec![r.clone()],
        generated: Vec::new(),
        mutation_patches: Vec::new(),
        // The mutating answer denies too (fail closed): without evidence nothing is pinned,
        // and the request must not go on as if its images had been checked.
        mutation_blocking: vec![r],
        mutated_targets: Vec::new(),
    };
    Answer::new(review.uid(), decision, phase)
}

#[cfg(feature = "kube")]
mod kube_types {
    use kube_core::admission::{
        AdmissionResponse, AdmissionReview, META_API_VERSION_V1, META_KIND,
    };
    use kube_core::{DynamicObject, TypeMeta};

    use base64::Engine as _;

    use super::{Answer, RequestFacts, Review};
    use crate::Error;

    impl Review {
        /// Reads kube-rs's typed AdmissionReview.
        pub fn from_kube(
            review: &AdmissionReview<DynamicObject>,
            facts: &RequestFacts,
        ) -> Result<Self, Error> {
            let v = serde_json::to_value(review).map_err(|e| Error::InvalidRequest {
                reason: format!("cannot read the AdmissionReview: {e}"),
            })?;
            Review::from_value(v, facts)
        }
    }

    impl Answer {
        /// The answer as kube-rs's `AdmissionResponse` (`into_review()` wraps it for the
        /// reply, as `admission.k8s.io/v1` `AdmissionReview`).
        pub fn to_kube(&self) -> Result<AdmissionResponse, Error> {
            let mut response = self.review.get("response").cloned().unwrap_or_default();
            // kube-rs holds the patch as bytes (serialized as a JSON array of numbers, which
            // the API server reads too); the answer holds it in base64.
            if let Some(patch) = response.get_mut("patch") {
                let bytes = patch
                    .as_str()
                    .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
                    .ok_or_else(|| Error::InvalidRequest {
                        reason: "the answer's patch is not base64".into(),
                    })?;
                *patch = serde_json::Value::from(bytes);
            }
            // kube-rs requires a status, also on an allowed answer (where it is empty).
            if let Some(fields) = response.as_object_mut() {
                fields
                    .entry("status")
                    .or_insert_with(|| serde_json::Value::Object(Default::default()));
            }
            let mut r: AdmissionResponse =
                serde_json::from_value(response).map_err(|e| Error::InvalidRequest {
                    reason: format!("cannot build kube-rs's AdmissionResponse: {e}"),
                })?;
            // kube-rs does not read the type of a response (its `types` are skipped by serde),
            // and `into_review()` copies them into the reply, where the API server requires
            // them.
            r.types = TypeMeta {
                api_version: META_API_VERSION_V1.to_owned(),
                kind: META_KIND.to_owned(),
            };
            Ok(r)
        }
    }
}
