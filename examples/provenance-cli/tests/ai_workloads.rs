//! `provenance apply` on `examples/ai-workloads`: the four AI-workload policies against the
//! example workloads, with evidence from the committed OCI layout (no network) and from a real
//! registry on loopback (Debian `docker-registry`, which has no referrers API: the referrers
//! tag schema is exercised). Every scenario asserts its exact result and message fragment.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../ai-workloads")
}

/// (resource `Kind/namespace/name`, policy, rule, result, message fragment).
type Expected = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
);

const AI: &str = "verify-ai-images";
const AI_RULE: &str = "verify-model-server-signature";
const SBOM: &str = "verify-gpu-image-sbom";
const SBOM_RULE: &str = "require-sbom-attestation";
const MODEL: &str = "verify-model-provenance";
const DATA: &str = "verify-dataset-integrity";
const DATA_RULE: &str = "require-dataset-checksum";

/// Every result `provenance apply` must print for the example, and nothing else.
const SCENARIOS: &[Expected] = &[
    // The passing inference Pod: 2 containers + a model in an image volume, all four policies.
    (
        "Pod/ml-serving/llm-inference",
        AI,
        AI_RULE,
        "pass",
        "verified registry.example.com/ml/models/llama-3-8b:1.0",
    ),
    (
        "Pod/ml-serving/llm-inference",
        SBOM,
        SBOM_RULE,
        "pass",
        "verified registry.example.com/ml/tokenizer:1.0",
    ),
    (
        "Pod/ml-serving/llm-inference",
        MODEL,
        "check-model-signature",
        "pass",
        "",
    ),
    (
        "Pod/ml-serving/llm-inference",
        MODEL,
        "require-model-card",
        "pass",
        "",
    ),
    // verify-ai-images: unsigned, wrong identity, missing SLSA, wrong builder.id.
    (
        "Pod/ml-serving/inference-unsigned",
        AI,
        AI_RULE,
        "fail",
        "registry.example.com/ml/unsigned:1.0: verifyImages[0].attestors[0]: 0 of 1 required attestors verified: verifyImages[0].attestors[0].entries[0]: no signatures found",
    ),
    (
        "Pod/ml-serving/inference-unsigned",
        MODEL,
        "check-model-signature",
        "pass",
        "",
    ),
    (
        "Pod/ml-serving/inference-unsigned",
        MODEL,
        "require-model-card",
        "pass",
        "",
    ),
    (
        "Pod/ml-serving/inference-wrong-identity",
        AI,
        AI_RULE,
        "fail",
        "expected subject \"ml-team@example.com\", certificate has [\"intern@example.com\"]",
    ),
    (
        "Pod/ml-serving/inference-wrong-identity",
        MODEL,
        "check-model-signature",
        "pass",
        "",
    ),
    (
        "Pod/ml-serving/inference-wrong-identity",
        MODEL,
        "require-model-card",
        "pass",
        "",
    ),
    (
        "Pod/ml-serving/inference-missing-slsa",
        AI,
        AI_RULE,
        "fail",
        "image registry.example.com/ml/missing-slsa:1.0: verifyImages[0].attestations[0]: no attestations found (need https://slsa.dev/provenance/v1)",
    ),
    (
        "Pod/ml-serving/inference-missing-slsa",
        MODEL,
        "check-model-signature",
        "pass",
        "",
    ),
    (
        "Pod/ml-serving/inference-missing-slsa",
        MODEL,
        "require-model-card",
        "pass",
        "",
    ),
    (
        "Pod/ml-serving/inference-wrong-builder",
        AI,
        AI_RULE,
        "fail",
        "verifyImages[0].attestations[0]: https://slsa.dev/provenance/v1 attestation conditions not met",
    ),
    (
        "Pod/ml-serving/inference-wrong-builder",
        MODEL,
        "check-model-signature",
        "pass",
        "",
    ),
    (
        "Pod/ml-serving/inference-wrong-builder",
        MODEL,
        "require-model-card",
        "pass",
        "",
    ),
    // verify-model-provenance: missing or unverified model annotations, non-https model card.
    (
        "Pod/ml-serving/inference-missing-model-annotations",
        AI,
        AI_RULE,
        "pass",
        "verified registry.example.com/ml/llm-server:1.0",
    ),
    (
        "Pod/ml-serving/inference-missing-model-annotations",
        MODEL,
        "check-model-signature",
        "fail",
        "validation error: Model volume must reference signed model artifact. rule check-model-signature failed at path /metadata/annotations/",
    ),
    (
        "Pod/ml-serving/inference-missing-model-annotations",
        MODEL,
        "require-model-card",
        "pass",
        "",
    ),
    (
        "Pod/ml-serving/inference-unverified-model",
        AI,
        AI_RULE,
        "pass",
        "",
    ),
    (
        "Pod/ml-serving/inference-unverified-model",
        MODEL,
        "check-model-signature",
        "fail",
        "validation error: Model volume must reference signed model artifact. rule check-model-signature failed at path /metadata/annotations/model.ai/signature-verified/",
    ),
    (
        "Pod/ml-serving/inference-unverified-model",
        MODEL,
        "require-model-card",
        "pass",
        "",
    ),
    (
        "Pod/ml-serving/inference-http-model-card",
        AI,
        AI_RULE,
        "pass",
        "",
    ),
    (
        "Pod/ml-serving/inference-http-model-card",
        MODEL,
        "check-model-signature",
        "pass",
        "",
    ),
    (
        "Pod/ml-serving/inference-http-model-card",
        MODEL,
        "require-model-card",
        "fail",
        "AI inference Pods must include a model card URL annotation",
    ),
    // The Deployment with a model image volume: verify-ai-images through autogen.
    (
        "Deployment/ml-serving/llm-server",
        AI,
        "autogen-verify-model-server-signature",
        "pass",
        "verified registry.example.com/ml/models/llama-3-8b:1.0",
    ),
    // verify-gpu-image-sbom: wrong key, SBOM without library components, missing SBOM.
    (
        "Pod/gpu-batch/gpu-ok",
        SBOM,
        SBOM_RULE,
        "pass",
        "verified registry.example.com/gpu/cuda-app:1.0",
    ),
    (
        "Pod/gpu-batch/gpu-wrong-key",
        SBOM,
        SBOM_RULE,
        "fail",
        "verifyImages[0].attestors[0].entries[0]: [verify.signature.invalid]",
    ),
    (
        "Pod/gpu-batch/gpu-no-libraries",
        SBOM,
        SBOM_RULE,
        "fail",
        "verifyImages[0].attestations[1]: https://cyclonedx.org/bom attestation conditions not met",
    ),
    (
        "Pod/gpu-batch/gpu-missing-sbom",
        SBOM,
        SBOM_RULE,
        "fail",
        "image registry.example.com/gpu/missing-sbom:1.0: verifyImages[0].attestations[0]: no attestations found (need https://spdx.dev/Document)",
    ),
    // verify-dataset-integrity (Audit): missing and malformed DATASET_SHA256.
    ("Pod/ml-training/training-ok", DATA, DATA_RULE, "pass", ""),
    (
        "Pod/ml-training/training-missing-dataset-sha256",
        DATA,
        DATA_RULE,
        "fail",
        "Training Pods must specify DATASET_SHA256 and DATASET_SOURCE_URL",
    ),
    (
        "Pod/ml-training/training-malformed-dataset-sha256",
        DATA,
        DATA_RULE,
        "fail",
        "DATASET_SHA256 must be a valid SHA-256 hash",
    ),
];

/// Resources blocked by an Enforce rule (exit status 1); the Audit-only dataset failures are not.
const BLOCKED: &[&str] = &[
    "Pod/ml-serving/inference-unsigned",
    "Pod/ml-serving/inference-wrong-identity",
    "Pod/ml-serving/inference-missing-slsa",
    "Pod/ml-serving/inference-wrong-builder",
    "Pod/ml-serving/inference-missing-model-annotations",
    "Pod/ml-serving/inference-unverified-model",
    "Pod/ml-serving/inference-http-model-card",
    "Pod/gpu-batch/gpu-wrong-key",
    "Pod/gpu-batch/gpu-no-libraries",
    "Pod/gpu-batch/gpu-missing-sbom",
];

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// `provenance apply` with the policies folder `policies` of the example, these resource files
/// or folders of it, and `extra` arguments.
fn apply_with(policies: &str, resources: &[&str], extra: &[&str]) -> Run {
    let ex = example();
    let mut c = Command::new(env!("CARGO_BIN_EXE_provenance"));
    c.arg("apply").arg("--policy").arg(ex.join(policies));
    for r in resources {
        c.arg("--resource").arg(ex.join(r));
    }
    let out = c.args(extra).output().expect("run provenance apply");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The ClusterPolicy form against every example workload.
fn apply(extra: &[&str]) -> Run {
    apply_with("policies", &["workloads"], extra)
}

/// The example's OCI layout, as an argument.
fn layout() -> String {
    example().join("registry").to_str().unwrap().to_owned()
}

/// `--online` through `endpoint` (`registry.example.com=HOST:PORT`, plain HTTP) with the
/// layout's trust root pinned, then `extra`.
fn online<'a>(endpoint: &'a str, trust_root: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    [
        &[
            "--online",
            "--allow-http",
            "registry.example.com",
            "--registry-endpoint",
            endpoint,
            "--trust-root",
            trust_root,
        ][..],
        extra,
    ]
    .concat()
}

fn layout_trust_root() -> String {
    example()
        .join("registry/trusted_root.json")
        .to_str()
        .unwrap()
        .to_owned()
}

/// (resource, policy, rule) → (result, message), from `-o json` PolicyReports.
fn results(run: &Run) -> BTreeMap<(String, String, String), (String, String)> {
    let reports: Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\nstderr:\n{}", run.stdout, run.stderr));
    let mut out = BTreeMap::new();
    for report in reports.as_array().unwrap() {
        for r in report["results"].as_array().unwrap() {
            let res = &r["resources"][0];
            let key = (
                format!(
                    "{}/{}/{}",
                    res["kind"].as_str().unwrap(),
                    res["namespace"].as_str().unwrap(),
                    res["name"].as_str().unwrap()
                ),
                r["policy"].as_str().unwrap().to_owned(),
                r["rule"].as_str().unwrap().to_owned(),
            );
            let prev = out.insert(
                key.clone(),
                (
                    r["result"].as_str().unwrap().to_owned(),
                    r["message"].as_str().unwrap_or_default().to_owned(),
                ),
            );
            assert!(prev.is_none(), "two results for {key:?}");
        }
    }
    out
}

fn assert_scenarios(run: &Run) {
    assert_eq!(
        run.code,
        Some(1),
        "Enforce failures must exit 1\nstderr:\n{}",
        run.stderr
    );
    let got = results(run);
    let mut problems = Vec::new();
    for (res, policy, rule, result, fragment) in SCENARIOS {
        let key = ((*res).to_owned(), (*policy).to_owned(), (*rule).to_owned());
        match got.get(&key) {
            None => problems.push(format!("missing result for {key:?}")),
            Some((r, m)) => {
                if r != result || !m.contains(fragment) {
                    problems.push(format!(
                        "{key:?}: expected {result} with {fragment:?}, got {r}: {m}"
                    ));
                }
            }
        }
    }
    let expected: BTreeSet<(String, String, String)> = SCENARIOS
        .iter()
        .map(|(a, b, c, _, _)| ((*a).to_owned(), (*b).to_owned(), (*c).to_owned()))
        .collect();
    for (key, (r, m)) in &got {
        if !expected.contains(key) {
            problems.push(format!("unexpected result {key:?}: {r}: {m}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn offline_from_the_oci_layout() {
    let run = apply(&[
        "--registry-layout",
        &layout(),
        "--trust-root",
        &layout_trust_root(),
        "-o",
        "json",
    ]);
    assert_scenarios(&run);
}

#[test]
fn table_output_summary_and_blocked_resources() {
    let run = apply(&[
        "--registry-layout",
        &layout(),
        "--trust-root",
        &layout_trust_root(),
    ]);
    assert_eq!(run.code, Some(1), "{}\n{}", run.stdout, run.stderr);
    let header = run.stdout.lines().next().unwrap();
    for col in ["POLICY", "RULE", "RESOURCE", "RESULT", "MESSAGE"] {
        assert!(header.contains(col), "{header}");
    }
    let pass = SCENARIOS.iter().filter(|s| s.3 == "pass").count();
    let fail = SCENARIOS.iter().filter(|s| s.3 == "fail").count();
    let summary = format!("pass: {pass}, fail: {fail}, warn: 0, error: 0, skip: 0;");
    assert!(run.stdout.contains(&summary), "{summary}\n{}", run.stdout);
    let blocked: BTreeSet<&str> = run
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("blocked: "))
        .collect();
    assert_eq!(blocked, BLOCKED.iter().copied().collect::<BTreeSet<_>>());
    assert!(run.stdout.contains(&format!("{} blocked", BLOCKED.len())));
}

#[test]
fn passing_workloads_alone_exit_zero() {
    let run = apply_with(
        "policies",
        &[
            "workloads/namespaces.yaml",
            "workloads/deployment-model-volume.yaml",
        ],
        &[
            "--registry-layout",
            &layout(),
            "--trust-root",
            &layout_trust_root(),
        ],
    );
    assert_eq!(run.code, Some(0), "{}", run.stdout);
    assert!(run.stdout.contains("pass: 1, fail: 0"), "{}", run.stdout);
}

#[test]
fn without_evidence_verify_images_rules_are_errors_not_passes() {
    // No --registry-layout and no --online: verifyImages rules cannot pass (fail closed).
    let run = apply(&["-o", "json"]);
    assert_eq!(run.code, Some(1));
    let got = results(&run);
    let (r, m) = &got[&(
        "Pod/ml-serving/llm-inference".to_owned(),
        AI.to_owned(),
        AI_RULE.to_owned(),
    )];
    assert_eq!(r, "error", "{m}");
    assert!(m.contains("no evidence source"), "{m}");
}

#[test]
fn the_public_good_root_does_not_trust_the_fixtures() {
    // The same layout verified against the embedded public-good root: nothing keyless or
    // key-based from the mock services may pass.
    let root = example().join("../../provenance-core/src/verify/public-good-trusted_root.json");
    if !root.is_file() {
        panic!("{} missing", root.display());
    }
    let run = apply(&[
        "--registry-layout",
        &layout(),
        "--trust-root",
        root.to_str().unwrap(),
        "-o",
        "json",
    ]);
    let got = results(&run);
    for ((res, policy, _), (r, m)) in &got {
        if policy == AI || policy == SBOM {
            assert_ne!(r, "pass", "{res} {policy}: {m}");
        }
    }
}

mod common;

#[test]
fn online_through_a_loopback_registry_gives_the_same_results() {
    let Some((_reg, endpoint)) = common::serve_layout(&example().join("registry")) else {
        return;
    };
    let root = layout_trust_root();
    let run = apply(&online(&endpoint, &root, &["-o", "json"]));
    assert_scenarios(&run);
    // And the same JSON as the layout run, result for result.
    let offline = apply(&[
        "--registry-layout",
        &layout(),
        "--trust-root",
        &layout_trust_root(),
        "-o",
        "json",
    ]);
    assert_eq!(results(&run), results(&offline));
}

#[test]
fn online_with_the_registry_down_is_an_error_not_a_pass() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("registry.example.com=127.0.0.1:{port}");
    let root = layout_trust_root();
    let run = apply(&online(&endpoint, &root, &["-o", "json"]));
    assert_eq!(run.code, Some(1));
    let got = results(&run);
    let (r, m) = &got[&(
        "Pod/ml-serving/llm-inference".to_owned(),
        AI.to_owned(),
        AI_RULE.to_owned(),
    )];
    assert_eq!(r, "error", "{m}");
    assert!(m.contains("failed to fetch evidence"), "{m}");
}

#[test]
fn yaml_reports_match_json_reports() {
    let json_run = apply(&[
        "--registry-layout",
        &layout(),
        "--trust-root",
        &layout_trust_root(),
        "-o",
        "json",
    ]);
    let yaml_run = apply(&[
        "--registry-layout",
        &layout(),
        "--trust-root",
        &layout_trust_root(),
        "-o",
        "yaml",
    ]);
    assert_eq!(yaml_run.code, Some(1), "{}", yaml_run.stderr);
    let docs = provenance_policy::yaml::load_documents(&yaml_run.stdout, "stdout").unwrap();
    let from_yaml = Run {
        code: yaml_run.code,
        stdout: serde_json::to_string(&docs).unwrap(),
        stderr: String::new(),
    };
    assert_eq!(results(&from_yaml), results(&json_run));
}

#[test]
fn namespace_labels_from_flags_replace_namespace_objects() {
    // Without namespaces.yaml nothing in ml-serving matches a namespaceSelector ...
    let layout = layout();
    let root = layout_trust_root();
    let run = |labels: &[&str]| {
        let args = [
            &["--registry-layout", &layout, "--trust-root", &root][..],
            labels,
            &["-o", "json"],
        ]
        .concat();
        results(&apply_with(
            "policies",
            &["workloads/inference-pods.yaml"],
            &args,
        ))
    };
    let key = (
        "Pod/ml-serving/inference-unsigned".to_owned(),
        AI.to_owned(),
        AI_RULE.to_owned(),
    );
    assert!(!run(&[]).contains_key(&key));
    // ... and --namespace-labels brings verify-ai-images back.
    let got = run(&["--namespace-labels", "ml-serving=purpose=ai-inference"]);
    assert_eq!(got[&key].0, "fail", "{}", got[&key].1);
}

#[test]
fn a_layout_does_not_choose_its_own_trust_root() {
    // Without --trust-root the layout's trusted_root.json is not used: the embedded
    // public-good root is, and it trusts none of the mock CA's signatures.
    let run = apply(&["--registry-layout", &layout(), "-o", "json"]);
    let got = results(&run);
    let (r, m) = &got[&(
        "Pod/ml-serving/llm-inference".to_owned(),
        AI.to_owned(),
        AI_RULE.to_owned(),
    )];
    assert_ne!(r, "pass", "{m}");
    assert!(!run.stderr.contains("trust root shipped in the layout"));
    // Only the explicitly named, dangerous flag uses the layout's root (and says so).
    let run = apply(&[
        "--registry-layout",
        &layout(),
        "--trust-root-from-layout",
        "-o",
        "json",
    ]);
    assert!(
        run.stderr.contains("--trust-root-from-layout"),
        "{}",
        run.stderr
    );
    assert_scenarios(&run);
}

/// The policies with the private (mock) Sigstore written in their attestors
/// (`policies-private-sigstore/`, made by `private-sigstore.py`): no `--trust-root` is given,
/// the caller's root is the embedded public-good one, and every result is the same as with the
/// private root passed as the trust root. The layout holds cosign `.sig`/`.att` layers and
/// Sigstore bundle referrers; online, the same through a registry on loopback.
#[test]
fn a_private_sigstore_written_in_the_attestors_needs_no_trust_root() {
    let private = apply_with(
        "policies-private-sigstore",
        &["workloads"],
        &["--registry-layout", &layout(), "-o", "json"],
    );
    assert!(
        !private.stderr.contains("--trust-root-from-layout"),
        "{}",
        private.stderr
    );
    assert_scenarios(&private);
    let Some((_reg, endpoint)) = common::serve_layout(&example().join("registry")) else {
        return;
    };
    let online = apply_with(
        "policies-private-sigstore",
        &["workloads"],
        &[
            "--online",
            "--allow-http",
            "registry.example.com",
            "--registry-endpoint",
            &endpoint,
            "-o",
            "json",
        ],
    );
    assert_eq!(results(&online), results(&private));
    // A Rekor key that is not the private log's makes the key-signed images fail: the trust
    // written in the policy is what decides.
    let dir = tempfile::tempdir().unwrap();
    let src = example().join("policies-private-sigstore");
    let tlog_line = std::fs::read_to_string(src.join("verify-gpu-image-sbom.yaml")).unwrap();
    let ct = std::fs::read_to_string(src.join("verify-ai-images.yaml")).unwrap();
    // The CT log's key (from the keyless attestor) in place of the Rekor key.
    let key_block = |text: &str, after: &str| -> String {
        let start = text.find(after).unwrap() + after.len();
        let begin = text[start..].find("-----BEGIN PUBLIC KEY-----").unwrap() + start;
        let end = text[begin..].find("-----END PUBLIC KEY-----").unwrap() + begin;
        text[begin..end].to_owned()
    };
    let rekor = key_block(&tlog_line, "rekor:");
    let ct_key = key_block(&ct, "ctlog:");
    for f in std::fs::read_dir(&src).unwrap() {
        let f = f.unwrap().path();
        let text = std::fs::read_to_string(&f).unwrap();
        std::fs::write(
            dir.path().join(f.file_name().unwrap()),
            text.replace(&rekor, &ct_key),
        )
        .unwrap();
    }
    let wrong = apply_with(
        dir.path().to_str().unwrap(),
        &["workloads"],
        &["--registry-layout", &layout(), "-o", "json"],
    );
    let got = results(&wrong);
    for ((res, policy, _), (r, m)) in &got {
        if policy == AI || policy == SBOM {
            assert_ne!(r, "pass", "{res} {policy}: {m}");
        }
    }
}

#[test]
fn gathering_one_image_at_a_time_gives_the_same_results() {
    let serial = apply(&[
        "--registry-layout",
        &layout(),
        "--trust-root",
        &layout_trust_root(),
        "--concurrency",
        "1",
        "-o",
        "json",
    ]);
    assert_scenarios(&serial);
}

/// The ImageValidatingPolicy form of verify-ai-images (`policies-cel/`).
const CEL: &str = "verify-ai-images-cel";

/// (resource, result, message fragment, reason fragment) for the ImageValidatingPolicy.
const CEL_SCENARIOS: &[(&str, &str, &str, &str)] = &[
    ("Pod/ml-serving/llm-inference", "pass", "success", ""),
    ("Deployment/ml-serving/llm-server", "pass", "success", ""),
    (
        "Pod/ml-serving/inference-unsigned",
        "fail",
        "images not signed by ml-team@example.com: registry.example.com/ml/unsigned:1.0@sha256:",
        "signature not verified by attestor mlteam: no signatures found",
    ),
    (
        "Pod/ml-serving/inference-wrong-identity",
        "fail",
        "images not signed by ml-team@example.com: registry.example.com/ml/wrong-identity:1.0@sha256:",
        "expected subject \"ml-team@example.com\", certificate has [\"intern@example.com\"]",
    ),
    (
        "Pod/ml-serving/inference-missing-slsa",
        "fail",
        "no SLSA v1 provenance signed by ml-team@example.com: registry.example.com/ml/missing-slsa:1.0@sha256:",
        "no attestations found (need https://slsa.dev/provenance/v1)",
    ),
    (
        "Pod/ml-serving/inference-wrong-builder",
        "fail",
        "SLSA provenance not built by https://github.com/actions/runner: registry.example.com/ml/wrong-builder:1.0@sha256:",
        "",
    ),
    (
        "Pod/ml-serving/inference-missing-model-annotations",
        "pass",
        "success",
        "",
    ),
    (
        "Pod/ml-serving/inference-unverified-model",
        "pass",
        "success",
        "",
    ),
    (
        "Pod/ml-serving/inference-http-model-card",
        "pass",
        "success",
        "",
    ),
];

/// The ImageValidatingPolicy form against every example workload, JSON reports.
fn apply_cel(extra: &[&str]) -> Run {
    apply_with(
        "policies-cel",
        &["workloads"],
        &[extra, &["-o", "json"]].concat(),
    )
}

/// (resource, rule) → (result, message, reasons) of the ImageValidatingPolicy.
fn cel_results(run: &Run) -> BTreeMap<(String, String), (String, String, String)> {
    let reports: Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\nstderr:\n{}", run.stdout, run.stderr));
    let mut out = BTreeMap::new();
    for report in reports.as_array().unwrap() {
        for r in report["results"].as_array().unwrap() {
            assert_eq!(r["policy"], CEL, "{r}");
            let res = &r["resources"][0];
            let key = format!(
                "{}/{}/{}",
                res["kind"].as_str().unwrap(),
                res["namespace"].as_str().unwrap(),
                res["name"].as_str().unwrap()
            );
            let reasons = r["properties"]
                .as_object()
                .map(|p| {
                    p.values()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join("\n")
                })
                .unwrap_or_default();
            let key = (key, r["rule"].as_str().unwrap_or_default().to_owned());
            let prev = out.insert(
                key.clone(),
                (
                    r["result"].as_str().unwrap().to_owned(),
                    r["message"].as_str().unwrap_or_default().to_owned(),
                    reasons,
                ),
            );
            assert!(prev.is_none(), "two results for {key:?}");
        }
    }
    out
}

fn assert_cel_scenarios(run: &Run) {
    assert_eq!(
        run.code,
        Some(1),
        "Deny failures must exit 1\n{}",
        run.stderr
    );
    let got = cel_results(run);
    let mut problems = Vec::new();
    for (res, result, message, reason) in CEL_SCENARIOS {
        // The rule of an ImageValidatingPolicy result is the policy name, as in Kyverno.
        match got.get(&((*res).to_owned(), CEL.to_owned())) {
            None => problems.push(format!("missing result for {res}")),
            Some((r, m, why)) => {
                if r != result || !m.contains(message) || !why.contains(reason) {
                    problems.push(format!(
                        "{res}: expected {result} with {message:?} / {reason:?}, got {r}: {m} / {why}"
                    ));
                }
            }
        }
    }
    for (key, rule) in got.keys() {
        if rule != CEL || !CEL_SCENARIOS.iter().any(|s| s.0 == key) {
            problems.push(format!("unexpected result for {key} ({rule})"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn image_validating_policy_form_offline_from_the_oci_layout() {
    let run = apply_cel(&[
        "--registry-layout",
        &layout(),
        "--trust-root",
        &layout_trust_root(),
    ]);
    assert_cel_scenarios(&run);
    // The same verdicts as the ClusterPolicy form, resource for resource.
    let cel = cel_results(&run);
    for (res, policy, _, result, _) in SCENARIOS {
        if *policy == AI {
            let res = (*res).to_owned();
            assert_eq!(
                cel.get(&(res.clone(), CEL.to_owned()))
                    .map(|x| x.0.as_str()),
                Some(*result),
                "{res}: the ClusterPolicy says {result}"
            );
        }
    }
}

#[test]
fn image_validating_policy_form_online_through_a_loopback_registry() {
    let Some((_reg, endpoint)) = common::serve_layout(&example().join("registry")) else {
        return;
    };
    let root = layout_trust_root();
    let run = apply_cel(&online(&endpoint, &root, &[]));
    assert_cel_scenarios(&run);
    let offline = apply_cel(&[
        "--registry-layout",
        &layout(),
        "--trust-root",
        &layout_trust_root(),
    ]);
    assert_eq!(cel_results(&run), cel_results(&offline));
}

#[test]
fn image_validating_policy_form_without_evidence_is_not_a_pass() {
    let run = apply_cel(&[]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    let got = cel_results(&run);
    assert!(!got.is_empty());
    for ((res, rule), (r, m, _)) in &got {
        assert_ne!(r, "pass", "{res} {rule}: {m}");
        assert!(r == "error" || r == "fail", "{res} {rule}: {r}: {m}");
    }
    // Each resource gets the digest-pinning error, naming the missing evidence source.
    let pin = &got[&(
        "Pod/ml-serving/llm-inference".to_owned(),
        "mutateDigest".to_owned(),
    )];
    assert_eq!(pin.0, "error");
    assert!(pin.1.contains("no evidence source"), "{}", pin.1);
}
