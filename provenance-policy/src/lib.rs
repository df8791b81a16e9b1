//! # provenance-policy
//!
//! Kyverno policies evaluated outside Kubernetes. Pure and synchronous: the request, `now` and
//! any gathered evidence are arguments.
#![forbid(unsafe_code)]

pub mod admission;
pub mod cel;
pub mod conditions;
pub mod context;
pub mod engine;
pub mod error;
pub mod exceptions;
#[cfg(feature = "oci")]
pub mod gather;
pub mod image_validating_policy;
pub mod jmespath;
pub mod loader;
pub mod matching;
pub mod pattern;
pub mod pod_security;
pub mod policy;
pub use provenance_core::re2;
pub mod report;
pub mod request;
pub mod validating_policy;
pub mod variables;
pub mod verify_images;
pub mod verify_images_fields;
pub mod yaml;

pub use error::Error;
pub use provenance_core as core;

#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

#[doc = include_str!("../../docs/getting-started.md")]
#[cfg(doctest)]
pub struct GettingStartedDoctests;
