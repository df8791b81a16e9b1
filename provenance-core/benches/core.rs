//! Benchmarks of provenance-core's hot paths: reference parsing, wildcard matching, hashing.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use provenance_core::wildcard::wildcard_match;
use provenance_core::{Digest, DigestAlgorithm, ImageReference};

fn references(c: &mut Criterion) {
    c.bench_function("reference/parse_normalized", |b| {
        b.iter(|| ImageReference::parse(black_box("nvcr.io/nim/meta/llama3-8b-instruct:1.0.0")))
    });
    c.bench_function("reference/parse_digest", |b| {
        b.iter(|| {
            ImageReference::parse(black_box(
                "ghcr.io/org/model@sha256:dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9c",
            ))
        })
    });
    c.bench_function("wildcard/image_pattern", |b| {
        b.iter(|| {
            wildcard_match(
                black_box("registry.example.com/ml/*"),
                black_box("registry.example.com/ml/team/llama:3.1"),
            )
        })
    });
}

fn hashing(c: &mut Criterion) {
    let data = vec![0x5au8; 16 << 20];
    let mut g = c.benchmark_group("digest");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.sample_size(20);
    g.bench_function("sha256_16MiB", |b| {
        b.iter(|| Digest::compute(DigestAlgorithm::Sha256, black_box(&data)))
    });
    g.finish();
}

criterion_group!(benches, references, hashing);
criterion_main!(benches);
