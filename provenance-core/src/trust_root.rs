//! Trust roots: what a verifier trusts, as data.
//!
//! A [`TrustRoot`] holds the transparency logs (Rekor), certificate authorities (Fulcio),
//! certificate-transparency logs and timestamp authorities a Sigstore verifier trusts, each with
//! the window in which it may be used. It loads the Sigstore `trusted_root.json` format
//! (`application/vnd.dev.sigstore.trustedroot+json;version=0.1` and `0.2`). Nothing here fetches
//! anything: refreshing a trust root is an explicit, separate step (see `provenance-oci`).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use crate::digest::Digest;
use crate::error::Error;
use crate::keys::PublicKey;
use crate::time::{UnixTime, ValidityWindow};

/// A transparency log or CT log the root trusts.
#[derive(Debug, Clone)]
pub struct TransparencyLog {
    /// Base URL (informational; never contacted by `provenance-core`).
    pub base_url: String,
    /// The log's public key.
    pub public_key: PublicKey,
    /// The `keyDetails` string as written (e.g. `PKIX_ECDSA_P256_SHA_256`).
    pub key_details: String,
    /// The log id (for Rekor v1 and CT: SHA-256 of the DER public key).
    pub log_id: Vec<u8>,
    /// When the log's key may be used.
    pub valid_for: ValidityWindow,
}

/// A certificate authority or timestamp authority the root trusts.
#[derive(Debug, Clone)]
pub struct CertificateAuthority {
    /// URI (informational).
    pub uri: String,
    /// Subject common name, if given.
    pub common_name: String,
    /// Subject organization, if given.
    pub organization: String,
    /// DER certificates, leaf-most (intermediate) first, root last.
    pub cert_chain: Vec<Vec<u8>>,
    /// When the authority may be used.
    pub valid_for: ValidityWindow,
}

/// Everything a Sigstore verifier trusts.
#[derive(Debug, Clone, Default)]
pub struct TrustRoot {
    /// Rekor transparency logs.
    pub tlogs: Vec<TransparencyLog>,
    /// Fulcio certificate authorities.
    pub certificate_authorities: Vec<CertificateAuthority>,
    /// Certificate-transparency logs (for SCTs).
    pub ctlogs: Vec<TransparencyLog>,
    /// RFC 3161 timestamp authorities.
    pub timestamp_authorities: Vec<CertificateAuthority>,
    /// The raw JSON document, if the root was loaded from one.
    pub source_json: Option<Vec<u8>>,
}

/// Largest `trusted_root.json` accepted.
pub const MAX_TRUST_ROOT_BYTES: usize = 4 << 20;

fn field_err(field: impl Into<String>, reason: impl Into<String>) -> Error {
    Error::InvalidTrustRoot {
        field: field.into(),
        reason: reason.into(),
    }
}

fn str_at<'a>(v: &'a Value, key: &str, path: &str) -> Result<&'a str, Error> {
    v.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| field_err(format!("{path}.{key}"), "missing or not a string"))
}

fn b64_at(v: &Value, key: &str, path: &str) -> Result<Vec<u8>, Error> {
    let s = str_at(v, key, path)?;
    STANDARD
        .decode(s)
        .map_err(|e| field_err(format!("{path}.{key}"), format!("invalid base64: {e}")))
}

fn window_at(v: &Value, path: &str) -> Result<ValidityWindow, Error> {
    let vf = v
        .get("validFor")
        .ok_or_else(|| field_err(format!("{path}.validFor"), "missing"))?;
    let p = format!("{path}.validFor");
    let start = UnixTime::parse_rfc3339(str_at(vf, "start", &p)?)
        .ok_or_else(|| field_err(format!("{p}.start"), "not an RFC 3339 timestamp"))?;
    let end = match vf.get("end") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(
            UnixTime::parse_rfc3339(s)
                .ok_or_else(|| field_err(format!("{p}.end"), "not an RFC 3339 timestamp"))?,
        ),
        Some(_) => return Err(field_err(format!("{p}.end"), "not a string")),
    };
    Ok(ValidityWindow { start, end })
}

fn parse_log(v: &Value, path: &str) -> Result<TransparencyLog, Error> {
    let pk = v
        .get("publicKey")
        .ok_or_else(|| field_err(format!("{path}.publicKey"), "missing"))?;
    let pkp = format!("{path}.publicKey");
    let der = b64_at(pk, "rawBytes", &pkp)?;
    let pkcs1 = pk
        .get("keyDetails")
        .and_then(Value::as_str)
        .is_some_and(|d| d.starts_with("PKCS1_RSA"));
    // CT logs may publish a bare PKCS#1 RSAPublicKey (`PKCS1_RSA_*` key details).
    let public_key = PublicKey::from_spki_der(&der)
        .or_else(|e| {
            if pkcs1 {
                PublicKey::from_pkcs1_rsa_der(&der)
            } else {
                Err(e)
            }
        })
        .map_err(|e| field_err(format!("{pkp}.rawBytes"), e.to_string()))?;
    let log_id = match v.get("logId") {
        Some(l) => b64_at(l, "keyId", &format!("{path}.logId"))?,
        None => return Err(field_err(format!("{path}.logId"), "missing")),
    };
    Ok(TransparencyLog {
        base_url: v
            .get("baseUrl")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        key_details: pk
            .get("keyDetails")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        public_key,
        log_id,
        valid_for: window_at(pk, &pkp)?,
    })
}

fn parse_ca(v: &Value, path: &str) -> Result<CertificateAuthority, Error> {
    let certs = v
        .get("certChain")
        .and_then(|c| c.get("certificates"))
        .and_then(Value::as_array)
        .ok_or_else(|| field_err(format!("{path}.certChain.certificates"), "missing"))?;
    if certs.is_empty() {
        return Err(field_err(
            format!("{path}.certChain.certificates"),
            "empty certificate chain",
        ));
    }
    let cert_chain = certs
        .iter()
        .enumerate()
        .map(|(i, c)| {
            b64_at(
                c,
                "rawBytes",
                &format!("{path}.certChain.certificates[{i}]"),
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    let subject = v.get("subject");
    let get = |k: &str| {
        subject
            .and_then(|s| s.get(k))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    Ok(CertificateAuthority {
        uri: v
            .get("uri")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        common_name: get("commonName"),
        organization: get("organization"),
        cert_chain,
        valid_for: window_at(v, path)?,
    })
}

impl TrustRoot {
    /// Loads a Sigstore `trusted_root.json`.
    pub fn from_trusted_root_json(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() > MAX_TRUST_ROOT_BYTES {
            return Err(field_err(
                "$",
                format!("larger than {MAX_TRUST_ROOT_BYTES} bytes"),
            ));
        }
        let doc: Value =
            serde_json::from_slice(bytes).map_err(|e| field_err("$", e.to_string()))?;
        let media_type = str_at(&doc, "mediaType", "$")?;
        if !media_type.starts_with("application/vnd.dev.sigstore.trustedroot") {
            return Err(field_err(
                "$.mediaType",
                format!("unknown media type {media_type:?}"),
            ));
        }
        let list = |key: &str| -> &[Value] {
            doc.get(key)
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or_default()
        };
        let mut root = TrustRoot {
            source_json: Some(bytes.to_vec()),
            ..TrustRoot::default()
        };
        for (i, v) in list("tlogs").iter().enumerate() {
            root.tlogs.push(parse_log(v, &format!("tlogs[{i}]"))?);
        }
        for (i, v) in list("ctlogs").iter().enumerate() {
            root.ctlogs.push(parse_log(v, &format!("ctlogs[{i}]"))?);
        }
        for (i, v) in list("certificateAuthorities").iter().enumerate() {
            root.certificate_authorities
                .push(parse_ca(v, &format!("certificateAuthorities[{i}]"))?);
        }
        for (i, v) in list("timestampAuthorities").iter().enumerate() {
            root.timestamp_authorities
                .push(parse_ca(v, &format!("timestampAuthorities[{i}]"))?);
        }
        Ok(root)
    }

    /// A digest identifying this trust root's content, for cache keys: SHA-256 of the source
    /// JSON when loaded from one, otherwise of the canonical concatenation of its keys and
    /// certificates.
    pub fn fingerprint(&self) -> Digest {
        if let Some(src) = &self.source_json {
            return Digest::sha256_of(src);
        }
        // Every item is tagged with its section and length-prefixed, so moving a key or a
        // certificate from one section to another changes the fingerprint.
        let mut buf = Vec::new();
        let mut field = |tag: &[u8], bytes: &[u8]| {
            buf.extend_from_slice(tag);
            buf.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
            buf.extend_from_slice(bytes);
        };
        for (tag, logs) in [(b"tlog" as &[u8], &self.tlogs), (b"ctlog", &self.ctlogs)] {
            for l in logs {
                field(tag, l.public_key.spki_der());
                field(b"start", &l.valid_for.start.0.to_be_bytes());
                field(
                    b"end",
                    &l.valid_for.end.map_or(i64::MAX, |e| e.0).to_be_bytes(),
                );
            }
        }
        for (tag, cas) in [
            (b"fulcio" as &[u8], &self.certificate_authorities),
            (b"tsa", &self.timestamp_authorities),
        ] {
            for ca in cas {
                field(tag, &(ca.cert_chain.len() as u64).to_be_bytes());
                for c in &ca.cert_chain {
                    field(b"cert", c);
                }
                field(b"start", &ca.valid_for.start.0.to_be_bytes());
                field(
                    b"end",
                    &ca.valid_for.end.map_or(i64::MAX, |e| e.0).to_be_bytes(),
                );
            }
        }
        Digest::sha256_of(&buf)
    }

    /// The transparency log whose id is `log_id`.
    pub fn tlog_by_id(&self, log_id: &[u8]) -> Option<&TransparencyLog> {
        self.tlogs.iter().find(|l| l.log_id == log_id)
    }

    /// The CT log whose id is `log_id`.
    pub fn ctlog_by_id(&self, log_id: &[u8]) -> Option<&TransparencyLog> {
        self.ctlogs.iter().find(|l| l.log_id == log_id)
    }
}

/// Trust material written next to a verification rule rather than in a trust root: a Kyverno
/// attestor's `keyless.roots`, `rekor.pubkey`, `ctlog.pubkey` and `ctlog.tsaCertChain`, or an
/// ImageValidatingPolicy's `keyless.roots`, `ctlog.rekorPubKey`, `ctlog.ctLogPubKey` and
/// `ctlog.tsaCertChain`. Each part that is given **replaces** that part of the base trust root
/// (as cosign's `--certificate-chain`/`SIGSTORE_ROOT_FILE`, `SIGSTORE_REKOR_PUBLIC_KEY`,
/// `SIGSTORE_CT_LOG_PUBLIC_KEY_FILE` and `--timestamp-certificate-chain` do); a part left `None`
/// keeps the base root's. See [`TrustRoot::replaced`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct TrustReplacement {
    /// A whole `trusted_root.json` that replaces the base root before the other parts apply
    /// (an ImageValidatingPolicy attestor's `trustedRoot`).
    pub trusted_root_json: Option<Vec<u8>>,
    /// Fulcio certificate authorities: every certificate given is a trust anchor (as a Go
    /// `x509.CertPool` of roots), DER.
    pub fulcio_roots: Option<Vec<Vec<u8>>>,
    /// Rekor transparency-log public keys.
    pub rekor_keys: Option<Vec<PublicKey>>,
    /// Certificate-transparency log public keys (for SCTs).
    pub ctlog_keys: Option<Vec<PublicKey>>,
    /// One RFC 3161 timestamp authority's chain, leaf (signing certificate) first, DER.
    pub tsa_chain: Option<Vec<Vec<u8>>>,
}

impl TrustReplacement {
    /// Whether nothing is replaced.
    pub fn is_empty(&self) -> bool {
        self.trusted_root_json.is_none()
            && self.fulcio_roots.is_none()
            && self.rekor_keys.is_none()
            && self.ctlog_keys.is_none()
            && self.tsa_chain.is_none()
    }

    /// A digest of everything replaced (for cache keys).
    pub fn fingerprint(&self) -> Digest {
        let mut buf = Vec::new();
        let mut field = |tag: &[u8], bytes: &[u8]| {
            buf.extend_from_slice(tag);
            buf.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
            buf.extend_from_slice(bytes);
        };
        if let Some(j) = &self.trusted_root_json {
            field(b"trusted_root", j);
        }
        for (tag, certs) in [
            (b"fulcio" as &[u8], &self.fulcio_roots),
            (b"tsa", &self.tsa_chain),
        ] {
            if let Some(c) = certs {
                field(tag, &(c.len() as u64).to_be_bytes());
                for d in c {
                    field(b"cert", d);
                }
            }
        }
        for (tag, keys) in [
            (b"rekor" as &[u8], &self.rekor_keys),
            (b"ctlog", &self.ctlog_keys),
        ] {
            if let Some(k) = keys {
                field(tag, &(k.len() as u64).to_be_bytes());
                for key in k {
                    field(b"key", key.spki_der());
                }
            }
        }
        Digest::sha256_of(&buf)
    }
}

/// Reads every PEM `CERTIFICATE` block of `pem_text` as DER, checking that each parses as an
/// X.509 certificate. Another block type, no block at all or an unparsable certificate is an
/// error naming `field`.
pub fn certificates_from_pem(pem_text: &str, field: &str) -> Result<Vec<Vec<u8>>, Error> {
    use x509_cert::der::Decode;
    let blocks =
        pem::parse_many(pem_text).map_err(|e| field_err(field, format!("malformed PEM: {e}")))?;
    if blocks.is_empty() {
        return Err(field_err(field, "no PEM CERTIFICATE block"));
    }
    blocks
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if b.tag() != "CERTIFICATE" {
                return Err(field_err(
                    format!("{field}[{i}]"),
                    format!("expected a CERTIFICATE PEM block, found {:?}", b.tag()),
                ));
            }
            x509_cert::Certificate::from_der(b.contents()).map_err(|e| {
                field_err(
                    format!("{field}[{i}]"),
                    format!("not an X.509 certificate: {e}"),
                )
            })?;
            Ok(b.contents().to_vec())
        })
        .collect()
}

/// Reads every PEM `PUBLIC KEY` block of `pem_text` (a transparency or CT log key); errors
/// name `field`.
pub fn log_keys_from_pem(pem_text: &str, field: &str) -> Result<Vec<PublicKey>, Error> {
    let keys = PublicKey::all_from_pem(pem_text).map_err(|e| field_err(field, e.to_string()))?;
    if keys.is_empty() {
        return Err(field_err(field, "no PEM PUBLIC KEY block"));
    }
    Ok(keys)
}

/// The `keyDetails` name of a log key of this kind in `trusted_root.json`.
fn key_details(kind: crate::keys::KeyKind) -> String {
    use crate::keys::KeyKind;
    match kind {
        KeyKind::EcdsaP256 => "PKIX_ECDSA_P256_SHA_256".into(),
        KeyKind::EcdsaP384 => "PKIX_ECDSA_P384_SHA_384".into(),
        KeyKind::EcdsaP521 => "PKIX_ECDSA_P521_SHA_512".into(),
        KeyKind::Ed25519 => "PKIX_ED25519".into(),
        KeyKind::Rsa { bits } => format!("PKIX_RSA_PKCS1V15_{bits}_SHA256"),
    }
}

fn log_from_key(key: &PublicKey, base_url: &str) -> TransparencyLog {
    TransparencyLog {
        base_url: base_url.to_owned(),
        key_details: key_details(key.kind()),
        // Rekor v1 and RFC 6962 log ids are the SHA-256 of the DER public key.
        log_id: Digest::sha256_of(key.spki_der()).as_bytes().to_vec(),
        public_key: key.clone(),
        valid_for: ValidityWindow {
            start: UnixTime(0),
            end: None,
        },
    }
}

impl TrustRoot {
    /// This root with the parts `replacement` gives replaced (see [`TrustReplacement`]). Keys
    /// and authorities written in a policy carry no validity window of their own: they are
    /// trusted for all time, and the certificates' own validity still applies. The result has
    /// no source JSON; its [`fingerprint`](Self::fingerprint) covers the replaced material.
    pub fn replaced(&self, replacement: &TrustReplacement) -> Result<TrustRoot, Error> {
        let mut root = match &replacement.trusted_root_json {
            Some(j) => TrustRoot::from_trusted_root_json(j)?,
            None => self.clone(),
        };
        let parts = TrustReplacement {
            trusted_root_json: None,
            ..replacement.clone()
        };
        if parts.is_empty() {
            return Ok(root);
        }
        root.source_json = None;
        let always = ValidityWindow {
            start: UnixTime(0),
            end: None,
        };
        if let Some(certs) = &replacement.fulcio_roots {
            if certs.is_empty() {
                return Err(field_err("fulcio roots", "no certificate"));
            }
            root.certificate_authorities = vec![CertificateAuthority {
                uri: String::new(),
                common_name: String::new(),
                organization: String::new(),
                cert_chain: certs.clone(),
                valid_for: always,
            }];
        }
        if let Some(chain) = &replacement.tsa_chain {
            if chain.is_empty() {
                return Err(field_err("timestamp authority chain", "no certificate"));
            }
            root.timestamp_authorities = vec![CertificateAuthority {
                uri: String::new(),
                common_name: String::new(),
                organization: String::new(),
                cert_chain: chain.clone(),
                valid_for: always,
            }];
        }
        if let Some(keys) = &replacement.rekor_keys {
            let url = root.tlogs.first().map(|l| l.base_url.clone());
            root.tlogs = keys
                .iter()
                .map(|k| log_from_key(k, url.as_deref().unwrap_or_default()))
                .collect();
        }
        if let Some(keys) = &replacement.ctlog_keys {
            root.ctlogs = keys.iter().map(|k| log_from_key(k, "")).collect();
        }
        Ok(root)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_tell_sections_apart() {
        let key = crate::keys::PublicKey::from_pem(
            "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE7c0Y2e+L3WkeMLgTTZ3y0Kxl1Dgi\nR1R0ufBKTv3lj6XbD7zUyIDF4dDdxBDUVYbl3OBVQwqu7NcldcZ2ZmnCOA==\n-----END PUBLIC KEY-----\n",
        )
        .unwrap();
        let as_rekor = TrustRoot::default()
            .replaced(&TrustReplacement {
                rekor_keys: Some(vec![key.clone()]),
                ..Default::default()
            })
            .unwrap();
        let as_ct = TrustRoot::default()
            .replaced(&TrustReplacement {
                ctlog_keys: Some(vec![key]),
                ..Default::default()
            })
            .unwrap();
        assert_ne!(as_rekor.fingerprint(), as_ct.fingerprint());
        assert_ne!(as_rekor.fingerprint(), TrustRoot::default().fingerprint());
    }

    #[test]
    fn errors_name_the_field() {
        let doc = br#"{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs":[{"baseUrl":"x","hashAlgorithm":"SHA2_256",
              "publicKey":{"rawBytes":"!!","keyDetails":"PKIX_ECDSA_P256_SHA_256",
                "validFor":{"start":"2021-01-12T11:53:27Z"}},"logId":{"keyId":"AA=="}}]}"#;
        let e = TrustRoot::from_trusted_root_json(doc).unwrap_err();
        assert_eq!(e.code(), "core.trust_root.invalid");
        assert!(e.to_string().contains("tlogs[0].publicKey.rawBytes"), "{e}");
    }
}
