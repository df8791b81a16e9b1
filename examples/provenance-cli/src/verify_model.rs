//! `provenance verify model MODEL_PATH`: verify a model folder against an OpenSSF model-signing
//! signature, with `model_signing verify`'s options (`--signature`, `--public-key`,
//! `--certificate-chain`, `--identity` + `--identity-provider`, `--trust-config`,
//! `--ignore-paths`, `--ignore-unsigned-files`, `--allow-symlinks`, `--no-ignore-git-paths`;
//! the underscore spellings model_signing uses are accepted too), plus `--cache`, `--paranoid`
//! and `--threads`.
//!
//! Exit status 0 only when verified; 1 when the signature or the files do not verify, 2 for
//! configuration and unreadable inputs (`model.config`, `model.io`); one line on stderr:
//! `FAILED <code>: <reason>` (codes `model.*`, see `docs/model-verification.md`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use provenance_core::verify::{IdentityExpectation, PUBLIC_GOOD_TRUSTED_ROOT};
use provenance_core::{PublicKey, TrustRoot};
use provenance_oci::model::{ModelError, ModelTrust, VerifyOptions, system_now, verify_model};

/// Arguments of `provenance verify model`.
#[derive(clap::Args)]
#[command(after_help = crate::ui::EXIT_CODES_HELP)]
pub struct ModelArgs {
    /// The model folder.
    model_path: PathBuf,
    /// The signature file (a Sigstore bundle written by `model_signing sign`).
    #[arg(long, default_value = "model.sig")]
    signature: PathBuf,
    /// Verify with this PEM public key (`model_signing sign key`).
    #[arg(long, visible_alias = "key", alias = "public_key",
          conflicts_with_all = ["certificate_chain", "identity"])]
    public_key: Option<PathBuf>,
    /// Trusted certificates (PEM) the signing certificate must chain to
    /// (`model_signing sign certificate`); repeatable.
    #[arg(long, alias = "certificate_chain", num_args = 1.., conflicts_with = "identity")]
    certificate_chain: Vec<PathBuf>,
    /// Expected signer identity (certificate SAN), exactly (`model_signing sign sigstore`).
    #[arg(long, requires = "identity_provider")]
    identity: Option<String>,
    /// Expected OIDC issuer, exactly.
    #[arg(long, alias = "identity_provider", requires = "identity")]
    identity_provider: Option<String>,
    /// Sigstore trusted root (`trusted_root.json`); default: the embedded public-good root.
    #[arg(long, visible_alias = "trusted-root", alias = "trust_config")]
    trust_config: Option<PathBuf>,
    /// Paths to ignore (relative to the current directory, as model_signing resolves them);
    /// repeatable.
    #[arg(long, alias = "ignore_paths", num_args = 1..)]
    ignore_paths: Vec<PathBuf>,
    /// Include `.git`, `.gitattributes`, `.github`, `.gitignore` (ignored by default).
    #[arg(long, alias = "no_ignore_git_paths")]
    no_ignore_git_paths: bool,
    /// Follow symlinks that stay inside the model folder (any symlink fails otherwise).
    #[arg(long, alias = "allow_symlinks")]
    allow_symlinks: bool,
    /// Tolerate files the signature does not name.
    #[arg(long, alias = "ignore_unsigned_files")]
    ignore_unsigned_files: bool,
    /// Digest cache file: unchanged files (path, size, device, inode, mtime, ctime) are not
    /// re-read. Keep it where only the verifier can write.
    #[arg(long)]
    cache: Option<PathBuf>,
    /// Read every byte even when a cache is given (the cache is refreshed).
    #[arg(long)]
    paranoid: bool,
    /// Hashing threads (default: all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Output: `text`, or `json` (one object on stdout, also on failure).
    #[arg(short = 'o', long = "output", default_value = "text", value_parser = crate::ui::TEXT_OR_JSON)]
    output: String,
    /// Same as `-o json` (kept for scripts written before `-o`).
    #[arg(long, hide = true)]
    json: bool,
}

/// The exit code for a failure code: configuration and unreadable inputs are usage errors
/// (2), everything else is a failed verification (1).
fn exit_for(code: &str) -> crate::ui::Exit {
    match code {
        "model.config" | "model.io" => crate::ui::Exit::Usage,
        _ => crate::ui::Exit::Failed,
    }
}

/// Runs `provenance verify model`.
pub fn run(args: &ModelArgs) -> ExitCode {
    let json = args.json || args.output == "json";
    match verify(args) {
        Ok(report) => {
            if json {
                println!("{report}");
            } else {
                println!("Verification succeeded");
            }
            ExitCode::SUCCESS
        }
        Err((code, msg)) => {
            let exit = exit_for(&code);
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "verified": false,
                        "code": code,
                        "error": msg,
                        "exitCode": exit.code(),
                    })
                );
            }
            eprintln!("FAILED {code}: {msg}");
            exit.into()
        }
    }
}

fn err(e: &ModelError) -> (String, String) {
    (e.code().to_owned(), e.to_string())
}

fn config(msg: String) -> (String, String) {
    ("model.config".to_owned(), msg)
}

/// The trust configuration from the flags (exactly one method).
pub fn trust_from(
    public_key: Option<&Path>,
    certificate_chain: &[PathBuf],
    identity: Option<(&str, &str)>,
    trust_config: Option<&Path>,
) -> Result<ModelTrust, (String, String)> {
    let read = |p: &Path| {
        std::fs::read(p).map_err(|e| config(format!("cannot read {}: {e}", p.display())))
    };
    if let Some(k) = public_key {
        let text = String::from_utf8(read(k)?)
            .map_err(|_| config(format!("{} is not a PEM file", k.display())))?;
        let key = PublicKey::from_pem(&text).map_err(|e| config(format!("public key: {e}")))?;
        return Ok(ModelTrust::Key(key));
    }
    if !certificate_chain.is_empty() {
        let mut all = Vec::new();
        for c in certificate_chain {
            all.extend(read(c)?);
            all.push(b'\n');
        }
        return ModelTrust::certificate_chain_from_pem(&all).map_err(|e| err(&e));
    }
    if let Some((id, issuer)) = identity {
        let json = match trust_config {
            Some(p) => read(p)?,
            None => PUBLIC_GOOD_TRUSTED_ROOT.to_vec(),
        };
        let root = TrustRoot::from_trusted_root_json(&json)
            .map_err(|e| config(format!("trusted root: {e}")))?;
        return Ok(ModelTrust::Keyless {
            root: Box::new(root),
            identity: IdentityExpectation::exact(id, issuer),
        });
    }
    Err(config(
        "one of --public-key, --certificate-chain or --identity with --identity-provider is required"
            .into(),
    ))
}

/// Resolves ignore paths as model_signing does: relative to the current directory, kept
/// only when they fall inside the model folder, then made relative to it.
pub fn resolve_ignore_paths(model: &Path, paths: &[PathBuf]) -> Vec<String> {
    let Ok(root) = model.canonicalize() else {
        return Vec::new();
    };
    let cwd = std::env::current_dir().unwrap_or_default();
    paths
        .iter()
        .filter_map(|p| {
            let abs = if p.is_absolute() {
                p.clone()
            } else {
                cwd.join(p)
            };
            let abs = abs.canonicalize().unwrap_or(abs);
            let rel = abs.strip_prefix(&root).ok()?;
            rel.to_str()
                .map(|s| s.replace(std::path::MAIN_SEPARATOR, "/"))
        })
        .collect()
}

fn verify(args: &ModelArgs) -> Result<String, (String, String)> {
    let identity = match (&args.identity, &args.identity_provider) {
        (Some(i), Some(p)) => Some((i.as_str(), p.as_str())),
        _ => None,
    };
    let trust = trust_from(
        args.public_key.as_deref(),
        &args.certificate_chain,
        identity,
        args.trust_config.as_deref(),
    )?;
    let opts = VerifyOptions {
        ignore_paths: resolve_ignore_paths(&args.model_path, &args.ignore_paths),
        ignore_git_paths: !args.no_ignore_git_paths,
        allow_symlinks: args.allow_symlinks,
        ignore_unsigned_files: args.ignore_unsigned_files,
        threads: args.threads,
        cache: args.cache.clone(),
        paranoid: args.paranoid,
        progress: None,
    };
    // Hashing a model of many GB takes a while: show the bytes hashed, on a terminal only.
    let progress = crate::ui::Progress::spinner("hashing the model");
    let hashed = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut opts = opts;
    if progress.visible() {
        opts.progress = Some(std::sync::Arc::clone(&hashed));
    }
    let done = std::sync::atomic::AtomicBool::new(false);
    let r = std::thread::scope(|s| {
        if progress.visible() {
            s.spawn(|| {
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    progress.set_bytes(hashed.load(std::sync::atomic::Ordering::Relaxed));
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
            });
        }
        let r = verify_model(
            &args.model_path,
            &args.signature,
            &trust,
            &opts,
            system_now(),
        );
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        r
    });
    drop(progress);
    let r = r.map_err(|e| err(&e))?;
    Ok(serde_json::json!({
        "verified": true,
        "model": r.model_name,
        "rootDigest": r.root_digest,
        "signer": r.signer,
        "method": format!("{:?}", r.method),
        "files": r.files,
        "bytes": r.bytes,
    })
    .to_string())
}
