//! Attestors: the keys, keyless identities and certificates of a `verifyImages` entry (with
//! the trust material it writes), attestor sets with `count` and nesting, and the check of
//! signature or attestation material against each.

use provenance_core::TrustReplacement;
use provenance_core::verify::{
    Expectation, IdentityExpectation, KeylessChecks, SignatureMaterial, Verifier,
};
use provenance_core::{Digest, PublicKey};
use serde_json::Value;

use super::{FAILED, Failure, VerifyImagesContext};

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
pub(super) enum Want<'a> {
    /// A signature of the image (simple-signing payload, message signature, or cosign's
    /// signing Statement).
    Signature,
    /// An attestation: a verified in-toto Statement of this predicate type naming the digest.
    Attestation(&'a str),
}

/// Verifies an attestor set against `materials`; returns the payloads that verified.
pub(super) fn verify_attestor_set(
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

pub(super) fn within_material_cap(path: &str, what: &str, found: usize) -> Result<(), Failure> {
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
