//! The front door (`provenance_policy::admission::review`): one AdmissionReview in, the complete
//! answer out, for the mutating and the validating phase, over the AI-workload example (its
//! policies, its OCI layout of signed images and its trust root), with the evidence gathered
//! by `respond_online` within a deadline. Also: facts the API server does not send, malformed
//! reviews, and kube-rs's typed AdmissionReview / AdmissionResponse.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use provenance_core::verify::Verifier;
use provenance_core::{TrustRoot, UnixTime};
use provenance_oci::LayoutSource;
use provenance_policy::admission::PolicySet;
use provenance_policy::admission::review::{
    AUDIT_ANNOTATION, Phase, RequestFacts, Review, respond_online,
};
use provenance_policy::lang::jmespath::Env;
use serde_json::{Value, json};

fn example() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/ai-workloads"
    ))
}

fn policies() -> PolicySet {
    let mut set = PolicySet::default();
    for f in std::fs::read_dir(example().join("policies")).unwrap() {
        let f = f.unwrap().path();
        set.add_yaml(&std::fs::read_to_string(&f).unwrap(), f.to_str().unwrap())
            .unwrap();
    }
    set
}

fn pod(name: &str) -> Value {
    let text = std::fs::read_to_string(example().join("workloads/inference-pods.yaml")).unwrap();
    provenance_policy::yaml::load_documents(&text, "inference-pods.yaml")
        .unwrap()
        .into_iter()
        .find(|d| d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in the example"))
}

fn review(uid: &str, object: &Value) -> Value {
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": uid, "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "operation": "CREATE", "namespace": object["metadata"]["namespace"],
            "name": object["metadata"]["name"], "userInfo": {"username": "alice"},
            "object": object}})
}

fn facts() -> RequestFacts {
    RequestFacts::new()
        .namespace_labels([("purpose", "ai-inference")])
        .roles(Vec::<String>::new(), Vec::<String>::new())
}

fn verifier() -> Verifier {
    let root = TrustRoot::from_trusted_root_json(
        &std::fs::read(example().join("registry/trusted_root.json")).unwrap(),
    )
    .unwrap();
    Verifier::new(&root).unwrap()
}

/// The example's signatures were made at the end of November 2026; any later time works.
const NOW: UnixTime = UnixTime(1_800_000_000);

fn patch_of(answer: &Value) -> Vec<Value> {
    serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(answer["response"]["patch"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn mutate_then_validate_through_one_call_each() {
    let set = policies();
    let source = Arc::new(LayoutSource::open(example().join("registry")).unwrap());
    let v = verifier();
    let deadline = Duration::from_secs(20);

    // Mutating phase: allowed, with a JSONPatch pinning the verified images.
    let good = pod("llm-inference");
    let r = Review::parse(&review("m-1", &good), &facts()).unwrap();
    assert!(!set.image_requests_for(&r).is_empty());
    let m = respond_online(&set, &r, Phase::Mutate, source.clone(), &v, deadline, NOW).await;
    assert_eq!(m.review["response"]["uid"], "m-1");
    assert_eq!(m.review["response"]["allowed"], true, "{}", m.review);
    assert_eq!(m.review["response"]["patchType"], "JSONPatch");
    let mut pinned = good.clone();
    for op in patch_of(&m.review) {
        assert_eq!(op["op"], "replace");
        *pinned.pointer_mut(op["path"].as_str().unwrap()).unwrap() = op["value"].clone();
    }
    for c in pinned["spec"]["containers"].as_array().unwrap() {
        assert!(c["image"].as_str().unwrap().contains("@sha256:"), "{c}");
    }
    // The same answer as kube-rs's response: its patch bytes are the JSONPatch, and its
    // reply carries it as the API server reads it.
    let typed = m.to_kube().unwrap();
    assert!(typed.allowed);
    let bytes = typed.patch.clone().unwrap();
    assert_eq!(
        serde_json::from_slice::<Vec<Value>>(&bytes).unwrap(),
        patch_of(&m.review)
    );
    let reply = serde_json::to_value(typed.into_review()).unwrap();
    assert_eq!(reply["response"]["patchType"], "JSONPatch");
    assert_eq!(reply["response"]["patch"], json!(bytes));

    // Validating phase: the tag form is denied (the digest was not submitted), the pinned
    // form admitted, with no patch either way.
    let r = Review::parse(&review("v-1", &good), &facts()).unwrap();
    let a = respond_online(&set, &r, Phase::Validate, source.clone(), &v, deadline, NOW).await;
    assert_eq!(a.review["response"]["allowed"], false, "{}", a.review);
    assert!(a.review["response"].get("patch").is_none());
    let causes = &a.review["response"]["status"]["details"]["causes"];
    assert!(
        causes
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["reason"] == "policy.verify_images.missing_digest"),
        "{causes}"
    );
    let audit = a.review["response"]["auditAnnotations"][AUDIT_ANNOTATION]
        .as_str()
        .unwrap();
    assert!(
        audit.contains("policy.verify_images.missing_digest"),
        "{audit}"
    );
    let r = Review::parse(&review("v-2", &pinned), &facts()).unwrap();
    let a = respond_online(&set, &r, Phase::Validate, source.clone(), &v, deadline, NOW).await;
    assert_eq!(a.review["response"]["allowed"], true, "{}", a.review);

    // The unsigned image: denied, the machine code and the policy/rule in the causes; the
    // mutating phase never denies and has nothing to pin for it.
    let bad = pod("inference-unsigned");
    let r = Review::parse(&review("v-3", &bad), &facts()).unwrap();
    let a = respond_online(&set, &r, Phase::Validate, source.clone(), &v, deadline, NOW).await;
    assert_eq!(a.review["response"]["allowed"], false);
    let msg = a.review["response"]["status"]["message"].as_str().unwrap();
    assert!(
        msg.contains("verify-ai-images") && msg.contains("no signatures found"),
        "{msg}"
    );
    let m = respond_online(&set, &r, Phase::Mutate, source, &v, deadline, NOW).await;
    assert_eq!(m.review["response"]["allowed"], true);
}

#[test]
fn without_evidence_or_facts_nothing_passes_silently() {
    let set = policies();
    let good = pod("llm-inference");
    // No evidence: the verifyImages rules are errors and the enforced policy denies.
    let r = Review::parse(&review("u-1", &good), &facts()).unwrap();
    let a = set.respond(&r, Phase::Validate, None, &Env::at(NOW));
    assert_eq!(a.review["response"]["allowed"], false, "{}", a.review);
    assert!(
        a.review.to_string().contains("without image evidence"),
        "{}",
        a.review
    );
    // Namespace labels unknown: the namespaceSelector rule cannot be decided (an error that
    // blocks), where the same Pod with the labels known is decided by its evidence.
    let r = Review::parse(&review("u-2", &good), &RequestFacts::new()).unwrap();
    assert!(r.input().namespace_labels_unknown);
    let a = set.respond(&r, Phase::Validate, None, &Env::at(NOW));
    assert_eq!(a.review["response"]["allowed"], false);
    assert!(
        a.review["response"]["status"]["details"]["causes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["reason"] == "policy.match.namespace_labels_unknown"),
        "{}",
        a.review
    );
}

#[test]
fn malformed_reviews_are_errors() {
    let good = pod("llm-inference");
    let mut wrong_version = review("x", &good);
    wrong_version["apiVersion"] = json!("admission.k8s.io/v1beta1");
    let mut no_uid = review("x", &good);
    no_uid["request"].as_object_mut().unwrap().remove("uid");
    let mut no_object = review("x", &good);
    no_object["request"]
        .as_object_mut()
        .unwrap()
        .remove("object");
    for (bad, what) in [
        (wrong_version, "apiVersion"),
        (no_uid, "uid"),
        (no_object, "object"),
        (json!({"kind": "AdmissionReview"}), "apiVersion"),
    ] {
        let e = Review::parse(&bad, &facts()).unwrap_err();
        assert_eq!(e.code(), "policy.request", "{e}");
        assert!(e.to_string().contains(what), "{what}: {e}");
        let owned = Review::from_value(bad, &facts()).unwrap_err();
        assert_eq!(
            owned.to_string(),
            e.to_string(),
            "by value and by reference agree"
        );
    }
    // By value and by reference read the same request model, the objects moved or copied.
    let mut update = review("u", &good);
    update["request"]["operation"] = json!("UPDATE");
    update["request"]["oldObject"] = pod("inference-unsigned");
    update["request"]["userInfo"] = json!({"username": "alice", "groups": ["ml"]});
    let mut delete = review("d", &good);
    delete["request"]["operation"] = json!("DELETE");
    delete["request"]["oldObject"] = pod("inference-wrong-identity");
    delete["request"]["object"] = Value::Null;
    let mut null_user = review("n", &good);
    null_user["request"]["userInfo"] = Value::Null;
    for r in [review("c", &good), update, delete] {
        let a = Review::parse(&r, &facts()).unwrap();
        let b = Review::from_value(r, &facts()).unwrap();
        assert_eq!(format!("{:?}", a.input()), format!("{:?}", b.input()));
        assert_eq!(a.uid(), b.uid());
    }
    assert_eq!(
        Review::parse(&null_user, &facts()).unwrap_err().to_string(),
        Review::from_value(null_user, &facts())
            .unwrap_err()
            .to_string()
    );
    assert!(Review::from_slice(b"{not json", &facts()).is_err());
    let huge = vec![b' '; provenance_policy::admission::review::MAX_REVIEW_BYTES + 1];
    assert!(Review::from_slice(&huge, &facts()).is_err());
}

/// A registry on loopback that accepts connections and never answers: the deadline decides.
fn stalled_registry() -> (std::net::TcpListener, provenance_oci::RegistryClient) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let client = provenance_oci::RegistryClient::new(
        provenance_oci::RegistryConfig::default()
            .allow_http("registry.example.com")
            .with_endpoint("registry.example.com", addr),
    )
    .unwrap();
    (listener, client)
}

#[tokio::test]
async fn a_deadline_passing_denies_and_a_mutating_answer_has_no_patch() {
    let set = policies();
    let v = verifier();
    let r = Review::parse(&review("d-1", &pod("llm-inference")), &facts()).unwrap();
    let (_listener, client) = stalled_registry();
    let client = Arc::new(client);
    for phase in [Phase::Validate, Phase::Mutate] {
        let a = respond_online(
            &set,
            &r,
            phase,
            client.clone(),
            &v,
            Duration::from_millis(50),
            NOW,
        )
        .await;
        assert!(a.review["response"].get("patch").is_none(), "{}", a.review);
        assert!(!a.decision.allowed);
        if phase == Phase::Validate {
            assert_eq!(a.review["response"]["allowed"], false);
            assert_eq!(
                a.review["response"]["status"]["details"]["causes"][0]["reason"],
                "policy.deadline_exceeded"
            );
        }
    }
}

#[test]
fn kube_rs_typed_review_in_and_response_out() {
    use kube_core::DynamicObject;
    use kube_core::admission::{AdmissionResponse, AdmissionReview};
    let set = policies();
    let typed: AdmissionReview<DynamicObject> =
        serde_json::from_value(review("k-1", &pod("inference-unsigned"))).unwrap();
    let r = Review::from_kube(&typed, &facts()).unwrap();
    let a = set.respond(&r, Phase::Validate, None, &Env::at(NOW));
    let resp: AdmissionResponse = a.to_kube().unwrap();
    assert!(!resp.allowed);
    assert_eq!(resp.uid, "k-1");
    let back = serde_json::to_value(resp.into_review()).unwrap();
    // The reply carries its type: the API server refuses one without it.
    assert_eq!(back["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(back["kind"], "AdmissionReview");
    assert_eq!(back["response"]["allowed"], false);
    assert_eq!(back["response"]["status"]["code"], 403);
}

/// A registry that never answers (a stalled connection): every request waits forever.
struct Stalled;

impl provenance_oci::EvidenceSource for Stalled {
    async fn resolve(
        &self,
        _: &provenance_core::ImageReference,
    ) -> Result<provenance_core::Digest, provenance_oci::Error> {
        std::future::pending().await
    }
    async fn manifest(
        &self,
        _: &provenance_core::ImageReference,
    ) -> Result<provenance_oci::Manifest, provenance_oci::Error> {
        std::future::pending().await
    }
    async fn blob(
        &self,
        _: &provenance_core::ImageReference,
        _: &provenance_core::Digest,
        _: u64,
    ) -> Result<Vec<u8>, provenance_oci::Error> {
        std::future::pending().await
    }
    async fn blob_to_file(
        &self,
        _: &provenance_core::ImageReference,
        _: &provenance_core::Digest,
        _: u64,
        _: &std::path::Path,
    ) -> Result<(), provenance_oci::Error> {
        std::future::pending().await
    }
    async fn referrers_api(
        &self,
        _: &provenance_core::ImageReference,
        _: &provenance_core::Digest,
        _: Option<&str>,
    ) -> Result<Option<provenance_oci::Referrers>, provenance_oci::Error> {
        std::future::pending().await
    }
    fn limits(&self) -> provenance_oci::Limits {
        provenance_oci::Limits::default()
    }
}

#[tokio::test]
async fn a_passed_deadline_denies_in_both_phases_with_no_patch() {
    let set = policies();
    let root = TrustRoot::from_trusted_root_json(
        &std::fs::read(example().join("registry/trusted_root.json")).unwrap(),
    )
    .unwrap();
    let v = Verifier::new(&root).unwrap();
    let r = Review::parse(&review("d-1", &pod("llm-inference")), &facts()).unwrap();
    for phase in [Phase::Validate, Phase::Mutate] {
        let a = respond_online(
            &set,
            &r,
            phase,
            Arc::new(Stalled),
            &v,
            Duration::from_millis(50),
            NOW,
        )
        .await;
        assert_eq!(
            a.review["response"]["allowed"], false,
            "{phase:?}: {}",
            a.review
        );
        assert!(a.review["response"].get("patch").is_none(), "{}", a.review);
        assert!(a.patch.is_empty());
        assert!(
            a.review.to_string().contains("policy.deadline_exceeded"),
            "{phase:?}: {}",
            a.review
        );
    }
}
