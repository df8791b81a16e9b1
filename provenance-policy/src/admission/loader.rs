//! Loading policies from YAML or JSON: every document is classified by `apiVersion` and `kind`.
//!
//! Supported: `kyverno.io/v1` and `v2beta1` ClusterPolicy and Policy, and
//! `policies.kyverno.io` ValidatingPolicy, ImageValidatingPolicy, MutatingPolicy,
//! GeneratingPolicy and DeletingPolicy (v1alpha1, v1beta1, v1), their PolicyExceptions, and
//! Kubernetes ValidatingAdmissionPolicies and MutatingAdmissionPolicies with their bindings.
//! Kyverno and Kubernetes policy kinds this engine does not evaluate (cleanup policies,
//! global context entries, ...) load as [`LoadedPolicy::Unsupported`] with the
//! reason, so a caller can report them as `unsupported: <kind>`. Any other kind, or a version
//! an API does not serve, is a load error ([`Error::InvalidPolicy`] at `kind` or
//! `apiVersion`), as is a field the kind's schema does not define ([`Error::UnknownField`],
//! with its line and column and the closest allowed name).
//!
//! CEL policies on Pods come with their Pod-controller variants ([`autogen_variants`]), as
//! Kyverno generates them.

use serde_json::Value;

use std::sync::Arc;

use crate::Error;
use crate::cel_policies::image_validating_policy::ImageValidatingPolicy;
use crate::cel_policies::validating_policy::{
    CelPolicyException, PolicyBinding, ValidatingAdmissionPolicy, ValidatingPolicy,
};
use crate::kyverno::policy::ClusterPolicy;
use crate::yaml::load_documents;

/// One document of a policy file.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum LoadedPolicy {
    /// A `kyverno.io` ClusterPolicy or Policy.
    Kyverno(Box<ClusterPolicy>),
    /// A `policies.kyverno.io` ValidatingPolicy (CEL).
    Validating(Arc<ValidatingPolicy>),
    /// A `policies.kyverno.io` ImageValidatingPolicy (CEL with image verification).
    ImageValidating(Arc<ImageValidatingPolicy>),
    /// A `policies.kyverno.io` GeneratingPolicy (CEL): the resources it would generate.
    Generating(Arc<crate::cel_policies::generating_policy::GeneratingPolicy>),
    /// A `policies.kyverno.io` DeletingPolicy (CEL): whether it would delete a resource.
    Deleting(Arc<crate::cel_policies::deleting_policy::DeletingPolicy>),
    /// A Kubernetes `admissionregistration.k8s.io` ValidatingAdmissionPolicy, with the
    /// bindings [`link`] attached to it.
    Vap(Arc<ValidatingAdmissionPolicy>),
    /// A ValidatingAdmissionPolicyBinding (attached to its policy by [`link`]).
    Binding(Box<PolicyBinding>),
    /// A CEL mutation policy: Kubernetes' MutatingAdmissionPolicy (with the bindings
    /// [`link`] attached) or Kyverno's MutatingPolicy (with its CEL PolicyExceptions).
    Mutating(Arc<crate::cel_policies::mutating_policy::MutatingPolicy>),
    /// A MutatingAdmissionPolicyBinding (attached to its policy by [`link`]).
    MutatingBinding(Box<PolicyBinding>),
    /// A `policies.kyverno.io` PolicyException for CEL policies (attached by [`link`]).
    CelException(Arc<CelPolicyException>),
    /// A `kyverno.io` PolicyException (v2, v2beta1, v2alpha1) for ClusterPolicy rules.
    Exception(Arc<crate::kyverno::exceptions::PolicyException>),
    /// A Kyverno or Kubernetes policy kind this engine knows but does not evaluate
    /// (GeneratingPolicy, cleanup policies, ...). Other kinds do not load.
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
    /// Why this policy never decides an admission request, for a policy that validates
    /// something else (a ValidatingPolicy with `evaluation.mode: JSON` validates JSON
    /// payloads, one with `Envoy` or `HTTP` authorizes requests). An admission webhook given such a policy should refuse to load it rather
    /// than run with a policy silently out of force. `None` for every other policy.
    pub fn never_at_admission(&self) -> Option<String> {
        match self {
            LoadedPolicy::Validating(vp) if vp.is_json_mode() => Some(format!(
                "ValidatingPolicy {:?} has evaluation.mode: JSON: it validates JSON payloads, never admission requests",
                vp.name()
            )),
            LoadedPolicy::Validating(vp) if vp.is_envoy_mode() || vp.is_http_mode() => {
                Some(format!(
                    "ValidatingPolicy {:?} has evaluation.mode: {}: it authorizes {} requests, never admission requests",
                    vp.name(),
                    if vp.is_envoy_mode() { "Envoy" } else { "HTTP" },
                    if vp.is_envoy_mode() { "Envoy" } else { "HTTP" },
                ))
            }
            _ => None,
        }
    }

    /// The policy's name.
    pub fn name(&self) -> &str {
        match self {
            LoadedPolicy::Kyverno(p) => &p.name,
            LoadedPolicy::Validating(p) => p.name(),
            LoadedPolicy::ImageValidating(p) => p.name(),
            LoadedPolicy::Generating(p) => p.name(),
            LoadedPolicy::Deleting(p) => p.name(),
            LoadedPolicy::Vap(p) => p.name(),
            LoadedPolicy::Binding(b) | LoadedPolicy::MutatingBinding(b) => &b.name,
            LoadedPolicy::Mutating(p) => p.name(),
            LoadedPolicy::CelException(_) | LoadedPolicy::Exception(_) => "",
            LoadedPolicy::Unsupported { name, .. } => name,
        }
    }
}

/// The policy kinds this crate loads, by API group: the versions served and the kinds.
const SUPPORTED: &[(&str, &[&str], &[&str])] = &[
    (
        "kyverno.io",
        &["v1", "v2beta1"],
        &["ClusterPolicy", "Policy"],
    ),
    (
        "kyverno.io",
        &["v2", "v2beta1", "v2alpha1"],
        &["PolicyException"],
    ),
    (
        "policies.kyverno.io",
        &["v1", "v1beta1", "v1alpha1"],
        &[
            "ValidatingPolicy",
            "NamespacedValidatingPolicy",
            "ImageValidatingPolicy",
            "NamespacedImageValidatingPolicy",
            "PolicyException",
            "GeneratingPolicy",
            "NamespacedGeneratingPolicy",
            "DeletingPolicy",
            "NamespacedDeletingPolicy",
            "MutatingPolicy",
            "NamespacedMutatingPolicy",
        ],
    ),
    (
        "admissionregistration.k8s.io",
        &["v1", "v1beta1", "v1alpha1"],
        &[
            "ValidatingAdmissionPolicy",
            "ValidatingAdmissionPolicyBinding",
            "MutatingAdmissionPolicy",
            "MutatingAdmissionPolicyBinding",
        ],
    ),
];

/// Kyverno and Kubernetes policy kinds this crate knows but does not evaluate: they load as
/// [`LoadedPolicy::Unsupported`].
const NOT_EVALUATED: &[(&str, &[&str])] = &[(
    "kyverno.io",
    &[
        "CleanupPolicy",
        "ClusterCleanupPolicy",
        "GlobalContextEntry",
        "UpdateRequest",
    ],
)];

/// Checks `apiVersion` and `kind`: a kind this crate does not know, or a version its API
/// does not serve, is an error saying so (never a document silently ignored).
fn check_kind(api_version: &str, kind: &str, name: &str, file: &str) -> Result<(), Error> {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let bad = |path: &str, reason: String| Error::InvalidPolicy {
        policy: name.to_owned(),
        path: format!("{file}: {path}"),
        reason,
    };
    if let Some((_, versions, _)) = SUPPORTED
        .iter()
        .find(|(g, _, kinds)| *g == group && kinds.contains(&kind))
    {
        if versions.contains(&version) {
            return Ok(());
        }
        let served: Vec<String> = versions.iter().map(|v| format!("{group}/{v}")).collect();
        return Err(bad(
            "apiVersion",
            format!(
                "{kind} is not served as {api_version} (served: {})",
                served.join(", ")
            ),
        ));
    }
    if NOT_EVALUATED
        .iter()
        .any(|(g, kinds)| *g == group && kinds.contains(&kind))
    {
        return Ok(());
    }
    if kind.is_empty() || api_version.is_empty() {
        return Err(bad(
            "kind",
            "a policy document needs apiVersion and kind".to_owned(),
        ));
    }
    let known: Vec<&'static str> = SUPPORTED
        .iter()
        .flat_map(|(_, _, k)| k.iter().copied())
        .chain(NOT_EVALUATED.iter().flat_map(|(_, k)| k.iter().copied()))
        .collect();
    let hint = crate::schema::suggest(kind, &known)
        .map(|k| format!(" (did you mean `{k}`?)"))
        .unwrap_or_default();
    Err(bad(
        "kind",
        format!("unknown policy kind {api_version} {kind}: not a policy this engine loads{hint}"),
    ))
}

/// Classifies one parsed document. Every field is checked against the kind's inventory
/// first: a field the kind's schema does not define is an [`Error::UnknownField`].
pub fn policy_from_value(doc: &Value, file: &str) -> Result<LoadedPolicy, Error> {
    use crate::schema::{DocKind, check};
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
    check_kind(api_version, kind, &name, file)?;
    let group = api_version.split('/').next().unwrap_or_default();
    let with_file = |e: Error| match e {
        Error::UnknownField(mut u) => {
            u.file = file.to_owned();
            Error::UnknownField(u)
        }
        other => other,
    };
    let checked = |k: DocKind| check(doc, k).map_err(with_file);
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
                other => with_file(other),
            }),
        ("policies.kyverno.io", "ValidatingPolicy" | "NamespacedValidatingPolicy") => {
            checked(DocKind::ValidatingPolicy)?;
            ValidatingPolicy::from_value(doc).map(|p| LoadedPolicy::Validating(Arc::new(p)))
        }
        ("policies.kyverno.io", "ImageValidatingPolicy" | "NamespacedImageValidatingPolicy") => {
            checked(DocKind::ImageValidatingPolicy)?;
            ImageValidatingPolicy::from_value(doc)
                .map(|p| LoadedPolicy::ImageValidating(Arc::new(p)))
        }
        ("policies.kyverno.io", "GeneratingPolicy" | "NamespacedGeneratingPolicy") => {
            crate::schema::check_node(doc, crate::cel_policies::generating_policy::INVENTORY)
                .map_err(with_file)?;
            crate::cel_policies::generating_policy::GeneratingPolicy::from_value(doc)
                .map(|p| LoadedPolicy::Generating(Arc::new(p)))
        }
        ("policies.kyverno.io", "DeletingPolicy" | "NamespacedDeletingPolicy") => {
            crate::schema::check_node(doc, crate::cel_policies::deleting_policy::INVENTORY)
                .map_err(with_file)?;
            crate::cel_policies::deleting_policy::DeletingPolicy::from_value(doc)
                .map(|p| LoadedPolicy::Deleting(Arc::new(p)))
        }
        ("kyverno.io", "PolicyException") => {
            checked(DocKind::PolicyException)?;
            crate::kyverno::exceptions::PolicyException::from_value(doc)
                .map(|p| LoadedPolicy::Exception(Arc::new(p)))
        }
        ("policies.kyverno.io", "PolicyException") => {
            checked(DocKind::CelPolicyException)?;
            CelPolicyException::from_value(doc).map(|p| LoadedPolicy::CelException(Arc::new(p)))
        }
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy") => {
            checked(DocKind::ValidatingAdmissionPolicy)?;
            ValidatingAdmissionPolicy::from_value(doc).map(|p| LoadedPolicy::Vap(Arc::new(p)))
        }
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding") => {
            checked(DocKind::ValidatingAdmissionPolicyBinding)?;
            PolicyBinding::from_value(doc).map(|b| LoadedPolicy::Binding(Box::new(b)))
        }
        ("admissionregistration.k8s.io", "MutatingAdmissionPolicy") => {
            checked(DocKind::MutatingAdmissionPolicy)?;
            crate::cel_policies::mutating_policy::MutatingPolicy::from_value(doc)
                .map(|p| LoadedPolicy::Mutating(Arc::new(p)))
        }
        ("admissionregistration.k8s.io", "MutatingAdmissionPolicyBinding") => {
            checked(DocKind::MutatingAdmissionPolicyBinding)?;
            PolicyBinding::from_value(doc).map(|b| LoadedPolicy::MutatingBinding(Box::new(b)))
        }
        ("policies.kyverno.io", "MutatingPolicy" | "NamespacedMutatingPolicy") => {
            checked(DocKind::MutatingPolicy)?;
            crate::cel_policies::mutating_policy::MutatingPolicy::from_value(doc)
                .map(|p| LoadedPolicy::Mutating(Arc::new(p)))
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
/// ([`crate::lang::cel::autogen`]): `ValidatingPolicy` and `ImageValidatingPolicy` (and their
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
        crate::lang::cel::autogen::variants(doc)
    } else {
        Vec::new()
    }
}

/// Loads every policy document of a YAML or JSON stream (bindings and exceptions in the same
/// stream are linked; call [`link`] again after combining several streams).
pub fn load_policies(text: &str, file: &str) -> Result<Vec<LoadedPolicy>, Error> {
    let mut out: Vec<LoadedPolicy> = Vec::new();
    let at = |e: Error, doc: usize| locate_error(e, text, file, doc);
    for (i, d) in load_documents(text, file)?.into_iter().enumerate() {
        out.push(policy_from_value(&d, file).map_err(|e| at(e, i))?);
        for variant in autogen_variants(&d) {
            out.push(policy_from_value(&variant, file).map_err(|e| at(e, i))?);
        }
    }
    link(&mut out);
    Ok(out)
}

/// Fills in the line and column of an unknown field, or of the field of an invalid policy,
/// from the text of the `doc`-th document.
fn locate_error(e: Error, text: &str, file: &str, doc: usize) -> Error {
    match e {
        Error::UnknownField(mut u) if u.line == 0 => {
            if let Some((line, column)) = crate::yaml::locate(text, doc, &u.path) {
                u.line = line;
                u.column = column;
            }
            Error::UnknownField(u)
        }
        Error::InvalidPolicy {
            policy,
            path,
            reason,
        } => {
            // `file: spec.rules[0]...`: point at the key.
            let located = path.strip_prefix(file).and_then(|p| {
                let field = p.strip_prefix(": ")?;
                let (line, column) = crate::yaml::locate(text, doc, field)?;
                Some(format!("{file}:{line}:{column}: {field}"))
            });
            Error::InvalidPolicy {
                policy,
                path: located.unwrap_or(path),
                reason,
            }
        }
        other => other,
    }
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
    let mutating_bindings: Vec<PolicyBinding> = policies
        .iter()
        .filter_map(|p| match p {
            LoadedPolicy::MutatingBinding(b) => Some(b.as_ref().clone()),
            _ => None,
        })
        .collect();
    for p in policies.iter_mut() {
        match p {
            LoadedPolicy::Mutating(mp) => {
                if let Some(m) = Arc::get_mut(mp) {
                    m.add_bindings(&mutating_bindings);
                    m.add_exceptions(&exceptions);
                }
            }
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
            LoadedPolicy::Generating(p) if !exceptions.is_empty() => {
                if let Some(v) = Arc::get_mut(p) {
                    v.add_exceptions(&exceptions);
                }
            }
            LoadedPolicy::Deleting(p) if !exceptions.is_empty() => {
                if let Some(v) = Arc::get_mut(p) {
                    v.add_exceptions(&exceptions);
                }
            }
            _ => {}
        }
    }
}
