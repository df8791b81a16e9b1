//! OpenSSF model signing (`model_signing`, sigstore/model-transparency) manifests: the
//! `https://model_signing/signature/v1.0` predicate (`serialization`, `resources`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use provenance_core::Digest;

use crate::error::{Error, Format, clip};
use crate::json::{self, Limits, null_default};
use crate::statement::Statement;

/// Predicate type of model-signing v1.0 signatures.
pub const MODEL_SIGNING_V1: &str = "https://model_signing/signature/v1.0";

/// Predicate type of the model-signing v0.2 format still found in the wild: the files are the
/// Statement's subjects and the predicate is empty.
pub const MODEL_SIGNING_DIGESTS_V01: &str = "https://model_signing/Digests/v0.1";

/// How the model folder was serialized into resources.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[non_exhaustive]
pub struct Serialization {
    /// `files` or `shards`.
    #[serde(default)]
    pub method: String,
    /// Hash algorithm of the resources (`sha256`, `blake2`).
    #[serde(default)]
    pub hash_type: String,
    /// Whether symbolic links were followed.
    #[serde(default)]
    pub allow_symlinks: Option<bool>,
    /// Paths left out of the manifest.
    #[serde(default, deserialize_with = "null_default")]
    pub ignore_paths: Vec<String>,
    /// Shard size in bytes (`shards` method). model-signing writes it as a float
    /// (`524288.0`); whole-number floats are accepted, anything else is an error.
    #[serde(default, deserialize_with = "whole_number")]
    pub shard_size: Option<u64>,
}

fn whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let v = Option::<serde_json::Number>::deserialize(d)?;
    match v {
        None => Ok(None),
        Some(n) => {
            if let Some(u) = n.as_u64() {
                return Ok(Some(u));
            }
            match n.as_f64() {
                Some(f) if f >= 0.0 && f.fract() == 0.0 && f <= (1u64 << 53) as f64 => {
                    Ok(Some(f as u64))
                }
                _ => Err(serde::de::Error::custom(format!(
                    "shard_size must be a whole number of bytes, got {n}"
                ))),
            }
        }
    }
}

/// One file (or shard) of a signed model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[non_exhaustive]
pub struct Resource {
    /// Path inside the model folder (with `:start:end` for shards).
    pub name: String,
    /// Hash algorithm.
    pub algorithm: String,
    /// Lowercase hex digest.
    pub digest: String,
}

/// A model-signing manifest: the predicate plus the model name and root digest of its
/// Statement's single subject.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[non_exhaustive]
pub struct ModelSigningManifest {
    /// How the model was serialized.
    pub serialization: Serialization,
    /// Every file or shard, with its digest.
    #[serde(default, deserialize_with = "null_default")]
    pub resources: Vec<Resource>,
}

impl ModelSigningManifest {
    /// Parses the predicate alone.
    pub fn from_value(value: &Value, limits: &Limits) -> Result<Self, Error> {
        let f = Format::ModelSigning;
        json::check_value_depth(f, value, limits)?;
        let m: Self = json::from_value(f, value)?;
        if m.serialization.method.is_empty() {
            return Err(Error::MissingField {
                format: f,
                path: "serialization.method".into(),
            });
        }
        limits.check_count(f, "resources", m.resources.len())?;
        for (i, r) in m.resources.iter().enumerate() {
            let hex_ok = !r.digest.is_empty()
                && r.digest.len() % 2 == 0
                && r.digest
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            if !hex_ok {
                return Err(Error::InvalidDigest {
                    format: f,
                    path: format!("resources[{i}].digest"),
                    reason: format!("`{}` is not lowercase hex", clip(&r.digest, 80)),
                });
            }
        }
        Ok(m)
    }

    /// Parses the predicate of a Statement and checks it against the Statement's single
    /// subject: its `sha256` must be SHA-256 over the raw resource digests, in order, as
    /// model-signing computes it. Returns the model name too. Statements of the older
    /// [`MODEL_SIGNING_DIGESTS_V01`] type (files as subjects) are read as well.
    pub fn from_statement(statement: &Statement, limits: &Limits) -> Result<(String, Self), Error> {
        let f = Format::ModelSigning;
        if statement.predicate_type == MODEL_SIGNING_DIGESTS_V01 {
            return Self::from_compat_statement(statement, limits);
        }
        if statement.predicate_type != MODEL_SIGNING_V1 {
            return Err(Error::WrongPredicateType {
                expected: MODEL_SIGNING_V1,
                found: clip(&statement.predicate_type, 128),
            });
        }
        let m = Self::from_value(&statement.predicate, limits)?;
        let [subject] = statement.subjects.as_slice() else {
            return Err(Error::Schema {
                format: f,
                path: "subject".into(),
                message: format!(
                    "expected exactly one subject, found {}",
                    statement.subjects.len()
                ),
            });
        };
        let root = m.root_digest()?;
        if !subject.matches(&root) {
            return Err(Error::InvalidDigest {
                format: f,
                path: "subject[0].digest.sha256".into(),
                reason: format!("does not match the resources (they hash to {root})"),
            });
        }
        Ok((subject.name.clone().unwrap_or_default(), m))
    }

    /// The v0.2 format: every subject is a file with a `sha256`; there is no root digest and
    /// no model name (`""` is returned).
    fn from_compat_statement(
        statement: &Statement,
        limits: &Limits,
    ) -> Result<(String, Self), Error> {
        let f = Format::ModelSigning;
        limits.check_count(f, "subject", statement.subjects.len())?;
        let mut resources = Vec::with_capacity(statement.subjects.len());
        for (i, s) in statement.subjects.iter().enumerate() {
            let name =
                s.name
                    .clone()
                    .filter(|n| !n.is_empty())
                    .ok_or_else(|| Error::MissingField {
                        format: f,
                        path: format!("subject[{i}].name"),
                    })?;
            let digest = s
                .digest
                .get("sha256")
                .cloned()
                .ok_or_else(|| Error::MissingField {
                    format: f,
                    path: format!("subject[{i}].digest.sha256"),
                })?;
            resources.push(Resource {
                name,
                algorithm: "sha256".into(),
                digest,
            });
        }
        Ok((
            String::new(),
            ModelSigningManifest {
                serialization: Serialization {
                    method: "files".into(),
                    hash_type: "sha256".into(),
                    allow_symlinks: Some(false),
                    ignore_paths: Vec::new(),
                    shard_size: None,
                },
                resources,
            },
        ))
    }

    /// SHA-256 over the raw bytes of every resource digest, in order.
    pub fn root_digest(&self) -> Result<Digest, Error> {
        let mut all = Vec::with_capacity(self.resources.len() * 32);
        for (i, r) in self.resources.iter().enumerate() {
            let bytes = hex_decode(&r.digest).ok_or_else(|| Error::InvalidDigest {
                format: Format::ModelSigning,
                path: format!("resources[{i}].digest"),
                reason: "not hex".into(),
            })?;
            all.extend_from_slice(&bytes);
        }
        Ok(Digest::sha256_of(&all))
    }

    /// The resource with this name.
    pub fn resource(&self, name: &str) -> Option<&Resource> {
        self.resources.iter().find(|r| r.name == name)
    }
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let nib = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    };
    s.as_bytes()
        .chunks(2)
        .map(|c| Some(nib(c[0])? << 4 | nib(c[1])?))
        .collect()
}
