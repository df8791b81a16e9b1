//! Signature checks with a known public key (aws-lc-rs), for the paths `sigstore-verify` does
//! not cover: key-only bundles, cosign legacy key signatures, and P-521 keys.

use aws_lc_rs::digest as lc_digest;
use aws_lc_rs::signature::{self as sig, UnparsedPublicKey, VerificationAlgorithm};

use super::check::Check;
use crate::digest::{Digest, DigestAlgorithm};
use crate::error::Error;
use crate::keys::{KeyKind, PublicKey};

/// What a signature was made over.
pub(crate) enum Signed<'a> {
    /// The message itself.
    Message(&'a [u8]),
    /// Only the digest of the message is known (prehashed verification).
    Digest(&'a Digest),
}

fn algorithms(
    kind: KeyKind,
    pss_only: bool,
) -> Vec<(&'static dyn VerificationAlgorithm, DigestAlgorithm)> {
    match kind {
        KeyKind::EcdsaP256 => vec![(&sig::ECDSA_P256_SHA256_ASN1, DigestAlgorithm::Sha256)],
        KeyKind::EcdsaP384 => vec![(&sig::ECDSA_P384_SHA384_ASN1, DigestAlgorithm::Sha256)],
        KeyKind::EcdsaP521 => vec![(&sig::ECDSA_P521_SHA512_ASN1, DigestAlgorithm::Sha512)],
        KeyKind::Ed25519 => vec![(&sig::ED25519, DigestAlgorithm::Sha256)],
        KeyKind::Rsa { .. } if pss_only => {
            vec![(&sig::RSA_PSS_2048_8192_SHA256, DigestAlgorithm::Sha256)]
        }
        KeyKind::Rsa { .. } => vec![
            (&sig::RSA_PKCS1_2048_8192_SHA256, DigestAlgorithm::Sha256),
            (&sig::RSA_PSS_2048_8192_SHA256, DigestAlgorithm::Sha256),
        ],
    }
}

/// Verifies `signature` over `signed` with `key`: ECDSA P-256/SHA-256, P-384/SHA-384,
/// P-521/SHA-512, Ed25519 (message only), RSA PKCS#1 v1.5 or PSS with SHA-256.
pub(crate) fn verify_with_key(
    key: &PublicKey,
    signed: Signed<'_>,
    signature: &[u8],
) -> Result<(), Error> {
    if signature.is_empty() {
        return Err(Check::Signature.fail("empty signature"));
    }
    // An id-RSASSA-PSS key may only make PSS signatures.
    let pss_only = key.spki_der().windows(11).any(|w| {
        w == [
            0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a,
        ]
    });
    let algs = algorithms(key.kind(), pss_only);
    if algs.is_empty() {
        return Err(Check::KeyUnsupported.fail(format!("unsupported key kind {}", key.kind())));
    }
    for (alg, dalg) in algs {
        let pk = UnparsedPublicKey::new(alg, key.raw());
        let ok = match &signed {
            Signed::Message(m) => pk.verify(m, signature).is_ok(),
            Signed::Digest(d) => {
                if key.kind() == KeyKind::Ed25519 {
                    return Err(Check::KeyUnsupported.fail(
                        "Ed25519 signatures cannot be checked against a digest; pass the artifact bytes",
                    ));
                }
                // The digest must be the one the algorithm signs (P-384 signs SHA-384, which
                // artifact digests never are: pass the bytes).
                if key.kind() == KeyKind::EcdsaP384 || d.algorithm() != dalg {
                    continue;
                }
                let lc_alg = match dalg {
                    DigestAlgorithm::Sha256 => &lc_digest::SHA256,
                    DigestAlgorithm::Sha512 => &lc_digest::SHA512,
                };
                match lc_digest::Digest::import_less_safe(d.as_bytes(), lc_alg) {
                    Ok(dg) => pk.verify_digest(&dg, signature).is_ok(),
                    Err(_) => false,
                }
            }
        };
        if ok {
            return Ok(());
        }
    }
    Err(Check::Signature.fail(format!(
        "signature does not verify with {} key {}",
        key.kind(),
        key.key_id()
    )))
}
