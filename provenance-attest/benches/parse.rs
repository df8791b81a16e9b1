//! Parsing costs: DSSE + in-toto Statement + SLSA v1, and a large CycloneDX SBOM.
//!
//! `cargo bench -p provenance-attest --bench parse`. Set `ATTEST_BENCH_BOM_OUT=<path>` to also
//! write the generated SBOM there (for comparing with other parsers, see
//! `docs/performance-attest.md`).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;

use base64::Engine;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use provenance_attest::cyclonedx::Bom;
use provenance_attest::{Envelope, Limits, Predicate, Statement};
use serde_json::{Value, json};

fn slsa_v1_statement() -> Vec<u8> {
    let deps: Vec<Value> = (0..8)
        .map(|i| {
            json!({"uri": format!("git+https://github.com/org/dep{i}@refs/heads/main"),
                   "digest": {"gitCommit": format!("{:040x}", i as u128 * 7919)}})
        })
        .collect();
    serde_json::to_vec(&json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "ghcr.io/org/model-server",
                     "digest": {"sha256": format!("{:064x}", 42u128)}}],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {
            "buildDefinition": {
                "buildType": "https://actions.github.io/buildtypes/workflow/v1",
                "externalParameters": {"workflow": {"ref": "refs/heads/main",
                    "repository": "https://github.com/org/model-server", "path": ".github/workflows/release.yml"}},
                "internalParameters": {"github": {"event_name": "push", "repository_id": "1", "repository_owner_id": "2"}},
                "resolvedDependencies": deps},
            "runDetails": {
                "builder": {"id": "https://github.com/actions/runner/github-hosted"},
                "metadata": {"invocationId": "https://github.com/org/model-server/actions/runs/1/attempts/1",
                             "startedOn": "2026-01-01T00:00:00Z", "finishedOn": "2026-01-01T00:10:00Z"}}}
    }))
    .unwrap()
}

/// A CycloneDX 1.6 SBOM with `n` library components, each with a purl, two hashes, a license
/// and an external reference, plus one ML model and one dataset.
pub fn large_bom(n: usize) -> Vec<u8> {
    let mut components: Vec<Value> = (0..n)
        .map(|i| {
            let license = ["MIT", "Apache-2.0", "BSD-3-Clause"][i % 3];
            json!({
                "type": "library", "bom-ref": format!("pkg:pypi/package-{i}@1.{}.{}", i % 17, i % 5),
                "name": format!("package-{i}"), "version": format!("1.{}.{}", i % 17, i % 5),
                "description": "A library used by the inference server, generated for benchmarking.",
                "purl": format!("pkg:pypi/package-{i}@1.{}.{}", i % 17, i % 5),
                "hashes": [{"alg": "SHA-256", "content": format!("{:064x}", i as u128 * 2654435761)},
                           {"alg": "SHA-1", "content": format!("{:040x}", i as u128 * 40503)}],
                "licenses": [{"license": {"id": license}}],
                "externalReferences": [{"type": "distribution", "url": format!("https://pypi.org/project/package-{i}/")}],
                "properties": [{"name": "cdx:pypi:index", "value": "https://pypi.org/simple"}]
            })
        })
        .collect();
    components.push(json!({"type": "machine-learning-model", "name": "llama-ft", "bom-ref": "model",
        "modelCard": {"modelParameters": {"task": "text-generation", "datasets": [{"ref": "data"}]}}}));
    components.push(json!({"type": "data", "name": "tickets", "bom-ref": "data",
        "data": [{"type": "dataset", "contents": {"url": "s3://bucket/tickets"}}]}));
    let dependencies: Vec<Value> = (0..n)
        .map(|i| json!({"ref": format!("pkg:pypi/package-{i}@1.{}.{}", i % 17, i % 5), "dependsOn": []}))
        .collect();
    serde_json::to_vec(&json!({
        "bomFormat": "CycloneDX", "specVersion": "1.6", "version": 1,
        "serialNumber": "urn:uuid:3e671687-395b-41f5-a30f-a58921a69b79",
        "metadata": {"timestamp": "2026-01-01T00:00:00Z",
                     "tools": {"components": [{"type": "application", "name": "generator"}]}},
        "components": components, "dependencies": dependencies
    }))
    .unwrap()
}

fn bench(c: &mut Criterion) {
    let limits = Limits::default();
    let statement = slsa_v1_statement();
    let envelope = serde_json::to_vec(&json!({
        "payloadType": "application/vnd.in-toto+json",
        "payload": base64::engine::general_purpose::STANDARD.encode(&statement),
        "signatures": [{"keyid": "", "sig": "MEUCIQ=="}]
    }))
    .unwrap();

    let mut g = c.benchmark_group("statement");
    g.throughput(Throughput::Bytes(statement.len() as u64));
    g.bench_function("statement_v1", |b| {
        b.iter(|| Statement::from_json(black_box(&statement)).unwrap())
    });
    g.bench_function("statement_v1+slsa_v1", |b| {
        b.iter(|| {
            let st = Statement::from_json(black_box(&statement)).unwrap();
            Predicate::from_statement(&st, &limits).unwrap()
        })
    });
    g.bench_function("dsse+statement_v1+slsa_v1", |b| {
        b.iter(|| {
            let env = Envelope::from_json(black_box(&envelope)).unwrap();
            let st = env.statement(&limits).unwrap();
            Predicate::from_statement(&st, &limits).unwrap()
        })
    });
    g.finish();

    let bom = large_bom(12_000);
    if let Some(path) = std::env::var_os("ATTEST_BENCH_BOM_OUT") {
        std::fs::write(path, &bom).unwrap();
    }
    let parsed = Bom::from_json(&bom).unwrap();
    assert!(bom.len() >= 5 << 20 && parsed.all_components().count() >= 10_000);
    eprintln!(
        "large CycloneDX: {} bytes, {} components",
        bom.len(),
        parsed.all_components().count()
    );
    let mut g = c.benchmark_group("cyclonedx_large");
    g.sample_size(20);
    g.throughput(Throughput::Bytes(bom.len() as u64));
    g.bench_function("typed Bom::from_json", |b| {
        b.iter(|| Bom::from_json(black_box(&bom)).unwrap())
    });
    g.bench_function("serde_json::Value only", |b| {
        b.iter(|| serde_json::from_slice::<Value>(black_box(&bom)).unwrap())
    });
    g.bench_function(
        "Value + Predicate::parse (typed + JSON for conditions)",
        |b| {
            b.iter(|| {
                let v: Value = serde_json::from_slice(black_box(&bom)).unwrap();
                Predicate::parse("https://cyclonedx.org/bom", v, &limits).unwrap()
            })
        },
    );
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
