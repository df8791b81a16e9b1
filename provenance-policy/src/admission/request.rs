//! What a policy is evaluated against: a resource, the admission request around it, and the
//! facts about the cluster a pure engine cannot look up (namespace labels, roles).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// The admission operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Operation {
    /// CREATE (the default for background scans and `kyverno test`).
    #[default]
    Create,
    /// UPDATE.
    Update,
    /// DELETE.
    Delete,
    /// CONNECT.
    Connect,
}

impl Operation {
    /// The upper-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
            Operation::Connect => "CONNECT",
        }
    }

    /// Parses the name (case-insensitively: `CREATE`, `create`).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_uppercase().as_str() {
            "CREATE" => Operation::Create,
            "UPDATE" => Operation::Update,
            "DELETE" => Operation::Delete,
            "CONNECT" => Operation::Connect,
            _ => return None,
        })
    }
}

/// Who sent the request: the Kubernetes user plus the RBAC roles Kyverno resolves for it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestInfo {
    /// Namespaced roles (`namespace:role`) bound to the user.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Cluster roles bound to the user.
    #[serde(default)]
    pub cluster_roles: Vec<String>,
    /// The authenticated user.
    #[serde(default)]
    pub user_info: UserInfo,
}

impl RequestInfo {
    /// Whether nothing is known about the requester (Kyverno then ignores user-based match
    /// criteria instead of failing them).
    pub fn is_empty(&self) -> bool {
        self.roles.is_empty() && self.cluster_roles.is_empty() && self.user_info.is_empty()
    }
}

/// The authenticated user of a request (`request.userInfo`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    /// User name.
    #[serde(default)]
    pub username: String,
    /// UID.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// Groups.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Extra attributes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    /// Whether no field is set.
    pub fn is_empty(&self) -> bool {
        self.username.is_empty()
            && self.uid.is_empty()
            && self.groups.is_empty()
            && self.extra.is_empty()
    }
}

/// One resource to evaluate, with its admission context: the request model every policy
/// kind reads. The ClusterPolicy engine reads it directly (its JMESPath context document is
/// built from it once per request); CEL policy kinds read its view
/// [`PolicyInput`](crate::lang::cel::PolicyInput), which borrows the objects.
///
/// Built by [`Review`](crate::admission::review::Review) from an AdmissionReview, or with
/// [`ResourceInput::create`] and the public fields for a resource file.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ResourceInput {
    /// The resource (`request.object`); for DELETE, the object being deleted.
    pub object: Value,
    /// The previous object on UPDATE (`request.oldObject`).
    pub old_object: Option<Value>,
    /// The operation.
    pub operation: Operation,
    /// The requester.
    pub request_info: RequestInfo,
    /// Labels of the resource's namespace (for `namespaceSelector`). The
    /// `kubernetes.io/metadata.name` label is implied (Kubernetes sets it on every namespace).
    pub namespace_labels: BTreeMap<String, String>,
    /// Whether the namespace's labels are unknown (the caller has none for it, e.g. a
    /// namespace created after its label source was read): a `namespaceSelector` that needs
    /// them then makes the rule an error, never a silent non-match.
    pub namespace_labels_unknown: bool,
    /// `request.namespace` of an admission request: the namespace whose labels
    /// `namespaceSelector` is decided with when the object carries no `metadata.namespace`
    /// (an object created without one, or a subresource object such as PodExecOptions), as
    /// Kyverno looks the labels up by the request's namespace.
    pub request_namespace: String,
    /// Whether the requester's `roles` / `clusterRoles` are unknown (no RBAC look-up was
    /// made): rules and exceptions that match on them then error or do not apply.
    pub roles_unknown: bool,
    /// The subresource addressed (`status`, `scale`, `exec`, `ephemeralcontainers`), if any.
    pub subresource: String,
    /// The group/version/kind the request addresses, when it differs from the object's own
    /// (`kyverno test` subresources); `None` means the object's `apiVersion` and `kind`.
    pub gvk_override: Option<(String, String, String)>,
    /// `request.resource` of an admission request: (group, version, plural resource). The
    /// resource a subresource request addresses (`pods` for `pods/exec`), whatever the kind of
    /// the object sent (`PodExecOptions`, `autoscaling/v1 Scale`).
    pub request_resource: Option<(String, String, String)>,
    /// Whether this is a live admission request (true) or a background scan (false): Kyverno
    /// skips rules that use `request.*` user data in background mode.
    pub admission: bool,
    /// `request.uid` of an admission request (empty otherwise).
    pub uid: String,
    /// `request.dryRun` of an admission request.
    pub dry_run: bool,
}

impl ResourceInput {
    /// A CREATE of `object` with no user information.
    pub fn create(object: Value) -> Self {
        ResourceInput {
            object,
            old_object: None,
            operation: Operation::Create,
            request_info: RequestInfo::default(),
            namespace_labels: BTreeMap::new(),
            namespace_labels_unknown: false,
            request_namespace: String::new(),
            roles_unknown: false,
            subresource: String::new(),
            gvk_override: None,
            request_resource: None,
            admission: true,
            uid: String::new(),
            dry_run: false,
        }
    }

    /// The same request about another object (the object a mutation produced, or the old
    /// object of an UPDATE): everything but the object is copied, the object is moved in.
    pub fn with_object(&self, object: Value) -> ResourceInput {
        self.with_objects(object, self.old_object.clone())
    }

    /// The same request with both objects replaced.
    pub(crate) fn with_objects(&self, object: Value, old_object: Option<Value>) -> ResourceInput {
        ResourceInput {
            object,
            old_object,
            operation: self.operation,
            request_info: self.request_info.clone(),
            namespace_labels: self.namespace_labels.clone(),
            namespace_labels_unknown: self.namespace_labels_unknown,
            request_namespace: self.request_namespace.clone(),
            roles_unknown: self.roles_unknown,
            subresource: self.subresource.clone(),
            gvk_override: self.gvk_override.clone(),
            request_resource: self.request_resource.clone(),
            admission: self.admission,
            uid: self.uid.clone(),
            dry_run: self.dry_run,
        }
    }

    /// `(group, version, kind)` of what the request addresses.
    pub fn gvk(&self) -> (String, String, String) {
        if let Some(g) = &self.gvk_override {
            return g.clone();
        }
        let api_version = str_at(&self.object, &["apiVersion"]);
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g.to_owned(), v.to_owned()),
            None => (String::new(), api_version.to_owned()),
        };
        (group, version, str_at(&self.object, &["kind"]).to_owned())
    }

    /// The resource's kind.
    pub fn kind(&self) -> &str {
        str_at(&self.object, &["kind"])
    }

    /// The resource's name (or `generateName` when unnamed).
    pub fn name(&self) -> &str {
        let n = str_at(&self.object, &["metadata", "name"]);
        if n.is_empty() {
            str_at(&self.object, &["metadata", "generateName"])
        } else {
            n
        }
    }

    /// The resource's namespace.
    pub fn namespace(&self) -> &str {
        str_at(&self.object, &["metadata", "namespace"])
    }

    /// The namespace whose labels `namespaceSelector` is decided with: the resource's, or
    /// the request's when the resource carries none.
    pub fn selector_namespace(&self) -> &str {
        match self.namespace() {
            "" => &self.request_namespace,
            ns => ns,
        }
    }

    /// The resource's labels.
    pub fn labels(&self) -> BTreeMap<String, String> {
        string_map(self.object.pointer("/metadata/labels"))
    }

    /// The resource's annotations.
    pub fn annotations(&self) -> BTreeMap<String, String> {
        string_map(self.object.pointer("/metadata/annotations"))
    }

    /// The `request` object of the JMESPath context, as Kyverno builds it.
    pub fn request_json(&self) -> Value {
        let mut req = Map::new();
        req.insert("operation".into(), json!(self.operation.as_str()));
        req.insert("object".into(), self.object.clone());
        req.insert(
            "oldObject".into(),
            self.old_object.clone().unwrap_or(Value::Null),
        );
        let (group, version, kind) = self.gvk();
        req.insert(
            "kind".into(),
            json!({"group": group, "version": version, "kind": kind}),
        );
        req.insert("namespace".into(), json!(self.namespace()));
        req.insert("name".into(), json!(self.name()));
        req.insert(
            "userInfo".into(),
            serde_json::to_value(&self.request_info.user_info).unwrap_or(Value::Null),
        );
        req.insert("roles".into(), json!(self.request_info.roles));
        req.insert(
            "clusterRoles".into(),
            json!(self.request_info.cluster_roles),
        );
        if !self.subresource.is_empty() {
            req.insert("subResource".into(), json!(self.subresource));
        }
        // Fields only an admission request has.
        if !self.uid.is_empty() {
            req.insert("uid".into(), json!(self.uid));
            req.insert("dryRun".into(), json!(self.dry_run));
        }
        Value::Object(req)
    }
}

/// The kind of a built-in resource, by plural name (`pods` → `Pod`): how a subresource
/// request (`pods/exec`, `deployments/scale`) is matched against its top-level kind.
pub fn kind_of_resource(resource: &str) -> Option<&'static str> {
    Some(match resource {
        "pods" => "Pod",
        "services" => "Service",
        "nodes" => "Node",
        "namespaces" => "Namespace",
        "configmaps" => "ConfigMap",
        "secrets" => "Secret",
        "serviceaccounts" => "ServiceAccount",
        "persistentvolumes" => "PersistentVolume",
        "persistentvolumeclaims" => "PersistentVolumeClaim",
        "replicationcontrollers" => "ReplicationController",
        "resourcequotas" => "ResourceQuota",
        "deployments" => "Deployment",
        "statefulsets" => "StatefulSet",
        "daemonsets" => "DaemonSet",
        "replicasets" => "ReplicaSet",
        "jobs" => "Job",
        "cronjobs" => "CronJob",
        "horizontalpodautoscalers" => "HorizontalPodAutoscaler",
        "poddisruptionbudgets" => "PodDisruptionBudget",
        "certificatesigningrequests" => "CertificateSigningRequest",
        "ingresses" => "Ingress",
        "customresourcedefinitions" => "CustomResourceDefinition",
        "apiservices" => "APIService",
        _ => return None,
    })
}

pub(crate) fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    let mut cur = v;
    for p in path {
        match cur.get(p) {
            Some(n) => cur = n,
            None => return "",
        }
    }
    cur.as_str().unwrap_or_default()
}

pub(crate) fn string_map(v: Option<&Value>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Some(Value::Object(m)) = v {
        for (k, v) in m {
            let s = match v {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            out.insert(k.clone(), s);
        }
    }
    out
}
