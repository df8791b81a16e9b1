//! The CEL-based policy kinds: Kyverno's `policies.kyverno.io` policies and Kubernetes'
//! admission policies, whose rules are CEL expressions (evaluated by [`crate::lang::cel`]).
//!
//! - [`validating_policy`]: ValidatingPolicy and ValidatingAdmissionPolicy, with their
//!   bindings.
//! - [`image_validating_policy`]: ImageValidatingPolicy (image signatures and attestations).
//! - [`mutating_policy`]: MutatingPolicy and MutatingAdmissionPolicy.
//! - [`generating_policy`] and [`deleting_policy`]: GeneratingPolicy and DeletingPolicy.

pub mod deleting_policy;
pub mod generating_policy;
pub mod image_validating_policy;
pub mod mutating_policy;
pub mod validating_policy;
