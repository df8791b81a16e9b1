//! verifyImages over a model stored as an OCI artifact and mounted as a Pod image volume:
//! an `https://model_signing/signature/v1.0` attestation (an OpenSSF model-signing bundle
//! attached to the artifact) is bound to the artifact by its signed resources, which must
//! equal the artifact's layers. Fixtures: provenance-oci's model-signing OCI layout
//! (`scripts/fixtures/model-signing/generate-oci.sh`, model_signing 1.1.1).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use provenance_attest::model_artifact::ArtifactLayer;
use provenance_core::verify::{PUBLIC_GOOD_TRUSTED_ROOT, SignatureMaterial, Verifier};
use provenance_core::{Digest, RuleStatus, TrustRoot, UnixTime};
use provenance_policy::admission::PolicySet;
use provenance_policy::admission::request::ResourceInput;
use provenance_policy::kyverno::verify_images::{ImageEvidence, VerifyImagesContext};
use provenance_policy::lang::jmespath::Env;
use serde_json::{Value, json};

const MODEL: &str = "registry.provenance.test/models/tiny:1.0";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../provenance-oci/tests/fixtures/model-signing")
}

fn layout_blob(digest: &str) -> Vec<u8> {
    std::fs::read(
        fixtures()
            .join("oci/layout/blobs/sha256")
            .join(digest.trim_start_matches("sha256:")),
    )
    .unwrap()
}

/// The model manifest digest and its layers, as the committed layout holds them.
fn artifact() -> (Digest, Vec<ArtifactLayer>) {
    let index: Value =
        serde_json::from_slice(&std::fs::read(fixtures().join("oci/layout/index.json")).unwrap())
            .unwrap();
    let d = index["manifests"][0]["digest"].as_str().unwrap().to_owned();
    let m: Value = serde_json::from_slice(&layout_blob(&d)).unwrap();
    let layers = m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| ArtifactLayer {
            media_type: l["mediaType"].as_str().unwrap().to_owned(),
            digest: l["digest"].as_str().unwrap().to_owned(),
            size: l["size"].as_u64().unwrap(),
            annotations: serde_json::from_value(l["annotations"].clone()).unwrap(),
        })
        .collect();
    (Digest::parse(&d).unwrap(), layers)
}

fn bundle(name: &str) -> SignatureMaterial {
    SignatureMaterial::Bundle(std::fs::read(fixtures().join("oci").join(name)).unwrap())
}

fn policy(key_file: &str) -> PolicySet {
    let key = std::fs::read_to_string(fixtures().join("keys").join(key_file)).unwrap();
    let indented: String = key
        .lines()
        .map(|l| format!("                          {l}\n"))
        .collect();
    let yaml = format!(
        r#"apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {{name: verify-model-artifacts}}
spec:
  validationFailureAction: Enforce
  rules:
    - name: model-signed
      match: {{any: [{{resources: {{kinds: [Pod]}}}}]}}
      verifyImages:
        - imageReferences: ["registry.provenance.test/models/*"]
          attestations:
            - type: https://model_signing/signature/v1.0
              attestors:
                - entries:
                    - keys:
                        rekor: {{ignoreTlog: true}}
                        publicKeys: |-
{indented}"#
    );
    let mut set = PolicySet::default();
    set.add_yaml(&yaml, "p.yaml").unwrap();
    set
}

fn pod() -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "inference", "namespace": "ml"},
        "spec": {"containers": [{"name": "server", "image": "registry.provenance.test/app/server:1",
                                 "volumeMounts": [{"name": "model", "mountPath": "/models"}]}],
                 "volumes": [{"name": "model", "image": {"reference": MODEL}}]}})
}

fn decide(set: &PolicySet, ev: ImageEvidence) -> (RuleStatus, String, Vec<Value>) {
    let root = TrustRoot::from_trusted_root_json(PUBLIC_GOOD_TRUSTED_ROOT).unwrap();
    let verifier = Verifier::new(&root).unwrap();
    let evidence = BTreeMap::from([(MODEL.to_owned(), ev)]);
    let now = UnixTime(1_800_000_000);
    let cx = VerifyImagesContext::new(&evidence, &verifier, now);
    let d = set.decide_with(&ResourceInput::create(pod()), &Env::at(now), Some(&cx));
    assert_eq!(d.results.len(), 1, "{:?}", d.results);
    let r = &d.results[0];
    (r.status, r.message.clone(), d.patches.clone())
}

fn evidence(bundles: &[&str], layers: Option<Vec<ArtifactLayer>>) -> ImageEvidence {
    let (digest, _) = artifact();
    ImageEvidence::resolved(digest)
        .with_attestations(bundles.iter().map(|b| bundle(b)))
        .with_layers(layers)
}

#[test]
fn image_volume_model_requests_layers_and_passes() {
    let set = policy("ec-p256.pub");
    let reqs = set.image_requests(&ResourceInput::create(pod()));
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].reference, MODEL);
    assert!(reqs[0].needs_layers());
    assert_eq!(
        reqs[0].attestation_types,
        ["https://model_signing/signature/v1.0"]
    );
    let (digest, layers) = artifact();
    let (status, message, patches) = decide(&set, evidence(&["model.sig"], Some(layers)));
    assert_eq!(status, RuleStatus::Pass, "{message}");
    // The volume's tag is pinned to the verified manifest digest.
    let patch = serde_json::to_string(&patches).unwrap();
    assert!(patch.contains(&digest.to_string()), "{patch}");
    assert!(patch.contains("/spec/volumes/0/image/reference"), "{patch}");
}

#[test]
fn tampered_artifacts_fail_with_the_file_lists() {
    let set = policy("ec-p256.pub");
    let (_, layers) = artifact();

    let mut replaced = layers.clone();
    replaced[0].digest = Digest::sha256_of(b"evil").to_string();
    let (status, message, _) = decide(&set, evidence(&["model.sig"], Some(replaced)));
    assert_eq!(status, RuleStatus::Fail);
    assert!(message.contains("(changed: config.json)"), "{message}");

    let mut added = layers.clone();
    let mut extra = layers[1].clone();
    extra.annotations.insert(
        "org.opencontainers.image.title".into(),
        "weights/backdoor.bin".into(),
    );
    extra.annotations.insert(
        "org.cncf.model.filepath".into(),
        "weights/backdoor.bin".into(),
    );
    added.push(extra);
    let (status, message, _) = decide(&set, evidence(&["model.sig"], Some(added)));
    assert_eq!(status, RuleStatus::Fail);
    assert!(
        message.contains("(extra: weights/backdoor.bin)"),
        "{message}"
    );

    let mut removed = layers.clone();
    removed.remove(2);
    let (status, message, _) = decide(&set, evidence(&["model.sig"], Some(removed)));
    assert_eq!(status, RuleStatus::Fail);
    assert!(
        message.contains("(missing: tokenizer/vocab.txt)"),
        "{message}"
    );

    let (status, message, _) = decide(&set, evidence(&["other-model.sig"], Some(layers.clone())));
    assert_eq!(status, RuleStatus::Fail);
    assert!(
        message.contains("(changed: config.json; missing: extra.txt)"),
        "{message}"
    );

    // The right bundle next to a wrong one passes.
    let (status, message, _) = decide(
        &set,
        evidence(&["other-model.sig", "model.sig"], Some(layers.clone())),
    );
    assert_eq!(status, RuleStatus::Pass, "{message}");
}

#[test]
fn unsigned_git_layers_in_a_model_artifact_fail() {
    // model.sig records the git paths in its signed ignore_paths (model_signing's default):
    // layers at those paths are still delivered to the Pod, so they must be signed.
    let set = policy("ec-p256.pub");
    let (_, layers) = artifact();
    let mut added = layers.clone();
    for (path, bytes) in [
        (
            ".git/config",
            b"[core]\n\tfsmonitor = ./payload\n".as_slice(),
        ),
        (".gitattributes", b"*.bin filter=payload\n".as_slice()),
    ] {
        let mut l = layers[1].clone();
        l.digest = Digest::sha256_of(bytes).to_string();
        l.size = bytes.len() as u64;
        l.annotations
            .insert("org.opencontainers.image.title".into(), path.into());
        l.annotations
            .insert("org.cncf.model.filepath".into(), path.into());
        added.push(l);
    }
    let (status, message, _) = decide(&set, evidence(&["model.sig"], Some(added)));
    assert_eq!(status, RuleStatus::Fail, "{message}");
    assert!(
        message.contains("(extra: .git/config, .gitattributes)"),
        "{message}"
    );
}

#[test]
fn wrong_key_no_layers_no_bundle_and_needs_blobs_fail() {
    let (_, layers) = artifact();
    let (status, message, _) = decide(
        &policy("other.pub"),
        evidence(&["model.sig"], Some(layers.clone())),
    );
    assert_eq!(status, RuleStatus::Fail, "{message}");

    let set = policy("ec-p256.pub");
    let (status, message, _) = decide(&set, evidence(&["model.sig"], None));
    assert_eq!(status, RuleStatus::Fail);
    assert!(message.contains("not a model artifact"), "{message}");

    let (status, message, _) = decide(&set, evidence(&[], Some(layers.clone())));
    assert_eq!(status, RuleStatus::Fail);
    assert!(message.contains("no attestations found"), "{message}");

    let mut tar = layers.clone();
    tar[0].media_type = "application/vnd.oci.image.layer.v1.tar+gzip".into();
    let (status, message, _) = decide(&set, evidence(&["model.sig"], Some(tar)));
    assert_eq!(status, RuleStatus::Fail);
    assert!(message.contains("layer bytes would be needed"), "{message}");

    let (status, message, _) = decide(&set, evidence(&["key-blake2.sig"], Some(layers)));
    assert_eq!(status, RuleStatus::Fail);
    assert!(message.contains("blake2b"), "{message}");
}

#[cfg(feature = "oci")]
#[tokio::test]
async fn gathered_from_the_layout_passes() {
    let src = std::sync::Arc::new(
        provenance_oci::LayoutSource::open(fixtures().join("oci/layout")).unwrap(),
    );
    let set = policy("ec-p256.pub");
    let reqs = set.image_requests(&ResourceInput::create(pod()));
    let gathered = provenance_policy::admission::gather::gather(src, &reqs, 2).await;
    let ev = gathered.get(MODEL).unwrap().clone();
    assert!(ev.error.is_none(), "{:?}", ev.error);
    assert_eq!(ev.layers.as_ref().map(Vec::len), Some(5));
    let (status, message, _) = decide(&set, ev);
    assert_eq!(status, RuleStatus::Pass, "{message}");
}
