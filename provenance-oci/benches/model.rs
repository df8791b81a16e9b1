//! Model-folder hashing throughput: cold (every byte read, page cache warm) vs digest-cache
//! hits, on a generated folder of several files. Size: `MODEL_BENCH_BYTES` (default 256 MiB,
//! split over 5 files). Throughput is reported in bytes/s by criterion.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::Write;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use provenance_oci::model::{IgnoreSet, Method, VerifyOptions, compute_manifest};

fn folder(total: u64) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let per = total / 5;
    let mut block = vec![0u8; 1 << 20];
    for (i, b) in block.iter_mut().enumerate() {
        *b = (i.wrapping_mul(2_654_435_761) >> 13) as u8;
    }
    for f in 0..5u8 {
        let mut file =
            std::fs::File::create(dir.path().join(format!("model-{f}.safetensors"))).unwrap();
        let mut left = per;
        while left > 0 {
            block[0] = f;
            let n = left.min(block.len() as u64) as usize;
            file.write_all(&block[..n]).unwrap();
            left -= n as u64;
        }
    }
    dir
}

fn bench(c: &mut Criterion) {
    let total: u64 = std::env::var("MODEL_BENCH_BYTES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(256 << 20);
    let dir = folder(total);
    let ignore = IgnoreSet::default().with_git_paths();
    let mut g = c.benchmark_group("model");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(total));
    g.bench_function("hash_files_cold", |b| {
        b.iter(|| {
            compute_manifest(
                dir.path(),
                Method::Files,
                &ignore,
                &VerifyOptions::default(),
                None,
            )
            .unwrap()
        })
    });
    g.bench_function("hash_shards_1GB_cold", |b| {
        b.iter(|| {
            compute_manifest(
                dir.path(),
                Method::Shards(1_000_000_000),
                &ignore,
                &VerifyOptions::default(),
                None,
            )
            .unwrap()
        })
    });
    g.bench_function("hash_shards_64MiB_cold", |b| {
        b.iter(|| {
            compute_manifest(
                dir.path(),
                Method::Shards(64 << 20),
                &ignore,
                &VerifyOptions::default(),
                None,
            )
            .unwrap()
        })
    });
    let cache_dir = tempfile::tempdir().unwrap();
    let cached = VerifyOptions {
        cache: Some(cache_dir.path().join("digests.json")),
        ..VerifyOptions::default()
    };
    // Files modified within the racy window are not cached: let them age first.
    std::thread::sleep(std::time::Duration::from_nanos(
        provenance_oci::model::hash::RACY_WINDOW_NS as u64 + 200_000_000,
    ));
    compute_manifest(dir.path(), Method::Files, &ignore, &cached, None).unwrap();
    g.bench_function("rehash_files_cache_hit", |b| {
        b.iter(|| compute_manifest(dir.path(), Method::Files, &ignore, &cached, None).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
