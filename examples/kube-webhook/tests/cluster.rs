//! The built webhook reading cluster data for `configMap` and `apiCall` context entries, over
//! HTTPS with real AdmissionReview bodies.
//!
//! No API server can run here: a loopback HTTP server in this test stands in for it. It
//! answers the few paths the webhook uses in the shapes the Kubernetes API server answers
//! them: lists and watches of Namespaces, RoleBindings, ClusterRoleBindings and ConfigMaps
//! (`<Kind>List` with a `resourceVersion`, then a watch stream of `{"type", "object"}` lines),
//! and GETs of Namespaces for `apiCall` (an object, a 404 or 500 `Status`, or no answer at
//! all). The webhook reaches it through a kubeconfig, as it reaches a real cluster.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::convert::Infallible;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// What the stand-in API server holds.
struct Api {
    /// GETs of single Namespaces (`apiCall`).
    namespace_gets: AtomicUsize,
    /// Watch events for ConfigMaps, one JSON line each.
    config_map_events: tokio::sync::broadcast::Sender<String>,
}

fn config_map(ns: &str, teams: &str, rv: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "allowed-teams", "namespace": ns, "resourceVersion": rv,
                     "uid": format!("cm-{ns}")},
        "data": {"teams": teams}})
}

fn namespace(name: &str, gpu: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": name, "resourceVersion": "1", "uid": format!("ns-{name}"),
                     "labels": {"kubernetes.io/metadata.name": name, "gpu-allowed": gpu}},
        "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}})
}

fn list(kind: &str, api_version: &str, items: Vec<Value>) -> Value {
    json!({"apiVersion": api_version, "kind": format!("{kind}List"),
        "metadata": {"resourceVersion": "10"}, "items": items})
}

fn status(code: u16, reason: &str) -> Response {
    let body = json!({"apiVersion": "v1", "kind": "Status", "status": "Failure",
        "reason": reason, "code": code});
    let status = StatusCode::from_u16(code).unwrap();
    (
        status,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn ok(v: Value) -> Response {
    ([("content-type", "application/json")], v.to_string()).into_response()
}

/// A watch that stays open and sends nothing.
fn quiet_watch() -> Response {
    let stream = futures::stream::pending::<Result<Bytes, Infallible>>();
    (
        [("content-type", "application/json")],
        Body::from_stream(stream),
    )
        .into_response()
}

async fn answer(State(api): State<Arc<Api>>, uri: Uri) -> Response {
    let path = uri.path();
    let watch = uri.query().is_some_and(|q| q.contains("watch=true"));
    match path {
        "/api/v1/configmaps" if watch => {
            let rx = api.config_map_events.subscribe();
            let stream = futures::stream::unfold(rx, |mut rx| async move {
                let line = rx.recv().await.ok()?;
                Some((Ok::<_, Infallible>(Bytes::from(line + "\n")), rx))
            });
            (
                [("content-type", "application/json")],
                Body::from_stream(stream),
            )
                .into_response()
        }
        _ if watch => quiet_watch(),
        "/api/v1/configmaps" => ok(list(
            "ConfigMap",
            "v1",
            vec![
                config_map("ml", "vision", "5"),
                config_map("dev", "vision", "6"),
                config_map("slow", "vision", "7"),
                config_map("broken", "vision", "8"),
            ],
        )),
        "/api/v1/namespaces" => ok(list(
            "Namespace",
            "v1",
            ["ml", "dev", "nocm", "slow", "broken"]
                .iter()
                .map(|n| namespace(n, "false"))
                .collect(),
        )),
        "/apis/rbac.authorization.k8s.io/v1/rolebindings" => {
            ok(list("RoleBinding", "rbac.authorization.k8s.io/v1", vec![]))
        }
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings" => ok(list(
            "ClusterRoleBinding",
            "rbac.authorization.k8s.io/v1",
            vec![],
        )),
        p if p.starts_with("/api/v1/namespaces/") => {
            api.namespace_gets.fetch_add(1, Ordering::SeqCst);
            match &p["/api/v1/namespaces/".len()..] {
                "ml" => ok(namespace("ml", "true")),
                "dev" => ok(namespace("dev", "false")),
                "broken" => status(500, "InternalError"),
                "slow" => {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    ok(namespace("slow", "true"))
                }
                _ => status(404, "NotFound"),
            }
        }
        _ => status(404, "NotFound"),
    }
}

/// Starts the stand-in API server on loopback; its URL.
async fn api_server(api: Arc<Api>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = axum::Router::new().fallback(answer).with_state(api);
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

const TEAMS: &str = r#"
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: team-allowed
spec:
  validationFailureAction: Enforce
  background: false
  rules:
  - name: team-listed
    match:
      any:
      - resources:
          kinds: [Pod]
    context:
    - name: teams
      configMap:
        name: allowed-teams
        namespace: "{{request.namespace}}"
    validate:
      message: "team {{request.object.metadata.labels.team}} may not run here"
      deny:
        conditions:
          any:
          - key: "{{request.object.metadata.labels.team}}"
            operator: AnyNotIn
            value: "{{ split(teams.data.teams, ',') }}"
"#;

const GPU: &str = r#"
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: gpu-namespaces
spec:
  validationFailureAction: Enforce
  background: false
  rules:
  - name: namespace-allows-gpus
    match:
      any:
      - resources:
          kinds: [Pod]
          selector:
            matchLabels:
              gpu: "yes"
    context:
    - name: gpuAllowed
      apiCall:
        urlPath: "/api/v1/namespaces/{{request.namespace}}"
        jmesPath: "metadata.labels.\"gpu-allowed\" || 'false'"
    validate:
      message: "namespace {{request.namespace}} does not allow GPU Pods"
      deny:
        conditions:
          any:
          - key: "{{gpuAllowed}}"
            operator: NotEquals
            value: "true"
"#;

/// The running webhook, killed on drop.
struct Webhook {
    child: Child,
    client: reqwest::Client,
    base: String,
}

impl Drop for Webhook {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Webhook {
    /// The answer to a Pod CREATE in `ns` with `labels`, checked to be an AdmissionReview.
    async fn pod(&self, uid: &str, ns: &str, labels: Value) -> Value {
        let review = json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {
                "uid": uid,
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
                "requestResource": {"group": "", "version": "v1", "resource": "pods"},
                "name": "trainer", "namespace": ns, "operation": "CREATE",
                "userInfo": {"username": "alice", "groups": ["system:authenticated"]},
                "object": {"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": "trainer", "namespace": ns, "labels": labels},
                    "spec": {"containers": [{"name": "main", "image": "ghcr.io/example/train@sha256:0000000000000000000000000000000000000000000000000000000000000000"}]}},
                "oldObject": null, "dryRun": false,
                "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}
            }
        });
        let r = self
            .client
            .post(format!("{}/validate", self.base))
            .header("content-type", "application/json")
            .body(review.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let out: Value = r.json().await.unwrap();
        assert_eq!(out["kind"], "AdmissionReview", "{out}");
        assert_eq!(out["response"]["uid"], uid, "{out}");
        out["response"].clone()
    }
}

/// Starts the webhook over the two policies with `extra` arguments and `kubeconfig` (none:
/// `--no-cluster`); waits until it answers.
async fn webhook(dir: &Path, kubeconfig: Option<&Path>, extra: &[&str]) -> Webhook {
    let policies = dir.join("policies");
    std::fs::create_dir_all(&policies).unwrap();
    std::fs::write(policies.join("teams.yaml"), TEAMS).unwrap();
    std::fs::write(policies.join("gpu.yaml"), GPU).unwrap();
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    std::fs::write(dir.join("tls.crt"), ck.cert.pem()).unwrap();
    std::fs::write(dir.join("tls.key"), ck.signing_key.serialize_pem()).unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let layout = concat!(env!("CARGO_MANIFEST_DIR"), "/../ai-workloads/registry");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_provenance-kube-webhook"));
    cmd.args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--policies", policies.to_str().unwrap()])
        .args(["--registry-layout", layout])
        .args(["--trust-root", &format!("{layout}/trusted_root.json")])
        .args(["--cert", dir.join("tls.crt").to_str().unwrap()])
        .args(["--key", dir.join("tls.key").to_str().unwrap()])
        .args(extra)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .stderr(Stdio::piped());
    match kubeconfig {
        Some(k) => cmd.env("KUBECONFIG", k),
        None => cmd.arg("--no-cluster"),
    };
    let mut child = cmd.spawn().unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ck.cert.pem().as_bytes()).unwrap())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let base = format!("https://localhost:{port}");
    let until = Instant::now() + Duration::from_secs(60);
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
        assert!(Instant::now() < until, "the webhook did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Webhook {
        child,
        client,
        base,
    }
}

fn message(response: &Value) -> String {
    response["status"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// The machine codes of the answer's status causes.
fn codes(response: &Value) -> Vec<String> {
    response["status"]["details"]["causes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["reason"].as_str().map(str::to_owned))
        .collect()
}

fn labels(team: &str, gpu: bool) -> Value {
    if gpu {
        json!({"team": team, "gpu": "yes"})
    } else {
        json!({"team": team})
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_maps_and_api_calls_come_from_the_cluster() {
    let (events, _) = tokio::sync::broadcast::channel(16);
    let api = Arc::new(Api {
        namespace_gets: AtomicUsize::new(0),
        config_map_events: events,
    });
    let url = api_server(api.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: stand-in\n  cluster:\n    server: {url}\n\
             users:\n- name: webhook\n  user: {{}}\ncontexts:\n- name: stand-in\n  context:\n    \
             cluster: stand-in\n    user: webhook\n    namespace: default\ncurrent-context: stand-in\n"
        ),
    )
    .unwrap();
    let hook = webhook(dir.path(), Some(&kubeconfig), &["--deadline-ms", "2000"]).await;

    // The ConfigMap lists the team, the namespace (read by apiCall) allows GPUs.
    let r = hook.pod("ok-1", "ml", labels("vision", true)).await;
    assert_eq!(r["allowed"], true, "{r}");
    assert!(api.namespace_gets.load(Ordering::SeqCst) >= 1);

    // A team the ConfigMap does not list.
    let r = hook.pod("team-1", "ml", labels("robotics", false)).await;
    assert_eq!(r["allowed"], false, "{r}");
    assert!(
        message(&r).contains("team robotics may not run here"),
        "{r}"
    );

    // The namespace's labels, read by apiCall, forbid GPU Pods.
    let r = hook.pod("gpu-1", "dev", labels("vision", true)).await;
    assert_eq!(r["allowed"], false, "{r}");
    assert!(
        message(&r).contains("namespace dev does not allow GPU Pods"),
        "{r}"
    );

    // No ConfigMap in the namespace: an error, so denied, never a pass.
    let r = hook.pod("nocm-1", "nocm", labels("vision", false)).await;
    assert_eq!(r["allowed"], false, "{r}");
    assert!(
        message(&r).contains("ConfigMap nocm/allowed-teams not found"),
        "{r}"
    );
    assert!(
        codes(&r).contains(&"policy.context.not_found".to_owned()),
        "{r}"
    );

    // The API server fails the GET: an error with the status, denied.
    let r = hook.pod("broken-1", "broken", labels("vision", true)).await;
    assert_eq!(r["allowed"], false, "{r}");
    assert!(message(&r).contains("HTTP 500"), "{r}");
    assert!(
        codes(&r).contains(&"policy.context.http_status".to_owned()),
        "{r}"
    );

    // The API server does not answer: denied with the reason before the deadline.
    let started = Instant::now();
    let r = hook.pod("slow-1", "slow", labels("vision", true)).await;
    assert_eq!(r["allowed"], false, "{r}");
    assert!(message(&r).contains("no answer from the API server"), "{r}");
    assert!(
        codes(&r).contains(&"policy.context.unavailable".to_owned()),
        "{r}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    // The ConfigMap changes in the cluster: the watch brings it to the cache.
    let modified = json!({"type": "MODIFIED", "object": config_map("ml", "vision,robotics", "20")});
    let until = Instant::now() + Duration::from_secs(15);
    let mut n = 0;
    loop {
        let _ = api.config_map_events.send(modified.to_string());
        n += 1;
        let r = hook
            .pod(&format!("team-2-{n}"), "ml", labels("robotics", false))
            .await;
        if r["allowed"] == true {
            break;
        }
        assert!(Instant::now() < until, "the change never arrived: {r}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn without_a_cluster_such_rules_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let hook = webhook(dir.path(), None, &[]).await;
    let r = hook.pod("offline-1", "ml", labels("vision", true)).await;
    assert_eq!(r["allowed"], false, "{r}");
    let text = message(&r);
    assert!(text.contains("team-allowed"), "{r}");
    assert!(text.contains("gpu-namespaces"), "{r}");
    assert_eq!(
        codes(&r),
        vec![
            "policy.unsupported".to_owned(),
            "policy.unsupported".to_owned()
        ],
        "{r}"
    );
}
