//! `provenance-webhook`: a Kubernetes admission webhook on `provenance-policy`.
//!
//! - `POST /validate`: AdmissionReview v1 in, AdmissionReview out. Enforced failures deny
//!   with Kyverno's message; Audit results come back as admission warnings.
//! - `POST /mutate`: `verifyImages` digest pinning as a JSONPatch (`mutateDigest`).
//! - `POST /preverify`: decide a workload (or a list of images) ahead of its admission, so
//!   its evidence and verified signatures are cached when the API server asks; called by a CD
//!   pipeline on push. Recently used evidence is also refreshed ahead of its expiry.
//! - `GET /healthz` (process alive), `/readyz` (policies and trust root loaded), `/metrics`
//!   (Prometheus).
//!
//! Policies (files or folders) are reloaded when they change and have held still for a reload
//! period, without dropping requests: a reload builds a complete new policy set and swaps it
//! in. A file that cannot be loaded completely (broken, empty, a kind this engine cannot
//! enforce) keeps the old set and makes `/readyz` fail until it is fixed. The `--trust-root`
//! file is reloaded the same way (a rotated Fulcio CA or Rekor key takes effect without a
//! restart; checks made under the old root are never reused), and so is the serving
//! certificate. `--cluster-resources` (files of resources `configMap` and `apiCall` context
//! entries read) is reloaded the same way: a snapshot that cannot be loaded keeps the last
//! good one in force and fails `/readyz`.
//! Every request has a deadline below the API server's webhook timeout; when it is hit, the
//! request is denied unless every policy says `failurePolicy: Ignore` (fail closed).
#![forbid(unsafe_code)]

mod cluster;
mod config;
mod evidence;
mod metrics;
mod policies;

/// mimalloc: glibc's allocator spent about a third of the webhook's CPU under load
/// (allocations on one worker thread freed on another).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use clap::Parser;
use provenance_core::UnixTime;
use provenance_policy::admission::review::{Phase, RequestFacts, Review};
use provenance_policy::lang::jmespath::Env;
use serde_json::{Value, json};

use config::{Args, Settings};
use evidence::{Evidence, Source};
use metrics::Metrics;
use policies::Loaded;

/// Where `verifyImages` evidence comes from, and the verifier that checks it.
struct Images {
    evidence: Arc<Evidence>,
    /// The verifier of the trust root in force. Replaced whole when `--trust-root` changes on
    /// disk; a request keeps the verifier it started with.
    verifier: RwLock<Arc<provenance_core::verify::Verifier>>,
    /// Checks reused across requests (bound to digest, rule and trust root fingerprint, so a
    /// new trust root never reuses a check made under the old one).
    cache: Arc<provenance_policy::kyverno::verify_images::VerifyImagesCache>,
    /// The `--trust-root` file's stamp taken before the verifier in force read it (a change
    /// made while it was read is then still a change).
    root_stamp: Vec<policies::FileStamp>,
}

impl Images {
    fn verifier(&self) -> Arc<provenance_core::verify::Verifier> {
        match self.verifier.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

/// The verifier for the trust root at `path` (the embedded public-good root when `None`),
/// with a memo of `memo_entries` verified signatures.
fn verifier_from(
    path: Option<&std::path::Path>,
    memo_entries: usize,
) -> Result<provenance_core::verify::Verifier, String> {
    let root_bytes = match path {
        Some(p) => policies::read_regular_file(p).map_err(|e| format!("--trust-root {e}"))?,
        None => provenance_core::verify::PUBLIC_GOOD_TRUSTED_ROOT.to_vec(),
    };
    let root = provenance_core::TrustRoot::from_trusted_root_json(&root_bytes)
        .map_err(|e| format!("trust root: {e} [{}]", e.code()))?;
    Ok(provenance_core::verify::Verifier::new(&root)
        .map_err(|e| format!("trust root: {e} [{}]", e.code()))?
        .with_memo(memo_entries, 3600))
}

fn images_from(s: &Settings) -> Result<Option<Images>, String> {
    let source = if let Some(dir) = &s.registry_layout {
        Source::Layout(Arc::new(provenance_oci::LayoutSource::open(dir).map_err(
            |e| format!("--registry-layout {}: {e} [{}]", dir.display(), e.code()),
        )?))
    } else if s.online {
        let docker_config = match &s.docker_config {
            Some(p) => Some(
                provenance_oci::DockerConfig::from_file(p)
                    .map_err(|e| format!("--docker-config {}: {e} [{}]", p.display(), e.code()))?,
            ),
            None => provenance_oci::DockerConfig::from_environment()
                .map_err(|e| format!("Docker config: {e} [{}]", e.code()))?,
        };
        let mut config = provenance_oci::RegistryConfig {
            docker_config,
            ..provenance_oci::RegistryConfig::default()
        };
        for r in &s.allow_http {
            config = config.allow_http(r.clone());
        }
        for (registry, endpoint) in &s.registry_endpoints {
            config = config.with_endpoint(registry.clone(), endpoint.clone());
        }
        for (registry, file) in &s.registry_cas {
            let pem = policies::read_regular_file(file)
                .and_then(|b| String::from_utf8(b).map_err(|_| "not UTF-8 text".to_owned()))
                .map_err(|e| format!("--registry-ca {registry}={}: {e}", file.display()))?;
            config = config.with_ca_pem(registry.clone(), pem);
        }
        Source::Registry(Arc::new(
            provenance_oci::RegistryClient::new(config)
                .map_err(|e| format!("registry client: {e} [{}]", e.code()))?,
        ))
    } else {
        return Ok(None);
    };
    let root_stamp = policies::stamp(s.trust_root.as_slice());
    let verifier = verifier_from(s.trust_root.as_deref(), s.cache_size)?;
    Ok(Some(Images {
        root_stamp,
        evidence: Arc::new(Evidence::new(
            source,
            s.cache_size,
            Duration::from_secs(s.evidence_ttl_seconds),
        )),
        verifier: RwLock::new(Arc::new(verifier)),
        cache: Arc::new(
            provenance_policy::kyverno::verify_images::VerifyImagesCache::new(8192, 300),
        ),
    }))
}

struct App {
    images: Option<Images>,
    loaded: RwLock<Arc<Loaded>>,
    metrics: Metrics,
    /// The configured deadline (`--deadline-ms`): the answer is sent before it.
    deadline: Duration,
    /// The part of the deadline given to gathering and evaluation; the rest is kept for
    /// answering (a tenth of the deadline, at most 250 ms).
    budget: Duration,
    max_body: usize,
    ready: AtomicBool,
    /// False while the `--trust-root` file on disk cannot be loaded (the last good trust root
    /// stays in force); `/readyz` fails meanwhile.
    trust_root_ok: AtomicBool,
    /// The cluster data in force, with `--cluster-resources` (replaced whole when the files
    /// change; a request keeps the snapshot it started with).
    cluster: Option<RwLock<Arc<cluster::Loaded>>>,
    /// False while the `--cluster-resources` files cannot be loaded (the last good snapshot
    /// stays in force); `/readyz` fails meanwhile.
    cluster_ok: AtomicBool,
    /// Evaluations running at once. An evaluation off the async runtime outlives a request
    /// that hit its deadline (blocking work cannot be cancelled); the permits bound how many
    /// run at once, so a flood of expensive requests queues (and meets its deadline) instead of
    /// taking every core and the memory.
    evaluations: Arc<tokio::sync::Semaphore>,
}

fn now() -> UnixTime {
    UnixTime(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or_default(),
    )
}

/// Writes one JSON log line to stderr with a single `write` (stderr is unbuffered: formatting
/// straight into it costs one system call per fragment of the JSON).
fn log(fields: Value) {
    let mut v = fields;
    v["ts"] = json!(now().to_string());
    write_log(&v);
}

/// Writes `line` as one JSON log line to stderr with a single `write`.
fn write_log(line: &impl serde::Serialize) {
    use std::io::Write;
    let mut bytes = Vec::with_capacity(256);
    if serde_json::to_writer(&mut bytes, line).is_ok() {
        bytes.push(b'\n');
        let _ = std::io::stderr().lock().write_all(&bytes);
    }
}

/// The log line of every answered admission, written without building a JSON document
/// first (it is written once per request).
#[derive(serde::Serialize)]
struct AdmissionLog<'a> {
    level: &'static str,
    uid: &'a Value,
    path: &'static str,
    kind: &'a Value,
    namespace: &'a Value,
    name: &'a Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    allowed: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    warnings: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    results: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patches: Option<usize>,
    duration_us: u64,
    ts: String,
}

fn current(app: &App) -> Arc<Loaded> {
    match app.loaded.read() {
        Ok(g) => g.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    }
}

/// The cluster data in force (`None` without `--cluster-resources`).
fn current_cluster(app: &App) -> Option<Arc<cluster::Loaded>> {
    app.cluster.as_ref().map(|lock| match lock.read() {
        Ok(g) => g.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    })
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

/// A request the webhook cannot decide: an HTTP error with a JSON body
/// `{"code": "webhook....", "message": "..."}` (the API server then applies the webhook
/// configuration's `failurePolicy`).
fn reject(app: &App, status: StatusCode, code: &str, message: String) -> Response {
    Metrics::inc(&app.metrics.errors);
    log(
        json!({"level": "warn", "msg": "request rejected", "status": status.as_u16(), "code": code, "error": message}),
    );
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        json!({"code": code, "message": message}).to_string(),
    )
        .into_response()
}

/// Decides one request: parse and check the AdmissionReview, gather `verifyImages` evidence,
/// evaluate; all of it within the deadline.
async fn handle(app: Arc<App>, body: Result<Bytes, BytesRejection>, mode: Phase) -> Response {
    let start = Instant::now();
    let body = match body {
        Ok(b) => b,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return reject(
                &app,
                StatusCode::PAYLOAD_TOO_LARGE,
                "webhook.body.too_large",
                format!(
                    "AdmissionReview larger than {} bytes (--max-body-bytes)",
                    app.max_body
                ),
            );
        }
        Err(e) => {
            return reject(
                &app,
                StatusCode::BAD_REQUEST,
                "webhook.body.unreadable",
                format!("cannot read the request body: {}", e.body_text()),
            );
        }
    };
    let review: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return reject(
                &app,
                StatusCode::BAD_REQUEST,
                "webhook.body.malformed",
                format!("invalid AdmissionReview: {e}"),
            );
        }
    };
    let api_version = review.get("apiVersion").and_then(Value::as_str);
    if api_version != Some("admission.k8s.io/v1") {
        return reject(
            &app,
            StatusCode::BAD_REQUEST,
            "webhook.review.unsupported_version",
            format!(
                "unsupported apiVersion {}: this webhook speaks admission.k8s.io/v1 (admissionReviewVersions: [v1])",
                api_version.map_or_else(|| "(missing)".to_owned(), |v| format!("{v:?}"))
            ),
        );
    }
    let kind = review.get("kind").and_then(Value::as_str);
    if kind != Some("AdmissionReview") {
        return reject(
            &app,
            StatusCode::BAD_REQUEST,
            "webhook.review.unsupported_kind",
            format!(
                "unsupported kind {}: expected AdmissionReview",
                kind.map_or_else(|| "(missing)".to_owned(), |v| format!("{v:?}"))
            ),
        );
    }
    let field = |p: &str| review.pointer(p).cloned().unwrap_or(Value::Null);
    let (uid, kind, name, ns) = (
        field("/request/uid"),
        field("/request/kind/kind"),
        field("/request/name"),
        field("/request/namespace"),
    );
    let fail_open = current(&app).fail_open;
    let outcome = decide(&app, review, body.len(), mode).await;
    let elapsed = start.elapsed();
    app.metrics.latency.observe(elapsed.as_secs_f64());
    let answer = match outcome {
        Outcome::Answer(a) => a,
        Outcome::Invalid(e) => {
            return reject(
                &app,
                StatusCode::BAD_REQUEST,
                "webhook.review.invalid",
                format!("[{}] {e}", e.code()),
            );
        }
        Outcome::Failed(e) => {
            Metrics::inc(&app.metrics.errors);
            log(json!({"level": "error", "uid": uid, "msg": "evaluation failed", "error": e}));
            return json_response(review_response(
                &uid,
                false,
                "provenance: evaluation failed; denied (fail closed)",
                vec![],
            ));
        }
        Outcome::Deadline => {
            Metrics::inc(&app.metrics.deadline_exceeded);
            let msg = deadline_message(&app);
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
                &format!("{msg}; denied (fail closed: failurePolicy Fail)"),
                vec![],
            ));
        }
    };
    let decision = &answer.decision;
    let mut line = AdmissionLog {
        level: "info",
        uid: &uid,
        path: "/validate",
        kind: &kind,
        namespace: &ns,
        name: &name,
        allowed: None,
        warnings: None,
        results: None,
        patches: None,
        duration_us: elapsed.as_micros() as u64,
        ts: now().to_string(),
    };
    match mode {
        Phase::Validate => {
            Metrics::inc(if decision.allowed {
                &app.metrics.allowed
            } else {
                &app.metrics.denied
            });
            line.allowed = Some(decision.allowed);
            line.warnings = Some(decision.warnings.len());
            line.results = Some(decision.results.len());
        }
        Phase::Mutate => {
            // Mutation never blocks: /validate decides. It only pins verified images.
            if !decision.patches.is_empty() {
                Metrics::inc(&app.metrics.patched);
            }
            line.path = "/mutate";
            line.patches = Some(decision.patches.len());
        }
    }
    write_log(&line);
    json_response(answer.review)
}

fn deadline_message(app: &App) -> String {
    format!(
        "provenance: deadline of {} ms exceeded before evidence gathering and evaluation finished",
        app.deadline.as_millis()
    )
}

/// How deciding one AdmissionReview ended.
enum Outcome {
    /// The policies' answer.
    Answer(provenance_policy::admission::review::Answer),
    /// The request cannot be decided (malformed AdmissionRequest).
    Invalid(provenance_policy::Error),
    /// Evaluation failed unexpectedly (a panic in the evaluation task).
    Failed(String),
    /// The deadline was hit before the answer.
    Deadline,
}

/// The largest AdmissionReview evaluated on a runtime thread (see [`decide`]): the Pods and
/// Deployments of real clusters are a few KiB and evaluate in tens of microseconds; the worst
/// requests found under 64 KiB (hundreds of images, thousands of CEL regex matches) held a
/// runtime thread for tens of milliseconds, and a flood of them delayed other requests no more
/// than a flood of larger ones on the blocking pool (docs/adversarial.md, "Caches").
const INLINE_EVALUATION_MAX_BYTES: usize = 64 * 1024;

/// Decides one AdmissionReview (already checked to be `admission.k8s.io/v1`): gather
/// `verifyImages` evidence for the images the policies cover, then evaluate; all of it within
/// the request budget. Caches (evidence, verified signatures, verified rules) are read and
/// filled on the way.
///
/// A request of at most [`INLINE_EVALUATION_MAX_BYTES`] (`size`: the body's length) is
/// evaluated on the runtime thread that read it: moving a warm admission's few tens of
/// microseconds to the blocking pool cost more in thread wake-ups than the evaluation itself.
/// Larger requests, whose patterns and expressions can take milliseconds, go to the blocking
/// pool so that they never hold up the connections of a runtime thread.
async fn decide(app: &Arc<App>, review: Value, size: usize, mode: Phase) -> Outcome {
    let loaded = current(app);
    let cluster = current_cluster(app);
    let app2 = app.clone();
    let work = async move {
        let ns = review
            .pointer("/request/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default();
        // A namespace missing from --namespace-labels (created after the file was written)
        // has unknown labels, not none: namespaceSelector rules then fail closed.
        // The requester's roles are not looked up here (no RBAC informer): rules matching on
        // `roles` / `clusterRoles` are errors, never silent non-matches.
        let mut facts = RequestFacts::new();
        if let Some(labels) = loaded.namespace_labels.get(ns) {
            facts = facts.namespace_labels(labels.clone());
        }
        // The review is moved into the request model: parsed once, never copied.
        let parsed = match Review::from_value(review, &facts) {
            Ok(r) => r,
            Err(e) => return Ok(Err(e)),
        };
        // verifyImages: gather evidence for the images the policies cover (bounded by the
        // request deadline around this whole block), then decide.
        let requests = loaded.set.image_requests_for(&parsed);
        let evidence = match (&app2.images, requests.is_empty()) {
            (_, true) | (None, _) => Default::default(),
            (Some(images), false) => {
                let t = Instant::now();
                let ev = images.evidence.gather(&requests).await;
                app2.metrics.gather.observe(t.elapsed().as_secs_f64());
                ev
            }
        };
        let verifier = app2
            .images
            .as_ref()
            .map(|i| (i.verifier(), i.cache.clone()));
        let app3 = app2.clone();
        let Ok(permit) = app2.evaluations.clone().acquire_owned().await else {
            return Ok(Err(provenance_policy::Error::InvalidPolicy {
                policy: String::new(),
                path: String::new(),
                reason: "the webhook is shutting down".into(),
            }));
        };
        let evaluate = move || {
            let _permit = permit;
            let t = Instant::now();
            let now = now();
            let mut env = Env::at(now);
            if let Some(c) = &cluster {
                env = env.with_cluster(c.snapshot.clone());
            }
            let d = match &verifier {
                Some((v, cache)) => {
                    let cx = provenance_policy::kyverno::verify_images::VerifyImagesContext::new(
                        &evidence, v, now,
                    )
                    .with_cache(cache.as_ref());
                    loaded.set.respond(&parsed, mode, Some(&cx), &env)
                }
                None => loaded.set.respond(&parsed, mode, None, &env),
            };
            app3.metrics.verification.observe(t.elapsed().as_secs_f64());
            Ok(d)
        };
        if size <= INLINE_EVALUATION_MAX_BYTES {
            Ok(evaluate())
        } else {
            tokio::task::spawn_blocking(evaluate).await
        }
    };
    let started = Instant::now();
    match tokio::time::timeout(app.budget, work).await {
        // An evaluation on the runtime thread cannot be interrupted by the timer: an answer
        // that came after the budget is treated as the timer would have treated it.
        Ok(_) if started.elapsed() > app.budget => Outcome::Deadline,
        Ok(Ok(Ok(a))) => Outcome::Answer(a),
        Ok(Ok(Err(e))) => Outcome::Invalid(e),
        Ok(Err(join)) => Outcome::Failed(join.to_string()),
        Err(_) => Outcome::Deadline,
    }
}

/// The largest `/preverify` request: a workload manifest or a list of images.
const MAX_PREVERIFY_IMAGES: usize = 64;

/// `POST /preverify`: decides a workload ahead of its admission, so that its evidence and
/// verified signatures are in the caches when the API server asks. The body is
/// `{"object": <Pod, Deployment, ... as it will be applied>}` or
/// `{"images": ["registry/repo:tag", ...], "namespace": "ml"}` (a Pod running those images).
/// The answer is what `/mutate` would decide (digests pinned) with every rule's result; it
/// admits nothing: the API server's own request is decided again, from the caches.
async fn preverify(app: Arc<App>, body: Result<Bytes, BytesRejection>) -> Response {
    let start = Instant::now();
    let body = match body {
        Ok(b) => b,
        Err(e) => {
            return reject(
                &app,
                e.status(),
                "webhook.preverify.unreadable",
                format!("cannot read the request body: {}", e.body_text()),
            );
        }
    };
    let object = match preverify_object(&body) {
        Ok(o) => o,
        Err(e) => {
            return reject(
                &app,
                StatusCode::BAD_REQUEST,
                "webhook.preverify.malformed",
                e,
            );
        }
    };
    let (kind, name, ns) = (
        object["kind"].clone(),
        object
            .pointer("/metadata/name")
            .cloned()
            .unwrap_or(Value::Null),
        object
            .pointer("/metadata/namespace")
            .cloned()
            .unwrap_or(Value::Null),
    );
    let (group, version) = match object["apiVersion"]
        .as_str()
        .unwrap_or("v1")
        .split_once('/')
    {
        Some((g, v)) => (g.to_owned(), v.to_owned()),
        None => (
            String::new(),
            object["apiVersion"].as_str().unwrap_or("v1").to_owned(),
        ),
    };
    let review = json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "preverify", "kind": {"group": group, "version": version, "kind": kind},
            "resource": {"group": group, "version": version, "resource": plural(kind.as_str().unwrap_or_default())},
            "operation": "CREATE", "namespace": ns, "name": name,
            "userInfo": {"username": "system:serviceaccount:provenance:preverify"},
            "object": object,
        }
    });
    // Pre-verification is cold by design (it fills the caches): always off the runtime.
    let outcome = decide(&app, review, usize::MAX, Phase::Mutate).await;
    Metrics::inc(&app.metrics.preverified);
    let elapsed = start.elapsed();
    let body = match outcome {
        Outcome::Answer(a) => {
            let results: Vec<Value> = a
                .decision
                .results
                .iter()
                .map(|r| {
                    let codes: Vec<&str> = r.reasons.iter().map(|x| x.code.as_str()).collect();
                    json!({"policy": r.policy, "rule": r.rule, "status": r.status.as_str(),
                           "message": r.message, "codes": codes})
                })
                .collect();
            let verified = !a.decision.results.iter().any(|r| {
                matches!(
                    r.status,
                    provenance_core::RuleStatus::Fail | provenance_core::RuleStatus::Error
                )
            });
            json!({"verified": verified, "patches": a.decision.patches.len(), "results": results})
        }
        Outcome::Invalid(e) => {
            return reject(
                &app,
                StatusCode::BAD_REQUEST,
                "webhook.preverify.invalid",
                format!("[{}] {e}", e.code()),
            );
        }
        Outcome::Failed(e) => {
            json!({"verified": false, "error": format!("evaluation failed: {e}")})
        }
        Outcome::Deadline => json!({"verified": false, "error": deadline_message(&app)}),
    };
    log(json!({
        "level": "info", "path": "/preverify", "kind": kind, "namespace": ns, "name": name,
        "verified": body["verified"], "duration_us": elapsed.as_micros() as u64,
    }));
    json_response(body)
}

/// The resource a `/preverify` body names: its `object`, or a Pod running its `images`.
fn preverify_object(body: &[u8]) -> Result<Value, String> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| format!("invalid /preverify body: {e}"))?;
    if let Some(object) = v.get("object") {
        if !object.is_object() || !object["kind"].is_string() {
            return Err("`object` must be a Kubernetes resource with a kind".to_owned());
        }
        return Ok(object.clone());
    }
    let Some(images) = v.get("images").and_then(Value::as_array) else {
        return Err("the body names neither `object` nor `images`".to_owned());
    };
    if images.is_empty() || images.len() > MAX_PREVERIFY_IMAGES {
        return Err(format!(
            "`images` must list 1 to {MAX_PREVERIFY_IMAGES} images"
        ));
    }
    let mut containers = Vec::new();
    for (i, image) in images.iter().enumerate() {
        let Some(image) = image.as_str().filter(|s| !s.is_empty()) else {
            return Err(format!("`images[{i}]` is not an image reference"));
        };
        containers.push(json!({"name": format!("c{i}"), "image": image}));
    }
    let ns = match v.get("namespace") {
        None => "default",
        Some(Value::String(s)) if !s.is_empty() => s.as_str(),
        Some(_) => return Err("`namespace` must be a namespace name".to_owned()),
    };
    Ok(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "preverify", "namespace": ns},
        "spec": {"containers": containers}}))
}

/// The resource name of a kind (`Deployment` -> `deployments`), as the API server sends it.
fn plural(kind: &str) -> String {
    let lower = kind.to_ascii_lowercase();
    if lower.ends_with('s') {
        format!("{lower}es")
    } else if let Some(stem) = lower.strip_suffix('y') {
        format!("{stem}ies")
    } else {
        format!("{lower}s")
    }
}

async fn reload_loop(
    app: Arc<App>,
    args: Arc<Settings>,
    tls: Option<axum_server::tls_rustls::RustlsConfig>,
) {
    let cert_stamp = |a: &Settings| {
        let files: Vec<PathBuf> = a.cert.iter().chain(a.key.iter()).cloned().collect();
        policies::stamp(&files)
    };
    let mut last_cert = cert_stamp(&args);
    // The trust root file, when there is one and images are verified: reloaded on change
    // under the same hold-still rule as the policies.
    let root_files: Vec<PathBuf> = match (&app.images, &args.trust_root) {
        (Some(_), Some(p)) => vec![p.clone()],
        _ => Vec::new(),
    };
    let mut root = policies::Watch::new(
        app.images
            .as_ref()
            .map(|i| i.root_stamp.clone())
            .unwrap_or_default(),
    );
    let mut policy_files = policies::Watch::new(current(&app).stamp.clone());
    // The cluster resources, when there are any.
    let mut cluster_files = current_cluster(&app).map(|c| policies::Watch::new(c.stamp.clone()));
    loop {
        tokio::time::sleep(Duration::from_secs(args.reload_seconds.max(1))).await;
        let mut files = policies::files(&args.policies);
        if let Some(ns) = &args.namespace_labels {
            files.push(ns.clone());
        }
        if policy_files.settled(policies::stamp(&files)) {
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
                    app.ready.store(true, Ordering::Relaxed);
                    Metrics::inc(&app.metrics.reloads_ok);
                    log(json!({"level": "info", "msg": "policies reloaded", "policies": n}));
                }
                Ok(Err(e)) => {
                    Metrics::inc(&app.metrics.reloads_failed);
                    // The policies on disk cannot all be enforced: not ready until they can
                    // (requests are still decided with the last complete set).
                    // (The watch remembers the broken stamp: the error is logged once per
                    // change.)
                    app.ready.store(false, Ordering::Relaxed);
                    log(
                        json!({"level": "error", "msg": "policy reload failed; keeping the policies in force", "error": e}),
                    );
                }
                Err(e) => {
                    app.ready.store(false, Ordering::Relaxed);
                    log(
                        json!({"level": "error", "msg": "policy reload panicked", "error": e.to_string()}),
                    )
                }
            }
        }
        if let Some(watch) = &mut cluster_files
            && watch.settled(policies::stamp(&cluster::files(&args.cluster_resources)))
        {
            reload_cluster(&app, &args).await;
        }
        if let (Some(images), false) = (&app.images, root_files.is_empty())
            && root.settled(policies::stamp(&root_files))
        {
            reload_trust_root(&app, images, &args).await;
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

/// Loads the `--cluster-resources` files anew and puts the snapshot in force. Files that
/// cannot be loaded leave the last good snapshot in force and fail `/readyz` until they are
/// fixed, as policies do.
async fn reload_cluster(app: &App, args: &Arc<Settings>) {
    let Some(lock) = &app.cluster else {
        return;
    };
    let a = args.clone();
    let loaded = tokio::task::spawn_blocking(move || cluster::load(&a.cluster_resources))
        .await
        .unwrap_or_else(|join| Err(format!("cluster resources reload panicked: {join}")));
    match loaded {
        Ok(new) => {
            let n = new.stamp.len();
            match lock.write() {
                Ok(mut g) => *g = Arc::new(new),
                Err(poisoned) => *poisoned.into_inner() = Arc::new(new),
            }
            app.cluster_ok.store(true, Ordering::Relaxed);
            log(json!({"level": "info", "msg": "cluster resources reloaded", "files": n}));
        }
        Err(e) => {
            app.cluster_ok.store(false, Ordering::Relaxed);
            log(
                json!({"level": "error", "msg": "cluster resources reload failed; keeping the snapshot in force", "error": e}),
            );
        }
    }
}

/// Loads the `--trust-root` file anew and puts its verifier in force. A file that cannot be
/// loaded leaves the last good trust root in force and fails `/readyz` until it is fixed:
/// denying every image because a file was half written would take the cluster down, and
/// readiness is how the failure shows. Checks cached under the old root are not reused (the
/// cache keys hold the trust root's fingerprint), and the new verifier starts with an empty
/// memo.
async fn reload_trust_root(app: &App, images: &Images, args: &Arc<Settings>) {
    let a = args.clone();
    let loaded =
        tokio::task::spawn_blocking(move || verifier_from(a.trust_root.as_deref(), a.cache_size))
            .await
            .unwrap_or_else(|join| Err(format!("trust root reload panicked: {join}")));
    match loaded {
        Ok(v) => {
            let fingerprint = v.trust_root_fingerprint().to_string();
            if let Ok(mut g) = images.verifier.write() {
                *g = Arc::new(v);
            }
            app.trust_root_ok.store(true, Ordering::Relaxed);
            Metrics::inc(&app.metrics.trust_root_reloads_ok);
            log(json!({"level": "info", "msg": "trust root reloaded", "fingerprint": fingerprint}));
        }
        Err(e) => {
            app.trust_root_ok.store(false, Ordering::Relaxed);
            Metrics::inc(&app.metrics.trust_root_reloads_failed);
            log(
                json!({"level": "error", "msg": "trust root reload failed; keeping the trust root in force", "error": e}),
            );
        }
    }
}

fn router(app: Arc<App>) -> Router {
    let max_body = app.max_body;
    Router::new()
        .route(
            "/validate",
            post(
                |State(app): State<Arc<App>>, body: Result<Bytes, BytesRejection>| {
                    handle(app, body, Phase::Validate)
                },
            ),
        )
        .route(
            "/mutate",
            post(
                |State(app): State<Arc<App>>, body: Result<Bytes, BytesRejection>| {
                    handle(app, body, Phase::Mutate)
                },
            ),
        )
        .route(
            "/preverify",
            post(
                |State(app): State<Arc<App>>, body: Result<Bytes, BytesRejection>| {
                    preverify(app, body)
                },
            ),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|State(app): State<Arc<App>>| async move {
                if !app.ready.load(Ordering::Relaxed) {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "policies on disk failed to load; the last complete set is in force",
                    )
                } else if !app.trust_root_ok.load(Ordering::Relaxed) {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "the trust root on disk failed to load; the last good one is in force",
                    )
                } else if !app.cluster_ok.load(Ordering::Relaxed) {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "the cluster resources on disk failed to load; the last good snapshot is in force",
                    )
                } else {
                    (StatusCode::OK, "ready")
                }
            }),
        )
        .route(
            "/metrics",
            get(|State(app): State<Arc<App>>| async move {
                let n = current(&app).set.policies().len();
                (
                    [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                    app.metrics
                        .render(n, app.images.as_ref().map(|i| i.evidence.as_ref())),
                )
            }),
        )
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(app)
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = match Settings::resolve(Args::parse()) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            log(json!({"level": "error", "msg": "invalid configuration", "error": e}));
            return std::process::ExitCode::FAILURE;
        }
    };
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
    let cluster = if args.cluster_resources.is_empty() {
        None
    } else {
        match cluster::load(&args.cluster_resources) {
            Ok(c) => {
                log(
                    json!({"level": "info", "msg": "cluster resources loaded", "files": c.stamp.len()}),
                );
                Some(RwLock::new(Arc::new(c)))
            }
            Err(e) => {
                log(json!({"level": "error", "msg": "cannot load cluster resources", "error": e}));
                return std::process::ExitCode::FAILURE;
            }
        }
    };
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
        budget: {
            let d = Duration::from_millis(args.deadline_ms);
            d - (d / 10).min(Duration::from_millis(250))
        },
        max_body: args.max_body_bytes,
        ready: AtomicBool::new(true),
        trust_root_ok: AtomicBool::new(true),
        cluster,
        cluster_ok: AtomicBool::new(true),
        evaluations: Arc::new(tokio::sync::Semaphore::new(
            2 * std::thread::available_parallelism().map_or(2, |n| n.get()),
        )),
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
