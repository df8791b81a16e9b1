//! [`RegistryClient`]: an [`EvidenceSource`] over the OCI distribution API.
//!
//! Every request has a connect timeout and a whole-request deadline (headers and body); every
//! public operation has an overall deadline. Idempotent GETs/HEADs are retried with
//! exponential backoff on network errors, 5xx and 429 only. Requests per registry host are
//! bounded by a semaphore. Bodies are streamed through a size limit and a hasher: a manifest
//! or blob whose bytes do not match the digest it was fetched by is an error, never returned.
//!
//! Authentication: a request is first sent with cached authorization (none at first), only to
//! the registry's own origin; on `401` from that origin the `WWW-Authenticate` challenge
//! decides: `Basic` sends the configured credentials, `Bearer` runs the distribution token flow
//! (anonymous or with Basic credentials, the answer read through a size limit), or the OAuth2
//! refresh-token grant for an identity token, at a realm over HTTPS (plain HTTP only to a host
//! allowed it); the token is cached per registry and repository.
//!
//! Redirects are followed here, not by the HTTP client: at most five, for GET and HEAD, never
//! from HTTPS to plain HTTP, and without credentials to any other origin, whose `401` is
//! refused rather than answered.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use provenance_core::{Digest, DigestAlgorithm, ImageReference};
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};
use tokio::io::AsyncWriteExt;
use tokio::sync::{Mutex, Semaphore};

use crate::auth::{Credentials, DockerConfig};
use crate::error::Error;
use crate::source::{EvidenceSource, repo_of};
use crate::types::{
    CheckedHasher, Limits, MANIFEST_MEDIA_TYPES, Manifest, Referrers, ReferrersOrigin,
};

#[path = "registry_push.rs"]
mod push;

/// Longest pause between two retries.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Deadlines applied to registry traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP + TLS connect (default 5 s).
    pub connect: Duration,
    /// One HTTP request, from sending to the last body byte (default 30 s). Large exports use
    /// [`Timeouts::export_blob`] instead.
    pub request: Duration,
    /// One public operation (`resolve`, `manifest`, `blob`, `referrers_api`) including
    /// authentication and retries (default 60 s).
    pub operation: Duration,
    /// Copying one blob to disk during an export (default 1 h).
    pub export_blob: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(5),
            request: Duration::from_secs(30),
            operation: Duration::from_secs(60),
            export_blob: Duration::from_secs(3600),
        }
    }
}

/// Settings for one registry (keyed by the host as written in image references, e.g.
/// `ghcr.io`, `docker.io`, `127.0.0.1:5000`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistrySettings {
    /// Use plain HTTP for this registry (and its mirrors). Never implied: a registry is
    /// contacted over HTTPS unless this is set for it.
    pub insecure_http: bool,
    /// Credentials; `None` falls back to the Docker config, then anonymous.
    pub credentials: Option<Credentials>,
    /// Mirrors (`host[:port]`) tried in order before the registry itself, for
    /// **digest-addressed** content only (manifests by digest, blobs): whatever a mirror
    /// returns is checked against the digest. Tags and referrers are always asked of the
    /// registry (or its `endpoint`), because a mirror's tags are not the registry's.
    pub mirrors: Vec<String>,
    /// Contact this `host[:port]` instead of the registry's own host, for everything (an
    /// air-gapped copy of the registry). Credentials are still looked up for the registry.
    pub endpoint: Option<String>,
    /// PEM certificates (one or more) trusted as roots for this registry's TLS, in addition
    /// to the system's: a registry whose certificate a private CA issued. They apply to the
    /// requests made for this registry (its host or endpoint, its mirrors, and token realms
    /// it names) and to no other registry. Checked when the client is built
    /// ([`RegistryClient::new`] fails on PEM without a certificate).
    pub ca_pem: Option<String>,
}

/// Configuration of a [`RegistryClient`].
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// Size limits.
    pub limits: Limits,
    /// Deadlines.
    pub timeouts: Timeouts,
    /// Retries of idempotent requests after the first attempt (default 2).
    pub retries: u32,
    /// First backoff delay, doubled on each retry, at most 10 s (default 100 ms).
    pub backoff: Duration,
    /// Most concurrent requests to one registry host (default 16).
    pub max_concurrent_per_registry: usize,
    /// Per-registry settings.
    pub registries: BTreeMap<String, RegistrySettings>,
    /// Settings for registries not listed in `registries`.
    pub default_settings: RegistrySettings,
    /// Docker `config.json` to take credentials from when a registry's settings give none.
    pub docker_config: Option<DockerConfig>,
    /// `User-Agent` header.
    pub user_agent: String,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            limits: Limits::default(),
            timeouts: Timeouts::default(),
            retries: 2,
            backoff: Duration::from_millis(100),
            max_concurrent_per_registry: 16,
            registries: BTreeMap::new(),
            default_settings: RegistrySettings::default(),
            docker_config: None,
            user_agent: format!("provenance-oci/{}", env!("CARGO_PKG_VERSION")),
        }
    }
}

impl RegistryConfig {
    /// Sets the settings of `registry`.
    pub fn with_registry(
        mut self,
        registry: impl Into<String>,
        settings: RegistrySettings,
    ) -> Self {
        self.registries.insert(registry.into(), settings);
        self
    }

    /// Allows plain HTTP for `registry` (e.g. a loopback test registry).
    pub fn allow_http(mut self, registry: impl Into<String>) -> Self {
        self.registries
            .entry(registry.into())
            .or_default()
            .insecure_http = true;
        self
    }

    /// Contacts `host[:port]` instead of `registry` (see [`RegistrySettings::endpoint`]),
    /// keeping the registry's other settings.
    pub fn with_endpoint(mut self, registry: impl Into<String>, host: impl Into<String>) -> Self {
        self.registries.entry(registry.into()).or_default().endpoint = Some(host.into());
        self
    }

    /// Trusts the PEM certificates `ca_pem` as roots for `registry`'s TLS (see
    /// [`RegistrySettings::ca_pem`]), keeping the registry's other settings.
    pub fn with_ca_pem(mut self, registry: impl Into<String>, ca_pem: impl Into<String>) -> Self {
        self.registries.entry(registry.into()).or_default().ca_pem = Some(ca_pem.into());
        self
    }

    fn settings(&self, registry: &str) -> &RegistrySettings {
        self.registries
            .get(registry)
            .unwrap_or(&self.default_settings)
    }
}

/// An OCI distribution client that implements [`EvidenceSource`].
pub struct RegistryClient {
    /// The client for registries without settings of their own (with the default settings'
    /// `ca_pem`).
    http: reqwest::Client,
    /// Clients for registries whose settings trust other roots than the default settings.
    http_by_registry: HashMap<String, reqwest::Client>,
    config: RegistryConfig,
    /// (host, repository) -> Authorization header value.
    authz: Mutex<HashMap<(String, String), String>>,
    /// registry -> resolved credentials.
    creds: Mutex<HashMap<String, Credentials>>,
    sems: std::sync::Mutex<HashMap<String, Arc<Semaphore>>>,
    requests: AtomicU64,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The registry host the API lives at for a reference domain.
fn api_host(domain: &str) -> &str {
    match domain {
        "docker.io" | "index.docker.io" => "registry-1.docker.io",
        other => other,
    }
}

struct Ctx<'a> {
    /// Whether the request writes (bearer tokens are then asked for push scope).
    push: bool,
    /// Registry as written in references (settings key).
    registry: &'a str,
    /// Repository path.
    repo: &'a str,
    settings: &'a RegistrySettings,
}

impl Ctx<'_> {
    fn scheme(&self) -> &'static str {
        if self.settings.insecure_http {
            "http"
        } else {
            "https"
        }
    }
    fn primary_host(&self) -> String {
        self.settings
            .endpoint
            .clone()
            .unwrap_or_else(|| api_host(self.registry).to_owned())
    }
    fn url(&self, host: &str, rest: &str) -> String {
        format!("{}://{}/v2/{}/{}", self.scheme(), host, self.repo, rest)
    }
}

/// One fetched body.
struct Body {
    bytes: Vec<u8>,
    headers: HeaderMap,
}

fn status_error(
    registry: &str,
    operation: &str,
    status: StatusCode,
    what: &'static str,
    reference: &str,
) -> Error {
    match status {
        StatusCode::NOT_FOUND => Error::NotFound {
            what,
            reference: reference.to_owned(),
        },
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Error::Auth {
            registry: registry.to_owned(),
            message: format!("{operation}: {status}"),
        },
        s => Error::Registry {
            registry: registry.to_owned(),
            operation: operation.to_owned(),
            status: s.as_u16(),
            message: s.canonical_reason().unwrap_or("").to_owned(),
        },
    }
}

fn network_error(host: &str, e: &reqwest::Error, after: Duration) -> Error {
    if e.is_timeout() {
        return Error::Timeout {
            registry: host.to_owned(),
            operation: e
                .url()
                .map(|u| format!("request to {}", u.path()))
                .unwrap_or_else(|| "request".to_owned()),
            after_ms: after.as_millis() as u64,
        };
    }
    let mut message = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        message.push_str(": ");
        message.push_str(&s.to_string());
        src = s.source();
    }
    Error::Network {
        registry: host.to_owned(),
        message,
    }
}

fn header_digest(headers: &HeaderMap) -> Option<Digest> {
    headers
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .and_then(|s| Digest::parse(s.trim()).ok())
}

fn reference_digest(image: &ImageReference) -> Result<Option<Digest>, Error> {
    match image.digest_str() {
        None => Ok(None),
        Some(s) => Digest::parse(s)
            .map(Some)
            .map_err(|e| Error::InvalidReference {
                input: image.to_string(),
                reason: e.to_string(),
            }),
    }
}

impl RegistryClient {
    /// Builds a client.
    pub fn new(config: RegistryConfig) -> Result<Self, Error> {
        let build = |registry: Option<&str>, ca_pem: Option<&str>| {
            let config_error = |message: String| Error::Config {
                message: match registry {
                    Some(r) => format!("registry {r}: {message}"),
                    None => message,
                },
            };
            let mut b = reqwest::Client::builder()
                .connect_timeout(config.timeouts.connect)
                .read_timeout(config.timeouts.request)
                .user_agent(config.user_agent.clone())
                .redirect(reqwest::redirect::Policy::none());
            if let Some(pem) = ca_pem {
                use rustls_pki_types::pem::PemObject;
                let ders = rustls_pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| config_error(format!("CA certificates (ca_pem): not PEM: {e}")))?;
                if ders.is_empty() {
                    return Err(config_error(
                        "CA certificates (ca_pem): no PEM certificate in it".into(),
                    ));
                }
                for (i, der) in ders.iter().enumerate() {
                    let root = reqwest::Certificate::from_der(der).map_err(|e| {
                        config_error(format!(
                            "CA certificates (ca_pem): certificate {} is not a usable X.509 certificate: {e}",
                            i + 1
                        ))
                    })?;
                    b = b.add_root_certificate(root);
                }
            }
            b.build()
                .map_err(|e| config_error(format!("HTTP client: {e}")))
        };
        let default_ca = config.default_settings.ca_pem.as_deref();
        let http = build(None, default_ca)?;
        let mut http_by_registry = HashMap::new();
        for (name, settings) in &config.registries {
            if settings.ca_pem.is_some() && (name.contains('/') || name.is_empty()) {
                return Err(Error::Config {
                    message: format!(
                        "registry {name:?}: CA certificates are set for a name no image reference has (write the registry as in image references: host[:port], no scheme or path)"
                    ),
                });
            }
            if settings.ca_pem.as_deref() != default_ca {
                http_by_registry
                    .insert(name.clone(), build(Some(name), settings.ca_pem.as_deref())?);
            }
        }
        Ok(RegistryClient {
            http,
            http_by_registry,
            config,
            authz: Mutex::new(HashMap::new()),
            creds: Mutex::new(HashMap::new()),
            sems: std::sync::Mutex::new(HashMap::new()),
            requests: AtomicU64::new(0),
        })
    }

    /// The HTTP client for `ctx`'s registry: one that trusts the roots its settings name.
    fn http_for(&self, ctx: &Ctx<'_>) -> &reqwest::Client {
        self.http_by_registry
            .get(ctx.registry)
            .unwrap_or(&self.http)
    }

    /// The configuration.
    pub fn config(&self) -> &RegistryConfig {
        &self.config
    }

    /// Number of HTTP requests sent so far (including authentication), for metrics and tests.
    pub fn request_count(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    fn ctx<'a>(&'a self, image: &'a ImageReference) -> Result<Ctx<'a>, Error> {
        if image.domain().is_empty() {
            return Err(Error::InvalidReference {
                input: image.to_string(),
                reason: "no registry domain (use a normalized reference)".into(),
            });
        }
        Ok(Ctx {
            push: false,
            registry: image.domain(),
            repo: image.path(),
            settings: self.config.settings(image.domain()),
        })
    }

    fn semaphore(&self, host: &str) -> Arc<Semaphore> {
        let mut m = match self.sems.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        m.entry(host.to_owned())
            .or_insert_with(|| {
                Arc::new(Semaphore::new(
                    self.config.max_concurrent_per_registry.max(1),
                ))
            })
            .clone()
    }

    async fn deadline<T>(
        &self,
        registry: &str,
        operation: &str,
        d: Duration,
        f: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        tokio::time::timeout(d, f)
            .await
            .map_err(|_| Error::Timeout {
                registry: registry.to_owned(),
                operation: operation.to_owned(),
                after_ms: d.as_millis() as u64,
            })?
    }

    /// Credentials for `host`: the registry's own when `host` is the registry (or its
    /// endpoint); a mirror only gets credentials configured for the mirror itself, never the
    /// registry's.
    async fn credentials(&self, ctx: &Ctx<'_>, host: &str) -> Result<Credentials, Error> {
        let key = if host == ctx.primary_host() {
            if let Some(c) = &ctx.settings.credentials {
                return Ok(c.clone());
            }
            ctx.registry
        } else {
            if let Some(c) = self
                .config
                .registries
                .get(host)
                .and_then(|s| s.credentials.as_ref())
            {
                return Ok(c.clone());
            }
            host
        };
        if let Some(c) = self.creds.lock().await.get(key) {
            return Ok(c.clone());
        }
        let c = match &self.config.docker_config {
            Some(dc) => dc.credentials_for(key).await?,
            None => Credentials::Anonymous,
        };
        self.creds.lock().await.insert(key.to_owned(), c.clone());
        Ok(c)
    }

    /// Answers a 401 challenge: returns the Authorization header value to retry with.
    async fn authorize(&self, ctx: &Ctx<'_>, host: &str, challenge: &str) -> Result<String, Error> {
        let creds = self.credentials(ctx, host).await?;
        let scheme = challenge
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        let auth_err = |message: String| auth_error(host, message);
        let value = match (scheme.as_str(), &creds) {
            (_, Credentials::Bearer(t)) => format!("Bearer {t}"),
            ("basic", Credentials::Basic { username, password }) => {
                format!(
                    "Basic {}",
                    STANDARD.encode(format!("{username}:{password}"))
                )
            }
            ("basic", Credentials::IdentityToken(_)) => {
                return Err(auth_err(
                    "registry asks for Basic credentials; an identity token (OAuth2 refresh token) is only exchanged at a Bearer realm".into(),
                ));
            }
            ("basic", _) => {
                return Err(auth_err(
                    "registry asks for Basic credentials and none are configured".into(),
                ));
            }
            ("bearer", Credentials::IdentityToken(refresh)) => {
                let token = self.oauth2_refresh(ctx, host, challenge, refresh).await?;
                format!("Bearer {token}")
            }
            ("bearer", c) => {
                let token = self.bearer_token(ctx, host, challenge, c).await?;
                format!("Bearer {token}")
            }
            (other, _) => return Err(auth_err(format!("unsupported auth scheme {other:?}"))),
        };
        self.authz
            .lock()
            .await
            .insert((host.to_owned(), ctx.repo.to_owned()), value.clone());
        Ok(value)
    }

    /// The distribution token specification's OAuth2 flow: `POST` to the challenge's realm
    /// with `grant_type=refresh_token`, the refresh token, `service`, `scope` and `client_id`
    /// as a form; the answer's `access_token` is the bearer token.
    async fn oauth2_refresh(
        &self,
        ctx: &Ctx<'_>,
        host: &str,
        challenge: &str,
        refresh: &str,
    ) -> Result<String, Error> {
        let (params, realm_url) = self.challenge_realm(ctx, host, challenge)?;
        let realm = params.get("realm").map_or("", String::as_str);
        let scope = params
            .get("scope")
            .filter(|s| !s.is_empty())
            .cloned()
            .unwrap_or_else(|| format!("repository:{}:pull", ctx.repo));
        let mut form = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("client_id", OAUTH2_CLIENT_ID),
            ("scope", scope.as_str()),
        ];
        if let Some(service) = params.get("service") {
            form.push(("service", service.as_str()));
        }
        let body = form
            .iter()
            .map(|(k, v)| format!("{k}={}", percent_encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        self.requests.fetch_add(1, Ordering::Relaxed);
        let resp = self
            .http_for(ctx)
            .post(realm_url)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(ACCEPT, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| network_error(host, &e, self.config.timeouts.request))?;
        let status = resp.status();
        let bytes = read_body(
            resp,
            host,
            self.config.timeouts.request,
            MAX_TOKEN_RESPONSE,
            None,
            "OAuth2 token response",
            realm,
        )
        .await?;
        token_from_reply(host, status, &bytes, realm, " to the refresh-token grant")
    }

    /// True when plain HTTP is allowed to `authority` (`host[:port]`): it is a registry, an
    /// endpoint or a mirror that `insecure_http` names, or every registry is allowed it.
    fn http_allowed(&self, authority: &str) -> bool {
        if self.config.default_settings.insecure_http {
            return true;
        }
        self.config.registries.iter().any(|(name, s)| {
            s.insecure_http
                && (name == authority
                    || s.endpoint.as_deref() == Some(authority)
                    || s.mirrors.iter().any(|m| m == authority))
        })
    }

    /// Checks a URL the client is about to send a request to: `http` or `https`, and plain
    /// HTTP only to a host allowed it. `from_https` says whether the URL was reached from an
    /// HTTPS one (a redirect, an upload `Location`, a token realm): plain HTTP after HTTPS is
    /// a downgrade.
    fn check_target(
        &self,
        registry: &str,
        url: &reqwest::Url,
        from_https: bool,
    ) -> Result<(), Error> {
        match url.scheme() {
            "https" => Ok(()),
            "http" if self.http_allowed(&authority_of(url)) => Ok(()),
            "http" if from_https => Err(Error::UntrustedOrigin {
                registry: registry.to_owned(),
                target: url_for_humans(url),
                reason: crate::error::UntrustedOriginReason::Downgrade,
            }),
            "http" => Err(Error::InsecureNotAllowed {
                registry: authority_of(url),
            }),
            _ => Err(Error::UntrustedOrigin {
                registry: registry.to_owned(),
                target: url_for_humans(url),
                reason: crate::error::UntrustedOriginReason::Scheme,
            }),
        }
    }

    /// A Bearer challenge's parameters and its checked realm ([`Self::check_realm`]).
    fn challenge_realm(
        &self,
        ctx: &Ctx<'_>,
        host: &str,
        challenge: &str,
    ) -> Result<(HashMap<String, String>, reqwest::Url), Error> {
        let params = parse_challenge(challenge);
        let realm = params
            .get("realm")
            .filter(|r| !r.is_empty())
            .ok_or_else(|| auth_error(host, "Bearer challenge without a realm".into()))?;
        let url = self.check_realm(ctx, host, realm)?;
        Ok((params, url))
    }

    /// The token realm of a Bearer challenge (that came from the registry's own origin): any
    /// HTTPS URL the registry names (Docker's rule), or plain HTTP only to a host allowed it.
    /// Credentials and refresh tokens go nowhere else.
    fn check_realm(&self, ctx: &Ctx<'_>, host: &str, realm: &str) -> Result<reqwest::Url, Error> {
        let url = reqwest::Url::parse(realm)
            .map_err(|e| auth_error(host, format!("token realm {realm:?} is not a URL: {e}")))?;
        self.check_target(host, &url, ctx.scheme() == "https")?;
        Ok(url)
    }

    /// The distribution token specification's token flow: `GET` the challenge's realm with
    /// `service` and `scope`, with Basic credentials when there are some, and take the
    /// answer's `token` (or `access_token`). The answer is read through a size limit.
    async fn bearer_token(
        &self,
        ctx: &Ctx<'_>,
        host: &str,
        challenge: &str,
        creds: &Credentials,
    ) -> Result<String, Error> {
        let auth_err = |message: String| auth_error(host, message);
        let (params, mut url) = self.challenge_realm(ctx, host, challenge)?;
        let scope = format!(
            "repository:{}:{}",
            ctx.repo,
            if ctx.push { "pull,push" } else { "pull" }
        );
        {
            let mut q = url.query_pairs_mut();
            if let Some(service) = params.get("service").filter(|s| !s.is_empty()) {
                q.append_pair("service", service);
            }
            q.append_pair("scope", &scope);
        }
        let mut rb = self
            .http_for(ctx)
            .get(url.clone())
            .header(ACCEPT, "application/json");
        if let Credentials::Basic { username, password } = creds {
            rb = rb.header(
                AUTHORIZATION,
                format!(
                    "Basic {}",
                    STANDARD.encode(format!("{username}:{password}"))
                ),
            );
        }
        self.requests.fetch_add(1, Ordering::Relaxed);
        let resp = rb
            .send()
            .await
            .map_err(|e| network_error(host, &e, self.config.timeouts.request))?;
        let status = resp.status();
        let shown = url_for_humans(&url);
        if status.is_redirection() {
            return Err(auth_err(format!(
                "token endpoint {shown} answered {status}: token endpoints are not followed"
            )));
        }
        let bytes = read_body(
            resp,
            host,
            self.config.timeouts.request,
            MAX_TOKEN_RESPONSE,
            None,
            "token response",
            &shown,
        )
        .await?;
        token_from_reply(host, status, &bytes, &shown, "")
    }

    /// One request (with the 401 -> authorize -> resend dance), returning a response whose
    /// status is a success; errors are classified.
    #[allow(clippy::too_many_arguments)]
    async fn send(
        &self,
        ctx: &Ctx<'_>,
        host: &str,
        method: Method,
        url: &str,
        accept: &str,
        what: &'static str,
        reference: &str,
    ) -> Result<reqwest::Response, Error> {
        self.send_authorized(ctx, host, method, url, what, reference, |rb| {
            rb.header(ACCEPT, accept)
        })
        .await
    }

    /// Sends one request to `host`: `prepare` adds the request's own headers and body (again
    /// for a redirect or the resend), then the cached authorization for `ctx`'s repository is
    /// attached, only while the request goes to `host`'s own origin. Redirects of GET and
    /// HEAD are followed by hand (at most [`MAX_REDIRECTS`]), never from HTTPS to plain HTTP;
    /// on another origin no credentials are sent. On `401` from `host`'s own origin the
    /// challenge is answered by `authorize` (with push scope when `ctx` is a push) and the
    /// request is sent once more; a `401` from another origin is refused. Returns a response
    /// whose status is a success; every other outcome is a classified error.
    #[allow(clippy::too_many_arguments)]
    async fn send_authorized(
        &self,
        ctx: &Ctx<'_>,
        host: &str,
        method: Method,
        url: &str,
        what: &'static str,
        reference: &str,
        prepare: impl Fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, Error> {
        use crate::error::UntrustedOriginReason as Why;
        let operation = format!("{method} {what}");
        let start = reqwest::Url::parse(url).map_err(|e| Error::Config {
            message: format!("request URL {url:?}: {e}"),
        })?;
        let registry_https = ctx.scheme() == "https";
        let follow = method == Method::GET || method == Method::HEAD;
        let mut authz = self
            .authz
            .lock()
            .await
            .get(&(host.to_owned(), ctx.repo.to_owned()))
            .cloned();
        for round in 0..2 {
            let mut target = start.clone();
            let mut from_https = registry_https;
            let mut hops = 0usize;
            let (resp, own_origin) = loop {
                self.check_target(host, &target, from_https)?;
                let own = same_origin(&target, ctx.scheme(), host);
                let mut rb = prepare(self.http_for(ctx).request(method.clone(), target.clone()));
                if own && let Some(a) = &authz {
                    rb = rb.header(AUTHORIZATION, a);
                }
                self.requests.fetch_add(1, Ordering::Relaxed);
                let resp = rb
                    .send()
                    .await
                    .map_err(|e| network_error(host, &e, self.config.timeouts.request))?;
                let status = resp.status();
                let redirect = matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308);
                if !(follow && redirect) {
                    break (resp, own);
                }
                hops += 1;
                let next = resp
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|l| target.join(l).ok());
                let Some(next) = next.filter(|_| hops <= MAX_REDIRECTS) else {
                    return Err(Error::UntrustedOrigin {
                        registry: host.to_owned(),
                        target: url_for_humans(&target),
                        reason: Why::Redirect,
                    });
                };
                from_https = from_https || target.scheme() == "https";
                target = next;
            };
            let status = resp.status();
            if status.is_success() {
                return Ok(resp);
            }
            if status == StatusCode::UNAUTHORIZED && !own_origin {
                // A redirect target or an upload location on another host asks for
                // credentials: they are the registry's, not that host's.
                return Err(Error::UntrustedOrigin {
                    registry: host.to_owned(),
                    target: url_for_humans(resp.url()),
                    reason: Why::CredentialsToForeignOrigin,
                });
            }
            if status == StatusCode::UNAUTHORIZED && round == 0 {
                let challenge = resp
                    .headers()
                    .get(WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                if challenge.is_empty() {
                    return Err(Error::Auth {
                        registry: host.to_owned(),
                        message: format!("{operation}: 401 without a challenge"),
                    });
                }
                discard_small_body(resp).await;
                authz = Some(self.authorize(ctx, host, &challenge).await?);
                continue;
            }
            discard_small_body(resp).await;
            return Err(status_error(host, &operation, status, what, reference));
        }
        Err(Error::Auth {
            registry: host.to_owned(),
            message: format!("{operation}: still 401 after authenticating"),
        })
    }

    /// GET (or HEAD) with retries and a per-attempt deadline; the body is read through
    /// `limit` and, when `expected` is given, checked against it.
    #[allow(clippy::too_many_arguments)]
    async fn fetch(
        &self,
        ctx: &Ctx<'_>,
        host: &str,
        method: Method,
        url: &str,
        accept: &str,
        what: &'static str,
        reference: &str,
        limit: u64,
        expected: Option<&Digest>,
    ) -> Result<Body, Error> {
        let sem = self.semaphore(host);
        let mut attempt = 0u32;
        loop {
            let one = async {
                let _permit = sem.acquire().await.map_err(|_| Error::Config {
                    message: "client shut down".into(),
                })?;
                let resp = self
                    .send(ctx, host, method.clone(), url, accept, what, reference)
                    .await?;
                let headers = resp.headers().clone();
                if method == Method::HEAD {
                    return Ok(Body {
                        bytes: Vec::new(),
                        headers,
                    });
                }
                read_body(
                    resp,
                    host,
                    self.config.timeouts.request,
                    limit,
                    expected,
                    what,
                    reference,
                )
                .map_ok(headers)
                .await
            };
            let r = self
                .deadline(
                    host,
                    &format!("{method} {what}"),
                    self.config.timeouts.request,
                    one,
                )
                .await;
            match r {
                Err(e)
                    if (e.is_retryable() || matches!(e, Error::Timeout { .. }))
                        && attempt < self.config.retries =>
                {
                    let delay = self
                        .config
                        .backoff
                        .checked_mul(2u32.saturating_pow(attempt))
                        .map_or(MAX_BACKOFF, |d| d.min(MAX_BACKOFF));
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// Hosts to try for digest-addressed content: mirrors first, then the registry.
    fn digest_hosts(&self, ctx: &Ctx<'_>) -> Vec<String> {
        let mut v = ctx.settings.mirrors.clone();
        v.push(ctx.primary_host());
        v
    }

    /// Runs `attempt` against each of [`Self::digest_hosts`] in turn and returns the first
    /// success; when every host failed, the error `keep_error` kept, or not-found for `what`
    /// `reference` when there was no host.
    async fn first_digest_host<T, F>(
        &self,
        ctx: &Ctx<'_>,
        what: &'static str,
        reference: &str,
        mut attempt: impl FnMut(String) -> F,
    ) -> Result<T, Error>
    where
        F: Future<Output = Result<T, Error>>,
    {
        let mut last = None;
        for host in self.digest_hosts(ctx) {
            match attempt(host).await {
                Ok(found) => return Ok(found),
                Err(e) => keep_error(&mut last, e),
            }
        }
        Err(last.unwrap_or(Error::NotFound {
            what,
            reference: reference.to_owned(),
        }))
    }

    async fn manifest_inner(&self, image: &ImageReference) -> Result<Manifest, Error> {
        let ctx = self.ctx(image)?;
        let accept = MANIFEST_MEDIA_TYPES.join(", ");
        let limit = self.config.limits.max_manifest_bytes;
        let reference = image.to_string();
        match reference_digest(image)? {
            Some(d) => {
                let (ctx, accept, reference, d) = (&ctx, &accept, &reference, &d);
                let body = self
                    .first_digest_host(ctx, "manifest", reference, |host| async move {
                        let url = ctx.url(&host, &format!("manifests/{d}"));
                        self.fetch(
                            ctx,
                            &host,
                            Method::GET,
                            &url,
                            accept,
                            "manifest",
                            reference,
                            limit,
                            Some(d),
                        )
                        .await
                    })
                    .await?;
                // Bytes that came back digest-checked but do not parse are not retried
                // elsewhere.
                manifest_from(body, d.algorithm())
            }
            None => {
                let tag = image.tag().unwrap_or("latest");
                let host = ctx.primary_host();
                let url = ctx.url(&host, &format!("manifests/{tag}"));
                let body = self
                    .fetch(
                        &ctx,
                        &host,
                        Method::GET,
                        &url,
                        &accept,
                        "manifest",
                        &reference,
                        limit,
                        None,
                    )
                    .await?;
                let announced = header_digest(&body.headers);
                let alg = announced
                    .as_ref()
                    .map(|d| d.algorithm())
                    .unwrap_or(DigestAlgorithm::Sha256);
                let m = manifest_from(body, alg)?;
                if let Some(a) = announced
                    && a != m.digest
                {
                    return Err(Error::DigestMismatch {
                        reference,
                        expected: a.to_string(),
                        actual: m.digest.to_string(),
                    });
                }
                Ok(m)
            }
        }
    }

    /// A tag is resolved by fetching its manifest and hashing the bytes: a
    /// `Docker-Content-Digest` header alone is never taken for the digest (when present it must
    /// match the bytes, see `manifest_inner`).
    async fn resolve_inner(&self, image: &ImageReference) -> Result<Digest, Error> {
        if let Some(d) = reference_digest(image)? {
            return Ok(d);
        }
        Ok(self.manifest_inner(image).await?.digest)
    }

    async fn blob_inner(
        &self,
        image: &ImageReference,
        digest: &Digest,
        limit: u64,
    ) -> Result<Vec<u8>, Error> {
        let ctx = self.ctx(image)?;
        let reference = format!("{}@{digest}", image.name());
        let (ctx, reference) = (&ctx, &reference);
        self.first_digest_host(ctx, "blob", reference, |host| async move {
            let url = ctx.url(&host, &format!("blobs/{digest}"));
            let body = self
                .fetch(
                    ctx,
                    &host,
                    Method::GET,
                    &url,
                    "*/*",
                    "blob",
                    reference,
                    limit,
                    Some(digest),
                )
                .await?;
            Ok(body.bytes)
        })
        .await
    }

    async fn blob_to_file_inner(
        &self,
        image: &ImageReference,
        digest: &Digest,
        limit: u64,
        dest: &Path,
    ) -> Result<(), Error> {
        let ctx = self.ctx(image)?;
        let reference = format!("{}@{digest}", image.name());
        let (ctx, reference) = (&ctx, &reference);
        self.first_digest_host(ctx, "blob", reference, |host| async move {
            let url = ctx.url(&host, &format!("blobs/{digest}"));
            // A closed semaphore (never closed in practice) counts as this host's failure, as
            // it does for `fetch`.
            let sem = self.semaphore(&host);
            let _permit = sem.acquire().await.map_err(|_| Error::Config {
                message: "client shut down".into(),
            })?;
            let resp = self
                .send(ctx, &host, Method::GET, &url, "*/*", "blob", reference)
                .await?;
            stream_to_file(
                resp,
                &host,
                self.config.timeouts.request,
                limit,
                digest,
                dest,
                reference,
            )
            .await
        })
        .await
    }

    async fn referrers_inner(
        &self,
        image: &ImageReference,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Option<Referrers>, Error> {
        let ctx = self.ctx(image)?;
        let host = ctx.primary_host();
        let mut rest = format!("referrers/{subject}");
        if let Some(at) = artifact_type {
            rest.push_str("?artifactType=");
            rest.push_str(&percent_encode(at));
        }
        let url = ctx.url(&host, &rest);
        let reference = format!("{}@{subject}", image.name());
        let r = self
            .fetch(
                &ctx,
                &host,
                Method::GET,
                &url,
                crate::types::OCI_INDEX,
                "referrers",
                &reference,
                self.config.limits.max_manifest_bytes,
                None,
            )
            .await;
        match r {
            // 404: the registry has no referrers API (OCI 1.1 says: use the tag schema).
            Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
            Ok(body) => {
                let ct = body
                    .headers
                    .get(CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                if !ct.starts_with(crate::types::OCI_INDEX) {
                    // Some registries answer 200 with an HTML or error page on unknown routes.
                    return Ok(None);
                }
                crate::source::referrers_from_index_bytes(
                    &body.bytes,
                    &self.config.limits,
                    ReferrersOrigin::Api,
                )
                .map(Some)
            }
        }
    }
}

/// Across mirrors and the registry (tried last), the error worth reporting: the first
/// evidence failure (wrong or oversized bytes from any host must not be masked by another
/// host lacking the content or being down), else the registry's own error.
fn keep_error(slot: &mut Option<Error>, e: Error) {
    let is_evidence = |x: &Error| !x.is_infrastructure() && !matches!(x, Error::NotFound { .. });
    match slot {
        Some(prev) if is_evidence(prev) => {}
        _ => *slot = Some(e),
    }
}

/// Most redirects followed for one request.
const MAX_REDIRECTS: usize = 5;

/// The redirect policy of the other HTTP clients of this crate (Rekor, TUF), which send no
/// credentials: at most [`MAX_REDIRECTS`], and never from HTTPS to plain HTTP.
#[cfg(any(feature = "rekor", feature = "tuf"))]
pub(crate) fn no_downgrade_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        if attempt.previous().len() >= MAX_REDIRECTS {
            return attempt.error("too many redirects");
        }
        let downgrade = attempt.url().scheme() != "https"
            && attempt.previous().iter().any(|u| u.scheme() == "https");
        if downgrade {
            attempt.error("a redirect from HTTPS to plain HTTP is never followed")
        } else {
            attempt.follow()
        }
    })
}

/// `host[:port]` of a URL, as hosts are written in references and settings.
fn authority_of(url: &reqwest::Url) -> String {
    let host = url.host_str().unwrap_or("");
    match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_owned(),
    }
}

/// A URL for humans: scheme, host and path, never the query (it may carry upload state).
fn url_for_humans(url: &reqwest::Url) -> String {
    format!("{}://{}{}", url.scheme(), authority_of(url), url.path())
}

/// True when `url` is on the origin `scheme://host` (scheme, host and port, default ports
/// normalized).
fn same_origin(url: &reqwest::Url, scheme: &str, host: &str) -> bool {
    reqwest::Url::parse(&format!("{scheme}://{host}/")).is_ok_and(|o| o.origin() == url.origin())
}

/// `client_id` sent with OAuth2 token requests.
const OAUTH2_CLIENT_ID: &str = "provenance";

/// Largest token-endpoint answer read.
const MAX_TOKEN_RESPONSE: u64 = 1 << 20;

/// Parameters of a `WWW-Authenticate` challenge (`Bearer realm="...",service="...",...`),
/// names lower-cased; quoted values may contain commas and `\"` escapes.
fn parse_challenge(challenge: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let rest = challenge
        .trim_start()
        .split_once(char::is_whitespace)
        .map_or("", |(_, r)| r);
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ',' {
                break;
            }
            name.push(c);
            chars.next();
        }
        if name.is_empty() {
            break;
        }
        if chars.next() != Some('=') {
            continue;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            value.push(n);
                        }
                    }
                    '"' => break,
                    other => value.push(other),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        out.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
    }
    out
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn manifest_from(body: Body, alg: DigestAlgorithm) -> Result<Manifest, Error> {
    let ct = body
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.split(';').next().unwrap_or("").trim().to_owned());
    Manifest::from_bytes(body.bytes, alg, ct.as_deref())
}

trait MapOk<T> {
    async fn map_ok(self, headers: HeaderMap) -> Result<Body, Error>;
}

impl<F: Future<Output = Result<Vec<u8>, Error>>> MapOk<Vec<u8>> for F {
    async fn map_ok(self, headers: HeaderMap) -> Result<Body, Error> {
        Ok(Body {
            bytes: self.await?,
            headers,
        })
    }
}

/// Reads and drops the body of an answer that is not used (a 404, a 401 challenge, a 5xx)
/// when it is small and announced (`Content-Length` up to 4 KiB), for at most a second: a
/// response dropped before its body was read closes its connection, so without this every
/// such answer (a registry without the referrers API answers two 404s per lookup) costs a new
/// connection, and with a registry far away its TCP and TLS handshakes.
async fn discard_small_body(mut resp: reqwest::Response) {
    if resp.content_length().is_some_and(|n| n <= 4096) {
        let drain = async { while let Ok(Some(_)) = resp.chunk().await {} };
        let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
    }
}

async fn read_body(
    mut resp: reqwest::Response,
    host: &str,
    after: Duration,
    limit: u64,
    expected: Option<&Digest>,
    what: &'static str,
    reference: &str,
) -> Result<Vec<u8>, Error> {
    let too_large = || Error::TooLarge {
        what: format!("{what} {reference}"),
        limit,
    };
    if resp.content_length().is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let alg = expected
        .map(|d| d.algorithm())
        .unwrap_or(DigestAlgorithm::Sha256);
    let mut h = CheckedHasher::new(alg, limit, format!("{what} {reference}"));
    let mut out = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| network_error(host, &e, after))?
    {
        h.update(&chunk)?;
        out.extend_from_slice(&chunk);
    }
    if let Some(d) = expected {
        h.check(d)?;
    }
    Ok(out)
}

async fn stream_to_file(
    mut resp: reqwest::Response,
    host: &str,
    after: Duration,
    limit: u64,
    digest: &Digest,
    dest: &Path,
    reference: &str,
) -> Result<(), Error> {
    if resp.content_length().is_some_and(|n| n > limit) {
        return Err(Error::TooLarge {
            what: format!("blob {reference}"),
            limit,
        });
    }
    let tmp = crate::fsutil::temp_path(dest);
    let mut file = tokio::fs::File::from_std(crate::fsutil::create_temp(&tmp)?);
    let mut h = CheckedHasher::new(digest.algorithm(), limit, format!("blob {reference}"));
    let r: Result<(), Error> = async {
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| network_error(host, &e, after))?
        {
            h.update(&chunk)?;
            file.write_all(&chunk)
                .await
                .map_err(|e| Error::io(&tmp, &e))?;
        }
        file.flush().await.map_err(|e| Error::io(&tmp, &e))?;
        Ok(())
    }
    .await;
    drop(file);
    let r = r.and_then(|()| h.check(digest));
    match r {
        Ok(()) => tokio::fs::rename(&tmp, dest)
            .await
            .map_err(|e| Error::io(dest, &e)),
        Err(e) => {
            let _ = tokio::fs::remove_file(&tmp).await;
            Err(e)
        }
    }
}

impl EvidenceSource for RegistryClient {
    async fn resolve(&self, image: &ImageReference) -> Result<Digest, Error> {
        self.deadline(
            image.domain(),
            "resolve",
            self.config.timeouts.operation,
            self.resolve_inner(image),
        )
        .await
    }

    async fn manifest(&self, image: &ImageReference) -> Result<Manifest, Error> {
        self.deadline(
            image.domain(),
            "manifest",
            self.config.timeouts.operation,
            self.manifest_inner(image),
        )
        .await
    }

    async fn blob(
        &self,
        image: &ImageReference,
        digest: &Digest,
        limit: u64,
    ) -> Result<Vec<u8>, Error> {
        self.deadline(
            image.domain(),
            "blob",
            self.config.timeouts.operation,
            self.blob_inner(&repo_of(image), digest, limit),
        )
        .await
    }

    async fn blob_to_file(
        &self,
        image: &ImageReference,
        digest: &Digest,
        limit: u64,
        dest: &Path,
    ) -> Result<(), Error> {
        self.deadline(
            image.domain(),
            "blob copy",
            self.config.timeouts.export_blob,
            self.blob_to_file_inner(&repo_of(image), digest, limit, dest),
        )
        .await
    }

    async fn referrers_api(
        &self,
        image: &ImageReference,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Option<Referrers>, Error> {
        self.deadline(
            image.domain(),
            "referrers",
            self.config.timeouts.operation,
            self.referrers_inner(image, subject, artifact_type),
        )
        .await
    }

    fn limits(&self) -> Limits {
        self.config.limits
    }
}

/// An authentication failure at `host`.
fn auth_error(host: &str, message: String) -> Error {
    Error::Auth {
        registry: host.to_owned(),
        message,
    }
}

/// The bearer token in a token endpoint's (bounded) reply: `token`, else `access_token` (the
/// Docker token spec's two names for it), neither empty; an error status or a reply without
/// one is an authentication error naming `realm`.
fn token_from_reply(
    host: &str,
    status: StatusCode,
    bytes: &[u8],
    realm: &str,
    context: &str,
) -> Result<String, Error> {
    let auth_err = |message: String| auth_error(host, message);
    if !status.is_success() {
        return Err(auth_err(format!(
            "token endpoint {realm} answered {status}{context}: {}",
            String::from_utf8_lossy(bytes)
                .chars()
                .take(200)
                .collect::<String>()
        )));
    }
    #[derive(serde::Deserialize)]
    struct TokenResponse {
        token: Option<String>,
        access_token: Option<String>,
    }
    let parsed: TokenResponse = serde_json::from_slice(bytes)
        .map_err(|e| auth_err(format!("token endpoint {realm}: invalid JSON: {e}")))?;
    parsed
        .token
        .filter(|t| !t.is_empty())
        .or(parsed.access_token.filter(|t| !t.is_empty()))
        .ok_or_else(|| auth_err(format!("token endpoint {realm} returned no token")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn challenge_parameters() {
        let p = parse_challenge(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push",error="invalid_token""#,
        );
        assert_eq!(p["realm"], "https://auth.example/token");
        assert_eq!(p["service"], "registry.example");
        assert_eq!(p["scope"], "repository:a/b:pull,push");
        assert_eq!(p["error"], "invalid_token");
        let p = parse_challenge(r#"Bearer Realm=https://a/t, service="s \"q\"""#);
        assert_eq!(p["realm"], "https://a/t");
        assert_eq!(p["service"], r#"s "q""#);
        assert!(parse_challenge("Bearer").is_empty());
        assert!(parse_challenge("").is_empty());
    }

    #[test]
    fn endpoint_and_plain_http_settings_combine_in_either_order() {
        let a = RegistryConfig::default()
            .allow_http("registry.example")
            .with_endpoint("registry.example", "127.0.0.1:5000");
        let b = RegistryConfig::default()
            .with_endpoint("registry.example", "127.0.0.1:5000")
            .allow_http("registry.example");
        for c in [&a, &b] {
            let s = c.settings("registry.example");
            assert!(s.insecure_http);
            assert_eq!(s.endpoint.as_deref(), Some("127.0.0.1:5000"));
            // Other registries keep the defaults.
            assert_eq!(c.settings("other.example"), &RegistrySettings::default());
        }
        // A later endpoint replaces an earlier one and keeps the mirrors.
        let c = RegistryConfig::default()
            .with_registry(
                "registry.example",
                RegistrySettings {
                    mirrors: vec!["mirror.example".into()],
                    ..RegistrySettings::default()
                },
            )
            .with_endpoint("registry.example", "a:1")
            .with_endpoint("registry.example", "b:2");
        let s = c.settings("registry.example");
        assert_eq!(s.endpoint.as_deref(), Some("b:2"));
        assert_eq!(s.mirrors, vec!["mirror.example".to_owned()]);
    }

    #[test]
    fn origins_compare_scheme_host_and_port() {
        let u = reqwest::Url::parse("https://r.example/v2/a/blobs/x").unwrap();
        assert!(same_origin(&u, "https", "r.example"));
        assert!(same_origin(&u, "https", "r.example:443"));
        assert!(!same_origin(&u, "http", "r.example"));
        assert!(!same_origin(&u, "https", "r.example:5000"));
        assert!(!same_origin(&u, "https", "evil.example"));
        let u = reqwest::Url::parse("http://127.0.0.1:5000/v2/").unwrap();
        assert_eq!(authority_of(&u), "127.0.0.1:5000");
        assert!(same_origin(&u, "http", "127.0.0.1:5000"));
    }

    #[test]
    fn https_never_goes_to_plain_http_unless_that_host_is_allowed() {
        // The check every redirect target, upload location and realm goes through.
        let client =
            RegistryClient::new(RegistryConfig::default().allow_http("127.0.0.1:9")).unwrap();
        let url = |u: &str| reqwest::Url::parse(u).unwrap();
        let e = client
            .check_target(
                "r.example",
                &url("http://evil.example/v2/a/manifests/1"),
                true,
            )
            .unwrap_err();
        assert_eq!(e.code(), "oci.origin.downgrade");
        assert!(e.is_infrastructure());
        // Not from HTTPS: plain HTTP to a host nobody allowed.
        let e = client
            .check_target("r.example", &url("http://evil.example/x"), false)
            .unwrap_err();
        assert_eq!(e.code(), "oci.insecure_not_allowed");
        // A host named by `insecure_http`, and HTTPS anywhere.
        assert!(
            client
                .check_target("r.example", &url("http://127.0.0.1:9/x"), true)
                .is_ok()
        );
        assert!(
            client
                .check_target("r.example", &url("https://cdn.example/x"), true)
                .is_ok()
        );
        let e = client
            .check_target("r.example", &url("file:///etc/passwd"), true)
            .unwrap_err();
        assert_eq!(e.code(), "oci.origin.scheme");
    }

    #[tokio::test]
    async fn realms_over_plain_http_only_for_hosts_allowed_plain_http() {
        let client = RegistryClient::new(
            RegistryConfig::default()
                .allow_http("127.0.0.1:1")
                .allow_http("127.0.0.1:2"),
        )
        .unwrap();
        let https = ImageReference::parse("r.example/a/b:1").unwrap();
        let ctx = client.ctx(&https).unwrap();
        assert!(
            client
                .check_realm(&ctx, "r.example", "https://auth.example/token")
                .is_ok()
        );
        let e = client
            .check_realm(&ctx, "r.example", "http://auth.example/token")
            .unwrap_err();
        assert_eq!(e.code(), "oci.origin.downgrade");
        // Plain HTTP to a realm host that is allowed it.
        assert!(
            client
                .check_realm(&ctx, "r.example", "http://127.0.0.1:2/token")
                .is_ok()
        );
        let e = client
            .check_realm(&ctx, "r.example", "ftp://auth.example/token")
            .unwrap_err();
        assert_eq!(e.code(), "oci.origin.scheme");
        // A plain-HTTP registry's realm on another plain-HTTP host that is not allowed.
        let http = ImageReference::parse("127.0.0.1:1/a/b:1").unwrap();
        let ctx = client.ctx(&http).unwrap();
        let e = client
            .check_realm(&ctx, "127.0.0.1:1", "http://auth.example/token")
            .unwrap_err();
        assert_eq!(e.code(), "oci.insecure_not_allowed");
    }
}
