//! Whole-admission benchmarks: a typical inference Pod through ClusterPolicies (pattern,
//! JMESPath deny, CEL) and per-rule costs, with policies compiled once as a webhook would.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use provenance_core::UnixTime;
use provenance_policy::admission::PolicySet;
use provenance_policy::admission::request::ResourceInput;
use provenance_policy::lang::jmespath::Env;
use serde_json::json;

const POLICIES: &str = r#"
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: disallow-latest-tag}
spec:
  validationFailureAction: Enforce
  rules:
  - name: require-image-tag
    match: {any: [{resources: {kinds: [Pod]}}]}
    validate:
      message: "An image tag is required."
      pattern: {spec: {containers: [{image: "*:*"}]}}
  - name: validate-image-tag
    match: {any: [{resources: {kinds: [Pod]}}]}
    validate:
      message: "Using a mutable image tag e.g. 'latest' is not allowed."
      pattern: {spec: {containers: [{image: "!*:latest"}]}}
---
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: restrict-privileges}
spec:
  validationFailureAction: Enforce
  rules:
  - name: no-privilege-escalation
    match: {any: [{resources: {kinds: [Pod]}}]}
    validate:
      message: "Privilege escalation is disallowed."
      pattern:
        spec:
          =(initContainers): [{=(securityContext): {=(allowPrivilegeEscalation): "false"}}]
          containers: [{securityContext: {allowPrivilegeEscalation: "false"}}]
  - name: run-as-non-root
    match: {any: [{resources: {kinds: [Pod]}}]}
    validate:
      message: "Running as root is not allowed."
      anyPattern:
      - spec: {securityContext: {runAsNonRoot: true}, containers: [{=(securityContext): {=(runAsNonRoot): true}}]}
      - spec: {containers: [{securityContext: {runAsNonRoot: true}}]}
  - name: gpu-limits-required
    match: {any: [{resources: {kinds: [Pod]}}]}
    validate:
      message: "GPU containers must set memory limits"
      deny:
        conditions:
          any:
          - key: "{{ request.object.spec.containers[?resources.limits.\"nvidia.com/gpu\"] | [?!(resources.limits.memory)] | length(@) }}"
            operator: GreaterThan
            value: 0
---
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: verify-dataset-integrity}
spec:
  rules:
  - name: require-dataset-checksum
    match: {any: [{resources: {kinds: [Pod], selector: {matchLabels: {workload-type: training}}}}]}
    validate:
      cel:
        expressions:
        - expression: "object.spec.containers.all(c, c.env.exists(e, e.name == 'DATASET_SHA256') && c.env.exists(e, e.name == 'DATASET_SOURCE_URL'))"
          message: "Training Pods must specify DATASET_SHA256 and DATASET_SOURCE_URL"
        - expression: "object.spec.containers.all(c, c.env.filter(e, e.name == 'DATASET_SHA256').all(e, e.value.matches('^[a-f0-9]{64}$')))"
          message: "DATASET_SHA256 must be a valid SHA-256 hash"
"#;

fn pod() -> serde_json::Value {
    let container = |name: &str, image: &str| {
        json!({
            "name": name, "image": image,
            "env": [
                {"name": "DATASET_SHA256", "value": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"},
                {"name": "DATASET_SOURCE_URL", "value": "https://datasets.example.com/tokens-v3"},
                {"name": "LOG_LEVEL", "value": "info"}
            ],
            "resources": {"limits": {"nvidia.com/gpu": "1", "memory": "32Gi", "cpu": "8"}},
            "securityContext": {"allowPrivilegeEscalation": false, "runAsNonRoot": true}
        })
    };
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "llm-train-0", "namespace": "ml",
            "labels": {"workload-type": "training", "app": "llm"},
            "annotations": {"model.ai/model-card-url": "https://models.example.com/llama/card"}},
        "spec": {
            "securityContext": {"runAsNonRoot": true},
            "containers": [
                container("trainer", "registry.example.com/ml/trainer:2.1.0"),
                container("sidecar", "registry.example.com/ml/metrics:1.4.2"),
                container("loader", "registry.example.com/ml/loader:0.9.0")
            ]
        }
    })
}

fn bench(c: &mut Criterion) {
    let mut set = PolicySet::default();
    set.add_yaml(POLICIES, "bench.yaml").unwrap();
    let input = ResourceInput::create(pod());
    let env = Env::at(UnixTime(1_800_000_000));
    let d = set.decide(&input, &env);
    assert!(d.allowed, "{d:?}");
    assert_eq!(d.results.len(), 6);
    c.bench_function("admission/pod_6_rules_3_policies", |b| {
        b.iter(|| set.decide(black_box(&input), &env))
    });
    for (name, policy) in [("pattern", 0usize), ("jmespath_deny", 1), ("cel", 2)] {
        let docs: Vec<&str> = POLICIES.split("\n---\n").collect();
        let mut one = PolicySet::default();
        one.add_yaml(docs[policy], "one.yaml").unwrap();
        c.bench_function(&format!("admission/policy_{name}"), |b| {
            b.iter(|| one.evaluate(black_box(&input), &env))
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
