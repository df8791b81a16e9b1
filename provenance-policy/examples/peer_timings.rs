//! In-process timing loops for the side-by-side comparison with other implementations
//! (`scripts/bench-peers.sh`): each mode prepares once (trust root, compiled expression), checks
//! the result once, then repeats the operation for a number of seconds and prints the mean wall
//! and thread-CPU time per operation, in the same one-line format as the peers' loops.
//!
//! ```text
//! peer_timings jmespath EXPRESSION DOCUMENT.json EXPECTED_JSON SECONDS
//! peer_timings cel EXPRESSION OBJECT.json EXPECTED(true|false) SECONDS   (the document is `object`)
//! peer_timings cyclonedx BOM.json - SECONDS
//! peer_timings bundle DIR SECONDS   (DIR: bundle.sigstore.json, artifact, trusted_root.json, expect.json)
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Nanoseconds this thread has spent on a CPU (Linux `schedstat`); `None` elsewhere.
fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

fn time(label: &str, seconds: f64, mut op: impl FnMut()) {
    op();
    let budget = Duration::from_secs_f64(seconds);
    let (start, cpu0) = (Instant::now(), thread_cpu_ns());
    let mut n: u64 = 0;
    while start.elapsed() < budget {
        for _ in 0..16 {
            op();
        }
        n += 16;
    }
    let wall = start.elapsed().as_secs_f64() / n as f64 * 1e6;
    let cpu = match (cpu0, thread_cpu_ns()) {
        (Some(a), Some(b)) => format!("{:.2}", (b - a) as f64 / n as f64 / 1e3),
        _ => "n/a".to_owned(),
    };
    println!("{label}: {wall:.2} us wall, {cpu} us cpu per op ({n} iterations)");
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    match a.as_slice() {
        ["jmespath", expr, doc, expected, secs] => {
            use provenance_policy::lang::jmespath::{Env, Expression};
            let doc: Value = serde_json::from_slice(&read(Path::new(doc))).unwrap();
            let expected: Value = serde_json::from_str(expected).unwrap();
            let e = Expression::compile(expr).unwrap();
            let env = Env::default();
            assert_eq!(e.search_with(&doc, &env).unwrap(), expected, "{expr}");
            time("provenance jmespath", secs.parse().unwrap(), || {
                black_box(e.search_with(black_box(&doc), &env).unwrap());
            });
        }
        ["cel", expr, object, expected, secs] => {
            use provenance_policy::lang::cel::{PolicyInput, Program, RequestView, VariableScope};
            let object: Value = serde_json::from_slice(&read(Path::new(object))).unwrap();
            let expected: bool = expected.parse().unwrap();
            let program = Program::compile(expr).unwrap();
            let input = PolicyInput::create(object);
            {
                let view = RequestView::new(&input);
                let scope = VariableScope::empty(&view);
                assert_eq!(program.evaluate_bool(&scope).unwrap(), expected, "{expr}");
            }
            // Binding included: the peer binds its activation on every evaluation too.
            time("provenance cel", secs.parse().unwrap(), || {
                let view = RequestView::new(black_box(&input));
                let scope = VariableScope::empty(&view);
                black_box(program.evaluate_bool(&scope).unwrap());
            });
        }
        ["cyclonedx", bom, _, secs] => {
            let bytes = read(Path::new(bom));
            provenance_attest::cyclonedx::Bom::from_json(&bytes).unwrap();
            time("provenance cyclonedx", secs.parse().unwrap(), || {
                black_box(provenance_attest::cyclonedx::Bom::from_json(black_box(&bytes)).unwrap());
            });
        }
        ["bundle", dir, secs] => {
            use provenance_core::verify::{
                Artifact, Expectation, IdentityExpectation, SignatureMaterial, Verifier,
            };
            use provenance_core::{TrustRoot, UnixTime};
            let dir = Path::new(dir);
            let expect: Value = serde_json::from_slice(&read(&dir.join("expect.json"))).unwrap();
            let root =
                TrustRoot::from_trusted_root_json(&read(&dir.join("trusted_root.json"))).unwrap();
            // No memo: every iteration verifies from scratch, as the peers do.
            let verifier = Verifier::new(&root).unwrap();
            let material = SignatureMaterial::Bundle(read(&dir.join("bundle.sigstore.json")));
            let artifact = read(&dir.join("artifact"));
            let expectation = Expectation::Keyless(IdentityExpectation::exact(
                expect["identity"].as_str().unwrap(),
                expect["issuer"].as_str().unwrap(),
            ));
            let now = UnixTime(expect["now"].as_i64().unwrap());
            time("provenance bundle", secs.parse().unwrap(), || {
                black_box(
                    verifier
                        .verify(
                            Artifact::Bytes(black_box(&artifact)),
                            &material,
                            &expectation,
                            now,
                        )
                        .unwrap(),
                );
            });
        }
        _ => {
            eprintln!("usage: see the module documentation of examples/peer_timings.rs");
            std::process::exit(2);
        }
    }
}
