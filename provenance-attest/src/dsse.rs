//! DSSE envelopes (Dead Simple Signing Envelope), their pre-authentication encoding, and the
//! containers real tools wrap them in (Sigstore bundles, JSON lines, npm and Cloud Build
//! responses).

use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Format, clip};
use crate::json::{self, Limits};
use crate::statement::Statement;

/// Largest envelope accepted by [`Envelope::from_json`].
pub const MAX_ENVELOPE_BYTES: usize = 16 << 20;

/// The payload type of in-toto Statements inside DSSE.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

const LENIENT: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
const STANDARD_LENIENT: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT);
const URL_SAFE_LENIENT: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT);

/// Decodes base64 as DSSE allows it: standard or URL-safe alphabet, padding optional.
pub(crate) fn decode_base64(input: &str) -> Result<Vec<u8>, base64::DecodeError> {
    STANDARD_LENIENT
        .decode(input.as_bytes())
        .or_else(|e| URL_SAFE_LENIENT.decode(input.as_bytes()).map_err(|_| e))
}

/// One signature over an envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// Optional key id hint (unauthenticated). `null` (as model_signing 0.1 to 1.0.1 write
    /// it) reads as empty.
    #[serde(
        default,
        deserialize_with = "json::null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub keyid: String,
    /// Base64 signature over [`pae`] of the payload type and payload.
    pub sig: String,
}

impl Signature {
    /// The signature bytes, base64-decoded (standard or URL-safe alphabet).
    pub fn sig_bytes(&self) -> Result<Vec<u8>, Error> {
        decode_base64(&self.sig).map_err(|e| Error::InvalidEnvelope {
            reason: format!("signature is not base64: {e}"),
        })
    }
}

/// A DSSE envelope with its payload decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The payload type, e.g. `application/vnd.in-toto+json`.
    pub payload_type: String,
    /// The decoded payload bytes.
    pub payload: Vec<u8>,
    /// The signatures, still base64-encoded as in the envelope.
    pub signatures: Vec<Signature>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wire {
    payload_type: String,
    payload: String,
    #[serde(default, deserialize_with = "json::null_default")]
    signatures: Vec<Signature>,
}

impl Envelope {
    /// Parses an envelope from JSON, decoding the payload, with the default limit of
    /// [`MAX_ENVELOPE_BYTES`].
    ///
    /// ```
    /// let env = provenance_attest::Envelope::from_json(
    ///     br#"{"payloadType":"text/plain","payload":"aGk=","signatures":[{"sig":"AA=="}]}"#,
    /// ).unwrap();
    /// assert_eq!(env.payload, b"hi");
    /// ```
    pub fn from_json(bytes: &[u8]) -> Result<Self, Error> {
        let limits = Limits::default().with_max_bytes(MAX_ENVELOPE_BYTES);
        Self::from_json_with(bytes, &limits)
    }

    /// Parses an envelope from JSON under explicit limits.
    pub fn from_json_with(bytes: &[u8], limits: &Limits) -> Result<Self, Error> {
        json::check_bounds(Format::Dsse, bytes, limits)?;
        let w: Wire = serde_json::from_slice(bytes).map_err(|e| Error::InvalidEnvelope {
            reason: clip(&e.to_string(), 300),
        })?;
        Self::from_wire(w)
    }

    /// Builds an envelope from an already-parsed JSON object (e.g. a bundle's `dsseEnvelope`).
    pub fn from_value(value: &Value) -> Result<Self, Error> {
        let w: Wire = Wire::deserialize(value).map_err(|e| Error::InvalidEnvelope {
            reason: clip(&e.to_string(), 300),
        })?;
        Self::from_wire(w)
    }

    fn from_wire(w: Wire) -> Result<Self, Error> {
        if w.payload_type.is_empty() {
            return Err(Error::InvalidEnvelope {
                reason: "payloadType is empty".into(),
            });
        }
        let payload = decode_base64(&w.payload).map_err(|e| Error::InvalidEnvelope {
            reason: format!("payload is not base64: {e}"),
        })?;
        for (i, s) in w.signatures.iter().enumerate() {
            decode_base64(&s.sig).map_err(|e| Error::InvalidEnvelope {
                reason: format!("signatures[{i}].sig is not base64: {e}"),
            })?;
        }
        Ok(Envelope {
            payload_type: w.payload_type,
            payload,
            signatures: w.signatures,
        })
    }

    /// The bytes a signature over this envelope covers.
    pub fn signed_bytes(&self) -> Vec<u8> {
        pae(&self.payload_type, &self.payload)
    }

    /// Parses the payload as an in-toto [`Statement`]; the payload type must be
    /// [`IN_TOTO_PAYLOAD_TYPE`].
    ///
    /// The signatures are **not** verified here: verify [`Envelope::signed_bytes`] first.
    pub fn statement(&self, limits: &Limits) -> Result<Statement, Error> {
        if self.payload_type != IN_TOTO_PAYLOAD_TYPE {
            return Err(Error::Unsupported {
                format: Format::Dsse,
                found: clip(&self.payload_type, 128),
                supported: IN_TOTO_PAYLOAD_TYPE,
            });
        }
        Statement::from_json_with(&self.payload, limits)
    }
}

/// DSSE's pre-authentication encoding: `DSSEv1 SP len(type) SP type SP len(body) SP body`.
///
/// ```
/// assert_eq!(
///     provenance_attest::pae("http://example.com/HelloWorld", b"hello world"),
///     b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
/// );
/// ```
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload_type.len() + payload.len() + 32);
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

/// Where an envelope was found by [`extract_envelopes`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Container {
    /// A bare DSSE envelope.
    Bare,
    /// One line of a JSON-lines file (`.intoto.jsonl`), 0-based: a bare envelope or a Sigstore
    /// bundle.
    JsonLine(usize),
    /// The `dsseEnvelope` of a Sigstore bundle with this media type.
    SigstoreBundle(String),
    /// `attestations[i].bundle.dsseEnvelope` of an npm registry attestations response.
    NpmAttestation(usize),
    /// `provenance_summary.provenance[i].envelope` of a Google Cloud Build response.
    CloudBuild(usize),
}

/// Finds the DSSE envelopes in a document: a bare envelope, JSON lines of envelopes, a Sigstore
/// bundle (`dsseEnvelope`), an npm attestations response or a Cloud Build provenance response.
///
/// Nothing is verified; this only unwraps. Fails if no envelope is found.
///
/// ```
/// let doc = br#"{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json",
///   "dsseEnvelope":{"payloadType":"text/plain","payload":"aGk=","signatures":[]}}"#;
/// let found = provenance_attest::extract_envelopes(doc, &Default::default()).unwrap();
/// assert_eq!(found[0].1.payload, b"hi");
/// ```
pub fn extract_envelopes(
    bytes: &[u8],
    limits: &Limits,
) -> Result<Vec<(Container, Envelope)>, Error> {
    json::check_bounds(Format::Dsse, bytes, limits)?;
    // JSON lines: several top-level values separated by newlines.
    let mut stream = serde_json::Deserializer::from_slice(bytes).into_iter::<Value>();
    let first = match stream.next() {
        Some(Ok(v)) => v,
        Some(Err(e)) => {
            return Err(Error::Syntax {
                format: Format::Dsse,
                line: e.line(),
                column: e.column(),
                message: clip(&e.to_string(), 300),
            });
        }
        None => {
            return Err(Error::Unrecognized {
                reason: "empty input".into(),
            });
        }
    };
    let mut rest = Vec::new();
    for v in stream {
        let v = v.map_err(|e| Error::Syntax {
            format: Format::Dsse,
            line: e.line(),
            column: e.column(),
            message: clip(&e.to_string(), 300),
        })?;
        rest.push(v);
    }
    let mut out = Vec::new();
    if !rest.is_empty() {
        for (i, v) in std::iter::once(first).chain(rest).enumerate() {
            if i >= limits.max_subjects {
                return Err(Error::TooMany {
                    format: Format::Dsse,
                    path: "<lines>".into(),
                    count: i + 1,
                    limit: limits.max_subjects,
                });
            }
            // A line is a bare envelope or a Sigstore bundle (`*.intoto.jsonl` of either).
            let env = match v.get("dsseEnvelope") {
                Some(env) => Envelope::from_value(env)?,
                None => Envelope::from_value(&v)?,
            };
            out.push((Container::JsonLine(i), env));
        }
        return Ok(out);
    }
    let v = first;
    if v.get("payloadType").is_some() {
        out.push((Container::Bare, Envelope::from_value(&v)?));
    } else if let Some(env) = v.get("dsseEnvelope") {
        let mt = v
            .get("mediaType")
            .and_then(Value::as_str)
            .unwrap_or_default();
        out.push((
            Container::SigstoreBundle(clip(mt, 128)),
            Envelope::from_value(env)?,
        ));
    } else if let Some(atts) = v.get("attestations").and_then(Value::as_array) {
        for (i, a) in atts.iter().enumerate() {
            if let Some(env) = a.get("bundle").and_then(|b| b.get("dsseEnvelope")) {
                out.push((Container::NpmAttestation(i), Envelope::from_value(env)?));
            }
        }
    } else if let Some(provs) = v
        .get("provenance_summary")
        .and_then(|p| p.get("provenance"))
        .and_then(Value::as_array)
    {
        for (i, p) in provs.iter().enumerate() {
            if let Some(env) = p.get("envelope") {
                out.push((Container::CloudBuild(i), Envelope::from_value(env)?));
            }
        }
    }
    if out.is_empty() {
        return Err(Error::Unrecognized {
            reason: "no DSSE envelope found (not an envelope, JSON lines, Sigstore bundle, npm or Cloud Build response)".into(),
        });
    }
    Ok(out)
}
