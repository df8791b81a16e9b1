//! `provenance generate-key-pair`: `cosign generate-key-pair` — writes `cosign.key` (cosign's
//! encrypted format, password from `PROVENANCE_PASSWORD` or `COSIGN_PASSWORD`, else asked for
//! on the terminal) and `cosign.pub`.
//!
//! The private key is always a new file of mode 0600, renamed over the old path: `--force`
//! over an existing (perhaps world-readable) file or a symlink never writes into that file or
//! the link's target.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use provenance_core::sign::{KeyAlgorithm, SigningKey};

use crate::secret;
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
    /// Replace existing files (or symlinks: the links themselves, never their targets).
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
        // Checked first so that nothing is asked or generated in vain; the writes below
        // refuse an existing path again, atomically.
        if secret::occupied(p) && !a.force {
            return Err(exists(p));
        }
    }
    let password = if a.unencrypted {
        None
    } else {
        Some(new_password()?)
    };
    let key = SigningKey::generate(alg)
        .map_err(|e| Failure::usage(format!("key generation: {e} [{}]", e.code())))?;
    let private = match &password {
        None => key.to_pkcs8_pem().map(|s| s.to_string()),
        Some(p) => key.to_cosign_pem(p.as_bytes()),
    }
    .map_err(|e| Failure::usage(format!("encoding the key: {e} [{}]", e.code())))?;
    write(&key_path, private.as_bytes(), 0o600, a.force)?;
    write(
        &pub_path,
        key.public_key().to_pem().as_bytes(),
        0o644,
        a.force,
    )?;
    eprintln!(
        "Private key written to {}\nPublic key written to {}",
        key_path.display(),
        pub_path.display()
    );
    Ok(())
}

/// The new key's password: from the environment, else asked twice on the terminal.
fn new_password() -> Result<String, Failure> {
    if let Some(p) = secret::password_from_env() {
        return Ok(p);
    }
    if secret::can_prompt() {
        return secret::prompt_password("Enter password for private key: ", true);
    }
    Err(Failure {
        code: "cli.key.no_password".into(),
        ..Failure::usage("no password for the new key: PROVENANCE_PASSWORD and COSIGN_PASSWORD are unset and standard input is not a terminal")
    }
    .hint("set PROVENANCE_PASSWORD (or COSIGN_PASSWORD) to the password for the new key (empty is allowed, as in cosign), run in a terminal to be asked, or pass --unencrypted"))
}

fn write(path: &Path, bytes: &[u8], mode: u32, force: bool) -> Result<(), Failure> {
    secret::replace_file(path, bytes, mode, force).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            exists(path)
        } else {
            Failure {
                code: "cli.key.write".into(),
                ..Failure::usage(format!("{}: {e}", path.display()))
            }
        }
    })
}

fn exists(path: &Path) -> Failure {
    Failure {
        code: "cli.key.exists".into(),
        ..Failure::usage(format!("{} exists", path.display()))
    }
    .hint("pass --force to replace it, or --output-key-prefix to write elsewhere")
}
