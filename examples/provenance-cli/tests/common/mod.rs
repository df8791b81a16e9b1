//! A real OCI registry on loopback for the CLI's tests: Debian's `docker-registry` (CNCF
//! distribution 2.8, which has no referrers API), and [`push_layout`], which copies an OCI
//! layout into it the way a client without the referrers API does.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs
)]

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};

// The loopback registry and push client, one copy shared with provenance-oci's tests.
#[path = "../../../../provenance-oci/tests/common/loopback_registry.rs"]
mod loopback_registry;
pub use loopback_registry::{LoopbackRegistry as Registry, Pusher};

/// A loopback registry holding the OCI layout at `layout` (pushed with [`push_layout`]) and
/// the `--registry-endpoint` value that points `registry.example.com` at it; `None` when
/// the registry binary is missing outside CI.
pub fn serve_layout(layout: &Path) -> Option<(Registry, String)> {
    let reg = Registry::start()?;
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(push_layout(layout, &format!("http://{}", reg.addr)));
    let endpoint = format!("registry.example.com={}", reg.addr);
    Some((reg, endpoint))
}

/// Pushes the example layout to the registry as a client without the referrers API would:
/// every named manifest under its tag (images, cosign `.sig`), every referrer by digest, and
/// for each subject the referrers tag schema index (`sha256-<hex>`).
pub async fn push_layout(layout: &Path, base: &str) {
    let p = Pusher::at(base);
    let read = |d: &str| std::fs::read(layout.join("blobs/sha256").join(&d[7..])).unwrap();
    let index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let prefix = "registry.example.com/";
    let mut repo_of_digest: BTreeMap<String, String> = BTreeMap::new();
    let mut referrers: BTreeMap<(String, String), Vec<Value>> = BTreeMap::new();
    let entries = index["manifests"].as_array().unwrap();
    // Named entries first (images and their signatures), then referrers.
    for pass in 0..2 {
        for e in entries {
            let digest = e["digest"].as_str().unwrap();
            let media_type = e["mediaType"].as_str().unwrap();
            let name = e["annotations"]["org.opencontainers.image.ref.name"].as_str();
            let bytes = read(digest);
            let m: Value = serde_json::from_slice(&bytes).unwrap();
            let (repo, reference) = match (pass, name) {
                (0, Some(n)) => {
                    let n = n.strip_prefix(prefix).expect("names are full references");
                    let (repo, tag) = n.rsplit_once(':').unwrap();
                    repo_of_digest.insert(digest.to_owned(), repo.to_owned());
                    (repo.to_owned(), tag.to_owned())
                }
                (1, None) => {
                    let subject = m["subject"]["digest"].as_str().expect("a referrer");
                    let repo = repo_of_digest[subject].clone();
                    let mut d = json!({
                        "mediaType": media_type,
                        "digest": digest,
                        "size": bytes.len(),
                        "annotations": m["annotations"],
                    });
                    if let Some(at) = m["artifactType"].as_str() {
                        d["artifactType"] = json!(at);
                    }
                    referrers
                        .entry((repo.clone(), subject.to_owned()))
                        .or_default()
                        .push(d);
                    (repo, digest.to_owned())
                }
                _ => continue,
            };
            p.blob(&repo, &read(m["config"]["digest"].as_str().unwrap()))
                .await;
            for l in m["layers"].as_array().unwrap() {
                p.blob(&repo, &read(l["digest"].as_str().unwrap())).await;
            }
            p.manifest(&repo, &reference, media_type, &bytes).await;
        }
    }
    for ((repo, subject), manifests) in referrers {
        let idx = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": manifests,
        }))
        .unwrap();
        p.manifest(
            &repo,
            &subject.replace(':', "-"),
            "application/vnd.oci.image.index.v1+json",
            &idx,
        )
        .await;
    }
}
