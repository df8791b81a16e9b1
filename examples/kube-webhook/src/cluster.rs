//! Cluster data for rule `context` entries, read from the cluster: `configMap` entries from a
//! reflector cache over ConfigMaps, `apiCall` entries with a `urlPath` by a GET to the API
//! server through the kube client, with the webhook's own credentials (its RBAC decides what
//! a policy can read).
//!
//! The engine evaluates synchronously and asks [`ClusterData`] synchronously. The webhook runs
//! the evaluation on tokio's blocking pool (`spawn_blocking`), never on a runtime worker; an
//! API call is a task spawned on the runtime whose answer the evaluating thread waits for,
//! until the request's deadline at most. Called on a runtime worker by mistake, a call cannot
//! hang the webhook either: it waits until the deadline and fails.
//!
//! Bounded per request ([`RequestCluster`]): at most `--api-calls-per-request` distinct GETs
//! (a repeated path is answered from the request's memo), each answer at most
//! `--api-call-max-bytes`, everything before the request's deadline. A look-up that fails,
//! times out or goes beyond a bound is a [`LookupError`] and the rule that reads it reports
//! `error` (fail closed), never an empty answer.
//!
//! Not answered: `apiCall` with another method than GET (a POST to the API server can create
//! objects with the webhook's credentials), `apiCall.service` (calls to URLs a policy names),
//! `globalReference`, and GETs of Secrets (an answer can end up in a message the requester
//! reads). Each is a [`LookupError`] where it is used.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use http_body_util::BodyExt as _;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Api, Client, ResourceExt as _};
use provenance_policy::admission::cluster::{ApiPath, ClusterData, LookupError};
use serde_json::{Value, json};

/// How long the ConfigMap cache may take to list the cluster at start.
const SYNC_TIMEOUT: Duration = Duration::from_secs(60);

/// The bounds on cluster look-ups.
#[derive(clap::Args, Debug, Clone)]
pub struct ClusterArgs {
    /// Most distinct `apiCall` GETs to the API server for one admission request (0: none;
    /// such rules are then errors).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(0..=256))]
    pub api_calls_per_request: u64,
    /// Largest API server answer to one `apiCall`, in bytes; a larger one fails the look-up.
    #[arg(long, default_value_t = 2 << 20, value_parser = clap::value_parser!(u64).range(1..=(64 << 20)))]
    pub api_call_max_bytes: u64,
    /// Cache only the ConfigMaps that match this label selector (e.g.
    /// `policy.example.org/context=true`); a `configMap` entry naming another ConfigMap is
    /// then not found (an error) [default: every ConfigMap].
    #[arg(long)]
    pub config_map_selector: Option<String>,
}

/// Cluster data shared by every request: the ConfigMap cache, the client, the bounds.
pub struct Live {
    config_maps: Store<ConfigMap>,
    client: Client,
    runtime: tokio::runtime::Handle,
    max_calls: usize,
    max_bytes: usize,
    selector: Option<String>,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live")
            .field("config_maps", &self.config_maps.len())
            .field("max_calls", &self.max_calls)
            .field("max_bytes", &self.max_bytes)
            .field("selector", &self.selector)
            .finish_non_exhaustive()
    }
}

impl Live {
    /// Starts the ConfigMap reflector and waits until it has listed the cluster.
    pub async fn start(client: Client, args: &ClusterArgs) -> Result<Live, String> {
        let mut config = watcher::Config::default();
        if let Some(s) = &args.config_map_selector {
            config = config.labels(s);
        }
        let (reader, writer) = reflector::store();
        let stream = watcher(Api::<ConfigMap>::all(client.clone()), config)
            .default_backoff()
            .modify(|o: &mut ConfigMap| o.managed_fields_mut().clear())
            .reflect(writer);
        tokio::spawn(stream.for_each(|event| {
            if let Err(e) = event {
                eprintln!("provenance-kube-webhook: ConfigMap watch: {e}");
            }
            std::future::ready(())
        }));
        match tokio::time::timeout(SYNC_TIMEOUT, reader.wait_until_ready()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(format!("ConfigMap cache: {e}")),
            Err(_) => {
                return Err(format!(
                    "ConfigMap cache not filled within {} s: can the webhook list and watch \
                     configmaps?",
                    SYNC_TIMEOUT.as_secs()
                ));
            }
        }
        Ok(Live::new(reader, client, args))
    }

    /// Cluster data over a ConfigMap cache that is already filled.
    pub fn new(config_maps: Store<ConfigMap>, client: Client, args: &ClusterArgs) -> Live {
        Live {
            config_maps,
            client,
            runtime: tokio::runtime::Handle::current(),
            max_calls: usize::try_from(args.api_calls_per_request).unwrap_or(usize::MAX),
            max_bytes: usize::try_from(args.api_call_max_bytes).unwrap_or(usize::MAX),
            selector: args.config_map_selector.clone(),
        }
    }

    /// The cluster data of one request, whose look-ups must end by `deadline`.
    pub fn for_request(self: &Arc<Self>, deadline: Instant) -> RequestCluster {
        RequestCluster {
            live: self.clone(),
            deadline,
            calls: Mutex::new(Calls::default()),
        }
    }
}

/// What one request has asked the API server, and the answers.
#[derive(Debug, Default)]
struct Calls {
    made: usize,
    answers: BTreeMap<String, Result<Value, LookupError>>,
}

/// The cluster data of one admission request: [`Live`] with this request's deadline and
/// budget of API calls.
#[derive(Debug)]
pub struct RequestCluster {
    live: Arc<Live>,
    deadline: Instant,
    calls: Mutex<Calls>,
}

impl RequestCluster {
    /// One GET, within the budget and the deadline; the answer is remembered for the request.
    fn get(&self, path: String) -> Result<Value, LookupError> {
        let what = format!("GET {path}");
        {
            let mut calls = self.calls.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(answer) = calls.answers.get(&path) {
                return answer.clone();
            }
            if calls.made >= self.live.max_calls {
                return Err(LookupError::LimitExceeded {
                    what,
                    limit: format!("{} API calls per request", self.live.max_calls),
                });
            }
            calls.made += 1;
        }
        let left = self.deadline.saturating_duration_since(Instant::now());
        let answer = if left.is_zero() {
            Err(LookupError::Unavailable {
                what,
                reason: "the request's deadline passed".into(),
            })
        } else {
            let (tx, rx) = std::sync::mpsc::sync_channel(1);
            let (client, max, p) = (self.live.client.clone(), self.live.max_bytes, path.clone());
            let task = self.live.runtime.spawn(async move {
                // The receiver may be gone (timed out): nothing to tell then.
                let _ = tx.send(fetch(client, p, max).await);
            });
            match rx.recv_timeout(left) {
                Ok(answer) => answer,
                Err(_) => {
                    task.abort();
                    Err(LookupError::Unavailable {
                        what,
                        reason: format!(
                            "no answer from the API server within the request's deadline ({} ms left)",
                            left.as_millis()
                        ),
                    })
                }
            }
        };
        let mut calls = self.calls.lock().unwrap_or_else(PoisonError::into_inner);
        calls.answers.insert(path, answer.clone());
        answer
    }
}

impl ClusterData for RequestCluster {
    fn config_map(&self, namespace: &str, name: &str) -> Result<Value, LookupError> {
        let key = ObjectRef::<ConfigMap>::new(name).within(namespace);
        let Some(cm) = self.live.config_maps.get(&key) else {
            return Err(LookupError::NotFound {
                what: match &self.live.selector {
                    Some(s) => format!(
                        "ConfigMap {namespace}/{name} (the webhook caches only ConfigMaps \
                         labelled {s})"
                    ),
                    None => format!("ConfigMap {namespace}/{name}"),
                },
            });
        };
        Ok(json!({
            "data": serde_json::to_value(&cm.data).unwrap_or(Value::Null),
            "metadata": serde_json::to_value(&cm.metadata).unwrap_or(Value::Null),
        }))
    }

    fn api_call(
        &self,
        method: &str,
        url_path: &str,
        body: Option<&Value>,
    ) -> Result<Value, LookupError> {
        let _ = body;
        if !method.eq_ignore_ascii_case("GET") {
            return Err(LookupError::NotSupplied {
                what: format!(
                    "answers to {method} {url_path} (the webhook sends only GETs to the API server)"
                ),
            });
        }
        self.get(api_path(url_path)?)
    }
}

/// The path the webhook GETs for `url_path`, rebuilt from its parsed parts: only
/// `/api/...` and `/apis/...` paths of objects and collections, names of letters, digits and
/// `.-_:`, no Secrets, and no query but `labelSelector` (re-encoded). Anything else is
/// [`LookupError::Invalid`].
pub fn api_path(url_path: &str) -> Result<String, LookupError> {
    let invalid = |reason: String| LookupError::Invalid {
        what: format!("GET {url_path}"),
        reason,
    };
    let p = ApiPath::parse(url_path)?;
    let segments = [
        Some(&p.group).filter(|g| !g.is_empty()),
        Some(&p.version),
        p.namespace.as_ref(),
        Some(&p.resource),
        p.name.as_ref(),
    ];
    for s in segments.into_iter().flatten() {
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':');
        if s.is_empty() || s == "." || s == ".." || !s.chars().all(allowed) {
            return Err(invalid(format!("path segment {s:?} is not a name")));
        }
    }
    // `/api/v1/watch/pods` is a watch that never ends, `proxy` reaches through the API server.
    if matches!(p.resource.as_str(), "watch" | "proxy") {
        return Err(invalid(format!(
            "{:?} paths are not object reads",
            p.resource
        )));
    }
    if p.group.is_empty() && p.resource == "secrets" {
        return Err(invalid(
            "the webhook does not read Secrets for policies (an answer can reach the requester \
             in a message)"
                .into(),
        ));
    }
    let mut out = if p.group.is_empty() {
        format!("/api/{}", p.version)
    } else {
        format!("/apis/{}/{}", p.group, p.version)
    };
    if let Some(ns) = &p.namespace {
        out.push_str(&format!("/namespaces/{ns}"));
    }
    out.push('/');
    out.push_str(&p.resource);
    if let Some(name) = &p.name {
        out.push('/');
        out.push_str(name);
    }
    if let Some(sel) = &p.label_selector {
        out.push_str("?labelSelector=");
        for b in sel.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                out.push(char::from(b));
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    Ok(out)
}

/// GETs `path` from the API server: the JSON answer of at most `max` bytes. A status outside
/// 2xx is an error (404: not found), and so is an unreachable server or a non-JSON answer.
async fn fetch(client: Client, path: String, max: usize) -> Result<Value, LookupError> {
    let what = format!("GET {path}");
    let unavailable = |reason: String| LookupError::Unavailable {
        what: what.clone(),
        reason,
    };
    let too_large = || LookupError::LimitExceeded {
        what: what.clone(),
        limit: format!("{max} bytes per answer"),
    };
    let request = http::Request::get(path.as_str())
        .header(http::header::ACCEPT, "application/json")
        .body(kube::client::Body::empty())
        .map_err(|e| unavailable(e.to_string()))?;
    let response = client
        .send(request)
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    let status = response.status();
    if status == http::StatusCode::NOT_FOUND {
        return Err(LookupError::NotFound { what });
    }
    if !status.is_success() {
        return Err(LookupError::Status {
            method: "GET".into(),
            url: path,
            status: status.as_u16(),
        });
    }
    let declared = response
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    let mut body = response.into_body();
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| unavailable(e.to_string()))?;
        if let Ok(data) = frame.into_data() {
            if bytes.len() + data.len() > max {
                return Err(too_large());
            }
            bytes.extend_from_slice(&data);
        }
    }
    serde_json::from_slice(&bytes).map_err(|e| unavailable(format!("not a JSON answer: {e}")))
}

#[cfg(test)]
mod tests {
    //! The look-ups against a kube `Client` over an in-process service that answers as the API
    //! server would (no API server can run here); the whole webhook against a loopback
    //! stand-in is in `tests/cluster.rs`.
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    type Answer = http::Response<kube::client::Body>;

    fn args(calls: u64, bytes: u64) -> ClusterArgs {
        ClusterArgs {
            api_calls_per_request: calls,
            api_call_max_bytes: bytes,
            config_map_selector: None,
        }
    }

    fn json_answer(status: u16, v: &Value) -> Answer {
        http::Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(kube::client::Body::from(v.to_string().into_bytes()))
            .unwrap()
    }

    /// A stand-in for the API server: namespaces `ml` (labelled) and `slow` (answers after
    /// 5 s), a 5 KiB ConfigMap list, 404 for anything else; counts the requests.
    fn client(seen: Arc<AtomicUsize>, paths: Arc<Mutex<Vec<String>>>) -> Client {
        let service = tower::service_fn(move |req: http::Request<kube::client::Body>| {
            let (seen, paths) = (seen.clone(), paths.clone());
            async move {
                seen.fetch_add(1, Ordering::SeqCst);
                let path = req.uri().path_and_query().unwrap().to_string();
                paths.lock().unwrap().push(path.clone());
                let answer = match path.as_str() {
                    "/api/v1/namespaces/ml" => json_answer(
                        200,
                        &json!({"apiVersion": "v1", "kind": "Namespace",
                            "metadata": {"name": "ml", "labels": {"gpu": "yes"}}}),
                    ),
                    "/api/v1/namespaces/slow" => {
                        tokio::time::sleep(Duration::from_secs(5)).await;
                        json_answer(200, &json!({"kind": "Namespace"}))
                    }
                    "/api/v1/namespaces/forbidden" => json_answer(
                        403,
                        &json!({"kind": "Status", "reason": "Forbidden", "code": 403}),
                    ),
                    p if p.starts_with("/api/v1/configmaps") => json_answer(
                        200,
                        &json!({"apiVersion": "v1", "kind": "ConfigMapList",
                            "metadata": {"resourceVersion": "7"},
                            "items": [{"metadata": {"name": "big", "namespace": "ml"},
                                       "data": {"x": "y".repeat(5000)}}]}),
                    ),
                    _ => json_answer(404, &json!({"kind": "Status", "code": 404})),
                };
                Ok::<_, std::convert::Infallible>(answer)
            }
        });
        Client::new(service, "default")
    }

    fn live(calls: u64, bytes: u64) -> (Arc<Live>, Arc<AtomicUsize>, Arc<Mutex<Vec<String>>>) {
        let (seen, paths) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(Mutex::new(Vec::new())),
        );
        let (reader, mut writer) = reflector::store::<ConfigMap>();
        let cm: ConfigMap = serde_json::from_value(json!({
            "metadata": {"name": "teams", "namespace": "ml", "labels": {"l": "v"}},
            "data": {"allowed": "vision,nlp"},
        }))
        .unwrap();
        writer.apply_watcher_event(&watcher::Event::Apply(cm));
        let client = client(seen.clone(), paths.clone());
        (
            Arc::new(Live::new(reader, client, &args(calls, bytes))),
            seen,
            paths,
        )
    }

    /// Runs `f` on the blocking pool, as the webhook runs the evaluation.
    async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        tokio::task::spawn_blocking(f).await.unwrap()
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(3)
    }

    #[tokio::test]
    async fn config_maps_come_from_the_cache_and_a_missing_one_is_not_found() {
        let (live, seen, _) = live(8, 1 << 20);
        let rc = live.for_request(soon());
        let cm = rc.config_map("ml", "teams").unwrap();
        assert_eq!(cm["data"]["allowed"], "vision,nlp");
        assert_eq!(cm["metadata"]["labels"]["l"], "v");
        let e = rc.config_map("other", "teams").unwrap_err();
        assert_eq!(e.code(), "policy.context.not_found");
        assert_eq!(e.to_string(), "ConfigMap other/teams not found");
        assert_eq!(seen.load(Ordering::SeqCst), 0, "no API call for ConfigMaps");
    }

    // One worker thread: the stand-in answers on it while the look-up waits on the blocking
    // pool. Were the look-up waiting on the worker, it would time out instead.
    #[tokio::test(flavor = "current_thread")]
    async fn api_gets_are_answered_and_remembered_for_the_request() {
        let (live, seen, paths) = live(8, 1 << 20);
        let rc = Arc::new(live.for_request(soon()));
        let r = rc.clone();
        let (ns, again, missing, forbidden) = blocking(move || {
            (
                r.api_call("GET", "/api/v1/namespaces/ml", None),
                r.api_call("get", "/api/v1/namespaces/ml", None),
                r.api_call("GET", "/api/v1/namespaces/absent", None),
                r.api_call("GET", "/api/v1/namespaces/forbidden", None),
            )
        })
        .await;
        assert_eq!(ns.unwrap()["metadata"]["labels"]["gpu"], "yes");
        assert_eq!(again.unwrap()["metadata"]["name"], "ml");
        assert_eq!(missing.unwrap_err().code(), "policy.context.not_found");
        let e = forbidden.unwrap_err();
        assert_eq!(e.code(), "policy.context.http_status");
        assert_eq!(
            e.to_string(),
            "HTTP 403 from GET /api/v1/namespaces/forbidden"
        );
        assert_eq!(
            seen.load(Ordering::SeqCst),
            3,
            "the repeated GET is remembered"
        );
        assert_eq!(paths.lock().unwrap()[0], "/api/v1/namespaces/ml");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_call_on_a_runtime_worker_fails_at_the_deadline_instead_of_hanging() {
        let (live, _, _) = live(8, 1 << 20);
        let rc = live.for_request(Instant::now() + Duration::from_millis(300));
        let started = Instant::now();
        // The only worker waits: the spawned GET cannot run, the deadline ends the wait.
        let e = rc
            .api_call("GET", "/api/v1/namespaces/ml", None)
            .unwrap_err();
        assert_eq!(e.code(), "policy.context.unavailable");
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn a_slow_api_server_is_unavailable_at_the_request_deadline() {
        let (live, _, _) = live(8, 1 << 20);
        let rc = Arc::new(live.for_request(Instant::now() + Duration::from_millis(400)));
        let started = Instant::now();
        let r = rc.clone();
        let e = blocking(move || r.api_call("GET", "/api/v1/namespaces/slow", None))
            .await
            .unwrap_err();
        assert_eq!(e.code(), "policy.context.unavailable");
        assert!(e.to_string().contains("deadline"), "{e}");
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(350), "{waited:?}");
        assert!(waited < Duration::from_secs(2), "{waited:?}");
        // Past the deadline, a further look-up fails at once.
        let r = rc.clone();
        let e = blocking(move || r.api_call("GET", "/api/v1/namespaces/ml", None))
            .await
            .unwrap_err();
        assert_eq!(e.code(), "policy.context.unavailable");
    }

    #[tokio::test]
    async fn calls_per_request_and_answer_sizes_are_bounded() {
        let (live, seen, _) = live(2, 4096);
        let rc = Arc::new(live.for_request(soon()));
        let r = rc.clone();
        let (big, second, third, repeat) = blocking(move || {
            (
                r.api_call("GET", "/api/v1/configmaps", None),
                r.api_call("GET", "/api/v1/namespaces/ml", None),
                r.api_call("GET", "/api/v1/namespaces/other", None),
                r.api_call("GET", "/api/v1/configmaps", None),
            )
        })
        .await;
        let e = big.unwrap_err();
        assert_eq!(e.code(), "policy.context.limit_exceeded");
        assert_eq!(
            e.to_string(),
            "GET /api/v1/configmaps: over the limit of 4096 bytes per answer"
        );
        assert!(second.is_ok());
        let e = third.unwrap_err();
        assert_eq!(e.code(), "policy.context.limit_exceeded");
        assert!(e.to_string().contains("2 API calls per request"), "{e}");
        assert_eq!(repeat.unwrap_err().code(), "policy.context.limit_exceeded");
        assert_eq!(seen.load(Ordering::SeqCst), 2);
        // Another request has its own budget.
        let r = Arc::new(live.for_request(soon()));
        let ok = blocking(move || r.api_call("GET", "/api/v1/namespaces/ml", None)).await;
        assert!(ok.is_ok());
    }

    #[tokio::test]
    async fn only_gets_of_plain_api_paths_reach_the_api_server() {
        let (live, seen, _) = live(8, 1 << 20);
        let rc = live.for_request(soon());
        for (path, code) in [
            (
                "/api/v1/namespaces/ml/secrets/token",
                "policy.context.invalid_lookup",
            ),
            ("/api/v1/secrets", "policy.context.invalid_lookup"),
            (
                "/api/v1/namespaces/ml/pods/p/log",
                "policy.context.invalid_lookup",
            ),
            (
                "/api/v1/namespaces/ml/configmaps/..%2Fsecrets",
                "policy.context.invalid_lookup",
            ),
            (
                "/api/v1/namespaces/../secrets",
                "policy.context.invalid_lookup",
            ),
            ("/api/v1/pods?watch=true", "policy.context.invalid_lookup"),
            ("/api/v1/watch/pods", "policy.context.invalid_lookup"),
            (
                "/apis/apps/v1/watch/deployments",
                "policy.context.invalid_lookup",
            ),
            ("/api/v1/proxy/nodes", "policy.context.invalid_lookup"),
            (
                "/api/v1/pods?fieldSelector=x",
                "policy.context.invalid_lookup",
            ),
            ("/version", "policy.context.invalid_lookup"),
            ("/metrics", "policy.context.invalid_lookup"),
            (
                "https://evil.example/api/v1/pods",
                "policy.context.invalid_lookup",
            ),
        ] {
            let e = rc.api_call("GET", path, None).unwrap_err();
            assert_eq!(e.code(), code, "{path}: {e}");
        }
        let e = rc
            .api_call(
                "POST",
                "/apis/authorization.k8s.io/v1/subjectaccessreviews",
                None,
            )
            .unwrap_err();
        assert_eq!(e.code(), "policy.context.not_supplied");
        assert_eq!(
            rc.service_call("GET", "https://svc.example/x", None)
                .unwrap_err()
                .code(),
            "policy.context.not_supplied"
        );
        assert_eq!(seen.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn api_paths_are_rebuilt_from_their_parts() {
        assert_eq!(
            api_path("/api/v1/namespaces/ml/configmaps?labelSelector=app%3Dweb,tier+in+(a,b)")
                .unwrap(),
            "/api/v1/namespaces/ml/configmaps?labelSelector=app%3Dweb%2Ctier%20in%20%28a%2Cb%29"
        );
        assert_eq!(
            api_path("apis/apps/v1/deployments/").unwrap(),
            "/apis/apps/v1/deployments"
        );
        assert_eq!(
            api_path("/apis/rbac.authorization.k8s.io/v1/clusterroles/system:node").unwrap(),
            "/apis/rbac.authorization.k8s.io/v1/clusterroles/system:node"
        );
        // A selector cannot smuggle a second parameter in.
        assert_eq!(
            api_path("/api/v1/pods?labelSelector=a%26watch%3Dtrue").unwrap(),
            "/api/v1/pods?labelSelector=a%26watch%3Dtrue"
        );
    }
}
