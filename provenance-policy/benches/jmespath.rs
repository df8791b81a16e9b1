//! JMESPath evaluation cost on a ~2 KB Pod AdmissionReview, with a precompiled expression.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use criterion::{Criterion, criterion_group, criterion_main};
use provenance_policy::lang::jmespath::{Env, Expression};
use serde_json::{Value, json};
use std::hint::black_box;

fn admission_review() -> Value {
    let container = |name: &str, image: &str| {
        json!({
            "name": name,
            "image": image,
            "imagePullPolicy": "IfNotPresent",
            "args": ["--model", "/models/llama", "--port", "8080"],
            "env": [
                {"name": "MODEL_DIGEST", "value": "sha256:4f3c1a2b9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a"},
                {"name": "DATASET_SHA256", "value": "0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c"}
            ],
            "ports": [{"containerPort": 8080, "protocol": "TCP"}],
            "resources": {"limits": {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "1"},
                          "requests": {"cpu": "2", "memory": "8Gi"}},
            "securityContext": {"runAsNonRoot": true, "allowPrivilegeEscalation": false,
                                "capabilities": {"drop": ["ALL"]}},
            "volumeMounts": [{"name": "models", "mountPath": "/models", "readOnly": true}]
        })
    };
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "inference",
            "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:ci:deployer", "groups": ["system:serviceaccounts"]},
            "object": {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": "llama-server-7d9f8",
                    "namespace": "inference",
                    "labels": {"app": "llama-server", "team": "ml-platform", "tier": "gpu"},
                    "annotations": {"provenance.dev/model": "registry.example.com/ml/llama3:8b"}
                },
                "spec": {
                    "serviceAccountName": "llama",
                    "containers": [
                        container("server", "registry.example.com/ml/llama-server@sha256:9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b"),
                        container("sidecar", "x")
                    ],
                    "initContainers": [container("fetch-model", "registry.example.com/ml/model-fetcher:v1.2.0")],
                    "volumes": [{"name": "models", "persistentVolumeClaim": {"claimName": "models-pvc"}}]
                }
            }
        }
    })
}

fn bench(c: &mut Criterion) {
    let doc = admission_review();
    let size = serde_json::to_vec(&doc).unwrap().len();
    eprintln!("AdmissionReview size: {size} bytes");
    let env = Env::default();

    let filter =
        Expression::compile("request.object.spec.containers[?image=='x'].name | length(@)")
            .unwrap();
    assert_eq!(filter.search(&doc).unwrap(), json!(1));
    c.bench_function("search: containers[?image=='x'].name | length(@)", |b| {
        b.iter(|| filter.search_with(black_box(&doc), &env).unwrap())
    });

    let path = Expression::compile("request.object.metadata.labels.team").unwrap();
    c.bench_function("search: request.object.metadata.labels.team", |b| {
        b.iter(|| path.search_with(black_box(&doc), &env).unwrap())
    });

    let images = Expression::compile(
        "request.object.spec.[containers, initContainers][][].image | [?starts_with(@, 'registry.example.com/')] | length(@)",
    )
    .unwrap();
    c.bench_function("search: all images with a prefix, counted", |b| {
        b.iter(|| images.search_with(black_box(&doc), &env).unwrap())
    });

    let truthy =
        Expression::compile("request.object.spec.containers[?image=='x'].name | length(@)")
            .unwrap();
    c.bench_function("is_truthy: same filter", |b| {
        b.iter(|| truthy.is_truthy(black_box(&doc), &env).unwrap())
    });

    c.bench_function("compile: containers[?image=='x'].name | length(@)", |b| {
        b.iter(|| {
            Expression::compile(black_box(
                "request.object.spec.containers[?image=='x'].name | length(@)",
            ))
            .unwrap()
        })
    });

    c.bench_function("variables: message with two {{ }}", |b| {
        let msg = "pod {{request.object.metadata.name}} in {{ request.namespace }} is not allowed";
        b.iter(|| {
            provenance_policy::kyverno::variables::substitute_str(
                black_box(msg),
                &doc,
                "/validate/message",
            )
            .unwrap()
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
