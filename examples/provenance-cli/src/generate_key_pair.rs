//! `provenance generate-key-pair`: `cosign generate-key-pair` — writes `cosign.key` (cosign's
//! encrypted format, password from `COSIGN_PASSWORD`) and `cosign.pub`.

use std::path::PathBuf;
use std::process::ExitCode;

use provenance_core::sign::{KeyAlgorithm, SigningKey};

use crate::ui::Failure;

/// Arguments of `provenance generate-key-pair`.
#[derive(clap::Args, Debug)]
#[command(after_help = crate::ui::EXIT_CODES_HELP)]
pub struct GenerateKeyPairArgs {
    /// File name prefix: writes PREFIX.key and PREFIX.pub.
    #[arg(long, default_value = "cosign")]
    output_key_prefix: PathBuf,
    /// `ecdsa-p256` (cosign's), `ecdsa-p384` or `ed25519`.
    #[arg(long, default_value = "ecdsa-p256")]
    algorithm: String,
    /// Write an unencrypted PKCS#8 `PRIVATE KEY` instead of cosign's encrypted format.
    #[arg(long)]
    unencrypted: bool,
    /// Replace existing files.
    #[arg(long)]
    force: bool,
}

/// Runs `provenance generate-key-pair`.
pub fn run(args: GenerateKeyPairArgs) -> ExitCode {
    match generate(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            f.eprint("generate-key-pair");
            f.exit.into()
        }
    }
}

fn generate(a: GenerateKeyPairArgs) -> Result<(), Failure> {
    let alg = KeyAlgorithm::parse(&a.algorithm).ok_or_else(|| {
        Failure::usage(format!(
            "--algorithm {}: expected ecdsa-p256, ecdsa-p384 or ed25519",
            a.algorithm
        ))
    })?;
    let key_path = a.output_key_prefix.with_extension("key");
    let pub_path = a.output_key_prefix.with_extension("pub");
    for p in [&key_path, &pub_path] {
        if p.exists() && !a.force {
            return Err(Failure::usage(format!("{} exists", p.display()))
                .hint("pass --force to replace it, or --output-key-prefix to write elsewhere"));
        }
    }
    let key = SigningKey::generate(alg)
        .map_err(|e| Failure::usage(format!("key generation: {e} [{}]", e.code())))?;
    let private = if a.unencrypted {
        key.to_pkcs8_pem().map(|s| s.to_string())
    } else {
        let password = std::env::var("COSIGN_PASSWORD").map_err(|_| {
            Failure::usage("COSIGN_PASSWORD is not set").hint(
                "set COSIGN_PASSWORD to the password for the new key (empty is allowed, as in cosign), or pass --unencrypted",
            )
        })?;
        key.to_cosign_pem(password.as_bytes())
    }
    .map_err(|e| Failure::usage(format!("encoding the key: {e} [{}]", e.code())))?;
    write_private(&key_path, private.as_bytes())?;
    std::fs::write(&pub_path, key.public_key().to_pem())
        .map_err(|e| Failure::usage(format!("{}: {e}", pub_path.display())))?;
    eprintln!(
        "Private key written to {}\nPublic key written to {}",
        key_path.display(),
        pub_path.display()
    );
    Ok(())
}

fn write_private(path: &PathBuf, bytes: &[u8]) -> Result<(), Failure> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    use std::io::Write;
    opts.open(path)
        .and_then(|mut f| f.write_all(bytes))
        .map_err(|e| Failure::usage(format!("{}: {e}", path.display())))
}
