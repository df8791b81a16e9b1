//! Rule `context` entries that read cluster data (`configMap`, `apiCall`, `globalReference`)
//! answered by a `ClusterData` the caller supplies; missing data is an `error` with the
//! look-up's code, never a pass.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::Arc;

use provenance_core::{RuleResult, RuleStatus, UnixTime};
use provenance_policy::admission::cluster::{CannedResponse, ClusterSnapshot};
use provenance_policy::admission::request::ResourceInput;
use provenance_policy::kyverno::engine::{UNSUPPORTED, Variables};
use provenance_policy::kyverno::policy::ClusterPolicy;
use provenance_policy::lang::jmespath::Env;
use serde_json::{Value, json};

fn policy(context: Value, deny_key: &str, deny_value: Value) -> ClusterPolicy {
    ClusterPolicy::from_value(&json!({
        "apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy",
        "metadata": {"name": "p"},
        "spec": {"validationFailureAction": "Enforce", "rules": [{
            "name": "r",
            "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
            "context": context,
            "validate": {"message": "denied", "deny": {"conditions": {"any": [
                {"key": deny_key, "operator": "Equals", "value": deny_value}
            ]}}}
        }]}
    }))
    .unwrap()
}

fn pod(labels: Value) -> ResourceInput {
    ResourceInput::create(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p1", "namespace": "default", "labels": labels},
        "spec": {"containers": [{"name": "c", "image": "nginx"}]}}))
}

fn snapshot() -> ClusterSnapshot {
    let mut s = ClusterSnapshot::new();
    s.add_resource(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "blocked", "namespace": "default"},
        "data": {"teams": "red"}}));
    s.add_resource(json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "default", "labels": {"tier": "gold"}}}));
    for (n, tier) in [("a", "gold"), ("b", "silver"), ("c", "gold")] {
        s.add_resource(json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": n, "namespace": "default", "labels": {"tier": tier}}}));
    }
    s.add_global_context("quotas", json!({"gpu": 8, "tpu": 0}));
    s.add_response(
        None,
        "https://svc.example/check",
        CannedResponse {
            status: 200,
            body: json!({"allowed": false}),
        },
    );
    s.add_response(
        None,
        "https://svc.example/down",
        CannedResponse {
            status: 503,
            body: json!({}),
        },
    );
    s
}

fn run(p: &ClusterPolicy, input: &ResourceInput, cluster: Option<ClusterSnapshot>) -> RuleResult {
    let mut env = Env::at(UnixTime(1_767_225_600));
    if let Some(c) = cluster {
        env = env.with_cluster(Arc::new(c));
    }
    let resp = p.evaluate(input, &Variables::default(), &env);
    assert_eq!(resp.rules.len(), 1, "{resp:?}");
    resp.rules[0].clone()
}

fn code(r: &RuleResult) -> &str {
    r.reasons.first().map(|x| x.code.as_str()).unwrap_or("")
}

#[test]
fn config_map_is_read_and_missing_one_errors() {
    let p = policy(
        json!([{"name": "cm", "configMap": {"name": "blocked", "namespace": "default"}}]),
        "{{ cm.data.teams }}",
        json!("{{ request.object.metadata.labels.team }}"),
    );
    let red = run(&p, &pod(json!({"team": "red"})), Some(snapshot()));
    assert_eq!(red.status, RuleStatus::Fail, "{red:?}");
    let blue = run(&p, &pod(json!({"team": "blue"})), Some(snapshot()));
    assert_eq!(blue.status, RuleStatus::Pass, "{blue:?}");

    let missing = policy(
        json!([{"name": "cm", "configMap": {"name": "absent"}}]),
        "{{ cm.data.teams }}",
        json!("red"),
    );
    let r = run(&missing, &pod(json!({})), Some(snapshot()));
    assert_eq!(r.status, RuleStatus::Error);
    assert_eq!(code(&r), "policy.context.not_found");
    assert!(
        r.message.contains("ConfigMap default/absent not found"),
        "{}",
        r.message
    );
}

#[test]
fn without_cluster_data_the_entry_is_unsupported() {
    let p = policy(
        json!([{"name": "cm", "configMap": {"name": "blocked", "namespace": "default"}}]),
        "{{ cm.data.teams }}",
        json!("red"),
    );
    let r = run(&p, &pod(json!({})), None);
    assert_eq!(r.status, RuleStatus::Error);
    assert_eq!(code(&r), UNSUPPORTED);
    // A source that holds no resources says so the same way.
    let r = run(&p, &pod(json!({})), Some(ClusterSnapshot::new()));
    assert_eq!(r.status, RuleStatus::Error);
    assert_eq!(code(&r), UNSUPPORTED);
}

#[test]
fn api_call_get_list_with_selector_and_jmespath() {
    let p = policy(
        json!([{"name": "golds", "apiCall": {
            "urlPath": "/api/v1/namespaces/{{ request.namespace }}/services?labelSelector=tier%3Dgold",
            "jmesPath": "items | length(@)"}}]),
        "{{ golds }}",
        json!(2),
    );
    let r = run(&p, &pod(json!({})), Some(snapshot()));
    assert_eq!(r.status, RuleStatus::Fail, "{r:?}");

    let ns = policy(
        json!([{"name": "ns", "apiCall": {"urlPath": "/api/v1/namespaces/default"}}]),
        "{{ ns.metadata.labels.tier }}",
        json!("gold"),
    );
    // `/api/v1/namespaces/default` is a GET of the Namespace named default.
    assert_eq!(
        run(&ns, &pod(json!({})), Some(snapshot())).status,
        RuleStatus::Fail
    );
}

#[test]
fn api_call_failure_takes_default_or_errors() {
    let with_default = policy(
        json!([{"name": "thing", "apiCall": {
            "urlPath": "/apis/example.com/v1/things/absent", "default": {"ok": true}}}]),
        "{{ thing.ok }}",
        json!(true),
    );
    let r = run(&with_default, &pod(json!({})), Some(snapshot()));
    assert_eq!(r.status, RuleStatus::Fail, "{r:?}");

    let without = policy(
        json!([{"name": "thing", "apiCall": {"urlPath": "/apis/example.com/v1/things/absent"}}]),
        "{{ thing.ok }}",
        json!(true),
    );
    let r = run(&without, &pod(json!({})), Some(snapshot()));
    assert_eq!(r.status, RuleStatus::Error);
    assert_eq!(code(&r), "policy.context.not_found");
}

#[test]
fn failed_lookup_is_lazy_like_kyverno() {
    // A variable that reads a failed look-up takes its default; the rule then passes on it.
    let p = policy(
        json!([
            {"name": "thing", "apiCall": {"urlPath": "/apis/example.com/v1/things/absent"}},
            {"name": "spot", "variable": {"jmesPath": "thing.spec.spot", "default": "no"}}
        ]),
        "{{ spot }}",
        json!("yes"),
    );
    let r = run(&p, &pod(json!({})), Some(snapshot()));
    assert_eq!(r.status, RuleStatus::Pass, "{r:?}");
    // Without a default, that variable fails with the look-up's error.
    let p = policy(
        json!([
            {"name": "thing", "apiCall": {"urlPath": "/apis/example.com/v1/things/absent"}},
            {"name": "spot", "variable": {"jmesPath": "thing.spec.spot"}}
        ]),
        "{{ spot }}",
        json!("yes"),
    );
    let r = run(&p, &pod(json!({})), Some(snapshot()));
    assert_eq!(r.status, RuleStatus::Error);
    assert_eq!(code(&r), "policy.context.not_found");
    // A failed look-up nothing reads is harmless.
    let p = policy(
        json!([{"name": "unused", "configMap": {"name": "absent", "namespace": "default"}}]),
        "{{ request.object.metadata.name }}",
        json!("other"),
    );
    assert_eq!(
        run(&p, &pod(json!({})), Some(snapshot())).status,
        RuleStatus::Pass
    );
}

#[test]
fn service_calls_and_their_status() {
    let p = policy(
        json!([{"name": "ext", "apiCall": {"method": "POST",
            "service": {"url": "https://svc.example/check"},
            "data": [{"key": "image", "value": "{{ request.object.spec.containers[0].image }}"}],
            "jmesPath": "allowed"}}]),
        "{{ ext }}",
        json!(false),
    );
    assert_eq!(
        run(&p, &pod(json!({})), Some(snapshot())).status,
        RuleStatus::Fail
    );
    let down = policy(
        json!([{"name": "ext", "apiCall": {"service": {"url": "https://svc.example/down"}}}]),
        "{{ ext }}",
        json!(false),
    );
    let r = run(&down, &pod(json!({})), Some(snapshot()));
    assert_eq!(r.status, RuleStatus::Error);
    assert_eq!(code(&r), "policy.context.http_status");
    // A URL the source has no answer for cannot be decided (unsupported, as without a source).
    let unknown = policy(
        json!([{"name": "ext", "apiCall": {"service": {"url": "https://elsewhere.example/"}}}]),
        "{{ ext }}",
        json!(false),
    );
    let r = run(&unknown, &pod(json!({})), Some(snapshot()));
    assert_eq!(r.status, RuleStatus::Error);
    assert_eq!(code(&r), UNSUPPORTED);
}

#[test]
fn global_reference_with_projection_and_missing_entry() {
    let p = policy(
        json!([{"name": "gpus", "globalReference": {"name": "quotas", "jmesPath": "gpu"}}]),
        "{{ gpus }}",
        json!(8),
    );
    assert_eq!(
        run(&p, &pod(json!({})), Some(snapshot())).status,
        RuleStatus::Fail
    );
    let projected = policy(
        json!([{"name": "tpus", "globalReference": {"name": "quotas.tpu"}}]),
        "{{ tpus }}",
        json!(0),
    );
    assert_eq!(
        run(&projected, &pod(json!({})), Some(snapshot())).status,
        RuleStatus::Fail
    );
    let missing = policy(
        json!([{"name": "x", "globalReference": {"name": "absent"}}]),
        "{{ x }}",
        json!(1),
    );
    let r = run(&missing, &pod(json!({})), Some(snapshot()));
    assert_eq!(r.status, RuleStatus::Error);
    assert_eq!(code(&r), "policy.context.not_found");
}

#[test]
fn a_namespaced_policy_stays_in_its_namespace() {
    let mut p = policy(
        json!([{"name": "cm", "configMap": {"name": "blocked", "namespace": "kube-system"}}]),
        "{{ cm.data.teams }}",
        json!("red"),
    );
    p.namespace = Some("default".into());
    let r = run(&p, &pod(json!({})), Some(snapshot()));
    assert_eq!(r.status, RuleStatus::Error);
    assert_eq!(code(&r), "policy.invalid");
}
