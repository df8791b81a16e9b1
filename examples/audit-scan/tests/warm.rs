//! `--warm-webhook`: the Pods a scan reads are sent to a real admission webhook's
//! `/preverify` (the project's webhook, on loopback over HTTPS), and an admission of one of
//! them afterwards is answered from the webhook's caches.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn here() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn ai() -> PathBuf {
    here().join("../ai-workloads")
}

/// The webhook binary beside this test's `audit-scan` (`cargo test --workspace` builds both
/// into one profile directory); built with cargo when it is not there.
fn webhook_binary() -> PathBuf {
    let scan = PathBuf::from(env!("CARGO_BIN_EXE_audit-scan"));
    let exe = scan.with_file_name("provenance-webhook");
    if !exe.exists() {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut build = Command::new(cargo);
        build.args([
            "build",
            "-p",
            "provenance-admission-webhook",
            "--bin",
            "provenance-webhook",
        ]);
        if scan.parent().is_some_and(|d| d.ends_with("release")) {
            build.arg("--release");
        }
        assert!(
            build.status().unwrap().success(),
            "building the webhook failed"
        );
    }
    exe
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The webhook over the AI-workload policies and layout, with the fixture's namespace labels;
/// waits until it is ready.
async fn start_webhook(dir: &Path) -> (Server, reqwest::Client, String) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    std::fs::write(dir.join("tls.crt"), ck.cert.pem()).unwrap();
    std::fs::write(dir.join("tls.key"), ck.signing_key.serialize_pem()).unwrap();
    std::fs::write(
        dir.join("ns.yaml"),
        "gpu-batch: {purpose: gpu-batch}\nml-serving: {purpose: ai-inference}\n\
         ml-training: {purpose: ai-training}\nkube-system: {}\n",
    )
    .unwrap();
    let port = free_port();
    let server = Server(
        Command::new(webhook_binary())
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .arg("--policies")
            .arg(ai().join("policies"))
            .arg("--registry-layout")
            .arg(ai().join("registry"))
            .arg("--trust-root")
            .arg(ai().join("registry/trusted_root.json"))
            .arg("--namespace-labels")
            .arg(dir.join("ns.yaml"))
            .arg("--cert")
            .arg(dir.join("tls.crt"))
            .arg("--key")
            .arg(dir.join("tls.key"))
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ck.cert.pem().as_bytes()).unwrap())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let base = format!("https://localhost:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let up = client.get(format!("{base}/readyz")).send().await;
        if up.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        assert!(Instant::now() < deadline, "webhook did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (server, client, base)
}

/// One counter of `/metrics`.
async fn metric(client: &reqwest::Client, base: &str, name: &str) -> u64 {
    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} not in /metrics:\n{text}"))
}

/// One evaluation time for every scan of a test, so that reports compare equal.
fn now() -> &'static str {
    static NOW: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NOW.get_or_init(|| {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        provenance_core::UnixTime(i64::try_from(secs).unwrap()).to_string()
    })
}

/// Runs audit-scan over the fixture with `extra` flags; (exit code, stdout, stderr).
fn scan(extra: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_audit-scan"))
        .args(["--now", now()])
        .arg("--policy")
        .arg(ai().join("policies"))
        .arg("--registry-layout")
        .arg(ai().join("registry"))
        .arg("--trust-root")
        .arg(ai().join("registry/trusted_root.json"))
        .arg("--from-file")
        .arg(here().join("fixtures/cluster.json"))
        .args(["-o", "json"])
        .args(extra)
        .env_remove("KUBECONFIG")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `scan` off the async runtime (the webhook's client shares it).
async fn scan_async(extra: Vec<String>) -> (Option<i32>, String, String) {
    tokio::task::spawn_blocking(move || {
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        scan(&extra)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_warms_the_webhook_with_the_pods_it_read() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, client, base) = start_webhook(dir.path()).await;
    let ca = dir.path().join("tls.crt").to_str().unwrap().to_owned();
    let warm = |url: &str| {
        vec![
            "--warm-webhook".to_owned(),
            url.to_owned(),
            "--webhook-ca-cert".to_owned(),
            ca.clone(),
        ]
    };

    // The fixture's eight Pods with images are eight distinct workloads: each is decided by
    // the webhook ahead of its next admission, and the reports are written as without it.
    let (code, out, err) = scan_async(warm(&base)).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("warmed the webhook with 8 workloads:") && err.contains(", 0 not answered"),
        "{err}"
    );
    let (plain_code, plain_out, _) = scan_async(Vec::new()).await;
    assert_eq!(plain_code, Some(0));
    let reports: Value = serde_json::from_str(&out).unwrap();
    let plain: Value = serde_json::from_str(&plain_out).unwrap();
    assert_eq!(
        reports.as_array().unwrap().len(),
        plain.as_array().unwrap().len()
    );
    assert_eq!(
        metric(&client, &base, "provenance_preverify_total").await,
        8
    );
    let misses = metric(&client, &base, "provenance_cache_misses_total").await;
    assert!(misses > 0);

    // The API server's request for one of those Pods is answered from the caches.
    let fixture: Value = serde_json::from_str(
        &std::fs::read_to_string(here().join("fixtures/cluster.json")).unwrap(),
    )
    .unwrap();
    let pod = fixture["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["metadata"]["name"] == "llm-inference")
        .unwrap()
        .clone();
    let review = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": "u-1", "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "operation": "CREATE", "namespace": "ml-serving", "name": "llm-inference",
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
            "object": pod}});
    let r = client
        .post(format!("{base}/mutate"))
        .json(&review)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
    assert_eq!(
        metric(&client, &base, "provenance_cache_misses_total").await,
        misses,
        "the admission after the warm-up fetched evidence again"
    );

    // A webhook that does not answer: the reports are still written, and the exit code is 4.
    let (code, out, err) = scan_async(warm(&format!("https://localhost:{}", free_port()))).await;
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("8 of 8 workloads were not answered"), "{err}");
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap(), plain);

    // Plain HTTP is refused before anything is read (usage error, exit 2).
    let (code, _, err) = scan_async(warm("http://localhost:1")).await;
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("HTTPS only"), "{err}");
}
