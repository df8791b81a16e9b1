//! What a CEL policy is evaluated against: one admission request (or one resource as
//! `kyverno test` sees it).
//!
//! The request model is [`ResourceInput`](crate::admission::request::ResourceInput), which
//! the ClusterPolicy engine reads; [`PolicyInput`] is its CEL view, built with
//! [`PolicyInput::from`] without copying the objects, plus what only CEL policies read
//! (`params`, answers for Kyverno's context libraries).

use std::borrow::Cow;

use super::kyverno::ContextData;
use crate::admission::request::ResourceInput;

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

/// One request a CEL policy is evaluated against: the CEL view of a [`ResourceInput`].
///
/// Built from the request model (`PolicyInput::from(&resource_input)`, borrowing its objects),
/// from an admission request ([`PolicyInput::from_admission_request`]) or, as `kyverno test`
/// does, from a resource file ([`PolicyInput::create`]: `object` is the resource, `operation`
/// CREATE). Everything the evaluation reads is here; nothing is fetched.
#[derive(Debug, Clone, Default)]
pub struct PolicyInput<'a> {
    /// The new object (`object`); `None` for DELETE.
    pub object: Option<Cow<'a, serde_json::Value>>,
    /// The old object (`oldObject`); `None` for CREATE.
    pub old_object: Option<Cow<'a, serde_json::Value>>,
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
    pub uid: Cow<'a, str>,
    /// `params` for policies with `paramKind` (Kyverno resolves `paramRef` in the cluster; here
    /// the caller supplies the parameter object).
    pub params: Option<serde_json::Value>,
    /// Answers for Kyverno's context libraries (`resource`, `image`, `globalContext`, `http`).
    pub context: ContextData,
}

impl PolicyInput<'static> {
    /// A CREATE request for `object`, as `kyverno test` evaluates a resource file.
    pub fn create(object: serde_json::Value) -> Self {
        PolicyInput {
            object: Some(Cow::Owned(object)),
            ..Default::default()
        }
    }

    /// Builds the input from an admission `request` (the `request` field of an AdmissionReview
    /// v1, as JSON), read as [`Review`](crate::admission::review::Review) reads it: `object`,
    /// `oldObject`, `operation`, `userInfo`, `resource`, `subResource`, `uid` and `dryRun`.
    /// The namespace object, params and context data are not part of a request: set them
    /// afterwards.
    pub fn from_admission_request(request: &serde_json::Value) -> Result<Self, crate::Error> {
        let input = crate::admission::request_input(request.clone())?;
        Ok(PolicyInput::from(input))
    }
}

impl<'a> From<&'a ResourceInput> for PolicyInput<'a> {
    /// The CEL view of the request model; the objects are borrowed, not copied.
    fn from(input: &'a ResourceInput) -> Self {
        let (object, old_object) = match (input.operation, &input.old_object) {
            // The object of a DELETE is the one being deleted: CEL reads it as `oldObject`.
            (Operation::Delete, _) => (None, Some(Cow::Borrowed(&input.object))),
            (_, old) => (
                Some(Cow::Borrowed(&input.object)),
                old.as_ref().map(Cow::Borrowed),
            ),
        };
        PolicyInput {
            object,
            old_object,
            uid: Cow::Borrowed(&input.uid),
            ..PolicyInput::facts_of(input)
        }
    }
}

impl From<ResourceInput> for PolicyInput<'static> {
    /// The CEL view of the request model, taking its objects.
    fn from(mut input: ResourceInput) -> Self {
        let facts = PolicyInput::facts_of(&input);
        let object = std::mem::take(&mut input.object);
        let (object, old_object) = match input.operation {
            Operation::Delete => (None, Some(Cow::Owned(object))),
            _ => (Some(Cow::Owned(object)), input.old_object.map(Cow::Owned)),
        };
        PolicyInput {
            object,
            old_object,
            uid: Cow::Owned(input.uid),
            ..facts
        }
    }
}

impl<'a> PolicyInput<'a> {
    /// Everything of the CEL view but the objects and the `uid`.
    fn facts_of(input: &ResourceInput) -> PolicyInput<'static> {
        let ns = input.selector_namespace();
        let namespace_object = (!ns.is_empty() && !input.namespace_labels_unknown).then(|| {
            let mut labels = input.namespace_labels.clone();
            labels
                .entry(crate::kyverno::matching::NAMESPACE_NAME_LABEL.to_owned())
                .or_insert_with(|| ns.to_owned());
            serde_json::json!({
                "apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": ns, "labels": labels},
            })
        });
        let resource = if let Some((group, version, resource)) = &input.request_resource {
            Some(GroupVersionResource {
                group: group.clone(),
                version: version.clone(),
                resource: resource.clone(),
            })
        } else if let Some((group, version, kind)) = &input.gvk_override
            && !input.subresource.is_empty()
        {
            // A subresource object (a Binding for `pods/binding`) is requested as its
            // parent's resource.
            Some(GroupVersionResource {
                group: group.clone(),
                version: version.clone(),
                resource: crate::cel_policies::validating_policy::kind_to_resource(kind),
            })
        } else {
            None
        };
        PolicyInput {
            object: None,
            old_object: None,
            operation: input.operation,
            user_info: input.request_info.user_info.clone(),
            namespace_object,
            namespace_labels_unknown: input.namespace_labels_unknown,
            resource,
            sub_resource: input.subresource.clone(),
            dry_run: input.dry_run,
            uid: Cow::Borrowed(""),
            params: None,
            context: ContextData::default(),
        }
    }

    /// The object the request is about: `object`, or `oldObject` for DELETE.
    pub fn subject(&self) -> Option<&serde_json::Value> {
        self.object.as_deref().or(self.old_object.as_deref())
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
