//! CEL: unit tests of the evaluator and libraries, and the ValidatingPolicy / `validate.cel`
//! cases of Kyverno's CLI test suite (`../shared/corpora/kyverno-cli`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use provenance_policy::cel_policies::validating_policy::{
    CelPolicyException, PolicyBinding, ValidatingAdmissionPolicy, ValidatingPolicy,
};
use provenance_policy::core::outcome::RuleStatus;
use provenance_policy::lang::cel::{
    CompiledCelRule, Operation, PolicyInput, Program, RequestView, Value, VariableScope,
};
use serde_json::json;

fn pod() -> serde_json::Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "namespace": "ns", "labels": {"app": "x", "team": "y"}},
        "spec": {
            "containers": [
                {"name": "a", "image": "nginx:1", "env": [{"name": "A", "value": "1"}, {"name": "DATASET_SHA256", "value": "abc"}],
                 "resources": {"limits": {"cpu": "500m", "memory": "1Gi"}}},
                {"name": "b", "image": "ghcr.io/x/y:2", "env": [{"name": "DATASET_SHA256", "value": "abc"}]},
                {"name": "c", "image": "nginx:3", "env": [{"name": "DATASET_SHA256", "value": "abc"}]}
            ]
        }
    })
}

fn eval(src: &str, input: &PolicyInput) -> Result<serde_json::Value, provenance_policy::Error> {
    let p = Program::compile(src)?;
    let view = RequestView::new(input);
    p.evaluate_json(&VariableScope::empty(&view))
}

fn ok(src: &str) -> serde_json::Value {
    eval(src, &PolicyInput::create(pod())).unwrap_or_else(|e| panic!("{src}: {e}"))
}

#[test]
fn core_language() {
    let cases: &[(&str, serde_json::Value)] = &[
        ("object.metadata.name == 'p'", json!(true)),
        (
            "object.spec.containers.all(c, c.env.exists(e, e.name == 'DATASET_SHA256'))",
            json!(true),
        ),
        (
            "object.spec.containers.exists_one(c, c.name == 'a')",
            json!(true),
        ),
        (
            "object.spec.containers.map(c, c.name)",
            json!(["a", "b", "c"]),
        ),
        (
            "object.spec.containers.filter(c, c.image.startsWith('nginx')).map(c, c.name)",
            json!(["a", "c"]),
        ),
        ("has(object.spec.volumes)", json!(false)),
        ("has(object.metadata.labels)", json!(true)),
        ("'app' in object.metadata.labels", json!(true)),
        ("size(object.spec.containers) + 1", json!(4)),
        ("object.spec.containers.size()", json!(3)),
        ("1 == 1.0 && 2u == 2 && 3 > 2.5", json!(true)),
        ("[1, 2] + [3]", json!([1, 2, 3])),
        ("{'a': 1}.a", json!(1)),
        ("'abc'.endsWith('c') && 'abc'.contains('b')", json!(true)),
        ("'abc'.matches('^a.c$')", json!(true)),
        ("true ? 'x' : 'y'", json!("x")),
        ("-(3) * 2 % 4", json!(-2)),
        ("7 / 2", json!(3)),
        // error absorption: false && error == false; true || error == true
        ("false && object.nope == 1", json!(false)),
        ("object.nope == 1 || true", json!(true)),
        (
            "object.spec.containers.all(c, c.nope == 1 || c.name != '')",
            json!(true),
        ),
        (
            "object.spec.containers.exists(c, c.nope == 1 || c.name == 'c')",
            json!(true),
        ),
        ("[1, 2, 3].all(x, x > 0)", json!(true)),
        ("{'a': 1, 'b': 2}.all(k, k != '')", json!(true)),
        ("oldObject == null", json!(true)),
        ("request.operation", json!("CREATE")),
        (
            "request.kind.kind + '/' + request.resource.resource",
            json!("Pod/pods"),
        ),
        ("request.object.metadata.name", json!("p")),
        ("request.namespace", json!("ns")),
    ];
    for (src, want) in cases {
        assert_eq!(&ok(src), want, "{src}");
    }
}

#[test]
fn type_values_compare_as_cel_go_types() {
    for (src, want) in [
        ("type(1) == int", true),
        ("type(1u) == uint", true),
        ("type(1.5) == double", true),
        ("type('a') == string", true),
        ("type(true) == bool", true),
        ("type(null) == null_type", true),
        ("type([1]) == list", true),
        ("type({'a': 1}) == map", true),
        ("type(object.metadata) == map", true),
        ("type(object.metadata.name) == string", true),
        ("type(object.spec.containers) == list", true),
        ("type(int) == type", true),
        ("type(object.metadata) != type(null)", true),
        ("type(1) == type(2)", true),
        ("type(1) == string", false),
        ("type('int') == int", false),
        ("type(null) == map", false),
        ("int == string", false),
    ] {
        assert_eq!(ok(src), serde_json::json!(want), "{src}");
    }
}

#[test]
fn optionals() {
    let cases: &[(&str, serde_json::Value)] = &[
        ("object.spec.?initContainers.orValue([])", json!([])),
        ("object.spec.?containers.orValue([]).size()", json!(3)),
        (
            "object.metadata.?annotations['x'].orValue('none')",
            json!("none"),
        ),
        ("object.metadata.labels[?'app'].orValue('')", json!("x")),
        ("object.metadata.labels[?'zzz'].hasValue()", json!(false)),
        (
            "object.spec.?template.?spec.?nodeSelector.orValue({})",
            json!({}),
        ),
        ("optional.of(1).value()", json!(1)),
        ("optional.none().or(optional.of(2)).value()", json!(2)),
        ("[?optional.none(), 1]", json!([1])),
        ("{?'a': optional.none(), 'b': 1}", json!({"b": 1})),
    ];
    for (src, want) in cases {
        assert_eq!(&ok(src), want, "{src}");
    }
}

#[test]
fn kubernetes_libraries() {
    let cases: &[(&str, serde_json::Value)] = &[
        (
            "'a,b,,c'.split(',').filter(x, x != '')",
            json!(["a", "b", "c"]),
        ),
        ("['a', 'b'].join('-')", json!("a-b")),
        ("'  x '.trim()", json!("x")),
        ("'ABC'.lowerAscii()", json!("abc")),
        (
            "quantity(object.spec.containers[0].resources.limits.memory).isGreaterThan(quantity('512Mi'))",
            json!(true),
        ),
        ("semver('1.2.3').isLessThan(semver('2.0.0'))", json!(true)),
        ("isURL('https://example.com/x')", json!(true)),
        ("ip('10.0.0.1').family()", json!(4)),
        ("cidr('10.0.0.0/8').containsIP(ip('10.1.2.3'))", json!(true)),
        ("[3, 1, 2].sort()", json!([1, 2, 3])),
        ("[1, 2, 3].isSorted()", json!(true)),
        ("'%s-%d'.format(['a', 1])", json!("a-1")),
        ("string(12) + 'x'", json!("12x")),
        ("int('42') + 1", json!(43)),
        ("'a-b'.replace('-', '_')", json!("a_b")),
        ("'abc'.indexOf('c')", json!(2)),
        // Kyverno's image library (go-containerregistry semantics)
        ("image('nginx').registry()", json!("index.docker.io")),
        ("image('nginx').repository()", json!("library/nginx")),
        ("image('nginx').identifier()", json!("latest")),
        ("image('ghcr.io/a/b:1.2').tag()", json!("1.2")),
        ("image('ghcr.io/a/b:1.2').containsDigest()", json!(false)),
        (
            "image('localhost:5000/m@sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08').digest()",
            json!("sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"),
        ),
        (
            "image('r.io/m:1@sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08').tag()",
            json!(""),
        ),
        ("image('r.io:5000/m').registry()", json!("r.io:5000")),
        (
            "isImage('a b') || isImage('nginx@sha256:zz') || isImage('')",
            json!(false),
        ),
        (
            "object.spec.containers.map(c, image(c.image).registry())",
            json!(["index.docker.io", "ghcr.io", "index.docker.io"]),
        ),
    ];
    for (src, want) in cases {
        assert_eq!(&ok(src), want, "{src}");
    }
}

#[test]
fn errors_name_the_expression() {
    let e = Program::compile("object.metadata.name ==").unwrap_err();
    assert_eq!(e.code(), "policy.cel");
    assert!(e.to_string().contains("object.metadata.name =="), "{e}");
    let e = Program::compile("foo.bar").unwrap_err();
    assert!(
        e.to_string().contains("undeclared reference to 'foo'"),
        "{e}"
    );
    let e = Program::compile("authorizer.group('x')").unwrap_err();
    assert_eq!(e.code(), "policy.unsupported");
    // unknown functions fail at evaluation: an error, never a pass
    assert!(eval("nosuchfn(1)", &PolicyInput::create(pod())).is_err());
    let e = eval("object.spec.nope", &PolicyInput::create(pod())).unwrap_err();
    assert!(e.to_string().contains("no such key: nope"), "{e}");
    assert!(Program::compile("").is_err());
    assert!(Program::compile(&"(".repeat(100_000)).is_err());
    // type errors are errors, never a pass
    assert!(eval("1 < 'a'", &PolicyInput::create(pod())).is_err());
    assert!(eval("!1", &PolicyInput::create(pod())).is_err());
}

#[test]
fn fuzz_like_inputs_do_not_panic() {
    let input = PolicyInput::create(pod());
    for src in [
        "))",
        "[",
        "{",
        "a.?",
        "object[?]",
        "has(1)",
        "object.all(x)",
        "1/0",
        "1%0",
        "9223372036854775807 + 1",
        "-(-9223372036854775807 - 1)",
        "''.matches('(')",
        "object.spec.containers[99]",
        "object.spec.containers[-1]",
        "Foo{a: 1}",
        "[1,2].map(x, y, x)",
        "size()",
        "optional.none().value()",
        "\u{0}",
        "'\\xZZ'",
        "object.spec.containers.map(c, c.map(d, d))",
        "{1: 2, 1: 3}",
        "(-9223372036854775807 - 1) / -1",
        "(-9223372036854775807 - 1) % -1",
        "-(-9223372036854775807 - 1)",
        "9223372036854775807 * 2",
        "18446744073709551615u + 1u",
        "0u - 1u",
        "1.0 / 0.0",
        "'a' * 2",
        "[1] + {}",
        "size(1)",
        "'abc'[0]",
        "object.spec.containers[9223372036854775807]",
        "object.spec.containers[1.5]",
        "duration('1h') + duration('1h')",
        "timestamp('2024-01-01T00:00:00Z') - duration('876000h')",
        "string(b'\\xff')",
        "quantity('1e999999')",
        "semver('x')",
        "'x'.substring(5)",
        "'%d'.format(['x'])",
    ] {
        let _ = eval(src, &input);
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let input = PolicyInput::create(pod());
    for n in [10usize, 50, 100, 250, 1000] {
        for src in [
            format!("{}1{}", "(".repeat(n), ")".repeat(n)),
            format!("1{}", " + 1".repeat(n * 4)),
            format!("{}true", "!".repeat(n)),
            format!("{}1{}", "[".repeat(n), "]".repeat(n)),
            format!("{}1{}", "true ? ".repeat(n), " : 2".repeat(n)),
        ] {
            // A value, or a bounded `policy.cel` error, never a crash.
            match Program::compile(&src) {
                Ok(p) => {
                    if let Err(e) = p.evaluate(&RequestView::new(&input)) {
                        assert_eq!(e.code(), "policy.cel", "{n}: {e}");
                    }
                }
                Err(e) => assert_eq!(e.code(), "policy.cel", "{n}: {e}"),
            }
        }
    }
    assert!(Program::compile(&format!("{}1{}", "(".repeat(20), ")".repeat(20))).is_ok());
    let e = Program::compile(&format!("{}1{}", "(".repeat(1000), ")".repeat(1000))).unwrap_err();
    assert_eq!(e.code(), "policy.cel", "{e}");
}

#[test]
fn lazy_variables_and_context_libraries() {
    let policy = json!({
        "apiVersion": "policies.kyverno.io/v1", "kind": "ValidatingPolicy",
        "metadata": {"name": "vp"},
        "spec": {
            "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}]},
            "variables": [
                {"name": "cm", "expression": "resource.get('v1', 'configmaps', 'default', 'regs')"},
                {"name": "regs", "expression": "variables.cm.data.registries.split(',')"},
                {"name": "boom", "expression": "object.nope"}
            ],
            "validations": [{
                "expression": "object.spec.containers.all(c, variables.regs.exists(r, c.image.startsWith(r)))",
                "messageExpression": "'bad images; allowed: ' + variables.regs.join(',')"
            }]
        }
    });
    let vp = ValidatingPolicy::from_value(&policy).unwrap();
    let mut input = PolicyInput::create(pod());
    // missing context → error, never pass
    let r = vp.evaluate(&input);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].status, RuleStatus::Error, "{r:?}");
    input.context.add_resource(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "regs", "namespace": "default"}, "data": {"registries": "nginx,ghcr.io"}}));
    let r = vp.evaluate(&input);
    assert_eq!(r[0].status, RuleStatus::Pass, "{r:?}");
    assert_eq!(r[0].message, "success");
    assert_eq!(r[0].rule, "");
    input.context = Default::default();
    input
        .context
        .add_resource(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "regs", "namespace": "default"}, "data": {"registries": "nginx"}}));
    let r = vp.evaluate(&input);
    assert_eq!(r[0].status, RuleStatus::Fail);
    assert_eq!(r[0].message, "bad images; allowed: nginx");
    // unused erroring variable `boom` is never evaluated (lazy)
    // operation mismatch → no result
    input.operation = Operation::Update;
    assert!(vp.evaluate(&input).is_empty());
}

#[test]
fn validating_policy_messages_and_skip() {
    let mk = |validations: serde_json::Value, extra: serde_json::Value| {
        let mut spec = json!({
            "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["*"], "resources": ["pods"]}]},
            "validations": validations
        });
        for (k, v) in extra.as_object().unwrap() {
            spec[k] = v.clone();
        }
        ValidatingPolicy::from_value(&json!({"apiVersion": "policies.kyverno.io/v1beta1",
            "kind": "ValidatingPolicy", "metadata": {"name": "p"}, "spec": spec}))
        .unwrap()
    };
    let input = PolicyInput::create(pod());
    let r = mk(
        json!([{"expression": "true"}, {"expression": "false"}]),
        json!({}),
    )
    .evaluate(&input);
    assert_eq!(r[0].message, "CEL expression validation failed at index 1");
    let r = mk(json!([{"expression": "false", "message": "m"}]), json!({})).evaluate(&input);
    assert_eq!(
        (r[0].status, r[0].message.as_str()),
        (RuleStatus::Fail, "m")
    );
    let r = mk(
        json!([{"expression": "false", "message": "m", "messageExpression": "1"}]),
        json!({}),
    )
    .evaluate(&input);
    assert!(
        r[0].message
            .starts_with("failed to convert message expression to string"),
        "{}",
        r[0].message
    );
    let r = mk(
        json!([{"expression": "true"}]),
        json!({"matchConditions": [{"name": "x", "expression": "object.metadata.name == 'other'"}]}),
    )
    .evaluate(&input);
    assert_eq!(
        (r[0].status, r[0].message.as_str()),
        (RuleStatus::Skip, "skip")
    );
    let r = mk(
        json!([{"expression": "true"}]),
        json!({"matchConditions": [{"name": "x", "expression": "object.nope"}], "failurePolicy": "Ignore"}),
    )
    .evaluate(&input);
    assert_eq!(r[0].status, RuleStatus::Skip);
    let r = mk(json!([{"expression": "'x'"}]), json!({})).evaluate(&input);
    assert_eq!(r[0].status, RuleStatus::Error);
    // namespace / object selectors
    let r = mk(
        json!([{"expression": "true"}]),
        json!({"matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}],
               "objectSelector": {"matchLabels": {"app": "other"}}}}),
    )
    .evaluate(&input);
    assert!(r.is_empty());
    let mut with_ns = input.clone();
    with_ns.namespace_object = Some(json!({"metadata": {"name": "ns", "labels": {"env": "prod"}}}));
    let p = mk(
        json!([{"expression": "namespaceObject.metadata.labels.env == 'prod'"}]),
        json!({"matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}],
               "namespaceSelector": {"matchExpressions": [{"key": "env", "operator": "In", "values": ["prod"]}]}}}),
    );
    assert_eq!(p.evaluate(&with_ns)[0].status, RuleStatus::Pass);
    assert!(p.evaluate(&input).is_empty());
    // an evaluation mode the CRD does not define is a load error
    let e = ValidatingPolicy::from_value(&json!({"apiVersion": "policies.kyverno.io/v1",
        "kind": "ValidatingPolicy", "metadata": {"name": "p"},
        "spec": {"evaluation": {"mode": "Yaml"}, "validations": [{"expression": "true"}]}}))
    .unwrap_err();
    assert_eq!(e.code(), "policy.invalid");
}

#[test]
fn validate_cel_messages() {
    let input = PolicyInput::create(pod());
    let view = RequestView::new(&input);
    let rule = CompiledCelRule::compile(&json!({"expressions": [
        {"expression": "object.metadata.name == 'p'"},
        {"expression": "object.metadata.name == 'q'"}
    ]}))
    .unwrap()
    .with_rule_name("r");
    let o = rule.evaluate(&view);
    assert_eq!(o.status, RuleStatus::Fail);
    assert_eq!(o.message, "failed expression: object.metadata.name == 'q'");
    let rule = rule.with_default_message(Some("rule message".into()));
    assert_eq!(rule.evaluate(&view).message, "rule message");
    let ok = CompiledCelRule::compile(&json!({"expressions": [{"expression": "true"}]}))
        .unwrap()
        .with_rule_name("r");
    assert_eq!(ok.evaluate(&view).message, "Validation rule 'r' passed.");
    let skip = ok
        .with_preconditions(&json!([{"name": "n", "expression": "false"}]))
        .unwrap();
    assert_eq!(skip.evaluate(&view).status, RuleStatus::Skip);
    assert_eq!(skip.evaluate(&view).message, "cel preconditions not met");
    let err =
        CompiledCelRule::compile(&json!({"expressions": [{"expression": "object.nope"}]})).unwrap();
    let o = err.evaluate(&view);
    assert_eq!(o.status, RuleStatus::Fail);
    assert!(
        o.message
            .starts_with("expression 'object.nope' resulted in error: "),
        "{}",
        o.message
    );
    let me = CompiledCelRule::compile(&json!({"expressions": [{"expression": "false", "message": "m", "messageExpression": "'name ' + object.metadata.name"}],
        "variables": [{"name": "n", "expression": "1"}]})).unwrap();
    assert_eq!(me.evaluate(&view).message, "name p");
}

// ---------------------------------------------------------------- corpus

fn shared_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("PROVENANCE_SHARED") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared")),
    };
    if dir.join("corpora/kyverno-cli").is_dir() {
        Some(dir)
    } else if std::env::var_os("CI").is_some() {
        panic!(
            "corpus missing: {} (set PROVENANCE_SHARED to the folder holding corpora/)",
            dir.join("corpora/kyverno-cli").display()
        );
    } else {
        None
    }
}

fn yaml_docs(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let docs: Vec<serde_json::Value> =
        serde_saphyr::from_multiple(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    docs.into_iter().filter(|d| !d.is_null()).collect()
}

fn find_tests(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = rd.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            find_tests(&p, out);
        } else if p.file_name().is_some_and(|n| n == "kyverno-test.yaml") {
            out.push(p);
        }
    }
}

const CLUSTER_SCOPED: &[&str] = &[
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "Node",
    "FlowSchema",
    "PriorityLevelConfiguration",
    "StorageClass",
    "PersistentVolume",
];

#[derive(Default)]
struct Tally {
    passed: usize,
    /// Passed because the policy did not match (Kyverno reports nothing: "excluded").
    excluded: usize,
    failed: Vec<String>,
    skipped: Vec<String>,
}

/// Runs the ValidatingPolicy and validate.cel results of one kyverno-test.yaml.
fn run_test_file(test: &Path, tally: &mut Tally) {
    let dir = test.parent().unwrap();
    let spec = &yaml_docs(test)[0];
    let strs = |key: &str| -> Vec<String> {
        spec.get(key)
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    // policies: ValidatingPolicies and ClusterPolicies with validate.cel rules
    let mut vpols: BTreeMap<String, Result<ValidatingPolicy, String>> = BTreeMap::new();
    let mut vaps: BTreeMap<String, Result<ValidatingAdmissionPolicy, String>> = BTreeMap::new();
    let mut bindings: Vec<PolicyBinding> = Vec::new();
    let mut cel_rules: BTreeMap<
        (String, String),
        Result<(CompiledCelRule, serde_json::Value), String>,
    > = BTreeMap::new();
    for p in strs("policies") {
        for doc in yaml_docs(&dir.join(&p)) {
            let kind = doc["kind"].as_str().unwrap_or_default();
            let name = doc["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            if kind == "ValidatingAdmissionPolicy" {
                vaps.insert(
                    name.clone(),
                    ValidatingAdmissionPolicy::from_value(&doc).map_err(|e| e.to_string()),
                );
            } else if kind == "ValidatingAdmissionPolicyBinding" {
                bindings.push(PolicyBinding::from_value(&doc).unwrap());
            } else if kind == "ValidatingPolicy" {
                vpols.insert(
                    name,
                    ValidatingPolicy::from_value(&doc).map_err(|e| e.to_string()),
                );
            } else if kind == "ClusterPolicy" || kind == "Policy" {
                for rule in doc["spec"]["rules"].as_array().into_iter().flatten() {
                    if let Some(cel) = rule.get("validate").and_then(|v| v.get("cel")) {
                        let rname = rule["name"].as_str().unwrap_or_default().to_owned();
                        let compiled = CompiledCelRule::compile(cel)
                            .map(|c| {
                                c.with_rule_name(&rname).with_default_message(
                                    rule["validate"]["message"].as_str().map(str::to_owned),
                                )
                            })
                            .and_then(|c| match rule.get("celPreconditions") {
                                Some(p) => c.with_preconditions(p),
                                None => Ok(c),
                            })
                            .map(|c| (c, rule["match"].clone()))
                            .map_err(|e| e.to_string());
                        cel_rules.insert((name.clone(), rname), compiled);
                    }
                }
            }
        }
    }
    for vap in vaps.values_mut().flatten() {
        vap.add_bindings(&bindings);
    }
    if vpols.is_empty() && cel_rules.is_empty() && vaps.is_empty() {
        return;
    }
    let mut param_resources = Vec::new();
    for p in strs("paramResources") {
        param_resources.extend(yaml_docs(&dir.join(&p)));
    }
    let mut user_info = provenance_policy::lang::cel::UserInfo::default();
    if let Some(u) = spec.get("userinfo").and_then(|v| v.as_str()) {
        let u = &yaml_docs(&dir.join(u))[0]["userInfo"];
        user_info.username = u["username"].as_str().unwrap_or_default().to_owned();
        user_info.groups = strs_of(&u["groups"]);
    }
    let mut ns_labels: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    // resources
    let mut resources = Vec::new();
    for r in strs("resources") {
        for mut doc in yaml_docs(&dir.join(&r)) {
            let kind = doc["kind"].as_str().unwrap_or_default().to_owned();
            if doc["metadata"]["namespace"].is_null() && !CLUSTER_SCOPED.contains(&kind.as_str()) {
                doc["metadata"]["namespace"] = json!("default");
            }
            resources.push(doc);
        }
    }
    // values: namespaces and namespaceSelector
    let mut namespaces: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    if let Some(v) = spec.get("variables").and_then(|v| v.as_str()) {
        let values = &yaml_docs(&dir.join(v))[0];
        for ns in values["namespaceSelector"].as_array().into_iter().flatten() {
            let n = ns["name"].as_str().unwrap_or_default().to_owned();
            ns_labels.insert(n.clone(), ns["labels"].clone());
            namespaces.insert(n.clone(), json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n, "labels": ns["labels"]}}));
        }
        for ns in values["namespaces"].as_array().into_iter().flatten() {
            namespaces.insert(
                ns["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                ns.clone(),
            );
        }
    }
    // context data: context.yaml resources/images, clusterResources, global context, http mocks
    let mut ctx = provenance_policy::lang::cel::ContextData::new();
    if let Some(c) = spec.get("context").and_then(|v| v.as_str()) {
        let c = &yaml_docs(&dir.join(c))[0];
        for r in c["spec"]["resources"].as_array().into_iter().flatten() {
            ctx.add_resource(r.clone());
        }
        for i in c["spec"]["images"].as_array().into_iter().flatten() {
            ctx.add_image(i["image"].as_str().unwrap_or_default(), i.clone());
        }
    }
    for c in strs("clusterResources") {
        for doc in yaml_docs(&dir.join(&c)) {
            if doc["kind"] == "ClusterResource" {
                for r in doc["spec"]["resources"].as_array().into_iter().flatten() {
                    ctx.add_resource(r.clone());
                }
            } else {
                ctx.add_resource(doc);
            }
        }
    }
    let mut unsupported_ctx = None;
    for g in spec["globalContextEntries"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let name = g["name"].as_str().unwrap_or_default();
        if let Some(data) = g.get("data") {
            let mut d = data.clone();
            for p in g["projections"].as_array().into_iter().flatten() {
                let path = p["path"].as_str().unwrap_or_default();
                if let Some(v) = data.get(path) {
                    d[p["name"].as_str().unwrap_or_default()] = v.clone();
                }
            }
            ctx.add_global_context(name, d);
        } else if let Some(items) = g.get("resources") {
            ctx.add_global_context(name, items.clone());
        } else if let Some(files) = g["resourceFiles"].as_array() {
            let mut items = Vec::new();
            for f in files {
                items.extend(yaml_docs(&dir.join(f.as_str().unwrap_or_default())));
            }
            ctx.add_global_context(name, serde_json::Value::Array(items));
        } else {
            unsupported_ctx = Some("globalContextEntries without data/resources");
        }
    }
    for m in spec["apiCallResponses"].as_array().into_iter().flatten() {
        ctx.add_http_response(
            m["method"].as_str().unwrap_or("GET"),
            m["url"].as_str().unwrap_or_default(),
            m["response"].clone(),
        );
    }
    let mut exceptions = Vec::new();
    let mut exception_error = None;
    for e in strs("exceptions") {
        for doc in yaml_docs(&dir.join(&e)) {
            if doc["apiVersion"]
                .as_str()
                .is_some_and(|a| a.starts_with("policies.kyverno.io/"))
            {
                match CelPolicyException::from_value(&doc) {
                    Ok(x) => exceptions.push(std::sync::Arc::new(x)),
                    Err(e) => exception_error = Some(e.to_string()),
                }
            }
        }
    }
    for vp in vpols.values_mut().flatten() {
        vp.add_exceptions(&exceptions);
    }

    for expected in spec["results"].as_array().into_iter().flatten() {
        let policy = expected["policy"].as_str().unwrap_or_default();
        let rule = expected["rule"].as_str().unwrap_or_default();
        let kind = expected["kind"].as_str().unwrap_or_default();
        let want = expected["result"].as_str().unwrap_or_default();
        let is_vpol = expected["isValidatingPolicy"] == json!(true);
        let is_vap = expected["isValidatingAdmissionPolicy"] == json!(true);
        if is_vap && !vaps.contains_key(policy) {
            continue;
        }
        let op = expected["operation"]
            .as_str()
            .and_then(Operation::parse)
            .unwrap_or_default();
        if !is_vpol && !is_vap && !cel_rules.contains_key(&(policy.to_owned(), rule.to_owned())) {
            continue;
        }
        if is_vpol && !vpols.contains_key(policy) {
            continue;
        }
        let mut names: Vec<String> = strs_of(&expected["resources"]);
        if let Some(r) = expected["resource"].as_str() {
            names.push(r.to_owned());
        }
        for rname in names {
            let label = format!(
                "{}: {policy}/{rule} {kind} {rname} expected {want}",
                test.strip_prefix(dir.ancestors().nth(8).unwrap_or(dir))
                    .unwrap_or(test)
                    .display()
            );
            let (ns, name) = match rname.split_once('/') {
                Some((ns, n)) => (Some(ns), n),
                None => (None, rname.as_str()),
            };
            let Some(res) = resources.iter().find(|r| {
                r["kind"] == kind
                    && r["metadata"]["name"] == name
                    && ns.is_none_or(|ns| r["metadata"]["namespace"] == ns)
            }) else {
                tally.failed.push(format!("{label}: resource not found"));
                continue;
            };
            if let Some(e) = &exception_error {
                tally.skipped.push(format!("{label}: {e}"));
                continue;
            }
            if let Some(u) = unsupported_ctx {
                tally.skipped.push(format!("{label}: {u}"));
                continue;
            }
            let ns_name = res["metadata"]["namespace"].as_str().unwrap_or_default();
            let mut input = PolicyInput {
                operation: op,
                namespace_object: namespaces.get(ns_name).cloned(),
                context: ctx.clone(),
                ..Default::default()
            };
            if op == Operation::Delete {
                input.old_object = Some(Cow::Owned(res.clone()));
            } else {
                input.object = Some(Cow::Owned(res.clone()));
            }
            input.user_info = user_info.clone();
            let got = if is_vap {
                match &vaps[policy] {
                    Err(e) => format!("load error: {e}"),
                    Ok(vap) => {
                        // Kyverno's CLI: namespace {name, labels from values' namespaceSelector}
                        input.namespace_object = (!ns_name.is_empty() && kind != "Namespace").then(|| {
                            json!({"metadata": {"name": ns_name, "labels": ns_labels.get(ns_name).cloned().unwrap_or(json!({}))}})
                        });
                        match vap.evaluate(&input, &param_resources).first() {
                            None => {
                                tally.excluded += 1;
                                println!("excluded (no match): {label}");
                                want.to_owned()
                            }
                            Some(r) => {
                                if r.status.as_str() != want {
                                    eprintln!("  {label}: got {} ({})", r.status, r.message);
                                }
                                r.status.as_str().to_owned()
                            }
                        }
                    }
                }
            } else if is_vpol {
                match &vpols[policy] {
                    Err(e) if e.starts_with("unsupported") => {
                        tally.skipped.push(format!("{label}: {e}"));
                        continue;
                    }
                    Err(e) => format!("load error: {e}"),
                    Ok(vp) => {
                        let r = vp.evaluate(&input);
                        match r.first() {
                            // No response: `kyverno test` counts the resource as
                            // excluded, which passes whatever the expected result.
                            None => {
                                tally.excluded += 1;
                                println!("excluded (no match): {label}");
                                want.to_owned()
                            }
                            Some(r) => {
                                if r.status.as_str() != want {
                                    eprintln!("  {label}: got {} ({})", r.status, r.message);
                                }
                                r.status.as_str().to_owned()
                            }
                        }
                    }
                }
            } else {
                match &cel_rules[&(policy.to_owned(), rule.to_owned())] {
                    Err(e) => format!("load error: {e}"),
                    Ok((rule, _matcher)) => {
                        // the rule's match block (kinds) is the lead's matcher; the corpus rules match by kind
                        // Kyverno's validate.cel handler without a cluster: {metadata: {name}}
                        input
                            .namespace_object
                            .get_or_insert_with(|| json!({"metadata": {"name": ns_name}}));
                        let o = rule.evaluate(&RequestView::new(&input));
                        o.status.as_str().to_owned()
                    }
                }
            };
            if got == want {
                tally.passed += 1;
            } else {
                tally.failed.push(format!("{label}: got {got}"));
            }
        }
    }
}

fn strs_of(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn kyverno_cli_corpus() {
    let Some(shared) = shared_dir() else {
        println!("SKIPPED: ../shared/corpora/kyverno-cli not found (set PROVENANCE_SHARED)");
        return;
    };
    let mut tests = Vec::new();
    find_tests(&shared.join("corpora/kyverno-cli"), &mut tests);
    let mut tally = Tally::default();
    for t in &tests {
        run_test_file(t, &mut tally);
    }
    for s in &tally.skipped {
        println!("skip: {s}");
    }
    for f in &tally.failed {
        println!("FAIL: {f}");
    }
    println!(
        "kyverno-cli CEL results: {} passed ({} of them as excluded: no match), {} failed, {} skipped (unsupported)",
        tally.passed,
        tally.excluded,
        tally.failed.len(),
        tally.skipped.len()
    );
    assert!(
        tally.failed.is_empty(),
        "{} corpus results failed",
        tally.failed.len()
    );
}

#[test]
fn from_admission_request() {
    let req = json!({
        "uid": "u1", "operation": "DELETE",
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "name": "p", "namespace": "ns",
        "userInfo": {"username": "alice", "groups": ["dev"], "extra": {"k": ["v"]}},
        "oldObject": pod(), "object": null, "dryRun": true
    });
    let input = PolicyInput::from_admission_request(&req).unwrap();
    assert_eq!(input.operation, Operation::Delete);
    assert!(input.object.is_none());
    assert_eq!(input.name(), "p");
    let got = eval(
        "request.userInfo.username + ':' + request.operation + ':' + string(request.dryRun) + ':' + oldObject.metadata.name + ':' + string(object == null)",
        &input,
    )
    .unwrap();
    assert_eq!(got, json!("alice:DELETE:true:p:true"));
    assert!(PolicyInput::from_admission_request(&json!({"operation": "EXPLODE"})).is_err());
    assert!(PolicyInput::from_admission_request(&json!(1)).is_err());
}

#[test]
fn validating_admission_policy() {
    let policy = |validations: serde_json::Value| {
        ValidatingAdmissionPolicy::from_value(&json!({
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": "vap"},
            "spec": {
                "paramKind": {"apiVersion": "v1", "kind": "ConfigMap"},
                "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}]},
                "validations": validations
            }
        }))
        .unwrap()
    };
    let input = PolicyInput::create(pod());
    let r =
        policy(json!([{"expression": "size(object.spec.containers) < 2"}])).evaluate(&input, &[]);
    assert_eq!((r[0].status, r[0].rule.as_str()), (RuleStatus::Fail, "vap"));
    assert_eq!(
        r[0].message,
        "failed expression: size(object.spec.containers) < 2"
    );
    let r = policy(json!([{"expression": "object.nope"}])).evaluate(&input, &[]);
    assert_eq!(r[0].status, RuleStatus::Error);
    let r = policy(json!([{"expression": "true"}])).evaluate(&input, &[]);
    assert_eq!((r[0].status, r[0].message.as_str()), (RuleStatus::Pass, ""));
    // a binding with a paramRef: params selected by name
    let mut vap = policy(
        json!([{"expression": "size(object.spec.containers) <= int(params.data.max)", "message": "too many"}]),
    );
    vap.add_bindings(&[PolicyBinding::from_value(&json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": "b"},
        "spec": {"policyName": "vap", "validationActions": ["Deny"], "paramRef": {"name": "limits"}}
    }))
    .unwrap()]);
    let limits = |max: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "limits"}, "data": {"max": max}});
    assert_eq!(
        vap.evaluate(&input, &[limits("5")])[0].status,
        RuleStatus::Pass
    );
    let r = vap.evaluate(&input, &[limits("2")]);
    assert_eq!(
        (r[0].status, r[0].message.as_str()),
        (RuleStatus::Fail, "too many")
    );
    // no parameter found: params is null, the expression errors (never a pass)
    assert_eq!(vap.evaluate(&input, &[])[0].status, RuleStatus::Error);
}

#[test]
fn compiled_forms_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Program>();
    check::<CompiledCelRule>();
    check::<ValidatingPolicy>();
    check::<CelPolicyException>();
    check::<ValidatingAdmissionPolicy>();
}

#[test]
fn value_reexport_is_cel_value() {
    let v: Value = Value::Bool(true);
    assert_eq!(v, Value::Bool(true));
}

#[test]
fn json_mode_policies_validate_payloads_and_never_requests() {
    let text = |mode: &str| {
        format!(
            r#"
apiVersion: policies.kyverno.io/v1
kind: ValidatingPolicy
metadata: {{name: no-public-buckets}}
spec:
  evaluation: {{mode: {mode}}}
  matchConditions:
  - name: has-buckets
    expression: "has(object.buckets)"
  validations:
  - expression: "object.buckets.all(b, !b.public)"
    message: "buckets must not be public"
"#
        )
    };
    let mut set = provenance_policy::PolicySet::default();
    set.add_yaml(&text("JSON"), "p.yaml").unwrap();
    let public = json!({"buckets": [{"name": "models", "public": true}]});
    let private = json!({"buckets": [{"name": "models", "public": false}]});
    let ctx = Default::default();
    let r = set.evaluate_payload(&public, "plan.json", &ctx);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].rules[0].status, RuleStatus::Fail, "{r:?}");
    assert_eq!(r[0].rules[0].message, "buckets must not be public");
    assert_eq!(r[0].rules[0].resource.name, "plan.json");
    let r = set.evaluate_payload(&private, "plan.json", &ctx);
    assert_eq!(r[0].rules[0].status, RuleStatus::Pass, "{r:?}");
    // matchConditions that do not hold: no verdict on the payload.
    let r = set.evaluate_payload(&json!({"other": 1}), "x.json", &ctx);
    assert!(
        r[0].rules.iter().all(|x| x.status != RuleStatus::Fail),
        "{r:?}"
    );
    // A Kubernetes request is not a payload: a JSON-mode policy never decides admission.
    let pod = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "namespace": "ml"}, "buckets": [{"public": true}]});
    let d = set.decide(
        &provenance_policy::admission::request::ResourceInput::create(pod.clone()),
        &provenance_policy::lang::jmespath::Env::at(provenance_policy::core::UnixTime(0)),
    );
    assert!(d.allowed && d.results.is_empty(), "{d:?}");
    // ...and a Kubernetes-mode policy never validates payloads.
    let mut k8s = provenance_policy::PolicySet::default();
    k8s.add_yaml(&text("Kubernetes"), "p.yaml").unwrap();
    assert!(k8s.evaluate_payload(&public, "plan.json", &ctx).is_empty());
    // Any other mode is a load error naming the field.
    let mut bad = provenance_policy::PolicySet::default();
    let e = bad.add_yaml(&text("Yaml"), "p.yaml").unwrap_err();
    assert!(e.to_string().contains("spec.evaluation.mode"), "{e}");
}

#[test]
fn an_exception_is_attached_once_however_often_the_set_is_linked() {
    let mut set = provenance_policy::PolicySet::default();
    set.add_yaml(
        r#"
apiVersion: policies.kyverno.io/v1
kind: ValidatingPolicy
metadata: {name: needs-team}
spec:
  matchConstraints:
    resourceRules:
    - {apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [pods]}
  validations:
  - expression: "has(object.metadata.labels) && 'team' in object.metadata.labels"
    message: "a team label is required"
---
apiVersion: policies.kyverno.io/v1
kind: PolicyException
metadata: {name: ops, namespace: ml}
spec:
  policyRefs: [{name: needs-team, kind: ValidatingPolicy}]
  matchConditions:
  - {name: ops, expression: "object.metadata.name.startsWith('ops-')"}
"#,
        "a.yaml",
    )
    .unwrap();
    // Every later file links the whole set again.
    for f in ["b.yaml", "c.yaml"] {
        set.add_yaml(
            &format!(
                "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {{name: {}}}\nspec:\n  rules:\n  - name: r\n    match: {{any: [{{resources: {{kinds: [ConfigMap]}}}}]}}\n    validate: {{message: m, pattern: {{metadata: {{name: \"?*\"}}}}}}\n",
                f.trim_end_matches(".yaml")
            ),
            f,
        )
        .unwrap();
    }
    let pod = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "ops-debug", "namespace": "ml"},
        "spec": {"containers": [{"name": "c", "image": "nginx"}]}});
    let d = set.decide(
        &provenance_policy::admission::request::ResourceInput::create(pod),
        &provenance_policy::lang::jmespath::Env::at(provenance_policy::core::UnixTime(0)),
    );
    let r = d.results.iter().find(|r| r.policy == "needs-team").unwrap();
    assert_eq!(r.status, RuleStatus::Skip, "{r:?}");
    assert_eq!(
        r.message, "rule is skipped due to policy exception: ml/ops",
        "{r:?}"
    );
}

#[test]
fn parse_service_account_reads_service_account_users_only() {
    let mut input = PolicyInput::create(pod());
    input.user_info.username = "system:serviceaccount:ml-serving:inference".into();
    assert_eq!(
        eval(
            "parseServiceAccount(request.userInfo.username).Namespace + '/' + parseServiceAccount(request.userInfo.username).Name",
            &input
        )
        .unwrap(),
        json!("ml-serving/inference")
    );
    for (user, expected) in [
        // Anything that is not a service account user gives empty fields, never a guess.
        ("alice", json!({"Name": "", "Namespace": ""})),
        (
            "system:serviceaccount:ml",
            json!({"Name": "", "Namespace": ""}),
        ),
        (
            "system:serviceaccounts:ml:x",
            json!({"Name": "", "Namespace": ""}),
        ),
        // Split at the first colon after the prefix, as Kyverno splits it.
        (
            "system:serviceaccount:ns:a:b",
            json!({"Name": "a:b", "Namespace": "ns"}),
        ),
    ] {
        let src = format!("parseServiceAccount('{user}')");
        assert_eq!(ok(&src), expected, "{user}");
    }
    assert!(eval("parseServiceAccount(1)", &input).is_err());
}
