//! How the cost of one admission decision grows with the size of its inputs:
//!
//! - `pod_size/*`: a Pod with N containers (N = 1, 4, 16, 64, 256), every container on its own
//!   image, through
//!   - `validate`: seven validate policies (six ClusterPolicies: patterns, anyPattern, a
//!     JMESPath deny, a `foreach` deny, `podSecurity` restricted, `validate.cel`; one
//!     ValidatingPolicy), all passing;
//!   - `verify_images_warm`: a key-based `verifyImages` rule, N distinct images each signed
//!     once (ECDSA P-256) into an OCI layout, evidence in memory, a warm `VerifyImagesCache`;
//!   - `verify_images_verify`: the same without any cache (every signature verified again);
//!   - `verify_images_cold_layout`: open the layout, list the image requests, gather the
//!     evidence of N images, verify and decide, no caches;
//! - `policies/*`: one 4-container Pod through P policies (P = 1, 4, 16, 64, 256), renamed
//!   copies of realistic policies: `cluster_policy` cycles through the six ClusterPolicies
//!   above, `validating_policy` through three ValidatingPolicies (CEL);
//! - `signatures/*`: one image carrying S cosign signature layers (S = 1, 8, 64, 100: at most
//!   100 are examined per image), `last_trusted` (only the last layer is by the policy's key:
//!   pass) and `all_untrusted` (every layer by another key: fail), each `verify` (evidence in
//!   memory, no cache), `memo` (a memoized verifier, as the webhook's: failures remembered
//!   for 30 s) and `cold_layout` (open the layout, gather, verify, decide); and `flooded/255`:
//!   255 layers, refused before any is verified.
//!
//! Layouts are written at setup into a temporary folder with `provenance_oci::sign`; keys are
//! generated at setup. Every decision's outcome is asserted in the loop.
//!
//! Run: `cargo bench -p provenance-cli --bench growth`; results in
//! `docs/performance-growth.md`, fitted by `scripts/bench-growth-fit.py`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use provenance_core::sign::{KeyAlgorithm, SigningKey};
use provenance_core::verify::{PUBLIC_GOOD_TRUSTED_ROOT, Verifier};
use provenance_core::{Digest, DigestAlgorithm, ImageReference, RuleStatus, TrustRoot, UnixTime};
use provenance_oci::sign::{SignOptions, sign_image};
use provenance_oci::{LayoutPublisher, LayoutSource, Manifest, Publisher};
use provenance_policy::admission::gather::gather;
use provenance_policy::admission::request::ResourceInput;
use provenance_policy::admission::{Decision, PolicySet};
use provenance_policy::kyverno::verify_images::{
    ImageEvidence, VerifyImagesCache, VerifyImagesContext,
};
use provenance_policy::lang::jmespath::Env;
use serde_json::{Value, json};

const NOW: UnixTime = UnixTime(1_800_000_000);
const POD_SIZES: [usize; 5] = [1, 4, 16, 64, 256];
const POLICY_COUNTS: [usize; 5] = [1, 4, 16, 64, 256];
const SIGNATURE_COUNTS: [usize; 4] = [1, 8, 64, 100];
/// Signature layers on the flooded image (a manifest may hold 256 layers).
const FLOODED: usize = 255;
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// ClusterPolicies, each with `NAME` where its name goes.
const CLUSTER_POLICIES: [&str; 6] = [
    r#"
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: NAME}
spec:
  validationFailureAction: Enforce
  rules:
  - name: require-image-tag
    match: {any: [{resources: {kinds: [Pod]}}]}
    validate:
      message: "An image tag is required."
      pattern: {spec: {containers: [{image: "*:*"}]}}
  - name: validate-image-tag
    match: {any: [{resources: {kinds: [Pod]}}]}
    validate:
      message: "Using a mutable image tag e.g. 'latest' is not allowed."
      pattern: {spec: {containers: [{image: "!*:latest"}]}}
"#,
    r#"
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: NAME}
spec:
  validationFailureAction: Enforce
  rules:
  - name: no-privilege-escalation
    match: {any: [{resources: {kinds: [Pod]}}]}
    validate:
      message: "Privilege escalation is disallowed."
      pattern:
        spec:
          =(initContainers): [{=(securityContext): {=(allowPrivilegeEscalation): "false"}}]
          containers: [{securityContext: {allowPrivilegeEscalation: "false"}}]
  - name: run-as-non-root
    match: {any: [{resources: {kinds: [Pod]}}]}
    validate:
      message: "Running as root is not allowed."
      anyPattern:
      - spec: {securityContext: {runAsNonRoot: true}, containers: [{=(securityContext): {=(runAsNonRoot): true}}]}
      - spec: {containers: [{securityContext: {runAsNonRoot: true}}]}
  - name: gpu-limits-required
    match: {any: [{resources: {kinds: [Pod]}}]}
    validate:
      message: "GPU containers must set memory limits"
      deny:
        conditions:
          any:
          - key: "{{ request.object.spec.containers[?resources.limits.\"nvidia.com/gpu\"] | [?!(resources.limits.memory)] | length(@) }}"
            operator: GreaterThan
            value: 0
"#,
    r#"
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: NAME}
spec:
  validationFailureAction: Enforce
  rules:
  - name: validate-resources
    match: {any: [{resources: {kinds: [Pod]}}]}
    validate:
      message: "CPU and memory requests and a memory limit are required."
      pattern:
        spec:
          containers:
          - resources:
              requests: {memory: "?*", cpu: "?*"}
              limits: {memory: "?*"}
"#,
    r#"
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: NAME}
spec:
  validationFailureAction: Enforce
  rules:
  - name: allowed-registries
    match: {any: [{resources: {kinds: [Pod]}}]}
    validate:
      message: "Image {{ element.image }} is not from an allowed registry."
      foreach:
      - list: "request.object.spec.containers"
        deny:
          conditions:
            any:
            - key: "{{ element.image }}"
              operator: AnyNotIn
              value: ["registry.example.com/growth/*", "nvcr.io/nim/*"]
"#,
    r#"
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: NAME}
spec:
  validationFailureAction: Enforce
  rules:
  - name: restricted
    match: {any: [{resources: {kinds: [Pod]}}]}
    validate:
      podSecurity: {level: restricted, version: latest}
"#,
    r#"
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: NAME}
spec:
  validationFailureAction: Enforce
  rules:
  - name: require-dataset-checksum
    match: {any: [{resources: {kinds: [Pod], selector: {matchLabels: {workload-type: training}}}}]}
    validate:
      cel:
        expressions:
        - expression: "object.spec.containers.all(c, c.env.exists(e, e.name == 'DATASET_SHA256') && c.env.exists(e, e.name == 'DATASET_SOURCE_URL'))"
          message: "Training Pods must specify DATASET_SHA256 and DATASET_SOURCE_URL"
        - expression: "object.spec.containers.all(c, c.env.filter(e, e.name == 'DATASET_SHA256').all(e, e.value.matches('^[a-f0-9]{64}$')))"
          message: "DATASET_SHA256 must be a valid SHA-256 hash"
"#,
];

/// ValidatingPolicies (CEL), each with `NAME` where its name goes.
const VALIDATING_POLICIES: [&str; 3] = [
    r#"
apiVersion: policies.kyverno.io/v1
kind: ValidatingPolicy
metadata: {name: NAME}
spec:
  validationActions: [Deny]
  matchConstraints:
    resourceRules: [{apiGroups: [""], apiVersions: [v1], operations: [CREATE, UPDATE], resources: [pods]}]
  variables:
  - name: containers
    expression: "object.spec.containers + object.spec.?initContainers.orValue([])"
  validations:
  - expression: "variables.containers.all(c, c.env.exists(e, e.name == 'DATASET_SHA256'))"
    message: "every container needs DATASET_SHA256"
"#,
    r#"
apiVersion: policies.kyverno.io/v1
kind: ValidatingPolicy
metadata: {name: NAME}
spec:
  validationActions: [Deny]
  matchConstraints:
    resourceRules: [{apiGroups: [""], apiVersions: [v1], operations: [CREATE, UPDATE], resources: [pods]}]
  validations:
  - expression: "object.spec.containers.all(c, c.image.startsWith('registry.example.com/') && !c.image.endsWith(':latest'))"
    message: "images must come from registry.example.com and not use :latest"
"#,
    r#"
apiVersion: policies.kyverno.io/v1
kind: ValidatingPolicy
metadata: {name: NAME}
spec:
  validationActions: [Deny]
  matchConstraints:
    resourceRules: [{apiGroups: [""], apiVersions: [v1], operations: [CREATE, UPDATE], resources: [pods]}]
  validations:
  - expression: "object.spec.containers.all(c, has(c.resources.limits) && 'memory' in c.resources.limits && quantity(c.resources.limits.memory).isLessThan(quantity('64Gi')))"
    message: "every container needs a memory limit under 64Gi"
  - expression: "object.spec.securityContext.runAsNonRoot == true"
    message: "Pods must run as non-root"
"#,
];

/// A key-based `verifyImages` ClusterPolicy trusting `pem` (no transparency log).
fn verify_images_policy(pem: &str) -> String {
    let indented: String = pem
        .lines()
        .map(|l| format!("              {l}\n"))
        .collect();
    format!(
        r#"
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {{name: verify-signed-images}}
spec:
  validationFailureAction: Enforce
  rules:
  - name: verify-signature
    match: {{any: [{{resources: {{kinds: [Pod]}}}}]}}
    verifyImages:
    - imageReferences: ["registry.example.com/growth/*"]
      attestors:
      - entries:
        - keys:
            publicKeys: |-
{indented}            rekor: {{ignoreTlog: true}}
"#
    )
}

fn image(i: usize) -> String {
    format!("registry.example.com/growth/app-{i}:1.0")
}

fn container(i: usize, image: &str) -> Value {
    json!({
        "name": format!("c{i}"), "image": image,
        "ports": [{"containerPort": 8080, "protocol": "TCP"}],
        "env": [
            {"name": "DATASET_SHA256", "value": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"},
            {"name": "DATASET_SOURCE_URL", "value": "https://datasets.example.com/tokens-v3"},
            {"name": "LOG_LEVEL", "value": "info"}
        ],
        "resources": {
            "requests": {"cpu": "1", "memory": "8Gi"},
            "limits": {"nvidia.com/gpu": "1", "memory": "32Gi", "cpu": "8"}
        },
        "securityContext": {
            "allowPrivilegeEscalation": false,
            "runAsNonRoot": true,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": true
        },
        "volumeMounts": [{"name": "models", "mountPath": "/models", "readOnly": true}]
    })
}

/// A training Pod with `n` containers, container `i` on `images(i)`.
fn pod(n: usize, images: impl Fn(usize) -> String) -> ResourceInput {
    let containers: Vec<Value> = (0..n).map(|i| container(i, &images(i))).collect();
    ResourceInput::create(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "llm-train-0", "namespace": "ml",
            "labels": {"workload-type": "training", "app": "llm"}},
        "spec": {
            "securityContext": {"runAsNonRoot": true, "runAsUser": 1000,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": containers,
            "volumes": [{"name": "models", "persistentVolumeClaim": {"claimName": "models"}}]
        }
    }))
}

fn policy_set(templates: &[&str], count: usize) -> PolicySet {
    let mut set = PolicySet::default();
    let docs: Vec<String> = (0..count)
        .map(|i| templates[i % templates.len()].replace("NAME", &format!("policy-{i}")))
        .collect();
    set.add_yaml(&docs.join("\n---\n"), "growth.yaml").unwrap();
    // CEL policies on Pods load with their Pod-controller variants: at least `count`.
    assert!(set.policies().len() >= count);
    set
}

fn all_pass(d: &Decision, rules: usize) -> bool {
    d.allowed && d.results.len() == rules && d.results.iter().all(|r| r.status == RuleStatus::Pass)
}

/// Pushes a one-layer image (its layer bytes name `i`, so every image has its own digest).
async fn push_image(p: &LayoutPublisher, reference: &ImageReference, i: usize) -> Digest {
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let layer = format!("layer of image {i}").into_bytes();
    let repo = ImageReference::from_name(&reference.name()).unwrap();
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
    p.push_manifest(reference, &m).await.unwrap();
    m.digest
}

/// A layout at `root` holding images `0..n`, each signed once by `key`.
async fn signed_images(root: &Path, n: usize, key: &SigningKey) {
    let p = LayoutPublisher::open(root).unwrap();
    for i in 0..n {
        let r = ImageReference::parse(&image(i)).unwrap();
        let d = push_image(&p, &r, i).await;
        sign_image(&p, &r, &d, key, &SignOptions::default())
            .await
            .unwrap();
    }
}

/// A layout at `root` holding image 0 with one signature layer per key of `signers`, in order.
async fn multi_signed_image(root: &Path, signers: &[&SigningKey]) {
    let p = LayoutPublisher::open(root).unwrap();
    let r = ImageReference::parse(&image(0)).unwrap();
    let d = push_image(&p, &r, 0).await;
    for k in signers {
        sign_image(&p, &r, &d, *k, &SignOptions::default())
            .await
            .unwrap();
    }
}

/// Opens the layout, lists the requests, gathers their evidence (8 images at a time).
fn gather_from(
    rt: &tokio::runtime::Runtime,
    root: &Path,
    set: &PolicySet,
    input: &ResourceInput,
) -> BTreeMap<String, ImageEvidence> {
    let layout = LayoutSource::open(root).unwrap();
    let requests = set.image_requests(input);
    rt.block_on(gather(Arc::new(layout), &requests, 8))
}

fn bench(c: &mut Criterion) {
    let env = Env::at(NOW);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let key = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let root = TrustRoot::from_trusted_root_json(PUBLIC_GOOD_TRUSTED_ROOT).unwrap();
    let verifier = Verifier::new(&root).unwrap();
    let mut vi = PolicySet::default();
    vi.add_yaml(&verify_images_policy(&key.public_key().to_pem()), "vi.yaml")
        .unwrap();

    // 1. Pod size.
    let mut validate_all: Vec<&str> = CLUSTER_POLICIES.to_vec();
    validate_all.push(VALIDATING_POLICIES[0]);
    let validate = policy_set(&validate_all, validate_all.len());
    // Rules: 2 + 3 + 1 + 1 + 1 + 1 ClusterPolicy rules, 1 ValidatingPolicy.
    let validate_rules = 10;
    let mut g = c.benchmark_group("pod_size");
    for n in POD_SIZES {
        g.throughput(Throughput::Elements(n as u64));
        let input = pod(n, image);
        let d = validate.decide(&input, &env);
        assert!(all_pass(&d, validate_rules), "{d:?}");
        g.bench_with_input(BenchmarkId::new("validate", n), &input, |b, input| {
            b.iter(|| {
                let d = validate.decide(black_box(input), &env);
                assert!(d.allowed);
                d
            })
        });

        let dir = tmp.path().join(format!("pod-{n}"));
        rt.block_on(signed_images(&dir, n, &key));
        let evidence = gather_from(&rt, &dir, &vi, &input);
        assert_eq!(evidence.len(), n);
        let cache = VerifyImagesCache::new(4096, 3600);
        let cached = VerifyImagesContext::new(&evidence, &verifier, NOW).with_cache(Some(&cache));
        let d = vi.decide_with(&input, &env, Some(&cached));
        assert!(all_pass(&d, 1), "{d:?}");
        assert_eq!(d.patches.len(), n, "every tag pinned to its digest");
        g.bench_with_input(
            BenchmarkId::new("verify_images_warm", n),
            &input,
            |b, input| {
                b.iter(|| {
                    let d = vi.decide_with(black_box(input), &env, Some(&cached));
                    assert!(d.allowed);
                    d
                })
            },
        );
        let uncached = VerifyImagesContext::new(&evidence, &verifier, NOW);
        g.bench_with_input(
            BenchmarkId::new("verify_images_verify", n),
            &input,
            |b, input| {
                b.iter(|| {
                    let d = vi.decide_with(black_box(input), &env, Some(&uncached));
                    assert!(d.allowed);
                    d
                })
            },
        );
        g.bench_with_input(
            BenchmarkId::new("verify_images_cold_layout", n),
            &input,
            |b, input| {
                b.iter(|| {
                    let evidence = gather_from(&rt, &dir, &vi, input);
                    let cx = VerifyImagesContext::new(&evidence, &verifier, NOW);
                    let d = vi.decide_with(black_box(input), &env, Some(&cx));
                    assert!(d.allowed);
                    d
                })
            },
        );
    }
    g.finish();

    // 2. Number of policies.
    let input = pod(4, image);
    let mut g = c.benchmark_group("policies");
    for p in POLICY_COUNTS {
        g.throughput(Throughput::Elements(p as u64));
        for (line, templates) in [
            ("cluster_policy", &CLUSTER_POLICIES[..]),
            ("validating_policy", &VALIDATING_POLICIES[..]),
        ] {
            let set = policy_set(templates, p);
            let d = set.decide(&input, &env);
            assert!(d.allowed && d.results.len() >= p, "{d:?}");
            assert!(d.results.iter().all(|r| r.status == RuleStatus::Pass));
            g.bench_with_input(BenchmarkId::new(line, p), &input, |b, input| {
                b.iter(|| {
                    let d = set.decide(black_box(input), &env);
                    assert!(d.allowed);
                    d
                })
            });
        }
    }
    g.finish();

    // 3. Signatures on one image.
    let input = pod(1, image);
    let untrusted: Vec<SigningKey> = (0..FLOODED)
        .map(|_| SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap())
        .collect();
    let mut g = c.benchmark_group("signatures");
    for s in SIGNATURE_COUNTS {
        g.throughput(Throughput::Elements(s as u64));
        for (case, pass) in [("last_trusted", true), ("all_untrusted", false)] {
            let mut signers: Vec<&SigningKey> = untrusted[..s].iter().collect();
            if pass {
                signers[s - 1] = &key;
            }
            let dir = tmp.path().join(format!("sigs-{case}-{s}"));
            rt.block_on(multi_signed_image(&dir, &signers));
            let evidence = gather_from(&rt, &dir, &vi, &input);
            assert_eq!(evidence.values().next().unwrap().signatures.len(), s);
            let cx = VerifyImagesContext::new(&evidence, &verifier, NOW);
            let d = vi.decide_with(&input, &env, Some(&cx));
            assert_eq!(d.allowed, pass, "{d:?}");
            let want = if pass {
                RuleStatus::Pass
            } else {
                RuleStatus::Fail
            };
            assert_eq!(d.results[0].status, want, "{d:?}");
            g.bench_with_input(
                BenchmarkId::new(format!("{case}_verify"), s),
                &input,
                |b, input| {
                    b.iter(|| {
                        let d = vi.decide_with(black_box(input), &env, Some(&cx));
                        assert_eq!(d.allowed, pass);
                        d
                    })
                },
            );
            let memo = Verifier::new(&root).unwrap().with_memo(4096, 3600);
            let mcx = VerifyImagesContext::new(&evidence, &memo, NOW);
            g.bench_with_input(
                BenchmarkId::new(format!("{case}_memo"), s),
                &input,
                |b, input| {
                    b.iter(|| {
                        let d = vi.decide_with(black_box(input), &env, Some(&mcx));
                        assert_eq!(d.allowed, pass);
                        d
                    })
                },
            );
            g.bench_with_input(
                BenchmarkId::new(format!("{case}_cold_layout"), s),
                &input,
                |b, input| {
                    b.iter(|| {
                        let evidence = gather_from(&rt, &dir, &vi, input);
                        let cx = VerifyImagesContext::new(&evidence, &verifier, NOW);
                        let d = vi.decide_with(black_box(input), &env, Some(&cx));
                        assert_eq!(d.allowed, pass);
                        d
                    })
                },
            );
        }
    }
    // More layers than are examined: refused before any verification.
    let signers: Vec<&SigningKey> = untrusted.iter().collect();
    let dir = tmp.path().join("sigs-flooded");
    rt.block_on(multi_signed_image(&dir, &signers));
    let evidence = gather_from(&rt, &dir, &vi, &input);
    assert_eq!(evidence.values().next().unwrap().signatures.len(), FLOODED);
    let cx = VerifyImagesContext::new(&evidence, &verifier, NOW);
    g.throughput(Throughput::Elements(FLOODED as u64));
    g.bench_with_input(BenchmarkId::new("flooded", FLOODED), &input, |b, input| {
        b.iter(|| {
            let d = vi.decide_with(black_box(input), &env, Some(&cx));
            assert!(!d.allowed);
            d
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
