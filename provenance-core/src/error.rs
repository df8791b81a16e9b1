//! The error type of `provenance-core`.
//!
//! Every variant carries a stable machine code (see [`Error::code`]) and the context a user
//! needs to act on it. Codes never change meaning once published; new variants get new codes.

use std::fmt;

/// The part of an image reference that failed to parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ReferencePart {
    /// The whole input (empty, too long, bad characters at the top level).
    Whole,
    /// The registry host (and optional port).
    Domain,
    /// The repository path (components separated by `/`).
    Path,
    /// The tag after `:`.
    Tag,
    /// The digest after `@`.
    Digest,
}

impl fmt::Display for ReferencePart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ReferencePart::Whole => "reference",
            ReferencePart::Domain => "domain",
            ReferencePart::Path => "path",
            ReferencePart::Tag => "tag",
            ReferencePart::Digest => "digest",
        })
    }
}

/// Errors reported by `provenance-core`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A digest string is not `<algorithm>:<hex>` with a supported algorithm and the right length.
    #[error("invalid digest {input:?}: {reason}")]
    InvalidDigest {
        /// The offending input (truncated to 128 characters).
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The digest algorithm is syntactically valid but not supported.
    #[error("unsupported digest algorithm {algorithm:?} (supported: sha256, sha512)")]
    UnsupportedDigestAlgorithm {
        /// The algorithm as written.
        algorithm: String,
    },
    /// Content did not hash to the expected digest.
    #[error("digest mismatch: expected {expected}, computed {actual}")]
    DigestMismatch {
        /// The digest that was expected.
        expected: String,
        /// The digest of the bytes actually seen.
        actual: String,
    },
    /// Reading a stream to hash it failed.
    #[error("reading content to hash failed: {message}")]
    Io {
        /// The I/O error, as text.
        message: String,
    },
    /// An image reference does not follow the distribution reference grammar.
    #[error("invalid image reference {input:?}: {part}: {reason}")]
    InvalidReference {
        /// The offending input (truncated to 256 characters).
        input: String,
        /// Which part is wrong.
        part: ReferencePart,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A trust root document could not be parsed or is not usable.
    #[error("invalid trust root at {field}: {reason}")]
    InvalidTrustRoot {
        /// JSON path of the offending field, e.g. `tlogs[0].publicKey.rawBytes`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A public key could not be parsed or uses an unsupported algorithm.
    #[error("invalid public key: {reason}")]
    InvalidPublicKey {
        /// What is wrong with it.
        reason: String,
    },
    /// A private key could not be parsed or uses an unsupported algorithm.
    #[error("invalid private key: {reason}")]
    InvalidPrivateKey {
        /// What is wrong with it.
        reason: String,
    },
    /// An encrypted private key could not be decrypted (wrong password, corrupted file,
    /// unsupported parameters).
    #[error("cannot decrypt the private key: {reason}")]
    KeyDecryption {
        /// What went wrong.
        reason: String,
    },
    /// Producing a signature or signed document failed.
    #[error("signing failed: {reason}")]
    Signing {
        /// What went wrong.
        reason: String,
    },
    /// A signature, certificate, identity, transparency-log or timestamp check failed while
    /// verifying Sigstore or cosign material (see [`crate::verify`]). The code names the check.
    #[error("{detail}")]
    Verification {
        /// Which check failed.
        check: crate::verify::Check,
        /// What was wrong, for humans.
        detail: String,
    },
}

impl Error {
    /// A stable, machine-readable code for this error, e.g. `core.digest.mismatch`.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidDigest { .. } => "core.digest.invalid",
            Error::UnsupportedDigestAlgorithm { .. } => "core.digest.unsupported_algorithm",
            Error::DigestMismatch { .. } => "core.digest.mismatch",
            Error::Io { .. } => "core.io",
            Error::InvalidReference { .. } => "core.reference.invalid",
            Error::InvalidTrustRoot { .. } => "core.trust_root.invalid",
            Error::InvalidPublicKey { .. } => "core.key.invalid",
            Error::InvalidPrivateKey { .. } => "core.key.private_invalid",
            Error::KeyDecryption { .. } => "core.key.decryption",
            Error::Signing { .. } => "core.sign.failed",
            Error::Verification { check, .. } => check.code(),
        }
    }
}

/// Truncates user input for inclusion in an error message.
pub(crate) fn clip(input: &str, max: usize) -> String {
    if input.len() <= max {
        return input.to_owned();
    }
    let mut end = max;
    while !input.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &input[..end])
}
