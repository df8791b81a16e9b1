//! Signing: private keys, the [`Signer`] trait, and the signed material the verifiers in
//! [`crate::verify`] accept (Sigstore bundles, cosign simple-signing payloads).
//!
//! Pure: no I/O, no clock. Randomness (key generation, ECDSA nonces, salts) comes from
//! aws-lc-rs's system RNG, so ECDSA signatures differ from run to run: check them by verifying,
//! never by comparing bytes.
//!
//! - [`SigningKey`]: ECDSA P-256 (SHA-256), ECDSA P-384 (SHA-384) and Ed25519 keys, generated or
//!   imported from PKCS#8 / SEC1 PEM or DER and from cosign's encrypted key format
//!   ([`cosign_key`]), exported as PKCS#8 or cosign-encrypted PEM.
//! - [`Signer`]: what every signer provides (the material a verifier needs, and `sign`). Key
//!   signers implement it here; a keyless (Fulcio) signer implements it with an ephemeral key and
//!   a certificate chain, and every producer in this crate and in `provenance-oci` takes
//!   `&dyn Signer`.
//! - [`bundle`]: Sigstore bundles v0.3 (message signature or DSSE envelope) for key and
//!   certificate signers, without transparency evidence (what `cosign sign-blob --key
//!   --tlog-upload=false --bundle` and `model_signing sign key` write).
//! - [`simple_signing_payload`]: cosign's container-image signature payload.
//!
//! ```
//! use provenance_core::sign::{KeyAlgorithm, Signer, SigningKey, bundle};
//! use provenance_core::verify::{Artifact, Expectation, SignatureMaterial, Verifier};
//! use provenance_core::{TrustRoot, UnixTime};
//!
//! let key = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
//! let bundle = bundle::message_signature(&key, b"hello").unwrap();
//!
//! let root = TrustRoot::from_trusted_root_json(provenance_core::verify::PUBLIC_GOOD_TRUSTED_ROOT).unwrap();
//! let expectation = Expectation::Key { key: key.public_key(), allow_no_transparency: true };
//! Verifier::new(&root).unwrap()
//!     .verify(Artifact::Bytes(b"hello"), &SignatureMaterial::Bundle(bundle), &expectation, UnixTime(1_800_000_000))
//!     .unwrap();
//! ```

pub mod bundle;
pub mod cosign_key;
mod key;

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::digest::Digest;
use crate::error::Error;
use crate::keys::PublicKey;

pub use key::{KeyAlgorithm, SigningKey};

/// What a verifier is given to check a signer's signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignerMaterial {
    /// A bare public key (key-based signing; the verifier is configured with the same key).
    PublicKey(PublicKey),
    /// A certificate chain, leaf first, DER (a Fulcio certificate for keyless signing, or a
    /// private PKI's leaf and intermediates as `model_signing sign certificate` uses).
    CertificateChain(Vec<Vec<u8>>),
}

/// A signer: key-based ([`SigningKey`], [`CertifiedKey`]) or keyless (an ephemeral key with a
/// Fulcio certificate, implemented outside this crate).
///
/// `sign` signs the message itself (ECDSA hashes it with the curve's hash, Ed25519 signs it
/// whole) and returns the signature as verifiers expect it: ASN.1 DER for ECDSA, 64 bytes for
/// Ed25519.
pub trait Signer: Send + Sync {
    /// The public key that verifies this signer's signatures.
    fn public_key(&self) -> PublicKey;
    /// The material placed next to signatures (key or certificate chain).
    fn material(&self) -> SignerMaterial {
        SignerMaterial::PublicKey(self.public_key())
    }
    /// Signs `message`.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error>;
}

impl<S: Signer + ?Sized> Signer for &S {
    fn public_key(&self) -> PublicKey {
        (**self).public_key()
    }
    fn material(&self) -> SignerMaterial {
        (**self).material()
    }
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        (**self).sign(message)
    }
}

/// A key with a certificate chain for it (leaf first, DER): signs with the key, presents the
/// chain. `model_signing sign certificate` signs this way.
#[derive(Debug)]
pub struct CertifiedKey {
    key: SigningKey,
    chain: Vec<Vec<u8>>,
}

impl CertifiedKey {
    /// Pairs `key` with `chain` (leaf first). The leaf's public key must be `key`'s.
    pub fn new(key: SigningKey, chain: Vec<Vec<u8>>) -> Result<Self, Error> {
        use x509_cert::der::{Decode, Encode};
        let leaf = chain.first().ok_or_else(|| Error::Signing {
            reason: "empty certificate chain".into(),
        })?;
        let cert = x509_cert::Certificate::from_der(leaf).map_err(|e| Error::Signing {
            reason: format!("leaf certificate is not DER X.509: {e}"),
        })?;
        let spki = cert
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .map_err(|e| Error::Signing {
                reason: format!("leaf certificate key: {e}"),
            })?;
        if PublicKey::from_spki_der(&spki)? != key.public_key() {
            return Err(Error::Signing {
                reason: "the leaf certificate is not for this private key".into(),
            });
        }
        Ok(CertifiedKey { key, chain })
    }

    /// Reads the chain from PEM `CERTIFICATE` blocks (leaf first).
    pub fn from_pem_chain(key: SigningKey, pem_text: &str) -> Result<Self, Error> {
        let blocks = pem::parse_many(pem_text).map_err(|e| Error::Signing {
            reason: format!("certificate chain: malformed PEM: {e}"),
        })?;
        let chain: Vec<Vec<u8>> = blocks
            .iter()
            .filter(|b| b.tag() == "CERTIFICATE")
            .map(|b| b.contents().to_vec())
            .collect();
        Self::new(key, chain)
    }

    /// The chain, leaf first.
    pub fn chain(&self) -> &[Vec<u8>] {
        &self.chain
    }
}

impl Signer for CertifiedKey {
    fn public_key(&self) -> PublicKey {
        self.key.public_key()
    }
    fn material(&self) -> SignerMaterial {
        SignerMaterial::CertificateChain(self.chain.clone())
    }
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        self.key.sign(message)
    }
}

/// cosign's simple-signing payload for a container image signature:
/// `{"critical":{"identity":{"docker-reference":..},"image":{"docker-manifest-digest":..},
/// "type":"cosign container image signature"},"optional":..}`, with the keys in the order cosign
/// writes them. `docker_reference` is the repository (no tag, no digest), `optional` the
/// `-a key=value` annotations (`null` when empty).
pub fn simple_signing_payload(
    docker_reference: &str,
    image: &Digest,
    optional: &BTreeMap<String, String>,
) -> Vec<u8> {
    let optional = if optional.is_empty() {
        Value::Null
    } else {
        json!(optional)
    };
    let v = json!({
        "critical": {
            "identity": { "docker-reference": docker_reference },
            "image": { "docker-manifest-digest": image.to_string() },
            "type": "cosign container image signature",
        },
        "optional": optional,
    });
    // serde_json's map is ordered (BTreeMap): critical < optional, identity < image < type,
    // as cosign's Go structs serialize.
    serde_json::to_vec(&v).unwrap_or_default()
}
