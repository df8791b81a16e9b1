//! Mutate rules with `targets` (mutate existing): target selection from the caller's cluster
//! data, `target` in per-target context and preconditions, patches and foreach on targets,
//! missing targets, loading checks, and the mutating admission step.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::Arc;

use provenance_policy::admission::PolicySet;
use provenance_policy::admission::cluster::ClusterSnapshot;
use provenance_policy::admission::request::ResourceInput;
use provenance_policy::core::{RuleStatus, UnixTime};
use provenance_policy::kyverno::engine::Variables;
use provenance_policy::kyverno::mutate::MutateExisting;
use provenance_policy::kyverno::policy::ClusterPolicy;
use provenance_policy::lang::jmespath::Env;
use serde_json::{Value, json};

fn load(yaml: &str) -> Result<ClusterPolicy, provenance_policy::Error> {
    let v = provenance_policy::yaml::load_document(yaml, "p.yaml").unwrap();
    ClusterPolicy::from_value(&v)
}

fn policy(yaml: &str) -> ClusterPolicy {
    load(yaml).unwrap()
}

fn cluster(resources: &[Value]) -> Env {
    let mut s = ClusterSnapshot::new().with_resources_supplied();
    for r in resources {
        s.add_resource(r.clone());
    }
    Env::at(UnixTime(1_800_000_000)).with_cluster(Arc::new(s))
}

fn secret(ns: &str, name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "data": {"k": "dg=="}})
}

fn trigger() -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "settings", "namespace": "staging"},
        "data": {"team": "ml", "secret": "db"}})
}

fn run(p: &ClusterPolicy, trigger: Value, env: &Env) -> MutateExisting {
    p.mutate_existing(
        &ResourceInput::create(trigger),
        &Variables::default(),
        env,
        &[],
    )
}

fn statuses(out: &MutateExisting) -> Vec<(RuleStatus, String)> {
    out.response
        .rules
        .iter()
        .map(|r| (r.status, r.message.clone()))
        .collect()
}

const LABEL_FROM_TRIGGER: &str = r#"
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: label-secrets}
spec:
  rules:
    - name: label
      match: {any: [{resources: {kinds: [ConfigMap], names: [settings]}}]}
      mutate:
        targets:
          - apiVersion: v1
            kind: Secret
            namespace: "{{ request.object.metadata.namespace }}"
            name: "{{ request.object.data.secret }}"
        patchStrategicMerge:
          metadata:
            labels:
              team: "{{ request.object.data.team }}"
              was: "{{ target.metadata.name }}"
"#;

#[test]
fn a_named_target_is_patched_with_trigger_and_target_variables() {
    let p = policy(LABEL_FROM_TRIGGER);
    assert!(p.has_mutate_existing());
    assert!(!p.mutate_existing_on_policy_update());
    let env = cluster(&[
        secret("staging", "db", json!({})),
        secret("prod", "db", json!({})),
    ]);
    let out = run(&p, trigger(), &env);
    assert_eq!(
        statuses(&out),
        vec![(
            RuleStatus::Pass,
            "mutated Secret/db in namespace staging".into()
        )]
    );
    let (rule, patched) = out.patched().next().unwrap();
    assert_eq!(rule, "label");
    assert_eq!(
        patched["metadata"]["labels"],
        json!({"team": "ml", "was": "db"})
    );
    assert_eq!(patched["metadata"]["namespace"], "staging");
    // The result names the target, the original target is kept as read.
    assert_eq!(out.targets[0].result.resource.name, "db");
    assert_eq!(out.targets[0].target["metadata"]["labels"], json!({}));
}

#[test]
fn admission_mutation_leaves_the_trigger_alone() {
    let p = policy(LABEL_FROM_TRIGGER);
    let input = ResourceInput::create(trigger());
    let env = cluster(&[secret("staging", "db", json!({}))]);
    let (resp, object) = p.mutate(&input, &Variables::default(), &env, &[]);
    assert!(resp.rules.is_empty());
    assert_eq!(object, trigger());
}

#[test]
fn a_missing_named_target_is_an_error_and_an_unmatched_pattern_gives_nothing() {
    let p = policy(LABEL_FROM_TRIGGER);
    let env = cluster(&[secret("prod", "db", json!({}))]);
    let out = run(&p, trigger(), &env);
    assert_eq!(out.response.rules.len(), 1);
    let r = &out.response.rules[0];
    assert_eq!(r.status, RuleStatus::Error);
    assert_eq!(r.reasons[0].code, "policy.mutate.target_not_found");
    assert!(out.targets.is_empty());

    let wildcard = policy(
        r#"
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: p}
spec:
  rules:
    - name: label
      match: {any: [{resources: {kinds: [ConfigMap]}}]}
      mutate:
        targets: [{apiVersion: v1, kind: Secret, name: "db-*"}]
        patchStrategicMerge: {metadata: {labels: {x: "1"}}}
"#,
    );
    let out = run(&wildcard, trigger(), &env);
    assert!(out.response.rules.is_empty(), "{:?}", statuses(&out));
}

#[test]
fn without_cluster_data_the_rule_is_unsupported_not_passed() {
    let p = policy(LABEL_FROM_TRIGGER);
    let out = run(&p, trigger(), &Env::at(UnixTime(1_800_000_000)));
    let r = &out.response.rules[0];
    assert_eq!(r.status, RuleStatus::Error);
    assert_eq!(r.reasons[0].code, "policy.unsupported");
}

#[test]
fn selector_wildcards_and_per_target_preconditions() {
    let p = policy(
        r#"
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: p}
spec:
  rules:
    - name: rotate
      match: {any: [{resources: {kinds: [ConfigMap]}}]}
      context:
        - name: stamp
          variable: {value: "2024"}
      mutate:
        targets:
          - apiVersion: v1
            kind: Secret
            namespace: "prod-*"
            selector: {matchLabels: {rotate: "yes"}}
            context:
              - name: owner
                variable: {jmesPath: "target.metadata.labels.owner", default: none}
            preconditions:
              all:
                - key: "{{ owner }}"
                  operator: NotEquals
                  value: frozen
        patchesJson6902: |-
          - op: add
            path: /metadata/annotations
            value: {rotated: "{{ stamp }}", owner: "{{ owner }}"}
"#,
    );
    let env = cluster(&[
        secret("prod-eu", "a", json!({"rotate": "yes", "owner": "ana"})),
        secret("prod-us", "b", json!({"rotate": "yes", "owner": "frozen"})),
        secret("prod-us", "c", json!({"rotate": "no"})),
        secret("dev", "d", json!({"rotate": "yes"})),
    ]);
    let out = run(&p, trigger(), &env);
    let by_name: Vec<(String, RuleStatus)> = out
        .targets
        .iter()
        .map(|t| (t.result.resource.name.clone(), t.result.status))
        .collect();
    assert_eq!(
        by_name,
        vec![
            ("a".to_owned(), RuleStatus::Pass),
            ("b".to_owned(), RuleStatus::Skip)
        ]
    );
    assert_eq!(
        out.targets[0].patched.as_ref().unwrap()["metadata"]["annotations"],
        json!({"rotated": "2024", "owner": "ana"})
    );
    assert_eq!(out.targets[1].result.message, "preconditions not met");
}

#[test]
fn foreach_runs_over_the_target() {
    let p = policy(
        r#"
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: p}
spec:
  rules:
    - name: pin
      match: {any: [{resources: {kinds: [ConfigMap]}}]}
      mutate:
        targets: [{apiVersion: apps/v1, kind: Deployment, namespace: staging, name: web}]
        foreach:
          - list: "target.spec.template.spec.containers"
            patchStrategicMerge:
              spec:
                template:
                  spec:
                    containers:
                      - name: "{{ element.name }}"
                        env: [{name: TEAM, value: "{{ request.object.data.team }}"}]
"#,
    );
    let deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "staging"},
        "spec": {"template": {"spec": {"containers": [
            {"name": "a", "image": "nginx"}, {"name": "b", "image": "redis"}]}}}});
    let out = run(&p, trigger(), &cluster(&[deploy]));
    assert_eq!(out.response.rules[0].status, RuleStatus::Pass);
    let patched = out.targets[0].patched.as_ref().unwrap();
    for c in patched["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
    {
        assert_eq!(c["env"], json!([{"name": "TEAM", "value": "ml"}]));
    }
}

#[test]
fn rule_preconditions_and_match_come_first() {
    let p = policy(
        r#"
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: p}
spec:
  rules:
    - name: label
      match: {any: [{resources: {kinds: [ConfigMap]}}]}
      preconditions:
        all: [{key: "{{ request.object.data.team }}", operator: Equals, value: infra}]
      mutate:
        targets: [{apiVersion: v1, kind: Secret, namespace: staging, name: db}]
        patchStrategicMerge: {metadata: {labels: {x: "1"}}}
"#,
    );
    let env = cluster(&[secret("staging", "db", json!({}))]);
    let out = run(&p, trigger(), &env);
    assert_eq!(
        statuses(&out),
        vec![(RuleStatus::Skip, "preconditions not met".into())]
    );
    let mut other = trigger();
    other["kind"] = json!("Service");
    assert!(run(&p, other, &env).response.rules.is_empty());
}

#[test]
fn a_namespaced_policy_reads_its_own_namespace_only() {
    let p = policy(
        r#"
apiVersion: kyverno.io/v1
kind: Policy
metadata: {name: p, namespace: staging}
spec:
  rules:
    - name: label
      match: {any: [{resources: {kinds: [ConfigMap]}}]}
      mutate:
        targets: [{apiVersion: v1, kind: Secret}]
        patchStrategicMerge: {metadata: {labels: {x: "1"}}}
"#,
    );
    let env = cluster(&[
        secret("staging", "a", json!({})),
        secret("prod", "b", json!({})),
    ]);
    let out = run(&p, trigger(), &env);
    let names: Vec<&str> = out
        .targets
        .iter()
        .map(|t| t.result.resource.name.as_str())
        .collect();
    assert_eq!(names, vec!["a"]);
}

#[test]
fn loading_refuses_what_is_not_evaluated() {
    let base = |target: &str, extra: &str| {
        format!(
            r#"
apiVersion: kyverno.io/v1
kind: {kind}
metadata: {{name: p, namespace: staging}}
spec:
  rules:
    - name: r
      match: {{any: [{{resources: {{kinds: [ConfigMap]}}}}]}}
      mutate:
        {extra}
        targets: [{target}]
        patchStrategicMerge: {{metadata: {{labels: {{x: "1"}}}}}}
"#,
            kind = if target.contains("prod") {
                "Policy"
            } else {
                "ClusterPolicy"
            }
        )
    };
    let code = |yaml: String| load(&yaml).map(|_| ()).unwrap_err().code();
    assert_eq!(
        code(base("{apiVersion: v1, kind: Secret, uid: abc}", "")),
        "policy.unsupported"
    );
    assert_eq!(
        code(base("{apiVersion: apps/v1, kind: Deployment/scale}", "")),
        "policy.unsupported"
    );
    assert_eq!(
        code(base("{apiVersion: v1, kind: '*'}", "")),
        "policy.unsupported"
    );
    assert_eq!(code(base("{kind: Secret}", "")), "policy.invalid");
    assert_eq!(
        code(base("{apiVersion: v1, kind: Secret, namespace: prod}", "")),
        "policy.invalid"
    );
    assert_eq!(
        code(base(
            "{apiVersion: v1, kind: Secret}",
            "mutateExistingOnPolicyUpdate: yes-please"
        )),
        "policy.invalid"
    );
    // mutateExistingOnPolicyUpdate needs targets.
    let no_targets = r#"
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: p}
spec:
  mutateExistingOnPolicyUpdate: true
  rules:
    - name: r
      match: {any: [{resources: {kinds: [ConfigMap]}}]}
      mutate:
        patchStrategicMerge: {metadata: {labels: {x: "1"}}}
"#;
    assert_eq!(load(no_targets).unwrap_err().code(), "policy.invalid");
    let on_update = policy(&base(
        "{apiVersion: v1, kind: Secret}",
        "mutateExistingOnPolicyUpdate: true",
    ));
    assert!(on_update.mutate_existing_on_policy_update());
}

#[test]
fn decide_mutating_reports_targets_without_blocking() {
    let mut set = PolicySet::default();
    set.add_yaml(LABEL_FROM_TRIGGER, "p.yaml").unwrap();
    let input = ResourceInput::create(trigger());
    let env = cluster(&[secret("staging", "db", json!({}))]);
    let d = set.decide_mutating(&input, &env, None);
    assert!(d.allowed);
    assert!(d.mutation_blocking.is_empty());
    assert!(d.mutation_patches.is_empty());
    assert_eq!(d.mutated_targets.len(), 1);
    assert_eq!(
        d.mutated_targets[0].patched.as_ref().unwrap()["metadata"]["labels"]["team"],
        "ml"
    );
    assert!(
        d.results
            .iter()
            .any(|r| r.rule == "label" && r.status == RuleStatus::Pass)
    );
    // Without cluster data: an error result, still not blocking.
    let d = set.decide_mutating(&input, &Env::at(UnixTime(1_800_000_000)), None);
    assert!(d.mutation_blocking.is_empty());
    assert!(d.results.iter().any(|r| r.status == RuleStatus::Error));
}
