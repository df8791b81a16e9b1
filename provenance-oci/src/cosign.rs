//! cosign's tag scheme: where signatures, attestations and SBOMs of an image live.

use provenance_core::{Digest, ImageReference};

/// The kind of artifact cosign attaches to an image with a tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttachedKind {
    /// Signatures (`.sig`).
    Signature,
    /// Attestations (`.att`).
    Attestation,
    /// SBOMs (`.sbom`).
    Sbom,
}

impl AttachedKind {
    /// The tag suffix cosign uses.
    pub fn suffix(self) -> &'static str {
        match self {
            AttachedKind::Signature => "sig",
            AttachedKind::Attestation => "att",
            AttachedKind::Sbom => "sbom",
        }
    }
}

/// The tag cosign uses for `kind` attached to `digest`: `sha256-<hex>.sig`.
///
/// ```
/// use provenance_core::Digest;
/// use provenance_oci::cosign::{AttachedKind, attached_tag};
/// let d = Digest::sha256_of(b"x");
/// assert_eq!(attached_tag(&d, AttachedKind::Signature), format!("sha256-{}.sig", d.hex()));
/// ```
pub fn attached_tag(digest: &Digest, kind: AttachedKind) -> String {
    format!("{}-{}.{}", digest.algorithm(), digest.hex(), kind.suffix())
}

/// The reference of the artifact of `kind` attached to `image` at `digest`, in `repository`
/// when an alternate signature repository is configured (cosign's `COSIGN_REPOSITORY`,
/// Kyverno's `repository`), otherwise in the image's own repository.
pub fn attached_reference(
    image: &ImageReference,
    digest: &Digest,
    kind: AttachedKind,
    repository: Option<&ImageReference>,
) -> ImageReference {
    let base = repository.unwrap_or(image);
    let name = ImageReference::from_name(&base.name()).unwrap_or_else(|_| base.clone());
    let tag = attached_tag(digest, kind);
    name.with_tag(&tag).unwrap_or(name)
}
