//! Content digests: `sha256:<hex>` and `sha512:<hex>`, as OCI and in-toto write them.

use std::fmt;
use std::io::Read;
use std::str::FromStr;

use aws_lc_rs::digest as lc;
use subtle::ConstantTimeEq;

use crate::error::{Error, clip};

/// A digest algorithm supported by `provenance`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum DigestAlgorithm {
    /// SHA-256 (64 hex characters).
    Sha256,
    /// SHA-512 (128 hex characters).
    Sha512,
}

impl DigestAlgorithm {
    /// The algorithm's name as written before the `:` (`sha256`, `sha512`).
    pub fn as_str(self) -> &'static str {
        match self {
            DigestAlgorithm::Sha256 => "sha256",
            DigestAlgorithm::Sha512 => "sha512",
        }
    }

    /// Length of the raw digest in bytes.
    pub fn output_len(self) -> usize {
        match self {
            DigestAlgorithm::Sha256 => 32,
            DigestAlgorithm::Sha512 => 64,
        }
    }

    fn lc(self) -> &'static lc::Algorithm {
        match self {
            DigestAlgorithm::Sha256 => &lc::SHA256,
            DigestAlgorithm::Sha512 => &lc::SHA512,
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        match name {
            "sha256" => Some(DigestAlgorithm::Sha256),
            "sha512" => Some(DigestAlgorithm::Sha512),
            _ => None,
        }
    }
}

impl fmt::Display for DigestAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A content digest: an algorithm and the raw hash bytes.
///
/// Parsing accepts only lowercase hex of exactly the algorithm's length, as the OCI image spec
/// requires for registered algorithms. Equality ([`PartialEq`]) is constant-time over the bytes.
///
/// ```
/// use provenance_core::Digest;
/// let d = Digest::sha256_of(b"hello");
/// assert_eq!(
///     d.to_string(),
///     "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
/// );
/// assert!(d.verify(b"hello").is_ok());
/// assert_eq!(d, d.to_string().parse().unwrap());
/// ```
#[derive(Clone, Eq)]
pub struct Digest {
    algorithm: DigestAlgorithm,
    bytes: Box<[u8]>,
}

impl Digest {
    /// Builds a digest from an algorithm and raw bytes of the right length.
    pub fn from_bytes(algorithm: DigestAlgorithm, bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() != algorithm.output_len() {
            return Err(Error::InvalidDigest {
                input: hex::encode(&bytes[..bytes.len().min(64)]),
                reason: "wrong length for algorithm",
            });
        }
        Ok(Digest {
            algorithm,
            bytes: bytes.into(),
        })
    }

    /// Parses `<algorithm>:<hex>`.
    pub fn parse(input: &str) -> Result<Self, Error> {
        let bad = |reason| Error::InvalidDigest {
            input: clip(input, 128),
            reason,
        };
        let (alg, hex_part) = input.split_once(':').ok_or_else(|| bad("missing ':'"))?;
        if alg.is_empty() {
            return Err(bad("empty algorithm"));
        }
        if !alg
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+._-".contains(&b))
        {
            return Err(bad("algorithm has invalid characters"));
        }
        let algorithm =
            DigestAlgorithm::from_name(alg).ok_or_else(|| Error::UnsupportedDigestAlgorithm {
                algorithm: clip(alg, 64),
            })?;
        if hex_part.len() != algorithm.output_len() * 2 {
            return Err(bad("wrong hex length for algorithm"));
        }
        if !hex_part
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(bad("hex must be lowercase [0-9a-f]"));
        }
        let bytes = hex::decode(hex_part).map_err(|_| bad("invalid hex"))?;
        Ok(Digest {
            algorithm,
            bytes: bytes.into(),
        })
    }

    /// The SHA-256 digest of `data`.
    pub fn sha256_of(data: &[u8]) -> Self {
        Self::compute(DigestAlgorithm::Sha256, data)
    }

    /// The digest of `data` with `algorithm`.
    pub fn compute(algorithm: DigestAlgorithm, data: &[u8]) -> Self {
        let d = lc::digest(algorithm.lc(), data);
        Digest {
            algorithm,
            bytes: d.as_ref().into(),
        }
    }

    /// Hashes everything `reader` yields with `algorithm`, in 1 MiB reads.
    pub fn compute_reader<R: Read>(
        algorithm: DigestAlgorithm,
        mut reader: R,
    ) -> Result<Self, Error> {
        let mut ctx = lc::Context::new(algorithm.lc());
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(Error::Io {
                        message: e.to_string(),
                    });
                }
            };
            ctx.update(&buf[..n]);
        }
        let d = ctx.finish();
        Ok(Digest {
            algorithm,
            bytes: d.as_ref().into(),
        })
    }

    /// The algorithm.
    pub fn algorithm(&self) -> DigestAlgorithm {
        self.algorithm
    }

    /// The raw digest bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The lowercase hex of the digest bytes (no algorithm prefix).
    pub fn hex(&self) -> String {
        hex::encode(&self.bytes)
    }

    /// Checks that `data` hashes to this digest.
    pub fn verify(&self, data: &[u8]) -> Result<(), Error> {
        let actual = Self::compute(self.algorithm, data);
        self.expect_equal(&actual)
    }

    /// Checks that everything `reader` yields hashes to this digest.
    pub fn verify_reader<R: Read>(&self, reader: R) -> Result<(), Error> {
        let actual = Self::compute_reader(self.algorithm, reader)?;
        self.expect_equal(&actual)
    }

    fn expect_equal(&self, actual: &Digest) -> Result<(), Error> {
        if self == actual {
            Ok(())
        } else {
            Err(Error::DigestMismatch {
                expected: self.to_string(),
                actual: actual.to_string(),
            })
        }
    }
}

impl PartialEq for Digest {
    fn eq(&self, other: &Self) -> bool {
        self.algorithm == other.algorithm && bool::from(self.bytes.ct_eq(&other.bytes))
    }
}

impl std::hash::Hash for Digest {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.algorithm.hash(state);
        self.bytes.hash(state);
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm, self.hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

impl FromStr for Digest {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Digest::parse(s)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_digests() {
        for (input, code) in [
            ("sha256", "core.digest.invalid"),
            (":abc", "core.digest.invalid"),
            ("sha256:abc", "core.digest.invalid"),
            (
                "md5:d41d8cd98f00b204e9800998ecf8427e",
                "core.digest.unsupported_algorithm",
            ),
            (
                "sha256:2CF24DBA5FB0A30E26E83B2AC5B9E29E1B161E5C1FA7425E73043362938B9824",
                "core.digest.invalid",
            ),
            (
                "SHA256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
                "core.digest.invalid",
            ),
        ] {
            assert_eq!(Digest::parse(input).unwrap_err().code(), code, "{input}");
        }
    }

    #[test]
    fn stream_matches_one_shot_and_mismatch_is_reported() {
        let data = vec![7u8; 3 << 20];
        let a = Digest::compute(DigestAlgorithm::Sha512, &data);
        let b = Digest::compute_reader(DigestAlgorithm::Sha512, &data[..]).unwrap();
        assert_eq!(a, b);
        let err = a.verify(b"other").unwrap_err();
        assert_eq!(err.code(), "core.digest.mismatch");
    }
}
