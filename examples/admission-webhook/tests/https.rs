//! The webhook over real HTTPS with real AdmissionReview bodies: decisions, warnings,
//! Kyverno's message, hot reload of policies, health, readiness and metrics.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;
use common::{Server, free_port};

const ENFORCE: &str = r#"apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: disallow-latest-tag}
spec:
  validationFailureAction: Enforce
  rules:
  - name: validate-image-tag
    match: {any: [{resources: {kinds: [Pod]}}]}
    validate:
      message: "Using a mutable image tag e.g. 'latest' is not allowed."
      pattern: {spec: {containers: [{image: "!*:latest"}]}}
"#;

const AUDIT: &str = r#"apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: require-model-card}
spec:
  validationFailureAction: Audit
  rules:
  - name: model-card-url
    match: {any: [{resources: {kinds: [Pod], namespaceSelector: {matchLabels: {purpose: ai-inference}}}}]}
    validate:
      cel:
        expressions:
        - expression: "has(object.metadata.annotations) && 'model.ai/model-card-url' in object.metadata.annotations"
          message: "AI inference Pods must include a model card URL annotation"
"#;

async fn start(dir: &Path) -> Server {
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    let cert_pem = ck.cert.pem();
    std::fs::write(dir.join("tls.crt"), &cert_pem).unwrap();
    std::fs::write(dir.join("tls.key"), ck.signing_key.serialize_pem()).unwrap();
    std::fs::write(dir.join("ns.yaml"), "ml: {purpose: ai-inference}\n").unwrap();
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_provenance-webhook"))
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--reload-seconds",
            "1",
            "--max-body-bytes",
            "65536",
        ])
        .arg("--policies")
        .arg(dir.join("policies"))
        .arg("--cert")
        .arg(dir.join("tls.crt"))
        .arg("--key")
        .arg(dir.join("tls.key"))
        .arg("--namespace-labels")
        .arg(dir.join("ns.yaml"))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let server = Server {
        child,
        base: format!("https://localhost:{port}"),
        client,
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

fn review(uid: &str, image: &str, annotations: Value) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "name": "llm", "namespace": "ml", "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:ml:deployer", "groups": ["system:serviceaccounts"]},
            "object": {
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "llm", "namespace": "ml", "annotations": annotations},
                "spec": {"containers": [{"name": "server", "image": image}]}
            },
            "oldObject": null, "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}
        }
    })
}

async fn post(s: &Server, path: &str, body: &Value) -> Value {
    let r = s
        .client
        .post(format!("{}{path}", s.base))
        .json(body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    r.json().await.unwrap()
}

#[tokio::test]
async fn webhook_over_https() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("policies")).unwrap();
    std::fs::write(dir.path().join("policies/enforce.yaml"), ENFORCE).unwrap();
    std::fs::write(dir.path().join("policies/audit.yaml"), AUDIT).unwrap();
    let s = start(dir.path()).await;

    assert_eq!(
        s.client
            .get(format!("{}/readyz", s.base))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // Denied by the enforced policy, with Kyverno's message; the uid is echoed.
    let out = post(
        &s,
        "/validate",
        &review("uid-1", "registry.example.com/ml/server:latest", json!({})),
    )
    .await;
    let resp = &out["response"];
    assert_eq!(resp["uid"], "uid-1");
    assert_eq!(resp["allowed"], false);
    assert_eq!(resp["status"]["code"], 403);
    let msg = resp["status"]["message"].as_str().unwrap();
    assert!(
        msg.contains("resource Pod/ml/llm was blocked due to the following policies"),
        "{msg}"
    );
    assert!(
        msg.contains("disallow-latest-tag:") && msg.contains("validate-image-tag:"),
        "{msg}"
    );
    // The Audit policy's failure is a warning, not a denial.
    let warnings = resp["warnings"].as_array().unwrap();
    assert!(
        warnings.iter().any(|w| w
            .as_str()
            .unwrap()
            .contains("require-model-card.model-card-url")),
        "{warnings:?}"
    );

    // Allowed, no warnings.
    let ok = post(
        &s,
        "/validate",
        &review(
            "uid-2",
            "registry.example.com/ml/server:1.0",
            json!({"model.ai/model-card-url": "https://models.example.com/card"}),
        ),
    )
    .await;
    assert_eq!(ok["response"]["allowed"], true, "{ok}");
    assert!(ok["response"].get("warnings").is_none(), "{ok}");

    // Mutation never blocks.
    let m = post(
        &s,
        "/mutate",
        &review("uid-3", "registry.example.com/ml/server:latest", json!({})),
    )
    .await;
    assert_eq!(m["response"]["allowed"], true);

    // A malformed body is a 400 (the API server then applies the webhook's failurePolicy).
    let bad = s
        .client
        .post(format!("{}/validate", s.base))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let body: Value = bad.json().await.unwrap();
    assert_eq!(body["code"], "webhook.body.malformed", "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("invalid AdmissionReview"),
        "{body}"
    );

    // An AdmissionReview nested 30,000 levels deep (under the body limit): a 400 from the
    // JSON parser's recursion limit, no stack overflow; the webhook keeps serving.
    let deep = format!(
        r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{{"uid":"uid-deep","object":{{"spec":{}{}}}}}}}"#,
        "[".repeat(30_000),
        "]".repeat(30_000)
    );
    let r = s
        .client
        .post(format!("{}/validate", s.base))
        .header("content-type", "application/json")
        .body(deep)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "webhook.body.malformed", "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("recursion limit exceeded"),
        "{body}"
    );

    // A real AdmissionReview over the configured body limit (64 KiB here): 413 with a JSON
    // message naming the limit; the webhook keeps serving.
    let big = review(
        "uid-big",
        "registry.example.com/ml/server:1.0",
        json!({"notes": "x".repeat(70_000)}),
    );
    let r = s
        .client
        .post(format!("{}/validate", s.base))
        .json(&big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "webhook.body.too_large", "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("65536 bytes"),
        "{body}"
    );
    // Just under the limit is decided as usual.
    let fits = post(
        &s,
        "/validate",
        &review(
            "uid-fits",
            "registry.example.com/ml/server:1.0",
            json!({"model.ai/model-card-url": "https://models.example.com/card", "notes": "x".repeat(60_000)}),
        ),
    )
    .await;
    assert_eq!(fits["response"]["allowed"], true, "{fits}");

    // Another AdmissionReview version, or not an AdmissionReview at all: 400, with the reason.
    for (field, value, code, says) in [
        (
            "apiVersion",
            json!("admission.k8s.io/v1beta1"),
            "webhook.review.unsupported_version",
            "admission.k8s.io/v1beta1",
        ),
        (
            "apiVersion",
            Value::Null,
            "webhook.review.unsupported_version",
            "(missing)",
        ),
        (
            "kind",
            json!("Pod"),
            "webhook.review.unsupported_kind",
            "expected AdmissionReview",
        ),
    ] {
        let mut r = review("uid-v", "registry.example.com/ml/server:1.0", json!({}));
        if value.is_null() {
            r.as_object_mut().unwrap().remove(field);
        } else {
            r[field] = value;
        }
        let resp = s
            .client
            .post(format!("{}/validate", s.base))
            .json(&r)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{field}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["code"], code, "{body}");
        assert!(body["message"].as_str().unwrap().contains(says), "{body}");
    }
    // A review without a request.object: 400 with the engine's reason.
    let mut r = review("uid-o", "registry.example.com/ml/server:1.0", json!({}));
    r["request"].as_object_mut().unwrap().remove("object");
    let resp = s
        .client
        .post(format!("{}/validate", s.base))
        .json(&r)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "webhook.review.invalid", "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("missing request.object"),
        "{body}"
    );

    // Hot reload: make the tag policy Audit; the same request is now allowed with a warning.
    std::fs::write(
        dir.path().join("policies/enforce.yaml"),
        ENFORCE.replace("Enforce", "Audit"),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = post(
            &s,
            "/validate",
            &review(
                "uid-4",
                "registry.example.com/ml/server:latest",
                json!({"model.ai/model-card-url": "https://models.example.com/card"}),
            ),
        )
        .await;
        if out["response"]["allowed"] == true {
            let w = out["response"]["warnings"].as_array().unwrap();
            assert!(
                w.iter().any(|x| x
                    .as_str()
                    .unwrap()
                    .contains("disallow-latest-tag.validate-image-tag")),
                "{w:?}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "policy change was not picked up");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A broken policy file keeps the policies in force.
    std::fs::write(dir.path().join("policies/enforce.yaml"), "kind: [unclosed").unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let out = post(
        &s,
        "/validate",
        &review(
            "uid-5",
            "registry.example.com/ml/server:latest",
            json!({"model.ai/model-card-url": "https://models.example.com/card"}),
        ),
    )
    .await;
    assert_eq!(out["response"]["allowed"], true);

    let metrics = s
        .client
        .get(format!("{}/metrics", s.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let counter = |name: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name).map(|v| v.trim().parse().unwrap()))
            .unwrap_or_else(|| panic!("{name} missing in {metrics}"))
    };
    // Denials: uid-1, plus the attempts of uid-4 made before the reload was picked up.
    assert!(counter("provenance_admissions_total{decision=\"denied\"}") >= 1);
    assert!(counter("provenance_admissions_total{decision=\"allowed\"}") >= 3);
    // Errors: malformed, too deep, oversized, two wrong versions, wrong kind, missing object.
    assert_eq!(
        counter("provenance_admissions_total{decision=\"error\"}"),
        7
    );
    assert!(
        metrics.contains("provenance_policy_reloads_total{result=\"ok\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("provenance_policy_reloads_total{result=\"failed\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("provenance_admission_duration_seconds_count"),
        "{metrics}"
    );
}
