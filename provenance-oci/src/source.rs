//! [`EvidenceSource`]: the one API over registries and OCI layouts, and the discovery logic
//! (cosign tag scheme, OCI 1.1 referrers with tag-schema fallback, Sigstore bundle
//! referrers) written once on top of its primitives.

use std::future::Future;
use std::path::Path;

use oci_spec::image::{ImageManifest, Platform};
use provenance_core::{Digest, ImageReference};

use crate::cosign::{AttachedKind, attached_reference};
use crate::error::Error;
use crate::types::{
    ANNOTATION_PREDICATE_TYPE, AttestationLayer, Limits, Manifest, ParsedManifest, Referrer,
    Referrers, ReferrersOrigin, SIGSTORE_BUNDLE_PREFIX, SIGSTORE_BUNDLE_V03, SbomLayer,
    SignatureLayer, annotations_of, descriptor_digest, referrer_from_descriptor,
};

/// A place evidence comes from: a registry ([`crate::RegistryClient`]) or an OCI image layout
/// folder ([`crate::LayoutSource`]). Everything returned is digest-checked and size-bounded
/// but **unverified**: signatures are verified by `provenance_core::verify`.
///
/// Implementors provide the primitives ([`resolve`](Self::resolve),
/// [`manifest`](Self::manifest), [`blob`](Self::blob), [`blob_to_file`](Self::blob_to_file),
/// [`referrers_api`](Self::referrers_api), [`limits`](Self::limits)); discovery
/// ([`signatures`](Self::signatures), [`attestations`](Self::attestations),
/// [`sboms`](Self::sboms), [`referrers`](Self::referrers)) is provided on top, identically for
/// every source.
pub trait EvidenceSource: Send + Sync {
    /// Resolves `image` to a manifest digest. A reference that carries a digest resolves to
    /// that digest (a layout checks the blob exists; a registry sends no request, and later
    /// fetches fail if it is absent); a tag is looked up once. For a
    /// multi-arch image this is the **index** digest, which is what cosign signs.
    fn resolve(&self, image: &ImageReference)
    -> impl Future<Output = Result<Digest, Error>> + Send;

    /// Fetches the manifest `image` names: by digest when it has one (bytes checked against
    /// it), else by tag (the returned [`Manifest::digest`] is computed from the bytes).
    /// [`Error::NotFound`] when absent.
    fn manifest(
        &self,
        image: &ImageReference,
    ) -> impl Future<Output = Result<Manifest, Error>> + Send;

    /// Fetches blob `digest` from `image`'s repository into memory, at most `limit` bytes,
    /// every byte checked against `digest`.
    fn blob(
        &self,
        image: &ImageReference,
        digest: &Digest,
        limit: u64,
    ) -> impl Future<Output = Result<Vec<u8>, Error>> + Send;

    /// Streams blob `digest` to the file `dest` (written to a temporary sibling and renamed
    /// only once the digest matched), at most `limit` bytes.
    fn blob_to_file(
        &self,
        image: &ImageReference,
        digest: &Digest,
        limit: u64,
        dest: &Path,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// The source's native referrers listing for `subject`: `Ok(None)` when the source has
    /// none (a registry answering 404 to the OCI 1.1 referrers API), in which case
    /// [`referrers`](Self::referrers) falls back to the referrers tag schema.
    fn referrers_api(
        &self,
        image: &ImageReference,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> impl Future<Output = Result<Option<Referrers>, Error>> + Send;

    /// The limits this source applies.
    fn limits(&self) -> Limits;

    /// Fetches the manifest with `digest` in `image`'s repository.
    fn manifest_at(
        &self,
        image: &ImageReference,
        digest: &Digest,
    ) -> impl Future<Output = Result<Manifest, Error>> + Send {
        let pinned = repo_of(image).pinned(digest);
        async move {
            let m = self.manifest(&pinned).await?;
            if &m.digest != digest {
                return Err(Error::DigestMismatch {
                    reference: pinned.to_string(),
                    expected: digest.to_string(),
                    actual: m.digest.to_string(),
                });
            }
            Ok(m)
        }
    }

    /// Referrers of `subject` (OCI 1.1): the source's referrers API, else the referrers tag
    /// schema (`<alg>-<hex>` tag holding an index), filtered by `artifact_type` if given.
    /// No referrers is an empty list, not an error.
    fn referrers(
        &self,
        image: &ImageReference,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> impl Future<Output = Result<Referrers, Error>> + Send {
        async move {
            if let Some(r) = self.referrers_api(image, subject, artifact_type).await? {
                return Ok(filter(r, artifact_type));
            }
            referrers_by_tag(self, image, subject, artifact_type).await
        }
    }

    /// Signatures of the image `digest`: the layers of cosign's `<alg>-<hex>.sig` manifest,
    /// then Sigstore bundle referrers whose bundle holds a message signature. Looked up in
    /// `repository` when given (cosign's `COSIGN_REPOSITORY`, Kyverno's `repository`), else in
    /// `image`'s repository. Absent evidence is an empty list.
    fn signatures(
        &self,
        image: &ImageReference,
        digest: &Digest,
        repository: Option<&ImageReference>,
    ) -> impl Future<Output = Result<Vec<SignatureLayer>, Error>> + Send {
        async move {
            let mut out = Vec::new();
            let mut budget = Budget::new(&self.limits(), digest);
            let (attached, listed) = attached_and_listed(
                self,
                image,
                digest,
                AttachedKind::Signature,
                repository,
                &mut budget,
            )
            .await?;
            for (m, layer, bytes) in attached {
                out.push(SignatureLayer {
                    media_type: layer.media_type,
                    digest: layer.digest,
                    payload: bytes,
                    annotations: layer.annotations,
                    manifest_digest: m,
                });
            }
            for b in bundle_referrers(self, image, digest, repository, listed, &mut budget).await? {
                // cosign 3 signs an image with a DSSE bundle carrying its signing Statement:
                // offered as a signature too (the claim only routes; the verifier accepts it
                // as a signature only if the verified Statement is one about this digest).
                if b.kind == BundleKind::MessageSignature || b.kind == BundleKind::DsseSignature {
                    out.push(SignatureLayer {
                        media_type: b.media_type,
                        digest: b.digest,
                        payload: b.bytes,
                        annotations: b.annotations,
                        manifest_digest: b.manifest_digest,
                    });
                }
            }
            Ok(out)
        }
    }

    /// Attestations of the image `digest`: the DSSE layers of cosign's `<alg>-<hex>.att`
    /// manifest, then Sigstore bundle referrers whose bundle holds a DSSE envelope.
    fn attestations(
        &self,
        image: &ImageReference,
        digest: &Digest,
        repository: Option<&ImageReference>,
    ) -> impl Future<Output = Result<Vec<AttestationLayer>, Error>> + Send {
        async move {
            let mut out = Vec::new();
            let mut budget = Budget::new(&self.limits(), digest);
            let (attached, listed) = attached_and_listed(
                self,
                image,
                digest,
                AttachedKind::Attestation,
                repository,
                &mut budget,
            )
            .await?;
            for (m, layer, bytes) in attached {
                let predicate_type = layer.annotations.get(ANNOTATION_PREDICATE_TYPE).cloned();
                out.push(AttestationLayer {
                    media_type: layer.media_type,
                    digest: layer.digest,
                    envelope: bytes,
                    annotations: layer.annotations,
                    predicate_type,
                    manifest_digest: m,
                });
            }
            for b in bundle_referrers(self, image, digest, repository, listed, &mut budget).await? {
                // cosign 3's signing Statement is a signature (listed by `signatures`), not
                // an attestation.
                if b.kind == BundleKind::Dsse {
                    let predicate_type = b
                        .annotations
                        .get("dev.sigstore.bundle.predicateType")
                        .cloned();
                    out.push(AttestationLayer {
                        media_type: b.media_type,
                        digest: b.digest,
                        envelope: b.bytes,
                        annotations: b.annotations,
                        predicate_type,
                        manifest_digest: b.manifest_digest,
                    });
                }
            }
            Ok(out)
        }
    }

    /// SBOMs attached with cosign's `<alg>-<hex>.sbom` tag.
    fn sboms(
        &self,
        image: &ImageReference,
        digest: &Digest,
        repository: Option<&ImageReference>,
    ) -> impl Future<Output = Result<Vec<SbomLayer>, Error>> + Send {
        async move {
            let mut budget = Budget::new(&self.limits(), digest);
            Ok(attached_layers(
                self,
                image,
                digest,
                AttachedKind::Sbom,
                repository,
                &mut budget,
            )
            .await?
            .into_iter()
            .map(|(_, layer, bytes)| SbomLayer {
                media_type: layer.media_type,
                digest: layer.digest,
                bytes,
            })
            .collect())
        }
    }

    /// The platform manifest of a multi-arch index for `platform` (os, architecture and, when
    /// given, variant must match; the first match in index order wins). The index digest stays
    /// what signatures name; this is for reading the platform image.
    fn platform_manifest(
        &self,
        image: &ImageReference,
        index_digest: &Digest,
        platform: &Platform,
    ) -> impl Future<Output = Result<Manifest, Error>> + Send {
        async move {
            let index = self.manifest_at(image, index_digest).await?;
            let ParsedManifest::Index(idx) = index.parse()? else {
                return Err(Error::UnsupportedMediaType {
                    media_type: index.media_type,
                    reference: index_digest.to_string(),
                });
            };
            let chosen = select_platform(idx.manifests(), platform).ok_or(Error::NotFound {
                what: "platform manifest",
                reference: format!(
                    "{}/{}{} in {index_digest}",
                    platform.os(),
                    platform.architecture(),
                    platform
                        .variant()
                        .as_ref()
                        .map(|v| format!("/{v}"))
                        .unwrap_or_default()
                ),
            })?;
            self.manifest_at(image, &chosen).await
        }
    }
}

/// Either evidence source, chosen at run time: an OCI image layout on disk (air-gapped sites,
/// tests) or the images' registries. What a webhook or CLI holds when a flag decides.
#[derive(Debug)]
pub enum AnySource {
    /// An OCI image layout folder.
    Layout(crate::LayoutSource),
    /// The images' registries.
    Registry(Box<crate::RegistryClient>),
}

impl From<crate::LayoutSource> for AnySource {
    fn from(l: crate::LayoutSource) -> Self {
        AnySource::Layout(l)
    }
}

impl From<crate::RegistryClient> for AnySource {
    fn from(r: crate::RegistryClient) -> Self {
        AnySource::Registry(Box::new(r))
    }
}

impl EvidenceSource for AnySource {
    async fn resolve(&self, image: &ImageReference) -> Result<Digest, Error> {
        match self {
            AnySource::Layout(l) => l.resolve(image).await,
            AnySource::Registry(r) => r.resolve(image).await,
        }
    }

    async fn manifest(&self, image: &ImageReference) -> Result<Manifest, Error> {
        match self {
            AnySource::Layout(l) => l.manifest(image).await,
            AnySource::Registry(r) => r.manifest(image).await,
        }
    }

    async fn blob(
        &self,
        image: &ImageReference,
        digest: &Digest,
        limit: u64,
    ) -> Result<Vec<u8>, Error> {
        match self {
            AnySource::Layout(l) => l.blob(image, digest, limit).await,
            AnySource::Registry(r) => r.blob(image, digest, limit).await,
        }
    }

    async fn blob_to_file(
        &self,
        image: &ImageReference,
        digest: &Digest,
        limit: u64,
        dest: &Path,
    ) -> Result<(), Error> {
        match self {
            AnySource::Layout(l) => l.blob_to_file(image, digest, limit, dest).await,
            AnySource::Registry(r) => r.blob_to_file(image, digest, limit, dest).await,
        }
    }

    async fn referrers_api(
        &self,
        image: &ImageReference,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Option<Referrers>, Error> {
        match self {
            AnySource::Layout(l) => l.referrers_api(image, subject, artifact_type).await,
            AnySource::Registry(r) => r.referrers_api(image, subject, artifact_type).await,
        }
    }

    fn limits(&self) -> Limits {
        match self {
            AnySource::Layout(l) => l.limits(),
            AnySource::Registry(r) => r.limits(),
        }
    }
}

/// Picks the digest of the first index entry matching `platform` (os + architecture, and
/// variant when `platform` names one). Entries without a platform never match.
pub fn select_platform(
    entries: &[oci_spec::image::Descriptor],
    platform: &Platform,
) -> Option<Digest> {
    entries.iter().find_map(|d| {
        let p = d.platform().as_ref()?;
        let ok = p.os() == platform.os()
            && p.architecture() == platform.architecture()
            && match platform.variant() {
                Some(v) => p.variant().as_deref() == Some(v.as_str()),
                None => true,
            };
        if ok { descriptor_digest(d).ok() } else { None }
    })
}

/// The repository part of a reference (no tag, no digest).
pub(crate) fn repo_of(image: &ImageReference) -> ImageReference {
    ImageReference::from_name(&image.name()).unwrap_or_else(|_| image.clone())
}

fn filter(mut r: Referrers, artifact_type: Option<&str>) -> Referrers {
    if let Some(at) = artifact_type {
        r.items.retain(|i| i.artifact_type.as_deref() == Some(at));
    }
    r
}

/// The referrers tag schema: an index tagged `<alg>-<hex>` in the subject's repository.
pub(crate) async fn referrers_by_tag<S: EvidenceSource + ?Sized>(
    src: &S,
    image: &ImageReference,
    subject: &Digest,
    artifact_type: Option<&str>,
) -> Result<Referrers, Error> {
    let tag = format!("{}-{}", subject.algorithm(), subject.hex());
    let tagged = repo_of(image)
        .with_tag(&tag)
        .map_err(|e| Error::InvalidReference {
            input: tag.clone(),
            reason: e.to_string(),
        })?;
    let m = match src.manifest(&tagged).await {
        Ok(m) => m,
        Err(Error::NotFound { .. }) => {
            return Ok(Referrers {
                items: Vec::new(),
                origin: ReferrersOrigin::TagSchema,
            });
        }
        Err(e) => return Err(e),
    };
    let ParsedManifest::Index(idx) = m.parse()? else {
        return Err(Error::UnsupportedMediaType {
            media_type: m.media_type,
            reference: tagged.to_string(),
        });
    };
    let limit = src.limits().max_referrers;
    if idx.manifests().len() > limit {
        return Err(Error::TooLarge {
            what: format!("referrers of {subject}"),
            limit: limit as u64,
        });
    }
    let items = idx
        .manifests()
        .iter()
        .map(referrer_from_descriptor)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(filter(
        Referrers {
            items,
            origin: ReferrersOrigin::TagSchema,
        },
        artifact_type,
    ))
}

/// A layer descriptor, simplified.
pub(crate) struct LayerInfo {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    pub annotations: std::collections::BTreeMap<String, String>,
}

pub(crate) fn layers_of(m: &ImageManifest, limits: &Limits) -> Result<Vec<LayerInfo>, Error> {
    if m.layers().len() > limits.max_layers {
        return Err(Error::TooLarge {
            what: "layers in manifest".into(),
            limit: limits.max_layers as u64,
        });
    }
    m.layers()
        .iter()
        .map(|d| {
            Ok(LayerInfo {
                media_type: d.media_type().to_string(),
                digest: descriptor_digest(d)?,
                size: d.size(),
                annotations: annotations_of(d),
            })
        })
        .collect()
}

/// Evidence bytes read so far for one image, against [`Limits::max_evidence_bytes`].
struct Budget {
    used: u64,
    limit: u64,
    image: String,
}

impl Budget {
    fn new(limits: &Limits, digest: &Digest) -> Self {
        Budget {
            used: 0,
            limit: limits.max_evidence_bytes,
            image: digest.to_string(),
        }
    }

    /// Counts `n` more bytes (a layer's descriptor size, checked against its content after
    /// reading), before they are read.
    fn take(&mut self, n: u64) -> Result<(), Error> {
        self.used = self.used.saturating_add(n);
        if self.used > self.limit {
            return Err(Error::TooLarge {
                what: format!("evidence of {}", self.image),
                limit: self.limit,
            });
        }
        Ok(())
    }
}

async fn fetch_layer<S: EvidenceSource + ?Sized>(
    src: &S,
    repo: &ImageReference,
    layer: &LayerInfo,
    budget: &mut Budget,
) -> Result<Vec<u8>, Error> {
    let limit = src.limits().max_blob_bytes;
    if layer.size > limit {
        return Err(Error::TooLarge {
            what: format!("blob {}", layer.digest),
            limit,
        });
    }
    budget.take(layer.size)?;
    let bytes = src.blob(repo, &layer.digest, limit).await?;
    if bytes.len() as u64 != layer.size {
        return Err(Error::malformed(
            format!("blob {}", layer.digest),
            format!(
                "descriptor says {} bytes, content has {}",
                layer.size,
                bytes.len()
            ),
        ));
    }
    Ok(bytes)
}

/// The layers (descriptor, bytes) of cosign's attached manifest of `kind`, or nothing.
async fn attached_layers<S: EvidenceSource + ?Sized>(
    src: &S,
    image: &ImageReference,
    digest: &Digest,
    kind: AttachedKind,
    repository: Option<&ImageReference>,
    budget: &mut Budget,
) -> Result<Vec<(Digest, LayerInfo, Vec<u8>)>, Error> {
    let tagged = attached_reference(image, digest, kind, repository);
    // The attached manifest and its layers are the image owner's: content that is malformed
    // (a lying size, too many layers, an index where a manifest belongs) is evidence that
    // fails, so it is left out (it can only make fewer signatures verify). Only an
    // infrastructure failure (the registry unreachable, auth refused) is an error.
    let m = match src.manifest(&tagged).await {
        Ok(m) => m,
        Err(Error::NotFound { .. }) => return Ok(Vec::new()),
        Err(e) => return evidence_failed(e, Vec::new()),
    };
    let manifest = match m.image() {
        Ok(x) => x,
        Err(e) => return evidence_failed(e, Vec::new()),
    };
    let layers = match layers_of(&manifest, &src.limits()) {
        Ok(l) => l,
        Err(e) => return evidence_failed(e, Vec::new()),
    };
    let repo = repo_of(&tagged);
    let mut out = Vec::new();
    for layer in layers {
        // Over the image's evidence budget, malformed or not matching its digest: left out.
        match fetch_layer(src, &repo, &layer, budget).await {
            Ok(bytes) => out.push((m.digest.clone(), layer, bytes)),
            Err(e) if e.is_infrastructure() => return Err(e),
            Err(_) => continue,
        }
    }
    Ok(out)
}

/// A failure reading evidence the image owner controls: infrastructure failures propagate;
/// malformed or oversized content leaves that evidence out (`fallback`).
fn evidence_failed<T>(e: Error, fallback: T) -> Result<T, Error> {
    if e.is_infrastructure() {
        Err(e)
    } else {
        Ok(fallback)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BundleKind {
    MessageSignature,
    Dsse,
    /// A DSSE envelope whose payload claims cosign's signing predicate type (cosign 3's image
    /// signature). Unverified: it only decides where the bundle is offered.
    DsseSignature,
    Unknown,
}

struct BundleLayer {
    media_type: String,
    digest: Digest,
    bytes: Vec<u8>,
    annotations: std::collections::BTreeMap<String, String>,
    manifest_digest: Digest,
    kind: BundleKind,
}

fn bundle_kind(bytes: &[u8]) -> BundleKind {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return BundleKind::Unknown;
    };
    if v.get("messageSignature").is_some() {
        BundleKind::MessageSignature
    } else if let Some(env) = v.get("dsseEnvelope") {
        use base64::Engine;
        let claimed = env
            .get("payload")
            .and_then(serde_json::Value::as_str)
            .and_then(|p| base64::engine::general_purpose::STANDARD.decode(p).ok())
            .and_then(|p| serde_json::from_slice::<serde_json::Value>(&p).ok())
            .and_then(|st| {
                st.get("predicateType")
                    .and_then(serde_json::Value::as_str)
                    .map(str::to_owned)
            });
        if claimed.as_deref() == Some(provenance_core::verify::COSIGN_SIGN_PREDICATE_V1) {
            BundleKind::DsseSignature
        } else {
            BundleKind::Dsse
        }
    } else {
        BundleKind::Unknown
    }
}

/// cosign's attached layers of `kind` ([`attached_layers`]) and the listing of Sigstore bundle
/// referrers of `digest`, looked up at once: the two are independent requests to the
/// registry, so a cold lookup waits for the longer of the two chains (manifest then layers;
/// referrers API then its tag fallback), not their sum. The budget is only spent on the
/// attached layers here; bundle layers are read afterwards ([`bundle_referrers`]), so which
/// evidence a tight budget leaves out does not depend on which answer came first.
async fn attached_and_listed<S: EvidenceSource + ?Sized>(
    src: &S,
    image: &ImageReference,
    digest: &Digest,
    kind: AttachedKind,
    repository: Option<&ImageReference>,
    budget: &mut Budget,
) -> Result<(Vec<(Digest, LayerInfo, Vec<u8>)>, Result<Referrers, Error>), Error> {
    let repo = repo_of(repository.unwrap_or(image));
    let (attached, listed) = tokio::join!(
        attached_layers(src, image, digest, kind, repository, budget),
        src.referrers(&repo, digest, Some(SIGSTORE_BUNDLE_V03)),
    );
    Ok((attached?, listed))
}

/// Sigstore bundle v0.3 referrers (cosign `--new-bundle-format`) from their listing (`listed`,
/// as [`attached_and_listed`] got it): each referrer manifest's bundle layers, with the
/// referrer manifest's annotations merged under the layer's.
async fn bundle_referrers<S: EvidenceSource + ?Sized>(
    src: &S,
    image: &ImageReference,
    digest: &Digest,
    repository: Option<&ImageReference>,
    listed: Result<Referrers, Error>,
    budget: &mut Budget,
) -> Result<Vec<BundleLayer>, Error> {
    let repo = repo_of(repository.unwrap_or(image));
    // Referrers are the image owner's (anyone who can push to the repository can add one):
    // a malformed listing, manifest or layer is left out, never an error that a
    // `failurePolicy: Ignore` would admit. Only infrastructure failures propagate.
    let refs = match listed {
        Ok(r) => r,
        Err(e) => return evidence_failed(e, Vec::new()),
    };
    let mut out = Vec::new();
    for r in refs.items {
        let m = match src.manifest_at(&repo, &r.digest).await {
            Ok(m) => m,
            Err(e) if e.is_infrastructure() => return Err(e),
            Err(_) => continue,
        };
        if m.bytes.len() as u64 != r.size {
            continue;
        }
        let Ok(manifest) = m.image() else {
            continue;
        };
        if let Some(subject) = manifest.subject() {
            // A referrer must name the subject it was listed for.
            if descriptor_digest(subject).ok().as_ref() != Some(digest) {
                continue;
            }
        }
        let mut annotations = r.annotations.clone();
        if let Some(a) = manifest.annotations() {
            annotations.extend(a.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        let Ok(layers) = layers_of(&manifest, &src.limits()) else {
            continue;
        };
        for layer in layers {
            if !layer.media_type.starts_with(SIGSTORE_BUNDLE_PREFIX) {
                continue;
            }
            let bytes = match fetch_layer(src, &repo, &layer, budget).await {
                Ok(b) => b,
                Err(e) if e.is_infrastructure() => return Err(e),
                Err(_) => continue,
            };
            let mut ann = annotations.clone();
            ann.extend(layer.annotations.clone());
            out.push(BundleLayer {
                kind: bundle_kind(&bytes),
                media_type: layer.media_type,
                digest: layer.digest,
                bytes,
                annotations: ann,
                manifest_digest: m.digest.clone(),
            });
        }
    }
    Ok(out)
}

/// Referrer entries as returned by the referrers API body (an OCI index).
pub(crate) fn referrers_from_index_bytes(
    bytes: &[u8],
    limits: &Limits,
    origin: ReferrersOrigin,
) -> Result<Referrers, Error> {
    let idx: oci_spec::image::ImageIndex =
        serde_json::from_slice(bytes).map_err(|e| Error::malformed("referrers index", e))?;
    if idx.manifests().len() > limits.max_referrers {
        return Err(Error::TooLarge {
            what: "referrers".into(),
            limit: limits.max_referrers as u64,
        });
    }
    let items: Vec<Referrer> = idx
        .manifests()
        .iter()
        .map(referrer_from_descriptor)
        .collect::<Result<_, _>>()?;
    Ok(Referrers { items, origin })
}

/// A shared source is a source (`Arc<RegistryClient>` in a server).
impl<T: EvidenceSource + ?Sized> EvidenceSource for std::sync::Arc<T> {
    fn resolve(
        &self,
        image: &ImageReference,
    ) -> impl Future<Output = Result<Digest, Error>> + Send {
        (**self).resolve(image)
    }

    fn manifest(
        &self,
        image: &ImageReference,
    ) -> impl Future<Output = Result<Manifest, Error>> + Send {
        (**self).manifest(image)
    }

    fn blob(
        &self,
        image: &ImageReference,
        digest: &Digest,
        limit: u64,
    ) -> impl Future<Output = Result<Vec<u8>, Error>> + Send {
        (**self).blob(image, digest, limit)
    }

    fn blob_to_file(
        &self,
        image: &ImageReference,
        digest: &Digest,
        limit: u64,
        dest: &Path,
    ) -> impl Future<Output = Result<(), Error>> + Send {
        (**self).blob_to_file(image, digest, limit, dest)
    }

    fn referrers_api(
        &self,
        image: &ImageReference,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> impl Future<Output = Result<Option<Referrers>, Error>> + Send {
        (**self).referrers_api(image, subject, artifact_type)
    }

    fn limits(&self) -> Limits {
        (**self).limits()
    }
}
