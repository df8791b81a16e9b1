//! An inference Pod with 2 containers and 1 image volume (examples/ai-workloads, Pod
//! `llm-inference`) through all four AI-workload policies:
//!
//! - `warm`: evidence already in memory, verifier built once, a warm `VerifyImagesCache`
//!   (passed checks bound to rule, digest and trust root are reused): one `decide_with` per
//!   iteration, as a webhook re-admitting known images does;
//! - `warm_verify`: the same without the result cache: every signature and attestation is
//!   verified again (the verifier's own memo skips the cryptography, not the parsing);
//! - `cold_layout`: per iteration, open the OCI layout on disk, list the image requests, gather
//!   (resolve + discovery of 3 images, concurrently) and decide; verifier built once;
//! - `cold_layout_and_trust_root`: the same plus parsing the trust root and building the
//!   verifier.
//!
//! Run: `cargo bench -p provenance-cli --bench ai_workloads`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use provenance_core::verify::Verifier;
use provenance_core::{TrustRoot, UnixTime};
use provenance_oci::LayoutSource;
use provenance_policy::kyverno::verify_images::VerifyImagesContext;
use provenance_policy::lang::jmespath::Env;

#[path = "../src/apply.rs"]
#[allow(dead_code)]
mod apply;
#[path = "../src/cluster_data.rs"]
#[allow(dead_code)]
mod cluster_data;

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../ai-workloads")
}

fn bench(c: &mut Criterion) {
    let ex = example();
    let policies = apply::load_policies(&[ex.join("policies")]).unwrap();
    assert_eq!(policies.policies().len(), 4);
    let docs = apply::load_resources(&[ex.join("workloads")]).unwrap();
    let mut labels = std::collections::BTreeMap::new();
    labels.insert(
        "ml-serving".to_owned(),
        [("purpose".to_owned(), "ai-inference".to_owned())].into(),
    );
    let pod = docs
        .into_iter()
        .find(|d| d["metadata"]["name"] == "llm-inference")
        .unwrap();
    let input = apply::resource_inputs(vec![pod], &labels).pop().unwrap();
    let layout_dir = ex.join("registry");
    let root_bytes = std::fs::read(layout_dir.join("trusted_root.json")).unwrap();
    let verifier = Verifier::new(&TrustRoot::from_trusted_root_json(&root_bytes).unwrap())
        .unwrap()
        .with_memo(4096, 3600);
    let now = UnixTime(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64,
    );
    let env = Env::at(now);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    let requests = policies.image_requests(&input);
    let distinct: std::collections::BTreeSet<&str> =
        requests.iter().map(|r| r.reference.as_str()).collect();
    assert_eq!(distinct.len(), 3, "2 containers + 1 image volume");
    let layout = LayoutSource::open(&layout_dir).unwrap();
    let evidence = rt.block_on(apply::gather(Arc::new(layout), &requests, 8));
    let cache = provenance_policy::kyverno::verify_images::VerifyImagesCache::new(4096, 3600);
    let cached = VerifyImagesContext::new(&evidence, &verifier, now).with_cache(Some(&cache));
    let d = policies.decide_with(&input, &env, Some(&cached));
    assert!(d.allowed, "{}", d.message);
    assert_eq!(d.results.len(), 4, "{:?}", d.results);
    assert!(!cache.is_empty(), "passes are cached");
    let cx = VerifyImagesContext::new(&evidence, &verifier, now);

    let mut g = c.benchmark_group("ai_workloads_inference_pod");
    g.bench_function("warm", |b| {
        b.iter(|| {
            let d = policies.decide_with(black_box(&input), &env, Some(&cached));
            assert!(d.allowed);
            d
        })
    });
    g.bench_function("warm_verify", |b| {
        b.iter(|| {
            let d = policies.decide_with(black_box(&input), &env, Some(&cx));
            assert!(d.allowed);
            d
        })
    });
    g.bench_function("cold_layout", |b| {
        b.iter(|| {
            let layout = LayoutSource::open(&layout_dir).unwrap();
            let requests = policies.image_requests(&input);
            let evidence = rt.block_on(apply::gather(Arc::new(layout), &requests, 8));
            let cx = VerifyImagesContext::new(&evidence, &verifier, now);
            let d = policies.decide_with(black_box(&input), &env, Some(&cx));
            assert!(d.allowed);
            d
        })
    });
    g.bench_function("cold_layout_and_trust_root", |b| {
        b.iter(|| {
            let verifier =
                Verifier::new(&TrustRoot::from_trusted_root_json(&root_bytes).unwrap()).unwrap();
            let layout = LayoutSource::open(&layout_dir).unwrap();
            let requests = policies.image_requests(&input);
            let evidence = rt.block_on(apply::gather(Arc::new(layout), &requests, 8));
            let cx = VerifyImagesContext::new(&evidence, &verifier, now);
            let d = policies.decide_with(black_box(&input), &env, Some(&cx));
            assert!(d.allowed);
            d
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = bench
}
criterion_main!(benches);
