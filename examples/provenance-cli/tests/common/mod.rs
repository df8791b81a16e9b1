//! A real OCI registry on loopback for the CLI's tests: Debian's `docker-registry` (CNCF
//! distribution 2.8, which has no referrers API), and a pusher that copies an OCI layout
//! into it the way a client without the referrers API does.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs
)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

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

/// `docker-registry serve` on a free loopback port, killed on drop.
pub struct Registry {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    _dir: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Registry {
    /// Starts a registry; `None` (after printing SKIPPED) when the binary is missing outside CI.
    pub fn start() -> Option<Registry> {
        let Some(bin) = registry_binary() else {
            if std::env::var_os("CI").is_some() {
                panic!("docker-registry not installed (apt-get install docker-registry)");
            }
            eprintln!("SKIPPED: docker-registry not installed");
            return None;
        };
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
                "version: 0.1\nlog: {{level: warn}}\nstorage:\n  filesystem: {{rootdirectory: {}}}\nhttp: {{addr: {addr}}}\n",
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
            .unwrap();
        let reg = Registry {
            child,
            addr,
            _dir: dir,
        };
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(15) {
            if let Ok(mut s) = TcpStream::connect(&reg.addr) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
                let _ = write!(s, "GET /v2/ HTTP/1.0\r\nHost: {}\r\n\r\n", reg.addr);
                let mut buf = [0u8; 16];
                if let Ok(n) = s.read(&mut buf)
                    && String::from_utf8_lossy(&buf[..n]).contains(" 200")
                {
                    return Some(reg);
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("docker-registry did not come up on {}", reg.addr);
    }
}

struct Pusher {
    http: reqwest::Client,
    base: String,
}

impl Pusher {
    async fn blob(&self, repo: &str, bytes: &[u8]) {
        let digest = format!("sha256:{}", sha256_hex(bytes));
        let head = self
            .http
            .head(format!("{}/v2/{repo}/blobs/{digest}", self.base))
            .send()
            .await
            .unwrap();
        if head.status().as_u16() == 200 {
            return;
        }
        let r = self
            .http
            .post(format!("{}/v2/{repo}/blobs/uploads/", self.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 202, "start upload to {repo}");
        let loc = r.headers()["location"].to_str().unwrap().to_owned();
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
    }

    async fn manifest(&self, repo: &str, reference: &str, media_type: &str, bytes: &[u8]) {
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
        assert_eq!(status, 201, "push {repo}:{reference}: {body}");
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    // `sha256sum` is not a dependency we want; compute with the digest type core exports.
    provenance_core::Digest::sha256_of(bytes).hex().to_owned()
}

/// Pushes the example layout to the registry as a client without the referrers API would:
/// every named manifest under its tag (images, cosign `.sig`), every referrer by digest, and
/// for each subject the referrers tag schema index (`sha256-<hex>`).
pub async fn push_layout(layout: &Path, base: &str) {
    let p = Pusher {
        http: reqwest::Client::new(),
        base: base.to_owned(),
    };
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
