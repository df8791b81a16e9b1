//! Models stored as OCI artifacts, verified against an OpenSSF model-signing signature
//! attached to them, without downloading the model.
//!
//! The artifact is an OCI image manifest with one uncompressed layer per file, each layer
//! annotated with the file's POSIX relative path (`org.opencontainers.image.title`, as ORAS
//! writes it, or `org.cncf.model.filepath`, as CNCF ModelPack does). The model-signing bundle
//! (`model_signing sign ...` output, a Sigstore bundle v0.3) is attached as an OCI 1.1
//! referrer of the model manifest (artifact type
//! `application/vnd.dev.sigstore.bundle.v0.3+json`), found through the referrers API or the
//! referrers tag schema, in the model's repository or an alternate one.
//!
//! [`verify_oci_model`] resolves the reference once, reads the manifest (pinned by its
//! digest), reads the layers' paths and digests, verifies the bundle ([`ModelTrust`]: key,
//! certificate chain or keyless) and requires the signed resources (path → SHA-256) to equal
//! the layers (path → layer digest) exactly: every layer must be a signed file (git paths and
//! the signed `ignore_paths` included) unless the caller's options leave it out. No layer blob is fetched: a layer digest *is* the
//! SHA-256 of the file's bytes, and the manifest digest pins every layer digest. See
//! [`provenance_attest::model_artifact`] for the argument and its limits (archive or
//! compressed layers, `shards` or non-SHA-256 signatures need the bytes and are refused with
//! `model.needs_blobs`), and `docs/model-verification.md`.

use provenance_attest::model_artifact::{
    self as ma, ArtifactFile, ArtifactLayer, Ignored, LayerIssue,
};
use provenance_core::{Digest, ImageReference, UnixTime};

use super::error::{ManifestDiff, ModelError};
use super::signature::{ModelTrust, SignatureOptions, SignedManifest, verify_signature_with};
use crate::error::Error;
use crate::source::EvidenceSource;
use crate::types::{AttestationLayer, Manifest};

/// Options of [`verify_oci_model`]. The default leaves no layer out.
#[derive(Debug, Clone, Default)]
pub struct OciModelOptions {
    /// Paths whose layers may be left out of the signature (relative to the model root).
    /// Empty by default: every layer must be a signed file. The signed manifest's own
    /// `ignore_paths` are not applied to layers (see [`Ignored::for_layers`]).
    pub ignore_paths: Vec<String>,
    /// Let `.git`, `.gitattributes`, `.github`, `.gitignore` layers be unsigned. Off by
    /// default (unlike a folder, where model-signing ignores them): an artifact's layers are
    /// all delivered to whoever mounts it.
    pub ignore_git_paths: bool,
    /// Look for the signature in this repository instead of the model's.
    pub repository: Option<ImageReference>,
    /// Stricter signature checks than model_signing's (off by default).
    pub signature: SignatureOptions,
}

/// What a successful verification of a model artifact established.
#[derive(Debug, Clone, PartialEq)]
pub struct OciModelReport {
    /// The model manifest digest the reference resolved to (what a Pod should pin).
    pub manifest_digest: Digest,
    /// The signed model name (informative).
    pub model_name: String,
    /// The signed subject digest (SHA-256 over the resource digests).
    pub root_digest: Option<String>,
    /// Who signed.
    pub signer: String,
    /// Files (layers) verified.
    pub files: usize,
    /// Bytes covered (sum of the layer sizes).
    pub bytes: u64,
    /// Digest of the referrer manifest that carried the verified bundle.
    pub signature_manifest: Digest,
}

/// The files of a model artifact: each layer's path and digest, from the manifest alone.
/// An index, a layer without a path, an unsafe or duplicate path, an archive or compressed
/// layer or a non-SHA-256 layer digest is an error.
pub fn artifact_files(manifest: &Manifest) -> Result<Vec<ArtifactFile>, Error> {
    let m = manifest.image()?;
    let layers: Vec<ArtifactLayer> = m
        .layers()
        .iter()
        .map(|l| ArtifactLayer {
            media_type: l.media_type().to_string(),
            digest: l.digest().to_string(),
            size: l.size(),
            annotations: crate::types::annotations_of(l),
        })
        .collect();
    ma::artifact_files(&layers).map_err(|e| Error::Model(issue(e)))
}

fn issue(e: LayerIssue) -> ModelError {
    match e {
        LayerIssue::NeedsBlobs { message } => ModelError::NeedsBlobs { message },
        LayerIssue::Malformed { layer, message } => ModelError::OciLayer { layer, message },
        other => ModelError::OciLayer {
            layer: String::new(),
            message: other.to_string(),
        },
    }
}

/// Compares a verified signed manifest with the artifact's files (sync, no I/O).
pub fn check_files(
    signed: &SignedManifest,
    files: &[ArtifactFile],
    opts: &OciModelOptions,
) -> Result<(), ModelError> {
    let ignored = Ignored::for_layers(&opts.ignore_paths, opts.ignore_git_paths);
    let d = ma::compare(&signed.manifest, files, &ignored).map_err(issue)?;
    if !d.is_empty() {
        return Err(ModelError::Mismatch {
            diff: ManifestDiff {
                changed: d.changed,
                missing: d.missing,
                extra: d.extra,
            },
        });
    }
    Ok(())
}

/// True when an attestation may be a model-signing bundle (its predicate-type claim, if any,
/// is a model-signing type; the claim only selects, the verified payload decides).
fn may_be_model_signature(a: &AttestationLayer) -> bool {
    a.is_bundle()
        && a.predicate_type.as_deref().is_none_or(|t| {
            t == provenance_attest::modelsigning::MODEL_SIGNING_V1
                || t == provenance_attest::modelsigning::MODEL_SIGNING_DIGESTS_V01
        })
}

/// How informative a failure is: a bundle that verified but does not match beats one that
/// did not verify.
fn rank(e: &ModelError) -> u8 {
    match e {
        ModelError::Mismatch { .. } | ModelError::NeedsBlobs { .. } => 3,
        ModelError::OciLayer { .. } | ModelError::MalformedManifest { .. } => 2,
        _ => 1,
    }
}

/// Verifies the model artifact `image` in `source` (a registry or an OCI layout) against the
/// model-signing bundles attached to it as OCI 1.1 referrers: succeeds when one bundle
/// verifies under `trust` at `now` and its signed resources equal the artifact's layers
/// exactly. No layer blob is downloaded.
///
/// Errors: [`Error::Model`] with [`ModelError::NoSignature`] (no bundle attached),
/// [`ModelError::Mismatch`] (changed, missing, extra files: the most informative failure
/// among the attached bundles is reported), [`ModelError::NeedsBlobs`],
/// [`ModelError::OciLayer`], the signature errors of [`verify_signature_with`]; other variants of
/// [`Error`] when the manifest or referrers cannot be fetched.
pub async fn verify_oci_model<S: EvidenceSource + ?Sized>(
    source: &S,
    image: &ImageReference,
    trust: &ModelTrust,
    opts: &OciModelOptions,
    now: UnixTime,
) -> Result<OciModelReport, Error> {
    let digest = source.resolve(image).await?;
    let manifest = source.manifest_at(image, &digest).await?;
    let files = artifact_files(&manifest)?;
    let attestations = source
        .attestations(image, &digest, opts.repository.as_ref())
        .await?;
    let mut best: Option<ModelError> = None;
    for a in attestations.iter().filter(|a| may_be_model_signature(a)) {
        let result = verify_signature_with(&a.envelope, trust, now, &opts.signature)
            .and_then(|signed| check_files(&signed, &files, opts).map(|()| signed));
        match result {
            Ok(signed) => {
                return Ok(OciModelReport {
                    manifest_digest: digest,
                    model_name: signed.model_name,
                    root_digest: signed.root_digest.map(|d| d.to_string()),
                    signer: signed.signer,
                    files: files.len(),
                    bytes: files.iter().map(|f| f.size).sum(),
                    signature_manifest: a.manifest_digest.clone(),
                });
            }
            Err(e) => {
                if best.as_ref().is_none_or(|b| rank(&e) > rank(b)) {
                    best = Some(e);
                }
            }
        }
    }
    Err(Error::Model(best.unwrap_or_else(|| {
        ModelError::NoSignature {
            reference: format!("{}@{digest}", image.name()),
        }
    })))
}
