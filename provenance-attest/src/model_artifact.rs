//! Models stored as OCI artifacts, checked against an OpenSSF model-signing manifest without
//! reading the model's bytes.
//!
//! A model artifact is an OCI image manifest with **one layer per file**: the layer blob is the
//! file's bytes, uncompressed, and the file's POSIX path relative to the model root is in the
//! layer annotation `org.opencontainers.image.title` (what ORAS writes) or
//! `org.cncf.model.filepath` (CNCF ModelPack); when both are present they must agree.
//!
//! Why the blobs need not be read: a layer's digest is the SHA-256 of its blob, and the
//! manifest that lists it is itself pinned by its digest. A model-signing `files` manifest
//! with `sha256` names each file's SHA-256. So "file `p` has signed digest `d`" and "the layer
//! titled `p` has digest `d`" are the same statement, and comparing the signed resources with
//! the layers (title → layer digest) proves what a runtime that mounts each blob as the file
//! named by its title will see. This holds only when:
//!
//! - the layer blob *is* the file: archive or compressed layers (`...tar`, `+gzip`, `+zstd`,
//!   ORAS's `io.deis.oras.content.unpack` folders) are unpacked by the consumer into files
//!   whose digests the manifest does not carry, so they are refused
//!   ([`LayerIssue::NeedsBlobs`]);
//! - the signature uses the `files` serialization with `sha256`: `shards` digests cover byte
//!   ranges and `blake2` digests are another hash, neither of which a layer digest states
//!   ([`LayerIssue::NeedsBlobs`]);
//! - layer digests are `sha256` (a `sha512` layer digest says nothing about the SHA-256).
//!
//! Everything here is pure: [`artifact_files`] reads layer descriptors, [`compare`] matches
//! them with a manifest. `provenance-oci` (`model::verify_oci_model`) and the `verifyImages`
//! extension of `provenance-policy` both use it.

use std::collections::{BTreeMap, BTreeSet};

use crate::modelsigning::ModelSigningManifest;

/// The layer annotation ORAS writes with a file's name (and the OCI annotation for a title).
pub const ANNOTATION_TITLE: &str = "org.opencontainers.image.title";
/// The layer annotation CNCF ModelPack writes with a file's path.
pub const ANNOTATION_MODELPACK_FILEPATH: &str = "org.cncf.model.filepath";
/// ORAS's annotation on a layer holding a packed folder (a tar, unpacked on pull).
pub const ANNOTATION_ORAS_UNPACK: &str = "io.deis.oras.content.unpack";
/// CNCF ModelPack's artifact type of a model manifest.
pub const MODELPACK_ARTIFACT_TYPE: &str = "application/vnd.cncf.model.manifest.v1+json";
/// CNCF ModelPack's media type of the model config.
pub const MODELPACK_CONFIG: &str = "application/vnd.cncf.model.config.v1+json";
/// CNCF ModelPack's media type of an uncompressed, unarchived weight file.
pub const MODELPACK_WEIGHT_RAW: &str = "application/vnd.cncf.model.weight.v1.raw";
/// The git paths model-signing ignores by default.
pub const GIT_PATHS: [&str; 4] = [".git", ".gitattributes", ".github", ".gitignore"];

/// One layer descriptor of a model artifact, as the manifest states it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactLayer {
    /// The layer's media type.
    pub media_type: String,
    /// The layer digest (`sha256:<hex>`).
    pub digest: String,
    /// The layer size in bytes.
    pub size: u64,
    /// The layer annotations.
    pub annotations: BTreeMap<String, String>,
}

/// A file of a model artifact: its path and the SHA-256 of its bytes (the layer digest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactFile {
    /// POSIX path relative to the model root.
    pub path: String,
    /// Lowercase hex SHA-256 of the file.
    pub sha256: String,
    /// Size in bytes (from the descriptor).
    pub size: u64,
}

/// Why a model artifact cannot be compared with a signed manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LayerIssue {
    /// A layer is not a file of a model artifact (no path annotation, a path that is not a
    /// plain relative path, two layers with one path, conflicting path annotations).
    Malformed {
        /// The layer digest.
        layer: String,
        /// What is wrong.
        message: String,
    },
    /// The check cannot be made from the manifest alone: it would need the layer bytes
    /// (archive or compressed layers, a non-SHA-256 layer digest, a `shards` or non-SHA-256
    /// signature). Refused rather than half-checked.
    NeedsBlobs {
        /// What needs the bytes.
        message: String,
    },
}

impl std::fmt::Display for LayerIssue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LayerIssue::Malformed { layer, message } => write!(f, "layer {layer}: {message}"),
            LayerIssue::NeedsBlobs { message } => write!(
                f,
                "cannot be verified from the manifest alone (the layer bytes would be needed): {message}"
            ),
        }
    }
}

/// What differs between the signed resources and the artifact's files.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FileDiff {
    /// Paths in both whose digests differ, in model-signing path order.
    pub changed: Vec<String>,
    /// Paths the signature names that no layer carries.
    pub missing: Vec<String>,
    /// Layer paths the signature does not name (and does not ignore).
    pub extra: Vec<String>,
}

impl FileDiff {
    /// True when nothing differs.
    pub fn is_empty(&self) -> bool {
        self.changed.is_empty() && self.missing.is_empty() && self.extra.is_empty()
    }
}

/// model-signing's path order (Python `PurePosixPath`: component by component).
pub fn path_order(a: &str, b: &str) -> std::cmp::Ordering {
    a.split('/').cmp(b.split('/'))
}

fn clip(s: &str) -> String {
    s.chars().take(256).collect()
}

/// Why `path` is not a plain relative POSIX path, if it is not.
pub fn unsafe_path_reason(path: &str) -> Option<&'static str> {
    if path.is_empty() {
        return Some("empty path");
    }
    if path.starts_with('/') {
        return Some("absolute path");
    }
    if path.contains('\0') || path.contains('\\') {
        return Some("NUL or backslash in path");
    }
    for c in path.split('/') {
        match c {
            "" => return Some("empty path component"),
            "." | ".." => return Some("`.` or `..` component"),
            _ => {}
        }
    }
    None
}

/// True for a media type (or annotations) saying the blob is an archive or compressed: what a
/// consumer unpacks is then not the blob.
fn packed(layer: &ArtifactLayer) -> bool {
    let mt = layer.media_type.to_ascii_lowercase();
    let base = mt.split(';').next().unwrap_or_default().trim();
    let packed_type = [
        "tar", "gzip", "zstd", "zip", "bzip2", "xz", "lz4", "squashfs",
    ]
    .iter()
    .any(|w| base.split(['.', '+', '/', '-']).any(|part| part == *w))
        || base.starts_with("application/vnd.docker.image.rootfs");
    packed_type
        || layer
            .annotations
            .get(ANNOTATION_ORAS_UNPACK)
            .is_some_and(|v| v == "true")
}

/// Reads the files of a model artifact from its layer descriptors: each layer's path (from
/// [`ANNOTATION_TITLE`] or [`ANNOTATION_MODELPACK_FILEPATH`]) and digest. Fails on a layer
/// without a path, an unsafe or duplicate path, an archive or compressed layer, or a
/// non-SHA-256 layer digest.
pub fn artifact_files(layers: &[ArtifactLayer]) -> Result<Vec<ArtifactFile>, LayerIssue> {
    let mut out = Vec::with_capacity(layers.len());
    let mut seen = BTreeSet::new();
    for l in layers {
        let malformed = |message: String| LayerIssue::Malformed {
            layer: clip(&l.digest),
            message,
        };
        let title = l.annotations.get(ANNOTATION_TITLE);
        let filepath = l.annotations.get(ANNOTATION_MODELPACK_FILEPATH);
        let path = match (title, filepath) {
            (Some(t), Some(f)) if t != f => {
                return Err(malformed(format!(
                    "{ANNOTATION_TITLE} {:?} and {ANNOTATION_MODELPACK_FILEPATH} {:?} disagree",
                    clip(t),
                    clip(f)
                )));
            }
            (Some(p), _) | (None, Some(p)) => p.clone(),
            (None, None) => {
                return Err(malformed(format!(
                    "no {ANNOTATION_TITLE} or {ANNOTATION_MODELPACK_FILEPATH} annotation naming its file"
                )));
            }
        };
        if let Some(reason) = unsafe_path_reason(&path) {
            return Err(malformed(format!("path {:?}: {reason}", clip(&path))));
        }
        if packed(l) {
            return Err(LayerIssue::NeedsBlobs {
                message: format!(
                    "layer {:?} ({}) is an archive or compressed (media type {:?}); push each file as an uncompressed raw layer",
                    clip(&path),
                    clip(&l.digest),
                    clip(&l.media_type)
                ),
            });
        }
        let Some(hex) = l.digest.strip_prefix("sha256:") else {
            return Err(LayerIssue::NeedsBlobs {
                message: format!(
                    "layer {:?} has digest {} (not sha256)",
                    clip(&path),
                    clip(&l.digest)
                ),
            });
        };
        if hex.len() != 64
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(malformed(format!(
                "digest {:?} is not sha256:<hex>",
                clip(&l.digest)
            )));
        }
        if !seen.insert(path.clone()) {
            return Err(malformed(format!(
                "a second layer for path {:?}",
                clip(&path)
            )));
        }
        out.push(ArtifactFile {
            path,
            sha256: hex.to_owned(),
            size: l.size,
        });
    }
    out.sort_by(|a, b| path_order(&a.path, &b.path));
    Ok(out)
}

/// Which paths a comparison leaves out: a path is ignored when it is, or lies under, one of
/// them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ignored(Vec<Vec<String>>);

impl Ignored {
    /// The ignore set for the layers of a model artifact: only the caller's `extra` paths,
    /// and the git paths when `git_paths` (off unless the caller's policy says so).
    ///
    /// Unlike a folder ([`Ignored::for_manifest`]), the signed `ignore_paths` are not
    /// applied: they say what the signer left out of a folder on disk (model-signing records
    /// the git paths there by default), but every layer of an artifact is delivered to whoever
    /// pulls or mounts it, so a layer the signature does not name (an added `.git/config` or
    /// `.gitattributes`) is an extra file.
    pub fn for_layers(extra: &[String], git_paths: bool) -> Self {
        let mut all: Vec<String> = extra.to_vec();
        if git_paths {
            all.extend(GIT_PATHS.iter().map(|s| (*s).to_owned()));
        }
        Self::of(&all)
    }

    /// The ignore set model-signing applies when verifying a folder: the caller's `extra`
    /// paths, the signed `ignore_paths` of `manifest`, and the git paths when `git_paths`.
    /// For an artifact's layers use [`Ignored::for_layers`].
    pub fn for_manifest(
        manifest: &ModelSigningManifest,
        extra: &[String],
        git_paths: bool,
    ) -> Self {
        let mut all: Vec<String> = extra.to_vec();
        all.extend(manifest.serialization.ignore_paths.iter().cloned());
        if git_paths {
            all.extend(GIT_PATHS.iter().map(|s| (*s).to_owned()));
        }
        Self::of(&all)
    }

    fn of(all: &[String]) -> Self {
        Ignored(
            all.iter()
                .map(|p| {
                    p.trim_matches('/')
                        .split('/')
                        .filter(|c| !c.is_empty() && *c != ".")
                        .map(str::to_owned)
                        .collect::<Vec<_>>()
                })
                .filter(|v| !v.is_empty())
                .collect(),
        )
    }

    /// True when `path` is, or lies under, an ignored path.
    pub fn ignores(&self, path: &str) -> bool {
        let parts: Vec<&str> = path.split('/').collect();
        self.0
            .iter()
            .any(|ig| ig.len() <= parts.len() && ig.iter().zip(&parts).all(|(a, b)| a == b))
    }
}

/// Compares a signed manifest with an artifact's files: every signed resource must be a layer
/// with that path and digest, and every layer (not ignored) must be a signed resource. Only
/// the `files` serialization with `sha256` can be compared this way
/// ([`LayerIssue::NeedsBlobs`] otherwise).
pub fn compare(
    manifest: &ModelSigningManifest,
    files: &[ArtifactFile],
    ignored: &Ignored,
) -> Result<FileDiff, LayerIssue> {
    let s = &manifest.serialization;
    if s.method != "files" {
        return Err(LayerIssue::NeedsBlobs {
            message: format!(
                "the signature uses the {:?} serialization; only \"files\" digests are layer digests",
                clip(&s.method)
            ),
        });
    }
    if s.hash_type != "sha256" {
        return Err(LayerIssue::NeedsBlobs {
            message: format!(
                "the signature hashes files with {:?}; layer digests are sha256",
                clip(&s.hash_type)
            ),
        });
    }
    let mut want: BTreeMap<&str, String> = BTreeMap::new();
    for r in &manifest.resources {
        if r.algorithm != "sha256" {
            return Err(LayerIssue::NeedsBlobs {
                message: format!(
                    "resource {:?} is hashed with {:?}; layer digests are sha256",
                    clip(&r.name),
                    clip(&r.algorithm)
                ),
            });
        }
        if let Some(reason) = unsafe_path_reason(&r.name) {
            return Err(LayerIssue::Malformed {
                layer: "(signed manifest)".into(),
                message: format!("signed resource {:?}: {reason}", clip(&r.name)),
            });
        }
        if want
            .insert(r.name.as_str(), r.digest.to_ascii_lowercase())
            .is_some()
        {
            return Err(LayerIssue::Malformed {
                layer: "(signed manifest)".into(),
                message: format!("duplicate signed resource {:?}", clip(&r.name)),
            });
        }
    }
    let have: BTreeMap<&str, &str> = files
        .iter()
        .filter(|f| !ignored.ignores(&f.path))
        .map(|f| (f.path.as_str(), f.sha256.as_str()))
        .collect();
    let mut diff = FileDiff::default();
    for (path, d) in &want {
        match have.get(path) {
            None => diff.missing.push((*path).to_owned()),
            Some(h) if *h != d.as_str() => diff.changed.push((*path).to_owned()),
            Some(_) => {}
        }
    }
    for path in have.keys() {
        if !want.contains_key(path) {
            diff.extra.push((*path).to_owned());
        }
    }
    for v in [&mut diff.changed, &mut diff.missing, &mut diff.extra] {
        v.sort_by(|a, b| path_order(a, b));
    }
    Ok(diff)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::modelsigning::{Resource, Serialization};

    fn layer(title: &str, hex: char, mt: &str) -> ArtifactLayer {
        ArtifactLayer {
            media_type: mt.into(),
            digest: format!("sha256:{}", hex.to_string().repeat(64)),
            size: 1,
            annotations: [(ANNOTATION_TITLE.to_owned(), title.to_owned())].into(),
        }
    }

    fn manifest(res: &[(&str, char)]) -> ModelSigningManifest {
        ModelSigningManifest {
            serialization: Serialization {
                method: "files".into(),
                hash_type: "sha256".into(),
                ..Default::default()
            },
            resources: res
                .iter()
                .map(|(n, h)| Resource {
                    name: (*n).into(),
                    algorithm: "sha256".into(),
                    digest: h.to_string().repeat(64),
                })
                .collect(),
        }
    }

    #[test]
    fn changed_missing_extra_and_ignored() {
        let files = artifact_files(&[
            layer("a/b", 'a', MODELPACK_WEIGHT_RAW),
            layer("c", 'f', "application/octet-stream"),
            layer("new", 'd', "application/octet-stream"),
            layer(".gitignore", 'e', "application/octet-stream"),
        ])
        .unwrap();
        let m = manifest(&[("a/b", 'a'), ("c", 'c'), ("gone", 'b')]);
        let d = compare(&m, &files, &Ignored::for_manifest(&m, &[], true)).unwrap();
        assert_eq!(d.changed, ["c"]);
        assert_eq!(d.missing, ["gone"]);
        assert_eq!(d.extra, ["new"]);
        let d = compare(&m, &files, &Ignored::for_manifest(&m, &[], false)).unwrap();
        assert_eq!(d.extra, [".gitignore", "new"]);
    }

    #[test]
    fn refusals() {
        let tar = layer("w", 'a', "application/vnd.oci.image.layer.v1.tar+gzip");
        assert!(matches!(
            artifact_files(&[tar]),
            Err(LayerIssue::NeedsBlobs { .. })
        ));
        let tar = layer("w", 'a', "application/vnd.cncf.model.weight.v1.tar");
        assert!(matches!(
            artifact_files(&[tar]),
            Err(LayerIssue::NeedsBlobs { .. })
        ));
        let mut unpack = layer("w", 'a', "application/octet-stream");
        unpack
            .annotations
            .insert(ANNOTATION_ORAS_UNPACK.into(), "true".into());
        assert!(matches!(
            artifact_files(&[unpack]),
            Err(LayerIssue::NeedsBlobs { .. })
        ));
        for bad in ["../x", "/etc/passwd", "a//b", "a\\b", ""] {
            assert!(
                matches!(
                    artifact_files(&[layer(bad, 'a', MODELPACK_WEIGHT_RAW)]),
                    Err(LayerIssue::Malformed { .. })
                ),
                "{bad}"
            );
        }
        let mut none = layer("x", 'a', MODELPACK_WEIGHT_RAW);
        none.annotations.clear();
        assert!(matches!(
            artifact_files(&[none]),
            Err(LayerIssue::Malformed { .. })
        ));
        let dup = [
            layer("x", 'a', MODELPACK_WEIGHT_RAW),
            layer("x", 'b', MODELPACK_WEIGHT_RAW),
        ];
        assert!(matches!(
            artifact_files(&dup),
            Err(LayerIssue::Malformed { .. })
        ));
        let mut conflict = layer("x", 'a', MODELPACK_WEIGHT_RAW);
        conflict
            .annotations
            .insert(ANNOTATION_MODELPACK_FILEPATH.into(), "y".into());
        assert!(matches!(
            artifact_files(&[conflict]),
            Err(LayerIssue::Malformed { .. })
        ));
        let mut sha512 = layer("x", 'a', MODELPACK_WEIGHT_RAW);
        sha512.digest = format!("sha512:{}", "a".repeat(128));
        assert!(matches!(
            artifact_files(&[sha512]),
            Err(LayerIssue::NeedsBlobs { .. })
        ));
        let mut shards = manifest(&[]);
        shards.serialization.method = "shards".into();
        assert!(matches!(
            compare(&shards, &[], &Ignored::default()),
            Err(LayerIssue::NeedsBlobs { .. })
        ));
        let mut blake = manifest(&[]);
        blake.serialization.hash_type = "blake2b".into();
        assert!(matches!(
            compare(&blake, &[], &Ignored::default()),
            Err(LayerIssue::NeedsBlobs { .. })
        ));
        // ModelPack raw and other plain types are files.
        for mt in [
            MODELPACK_WEIGHT_RAW,
            "application/vnd.cncf.model.doc.v1.raw",
            "application/octet-stream",
        ] {
            assert!(artifact_files(&[layer("x", 'a', mt)]).is_ok(), "{mt}");
        }
    }
}
