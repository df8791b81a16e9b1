//! Loading policies from YAML or JSON: every document is classified by `apiVersion` and `kind`.
//!
//! Supported: `kyverno.io/v1` and `v2beta1` ClusterPolicy and Policy, and
//! `policies.kyverno.io` ValidatingPolicy and ImageValidatingPolicy (v1alpha1, v1beta1, v1). Documents of other kinds
//! load as [`LoadedPolicy::Unsupported`] with the reason, so a caller can report them as
//! `unsupported: <kind>` instead of silently ignoring them.
//!
//! CEL policies on Pods come with their Pod-controller variants ([`autogen_variants`]), as
//! Kyverno generates them.

use serde_json::Value;

use std::sync::Arc;

use crate::Error;
use crate::image_validating_policy::ImageValidatingPolicy;
use crate::policy::ClusterPolicy;
use crate::validating_policy::{
    CelPolicyException, PolicyBinding, ValidatingAdmissionPolicy, ValidatingPolicy,
};
use crate::yaml::load_documents;

/// One document of a policy file.
#[derive(Debug, Clone)]
pub enum LoadedPolicy {
    /// A `kyverno.io` ClusterPolicy or Policy.
    Kyverno(Box<ClusterPolicy>),
    /// A `policies.kyverno.io` ValidatingPolicy (CEL).
    Validating(Arc<ValidatingPolicy>),
    /// A `policies.kyverno.io` ImageValidatingPolicy (CEL with image verification).
    ImageValidating(Arc<ImageValidatingPolicy>),
    /// A Kubernetes `admissionregistration.k8s.io` ValidatingAdmissionPolicy, with the
    /// bindings [`link`] attached to it.
    Vap(Arc<ValidatingAdmissionPolicy>),
    /// A ValidatingAdmissionPolicyBinding (attached to its policy by [`link`]).
    Binding(Box<PolicyBinding>),
    /// A `policies.kyverno.io` PolicyException for CEL policies (attached by [`link`]).
    CelException(Arc<CelPolicyException>),
    /// A `kyverno.io` PolicyException (v2, v2beta1, v2alpha1) for ClusterPolicy rules.
    Exception(Arc<crate::exceptions::PolicyException>),
    /// A document this engine does not evaluate.
    Unsupported {
        /// `apiVersion`.
        api_version: String,
        /// `kind`.
        kind: String,
        /// `metadata.name`.
        name: String,
        /// Why.
        reason: String,
    },
}

impl LoadedPolicy {
    /// The policy's name.
    pub fn name(&self) -> &str {
        match self {
            LoadedPolicy::Kyverno(p) => &p.name,
            LoadedPolicy::Validating(p) => p.name(),
            LoadedPolicy::ImageValidating(p) => p.name(),
            LoadedPolicy::Vap(p) => p.name(),
            LoadedPolicy::Binding(b) => &b.name,
            LoadedPolicy::CelException(_) | LoadedPolicy::Exception(_) => "",
            LoadedPolicy::Unsupported { name, .. } => name,
        }
    }
}

/// Classifies one parsed document.
pub fn policy_from_value(doc: &Value, file: &str) -> Result<LoadedPolicy, Error> {
    let api_version = doc
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let kind = doc.get("kind").and_then(Value::as_str).unwrap_or_default();
    let name = doc
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let group = api_version.split('/').next().unwrap_or_default();
    match (group, kind) {
        ("kyverno.io", "ClusterPolicy" | "Policy") => ClusterPolicy::from_value(doc)
            .map(|p| LoadedPolicy::Kyverno(Box::new(p)))
            .map_err(|e| match e {
                Error::InvalidPolicy {
                    policy,
                    path,
                    reason,
                } => Error::InvalidPolicy {
                    policy: if policy.is_empty() {
                        name.clone()
                    } else {
                        policy
                    },
                    path: format!("{file}: {path}"),
                    reason,
                },
                other => other,
            }),
        ("policies.kyverno.io", "ValidatingPolicy" | "NamespacedValidatingPolicy") => {
            ValidatingPolicy::from_value(doc).map(|p| LoadedPolicy::Validating(Arc::new(p)))
        }
        ("policies.kyverno.io", "ImageValidatingPolicy" | "NamespacedImageValidatingPolicy") => {
            ImageValidatingPolicy::from_value(doc)
                .map(|p| LoadedPolicy::ImageValidating(Arc::new(p)))
        }
        ("kyverno.io", "PolicyException") => crate::exceptions::PolicyException::from_value(doc)
            .map(|p| LoadedPolicy::Exception(Arc::new(p))),
        ("policies.kyverno.io", "PolicyException") => {
            CelPolicyException::from_value(doc).map(|p| LoadedPolicy::CelException(Arc::new(p)))
        }
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy") => {
            ValidatingAdmissionPolicy::from_value(doc).map(|p| LoadedPolicy::Vap(Arc::new(p)))
        }
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding") => {
            PolicyBinding::from_value(doc).map(|b| LoadedPolicy::Binding(Box::new(b)))
        }
        _ => Ok(LoadedPolicy::Unsupported {
            api_version: api_version.to_owned(),
            kind: kind.to_owned(),
            name,
            reason: format!("unsupported: policy kind {api_version}/{kind}"),
        }),
    }
}

/// The Pod-controller variants Kyverno generates for a CEL policy document
/// ([`crate::cel::autogen`]): `ValidatingPolicy` and `ImageValidatingPolicy` (and their
/// namespaced kinds) on Pods also apply to the pod templates of Deployments, Jobs, CronJobs
/// and the other controllers. Each variant loads as a policy of the same name.
pub fn autogen_variants(doc: &Value) -> Vec<Value> {
    let api_version = doc
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let kind = doc.get("kind").and_then(Value::as_str).unwrap_or_default();
    if api_version.split('/').next() == Some("policies.kyverno.io")
        && matches!(
            kind,
            "ValidatingPolicy"
                | "NamespacedValidatingPolicy"
                | "ImageValidatingPolicy"
                | "NamespacedImageValidatingPolicy"
        )
    {
        crate::cel::autogen::variants(doc)
    } else {
        Vec::new()
    }
}

/// Loads every policy document of a YAML or JSON stream (bindings and exceptions in the same
/// stream are linked; call [`link`] again after combining several streams).
pub fn load_policies(text: &str, file: &str) -> Result<Vec<LoadedPolicy>, Error> {
    let mut out: Vec<LoadedPolicy> = Vec::new();
    for d in load_documents(text, file)? {
        out.push(policy_from_value(&d, file)?);
        for variant in autogen_variants(&d) {
            out.push(policy_from_value(&variant, file)?);
        }
    }
    link(&mut out);
    Ok(out)
}

/// Attaches ValidatingAdmissionPolicyBindings to their policies and CEL PolicyExceptions to
/// ValidatingPolicies. Policies already shared (`Arc` clones held elsewhere) are rebuilt
/// from scratch by the caller; here every policy is still uniquely owned.
pub fn link(policies: &mut [LoadedPolicy]) {
    let bindings: Vec<PolicyBinding> = policies
        .iter()
        .filter_map(|p| match p {
            LoadedPolicy::Binding(b) => Some(b.as_ref().clone()),
            _ => None,
        })
        .collect();
    let exceptions: Vec<Arc<CelPolicyException>> = policies
        .iter()
        .filter_map(|p| match p {
            LoadedPolicy::CelException(e) => Some(e.clone()),
            _ => None,
        })
        .collect();
    for p in policies.iter_mut() {
        match p {
            LoadedPolicy::Vap(vap) => {
                if let Some(v) = Arc::get_mut(vap) {
                    let fresh: Vec<PolicyBinding> = bindings
                        .iter()
                        .filter(|b| !v.bindings().iter().any(|x| x.name == b.name))
                        .cloned()
                        .collect();
                    v.add_bindings(&fresh);
                }
            }
            LoadedPolicy::Validating(vp) if !exceptions.is_empty() => {
                if let Some(v) = Arc::get_mut(vp) {
                    v.add_exceptions(&exceptions);
                }
            }
            LoadedPolicy::ImageValidating(ivp) if !exceptions.is_empty() => {
                if let Some(v) = Arc::get_mut(ivp) {
                    v.add_exceptions(&exceptions);
                }
            }
            _ => {}
        }
    }
}
