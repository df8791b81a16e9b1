//! Admission decisions: enforce vs audit, fail-closed errors, failurePolicy Ignore,
//! allowExistingViolations on UPDATE, AdmissionReview in and out, PolicyReports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::BTreeMap;

use provenance_core::{RuleStatus, UnixTime};
use provenance_policy::admission::PolicySet;
use provenance_policy::admission::report::policy_reports;
use provenance_policy::lang::jmespath::Env;
use provenance_policy::{Phase, RequestFacts, Review};
use serde_json::{Value, json};

const POLICIES: &str = r#"
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: require-team-label}
spec:
  validationFailureAction: Enforce
  rules:
  - name: team
    match: {any: [{resources: {kinds: [Pod]}}]}
    validate:
      message: "label 'team' is required"
      pattern: {metadata: {labels: {team: "?*"}}}
---
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: audit-gpu-limits}
spec:
  validationFailureAction: Audit
  rules:
  - name: gpu-memory
    match: {any: [{resources: {kinds: [Pod]}}]}
    validate:
      message: "GPU containers should set memory limits"
      deny:
        conditions:
          any:
          - key: "{{ request.object.spec.containers[?resources.limits.\"nvidia.com/gpu\"] | [?!(resources.limits.memory)] | length(@) }}"
            operator: GreaterThan
            value: 0
---
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: needs-configmap}
spec:
  validationFailureAction: Enforce
  failurePolicy: Ignore
  rules:
  - name: lookup
    match: {any: [{resources: {kinds: [Pod]}}]}
    context:
    - name: cm
      configMap: {name: allowed, namespace: default}
    validate:
      message: "x"
      deny: {}
"#;

fn pod(labels: Value, gpu_without_memory: bool) -> Value {
    let limits = if gpu_without_memory {
        json!({"nvidia.com/gpu": "1"})
    } else {
        json!({"memory": "1Gi"})
    };
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "namespace": "ml", "labels": labels},
        "spec": {"containers": [{"name": "c", "image": "registry.example.com/ml/s:1", "resources": {"limits": limits}}]}})
}

fn review(op: &str, object: Value, old: Value) -> Value {
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": "u-1", "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "operation": op, "namespace": "ml", "name": "p",
            "userInfo": {"username": "alice", "groups": ["dev"]},
            "object": object, "oldObject": old}})
}

fn set() -> PolicySet {
    let mut s = PolicySet::default();
    s.add_yaml(POLICIES, "policies.yaml").unwrap();
    s
}

fn env() -> Env {
    Env::at(UnixTime(1_800_000_000))
}

/// The answer to `review` through the front door: the namespace's labels known (none).
fn answer(set: &PolicySet, review: &Value) -> Result<Value, provenance_policy::Error> {
    let facts = RequestFacts::new().namespace_labels(BTreeMap::<String, String>::new());
    let review = Review::parse(review, &facts)?;
    Ok(set.respond(&review, Phase::Validate, None, &env()).review)
}

#[test]
fn enforce_blocks_with_kyverno_message_and_audit_warns() {
    let out = answer(&set(), &review("CREATE", pod(json!({}), true), Value::Null)).unwrap();
    let r = &out["response"];
    assert_eq!(r["uid"], "u-1");
    assert_eq!(r["allowed"], false);
    let msg = r["status"]["message"].as_str().unwrap();
    assert!(
        msg.starts_with("\n\nresource Pod/ml/p was blocked due to the following policies \n\n"),
        "{msg:?}"
    );
    assert!(msg.contains("require-team-label:\n  team: 'validation error: label ''team'' is required. rule team failed at path /metadata/labels/team/'"), "{msg:?}");
    let warnings: Vec<&str> = r["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    assert!(
        warnings.contains(
            &"policy audit-gpu-limits.gpu-memory: GPU containers should set memory limits"
        ),
        "{warnings:?}"
    );
    // The unsupported configMap lookup is an error; its policy says failurePolicy Ignore, so
    // it does not block, and it is not a pass either.
    assert!(
        warnings
            .iter()
            .any(|w| w.starts_with("policy needs-configmap.lookup: unsupported")),
        "{warnings:?}"
    );
}

#[test]
fn unsupported_feature_in_an_enforced_fail_policy_blocks() {
    let text = POLICIES.replace("  failurePolicy: Ignore\n", "");
    let mut s = PolicySet::default();
    s.add_yaml(&text, "p.yaml").unwrap();
    let out = answer(
        &s,
        &review("CREATE", pod(json!({"team": "ml"}), false), Value::Null),
    )
    .unwrap();
    assert_eq!(out["response"]["allowed"], false);
    assert!(
        out["response"]["status"]["message"]
            .as_str()
            .unwrap()
            .contains("needs-configmap:")
    );
}

#[test]
fn existing_violations_do_not_block_updates() {
    let s = set();
    let bad = pod(json!({}), false);
    let update = review("UPDATE", bad.clone(), bad.clone());
    let input =
        provenance_policy::admission::input_from_review(&update, BTreeMap::new(), None).unwrap();
    let d = s.decide(&input, &env());
    let team = d
        .results
        .iter()
        .find(|r| r.policy == "require-team-label")
        .unwrap();
    assert_eq!(team.status, RuleStatus::Skip, "{team:?}");
    assert!(!d.message.contains("require-team-label"));
    // But an update that introduces the violation is blocked.
    let update = review("UPDATE", bad, pod(json!({"team": "ml"}), false));
    let input =
        provenance_policy::admission::input_from_review(&update, BTreeMap::new(), None).unwrap();
    let d = s.decide(&input, &env());
    assert!(d.message.contains("require-team-label"), "{d:?}");
}

#[test]
fn allowed_round_trip_and_reports() {
    let out = answer(
        &set(),
        &review("CREATE", pod(json!({"team": "ml"}), false), Value::Null),
    )
    .unwrap();
    assert_eq!(out["response"]["allowed"], true, "{out}");
    assert_eq!(out["response"]["uid"], "u-1");

    let s = set();
    let input = provenance_policy::admission::request::ResourceInput::create(pod(json!({}), true));
    let d = s.decide(&input, &env());
    let reports = policy_reports(&d.results, UnixTime(1_800_000_000));
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0]["kind"], "PolicyReport");
    assert_eq!(reports[0]["metadata"]["namespace"], "ml");
    assert_eq!(reports[0]["summary"]["fail"], 2);
    assert_eq!(reports[0]["summary"]["error"], 1);
}

#[test]
fn malformed_requests_are_errors_not_decisions() {
    let s = set();
    for bad in [
        json!({}),
        json!({"request": {"operation": "CREATE"}}),
        json!({"request": {"operation": "PATCH", "object": {}}}),
        json!({"request": {"operation": "CREATE", "object": "x"}}),
    ] {
        let e = answer(&s, &bad).unwrap_err();
        assert_eq!(e.code(), "policy.request", "{bad}");
    }
}
