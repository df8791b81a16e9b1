//! `provenance`: the command-line face of the SDK.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use provenance_core::ImageReference;

mod verify;

#[derive(Parser)]
#[command(name = "provenance", version, about = "Prove that AI workloads are what you trust")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Parse and normalize image references, printing their parts as JSON.
    Reference {
        /// Image references as written in a Pod spec.
        images: Vec<String>,
    },
    /// Verify signatures offline (`verify bundle`: Sigstore bundles).
    Verify(verify::VerifyArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Reference { images } => {
            let mut ok = true;
            for image in images {
                match ImageReference::parse(&image) {
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
            if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE }
        }
        Command::Verify(args) => verify::run(args),
    }
}
