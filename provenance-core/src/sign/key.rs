//! Private keys over aws-lc-rs.

use std::fmt;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P384_SHA384_ASN1_SIGNING, EcdsaKeyPair, Ed25519KeyPair,
    KeyPair,
};
use zeroize::Zeroizing;

use super::Signer;
use super::cosign_key;
use crate::error::Error;
use crate::keys::{KeyKind, PublicKey};

/// The algorithms a [`SigningKey`] can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyAlgorithm {
    /// ECDSA over P-256 with SHA-256 (cosign's default).
    EcdsaP256,
    /// ECDSA over P-384 with SHA-384.
    EcdsaP384,
    /// Ed25519.
    Ed25519,
}

impl KeyAlgorithm {
    /// Parses `ecdsa-p256`, `ecdsa-p384`, `ed25519` (also `p256`, `p384`).
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "ecdsa-p256" | "p256" | "p-256" | "ecdsa-p256-sha256" => Some(KeyAlgorithm::EcdsaP256),
            "ecdsa-p384" | "p384" | "p-384" | "ecdsa-p384-sha384" => Some(KeyAlgorithm::EcdsaP384),
            "ed25519" => Some(KeyAlgorithm::Ed25519),
            _ => None,
        }
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyAlgorithm::EcdsaP256 => "ecdsa-p256",
            KeyAlgorithm::EcdsaP384 => "ecdsa-p384",
            KeyAlgorithm::Ed25519 => "ed25519",
        })
    }
}

enum Inner {
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

/// A private signing key: ECDSA P-256 / P-384 or Ed25519.
pub struct SigningKey {
    algorithm: KeyAlgorithm,
    inner: Inner,
    public: PublicKey,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SigningKey({}, {})",
            self.algorithm,
            self.public.key_id()
        )
    }
}

fn bad(reason: impl Into<String>) -> Error {
    Error::InvalidPrivateKey {
        reason: reason.into(),
    }
}

fn ecdsa_public(kp: &EcdsaKeyPair) -> Result<PublicKey, Error> {
    let der = kp
        .public_key()
        .as_der()
        .map_err(|_| bad("cannot encode the public key"))?;
    PublicKey::from_spki_der(der.as_ref())
}

fn ed25519_public(kp: &Ed25519KeyPair) -> Result<PublicKey, Error> {
    let der = kp
        .public_key()
        .as_der()
        .map_err(|_| bad("cannot encode the public key"))?;
    PublicKey::from_spki_der(der.as_ref())
}

impl SigningKey {
    /// Generates a new key.
    pub fn generate(algorithm: KeyAlgorithm) -> Result<Self, Error> {
        let inner = match algorithm {
            KeyAlgorithm::EcdsaP256 => Inner::Ecdsa(
                EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING)
                    .map_err(|_| bad("key generation failed"))?,
            ),
            KeyAlgorithm::EcdsaP384 => Inner::Ecdsa(
                EcdsaKeyPair::generate(&ECDSA_P384_SHA384_ASN1_SIGNING)
                    .map_err(|_| bad("key generation failed"))?,
            ),
            KeyAlgorithm::Ed25519 => Inner::Ed25519(
                Ed25519KeyPair::generate().map_err(|_| bad("key generation failed"))?,
            ),
        };
        Self::from_inner(algorithm, inner)
    }

    fn from_inner(algorithm: KeyAlgorithm, inner: Inner) -> Result<Self, Error> {
        let public = match &inner {
            Inner::Ecdsa(kp) => ecdsa_public(kp)?,
            Inner::Ed25519(kp) => ed25519_public(kp)?,
        };
        Ok(SigningKey {
            algorithm,
            inner,
            public,
        })
    }

    /// Imports a DER private key: PKCS#8 (EC P-256 / P-384, Ed25519 v1 or v2) or an RFC 5915
    /// SEC1 `ECPrivateKey`. Other algorithms (RSA, P-521) are errors.
    pub fn from_der(der: &[u8]) -> Result<Self, Error> {
        if let Ok(kp) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der) {
            return Self::from_inner(KeyAlgorithm::Ed25519, Inner::Ed25519(kp));
        }
        for (alg, signing) in [
            (KeyAlgorithm::EcdsaP256, &ECDSA_P256_SHA256_ASN1_SIGNING),
            (KeyAlgorithm::EcdsaP384, &ECDSA_P384_SHA384_ASN1_SIGNING),
        ] {
            if let Ok(kp) = EcdsaKeyPair::from_pkcs8(signing, der) {
                return Self::from_inner(alg, Inner::Ecdsa(kp));
            }
            if let Ok(kp) = EcdsaKeyPair::from_private_key_der(signing, der) {
                return Self::from_inner(alg, Inner::Ecdsa(kp));
            }
        }
        Err(bad(
            "not a PKCS#8 or SEC1 ECDSA P-256 / P-384 or Ed25519 private key",
        ))
    }

    /// Imports a PEM private key: `PRIVATE KEY` (PKCS#8), `EC PRIVATE KEY` (SEC1), or cosign's
    /// `ENCRYPTED SIGSTORE PRIVATE KEY` / `ENCRYPTED COSIGN PRIVATE KEY` (decrypted with
    /// `password`; see [`cosign_key`]). The first private-key block is used.
    pub fn from_pem(pem_text: &str, password: Option<&[u8]>) -> Result<Self, Error> {
        let blocks = pem::parse_many(pem_text).map_err(|e| bad(format!("malformed PEM: {e}")))?;
        for b in &blocks {
            match b.tag() {
                "PRIVATE KEY" | "EC PRIVATE KEY" => return Self::from_der(b.contents()),
                t if cosign_key::PEM_LABELS.contains(&t) => {
                    let password = password.ok_or_else(|| Error::KeyDecryption {
                        reason: format!("{t} needs a password"),
                    })?;
                    let der = cosign_key::decrypt(b.contents(), password)?;
                    return Self::from_der(&der);
                }
                "ENCRYPTED PRIVATE KEY" => {
                    return Err(bad(
                        "PKCS#8 ENCRYPTED PRIVATE KEY (PBES2) is not supported; use cosign's encrypted format or a plain PKCS#8 key",
                    ));
                }
                _ => {}
            }
        }
        Err(bad("no private key PEM block found"))
    }

    /// The key's algorithm.
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    /// The public key.
    pub fn public_key(&self) -> PublicKey {
        self.public.clone()
    }

    /// The key's kind, as [`PublicKey::kind`] names it.
    pub fn kind(&self) -> KeyKind {
        self.public.kind()
    }

    /// The private key as PKCS#8 v1 DER (zeroized on drop).
    pub fn to_pkcs8_der(&self) -> Result<Zeroizing<Vec<u8>>, Error> {
        match &self.inner {
            Inner::Ecdsa(kp) => kp.to_pkcs8v1().map(|d| Zeroizing::new(d.as_ref().to_vec())),
            Inner::Ed25519(kp) => kp.to_pkcs8v1().map(|d| Zeroizing::new(d.as_ref().to_vec())),
        }
        .map_err(|_| bad("cannot encode the private key"))
    }

    /// The private key as an unencrypted PKCS#8 `PRIVATE KEY` PEM block (zeroized on drop).
    pub fn to_pkcs8_pem(&self) -> Result<Zeroizing<String>, Error> {
        let der = self.to_pkcs8_der()?;
        Ok(Zeroizing::new(pem::encode(&pem::Pem::new(
            "PRIVATE KEY",
            der.to_vec(),
        ))))
    }

    /// The private key in cosign's encrypted format (`ENCRYPTED SIGSTORE PRIVATE KEY`, scrypt
    /// N=32768 r=8 p=1 and NaCl secretbox over the PKCS#8 DER), as `cosign generate-key-pair`
    /// writes `cosign.key`.
    pub fn to_cosign_pem(&self, password: &[u8]) -> Result<String, Error> {
        let der = self.to_pkcs8_der()?;
        let blob = cosign_key::encrypt(&der, password, cosign_key::ScryptParams::default())?;
        Ok(pem::encode(&pem::Pem::new(cosign_key::PEM_LABEL, blob)))
    }
}

impl Signer for SigningKey {
    fn public_key(&self) -> PublicKey {
        self.public.clone()
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        match &self.inner {
            Inner::Ecdsa(kp) => kp
                .sign(&SystemRandom::new(), message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| Error::Signing {
                    reason: "ECDSA signing failed".into(),
                }),
            Inner::Ed25519(kp) => Ok(kp.sign(message).as_ref().to_vec()),
        }
    }
}
