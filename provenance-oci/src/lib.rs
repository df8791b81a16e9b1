//! # provenance-oci
//!
//! Where evidence comes from: OCI registries and OCI image layouts on disk. This crate names
//! the places cosign and OCI 1.1 put signatures, attestations and SBOMs.
#![forbid(unsafe_code)]

pub mod cosign;
