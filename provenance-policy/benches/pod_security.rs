//! `validate.podSecurity` at the restricted level on a typical 3-container Pod (init container,
//! app, sidecar, volumes, probes): passing, failing (message built), and with excludes.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use provenance_policy::kyverno::pod_security::{PodSecurity, PssOutcome};
use serde_json::{Value, json};

fn container(name: &str, image: &str) -> Value {
    json!({
        "name": name,
        "image": image,
        "ports": [{"containerPort": 8080, "protocol": "TCP"}],
        "resources": {"limits": {"cpu": "2", "memory": "4Gi", "nvidia.com/gpu": "1"}},
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}},
        "securityContext": {
            "allowPrivilegeEscalation": false,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": true
        }
    })
}

fn pod() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "inference", "namespace": "ml", "labels": {"app": "inference"}},
        "spec": {
            "securityContext": {
                "runAsNonRoot": true,
                "runAsUser": 1000,
                "seccompProfile": {"type": "RuntimeDefault"}
            },
            "initContainers": [container("model-fetch", "ghcr.io/example/fetch:1.2")],
            "containers": [
                container("server", "ghcr.io/example/vllm:0.6"),
                container("metrics", "ghcr.io/example/exporter:2.1")
            ],
            "volumes": [
                {"name": "models", "persistentVolumeClaim": {"claimName": "models"}},
                {"name": "cache", "emptyDir": {}},
                {"name": "token", "projected": {"sources": []}}
            ]
        }
    })
}

fn bench(c: &mut Criterion) {
    let restricted =
        PodSecurity::from_value(&json!({"level": "restricted", "version": "latest"})).unwrap();
    let good = pod();
    assert_eq!(restricted.check(&good), PssOutcome::Pass);
    c.bench_function("pss/restricted/pass/3-containers", |b| {
        b.iter(|| black_box(restricted.check(black_box(&good))))
    });

    let mut bad = pod();
    bad["spec"]["containers"][0]["securityContext"] = json!({"privileged": true});
    bad["spec"]["hostNetwork"] = json!(true);
    assert!(matches!(restricted.check(&bad), PssOutcome::Fail { .. }));
    c.bench_function("pss/restricted/fail/3-containers", |b| {
        b.iter(|| black_box(restricted.check(black_box(&bad))))
    });

    let with_excludes = PodSecurity::from_value(&json!({
        "level": "restricted", "version": "latest",
        "exclude": [
            {"controlName": "Host Namespaces"},
            {"controlName": "Privileged Containers", "images": ["ghcr.io/example/vllm:*"]},
            {"controlName": "Privilege Escalation", "images": ["ghcr.io/example/vllm:*"]},
            {"controlName": "Capabilities", "images": ["ghcr.io/example/vllm:*"]}
        ]
    }))
    .unwrap();
    assert_eq!(with_excludes.check(&bad), PssOutcome::Pass);
    c.bench_function("pss/restricted/excluded/3-containers", |b| {
        b.iter(|| black_box(with_excludes.check(black_box(&bad))))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
