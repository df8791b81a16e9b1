//! # provenance-attest
//!
//! Typed, bounded views of the documents attestations carry: DSSE envelopes, in-toto
//! Statements and their predicates (SLSA provenance and VSA, CycloneDX, SPDX, model cards,
//! Croissant dataset cards). Pure and synchronous: no I/O, no clock.
#![forbid(unsafe_code)]

pub mod cyclonedx;
pub mod dsse;
pub mod error;
mod json;
pub mod slsa;
pub mod spdx;
pub mod statement;

pub use dsse::{Container, Envelope, IN_TOTO_PAYLOAD_TYPE, Signature, extract_envelopes, pae};
pub use error::{Error, Format};
pub use json::Limits;
pub use statement::{DigestSet, ResourceDescriptor, Statement, StatementVersion, Subject};
