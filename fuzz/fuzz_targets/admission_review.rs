//! AdmissionReview handling with a fixed policy set.
#![no_main]
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use provenance_policy::{Phase, PolicySet, RequestFacts, Review};

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
    // Both phases over the front door, with the namespace labels known and unknown.
    for facts in [RequestFacts::new(), RequestFacts::new().namespace_labels([("team", "ml")])] {
        let Ok(review) = Review::from_slice(data, &facts) else { return };
        for phase in [Phase::Validate, Phase::Mutate] {
            let _ = set.respond(&review, phase, None, &Default::default()).to_vec();
        }
    }
});
