//! DSSE envelopes (Dead Simple Signing Envelope) and their pre-authentication encoding.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

/// Largest envelope accepted by [`Envelope::from_json`].
pub const MAX_ENVELOPE_BYTES: usize = 16 << 20;

/// Errors from parsing envelopes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The envelope is not valid JSON of the DSSE shape.
    #[error("invalid DSSE envelope: {reason}")]
    InvalidEnvelope {
        /// What is wrong.
        reason: String,
    },
    /// The envelope is larger than the limit.
    #[error("DSSE envelope of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Actual size.
        size: usize,
        /// Limit.
        limit: usize,
    },
}

impl Error {
    /// A stable, machine-readable code for this error.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidEnvelope { .. } => "attest.dsse.invalid",
            Error::TooLarge { .. } => "attest.dsse.too_large",
        }
    }
}

/// One signature over an envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// Optional key id hint (unauthenticated).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub keyid: String,
    /// Base64 signature over [`pae`] of the payload type and payload.
    pub sig: String,
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
    #[serde(default)]
    signatures: Vec<Signature>,
}

impl Envelope {
    /// Parses an envelope from JSON, decoding the payload.
    pub fn from_json(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() > MAX_ENVELOPE_BYTES {
            return Err(Error::TooLarge {
                size: bytes.len(),
                limit: MAX_ENVELOPE_BYTES,
            });
        }
        let w: Wire = serde_json::from_slice(bytes).map_err(|e| Error::InvalidEnvelope {
            reason: e.to_string(),
        })?;
        let payload = STANDARD
            .decode(w.payload.as_bytes())
            .map_err(|e| Error::InvalidEnvelope {
                reason: format!("payload is not base64: {e}"),
            })?;
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
