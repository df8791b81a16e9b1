//! Signing model folders into OpenSSF model-signing v1.0 signatures (what `model_signing sign
//! key` / `sign certificate` write and `model_signing verify` checks), and datasets into signed
//! in-toto attestations.
//!
//! The manifest is computed by [`compute_manifest`], the code verification uses (same walk,
//! ignore rules, path order and parallel hashing), so a folder signed here verifies here and
//! with the reference implementation.

use std::path::{Path, PathBuf};

use provenance_core::Digest;
use provenance_core::sign::{Signer, SignerMaterial, bundle};
use serde_json::{Value, json};

use super::error::ModelError;
use super::signature::python_pem;
use super::walk::GIT_PATHS;
use super::{IgnoreSet, LocalManifest, Method, VerifyOptions, compute_manifest};

/// The predicate type of model-signing v1.0 signatures.
pub const MODEL_SIGNING_V1: &str = "https://model_signing/signature/v1.0";

/// Options of [`sign_model`] (model_signing's flag names in brackets).
#[derive(Debug, Clone)]
pub struct SignModelOptions {
    /// Paths to leave out, relative to the model root (`--ignore-paths`).
    pub ignore_paths: Vec<String>,
    /// Leave out `.git`, `.gitattributes`, `.github`, `.gitignore` (`--ignore-git-paths`,
    /// on by default).
    pub ignore_git_paths: bool,
    /// Follow symlinks that stay inside the root (`--allow-symlinks`).
    pub allow_symlinks: bool,
    /// `files` (default) or `shards` of a fixed size.
    pub method: Method,
    /// The subject name (default: the folder's name).
    pub model_name: Option<String>,
    /// Hashing threads (0: the machine's parallelism).
    pub threads: usize,
    /// Incremented by the bytes hashed, for progress display.
    pub progress: Option<std::sync::Arc<std::sync::atomic::AtomicU64>>,
}

impl Default for SignModelOptions {
    fn default() -> Self {
        SignModelOptions {
            ignore_paths: Vec::new(),
            ignore_git_paths: true,
            allow_symlinks: false,
            method: Method::Files,
            model_name: None,
            threads: 0,
            progress: None,
        }
    }
}

/// A signed model.
#[derive(Debug, Clone)]
pub struct SignedModel {
    /// The signature file written (a Sigstore bundle v0.3 JSON).
    pub signature: PathBuf,
    /// The subject digest (SHA-256 over the resource digests in order).
    pub root_digest: Digest,
    /// The manifest signed.
    pub manifest: LocalManifest,
    /// The bundle bytes.
    pub bundle: Vec<u8>,
}

fn signing(e: provenance_core::Error) -> ModelError {
    ModelError::Signing {
        code: e.code().to_owned(),
        message: e.to_string(),
    }
}

/// The root-relative POSIX path of `path` when it lies inside `root`.
fn relative_inside(root: &Path, path: &Path) -> Option<String> {
    let root = root.canonicalize().ok()?;
    // The signature may not exist yet: canonicalize its folder.
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let full = parent.canonicalize().ok()?.join(path.file_name()?);
    let rel = full.strip_prefix(&root).ok()?;
    rel.to_str()
        .map(|s| s.replace(std::path::MAIN_SEPARATOR, "/"))
}

/// The in-toto Statement model-signing signs for `manifest`.
pub fn model_statement(
    model_name: &str,
    manifest: &LocalManifest,
    ignore_paths: &[String],
    allow_symlinks: bool,
) -> Value {
    let (method, algorithm) = match manifest.method {
        Method::Files => ("files", "sha256".to_owned()),
        Method::Shards(n) => ("shards", format!("sha256-sharded-{n}")),
    };
    let mut serialization = json!({
        "method": method,
        "hash_type": "sha256",
        "allow_symlinks": allow_symlinks,
        "ignore_paths": ignore_paths,
    });
    if let Method::Shards(n) = manifest.method {
        serialization["shard_size"] = json!(n);
    }
    let resources: Vec<Value> = manifest
        .resources
        .iter()
        .map(|(name, d)| json!({ "name": name, "digest": hex::encode(d), "algorithm": algorithm }))
        .collect();
    json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{ "name": model_name, "digest": { "sha256": manifest.root_digest().hex() } }],
        "predicateType": MODEL_SIGNING_V1,
        "predicate": { "serialization": serialization, "resources": resources },
    })
}

/// Signs the model folder `root` into `signature` (model_signing's `--signature`, default
/// `model.sig`): a Sigstore bundle v0.3 with a DSSE envelope over the model-signing Statement.
/// Key signers write the public-key hint model-signing writes; certificate signers write the
/// chain as `x509CertificateChain`. The signature file itself, when inside the folder, is left
/// out of the manifest and recorded in `ignore_paths`.
pub fn sign_model(
    root: &Path,
    signature: &Path,
    signer: &dyn Signer,
    opts: &SignModelOptions,
) -> Result<SignedModel, ModelError> {
    let (manifest, payload) = model_payload(root, signature, opts)?;
    let options = bundle::Options {
        hint: match signer.material() {
            SignerMaterial::PublicKey(k) => Some(hex::encode(
                Digest::sha256_of(python_pem(&k).as_bytes()).as_bytes(),
            )),
            _ => None,
        },
        certificate_chain: true,
        ..Default::default()
    };
    let b = bundle::dsse_with(signer, "application/vnd.in-toto+json", &payload, &options)
        .map_err(signing)?;
    write_file(signature, &b)?;
    Ok(SignedModel {
        signature: signature.to_owned(),
        root_digest: manifest.root_digest(),
        manifest,
        bundle: b,
    })
}

/// The manifest of the model folder `root` and the model-signing Statement (JSON) that
/// [`sign_model`] signs for it, with the same ignore rules (the signature file `signature`
/// left out when inside the folder); for signers that produce the bundle themselves (keyless
/// signing in `provenance_oci::keyless`). Write the bundle with [`write_signature`].
pub fn model_payload(
    root: &Path,
    signature: &Path,
    opts: &SignModelOptions,
) -> Result<(LocalManifest, Vec<u8>), ModelError> {
    let meta = std::fs::metadata(root).map_err(|e| ModelError::io(root, &e))?;
    if !meta.is_dir() {
        return Err(ModelError::Config {
            message: format!("{} is not a folder", root.display()),
        });
    }
    let mut ignore_paths: Vec<String> = opts.ignore_paths.clone();
    if let Some(rel) = relative_inside(root, signature) {
        ignore_paths.push(rel);
    }
    if opts.ignore_git_paths {
        ignore_paths.extend(GIT_PATHS.iter().map(|s| s.to_string()));
    }
    // Normalized as the verifier reads them back.
    let ignore = IgnoreSet::new(&ignore_paths);
    let recorded = ignore.to_strings();
    let vopts = VerifyOptions {
        ignore_paths: Vec::new(),
        ignore_git_paths: false,
        allow_symlinks: opts.allow_symlinks,
        ignore_unsigned_files: false,
        threads: opts.threads,
        cache: None,
        paranoid: true,
        progress: opts.progress.clone(),
        signature: Default::default(),
    };
    let manifest = compute_manifest(root, opts.method, &ignore, &vopts, None)?;
    let name = opts.model_name.clone().unwrap_or_else(|| {
        root.canonicalize()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "model".to_owned())
    });
    let statement = model_statement(&name, &manifest, &recorded, opts.allow_symlinks);
    let payload = serde_json::to_vec(&statement).map_err(|e| ModelError::MalformedManifest {
        message: e.to_string(),
    })?;
    Ok((manifest, payload))
}

/// Writes a signature file: a fresh temporary file beside it (created exclusively, never
/// through a symlink) renamed into place, so a symlink at `path` or at a predictable
/// temporary name is replaced, never followed.
pub fn write_signature(path: &Path, bytes: &[u8]) -> Result<(), ModelError> {
    write_file(path, bytes)
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), ModelError> {
    super::hash::replace_file(path, bytes, 0o644)
}

/// Signs a dataset (a file, or a folder digested as [`super::dataset_digest`] does) as the
/// subject of an in-toto Statement with `predicate_type` / `predicate` (e.g. the dataset
/// provenance predicate), into a Sigstore bundle with a DSSE envelope, which
/// [`super::verify_dataset_attestation`] verifies. Returns the dataset digest and the bundle.
pub fn sign_dataset(
    path: &Path,
    name: &str,
    predicate_type: &str,
    predicate: Value,
    signer: &dyn Signer,
    opts: &VerifyOptions,
) -> Result<(Digest, Vec<u8>), ModelError> {
    let (digest, statement) = dataset_statement(path, name, predicate_type, predicate, opts)?;
    let b = bundle::dsse(signer, "application/vnd.in-toto+json", &statement).map_err(signing)?;
    Ok((digest, b))
}

/// The dataset's digest and the in-toto Statement (JSON) [`sign_dataset`] signs: its subject
/// is `name` with the digest of the file or folder at `path`. For signers that sign a Statement
/// themselves (keyless signing against Fulcio and Rekor).
pub fn dataset_statement(
    path: &Path,
    name: &str,
    predicate_type: &str,
    predicate: Value,
    opts: &VerifyOptions,
) -> Result<(Digest, Vec<u8>), ModelError> {
    let digest = super::dataset_digest(path, opts)?;
    let statement = provenance_attest::build::statement(
        vec![provenance_attest::build::resource(name, &digest)],
        predicate_type,
        predicate,
    )
    .map_err(|e| ModelError::MalformedManifest {
        message: e.to_string(),
    })?;
    Ok((digest, statement.to_json()))
}
