//! Offline verification of Sigstore bundles and cosign signatures.
//!
//! One call, [`Verifier::verify`] (or the [`verify`] convenience function), takes
//!
//! - the [`Artifact`] (its bytes or its digest; for cosign image signatures, the image digest),
//! - the [`SignatureMaterial`] (a Sigstore bundle v0.1/v0.2/v0.3, or a cosign legacy signature
//!   layer as plain data: payload bytes and annotations),
//! - the [`Expectation`] (a public key, or a keyless signer identity as Kyverno writes it),
//! - the [`TrustRoot`] and `now`,
//!
//! and returns what was proven ([`Verified`]) or an [`Error::Verification`] whose
//! [`Check`] names the check that failed. Nothing is fetched and no clock is read by this
//! module: `now` is an argument. (The wrapped `sigstore-verify` crate additionally consults the
//! system clock for "not in the future" checks, which can only make it stricter.)
//!
//! Bundles are verified by [`sigstore-verify`](https://crates.io/crates/sigstore-verify)
//! (which passes the Sigstore conformance suite); this module adds what it lacks: cosign
//! legacy signature layers, key-only bundles with neither log entry nor timestamp (an explicit,
//! dangerous opt-in), Kyverno identity matching, and the `now` argument. See
//! `docs/verification.md` for the order of checks and what every error code means.
//!
//! ```no_run
//! use provenance_core::verify::{Artifact, Expectation, IdentityExpectation, SignatureMaterial, Verifier};
//! use provenance_core::{TrustRoot, UnixTime};
//! # fn main() -> Result<(), provenance_core::Error> {
//! let root = TrustRoot::from_trusted_root_json(provenance_core::verify::PUBLIC_GOOD_TRUSTED_ROOT)?;
//! let verifier = Verifier::new(&root)?;
//! let bundle = std::fs::read("a.txt.sigstore.json").unwrap();
//! let proven = verifier.verify(
//!     Artifact::Bytes(b"hello"),
//!     &SignatureMaterial::Bundle(bundle),
//!     &Expectation::Keyless(IdentityExpectation::exact(
//!         "https://github.com/org/repo/.github/workflows/release.yml@refs/heads/main",
//!         "https://token.actions.githubusercontent.com",
//!     )),
//!     UnixTime(1_790_000_000),
//! )?;
//! println!("signed by {:?} at {:?}", proven.signer, proven.integrated_time);
//! # Ok(()) }
//! ```

mod check;
mod cosign;
mod identity;
mod keysig;
mod strict;
#[cfg(test)]
mod tests;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sigstore_verify::types::bundle::VerificationMaterialContent;
use sigstore_verify::types::{Bundle, HashAlgorithm, SignatureContent};

pub use check::Check;
pub use cosign::{
    ANNOTATION_BUNDLE, ANNOTATION_CERTIFICATE, ANNOTATION_CHAIN, ANNOTATION_RFC3161_TIMESTAMP,
    ANNOTATION_SIGNATURE, CosignSignature, SIMPLE_SIGNING_MEDIA_TYPE,
};
pub use identity::{CertificateIdentity, IdentityExpectation, SanValue};

use crate::digest::{Digest, DigestAlgorithm};
use crate::error::Error;
use crate::keys::{KeyKind, PublicKey};
use crate::time::UnixTime;
use crate::trust_root::{TrustReplacement, TrustRoot};
use keysig::Signed;
use std::sync::Arc;

/// The Sigstore public-good `trusted_root.json`, embedded for convenience (see
/// `provenance-core/src/verify/public-good-trusted_root.SOURCE` for where it came from). It is
/// a snapshot: refresh it through TUF (`provenance-oci`) and pass your own root in production.
pub const PUBLIC_GOOD_TRUSTED_ROOT: &[u8] = include_bytes!("public-good-trusted_root.json");

/// Largest bundle or cosign annotation set accepted.
pub const MAX_MATERIAL_BYTES: usize = 8 << 20;

/// What was signed.
#[derive(Debug, Clone, Copy)]
pub enum Artifact<'a> {
    /// The artifact's bytes.
    Bytes(&'a [u8]),
    /// The artifact's digest (for an image signature: the image manifest digest). Ed25519
    /// message signatures cannot be checked against a digest.
    Digest(&'a Digest),
}

impl Artifact<'_> {
    /// The artifact's SHA-256 (computed from the bytes if needed).
    pub fn sha256(&self) -> Option<Digest> {
        match self {
            Artifact::Bytes(b) => Some(Digest::sha256_of(b)),
            Artifact::Digest(d) if d.algorithm() == DigestAlgorithm::Sha256 => Some((*d).clone()),
            Artifact::Digest(_) => None,
        }
    }

    fn digest_as(&self, alg: DigestAlgorithm) -> Option<Digest> {
        match self {
            Artifact::Bytes(b) => Some(Digest::compute(alg, b)),
            Artifact::Digest(d) if d.algorithm() == alg => Some((*d).clone()),
            Artifact::Digest(_) => None,
        }
    }
}

/// Signature material, as plain data a registry client or a file hands in.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignatureMaterial {
    /// A Sigstore bundle (`application/vnd.dev.sigstore.bundle+json;version=0.1`, `0.2`,
    /// `0.3`, or `application/vnd.dev.sigstore.bundle.v0.3+json`), as JSON bytes.
    Bundle(Vec<u8>),
    /// A cosign legacy signature layer (simple-signing payload and annotations).
    Cosign(CosignSignature),
}

impl SignatureMaterial {
    /// The in-toto Statement a DSSE attestation carries (a bundle's `dsseEnvelope`, or a
    /// cosign attestation layer's envelope), read **without verifying anything**: what it
    /// claims may only route material (which attestation type it is, which digest to
    /// require of it); a verification decides. `None` when the material carries no DSSE
    /// envelope with a JSON payload.
    pub fn claimed_statement(&self) -> Option<serde_json::Value> {
        let envelope: serde_json::Value = match self {
            SignatureMaterial::Bundle(json) => serde_json::from_slice::<serde_json::Value>(json)
                .ok()?
                .get_mut("dsseEnvelope")?
                .take(),
            SignatureMaterial::Cosign(c) => serde_json::from_slice(&c.payload).ok()?,
        };
        let payload = STANDARD.decode(envelope.get("payload")?.as_str()?).ok()?;
        serde_json::from_slice(&payload).ok()
    }

    /// The `predicateType` of [`SignatureMaterial::claimed_statement`] (unverified).
    pub fn claimed_predicate_type(&self) -> Option<String> {
        let statement = self.claimed_statement()?;
        statement.get("predicateType")?.as_str().map(str::to_owned)
    }
}

/// Who must have signed.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Expectation {
    /// Signed with this public key.
    Key {
        /// The key.
        key: PublicKey,
        /// DANGEROUS: accept signatures that have neither a transparency-log entry nor an RFC
        /// 3161 timestamp (or whose log entries are not checked). Model-signing key signatures
        /// and `cosign sign --tlog-upload=false` produce such material. Without this, missing
        /// transparency evidence is a failure ([`Check::TlogMissing`]).
        allow_no_transparency: bool,
    },
    /// Signed keylessly by a Fulcio certificate whose identity matches.
    Keyless(IdentityExpectation),
    /// Signed keylessly by a Fulcio certificate whose identity matches, with some of the
    /// transparency checks waived (Kyverno's `rekor.ignoreTlog` / `ctlog.ignoreSCT`).
    /// `Keyless(id)` is `KeylessWith { identity: id, checks: KeylessChecks::default() }`.
    KeylessWith {
        /// The identity the certificate must carry.
        identity: IdentityExpectation,
        /// Which transparency checks are required.
        checks: KeylessChecks,
    },
}

/// The transparency checks of a keyless verification. The default requires all of them.
/// The certificate chain to the trust root, its validity at a verified signing time and the
/// identity are checked whatever these say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeylessChecks {
    /// Require a verified transparency-log inclusion (inclusion proof and checkpoint, or a
    /// SET). When off, a signing time must still be verified: an RFC 3161 timestamp from a
    /// trusted authority, or a log entry's SET signed by a trusted log (a certificate is never
    /// checked against the verifier's own clock), and any log entry present must still be
    /// of a trusted log and consistent with the signature.
    pub transparency_log: bool,
    /// Require a valid SCT from a trusted CT log embedded in the certificate.
    pub sct: bool,
}

impl Default for KeylessChecks {
    fn default() -> Self {
        KeylessChecks {
            transparency_log: true,
            sct: true,
        }
    }
}

impl Expectation {
    /// A key expectation that requires transparency-log evidence.
    pub fn key(key: PublicKey) -> Self {
        Expectation::Key {
            key,
            allow_no_transparency: false,
        }
    }

    /// The identity and checks of a keyless expectation; `None` for a key.
    pub fn keyless(&self) -> Option<(&IdentityExpectation, KeylessChecks)> {
        match self {
            Expectation::Keyless(id) => Some((id, KeylessChecks::default())),
            Expectation::KeylessWith { identity, checks } => Some((identity, *checks)),
            Expectation::Key { .. } => None,
        }
    }
}

/// Who signed, as proven.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Signer {
    /// The expected public key.
    Key {
        /// SHA-256 of the key's DER SubjectPublicKeyInfo.
        key_id: Digest,
        /// The key's kind.
        kind: KeyKind,
    },
    /// A Fulcio certificate chaining to the trust root.
    Certificate(CertificateIdentity),
}

/// What a successful verification proved.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Verified {
    /// The signer.
    pub signer: Signer,
    /// The earliest Rekor v1 integrated time authenticated by a SET.
    pub integrated_time: Option<UnixTime>,
    /// The log index of the (first) transparency-log entry, if any.
    pub log_index: Option<i64>,
    /// Every verified signing time (SET integrated times and RFC 3161 timestamps).
    pub verified_times: Vec<UnixTime>,
    /// Whether transparency-log inclusion (proof + checkpoint, or SET) was verified.
    pub transparency_verified: bool,
    /// The signed payload and its type, for DSSE envelopes (`application/vnd.in-toto+json`) and
    /// cosign simple-signing payloads.
    pub payload: Option<(String, Vec<u8>)>,
    /// What kind of signed content was verified (decided from the verified material, never
    /// from a media type or an annotation).
    pub content: SignedContent,
}

/// The kind of signed content a verification proved. An image signature and an attestation
/// are different statements: [`Verifier::verify_image_signature`] and
/// [`Verifier::verify_attestation`] accept only their own kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SignedContent {
    /// A cosign simple-signing payload, checked to name the image digest.
    SimpleSigning,
    /// A Sigstore message signature over the artifact's bytes (or their digest).
    MessageSignature,
    /// A DSSE envelope; its payload type and payload are [`Verified::payload`].
    Dsse,
}

/// The in-toto predicate type cosign 3 uses when it signs an image with a DSSE bundle: such a
/// Statement about an image digest is an image signature, not an attestation.
pub const COSIGN_SIGN_PREDICATE_V1: &str = "https://sigstore.dev/cosign/sign/v1";

/// The in-toto Statement payload type.
const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// A verifier over one trust root. Build it once; it prepares the trust material.
pub struct Verifier {
    inner: sigstore_verify::Verifier,
    root: TrustRoot,
    regexes: identity::RegexCache,
    memo: Option<Memo>,
    fingerprint: Digest,
    /// Verifiers for this root with policy-written trust material ([`Verifier::with_trust`]).
    derived: std::sync::Mutex<std::collections::HashMap<Digest, std::sync::Arc<Verifier>>>,
}

/// How many derived verifiers ([`Verifier::with_trust`]) one verifier keeps.
const MAX_DERIVED_VERIFIERS: usize = 64;

/// Successful verifications remembered by [`Verifier::with_memo`]. The key is a SHA-256 over
/// everything the result depends on besides `now` and the trust root (which is this verifier's
/// own): the artifact, the material and the expectation. A result is reused only while
/// `stored_at <= now < stored_at + ttl`: every time-dependent check passes for a later `now`
/// once it passed (signing times are verified against the trust root, and "not in the future"
/// only gets easier), and a clock that goes backwards recomputes.
///
/// Failures are remembered too, separately and briefly ([`NEGATIVE_MEMO_SECONDS`] at most), so
/// that junk material attached to an image (255 bad signatures on one tag) costs one
/// verification each per window rather than one per admission. A remembered failure can only
/// keep something failing a little longer (a signing time slightly ahead of the clock); it
/// never makes anything pass. The two maps are separate: flooding the failure map never
/// evicts a remembered success.
struct Memo {
    entries: std::sync::Mutex<std::collections::HashMap<[u8; 32], (UnixTime, Verified)>>,
    failures: std::sync::Mutex<std::collections::HashMap<[u8; 32], (UnixTime, Error)>>,
    capacity: usize,
    ttl_seconds: i64,
}

/// What a verifier's memo holds ([`Verifier::remembered`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Remembered {
    /// Successful verifications remembered.
    pub successes: usize,
    /// Failed verifications remembered (briefly: [`NEGATIVE_MEMO_SECONDS`]).
    pub failures: usize,
}

/// The longest a failed verification is remembered by [`Verifier::with_memo`] (seconds).
pub const NEGATIVE_MEMO_SECONDS: i64 = 30;

impl Memo {
    fn fresh(at: UnixTime, now: UnixTime, ttl: i64) -> bool {
        at <= now && now.0 - at.0 < ttl
    }

    fn negative_ttl(&self) -> i64 {
        self.ttl_seconds.min(NEGATIVE_MEMO_SECONDS)
    }
}

fn memo_key(
    artifact: &Artifact<'_>,
    material: &SignatureMaterial,
    expectation: &Expectation,
) -> [u8; 32] {
    use aws_lc_rs::digest::{Context, SHA256};
    let mut ctx = Context::new(&SHA256);
    let mut field = |tag: &[u8], bytes: &[u8]| {
        ctx.update(tag);
        ctx.update(&(bytes.len() as u64).to_be_bytes());
        ctx.update(bytes);
    };
    match artifact {
        Artifact::Bytes(b) => field(b"artifact-sha256", Digest::sha256_of(b).as_bytes()),
        Artifact::Digest(d) => field(b"artifact-digest", d.to_string().as_bytes()),
    }
    match material {
        SignatureMaterial::Bundle(json) => field(b"bundle", json),
        SignatureMaterial::Cosign(c) => {
            field(b"cosign-payload", &c.payload);
            for (k, v) in &c.annotations {
                field(b"annotation-key", k.as_bytes());
                field(b"annotation-value", v.as_bytes());
            }
        }
    }
    field(b"expectation", format!("{expectation:?}").as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Verifier")
    }
}

impl Verifier {
    /// Prepares a verifier for `root`.
    pub fn new(root: &TrustRoot) -> Result<Self, Error> {
        let json = match &root.source_json {
            Some(j) => j.clone(),
            None => trusted_root_json(root),
        };
        let text = std::str::from_utf8(&json)
            .map_err(|_| Check::TrustRoot.fail("trusted root is not UTF-8"))?;
        let tr = sigstore_verify::trust_root::TrustedRoot::from_json(text)
            .map_err(|e| Check::TrustRoot.fail(e.to_string()))?;
        let inner = sigstore_verify::Verifier::new(&tr).map_err(|e| check::from_sigstore(&e))?;
        Ok(Verifier {
            inner,
            fingerprint: root.fingerprint(),
            root: root.clone(),
            regexes: identity::RegexCache::default(),
            memo: None,
            derived: Default::default(),
        })
    }

    /// A verifier for this verifier's trust root with the parts `replacement` gives replaced
    /// ([`TrustRoot::replaced`]): the trust an attestor that writes its own roots or log keys
    /// stands for. Built once per distinct replacement and kept (up to 64); it remembers
    /// results as this one does. An empty replacement is this verifier's root.
    pub fn with_trust(&self, replacement: &TrustReplacement) -> Result<Arc<Verifier>, Error> {
        let key = replacement.fingerprint();
        if let Ok(map) = self.derived.lock()
            && let Some(v) = map.get(&key)
        {
            return Ok(Arc::clone(v));
        }
        let root = self.root.replaced(replacement)?;
        let mut v = Verifier::new(&root)?;
        if let Some(m) = &self.memo {
            v = v.with_memo(m.capacity, m.ttl_seconds);
        }
        let v = Arc::new(v);
        if let Ok(mut map) = self.derived.lock() {
            if map.len() >= MAX_DERIVED_VERIFIERS {
                map.clear();
            }
            map.insert(key, Arc::clone(&v));
        }
        Ok(v)
    }

    /// The trust root this verifier trusts.
    pub fn trust_root(&self) -> &TrustRoot {
        &self.root
    }

    /// Remembers up to `capacity` successful verifications for `ttl_seconds` each, so that a
    /// webhook re-admitting the same signed image does not redo the signature checks (see
    /// the rules in the type's docs: results are bound to artifact, material, expectation and
    /// this verifier's trust root). Failures are remembered for at most
    /// [`NEGATIVE_MEMO_SECONDS`] (and never longer than `ttl_seconds`), so that junk material
    /// cannot cost a verification per admission.
    pub fn with_memo(mut self, capacity: usize, ttl_seconds: i64) -> Self {
        self.memo = Some(Memo {
            entries: std::sync::Mutex::new(std::collections::HashMap::new()),
            failures: std::sync::Mutex::new(std::collections::HashMap::new()),
            capacity: capacity.max(1),
            ttl_seconds: ttl_seconds.max(0),
        });
        self
    }

    /// How many verifications this verifier remembers now ([`Verifier::with_memo`]):
    /// successes and failures. Both are zero without a memo.
    pub fn remembered(&self) -> Remembered {
        let Some(memo) = &self.memo else {
            return Remembered::default();
        };
        Remembered {
            successes: memo.entries.lock().map_or(0, |m| m.len()),
            failures: memo.failures.lock().map_or(0, |m| m.len()),
        }
    }

    /// The fingerprint of the trust root this verifier uses (for cache keys).
    pub fn trust_root_fingerprint(&self) -> Digest {
        self.fingerprint.clone()
    }

    /// Verifies `material` over `artifact` against `expectation` at time `now`.
    pub fn verify(
        &self,
        artifact: Artifact<'_>,
        material: &SignatureMaterial,
        expectation: &Expectation,
        now: UnixTime,
    ) -> Result<Verified, Error> {
        let Some(memo) = &self.memo else {
            return self.verify_uncached(artifact, material, expectation, now);
        };
        let key = memo_key(&artifact, material, expectation);
        if let Ok(map) = memo.entries.lock()
            && let Some((at, v)) = map.get(&key)
            && Memo::fresh(*at, now, memo.ttl_seconds)
        {
            return Ok(v.clone());
        }
        if let Ok(map) = memo.failures.lock()
            && let Some((at, e)) = map.get(&key)
            && Memo::fresh(*at, now, memo.negative_ttl())
        {
            return Err(e.clone());
        }
        match self.verify_uncached(artifact, material, expectation, now) {
            Ok(v) => {
                if let Ok(mut map) = memo.entries.lock() {
                    if map.len() >= memo.capacity {
                        map.clear();
                    }
                    map.insert(key, (now, v.clone()));
                }
                Ok(v)
            }
            Err(e) => {
                if memo.negative_ttl() > 0
                    && let Ok(mut map) = memo.failures.lock()
                {
                    if map.len() >= memo.capacity {
                        map.clear();
                    }
                    map.insert(key, (now, e.clone()));
                }
                Err(e)
            }
        }
    }

    /// Verifies that `material` is a signature **of the image** `image` (a manifest or index
    /// digest) by `expectation`. Only three kinds of content are image signatures: a cosign
    /// simple-signing payload naming the digest, a message signature over the manifest, and a
    /// DSSE envelope carrying cosign's signing Statement
    /// ([`COSIGN_SIGN_PREDICATE_V1`]) about the digest. Anything else that verifies (an
    /// attestation, a Statement of another type) fails with [`Check::NotASignature`]. The
    /// kind is decided from the verified content, never from where the material was found.
    pub fn verify_image_signature(
        &self,
        image: &Digest,
        material: &SignatureMaterial,
        expectation: &Expectation,
        now: UnixTime,
    ) -> Result<Verified, Error> {
        let v = self.verify(Artifact::Digest(image), material, expectation, now)?;
        match v.content {
            SignedContent::SimpleSigning | SignedContent::MessageSignature => Ok(v),
            SignedContent::Dsse => {
                let (ty, payload) = v.payload.as_ref().ok_or_else(|| {
                    Check::NotASignature.fail("the DSSE envelope's payload was not reported")
                })?;
                let predicate = statement_predicate_type(ty, payload);
                if predicate.as_deref() != Some(COSIGN_SIGN_PREDICATE_V1) {
                    return Err(Check::NotASignature.fail(format!(
                        "a DSSE envelope with predicate type {} is an attestation, not an image signature (only {COSIGN_SIGN_PREDICATE_V1} is)",
                        predicate.as_deref().unwrap_or("(none)")
                    )));
                }
                check_in_toto_subject(ty, payload, &Artifact::Digest(image)).map_err(|e| {
                    Check::NotASignature.fail(format!("the signing Statement: {e}"))
                })?;
                Ok(v)
            }
        }
    }

    /// Verifies that `material` is an **attestation** about `subject` by `expectation`: a
    /// DSSE envelope carrying an in-toto Statement one of whose subjects is `subject`. A
    /// simple-signing payload or a message signature fails with
    /// [`Check::NotAnAttestation`], however well it verifies. The caller still checks the
    /// Statement's predicate type against what it asked for.
    pub fn verify_attestation(
        &self,
        subject: &Digest,
        material: &SignatureMaterial,
        expectation: &Expectation,
        now: UnixTime,
    ) -> Result<Verified, Error> {
        let v = self.verify(Artifact::Digest(subject), material, expectation, now)?;
        if v.content != SignedContent::Dsse {
            return Err(Check::NotAnAttestation.fail(format!(
                "{} is not an attestation (a DSSE envelope with an in-toto Statement)",
                match v.content {
                    SignedContent::SimpleSigning => "a cosign simple-signing payload",
                    _ => "a message signature",
                }
            )));
        }
        let (ty, payload) = v.payload.as_ref().ok_or_else(|| {
            Check::NotAnAttestation.fail("the DSSE envelope's payload was not reported")
        })?;
        check_in_toto_subject(ty, payload, &Artifact::Digest(subject))
            .map_err(|e| Check::NotAnAttestation.fail(format!("the Statement: {e}")))?;
        Ok(v)
    }

    fn verify_uncached(
        &self,
        artifact: Artifact<'_>,
        material: &SignatureMaterial,
        expectation: &Expectation,
        now: UnixTime,
    ) -> Result<Verified, Error> {
        match material {
            SignatureMaterial::Bundle(json) => {
                if json.len() > MAX_MATERIAL_BYTES {
                    return Err(Check::MaterialTooLarge
                        .fail(format!("bundle larger than {MAX_MATERIAL_BYTES} bytes")));
                }
                let text = std::str::from_utf8(json)
                    .map_err(|_| Check::MaterialMalformed.fail("bundle is not UTF-8"))?;
                let bundle = parse_bundle(text)?;
                self.verify_bundle(artifact, &bundle, expectation, now, None)
            }
            SignatureMaterial::Cosign(sig) => cosign::verify(self, artifact, sig, expectation, now),
        }
    }

    /// Verifies a parsed bundle. `payload` is reported back as the signed payload (cosign).
    pub(crate) fn verify_bundle(
        &self,
        artifact: Artifact<'_>,
        bundle: &Bundle,
        expectation: &Expectation,
        now: UnixTime,
        payload: Option<(String, Vec<u8>)>,
    ) -> Result<Verified, Error> {
        let vm = &bundle.verification_material;
        let has_tlog = !vm.tlog_entries.is_empty();
        let has_ts = !vm.timestamp_verification_data.rfc3161_timestamps.is_empty();
        let cert_der = match &vm.content {
            VerificationMaterialContent::Certificate(c) => Some(c.raw_bytes.as_bytes().to_vec()),
            VerificationMaterialContent::X509CertificateChain { certificates } => {
                // A chain must stop below the trust root: a self-signed certificate in the
                // bundle is refused (trust comes from the trust root only).
                for c in certificates {
                    if is_self_signed(c.raw_bytes.as_bytes()) {
                        return Err(Check::CertificateChain
                            .fail("the bundle's certificate chain contains a root (self-signed) certificate"));
                    }
                }
                match certificates.first() {
                    Some(c) => Some(c.raw_bytes.as_bytes().to_vec()),
                    None => {
                        return Err(Check::MaterialMalformed.fail("empty certificate chain"));
                    }
                }
            }
            VerificationMaterialContent::PublicKey(_) => None,
            _ => return Err(Check::MaterialUnsupported.fail("unknown verification material")),
        };
        let payload = payload.or_else(|| match &bundle.content {
            SignatureContent::DsseEnvelope(env) => {
                Some((env.payload_type.clone(), env.payload.as_bytes().to_vec()))
            }
            _ => None,
        });
        let content = match &bundle.content {
            SignatureContent::DsseEnvelope(_) => SignedContent::Dsse,
            _ => SignedContent::MessageSignature,
        };
        // A key expectation that waives the log (Kyverno's `rekor.ignoreTlog`, cosign's
        // `--insecure-ignore-tlog`) checks the signature with the key and nothing else when the
        // log entries or timestamps cannot be verified (a log this root does not trust): the
        // waived evidence never decides, as with cosign.
        let key_only = |key: &PublicKey| -> Result<Verified, Error> {
            verify_key_only(key, &artifact, bundle)?;
            Ok(Verified {
                signer: Signer::Key {
                    key_id: key.key_id(),
                    kind: key.kind(),
                },
                integrated_time: None,
                log_index: None,
                verified_times: Vec::new(),
                transparency_verified: false,
                payload: payload.clone(),
                content,
            })
        };
        let waived_key = match expectation {
            Expectation::Key {
                key,
                allow_no_transparency: true,
            } if cert_der.is_none() => Some(key),
            _ => None,
        };
        if let Err(e) = strict::check_log_entries(bundle, &self.root)
            .and_then(|()| strict::check_timestamps(bundle, &self.root))
        {
            return match waived_key {
                Some(key) => key_only(key),
                None => Err(e),
            };
        }
        let sig_artifact = to_sigstore_artifact(&artifact)?;
        // The bundle's own message digest must name the artifact (checked first, so a wrong
        // artifact is reported as such rather than as a log-entry mismatch).
        if let SignatureContent::MessageSignature(ms) = &bundle.content {
            check_message_digest(ms, &artifact)?;
        }

        let (signer, result) = match expectation {
            Expectation::Keyless(_) | Expectation::KeylessWith { .. } => {
                let Some((id, checks)) = expectation.keyless() else {
                    return Err(Check::Expectation.fail("not a keyless expectation"));
                };
                let compiled = id.compile_with(&self.regexes)?;
                let Some(der) = cert_der else {
                    return Err(Check::MaterialKind.fail(
                        "keyless verification needs a certificate, the bundle has a public key",
                    ));
                };
                let mut policy = sigstore_verify::VerificationPolicy::any_identity();
                if !checks.transparency_log {
                    if !has_tlog && !has_ts {
                        return Err(Check::TlogMissing.fail(
                            "the log is waived but the bundle has no timestamp either: no verified signing time to check the certificate at",
                        ));
                    }
                    policy = policy.skip_tlog_unsafe();
                }
                if !checks.sct {
                    policy = policy.skip_sct();
                }
                let r = self
                    .inner
                    .verify(sig_artifact, bundle, &policy)
                    .map_err(|e| check::from_sigstore(&e))?;
                if !r.certificate_verified()
                    || (checks.sct && !r.sct_verified())
                    || (checks.transparency_log && !r.tlog_verified())
                {
                    return Err(Check::CertificateChain
                        .fail("certificate, SCT or log evidence was not verified"));
                }
                let identity = CertificateIdentity::from_der(&der)?;
                compiled.check(&identity)?;
                (Signer::Certificate(identity), Some(r))
            }
            Expectation::Key {
                key,
                allow_no_transparency,
            } => {
                if cert_der.is_some() {
                    return Err(Check::MaterialKind
                        .fail("key verification requested, the bundle carries a certificate"));
                }
                let signer = Signer::Key {
                    key_id: key.key_id(),
                    kind: key.kind(),
                };
                if !has_tlog && !*allow_no_transparency {
                    return Err(Check::TlogMissing.fail(
                        "the bundle has no transparency-log entry (allow_no_transparency is off)",
                    ));
                }
                if !has_tlog && !has_ts {
                    // Key-only material: the signature is all there is.
                    verify_key_only(key, &artifact, bundle)?;
                    (signer, None)
                } else {
                    if key.kind() == KeyKind::EcdsaP521 {
                        return Err(Check::KeyUnsupported.fail(
                            "P-521 keys are supported for key-only material, not with log entries or timestamps",
                        ));
                    }
                    let mut policy = sigstore_verify::PublicKeyVerificationPolicy::new(
                        sigstore_verify::types::DerPublicKey::new(key.spki_der().to_vec()),
                    );
                    if !has_tlog {
                        policy = policy.skip_tlog_unsafe();
                    }
                    let r = match self.inner.verify(sig_artifact, bundle, &policy) {
                        Ok(r) => r,
                        Err(_) if *allow_no_transparency => return key_only(key),
                        Err(e) => return Err(check::from_sigstore(&e)),
                    };
                    if has_tlog && !r.tlog_verified() {
                        return Err(Check::TlogInclusionProof.fail("log entry was not verified"));
                    }
                    (signer, Some(r))
                }
            }
        };

        let mut verified_times = Vec::new();
        let mut integrated_time = None;
        let mut transparency_verified = false;
        if let Some(r) = &result {
            transparency_verified = r.tlog_verified() && has_tlog;
            integrated_time = r.integrated_time().map(|t| UnixTime(t.as_second()));
            verified_times = r
                .verified_timestamps()
                .iter()
                .map(|t| UnixTime(t.as_second()))
                .collect();
        }
        // Our own clock: every verified time must not lie after `now`.
        for t in integrated_time.iter() {
            if *t > now {
                return Err(Check::TlogIntegratedTime
                    .fail(format!("integrated time {t} is after now ({now})")));
            }
        }
        for t in &verified_times {
            if *t > now {
                return Err(Check::Timestamp.fail(format!("signing time {t} is after now ({now})")));
            }
        }
        Ok(Verified {
            signer,
            integrated_time,
            log_index: vm.tlog_entries.first().map(|e| e.log_index.as_i64()),
            verified_times,
            transparency_verified,
            payload,
            content,
        })
    }
}

/// Whether a DER certificate names itself as issuer (a root). Unparsable certificates are left to
/// the chain check.
fn is_self_signed(der: &[u8]) -> bool {
    use x509_cert::der::Decode;
    x509_cert::Certificate::from_der(der)
        .map(|c| c.tbs_certificate.issuer == c.tbs_certificate.subject)
        .unwrap_or(false)
}

/// Verifies `material` over `artifact` against `expectation`, trusting `root`, at `now`.
/// Builds a [`Verifier`] each time; keep one to verify many.
pub fn verify(
    artifact: Artifact<'_>,
    material: &SignatureMaterial,
    expectation: &Expectation,
    root: &TrustRoot,
    now: UnixTime,
) -> Result<Verified, Error> {
    Verifier::new(root)?.verify(artifact, material, expectation, now)
}

pub(crate) fn parse_bundle(text: &str) -> Result<Bundle, Error> {
    let mut normalized = None;
    if let Ok(serde_json::Value::Object(mut o)) = serde_json::from_str::<serde_json::Value>(text) {
        // A bundle holds exactly one kind of content. A parser that reads the first of two
        // keys would let the holder choose which one is verified: refuse both before parsing.
        if o.contains_key("messageSignature") && o.contains_key("dsseEnvelope") {
            return Err(Check::MaterialMalformed
                .fail("the bundle holds both a messageSignature and a dsseEnvelope"));
        }
        // model_signing releases before 1.0.2 write `"keyid": null` in DSSE signatures. The
        // key id is a hint outside the signed bytes (DSSE's PAE does not cover it): read as
        // absent, as the DSSE specification makes it optional.
        let mut changed = false;
        if let Some(sigs) = o
            .get_mut("dsseEnvelope")
            .and_then(|e| e.get_mut("signatures"))
            .and_then(serde_json::Value::as_array_mut)
        {
            for sig in sigs.iter_mut().filter_map(serde_json::Value::as_object_mut) {
                if sig.get("keyid").is_some_and(serde_json::Value::is_null) {
                    sig.remove("keyid");
                    changed = true;
                }
            }
        }
        if changed {
            normalized = Some(serde_json::Value::Object(o).to_string());
        }
    }
    let text = normalized.as_deref().unwrap_or(text);
    // The media type decides the version; sigstore-types accepts both v0.3 spellings.
    Bundle::from_json(text).map_err(|e| {
        let msg = e.to_string();
        if msg.contains("checkpoint") {
            Check::TlogCheckpoint.fail(msg)
        } else if msg.contains("media type") || msg.contains("MediaType") {
            Check::MaterialUnsupported.fail(msg)
        } else {
            Check::MaterialMalformed.fail(msg)
        }
    })
}

fn to_sigstore_artifact<'a>(
    artifact: &Artifact<'a>,
) -> Result<sigstore_verify::types::Artifact<'a>, Error> {
    match artifact {
        Artifact::Bytes(b) => Ok(sigstore_verify::types::Artifact::from_blob(b)),
        Artifact::Digest(d) => {
            if d.algorithm() != DigestAlgorithm::Sha256 {
                return Err(Check::MaterialUnsupported
                    .fail("only sha256 artifact digests can be verified against a bundle"));
            }
            let h = sigstore_verify::types::Sha256Hash::try_from(d.as_bytes())
                .map_err(|e| Check::MaterialUnsupported.fail(e.to_string()))?;
            Ok(sigstore_verify::types::Artifact::from_digest(h))
        }
    }
}

/// Key-only bundles: no log entry and no timestamp; the signature is checked with the key and
/// bound to the artifact.
fn verify_key_only(key: &PublicKey, artifact: &Artifact<'_>, bundle: &Bundle) -> Result<(), Error> {
    match &bundle.content {
        SignatureContent::MessageSignature(ms) => {
            check_message_digest(ms, artifact)?;
            let signed = match artifact {
                Artifact::Bytes(b) => Signed::Message(b),
                Artifact::Digest(d) => Signed::Digest(d),
            };
            keysig::verify_with_key(key, signed, ms.signature.as_bytes())
        }
        SignatureContent::DsseEnvelope(env) => {
            let pae = pae(&env.payload_type, env.payload.as_bytes());
            keysig::verify_with_key(key, Signed::Message(&pae), env.signature.sig.as_bytes())?;
            check_in_toto_subject(&env.payload_type, env.payload.as_bytes(), artifact)
        }
        _ => Err(Check::MaterialUnsupported.fail("unsupported bundle content")),
    }
}

/// A message signature's `messageDigest`, when present, must be the artifact's digest.
fn check_message_digest(
    ms: &sigstore_verify::types::bundle::MessageSignature,
    artifact: &Artifact<'_>,
) -> Result<(), Error> {
    let Some(md) = &ms.message_digest else {
        return Ok(());
    };
    let alg = match md.algorithm {
        HashAlgorithm::Sha2256 => DigestAlgorithm::Sha256,
        HashAlgorithm::Sha2512 => DigestAlgorithm::Sha512,
        // Left to sigstore-verify, which knows SHA-384.
        _ => return Ok(()),
    };
    let Some(want) = artifact.digest_as(alg) else {
        return Err(
            Check::ArtifactMismatch.fail("artifact digest algorithm differs from the bundle's")
        );
    };
    if md.digest.as_bytes() != want.as_bytes() {
        return Err(Check::ArtifactMismatch.fail(format!(
            "message digest in bundle does not match the artifact ({want})"
        )));
    }
    Ok(())
}

/// The `predicateType` of an in-toto Statement payload, if it is one.
fn statement_predicate_type(payload_type: &str, payload: &[u8]) -> Option<String> {
    if payload_type != IN_TOTO_PAYLOAD_TYPE {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(payload).ok()?;
    v.get("predicateType")?.as_str().map(str::to_owned)
}

/// DSSE pre-authentication encoding: `DSSEv1 <len> <type> <len> <payload>`.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + payload_type.len() + 32);
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(payload_type.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

/// An in-toto statement must name the artifact among its subjects.
pub(crate) fn check_in_toto_subject(
    payload_type: &str,
    payload: &[u8],
    artifact: &Artifact<'_>,
) -> Result<(), Error> {
    if payload_type != IN_TOTO_PAYLOAD_TYPE {
        return Err(Check::MaterialUnsupported.fail(format!(
            "DSSE payload type {payload_type:?} is not an in-toto statement"
        )));
    }
    let stmt: serde_json::Value = serde_json::from_slice(payload)
        .map_err(|e| Check::MaterialMalformed.fail(format!("in-toto statement: {e}")))?;
    let subjects = stmt
        .get("subject")
        .and_then(|s| s.as_array())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Check::MaterialMalformed.fail("in-toto statement has no subject"))?;
    for s in subjects {
        let Some(digests) = s.get("digest").and_then(|d| d.as_object()) else {
            continue;
        };
        for (alg, hex_value) in digests {
            let alg = match alg.as_str() {
                "sha256" => DigestAlgorithm::Sha256,
                "sha512" => DigestAlgorithm::Sha512,
                _ => continue,
            };
            if let (Some(want), Some(h)) = (artifact.digest_as(alg), hex_value.as_str())
                && want.hex() == h.to_ascii_lowercase()
            {
                return Ok(());
            }
        }
    }
    Err(Check::ArtifactMismatch.fail("no in-toto subject digest matches the artifact"))
}

/// Writes a `trusted_root.json` for a [`TrustRoot`] built in code (no source JSON).
fn trusted_root_json(root: &TrustRoot) -> Vec<u8> {
    use serde_json::json;
    let window = |w: &crate::time::ValidityWindow| {
        let mut v = json!({ "start": w.start.to_string() });
        if let Some(end) = w.end {
            v["end"] = json!(end.to_string());
        }
        v
    };
    let log = |l: &crate::trust_root::TransparencyLog| {
        json!({
            "baseUrl": l.base_url,
            "hashAlgorithm": "SHA2_256",
            "publicKey": {
                "rawBytes": STANDARD.encode(l.public_key.spki_der()),
                "keyDetails": l.key_details,
                "validFor": window(&l.valid_for),
            },
            "logId": { "keyId": STANDARD.encode(&l.log_id) },
        })
    };
    let ca = |c: &crate::trust_root::CertificateAuthority| {
        json!({
            "subject": { "organization": c.organization, "commonName": c.common_name },
            "uri": c.uri,
            "certChain": { "certificates": c.cert_chain.iter()
                .map(|d| json!({ "rawBytes": STANDARD.encode(d) })).collect::<Vec<_>>() },
            "validFor": window(&c.valid_for),
        })
    };
    let doc = json!({
        "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
        "tlogs": root.tlogs.iter().map(log).collect::<Vec<_>>(),
        "certificateAuthorities": root.certificate_authorities.iter().map(ca).collect::<Vec<_>>(),
        "ctlogs": root.ctlogs.iter().map(log).collect::<Vec<_>>(),
        "timestampAuthorities": root.timestamp_authorities.iter().map(ca).collect::<Vec<_>>(),
    });
    serde_json::to_vec(&doc).unwrap_or_default()
}
