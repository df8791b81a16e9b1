//! `match` and `exclude` blocks of ClusterPolicy rules, with Kyverno's semantics.
//!
//! - `any`: the rule matches if one filter matches; `all`: if every filter matches; the legacy
//!   form (`resources`, `subjects`, `roles`, `clusterRoles` directly under `match`) is one filter.
//! - A filter matches when every criterion it sets matches: `operations`, `kinds`
//!   (`Kind`, `version/Kind`, `group/version/Kind`, `Kind/subresource`, wildcards), `name`,
//!   `names` and `namespaces` (wildcards), `annotations` (wildcards in keys and values),
//!   `selector` and `namespaceSelector` (label selectors; wildcards in `matchLabels`), and the
//!   user criteria (`subjects`, `roles`, `clusterRoles`). When nothing is known about the
//!   requester, user criteria of `match` are ignored, as Kyverno does for background scans.
//! - `exclude.any` excludes if one filter matches, `exclude.all` if all do.
//! - Facts the caller could not supply make a criterion *unknown*, never false:
//!   a `namespaceSelector` for a namespace whose labels are unknown
//!   ([`ResourceInput::namespace_labels_unknown`]; `kubernetes.io/metadata.name` is always
//!   known), and `roles` / `clusterRoles` when the requester's roles were not looked up
//!   ([`ResourceInput::roles_unknown`]). [`MatchBlock::try_matches`] and
//!   [`MatchBlock::try_excludes`] report an unknown that decides the outcome as an error
//!   ([`Error::NamespaceLabelsUnknown`], [`Error::RolesUnknown`]), so the rule fails closed.

use std::collections::BTreeMap;

use provenance_core::wildcard::wildcard_match;
use serde_json::Value;

use crate::Error;
use crate::admission::request::{ResourceInput, string_map};

pub use crate::selector::LabelSelector;

/// A parsed kind selector: group, version, kind, subresource (each may be a wildcard).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindSelector {
    group: String,
    version: String,
    kind: String,
    subresource: String,
}

fn is_version(s: &str) -> bool {
    if s == "*" {
        return true;
    }
    let Some(rest) = s.strip_prefix('v') else {
        return false;
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return false;
    }
    let rest = &rest[digits..];
    if rest.is_empty() {
        return true;
    }
    let tail = rest
        .strip_prefix("alpha")
        .or_else(|| rest.strip_prefix("beta"));
    tail.is_some_and(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
}

impl KindSelector {
    /// Parses Kyverno's kind syntax.
    pub fn parse(input: &str) -> Self {
        let mut parts: Vec<&str> = input.split('/').collect();
        if let Some(last) = parts.pop() {
            parts.extend(last.split('.'));
        }
        let s = |x: &str| x.to_owned();
        let (group, version, kind, subresource) = match parts.as_slice() {
            [k] => (s("*"), s("*"), s(k), String::new()),
            ["*", "*"] => (s("*"), s("*"), s("*"), s("*")),
            ["*", sub] if sub.to_lowercase() == *sub => (s("*"), s("*"), s("*"), s(sub)),
            [v, k] if is_version(v) => (s("*"), s(v), s(k), String::new()),
            [k, sub] => (s("*"), s("*"), s(k), s(sub)),
            [v, k, sub] if is_version(v) => (s("*"), s(v), s(k), s(sub)),
            [g, v, k] => (s(g), s(v), s(k), String::new()),
            [g, v, k, sub] => (s(g), s(v), s(k), s(sub)),
            _ => (String::new(), String::new(), String::new(), String::new()),
        };
        KindSelector {
            group,
            version,
            kind,
            subresource,
        }
    }

    /// Whether the selector names exactly `Pod` (any group and version, no subresource).
    pub fn is_pod(&self) -> bool {
        self.kind == "Pod" && self.subresource.is_empty()
    }

    /// The kind part.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    fn matches(&self, group: &str, version: &str, kind: &str, subresource: &str) -> bool {
        if !(wildcard_match(&self.group, group)
            && wildcard_match(&self.version, version)
            && wildcard_match(&self.kind, kind))
        {
            return false;
        }
        wildcard_match(&self.subresource, subresource)
            || (group.is_empty()
                && version == "v1"
                && kind == "Pod"
                && subresource == "ephemeralcontainers")
    }
}

/// One resource filter (an entry of `any`/`all`, or the legacy block).
#[derive(Debug, Clone, Default)]
pub struct ResourceFilter {
    /// `kinds`.
    pub kinds: Vec<KindSelector>,
    /// The kinds as written.
    pub kind_names: Vec<String>,
    names: Vec<String>,
    namespaces: Vec<String>,
    annotations: BTreeMap<String, String>,
    selector: Option<LabelSelector>,
    namespace_selector: Option<LabelSelector>,
    operations: Vec<String>,
    subjects: Vec<(String, String, String)>,
    roles: Vec<String>,
    cluster_roles: Vec<String>,
    resource_description_empty: bool,
    path: String,
}

/// The label Kubernetes sets on every namespace to its name.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// How one criterion or filter came out.
#[derive(Debug, Clone, PartialEq)]
enum Tri {
    Yes,
    No,
    Unknown(Error),
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

impl ResourceFilter {
    fn from_value(v: &Value, path: &str) -> Result<Self, Error> {
        let res = v.get("resources").cloned().unwrap_or(Value::Null);
        let kind_names = strings(res.get("kinds"));
        let mut names = strings(res.get("names"));
        if let Some(n) = res.get("name").and_then(Value::as_str) {
            names.push(n.to_owned());
        }
        let selector = match res.get("selector") {
            Some(s) if !s.is_null() => Some(LabelSelector::with_wildcards(
                s,
                &format!("{path}.resources.selector"),
            )?),
            _ => None,
        };
        let namespace_selector = match res.get("namespaceSelector") {
            Some(s) if !s.is_null() => Some(LabelSelector::with_wildcards(
                s,
                &format!("{path}.resources.namespaceSelector"),
            )?),
            _ => None,
        };
        let subjects = v
            .get("subjects")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|s| {
                        let g = |k| {
                            s.get(k)
                                .and_then(Value::as_str)
                                .unwrap_or_default()
                                .to_owned()
                        };
                        (g("kind"), g("name"), g("namespace"))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let annotations = string_map(res.get("annotations"));
        let namespaces = strings(res.get("namespaces"));
        let operations = strings(res.get("operations"));
        let resource_description_empty = kind_names.is_empty()
            && names.is_empty()
            && namespaces.is_empty()
            && annotations.is_empty()
            && selector.is_none()
            && namespace_selector.is_none()
            && operations.is_empty();
        Ok(ResourceFilter {
            kinds: kind_names.iter().map(|k| KindSelector::parse(k)).collect(),
            kind_names,
            names,
            namespaces,
            annotations,
            selector,
            namespace_selector,
            operations,
            subjects,
            roles: strings(v.get("roles")),
            cluster_roles: strings(v.get("clusterRoles")),
            resource_description_empty,
            path: path.to_owned(),
        })
    }

    fn user_info_empty(&self) -> bool {
        self.subjects.is_empty() && self.roles.is_empty() && self.cluster_roles.is_empty()
    }

    fn is_empty(&self) -> bool {
        self.resource_description_empty && self.user_info_empty()
    }

    /// Whether every criterion matches. `ignore_user` drops user criteria. A criterion that
    /// cannot be decided makes the filter unknown unless another criterion fails.
    fn matches(&self, input: &ResourceInput, ignore_user: bool) -> Tri {
        let mut unknown: Option<Error> = None;
        if !self.operations.is_empty()
            && !self
                .operations
                .iter()
                .any(|o| o == input.operation.as_str())
        {
            return Tri::No;
        }
        if !self.kinds.is_empty() {
            let (g, v, k) = input.gvk();
            if !self
                .kinds
                .iter()
                .any(|ks| ks.matches(&g, &v, &k, &input.subresource))
            {
                return Tri::No;
            }
        }
        let name = input.name();
        if !self.names.is_empty() && !self.names.iter().any(|n| wildcard_match(n, name)) {
            return Tri::No;
        }
        if !self.namespaces.is_empty() {
            let ns = if input.kind() == "Namespace" {
                name
            } else {
                input.namespace()
            };
            if !self.namespaces.iter().any(|n| wildcard_match(n, ns)) {
                return Tri::No;
            }
        }
        if !self.annotations.is_empty() {
            let actual = input.annotations();
            let ok = self.annotations.iter().all(|(k, v)| {
                actual
                    .iter()
                    .any(|(ak, av)| wildcard_match(k, ak) && wildcard_match(v, av))
            });
            if !ok {
                return Tri::No;
            }
        }
        if let Some(sel) = &self.selector
            && !sel.matches(&input.labels())
        {
            return Tri::No;
        }
        if let Some(sel) = &self.namespace_selector {
            if input.kind() == "Namespace" {
                return Tri::No;
            }
            let ns = input.selector_namespace();
            let mut labels = input.namespace_labels.clone();
            if !ns.is_empty() {
                labels
                    .entry(NAMESPACE_NAME_LABEL.to_owned())
                    .or_insert_with(|| ns.to_owned());
            }
            if input.namespace_labels_unknown
                && !ns.is_empty()
                && !sel.only_uses_key(NAMESPACE_NAME_LABEL)
            {
                unknown = Some(Error::NamespaceLabelsUnknown {
                    namespace: ns.to_owned(),
                    path: format!("{}.resources.namespaceSelector", self.path),
                });
            } else if !sel.matches(&labels) {
                return Tri::No;
            }
        }
        if ignore_user {
            return match unknown {
                Some(e) => Tri::Unknown(e),
                None => Tri::Yes,
            };
        }
        let info = &input.request_info;
        for (field, wanted, have) in [
            ("roles", &self.roles, &info.roles),
            ("clusterRoles", &self.cluster_roles, &info.cluster_roles),
        ] {
            if wanted.is_empty() {
                continue;
            }
            if input.roles_unknown {
                unknown.get_or_insert_with(|| Error::RolesUnknown {
                    field: field.to_owned(),
                    path: self.path.clone(),
                });
            } else if !wanted.iter().any(|r| have.contains(r)) {
                return Tri::No;
            }
        }
        if !self.subjects.is_empty() {
            let user = &info.user_info;
            let ok = self
                .subjects
                .iter()
                .any(|(kind, name, ns)| match kind.as_str() {
                    "ServiceAccount" => wildcard_match(
                        &format!("system:serviceaccount:{ns}:{name}"),
                        &user.username,
                    ),
                    "Group" => user.groups.iter().any(|g| wildcard_match(name, g)),
                    "User" => wildcard_match(name, &user.username),
                    _ => false,
                });
            if !ok {
                return Tri::No;
            }
        }
        match unknown {
            Some(e) => Tri::Unknown(e),
            None => Tri::Yes,
        }
    }
}

/// `any`: yes if one filter is yes; else unknown if one is unknown. `all`: no if one is no;
/// else unknown if one is unknown.
fn combine(filters: &[ResourceFilter], all: bool, f: impl Fn(&ResourceFilter) -> Tri) -> Tri {
    let mut unknown = None;
    for filter in filters {
        match f(filter) {
            Tri::Yes if !all => return Tri::Yes,
            Tri::No if all => return Tri::No,
            Tri::Unknown(e) => {
                unknown.get_or_insert(e);
            }
            _ => {}
        }
    }
    match unknown {
        Some(e) => Tri::Unknown(e),
        None if all => Tri::Yes,
        None => Tri::No,
    }
}

/// A `match` or `exclude` block.
#[derive(Debug, Clone, Default)]
pub struct MatchBlock {
    /// `any` filters.
    pub any: Vec<ResourceFilter>,
    /// `all` filters.
    pub all: Vec<ResourceFilter>,
    /// The legacy single filter.
    pub legacy: Option<ResourceFilter>,
}

impl MatchBlock {
    /// Parses a `match`/`exclude` block.
    pub fn from_value(v: &Value, path: &str) -> Result<Self, Error> {
        let list = |key: &str| -> Result<Vec<ResourceFilter>, Error> {
            match v.get(key) {
                Some(Value::Array(a)) => a
                    .iter()
                    .enumerate()
                    .map(|(i, f)| ResourceFilter::from_value(f, &format!("{path}.{key}[{i}]")))
                    .collect(),
                Some(Value::Null) | None => Ok(Vec::new()),
                Some(_) => Err(Error::InvalidPolicy {
                    policy: String::new(),
                    path: format!("{path}.{key}"),
                    reason: "must be a list".into(),
                }),
            }
        };
        let any = list("any")?;
        let all = list("all")?;
        let legacy = if any.is_empty() && all.is_empty() {
            let f = ResourceFilter::from_value(v, path)?;
            (!f.is_empty()).then_some(f)
        } else {
            None
        };
        Ok(MatchBlock { any, all, legacy })
    }

    /// Every filter of the block.
    pub fn filters(&self) -> impl Iterator<Item = &ResourceFilter> {
        self.any.iter().chain(&self.all).chain(&self.legacy)
    }

    /// Whether a filter matches on `roles` or `clusterRoles` (facts that need an RBAC look-up
    /// of the requester).
    pub fn uses_roles(&self) -> bool {
        self.filters()
            .any(|f| !f.roles.is_empty() || !f.cluster_roles.is_empty())
    }

    /// Whether the block is empty.
    pub fn is_empty(&self) -> bool {
        self.any.is_empty() && self.all.is_empty() && self.legacy.is_none()
    }

    fn decide(&self, input: &ResourceInput, ignore_user: bool) -> Tri {
        let m = |f: &ResourceFilter| {
            if f.is_empty() {
                Tri::No
            } else {
                f.matches(input, ignore_user)
            }
        };
        if !self.any.is_empty() {
            combine(&self.any, false, m)
        } else if !self.all.is_empty() {
            combine(&self.all, true, m)
        } else {
            match &self.legacy {
                Some(f) => m(f),
                None => Tri::No,
            }
        }
    }

    fn result(t: Tri) -> Result<bool, Error> {
        match t {
            Tri::Yes => Ok(true),
            Tri::No => Ok(false),
            Tri::Unknown(e) => Err(e),
        }
    }

    /// `match` semantics: does the resource match? User criteria are ignored when nothing is
    /// known about the requester (background scans, `kyverno apply`). An error when the answer
    /// depends on facts the caller did not supply (unknown namespace labels or roles).
    pub fn try_matches(&self, input: &ResourceInput) -> Result<bool, Error> {
        Self::result(self.decide(input, input.request_info.is_empty()))
    }

    /// As [`MatchBlock::try_matches`], but user criteria (`subjects`, `roles`,
    /// `clusterRoles`) always count: an unknown requester matches none of them. This is how
    /// PolicyExceptions match, so an exception for one user never excuses everyone.
    pub fn try_matches_with_user(&self, input: &ResourceInput) -> Result<bool, Error> {
        Self::result(self.decide(input, false))
    }

    /// `exclude` semantics: is the resource excluded? An error when the answer depends on
    /// facts the caller did not supply.
    pub fn try_excludes(&self, input: &ResourceInput) -> Result<bool, Error> {
        Self::result(self.decide(input, false))
    }

    /// [`MatchBlock::try_matches`], an unknown counted as a match (the rule is then evaluated
    /// rather than silently skipped).
    pub fn matches(&self, input: &ResourceInput) -> bool {
        self.try_matches(input).unwrap_or(true)
    }

    /// [`MatchBlock::try_excludes`], an unknown counted as not excluded.
    pub fn excludes(&self, input: &ResourceInput) -> bool {
        self.try_excludes(input).unwrap_or(false)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kind_selectors() {
        let k = KindSelector::parse("apps/v1/Deployment");
        assert!(k.matches("apps", "v1", "Deployment", ""));
        assert!(!k.matches("apps", "v1", "Deployment", "scale"));
        assert!(KindSelector::parse("Deployment/scale").matches(
            "apps",
            "v1",
            "Deployment",
            "scale"
        ));
        assert!(KindSelector::parse("v1/Pod").matches("", "v1", "Pod", ""));
        assert!(KindSelector::parse("Pod.exec").matches("", "v1", "Pod", "exec"));
        assert!(KindSelector::parse("*").matches("", "v1", "Pod", ""));
        assert!(!KindSelector::parse("*").matches("", "v1", "Pod", "status"));
        assert!(KindSelector::parse("*/*").matches("", "v1", "Pod", "status"));
    }

    #[test]
    fn match_any_and_exclude() {
        let m = MatchBlock::from_value(
            &json!({"any": [{"resources": {"kinds": ["Pod"], "namespaces": ["ml-*"]}}]}),
            "match",
        )
        .unwrap();
        let pod = |ns: &str| {
            ResourceInput::create(json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "p", "namespace": ns, "labels": {"app": "llm"}}}))
        };
        assert!(m.matches(&pod("ml-prod")));
        assert!(!m.matches(&pod("default")));
        let ex = MatchBlock::from_value(
            &json!({"any": [{"resources": {"selector": {"matchLabels": {"app": "ll*"}}}}]}),
            "exclude",
        )
        .unwrap();
        assert!(ex.excludes(&pod("ml-prod")));
    }
}
