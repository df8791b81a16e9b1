//! The expression languages policies are written in.
//!
//! - [`cel`]: CEL, for `validate.cel` rules of a ClusterPolicy and every CEL-based policy kind
//!   ([`crate::cel_policies`]), with Kubernetes' and Kyverno's CEL libraries.
//! - [`jmespath`]: JMESPath with Kyverno's custom functions, for `{{ }}` variables, context
//!   entries and conditions of ClusterPolicy rules ([`crate::kyverno`]).

pub mod cel;
pub mod jmespath;
