//! `audit-scan` on `fixtures/cluster.json` (what `kubectl get namespaces,pods -A -o json`
//! prints for a cluster running the AI workloads of `examples/ai-workloads`) and through
//! kube-rs against a loopback API server serving the same objects: the reports' contents,
//! Kyverno's background-mode policy exclusions, and the exit codes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use predicates::str::contains;
use serde_json::{Value, json};

fn here() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixture() -> PathBuf {
    here().join("fixtures/cluster.json")
}

fn ai() -> PathBuf {
    here().join("../ai-workloads")
}

fn scan() -> Command {
    let mut c = Command::cargo_bin("audit-scan").unwrap();
    c.arg("--policy")
        .arg(ai().join("policies"))
        .arg("--registry-layout")
        .arg(ai().join("registry"))
        .arg("--trust-root")
        .arg(ai().join("registry/trusted_root.json"))
        .env_remove("KUBECONFIG")
        .env_remove("KUBERNETES_SERVICE_HOST");
    c
}

/// (namespace, pod, policy, rule) -> (result, message) over every report.
type Results = BTreeMap<(String, String, String, String), (String, String)>;

fn results(reports: &Value) -> Results {
    let mut out = BTreeMap::new();
    for r in reports.as_array().unwrap() {
        assert_eq!(r["apiVersion"], "wgpolicyk8s.io/v1alpha2");
        for x in r["results"].as_array().unwrap() {
            let res = &x["resources"][0];
            let key = (
                res["namespace"].as_str().unwrap().to_owned(),
                res["name"].as_str().unwrap().to_owned(),
                x["policy"].as_str().unwrap().to_owned(),
                x["rule"].as_str().unwrap().to_owned(),
            );
            let prev = out.insert(
                key.clone(),
                (
                    x["result"].as_str().unwrap().to_owned(),
                    x["message"].as_str().unwrap_or_default().to_owned(),
                ),
            );
            assert!(prev.is_none(), "two results for {key:?}");
        }
    }
    out
}

fn json_stdout(c: &mut Command) -> Value {
    let out = c.assert().code(0).get_output().stdout.clone();
    serde_json::from_slice(&out).unwrap_or_else(|e| {
        panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out));
    })
}

/// Every result the fixture must produce: (namespace, pod, policy, rule, result, message part).
const EXPECTED: &[(&str, &str, &str, &str, &str, &str)] = &[
    (
        "gpu-batch",
        "gpu-ok",
        "verify-gpu-image-sbom",
        "require-sbom-attestation",
        "pass",
        "verified registry.example.com/gpu/cuda-app:1.0",
    ),
    (
        "gpu-batch",
        "gpu-wrong-key",
        "verify-gpu-image-sbom",
        "require-sbom-attestation",
        "fail",
        "registry.example.com/gpu/wrong-key:1.0",
    ),
    (
        "ml-serving",
        "llm-inference",
        "verify-ai-images",
        "verify-model-server-signature",
        "pass",
        "verified registry.example.com/ml/models/llama-3-8b:1.0",
    ),
    (
        "ml-serving",
        "llm-inference",
        "verify-gpu-image-sbom",
        "require-sbom-attestation",
        "pass",
        "verified registry.example.com/ml/tokenizer:1.0",
    ),
    (
        "ml-serving",
        "llm-inference",
        "verify-model-provenance",
        "check-model-signature",
        "pass",
        "",
    ),
    (
        "ml-serving",
        "llm-inference",
        "verify-model-provenance",
        "require-model-card",
        "pass",
        "",
    ),
    // Its kyverno.io/verify-images annotation claims a pass: the scan verifies again.
    (
        "ml-serving",
        "inference-unsigned",
        "verify-ai-images",
        "verify-model-server-signature",
        "fail",
        "no signatures found",
    ),
    (
        "ml-serving",
        "inference-unsigned",
        "verify-model-provenance",
        "check-model-signature",
        "pass",
        "",
    ),
    (
        "ml-serving",
        "inference-unsigned",
        "verify-model-provenance",
        "require-model-card",
        "pass",
        "",
    ),
    (
        "ml-serving",
        "inference-wrong-identity",
        "verify-ai-images",
        "verify-model-server-signature",
        "fail",
        "certificate has [\"intern@example.com\"]",
    ),
    (
        "ml-serving",
        "inference-wrong-identity",
        "verify-model-provenance",
        "check-model-signature",
        "pass",
        "",
    ),
    (
        "ml-serving",
        "inference-wrong-identity",
        "verify-model-provenance",
        "require-model-card",
        "pass",
        "",
    ),
    (
        "ml-training",
        "finetune-llama-x7k2p",
        "verify-dataset-integrity",
        "require-dataset-checksum",
        "pass",
        "",
    ),
    (
        "ml-training",
        "finetune-nightly-q8w4z",
        "verify-dataset-integrity",
        "require-dataset-checksum",
        "fail",
        "Training Pods must specify DATASET_SHA256 and DATASET_SOURCE_URL",
    ),
];

fn assert_expected(got: &Results) {
    let mut problems = Vec::new();
    for (ns, pod, policy, rule, result, part) in EXPECTED {
        let key = (
            (*ns).into(),
            (*pod).into(),
            (*policy).into(),
            (*rule).into(),
        );
        match got.get(&key) {
            None => problems.push(format!("missing {key:?}")),
            Some((r, m)) if r != result || !m.contains(part) => problems.push(format!(
                "{key:?}: expected {result} with {part:?}, got {r}: {m}"
            )),
            Some(_) => {}
        }
    }
    if got.len() != EXPECTED.len() {
        problems.push(format!(
            "{} results, expected {}: {got:#?}",
            got.len(),
            EXPECTED.len()
        ));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn list_file_gives_one_report_per_namespace_with_every_result() {
    let v = json_stdout(
        scan()
            .arg("--from-file")
            .arg(fixture())
            .args(["-o", "json"]),
    );
    let reports = v.as_array().unwrap();
    let names: Vec<(&str, &str)> = reports
        .iter()
        .map(|r| {
            (
                r["kind"].as_str().unwrap(),
                r["metadata"]["namespace"].as_str().unwrap(),
            )
        })
        .collect();
    // coredns in kube-system matches no policy: no report for it.
    assert_eq!(
        names,
        [
            ("PolicyReport", "gpu-batch"),
            ("PolicyReport", "ml-serving"),
            ("PolicyReport", "ml-training")
        ]
    );
    assert_eq!(
        reports[1]["summary"],
        json!({"pass": 8, "fail": 2, "warn": 0, "error": 0, "skip": 0})
    );
    assert_expected(&results(&v));
}

#[test]
fn yaml_output_and_out_dir_hold_the_same_reports() {
    let out = scan()
        .arg("--from-file")
        .arg(fixture())
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let docs = provenance_policy::yaml::load_documents(&String::from_utf8(out).unwrap(), "stdout")
        .unwrap();
    assert_expected(&results(&Value::Array(docs)));

    let dir = tempfile::tempdir().unwrap();
    scan()
        .arg("--from-file")
        .arg(fixture())
        .arg("--out-dir")
        .arg(dir.path())
        .assert()
        .code(0)
        .stdout("")
        .stderr(contains("ml-serving.policyreport.yaml"));
    let mut files: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "gpu-batch.policyreport.yaml",
            "ml-serving.policyreport.yaml",
            "ml-training.policyreport.yaml"
        ]
    );
    let mut all = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(dir.path().join(&f)).unwrap();
        all.extend(provenance_policy::yaml::load_documents(&text, &f).unwrap());
    }
    assert_expected(&results(&Value::Array(all)));
}

#[test]
fn one_namespace() {
    let v = json_stdout(scan().arg("--from-file").arg(fixture()).args([
        "-n",
        "ml-training",
        "-o",
        "json",
    ]));
    let got = results(&v);
    assert_eq!(got.len(), 2);
    assert!(got.keys().all(|k| k.0 == "ml-training"));
}

#[test]
fn without_evidence_verify_images_results_are_errors() {
    let mut c = Command::cargo_bin("audit-scan").unwrap();
    let v = json_stdout(
        c.arg("--policy")
            .arg(ai().join("policies/verify-ai-images.yaml"))
            .arg("--from-file")
            .arg(fixture())
            .args(["-o", "json"]),
    );
    let got = results(&v);
    assert_eq!(got.len(), 3);
    for (k, (r, m)) in &got {
        assert_eq!(r, "error", "{k:?}");
        assert!(m.contains("no evidence source"), "{m}");
    }
}

const DENY_ALL: &str = r#"
  rules:
  - name: deny
    match: {any: [{resources: {kinds: [Pod]}}]}
    validate:
      message: "{MESSAGE}"
      deny: {}
"#;

fn policy(name: &str, spec_head: &str, message: &str) -> String {
    format!(
        "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {{name: {name}}}\nspec:\n{spec_head}{}",
        DENY_ALL.replace("{MESSAGE}", message)
    )
}

#[test]
fn policies_that_need_the_requester_are_left_out_as_kyverno_does() {
    let dir = tempfile::tempdir().unwrap();
    let write = |f: &str, text: String| std::fs::write(dir.path().join(f), text).unwrap();
    write("a.yaml", policy("opted-out", "  background: false\n", "no"));
    write(
        "b.yaml",
        policy("by-user", "", "created by {{ request.userInfo.username }}"),
    );
    write(
        "c.yaml",
        policy("by-sa", "", "service account {{serviceAccountName}}"),
    );
    write(
        "d.yaml",
        "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {name: by-role}\nspec:\n  rules:\n  - name: deny\n    match: {any: [{resources: {kinds: [Pod]}, clusterRoles: [cluster-admin]}]}\n    validate: {message: no, deny: {}}\n"
            .to_owned(),
    );
    // Taking part: object fields are fine, including one named serviceAccountName.
    write(
        "e.yaml",
        policy(
            "by-object",
            "",
            "pod {{ request.object.metadata.name }} runs as {{ request.object.spec.serviceAccountName }}",
        ),
    );
    let mut c = Command::cargo_bin("audit-scan").unwrap();
    let assert = c
        .arg("--policy")
        .arg(dir.path())
        .arg("--from-file")
        .arg(fixture())
        .args(["-n", "kube-system", "-o", "json"])
        .assert()
        .code(0)
        .stderr(contains(
            "skipped ClusterPolicy/opted-out: spec.background is false",
        ))
        .stderr(contains(
            "skipped ClusterPolicy/by-user: uses the variable request.userInfo",
        ))
        .stderr(contains(
            "skipped ClusterPolicy/by-sa: uses the variable serviceAccountName",
        ))
        .stderr(contains(
            "skipped ClusterPolicy/by-role: spec.rules[0].match.any[0].clusterRoles",
        ));
    let v: Value = serde_json::from_slice(&assert.get_output().stdout).unwrap();
    let got = results(&v);
    let keys: Vec<&(String, String, String, String)> = got.keys().collect();
    assert_eq!(
        keys,
        [&(
            "kube-system".to_owned(),
            "coredns-7db6d8ff4d-x2x9q".to_owned(),
            "by-object".to_owned(),
            "deny".to_owned()
        )]
    );
    let (r, m) = got.values().next().unwrap();
    assert_eq!(r, "fail");
    assert_eq!(m, "pod coredns-7db6d8ff4d-x2x9q runs as default");
}

#[test]
fn usage_errors_exit_2() {
    let home = tempfile::tempdir().unwrap();
    // No --from-file and no kubeconfig anywhere.
    scan()
        .env("HOME", home.path())
        .assert()
        .code(2)
        .stderr(contains("no cluster to scan"))
        .stderr(contains("--from-file"));
    scan()
        .arg("--from-file")
        .arg(home.path().join("missing.json"))
        .assert()
        .code(2);
    let bad = home.path().join("bad.json");
    std::fs::write(&bad, r#"{"kind": "List"}"#).unwrap();
    scan()
        .arg("--from-file")
        .arg(&bad)
        .assert()
        .code(2)
        .stderr(contains("List has no items"));
    Command::cargo_bin("audit-scan")
        .unwrap()
        .arg("--from-file")
        .arg(fixture())
        .assert()
        .code(2);
}

// ------------------------------------------------------- a live cluster, through kube-rs

/// A loopback stand-in for the API server: answers the list requests kube-rs sends for
/// Namespaces and Pods with the fixture's objects (as the API server does: typed lists whose
/// items carry no kind), and counts the requests.
fn fake_api_server(
    objects: Vec<Value>,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = std::sync::Arc::clone(&hits);
    let list = move |kind: &str, ns: Option<&str>| {
        let items: Vec<Value> = objects
            .iter()
            .filter(|o| o["kind"] == kind)
            .filter(|o| ns.is_none_or(|n| o["metadata"]["namespace"] == n))
            .map(|o| {
                let mut o = o.clone();
                let m = o.as_object_mut().unwrap();
                m.remove("kind");
                m.remove("apiVersion");
                o
            })
            .collect();
        json!({"apiVersion": "v1", "kind": format!("{kind}List"),
               "metadata": {"resourceVersion": "52000"}, "items": items})
    };
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            let mut length = 0usize;
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).is_err() || h == "\r\n" || h.is_empty() {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0u8; length];
            let _ = reader.read_exact(&mut body);
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let path = request_line.split_whitespace().nth(1).unwrap_or("/");
            let path = path.split('?').next().unwrap_or(path);
            let (status, doc) = match path {
                "/api/v1/namespaces" => ("200 OK", list("Namespace", None)),
                "/api/v1/pods" => ("200 OK", list("Pod", None)),
                p if p.starts_with("/api/v1/namespaces/") && p.ends_with("/pods") => {
                    let ns = &p["/api/v1/namespaces/".len()..p.len() - "/pods".len()];
                    ("200 OK", list("Pod", Some(ns)))
                }
                _ => (
                    "404 Not Found",
                    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404, "reason": "NotFound"}),
                ),
            };
            let body = doc.to_string();
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (addr, hits)
}

fn kubeconfig(dir: &Path, server: &str) -> PathBuf {
    let f = dir.join("kubeconfig");
    std::fs::write(
        &f,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster: {{server: \"{server}\"}}\nusers:\n- name: test\n  user: {{}}\ncontexts:\n- name: test\n  context: {{cluster: test, user: test}}\ncurrent-context: test\n"
        ),
    )
    .unwrap();
    f
}

#[test]
fn live_cluster_through_kube_rs_gives_the_same_reports() {
    let list: Value = serde_json::from_slice(&std::fs::read(fixture()).unwrap()).unwrap();
    let objects = list["items"].as_array().unwrap().clone();
    let (addr, hits) = fake_api_server(objects);
    let dir = tempfile::tempdir().unwrap();
    let kc = kubeconfig(dir.path(), &format!("http://{addr}"));
    let live = json_stdout(scan().arg("--kubeconfig").arg(&kc).args(["-o", "json"]));
    assert!(hits.load(std::sync::atomic::Ordering::SeqCst) >= 2);
    assert_expected(&results(&live));
    // The same through KUBECONFIG, one namespace.
    let one = json_stdout(
        scan()
            .env("KUBECONFIG", &kc)
            .args(["-n", "gpu-batch", "-o", "json"]),
    );
    let got = results(&one);
    assert_eq!(got.len(), 2);
    assert!(got.keys().all(|k| k.0 == "gpu-batch"));
}

#[test]
fn an_unreachable_cluster_exits_3() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let kc = kubeconfig(dir.path(), &format!("http://127.0.0.1:{port}"));
    scan()
        .arg("--kubeconfig")
        .arg(&kc)
        .assert()
        .code(3)
        .stderr(contains("listing namespaces"))
        .stderr(contains("what to do"));
}
