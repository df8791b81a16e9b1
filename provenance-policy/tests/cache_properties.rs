//! Property test of the `verifyImages` result cache (`VerifyImagesCache`), through the public
//! decision API only: random interleavings of decisions under different trust roots, policies,
//! rules, `verifyImages` entries, images and digests (tags that move), clock moves (forward
//! past the TTL and backwards) and `clear()`, checked against a simple model.
//!
//! The model: a lookup hits when the exact same (trust-root fingerprint, policy, rule, entry,
//! image, digest) was stored as a pass at `t` with `t <= now < t + ttl`, or when the same and
//! the very same evidence (here: with or without an extra junk signature) was stored as a
//! failure at `t` with `t <= now < t + min(ttl, FAILURE_TTL_SECONDS)`. Passes and failures
//! are kept apart: at `capacity` passes the passes are emptied before a new pass is inserted;
//! at `min(capacity, FAILURE_CAPACITY)` failures the stale failures are dropped, and all of
//! them if none was stale, before a new failure is inserted. Every
//! cached decision must equal the decision made without a cache, which itself must be the
//! pass or fail the inputs call for. The signature material is the cosign key signature of
//! `provenance-core/tests/fixtures/sigstore/cosign-key-set` (a `.sig` layer with a Rekor SET).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use proptest::prelude::*;
use provenance_core::verify::{CosignSignature, SignatureMaterial, Verifier};
use provenance_core::{Digest, RuleStatus, TrustRoot, UnixTime};
use provenance_policy::admission::request::ResourceInput;
use provenance_policy::admission::{Decision, PolicySet};
use provenance_policy::kyverno::verify_images::{
    FAILURE_CAPACITY, FAILURE_TTL_SECONDS, ImageEvidence, VerifyImagesCache, VerifyImagesContext,
};
use provenance_policy::lang::jmespath::Env;
use serde_json::{Value, json};

const TTL: i64 = 30;
const CAPACITY: usize = 4;
const IMAGES: [&str; 2] = [
    "registry.provenance.test/acme/model:v1",
    "registry.provenance.test/acme/model:v2",
];

fn read(file: &str) -> Vec<u8> {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../provenance-core/tests/fixtures/sigstore/cosign-key-set"
    ));
    std::fs::read(dir.join(file)).unwrap()
}

/// Everything a decision can be made with, built once.
struct World {
    /// Policy sets by (name, rule, entry, key) variant.
    policies: HashMap<(usize, usize, usize, usize), PolicySet>,
    /// Verifiers over: the fixture's root; the same root without its transparency log (the
    /// SET cannot verify); the same content without its source JSON (another fingerprint,
    /// still verifies).
    verifiers: Vec<Verifier>,
    /// The signed digest, then two digests a moved tag may point to (carrying the signed
    /// digest's signature, replayed).
    digests: Vec<Digest>,
    signature: SignatureMaterial,
    /// A signature layer that verifies under no key.
    junk: SignatureMaterial,
    /// The PEM of the key that made `signature`.
    key: String,
    start: UnixTime,
}

fn policy_yaml(name: usize, rule: usize, entry: usize, key: &str) -> String {
    let indented: String = key
        .lines()
        .map(|l| format!("                      {l}\n"))
        .collect();
    // Entry variants: the same check written differently (another `imageReferences` list):
    // a different entry text, so a different key, with the same outcome.
    let refs = if entry == 0 {
        r#"["registry.provenance.test/acme/*"]"#
    } else {
        r#"["registry.provenance.test/acme/*", "registry.provenance.test/other/*"]"#
    };
    format!(
        r#"apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {{name: verify-images-{name}}}
spec:
  validationFailureAction: Enforce
  rules:
    - name: verify-signature-{rule}
      match: {{any: [{{resources: {{kinds: [Pod]}}}}]}}
      verifyImages:
        - imageReferences: {refs}
          attestors:
            - entries:
                - keys:
                    publicKeys: |-
{indented}"#
    )
}

impl World {
    fn new() -> World {
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
        let root = TrustRoot::from_trusted_root_json(&read("trusted_root.json")).unwrap();
        let good_key = String::from_utf8(read("key.pub")).unwrap();
        // A valid P-256 key that did not sign anything here: the log's own key.
        let wrong_key = root.tlogs[0].public_key.to_pem();
        let mut policies = HashMap::new();
        for name in 0..2 {
            for rule in 0..2 {
                for entry in 0..2 {
                    for (k, key) in [&good_key, &wrong_key].into_iter().enumerate() {
                        let mut set = PolicySet::default();
                        set.add_yaml(&policy_yaml(name, rule, entry, key), "p.yaml")
                            .unwrap();
                        policies.insert((name, rule, entry, k), set);
                    }
                }
            }
        }
        let mut no_log = root.clone();
        no_log.tlogs.clear();
        no_log.source_json = None;
        let mut same_content = root.clone();
        same_content.source_json = None;
        let verifiers: Vec<Verifier> = [&root, &no_log, &same_content]
            .into_iter()
            .map(|r| Verifier::new(r).unwrap())
            .collect();
        let fps: std::collections::BTreeSet<_> = verifiers
            .iter()
            .map(|v| v.trust_root_fingerprint().to_string())
            .collect();
        assert_eq!(fps.len(), 3, "three distinct trust-root fingerprints");
        World {
            policies,
            verifiers,
            digests: vec![
                signed,
                Digest::sha256_of(b"moved tag 1"),
                Digest::sha256_of(b"moved tag 2"),
            ],
            signature: SignatureMaterial::Cosign(CosignSignature::new(payload, annotations)),
            key: good_key.clone(),
            junk: SignatureMaterial::Cosign(CosignSignature::new(
                b"{\"critical\": {}}".to_vec(),
                BTreeMap::from([(
                    "dev.cosignproject.cosign/signature".to_owned(),
                    "MEUCIQ==".to_owned(),
                )]),
            )),
            start: UnixTime(expect["now"].as_i64().unwrap()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Inputs {
    name: usize,
    rule: usize,
    entry: usize,
    key: usize,
    root: usize,
    image: usize,
    digest: usize,
    /// 1: the evidence carries a junk signature besides the real one.
    junk: usize,
}

#[derive(Debug, Clone)]
enum Op {
    Decide(Inputs),
    Clock(i64),
    Clear,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..2usize, 0..2usize, 0..2usize, 0..2usize, 0..3usize, 0..2usize, 0..3usize, 0..2usize)
            .prop_map(|(name, rule, entry, key, root, image, digest, junk)| Op::Decide(Inputs {
                name, rule, entry, key, root, image, digest, junk
            })),
        // Forward (often past the TTL) and backwards (a clock that went back).
        2 => (-TTL..2 * TTL).prop_map(Op::Clock),
        1 => Just(Op::Clear),
    ]
}

fn decide(w: &World, i: Inputs, now: UnixTime, cache: Option<&VerifyImagesCache>) -> Decision {
    let image = IMAGES[i.image];
    let pod = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "inference", "namespace": "ml"},
        "spec": {"containers": [{"name": "server", "image": image}]}});
    let evidence = BTreeMap::from([(
        image.to_owned(),
        ImageEvidence::resolved(w.digests[i.digest].clone()).with_signatures(if i.junk == 1 {
            vec![w.junk.clone(), w.signature.clone()]
        } else {
            vec![w.signature.clone()]
        }),
    )]);
    let cx = VerifyImagesContext::new(&evidence, &w.verifiers[i.root], now).with_cache(cache);
    w.policies[&(i.name, i.rule, i.entry, i.key)].decide_with(
        &ResourceInput::create(pod),
        &Env::at(now),
        Some(&cx),
    )
}

/// The model's key: everything a cached pass is bound to. The trust root is named by its
/// fingerprint; the policy by its name, rule and entry (the key variant changes the entry's
/// text too).
type ModelKey = (String, usize, usize, usize, usize, usize, usize);

fn model_key(w: &World, i: Inputs) -> ModelKey {
    (
        w.verifiers[i.root].trust_root_fingerprint().to_string(),
        i.name,
        i.rule,
        i.entry,
        i.key,
        i.image,
        i.digest,
    )
}

fn world() -> &'static World {
    static W: std::sync::OnceLock<World> = std::sync::OnceLock::new();
    W.get_or_init(World::new)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn cached_decisions_equal_uncached_and_follow_the_model(
        ops in proptest::collection::vec(op(), 1..48)
    ) {
        let w = world();
        let cache = VerifyImagesCache::new(CAPACITY, TTL);
        // A pass is stored under the model key; a failure under the model key and the
        // evidence (`junk`).
        let mut passes: HashMap<ModelKey, i64> = HashMap::new();
        let mut failures: HashMap<(ModelKey, usize), i64> = HashMap::new();
        let fail_ttl = TTL.min(FAILURE_TTL_SECONDS);
        let mut now = w.start.0;
        let (mut hits, mut misses) = (0u64, 0u64);
        for op in ops {
            match op {
                // Forward and backwards, but never before the signature's integrated time
                // (the fixture's `now` is two minutes after it): before it every verification
                // fails (`verify.tlog.integrated_time`, tested elsewhere), which is not what
                // this property is about.
                Op::Clock(d) => now = (now + d).max(w.start.0 - 60),
                Op::Clear => {
                    cache.clear();
                    passes.clear();
                    failures.clear();
                }
                Op::Decide(i) => {
                    let at = UnixTime(now);
                    // The oracle: the same decision without a cache.
                    let fresh = decide(w, i, at, None);
                    let should_pass = i.key == 0 && i.root != 1 && i.digest == 0;
                    let status = fresh.results[0].status;
                    prop_assert_eq!(
                        status,
                        if should_pass { RuleStatus::Pass } else { RuleStatus::Fail },
                        "{:?}: {}", i, fresh.results[0].message
                    );
                    let pass_key = model_key(w, i);
                    let fail_key = (model_key(w, i), i.junk);
                    let fresh_at = |t: i64, ttl: i64| t <= now && now - t < ttl;
                    let expect_hit = passes.get(&pass_key).is_some_and(|&t| fresh_at(t, TTL))
                        || failures.get(&fail_key).is_some_and(|&t| fresh_at(t, fail_ttl));
                    let cached = decide(w, i, at, Some(&cache));
                    prop_assert_eq!(&cached.results, &fresh.results, "{:?}", i);
                    prop_assert_eq!(&cached.patches, &fresh.patches, "{:?}", i);
                    prop_assert_eq!(cached.allowed, fresh.allowed);
                    if expect_hit {
                        hits += 1;
                    } else {
                        misses += 1;
                        if status == RuleStatus::Pass {
                            if passes.len() >= CAPACITY && !passes.contains_key(&pass_key) {
                                passes.clear();
                            }
                            passes.insert(pass_key, now);
                        } else {
                            let cap = CAPACITY.min(FAILURE_CAPACITY);
                            if failures.len() >= cap && !failures.contains_key(&fail_key) {
                                failures.retain(|_, t| fresh_at(*t, fail_ttl));
                                if failures.len() >= cap {
                                    failures.clear();
                                }
                            }
                            failures.insert(fail_key, now);
                        }
                    }
                    prop_assert_eq!(
                        (cache.hits(), cache.misses()),
                        (hits, misses),
                        "{:?} at {}", i, now
                    );
                    prop_assert_eq!(cache.len(), passes.len() + failures.len());
                }
            }
        }
    }
}

/// An attack on the failures the cache remembers: whoever can make admissions of images with
/// failing evidence (unsigned images under an `imageReferences: "*"` entry, in a registry they
/// push to) causes as many failures as they like. When failures shared the capacity of passes,
/// 16 such admissions emptied the cache of every remembered pass; they are kept apart.
#[test]
fn failures_from_unsigned_images_never_evict_a_remembered_pass() {
    let w = world();
    let mut set = PolicySet::default();
    let text =
        policy_yaml(0, 0, 0, &w.key).replace(r#"["registry.provenance.test/acme/*"]"#, r#"["*"]"#);
    set.add_yaml(&text, "p.yaml").unwrap();
    let now = w.start;
    let decide = |images: &[(String, ImageEvidence)], cache: &VerifyImagesCache| {
        let containers: Vec<Value> = images
            .iter()
            .enumerate()
            .map(|(i, (img, _))| json!({"name": format!("c{i}"), "image": img}))
            .collect();
        let pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "ml"}, "spec": {"containers": containers}});
        let evidence: BTreeMap<String, ImageEvidence> = images.iter().cloned().collect();
        let cx = VerifyImagesContext::new(&evidence, &w.verifiers[0], now).with_cache(Some(cache));
        set.decide_with(&ResourceInput::create(pod), &Env::at(now), Some(&cx))
    };
    let good = (
        IMAGES[0].to_owned(),
        ImageEvidence::resolved(w.digests[0].clone()).with_signatures([w.signature.clone()]),
    );
    // The webhook's cache: 8,192 passes, 300 s.
    const WEBHOOK_CAPACITY: usize = 8192;
    let cache = VerifyImagesCache::new(WEBHOOK_CAPACITY, 300);
    for _ in 0..2 {
        let d = decide(std::slice::from_ref(&good), &cache);
        assert_eq!(
            d.results[0].status,
            RuleStatus::Pass,
            "{}",
            d.results[0].message
        );
    }
    assert_eq!(cache.misses(), 1, "the pass is remembered");
    // Admissions of 512 unsigned images each (a Pod of 512 containers fits in 64 KiB), each
    // image its own digest.
    let mut n = 0u64;
    for _pod in 0..(WEBHOOK_CAPACITY / 512) {
        let images: Vec<(String, ImageEvidence)> = (0..512)
            .map(|_| {
                n += 1;
                let d = Digest::sha256_of(format!("junk {n}").as_bytes());
                let ev = ImageEvidence::resolved(d.clone());
                (format!("evil.example/x@{d}"), ev)
            })
            .collect();
        let d = decide(&images, &cache);
        assert_eq!(
            d.results[0].status,
            RuleStatus::Fail,
            "{}",
            d.results[0].message
        );
    }
    assert!(
        cache.len() <= 1 + FAILURE_CAPACITY,
        "failures stay bounded: {}",
        cache.len()
    );
    let misses = cache.misses();
    let d = decide(std::slice::from_ref(&good), &cache);
    assert_eq!(d.results[0].status, RuleStatus::Pass);
    assert_eq!(
        cache.misses(),
        misses,
        "the remembered pass survived the flood of failures"
    );
}
