//! The image verification functions a validation calls (`verifyImageSignatures`,
//! `verifyAttestationSignatures`, `extractPayload`): the evidence of an image, and its
//! attestors with the trust they write.

use std::cell::RefCell;
use std::collections::BTreeMap;

use provenance_core::TrustReplacement;
use provenance_core::verify::{
    Expectation, IdentityExpectation, KeylessChecks, SignatureMaterial, Verifier,
};
use provenance_core::{Digest, PublicKey};
use serde_json::Value as Json;

use crate::kyverno::context::image_info;
use crate::kyverno::verify_images::{ImageEvidence, VerifierFor, VerifyImagesContext};
use crate::lang::cel::value::{cel_to_json, json_to_cel};
use crate::lang::cel::{ImageBinding, ImageScope, KyvernoFn, Value, str_field};

use super::{Attestation, ImageValidatingPolicy, list};

/// One evaluation's bindings and verification functions.
pub(super) struct Run<'a> {
    pub(super) policy: &'a ImageValidatingPolicy,
    pub(super) images_json: Json,
    pub(super) cx: Option<&'a VerifyImagesContext<'a>>,
    /// (evidence key, attestation) → verified in-toto statements.
    pub(super) payloads: RefCell<BTreeMap<(String, String), Vec<Json>>>,
    pub(super) verified: &'a RefCell<BTreeMap<String, bool>>,
    pub(super) unsupported: RefCell<Option<String>>,
    /// Why attestors did not verify (for the result's reasons).
    pub(super) details: RefCell<Vec<String>>,
}

/// The ways one image can be written that name the same thing: as written, and with its
/// registry host as the network sees it (lower case, no `:443`); the normalized
/// reference by tag (`registry/path:tag`) and by digest (`registry/path@digest`); and for a
/// `repo:tag@digest` the written form without its digest and without its tag.
pub(super) fn image_forms(image: &str) -> Vec<String> {
    fn add(forms: &mut Vec<String>, f: String) {
        if !f.is_empty() && !forms.contains(&f) {
            forms.push(f);
        }
    }
    let mut forms = vec![image.to_owned()];
    if let Some(n) = crate::kyverno::verify_images::host_normalized(image) {
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
pub(super) struct CallError {
    pub(super) message: String,
    pub(super) unsupported: bool,
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
pub(super) fn find_evidence<'a>(
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
        return Err(CallError::new(format!(
            "failed to get imagedata: {} [{}]",
            e.message, e.code
        )));
    }
    if let Some(e) = &ev.invalid {
        return Err(CallError {
            message: format!("the image cannot be verified: {} [{}]", e.message, e.code),
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
/// attestor) and the trust material it writes (`keyless.roots`, `ctlog.rekorPubKey`,
/// `ctlog.ctLogPubKey`, `ctlog.tsaCertChain`, replacing those parts of the caller's trust
/// root), or why it cannot be evaluated.
pub(super) fn cosign_expectations(
    name: &str,
    att: &Json,
) -> Result<(Vec<Expectation>, TrustReplacement), CallError> {
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
        (
            "/certificate/cert/expression",
            "cosign.certificate.cert.expression",
        ),
        (
            "/certificate/certChain",
            "cosign.certificate.certChain (verified against the trusted root's CAs by Kyverno, not the chain; not implemented)",
        ),
        ("/trustedRoot/expression", "cosign.trustedRoot.expression"),
        (
            "/tuf",
            "cosign.tuf (trust roots are fetched by the embedding application; put the trusted_root.json in cosign.trustedRoot.value)",
        ),
        (
            "/source",
            "cosign.source (signatures are read beside the image)",
        ),
        ("/key/kms", "cosign.key.kms"),
        ("/key/expression", "cosign.key.expression"),
    ] {
        if set(p) {
            return Err(CallError::unsupported(what(label)));
        }
    }
    let text = |p: &str| cosign.pointer(p).and_then(Json::as_str);
    let trusted_root = text("/trustedRoot/value").filter(|t| !t.trim().is_empty());
    if trusted_root.is_some() {
        // Kyverno takes its keys and roots from the trusted root when one is given and
        // ignores these; two sources of trust for one attestor are refused, not resolved.
        for p in ["/keyless/roots", "/ctlog/rekorPubKey", "/ctlog/ctLogPubKey"] {
            if text(p).is_some_and(|t| !t.trim().is_empty()) {
                return Err(CallError::new(what(&format!(
                    "[policy.trust.invalid] cosign{} together with cosign.trustedRoot: Kyverno ignores it then; keep the material in the trusted root only",
                    p.replace('/', ".")
                ))));
            }
        }
    }
    let mut trust = crate::kyverno::verify_images::policy_trust([
        (text("/keyless/roots"), "cosign.keyless.roots"),
        (text("/ctlog/rekorPubKey"), "cosign.ctlog.rekorPubKey"),
        (text("/ctlog/ctLogPubKey"), "cosign.ctlog.ctLogPubKey"),
        (text("/ctlog/tsaCertChain"), "cosign.ctlog.tsaCertChain"),
    ])
    .map_err(|e| CallError::new(what(&format!("[policy.trust.invalid] {e}"))))?;
    if let Some(json) = trusted_root {
        const MAX: usize = 1 << 20;
        if json.len() > MAX {
            return Err(CallError::new(what(
                "[policy.trust.invalid] cosign.trustedRoot.value is larger than 1 MiB",
            )));
        }
        provenance_core::TrustRoot::from_trusted_root_json(json.as_bytes()).map_err(|e| {
            CallError::new(what(&format!(
                "[policy.trust.invalid] cosign.trustedRoot.value: {e}"
            )))
        })?;
        trust.trusted_root_json = Some(json.as_bytes().to_vec());
    }
    let flag = |p: &str| cosign.pointer(p).and_then(Json::as_bool).unwrap_or(false);
    let ignore_tlog = flag("/ctlog/insecureIgnoreTlog");
    let checks = KeylessChecks {
        transparency_log: !ignore_tlog,
        sct: !flag("/ctlog/insecureIgnoreSCT"),
    };
    if let Some(cert) = cosign
        .pointer("/certificate/cert/value")
        .and_then(Json::as_str)
        .filter(|c| !c.trim().is_empty())
    {
        // Kyverno verifies with the certificate's public key (the PEM, or base64 of it).
        let pem_text = if cert.contains("-----BEGIN") {
            cert.to_owned()
        } else {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD
                .decode(cert.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .unwrap_or_default()
        };
        let certs = provenance_core::trust_root::certificates_from_pem(
            &pem_text,
            "cosign.certificate.cert.value",
        )
        .map_err(|e| CallError::new(what(&format!("[policy.trust.invalid] {e}"))))?;
        let [der] = certs.as_slice() else {
            return Err(CallError::new(what(
                "[policy.trust.invalid] cosign.certificate.cert.value: exactly one certificate is expected",
            )));
        };
        let key = PublicKey::from_certificate_der(der)
            .map_err(|e| CallError::new(what(&format!("cosign.certificate.cert.value: {e}"))))?;
        return Ok((
            vec![Expectation::Key {
                key,
                allow_no_transparency: ignore_tlog,
            }],
            trust,
        ));
    }
    if cosign.get("certificate").is_some_and(|c| !c.is_null()) {
        return Err(CallError::new(what(
            "cosign.certificate needs cert.value (a PEM certificate)",
        )));
    }
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
        let keys = keys
            .into_iter()
            .map(|key| Expectation::Key {
                key,
                allow_no_transparency: ignore_tlog,
            })
            .collect();
        return Ok((keys, trust));
    }
    if let Some(k) = cosign.get("keyless").filter(|k| !k.is_null()) {
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
            out.push(Expectation::KeylessWith {
                identity: IdentityExpectation {
                    subject_exact: s("subject"),
                    subject_regexp: s("subjectRegExp"),
                    issuer: s("issuer"),
                    issuer_regexp: s("issuerRegExp"),
                    additional_extensions: extensions.clone(),
                    ..Default::default()
                },
                checks,
            });
        }
        if out.is_empty() {
            return Err(CallError::new(what(
                "keyless attestor without identities (any Sigstore identity would be accepted)",
            )));
        }
        return Ok((out, trust));
    }
    Err(CallError::new(what("cosign needs key or keyless")))
}

/// The verifier for an attestor: the caller's, or one with the trust the attestor writes.
fn attestor_verifier<'a>(
    base: &'a Verifier,
    trust: &TrustReplacement,
    name: &str,
) -> Result<VerifierFor<'a>, CallError> {
    VerifierFor::new(base, trust).map_err(|e| {
        CallError::new(format!(
            "attestor {name}: [{}] the trust material written in the policy: {e}",
            e.code()
        ))
    })
}

/// Whether a verified cosign simple-signing payload carries the attestor's `annotations`.
pub(super) fn annotations_match(att: &Json, payload: &[u8]) -> bool {
    let Some(Json::Object(want)) = att.pointer("/cosign/annotations") else {
        return true;
    };
    want.is_empty() || crate::kyverno::verify_images::payload_annotations_match(want, payload)
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
        if let Some(too_many) =
            crate::kyverno::verify_images::too_many_materials("signatures", ev.signatures.len())
        {
            self.detail(format!("{image}: {too_many}"));
            self.record(&image, false);
            return Ok(Value::Int(0));
        }
        let mut count = 0i64;
        for att in &attestors {
            let name = str_field(att, "name").unwrap_or_default();
            let (exps, trust) = cosign_expectations(name, att)?;
            let verifier = attestor_verifier(cx.verifier, &trust, name)?;
            let mut last = String::from("no signatures found");
            let mut ok = false;
            'material: for m in &ev.signatures {
                for exp in &exps {
                    match verifier.verify_image_signature(&digest, m, exp, cx.now) {
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
            let (exps, trust) = cosign_expectations(name, att)?;
            let verifier = attestor_verifier(cx.verifier, &trust, name)?;
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
                .filter(|m| m.claimed_predicate_type().is_some_and(|t| t == *ty))
                .collect();
            if let Some(too_many) = crate::kyverno::verify_images::too_many_materials(
                &format!("{ty} attestations"),
                candidates.len(),
            ) {
                self.detail(format!("{image}: {too_many}"));
                self.record(&image, false);
                return Ok(Value::Int(0));
            }
            let mut ok = false;
            let mut last = if candidates.is_empty() {
                format!("no attestations found (need {ty})")
            } else {
                format!("no verified {ty} attestation found")
            };
            for m in candidates {
                for exp in &exps {
                    let v = match verifier.verify_attestation(&digest, m, exp, cx.now) {
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
