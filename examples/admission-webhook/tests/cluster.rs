//! `--cluster-resources` over real HTTPS with real AdmissionReview bodies: `configMap` and
//! `apiCall` context entries answered from the files, a missing ConfigMap denied with its
//! code, the snapshot reloaded when the folder changes (after holding still), and a broken
//! snapshot keeping the last good one in force while `/readyz` fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;
use common::{Server, free_port};

const POLICIES: &str = r#"apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: team-allowed}
spec:
  validationFailureAction: Enforce
  background: false
  rules:
  - name: team-listed
    match: {any: [{resources: {kinds: [Pod]}}]}
    context:
    - name: teams
      configMap: {name: allowed-teams, namespace: "{{request.namespace}}"}
    validate:
      message: "team {{request.object.metadata.labels.team}} may not run here"
      deny:
        conditions:
          any:
          - key: "{{request.object.metadata.labels.team}}"
            operator: AnyNotIn
            value: "{{ split(teams.data.teams, ',') }}"
---
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: gpu-quota}
spec:
  validationFailureAction: Enforce
  background: false
  rules:
  - name: quota-set
    match: {any: [{resources: {kinds: [Pod], selector: {matchLabels: {gpu: "yes"}}}}]}
    context:
    - name: quotas
      apiCall:
        urlPath: "/apis/example.com/v1/namespaces/{{request.namespace}}/gpuquotas"
        jmesPath: "items[?spec.gpus > `0`] | length(@)"
    validate:
      message: "namespace {{request.namespace}} has no GPU quota"
      deny:
        conditions:
          any:
          - key: "{{quotas}}"
            operator: Equals
            value: 0
"#;

const CLUSTER: &str = r#"apiVersion: cli.kyverno.io/v1alpha1
kind: ClusterResource
metadata: {name: cluster}
spec:
  crds: [crds/gpuquota.yaml]
  resources:
  - apiVersion: v1
    kind: ConfigMap
    metadata: {name: allowed-teams, namespace: ml}
    data: {teams: "vision,nlp"}
  - apiVersion: example.com/v1
    kind: GpuQuota
    metadata: {name: default, namespace: ml}
    spec: {gpus: 4}
"#;

const CRD: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: gpuquotas.example.com}
spec:
  group: example.com
  names: {kind: GpuQuota, plural: gpuquotas}
  scope: Namespaced
"#;

/// A second namespace's ConfigMap, as a plain resource file.
const DEV: &str = r#"apiVersion: v1
kind: ConfigMap
metadata: {name: allowed-teams, namespace: dev}
data: {teams: vision}
"#;

async fn start(dir: &Path) -> Server {
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    let cert_pem = ck.cert.pem();
    std::fs::write(dir.join("tls.crt"), &cert_pem).unwrap();
    std::fs::write(dir.join("tls.key"), ck.signing_key.serialize_pem()).unwrap();
    std::fs::write(
        dir.join("webhook.yaml"),
        format!(
            "policies: [{}]\ncluster-resources: [{}]\nreload-seconds: 1\n",
            dir.join("policies").display(),
            dir.join("cluster").display()
        ),
    )
    .unwrap();
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_provenance-webhook"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--config")
        .arg(dir.join("webhook.yaml"))
        .arg("--cert")
        .arg(dir.join("tls.crt"))
        .arg("--key")
        .arg(dir.join("tls.key"))
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

fn review(uid: &str, ns: &str, labels: Value) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "name": "trainer", "namespace": ns, "operation": "CREATE",
            "userInfo": {"username": "alice", "groups": ["system:authenticated"]},
            "object": {
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "trainer", "namespace": ns, "labels": labels},
                "spec": {"containers": [{"name": "main", "image": "ghcr.io/example/train:1.0"}]}
            },
            "oldObject": null, "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}
        }
    })
}

async fn validate(s: &Server, uid: &str, ns: &str, labels: Value) -> Value {
    let r = s
        .client
        .post(format!("{}/validate", s.base))
        .json(&review(uid, ns, labels))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let out: Value = r.json().await.unwrap();
    assert_eq!(out["response"]["uid"], uid, "{out}");
    out["response"].clone()
}

fn message(r: &Value) -> &str {
    r["status"]["message"].as_str().unwrap_or_default()
}

fn codes(r: &Value) -> Vec<&str> {
    r["status"]["details"]["causes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["reason"].as_str())
        .collect()
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

/// Asks until `done` holds for the answer to a Pod in `ns` (the reload needs a period of
/// holding still, then one more), at most 20 s.
async fn until(s: &Server, ns: &str, labels: Value, done: impl Fn(&Value) -> bool) -> Value {
    let limit = Instant::now() + Duration::from_secs(20);
    let mut n = 0;
    loop {
        n += 1;
        let r = validate(s, &format!("wait-{n}"), ns, labels.clone()).await;
        if done(&r) {
            return r;
        }
        assert!(Instant::now() < limit, "no change: {r}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn cluster_resources_answer_context_entries_and_reload() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("policies")).unwrap();
    std::fs::create_dir_all(d.join("cluster/crds")).unwrap();
    std::fs::write(d.join("policies/policies.yaml"), POLICIES).unwrap();
    std::fs::write(d.join("cluster/cluster.yaml"), CLUSTER).unwrap();
    std::fs::write(d.join("cluster/crds/gpuquota.yaml"), CRD).unwrap();
    let s = start(d).await;
    assert_eq!(readyz(&s).await, 200);

    // The ConfigMap lists the team; the apiCall list finds a quota.
    let r = validate(&s, "ok-1", "ml", json!({"team": "vision", "gpu": "yes"})).await;
    assert_eq!(r["allowed"], true, "{r}");
    // A team the ConfigMap does not list.
    let r = validate(&s, "team-1", "ml", json!({"team": "robotics"})).await;
    assert_eq!(r["allowed"], false, "{r}");
    assert!(
        message(&r).contains("team robotics may not run here"),
        "{r}"
    );
    // No ConfigMap in the namespace: an error with its code, denied, never a pass.
    let r = validate(&s, "nocm-1", "dev", json!({"team": "vision"})).await;
    assert_eq!(r["allowed"], false, "{r}");
    assert!(codes(&r).contains(&"policy.context.not_found"), "{r}");
    assert!(
        message(&r).contains("ConfigMap dev/allowed-teams not found"),
        "{r}"
    );

    // A new file in the folder: the dev ConfigMap arrives with the reload.
    std::fs::write(d.join("cluster/dev.yaml"), DEV).unwrap();
    let r = until(&s, "dev", json!({"team": "vision"}), |r| {
        r["allowed"] == true
    })
    .await;
    assert_eq!(r["allowed"], true, "{r}");
    // The apiCall sees an empty list in dev: no quota, denied by the rule's own condition.
    let r = validate(&s, "gpu-1", "dev", json!({"team": "vision", "gpu": "yes"})).await;
    assert_eq!(r["allowed"], false, "{r}");
    assert!(
        message(&r).contains("namespace dev has no GPU quota"),
        "{r}"
    );

    // A broken file: the last good snapshot stays in force, /readyz fails.
    std::fs::write(d.join("cluster/dev.yaml"), "kind: [unclosed\n").unwrap();
    let limit = Instant::now() + Duration::from_secs(20);
    while readyz(&s).await == 200 {
        assert!(
            Instant::now() < limit,
            "the broken snapshot was not noticed"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let r = validate(&s, "kept-1", "dev", json!({"team": "vision"})).await;
    assert_eq!(
        r["allowed"], true,
        "the last good snapshot is in force: {r}"
    );
    // An empty file (being written) is not "no resources" either.
    std::fs::write(d.join("cluster/dev.yaml"), "").unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(readyz(&s).await, 503);
    let r = validate(&s, "kept-2", "dev", json!({"team": "vision"})).await;
    assert_eq!(r["allowed"], true, "{r}");

    // Fixed by removing the file: ready again, and the dev ConfigMap is gone.
    std::fs::remove_file(d.join("cluster/dev.yaml")).unwrap();
    let r = until(&s, "dev", json!({"team": "vision"}), |r| {
        r["allowed"] == false
    })
    .await;
    assert!(codes(&r).contains(&"policy.context.not_found"), "{r}");
    assert_eq!(readyz(&s).await, 200);
}

#[tokio::test]
async fn a_snapshot_that_cannot_load_at_start_stops_the_webhook() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("policies")).unwrap();
    std::fs::create_dir_all(d.join("cluster")).unwrap();
    std::fs::write(d.join("policies/policies.yaml"), POLICIES).unwrap();
    std::fs::write(d.join("cluster/broken.yaml"), "kind: [unclosed\n").unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_provenance-webhook"))
        .args(["--dangerous-plain-http", "--listen"])
        .arg(format!("127.0.0.1:{}", free_port()))
        .arg("--policies")
        .arg(d.join("policies"))
        .arg("--cluster-resources")
        .arg(d.join("cluster"))
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success());
}
