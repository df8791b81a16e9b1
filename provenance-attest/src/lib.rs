//! # provenance-attest
//!
//! Typed, bounded views of the documents attestations carry: DSSE envelopes, in-toto
//! Statements and their predicates. Pure and synchronous.
#![forbid(unsafe_code)]

pub mod dsse;

pub use dsse::{Envelope, Signature, pae};
