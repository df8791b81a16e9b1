//! An attack on the failures `VerifyImagesCache` remembers: whoever can make admissions of
//! images with failing evidence (unsigned images under an `imageReferences: "*"` entry, in a
//! registry they push to) causes as many failures as they like. When failures shared the
//! capacity of passes, that emptied the cache of every remembered pass; they are kept apart.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use provenance_core::verify::{CosignSignature, SignatureMaterial, Verifier};
use provenance_core::{Digest, RuleStatus, TrustRoot, UnixTime};
use provenance_policy::admission::PolicySet;
use provenance_policy::admission::request::ResourceInput;
use provenance_policy::kyverno::verify_images::{
    ImageEvidence, VerifyImagesCache, VerifyImagesContext,
};
use provenance_policy::lang::jmespath::Env;
use serde_json::{Value, json};

fn read(file: &str) -> Vec<u8> {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../provenance-core/tests/fixtures/sigstore/cosign-key-set"
    ));
    std::fs::read(dir.join(file)).unwrap()
}

#[test]
fn failures_from_unsigned_images_evict_every_remembered_pass() {
    let expect: Value = serde_json::from_slice(&read("expect.json")).unwrap();
    let layer: Value = serde_json::from_slice(&read("cosign-layer.json")).unwrap();
    use base64::Engine;
    let payload = base64::engine::general_purpose::STANDARD
        .decode(layer["payload"].as_str().unwrap())
        .unwrap();
    let annotations: BTreeMap<String, String> = layer["annotations"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect();
    let signed = Digest::parse(expect["image_digest"].as_str().unwrap()).unwrap();
    let now = UnixTime(expect["now"].as_i64().unwrap());
    let root = TrustRoot::from_trusted_root_json(&read("trusted_root.json")).unwrap();
    let verifier = Verifier::new(&root).unwrap();
    let key = String::from_utf8(read("key.pub")).unwrap();
    let indented: String = key
        .lines()
        .map(|l| format!("                      {l}\n"))
        .collect();
    let mut set = PolicySet::default();
    set.add_yaml(
        &format!(
            r#"apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {{name: verify-images}}
spec:
  validationFailureAction: Enforce
  rules:
    - name: verify-signature
      match: {{any: [{{resources: {{kinds: [Pod]}}}}]}}
      verifyImages:
        - imageReferences: ["*"]
          attestors:
            - entries:
                - keys:
                    publicKeys: |-
{indented}"#
        ),
        "p.yaml",
    )
    .unwrap();
    let good = "registry.provenance.test/acme/model:v1";
    let decide = |images: &[(String, ImageEvidence)], cache: &VerifyImagesCache| {
        let containers: Vec<Value> = images
            .iter()
            .enumerate()
            .map(|(i, (img, _))| json!({"name": format!("c{i}"), "image": img}))
            .collect();
        let pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "ml"}, "spec": {"containers": containers}});
        let evidence: BTreeMap<String, ImageEvidence> = images.iter().cloned().collect();
        let cx = VerifyImagesContext {
            evidence: &evidence,
            verifier: &verifier,
            now,
            cache: Some(cache),
        };
        set.decide_with(&ResourceInput::create(pod), &Env::at(now), Some(&cx))
    };
    let good_ev = ImageEvidence {
        digest: Some(signed.clone()),
        signatures: vec![SignatureMaterial::Cosign(CosignSignature::new(
            payload,
            annotations,
        ))],
        ..Default::default()
    };
    // The webhook's cache: 8192 entries, 300 s.
    const CAPACITY: usize = 8192;
    let cache = VerifyImagesCache::new(CAPACITY, 300);
    let d = decide(&[(good.to_owned(), good_ev.clone())], &cache);
    assert_eq!(d.results[0].status, RuleStatus::Pass);
    let m = cache.misses();
    let d = decide(&[(good.to_owned(), good_ev.clone())], &cache);
    assert_eq!(d.results[0].status, RuleStatus::Pass);
    assert_eq!(cache.misses(), m, "the pass is remembered");

    // The attacker: admissions of 512 unsigned images each (a Pod of 512 containers fits in
    // 64 KiB), each image its own digest in a registry the attacker pushes to.
    let mut n = 0u64;
    for _pod in 0..(CAPACITY / 512) {
        let imgs: Vec<(String, ImageEvidence)> = (0..512)
            .map(|_| {
                n += 1;
                let d = Digest::sha256_of(format!("junk {n}").as_bytes());
                (
                    format!("evil.example/x@{d}"),
                    ImageEvidence {
                        digest: Some(d),
                        ..Default::default()
                    },
                )
            })
            .collect();
        let d = decide(&imgs, &cache);
        assert_eq!(
            d.results[0].status,
            RuleStatus::Fail,
            "{}",
            d.results[0].message
        );
    }
    // The next legitimate admission: is its pass still there?
    let m = cache.misses();
    let d = decide(&[(good.to_owned(), good_ev)], &cache);
    assert_eq!(d.results[0].status, RuleStatus::Pass);
    assert_eq!(
        cache.misses(),
        m,
        "16 admissions of unsigned images evicted the remembered pass of a signed image (cache len now {})",
        cache.len()
    );
}
