//! Admission fail-opens closed: each case is a request Kyverno blocks that an earlier version
//! of this engine admitted. Every test asserts the block and the machine code of the cause.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::BTreeMap;

use provenance_core::{RuleStatus, UnixTime};
use provenance_policy::admission::request::ResourceInput;
use provenance_policy::admission::{Decision, PolicySet, input_from_review};
use provenance_policy::lang::jmespath::Env;
use serde_json::{Value, json};

fn set(yaml: &str) -> PolicySet {
    let mut s = PolicySet::default();
    s.add_yaml(yaml, "policy.yaml").unwrap();
    s
}

fn env() -> Env {
    Env::at(UnixTime(1_767_225_600))
}

fn pod(name: &str, extra_spec: Value) -> Value {
    let mut spec = json!({"containers": [{"name": "c", "image": "nginx:1.25"}]});
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra_spec.as_object()) {
        for (k, v) in e {
            s.insert(k.clone(), v.clone());
        }
    }
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"}, "spec": spec})
}

fn codes(d: &Decision) -> Vec<String> {
    d.blocking_codes().into_iter().map(|(c, _)| c).collect()
}

// ---- context variable without default that finds nothing (Kyverno: context load error)

const CTX_VAR: &str = r#"
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: team-label}
spec:
  validationFailureAction: Enforce
  rules:
  - name: team
    match: {any: [{resources: {kinds: [Pod]}}]}
    context:
    - name: team
      variable: {jmesPath: request.object.metadata.labels.team}
    validate:
      message: wrong team
      deny:
        conditions:
          any: [{key: "{{ team }}", operator: NotEquals, value: ml-serving}]
"#;

#[test]
fn context_variable_null_without_default_blocks() {
    let d = set(CTX_VAR).decide(&ResourceInput::create(pod("p", json!({}))), &env());
    assert!(!d.allowed);
    assert_eq!(codes(&d), ["policy.context.variable_null"]);
    assert_eq!(d.results[0].status, RuleStatus::Error);
    // With a default, the default is used (and here it fails the deny).
    let with_default = CTX_VAR.replace(
        "variable: {jmesPath: request.object.metadata.labels.team}",
        "variable: {jmesPath: request.object.metadata.labels.team, default: none}",
    );
    let d = set(&with_default).decide(&ResourceInput::create(pod("p", json!({}))), &env());
    assert!(!d.allowed);
    assert_eq!(d.results[0].status, RuleStatus::Fail);
    // Found: passes.
    let mut p = pod("p", json!({}));
    p["metadata"]["labels"] = json!({"team": "ml-serving"});
    assert!(
        set(CTX_VAR)
            .decide(&ResourceInput::create(p), &env())
            .allowed
    );
}

#[test]
fn context_variable_null_inside_foreach_blocks() {
    let policy = r#"
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: per-container}
spec:
  validationFailureAction: Enforce
  rules:
  - name: c
    match: {any: [{resources: {kinds: [Pod]}}]}
    validate:
      foreach:
      - list: request.object.spec.containers
        context:
        - name: level
          variable: {jmesPath: element.securityContext.level}
        deny:
          conditions:
            any: [{key: "{{ level }}", operator: Equals, value: privileged}]
"#;
    let d = set(policy).decide(&ResourceInput::create(pod("p", json!({}))), &env());
    assert!(!d.allowed);
    assert_eq!(codes(&d), ["policy.context.variable_null"]);
}

// ---- PolicyException with subjects and an unknown requester

const PRIV: &str = r#"
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: no-privileged}
spec:
  validationFailureAction: Enforce
  rules:
  - name: privileged
    match: {any: [{resources: {kinds: [Pod]}}]}
    validate:
      message: no privileged
      pattern:
        spec:
          containers:
          - =(securityContext):
              =(privileged): "false"
---
apiVersion: kyverno.io/v2
kind: PolicyException
metadata: {name: bob-only, namespace: default}
spec:
  background: false
  exceptions: [{policyName: no-privileged, ruleNames: [privileged]}]
  match:
    any: [{resources: {kinds: [Pod]}, subjects: [{kind: User, name: cluster-admin-bob}]}]
"#;

fn privileged_pod() -> Value {
    let mut p = pod("priv", json!({}));
    p["spec"]["containers"][0]["securityContext"] = json!({"privileged": true});
    p
}

#[test]
fn exception_subjects_never_excuse_an_unknown_requester() {
    let s = set(PRIV);
    let d = s.decide(&ResourceInput::create(privileged_pod()), &env());
    assert!(!d.allowed);
    assert_eq!(codes(&d), ["policy.rule.fail"]);
    // Another user: not excused either.
    let mut other = ResourceInput::create(privileged_pod());
    other.request_info.user_info.username = "mallory".into();
    assert!(!s.decide(&other, &env()).allowed);
    // The named user is excused.
    let mut bob = ResourceInput::create(privileged_pod());
    bob.request_info.user_info.username = "cluster-admin-bob".into();
    let d = s.decide(&bob, &env());
    assert!(d.allowed, "{d:?}");
    assert_eq!(d.results[0].status, RuleStatus::Skip);
}

#[test]
fn exception_roles_do_not_apply_when_roles_are_unknown() {
    let policy = PRIV.replace(
        "subjects: [{kind: User, name: cluster-admin-bob}]",
        "clusterRoles: [cluster-admin]",
    );
    let s = set(&policy);
    let mut input = ResourceInput::create(privileged_pod());
    input.request_info.user_info.username = "someone".into();
    input.roles_unknown = true;
    assert!(!s.decide(&input, &env()).allowed);
    input.roles_unknown = false;
    input.request_info.cluster_roles = vec!["cluster-admin".into()];
    assert!(s.decide(&input, &env()).allowed);
}

// ---- namespaceSelector over unknown namespace labels

const NS_POLICY: &str = r#"
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: inference-only-signed}
spec:
  validationFailureAction: Enforce
  rules:
  - name: tag
    match:
      any:
      - resources:
          kinds: [Pod]
          namespaceSelector: {matchLabels: {purpose: ai-inference}}
    validate:
      message: no latest
      pattern: {spec: {containers: [{image: "!*:latest"}]}}
"#;

#[test]
fn namespace_selector_with_unknown_labels_blocks() {
    let s = set(NS_POLICY);
    let mut input = ResourceInput::create(pod("p", json!({})));
    input.namespace_labels_unknown = true;
    let d = s.decide(&input, &env());
    assert!(!d.allowed);
    assert_eq!(codes(&d), ["policy.match.namespace_labels_unknown"]);
    // Known labels that do not match: the rule does not apply.
    input.namespace_labels_unknown = false;
    input.namespace_labels = BTreeMap::from([("purpose".into(), "batch".into())]);
    let d = s.decide(&input, &env());
    assert!(d.allowed && d.results.is_empty(), "{d:?}");
    // A selector on kubernetes.io/metadata.name alone is decided without labels.
    let by_name = NS_POLICY.replace(
        "{matchLabels: {purpose: ai-inference}}",
        "{matchLabels: {kubernetes.io/metadata.name: default}}",
    );
    let mut input = ResourceInput::create(pod("p", json!({})));
    input.namespace_labels_unknown = true;
    input.object["spec"]["containers"][0]["image"] = json!("nginx:latest");
    let d = set(&by_name).decide(&input, &env());
    assert!(!d.allowed);
    assert_eq!(codes(&d), ["policy.rule.fail"]);
}

#[test]
fn validating_policy_namespace_selector_with_unknown_labels_blocks() {
    let s = set(r#"
apiVersion: policies.kyverno.io/v1
kind: ValidatingPolicy
metadata: {name: ns-vpol}
spec:
  validationActions: [Deny]
  matchConstraints:
    namespaceSelector: {matchLabels: {purpose: ai-inference}}
    resourceRules: [{apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [pods]}]
  validations:
  - expression: "false"
    message: never
"#);
    let mut input = ResourceInput::create(pod("p", json!({})));
    input.namespace_labels_unknown = true;
    let d = s.decide(&input, &env());
    assert!(!d.allowed);
    assert_eq!(codes(&d), ["policy.match.namespace_labels_unknown"]);
    input.namespace_labels_unknown = false;
    assert!(s.decide(&input, &env()).allowed);
}

// ---- roles / clusterRoles that cannot be known

#[test]
fn match_on_roles_errors_when_roles_are_unknown() {
    let s = set(r#"
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: admins-only-privileged}
spec:
  validationFailureAction: Enforce
  rules:
  - name: tag
    match:
      any:
      - resources: {kinds: [Pod]}
        clusterRoles: [developer]
    validate:
      message: no latest
      pattern: {spec: {containers: [{image: "!*:latest"}]}}
"#);
    let review = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": "u", "operation": "CREATE", "namespace": "default",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "userInfo": {"username": "dev"}, "object": pod("p", json!({}))}});
    let input = input_from_review(&review, BTreeMap::new(), None).unwrap();
    assert!(input.roles_unknown);
    let d = s.decide(&input, &env());
    assert!(!d.allowed);
    assert_eq!(codes(&d), ["policy.match.roles_unknown"]);
}

// ---- ValidatingPolicy autogen

const VPOL: &str = r#"
apiVersion: policies.kyverno.io/v1
kind: ValidatingPolicy
metadata: {name: no-privileged-vpol}
spec:
  validationActions: [Deny]
  matchConstraints:
    resourceRules: [{apiGroups: [""], apiVersions: [v1], operations: [CREATE, UPDATE], resources: [pods]}]
  validations:
  - expression: "object.spec.containers.all(c, !has(c.securityContext) || !has(c.securityContext.privileged) || c.securityContext.privileged == false)"
    message: no privileged
"#;

#[test]
fn validating_policy_reaches_pod_controllers() {
    let s = set(VPOL);
    let template = json!({"metadata": {"labels": {"app": "d"}},
        "spec": {"containers": [{"name": "c", "image": "nginx:1.25", "securityContext": {"privileged": true}}]}});
    let deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "d", "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"app": "d"}}, "template": template}});
    let d = s.decide(&ResourceInput::create(deploy), &env());
    assert!(!d.allowed);
    assert_eq!(codes(&d), ["policy.cel.validation_failed"]);
    let cron = json!({"apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": "c", "namespace": "default"},
        "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": template}}}});
    let d = s.decide(&ResourceInput::create(cron.clone()), &env());
    assert!(!d.allowed);
    assert_eq!(codes(&d), ["policy.cel.validation_failed"]);
    // autogen.podControllers.controllers: [] turns it off.
    let off = VPOL.replace(
        "  validationActions: [Deny]",
        "  validationActions: [Deny]\n  autogen: {podControllers: {controllers: []}}",
    );
    assert!(
        set(&off)
            .decide(&ResourceInput::create(cron), &env())
            .allowed
    );
}

// ---- regex shorthand classes

#[test]
fn regex_shorthand_classes_are_ascii() {
    let s = set(r#"
apiVersion: policies.kyverno.io/v1
kind: ValidatingPolicy
metadata: {name: ascii-args}
spec:
  validationActions: [Deny]
  matchConstraints:
    resourceRules: [{apiGroups: [""], apiVersions: [v1], operations: [CREATE, UPDATE], resources: [pods]}]
  variables:
  - name: pattern
    expression: "'^[\\\\w.=-]+$'"
  validations:
  - expression: "object.spec.containers.all(c, c.?args.orValue([]).all(a, a.matches('^[\\\\w.=-]+$')))"
    message: args must be plain ASCII words
  - expression: "object.spec.containers.all(c, c.?args.orValue([]).all(a, a.matches(variables.pattern)))"
    message: args must be plain ASCII words (dynamic pattern)
---
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: ascii-args-jmespath}
spec:
  validationFailureAction: Enforce
  rules:
  - name: args
    match: {any: [{resources: {kinds: [Pod]}}]}
    validate:
      message: args must be plain ASCII words
      deny:
        conditions:
          any:
          - key: "{{ regex_match('^[\\w.=-]+$', request.object.spec.containers[0].args[0]) }}"
            operator: Equals
            value: false
"#);
    let full = pod("p", json!({}));
    let mut bad = full.clone();
    bad["spec"]["containers"][0]["args"] = json!(["--mode=ｒｏｏｔ"]);
    let d = s.decide(&ResourceInput::create(bad), &env());
    assert!(!d.allowed);
    let mut c = codes(&d);
    c.sort();
    assert_eq!(c, ["policy.cel.validation_failed", "policy.rule.fail"]);
    let mut good = full;
    good["spec"]["containers"][0]["args"] = json!(["--mode=root"]);
    let d = s.decide(&ResourceInput::create(good), &env());
    assert!(d.allowed, "{:?}", d.message);
    // The dynamic pattern is ASCII too.
    let only_dynamic = r#"
apiVersion: policies.kyverno.io/v1
kind: ValidatingPolicy
metadata: {name: digits}
spec:
  validationActions: [Deny]
  matchConstraints:
    resourceRules: [{apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [pods]}]
  variables:
  - name: pattern
    expression: "'^\\\\d+$'"
  validations:
  - expression: "object.metadata.name.matches(variables.pattern)"
"#;
    let d = set(only_dynamic).decide(&ResourceInput::create(pod("３", json!({}))), &env());
    assert!(!d.allowed);
    let d = set(only_dynamic).decide(&ResourceInput::create(pod("3", json!({}))), &env());
    assert!(d.allowed);
}

// ---- YAML 1.1 octal

#[test]
fn yaml_octal_is_read_as_kubernetes_reads_it() {
    let s = set(r#"
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: run-as-high-uid}
spec:
  validationFailureAction: Enforce
  rules:
  - name: uid
    match: {any: [{resources: {kinds: [Pod]}}]}
    validate:
      message: uid must be >= 1000
      pattern: {spec: {securityContext: {runAsUser: ">=1000"}}}
"#);
    let doc = provenance_policy::yaml::load_document(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: octal, namespace: default}\nspec:\n  securityContext:\n    runAsUser: 01000\n  containers:\n  - {name: c, image: nginx:1.25}\n",
        "pod.yaml",
    )
    .unwrap();
    assert_eq!(doc["spec"]["securityContext"]["runAsUser"], 512);
    let d = s.decide(&ResourceInput::create(doc), &env());
    assert!(!d.allowed);
    assert_eq!(codes(&d), ["policy.rule.fail"]);
}

// ---- scored: "false" is for reports only

#[test]
fn unscored_enforce_policy_still_blocks() {
    let s = set(r#"
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: no-latest
  annotations: {policies.kyverno.io/scored: "false"}
spec:
  validationFailureAction: Enforce
  rules:
  - name: tag
    match: {any: [{resources: {kinds: [Pod]}}]}
    validate:
      message: no latest
      pattern: {spec: {containers: [{image: "!*:latest"}]}}
"#);
    let mut p = pod("p", json!({}));
    p["spec"]["containers"][0]["image"] = json!("nginx:latest");
    let d = s.decide(&ResourceInput::create(p), &env());
    assert!(!d.allowed);
    assert_eq!(codes(&d), ["policy.rule.fail"]);
    // Reports still say warn.
    assert_eq!(d.results[0].status, RuleStatus::Warn);
}

// ---- subresources match their top-level kind

#[test]
fn subresource_rules_match_the_parent_kind() {
    let s = set(r#"
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: no-exec}
spec:
  validationFailureAction: Enforce
  rules:
  - name: exec
    match: {any: [{resources: {kinds: [Pod/exec]}}]}
    validate:
      message: no exec
      deny: {}
  - name: scale
    match: {any: [{resources: {kinds: [Deployment/scale]}}]}
    validate:
      message: no scaling above 3
      deny:
        conditions:
          any: [{key: "{{ request.object.spec.replicas }}", operator: GreaterThan, value: 3}]
"#);
    let exec = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": "u", "operation": "CONNECT", "namespace": "default", "name": "p",
            "kind": {"group": "", "version": "v1", "kind": "PodExecOptions"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "subResource": "exec",
            "userInfo": {"username": "dev"},
            "object": {"apiVersion": "v1", "kind": "PodExecOptions", "command": ["sh"], "container": "c", "stdin": true, "tty": true}}});
    let input = input_from_review(&exec, BTreeMap::new(), Some(Default::default())).unwrap();
    let d = s.decide(&input, &env());
    assert!(!d.allowed, "{d:?}");
    assert_eq!(codes(&d), ["policy.rule.fail"]);
    let scale = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": "u", "operation": "UPDATE", "namespace": "default", "name": "d",
            "kind": {"group": "autoscaling", "version": "v1", "kind": "Scale"},
            "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
            "subResource": "scale",
            "userInfo": {"username": "dev"},
            "object": {"apiVersion": "autoscaling/v1", "kind": "Scale",
                "metadata": {"name": "d", "namespace": "default"}, "spec": {"replicas": 10}},
            "oldObject": {"apiVersion": "autoscaling/v1", "kind": "Scale",
                "metadata": {"name": "d", "namespace": "default"}, "spec": {"replicas": 1}}}});
    let input = input_from_review(&scale, BTreeMap::new(), Some(Default::default())).unwrap();
    let d = s.decide(&input, &env());
    assert!(!d.allowed, "{d:?}");
    assert_eq!(codes(&d), ["policy.rule.fail"]);
}

#[test]
fn ephemeral_containers_are_reviewed_as_pods() {
    let s = set(r#"
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: no-latest}
spec:
  validationFailureAction: Enforce
  rules:
  - name: tag
    match: {any: [{resources: {kinds: [Pod]}}]}
    validate:
      message: no latest
      foreach:
      - list: request.object.spec.ephemeralContainers[]
        pattern: {image: "!*:latest"}
"#);
    let mut p = pod("p", json!({}));
    p["spec"]["ephemeralContainers"] = json!([{"name": "debugger", "image": "busybox:latest"}]);
    let review = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": "u", "operation": "UPDATE", "namespace": "default", "name": "p",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "subResource": "ephemeralcontainers",
            "userInfo": {"username": "dev"}, "object": p, "oldObject": pod("p", json!({}))}});
    let input = input_from_review(&review, BTreeMap::new(), Some(Default::default())).unwrap();
    let d = s.decide(&input, &env());
    assert!(!d.allowed, "{d:?}");
    assert_eq!(codes(&d), ["policy.rule.fail"]);
}

// ---- anyPattern entries are all substituted before any is checked

#[test]
fn any_pattern_with_an_unresolvable_variable_errors() {
    let s = set(r#"
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: any-pattern}
spec:
  validationFailureAction: Enforce
  rules:
  - name: p
    match: {any: [{resources: {kinds: [Pod]}}]}
    validate:
      message: x
      anyPattern:
      - metadata: {name: "?*"}
      - metadata: {name: "{{ request.object.metadata.labels.missing }}"}
"#);
    let d = s.decide(&ResourceInput::create(pod("p", json!({}))), &env());
    assert!(!d.allowed, "{d:?}");
    assert_eq!(codes(&d), ["policy.variable_not_found"]);
}

// ---- CEL evaluation budget

#[test]
fn cel_over_budget_blocks() {
    let s = set(r#"
apiVersion: policies.kyverno.io/v1
kind: ValidatingPolicy
metadata: {name: cubic}
spec:
  validationActions: [Deny]
  matchConstraints:
    resourceRules: [{apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [pods]}]
  validations:
  - expression: "object.spec.containers.all(a, object.spec.containers.all(b, object.spec.containers.all(c, a.name != '' || b.name != '' || c.name != '')))"
"#);
    let mut p = pod("p", json!({}));
    p["spec"]["containers"] = Value::Array(
        (0..120)
            .map(|i| json!({"name": format!("c{i}"), "image": "nginx:1.25"}))
            .collect(),
    );
    let d = s.decide(&ResourceInput::create(p), &env());
    assert!(!d.allowed);
    assert_eq!(codes(&d), ["policy.cel.budget_exceeded"]);
    // A Pod of ordinary size is evaluated in full.
    let d = s.decide(&ResourceInput::create(pod("p", json!({}))), &env());
    assert!(d.allowed, "{:?}", d.message);
}

#[test]
fn namespace_selector_uses_the_request_namespace_when_the_object_has_none() {
    let s = set(NS_POLICY);
    let mut p = pod("p", json!({}));
    p["metadata"].as_object_mut().unwrap().remove("namespace");
    let review = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": "u", "operation": "CREATE", "namespace": "ml-new",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "userInfo": {"username": "dev"}, "object": p}});
    let mut input = input_from_review(&review, BTreeMap::new(), Some(Default::default())).unwrap();
    assert_eq!(input.selector_namespace(), "ml-new");
    input.namespace_labels_unknown = true;
    let d = s.decide(&input, &env());
    assert!(!d.allowed);
    assert_eq!(codes(&d), ["policy.match.namespace_labels_unknown"]);
}

#[test]
fn image_validating_policy_reaches_pod_controllers() {
    // No evidence is gathered here: a policy that applies gives an error (fail closed); one
    // that does not apply gives no result at all.
    let s = set(r#"
apiVersion: policies.kyverno.io/v1
kind: ImageValidatingPolicy
metadata: {name: signed-images}
spec:
  validationActions: [Deny]
  matchConstraints:
    resourceRules: [{apiGroups: [""], apiVersions: [v1], operations: [CREATE, UPDATE], resources: [pods]}]
  matchImageReferences: [{glob: "registry.example.com/*"}]
  attestors:
  - name: k
    cosign:
      key:
        data: |
          -----BEGIN PUBLIC KEY-----
          MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEALfxv5OEbi2zj14IcKXG/tywB7ML
          arOzeDMVuJYWNleWEXYn8O0BMajcmhjlP80QiGFZwRf2G9r/+SIIBWXbKQ==
          -----END PUBLIC KEY-----
  validations:
  - expression: "images.containers.all(i, verifyImageSignatures(i, [attestors.k]) > 0)"
    message: not signed
"#);
    let deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "d", "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"app": "d"}}, "template": {
            "metadata": {"labels": {"app": "d"}},
            "spec": {"containers": [{"name": "c", "image": "registry.example.com/app:1"}]}}}});
    let d = s.decide(&ResourceInput::create(deploy), &env());
    assert!(!d.allowed, "{d:?}");
    assert!(d.results.iter().all(|r| r.policy == "signed-images"));
    let off = set(r#"
apiVersion: policies.kyverno.io/v1
kind: ImageValidatingPolicy
metadata: {name: signed-images}
spec:
  validationActions: [Deny]
  autogen: {podControllers: {controllers: []}}
  matchConstraints:
    resourceRules: [{apiGroups: [""], apiVersions: [v1], operations: [CREATE, UPDATE], resources: [pods]}]
  matchImageReferences: [{glob: "registry.example.com/*"}]
  validations:
  - expression: "true"
"#);
    let deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "d", "namespace": "default"},
        "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "registry.example.com/app:1"}]}}}});
    let d = off.decide(&ResourceInput::create(deploy), &env());
    assert!(d.allowed && d.results.is_empty(), "{d:?}");
}

#[test]
fn validating_policy_namespace_selector_uses_the_request_namespace() {
    let s = set(r#"
apiVersion: policies.kyverno.io/v1
kind: ValidatingPolicy
metadata: {name: ns-vpol}
spec:
  validationActions: [Deny]
  matchConstraints:
    namespaceSelector: {matchLabels: {purpose: ai-inference}}
    resourceRules: [{apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [pods]}]
  validations:
  - expression: "false"
    message: never
"#);
    let mut p = pod("p", json!({}));
    p["metadata"].as_object_mut().unwrap().remove("namespace");
    let review = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": "u", "operation": "CREATE", "namespace": "batch",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "userInfo": {"username": "dev"}, "object": p}});
    let labels = BTreeMap::from([("purpose".to_owned(), "training".to_owned())]);
    let input = input_from_review(&review, labels, Some(Default::default())).unwrap();
    // The namespace's labels decide: not an inference namespace, so the policy does not apply.
    let d = s.decide(&input, &env());
    assert!(d.allowed && d.results.is_empty(), "{d:?}");
    let labels = BTreeMap::from([("purpose".to_owned(), "ai-inference".to_owned())]);
    let input = input_from_review(&review, labels, Some(Default::default())).unwrap();
    assert!(!s.decide(&input, &env()).allowed);
}
