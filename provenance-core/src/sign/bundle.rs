//! Sigstore bundles (v0.3, `application/vnd.dev.sigstore.bundle.v0.3+json`) made by a
//! [`Signer`], without transparency evidence: `tlogEntries` is empty and there is no timestamp.
//! Verifiers accept such bundles only when told to (`Expectation::Key {
//! allow_no_transparency: true }` here, `tlogThreshold: 0` in sigstore-js); a keyless signer adds
//! its log entry and timestamps to [`Options::tlog_entries`] / [`Options::rfc3161_timestamps`].

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use super::{Signer, SignerMaterial};
use crate::digest::Digest;
use crate::error::Error;
use crate::keys::PublicKey;
use crate::verify::pae;

/// The bundle media type written.
pub const BUNDLE_V03: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";

/// How the verification material is written.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The public-key hint (default: [`key_hint`]). Ignored for certificate signers.
    pub hint: Option<String>,
    /// Write a certificate signer's whole chain as `x509CertificateChain` (as
    /// `model_signing sign certificate` does) instead of the leaf alone as `certificate`
    /// (bundle v0.3's form, used for Fulcio certificates).
    pub certificate_chain: bool,
    /// Transparency-log entries (JSON, as in the bundle) supplied by a keyless signer.
    pub tlog_entries: Vec<Value>,
    /// RFC 3161 timestamps (DER), supplied by a keyless signer.
    pub rfc3161_timestamps: Vec<Vec<u8>>,
}

/// The default public-key hint: the base64 SHA-256 of the key's DER SubjectPublicKeyInfo.
pub fn key_hint(key: &PublicKey) -> String {
    STANDARD.encode(key.key_id().as_bytes())
}

/// The `verificationMaterial` object for `signer`.
pub fn verification_material(signer: &dyn Signer, options: &Options) -> Value {
    let mut vm = match signer.material() {
        SignerMaterial::PublicKey(key) => {
            let hint = options.hint.clone().unwrap_or_else(|| key_hint(&key));
            json!({ "publicKey": { "hint": hint } })
        }
        SignerMaterial::CertificateChain(chain) if options.certificate_chain => {
            let certs: Vec<Value> = chain
                .iter()
                .map(|c| json!({ "rawBytes": STANDARD.encode(c) }))
                .collect();
            json!({ "x509CertificateChain": { "certificates": certs } })
        }
        SignerMaterial::CertificateChain(chain) => {
            let leaf = chain
                .first()
                .map(|c| STANDARD.encode(c))
                .unwrap_or_default();
            json!({ "certificate": { "rawBytes": leaf } })
        }
    };
    vm["tlogEntries"] = Value::Array(options.tlog_entries.clone());
    if !options.rfc3161_timestamps.is_empty() {
        let ts: Vec<Value> = options
            .rfc3161_timestamps
            .iter()
            .map(|t| json!({ "signedTimestamp": STANDARD.encode(t) }))
            .collect();
        vm["timestampVerificationData"] = json!({ "rfc3161Timestamps": ts });
    }
    vm
}

/// A bundle with a message signature over `artifact` (what `cosign sign-blob --bundle` writes):
/// the signature is over the bytes, the bundle records their SHA-256.
pub fn message_signature(signer: &dyn Signer, artifact: &[u8]) -> Result<Vec<u8>, Error> {
    message_signature_with(signer, artifact, &Options::default())
}

/// [`message_signature`] with explicit [`Options`].
pub fn message_signature_with(
    signer: &dyn Signer,
    artifact: &[u8],
    options: &Options,
) -> Result<Vec<u8>, Error> {
    let signature = signer.sign(artifact)?;
    let digest = Digest::sha256_of(artifact);
    let v = json!({
        "mediaType": BUNDLE_V03,
        "verificationMaterial": verification_material(signer, options),
        "messageSignature": {
            "messageDigest": { "algorithm": "SHA2_256", "digest": STANDARD.encode(digest.as_bytes()) },
            "signature": STANDARD.encode(signature),
        },
    });
    to_bytes(&v)
}

/// A DSSE envelope over `payload` signed by `signer`, as JSON
/// (`{"payloadType","payload","signatures":[{"sig","keyid"}]}`), and the raw signature.
pub fn dsse_envelope(
    signer: &dyn Signer,
    payload_type: &str,
    payload: &[u8],
) -> Result<(Value, Vec<u8>), Error> {
    let signature = signer.sign(&pae(payload_type, payload))?;
    let env = json!({
        "payload": STANDARD.encode(payload),
        "payloadType": payload_type,
        "signatures": [{ "sig": STANDARD.encode(&signature), "keyid": "" }],
    });
    Ok((env, signature))
}

/// A bundle with a DSSE envelope over `payload` (an in-toto Statement for attestations).
pub fn dsse(signer: &dyn Signer, payload_type: &str, payload: &[u8]) -> Result<Vec<u8>, Error> {
    dsse_with(signer, payload_type, payload, &Options::default())
}

/// [`dsse`] with explicit [`Options`].
pub fn dsse_with(
    signer: &dyn Signer,
    payload_type: &str,
    payload: &[u8],
    options: &Options,
) -> Result<Vec<u8>, Error> {
    let (mut env, _) = dsse_envelope(signer, payload_type, payload)?;
    // A bundle is protobuf JSON, which leaves out an empty `keyid` (as Sigstore clients write
    // it); cosign's legacy `.att` layer keeps `"keyid": ""`.
    if let Some(sig) = env
        .pointer_mut("/signatures/0")
        .and_then(Value::as_object_mut)
    {
        sig.remove("keyid");
    }
    let v = json!({
        "mediaType": BUNDLE_V03,
        "verificationMaterial": verification_material(signer, options),
        "dsseEnvelope": env,
    });
    to_bytes(&v)
}

fn to_bytes(v: &Value) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(v).map_err(|e| Error::Signing {
        reason: format!("cannot serialize the bundle: {e}"),
    })
}
