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
    #[arg(long, value_name = "URL", requires = "keyless")]
    pub timestamp_server_url: Option<String>,
    /// The trusted root (`trusted_root.json`) the certificate, SCT, log entry and timestamp
    /// must verify against; default: the embedded Sigstore public-good root.
    #[arg(long, value_name = "FILE", requires = "keyless")]
    pub trust_root: Option<PathBuf>,
    /// Allow plain-HTTP Fulcio, Rekor, timestamp and token URLs (loopback test services).
    #[arg(long, requires = "keyless")]
    pub allow_insecure_http: bool,
    /// Deadline of each exchange with Fulcio, Rekor, the timestamp authority or the token
    /// endpoint, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub timeout_seconds: u64,
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
        config.timeout = Duration::from_secs(args.timeout_seconds.max(1));
        if let Some(url) = &args.timestamp_server_url {
            config = config.with_timestamp_authority(url, TimestampProtocol::Rfc3161);
        }
        let signer = KeylessSigner::new(config).map_err(|e| failure(&e))?;
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

fn config_timeout(args: &KeylessArgs) -> Duration {
    Duration::from_secs(args.timeout_seconds.max(1))
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
        "signed keylessly by {subject} ({issuer}); Rekor log index {}; bundle verified and written to {}",
        signed
            .verified
            .log_index
            .map(|i| i.to_string())
            .unwrap_or_else(|| "-".into()),
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

/// `sign blob FILE --keyless --bundle OUT`: signs the file, writes the verified bundle.
pub async fn sign_blob(
    args: &KeylessArgs,
    file: &Path,
    bundle_out: &Path,
) -> Result<(String, Value), Failure> {
    let blob =
        std::fs::read(file).map_err(|e| Failure::usage(format!("{}: {e}", file.display())))?;
    let k = Keyless::prepare(args).await?;
    let cert = k.certify().await?;
    let signed = k
        .signer
        .sign_blob_with(&cert, &blob)
        .await
        .map_err(|e| failure(&e))?;
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
