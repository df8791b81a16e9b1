//! Predicates by type: a typed view next to the JSON value conditions see, and summaries for
//! reports.

use serde::Serialize;
use serde_json::Value;

use crate::croissant::{DATASET_PROVENANCE_V1, DatasetProvenance};
use crate::cyclonedx::{self, Bom};
use crate::error::Error;
use crate::json::Limits;
use crate::modelcard::{MODEL_CARD_V1, ModelCard};
use crate::modelsigning::{MODEL_SIGNING_V1, ModelSigningManifest};
use crate::slsa::{self, Provenance, ProvenanceV01, ProvenanceV1, ProvenanceV02, VsaV1};
use crate::spdx::{self, Spdx3Document, SpdxDocument};
use crate::statement::Statement;

/// A typed view of a predicate.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum TypedPredicate {
    /// SLSA provenance (any version).
    SlsaProvenance(Box<Provenance>),
    /// SLSA VSA v1.
    Vsa(Box<VsaV1>),
    /// CycloneDX BOM.
    CycloneDx(Box<Bom>),
    /// SPDX 2.x document.
    Spdx(Box<SpdxDocument>),
    /// SPDX 3 JSON-LD document.
    Spdx3(Box<Spdx3Document>),
    /// Model card.
    ModelCard(Box<ModelCard>),
    /// Dataset provenance.
    DatasetProvenance(Box<DatasetProvenance>),
    /// Model-signing manifest.
    ModelSigning(Box<ModelSigningManifest>),
    /// A predicate type this crate has no typed view for; only [`Predicate::value`] applies.
    Other,
}

/// A predicate: its type, its typed view, and the JSON value Kyverno-style conditions see.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Predicate {
    /// The predicate type URI.
    pub predicate_type: String,
    /// The typed view.
    pub typed: TypedPredicate,
    /// The predicate as JSON, unchanged.
    pub value: Value,
}

fn is_cyclonedx(t: &str) -> bool {
    t == cyclonedx::CYCLONEDX_PREDICATE
        || t.starts_with("https://cyclonedx.org/bom/")
        || t == "https://cyclonedx.org/schema"
        || t == "cyclonedx"
}

fn is_spdx(t: &str) -> bool {
    t == spdx::SPDX_PREDICATE || t.starts_with("https://spdx.dev/Document/") || t == "spdx"
}

impl Predicate {
    /// Parses `value` as a predicate of `predicate_type`. Known types that fail to parse are an
    /// error (fail closed); unknown types give [`TypedPredicate::Other`].
    ///
    /// ```
    /// use provenance_attest::{Predicate, TypedPredicate};
    /// let v = serde_json::json!({"buildDefinition": {"buildType": "https://t", "externalParameters": {}},
    ///   "runDetails": {"builder": {"id": "https://b"}}});
    /// let p = Predicate::parse("https://slsa.dev/provenance/v1", v, &Default::default()).unwrap();
    /// assert_eq!(p.summary().builder.as_deref(), Some("https://b"));
    /// ```
    pub fn parse(predicate_type: &str, value: Value, limits: &Limits) -> Result<Self, Error> {
        let t = predicate_type;
        let typed = match t {
            slsa::SLSA_PROVENANCE_V01 => TypedPredicate::SlsaProvenance(Box::new(Provenance::V01(
                ProvenanceV01::from_value(&value, limits)?,
            ))),
            slsa::SLSA_PROVENANCE_V02 => TypedPredicate::SlsaProvenance(Box::new(Provenance::V02(
                ProvenanceV02::from_value(&value, limits)?,
            ))),
            slsa::SLSA_PROVENANCE_V1 => TypedPredicate::SlsaProvenance(Box::new(Provenance::V1(
                ProvenanceV1::from_value(&value, limits)?,
            ))),
            slsa::SLSA_VSA_V1 => TypedPredicate::Vsa(Box::new(VsaV1::from_value(&value, limits)?)),
            MODEL_CARD_V1 => {
                TypedPredicate::ModelCard(Box::new(ModelCard::from_value(&value, limits)?))
            }
            DATASET_PROVENANCE_V1 => TypedPredicate::DatasetProvenance(Box::new(
                DatasetProvenance::from_value(&value, limits)?,
            )),
            MODEL_SIGNING_V1 => TypedPredicate::ModelSigning(Box::new(
                ModelSigningManifest::from_value(&value, limits)?,
            )),
            t if is_cyclonedx(t) => {
                TypedPredicate::CycloneDx(Box::new(Bom::from_value(&value, limits)?))
            }
            t if is_spdx(t) => {
                if value.get("@graph").is_some() {
                    TypedPredicate::Spdx3(Box::new(Spdx3Document::from_value(&value, limits)?))
                } else {
                    TypedPredicate::Spdx(Box::new(SpdxDocument::from_value(&value, limits)?))
                }
            }
            _ => TypedPredicate::Other,
        };
        Ok(Predicate {
            predicate_type: predicate_type.to_owned(),
            typed,
            value,
        })
    }

    /// Parses the predicate of a Statement.
    pub fn from_statement(statement: &Statement, limits: &Limits) -> Result<Self, Error> {
        Self::parse(
            &statement.predicate_type,
            statement.predicate.clone(),
            limits,
        )
    }

    /// A summary for reports.
    pub fn summary(&self) -> Summary {
        let mut s = Summary {
            predicate_type: self.predicate_type.clone(),
            ..Default::default()
        };
        match &self.typed {
            TypedPredicate::SlsaProvenance(p) => {
                s.builder = Some(p.builder_id().to_owned());
                s.build_type = Some(p.build_type().to_owned());
                s.components = p.inputs().len();
            }
            TypedPredicate::Vsa(v) => {
                s.builder = Some(v.verifier.id.clone());
                s.verification_passed = Some(v.passed());
            }
            TypedPredicate::CycloneDx(b) => {
                s.components = b.all_components().count();
                s.licenses = b.licenses();
                s.models = b.models().map(|c| c.name.clone()).collect();
                s.datasets = b.data_components().map(|c| c.name.clone()).collect();
                for m in b.models() {
                    if let Some(mp) = m
                        .model_card
                        .as_ref()
                        .and_then(|c| c.model_parameters.as_ref())
                    {
                        for d in &mp.datasets {
                            if let cyclonedx::ModelDataset::Inline(x) = d
                                && let Some(n) = &x.name
                            {
                                s.datasets.push(n.clone());
                            }
                        }
                    }
                }
            }
            TypedPredicate::Spdx(d) => {
                s.components = d.packages.len();
                s.licenses = d.licenses();
            }
            TypedPredicate::Spdx3(d) => {
                s.components = d.packages().count();
                s.models = d.ai_packages().filter_map(|e| e.name.clone()).collect();
                s.datasets = d.datasets().filter_map(|e| e.name.clone()).collect();
                let mut l: Vec<String> = d
                    .packages()
                    .filter_map(|p| p.spdx_id.as_deref())
                    .flat_map(|id| d.licenses_of(id))
                    .collect();
                l.sort();
                l.dedup();
                s.licenses = l;
            }
            TypedPredicate::ModelCard(c) => {
                s.models = vec![c.name.clone()];
                s.datasets = c.training_datasets.iter().map(|d| d.name.clone()).collect();
                s.licenses = c.license.iter().cloned().collect();
            }
            TypedPredicate::DatasetProvenance(d) => {
                s.datasets = vec![d.name.clone()];
                s.licenses = vec![d.license.clone()];
            }
            TypedPredicate::ModelSigning(m) => {
                s.components = m.resources.len();
            }
            TypedPredicate::Other => {}
        }
        s.datasets.sort();
        s.datasets.dedup();
        s
    }
}

/// What a report shows about a predicate.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[non_exhaustive]
pub struct Summary {
    /// The predicate type.
    pub predicate_type: String,
    /// Builder id (SLSA) or verifier id (VSA).
    pub builder: Option<String>,
    /// Build type (SLSA).
    pub build_type: Option<String>,
    /// Components, packages, build inputs or model files, by format.
    pub components: usize,
    /// Distinct licenses.
    pub licenses: Vec<String>,
    /// Model names.
    pub models: Vec<String>,
    /// Dataset names.
    pub datasets: Vec<String>,
    /// VSA result.
    pub verification_passed: Option<bool>,
}
