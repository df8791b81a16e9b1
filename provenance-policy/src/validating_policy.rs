//! Kyverno's CEL-based `ValidatingPolicy` (`policies.kyverno.io/v1`, also `v1beta1` and
//! `v1alpha1`), loaded from JSON and evaluated against one request; also Kubernetes'
//! `ValidatingAdmissionPolicy` with its bindings ([`ValidatingAdmissionPolicy`]) as
//! `kyverno test` evaluates them, and CEL PolicyExceptions ([`CelPolicyException`]).
//!
//! Evaluation follows Kyverno's ValidatingPolicy engine:
//!
//! 1. `matchConstraints` as Kubernetes matches admission policies (exclude rules first, then
//!    resource rules with operations, groups, versions, resources/subresources, resource names
//!    and scope, then `namespaceSelector` and `objectSelector`). No match: no result at all
//!    (Kyverno reports nothing for the policy). A policy without `matchConstraints` matches
//!    nothing, as in Kyverno.
//! 2. `matchConditions`: one false → one `skip` result with message `skip`. An error → with
//!    `failurePolicy: Ignore` the policy is skipped, otherwise an `error` result (rule
//!    `evaluation`, `failed to load context: ...`).
//! 3. `validations` in order, with lazily evaluated `variables`: the first that is false gives
//!    one `fail` result whose message is the `messageExpression` result, else `message`, else
//!    `CEL expression validation failed at index N`; an evaluation error gives an `error`
//!    result (`error: ...`). All true → one `pass` result with message `success`.
//!
//! The rule name of every result is empty, as Kyverno reports ValidatingPolicy results
//! (`kyverno test` results for them carry no `rule`). `validationActions` and
//! `failurePolicy` do not change the result (a failed validation is `fail` whether it would
//! deny, audit or warn); they are exposed for the admission decision.
//!
//! ```
//! use provenance_policy::cel::{PolicyInput, RequestView};
//! use provenance_policy::core::outcome::RuleStatus;
//! use provenance_policy::validating_policy::ValidatingPolicy;
//! use serde_json::json;
//!
//! let policy = ValidatingPolicy::from_value(&json!({
//!     "apiVersion": "policies.kyverno.io/v1", "kind": "ValidatingPolicy",
//!     "metadata": {"name": "require-dataset-digest"},
//!     "spec": {
//!         "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
//!             "operations": ["CREATE", "UPDATE"], "resources": ["pods"]}]},
//!         "validations": [{
//!             "expression": "object.spec.containers.all(c, c.?env.orValue([]).exists(e, e.name == 'DATASET_SHA256'))",
//!             "message": "every container needs DATASET_SHA256"
//!         }]
//!     }
//! }))?;
//! let input = PolicyInput::create(json!({
//!     "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "ml"},
//!     "spec": {"containers": [{"name": "c", "image": "ghcr.io/acme/infer:1"}]}
//! }));
//! // One view per request, shared by every policy evaluated for it.
//! let view = RequestView::new(&input);
//! let results = policy.evaluate_view(&view);
//! assert_eq!(results[0].status, RuleStatus::Fail);
//! assert_eq!(results[0].message, "every container needs DATASET_SHA256");
//! assert_eq!(results[0].rule, "");
//! # Ok::<(), provenance_policy::Error>(())
//! ```
//!
//! Not supported (explicit [`Error::Unsupported`]): `evaluation.mode: JSON`, `autogen` with
//! pod controllers, PolicyExceptions with `images`/`allowedValues` (partial exemptions).
//! `matchPolicy: Equivalent` is matched as `Exact` (no API discovery to find equivalent
//! versions). PolicyExceptions ([`CelPolicyException`]) are attached with
//! [`ValidatingPolicy::add_exceptions`].

use std::collections::BTreeMap;
use std::sync::Arc;

use provenance_core::outcome::{Reason, RuleResult, RuleStatus};

use crate::Error;
use crate::cel::{
    AuditAnnotation, CompiledCelRule, K8sMode, MatchConditions, NamedProgram, RequestView,
    Validation, Variable, VariableScope, check_variables, compile_audit_annotations, compile_named,
    compile_validations, compile_variables, evaluate_audit_annotations, evaluate_match_conditions,
    str_field,
};
pub use crate::cel::{ContextData, GroupVersionResource, Operation, PolicyInput, UserInfo};

/// Kind → resource plural for the common built-in kinds; other kinds use Kubernetes' guess
/// (`UnsafeGuessKindToResource`): lower-case, then `s` → `ses`, consonant + `y` → `ies`,
/// otherwise `+s`.
///
/// | kind | resource |
/// |---|---|
/// | Pod, Service, ConfigMap, Secret, Namespace, Node, ServiceAccount | pods, services, configmaps, secrets, namespaces, nodes, serviceaccounts |
/// | Deployment, StatefulSet, DaemonSet, ReplicaSet | deployments, statefulsets, daemonsets, replicasets |
/// | Job, CronJob | jobs, cronjobs |
/// | Ingress, IngressClass, NetworkPolicy | ingresses, ingressclasses, networkpolicies |
/// | PersistentVolume(Claim), StorageClass | persistentvolumes, persistentvolumeclaims, storageclasses |
/// | Role, ClusterRole, RoleBinding, ClusterRoleBinding | roles, clusterroles, rolebindings, clusterrolebindings |
/// | Endpoints, EndpointSlice, Event, LimitRange, ResourceQuota | endpoints, endpointslices, events, limitranges, resourcequotas |
/// | HorizontalPodAutoscaler, PodDisruptionBudget, PriorityClass, RuntimeClass | horizontalpodautoscalers, poddisruptionbudgets, priorityclasses, runtimeclasses |
pub fn kind_to_resource(kind: &str) -> String {
    let known = match kind {
        "Endpoints" => Some("endpoints"),
        "Ingress" => Some("ingresses"),
        "IngressClass" => Some("ingressclasses"),
        "NetworkPolicy" => Some("networkpolicies"),
        "StorageClass" => Some("storageclasses"),
        "PriorityClass" => Some("priorityclasses"),
        "RuntimeClass" => Some("runtimeclasses"),
        "PodSecurityPolicy" => Some("podsecuritypolicies"),
        "ComponentStatus" => Some("componentstatuses"),
        _ => None,
    };
    if let Some(k) = known {
        return k.to_owned();
    }
    let lower = kind.to_ascii_lowercase();
    if lower.is_empty() {
        return lower;
    }
    if lower.ends_with('s') {
        return format!("{lower}es");
    }
    if let Some(stem) = lower.strip_suffix('y')
        && !stem.ends_with(['a', 'e', 'i', 'o', 'u'])
    {
        return format!("{stem}ies");
    }
    format!("{lower}s")
}

/// Kinds that are cluster-scoped among the common built-ins (for `scope` matching and for
/// deciding whether `namespaceSelector` applies).
pub fn is_cluster_scoped_kind(kind: &str) -> bool {
    matches!(
        kind,
        "Namespace"
            | "Node"
            | "PersistentVolume"
            | "StorageClass"
            | "ClusterRole"
            | "ClusterRoleBinding"
            | "CustomResourceDefinition"
            | "PriorityClass"
            | "RuntimeClass"
            | "IngressClass"
            | "ValidatingWebhookConfiguration"
            | "MutatingWebhookConfiguration"
            | "ValidatingAdmissionPolicy"
            | "ValidatingAdmissionPolicyBinding"
            | "ClusterPolicy"
            | "CSIDriver"
            | "CSINode"
            | "VolumeAttachment"
            | "APIService"
            | "FlowSchema"
            | "PriorityLevelConfiguration"
            | "CertificateSigningRequest"
            | "PodSecurityPolicy"
    )
}

/// What a failed validation does at admission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValidationAction {
    /// Reject the request.
    Deny,
    /// Record in the audit log / policy report.
    Audit,
    /// Return a warning to the client.
    Warn,
}

/// How evaluation errors are handled at admission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum FailurePolicy {
    /// Errors reject (the default).
    #[default]
    Fail,
    /// Errors are ignored.
    Ignore,
}

/// A Kubernetes label selector.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    /// `matchLabels`
    pub match_labels: BTreeMap<String, String>,
    /// `matchExpressions`: (key, operator, values).
    pub match_expressions: Vec<(String, String, Vec<String>)>,
}

impl LabelSelector {
    fn from_value(v: &serde_json::Value, path: &str) -> Result<Self, Error> {
        let invalid = |p: String, reason: &str| Error::InvalidPolicy {
            policy: String::new(),
            path: p,
            reason: reason.to_owned(),
        };
        let mut sel = LabelSelector::default();
        if let Some(ml) = v.get("matchLabels").filter(|x| !x.is_null()) {
            let m = ml
                .as_object()
                .ok_or_else(|| invalid(format!("{path}.matchLabels"), "expected a map"))?;
            for (k, val) in m {
                let s = match val {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Bool(b) => b.to_string(),
                    serde_json::Value::Number(n) => n.to_string(),
                    _ => {
                        return Err(invalid(
                            format!("{path}.matchLabels.{k}"),
                            "expected a string",
                        ));
                    }
                };
                sel.match_labels.insert(k.clone(), s);
            }
        }
        if let Some(me) = v.get("matchExpressions").filter(|x| !x.is_null()) {
            let list = me
                .as_array()
                .ok_or_else(|| invalid(format!("{path}.matchExpressions"), "expected a list"))?;
            for (i, e) in list.iter().enumerate() {
                let p = format!("{path}.matchExpressions[{i}]");
                let key = str_field(e, "key").ok_or_else(|| invalid(p.clone(), "missing key"))?;
                let op = str_field(e, "operator")
                    .ok_or_else(|| invalid(p.clone(), "missing operator"))?;
                if !matches!(op, "In" | "NotIn" | "Exists" | "DoesNotExist") {
                    return Err(invalid(
                        p,
                        "operator must be In, NotIn, Exists or DoesNotExist",
                    ));
                }
                let values = e
                    .get("values")
                    .and_then(|x| x.as_array())
                    .map(|a| {
                        a.iter()
                            .filter_map(|x| x.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                sel.match_expressions
                    .push((key.to_owned(), op.to_owned(), values));
            }
        }
        Ok(sel)
    }

    /// Whether `labels` satisfy the selector (an empty selector matches everything).
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|(k, op, values)| {
                let got = labels.get(k);
                match op.as_str() {
                    "In" => got.is_some_and(|g| values.contains(g)),
                    "NotIn" => got.is_none_or(|g| !values.contains(g)),
                    "Exists" => got.is_some(),
                    "DoesNotExist" => got.is_none(),
                    _ => false,
                }
            })
    }
}

/// One `resourceRules` / `excludeResourceRules` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceRule {
    /// `apiGroups`
    pub api_groups: Vec<String>,
    /// `apiVersions`
    pub api_versions: Vec<String>,
    /// `resources` (`pods`, `pods/status`, `pods/*`, `*`, `*/*`).
    pub resources: Vec<String>,
    /// `operations` (`CREATE`, ..., `*`).
    pub operations: Vec<String>,
    /// `resourceNames`; empty matches every name.
    pub resource_names: Vec<String>,
    /// `scope`: `Cluster`, `Namespaced` or `*` (default).
    pub scope: String,
}

fn strings(v: &serde_json::Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(|x| x.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

impl ResourceRule {
    fn from_value(v: &serde_json::Value) -> Self {
        ResourceRule {
            api_groups: strings(v, "apiGroups"),
            api_versions: strings(v, "apiVersions"),
            resources: strings(v, "resources"),
            operations: strings(v, "operations"),
            resource_names: strings(v, "resourceNames"),
            scope: str_field(v, "scope").unwrap_or("*").to_owned(),
        }
    }

    fn matches(&self, req: &MatchRequest<'_>) -> bool {
        let any = |list: &[String], x: &str| list.iter().any(|i| i == "*" || i == x);
        any(&self.operations, req.operation)
            && any(&self.api_groups, &req.gvr.group)
            && any(&self.api_versions, &req.gvr.version)
            && self.resources.iter().any(|r| {
                let (res, sub) = r.split_once('/').unwrap_or((r.as_str(), ""));
                (res == "*" || res == req.gvr.resource) && (sub == "*" || sub == req.sub_resource)
            })
            && (self.resource_names.is_empty() || self.resource_names.iter().any(|n| n == req.name))
            && match self.scope.as_str() {
                "Cluster" => req.namespace.is_empty(),
                "Namespaced" => !req.namespace.is_empty(),
                _ => true,
            }
    }
}

struct MatchRequest<'r> {
    operation: &'r str,
    gvr: GroupVersionResource,
    sub_resource: &'r str,
    name: &'r str,
    namespace: &'r str,
}

/// `spec.matchConstraints`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MatchConstraints {
    /// `resourceRules`
    pub resource_rules: Vec<ResourceRule>,
    /// `excludeResourceRules`
    pub exclude_resource_rules: Vec<ResourceRule>,
    /// `namespaceSelector` (`None`: every namespace).
    pub namespace_selector: Option<LabelSelector>,
    /// `objectSelector` (`None`: every object).
    pub object_selector: Option<LabelSelector>,
    /// `matchPolicy` (`Equivalent` by default; matched as `Exact`).
    pub match_policy: String,
}

fn labels_of(v: Option<&serde_json::Value>) -> BTreeMap<String, String> {
    v.and_then(|o| o.get("metadata"))
        .and_then(|m| m.get("labels"))
        .and_then(|l| l.as_object())
        .map(|l| {
            l.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

impl MatchConstraints {
    pub(crate) fn from_value(v: &serde_json::Value, path: &str) -> Result<Self, Error> {
        let sel = |key: &str| -> Result<Option<LabelSelector>, Error> {
            v.get(key)
                .filter(|x| !x.is_null())
                .map(|x| LabelSelector::from_value(x, &format!("{path}.{key}")))
                .transpose()
        };
        let rules = |key: &str| -> Vec<ResourceRule> {
            v.get(key)
                .and_then(|x| x.as_array())
                .map(|a| a.iter().map(ResourceRule::from_value).collect())
                .unwrap_or_default()
        };
        Ok(MatchConstraints {
            resource_rules: rules("resourceRules"),
            exclude_resource_rules: rules("excludeResourceRules"),
            namespace_selector: sel("namespaceSelector")?,
            object_selector: sel("objectSelector")?,
            match_policy: str_field(v, "matchPolicy")
                .unwrap_or("Equivalent")
                .to_owned(),
        })
    }

    /// As [`MatchConstraints::matches`], except that empty `resourceRules` match every
    /// resource (a binding's `matchResources` often only narrows by selectors).
    pub fn matches_selectors_and_rules(&self, input: &PolicyInput) -> bool {
        if self.resource_rules.is_empty() {
            let all = MatchConstraints {
                resource_rules: vec![ResourceRule {
                    api_groups: vec!["*".into()],
                    api_versions: vec!["*".into()],
                    resources: vec!["*/*".into()],
                    operations: vec!["*".into()],
                    resource_names: Vec::new(),
                    scope: "*".into(),
                }],
                ..self.clone()
            };
            return all.matches(input);
        }
        self.matches(input)
    }

    /// Whether the request in `input` matches.
    pub fn matches(&self, input: &PolicyInput) -> bool {
        let (_, _, kind) = input.kind();
        let name = input.name();
        let namespace = input.namespace();
        let req = MatchRequest {
            operation: input.operation.as_str(),
            gvr: input.gvr(),
            sub_resource: &input.sub_resource,
            name: &name,
            namespace: &namespace,
        };
        if self.exclude_resource_rules.iter().any(|r| r.matches(&req)) {
            return false;
        }
        if !self.resource_rules.iter().any(|r| r.matches(&req)) {
            return false;
        }
        if let Some(ns_sel) = &self.namespace_selector {
            let is_namespace = kind == "Namespace" && req.gvr.group.is_empty();
            if is_namespace {
                if !ns_sel.matches(&labels_of(input.subject())) {
                    return false;
                }
            } else if !namespace.is_empty()
                && !ns_sel.matches(&labels_of(input.namespace_object.as_ref()))
            {
                return false;
            }
        }
        if let Some(obj_sel) = &self.object_selector {
            let new = input
                .object
                .as_ref()
                .is_some_and(|o| obj_sel.matches(&labels_of(Some(o))));
            let old = input
                .old_object
                .as_ref()
                .is_some_and(|o| obj_sel.matches(&labels_of(Some(o))));
            if !new && !old {
                return false;
            }
        }
        true
    }
}

/// A compiled ValidatingPolicy.
#[derive(Debug)]
pub struct ValidatingPolicy {
    name: String,
    api_version: String,
    match_constraints: Option<MatchConstraints>,
    match_conditions: Vec<NamedProgram>,
    variables: Vec<Variable>,
    validations: Vec<Validation>,
    audit_annotations: Vec<AuditAnnotation>,
    validation_actions: Vec<ValidationAction>,
    failure_policy: FailurePolicy,
    has_params: bool,
    kind: String,
    exceptions: Vec<Arc<CelPolicyException>>,
}

/// A `policies.kyverno.io` PolicyException for CEL policies: `policyRefs` name the policies it
/// applies to, `matchConditions` (CEL) select the requests it exempts.
///
/// Only full exemptions are supported; `images` and `allowedValues` (partial exemptions exposed
/// to the policy as the `exceptions` variable) are [`Error::Unsupported`].
#[derive(Debug)]
pub struct CelPolicyException {
    key: String,
    policy_refs: Vec<(String, String)>,
    match_conditions: Vec<NamedProgram>,
    report_pass: bool,
    priority: i64,
}

impl CelPolicyException {
    /// Whether every `matchConditions` entry holds for the request in `scope` (`Err`: the
    /// first evaluation error).
    pub(crate) fn matches(&self, scope: &VariableScope<'_, '_>) -> Result<bool, Error> {
        for mc in &self.match_conditions {
            if !mc.program.evaluate_bool(scope)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Loads a PolicyException document (`policies.kyverno.io/v1`, `v1beta1`, `v1alpha1`).
    pub fn from_value(v: &serde_json::Value) -> Result<Self, Error> {
        let meta = v.get("metadata");
        let name = meta.and_then(|m| str_field(m, "name")).unwrap_or_default();
        let namespace = meta
            .and_then(|m| str_field(m, "namespace"))
            .unwrap_or_default();
        let key = if namespace.is_empty() {
            name.to_owned()
        } else {
            format!("{namespace}/{name}")
        };
        let invalid = |path: &str, reason: &str| Error::InvalidPolicy {
            policy: key.clone(),
            path: path.to_owned(),
            reason: reason.to_owned(),
        };
        if !str_field(v, "apiVersion").is_some_and(|a| a.starts_with("policies.kyverno.io/"))
            || str_field(v, "kind") != Some("PolicyException")
        {
            return Err(invalid(
                "kind",
                "expected a policies.kyverno.io PolicyException",
            ));
        }
        if name.is_empty() {
            return Err(invalid("metadata.name", "required"));
        }
        let spec = v.get("spec").unwrap_or(&serde_json::Value::Null);
        for field in ["images", "allowedValues"] {
            if spec
                .get(field)
                .and_then(|x| x.as_array())
                .is_some_and(|a| !a.is_empty())
            {
                return Err(Error::Unsupported {
                    field: format!("PolicyException {key}: spec.{field}"),
                });
            }
        }
        let policy_refs = spec
            .get("policyRefs")
            .and_then(|r| r.as_array())
            .map(|a| {
                a.iter()
                    .map(|r| {
                        (
                            str_field(r, "name").unwrap_or_default().to_owned(),
                            str_field(r, "kind").unwrap_or_default().to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let match_conditions = compile_named(spec, "matchConditions", "spec")?;
        let priority = meta
            .and_then(|m| m.get("labels"))
            .and_then(|l| str_field(l, "polex.kyverno.io/priority"))
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        Ok(CelPolicyException {
            report_pass: str_field(spec, "reportResult") == Some("pass"),
            key,
            policy_refs,
            match_conditions,
            priority,
        })
    }

    /// `namespace/name` (or `name`).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Whether `policyRefs` names the policy `name` of `kind`.
    pub fn refers_to(&self, name: &str, kind: &str) -> bool {
        self.policy_refs.iter().any(|(n, k)| n == name && k == kind)
    }
}

const SPEC_FIELDS: &[&str] = &[
    "matchConstraints",
    "matchConditions",
    "variables",
    "validations",
    "auditAnnotations",
    "validationActions",
    "failurePolicy",
    "evaluation",
    "webhookConfiguration",
    "autogen",
    "paramKind",
    "paramRef",
];

impl ValidatingPolicy {
    /// Loads and compiles a ValidatingPolicy document.
    pub fn from_value(v: &serde_json::Value) -> Result<Self, Error> {
        let name = v
            .get("metadata")
            .and_then(|m| str_field(m, "name"))
            .unwrap_or_default()
            .to_owned();
        let namespace = v
            .get("metadata")
            .and_then(|m| str_field(m, "namespace"))
            .unwrap_or_default();
        let invalid = |path: &str, reason: &str| Error::InvalidPolicy {
            policy: name.clone(),
            path: path.to_owned(),
            reason: reason.to_owned(),
        };
        let api_version = str_field(v, "apiVersion").unwrap_or_default();
        if !matches!(
            api_version,
            "policies.kyverno.io/v1"
                | "policies.kyverno.io/v1beta1"
                | "policies.kyverno.io/v1alpha1"
        ) {
            return Err(invalid(
                "apiVersion",
                "expected policies.kyverno.io/v1, v1beta1 or v1alpha1",
            ));
        }
        let kind = str_field(v, "kind").unwrap_or_default();
        let full_name = match kind {
            "ValidatingPolicy" => name.clone(),
            "NamespacedValidatingPolicy" => format!("{namespace}/{name}"),
            _ => return Err(invalid("kind", "expected ValidatingPolicy")),
        };
        if name.is_empty() {
            return Err(invalid("metadata.name", "required"));
        }
        let spec = v
            .get("spec")
            .filter(|s| s.is_object())
            .ok_or_else(|| invalid("spec", "expected an object"))?;
        let with_policy = |e: Error| match e {
            Error::InvalidPolicy { path, reason, .. } => Error::InvalidPolicy {
                policy: full_name.clone(),
                path,
                reason,
            },
            other => other,
        };
        for key in spec.as_object().into_iter().flat_map(|m| m.keys()) {
            if !SPEC_FIELDS.contains(&key.as_str()) {
                return Err(Error::Unsupported {
                    field: format!("ValidatingPolicy {full_name}: spec.{key}"),
                });
            }
        }
        if let Some(mode) = spec
            .get("evaluation")
            .and_then(|e| e.get("mode"))
            .and_then(|m| m.as_str())
            && mode != "Kubernetes"
        {
            return Err(Error::Unsupported {
                field: format!("ValidatingPolicy {full_name}: spec.evaluation.mode: {mode}"),
            });
        }
        if spec
            .get("autogen")
            .and_then(|a| a.get("podControllers"))
            .and_then(|p| p.get("controllers"))
            .and_then(|c| c.as_array())
            .is_some_and(|c| !c.is_empty())
        {
            return Err(Error::Unsupported {
                field: format!("ValidatingPolicy {full_name}: spec.autogen.podControllers"),
            });
        }
        let match_constraints = spec
            .get("matchConstraints")
            .filter(|m| !m.is_null())
            .map(|m| MatchConstraints::from_value(m, "spec.matchConstraints"))
            .transpose()
            .map_err(with_policy)?;
        let match_conditions =
            compile_named(spec, "matchConditions", "spec").map_err(with_policy)?;
        let variables = compile_variables(spec, "spec").map_err(with_policy)?;
        let validations = compile_validations(spec, "validations", "spec").map_err(with_policy)?;
        let audit_annotations = compile_audit_annotations(spec, "spec").map_err(with_policy)?;
        check_variables(
            &variables,
            match_conditions
                .iter()
                .map(|m| &m.program)
                .chain(validations.iter().flat_map(|v| {
                    std::iter::once(&v.expression).chain(v.message_expression.iter())
                }))
                .chain(audit_annotations.iter().map(|a| &a.value)),
        )?;
        let mut validation_actions = Vec::new();
        for (i, a) in strings(spec, "validationActions").iter().enumerate() {
            validation_actions.push(match a.as_str() {
                "Deny" => ValidationAction::Deny,
                "Audit" => ValidationAction::Audit,
                "Warn" => ValidationAction::Warn,
                _ => {
                    return Err(with_policy(invalid(
                        &format!("spec.validationActions[{i}]"),
                        "expected Deny, Audit or Warn",
                    )));
                }
            });
        }
        let failure_policy = match str_field(spec, "failurePolicy") {
            None | Some("Fail") => FailurePolicy::Fail,
            Some("Ignore") => FailurePolicy::Ignore,
            Some(_) => {
                return Err(with_policy(invalid(
                    "spec.failurePolicy",
                    "expected Fail or Ignore",
                )));
            }
        };
        Ok(ValidatingPolicy {
            name: full_name.clone(),
            api_version: api_version.to_owned(),
            match_constraints,
            match_conditions,
            variables,
            validations,
            audit_annotations,
            validation_actions,
            failure_policy,
            has_params: spec.get("paramKind").is_some_and(|p| !p.is_null()),
            kind: kind.to_owned(),
            exceptions: Vec::new(),
        })
    }

    /// Attaches the exceptions among `exceptions` whose `policyRefs` name this policy (as
    /// Kyverno does when it compiles a policy).
    pub fn add_exceptions(&mut self, exceptions: &[Arc<CelPolicyException>]) {
        let plain = self.name.rsplit('/').next().unwrap_or_default().to_owned();
        for e in exceptions {
            if e.refers_to(&plain, &self.kind) {
                self.exceptions.push(e.clone());
            }
        }
    }

    /// The policy name (`namespace/name` for a NamespacedValidatingPolicy).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The `apiVersion` the policy was written in.
    pub fn api_version(&self) -> &str {
        &self.api_version
    }

    /// `spec.validationActions` (Kyverno's default when empty: `[Audit]`).
    pub fn validation_actions(&self) -> Vec<ValidationAction> {
        if self.validation_actions.is_empty() {
            vec![ValidationAction::Audit]
        } else {
            self.validation_actions.clone()
        }
    }

    /// `spec.failurePolicy`.
    pub fn failure_policy(&self) -> FailurePolicy {
        self.failure_policy
    }

    /// `spec.matchConstraints`.
    pub fn match_constraints(&self) -> Option<&MatchConstraints> {
        self.match_constraints.as_ref()
    }

    /// Evaluates the policy against one request. Empty when the policy does not match.
    pub fn evaluate(&self, input: &PolicyInput) -> Vec<RuleResult> {
        self.evaluate_view(&RequestView::new(input))
    }

    /// Evaluates against an already bound request (share one view across policies).
    pub fn evaluate_view(&self, view: &RequestView<'_>) -> Vec<RuleResult> {
        let input = view.input();
        match &self.match_constraints {
            Some(mc) if mc.matches(input) => {}
            _ => return Vec::new(),
        }
        let resource = input.resource_ref();
        let result = |rule: &str, status: RuleStatus, message: String| {
            RuleResult::new(self.name.clone(), rule, resource.clone(), status, message)
        };
        if self.has_params && input.params.is_none() {
            return vec![
                result(
                    "evaluation",
                    RuleStatus::Error,
                    "failed to load context: paramKind needs a params object supplied with the request".to_owned(),
                )
                .with_reason(Reason::new(
                    "policy.unsupported",
                    "paramRef resolution needs a cluster",
                )),
            ];
        }
        let scope = VariableScope::new(view, &self.variables);
        // PolicyExceptions: evaluated before matchConditions, as Kyverno does.
        let mut matched: Vec<&CelPolicyException> = Vec::new();
        for ex in &self.exceptions {
            match evaluate_match_conditions(&ex.match_conditions, &scope) {
                MatchConditions::Hold => matched.push(ex),
                MatchConditions::False => {}
                MatchConditions::Errors { first: e, .. } => {
                    if !matched.is_empty() || self.failure_policy == FailurePolicy::Ignore {
                        continue;
                    }
                    return vec![
                        result(
                            "evaluation",
                            RuleStatus::Error,
                            format!("failed to load context: {e}"),
                        )
                        .with_reason(Reason::from_error(&e)),
                    ];
                }
            }
        }
        if !matched.is_empty() {
            let mut selected = matched[0];
            for ex in &matched {
                if ex.priority > selected.priority {
                    selected = ex;
                }
            }
            let keys: Vec<&str> = matched.iter().map(|e| e.key()).collect();
            let (status, verb) = if selected.report_pass {
                (RuleStatus::Pass, "passed")
            } else {
                (RuleStatus::Skip, "skipped")
            };
            return vec![result(
                "exception",
                status,
                format!(
                    "rule is {verb} due to policy exception: {}",
                    keys.join(", ")
                ),
            )];
        }
        // matchConditions: any false → skip; errors → Ignore skips, Fail errors.
        match evaluate_match_conditions(&self.match_conditions, &scope) {
            MatchConditions::Hold => {}
            MatchConditions::False => {
                return vec![result("", RuleStatus::Skip, "skip".to_owned())];
            }
            MatchConditions::Errors { .. } if self.failure_policy == FailurePolicy::Ignore => {
                return vec![result("", RuleStatus::Skip, "skip".to_owned())];
            }
            MatchConditions::Errors { first, more } => {
                let msgs: Vec<String> = std::iter::once(&first)
                    .chain(&more)
                    .map(|e| e.to_string())
                    .collect();
                return vec![
                    result(
                        "evaluation",
                        RuleStatus::Error,
                        format!("failed to load context: {}", msgs.join("; ")),
                    )
                    .with_reason(Reason::from_error(&first)),
                ];
            }
        }
        for (index, v) in self.validations.iter().enumerate() {
            match v.expression.evaluate_in(&scope) {
                Ok(crate::cel::Value::Bool(true)) => continue,
                Ok(crate::cel::Value::Bool(false)) => {
                    let mut message = v.message.clone().unwrap_or_default();
                    if let Some(me) = &v.message_expression {
                        message = match me.evaluate_in(&scope) {
                            Ok(crate::cel::Value::String(s)) => s.as_str().to_owned(),
                            Ok(other) => format!(
                                "failed to convert message expression to string: expected a string, got {}",
                                crate::cel::value::type_name(&other)
                            ),
                            Err(e) => format!("failed to evaluate message expression: {e}"),
                        };
                    }
                    if message.is_empty() {
                        message = format!("CEL expression validation failed at index {index}");
                    }
                    if let Err(e) = evaluate_audit_annotations(&self.audit_annotations, &scope) {
                        return vec![
                            result("", RuleStatus::Error, format!("error: {e}"))
                                .with_reason(Reason::from_error(&e)),
                        ];
                    }
                    return vec![
                        result("", RuleStatus::Fail, message).with_reason(
                            Reason::new(
                                "policy.cel.validation_failed",
                                format!(
                                    "validation {index} ({}) is false",
                                    v.expression.source().trim()
                                ),
                            )
                            .at(format!("spec.validations[{index}]")),
                        ),
                    ];
                }
                Ok(other) => {
                    let e = Error::Cel {
                        expression: v.expression.source().to_owned(),
                        reason: format!(
                            "expected a bool, got {}",
                            crate::cel::value::type_name(&other)
                        ),
                    };
                    return vec![
                        result("", RuleStatus::Error, format!("error: {e}")).with_reason(
                            Reason::from_error(&e).at(format!("spec.validations[{index}]")),
                        ),
                    ];
                }
                Err(e) => {
                    return vec![
                        result("", RuleStatus::Error, format!("error: {e}")).with_reason(
                            Reason::from_error(&e).at(format!("spec.validations[{index}]")),
                        ),
                    ];
                }
            }
        }
        match evaluate_audit_annotations(&self.audit_annotations, &scope) {
            Ok(_) => vec![result("", RuleStatus::Pass, "success".to_owned())],
            Err(e) => vec![
                result(
                    "evaluation",
                    RuleStatus::Error,
                    format!("failed to load context: {e}"),
                )
                .with_reason(Reason::from_error(&e)),
            ],
        }
    }
}

/// A Kubernetes `admissionregistration.k8s.io/v1` (or `v1beta1`, `v1alpha1`)
/// ValidatingAdmissionPolicy with its bindings, evaluated as `kyverno test` does without a
/// cluster:
///
/// * without bindings: `matchConstraints` select the request;
/// * with bindings: each binding whose `matchResources` match is evaluated (the policy's own
///   `matchConstraints` are not consulted, as in Kyverno's CLI), with the parameter resources
///   its `paramRef` selects (by selector, else by name/namespace); the last binding's result
///   is reported;
/// * results carry the policy name as rule name: `skip` with `match conditions aren't met`,
///   `fail` with Kubernetes' message (`message`, a valid `messageExpression`, else
///   `failed expression: <expression>`), `error` with `expression '<e>' resulted in error: ...`,
///   `pass` with an empty message. No match: no result.
#[derive(Debug)]
pub struct ValidatingAdmissionPolicy {
    name: String,
    match_constraints: Option<MatchConstraints>,
    rule: CompiledCelRule,
    ignore_errors: bool,
    bindings: Vec<PolicyBinding>,
}

/// A ValidatingAdmissionPolicyBinding.
#[derive(Debug, Clone)]
pub struct PolicyBinding {
    /// `metadata.name`
    pub name: String,
    /// `spec.policyName`
    pub policy_name: String,
    /// `spec.validationActions`
    pub validation_actions: Vec<ValidationAction>,
    /// `spec.matchResources`
    pub match_resources: Option<MatchConstraints>,
    /// `spec.paramRef`: (name, namespace, selector).
    pub param_ref: Option<(String, String, Option<LabelSelector>)>,
}

impl PolicyBinding {
    /// Loads a ValidatingAdmissionPolicyBinding document.
    pub fn from_value(v: &serde_json::Value) -> Result<Self, Error> {
        let name = v
            .get("metadata")
            .and_then(|m| str_field(m, "name"))
            .unwrap_or_default()
            .to_owned();
        let spec = v.get("spec").unwrap_or(&serde_json::Value::Null);
        let invalid = |path: &str, reason: &str| Error::InvalidPolicy {
            policy: name.clone(),
            path: path.to_owned(),
            reason: reason.to_owned(),
        };
        let policy_name = str_field(spec, "policyName")
            .ok_or_else(|| invalid("spec.policyName", "required"))?
            .to_owned();
        let mut validation_actions = Vec::new();
        for a in strings(spec, "validationActions") {
            validation_actions.push(match a.as_str() {
                "Deny" => ValidationAction::Deny,
                "Audit" => ValidationAction::Audit,
                "Warn" => ValidationAction::Warn,
                _ => {
                    return Err(invalid(
                        "spec.validationActions",
                        "expected Deny, Audit or Warn",
                    ));
                }
            });
        }
        let match_resources = spec
            .get("matchResources")
            .filter(|m| !m.is_null())
            .map(|m| MatchConstraints::from_value(m, "spec.matchResources"))
            .transpose()?;
        let param_ref = match spec.get("paramRef").filter(|p| !p.is_null()) {
            None => None,
            Some(p) => Some((
                str_field(p, "name").unwrap_or_default().to_owned(),
                str_field(p, "namespace").unwrap_or_default().to_owned(),
                p.get("selector")
                    .filter(|x| !x.is_null())
                    .map(|x| LabelSelector::from_value(x, "spec.paramRef.selector"))
                    .transpose()?,
            )),
        };
        Ok(PolicyBinding {
            name,
            policy_name,
            validation_actions,
            match_resources,
            param_ref,
        })
    }

    fn select_params(&self, params: &[serde_json::Value]) -> Option<serde_json::Value> {
        let (name, namespace, selector) = self.param_ref.as_ref()?;
        let meta = |p: &serde_json::Value, k: &str| -> String {
            p.get("metadata")
                .and_then(|m| str_field(m, k))
                .unwrap_or_default()
                .to_owned()
        };
        if let Some(sel) = selector {
            let items: Vec<serde_json::Value> = params
                .iter()
                .filter(|p| sel.matches(&labels_of(Some(p))))
                .cloned()
                .collect();
            return (!items.is_empty()).then(|| serde_json::json!({ "items": items }));
        }
        params
            .iter()
            .find(|p| {
                let mut m = false;
                if !namespace.is_empty() {
                    m = meta(p, "namespace") == *namespace;
                }
                if !name.is_empty() {
                    m = meta(p, "name") == *name;
                }
                m
            })
            .cloned()
    }
}

impl ValidatingAdmissionPolicy {
    /// Loads and compiles a ValidatingAdmissionPolicy document.
    pub fn from_value(v: &serde_json::Value) -> Result<Self, Error> {
        let name = v
            .get("metadata")
            .and_then(|m| str_field(m, "name"))
            .unwrap_or_default()
            .to_owned();
        let invalid = |path: &str, reason: &str| Error::InvalidPolicy {
            policy: name.clone(),
            path: path.to_owned(),
            reason: reason.to_owned(),
        };
        if !str_field(v, "apiVersion")
            .is_some_and(|a| a.starts_with("admissionregistration.k8s.io/"))
            || str_field(v, "kind") != Some("ValidatingAdmissionPolicy")
        {
            return Err(invalid(
                "kind",
                "expected an admissionregistration.k8s.io ValidatingAdmissionPolicy",
            ));
        }
        if name.is_empty() {
            return Err(invalid("metadata.name", "required"));
        }
        let spec = v
            .get("spec")
            .filter(|s| s.is_object())
            .ok_or_else(|| invalid("spec", "expected an object"))?;
        let match_constraints = spec
            .get("matchConstraints")
            .filter(|m| !m.is_null())
            .map(|m| MatchConstraints::from_value(m, "spec.matchConstraints"))
            .transpose()?;
        let preconditions = compile_named(spec, "matchConditions", "spec")?;
        let variables = compile_variables(spec, "spec")?;
        let validations = compile_validations(spec, "validations", "spec")?;
        let audit_annotations = compile_audit_annotations(spec, "spec")?;
        check_variables(
            &variables,
            preconditions
                .iter()
                .map(|m| &m.program)
                .chain(validations.iter().flat_map(|v| {
                    std::iter::once(&v.expression).chain(v.message_expression.iter())
                }))
                .chain(audit_annotations.iter().map(|a| &a.value)),
        )?;
        Ok(ValidatingAdmissionPolicy {
            ignore_errors: str_field(spec, "failurePolicy") == Some("Ignore"),
            rule: CompiledCelRule::from_parts(
                preconditions,
                variables,
                validations,
                audit_annotations,
            ),
            name,
            match_constraints,
            bindings: Vec::new(),
        })
    }

    /// The policy name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Attaches the bindings among `bindings` whose `policyName` is this policy.
    pub fn add_bindings(&mut self, bindings: &[PolicyBinding]) {
        for b in bindings {
            if b.policy_name == self.name {
                self.bindings.push(b.clone());
            }
        }
    }

    /// The attached bindings.
    pub fn bindings(&self) -> &[PolicyBinding] {
        &self.bindings
    }

    /// Evaluates against one request; `param_resources` are the candidates for bindings'
    /// `paramRef` (`kyverno test`'s `paramResources`). Empty when nothing matches.
    pub fn evaluate(
        &self,
        input: &PolicyInput,
        param_resources: &[serde_json::Value],
    ) -> Vec<RuleResult> {
        let resource = input.resource_ref();
        let mode = K8sMode::AdmissionPolicy {
            ignore_errors: self.ignore_errors,
        };
        let to_result = |o: crate::cel::CelOutcome| {
            RuleResult::new(
                self.name.clone(),
                self.name.clone(),
                resource.clone(),
                o.status,
                o.message,
            )
        };
        if self.bindings.is_empty() {
            return match &self.match_constraints {
                Some(mc) if mc.matches(input) => {
                    vec![to_result(self.rule.k8s_validate(
                        &RequestView::new(input),
                        mode,
                        "",
                    ))]
                }
                _ => Vec::new(),
            };
        }
        let mut last = None;
        for b in &self.bindings {
            if let Some(mr) = &b.match_resources
                && !mr.matches_selectors_and_rules(input)
            {
                continue;
            }
            let outcome = if b.param_ref.is_some() {
                let mut with_params = input.clone();
                with_params.params = b.select_params(param_resources);
                self.rule
                    .k8s_validate(&RequestView::new(&with_params), mode, "")
            } else {
                self.rule.k8s_validate(&RequestView::new(input), mode, "")
            };
            last = Some(outcome);
        }
        last.map(|o| vec![to_result(o)]).unwrap_or_default()
    }
}

trait ReasonExt {
    fn from_error(e: &Error) -> Reason;
}

impl ReasonExt for Reason {
    fn from_error(e: &Error) -> Reason {
        Reason::new(e.code(), e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plurals() {
        assert_eq!(kind_to_resource("Pod"), "pods");
        assert_eq!(kind_to_resource("Deployment"), "deployments");
        assert_eq!(kind_to_resource("Ingress"), "ingresses");
        assert_eq!(kind_to_resource("NetworkPolicy"), "networkpolicies");
        assert_eq!(kind_to_resource("ComputeClass"), "computeclasses");
        assert_eq!(kind_to_resource("Endpoints"), "endpoints");
        assert_eq!(kind_to_resource("Gateway"), "gateways");
    }
}
