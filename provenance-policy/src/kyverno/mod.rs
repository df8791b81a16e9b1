//! The Kyverno ClusterPolicy engine: ClusterPolicy and Policy (`kyverno.io/v1`, `v2beta1`)
//! with their `validate`, `mutate`, `generate`, `verifyImages` and `podSecurity` rules, and
//! PolicyExceptions.
//!
//! - [`policy`]: the policy model, parsed from JSON or YAML; [`engine`]: evaluating a policy's
//!   rules against one resource.
//! - [`matching`] (`match` / `exclude`), [`conditions`] (preconditions, deny conditions),
//!   [`pattern`] (`validate.pattern` / `anyPattern`) and [`variables`] (`{{ }}` substitution,
//!   over the JSON document a rule's variables are read from).
//! - [`mutate`], [`generate`], [`verify_images`] and [`pod_security`]: the rule kinds beyond
//!   `validate`.
//! - [`exceptions`]: the PolicyExceptions that exempt resources from rules.

pub mod conditions;
pub(crate) mod context;
pub mod engine;
pub mod exceptions;
pub mod generate;
pub mod matching;
pub mod mutate;
pub mod pattern;
pub mod pod_security;
pub mod policy;
pub mod variables;
pub mod verify_images;
pub(crate) mod verify_images_fields;
