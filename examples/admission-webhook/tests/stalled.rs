//! A registry that accepts connections and never answers: the webhook (configured by a
//! `--config` file, evidence `online` with the registry host mapped to the stalled loopback
//! server) answers before its deadline with the decision of the policy's failurePolicy:
//! `Fail` denies naming the deadline, `Ignore` admits with a warning.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const DEADLINE_MS: u64 = 1500;

fn policy(failure_policy: &str) -> String {
    let key = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../provenance-oci/tests/fixtures/model-signing/keys/ec-p256.pub"
    ))
    .unwrap();
    let key: String = key
        .lines()
        .map(|l| format!("                    {l}\n"))
        .collect();
    format!(
        r#"apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {{name: verify-signed-images}}
spec:
  validationFailureAction: Enforce
  failurePolicy: {failure_policy}
  rules:
  - name: signed
    match: {{any: [{{resources: {{kinds: [Pod]}}}}]}}
    verifyImages:
    - imageReferences: ["stalled.example/*"]
      attestors:
      - entries:
        - keys:
            publicKeys: |-
{key}
"#
    )
}

/// A TCP server on loopback that accepts every connection, reads nothing, answers nothing
/// and keeps the connection open. Returns its port and the number of connections accepted.
fn stalled_registry() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    std::thread::spawn(move || {
        let mut open = Vec::new();
        for stream in listener.incoming().flatten() {
            count.fetch_add(1, Ordering::SeqCst);
            open.push(stream);
        }
    });
    (port, accepted)
}

fn review(uid: &str) -> Value {
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": uid, "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "operation": "CREATE", "namespace": "ml", "name": "server",
            "userInfo": {"username": "alice"},
            "object": {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "server", "namespace": "ml"},
                "spec": {"containers": [{"name": "server", "image": "stalled.example/ml/server:1.0"}]}}}})
}

#[tokio::test]
async fn stalled_registry_answers_before_the_deadline_with_the_failure_policy() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    std::fs::write(d.join("tls.crt"), ck.cert.pem()).unwrap();
    std::fs::write(d.join("tls.key"), ck.signing_key.serialize_pem()).unwrap();
    std::fs::create_dir(d.join("policies")).unwrap();
    std::fs::write(d.join("policies/verify.yaml"), policy("Fail")).unwrap();
    let (registry_port, accepted) = stalled_registry();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let p = |x: &Path| x.to_str().unwrap().to_owned();
    // Every setting from the configuration file.
    let config = json!({
        "listen": format!("127.0.0.1:{port}"),
        "policies": [p(&d.join("policies"))],
        "cert": p(&d.join("tls.crt")),
        "key": p(&d.join("tls.key")),
        "deadline-ms": DEADLINE_MS,
        "reload-seconds": 1,
        "online": true,
        "allow-http": ["stalled.example"],
        "registry-endpoints": {"stalled.example": format!("127.0.0.1:{registry_port}")},
        "cache-size": 64,
    });
    std::fs::write(d.join("webhook.json"), config.to_string()).unwrap();
    let _server = Server(
        Command::new(env!("CARGO_BIN_EXE_provenance-webhook"))
            .args(["--config", &p(&d.join("webhook.json"))])
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
    let started = Instant::now();
    while client
        .get(format!("{base}/readyz"))
        .send()
        .await
        .map(|r| r.status().is_success())
        .ok()
        != Some(true)
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "webhook did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Connections made before this one (TLS warm-up) are not what is measured.
    client.get(format!("{base}/healthz")).send().await.unwrap();

    let validate = |uid: &'static str| {
        let client = client.clone();
        let base = base.clone();
        async move {
            let t = Instant::now();
            let r = client
                .post(format!("{base}/validate"))
                .json(&review(uid))
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "{}", r.status());
            let v: Value = r.json().await.unwrap();
            (v, t.elapsed())
        }
    };

    // failurePolicy Fail: denied before the deadline, and the message names it.
    let (out, took) = validate("fail-1").await;
    assert!(
        took < Duration::from_millis(DEADLINE_MS),
        "answered after {took:?}"
    );
    assert!(
        accepted.load(Ordering::SeqCst) >= 1,
        "the registry was not contacted"
    );
    let resp = &out["response"];
    assert_eq!(resp["uid"], "fail-1");
    assert_eq!(resp["allowed"], false, "{out}");
    let msg = resp["status"]["message"].as_str().unwrap();
    assert!(
        msg.contains(&format!("deadline of {DEADLINE_MS} ms exceeded")) && msg.contains("denied"),
        "{msg}"
    );

    // failurePolicy Ignore (hot-reloaded): admitted before the deadline, with a warning.
    std::fs::write(d.join("policies/verify.yaml"), policy("Ignore")).unwrap();
    let reload_by = Instant::now() + Duration::from_secs(20);
    loop {
        let (out, took) = validate("ignore-1").await;
        assert!(
            took < Duration::from_millis(DEADLINE_MS),
            "answered after {took:?}"
        );
        if out["response"]["allowed"] == true {
            let warnings = out["response"]["warnings"].as_array().unwrap();
            assert!(
                warnings.iter().any(|w| {
                    let w = w.as_str().unwrap();
                    w.contains(&format!("deadline of {DEADLINE_MS} ms exceeded"))
                        && w.contains("failurePolicy Ignore")
                }),
                "{warnings:?}"
            );
            break;
        }
        assert!(
            Instant::now() < reload_by,
            "policy change was not picked up"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |name: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name).map(|v| v.trim().parse().unwrap()))
            .unwrap_or_else(|| panic!("{name} missing in {metrics}"))
    };
    assert!(
        value("provenance_deadline_exceeded_total ") >= 2,
        "{metrics}"
    );
    assert!(value("provenance_cache_misses_total ") >= 2, "{metrics}");
    assert_eq!(value("provenance_cache_hits_total "), 0, "{metrics}");
}
