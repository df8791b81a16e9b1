//! Model folders on disk, verified against OpenSSF model-signing signatures
//! (sigstore/model-transparency, predicate `https://model_signing/signature/v1.0`).
//!
//! [`verify_model`] verifies the signature ([`ModelTrust`]: key, certificate chain or keyless),
//! rebuilds the manifest from the folder exactly as model-signing does (the signed
//! `files` or `shards` serialization, sorted POSIX relative paths, SHA-256 per file or shard,
//! the signed ignore paths plus the signature file itself and the git paths) and requires an
//! exact match, reporting which files changed, are missing or are extra
//! ([`ModelError::Mismatch`]). Hashing is parallel across files and shards with bounded memory
//! and can reuse a [`DigestCache`]. See `docs/model-verification.md`.
//!
//! ```no_run
//! use provenance_oci::model::{ModelTrust, VerifyOptions, verify_model};
//! use provenance_core::PublicKey;
//! # fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let key = PublicKey::from_pem(&std::fs::read_to_string("key.pub")?)?;
//! let report = verify_model(
//!     "/models/llama".as_ref(),
//!     "/models/llama/model.sig".as_ref(),
//!     &ModelTrust::Key(key),
//!     &VerifyOptions::default(),
//!     provenance_oci::model::system_now(),
//! )?;
//! println!("verified {} files", report.files);
//! # Ok(()) }
//! ```

pub mod error;
pub mod hash;
pub mod oci;
#[cfg(feature = "sign")]
pub mod sign;
pub mod signature;
pub mod walk;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use provenance_attest::modelsigning::ModelSigningManifest;
use provenance_core::{Digest, UnixTime};

pub use error::{ManifestDiff, ModelError};
pub use hash::DigestCache;
pub use oci::{OciModelOptions, OciModelReport, verify_oci_model};
#[cfg(feature = "sign")]
pub use sign::{
    SignModelOptions, SignedModel, dataset_statement, model_payload, sign_dataset, sign_model,
    write_signature,
};
pub use signature::{
    ModelTrust, SignatureOptions, SignedManifest, verify_signature, verify_signature_with,
};
pub use walk::{FileEntry, IgnoreSet, ResolvedIgnores, resolve_ignore_paths};

/// The hash of the files or shards of a signed model (model-signing's `hash_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HashAlgorithm {
    /// SHA-256 (model-signing's default; `sha256`).
    Sha256,
    /// BLAKE2b with a 64-byte digest (`blake2b`; model-signing's `hashing_algorithm="blake2"`).
    Blake2b,
    /// BLAKE3 with its default 32-byte digest (`blake3`; model_signing 1.1's
    /// `hashing_algorithm="blake3"`, always with the `files` method).
    Blake3,
}

impl HashAlgorithm {
    /// Reads the hash of a signed manifest; anything but `sha256`, `blake2b` and `blake3` is
    /// unsupported, and so is `blake3` with shards (model_signing 1.1 hashes whole files with
    /// BLAKE3 even when asked for shards, and its verifier would read such a manifest as files).
    pub fn from_manifest(m: &ModelSigningManifest) -> Result<Self, ModelError> {
        match m.serialization.hash_type.as_str() {
            "sha256" => Ok(HashAlgorithm::Sha256),
            "blake2b" => Ok(HashAlgorithm::Blake2b),
            "blake3" if m.serialization.method == "files" => Ok(HashAlgorithm::Blake3),
            "blake3" => Err(ModelError::Unsupported {
                message: format!(
                    "hash type \"blake3\" with the {:?} method (model_signing writes BLAKE3 for files only)",
                    m.serialization.method
                ),
            }),
            other => Err(ModelError::Unsupported {
                message: format!(
                    "hash type {other:?} (sha256, blake2b and blake3 are implemented)"
                ),
            }),
        }
    }

    /// The name model-signing writes (`sha256`, `blake2b`, `blake3`).
    pub fn name(self) -> &'static str {
        match self {
            HashAlgorithm::Sha256 => "sha256",
            HashAlgorithm::Blake2b => "blake2b",
            HashAlgorithm::Blake3 => "blake3",
        }
    }

    /// Digest length in bytes.
    pub fn digest_len(self) -> usize {
        match self {
            HashAlgorithm::Sha256 => 32,
            HashAlgorithm::Blake2b => 64,
            HashAlgorithm::Blake3 => 32,
        }
    }
}

/// How a model is cut into resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Method {
    /// One resource per file, named by its path.
    Files,
    /// One resource per shard of `shard_size` bytes, named `path:start:end`; empty files have
    /// no shard.
    Shards(u64),
}

impl Method {
    /// Reads the method of a signed manifest (its hash must be one of [`HashAlgorithm`]).
    pub fn from_manifest(m: &ModelSigningManifest) -> Result<Self, ModelError> {
        let s = &m.serialization;
        HashAlgorithm::from_manifest(m)?;
        match s.method.as_str() {
            "files" => Ok(Method::Files),
            "shards" => match s.shard_size {
                Some(n) if n > 0 => Ok(Method::Shards(n)),
                _ => Err(ModelError::MalformedManifest {
                    message: "shards serialization without a positive shard_size".into(),
                }),
            },
            other => Err(ModelError::Unsupported {
                message: format!("serialization method {other:?}"),
            }),
        }
    }
}

/// Options of [`verify_model`] and [`compute_manifest`].
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// Extra paths to ignore, relative to the model root (`--ignore-paths`).
    pub ignore_paths: Vec<String>,
    /// Ignore `.git`, `.gitattributes`, `.github`, `.gitignore` (model-signing's default).
    pub ignore_git_paths: bool,
    /// Follow symlinks that stay inside the model root (model-signing's `--allow_symlinks`);
    /// off by default: any symlink is an error.
    pub allow_symlinks: bool,
    /// Hash only the files the signature names; unsigned extra files are then not errors.
    pub ignore_unsigned_files: bool,
    /// Hashing threads (0: the machine's parallelism).
    pub threads: usize,
    /// Digest cache file; `None` disables the cache.
    pub cache: Option<PathBuf>,
    /// Ignore the cache and read every byte (the cache is still refreshed).
    pub paranoid: bool,
    /// Incremented by the number of bytes hashed (or found in the cache) as work proceeds,
    /// for progress display.
    pub progress: Option<std::sync::Arc<std::sync::atomic::AtomicU64>>,
    /// Stricter signature checks than model_signing's (off by default).
    pub signature: SignatureOptions,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            ignore_paths: Vec::new(),
            ignore_git_paths: true,
            allow_symlinks: false,
            ignore_unsigned_files: false,
            threads: 0,
            cache: None,
            paranoid: false,
            progress: None,
            signature: SignatureOptions::default(),
        }
    }
}

/// A manifest rebuilt from a folder: resource name to digest, in model-signing order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalManifest {
    /// The method used.
    pub method: Method,
    /// The hash used.
    pub hash: HashAlgorithm,
    /// `(name, digest)` in model-signing's canonical order.
    pub resources: Vec<(String, Vec<u8>)>,
    /// Number of files hashed.
    pub files: usize,
    /// Total bytes covered.
    pub bytes: u64,
}

impl LocalManifest {
    /// SHA-256 over the resource digests in order (whatever their hash): the model-signing
    /// subject digest.
    pub fn root_digest(&self) -> Digest {
        let mut all = Vec::with_capacity(self.resources.len() * self.hash.digest_len());
        for (_, d) in &self.resources {
            all.extend_from_slice(d);
        }
        Digest::sha256_of(&all)
    }

    /// SHA-256 over every resource's name bound to its digest, in model-signing order: for
    /// each resource, the byte length of its name (8 bytes, big-endian), the name (UTF-8), and
    /// its digest. Unlike [`LocalManifest::root_digest`], renaming or moving a file changes
    /// it. The digest of a dataset folder ([`dataset_digest`]).
    pub fn named_digest(&self) -> Digest {
        let mut all = Vec::new();
        for (name, d) in &self.resources {
            all.extend_from_slice(&(name.len() as u64).to_be_bytes());
            all.extend_from_slice(name.as_bytes());
            all.extend_from_slice(d);
        }
        Digest::sha256_of(&all)
    }
}

/// What a successful verification established.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelReport {
    /// The signed model name (informative).
    pub model_name: String,
    /// The signed subject digest (`sha256:...`).
    pub root_digest: Option<String>,
    /// Who signed.
    pub signer: String,
    /// `files` or `shards`.
    pub method: Method,
    /// Files hashed.
    pub files: usize,
    /// Bytes covered.
    pub bytes: u64,
}

/// The system clock as a [`UnixTime`] (`provenance-oci` may read the clock; the pure crates
/// may not).
pub fn system_now() -> UnixTime {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    UnixTime(i64::try_from(secs).unwrap_or(i64::MAX))
}

/// Rebuilds the manifest of `root` with `method` and SHA-256 (see [`compute_manifest_with`]
/// for other hashes).
pub fn compute_manifest(
    root: &Path,
    method: Method,
    ignore: &IgnoreSet,
    opts: &VerifyOptions,
    only: Option<&BTreeSet<String>>,
) -> Result<LocalManifest, ModelError> {
    compute_manifest_with(root, method, HashAlgorithm::Sha256, ignore, opts, only)
}

/// Rebuilds the manifest of `root` with `method` and `hash`.
pub fn compute_manifest_with(
    root: &Path,
    method: Method,
    hash: HashAlgorithm,
    ignore: &IgnoreSet,
    opts: &VerifyOptions,
    only: Option<&BTreeSet<String>>,
) -> Result<LocalManifest, ModelError> {
    let entries = walk::walk(root, ignore, opts.allow_symlinks, only)?;
    let mut tasks = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        match method {
            Method::Files => tasks.push(hash::Task {
                entry: i,
                start: 0,
                end: e.size,
                whole: true,
            }),
            Method::Shards(n) => {
                let mut start = 0;
                while start < e.size {
                    let end = start.saturating_add(n).min(e.size);
                    tasks.push(hash::Task {
                        entry: i,
                        start,
                        end,
                        whole: false,
                    });
                    start = end;
                }
            }
        }
    }
    let cache = opts.cache.as_ref().map(DigestCache::open);
    let threads = if opts.threads == 0 {
        hash::default_threads()
    } else {
        opts.threads
    };
    // Paranoid: read everything, but refresh the cache with what was read.
    let lookup = if opts.paranoid { None } else { cache.as_ref() };
    let digests = hash::hash_tasks_with(
        &entries,
        &tasks,
        threads,
        lookup,
        cache.as_ref(),
        opts.progress.as_deref(),
        hash,
    )?;
    if let Some(c) = &cache {
        c.save()?;
    }
    let mut resources: Vec<(String, Vec<u8>)> = tasks
        .iter()
        .zip(digests)
        .map(|(t, d)| {
            let e = &entries[t.entry];
            let name = match method {
                Method::Files => e.rel.clone(),
                Method::Shards(_) => format!("{}:{}:{}", e.rel, t.start, t.end),
            };
            (name, d)
        })
        .collect();
    resources.sort_by(|a, b| resource_order(&a.0, &b.0, method));
    Ok(LocalManifest {
        method,
        hash,
        resources,
        files: entries.len(),
        bytes: entries.iter().map(|e| e.size).sum(),
    })
}

/// Splits a resource name into (path, start, end) for shards.
fn split_shard(name: &str) -> Option<(&str, u64, u64)> {
    let mut it = name.rsplitn(3, ':');
    let end = it.next()?.parse().ok()?;
    let start = it.next()?.parse().ok()?;
    let path = it.next()?;
    Some((path, start, end))
}

fn resource_order(a: &str, b: &str, method: Method) -> std::cmp::Ordering {
    match method {
        Method::Files => walk::path_order(a, b),
        Method::Shards(_) => match (split_shard(a), split_shard(b)) {
            (Some((pa, sa, ea)), Some((pb, sb, eb))) => {
                walk::path_order(pa, pb).then(sa.cmp(&sb)).then(ea.cmp(&eb))
            }
            _ => a.cmp(b),
        },
    }
}

/// The file path of a resource name under `method`.
fn resource_path(name: &str, method: Method) -> Result<&str, ModelError> {
    let path = match method {
        Method::Files => name,
        Method::Shards(_) => {
            split_shard(name)
                .ok_or_else(|| ModelError::MalformedManifest {
                    message: format!(
                        "resource {:?} is not path:start:end",
                        name.chars().take(256).collect::<String>()
                    ),
                })?
                .0
        }
    };
    walk::check_resource_path(path)?;
    Ok(path)
}

/// Compares a signed manifest with a rebuilt one, file by file.
pub fn diff(
    expected: &ModelSigningManifest,
    actual: &LocalManifest,
) -> Result<ManifestDiff, ModelError> {
    let method = actual.method;
    let mut want: BTreeMap<&str, BTreeMap<&str, String>> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    // model-signing names shard digests `<hash>-sharded-<shard_size>`.
    let algorithm = match method {
        Method::Files => actual.hash.name().to_owned(),
        Method::Shards(n) => format!("{}-sharded-{n}", actual.hash.name()),
    };
    for r in &expected.resources {
        if r.algorithm != algorithm {
            return Err(ModelError::Unsupported {
                message: format!(
                    "resource digest algorithm {:?} (expected {algorithm:?})",
                    r.algorithm
                ),
            });
        }
        if !seen.insert(r.name.as_str()) {
            return Err(ModelError::MalformedManifest {
                message: format!("duplicate resource {:?}", r.name),
            });
        }
        let path = resource_path(&r.name, method)?;
        want.entry(path)
            .or_default()
            .insert(r.name.as_str(), r.digest.to_ascii_lowercase());
    }
    let mut have: BTreeMap<&str, BTreeMap<&str, String>> = BTreeMap::new();
    for (name, d) in &actual.resources {
        let path = resource_path(name, method)?;
        have.entry(path)
            .or_default()
            .insert(name.as_str(), hex::encode(d));
    }
    let mut out = ManifestDiff::default();
    for (path, w) in &want {
        match have.get(path) {
            None => out.missing.push((*path).to_owned()),
            Some(h) if h != w => out.changed.push((*path).to_owned()),
            Some(_) => {}
        }
    }
    for path in have.keys() {
        if !want.contains_key(path) {
            out.extra.push((*path).to_owned());
        }
    }
    for v in [&mut out.changed, &mut out.missing, &mut out.extra] {
        v.sort_by(|a, b| walk::path_order(a, b));
    }
    Ok(out)
}

/// Verifies the model folder `root` against the signature file `signature` and `trust`.
///
/// Succeeds only when the signature verifies and the folder's rebuilt manifest equals the
/// signed one exactly (unless `ignore_unsigned_files`, which tolerates unsigned extra files).
pub fn verify_model(
    root: &Path,
    signature: &Path,
    trust: &ModelTrust,
    opts: &VerifyOptions,
    now: UnixTime,
) -> Result<ModelReport, ModelError> {
    let bytes = read_bounded(signature, signature::MAX_SIGNATURE_BYTES)?;
    let signed = verify_signature_with(&bytes, trust, now, &opts.signature)?;
    let method = Method::from_manifest(&signed.manifest)?;
    let hash = HashAlgorithm::from_manifest(&signed.manifest)?;
    let ignore = ignore_set(
        root,
        signature,
        opts,
        &signed.manifest.serialization.ignore_paths,
    )?;
    let only = if opts.ignore_unsigned_files {
        let mut set = BTreeSet::new();
        for r in &signed.manifest.resources {
            set.insert(resource_path(&r.name, method)?.to_owned());
        }
        Some(set)
    } else {
        None
    };
    let local = compute_manifest_with(root, method, hash, &ignore, opts, only.as_ref())?;
    let d = diff(&signed.manifest, &local)?;
    if !d.is_empty() {
        return Err(ModelError::Mismatch { diff: d });
    }
    // Belt and braces: the rebuilt root digest equals the signed subject.
    if let Some(rd) = &signed.root_digest
        && *rd != local.root_digest()
    {
        return Err(ModelError::MalformedManifest {
            message: format!(
                "resources match but the root digest differs ({rd} vs {})",
                local.root_digest()
            ),
        });
    }
    Ok(ModelReport {
        model_name: signed.model_name,
        root_digest: signed.root_digest.map(|d| d.to_string()),
        signer: signed.signer,
        method,
        files: local.files,
        bytes: local.bytes,
    })
}

/// The ignore set used for verification: the caller's paths, the signed `ignore_paths`, the
/// signature file when it lies inside the root, and the git paths unless disabled.
pub fn ignore_set(
    root: &Path,
    signature: &Path,
    opts: &VerifyOptions,
    signed_ignores: &[String],
) -> Result<IgnoreSet, ModelError> {
    let mut paths: Vec<String> = opts.ignore_paths.clone();
    paths.extend(signed_ignores.iter().cloned());
    let canon_root = root.canonicalize().map_err(|e| ModelError::io(root, &e))?;
    if let Ok(sig) = signature.canonicalize()
        && let Ok(rel) = sig.strip_prefix(&canon_root)
        && let Some(s) = rel.to_str()
    {
        paths.push(s.replace(std::path::MAIN_SEPARATOR, "/"));
    }
    let set = IgnoreSet::new(paths);
    Ok(if opts.ignore_git_paths {
        set.with_git_paths()
    } else {
        set
    })
}

fn read_bounded(path: &Path, limit: usize) -> Result<Vec<u8>, ModelError> {
    use std::io::Read;
    let f = std::fs::File::open(path).map_err(|e| ModelError::io(path, &e))?;
    let mut buf = Vec::new();
    f.take(limit as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(|e| ModelError::io(path, &e))?;
    if buf.len() > limit {
        return Err(ModelError::TooLarge {
            what: "signature file",
            limit: limit as u64,
        });
    }
    Ok(buf)
}

/// The digest of a dataset at `path`, as `DATASET_SHA256` carries it: for a regular file, the
/// SHA-256 of its bytes; for a folder, [`LocalManifest::named_digest`] of the folder with the
/// `files` serialization and the default git ignores: SHA-256 over each file's relative POSIX
/// path (length-prefixed) and SHA-256, in model-signing path order, so that moving or renaming
/// a file (`dog/001.jpg` to `cat/002.jpg`) changes the digest.
///
/// This is not model-signing's subject digest ([`LocalManifest::root_digest`], which hashes the
/// per-file digests only and leaves the names to the signed manifest): verify a folder signed
/// by `model_signing` with [`verify_model`].
pub fn dataset_digest(path: &Path, opts: &VerifyOptions) -> Result<Digest, ModelError> {
    let meta = std::fs::metadata(path).map_err(|e| ModelError::io(path, &e))?;
    if meta.is_file() {
        let f = std::fs::File::open(path).map_err(|e| ModelError::io(path, &e))?;
        return Digest::compute_reader(provenance_core::DigestAlgorithm::Sha256, f).map_err(|e| {
            ModelError::Io {
                path: path.to_owned(),
                message: e.to_string(),
            }
        });
    }
    let ignore = IgnoreSet::new(&opts.ignore_paths);
    let ignore = if opts.ignore_git_paths {
        ignore.with_git_paths()
    } else {
        ignore
    };
    Ok(compute_manifest(path, Method::Files, &ignore, opts, None)?.named_digest())
}

/// Checks a dataset against an expected digest (`sha256:<hex>` or bare hex).
pub fn verify_dataset_digest(
    path: &Path,
    expected: &str,
    opts: &VerifyOptions,
) -> Result<Digest, ModelError> {
    let want = if expected.contains(':') {
        Digest::parse(expected)
    } else {
        Digest::parse(&format!("sha256:{expected}"))
    }
    .map_err(|e| ModelError::Config {
        message: format!("expected dataset digest: {e}"),
    })?;
    let got = dataset_digest(path, opts)?;
    if got != want {
        return Err(ModelError::DatasetMismatch {
            expected: want.to_string(),
            actual: got.to_string(),
        });
    }
    Ok(got)
}

/// What a verified dataset attestation established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetAttestation {
    /// The dataset digest (see [`dataset_digest`]), which the attestation's subject names.
    pub digest: Digest,
    /// The attestation's predicate type.
    pub predicate_type: String,
    /// The verified in-toto Statement (JSON).
    pub statement: Vec<u8>,
}

/// Verifies a signed in-toto attestation (a Sigstore bundle with a DSSE envelope) about the
/// dataset at `path`: the signature must verify under `expectation` and `root`, and one of the
/// Statement's subjects must carry the dataset's digest ([`dataset_digest`]). A model-signing
/// signature of a folder is not one (its subject does not bind the file names): use
/// [`verify_model`] for those.
pub fn verify_dataset_attestation(
    path: &Path,
    bundle_json: &[u8],
    expectation: &provenance_core::verify::Expectation,
    root: &provenance_core::TrustRoot,
    opts: &VerifyOptions,
    now: UnixTime,
) -> Result<DatasetAttestation, ModelError> {
    use provenance_core::verify::{Artifact, SignatureMaterial, Verifier};
    let digest = dataset_digest(path, opts)?;
    let verifier = Verifier::new(root).map_err(|e| ModelError::Config {
        message: e.to_string(),
    })?;
    let v = verifier
        .verify(
            Artifact::Digest(&digest),
            &SignatureMaterial::Bundle(bundle_json.to_vec()),
            expectation,
            now,
        )
        .map_err(|e| ModelError::Signature {
            code: e.code().to_string(),
            message: e.to_string(),
        })?;
    let Some((ptype, payload)) = v.payload else {
        return Err(ModelError::MalformedSignature {
            message: "the attestation is not a DSSE envelope".into(),
        });
    };
    if ptype != "application/vnd.in-toto+json" {
        return Err(ModelError::MalformedManifest {
            message: format!("payload type {ptype:?} is not in-toto"),
        });
    }
    let statement = provenance_attest::Statement::from_json(&payload).map_err(|e| {
        ModelError::MalformedManifest {
            message: e.to_string(),
        }
    })?;
    Ok(DatasetAttestation {
        digest,
        predicate_type: statement.predicate_type.clone(),
        statement: payload,
    })
}
