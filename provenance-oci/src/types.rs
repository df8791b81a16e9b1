//! Plain data returned by evidence sources: manifests, signature layers, attestations,
//! referrers, plus size limits and the digest-checking hasher every byte goes through.

use std::collections::BTreeMap;

use aws_lc_rs::digest as lc;
use oci_spec::image::{Descriptor, ImageIndex, ImageManifest};
use provenance_core::verify::{CosignSignature, SIMPLE_SIGNING_MEDIA_TYPE, SignatureMaterial};
use provenance_core::{Digest, DigestAlgorithm};

use crate::error::Error;

/// OCI image manifest media type.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index media type.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker schema 2 manifest media type.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list media type.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Media types sent in `Accept` when fetching manifests.
pub const MANIFEST_MEDIA_TYPES: &[&str] = &[
    OCI_MANIFEST,
    OCI_INDEX,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
];
/// Sigstore bundle v0.3 artifact type (OCI 1.1 referrers, `cosign sign --new-bundle-format`).
pub const SIGSTORE_BUNDLE_V03: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// Prefix shared by every Sigstore bundle media type
/// (`application/vnd.dev.sigstore.bundle+json;version=0.x`).
pub const SIGSTORE_BUNDLE_PREFIX: &str = "application/vnd.dev.sigstore.bundle";
/// DSSE envelope layer media type (cosign attestations).
pub const DSSE_ENVELOPE: &str = "application/vnd.dsse.envelope.v1+json";
/// Annotation cosign puts on attestation layers naming the predicate type.
pub const ANNOTATION_PREDICATE_TYPE: &str = "predicateType";

/// Size and count limits applied to everything fetched. Exceeding one is
/// [`Error::TooLarge`], never a truncation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest manifest or index, in bytes (default 4 MiB, the limit of CNCF distribution).
    pub max_manifest_bytes: u64,
    /// Largest evidence blob (signature payload, DSSE envelope, SBOM, bundle), in bytes
    /// (default 32 MiB).
    pub max_blob_bytes: u64,
    /// Largest blob copied by an export (image layers), in bytes (default 64 GiB; streamed to
    /// disk, never held in memory).
    pub max_export_blob_bytes: u64,
    /// Most layers read from one signature / attestation manifest (default 256).
    pub max_layers: usize,
    /// Most referrers (or index entries) considered for one subject (default 1024).
    pub max_referrers: usize,
    /// Most evidence bytes (signature, attestation, bundle and SBOM layers together) read for
    /// one image by one `signatures`, `attestations` or `sboms` call (default 128 MiB):
    /// without it, 256 layers of 32 MiB each would be 8 GiB held for one image.
    pub max_evidence_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_manifest_bytes: 4 << 20,
            max_blob_bytes: 32 << 20,
            max_export_blob_bytes: 64 << 30,
            max_layers: 256,
            max_referrers: 1024,
            max_evidence_bytes: 128 << 20,
        }
    }
}

/// A manifest or index as fetched: its digest (checked against its bytes), its media type
/// and its exact bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// Digest of `bytes` (what signatures name).
    pub digest: Digest,
    /// Media type (from the document, else from the transport).
    pub media_type: String,
    /// The exact bytes.
    pub bytes: Vec<u8>,
}

/// A parsed manifest: an image (or artifact) manifest, or an index.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)]
pub enum ParsedManifest {
    /// An image or artifact manifest (OCI or Docker schema 2).
    Image(ImageManifest),
    /// An image index or Docker manifest list.
    Index(ImageIndex),
}

#[derive(serde::Deserialize)]
struct Probe {
    #[serde(rename = "mediaType")]
    media_type: Option<String>,
    manifests: Option<serde_json::Value>,
    #[serde(rename = "schemaVersion")]
    schema_version: Option<u32>,
}

impl Manifest {
    /// Builds a manifest from bytes, computing its digest with `algorithm` and taking the
    /// media type from the document (or `fallback_media_type`).
    pub fn from_bytes(
        bytes: Vec<u8>,
        algorithm: DigestAlgorithm,
        fallback_media_type: Option<&str>,
    ) -> Result<Self, Error> {
        let probe: Probe =
            serde_json::from_slice(&bytes).map_err(|e| Error::malformed("manifest", e))?;
        if probe.schema_version != Some(2) {
            return Err(Error::malformed(
                "manifest",
                format!("schemaVersion is {:?}, expected 2", probe.schema_version),
            ));
        }
        let media_type = match (probe.media_type, fallback_media_type) {
            (Some(m), _) => m,
            (None, _) if probe.manifests.is_some() => OCI_INDEX.to_owned(),
            (None, Some(f)) if !f.is_empty() => f.to_owned(),
            (None, _) => OCI_MANIFEST.to_owned(),
        };
        Ok(Manifest {
            digest: Digest::compute(algorithm, &bytes),
            media_type,
            bytes,
        })
    }

    /// True for an OCI index or a Docker manifest list.
    pub fn is_index(&self) -> bool {
        self.media_type == OCI_INDEX || self.media_type == DOCKER_MANIFEST_LIST
    }

    /// Parses the manifest.
    pub fn parse(&self) -> Result<ParsedManifest, Error> {
        let what = format!("manifest {}", self.digest);
        if self.is_index() {
            serde_json::from_slice(&self.bytes)
                .map(ParsedManifest::Index)
                .map_err(|e| Error::malformed(what, e))
        } else {
            serde_json::from_slice(&self.bytes)
                .map(ParsedManifest::Image)
                .map_err(|e| Error::malformed(what, e))
        }
    }

    /// Parses the manifest as an image manifest; an index is an error.
    pub fn image(&self) -> Result<ImageManifest, Error> {
        match self.parse()? {
            ParsedManifest::Image(m) => Ok(m),
            ParsedManifest::Index(_) => Err(Error::UnsupportedMediaType {
                media_type: self.media_type.clone(),
                reference: self.digest.to_string(),
            }),
        }
    }
}

/// One layer of a cosign signature manifest (`sha256-<hex>.sig`) or one Sigstore bundle
/// referrer: bytes as fetched (digest-checked), unverified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureLayer {
    /// Layer media type (`application/vnd.dev.cosign.simplesigning.v1+json`, or a Sigstore
    /// bundle media type).
    pub media_type: String,
    /// Layer digest.
    pub digest: Digest,
    /// Layer bytes (the simple-signing payload, or the bundle JSON).
    pub payload: Vec<u8>,
    /// Layer annotations (`dev.cosignproject.cosign/signature`, `dev.sigstore.cosign/*`).
    pub annotations: BTreeMap<String, String>,
    /// Digest of the manifest this layer came from.
    pub manifest_digest: Digest,
}

impl SignatureLayer {
    /// The material `provenance_core::verify` takes: a Sigstore bundle for bundle media
    /// types, otherwise a cosign legacy layer (payload + annotations).
    pub fn material(&self) -> SignatureMaterial {
        if self.media_type.starts_with(SIGSTORE_BUNDLE_PREFIX) {
            SignatureMaterial::Bundle(self.payload.clone())
        } else {
            SignatureMaterial::Cosign(CosignSignature::new(
                self.payload.clone(),
                self.annotations.clone(),
            ))
        }
    }

    /// True for a cosign simple-signing layer.
    pub fn is_simple_signing(&self) -> bool {
        self.media_type == SIMPLE_SIGNING_MEDIA_TYPE
    }
}

/// One attestation: a DSSE envelope from a cosign `.att` layer, or a Sigstore bundle
/// referrer carrying a DSSE envelope. Unverified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestationLayer {
    /// Layer media type (`application/vnd.dsse.envelope.v1+json` or a Sigstore bundle type).
    pub media_type: String,
    /// Layer digest.
    pub digest: Digest,
    /// The DSSE envelope JSON (or the bundle JSON).
    pub envelope: Vec<u8>,
    /// Layer annotations (cosign: `predicateType`, `dev.sigstore.cosign/*`).
    pub annotations: BTreeMap<String, String>,
    /// Predicate type as annotated (cosign) or as the referrer's annotation says; a claim to
    /// route on, not evidence.
    pub predicate_type: Option<String>,
    /// Digest of the manifest this layer came from.
    pub manifest_digest: Digest,
}

impl AttestationLayer {
    /// True when the layer is a Sigstore bundle (verify it as a bundle), false for a bare
    /// DSSE envelope with cosign annotations.
    pub fn is_bundle(&self) -> bool {
        self.media_type.starts_with(SIGSTORE_BUNDLE_PREFIX)
    }
}

/// An SBOM attached with cosign's `.sbom` tag: the layer bytes and media type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SbomLayer {
    /// Layer media type (`text/spdx+json`, `application/vnd.cyclonedx+json`, ...).
    pub media_type: String,
    /// Layer digest.
    pub digest: Digest,
    /// The SBOM bytes.
    pub bytes: Vec<u8>,
}

/// One referrer of a subject (OCI 1.1): a descriptor of a manifest whose `subject` is the
/// subject digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Referrer {
    /// Digest of the referring manifest.
    pub digest: Digest,
    /// Its media type.
    pub media_type: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its artifact type, if any.
    pub artifact_type: Option<String>,
    /// Its annotations.
    pub annotations: BTreeMap<String, String>,
}

/// Where a referrer list came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ReferrersOrigin {
    /// The OCI 1.1 referrers API (`GET /v2/<name>/referrers/<digest>`).
    Api,
    /// The referrers tag schema (`sha256-<hex>` tag holding an index).
    TagSchema,
    /// Scanning an OCI layout for manifests whose `subject` is the digest.
    LayoutScan,
}

/// The referrers of a subject and how they were found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Referrers {
    /// The referrers (filtered by artifact type when one was asked for).
    pub items: Vec<Referrer>,
    /// Where they came from.
    pub origin: ReferrersOrigin,
}

pub(crate) fn parse_digest(s: &str, context: &str) -> Result<Digest, Error> {
    Digest::parse(s).map_err(|e| Error::malformed(context, e))
}

pub(crate) fn referrer_from_descriptor(d: &Descriptor) -> Result<Referrer, Error> {
    Ok(Referrer {
        digest: parse_digest(d.digest().as_ref(), "referrer descriptor digest")?,
        media_type: d.media_type().to_string(),
        size: d.size(),
        artifact_type: d.artifact_type().as_ref().map(|m| m.to_string()),
        annotations: d
            .annotations()
            .as_ref()
            .map(|a| a.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default(),
    })
}

pub(crate) fn descriptor_digest(d: &Descriptor) -> Result<Digest, Error> {
    parse_digest(d.digest().as_ref(), "descriptor digest")
}

pub(crate) fn annotations_of(d: &Descriptor) -> BTreeMap<String, String> {
    d.annotations()
        .as_ref()
        .map(|a| a.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

/// Streaming hash + size bound: every byte fetched goes through one of these.
pub(crate) struct CheckedHasher {
    ctx: lc::Context,
    algorithm: DigestAlgorithm,
    seen: u64,
    limit: u64,
    what: String,
}

impl CheckedHasher {
    pub(crate) fn new(algorithm: DigestAlgorithm, limit: u64, what: impl Into<String>) -> Self {
        let alg = match algorithm {
            DigestAlgorithm::Sha512 => &lc::SHA512,
            _ => &lc::SHA256,
        };
        CheckedHasher {
            ctx: lc::Context::new(alg),
            algorithm,
            seen: 0,
            limit,
            what: what.into(),
        }
    }

    pub(crate) fn update(&mut self, chunk: &[u8]) -> Result<(), Error> {
        self.seen = self.seen.saturating_add(chunk.len() as u64);
        if self.seen > self.limit {
            return Err(Error::TooLarge {
                what: self.what.clone(),
                limit: self.limit,
            });
        }
        self.ctx.update(chunk);
        Ok(())
    }

    pub(crate) fn finish(self) -> Result<Digest, Error> {
        let out = self.ctx.finish();
        Ok(Digest::from_bytes(self.algorithm, out.as_ref())?)
    }

    /// Finishes and checks against `expected`.
    pub(crate) fn check(self, expected: &Digest) -> Result<(), Error> {
        let reference = self.what.clone();
        let actual = self.finish()?;
        if &actual == expected {
            Ok(())
        } else {
            Err(Error::DigestMismatch {
                reference,
                expected: expected.to_string(),
                actual: actual.to_string(),
            })
        }
    }
}

/// Checks `bytes` against `expected` and the `limit`.
pub(crate) fn check_bytes(
    bytes: &[u8],
    expected: &Digest,
    limit: u64,
    what: &str,
) -> Result<(), Error> {
    let mut h = CheckedHasher::new(expected.algorithm(), limit, what);
    h.update(bytes)?;
    h.check(expected)
}
