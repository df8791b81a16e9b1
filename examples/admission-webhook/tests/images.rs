//! The webhook verifying images end to end: the AI-workload policies, evidence from the
//! example OCI layout (signed images, attestations, trust root), real AdmissionReviews over
//! HTTPS; /validate admits the signed inference Pod and denies the unsigned one, and /mutate
//! pins every verified image to its digest with a JSONPatch that applies.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn example() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../ai-workloads"))
}

fn pod(name: &str) -> Value {
    let text = std::fs::read_to_string(example().join("workloads/inference-pods.yaml")).unwrap();
    provenance_policy::yaml::load_documents(&text, "inference-pods.yaml")
        .unwrap()
        .into_iter()
        .find(|d| d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in the example"))
}

fn review(uid: &str, object: &Value) -> Value {
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": uid, "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "operation": "CREATE", "namespace": object["metadata"]["namespace"],
            "name": object["metadata"]["name"], "userInfo": {"username": "alice"},
            "object": object}})
}

/// Applies an RFC 6902 patch made of `replace` operations (all /mutate emits).
fn apply_patch(doc: &mut Value, patch: &[Value]) {
    for op in patch {
        assert_eq!(op["op"], "replace", "{op}");
        let target = doc
            .pointer_mut(op["path"].as_str().unwrap())
            .expect("patch path exists");
        *target = op["value"].clone();
    }
}

/// The webhook over the example's policies, layout and trust root, with `extra` arguments;
/// waits until it is ready. Returns the server, a client trusting its certificate and its
/// base URL.
async fn start(dir: &Path, extra: &[&str]) -> (Server, reqwest::Client, String) {
    let ex = example();
    if !ex.join("registry/index.json").is_file() {
        panic!("examples/ai-workloads/registry is missing");
    }
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    std::fs::write(dir.join("tls.crt"), ck.cert.pem()).unwrap();
    std::fs::write(dir.join("tls.key"), ck.signing_key.serialize_pem()).unwrap();
    std::fs::write(dir.join("ns.yaml"), "ml-serving: {purpose: ai-inference}\n").unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let p = |x: &Path| x.to_str().unwrap().to_owned();
    // A test that changes the trust root under the webhook puts its own copy in `dir`.
    let root = match dir.join("trusted_root.json") {
        own if own.is_file() => own,
        _ => ex.join("registry/trusted_root.json"),
    };
    let server = Server(
        Command::new(env!("CARGO_BIN_EXE_provenance-webhook"))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--policies", &p(&ex.join("policies"))])
            .args(["--registry-layout", &p(&ex.join("registry"))])
            .args(["--trust-root", &p(&root)])
            .args(["--namespace-labels", &p(&dir.join("ns.yaml"))])
            .args([
                "--cert",
                &p(&dir.join("tls.crt")),
                "--key",
                &p(&dir.join("tls.key")),
            ])
            .args(extra)
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
    while client
        .get(format!("{base}/readyz"))
        .send()
        .await
        .map(|r| r.status().is_success())
        .ok()
        != Some(true)
    {
        assert!(Instant::now() < deadline, "webhook did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (server, client, base)
}

#[tokio::test]
async fn verifies_images_from_an_oci_layout() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, client, base) = start(dir.path(), &[]).await;
    let post = |path: &'static str, body: Value| {
        let (client, base) = (client.clone(), base.clone());
        async move {
            let (status, out) = post_json(&client, &base, path, &body).await;
            assert_eq!(status, 200, "{out}");
            out
        }
    };

    // The signed inference Pod by tag: /validate denies it (the tag could move after
    // admission: "missing digest"), and /mutate pins its images to verified digests.
    let good = pod("llm-inference");
    let out = post("/validate", review("v-1", &good)).await;
    assert_eq!(out["response"]["allowed"], false, "{out}");
    assert!(
        out["response"]["status"]["message"]
            .as_str()
            .unwrap()
            .contains("missing digest"),
        "{out}"
    );
    let m = post("/mutate", review("m-1", &good)).await;
    assert_eq!(m["response"]["allowed"], true);
    assert_eq!(m["response"]["patchType"], "JSONPatch", "{m}");
    let patch: Vec<Value> = serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(m["response"]["patch"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap();
    let mut pinned = good.clone();
    apply_patch(&mut pinned, &patch);
    for c in pinned["spec"]["containers"].as_array().unwrap() {
        assert!(c["image"].as_str().unwrap().contains("@sha256:"), "{c}");
    }
    // The pinned Pod is admitted too (the digests are the verified ones).
    let again = post("/validate", review("v-2", &pinned)).await;
    assert_eq!(again["response"]["allowed"], true, "{again}");

    // The unsigned image is denied, with the reason.
    let bad = post("/validate", review("v-3", &pod("inference-unsigned"))).await;
    assert_eq!(bad["response"]["allowed"], false);
    let msg = bad["response"]["status"]["message"].as_str().unwrap();
    assert!(
        msg.contains("verify-ai-images") && msg.contains("no signatures found"),
        "{msg}"
    );
}

/// POSTs `body` as JSON to `path`; the status and the JSON answer.
async fn post_json(client: &reqwest::Client, base: &str, path: &str, body: &Value) -> (u16, Value) {
    let r = client
        .post(format!("{base}{path}"))
        .json(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json::<Value>().await.unwrap())
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

/// The status of `/readyz`.
async fn ready(client: &reqwest::Client, base: &str) -> u16 {
    client
        .get(format!("{base}/readyz"))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_changed_trust_root_is_in_force_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("trusted_root.json");
    let original = std::fs::read(example().join("registry/trusted_root.json")).unwrap();
    std::fs::write(&root, &original).unwrap();
    let (_server, client, base) = start(dir.path(), &["--reload-seconds", "1"]).await;
    let decide = |uid: String, object: Value| {
        let (client, base) = (client.clone(), base.clone());
        async move {
            let (status, out) =
                post_json(&client, &base, "/validate", &review(&uid, &object)).await;
            assert_eq!(status, 200, "{out}");
            out["response"].clone()
        }
    };
    // Waits (at most 15 s: a change is loaded once it held still for a reload period) until
    // `done` holds for a fresh answer about `object`; returns that answer.
    let until = |object: Value, done: fn(&Value) -> bool| async move {
        let deadline = Instant::now() + Duration::from_secs(15);
        for n in 0.. {
            let r = decide(format!("u-{n}"), object.clone()).await;
            if done(&r) {
                return r;
            }
            assert!(Instant::now() < deadline, "never changed: {r}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        unreachable!()
    };

    // The Pod pinned to its verified digests is admitted under the example's trust root.
    let (_, m) = post_json(
        &client,
        &base,
        "/mutate",
        &review("m-1", &pod("llm-inference")),
    )
    .await;
    let patch: Vec<Value> = serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(m["response"]["patch"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap();
    let mut pinned = pod("llm-inference");
    apply_patch(&mut pinned, &patch);
    assert_eq!(decide("v-1".into(), pinned.clone()).await["allowed"], true);

    // The trust root is replaced by one that does not hold the example's CA: the same Pod is
    // denied (the check passed under the old root is not reused), without a restart.
    std::fs::write(&root, provenance_core::verify::PUBLIC_GOOD_TRUSTED_ROOT).unwrap();
    let denied = until(pinned.clone(), |r| r["allowed"] == false).await;
    let msg = denied["status"]["message"].as_str().unwrap();
    assert!(msg.contains("verify-ai-images"), "{msg}");
    assert_eq!(
        metric(
            &client,
            &base,
            "provenance_trust_root_reloads_total{result=\"ok\"}"
        )
        .await,
        1
    );
    assert_eq!(ready(&client, &base).await, 200);

    // A broken file: the last good root stays in force (still denied) and /readyz fails.
    std::fs::write(&root, b"{\"mediaType\": ").unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while ready(&client, &base).await != 503 {
        assert!(Instant::now() < deadline, "/readyz never failed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        metric(
            &client,
            &base,
            "provenance_trust_root_reloads_total{result=\"failed\"}"
        )
        .await,
        1
    );
    assert_eq!(decide("v-2".into(), pinned.clone()).await["allowed"], false);

    // The original back: admitted again, and ready.
    std::fs::write(&root, &original).unwrap();
    until(pinned, |r| r["allowed"] == true).await;
    assert_eq!(ready(&client, &base).await, 200);
}

#[tokio::test]
async fn preverify_warms_the_caches_and_recently_used_evidence_is_refreshed_ahead() {
    let dir = tempfile::tempdir().unwrap();
    // Evidence lives 6 s: used again after 4.5 s, it is refreshed in the background.
    let (_server, client, base) = start(dir.path(), &["--evidence-ttl-seconds", "6"]).await;
    let post = |path: &'static str, body: Value| {
        let (client, base) = (client.clone(), base.clone());
        async move { post_json(&client, &base, path, &body).await }
    };
    let (hits, misses, refreshes) = (
        "provenance_cache_hits_total",
        "provenance_cache_misses_total",
        "provenance_cache_refreshes_total",
    );

    // A CD pipeline pre-verifies the workload it is about to apply.
    let good = pod("llm-inference");
    let warmed = Instant::now();
    let (status, out) = post("/preverify", json!({"object": good})).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["verified"], true, "{out}");
    assert!(out["patches"].as_u64().unwrap() > 0, "{out}");
    assert!(
        out["results"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["policy"] == "verify-ai-images" && r["status"] == "pass"),
        "{out}"
    );
    let fetched = metric(&client, &base, misses).await;
    assert!(fetched > 0);
    assert_eq!(metric(&client, &base, hits).await, 0);
    assert_eq!(
        metric(&client, &base, "provenance_preverify_total").await,
        1
    );

    // The API server's request is answered from the caches: no retrieval.
    let (_, m) = post("/mutate", review("m-1", &good)).await;
    assert_eq!(m["response"]["allowed"], true, "{m}");
    assert_eq!(m["response"]["patchType"], "JSONPatch", "{m}");
    assert_eq!(metric(&client, &base, misses).await, fetched);
    assert!(metric(&client, &base, hits).await >= fetched);

    // An unsigned image pre-verifies as not verified, with the reason and its code.
    let (status, out) = post(
        "/preverify",
        json!({"images": [good["spec"]["containers"][0]["image"].as_str().unwrap().replace("llm-server", "unsigned")],
               "namespace": "ml-serving"}),
    )
    .await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["verified"], false, "{out}");

    // Used again after three quarters of its lifetime: answered from the cache, and
    // retrieved anew in the background.
    tokio::time::sleep(Duration::from_millis(5_000).saturating_sub(warmed.elapsed())).await;
    let before = metric(&client, &base, misses).await;
    let (_, m) = post("/mutate", review("m-2", &good)).await;
    assert_eq!(m["response"]["allowed"], true, "{m}");
    let deadline = Instant::now() + Duration::from_secs(2);
    while metric(&client, &base, refreshes).await < fetched {
        assert!(Instant::now() < deadline, "no refresh ahead of expiry");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Past the first retrieval's expiry, the refreshed evidence answers: still no miss.
    tokio::time::sleep(Duration::from_millis(7_500).saturating_sub(warmed.elapsed())).await;
    let (_, m) = post("/mutate", review("m-3", &good)).await;
    assert_eq!(m["response"]["allowed"], true, "{m}");
    assert_eq!(metric(&client, &base, misses).await, before);

    // Bodies that name nothing to verify are refused with a code.
    for body in [
        json!({}),
        json!({"images": []}),
        json!({"images": [7]}),
        json!({"object": "Pod"}),
        json!({"images": ["a"], "namespace": 3}),
    ] {
        let (status, out) = post("/preverify", body.clone()).await;
        assert_eq!(status, 400, "{body}: {out}");
        assert_eq!(out["code"], "webhook.preverify.malformed", "{body}: {out}");
    }
}

/// The `provenance` CLI beside this test's webhook binary (`cargo test --workspace` builds
/// both into one profile directory); built with cargo when it is not there.
fn provenance_cli() -> PathBuf {
    let webhook = PathBuf::from(env!("CARGO_BIN_EXE_provenance-webhook"));
    let exe = webhook.with_file_name("provenance");
    if !exe.exists() {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut build = Command::new(cargo);
        build.args(["build", "-p", "provenance-cli", "--bin", "provenance"]);
        if webhook.parent().is_some_and(|d| d.ends_with("release")) {
            build.arg("--release");
        }
        assert!(build.status().unwrap().success(), "building the CLI failed");
    }
    exe
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_preverifies_manifests_and_images_through_the_webhook() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, client, base) = start(dir.path(), &[]).await;
    let good = pod("llm-inference");
    std::fs::write(
        dir.path().join("app.yaml"),
        serde_json::to_string(&good).unwrap(),
    )
    .unwrap();
    let cli = |args: &[&str]| {
        let out = Command::new(provenance_cli())
            .arg("preverify")
            .args(["--webhook", &base])
            .args(args)
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let ca = dir.path().join("tls.crt");
    let ca = ca.to_str().unwrap();

    // The signed workload: verified (exit 0), and the webhook's caches now hold its evidence.
    let manifest = dir.path().join("app.yaml");
    let (code, out, err) = cli(&["--ca-cert", ca, "-f", manifest.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("Pod/llm-inference: verified"), "{out}");
    assert!(out.contains("pass   verify-ai-images/"), "{out}");
    let misses = metric(&client, &base, "provenance_cache_misses_total").await;
    assert!(misses > 0);
    let (_, m) = post_json(&client, &base, "/mutate", &review("cli-1", &good)).await;
    assert_eq!(m["response"]["allowed"], true, "{m}");
    assert_eq!(
        metric(&client, &base, "provenance_cache_misses_total").await,
        misses,
        "the admission after preverify fetched evidence again"
    );

    // An unsigned image: not verified (exit 1), with the reason and its code.
    let unsigned = good["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap()
        .replace("llm-server", "unsigned");
    let (code, out, err) = cli(&[
        "--ca-cert",
        ca,
        "--image",
        &unsigned,
        "--namespace",
        "ml-serving",
    ]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(out.contains("NOT verified"), "{out}");
    assert!(out.contains("policy.verify_images"), "{out}");

    // JSON output carries the webhook's answer.
    let (code, out, _) = cli(&[
        "--ca-cert",
        ca,
        "-f",
        manifest.to_str().unwrap(),
        "-o",
        "json",
    ]);
    assert_eq!(code, Some(0));
    let line: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(line["answer"]["verified"], true, "{line}");

    // A webhook whose certificate is not trusted is not asked (exit 3), nothing to verify and
    // plain HTTP are usage errors (exit 2).
    let (code, _, err) = cli(&["--image", &unsigned]);
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("cli.webhook.unreachable"), "{err}");
    let (code, _, err) = cli(&["--ca-cert", ca]);
    assert_eq!(code, Some(2), "{err}");
    let out = Command::new(provenance_cli())
        .args([
            "preverify",
            "--webhook",
            "http://localhost:1",
            "--image",
            "x",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// A Pod that declares a model volume, as a platform team writes it.
fn model_pod(extra_init: Option<Value>, server_read_only: bool) -> Value {
    let mut pod = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "llm-verified", "namespace": "ml-serving",
            "labels": {"model.ai/verify": "true"},
            "annotations": {"model.ai/model-volume": "weights", "model.ai/model-path": "llama",
                "model.ai/model-card-url": "https://models.example.com/llama/card"}},
        "spec": {"containers": [{"name": "server", "image": "vllm/vllm-openai:0.6.0",
                "volumeMounts": [{"name": "weights", "mountPath": "/models",
                    "readOnly": server_read_only}]}],
            "volumes": [{"name": "weights",
                "persistentVolumeClaim": {"claimName": "llama-weights", "readOnly": true}}]}});
    if let Some(init) = extra_init {
        pod["spec"]["initContainers"] = json!([init]);
    }
    pod
}

/// Applies any RFC 6902 patch /mutate returns (adds and replaces).
fn apply_json_patch(doc: &Value, patch: &[Value]) -> Value {
    provenance_policy::kyverno::mutate::json_patch::apply(doc, patch, "patch").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_model_verifier_is_injected_at_mutate_and_required_at_validate() {
    let dir = tempfile::tempdir().unwrap();
    let injection = example().join("policies-model-verifier");
    let (_server, client, base) =
        start(dir.path(), &["--policies", injection.to_str().unwrap()]).await;
    let decode = |m: &Value| -> Vec<Value> {
        let b64 = m["response"]["patch"].as_str().unwrap_or("W10=");
        serde_json::from_slice(
            &base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap(),
        )
        .unwrap()
    };
    let mutate_then_validate = |pod: Value, uid: &'static str| {
        let (client, base) = (client.clone(), base.clone());
        async move {
            let (_, m) = post_json(&client, &base, "/mutate", &review(uid, &pod)).await;
            assert_eq!(m["response"]["allowed"], true, "{m}");
            let patched = apply_json_patch(&pod, &decode(&m));
            let (_, v) = post_json(&client, &base, "/validate", &review(uid, &patched)).await;
            (patched, v)
        }
    };

    // The Pod as written: /mutate adds the verifier as the last init container on the
    // declared volume, read-only, with the signing key; /validate then admits it.
    let (patched, v) = mutate_then_validate(model_pod(None, true), "mv-1").await;
    let inits = patched["spec"]["initContainers"].as_array().unwrap();
    let verifier = inits.last().unwrap();
    assert_eq!(verifier["name"], "verify-model", "{patched}");
    assert_eq!(
        verifier["image"],
        "ghcr.io/provenance-rs/model-verifier:0.1.0"
    );
    assert!(
        verifier["env"]
            .as_array()
            .unwrap()
            .contains(&json!({"name": "MODEL_PATH", "value": "/models/llama"})),
        "{verifier}"
    );
    assert!(
        verifier["volumeMounts"]
            .as_array()
            .unwrap()
            .contains(&json!({"name": "weights", "mountPath": "/models", "readOnly": true})),
        "{verifier}"
    );
    assert!(
        patched["spec"]["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["name"] == "model-signing-key"),
        "{patched}"
    );
    assert_eq!(v["response"]["allowed"], true, "{v}");

    // A Pod author's own "verify-model" that does nothing: the mutation puts the project's
    // image and entrypoint back, and the result is admitted only as the real verifier.
    let fake = json!({"name": "verify-model", "image": "busybox", "command": ["true"]});
    let (patched, v) = mutate_then_validate(model_pod(Some(fake), true), "mv-2").await;
    let verifier = &patched["spec"]["initContainers"][0];
    assert_eq!(
        verifier["command"],
        json!(["/usr/local/bin/model-verifier"])
    );
    assert_eq!(
        verifier["image"],
        "ghcr.io/provenance-rs/model-verifier:0.1.0"
    );
    assert_eq!(v["response"]["allowed"], true, "{v}");

    // Sent to /validate without the mutation (or after another webhook removed it): denied.
    let (_, v) = post_json(
        &client,
        &base,
        "/validate",
        &review("mv-3", &model_pod(None, true)),
    )
    .await;
    assert_eq!(v["response"]["allowed"], false, "{v}");
    assert!(
        v["response"]["status"]["message"]
            .as_str()
            .unwrap()
            .contains("the model verifier must be the last init container"),
        "{v}"
    );

    // A server that mounts the model read-write could change it after the check: denied even
    // with the verifier injected.
    let (_, v) = mutate_then_validate(model_pod(None, false), "mv-4").await;
    assert_eq!(v["response"]["allowed"], false, "{v}");
    assert!(
        v["response"]["status"]["message"]
            .as_str()
            .unwrap()
            .contains("every container must mount the model volume read-only"),
        "{v}"
    );
}
