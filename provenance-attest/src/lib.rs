//! # provenance-attest
//!
//! Typed, bounded views of the documents attestations carry: DSSE envelopes (bare, JSON lines,
//! Sigstore bundles, npm and Cloud Build responses), in-toto Statements v0.1/v1 and links, and
//! their predicates: SLSA provenance v0.1/v0.2/v1 and VSA v1, CycloneDX 1.2-1.6 JSON and XML
//! (with ML-BOM model cards), SPDX 2.2/2.3 and 3.0 (AI and Dataset profiles), model cards
//! (`https://mlcommons.org/model-card/v1`, mapped from CycloneDX, Hugging Face and SPDX 3),
//! OpenSSF model-signing manifests, Croissant dataset cards and dataset provenance.
//!
//! Every predicate is available twice: as a typed view for Rust code, and as the
//! `serde_json::Value` that Kyverno-style conditions are evaluated against
//! ([`Predicate::value`]). See `docs/attestations.md` and `docs/model-card-predicate.md`.
//!
//! Pure and synchronous: no I/O, no clock. Every parser is bounded by [`Limits`] (size, JSON
//! depth, subjects, list lengths), never panics on input, and fails with an [`Error`] that has
//! a stable [`code`](Error::code) and the path of the offending field.
//!
//! Signatures are **not** verified here: verify the DSSE envelope's [`Envelope::signed_bytes`]
//! (with `provenance-core`) before trusting what it says.
//!
//! ## Feature flags
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `sign` | yes | producing attestations: the `build` module (Statements, predicates, signed DSSE envelopes), with `provenance-core/sign` |
//!
//! Reading needs no feature: `default-features = false` compiles no signing code.
//!
//! ```
//! use provenance_attest::{Envelope, Limits, Predicate, TypedPredicate};
//! use provenance_core::Digest;
//!
//! let statement = br#"{"_type":"https://in-toto.io/Statement/v1",
//!   "subject":[{"name":"app","digest":{"sha256":"2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"}}],
//!   "predicateType":"https://slsa.dev/provenance/v1",
//!   "predicate":{"buildDefinition":{"buildType":"https://actions.github.io/buildtypes/workflow/v1",
//!     "externalParameters":{"workflow":{"repository":"https://github.com/org/app"}}},
//!     "runDetails":{"builder":{"id":"https://github.com/actions/runner"}}}}"#;
//! let envelope = Envelope::from_json(format!(
//!     r#"{{"payloadType":"application/vnd.in-toto+json","payload":"{}","signatures":[]}}"#,
//!     base64_encode(statement)).as_bytes()).unwrap();
//!
//! let limits = Limits::default();
//! let st = envelope.statement(&limits).unwrap();
//! assert!(st.matches(&Digest::sha256_of(b"hello")));
//!
//! let predicate = Predicate::from_statement(&st, &limits).unwrap();
//! // What a Kyverno condition sees:
//! assert_eq!(predicate.value["buildDefinition"]["externalParameters"]["workflow"]["repository"],
//!            "https://github.com/org/app");
//! // What Rust code sees:
//! let TypedPredicate::SlsaProvenance(p) = &predicate.typed else { unreachable!() };
//! assert_eq!(p.builder_id(), "https://github.com/actions/runner");
//! # fn base64_encode(b: &[u8]) -> String {
//! #     use base64::Engine; base64::engine::general_purpose::STANDARD.encode(b)
//! # }
//! ```
#![forbid(unsafe_code)]

#[cfg(feature = "sign")]
pub mod build;
pub mod croissant;
pub mod cyclonedx;
mod cyclonedx_xml;
pub mod dsse;
pub mod error;
pub mod huggingface;
mod json;
pub mod link;
pub mod model_artifact;
pub mod modelcard;
pub mod modelsigning;
pub mod predicate;
pub mod slsa;
pub mod spdx;
pub mod statement;

pub use dsse::{Container, Envelope, IN_TOTO_PAYLOAD_TYPE, Signature, extract_envelopes, pae};
pub use error::{Error, Format};
pub use json::Limits;
pub use predicate::{Predicate, Summary, TypedPredicate};
pub use statement::{DigestSet, ResourceDescriptor, Statement, StatementVersion, Subject};
