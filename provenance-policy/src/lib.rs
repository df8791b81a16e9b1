//! # provenance-policy
//!
//! Kyverno policies evaluated outside Kubernetes. Pure and synchronous: the request, `now` and
//! any gathered evidence are arguments.
#![forbid(unsafe_code)]

pub mod error;
pub mod jmespath;

pub use error::Error;
pub use provenance_core as core;
