//! A ValidatingPolicy with `evaluation.mode: JSON` never applies to admission requests. Given
//! to the webhook, it loads and `/readyz` says ready, while what it says is never enforced: a
//! policy silently out of force, as a background-only policy would be (which the webhook
//! refuses, `webhook.policy.background_only`). Before `evaluation.mode: JSON` was supported it
//! was refused at load (`policy.unsupported`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

mod common;
use common::free_port;

const JSON_MODE: &str = r#"apiVersion: policies.kyverno.io/v1
kind: ValidatingPolicy
metadata: {name: no-privileged}
spec:
  validationActions: [Deny]
  evaluation: {mode: JSON}
  matchConstraints:
    resourceRules:
      - apiGroups: [""]
        apiVersions: [v1]
        operations: [CREATE, UPDATE]
        resources: [pods]
  validations:
    - expression: "!object.spec.containers.exists(c, c.?securityContext.?privileged.orValue(false))"
      message: "privileged containers are not allowed"
"#;

#[tokio::test]
async fn a_json_mode_policy_is_refused_by_the_webhook() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("policy.yaml"), JSON_MODE).unwrap();
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_provenance-webhook"))
        .args([
            "--dangerous-plain-http",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .arg("--policies")
        .arg(dir.path().join("policy.yaml"))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(!status.success());
            return; // refused at start-up
        }
        if client
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "webhook neither started nor refused"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Ready: a privileged Pod must then at least be denied.
    let review = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": "u", "operation": "CREATE", "namespace": "ml", "name": "p",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "userInfo": {"username": "dev"},
            "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "ml"},
                "spec": {"containers": [{"name": "c", "image": "nginx",
                    "securityContext": {"privileged": true}}]}}}});
    let r: serde_json::Value = client
        .post(format!("http://127.0.0.1:{port}/validate"))
        .json(&review)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    child.kill().unwrap();
    let _ = child.wait();
    assert_eq!(
        r["response"]["allowed"], false,
        "the webhook is ready with a policy it never enforces; privileged Pod: {r}"
    );
}
