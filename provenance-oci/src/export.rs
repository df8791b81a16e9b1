//! Export: snapshot an image with its signatures, attestations, SBOMs and referrers from any
//! [`EvidenceSource`] (a registry, or another layout) into an OCI image layout, for
//! air-gapped verification with [`crate::LayoutSource`].

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use provenance_core::{Digest, ImageReference};

use crate::cosign::{AttachedKind, attached_reference, attached_tag};
use crate::error::Error;
use crate::layout::LayoutWriter;
use crate::source::{EvidenceSource, layers_of, repo_of};
use crate::types::{ParsedManifest, descriptor_digest};

/// What to export.
#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    /// Also copy image layers (possibly many GB, streamed to disk). Without this the layout
    /// holds manifests, configs and all evidence, which is all verification needs.
    pub include_layers: bool,
    /// Alternate signature repository to read cosign tags and referrers from.
    pub signature_repository: Option<ImageReference>,
    /// Name to list the image under in `index.json` (default: the reference's tag).
    pub name: Option<String>,
    /// Deadline for the whole export, every manifest and blob included (default
    /// [`DEFAULT_EXPORT_DEADLINE`]); past it the export ends with [`Error::Timeout`].
    pub deadline: Option<Duration>,
}

/// The deadline of an export when [`ExportOptions::deadline`] is not set: 6 hours (each blob
/// copy also has its own, `Timeouts::export_blob`).
pub const DEFAULT_EXPORT_DEADLINE: Duration = Duration::from_secs(6 * 3600);

/// Most distinct manifests one export copies (the image, its platforms, evidence manifests and
/// referrers); a manifest named again is copied once.
pub const MAX_EXPORT_MANIFESTS: usize = 16_384;

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportReport {
    /// The image digest (index digest for a multi-arch image).
    pub digest: Digest,
    /// Manifests written (image, platform manifests, evidence manifests, referrers).
    pub manifests: usize,
    /// Blobs written (configs, layers, evidence layers), manifests excluded.
    pub blobs: usize,
    /// Cosign tags found (`.sig`, `.att`, `.sbom`).
    pub cosign_tags: Vec<String>,
    /// Referrers copied.
    pub referrers: usize,
}

struct Copier<'a, S> {
    src: &'a S,
    out: LayoutWriter,
    include_layers: bool,
    manifests: usize,
    blobs: usize,
    /// Manifests already copied, with what they were copied for (`evidence` copies layers).
    done: HashSet<(Digest, bool)>,
}

impl<S: EvidenceSource> Copier<'_, S> {
    async fn blob(
        &mut self,
        repo: &ImageReference,
        digest: &Digest,
        evidence: bool,
    ) -> Result<(), Error> {
        if self.out.has_blob(digest) {
            return Ok(());
        }
        let limits = self.src.limits();
        if evidence {
            let bytes = self.src.blob(repo, digest, limits.max_blob_bytes).await?;
            self.out.put_blob(digest, &bytes)?;
        } else {
            let path = self.out.blob_path(digest);
            self.src
                .blob_to_file(repo, digest, limits.max_export_blob_bytes, &path)
                .await?;
        }
        self.blobs += 1;
        Ok(())
    }

    /// Copies the manifest `digest` and what it points to; `evidence` manifests always get
    /// their layers. Returns the manifest.
    async fn tree(
        &mut self,
        repo: &ImageReference,
        digest: &Digest,
        evidence: bool,
        depth: u8,
    ) -> Result<crate::Manifest, Error> {
        match self.visit(repo, digest, evidence, depth).await? {
            Some(m) => Ok(m),
            // Copied before: only its bytes are wanted (to list it in index.json).
            None => self.src.manifest_at(repo, digest).await,
        }
    }

    /// Copies the manifest `digest` and what it points to, unless it was copied before (an
    /// index naming one platform many times, a referrer listed twice): then `None`, and
    /// nothing is fetched or walked again.
    async fn visit(
        &mut self,
        repo: &ImageReference,
        digest: &Digest,
        evidence: bool,
        depth: u8,
    ) -> Result<Option<crate::Manifest>, Error> {
        if depth > 2 {
            return Err(Error::malformed(
                format!("manifest {digest}"),
                "indexes nested more than two deep",
            ));
        }
        if self.done.contains(&(digest.clone(), true))
            || self.done.contains(&(digest.clone(), evidence))
        {
            return Ok(None);
        }
        if self.done.len() >= MAX_EXPORT_MANIFESTS {
            return Err(Error::TooLarge {
                what: "manifests of one export".into(),
                limit: MAX_EXPORT_MANIFESTS as u64,
            });
        }
        self.done.insert((digest.clone(), evidence));
        let m = self.src.manifest_at(repo, digest).await?;
        match m.parse()? {
            ParsedManifest::Index(idx) => {
                let limit = self.src.limits().max_referrers;
                if idx.manifests().len() > limit {
                    return Err(Error::TooLarge {
                        what: format!("entries of index {digest}"),
                        limit: limit as u64,
                    });
                }
                for d in idx.manifests() {
                    let child = descriptor_digest(d)?;
                    Box::pin(self.visit(repo, &child, evidence, depth + 1)).await?;
                }
            }
            ParsedManifest::Image(im) => {
                let config = descriptor_digest(im.config())?;
                self.blob(repo, &config, true).await?;
                if evidence || self.include_layers {
                    for l in layers_of(&im, &self.src.limits())? {
                        self.blob(repo, &l.digest, evidence).await?;
                    }
                }
            }
        }
        self.out.put_blob(&m.digest, &m.bytes)?;
        self.manifests += 1;
        Ok(Some(m))
    }
}

/// Exports `image` from `src` into the layout folder `dest` (created, or added to), with
/// every cosign signature, attestation and SBOM and every OCI 1.1 referrer of its digest.
pub async fn export<S: EvidenceSource>(
    src: &S,
    image: &ImageReference,
    dest: &Path,
    options: &ExportOptions,
) -> Result<ExportReport, Error> {
    let deadline = options.deadline.unwrap_or(DEFAULT_EXPORT_DEADLINE);
    tokio::time::timeout(deadline, export_inner(src, image, dest, options))
        .await
        .map_err(|_| Error::Timeout {
            registry: image.domain().to_owned(),
            operation: format!("export of {image}"),
            after_ms: deadline.as_millis() as u64,
        })?
}

async fn export_inner<S: EvidenceSource>(
    src: &S,
    image: &ImageReference,
    dest: &Path,
    options: &ExportOptions,
) -> Result<ExportReport, Error> {
    let digest = src.resolve(image).await?;
    let repo = repo_of(image);
    let mut c = Copier {
        src,
        out: LayoutWriter::create(dest)?,
        include_layers: options.include_layers,
        manifests: 0,
        blobs: 0,
        done: HashSet::new(),
    };
    let top = c.tree(&repo, &digest, false, 0).await?;
    let name = options
        .name
        .clone()
        .or_else(|| image.tag().map(str::to_owned));
    c.out.add_entry(&top, name.as_deref(), None)?;

    let sig_repo = options.signature_repository.as_ref();
    let mut cosign_tags = Vec::new();
    for kind in [
        AttachedKind::Signature,
        AttachedKind::Attestation,
        AttachedKind::Sbom,
    ] {
        let tagged = attached_reference(image, &digest, kind, sig_repo);
        let m = match src.manifest(&tagged).await {
            Ok(m) => m,
            Err(Error::NotFound { .. }) => continue,
            Err(e) => return Err(e),
        };
        let m = c.tree(&repo_of(&tagged), &m.digest, true, 1).await?;
        let tag = attached_tag(&digest, kind);
        c.out.add_entry(&m, Some(&tag), None)?;
        cosign_tags.push(tag);
    }

    let ref_repo = repo_of(sig_repo.unwrap_or(image));
    let refs = src.referrers(&ref_repo, &digest, None).await?;
    let mut listed = HashSet::new();
    for r in &refs.items {
        if !listed.insert(r.digest.clone()) {
            continue;
        }
        let m = c.tree(&ref_repo, &r.digest, true, 1).await?;
        c.out.add_entry(&m, None, r.artifact_type.as_deref())?;
    }
    let referrers = refs.items.len();
    let Copier {
        out,
        manifests,
        blobs,
        ..
    } = c;
    out.finish()?;
    Ok(ExportReport {
        digest,
        manifests,
        blobs,
        cosign_tags,
        referrers,
    })
}
