//! Evaluating an ImageValidatingPolicy: the images it selects, the evidence they need, the
//! digest patches, and the run of its validations.

use std::cell::RefCell;
use std::collections::BTreeMap;

use provenance_core::outcome::{Reason, RuleResult, RuleStatus};
use serde_json::{Value as Json, json};

use crate::Error;
use crate::cel_policies::validating_policy::FailurePolicy;
use crate::kyverno::context::{image_info, images_of};
use crate::kyverno::engine::UNSUPPORTED;
use crate::kyverno::verify_images::{ImageRequest, VerifyImagesContext};
use crate::lang::cel::{
    ImageBinding, ImageScope, KyvernoFn, MatchConditions, PolicyInput, Program, RequestView, Value,
    VariableScope, evaluate_audit_annotations, evaluate_match_conditions,
};

use super::load::default_extractor_sources;
use super::verify::{Run, find_evidence, image_forms};
use super::{Attestation, Categories, DIGEST_UNRESOLVED, ImageMatcher, ImageValidatingPolicy};

impl ImageValidatingPolicy {
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
            Some(mc) => {
                if !mc.try_matches(view.input())? {
                    return Ok(false);
                }
            }
            None => return Ok(false),
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
    ) -> (Vec<Json>, Option<Reason>) {
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
        let mut unsupported = false;
        for site in input.subject().map(images_of).unwrap_or_default() {
            if site.image.contains('@') {
                continue;
            }
            match self.matches_image(&site.image) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    unsupported |= matches!(e, Error::Unsupported { .. });
                    errors.push(e.to_string());
                    continue;
                }
            }
            match find_evidence(images, &site.image) {
                Ok((key, _, digest)) => patches.push(json!({
                    "op": "replace", "path": site.pointer, "value": format!("{key}@{digest}")
                })),
                Err(e) => {
                    unsupported |= e.unsupported;
                    errors.push(format!(
                        "failed to resolve digest for image {}: {}",
                        site.image, e.message
                    ));
                }
            }
        }
        let code = if unsupported {
            UNSUPPORTED
        } else {
            DIGEST_UNRESOLVED
        };
        (
            patches,
            (!errors.is_empty()).then(|| Reason::new(code, errors.join("; "))),
        )
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
        verified: &mut BTreeMap<String, bool>,
    ) -> Vec<RuleResult> {
        let cell = RefCell::new(std::mem::take(verified));
        let out = self
            .evaluate_matched(input, images, &cell)
            .map(|(r, _)| r)
            .unwrap_or_default();
        *verified = cell.into_inner();
        out
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
            r = r.with_reason(Reason::new(e.code(), e.to_string()));
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
        // A result that an unsupported image function caused leads with that reason.
        let unsupported_reason = |mut r: RuleResult| {
            if let Some(u) = run.unsupported.borrow().as_ref() {
                r.reasons.insert(0, Reason::new(UNSUPPORTED, u.clone()));
            }
            r
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
                                crate::lang::cel::value::type_name(&other)
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
                            crate::lang::cel::value::type_name(&other)
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
            Err(e) => Some((vec![unsupported_reason(eval_error(&e))], Vec::new())),
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
