//! Shared by the signing commands: loading a private key the way cosign and model_signing
//! do (PKCS#8 / SEC1 PEM, or cosign's encrypted `cosign.key` with the password from
//! `PROVENANCE_PASSWORD` / `COSIGN_PASSWORD` or the terminal), and writing to a registry or an OCI layout.

use std::path::Path;

use provenance_core::ImageReference;
use provenance_core::sign::SigningKey;
use provenance_oci::{LayoutPublisher, Publisher, RegistryClient};

use crate::image_source::{SourceArgs, registry_config};
use crate::ui::Failure;

/// Reads a private key file. An encrypted cosign key is decrypted with the first password
/// found: `--password` (`password`; visible in the process list, so a warning is printed),
/// `PROVENANCE_PASSWORD`, `COSIGN_PASSWORD` (as cosign reads it; an empty password is allowed,
/// as cosign allows it), else one asked for on the terminal.
pub fn load_key(path: &Path, password: Option<&str>) -> Result<SigningKey, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::usage(format!("{}: {e}", path.display())))?;
    if password.is_some() {
        eprintln!(
            "warning: --password is visible to other users in the process list; set PROVENANCE_PASSWORD or COSIGN_PASSWORD instead, or leave both unset to be asked"
        );
    }
    let encrypted =
        pem_labels(&text).any(|l| provenance_core::sign::cosign_key::PEM_LABELS.contains(&l));
    let password = match password
        .map(str::to_owned)
        .or_else(crate::secret::password_from_env)
    {
        Some(p) => Some(p),
        None if encrypted && crate::secret::can_prompt() => Some(crate::secret::prompt_password(
            &format!("Enter password for private key {}: ", path.display()),
            false,
        )?),
        None => None,
    };
    SigningKey::from_pem(&text, password.as_deref().map(str::as_bytes)).map_err(|e| {
        let f = Failure::usage(format!("{}: {e} [{}]", path.display(), e.code()));
        match e.code() {
            "core.key.decryption" => f.hint(
                "set PROVENANCE_PASSWORD or COSIGN_PASSWORD to the key's password (as for cosign), or run in a terminal to be asked",
            ),
            _ => f.hint(
                "give a private key: cosign.key (`provenance generate-key-pair`), or a PKCS#8 / SEC1 PEM (ECDSA P-256, P-384 or Ed25519)",
            ),
        }
    })
}

/// The labels of the `-----BEGIN <label>-----` lines of a PEM text.
fn pem_labels(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("-----BEGIN ")?.strip_suffix("-----"))
}

/// The signer flags of `sign image` and `attest`: whether a transparency log is used
/// (`--keyless` / `--tlog-upload`, see [`crate::keyless::KeylessArgs::transparency`]) and the
/// key, loaded, when one is given.
pub fn signer_flags(
    keyless: &crate::keyless::KeylessArgs,
    key: Option<&Path>,
    password: Option<&str>,
) -> Result<(bool, Option<SigningKey>), Failure> {
    let logged = keyless.transparency(key.is_some())?;
    let key = key.map(|k| load_key(k, password)).transpose()?;
    Ok((logged, key))
}

/// Where signatures are written: an OCI layout (`--registry-layout`) or the registries.
pub enum Target {
    /// An OCI layout folder.
    Layout(LayoutPublisher),
    /// Registries.
    Registry(Box<RegistryClient>),
}

impl Target {
    /// The target the flags name.
    pub fn open(args: &SourceArgs) -> Result<Target, Failure> {
        match &args.registry_layout {
            Some(dir) => LayoutPublisher::open(dir).map(Target::Layout).map_err(|e| {
                Failure::usage(format!(
                    "--registry-layout {}: {e} [{}]",
                    dir.display(),
                    e.code()
                ))
            }),
            None => RegistryClient::new(registry_config(args)?)
                .map(|c| Target::Registry(Box::new(c)))
                .map_err(|e| Failure::usage(format!("registry client: {e} [{}]", e.code()))),
        }
    }
}

/// Runs `f` with the target as a [`Publisher`].
macro_rules! with_publisher {
    ($target:expr, |$p:ident| $body:expr) => {
        match $target {
            $crate::signing::Target::Layout(l) => {
                let $p = l;
                $body
            }
            $crate::signing::Target::Registry(r) => {
                let $p = r.as_ref();
                $body
            }
        }
    };
}
pub(crate) use with_publisher;

/// Resolves `image` to its digest on `p` (a digest in the reference is used as is).
pub async fn resolve<P: Publisher>(
    p: &P,
    image: &ImageReference,
) -> Result<provenance_core::Digest, Failure> {
    p.resolve(image)
        .await
        .map_err(|e| Failure::evidence(&format!("resolving {image}"), &e))
}
