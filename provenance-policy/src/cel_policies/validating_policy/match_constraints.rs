//! `matchConstraints`: resource rules, label selectors, and the kinds' resource names and
//! scopes they are matched with.

use std::collections::BTreeMap;

use crate::Error;
use crate::lang::cel::str_field;
use crate::lang::cel::{GroupVersionResource, PolicyInput};

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

pub use crate::selector::LabelSelector;

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

pub(super) fn strings(v: &serde_json::Value, key: &str) -> Vec<String> {
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

pub(super) fn labels_of(v: Option<&serde_json::Value>) -> BTreeMap<String, String> {
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

    /// Whether the request in `input` matches; an unknown (see
    /// [`MatchConstraints::try_matches`]) counts as a match, so the policy is evaluated rather
    /// than silently skipped.
    pub fn matches(&self, input: &PolicyInput) -> bool {
        self.try_matches(input).unwrap_or(true)
    }

    /// Whether the request in `input` matches. An error
    /// ([`Error::NamespaceLabelsUnknown`]) when the resource rules match but the
    /// `namespaceSelector` needs labels of a namespace the caller has none for
    /// ([`PolicyInput::namespace_labels_unknown`]; `kubernetes.io/metadata.name` is always
    /// known).
    pub fn try_matches(&self, input: &PolicyInput) -> Result<bool, Error> {
        let (_, _, kind) = input.kind();
        let name = input.name();
        // The object's namespace, or (an object sent without one) the namespace object's.
        let namespace = match input.namespace() {
            n if n.is_empty() => input
                .namespace_object
                .as_ref()
                .and_then(|o| o.pointer("/metadata/name"))
                .and_then(|n| n.as_str())
                .unwrap_or_default()
                .to_owned(),
            n => n,
        };
        let req = MatchRequest {
            operation: input.operation.as_str(),
            gvr: input.gvr(),
            sub_resource: &input.sub_resource,
            name: &name,
            namespace: &namespace,
        };
        if self.exclude_resource_rules.iter().any(|r| r.matches(&req)) {
            return Ok(false);
        }
        if !self.resource_rules.iter().any(|r| r.matches(&req)) {
            return Ok(false);
        }
        let mut unknown = None;
        if let Some(ns_sel) = &self.namespace_selector {
            let is_namespace = kind == "Namespace" && req.gvr.group.is_empty();
            if is_namespace {
                if !ns_sel.matches(&labels_of(input.subject())) {
                    return Ok(false);
                }
            } else if !namespace.is_empty() {
                let mut labels = labels_of(input.namespace_object.as_ref());
                labels
                    .entry(crate::kyverno::matching::NAMESPACE_NAME_LABEL.to_owned())
                    .or_insert_with(|| namespace.clone());
                if input.namespace_labels_unknown
                    && input.namespace_object.is_none()
                    && !ns_sel.only_uses_key(crate::kyverno::matching::NAMESPACE_NAME_LABEL)
                {
                    unknown = Some(Error::NamespaceLabelsUnknown {
                        namespace: namespace.clone(),
                        path: "spec.matchConstraints.namespaceSelector".to_owned(),
                    });
                } else if !ns_sel.matches(&labels) {
                    return Ok(false);
                }
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
                return Ok(false);
            }
        }
        match unknown {
            Some(e) => Err(e),
            None => Ok(true),
        }
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
