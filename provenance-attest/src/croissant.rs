//! Croissant dataset cards (MLCommons, JSON-LD, schema.org `Dataset` + `cr:` vocabulary),
//! and the dataset provenance predicate this crate defines for signed dataset attestations.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::error::{Error, Format, clip};
use crate::json::{self, Limits, null_default};
use crate::statement::{DigestSet, check_digest_set};

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Predicate type of the dataset provenance predicate (see `docs/attestations.md`).
pub const DATASET_PROVENANCE_V1: &str =
    "https://provenance-rs.github.io/attestation/dataset-provenance/v1";

fn string_or_list<'de, D: Deserializer<'de>>(de: D) -> Result<Vec<String>, D::Error> {
    let v = Option::<Value>::deserialize(de)?;
    let mut out = Vec::new();
    let mut push = |x: &Value| match x {
        Value::String(s) => out.push(s.clone()),
        Value::Object(o) => {
            // A CreativeWork license: {"@type": "sc:CreativeWork", "name"/"url"}.
            if let Some(s) = o
                .get("url")
                .or_else(|| o.get("@id"))
                .or_else(|| o.get("name"))
                .and_then(Value::as_str)
            {
                out.push(s.to_owned());
            }
        }
        _ => {}
    };
    match &v {
        Some(Value::Array(a)) => a.iter().for_each(&mut push),
        Some(x) => push(x),
        None => {}
    }
    Ok(out)
}

/// A `cr:FileObject` or `cr:FileSet` of a Croissant `distribution`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Distribution {
    /// `cr:FileObject` or `cr:FileSet`.
    #[serde(rename = "@type", default)]
    pub kind: String,
    /// Local id.
    #[serde(rename = "@id", default)]
    pub id: Option<String>,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// Where the file is (FileObject).
    #[serde(default)]
    pub content_url: Option<String>,
    /// SHA-256, lowercase hex (FileObject).
    #[serde(default)]
    pub sha256: Option<String>,
    /// MD5 (FileObject; older cards).
    #[serde(default)]
    pub md5: Option<String>,
    /// Size as written (`"117 MB"`, `"1024"`).
    #[serde(default)]
    pub content_size: Option<Value>,
    /// MIME type.
    #[serde(default)]
    pub encoding_format: Option<String>,
    /// FileObjects this one is inside, as JSON.
    #[serde(default)]
    pub contained_in: Value,
    /// Glob of included files (FileSet).
    #[serde(default)]
    pub includes: Value,
}

/// A `cr:RecordSet`, summarized.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[non_exhaustive]
pub struct RecordSet {
    /// Local id.
    #[serde(rename = "@id", default)]
    pub id: Option<String>,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// Fields, as JSON.
    #[serde(default, deserialize_with = "null_default")]
    pub field: Vec<Value>,
}

/// A Croissant dataset card (1.0 or 1.1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct CroissantDataset {
    /// `sc:Dataset`.
    #[serde(rename = "@type", default)]
    pub kind: Value,
    /// `http://mlcommons.org/croissant/1.0` or `/1.1`.
    #[serde(default)]
    pub conforms_to: Option<String>,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Licenses: SPDX ids or URLs.
    #[serde(default, deserialize_with = "string_or_list")]
    pub license: Vec<String>,
    /// Landing page.
    #[serde(default)]
    pub url: Option<String>,
    /// Version.
    #[serde(default)]
    pub version: Option<Value>,
    /// Creators, as JSON.
    #[serde(default)]
    pub creator: Value,
    /// Files and file sets.
    #[serde(default, deserialize_with = "null_default")]
    pub distribution: Vec<Distribution>,
    /// Record sets.
    #[serde(default, deserialize_with = "null_default")]
    pub record_set: Vec<RecordSet>,
    /// Responsible-AI (`rai:*`) and provenance (`prov:*`) properties.
    #[serde(skip)]
    pub extensions: BTreeMap<String, Value>,
}

impl CroissantDataset {
    /// Parses a Croissant JSON-LD document with [`Limits::default`].
    ///
    /// ```
    /// use provenance_attest::croissant::CroissantDataset;
    /// let d = CroissantDataset::from_json(br#"{"@context":{"@vocab":"https://schema.org/"},
    ///   "@type":"sc:Dataset","name":"d","conformsTo":"http://mlcommons.org/croissant/1.1",
    ///   "distribution":[{"@type":"cr:FileObject","@id":"f","contentUrl":"https://x/f.csv",
    ///   "sha256":"2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"}]}"#).unwrap();
    /// assert_eq!(d.digests().len(), 1);
    /// ```
    pub fn from_json(bytes: &[u8]) -> Result<Self, Error> {
        Self::from_json_with(bytes, &Limits::default())
    }

    /// Parses a Croissant JSON-LD document under explicit limits.
    pub fn from_json_with(bytes: &[u8], limits: &Limits) -> Result<Self, Error> {
        let v: Value = json::from_slice(Format::Croissant, bytes, limits)?;
        Self::from_value(&v, limits)
    }

    /// Builds a dataset card from a JSON value. Requires an `@context`, `@type` `sc:Dataset`
    /// (or `schema:Dataset` / `Dataset`) and a `name`. A `sha256` that is not 64 hex digits is
    /// kept as written but is not a digest (see [`CroissantDataset::digests`]).
    pub fn from_value(value: &Value, limits: &Limits) -> Result<Self, Error> {
        let f = Format::Croissant;
        json::check_value_depth(f, value, limits)?;
        if value.get("@context").is_none() {
            return Err(Error::MissingField {
                format: f,
                path: "@context".into(),
            });
        }
        let mut d: CroissantDataset = json::from_value(f, value)?;
        let is_dataset = |t: &Value| {
            t.as_str().is_some_and(|s| {
                matches!(
                    s,
                    "sc:Dataset" | "schema:Dataset" | "Dataset" | "https://schema.org/Dataset"
                )
            })
        };
        let ok = match &d.kind {
            Value::Array(a) => a.iter().any(is_dataset),
            t => is_dataset(t),
        };
        if !ok {
            return Err(Error::Schema {
                format: f,
                path: "@type".into(),
                message: format!(
                    "expected `sc:Dataset`, found `{}`",
                    clip(&d.kind.to_string(), 64)
                ),
            });
        }
        if d.name.trim().is_empty() {
            return Err(Error::MissingField {
                format: f,
                path: "name".into(),
            });
        }
        limits.check_count(f, "distribution", d.distribution.len())?;
        limits.check_count(f, "recordSet", d.record_set.len())?;
        if let Some(o) = value.as_object() {
            d.extensions = o
                .iter()
                .filter(|(k, _)| k.starts_with("rai:") || k.starts_with("prov:"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
        }
        Ok(d)
    }

    /// `(contentUrl or @id, sha256)` of every FileObject whose `sha256` is 64 hex digits.
    /// (Hugging Face exports put a URL there for git repositories: that is no digest.)
    pub fn digests(&self) -> Vec<(&str, &str)> {
        self.distribution
            .iter()
            .filter_map(|x| {
                let h = x.sha256.as_deref().filter(|h| is_sha256_hex(h))?;
                let name = x
                    .content_url
                    .as_deref()
                    .or(x.id.as_deref())
                    .unwrap_or_default();
                Some((name, h))
            })
            .collect()
    }

    /// FileObjects without a usable SHA-256: content a verifier cannot pin.
    pub fn undigested_files(&self) -> Vec<&Distribution> {
        self.distribution
            .iter()
            .filter(|x| {
                x.kind.ends_with("FileObject") && !x.sha256.as_deref().is_some_and(is_sha256_hex)
            })
            .collect()
    }
}

/// One source a dataset was collected from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[non_exhaustive]
pub struct DatasetSource {
    /// Where the data was fetched from.
    pub uri: String,
    /// Digests of what was fetched.
    #[serde(default, skip_serializing_if = "DigestSet::is_empty")]
    pub digest: DigestSet,
    /// License of the source (SPDX expression).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
}

/// How a dataset was collected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Collection {
    /// Method (`crawl`, `export`, `synthetic`, `annotation`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// RFC 3339 start, as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_on: Option<String>,
    /// RFC 3339 end, as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_on: Option<String>,
    /// Who collected it (URI of a person, team or pipeline).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collector: Option<String>,
}

/// The dataset provenance predicate ([`DATASET_PROVENANCE_V1`]): what a dataset is, where it
/// came from, under which license, and how it was collected. The Statement's subject is the
/// dataset (its manifest or archive digest).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct DatasetProvenance {
    /// Dataset name (required).
    #[serde(default)]
    pub name: String,
    /// Version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Where the dataset itself is published (required).
    #[serde(default)]
    pub source_uri: String,
    /// Digests of the dataset (required, well-formed).
    #[serde(default)]
    pub digest: DigestSet,
    /// SPDX license expression (required).
    #[serde(default)]
    pub license: String,
    /// Upstream sources.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub sources: Vec<DatasetSource>,
    /// Collection.
    #[serde(default, deserialize_with = "null_default")]
    pub collection: Collection,
}

impl DatasetProvenance {
    /// Parses and checks the predicate.
    pub fn from_value(value: &Value, limits: &Limits) -> Result<Self, Error> {
        let f = Format::DatasetProvenance;
        json::check_value_depth(f, value, limits)?;
        let p: DatasetProvenance = json::from_value(f, value)?;
        for (path, v) in [
            ("name", &p.name),
            ("sourceUri", &p.source_uri),
            ("license", &p.license),
        ] {
            if v.trim().is_empty() {
                return Err(Error::MissingField {
                    format: f,
                    path: path.into(),
                });
            }
        }
        check_digest_set(f, "digest", &p.digest)?;
        limits.check_count(f, "sources", p.sources.len())?;
        for (i, s) in p.sources.iter().enumerate() {
            if !s.digest.is_empty() {
                check_digest_set(f, &format!("sources[{i}].digest"), &s.digest)?;
            }
        }
        Ok(p)
    }
}

impl DatasetProvenance {
    /// Drafts the predicate from a Croissant card: name, version, `url` as the source, the
    /// first license, and every FileObject with a SHA-256 as a source. The dataset `digest`
    /// is set only when exactly one file is digested (it then is the dataset); otherwise it
    /// stays empty and [`DatasetProvenance::from_value`] will refuse the draft until the
    /// publisher adds the digest of the dataset manifest or archive.
    pub fn from_croissant(card: &CroissantDataset) -> Self {
        let digests = card.digests();
        let sources: Vec<DatasetSource> = digests
            .iter()
            .map(|(uri, hex)| DatasetSource {
                uri: (*uri).to_owned(),
                digest: [("sha256".to_owned(), hex.to_ascii_lowercase())].into(),
                license: None,
            })
            .collect();
        let digest = match sources.as_slice() {
            [one] => one.digest.clone(),
            _ => DigestSet::new(),
        };
        DatasetProvenance {
            name: card.name.clone(),
            version: card.version.as_ref().map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            }),
            source_uri: card.url.clone().unwrap_or_default(),
            digest,
            license: card.license.first().cloned().unwrap_or_default(),
            sources,
            collection: Collection::default(),
        }
    }

    /// Drafts the predicate from an SPDX 3 `dataset_DatasetPackage`: name, version, download
    /// location, `verifiedUsing` hashes, licenses, `suppliedBy` as the collector and
    /// `dataset_dataCollectionProcess` as the method.
    pub fn from_spdx3(
        doc: &crate::spdx::Spdx3Document,
        dataset: &crate::spdx::Spdx3Element,
    ) -> Self {
        let id = dataset.spdx_id.as_deref().unwrap_or_default();
        let licenses = doc.licenses_of(id);
        let labels: Vec<&str> = licenses.iter().map(String::as_str).collect();
        let collector = dataset.str_property("suppliedBy").map(|s| {
            doc.element(s)
                .and_then(|e| e.name.clone())
                .unwrap_or_else(|| s.to_owned())
        });
        DatasetProvenance {
            name: dataset.name.clone().unwrap_or_default(),
            version: dataset
                .str_property("software_packageVersion")
                .map(str::to_owned),
            source_uri: dataset
                .str_property("software_downloadLocation")
                .unwrap_or_default()
                .to_owned(),
            digest: crate::modelcard::spdx3_digest(dataset),
            license: crate::modelcard::join_licenses(&labels).unwrap_or_default(),
            sources: Vec::new(),
            collection: Collection {
                method: dataset
                    .str_property("dataset_dataCollectionProcess")
                    .map(str::to_owned),
                started_on: None,
                finished_on: dataset.str_property("builtTime").map(str::to_owned),
                collector,
            },
        }
    }
}

impl DatasetProvenance {
    /// Drafts the predicate from a Hugging Face dataset card: the caller gives the dataset id
    /// (`name`) and where it is published (`source_uri`, e.g. `https://huggingface.co/datasets/<id>`
    /// at a revision); the card gives the license (several joined with `AND`). Hugging Face
    /// cards carry no digest: add the digest of the dataset revision before attesting, or
    /// [`DatasetProvenance::from_value`] refuses the draft at `digest`.
    pub fn from_hf_card(card: &crate::huggingface::HfCard, name: &str, source_uri: &str) -> Self {
        let labels: Vec<&str> = card.license.iter().map(String::as_str).collect();
        DatasetProvenance {
            name: name.to_owned(),
            version: None,
            source_uri: source_uri.to_owned(),
            digest: DigestSet::new(),
            license: crate::modelcard::join_licenses(&labels).unwrap_or_default(),
            sources: Vec::new(),
            collection: Collection::default(),
        }
    }
}
