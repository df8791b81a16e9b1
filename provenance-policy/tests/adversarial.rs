//! Adversarial inputs to the policy engine, through the calls a user makes: `verifyImages`
//! over an OCI layout (`PolicySet::image_requests`, `admission::gather::gather` over a
//! `LayoutSource`, `PolicySet::decide_with`), AdmissionReviews (`admission::input_from_review`,
//! `PolicySet::review`) and policy loading (`PolicySet::add_yaml`). Every case asserts that
//! the outcome is a failure or an error, never a pass, and names the exact code.
//!
//! Signatures are made by the test with a fresh key (`provenance_oci::sign`, as
//! `cosign sign --key --tlog-upload=false` writes them) and then moved where they do not
//! belong: a valid signature of one image replayed onto another (cosign `.sig` tag, Sigstore
//! bundle referrer with its subject rewritten), an attestation about one image attached to
//! another (cosign `.att` tag, bundle referrer), an attestation whose predicate-type
//! annotation lies. Each is decided under a `kyverno.io/v1` ClusterPolicy (`verifyImages`) and
//! under a `policies.kyverno.io/v1` ImageValidatingPolicy (CEL `verifyImageSignatures`,
//! `verifyAttestationSignatures`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use provenance_core::sign::{KeyAlgorithm, SigningKey, bundle};
use provenance_core::verify::{PUBLIC_GOOD_TRUSTED_ROOT, Verifier};
use provenance_core::{Digest, DigestAlgorithm, ImageReference, RuleStatus, TrustRoot, UnixTime};
use provenance_oci::sign::{
    ANNOTATION_BUNDLE_CONTENT, ANNOTATION_BUNDLE_PREDICATE_TYPE, SignOptions, attach_bundle,
    attest_image, attest_image_bundle, sign_image, sign_image_bundle,
};
use provenance_oci::{EvidenceSource, LayoutPublisher, LayoutSource, Manifest, Publisher};
use provenance_policy::admission::request::ResourceInput;
use provenance_policy::admission::{Decision, PolicySet, input_from_review};
use provenance_policy::kyverno::verify_images::VerifyImagesContext;
use provenance_policy::lang::jmespath::Env;
use provenance_policy::{Phase, RequestFacts, Review};
use serde_json::{Value, json};

const NOW: UnixTime = UnixTime(1_800_000_000);
const SLSA: &str = "https://slsa.dev/provenance/v1";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

fn image(name: &str) -> ImageReference {
    ImageReference::parse(&format!("registry.provenance.test/acme/{name}:1")).unwrap()
}

/// Pushes a one-layer image (its layer bytes make its digest unique); returns its digest.
async fn push_image<P: Publisher>(p: &P, img: &ImageReference) -> Digest {
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let layer = format!("layer of {img}").into_bytes();
    let repo = ImageReference::from_name(&img.name()).unwrap();
    p.push_blob(&repo, &Digest::sha256_of(config), config)
        .await
        .unwrap();
    p.push_blob(&repo, &Digest::sha256_of(&layer), &layer)
        .await
        .unwrap();
    let m = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": Digest::sha256_of(config).to_string(), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": Digest::sha256_of(&layer).to_string(), "size": layer.len()}],
    });
    let m = Manifest::from_bytes(
        serde_json::to_vec(&m).unwrap(),
        DigestAlgorithm::Sha256,
        None,
    )
    .unwrap();
    p.push_manifest(img, &m).await.unwrap();
    m.digest
}

/// An in-toto SLSA v1 Statement whose subject is `digest`.
fn slsa_statement(digest: &Digest) -> Vec<u8> {
    use provenance_attest::build::{SlsaProvenanceBuilder, resource, statement};
    let p = SlsaProvenanceBuilder::new(
        "https://github.com/actions/runner",
        "https://example.com/build/v1",
    )
    .build()
    .unwrap();
    statement(vec![resource("image", digest)], SLSA, p)
        .unwrap()
        .to_json()
}

/// One attestor set with `key` (no transparency log), its `- entries:` line indented `pad`.
fn key_entry(key: &SigningKey, pad: usize) -> String {
    let sp = " ".repeat(pad);
    let pem: String = key
        .public_key()
        .to_pem()
        .lines()
        .map(|l| format!("{sp}          {l}\n"))
        .collect();
    format!(
        "{sp}- entries:\n{sp}    - keys:\n{sp}        rekor: {{ignoreTlog: true}}\n{sp}        publicKeys: |-\n{pem}"
    )
}

/// `verifyImages` requiring a signature by `key` on every `registry.provenance.test` image.
fn signature_policy(key: &SigningKey) -> PolicySet {
    signature_policy_with(key, "")
}

/// [`signature_policy`] with `spec_extra` (whole indented lines) added to the spec.
fn signature_policy_with(key: &SigningKey, spec_extra: &str) -> PolicySet {
    let yaml = format!(
        r#"apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {{name: verify-images}}
spec:
  validationFailureAction: Enforce
{spec_extra}  rules:
    - name: signed
      match: {{any: [{{resources: {{kinds: [Pod]}}}}]}}
      verifyImages:
        - imageReferences: ["registry.provenance.test/*"]
          attestors:
{}"#,
        key_entry(key, 12)
    );
    let mut set = PolicySet::default();
    set.add_yaml(&yaml, "signature.yaml").unwrap();
    set
}

/// `verifyImages` requiring a SLSA v1 attestation signed by `key` (no image signature).
fn attestation_policy(key: &SigningKey) -> PolicySet {
    let yaml = format!(
        r#"apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {{name: verify-provenance}}
spec:
  validationFailureAction: Enforce
  rules:
    - name: slsa
      match: {{any: [{{resources: {{kinds: [Pod]}}}}]}}
      verifyImages:
        - imageReferences: ["registry.provenance.test/*"]
          attestations:
            - type: {SLSA}
              attestors:
{}"#,
        key_entry(key, 16)
    );
    let mut set = PolicySet::default();
    set.add_yaml(&yaml, "attestation.yaml").unwrap();
    set
}

/// The same checks as an ImageValidatingPolicy (`policies.kyverno.io/v1`, CEL): image
/// signatures by `key`, or (`attestation`) a SLSA v1 attestation signed by `key`.
fn ivp_policy(key: &SigningKey, attestation: bool) -> PolicySet {
    let mut set = PolicySet::default();
    set.add_yaml(
        &ivp_yaml(key, attestation, "registry.provenance.test/acme/*"),
        "ivp.yaml",
    )
    .unwrap();
    set
}

/// The ImageValidatingPolicy of [`ivp_policy`], matching images by `glob`.
fn ivp_yaml(key: &SigningKey, attestation: bool, glob: &str) -> String {
    let pem: String = key
        .public_key()
        .to_pem()
        .lines()
        .map(|l| format!("            {l}\n"))
        .collect();
    let check = if attestation {
        "verifyAttestationSignatures(i, attestations.slsa, [attestors.release]) > 0"
    } else {
        "verifyImageSignatures(i, [attestors.release]) > 0"
    };
    format!(
        r#"apiVersion: policies.kyverno.io/v1
kind: ImageValidatingPolicy
metadata: {{name: verify-images-cel}}
spec:
  validationActions: [Deny]
  matchConstraints:
    resourceRules:
      - apiGroups: [""]
        apiVersions: [v1]
        operations: [CREATE, UPDATE]
        resources: [pods]
  matchImageReferences:
    - glob: "{glob}"
  attestors:
    - name: release
      cosign:
        ctlog: {{insecureIgnoreTlog: true}}
        key:
          data: |
{pem}  attestations:
    - name: slsa
      intoto: {{type: {SLSA}}}
  validations:
    - expression: "images.containers.all(i, {check})"
      message: "not verified"
"#
    )
}

/// Denied by the ImageValidatingPolicy: its validation is false
/// (`policy.cel.validation_failed`) and a `policy.image.unverified` reason names `detail`.
fn assert_ivp_failed(d: &Decision, detail: &str) {
    assert!(!d.allowed, "{d:?}");
    assert_eq!(d.results.len(), 1, "{:?}", d.results);
    let r = &d.results[0];
    assert_eq!(r.status, RuleStatus::Fail, "{r:?}");
    assert!(
        r.reasons
            .iter()
            .any(|x| x.code == "policy.cel.validation_failed"),
        "{r:?}"
    );
    assert!(
        r.reasons
            .iter()
            .any(|x| x.code == "policy.image.unverified" && x.message.contains(detail)),
        "want {detail:?} in {:?}",
        r.reasons
    );
}

fn pod(img: &ImageReference, annotations: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "inference", "namespace": "ml", "annotations": annotations},
        "spec": {"containers": [{"name": "server", "image": img.to_string()}]}})
}

/// The user's flow: which images need what, gather it from the layout, verify and decide.
async fn decide_input(layout: &Path, set: &PolicySet, input: &ResourceInput) -> Decision {
    let requests = set.image_requests(input);
    assert!(!requests.is_empty(), "the policy covers the Pod's image");
    let source = Arc::new(LayoutSource::open(layout).unwrap());
    let evidence = provenance_policy::admission::gather::gather(source, &requests, 4).await;
    decide_with_evidence(set, input, &evidence)
}

/// Decides `input` with `evidence` as gathered (keyed by Kyverno image string), under the
/// public-good trust root at [`NOW`].
fn decide_with_evidence(
    set: &PolicySet,
    input: &ResourceInput,
    evidence: &BTreeMap<String, provenance_policy::kyverno::verify_images::ImageEvidence>,
) -> Decision {
    let root = TrustRoot::from_trusted_root_json(PUBLIC_GOOD_TRUSTED_ROOT).unwrap();
    let verifier = Verifier::new(&root).unwrap();
    let cx = VerifyImagesContext::new(evidence, &verifier, NOW);
    set.decide_with(input, &Env::at(NOW), Some(&cx))
}

async fn decide(layout: &Path, set: &PolicySet, img: &ImageReference) -> Decision {
    decide_input(layout, set, &ResourceInput::create(pod(img, json!({})))).await
}

fn assert_pass(d: &Decision) {
    assert!(d.allowed, "{d:?}");
    assert_eq!(d.results.len(), 1, "{:?}", d.results);
    assert_eq!(
        d.results[0].status,
        RuleStatus::Pass,
        "{}",
        d.results[0].message
    );
}

/// Denied, by a `fail` of the one `verifyImages` rule (reason `policy.verify_images.failed`)
/// whose message names `detail`: the verifier's code in brackets, or the engine's phrase.
fn assert_failed(d: &Decision, detail: &str) {
    assert!(!d.allowed, "{d:?}");
    assert_eq!(d.results.len(), 1, "{:?}", d.results);
    let r = &d.results[0];
    assert_eq!(r.status, RuleStatus::Fail, "{}", r.message);
    // The stable aggregate reason first, then one per image with the specific check.
    assert_eq!(r.reasons[0].code, "policy.verify_images.failed", "{r:?}");
    assert!(r.reasons.len() > 1, "{r:?}");
    for x in &r.reasons[1..] {
        assert!(x.subject.is_some() && x.path.is_some(), "{x:?}");
    }
    if let Some(code) = detail.strip_prefix('[').and_then(|d| d.strip_suffix(']')) {
        assert!(
            r.reasons[1..].iter().any(|x| x.code == code),
            "no reason with code {code}: {r:?}"
        );
    }
    assert!(
        r.message.contains(detail),
        "want {detail:?} in {}",
        r.message
    );
    assert!(d.patches.is_empty(), "nothing pinned: {:?}", d.patches);
}

/// The layout path of blob `digest`.
fn blob(layout: &Path, digest: &Digest) -> Vec<u8> {
    std::fs::read(layout.join("blobs").join("sha256").join(digest.hex())).unwrap()
}

#[tokio::test]
async fn cosign_signature_of_another_image_replayed_onto_the_sig_tag_fails() {
    let dir = tempfile::tempdir().unwrap();
    let p = LayoutPublisher::open(dir.path()).unwrap();
    let (a, b) = (image("a"), image("b"));
    let da = push_image(&p, &a).await;
    let db = push_image(&p, &b).await;
    let key = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let signed = sign_image(&p, &a, &da, &key, &SignOptions::default())
        .await
        .unwrap();
    // Copy A's `.sig` manifest, byte for byte, to B's `sha256-<B>.sig` tag.
    let sig_manifest = p.manifest(&signed.reference).await.unwrap();
    let b_sig = b
        .with_tag(&format!("sha256-{}.sig", db.hex()))
        .expect("tag");
    p.push_manifest(&b_sig, &sig_manifest).await.unwrap();
    assert_eq!(
        LayoutSource::open(dir.path())
            .unwrap()
            .signatures(&b, &db, None)
            .await
            .unwrap()
            .len(),
        1,
        "the replayed signature is found on B"
    );

    let set = signature_policy(&key);
    assert_pass(&decide(dir.path(), &set, &a).await);
    assert_failed(
        &decide(dir.path(), &set, &b).await,
        "[verify.cosign.image_digest_mismatch]",
    );

    // The same attack under an ImageValidatingPolicy.
    let ivp = ivp_policy(&key, false);
    assert_pass(&decide(dir.path(), &ivp, &a).await);
    assert_ivp_failed(
        &decide(dir.path(), &ivp, &b).await,
        "[verify.cosign.image_digest_mismatch]",
    );
}

#[tokio::test]
async fn bundle_signature_of_another_image_as_a_referrer_of_this_one_fails() {
    let dir = tempfile::tempdir().unwrap();
    let p = LayoutPublisher::open(dir.path()).unwrap();
    let (a, b) = (image("a"), image("b"));
    let da = push_image(&p, &a).await;
    let db = push_image(&p, &b).await;
    let key = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let published = sign_image_bundle(&p, &a, &da, &key, &bundle::Options::default())
        .await
        .unwrap();
    // A's bundle (a message signature over A's manifest), attached as a referrer whose
    // `subject` is B.
    let bundle_json = blob(dir.path(), &published.layer_digest);
    let b_manifest = p.manifest_at(&b, &db).await.unwrap();
    let ann = BTreeMap::from([(
        ANNOTATION_BUNDLE_CONTENT.to_owned(),
        "message-signature".to_owned(),
    )]);
    attach_bundle(&p, &b, &b_manifest, &bundle_json, &ann)
        .await
        .unwrap();
    assert_eq!(
        LayoutSource::open(dir.path())
            .unwrap()
            .signatures(&b, &db, None)
            .await
            .unwrap()
            .len(),
        1,
        "the replayed bundle is found as B's referrer"
    );

    let set = signature_policy(&key);
    assert_pass(&decide(dir.path(), &set, &a).await);
    assert_failed(
        &decide(dir.path(), &set, &b).await,
        "[verify.artifact.mismatch]",
    );

    // The same attack under an ImageValidatingPolicy.
    let ivp = ivp_policy(&key, false);
    assert_pass(&decide(dir.path(), &ivp, &a).await);
    assert_ivp_failed(
        &decide(dir.path(), &ivp, &b).await,
        "[verify.artifact.mismatch]",
    );
}

#[tokio::test]
async fn attestation_about_another_image_on_the_att_tag_fails() {
    let dir = tempfile::tempdir().unwrap();
    let p = LayoutPublisher::open(dir.path()).unwrap();
    let (a, b) = (image("a"), image("b"));
    let da = push_image(&p, &a).await;
    let db = push_image(&p, &b).await;
    let key = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    // A DSSE in-toto attestation by the trusted key whose subject is A...
    let published = attest_image(&p, &a, &da, &key, &slsa_statement(&da), None)
        .await
        .unwrap();
    // ... attached to B (A's `.att` manifest copied to B's `sha256-<B>.att` tag).
    let att = p.manifest(&published.reference).await.unwrap();
    let b_att = b
        .with_tag(&format!("sha256-{}.att", db.hex()))
        .expect("tag");
    p.push_manifest(&b_att, &att).await.unwrap();

    let set = attestation_policy(&key);
    assert_pass(&decide(dir.path(), &set, &a).await);
    // A cosign layer that names another image: the cosign code (docs/verification.md), with
    // the in-toto subject named in the message.
    let d = decide(dir.path(), &set, &b).await;
    assert_failed(&d, "[verify.cosign.image_digest_mismatch]");
    assert_failed(&d, "no in-toto subject digest matches the artifact");

    // The same attack under an ImageValidatingPolicy.
    let ivp = ivp_policy(&key, true);
    assert_pass(&decide(dir.path(), &ivp, &a).await);
    assert_ivp_failed(
        &decide(dir.path(), &ivp, &b).await,
        "[verify.cosign.image_digest_mismatch]",
    );
}

#[tokio::test]
async fn attestation_bundle_about_another_image_as_a_referrer_of_this_one_fails() {
    let dir = tempfile::tempdir().unwrap();
    let p = LayoutPublisher::open(dir.path()).unwrap();
    let (a, b) = (image("a"), image("b"));
    let da = push_image(&p, &a).await;
    let db = push_image(&p, &b).await;
    let key = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let published = attest_image_bundle(
        &p,
        &a,
        &da,
        &key,
        &slsa_statement(&da),
        &bundle::Options::default(),
    )
    .await
    .unwrap();
    let bundle_json = blob(dir.path(), &published.layer_digest);
    let b_manifest = p.manifest_at(&b, &db).await.unwrap();
    let ann = BTreeMap::from([
        (
            ANNOTATION_BUNDLE_CONTENT.to_owned(),
            "dsse-envelope".to_owned(),
        ),
        (ANNOTATION_BUNDLE_PREDICATE_TYPE.to_owned(), SLSA.to_owned()),
    ]);
    attach_bundle(&p, &b, &b_manifest, &bundle_json, &ann)
        .await
        .unwrap();

    let set = attestation_policy(&key);
    assert_pass(&decide(dir.path(), &set, &a).await);
    assert_failed(
        &decide(dir.path(), &set, &b).await,
        "[verify.artifact.mismatch]",
    );

    // The same attack under an ImageValidatingPolicy.
    let ivp = ivp_policy(&key, true);
    assert_pass(&decide(dir.path(), &ivp, &a).await);
    assert_ivp_failed(
        &decide(dir.path(), &ivp, &b).await,
        "[verify.artifact.mismatch]",
    );
}

#[tokio::test]
async fn attestation_whose_predicate_type_annotation_lies_is_not_that_attestation() {
    let dir = tempfile::tempdir().unwrap();
    let p = LayoutPublisher::open(dir.path()).unwrap();
    let a = image("a");
    let da = push_image(&p, &a).await;
    let key = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    // A statement of another predicate type, about A, signed by the trusted key...
    let other_type = "https://provenance.test/not-slsa/v1";
    let predicate = json!({"builder": "a laptop"});
    let st = provenance_attest::build::statement(
        vec![provenance_attest::build::resource("image", &da)],
        other_type,
        predicate,
    )
    .unwrap()
    .to_json();
    let published = attest_image(&p, &a, &da, &key, &st, None).await.unwrap();
    // ... whose `.att` layer annotation is rewritten to claim SLSA provenance.
    let m = p.manifest(&published.reference).await.unwrap();
    let mut v: Value = serde_json::from_slice(&m.bytes).unwrap();
    assert_eq!(v["layers"][0]["annotations"]["predicateType"], other_type);
    v["layers"][0]["annotations"]["predicateType"] = json!(SLSA);
    let lying = Manifest::from_bytes(
        serde_json::to_vec(&v).unwrap(),
        DigestAlgorithm::Sha256,
        None,
    )
    .unwrap();
    p.push_manifest(&published.reference, &lying).await.unwrap();
    let atts = LayoutSource::open(dir.path())
        .unwrap()
        .attestations(&a, &da, None)
        .await
        .unwrap();
    assert_eq!(
        atts[0].predicate_type.as_deref(),
        Some(SLSA),
        "the lie is read"
    );

    // The claimed type only selects material; the signed statement's type decides.
    let want = format!("no attestations found (need {SLSA})");
    assert_failed(
        &decide(dir.path(), &attestation_policy(&key), &a).await,
        &want,
    );
    assert_ivp_failed(
        &decide(dir.path(), &ivp_policy(&key, true), &a).await,
        &want,
    );
}

#[tokio::test]
async fn forged_verification_annotations_in_an_admission_review_are_not_evidence() {
    let dir = tempfile::tempdir().unwrap();
    let p = LayoutPublisher::open(dir.path()).unwrap();
    let (a, u) = (image("a"), image("unsigned"));
    let da = push_image(&p, &a).await;
    let du = push_image(&p, &u).await;
    let key = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let signed = sign_image(&p, &a, &da, &key, &SignOptions::default())
        .await
        .unwrap();
    // Real signature bytes of A, pasted into annotations of a Pod running the unsigned image.
    let sig_manifest: Value =
        serde_json::from_slice(&p.manifest(&signed.reference).await.unwrap().bytes).unwrap();
    let layer = &sig_manifest["layers"][0];
    let pinned = format!("registry.provenance.test/acme/unsigned@{du}");
    let annotations = json!({
        "kyverno.io/verify-images": json!({ pinned.clone(): "pass" }).to_string(),
        "kyverno.io/verify-images-scoped": json!({"verify-images/signed": {pinned.clone(): "pass"}}).to_string(),
        "dev.cosignproject.cosign/signature": layer["annotations"]["dev.cosignproject.cosign/signature"],
        "cosign.sigstore.dev/signature": layer["annotations"]["dev.cosignproject.cosign/signature"],
        "cosign.sigstore.dev/imageDigest": du.to_string(),
        "policies.kyverno.io/verified": "true",
        "model.ai/signature-verified": "true",
    });
    let review = json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "8b5c1f0e", "operation": "CREATE", "namespace": "ml",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "userInfo": {"username": "system:serviceaccount:ml:deployer"},
            "object": pod(&u, annotations),
        }
    });
    let set = signature_policy(&key);
    let input = input_from_review(&review, BTreeMap::new(), None).unwrap();
    let d = decide_input(dir.path(), &set, &input).await;
    assert_failed(&d, "no signatures found");
    let d = decide_input(dir.path(), &ivp_policy(&key, false), &input).await;
    assert_ivp_failed(&d, "no signatures found");

    // The same review, decided without image evidence: an error, never a pass.
    let out = answer(&set, &review);
    assert_eq!(out["response"]["allowed"], false, "{out}");
    assert_eq!(out["response"]["status"]["code"], 403, "{out}");
    let d = set.decide(&input, &Env::at(NOW));
    assert_eq!(d.results[0].status, RuleStatus::Error);
    assert_eq!(d.results[0].reasons[0].code, "policy.unsupported");
}

// ---------------------------------------------------------------------------------------------
// Hostile YAML and JSON: bounded errors in the normal test thread, no stack overflow.

fn load_error(text: &str) -> provenance_policy::Error {
    let mut set = PolicySet::default();
    match set.add_yaml(text, "hostile.yaml") {
        Ok(()) => panic!("loaded {} policies from hostile YAML", set.policies().len()),
        Err(e) => e,
    }
}

/// A policy whose `spec` carries a billion-laughs alias tree (9 levels of 9 aliases).
fn billion_laughs(indent: &str) -> String {
    let mut out = format!(
        "{indent}a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n"
    );
    let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
    for w in names.windows(2) {
        let refs = vec![format!("*{}", w[0]); 9].join(",");
        out.push_str(&format!("{indent}{}: &{} [{refs}]\n", w[1], w[1]));
    }
    out
}

#[test]
fn yaml_alias_bomb_in_a_policy_is_a_bounded_parse_error() {
    let yaml = format!(
        "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {{name: lol}}\nspec:\n  rules: []\n  lol:\n{}",
        billion_laughs("    ")
    );
    let e = load_error(&yaml);
    assert_eq!(e.code(), "policy.parse", "{e}");
    assert!(e.to_string().contains("budget breached"), "{e}");
    // Resources (the CLI's --resource files) are read the same way.
    let e = provenance_policy::yaml::load_documents(&billion_laughs(""), "pod.yaml").unwrap_err();
    assert_eq!(e.code(), "policy.parse", "{e}");
}

#[test]
fn deeply_nested_policy_yaml_is_a_bounded_parse_error() {
    let head = "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {name: deep}\nspec:\n  rules:\n  - name: r\n    match: {any: [{resources: {kinds: [Pod]}}]}\n    validate:\n      pattern: ";
    for depth in [100, 10_000, 1_000_000] {
        // Flow mappings and sequences, nested `depth` deep.
        let maps = format!("{head}{}1{}\n", "{a: ".repeat(depth), "}".repeat(depth));
        let e = load_error(&maps);
        assert_eq!(e.code(), "policy.parse", "{depth}: {e}");
        let seqs = format!("{head}{}{}\n", "[".repeat(depth), "]".repeat(depth));
        let e = load_error(&seqs);
        assert_eq!(e.code(), "policy.parse", "{depth}: {e}");
    }
    // Block mappings, one level per line.
    let mut block = String::from(head);
    block.push('\n');
    for i in 0..2_000 {
        block.push_str(&" ".repeat(8 + i));
        block.push_str("a:\n");
    }
    let e = load_error(&block);
    assert_eq!(e.code(), "policy.parse", "{e}");
    // Over the size limit: refused before parsing.
    let big = format!(
        "{head}\"{}\"\n",
        "x".repeat(provenance_policy::yaml::MAX_DOCUMENT_BYTES)
    );
    let e = load_error(&big);
    assert_eq!(e.code(), "policy.parse", "{e}");
    assert!(e.to_string().contains("exceeds"), "{e}");
}

/// The validating answer to `review` through the front door (namespace labels known: none).
fn answer(set: &PolicySet, review: &Value) -> Value {
    let facts = RequestFacts::new().namespace_labels(BTreeMap::<String, String>::new());
    let review = Review::parse(review, &facts).unwrap();
    set.respond(&review, Phase::Validate, None, &Env::at(NOW))
        .review
}

fn review_of(object: Value) -> Value {
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": "1", "operation": "CREATE", "namespace": "ml",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "userInfo": {"username": "alice"}, "object": object}})
}

#[test]
fn deeply_nested_and_huge_admission_reviews_are_bounded() {
    // JSON as deep as a JSON parser with a recursion limit lets through (serde_json: 128),
    // under `spec`, against a pattern, a JMESPath and a CEL rule that walk it.
    let mut set = PolicySet::default();
    set.add_yaml(
        r#"apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: walkers}
spec:
  validationFailureAction: Enforce
  rules:
    - name: pattern
      match: {any: [{resources: {kinds: [Pod]}}]}
      validate:
        pattern: {spec: {containers: [{image: "registry.provenance.test/*"}]}}
    - name: jmespath
      match: {any: [{resources: {kinds: [Pod]}}]}
      validate:
        deny:
          conditions:
            any:
              - key: "{{ length(to_string(request.object.spec)) }}"
                operator: GreaterThan
                value: 1000000
    - name: cel
      match: {any: [{resources: {kinds: [Pod]}}]}
      validate:
        cel:
          expressions:
            - expression: "object.spec.containers.all(c, c.image.startsWith('registry.provenance.test/'))"
"#,
        "walkers.yaml",
    )
    .unwrap();
    let depth = 110;
    let text = format!(
        r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"deep","namespace":"ml"}},
           "spec":{{"containers":[{{"name":"c","image":"evil.example/x:1"}}],"x":{}1{}}}}}"#,
        "{\"a\":".repeat(depth),
        "}".repeat(depth)
    );
    let object: Value = serde_json::from_str(&text).unwrap();
    let out = answer(&set, &review_of(object));
    assert_eq!(out["response"]["allowed"], false, "{out}");
    // A value built in code, 1,000 deep (beyond any parser's limit): still decided. (In a debug
    // build's 2 MiB test thread, serde_json's own clone, serialize and drop of a `Value`
    // overflow between 1,500 and 1,800 levels; the engine's walks overflow no earlier.)
    let mut deep = json!(1);
    for _ in 0..1_000 {
        deep = json!({ "a": deep });
    }
    let object = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "deeper", "namespace": "ml"},
        "spec": {"containers": [{"name": "c", "image": "evil.example/x:1"}], "x": deep}});
    let out = answer(&set, &review_of(object));
    assert_eq!(out["response"]["allowed"], false, "{out}");
    // Deeper than that, the JSON parser refuses it (the webhook answers webhook.body.malformed).
    let deeper = format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(serde_json::from_str::<Value>(&deeper).is_err());

    // Huge but shallow: 5,000 containers, each decided.
    let containers: Vec<Value> = (0..5_000)
        .map(|i| json!({"name": format!("c{i}"), "image": "registry.provenance.test/acme/a:1"}))
        .chain([json!({"name": "last", "image": "evil.example/x:1"})])
        .collect();
    let object = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "huge", "namespace": "ml"}, "spec": {"containers": containers}});
    let out = answer(&set, &review_of(object));
    assert_eq!(out["response"]["allowed"], false, "{out}");

    // A request that is not an AdmissionReview at all: the request code.
    for bad in [
        json!([]),
        json!({"request": 1}),
        json!({"request": {"object": []}}),
    ] {
        let e = input_from_review(&bad, BTreeMap::new(), None).unwrap_err();
        assert_eq!(e.code(), "policy.request", "{bad}: {e}");
    }
}

/// Copies the manifest at `from` to `to` (a tag the attacker controls).
async fn retag(p: &LayoutPublisher, from: &ImageReference, to: &ImageReference) {
    let m = p.manifest(from).await.unwrap();
    p.push_manifest(to, &m).await.unwrap();
}

fn attached_tag(img: &ImageReference, d: &Digest, suffix: &str) -> ImageReference {
    img.with_tag(&format!("sha256-{}.{suffix}", d.hex()))
        .expect("tag")
}

#[tokio::test]
async fn an_attestation_on_the_sig_tag_is_not_a_signature() {
    let dir = tempfile::tempdir().unwrap();
    let p = LayoutPublisher::open(dir.path()).unwrap();
    let a = image("a");
    let da = push_image(&p, &a).await;
    let key = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    // A genuine attestation about A by the trusted key, with its `.att` manifest also tagged
    // as A's `.sig`: it verifies, names A, and is still not a signature.
    let published = attest_image(&p, &a, &da, &key, &slsa_statement(&da), None)
        .await
        .unwrap();
    retag(&p, &published.reference, &attached_tag(&a, &da, "sig")).await;
    assert_failed(
        &decide(dir.path(), &signature_policy(&key), &a).await,
        "[verify.kind.not_a_signature]",
    );
    assert_ivp_failed(
        &decide(dir.path(), &ivp_policy(&key, false), &a).await,
        "[verify.kind.not_a_signature]",
    );
    // Control: the same attestation satisfies the attestation policy.
    assert_pass(&decide(dir.path(), &attestation_policy(&key), &a).await);
}

#[tokio::test]
async fn a_signature_on_the_att_tag_is_not_an_attestation() {
    let dir = tempfile::tempdir().unwrap();
    let p = LayoutPublisher::open(dir.path()).unwrap();
    let a = image("a");
    let da = push_image(&p, &a).await;
    let key = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let signed = sign_image(&p, &a, &da, &key, &SignOptions::default())
        .await
        .unwrap();
    retag(&p, &signed.reference, &attached_tag(&a, &da, "att")).await;
    // Control: the signature is a signature.
    assert_pass(&decide(dir.path(), &signature_policy(&key), &a).await);
    // A layer whose predicate type cannot be read is no candidate for the attestation.
    assert_failed(
        &decide(dir.path(), &attestation_policy(&key), &a).await,
        "no attestations found",
    );
    assert_ivp_failed(
        &decide(dir.path(), &ivp_policy(&key, true), &a).await,
        "no attestations found",
    );
}

#[test]
fn a_bundle_with_both_contents_is_refused_as_malformed() {
    let key = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let digest = Digest::sha256_of(b"manifest");
    let mut b: Value =
        serde_json::from_slice(&bundle::message_signature(&key, b"manifest").unwrap()).unwrap();
    b["dsseEnvelope"] = json!({"payloadType": "application/vnd.in-toto+json",
        "payload": "e30=", "signatures": [{"sig": "AA=="}]});
    let root = TrustRoot::from_trusted_root_json(PUBLIC_GOOD_TRUSTED_ROOT).unwrap();
    let e = Verifier::new(&root)
        .unwrap()
        .verify_image_signature(
            &digest,
            &provenance_core::verify::SignatureMaterial::Bundle(serde_json::to_vec(&b).unwrap()),
            &provenance_core::verify::Expectation::Key {
                key: key.public_key(),
                allow_no_transparency: true,
            },
            NOW,
        )
        .unwrap_err();
    assert_eq!(e.code(), "verify.material.malformed", "{e}");
}

#[tokio::test]
async fn malformed_evidence_fails_the_image_and_is_never_an_ignorable_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = LayoutPublisher::open(dir.path()).unwrap();
    let a = image("a");
    let da = push_image(&p, &a).await;
    let key = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let set = signature_policy_with(&key, "  failurePolicy: Ignore\n");
    // Control: unsigned, the rule fails and blocks.
    assert_failed(&decide(dir.path(), &set, &a).await, "no signatures found");
    // A `.sig` manifest whose layer lies about its size (1 byte for 2).
    let repo = ImageReference::from_name(&a.name()).unwrap();
    let layer = b"{}".to_vec();
    p.push_blob(&repo, &Digest::sha256_of(&layer), &layer)
        .await
        .unwrap();
    let m = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": Digest::sha256_of(&layer).to_string(), "size": 2},
        "layers": [{"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
                    "digest": Digest::sha256_of(&layer).to_string(), "size": 1,
                    "annotations": {"dev.cosignproject.cosign/signature": "MEUCIQ=="}}]});
    let m = Manifest::from_bytes(
        serde_json::to_vec(&m).unwrap(),
        DigestAlgorithm::Sha256,
        None,
    )
    .unwrap();
    p.push_manifest(&attached_tag(&a, &da, "sig"), &m)
        .await
        .unwrap();
    // Still a fail (blocked), not an error that failurePolicy: Ignore would admit.
    assert_failed(&decide(dir.path(), &set, &a).await, "no signatures found");
}

#[tokio::test]
async fn the_legacy_key_field_is_an_attestor() {
    let dir = tempfile::tempdir().unwrap();
    let p = LayoutPublisher::open(dir.path()).unwrap();
    let (a, u) = (image("a"), image("unsigned"));
    let da = push_image(&p, &a).await;
    push_image(&p, &u).await;
    let key = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    sign_image(&p, &a, &da, &key, &SignOptions::default())
        .await
        .unwrap();
    let pem: String = key
        .public_key()
        .to_pem()
        .lines()
        .map(|l| format!("            {l}\n"))
        .collect();
    let yaml = format!(
        r#"apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {{name: legacy}}
spec:
  validationFailureAction: Enforce
  rules:
    - name: signed
      match: {{any: [{{resources: {{kinds: [Pod]}}}}]}}
      verifyImages:
        - image: "registry.provenance.test/*"
          key: |-
{pem}"#
    );
    let mut set = PolicySet::default();
    set.add_yaml(&yaml, "legacy.yaml").unwrap();
    // Without a log entry the key attestor (no `rekor.ignoreTlog`) refuses the signature:
    // the legacy field is enforced like `keys.publicKeys`, never dropped.
    assert_failed(&decide(dir.path(), &set, &a).await, "[verify.tlog.missing]");
    assert_failed(&decide(dir.path(), &set, &u).await, "no signatures found");
}

#[tokio::test]
async fn count_zero_requires_every_entry() {
    let dir = tempfile::tempdir().unwrap();
    let p = LayoutPublisher::open(dir.path()).unwrap();
    let a = image("a");
    let da = push_image(&p, &a).await;
    let (k1, k2) = (
        SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap(),
        SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap(),
    );
    sign_image(&p, &a, &da, &k1, &SignOptions::default())
        .await
        .unwrap();
    let entries = |k: &SigningKey| {
        key_entry(k, 12)
            .lines()
            .skip(1)
            .map(|l| format!("{l}\n"))
            .collect::<String>()
    };
    let yaml = format!(
        r#"apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {{name: two-keys}}
spec:
  validationFailureAction: Enforce
  rules:
    - name: signed
      match: {{any: [{{resources: {{kinds: [Pod]}}}}]}}
      verifyImages:
        - imageReferences: ["registry.provenance.test/*"]
          attestors:
            - count: 0
              entries:
{}{}"#,
        entries(&k1),
        entries(&k2)
    );
    let mut set = PolicySet::default();
    set.add_yaml(&yaml, "count0.yaml").unwrap();
    assert_failed(
        &decide(dir.path(), &set, &a).await,
        "1 of 2 required attestors verified",
    );
}

#[tokio::test]
async fn an_image_reference_the_parser_does_not_know_fails_and_is_never_a_skip() {
    let key = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let set = signature_policy(&key);
    let img = format!("registry.provenance.test/acme/a@sha512:{}", "a".repeat(128));
    let input = ResourceInput::create(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "namespace": "ml"},
        "spec": {"containers": [{"name": "c", "image": img}]}}));
    let d = decide_with_evidence(&set, &input, &BTreeMap::new());
    assert!(!d.allowed, "{d:?}");
    // The Pod author wrote it: a `fail`, which `failurePolicy: Ignore` does not admit.
    assert_eq!(d.results[0].status, RuleStatus::Fail, "{:?}", d.results);
    assert!(
        d.results[0]
            .reasons
            .iter()
            .any(|r| r.code == "policy.verify_images.invalid_reference"),
        "{:?}",
        d.results[0].reasons
    );
    assert!(
        d.results[0].message.contains("invalid image reference"),
        "{}",
        d.results[0].message
    );
}

#[tokio::test]
async fn a_validating_decision_denies_a_tag_that_verification_would_pin() {
    let dir = tempfile::tempdir().unwrap();
    let p = LayoutPublisher::open(dir.path()).unwrap();
    let a = image("a");
    let da = push_image(&p, &a).await;
    let key = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    sign_image(&p, &a, &da, &key, &SignOptions::default())
        .await
        .unwrap();
    let d = decide(dir.path(), &signature_policy(&key), &a).await;
    assert!(d.allowed && !d.patches.is_empty(), "{d:?}");
    let v = d.validating();
    assert!(!v.allowed, "{v:?}");
    assert!(v.message.contains("missing digest"), "{}", v.message);
    // The pinned object is what validation admits.
    let pinned = ImageReference::parse(&format!("{}@{da}", a.name())).unwrap();
    let d = decide(dir.path(), &signature_policy(&key), &pinned)
        .await
        .validating();
    assert!(d.allowed, "{d:?}");
}

#[tokio::test]
async fn an_image_validating_policy_glob_naming_a_tag_still_matches_after_pinning() {
    let dir = tempfile::tempdir().unwrap();
    let p = LayoutPublisher::open(dir.path()).unwrap();
    let u = image("unsigned");
    push_image(&p, &u).await;
    let key = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let mut set = PolicySet::default();
    set.add_yaml(&ivp_yaml(&key, false, &u.to_string()), "tag-glob.yaml")
        .unwrap();
    assert_ivp_failed(&decide(dir.path(), &set, &u).await, "no signatures found");
    // Written as `repo:tag@digest` by the Pod author: matched all the same.
    let d = ImageReference::parse(&format!(
        "{}@{}",
        u,
        LayoutSource::open(dir.path())
            .unwrap()
            .resolve(&u)
            .await
            .unwrap()
    ))
    .unwrap();
    assert_ivp_failed(&decide(dir.path(), &set, &d).await, "no signatures found");
}

/// A cosign 3 image signature: a DSSE bundle carrying the `https://sigstore.dev/cosign/sign/v1`
/// Statement about `digest` (subject without a name, empty predicate), key-signed.
fn cosign3_signature_bundle(key: &SigningKey, digest: &Digest) -> Vec<u8> {
    let statement = json!({"_type": "https://in-toto.io/Statement/v1",
        "subject": [{"digest": {"sha256": digest.hex()}}],
        "predicateType": "https://sigstore.dev/cosign/sign/v1", "predicate": {}});
    bundle::dsse(
        key,
        "application/vnd.in-toto+json",
        &serde_json::to_vec(&statement).unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn a_cosign3_dsse_signature_bundle_is_a_signature_only_of_its_digest() {
    let dir = tempfile::tempdir().unwrap();
    let p = LayoutPublisher::open(dir.path()).unwrap();
    let (a, b) = (image("a"), image("b"));
    let da = push_image(&p, &a).await;
    let db = push_image(&p, &b).await;
    let key = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let ann = BTreeMap::from([(
        ANNOTATION_BUNDLE_CONTENT.to_owned(),
        "dsse-envelope".to_owned(),
    )]);
    let attach = |img: ImageReference, subject: Digest, bundle_json: Vec<u8>| {
        let (p, ann) = (&p, &ann);
        async move {
            let m = p.manifest_at(&img, &subject).await.unwrap();
            attach_bundle(p, &img, &m, &bundle_json, ann).await.unwrap();
        }
    };
    // A's cosign 3 signature as A's referrer: a signature of A.
    attach(a.clone(), da.clone(), cosign3_signature_bundle(&key, &da)).await;
    let set = signature_policy(&key);
    assert_pass(&decide(dir.path(), &set, &a).await);
    assert_pass(&decide(dir.path(), &ivp_policy(&key, false), &a).await);
    // The same kind of bundle naming A, attached as B's referrer: not B's signature.
    attach(b.clone(), db.clone(), cosign3_signature_bundle(&key, &da)).await;
    assert_failed(
        &decide(dir.path(), &set, &b).await,
        "[verify.artifact.mismatch]",
    );
    // A DSSE bundle with another predicate type about B is an attestation, not a signature.
    attach(
        b.clone(),
        db.clone(),
        bundle::dsse(&key, "application/vnd.in-toto+json", &slsa_statement(&db)).unwrap(),
    )
    .await;
    assert_failed(
        &decide(dir.path(), &set, &b).await,
        "required attestors verified",
    );
}

#[tokio::test]
async fn an_upper_case_or_port_443_registry_host_does_not_escape_a_pattern() {
    let key = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    for written in [
        "REGISTRY.provenance.test/acme/a:1",
        "registry.provenance.test:443/acme/a:1",
        "Registry.Provenance.Test:443/acme/a:1",
    ] {
        let input = ResourceInput::create(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "ml"},
            "spec": {"containers": [{"name": "c", "image": written}]}}));
        for set in [signature_policy(&key), ivp_policy(&key, false)] {
            assert!(
                !set.image_requests(&input).is_empty(),
                "{written} is selected by the pattern"
            );
            let d = decide_with_evidence(&set, &input, &BTreeMap::new());
            assert!(!d.allowed, "{written}: {d:?}");
        }
    }
}

#[tokio::test]
async fn extract_payload_refuses_to_choose_between_two_verified_statements() {
    use provenance_attest::build::{SlsaProvenanceBuilder, resource, statement};
    let dir = tempfile::tempdir().unwrap();
    let p = LayoutPublisher::open(dir.path()).unwrap();
    let a = image("a");
    let da = push_image(&p, &a).await;
    let key = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let slsa = |build_type: &str| {
        let pred = SlsaProvenanceBuilder::new("https://github.com/actions/runner", build_type)
            .build()
            .unwrap();
        statement(vec![resource("image", &da)], SLSA, pred)
            .unwrap()
            .to_json()
    };
    let yaml = ivp_yaml(&key, true, "registry.provenance.test/acme/*").replace(
        "verifyAttestationSignatures(i, attestations.slsa, [attestors.release]) > 0",
        "verifyAttestationSignatures(i, attestations.slsa, [attestors.release]) > 0 && extractPayload(i, attestations.slsa).predicate.buildDefinition.buildType == 'https://example.com/trusted/v1'",
    );
    let mut set = PolicySet::default();
    set.add_yaml(&yaml, "extract.yaml").unwrap();
    // One genuine Statement: its payload decides.
    attest_image(
        &p,
        &a,
        &da,
        &key,
        &slsa("https://example.com/trusted/v1"),
        None,
    )
    .await
    .unwrap();
    assert_pass(&decide(dir.path(), &set, &a).await);
    // A second genuine Statement of the same type pushed after it: the owner's push order
    // must not choose the payload; the evaluation is an error (blocked).
    attest_image(
        &p,
        &a,
        &da,
        &key,
        &slsa("https://example.com/other/v1"),
        None,
    )
    .await
    .unwrap();
    let d = decide(dir.path(), &set, &a).await;
    assert!(!d.allowed, "{d:?}");
    assert!(
        d.results[0].message.contains("ambiguous"),
        "{}",
        d.results[0].message
    );
}

#[tokio::test]
async fn evidence_kept_for_one_request_is_bounded_over_all_its_images() {
    let layout = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/ai-workloads/registry");
    let source = Arc::new(LayoutSource::open(&layout).unwrap());
    let request = |name: &str| {
        provenance_policy::kyverno::verify_images::ImageRequest::new(
            "p",
            "r",
            format!("registry.example.com/{name}:1.0"),
        )
        .at("/spec/containers/0/image")
        .requiring_signatures()
    };
    let requests = [request("ml/llm-server"), request("ml/tokenizer")];
    // Unbounded enough: both images have their signatures.
    let all = provenance_policy::admission::gather::gather(source.clone(), &requests, 2).await;
    assert!(all.values().all(|e| e.error.is_none()), "{all:?}");
    // A request budget smaller than the two images' evidence: at least one image fails
    // (`invalid`: never a pass, and never an `error` that `failurePolicy: Ignore` would
    // admit; the request's author sized it), with the size code.
    let bounded =
        provenance_policy::admission::gather::gather_bounded(source, &requests, 1, 1).await;
    assert!(bounded.values().all(|e| e.error.is_none()), "{bounded:?}");
    let errors: Vec<_> = bounded
        .values()
        .filter_map(|e| e.invalid.as_ref())
        .collect();
    assert!(!errors.is_empty(), "{bounded:?}");
    assert!(
        errors.iter().all(|e| e.code == "oci.too_large"),
        "{errors:?}"
    );
}

/// Decides `img`'s Pod with `verifier` (whose memo the caller inspects).
async fn decide_remembering(
    layout: &Path,
    set: &PolicySet,
    img: &ImageReference,
    verifier: &Verifier,
) -> Decision {
    let input = ResourceInput::create(pod(img, json!({})));
    let requests = set.image_requests(&input);
    let source = Arc::new(LayoutSource::open(layout).unwrap());
    let evidence = provenance_policy::admission::gather::gather(source, &requests, 4).await;
    let cx = VerifyImagesContext::new(&evidence, verifier, NOW);
    set.decide_with(&input, &Env::at(NOW), Some(&cx))
}

/// Appends `n` signatures by fresh keys (valid signatures, of nobody the policy trusts) to
/// `img`'s `.sig` tag.
async fn sign_with_strangers(p: &LayoutPublisher, img: &ImageReference, d: &Digest, n: usize) {
    for _ in 0..n {
        let stranger = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        sign_image(p, img, d, &stranger, &SignOptions::default())
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn junk_signatures_cost_one_verification_each_per_window_and_too_many_are_refused() {
    use provenance_policy::kyverno::verify_images::MAX_MATERIALS_PER_IMAGE;
    let dir = tempfile::tempdir().unwrap();
    let p = LayoutPublisher::open(dir.path()).unwrap();
    let key = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let set = signature_policy(&key);
    let root = TrustRoot::from_trusted_root_json(PUBLIC_GOOD_TRUSTED_ROOT).unwrap();

    // The trusted signature first, 40 strangers' after it: verification stops at the first
    // signature that satisfies the attestor, so no stranger's signature is verified at all.
    let first = image("first");
    let d = push_image(&p, &first).await;
    sign_image(&p, &first, &d, &key, &SignOptions::default())
        .await
        .unwrap();
    sign_with_strangers(&p, &first, &d, 40).await;
    let verifier = Verifier::new(&root).unwrap().with_memo(1024, 3600);
    assert_pass(&decide_remembering(dir.path(), &set, &first, &verifier).await);
    let r = verifier.remembered();
    assert_eq!((r.successes, r.failures), (1, 0), "{r:?}");

    // 40 strangers' signatures before the trusted one: each is verified once, then its
    // failure is remembered, so the next admissions verify nothing again.
    let last = image("last");
    let d = push_image(&p, &last).await;
    sign_with_strangers(&p, &last, &d, 40).await;
    sign_image(&p, &last, &d, &key, &SignOptions::default())
        .await
        .unwrap();
    let verifier = Verifier::new(&root).unwrap().with_memo(1024, 3600);
    for _ in 0..3 {
        assert_pass(&decide_remembering(dir.path(), &set, &last, &verifier).await);
        let r = verifier.remembered();
        assert_eq!((r.successes, r.failures), (1, 40), "{r:?}");
    }

    // More signatures than are examined per image: refused before any is verified, even
    // though the trusted signature is among them.
    let flooded = image("flooded");
    let d = push_image(&p, &flooded).await;
    sign_image(&p, &flooded, &d, &key, &SignOptions::default())
        .await
        .unwrap();
    sign_with_strangers(&p, &flooded, &d, MAX_MATERIALS_PER_IMAGE).await;
    let verifier = Verifier::new(&root).unwrap().with_memo(1024, 3600);
    assert_failed(
        &decide_remembering(dir.path(), &set, &flooded, &verifier).await,
        "[policy.verify_images.too_many_materials]",
    );
    assert_eq!(verifier.remembered().failures, 0);
    // The same cap under an ImageValidatingPolicy.
    assert_ivp_failed(
        &decide(dir.path(), &ivp_policy(&key, false), &flooded).await,
        "[policy.verify_images.too_many_materials]",
    );
    // At the cap exactly, the image is examined (and passes).
    let full = image("full");
    let d = push_image(&p, &full).await;
    sign_with_strangers(&p, &full, &d, MAX_MATERIALS_PER_IMAGE - 1).await;
    sign_image(&p, &full, &d, &key, &SignOptions::default())
        .await
        .unwrap();
    assert_pass(&decide(dir.path(), &set, &full).await);
}

#[tokio::test]
async fn too_many_attestations_of_the_required_type_are_refused() {
    use provenance_policy::kyverno::verify_images::MAX_MATERIALS_PER_IMAGE;
    let dir = tempfile::tempdir().unwrap();
    let p = LayoutPublisher::open(dir.path()).unwrap();
    let key = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let img = image("attested");
    let d = push_image(&p, &img).await;
    attest_image(&p, &img, &d, &key, &slsa_statement(&d), None)
        .await
        .unwrap();
    assert_pass(&decide(dir.path(), &attestation_policy(&key), &img).await);
    for _ in 0..MAX_MATERIALS_PER_IMAGE {
        let stranger = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        attest_image(&p, &img, &d, &stranger, &slsa_statement(&d), None)
            .await
            .unwrap();
    }
    assert_failed(
        &decide(dir.path(), &attestation_policy(&key), &img).await,
        "[policy.verify_images.too_many_materials]",
    );
    assert_ivp_failed(
        &decide(dir.path(), &ivp_policy(&key, true), &img).await,
        "[policy.verify_images.too_many_materials]",
    );
}

/// A ClusterPolicy with one rule whose body (after `match`) is `rule`, and `spec` lines
/// `spec_extra`; `KEY` in either is the key's PEM as a quoted string.
fn one_rule_policy(key: &SigningKey, spec_extra: &str, rule: &str) -> String {
    let pem = serde_json::to_string(&key.public_key().to_pem()).unwrap();
    format!(
        "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {{name: p}}\nspec:\n  validationFailureAction: Enforce\n{spec_extra}  rules:\n    - name: r\n      match: {{any: [{{resources: {{kinds: [Pod]}}}}]}}\n{}",
        rule.replace("KEY", &pem)
    )
}

#[test]
fn a_policy_that_would_be_weaker_than_written_is_a_load_error() {
    let key = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let attestor = "{entries: [{keys: {publicKeys: KEY, rekor: {ignoreTlog: true}}}]}";
    let good = one_rule_policy(
        &key,
        "",
        &format!(
            "      verifyImages:\n        - imageReferences: [\"registry.provenance.test/*\"]\n          attestors: [{attestor}]\n"
        ),
    );
    let mut set = PolicySet::default();
    set.add_yaml(&good, "good.yaml").unwrap();
    let pem = serde_json::to_string(&key.public_key().to_pem()).unwrap();
    let attestor = attestor.replace("KEY", &pem);
    let cases = [
        // An attestor set written as a map (the list dash left out): no attestors at all.
        (
            "attestors as a map",
            good.replace(&format!("[{attestor}]"), &attestor),
            "verifyImages[0].attestors",
        ),
        // An attestation's attestors as a map: the entry's attestors would verify it instead.
        (
            "attestation attestors as a map",
            good.replace(
                &format!("attestors: [{attestor}]"),
                &format!("attestations: [{{type: {SLSA}, attestors: {attestor}}}]"),
            ),
            "attestations[0].attestors",
        ),
        // Two operations in one rule: the second one would never be read.
        (
            "validate and verifyImages",
            good.replace(
                "      verifyImages:",
                "      validate: {pattern: {spec: {containers: [{name: \"?*\"}]}}}\n      verifyImages:",
            ),
            "a rule has one operation",
        ),
        // Fields of the wrong type, each read as absent or as another value.
        (
            "failure action as a list",
            good.replace(
                "validationFailureAction: Enforce",
                "validationFailureAction: [Enforce]",
            ),
            "validationFailureAction",
        ),
        (
            "kinds as a string",
            good.replace("kinds: [Pod]", "kinds: Pod"),
            "kinds",
        ),
        (
            "image references as a string",
            good.replace(
                "[\"registry.provenance.test/*\"]",
                "\"registry.provenance.test/*\"",
            ),
            "imageReferences",
        ),
        (
            "verifyDigest as a string",
            good.replace(
                "          attestors:",
                "          verifyDigest: \"false\"\n          attestors:",
            ),
            "verifyDigest",
        ),
        (
            "background as a string",
            good.replace(
                "  validationFailureAction: Enforce\n",
                "  validationFailureAction: Enforce\n  background: \"false\"\n",
            ),
            "background",
        ),
    ];
    for (name, text, detail) in cases {
        assert_ne!(text, good, "{name}: the case did not change the policy");
        let e = load_error(&text);
        assert_eq!(e.code(), "policy.invalid", "{name}: {e}");
        assert!(
            e.to_string().contains(detail),
            "{name}: want {detail:?} in {e}"
        );
    }
}
