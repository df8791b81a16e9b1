//! in-toto Statements v0.1 and v1: subjects with digest sets, `predicateType`, `predicate`.

use std::collections::BTreeMap;

use provenance_core::Digest;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Format, clip};
use crate::json::{self, Limits};

/// `_type` of an in-toto Statement v0.1.
pub const STATEMENT_V01: &str = "https://in-toto.io/Statement/v0.1";
/// `_type` of an in-toto Statement v1.
pub const STATEMENT_V1: &str = "https://in-toto.io/Statement/v1";

/// The version of an in-toto Statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum StatementVersion {
    /// `https://in-toto.io/Statement/v0.1`.
    V01,
    /// `https://in-toto.io/Statement/v1`.
    V1,
}

/// A digest set: algorithm name (`sha256`, `gitCommit`, ...) to lowercase hex value.
pub type DigestSet = BTreeMap<String, String>;

/// An in-toto v1 ResourceDescriptor: a subject of a Statement (v0.1 subjects have only name and
/// digest), a SLSA resolved dependency or material, a VSA input attestation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ResourceDescriptor {
    /// Name of the artifact, e.g. a file name, a package URL or an image repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// URI of the artifact (v1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// The digest set.
    #[serde(default, deserialize_with = "json::null_default")]
    pub digest: DigestSet,
    /// Where the artifact can be downloaded (v1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download_location: Option<String>,
    /// Media type of the artifact (v1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// Free-form annotations (v1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<Value>,
    /// Inline content, base64 (v1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
}

impl ResourceDescriptor {
    /// Whether this descriptor's digest set holds `digest` (same algorithm name, same hex).
    pub fn matches(&self, digest: &Digest) -> bool {
        self.digest
            .get(digest.algorithm().as_str())
            .is_some_and(|hex| hex.eq_ignore_ascii_case(&digest.hex()))
    }
}

/// A subject of a Statement.
pub type Subject = ResourceDescriptor;

/// An in-toto Statement with its predicate kept as JSON.
///
/// Use [`crate::Predicate::parse`] to get a typed view of [`Statement::predicate`]; the raw
/// [`Value`] is what Kyverno-style conditions are evaluated against.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Statement {
    /// Statement version, from `_type`.
    pub version: StatementVersion,
    /// The subjects (at least one).
    pub subjects: Vec<Subject>,
    /// The predicate type URI.
    pub predicate_type: String,
    /// The predicate object (`{}` when absent: in-toto treats unset as set-but-empty).
    pub predicate: Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wire {
    #[serde(rename = "_type")]
    statement_type: String,
    #[serde(default, deserialize_with = "json::null_default")]
    subject: Vec<Subject>,
    #[serde(default)]
    predicate_type: String,
    #[serde(default)]
    predicate: Value,
}

/// Expected hex lengths for digest algorithms in the in-toto digest-set registry.
fn hex_len(algorithm: &str) -> Option<&'static [usize]> {
    Some(match algorithm {
        "sha256" | "sha512_256" | "sha3_256" | "dirHash" => &[64],
        "sha224" | "sha512_224" | "sha3_224" => &[56],
        "sha384" | "sha3_384" => &[96],
        "sha512" | "sha3_512" => &[128],
        "sha1" | "ripemd160" => &[40],
        "md5" => &[32],
        "gitCommit" | "gitTree" | "gitBlob" | "gitTag" => &[40, 64],
        _ => return None,
    })
}

/// Checks a digest set: non-empty, and hex of the right length for registered algorithms.
pub(crate) fn check_digest_set(format: Format, path: &str, set: &DigestSet) -> Result<(), Error> {
    if set.is_empty() {
        return Err(Error::MissingField {
            format,
            path: path.to_owned(),
        });
    }
    for (alg, value) in set {
        let p = format!("{path}.{alg}");
        if value.is_empty() {
            return Err(Error::InvalidDigest {
                format,
                path: p,
                reason: "empty value".into(),
            });
        }
        if let Some(lens) = hex_len(alg) {
            if !value
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            {
                return Err(Error::InvalidDigest {
                    format,
                    path: p,
                    reason: format!("`{}` is not lowercase hex", clip(value, 80)),
                });
            }
            if !lens.contains(&value.len()) {
                return Err(Error::InvalidDigest {
                    format,
                    path: p,
                    reason: format!("{} hex digits, expected {:?}", value.len(), lens),
                });
            }
        }
    }
    Ok(())
}

impl Statement {
    /// Parses a Statement from JSON with [`Limits::default`].
    ///
    /// ```
    /// use provenance_attest::{Statement, StatementVersion};
    /// let st = Statement::from_json(br#"{"_type":"https://in-toto.io/Statement/v1",
    ///   "subject":[{"name":"a","digest":{"sha256":"2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"}}],
    ///   "predicateType":"https://example.com/p","predicate":{"x":1}}"#).unwrap();
    /// assert_eq!(st.version, StatementVersion::V1);
    /// assert!(st.matches(&provenance_core::Digest::sha256_of(b"hello")));
    /// ```
    pub fn from_json(bytes: &[u8]) -> Result<Self, Error> {
        Self::from_json_with(bytes, &Limits::default())
    }

    /// Parses a Statement from JSON under explicit limits.
    pub fn from_json_with(bytes: &[u8], limits: &Limits) -> Result<Self, Error> {
        let wire: Wire = json::from_slice(Format::Statement, bytes, limits)?;
        Self::from_wire(wire, limits)
    }

    /// Builds a Statement from a JSON value.
    pub fn from_value(value: &Value, limits: &Limits) -> Result<Self, Error> {
        json::check_value_depth(Format::Statement, value, limits)?;
        let wire: Wire = json::from_value(Format::Statement, value)?;
        Self::from_wire(wire, limits)
    }

    fn from_wire(w: Wire, limits: &Limits) -> Result<Self, Error> {
        let version = match w.statement_type.as_str() {
            STATEMENT_V01 => StatementVersion::V01,
            STATEMENT_V1 => StatementVersion::V1,
            other => {
                return Err(Error::Unsupported {
                    format: Format::Statement,
                    found: clip(other, 128),
                    supported: "https://in-toto.io/Statement/v0.1, https://in-toto.io/Statement/v1",
                });
            }
        };
        if w.subject.is_empty() {
            return Err(Error::MissingField {
                format: Format::Statement,
                path: "subject".into(),
            });
        }
        if w.subject.len() > limits.max_subjects {
            return Err(Error::TooMany {
                format: Format::Statement,
                path: "subject".into(),
                count: w.subject.len(),
                limit: limits.max_subjects,
            });
        }
        for (i, s) in w.subject.iter().enumerate() {
            check_digest_set(
                Format::Statement,
                &format!("subject[{i}].digest"),
                &s.digest,
            )?;
        }
        if w.predicate_type.is_empty() {
            return Err(Error::MissingField {
                format: Format::Statement,
                path: "predicateType".into(),
            });
        }
        // "Unset is treated the same as set-but-empty" (in-toto Statement v1); so for v0.1.
        let predicate = match w.predicate {
            Value::Null => Value::Object(Default::default()),
            v @ Value::Object(_) => v,
            _ => {
                return Err(Error::Schema {
                    format: Format::Statement,
                    path: "predicate".into(),
                    message: "must be an object".into(),
                });
            }
        };
        Ok(Statement {
            version,
            subjects: w.subject,
            predicate_type: w.predicate_type,
            predicate,
        })
    }

    /// Builds a Statement to attest (e.g. a model card for `cosign attest`), with the checks
    /// parsing applies: a known version, at least one subject, well-formed digest sets, a
    /// predicate type, an object predicate.
    ///
    /// ```
    /// use provenance_attest::{Limits, ResourceDescriptor, Statement, StatementVersion};
    /// let mut subject = ResourceDescriptor::default();
    /// subject.name = Some("model.safetensors".into());
    /// subject.digest.insert("sha256".into(), provenance_core::Digest::sha256_of(b"w").hex());
    /// let st = Statement::new(StatementVersion::V1, vec![subject],
    ///     "https://mlcommons.org/model-card/v1", serde_json::json!({"name": "m"}), &Limits::default()).unwrap();
    /// let again = Statement::from_json(&st.to_json()).unwrap();
    /// assert_eq!(again, st);
    /// ```
    pub fn new(
        version: StatementVersion,
        subjects: Vec<Subject>,
        predicate_type: &str,
        predicate: Value,
        limits: &Limits,
    ) -> Result<Self, Error> {
        let statement_type = match version {
            StatementVersion::V01 => STATEMENT_V01,
            StatementVersion::V1 => STATEMENT_V1,
        };
        Self::from_wire(
            Wire {
                statement_type: statement_type.to_owned(),
                subject: subjects,
                predicate_type: predicate_type.to_owned(),
                predicate,
            },
            limits,
        )
    }

    /// The Statement as JSON bytes (the DSSE payload to sign).
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(&self.to_value()).unwrap_or_default()
    }

    /// Whether any subject's digest set holds `digest`.
    pub fn matches(&self, digest: &Digest) -> bool {
        self.subject_for(digest).is_some()
    }

    /// The first subject whose digest set holds `digest`.
    pub fn subject_for(&self, digest: &Digest) -> Option<&Subject> {
        self.subjects.iter().find(|s| s.matches(digest))
    }

    /// The whole Statement as JSON, in its wire shape (`_type`, `subject`, ...).
    pub fn to_value(&self) -> Value {
        let t = match self.version {
            StatementVersion::V01 => STATEMENT_V01,
            StatementVersion::V1 => STATEMENT_V1,
        };
        serde_json::json!({
            "_type": t,
            "subject": self.subjects,
            "predicateType": self.predicate_type,
            "predicate": self.predicate,
        })
    }
}
