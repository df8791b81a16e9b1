//! Cluster data the caller supplies: what Kyverno would read from the API server, a
//! GlobalContextEntry or an external service while it evaluates a rule.
//!
//! The engine does no I/O. A rule whose `context` reads cluster data (`configMap`, `apiCall`,
//! `globalReference`) asks a [`ClusterData`] the caller put in the evaluation
//! [`Env`](crate::lang::jmespath::Env) with
//! [`Env::with_cluster`](crate::lang::jmespath::Env::with_cluster). An answer the source does not
//! have is a [`LookupError`] with a stable code, and the rule that needs it reports `error` (fail
//! closed), never an empty answer that could let it pass.
//!
//! [`ClusterSnapshot`] is a ready implementation over a fixed set of resources, global
//! context entries and canned HTTP responses, the way `kyverno test` feeds its fake client.
//! A webhook that wants live answers implements [`ClusterData`] over its own informer caches,
//! or over calls to the API server made where blocking is allowed: the trait is synchronous,
//! so such an evaluation runs off the async runtime's workers (the kube-rs example webhook
//! runs it on tokio's blocking pool, each call bounded by the request's deadline).
//!
//! ```
//! use std::sync::Arc;
//! use provenance_policy::admission::cluster::{ClusterData, ClusterSnapshot, LookupError};
//! use serde_json::json;
//!
//! let mut snapshot = ClusterSnapshot::new();
//! snapshot.add_resource(json!({
//!     "apiVersion": "v1", "kind": "ConfigMap",
//!     "metadata": {"name": "registries", "namespace": "default"},
//!     "data": {"allowed": "ghcr.io"},
//! }));
//! snapshot.add_global_context("team-quotas", json!({"gpu": 8}));
//!
//! // What a `configMap` context entry sees: `data` and `metadata`.
//! let cm = snapshot.config_map("default", "registries").unwrap();
//! assert_eq!(cm["data"]["allowed"], "ghcr.io");
//! // An `apiCall` GET of a list, in the API server's shape.
//! let list = snapshot.api_call("GET", "/api/v1/namespaces/default/configmaps", None).unwrap();
//! assert_eq!(list["kind"], "ConfigMapList");
//! assert_eq!(list["items"].as_array().unwrap().len(), 1);
//! // Missing data is an error with a code, never an empty answer.
//! let missing = snapshot.config_map("default", "absent").unwrap_err();
//! assert_eq!(missing.code(), "policy.context.not_found");
//!
//! // Rules see it through the evaluation environment.
//! let env = provenance_policy::lang::jmespath::Env::default().with_cluster(Arc::new(snapshot));
//! assert!(env.cluster.is_some());
//! ```

use std::collections::BTreeMap;
use std::fmt::Debug;

use serde_json::{Map, Value, json};

/// Why a look-up in the cluster data has no answer. Each variant has a stable code
/// ([`LookupError::code`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LookupError {
    /// The source holds no data of this kind at all (no cluster resources, no canned
    /// response for external services): the rule cannot be decided with this source.
    #[error("no {what} supplied")]
    NotSupplied {
        /// What kind of data (`cluster resources`, `response for POST https://...`).
        what: String,
    },
    /// The source holds data of this kind, but not the object asked for.
    #[error("{what} not found")]
    NotFound {
        /// The object (`ConfigMap default/settings`, `GET /apis/x/v1/things/a`).
        what: String,
    },
    /// A canned response has a status outside 2xx (an apiCall fails on it, as Kyverno's does).
    #[error("HTTP {status} from {method} {url}")]
    Status {
        /// The method.
        method: String,
        /// The URL or URL path.
        url: String,
        /// The HTTP status.
        status: u16,
    },
    /// The request cannot be answered as asked (an unparsable URL path, a query parameter
    /// the source does not implement, a projection that does not exist).
    #[error("{what}: {reason}")]
    Invalid {
        /// The request.
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// A live source could not answer in time or at all (the API server unreachable, a
    /// timeout, the request's deadline passed, an unreadable answer).
    #[error("{what}: {reason}")]
    Unavailable {
        /// The request.
        what: String,
        /// What went wrong.
        reason: String,
    },
    /// Answering would go beyond a bound the source keeps (look-ups per request, bytes of
    /// an answer).
    #[error("{what}: over the limit of {limit}")]
    LimitExceeded {
        /// The request.
        what: String,
        /// The bound, with its unit (`8 API calls per request`, `4194304 bytes`).
        limit: String,
    },
}

impl LookupError {
    /// A stable, machine-readable code, e.g. `policy.context.not_found`.
    pub fn code(&self) -> &'static str {
        match self {
            LookupError::NotSupplied { .. } => "policy.context.not_supplied",
            LookupError::NotFound { .. } => "policy.context.not_found",
            LookupError::Status { .. } => "policy.context.http_status",
            LookupError::Invalid { .. } => "policy.context.invalid_lookup",
            LookupError::Unavailable { .. } => "policy.context.unavailable",
            LookupError::LimitExceeded { .. } => "policy.context.limit_exceeded",
        }
    }
}

/// Answers the look-ups of rule `context` entries. Every method has a default that answers
/// [`LookupError::NotSupplied`], so an implementation provides only what it has.
pub trait ClusterData: Send + Sync + Debug {
    /// A ConfigMap, as a `configMap` context entry sees it: `{"data": ..., "metadata": ...}`.
    fn config_map(&self, namespace: &str, name: &str) -> Result<Value, LookupError> {
        let _ = (namespace, name);
        Err(LookupError::NotSupplied {
            what: "ConfigMaps".into(),
        })
    }

    /// A call to the Kubernetes API server (`apiCall.urlPath`): the JSON body the API server
    /// returns, a single object for a GET of a name, a `<Kind>List` for a collection.
    /// `url_path` may carry a query (`?labelSelector=app%3Dweb`); `body` is the POST body.
    fn api_call(
        &self,
        method: &str,
        url_path: &str,
        body: Option<&Value>,
    ) -> Result<Value, LookupError> {
        let _ = body;
        Err(LookupError::NotSupplied {
            what: format!("Kubernetes API data for {method} {url_path}"),
        })
    }

    /// A call to an external service (`apiCall.service.url`): the JSON body it answers.
    fn service_call(
        &self,
        method: &str,
        url: &str,
        body: Option<&Value>,
    ) -> Result<Value, LookupError> {
        let _ = body;
        Err(LookupError::NotSupplied {
            what: format!("response for {method} {url}"),
        })
    }

    /// The data of a GlobalContextEntry (`globalReference.name`), before any projection.
    fn global_context(&self, name: &str) -> Result<Value, LookupError> {
        Err(LookupError::NotSupplied {
            what: format!("global context entry {name:?}"),
        })
    }

    /// One resource by `apiVersion`, `kind`, namespace (empty for cluster-scoped resources)
    /// and name, as the API server stores it: the source of a `generate.clone`, and whether a
    /// `generate` target already exists. An empty `api_version` matches any version.
    fn resource(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Value, LookupError> {
        let _ = (namespace, name);
        Err(LookupError::NotSupplied {
            what: format!("cluster resources ({api_version} {kind})"),
        })
    }

    /// Every resource of a kind in a namespace (empty: cluster-scoped resources, or every
    /// namespace for a namespaced kind), as a `generate.cloneList` lists its sources. An empty
    /// `api_version` matches any version.
    fn list_resources(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
    ) -> Result<Vec<Value>, LookupError> {
        let _ = namespace;
        Err(LookupError::NotSupplied {
            what: format!("cluster resources ({api_version} {kind})"),
        })
    }
}

/// One canned HTTP answer of a [`ClusterSnapshot`].
#[derive(Debug, Clone, PartialEq)]
pub struct CannedResponse {
    /// The HTTP status (2xx answers, anything else fails the call).
    pub status: u16,
    /// The JSON body.
    pub body: Value,
}

/// Cluster data fixed in advance: resources (answering `configMap` and API GETs as the API
/// server would), CRDs (naming their kinds' resources), GlobalContextEntry data and canned
/// responses for URL paths or service URLs.
///
/// Which kinds of data it holds matter: a snapshot without resources answers
/// [`LookupError::NotSupplied`] to ConfigMap and API look-ups (unless a canned response
/// matches), one with resources answers [`LookupError::NotFound`] for what is not there.
#[derive(Debug, Clone, Default)]
pub struct ClusterSnapshot {
    resources: Option<Vec<Value>>,
    /// (group, plural) -> kind, from CRDs.
    crd_kinds: BTreeMap<(String, String), String>,
    global: BTreeMap<String, Result<Value, LookupError>>,
    /// `METHOD:url` or `url` -> response.
    responses: BTreeMap<String, CannedResponse>,
}

impl ClusterSnapshot {
    /// An empty snapshot: it holds no kind of data yet.
    pub fn new() -> Self {
        ClusterSnapshot::default()
    }

    /// Adds a resource. A `CustomResourceDefinition` also names its kind's resource (plural)
    /// for API paths; a `<Kind>List` adds its items.
    pub fn add_resource(&mut self, resource: Value) {
        if resource.get("kind").and_then(Value::as_str) == Some("CustomResourceDefinition") {
            let spec = &resource["spec"];
            if let (Some(g), Some(p), Some(k)) = (
                spec["group"].as_str(),
                spec.pointer("/names/plural").and_then(Value::as_str),
                spec.pointer("/names/kind").and_then(Value::as_str),
            ) {
                self.crd_kinds
                    .insert((g.to_owned(), p.to_owned()), k.to_owned());
            }
        }
        let list = self.resources.get_or_insert_with(Vec::new);
        match (
            resource.get("kind").and_then(Value::as_str),
            resource.get("items").and_then(Value::as_array),
        ) {
            (Some(k), Some(items)) if k.ends_with("List") => list.extend(items.iter().cloned()),
            _ => list.push(resource),
        }
    }

    /// Adds the resources of one cluster resources file, as `provenance apply
    /// --cluster-resources` and `kyverno test`'s `clusterResources` read it: a
    /// `ClusterResource` document brings its `spec.resources`; any other document (a `<Kind>List`
    /// too) is a resource itself; empty documents are skipped. `file` names the text in
    /// errors. Returns the CRD files the `ClusterResource` documents name (`spec.crds`,
    /// relative to the file's folder): the caller reads them and adds them with
    /// [`ClusterSnapshot::add_resource_documents`] (the engine reads no files).
    ///
    /// On an error the snapshot may hold part of the file: build a new snapshot and keep the
    /// old one in force until every file loaded.
    pub fn add_cluster_resources(
        &mut self,
        text: &str,
        file: &str,
    ) -> Result<Vec<String>, crate::Error> {
        let mut crds = Vec::new();
        for doc in crate::yaml::load_documents(text, file)? {
            if doc.is_null() {
                continue;
            }
            if doc.get("kind").and_then(Value::as_str) == Some("ClusterResource") {
                for r in doc
                    .pointer("/spec/resources")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    self.add_resource(r.clone());
                }
                crds.extend(
                    doc.pointer("/spec/crds")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .map(str::to_owned),
                );
            } else {
                self.add_resource(doc);
            }
        }
        Ok(crds)
    }

    /// Adds every document of `text` as a resource (a CRD file a `ClusterResource` names);
    /// empty documents are skipped. `file` names the text in errors.
    pub fn add_resource_documents(&mut self, text: &str, file: &str) -> Result<(), crate::Error> {
        for doc in crate::yaml::load_documents(text, file)? {
            if !doc.is_null() {
                self.add_resource(doc);
            }
        }
        Ok(())
    }

    /// Marks the snapshot as holding cluster resources even when it has none yet: look-ups
    /// then answer [`LookupError::NotFound`], not [`LookupError::NotSupplied`].
    pub fn with_resources_supplied(mut self) -> Self {
        self.resources.get_or_insert_with(Vec::new);
        self
    }

    /// Sets the data of a GlobalContextEntry.
    pub fn add_global_context(&mut self, name: impl Into<String>, data: Value) {
        self.global.insert(name.into(), Ok(data));
    }

    /// Records that a GlobalContextEntry cannot be answered: rules that reference it error
    /// with `error`.
    pub fn add_global_context_error(&mut self, name: impl Into<String>, error: LookupError) {
        self.global.insert(name.into(), Err(error));
    }

    /// A canned answer for a URL path (`/api/v1/...`) or a service URL. With `method`, only
    /// calls with that method match; without, any method does (a method-specific answer
    /// wins).
    pub fn add_response(&mut self, method: Option<&str>, url: &str, response: CannedResponse) {
        let key = match method.map(str::trim).filter(|m| !m.is_empty()) {
            Some(m) => format!("{}:{url}", m.to_uppercase()),
            None => url.to_owned(),
        };
        self.responses.insert(key, response);
    }

    fn canned(&self, method: &str, url: &str) -> Option<Result<Value, LookupError>> {
        let r = self
            .responses
            .get(&format!("{method}:{url}"))
            .or_else(|| self.responses.get(url))?;
        Some(if (200..300).contains(&r.status) {
            Ok(r.body.clone())
        } else {
            Err(LookupError::Status {
                method: method.to_owned(),
                url: url.to_owned(),
                status: r.status,
            })
        })
    }

    fn supplied(&self, what: impl FnOnce() -> String) -> Result<&[Value], LookupError> {
        self.resources
            .as_deref()
            .ok_or_else(|| LookupError::NotSupplied { what: what() })
    }

    /// The resource (plural, lowercase) a kind is served as.
    fn plural_of(&self, group: &str, kind: &str) -> String {
        if let Some(((_, p), _)) = self
            .crd_kinds
            .iter()
            .find(|((g, _), k)| g == group && k.as_str() == kind)
        {
            return p.clone();
        }
        crate::cel_policies::validating_policy::kind_to_resource(kind)
    }

    /// Every resource with the resource type (plural) it is served as.
    pub fn resources_by_type(&self) -> Vec<(String, &Value)> {
        self.resources
            .iter()
            .flatten()
            .map(|r| {
                let group = str_at(r, "/apiVersion")
                    .rsplit_once('/')
                    .map(|(g, _)| g)
                    .unwrap_or_default();
                (self.plural_of(group, str_at(r, "/kind")), r)
            })
            .collect()
    }
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// A Kubernetes API path (`/api/v1/namespaces/NS/RESOURCE/NAME`,
/// `/apis/GROUP/VERSION/RESOURCE?labelSelector=...`), parsed as [`ClusterSnapshot`] reads
/// `apiCall.urlPath`: no subresource, and no query parameter but `labelSelector` (and
/// `limit` / `resourceVersion`, which are ignored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiPath {
    /// The API group (empty for the core group, `/api/...`).
    pub group: String,
    /// The version (`v1`).
    pub version: String,
    /// The namespace, when the path names one.
    pub namespace: Option<String>,
    /// The resource type, plural (`configmaps`).
    pub resource: String,
    /// The object's name, for a GET of one object.
    pub name: Option<String>,
    /// The `labelSelector` query, percent-decoded.
    pub label_selector: Option<String>,
}

impl ApiPath {
    /// Parses `url_path`; a path this grammar does not cover is
    /// [`LookupError::Invalid`] (`policy.context.invalid_lookup`).
    pub fn parse(url_path: &str) -> Result<ApiPath, LookupError> {
        parse_api_path(url_path)
    }
}

fn parse_api_path(url_path: &str) -> Result<ApiPath, LookupError> {
    let invalid = |reason: &str| LookupError::Invalid {
        what: format!("GET {url_path}"),
        reason: reason.to_owned(),
    };
    let (path, query) = match url_path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (url_path, None),
    };
    let mut label_selector = None;
    for pair in query.into_iter().flat_map(|q| q.split('&')) {
        if pair.is_empty() {
            continue;
        }
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "labelSelector" => label_selector = Some(percent_decode(v)),
            "limit" | "resourceVersion" => {}
            other => {
                return Err(invalid(&format!(
                    "query parameter {other:?} is not supported"
                )));
            }
        }
    }
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match parts.as_slice() {
        ["api", v, rest @ ..] => (String::new(), (*v).to_owned(), rest),
        ["apis", g, v, rest @ ..] => ((*g).to_owned(), (*v).to_owned(), rest),
        _ => return Err(invalid("not a Kubernetes API path (/api/... or /apis/...)")),
    };
    let (namespace, resource, name) = match rest {
        ["namespaces", ns, r] => (Some(*ns), *r, None),
        ["namespaces", ns, r, n] => (Some(*ns), *r, Some(*n)),
        [r] => (None, *r, None),
        [r, n] => (None, *r, Some(*n)),
        _ => return Err(invalid("subresources and other paths are not supported")),
    };
    if resource.is_empty() || name.is_some_and(str::is_empty) {
        return Err(invalid("empty path segment"));
    }
    Ok(ApiPath {
        group,
        version,
        namespace: namespace.map(str::to_owned),
        resource: resource.to_owned(),
        name: name.map(str::to_owned),
        label_selector,
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                match s.get(i + 1..i + 3).map(|h| u8::from_str_radix(h, 16)) {
                    Some(Ok(b)) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    _ => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether `labels` satisfy a label selector string (`a=b,c!=d,e,!f,g in (x,y),h notin (z)`).
fn selector_matches(selector: &str, labels: &Map<String, Value>) -> Result<bool, String> {
    let label = |k: &str| labels.get(k).and_then(Value::as_str);
    // Split on commas outside parentheses.
    let mut reqs = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in selector.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                reqs.push(&selector[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    reqs.push(&selector[start..]);
    for req in reqs.into_iter().map(str::trim).filter(|r| !r.is_empty()) {
        let ok = if let Some((k, v)) = req.split_once("!=") {
            label(k.trim()) != Some(v.trim())
        } else if let Some((k, v)) = req.split_once("==").or_else(|| req.split_once('=')) {
            label(k.trim()) == Some(v.trim())
        } else if let Some((k, set)) = req.split_once(" notin ") {
            let set = parse_set(set)?;
            label(k.trim()).is_none_or(|v| !set.contains(&v))
        } else if let Some((k, set)) = req.split_once(" in ") {
            let set = parse_set(set)?;
            label(k.trim()).is_some_and(|v| set.contains(&v))
        } else if let Some(k) = req.strip_prefix('!') {
            label(k.trim()).is_none()
        } else if req.contains([' ', '(', ')', '<', '>']) {
            return Err(format!("unsupported label selector requirement {req:?}"));
        } else {
            label(req).is_some()
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

fn parse_set(s: &str) -> Result<Vec<&str>, String> {
    let inner = s
        .trim()
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| format!("malformed set {s:?}"))?;
    Ok(inner.split(',').map(str::trim).collect())
}

impl ClusterData for ClusterSnapshot {
    fn config_map(&self, namespace: &str, name: &str) -> Result<Value, LookupError> {
        let resources = self.supplied(|| "cluster resources (ConfigMaps)".into())?;
        let cm = resources
            .iter()
            .find(|r| {
                str_at(r, "/apiVersion") == "v1"
                    && str_at(r, "/kind") == "ConfigMap"
                    && str_at(r, "/metadata/namespace") == namespace
                    && str_at(r, "/metadata/name") == name
            })
            .ok_or_else(|| LookupError::NotFound {
                what: format!("ConfigMap {namespace}/{name}"),
            })?;
        Ok(json!({
            "data": cm.get("data").cloned().unwrap_or(Value::Null),
            "metadata": cm.get("metadata").cloned().unwrap_or(Value::Null),
        }))
    }

    fn api_call(
        &self,
        method: &str,
        url_path: &str,
        body: Option<&Value>,
    ) -> Result<Value, LookupError> {
        let method = method.to_uppercase();
        if let Some(r) = self.canned(&method, url_path) {
            return r;
        }
        if method != "GET" {
            return Err(LookupError::NotSupplied {
                what: format!("response for {method} {url_path}"),
            });
        }
        let _ = body;
        let resources = self.supplied(|| format!("cluster resources for GET {url_path}"))?;
        let p = parse_api_path(url_path)?;
        let api_version = if p.group.is_empty() {
            p.version.clone()
        } else {
            format!("{}/{}", p.group, p.version)
        };
        let matching = resources.iter().filter(|r| {
            str_at(r, "/apiVersion") == api_version
                && self.plural_of(&p.group, str_at(r, "/kind")) == p.resource
                && p.namespace
                    .as_deref()
                    .is_none_or(|ns| str_at(r, "/metadata/namespace") == ns)
        });
        if let Some(name) = &p.name {
            let found = matching
                .filter(|r| str_at(r, "/metadata/name") == name)
                // A cluster-scoped GET names no namespace: only objects without one answer.
                .find(|r| p.namespace.is_some() || str_at(r, "/metadata/namespace").is_empty());
            return found.cloned().ok_or_else(|| LookupError::NotFound {
                what: format!("GET {url_path}"),
            });
        }
        let mut items = Vec::new();
        for r in matching {
            if let Some(sel) = &p.label_selector {
                let labels = r
                    .pointer("/metadata/labels")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                let ok = selector_matches(sel, &labels).map_err(|reason| LookupError::Invalid {
                    what: format!("GET {url_path}"),
                    reason,
                })?;
                if !ok {
                    continue;
                }
            }
            items.push(r.clone());
        }
        // The kind of the list: from an item, a CRD, or the resource name.
        let kind = items
            .first()
            .map(|r| str_at(r, "/kind").to_owned())
            .or_else(|| {
                self.crd_kinds
                    .get(&(p.group.clone(), p.resource.clone()))
                    .cloned()
            })
            .or_else(|| {
                resources
                    .iter()
                    .find(|r| self.plural_of(&p.group, str_at(r, "/kind")) == p.resource)
                    .map(|r| str_at(r, "/kind").to_owned())
            });
        let Some(kind) = kind else {
            return Err(LookupError::NotFound {
                what: format!("resource type {:?} of {api_version}", p.resource),
            });
        };
        Ok(json!({
            "apiVersion": api_version,
            "kind": format!("{kind}List"),
            "metadata": {"resourceVersion": ""},
            "items": items,
        }))
    }

    fn service_call(
        &self,
        method: &str,
        url: &str,
        body: Option<&Value>,
    ) -> Result<Value, LookupError> {
        let _ = body;
        let method = method.to_uppercase();
        self.canned(&method, url).unwrap_or_else(|| {
            Err(LookupError::NotSupplied {
                what: format!("response for {method} {url}"),
            })
        })
    }

    fn resource(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Value, LookupError> {
        let resources = self.supplied(|| format!("cluster resources ({api_version} {kind})"))?;
        resources
            .iter()
            .find(|r| {
                (api_version.is_empty() || str_at(r, "/apiVersion") == api_version)
                    && str_at(r, "/kind") == kind
                    && str_at(r, "/metadata/namespace") == namespace
                    && str_at(r, "/metadata/name") == name
            })
            .cloned()
            .ok_or_else(|| LookupError::NotFound {
                what: match namespace {
                    "" => format!("{api_version} {kind} {name}"),
                    ns => format!("{api_version} {kind} {ns}/{name}"),
                },
            })
    }

    fn list_resources(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
    ) -> Result<Vec<Value>, LookupError> {
        let resources = self.supplied(|| format!("cluster resources ({api_version} {kind})"))?;
        Ok(resources
            .iter()
            .filter(|r| {
                (api_version.is_empty() || str_at(r, "/apiVersion") == api_version)
                    && str_at(r, "/kind") == kind
                    && (namespace.is_empty() || str_at(r, "/metadata/namespace") == namespace)
            })
            .cloned()
            .collect())
    }

    fn global_context(&self, name: &str) -> Result<Value, LookupError> {
        match self.global.get(name) {
            Some(r) => r.clone(),
            None if self.global.is_empty() => Err(LookupError::NotSupplied {
                what: format!("global context entry {name:?}"),
            }),
            None => Err(LookupError::NotFound {
                what: format!("global context entry {name:?}"),
            }),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn snapshot() -> ClusterSnapshot {
        let mut s = ClusterSnapshot::new();
        s.add_resource(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a", "namespace": "default", "labels": {"app": "web"}},
            "data": {"k": "v"}}));
        s.add_resource(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "b", "namespace": "other", "labels": {"app": "db"}}}));
        s.add_resource(json!({"apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition", "metadata": {"name": "things.example.com"},
            "spec": {"group": "example.com", "names": {"kind": "Thing", "plural": "things"}}}));
        s.add_resource(json!({"apiVersion": "example.com/v1", "kind": "Thing",
            "metadata": {"name": "t1"}, "spec": {"x": 1}}));
        s
    }

    #[test]
    fn config_maps() {
        let s = snapshot();
        let cm = s.config_map("default", "a").unwrap();
        assert_eq!(cm["data"]["k"], "v");
        assert_eq!(cm["metadata"]["name"], "a");
        assert_eq!(s.config_map("other", "b").unwrap()["data"], Value::Null);
        let e = s.config_map("default", "b").unwrap_err();
        assert_eq!(e.code(), "policy.context.not_found");
        assert_eq!(e.to_string(), "ConfigMap default/b not found");
        let e = ClusterSnapshot::new()
            .config_map("default", "a")
            .unwrap_err();
        assert_eq!(e.code(), "policy.context.not_supplied");
    }

    #[test]
    fn api_gets_and_lists() {
        let s = snapshot();
        let t = s
            .api_call("GET", "/apis/example.com/v1/things/t1", None)
            .unwrap();
        assert_eq!(t["spec"]["x"], 1);
        let e = s
            .api_call("GET", "/apis/example.com/v1/things/t2", None)
            .unwrap_err();
        assert_eq!(e.code(), "policy.context.not_found");
        let all = s.api_call("GET", "/api/v1/configmaps", None).unwrap();
        assert_eq!(all["kind"], "ConfigMapList");
        assert_eq!(all["items"].as_array().unwrap().len(), 2);
        let ns = s
            .api_call("GET", "/api/v1/namespaces/other/configmaps", None)
            .unwrap();
        assert_eq!(ns["items"][0]["metadata"]["name"], "b");
        let sel = s
            .api_call("GET", "/api/v1/configmaps?labelSelector=app%3Dweb", None)
            .unwrap();
        assert_eq!(sel["items"].as_array().unwrap().len(), 1);
        let sel = s
            .api_call(
                "GET",
                "/api/v1/configmaps?labelSelector=app+in+(db,x)",
                None,
            )
            .unwrap();
        assert_eq!(sel["items"][0]["metadata"]["name"], "b");
        // A known type with no objects is an empty list; an unknown one is not found.
        let none = s
            .api_call("GET", "/api/v1/namespaces/empty/configmaps", None)
            .unwrap();
        assert_eq!(none["items"], json!([]));
        let e = s.api_call("GET", "/api/v1/secrets", None).unwrap_err();
        assert_eq!(e.code(), "policy.context.not_found");
        let e = s.api_call("GET", "/api/v1/pods?watch=1", None).unwrap_err();
        assert_eq!(e.code(), "policy.context.invalid_lookup");
        let e = s.api_call("GET", "/healthz", None).unwrap_err();
        assert_eq!(e.code(), "policy.context.invalid_lookup");
        let e = s.api_call("POST", "/apis/x/v1/reviews", None).unwrap_err();
        assert_eq!(e.code(), "policy.context.not_supplied");
    }

    #[test]
    fn cluster_resources_files_are_read_as_the_cli_reads_them() {
        let mut s = ClusterSnapshot::new();
        let crds = s
            .add_cluster_resources(
                "apiVersion: cli.kyverno.io/v1alpha1\nkind: ClusterResource\nspec:\n  \
                 crds: [crds/thing.yaml]\n  resources:\n  - {apiVersion: example.com/v1, \
                 kind: Thing, metadata: {name: t1}}\n---\n---\napiVersion: v1\nkind: List\n\
                 items:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: a, namespace: ns}}\n",
                "cluster.yaml",
            )
            .unwrap();
        assert_eq!(crds, vec!["crds/thing.yaml".to_owned()]);
        assert!(s.config_map("ns", "a").is_ok());
        // The kind is served as `thingz` only once the CRD says so.
        assert!(
            s.api_call("GET", "/apis/example.com/v1/thingz/t1", None)
                .is_err()
        );
        s.add_resource_documents(
            "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n\
             metadata: {name: things.example.com}\n\
             spec: {group: example.com, names: {kind: Thing, plural: thingz}}\n",
            "crds/thing.yaml",
        )
        .unwrap();
        assert!(
            s.api_call("GET", "/apis/example.com/v1/thingz/t1", None)
                .is_ok()
        );
        let e = s
            .add_cluster_resources("kind: [", "broken.yaml")
            .unwrap_err();
        assert!(e.to_string().contains("broken.yaml"), "{e}");
    }

    #[test]
    fn canned_responses_and_global_context() {
        let mut s = ClusterSnapshot::new();
        s.add_response(
            None,
            "https://svc.example/check",
            CannedResponse {
                status: 200,
                body: json!({"allowed": true}),
            },
        );
        s.add_response(
            Some("post"),
            "https://svc.example/check",
            CannedResponse {
                status: 503,
                body: json!({}),
            },
        );
        assert_eq!(
            s.service_call("GET", "https://svc.example/check", None)
                .unwrap()["allowed"],
            true
        );
        let e = s
            .service_call("POST", "https://svc.example/check", None)
            .unwrap_err();
        assert_eq!(e.code(), "policy.context.http_status");
        let e = s
            .service_call("GET", "https://svc.example/other", None)
            .unwrap_err();
        assert_eq!(e.code(), "policy.context.not_supplied");
        assert_eq!(
            s.global_context("x").unwrap_err().code(),
            "policy.context.not_supplied"
        );
        s.add_global_context("x", json!([1, 2]));
        assert_eq!(s.global_context("x").unwrap(), json!([1, 2]));
        assert_eq!(
            s.global_context("y").unwrap_err().code(),
            "policy.context.not_found"
        );
    }
}
