//! SPDX 2.2 and 2.3 JSON documents, and SPDX 3.0 JSON-LD with the AI and Dataset profiles.
//!
//! Parsing is lenient where real tools are (missing optional fields, unknown fields); the
//! stricter checks of the specification are in [`SpdxDocument::problems`], so a policy can
//! decide whether a document that parses but does not validate is acceptable.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Format, clip};
use crate::json::{self, Limits, null_default};
use crate::statement::check_digest_set;

/// Predicate type cosign uses for SPDX attestations (`cosign attest --type spdxjson`).
pub const SPDX_PREDICATE: &str = "https://spdx.dev/Document";

/// A checksum of a package or file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Checksum {
    /// `SHA1`, `SHA256`, `SHA512`, `MD5`, ...
    #[serde(default)]
    pub algorithm: String,
    /// Lowercase hex.
    #[serde(default)]
    pub checksum_value: String,
}

impl Checksum {
    /// The in-toto digest-set name of the algorithm (`sha256`), if it has one.
    pub fn intoto_algorithm(&self) -> Option<&'static str> {
        Some(match self.algorithm.as_str() {
            "MD5" => "md5",
            "SHA1" => "sha1",
            "SHA224" => "sha224",
            "SHA256" => "sha256",
            "SHA384" => "sha384",
            "SHA512" => "sha512",
            "SHA3-256" => "sha3_256",
            "SHA3-384" => "sha3_384",
            "SHA3-512" => "sha3_512",
            _ => return None,
        })
    }
}

/// An external reference of a package (purl, CPE, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ExternalRef {
    /// `SECURITY`, `PACKAGE-MANAGER` (`PACKAGE_MANAGER` in 2.3), `PERSISTENT-ID`, `OTHER`.
    #[serde(default)]
    pub reference_category: String,
    /// `purl`, `cpe23Type`, ...
    #[serde(default)]
    pub reference_type: String,
    /// The locator (the purl itself).
    #[serde(default)]
    pub reference_locator: String,
}

/// An SPDX 2.x package.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Package {
    /// `SPDXRef-...`.
    #[serde(rename = "SPDXID", default)]
    pub spdx_id: String,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Version.
    #[serde(default)]
    pub version_info: Option<String>,
    /// Download location (required by the spec; `NOASSERTION` allowed).
    #[serde(default)]
    pub download_location: Option<String>,
    /// Whether files were analyzed.
    #[serde(default)]
    pub files_analyzed: Option<bool>,
    /// Checksums.
    #[serde(default, deserialize_with = "null_default")]
    pub checksums: Vec<Checksum>,
    /// Concluded license expression.
    #[serde(default)]
    pub license_concluded: Option<String>,
    /// Declared license expression.
    #[serde(default)]
    pub license_declared: Option<String>,
    /// Copyright text.
    #[serde(default)]
    pub copyright_text: Option<String>,
    /// Supplier (`Organization: ...`).
    #[serde(default)]
    pub supplier: Option<String>,
    /// Originator.
    #[serde(default)]
    pub originator: Option<String>,
    /// Homepage.
    #[serde(default)]
    pub homepage: Option<String>,
    /// External references.
    #[serde(default, deserialize_with = "null_default")]
    pub external_refs: Vec<ExternalRef>,
    /// Primary purpose (2.3): `APPLICATION`, `CONTAINER`, `LIBRARY`, ...
    #[serde(default)]
    pub primary_package_purpose: Option<String>,
}

impl Package {
    /// The package URL, from `externalRefs`.
    pub fn purl(&self) -> Option<&str> {
        self.external_refs
            .iter()
            .find(|r| r.reference_type == "purl")
            .map(|r| r.reference_locator.as_str())
    }
}

/// An SPDX 2.x file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct File {
    /// `SPDXRef-...`.
    #[serde(rename = "SPDXID", default)]
    pub spdx_id: String,
    /// File name.
    #[serde(default)]
    pub file_name: String,
    /// Checksums.
    #[serde(default, deserialize_with = "null_default")]
    pub checksums: Vec<Checksum>,
    /// Concluded license expression.
    #[serde(default)]
    pub license_concluded: Option<String>,
}

/// An SPDX 2.x relationship.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Relationship {
    /// The element the relationship starts from.
    #[serde(default)]
    pub spdx_element_id: String,
    /// `DESCRIBES`, `CONTAINS`, `DEPENDS_ON`, ...
    #[serde(default)]
    pub relationship_type: String,
    /// The other element.
    #[serde(default)]
    pub related_spdx_element: String,
}

/// `creationInfo` of an SPDX 2.x document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct CreationInfo {
    /// Creation time, as written.
    #[serde(default)]
    pub created: String,
    /// Creators (`Tool: ...`, `Organization: ...`).
    #[serde(default, deserialize_with = "null_default")]
    pub creators: Vec<String>,
    /// License list version.
    #[serde(default)]
    pub license_list_version: Option<String>,
}

/// An SPDX 2.2 or 2.3 JSON document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct SpdxDocument {
    /// `SPDX-2.2` or `SPDX-2.3`.
    #[serde(default)]
    pub spdx_version: String,
    /// `SPDXRef-DOCUMENT`.
    #[serde(rename = "SPDXID", default)]
    pub spdx_id: String,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// `CC0-1.0`.
    #[serde(default)]
    pub data_license: String,
    /// Namespace URI.
    #[serde(default)]
    pub document_namespace: String,
    /// Creation info.
    #[serde(default, deserialize_with = "null_default")]
    pub creation_info: CreationInfo,
    /// Element ids the document describes (2.2 style; 2.3 prefers `DESCRIBES` relationships).
    #[serde(default, deserialize_with = "null_default")]
    pub document_describes: Vec<String>,
    /// Packages.
    #[serde(default, deserialize_with = "null_default")]
    pub packages: Vec<Package>,
    /// Files.
    #[serde(default, deserialize_with = "null_default")]
    pub files: Vec<File>,
    /// Relationships.
    #[serde(default, deserialize_with = "null_default")]
    pub relationships: Vec<Relationship>,
    /// Extracted licensing infos (`LicenseRef-...`), as JSON.
    #[serde(default, deserialize_with = "null_default")]
    pub has_extracted_licensing_infos: Vec<Value>,
}

const RELATIONSHIP_TYPES: &[&str] = &[
    "DESCRIBES",
    "DESCRIBED_BY",
    "CONTAINS",
    "CONTAINED_BY",
    "DEPENDS_ON",
    "DEPENDENCY_OF",
    "DEPENDENCY_MANIFEST_OF",
    "BUILD_DEPENDENCY_OF",
    "DEV_DEPENDENCY_OF",
    "OPTIONAL_DEPENDENCY_OF",
    "PROVIDED_DEPENDENCY_OF",
    "TEST_DEPENDENCY_OF",
    "RUNTIME_DEPENDENCY_OF",
    "EXAMPLE_OF",
    "GENERATES",
    "GENERATED_FROM",
    "ANCESTOR_OF",
    "DESCENDANT_OF",
    "VARIANT_OF",
    "DISTRIBUTION_ARTIFACT",
    "PATCH_FOR",
    "PATCH_APPLIED",
    "COPY_OF",
    "FILE_ADDED",
    "FILE_DELETED",
    "FILE_MODIFIED",
    "EXPANDED_FROM_ARCHIVE",
    "DYNAMIC_LINK",
    "STATIC_LINK",
    "DATA_FILE_OF",
    "TEST_CASE_OF",
    "BUILD_TOOL_OF",
    "DEV_TOOL_OF",
    "TEST_OF",
    "TEST_TOOL_OF",
    "DOCUMENTATION_OF",
    "OPTIONAL_COMPONENT_OF",
    "METAFILE_OF",
    "PACKAGE_OF",
    "AMENDS",
    "PREREQUISITE_FOR",
    "HAS_PREREQUISITE",
    "REQUIREMENT_DESCRIPTION_FOR",
    "SPECIFICATION_FOR",
    "OTHER",
];

/// Checks the shape of an SPDX license expression: identifiers, `AND`, `OR`, `WITH`,
/// parentheses, `NONE` and `NOASSERTION`. It does not check ids against the license list.
///
/// ```
/// use provenance_attest::spdx::is_license_expression;
/// assert!(is_license_expression("(MIT OR Apache-2.0) AND LicenseRef-x"));
/// assert!(!is_license_expression("MIT, BSD-3-Clause"));
/// ```
pub fn is_license_expression(expr: &str) -> bool {
    let spaced = expr.replace('(', " ( ").replace(')', " ) ");
    let mut depth = 0usize;
    let mut expect_operand = true;
    let mut after_with = false;
    let mut seen = false;
    for tok in spaced.split_whitespace() {
        seen = true;
        match tok {
            "(" => {
                if !expect_operand {
                    return false;
                }
                depth += 1;
            }
            ")" => {
                if expect_operand || depth == 0 {
                    return false;
                }
                depth -= 1;
            }
            "AND" | "OR" | "and" | "or" | "WITH" | "with" => {
                if expect_operand {
                    return false;
                }
                after_with = tok.eq_ignore_ascii_case("WITH");
                expect_operand = true;
            }
            id => {
                if !expect_operand {
                    return false;
                }
                let ok = !id.is_empty()
                    && id
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-.+:".contains(&b));
                if !ok || (after_with && id.ends_with('+')) {
                    return false;
                }
                after_with = false;
                expect_operand = false;
            }
        }
    }
    seen && !expect_operand && depth == 0
}

impl SpdxDocument {
    /// Parses an SPDX 2.2 or 2.3 JSON document with [`Limits::default`]. An SPDX 3.0 JSON-LD
    /// document is refused with [`Error::Unsupported`]: parse it with [`Spdx3Document`].
    ///
    /// ```
    /// let doc = provenance_attest::spdx::SpdxDocument::from_json(br#"{"spdxVersion":"SPDX-2.3",
    ///   "SPDXID":"SPDXRef-DOCUMENT","name":"d","packages":[{"SPDXID":"SPDXRef-p","name":"p",
    ///   "downloadLocation":"NOASSERTION","licenseConcluded":"MIT"}]}"#).unwrap();
    /// assert_eq!(doc.packages[0].name, "p");
    /// ```
    pub fn from_json(bytes: &[u8]) -> Result<Self, Error> {
        Self::from_json_with(bytes, &Limits::default())
    }

    /// Parses an SPDX 2.x JSON document under explicit limits.
    pub fn from_json_with(bytes: &[u8], limits: &Limits) -> Result<Self, Error> {
        let doc: SpdxDocument = json::from_slice(Format::Spdx, bytes, limits)?;
        doc.check(limits, bytes_look_like_spdx3(bytes))?;
        Ok(doc)
    }

    /// Builds a document from a JSON value (an attestation predicate).
    pub fn from_value(value: &Value, limits: &Limits) -> Result<Self, Error> {
        json::check_value_depth(Format::Spdx, value, limits)?;
        let doc: SpdxDocument = json::from_value(Format::Spdx, value)?;
        doc.check(limits, value.get("@graph").is_some())?;
        Ok(doc)
    }

    fn check(&self, limits: &Limits, spdx3: bool) -> Result<(), Error> {
        match self.spdx_version.as_str() {
            "SPDX-2.2" | "SPDX-2.3" => {}
            "" if spdx3 => {
                return Err(Error::Unsupported {
                    format: Format::Spdx,
                    found: "SPDX 3 JSON-LD".into(),
                    supported: "SPDX-2.2, SPDX-2.3 (parse SPDX 3.0 with spdx::Spdx3Document)",
                });
            }
            "" => {
                return Err(Error::MissingField {
                    format: Format::Spdx,
                    path: "spdxVersion".into(),
                });
            }
            other => {
                return Err(Error::Unsupported {
                    format: Format::Spdx,
                    found: clip(other, 32),
                    supported: "SPDX-2.2, SPDX-2.3",
                });
            }
        }
        if self.spdx_id != "SPDXRef-DOCUMENT" {
            return Err(Error::Schema {
                format: Format::Spdx,
                path: "SPDXID".into(),
                message: format!(
                    "expected `SPDXRef-DOCUMENT`, found `{}`",
                    clip(&self.spdx_id, 64)
                ),
            });
        }
        limits.check_count(Format::Spdx, "packages", self.packages.len())?;
        limits.check_count(Format::Spdx, "files", self.files.len())?;
        limits.check_count(Format::Spdx, "relationships", self.relationships.len())?;
        Ok(())
    }

    /// What the SPDX 2.x specification requires but this document lacks, each with the field
    /// path: missing `downloadLocation`, license fields that are not license expressions,
    /// checksums that are not lowercase hex of the algorithm's length, unknown relationship
    /// types, ids without the `SPDXRef-` prefix. Empty when none.
    pub fn problems(&self) -> Vec<Error> {
        let mut out = Vec::new();
        let schema = |path: String, message: String| Error::Schema {
            format: Format::Spdx,
            path,
            message,
        };
        for (i, p) in self.packages.iter().enumerate() {
            if !p.spdx_id.starts_with("SPDXRef-") {
                out.push(schema(
                    format!("packages[{i}].SPDXID"),
                    "must start with `SPDXRef-`".into(),
                ));
            }
            if p.download_location
                .as_deref()
                .unwrap_or_default()
                .is_empty()
            {
                out.push(Error::MissingField {
                    format: Format::Spdx,
                    path: format!("packages[{i}].downloadLocation"),
                });
            }
            for (field, v) in [
                ("licenseConcluded", &p.license_concluded),
                ("licenseDeclared", &p.license_declared),
            ] {
                if let Some(v) = v
                    && !is_license_expression(v)
                {
                    out.push(schema(
                        format!("packages[{i}].{field}"),
                        format!("`{}` is not an SPDX license expression", clip(v, 80)),
                    ));
                }
            }
        }
        let checksums = self
            .packages
            .iter()
            .enumerate()
            .flat_map(|(i, p)| {
                p.checksums
                    .iter()
                    .enumerate()
                    .map(move |(j, c)| (format!("packages[{i}].checksums[{j}]"), c))
            })
            .chain(self.files.iter().enumerate().flat_map(|(i, f)| {
                f.checksums
                    .iter()
                    .enumerate()
                    .map(move |(j, c)| (format!("files[{i}].checksums[{j}]"), c))
            }));
        for (path, c) in checksums {
            if let Some(alg) = c.intoto_algorithm() {
                let set = [(alg.to_owned(), c.checksum_value.clone())].into();
                if let Err(e) = check_digest_set(Format::Spdx, &path, &set) {
                    out.push(e);
                }
            }
        }
        for (i, r) in self.relationships.iter().enumerate() {
            if !RELATIONSHIP_TYPES.contains(&r.relationship_type.as_str()) {
                out.push(schema(
                    format!("relationships[{i}].relationshipType"),
                    format!(
                        "unknown relationship type `{}`",
                        clip(&r.relationship_type, 64)
                    ),
                ));
            }
        }
        out
    }

    /// The distinct declared or concluded license expressions of the packages, sorted.
    pub fn licenses(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .packages
            .iter()
            .flat_map(|p| [&p.license_declared, &p.license_concluded])
            .filter_map(|l| l.as_deref())
            .filter(|l| *l != "NOASSERTION" && *l != "NONE")
            .map(str::to_owned)
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

fn bytes_look_like_spdx3(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(4096)];
    head.windows(8).any(|w| w == b"\"@graph\"") || head.windows(10).any(|w| w == b"\"@context\"")
}

/// One element of an SPDX 3 `@graph`: its type, id, common fields, and every other property.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Spdx3Element {
    /// `software_Package`, `ai_AIPackage`, `dataset_DatasetPackage`, `Relationship`, ...
    #[serde(rename = "type", default)]
    pub element_type: String,
    /// The element's IRI (absent for blank nodes such as `CreationInfo`).
    #[serde(default)]
    pub spdx_id: Option<String>,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// Every other property (`software_downloadLocation`, `ai_domain`, `verifiedUsing`, ...).
    #[serde(flatten)]
    pub properties: BTreeMap<String, Value>,
}

impl Spdx3Element {
    /// A string property.
    pub fn str_property(&self, key: &str) -> Option<&str> {
        self.properties.get(key).and_then(Value::as_str)
    }

    /// The hashes in `verifiedUsing` as (in-toto algorithm name, hex) pairs.
    pub fn hashes(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Some(list) = self
            .properties
            .get("verifiedUsing")
            .and_then(Value::as_array)
        {
            for h in list {
                let alg = h
                    .get("algorithm")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let val = h
                    .get("hashValue")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if !alg.is_empty() && !val.is_empty() {
                    out.push((alg.replace('-', "_"), val.to_owned()));
                }
            }
        }
        out
    }
}

/// An SPDX 3.0 JSON-LD document: the `@graph` elements, with views for packages (including
/// the AI and Dataset profiles), relationships and licenses.
///
/// Look-ups by id and by relationship source are indexed, so views stay linear in the size of
/// the document whatever its shape.
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct Spdx3Document {
    /// The `@context` IRI (`https://spdx.org/rdf/3.0.1/spdx-context.jsonld`).
    pub context: String,
    elements: Vec<Spdx3Element>,
    by_id: HashMap<String, usize>,
    /// Relationship element indices by their `from`.
    out_edges: HashMap<String, Vec<usize>>,
}

#[derive(Deserialize)]
struct Spdx3Wire {
    #[serde(rename = "@context", default)]
    context: Value,
    #[serde(rename = "@graph", default)]
    graph: Vec<Spdx3Element>,
}

impl Spdx3Document {
    /// Parses SPDX 3.0 JSON-LD (the compacted form with `@context` and `@graph`).
    pub fn from_json_with(bytes: &[u8], limits: &Limits) -> Result<Self, Error> {
        let wire: Spdx3Wire = json::from_slice(Format::Spdx, bytes, limits)?;
        Self::from_wire(wire, limits)
    }

    /// Builds a document from a JSON value.
    pub fn from_value(value: &Value, limits: &Limits) -> Result<Self, Error> {
        json::check_value_depth(Format::Spdx, value, limits)?;
        let wire: Spdx3Wire = json::from_value(Format::Spdx, value)?;
        Self::from_wire(wire, limits)
    }

    fn from_wire(w: Spdx3Wire, limits: &Limits) -> Result<Self, Error> {
        let context = match &w.context {
            Value::String(s) => s.clone(),
            Value::Array(a) => a
                .iter()
                .filter_map(Value::as_str)
                .find(|s| s.contains("spdx"))
                .unwrap_or_default()
                .to_owned(),
            _ => String::new(),
        };
        if !(context.starts_with("https://spdx.org/rdf/3.")) {
            return Err(Error::Unsupported {
                format: Format::Spdx,
                found: clip(&context, 128),
                supported: "SPDX 3.x JSON-LD (@context https://spdx.org/rdf/3.x/spdx-context.jsonld)",
            });
        }
        if w.graph.is_empty() {
            return Err(Error::MissingField {
                format: Format::Spdx,
                path: "@graph".into(),
            });
        }
        limits.check_count(Format::Spdx, "@graph", w.graph.len())?;
        for (i, e) in w.graph.iter().enumerate() {
            if e.element_type.is_empty() {
                return Err(Error::MissingField {
                    format: Format::Spdx,
                    path: format!("@graph[{i}].type"),
                });
            }
        }
        let mut by_id = HashMap::new();
        let mut out_edges: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, e) in w.graph.iter().enumerate() {
            if let Some(id) = &e.spdx_id {
                by_id.entry(id.clone()).or_insert(i);
            }
            if e.element_type.ends_with("Relationship")
                && let Some(from) = e.str_property("from")
            {
                out_edges.entry(from.to_owned()).or_default().push(i);
            }
        }
        Ok(Spdx3Document {
            context,
            elements: w.graph,
            by_id,
            out_edges,
        })
    }

    /// Every element of `@graph`, in document order.
    pub fn elements(&self) -> &[Spdx3Element] {
        &self.elements
    }

    fn relationship_view(e: &Spdx3Element) -> (&str, &str, Vec<&str>) {
        let to = match e.properties.get("to") {
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
            Some(Value::String(s)) => vec![s.as_str()],
            _ => Vec::new(),
        };
        (
            e.str_property("from").unwrap_or_default(),
            e.str_property("relationshipType").unwrap_or_default(),
            to,
        )
    }

    /// Relationships starting at `spdx_id`, as (type, to) pairs.
    pub fn relationships_from(&self, spdx_id: &str) -> Vec<(&str, Vec<&str>)> {
        self.out_edges
            .get(spdx_id)
            .map(|idx| {
                idx.iter()
                    .map(|&i| {
                        let (_, kind, to) = Self::relationship_view(&self.elements[i]);
                        (kind, to)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Elements of one type.
    pub fn of_type<'a>(&'a self, element_type: &'a str) -> impl Iterator<Item = &'a Spdx3Element> {
        self.elements
            .iter()
            .filter(move |e| e.element_type == element_type)
    }

    /// Packages of every profile: `software_Package`, `ai_AIPackage`, `dataset_DatasetPackage`.
    pub fn packages(&self) -> impl Iterator<Item = &Spdx3Element> {
        self.elements.iter().filter(|e| {
            matches!(
                e.element_type.as_str(),
                "software_Package" | "ai_AIPackage" | "dataset_DatasetPackage"
            )
        })
    }

    /// AI packages (models).
    pub fn ai_packages(&self) -> impl Iterator<Item = &Spdx3Element> {
        self.of_type("ai_AIPackage")
    }

    /// Dataset packages.
    pub fn datasets(&self) -> impl Iterator<Item = &Spdx3Element> {
        self.of_type("dataset_DatasetPackage")
    }

    /// Relationships (plain and lifecycle-scoped) as (from, type, to) triples.
    pub fn relationships(&self) -> Vec<(&str, &str, Vec<&str>)> {
        self.elements
            .iter()
            .filter(|e| e.element_type.ends_with("Relationship"))
            .map(Self::relationship_view)
            .collect()
    }

    /// The element with this `spdxId`.
    pub fn element(&self, spdx_id: &str) -> Option<&Spdx3Element> {
        self.by_id.get(spdx_id).map(|&i| &self.elements[i])
    }

    /// Ids an element `contains`, transitively.
    pub fn contained(&self, spdx_id: &str) -> Vec<&str> {
        let mut seen: HashSet<&str> = HashSet::new();
        let mut out: Vec<&str> = Vec::new();
        let mut queue: Vec<&str> = vec![spdx_id];
        while let Some(id) = queue.pop() {
            for (kind, to) in self.relationships_from(id) {
                if kind != "contains" {
                    continue;
                }
                for t in to {
                    if seen.insert(t) {
                        out.push(t);
                        queue.push(t);
                    }
                }
            }
        }
        out
    }

    /// License expressions an element has (`hasDeclaredLicense` / `hasConcludedLicense`),
    /// resolved through the license elements of the graph.
    pub fn licenses_of(&self, spdx_id: &str) -> Vec<String> {
        let mut out = Vec::new();
        for (kind, to) in self.relationships_from(spdx_id) {
            if kind == "hasDeclaredLicense" || kind == "hasConcludedLicense" {
                for t in to {
                    let expr = self
                        .element(t)
                        .and_then(|e| e.str_property("simplelicensing_licenseExpression"))
                        .map(str::to_owned)
                        .unwrap_or_else(|| t.rsplit('/').next().unwrap_or(t).to_owned());
                    out.push(expr);
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }
}
