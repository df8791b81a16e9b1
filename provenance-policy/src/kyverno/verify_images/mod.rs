//! `verifyImages` rules, sans-IO.
//!
//! Verification is split in three steps so that nothing here does I/O:
//!
//! 1. [`image_requests`] says which images of a resource the policies' `verifyImages` rules
//!    cover, and what evidence each needs (signatures, attestation predicate types).
//! 2. The caller gathers [`ImageEvidence`] for each: the digest the reference resolves to and
//!    the signature and attestation material attached to it (`provenance-oci` does this from a
//!    registry or an OCI layout; tests do it from memory). Retrieval failures are recorded in
//!    [`ImageEvidence::error`] and become `error` results, never `fail` and never `pass`.
//! 3. [`VerifyImagesContext`] verifies the material through `provenance-core` and evaluates
//!    attestation conditions; the engine turns that into one rule result per rule, plus JSON
//!    patches pinning tags to digests (`mutateDigest`).
//!
//! Semantics follow Kyverno's `verifyImages` (type `Cosign`): `imageReferences` /
//! `skipImageReferences` with Kyverno wildcards over Kyverno's image string
//! (`registry/path:tag` or `registry/path@digest`); each attestor set needs `count` of its
//! entries to verify (all entries when `count` is unset; several `publicKeys` PEMs count as
//! several entries); nested `attestor` sets; `attestations` by `type` (or `predicateType`) with
//! `conditions` evaluated against the predicate. Differences, all fail-closed: an attestation
//! must name the admitted image digest as a subject; attestations without attestors are
//! verified with the image's attestors (Kyverno would accept any Sigstore identity); `Notary`
//! and `certificates.certChain` are unsupported and say so. Trust material an attestor writes
//! (`keyless.roots`, `rekor.pubkey`, `ctlog.pubkey`, `ctlog.tsaCertChain`) replaces those parts
//! of the caller's trust root for that attestor ([`provenance_core::TrustReplacement`]).
//! `type: SigstoreBundle` reads Sigstore bundles only and matches a keyless subject exactly;
//! a rule none of whose `imageReferences` matches an image of the resource has no result.
//!
//! Extension for models stored as OCI artifacts (Pod image volumes): an attestation of type
//! `https://model_signing/signature/v1.0` (an OpenSSF model-signing bundle attached to the
//! artifact) is bound to the image not by its in-toto subject (the model's root digest) but by
//! its signed resources, which must equal the artifact's layers (path annotation → layer
//! digest, [`provenance_attest::model_artifact`]); the evidence then carries the manifest's
//! layers ([`ImageEvidence::layers`]). See `docs/kyverno-compatibility.md`.

mod attestors;
mod cache;
mod check;
mod evidence;
mod sites;

use std::collections::BTreeMap;

use provenance_core::verify::Verifier;
use provenance_core::{Digest, UnixTime};
use serde_json::{Value, json};

pub use attestors::MAX_MATERIALS_PER_IMAGE;
pub(crate) use attestors::{
    VerifierFor, payload_annotations_match, policy_trust, too_many_materials,
};
pub use cache::{FAILURE_CAPACITY, FAILURE_MAX_MESSAGE, FAILURE_TTL_SECONDS, VerifyImagesCache};
pub use evidence::{EVIDENCE_UNAVAILABLE, ImageEvidence, ImageRequest};
pub(crate) use sites::{ParsedSites, host_normalized};
pub use sites::{image_requests, image_requests_with_extractors};

use cache::{cache_key, cache_key_prefix, depends_on_request, failure_key};
use sites::{ParsedSite, entry_requests, matches_refs, strings};

use crate::lang::jmespath::Env;

/// What the engine needs to verify images: built with [`VerifyImagesContext::new`] (and
/// [`VerifyImagesContext::with_cache`]), so that it can grow without breaking callers.
///
/// ```
/// # use std::collections::BTreeMap;
/// # use provenance_policy::kyverno::verify_images::{VerifyImagesCache, VerifyImagesContext};
/// # fn f(verifier: &provenance_policy::core::verify::Verifier, now: provenance_policy::core::UnixTime) {
/// let evidence = BTreeMap::new(); // from `admission::gather::gather`
/// let cache = VerifyImagesCache::new(8192, 300);
/// let cx = VerifyImagesContext::new(&evidence, verifier, now).with_cache(&cache);
/// # let _ = cx;
/// # }
/// ```
#[non_exhaustive]
pub struct VerifyImagesContext<'a> {
    /// Evidence by Kyverno image string (see [`ImageRequest::reference`]).
    pub evidence: &'a BTreeMap<String, ImageEvidence>,
    /// The verifier over the trust root.
    pub verifier: &'a Verifier,
    /// Verification time.
    pub now: UnixTime,
    /// Checks that passed before, reused instead of verifying again (`None`: verify every
    /// time). See [`VerifyImagesCache`] for what a cached pass is bound to.
    pub cache: Option<&'a VerifyImagesCache>,
}

impl<'a> VerifyImagesContext<'a> {
    /// Verification of the images in `evidence` with `verifier` at `now`, with no cache.
    pub fn new(
        evidence: &'a BTreeMap<String, ImageEvidence>,
        verifier: &'a Verifier,
        now: UnixTime,
    ) -> Self {
        VerifyImagesContext {
            evidence,
            verifier,
            now,
            cache: None,
        }
    }

    /// The same, reusing and filling `cache` (`None`: verify every time).
    pub fn with_cache(mut self, cache: impl Into<Option<&'a VerifyImagesCache>>) -> Self {
        self.cache = cache.into();
        self
    }
}

/// The outcome of one `verifyImages` rule on one resource.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct VerifyOutcome {
    /// `pass`, `fail`, `error` or `skip`.
    pub status: provenance_core::RuleStatus,
    /// Message (per-image outcomes joined).
    pub message: String,
    /// One reason per image that failed or could not be verified: the specific code (e.g.
    /// `verify.signature.invalid`, `verify.tlog.unknown_log`,
    /// `policy.verify_images.no_signatures`), the `verifyImages` entry (`path`) and the
    /// image reference (`subject`).
    pub reasons: Vec<provenance_core::Reason>,
    /// RFC 6902 patches pinning tags to digests.
    pub patches: Vec<Value>,
    /// Verified images: Kyverno image string with digest → `pass`.
    pub verified: BTreeMap<String, String>,
}

/// A failure to verify, already phrased for the rule message.
enum Failure {
    /// The check failed (`fail`).
    Check(Why),
    /// Evidence could not be gathered or the policy cannot be evaluated (`error`).
    Error(Why),
}

/// Why a check failed or could not be made: a stable code and the message.
#[derive(Debug, Clone)]
struct Why {
    code: String,
    message: String,
}

/// The code of a failed check that names nothing more specific.
const FAILED: &str = "policy.verify_images.failed";
/// The code of an image reference in the resource that cannot be parsed (and so verified).
const INVALID_REFERENCE: &str = "policy.verify_images.invalid_reference";
/// The code of a check that could not be made and names nothing more specific.
const ERROR: &str = "policy.verify_images.error";

impl Failure {
    /// A failed check with the generic code.
    fn check(message: impl Into<String>) -> Self {
        Failure::Check(Why {
            code: FAILED.into(),
            message: message.into(),
        })
    }

    /// A check that could not be made, with the generic code.
    fn error(message: impl Into<String>) -> Self {
        Failure::Error(Why {
            code: ERROR.into(),
            message: message.into(),
        })
    }

    /// The same failure with a more specific code.
    fn code(mut self, code: impl Into<String>) -> Self {
        match &mut self {
            Failure::Check(w) | Failure::Error(w) => w.code = code.into(),
        }
        self
    }
}

impl VerifyImagesContext<'_> {
    /// Evaluates a rule's `verifyImages` list against a resource.
    pub fn evaluate(
        &self,
        policy: &str,
        rule: &str,
        verify_images: &Value,
        resource: &Value,
        base_ctx: &Value,
        env: &Env,
    ) -> VerifyOutcome {
        let sites = ParsedSites::of(resource);
        self.evaluate_sites(policy, rule, verify_images, &sites, base_ctx, env)
    }

    /// [`Self::evaluate`] over image sites already parsed.
    pub(crate) fn evaluate_sites(
        &self,
        policy: &str,
        rule: &str,
        verify_images: &Value,
        sites: &ParsedSites,
        base_ctx: &Value,
        env: &Env,
    ) -> VerifyOutcome {
        use provenance_core::RuleStatus;
        let mut fails = Vec::new();
        let mut errors = Vec::new();
        if !verify_images.as_array().is_none_or(Vec::is_empty) {
            errors.extend(sites.problems.iter().cloned());
        }
        let parsed = sites;
        let sites = &sites.sites;
        let mut passes = Vec::new();
        let mut patches = Vec::new();
        let mut verified = BTreeMap::new();
        let mut reasons = Vec::new();
        let entries: &[Value] = verify_images.as_array().map(Vec::as_slice).unwrap_or(&[]);
        for (ei, entry) in entries.iter().enumerate() {
            let path = format!("verifyImages[{ei}]");
            let ty = entry
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("Cosign");
            if ty != "Cosign" && ty != "SigstoreBundle" {
                errors.push(format!("{path}: unsupported: type {ty}"));
                continue;
            }
            // An image this rule cannot parse fails the rule, never a skip and never an
            // `error` (which `failurePolicy: Ignore` admits): the request's author wrote the
            // reference, and one the parser does not know (another digest algorithm, a
            // malformed name) must not escape verification by not matching `imageReferences`.
            for ps in sites.iter().filter(|ps| ps.info.is_none()) {
                let message = format!(
                    "invalid image reference {:?} at {}: it cannot be verified",
                    ps.site.image, ps.site.pointer
                );
                fails.push(format!("{path}: {message}"));
                reasons.push(
                    provenance_core::Reason::new(INVALID_REFERENCE, message)
                        .at(path.clone())
                        .about(ps.site.image.clone()),
                );
            }
            let one = entry_requests(policy, rule, entry, sites);
            // `validate.deny`: checked once for the entry when it covers any image; the
            // condition holding fails the rule with the entry's message.
            if !one.is_empty()
                && let Some(deny) = entry.pointer("/validate/deny").filter(|d| !d.is_null())
            {
                let conds = deny.get("conditions").cloned().unwrap_or(Value::Null);
                match crate::kyverno::conditions::evaluate_block(
                    &conds,
                    base_ctx,
                    env,
                    &format!("{path}.validate.deny.conditions"),
                ) {
                    Ok(true) => fails.push(format!(
                        "{path}.validate: {}",
                        entry
                            .pointer("/validate/message")
                            .and_then(Value::as_str)
                            .unwrap_or("denied")
                    )),
                    Ok(false) => {}
                    Err(e) => errors.push(format!("{path}.validate: {e}")),
                }
            }
            let key_prefix = self
                .cache
                .filter(|_| !one.is_empty() && !depends_on_request(entry, base_ctx))
                .map(|c| (c, cache_key_prefix(self.verifier, policy, rule, entry)));
            for req in one {
                let info = sites
                    .iter()
                    .find(|ps| ps.site.image == req.image)
                    .and_then(|ps| ps.info.as_ref());
                let outcome = match self.resolve(&req, info) {
                    Err(f) => Err(f),
                    Ok((digest, ev)) => match &key_prefix {
                        None => self.verify_resolved(entry, &path, digest, ev, base_ctx, env),
                        Some((c, prefix)) => {
                            // A pass for this digest, else a failure for this very evidence
                            // (its key only when no pass is stored; the evidence's digest
                            // once per image and request).
                            let pass = cache_key(prefix, &req.reference, &digest);
                            if c.get_pass(&pass, self.now) {
                                c.count(true);
                                Ok(digest)
                            } else {
                                let fail = parsed
                                    .evidence_digest(&req.reference, ev)
                                    .map(|d| failure_key(&pass, &path, &d));
                                if let Some(why) =
                                    fail.as_ref().and_then(|f| c.get_failure(f, self.now))
                                {
                                    c.count(true);
                                    Err(Failure::Check(why))
                                } else {
                                    c.count(false);
                                    let r = self
                                        .verify_resolved(entry, &path, digest, ev, base_ctx, env);
                                    match (&r, fail) {
                                        (Ok(_), _) => c.put_pass(pass, self.now),
                                        (Err(Failure::Check(w)), Some(f)) => {
                                            c.put_failure(f, self.now, w.clone())
                                        }
                                        _ => {}
                                    }
                                    r
                                }
                            }
                        }
                    },
                };
                match outcome {
                    Ok(digest) => {
                        passes.push(format!("verified {}", req.reference));
                        let pinned = pin(
                            &req.image,
                            sites
                                .iter()
                                .find(|ps| ps.site.image == req.image)
                                .and_then(|ps| ps.info.as_ref()),
                            &digest,
                        );
                        verified.insert(pinned.clone(), "pass".to_owned());
                        let mutate = entry
                            .get("mutateDigest")
                            .and_then(Value::as_bool)
                            .unwrap_or(true);
                        let verify_digest = entry
                            .get("verifyDigest")
                            .and_then(Value::as_bool)
                            .unwrap_or(true);
                        let has_digest = req.image.contains('@');
                        if mutate && !has_digest {
                            patches.push(
                                json!({"op": "replace", "path": req.pointer, "value": pinned}),
                            );
                        } else if verify_digest && !mutate && !has_digest {
                            fails.push(format!(
                                "{}: missing digest (verifyDigest requires image@digest)",
                                req.image
                            ));
                        }
                    }
                    Err(Failure::Check(w)) => {
                        fails.push(format!("image {}: {}", req.reference, w.message));
                        reasons.push(
                            provenance_core::Reason::new(w.code, w.message)
                                .at(path.clone())
                                .about(req.reference.clone()),
                        );
                    }
                    Err(Failure::Error(w)) => {
                        errors.push(format!("image {}: {}", req.reference, w.message));
                        reasons.push(
                            provenance_core::Reason::new(w.code, w.message)
                                .at(path.clone())
                                .about(req.reference.clone()),
                        );
                    }
                }
            }
        }
        let (status, message) = if !fails.is_empty() {
            (RuleStatus::Fail, fails.join("; "))
        } else if !errors.is_empty() {
            (RuleStatus::Error, errors.join("; "))
        } else if passes.is_empty() {
            // Every image the rule covers was skipped (`skipImageReferences`, or matched by
            // no entry that verifies it): Kyverno's skip message, once per image.
            let skipped: Vec<String> = sites
                .iter()
                .filter_map(ParsedSite::reference)
                .filter(|r| {
                    entries.iter().any(|e| {
                        let mut refs = strings(e.get("imageReferences"));
                        refs.extend(strings(e.get("image")));
                        matches_refs(&refs, r)
                    })
                })
                .map(|r| {
                    format!("skipping image reference image {r}, policy {policy} ruleName {rule}")
                })
                .collect();
            (
                RuleStatus::Skip,
                if skipped.is_empty() {
                    "no image matched imageReferences".to_owned()
                } else {
                    skipped.join("; ")
                },
            )
        } else {
            (RuleStatus::Pass, passes.join("; "))
        };
        VerifyOutcome {
            status,
            message,
            reasons,
            patches,
            verified,
        }
    }
}

/// Kyverno's pinned form: `registry/path:tag@digest` (the tag is kept, so rules that read
/// `images.*.tag` decide the pinned object as they decided the submitted one).
fn pin(image: &str, info: Option<&Value>, digest: &Digest) -> String {
    match info {
        Some(info) => {
            let registry = info["registry"].as_str().unwrap_or_default();
            let path = info["path"].as_str().unwrap_or_default();
            let tag = match info.get("tag").and_then(Value::as_str) {
                // A reference written by digest only has no tag to keep (`latest` is
                // Kyverno's default for a reference with neither).
                Some(t) if !t.is_empty() && !image.contains('@') => format!(":{t}"),
                _ => String::new(),
            };
            if registry.is_empty() {
                format!("{path}{tag}@{digest}")
            } else {
                format!("{registry}/{path}{tag}@{digest}")
            }
        }
        None => format!("{}@{digest}", image.split('@').next().unwrap_or(image)),
    }
}
