//! [`VerifyImagesCache`]: `verifyImages` passes and failed checks remembered across
//! decisions, and the SHA-256 keys they are stored under.

use std::collections::BTreeMap;

use provenance_core::verify::{SignatureMaterial, Verifier};
use provenance_core::{Digest, UnixTime};
use serde_json::Value;

use super::{ImageEvidence, Why};

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
    pub(super) fn get_pass(&self, key: &[u8; 32], now: UnixTime) -> bool {
        self.passes
            .lock()
            .ok()
            .and_then(|m| m.get(key).copied())
            .is_some_and(|at| Self::fresh(at, now, self.ttl_seconds))
    }

    /// The failed check stored under `key` and still fresh at `now`.
    pub(super) fn get_failure(&self, key: &[u8; 32], now: UnixTime) -> Option<Why> {
        let m = self.failures.lock().ok()?;
        let (at, why) = m.get(key)?;
        Self::fresh(*at, now, self.failure_ttl()).then(|| why.clone())
    }

    pub(super) fn count(&self, hit: bool) {
        use std::sync::atomic::Ordering::Relaxed;
        if hit {
            self.hits.fetch_add(1, Relaxed);
        } else {
            self.misses.fetch_add(1, Relaxed);
        }
    }

    pub(super) fn put_pass(&self, key: [u8; 32], now: UnixTime) {
        if let Ok(mut m) = self.passes.lock() {
            if m.len() >= self.capacity && !m.contains_key(&key) {
                m.clear();
            }
            m.insert(key, now);
        }
    }

    pub(super) fn put_failure(&self, key: [u8; 32], now: UnixTime, why: Why) {
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

/// How long a failed check is remembered at most (see [`VerifyImagesCache`]).
pub const FAILURE_TTL_SECONDS: i64 = 10;

/// The key of a failed check: the pass key, the entry's place in the policy (its messages
/// name it) and the digest of the evidence the check was decided on ([`evidence_digest`]).
pub(super) fn failure_key(pass: &[u8; 32], path: &str, evidence: &[u8; 32]) -> [u8; 32] {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    hash_field(&mut ctx, b"failure");
    hash_field(&mut ctx, pass);
    hash_field(&mut ctx, path.as_bytes());
    hash_field(&mut ctx, evidence);
    finish(ctx)
}

/// A digest of every part of `ev` a check can be decided on; `None` for material of a kind
/// this digest does not know how to take in (a failure over it is then not remembered).
pub(super) fn evidence_digest(ev: &ImageEvidence) -> Option<[u8; 32]> {
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
pub(super) fn cache_key_prefix(
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
pub(super) fn cache_key(
    prefix: &aws_lc_rs::digest::Context,
    reference: &str,
    digest: &Digest,
) -> [u8; 32] {
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

/// Whether the outcome of `entry` may depend on more than the key of [`VerifyImagesCache`].
/// An allow-list: the entry's outcome depends on the request unless every `{{ }}` expression
/// in its attestation conditions parses and reads the document it is evaluated against only
/// through top-level fields that are not names of the rule's context document (`request`,
/// `images`, `element`, context variables...), and calls no clock function
/// ([`jmespath::reads_only_fields`](crate::lang::jmespath::reads_only_fields)): `@`, a
/// wildcard or an index over the whole document, or a quoted or escaped `request`, can reach
/// the request without naming it. Conservative on top: a text that mentions a context name
/// or `time_` anywhere also counts.
pub(super) fn depends_on_request(entry: &Value, ctx: &Value) -> bool {
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
    let denied = |name: &str| keys.contains(&name) || REQUEST_NAMES.contains(&name);
    // The text checks first: they are cheaper than the parsed check, whose parse is shared
    // with variable substitution's cache of compiled expressions.
    texts.iter().any(|t| {
        t.contains("time_")
            || t.contains('$')
            || keys.iter().any(|k| t.contains(k))
            || REQUEST_NAMES.iter().any(|k| t.contains(k))
            || !crate::kyverno::variables::compile_cached(t)
                .is_ok_and(|e| e.reads_only_fields(&|name| !denied(name)))
    })
}

/// The names of the context document that hold request data whatever the rule adds.
const REQUEST_NAMES: [&str; 6] = [
    "request",
    "images",
    "element",
    "elementIndex",
    "serviceAccountName",
    "serviceAccountNamespace",
];

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
