//! Gathering `verifyImages` evidence from an OCI registry or layout (feature `oci`).
//!
//! Step two of the sans-IO flow, for callers that want it done for them: for each distinct
//! image of [`ImageRequest`]s, resolve the digest once and discover its signatures and
//! attestations through [`provenance_oci::EvidenceSource`] (a `RegistryClient` or a
//! `LayoutSource`), concurrently and bounded. Nothing is verified here; retrieval failures are
//! recorded in [`ImageEvidence::error`] and become `error` results, never passes.

use std::collections::BTreeMap;
use std::sync::Arc;

use provenance_core::verify::{CosignSignature, SignatureMaterial};
use provenance_core::{Digest, ImageReference};
use provenance_oci::{AttestationLayer, EvidenceSource, SignatureLayer};

use crate::kyverno::verify_images::{EVIDENCE_UNAVAILABLE, ImageEvidence, ImageRequest};
use provenance_core::Reason;

/// What to gather for one distinct image.
#[derive(Debug, Clone)]
struct Want {
    repository: Option<String>,
    signatures: bool,
    attestations: bool,
    layers: bool,
}

/// Most evidence bytes (signature payloads and attestation envelopes) [`gather`] keeps for one
/// request, over all its images (256 MiB); each image is bounded on its own by the source's
/// `Limits::max_evidence_bytes`.
pub const MAX_REQUEST_EVIDENCE_BYTES: u64 = 256 << 20;

/// Gathers evidence for every distinct image the requests name: one resolve and one discovery
/// per image, at most `limit` images at a time. Retrieval failures are recorded in
/// [`ImageEvidence::error`] (reported as `error`, never as a pass). At most
/// [`MAX_REQUEST_EVIDENCE_BYTES`] are kept for the whole request: an image whose evidence would
/// go beyond it fails with `oci.too_large` instead ([`ImageEvidence::invalid`]: the request's
/// author chose its images, so this is never an `error` that `failurePolicy: Ignore` admits).
pub async fn gather<S>(
    source: Arc<S>,
    requests: &[ImageRequest],
    limit: usize,
) -> BTreeMap<String, ImageEvidence>
where
    S: EvidenceSource + 'static,
{
    gather_bounded(source, requests, limit, MAX_REQUEST_EVIDENCE_BYTES).await
}

/// [`gather`] with another bound on the evidence bytes kept for the whole request.
pub async fn gather_bounded<S>(
    source: Arc<S>,
    requests: &[ImageRequest],
    limit: usize,
    max_request_bytes: u64,
) -> BTreeMap<String, ImageEvidence>
where
    S: EvidenceSource + 'static,
{
    let used = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut wants: BTreeMap<String, Want> = BTreeMap::new();
    for r in requests {
        let w = wants.entry(r.reference.clone()).or_insert(Want {
            repository: r.repository.clone(),
            signatures: false,
            attestations: false,
            layers: false,
        });
        w.signatures |= r.signatures;
        w.attestations |= !r.attestation_types.is_empty();
        w.layers |= r.needs_layers();
    }
    let sem = Arc::new(tokio::sync::Semaphore::new(limit.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for (reference, want) in wants.clone() {
        let source = Arc::clone(&source);
        let sem = Arc::clone(&sem);
        let used = Arc::clone(&used);
        tasks.spawn(async move {
            let _permit = sem.acquire_owned().await;
            let budget = RequestBudget {
                used: &used,
                limit: max_request_bytes,
            };
            let ev = gather_one(source.as_ref(), &reference, &want, &budget).await;
            (reference, ev)
        });
    }
    let mut out = BTreeMap::new();
    while let Some(joined) = tasks.join_next().await {
        if let Ok((reference, ev)) = joined {
            out.insert(reference, ev);
        }
    }
    // A task that panicked or was cancelled leaves its image without evidence: say so.
    for reference in wants.keys() {
        out.entry(reference.clone()).or_insert_with(|| {
            ImageEvidence::unavailable(Reason::new(
                EVIDENCE_UNAVAILABLE,
                "evidence gathering was interrupted",
            ))
        });
    }
    out
}

/// Evidence for an image whose retrieval failed: an infrastructure failure (the registry
/// unreachable, auth refused, a timeout) is an `error`; anything else is what the registry or
/// layout served for the image being unusable, which fails the image's rules.
fn oci_error(what: &str, e: &provenance_oci::Error) -> ImageEvidence {
    let reason = Reason::new(e.code(), format!("{what}: {e}"));
    if e.is_infrastructure() {
        ImageEvidence::unavailable(reason)
    } else {
        ImageEvidence::unusable(reason)
    }
}

/// The evidence bytes kept so far for one request.
struct RequestBudget<'a> {
    used: &'a std::sync::atomic::AtomicU64,
    limit: u64,
}

impl RequestBudget<'_> {
    /// Counts `n` bytes of one image's evidence; `false` (nothing counted) when the request
    /// would go beyond its limit.
    fn take(&self, n: u64) -> bool {
        use std::sync::atomic::Ordering;
        let mut cur = self.used.load(Ordering::Relaxed);
        loop {
            let next = cur.saturating_add(n);
            if next > self.limit {
                return false;
            }
            match self
                .used
                .compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(actual) => cur = actual,
            }
        }
    }
}

async fn gather_one<S: EvidenceSource>(
    source: &S,
    reference: &str,
    want: &Want,
    budget: &RequestBudget<'_>,
) -> ImageEvidence {
    let image = match ImageReference::parse(reference) {
        Ok(i) => i,
        Err(e) => {
            return ImageEvidence::unavailable(Reason::new(
                e.code(),
                format!("invalid image reference {reference}: {e}"),
            ));
        }
    };
    let repository = match want.repository.as_deref().map(ImageReference::from_name) {
        None => None,
        Some(Ok(r)) => Some(r),
        Some(Err(e)) => {
            return ImageEvidence::unavailable(Reason::new(
                e.code(),
                format!("invalid repository: {e}"),
            ));
        }
    };
    let digest = match source.resolve(&image).await {
        Ok(d) => d,
        Err(e) => return oci_error("resolve", &e),
    };
    let (sigs, atts) = tokio::join!(
        async {
            if want.signatures {
                source
                    .signatures(&image, &digest, repository.as_ref())
                    .await
            } else {
                Ok(Vec::new())
            }
        },
        async {
            if want.attestations {
                source
                    .attestations(&image, &digest, repository.as_ref())
                    .await
            } else {
                Ok(Vec::new())
            }
        }
    );
    let sigs = match sigs {
        Ok(s) => s,
        Err(e) => return oci_error("signatures", &e),
    };
    let atts = match atts {
        Ok(a) => a,
        Err(e) => return oci_error("attestations", &e),
    };
    let bytes = sigs
        .iter()
        .map(|s| s.payload.len() as u64)
        .chain(atts.iter().map(|a| a.envelope.len() as u64))
        .fold(0u64, u64::saturating_add);
    if !budget.take(bytes) {
        return oci_error(
            "evidence",
            &provenance_oci::Error::TooLarge {
                what: format!("evidence of the whole request (at {reference})"),
                limit: budget.limit,
            },
        );
    }
    let mut ev = evidence_from(digest.clone(), &sigs, &atts);
    if want.layers {
        // The model artifact's layers (path annotations and digests), for model-signing
        // attestations; an index has none (the rule then fails, it does not pass).
        match source.manifest_at(&image, &digest).await {
            Ok(m) => {
                if let Ok(provenance_oci::ParsedManifest::Image(im)) = m.parse() {
                    ev.layers = Some(
                        im.layers()
                            .iter()
                            .map(|l| provenance_attest::model_artifact::ArtifactLayer {
                                media_type: l.media_type().to_string(),
                                digest: l.digest().to_string(),
                                size: l.size(),
                                annotations: l
                                    .annotations()
                                    .as_ref()
                                    .map(|a| {
                                        a.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
                                    })
                                    .unwrap_or_default(),
                            })
                            .collect(),
                    );
                }
            }
            Err(e) => return oci_error("manifest", &e),
        }
    }
    ev
}

/// Maps what `provenance-oci` found for an image to the [`ImageEvidence`] the policy engine
/// verifies: signature layers as they are (cosign layers or bundles); attestations as Sigstore
/// bundles, or as cosign `.att` layers (the DSSE envelope with cosign's annotations). All of it
/// is unverified here.
pub fn evidence_from(
    digest: Digest,
    signatures: &[SignatureLayer],
    attestations: &[AttestationLayer],
) -> ImageEvidence {
    ImageEvidence::resolved(digest)
        .with_signatures(signatures.iter().map(SignatureLayer::material))
        .with_attestations(attestations.iter().map(|a| {
            if a.is_bundle() {
                SignatureMaterial::Bundle(a.envelope.clone())
            } else {
                SignatureMaterial::Cosign(CosignSignature::new(
                    a.envelope.clone(),
                    a.annotations.clone(),
                ))
            }
        }))
}
