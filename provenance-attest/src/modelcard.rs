//! The `https://mlcommons.org/model-card/v1` predicate, and mappings onto it from CycloneDX
//! ML-BOM model cards and Hugging Face model cards.
//!
//! The schema is specified in `docs/model-card-predicate.md`.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::cyclonedx::{self, Bom, Component, ModelDataset};
use crate::error::{Error, Format};
use crate::huggingface::HfCard;
use crate::json::{self, Limits, null_default};
use crate::spdx::{Spdx3Document, Spdx3Element};
use crate::statement::{DigestSet, check_digest_set};

/// Predicate type of the model card predicate.
pub const MODEL_CARD_V1: &str = "https://mlcommons.org/model-card/v1";

/// An owner of a model: a person, team or organization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[non_exhaustive]
pub struct Owner {
    /// Name.
    pub name: String,
    /// Contact (e-mail or URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<String>,
}

/// A model another model derives from (fine-tune, quantization, merge).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[non_exhaustive]
pub struct ModelRef {
    /// Name, e.g. a Hugging Face repository id.
    pub name: String,
    /// Where it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// Its digests.
    #[serde(default, skip_serializing_if = "DigestSet::is_empty")]
    pub digest: DigestSet,
}

/// Intended use of a model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct IntendedUse {
    /// Free-text summary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Intended users.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub users: Vec<String>,
    /// Intended use cases.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub use_cases: Vec<String>,
    /// Uses that are out of scope.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub out_of_scope: Vec<String>,
}

/// A dataset a model was trained or evaluated on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[non_exhaustive]
pub struct DatasetRef {
    /// Name, e.g. a Hugging Face dataset id.
    #[serde(default)]
    pub name: String,
    /// Where it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// Digests of the dataset (of its manifest or archive); what policies should pin.
    #[serde(default, skip_serializing_if = "DigestSet::is_empty")]
    pub digest: DigestSet,
    /// SPDX license expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    /// Split used (`train`, `test`), for evaluations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<String>,
}

/// One metric of an evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[non_exhaustive]
pub struct Metric {
    /// Metric type (`accuracy`, `f1`, ...).
    #[serde(rename = "type")]
    pub metric_type: String,
    /// The value: a number or a string, as the source wrote it.
    #[serde(default)]
    pub value: Value,
    /// Slice the metric was computed on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slice: Option<String>,
}

/// One evaluation of a model: a task, a dataset, metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[non_exhaustive]
pub struct Evaluation {
    /// Task (`image-classification`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    /// Dataset evaluated on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<DatasetRef>,
    /// Metrics.
    #[serde(default, deserialize_with = "null_default")]
    pub metrics: Vec<Metric>,
}

/// The `https://mlcommons.org/model-card/v1` predicate.
///
/// ```
/// use provenance_attest::modelcard::ModelCard;
/// let v = serde_json::json!({"name": "llama-3-8b-ft", "license": "llama3",
///   "trainingDatasets": [{"name": "corp-tickets", "digest": {"sha256":
///   "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"}}]});
/// let card = ModelCard::from_value(&v, &Default::default()).unwrap();
/// assert!(card.undigested_datasets().is_empty());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ModelCard {
    /// Model name (required).
    #[serde(default)]
    pub name: String,
    /// Model version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Digests of the model artifact (weights or OCI manifest).
    #[serde(default, skip_serializing_if = "DigestSet::is_empty")]
    pub digest: DigestSet,
    /// Owners.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub owners: Vec<Owner>,
    /// SPDX license expression (or a `LicenseRef-` / name when not on the SPDX list).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    /// Task (`text-generation`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    /// Models this one derives from.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub base_models: Vec<ModelRef>,
    /// Intended use.
    #[serde(default, deserialize_with = "null_default")]
    pub intended_use: IntendedUse,
    /// Datasets the model was trained on.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub training_datasets: Vec<DatasetRef>,
    /// Evaluations.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub evaluation: Vec<Evaluation>,
    /// Known limitations.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub limitations: Vec<String>,
    /// Ethical considerations and their mitigations.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub ethical_considerations: Vec<String>,
}

impl ModelCard {
    /// Parses and checks the predicate: `name` is required; every digest set present must be
    /// well-formed (`trainingDatasets[0].digest.sha256`).
    pub fn from_value(value: &Value, limits: &Limits) -> Result<Self, Error> {
        let f = Format::ModelCard;
        json::check_value_depth(f, value, limits)?;
        let card: ModelCard = json::from_value(f, value)?;
        if card.name.trim().is_empty() {
            return Err(Error::MissingField {
                format: f,
                path: "name".into(),
            });
        }
        if !card.digest.is_empty() {
            check_digest_set(f, "digest", &card.digest)?;
        }
        limits.check_count(f, "trainingDatasets", card.training_datasets.len())?;
        for (i, d) in card.training_datasets.iter().enumerate() {
            if d.name.trim().is_empty() {
                return Err(Error::MissingField {
                    format: f,
                    path: format!("trainingDatasets[{i}].name"),
                });
            }
            if !d.digest.is_empty() {
                check_digest_set(f, &format!("trainingDatasets[{i}].digest"), &d.digest)?;
            }
        }
        for (i, m) in card.base_models.iter().enumerate() {
            if !m.digest.is_empty() {
                check_digest_set(f, &format!("baseModels[{i}].digest"), &m.digest)?;
            }
        }
        Ok(card)
    }

    /// Parses the predicate from JSON text.
    pub fn from_json_with(bytes: &[u8], limits: &Limits) -> Result<Self, Error> {
        let v: Value = json::from_slice(Format::ModelCard, bytes, limits)?;
        Self::from_value(&v, limits)
    }

    /// The predicate as JSON, as conditions see it.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// Names of training datasets that carry no digest: a policy that pins data should refuse
    /// a card where this is not empty.
    pub fn undigested_datasets(&self) -> Vec<&str> {
        self.training_datasets
            .iter()
            .filter(|d| d.digest.is_empty())
            .map(|d| d.name.as_str())
            .collect()
    }

    /// Maps a CycloneDX `machine-learning-model` component (and its `modelCard`) onto this
    /// predicate. `bom` resolves dataset references (`{"ref": ...}`) to `data` components.
    ///
    /// Mapping: name/version/hashes/licenses/publisher-supplier-manufacturer of the component;
    /// `modelParameters.task` and `.datasets`; `considerations.users`, `.useCases`,
    /// `.technicalLimitations`, `.ethicalConsiderations`; `quantitativeAnalysis` metrics as one
    /// evaluation.
    pub fn from_cyclonedx(component: &Component, bom: Option<&Bom>) -> Self {
        let mut card = ModelCard {
            name: match &component.group {
                Some(g) if !g.is_empty() => format!("{g}/{}", component.name),
                _ => component.name.clone(),
            },
            version: component.version.clone(),
            digest: hashes_to_digest_set(&component.hashes),
            ..Default::default()
        };
        let mut owners: Vec<Owner> = Vec::new();
        let mut add_owner = |name: Option<&str>| {
            if let Some(n) = name.filter(|n| !n.is_empty())
                && !owners.iter().any(|o| o.name == n)
            {
                owners.push(Owner {
                    name: n.to_owned(),
                    contact: None,
                });
            }
        };
        add_owner(component.publisher.as_deref());
        add_owner(
            component
                .manufacturer
                .as_ref()
                .and_then(|m| m.name.as_deref()),
        );
        add_owner(component.supplier.as_ref().and_then(|m| m.name.as_deref()));
        add_owner(component.author.as_deref());
        card.owners = owners;
        let labels: Vec<&str> = component
            .licenses
            .iter()
            .filter_map(|l| l.label())
            .collect();
        card.license = join_licenses(&labels);
        card.intended_use.description = component.description.clone();
        if let Some(mc) = &component.model_card {
            if let Some(mp) = &mc.model_parameters {
                card.task = mp.task.clone();
                // Index bom-refs once: a model card may reference many datasets in a big BOM.
                let by_ref: HashMap<&str, &Component> = match bom {
                    Some(b) if !mp.datasets.is_empty() => b
                        .all_components()
                        .filter_map(|c| c.bom_ref.as_deref().map(|r| (r, c)))
                        .collect(),
                    _ => HashMap::new(),
                };
                for d in &mp.datasets {
                    card.training_datasets
                        .push(dataset_from_cyclonedx(d, &by_ref));
                }
            }
            if let Some(c) = &mc.considerations {
                card.intended_use.users = c.users.clone();
                card.intended_use.use_cases = c.use_cases.clone();
                card.limitations = c.technical_limitations.clone();
                card.ethical_considerations = c
                    .ethical_considerations
                    .iter()
                    .filter_map(|e| {
                        let name = e.get("name").and_then(Value::as_str)?;
                        Some(match e.get("mitigationStrategy").and_then(Value::as_str) {
                            Some(m) => format!("{name} (mitigation: {m})"),
                            None => name.to_owned(),
                        })
                    })
                    .collect();
            }
            if let Some(qa) = &mc.quantitative_analysis
                && !qa.performance_metrics.is_empty()
            {
                card.evaluation.push(Evaluation {
                    task: card.task.clone(),
                    dataset: None,
                    metrics: qa
                        .performance_metrics
                        .iter()
                        .map(|m| Metric {
                            metric_type: m.metric_type.clone().unwrap_or_default(),
                            value: m.value.clone().map(Value::String).unwrap_or(Value::Null),
                            slice: m.slice.clone(),
                        })
                        .collect(),
                });
            }
        }
        card
    }

    /// Maps a Hugging Face model card's front matter onto this predicate. `name` is used when
    /// the card's `model-index` does not name the model (cards rarely carry their repo id).
    ///
    /// Mapping: `license` (or `license_name` when `other`), `datasets`, `base_model`,
    /// `pipeline_tag`, `model-index` results that name a dataset (as the Hugging Face library
    /// does, results without a dataset are dropped).
    pub fn from_hf_card(card: &HfCard, name: &str) -> Self {
        let index_name = card
            .model_index
            .first()
            .map(|m| m.name.as_str())
            .filter(|n| !n.is_empty());
        let license = if card.license.iter().any(|l| l == "other") {
            card.license_name
                .clone()
                .or_else(|| join_licenses(&["other"]))
        } else {
            let labels: Vec<&str> = card.license.iter().map(String::as_str).collect();
            join_licenses(&labels)
        };
        let mut evaluation = Vec::new();
        for entry in &card.model_index {
            for r in &entry.results {
                let Some(ds) = &r.dataset else { continue };
                evaluation.push(Evaluation {
                    task: r.task.as_ref().and_then(|t| t.task_type.clone()),
                    dataset: Some(DatasetRef {
                        name: ds
                            .name
                            .clone()
                            .or_else(|| ds.dataset_type.clone())
                            .unwrap_or_default(),
                        split: ds.split.clone(),
                        ..Default::default()
                    }),
                    metrics: r
                        .metrics
                        .iter()
                        .map(|m| Metric {
                            metric_type: m.metric_type.clone(),
                            value: m.value.clone(),
                            slice: None,
                        })
                        .collect(),
                });
            }
        }
        ModelCard {
            name: index_name.unwrap_or(name).to_owned(),
            license,
            task: card.pipeline_tag.clone(),
            base_models: card
                .base_model
                .iter()
                .map(|b| ModelRef {
                    name: b.clone(),
                    ..Default::default()
                })
                .collect(),
            training_datasets: card
                .datasets
                .iter()
                .map(|d| DatasetRef {
                    name: d.clone(),
                    ..Default::default()
                })
                .collect(),
            evaluation,
            ..Default::default()
        }
    }
}

impl ModelCard {
    /// Maps an SPDX 3 `ai_AIPackage` onto this predicate.
    ///
    /// Mapping: `name`, `software_packageVersion`, `verifiedUsing` hashes, `suppliedBy` and
    /// `originatedBy` (element names), licenses (`hasDeclaredLicense`/`hasConcludedLicense`),
    /// `ai_typeOfModel` as the task, `ai_informationAboutApplication` as the intended use,
    /// `ai_limitation`, `ai_metric` as one evaluation, and as training datasets the targets of
    /// `trainedOn` relationships from the package or anything it `contains` (transitively).
    pub fn from_spdx3(doc: &Spdx3Document, package: &Spdx3Element) -> Self {
        let id = package.spdx_id.as_deref().unwrap_or_default();
        let str_list = |key: &str| -> Vec<String> {
            match package.properties.get(key) {
                Some(Value::String(s)) => vec![s.clone()],
                Some(Value::Array(a)) => a
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect(),
                _ => Vec::new(),
            }
        };
        let mut owners: Vec<Owner> = Vec::new();
        let mut owner_names: std::collections::HashSet<String> = std::collections::HashSet::new();
        for key in ["suppliedBy", "originatedBy"] {
            let ids: Vec<String> = match package.properties.get(key) {
                Some(Value::String(s)) => vec![s.clone()],
                Some(Value::Array(a)) => a
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect(),
                _ => Vec::new(),
            };
            for i in ids {
                let name = doc.element(&i).and_then(|e| e.name.clone()).unwrap_or(i);
                if owner_names.insert(name.clone()) {
                    owners.push(Owner {
                        name,
                        contact: None,
                    });
                }
            }
        }
        let licenses = doc.licenses_of(id);
        let labels: Vec<&str> = licenses.iter().map(String::as_str).collect();
        let mut scope: Vec<&str> = doc.contained(id);
        scope.push(id);
        let mut training_datasets = Vec::new();
        let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
        for from in scope {
            for (kind, to) in doc.relationships_from(from) {
                if kind != "trainedOn" {
                    continue;
                }
                for t in to {
                    let target = doc.element(t);
                    let name = target
                        .and_then(|e| e.name.clone())
                        .unwrap_or_else(|| t.to_owned());
                    if !seen.insert(name.clone()) {
                        continue;
                    }
                    let dl = target
                        .and_then(|e| e.str_property("software_downloadLocation"))
                        .map(str::to_owned);
                    let tl = doc.licenses_of(t);
                    let tl: Vec<&str> = tl.iter().map(String::as_str).collect();
                    training_datasets.push(DatasetRef {
                        name,
                        uri: dl,
                        digest: target.map(spdx3_digest).unwrap_or_default(),
                        license: join_licenses(&tl),
                        split: None,
                    });
                }
            }
        }
        let metrics: Vec<Metric> = match package.properties.get("ai_metric") {
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|m| {
                    Some(Metric {
                        metric_type: m.get("key")?.as_str()?.to_owned(),
                        value: m.get("value").cloned().unwrap_or(Value::Null),
                        slice: None,
                    })
                })
                .collect(),
            _ => Vec::new(),
        };
        let task = str_list("ai_typeOfModel");
        ModelCard {
            name: package.name.clone().unwrap_or_default(),
            version: package
                .str_property("software_packageVersion")
                .map(str::to_owned),
            digest: spdx3_digest(package),
            owners,
            license: join_licenses(&labels),
            task: (!task.is_empty()).then(|| task.join(", ")),
            intended_use: IntendedUse {
                description: package
                    .str_property("ai_informationAboutApplication")
                    .map(str::to_owned),
                ..Default::default()
            },
            training_datasets,
            evaluation: if metrics.is_empty() {
                Vec::new()
            } else {
                vec![Evaluation {
                    task: None,
                    dataset: None,
                    metrics,
                }]
            },
            limitations: str_list("ai_limitation"),
            ..Default::default()
        }
    }
}

/// The well-formed hashes of an SPDX 3 element as a digest set.
pub(crate) fn spdx3_digest(e: &Spdx3Element) -> DigestSet {
    e.hashes()
        .into_iter()
        .filter(|(alg, hex)| {
            let set: DigestSet = [(alg.clone(), hex.clone())].into();
            check_digest_set(Format::ModelCard, "", &set).is_ok()
        })
        .collect()
}

pub(crate) fn join_licenses(labels: &[&str]) -> Option<String> {
    match labels {
        [] => None,
        [one] => Some((*one).to_owned()),
        many => Some(
            many.iter()
                .map(|l| {
                    if l.contains(' ') {
                        format!("({l})")
                    } else {
                        (*l).to_owned()
                    }
                })
                .collect::<Vec<_>>()
                .join(" AND "),
        ),
    }
}

fn hashes_to_digest_set(hashes: &[cyclonedx::Hash]) -> DigestSet {
    hashes
        .iter()
        .filter_map(|h| {
            h.intoto_algorithm()
                .map(|a| (a.to_owned(), h.content.to_ascii_lowercase()))
        })
        .collect()
}

fn dataset_from_cyclonedx(d: &ModelDataset, by_ref: &HashMap<&str, &Component>) -> DatasetRef {
    match d {
        ModelDataset::Inline(data) => DatasetRef {
            name: data.name.clone().unwrap_or_default(),
            uri: data.contents.as_ref().and_then(|c| c.url.clone()),
            ..Default::default()
        },
        ModelDataset::Ref { reference } => {
            let comp = by_ref.get(reference.as_str()).copied();
            match comp {
                Some(c) => {
                    let labels: Vec<&str> = c.licenses.iter().filter_map(|l| l.label()).collect();
                    DatasetRef {
                        name: c.name.clone(),
                        uri: c
                            .data
                            .iter()
                            .find_map(|x| x.contents.as_ref().and_then(|ct| ct.url.clone()))
                            .or_else(|| c.external_references.first().map(|r| r.url.clone())),
                        digest: hashes_to_digest_set(&c.hashes),
                        license: join_licenses(&labels),
                        split: None,
                    }
                }
                None => DatasetRef {
                    name: reference.clone(),
                    ..Default::default()
                },
            }
        }
    }
}
