//! The one error type of `provenance-attest`, with stable machine codes and field paths.

use std::fmt;

/// Which document format an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Format {
    /// A DSSE envelope (or a container carrying one: Sigstore bundle, JSON lines).
    Dsse,
    /// An in-toto Statement.
    Statement,
    /// SLSA provenance (v0.1, v0.2, v1).
    SlsaProvenance,
    /// SLSA verification summary attestation (VSA) v1.
    SlsaVsa,
    /// CycloneDX BOM (JSON or XML).
    CycloneDx,
    /// SPDX 2.x JSON or SPDX 3.0 JSON-LD.
    Spdx,
    /// The `https://mlcommons.org/model-card/v1` predicate.
    ModelCard,
    /// A Hugging Face model or dataset card (README with YAML front matter).
    HuggingFaceCard,
    /// A Croissant dataset card (JSON-LD).
    Croissant,
    /// The dataset provenance predicate defined by this crate.
    DatasetProvenance,
    /// An OpenSSF model-signing manifest predicate.
    ModelSigning,
    /// Some predicate whose type is not known to this crate.
    Predicate,
}

impl Format {
    /// A short, stable name (`dsse`, `statement`, `slsa`, ...), used inside error codes.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Dsse => "dsse",
            Format::Statement => "statement",
            Format::SlsaProvenance => "slsa",
            Format::SlsaVsa => "vsa",
            Format::CycloneDx => "cyclonedx",
            Format::Spdx => "spdx",
            Format::ModelCard => "model_card",
            Format::HuggingFaceCard => "hf_card",
            Format::Croissant => "croissant",
            Format::DatasetProvenance => "dataset_provenance",
            Format::ModelSigning => "model_signing",
            Format::Predicate => "predicate",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Errors from parsing attestations and their predicates.
///
/// Every variant has a stable [`code`](Error::code) (`attest.<format>.<kind>` or `attest.<kind>`)
/// and, where it applies, the path of the offending field (`subject[0].digest.sha256`).
/// Messages never echo more than a short, clipped piece of the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The envelope is not valid JSON of the DSSE shape (kept from the first DSSE parser).
    #[error("invalid DSSE envelope: {reason}")]
    InvalidEnvelope {
        /// What is wrong.
        reason: String,
    },
    /// The input is larger than the configured limit.
    #[error("{format} document of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Which format was being parsed.
        format: Format,
        /// Actual size in bytes.
        size: usize,
        /// Limit in bytes.
        limit: usize,
    },
    /// The input nests deeper than the configured limit.
    #[error("{format} document nests deeper than {limit} levels")]
    TooDeep {
        /// Which format was being parsed.
        format: Format,
        /// The depth limit.
        limit: usize,
    },
    /// A list has more entries than the configured limit.
    #[error("{format}: `{path}` has {count} entries, more than the limit of {limit}")]
    TooMany {
        /// Which format was being parsed.
        format: Format,
        /// Path of the list.
        path: String,
        /// Number of entries seen.
        count: usize,
        /// Limit.
        limit: usize,
    },
    /// The input is not well-formed JSON (or YAML, or XML) at all.
    #[error("{format}: malformed input at line {line}, column {column}: {message}")]
    Syntax {
        /// Which format was being parsed.
        format: Format,
        /// 1-based line (0 if unknown).
        line: usize,
        /// 1-based column (0 if unknown).
        column: usize,
        /// The parser's message.
        message: String,
    },
    /// The input is well-formed but a field has the wrong type or shape, or is missing.
    #[error("{format}: invalid field `{path}`: {message}")]
    Schema {
        /// Which format was being parsed.
        format: Format,
        /// Path of the field (`.` for the document root).
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A required field is absent or empty.
    #[error("{format}: required field `{path}` is missing or empty")]
    MissingField {
        /// Which format was being parsed.
        format: Format,
        /// Path of the field.
        path: String,
    },
    /// A digest value is not valid hex of the right length for its algorithm.
    #[error("{format}: digest `{path}` is invalid: {reason}")]
    InvalidDigest {
        /// Which format was being parsed.
        format: Format,
        /// Path of the digest value (`subject[0].digest.sha256`).
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The document declares a version or type this crate does not parse.
    #[error("{format}: unsupported version or type `{found}` (supported: {supported})")]
    Unsupported {
        /// Which format was being parsed.
        format: Format,
        /// The value found (clipped).
        found: String,
        /// What is supported.
        supported: &'static str,
    },
    /// A predicate of one type was handed to the parser of another.
    #[error("predicateType `{found}` is not {expected}")]
    WrongPredicateType {
        /// What the parser expected.
        expected: &'static str,
        /// The predicate type found (clipped).
        found: String,
    },
    /// A Markdown card has no YAML front matter.
    #[error("{format}: no YAML front matter (a `---` line at the start)")]
    NoFrontMatter {
        /// Which format was being parsed.
        format: Format,
    },
    /// The input's format could not be recognized.
    #[error("unrecognized document: {reason}")]
    Unrecognized {
        /// Why.
        reason: String,
    },
    /// Signing a document failed (the signer's error, with its code).
    #[error("signing failed: {message} ({code})")]
    Signing {
        /// The signer's error code (e.g. `core.sign.failed`).
        code: &'static str,
        /// What went wrong.
        message: String,
    },
}

impl Error {
    /// A stable, machine-readable code for this error, such as `attest.statement.invalid_digest`.
    ///
    /// ```
    /// let err = provenance_attest::Statement::from_json(b"{").unwrap_err();
    /// assert_eq!(err.code(), "attest.statement.syntax");
    /// ```
    pub fn code(&self) -> &'static str {
        use Format as F;
        match self {
            Error::InvalidEnvelope { .. } => "attest.dsse.invalid",
            Error::TooLarge { format, .. } => match format {
                F::Dsse => "attest.dsse.too_large",
                _ => "attest.too_large",
            },
            Error::TooDeep { .. } => "attest.too_deep",
            Error::TooMany { .. } => "attest.too_many",
            Error::Syntax { format, .. } => match format {
                F::Dsse => "attest.dsse.syntax",
                F::Statement => "attest.statement.syntax",
                F::SlsaProvenance => "attest.slsa.syntax",
                F::SlsaVsa => "attest.vsa.syntax",
                F::CycloneDx => "attest.cyclonedx.syntax",
                F::Spdx => "attest.spdx.syntax",
                F::ModelCard => "attest.model_card.syntax",
                F::HuggingFaceCard => "attest.hf_card.syntax",
                F::Croissant => "attest.croissant.syntax",
                F::DatasetProvenance => "attest.dataset_provenance.syntax",
                F::ModelSigning => "attest.model_signing.syntax",
                F::Predicate => "attest.predicate.syntax",
            },
            Error::Schema { format, .. } | Error::MissingField { format, .. } => match format {
                F::Dsse => "attest.dsse.schema",
                F::Statement => "attest.statement.schema",
                F::SlsaProvenance => "attest.slsa.schema",
                F::SlsaVsa => "attest.vsa.schema",
                F::CycloneDx => "attest.cyclonedx.schema",
                F::Spdx => "attest.spdx.schema",
                F::ModelCard => "attest.model_card.schema",
                F::HuggingFaceCard => "attest.hf_card.schema",
                F::Croissant => "attest.croissant.schema",
                F::DatasetProvenance => "attest.dataset_provenance.schema",
                F::ModelSigning => "attest.model_signing.schema",
                F::Predicate => "attest.predicate.schema",
            },
            Error::InvalidDigest { .. } => "attest.invalid_digest",
            Error::Unsupported { format, .. } => match format {
                F::CycloneDx => "attest.cyclonedx.unsupported",
                F::Spdx => "attest.spdx.unsupported",
                F::Statement => "attest.statement.unsupported",
                _ => "attest.unsupported",
            },
            Error::WrongPredicateType { .. } => "attest.wrong_predicate_type",
            Error::NoFrontMatter { .. } => "attest.hf_card.no_front_matter",
            Error::Unrecognized { .. } => "attest.unrecognized",
            Error::Signing { .. } => "attest.signing",
        }
    }

    /// The format the error is about, where known.
    pub fn format(&self) -> Option<Format> {
        match self {
            Error::InvalidEnvelope { .. } => Some(Format::Dsse),
            Error::TooLarge { format, .. }
            | Error::TooDeep { format, .. }
            | Error::TooMany { format, .. }
            | Error::Syntax { format, .. }
            | Error::Schema { format, .. }
            | Error::MissingField { format, .. }
            | Error::InvalidDigest { format, .. }
            | Error::Unsupported { format, .. }
            | Error::NoFrontMatter { format } => Some(*format),
            Error::WrongPredicateType { .. }
            | Error::Unrecognized { .. }
            | Error::Signing { .. } => None,
        }
    }

    /// The path of the offending field, where the error has one.
    pub fn path(&self) -> Option<&str> {
        match self {
            Error::TooMany { path, .. }
            | Error::Schema { path, .. }
            | Error::MissingField { path, .. }
            | Error::InvalidDigest { path, .. } => Some(path),
            _ => None,
        }
    }
}

/// Clips untrusted text for inclusion in an error message.
pub(crate) fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}
