//! Attacks on the admission front door, the CEL evaluator and the policy loader that end in
//! an admission (or a crash) where the request must be blocked. Each test is a finding:
//! ignored until it is fixed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use provenance_core::sign::{KeyAlgorithm, SigningKey};
use provenance_core::verify::{PUBLIC_GOOD_TRUSTED_ROOT, Verifier};
use provenance_core::{RuleStatus, TrustRoot, UnixTime};
use provenance_policy::admission::request::ResourceInput;
use provenance_policy::admission::{Decision, PolicySet};
use provenance_policy::kyverno::verify_images::VerifyImagesContext;
use provenance_policy::lang::jmespath::Env;
use serde_json::json;

const NOW: UnixTime = UnixTime(1_800_000_000);

fn decide_without_evidence(set: &PolicySet, input: &ResourceInput) -> Decision {
    let root = TrustRoot::from_trusted_root_json(PUBLIC_GOOD_TRUSTED_ROOT).unwrap();
    let verifier = Verifier::new(&root).unwrap();
    let evidence = BTreeMap::new();
    let cx = VerifyImagesContext::new(&evidence, &verifier, NOW);
    set.decide_with(input, &Env::at(NOW), Some(&cx))
}

fn pod(image: &str) -> ResourceInput {
    ResourceInput::create(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "namespace": "ml"},
        "spec": {"containers": [{"name": "c", "image": image}]}}))
}

/// A Pod author writes an image reference the engine's parser refuses but a container runtime
/// pulls (`@sha512:` digests are valid for containerd and CRI-O, whose go-digest registers
/// SHA-512). The `verifyImages` rule reports it as an `error`, and `failurePolicy: Ignore`
/// admits errors: the unsigned image runs. The request's author chose the reference, so by
/// the rule the engine applies to the per-request evidence budget (`oci.too_large` is a
/// `fail`) this must fail, as the ImageValidatingPolicy path already does ("does not have a
/// digest").
#[test]
fn an_unparsable_image_reference_is_not_admitted_under_failure_policy_ignore() {
    let key = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let pem: String = key
        .public_key()
        .to_pem()
        .lines()
        .map(|l| format!("                      {l}\n"))
        .collect();
    let yaml = format!(
        r#"apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {{name: verify-images}}
spec:
  validationFailureAction: Enforce
  failurePolicy: Ignore
  rules:
    - name: signed
      match: {{any: [{{resources: {{kinds: [Pod]}}}}]}}
      verifyImages:
        - imageReferences: ["registry.provenance.test/*"]
          attestors:
            - entries:
                - keys:
                    publicKeys: |-
{pem}"#
    );
    let mut set = PolicySet::default();
    set.add_yaml(&yaml, "signature.yaml").unwrap();
    let img = format!(
        "registry.provenance.test/acme/unsigned@sha512:{}",
        "a".repeat(128)
    );
    let d = decide_without_evidence(&set, &pod(&img));
    assert!(
        !d.allowed,
        "admitted: {:?}",
        d.results
            .iter()
            .map(|r| (r.status, r.message.clone()))
            .collect::<Vec<_>>()
    );
    assert_eq!(d.results[0].status, RuleStatus::Fail, "{:?}", d.results);
}

/// The CEL budget counts node evaluations, not the size of the values they build: 40
/// variables each doubling the previous one (`variables.v0 + variables.v0`) cost 41 node
/// evaluations and build a string of 8 * 2^40 bytes. The evaluation aborts the process on a
/// failed allocation (`memory allocation of ... bytes failed`), taking the webhook and every
/// request in flight with it. Kubernetes charges string and list concatenation by size and
/// refuses such an expression. Here 24 doublings (a 128 MiB string) must already be over the
/// budget.
#[test]
fn doubling_variables_are_over_the_cel_budget() {
    let n = 24;
    let mut vars = String::from("    - name: v0\n      expression: \"object.metadata.name\"\n");
    for i in 0..n {
        vars.push_str(&format!(
            "    - name: v{}\n      expression: \"variables.v{i} + variables.v{i}\"\n",
            i + 1
        ));
    }
    let yaml = format!(
        r#"apiVersion: policies.kyverno.io/v1
kind: ValidatingPolicy
metadata: {{name: doubling}}
spec:
  validationActions: [Deny]
  matchConstraints:
    resourceRules:
      - apiGroups: [""]
        apiVersions: [v1]
        operations: [CREATE]
        resources: [pods]
  variables:
{vars}  validations:
    - expression: "size(variables.v{n}) > 0"
      message: "x"
"#
    );
    let mut set = PolicySet::default();
    set.add_yaml(&yaml, "doubling.yaml").unwrap();
    let mut input = pod("nginx");
    input.object["metadata"]["name"] = json!("abcdefgh");
    let d = decide_without_evidence(&set, &input);
    let r = &d.results[0];
    assert_eq!(r.status, RuleStatus::Error, "{r:?}");
    assert!(
        r.reasons
            .iter()
            .any(|x| x.code == "policy.cel.budget_exceeded"),
        "{r:?}"
    );
}
