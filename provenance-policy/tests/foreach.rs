//! `validate.foreach`: every element is evaluated against the rule context as it was before
//! the foreach, plus its own element keys and context entries; nothing one element (or a
//! nested foreach) writes is seen by the next element or by the next foreach entry.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use provenance_core::{RuleStatus, UnixTime};
use provenance_policy::admission::PolicySet;
use provenance_policy::admission::request::ResourceInput;
use provenance_policy::lang::jmespath::Env;
use serde_json::json;

fn decide(policy: &str) -> (RuleStatus, String) {
    let mut set = PolicySet::default();
    set.add_yaml(policy, "foreach.yaml").unwrap();
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "namespace": "ml"},
        "spec": {"containers": [
            {"name": "a", "image": "registry.example.com/a:1", "env": [{"name": "X", "value": "1"}]},
            {"name": "b", "image": "registry.example.com/b:1", "env": [{"name": "Y", "value": "2"}]},
            {"name": "c", "image": "registry.example.com/c:1", "env": [{"name": "Z", "value": "3"}]}
        ]}
    });
    let d = set.decide(
        &ResourceInput::create(pod),
        &Env::at(UnixTime(1_800_000_000)),
    );
    assert_eq!(d.results.len(), 1, "{d:?}");
    (d.results[0].status, d.results[0].message.clone())
}

fn policy(foreach: &str) -> String {
    format!(
        r#"
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {{name: fe}}
spec:
  validationFailureAction: Enforce
  rules:
  - name: r
    match: {{any: [{{resources: {{kinds: [Pod]}}}}]}}
    validate:
      message: "m"
      foreach:
{foreach}"#
    )
}

#[test]
fn context_entries_of_one_element_are_not_seen_by_the_next() {
    // `seen` reads `mine` before `mine` is set for this element: it must be 'none' for every
    // element, never the previous element's name.
    let p = policy(
        r#"
      - list: "request.object.spec.containers"
        context:
        - name: seen
          variable: {jmesPath: "mine || 'none'"}
        - name: mine
          variable: {value: "{{ element.name }}"}
        deny:
          conditions:
            any:
            - key: "{{ seen }}"
              operator: NotEquals
              value: none
"#,
    );
    assert_eq!(decide(&p).0, RuleStatus::Pass, "{:?}", decide(&p));
    // The check is live: with `mine` set, the same deny fails.
    let live = p.replace("\"{{ seen }}\"", "\"{{ mine }}\"");
    assert_eq!(decide(&live).0, RuleStatus::Fail);
}

#[test]
fn nested_foreach_keys_do_not_leak_to_the_next_entry_or_element() {
    // Entry 0 runs a nested foreach (element1 = each env var); entry 1 must not see element1.
    let p = policy(
        r#"
      - list: "request.object.spec.containers"
        foreach:
        - list: "element.env"
          deny:
            conditions:
              any:
              - key: "{{ element0.name }}/{{ element1.name }}"
                operator: AnyIn
                value: ["a/Y", "b/X", "c/X", "c/Y"]
      - list: "request.object.spec.containers"
        deny:
          conditions:
            any:
            - key: "{{ element1.name || 'none' }}"
              operator: NotEquals
              value: none
"#,
    );
    assert_eq!(decide(&p).0, RuleStatus::Pass, "{:?}", decide(&p));
    // The inner pairs are live: container b with its own variable Y is denied.
    let live = p.replace("[\"a/Y\", \"b/X\", \"c/X\", \"c/Y\"]", "[\"b/Y\"]");
    assert_eq!(decide(&live).0, RuleStatus::Fail);
}

#[test]
fn element_index_counts_per_list() {
    let p = policy(
        r#"
      - list: "request.object.spec.containers"
        deny:
          conditions:
            any:
            - key: "{{ elementIndex }}"
              operator: GreaterThan
              value: 2
            - key: "{{ element.name }}"
              operator: NotEquals
              value: "{{ request.object.spec.containers[{{ elementIndex }}].name }}"
"#,
    );
    assert_eq!(decide(&p).0, RuleStatus::Pass, "{:?}", decide(&p));
    // The check is live: against the next container's name, every element but the last fails.
    let live = p.replace("[{{ elementIndex }}]", "[1]");
    assert_eq!(decide(&live).0, RuleStatus::Fail);
}
