//! `provenance-kube-webhook`: Kyverno policies as a kube-rs admission webhook, in one screen.
//! `POST /validate` and `POST /mutate` take kube's `AdmissionReview<DynamicObject>` and answer
//! with one; what cannot be decided within the deadline is denied, with the reason.
//! `configMap` and `apiCall` context entries read the cluster (see `cluster.rs`).
#![forbid(unsafe_code)]

mod cluster;
mod facts;
mod setup;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, Json, State, rejection::JsonRejection};
use axum::{Router, routing::post};
use axum_server::tls_rustls::RustlsConfig;
use kube::core::{DynamicObject, admission::AdmissionResponse, admission::AdmissionReview};
use provenance_policy::admission::review::{MAX_REVIEW_BYTES, deadline_exceeded, gather_online};
use provenance_policy::kyverno::verify_images::VerifyImagesContext;
use provenance_policy::lang::jmespath::Env;
use provenance_policy::{Phase, PolicySet, Review, core::verify::Verifier};

/// What every request reads: loaded once, shared.
struct App {
    policies: PolicySet,
    facts: facts::Facts,
    verifier: Verifier,
    source: Arc<setup::Source>,
    /// ConfigMaps and API server GETs for `context` entries (none with `--no-cluster`).
    cluster: Option<Arc<cluster::Live>>,
    /// Evaluations running at once: each holds a blocking-pool thread and up to a request's
    /// budget of API answers in memory; requests beyond it wait (and meet their deadline).
    evaluations: Arc<tokio::sync::Semaphore>,
    deadline: Duration,
}
type Reply = Json<AdmissionReview<DynamicObject>>;

#[tokio::main]
async fn main() -> Result<(), setup::Fail> {
    let a: setup::Args = clap::Parser::parse();
    let tls = RustlsConfig::from_pem_file(&a.cert, &a.key).await;
    let tls = tls.map_err(|e| format!("--cert / --key: {e}"))?;
    let policies = setup::policies(&a.policies)?;
    let client = setup::client(a.facts.no_cluster).await?;
    let cluster = match &client {
        Some(c) => Some(Arc::new(cluster::Live::start(c.clone(), &a.cluster).await?)),
        None => None,
    };
    let app = Arc::new(App {
        policies,
        facts: facts::Facts::start(&a.facts, client).await?,
        cluster,
        evaluations: Arc::new(tokio::sync::Semaphore::new(
            2 * std::thread::available_parallelism().map_or(2, |n| n.get()),
        )),
        verifier: setup::verifier(a.trust_root.as_deref())?,
        source: Arc::new(setup::open_source(&a)?),
        deadline: Duration::from_millis(a.deadline_ms),
    });
    let router = Router::new()
        .route("/validate", post(|s, b| answer(s, Phase::Validate, b)))
        .route("/mutate", post(|s, b| answer(s, Phase::Mutate, b)))
        .layer(DefaultBodyLimit::max(MAX_REVIEW_BYTES))
        .with_state(app);
    let server = axum_server::bind_rustls(a.listen, tls).serve(router.into_make_service());
    Ok(server.await.map_err(|e| format!("{}: {e}", a.listen))?)
}

/// Decides one AdmissionReview within the deadline; anything else is a denial with a reason.
async fn answer(
    State(app): State<Arc<App>>,
    phase: Phase,
    body: Result<Json<AdmissionReview<DynamicObject>>, JsonRejection>,
) -> Reply {
    let review = match body {
        Ok(Json(review)) => review,
        Err(e) => return deny("", format!("unreadable AdmissionReview: {}", e.body_text())),
    };
    let Some(req) = review.request.as_ref() else {
        return deny("", "AdmissionReview without request".into());
    };
    // Namespace labels and the requester's roles, from the cluster caches.
    let (uid, facts) = (req.uid.clone(), app.facts.for_request(req));
    let review = match Review::from_kube(&review, &facts) {
        Ok(r) => r,
        Err(e) => return deny(&uid, format!("[{}] {e}", e.code())),
    };
    // Gathering evidence gets most of the deadline (past it, the library denies with
    // `policy.deadline_exceeded`); cluster look-ups must end by 90% of it, so that a slow API
    // server is a rule error with its reason; verifying and answering fit in the rest.
    let (a, gather, now) = (app.clone(), app.deadline.mul_f64(0.8), setup::now());
    let lookups_end = Instant::now() + app.deadline.mul_f64(0.9);
    let work = tokio::spawn(async move {
        let Some(evidence) = gather_online(&a.policies, &review, a.source.clone(), gather).await
        else {
            return Ok(deadline_exceeded(&review, phase, gather));
        };
        let mut env = Env::at(now);
        if let Some(live) = &a.cluster {
            env = env.with_cluster(Arc::new(live.for_request(lookups_end)));
        }
        // The evaluation blocks on cluster look-ups: on the blocking pool, never on a worker.
        let Ok(permit) = a.evaluations.clone().acquire_owned().await else {
            return Ok(deadline_exceeded(&review, phase, gather));
        };
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let cx = VerifyImagesContext::new(&evidence, &a.verifier, now);
            a.policies.respond(&review, phase, Some(&cx), &env)
        })
        .await
    });
    // Past the deadline the work is stopped where it waits (gathering, or for a permit); an
    // evaluation already running ends by itself (its look-ups end before the deadline).
    let abort = work.abort_handle();
    let outcome = tokio::time::timeout(app.deadline, work).await;
    if outcome.is_err() {
        abort.abort();
    }
    match outcome {
        Ok(Ok(Ok(answer))) => match answer.to_kube() {
            Ok(response) => Json(response.into_review()),
            Err(e) => deny(&uid, format!("[{}] {e}", e.code())),
        },
        Ok(Ok(Err(e)) | Err(e)) => deny(&uid, format!("evaluation failed: {e}")),
        Err(_) => deny(&uid, format!("deadline of {:?} passed", app.deadline)),
    }
}

/// A denial that says why (`uid` empty when the request could not be read).
fn deny(uid: &str, why: String) -> Reply {
    let mut r = AdmissionResponse::invalid(format!("provenance: {why}; denied (fail closed)"));
    r.uid = uid.to_owned();
    Json(r.into_review())
}
