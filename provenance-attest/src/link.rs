//! in-toto link metadata (`"_type": "link"`), what `in-toto-run` records for a step: materials,
//! products, command, byproducts. Found in DSSE envelopes with the in-toto payload type.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Format, clip};
use crate::json::{self, Limits, null_default};
use crate::statement::{DigestSet, check_digest_set};

/// An in-toto link: one step's inputs and outputs, by path, with digests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[non_exhaustive]
pub struct Link {
    /// Step name.
    #[serde(default)]
    pub name: String,
    /// The command that ran.
    #[serde(default, deserialize_with = "null_default")]
    pub command: Vec<String>,
    /// Files read, path to digest set.
    #[serde(default, deserialize_with = "null_default")]
    pub materials: BTreeMap<String, DigestSet>,
    /// Files written, path to digest set.
    #[serde(default, deserialize_with = "null_default")]
    pub products: BTreeMap<String, DigestSet>,
    /// Return value, stdout, stderr, as JSON.
    #[serde(default)]
    pub byproducts: Value,
    /// Environment, as JSON.
    #[serde(default)]
    pub environment: Value,
}

impl Link {
    /// Parses a link from JSON (an envelope's payload). `_type` must be `link`, `name` set, and
    /// every digest set well-formed (`materials.<path>.sha256`).
    pub fn from_json_with(bytes: &[u8], limits: &Limits) -> Result<Self, Error> {
        let f = Format::Statement;
        let v: Value = json::from_slice(f, bytes, limits)?;
        match v.get("_type").and_then(Value::as_str) {
            Some("link") => {}
            other => {
                return Err(Error::Unsupported {
                    format: f,
                    found: clip(other.unwrap_or("<none>"), 64),
                    supported: "link",
                });
            }
        }
        let link: Link = json::from_value(f, &v)?;
        if link.name.is_empty() {
            return Err(Error::MissingField {
                format: f,
                path: "name".into(),
            });
        }
        limits.check_count(f, "materials", link.materials.len())?;
        limits.check_count(f, "products", link.products.len())?;
        for (kind, map) in [("materials", &link.materials), ("products", &link.products)] {
            for (path, set) in map {
                check_digest_set(f, &format!("{kind}.{path}"), set)?;
            }
        }
        Ok(link)
    }
}
