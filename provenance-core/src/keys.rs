//! Public keys: PEM / DER SubjectPublicKeyInfo with the algorithm identified.

use std::fmt;

use const_oid::ObjectIdentifier;
use x509_cert::der::{Decode, Encode};
use x509_cert::spki::SubjectPublicKeyInfoOwned;

use crate::digest::Digest;
use crate::error::Error;

const OID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const OID_P521: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.35");
const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const OID_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const OID_RSA_PSS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10");

/// The family and parameters of a public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyKind {
    /// ECDSA over NIST P-256.
    EcdsaP256,
    /// ECDSA over NIST P-384.
    EcdsaP384,
    /// ECDSA over NIST P-521.
    EcdsaP521,
    /// Ed25519.
    Ed25519,
    /// RSA (PKCS#1 v1.5 or PSS signatures), with the modulus size in bits.
    Rsa {
        /// Modulus length in bits.
        bits: usize,
    },
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyKind::EcdsaP256 => f.write_str("ecdsa-p256"),
            KeyKind::EcdsaP384 => f.write_str("ecdsa-p384"),
            KeyKind::EcdsaP521 => f.write_str("ecdsa-p521"),
            KeyKind::Ed25519 => f.write_str("ed25519"),
            KeyKind::Rsa { bits } => write!(f, "rsa-{bits}"),
        }
    }
}

/// A public key: its DER SubjectPublicKeyInfo and its identified kind.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PublicKey {
    kind: KeyKind,
    spki_der: Vec<u8>,
    /// The raw key bits (EC point, Ed25519 key, or PKCS#1 RSAPublicKey).
    raw: Vec<u8>,
}

impl PublicKey {
    /// Parses a DER-encoded SubjectPublicKeyInfo.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, Error> {
        let bad = |reason: String| Error::InvalidPublicKey { reason };
        let spki = SubjectPublicKeyInfoOwned::from_der(der)
            .map_err(|e| bad(format!("not a DER SubjectPublicKeyInfo: {e}")))?;
        let raw = spki
            .subject_public_key
            .as_bytes()
            .ok_or_else(|| bad("public key bit string has unused bits".into()))?
            .to_vec();
        let oid = spki.algorithm.oid;
        let kind = if oid == OID_EC_PUBLIC_KEY {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.decode_as::<ObjectIdentifier>().ok())
                .ok_or_else(|| bad("EC key without a named curve".into()))?;
            let (kind, len) = match curve {
                c if c == OID_P256 => (KeyKind::EcdsaP256, 65),
                c if c == OID_P384 => (KeyKind::EcdsaP384, 97),
                c if c == OID_P521 => (KeyKind::EcdsaP521, 133),
                c => return Err(bad(format!("unsupported elliptic curve {c}"))),
            };
            if raw.len() != len || raw[0] != 4 {
                return Err(bad(format!(
                    "{kind} key must be an uncompressed point of {len} bytes"
                )));
            }
            kind
        } else if oid == OID_ED25519 {
            if raw.len() != 32 {
                return Err(bad("Ed25519 key must be 32 bytes".into()));
            }
            KeyKind::Ed25519
        } else if oid == OID_RSA || oid == OID_RSA_PSS {
            let bits =
                rsa_modulus_bits(&raw).ok_or_else(|| bad("malformed RSAPublicKey".into()))?;
            if bits < 2048 {
                return Err(bad(format!(
                    "RSA key of {bits} bits is too small (minimum 2048)"
                )));
            }
            KeyKind::Rsa { bits }
        } else {
            return Err(bad(format!("unsupported key algorithm {oid}")));
        };
        // Re-encode to get a canonical DER form (rejects trailing data via from_der above).
        let spki_der = spki
            .to_der()
            .map_err(|e| bad(format!("cannot re-encode key: {e}")))?;
        Ok(PublicKey {
            kind,
            spki_der,
            raw,
        })
    }

    /// Parses a bare PKCS#1 `RSAPublicKey` (as some CT logs publish their keys), wrapping it in
    /// an `rsaEncryption` SubjectPublicKeyInfo.
    pub fn from_pkcs1_rsa_der(der: &[u8]) -> Result<Self, Error> {
        use x509_cert::der::asn1::{Any, BitString};
        use x509_cert::spki::AlgorithmIdentifierOwned;
        let bad = |reason: String| Error::InvalidPublicKey { reason };
        let spki = SubjectPublicKeyInfoOwned {
            algorithm: AlgorithmIdentifierOwned {
                oid: OID_RSA,
                parameters: Some(Any::null()),
            },
            subject_public_key: BitString::from_bytes(der)
                .map_err(|e| bad(format!("cannot wrap PKCS#1 key: {e}")))?,
        };
        let spki_der = spki
            .to_der()
            .map_err(|e| bad(format!("cannot wrap PKCS#1 key: {e}")))?;
        Self::from_spki_der(&spki_der)
    }

    /// The public key of a DER X.509 certificate (its SubjectPublicKeyInfo). Nothing about the
    /// certificate (issuer, validity, extensions) is checked.
    pub fn from_certificate_der(der: &[u8]) -> Result<Self, Error> {
        let cert = x509_cert::Certificate::from_der(der).map_err(|e| Error::InvalidPublicKey {
            reason: format!("not an X.509 certificate: {e}"),
        })?;
        let spki = cert
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .map_err(|e| Error::InvalidPublicKey {
                reason: format!("certificate public key: {e}"),
            })?;
        Self::from_spki_der(&spki)
    }

    /// Parses a PEM `PUBLIC KEY` block (the first one in `pem`).
    pub fn from_pem(pem_text: &str) -> Result<Self, Error> {
        let keys = Self::all_from_pem(pem_text)?;
        keys.into_iter()
            .next()
            .ok_or_else(|| Error::InvalidPublicKey {
                reason: "no PUBLIC KEY block found".into(),
            })
    }

    /// Parses every PEM `PUBLIC KEY` block in `pem_text` (Kyverno's `publicKeys` may hold
    /// several). Other block types are an error, so a certificate is never taken for a key.
    pub fn all_from_pem(pem_text: &str) -> Result<Vec<Self>, Error> {
        let blocks = pem::parse_many(pem_text).map_err(|e| Error::InvalidPublicKey {
            reason: format!("malformed PEM: {e}"),
        })?;
        blocks
            .iter()
            .map(|b| {
                if b.tag() != "PUBLIC KEY" {
                    return Err(Error::InvalidPublicKey {
                        reason: format!("expected a PUBLIC KEY PEM block, found {:?}", b.tag()),
                    });
                }
                Self::from_spki_der(b.contents())
            })
            .collect()
    }

    /// The key's kind.
    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// The DER SubjectPublicKeyInfo.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// The raw key bits inside the SubjectPublicKeyInfo.
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    /// The key id as Rekor and CT logs compute it: SHA-256 of the DER SubjectPublicKeyInfo.
    pub fn key_id(&self) -> Digest {
        Digest::sha256_of(&self.spki_der)
    }

    /// The key as a PEM `PUBLIC KEY` block.
    pub fn to_pem(&self) -> String {
        pem::encode(&pem::Pem::new("PUBLIC KEY", self.spki_der.clone()))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({}, {})", self.kind, self.key_id())
    }
}

/// Reads the bit length of the modulus of a PKCS#1 RSAPublicKey (`SEQUENCE { INTEGER, INTEGER }`).
fn rsa_modulus_bits(der: &[u8]) -> Option<usize> {
    fn tlv(b: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
        let (&t, rest) = b.split_first()?;
        if t != tag {
            return None;
        }
        let (&l0, rest) = rest.split_first()?;
        let (len, rest) = if l0 < 0x80 {
            (l0 as usize, rest)
        } else {
            let n = (l0 & 0x7f) as usize;
            if n == 0 || n > 4 || rest.len() < n {
                return None;
            }
            let len = rest[..n].iter().fold(0usize, |a, &x| (a << 8) | x as usize);
            (len, &rest[n..])
        };
        if rest.len() < len {
            return None;
        }
        Some((&rest[..len], &rest[len..]))
    }
    let (seq, trailing) = tlv(der, 0x30)?;
    if !trailing.is_empty() {
        return None;
    }
    let (modulus, rest) = tlv(seq, 0x02)?;
    let (exponent, rest) = tlv(rest, 0x02)?;
    if !rest.is_empty() || exponent.is_empty() {
        return None;
    }
    let m = match modulus.split_first()? {
        (0, tail) => tail,
        _ => modulus,
    };
    let first = *m.first()?;
    if first == 0 {
        return None;
    }
    Some((m.len() - 1) * 8 + (8 - first.leading_zeros() as usize))
}
