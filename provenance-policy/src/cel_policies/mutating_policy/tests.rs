use super::*;
use serde_json::json;

fn load(doc: Value) -> Result<MutatingPolicy, Error> {
    MutatingPolicy::from_value(&doc)
}

fn map_policy(spec: Value) -> Value {
    json!({"apiVersion": "admissionregistration.k8s.io/v1beta1", "kind": "MutatingAdmissionPolicy",
        "metadata": {"name": "m"}, "spec": spec})
}

fn mpol(spec: Value) -> Value {
    json!({"apiVersion": "policies.kyverno.io/v1", "kind": "MutatingPolicy",
        "metadata": {"name": "k"}, "spec": spec})
}

fn configmaps() -> Value {
    json!({"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
        "operations": ["CREATE"], "resources": ["configmaps"]}]})
}

fn cm(labels: Value) -> PolicyInput<'static> {
    PolicyInput::create(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "c", "namespace": "default", "labels": labels}, "data": {"a": "1"}}))
}

const ADD_LABEL: &str = r#"object.metadata.?labels["team"].hasValue() ? Object{} :
    Object{metadata: Object.metadata{labels: {"team": "ml"}}}"#;

#[test]
fn apply_configuration_adds_a_label() {
    let p = load(map_policy(json!({"matchConstraints": configmaps(),
        "mutations": [{"patchType": "ApplyConfiguration",
            "applyConfiguration": {"expression": ADD_LABEL}}]})))
    .unwrap();
    let o = p.evaluate(&cm(json!({"x": "y"})), &[]);
    assert_eq!(o.results[0].status, RuleStatus::Pass);
    assert_eq!(o.results[0].rule, "m");
    assert_eq!(o.results[0].message, "mutation is successfully applied");
    let patched = o.patched.unwrap();
    assert_eq!(
        patched["metadata"]["labels"],
        json!({"x": "y", "team": "ml"})
    );
    assert_eq!(patched["data"], json!({"a": "1"}));
    // Already labelled: `Object{}` changes nothing.
    let o = p.evaluate(&cm(json!({"team": "other"})), &[]);
    assert_eq!(
        o.patched.unwrap()["metadata"]["labels"],
        json!({"team": "other"})
    );
}

#[test]
fn no_match_gives_no_result() {
    let p = load(map_policy(json!({"matchConstraints": configmaps(),
        "mutations": [{"patchType": "ApplyConfiguration",
            "applyConfiguration": {"expression": "Object{}"}}]})))
    .unwrap();
    let pod =
        PolicyInput::create(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}));
    let o = p.evaluate(&pod, &[]);
    assert!(o.results.is_empty() && o.patched.is_none());
}

#[test]
fn json_patch_mutations_chain_and_see_the_previous_output() {
    let p = load(mpol(json!({"matchConstraints": configmaps(),
        "mutations": [
            {"patchType": "JSONPatch", "jsonPatch": {"expression":
                "[JSONPatch{op: 'add', path: '/data/b', value: '2'}]"}},
            {"patchType": "JSONPatch", "jsonPatch": {"expression":
                "[JSONPatch{op: 'replace', path: '/data/a', value: object.data.b + '!'}, JSONPatch{op: 'remove', path: '/metadata/labels'}]"}}
        ]})))
    .unwrap();
    let o = p.evaluate(&cm(json!({"x": "y"})), &[]);
    assert_eq!(o.results[0].status, RuleStatus::Pass, "{:?}", o.results);
    assert_eq!(
        (o.results[0].rule.as_str(), o.results[0].message.as_str()),
        ("", "success")
    );
    let patched = o.patched.unwrap();
    assert_eq!(patched["data"], json!({"a": "2!", "b": "2"}));
    assert!(patched["metadata"].get("labels").is_none());
}

#[test]
fn keyed_lists_merge_through_typed_literals() {
    let pods = json!({"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
        "operations": ["CREATE"], "resources": ["pods"]}]});
    let p = load(mpol(json!({"matchConstraints": pods, "mutations": [{"patchType": "ApplyConfiguration",
        "applyConfiguration": {"expression": "Object{spec: Object.spec{containers: object.spec.containers.map(c, Object.spec.containers{name: c.name, image: c.image + '-x'})}}"}}]})))
    .unwrap();
    let input = PolicyInput::create(
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "a", "image": "i", "args": ["1"]}, {"name": "b", "image": "j"}]}}),
    );
    let o = p.evaluate(&input, &[]);
    assert_eq!(
        o.patched.unwrap()["spec"]["containers"],
        json!([{"name": "a", "image": "i-x", "args": ["1"]}, {"name": "b", "image": "j-x"}])
    );
}

#[test]
fn match_conditions_false_is_skip_without_patch() {
    let p = load(map_policy(json!({"matchConstraints": configmaps(),
        "matchConditions": [{"name": "red", "expression": "object.metadata.labels['color'] == 'red'"}],
        "mutations": [{"patchType": "ApplyConfiguration",
            "applyConfiguration": {"expression": ADD_LABEL}}]})))
    .unwrap();
    let o = p.evaluate(&cm(json!({"color": "blue"})), &[]);
    assert_eq!(o.results.len(), 1);
    assert_eq!(o.results[0].status, RuleStatus::Skip);
    assert_eq!(o.results[0].message, "match conditions aren't met");
    assert!(o.patched.is_none());
    let o = p.evaluate(&cm(json!({"color": "red"})), &[]);
    assert_eq!(o.results[0].status, RuleStatus::Pass);
}

#[test]
fn variables_are_visible_to_mutations() {
    let p = load(mpol(json!({"matchConstraints": configmaps(),
        "variables": [{"name": "team", "expression": "'ml-' + object.metadata.name"}],
        "mutations": [{"patchType": "ApplyConfiguration", "applyConfiguration": {"expression":
            "Object{metadata: Object.metadata{labels: {'team': variables.team}}}"}}]})))
    .unwrap();
    let o = p.evaluate(&cm(json!({})), &[]);
    assert_eq!(o.patched.unwrap()["metadata"]["labels"]["team"], "ml-c");
}

#[test]
fn expression_errors_under_fail_and_ignore() {
    let spec = |fp: &str| {
        json!({"matchConstraints": configmaps(), "failurePolicy": fp,
        "mutations": [
            {"patchType": "JSONPatch", "jsonPatch": {"expression": "[JSONPatch{op: 'add', path: '/data/z', value: 'z'}]"}},
            {"patchType": "ApplyConfiguration", "applyConfiguration": {"expression": "Object{data: Object.data{a: object.missing.field}}"}}
        ]})
    };
    let fail = load(map_policy(spec("Fail"))).unwrap();
    let o = fail.evaluate(&cm(json!({})), &[]);
    assert_eq!(o.results[0].status, RuleStatus::Error);
    assert_eq!(
        o.results[0].reasons[0].path.as_deref(),
        Some("spec.mutations[1]")
    );
    // All or nothing: the first mutation's output is not kept.
    assert!(o.patched.is_none());
    let ignore = load(map_policy(spec("Ignore"))).unwrap();
    let o = ignore.evaluate(&cm(json!({})), &[]);
    assert_eq!(o.results[0].status, RuleStatus::Skip);
    assert!(
        o.results[0]
            .message
            .starts_with("error ignored (failurePolicy: Ignore)")
    );
    assert!(o.patched.is_none());
    // A Kyverno MutatingPolicy reports the error whatever its failure policy.
    let k = load(mpol(spec("Ignore"))).unwrap();
    let o = k.evaluate(&cm(json!({})), &[]);
    assert_eq!(
        (o.results[0].status, o.results[0].rule.as_str()),
        (RuleStatus::Error, "evaluation")
    );
    assert_eq!(k.failure_policy(), FailurePolicy::Ignore);
}

#[test]
fn exceptions_skip_a_mutating_policy() {
    let mut p = load(mpol(json!({"matchConstraints": configmaps(),
        "mutations": [{"patchType": "ApplyConfiguration", "applyConfiguration": {"expression": ADD_LABEL}}]})))
    .unwrap();
    let ex = CelPolicyException::from_value(&json!({"apiVersion": "policies.kyverno.io/v1",
        "kind": "PolicyException", "metadata": {"name": "e", "namespace": "default"},
        "spec": {"policyRefs": [{"name": "k", "kind": "MutatingPolicy"}],
            "matchConditions": [{"name": "n", "expression": "object.metadata.name == 'c'"}]}}))
    .unwrap();
    p.add_exceptions(&[Arc::new(ex)]);
    let o = p.evaluate(&cm(json!({})), &[]);
    assert_eq!(o.results[0].status, RuleStatus::Skip);
    assert_eq!(
        o.results[0].message,
        "rule is skipped due to policy exception: default/e"
    );
    assert!(o.patched.is_none());
}

#[test]
fn bindings_select_params_and_match_resources() {
    let mut p = load(map_policy(json!({"matchConstraints": configmaps(),
        "paramKind": {"apiVersion": "v1", "kind": "ConfigMap"},
        "mutations": [{"patchType": "ApplyConfiguration", "applyConfiguration": {"expression":
            "Object{metadata: Object.metadata{labels: {'team': params.data.team}}}"}}]})))
    .unwrap();
    let binding = PolicyBinding::from_value(&json!({"metadata": {"name": "b"}, "spec": {
        "policyName": "m", "paramRef": {"name": "params", "namespace": "default"},
        "matchResources": {"excludeResourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
            "operations": ["CREATE"], "resources": ["configmaps"], "resourceNames": ["skipped"]}]}}}))
    .unwrap();
    p.add_bindings(&[binding]);
    let params = [json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "params", "namespace": "default"}, "data": {"team": "ml"}})];
    let o = p.evaluate(&cm(json!({})), &params);
    assert_eq!(o.patched.unwrap()["metadata"]["labels"]["team"], "ml");
    // Without the parameter resource the binding cannot be evaluated: an error, no patch.
    let o = p.evaluate(&cm(json!({})), &[]);
    assert_eq!(o.results[0].status, RuleStatus::Error);
    assert!(o.patched.is_none());
    let mut skipped = cm(json!({}));
    skipped.object.as_mut().unwrap().to_mut()["metadata"]["name"] = json!("skipped");
    assert!(p.evaluate(&skipped, &params).results.is_empty());
}

#[test]
fn loading_is_strict() {
    let ok = json!({"matchConstraints": configmaps(), "mutations": [{"patchType": "ApplyConfiguration",
        "applyConfiguration": {"expression": "Object{}"}}]});
    assert!(load(map_policy(ok.clone())).is_ok());
    let cases = [
        (json!({"matchConstraints": configmaps()}), "spec.mutations"),
        (
            json!({"matchConstraints": configmaps(), "mutations": [{"patchType": "Merge"}]}),
            "spec.mutations[0].patchType",
        ),
        (
            json!({"matchConstraints": configmaps(), "mutations": [{"patchType": "JSONPatch",
            "applyConfiguration": {"expression": "Object{}"}}]}),
            "spec.mutations[0].applyConfiguration",
        ),
        (
            json!({"matchConstraints": configmaps(), "mutations": [{"patchType": "JSONPatch"}]}),
            "spec.mutations[0].jsonPatch.expression",
        ),
        (
            json!({"matchConstraints": configmaps(), "failurePolicy": "Sometimes", "mutations": ok["mutations"]}),
            "spec.failurePolicy",
        ),
        (
            json!({"matchConstraints": configmaps(), "reinvocationPolicy": "Always", "mutations": ok["mutations"]}),
            "spec.reinvocationPolicy",
        ),
    ];
    for (spec, path) in cases {
        match load(map_policy(spec.clone())) {
            Err(Error::InvalidPolicy {
                path: p, policy, ..
            }) => {
                assert_eq!((p.as_str(), policy.as_str()), (path, "m"), "{spec}")
            }
            other => panic!("{spec}: {other:?}"),
        }
    }
    // Undeclared variables, unknown struct types and JSONPatch fields are compile errors.
    for expr in [
        "Object{metadata: variables.nope}",
        "JSONPatch{op: 'add', path: '/a', valu: 1}",
        "Object{spec: Object.metadata{}}",
    ] {
        let spec = json!({"matchConstraints": configmaps(), "mutations": [{"patchType": "ApplyConfiguration",
            "applyConfiguration": {"expression": expr}}]});
        assert!(
            matches!(load(map_policy(spec)), Err(Error::Cel { .. })),
            "{expr}"
        );
    }
    let spec = json!({"matchConstraints": configmaps(), "mutations": [{"patchType": "ApplyConfiguration",
        "applyConfiguration": {"expression": "google.protobuf.Struct{}"}}]});
    assert!(matches!(
        load(map_policy(spec)),
        Err(Error::Unsupported { .. })
    ));
    // Mutating existing resources needs targets that can be listed: a wildcard resource
    // rule is refused rather than silently selecting nothing.
    let mut spec = ok.clone();
    spec["evaluation"] = json!({"mutateExisting": {"enabled": true}});
    assert!(load(mpol(spec.clone())).unwrap().mutates_existing());
    spec["matchConstraints"]["resourceRules"][0]["resources"] = json!(["*"]);
    assert!(matches!(load(mpol(spec)), Err(Error::Unsupported { .. })));
}

#[test]
fn unknown_fields_are_refused_by_the_loader() {
    for (doc, field) in [
        (
            "apiVersion: admissionregistration.k8s.io/v1alpha1\nkind: MutatingAdmissionPolicy\nmetadata: {name: m}\nspec:\n  mutations:\n  - patchType: ApplyConfiguration\n    applyConfigration: {expression: 'Object{}'}\n",
            "applyConfigration",
        ),
        (
            "apiVersion: policies.kyverno.io/v1\nkind: MutatingPolicy\nmetadata: {name: m}\nspec:\n  mutation: []\n",
            "mutation",
        ),
        (
            "apiVersion: admissionregistration.k8s.io/v1beta1\nkind: MutatingAdmissionPolicyBinding\nmetadata: {name: b}\nspec:\n  policyName: m\n  validationActions: [Deny]\n",
            "validationActions",
        ),
    ] {
        match crate::admission::loader::load_policies(doc, "p.yaml") {
            Err(Error::UnknownField(u)) => assert_eq!(u.field, field),
            other => panic!("{doc}: {other:?}"),
        }
    }
    let doc = "apiVersion: policies.kyverno.io/v1\nkind: MutatingPolicy\nmetadata: {name: m}\nspec:\n  mutations:\n  - patchType: JSONpatch\n";
    assert!(matches!(
        crate::admission::loader::load_policies(doc, "p.yaml"),
        Err(Error::InvalidPolicy { .. })
    ));
}

#[test]
fn loader_links_bindings() {
    let text = "apiVersion: admissionregistration.k8s.io/v1alpha1\nkind: MutatingAdmissionPolicy\nmetadata: {name: m}\nspec:\n  matchConstraints: {resourceRules: [{apiGroups: [''], apiVersions: [v1], operations: [CREATE], resources: [configmaps]}]}\n  mutations:\n  - patchType: ApplyConfiguration\n    applyConfiguration: {expression: 'Object{}'}\n---\napiVersion: admissionregistration.k8s.io/v1alpha1\nkind: MutatingAdmissionPolicyBinding\nmetadata: {name: b}\nspec: {policyName: m}\n";
    let loaded = crate::admission::loader::load_policies(text, "p.yaml").unwrap();
    let Some(crate::admission::loader::LoadedPolicy::Mutating(p)) = loaded.first() else {
        panic!("{loaded:?}")
    };
    assert_eq!(p.bindings().len(), 1);
}

#[test]
fn decide_mutating_applies_cel_mutations_and_validates_the_result() {
    let text = r#"
apiVersion: policies.kyverno.io/v1
kind: MutatingPolicy
metadata: {name: second}
spec:
  matchConstraints: {resourceRules: [{apiGroups: [''], apiVersions: [v1], operations: [CREATE], resources: [configmaps]}]}
  mutations:
  - patchType: JSONPatch
    jsonPatch: {expression: "[JSONPatch{op: 'add', path: '/metadata/labels/seen', value: object.metadata.labels.team}]"}
---
apiVersion: admissionregistration.k8s.io/v1beta1
kind: MutatingAdmissionPolicy
metadata: {name: first}
spec:
  matchConstraints: {resourceRules: [{apiGroups: [''], apiVersions: [v1], operations: [CREATE], resources: [configmaps]}]}
  mutations:
  - patchType: ApplyConfiguration
    applyConfiguration: {expression: "Object{metadata: Object.metadata{labels: {'team': 'ml'}}}"}
---
apiVersion: policies.kyverno.io/v1
kind: ValidatingPolicy
metadata: {name: needs-team}
spec:
  validationActions: [Deny]
  matchConstraints: {resourceRules: [{apiGroups: [''], apiVersions: [v1], operations: [CREATE], resources: [configmaps]}]}
  validations:
  - expression: "object.metadata.labels.seen == 'ml'"
"#;
    let set =
        crate::PolicySet::new(crate::admission::loader::load_policies(text, "p.yaml").unwrap());
    let input = crate::admission::request::ResourceInput::create(
        json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "c", "namespace": "default", "labels": {"x": "y"}}}),
    );
    let env = crate::lang::jmespath::Env::at(provenance_core::UnixTime(0));
    let d = set.decide_mutating(&input, &env, None);
    // The MutatingAdmissionPolicy runs first, so the MutatingPolicy sees its label, and the
    // ValidatingPolicy sees both.
    assert!(d.allowed, "{d:?}");
    assert!(d.mutation_blocking.is_empty());
    let patched =
        crate::kyverno::mutate::json_patch::apply(&input.object, &d.mutation_patches, "t").unwrap();
    assert_eq!(
        patched["metadata"]["labels"],
        json!({"x": "y", "team": "ml", "seen": "ml"})
    );
    // Validated as submitted (no mutation), the object is denied.
    assert!(!set.decide(&input, &env).allowed);
}

#[test]
fn decide_mutating_blocks_on_errors_unless_ignored() {
    let doc = |fp: &str| {
        format!(
            r#"
apiVersion: admissionregistration.k8s.io/v1beta1
kind: MutatingAdmissionPolicy
metadata: {{name: broken}}
spec:
  failurePolicy: {fp}
  matchConstraints: {{resourceRules: [{{apiGroups: [''], apiVersions: [v1], operations: [CREATE], resources: [configmaps]}}]}}
  mutations:
  - patchType: JSONPatch
    jsonPatch: {{expression: "[JSONPatch{{op: 'remove', path: '/data/missing'}}]"}}
"#
        )
    };
    let input = crate::admission::request::ResourceInput::create(
        json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "c", "namespace": "default"}}),
    );
    let env = crate::lang::jmespath::Env::at(provenance_core::UnixTime(0));
    let fail = crate::PolicySet::new(
        crate::admission::loader::load_policies(&doc("Fail"), "p.yaml").unwrap(),
    );
    let d = fail.decide_mutating(&input, &env, None);
    assert_eq!(d.mutation_blocking.len(), 1);
    assert!(
        d.mutation_blocking[0].message.contains("spec.mutations[0]"),
        "{:?}",
        d.mutation_blocking
    );
    let ignore = crate::PolicySet::new(
        crate::admission::loader::load_policies(&doc("Ignore"), "p.yaml").unwrap(),
    );
    let d = ignore.decide_mutating(&input, &env, None);
    assert!(d.mutation_blocking.is_empty() && d.mutation_patches.is_empty());
}
