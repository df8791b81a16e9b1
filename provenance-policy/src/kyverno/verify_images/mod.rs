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

use std::collections::BTreeMap;

use provenance_core::TrustReplacement;
use provenance_core::verify::{
    Expectation, IdentityExpectation, KeylessChecks, SignatureMaterial, Verifier,
};
use provenance_core::wildcard::wildcard_match;
use provenance_core::{Digest, PublicKey, Reason, UnixTime};
use serde_json::{Value, json};

use crate::kyverno::context::{image_info, images_of};

use crate::lang::jmespath::Env;

/// Evidence gathered for one image reference.
///
/// Built with [`ImageEvidence::resolved`] and the `with_*` methods, or with
/// [`ImageEvidence::unavailable`] / [`ImageEvidence::unusable`] when there is none; the fields
/// are public for reading. New fields may be added: construct it through these functions.
///
/// ```
/// use std::collections::BTreeMap;
/// use provenance_policy::core::Digest;
/// use provenance_policy::core::verify::SignatureMaterial;
/// use provenance_policy::kyverno::verify_images::ImageEvidence;
///
/// // What a registry served for `registry.example.com/ml/model:1`, not verified yet.
/// let digest = Digest::sha256_of(b"the image manifest");
/// let bundle = SignatureMaterial::Bundle(br#"{"mediaType": "..."}"#.to_vec());
/// let ev = ImageEvidence::resolved(digest.clone()).with_signatures([bundle]);
/// assert_eq!(ev.digest, Some(digest));
/// assert_eq!(ev.signatures.len(), 1);
/// assert!(ev.attestations.is_empty() && ev.layers.is_none());
/// assert!(ev.error.is_none() && ev.invalid.is_none());
///
/// // Keyed by Kyverno's image string (`ImageRequest::reference`) for `VerifyImagesContext`.
/// let evidence = BTreeMap::from([("registry.example.com/ml/model:1".to_owned(), ev)]);
/// # let _ = evidence;
/// ```
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ImageEvidence {
    /// The manifest (or index) digest the reference resolves to.
    pub digest: Option<Digest>,
    /// Signature material attached to the digest (cosign `.sig` layers, bundle referrers).
    pub signatures: Vec<SignatureMaterial>,
    /// Attestation material attached to the digest (DSSE bundles, cosign `.att` layers).
    pub attestations: Vec<SignatureMaterial>,
    /// Why gathering failed (network, auth, timeout: the infrastructure, not the image):
    /// reported as `error`, with this reason's code (e.g. `oci.transport`) on the image.
    pub error: Option<Reason>,
    /// Why what was served for this image cannot be evidence (a malformed or oversized
    /// manifest, a digest that does not match): the image owner's content failing, reported
    /// as `fail` with this reason's code. Never an `error`, which `failurePolicy: Ignore`
    /// would admit.
    pub invalid: Option<Reason>,
    /// The layers of the image manifest at `digest`, gathered when a rule verifies a
    /// model-signing attestation (their path annotations and digests are what the signed
    /// resources are compared with). `None` when not gathered or the digest names an index.
    pub layers: Option<Vec<provenance_attest::model_artifact::ArtifactLayer>>,
}

/// The code of evidence that could not be gathered for a reason with no code of its own.
pub const EVIDENCE_UNAVAILABLE: &str = "policy.verify_images.evidence_unavailable";

impl ImageEvidence {
    /// Evidence for an image whose reference resolved to `digest`, with no signature,
    /// attestation or layer attached yet (add them with [`with_signatures`],
    /// [`with_attestations`] and [`with_layers`]). Rules that need signatures or attestations
    /// fail over it as it is (`policy.verify_images.no_signatures`, `no_attestations`).
    ///
    /// [`with_signatures`]: ImageEvidence::with_signatures
    /// [`with_attestations`]: ImageEvidence::with_attestations
    /// [`with_layers`]: ImageEvidence::with_layers
    pub fn resolved(digest: Digest) -> Self {
        ImageEvidence {
            digest: Some(digest),
            ..ImageEvidence::default()
        }
    }

    /// The same evidence with `signatures` as its signature material (replacing any set
    /// before): cosign `.sig` layers or Sigstore bundles attached to the digest, unverified.
    pub fn with_signatures(
        mut self,
        signatures: impl IntoIterator<Item = SignatureMaterial>,
    ) -> Self {
        self.signatures = signatures.into_iter().collect();
        self
    }

    /// The same evidence with `attestations` as its attestation material (replacing any set
    /// before): DSSE bundles or cosign `.att` layers attached to the digest, unverified.
    pub fn with_attestations(
        mut self,
        attestations: impl IntoIterator<Item = SignatureMaterial>,
    ) -> Self {
        self.attestations = attestations.into_iter().collect();
        self
    }

    /// The same evidence with the layers of the image manifest (`None`: not gathered), which
    /// model-signing attestations are bound to (see [`ImageEvidence::layers`]).
    pub fn with_layers(
        mut self,
        layers: impl Into<Option<Vec<provenance_attest::model_artifact::ArtifactLayer>>>,
    ) -> Self {
        self.layers = layers.into();
        self
    }

    /// No evidence, because gathering failed for a reason outside the image (`reason`'s code
    /// says which: a registry error's code, [`EVIDENCE_UNAVAILABLE`], ...): every rule over the
    /// image reports `error`.
    pub fn unavailable(reason: Reason) -> Self {
        ImageEvidence {
            error: Some(reason),
            ..ImageEvidence::default()
        }
    }

    /// No evidence, because what was served for the image cannot be evidence: every rule over
    /// the image reports `fail`.
    pub fn unusable(reason: Reason) -> Self {
        ImageEvidence {
            invalid: Some(reason),
            ..ImageEvidence::default()
        }
    }

    /// Evidence for every image `requests` name that could not be gathered at all (no source
    /// configured, or the source could not be opened): each entry is
    /// [`unavailable`](ImageEvidence::unavailable) with `reason` ([`EVIDENCE_UNAVAILABLE`]),
    /// so every rule over those images reports `error` with it, never a pass.
    pub fn unavailable_for(requests: &[ImageRequest], reason: &str) -> BTreeMap<String, Self> {
        requests
            .iter()
            .map(|r| {
                (
                    r.reference.clone(),
                    ImageEvidence::unavailable(Reason::new(EVIDENCE_UNAVAILABLE, reason)),
                )
            })
            .collect()
    }
}

/// One image a `verifyImages` rule covers, and the evidence it needs.
///
/// [`image_requests`] (and `PolicySet::image_requests`) list them for a resource. To gather
/// evidence for an image without a resource, build one with [`ImageRequest::new`] and the
/// `requiring_*` methods; the fields are public for reading. New fields may be added.
///
/// ```
/// use provenance_policy::kyverno::verify_images::ImageRequest;
///
/// let req = ImageRequest::new("verify-models", "signed", "registry.example.com/ml/model:1")
///     .at("/spec/containers/0/image")
///     .requiring_signatures()
///     .requiring_attestations(["https://slsa.dev/provenance/v1".to_owned()]);
/// assert_eq!(req.image, req.reference);
/// assert!(req.signatures && !req.needs_layers());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImageRequest {
    /// Policy name.
    pub policy: String,
    /// Rule name.
    pub rule: String,
    /// The image as written in the resource.
    pub image: String,
    /// Kyverno's image string (`registry/path:tag`), the key evidence is looked up by.
    pub reference: String,
    /// JSON pointer of the field holding the image.
    pub pointer: String,
    /// Alternate signature repository (`repository`), if set.
    pub repository: Option<String>,
    /// Whether signatures are needed.
    pub signatures: bool,
    /// Attestation predicate types needed.
    pub attestation_types: Vec<String>,
}

impl ImageRequest {
    /// A request of `policy`'s `rule` for the image Kyverno names `reference`
    /// (`registry/path:tag` or `registry/path@digest`, the key its evidence is looked up by),
    /// written the same way in the resource ([`ImageRequest::written_as`] when it is not), at
    /// no field ([`ImageRequest::at`]), from the image's own repository, needing neither
    /// signatures nor attestations yet.
    pub fn new(
        policy: impl Into<String>,
        rule: impl Into<String>,
        reference: impl Into<String>,
    ) -> Self {
        let reference = reference.into();
        ImageRequest {
            policy: policy.into(),
            rule: rule.into(),
            image: reference.clone(),
            reference,
            pointer: String::new(),
            repository: None,
            signatures: false,
            attestation_types: Vec::new(),
        }
    }

    /// The same request for the image as written in the resource (`image`), when it differs
    /// from Kyverno's image string (`busybox:1` for `docker.io/library/busybox:1`).
    pub fn written_as(mut self, image: impl Into<String>) -> Self {
        self.image = image.into();
        self
    }

    /// The same request with `pointer`, the JSON pointer of the field holding the image.
    pub fn at(mut self, pointer: impl Into<String>) -> Self {
        self.pointer = pointer.into();
        self
    }

    /// The same request with its signatures and attestations looked up in `repository` (a
    /// rule's `repository`) instead of the image's own.
    pub fn in_repository(mut self, repository: impl Into<String>) -> Self {
        self.repository = Some(repository.into());
        self
    }

    /// The same request needing the image's signatures (the rule has `attestors`).
    pub fn requiring_signatures(mut self) -> Self {
        self.signatures = true;
        self
    }

    /// The same request needing attestations of these predicate types (replacing any set
    /// before).
    pub fn requiring_attestations(mut self, types: impl IntoIterator<Item = String>) -> Self {
        self.attestation_types = types.into_iter().collect();
        self
    }

    /// True when the request verifies a model-signing attestation, whose evidence includes
    /// the image manifest's layers ([`ImageEvidence::layers`]). Evidence gathered without
    /// them must not be reused for such a request (the rule would fail, not pass).
    pub fn needs_layers(&self) -> bool {
        self.attestation_types.iter().any(|t| t == MODEL_SIGNING_V1)
    }
}

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

/// `verifyImages` outcomes, remembered across decisions (Kyverno's `useCache`).
///
/// A pass says "this `verifyImages` entry of this policy rule passed for this image digest
/// under this trust root". Its key is a SHA-256 over exactly those: the verifier's trust-root
/// fingerprint, the policy and rule names, the entry as written (attestors, attestations,
/// conditions: any policy change is a new key), the image string and the digest the evidence
/// resolved it to (a moved tag is a new key). A pass is reused while
/// `stored_at <= now < stored_at + ttl`.
///
/// A failed check (`fail`, never `error`) is remembered too, for at most
/// [`FAILURE_TTL_SECONDS`], under the pass key extended with the entry's place in the policy
/// and a digest of all the evidence it was decided on (signature and attestation material,
/// layers): the same junk signatures on a tag cost one verification, not one per admission,
/// while a signature pushed later is new evidence, so a new key, and is verified at once.
/// Errors (missing evidence, an unreachable registry, a policy that cannot be evaluated) are
/// never stored. A remembered failure can only deny what verifying would have denied.
///
/// Entries whose attestation `conditions` read anything besides the predicate (the request,
/// `images`, `element`, rule context variables, or time functions) are never stored: their
/// outcome depends on more than the key.
///
/// Passes and failures are kept apart, so failures (which anyone who can push an unsigned
/// image can cause) never take the room of passes. At `capacity` passes the passes are
/// emptied before the next insert. Failures are at most `min(capacity,`
/// [`FAILURE_CAPACITY`]`)`: when full, the expired ones are dropped, and if none has expired,
/// all failures are. A failure whose message is longer than [`FAILURE_MAX_MESSAGE`] bytes is not
/// stored. No entry outlives its TTL, and memory stays bounded. The cache is `Sync`: share one
/// between threads.
#[derive(Debug)]
pub struct VerifyImagesCache {
    /// When each pass was stored.
    passes: std::sync::Mutex<std::collections::HashMap<[u8; 32], UnixTime>>,
    /// When each failed check was stored, and why it failed.
    failures: std::sync::Mutex<std::collections::HashMap<[u8; 32], (UnixTime, Why)>>,
    capacity: usize,
    ttl_seconds: i64,
    hits: std::sync::atomic::AtomicU64,
    misses: std::sync::atomic::AtomicU64,
}

/// The most failed checks a [`VerifyImagesCache`] keeps at once.
pub const FAILURE_CAPACITY: usize = 1024;

/// The longest failure message a [`VerifyImagesCache`] keeps (longer ones are verified again).
pub const FAILURE_MAX_MESSAGE: usize = 8 * 1024;

impl VerifyImagesCache {
    /// A cache of at most `capacity` passes, each reused for `ttl_seconds`, and of at most
    /// `min(capacity, FAILURE_CAPACITY)` failed checks, each reused for
    /// `min(ttl_seconds, FAILURE_TTL_SECONDS)`.
    pub fn new(capacity: usize, ttl_seconds: i64) -> Self {
        VerifyImagesCache {
            passes: Default::default(),
            failures: Default::default(),
            capacity: capacity.max(1),
            ttl_seconds: ttl_seconds.max(0),
            hits: Default::default(),
            misses: Default::default(),
        }
    }

    /// Lookups answered from the cache.
    pub fn hits(&self) -> u64 {
        self.hits.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Lookups that had to verify (including those whose outcome cannot be cached).
    pub fn misses(&self) -> u64 {
        self.misses.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Entries currently stored (passes and failures).
    pub fn len(&self) -> usize {
        self.passes.lock().map(|m| m.len()).unwrap_or(0)
            + self.failures.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets every entry (e.g. after the policies or the trust root changed; new keys would
    /// not match the old entries anyway, this only frees the memory).
    pub fn clear(&self) {
        if let Ok(mut m) = self.passes.lock() {
            m.clear();
        }
        if let Ok(mut m) = self.failures.lock() {
            m.clear();
        }
    }

    fn failure_ttl(&self) -> i64 {
        self.ttl_seconds.min(FAILURE_TTL_SECONDS)
    }

    fn fresh(at: UnixTime, now: UnixTime, ttl: i64) -> bool {
        at <= now && now.0 - at.0 < ttl
    }

    /// Whether a pass is stored under `key` and still fresh at `now`.
    fn get_pass(&self, key: &[u8; 32], now: UnixTime) -> bool {
        self.passes
            .lock()
            .ok()
            .and_then(|m| m.get(key).copied())
            .is_some_and(|at| Self::fresh(at, now, self.ttl_seconds))
    }

    /// The failed check stored under `key` and still fresh at `now`.
    fn get_failure(&self, key: &[u8; 32], now: UnixTime) -> Option<Why> {
        let m = self.failures.lock().ok()?;
        let (at, why) = m.get(key)?;
        Self::fresh(*at, now, self.failure_ttl()).then(|| why.clone())
    }

    fn count(&self, hit: bool) {
        use std::sync::atomic::Ordering::Relaxed;
        if hit {
            self.hits.fetch_add(1, Relaxed);
        } else {
            self.misses.fetch_add(1, Relaxed);
        }
    }

    fn put_pass(&self, key: [u8; 32], now: UnixTime) {
        if let Ok(mut m) = self.passes.lock() {
            if m.len() >= self.capacity && !m.contains_key(&key) {
                m.clear();
            }
            m.insert(key, now);
        }
    }

    fn put_failure(&self, key: [u8; 32], now: UnixTime, why: Why) {
        if why.message.len() > FAILURE_MAX_MESSAGE {
            return;
        }
        let (cap, ttl) = (self.capacity.min(FAILURE_CAPACITY), self.failure_ttl());
        if let Ok(mut m) = self.failures.lock() {
            if m.len() >= cap && !m.contains_key(&key) {
                m.retain(|_, (at, _)| Self::fresh(*at, now, ttl));
                if m.len() >= cap {
                    m.clear();
                }
            }
            m.insert(key, (now, why));
        }
    }
}

/// `list`, or only its Sigstore bundles when `bundles_only`.
fn kept(
    list: &[SignatureMaterial],
    bundles_only: bool,
) -> std::borrow::Cow<'_, [SignatureMaterial]> {
    if bundles_only {
        list.iter()
            .filter(|m| matches!(m, SignatureMaterial::Bundle(_)))
            .cloned()
            .collect()
    } else {
        std::borrow::Cow::Borrowed(list)
    }
}

/// How long a failed check is remembered at most (see [`VerifyImagesCache`]).
pub const FAILURE_TTL_SECONDS: i64 = 10;

/// The key of a failed check: the pass key, the entry's place in the policy (its messages
/// name it) and the digest of the evidence the check was decided on ([`evidence_digest`]).
fn failure_key(pass: &[u8; 32], path: &str, evidence: &[u8; 32]) -> [u8; 32] {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    hash_field(&mut ctx, b"failure");
    hash_field(&mut ctx, pass);
    hash_field(&mut ctx, path.as_bytes());
    hash_field(&mut ctx, evidence);
    finish(ctx)
}

/// A digest of every part of `ev` a check can be decided on; `None` for material of a kind
/// this digest does not know how to take in (a failure over it is then not remembered).
fn evidence_digest(ev: &ImageEvidence) -> Option<[u8; 32]> {
    // Destructured in full: a field added to the evidence must be considered here.
    let ImageEvidence {
        digest,
        signatures,
        attestations,
        error,
        invalid,
        layers,
    } = ev;
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    hash_field(
        &mut ctx,
        digest
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default()
            .as_bytes(),
    );
    for (what, list) in [(b"signatures", signatures), (b"attestatio", attestations)] {
        hash_field(&mut ctx, what);
        ctx.update(&(list.len() as u64).to_be_bytes());
        for m in list {
            match m {
                SignatureMaterial::Bundle(b) => {
                    hash_field(&mut ctx, b"bundle");
                    hash_field(&mut ctx, b);
                }
                SignatureMaterial::Cosign(c) => {
                    let provenance_core::verify::CosignSignature {
                        payload,
                        annotations,
                    } = c;
                    hash_field(&mut ctx, b"cosign");
                    hash_field(&mut ctx, payload);
                    hash_map(&mut ctx, annotations);
                }
                _ => return None,
            }
        }
    }
    // Evidence with an error or invalid reason never reaches verification; hashed anyway.
    for r in [error, invalid] {
        hash_field(
            &mut ctx,
            r.as_ref()
                .map(|r| r.to_string())
                .unwrap_or_default()
                .as_bytes(),
        );
    }
    match layers {
        None => hash_field(&mut ctx, b"no layers"),
        Some(ls) => {
            ctx.update(&(ls.len() as u64).to_be_bytes());
            for l in ls {
                let provenance_attest::model_artifact::ArtifactLayer {
                    media_type,
                    digest,
                    size,
                    annotations,
                } = l;
                hash_field(&mut ctx, media_type.as_bytes());
                hash_field(&mut ctx, digest.as_bytes());
                ctx.update(&size.to_be_bytes());
                hash_map(&mut ctx, annotations);
            }
        }
    }
    Some(finish(ctx))
}

fn hash_map(ctx: &mut aws_lc_rs::digest::Context, m: &BTreeMap<String, String>) {
    ctx.update(&(m.len() as u64).to_be_bytes());
    for (k, v) in m {
        hash_field(ctx, k.as_bytes());
        hash_field(ctx, v.as_bytes());
    }
}

/// The part of a cache key common to every image of one `verifyImages` entry: the verifier's
/// trust root, the policy, the rule and the entry as written (see [`VerifyImagesCache`]).
fn cache_key_prefix(
    verifier: &Verifier,
    policy: &str,
    rule: &str,
    entry: &Value,
) -> aws_lc_rs::digest::Context {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    hash_field(&mut ctx, verifier.trust_root_fingerprint().as_bytes());
    hash_field(&mut ctx, policy.as_bytes());
    hash_field(&mut ctx, rule.as_bytes());
    hash_value(&mut ctx, entry);
    ctx
}

/// The cache key of a pass: the entry's prefix, the image string and its digest.
fn cache_key(prefix: &aws_lc_rs::digest::Context, reference: &str, digest: &Digest) -> [u8; 32] {
    let mut ctx = prefix.clone();
    hash_field(&mut ctx, reference.as_bytes());
    hash_field(&mut ctx, digest.algorithm().to_string().as_bytes());
    hash_field(&mut ctx, digest.as_bytes());
    finish(ctx)
}

/// The 32 bytes of a finished SHA-256: a cache key.
fn finish(ctx: aws_lc_rs::digest::Context) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

fn hash_field(ctx: &mut aws_lc_rs::digest::Context, bytes: &[u8]) {
    ctx.update(&(bytes.len() as u64).to_be_bytes());
    ctx.update(bytes);
}

/// Feeds a JSON value into `ctx` unambiguously (a type tag per node, lengths before contents,
/// object keys in order), without serializing it.
fn hash_value(ctx: &mut aws_lc_rs::digest::Context, v: &Value) {
    match v {
        Value::Null => ctx.update(b"n"),
        Value::Bool(b) => ctx.update(if *b { b"t" } else { b"f" }),
        Value::Number(n) => {
            ctx.update(b"#");
            hash_field(ctx, n.to_string().as_bytes());
        }
        Value::String(s) => {
            ctx.update(b"s");
            hash_field(ctx, s.as_bytes());
        }
        Value::Array(a) => {
            ctx.update(b"[");
            ctx.update(&(a.len() as u64).to_be_bytes());
            for x in a {
                hash_value(ctx, x);
            }
        }
        Value::Object(o) => {
            ctx.update(b"{");
            ctx.update(&(o.len() as u64).to_be_bytes());
            for (k, x) in o {
                hash_field(ctx, k.as_bytes());
                hash_value(ctx, x);
            }
        }
    }
}

/// Whether the outcome of `entry` may depend on more than the key of [`VerifyImagesCache`]:
/// its attestation conditions mention a name of the rule's context document (`request`,
/// `images`, context variables...) or a time function. Conservative: a predicate field that
/// shares a name with a context key also counts.
fn depends_on_request(entry: &Value, ctx: &Value) -> bool {
    let Some(atts) = entry.get("attestations").and_then(Value::as_array) else {
        return false;
    };
    let mut texts = Vec::new();
    for a in atts {
        if let Some(c) = a.get("conditions") {
            collect_templates(c, &mut texts);
        }
    }
    if texts.is_empty() {
        return false;
    }
    let keys: Vec<&str> = ctx
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    texts.iter().any(|t| {
        t.contains("time_")
            || t.contains('$')
            || keys.iter().any(|k| t.contains(k))
            || ["request", "images", "element", "serviceAccount"]
                .iter()
                .any(|k| t.contains(k))
    })
}

/// The `{{ ... }}` expressions in `s`.
fn templates_in<'a>(s: &'a str, out: &mut Vec<&'a str>) {
    let mut rest = s;
    while let Some(i) = rest.find("{{") {
        let after = &rest[i + 2..];
        match after.find("}}") {
            Some(j) => {
                out.push(&after[..j]);
                rest = &after[j + 2..];
            }
            None => {
                out.push(after);
                break;
            }
        }
    }
}

/// The `{{ ... }}` expressions in every string under `v` (keys included).
fn collect_templates<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::String(s) => templates_in(s, out),
        Value::Array(a) => a.iter().for_each(|x| collect_templates(x, out)),
        Value::Object(o) => {
            for (k, x) in o {
                templates_in(k, out);
                collect_templates(x, out);
            }
        }
        _ => {}
    }
}

/// The outcome of one `verifyImages` rule on one resource.
#[derive(Debug, Clone, PartialEq)]
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

fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_owned))
            .collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    }
}

fn attestation_type(a: &Value) -> Option<String> {
    a.get("type")
        .or_else(|| a.get("predicateType"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn matches_refs(patterns: &[String], image: &str) -> bool {
    let normalized = host_normalized(image);
    patterns.iter().any(|p| {
        wildcard_match(p, image) || normalized.as_deref().is_some_and(|n| wildcard_match(p, n))
    })
}

/// The same reference with its registry host as the network sees it: lower case, without
/// the default HTTPS port. `REGISTRY.example.com:443/ml/x:1` pulls from
/// `registry.example.com`, so patterns naming that registry must select it (Kyverno compares
/// the strings as written, and misses it). `None` when nothing changes.
pub(crate) fn host_normalized(reference: &str) -> Option<String> {
    let (host, rest) = reference.split_once('/')?;
    if !host.contains(['.', ':']) && host != "localhost" {
        return None;
    }
    let mut h = host.to_ascii_lowercase();
    if let Some(stripped) = h.strip_suffix(":443") {
        h = stripped.to_owned();
    }
    (h != host).then(|| format!("{h}/{rest}"))
}

/// Lists the images a `verifyImages` block (the rule's raw list) covers in `resource`.
pub fn image_requests(
    policy: &str,
    rule: &str,
    verify_images: &Value,
    resource: &Value,
) -> Vec<ImageRequest> {
    let mut out = Vec::new();
    let Some(entries) = verify_images.as_array() else {
        return out;
    };
    let sites = parsed_sites(resource);
    for entry in entries {
        out.extend(entry_requests(policy, rule, entry, &sites));
    }
    out
}

/// [`image_requests`] for a rule with Kyverno `imageExtractors` (the rule's
/// `imageExtractors` object, by kind): the images of `resource` are those its kind's
/// extractors find, in place of the built-in Pod extractors. Extractors that cannot be
/// applied give no requests here; evaluation reports them as an `error`.
pub fn image_requests_with_extractors(
    policy: &str,
    rule: &str,
    verify_images: &Value,
    extractors: Option<&Value>,
    resource: &Value,
) -> Vec<ImageRequest> {
    let Some(entries) = verify_images.as_array() else {
        return Vec::new();
    };
    let sites = ParsedSites::for_rule(resource, extractors);
    entries
        .iter()
        .flat_map(|e| entry_requests(policy, rule, e, &sites.sites))
        .collect()
}

/// The image sites of one resource, each parsed once (shared by every `verifyImages` rule
/// that evaluates the resource), and the image fields no extractor covered.
#[derive(Default)]
pub(crate) struct ParsedSites {
    sites: Vec<ParsedSite>,
    /// Why some images of the resource cannot be verified (image fields no extractor
    /// reached, extractors that failed): each is an `error` for a rule over the resource.
    problems: Vec<String>,
    /// Digests of the evidence of each image, by reference, computed once per request for
    /// the keys of remembered failures (see [`failure_key`]).
    evidence_digests: std::sync::Mutex<BTreeMap<String, Option<[u8; 32]>>>,
}

impl ParsedSites {
    /// [`evidence_digest`] of `ev`, the evidence of `reference`, computed once.
    fn evidence_digest(&self, reference: &str, ev: &ImageEvidence) -> Option<[u8; 32]> {
        let mut memo = self.evidence_digests.lock().ok()?;
        if let Some(d) = memo.get(reference) {
            return *d;
        }
        let d = evidence_digest(ev);
        memo.insert(reference.to_owned(), d);
        d
    }

    /// Whether a `verifyImages` rule produces a result for these sites at all. As Kyverno's
    /// engine does, a rule none of whose entries' `imageReferences` matches any image of the
    /// resource produces **no** rule response (not a skip): nothing in `apply`, `test` or a
    /// PolicyReport. A site that cannot be parsed, or image fields the extractors do not
    /// cover, always produce one (an error: they must not escape verification by not
    /// matching).
    pub(crate) fn covered_by(&self, verify_images: &Value) -> bool {
        if !self.problems.is_empty() || self.sites.iter().any(|ps| ps.info.is_none()) {
            return true;
        }
        let entries: &[Value] = verify_images.as_array().map(Vec::as_slice).unwrap_or(&[]);
        entries.iter().any(|entry| {
            let mut refs = strings(entry.get("imageReferences"));
            refs.extend(strings(entry.get("image")));
            self.sites
                .iter()
                .filter_map(ParsedSite::reference)
                .any(|r| matches_refs(&refs, r))
        })
    }

    /// Parses every image site of `resource` (the built-in Pod extractors).
    pub(crate) fn of(resource: &Value) -> Self {
        let sites = parsed_sites(resource);
        let problems = unextracted(resource, &sites);
        ParsedSites {
            sites,
            problems,
            evidence_digests: Default::default(),
        }
    }

    /// The sites for a rule: its `imageExtractors` for the resource's kind when it has some,
    /// else the built-in ones.
    pub(crate) fn for_rule(resource: &Value, extractors: Option<&Value>) -> Self {
        let kind = resource.get("kind").and_then(Value::as_str).unwrap_or("");
        let Some(list) = extractors
            .and_then(|e| e.get(kind))
            .filter(|l| !l.is_null())
        else {
            return Self::of(resource);
        };
        match crate::kyverno::context::extract_images(resource, list) {
            Ok(found) => {
                let sites: Vec<ParsedSite> = found
                    .into_iter()
                    .map(|site| ParsedSite {
                        info: image_info(&site.image),
                        site,
                    })
                    .collect();
                let problems = unextracted(resource, &sites);
                ParsedSites {
                    sites,
                    problems,
                    evidence_digests: Default::default(),
                }
            }
            Err(e) => ParsedSites {
                sites: Vec::new(),
                problems: vec![format!("imageExtractors.{kind}: {e}")],
                evidence_digests: Default::default(),
            },
        }
    }
}

/// Image fields of `resource` (string values of keys named `image`, outside `metadata` and
/// `status`) that no extracted site covers: a resource whose images the rule cannot see is
/// not a pass (a custom resource without `imageExtractors`, such as an inference service).
fn unextracted(resource: &Value, sites: &[ParsedSite]) -> Vec<String> {
    let mut found = Vec::new();
    collect_image_fields(resource, String::new(), 0, &mut found);
    found
        .into_iter()
        .filter(|(ptr, _)| {
            !ptr.starts_with("/metadata/")
                && !ptr.starts_with("/status/")
                && !sites.iter().any(|s| {
                    s.site.pointer == *ptr || ptr.starts_with(&format!("{}/", s.site.pointer))
                })
        })
        .map(|(ptr, img)| {
            format!(
                "image {img:?} at {ptr} is not extracted (the resource's kind needs imageExtractors)"
            )
        })
        .collect()
}

fn collect_image_fields(v: &Value, at: String, depth: usize, out: &mut Vec<(String, String)>) {
    if depth > 64 || out.len() > 256 {
        return;
    }
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                let p = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
                if k == "image"
                    && let Value::String(img) = x
                {
                    out.push((p, img.clone()));
                } else if k == "image"
                    && let Some(r) = x.get("reference").and_then(Value::as_str)
                {
                    out.push((format!("{p}/reference"), r.to_owned()));
                } else {
                    collect_image_fields(x, p, depth + 1, out);
                }
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                collect_image_fields(x, format!("{at}/{i}"), depth + 1, out);
            }
        }
        _ => {}
    }
}

/// An image site of a resource with its parsed form (`None`: not a valid reference).
struct ParsedSite {
    site: crate::kyverno::context::ImageSite,
    info: Option<Value>,
}

impl ParsedSite {
    fn reference(&self) -> Option<&str> {
        self.info.as_ref()?.get("reference")?.as_str()
    }
}

/// Every image site of `resource`, each parsed once.
fn parsed_sites(resource: &Value) -> Vec<ParsedSite> {
    images_of(resource)
        .into_iter()
        .map(|site| ParsedSite {
            info: image_info(&site.image),
            site,
        })
        .collect()
}

/// The images one `verifyImages` entry covers among `sites`.
fn entry_requests(
    policy: &str,
    rule: &str,
    entry: &Value,
    sites: &[ParsedSite],
) -> Vec<ImageRequest> {
    let mut out = Vec::new();
    let refs = {
        let mut r = strings(entry.get("imageReferences"));
        r.extend(strings(entry.get("image")));
        r
    };
    let skip = strings(entry.get("skipImageReferences"));
    for ps in sites {
        let Some(reference) = ps.reference() else {
            continue;
        };
        if !matches_refs(&refs, reference) || matches_refs(&skip, reference) {
            continue;
        }
        out.push(ImageRequest {
            policy: policy.to_owned(),
            rule: rule.to_owned(),
            image: ps.site.image.clone(),
            reference: reference.to_owned(),
            pointer: ps.site.pointer.clone(),
            repository: entry
                .get("repository")
                .and_then(Value::as_str)
                .map(str::to_owned),
            signatures: entry
                .get("attestors")
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty()),
            attestation_types: entry
                .get("attestations")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(attestation_type).collect())
                .unwrap_or_default(),
        });
    }
    out
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

/// One attestor after expansion: who must have signed, and the trust the policy writes for it
/// (empty: the caller's trust root).
#[derive(Clone)]
struct Attestor {
    expectation: Expectation,
    trust: TrustReplacement,
}

/// An attestor entry after expansion: its path, its attestor (or why it has none), or a
/// nested attestor set.
type ExpandedEntry = (
    String,
    Result<Option<Attestor>, Failure>,
    Option<Value>,
    Option<serde_json::Map<String, Value>>,
);

/// The trust material written in a policy for one attestor, read into the parts of the trust
/// root it replaces. Each argument is the PEM text of a field (empty or absent: not given);
/// `paths` names the fields for errors (Fulcio roots, Rekor key, CT log key, TSA chain).
pub(crate) fn policy_trust(fields: [(Option<&str>, &str); 4]) -> Result<TrustReplacement, String> {
    use provenance_core::trust_root::{certificates_from_pem, log_keys_from_pem};
    let given = |i: usize| fields[i].0.filter(|t| !t.trim().is_empty());
    let mut t = TrustReplacement::default();
    if let Some(pem) = given(0) {
        t.fulcio_roots = Some(certificates_from_pem(pem, fields[0].1).map_err(|e| e.to_string())?);
    }
    if let Some(pem) = given(1) {
        t.rekor_keys = Some(log_keys_from_pem(pem, fields[1].1).map_err(|e| e.to_string())?);
    }
    if let Some(pem) = given(2) {
        t.ctlog_keys = Some(log_keys_from_pem(pem, fields[2].1).map_err(|e| e.to_string())?);
    }
    if let Some(pem) = given(3) {
        t.tsa_chain = Some(certificates_from_pem(pem, fields[3].1).map_err(|e| e.to_string())?);
    }
    Ok(t)
}

/// The verifier one attestor is checked with: the caller's, or (when the policy writes trust
/// material for the attestor) the caller's trust root with those parts replaced.
pub(crate) enum VerifierFor<'a> {
    /// The caller's verifier.
    Caller(&'a Verifier),
    /// A verifier derived from it ([`Verifier::with_trust`]).
    Derived(std::sync::Arc<Verifier>),
}

impl<'a> VerifierFor<'a> {
    /// The verifier for `trust` over `base`.
    pub(crate) fn new(
        base: &'a Verifier,
        trust: &TrustReplacement,
    ) -> Result<Self, provenance_core::Error> {
        if trust.is_empty() {
            Ok(VerifierFor::Caller(base))
        } else {
            base.with_trust(trust).map(VerifierFor::Derived)
        }
    }
}

impl std::ops::Deref for VerifierFor<'_> {
    type Target = Verifier;
    fn deref(&self) -> &Verifier {
        match self {
            VerifierFor::Caller(v) => v,
            VerifierFor::Derived(v) => v,
        }
    }
}

/// Builds the attestors one attestor entry stands for (several `publicKeys` → several), each
/// with the trust material the entry writes (`keyless.roots`, `rekor.pubkey`, `ctlog.pubkey`,
/// `ctlog.tsaCertChain`) replacing those parts of the caller's trust root.
fn entry_expectations(entry: &Value, path: &str) -> Result<Vec<Attestor>, Failure> {
    let unsupported = |what: &str| {
        Failure::error(format!("{path}: unsupported: {what}")).code("policy.unsupported")
    };
    let text = |v: &Value, p: &str| v.pointer(p).and_then(Value::as_str).map(str::to_owned);
    let trust_of = |o: &Value, kind: &str, roots: Option<String>| {
        let (rekor, ct, tsa) = (
            text(o, "/rekor/pubkey"),
            text(o, "/ctlog/pubkey"),
            text(o, "/ctlog/tsaCertChain"),
        );
        policy_trust([
            (roots.as_deref(), &format!("{path}.{kind}.roots")),
            (rekor.as_deref(), &format!("{path}.{kind}.rekor.pubkey")),
            (ct.as_deref(), &format!("{path}.{kind}.ctlog.pubkey")),
            (tsa.as_deref(), &format!("{path}.{kind}.ctlog.tsaCertChain")),
        ])
        .map_err(|e| {
            Failure::error(format!("{path}: [policy.trust.invalid] {e}"))
                .code("policy.trust.invalid")
        })
    };
    if let Some(keys) = entry.get("keys").filter(|k| !k.is_null()) {
        let pem = keys
            .get("publicKeys")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if pem.trim().is_empty() {
            return Err(unsupported("keys without publicKeys (kms, secret)"));
        }
        let parsed = PublicKey::all_from_pem(pem)
            .map_err(|e| Failure::error(format!("{path}.keys.publicKeys: {e}")))?;
        let ignore_tlog = keys
            .pointer("/rekor/ignoreTlog")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        // `ctlog.ignoreSCT` and `ctlog.pubkey` on a key attestor change nothing: a key
        // signature has no certificate and so no SCT to check.
        let trust = trust_of(keys, "keys", None)?;
        return Ok(parsed
            .into_iter()
            .map(|key| Attestor {
                expectation: Expectation::Key {
                    key,
                    allow_no_transparency: ignore_tlog,
                },
                trust: trust.clone(),
            })
            .collect());
    }
    if let Some(k) = entry.get("keyless").filter(|k| !k.is_null()) {
        let trust = trust_of(k, "keyless", text(k, "/roots"))?;
        let checks = KeylessChecks {
            transparency_log: k.pointer("/rekor/ignoreTlog").and_then(Value::as_bool) != Some(true),
            sct: k.pointer("/ctlog/ignoreSCT").and_then(Value::as_bool) != Some(true),
        };
        let s = |key: &str| {
            k.get(key)
                .and_then(Value::as_str)
                .filter(|x| !x.is_empty())
                .map(str::to_owned)
        };
        let mut id = IdentityExpectation {
            subject: s("subject"),
            // Set by the loader for `type: SigstoreBundle`, whose subject is exact.
            subject_exact: s("subjectExact"),
            subject_regexp: s("subjectRegExp"),
            issuer: s("issuer"),
            issuer_regexp: s("issuerRegExp"),
            ..Default::default()
        };
        if let Some(Value::Object(ext)) = k.get("additionalExtensions") {
            for (name, v) in ext {
                if let Some(v) = v.as_str() {
                    id.additional_extensions.insert(name.clone(), v.to_owned());
                }
            }
        }
        return Ok(vec![Attestor {
            expectation: Expectation::KeylessWith {
                identity: id,
                checks,
            },
            trust,
        }]);
    }
    if let Some(c) = entry.get("certificates").filter(|c| !c.is_null()) {
        // Kyverno verifies the signature with the given certificate's key; the certificate
        // itself (chain, validity) is not what is checked, the log entry is (unless ignored).
        if c.get("certChain")
            .and_then(Value::as_str)
            .is_some_and(|t| !t.trim().is_empty())
        {
            return Err(unsupported(
                "certificates.certChain (Kyverno cannot verify a certificate with a chain either)",
            ));
        }
        let pem = text(c, "/cert").unwrap_or_default();
        let certs = provenance_core::trust_root::certificates_from_pem(
            &pem,
            &format!("{path}.certificates.cert"),
        )
        .map_err(|e| {
            Failure::error(format!("{path}: [policy.trust.invalid] {e}"))
                .code("policy.trust.invalid")
        })?;
        let [der] = certs.as_slice() else {
            return Err(Failure::error(format!(
                "{path}.certificates.cert: [policy.trust.invalid] exactly one certificate is expected, found {}",
                certs.len()
            )));
        };
        let key = PublicKey::from_certificate_der(der)
            .map_err(|e| Failure::error(format!("{path}.certificates.cert: {e}")))?;
        let ignore_tlog = c.pointer("/rekor/ignoreTlog").and_then(Value::as_bool) == Some(true);
        return Ok(vec![Attestor {
            expectation: Expectation::Key {
                key,
                allow_no_transparency: ignore_tlog,
            },
            trust: trust_of(c, "certificates", None)?,
        }]);
    }
    Err(Failure::error(format!(
        "{path}: attestor entry has no keys, keyless or attestor"
    )))
}

/// What an attestor must have signed for its entry to count.
#[derive(Clone, Copy)]
enum Want<'a> {
    /// A signature of the image (simple-signing payload, message signature, or cosign's
    /// signing Statement).
    Signature,
    /// An attestation: a verified in-toto Statement of this predicate type naming the digest.
    Attestation(&'a str),
}

/// Verifies an attestor set against `materials`; returns the payloads that verified.
fn verify_attestor_set(
    set: &Value,
    path: &str,
    digest: &Digest,
    materials: &[SignatureMaterial],
    want: Want<'_>,
    cx: &VerifyImagesContext<'_>,
    depth: usize,
) -> Result<Vec<Vec<u8>>, Failure> {
    if depth > 4 {
        return Err(Failure::error(format!(
            "{path}: attestors nested too deeply"
        )));
    }
    let entries = set
        .get("entries")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    // Expand entries (several public keys are several entries, as Kyverno does).
    let mut expanded: Vec<ExpandedEntry> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let epath = format!("{path}.entries[{i}]");
        if let Some(nested) = e.get("attestor").filter(|n| !n.is_null()) {
            expanded.push((epath, Ok(None), Some(nested.clone()), None));
            continue;
        }
        let annotations = e
            .get("annotations")
            .and_then(Value::as_object)
            .filter(|a| !a.is_empty())
            .cloned();
        match entry_expectations(e, &epath) {
            Ok(list) => {
                for x in list {
                    expanded.push((epath.clone(), Ok(Some(x)), None, annotations.clone()));
                }
            }
            Err(f) => expanded.push((epath, Err(f), None, None)),
        }
    }
    if expanded.is_empty() {
        return Err(Failure::error(format!(
            "{path}: attestor set has no entries"
        )));
    }
    let required = set
        .get("count")
        .and_then(Value::as_u64)
        .map(|c| c as usize)
        // Unset or 0: every entry must verify (Kyverno's RequiredCount).
        .filter(|c| *c > 0)
        .unwrap_or(expanded.len())
        .clamp(1, expanded.len());
    let mut verified = 0usize;
    let mut payloads = Vec::new();
    let mut errors = Vec::new();
    for (epath, exp, nested, annotations) in expanded {
        let result = match (exp, nested) {
            (_, Some(n)) => verify_attestor_set(
                &n,
                &format!("{epath}.attestor"),
                digest,
                materials,
                want,
                cx,
                depth + 1,
            ),
            (Ok(Some(att)), None) => verify_entry(
                &att,
                &epath,
                digest,
                materials,
                want,
                annotations.as_ref(),
                cx,
            ),
            (Err(f), None) => Err(f),
            (Ok(None), None) => Err(Failure::error(format!("{epath}: empty attestor entry"))),
        };
        match result {
            Ok(p) => {
                verified += 1;
                payloads.extend(p);
                if verified >= required {
                    return Ok(payloads);
                }
            }
            Err(f @ Failure::Error(_)) => return Err(f),
            Err(Failure::Check(w)) => errors.push(w),
        }
    }
    let code = errors.first().map_or(FAILED.to_owned(), |w| w.code.clone());
    let messages: Vec<&str> = errors.iter().map(|w| w.message.as_str()).collect();
    Err(Failure::check(format!(
        "{path}: {verified} of {required} required attestors verified: {}",
        messages.join("; ")
    ))
    .code(code))
}

/// The most signatures, or attestations of one predicate type, examined for one image. An
/// image carrying more fails (`policy.verify_images.too_many_materials`) instead of costing
/// one verification each: whoever can push to an image's signature tag or referrers could
/// otherwise make every admission of it verify hundreds of junk signatures. Verifying only
/// the first ones would not do: every attestation of a type must meet the conditions, so an
/// unexamined one could be the one that fails. (cosign refuses more than 100 as well.)
pub const MAX_MATERIALS_PER_IMAGE: usize = 100;

/// Why an image carrying `found` materials of one kind (`what`) is refused, with the code in
/// brackets, or `None` within [`MAX_MATERIALS_PER_IMAGE`]. ClusterPolicy `verifyImages` and
/// ImageValidatingPolicy both report it.
pub(crate) fn too_many_materials(what: &str, found: usize) -> Option<String> {
    (found > MAX_MATERIALS_PER_IMAGE).then(|| {
        format!(
            "[policy.verify_images.too_many_materials] {found} {what} are attached to the image, more than the {MAX_MATERIALS_PER_IMAGE} examined per image; the image is refused rather than partly checked"
        )
    })
}

fn within_material_cap(path: &str, what: &str, found: usize) -> Result<(), Failure> {
    match too_many_materials(what, found) {
        Some(why) => Err(Failure::check(format!("{path}: {why}"))
            .code("policy.verify_images.too_many_materials")),
        None => Ok(()),
    }
}

/// One attestor entry: at least one material must verify with it, as the kind `want` asks
/// for (a signature, or a Statement of the required type naming the digest).
fn verify_entry(
    attestor: &Attestor,
    path: &str,
    digest: &Digest,
    materials: &[SignatureMaterial],
    want: Want<'_>,
    annotations: Option<&serde_json::Map<String, Value>>,
    cx: &VerifyImagesContext<'_>,
) -> Result<Vec<Vec<u8>>, Failure> {
    if annotations.is_some() && matches!(want, Want::Attestation(_)) {
        return Err(Failure::error(format!(
            "{path}: unsupported: annotations on an attestation's attestor"
        ))
        .code("policy.unsupported"));
    }
    if materials.is_empty() {
        let (what, code) = match want {
            Want::Signature => (
                "signatures".to_owned(),
                "policy.verify_images.no_signatures",
            ),
            Want::Attestation(t) => (
                format!("{t} attestations"),
                "policy.verify_images.no_attestations",
            ),
        };
        return Err(Failure::check(format!("{path}: no {what} found")).code(code));
    }
    let exp = &attestor.expectation;
    let verifier = VerifierFor::new(cx.verifier, &attestor.trust).map_err(|e| {
        Failure::error(format!(
            "{path}: [{}] the trust material written in the policy: {e}",
            e.code()
        ))
    })?;
    let mut payloads = Vec::new();
    // Why each material did not count, each reason once (the first few): a material of
    // another kind or signer must not hide why the right one failed.
    let mut why: Vec<(String, String)> = Vec::new();
    let mut note = |code: &str, m: String| {
        let line = format!("[{code}] {m}");
        if !why.iter().any(|(_, l)| *l == line) {
            why.push((code.to_owned(), line));
        }
    };
    for m in materials {
        let verified = match want {
            Want::Signature => verifier.verify_image_signature(digest, m, exp, cx.now),
            Want::Attestation(_) => verifier.verify_attestation(digest, m, exp, cx.now),
        };
        match verified {
            Ok(v) => {
                let payload = v.payload.map(|(_, p)| p).unwrap_or_default();
                if let Want::Attestation(ty) = want {
                    // The entry counts only for a Statement of the required type about this
                    // digest (verify_attestation checked the subject; the type is ours).
                    match provenance_attest::Statement::from_json(&payload) {
                        Ok(st) if st.predicate_type == ty && st.matches(digest) => {}
                        Ok(st) => {
                            note(
                                "verify.kind.predicate_type",
                                format!(
                                    "the verified attestation is a {} Statement, not {ty}",
                                    st.predicate_type
                                ),
                            );
                            continue;
                        }
                        Err(e) => {
                            note("verify.kind.not_an_attestation", e.to_string());
                            continue;
                        }
                    }
                }
                if let Some(want_ann) = annotations
                    && !payload_annotations_match(want_ann, &payload)
                {
                    note(
                        "verify.annotations.mismatch",
                        "the signature's payload does not carry the required annotations"
                            .to_owned(),
                    );
                    continue;
                }
                payloads.push(payload);
                if matches!(want, Want::Signature) {
                    // One signature by this attestor is all an image signature needs: the
                    // rest are not verified (their payloads are not used).
                    break;
                }
            }
            Err(e) => note(e.code(), e.to_string()),
        }
    }
    if payloads.is_empty() {
        let shown = why.len().min(4);
        let more = if why.len() > shown {
            format!(" (and {} more)", why.len() - shown)
        } else {
            String::new()
        };
        let lines: Vec<&str> = why[..shown].iter().map(|(_, l)| l.as_str()).collect();
        Err(
            Failure::check(format!("{path}: {}{more}", lines.join("; ")))
                .code(why.first().map_or(FAILED, |(c, _)| c.as_str())),
        )
    } else {
        Ok(payloads)
    }
}

/// Whether a verified simple-signing payload carries every required annotation in its
/// `optional` section with an equal JSON value (a message signature has no payload and never
/// does; two non-string values never compare equal merely because neither is a string).
pub(crate) fn payload_annotations_match(
    want: &serde_json::Map<String, Value>,
    payload: &[u8],
) -> bool {
    let Ok(p) = serde_json::from_slice::<Value>(payload) else {
        return false;
    };
    want.iter().all(|(k, v)| {
        p.pointer("/optional")
            .and_then(|o| o.get(k))
            .is_some_and(|got| got == v)
    })
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

    /// The evidence of `req` and the digest it is bound to, or why there is none.
    fn resolve(
        &self,
        req: &ImageRequest,
        info: Option<&Value>,
    ) -> Result<(Digest, &ImageEvidence), Failure> {
        let ev = self.evidence.get(&req.reference).ok_or_else(|| {
            Failure::error(format!("no evidence was gathered for {}", req.reference))
                .code("policy.verify_images.no_evidence")
        })?;
        if let Some(e) = &ev.error {
            return Err(
                Failure::error(format!("failed to fetch evidence: {}", e.message)).code(&e.code),
            );
        }
        if let Some(e) = &ev.invalid {
            return Err(
                Failure::check(format!("the image cannot be verified: {}", e.message))
                    .code(&e.code),
            );
        }
        let digest = ev
            .digest
            .clone()
            .ok_or_else(|| Failure::error("the image digest was not resolved"))?;
        // A digest written in the resource must be the one the evidence is bound to.
        if let Some(d) = info
            .and_then(|i| i.get("digest"))
            .and_then(Value::as_str)
            .filter(|d| !d.is_empty())
            && Digest::parse(d).ok().as_ref() != Some(&digest)
        {
            return Err(Failure::check(format!(
                "image digest {d} does not match resolved digest {digest}"
            )));
        }
        Ok((digest, ev))
    }

    /// Verifies the attestors and attestations of `entry` for the resolved image.
    fn verify_resolved(
        &self,
        entry: &Value,
        path: &str,
        digest: Digest,
        ev: &ImageEvidence,
        base_ctx: &Value,
        env: &Env,
    ) -> Result<Digest, Failure> {
        // `type: SigstoreBundle` verifies Sigstore bundles (OCI 1.1 referrers) only, as
        // Kyverno's bundle verifier does; `Cosign` verifies both cosign's tag-attached layers
        // and bundles (Kyverno's reads the tags only; see docs/kyverno-compatibility.md).
        let bundles_only = entry.get("type").and_then(Value::as_str) == Some("SigstoreBundle");
        let signatures = kept(&ev.signatures, bundles_only);
        let attestation_material = kept(&ev.attestations, bundles_only);
        let attestors: &[Value] = entry
            .get("attestors")
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice);
        if !attestors.is_empty() {
            within_material_cap(path, "signatures", signatures.len())?;
        }
        for (i, set) in attestors.iter().enumerate() {
            verify_attestor_set(
                set,
                &format!("{path}.attestors[{i}]"),
                &digest,
                &signatures,
                Want::Signature,
                self,
                0,
            )?;
        }
        let attestations: &[Value] = entry
            .get("attestations")
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice);
        for (i, att) in attestations.iter().enumerate() {
            let apath = format!("{path}.attestations[{i}]");
            let Some(ty) = attestation_type(att) else {
                return Err(Failure::check(format!("{apath}: missing type")));
            };
            let sets = match att.get("attestors").and_then(Value::as_array) {
                Some(a) if !a.is_empty() => a.as_slice(),
                _ if !attestors.is_empty() => attestors,
                _ => {
                    return Err(Failure::error(format!(
                        "{apath}: no attestors to verify {ty} attestations with (an attestation must be signed by a known key or identity)"
                    )));
                }
            };
            // Only material that claims this predicate type is verified for it (the claim is
            // unverified and used for selection only: each attestor checks the verified
            // Statement's type and subject again). Material whose type cannot be read cannot
            // be a Statement of this type and is not a candidate.
            let candidates: Vec<SignatureMaterial> = attestation_material
                .iter()
                .filter(|m| claimed_predicate_type(m).is_some_and(|t| t == ty))
                .cloned()
                .collect();
            if candidates.is_empty() {
                return Err(
                    Failure::check(format!("{apath}: no attestations found (need {ty})"))
                        .code("policy.verify_images.no_attestations"),
                );
            }
            within_material_cap(&apath, &format!("{ty} attestations"), candidates.len())?;
            let mut statements = if ty == MODEL_SIGNING_V1 {
                self.model_statements(&apath, sets, &candidates, ev)?
            } else {
                Vec::new()
            };
            // Verify the attestation material with each attestor set; collect the statements.
            for (j, set) in sets.iter().enumerate() {
                if ty == MODEL_SIGNING_V1 {
                    break;
                }
                let payloads = verify_attestor_set(
                    set,
                    &format!("{apath}.attestors[{j}]"),
                    &digest,
                    &candidates,
                    Want::Attestation(&ty),
                    self,
                    0,
                )?;
                for p in payloads {
                    if let Ok(st) = provenance_attest::Statement::from_json(&p)
                        && st.predicate_type == ty
                    {
                        if !st.matches(&digest) {
                            return Err(Failure::check(format!(
                                "{apath}: {ty} attestation names another subject than {digest}"
                            )));
                        }
                        statements.push(st);
                    }
                }
            }
            if statements.is_empty() {
                return Err(Failure::check(format!(
                    "{apath}: no verified {ty} attestation found"
                )));
            }
            if let Some(conds) = att.get("conditions").filter(|c| !c.is_null()) {
                for st in &statements {
                    let mut ctx = base_ctx.clone();
                    if let (Some(obj), Value::Object(pred)) = (ctx.as_object_mut(), &st.predicate) {
                        for (k, v) in pred {
                            obj.insert(k.clone(), v.clone());
                        }
                    }
                    let blocks: Vec<Value> = match conds {
                        Value::Array(a) => a.clone(),
                        other => vec![other.clone()],
                    };
                    for (k, block) in blocks.iter().enumerate() {
                        match crate::kyverno::conditions::evaluate_block_with_message(
                            block,
                            &ctx,
                            env,
                            &format!("{apath}.conditions[{k}]"),
                        ) {
                            Ok(r) if r.passed => {}
                            Ok(r) => {
                                let detail = if r.message.is_empty() {
                                    String::new()
                                } else {
                                    format!(": {}", r.message)
                                };
                                return Err(Failure::check(format!(
                                    "{apath}: {ty} attestation conditions not met{detail}"
                                )));
                            }
                            Err(e) => return Err(Failure::error(format!("{apath}: {e}"))),
                        }
                    }
                }
            }
        }
        Ok(digest)
    }
}

impl VerifyImagesContext<'_> {
    /// Model-signing attestations of a model artifact: each candidate bundle is verified by
    /// every attestor set against its own subject (the model's root digest), and its signed
    /// resources must equal the artifact's layers exactly. Returns the statements that pass.
    fn model_statements(
        &self,
        apath: &str,
        sets: &[Value],
        candidates: &[SignatureMaterial],
        ev: &ImageEvidence,
    ) -> Result<Vec<provenance_attest::Statement>, Failure> {
        use provenance_attest::model_artifact::{Ignored, artifact_files, compare};
        use provenance_attest::modelsigning::ModelSigningManifest;
        let layers = ev.layers.as_ref().ok_or_else(|| {
            Failure::check(format!(
                "{apath}: the image is not a model artifact with layers (no layers gathered to bind a {MODEL_SIGNING_V1} signature to)"
            ))
        })?;
        let files = artifact_files(layers).map_err(|e| Failure::check(format!("{apath}: {e}")))?;
        let mut statements = Vec::new();
        let mut problems = Vec::new();
        'material: for (k, m) in candidates.iter().enumerate() {
            let Some(subject) = claimed_subject_digest(m) else {
                problems.push(format!("attestation {k}: no sha256 subject"));
                continue;
            };
            let mut payloads = Vec::new();
            for (j, set) in sets.iter().enumerate() {
                match verify_attestor_set(
                    set,
                    &format!("{apath}.attestors[{j}]"),
                    &subject,
                    std::slice::from_ref(m),
                    Want::Attestation(MODEL_SIGNING_V1),
                    self,
                    0,
                ) {
                    Ok(p) => payloads.extend(p),
                    Err(f @ Failure::Error(_)) => return Err(f),
                    Err(Failure::Check(w)) => {
                        problems.push(w.message);
                        continue 'material;
                    }
                }
            }
            for p in payloads {
                let Ok(st) = provenance_attest::Statement::from_json(&p) else {
                    problems.push(format!(
                        "attestation {k}: payload is not an in-toto Statement"
                    ));
                    continue;
                };
                if st.predicate_type != MODEL_SIGNING_V1 {
                    continue;
                }
                let manifest = match ModelSigningManifest::from_statement(
                    &st,
                    &provenance_attest::Limits::default(),
                ) {
                    Ok((_, m)) => m,
                    Err(e) => {
                        problems.push(format!("attestation {k}: {e}"));
                        continue;
                    }
                };
                match compare(&manifest, &files, &Ignored::for_layers(&[], false)) {
                    Ok(d) if d.is_empty() => statements.push(st),
                    Ok(d) => {
                        let mut parts = Vec::new();
                        for (what, list) in [
                            ("changed", &d.changed),
                            ("missing", &d.missing),
                            ("extra", &d.extra),
                        ] {
                            if !list.is_empty() {
                                parts.push(format!("{what}: {}", list.join(", ")));
                            }
                        }
                        problems.push(format!(
                            "attestation {k}: the model artifact does not match its signature ({})",
                            parts.join("; ")
                        ));
                    }
                    Err(e) => problems.push(format!("attestation {k}: {e}")),
                }
            }
        }
        if statements.is_empty() {
            return Err(Failure::check(format!(
                "{apath}: no verified {MODEL_SIGNING_V1} signature matches the model artifact: {}",
                problems.join("; ")
            )));
        }
        Ok(statements)
    }
}

/// The predicate type of OpenSSF model-signing signatures.
const MODEL_SIGNING_V1: &str = provenance_attest::modelsigning::MODEL_SIGNING_V1;

/// The `sha256` of the first subject a DSSE attestation claims, read without verifying
/// anything (the verifier is then told to require it; the signature binds it).
fn claimed_subject_digest(m: &SignatureMaterial) -> Option<Digest> {
    use base64::Engine;
    let envelope: Value = match m {
        SignatureMaterial::Bundle(json) => serde_json::from_slice::<Value>(json)
            .ok()?
            .get("dsseEnvelope")?
            .clone(),
        SignatureMaterial::Cosign(c) => serde_json::from_slice(&c.payload).ok()?,
        _ => return None,
    };
    let payload = base64::engine::general_purpose::STANDARD
        .decode(envelope.get("payload")?.as_str()?)
        .ok()?;
    let statement: Value = serde_json::from_slice(&payload).ok()?;
    let hex = statement.pointer("/subject/0/digest/sha256")?.as_str()?;
    Digest::parse(&format!("sha256:{hex}")).ok()
}

/// The in-toto `predicateType` a DSSE attestation claims, read without verifying anything
/// (for choosing which material to verify for which attestation type).
pub(crate) fn claimed_predicate_type(m: &SignatureMaterial) -> Option<String> {
    use base64::Engine;
    let envelope: Value = match m {
        SignatureMaterial::Bundle(json) => serde_json::from_slice::<Value>(json)
            .ok()?
            .get("dsseEnvelope")?
            .clone(),
        SignatureMaterial::Cosign(c) => serde_json::from_slice(&c.payload).ok()?,
        _ => return None,
    };
    let payload = base64::engine::general_purpose::STANDARD
        .decode(envelope.get("payload")?.as_str()?)
        .ok()?;
    let statement: Value = serde_json::from_slice(&payload).ok()?;
    statement.get("predicateType")?.as_str().map(str::to_owned)
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
