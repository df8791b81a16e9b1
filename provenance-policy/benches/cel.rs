//! One CEL rule on a typical Pod: evaluation once the request is bound, binding included,
//! compile, and a whole ValidatingPolicy. Run: `cargo bench -p provenance-policy --bench cel`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use provenance_policy::cel_policies::validating_policy::ValidatingPolicy;
use provenance_policy::lang::cel::{PolicyInput, Program, RequestView, VariableScope};
use serde_json::json;

const RULE: &str = "object.spec.containers.all(c, c.env.exists(e, e.name == 'DATASET_SHA256'))";

fn container(name: &str, image: &str) -> serde_json::Value {
    json!({
        "name": name, "image": image, "imagePullPolicy": "IfNotPresent",
        "ports": [{"containerPort": 8080, "protocol": "TCP"}],
        "env": [
            {"name": "MODEL_PATH", "value": "/models/llama"},
            {"name": "LOG_LEVEL", "value": "info"},
            {"name": "DATASET_SHA256", "value": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}
        ],
        "resources": {"limits": {"cpu": "2", "memory": "8Gi", "nvidia.com/gpu": "1"}, "requests": {"cpu": "1", "memory": "4Gi"}},
        "securityContext": {"runAsNonRoot": true, "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [{"name": "models", "mountPath": "/models", "readOnly": true}]
    })
}

fn pod(n: usize) -> serde_json::Value {
    let containers: Vec<_> = (0..n)
        .map(|i| {
            container(
                &format!("c{i}"),
                &format!("ghcr.io/acme/infer:{i}@sha256:{:064x}", i),
            )
        })
        .collect();
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "inference-0", "namespace": "ml", "labels": {"app": "inference", "team": "ml"},
                     "annotations": {"provenance.dev/model": "llama"}},
        "spec": {"containers": containers, "volumes": [{"name": "models", "persistentVolumeClaim": {"claimName": "models"}}],
                 "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}}}
    })
}

fn bench(c: &mut Criterion) {
    let program = Program::compile(RULE).unwrap();
    for n in [3usize, 20] {
        let input = PolicyInput::create(pod(n));
        let view = RequestView::new(&input);
        let scope = VariableScope::empty(&view);
        assert!(program.evaluate_bool(&scope).unwrap());
        c.bench_function(&format!("cel/eval_bound/{n}_containers"), |b| {
            b.iter(|| black_box(program.evaluate_bool(black_box(&scope)).unwrap()))
        });
        c.bench_function(&format!("cel/bind_and_eval/{n}_containers"), |b| {
            b.iter(|| {
                let view = RequestView::new(black_box(&input));
                let scope = VariableScope::empty(&view);
                black_box(program.evaluate_bool(&scope).unwrap())
            })
        });
    }
    let input = PolicyInput::create(pod(3));
    let view = RequestView::new(&input);
    let scope = VariableScope::empty(&view);
    let simple = Program::compile("object.metadata.labels['app'] == 'inference'").unwrap();
    c.bench_function("cel/eval_bound/label_equals", |b| {
        b.iter(|| black_box(simple.evaluate_bool(black_box(&scope)).unwrap()))
    });
    let lib = Program::compile(
        "object.spec.containers.all(c, quantity(c.resources.limits.memory).isLessThan(quantity('16Gi')))",
    )
    .unwrap();
    assert!(lib.evaluate_bool(&scope).unwrap());
    c.bench_function("cel/eval_bound/quantity_library_3_containers", |b| {
        b.iter(|| black_box(lib.evaluate_bool(black_box(&scope)).unwrap()))
    });
    c.bench_function("cel/compile", |b| {
        b.iter(|| black_box(Program::compile(black_box(RULE)).unwrap()))
    });
    let vp = ValidatingPolicy::from_value(&json!({
        "apiVersion": "policies.kyverno.io/v1", "kind": "ValidatingPolicy",
        "metadata": {"name": "require-dataset-digest"},
        "spec": {
            "validationActions": ["Deny"],
            "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"], "resources": ["pods"]}]},
            "variables": [{"name": "containers", "expression": "object.spec.containers + object.spec.?initContainers.orValue([])"}],
            "validations": [{"expression": "variables.containers.all(c, c.env.exists(e, e.name == 'DATASET_SHA256'))",
                             "message": "every container needs DATASET_SHA256"}]
        }
    }))
    .unwrap();
    assert_eq!(vp.evaluate(&input)[0].message, "success");
    c.bench_function("cel/validating_policy/3_containers", |b| {
        b.iter(|| black_box(vp.evaluate(black_box(&input))))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
