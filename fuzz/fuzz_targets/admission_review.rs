//! AdmissionReview handling with a fixed policy set.
#![no_main]
use std::collections::BTreeMap;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use provenance_policy::admission::PolicySet;

const POLICY: &str = r#"apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: p}
spec:
  validationFailureAction: Enforce
  rules:
  - name: r
    match: {any: [{resources: {kinds: [Pod], namespaces: ["ml-*"]}}]}
    validate:
      message: "{{ request.object.metadata.name }}"
      foreach:
      - list: request.object.spec.containers
        pattern: {image: "!*:latest"}
"#;

fuzz_target!(|data: &[u8]| {
    static SET: OnceLock<PolicySet> = OnceLock::new();
    let set = SET.get_or_init(|| {
        let mut s = PolicySet::default();
        s.add_yaml(POLICY, "p.yaml").expect("policy");
        s
    });
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let _ = set.review(&v, BTreeMap::new(), None, &Default::default());
});
