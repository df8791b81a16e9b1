//! Verifying a model-signing signature (a Sigstore bundle v0.3 holding a DSSE envelope over an
//! in-toto Statement) and extracting the signed manifest.
//!
//! - key: the bundle carries a public-key hint (hex SHA-256 of the signer's PEM public key, as
//!   model-signing writes it); the DSSE signature is verified by `provenance_core::verify`
//!   with `Expectation::Key { allow_no_transparency: true }` (such bundles have no log entry).
//! - certificate chain (`model_signing sign certificate`): `provenance_core::verify` only
//!   verifies Fulcio chains (with SCTs and log entries), so the chain is checked here with
//!   `rustls-webpki`: the bundle's leaf and intermediates must chain to one of the self-signed
//!   roots among the certificates given by the caller (the other certificates given may be
//!   used as intermediates, never as anchors), at the leaf's `notBefore` (as the reference
//!   does: such bundles have no trusted signing time), and the leaf must allow digital
//!   signatures (key usage `digitalSignature`, or extended key usage `codeSigning`). The DSSE signature is then
//!   verified by `provenance_core::verify` with the leaf's key.
//! - keyless (Sigstore): `provenance_core::verify` with `Expectation::Keyless` against a
//!   trusted root (Fulcio chain, SCT, Rekor inclusion, identity).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::Value;

use provenance_attest::modelsigning::{MODEL_SIGNING_V1, ModelSigningManifest};
use provenance_attest::{Limits, Statement};
use provenance_core::verify::{
    Artifact, Expectation, IdentityExpectation, PUBLIC_GOOD_TRUSTED_ROOT, SignatureMaterial,
    Verifier,
};
use provenance_core::{Digest, PublicKey, TrustRoot, UnixTime};

use super::error::ModelError;

/// Largest signature file accepted.
pub const MAX_SIGNATURE_BYTES: usize = 8 << 20;

/// Who must have signed the model.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ModelTrust {
    /// `model_signing sign key`: this public key (EC P-256/P-384/P-521).
    Key(PublicKey),
    /// `model_signing sign certificate`: the signing certificate must chain to one of the
    /// self-signed roots among these DER certificates; the others (intermediates) may help
    /// build the path but are never trust anchors on their own.
    CertificateChain(Vec<Vec<u8>>),
    /// `model_signing sign sigstore`: a Fulcio certificate for this identity, logged in Rekor,
    /// under this trusted root.
    Keyless {
        /// The Sigstore trusted root.
        root: Box<TrustRoot>,
        /// The expected identity (subject and OIDC issuer).
        identity: IdentityExpectation,
    },
}

impl ModelTrust {
    /// Reads a list of PEM certificates into a [`ModelTrust::CertificateChain`].
    pub fn certificate_chain_from_pem(pem_text: &[u8]) -> Result<Self, ModelError> {
        let certs = pem::parse_many(pem_text).map_err(|e| ModelError::Config {
            message: format!("certificate chain: {e}"),
        })?;
        let ders: Vec<Vec<u8>> = certs
            .into_iter()
            .filter(|p| p.tag() == "CERTIFICATE")
            .map(|p| p.contents().to_vec())
            .collect();
        if ders.is_empty() {
            return Err(ModelError::Config {
                message: "no CERTIFICATE in the certificate chain file".into(),
            });
        }
        Ok(ModelTrust::CertificateChain(ders))
    }
}

/// Stricter checks than model_signing's own verifier, for signatures it accepts but that a
/// deployment may not want to (see `docs/security-model.md`). The default verifies what the
/// current model_signing verifies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SignatureOptions {
    /// Reject a signing certificate that is itself a CA certificate (basic constraints
    /// `CA:TRUE`), self-signed or not, as RFC 5280 path validation does for an end entity.
    /// model_signing accepts one (its OpenSSL store checks the issuers' roles, not the
    /// signing certificate's).
    pub reject_ca_signing_certificate: bool,
    /// Reject signatures made by model_signing 0.1.x and 0.2.0, whose DSSE pre-authentication
    /// encoding is not DSSE's (`DSSEV1 ... b'<Python bytes literal>'`, ECDSA with SHA-256).
    /// model_signing accepts them when the standard encoding does not verify.
    pub reject_legacy_pae: bool,
}

impl SignatureOptions {
    /// Every stricter check on.
    pub fn strict() -> Self {
        SignatureOptions {
            reject_ca_signing_certificate: true,
            reject_legacy_pae: true,
        }
    }
}

/// A verified signature: who signed and the manifest they signed.
#[derive(Debug, Clone, PartialEq)]
pub struct SignedManifest {
    /// The model name from the Statement's subject (informative only).
    pub model_name: String,
    /// The Statement's subject digest (SHA-256 over the resource digests): v1.0 predicates
    /// only (the `Digests/v0.1` predicate of 0.1.x/0.2.0 has none).
    pub root_digest: Option<Digest>,
    /// The signed manifest.
    pub manifest: ModelSigningManifest,
    /// Who signed: `key:<sha256 of SPKI>`, `certificate:<subject>`, or `keyless:<identity>`.
    pub signer: String,
}

/// Verifies the signature file's bytes against `trust` at `now` and returns the signed
/// manifest. Nothing is returned unless the signature verified. Accepts what the current
/// model_signing verifier accepts ([`SignatureOptions::default`]).
pub fn verify_signature(
    bundle_json: &[u8],
    trust: &ModelTrust,
    now: UnixTime,
) -> Result<SignedManifest, ModelError> {
    verify_signature_with(bundle_json, trust, now, &SignatureOptions::default())
}

/// [`verify_signature`] with stricter checks switched on by `opts`.
pub fn verify_signature_with(
    bundle_json: &[u8],
    trust: &ModelTrust,
    now: UnixTime,
    opts: &SignatureOptions,
) -> Result<SignedManifest, ModelError> {
    if bundle_json.len() > MAX_SIGNATURE_BYTES {
        return Err(ModelError::TooLarge {
            what: "signature file",
            limit: MAX_SIGNATURE_BYTES as u64,
        });
    }
    let bundle: Value =
        serde_json::from_slice(bundle_json).map_err(|e| malformed(e.to_string()))?;
    let env = bundle
        .get("dsseEnvelope")
        .ok_or_else(|| malformed("the bundle has no dsseEnvelope"))?;
    let payload_b64 = env
        .get("payload")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed("dsseEnvelope.payload missing"))?;
    let payload = B64
        .decode(payload_b64)
        .map_err(|_| malformed("dsseEnvelope.payload is not base64"))?;
    // Unverified look at the subject, only to tell the verifier which digest the in-toto
    // subject must carry; the signature check below binds the whole payload.
    let pre: Value =
        serde_json::from_slice(&payload).map_err(|e| ModelError::MalformedManifest {
            message: format!("payload is not JSON: {e}"),
        })?;
    let subject_digest = pre
        .pointer("/subject/0/digest/sha256")
        .and_then(Value::as_str)
        .and_then(|h| Digest::parse(&format!("sha256:{h}")).ok())
        .ok_or_else(|| ModelError::MalformedManifest {
            message: "subject[0].digest.sha256 missing or invalid".into(),
        })?;
    let public_good = || {
        TrustRoot::from_trusted_root_json(PUBLIC_GOOD_TRUSTED_ROOT).map_err(|e| {
            ModelError::Config {
                message: format!("embedded trusted root: {e}"),
            }
        })
    };
    let vm = bundle.get("verificationMaterial");
    let (verified, signer) = match trust {
        ModelTrust::Key(key) => {
            if let Some(hint) = vm
                .and_then(|v| v.pointer("/publicKey/hint"))
                .and_then(Value::as_str)
                .filter(|h| !h.is_empty())
            {
                let want = hex::encode(Digest::sha256_of(python_pem(key).as_bytes()).as_bytes());
                if hint != want {
                    return Err(ModelError::KeyMismatch {
                        hint: hint.chars().take(128).collect(),
                    });
                }
            }
            let v = core_verify(
                &public_good()?,
                &subject_digest,
                bundle_json.to_vec(),
                &Expectation::Key {
                    key: key.clone(),
                    allow_no_transparency: true,
                },
                now,
            )
            .map(|v| v.payload)
            .or_else(|e| legacy_pae(e, env, vm, key, LegacyHash::OfKey, opts))?;
            (v, format!("key:{}", key.key_id()))
        }
        ModelTrust::CertificateChain(anchors) => {
            let chain = vm
                .and_then(|v| v.pointer("/x509CertificateChain/certificates"))
                .and_then(Value::as_array)
                .ok_or_else(|| ModelError::Signature {
                    code: "model.material_kind".into(),
                    message: "certificate-chain verification requested, the bundle has no x509CertificateChain".into(),
                })?;
            let ders = chain
                .iter()
                .map(|c| {
                    c.get("rawBytes")
                        .and_then(Value::as_str)
                        .and_then(|s| B64.decode(s).ok())
                        .ok_or_else(|| malformed("certificate rawBytes missing or not base64"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let (leaf_spki, subject) =
                verify_chain(&ders, anchors, opts.reject_ca_signing_certificate)?;
            let key =
                PublicKey::from_spki_der(&leaf_spki).map_err(|e| ModelError::CertificateChain {
                    message: format!("signing certificate key: {e}"),
                })?;
            // Hand the envelope to the core verifier as a key-only bundle over the leaf key.
            let mut rewritten = bundle.clone();
            if let Some(obj) = rewritten.as_object_mut() {
                obj.insert(
                    "verificationMaterial".into(),
                    serde_json::json!({ "publicKey": { "hint": "" }, "tlogEntries": [] }),
                );
            }
            let bytes = serde_json::to_vec(&rewritten).map_err(|e| malformed(e.to_string()))?;
            let v = core_verify(
                &public_good()?,
                &subject_digest,
                bytes,
                &Expectation::Key {
                    key: key.clone(),
                    allow_no_transparency: true,
                },
                now,
            )
            .map(|v| v.payload)
            .or_else(|e| legacy_pae(e, env, vm, &key, LegacyHash::Sha256, opts))?;
            (v, format!("certificate:{subject}"))
        }
        ModelTrust::Keyless { root, identity } => {
            let v = core_verify(
                root,
                &subject_digest,
                bundle_json.to_vec(),
                &Expectation::Keyless(identity.clone()),
                now,
            )?;
            let who = match &v.signer {
                provenance_core::verify::Signer::Certificate(c) => format!("{c:?}"),
                other => format!("{other:?}"),
            };
            (v.payload, format!("keyless:{who}"))
        }
    };
    let Some((ptype, signed_payload)) = verified else {
        return Err(malformed("the bundle's content is not a DSSE envelope"));
    };
    if ptype != "application/vnd.in-toto+json" {
        return Err(ModelError::MalformedManifest {
            message: format!("payload type {ptype:?} is not application/vnd.in-toto+json"),
        });
    }
    parse_payload(&signed_payload, signer)
}

/// Which hash model_signing's verifier uses for a legacy (0.1.x/0.2.0) signature: the key's
/// own (its key verifier: SHA-256, SHA-384, SHA-512 for P-256, P-384, P-521), or SHA-256 (its
/// certificate verifier, as those releases signed).
#[derive(Clone, Copy)]
enum LegacyHash {
    OfKey,
    Sha256,
}

/// After the standard DSSE check failed with a bad signature (`verify.signature.invalid`):
/// accepts the envelope if its first signature verifies over model_signing 0.1.x/0.2.0's
/// pre-authentication encoding ([`legacy_pae_bytes`]), as model_signing's verifier does,
/// unless `opts.reject_legacy_pae`. Only for the shape those releases wrote (one signature, no
/// log entry, no timestamp). Any other failure, or a legacy check that fails too, returns the
/// original error.
fn legacy_pae(
    original: ModelError,
    env: &Value,
    vm: Option<&Value>,
    key: &PublicKey,
    hash: LegacyHash,
    opts: &SignatureOptions,
) -> Result<Option<(String, Vec<u8>)>, ModelError> {
    use aws_lc_rs::signature::{self as sig, UnparsedPublicKey, VerificationAlgorithm};
    let bad_signature = matches!(&original, ModelError::Signature { code, .. } if code == "verify.signature.invalid");
    if opts.reject_legacy_pae || !bad_signature {
        return Err(original);
    }
    // Only the shape those releases wrote: one signature, no log entry, no timestamp (nothing
    // the standard path would have checked is skipped here).
    let one_signature = env
        .get("signatures")
        .and_then(Value::as_array)
        .is_some_and(|a| a.len() == 1);
    let no_tlog = vm
        .and_then(|v| v.get("tlogEntries"))
        .is_none_or(|t| t.as_array().is_some_and(Vec::is_empty));
    let no_timestamps = vm
        .and_then(|v| v.get("timestampVerificationData"))
        .is_none();
    if !(one_signature && no_tlog && no_timestamps) {
        return Err(original);
    }
    let alg: &'static dyn VerificationAlgorithm = match (key.kind(), hash) {
        (provenance_core::KeyKind::EcdsaP256, _) => &sig::ECDSA_P256_SHA256_ASN1,
        (provenance_core::KeyKind::EcdsaP384, LegacyHash::Sha256) => &sig::ECDSA_P384_SHA256_ASN1,
        (provenance_core::KeyKind::EcdsaP384, LegacyHash::OfKey) => &sig::ECDSA_P384_SHA384_ASN1,
        (provenance_core::KeyKind::EcdsaP521, LegacyHash::OfKey) => &sig::ECDSA_P521_SHA512_ASN1,
        _ => return Err(original),
    };
    let Some(signature) = env
        .pointer("/signatures/0/sig")
        .and_then(Value::as_str)
        .and_then(|s| B64.decode(s).ok())
    else {
        return Err(original);
    };
    let Some(payload) = env
        .get("payload")
        .and_then(Value::as_str)
        .and_then(|s| B64.decode(s).ok())
    else {
        return Err(original);
    };
    let ptype = env
        .get("payloadType")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if UnparsedPublicKey::new(alg, key.raw())
        .verify(&legacy_pae_bytes(&payload), &signature)
        .is_err()
    {
        return Err(original);
    }
    Ok(Some((ptype, payload)))
}

/// model_signing 0.1.x/0.2.0's pre-authentication encoding: `DSSEV1` (capital V), the in-toto
/// payload type, the payload's length in bytes, then Python's `repr` of the payload bytes
/// (`b'...'`), as its f-string produced. The payload type is always in-toto's there.
pub(crate) fn legacy_pae_bytes(payload: &[u8]) -> Vec<u8> {
    const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
    let mut out = format!(
        "DSSEV1 {} {} {} ",
        PAYLOAD_TYPE.len(),
        PAYLOAD_TYPE,
        payload.len()
    )
    .into_bytes();
    python_bytes_repr(payload, &mut out);
    out
}

/// CPython's `repr(bytes)`: `b'...'`, or `b"..."` when the bytes hold `'` and no `"`;
/// `\\`, the quote, `\t`, `\n`, `\r` escaped, other bytes outside 0x20..0x7e as `\xhh`.
fn python_bytes_repr(bytes: &[u8], out: &mut Vec<u8>) {
    let quote = if bytes.contains(&b'\'') && !bytes.contains(&b'"') {
        b'"'
    } else {
        b'\''
    };
    out.push(b'b');
    out.push(quote);
    for &c in bytes {
        match c {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            c if c == quote => {
                out.push(b'\\');
                out.push(c);
            }
            0x20..=0x7e => out.push(c),
            c => out.extend_from_slice(format!("\\x{c:02x}").as_bytes()),
        }
    }
    out.push(quote);
}

fn core_verify(
    root: &TrustRoot,
    subject: &Digest,
    bundle: Vec<u8>,
    expectation: &Expectation,
    now: UnixTime,
) -> Result<provenance_core::verify::Verified, ModelError> {
    let verifier = Verifier::new(root).map_err(|e| ModelError::Config {
        message: e.to_string(),
    })?;
    verifier
        .verify(
            Artifact::Digest(subject),
            &SignatureMaterial::Bundle(bundle),
            expectation,
            now,
        )
        .map_err(|e| ModelError::Signature {
            code: e.code().to_string(),
            message: e.to_string(),
        })
}

/// Parses a verified in-toto payload into the signed manifest (root digest checked).
fn parse_payload(payload: &[u8], signer: String) -> Result<SignedManifest, ModelError> {
    let bad = |m: String| ModelError::MalformedManifest { message: m };
    let mut value: Value = serde_json::from_slice(payload).map_err(|e| bad(e.to_string()))?;
    if value.get("_type").and_then(Value::as_str) != Some("https://in-toto.io/Statement/v1") {
        return Err(bad(
            "statement _type is not https://in-toto.io/Statement/v1".into(),
        ));
    }
    // model-signing writes the predicate through a protobuf Struct, so integers come out as
    // JSON floats (`"shard_size": 524288.0`); read integral floats as integers.
    if let Some(s) = value.pointer_mut("/predicate/serialization/shard_size")
        && let Some(f) = s.as_f64()
        && !s.is_u64()
    {
        if f.fract() != 0.0 || !(1.0..=9.0e15).contains(&f) {
            return Err(bad(format!("shard_size {f} is not a positive integer")));
        }
        *s = Value::from(f as u64);
    }
    let limits = Limits::default();
    let statement = Statement::from_value(&value, &limits).map_err(|e| bad(e.to_string()))?;
    let (model_name, manifest) = ModelSigningManifest::from_statement(&statement, &limits)
        .map_err(|e| bad(e.to_string()))?;
    // Only the v1.0 predicate has a root digest as its subject; the older
    // `Digests/v0.1` one (0.1.x/0.2.0) lists the files as subjects instead.
    let root_digest = (statement.predicate_type == MODEL_SIGNING_V1)
        .then(|| statement.subjects.first())
        .flatten()
        .and_then(|s| s.digest.get("sha256"))
        .and_then(|h| Digest::parse(&format!("sha256:{h}")).ok());
    Ok(SignedManifest {
        model_name,
        root_digest,
        manifest,
        signer,
    })
}

/// The PEM text Python's `cryptography` writes for a public key (LF line endings, 64-column
/// base64): what model-signing hashes into the key hint.
pub(crate) fn python_pem(key: &PublicKey) -> String {
    let b64 = B64.encode(key.spki_der());
    let mut s = String::from("-----BEGIN PUBLIC KEY-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        s.push_str(&String::from_utf8_lossy(chunk));
        s.push('\n');
    }
    s.push_str("-----END PUBLIC KEY-----\n");
    s
}

fn malformed(m: impl Into<String>) -> ModelError {
    ModelError::MalformedSignature { message: m.into() }
}

/// Accepts any EKU in webpki's path building; the leaf's usage is checked afterwards exactly
/// as model-signing does (key usage digitalSignature, or extended key usage codeSigning).
struct AnyEku;

impl webpki::ExtendedKeyUsageValidator for AnyEku {
    fn validate(&self, _iter: webpki::KeyPurposeIdIter<'_, '_>) -> Result<(), webpki::Error> {
        Ok(())
    }
}

const OID_KEY_USAGE: &str = "2.5.29.15";
const OID_EXT_KEY_USAGE: &str = "2.5.29.37";
const OID_CODE_SIGNING: &str = "1.3.6.1.5.5.7.3.3";

/// Verifies `chain` (leaf first, then intermediates, from the bundle) against the `trusted`
/// certificates and returns the leaf's SubjectPublicKeyInfo DER and subject.
///
/// As strict as model-signing's verifier (an OpenSSL store without partial chains): only the
/// self-signed certificates among `trusted` are trust anchors; the others may serve as
/// intermediates for path building, but a path must end at one of those roots. Every
/// certificate of the path, the root included, must be valid at the leaf's `notBefore`; CA
/// certificates must be CAs (basic constraints) and, when they carry a key usage, allow
/// `keyCertSign`; the leaf must allow signing as model_signing 1.1 checks it: a key usage
/// with `digitalSignature`, or else an extended key usage `codeSigning` (with or without a key
/// usage extension).
///
/// A leaf that is itself a CA (basic constraints `CA:TRUE`) is accepted as model_signing
/// accepts it, unless `reject_ca_leaf`: webpki refuses such an end entity, so its path is
/// checked by [`ca_leaf_path`] instead, with the same rules for the issuers.
fn verify_chain(
    chain: &[Vec<u8>],
    trusted: &[Vec<u8>],
    reject_ca_leaf: bool,
) -> Result<(Vec<u8>, String), ModelError> {
    use x509_cert::der::{Decode, Encode};
    let fail = |m: String| ModelError::CertificateChain { message: m };
    let Some((leaf_der, rest)) = chain.split_first() else {
        return Err(fail("the bundle's certificate chain is empty".into()));
    };
    let leaf = x509_cert::Certificate::from_der(leaf_der)
        .map_err(|e| fail(format!("signing certificate: {e}")))?;
    let tbs = &leaf.tbs_certificate;
    let not_before = tbs.validity.not_before.to_unix_duration();
    // Usage, as model_signing 1.1 checks it: digitalSignature in a key usage extension, or
    // else an extended key usage codeSigning (with or without a key usage extension).
    let mut key_usage = None;
    let mut code_signing = false;
    for ext in tbs.extensions.iter().flatten() {
        let oid = ext.extn_id.to_string();
        if oid == OID_KEY_USAGE {
            let ku = x509_cert::ext::pkix::KeyUsage::from_der(ext.extn_value.as_bytes())
                .map_err(|e| fail(format!("signing certificate key usage: {e}")))?;
            key_usage = Some(ku);
        } else if oid == OID_EXT_KEY_USAGE
            && let Ok(eku) =
                x509_cert::ext::pkix::ExtendedKeyUsage::from_der(ext.extn_value.as_bytes())
            && eku.0.iter().any(|o| o.to_string() == OID_CODE_SIGNING)
        {
            code_signing = true;
        }
    }
    let digital_signature = key_usage.is_some_and(|k| k.digital_signature());
    if !digital_signature && !code_signing {
        return Err(fail(match key_usage {
            None => "the signing certificate has neither a key usage extension nor an extended key usage codeSigning".into(),
            Some(_) => "the signing certificate allows neither digitalSignature nor codeSigning".into(),
        }));
    }
    let leaf_is_ca = is_ca(&leaf);
    if leaf_is_ca && reject_ca_leaf {
        return Err(fail(
            "the signing certificate is a CA certificate (basic constraints CA:TRUE), refused as an end entity (CaUsedAsEndEntity)".into(),
        ));
    }
    // Trust anchors: the self-signed CA certificates given, valid when the leaf was issued.
    let mut roots: Vec<rustls_pki_types::CertificateDer<'_>> = Vec::new();
    let mut given_intermediates = Vec::new();
    let mut unusable_roots = Vec::new();
    for der in trusted {
        let cert = x509_cert::Certificate::from_der(der)
            .map_err(|e| fail(format!("trusted certificate: {e}")))?;
        if is_self_signed(der, &cert) {
            match root_problem(&cert, not_before) {
                None => roots.push(rustls_pki_types::CertificateDer::from(der.as_slice())),
                Some(p) => unusable_roots.push(format!("{}: {p}", cert.tbs_certificate.subject)),
            }
        } else {
            given_intermediates.push(der);
        }
    }
    if roots.is_empty() {
        let why = if unusable_roots.is_empty() {
            "none of the trusted certificates is a self-signed root: an intermediate is not a trust anchor, give the root it chains to".to_owned()
        } else {
            format!("no usable self-signed root ({})", unusable_roots.join("; "))
        };
        return Err(fail(why));
    }
    let trust_anchors = roots
        .iter()
        .map(|c| webpki::anchor_from_trusted_cert(c).map(|a| a.to_owned()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(format!("trusted certificate: {e:?}")))?;
    let inters: Vec<rustls_pki_types::CertificateDer<'_>> = rest
        .iter()
        .chain(given_intermediates.iter().copied())
        .map(|d| rustls_pki_types::CertificateDer::from(d.as_slice()))
        .collect();
    if leaf_is_ca {
        let pool: Vec<&[u8]> = rest
            .iter()
            .chain(given_intermediates.iter().copied())
            .map(Vec::as_slice)
            .collect();
        let anchors: Vec<&[u8]> = roots.iter().map(|r| r.as_ref()).collect();
        ca_leaf_path(leaf_der, &leaf, &pool, &anchors, not_before).map_err(fail)?;
        let spki = tbs
            .subject_public_key_info
            .to_der()
            .map_err(|e| fail(format!("signing certificate key: {e}")))?;
        return Ok((spki, tbs.subject.to_string()));
    }
    let leaf_cert = rustls_pki_types::CertificateDer::from(leaf_der.as_slice());
    let ee = webpki::EndEntityCert::try_from(&leaf_cert)
        .map_err(|e| fail(format!("signing certificate: {e:?}")))?;
    // CA certificates on the path that carry a key usage must allow certificate signing.
    let ca_usage = |path: &webpki::VerifiedPath<'_>| -> Result<(), webpki::Error> {
        for c in path.intermediate_certificates() {
            let ok = x509_cert::Certificate::from_der(c.der().as_ref())
                .map(|c| cert_sign_allowed(&c))
                .unwrap_or(false);
            if !ok {
                return Err(webpki::Error::EndEntityUsedAsCa);
            }
        }
        Ok(())
    };
    ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &trust_anchors,
        &inters,
        rustls_pki_types::UnixTime::since_unix_epoch(not_before),
        AnyEku,
        None,
        Some(&ca_usage),
    )
    .map_err(|e| {
        fail(match e {
            webpki::Error::UnknownIssuer => "the signing certificate does not chain to a self-signed root among the trusted certificates (unable to get issuer certificate)".to_owned(),
            webpki::Error::EndEntityUsedAsCa => "a certificate on the path is not a CA allowed to sign certificates (basic constraints or key usage)".to_owned(),
            other => format!("{other:?}"),
        })
    })?;
    let spki = tbs
        .subject_public_key_info
        .to_der()
        .map_err(|e| fail(format!("signing certificate key: {e}")))?;
    Ok((spki, tbs.subject.to_string()))
}

const OID_BASIC_CONSTRAINTS: &str = "2.5.29.19";
const OID_SUBJECT_ALT_NAME: &str = "2.5.29.17";

/// Longest issuer path [`ca_leaf_path`] walks above the signing certificate.
const MAX_CA_LEAF_PATH: usize = 6;

/// Whether `cert` has basic constraints with `CA:TRUE`.
fn is_ca(cert: &x509_cert::Certificate) -> bool {
    basic_constraints(cert).is_some_and(|bc| bc.ca)
}

fn basic_constraints(
    cert: &x509_cert::Certificate,
) -> Option<x509_cert::ext::pkix::BasicConstraints> {
    use x509_cert::der::Decode;
    cert.tbs_certificate
        .extensions
        .iter()
        .flatten()
        .find(|e| e.extn_id.to_string() == OID_BASIC_CONSTRAINTS)
        .and_then(|e| {
            x509_cert::ext::pkix::BasicConstraints::from_der(e.extn_value.as_bytes()).ok()
        })
}

/// Whether every critical extension of `cert` is one this path check understands (basic
/// constraints, key usage, extended key usage, subject alternative name). Name constraints and
/// policies are not implemented here, so a certificate that makes them critical fails.
fn critical_extensions_understood(cert: &x509_cert::Certificate) -> bool {
    cert.tbs_certificate
        .extensions
        .iter()
        .flatten()
        .filter(|e| e.critical)
        .all(|e| {
            let oid = e.extn_id.to_string();
            [
                OID_BASIC_CONSTRAINTS,
                OID_KEY_USAGE,
                OID_EXT_KEY_USAGE,
                OID_SUBJECT_ALT_NAME,
            ]
            .contains(&oid.as_str())
        })
}

/// Whether `cert` is valid at `at`.
fn valid_at(cert: &x509_cert::Certificate, at: std::time::Duration) -> bool {
    let v = &cert.tbs_certificate.validity;
    v.not_before.to_unix_duration() <= at && at <= v.not_after.to_unix_duration()
}

/// Whether `issuer_der`'s key made `cert_der`'s signature.
fn signed_by(cert: &x509_cert::Certificate, issuer_der: &[u8]) -> bool {
    use x509_cert::der::Encode;
    let (Ok(tbs_der), Some(sig)) = (cert.tbs_certificate.to_der(), cert.signature.as_bytes())
    else {
        return false;
    };
    let c = rustls_pki_types::CertificateDer::from(issuer_der);
    let Ok(issuer) = webpki::EndEntityCert::try_from(&c) else {
        return false;
    };
    webpki::ALL_VERIFICATION_ALGS
        .iter()
        .any(|alg| issuer.verify_signature(*alg, &tbs_der, sig).is_ok())
}

/// The path check for a signing certificate that is a CA, which webpki will not take as an
/// end entity (model_signing's OpenSSL store does). The leaf is trusted when it is one of the
/// `anchors` itself (a self-signed signing certificate given as trusted), or when a chain of
/// issuers from `pool` (the bundle's intermediates and the non-root certificates given) and
/// `anchors` leads to an anchor, each issuer: named by its subject as the issuer of the
/// certificate below it, whose key verifies that certificate's signature, valid at `at`, a CA
/// (basic constraints `CA:TRUE`, present) whose key usage (when present) allows
/// `keyCertSign`, within its path length constraint, with no critical extension this check
/// does not understand. At most [`MAX_CA_LEAF_PATH`] issuers.
fn ca_leaf_path(
    leaf_der: &[u8],
    leaf: &x509_cert::Certificate,
    pool: &[&[u8]],
    anchors: &[&[u8]],
    at: std::time::Duration,
) -> Result<(), String> {
    if !valid_at(leaf, at) {
        return Err("the signing certificate is not valid at its own notBefore".into());
    }
    if !critical_extensions_understood(leaf) {
        return Err(
            "the signing certificate has a critical extension that is not understood".into(),
        );
    }
    if anchors.contains(&leaf_der) {
        return Ok(());
    }
    if walk_issuers(leaf, 0, 0, pool, anchors, at) {
        Ok(())
    } else {
        Err("the signing certificate (a CA certificate) does not chain to a self-signed root among the trusted certificates".into())
    }
}

/// One step of [`ca_leaf_path`]: whether some issuer of `cert` leads to an anchor;
/// `intermediates_below` counts the non-self-issued CA certificates between the issuer looked
/// for and the signing certificate (for path length constraints), `depth` every issuer taken.
fn walk_issuers(
    cert: &x509_cert::Certificate,
    depth: usize,
    intermediates_below: usize,
    pool: &[&[u8]],
    anchors: &[&[u8]],
    at: std::time::Duration,
) -> bool {
    use x509_cert::der::Decode;
    if depth >= MAX_CA_LEAF_PATH {
        return false;
    }
    for &cand_der in anchors.iter().chain(pool) {
        let Ok(cand) = x509_cert::Certificate::from_der(cand_der) else {
            continue;
        };
        if cand.tbs_certificate.subject != cert.tbs_certificate.issuer
            || !signed_by(cert, cand_der)
            || !valid_at(&cand, at)
            || !cert_sign_allowed(&cand)
            || !critical_extensions_understood(&cand)
        {
            continue;
        }
        let Some(bc) = basic_constraints(&cand).filter(|bc| bc.ca) else {
            continue;
        };
        if bc
            .path_len_constraint
            .is_some_and(|n| usize::from(n) < intermediates_below)
        {
            continue;
        }
        if anchors.contains(&cand_der) {
            return true;
        }
        let self_issued = cand.tbs_certificate.subject == cand.tbs_certificate.issuer;
        let below = intermediates_below + usize::from(!self_issued);
        if walk_issuers(&cand, depth + 1, below, pool, anchors, at) {
            return true;
        }
    }
    false
}

/// Whether `cert` is self-signed: issued by its own subject and its signature verifies with
/// its own key.
fn is_self_signed(der: &[u8], cert: &x509_cert::Certificate) -> bool {
    use x509_cert::der::Encode;
    let tbs = &cert.tbs_certificate;
    if tbs.subject != tbs.issuer {
        return false;
    }
    let (Ok(tbs_der), Some(sig)) = (tbs.to_der(), cert.signature.as_bytes()) else {
        return false;
    };
    let c = rustls_pki_types::CertificateDer::from(der);
    let Ok(own) = webpki::EndEntityCert::try_from(&c) else {
        return false;
    };
    webpki::ALL_VERIFICATION_ALGS
        .iter()
        .any(|alg| own.verify_signature(*alg, &tbs_der, sig).is_ok())
}

/// Why a self-signed certificate cannot anchor a chain for a leaf issued at `at`, if it cannot:
/// not valid then, not a CA, or a key usage without `keyCertSign`.
fn root_problem(cert: &x509_cert::Certificate, at: std::time::Duration) -> Option<&'static str> {
    let v = &cert.tbs_certificate.validity;
    if at < v.not_before.to_unix_duration() || at > v.not_after.to_unix_duration() {
        return Some("not valid at the signing certificate's notBefore");
    }
    if !cert_sign_allowed(cert) {
        return Some("not a CA certificate allowed to sign certificates");
    }
    None
}

/// Basic constraints (when present) say CA, and key usage (when present) allows
/// `keyCertSign`.
fn cert_sign_allowed(cert: &x509_cert::Certificate) -> bool {
    use x509_cert::der::Decode;
    for ext in cert.tbs_certificate.extensions.iter().flatten() {
        let oid = ext.extn_id.to_string();
        if oid == OID_BASIC_CONSTRAINTS {
            match x509_cert::ext::pkix::BasicConstraints::from_der(ext.extn_value.as_bytes()) {
                Ok(bc) if bc.ca => {}
                _ => return false,
            }
        } else if oid == OID_KEY_USAGE {
            match x509_cert::ext::pkix::KeyUsage::from_der(ext.extn_value.as_bytes()) {
                Ok(ku) if ku.key_cert_sign() => {}
                _ => return false,
            }
        }
    }
    true
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use provenance_core::sign::{KeyAlgorithm, Signer as _, SigningKey};

    fn repr(b: &[u8]) -> String {
        let mut out = Vec::new();
        python_bytes_repr(b, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn python_bytes_repr_matches_cpython() {
        // Expected values printed by CPython 3.11: str(b).
        assert_eq!(repr(b"{\"a\": \"it's\"}\n"), r#"b'{"a": "it\'s"}\n'"#);
        assert_eq!(repr(b"it's"), r#"b"it's""#);
        assert_eq!(
            repr(b"tab\there\\ \x00\x7f\xff\r"),
            r"b'tab\there\\ \x00\x7f\xff\r'"
        );
        assert_eq!(repr(b""), "b''");
    }

    #[test]
    fn legacy_pae_is_the_v0_2_encoding() {
        assert_eq!(
            legacy_pae_bytes(b"{\n}"),
            b"DSSEV1 28 application/vnd.in-toto+json 3 b'{\\n}'".to_vec()
        );
    }

    /// A bundle as model_signing 0.2.0 wrote it: `keyid: null`, the public key's PEM as
    /// `rawBytes`, a `Digests/v0.1` payload signed over the legacy encoding.
    fn legacy_bundle(key: &SigningKey, signed_payload: &[u8], payload: &[u8]) -> Vec<u8> {
        let sig = key.sign(&legacy_pae_bytes(signed_payload)).unwrap();
        serde_json::to_vec(&serde_json::json!({
            "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "verificationMaterial": {"publicKey": {
                "rawBytes": B64.encode(key.public_key().to_pem()),
                "keyDetails": "PKIX_ECDSA_P256_SHA_256"}},
            "dsseEnvelope": {
                "payload": B64.encode(payload),
                "payloadType": "application/vnd.in-toto+json",
                "signatures": [{"sig": B64.encode(sig), "keyid": null}]
            }
        }))
        .unwrap()
    }

    fn legacy_payload(digest: &str) -> Vec<u8> {
        let statement = serde_json::json!({
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": "weights.bin", "digest": {"sha256": digest},
                         "annotations": {"actual_hash_algorithm": "file-sha256"}}],
            "predicateType": "https://model_signing/Digests/v0.1",
            "predicate": {}
        });
        serde_json::to_vec_pretty(&statement).unwrap()
    }

    #[test]
    fn a_legacy_signature_verifies_unless_refused() {
        let key = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let payload = legacy_payload(&"ab".repeat(32));
        let bundle = legacy_bundle(&key, &payload, &payload);
        let trust = ModelTrust::Key(key.public_key());
        let now = UnixTime::parse_rfc3339("2027-01-15T00:00:00Z").unwrap();
        let signed = verify_signature(&bundle, &trust, now).unwrap();
        assert_eq!(signed.manifest.resources.len(), 1);
        assert_eq!(signed.root_digest, None, "Digests/v0.1 has no root digest");
        let strict = SignatureOptions::strict();
        match verify_signature_with(&bundle, &trust, now, &strict) {
            Err(ModelError::Signature { code, .. }) => assert_eq!(code, "verify.signature.invalid"),
            other => panic!("{other:?}"),
        }
        // The legacy encoding of another payload does not verify this one.
        let other = legacy_payload(&"cd".repeat(32));
        let swapped = legacy_bundle(&key, &other, &payload);
        assert!(verify_signature(&swapped, &trust, now).is_err());
        // Nor the shape those releases never wrote: two signatures, or a log entry.
        let mut two: Value = serde_json::from_slice(&bundle).unwrap();
        let first = two["dsseEnvelope"]["signatures"][0].clone();
        two["dsseEnvelope"]["signatures"]
            .as_array_mut()
            .unwrap()
            .push(first);
        assert!(verify_signature(&serde_json::to_vec(&two).unwrap(), &trust, now).is_err());
        let mut logged: Value = serde_json::from_slice(&bundle).unwrap();
        logged["verificationMaterial"]["tlogEntries"] = serde_json::json!([{"logIndex": "1"}]);
        assert!(verify_signature(&serde_json::to_vec(&logged).unwrap(), &trust, now).is_err());
        // Nor does another key.
        let stranger = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let t2 = ModelTrust::Key(stranger.public_key());
        assert!(verify_signature(&bundle, &t2, now).is_err());
    }
}
