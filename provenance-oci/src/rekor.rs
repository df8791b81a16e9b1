//! Rekor (v1 API) look-ups for cosign signatures that carry no `dev.sigstore.cosign/bundle`
//! (SET) annotation. Opt-in (cargo feature `rekor`) and never called by discovery: a caller
//! asks for it explicitly.
//!
//! What Rekor returns is untrusted: it is turned into the cosign SET annotation and verified
//! offline by `provenance_core::verify` (the SET signature against the trust root's Rekor key,
//! the entry body against the signature and payload). A look-up can only add candidates; a
//! candidate that does not verify is rejected there.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use provenance_core::Digest;
use provenance_core::verify::ANNOTATION_BUNDLE;
use serde_json::{Value, json};

use crate::error::Error;
use crate::types::SignatureLayer;

/// Most entries considered for one artifact hash.
pub const MAX_ENTRIES: usize = 16;
/// Largest Rekor response read.
pub const MAX_RESPONSE_BYTES: u64 = 4 << 20;

/// A Rekor v1 API client (`https://rekor.sigstore.dev` or your own instance).
#[derive(Debug, Clone)]
pub struct RekorClient {
    http: reqwest::Client,
    base: String,
    timeout: Duration,
}

impl RekorClient {
    /// A client for the Rekor instance at `base_url` (e.g. `https://rekor.sigstore.dev`), with a
    /// per-request deadline of `timeout`. Plain `http://` URLs are accepted only when
    /// `allow_http` is set.
    pub fn new(base_url: &str, timeout: Duration, allow_http: bool) -> Result<Self, Error> {
        let base = base_url.trim_end_matches('/').to_owned();
        let allowed = base.starts_with("https://") || (allow_http && base.starts_with("http://"));
        if !allowed {
            return Err(Error::InsecureNotAllowed { registry: base });
        }
        let http = reqwest::Client::builder()
            .connect_timeout(timeout)
            .read_timeout(timeout)
            .redirect(crate::registry::no_downgrade_redirects())
            .build()
            .map_err(|e| Error::Config {
                message: format!("HTTP client: {e}"),
            })?;
        Ok(RekorClient {
            http,
            base,
            timeout,
        })
    }

    async fn post(&self, path: &str, body: Value) -> Result<Value, Error> {
        let url = format!("{}{path}", self.base);
        let host = self.base.clone();
        let net = |e: reqwest::Error| {
            if e.is_timeout() {
                Error::Timeout {
                    registry: host.clone(),
                    operation: format!("POST {path}"),
                    after_ms: self.timeout.as_millis() as u64,
                }
            } else {
                Error::Network {
                    registry: host.clone(),
                    message: e.to_string(),
                }
            }
        };
        let run = async {
            let resp = self.http.post(&url).json(&body).send().await.map_err(net)?;
            let status = resp.status();
            if !status.is_success() {
                return Err(Error::Registry {
                    registry: host.clone(),
                    operation: format!("POST {path}"),
                    status: status.as_u16(),
                    message: status.canonical_reason().unwrap_or("").to_owned(),
                });
            }
            let mut resp = resp;
            let mut out = Vec::new();
            while let Some(chunk) = resp.chunk().await.map_err(net)? {
                out.extend_from_slice(&chunk);
                if out.len() as u64 > MAX_RESPONSE_BYTES {
                    return Err(Error::TooLarge {
                        what: format!("Rekor response to {path}"),
                        limit: MAX_RESPONSE_BYTES,
                    });
                }
            }
            serde_json::from_slice(&out).map_err(|e| Error::malformed("Rekor response", e))
        };
        tokio::time::timeout(self.timeout, run)
            .await
            .map_err(|_| Error::Timeout {
                registry: self.base.clone(),
                operation: format!("POST {path}"),
                after_ms: self.timeout.as_millis() as u64,
            })?
    }

    /// UUIDs of entries whose artifact hash is `digest` (`POST /api/v1/index/retrieve`).
    pub async fn uuids_for_hash(&self, digest: &Digest) -> Result<Vec<String>, Error> {
        let v = self
            .post(
                "/api/v1/index/retrieve",
                json!({ "hash": digest.to_string() }),
            )
            .await?;
        let arr = v
            .as_array()
            .ok_or_else(|| Error::malformed("Rekor index response", "not an array"))?;
        let mut out: Vec<String> = arr
            .iter()
            .filter_map(|u| u.as_str().map(str::to_owned))
            .collect();
        out.truncate(MAX_ENTRIES);
        Ok(out)
    }

    /// Entries by UUID (`POST /api/v1/log/entries/retrieve`), as cosign SET annotations.
    pub async fn entries_by_uuid(&self, uuids: &[String]) -> Result<Vec<String>, Error> {
        if uuids.is_empty() {
            return Ok(Vec::new());
        }
        let v = self
            .post(
                "/api/v1/log/entries/retrieve",
                json!({ "entryUUIDs": &uuids[..uuids.len().min(MAX_ENTRIES)] }),
            )
            .await?;
        entries_to_sets(&v)
    }

    /// Entries by log index (`POST /api/v1/log/entries/retrieve`), as cosign SET annotations.
    pub async fn entries_by_index(&self, indexes: &[i64]) -> Result<Vec<String>, Error> {
        if indexes.is_empty() {
            return Ok(Vec::new());
        }
        let v = self
            .post(
                "/api/v1/log/entries/retrieve",
                json!({ "logIndexes": &indexes[..indexes.len().min(MAX_ENTRIES)] }),
            )
            .await?;
        entries_to_sets(&v)
    }

    /// Candidate copies of a cosign signature layer that has no SET, one per Rekor entry
    /// recorded for its payload's SHA-256, each with the entry as its
    /// `dev.sigstore.cosign/bundle` annotation. A layer that already has one is returned
    /// unchanged. Verify each candidate with `provenance_core::verify`; any that verifies will
    /// do.
    pub async fn candidates(&self, layer: &SignatureLayer) -> Result<Vec<SignatureLayer>, Error> {
        if layer.annotations.contains_key(ANNOTATION_BUNDLE) {
            return Ok(vec![layer.clone()]);
        }
        let uuids = self
            .uuids_for_hash(&Digest::sha256_of(&layer.payload))
            .await?;
        let sets = self.entries_by_uuid(&uuids).await?;
        Ok(sets
            .into_iter()
            .map(|set| {
                let mut l = layer.clone();
                l.annotations.insert(ANNOTATION_BUNDLE.to_owned(), set);
                l
            })
            .collect())
    }
}

/// Rekor's `[{uuid: entry}, ...]` (or `{uuid: entry}`) to cosign SET annotation strings.
fn entries_to_sets(v: &Value) -> Result<Vec<String>, Error> {
    let maps: Vec<&serde_json::Map<String, Value>> = match v {
        Value::Array(a) => a.iter().filter_map(Value::as_object).collect(),
        Value::Object(o) => vec![o],
        _ => return Err(Error::malformed("Rekor entries", "not an array or object")),
    };
    let mut out = Vec::new();
    for m in maps {
        for entry in m.values().take(MAX_ENTRIES) {
            out.push(entry_to_set(entry)?);
        }
    }
    out.truncate(MAX_ENTRIES);
    Ok(out)
}

/// One Rekor log entry to cosign's `dev.sigstore.cosign/bundle` annotation value.
pub fn entry_to_set(entry: &Value) -> Result<String, Error> {
    let bad = |what: &str| Error::malformed("Rekor entry", what);
    let body = entry
        .get("body")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("no body"))?;
    STANDARD
        .decode(body)
        .map_err(|_| bad("body is not base64"))?;
    let integrated = entry
        .get("integratedTime")
        .and_then(Value::as_i64)
        .ok_or_else(|| bad("no integratedTime"))?;
    let index = entry
        .get("logIndex")
        .and_then(Value::as_i64)
        .ok_or_else(|| bad("no logIndex"))?;
    let log_id = entry
        .get("logID")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("no logID"))?;
    let set = entry
        .get("verification")
        .and_then(|v| v.get("signedEntryTimestamp"))
        .and_then(Value::as_str)
        .ok_or_else(|| bad("no verification.signedEntryTimestamp"))?;
    Ok(json!({
        "SignedEntryTimestamp": set,
        "Payload": {
            "body": body,
            "integratedTime": integrated,
            "logIndex": index,
            "logID": log_id,
        }
    })
    .to_string())
}
