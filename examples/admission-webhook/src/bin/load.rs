//! `provenance-webhook-load`: a load generator for the admission webhook.
//!
//! Builds real AdmissionReviews (CREATE) from resource YAML files, then posts them over HTTPS
//! (HTTP/1.1 keep-alive, one connection per worker) for a fixed duration, either as fast as the
//! server answers (`--rate 0`) or at a fixed total rate (open loop: request `k` is due at
//! `k / rate`; when its connection is still busy at that time, its latency is measured from
//! when it was due, so a slow server cannot hide its queueing by slowing the client down;
//! when the connection was free, from when the worker's timer woke it, so the timer's own
//! lateness is not charged to the server). Prints throughput, decisions, and latency
//! percentiles. `--log FILE` also writes one JSON line per measured request (when it was
//! sent, how long the answer took, the decision and the denial message), so that a script
//! can split a run into phases (e.g. `scripts/webhook-faults.sh`).
#![forbid(unsafe_code)]

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use serde_json::json;

#[derive(Parser, Debug)]
#[command(
    name = "provenance-webhook-load",
    about = "Load generator for provenance-webhook"
)]
struct Args {
    /// Endpoint to post to. Repeatable: connection `i` posts to the `i mod n`-th URL (as a
    /// Service spreads connections over replicas).
    #[arg(long, default_value = "https://localhost:8443/validate")]
    url: Vec<String>,
    /// CA certificate (PEM) that signed the webhook's serving certificate.
    #[arg(long)]
    cacert: PathBuf,
    /// Resource YAML files (multi-document); every document whose kind is `--kind` becomes one
    /// AdmissionReview, and the reviews are sent round-robin. Repeatable.
    #[arg(long, required = true)]
    resources: Vec<PathBuf>,
    /// Which resources to send.
    #[arg(long, default_value = "Pod")]
    kind: String,
    /// Only resources whose name contains this.
    #[arg(long)]
    name_contains: Option<String>,
    /// Concurrent connections (one worker each).
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// Total requests per second; 0 sends as fast as answers come back.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Seconds to measure.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of warm-up (requests sent, not measured).
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Client threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Also write one JSON line per measured request to this file: `sent_ms` (Unix time in
    /// milliseconds when the request was sent), `latency_ms` (counted as for the percentiles),
    /// `service_ms` (from sending to the whole answer), `outcome` (`allowed`, `denied` or
    /// `failed`) and `message` (the denial's status message, or the failure).
    #[arg(long)]
    log: Option<PathBuf>,
}

fn reviews(args: &Args) -> Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::new();
    for f in &args.resources {
        let text = std::fs::read_to_string(f).map_err(|e| format!("{}: {e}", f.display()))?;
        let docs = provenance_policy::yaml::load_documents(&text, &f.display().to_string())
            .map_err(|e| format!("{}: {e}", f.display()))?;
        // `kind: List` documents contribute their items.
        let docs = docs.into_iter().flat_map(|d| match d["items"].as_array() {
            Some(items) if d["kind"] == "List" => items.clone(),
            _ => vec![d],
        });
        for d in docs {
            if d["kind"] != args.kind.as_str() {
                continue;
            }
            let name = d["metadata"]["name"].as_str().unwrap_or_default();
            if args
                .name_contains
                .as_deref()
                .is_some_and(|n| !name.contains(n))
            {
                continue;
            }
            let (group, version) = match d["apiVersion"].as_str().unwrap_or("v1").split_once('/') {
                Some((g, v)) => (g.to_owned(), v.to_owned()),
                None => (
                    String::new(),
                    d["apiVersion"].as_str().unwrap_or("v1").to_owned(),
                ),
            };
            let review = json!({
                "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                "request": {
                    "uid": format!("load-{}", out.len()),
                    "kind": {"group": group, "version": version, "kind": d["kind"]},
                    "resource": {"group": group, "version": version,
                        "resource": format!("{}s", args.kind.to_lowercase())},
                    "operation": "CREATE",
                    "namespace": d["metadata"]["namespace"].as_str().unwrap_or("default"),
                    "name": name,
                    "userInfo": {"username": "system:serviceaccount:ml:deployer",
                        "groups": ["system:serviceaccounts"]},
                    "object": d, "oldObject": null, "dryRun": false,
                }
            });
            out.push(review.to_string().into_bytes());
        }
    }
    if out.is_empty() {
        return Err(format!(
            "no {} resources in {:?}",
            args.kind, args.resources
        ));
    }
    Ok(out)
}

#[derive(Default)]
struct Tally {
    latencies_us: Vec<u64>,
    allowed: u64,
    denied: u64,
    failed: u64,
    /// Every answered request, warm-up included (for server-side CPU per request).
    sent: u64,
    first_error: Option<String>,
    /// One JSON line per measured request (`--log` only).
    records: Vec<String>,
}

/// When the run starts, when measuring starts and ends, and one moment read on both clocks
/// (for `--log`'s Unix times).
#[derive(Clone, Copy)]
struct Times {
    start: Instant,
    measure_from: Instant,
    end: Instant,
    origin: (Instant, SystemTime),
}

/// Milliseconds since the Unix epoch at `at`, given one moment read on both clocks.
fn unix_ms(at: Instant, origin: (Instant, SystemTime)) -> f64 {
    let base = origin
        .1
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
        * 1000.0;
    if at >= origin.0 {
        base + at.duration_since(origin.0).as_secs_f64() * 1000.0
    } else {
        base - origin.0.duration_since(at).as_secs_f64() * 1000.0
    }
}

/// The status message of a denial (`response.status.message`), if any.
fn denial_message(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.pointer("/response/status/message")
                .and_then(|m| m.as_str().map(str::to_owned))
        })
        .unwrap_or_default()
}

async fn worker(
    id: usize,
    client: reqwest::Client,
    args: Arc<Args>,
    bodies: Arc<Vec<Vec<u8>>>,
    times: Times,
) -> Tally {
    let Times {
        start,
        measure_from,
        end,
        origin,
    } = times;
    let mut t = Tally::default();
    let n = args.connections as f64;
    let mut k: u64 = 0;
    loop {
        // Open loop: this worker's k-th request is the (k * connections + id)-th overall.
        // `since`: where this request's latency counts from. When the connection is free
        // before the request is due, the worker sleeps until it is due and counts from when it
        // woke: the timer wakes up to a millisecond late, and that lateness is the load
        // generator's, not the server's. When the connection is still busy with an earlier
        // answer at the due time (the server is behind), it counts from the due time, so
        // queueing behind a slow answer is measured (no coordinated omission).
        let (due, since) = if args.rate > 0.0 {
            let at = start + Duration::from_secs_f64((k as f64 * n + id as f64) / args.rate);
            if at > Instant::now() {
                tokio::time::sleep_until(at.into()).await;
                (at, Instant::now())
            } else {
                (at, at)
            }
        } else {
            let now = Instant::now();
            (now, now)
        };
        if due >= end {
            break;
        }
        let body = bodies[(k as usize * args.connections + id) % bodies.len()].clone();
        k += 1;
        let sent = Instant::now();
        let mut message = String::new();
        let r = client
            .post(&args.url[id % args.url.len()])
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await;
        let outcome = match r {
            Ok(resp) if resp.status().is_success() => match resp.bytes().await {
                Ok(b) => {
                    let s = String::from_utf8_lossy(&b);
                    if s.contains("\"allowed\":true") {
                        Ok(true)
                    } else if s.contains("\"allowed\":false") {
                        if args.log.is_some() {
                            message = denial_message(&b);
                        }
                        Ok(false)
                    } else {
                        Err(format!("no decision in {s}"))
                    }
                }
                Err(e) => Err(e.to_string()),
            },
            Ok(resp) => Err(format!("HTTP {}", resp.status())),
            Err(e) => Err(e.to_string()),
        };
        let done = Instant::now();
        t.sent += 1;
        if due < measure_from {
            continue;
        }
        t.latencies_us
            .push(done.duration_since(since).as_micros() as u64);
        if args.log.is_some() {
            let (kind, message) = match &outcome {
                Ok(true) => ("allowed", message),
                Ok(false) => ("denied", message),
                Err(e) => ("failed", e.clone()),
            };
            t.records.push(
                json!({"sent_ms": unix_ms(sent, origin),
                    "latency_ms": done.duration_since(since).as_secs_f64() * 1000.0,
                    "service_ms": done.duration_since(sent).as_secs_f64() * 1000.0,
                    "outcome": kind, "message": message})
                .to_string(),
            );
        }
        match outcome {
            Ok(true) => t.allowed += 1,
            Ok(false) => t.denied += 1,
            Err(e) => {
                t.failed += 1;
                t.first_error.get_or_insert(e);
            }
        }
    }
    t
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64 / 1000.0
}

fn run(args: Args) -> Result<(), String> {
    let args = Arc::new(args);
    let bodies = Arc::new(reviews(&args)?);
    let pem = std::fs::read(&args.cacert).map_err(|e| format!("--cacert: {e}"))?;
    let ca = reqwest::Certificate::from_pem(&pem).map_err(|e| format!("--cacert: {e}"))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let tally = rt.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        let start = Instant::now() + Duration::from_millis(200);
        let measure_from = start + Duration::from_secs_f64(args.warmup);
        let end = measure_from + Duration::from_secs_f64(args.duration);
        let origin = (Instant::now(), SystemTime::now());
        for id in 0..args.connections.max(1) {
            // One client per worker, one pooled connection each: N keep-alive connections.
            let client = reqwest::Client::builder()
                .add_root_certificate(ca.clone())
                .http1_only()
                .pool_max_idle_per_host(1)
                .timeout(Duration::from_secs(30))
                .build()
                .map_err(|e| e.to_string())?;
            tasks.spawn(worker(
                id,
                client,
                args.clone(),
                bodies.clone(),
                Times {
                    start,
                    measure_from,
                    end,
                    origin,
                },
            ));
        }
        let mut all = Tally::default();
        while let Some(t) = tasks.join_next().await {
            let t = t.map_err(|e| e.to_string())?;
            all.latencies_us.extend(t.latencies_us);
            all.allowed += t.allowed;
            all.denied += t.denied;
            all.failed += t.failed;
            all.sent += t.sent;
            all.records.extend(t.records);
            if all.first_error.is_none() {
                all.first_error = t.first_error;
            }
        }
        Ok::<_, String>(all)
    })?;
    if let Some(path) = &args.log {
        let mut out = Vec::new();
        for r in &tally.records {
            out.extend_from_slice(r.as_bytes());
            out.push(b'\n');
        }
        std::fs::File::create(path)
            .and_then(|mut f| f.write_all(&out))
            .map_err(|e| format!("--log {}: {e}", path.display()))?;
    }
    let mut lat = tally.latencies_us;
    lat.sort_unstable();
    let n = lat.len();
    let throughput = n as f64 / args.duration;
    let (p50, p90, p99, max) = (
        percentile(&lat, 50.0),
        percentile(&lat, 90.0),
        percentile(&lat, 99.0),
        lat.last().copied().unwrap_or(0) as f64 / 1000.0,
    );
    if args.json {
        println!(
            "{}",
            json!({"requests": n, "seconds": args.duration, "throughput_per_s": throughput,
                "rate": args.rate, "connections": args.connections,
                "allowed": tally.allowed, "denied": tally.denied, "failed": tally.failed,
                "sent_including_warmup": tally.sent,
                "p50_ms": p50, "p90_ms": p90, "p99_ms": p99, "max_ms": max,
                "first_error": tally.first_error})
        );
    } else {
        let mode = if args.rate > 0.0 {
            format!("fixed rate {} req/s", args.rate)
        } else {
            "max rate".to_owned()
        };
        println!(
            "{mode}, {} connections, {} distinct reviews, {:.0} s measured",
            args.connections,
            bodies.len(),
            args.duration
        );
        println!(
            "  {n} requests, {throughput:.0} req/s; allowed {}, denied {}, failed {} ({} sent including warm-up)",
            tally.allowed, tally.denied, tally.failed, tally.sent
        );
        println!("  latency ms: p50 {p50:.3}  p90 {p90:.3}  p99 {p99:.3}  max {max:.3}");
        if let Some(e) = tally.first_error {
            println!("  first error: {e}");
        }
    }
    if tally.failed > 0 {
        return Err(format!("{} requests failed", tally.failed));
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    match run(Args::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("provenance-webhook-load: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
