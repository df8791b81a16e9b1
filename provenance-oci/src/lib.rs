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
//!
//! With the `sign` feature, `keyless` signs blobs and in-toto attestations with Sigstore (OIDC
//! token, Fulcio, Rekor, optional timestamp authority) and returns a bundle only after it
//! verified against the trust root (`docs/signing-keyless.md`), and `sign` publishes signatures
//! and attestations into registries and layouts.
//!
//! ## Feature flags
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `sign` | yes | producing evidence: the `sign` and `keyless` modules and `model::sign` (with `provenance-core/sign` and `provenance-attest/sign`) |
//! | `rekor` | no | Rekor v1 look-ups for cosign signatures without a SET (`rekor`) |
//! | `tuf` | no | trust-root refresh over TUF (`tuf`) |
//!
//! Reading and discovery need none: a verify-only build (`default-features = false`, as
//! `provenance-policy`'s `oci` feature uses it) compiles no signing code, which
//! `scripts/check-boundaries.sh` checks in CI.
//!
//! ```no_run
//! use provenance_core::verify::{Artifact, Expectation, Verifier};
//! use provenance_core::{ImageReference, PublicKey, TrustRoot, UnixTime};
//! use provenance_oci::{EvidenceSource, RegistryClient, RegistryConfig};
//!
//! # async fn run(root: TrustRoot, key: PublicKey, now: UnixTime) -> Result<(), Box<dyn std::error::Error>> {
//! let client = RegistryClient::new(RegistryConfig::default())?;
//! let image = ImageReference::parse("ghcr.io/acme/model:1.0")?;
//! let digest = client.resolve(&image).await?; // the tag is resolved once
//! let verifier = Verifier::new(&root)?;
//! let verified = client
//!     .signatures(&image, &digest, None)
//!     .await?
//!     .iter()
//!     .any(|sig| {
//!         verifier
//!             .verify(Artifact::Digest(&digest), &sig.material(), &Expectation::key(key.clone()), now)
//!             .is_ok()
//!     });
//! # let _ = verified;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

pub mod auth;
pub mod cosign;
pub mod error;
pub mod export;
mod fsutil;
#[cfg(feature = "sign")]
pub mod keyless;
pub mod layout;
pub mod model;
pub mod registry;
#[cfg(feature = "rekor")]
pub mod rekor;
#[cfg(feature = "sign")]
pub mod sign;
pub mod source;
#[cfg(feature = "tuf")]
pub mod tuf;
pub mod types;

pub use auth::{Credentials, DockerConfig};
pub use error::{Error, SigningStep, TufFailure, UntrustedOriginReason};
pub use export::{ExportOptions, ExportReport, export};
pub use layout::{LayoutSource, LayoutWriter};
pub use oci_spec::image::Platform;
pub use registry::{RegistryClient, RegistryConfig, RegistrySettings, Timeouts};
#[cfg(feature = "sign")]
pub use sign::{LayoutPublisher, Publisher};
pub use source::{AnySource, EvidenceSource, select_platform};
pub use types::{
    AttestationLayer, Limits, Manifest, ParsedManifest, Referrer, Referrers, ReferrersOrigin,
    SbomLayer, SignatureLayer,
};
