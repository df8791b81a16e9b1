//! Round trips over documents real tools generate (`scripts/generate-fixtures.sh`): PyPI
//! `cyclonedx-bom` (CycloneDX 1.4-1.6 JSON and 1.6 XML of a Python environment), `spdx-tools`
//! (SPDX 2.3 JSON it validated), `in-toto` (`in-toto-run --use-dsse`, Ed25519).
//!
//! Set `PROVENANCE_ATTEST_FIXTURES` to the script's output folder; without it the test prints
//! `SKIPPED` (generation needs PyPI, so it is not part of every run).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::PathBuf;

use provenance_attest::cyclonedx::Bom;
use provenance_attest::link::Link;
use provenance_attest::spdx::SpdxDocument;
use provenance_attest::{Envelope, Limits};
use provenance_core::{Digest, PublicKey};
use serde_json::Value;

fn fixtures() -> Option<PathBuf> {
    match std::env::var_os("PROVENANCE_ATTEST_FIXTURES") {
        Some(d) => Some(PathBuf::from(d)),
        None => {
            println!(
                "SKIPPED: set PROVENANCE_ATTEST_FIXTURES (run provenance-attest/scripts/generate-fixtures.sh)"
            );
            None
        }
    }
}

#[test]
fn cyclonedx_py_environment_sboms() {
    let Some(dir) = fixtures() else { return };
    let mut names_16 = BTreeSet::new();
    for v in ["1.4", "1.5", "1.6"] {
        let bytes = std::fs::read(dir.join(format!("cyclonedx-py-env-{v}.json"))).unwrap();
        let bom = Bom::from_json(&bytes).unwrap();
        let raw: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(bom.spec_version, v);
        assert_eq!(
            bom.components.len(),
            raw["components"].as_array().unwrap().len()
        );
        assert!(bom.components.len() > 10);
        assert!(bom.components.iter().all(|c| {
            c.purl
                .as_deref()
                .is_some_and(|p| p.starts_with("pkg:pypi/"))
        }));
        assert!(
            bom.components
                .iter()
                .any(|c| c.name == "cyclonedx-python-lib")
        );
        assert!(!bom.licenses().is_empty());
        assert_eq!(
            bom.dependencies.len(),
            raw["dependencies"].as_array().unwrap().len()
        );
        if v == "1.6" {
            names_16 = bom
                .components
                .iter()
                .map(|c| (c.name.clone(), c.version.clone()))
                .collect();
        }
        println!(
            "cyclonedx-py-env-{v}.json: ok, {} components, {} licenses",
            bom.components.len(),
            bom.licenses().len()
        );
    }
    let xml = std::fs::read_to_string(dir.join("cyclonedx-py-env-1.6.xml")).unwrap();
    let bom = Bom::from_xml(&xml).unwrap();
    let names: BTreeSet<_> = bom
        .components
        .iter()
        .map(|c| (c.name.clone(), c.version.clone()))
        .collect();
    assert_eq!(
        names, names_16,
        "XML and JSON of the same environment list the same components"
    );
    println!("cyclonedx-py-env-1.6.xml: ok, same components as the JSON");
}

#[test]
fn spdx_tools_document() {
    let Some(dir) = fixtures() else { return };
    let bytes = std::fs::read(dir.join("spdx-tools-env-2.3.spdx.json")).unwrap();
    let doc = SpdxDocument::from_json(&bytes).unwrap();
    let raw: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(doc.spdx_version, "SPDX-2.3");
    assert_eq!(
        doc.packages.len(),
        raw["packages"].as_array().unwrap().len()
    );
    assert!(
        doc.packages
            .iter()
            .all(|p| p.purl().is_some() && p.checksums.len() == 1)
    );
    assert_eq!(doc.problems(), vec![], "spdx-tools validated this document");
    println!(
        "spdx-tools-env-2.3.spdx.json: ok, {} packages",
        doc.packages.len()
    );
}

#[test]
fn in_toto_run_dsse_link() {
    let Some(dir) = fixtures() else { return };
    let limits = Limits::default();
    let env = Envelope::from_json(&std::fs::read(dir.join("in-toto-run-dsse.link.json")).unwrap())
        .unwrap();
    // A link is not a Statement: the Statement parser says so.
    assert_eq!(
        env.statement(&limits).unwrap_err().code(),
        "attest.statement.unsupported"
    );
    let link = Link::from_json_with(&env.payload, &limits).unwrap();
    assert_eq!(link.name, "package");
    let weights = Digest::sha256_of(b"model weights\n");
    assert_eq!(link.products["weights.bin"]["sha256"], weights.hex());
    // The signature verifies over our PAE with the tool's key.
    let pem = std::fs::read_to_string(dir.join("in-toto-run-dsse.key.pub.pem")).unwrap();
    let key = PublicKey::from_pem(&pem).unwrap();
    let sig = env.signatures[0].sig_bytes().unwrap();
    let verify = |msg: &[u8]| {
        aws_lc_rs::signature::UnparsedPublicKey::new(&aws_lc_rs::signature::ED25519, key.raw())
            .verify(msg, &sig)
    };
    verify(&env.signed_bytes()).expect("in-toto's signature over DSSE PAE");
    assert!(
        verify(&env.payload).is_err(),
        "and not over the bare payload"
    );
    println!("in-toto-run-dsse.link.json: ok, link `package`, Ed25519 signature over PAE verifies");
}
