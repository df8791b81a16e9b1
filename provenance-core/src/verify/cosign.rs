//! cosign legacy signature layers: a simple-signing payload plus annotations.
//!
//! A layer is turned into the equivalent Sigstore v0.1 bundle (message signature over the
//! payload, certificate or key, the `dev.sigstore.cosign/bundle` SET as a log entry with an
//! inclusion promise, RFC 3161 timestamps) and verified like any bundle, after the payload has
//! been checked to name the admitted image digest.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use super::check::Check;
use super::keysig::{self, Signed};
use super::{Artifact, Expectation, SignedContent, Signer, Verified, Verifier, parse_bundle};
use crate::digest::Digest;
use crate::error::Error;
use crate::time::UnixTime;

/// Annotation holding the base64 signature over the payload.
pub const ANNOTATION_SIGNATURE: &str = "dev.cosignproject.cosign/signature";
/// Annotation holding the PEM signing certificate.
pub const ANNOTATION_CERTIFICATE: &str = "dev.sigstore.cosign/certificate";
/// Annotation holding the PEM certificate chain (intermediates and root).
pub const ANNOTATION_CHAIN: &str = "dev.sigstore.cosign/chain";
/// Annotation holding the Rekor SET bundle JSON.
pub const ANNOTATION_BUNDLE: &str = "dev.sigstore.cosign/bundle";
/// Annotation holding the RFC 3161 timestamp JSON (`{"SignedRFC3161Timestamp": "<base64>"}`).
pub const ANNOTATION_RFC3161_TIMESTAMP: &str = "dev.sigstore.cosign/rfc3161timestamp";
/// Media type of a cosign simple-signing layer.
pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";

const COSIGN_SIGNATURE_TYPE: &str = "cosign container image signature";

/// One cosign legacy signature layer, as a registry client finds it in a `sha256-<hex>.sig`
/// manifest: the layer's bytes (the simple-signing payload) and the layer descriptor's
/// annotations. Plain data: no parsing happens until verification.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CosignSignature {
    /// The layer bytes: a simple-signing JSON payload.
    pub payload: Vec<u8>,
    /// The layer descriptor's annotations.
    pub annotations: BTreeMap<String, String>,
}

impl CosignSignature {
    /// A layer from its payload and annotations.
    pub fn new(payload: Vec<u8>, annotations: BTreeMap<String, String>) -> Self {
        CosignSignature {
            payload,
            annotations,
        }
    }

    fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.get(key).map(String::as_str)
    }
}

/// Checks the simple-signing payload and returns the image digest it names.
fn check_payload(payload: &[u8], image: &Digest) -> Result<(), Error> {
    let v: Value = serde_json::from_slice(payload)
        .map_err(|e| Check::SimpleSigningPayload.fail(format!("payload is not JSON: {e}")))?;
    let critical = v
        .get("critical")
        .ok_or_else(|| Check::SimpleSigningPayload.fail("payload has no `critical` section"))?;
    let ty = critical.get("type").and_then(Value::as_str);
    if ty != Some(COSIGN_SIGNATURE_TYPE) {
        return Err(Check::SimpleSigningPayload.fail(format!(
            "critical.type is {ty:?}, expected {COSIGN_SIGNATURE_TYPE:?}"
        )));
    }
    let named = critical
        .get("image")
        .and_then(|i| i.get("docker-manifest-digest"))
        .and_then(Value::as_str)
        .ok_or_else(|| {
            Check::SimpleSigningPayload.fail("critical.image.docker-manifest-digest is missing")
        })?;
    let named = Digest::parse(named).map_err(|e| {
        Check::SimpleSigningPayload.fail(format!("critical.image.docker-manifest-digest: {e}"))
    })?;
    if &named != image {
        return Err(Check::ImageDigestMismatch.fail(format!(
            "payload signs {named}, the admitted image is {image}"
        )));
    }
    Ok(())
}

fn b64(field: &str, s: &str) -> Result<Vec<u8>, Error> {
    STANDARD
        .decode(s.trim())
        .map_err(|e| Check::MaterialMalformed.fail(format!("{field}: invalid base64: {e}")))
}

pub(super) fn verify(
    verifier: &Verifier,
    artifact: Artifact<'_>,
    sig: &CosignSignature,
    expectation: &Expectation,
    now: UnixTime,
) -> Result<Verified, Error> {
    let total: usize = sig.payload.len()
        + sig
            .annotations
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum::<usize>();
    if total > super::MAX_MATERIAL_BYTES {
        return Err(Check::MaterialTooLarge.fail("cosign layer too large"));
    }
    let image = match artifact {
        Artifact::Digest(d) => d.clone(),
        Artifact::Bytes(manifest) => Digest::sha256_of(manifest),
    };
    // A signature layer carries a simple-signing payload signed by the annotation; an
    // attestation layer (`.att`, `application/vnd.dsse.envelope.v1+json`) carries a DSSE
    // envelope whose in-toto subject must name the image.
    let layer = match dsse_envelope(&sig.payload)? {
        Some(env) => {
            super::check_in_toto_subject(
                &env.payload_type,
                &env.payload,
                &Artifact::Digest(&image),
            )
            .map_err(|e| match e {
                Error::Verification {
                    check: Check::ArtifactMismatch,
                    detail,
                } => Check::ImageDigestMismatch.fail(detail),
                e => e,
            })?;
            Layer {
                signature: env.signature.clone(),
                signed: super::pae(&env.payload_type, &env.payload),
                content: json!({ "dsseEnvelope": {
                    "payloadType": env.payload_type,
                    "payload": STANDARD.encode(&env.payload),
                    "signatures": [{ "sig": STANDARD.encode(&env.signature), "keyid": env.keyid }],
                } }),
                payload_out: Some((env.payload_type.clone(), env.payload.clone())),
                dsse: true,
            }
        }
        None => {
            check_payload(&sig.payload, &image)?;
            let signature_b64 = sig.annotation(ANNOTATION_SIGNATURE).ok_or_else(|| {
                Check::MaterialMalformed.fail(format!("missing {ANNOTATION_SIGNATURE}"))
            })?;
            let signature = b64(ANNOTATION_SIGNATURE, signature_b64)?;
            Layer {
                content: json!({ "messageSignature": {
                    "messageDigest": {
                        "algorithm": "SHA2_256",
                        "digest": STANDARD.encode(Digest::sha256_of(&sig.payload).as_bytes()),
                    },
                    "signature": STANDARD.encode(&signature),
                } }),
                signature,
                signed: sig.payload.clone(),
                payload_out: Some((SIMPLE_SIGNING_MEDIA_TYPE.to_owned(), sig.payload.clone())),
                dsse: false,
            }
        }
    };
    if layer.signature.is_empty() {
        return Err(Check::Signature.fail("empty signature"));
    }
    let signature = &layer.signature;
    let set = sig.annotation(ANNOTATION_BUNDLE);
    let tsa = sig.annotation(ANNOTATION_RFC3161_TIMESTAMP);
    let payload_out = layer.payload_out.clone();

    // Key signatures with no transparency evidence at all.
    if set.is_none() && tsa.is_none() {
        return match expectation {
            Expectation::Key {
                key,
                allow_no_transparency: true,
            } => {
                keysig::verify_with_key(key, Signed::Message(&layer.signed), signature)?;
                Ok(Verified {
                    signer: Signer::Key {
                        key_id: key.key_id(),
                        kind: key.kind(),
                    },
                    integrated_time: None,
                    log_index: None,
                    verified_times: Vec::new(),
                    transparency_verified: false,
                    payload: payload_out,
                    content: if layer.dsse {
                        SignedContent::Dsse
                    } else {
                        SignedContent::SimpleSigning
                    },
                })
            }
            _ => Err(Check::TlogMissing.fail(format!(
                "the signature has no {ANNOTATION_BUNDLE} (SET) and no timestamp"
            ))),
        };
    }

    let material = match expectation {
        Expectation::Key { key, .. } => json!({ "publicKey": { "hint": key.key_id().hex() } }),
        Expectation::Keyless(_) | Expectation::KeylessWith { .. } => {
            let pem_text = sig.annotation(ANNOTATION_CERTIFICATE).ok_or_else(|| {
                Check::MaterialKind.fail(format!(
                    "keyless verification needs {ANNOTATION_CERTIFICATE}"
                ))
            })?;
            let block = pem::parse(pem_text).map_err(|e| {
                Check::CertificateMalformed.fail(format!("{ANNOTATION_CERTIFICATE}: {e}"))
            })?;
            if block.tag() != "CERTIFICATE" {
                return Err(Check::CertificateMalformed.fail(format!(
                    "{ANNOTATION_CERTIFICATE} holds a {:?} block",
                    block.tag()
                )));
            }
            // The chain annotation's intermediates help build a path (a private CA whose
            // policy lists only its root); they are untrusted: a path is only accepted if it
            // ends at a certificate authority of the trust root. Its root (self-signed)
            // certificates are left out, so trust never comes from the annotation.
            let mut certs = vec![json!({ "rawBytes": STANDARD.encode(block.contents()) })];
            if let Some(chain) = sig.annotation(ANNOTATION_CHAIN) {
                let blocks = pem::parse_many(chain).map_err(|e| {
                    Check::CertificateMalformed.fail(format!("{ANNOTATION_CHAIN}: {e}"))
                })?;
                for b in blocks.iter().filter(|b| b.tag() == "CERTIFICATE") {
                    if b.contents() == block.contents() || super::is_self_signed(b.contents()) {
                        continue;
                    }
                    certs.push(json!({ "rawBytes": STANDARD.encode(b.contents()) }));
                }
            }
            json!({ "x509CertificateChain": { "certificates": certs } })
        }
    };
    let mut material = material;
    let mut entries = Vec::new();
    if let Some(set) = set {
        entries.push(tlog_entry_from_set(set)?);
    }
    material["tlogEntries"] = Value::Array(entries);
    let mut stamps = Vec::new();
    if let Some(t) = tsa {
        let v: Value = serde_json::from_str(t).map_err(|e| {
            Check::MaterialMalformed.fail(format!("{ANNOTATION_RFC3161_TIMESTAMP}: {e}"))
        })?;
        let token = v
            .get("SignedRFC3161Timestamp")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                Check::MaterialMalformed.fail(format!(
                    "{ANNOTATION_RFC3161_TIMESTAMP}: no SignedRFC3161Timestamp"
                ))
            })?;
        b64(ANNOTATION_RFC3161_TIMESTAMP, token)?;
        stamps.push(json!({ "signedTimestamp": token }));
    }
    material["timestampVerificationData"] = json!({ "rfc3161Timestamps": stamps });
    let mut bundle = json!({
        "mediaType": "application/vnd.dev.sigstore.bundle+json;version=0.1",
        "verificationMaterial": material,
    });
    if let (Some(b), Some(c)) = (bundle.as_object_mut(), layer.content.as_object()) {
        b.extend(c.clone());
    }
    let bundle = parse_bundle(&bundle.to_string())?;
    let artifact = if layer.dsse {
        Artifact::Digest(&image)
    } else {
        Artifact::Bytes(&sig.payload)
    };
    let mut v = verifier.verify_bundle(artifact, &bundle, expectation, now, payload_out)?;
    v.content = if layer.dsse {
        SignedContent::Dsse
    } else {
        SignedContent::SimpleSigning
    };
    Ok(v)
}

/// What a layer signs, in the bundle's terms.
struct Layer {
    signature: Vec<u8>,
    /// The bytes the signature is over (payload, or DSSE PAE).
    signed: Vec<u8>,
    /// The bundle's `messageSignature` or `dsseEnvelope`.
    content: Value,
    payload_out: Option<(String, Vec<u8>)>,
    dsse: bool,
}

/// A DSSE envelope in an attestation layer.
struct Envelope {
    payload_type: String,
    payload: Vec<u8>,
    signature: Vec<u8>,
    keyid: String,
}

/// The layer's DSSE envelope, if the payload is one (`payloadType` + `signatures`); `None` for
/// a simple-signing payload. cosign writes exactly one signature.
fn dsse_envelope(payload: &[u8]) -> Result<Option<Envelope>, Error> {
    let Ok(v) = serde_json::from_slice::<Value>(payload) else {
        return Ok(None);
    };
    let (Some(pt), Some(sigs)) = (v.get("payloadType"), v.get("signatures")) else {
        return Ok(None);
    };
    let bad = |what: &str| Check::MaterialMalformed.fail(format!("DSSE envelope: {what}"));
    let payload_type = pt
        .as_str()
        .ok_or_else(|| bad("payloadType is not a string"))?;
    let body = v
        .get("payload")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("no payload"))?;
    let sigs = sigs
        .as_array()
        .ok_or_else(|| bad("signatures is not a list"))?;
    let [s] = sigs.as_slice() else {
        return Err(Check::MaterialUnsupported.fail(format!(
            "DSSE envelope with {} signatures (one expected)",
            sigs.len()
        )));
    };
    let sig_b64 = s
        .get("sig")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("signature without sig"))?;
    Ok(Some(Envelope {
        payload_type: payload_type.to_owned(),
        payload: b64("DSSE payload", body)?,
        signature: b64("DSSE signature", sig_b64)?,
        keyid: s
            .get("keyid")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
    }))
}

/// Turns cosign's `{"SignedEntryTimestamp", "Payload": {body, integratedTime, logIndex, logID}}`
/// into a bundle log entry with an inclusion promise.
fn tlog_entry_from_set(set: &str) -> Result<Value, Error> {
    let bad = |what: &str| Check::MaterialMalformed.fail(format!("{ANNOTATION_BUNDLE}: {what}"));
    let v: Value = serde_json::from_str(set).map_err(|e| bad(&e.to_string()))?;
    let set_sig = v
        .get("SignedEntryTimestamp")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("no SignedEntryTimestamp"))?;
    let p = v.get("Payload").ok_or_else(|| bad("no Payload"))?;
    let body = p
        .get("body")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("no Payload.body"))?;
    let integrated = p
        .get("integratedTime")
        .and_then(Value::as_i64)
        .ok_or_else(|| bad("no Payload.integratedTime"))?;
    let index = p
        .get("logIndex")
        .and_then(Value::as_i64)
        .ok_or_else(|| bad("no Payload.logIndex"))?;
    if index < 0 {
        return Err(Check::TlogMalformed.fail("negative log index"));
    }
    let log_id = p
        .get("logID")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("no Payload.logID"))?;
    let log_id = hex::decode(log_id).map_err(|_| bad("Payload.logID is not hex"))?;
    let body_json: Value = serde_json::from_slice(&b64("Payload.body", body)?)
        .map_err(|e| bad(&format!("Payload.body is not JSON: {e}")))?;
    let kind = body_json
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let version = body_json
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    b64("SignedEntryTimestamp", set_sig)?;
    Ok(json!({
        "logIndex": index.to_string(),
        "logId": { "keyId": STANDARD.encode(log_id) },
        "kindVersion": { "kind": kind, "version": version },
        "integratedTime": integrated.to_string(),
        "inclusionPromise": { "signedEntryTimestamp": set_sig },
        "canonicalizedBody": body,
    }))
}
