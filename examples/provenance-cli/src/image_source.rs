//! Flags shared by the commands that read one image and its evidence (`verify image`,
//! `inspect`, `export`): where evidence comes from (a registry, or an OCI layout with
//! `--registry-layout`) and whom to trust (`--key`, `--certificate-identity[-regexp]`,
//! `--certificate-oidc-issuer[-regexp]`, `--trust-root`), spelled as cosign spells them.

use std::path::{Path, PathBuf};

use provenance_core::verify::{Expectation, IdentityExpectation, PUBLIC_GOOD_TRUSTED_ROOT};
use provenance_core::{ImageReference, PublicKey, TrustRoot};
use provenance_oci::{LayoutSource, RegistryClient, RegistryConfig};

use crate::ui::Failure;

/// The name of the trust root an OCI layout may ship next to its blobs.
pub const LAYOUT_TRUST_ROOT: &str = "trusted_root.json";

/// Where images and their evidence come from.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct SourceArgs {
    /// Read the image and its evidence from this OCI image layout folder (offline; written by
    /// `provenance export`, skopeo, oras or `cosign save`) instead of its registry.
    #[arg(long, value_name = "DIR")]
    pub registry_layout: Option<PathBuf>,
    /// Allow plain HTTP for this registry (as written in image references). Repeatable.
    #[arg(
        long = "allow-http",
        value_name = "REGISTRY",
        conflicts_with = "registry_layout"
    )]
    pub allow_http: Vec<String>,
    /// Contact `HOST[:PORT]` instead of REGISTRY (an in-house or test copy). Repeatable.
    #[arg(
        long = "registry-endpoint",
        value_name = "REGISTRY=HOST",
        conflicts_with = "registry_layout"
    )]
    pub registry_endpoint: Vec<String>,
    /// Trust the PEM CA certificates in FILE for REGISTRY's TLS (a private CA), besides the
    /// system's roots; no other registry trusts them. Repeatable.
    #[arg(
        long = "registry-ca",
        value_name = "REGISTRY=FILE",
        conflicts_with = "registry_layout"
    )]
    pub registry_ca: Vec<String>,
    /// Look for signatures and attestations in this repository instead of the image's own
    /// (cosign's `COSIGN_REPOSITORY`).
    #[arg(long, value_name = "REPOSITORY")]
    pub signature_repository: Option<String>,
}

/// Whom to trust.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct TrustArgs {
    /// Verify with this PEM public key (cosign `--key`).
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with_all = [
            "certificate_identity",
            "certificate_identity_regexp",
            "certificate_oidc_issuer",
            "certificate_oidc_issuer_regexp"
        ]
    )]
    pub key: Option<PathBuf>,
    /// Keyless: the signer identity (certificate SAN: email, URI), exactly.
    #[arg(
        long,
        value_name = "IDENTITY",
        conflicts_with = "certificate_identity_regexp"
    )]
    pub certificate_identity: Option<String>,
    /// Keyless: a regular expression the signer identity must match (unanchored, as cosign's;
    /// anchor it with `^...$`).
    #[arg(long, value_name = "REGEXP")]
    pub certificate_identity_regexp: Option<String>,
    /// Keyless: the OIDC issuer of the signer's certificate, exactly.
    #[arg(
        long,
        value_name = "ISSUER",
        conflicts_with = "certificate_oidc_issuer_regexp"
    )]
    pub certificate_oidc_issuer: Option<String>,
    /// Keyless: a regular expression the OIDC issuer must match (unanchored).
    #[arg(long, value_name = "REGEXP")]
    pub certificate_oidc_issuer_regexp: Option<String>,
    /// Sigstore `trusted_root.json` (Fulcio CAs, Rekor and CT log keys, TSAs). Default: the
    /// embedded Sigstore public-good root. A `trusted_root.json` inside `--registry-layout`
    /// is never used implicitly: whoever wrote the layout would choose whom to trust.
    #[arg(long, visible_alias = "trusted-root", value_name = "FILE")]
    pub trust_root: Option<PathBuf>,
    /// DANGEROUS: trust the `trusted_root.json` shipped inside `--registry-layout`. Whoever
    /// can write the layout then chooses the CAs and logs that signatures are checked
    /// against; only for layouts from a trusted hand (prefer `--trust-root FILE`).
    #[arg(long, requires = "registry_layout", conflicts_with = "trust_root")]
    pub trust_root_from_layout: bool,
    /// DANGEROUS: with --key, accept signatures that have no transparency-log entry and no
    /// timestamp (`cosign sign --tlog-upload=false`). `--insecure-ignore-tlog=true` as cosign
    /// writes it works too.
    #[arg(
        long,
        requires = "key",
        num_args = 0..=1,
        require_equals = true,
        default_value = "false",
        default_missing_value = "true",
        action = clap::ArgAction::Set,
        value_name = "BOOL"
    )]
    pub insecure_ignore_tlog: bool,
}

impl TrustArgs {
    /// Whether any signer was named.
    pub fn given(&self) -> bool {
        self.key.is_some()
            || self.certificate_identity.is_some()
            || self.certificate_identity_regexp.is_some()
            || self.certificate_oidc_issuer.is_some()
            || self.certificate_oidc_issuer_regexp.is_some()
    }

    /// The expectation the flags describe; `None` when no signer was named.
    pub fn expectation(&self) -> Result<Option<Expectation>, Failure> {
        if let Some(k) = &self.key {
            let bytes = std::fs::read(k)
                .map_err(|e| Failure::usage(format!("--key {}: {e}", k.display())))?;
            let pem = String::from_utf8(bytes).map_err(|_| {
                Failure::usage(format!("--key {}: not a PEM text file", k.display()))
            })?;
            let key = PublicKey::from_pem(&pem).map_err(|e| {
                Failure::usage(format!("--key {}: {e}", k.display())).hint(
                    "give the public key (`cosign public-key`, `-----BEGIN PUBLIC KEY-----`), not the private key",
                )
            })?;
            return Ok(Some(Expectation::Key {
                key,
                allow_no_transparency: self.insecure_ignore_tlog,
            }));
        }
        if !self.given() {
            return Ok(None);
        }
        for (flag, re) in [
            (
                "--certificate-identity-regexp",
                &self.certificate_identity_regexp,
            ),
            (
                "--certificate-oidc-issuer-regexp",
                &self.certificate_oidc_issuer_regexp,
            ),
        ] {
            if let Some(r) = re
                && let Err(e) = regex::Regex::new(r)
            {
                return Err(Failure::usage(format!("{flag}: {e}")));
            }
        }
        let subject_given =
            self.certificate_identity.is_some() || self.certificate_identity_regexp.is_some();
        let issuer_given =
            self.certificate_oidc_issuer.is_some() || self.certificate_oidc_issuer_regexp.is_some();
        if !subject_given || !issuer_given {
            return Err(Failure::usage(
                "keyless verification needs both a signer identity (--certificate-identity or --certificate-identity-regexp) and an issuer (--certificate-oidc-issuer or --certificate-oidc-issuer-regexp)",
            ).hint("name both, e.g. --certificate-identity ml-team@example.com --certificate-oidc-issuer https://accounts.google.com; or verify with --key"));
        }
        Ok(Some(Expectation::Keyless(IdentityExpectation {
            subject_exact: self.certificate_identity.clone(),
            subject_regexp: self.certificate_identity_regexp.clone(),
            issuer: self.certificate_oidc_issuer.clone(),
            issuer_regexp: self.certificate_oidc_issuer_regexp.clone(),
            ..IdentityExpectation::default()
        })))
    }

    /// The trust root: `--trust-root`, else (only with `--trust-root-from-layout`) the
    /// layout's own `trusted_root.json`, else the embedded public-good root. Returns it and
    /// where it came from.
    pub fn trust_root(&self, layout: Option<&Path>) -> Result<(TrustRoot, String), Failure> {
        let from_layout = if self.trust_root_from_layout {
            layout
        } else {
            None
        };
        load_trust_root(self.trust_root.as_deref(), from_layout)
    }
}

/// The trust root from `--trust-root`, else `layout/trusted_root.json` when `layout` is given
/// (the caller passes it only when the user asked for the layout's root explicitly; a note on
/// stderr says so), else the embedded Sigstore public-good root.
pub fn load_trust_root(
    flag: Option<&Path>,
    layout: Option<&Path>,
) -> Result<(TrustRoot, String), Failure> {
    let (bytes, what) = match (flag, layout) {
        (Some(f), _) => (
            std::fs::read(f)
                .map_err(|e| Failure::usage(format!("--trust-root {}: {e}", f.display())))?,
            f.display().to_string(),
        ),
        (None, Some(dir)) => {
            let f = dir.join(LAYOUT_TRUST_ROOT);
            eprintln!(
                "warning: --trust-root-from-layout: verifying with the trust root shipped in the layout ({}); whoever wrote the layout chose it",
                f.display()
            );
            (
                read_trust_root_file(&f)
                    .map_err(|e| Failure::usage(format!("{}: {e}", f.display())))?,
                f.display().to_string(),
            )
        }
        _ => (
            PUBLIC_GOOD_TRUSTED_ROOT.to_vec(),
            "the embedded Sigstore public-good trust root".to_owned(),
        ),
    };
    let root = TrustRoot::from_trusted_root_json(&bytes).map_err(|e| {
        Failure::usage(format!("{what}: {e} [{}]", e.code()))
            .hint("--trust-root takes a Sigstore trusted_root.json (`cosign trusted-root create`, or the TUF repository's)")
    })?;
    Ok((root, what))
}

/// Largest `trusted_root.json` read from a layout.
const MAX_LAYOUT_TRUST_ROOT_BYTES: u64 = 4 << 20;

/// Reads a layout's `trusted_root.json`: a regular file (not a link, device or FIFO), at most
/// 4 MiB.
fn read_trust_root_file(f: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let meta = std::fs::symlink_metadata(f)?;
    if !meta.file_type().is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut out = Vec::new();
    std::fs::File::open(f)?
        .take(MAX_LAYOUT_TRUST_ROOT_BYTES + 1)
        .read_to_end(&mut out)?;
    if out.len() as u64 > MAX_LAYOUT_TRUST_ROOT_BYTES {
        return Err(std::io::Error::other("larger than 4 MiB"));
    }
    Ok(out)
}

/// Parses an image reference given on the command line.
pub fn parse_image(input: &str) -> Result<ImageReference, Failure> {
    ImageReference::parse(input).map_err(|e| {
        Failure::usage(format!(
            "{input}: not an image reference: {e} [{}]",
            e.code()
        ))
        .hint("write it as in a Pod spec: registry.example.com/team/image:tag or ...@sha256:<hex>")
    })
}

/// A registry client configured from the flags (credentials from the Docker config).
pub fn registry_config(args: &SourceArgs) -> Result<RegistryConfig, Failure> {
    crate::apply::registry_config_from(&args.allow_http, &args.registry_endpoint, &args.registry_ca)
        .map_err(Failure::usage)
}

/// Where images and their evidence are read from: an OCI layout or the registries.
pub type Source = provenance_oci::AnySource;

/// The source the flags name: the layout when `--registry-layout` is given, else the
/// registries.
pub fn open_source(args: &SourceArgs) -> Result<Source, Failure> {
    match &args.registry_layout {
        Some(dir) => LayoutSource::open(dir).map(Source::Layout).map_err(|e| {
            Failure::usage(format!("--registry-layout {}: {e} [{}]", dir.display(), e.code()))
                .hint("the folder must be an OCI image layout (oci-layout, index.json, blobs/); `provenance export IMAGE --to DIR` writes one")
        }),
        None => RegistryClient::new(registry_config(args)?)
            .map(Source::from)
            .map_err(|e| Failure::usage(format!("registry client: {e} [{}]", e.code()))),
    }
}

/// `registry` or `layout DIR`, for messages.
pub fn describe_source(source: &Source) -> String {
    match source {
        Source::Layout(l) => format!("layout {}", l.root().display()),
        Source::Registry(_) => "registry".to_owned(),
    }
}

/// `--signature-repository`, parsed.
pub fn signature_repository(args: &SourceArgs) -> Result<Option<ImageReference>, Failure> {
    args.signature_repository
        .as_deref()
        .map(|r| {
            ImageReference::from_name(r).map_err(|e| {
                Failure::usage(format!(
                    "--signature-repository {r}: {e} (give a repository without tag or digest)"
                ))
            })
        })
        .transpose()
}
