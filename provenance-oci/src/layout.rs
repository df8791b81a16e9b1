//! OCI image layout folders as an [`EvidenceSource`] ([`LayoutSource`]) and as an export
//! target ([`LayoutWriter`]).
//!
//! A layout holds one namespace: the repository part of image references is ignored, tags are
//! the `org.opencontainers.image.ref.name` annotations of `index.json` entries (as skopeo, oras
//! and [`crate::export()`] write them), digests are `blobs/<alg>/<hex>`. Layouts written by
//! `cosign save` mark entries with a `kind` annotation instead of names; their `sigs` / `atts`
//! entries are found under cosign's tags when the layout holds exactly one image whose digest
//! is the one the tag names. Referrers are found by scanning `index.json` entries for
//! manifests whose `subject` is the digest, else through a referrers tag-schema index.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use oci_spec::image::ImageIndex;
use provenance_core::{Digest, DigestAlgorithm, ImageReference};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::Error;
use crate::fsutil;
use crate::source::EvidenceSource;
use crate::types::{
    CheckedHasher, Limits, Manifest, OCI_INDEX, Referrer, Referrers, ReferrersOrigin,
    annotations_of, check_bytes, descriptor_digest,
};

/// Annotation naming an index entry (a tag, or a full reference).
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// Annotation `cosign save` puts on index entries.
pub const COSIGN_KIND: &str = "kind";

#[derive(Debug, Clone)]
struct Entry {
    digest: Digest,
    media_type: String,
    annotations: BTreeMap<String, String>,
}

/// An OCI image layout folder, read as an [`EvidenceSource`]. `index.json` is read once, at
/// [`LayoutSource::open`]; blobs are read (size-checked, digest-checked) on demand.
#[derive(Debug, Clone)]
pub struct LayoutSource {
    root: PathBuf,
    entries: Vec<Entry>,
    /// (subject, referrer) for every index entry whose manifest has a `subject`.
    referrers: Vec<(Digest, Referrer)>,
    limits: Limits,
}

fn blob_path(root: &Path, digest: &Digest) -> PathBuf {
    root.join("blobs")
        .join(digest.algorithm().as_str())
        .join(digest.hex())
}

/// Reads the regular file `path` of a layout, bounded while reading (see [`crate::fsutil`]);
/// a missing file is [`Error::NotFound`].
fn read_bounded(path: &Path, limit: u64, what: &str) -> Result<Vec<u8>, Error> {
    fsutil::read_regular(path, limit, what)?.ok_or_else(|| Error::NotFound {
        what: "blob",
        reference: path.display().to_string(),
    })
}

/// Checks that the layout's `blobs` folder and its algorithm folders are real folders: blobs
/// are read only from inside the layout.
fn check_blob_dirs(root: &Path) -> Result<(), Error> {
    let blobs = root.join("blobs");
    fsutil::check_dir_if_present(&blobs)?;
    for alg in [DigestAlgorithm::Sha256, DigestAlgorithm::Sha512] {
        fsutil::check_dir_if_present(&blobs.join(alg.as_str()))?;
    }
    Ok(())
}

impl LayoutSource {
    /// Opens the layout at `root` with default limits.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, Error> {
        Self::open_with_limits(root, Limits::default())
    }

    /// Opens the layout at `root`: checks `oci-layout`, reads `index.json`, and indexes the
    /// `subject` of every listed manifest.
    pub fn open_with_limits(root: impl Into<PathBuf>, limits: Limits) -> Result<Self, Error> {
        let root = root.into();
        let marker = read_bounded(&root.join("oci-layout"), 4096, "oci-layout")?;
        check_blob_dirs(&root)?;
        let v: serde_json::Value =
            serde_json::from_slice(&marker).map_err(|e| Error::malformed("oci-layout", e))?;
        if v.get("imageLayoutVersion").and_then(|x| x.as_str()) != Some("1.0.0") {
            return Err(Error::malformed(
                "oci-layout",
                "imageLayoutVersion is not \"1.0.0\"",
            ));
        }
        let index_bytes = read_bounded(
            &root.join("index.json"),
            limits.max_manifest_bytes,
            "index.json",
        )?;
        let index: ImageIndex =
            serde_json::from_slice(&index_bytes).map_err(|e| Error::malformed("index.json", e))?;
        if index.manifests().len() > limits.max_referrers.saturating_mul(4) {
            return Err(Error::TooLarge {
                what: "index.json entries".into(),
                limit: limits.max_referrers.saturating_mul(4) as u64,
            });
        }
        let mut entries = Vec::new();
        for d in index.manifests() {
            entries.push(Entry {
                digest: descriptor_digest(d)?,
                media_type: d.media_type().to_string(),
                annotations: annotations_of(d),
            });
        }
        let mut referrers = Vec::new();
        for e in &entries {
            // Unreadable entries give no referrers (less evidence, never more).
            let Ok(bytes) = read_bounded(
                &blob_path(&root, &e.digest),
                limits.max_manifest_bytes,
                "manifest",
            ) else {
                continue;
            };
            if check_bytes(&bytes, &e.digest, limits.max_manifest_bytes, "manifest").is_err() {
                continue;
            }
            let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
                continue;
            };
            let Some(subject) = v
                .get("subject")
                .and_then(|s| s.get("digest"))
                .and_then(|d| d.as_str())
                .and_then(|d| Digest::parse(d).ok())
            else {
                continue;
            };
            let artifact_type = v
                .get("artifactType")
                .or_else(|| v.get("config").and_then(|c| c.get("mediaType")))
                .and_then(|a| a.as_str())
                .map(str::to_owned);
            let annotations = v
                .get("annotations")
                .and_then(|a| a.as_object())
                .map(|o| {
                    o.iter()
                        .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
                        .collect()
                })
                .unwrap_or_default();
            referrers.push((
                subject,
                Referrer {
                    digest: e.digest.clone(),
                    media_type: e.media_type.clone(),
                    size: bytes.len() as u64,
                    artifact_type,
                    annotations,
                },
            ));
        }
        Ok(LayoutSource {
            root,
            entries,
            referrers,
            limits,
        })
    }

    /// The layout folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The names (`org.opencontainers.image.ref.name`) listed in `index.json`.
    pub fn names(&self) -> Vec<String> {
        self.entries
            .iter()
            .filter_map(|e| e.annotations.get(REF_NAME).cloned())
            .collect()
    }

    fn find_tag(&self, image: &ImageReference, tag: &str) -> Result<Option<&Entry>, Error> {
        let full = image.to_string();
        let named = format!("{}:{tag}", image.name());
        let mut found: Option<&Entry> = None;
        for e in &self.entries {
            let Some(n) = e.annotations.get(REF_NAME) else {
                continue;
            };
            if n == tag || *n == full || *n == named {
                if let Some(prev) = found
                    && prev.digest != e.digest
                {
                    return Err(Error::malformed(
                        "index.json",
                        format!("name {tag:?} points at two different manifests"),
                    ));
                }
                found = Some(e);
            }
        }
        if found.is_some() {
            return Ok(found);
        }
        Ok(self.cosign_kind_entry(tag))
    }

    /// `cosign save` layouts: `<alg>-<hex>.sig|.att` maps to the `sigs` / `atts` entry when
    /// the only image entry is that digest.
    fn cosign_kind_entry(&self, tag: &str) -> Option<&Entry> {
        let (digest_part, suffix) = tag.rsplit_once('.')?;
        let kind = match suffix {
            "sig" => "dev.cosignproject.cosign/sigs",
            "att" => "dev.cosignproject.cosign/atts",
            _ => return None,
        };
        let (alg, hex) = digest_part.split_once('-')?;
        let subject = Digest::parse(&format!("{alg}:{hex}")).ok()?;
        let images: Vec<&Entry> = self
            .entries
            .iter()
            .filter(|e| {
                matches!(
                    e.annotations.get(COSIGN_KIND).map(String::as_str),
                    Some("dev.cosignproject.cosign/image" | "dev.cosignproject.cosign/imageIndex")
                )
            })
            .collect();
        if images.len() != 1 || images[0].digest != subject {
            return None;
        }
        let mut it = self
            .entries
            .iter()
            .filter(|e| e.annotations.get(COSIGN_KIND).map(String::as_str) == Some(kind));
        let first = it.next()?;
        // Two entries of one kind would be ambiguous: take none (less evidence, never more).
        if it.next().is_some() {
            None
        } else {
            Some(first)
        }
    }

    fn media_type_of(&self, digest: &Digest) -> Option<&str> {
        self.entries
            .iter()
            .find(|e| &e.digest == digest)
            .map(|e| e.media_type.as_str())
    }

    fn read_blob(&self, digest: &Digest, limit: u64, what: &str) -> Result<Vec<u8>, Error> {
        let bytes = read_bounded(&blob_path(&self.root, digest), limit, what)?;
        check_bytes(&bytes, digest, limit, &format!("{what} {digest}"))?;
        Ok(bytes)
    }
}

impl EvidenceSource for LayoutSource {
    async fn resolve(&self, image: &ImageReference) -> Result<Digest, Error> {
        if let Some(s) = image.digest_str() {
            let d = Digest::parse(s)?;
            if !std::fs::symlink_metadata(blob_path(&self.root, &d))
                .is_ok_and(|m| m.file_type().is_file())
            {
                return Err(Error::NotFound {
                    what: "manifest",
                    reference: image.to_string(),
                });
            }
            return Ok(d);
        }
        let tag = image.tag().unwrap_or("latest");
        match self.find_tag(image, tag)? {
            Some(e) => Ok(e.digest.clone()),
            None => Err(Error::NotFound {
                what: "tag",
                reference: image.to_string(),
            }),
        }
    }

    async fn manifest(&self, image: &ImageReference) -> Result<Manifest, Error> {
        let digest = self.resolve(image).await?;
        let bytes = self.read_blob(&digest, self.limits.max_manifest_bytes, "manifest")?;
        let fallback = self.media_type_of(&digest).map(str::to_owned);
        let m = Manifest::from_bytes(bytes, digest.algorithm(), fallback.as_deref())?;
        Ok(m)
    }

    async fn blob(
        &self,
        _image: &ImageReference,
        digest: &Digest,
        limit: u64,
    ) -> Result<Vec<u8>, Error> {
        self.read_blob(digest, limit, "blob")
    }

    async fn blob_to_file(
        &self,
        _image: &ImageReference,
        digest: &Digest,
        limit: u64,
        dest: &Path,
    ) -> Result<(), Error> {
        let src = blob_path(&self.root, digest);
        copy_checked(&src, dest, digest, limit).await
    }

    async fn referrers_api(
        &self,
        _image: &ImageReference,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Option<Referrers>, Error> {
        let items: Vec<Referrer> = self
            .referrers
            .iter()
            .filter(|(s, r)| {
                s == subject && artifact_type.is_none_or(|a| r.artifact_type.as_deref() == Some(a))
            })
            .map(|(_, r)| r.clone())
            .collect();
        if items.is_empty() {
            // Nothing in index.json names this subject: let the referrers tag schema
            // (`<alg>-<hex>` index, as some tools store it) have a look.
            return Ok(None);
        }
        if items.len() > self.limits.max_referrers {
            return Err(Error::TooLarge {
                what: format!("referrers of {subject}"),
                limit: self.limits.max_referrers as u64,
            });
        }
        Ok(Some(Referrers {
            items,
            origin: ReferrersOrigin::LayoutScan,
        }))
    }

    fn limits(&self) -> Limits {
        self.limits
    }
}

async fn copy_checked(src: &Path, dest: &Path, digest: &Digest, limit: u64) -> Result<(), Error> {
    let f = fsutil::open_regular(src)?.ok_or_else(|| Error::NotFound {
        what: "blob",
        reference: digest.to_string(),
    })?;
    let mut f = tokio::fs::File::from_std(f);
    let tmp = fsutil::temp_path(dest);
    let mut out = tokio::fs::File::from_std(fsutil::create_temp(&tmp)?);
    let mut h = CheckedHasher::new(digest.algorithm(), limit, format!("blob {digest}"));
    let mut buf = vec![0u8; 1 << 20];
    let r: Result<(), Error> = async {
        loop {
            let n = f.read(&mut buf).await.map_err(|e| Error::io(src, &e))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n])?;
            out.write_all(&buf[..n])
                .await
                .map_err(|e| Error::io(&tmp, &e))?;
        }
        out.flush().await.map_err(|e| Error::io(&tmp, &e))
    }
    .await;
    drop(out);
    match r.and_then(|()| h.check(digest)) {
        Ok(()) => tokio::fs::rename(&tmp, dest)
            .await
            .map_err(|e| Error::io(dest, &e)),
        Err(e) => {
            let _ = tokio::fs::remove_file(&tmp).await;
            Err(e)
        }
    }
}

/// Writes an OCI image layout: blobs (digest-checked) and `index.json` entries. Entries of an
/// existing layout are kept; a name given again moves to the new manifest.
///
/// The destination is created, or must be an empty folder or a clean layout (`oci-layout` and
/// `index.json` regular files, `blobs` folders that are real folders): a symbolic link, device
/// or FIFO where a layout file belongs is refused ([`Error::UnsafeFile`]). Every file is
/// written to a new temporary file created exclusively and renamed into place, so a link
/// planted in the folder is replaced, never written through.
#[derive(Debug)]
pub struct LayoutWriter {
    root: PathBuf,
    entries: Vec<serde_json::Value>,
}

/// Largest `index.json` of an existing layout that a [`LayoutWriter`] adds to.
const MAX_WRITER_INDEX_BYTES: u64 = 64 << 20;

/// The `oci-layout` marker file's content.
const OCI_LAYOUT_MARKER: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

impl LayoutWriter {
    /// Creates the layout at `root`, or opens an existing one to add to (see the type's
    /// documentation for what an existing destination must be).
    pub fn create(root: impl Into<PathBuf>) -> Result<Self, Error> {
        let root = root.into();
        let fresh = match std::fs::symlink_metadata(&root) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(parent) = root.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, &e))?;
                }
                std::fs::create_dir(&root).map_err(|e| Error::io(&root, &e))?;
                true
            }
            Err(e) => return Err(Error::io(&root, &e)),
            Ok(m) if m.file_type().is_dir() => {
                let mut it = std::fs::read_dir(&root).map_err(|e| Error::io(&root, &e))?;
                it.next().is_none()
            }
            Ok(_) => {
                return Err(Error::UnsafeFile {
                    path: root.display().to_string(),
                    reason: "not a folder (a link, file or special file)".into(),
                });
            }
        };
        let marker = root.join("oci-layout");
        let index = root.join("index.json");
        let entries = if fresh {
            Vec::new()
        } else {
            // An existing, non-empty folder: only a clean layout is added to.
            let bytes = fsutil::read_regular(&marker, 4096, "oci-layout")?.ok_or_else(|| {
                Error::UnsafeFile {
                    path: root.display().to_string(),
                    reason: "neither an empty folder nor an OCI layout (no oci-layout file)".into(),
                }
            })?;
            let v: serde_json::Value =
                serde_json::from_slice(&bytes).map_err(|e| Error::malformed("oci-layout", e))?;
            if v.get("imageLayoutVersion").and_then(|x| x.as_str()) != Some("1.0.0") {
                return Err(Error::malformed(
                    "oci-layout",
                    "imageLayoutVersion is not \"1.0.0\"",
                ));
            }
            check_blob_dirs(&root)?;
            match fsutil::read_regular(&index, MAX_WRITER_INDEX_BYTES, "index.json")? {
                None => Vec::new(),
                Some(bytes) => {
                    let v: serde_json::Value = serde_json::from_slice(&bytes)
                        .map_err(|e| Error::malformed("index.json", e))?;
                    v.get("manifests")
                        .and_then(|m| m.as_array())
                        .cloned()
                        .unwrap_or_default()
                }
            }
        };
        let blobs = root.join("blobs");
        for d in [
            blobs.clone(),
            blobs.join(DigestAlgorithm::Sha256.as_str()),
            blobs.join(DigestAlgorithm::Sha512.as_str()),
        ] {
            match std::fs::create_dir(&d) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    fsutil::check_dir_if_present(&d)?;
                }
                Err(e) => return Err(Error::io(&d, &e)),
            }
        }
        if fresh {
            fsutil::write_atomic(&marker, OCI_LAYOUT_MARKER)?;
        }
        Ok(LayoutWriter { root, entries })
    }

    /// The path a blob is (or will be) stored at.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        blob_path(&self.root, digest)
    }

    /// True when the blob is already present (as a regular file: a link there is replaced
    /// when the blob is written).
    pub fn has_blob(&self, digest: &Digest) -> bool {
        std::fs::symlink_metadata(self.blob_path(digest)).is_ok_and(|m| m.file_type().is_file())
    }

    /// Stores `bytes` as blob `digest` (checked first).
    pub fn put_blob(&self, digest: &Digest, bytes: &[u8]) -> Result<(), Error> {
        check_bytes(bytes, digest, u64::MAX, &format!("blob {digest}"))?;
        fsutil::write_atomic(&self.blob_path(digest), bytes)
    }

    /// Lists `manifest` in `index.json`, named `name` when given (a name listed before is
    /// moved to this manifest).
    pub fn add_entry(
        &mut self,
        manifest: &Manifest,
        name: Option<&str>,
        artifact_type: Option<&str>,
    ) -> Result<(), Error> {
        self.put_blob(&manifest.digest, &manifest.bytes)?;
        let digest = manifest.digest.to_string();
        if let Some(n) = name {
            self.entries.retain(|e| {
                e.get("annotations")
                    .and_then(|a| a.get(REF_NAME))
                    .and_then(|x| x.as_str())
                    != Some(n)
            });
        } else if self.entries.iter().any(|e| {
            e.get("digest").and_then(|d| d.as_str()) == Some(digest.as_str())
                && e.get("annotations").and_then(|a| a.get(REF_NAME)).is_none()
        }) {
            return Ok(());
        }
        let mut d = serde_json::json!({
            "mediaType": manifest.media_type,
            "digest": digest,
            "size": manifest.bytes.len(),
        });
        if let Some(at) = artifact_type {
            d["artifactType"] = serde_json::Value::String(at.to_owned());
        }
        if let Some(n) = name {
            d["annotations"] = serde_json::json!({ REF_NAME: n });
        }
        self.entries.push(d);
        Ok(())
    }

    /// Writes `index.json` (atomically) with the entries so far; the writer stays usable.
    pub fn write_index(&self) -> Result<(), Error> {
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": self.entries,
        });
        let bytes =
            serde_json::to_vec_pretty(&index).map_err(|e| Error::malformed("index.json", e))?;
        fsutil::write_atomic(&self.root.join("index.json"), &bytes)
    }

    /// Writes `index.json` (atomically) and returns the layout folder.
    pub fn finish(self) -> Result<PathBuf, Error> {
        self.write_index()?;
        Ok(self.root)
    }
}
