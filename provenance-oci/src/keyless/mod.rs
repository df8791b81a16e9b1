//! Keyless (Sigstore) signing: an OIDC identity token in, a verified Sigstore bundle v0.3 out.
//!
//! 1. **Identity.** An OIDC token from a [`TokenSource`] (a file, an environment variable,
//!    GitHub Actions' token endpoint, a Kubernetes projected service-account token). Its claims
//!    are read, not trusted: Fulcio verifies the token and decides the identity.
//! 2. **Certificate.** An ephemeral ECDSA P-256 key is generated in memory; Fulcio
//!    (`POST /api/v2/signingCert`) is asked to certify it, with the token's subject signed as
//!    proof of possession. Before the certificate is used, its chain must lead to a certificate
//!    authority of the trust root (valid now, code signing), it must certify exactly our key,
//!    and its embedded SCT must verify against a CT log key of the trust root.
//! 3. **Signature.** The blob (or the DSSE pre-authentication encoding of an in-toto
//!    statement) is signed with the ephemeral key; optionally an RFC 3161 timestamp over the
//!    signature is fetched from a timestamp authority.
//! 4. **Transparency.** The signature is logged in Rekor v1 (`hashedrekord` 0.0.1 for blobs,
//!    `dsse` 0.0.1 for envelopes).
//! 5. **Check.** The bundle is assembled and verified with [`provenance_core::verify::Verifier`]
//!    over the same trust root (certificate chain, SCT, SET, inclusion proof and checkpoint, log
//!    entry against the signature, timestamp, identity). A bundle that does not verify is never
//!    returned: [`Error::SignedBundleUnverified`] names the check that failed.
//!
//! Nothing is contacted before a signing call, and only the services configured in
//! [`KeylessConfig`]; every exchange has a deadline. See `docs/signing-keyless.md`.
//!
//! ```no_run
//! use provenance_oci::keyless::{KeylessConfig, KeylessSigner, TokenSource};
//! # async fn run() -> Result<(), provenance_oci::Error> {
//! let signer = KeylessSigner::new(KeylessConfig::public_good()?)?;
//! let source = TokenSource::ambient().ok_or_else(|| provenance_oci::Error::Config {
//!     message: "no identity token in this environment".into(),
//! })?;
//! let token = source.fetch(std::time::Duration::from_secs(30), false).await?;
//! let signed = signer.sign_blob(&token, b"model weights").await?;
//! std::fs::write("weights.sigstore.json", &signed.json).ok();
//! # Ok(()) }
//! ```

mod fulcio;
mod http;
mod services;
mod token;

use std::time::Duration;

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use provenance_core::verify::{
    Artifact, CertificateIdentity, Expectation, IdentityExpectation, PUBLIC_GOOD_TRUSTED_ROOT,
    SignatureMaterial, Verified, Verifier,
};
use provenance_core::{Digest, PublicKey, TrustRoot, UnixTime};
use serde_json::{Value, json};

pub use fulcio::SIGNING_CERT_PATH;
pub use http::MAX_ANSWER_BYTES;
pub use services::{ENTRIES_PATH, TimestampProtocol};
pub use token::{
    GITHUB_ACTIONS_TOKEN_ENV, GITHUB_ACTIONS_URL_ENV, IdentityToken, KUBERNETES_TOKEN_PATH,
    MAX_TOKEN_BYTES, SIGSTORE_AUDIENCE, SIGSTORE_ID_TOKEN_ENV, TokenClaims, TokenSource,
};

use crate::error::{Error, SigningStep};
use http::Endpoint;

/// Reads Fulcio's answer to `POST /api/v2/signingCert`: the certificate chain (DER, leaf
/// first) of a `signedCertificateEmbeddedSct`. Nothing is checked but the shape
/// ([`SigningStep::FulcioResponse`]); [`KeylessSigner::certify`] checks the certificate too.
pub fn parse_fulcio_answer(answer: &[u8]) -> Result<Vec<Vec<u8>>, Error> {
    fulcio::parse_answer(answer)
}

/// Checks a Fulcio certificate chain (DER, leaf first) as [`KeylessSigner::certify`] does
/// before using it: the leaf certifies `spki_der`, chains to a certificate authority of `root`
/// valid at `now`, is valid at `now` for code signing, and carries one SCT that verifies against
/// a CT log of `root`.
pub fn check_fulcio_certificate(
    chain: &[Vec<u8>],
    spki_der: &[u8],
    root: &TrustRoot,
    now: UnixTime,
) -> Result<(), Error> {
    fulcio::check_certificate(chain, spki_der, root, now)
}

/// Turns Rekor v1's answer to `POST /api/v1/log/entries` (`{uuid: entry}`) into a bundle's
/// `verificationMaterial.tlogEntries[]` item. Only the shape is checked
/// ([`SigningStep::RekorResponse`]); whether the entry is true is for bundle verification.
pub fn rekor_answer_to_tlog_entry(answer: &[u8]) -> Result<Value, Error> {
    services::to_bundle_entry(answer)
}

/// Sigstore's public-good Fulcio.
pub const PUBLIC_GOOD_FULCIO_URL: &str = "https://fulcio.sigstore.dev";
/// Sigstore's public-good Rekor (v1 API).
pub const PUBLIC_GOOD_REKOR_URL: &str = "https://rekor.sigstore.dev";
/// Sigstore's public-good timestamp authority (RFC 3161).
pub const PUBLIC_GOOD_TSA_URL: &str = "https://timestamp.sigstore.dev/api/v1/timestamp";
/// The bundle media type written.
pub const BUNDLE_V03_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// The DSSE payload type of in-toto statements.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// Largest in-toto statement signed.
pub const MAX_STATEMENT_BYTES: usize = 16 << 20;

/// Where and how to sign keylessly. Building one contacts nothing.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct KeylessConfig {
    /// Fulcio's base URL (`https://fulcio.sigstore.dev`).
    pub fulcio_url: String,
    /// Rekor's base URL (`https://rekor.sigstore.dev`).
    pub rekor_url: String,
    /// A timestamp authority's full URL, when an RFC 3161 timestamp is wanted.
    pub timestamp_url: Option<String>,
    /// How to ask the timestamp authority.
    pub timestamp_protocol: TimestampProtocol,
    /// What the certificate, SCT, log entry and timestamp must verify against.
    pub trust_root: TrustRoot,
    /// The deadline of each exchange (token endpoint, Fulcio, Rekor, timestamp authority),
    /// connection included.
    pub timeout: Duration,
    /// Permit plain `http://` service URLs (loopback test services). Off by default.
    pub allow_http: bool,
    /// The identity the certificate must carry, checked by the final verification. `None`:
    /// the identity Fulcio wrote into the certificate (subject and issuer), whatever it is.
    pub expected_identity: Option<IdentityExpectation>,
    /// How far the services' clocks may run ahead of ours: the bundle is verified at
    /// now + this (a log entry integrated "in the future" by a few seconds is not an error).
    pub clock_skew: Duration,
}

impl KeylessConfig {
    /// Fulcio at `fulcio_url`, Rekor at `rekor_url`, checked against `trust_root`; no
    /// timestamp authority, 30 s per exchange, HTTPS only, 60 s of clock skew.
    pub fn new(fulcio_url: &str, rekor_url: &str, trust_root: TrustRoot) -> Self {
        KeylessConfig {
            fulcio_url: fulcio_url.to_owned(),
            rekor_url: rekor_url.to_owned(),
            timestamp_url: None,
            timestamp_protocol: TimestampProtocol::default(),
            trust_root,
            timeout: Duration::from_secs(30),
            allow_http: false,
            expected_identity: None,
            clock_skew: Duration::from_secs(60),
        }
    }

    /// Sigstore's public-good Fulcio and Rekor with the embedded public-good trusted root
    /// (a snapshot: pass a fresh one for production use).
    pub fn public_good() -> Result<Self, Error> {
        let root = TrustRoot::from_trusted_root_json(PUBLIC_GOOD_TRUSTED_ROOT).map_err(|e| {
            Error::Config {
                message: format!("embedded public-good trusted root: {e}"),
            }
        })?;
        Ok(Self::new(
            PUBLIC_GOOD_FULCIO_URL,
            PUBLIC_GOOD_REKOR_URL,
            root,
        ))
    }

    /// Adds a timestamp authority at `url` (its full URL).
    pub fn with_timestamp_authority(mut self, url: &str, protocol: TimestampProtocol) -> Self {
        self.timestamp_url = Some(url.to_owned());
        self.timestamp_protocol = protocol;
        self
    }
}

/// A signing certificate from Fulcio and the ephemeral key it certifies (in memory only,
/// dropped with this value). Checked against the trust root when it was obtained.
///
/// It is a [`provenance_core::sign::Signer`] too (material: the leaf certificate), so the
/// producers that take `&dyn Signer` can sign with it; what they produce carries no
/// transparency evidence unless it also goes through Rekor.
pub struct SigningCertificate {
    key: EcdsaKeyPair,
    public_key: PublicKey,
    chain: Vec<Vec<u8>>,
    identity: CertificateIdentity,
}

impl std::fmt::Debug for SigningCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningCertificate")
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

impl SigningCertificate {
    /// The leaf certificate, DER.
    pub fn certificate_der(&self) -> &[u8] {
        self.chain.first().map(Vec::as_slice).unwrap_or_default()
    }

    /// The chain Fulcio returned, DER, leaf first.
    pub fn chain_der(&self) -> &[Vec<u8>] {
        &self.chain
    }

    /// The identity Fulcio wrote into the certificate.
    pub fn identity(&self) -> &CertificateIdentity {
        &self.identity
    }

    fn pem(&self) -> String {
        pem_lf(&pem::Pem::new("CERTIFICATE", self.certificate_der()))
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        self.key
            .sign(&SystemRandom::new(), message)
            .map(|s| s.as_ref().to_vec())
            .map_err(|_| SigningStep::Key.fail("signing with the ephemeral key failed"))
    }
}

impl provenance_core::sign::Signer for SigningCertificate {
    fn public_key(&self) -> PublicKey {
        self.public_key.clone()
    }

    fn material(&self) -> provenance_core::sign::SignerMaterial {
        provenance_core::sign::SignerMaterial::CertificateChain(vec![
            self.certificate_der().to_vec(),
        ])
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, provenance_core::Error> {
        SigningCertificate::sign(self, message).map_err(|e| provenance_core::Error::Signing {
            reason: e.to_string(),
        })
    }
}

/// A Sigstore bundle v0.3 that verified against the trust root before it was returned.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SignedBundle {
    /// The bundle, JSON (`application/vnd.dev.sigstore.bundle.v0.3+json`).
    pub json: Vec<u8>,
    /// What its verification proved (signer, integrated time, log index, timestamps).
    pub verified: Verified,
}

/// Signs keylessly against the services of a [`KeylessConfig`].
#[derive(Debug)]
pub struct KeylessSigner {
    config: KeylessConfig,
    verifier: Verifier,
    fulcio: Endpoint,
    rekor: Endpoint,
    tsa: Option<Endpoint>,
}

/// PEM with `\n` line endings, 64 columns: the form Rekor clients write into log entries (and
/// compare against when they check an entry against its bundle).
fn pem_lf(p: &pem::Pem) -> String {
    pem::encode_config(
        p,
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

fn now_plus(skew: Duration) -> UnixTime {
    let now = crate::model::system_now();
    UnixTime(
        now.0
            .saturating_add(i64::try_from(skew.as_secs()).unwrap_or(0)),
    )
}

impl KeylessSigner {
    /// Prepares a signer: checks the URLs and the trust root. Contacts nothing.
    pub fn new(config: KeylessConfig) -> Result<Self, Error> {
        let verifier = Verifier::new(&config.trust_root).map_err(|e| Error::Config {
            message: format!("trust root: {e}"),
        })?;
        let fulcio = Endpoint::new(
            "Fulcio",
            &config.fulcio_url,
            config.timeout,
            config.allow_http,
        )?;
        let rekor = Endpoint::new(
            "Rekor",
            &config.rekor_url,
            config.timeout,
            config.allow_http,
        )?;
        let tsa = config
            .timestamp_url
            .as_deref()
            .map(|u| Endpoint::new("timestamp authority", u, config.timeout, config.allow_http))
            .transpose()?;
        Ok(KeylessSigner {
            config,
            verifier,
            fulcio,
            rekor,
            tsa,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &KeylessConfig {
        &self.config
    }

    /// Generates an ephemeral key and has Fulcio certify it for `token`'s identity; the answer
    /// is checked (key, chain, validity, code signing, SCT) before it is returned. One
    /// certificate may sign several artifacts while it is valid (Fulcio's are valid 10 minutes).
    pub async fn certify(&self, token: &IdentityToken) -> Result<SigningCertificate, Error> {
        let now = crate::model::system_now();
        token.check_not_expired(now.0)?;
        let challenge = token.challenge()?;
        let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING)
            .map_err(|_| SigningStep::Key.fail("generating the ephemeral P-256 key failed"))?;
        let spki = key
            .public_key()
            .as_der()
            .map_err(|_| SigningStep::Key.fail("encoding the ephemeral public key failed"))?;
        let spki = spki.as_ref().to_vec();
        let public_key = PublicKey::from_spki_der(&spki)
            .map_err(|e| SigningStep::Key.fail(format!("the ephemeral public key: {e}")))?;
        let pop = key
            .sign(&SystemRandom::new(), challenge.as_bytes())
            .map_err(|_| SigningStep::Key.fail("signing the proof of possession failed"))?;
        let key_pem = pem_lf(&pem::Pem::new("PUBLIC KEY", spki.clone()));
        let chain =
            fulcio::request_certificate(&self.fulcio, token.as_str(), &key_pem, pop.as_ref())
                .await?;
        fulcio::check_certificate(
            &chain,
            &spki,
            &self.config.trust_root,
            crate::model::system_now(),
        )?;
        let identity = chain
            .first()
            .map(|d| CertificateIdentity::from_der(d))
            .transpose()
            .map_err(|e| SigningStep::FulcioResponse.fail(e.to_string()))?
            .unwrap_or_default();
        Ok(SigningCertificate {
            key,
            public_key,
            chain,
            identity,
        })
    }

    /// Certifies a fresh key for `token` and signs `blob` with it (see
    /// [`KeylessSigner::sign_blob_with`]).
    pub async fn sign_blob(
        &self,
        token: &IdentityToken,
        blob: &[u8],
    ) -> Result<SignedBundle, Error> {
        let cert = self.certify(token).await?;
        self.sign_blob_with(&cert, blob).await
    }

    /// Signs `blob` (a message signature), timestamps the signature if a timestamp authority is
    /// configured, logs it in Rekor as a `hashedrekord` entry, and returns the bundle once it
    /// verified.
    pub async fn sign_blob_with(
        &self,
        cert: &SigningCertificate,
        blob: &[u8],
    ) -> Result<SignedBundle, Error> {
        self.blob(Who::Certificate(cert), blob).await
    }

    /// Signs `blob` with a long-lived `key` (no Fulcio), logs the signature in Rekor as a
    /// `hashedrekord` entry whose verifier is the public key, and returns the bundle (public-key
    /// hint, log entry) once it verified against that key and the log of the trust root:
    /// `cosign sign-blob --key` with the transparency-log upload.
    pub async fn sign_blob_with_key(
        &self,
        key: &dyn provenance_core::sign::Signer,
        blob: &[u8],
    ) -> Result<SignedBundle, Error> {
        self.blob(Who::Key(key), blob).await
    }

    async fn blob(&self, who: Who<'_>, blob: &[u8]) -> Result<SignedBundle, Error> {
        let digest = Digest::sha256_of(blob);
        let signature = who.sign(blob)?;
        let timestamp = self.timestamp(&signature).await?;
        let verifier_pem = who.verifier_pem();
        let entry = services::log_entry(
            &self.rekor,
            &services::Proposed::HashedRekord {
                digest: &digest,
                signature: &signature,
                cert_pem: &verifier_pem,
            },
        )
        .await?;
        let content = json!({
            "messageSignature": {
                "messageDigest": { "algorithm": "SHA2_256", "digest": STANDARD.encode(digest.as_bytes()) },
                "signature": STANDARD.encode(&signature),
            }
        });
        self.finish(who, content, entry, timestamp, Artifact::Bytes(blob))
    }

    /// Certifies a fresh key for `token` and signs the in-toto `statement` (see
    /// [`KeylessSigner::sign_in_toto_with`]).
    pub async fn sign_in_toto(
        &self,
        token: &IdentityToken,
        statement: &[u8],
    ) -> Result<SignedBundle, Error> {
        let cert = self.certify(token).await?;
        self.sign_in_toto_with(&cert, statement).await
    }

    /// Signs the in-toto `statement` (JSON) as a DSSE envelope, timestamps the signature if a
    /// timestamp authority is configured, logs the envelope in Rekor as a `dsse` entry, and
    /// returns the bundle once it verified against the statement's first SHA-256 subject.
    pub async fn sign_in_toto_with(
        &self,
        cert: &SigningCertificate,
        statement: &[u8],
    ) -> Result<SignedBundle, Error> {
        self.in_toto(Who::Certificate(cert), statement).await
    }

    /// Signs the in-toto `statement` with a long-lived `key` (no Fulcio) as a DSSE envelope,
    /// logs it in Rekor as a `dsse` entry whose verifier is the public key, and returns the
    /// bundle once it verified: `cosign attest --key` with the transparency-log upload.
    pub async fn sign_in_toto_with_key(
        &self,
        key: &dyn provenance_core::sign::Signer,
        statement: &[u8],
    ) -> Result<SignedBundle, Error> {
        self.in_toto(Who::Key(key), statement).await
    }

    async fn in_toto(&self, who: Who<'_>, statement: &[u8]) -> Result<SignedBundle, Error> {
        let subject = in_toto_subject(statement)?;
        let pae = provenance_core::verify::pae(IN_TOTO_PAYLOAD_TYPE, statement);
        let signature = who.sign(&pae)?;
        let timestamp = self.timestamp(&signature).await?;
        let envelope = json!({
            "payload": STANDARD.encode(statement),
            "payloadType": IN_TOTO_PAYLOAD_TYPE,
            "signatures": [{ "sig": STANDARD.encode(&signature) }],
        });
        let envelope_json = envelope.to_string();
        let verifier_pem = who.verifier_pem();
        let entry = services::log_entry(
            &self.rekor,
            &services::Proposed::Dsse {
                envelope_json: &envelope_json,
                cert_pem: &verifier_pem,
            },
        )
        .await?;
        let content = json!({ "dsseEnvelope": envelope });
        self.finish(who, content, entry, timestamp, Artifact::Digest(&subject))
    }

    async fn timestamp(&self, signature: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        match &self.tsa {
            Some(ep) => Ok(Some(
                services::timestamp(ep, self.config.timestamp_protocol, signature).await?,
            )),
            None => Ok(None),
        }
    }

    /// Assembles the bundle and verifies it; only a verified bundle leaves.
    fn finish(
        &self,
        who: Who<'_>,
        content: Value,
        entry: Value,
        timestamp: Option<Vec<u8>>,
        artifact: Artifact<'_>,
    ) -> Result<SignedBundle, Error> {
        let mut vm = match who {
            Who::Certificate(cert) => json!({
                "certificate": { "rawBytes": STANDARD.encode(cert.certificate_der()) },
            }),
            Who::Key(key) => json!({
                "publicKey": { "hint": provenance_core::sign::bundle::key_hint(&key.public_key()) },
            }),
        };
        vm["tlogEntries"] = json!([entry]);
        if let Some(ts) = timestamp {
            vm["timestampVerificationData"] =
                json!({ "rfc3161Timestamps": [{ "signedTimestamp": STANDARD.encode(ts) }] });
        }
        let mut bundle = json!({
            "mediaType": BUNDLE_V03_MEDIA_TYPE,
            "verificationMaterial": vm,
        });
        if let (Some(b), Some(c)) = (bundle.as_object_mut(), content.as_object()) {
            for (k, v) in c {
                b.insert(k.clone(), v.clone());
            }
        }
        let json = serde_json::to_vec_pretty(&bundle).unwrap_or_default();
        let expectation = match who {
            Who::Key(key) => Expectation::Key {
                key: key.public_key(),
                allow_no_transparency: false,
            },
            Who::Certificate(cert) => Expectation::Keyless(match &self.config.expected_identity {
                Some(e) => e.clone(),
                None => {
                    let subject = cert.identity.subject().ok_or_else(|| {
                        SigningStep::FulcioResponse.fail("the certificate names no subject")
                    })?;
                    let issuer = cert.identity.issuer.as_deref().ok_or_else(|| {
                        SigningStep::FulcioResponse.fail("the certificate names no OIDC issuer")
                    })?;
                    IdentityExpectation::exact(subject, issuer)
                }
            }),
        };
        let verified = self
            .verifier
            .verify(
                artifact,
                &SignatureMaterial::Bundle(json.clone()),
                &expectation,
                now_plus(self.config.clock_skew),
            )
            .map_err(|e| match e {
                provenance_core::Error::Verification { check, detail } => {
                    Error::SignedBundleUnverified { check, detail }
                }
                other => Error::SignedBundleUnverified {
                    check: provenance_core::Check::MaterialMalformed,
                    detail: other.to_string(),
                },
            })?;
        Ok(SignedBundle { json, verified })
    }
}

/// Who signs: a Fulcio-certified ephemeral key, or a long-lived key.
#[derive(Clone, Copy)]
enum Who<'a> {
    Certificate(&'a SigningCertificate),
    Key(&'a dyn provenance_core::sign::Signer),
}

impl Who<'_> {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        match self {
            Who::Certificate(c) => c.sign(message),
            Who::Key(k) => k
                .sign(message)
                .map_err(|e| SigningStep::Key.fail(format!("signing with the key failed: {e}"))),
        }
    }

    /// The PEM Rekor records as the entry's verifier: the certificate, or the public key.
    fn verifier_pem(&self) -> String {
        match self {
            Who::Certificate(c) => c.pem(),
            Who::Key(k) => pem_lf(&pem::Pem::new(
                "PUBLIC KEY",
                k.public_key().spki_der().to_vec(),
            )),
        }
    }
}

/// The first SHA-256 subject digest of an in-toto statement (what the bundle is verified
/// against).
fn in_toto_subject(statement: &[u8]) -> Result<Digest, Error> {
    let bad = |m: String| SigningStep::Input.fail(m);
    if statement.len() > MAX_STATEMENT_BYTES {
        return Err(bad(format!(
            "the statement is larger than {MAX_STATEMENT_BYTES} bytes"
        )));
    }
    let v: Value = serde_json::from_slice(statement)
        .map_err(|e| bad(format!("the statement is not JSON: {e}")))?;
    let t = v.get("_type").and_then(Value::as_str).unwrap_or_default();
    if !t.starts_with("https://in-toto.io/Statement/") {
        return Err(bad(format!("not an in-toto statement (_type {t:?})")));
    }
    v.get("subject")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| s.pointer("/digest/sha256").and_then(Value::as_str))
        .find_map(|h| Digest::parse(&format!("sha256:{}", h.to_ascii_lowercase())).ok())
        .ok_or_else(|| bad("the statement has no subject with a SHA-256 digest".into()))
}
