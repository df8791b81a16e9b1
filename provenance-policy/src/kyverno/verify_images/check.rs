//! One `verifyImages` entry checked against the evidence of one image: resolving the digest,
//! its attestors over the signatures, its attestations (by claimed predicate type, with their
//! conditions) and the model-signing extension for model artifacts.

use provenance_core::Digest;
use provenance_core::verify::SignatureMaterial;
use serde_json::Value;

use super::attestors::{Want, verify_attestor_set, within_material_cap};
use super::sites::attestation_type;
use super::{Failure, ImageEvidence, ImageRequest, VerifyImagesContext};
use crate::lang::jmespath::Env;

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

impl VerifyImagesContext<'_> {
    /// The evidence of `req` and the digest it is bound to, or why there is none.
    pub(super) fn resolve(
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
    pub(super) fn verify_resolved(
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
                .filter(|m| m.claimed_predicate_type().is_some_and(|t| t == ty))
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
pub(super) const MODEL_SIGNING_V1: &str = provenance_attest::modelsigning::MODEL_SIGNING_V1;

/// The `sha256` of the first subject a DSSE attestation claims, read without verifying
/// anything (the verifier is then told to require it; the signature binds it).
fn claimed_subject_digest(m: &SignatureMaterial) -> Option<Digest> {
    let statement = m.claimed_statement()?;
    let hex = statement.pointer("/subject/0/digest/sha256")?.as_str()?;
    Digest::parse(&format!("sha256:{hex}")).ok()
}
