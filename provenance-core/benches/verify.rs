//! Benchmarks of signature verification: a key-based cosign signature (target <= 80 us) and a
//! keyless Sigstore bundle v0.3 (target <= 500 us), each with a prepared [`Verifier`].
//!
//! `cargo bench -p provenance-core --bench verify`; numbers in `docs/performance-verify.md`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::{Path, PathBuf};

use base64::Engine;
use criterion::measurement::{Measurement, ValueFormatter};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use provenance_core::verify::{
    Artifact, Expectation, IdentityExpectation, SignatureMaterial, Verifier,
};
use provenance_core::{CosignSignature, Digest, PublicKey, TrustRoot, UnixTime};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sigstore");

fn read(dir: &Path, name: &str) -> Vec<u8> {
    std::fs::read(dir.join(name)).unwrap()
}

fn json(dir: &Path, name: &str) -> serde_json::Value {
    serde_json::from_slice(&read(dir, name)).unwrap()
}

fn cosign_layer(dir: &Path) -> (CosignSignature, Digest, Verifier, PublicKey, UnixTime) {
    let layer = json(dir, "cosign-layer.json");
    let expect = json(dir, "expect.json");
    let payload = base64::engine::general_purpose::STANDARD
        .decode(layer["payload"].as_str().unwrap())
        .unwrap();
    let annotations: BTreeMap<String, String> = layer["annotations"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect();
    let root = TrustRoot::from_trusted_root_json(&read(dir, "trusted_root.json")).unwrap();
    (
        CosignSignature::new(payload, annotations),
        Digest::parse(expect["image_digest"].as_str().unwrap()).unwrap(),
        Verifier::new(&root).unwrap(),
        PublicKey::from_pem(std::str::from_utf8(&read(dir, "key.pub")).unwrap()).unwrap(),
        UnixTime(expect["now"].as_i64().unwrap()),
    )
}

fn cosign<M: Measurement + 'static>(c: &mut Criterion<M>, p: &str) {
    // Key-only cosign layer: payload checks + one ECDSA P-256 verification.
    let dir = Path::new(FIXTURES).join("cosign-key-only");
    let (sig, digest, verifier, key, now) = cosign_layer(&dir);
    let material = SignatureMaterial::Cosign(sig);
    let expectation = Expectation::Key {
        key,
        allow_no_transparency: true,
    };
    verifier
        .verify(Artifact::Digest(&digest), &material, &expectation, now)
        .unwrap();
    c.bench_function(&format!("{p}verify/cosign_key_signature"), |b| {
        b.iter(|| {
            verifier
                .verify(
                    Artifact::Digest(black_box(&digest)),
                    black_box(&material),
                    &expectation,
                    now,
                )
                .unwrap()
        })
    });

    // Key-based cosign layer with a Rekor SET (as `cosign sign --key` writes by default).
    let dir = Path::new(FIXTURES).join("cosign-key-set");
    let (sig, digest, verifier, key, now) = cosign_layer(&dir);
    let material = SignatureMaterial::Cosign(sig);
    let expectation = Expectation::key(key);
    verifier
        .verify(Artifact::Digest(&digest), &material, &expectation, now)
        .unwrap();
    c.bench_function(&format!("{p}verify/cosign_key_signature_with_set"), |b| {
        b.iter(|| {
            verifier
                .verify(
                    Artifact::Digest(black_box(&digest)),
                    black_box(&material),
                    &expectation,
                    now,
                )
                .unwrap()
        })
    });
}

fn keyless<M: Measurement + 'static>(c: &mut Criterion<M>, p: &str) {
    // The project's own keyless v0.3 bundle (mock Fulcio chain, SCT, Rekor v1 SET + inclusion
    // proof + checkpoint, RFC 3161 timestamp).
    let dir = Path::new(FIXTURES).join("keyless-msg-v0.3");
    let expect = json(&dir, "expect.json");
    let root = TrustRoot::from_trusted_root_json(&read(&dir, "trusted_root.json")).unwrap();
    let verifier = Verifier::new(&root).unwrap();
    let material = SignatureMaterial::Bundle(read(&dir, "bundle.sigstore.json"));
    let artifact = read(&dir, "artifact");
    let expectation = Expectation::Keyless(IdentityExpectation::exact(
        expect["identity"].as_str().unwrap(),
        expect["issuer"].as_str().unwrap(),
    ));
    let now = UnixTime(expect["now"].as_i64().unwrap());
    verifier
        .verify(Artifact::Bytes(&artifact), &material, &expectation, now)
        .unwrap();
    c.bench_function(&format!("{p}verify/keyless_bundle_v0.3_with_tsa"), |b| {
        b.iter(|| {
            verifier
                .verify(
                    Artifact::Bytes(black_box(&artifact)),
                    black_box(&material),
                    &expectation,
                    now,
                )
                .unwrap()
        })
    });

    // The conformance suite's public-good happy path v0.3 (real Fulcio, CT log, Rekor).
    let shared = std::env::var_os("PROVENANCE_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared")));
    let conf = shared.join("corpora/sigstore-conformance");
    if !conf.join("happy-path-v0.3").is_dir() {
        println!(
            "SKIPPED: conformance corpus not found at {}",
            conf.display()
        );
        return;
    }
    let root = TrustRoot::from_trusted_root_json(provenance_core::verify::PUBLIC_GOOD_TRUSTED_ROOT)
        .unwrap();
    let verifier = Verifier::new(&root).unwrap();
    let material =
        SignatureMaterial::Bundle(read(&conf.join("happy-path-v0.3"), "bundle.sigstore.json"));
    let artifact = read(&conf, "a.txt");
    let expectation = Expectation::Keyless(IdentityExpectation::exact(
        "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main",
        "https://token.actions.githubusercontent.com",
    ));
    let now = UnixTime::parse_rfc3339("2026-01-01T00:00:00Z").unwrap();
    verifier
        .verify(Artifact::Bytes(&artifact), &material, &expectation, now)
        .unwrap();
    c.bench_function(&format!("{p}verify/keyless_bundle_v0.3_public_good"), |b| {
        b.iter(|| {
            verifier
                .verify(
                    Artifact::Bytes(black_box(&artifact)),
                    black_box(&material),
                    &expectation,
                    now,
                )
                .unwrap()
        })
    });
    c.bench_function(&format!("{p}verify/verifier_new_public_good"), |b| {
        b.iter(|| Verifier::new(black_box(&root)).unwrap())
    });
}

/// The pieces a verification is made of, to read the totals above against this machine.
fn parts<M: Measurement + 'static>(c: &mut Criterion<M>, p: &str) {
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{self as sig, EcdsaKeyPair, KeyPair, UnparsedPublicKey};
    let rng = SystemRandom::new();
    let msg = b"provenance";
    for (name, signing, verifying) in [
        (
            "parts/ecdsa_p256_sha256_verify",
            &sig::ECDSA_P256_SHA256_ASN1_SIGNING,
            &sig::ECDSA_P256_SHA256_ASN1,
        ),
        (
            "parts/ecdsa_p384_sha384_verify",
            &sig::ECDSA_P384_SHA384_ASN1_SIGNING,
            &sig::ECDSA_P384_SHA384_ASN1,
        ),
    ] {
        let kp = EcdsaKeyPair::generate(signing).unwrap();
        let s = kp.sign(&rng, msg).unwrap();
        let pk = UnparsedPublicKey::new(verifying, kp.public_key().as_ref().to_vec());
        c.bench_function(&format!("{p}{name}"), |b| {
            b.iter(|| pk.verify(black_box(msg), black_box(s.as_ref())).unwrap())
        });
    }
    let dir = Path::new(FIXTURES).join("keyless-msg-v0.3");
    let text = String::from_utf8(read(&dir, "bundle.sigstore.json")).unwrap();
    c.bench_function(&format!("{p}parts/parse_bundle_json"), |b| {
        b.iter(|| sigstore_verify::types::Bundle::from_json(black_box(&text)).unwrap())
    });
}

/// Thread CPU time (`CLOCK_THREAD_CPUTIME_ID`): what one verification costs on this CPU,
/// whatever else the machine is doing (the wall-clock numbers above include waiting for a core
/// on a shared machine).
struct ThreadCpuTime;

fn thread_cpu_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

impl Measurement for ThreadCpuTime {
    type Intermediate = u64;
    type Value = u64;
    fn start(&self) -> u64 {
        thread_cpu_ns()
    }
    fn end(&self, i: u64) -> u64 {
        thread_cpu_ns().saturating_sub(i)
    }
    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }
    fn zero(&self) -> u64 {
        0
    }
    fn to_f64(&self, v: &u64) -> f64 {
        *v as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &CpuFormatter
    }
}

struct CpuFormatter;

impl ValueFormatter for CpuFormatter {
    fn scale_values(&self, typical: f64, values: &mut [f64]) -> &'static str {
        let (div, unit) = if typical < 1e3 {
            (1.0, "ns cpu")
        } else if typical < 1e6 {
            (1e3, "µs cpu")
        } else {
            (1e6, "ms cpu")
        };
        values.iter_mut().for_each(|v| *v /= div);
        unit
    }
    fn scale_throughputs(&self, _: f64, _: &Throughput, values: &mut [f64]) -> &'static str {
        values.iter_mut().for_each(|v| *v = 0.0);
        "n/a"
    }
    fn scale_for_machines(&self, _: &mut [f64]) -> &'static str {
        "ns"
    }
}

fn wall_clock(c: &mut Criterion) {
    cosign(c, "");
    keyless(c, "");
    parts(c, "");
}

fn cpu_time(c: &mut Criterion<ThreadCpuTime>) {
    cosign(c, "cpu/");
    keyless(c, "cpu/");
    parts(c, "cpu/");
}

criterion_group!(benches, wall_clock);
criterion_group! {
    name = cpu_benches;
    config = Criterion::default().with_measurement(ThreadCpuTime);
    targets = cpu_time
}
criterion_main!(benches, cpu_benches);
