//! Kyverno's own CEL libraries, evaluated against data the caller supplies.
//!
//! Kyverno's ValidatingPolicy can call `resource.get/list`, `image.GetMetadata`,
//! `globalContext.Get` and `http.Get/Post`. In the cluster those reach the API server, a
//! registry or the network; this crate does no I/O, so the answers come from a
//! [`ContextData`] filled by the caller (as `kyverno test` fills its fake context from
//! `context.yaml`, `clusterResources`, `globalContextEntries` and `apiCallResponses`). A look-up
//! with no answer is an evaluation error (as Kyverno's "not found"), never an empty pass;
//! `globalContext.Get` of an unknown entry is `null`, as in Kyverno.

use std::collections::{BTreeMap, HashMap};

use kube_cel::cel::Value;

use super::eval::{EvalError, R, V};
use super::value::json_to_cel;

/// A Kyverno library function resolved at compile time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KyvernoFn {
    /// `resource.get(apiVersion, resource, namespace, name)`
    ResourceGet,
    /// `resource.list(apiVersion, resource, namespace)`
    ResourceList,
    /// `image.GetMetadata(reference)`
    ImageMetadata,
    /// `globalContext.Get(name, projection)`
    GlobalContextGet,
    /// `http.Get(url[, headers])`
    HttpGet,
    /// `http.Post(url, body[, headers])`
    HttpPost,
    /// `image(reference)`: a parsed image reference.
    Image,
    /// `isImage(reference)`
    IsImage,
    /// `verifyImageSignatures(image, [attestors...])` (ImageValidatingPolicy): the number of
    /// attestors that verified a signature of the image.
    VerifyImageSignatures,
    /// `verifyAttestationSignatures(image, attestation, [attestors...])` (ImageValidatingPolicy):
    /// the number of attestors that verified the named attestation.
    VerifyAttestationSignatures,
    /// `extractPayload(image, attestation)` (ImageValidatingPolicy): the verified in-toto
    /// statement of the named attestation.
    ExtractPayload,
    /// `getImageData(image)` (ImageValidatingPolicy).
    GetImageData,
    /// `generator.Apply(namespace, [objects])` (GeneratingPolicy): records the objects to
    /// generate; answered by the policy being evaluated (`PolicyFunctions`).
    GeneratorApply,
    /// `time.now()` (DeletingPolicy): the `now` the caller passed, never a clock reading.
    TimeNow,
    /// `regex.replace(target, pattern, replacement[, count])` (cel-go's regex extension,
    /// which Kyverno's CEL environment includes): Go regular expressions, `\N` in the
    /// replacement for capture group N.
    RegexReplace,
    /// `envoy.Allowed()` (Envoy authorization policies).
    EnvoyAllowed,
    /// `envoy.Denied(code)` (Envoy authorization policies).
    EnvoyDenied,
    /// `envoy.Header(key, value)` (Envoy authorization policies).
    EnvoyHeader,
    /// `envoy.QueryParam(key, value)` (Envoy authorization policies).
    EnvoyQueryParam,
    /// `http.Allowed()` (HTTP authorization policies).
    HttpAllowed,
    /// `http.Denied(reason)` (HTTP authorization policies).
    HttpDenied,
    /// `jwt.Decode(token, key)` (authorization policies): answered by the policy, which
    /// supplies `now`.
    JwtDecode,
    /// `parseServiceAccount(username)` (Kyverno's user library): `Name` and `Namespace` of a
    /// `system:serviceaccount:<namespace>:<name>` user, both empty for any other user.
    ParseServiceAccount,
}

impl KyvernoFn {
    /// Whether the policy being evaluated answers this function (`PolicyFunctions`).
    pub fn is_policy_function(self) -> bool {
        matches!(self, KyvernoFn::GeneratorApply | KyvernoFn::TimeNow) || self.is_authz()
    }

    /// Whether this is one of the authorization libraries' functions (Envoy and HTTP
    /// ValidatingPolicies only).
    pub fn is_authz(self) -> bool {
        matches!(
            self,
            KyvernoFn::EnvoyAllowed
                | KyvernoFn::EnvoyDenied
                | KyvernoFn::EnvoyHeader
                | KyvernoFn::EnvoyQueryParam
                | KyvernoFn::HttpAllowed
                | KyvernoFn::HttpDenied
                | KyvernoFn::JwtDecode
        )
    }

    /// Whether this is one of the ImageValidatingPolicy verification functions.
    pub fn is_image_verification(self) -> bool {
        matches!(
            self,
            KyvernoFn::VerifyImageSignatures
                | KyvernoFn::VerifyAttestationSignatures
                | KyvernoFn::ExtractPayload
                | KyvernoFn::GetImageData
        )
    }
}

/// A parsed image reference, as Kyverno's `image()` CEL library returns it.
///
/// Parsed with provenance-core's reference grammar as Kubernetes' runtime does
/// (`ParseDockerRef`: normalized, `latest` when neither tag nor digest, tag dropped when a
/// digest is present), which is what go-containerregistry's `name.ParseReference` yields, except
/// that Docker Hub's registry reads `index.docker.io` as there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// `registry()`
    pub registry: String,
    /// `repository()`
    pub repository: String,
    /// `tag()` (empty for a digest reference)
    pub tag: String,
    /// `digest()` (empty for a tag reference)
    pub digest: String,
}

impl kube_cel::cel::objects::Opaque for ImageRef {
    fn runtime_type_name(&self) -> &str {
        "kyverno.image"
    }
}

impl ImageRef {
    /// Parses `s`; `None` when it is not an image reference.
    pub fn parse(s: &str) -> Option<Self> {
        let r = provenance_core::reference::ImageReference::parse_docker_ref(s).ok()?;
        let registry = match r.domain() {
            "docker.io" => "index.docker.io".to_owned(),
            d => d.to_owned(),
        };
        let digest = r.digest_str().unwrap_or_default().to_owned();
        Some(ImageRef {
            registry,
            repository: r.path().to_owned(),
            tag: if digest.is_empty() {
                r.tag().unwrap_or("latest").to_owned()
            } else {
                String::new()
            },
            digest,
        })
    }

    /// `identifier()`: the digest if any, else the tag.
    pub fn identifier(&self) -> &str {
        if self.digest.is_empty() {
            &self.tag
        } else {
            &self.digest
        }
    }
}

/// `(namespace, name)` of a service account's user name (`system:serviceaccount:NS:NAME`,
/// split at the first `:` after the prefix, as Kyverno splits it); empty for any other user.
fn parse_service_account(user: &str) -> (&str, &str) {
    user.strip_prefix("system:serviceaccount:")
        .and_then(|rest| rest.split_once(':'))
        .unwrap_or(("", ""))
}

/// Resolves `lib.name(argc args)`. `Ok(None)`: `lib` is not a Kyverno library.
pub(crate) fn lookup(
    lib: &str,
    name: &str,
    argc: usize,
) -> Result<Option<KyvernoFn>, super::eval::lower::LowerError> {
    let f = match (lib, name, argc) {
        ("resource", "get" | "Get", 4) => KyvernoFn::ResourceGet,
        ("resource", "list" | "List", 3) => KyvernoFn::ResourceList,
        ("image", "GetMetadata", 1) => KyvernoFn::ImageMetadata,
        ("globalContext", "Get", 2) => KyvernoFn::GlobalContextGet,
        ("http", "Get", 1 | 2) => KyvernoFn::HttpGet,
        ("http", "Post", 2 | 3) => KyvernoFn::HttpPost,
        ("", "image" | "parseImageReference", 1) => KyvernoFn::Image,
        ("", "verifyImageSignatures", 2) => KyvernoFn::VerifyImageSignatures,
        ("", "verifyAttestationSignatures", 3) => KyvernoFn::VerifyAttestationSignatures,
        ("", "extractPayload", 2) => KyvernoFn::ExtractPayload,
        ("", "getImageData", 1) => KyvernoFn::GetImageData,
        ("", "isImage", 1) => KyvernoFn::IsImage,
        ("", "parseServiceAccount", 1) => KyvernoFn::ParseServiceAccount,
        ("generator", "Apply" | "apply", 2) => KyvernoFn::GeneratorApply,
        ("time", "now", 0) => KyvernoFn::TimeNow,
        ("regex", "replace", 3 | 4) => KyvernoFn::RegexReplace,
        (
            "resource" | "image" | "globalContext" | "http" | "imagedata" | "generator" | "regex",
            _,
            _,
        ) => {
            return Err(super::eval::lower::LowerError::Unsupported(format!(
                "Kyverno CEL function {lib}.{name} with {argc} argument(s)"
            )));
        }
        _ => return Ok(None),
    };
    Ok(Some(f))
}

/// The answers Kyverno's context libraries give, supplied by the caller.
#[derive(Debug, Clone, Default)]
pub struct ContextData {
    /// (apiVersion, resource plural, namespace) → name → object.
    resources: HashMap<(String, String, String), BTreeMap<String, serde_json::Value>>,
    images: HashMap<String, serde_json::Value>,
    global: HashMap<String, serde_json::Value>,
    http: HashMap<(String, String), serde_json::Value>,
}

impl ContextData {
    /// An empty context: every look-up fails.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.resources.is_empty()
            && self.images.is_empty()
            && self.global.is_empty()
            && self.http.is_empty()
    }

    /// Adds a Kubernetes object that `resource.get/list` can find, under its `apiVersion`,
    /// the plural of its `kind` ([`crate::cel_policies::validating_policy::kind_to_resource`]),
    /// namespace and name. Objects without `apiVersion`, `kind` or `metadata.name` are ignored.
    pub fn add_resource(&mut self, object: serde_json::Value) {
        let Some(kind) = object.get("kind").and_then(|k| k.as_str()) else {
            return;
        };
        let resource = crate::cel_policies::validating_policy::kind_to_resource(kind);
        self.add_resource_as(&resource, object);
    }

    /// Adds an object under an explicit resource plural (for custom resources whose plural is
    /// not the guessed one).
    pub fn add_resource_as(&mut self, resource: &str, object: serde_json::Value) {
        let api_version = object
            .get("apiVersion")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned();
        let meta = object.get("metadata");
        let Some(name) = meta
            .and_then(|m| m.get("name"))
            .and_then(|n| n.as_str())
            .map(str::to_owned)
        else {
            return;
        };
        let namespace = meta
            .and_then(|m| m.get("namespace"))
            .and_then(|n| n.as_str())
            .unwrap_or_default()
            .to_owned();
        self.resources
            .entry((api_version, resource.to_owned(), namespace))
            .or_default()
            .insert(name, object);
    }

    /// Adds what `image.GetMetadata(reference)` returns for `reference` (as written in the
    /// resource).
    pub fn add_image(&mut self, reference: impl Into<String>, metadata: serde_json::Value) {
        self.images.insert(reference.into(), metadata);
    }

    /// Adds a global context entry (its data, projections already applied by the caller).
    pub fn add_global_context(&mut self, name: impl Into<String>, data: serde_json::Value) {
        self.global.insert(name.into(), data);
    }

    /// Adds the response `http.Get`/`http.Post` returns for `method` (`GET`/`POST`) and `url`.
    pub fn add_http_response(
        &mut self,
        method: &str,
        url: impl Into<String>,
        response: serde_json::Value,
    ) {
        self.http
            .insert((method.to_ascii_uppercase(), url.into()), response);
    }

    pub(crate) fn call<'v>(&'v self, f: KyvernoFn, args: &[Value]) -> R<'v> {
        let s = |i: usize| -> Result<&str, EvalError> {
            match args.get(i) {
                Some(Value::String(s)) => Ok(s.as_str()),
                _ => Err(EvalError(format!(
                    "{f:?}: argument {} must be a string",
                    i + 1
                ))),
            }
        };
        let view = |v: &'v serde_json::Value| -> R<'v> { Ok(V::Json(v)) };
        match f {
            KyvernoFn::ResourceGet => {
                let (av, res, ns, name) = (s(0)?, s(1)?, s(2)?, s(3)?);
                let found = self
                    .resources
                    .get(&(av.to_owned(), res.to_owned(), ns.to_owned()))
                    .and_then(|m| m.get(name));
                match found {
                    Some(obj) => view(obj),
                    None => Err(EvalError(format!(
                        "resource.get: {res} \"{name}\" not found (apiVersion {av}, namespace {ns:?})"
                    ))),
                }
            }
            KyvernoFn::ResourceList => {
                let (av, res, ns) = (s(0)?, s(1)?, s(2)?);
                let Some(m) = self
                    .resources
                    .get(&(av.to_owned(), res.to_owned(), ns.to_owned()))
                else {
                    return Err(EvalError(format!(
                        "resource.list: {res} resource not found (apiVersion {av})"
                    )));
                };
                let items: Vec<serde_json::Value> = m.values().cloned().collect();
                Ok(V::Cel(
                    json_to_cel(&serde_json::json!({ "items": items })).map_err(EvalError)?,
                ))
            }
            KyvernoFn::ImageMetadata => {
                let image = s(0)?;
                match self.images.get(image) {
                    Some(d) => view(d),
                    None => Err(EvalError(format!(
                        "image data for {image} not found in the context"
                    ))),
                }
            }
            KyvernoFn::GlobalContextGet => {
                let (name, projection) = (s(0)?, s(1)?);
                let Some(data) = self.global.get(name) else {
                    return Ok(V::Cel(Value::Null));
                };
                if projection.is_empty() {
                    return view(data);
                }
                match data.get(projection) {
                    Some(v) => view(v),
                    None => Err(EvalError(format!(
                        "projection {projection:?} not found in global context entry {name:?}"
                    ))),
                }
            }
            KyvernoFn::Image => {
                let r = s(0)?;
                match ImageRef::parse(r) {
                    Some(img) => Ok(V::Cel(Value::Opaque(std::sync::Arc::new(img)))),
                    None => Err(EvalError(format!("image: {r:?} is not an image reference"))),
                }
            }
            KyvernoFn::IsImage => Ok(V::Cel(Value::Bool(ImageRef::parse(s(0)?).is_some()))),
            KyvernoFn::ParseServiceAccount => {
                let (namespace, name) = parse_service_account(s(0)?);
                json_to_cel(&serde_json::json!({"Name": name, "Namespace": namespace}))
                    .map(V::Cel)
                    .map_err(EvalError)
            }
            KyvernoFn::RegexReplace => {
                let count = match args.get(3) {
                    None => -1,
                    Some(Value::Int(n)) => *n,
                    Some(other) => {
                        return Err(EvalError(format!(
                            "regex.replace: count must be an int, got {}",
                            super::value::type_name(other)
                        )));
                    }
                };
                regex_replace(s(0)?, s(1)?, s(2)?, count)
                    .map(|r| V::Cel(Value::String(std::sync::Arc::new(r))))
            }
            KyvernoFn::VerifyImageSignatures
            | KyvernoFn::VerifyAttestationSignatures
            | KyvernoFn::ExtractPayload
            | KyvernoFn::GetImageData => Err(EvalError(format!(
                "{f:?}: image verification is only available in an ImageValidatingPolicy"
            ))),
            KyvernoFn::GeneratorApply => Err(EvalError(
                "generator.Apply is only available in a GeneratingPolicy".to_owned(),
            )),
            KyvernoFn::EnvoyAllowed
            | KyvernoFn::EnvoyDenied
            | KyvernoFn::EnvoyHeader
            | KyvernoFn::EnvoyQueryParam
            | KyvernoFn::HttpAllowed
            | KyvernoFn::HttpDenied
            | KyvernoFn::JwtDecode => Err(EvalError(format!(
                "{f:?} is only available in a ValidatingPolicy with evaluation.mode Envoy or HTTP"
            ))),
            KyvernoFn::TimeNow => Err(EvalError(
                "time.now: no current time was supplied for this evaluation".to_owned(),
            )),
            KyvernoFn::HttpGet | KyvernoFn::HttpPost => {
                let method = if f == KyvernoFn::HttpGet {
                    "GET"
                } else {
                    "POST"
                };
                let url = s(0)?;
                match self.http.get(&(method.to_owned(), url.to_owned())) {
                    Some(r) => view(r),
                    None => Err(EvalError(format!(
                        "http.{}: no response supplied for {method} {url} (no network access)",
                        if method == "GET" { "Get" } else { "Post" }
                    ))),
                }
            }
        }
    }
}

/// `regex.replace`: every match (or the first `count` when `count` is positive; none when it
/// is 0) replaced, `\N` naming capture group N, `\\` a backslash.
pub(crate) fn regex_replace(
    target: &str,
    pattern: &str,
    replacement: &str,
    count: i64,
) -> Result<String, EvalError> {
    let re = crate::re2::compile(pattern)
        .map_err(|e| EvalError(format!("regex.replace: invalid regex {pattern:?}: {e}")))?;
    let mut rep = String::with_capacity(replacement.len());
    let mut chars = replacement.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(d) if d.is_ascii_digit() => {
                    rep.push_str("${");
                    rep.push(d);
                    rep.push('}');
                }
                Some('\\') => rep.push('\\'),
                Some(other) => {
                    return Err(EvalError(format!(
                        "regex.replace: invalid escape \\{other} in the replacement"
                    )));
                }
                None => {
                    return Err(EvalError(
                        "regex.replace: the replacement ends with a backslash".to_owned(),
                    ));
                }
            },
            '$' => rep.push_str("$$"),
            other => rep.push(other),
        }
    }
    if count == 0 {
        return Ok(target.to_owned());
    }
    let limit = usize::try_from(count).unwrap_or(0);
    Ok(re.replacen(target, limit, rep.as_str()).into_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod regex_tests {
    use super::regex_replace;

    #[test]
    fn regex_replace_groups_and_counts() {
        assert_eq!(
            regex_replace("docker.io/nginx:1", r"^docker\.io/(.*)", r"my.io/\1", -1).unwrap(),
            "my.io/nginx:1"
        );
        assert_eq!(regex_replace("a-a-a", "a", "$b", 2).unwrap(), "$b-$b-a");
        assert_eq!(regex_replace("aaa", "a", "b", 0).unwrap(), "aaa");
        assert!(regex_replace("a", "(", "b", -1).is_err());
        assert!(regex_replace("a", "a", r"\x", -1).is_err());
    }
}
