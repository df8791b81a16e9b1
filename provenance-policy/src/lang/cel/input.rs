//! What a CEL policy is evaluated against: one admission request (or one resource as
//! `kyverno test` sees it).

use super::kyverno::ContextData;

/// The admission operation (shared with the ClusterPolicy engine).
pub use crate::admission::request::Operation;
/// The requesting user (shared with the ClusterPolicy engine).
pub use crate::admission::request::UserInfo;

/// A group/version/resource triple (`""`/`v1`/`pods`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct GroupVersionResource {
    /// API group (`""` for the core group).
    pub group: String,
    /// Version (`v1`).
    pub version: String,
    /// Plural resource name (`pods`).
    pub resource: String,
}

/// One request a CEL policy is evaluated against.
///
/// Built by the caller from an AdmissionReview or, as `kyverno test` does, from a resource
/// file: `object` is the resource, `operation` CREATE. Everything the evaluation reads is here;
/// nothing is fetched.
#[derive(Debug, Clone, Default)]
pub struct PolicyInput {
    /// The new object (`object`); `None` for DELETE.
    pub object: Option<serde_json::Value>,
    /// The old object (`oldObject`); `None` for CREATE.
    pub old_object: Option<serde_json::Value>,
    /// The operation.
    pub operation: Operation,
    /// The requesting user.
    pub user_info: UserInfo,
    /// The namespace object of a namespaced resource (`namespaceObject`); its labels feed
    /// `namespaceSelector`. `None` when unknown or cluster-scoped.
    pub namespace_object: Option<serde_json::Value>,
    /// Whether the labels of the resource's namespace are unknown (the caller has none for
    /// it): a `namespaceSelector` that needs them then errors instead of not matching.
    pub namespace_labels_unknown: bool,
    /// The resource being admitted. `None`: derived from the object's `apiVersion` and `kind`
    /// with [`crate::cel_policies::validating_policy::kind_to_resource`].
    pub resource: Option<GroupVersionResource>,
    /// The subresource (`status`, `scale`, ...), empty for the main resource.
    pub sub_resource: String,
    /// Whether the request is a dry run.
    pub dry_run: bool,
    /// The admission request's `uid`.
    pub uid: String,
    /// `params` for policies with `paramKind` (Kyverno resolves `paramRef` in the cluster; here
    /// the caller supplies the parameter object).
    pub params: Option<serde_json::Value>,
    /// Answers for Kyverno's context libraries (`resource`, `image`, `globalContext`, `http`).
    pub context: ContextData,
}

impl PolicyInput {
    /// A CREATE request for `object`, as `kyverno test` evaluates a resource file.
    pub fn create(object: serde_json::Value) -> Self {
        PolicyInput {
            object: Some(object),
            ..Default::default()
        }
    }

    /// Builds the input from an admission `request` (the `request` field of an AdmissionReview
    /// v1, as JSON): `object`, `oldObject`, `operation`, `userInfo`, `resource`,
    /// `subResource`, `uid` and `dryRun`. The namespace object, params and context data are
    /// not part of a request: set them afterwards.
    pub fn from_admission_request(request: &serde_json::Value) -> Result<Self, crate::Error> {
        let bad = |reason: String| crate::Error::InvalidRequest { reason };
        if !request.is_object() {
            return Err(bad("admission request is not an object".to_owned()));
        }
        let s = |v: &serde_json::Value, k: &str| -> String {
            v.get(k)
                .and_then(|x| x.as_str())
                .unwrap_or_default()
                .to_owned()
        };
        let present = |k: &str| request.get(k).filter(|v| !v.is_null()).cloned();
        let op = s(request, "operation");
        let operation =
            Operation::parse(&op).ok_or_else(|| bad(format!("unknown operation {op:?}")))?;
        let user = request.get("userInfo").unwrap_or(&serde_json::Value::Null);
        let strings = |v: Option<&serde_json::Value>| -> Vec<String> {
            v.and_then(|x| x.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        let extra = user
            .get("extra")
            .and_then(|e| e.as_object())
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), strings(Some(v))))
                    .collect()
            })
            .unwrap_or_default();
        let resource =
            request
                .get("resource")
                .filter(|r| r.is_object())
                .map(|r| GroupVersionResource {
                    group: s(r, "group"),
                    version: s(r, "version"),
                    resource: s(r, "resource"),
                });
        Ok(PolicyInput {
            object: present("object"),
            old_object: present("oldObject"),
            operation,
            user_info: UserInfo {
                username: s(user, "username"),
                uid: s(user, "uid"),
                groups: strings(user.get("groups")),
                extra,
            },
            resource,
            sub_resource: s(request, "subResource"),
            dry_run: request
                .get("dryRun")
                .and_then(|d| d.as_bool())
                .unwrap_or(false),
            uid: s(request, "uid"),
            ..Default::default()
        })
    }

    /// The object the request is about: `object`, or `oldObject` for DELETE.
    pub fn subject(&self) -> Option<&serde_json::Value> {
        self.object.as_ref().or(self.old_object.as_ref())
    }

    fn meta_str(&self, field: &str) -> String {
        self.subject()
            .and_then(|o| o.get("metadata"))
            .and_then(|m| m.get(field))
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned()
    }

    /// `metadata.name` of the subject.
    pub fn name(&self) -> String {
        self.meta_str("name")
    }

    /// `metadata.namespace` of the subject.
    pub fn namespace(&self) -> String {
        self.meta_str("namespace")
    }

    /// The subject's `(group, version, kind)`.
    pub fn kind(&self) -> (String, String, String) {
        let s = self.subject();
        let api_version = s
            .and_then(|o| o.get("apiVersion"))
            .and_then(|v| v.as_str())
            .unwrap_or_default();
        let kind = s
            .and_then(|o| o.get("kind"))
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned();
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g.to_owned(), v.to_owned()),
            None => (String::new(), api_version.to_owned()),
        };
        (group, version, kind)
    }

    /// The subject as results name it: `apiVersion` (`group/version`, or `version` for the
    /// core group), kind, namespace and name.
    pub(crate) fn resource_ref(&self) -> provenance_core::outcome::ResourceRef {
        let (group, version, kind) = self.kind();
        provenance_core::outcome::ResourceRef {
            api_version: if group.is_empty() {
                version
            } else {
                format!("{group}/{version}")
            },
            kind,
            namespace: self.namespace(),
            name: self.name(),
        }
    }

    /// The resource being admitted: [`PolicyInput::resource`] or the one derived from the kind.
    pub fn gvr(&self) -> GroupVersionResource {
        if let Some(r) = &self.resource {
            return r.clone();
        }
        let (group, version, kind) = self.kind();
        GroupVersionResource {
            group,
            version,
            resource: crate::cel_policies::validating_policy::kind_to_resource(&kind),
        }
    }

    /// The `request` object CEL expressions see (an AdmissionRequest), without `object` and
    /// `oldObject` (bound separately to share them).
    pub(crate) fn request_json(&self) -> serde_json::Value {
        let (group, version, kind) = self.kind();
        let gvr = self.gvr();
        let kind_json = serde_json::json!({"group": group, "version": version, "kind": kind});
        let res_json = serde_json::json!({"group": gvr.group, "version": gvr.version, "resource": gvr.resource});
        let mut req = serde_json::json!({
            "uid": self.uid,
            "kind": kind_json,
            "resource": res_json,
            "requestKind": kind_json,
            "requestResource": res_json,
            "name": self.name(),
            "namespace": self.namespace(),
            "operation": self.operation.as_str(),
            "userInfo": {
                "username": self.user_info.username,
                "uid": self.user_info.uid,
                "groups": self.user_info.groups,
                "extra": self.user_info.extra,
            },
            "dryRun": self.dry_run,
        });
        if !self.sub_resource.is_empty()
            && let Some(m) = req.as_object_mut()
        {
            m.insert("subResource".into(), self.sub_resource.clone().into());
            m.insert(
                "requestSubResource".into(),
                self.sub_resource.clone().into(),
            );
        }
        req
    }
}
