//! Kyverno's `ImageValidatingPolicy` (`policies.kyverno.io/v1`, also `v1beta1` and
//! `v1alpha1`; `NamespacedImageValidatingPolicy` too), sans-IO.
//!
//! The policy's CEL `validations` call Kyverno's image verification functions; here they verify
//! evidence the caller gathered beforehand, in the same three steps as `verifyImages`
//! ([`crate::verify_images`]):
//!
//! 1. [`ImageValidatingPolicy::image_requests`] lists the images the policy would verify (after
//!    `matchConstraints`, `matchConditions`, image extraction and `matchImageReferences`) and
//!    the evidence they need (signatures when the policy has attestors, the in-toto predicate
//!    types of its `attestations`). [`crate::admission::PolicySet::image_requests`] includes them.
//! 2. The caller gathers an [`ImageEvidence`] per image (`provenance-oci`, or a test).
//! 3. [`ImageValidatingPolicy::evaluate`] runs the policy with a [`VerifyImagesContext`];
//!    [`crate::admission::PolicySet::decide_with`] also pins tags to digests (`mutateDigest`) and
//!    enforces `validationConfigurations.required` across the request's policies.
//!
//! Evaluation follows Kyverno's ImageValidatingPolicy engine:
//!
//! * `matchConstraints` as for a ValidatingPolicy (no match: no result); `matchConditions`
//!   false: no result (an error: `error` unless `failurePolicy: Ignore`); CEL
//!   PolicyExceptions naming the policy (kind `ImageValidatingPolicy`) turn it into `skip`.
//! * Images are extracted per resource kind (`containers`, `initContainers`,
//!   `ephemeralContainers` of Pods, of Pod templates in Deployments, StatefulSets, DaemonSets,
//!   ReplicaSets and Jobs, and of CronJob job templates) plus the policy's own `images`
//!   extractors, then filtered by `matchImageReferences` (globs, as gobwas/glob matches them,
//!   and CEL expressions over `ref`); no `matchImageReferences`: every image.
//! * `verifyDigest` (default true): a matched image without a digest fails
//!   (`image X does not have a digest`).
//! * `validations` in order with lazily evaluated `variables`; `images`, `attestors` and
//!   `attestations` are bound. The first false one fails with its message
//!   (`messageExpression`, `message`, else `CEL expression validation failed at index N`); an
//!   evaluation error is an `error` result (rule `evaluation`, `failed to evaluate policy: ...`).
//!   Results carry the policy name as rule name and `success` when all hold.
//! * `verifyImageSignatures(image, [attestors...])` and
//!   `verifyAttestationSignatures(image, attestation, [attestors...])` return how many of the
//!   given attestors verified (0 for an image outside `matchImageReferences`); an attestor that
//!   does not verify is not an error. Missing evidence is an evaluation error.
//!   `extractPayload(image, attestation)` returns the in-toto statement an earlier
//!   `verifyAttestationSignatures` call verified.
//!
//! Cosign attestors: `key.data` (PEM public keys; `ctlog.insecureIgnoreTlog` accepts
//! signatures without transparency evidence), `keyless.identities` (exact `subject` and
//! `issuer`, `subjectRegExp`, `issuerRegExp`, `additionalExtensions`) against the caller's
//! trust root, `annotations` on cosign signature payloads. Differences, all fail-closed and
//! reported as [`crate::Error::Unsupported`]-coded errors when used: Notary attestors,
//! `key.kms` and `key.expression`, `certificate`, `trustedRoot`, `tuf`, `source`, `keyless.roots`,
//! custom `ctlog` keys, `insecureIgnoreSCT`, `subjectExpression`, keyless attestors without
//! identities, `referrer` attestations with Notary, `getImageData`, `evaluation.mode: JSON`,
//! `credentials` (the caller's registry configuration applies). `autogen` for Pod controllers
//! is not generated: match Pod controllers in `matchConstraints` (the image extractors follow
//! the resource kind).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::Arc;

use provenance_core::outcome::{Reason, RuleResult, RuleStatus};
use provenance_core::verify::{Expectation, IdentityExpectation, SignatureMaterial};
use provenance_core::{Digest, PublicKey};
use serde_json::{Value as Json, json};

use crate::Error;
use crate::cel::value::{cel_to_json, json_to_cel};
use crate::cel::{
    AuditAnnotation, Dialect, ImageBinding, ImageScope, KyvernoFn, MatchConditions, NamedProgram,
    PolicyInput, Program, RequestView, Validation, Value, Variable, VariableScope, check_variables,
    compile_audit_annotations_in, compile_named_in, compile_validations_in, compile_variables_in,
    evaluate_audit_annotations, evaluate_match_conditions, str_field,
};
use crate::context::{image_info, images_of};
use crate::engine::UNSUPPORTED;
use crate::validating_policy::{
    CelPolicyException, FailurePolicy, MatchConstraints, ValidationAction,
};
use crate::verify_images::{ImageEvidence, ImageRequest, VerifyImagesContext};

/// Extracted images by extractor name.
type Categories = BTreeMap<String, Vec<String>>;

/// How a `matchImageReferences` entry matches.
#[derive(Debug)]
enum ImageMatcher {
    /// A gobwas/glob pattern, compiled to an anchored regular expression.
    Glob(regex::Regex),
    /// A CEL expression over `ref`.
    Expression(Program),
}

/// An entry of `spec.attestations`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Attestation {
    /// `intoto.type`: an in-toto predicate type.
    InToto(String),
    /// `referrer.type`: an OCI 1.1 referrer artifact type.
    Referrer(String),
}

/// A compiled ImageValidatingPolicy.
#[derive(Debug)]
pub struct ImageValidatingPolicy {
    name: String,
    kind: String,
    api_version: String,
    match_constraints: Option<MatchConstraints>,
    match_conditions: Vec<NamedProgram>,
    variables: Vec<Variable>,
    validations: Vec<Validation>,
    audit_annotations: Vec<AuditAnnotation>,
    match_images: Vec<ImageMatcher>,
    extractors: Vec<(String, Program)>,
    default_extractors: Vec<(String, Program)>,
    attestors: Json,
    attestations: BTreeMap<String, Attestation>,
    attestation_names: Json,
    validation_actions: Vec<ValidationAction>,
    failure_policy: FailurePolicy,
    mutate_digest: bool,
    verify_digest: bool,
    required: bool,
    exceptions: Vec<Arc<CelPolicyException>>,
}

const SPEC_FIELDS: &[&str] = &[
    "matchConstraints",
    "matchConditions",
    "matchImageReferences",
    "images",
    "attestors",
    "attestations",
    "variables",
    "validations",
    "auditAnnotations",
    "validationActions",
    "failurePolicy",
    "validationConfigurations",
    "evaluation",
    "webhookConfiguration",
    "autogen",
    "credentials",
];

/// Translates a gobwas/glob pattern (no separators: `*` also matches `/`) to an anchored
/// regular expression: `*`, `?`, `[abc]`, `[!a-z]`, `{a,b}` and `\` escapes.
fn glob_to_regex(glob: &str) -> Result<regex::Regex, String> {
    let mut re = String::from("(?s)^");
    let mut chars = glob.chars().peekable();
    let mut braces = 0usize;
    while let Some(c) = chars.next() {
        match c {
            '*' => re.push_str(".*"),
            '?' => re.push('.'),
            '\\' => match chars.next() {
                Some(n) => re.push_str(&regex::escape(&n.to_string())),
                None => return Err("trailing escape".into()),
            },
            '{' => {
                braces += 1;
                re.push_str("(?:");
            }
            '}' if braces > 0 => {
                braces -= 1;
                re.push(')');
            }
            ',' if braces > 0 => re.push('|'),
            '[' => {
                let mut class = String::from("[");
                if chars.peek() == Some(&'!') {
                    chars.next();
                    class.push('^');
                }
                let mut closed = false;
                for n in chars.by_ref() {
                    match n {
                        ']' => {
                            closed = true;
                            break;
                        }
                        '-' => class.push('-'),
                        other => class.push_str(&regex::escape(&other.to_string())),
                    }
                }
                if !closed {
                    return Err("unclosed character class".into());
                }
                class.push(']');
                re.push_str(&class);
            }
            other => re.push_str(&regex::escape(&other.to_string())),
        }
    }
    if braces > 0 {
        return Err("unclosed alternatives".into());
    }
    re.push('$');
    regex::Regex::new(&re).map_err(|e| e.to_string())
}

/// The cosign short names of predicate types (`cosign attest --type`).
fn predicate_type(t: &str) -> String {
    match t {
        "slsaprovenance" | "slsaprovenance02" => "https://slsa.dev/provenance/v0.2",
        "slsaprovenance1" => "https://slsa.dev/provenance/v1",
        "spdx" | "spdxjson" => "https://spdx.dev/Document",
        "cyclonedx" => "https://cyclonedx.org/bom",
        "link" => "https://in-toto.io/Link/v1",
        "vuln" => "https://cosign.sigstore.dev/attestation/vuln/v1",
        "openvex" => "https://openvex.dev/ns",
        "custom" => "https://cosign.sigstore.dev/attestation/v1",
        other => other,
    }
    .to_owned()
}

/// Default image extractors by the requested resource, as Kyverno compiles them.
fn default_extractor_sources(group: &str, version: &str, resource: &str) -> Option<&'static str> {
    match (group, version, resource) {
        ("", "v1", "pods") => Some("spec"),
        ("batch", "v1", "jobs")
        | ("apps", "v1", "deployments" | "statefulsets" | "daemonsets" | "replicasets") => {
            Some("spec.template.spec")
        }
        ("batch", "v1", "cronjobs") => Some("spec.jobTemplate.spec.template.spec"),
        _ => None,
    }
}

const DEFAULT_SECTIONS: [&str; 3] = ["containers", "initContainers", "ephemeralContainers"];

fn default_extractors() -> Result<Vec<(String, Program)>, Error> {
    let mut out = Vec::new();
    for prefix in [
        "spec",
        "spec.template.spec",
        "spec.jobTemplate.spec.template.spec",
    ] {
        for section in DEFAULT_SECTIONS {
            let src = format!(
                "(object != null ? object : oldObject).{prefix}.?{section}.orValue([]).map(e, e.image)"
            );
            out.push((
                format!("{prefix}|{section}"),
                Program::compile_in(&src, Dialect::ImagePolicy)?,
            ));
        }
    }
    Ok(out)
}

fn unsupported(policy: &str, what: &str) -> Error {
    Error::Unsupported {
        field: format!("ImageValidatingPolicy {policy}: {what}"),
    }
}

impl ImageValidatingPolicy {
    /// Loads and compiles an ImageValidatingPolicy document.
    pub fn from_value(v: &Json) -> Result<Self, Error> {
        let meta = v.get("metadata");
        let name = meta
            .and_then(|m| str_field(m, "name"))
            .unwrap_or_default()
            .to_owned();
        let namespace = meta
            .and_then(|m| str_field(m, "namespace"))
            .unwrap_or_default();
        let api_version = str_field(v, "apiVersion").unwrap_or_default();
        let kind = str_field(v, "kind").unwrap_or_default();
        let invalid = |policy: &str, path: &str, reason: &str| Error::InvalidPolicy {
            policy: policy.to_owned(),
            path: path.to_owned(),
            reason: reason.to_owned(),
        };
        if !matches!(
            api_version,
            "policies.kyverno.io/v1"
                | "policies.kyverno.io/v1beta1"
                | "policies.kyverno.io/v1alpha1"
        ) {
            return Err(invalid(
                &name,
                "apiVersion",
                "expected policies.kyverno.io/v1, v1beta1 or v1alpha1",
            ));
        }
        let full = match kind {
            "ImageValidatingPolicy" => name.clone(),
            "NamespacedImageValidatingPolicy" => format!("{namespace}/{name}"),
            _ => return Err(invalid(&name, "kind", "expected ImageValidatingPolicy")),
        };
        if name.is_empty() {
            return Err(invalid(&full, "metadata.name", "required"));
        }
        let spec = v
            .get("spec")
            .filter(|s| s.is_object())
            .ok_or_else(|| invalid(&full, "spec", "expected an object"))?;
        let with_policy = |e: Error| match e {
            Error::InvalidPolicy { path, reason, .. } => Error::InvalidPolicy {
                policy: full.clone(),
                path,
                reason,
            },
            other => other,
        };
        for key in spec.as_object().into_iter().flat_map(|m| m.keys()) {
            if !SPEC_FIELDS.contains(&key.as_str()) {
                return Err(unsupported(&full, &format!("spec.{key}")));
            }
        }
        if let Some(mode) = spec.pointer("/evaluation/mode").and_then(Json::as_str)
            && mode != "Kubernetes"
        {
            return Err(unsupported(&full, &format!("spec.evaluation.mode: {mode}")));
        }
        if spec
            .get("credentials")
            .and_then(Json::as_object)
            .is_some_and(|c| c.values().any(|x| !x.is_null()))
        {
            return Err(unsupported(
                &full,
                "spec.credentials (registry credentials are the caller's configuration)",
            ));
        }
        let match_constraints = spec
            .get("matchConstraints")
            .filter(|m| !m.is_null())
            .map(|m| MatchConstraints::from_value(m, "spec.matchConstraints"))
            .transpose()
            .map_err(with_policy)?;
        let dialect = Dialect::ImagePolicy;
        let match_conditions =
            compile_named_in(spec, "matchConditions", "spec", dialect).map_err(with_policy)?;
        let variables = compile_variables_in(spec, "spec", dialect).map_err(with_policy)?;
        let validations =
            compile_validations_in(spec, "validations", "spec", dialect).map_err(with_policy)?;
        let audit_annotations =
            compile_audit_annotations_in(spec, "spec", dialect).map_err(with_policy)?;
        let mut match_images = Vec::new();
        for (i, m) in list(spec, "matchImageReferences").iter().enumerate() {
            let path = format!("spec.matchImageReferences[{i}]");
            if let Some(g) = str_field(m, "glob").filter(|g| !g.is_empty()) {
                let re =
                    glob_to_regex(g).map_err(|e| invalid(&full, &format!("{path}.glob"), &e))?;
                match_images.push(ImageMatcher::Glob(re));
            } else if let Some(e) = str_field(m, "expression").filter(|e| !e.is_empty()) {
                match_images.push(ImageMatcher::Expression(
                    Program::compile_in(e, Dialect::ImageMatch).map_err(with_policy)?,
                ));
            } else {
                return Err(invalid(
                    &full,
                    &path,
                    "either glob or expression must be set",
                ));
            }
        }
        let mut extractors = Vec::new();
        for (i, e) in list(spec, "images").iter().enumerate() {
            let path = format!("spec.images[{i}]");
            let n = str_field(e, "name")
                .filter(|n| !n.is_empty())
                .ok_or_else(|| invalid(&full, &format!("{path}.name"), "required"))?;
            let src = str_field(e, "expression")
                .ok_or_else(|| invalid(&full, &format!("{path}.expression"), "required"))?;
            extractors.push((
                n.to_owned(),
                Program::compile_in(src, dialect).map_err(with_policy)?,
            ));
        }
        let mut attestors = serde_json::Map::new();
        for (i, a) in list(spec, "attestors").iter().enumerate() {
            let n = str_field(a, "name")
                .filter(|n| !n.is_empty())
                .ok_or_else(|| invalid(&full, &format!("spec.attestors[{i}].name"), "required"))?;
            let has = |k: &str| a.get(k).is_some_and(|x| !x.is_null());
            if has("cosign") == has("notary") {
                return Err(invalid(
                    &full,
                    &format!("spec.attestors[{i}]"),
                    "exactly one of cosign or notary must be set",
                ));
            }
            attestors.insert(n.to_owned(), a.clone());
        }
        let mut attestations = BTreeMap::new();
        let mut attestation_names = serde_json::Map::new();
        for (i, a) in list(spec, "attestations").iter().enumerate() {
            let path = format!("spec.attestations[{i}]");
            let n = str_field(a, "name")
                .filter(|n| !n.is_empty())
                .ok_or_else(|| invalid(&full, &format!("{path}.name"), "required"))?;
            let ty = |k: &str| {
                a.get(k)
                    .and_then(|x| str_field(x, "type"))
                    .filter(|t| !t.is_empty())
            };
            let att = match (ty("intoto"), ty("referrer")) {
                (Some(t), None) => Attestation::InToto(predicate_type(t)),
                (None, Some(t)) => Attestation::Referrer(t.to_owned()),
                _ => {
                    return Err(invalid(
                        &full,
                        &path,
                        "exactly one of intoto.type or referrer.type must be set",
                    ));
                }
            };
            attestation_names.insert(n.to_owned(), Json::String(n.to_owned()));
            attestations.insert(n.to_owned(), att);
        }
        check_variables(
            &variables,
            match_conditions
                .iter()
                .map(|m| &m.program)
                .chain(extractors.iter().map(|(_, p)| p))
                .chain(validations.iter().flat_map(|v| {
                    std::iter::once(&v.expression).chain(v.message_expression.iter())
                }))
                .chain(audit_annotations.iter().map(|a| &a.value)),
        )
        .map_err(with_policy)?;
        let mut validation_actions = Vec::new();
        for (i, a) in list(spec, "validationActions").iter().enumerate() {
            validation_actions.push(match a.as_str() {
                Some("Deny") => ValidationAction::Deny,
                Some("Audit") => ValidationAction::Audit,
                Some("Warn") => ValidationAction::Warn,
                _ => {
                    return Err(invalid(
                        &full,
                        &format!("spec.validationActions[{i}]"),
                        "expected Deny, Audit or Warn",
                    ));
                }
            });
        }
        let failure_policy = match str_field(spec, "failurePolicy") {
            None | Some("Fail") => FailurePolicy::Fail,
            Some("Ignore") => FailurePolicy::Ignore,
            Some(_) => {
                return Err(invalid(
                    &full,
                    "spec.failurePolicy",
                    "expected Fail or Ignore",
                ));
            }
        };
        let config = spec.get("validationConfigurations");
        let flag = |k: &str| {
            config
                .and_then(|c| c.get(k))
                .and_then(Json::as_bool)
                .unwrap_or(true)
        };
        Ok(ImageValidatingPolicy {
            name: full.clone(),
            kind: kind.to_owned(),
            api_version: api_version.to_owned(),
            match_constraints,
            match_conditions,
            variables,
            validations,
            audit_annotations,
            match_images,
            extractors,
            default_extractors: default_extractors()?,
            attestors: Json::Object(attestors),
            attestations,
            attestation_names: Json::Object(attestation_names),
            validation_actions,
            failure_policy,
            mutate_digest: flag("mutateDigest"),
            verify_digest: flag("verifyDigest"),
            required: flag("required"),
            exceptions: Vec::new(),
        })
    }

    /// The policy name (`namespace/name` for a NamespacedImageValidatingPolicy).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The `apiVersion` the policy was written in.
    pub fn api_version(&self) -> &str {
        &self.api_version
    }

    /// `spec.validationActions` (`[Audit]` when empty, as Kyverno defaults).
    pub fn validation_actions(&self) -> Vec<ValidationAction> {
        if self.validation_actions.is_empty() {
            vec![ValidationAction::Audit]
        } else {
            self.validation_actions.clone()
        }
    }

    /// `spec.failurePolicy`.
    pub fn failure_policy(&self) -> FailurePolicy {
        self.failure_policy
    }

    /// `validationConfigurations.mutateDigest` (default true).
    pub fn mutate_digest(&self) -> bool {
        self.mutate_digest
    }

    /// `validationConfigurations.required` (default true).
    pub fn required(&self) -> bool {
        self.required
    }

    /// Attaches the exceptions among `exceptions` whose `policyRefs` name this policy.
    pub fn add_exceptions(&mut self, exceptions: &[Arc<CelPolicyException>]) {
        let plain = self.name.rsplit('/').next().unwrap_or_default().to_owned();
        for e in exceptions {
            if e.refers_to(&plain, &self.kind)
                && !self.exceptions.iter().any(|x| x.key() == e.key())
            {
                self.exceptions.push(e.clone());
            }
        }
    }

    /// Whether `image` is selected by `matchImageReferences` (every image when there are none).
    ///
    /// An image is matched by what it is, however it is written: the string as written, and
    /// its normalized forms by tag (`registry/path:tag`) and by digest
    /// (`registry/path@digest`). A reference pinned as `repo:tag@digest` (by `mutateDigest`,
    /// or by a Pod author) is therefore still selected by a glob naming its tag: pinning can
    /// only add verification, never take an image out of a policy's scope.
    pub fn matches_image(&self, image: &str) -> Result<bool, Error> {
        if self.match_images.is_empty() {
            return Ok(true);
        }
        let forms = image_forms(image);
        let empty = PolicyInput::default();
        let view = RequestView::new(&empty);
        for form in &forms {
            let bound = RefBinding(Json::String(form.clone()));
            for m in &self.match_images {
                let hit = match m {
                    ImageMatcher::Glob(re) => re.is_match(form),
                    ImageMatcher::Expression(p) => {
                        let scope = VariableScope::empty(&view).with_images(&bound);
                        p.evaluate_bool(&scope)?
                    }
                };
                if hit {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// `matchConstraints`, then `matchConditions`: `Ok(false)` when the policy does not apply
    /// (a condition is false, or errors under `failurePolicy: Ignore`).
    fn applies(&self, view: &RequestView<'_>) -> Result<bool, Error> {
        match &self.match_constraints {
            Some(mc) if mc.matches(view.input()) => {}
            _ => return Ok(false),
        }
        let scope = VariableScope::empty(view);
        match evaluate_match_conditions(&self.match_conditions, &scope) {
            MatchConditions::Hold => Ok(true),
            MatchConditions::False => Ok(false),
            MatchConditions::Errors { .. } if self.failure_policy == FailurePolicy::Ignore => {
                Ok(false)
            }
            MatchConditions::Errors { first, .. } => Err(first),
        }
    }

    /// Extracted images by extractor name, before `matchImageReferences`.
    fn extract(
        &self,
        scope: &VariableScope<'_, '_>,
        input: &PolicyInput,
    ) -> Result<BTreeMap<String, Vec<String>>, Error> {
        let gvr = input.gvr();
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut run = |name: &str, p: &Program| -> Result<(), Error> {
            let v = p.evaluate_json(scope)?;
            let list = v
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|x| {
                            x.as_str().map(str::to_owned).ok_or_else(|| Error::Cel {
                                expression: p.source().to_owned(),
                                reason: "image extractor must return a list of strings".into(),
                            })
                        })
                        .collect::<Result<Vec<_>, _>>()
                })
                .unwrap_or_else(|| {
                    Err(Error::Cel {
                        expression: p.source().to_owned(),
                        reason: "image extractor must return a list of strings".into(),
                    })
                })?;
            out.insert(name.to_owned(), list);
            Ok(())
        };
        if let Some(prefix) = default_extractor_sources(&gvr.group, &gvr.version, &gvr.resource) {
            for (key, p) in &self.default_extractors {
                if let Some((pre, section)) = key.split_once('|')
                    && pre == prefix
                {
                    run(section, p)?;
                }
            }
        }
        for (name, p) in &self.extractors {
            run(name, p)?;
        }
        Ok(out)
    }

    /// The matched images by category, and in order (duplicates kept once).
    fn matched_images(
        &self,
        scope: &VariableScope<'_, '_>,
        input: &PolicyInput,
    ) -> Result<(Categories, Vec<String>), Error> {
        let mut by = BTreeMap::new();
        let mut all: Vec<String> = Vec::new();
        for (category, imgs) in self.extract(scope, input)? {
            let mut kept = Vec::new();
            for img in imgs {
                if self.matches_image(&img)? {
                    if !all.contains(&img) {
                        all.push(img.clone());
                    }
                    kept.push(img);
                }
            }
            by.insert(category, kept);
        }
        Ok((by, all))
    }

    /// Step one of the sans-IO flow: the images this policy would verify for `input`, with the
    /// evidence they need. Empty when the policy does not apply.
    pub fn image_requests(&self, input: &PolicyInput) -> Vec<ImageRequest> {
        let view = RequestView::new(input);
        if !matches!(self.applies(&view), Ok(true)) {
            return Vec::new();
        }
        let scope = VariableScope::new(&view, &self.variables);
        let Ok((_, images)) = self.matched_images(&scope, input) else {
            return Vec::new();
        };
        let sites = input.subject().map(images_of).unwrap_or_default();
        let types: Vec<String> = self
            .attestations
            .values()
            .filter_map(|a| match a {
                Attestation::InToto(t) => Some(t.clone()),
                Attestation::Referrer(_) => None,
            })
            .collect();
        let mut out: Vec<ImageRequest> = Vec::new();
        for image in images {
            let Some(info) = image_info(&image) else {
                continue;
            };
            let reference = info["reference"].as_str().unwrap_or_default().to_owned();
            if out.iter().any(|r| r.reference == reference) {
                continue;
            }
            out.push(ImageRequest {
                policy: self.name.clone(),
                rule: self.name.clone(),
                pointer: sites
                    .iter()
                    .find(|s| s.image == image)
                    .map(|s| s.pointer.clone())
                    .unwrap_or_default(),
                image,
                reference,
                repository: None,
                signatures: self.attestors.as_object().is_some_and(|a| !a.is_empty()),
                attestation_types: types.clone(),
            });
        }
        out
    }

    /// `mutateDigest`: JSON patches pinning every matched container image given by tag to the
    /// digest its evidence resolved, as Kyverno's mutating webhook does before validation.
    /// `Err` names the images whose digest could not be resolved (the patches for the others
    /// are still returned).
    pub fn digest_patches(
        &self,
        input: &PolicyInput,
        images: Option<&VerifyImagesContext<'_>>,
    ) -> (Vec<Json>, Option<String>) {
        let view = RequestView::new(input);
        if !self.mutate_digest || !matches!(self.applies(&view), Ok(true)) {
            return (Vec::new(), None);
        }
        let scope = VariableScope::new(&view, &self.variables);
        if self
            .exceptions
            .iter()
            .any(|e| matches!(e.matches(&scope), Ok(true)))
        {
            return (Vec::new(), None);
        }
        let mut patches = Vec::new();
        let mut errors = Vec::new();
        for site in input.subject().map(images_of).unwrap_or_default() {
            if site.image.contains('@') {
                continue;
            }
            match self.matches_image(&site.image) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    errors.push(e.to_string());
                    continue;
                }
            }
            match find_evidence(images, &site.image) {
                Ok((key, _, digest)) => patches.push(json!({
                    "op": "replace", "path": site.pointer, "value": format!("{key}@{digest}")
                })),
                Err(e) => errors.push(format!(
                    "failed to resolve digest for image {}: {}",
                    site.image, e.message
                )),
            }
        }
        (patches, (!errors.is_empty()).then(|| errors.join("; ")))
    }

    /// Evaluates the policy against one request, verifying with `images` (without evidence,
    /// every verification function is an evaluation error). `verified` records, per image,
    /// whether a signature or attestation check succeeded (shared by the request's policies for
    /// `required`; see [`ImageValidatingPolicy::enforce_required`]). Empty when the policy does
    /// not apply.
    pub fn evaluate(
        &self,
        input: &PolicyInput,
        images: Option<&VerifyImagesContext<'_>>,
        verified: &RefCell<BTreeMap<String, bool>>,
    ) -> Vec<RuleResult> {
        self.evaluate_matched(input, images, verified)
            .map(|(r, _)| r)
            .unwrap_or_default()
    }

    /// As [`ImageValidatingPolicy::evaluate`], also returning the matched images of a passing
    /// evaluation (for `required`). `None` when the policy does not apply.
    pub(crate) fn evaluate_matched(
        &self,
        input: &PolicyInput,
        images: Option<&VerifyImagesContext<'_>>,
        verified: &RefCell<BTreeMap<String, bool>>,
    ) -> Option<(Vec<RuleResult>, Vec<String>)> {
        let resource = input.resource_ref();
        let result = |rule: &str, status: RuleStatus, message: String| {
            RuleResult::new(self.name.clone(), rule, resource.clone(), status, message)
        };
        let eval_error = |e: &Error| {
            let mut r = result(
                "evaluation",
                RuleStatus::Error,
                format!("failed to evaluate policy: {e}"),
            );
            r = r.with_reason(Reason::new(
                if e.to_string().contains("unsupported: ") {
                    UNSUPPORTED
                } else {
                    e.code()
                },
                e.to_string(),
            ));
            r
        };
        let view = RequestView::new(input);
        match self.applies(&view) {
            Ok(true) => {}
            Ok(false) => return None,
            Err(e) => return Some((vec![eval_error(&e)], Vec::new())),
        }
        let scope = VariableScope::new(&view, &self.variables);
        let mut matched_ex = Vec::new();
        for ex in &self.exceptions {
            match ex.matches(&scope) {
                Ok(true) => matched_ex.push(ex.key().to_owned()),
                Ok(false) => {}
                Err(e) => return Some((vec![eval_error(&e)], Vec::new())),
            }
        }
        if !matched_ex.is_empty() {
            return Some((
                vec![result(
                    "exception",
                    RuleStatus::Skip,
                    format!(
                        "rule is skipped due to policy exception: {}",
                        matched_ex.join(", ")
                    ),
                )],
                Vec::new(),
            ));
        }
        let (by_category, all) = match self.matched_images(&scope, input) {
            Ok(x) => x,
            Err(e) => return Some((vec![eval_error(&e)], Vec::new())),
        };
        if self.verify_digest {
            for img in &all {
                let has_digest = image_info(img)
                    .and_then(|i| {
                        i.get("digest")
                            .and_then(Json::as_str)
                            .map(|d| !d.is_empty())
                    })
                    .unwrap_or(false);
                if !has_digest {
                    return Some((
                        vec![result(
                            &self.name,
                            RuleStatus::Fail,
                            format!("image {img} does not have a digest"),
                        )],
                        Vec::new(),
                    ));
                }
            }
        }
        let run = Run {
            policy: self,
            images_json: json!(by_category),
            cx: images,
            payloads: RefCell::new(BTreeMap::new()),
            verified,
            unsupported: RefCell::new(None),
            details: RefCell::new(Vec::new()),
        };
        let scope = VariableScope::new(&view, &self.variables).with_images(&run);
        let unsupported_reason = |r: RuleResult| match run.unsupported.borrow().as_ref() {
            Some(u) => r.with_reason(Reason::new(UNSUPPORTED, u.clone())),
            None => r,
        };
        for (index, v) in self.validations.iter().enumerate() {
            match v.expression.evaluate_in(&scope) {
                Ok(Value::Bool(true)) => continue,
                Ok(Value::Bool(false)) => {
                    let mut message = v.message.clone().unwrap_or_default();
                    if let Some(me) = &v.message_expression {
                        message = match me.evaluate_in(&scope) {
                            Ok(Value::String(s)) => s.as_str().to_owned(),
                            Ok(other) => format!(
                                "failed to convert message expression to string: expected a string, got {}",
                                crate::cel::value::type_name(&other)
                            ),
                            Err(e) => format!("failed to evaluate message expression: {e}"),
                        };
                    }
                    if message.is_empty() {
                        message = format!("CEL expression validation failed at index {index}");
                    }
                    if let Err(e) = evaluate_audit_annotations(&self.audit_annotations, &scope) {
                        return Some((vec![unsupported_reason(eval_error(&e))], Vec::new()));
                    }
                    let r = result(&self.name, RuleStatus::Fail, message).with_reason(
                        Reason::new(
                            "policy.cel.validation_failed",
                            format!(
                                "validation {index} ({}) is false",
                                v.expression.source().trim()
                            ),
                        )
                        .at(format!("spec.validations[{index}]")),
                    );
                    let r = run.details.borrow().iter().fold(r, |r, d| {
                        r.with_reason(Reason::new("policy.image.unverified", d.clone()))
                    });
                    return Some((vec![unsupported_reason(r)], Vec::new()));
                }
                Ok(other) => {
                    let r = result(
                        &self.name,
                        RuleStatus::Error,
                        format!(
                            "error: expected a bool, got {}",
                            crate::cel::value::type_name(&other)
                        ),
                    );
                    return Some((vec![unsupported_reason(r)], Vec::new()));
                }
                Err(e) => {
                    let r = eval_error(&e).with_reason(
                        Reason::new("policy.cel", "validation failed to evaluate")
                            .at(format!("spec.validations[{index}]")),
                    );
                    return Some((vec![unsupported_reason(r)], Vec::new()));
                }
            }
        }
        match evaluate_audit_annotations(&self.audit_annotations, &scope) {
            Ok(_) => Some((
                vec![result(&self.name, RuleStatus::Pass, "success".to_owned())],
                all,
            )),
            Err(e) => Some((vec![eval_error(&e)], Vec::new())),
        }
    }

    /// `validationConfigurations.required`: every image a passing evaluation matched must have
    /// passed a signature or attestation check (by any policy of the request, as recorded in
    /// `verified`). `Some(message)` when one did not.
    pub fn enforce_required(
        &self,
        images: &[String],
        verified: &BTreeMap<String, bool>,
    ) -> Option<String> {
        if !self.required {
            return None;
        }
        for image in images {
            match verified.get(image) {
                Some(true) => {}
                Some(false) => {
                    return Some(format!(
                        "image {image} failed signature or attestation verification"
                    ));
                }
                None => {
                    return Some(format!(
                        "image {image} is not verified: no policy performed a signature or attestation check on it"
                    ));
                }
            }
        }
        None
    }
}

fn list<'a>(v: &'a Json, key: &str) -> &'a [Json] {
    v.get(key)
        .and_then(Json::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// The `ref` binding of a `matchImageReferences` expression.
struct RefBinding(Json);

impl ImageScope for RefBinding {
    fn binding(&self, binding: ImageBinding) -> Option<&Json> {
        (binding == ImageBinding::Ref).then_some(&self.0)
    }

    fn call(&self, f: KyvernoFn, _args: &[Value]) -> Result<Value, String> {
        Err(format!("{f:?} is not available in matchImageReferences"))
    }
}

/// One evaluation's bindings and verification functions.
struct Run<'a> {
    policy: &'a ImageValidatingPolicy,
    images_json: Json,
    cx: Option<&'a VerifyImagesContext<'a>>,
    /// (evidence key, attestation) → verified in-toto statements.
    payloads: RefCell<BTreeMap<(String, String), Vec<Json>>>,
    verified: &'a RefCell<BTreeMap<String, bool>>,
    unsupported: RefCell<Option<String>>,
    /// Why attestors did not verify (for the result's reasons).
    details: RefCell<Vec<String>>,
}

/// The ways one image can be written that name the same thing: as written, and with its
/// registry host as the network sees it (lower case, no `:443`); the normalized
/// reference by tag (`registry/path:tag`) and by digest (`registry/path@digest`); and for a
/// `repo:tag@digest` the written form without its digest and without its tag.
fn image_forms(image: &str) -> Vec<String> {
    fn add(forms: &mut Vec<String>, f: String) {
        if !f.is_empty() && !forms.contains(&f) {
            forms.push(f);
        }
    }
    let mut forms = vec![image.to_owned()];
    if let Some(n) = crate::verify_images::host_normalized(image) {
        add(&mut forms, n);
    }
    for written in forms.clone() {
        if let Some((name, _digest)) = written.split_once('@') {
            add(&mut forms, name.to_owned());
            // `name:tag@digest` → `name@digest` (a `:` after the last `/` is a tag).
            let slash = name.rfind('/').map_or(0, |i| i + 1);
            if let Some(colon) = name[slash..].rfind(':') {
                add(
                    &mut forms,
                    format!("{}{}", &name[..slash + colon], &written[name.len()..]),
                );
            }
        }
        let Some(info) = image_info(&written) else {
            continue;
        };
        let base = match (info["registry"].as_str(), info["path"].as_str()) {
            (Some(r), Some(p)) if !r.is_empty() => format!("{r}/{p}"),
            (_, Some(p)) => p.to_owned(),
            _ => String::new(),
        };
        if !base.is_empty() {
            if let Some(t) = info.get("tag").and_then(Json::as_str) {
                add(&mut forms, format!("{base}:{t}"));
            }
            if let Some(d) = info.get("digest").and_then(Json::as_str) {
                add(&mut forms, format!("{base}@{d}"));
            }
        }
    }
    forms
}

/// Why a verification function could not run.
struct CallError {
    message: String,
    unsupported: bool,
    /// The image's own evidence is unusable: a verification function answers "nothing
    /// verified" (0) instead of an evaluation error.
    invalid: bool,
}

impl CallError {
    fn new(message: impl Into<String>) -> Self {
        CallError {
            message: message.into(),
            unsupported: false,
            invalid: false,
        }
    }

    fn unsupported(message: impl Into<String>) -> Self {
        CallError {
            message: format!("unsupported: {}", message.into()),
            unsupported: true,
            invalid: false,
        }
    }
}

/// The evidence for `image`: by its key, or (for `name:tag@digest` after `mutateDigest`) the
/// evidence of the same repository resolved to that digest. Returns the tag key, the evidence
/// and the digest.
fn find_evidence<'a>(
    cx: Option<&'a VerifyImagesContext<'a>>,
    image: &str,
) -> Result<(String, &'a ImageEvidence, Digest), CallError> {
    let cx = cx.ok_or_else(|| {
        CallError::unsupported(format!(
            "verifying {image} without gathered evidence (gather it for PolicySet::image_requests, then call decide_with)"
        ))
    })?;
    let info = image_info(image).ok_or_else(|| {
        CallError::new(format!("failed to get imagedata: invalid image {image:?}"))
    })?;
    let key = info["reference"].as_str().unwrap_or_default().to_owned();
    let written_digest = info
        .get("digest")
        .and_then(Json::as_str)
        .filter(|d| !d.is_empty())
        .map(str::to_owned);
    let repo = |i: &Json| {
        format!(
            "{}/{}",
            i["registry"].as_str().unwrap_or_default(),
            i["path"].as_str().unwrap_or_default()
        )
    };
    let found = match cx.evidence.get(&key) {
        Some(ev) => Some((key.clone(), ev)),
        None => written_digest.as_ref().and_then(|d| {
            cx.evidence.iter().find_map(|(k, ev)| {
                let same_repo = image_info(k).is_some_and(|ki| repo(&ki) == repo(&info));
                let same_digest = ev.digest.as_ref().is_some_and(|x| x.to_string() == *d);
                (same_repo && same_digest).then(|| (k.clone(), ev))
            })
        }),
    };
    let (key, ev) = found.ok_or_else(|| {
        CallError::new(format!(
            "failed to get imagedata: no evidence was gathered for {key}"
        ))
    })?;
    if let Some(e) = &ev.error {
        return Err(CallError::new(format!("failed to get imagedata: {e}")));
    }
    if let Some(e) = &ev.invalid {
        return Err(CallError {
            message: format!("the image cannot be verified: {e}"),
            unsupported: false,
            invalid: true,
        });
    }
    let digest = ev.digest.clone().ok_or_else(|| {
        CallError::new(format!(
            "failed to get imagedata: the digest of {key} was not resolved"
        ))
    })?;
    if let Some(d) = written_digest
        && d != digest.to_string()
    {
        return Err(CallError::new(format!(
            "image digest {d} does not match resolved digest {digest}"
        )));
    }
    Ok((key, ev, digest))
}

/// The expectations a cosign attestor stands for (any of them verifying verifies the
/// attestor), or why it cannot be evaluated.
fn cosign_expectations(name: &str, att: &Json) -> Result<Vec<Expectation>, CallError> {
    let what = |f: &str| format!("attestor {name}: {f}");
    if att.get("notary").is_some_and(|n| !n.is_null()) {
        return Err(CallError::unsupported(what(
            "notary attestors (Notation signatures)",
        )));
    }
    let cosign = att
        .get("cosign")
        .filter(|c| c.is_object())
        .ok_or_else(|| CallError::new(what("neither cosign nor notary is set")))?;
    let set = |p: &str| {
        cosign.pointer(p).is_some_and(|x| match x {
            Json::Null => false,
            Json::String(s) => !s.is_empty(),
            Json::Object(m) => !m.is_empty(),
            Json::Array(a) => !a.is_empty(),
            Json::Bool(b) => *b,
            Json::Number(_) => true,
        })
    };
    for (p, label) in [
        ("/certificate", "cosign.certificate"),
        (
            "/trustedRoot",
            "cosign.trustedRoot (the caller's trust root applies)",
        ),
        ("/tuf", "cosign.tuf (the caller's trust root applies)"),
        (
            "/source",
            "cosign.source (signatures are read beside the image)",
        ),
        (
            "/ctlog/rekorPubKey",
            "cosign.ctlog.rekorPubKey (put the key in the trust root)",
        ),
        (
            "/ctlog/ctLogPubKey",
            "cosign.ctlog.ctLogPubKey (put the key in the trust root)",
        ),
        (
            "/ctlog/tsaCertChain",
            "cosign.ctlog.tsaCertChain (put the TSA in the trust root)",
        ),
        ("/ctlog/insecureIgnoreSCT", "cosign.ctlog.insecureIgnoreSCT"),
        ("/key/kms", "cosign.key.kms"),
        ("/key/expression", "cosign.key.expression"),
        ("/keyless/roots", "cosign.keyless.roots"),
    ] {
        if set(p) {
            return Err(CallError::unsupported(what(label)));
        }
    }
    let ignore_tlog = cosign
        .pointer("/ctlog/insecureIgnoreTlog")
        .and_then(Json::as_bool)
        .unwrap_or(false);
    if let Some(key) = cosign.get("key").filter(|k| !k.is_null()) {
        if let Some(h) = str_field(key, "hashAlgorithm").filter(|h| !h.is_empty())
            && h != "sha256"
        {
            return Err(CallError::unsupported(what(&format!(
                "cosign.key.hashAlgorithm {h}"
            ))));
        }
        let pem = str_field(key, "data").unwrap_or_default();
        if pem.trim().is_empty() {
            return Err(CallError::new(what("cosign.key has no data")));
        }
        let keys = PublicKey::all_from_pem(pem)
            .map_err(|e| CallError::new(what(&format!("cosign.key.data: {e}"))))?;
        if keys.is_empty() {
            return Err(CallError::new(what(
                "cosign.key.data holds no PEM public key",
            )));
        }
        return Ok(keys
            .into_iter()
            .map(|key| Expectation::Key {
                key,
                allow_no_transparency: ignore_tlog,
            })
            .collect());
    }
    if let Some(k) = cosign.get("keyless").filter(|k| !k.is_null()) {
        if ignore_tlog {
            return Err(CallError::unsupported(what(
                "cosign.ctlog.insecureIgnoreTlog with keyless",
            )));
        }
        let mut extensions = BTreeMap::new();
        if let Some(Json::Object(ext)) = k.get("additionalExtensions") {
            for (n, v) in ext {
                if let Some(v) = v.as_str() {
                    extensions.insert(n.clone(), v.to_owned());
                }
            }
        }
        let mut out = Vec::new();
        for id in list(k, "identities") {
            let s = |f: &str| {
                str_field(id, f)
                    .filter(|x| !x.is_empty())
                    .map(str::to_owned)
            };
            if s("subjectExpression").is_some() {
                return Err(CallError::unsupported(what(
                    "keyless.identities[].subjectExpression",
                )));
            }
            out.push(Expectation::Keyless(IdentityExpectation {
                subject_exact: s("subject"),
                subject_regexp: s("subjectRegExp"),
                issuer: s("issuer"),
                issuer_regexp: s("issuerRegExp"),
                additional_extensions: extensions.clone(),
                ..Default::default()
            }));
        }
        if out.is_empty() {
            return Err(CallError::new(what(
                "keyless attestor without identities (any Sigstore identity would be accepted)",
            )));
        }
        return Ok(out);
    }
    Err(CallError::new(what("cosign needs key or keyless")))
}

/// Whether a verified cosign simple-signing payload carries the attestor's `annotations`.
fn annotations_match(att: &Json, payload: &[u8]) -> bool {
    let Some(Json::Object(want)) = att.pointer("/cosign/annotations") else {
        return true;
    };
    if want.is_empty() {
        return true;
    }
    let Ok(p) = serde_json::from_slice::<Json>(payload) else {
        return false;
    };
    want.iter().all(|(k, v)| {
        p.pointer("/optional")
            .and_then(|o| o.get(k))
            // Equal JSON values only: two non-string values must not compare equal merely
            // because neither is a string.
            .is_some_and(|got| got == v)
    })
}

impl Run<'_> {
    fn string_arg(args: &[Value], i: usize, f: KyvernoFn) -> Result<String, CallError> {
        match args.get(i) {
            Some(Value::String(s)) => Ok(s.as_str().to_owned()),
            _ => Err(CallError::new(format!(
                "{f:?}: argument {} must be a string",
                i + 1
            ))),
        }
    }

    fn attestors_arg(args: &[Value], i: usize) -> Result<Vec<Json>, CallError> {
        let v = args
            .get(i)
            .ok_or_else(|| CallError::new("missing attestor list"))?;
        let j = cel_to_json(v).map_err(CallError::new)?;
        match j {
            Json::Array(a) => Ok(a),
            _ => Err(CallError::new("the attestors argument must be a list")),
        }
    }

    fn detail(&self, d: String) {
        let mut v = self.details.borrow_mut();
        if v.len() < 16 && !v.contains(&d) {
            v.push(d);
        }
    }

    fn record(&self, key: &str, ok: bool) {
        let mut m = self.verified.borrow_mut();
        let e = m.entry(key.to_owned()).or_insert(false);
        *e = *e || ok;
    }

    fn verify_signatures(&self, args: &[Value]) -> Result<Value, CallError> {
        let f = KyvernoFn::VerifyImageSignatures;
        let image = Self::string_arg(args, 0, f)?;
        let attestors = Self::attestors_arg(args, 1)?;
        if !self
            .policy
            .matches_image(&image)
            .map_err(|e| CallError::new(e.to_string()))?
        {
            return Ok(Value::Int(0));
        }
        let (_, ev, digest) = match find_evidence(self.cx, &image) {
            Err(e) if e.invalid => {
                self.detail(format!("{image}: {}", e.message));
                self.record(&image, false);
                return Ok(Value::Int(0));
            }
            r => r?,
        };
        let Some(cx) = self.cx else {
            return Ok(Value::Int(0));
        };
        let mut count = 0i64;
        for att in &attestors {
            let name = str_field(att, "name").unwrap_or_default();
            let exps = cosign_expectations(name, att)?;
            let mut last = String::from("no signatures found");
            let mut ok = false;
            'material: for m in &ev.signatures {
                for exp in &exps {
                    match cx.verifier.verify_image_signature(&digest, m, exp, cx.now) {
                        Ok(v) => {
                            let payload = v.payload.as_ref().map(|(_, p)| p.as_slice());
                            if annotations_match(att, payload.unwrap_or_default()) {
                                ok = true;
                                break 'material;
                            }
                            last = "no signature matched the required annotations".to_owned();
                        }
                        Err(e) => last = format!("[{}] {e}", e.code()),
                    }
                }
            }
            if ok {
                count += 1;
            } else {
                self.detail(format!(
                    "{image}: signature not verified by attestor {name}: {last}"
                ));
            }
        }
        if !attestors.is_empty() {
            self.record(&image, count > 0);
        }
        Ok(Value::Int(count))
    }

    fn attestation(&self, name: &str) -> Result<&Attestation, CallError> {
        self.policy
            .attestations
            .get(name)
            .ok_or_else(|| CallError::new(format!("attestation not found in policy: {name}")))
    }

    fn verify_attestations(&self, args: &[Value]) -> Result<Value, CallError> {
        let f = KyvernoFn::VerifyAttestationSignatures;
        let image = Self::string_arg(args, 0, f)?;
        let att_name = Self::string_arg(args, 1, f)?;
        let attestors = Self::attestors_arg(args, 2)?;
        if !self
            .policy
            .matches_image(&image)
            .map_err(|e| CallError::new(e.to_string()))?
        {
            return Ok(Value::Int(0));
        }
        let attestation = self.attestation(&att_name)?.clone();
        let (key, ev, digest) = match find_evidence(self.cx, &image) {
            Err(e) if e.invalid => {
                self.detail(format!("{image}: {}", e.message));
                self.record(&image, false);
                return Ok(Value::Int(0));
            }
            r => r?,
        };
        let Some(cx) = self.cx else {
            return Ok(Value::Int(0));
        };
        let mut count = 0i64;
        let mut statements = Vec::new();
        for att in &attestors {
            let name = str_field(att, "name").unwrap_or_default();
            let ty = match &attestation {
                Attestation::Referrer(t) => {
                    if att.get("notary").is_some_and(|n| !n.is_null()) {
                        return Err(CallError::unsupported(format!(
                            "attestor {name}: notary referrer attestations ({t})"
                        )));
                    }
                    // Kyverno's cosign verifier only verifies in-toto attestations: this
                    // attestor does not verify a referrer.
                    continue;
                }
                Attestation::InToto(t) => t,
            };
            let exps = cosign_expectations(name, att)?;
            if att
                .pointer("/cosign/annotations")
                .and_then(Json::as_object)
                .is_some_and(|a| !a.is_empty())
            {
                return Err(CallError::unsupported(format!(
                    "attestor {name}: cosign.annotations on attestations"
                )));
            }
            let candidates: Vec<&SignatureMaterial> = ev
                .attestations
                .iter()
                .filter(|m| {
                    crate::verify_images::claimed_predicate_type(m).is_some_and(|t| t == *ty)
                })
                .collect();
            let mut ok = false;
            let mut last = if candidates.is_empty() {
                format!("no attestations found (need {ty})")
            } else {
                format!("no verified {ty} attestation found")
            };
            for m in candidates {
                for exp in &exps {
                    let v = match cx.verifier.verify_attestation(&digest, m, exp, cx.now) {
                        Ok(v) => v,
                        Err(e) => {
                            last = format!("[{}] {e}", e.code());
                            continue;
                        }
                    };
                    let Some((_, payload)) = v.payload else {
                        continue;
                    };
                    let Ok(st) = provenance_attest::Statement::from_json(&payload) else {
                        continue;
                    };
                    if st.predicate_type != *ty {
                        continue;
                    }
                    if !st.matches(&digest) {
                        last = format!("the {ty} attestation names another subject than {digest}");
                        continue;
                    }
                    ok = true;
                    let value = st.to_value();
                    if !statements.contains(&value) {
                        statements.push(value);
                    }
                    break;
                }
            }
            if ok {
                count += 1;
            } else {
                self.detail(format!(
                    "{image}: {ty} attestation not verified by attestor {name}: {last}"
                ));
            }
        }
        if !statements.is_empty() {
            self.payloads
                .borrow_mut()
                .entry((key.clone(), att_name))
                .or_default()
                .extend(statements);
        }
        if !attestors.is_empty() {
            self.record(&image, count > 0);
        }
        Ok(Value::Int(count))
    }

    fn extract_payload(&self, args: &[Value]) -> Result<Value, CallError> {
        let f = KyvernoFn::ExtractPayload;
        let image = Self::string_arg(args, 0, f)?;
        let att_name = Self::string_arg(args, 1, f)?;
        if let Attestation::Referrer(t) = self.attestation(&att_name)? {
            return Err(CallError::unsupported(format!(
                "extractPayload of referrer attestation {att_name} ({t})"
            )));
        }
        let (key, _, _) = find_evidence(self.cx, &image)?;
        let payloads = self.payloads.borrow();
        let list = payloads.get(&(key, att_name.clone())).ok_or_else(|| {
            CallError::new(format!(
                "failed to get payload: intoto attestation payload cannot be fetch before verifying intoto attestation ({att_name})"
            ))
        })?;
        // Several different verified Statements of the type: which one is "the" payload
        // would be decided by the order the image owner pushed them in (an older, also
        // genuine attestation could be chosen). Refused instead of picking one.
        if list.len() > 1 {
            return Err(CallError::new(format!(
                "extractPayload({att_name}): {} different verified Statements of this type are attached to {image}; the payload is ambiguous",
                list.len()
            )));
        }
        let Some(st) = list.first() else {
            return Err(CallError::new(format!(
                "failed to get payload: no verified {att_name} Statement"
            )));
        };
        json_to_cel(st).map_err(CallError::new)
    }
}

impl ImageScope for Run<'_> {
    fn binding(&self, binding: ImageBinding) -> Option<&Json> {
        match binding {
            ImageBinding::Images => Some(&self.images_json),
            ImageBinding::Attestors => Some(&self.policy.attestors),
            ImageBinding::Attestations => Some(&self.policy.attestation_names),
            ImageBinding::Ref => None,
        }
    }

    fn call(&self, f: KyvernoFn, args: &[Value]) -> Result<Value, String> {
        let r = match f {
            KyvernoFn::VerifyImageSignatures => self.verify_signatures(args),
            KyvernoFn::VerifyAttestationSignatures => self.verify_attestations(args),
            KyvernoFn::ExtractPayload => self.extract_payload(args),
            KyvernoFn::GetImageData => Err(CallError::unsupported(
                "getImageData (image manifests and configs are not part of the gathered evidence)",
            )),
            other => Err(CallError::new(format!(
                "{other:?} is not an image function"
            ))),
        };
        r.map_err(|e| {
            if e.unsupported {
                self.unsupported
                    .borrow_mut()
                    .get_or_insert(e.message.clone());
            }
            e.message
        })
    }
}

#[cfg(test)]
#[allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn glob(p: &str, s: &str) -> bool {
        match glob_to_regex(p) {
            Ok(re) => re.is_match(s),
            Err(e) => panic!("{p}: {e}"),
        }
    }

    #[test]
    fn globs_match_as_gobwas_without_separators() {
        assert!(glob(
            "ghcr.io/*",
            "ghcr.io/kyverno/test-verify-image:signed"
        ));
        assert!(!glob("ghcr.io/*", "docker.io/ghcr.io/x"));
        assert!(glob("*", ""));
        assert!(glob(
            "docker.io/library/busy?ox:1",
            "docker.io/library/busybox:1"
        ));
        assert!(!glob(
            "docker.io/library/busy?ox:1",
            "docker.io/library/busyox:1"
        ));
        assert!(glob("reg.test/{a,b}/*", "reg.test/b/x"));
        assert!(!glob("reg.test/{a,b}/*", "reg.test/c/x"));
        assert!(glob("reg.test/[a-c]x", "reg.test/bx"));
        assert!(!glob("reg.test/[!a-c]x", "reg.test/bx"));
        assert!(glob("reg.test/[!a-c]x", "reg.test/dx"));
        assert!(glob(r"reg.test/\*", "reg.test/*"));
        assert!(!glob(r"reg.test/\*", "reg.test/a"));
        // Regular-expression characters are literal.
        assert!(!glob("reg.test/a+b", "reg.test/aab"));
        assert!(glob("reg.test/a+b(c)", "reg.test/a+b(c)"));
        for bad in ["reg.test/[a", "reg.test/{a,b", "reg.test/\\"] {
            assert!(glob_to_regex(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cosign_predicate_short_names() {
        assert_eq!(
            predicate_type("slsaprovenance1"),
            "https://slsa.dev/provenance/v1"
        );
        assert_eq!(predicate_type("cyclonedx"), "https://cyclonedx.org/bom");
        assert_eq!(
            predicate_type("https://example.com/custom"),
            "https://example.com/custom"
        );
    }

    #[test]
    fn attestor_options() {
        let key = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE7c0Y2e+L3WkeMLgTTZ3y0Kxl1Dgi\nR1R0ufBKTv3lj6XbD7zUyIDF4dDdxBDUVYbl3OBVQwqu7NcldcZ2ZmnCOA==\n-----END PUBLIC KEY-----\n";
        let ok = |v: Json| cosign_expectations("a", &v);
        let Ok(e) =
            ok(json!({"cosign": {"key": {"data": key}, "ctlog": {"insecureIgnoreTlog": true}}}))
        else {
            panic!("key attestor")
        };
        assert!(matches!(
            e.as_slice(),
            [Expectation::Key {
                allow_no_transparency: true,
                ..
            }]
        ));
        let Ok(e) = ok(json!({"cosign": {"keyless": {"identities": [
            {"subject": "a@example.com", "issuer": "https://accounts.google.com"},
            {"subjectRegExp": ".*@example.com", "issuerRegExp": ".*"}
        ]}, "ctlog": {"url": "https://rekor.example"}}})) else {
            panic!("keyless attestor")
        };
        assert_eq!(e.len(), 2);
        if let Expectation::Keyless(id) = &e[0] {
            assert_eq!(id.subject_exact.as_deref(), Some("a@example.com"));
            assert_eq!(id.subject, None);
        } else {
            panic!("keyless expectation");
        }
        for (v, what) in [
            (json!({"notary": {"certs": {"value": "x"}}}), "notary"),
            (json!({"cosign": {"key": {"kms": "awskms:///x"}}}), "kms"),
            (
                json!({"cosign": {"key": {"data": key, "hashAlgorithm": "sha512"}}}),
                "hashAlgorithm",
            ),
            (
                json!({"cosign": {"certificate": {"cert": {"value": "x"}}}}),
                "certificate",
            ),
            (
                json!({"cosign": {"keyless": {"roots": "x", "identities": [{"subject": "s"}]}}}),
                "roots",
            ),
            (
                json!({"cosign": {"keyless": {"identities": [{"subject": "s"}]}, "ctlog": {"insecureIgnoreSCT": true}}}),
                "insecureIgnoreSCT",
            ),
            (
                json!({"cosign": {"keyless": {"identities": [{"subject": "s"}]}, "ctlog": {"insecureIgnoreTlog": true}}}),
                "insecureIgnoreTlog",
            ),
            (
                json!({"cosign": {"keyless": {"identities": [{"subjectExpression": "x"}]}}}),
                "subjectExpression",
            ),
            (
                json!({"cosign": {"key": {"data": key}, "source": {"repository": "r"}}}),
                "source",
            ),
            (
                json!({"cosign": {"key": {"data": key}, "ctlog": {"rekorPubKey": "x"}}}),
                "rekorPubKey",
            ),
        ] {
            match ok(v) {
                Err(e) => {
                    assert!(e.unsupported, "{}", e.message);
                    assert!(e.message.contains(what), "{}", e.message);
                }
                Ok(_) => panic!("{what} must be unsupported"),
            }
        }
        assert!(ok(json!({"cosign": {"key": {"data": "not a key"}}})).is_err());
        assert!(ok(json!({"cosign": {}})).is_err());
    }

    #[test]
    fn annotations_are_checked_on_the_signed_payload() {
        let att = json!({"cosign": {"annotations": {"team": "ml"}}});
        assert!(annotations_match(
            &att,
            br#"{"optional": {"team": "ml", "x": "y"}}"#
        ));
        assert!(!annotations_match(
            &att,
            br#"{"optional": {"team": "web"}}"#
        ));
        assert!(!annotations_match(&att, b"{}"));
        assert!(!annotations_match(&att, b""));
        assert!(annotations_match(&json!({"cosign": {}}), b""));
    }
}
