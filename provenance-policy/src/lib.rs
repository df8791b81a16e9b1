//! # provenance-policy
//!
//! Kyverno policies evaluated outside Kubernetes: ClusterPolicy (validate, verifyImages,
//! podSecurity, CEL), ValidatingPolicy, ValidatingAdmissionPolicy, ImageValidatingPolicy, and
//! the CEL mutation policies MutatingPolicy and MutatingAdmissionPolicy
//! ([`cel_policies::mutating_policy`]). Pure and synchronous: the request, `now` and any
//! gathered evidence are arguments; the one part that does I/O (gathering signatures and
//! attestations from registries or OCI layouts) is behind the `oci` feature.
//!
//! ## Where to start
//!
//! - **An admission webhook** (yours, on axum, hyper or kube-rs): load a [`PolicySet`], then
//!   per request [`Review::parse`] → [`PolicySet::image_requests_for`] → gather evidence →
//!   [`PolicySet::respond`], which returns the complete AdmissionReview answer for the
//!   mutating or validating [`Phase`]. With the `oci` feature,
//!   `admission::review::respond_online` gathers the evidence itself within a deadline; with
//!   the `kube` feature, `Review::from_kube` and `Answer::to_kube` speak kube-rs's admission
//!   types. See the [`admission::review`] module.
//! - **A CLI or CI check** over manifests: [`PolicySet::decide`] / [`PolicySet::decide_with`]
//!   on a [`admission::request::ResourceInput`], and [`admission::report`] for PolicyReports.
//! - **Facts the API server does not send** (namespace labels, the requester's roles):
//!   [`RequestFacts`]. Whatever is left unknown makes the rules that need it an `error`, never
//!   a silent non-match.
//! - **Cluster data rules read** (`configMap`, `apiCall`, `globalReference` context entries):
//!   a [`admission::cluster::ClusterData`] (or the ready
//!   [`admission::cluster::ClusterSnapshot`]) in the evaluation [`lang::jmespath::Env`]. A
//!   look-up it cannot answer makes the rule an `error`.
//!
//! ## How the crate is organised
//!
//! Four groups of modules, plus a few crate-wide ones ([`error`], [`selector`], [`yaml`]):
//!
//! - [`admission`]: admission and reports, the entry points. [`PolicySet`] and [`Decision`]
//!   (in [`admission`] itself), the AdmissionReview front door ([`admission::review`]), what a
//!   policy is evaluated against ([`admission::request`]), loading policy files
//!   ([`admission::loader`]), cluster data ([`admission::cluster`]), PolicyReports
//!   ([`admission::report`]) and, with the `oci` feature, evidence gathering
//!   (`admission::gather`).
//! - [`kyverno`]: the Kyverno ClusterPolicy engine. The policy model ([`kyverno::policy`]),
//!   rule evaluation ([`kyverno::engine`]), `match`/`exclude`, conditions, patterns and `{{ }}`
//!   variables, the `mutate`, `generate`, `verifyImages` and `podSecurity` rules, and
//!   PolicyExceptions.
//! - [`cel_policies`]: the CEL-based policy kinds. ValidatingPolicy and
//!   ValidatingAdmissionPolicy, ImageValidatingPolicy, MutatingPolicy and
//!   MutatingAdmissionPolicy, GeneratingPolicy and DeletingPolicy.
//! - [`lang`]: the expression languages, CEL ([`lang::cel`]) and JMESPath with Kyverno's
//!   functions ([`lang::jmespath`]).
//!
//! ## One request model
//!
//! Every policy kind is evaluated against one [`admission::request::ResourceInput`] (built by
//! [`Review`] from an AdmissionReview, or with `ResourceInput::create` for a file). The
//! ClusterPolicy engine builds its JMESPath context document (`request.object`, `images`,
//! ...) from it once per request: the one copy of the object an admission makes. CEL policy
//! kinds read [`lang::cel::PolicyInput`], its view, which borrows the objects
//! (`PolicyInput::from(&input)`). The document is lent to each rule in turn; rules that add
//! to their context (context entries, `foreach`) write into it and it is restored after each
//! rule. However many rules and policies there are, the request is copied once, plus what
//! `mutate` rules produce and the parts of the document a rule's context entry is named under
//! (`request.x` saves `request` first).
//!
//! ## Feature flags
//!
//! | feature | what it adds |
//! |---|---|
//! | `oci` | evidence gathering from registries and OCI layouts through `provenance-oci` (`admission::gather`, `admission::review::respond_online`); async, on tokio |
//! | `kube` | kube-rs's admission types (`Review::from_kube`, `Answer::to_kube`), through `kube-core` |
//!
//! With neither, the crate does no I/O and has no async runtime: evidence is an argument.
//!
//! ## Examples
//!
//! `cargo run -p provenance-policy --example admission` answers one AdmissionReview file with a
//! policy file or directory; `--features oci --example verify_images` does the mutating call
//! (verify, pin digests), applies the patch and does the validating call, with evidence from an
//! OCI layout. `examples/kube-webhook` in the repository is the same behind HTTPS with
//! kube-rs's admission types.
//!
//! Every verification outcome is `pass`, `fail` or `error` with a machine code
//! ([`provenance_core::RuleResult`]); an `error` of an enforced rule blocks (fail closed).
#![forbid(unsafe_code)]

pub mod admission;
pub mod cel_policies;
pub mod error;
pub mod kyverno;
pub mod lang;
pub use provenance_core::re2;
mod schema;
pub mod selector;
pub mod yaml;

pub use admission::review::{Answer, Phase, RequestFacts, Review};
pub use admission::{Decision, PolicySet};
pub use error::Error;
pub use lang::jmespath::Env;
pub use provenance_core as core;

#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

#[doc = include_str!("../../docs/getting-started.md")]
#[cfg(doctest)]
pub struct GettingStartedDoctests;
