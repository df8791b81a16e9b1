//! Benchmarks: the OCI layout read path (shared cosign layout), digest-checked blob fetches
//! and cold signature discovery from a loopback `docker-registry`.
//!
//! `cargo bench -p provenance-oci --bench oci`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use provenance_core::ImageReference;
use provenance_oci::{EvidenceSource, LayoutSource};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn layout(c: &mut Criterion) {
    let Some(shared) = common::shared_dir() else {
        eprintln!("SKIPPED: ../shared not found");
        return;
    };
    let dir = shared.join("corpora/predicates/oci-cosign-layout/layout");
    let img = ImageReference::parse(
        "ghcr.io/x/y@sha256:e0a0a765d690a5104331cfbac88ebbbf01736c1f87aaa3cd455c516a5ea586a5",
    )
    .unwrap();
    let d = img.digest().unwrap();
    let rt = rt();
    let mut g = c.benchmark_group("layout");
    g.bench_function("open + attestations (cosign layout, 14 KB DSSE)", |b| {
        b.to_async(&rt).iter(|| async {
            let l = LayoutSource::open(&dir).unwrap();
            let a = l.attestations(&img, &d, None).await.unwrap();
            assert_eq!(a.len(), 1);
        })
    });
    let l = LayoutSource::open(&dir).unwrap();
    g.bench_function("attestations (opened layout)", |b| {
        b.to_async(&rt).iter(|| async {
            assert_eq!(l.attestations(&img, &d, None).await.unwrap().len(), 1);
        })
    });
    g.finish();
}

fn registry(c: &mut Criterion) {
    let Some(reg) = common::TestRegistry::start() else {
        return;
    };
    let rt = rt();
    let mut blobs = Vec::new();
    let (img, digest) = rt.block_on(async {
        let p = reg.pusher();
        for size in [64 << 10, 1 << 20, 16 << 20] {
            let bytes: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
            blobs.push((size, p.blob("bench/app", &bytes).await));
        }
        let (d, _, _) = p.image("bench/app", "v1", b"layer", "amd64").await;
        p.artifact(
            "bench/app",
            &format!("sha256-{}.sig", d.hex()),
            &[(
                "application/vnd.dev.cosign.simplesigning.v1+json",
                vec![b'{'; 400],
                serde_json::json!({"dev.cosignproject.cosign/signature": "AA=="}),
            )],
            serde_json::Value::Null,
        )
        .await;
        (reg.reference("bench/app:v1"), d)
    });
    let client = reg.client();
    let mut g = c.benchmark_group("registry");
    g.measurement_time(Duration::from_secs(5));
    for (size, d) in &blobs {
        g.throughput(Throughput::Bytes(*size as u64));
        g.bench_function(format!("blob {} KiB digest-checked", size >> 10), |b| {
            b.to_async(&rt).iter(|| async {
                let v = client.blob(&img, d, 64 << 20).await.unwrap();
                assert_eq!(v.len(), *size);
            })
        });
    }
    g.throughput(Throughput::Elements(1));
    g.bench_function("resolve tag (HEAD)", |b| {
        b.to_async(&rt)
            .iter(|| async { client.resolve(&img).await.unwrap() })
    });
    g.bench_function(
        "signatures, cold (new client: .sig + blob + referrers + fallback)",
        |b| {
            b.to_async(&rt).iter(|| async {
                let c = reg.client();
                let s = c.signatures(&img, &digest, None).await.unwrap();
                assert_eq!(s.len(), 1);
            })
        },
    );
    g.bench_function("signatures, shared client (4 requests)", |b| {
        b.to_async(&rt).iter(|| async {
            let s = client.signatures(&img, &digest, None).await.unwrap();
            assert_eq!(s.len(), 1);
        })
    });
    g.bench_function("RegistryClient::new", |b| b.iter(|| reg.client()));
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).warm_up_time(Duration::from_secs(1));
    targets = layout, registry
}
criterion_main!(benches);
