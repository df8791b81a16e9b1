//! # provenance-policy
//!
//! Kyverno policies evaluated outside Kubernetes. Pure and synchronous: the request, `now` and
//! any gathered evidence are arguments.
#![forbid(unsafe_code)]

pub mod context;
pub mod error;
pub mod jmespath;
pub mod loader;
pub mod matching;
pub mod policy;
pub mod request;
pub mod yaml;

pub use error::Error;
pub use provenance_core as core;
