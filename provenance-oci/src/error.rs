//! The one error type of `provenance-oci`, with stable machine codes.
//!
//! Errors fall in two classes that admission controllers report differently (Kyverno reports
//! the first as `error`, the second as `fail`):
//!
//! - **infrastructure** ([`Error::is_infrastructure`]): the evidence could not be obtained
//!   (network, timeout, authentication, registry 5xx, local I/O). Retrying later may help.
//! - **evidence**: the evidence was obtained and is wrong or absent (not found, digest
//!   mismatch, too large, malformed). Retrying does not help.

/// Errors reported by `provenance-oci`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A connection or transfer failed (DNS, TCP, TLS, reset, truncated body).
    #[error("network error talking to {registry}: {message}")]
    Network {
        /// Registry host (or mirror) that was contacted.
        registry: String,
        /// What went wrong.
        message: String,
    },
    /// A request or an operation ran past its deadline.
    #[error("{operation} on {registry} timed out after {after_ms} ms")]
    Timeout {
        /// Registry host (or layout path).
        registry: String,
        /// What was being done (`GET manifest`, `resolve`, ...).
        operation: String,
        /// The deadline that was exceeded, in milliseconds.
        after_ms: u64,
    },
    /// The registry answered with an unexpected status (5xx, 429, or an unexpected 4xx).
    #[error("{registry} answered {status} to {operation}: {message}")]
    Registry {
        /// Registry host.
        registry: String,
        /// What was being done.
        operation: String,
        /// HTTP status code.
        status: u16,
        /// Body excerpt or reason.
        message: String,
    },
    /// Authentication or authorization failed (401/403, token endpoint refused, credential
    /// helper failed).
    #[error("authentication to {registry} failed: {message}")]
    Auth {
        /// Registry host.
        registry: String,
        /// What went wrong.
        message: String,
    },
    /// The manifest, blob or tag does not exist.
    #[error("{what} not found: {reference}")]
    NotFound {
        /// What was looked for (`manifest`, `blob`, `tag`).
        what: &'static str,
        /// The reference or digest looked for.
        reference: String,
    },
    /// Content did not hash to the digest it was fetched by (or that the registry announced).
    #[error("digest mismatch for {reference}: expected {expected}, got {actual}")]
    DigestMismatch {
        /// What was fetched.
        reference: String,
        /// The digest that was expected.
        expected: String,
        /// The digest of the bytes received.
        actual: String,
    },
    /// Content exceeded a configured size or count limit.
    #[error("{what} exceeds the limit of {limit}")]
    TooLarge {
        /// What was too large (`manifest`, `blob`, `layers`, `referrers`, ...).
        what: String,
        /// The limit (bytes or items).
        limit: u64,
    },
    /// A manifest, index, descriptor, envelope or config file is not well formed.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// What could not be parsed.
        what: String,
        /// Why.
        reason: String,
    },
    /// A manifest has a media type this crate does not handle here.
    #[error("unsupported media type {media_type:?} for {reference}")]
    UnsupportedMediaType {
        /// The media type found.
        media_type: String,
        /// Where it was found.
        reference: String,
    },
    /// Plain HTTP was needed but is not allowed for this registry.
    #[error("plain HTTP to {registry} is not allowed (set `insecure_http` for it explicitly)")]
    InsecureNotAllowed {
        /// Registry host.
        registry: String,
    },
    /// An image reference or digest is invalid.
    #[error("invalid reference {input:?}: {reason}")]
    InvalidReference {
        /// The offending input.
        input: String,
        /// Why it is invalid.
        reason: String,
    },
    /// Reading or writing a local file (OCI layout, Docker config) failed.
    #[error("I/O error on {path}: {message}")]
    Io {
        /// The file or folder.
        path: String,
        /// The OS error, as text.
        message: String,
    },
    /// A file or folder of an OCI layout is not what it must be: a symbolic link, a device, a
    /// FIFO or a socket where a regular file or folder belongs, or an export destination that
    /// is neither empty nor a clean layout. Nothing is read from or written through it.
    #[error("refusing {path}: {reason}")]
    UnsafeFile {
        /// The file or folder.
        path: String,
        /// What it is, and why that is refused.
        reason: String,
    },
    /// A registry sent the client somewhere it must not go with what it carries: a redirect or
    /// upload `Location` from HTTPS to plain HTTP, a credential challenge from another origin
    /// than the registry's own, a token realm over plain HTTP that `insecure_http` does not
    /// name. Nothing was sent there.
    #[error("refused to follow {registry} to {target}: {reason}")]
    UntrustedOrigin {
        /// Registry host.
        registry: String,
        /// The URL (scheme, host and path) that was refused.
        target: String,
        /// Why.
        reason: UntrustedOriginReason,
    },
    /// A configuration (client settings, Docker `config.json`) is invalid.
    #[error("invalid configuration: {message}")]
    Config {
        /// What is wrong.
        message: String,
    },
    /// A TUF trust-root refresh was refused by one of the TUF client's checks (feature `tuf`;
    /// the previous trust root stays in use). Network trouble during a refresh is reported
    /// as [`Error::Network`], [`Error::Timeout`] or [`Error::Registry`] instead.
    #[error("trust-root update from {url} refused ({}): {message}", failure.as_str())]
    TrustRootUpdate {
        /// The TUF repository's metadata URL.
        url: String,
        /// Which check failed.
        failure: TufFailure,
        /// The role, versions, expiry or hash involved.
        message: String,
    },
    /// Keyless signing failed at one step: the identity token, Fulcio's answer (certificate
    /// chain, SCT, key), Rekor's or the timestamp authority's answer (see
    /// [`crate::keyless`]). The code names the step.
    #[error("keyless signing: {step}: {detail}")]
    Signing {
        /// The step that failed.
        step: SigningStep,
        /// What was wrong, for humans.
        detail: String,
    },
    /// The bundle that keyless signing assembled did not verify against the trust root, so it
    /// was not returned. `check` is the verification check that failed (its code is
    /// `verify.*`, e.g. `verify.tlog.set` for a log answer whose signed entry timestamp does
    /// not verify).
    #[error("the signed bundle did not verify, so it was not returned: {check}: {detail}")]
    SignedBundleUnverified {
        /// The check of `provenance_core::verify` that failed.
        check: provenance_core::Check,
        /// What was wrong, for humans.
        detail: String,
    },
    /// Model verification failed ([`crate::model`]): the code is the model error's own
    /// (`model.*`).
    #[error(transparent)]
    Model(#[from] crate::model::ModelError),
}

/// Why a URL a registry named was refused ([`Error::UntrustedOrigin`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum UntrustedOriginReason {
    /// HTTPS to plain HTTP (a redirect, an upload `Location` or a token realm): never followed
    /// unless `insecure_http` names that host.
    Downgrade,
    /// A host other than the registry's own asked for credentials (a `401` from a redirect
    /// target or an upload `Location` on another host): credentials go only to the registry's
    /// own origin and the token realm it names.
    CredentialsToForeignOrigin,
    /// Too many redirects, or a redirect without a usable `Location`.
    Redirect,
    /// A URL that is not `http` or `https`.
    Scheme,
}

impl UntrustedOriginReason {
    /// The stable code, e.g. `oci.origin.downgrade`.
    pub fn code(self) -> &'static str {
        match self {
            UntrustedOriginReason::Downgrade => "oci.origin.downgrade",
            UntrustedOriginReason::CredentialsToForeignOrigin => "oci.origin.foreign_credentials",
            UntrustedOriginReason::Redirect => "oci.origin.redirect",
            UntrustedOriginReason::Scheme => "oci.origin.scheme",
        }
    }
}

impl std::fmt::Display for UntrustedOriginReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            UntrustedOriginReason::Downgrade => "HTTPS to plain HTTP is never followed",
            UntrustedOriginReason::CredentialsToForeignOrigin => {
                "another origin asked for the registry's credentials"
            }
            UntrustedOriginReason::Redirect => "too many redirects, or no usable Location",
            UntrustedOriginReason::Scheme => "not an http(s) URL",
        })?;
        write!(f, " [{}]", self.code())
    }
}

/// Which TUF check refused a trust-root update ([`Error::TrustRootUpdate`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TufFailure {
    /// Metadata (root, timestamp, snapshot or targets) expired at the given `now`.
    Expired,
    /// A role's version is lower than the version already trusted (from the cache folder):
    /// a rollback attempt, or a repository that went back in time.
    Rollback,
    /// Fewer valid signatures than the role's threshold (a root rotation not signed by
    /// enough of the previous root's keys, or a role signed by too few of its keys).
    ThresholdNotMet,
    /// A file's length or hash differs from what its parent metadata pins (a tampered
    /// target or metadata file).
    HashMismatch,
    /// The targets metadata does not list the requested target.
    TargetNotFound,
    /// Metadata that cannot be used: not JSON, wrong type, unknown key scheme, a root version
    /// that skips, duplicate signatures, an invalid initial root.
    InvalidMetadata,
    /// The verified target is not a valid `trusted_root.json`.
    InvalidTarget,
    /// The repository could not be read (a file missing that must exist).
    Unavailable,
}

impl TufFailure {
    /// The stable code of this failure, e.g. `oci.tuf.rollback`.
    pub fn as_str(self) -> &'static str {
        match self {
            TufFailure::Expired => "oci.tuf.expired",
            TufFailure::Rollback => "oci.tuf.rollback",
            TufFailure::ThresholdNotMet => "oci.tuf.threshold_not_met",
            TufFailure::HashMismatch => "oci.tuf.hash_mismatch",
            TufFailure::TargetNotFound => "oci.tuf.target_not_found",
            TufFailure::InvalidMetadata => "oci.tuf.invalid_metadata",
            TufFailure::InvalidTarget => "oci.tuf.invalid_target",
            TufFailure::Unavailable => "oci.tuf.unavailable",
        }
    }
}

/// The steps of keyless signing that can fail on their own (see [`Error::Signing`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SigningStep {
    /// No usable OIDC identity token (missing, unreadable, not a JWT, expired).
    IdentityToken,
    /// Generating the ephemeral key, or signing with it or with a key-based signer, failed.
    Key,
    /// What was asked to be signed cannot be signed this way (e.g. a DSSE payload that is not
    /// an in-toto statement with a SHA-256 subject, so the bundle could not be verified).
    Input,
    /// Fulcio's answer is not a usable signing certificate (malformed, detached SCT, no chain).
    FulcioResponse,
    /// Fulcio certified another public key than the one it was asked to certify.
    CertificateKeyMismatch,
    /// The signing certificate does not chain to a certificate authority of the trust root,
    /// is not valid now, or is not for code signing.
    CertificateChain,
    /// The signing certificate's embedded SCT is missing or does not verify against a CT log
    /// key of the trust root.
    CertificateSct,
    /// Rekor's answer is not a log entry (malformed, missing fields, several entries).
    RekorResponse,
    /// The timestamp authority's answer is not a timestamp response.
    TimestampResponse,
}

impl SigningStep {
    /// The stable machine code, e.g. `oci.sign.certificate_key_mismatch`.
    pub fn code(self) -> &'static str {
        match self {
            SigningStep::IdentityToken => "oci.sign.identity_token",
            SigningStep::Key => "oci.sign.key",
            SigningStep::Input => "oci.sign.input",
            SigningStep::FulcioResponse => "oci.sign.fulcio_response",
            SigningStep::CertificateKeyMismatch => "oci.sign.certificate_key_mismatch",
            SigningStep::CertificateChain => "oci.sign.certificate_chain",
            SigningStep::CertificateSct => "oci.sign.certificate_sct",
            SigningStep::RekorResponse => "oci.sign.rekor_response",
            SigningStep::TimestampResponse => "oci.sign.timestamp_response",
        }
    }

    /// Builds the error for this step.
    pub fn fail(self, detail: impl Into<String>) -> Error {
        Error::Signing {
            step: self,
            detail: detail.into(),
        }
    }
}

impl std::fmt::Display for SigningStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

impl Error {
    /// A stable, machine-readable code, e.g. `oci.not_found`.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Network { .. } => "oci.network",
            Error::Timeout { .. } => "oci.timeout",
            Error::Registry { .. } => "oci.registry",
            Error::Auth { .. } => "oci.auth",
            Error::NotFound { .. } => "oci.not_found",
            Error::DigestMismatch { .. } => "oci.digest_mismatch",
            Error::TooLarge { .. } => "oci.too_large",
            Error::Malformed { .. } => "oci.malformed",
            Error::UnsupportedMediaType { .. } => "oci.unsupported_media_type",
            Error::InsecureNotAllowed { .. } => "oci.insecure_not_allowed",
            Error::InvalidReference { .. } => "oci.invalid_reference",
            Error::Io { .. } => "oci.io",
            Error::Config { .. } => "oci.config",
            Error::UnsafeFile { .. } => "oci.unsafe_file",
            Error::UntrustedOrigin { reason, .. } => reason.code(),
            Error::TrustRootUpdate { failure, .. } => failure.as_str(),
            Error::Signing { step, .. } => step.code(),
            Error::SignedBundleUnverified { .. } => "oci.sign.bundle_unverified",
            Error::Model(e) => e.code(),
        }
    }

    /// True when the evidence could not be obtained (network, timeout, auth, registry
    /// trouble, local I/O, configuration): report as `error`, may succeed later. False when the
    /// evidence was obtained and is absent or wrong: report as `fail`.
    pub fn is_infrastructure(&self) -> bool {
        matches!(
            self,
            Error::Network { .. }
                | Error::Timeout { .. }
                | Error::Registry { .. }
                | Error::Auth { .. }
                | Error::InsecureNotAllowed { .. }
                | Error::UntrustedOrigin { .. }
                | Error::Io { .. }
                | Error::Config { .. }
                | Error::TrustRootUpdate {
                    failure: TufFailure::Unavailable,
                    ..
                }
                | Error::Model(crate::model::ModelError::Io { .. })
        )
    }

    /// True for failures worth retrying on an idempotent request (network trouble, 5xx, 429).
    pub(crate) fn is_retryable(&self) -> bool {
        match self {
            Error::Network { .. } => true,
            Error::Registry { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }

    pub(crate) fn malformed(what: impl Into<String>, reason: impl ToString) -> Self {
        Error::Malformed {
            what: what.into(),
            reason: reason.to_string(),
        }
    }

    pub(crate) fn io(path: impl AsRef<std::path::Path>, e: &std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().display().to_string(),
            message: e.to_string(),
        }
    }
}

impl From<provenance_core::Error> for Error {
    fn from(e: provenance_core::Error) -> Self {
        match e {
            provenance_core::Error::DigestMismatch { expected, actual } => Error::DigestMismatch {
                reference: String::new(),
                expected,
                actual,
            },
            other => Error::InvalidReference {
                input: String::new(),
                reason: other.to_string(),
            },
        }
    }
}
