//! Fail-opens of the webhook, closed: unknown namespaces under namespaceSelector rules,
//! `kubectl debug` ephemeral containers, subresource reviews, and policy files that cannot be
//! loaded completely (empty, a kind that cannot be enforced, rules on roles the webhook cannot
//! know). Each denial carries its machine code in
//! `status.details.causes`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;
use common::{Server, free_port};

const POLICIES: &str = r#"apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: inference-no-latest}
spec:
  validationFailureAction: Enforce
  rules:
  - name: tag
    match:
      any:
      - resources:
          kinds: [Pod]
          namespaceSelector: {matchLabels: {purpose: ai-inference}}
    validate:
      message: no latest tags for inference
      foreach:
      - list: request.object.spec.containers
        pattern: {image: "!*:latest"}
      - list: request.object.spec.ephemeralContainers
        pattern: {image: "!*:latest"}
---
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: no-exec}
spec:
  validationFailureAction: Enforce
  rules:
  - name: exec
    match: {any: [{resources: {kinds: [Pod/exec]}}]}
    validate:
      message: exec is not allowed
      deny: {}
"#;

/// Matches on clusterRoles, which the webhook cannot know.
const ROLES: &str = r#"apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: developers-no-privileged}
spec:
  validationFailureAction: Enforce
  rules:
  - name: privileged
    match: {any: [{resources: {kinds: [Pod]}}]}
    exclude: {any: [{clusterRoles: [cluster-admin]}]}
    validate:
      message: developers may not run privileged Pods
      pattern:
        spec:
          containers:
          - =(securityContext):
              =(privileged): "false"
"#;

fn spawn(dir: &Path) -> (Child, u16) {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_provenance-webhook"))
        .args([
            "--dangerous-plain-http",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--reload-seconds",
            "1",
        ])
        .arg("--policies")
        .arg(dir.join("policies"))
        .arg("--namespace-labels")
        .arg(dir.join("ns.yaml"))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    (child, port)
}

async fn start(dir: &Path) -> Server {
    let (child, port) = spawn(dir);
    let server = Server {
        child,
        base: format!("http://127.0.0.1:{port}"),
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap(),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = server
            .client
            .get(format!("{}/healthz", server.base))
            .send()
            .await
            && r.status().is_success()
        {
            break;
        }
        assert!(Instant::now() < deadline, "webhook did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server
}

fn pod(ns: &str, image: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "llm", "namespace": ns},
        "spec": {"containers": [{"name": "server", "image": image}]}})
}

fn review(ns: &str, object: Value) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "u", "name": "llm", "namespace": ns, "operation": "CREATE",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "userInfo": {"username": "dev", "groups": ["system:authenticated"]},
            "object": object, "oldObject": null
        }
    })
}

async fn validate(s: &Server, body: &Value) -> Value {
    let r = s
        .client
        .post(format!("{}/validate", s.base))
        .json(body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    r.json::<Value>().await.unwrap()["response"].clone()
}

fn causes(resp: &Value) -> Vec<String> {
    resp["status"]["details"]["causes"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|c| {
                    format!(
                        "{} {}",
                        c["field"].as_str().unwrap(),
                        c["reason"].as_str().unwrap()
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

async fn readyz(s: &Server) -> u16 {
    s.client
        .get(format!("{}/readyz", s.base))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn webhook_fails_closed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("policies")).unwrap();
    std::fs::write(dir.path().join("policies/policies.yaml"), POLICIES).unwrap();
    std::fs::write(
        dir.path().join("ns.yaml"),
        "ml-serving: {purpose: ai-inference}\nbatch: {purpose: training}\n",
    )
    .unwrap();
    let s = start(dir.path()).await;
    assert_eq!(readyz(&s).await, 200);

    // A namespace missing from --namespace-labels: the namespaceSelector rule cannot be
    // decided, so it errors and the request is denied, with the code.
    let r = validate(&s, &review("ml-new", pod("ml-new", "nginx:1.25"))).await;
    assert_eq!(r["allowed"], false, "{r}");
    assert_eq!(
        causes(&r),
        ["inference-no-latest/tag policy.match.namespace_labels_unknown"]
    );
    // Known namespaces are decided by their labels.
    let r = validate(&s, &review("batch", pod("batch", "nginx:latest"))).await;
    assert_eq!(r["allowed"], true, "{r}");
    let r = validate(&s, &review("ml-serving", pod("ml-serving", "nginx:latest"))).await;
    assert_eq!(r["allowed"], false, "{r}");
    assert_eq!(causes(&r), ["inference-no-latest/tag policy.rule.fail"]);

    // `kubectl debug`: an ephemeral container added through pods/ephemeralcontainers is
    // reviewed as the Pod.
    let mut debug = pod("ml-serving", "nginx:1.25");
    debug["spec"]["ephemeralContainers"] = json!([{"name": "debugger", "image": "busybox:latest"}]);
    let mut rv = review("ml-serving", debug);
    rv["request"]["operation"] = json!("UPDATE");
    rv["request"]["subResource"] = json!("ephemeralcontainers");
    rv["request"]["oldObject"] = pod("ml-serving", "nginx:1.25");
    let r = validate(&s, &rv).await;
    assert_eq!(r["allowed"], false, "{r}");
    assert_eq!(causes(&r), ["inference-no-latest/tag policy.rule.fail"]);

    // A real exec review (PodExecOptions, resource pods, subresource exec) matches Pod/exec.
    let exec = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": "u", "operation": "CONNECT", "namespace": "batch", "name": "llm",
            "kind": {"group": "", "version": "v1", "kind": "PodExecOptions"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "subResource": "exec", "userInfo": {"username": "dev"},
            "object": {"apiVersion": "v1", "kind": "PodExecOptions", "command": ["sh"]}}});
    let r = validate(&s, &exec).await;
    assert_eq!(r["allowed"], false, "{r}");
    assert_eq!(causes(&r), ["no-exec/exec policy.rule.fail"]);
}

#[tokio::test]
async fn policies_load_completely_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).unwrap();
    std::fs::write(dir.path().join("ns.yaml"), "batch: {purpose: training}\n").unwrap();
    // A ConfigMap volume: the key, `..data` and the timestamped folder all hold the file.
    let stamped = policies.join("..2026_01_01_00_00_00.000000001");
    std::fs::create_dir(&stamped).unwrap();
    std::fs::write(stamped.join("policies.yaml"), POLICIES).unwrap();
    std::os::unix::fs::symlink("..2026_01_01_00_00_00.000000001", policies.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/policies.yaml", policies.join("policies.yaml")).unwrap();
    let s = start(dir.path()).await;
    let metrics = s
        .client
        .get(format!("{}/metrics", s.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("provenance_policies_loaded 2\n"),
        "each policy once: {metrics}"
    );

    // A 0-byte file is not "no policies": the reload fails, /readyz fails, and the set in
    // force is unchanged (the exec policy still denies).
    std::fs::write(policies.join("extra.yaml"), "").unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while readyz(&s).await == 200 {
        assert!(Instant::now() < deadline, "empty file was not noticed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let exec = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": "u", "operation": "CONNECT", "namespace": "batch", "name": "llm",
            "kind": {"group": "", "version": "v1", "kind": "PodExecOptions"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "subResource": "exec", "userInfo": {"username": "dev"},
            "object": {"apiVersion": "v1", "kind": "PodExecOptions", "command": ["sh"]}}});
    let r = validate(&s, &exec).await;
    assert_eq!(r["allowed"], false, "{r}");

    // Fixed: ready again.
    std::fs::remove_file(policies.join("extra.yaml")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while readyz(&s).await != 200 {
        assert!(
            Instant::now() < deadline,
            "fixed policies were not picked up"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A rule on clusterRoles the webhook cannot look up is refused, not silently unmatched.
    std::fs::write(policies.join("roles.yaml"), ROLES).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while readyz(&s).await == 200 {
        assert!(Instant::now() < deadline, "roles rule was not refused");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    std::fs::remove_file(policies.join("roles.yaml")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while readyz(&s).await != 200 {
        assert!(
            Instant::now() < deadline,
            "fixed policies were not picked up"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A kind this engine cannot enforce is a reload failure too, never a smaller set.
    std::fs::write(
        policies.join("cleanup.yaml"),
        "apiVersion: kyverno.io/v2\nkind: ClusterCleanupPolicy\nmetadata: {name: m}\nspec: {}\n",
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while readyz(&s).await == 200 {
        assert!(
            Instant::now() < deadline,
            "unsupported kind was not refused"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(s);

    // At start-up, the same policies are refused outright.
    let (mut child, _) = spawn(dir.path());
    let status = child.wait().unwrap();
    assert!(!status.success());
}
