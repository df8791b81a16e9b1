//! What crosses the sans-IO boundary: [`ImageRequest`], the evidence a rule needs for one
//! image, and [`ImageEvidence`], what the caller gathered for it.

use std::collections::BTreeMap;

use provenance_core::verify::SignatureMaterial;
use provenance_core::{Digest, Reason};

use super::check::MODEL_SIGNING_V1;

/// Evidence gathered for one image reference.
///
/// Built with [`ImageEvidence::resolved`] and the `with_*` methods, or with
/// [`ImageEvidence::unavailable`] / [`ImageEvidence::unusable`] when there is none; the fields
/// are public for reading. New fields may be added: construct it through these functions.
///
/// ```
/// use std::collections::BTreeMap;
/// use provenance_policy::core::Digest;
/// use provenance_policy::core::verify::SignatureMaterial;
/// use provenance_policy::kyverno::verify_images::ImageEvidence;
///
/// // What a registry served for `registry.example.com/ml/model:1`, not verified yet.
/// let digest = Digest::sha256_of(b"the image manifest");
/// let bundle = SignatureMaterial::Bundle(br#"{"mediaType": "..."}"#.to_vec());
/// let ev = ImageEvidence::resolved(digest.clone()).with_signatures([bundle]);
/// assert_eq!(ev.digest, Some(digest));
/// assert_eq!(ev.signatures.len(), 1);
/// assert!(ev.attestations.is_empty() && ev.layers.is_none());
/// assert!(ev.error.is_none() && ev.invalid.is_none());
///
/// // Keyed by Kyverno's image string (`ImageRequest::reference`) for `VerifyImagesContext`.
/// let evidence = BTreeMap::from([("registry.example.com/ml/model:1".to_owned(), ev)]);
/// # let _ = evidence;
/// ```
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ImageEvidence {
    /// The manifest (or index) digest the reference resolves to.
    pub digest: Option<Digest>,
    /// Signature material attached to the digest (cosign `.sig` layers, bundle referrers).
    pub signatures: Vec<SignatureMaterial>,
    /// Attestation material attached to the digest (DSSE bundles, cosign `.att` layers).
    pub attestations: Vec<SignatureMaterial>,
    /// Why gathering failed (network, auth, timeout: the infrastructure, not the image):
    /// reported as `error`, with this reason's code (e.g. `oci.transport`) on the image.
    pub error: Option<Reason>,
    /// Why what was served for this image cannot be evidence (a malformed or oversized
    /// manifest, a digest that does not match): the image owner's content failing, reported
    /// as `fail` with this reason's code. Never an `error`, which `failurePolicy: Ignore`
    /// would admit.
    pub invalid: Option<Reason>,
    /// The layers of the image manifest at `digest`, gathered when a rule verifies a
    /// model-signing attestation (their path annotations and digests are what the signed
    /// resources are compared with). `None` when not gathered or the digest names an index.
    pub layers: Option<Vec<provenance_attest::model_artifact::ArtifactLayer>>,
}

/// The code of evidence that could not be gathered for a reason with no code of its own.
pub const EVIDENCE_UNAVAILABLE: &str = "policy.verify_images.evidence_unavailable";

impl ImageEvidence {
    /// Evidence for an image whose reference resolved to `digest`, with no signature,
    /// attestation or layer attached yet (add them with [`with_signatures`],
    /// [`with_attestations`] and [`with_layers`]). Rules that need signatures or attestations
    /// fail over it as it is (`policy.verify_images.no_signatures`, `no_attestations`).
    ///
    /// [`with_signatures`]: ImageEvidence::with_signatures
    /// [`with_attestations`]: ImageEvidence::with_attestations
    /// [`with_layers`]: ImageEvidence::with_layers
    pub fn resolved(digest: Digest) -> Self {
        ImageEvidence {
            digest: Some(digest),
            ..ImageEvidence::default()
        }
    }

    /// The same evidence with `signatures` as its signature material (replacing any set
    /// before): cosign `.sig` layers or Sigstore bundles attached to the digest, unverified.
    pub fn with_signatures(
        mut self,
        signatures: impl IntoIterator<Item = SignatureMaterial>,
    ) -> Self {
        self.signatures = signatures.into_iter().collect();
        self
    }

    /// The same evidence with `attestations` as its attestation material (replacing any set
    /// before): DSSE bundles or cosign `.att` layers attached to the digest, unverified.
    pub fn with_attestations(
        mut self,
        attestations: impl IntoIterator<Item = SignatureMaterial>,
    ) -> Self {
        self.attestations = attestations.into_iter().collect();
        self
    }

    /// The same evidence with the layers of the image manifest (`None`: not gathered), which
    /// model-signing attestations are bound to (see [`ImageEvidence::layers`]).
    pub fn with_layers(
        mut self,
        layers: impl Into<Option<Vec<provenance_attest::model_artifact::ArtifactLayer>>>,
    ) -> Self {
        self.layers = layers.into();
        self
    }

    /// No evidence, because gathering failed for a reason outside the image (`reason`'s code
    /// says which: a registry error's code, [`EVIDENCE_UNAVAILABLE`], ...): every rule over the
    /// image reports `error`.
    pub fn unavailable(reason: Reason) -> Self {
        ImageEvidence {
            error: Some(reason),
            ..ImageEvidence::default()
        }
    }

    /// No evidence, because what was served for the image cannot be evidence: every rule over
    /// the image reports `fail`.
    pub fn unusable(reason: Reason) -> Self {
        ImageEvidence {
            invalid: Some(reason),
            ..ImageEvidence::default()
        }
    }

    /// Evidence for every image `requests` name that could not be gathered at all (no source
    /// configured, or the source could not be opened): each entry is
    /// [`unavailable`](ImageEvidence::unavailable) with `reason` ([`EVIDENCE_UNAVAILABLE`]),
    /// so every rule over those images reports `error` with it, never a pass.
    pub fn unavailable_for(requests: &[ImageRequest], reason: &str) -> BTreeMap<String, Self> {
        requests
            .iter()
            .map(|r| {
                (
                    r.reference.clone(),
                    ImageEvidence::unavailable(Reason::new(EVIDENCE_UNAVAILABLE, reason)),
                )
            })
            .collect()
    }
}

/// One image a `verifyImages` rule covers, and the evidence it needs.
///
/// [`image_requests`](super::image_requests) (and `PolicySet::image_requests`) list them for
/// a resource. To gather evidence for an image without a resource, build one with
/// [`ImageRequest::new`] and the `requiring_*` methods; the fields are public for reading. New
/// fields may be added.
///
/// ```
/// use provenance_policy::kyverno::verify_images::ImageRequest;
///
/// let req = ImageRequest::new("verify-models", "signed", "registry.example.com/ml/model:1")
///     .at("/spec/containers/0/image")
///     .requiring_signatures()
///     .requiring_attestations(["https://slsa.dev/provenance/v1".to_owned()]);
/// assert_eq!(req.image, req.reference);
/// assert!(req.signatures && !req.needs_layers());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImageRequest {
    /// Policy name.
    pub policy: String,
    /// Rule name.
    pub rule: String,
    /// The image as written in the resource.
    pub image: String,
    /// Kyverno's image string (`registry/path:tag`), the key evidence is looked up by.
    pub reference: String,
    /// JSON pointer of the field holding the image.
    pub pointer: String,
    /// Alternate signature repository (`repository`), if set.
    pub repository: Option<String>,
    /// Whether signatures are needed.
    pub signatures: bool,
    /// Attestation predicate types needed.
    pub attestation_types: Vec<String>,
}

impl ImageRequest {
    /// A request of `policy`'s `rule` for the image Kyverno names `reference`
    /// (`registry/path:tag` or `registry/path@digest`, the key its evidence is looked up by),
    /// written the same way in the resource ([`ImageRequest::written_as`] when it is not), at
    /// no field ([`ImageRequest::at`]), from the image's own repository, needing neither
    /// signatures nor attestations yet.
    pub fn new(
        policy: impl Into<String>,
        rule: impl Into<String>,
        reference: impl Into<String>,
    ) -> Self {
        let reference = reference.into();
        ImageRequest {
            policy: policy.into(),
            rule: rule.into(),
            image: reference.clone(),
            reference,
            pointer: String::new(),
            repository: None,
            signatures: false,
            attestation_types: Vec::new(),
        }
    }

    /// The same request for the image as written in the resource (`image`), when it differs
    /// from Kyverno's image string (`busybox:1` for `docker.io/library/busybox:1`).
    pub fn written_as(mut self, image: impl Into<String>) -> Self {
        self.image = image.into();
        self
    }

    /// The same request with `pointer`, the JSON pointer of the field holding the image.
    pub fn at(mut self, pointer: impl Into<String>) -> Self {
        self.pointer = pointer.into();
        self
    }

    /// The same request with its signatures and attestations looked up in `repository` (a
    /// rule's `repository`) instead of the image's own.
    pub fn in_repository(mut self, repository: impl Into<String>) -> Self {
        self.repository = Some(repository.into());
        self
    }

    /// The same request needing the image's signatures (the rule has `attestors`).
    pub fn requiring_signatures(mut self) -> Self {
        self.signatures = true;
        self
    }

    /// The same request needing attestations of these predicate types (replacing any set
    /// before).
    pub fn requiring_attestations(mut self, types: impl IntoIterator<Item = String>) -> Self {
        self.attestation_types = types.into_iter().collect();
        self
    }

    /// True when the request verifies a model-signing attestation, whose evidence includes
    /// the image manifest's layers ([`ImageEvidence::layers`]). Evidence gathered without
    /// them must not be reused for such a request (the rule would fail, not pass).
    pub fn needs_layers(&self) -> bool {
        self.attestation_types.iter().any(|t| t == MODEL_SIGNING_V1)
    }
}
