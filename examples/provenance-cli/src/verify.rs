//! `provenance verify bundle`: verify a Sigstore bundle offline, with the flags of the Sigstore
//! conformance client protocol (`--bundle`, `--key` or `--certificate-identity` +
//! `--certificate-oidc-issuer`, `--trusted-root`, then the artifact as a path or
//! `sha256:<hex>`).
//!
//! Exit status 0 only when verified; 1 when the bundle does not verify, 2 for unreadable or
//! malformed inputs (flags, key, trust root, files); one line on stderr naming the check that
//! failed (`verify.<area>.<what>`, see `docs/verification.md`). `-o json` prints the result
//! as one JSON object on stdout.

use std::path::PathBuf;
use std::process::ExitCode;

use provenance_core::verify::{
    Artifact, Expectation, IdentityExpectation, PUBLIC_GOOD_TRUSTED_ROOT, SignatureMaterial,
    Signer, Verifier,
};
use provenance_core::{Digest, PublicKey, TrustRoot, UnixTime};

/// Arguments of `provenance verify`.
#[derive(clap::Args)]
pub struct VerifyArgs {
    #[command(subcommand)]
    command: VerifyCommand,
}

#[derive(clap::Subcommand)]
enum VerifyCommand {
    /// Verify a Sigstore bundle (v0.1, v0.2, v0.3) over an artifact, offline.
    Bundle(BundleArgs),
    /// Verify a model folder, or a model stored as an OCI artifact (`oci://REF`), against an
    /// OpenSSF model-signing signature.
    Model(crate::verify_model::ModelArgs),
    /// Verify an image's signatures, or with --type its attestations (cosign verify,
    /// cosign verify-attestation), from its registry or an OCI layout.
    Image(crate::verify_image::ImageArgs),
}

#[derive(clap::Args)]
#[command(after_help = crate::ui::EXIT_CODES_HELP)]
struct BundleArgs {
    /// The Sigstore bundle (JSON).
    #[arg(long)]
    bundle: PathBuf,
    /// Verify with this PEM public key instead of a certificate identity.
    #[arg(long, conflicts_with_all = ["certificate_identity", "certificate_oidc_issuer"])]
    key: Option<PathBuf>,
    /// The expected certificate identity (SAN), exactly.
    #[arg(long, requires = "certificate_oidc_issuer")]
    certificate_identity: Option<String>,
    /// The expected OIDC issuer, exactly.
    #[arg(long, requires = "certificate_identity")]
    certificate_oidc_issuer: Option<String>,
    /// The trusted root (`trusted_root.json`); default: the embedded Sigstore public-good root.
    #[arg(long, visible_alias = "trust-root")]
    trusted_root: Option<PathBuf>,
    /// DANGEROUS: with --key, accept a bundle that has no transparency-log entry.
    #[arg(long, requires = "key")]
    allow_no_transparency: bool,
    /// Verify as of this time (RFC 3339) instead of the system clock.
    #[arg(long)]
    now: Option<String>,
    /// Output: `text`, or `json` (one object on stdout, also on failure).
    #[arg(short = 'o', long = "output", default_value = "text", value_parser = crate::ui::TEXT_OR_JSON)]
    output: String,
    /// The artifact: a file path, or `sha256:<hex>`.
    artifact: String,
}

/// Runs `provenance verify ...`.
pub fn run(args: VerifyArgs) -> ExitCode {
    match args.command {
        VerifyCommand::Model(m) => crate::verify_model::run(&m),
        VerifyCommand::Image(i) => crate::verify_image::run(&i),
        VerifyCommand::Bundle(b) => match verify_bundle(&b) {
            Ok((line, json)) => {
                if b.output == "json" {
                    println!("{json}");
                } else {
                    println!("{line}");
                }
                ExitCode::SUCCESS
            }
            Err(line) => {
                // Input problems are usage errors (2); a bundle that does not verify is 1.
                let exit = if line.starts_with("FAILED input") {
                    crate::ui::Exit::Usage
                } else {
                    crate::ui::Exit::Failed
                };
                if b.output == "json" {
                    println!(
                        "{}",
                        serde_json::json!({
                            "verified": false,
                            "error": {"message": line, "exitCode": exit.code()},
                        })
                    );
                }
                eprintln!("{line}");
                exit.into()
            }
        },
    }
}

fn input(e: provenance_core::Error) -> String {
    format!("FAILED input: {e} [{}]", e.code())
}

fn read(path: &PathBuf, what: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path)
        .map_err(|e| format!("FAILED input: cannot read {what} {}: {e}", path.display()))
}

fn fail(e: provenance_core::Error) -> String {
    format!("FAILED: {e} [{}]", e.code())
}

fn verify_bundle(args: &BundleArgs) -> Result<(String, serde_json::Value), String> {
    let root = match &args.trusted_root {
        Some(p) => TrustRoot::from_trusted_root_json(&read(p, "trusted root")?).map_err(input)?,
        None => TrustRoot::from_trusted_root_json(PUBLIC_GOOD_TRUSTED_ROOT).map_err(input)?,
    };
    let expectation = match (
        &args.key,
        &args.certificate_identity,
        &args.certificate_oidc_issuer,
    ) {
        (Some(k), _, _) => {
            let pem = String::from_utf8(read(k, "key")?)
                .map_err(|_| "FAILED input: the key is not PEM text".to_owned())?;
            Expectation::Key {
                key: PublicKey::from_pem(&pem).map_err(input)?,
                allow_no_transparency: args.allow_no_transparency,
            }
        }
        (None, Some(id), Some(issuer)) => {
            Expectation::Keyless(IdentityExpectation::exact(id.clone(), issuer.clone()))
        }
        _ => {
            return Err(
                "FAILED input: give --key, or --certificate-identity and --certificate-oidc-issuer"
                    .into(),
            );
        }
    };
    let now = match &args.now {
        Some(s) => UnixTime::parse_rfc3339(s)
            .ok_or_else(|| format!("FAILED input: --now is not an RFC 3339 timestamp: {s}"))?,
        None => UnixTime(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or_default(),
        ),
    };
    let bundle = read(&args.bundle, "bundle")?;
    let verifier = Verifier::new(&root).map_err(input)?;
    let digest;
    let bytes;
    let artifact = if args.artifact.starts_with("sha256:") {
        digest = Digest::parse(&args.artifact).map_err(input)?;
        Artifact::Digest(&digest)
    } else {
        bytes = read(&PathBuf::from(&args.artifact), "artifact")?;
        Artifact::Bytes(&bytes)
    };
    let v = verifier
        .verify(
            artifact,
            &SignatureMaterial::Bundle(bundle),
            &expectation,
            now,
        )
        .map_err(fail)?;
    let mut json = crate::verify_image::verified_json(&v);
    json["verified"] = serde_json::json!(true);
    let signer = match &v.signer {
        Signer::Key { key_id, kind } => format!("{kind} key {key_id}"),
        Signer::Certificate(c) => format!(
            "{} (issuer {})",
            c.subject().unwrap_or("?"),
            c.issuer.as_deref().unwrap_or("?")
        ),
        _ => "unknown signer".into(),
    };
    let mut line = format!("OK: verified, signed by {signer}");
    if let Some(i) = v.log_index {
        line.push_str(&format!(", log index {i}"));
    }
    if let Some(t) = v.integrated_time {
        line.push_str(&format!(", integrated {t}"));
    }
    if !v.transparency_verified {
        line.push_str(", NO transparency-log evidence");
    }
    Ok((line, json))
}
