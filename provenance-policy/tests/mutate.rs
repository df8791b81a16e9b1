//! Mutate rules: rule order, foreach, preconditions, autogen, and the mutating admission
//! answer's JSONPatch.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use base64::Engine as _;
use provenance_policy::admission::PolicySet;
use provenance_policy::admission::request::ResourceInput;
use provenance_policy::admission::review::{Phase, RequestFacts, Review};
use provenance_policy::core::{RuleStatus, UnixTime};
use provenance_policy::kyverno::engine::Variables;
use provenance_policy::kyverno::mutate::json_patch;
use provenance_policy::kyverno::policy::ClusterPolicy;
use provenance_policy::lang::jmespath::Env;
use serde_json::{Value, json};

fn env() -> Env {
    Env::at(UnixTime(1_800_000_000))
}

fn policy(yaml: &str) -> ClusterPolicy {
    let v = provenance_policy::yaml::load_document(yaml, "p.yaml").unwrap();
    ClusterPolicy::from_value(&v).unwrap()
}

fn pod() -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "namespace": "ml", "labels": {"app": "x"}},
        "spec": {"containers": [
            {"name": "a", "image": "nginx:latest"},
            {"name": "b", "image": "redis:7"}]}})
}

fn mutate(p: &ClusterPolicy, object: Value) -> (Vec<(String, RuleStatus, String)>, Value) {
    let input = ResourceInput::create(object);
    let (resp, out) = p.mutate(&input, &Variables::default(), &env(), &[]);
    (
        resp.rules
            .into_iter()
            .map(|r| (r.rule, r.status, r.message))
            .collect(),
        out,
    )
}

const RULES: &str = r#"
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: m}
spec:
  rules:
    - name: label
      match: {any: [{resources: {kinds: [Pod]}}]}
      mutate:
        patchStrategicMerge:
          metadata:
            labels:
              team: "{{ request.object.metadata.labels.app }}-team"
    - name: sees-previous
      match: {any: [{resources: {kinds: [Pod]}}]}
      preconditions:
        all:
          - {key: "{{ request.object.metadata.labels.team || '' }}", operator: Equals, value: x-team}
      mutate:
        patchesJson6902: |-
          - op: add
            path: /metadata/annotations
            value: {seen: "yes"}
    - name: skipped
      match: {any: [{resources: {kinds: [Pod]}}]}
      preconditions:
        all:
          - {key: "{{ request.object.metadata.name }}", operator: Equals, value: other}
      mutate:
        patchStrategicMerge: {metadata: {labels: {never: "1"}}}
    - name: nothing-to-do
      match: {any: [{resources: {kinds: [Pod]}}]}
      mutate:
        patchStrategicMerge: {metadata: {labels: {app: x}}}
"#;

#[test]
fn rules_apply_in_order_and_see_the_previous_output() {
    let p = policy(RULES);
    let (results, out) = mutate(&p, pod());
    let statuses: Vec<_> = results.iter().map(|(r, s, _)| (r.as_str(), *s)).collect();
    assert_eq!(
        statuses,
        [
            ("label", RuleStatus::Pass),
            ("sees-previous", RuleStatus::Pass),
            ("skipped", RuleStatus::Skip),
            ("nothing-to-do", RuleStatus::Skip),
        ]
    );
    assert_eq!(results[0].2, "mutated Pod/p in namespace ml");
    assert_eq!(results[2].2, "preconditions not met");
    assert_eq!(results[3].2, "no patches applied");
    assert_eq!(out["metadata"]["labels"]["team"], "x-team");
    assert_eq!(out["metadata"]["annotations"]["seen"], "yes");
}

#[test]
fn foreach_with_element_preconditions_and_order() {
    let p = policy(
        r#"
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: m}
spec:
  rules:
    - name: pull-always
      match: {any: [{resources: {kinds: [Pod]}}]}
      mutate:
        foreach:
          - list: request.object.spec.containers
            preconditions:
              all:
                - {key: "{{ element.image }}", operator: Equals, value: "*:latest"}
            patchesJson6902: |-
              - op: add
                path: /spec/containers/{{ elementIndex }}/imagePullPolicy
                value: Always
          - list: request.object.spec.containers
            patchStrategicMerge:
              metadata:
                annotations:
                  "seen-{{ element.name }}": "{{ elementIndex }}"
"#,
    );
    let (results, out) = mutate(&p, pod());
    assert_eq!(results[0].1, RuleStatus::Pass, "{results:?}");
    assert_eq!(out["spec"]["containers"][0]["imagePullPolicy"], "Always");
    assert!(
        out["spec"]["containers"][1]
            .get("imagePullPolicy")
            .is_none()
    );
    // A value that is one whole variable keeps its type, as in Kyverno.
    assert_eq!(out["metadata"]["annotations"]["seen-a"], 0);
    assert_eq!(out["metadata"]["annotations"]["seen-b"], 1);
}

#[test]
fn errors_are_rule_errors_not_panics() {
    let p = policy(
        r#"
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: m}
spec:
  rules:
    - name: bad-pointer
      match: {any: [{resources: {kinds: [Pod]}}]}
      mutate:
        patchesJson6902: '[{"op": "replace", "path": "/spec/nope/x", "value": 1}]'
    - name: test-fails
      match: {any: [{resources: {kinds: [Pod]}}]}
      mutate:
        patchesJson6902: '[{"op": "test", "path": "/metadata/name", "value": "q"}]'
    - name: bad-structure
      match: {any: [{resources: {kinds: [Pod]}}]}
      mutate:
        patchStrategicMerge: {spec: {containers: "not a list"}}
    - name: missing-variable
      match: {any: [{resources: {kinds: [Pod]}}]}
      mutate:
        patchStrategicMerge: {metadata: {labels: {x: "{{ request.object.nope.deeper }}"}}}
    - name: targets
      match: {any: [{resources: {kinds: [Pod]}}]}
      mutate:
        targets: [{apiVersion: v1, kind: ConfigMap, name: c}]
        patchStrategicMerge: {metadata: {labels: {x: "1"}}}
"#,
    );
    let (results, out) = mutate(&p, pod());
    assert_eq!(out, pod());
    // The rule with targets mutates existing resources: no result on the request's object
    // (see tests/mutate_existing.rs).
    assert_eq!(results.len(), 4);
    for (rule, status, msg) in &results {
        assert_eq!(*status, RuleStatus::Error, "{rule}: {msg}");
    }
    assert!(results[0].2.contains("missing key"), "{}", results[0].2);
    assert!(
        results[1].2.contains("test /metadata/name failed"),
        "{}",
        results[1].2
    );
    assert!(
        results[2].2.contains("cannot merge a scalar onto a list"),
        "{}",
        results[2].2
    );
}

#[test]
fn autogen_wraps_the_patch_in_the_template() {
    let p = policy(
        r#"
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: m}
spec:
  rules:
    - name: label
      match: {any: [{resources: {kinds: [Pod]}}]}
      mutate:
        patchStrategicMerge:
          metadata: {labels: {team: ml}}
          spec:
            containers:
              - (image): "*:latest"
                imagePullPolicy: Always
"#,
    );
    let deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "d", "namespace": "ml"},
        "spec": {"template": {"metadata": {"labels": {"app": "x"}},
            "spec": {"containers": [{"name": "a", "image": "nginx:latest"}]}}}});
    let (results, out) = mutate(&p, deploy);
    assert_eq!(results[0].0, "autogen-label");
    assert_eq!(results[0].1, RuleStatus::Pass);
    assert_eq!(out["spec"]["template"]["metadata"]["labels"]["team"], "ml");
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
        "Always"
    );
}

fn review(object: &Value) -> Review {
    let body = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": "7", "operation": "CREATE", "namespace": "ml",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "object": object}});
    Review::parse(&body, &RequestFacts::new().namespace_labels([("a", "b")])).unwrap()
}

#[test]
fn mutating_answer_carries_a_patch_that_applies_and_validation_sees_it() {
    let mut set = PolicySet::default();
    set.add_yaml(RULES, "m.yaml").unwrap();
    set.add_yaml(
        r#"
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: needs-team}
spec:
  validationFailureAction: Enforce
  rules:
    - name: team
      match: {any: [{resources: {kinds: [Pod]}}]}
      validate:
        message: team label required
        pattern: {metadata: {labels: {team: "?*"}}}
"#,
        "v.yaml",
    )
    .unwrap();
    let object = pod();
    let answer = set.respond(&review(&object), Phase::Mutate, None, &env());
    let resp = &answer.review["response"];
    assert_eq!(resp["allowed"], true);
    assert_eq!(resp["patchType"], "JSONPatch");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(resp["patch"].as_str().unwrap())
        .unwrap();
    let ops: Vec<Value> = serde_json::from_slice(&bytes).unwrap();
    let patched = json_patch::apply(&object, &ops, "patch").unwrap();
    assert_eq!(patched["metadata"]["labels"]["team"], "x-team");
    // The validation inside the mutating step saw the mutated object.
    assert!(answer.decision.allowed, "{:?}", answer.decision.blocking);
    // The validating step takes the object as submitted: unmutated, it is denied.
    let denied = set.respond(&review(&object), Phase::Validate, None, &env());
    assert_eq!(denied.review["response"]["allowed"], false);
    let allowed = set.respond(&review(&patched), Phase::Validate, None, &env());
    assert_eq!(allowed.review["response"]["allowed"], true);
}

#[test]
fn mutate_error_blocks_the_mutating_step_under_fail_policy() {
    let mut set = PolicySet::default();
    set.add_yaml(
        r#"
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: broken}
spec:
  rules:
    - name: bad
      match: {any: [{resources: {kinds: [Pod]}}]}
      mutate:
        patchesJson6902: '[{"op": "test", "path": "/metadata/name", "value": "q"}]'
"#,
        "b.yaml",
    )
    .unwrap();
    let answer = set.respond(&review(&pod()), Phase::Mutate, None, &env());
    let resp = &answer.review["response"];
    assert_eq!(resp["allowed"], false);
    assert!(resp.get("patch").is_none());
    assert_eq!(
        resp["status"]["details"]["causes"][0]["field"],
        "broken/bad"
    );
}

/// A Pod with `n` containers `c0`, `c1`, ...
fn wide_pod(n: usize) -> Value {
    let containers: Vec<Value> = (0..n)
        .map(|i| json!({"name": format!("c{i}"), "image": "nginx:1"}))
        .collect();
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "wide", "namespace": "ml"},
           "spec": {"containers": containers}})
}

#[test]
fn wide_pods_merge_by_key_and_a_foreach_over_too_many_elements_is_an_error() {
    // A sidecar injected into a Pod with thousands of containers: the keyed merge finds each
    // element through a map (a Pod author controls the list's length).
    let sidecar = policy(
        r#"
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: sidecar}
spec:
  rules:
    - name: inject
      match: {any: [{resources: {kinds: [Pod]}}]}
      mutate:
        patchStrategicMerge:
          spec:
            containers:
              - name: proxy
                image: proxy:1
              - (name): "c1*"
                imagePullPolicy: Always
"#,
    );
    let n = 20_000;
    let (results, out) = mutate(&sidecar, wide_pod(n));
    assert_eq!(results[0].1, RuleStatus::Pass, "{results:?}");
    let containers = out["spec"]["containers"].as_array().unwrap();
    assert_eq!(containers.len(), n + 1);
    assert_eq!(containers[0]["name"], "proxy");
    let pulled = containers
        .iter()
        .filter(|c| c["imagePullPolicy"] == "Always")
        .count();
    // c1, c10..c19, c100..c199, c1000..c1999, c10000..c19999
    assert_eq!(pulled, 1 + 10 + 100 + 1000 + 10_000);

    let each = policy(
        r#"
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: each}
spec:
  rules:
    - name: pull-always
      match: {any: [{resources: {kinds: [Pod]}}]}
      mutate:
        foreach:
          - list: "request.object.spec.containers"
            patchStrategicMerge:
              spec:
                containers:
                  - name: "{{ element.name }}"
                    imagePullPolicy: Always
"#,
    );
    let (results, _) = mutate(&each, wide_pod(4));
    assert_eq!(results[0].1, RuleStatus::Pass, "{results:?}");
    let limit = provenance_policy::kyverno::mutate::MAX_FOREACH_ELEMENTS;
    let (results, out) = mutate(&each, wide_pod(limit + 1));
    assert_eq!(results[0].1, RuleStatus::Error, "{results:?}");
    assert!(results[0].2.contains("more than the 1024"), "{results:?}");
    assert!(
        out["spec"]["containers"][0]
            .get("imagePullPolicy")
            .is_none()
    );
}
