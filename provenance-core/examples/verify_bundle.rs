//! Verifies a Sigstore bundle over a file, keylessly, as `cosign verify-blob --bundle` does:
//! the Fulcio certificate chains to the trust root, carries the expected identity, was valid at a
//! signing time the transparency log proves, and the signature covers the file.
//!
//! ```sh
//! cargo run -p provenance-core --example verify_bundle -- \
//!   ARTIFACT BUNDLE TRUSTED_ROOT IDENTITY ISSUER [NOW]
//! ```
//!
//! `NOW` (Unix seconds) defaults to the system clock; the library itself never reads a clock.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use provenance_core::verify::{
    Artifact, Expectation, IdentityExpectation, SignatureMaterial, Signer,
};
use provenance_core::{TrustRoot, UnixTime, Verifier};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [artifact, bundle, root, identity, issuer, rest @ ..] = args.as_slice() else {
        eprintln!("usage: verify_bundle ARTIFACT BUNDLE TRUSTED_ROOT IDENTITY ISSUER [NOW]");
        return ExitCode::from(2);
    };
    match run(artifact, bundle, root, identity, issuer, rest.first()) {
        Ok(summary) => {
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(
    artifact: &str,
    bundle: &str,
    root: &str,
    identity: &str,
    issuer: &str,
    now: Option<&String>,
) -> Result<String, Box<dyn std::error::Error>> {
    let root = TrustRoot::from_trusted_root_json(&std::fs::read(root)?)?;
    let verifier = Verifier::new(&root)?;
    let now = match now {
        Some(n) => UnixTime(n.parse()?),
        None => UnixTime(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_secs() as i64,
        ),
    };
    let bytes = std::fs::read(artifact)?;
    let verified = verifier.verify(
        Artifact::Bytes(&bytes),
        &SignatureMaterial::Bundle(std::fs::read(bundle)?),
        &Expectation::Keyless(IdentityExpectation::exact(identity, issuer)),
        now,
    )?;
    let signer = match &verified.signer {
        Signer::Certificate(c) => format!(
            "{} (issuer {})",
            c.subject().unwrap_or("?"),
            c.issuer.as_deref().unwrap_or("?")
        ),
        Signer::Key { key_id, .. } => format!("key {key_id}"),
        other => format!("{other:?}"),
    };
    let log = match verified.log_index {
        Some(i) => format!("transparency log entry {i}"),
        None => "no transparency log entry".to_owned(),
    };
    Ok(format!("verified: signed by {signer}; {log}"))
}
