//! # provenance-oci
//!
//! Where evidence comes from: OCI registries ([`RegistryClient`]) and OCI image layouts on
//! disk ([`LayoutSource`]), behind one async trait, [`EvidenceSource`]. Everything fetched is
//! size-bounded and digest-checked on every byte, and returned **unverified**: hand
//! [`SignatureLayer::material`] to `provenance_core::verify`.
//!
//! Discovery follows cosign: `<alg>-<hex>.sig` / `.att` / `.sbom` tags, then OCI 1.1 referrers
//! (the referrers API, falling back to the `<alg>-<hex>` referrers tag index) for Sigstore
//! bundle v0.3 artifacts, in the image's repository or an alternate signature repository.
//! See `docs/oci.md`.
#![forbid(unsafe_code)]

pub mod auth;
pub mod cache;
pub mod cosign;
pub mod error;
pub mod export;
pub mod layout;
pub mod registry;
pub mod source;
pub mod types;

pub use auth::{Credentials, DockerConfig};
pub use cache::{CacheConfig, CacheKey, CacheStats, VerificationCache};
pub use error::Error;
pub use export::{ExportOptions, ExportReport, export};
pub use layout::{LayoutSource, LayoutWriter};
pub use oci_spec::image::Platform;
pub use registry::{RegistryClient, RegistryConfig, RegistrySettings, Timeouts};
pub use source::{EvidenceSource, select_platform};
pub use types::{
    AttestationLayer, Limits, Manifest, ParsedManifest, Referrer, Referrers, ReferrersOrigin,
    SbomLayer, SignatureLayer,
};
