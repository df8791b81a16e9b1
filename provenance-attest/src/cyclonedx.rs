//! CycloneDX 1.2-1.6 BOMs (JSON and XML), including ML-BOMs: `machine-learning-model` and `data`
//! components, `modelCard`, licenses, hashes and `formulation`.
//!
//! These are this crate's own serde types, written from the CycloneDX JSON schemas: they accept
//! every shape the schemas allow across 1.2-1.6 (e.g. `metadata.tools` as an array in 1.4 and
//! an object in 1.5+, `component.data` as an array), ignore fields they do not model, and keep
//! free-form parts as [`Value`].

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Format, clip};
use crate::json::{self, Limits, null_default};

/// Predicate type cosign uses for CycloneDX attestations (`cosign attest --type cyclonedx`).
pub const CYCLONEDX_PREDICATE: &str = "https://cyclonedx.org/bom";

/// Spec versions this module parses.
pub const SUPPORTED_VERSIONS: &[&str] = &["1.2", "1.3", "1.4", "1.5", "1.6"];

/// A CycloneDX BOM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Bom {
    /// Always `CycloneDX`.
    #[serde(default)]
    pub bom_format: String,
    /// `1.2` to `1.6`.
    #[serde(default)]
    pub spec_version: String,
    /// `urn:uuid:...`.
    #[serde(default)]
    pub serial_number: Option<String>,
    /// Revision of this BOM.
    #[serde(default)]
    pub version: Option<u64>,
    /// Metadata: timestamp, tools, the component the BOM describes.
    #[serde(default)]
    pub metadata: Option<Metadata>,
    /// Top-level components (each may nest more).
    #[serde(default, deserialize_with = "null_default")]
    pub components: Vec<Component>,
    /// Services, kept as JSON.
    #[serde(default, deserialize_with = "null_default")]
    pub services: Vec<Value>,
    /// External references of the BOM.
    #[serde(default, deserialize_with = "null_default")]
    pub external_references: Vec<ExternalReference>,
    /// Dependency graph.
    #[serde(default, deserialize_with = "null_default")]
    pub dependencies: Vec<Dependency>,
    /// How components were made (1.5+): formulas with components, workflows, tasks.
    #[serde(default, deserialize_with = "null_default")]
    pub formulation: Vec<Formula>,
    /// Properties.
    #[serde(default, deserialize_with = "null_default")]
    pub properties: Vec<Property>,
}

/// BOM metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Metadata {
    /// Creation time, as written.
    #[serde(default)]
    pub timestamp: Option<String>,
    /// Tools: an array (<= 1.4) or an object with `components` and `services` (1.5+).
    #[serde(default)]
    pub tools: Value,
    /// The component this BOM describes.
    #[serde(default)]
    pub component: Option<Box<Component>>,
    /// Manufacturer of the component (`manufacture` before 1.6).
    #[serde(default, alias = "manufacture")]
    pub manufacturer: Option<OrganizationalEntity>,
    /// Supplier.
    #[serde(default)]
    pub supplier: Option<OrganizationalEntity>,
    /// Licenses of the BOM itself.
    #[serde(default, deserialize_with = "null_default")]
    pub licenses: Vec<LicenseChoice>,
    /// Properties.
    #[serde(default, deserialize_with = "null_default")]
    pub properties: Vec<Property>,
}

/// An organization.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct OrganizationalEntity {
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// URLs.
    #[serde(default, deserialize_with = "null_default")]
    pub url: Vec<String>,
    /// Contacts, as JSON.
    #[serde(default)]
    pub contact: Value,
}

/// A component: library, application, container, `machine-learning-model`, `data`, ...
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Component {
    /// Component type (`library`, `machine-learning-model`, `data`, ...).
    #[serde(rename = "type", default)]
    pub component_type: String,
    /// MIME type.
    #[serde(rename = "mime-type", default)]
    pub mime_type: Option<String>,
    /// Identifier within the BOM.
    #[serde(rename = "bom-ref", default)]
    pub bom_ref: Option<String>,
    /// Supplier.
    #[serde(default)]
    pub supplier: Option<OrganizationalEntity>,
    /// Manufacturer (1.6).
    #[serde(default)]
    pub manufacturer: Option<OrganizationalEntity>,
    /// Author (free text).
    #[serde(default)]
    pub author: Option<String>,
    /// Publisher.
    #[serde(default)]
    pub publisher: Option<String>,
    /// Group (namespace, Maven group id, Hugging Face organization).
    #[serde(default)]
    pub group: Option<String>,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Version.
    #[serde(default)]
    pub version: Option<String>,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// `required`, `optional` or `excluded`.
    #[serde(default)]
    pub scope: Option<String>,
    /// Hashes of the component.
    #[serde(default, deserialize_with = "null_default")]
    pub hashes: Vec<Hash>,
    /// Licenses.
    #[serde(default, deserialize_with = "null_default")]
    pub licenses: Vec<LicenseChoice>,
    /// Copyright text.
    #[serde(default)]
    pub copyright: Option<String>,
    /// CPE.
    #[serde(default)]
    pub cpe: Option<String>,
    /// Package URL.
    #[serde(default)]
    pub purl: Option<String>,
    /// Pedigree (ancestors, patches), as JSON.
    #[serde(default)]
    pub pedigree: Value,
    /// External references.
    #[serde(default, deserialize_with = "null_default")]
    pub external_references: Vec<ExternalReference>,
    /// Properties.
    #[serde(default, deserialize_with = "null_default")]
    pub properties: Vec<Property>,
    /// Nested components.
    #[serde(default, deserialize_with = "null_default")]
    pub components: Vec<Component>,
    /// Evidence, as JSON.
    #[serde(default)]
    pub evidence: Value,
    /// The model card of a `machine-learning-model` (1.5+).
    #[serde(default)]
    pub model_card: Option<ModelCard>,
    /// The data of a `data` component (1.5+): an array, as the schema says.
    #[serde(default, deserialize_with = "null_default")]
    pub data: Vec<ComponentData>,
}

/// A hash of a component or reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[non_exhaustive]
pub struct Hash {
    /// Algorithm as CycloneDX names it (`SHA-256`, `SHA-512`, `BLAKE3`, ...).
    #[serde(default)]
    pub alg: String,
    /// Hex value.
    #[serde(default)]
    pub content: String,
}

impl Hash {
    /// The in-toto digest-set name of the algorithm (`sha256`), if it has one.
    pub fn intoto_algorithm(&self) -> Option<&'static str> {
        Some(match self.alg.as_str() {
            "MD5" => "md5",
            "SHA-1" => "sha1",
            "SHA-256" => "sha256",
            "SHA-384" => "sha384",
            "SHA-512" => "sha512",
            "SHA3-256" => "sha3_256",
            "SHA3-384" => "sha3_384",
            "SHA3-512" => "sha3_512",
            _ => return None,
        })
    }
}

/// One entry of a `licenses` array: a license or an SPDX expression.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[non_exhaustive]
pub struct LicenseChoice {
    /// A single license.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<License>,
    /// An SPDX license expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
}

impl LicenseChoice {
    /// The SPDX id, the expression, or the license name, whichever is present first.
    pub fn label(&self) -> Option<&str> {
        if let Some(e) = &self.expression {
            return Some(e);
        }
        let l = self.license.as_ref()?;
        l.id.as_deref().or(l.name.as_deref())
    }
}

/// A license.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[non_exhaustive]
pub struct License {
    /// SPDX license id.
    #[serde(default)]
    pub id: Option<String>,
    /// Name, when not an SPDX id.
    #[serde(default)]
    pub name: Option<String>,
    /// URL.
    #[serde(default)]
    pub url: Option<String>,
    /// `declared` or `concluded` (1.6).
    #[serde(default)]
    pub acknowledgement: Option<String>,
}

/// An external reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[non_exhaustive]
pub struct ExternalReference {
    /// Type (`vcs`, `website`, `distribution`, `model-card`, ...).
    #[serde(rename = "type", default)]
    pub reference_type: String,
    /// URL.
    #[serde(default)]
    pub url: String,
    /// Comment.
    #[serde(default)]
    pub comment: Option<String>,
    /// Hashes of what the URL points at.
    #[serde(default, deserialize_with = "null_default")]
    pub hashes: Vec<Hash>,
}

/// A name-value property.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[non_exhaustive]
pub struct Property {
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Value.
    #[serde(default)]
    pub value: Option<String>,
}

/// A dependency-graph entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Dependency {
    /// The `bom-ref` of the dependent.
    #[serde(rename = "ref", default)]
    pub reference: String,
    /// `bom-ref`s it depends on.
    #[serde(default, deserialize_with = "null_default")]
    pub depends_on: Vec<String>,
}

/// A formula (1.5+): how components were made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[non_exhaustive]
pub struct Formula {
    /// Identifier.
    #[serde(rename = "bom-ref", default)]
    pub bom_ref: Option<String>,
    /// Components used by the formula (tools, inputs).
    #[serde(default, deserialize_with = "null_default")]
    pub components: Vec<Component>,
    /// Services, as JSON.
    #[serde(default, deserialize_with = "null_default")]
    pub services: Vec<Value>,
    /// Workflows (tasks, steps, inputs, outputs), as JSON.
    #[serde(default, deserialize_with = "null_default")]
    pub workflows: Vec<Value>,
    /// Properties.
    #[serde(default, deserialize_with = "null_default")]
    pub properties: Vec<Property>,
}

/// The data of a `data` component or an inline model-card dataset (1.5+).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ComponentData {
    /// Identifier.
    #[serde(rename = "bom-ref", default)]
    pub bom_ref: Option<String>,
    /// `source-code`, `configuration`, `dataset`, `definition`, `other`.
    #[serde(rename = "type", default)]
    pub data_type: String,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// Contents: attachment, URL, properties.
    #[serde(default)]
    pub contents: Option<DataContents>,
    /// Classification (`public`, `confidential`, ...).
    #[serde(default)]
    pub classification: Option<String>,
    /// Kinds of sensitive data present.
    #[serde(default, deserialize_with = "null_default")]
    pub sensitive_data: Vec<String>,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Governance (custodians, stewards, owners), as JSON.
    #[serde(default)]
    pub governance: Value,
    /// Graphics, as JSON.
    #[serde(default)]
    pub graphics: Value,
}

/// Where data is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[non_exhaustive]
pub struct DataContents {
    /// URL of the data.
    #[serde(default)]
    pub url: Option<String>,
    /// Inline attachment, as JSON.
    #[serde(default)]
    pub attachment: Value,
    /// Properties.
    #[serde(default, deserialize_with = "null_default")]
    pub properties: Vec<Property>,
}

/// A model-card dataset: a reference to a `data` component, or inline data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
#[non_exhaustive]
pub enum ModelDataset {
    /// `{"ref": "<bom-ref>"}`.
    Ref {
        /// The `bom-ref` of a `data` component.
        #[serde(rename = "ref")]
        reference: String,
    },
    /// Inline data.
    Inline(Box<ComponentData>),
}

/// A CycloneDX model card (1.5+).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ModelCard {
    /// Identifier.
    #[serde(rename = "bom-ref", default)]
    pub bom_ref: Option<String>,
    /// Approach, task, architecture, datasets, inputs and outputs.
    #[serde(default)]
    pub model_parameters: Option<ModelParameters>,
    /// Performance metrics.
    #[serde(default)]
    pub quantitative_analysis: Option<QuantitativeAnalysis>,
    /// Users, use cases, limitations, ethics, fairness, environment.
    #[serde(default)]
    pub considerations: Option<Considerations>,
    /// Properties.
    #[serde(default, deserialize_with = "null_default")]
    pub properties: Vec<Property>,
}

/// `modelCard.modelParameters`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ModelParameters {
    /// `{"type": "supervised"}` and so on, as JSON.
    #[serde(default)]
    pub approach: Value,
    /// The task (`text-generation`, ...).
    #[serde(default)]
    pub task: Option<String>,
    /// Architecture family.
    #[serde(default)]
    pub architecture_family: Option<String>,
    /// Model architecture.
    #[serde(default)]
    pub model_architecture: Option<String>,
    /// Datasets used to train or evaluate.
    #[serde(default, deserialize_with = "null_default")]
    pub datasets: Vec<ModelDataset>,
    /// Input formats, as JSON (`[{"format": "string"}]`).
    #[serde(default, deserialize_with = "null_default")]
    pub inputs: Vec<Value>,
    /// Output formats, as JSON.
    #[serde(default, deserialize_with = "null_default")]
    pub outputs: Vec<Value>,
}

/// `modelCard.quantitativeAnalysis`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct QuantitativeAnalysis {
    /// Performance metrics.
    #[serde(default, deserialize_with = "null_default")]
    pub performance_metrics: Vec<PerformanceMetric>,
    /// Graphics, as JSON.
    #[serde(default)]
    pub graphics: Value,
}

/// One performance metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct PerformanceMetric {
    /// Metric type (`accuracy`, ...).
    #[serde(rename = "type", default)]
    pub metric_type: Option<String>,
    /// Value, as text.
    #[serde(default)]
    pub value: Option<String>,
    /// Slice it was computed on.
    #[serde(default)]
    pub slice: Option<String>,
    /// Confidence interval, as JSON.
    #[serde(default)]
    pub confidence_interval: Value,
}

/// `modelCard.considerations`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Considerations {
    /// Intended users.
    #[serde(default, deserialize_with = "null_default")]
    pub users: Vec<String>,
    /// Intended use cases.
    #[serde(default, deserialize_with = "null_default")]
    pub use_cases: Vec<String>,
    /// Technical limitations.
    #[serde(default, deserialize_with = "null_default")]
    pub technical_limitations: Vec<String>,
    /// Performance trade-offs.
    #[serde(default, deserialize_with = "null_default")]
    pub performance_tradeoffs: Vec<String>,
    /// Ethical considerations (`name`, `mitigationStrategy`), as JSON.
    #[serde(default, deserialize_with = "null_default")]
    pub ethical_considerations: Vec<Value>,
    /// Fairness assessments, as JSON.
    #[serde(default, deserialize_with = "null_default")]
    pub fairness_assessments: Vec<Value>,
    /// Environmental considerations (1.6: energy, CO2), as JSON.
    #[serde(default)]
    pub environmental_considerations: Value,
}

impl Bom {
    /// Parses a CycloneDX JSON BOM with [`Limits::default`].
    ///
    /// ```
    /// let bom = provenance_attest::cyclonedx::Bom::from_json(br#"{"bomFormat":"CycloneDX",
    ///   "specVersion":"1.6","components":[{"type":"machine-learning-model","name":"m",
    ///   "modelCard":{"modelParameters":{"task":"text-generation"}}}]}"#).unwrap();
    /// assert_eq!(bom.models().count(), 1);
    /// ```
    pub fn from_json(bytes: &[u8]) -> Result<Self, Error> {
        Self::from_json_with(bytes, &Limits::default())
    }

    /// Parses a CycloneDX JSON BOM under explicit limits.
    pub fn from_json_with(bytes: &[u8], limits: &Limits) -> Result<Self, Error> {
        let trimmed = bytes.trim_ascii_start();
        if trimmed.starts_with(b"<") {
            return Err(Error::Unsupported {
                format: Format::CycloneDx,
                found: "XML".into(),
                supported: "CycloneDX JSON here; use cyclonedx::Bom::from_xml for XML",
            });
        }
        let bom: Bom = json::from_slice(Format::CycloneDx, bytes, limits)?;
        bom.check(limits)?;
        Ok(bom)
    }

    /// Parses a CycloneDX XML BOM (1.2-1.6) with [`Limits::default`].
    ///
    /// The XML is read into the JSON shape of the same BOM (list wrappers become arrays,
    /// `<hash alg>` becomes `{alg, content}`, and so on) and then goes through the same types
    /// and checks as JSON. DOCTYPEs are refused (no entity expansion).
    ///
    /// ```
    /// let bom = provenance_attest::cyclonedx::Bom::from_xml(r#"<?xml version="1.0"?>
    /// <bom xmlns="http://cyclonedx.org/schema/bom/1.6" version="1"><components>
    ///   <component type="library"><name>a</name>
    ///     <hashes><hash alg="SHA-256">2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824</hash></hashes>
    ///     <licenses><license><id>MIT</id></license></licenses></component>
    /// </components></bom>"#).unwrap();
    /// assert_eq!(bom.licenses(), ["MIT"]);
    /// assert_eq!(bom.components[0].hashes[0].alg, "SHA-256");
    /// ```
    pub fn from_xml(xml: &str) -> Result<Self, Error> {
        Self::from_xml_with(xml, &Limits::default())
    }

    /// Parses a CycloneDX XML BOM under explicit limits.
    pub fn from_xml_with(xml: &str, limits: &Limits) -> Result<Self, Error> {
        let value = crate::cyclonedx_xml::xml_to_value(xml, limits)?;
        Self::from_value(&value, limits)
    }

    /// The JSON value of a CycloneDX XML BOM, as conditions would see the JSON encoding.
    pub fn xml_to_json(xml: &str, limits: &Limits) -> Result<Value, Error> {
        crate::cyclonedx_xml::xml_to_value(xml, limits)
    }

    /// Builds a BOM from a JSON value (an attestation predicate).
    pub fn from_value(value: &Value, limits: &Limits) -> Result<Self, Error> {
        json::check_value_depth(Format::CycloneDx, value, limits)?;
        let bom: Bom = json::from_value(Format::CycloneDx, value)?;
        bom.check(limits)?;
        Ok(bom)
    }

    fn check(&self, limits: &Limits) -> Result<(), Error> {
        if self.bom_format != "CycloneDX" {
            return Err(Error::Schema {
                format: Format::CycloneDx,
                path: "bomFormat".into(),
                message: format!(
                    "expected `CycloneDX`, found `{}`",
                    clip(&self.bom_format, 64)
                ),
            });
        }
        if !SUPPORTED_VERSIONS.contains(&self.spec_version.as_str()) {
            return Err(Error::Unsupported {
                format: Format::CycloneDx,
                found: clip(&self.spec_version, 32),
                supported: "specVersion 1.2, 1.3, 1.4, 1.5, 1.6",
            });
        }
        limits.check_count(
            Format::CycloneDx,
            "components",
            self.all_components().count(),
        )?;
        limits.check_count(Format::CycloneDx, "dependencies", self.dependencies.len())?;
        Ok(())
    }

    /// Every component, depth-first: `metadata.component`, `components` with their nested
    /// components, and the components of `formulation`.
    pub fn all_components(&self) -> impl Iterator<Item = &Component> {
        let mut stack: Vec<&Component> = Vec::new();
        for f in self.formulation.iter().rev() {
            stack.extend(f.components.iter().rev());
        }
        stack.extend(self.components.iter().rev());
        if let Some(c) = self.metadata.as_ref().and_then(|m| m.component.as_deref()) {
            stack.push(c);
        }
        std::iter::from_fn(move || {
            let c = stack.pop()?;
            stack.extend(c.components.iter().rev());
            Some(c)
        })
    }

    /// Components of type `machine-learning-model`.
    pub fn models(&self) -> impl Iterator<Item = &Component> {
        self.all_components()
            .filter(|c| c.component_type == "machine-learning-model")
    }

    /// Components of type `data`.
    pub fn data_components(&self) -> impl Iterator<Item = &Component> {
        self.all_components().filter(|c| c.component_type == "data")
    }

    /// The distinct license labels (SPDX ids, expressions, names) of all components, sorted.
    pub fn licenses(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .all_components()
            .flat_map(|c| c.licenses.iter())
            .filter_map(|l| l.label().map(str::to_owned))
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Finds a component by `bom-ref`.
    pub fn component_by_ref(&self, bom_ref: &str) -> Option<&Component> {
        self.all_components()
            .find(|c| c.bom_ref.as_deref() == Some(bom_ref))
    }
}
