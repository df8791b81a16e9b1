//! Rekor v1 (`POST /api/v1/log/entries`) and RFC 3161 timestamp authorities: requests, and the
//! answers turned into Sigstore bundle fields. Nothing here trusts an answer: the bundle they go
//! into is verified against the trust root before it is returned.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use provenance_core::Digest;
use serde_json::{Value, json};

use super::http::Endpoint;
use crate::error::{Error, SigningStep};

/// The path of Rekor v1's entry-creation API.
pub const ENTRIES_PATH: &str = "/api/v1/log/entries";

/// A proposed Rekor v1 entry.
pub(crate) enum Proposed<'a> {
    /// `hashedrekord` 0.0.1: the artifact's SHA-256 and the signature over it.
    HashedRekord {
        digest: &'a Digest,
        signature: &'a [u8],
        cert_pem: &'a str,
    },
    /// `dsse` 0.0.1: the envelope as JSON text.
    Dsse {
        envelope_json: &'a str,
        cert_pem: &'a str,
    },
}

impl Proposed<'_> {
    fn to_json(&self) -> Value {
        match self {
            Proposed::HashedRekord {
                digest,
                signature,
                cert_pem,
            } => json!({
                "apiVersion": "0.0.1",
                "kind": "hashedrekord",
                "spec": {
                    "data": { "hash": { "algorithm": "sha256", "value": digest.hex() } },
                    "signature": {
                        "content": STANDARD.encode(signature),
                        "publicKey": { "content": STANDARD.encode(cert_pem) },
                    },
                },
            }),
            Proposed::Dsse {
                envelope_json,
                cert_pem,
            } => json!({
                "apiVersion": "0.0.1",
                "kind": "dsse",
                "spec": {
                    "proposedContent": {
                        "envelope": envelope_json,
                        "verifiers": [STANDARD.encode(cert_pem)],
                    },
                },
            }),
        }
    }
}

/// Writes `entry` to the log; returns the bundle's `tlogEntries[]` item built from the answer.
pub(crate) async fn log_entry(ep: &Endpoint, entry: &Proposed<'_>) -> Result<Value, Error> {
    let body = serde_json::to_vec(&entry.to_json()).unwrap_or_default();
    let answer = ep.post(ENTRIES_PATH, "application/json", body).await?;
    to_bundle_entry(&answer)
}

fn bad(detail: impl Into<String>) -> Error {
    SigningStep::RekorResponse.fail(detail)
}

fn hex_to_b64(v: &Value, what: &str) -> Result<String, Error> {
    let s = v
        .as_str()
        .ok_or_else(|| bad(format!("{what} is not a string")))?;
    let bytes = hex::decode(s).map_err(|_| bad(format!("{what} is not hex")))?;
    Ok(STANDARD.encode(bytes))
}

/// Rekor's `{uuid: entry}` answer as a bundle `TransparencyLogEntry` (JSON). The fields are
/// moved over as they are; whether they are true is for the bundle verification to say.
pub(crate) fn to_bundle_entry(answer: &[u8]) -> Result<Value, Error> {
    let v: Value =
        serde_json::from_slice(answer).map_err(|e| bad(format!("answer is not JSON: {e}")))?;
    let map = v
        .as_object()
        .ok_or_else(|| bad("answer is not an object of entries"))?;
    let [(_, entry)] = map.iter().collect::<Vec<_>>()[..] else {
        return Err(bad(format!(
            "expected exactly one log entry, found {}",
            map.len()
        )));
    };
    let body_b64 = entry
        .get("body")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("entry has no body"))?;
    let body = STANDARD
        .decode(body_b64)
        .map_err(|_| bad("entry body is not base64"))?;
    let body: Value =
        serde_json::from_slice(&body).map_err(|e| bad(format!("entry body is not JSON: {e}")))?;
    let kind = body
        .get("kind")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("entry body has no kind"))?;
    let version = body
        .get("apiVersion")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("entry body has no apiVersion"))?;
    let int = |k: &str| {
        entry
            .get(k)
            .and_then(Value::as_i64)
            .ok_or_else(|| bad(format!("entry has no integer {k}")))
    };
    let log_index = int("logIndex")?;
    let integrated_time = int("integratedTime")?;
    let log_id = hex_to_b64(entry.get("logID").unwrap_or(&Value::Null), "logID")?;
    let verification = entry
        .get("verification")
        .ok_or_else(|| bad("entry has no verification"))?;
    let set = verification
        .get("signedEntryTimestamp")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("entry has no verification.signedEntryTimestamp"))?;
    let mut out = json!({
        "logIndex": log_index.to_string(),
        "logId": { "keyId": log_id },
        "kindVersion": { "kind": kind, "version": version },
        "integratedTime": integrated_time.to_string(),
        "inclusionPromise": { "signedEntryTimestamp": set },
        "canonicalizedBody": body_b64,
    });
    if let Some(p) = verification.get("inclusionProof") {
        let pint = |k: &str| {
            p.get(k)
                .and_then(Value::as_i64)
                .ok_or_else(|| bad(format!("inclusionProof has no integer {k}")))
        };
        let hashes = p
            .get("hashes")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|h| hex_to_b64(h, "inclusionProof.hashes[]"))
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?
            .unwrap_or_default();
        let checkpoint = p
            .get("checkpoint")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("inclusionProof has no checkpoint"))?;
        out["inclusionProof"] = json!({
            "logIndex": pint("logIndex")?.to_string(),
            "rootHash": hex_to_b64(p.get("rootHash").unwrap_or(&Value::Null), "inclusionProof.rootHash")?,
            "treeSize": pint("treeSize")?.to_string(),
            "hashes": hashes,
            "checkpoint": { "envelope": checkpoint },
        });
    }
    Ok(out)
}

/// How to talk to the timestamp authority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TimestampProtocol {
    /// RFC 3161 over HTTP (RFC 3161 section 3.4): a DER `TimeStampReq` posted as
    /// `application/timestamp-query` to the URL. Every RFC 3161 authority, including Sigstore's
    /// timestamp-authority at `.../api/v1/timestamp`, speaks it.
    #[default]
    Rfc3161,
    /// Sigstore timestamp-authority's JSON request (`artifactHash`, `hashAlgorithm`, `nonce`,
    /// `certificates`) posted as `application/json`; the answer is the same DER response.
    SigstoreJson,
}

/// A nonce for a timestamp request: 31 random bits, never zero.
fn nonce() -> Result<u32, Error> {
    use aws_lc_rs::rand::SecureRandom as _;
    let mut b = [0u8; 4];
    aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| SigningStep::Key.fail("the system random generator failed"))?;
    Ok((u32::from_be_bytes(b) & 0x7fff_ffff) | 0x0100_0000)
}

/// The DER `TimeStampReq` (RFC 3161 section 2.4.1) for a SHA-256 imprint, with a nonce and
/// `certReq` set.
pub(crate) fn rfc3161_request(imprint: &Digest, nonce: u32) -> Vec<u8> {
    const SHA256_ALG: &[u8] = &[
        0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00,
    ];
    let mut mi = Vec::with_capacity(51);
    mi.extend_from_slice(&[0x30, 0x31]);
    mi.extend_from_slice(SHA256_ALG);
    mi.extend_from_slice(&[0x04, 0x20]);
    mi.extend_from_slice(imprint.as_bytes());
    let mut content = vec![0x02, 0x01, 0x01]; // version 1
    content.extend_from_slice(&mi);
    content.extend_from_slice(&[0x02, 0x04]); // nonce: 4 bytes, first byte 0x01..=0x7f
    content.extend_from_slice(&nonce.to_be_bytes());
    content.extend_from_slice(&[0x01, 0x01, 0xff]); // certReq TRUE
    let mut out = vec![0x30, content.len() as u8];
    out.extend_from_slice(&content);
    out
}

/// Asks the timestamp authority to timestamp `signature`; returns the DER `TimeStampResp`.
pub(crate) async fn timestamp(
    ep: &Endpoint,
    protocol: TimestampProtocol,
    signature: &[u8],
) -> Result<Vec<u8>, Error> {
    let imprint = Digest::sha256_of(signature);
    let n = nonce()?;
    let answer = match protocol {
        TimestampProtocol::Rfc3161 => {
            ep.post(
                "",
                "application/timestamp-query",
                rfc3161_request(&imprint, n),
            )
            .await?
        }
        TimestampProtocol::SigstoreJson => {
            let body = json!({
                "artifactHash": STANDARD.encode(imprint.as_bytes()),
                "hashAlgorithm": "sha256",
                "certificates": true,
                "nonce": n,
            });
            ep.post(
                "",
                "application/json",
                serde_json::to_vec(&body).unwrap_or_default(),
            )
            .await?
        }
    };
    // A DER SEQUENCE at least; the bundle verification checks the token itself (signature,
    // authority, imprint over this signature).
    if answer.first() != Some(&0x30) || answer.len() < 16 {
        return Err(SigningStep::TimestampResponse.fail(format!(
            "the timestamp authority's answer is not a DER TimeStampResp ({} bytes)",
            answer.len()
        )));
    }
    Ok(answer)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn rfc3161_request_is_der() {
        let d = Digest::sha256_of(b"sig");
        let req = rfc3161_request(&d, 0x0123_4567);
        assert_eq!(req.len(), 2 + 0x3f);
        assert_eq!(&req[..2], &[0x30, 0x3f]);
        assert_eq!(&req[24..56], d.as_bytes());
    }

    #[test]
    fn rekor_answers_are_checked() {
        for (bad_answer, want) in [
            (&b"[]"[..], "not an object"),
            (br#"{}"#, "exactly one"),
            (br#"{"a":{},"b":{}}"#, "exactly one"),
            (br#"{"a":{"body":"!"}}"#, "not base64"),
            (br#"{"a":{"body":"e30="}}"#, "no kind"),
        ] {
            let e = to_bundle_entry(bad_answer).unwrap_err();
            assert_eq!(e.code(), "oci.sign.rekor_response");
            assert!(e.to_string().contains(want), "{e}");
        }
    }
}
