//! `provenance`: the command-line face of the SDK.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use provenance_core::ImageReference;

mod apply;
mod attest;
mod cluster_data;
mod export;
mod generate_key_pair;
mod image_source;
mod inspect;
mod keyless;
#[allow(clippy::type_complexity)] // pre-existing, in a module this change does not touch
mod kyverno_test;
mod kyverno_test_mutating;
mod preverify;
mod secret;
mod sign;
mod signing;
mod trust_root;
mod ui;
mod verify;
mod verify_image;
mod verify_model;

#[derive(Parser)]
#[command(
    name = "provenance",
    version,
    about = "Prove that AI workloads are what you trust",
    after_help = ui::EXIT_CODES_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Parse and normalize image references, printing their parts (exit 2 if one is invalid).
    #[command(after_help = ui::EXIT_CODES_HELP)]
    Reference {
        /// Image references as written in a Pod spec.
        images: Vec<String>,
        /// Output: `json` (one object per line) or `text` (input and normalized reference).
        #[arg(short = 'o', long = "output", default_value = "json", value_parser = ["json", "text"])]
        output: String,
    },
    /// Run `kyverno-test.yaml` suites like `kyverno test`.
    Test(TestArgs),
    /// Verify an image's signatures and attestations, a model's signature, or a Sigstore
    /// bundle.
    Verify(verify::VerifyArgs),
    /// Apply policies to resources, verifying images from an OCI layout or registries.
    Apply(apply::ApplyArgs),
    /// List an image's signatures, attestations, SBOMs and referrers, verifying each when a
    /// signer is given.
    Inspect(inspect::InspectArgs),
    /// Copy images with all their evidence into an OCI layout (for air-gapped sites).
    Export(export::ExportArgs),
    /// Sign an image, a file or a model folder with a key or keylessly, or a dataset with a
    /// key.
    Sign(sign::SignArgs),
    /// Attest an image: sign an in-toto predicate about it (cosign `attest`).
    Attest(attest::AttestArgs),
    /// Write a new key pair (cosign.key, cosign.pub).
    GenerateKeyPair(generate_key_pair::GenerateKeyPairArgs),
    /// Refresh a Sigstore trust root over TUF (`trust-root update`).
    TrustRoot(trust_root::TrustRootArgs),
    /// Ask a running admission webhook to decide workloads ahead of `kubectl apply`, warming
    /// its caches (its `POST /preverify`).
    Preverify(preverify::PreverifyArgs),
}

/// Arguments of `provenance test`.
#[derive(clap::Args)]
#[command(after_help = ui::EXIT_CODES_HELP)]
struct TestArgs {
    /// Test files or folders to search for `kyverno-test.yaml` (as `kyverno test DIR...`).
    #[arg(required = true, value_name = "DIR|FILE")]
    paths: Vec<std::path::PathBuf>,
    /// The test file name to look for in folders (kyverno test's `--file-name`).
    #[arg(short = 'f', long, default_value = kyverno_test::DEFAULT_TEST_FILE)]
    file_name: String,
    /// Print only the results that failed (and the summary), as kyverno test's `--fail-only`.
    #[arg(long)]
    fail_only: bool,
    /// Accepted for scripts written for `kyverno test`: the output has no colors, every
    /// result is printed in detail, and no test file found is always an error (exit 2).
    #[arg(
        long = "remove-color",
        visible_aliases = ["detailed-results", "require-tests"],
        action = clap::ArgAction::Count
    )]
    _kyverno_compat: u8,
    /// Output: `text` (a line per result and a summary) or `json` (one object per result and
    /// line, JSON Lines).
    #[arg(short = 'o', long = "output", alias = "format", default_value = "text", value_parser = ["text", "json"])]
    format: String,
    /// The evaluation time (RFC 3339) for time functions; defaults to the system clock.
    #[arg(long)]
    now: Option<String>,
}

fn run_test(args: TestArgs) -> ExitCode {
    let now = match &args.now {
        Some(s) => match provenance_core::UnixTime::parse_rfc3339(s) {
            Some(t) => t,
            None => {
                eprintln!("--now: not an RFC 3339 timestamp: {s}");
                return ExitCode::from(2);
            }
        },
        None => provenance_core::UnixTime(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or_default(),
        ),
    };
    let files = kyverno_test::discover(&args.paths, &args.file_name);
    if files.is_empty() {
        eprintln!(
            "no {} found under the given paths: give a folder holding one, or its name with --file-name",
            args.file_name
        );
        return ExitCode::from(2);
    }
    let (mut passed, mut failed, mut skipped) = (0usize, 0usize, 0usize);
    for f in &files {
        for row in kyverno_test::run_file(f, now) {
            match row.ok {
                Some(true) => passed += 1,
                Some(false) => failed += 1,
                None => skipped += 1,
            }
            if args.fail_only && row.ok != Some(false) {
                continue;
            }
            if args.format == "json" {
                println!("{}", row.to_json());
            } else {
                let verdict = match row.ok {
                    Some(true) => "PASS",
                    Some(false) => "FAIL",
                    None => "SKIP",
                };
                println!(
                    "{verdict} {} policy={} rule={} resource={} expected={} actual={} {}",
                    row.file,
                    row.policy,
                    row.rule,
                    row.resource,
                    row.expected,
                    row.actual,
                    row.reason
                );
            }
        }
    }
    if args.format != "json" {
        println!("{passed} passed, {failed} failed, {skipped} skipped");
    }
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Reference { images, output } => {
            let mut ok = true;
            for image in images {
                match ImageReference::parse(&image) {
                    Ok(r) if output == "text" => println!("{image} -> {r}"),
                    Ok(r) => println!(
                        "{}",
                        serde_json::json!({
                            "input": image,
                            "reference": r.to_string(),
                            "domain": r.domain(),
                            "path": r.path(),
                            "tag": r.tag(),
                            "digest": r.digest_str(),
                        })
                    ),
                    Err(e) => {
                        ok = false;
                        eprintln!("{image}: {e} [{}]", e.code());
                    }
                }
            }
            if ok {
                ExitCode::SUCCESS
            } else {
                ui::Exit::Usage.into()
            }
        }
        Command::Test(args) => run_test(args),
        Command::Verify(args) => verify::run(args),
        Command::Apply(args) => apply::run(args),
        Command::Inspect(args) => inspect::run(&args),
        Command::Export(args) => export::run(&args),
        Command::Preverify(args) => preverify::run(&args),
        Command::Sign(args) => sign::run(args),
        Command::Attest(args) => attest::run(args),
        Command::GenerateKeyPair(args) => generate_key_pair::run(args),
        Command::TrustRoot(args) => trust_root::run(&args),
    }
}
