//! Errors of model-folder verification, each with a stable machine code (`model.*`).

use std::path::PathBuf;

/// What differs between the signed manifest and the folder.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ManifestDiff {
    /// Files present in both whose content (or, for shards, shard layout) differs, sorted.
    pub changed: Vec<String>,
    /// Files the signature names that the folder does not have, sorted.
    pub missing: Vec<String>,
    /// Files in the folder that the signature does not name, sorted.
    pub extra: Vec<String>,
}

impl ManifestDiff {
    /// True when nothing differs.
    pub fn is_empty(&self) -> bool {
        self.changed.is_empty() && self.missing.is_empty() && self.extra.is_empty()
    }
}

impl std::fmt::Display for ManifestDiff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if !self.changed.is_empty() {
            parts.push(format!("changed: {}", self.changed.join(", ")));
        }
        if !self.missing.is_empty() {
            parts.push(format!("missing: {}", self.missing.join(", ")));
        }
        if !self.extra.is_empty() {
            parts.push(format!("extra: {}", self.extra.join(", ")));
        }
        f.write_str(&parts.join("; "))
    }
}

/// Errors reported while verifying a model folder against a model-signing signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// The folder does not match the signed manifest.
    #[error("model does not match its signature: {diff}")]
    Mismatch {
        /// Which files changed, are missing or are extra.
        diff: ManifestDiff,
    },
    /// A symbolic link was found and symlinks are not allowed (the reference tool's default).
    #[error("symbolic link {path:?} in the model (symlinks are not allowed)")]
    Symlink {
        /// Path relative to the model root.
        path: String,
    },
    /// A symbolic link points outside the model root, or cannot be resolved.
    #[error("symbolic link {path:?} escapes the model root or cannot be resolved")]
    SymlinkEscape {
        /// Path relative to the model root.
        path: String,
    },
    /// A path in the model or in the signature is not a plain relative path inside the root
    /// (absolute, `..`, empty component, not UTF-8, a backslash, a NUL).
    #[error("unsafe or unrepresentable path {path:?}: {reason}")]
    UnsafePath {
        /// The offending path.
        path: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// Something in the model is neither a regular file nor a directory (socket, FIFO, device).
    #[error("{path:?} is neither a regular file nor a directory")]
    SpecialFile {
        /// Path relative to the model root.
        path: String,
    },
    /// Reading the model, the signature, a key or the cache failed.
    #[error("I/O error on {path:?}: {message}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A file changed between the walk that listed it and the end of its hashing: replaced by
    /// another file (or a symlink) at its path, resized, or modified (its device, inode, size,
    /// mtime or ctime differ from the walk's). Nothing is cached for it; verify again.
    #[error("{path:?} changed while it was being hashed")]
    Unstable {
        /// Path relative to the model root.
        path: String,
    },
    /// The signature file is not a model-signing Sigstore bundle we can read.
    #[error("malformed signature: {message}")]
    MalformedSignature {
        /// What is wrong.
        message: String,
    },
    /// The signed payload is not a valid model-signing statement (wrong types, root digest
    /// inconsistent with the resources, bad resource names).
    #[error("malformed signed manifest: {message}")]
    MalformedManifest {
        /// What is wrong.
        message: String,
    },
    /// The manifest uses a serialization or hash we do not implement (fail closed).
    #[error("unsupported serialization: {message}")]
    Unsupported {
        /// What is unsupported.
        message: String,
    },
    /// The signature did not verify against the given key, certificate chain or identity.
    #[error("signature verification failed ({code}): {message}")]
    Signature {
        /// The underlying stable code (`verify.*` from provenance-core, or `model.*`).
        code: String,
        /// What failed.
        message: String,
    },
    /// The public key does not match the bundle's key hint.
    #[error("the public key does not match the signature's key hint {hint}")]
    KeyMismatch {
        /// The hint found in the bundle (hex SHA-256 of the signer's PEM public key).
        hint: String,
    },
    /// The certificate chain did not verify, or the signing certificate may not sign.
    #[error("certificate chain verification failed: {message}")]
    CertificateChain {
        /// What failed.
        message: String,
    },
    /// Invalid options or trust configuration (unreadable key, bad PEM, ...).
    #[error("invalid configuration: {message}")]
    Config {
        /// What is wrong.
        message: String,
    },
    /// Signing a model or dataset failed (the signer's error code and message).
    #[error("signing failed: {message} ({code})")]
    Signing {
        /// The underlying error code (e.g. `core.sign.failed`).
        code: String,
        /// What went wrong.
        message: String,
    },
    /// A digest given for a dataset did not match.
    #[error("dataset digest mismatch: expected {expected}, got {actual}")]
    DatasetMismatch {
        /// Expected digest.
        expected: String,
        /// Computed digest.
        actual: String,
    },
    /// No model-signing signature is attached to the model artifact (no Sigstore bundle
    /// referrer, or none claiming a model-signing predicate type).
    #[error("no model-signing signature is attached to {reference}")]
    NoSignature {
        /// The model artifact (`repository@digest`).
        reference: String,
    },
    /// A layer of a model artifact is not a file of the model (no path annotation, an unsafe
    /// or duplicate path, conflicting path annotations).
    #[error("model artifact layer {layer}: {message}")]
    OciLayer {
        /// The layer digest.
        layer: String,
        /// What is wrong.
        message: String,
    },
    /// The model artifact cannot be verified from its manifest alone: archive or compressed
    /// layers, a non-SHA-256 layer digest, or a signature whose digests are not whole-file
    /// SHA-256 (`shards`, `blake2b`). Refused, not half-checked.
    #[error("the model artifact cannot be verified without its layer bytes: {message}")]
    NeedsBlobs {
        /// What needs the bytes.
        message: String,
    },
    /// A limit was exceeded (number of files, signature size).
    #[error("{what} exceeds the limit of {limit}")]
    TooLarge {
        /// What was too large.
        what: &'static str,
        /// The limit.
        limit: u64,
    },
}

impl ModelError {
    /// A stable, machine-readable code, e.g. `model.mismatch`.
    pub fn code(&self) -> &'static str {
        match self {
            ModelError::Mismatch { diff } => {
                // The most specific code when only one kind of difference is present.
                match (
                    diff.changed.is_empty(),
                    diff.missing.is_empty(),
                    diff.extra.is_empty(),
                ) {
                    (false, true, true) => "model.file_changed",
                    (true, false, true) => "model.file_missing",
                    (true, true, false) => "model.file_extra",
                    _ => "model.mismatch",
                }
            }
            ModelError::Symlink { .. } => "model.symlink",
            ModelError::SymlinkEscape { .. } => "model.symlink_escape",
            ModelError::UnsafePath { .. } => "model.unsafe_path",
            ModelError::SpecialFile { .. } => "model.special_file",
            ModelError::Io { .. } => "model.io",
            ModelError::Unstable { .. } => "model.unstable",
            ModelError::MalformedSignature { .. } => "model.malformed_signature",
            ModelError::MalformedManifest { .. } => "model.malformed_manifest",
            ModelError::Unsupported { .. } => "model.unsupported",
            ModelError::Signature { .. } => "model.signature",
            ModelError::KeyMismatch { .. } => "model.key_mismatch",
            ModelError::CertificateChain { .. } => "model.certificate_chain",
            ModelError::Config { .. } => "model.config",
            ModelError::Signing { .. } => "model.signing",
            ModelError::DatasetMismatch { .. } => "model.dataset_mismatch",
            ModelError::TooLarge { .. } => "model.too_large",
            ModelError::NoSignature { .. } => "model.no_signature",
            ModelError::OciLayer { .. } => "model.oci_layer",
            ModelError::NeedsBlobs { .. } => "model.needs_blobs",
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, e: &std::io::Error) -> Self {
        ModelError::Io {
            path: path.into(),
            message: e.to_string(),
        }
    }
}
