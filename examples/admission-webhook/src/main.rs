//! `provenance-webhook`: a Kubernetes admission webhook on `provenance-policy`.
//!
//! - `POST /validate`: AdmissionReview v1 in, AdmissionReview out. Enforced failures deny
//!   with Kyverno's message; Audit results come back as admission warnings.
//! - `POST /mutate`: `verifyImages` digest pinning as a JSONPatch (`mutateDigest`).
//! - `GET /healthz` (process alive), `/readyz` (policies loaded), `/metrics` (Prometheus).
//!
//! Policies (files or folders) are reloaded when they change, without dropping requests: a
//! reload builds a complete new policy set and swaps it in; a broken file keeps the old set.
//! Every request has a deadline below the API server's webhook timeout; when it is hit, the
//! request is denied unless every policy says `failurePolicy: Ignore` (fail closed).
#![forbid(unsafe_code)]

mod metrics;
mod policies;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use clap::Parser;
use provenance_core::UnixTime;
use provenance_policy::admission::input_from_review;
use provenance_policy::jmespath::Env;
use serde_json::{Value, json};

use metrics::Metrics;
use policies::Loaded;

/// Largest AdmissionReview accepted (the API server's request limit is 3 MiB).
const MAX_BODY: usize = 3 << 20;

#[derive(Parser, Debug)]
#[command(
    name = "provenance-webhook",
    version,
    about = "Kubernetes admission webhook for provenance policies"
)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0:8443")]
    listen: SocketAddr,
    /// Policy files or folders (YAML/JSON; folders are searched recursively). Repeatable.
    #[arg(long = "policies", required = true)]
    policies: Vec<PathBuf>,
    /// TLS certificate chain (PEM). Reloaded when it changes (certificate rotation).
    #[arg(long, required_unless_present = "dangerous_plain_http")]
    cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, required_unless_present = "dangerous_plain_http")]
    key: Option<PathBuf>,
    /// DANGEROUS: serve plain HTTP (local experiments only; Kubernetes requires HTTPS).
    #[arg(long)]
    dangerous_plain_http: bool,
    /// YAML map of namespace -> labels, for `namespaceSelector` (the webhook has no API access).
    #[arg(long)]
    namespace_labels: Option<PathBuf>,
    /// Per-request deadline in milliseconds; keep it below the webhook's `timeoutSeconds`.
    #[arg(long, default_value_t = 8000)]
    deadline_ms: u64,
    /// How often to check policy files (and the certificate) for changes, in seconds.
    #[arg(long, default_value_t = 2)]
    reload_seconds: u64,
    /// `verifyImages` evidence from an OCI image layout folder (air-gapped sites).
    #[arg(long, conflicts_with = "online")]
    registry_layout: Option<PathBuf>,
    /// `verifyImages` evidence from the images' registries.
    #[arg(long)]
    online: bool,
    /// Registries that may be reached over plain HTTP (e.g. a loopback mirror). Repeatable.
    #[arg(long)]
    allow_http: Vec<String>,
    /// Sigstore `trusted_root.json` for signature verification (default: the embedded
    /// public-good root).
    #[arg(long)]
    trust_root: Option<PathBuf>,
}

/// Where `verifyImages` evidence comes from, and the verifier that checks it.
struct Images {
    source: Source,
    verifier: Arc<provenance_core::verify::Verifier>,
}

enum Source {
    Layout(Arc<provenance_oci::LayoutSource>),
    Registry(Arc<provenance_oci::RegistryClient>),
}

fn images_from(args: &Args) -> Result<Option<Images>, String> {
    let source = if let Some(dir) = &args.registry_layout {
        Source::Layout(Arc::new(provenance_oci::LayoutSource::open(dir).map_err(
            |e| format!("--registry-layout {}: {e} [{}]", dir.display(), e.code()),
        )?))
    } else if args.online {
        let mut config = provenance_oci::RegistryConfig {
            docker_config: provenance_oci::DockerConfig::from_environment()
                .map_err(|e| format!("Docker config: {e} [{}]", e.code()))?,
            ..provenance_oci::RegistryConfig::default()
        };
        for r in &args.allow_http {
            config = config.allow_http(r.clone());
        }
        Source::Registry(Arc::new(
            provenance_oci::RegistryClient::new(config)
                .map_err(|e| format!("registry client: {e} [{}]", e.code()))?,
        ))
    } else {
        return Ok(None);
    };
    let root_bytes = match &args.trust_root {
        Some(p) => std::fs::read(p).map_err(|e| format!("--trust-root {}: {e}", p.display()))?,
        None => provenance_core::verify::PUBLIC_GOOD_TRUSTED_ROOT.to_vec(),
    };
    let root = provenance_core::TrustRoot::from_trusted_root_json(&root_bytes)
        .map_err(|e| format!("trust root: {e} [{}]", e.code()))?;
    let verifier = provenance_core::verify::Verifier::new(&root)
        .map_err(|e| format!("trust root: {e} [{}]", e.code()))?
        .with_memo(8192, 3600);
    Ok(Some(Images {
        source,
        verifier: Arc::new(verifier),
    }))
}

struct App {
    images: Option<Images>,
    loaded: RwLock<Arc<Loaded>>,
    metrics: Metrics,
    deadline: Duration,
    ready: AtomicBool,
}

fn now() -> UnixTime {
    UnixTime(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or_default(),
    )
}

fn log(fields: Value) {
    let mut v = fields;
    v["ts"] = json!(now().to_string());
    eprintln!("{v}");
}

fn current(app: &App) -> Arc<Loaded> {
    match app.loaded.read() {
        Ok(g) => g.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    }
}

fn review_ns(review: &Value) -> String {
    review
        .pointer("/request/namespace")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn review_response(uid: &Value, allowed: bool, message: &str, warnings: Vec<String>) -> Value {
    let mut resp = json!({"uid": uid, "allowed": allowed});
    if !allowed {
        resp["status"] = json!({"code": 403, "message": message, "status": "Failure"});
    }
    if !warnings.is_empty() {
        resp["warnings"] = json!(warnings);
    }
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": resp})
}

fn json_response(v: Value) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}

enum Mode {
    Validate,
    Mutate,
}

/// Decides one request off the async runtime, within the deadline.
async fn handle(app: Arc<App>, body: Bytes, mode: Mode) -> Response {
    let start = Instant::now();
    let review: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            Metrics::inc(&app.metrics.errors);
            return (
                StatusCode::BAD_REQUEST,
                format!("invalid AdmissionReview: {e}"),
            )
                .into_response();
        }
    };
    let uid = review
        .pointer("/request/uid")
        .cloned()
        .unwrap_or(Value::Null);
    let loaded = current(&app);
    let fail_open = loaded.fail_open;
    let app2 = app.clone();
    let review_in = review.clone();
    let work = async move {
        let review = review_in;
        let ns = review_ns(&review);
        let labels = loaded
            .namespace_labels
            .get(&ns)
            .cloned()
            .unwrap_or_default();
        let input = match input_from_review(&review, labels, None) {
            Ok(i) => i,
            Err(e) => return Ok(Err(e)),
        };
        // verifyImages: gather evidence for the images the policies cover (bounded by the
        // request deadline around this whole block), then decide off the async runtime.
        let requests = loaded.set.image_requests(&input);
        let evidence = match (&app2.images, requests.is_empty()) {
            (_, true) | (None, _) => Default::default(),
            (Some(images), false) => {
                let ev = match &images.source {
                    Source::Layout(l) => {
                        provenance_policy::gather::gather(l.clone(), &requests, 8).await
                    }
                    Source::Registry(r) => {
                        provenance_policy::gather::gather(r.clone(), &requests, 8).await
                    }
                };
                for e in ev.values() {
                    if e.error.is_some() {
                        Metrics::inc(&app2.metrics.registry_errors);
                    }
                }
                ev
            }
        };
        let verifier = app2.images.as_ref().map(|i| i.verifier.clone());
        tokio::task::spawn_blocking(move || {
            let now = now();
            let env = Env::at(now);
            match &verifier {
                Some(v) => {
                    let cx = provenance_policy::verify_images::VerifyImagesContext {
                        evidence: &evidence,
                        verifier: v,
                        now,
                    };
                    Ok(loaded.set.decide_with(&input, &env, Some(&cx)))
                }
                None => Ok(loaded.set.decide(&input, &env)),
            }
        })
        .await
        .map(|r: Result<_, provenance_policy::Error>| r)
    };
    let outcome = tokio::time::timeout(app.deadline, work).await;
    let elapsed = start.elapsed();
    app.metrics.latency.observe(elapsed.as_secs_f64());
    let (kind, name, ns) = (
        review
            .pointer("/request/kind/kind")
            .cloned()
            .unwrap_or(Value::Null),
        review
            .pointer("/request/name")
            .cloned()
            .unwrap_or(Value::Null),
        review
            .pointer("/request/namespace")
            .cloned()
            .unwrap_or(Value::Null),
    );
    let decision = match outcome {
        Ok(Ok(Ok(d))) => d,
        Ok(Ok(Err(e))) => {
            Metrics::inc(&app.metrics.errors);
            log(
                json!({"level": "warn", "uid": uid, "msg": "invalid request", "error": e.to_string(), "code": e.code()}),
            );
            return (StatusCode::BAD_REQUEST, e.to_string()).into_response();
        }
        Ok(Err(join)) => {
            Metrics::inc(&app.metrics.errors);
            log(
                json!({"level": "error", "uid": uid, "msg": "evaluation failed", "error": join.to_string()}),
            );
            return json_response(review_response(
                &uid,
                false,
                "provenance: evaluation failed; denied (fail closed)",
                vec![],
            ));
        }
        Err(_) => {
            Metrics::inc(&app.metrics.deadline_exceeded);
            let msg = format!(
                "provenance: deadline of {} ms exceeded",
                app.deadline.as_millis()
            );
            log(json!({"level": "warn", "uid": uid, "msg": msg, "fail_open": fail_open}));
            if fail_open {
                Metrics::inc(&app.metrics.allowed);
                return json_response(review_response(
                    &uid,
                    true,
                    "",
                    vec![format!(
                        "{msg}; allowed because every policy has failurePolicy Ignore"
                    )],
                ));
            }
            Metrics::inc(&app.metrics.errors);
            return json_response(review_response(
                &uid,
                false,
                &format!("{msg}; denied (fail closed)"),
                vec![],
            ));
        }
    };
    match mode {
        Mode::Validate => {
            Metrics::inc(if decision.allowed {
                &app.metrics.allowed
            } else {
                &app.metrics.denied
            });
            log(json!({
                "level": "info", "uid": uid, "path": "/validate", "kind": kind, "namespace": ns, "name": name,
                "allowed": decision.allowed, "warnings": decision.warnings.len(),
                "results": decision.results.len(), "duration_us": elapsed.as_micros() as u64,
            }));
            json_response(review_response(
                &uid,
                decision.allowed,
                &decision.message,
                decision.warnings,
            ))
        }
        Mode::Mutate => {
            // Mutation never blocks: /validate decides. It only pins verified images.
            let mut out = review_response(&uid, true, "", vec![]);
            if !decision.patches.is_empty() {
                Metrics::inc(&app.metrics.patched);
                let patch = Value::Array(decision.patches.clone()).to_string();
                out["response"]["patchType"] = json!("JSONPatch");
                out["response"]["patch"] =
                    json!(base64::engine::general_purpose::STANDARD.encode(patch));
            }
            log(json!({
                "level": "info", "uid": uid, "path": "/mutate", "kind": kind, "namespace": ns, "name": name,
                "patches": decision.patches.len(), "duration_us": elapsed.as_micros() as u64,
            }));
            json_response(out)
        }
    }
}

async fn reload_loop(
    app: Arc<App>,
    args: Arc<Args>,
    tls: Option<axum_server::tls_rustls::RustlsConfig>,
) {
    let cert_stamp = |a: &Args| {
        let files: Vec<PathBuf> = a.cert.iter().chain(a.key.iter()).cloned().collect();
        policies::stamp(&files)
    };
    let mut last_cert = cert_stamp(&args);
    loop {
        tokio::time::sleep(Duration::from_secs(args.reload_seconds.max(1))).await;
        let mut files = policies::files(&args.policies);
        if let Some(ns) = &args.namespace_labels {
            files.push(ns.clone());
        }
        let changed = policies::stamp(&files) != current(&app).stamp;
        if changed {
            let a = args.clone();
            match tokio::task::spawn_blocking(move || {
                policies::load(&a.policies, a.namespace_labels.as_deref())
            })
            .await
            {
                Ok(Ok(new)) => {
                    let n = new.set.policies().len();
                    if let Ok(mut g) = app.loaded.write() {
                        *g = Arc::new(new);
                    }
                    Metrics::inc(&app.metrics.reloads_ok);
                    log(json!({"level": "info", "msg": "policies reloaded", "policies": n}));
                }
                Ok(Err(e)) => {
                    Metrics::inc(&app.metrics.reloads_failed);
                    // Remember the broken stamp so the error is logged once per change.
                    if let Ok(mut g) = app.loaded.write() {
                        let old = g.clone();
                        *g = Arc::new(Loaded {
                            set: old.set.clone(),
                            fail_open: old.fail_open,
                            stamp: policies::stamp(&files),
                            namespace_labels: old.namespace_labels.clone(),
                        });
                    }
                    log(
                        json!({"level": "error", "msg": "policy reload failed; keeping the policies in force", "error": e}),
                    );
                }
                Err(e) => log(
                    json!({"level": "error", "msg": "policy reload panicked", "error": e.to_string()}),
                ),
            }
        }
        if let (Some(tls), Some(cert), Some(key)) = (&tls, &args.cert, &args.key) {
            let s = cert_stamp(&args);
            if s != last_cert {
                match tls.reload_from_pem_file(cert, key).await {
                    Ok(()) => log(json!({"level": "info", "msg": "certificate reloaded"})),
                    Err(e) => log(
                        json!({"level": "error", "msg": "certificate reload failed", "error": e.to_string()}),
                    ),
                }
                last_cert = s;
            }
        }
    }
}

fn router(app: Arc<App>) -> Router {
    Router::new()
        .route(
            "/validate",
            post(|State(app): State<Arc<App>>, body: Bytes| handle(app, body, Mode::Validate)),
        )
        .route(
            "/mutate",
            post(|State(app): State<Arc<App>>, body: Bytes| handle(app, body, Mode::Mutate)),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|State(app): State<Arc<App>>| async move {
                if app.ready.load(Ordering::Relaxed) {
                    (StatusCode::OK, "ready")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "policies not loaded")
                }
            }),
        )
        .route(
            "/metrics",
            get(|State(app): State<Arc<App>>| async move {
                let n = current(&app).set.policies().len();
                (
                    [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                    app.metrics.render(n),
                )
            }),
        )
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(app)
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Arc::new(Args::parse());
    let loaded = match policies::load(&args.policies, args.namespace_labels.as_deref()) {
        Ok(l) => l,
        Err(e) => {
            log(json!({"level": "error", "msg": "cannot load policies", "error": e}));
            return std::process::ExitCode::FAILURE;
        }
    };
    log(
        json!({"level": "info", "msg": "policies loaded", "policies": loaded.set.policies().len(), "listen": args.listen.to_string()}),
    );
    let images = match images_from(&args) {
        Ok(i) => i,
        Err(e) => {
            log(json!({"level": "error", "msg": "cannot set up image verification", "error": e}));
            return std::process::ExitCode::FAILURE;
        }
    };
    let app = Arc::new(App {
        images,
        loaded: RwLock::new(Arc::new(loaded)),
        metrics: Metrics::default(),
        deadline: Duration::from_millis(args.deadline_ms),
        ready: AtomicBool::new(true),
    });
    let handle = axum_server::Handle::new();
    {
        let h = handle.clone();
        tokio::spawn(async move {
            let _ = tokio::signal::ctrl_c().await;
            h.graceful_shutdown(Some(Duration::from_secs(10)));
        });
        #[cfg(unix)]
        {
            let handle = handle.clone();
            tokio::spawn(async move {
                if let Ok(mut term) =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                {
                    term.recv().await;
                    handle.graceful_shutdown(Some(Duration::from_secs(10)));
                }
            });
        }
    }
    let service = router(app.clone()).into_make_service();
    let result = if args.dangerous_plain_http {
        tokio::spawn(reload_loop(app.clone(), args.clone(), None));
        axum_server::bind(args.listen)
            .handle(handle)
            .serve(service)
            .await
    } else {
        let (Some(cert), Some(key)) = (&args.cert, &args.key) else {
            log(json!({"level": "error", "msg": "--cert and --key are required"}));
            return std::process::ExitCode::FAILURE;
        };
        let tls = match axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key).await {
            Ok(t) => t,
            Err(e) => {
                log(
                    json!({"level": "error", "msg": "cannot load the TLS certificate", "error": e.to_string()}),
                );
                return std::process::ExitCode::FAILURE;
            }
        };
        tokio::spawn(reload_loop(app.clone(), args.clone(), Some(tls.clone())));
        axum_server::bind_rustls(args.listen, tls)
            .handle(handle)
            .serve(service)
            .await
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            log(json!({"level": "error", "msg": "server failed", "error": e.to_string()}));
            std::process::ExitCode::FAILURE
        }
    }
}
