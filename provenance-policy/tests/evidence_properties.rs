//! Property tests of the fail-closed invariants of `verifyImages` and ImageValidatingPolicy
//! decisions, over generated (policy, evidence, resource) triples, through the public decision
//! API only:
//!
//! 1. Adding evidence that is unsigned, signed by an untrusted key, of another kind (an
//!    attestation offered as a signature, a signature offered as an attestation), about
//!    another digest, or malformed never changes a rule's status: never a `fail` into a
//!    `pass`, a `skip` or an `error` (which `failurePolicy: Ignore` would admit), and never
//!    the other way round either.
//! 2. Removing a field the policy enforces either makes the decision no more permissive, or
//!    the policy does not load (`policy.unsupported` / `policy.invalid`).
//! 3. A `pass` always names the verified image it is about.
//!
//! Signatures are made by the test with fresh keys (`provenance_core::sign`), as
//! `cosign sign --key --tlog-upload=false` writes them; evidence is handed in from memory.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::BTreeMap;

use base64::Engine;
use proptest::prelude::*;
use provenance_core::sign::{KeyAlgorithm, Signer, SigningKey, bundle};
use provenance_core::verify::{CosignSignature, SignatureMaterial, Verifier};
use provenance_core::{Digest, RuleStatus, TrustRoot, UnixTime};
use provenance_policy::admission::request::ResourceInput;
use provenance_policy::admission::{Decision, PolicySet};
use provenance_policy::kyverno::verify_images::{ImageEvidence, VerifyImagesContext};
use provenance_policy::lang::jmespath::Env;
use serde_json::{Value, json};

const NOW: UnixTime = UnixTime(1_800_000_000);
const IMAGE: &str = "registry.provenance.test/acme/model:v1";
const SLSA: &str = "https://slsa.dev/provenance/v1";
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

fn simple_signing(digest: &Digest) -> Vec<u8> {
    json!({"critical": {"identity": {"docker-reference": "registry.provenance.test/acme/model"},
        "image": {"docker-manifest-digest": digest.to_string()},
        "type": "cosign container image signature"}, "optional": null})
    .to_string()
    .into_bytes()
}

fn cosign_signature(key: &SigningKey, digest: &Digest) -> SignatureMaterial {
    let payload = simple_signing(digest);
    let sig = key.sign(&payload).unwrap();
    SignatureMaterial::Cosign(CosignSignature::new(
        payload,
        BTreeMap::from([(
            "dev.cosignproject.cosign/signature".to_owned(),
            B64.encode(sig),
        )]),
    ))
}

fn statement(digest: &Digest, predicate_type: &str) -> Vec<u8> {
    json!({"_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "registry.provenance.test/acme/model",
                     "digest": {"sha256": digest.hex()}}],
        "predicateType": predicate_type,
        "predicate": {"buildDefinition": {"buildType": "https://example.com/build/v1"}}})
    .to_string()
    .into_bytes()
}

/// A cosign `.att` layer: a DSSE envelope over an in-toto Statement.
fn cosign_attestation(
    key: &SigningKey,
    digest: &Digest,
    predicate_type: &str,
) -> SignatureMaterial {
    let (envelope, _) = bundle::dsse_envelope(
        key,
        "application/vnd.in-toto+json",
        &statement(digest, predicate_type),
    )
    .unwrap();
    SignatureMaterial::Cosign(CosignSignature::new(
        serde_json::to_vec(&envelope).unwrap(),
        BTreeMap::from([("predicateType".to_owned(), predicate_type.to_owned())]),
    ))
}

/// Everything a decision is made with, built once.
struct World {
    trusted: SigningKey,
    digest: Digest,
    /// Good evidence: a signature and a SLSA attestation of `digest` by the trusted key.
    good_signature: SignatureMaterial,
    good_attestation: SignatureMaterial,
    /// Bad evidence (see [`World::bad`]).
    bad: Vec<(&'static str, SignatureMaterial)>,
    verifier: Verifier,
}

impl World {
    fn new() -> World {
        let trusted = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let untrusted = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let digest = Digest::sha256_of(b"the model image manifest");
        let other = Digest::sha256_of(b"another image manifest");
        let mut both: Value =
            serde_json::from_slice(&bundle::message_signature(&trusted, b"manifest").unwrap())
                .unwrap();
        both["dsseEnvelope"] = json!({"payloadType": "application/vnd.in-toto+json",
            "payload": B64.encode(statement(&digest, SLSA)), "signatures": [{"sig": "AA=="}]});
        let unsigned = SignatureMaterial::Cosign(CosignSignature::new(
            simple_signing(&digest),
            BTreeMap::new(),
        ));
        let bad = vec![
            ("unsigned", unsigned),
            ("untrusted signature", cosign_signature(&untrusted, &digest)),
            (
                "untrusted attestation",
                cosign_attestation(&untrusted, &digest, SLSA),
            ),
            (
                "signature of another digest",
                cosign_signature(&trusted, &other),
            ),
            (
                "attestation of another digest",
                cosign_attestation(&trusted, &other, SLSA),
            ),
            (
                "attestation of another type",
                cosign_attestation(&trusted, &digest, "https://spdx.dev/Document"),
            ),
            (
                "malformed bytes",
                SignatureMaterial::Bundle(b"{\"mediaType\": 7".to_vec()),
            ),
            (
                "bundle with both contents",
                SignatureMaterial::Bundle(serde_json::to_vec(&both).unwrap()),
            ),
            (
                "empty cosign layer",
                SignatureMaterial::Cosign(CosignSignature::default()),
            ),
        ];
        let root = TrustRoot::default();
        World {
            good_signature: cosign_signature(&trusted, &digest),
            good_attestation: cosign_attestation(&trusted, &digest, SLSA),
            trusted,
            digest,
            bad,
            verifier: Verifier::new(&root).unwrap(),
        }
    }

    fn pem(&self, indent: usize) -> String {
        self.trusted
            .public_key()
            .to_pem()
            .lines()
            .map(|l| format!("{}{l}\n", " ".repeat(indent)))
            .collect()
    }

    /// Policy variants: a signature rule, an attestation rule, both, under Enforce or with
    /// `failurePolicy: Ignore`, as a ClusterPolicy or an ImageValidatingPolicy.
    fn policy(&self, variant: usize) -> PolicySet {
        let ignore = if variant % 2 == 1 {
            "  failurePolicy: Ignore\n"
        } else {
            ""
        };
        let yaml = match variant / 2 {
            0..=2 => {
                let (sig, att) = match variant / 2 {
                    0 => (true, false),
                    1 => (false, true),
                    _ => (true, true),
                };
                let attestors = format!(
                    "          attestors:\n            - entries:\n                - keys:\n                    rekor: {{ignoreTlog: true}}\n                    publicKeys: |-\n{}",
                    self.pem(22)
                );
                let atts = format!(
                    "          attestations:\n            - type: {SLSA}\n              attestors:\n                - entries:\n                    - keys:\n                        rekor: {{ignoreTlog: true}}\n                        publicKeys: |-\n{}",
                    self.pem(26)
                );
                format!(
                    "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {{name: p}}\nspec:\n  validationFailureAction: Enforce\n{ignore}  rules:\n    - name: r\n      match: {{any: [{{resources: {{kinds: [Pod]}}}}]}}\n      verifyImages:\n        - imageReferences: [\"registry.provenance.test/*\"]\n{}{}",
                    if sig { attestors } else { String::new() },
                    if att { atts } else { String::new() }
                )
            }
            _ => {
                let check = if variant / 2 == 3 {
                    "verifyImageSignatures(i, [attestors.k]) > 0"
                } else {
                    "verifyAttestationSignatures(i, attestations.slsa, [attestors.k]) > 0"
                };
                let ignore = if variant % 2 == 1 {
                    "  failurePolicy: Ignore\n"
                } else {
                    ""
                };
                format!(
                    "apiVersion: policies.kyverno.io/v1\nkind: ImageValidatingPolicy\nmetadata: {{name: p}}\nspec:\n  validationActions: [Deny]\n{ignore}  matchConstraints:\n    resourceRules: [{{apiGroups: [\"\"], apiVersions: [v1], operations: [CREATE], resources: [pods]}}]\n  matchImageReferences: [{{glob: \"registry.provenance.test/*\"}}]\n  attestors:\n    - name: k\n      cosign:\n        ctlog: {{insecureIgnoreTlog: true}}\n        key:\n          data: |\n{}  attestations:\n    - name: slsa\n      intoto: {{type: {SLSA}}}\n  validations:\n    - expression: \"images.containers.all(i, {check})\"\n      message: not verified\n",
                    self.pem(12)
                )
            }
        };
        let mut set = PolicySet::default();
        set.add_yaml(&yaml, "p.yaml").unwrap();
        set
    }

    fn decide(
        &self,
        set: &PolicySet,
        pinned: bool,
        signatures: Vec<SignatureMaterial>,
        attestations: Vec<SignatureMaterial>,
    ) -> Decision {
        let image = if pinned {
            format!("{IMAGE}@{}", self.digest)
        } else {
            IMAGE.to_owned()
        };
        let input = ResourceInput::create(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "m", "namespace": "ml"},
            "spec": {"containers": [{"name": "c", "image": image}]}}));
        let mut evidence = BTreeMap::new();
        for r in set.image_requests(&input) {
            evidence.insert(
                r.reference,
                ImageEvidence::resolved(self.digest.clone())
                    .with_signatures(signatures.clone())
                    .with_attestations(attestations.clone()),
            );
        }
        let cx = VerifyImagesContext::new(&evidence, &self.verifier, NOW);
        set.decide_with(&input, &Env::at(NOW), Some(&cx))
    }
}

fn statuses(d: &Decision) -> Vec<RuleStatus> {
    d.results.iter().map(|r| r.status).collect()
}

fn world() -> &'static World {
    static W: std::sync::OnceLock<World> = std::sync::OnceLock::new();
    W.get_or_init(World::new)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// Invariant 1: bad evidence added anywhere (as a signature or as an attestation) leaves
    /// every rule status and the admission exactly as they were.
    #[test]
    fn adding_bad_evidence_never_changes_a_decision(
        variant in 0usize..10,
        pinned in any::<bool>(),
        good_sig in any::<bool>(),
        good_att in any::<bool>(),
        bad_sigs in proptest::collection::vec(0usize..9, 0..4),
        bad_atts in proptest::collection::vec(0usize..9, 0..4),
    ) {
        let w = world();
        let set = w.policy(variant);
        let sigs: Vec<SignatureMaterial> = good_sig.then(|| w.good_signature.clone()).into_iter().collect();
        let atts: Vec<SignatureMaterial> = good_att.then(|| w.good_attestation.clone()).into_iter().collect();
        let base = w.decide(&set, pinned, sigs.clone(), atts.clone());
        let mut more_sigs = sigs.clone();
        let mut more_atts = atts.clone();
        for i in &bad_sigs {
            more_sigs.insert(0, w.bad[*i].1.clone());
        }
        for i in &bad_atts {
            more_atts.insert(0, w.bad[*i].1.clone());
        }
        let with_bad = w.decide(&set, pinned, more_sigs, more_atts);
        let names: Vec<&str> = bad_sigs.iter().chain(&bad_atts).map(|i| w.bad[*i].0).collect();
        prop_assert_eq!(statuses(&base), statuses(&with_bad), "added {:?}: {:?} -> {:?}", names, base.results, with_bad.results);
        prop_assert_eq!(base.allowed, with_bad.allowed, "added {:?}", names);
        // Only the trusted, right-kind, right-digest evidence can pass.
        let needs_sig = matches!(variant / 2, 0 | 2 | 3);
        let needs_att = matches!(variant / 2, 1 | 2 | 4);
        if statuses(&with_bad).contains(&RuleStatus::Pass) {
            prop_assert!((!needs_sig || good_sig) && (!needs_att || good_att), "{:?}", with_bad.results);
        }
        // Invariant 3: a `verifyImages` pass names the verified image (an
        // ImageValidatingPolicy's pass is its CEL validation's, as in Kyverno).
        for r in with_bad.results.iter().filter(|r| r.status == RuleStatus::Pass && variant < 6) {
            prop_assert!(r.message.contains("registry.provenance.test/acme/model"), "{r:?}");
        }
    }
}

/// Invariant 2: removing an enforced field from a policy either does not load or gives a
/// decision that is no more permissive (checked for each enforced field of the signature
/// policy on unsigned evidence).
#[test]
fn removing_an_enforced_field_is_never_more_permissive_without_a_load_error() {
    let w = world();
    let base = w.policy(0);
    let denied = w.decide(&base, true, vec![], vec![]);
    assert!(!denied.allowed, "unsigned is denied: {denied:?}");
    let yaml = |drop: &str| {
        let mut v: Value = serde_json::from_str(
            &serde_json::to_string(&json!({
                "apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy",
                "metadata": {"name": "p"},
                "spec": {"validationFailureAction": "Enforce", "rules": [{
                    "name": "r",
                    "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                    "verifyImages": [{
                        "imageReferences": ["registry.provenance.test/*"],
                        "attestors": [{"entries": [{"keys": {
                            "publicKeys": w.trusted.public_key().to_pem(),
                            "rekor": {"ignoreTlog": true}}}]}]
                    }]
                }]}
            }))
            .unwrap(),
        )
        .unwrap();
        let entry = v
            .pointer_mut("/spec/rules/0/verifyImages/0")
            .unwrap()
            .as_object_mut()
            .unwrap();
        match drop {
            "attestors" => {
                entry.remove("attestors");
                entry.insert("verifyDigest".into(), json!(false));
            }
            "publicKeys" => {
                entry["attestors"][0]["entries"][0]["keys"]
                    .as_object_mut()
                    .unwrap()
                    .remove("publicKeys");
            }
            "entries" => {
                entry["attestors"][0]
                    .as_object_mut()
                    .unwrap()
                    .remove("entries");
            }
            "imageReferences" => {
                entry.remove("imageReferences");
            }
            _ => unreachable!(),
        }
        serde_json::to_string(&v).unwrap()
    };
    for field in ["attestors", "publicKeys", "entries", "imageReferences"] {
        let mut set = PolicySet::default();
        match set.add_yaml(&yaml(field), "p.yaml") {
            Err(e) => assert!(
                ["policy.unsupported", "policy.invalid"].contains(&e.code()),
                "{field}: {e}"
            ),
            Ok(()) => {
                let d = w.decide(&set, true, vec![], vec![]);
                assert!(
                    !d.allowed,
                    "removing {field} admitted an unsigned image: {d:?}"
                );
            }
        }
    }
}
