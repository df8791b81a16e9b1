//! # provenance-core
//!
//! The vocabulary of `provenance`: content [`Digest`]s, container [`ImageReference`]s, Kyverno
//! [wildcard] matching, the [outcome] types every crate reports in, [`TrustRoot`]s and
//! [`PublicKey`]s.
//!
//! This crate is pure and synchronous: it never opens a socket, reads a clock, or spawns a task.
//! Time is an argument ([`UnixTime`]); evidence is bytes handed in by the caller.
//!
//! ## Feature flags
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `sign` | yes | signing with private keys: the `sign` module (ECDSA and Ed25519 keys, cosign's encrypted key files, Sigstore bundles) |
//!
//! Verification never needs `sign`: a verify-only build (`default-features = false`) compiles
//! no private-key code.
//!
//! ```
//! use provenance_core::{Digest, ImageReference, wildcard::wildcard_match};
//!
//! let image = ImageReference::parse("nvcr.io/nim/meta/llama3-8b:1.0").unwrap();
//! assert!(wildcard_match("nvcr.io/nim/*", &image.to_string()));
//!
//! let pinned = image.pinned(&Digest::sha256_of(b"manifest bytes"));
//! assert!(pinned.to_string().contains("@sha256:"));
//! ```
#![forbid(unsafe_code)]

pub mod digest;
pub mod error;
pub mod keys;
pub mod outcome;
pub mod re2;
pub mod reference;
#[cfg(feature = "sign")]
pub mod sign;
pub mod time;
pub mod trust_root;
pub mod verify;
pub mod wildcard;

pub use digest::{Digest, DigestAlgorithm};
pub use error::{Error, ReferencePart};
pub use keys::{KeyKind, PublicKey};
pub use outcome::{Reason, ResourceRef, RuleResult, RuleStatus};
pub use reference::{AnyReference, ImageReference};
pub use time::{UnixTime, ValidityWindow};
pub use trust_root::{TrustReplacement, TrustRoot};
pub use verify::{
    Artifact, Check, CosignSignature, Expectation, IdentityExpectation, SignatureMaterial,
    Verified, Verifier,
};
