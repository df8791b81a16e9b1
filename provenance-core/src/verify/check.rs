//! The checks verification performs, each with a stable machine code.

use std::fmt;

use crate::error::Error;

/// One check of the verification pipeline. A failure names the check that failed, as
/// [`Error::Verification`] with a stable code (`verify.<area>.<what>`).
///
/// Codes never change meaning once published; see `docs/verification.md` for the order in
/// which the checks run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Check {
    /// The signature material could not be parsed (bad JSON, bad base64, missing fields).
    MaterialMalformed,
    /// The material is well-formed but of a kind or version this verifier does not support.
    MaterialUnsupported,
    /// The material is larger than the verifier accepts.
    MaterialTooLarge,
    /// The expectation itself is unusable (bad regular expression, empty expectation).
    Expectation,
    /// The trust root cannot be used for verification.
    TrustRoot,
    /// The kind of verification material (key or certificate) does not fit the expectation.
    MaterialKind,
    /// The signed content does not describe the artifact (message digest, in-toto subject).
    ArtifactMismatch,
    /// A cosign layer names another image digest than the one admitted: the simple-signing
    /// payload of a `.sig` layer, or the in-toto subject of a DSSE `.att` layer.
    ImageDigestMismatch,
    /// The cosign simple-signing payload is malformed or has the wrong type.
    SimpleSigningPayload,
    /// The signature does not verify with the key or certificate.
    Signature,
    /// The public key is unsupported for this signature.
    KeyUnsupported,
    /// The signing certificate could not be parsed.
    CertificateMalformed,
    /// The signing certificate does not chain to a trusted Fulcio CA valid at signing time.
    CertificateChain,
    /// The signing certificate was not valid at the verified signing time.
    CertificateValidity,
    /// The embedded signed certificate timestamp (SCT) does not verify against a CT log key.
    Sct,
    /// The certificate's subject (SAN) does not match the expected subject.
    IdentitySubject,
    /// The certificate's OIDC issuer does not match the expected issuer.
    IdentityIssuer,
    /// A certificate extension does not match the expected value.
    IdentityExtension,
    /// There is no transparency-log entry and the expectation does not allow that.
    TlogMissing,
    /// The log entry names a log the trust root does not know (or not at that time).
    TlogUnknownLog,
    /// The Merkle inclusion proof does not verify.
    TlogInclusionProof,
    /// The checkpoint (signed tree head) does not verify or does not match the proof.
    TlogCheckpoint,
    /// The Rekor v1 signed entry timestamp (SET, inclusion promise) does not verify.
    TlogSet,
    /// The log entry body does not describe this signature, key, certificate or artifact.
    TlogEntryMismatch,
    /// The integrated time is in the future or outside the certificate's validity.
    TlogIntegratedTime,
    /// The log entry is malformed (negative index, bad body).
    TlogMalformed,
    /// An RFC 3161 timestamp does not verify or does not cover this signature.
    Timestamp,
    /// An RFC 3161 timestamp lies outside the validity of the authority that signed it.
    TimestampAuthorityValidity,
    /// No verified time (SET integrated time or RFC 3161 timestamp) establishes when the
    /// signature was made.
    NoVerifiedTime,
    /// Verified material is not an image signature where one was required: an attestation
    /// (a DSSE envelope with another statement than cosign's signing statement) offered as a
    /// signature.
    NotASignature,
    /// Verified material is not an attestation where one was required: a plain signature
    /// (simple-signing payload or message signature), or a DSSE envelope that is not an
    /// in-toto Statement naming the subject.
    NotAnAttestation,
}

impl Check {
    /// The stable machine code, e.g. `verify.signature.invalid`.
    pub fn code(self) -> &'static str {
        match self {
            Check::MaterialMalformed => "verify.material.malformed",
            Check::MaterialUnsupported => "verify.material.unsupported",
            Check::MaterialTooLarge => "verify.material.too_large",
            Check::Expectation => "verify.expectation.invalid",
            Check::TrustRoot => "verify.trust_root.invalid",
            Check::MaterialKind => "verify.material.kind_mismatch",
            Check::ArtifactMismatch => "verify.artifact.mismatch",
            Check::ImageDigestMismatch => "verify.cosign.image_digest_mismatch",
            Check::SimpleSigningPayload => "verify.cosign.payload_invalid",
            Check::Signature => "verify.signature.invalid",
            Check::KeyUnsupported => "verify.key.unsupported",
            Check::CertificateMalformed => "verify.certificate.malformed",
            Check::CertificateChain => "verify.certificate.chain",
            Check::CertificateValidity => "verify.certificate.validity",
            Check::Sct => "verify.certificate.sct",
            Check::IdentitySubject => "verify.identity.subject",
            Check::IdentityIssuer => "verify.identity.issuer",
            Check::IdentityExtension => "verify.identity.extension",
            Check::TlogMissing => "verify.tlog.missing",
            Check::TlogUnknownLog => "verify.tlog.unknown_log",
            Check::TlogInclusionProof => "verify.tlog.inclusion_proof",
            Check::TlogCheckpoint => "verify.tlog.checkpoint",
            Check::TlogSet => "verify.tlog.set",
            Check::TlogEntryMismatch => "verify.tlog.entry_mismatch",
            Check::TlogIntegratedTime => "verify.tlog.integrated_time",
            Check::TlogMalformed => "verify.tlog.malformed",
            Check::Timestamp => "verify.timestamp.invalid",
            Check::TimestampAuthorityValidity => "verify.timestamp.authority_validity",
            Check::NoVerifiedTime => "verify.timestamp.none",
            Check::NotASignature => "verify.kind.not_a_signature",
            Check::NotAnAttestation => "verify.kind.not_an_attestation",
        }
    }

    /// Builds the error for this check.
    pub fn fail(self, detail: impl Into<String>) -> Error {
        Error::Verification {
            check: self,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// Maps an error of the wrapped `sigstore-verify` crate onto the check that failed.
pub(crate) fn from_sigstore(e: &sigstore_verify::Error) -> Error {
    use sigstore_verify::TransparencyLogError as L;
    use sigstore_verify::{CertificateError as C, Error as E, TimestampError as T};
    let check = match e {
        E::IdentityMismatch { .. } => Check::IdentitySubject,
        E::IssuerMismatch { .. } => Check::IdentityIssuer,
        E::SignatureInvalid(_) => Check::Signature,
        // The log entry's body names another artifact than the one verified.
        E::ArtifactMismatch(m) if m.contains("entry") => Check::TlogEntryMismatch,
        E::ArtifactMismatch(_) => Check::ArtifactMismatch,
        E::UnsupportedArtifact(_) => Check::MaterialUnsupported,
        E::Certificate(c) => match c {
            C::Malformed(_) => Check::CertificateMalformed,
            // webpki reports a leaf outside its validity at the signing time as a chain error.
            C::ChainInvalid(m) if m.contains("CertExpired") || m.contains("CertNotValidYet") => {
                Check::CertificateValidity
            }
            C::ChainInvalid(_) | C::NoValidAuthority { .. } => Check::CertificateChain,
            C::NotYetValid { .. } | C::Expired { .. } => Check::CertificateValidity,
            C::Sct(_) => Check::Sct,
            _ => Check::CertificateChain,
        },
        E::TransparencyLog(l) => match l {
            L::UnknownLog { .. } => Check::TlogUnknownLog,
            L::InclusionProof(_) => Check::TlogInclusionProof,
            L::Checkpoint(_) => Check::TlogCheckpoint,
            L::InclusionPromise(_) => Check::TlogSet,
            L::EntryMismatch(_) => Check::TlogEntryMismatch,
            L::IntegratedTime(_) => Check::TlogIntegratedTime,
            L::MalformedEntry(_) => Check::TlogMalformed,
            _ => Check::TlogMalformed,
        },
        E::Timestamp(t) => match t {
            T::Invalid(_) => Check::Timestamp,
            T::OutsideAuthorityValidity { .. } => Check::TimestampAuthorityValidity,
            T::NoVerifiedTimestamp(_) => Check::NoVerifiedTime,
            _ => Check::Timestamp,
        },
        E::InvalidBundle(_) | E::Types(_) => Check::MaterialMalformed,
        E::Bundle(b) => bundle_check(b),
        E::UnsupportedBundle(_) => Check::MaterialUnsupported,
        E::InvalidTrustRoot(_) | E::TrustRoot(_) | E::TrustedCertificate(_) => Check::TrustRoot,
        E::Crypto(_) => Check::KeyUnsupported,
        _ => Check::MaterialMalformed,
    };
    let text = e.to_string();
    let detail = match e {
        // "invalid signature: signature verification failed: Verification error: X invalid":
        // the innermost part says it all.
        E::SignatureInvalid(_) => format!(
            "the signature does not verify ({})",
            text.rsplit(": ").next().unwrap_or(&text)
        ),
        _ => text,
    };
    check.fail(detail)
}

fn bundle_check(e: &sigstore_verify::bundle::Error) -> Check {
    let text = e.to_string().to_ascii_lowercase();
    if text.contains("inclusion proof") || text.contains("checkpoint") {
        Check::TlogInclusionProof
    } else if text.contains("inclusion promise") || text.contains("signing time") {
        Check::TlogMissing
    } else {
        Check::MaterialMalformed
    }
}
