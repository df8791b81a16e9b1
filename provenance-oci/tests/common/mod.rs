//! Test support: a real CNCF distribution registry on loopback, a small push client, and
//! loopback fault responders.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs
)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use provenance_core::{Digest, ImageReference};
use provenance_oci::{RegistryClient, RegistryConfig};

/// Where the shared corpora live (`../shared` beside the repository).
pub fn shared_dir() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("PROVENANCE_SHARED") {
        return Some(PathBuf::from(p));
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared");
    p.is_dir().then_some(p)
}

pub fn core_fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../provenance-core/tests/fixtures/sigstore")
        .join(rel)
}

#[path = "loopback_registry.rs"]
mod loopback_registry;
pub use loopback_registry::{LoopbackRegistry as TestRegistry, Pusher};

impl TestRegistry {
    pub fn reference(&self, s: &str) -> ImageReference {
        ImageReference::parse(&format!("{}/{s}", self.addr)).unwrap()
    }

    /// A client allowed to use plain HTTP to this registry.
    pub fn client(&self) -> RegistryClient {
        self.client_with(RegistryConfig::default())
    }

    pub fn client_with(&self, config: RegistryConfig) -> RegistryClient {
        RegistryClient::new(config.allow_http(self.addr.clone())).unwrap()
    }
}

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const EMPTY_CONFIG: &str = "application/vnd.oci.empty.v1+json";

impl Pusher {
    /// Pushes a small single-platform image; returns (manifest digest, manifest bytes,
    /// layer digest).
    pub async fn image(
        &self,
        repo: &str,
        tag: &str,
        layer: &[u8],
        arch: &str,
    ) -> (Digest, Vec<u8>, Digest) {
        let config = format!(
            r#"{{"architecture":"{arch}","os":"linux","rootfs":{{"type":"layers","diff_ids":[]}}}}"#
        );
        let cd = self.blob(repo, config.as_bytes()).await;
        let ld = self.blob(repo, layer).await;
        let m = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd.to_string(), "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld.to_string(), "size": layer.len()}],
        });
        let bytes = serde_json::to_vec(&m).unwrap();
        let d = self.manifest(repo, tag, OCI_MANIFEST, &bytes).await;
        (d, bytes, ld)
    }

    /// Pushes a manifest with `layers` (media type, bytes, annotations) and an empty config.
    pub async fn artifact(
        &self,
        repo: &str,
        reference: &str,
        layers: &[(&str, Vec<u8>, serde_json::Value)],
        extra: serde_json::Value,
    ) -> (Digest, Vec<u8>) {
        let cd = self.blob(repo, b"{}").await;
        let mut ls = Vec::new();
        for (mt, bytes, ann) in layers {
            let d = self.blob(repo, bytes).await;
            let mut l =
                serde_json::json!({"mediaType": mt, "digest": d.to_string(), "size": bytes.len()});
            if !ann.is_null() {
                l["annotations"] = ann.clone();
            }
            ls.push(l);
        }
        let mut m = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": EMPTY_CONFIG, "digest": cd.to_string(), "size": 2},
            "layers": ls,
        });
        if let serde_json::Value::Object(e) = extra {
            for (k, v) in e {
                m[k] = v;
            }
        }
        let bytes = serde_json::to_vec(&m).unwrap();
        let d = self.manifest(repo, reference, OCI_MANIFEST, &bytes).await;
        (d, bytes)
    }

    /// Adds `referrer` to the referrers tag-schema index of `subject` (what a client does
    /// when the registry has no referrers API).
    pub async fn add_to_tag_schema(
        &self,
        repo: &str,
        subject: &Digest,
        referrer: (&Digest, usize, &str),
    ) {
        let tag = format!("sha256-{}", subject.hex());
        let existing = self
            .http
            .get(format!("{}/v2/{repo}/manifests/{tag}", self.base))
            .header("accept", OCI_INDEX)
            .send()
            .await
            .unwrap();
        let mut idx = if existing.status().is_success() {
            serde_json::from_slice(&existing.bytes().await.unwrap()).unwrap()
        } else {
            serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []})
        };
        idx["manifests"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({
                "mediaType": OCI_MANIFEST,
                "digest": referrer.0.to_string(),
                "size": referrer.1,
                "artifactType": referrer.2,
            }));
        let bytes = serde_json::to_vec(&idx).unwrap();
        self.manifest(repo, &tag, OCI_INDEX, &bytes).await;
    }
}

/// A loopback HTTP responder for faults a real registry does not produce: `handler` gets the
/// request head (request line and headers, then the body if one was announced) and returns raw response bytes (or `None` to stall
/// without answering).
pub struct FaultServer {
    pub addr: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl FaultServer {
    pub fn start(handler: impl Fn(&str) -> Option<Vec<u8>> + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop2 = stop.clone();
        let handler = std::sync::Arc::new(handler);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let Ok(mut s) = conn else { continue };
                let handler = handler.clone();
                std::thread::spawn(move || {
                    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                    let mut buf = Vec::new();
                    let mut tmp = [0u8; 4096];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut tmp) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&tmp[..n]),
                        }
                    }
                    // A body announced by Content-Length is read too, and handed over after
                    // the head (token endpoints check POSTed forms).
                    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(0) + 4;
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
                    let want = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    while buf.len() < head_end + want.min(1 << 20) {
                        match s.read(&mut tmp) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => buf.extend_from_slice(&tmp[..n]),
                        }
                    }
                    let text = String::from_utf8_lossy(&buf).to_string();
                    match handler(&text) {
                        Some(resp) => {
                            let _ = s.write_all(&resp);
                        }
                        None => std::thread::sleep(Duration::from_secs(30)),
                    }
                });
            }
        });
        FaultServer { addr, stop }
    }

    pub fn reference(&self, s: &str) -> ImageReference {
        ImageReference::parse(&format!("{}/{s}", self.addr)).unwrap()
    }
}

impl Drop for FaultServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = TcpStream::connect(&self.addr);
    }
}

pub fn http_response(status: &str, headers: &[(&str, String)], body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}
