//! The OCI layout source against a real `cosign save`-style layout from the shared corpora
//! (`predicates/oci-cosign-layout`, read in place), plus tampering and limits on copies.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::path::PathBuf;

use provenance_core::{Digest, ImageReference};
use provenance_oci::{EvidenceSource, LayoutSource, Limits, Platform};

const IMAGE_INDEX: &str = "sha256:e0a0a765d690a5104331cfbac88ebbbf01736c1f87aaa3cd455c516a5ea586a5";
const AMD64: &str = "sha256:ae01bed04d3f41efa80182824a50345cd1430f4d1a9308eda4369122bd94c85e";
const ENVELOPE: &str = "sha256:20b16d5835eceaa7b9dbb7e4fdf4db52a8b9159c1416dd73e54cade07e838917";

fn corpus() -> Option<PathBuf> {
    let Some(shared) = common::shared_dir() else {
        if std::env::var_os("CI").is_some() {
            panic!("../shared/corpora is missing");
        }
        eprintln!("SKIPPED: ../shared not found");
        return None;
    };
    Some(shared.join("corpora/predicates/oci-cosign-layout/layout"))
}

fn image() -> ImageReference {
    ImageReference::parse(&format!("ghcr.io/slsa-framework/example@{IMAGE_INDEX}")).unwrap()
}

#[tokio::test]
async fn cosign_layout_attestation_is_found() {
    let Some(dir) = corpus() else { return };
    let layout = LayoutSource::open(&dir).unwrap();
    let img = image();
    let d = layout.resolve(&img).await.unwrap();
    assert_eq!(d.to_string(), IMAGE_INDEX);
    let m = layout.manifest(&img).await.unwrap();
    assert!(m.is_index());

    let mut p = Platform::default();
    p.set_os("linux".into());
    p.set_architecture("amd64".into());
    let pm = layout.platform_manifest(&img, &d, &p).await.unwrap();
    assert_eq!(pm.digest.to_string(), AMD64);

    let atts = layout.attestations(&img, &d, None).await.unwrap();
    assert_eq!(atts.len(), 1);
    let a = &atts[0];
    assert_eq!(a.digest.to_string(), ENVELOPE);
    assert_eq!(a.media_type, "application/vnd.dsse.envelope.v1+json");
    assert_eq!(
        a.predicate_type.as_deref(),
        Some("https://slsa.dev/provenance/v0.2")
    );
    assert!(
        a.annotations
            .contains_key("dev.sigstore.cosign/certificate")
    );
    assert!(a.annotations.contains_key("dev.sigstore.cosign/bundle"));
    let env: serde_json::Value = serde_json::from_slice(&a.envelope).unwrap();
    assert_eq!(env["payloadType"], "application/vnd.in-toto+json");

    // No signatures were saved in this layout; no SBOMs either.
    assert!(layout.signatures(&img, &d, None).await.unwrap().is_empty());
    assert!(layout.sboms(&img, &d, None).await.unwrap().is_empty());
    // The attestations belong to that image only.
    let other = Digest::sha256_of(b"other");
    assert!(
        layout
            .attestations(&img, &other, None)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn missing_and_unknown_content() {
    let Some(dir) = corpus() else { return };
    let layout = LayoutSource::open(&dir).unwrap();
    let img = image();
    let e = layout
        .resolve(&ImageReference::parse("example.com/x:latest").unwrap())
        .await
        .unwrap_err();
    assert_eq!(e.code(), "oci.not_found");
    // Layer blobs were not copied into the corpus: fetching one is not-found, not a pass.
    let amd = layout
        .manifest_at(&img, &Digest::parse(AMD64).unwrap())
        .await
        .unwrap()
        .image()
        .unwrap();
    let layer = Digest::parse(amd.layers()[0].digest().as_ref()).unwrap();
    let e = layout.blob(&img, &layer, 1 << 20).await.unwrap_err();
    assert_eq!(e.code(), "oci.not_found");
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let t = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &t);
        } else {
            std::fs::copy(e.path(), t).unwrap();
        }
    }
}

#[tokio::test]
async fn tampered_blob_and_limits() {
    let Some(dir) = corpus() else { return };
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&dir, tmp.path());
    let env_path = tmp
        .path()
        .join("blobs/sha256")
        .join(ENVELOPE.trim_start_matches("sha256:"));
    let mut bytes = std::fs::read(&env_path).unwrap();
    bytes[20] ^= 1;
    std::fs::write(&env_path, bytes).unwrap();
    let layout = LayoutSource::open(tmp.path()).unwrap();
    let img = image();
    let d = Digest::parse(IMAGE_INDEX).unwrap();
    // A blob whose bytes do not match its digest is not evidence: left out (the image then
    // has no attestation and fails), never a truncated or substituted payload.
    assert!(
        layout
            .attestations(&img, &d, None)
            .await
            .unwrap()
            .is_empty(),
        "the tampered envelope is left out"
    );

    let small = LayoutSource::open_with_limits(
        &dir,
        Limits {
            max_blob_bytes: 1000,
            ..Limits::default()
        },
    )
    .unwrap();
    assert!(
        small.attestations(&img, &d, None).await.unwrap().is_empty(),
        "an envelope over the blob limit is left out"
    );
}

#[tokio::test]
async fn not_a_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let e = LayoutSource::open(tmp.path()).unwrap_err();
    assert_eq!(e.code(), "oci.not_found");
    std::fs::write(
        tmp.path().join("oci-layout"),
        br#"{"imageLayoutVersion":"2.0"}"#,
    )
    .unwrap();
    let e = LayoutSource::open(tmp.path()).unwrap_err();
    assert_eq!(e.code(), "oci.malformed");
}

#[tokio::test]
async fn layout_referrers_through_a_tag_schema_index() {
    use provenance_core::DigestAlgorithm;
    use provenance_oci::{LayoutWriter, Manifest, ReferrersOrigin};
    let tmp = tempfile::tempdir().unwrap();
    let mut w = LayoutWriter::create(tmp.path()).unwrap();
    let subject = Digest::sha256_of(b"some image manifest");
    let empty = Digest::sha256_of(b"{}");
    w.put_blob(&empty, b"{}").unwrap();
    let referrer = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/x-test",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty.to_string(), "size": 2},
        "layers": [],
        "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": subject.to_string(), "size": 19},
    }))
    .unwrap();
    let rd = Digest::sha256_of(&referrer);
    // The referrer manifest is stored but not listed in index.json...
    w.put_blob(&rd, &referrer).unwrap();
    // ...only the tag-schema index is.
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": rd.to_string(), "size": referrer.len(),
                       "artifactType": "application/x-test"}],
    }))
    .unwrap();
    let index = Manifest::from_bytes(index, DigestAlgorithm::Sha256, None).unwrap();
    w.add_entry(&index, Some(&format!("sha256-{}", subject.hex())), None)
        .unwrap();
    w.finish().unwrap();

    let layout = LayoutSource::open(tmp.path()).unwrap();
    let img = ImageReference::parse("example.com/a/b").unwrap();
    let r = layout.referrers(&img, &subject, None).await.unwrap();
    assert_eq!(r.origin, ReferrersOrigin::TagSchema);
    assert_eq!(r.items.len(), 1);
    assert_eq!(r.items[0].digest, rd);
    assert!(
        layout
            .referrers(&img, &subject, Some("application/x-other"))
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

/// A layout whose attached (`.att`) manifest is not served until the referrers listing has
/// been asked for: discovery that looked the two up one after the other would never finish.
struct ListingFirst {
    inner: LayoutSource,
    listed: tokio::sync::Semaphore,
}

impl EvidenceSource for ListingFirst {
    async fn resolve(&self, image: &ImageReference) -> Result<Digest, provenance_oci::Error> {
        self.inner.resolve(image).await
    }

    async fn manifest(
        &self,
        image: &ImageReference,
    ) -> Result<provenance_oci::Manifest, provenance_oci::Error> {
        if image.tag().is_some_and(|t| t.ends_with(".att")) {
            let _permit = self.listed.acquire().await.unwrap();
        }
        self.inner.manifest(image).await
    }

    async fn blob(
        &self,
        image: &ImageReference,
        digest: &Digest,
        limit: u64,
    ) -> Result<Vec<u8>, provenance_oci::Error> {
        self.inner.blob(image, digest, limit).await
    }

    async fn blob_to_file(
        &self,
        image: &ImageReference,
        digest: &Digest,
        limit: u64,
        dest: &std::path::Path,
    ) -> Result<(), provenance_oci::Error> {
        self.inner.blob_to_file(image, digest, limit, dest).await
    }

    async fn referrers_api(
        &self,
        image: &ImageReference,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Option<provenance_oci::Referrers>, provenance_oci::Error> {
        self.listed.add_permits(1);
        self.inner
            .referrers_api(image, subject, artifact_type)
            .await
    }

    fn limits(&self) -> Limits {
        self.inner.limits()
    }
}

#[tokio::test]
async fn attached_layers_and_the_referrers_listing_are_looked_up_at_once() {
    let Some(dir) = corpus() else { return };
    let src = ListingFirst {
        inner: LayoutSource::open(&dir).unwrap(),
        listed: tokio::sync::Semaphore::new(0),
    };
    let img = image();
    let d = src.resolve(&img).await.unwrap();
    // A cold lookup against a far registry waits for the longer of the two chains, not their
    // sum; the timeout only stops a test that would otherwise hang.
    let atts = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        src.attestations(&img, &d, None),
    )
    .await
    .expect("the attached manifest was asked for only after the referrers listing")
    .unwrap();
    assert_eq!(atts.len(), 1);
    assert_eq!(atts[0].digest.to_string(), ENVELOPE);
}
