//! Rules of one request share one copy of its context document: what one rule adds to its
//! context (context entries, including ones named under `request`, and `foreach` element
//! keys) is never seen by the next rule, in the same policy or another one.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use provenance_core::{RuleStatus, UnixTime};
use provenance_policy::admission::PolicySet;
use provenance_policy::admission::request::ResourceInput;
use provenance_policy::lang::jmespath::Env;
use serde_json::json;

const POLICIES: &str = r#"
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: writes}
spec:
  validationFailureAction: Enforce
  rules:
  - name: adds-a-variable
    match: {any: [{resources: {kinds: [Pod]}}]}
    context:
    - name: team
      variable: {value: platform}
    - name: request.object.metadata.labels.app
      variable: {value: rewritten}
    - name: images
      variable: {value: {}}
    validate:
      message: "sees its own context"
      deny:
        conditions:
          any:
          - {key: "{{ team }}/{{ request.object.metadata.labels.app }}", operator: NotEquals, value: platform/rewritten}
  - name: loops
    match: {any: [{resources: {kinds: [Pod]}}]}
    validate:
      message: "element seen"
      foreach:
      - list: request.object.spec.containers
        context:
        - name: seen
          variable: {jmesPath: element.name}
        deny:
          conditions:
            any:
            - {key: "{{ seen }}", operator: Equals, value: forbidden}
  - name: reads-after
    match: {any: [{resources: {kinds: [Pod]}}]}
    validate:
      message: "a previous rule's context leaked"
      deny:
        conditions:
          any:
          - {key: "{{ request.object.metadata.labels.app }}", operator: NotEquals, value: web}
          - {key: "{{ length(images.containers) }}", operator: NotEquals, value: 2}
---
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: reads}
spec:
  validationFailureAction: Enforce
  rules:
  - name: no-leftovers
    match: {any: [{resources: {kinds: [Pod]}}]}
    context:
    - name: own
      variable: {value: mine}
    validate:
      message: "a previous rule's context leaked"
      deny:
        conditions:
          any:
          - {key: "{{ request.object.metadata.labels.app }}", operator: NotEquals, value: web}
          - {key: "{{ team || 'none' }}", operator: NotEquals, value: none}
          - {key: "{{ seen || 'none' }}", operator: NotEquals, value: none}
          - {key: "{{ element || 'none' }}", operator: NotEquals, value: none}
          - {key: "{{ own }}", operator: NotEquals, value: mine}
"#;

fn pod() -> ResourceInput {
    ResourceInput::create(json!({"apiVersion": "v1", "kind": "Pod",
    "metadata": {"name": "p", "namespace": "default", "labels": {"app": "web"}},
    "spec": {"containers": [
        {"name": "a", "image": "registry.example/a:1"},
        {"name": "b", "image": "registry.example/b:1"}
    ]}}))
}

#[test]
fn what_a_rule_adds_to_its_context_stays_with_that_rule() {
    let mut set = PolicySet::default();
    set.add_yaml(POLICIES, "context.yaml").unwrap();
    let env = Env::at(UnixTime(1_800_000_000));
    // Twice: the second evaluation of the same set starts from the restored copy too.
    for _ in 0..2 {
        let responses = set.evaluate(&pod(), &env);
        let results: Vec<_> = responses.iter().flat_map(|r| r.rules.iter()).collect();
        assert_eq!(results.len(), 4, "{results:#?}");
        for r in results {
            assert_eq!(r.status, RuleStatus::Pass, "{}: {}", r.rule, r.message);
        }
    }
}

#[test]
fn a_foreach_still_sees_the_rule_context_and_fails_on_its_element() {
    let mut set = PolicySet::default();
    set.add_yaml(POLICIES, "context.yaml").unwrap();
    let env = Env::at(UnixTime(1_800_000_000));
    let mut input = pod();
    input.object["spec"]["containers"][1]["name"] = json!("forbidden");
    let responses = set.evaluate(&input, &env);
    let status = |rule: &str| {
        responses
            .iter()
            .flat_map(|r| r.rules.iter())
            .find(|r| r.rule == rule)
            .map(|r| r.status)
    };
    assert_eq!(status("loops"), Some(RuleStatus::Fail));
    assert_eq!(status("reads-after"), Some(RuleStatus::Pass));
    assert_eq!(status("no-leftovers"), Some(RuleStatus::Pass));
}
