//! Benchmarks: a TUF trust-root refresh against the python-tuf repository of
//! `tests/fixtures/tuf/v1` served on loopback: cold (empty cache folder: root, timestamp,
//! snapshot, targets and the 6 KB trusted_root.json fetched and verified), warm (cache
//! folder populated, nothing changed: the next-root probe and the timestamp are fetched, the
//! rest is verified from the cache), and offline re-verification of the cache folder.
//!
//! `cargo bench -p provenance-oci --bench tuf`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};

use common::{FaultServer, http_response};
use criterion::{Criterion, criterion_group, criterion_main};
use provenance_core::UnixTime;
use provenance_oci::tuf::{TrustRootUpdater, TufConfig};

const NOW: UnixTime = UnixTime(1_798_761_600);

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tuf")
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn serve(state: &str) -> FaultServer {
    let base = fixtures().join(state);
    FaultServer::start(move |req| {
        let path = req.split_whitespace().nth(1).unwrap_or("/").to_owned();
        let file = match path.strip_prefix("/targets/") {
            Some(t) => base.join("targets").join(t),
            None => base.join("metadata").join(path.trim_start_matches('/')),
        };
        Some(match std::fs::read(&file) {
            Ok(body) if !path.contains("..") => http_response("200 OK", &[], &body),
            _ => http_response("404 Not Found", &[], b""),
        })
    })
}

fn config(url: &str, cache: &Path) -> TufConfig {
    let mut c = TufConfig::new(
        url,
        std::fs::read(fixtures().join("root.json")).unwrap(),
        cache,
    );
    c.allow_http = true;
    c
}

fn refresh(c: &mut Criterion) {
    let server = serve("v1");
    let url = format!("http://{}", server.addr);
    let rt = rt();
    let mut g = c.benchmark_group("tuf");
    g.bench_function("refresh, cold (empty cache folder)", |b| {
        b.to_async(&rt).iter(|| async {
            let cache = tempfile::tempdir().unwrap();
            let mut u = TrustRootUpdater::new(config(&url, cache.path())).unwrap();
            assert_eq!(u.refresh(NOW).await.unwrap().root_version, 1);
        })
    });
    let cache = tempfile::tempdir().unwrap();
    rt.block_on(async {
        TrustRootUpdater::new(config(&url, cache.path()))
            .unwrap()
            .refresh(NOW)
            .await
            .unwrap();
    });
    g.bench_function("refresh, warm (cache folder current, new updater)", |b| {
        b.to_async(&rt).iter(|| async {
            let mut u = TrustRootUpdater::new(config(&url, cache.path())).unwrap();
            assert!(u.refresh(NOW).await.unwrap().changed);
        })
    });
    g.bench_function("load_cached (offline, cache folder re-verified)", |b| {
        b.to_async(&rt).iter(|| async {
            let mut u = TrustRootUpdater::new(config(&url, cache.path())).unwrap();
            u.load_cached(NOW).await.unwrap();
        })
    });
    g.finish();
}

criterion_group!(benches, refresh);
criterion_main!(benches);
