//! `provenance verify model --certificate-chain`: only self-signed roots are trust anchors, as
//! for `model_signing verify certificate` (an intermediate alone fails).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../provenance-oci/tests/fixtures/model-signing")
}

fn verify(chain: &[&str]) -> (Option<i32>, Value) {
    let f = fixtures();
    let mut c = Command::new(env!("CARGO_BIN_EXE_provenance"));
    c.args(["verify", "model"])
        .arg(f.join("model"))
        .arg("--signature")
        .arg(f.join("signatures/cert.sig"))
        .args(["-o", "json", "--certificate-chain"]);
    for name in chain {
        c.arg(f.join("keys").join(name));
    }
    let out = c.output().unwrap();
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    (out.status.code(), v)
}

#[test]
fn an_intermediate_alone_is_not_a_trust_anchor() {
    let (code, v) = verify(&["root.pem"]);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["verified"], true);
    let (code, v) = verify(&["inter.pem"]);
    assert_eq!(code, Some(1), "{v}");
    assert_eq!(v["code"], "model.certificate_chain", "{v}");
    let (code, v) = verify(&["inter.pem", "root.pem"]);
    assert_eq!(code, Some(0), "{v}");
}
