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
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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

fn registry_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("DOCKER_REGISTRY_BIN") {
        let p = PathBuf::from(p);
        return p.is_file().then_some(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("docker-registry"))
        .chain([PathBuf::from("/usr/bin/docker-registry")])
        .find(|p| p.is_file())
}

/// A `docker-registry serve` process on a free 127.0.0.1 port, killed on drop.
pub struct TestRegistry {
    child: Child,
    pub addr: String,
    pub dir: tempfile::TempDir,
}

impl TestRegistry {
    /// Starts a registry, or returns `None` (after printing `SKIPPED`) when the binary is
    /// missing outside CI. In CI (env `CI` set) a missing binary is a test failure.
    pub fn start() -> Option<Self> {
        let Some(bin) = registry_binary() else {
            if std::env::var_os("CI").is_some() {
                panic!(
                    "docker-registry not installed: run scripts/ci-setup-oci.sh (apt-get install docker-registry)"
                );
            }
            eprintln!("SKIPPED: docker-registry not installed");
            return None;
        };
        let mut last = String::new();
        for _ in 0..3 {
            let dir = tempfile::tempdir().unwrap();
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let addr = format!("127.0.0.1:{port}");
            let config = dir.path().join("config.yml");
            std::fs::write(
                &config,
                format!(
                    "version: 0.1\nlog: {{level: warn}}\nstorage:\n  filesystem: {{rootdirectory: {}}}\n  delete: {{enabled: true}}\nhttp: {{addr: {addr}}}\n",
                    dir.path().join("store").display()
                ),
            )
            .unwrap();
            let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
            let child = Command::new(&bin)
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
            let mut reg = TestRegistry { child, addr, dir };
            if reg.wait_up(Duration::from_secs(15)) {
                return Some(reg);
            }
            last = std::fs::read_to_string(reg.dir.path().join("registry.log")).unwrap_or_default();
        }
        panic!("docker-registry did not come up: {last}");
    }

    fn wait_up(&mut self, within: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < within {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if let Ok(mut s) = TcpStream::connect(&self.addr) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
                let _ = write!(s, "GET /v2/ HTTP/1.0\r\nHost: {}\r\n\r\n", self.addr);
                let mut buf = [0u8; 16];
                if let Ok(n) = s.read(&mut buf)
                    && String::from_utf8_lossy(&buf[..n]).contains(" 200")
                {
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// Stops the registry now (to test network failures).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

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

    pub fn pusher(&self) -> Pusher {
        Pusher {
            http: reqwest::Client::new(),
            base: format!("http://{}", self.addr),
        }
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Pushes blobs and manifests with the distribution API, as cosign / oras would.
pub struct Pusher {
    http: reqwest::Client,
    base: String,
}

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const EMPTY_CONFIG: &str = "application/vnd.oci.empty.v1+json";

impl Pusher {
    pub async fn blob(&self, repo: &str, bytes: &[u8]) -> Digest {
        let digest = Digest::sha256_of(bytes);
        let r = self
            .http
            .post(format!("{}/v2/{repo}/blobs/uploads/", self.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 202, "start upload");
        let loc = r
            .headers()
            .get("location")
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        let loc = if loc.starts_with("http") {
            loc
        } else {
            format!("{}{loc}", self.base)
        };
        let sep = if loc.contains('?') { '&' } else { '?' };
        let r = self
            .http
            .put(format!("{loc}{sep}digest={digest}"))
            .header("content-type", "application/octet-stream")
            .body(bytes.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 201, "finish upload");
        digest
    }

    pub async fn manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Digest {
        let r = self
            .http
            .put(format!("{}/v2/{repo}/manifests/{reference}", self.base))
            .header("content-type", media_type)
            .body(bytes.to_vec())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body = r.text().await.unwrap_or_default();
        assert_eq!(status, 201, "push manifest {repo}:{reference}: {body}");
        Digest::sha256_of(bytes)
    }

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
