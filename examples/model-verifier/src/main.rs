//! `model-verifier`: an init container that verifies a model folder on a volume against an
//! OpenSSF model-signing signature (and, optionally, a dataset against `DATASET_SHA256`),
//! writes a small JSON result file, and exits non-zero with a precise message on failure, so
//! the inference server in the same Pod never starts on unverified weights.
//!
//! Every flag has an environment variable (`MODEL_PATH`, `MODEL_SIGNATURE`, ...); see the
//! README for a Pod manifest.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use provenance_core::verify::{IdentityExpectation, PUBLIC_GOOD_TRUSTED_ROOT};
use provenance_core::{PublicKey, TrustRoot};
use provenance_oci::model::{
    ModelError, ModelTrust, SignatureOptions, VerifyOptions, system_now, verify_dataset_digest,
    verify_model,
};
use serde_json::{Value, json};

/// Verify a model folder (and optionally a dataset) before the server starts.
#[derive(Parser, Debug)]
#[command(name = "model-verifier", version)]
struct Args {
    /// The model folder (e.g. a PVC mount).
    #[arg(long, visible_alias = "model-path", env = "MODEL_PATH")]
    model: PathBuf,
    /// The signature file; default: `model.sig` inside the model folder.
    #[arg(long, env = "MODEL_SIGNATURE")]
    signature: Option<PathBuf>,
    /// PEM public key (`model_signing sign key`).
    #[arg(long, visible_alias = "key", env = "MODEL_PUBLIC_KEY")]
    public_key: Option<PathBuf>,
    /// PEM certificates for `model_signing sign certificate` signatures, comma-separated in
    /// the environment: only the self-signed roots among them are trust anchors (intermediates
    /// only help build the path to one).
    #[arg(long, env = "MODEL_CERTIFICATE_CHAIN", value_delimiter = ',')]
    certificate_chain: Vec<PathBuf>,
    /// Expected keyless signer identity (certificate SAN), exactly.
    #[arg(
        long,
        visible_alias = "certificate-identity",
        env = "MODEL_IDENTITY",
        requires = "identity_provider"
    )]
    identity: Option<String>,
    /// Expected OIDC issuer of the keyless signer, exactly.
    #[arg(
        long,
        visible_alias = "certificate-oidc-issuer",
        env = "MODEL_IDENTITY_PROVIDER",
        requires = "identity"
    )]
    identity_provider: Option<String>,
    /// Sigstore `trusted_root.json` for keyless signatures; default: embedded public-good root.
    #[arg(
        long,
        visible_aliases = ["trust-root", "trusted-root"],
        env = "MODEL_TRUST_CONFIG"
    )]
    trust_config: Option<PathBuf>,
    /// Paths to ignore, relative to the model folder (an init container has no meaningful
    /// working directory) or absolute inside it; comma-separated in the environment. Paths
    /// outside the folder ignore nothing and are reported on stderr.
    #[arg(long, env = "MODEL_IGNORE_PATHS", value_delimiter = ',')]
    ignore_paths: Vec<PathBuf>,
    /// Tolerate files the signature does not name.
    #[arg(long, env = "MODEL_IGNORE_UNSIGNED_FILES")]
    ignore_unsigned_files: bool,
    /// Follow symlinks that stay inside the model folder.
    #[arg(long, env = "MODEL_ALLOW_SYMLINKS")]
    allow_symlinks: bool,
    /// Digest cache file (on a volume only this container writes); re-verifying an unchanged
    /// folder then reads no file contents.
    #[arg(long, env = "MODEL_DIGEST_CACHE")]
    cache: Option<PathBuf>,
    /// Ignore the digest cache and read every byte.
    #[arg(long, env = "MODEL_PARANOID")]
    paranoid: bool,
    /// Include `.git`, `.gitattributes`, `.github`, `.gitignore` (ignored by default, as
    /// model_signing and `provenance verify model` do).
    #[arg(long, env = "MODEL_NO_IGNORE_GIT_PATHS")]
    no_ignore_git_paths: bool,
    /// Refuse a signing certificate that is itself a CA, as `provenance verify model
    /// --reject-ca-signing-certificate` (off by default, as model_signing).
    #[arg(long, env = "MODEL_REJECT_CA_SIGNING_CERTIFICATE")]
    reject_ca_signing_certificate: bool,
    /// Refuse signatures made by model_signing 0.1.x and 0.2.0, as `provenance verify model
    /// --reject-legacy-signatures` (off by default, as model_signing).
    #[arg(long, env = "MODEL_REJECT_LEGACY_SIGNATURES")]
    reject_legacy_signatures: bool,
    /// Hashing threads (0: all cores).
    #[arg(long, env = "MODEL_THREADS", default_value_t = 0)]
    threads: usize,
    /// A dataset file or folder to check against `--dataset-sha256`.
    #[arg(long, env = "DATASET_PATH", requires = "dataset_sha256")]
    dataset: Option<PathBuf>,
    /// Expected dataset digest (`sha256:<hex>` or hex; for a folder, see
    /// docs/model-verification.md).
    #[arg(long, env = "DATASET_SHA256", requires = "dataset")]
    dataset_sha256: Option<String>,
    /// Where to write the JSON result (`-` for stdout only).
    #[arg(long, env = "RESULT_FILE", default_value = "/verification/result.json")]
    result: PathBuf,
}

fn config(msg: String) -> (String, String) {
    ("model.config".to_owned(), msg)
}

fn err(e: &ModelError) -> (String, String) {
    (e.code().to_owned(), e.to_string())
}

fn trust(a: &Args) -> Result<ModelTrust, (String, String)> {
    let read = |p: &PathBuf| {
        std::fs::read(p).map_err(|e| config(format!("cannot read {}: {e}", p.display())))
    };
    let methods = usize::from(a.public_key.is_some())
        + usize::from(!a.certificate_chain.is_empty())
        + usize::from(a.identity.is_some());
    if methods != 1 {
        return Err(config(
            "exactly one of --public-key, --certificate-chain or --identity is required".into(),
        ));
    }
    if let Some(k) = &a.public_key {
        let text = String::from_utf8(read(k)?)
            .map_err(|_| config(format!("{} is not PEM", k.display())))?;
        return PublicKey::from_pem(&text)
            .map(ModelTrust::Key)
            .map_err(|e| config(format!("public key: {e}")));
    }
    if !a.certificate_chain.is_empty() {
        let mut all = Vec::new();
        for c in &a.certificate_chain {
            all.extend(read(c)?);
            all.push(b'\n');
        }
        return ModelTrust::certificate_chain_from_pem(&all).map_err(|e| err(&e));
    }
    let (Some(id), Some(issuer)) = (&a.identity, &a.identity_provider) else {
        return Err(config("--identity needs --identity-provider".into()));
    };
    let json = match &a.trust_config {
        Some(p) => read(p)?,
        None => PUBLIC_GOOD_TRUSTED_ROOT.to_vec(),
    };
    let root = TrustRoot::from_trusted_root_json(&json)
        .map_err(|e| config(format!("trusted root: {e}")))?;
    Ok(ModelTrust::Keyless {
        root: Box::new(root),
        identity: IdentityExpectation::exact(id.clone(), issuer.clone()),
    })
}

/// The stricter signature checks asked for.
fn signature_options(a: &Args) -> SignatureOptions {
    let mut o = SignatureOptions::default();
    o.reject_ca_signing_certificate = a.reject_ca_signing_certificate;
    o.reject_legacy_pae = a.reject_legacy_signatures;
    o
}

fn run(a: &Args) -> Result<Value, (String, String)> {
    let trust = trust(a)?;
    let progress = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let bar = std::io::IsTerminal::is_terminal(&std::io::stderr()).then(|| {
        let (progress, done) = (progress.clone(), done.clone());
        std::thread::spawn(move || show_progress(&progress, &done))
    });
    // The rule of `provenance verify model`, with the model folder as the base of relative
    // paths.
    let ignores = provenance_oci::model::resolve_ignore_paths(&a.model, &a.model, &a.ignore_paths);
    for p in &ignores.outside {
        eprintln!(
            "warning: ignore path {} is not inside the model folder {}: it ignores nothing",
            p.display(),
            a.model.display()
        );
    }
    let opts = VerifyOptions {
        progress: Some(progress),
        ignore_paths: ignores.inside,
        allow_symlinks: a.allow_symlinks,
        ignore_unsigned_files: a.ignore_unsigned_files,
        cache: a.cache.clone(),
        paranoid: a.paranoid,
        ignore_git_paths: !a.no_ignore_git_paths,
        threads: a.threads,
        signature: signature_options(a),
    };
    let signature = a
        .signature
        .clone()
        .unwrap_or_else(|| a.model.join("model.sig"));
    let r = verify_model(&a.model, &signature, &trust, &opts, system_now());
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    if let Some(h) = bar {
        let _ = h.join();
    }
    let r = r.map_err(|e| err(&e))?;
    let mut out = json!({
        "model": {
            "path": a.model,
            "name": r.model_name,
            "rootDigest": r.root_digest,
            "signer": r.signer,
            "files": r.files,
            "bytes": r.bytes,
        }
    });
    if let (Some(d), Some(want)) = (&a.dataset, &a.dataset_sha256) {
        let got = verify_dataset_digest(d, want, &VerifyOptions::default()).map_err(|e| err(&e))?;
        out["dataset"] = json!({ "path": d, "digest": got.to_string() });
    }
    Ok(out)
}

/// A one-line progress display on a terminal: bytes hashed and rate.
fn show_progress(progress: &std::sync::atomic::AtomicU64, done: &std::sync::atomic::AtomicBool) {
    use std::sync::atomic::Ordering;
    let start = Instant::now();
    while !done.load(Ordering::Relaxed) {
        std::thread::sleep(std::time::Duration::from_millis(200));
        let bytes = progress.load(Ordering::Relaxed) as f64;
        let secs = start.elapsed().as_secs_f64().max(0.001);
        eprint!(
            "\rmodel-verifier: hashed {:.0} MiB ({:.0} MiB/s)   ",
            bytes / 1048576.0,
            bytes / 1048576.0 / secs
        );
    }
    eprintln!();
}

fn main() -> ExitCode {
    let args = Args::parse();
    let started = Instant::now();
    let (mut result, code) = match run(&args) {
        Ok(v) => (v, ExitCode::SUCCESS),
        Err((code, message)) => {
            eprintln!("model-verifier: FAILED {code}: {message}");
            (json!({ "code": code, "error": message }), ExitCode::FAILURE)
        }
    };
    result["verified"] = Value::Bool(code == ExitCode::SUCCESS);
    result["elapsedMs"] = json!(started.elapsed().as_millis() as u64);
    let text = result.to_string();
    println!("{text}");
    if args.result.as_os_str() != "-"
        && let Err(e) = std::fs::write(&args.result, format!("{text}\n"))
    {
        eprintln!(
            "model-verifier: FAILED model.io: cannot write {}: {e}",
            args.result.display()
        );
        return ExitCode::FAILURE;
    }
    if code == ExitCode::SUCCESS {
        eprintln!("model-verifier: verified {}", args.model.display());
    }
    code
}
