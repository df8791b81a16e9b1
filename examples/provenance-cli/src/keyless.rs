//! Keyless (Sigstore) signing for `provenance sign ... --keyless`: cosign's flag names
//! (`--identity-token`, `--fulcio-url`, `--rekor-url`, `--timestamp-server-url`) plus
//! `--trust-root`, over `provenance_oci::keyless`. Every bundle written verified against the
//! trust root first (see docs/signing-keyless.md).

use std::path::{Path, PathBuf};
use std::time::Duration;

use provenance_core::TrustRoot;
use provenance_core::verify::Signer;
use provenance_oci::keyless::{
    IdentityToken, KeylessConfig, KeylessSigner, PUBLIC_GOOD_FULCIO_URL, PUBLIC_GOOD_REKOR_URL,
    SignedBundle, SigningCertificate, TimestampProtocol, TokenSource,
};
use serde_json::{Value, json};

use crate::ui::{Exit, Failure};

/// The keyless signing flags.
#[derive(clap::Args, Debug, Clone)]
pub struct KeylessArgs {
    /// Sign keylessly: an ephemeral key certified by Fulcio for your OIDC identity, the
    /// signature logged in Rekor.
    #[arg(long)]
    pub keyless: bool,
    /// With --key: log the signature in Rekor too (cosign's `--tlog-upload`; cosign's default
    /// is true, provenance's is false: with a key nothing is uploaded unless asked).
    /// `--tlog-upload=true|false` as cosign writes it works too.
    #[arg(
        long,
        num_args = 0..=1,
        require_equals = true,
        default_value = "false",
        default_missing_value = "true",
        action = clap::ArgAction::Set,
        value_name = "BOOL"
    )]
    pub tlog_upload: bool,
    /// The OIDC identity token, or a file holding it. Default: $SIGSTORE_ID_TOKEN, GitHub
    /// Actions' token endpoint, or /var/run/sigstore/cosign/oidc-token, whichever is there.
    #[arg(long, value_name = "TOKEN|FILE", requires = "keyless")]
    pub identity_token: Option<String>,
    /// Fulcio's URL.
    #[arg(long, value_name = "URL", default_value = PUBLIC_GOOD_FULCIO_URL)]
    pub fulcio_url: String,
    /// Rekor's URL.
    #[arg(long, value_name = "URL", default_value = PUBLIC_GOOD_REKOR_URL)]
    pub rekor_url: String,
    /// An RFC 3161 timestamp authority's URL (e.g.
    /// `https://timestamp.sigstore.dev/api/v1/timestamp`); none by default.
    #[arg(long, value_name = "URL")]
    pub timestamp_server_url: Option<String>,
    /// The trusted root (`trusted_root.json`) the certificate, SCT, log entry and timestamp
    /// must verify against; default: the embedded Sigstore public-good root.
    #[arg(long, visible_alias = "trusted-root", value_name = "FILE")]
    pub trust_root: Option<PathBuf>,
    /// Allow plain-HTTP Fulcio, Rekor, timestamp and token URLs (loopback test services).
    #[arg(long)]
    pub allow_insecure_http: bool,
    /// Deadline of each exchange with Fulcio, Rekor, the timestamp authority or the token
    /// endpoint, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub timeout_seconds: u64,
}

impl KeylessArgs {
    /// Whether a transparency log (and Fulcio, when keyless) is used: --keyless or
    /// --tlog-upload. The service flags are refused without either, so that a flag meant to
    /// take effect is never ignored silently.
    pub fn transparency(&self, has_key: bool) -> Result<bool, Failure> {
        if self.keyless && has_key {
            return Err(Failure::usage("--keyless and --key exclude each other"));
        }
        if self.tlog_upload && !self.keyless && !has_key {
            return Err(Failure::usage(
                "--tlog-upload needs --key (keyless always logs)",
            ));
        }
        let on = self.keyless || self.tlog_upload;
        if !on {
            let given = [
                (
                    "--timestamp-server-url",
                    self.timestamp_server_url.is_some(),
                ),
                ("--trust-root", self.trust_root.is_some()),
                ("--allow-insecure-http", self.allow_insecure_http),
            ];
            if let Some((flag, _)) = given.iter().find(|(_, g)| *g) {
                return Err(Failure::usage(format!(
                    "{flag} applies to --keyless or --tlog-upload signing only"
                )));
            }
        }
        Ok(on)
    }
}

/// A keyless failure as a CLI failure: services that could not be reached are exit 3, answers
/// that do not check out (and bundles that do not verify) exit 1, bad inputs exit 2.
pub fn failure(e: &provenance_oci::Error) -> Failure {
    use provenance_oci::Error as E;
    match e {
        E::Network { .. } | E::Timeout { .. } | E::Registry { .. } | E::TooLarge { .. } => {
            Failure::evidence("keyless signing", e)
        }
        E::Config { .. } | E::InsecureNotAllowed { .. } | E::Io { .. } => Failure {
            exit: Exit::Usage,
            code: e.code().to_owned(),
            message: format!("keyless signing: {e}"),
            hint: matches!(e, E::InsecureNotAllowed { .. })
                .then(|| "pass --allow-insecure-http for plain-HTTP test services".to_owned()),
        },
        E::Signing {
            step: provenance_oci::SigningStep::IdentityToken,
            ..
        } => Failure {
            exit: Exit::Usage,
            code: e.code().to_owned(),
            message: format!("keyless signing: {e}"),
            hint: Some(
                "pass --identity-token TOKEN|FILE, set SIGSTORE_ID_TOKEN, or run in a GitHub Actions job with `permissions: id-token: write`".into(),
            ),
        },
        _ => Failure::failed(e.code(), format!("keyless signing: {e}")),
    }
}

/// A prepared keyless signer with its identity token.
pub struct Keyless {
    signer: KeylessSigner,
    token: IdentityToken,
}

impl Keyless {
    /// Reads the trust root and the token (contacting only a token endpoint, when that is
    /// the token's source).
    pub async fn prepare(args: &KeylessArgs) -> Result<Self, Failure> {
        let signer = services(args)?;
        let source = match &args.identity_token {
            Some(t) if Path::new(t).is_file() => TokenSource::File(PathBuf::from(t)),
            Some(t) => TokenSource::Literal(t.clone()),
            None => TokenSource::ambient().ok_or_else(|| {
                failure(
                    &provenance_oci::SigningStep::IdentityToken
                        .fail("no identity token: none given, and none found in the environment"),
                )
            })?,
        };
        let token = source
            .fetch(config_timeout(args), args.allow_insecure_http)
            .await
            .map_err(|e| failure(&e))?;
        Ok(Keyless { signer, token })
    }

    /// Has Fulcio certify an ephemeral key (checked against the trust root).
    pub async fn certify(&self) -> Result<SigningCertificate, Failure> {
        self.signer
            .certify(&self.token)
            .await
            .map_err(|e| failure(&e))
    }
}

/// The configured services (Fulcio, Rekor, timestamp authority) and trust root. Contacts
/// nothing.
fn services(args: &KeylessArgs) -> Result<KeylessSigner, Failure> {
    let root = match &args.trust_root {
        Some(p) => {
            let bytes = std::fs::read(p)
                .map_err(|e| Failure::usage(format!("--trust-root {}: {e}", p.display())))?;
            TrustRoot::from_trusted_root_json(&bytes).map_err(|e| {
                Failure::usage(format!("--trust-root {}: {e} [{}]", p.display(), e.code()))
            })?
        }
        None => {
            KeylessConfig::public_good()
                .map_err(|e| failure(&e))?
                .trust_root
        }
    };
    let mut config = KeylessConfig::new(&args.fulcio_url, &args.rekor_url, root);
    config.allow_http = args.allow_insecure_http;
    config.timeout = config_timeout(args);
    if let Some(url) = &args.timestamp_server_url {
        config = config.with_timestamp_authority(url, TimestampProtocol::Rfc3161);
    }
    KeylessSigner::new(config).map_err(|e| failure(&e))
}

/// Signs with transparency evidence: keylessly (a Fulcio certificate for the identity
/// token), or with a long-lived key whose signatures are logged in Rekor.
pub enum LoggedSigner {
    /// A Fulcio-certified ephemeral key.
    Keyless {
        /// The services.
        signer: KeylessSigner,
        /// The certificate (one per command).
        cert: SigningCertificate,
    },
    /// A key, logged in Rekor.
    Key {
        /// The services.
        signer: KeylessSigner,
        /// The key.
        key: provenance_core::sign::SigningKey,
    },
}

impl LoggedSigner {
    /// Keyless when `key` is `None` (fetches the token and the certificate), else the key
    /// with Rekor (contacts nothing yet).
    pub async fn prepare(
        args: &KeylessArgs,
        key: Option<provenance_core::sign::SigningKey>,
    ) -> Result<Self, Failure> {
        match key {
            Some(key) => Ok(LoggedSigner::Key {
                signer: services(args)?,
                key,
            }),
            None => {
                let k = Keyless::prepare(args).await?;
                let cert = k.certify().await?;
                Ok(LoggedSigner::Keyless {
                    signer: k.signer,
                    cert,
                })
            }
        }
    }

    /// A message signature over `blob`, logged, verified.
    pub async fn sign_blob(&self, blob: &[u8]) -> Result<SignedBundle, Failure> {
        match self {
            LoggedSigner::Keyless { signer, cert } => signer.sign_blob_with(cert, blob).await,
            LoggedSigner::Key { signer, key } => signer.sign_blob_with_key(key, blob).await,
        }
        .map_err(|e| failure(&e))
    }

    /// A DSSE envelope over the in-toto `statement`, logged, verified.
    pub async fn sign_in_toto(&self, statement: &[u8]) -> Result<SignedBundle, Failure> {
        match self {
            LoggedSigner::Keyless { signer, cert } => {
                signer.sign_in_toto_with(cert, statement).await
            }
            LoggedSigner::Key { signer, key } => signer.sign_in_toto_with_key(key, statement).await,
        }
        .map_err(|e| failure(&e))
    }

    /// The certificate chain (leaf first) for cosign's annotations; empty for a key.
    pub fn chain(&self) -> &[Vec<u8>] {
        match self {
            LoggedSigner::Keyless { cert, .. } => cert.chain_der(),
            LoggedSigner::Key { .. } => &[],
        }
    }
}

fn config_timeout(args: &KeylessArgs) -> Duration {
    Duration::from_secs(args.timeout_seconds.max(1))
}

/// Who signed and where it was logged, for a summary line: "keylessly by S (I), Rekor log
/// index N" or "with key KEY-ID, Rekor log index N" (of a bundle that verified).
pub fn describe(signed: &SignedBundle) -> String {
    let who = match &signed.verified.signer {
        Signer::Certificate(id) => format!(
            "keylessly by {} ({})",
            id.subject().unwrap_or_default(),
            id.issuer.as_deref().unwrap_or_default()
        ),
        Signer::Key { key_id, .. } => format!("with key {}", key_id.hex()),
        _ => "with an unrecognised signer".to_owned(),
    };
    let index = signed
        .verified
        .log_index
        .map(|i| i.to_string())
        .unwrap_or_else(|| "-".into());
    format!("{who}, Rekor log index {index}")
}

/// What a keyless signature proved, for `-o json` and the summary line.
pub fn summary(signed: &SignedBundle, bundle_path: &Path) -> (String, Value) {
    let (subject, issuer) = match &signed.verified.signer {
        Signer::Certificate(id) => (
            id.subject().unwrap_or_default().to_owned(),
            id.issuer.clone().unwrap_or_default(),
        ),
        _ => (String::new(), String::new()),
    };
    let line = format!(
        "signed {}; bundle verified and written to {}",
        describe(signed),
        bundle_path.display()
    );
    let json = json!({
        "bundle": bundle_path.display().to_string(),
        "signer": { "subject": subject, "issuer": issuer },
        "logIndex": signed.verified.log_index,
        "integratedTime": signed.verified.integrated_time.map(|t| t.0),
        "verifiedTimes": signed.verified.verified_times.iter().map(|t| t.0).collect::<Vec<_>>(),
    });
    (line, json)
}

/// `sign blob FILE --keyless --bundle OUT` (or `--key K --tlog-upload`): signs the file,
/// logs the signature, writes the verified bundle.
pub async fn sign_blob(
    args: &KeylessArgs,
    key: Option<provenance_core::sign::SigningKey>,
    file: &Path,
    bundle_out: &Path,
) -> Result<(String, Value), Failure> {
    let blob =
        std::fs::read(file).map_err(|e| Failure::usage(format!("{}: {e}", file.display())))?;
    let signed = LoggedSigner::prepare(args, key)
        .await?
        .sign_blob(&blob)
        .await?;
    write_bundle(bundle_out, &signed)?;
    Ok(summary(&signed, bundle_out))
}

/// Signs the in-toto `statement` keylessly, writes the verified bundle.
pub async fn sign_statement(
    args: &KeylessArgs,
    statement: &[u8],
    bundle_out: &Path,
) -> Result<(String, Value), Failure> {
    let k = Keyless::prepare(args).await?;
    let cert = k.certify().await?;
    let signed = k
        .signer
        .sign_in_toto_with(&cert, statement)
        .await
        .map_err(|e| failure(&e))?;
    write_bundle(bundle_out, &signed)?;
    Ok(summary(&signed, bundle_out))
}

/// Writes the bundle.
pub fn write_bundle(path: &Path, signed: &SignedBundle) -> Result<(), Failure> {
    provenance_oci::model::write_signature(path, &signed.json)
        .map_err(|e| Failure::usage(format!("writing {}: {e}", path.display())))
}
