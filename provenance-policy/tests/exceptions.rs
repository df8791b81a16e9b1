//! Kyverno PolicyExceptions: parsing and validation, policy/rule selection, match, conditions,
//! and the kyverno-cli corpus expectations (an excepted rule is `skip`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use provenance_policy::admission::request::ResourceInput;
use provenance_policy::kyverno::exceptions::{PolicyException, skip_message};
use provenance_policy::lang::jmespath::Env;
use serde_json::{Value, json};

fn polex(spec: Value) -> Value {
    json!({
        "apiVersion": "kyverno.io/v2",
        "kind": "PolicyException",
        "metadata": {"name": "ex", "namespace": "team"},
        "spec": spec
    })
}

fn pod(name: &str, ns: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {"containers": [{"name": "c", "image": "nginx"}]}})
}

fn applies(e: &PolicyException, policy: &str, rule: &str, resource: &Value) -> bool {
    let input = ResourceInput::create(resource.clone());
    let ctx = json!({"request": input.request_json()});
    e.applies(policy, rule, &input, &ctx, &Env::default())
}

#[test]
fn parsing_and_validation() {
    for api in ["kyverno.io/v2", "kyverno.io/v2beta1", "kyverno.io/v2alpha1"] {
        let mut v = polex(
            json!({"exceptions": [{"policyName": "p", "ruleNames": ["r"]}],
            "match": {"any": [{"resources": {"kinds": ["Pod"]}}]}}),
        );
        v["apiVersion"] = json!(api);
        let e = PolicyException::from_value(&v).unwrap();
        assert_eq!(e.key(), "team/ex");
        assert!(!e.has_pod_security());
    }
    let bad = [
        {
            let mut v = polex(json!({"exceptions": []}));
            v["apiVersion"] = json!("kyverno.io/v1");
            v
        },
        {
            let mut v = polex(json!({"exceptions": []}));
            v["kind"] = json!("ClusterPolicy");
            v
        },
        polex(json!({"exceptions": [{"ruleNames": ["r"]}]})),
        polex(json!({"exceptions": [{"policyName": "p", "ruleNames": "r"}]})),
        // User information needs background: false.
        polex(
            json!({"exceptions": [{"policyName": "p", "ruleNames": ["r"]}],
            "match": {"any": [{"resources": {"kinds": ["Pod"]}, "subjects": [{"kind": "User", "name": "x"}]}]}}),
        ),
        // Invalid podSecurity entries.
        polex(
            json!({"exceptions": [{"policyName": "p", "ruleNames": ["r"]}],
            "podSecurity": [{"controlName": "Capabilities"}]}),
        ),
        polex(
            json!({"exceptions": [{"policyName": "p", "ruleNames": ["r"]}],
            "podSecurity": [{"controlName": "Sysctls", "restrictedField": "spec.securityContext.sysctls[*].name"}]}),
        ),
    ];
    for v in bad {
        let e = PolicyException::from_value(&v).unwrap_err();
        assert_eq!(e.code(), "policy.invalid", "{v}");
    }
    let ok = polex(json!({"background": false,
        "exceptions": [{"policyName": "p", "ruleNames": ["r"]}],
        "match": {"any": [{"resources": {"kinds": ["Pod"]}, "subjects": [{"kind": "User", "name": "x"}]}]}}));
    assert!(PolicyException::from_value(&ok).is_ok());
}

#[test]
fn selects_policy_and_rule() {
    let e = PolicyException::from_value(&polex(json!({
        "exceptions": [
            {"policyName": "require-labels", "ruleNames": ["check-*"]},
            {"policyName": "ns1/local", "ruleNames": ["r?"]}
        ],
        "match": {"any": [{"resources": {"kinds": ["Pod"]}}]}
    })))
    .unwrap();
    assert!(e.contains("require-labels", "check-team"));
    assert!(!e.contains("require-labels", "autogen-check-team"));
    assert!(e.contains("ns1/local", "r1"));
    assert!(!e.contains("local", "r1"));
    assert!(!e.contains("ns1/local", "r10"));
    let p = pod("x", "default", json!({}));
    assert!(applies(&e, "require-labels", "check-x", &p));
    assert!(!applies(&e, "require-labels", "other", &p));
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x", "namespace": "default"}});
    assert!(!applies(&e, "require-labels", "check-x", &svc));
    assert_eq!(
        skip_message(&[&e]),
        "rule is skipped due to policy exception team/ex"
    );
}

#[test]
fn match_and_conditions() {
    let e = PolicyException::from_value(&polex(json!({
        "exceptions": [{"policyName": "p", "ruleNames": ["r"]}],
        "match": {"all": [
            {"resources": {"kinds": ["Pod"], "namespaces": ["dev-*"]}},
            {"resources": {"names": ["tool-*"]}}
        ]},
        "conditions": {"any": [
            {"key": "{{ request.object.metadata.labels.team || '' }}", "operator": "Equals", "value": "infra"}
        ]}
    })))
    .unwrap();
    assert!(applies(
        &e,
        "p",
        "r",
        &pod("tool-1", "dev-a", json!({"team": "infra"}))
    ));
    assert!(!applies(
        &e,
        "p",
        "r",
        &pod("tool-1", "dev-a", json!({"team": "web"}))
    ));
    assert!(!applies(
        &e,
        "p",
        "r",
        &pod("tool-1", "prod", json!({"team": "infra"}))
    ));
    assert!(!applies(
        &e,
        "p",
        "r",
        &pod("app", "dev-a", json!({"team": "infra"}))
    ));
    // An exception without match covers nothing, as in Kyverno.
    let none = PolicyException::from_value(&polex(json!({
        "exceptions": [{"policyName": "p", "ruleNames": ["r"]}]
    })))
    .unwrap();
    assert!(!applies(&none, "p", "r", &pod("a", "b", json!({}))));
    // Conditions that fail to evaluate do not apply the exception.
    let broken = PolicyException::from_value(&polex(json!({
        "exceptions": [{"policyName": "p", "ruleNames": ["r"]}],
        "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
        "conditions": {"any": [{"key": "a", "operator": "NoSuchOperator", "value": "a"}]}
    })))
    .unwrap();
    assert!(!applies(&broken, "p", "r", &pod("a", "b", json!({}))));
}

fn yaml_docs(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    provenance_policy::yaml::load_documents(&text, &path.display().to_string()).unwrap()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn shared_dir() -> Option<PathBuf> {
    let dir = std::env::var("PROVENANCE_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared")));
    if dir.join("corpora/kyverno-cli").is_dir() {
        Some(dir)
    } else if std::env::var_os("CI").is_some() {
        panic!("corpus missing at {}", dir.display());
    } else {
        println!("SKIPPED: no corpus at {}", dir.display());
        None
    }
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

/// Every kyverno-cli test with kyverno.io PolicyExceptions: a `skip` expectation must be
/// covered by an exception, any other expectation must not be.
#[test]
fn corpus_exception_expectations() {
    let Some(shared) = shared_dir() else {
        return;
    };
    let mut tests = Vec::new();
    find_tests(&shared.join("corpora/kyverno-cli"), &mut tests);
    let (mut files, mut checked, mut other_api) = (0, 0, 0);
    let mut failures = Vec::new();
    for test in &tests {
        let dir = test.parent().unwrap();
        let spec = yaml_docs(test).remove(0);
        let docs: Vec<Value> = strings(&spec["exceptions"])
            .iter()
            .flat_map(|f| yaml_docs(&dir.join(f)))
            .collect();
        if docs.is_empty() {
            continue;
        }
        let mut exceptions = Vec::new();
        for d in &docs {
            let api = d["apiVersion"].as_str().unwrap_or("");
            if api.starts_with("kyverno.io/") {
                exceptions.push(PolicyException::from_value(d).unwrap());
            } else {
                other_api += 1;
            }
        }
        if exceptions.is_empty() {
            continue;
        }
        files += 1;
        let resources: Vec<Value> = strings(&spec["resources"])
            .iter()
            .flat_map(|f| yaml_docs(&dir.join(f)))
            .collect();
        for result in spec["results"].as_array().unwrap() {
            let policy = result["policy"].as_str().unwrap();
            let rule = result["rule"].as_str().unwrap();
            let kind = result["kind"].as_str().unwrap_or("");
            let expected = result["result"].as_str().unwrap();
            for name in strings(&result["resources"]) {
                let resource = resources
                    .iter()
                    .find(|r| r["metadata"]["name"] == name.as_str() && r["kind"] == kind)
                    .unwrap_or_else(|| panic!("{}: resource {name}", test.display()));
                let input = ResourceInput::create(resource.clone());
                let ctx = json!({"request": input.request_json()});
                let matched: Vec<&PolicyException> = exceptions
                    .iter()
                    .filter(|e| e.applies(policy, rule, &input, &ctx, &Env::default()))
                    .collect();
                // A podSecurity exception only skips when it exempts every failure
                // (checked in tests/pod_security.rs); here: applies or not.
                let excepted = !matched.is_empty();
                checked += 1;
                if excepted != (expected == "skip") {
                    failures.push(format!(
                        "{}: {policy}/{rule}/{name}: expected {expected}, exception applies: {excepted}",
                        test.display()
                    ));
                }
            }
        }
    }
    println!(
        "kyverno-cli PolicyException expectations: {files} tests, {checked} results checked, {} failed, {other_api} exceptions of other APIs (policies.kyverno.io) not evaluated here",
        failures.len()
    );
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(
        checked >= 12,
        "expected the test-exceptions corpus, found {checked}"
    );
}
