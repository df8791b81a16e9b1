//! Hugging Face model and dataset cards: the YAML front matter of a `README.md`.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::error::{Error, Format, clip};
use crate::json::{self, Limits, null_default};

/// A string or a list of strings, as card fields such as `license` and `base_model` allow.
fn one_or_many<'de, D: Deserializer<'de>>(de: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<Value>),
        Other(Value),
    }
    Ok(match Option::<OneOrMany>::deserialize(de)? {
        None => Vec::new(),
        Some(OneOrMany::One(s)) => vec![s],
        Some(OneOrMany::Many(v)) => v
            .into_iter()
            .filter_map(|x| match x {
                Value::String(s) => Some(s),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .collect(),
        Some(OneOrMany::Other(Value::Number(n))) => vec![n.to_string()],
        Some(OneOrMany::Other(_)) => Vec::new(),
    })
}

/// `model-index[].results[].task`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[non_exhaustive]
pub struct HfTask {
    /// Task type (`image-classification`).
    #[serde(rename = "type", default)]
    pub task_type: Option<String>,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
}

/// `model-index[].results[].dataset`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[non_exhaustive]
pub struct HfDataset {
    /// Dataset id (`beans`).
    #[serde(rename = "type", default)]
    pub dataset_type: Option<String>,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// Configuration.
    #[serde(default)]
    pub config: Option<String>,
    /// Split.
    #[serde(default)]
    pub split: Option<String>,
    /// Revision (a git commit of the dataset repository).
    #[serde(default)]
    pub revision: Option<String>,
    /// Arguments, as JSON.
    #[serde(default)]
    pub args: Value,
}

/// `model-index[].results[].metrics[]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[non_exhaustive]
pub struct HfMetric {
    /// Metric id (`accuracy`).
    #[serde(rename = "type", default)]
    pub metric_type: String,
    /// Value, as written.
    #[serde(default)]
    pub value: Value,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
}

/// `model-index[].results[]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[non_exhaustive]
pub struct HfResult {
    /// Task.
    #[serde(default)]
    pub task: Option<HfTask>,
    /// Dataset (results without one are dropped when mapping to a model card).
    #[serde(default)]
    pub dataset: Option<HfDataset>,
    /// Metrics.
    #[serde(default, deserialize_with = "null_default")]
    pub metrics: Vec<HfMetric>,
}

/// `model-index[]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[non_exhaustive]
pub struct HfModelIndex {
    /// Model name.
    #[serde(default)]
    pub name: String,
    /// Results.
    #[serde(default, deserialize_with = "null_default")]
    pub results: Vec<HfResult>,
}

/// The front matter of a Hugging Face model or dataset card.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[non_exhaustive]
pub struct HfCard {
    /// License ids (`mit`, `apache-2.0`, `other`); a single string becomes one entry.
    #[serde(default, deserialize_with = "one_or_many")]
    pub license: Vec<String>,
    /// License name when `license: other`.
    #[serde(default)]
    pub license_name: Option<String>,
    /// License link when `license: other`.
    #[serde(default)]
    pub license_link: Option<String>,
    /// Languages.
    #[serde(default, deserialize_with = "one_or_many")]
    pub language: Vec<String>,
    /// Library (`transformers`, `timm`).
    #[serde(default)]
    pub library_name: Option<String>,
    /// Pipeline tag (the task).
    #[serde(default)]
    pub pipeline_tag: Option<String>,
    /// Tags.
    #[serde(default, deserialize_with = "one_or_many")]
    pub tags: Vec<String>,
    /// Datasets (Hugging Face dataset ids).
    #[serde(default, deserialize_with = "one_or_many")]
    pub datasets: Vec<String>,
    /// Metrics.
    #[serde(default, deserialize_with = "one_or_many")]
    pub metrics: Vec<String>,
    /// Base model(s).
    #[serde(default, deserialize_with = "one_or_many")]
    pub base_model: Vec<String>,
    /// `finetune`, `quantized`, `merge`, `adapter`.
    #[serde(default)]
    pub base_model_relation: Option<String>,
    /// Evaluation results.
    #[serde(rename = "model-index", default, deserialize_with = "null_default")]
    pub model_index: Vec<HfModelIndex>,
    /// The whole front matter as JSON, as conditions see it.
    #[serde(skip)]
    pub front_matter: Value,
}

/// Splits a Markdown document into its YAML front matter and body. Accepts LF and CRLF.
fn split_front_matter(text: &str) -> Option<&str> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let first_end = text.find('\n')?;
    if text[..first_end].trim_end() != "---" {
        return None;
    }
    let rest = &text[first_end + 1..];
    let mut offset = 0;
    for line in rest.split_inclusive('\n') {
        if line.trim_end() == "---" {
            return Some(&rest[..offset]);
        }
        offset += line.len();
    }
    None
}

impl HfCard {
    /// Parses a card (`README.md` text) with [`Limits::default`].
    ///
    /// ```
    /// use provenance_attest::huggingface::HfCard;
    /// let card = HfCard::parse("---\nlicense: mit\ndatasets:\n- beans\nbase_model: org/base\n---\n# Model\n").unwrap();
    /// assert_eq!(card.license, ["mit"]);
    /// assert_eq!(card.base_model, ["org/base"]);
    /// ```
    pub fn parse(text: &str) -> Result<Self, Error> {
        Self::parse_with(text, &Limits::default())
    }

    /// Parses a card under explicit limits. Fails with [`Error::NoFrontMatter`] when there is
    /// no front matter, [`Error::Syntax`] when it is not YAML (line and column of the Markdown
    /// file, not of the YAML block), and [`Error::Schema`] when it is not a mapping or a field
    /// has the wrong shape.
    pub fn parse_with(text: &str, limits: &Limits) -> Result<Self, Error> {
        let f = Format::HuggingFaceCard;
        if text.len() > limits.max_bytes {
            return Err(Error::TooLarge {
                format: f,
                size: text.len(),
                limit: limits.max_bytes,
            });
        }
        let yaml = split_front_matter(text).ok_or(Error::NoFrontMatter { format: f })?;
        let front: Value = if yaml.trim().is_empty() {
            Value::Object(Default::default())
        } else {
            let mut budget = serde_saphyr::Budget::default();
            budget.max_depth = limits.max_depth.min(64);
            budget.max_nodes = 100_000;
            budget.max_aliases = 1_000;
            let mut options = serde_saphyr::Options::default();
            options.budget = Some(budget);
            serde_saphyr::from_str_with_options(yaml, options).map_err(|e| {
                let (line, column) = e
                    .location()
                    .map(|l| (l.line() as usize + 1, l.column() as usize))
                    .unwrap_or((0, 0));
                let msg = e.to_string();
                Error::Syntax {
                    format: f,
                    line,
                    column,
                    message: clip(msg.lines().next().unwrap_or_default(), 300),
                }
            })?
        };
        if !front.is_object() {
            return Err(Error::Schema {
                format: f,
                path: ".".into(),
                message: "front matter must be a mapping".into(),
            });
        }
        json::check_value_depth(f, &front, limits)?;
        let mut card: HfCard = json::from_value(f, &front)?;
        card.front_matter = front;
        Ok(card)
    }
}
