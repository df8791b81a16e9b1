use super::*;
use crate::admission::cluster::ClusterSnapshot;
use crate::lang::cel::ContextData;
use serde_json::json;

const LABEL: &str =
    r#"Object{metadata: Object.metadata{labels: Object.metadata.labels{mutated: "true"}}}"#;

fn policy(extra: Value) -> MutatingPolicy {
    let mut spec = json!({
        "evaluation": {"mutateExisting": {"enabled": true}},
        "matchConstraints": {"resourceRules": [{"apiGroups": ["apps"], "apiVersions": ["v1"],
            "operations": ["CREATE"], "resources": ["deployments"]}]},
        "targetMatchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
            "operations": ["UPDATE"], "resources": ["configmaps"]}]},
        "mutations": [{"patchType": "ApplyConfiguration", "applyConfiguration": {"expression": LABEL}}]
    });
    if let (Some(s), Value::Object(e)) = (spec.as_object_mut(), extra) {
        s.extend(e);
    }
    MutatingPolicy::from_value(&json!({"apiVersion": "policies.kyverno.io/v1beta1",
        "kind": "MutatingPolicy", "metadata": {"name": "me"}, "spec": spec}))
    .unwrap()
}

fn deployment(ns: &str) -> PolicyInput<'static> {
    PolicyInput::create(json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": ns}, "spec": {"replicas": 1}}))
}

fn configmap(ns: &str, name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns, "labels": labels}, "data": {"k": "v"}})
}

fn cluster(resources: Vec<Value>) -> ClusterSnapshot {
    let mut c = ClusterSnapshot::new().with_resources_supplied();
    for r in resources {
        c.add_resource(r);
    }
    c
}

#[test]
fn every_configmap_the_target_constraints_select_is_patched() {
    let p = policy(json!({}));
    let a = configmap("team", "a", json!({}));
    let b = configmap("other", "b", json!({"x": "y"}));
    let c = cluster(vec![a.clone(), b.clone()]);
    let out = p.mutate_existing(&deployment("team"), Some(&c));
    assert_eq!(out.targets.len(), 2);
    assert_eq!(out.response.rules.len(), 2);
    for (t, original) in out.targets.iter().zip([&a, &b]) {
        assert_eq!(&t.target, original, "the target as the cluster holds it");
        assert_eq!(t.result.status, RuleStatus::Pass);
        assert_eq!(t.result.message, "success");
        assert_eq!(t.result.resource.kind, "ConfigMap");
        assert_eq!(t.result.resource.name, original["metadata"]["name"]);
        let patched = t.patched.as_ref().unwrap();
        assert_eq!(patched["metadata"]["labels"]["mutated"], "true");
        assert_eq!(patched["data"], json!({"k": "v"}));
    }
    // Nothing written: the cluster data still holds the originals.
    let listed = c.api_call("GET", "/api/v1/configmaps", None).unwrap();
    assert_eq!(listed["items"], json!([a, b]));
}

#[test]
fn a_trigger_that_does_not_match_selects_nothing() {
    let p = policy(json!({}));
    let c = cluster(vec![configmap("team", "a", json!({}))]);
    let secret = PolicyInput::create(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "s", "namespace": "team"}}));
    let out = p.mutate_existing(&secret, Some(&c));
    assert!(out.response.rules.is_empty());
    assert!(out.targets.is_empty());
    // A false matchCondition on the trigger: no result either.
    let p = policy(
        json!({"matchConditions": [{"name": "never", "expression": "object.spec.replicas > 5"}]}),
    );
    let out = p.mutate_existing(&deployment("team"), Some(&c));
    assert!(out.response.rules.is_empty());
}

#[test]
fn object_selector_and_target_match_conditions_narrow_the_targets() {
    let p = policy(json!({
        "targetMatchConstraints": {"objectSelector": {"matchLabels": {"sync": "yes"}},
            "resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                "operations": ["CREATE"], "resources": ["configmaps"]}]},
        "targetMatchConditions": [{"name": "same-namespace",
            "expression": "object.metadata.namespace == request.object.metadata.namespace"}]
    }));
    let c = cluster(vec![
        configmap("team", "unlabelled", json!({})),
        configmap("team", "here", json!({"sync": "yes"})),
        configmap("other", "there", json!({"sync": "yes"})),
    ]);
    let out = p.mutate_existing(&deployment("team"), Some(&c));
    let got: Vec<(&str, RuleStatus, bool)> = out
        .targets
        .iter()
        .map(|t| {
            (
                t.result.resource.name.as_str(),
                t.result.status,
                t.patched.is_some(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("here", RuleStatus::Pass, true),
            ("there", RuleStatus::Skip, false)
        ]
    );
    assert_eq!(out.targets[1].result.message, "skip");
}

#[test]
fn expressions_see_the_target_as_object_and_the_trigger_as_request() {
    let p = policy(
        json!({"mutations": [{"patchType": "JSONPatch", "jsonPatch": {"expression":
        r#"[JSONPatch{op: "add", path: "/data/from", value: request.object.kind + "/" + request.object.metadata.name + " " + request.operation + " " + object.metadata.name + " " + string(oldObject == null)}]"#}}]}),
    );
    let c = cluster(vec![configmap("team", "a", json!({}))]);
    let out = p.mutate_existing(&deployment("team"), Some(&c));
    let patched = out.targets[0].patched.as_ref().unwrap();
    assert_eq!(patched["data"]["from"], "Deployment/web CREATE a true");
}

#[test]
fn a_failing_mutation_is_an_error_with_its_path_and_no_patch() {
    let p = policy(
        json!({"mutations": [{"patchType": "JSONPatch", "jsonPatch": {"expression":
        r#"[JSONPatch{op: "replace", path: "/spec/missing", value: 1}]"#}}]}),
    );
    let c = cluster(vec![configmap("team", "a", json!({}))]);
    let out = p.mutate_existing(&deployment("team"), Some(&c));
    let t = &out.targets[0];
    assert_eq!(t.result.status, RuleStatus::Error);
    assert_eq!(t.result.rule, "evaluation");
    assert_eq!(t.result.resource.name, "a");
    assert_eq!(
        t.result.reasons.first().and_then(|r| r.path.as_deref()),
        Some("spec.mutations[0]")
    );
    assert!(t.patched.is_none());
    // A target match condition that fails to evaluate names its field.
    let p = policy(json!({"targetMatchConditions": [{"name": "bad",
        "expression": "object.spec.nothing == 1"}]}));
    let out = p.mutate_existing(&deployment("team"), Some(&c));
    let t = &out.targets[0];
    assert_eq!(t.result.status, RuleStatus::Error);
    assert_eq!(
        t.result.reasons.first().and_then(|r| r.path.as_deref()),
        Some("spec.targetMatchConditions")
    );
}

fn expression_policy() -> MutatingPolicy {
    policy(json!({"targetMatchConstraints": {"expression":
        r#"resource.get("v1", "configmaps", object.metadata.namespace, "target-cm")"#}}))
}

#[test]
fn a_target_expression_selects_from_the_context_data() {
    let p = expression_policy();
    let target = configmap("team", "target-cm", json!({}));
    let mut trigger = deployment("team");
    let mut ctx = ContextData::new();
    ctx.add_resource(target.clone());
    trigger.context = ctx;
    // No cluster data needed: the expression reads the `resource` library's data.
    let out = p.mutate_existing(&trigger, None);
    assert_eq!(out.targets.len(), 1);
    assert_eq!(out.targets[0].target, target);
    assert_eq!(out.targets[0].result.status, RuleStatus::Pass);
}

#[test]
fn a_target_missing_from_the_data_is_an_error_on_the_trigger() {
    let p = expression_policy();
    let out = p.mutate_existing(&deployment("team"), None);
    assert!(out.targets.is_empty());
    let r = &out.response.rules[0];
    assert_eq!(r.status, RuleStatus::Error);
    assert_eq!(r.resource.kind, "Deployment");
    assert_eq!(
        r.reasons.first().and_then(|r| r.path.as_deref()),
        Some("spec.targetMatchConstraints.expression")
    );
    // Listed targets: none in the cluster data is no result; no cluster data is an error.
    let p = policy(json!({}));
    let out = p.mutate_existing(&deployment("team"), Some(&cluster(Vec::new())));
    assert!(out.response.rules.is_empty());
    let out = p.mutate_existing(&deployment("team"), None);
    assert_eq!(out.response.rules[0].status, RuleStatus::Error);
    assert_eq!(
        out.response.rules[0]
            .reasons
            .first()
            .map(|r| r.code.as_str()),
        Some("policy.unsupported")
    );
}

#[test]
fn without_target_constraints_the_match_constraints_select_the_targets() {
    let p = policy(json!({"targetMatchConstraints": null}));
    let other = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "api", "namespace": "team"}, "spec": {"replicas": 2}});
    let c = cluster(vec![other.clone(), configmap("team", "a", json!({}))]);
    let out = p.mutate_existing(&deployment("team"), Some(&c));
    assert_eq!(out.targets.len(), 1);
    assert_eq!(out.targets[0].target, other);
}

#[test]
fn a_namespaced_policy_lists_its_own_namespace() {
    let p = MutatingPolicy::from_value(&json!({"apiVersion": "policies.kyverno.io/v1beta1",
        "kind": "NamespacedMutatingPolicy", "metadata": {"name": "me", "namespace": "team"},
        "spec": {"evaluation": {"mutateExisting": {"enabled": true}},
            "matchConstraints": {"resourceRules": [{"apiGroups": ["apps"], "apiVersions": ["v1"],
                "operations": ["CREATE"], "resources": ["deployments"]}]},
            "targetMatchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                "operations": ["CREATE"], "resources": ["configmaps"]}]},
            "mutations": [{"patchType": "ApplyConfiguration", "applyConfiguration": {"expression": LABEL}}]}}))
    .unwrap();
    let c = cluster(vec![
        configmap("team", "a", json!({})),
        configmap("other", "b", json!({})),
    ]);
    let out = p.mutate_existing(&deployment("team"), Some(&c));
    let names: Vec<&str> = out
        .targets
        .iter()
        .map(|t| t.result.resource.name.as_str())
        .collect();
    assert_eq!(names, vec!["a"]);
}

#[test]
fn loading_checks_the_target_fields() {
    let load = |extra: Value| {
        let mut spec = json!({
            "evaluation": {"mutateExisting": {"enabled": true}},
            "matchConstraints": {"resourceRules": [{"apiGroups": ["apps"], "apiVersions": ["v1"],
                "operations": ["CREATE"], "resources": ["deployments"]}]},
            "mutations": [{"patchType": "ApplyConfiguration", "applyConfiguration": {"expression": LABEL}}]
        });
        if let (Some(s), Value::Object(e)) = (spec.as_object_mut(), extra) {
            s.extend(e);
        }
        MutatingPolicy::from_value(&json!({"apiVersion": "policies.kyverno.io/v1",
            "kind": "MutatingPolicy", "metadata": {"name": "me"}, "spec": spec}))
    };
    assert!(load(json!({})).is_ok());
    assert!(matches!(
        load(
            json!({"targetMatchConstraints": {"resourceRules": [{"apiGroups": [""],
            "apiVersions": ["v1"], "operations": ["*"], "resources": ["pods/status"]}]}})
        ),
        Err(Error::Unsupported { .. })
    ));
    assert!(matches!(
        load(json!({"targetMatchConstraints": {"expression": "object.("}})),
        Err(Error::Cel { .. })
    ));
    assert!(matches!(
        load(json!({"targetMatchConditions": [{"name": "x", "expression": "variables.nope"}]})),
        Err(Error::Cel { .. })
    ));
    // Without mutateExisting the target fields are checked and not used.
    let p = MutatingPolicy::from_value(&json!({"apiVersion": "policies.kyverno.io/v1",
        "kind": "MutatingPolicy", "metadata": {"name": "me"}, "spec": {
            "matchConstraints": {"resourceRules": [{"apiGroups": ["apps"], "apiVersions": ["v1"],
                "operations": ["CREATE"], "resources": ["deployments"]}]},
            "targetMatchConstraints": {"expression": "resource.get('v1', 'configmaps', 'a', 'b')"},
            "mutations": [{"patchType": "ApplyConfiguration", "applyConfiguration": {"expression": LABEL}}]}}))
    .unwrap();
    assert!(!p.mutates_existing());
    let out = p.mutate_existing(&deployment("team"), None);
    assert!(out.response.rules.is_empty());
}
