//! cosign's encrypted private-key format.
//!
//! `cosign generate-key-pair` writes `cosign.key` as a PEM block labelled
//! `ENCRYPTED SIGSTORE PRIVATE KEY` (cosign before 2.0: `ENCRYPTED COSIGN PRIVATE KEY`) whose
//! contents are JSON:
//!
//! ```json
//! {"kdf":{"name":"scrypt","params":{"N":32768,"r":8,"p":1},"salt":"<base64, 32 bytes>"},
//!  "cipher":{"name":"nacl/secretbox","nonce":"<base64, 24 bytes>"},
//!  "ciphertext":"<base64>"}
//! ```
//!
//! The 32-byte secretbox key is `scrypt(password, salt, N, r, p)`; the ciphertext is NaCl
//! `crypto_secretbox` (XSalsa20-Poly1305, the 16-byte Poly1305 tag first) over the PKCS#8 DER
//! private key. cosign reads the password from `COSIGN_PASSWORD` (or a prompt); so does the
//! `provenance` CLI.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use poly1305::Poly1305;
use poly1305::universal_hash::KeyInit;
use salsa20::XSalsa20;
use salsa20::cipher::{KeyIvInit, StreamCipher};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::error::Error;

/// The PEM label cosign 2.x writes.
pub const PEM_LABEL: &str = "ENCRYPTED SIGSTORE PRIVATE KEY";
/// Every PEM label read as cosign's encrypted format (2.x and the older `COSIGN` spelling).
pub const PEM_LABELS: &[&str] = &[PEM_LABEL, "ENCRYPTED COSIGN PRIVATE KEY"];

/// Largest scrypt cost accepted when importing (`N` up to 2^18, `r` and `p` up to 16): a
/// hostile key file cannot make the import allocate gigabytes or run for minutes.
const MAX_LOG_N: u8 = 18;
const MAX_R_P: u32 = 16;

/// scrypt parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScryptParams {
    /// CPU/memory cost, a power of two.
    #[serde(rename = "N")]
    pub n: u64,
    /// Block size.
    pub r: u32,
    /// Parallelism.
    pub p: u32,
}

impl Default for ScryptParams {
    /// cosign's parameters: N=32768, r=8, p=1.
    fn default() -> Self {
        ScryptParams {
            n: 32768,
            r: 8,
            p: 1,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Kdf {
    name: String,
    params: ScryptParams,
    salt: String,
}

#[derive(Serialize, Deserialize)]
struct Cipher {
    name: String,
    nonce: String,
}

#[derive(Serialize, Deserialize)]
struct Sealed {
    kdf: Kdf,
    cipher: Cipher,
    ciphertext: String,
}

fn fail(reason: impl Into<String>) -> Error {
    Error::KeyDecryption {
        reason: reason.into(),
    }
}

fn derive(
    password: &[u8],
    salt: &[u8],
    params: ScryptParams,
) -> Result<Zeroizing<[u8; 32]>, Error> {
    if !params.n.is_power_of_two() || params.n < 2 {
        return Err(fail(format!("scrypt N={} is not a power of two", params.n)));
    }
    let log_n = params.n.trailing_zeros() as u8;
    if log_n > MAX_LOG_N || params.r > MAX_R_P || params.p > MAX_R_P {
        return Err(fail(format!(
            "scrypt parameters N={} r={} p={} exceed the accepted maximum (N=2^{MAX_LOG_N}, r,p={MAX_R_P})",
            params.n, params.r, params.p
        )));
    }
    let p = scrypt::Params::new(log_n, params.r, params.p)
        .map_err(|_| fail("invalid scrypt parameters"))?;
    let mut key = Zeroizing::new([0u8; 32]);
    scrypt::scrypt(password, salt, &p, key.as_mut()).map_err(|_| fail("scrypt failed"))?;
    Ok(key)
}

/// NaCl secretbox: returns (poly1305 tag, ciphertext) for `plaintext`, or decrypts in place
/// when `decrypt_tag` is given (the tag is checked before anything is decrypted).
fn secretbox(
    key: &[u8; 32],
    nonce: &[u8],
    data: &mut [u8],
    decrypt_tag: Option<&[u8]>,
) -> Result<[u8; 16], Error> {
    let mut cipher =
        XSalsa20::new_from_slices(key, nonce).map_err(|_| fail("nonce must be 24 bytes"))?;
    // The first 32 bytes of keystream are the one-time Poly1305 key; the message is
    // encrypted with the keystream from byte 32 on.
    let mut otk = Zeroizing::new([0u8; 32]);
    cipher.apply_keystream(otk.as_mut());
    let mac = Poly1305::new_from_slice(otk.as_ref()).map_err(|_| fail("poly1305 key"))?;
    match decrypt_tag {
        Some(tag) => {
            let want = mac.compute_unpadded(data);
            if tag.len() != 16 || !bool::from(want.as_slice().ct_eq(tag)) {
                return Err(fail(
                    "wrong password, or the key file is corrupted (authentication failed)",
                ));
            }
            cipher.apply_keystream(data);
            let mut out = [0u8; 16];
            out.copy_from_slice(tag);
            Ok(out)
        }
        None => {
            cipher.apply_keystream(data);
            let tag = mac.compute_unpadded(data);
            let mut out = [0u8; 16];
            out.copy_from_slice(tag.as_slice());
            Ok(out)
        }
    }
}

/// Encrypts `plaintext` (a PKCS#8 DER key) with `password`: the JSON document cosign stores
/// inside its PEM block. Fresh random salt (32 bytes) and nonce (24 bytes).
pub fn encrypt(plaintext: &[u8], password: &[u8], params: ScryptParams) -> Result<Vec<u8>, Error> {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let mut salt = [0u8; 32];
    let mut nonce = [0u8; 24];
    aws_lc_rs::rand::SecureRandom::fill(&rng, &mut salt).map_err(|_| fail("no randomness"))?;
    aws_lc_rs::rand::SecureRandom::fill(&rng, &mut nonce).map_err(|_| fail("no randomness"))?;
    encrypt_with(plaintext, password, params, &salt, &nonce)
}

/// [`encrypt`] with a given salt and nonce (for test vectors; never reuse a nonce).
pub fn encrypt_with(
    plaintext: &[u8],
    password: &[u8],
    params: ScryptParams,
    salt: &[u8],
    nonce: &[u8],
) -> Result<Vec<u8>, Error> {
    let key = derive(password, salt, params)?;
    let mut data = plaintext.to_vec();
    let tag = secretbox(&key, nonce, &mut data, None)?;
    let mut boxed = tag.to_vec();
    boxed.extend_from_slice(&data);
    let sealed = Sealed {
        kdf: Kdf {
            name: "scrypt".into(),
            params,
            salt: STANDARD.encode(salt),
        },
        cipher: Cipher {
            name: "nacl/secretbox".into(),
            nonce: STANDARD.encode(nonce),
        },
        ciphertext: STANDARD.encode(&boxed),
    };
    serde_json::to_vec(&sealed).map_err(|e| fail(e.to_string()))
}

/// Decrypts the JSON document inside a cosign encrypted-key PEM block, returning the PKCS#8
/// DER private key. A wrong password is [`Error::KeyDecryption`].
pub fn decrypt(document: &[u8], password: &[u8]) -> Result<Zeroizing<Vec<u8>>, Error> {
    if document.len() > 64 << 10 {
        return Err(fail("encrypted key document larger than 64 KiB"));
    }
    let sealed: Sealed = serde_json::from_slice(document)
        .map_err(|e| fail(format!("not cosign's encrypted key JSON: {e}")))?;
    if sealed.kdf.name != "scrypt" {
        return Err(fail(format!("unsupported KDF {:?}", sealed.kdf.name)));
    }
    if sealed.cipher.name != "nacl/secretbox" {
        return Err(fail(format!("unsupported cipher {:?}", sealed.cipher.name)));
    }
    let b64 = |field: &str, s: &str| {
        STANDARD
            .decode(s)
            .map_err(|e| fail(format!("{field} is not base64: {e}")))
    };
    let salt = b64("kdf.salt", &sealed.kdf.salt)?;
    let nonce = b64("cipher.nonce", &sealed.cipher.nonce)?;
    let boxed = b64("ciphertext", &sealed.ciphertext)?;
    if boxed.len() < 16 {
        return Err(fail("ciphertext shorter than the authentication tag"));
    }
    let key = derive(password, &salt, sealed.kdf.params)?;
    let (tag, ct) = boxed.split_at(16);
    let mut data = Zeroizing::new(ct.to_vec());
    secretbox(&key, &nonce, &mut data, Some(tag))?;
    Ok(data)
}
