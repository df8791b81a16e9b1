//! A real OCI registry on loopback for tests: Debian's `docker-registry` (CNCF distribution
//! 2.8, which has no referrers API) on a free 127.0.0.1 port, and a small push client.
//!
//! One copy for every crate whose tests need a registry: `provenance-oci`'s tests include it
//! from `tests/common/mod.rs`, the CLI's with `#[path]` from its own `tests/common/mod.rs`.
//! It needs `tempfile`, `reqwest` and `provenance-core` (dev-)dependencies.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs
)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use provenance_core::Digest;

/// `DOCKER_REGISTRY_BIN`, else `docker-registry` on `PATH` or in `/usr/bin`.
pub fn registry_binary() -> Option<PathBuf> {
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
pub struct LoopbackRegistry {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// Its storage, configuration and log (`registry.log`).
    pub dir: tempfile::TempDir,
    /// Whether it serves HTTPS (see [`LoopbackRegistry::start_tls`]).
    pub tls: bool,
}

impl LoopbackRegistry {
    /// Starts a registry, or returns `None` (after printing `SKIPPED`) when the binary is
    /// missing outside CI. In CI (env `CI` set) a missing binary is a test failure.
    pub fn start() -> Option<Self> {
        Self::start_with(None)
    }

    /// Starts a registry serving HTTPS with the PEM certificate chain and key given (the
    /// certificate must name `127.0.0.1`), or `None` as [`LoopbackRegistry::start`].
    pub fn start_tls(cert_pem: &str, key_pem: &str) -> Option<Self> {
        Self::start_with(Some((cert_pem, key_pem)))
    }

    fn start_with(tls: Option<(&str, &str)>) -> Option<Self> {
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
            let tls_config = match tls {
                Some((cert, key)) => {
                    let (c, k) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
                    std::fs::write(&c, cert).unwrap();
                    std::fs::write(&k, key).unwrap();
                    format!(
                        ", tls: {{certificate: {}, key: {}}}",
                        c.display(),
                        k.display()
                    )
                }
                None => String::new(),
            };
            std::fs::write(
                &config,
                format!(
                    "version: 0.1\nlog: {{level: warn}}\nstorage:\n  filesystem: {{rootdirectory: {}}}\n  delete: {{enabled: true}}\nhttp: {{addr: {addr}{tls_config}}}\n",
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
            let mut reg = LoopbackRegistry {
                child,
                addr,
                dir,
                tls: tls.is_some(),
            };
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
            // An HTTPS registry listens once it is ready to serve.
            if self.tls && TcpStream::connect(&self.addr).is_ok() {
                return true;
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

    /// A push client for this registry (plain HTTP).
    pub fn pusher(&self) -> Pusher {
        Pusher::at(&format!("http://{}", self.addr))
    }

    /// A push client for this registry over HTTPS, trusting `ca_pem`.
    pub fn tls_pusher(&self, ca_pem: &str) -> Pusher {
        Pusher {
            http: reqwest::Client::builder()
                .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap())
                .build()
                .unwrap(),
            base: format!("https://{}", self.addr),
        }
    }
}

impl Drop for LoopbackRegistry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Pushes blobs and manifests with the distribution API, as cosign / oras would.
pub struct Pusher {
    pub http: reqwest::Client,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
}

impl Pusher {
    /// A push client for the registry at `base` (`http://HOST:PORT`).
    pub fn at(base: &str) -> Self {
        Pusher {
            http: reqwest::Client::new(),
            base: base.to_owned(),
        }
    }

    /// Uploads `bytes` as a blob of `repo` (monolithic POST + PUT); returns its digest.
    pub async fn blob(&self, repo: &str, bytes: &[u8]) -> Digest {
        let digest = Digest::sha256_of(bytes);
        let r = self
            .http
            .post(format!("{}/v2/{repo}/blobs/uploads/", self.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 202, "start upload to {repo}");
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
        assert_eq!(r.status().as_u16(), 201, "finish upload of {digest}");
        digest
    }

    /// Stores a manifest under `reference` (a tag or its digest); returns its digest.
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
}
