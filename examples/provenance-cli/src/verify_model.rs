//! `provenance verify model MODEL_PATH`: verify a model folder against an OpenSSF model-signing
//! signature; `provenance verify model oci://REF` (or `--oci REF`): verify a model stored as an
//! OCI artifact (one layer per file) against the model-signing bundle attached to it as an OCI
//! 1.1 referrer, from its registry or from an OCI layout (`--registry-layout DIR`), without downloading
//! the layers. Folder options are `model_signing verify`'s (`--signature`, `--public-key`,
//! `--certificate-chain`, `--identity` + `--identity-provider`, `--trust-config`,
//! `--ignore-paths`, `--ignore-unsigned-files`, `--allow-symlinks`, `--no-ignore-git-paths`;
//! the underscore spellings model_signing uses are accepted too), plus `--cache`, `--paranoid`
//! and `--threads`, and two checks stricter than model_signing's (off by default):
//! `--reject-ca-signing-certificate` and `--reject-legacy-signatures`.
//!
//! Exit status 0 only when verified; 1 when the signature or the files do not verify, 2 for
//! configuration and unreadable inputs (`model.config`, `model.io`); one line on stderr:
//! `FAILED <code>: <reason>` (codes `model.*`, see `docs/model-verification.md`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use provenance_core::verify::{IdentityExpectation, PUBLIC_GOOD_TRUSTED_ROOT};
use provenance_core::{ImageReference, PublicKey, TrustRoot};
use provenance_oci::model::{
    ModelError, ModelTrust, OciModelOptions, SignatureOptions, VerifyOptions, system_now,
    verify_model, verify_oci_model,
};
use provenance_oci::{LayoutSource, RegistryClient, RegistryConfig};

/// Arguments of `provenance verify model`.
#[derive(clap::Args)]
#[command(after_help = crate::ui::EXIT_CODES_HELP)]
pub struct ModelArgs {
    /// The model folder, or `oci://REF` for a model stored as an OCI artifact.
    #[arg(required_unless_present = "oci")]
    model_path: Option<PathBuf>,
    /// A model stored as an OCI artifact (one uncompressed layer per file, titled with its
    /// path), its model-signing bundle attached as an OCI 1.1 referrer.
    #[arg(long, value_name = "REF", conflicts_with = "model_path")]
    oci: Option<String>,
    /// With an OCI model: read it from this OCI image layout folder instead of its registry.
    #[arg(long = "registry-layout", visible_alias = "layout", value_name = "DIR")]
    layout: Option<PathBuf>,
    /// With an OCI model: allow plain HTTP to this registry. Repeatable.
    #[arg(long = "allow-http", value_name = "REGISTRY")]
    allow_http: Vec<String>,
    /// With an OCI model: look for the signature in this repository.
    #[arg(long, value_name = "REPOSITORY")]
    signature_repository: Option<String>,
    /// The signature file (a Sigstore bundle written by `model_signing sign`). Default:
    /// `model.sig` in the current directory (model_signing's default) when it exists, else
    /// `model.sig` inside the model folder (the model-verifier init container's default).
    #[arg(long, value_name = "SIGNATURE_PATH")]
    signature: Option<PathBuf>,
    /// Verify with this PEM public key (`model_signing sign key`).
    #[arg(long, visible_alias = "key", alias = "public_key",
          conflicts_with_all = ["certificate_chain", "identity"])]
    public_key: Option<PathBuf>,
    /// Certificates (PEM) for `model_signing sign certificate` signatures; repeatable. Only
    /// the self-signed roots among them are trust anchors; intermediates given only help build
    /// the path to one of those roots.
    #[arg(long, alias = "certificate_chain", num_args = 1.., conflicts_with = "identity")]
    certificate_chain: Vec<PathBuf>,
    /// Expected signer identity (certificate SAN), exactly (`model_signing sign sigstore`).
    #[arg(
        long,
        visible_alias = "certificate-identity",
        requires = "identity_provider"
    )]
    identity: Option<String>,
    /// Expected OIDC issuer, exactly.
    #[arg(
        long,
        visible_alias = "certificate-oidc-issuer",
        alias = "identity_provider",
        requires = "identity"
    )]
    identity_provider: Option<String>,
    /// Sigstore trusted root (`trusted_root.json`); default: the embedded public-good root.
    #[arg(long, visible_aliases = ["trusted-root", "trust-root"], alias = "trust_config")]
    trust_config: Option<PathBuf>,
    /// Paths to ignore, repeatable: for a folder, relative to the current directory or
    /// absolute, as model_signing (and `sign model`) resolve them; for `--oci`, relative to
    /// the model root (there is no folder).
    #[arg(long, alias = "ignore_paths", num_args = 1..)]
    ignore_paths: Vec<PathBuf>,
    /// Include `.git`, `.gitattributes`, `.github`, `.gitignore` (a folder's default is to
    /// ignore them, as model_signing does).
    #[arg(
        long,
        alias = "no_ignore_git_paths",
        conflicts_with = "ignore_git_paths"
    )]
    no_ignore_git_paths: bool,
    /// Ignore `.git`, `.gitattributes`, `.github`, `.gitignore`: a folder's default; with
    /// `--oci`, lets layers at those paths be unsigned (by default every layer of a model
    /// artifact must be signed, the signed `ignore_paths` included).
    #[arg(long, alias = "ignore_git_paths")]
    ignore_git_paths: bool,
    /// Follow symlinks that stay inside the model folder (any symlink fails otherwise).
    #[arg(long, alias = "allow_symlinks")]
    allow_symlinks: bool,
    /// Tolerate files the signature does not name.
    #[arg(long, alias = "ignore_unsigned_files")]
    ignore_unsigned_files: bool,
    /// Refuse a signing certificate that is itself a CA (basic constraints CA:TRUE), as RFC
    /// 5280 path validation does for an end entity. model_signing accepts one, and so does
    /// this command by default (docs/security-model.md).
    #[arg(long)]
    reject_ca_signing_certificate: bool,
    /// Refuse signatures made by model_signing 0.1.x and 0.2.0, signed over a non-standard
    /// DSSE encoding that model_signing still accepts, and so does this command by default
    /// (docs/interop-model-signing.md).
    #[arg(long)]
    reject_legacy_signatures: bool,
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
        "model.config"
        | "model.io"
        | "oci.invalid_reference"
        | "oci.config"
        | "oci.insecure_not_allowed" => crate::ui::Exit::Usage,
        // An OCI model whose manifest or signature could not be fetched.
        c if c.starts_with("oci.") => crate::ui::Exit::Evidence,
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

/// Resolves `--ignore-paths` as model_signing's CLI does, for `sign model` and `verify model`
/// alike: relative to the current directory (or absolute), kept when inside the model folder,
/// then made relative to it ([`provenance_oci::model::resolve_ignore_paths`]). Paths outside
/// the folder ignore nothing, and say so on stderr.
pub fn ignore_paths_from_cwd(
    model: &Path,
    paths: &[PathBuf],
) -> Result<Vec<String>, crate::ui::Failure> {
    if paths.is_empty() {
        return Ok(Vec::new());
    }
    let cwd = std::env::current_dir()
        .map_err(|e| crate::ui::Failure::usage(format!("current directory: {e}")))?;
    let r = provenance_oci::model::resolve_ignore_paths(model, &cwd, paths);
    for p in &r.outside {
        eprintln!(
            "warning: --ignore-paths {} is not inside the model folder {}: it ignores nothing (ignore paths are read from the current directory, as model_signing reads them)",
            p.display(),
            model.display()
        );
    }
    Ok(r.inside)
}

/// The stricter signature checks asked for.
fn signature_options(args: &ModelArgs) -> SignatureOptions {
    let mut o = SignatureOptions::default();
    o.reject_ca_signing_certificate = args.reject_ca_signing_certificate;
    o.reject_legacy_pae = args.reject_legacy_signatures;
    o
}

/// The OCI reference to verify, if the command names one (`--oci REF` or `oci://REF`).
fn oci_reference(args: &ModelArgs) -> Option<String> {
    if let Some(r) = &args.oci {
        return Some(r.strip_prefix("oci://").unwrap_or(r).to_owned());
    }
    let p = args.model_path.as_ref()?.to_str()?;
    p.strip_prefix("oci://").map(str::to_owned)
}

fn verify_oci(
    args: &ModelArgs,
    reference: &str,
    trust: &ModelTrust,
) -> Result<String, (String, String)> {
    let image = ImageReference::parse(reference)
        .map_err(|e| config(format!("image reference {reference:?}: {e}")))?;
    let repository = match &args.signature_repository {
        Some(r) => Some(
            ImageReference::from_name(r)
                .map_err(|e| config(format!("--signature-repository {r:?}: {e}")))?,
        ),
        None => None,
    };
    let mut ignore_paths = Vec::new();
    for p in &args.ignore_paths {
        ignore_paths.push(
            p.to_str()
                .ok_or_else(|| config(format!("{} is not UTF-8", p.display())))?
                .trim_start_matches("./")
                .to_owned(),
        );
    }
    let opts = OciModelOptions {
        ignore_paths,
        // Every layer is delivered to whoever mounts the artifact: git paths are signed
        // unless asked otherwise.
        ignore_git_paths: args.ignore_git_paths,
        repository,
        signature: signature_options(args),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| config(format!("cannot start the async runtime: {e}")))?;
    let oci_err = |e: provenance_oci::Error| (e.code().to_owned(), e.to_string());
    let now = system_now();
    let r = if let Some(dir) = &args.layout {
        let layout = LayoutSource::open(dir).map_err(oci_err)?;
        rt.block_on(verify_oci_model(&layout, &image, trust, &opts, now))
    } else {
        let mut cfg = RegistryConfig {
            docker_config: provenance_oci::DockerConfig::from_environment().map_err(oci_err)?,
            ..RegistryConfig::default()
        };
        for h in &args.allow_http {
            cfg = cfg.allow_http(h.clone());
        }
        let client = RegistryClient::new(cfg).map_err(oci_err)?;
        rt.block_on(verify_oci_model(&client, &image, trust, &opts, now))
    }
    .map_err(oci_err)?;
    Ok(serde_json::json!({
        "verified": true,
        "reference": reference,
        "manifestDigest": r.manifest_digest.to_string(),
        "model": r.model_name,
        "rootDigest": r.root_digest,
        "signer": r.signer,
        "signatureManifest": r.signature_manifest.to_string(),
        "files": r.files,
        "bytes": r.bytes,
    })
    .to_string())
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
    if let Some(reference) = oci_reference(args) {
        return verify_oci(args, &reference, &trust);
    }
    let Some(model_path) = &args.model_path else {
        return Err(config("a model folder or --oci REF is required".into()));
    };
    let opts = VerifyOptions {
        ignore_paths: ignore_paths_from_cwd(model_path, &args.ignore_paths)
            .map_err(|f| (f.code, f.message))?,
        ignore_git_paths: !args.no_ignore_git_paths,
        allow_symlinks: args.allow_symlinks,
        ignore_unsigned_files: args.ignore_unsigned_files,
        threads: args.threads,
        cache: args.cache.clone(),
        paranoid: args.paranoid,
        progress: None,
        signature: signature_options(args),
    };
    // Hashing a model of many GB takes a while: show the bytes hashed, on a terminal only.
    let progress = crate::ui::Progress::spinner("hashing the model");
    let hashed = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut opts = opts;
    if progress.visible() {
        opts.progress = Some(std::sync::Arc::clone(&hashed));
    }
    let signature = default_signature(args.signature.as_deref(), model_path);
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
        let r = verify_model(model_path, &signature, &trust, &opts, system_now());
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

/// The signature file: the one given, else `model.sig` in the current directory when it
/// exists (model_signing's default), else `model.sig` inside the model folder (the
/// model-verifier init container's default).
fn default_signature(given: Option<&Path>, model_path: &Path) -> PathBuf {
    if let Some(p) = given {
        return p.to_path_buf();
    }
    let here = PathBuf::from("model.sig");
    if here.exists() {
        here
    } else {
        model_path.join("model.sig")
    }
}
