//! Signing and attesting images, into a registry or an OCI layout folder, in the formats the
//! verifiers read ([`EvidenceSource::signatures`] / [`EvidenceSource::attestations`], cosign,
//! Kyverno):
//!
//! - [`sign_image`]: cosign's legacy signature, a simple-signing payload layer in the
//!   `<alg>-<hex>.sig` manifest, signed in the `dev.cosignproject.cosign/signature`
//!   annotation (certificate signers add `dev.sigstore.cosign/certificate` and `.../chain`);
//! - [`attest_image`]: a DSSE envelope over an in-toto Statement about the image, as a layer of
//!   the `<alg>-<hex>.att` manifest with the `predicateType` annotation;
//! - [`attach_signature_from_bundle`] / [`attach_attestation_from_bundle`]: the same `.sig` and
//!   `.att` layers made from a Sigstore bundle that carries transparency evidence (a keyless
//!   or Rekor-logged bundle from [`crate::keyless::KeylessSigner`]): the certificate, the
//!   Rekor SET (`dev.sigstore.cosign/bundle`) and the RFC 3161 timestamp become cosign's
//!   annotations, as `cosign sign` / `cosign attest` write them with the log upload;
//! - [`attach_sbom`]: the `<alg>-<hex>.sbom` manifest (`cosign attach sbom`);
//! - [`sign_image_bundle`] / [`attest_image_bundle`]: cosign 3's Sigstore bundle referrers
//!   (artifact type `application/vnd.dev.sigstore.bundle.v0.3+json`, `subject` = the image):
//!   a signature is a DSSE envelope over cosign's signing Statement
//!   ([`cosign_sign_statement`], predicate type `https://sigstore.dev/cosign/sign/v1`), an
//!   attestation a DSSE envelope over the user's Statement; the referrers tag index
//!   (`<alg>-<hex>`) is updated when the target has no referrers API (docs/interop-cosign3.md).
//!
//! Existing signatures and attestations are kept: a new layer is appended to the tag's
//! manifest (an identical layer is not added twice). Targets implement [`Publisher`]:
//! [`RegistryClient`] and [`LayoutPublisher`].

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use provenance_core::sign::{Signer, SignerMaterial, bundle, simple_signing_payload};
use provenance_core::verify::{
    ANNOTATION_BUNDLE, ANNOTATION_CERTIFICATE, ANNOTATION_CHAIN, ANNOTATION_RFC3161_TIMESTAMP,
    ANNOTATION_SIGNATURE, SIMPLE_SIGNING_MEDIA_TYPE,
};
use provenance_core::{Digest, DigestAlgorithm, ImageReference};
use serde_json::{Value, json};

use crate::cosign::{AttachedKind, attached_reference};
use crate::error::{Error, SigningStep};
use crate::layout::{LayoutSource, LayoutWriter};
use crate::registry::RegistryClient;
use crate::source::{EvidenceSource, repo_of};
use crate::types::{
    ANNOTATION_PREDICATE_TYPE, DSSE_ENVELOPE, Limits, Manifest, OCI_INDEX, OCI_MANIFEST,
    ParsedManifest, Referrers, SIGSTORE_BUNDLE_V03,
};

/// Media type of the OCI empty descriptor (`{}`), the config of artifact manifests.
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// Annotation of a bundle referrer naming its content (`message-signature`, `dsse-envelope`).
pub const ANNOTATION_BUNDLE_CONTENT: &str = "dev.sigstore.bundle.content";
/// Annotation of a bundle referrer naming the predicate type of its attestation.
pub const ANNOTATION_BUNDLE_PREDICATE_TYPE: &str = "dev.sigstore.bundle.predicateType";
/// Annotation of a bundle referrer with its creation time (RFC 3339, UTC, whole seconds).
pub const ANNOTATION_CREATED: &str = "org.opencontainers.image.created";
/// The in-toto Statement type cosign 3 signs (in-toto v1).
pub const IN_TOTO_STATEMENT_V1: &str = "https://in-toto.io/Statement/v1";
/// The DSSE payload type of an in-toto Statement.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// A place signatures can be written to (and read back from, to append).
pub trait Publisher: EvidenceSource {
    /// Stores blob `digest` (`bytes`) in `image`'s repository.
    fn push_blob(
        &self,
        image: &ImageReference,
        digest: &Digest,
        bytes: &[u8],
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Stores `manifest` under `target`'s tag, or by digest when `target` has no tag.
    fn push_manifest(
        &self,
        target: &ImageReference,
        manifest: &Manifest,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Whether the target maintains referrers listings itself (an OCI 1.1 referrers API, or a
    /// layout indexing `subject`s); if not, the referrers tag index is written.
    fn indexes_referrers(
        &self,
        image: &ImageReference,
        subject: &Digest,
    ) -> impl Future<Output = Result<bool, Error>> + Send {
        async move { Ok(self.referrers_api(image, subject, None).await?.is_some()) }
    }
}

impl Publisher for RegistryClient {
    async fn push_blob(
        &self,
        image: &ImageReference,
        digest: &Digest,
        bytes: &[u8],
    ) -> Result<(), Error> {
        RegistryClient::push_blob(self, image, digest, bytes).await
    }

    async fn push_manifest(
        &self,
        target: &ImageReference,
        manifest: &Manifest,
    ) -> Result<(), Error> {
        RegistryClient::push_manifest(self, target, manifest).await
    }
}

/// An OCI image layout folder to write signatures into (created if missing). Names are
/// written as full references (`registry/repo:sha256-<hex>.sig`), as [`crate::export()`]
/// writes them; referrer manifests are listed in `index.json` without a name (a
/// [`LayoutSource`] finds them by their `subject`).
#[derive(Debug)]
pub struct LayoutPublisher {
    root: PathBuf,
    writer: std::sync::Mutex<LayoutWriter>,
    limits: Limits,
}

impl LayoutPublisher {
    /// Opens (or creates) the layout at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, Error> {
        let root = root.into();
        let fresh = !root.join("index.json").exists();
        let writer = LayoutWriter::create(&root)?;
        // An existing layout is left byte for byte as it is until something is written.
        if fresh {
            writer.write_index()?;
        }
        Ok(LayoutPublisher {
            root,
            writer: std::sync::Mutex::new(writer),
            limits: Limits::default(),
        })
    }

    /// The layout folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn reader(&self) -> Result<LayoutSource, Error> {
        LayoutSource::open_with_limits(&self.root, self.limits)
    }

    fn with_writer<T>(
        &self,
        f: impl FnOnce(&mut LayoutWriter) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let mut w = match self.writer.lock() {
            Ok(w) => w,
            Err(p) => p.into_inner(),
        };
        f(&mut w)
    }
}

impl EvidenceSource for LayoutPublisher {
    async fn resolve(&self, image: &ImageReference) -> Result<Digest, Error> {
        self.reader()?.resolve(image).await
    }
    async fn manifest(&self, image: &ImageReference) -> Result<Manifest, Error> {
        self.reader()?.manifest(image).await
    }
    async fn blob(
        &self,
        image: &ImageReference,
        digest: &Digest,
        limit: u64,
    ) -> Result<Vec<u8>, Error> {
        self.reader()?.blob(image, digest, limit).await
    }
    async fn blob_to_file(
        &self,
        image: &ImageReference,
        digest: &Digest,
        limit: u64,
        dest: &Path,
    ) -> Result<(), Error> {
        self.reader()?
            .blob_to_file(image, digest, limit, dest)
            .await
    }
    async fn referrers_api(
        &self,
        image: &ImageReference,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Option<Referrers>, Error> {
        self.reader()?
            .referrers_api(image, subject, artifact_type)
            .await
    }
    fn limits(&self) -> Limits {
        self.limits
    }
}

impl Publisher for LayoutPublisher {
    async fn push_blob(
        &self,
        _image: &ImageReference,
        digest: &Digest,
        bytes: &[u8],
    ) -> Result<(), Error> {
        self.with_writer(|w| {
            if w.has_blob(digest) {
                Ok(())
            } else {
                w.put_blob(digest, bytes)
            }
        })
    }

    async fn push_manifest(
        &self,
        target: &ImageReference,
        manifest: &Manifest,
    ) -> Result<(), Error> {
        let name = match (target.tag(), target.digest_str()) {
            (Some(t), None) => Some(format!("{}:{t}", target.name())),
            _ => None,
        };
        self.with_writer(|w| {
            w.add_entry(manifest, name.as_deref(), None)?;
            w.write_index()
        })
    }

    async fn indexes_referrers(
        &self,
        _image: &ImageReference,
        _subject: &Digest,
    ) -> Result<bool, Error> {
        // A layout's index.json lists the referrer manifests; readers find them by subject.
        Ok(true)
    }
}

/// Options of [`sign_image`].
#[derive(Debug, Clone, Default)]
pub struct SignOptions {
    /// `-a key=value` annotations, signed in the payload's `optional` section.
    pub annotations: BTreeMap<String, String>,
    /// Write signatures to this repository instead of the image's (cosign's
    /// `COSIGN_REPOSITORY`).
    pub repository: Option<ImageReference>,
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// Where: the tag (`...:sha256-<hex>.sig`) or the referrer (`...@sha256:...`).
    pub reference: ImageReference,
    /// Digest of the manifest written.
    pub manifest_digest: Digest,
    /// Digest of the layer holding the new signature, attestation, SBOM or bundle.
    pub layer_digest: Digest,
}

fn signing_error(e: provenance_core::Error) -> Error {
    Error::Signing {
        step: SigningStep::Key,
        detail: format!("{e} [{}]", e.code()),
    }
}

fn descriptor(media_type: &str, bytes: &[u8], annotations: &BTreeMap<String, String>) -> Value {
    let mut d = json!({
        "mediaType": media_type,
        "digest": Digest::sha256_of(bytes).to_string(),
        "size": bytes.len(),
    });
    if !annotations.is_empty() {
        d["annotations"] = json!(annotations);
    }
    d
}

fn manifest_of(value: &Value) -> Result<Manifest, Error> {
    let bytes = serde_json::to_vec(value).map_err(|e| Error::malformed("manifest", e))?;
    Manifest::from_bytes(bytes, DigestAlgorithm::Sha256, None)
}

fn cosign_config(layers: &[Value]) -> Vec<u8> {
    let diff_ids: Vec<Value> = layers
        .iter()
        .filter_map(|l| l.get("digest").cloned())
        .collect();
    serde_json::to_vec(&json!({
        "architecture": "",
        "config": {},
        "created": "0001-01-01T00:00:00Z",
        "history": [{ "created": "0001-01-01T00:00:00Z" }],
        "os": "",
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
    }))
    .unwrap_or_default()
}

/// Appends one layer to cosign's `kind` manifest of `digest` (creating it if absent), or
/// replaces its layers when `replace`.
#[allow(clippy::too_many_arguments)]
async fn append_attached<P: Publisher>(
    p: &P,
    image: &ImageReference,
    digest: &Digest,
    kind: AttachedKind,
    repository: Option<&ImageReference>,
    layer_media_type: &str,
    layer: &[u8],
    annotations: &BTreeMap<String, String>,
    replace: bool,
) -> Result<Published, Error> {
    let tagged = attached_reference(image, digest, kind, repository);
    let repo = repo_of(&tagged);
    let new = descriptor(layer_media_type, layer, annotations);
    let mut layers: Vec<Value> = Vec::new();
    if !replace {
        match p.manifest(&tagged).await {
            Ok(m) => {
                let v: Value = serde_json::from_slice(&m.bytes)
                    .map_err(|e| Error::malformed("manifest", e))?;
                if let Some(ls) = v.get("layers").and_then(Value::as_array) {
                    layers = ls.clone();
                }
            }
            Err(Error::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    let layer_digest = Digest::sha256_of(layer);
    if !layers.iter().any(|l| l == &new) {
        layers.push(new);
    }
    p.push_blob(&repo, &layer_digest, layer).await?;
    let config = cosign_config(&layers);
    let config_digest = Digest::sha256_of(&config);
    p.push_blob(&repo, &config_digest, &config).await?;
    let manifest = manifest_of(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest.to_string(),
            "size": config.len(),
        },
        "layers": layers,
    }))?;
    p.push_manifest(&tagged, &manifest).await?;
    Ok(Published {
        reference: tagged,
        manifest_digest: manifest.digest,
        layer_digest,
    })
}

fn certificate_annotations(signer: &dyn Signer, ann: &mut BTreeMap<String, String>) {
    if let SignerMaterial::CertificateChain(chain) = signer.material()
        && let Some((leaf, rest)) = chain.split_first()
    {
        ann.insert(
            ANNOTATION_CERTIFICATE.to_owned(),
            pem::encode(&pem::Pem::new("CERTIFICATE", leaf.clone())),
        );
        if !rest.is_empty() {
            let chain_pem: String = rest
                .iter()
                .map(|c| pem::encode(&pem::Pem::new("CERTIFICATE", c.clone())))
                .collect();
            ann.insert(ANNOTATION_CHAIN.to_owned(), chain_pem);
        }
    }
}

/// Signs `image` at `digest` as `cosign sign --key ... --tlog-upload=false` does: a
/// simple-signing payload naming the digest, signed by `signer`, appended to the
/// `<alg>-<hex>.sig` manifest.
pub async fn sign_image<P: Publisher>(
    p: &P,
    image: &ImageReference,
    digest: &Digest,
    signer: &dyn Signer,
    options: &SignOptions,
) -> Result<Published, Error> {
    let payload = simple_signing_payload(&image.name(), digest, &options.annotations);
    let signature = signer.sign(&payload).map_err(signing_error)?;
    let mut ann = BTreeMap::new();
    ann.insert(ANNOTATION_SIGNATURE.to_owned(), STANDARD.encode(signature));
    certificate_annotations(signer, &mut ann);
    append_attached(
        p,
        image,
        digest,
        AttachedKind::Signature,
        options.repository.as_ref(),
        SIMPLE_SIGNING_MEDIA_TYPE,
        &payload,
        &ann,
        false,
    )
    .await
}

/// Attests `image` at `digest` as `cosign attest --key ... --tlog-upload=false` does: the
/// in-toto Statement `statement_json` (whose subject must name `digest`) in a DSSE envelope
/// signed by `signer`, appended to the `<alg>-<hex>.att` manifest with the `predicateType`
/// annotation.
pub async fn attest_image<P: Publisher>(
    p: &P,
    image: &ImageReference,
    digest: &Digest,
    signer: &dyn Signer,
    statement_json: &[u8],
    repository: Option<&ImageReference>,
) -> Result<Published, Error> {
    let predicate_type = statement_subject_check(statement_json, digest)?;
    let (envelope, _) = bundle::dsse_envelope(signer, IN_TOTO_PAYLOAD_TYPE, statement_json)
        .map_err(signing_error)?;
    let mut ann = BTreeMap::new();
    certificate_annotations(signer, &mut ann);
    append_attestation(p, image, digest, repository, &envelope, ann, predicate_type).await
}

/// Appends `envelope` (a DSSE envelope) as a layer of cosign's `.att` manifest, with the
/// empty signature and `predicateType` annotations added to `ann`.
async fn append_attestation<P: Publisher>(
    p: &P,
    image: &ImageReference,
    digest: &Digest,
    repository: Option<&ImageReference>,
    envelope: &impl serde::Serialize,
    mut ann: BTreeMap<String, String>,
    predicate_type: String,
) -> Result<Published, Error> {
    let layer = serde_json::to_vec(envelope).map_err(|e| Error::malformed("envelope", e))?;
    ann.insert(ANNOTATION_SIGNATURE.to_owned(), String::new());
    ann.insert(ANNOTATION_PREDICATE_TYPE.to_owned(), predicate_type);
    append_attached(
        p,
        image,
        digest,
        AttachedKind::Attestation,
        repository,
        DSSE_ENVELOPE,
        &layer,
        &ann,
        false,
    )
    .await
}

/// cosign's annotations for the transparency evidence of a Sigstore bundle: the leaf
/// certificate (and `chain`, DER, leaf first, when given: its certificates after the leaf),
/// the first log entry's SET as `dev.sigstore.cosign/bundle`, the first RFC 3161 timestamp.
fn annotations_from_bundle(
    bundle: &Value,
    chain: &[Vec<u8>],
) -> Result<BTreeMap<String, String>, Error> {
    let bad = |m: &str| Error::malformed("Sigstore bundle", m.to_owned());
    let vm = bundle
        .get("verificationMaterial")
        .ok_or_else(|| bad("no verificationMaterial"))?;
    let mut ann = BTreeMap::new();
    let leaf = vm
        .pointer("/certificate/rawBytes")
        .or_else(|| vm.pointer("/x509CertificateChain/certificates/0/rawBytes"))
        .and_then(Value::as_str);
    if let Some(leaf) = leaf {
        let der = STANDARD
            .decode(leaf)
            .map_err(|_| bad("the certificate is not base64"))?;
        ann.insert(
            ANNOTATION_CERTIFICATE.to_owned(),
            pem::encode(&pem::Pem::new("CERTIFICATE", der)),
        );
        if chain.len() > 1 {
            let chain_pem: String = chain[1..]
                .iter()
                .map(|c| pem::encode(&pem::Pem::new("CERTIFICATE", c.clone())))
                .collect();
            ann.insert(ANNOTATION_CHAIN.to_owned(), chain_pem);
        }
    }
    if let Some(e) = vm.pointer("/tlogEntries/0") {
        let field = |ptr: &str| {
            e.pointer(ptr)
                .ok_or_else(|| bad(&format!("log entry without {ptr}")))
        };
        let set = field("/inclusionPromise/signedEntryTimestamp")?;
        let number = |ptr: &str| -> Result<i64, Error> {
            let v = field(ptr)?;
            v.as_i64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                .ok_or_else(|| bad(&format!("log entry {ptr} is not a number")))
        };
        let log_id = field("/logId/keyId")?
            .as_str()
            .and_then(|k| STANDARD.decode(k).ok())
            .ok_or_else(|| bad("log entry logId.keyId is not base64"))?;
        let set = json!({
            "SignedEntryTimestamp": set,
            "Payload": {
                "body": field("/canonicalizedBody")?,
                "integratedTime": number("/integratedTime")?,
                "logIndex": number("/logIndex")?,
                "logID": hex::encode(log_id),
            },
        });
        ann.insert(ANNOTATION_BUNDLE.to_owned(), set.to_string());
    }
    if let Some(ts) = vm
        .pointer("/timestampVerificationData/rfc3161Timestamps/0/signedTimestamp")
        .and_then(Value::as_str)
    {
        ann.insert(
            ANNOTATION_RFC3161_TIMESTAMP.to_owned(),
            json!({ "SignedRFC3161Timestamp": ts }).to_string(),
        );
    }
    Ok(ann)
}

fn parse_bundle_json(bundle_json: &[u8]) -> Result<Value, Error> {
    serde_json::from_slice(bundle_json).map_err(|e| Error::malformed("Sigstore bundle", e))
}

/// Appends cosign's `.sig` layer for `image` at `digest` made from `bundle_json`, a Sigstore
/// bundle whose message signature is over `payload` (a simple-signing payload naming `digest`,
/// see [`provenance_core::sign::simple_signing_payload`]): the signature, the certificate
/// (with the rest of `chain` when given), the Rekor SET and the timestamp as cosign's
/// annotations. Pass bundles that verified (as [`crate::keyless::KeylessSigner`] returns
/// them); the bundle's digest must be the payload's and the payload must name `digest`.
pub async fn attach_signature_from_bundle<P: Publisher>(
    p: &P,
    image: &ImageReference,
    digest: &Digest,
    payload: &[u8],
    bundle_json: &[u8],
    chain: &[Vec<u8>],
    repository: Option<&ImageReference>,
) -> Result<Published, Error> {
    let b = parse_bundle_json(bundle_json)?;
    let bad = |m: String| Error::malformed("Sigstore bundle", m);
    let signed_digest = b
        .pointer("/messageSignature/messageDigest/digest")
        .and_then(Value::as_str)
        .and_then(|d| STANDARD.decode(d).ok())
        .ok_or_else(|| bad("no message signature digest".into()))?;
    if signed_digest != Digest::sha256_of(payload).as_bytes() {
        return Err(bad("the bundle signs another payload".into()));
    }
    let named = serde_json::from_slice::<Value>(payload)
        .ok()
        .and_then(|v| {
            v.pointer("/critical/image/docker-manifest-digest")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_default();
    if named != digest.to_string() {
        return Err(bad(format!(
            "the payload names {named:?}, not the image digest {digest}"
        )));
    }
    let signature = b
        .pointer("/messageSignature/signature")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("no message signature".into()))?;
    let mut ann = annotations_from_bundle(&b, chain)?;
    ann.insert(ANNOTATION_SIGNATURE.to_owned(), signature.to_owned());
    append_attached(
        p,
        image,
        digest,
        AttachedKind::Signature,
        repository,
        SIMPLE_SIGNING_MEDIA_TYPE,
        payload,
        &ann,
        false,
    )
    .await
}

/// Appends cosign's `.att` layer for `image` at `digest` made from `bundle_json`, a Sigstore
/// bundle holding a DSSE envelope over an in-toto Statement whose subject names `digest`: the
/// envelope is the layer; the predicate type, certificate (with the rest of `chain`), Rekor
/// SET and timestamp are cosign's annotations.
pub async fn attach_attestation_from_bundle<P: Publisher>(
    p: &P,
    image: &ImageReference,
    digest: &Digest,
    bundle_json: &[u8],
    chain: &[Vec<u8>],
    repository: Option<&ImageReference>,
) -> Result<Published, Error> {
    let b = parse_bundle_json(bundle_json)?;
    let envelope = b
        .get("dsseEnvelope")
        .ok_or_else(|| Error::malformed("Sigstore bundle", "no DSSE envelope"))?;
    let statement = envelope
        .get("payload")
        .and_then(Value::as_str)
        .and_then(|p| STANDARD.decode(p).ok())
        .ok_or_else(|| Error::malformed("Sigstore bundle", "the envelope has no payload"))?;
    let predicate_type = statement_subject_check(&statement, digest)?;
    let ann = annotations_from_bundle(&b, chain)?;
    append_attestation(p, image, digest, repository, envelope, ann, predicate_type).await
}

/// Writes `bundle_json` (a message signature over the image manifest, or a DSSE envelope over
/// a Statement about the image) as a Sigstore bundle referrer of `image` at `digest`, with
/// the content and predicate-type annotations cosign v3 writes.
pub async fn attach_bundle_referrer<P: Publisher>(
    p: &P,
    image: &ImageReference,
    digest: &Digest,
    bundle_json: &[u8],
) -> Result<Published, Error> {
    attach_bundle_referrer_to(p, image, digest, bundle_json, None).await
}

/// [`attach_bundle_referrer`], writing the referrer (and the referrers tag index) into
/// `repository` when given (cosign's `COSIGN_REPOSITORY`); its `subject` is still the image.
pub async fn attach_bundle_referrer_to<P: Publisher>(
    p: &P,
    image: &ImageReference,
    digest: &Digest,
    bundle_json: &[u8],
    repository: Option<&ImageReference>,
) -> Result<Published, Error> {
    let b = parse_bundle_json(bundle_json)?;
    let subject = p.manifest_at(image, digest).await?;
    let target = repository.unwrap_or(image);
    let mut ann = BTreeMap::new();
    if let Some(envelope) = b.get("dsseEnvelope") {
        let statement = envelope
            .get("payload")
            .and_then(Value::as_str)
            .and_then(|p| STANDARD.decode(p).ok())
            .ok_or_else(|| Error::malformed("Sigstore bundle", "the envelope has no payload"))?;
        let predicate_type = statement_subject_check(&statement, digest)?;
        ann = dsse_referrer_annotations(predicate_type);
    } else {
        let signed = b
            .pointer("/messageSignature/messageDigest/digest")
            .and_then(Value::as_str)
            .and_then(|d| STANDARD.decode(d).ok())
            .unwrap_or_default();
        if signed != Digest::sha256_of(&subject.bytes).as_bytes() {
            return Err(Error::malformed(
                "Sigstore bundle",
                format!("the message signature is not over the manifest of {digest}"),
            ));
        }
        ann.insert(
            ANNOTATION_BUNDLE_CONTENT.to_owned(),
            "message-signature".to_owned(),
        );
    }
    attach_bundle(p, target, &subject, bundle_json, &ann).await
}

/// Removes from cosign's `.att` manifest of `image` at `digest` every layer whose
/// `predicateType` annotation is `predicate_type` (`cosign attest --replace`, run before the
/// new attestation is appended); returns how many were removed. Nothing is written when none
/// matches. Bundle referrers are not touched (a [`Publisher`] writes, it does not delete).
pub async fn remove_attestations<P: Publisher>(
    p: &P,
    image: &ImageReference,
    digest: &Digest,
    predicate_type: &str,
    repository: Option<&ImageReference>,
) -> Result<usize, Error> {
    let tagged = attached_reference(image, digest, AttachedKind::Attestation, repository);
    let m = match p.manifest(&tagged).await {
        Ok(m) => m,
        Err(Error::NotFound { .. }) => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut v: Value =
        serde_json::from_slice(&m.bytes).map_err(|e| Error::malformed("manifest", e))?;
    let layers = v
        .get("layers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let kept: Vec<Value> = layers
        .iter()
        .filter(|l| {
            l.pointer(&format!("/annotations/{ANNOTATION_PREDICATE_TYPE}"))
                .and_then(Value::as_str)
                != Some(predicate_type)
        })
        .cloned()
        .collect();
    let removed = layers.len() - kept.len();
    if removed == 0 {
        return Ok(0);
    }
    let repo = repo_of(&tagged);
    let config = cosign_config(&kept);
    let config_digest = Digest::sha256_of(&config);
    p.push_blob(&repo, &config_digest, &config).await?;
    v["layers"] = Value::Array(kept);
    v["config"] = json!({
        "mediaType": "application/vnd.oci.image.config.v1+json",
        "digest": config_digest.to_string(),
        "size": config.len(),
    });
    p.push_manifest(&tagged, &manifest_of(&v)?).await?;
    Ok(removed)
}

/// The platform manifests of `image` at `digest` when it names an image index (what `cosign
/// sign --recursive` signs besides the index), else an empty list.
pub async fn index_children<P: EvidenceSource>(
    p: &P,
    image: &ImageReference,
    digest: &Digest,
) -> Result<Vec<Digest>, Error> {
    let m = p.manifest_at(image, digest).await?;
    match m.parse()? {
        ParsedManifest::Image(_) => Ok(Vec::new()),
        ParsedManifest::Index(idx) => idx
            .manifests()
            .iter()
            .map(|d| {
                Digest::parse(d.digest().as_ref())
                    .map_err(|e| Error::malformed(format!("index {digest}"), e))
            })
            .collect(),
    }
}

/// The Statement's predicate type, after checking that a subject names `digest`.
fn statement_subject_check(statement_json: &[u8], digest: &Digest) -> Result<String, Error> {
    let limits = provenance_attest::Limits::default();
    let st = provenance_attest::Statement::from_json_with(statement_json, &limits)
        .map_err(|e| Error::malformed("in-toto statement", e))?;
    if !st.matches(digest) {
        return Err(Error::malformed(
            "in-toto statement",
            format!("no subject names the image digest {digest}"),
        ));
    }
    Ok(st.predicate_type)
}

/// Attaches an SBOM as `cosign attach sbom` does: the `<alg>-<hex>.sbom` manifest with one
/// layer of `media_type` (`text/spdx+json`, `application/vnd.cyclonedx+json`), replacing a
/// previous SBOM.
pub async fn attach_sbom<P: Publisher>(
    p: &P,
    image: &ImageReference,
    digest: &Digest,
    sbom: &[u8],
    media_type: &str,
    repository: Option<&ImageReference>,
) -> Result<Published, Error> {
    append_attached(
        p,
        image,
        digest,
        AttachedKind::Sbom,
        repository,
        media_type,
        sbom,
        &BTreeMap::new(),
        true,
    )
    .await
}

/// The in-toto Statement `cosign sign --new-bundle-format` (cosign 3) signs for the image at
/// `digest`: `_type` in-toto v1, one subject holding only the digest (no `name`) and the `-a`
/// `annotations` (an empty object when there are none, as cosign writes it), predicate type
/// `https://sigstore.dev/cosign/sign/v1` and an empty predicate.
pub fn cosign_sign_statement(digest: &Digest, annotations: &BTreeMap<String, String>) -> Vec<u8> {
    let statement = json!({
        "_type": IN_TOTO_STATEMENT_V1,
        "subject": [{
            "digest": { digest.algorithm().to_string(): digest.hex() },
            "annotations": annotations,
        }],
        "predicateType": provenance_core::verify::COSIGN_SIGN_PREDICATE_V1,
        "predicate": {},
    });
    serde_json::to_vec(&statement).unwrap_or_default()
}

/// Signs `image` at `digest` as `cosign sign --new-bundle-format` (cosign 3) does without a
/// log upload: a Sigstore bundle v0.3 holding a DSSE envelope over
/// [`cosign_sign_statement`], written as a referrer of the image ([`attach_bundle`]).
pub async fn sign_image_bundle<P: Publisher>(
    p: &P,
    image: &ImageReference,
    digest: &Digest,
    signer: &dyn Signer,
    options: &bundle::Options,
) -> Result<Published, Error> {
    sign_image_bundle_with(p, image, digest, signer, &SignOptions::default(), options).await
}

/// [`sign_image_bundle`] with cosign's `-a key=value` annotations (`sign.annotations`, which
/// cosign 3 signs as the Statement subject's annotations) and its `COSIGN_REPOSITORY`
/// (`sign.repository`: the referrer, and the referrers tag index, go there).
pub async fn sign_image_bundle_with<P: Publisher>(
    p: &P,
    image: &ImageReference,
    digest: &Digest,
    signer: &dyn Signer,
    sign: &SignOptions,
    options: &bundle::Options,
) -> Result<Published, Error> {
    let statement = cosign_sign_statement(digest, &sign.annotations);
    let subject = p.manifest_at(image, digest).await?;
    let image = sign.repository.as_ref().unwrap_or(image);
    let b = bundle::dsse_with(signer, IN_TOTO_PAYLOAD_TYPE, &statement, options)
        .map_err(signing_error)?;
    attach_bundle(
        p,
        image,
        &subject,
        &b,
        &dsse_referrer_annotations(provenance_core::verify::COSIGN_SIGN_PREDICATE_V1.to_owned()),
    )
    .await
}

/// The annotations cosign 3 gives a bundle referrer holding a DSSE envelope (besides the
/// creation time, which [`attach_bundle`] adds).
fn dsse_referrer_annotations(predicate_type: String) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            ANNOTATION_BUNDLE_CONTENT.to_owned(),
            "dsse-envelope".to_owned(),
        ),
        (ANNOTATION_BUNDLE_PREDICATE_TYPE.to_owned(), predicate_type),
    ])
}

/// Attests `image` at `digest` as a Sigstore bundle referrer holding a DSSE envelope over
/// `statement_json` (whose subject must name `digest`).
pub async fn attest_image_bundle<P: Publisher>(
    p: &P,
    image: &ImageReference,
    digest: &Digest,
    signer: &dyn Signer,
    statement_json: &[u8],
    options: &bundle::Options,
) -> Result<Published, Error> {
    attest_image_bundle_to(p, image, digest, signer, statement_json, options, None).await
}

/// [`attest_image_bundle`], writing the referrer (and the referrers tag index) into
/// `repository` when given (cosign's `COSIGN_REPOSITORY`); its `subject` is still the image.
pub async fn attest_image_bundle_to<P: Publisher>(
    p: &P,
    image: &ImageReference,
    digest: &Digest,
    signer: &dyn Signer,
    statement_json: &[u8],
    options: &bundle::Options,
    repository: Option<&ImageReference>,
) -> Result<Published, Error> {
    let predicate_type = statement_subject_check(statement_json, digest)?;
    let subject = p.manifest_at(image, digest).await?;
    let image = repository.unwrap_or(image);
    let b = bundle::dsse_with(signer, IN_TOTO_PAYLOAD_TYPE, statement_json, options)
        .map_err(signing_error)?;
    attach_bundle(
        p,
        image,
        &subject,
        &b,
        &dsse_referrer_annotations(predicate_type),
    )
    .await
}

/// Writes `bundle_json` as a referrer of `subject`, in the manifest cosign 3 writes
/// (`WriteReferrer`): artifact type `application/vnd.dev.sigstore.bundle.v0.3+json` (on the
/// manifest and on its config descriptor), the empty config `{}`
/// (`application/vnd.oci.empty.v1+json`), one bundle layer, `subject` = the image, and
/// `annotations` plus the creation time (`org.opencontainers.image.created`, now, unless
/// given). Adds it to the referrers tag index when the target does not index referrers itself.
pub async fn attach_bundle<P: Publisher>(
    p: &P,
    image: &ImageReference,
    subject: &Manifest,
    bundle_json: &[u8],
    annotations: &BTreeMap<String, String>,
) -> Result<Published, Error> {
    let repo = repo_of(image);
    let layer_digest = Digest::sha256_of(bundle_json);
    p.push_blob(&repo, &layer_digest, bundle_json).await?;
    let empty = b"{}";
    p.push_blob(&repo, &Digest::sha256_of(empty), empty).await?;
    let mut annotations = annotations.clone();
    annotations
        .entry(ANNOTATION_CREATED.to_owned())
        .or_insert_with(now_rfc3339);
    let mut config = descriptor(OCI_EMPTY, empty, &BTreeMap::new());
    config["artifactType"] = json!(SIGSTORE_BUNDLE_V03);
    let m = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": SIGSTORE_BUNDLE_V03,
        "config": config,
        "layers": [descriptor(SIGSTORE_BUNDLE_V03, bundle_json, &BTreeMap::new())],
        "subject": {
            "mediaType": subject.media_type,
            "digest": subject.digest.to_string(),
            "size": subject.bytes.len(),
        },
        "annotations": annotations,
    });
    let manifest = manifest_of(&m)?;
    let pinned = repo.pinned(&manifest.digest);
    p.push_manifest(&pinned, &manifest).await?;
    if !p.indexes_referrers(&repo, &subject.digest).await? {
        update_referrers_index(p, &repo, &subject.digest, &manifest, &annotations).await?;
    }
    Ok(Published {
        reference: pinned,
        manifest_digest: manifest.digest,
        layer_digest,
    })
}

/// The current time as cosign writes `org.opencontainers.image.created` (RFC 3339, UTC).
fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    provenance_core::UnixTime(secs).to_string()
}

/// Adds `referrer` to the referrers tag index `<alg>-<hex>` of `subject` (OCI 1.1's fallback
/// for registries without the referrers API): its media type, digest, size and artifact type,
/// as cosign's client writes them, and its annotations, as the referrers API would list them.
async fn update_referrers_index<P: Publisher>(
    p: &P,
    repo: &ImageReference,
    subject: &Digest,
    referrer: &Manifest,
    annotations: &BTreeMap<String, String>,
) -> Result<(), Error> {
    let tag = format!("{}-{}", subject.algorithm(), subject.hex());
    let tagged = repo.with_tag(&tag).map_err(|e| Error::InvalidReference {
        input: tag.clone(),
        reason: e.to_string(),
    })?;
    let mut entries: Vec<Value> = match p.manifest(&tagged).await {
        Ok(m) => match m.parse()? {
            ParsedManifest::Index(_) => {
                let v: Value =
                    serde_json::from_slice(&m.bytes).map_err(|e| Error::malformed("index", e))?;
                v.get("manifests")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
            }
            ParsedManifest::Image(_) => {
                return Err(Error::malformed(
                    format!("referrers tag {tagged}"),
                    "the tag holds an image manifest, not an index",
                ));
            }
        },
        Err(Error::NotFound { .. }) => Vec::new(),
        Err(e) => return Err(e),
    };
    let digest = referrer.digest.to_string();
    if entries
        .iter()
        .any(|e| e.get("digest").and_then(Value::as_str) == Some(digest.as_str()))
    {
        return Ok(());
    }
    let mut d = json!({
        "mediaType": referrer.media_type,
        "digest": digest,
        "size": referrer.bytes.len(),
        "artifactType": SIGSTORE_BUNDLE_V03,
    });
    if !annotations.is_empty() {
        d["annotations"] = json!(annotations);
    }
    entries.push(d);
    // Sorted by digest, as go-containerregistry (cosign's client) keeps this index.
    entries.sort_by(|a, b| {
        let key = |v: &Value| v.get("digest").and_then(Value::as_str).map(str::to_owned);
        key(a).cmp(&key(b))
    });
    let index = manifest_of(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": entries,
    }))?;
    p.push_manifest(&tagged, &index).await
}
