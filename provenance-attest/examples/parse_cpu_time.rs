//! Parses a file repeatedly and prints the mean time per parse, for measurements on a busy
//! machine: run it under `/usr/bin/time -f "%U user %e wall"` and divide the user CPU time by
//! the iterations (the wall time includes waiting for a core; the user time does not).
//!
//! `cargo run --release -p provenance-attest --example parse_cpu_time -- <cyclonedx|statement|value> FILE N`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::time::Instant;

use provenance_attest::cyclonedx::Bom;
use provenance_attest::{Limits, Predicate, Statement};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (kind, path, n) = match args.as_slice() {
        [_, k, p, n] => (k.as_str(), p.as_str(), n.parse::<u32>().unwrap()),
        _ => panic!("usage: parse_cpu_time <cyclonedx|statement|value> FILE ITERATIONS"),
    };
    let bytes = std::fs::read(path).unwrap();
    let limits = Limits::default();
    let start = Instant::now();
    for _ in 0..n {
        match kind {
            "cyclonedx" => {
                black_box(Bom::from_json(black_box(&bytes)).unwrap());
            }
            "statement" => {
                let st = Statement::from_json(black_box(&bytes)).unwrap();
                black_box(Predicate::from_statement(&st, &limits).unwrap());
            }
            "value" => {
                black_box(serde_json::from_slice::<serde_json::Value>(black_box(&bytes)).unwrap());
            }
            other => panic!("unknown kind {other}"),
        }
    }
    let wall = start.elapsed();
    println!(
        "{kind} {path}: {} bytes, {n} iterations, wall {:?} per parse",
        bytes.len(),
        wall / n
    );
}
