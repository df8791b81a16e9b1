//! The built webhook on loopback, over HTTPS with a certificate made for the test, answering
//! the example AI-workload AdmissionReviews with evidence from the example OCI layout: a
//! signed inference Pod is pinned to its digests and admitted, an unsigned one is denied with
//! the reason, and what cannot be decided is denied (fail closed).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The running webhook, killed on drop.
struct Server {
    child: Child,
    client: reqwest::Client,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// POSTs `body` to `path`; the HTTP status and the JSON answer.
    async fn post(&self, path: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
        let r = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        (status, v)
    }

    /// The AdmissionReview answer to `review`, checked to be one (HTTP 200, typed, `uid`
    /// echoed).
    async fn review(&self, path: &str, review: &Value) -> Value {
        let (status, out) = self.post(path, review.to_string()).await;
        assert_eq!(status, 200, "{out}");
        assert_eq!(out["apiVersion"], "admission.k8s.io/v1", "{out}");
        assert_eq!(out["kind"], "AdmissionReview", "{out}");
        assert_eq!(out["response"]["uid"], review["request"]["uid"], "{out}");
        out["response"].clone()
    }
}

fn example() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../ai-workloads"))
}

fn reviewed(name: &str) -> Value {
    let text = std::fs::read_to_string(example().join("reviews").join(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn p(x: &Path) -> String {
    x.to_str().unwrap().to_owned()
}

/// The webhook over `policies`, the example layout and trust root, without a cluster, with
/// `extra` arguments; waits until it answers.
async fn start(dir: &Path, policies: &Path, extra: &[&str]) -> Server {
    let ex = example();
    assert!(
        ex.join("registry/index.json").is_file(),
        "examples/ai-workloads/registry is missing"
    );
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    std::fs::write(dir.join("tls.crt"), ck.cert.pem()).unwrap();
    std::fs::write(dir.join("tls.key"), ck.signing_key.serialize_pem()).unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_provenance-kube-webhook"))
        .args(["--listen", &format!("127.0.0.1:{port}"), "--no-cluster"])
        .args(["--policies", &p(policies)])
        .args(["--registry-layout", &p(&ex.join("registry"))])
        .args(["--trust-root", &p(&ex.join("registry/trusted_root.json"))])
        .args([
            "--cert",
            &p(&dir.join("tls.crt")),
            "--key",
            &p(&dir.join("tls.key")),
        ])
        .args(extra)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ck.cert.pem().as_bytes()).unwrap())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let base = format!("https://localhost:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            use std::io::Read as _;
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            panic!("the webhook exited ({status}): {err}");
        }
        if client.get(&base).send().await.is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "the webhook did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Server {
        child,
        client,
        base,
    }
}

/// The example's policies, with the example namespaces' labels.
async fn ai_webhook(dir: &Path, extra: &[&str]) -> Server {
    let labels = dir.join("namespaces.yaml");
    std::fs::write(
        &labels,
        "ml-serving: {purpose: ai-inference}\nml-training: {purpose: ai-training}\n",
    )
    .unwrap();
    let mut args = vec!["--namespace-labels", labels.to_str().unwrap()];
    args.extend_from_slice(extra);
    start(dir, &example().join("policies"), &args).await
}

/// Applies an RFC 6902 patch of `replace` operations (all the mutating answer holds).
fn apply_patch(doc: &mut Value, patch: &[Value]) {
    for op in patch {
        assert_eq!(op["op"], "replace", "{op}");
        *doc.pointer_mut(op["path"].as_str().unwrap()).unwrap() = op["value"].clone();
    }
}

fn message(response: &Value) -> String {
    response["status"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn signed_ai_workload_is_pinned_and_admitted_and_an_unsigned_one_denied() {
    let dir = tempfile::tempdir().unwrap();
    let server = ai_webhook(dir.path(), &[]).await;

    // The signed inference Pod names its images by tag: the mutating answer pins each to the
    // digest that was verified.
    let review = reviewed("inference-pod.json");
    let m = server.review("/mutate", &review).await;
    assert_eq!(m["allowed"], true, "{m}");
    assert_eq!(m["patchType"], "JSONPatch", "{m}");
    // kube-rs sends the patch's bytes as a JSON array of numbers (the API server reads it as
    // it reads base64).
    let patch: Vec<u8> = serde_json::from_value(m["patch"].clone()).unwrap();
    let patch: Vec<Value> = serde_json::from_slice(&patch).unwrap();
    let mut pinned = review.clone();
    apply_patch(&mut pinned["request"]["object"], &patch);
    for c in pinned["request"]["object"]["spec"]["containers"]
        .as_array()
        .unwrap()
    {
        assert!(c["image"].as_str().unwrap().contains("@sha256:"), "{c}");
    }

    // By tag, the validating answer denies it (the tag could move after admission) ...
    let v = server.review("/validate", &review).await;
    assert_eq!(v["allowed"], false, "{v}");
    assert!(message(&v).contains("missing digest"), "{v}");
    // ... and admits it as the mutating answer left it.
    pinned["request"]["uid"] = json!("pinned-1");
    let v = server.review("/validate", &pinned).await;
    assert_eq!(v["allowed"], true, "{v}");

    // The unsigned inference Pod is denied, with the policy and the reason.
    let v = server
        .review("/validate", &reviewed("inference-pod-unsigned.json"))
        .await;
    assert_eq!(v["allowed"], false, "{v}");
    let msg = message(&v);
    assert!(
        msg.contains("verify-ai-images") && msg.contains("no signatures found"),
        "{msg}"
    );
    assert_eq!(v["status"]["code"], 403, "{v}");
}

#[tokio::test]
async fn what_cannot_be_decided_is_denied() {
    let dir = tempfile::tempdir().unwrap();
    let server = ai_webhook(dir.path(), &[]).await;

    // Not an AdmissionReview at all: a typed denial, with the reason.
    for body in [
        "{not json",
        "[]",
        r#"{"apiVersion": "admission.k8s.io/v1"}"#,
    ] {
        let (status, out) = server.post("/validate", body).await;
        assert_eq!(status, 200, "{body}: {out}");
        assert_eq!(out["kind"], "AdmissionReview", "{body}: {out}");
        assert_eq!(out["response"]["allowed"], false, "{body}: {out}");
        let msg = message(&out["response"]);
        assert!(msg.contains("fail closed"), "{body}: {msg}");
    }
    let (_, out) = server.post("/mutate", "{not json").await;
    assert_eq!(out["response"]["allowed"], false, "{out}");
    assert!(
        message(&out["response"]).contains("unreadable AdmissionReview"),
        "{out}"
    );

    // A readable review the library refuses (an operation it does not know): denied, with
    // the uid and the machine code.
    let mut review = reviewed("inference-pod.json");
    review["request"]["operation"] = json!("CONNECT");
    review["request"]["object"] = Value::Null;
    let v = server.review("/validate", &review).await;
    assert_eq!(v["allowed"], false, "{v}");
    assert!(message(&v).contains("fail closed"), "{v}");

    // A namespace whose labels are unknown (not in --namespace-labels): the rules selecting
    // on them are errors, and the enforced ones deny.
    let mut review = reviewed("inference-pod-unsigned.json");
    review["request"]["namespace"] = json!("elsewhere");
    review["request"]["object"]["metadata"]["namespace"] = json!("elsewhere");
    let v = server.review("/validate", &review).await;
    assert_eq!(v["allowed"], false, "{v}");
    assert!(
        v.to_string()
            .contains("policy.match.namespace_labels_unknown"),
        "{v}"
    );
}

#[tokio::test]
async fn a_deadline_too_short_to_gather_evidence_denies() {
    let dir = tempfile::tempdir().unwrap();
    let server = ai_webhook(dir.path(), &["--deadline-ms", "1"]).await;
    let review = reviewed("inference-pod.json");
    for path in ["/validate", "/mutate"] {
        let v = server.review(path, &review).await;
        assert_eq!(v["allowed"], false, "{path}: {v}");
        assert!(v.get("patch").is_none(), "{path}: {v}");
        assert!(message(&v).contains("deadline"), "{path}: {v}");
    }
}

#[tokio::test]
async fn roles_unknown_without_a_cluster_make_role_rules_errors() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).unwrap();
    std::fs::write(
        policies.join("admins-only.yaml"),
        r#"apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: gpu-for-admins}
spec:
  validationFailureAction: Enforce
  rules:
    - name: admins-need-a-team
      match:
        any:
          - resources: {kinds: [Pod]}
            clusterRoles: [cluster-admin]
      validate:
        message: "a team label is required"
        pattern: {metadata: {labels: {team: "?*"}}}
"#,
    )
    .unwrap();
    let server = start(dir.path(), &policies, &[]).await;
    let v = server
        .review("/validate", &reviewed("training-pod.json"))
        .await;
    assert_eq!(v["allowed"], false, "{v}");
    assert!(v.to_string().contains("policy.match.roles_unknown"), "{v}");
}

#[test]
fn a_missing_certificate_or_cluster_stops_it_at_start() {
    let ex = example();
    let out = Command::new(env!("CARGO_BIN_EXE_provenance-kube-webhook"))
        .args(["--policies", &p(&ex.join("policies")), "--no-cluster"])
        .args([
            "--cert",
            "/nonexistent/tls.crt",
            "--key",
            "/nonexistent/tls.key",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--cert / --key"), "{err}");
    // --namespace-labels is for --no-cluster only.
    let out = Command::new(env!("CARGO_BIN_EXE_provenance-kube-webhook"))
        .args(["--policies", "p", "--cert", "c", "--key", "k"])
        .args(["--namespace-labels", "ns.yaml"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--no-cluster"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
