//! Hostile registries on loopback: upload locations and redirects that point at other hosts,
//! challenges from hosts that are not the registry, token realms over plain HTTP, token
//! endpoints that never stop talking, digest headers that lie. Each must end in its own error
//! code, and no credential may reach a host that is not the registry's own origin.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{FaultServer, http_response};
use provenance_core::Digest;
use provenance_oci::{
    Credentials, EvidenceSource, RegistryClient, RegistryConfig, RegistrySettings, Timeouts,
};

const MANIFEST: &[u8] = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;

const PASSWORD: &str = "s3cret-registry-password";
const REFRESH: &str = "long-lived-refresh-token";

/// Every request a server received, as text.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    fn push(&self, req: &str) {
        self.0.lock().unwrap().push(req.to_owned());
    }
    fn all(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
    /// True when any request carried an `Authorization` header, or the secret anywhere.
    fn saw_credentials(&self) -> bool {
        self.all().iter().any(|r| {
            r.to_ascii_lowercase().contains("\r\nauthorization:")
                || r.contains(PASSWORD)
                || r.contains(REFRESH)
        })
    }
}

/// A loopback server that logs each request and answers with `handler`.
fn server(handler: impl Fn(&str) -> Vec<u8> + Send + Sync + 'static) -> (FaultServer, Log) {
    let log = Log::default();
    let l = log.clone();
    let s = FaultServer::start(move |req| {
        l.push(req);
        Some(handler(req))
    });
    (s, log)
}

/// A client with `registry` allowed plain HTTP (and `extra_http` hosts too), with
/// credentials for `registry`.
fn client_for(registry: &str, creds: Credentials, extra_http: &[&str]) -> RegistryClient {
    let mut config = RegistryConfig {
        retries: 0,
        timeouts: Timeouts {
            request: Duration::from_secs(10),
            operation: Duration::from_secs(20),
            ..Timeouts::default()
        },
        ..RegistryConfig::default()
    }
    .with_registry(
        registry,
        RegistrySettings {
            insecure_http: true,
            credentials: Some(creds),
            ..RegistrySettings::default()
        },
    );
    for h in extra_http {
        config = config.allow_http(*h);
    }
    RegistryClient::new(config).unwrap()
}

fn basic() -> Credentials {
    Credentials::Basic {
        username: "alice".into(),
        password: PASSWORD.into(),
    }
}

fn authorized(req: &str) -> bool {
    req.to_ascii_lowercase().contains("\r\nauthorization:")
}

#[tokio::test]
async fn an_upload_location_on_another_host_gets_no_credentials() {
    // Absolute, and protocol-relative (`//host/path`): both name another host.
    for absolute in [true, false] {
        upload_location_on_another_host(absolute).await;
    }
}

async fn upload_location_on_another_host(absolute: bool) {
    // The foreign host asks for credentials on the upload; it must get none, and the client
    // must say why.
    let (evil, evil_log) = server(|_| {
        http_response(
            "401 Unauthorized",
            &[("WWW-Authenticate", r#"Basic realm="evil""#.to_owned())],
            b"",
        )
    });
    let location = format!(
        "{}//{}/v2/team/app/blobs/uploads/u1?state=x",
        if absolute { "http:" } else { "" },
        evil.addr
    );
    let (reg, _) = server(move |req| {
        if !authorized(req) {
            return http_response(
                "401 Unauthorized",
                &[("WWW-Authenticate", r#"Basic realm="registry""#.to_owned())],
                b"",
            );
        }
        if req.starts_with("HEAD ") {
            return http_response("404 Not Found", &[], b"");
        }
        if req.starts_with("POST ") {
            return http_response("202 Accepted", &[("Location", location.clone())], b"");
        }
        http_response("500 Internal Server Error", &[], b"")
    });
    let c = client_for(&reg.addr, basic(), &[&evil.addr]);
    let e = c
        .push_blob(
            &reg.reference("team/app"),
            &Digest::sha256_of(b"blob"),
            b"blob",
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), "oci.origin.foreign_credentials", "{e}");
    let seen = evil_log.all();
    assert!(!seen.is_empty(), "the upload went to the location");
    assert!(seen[0].contains("digest=sha256%3A"), "{}", seen[0]);
    assert!(!evil_log.saw_credentials(), "{seen:?}");
}

#[tokio::test]
async fn an_upload_location_on_the_registry_gets_its_credentials() {
    // The healthy path: a relative Location, credentials on every request to the registry.
    let (reg, log) = server(|req| {
        if !authorized(req) {
            return http_response(
                "401 Unauthorized",
                &[("WWW-Authenticate", r#"Basic realm="registry""#.to_owned())],
                b"",
            );
        }
        if req.starts_with("HEAD ") {
            return http_response("404 Not Found", &[], b"");
        }
        if req.starts_with("POST ") {
            return http_response(
                "202 Accepted",
                &[(
                    "Location",
                    "/v2/team/app/blobs/uploads/u1?state=x".to_owned(),
                )],
                b"",
            );
        }
        if req.starts_with("PUT /v2/team/app/blobs/uploads/u1?state=x&digest=sha256%3A") {
            return http_response("201 Created", &[], b"");
        }
        http_response("500 Internal Server Error", &[], b"")
    });
    let c = client_for(&reg.addr, basic(), &[]);
    c.push_blob(
        &reg.reference("team/app"),
        &Digest::sha256_of(b"blob"),
        b"blob",
    )
    .await
    .unwrap();
    let put = log
        .all()
        .into_iter()
        .find(|r| r.starts_with("PUT "))
        .unwrap();
    assert!(authorized(&put), "{put}");
}

#[tokio::test]
async fn a_blob_redirect_target_does_not_collect_the_refresh_token() {
    let (evil, evil_log) = server(|req| {
        if req.starts_with("POST ") {
            return http_response("200 OK", &[], br#"{"access_token":"t"}"#);
        }
        http_response(
            "401 Unauthorized",
            &[(
                "WWW-Authenticate",
                r#"Bearer realm="https://auth.example/token",service="evil""#.to_owned(),
            )],
            b"",
        )
    });
    let evil_addr = evil.addr.clone();
    let (reg, _) = server(move |req| {
        let path = req.split_whitespace().nth(1).unwrap_or("");
        http_response(
            "307 Temporary Redirect",
            &[("Location", format!("http://{evil_addr}{path}"))],
            b"",
        )
    });
    let c = client_for(
        &reg.addr,
        Credentials::IdentityToken(REFRESH.into()),
        &[&evil.addr],
    );
    let e = c
        .blob(
            &reg.reference("team/app"),
            &Digest::sha256_of(b"blob"),
            1024,
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), "oci.origin.foreign_credentials", "{e}");
    assert!(!evil_log.saw_credentials(), "{:?}", evil_log.all());
}

#[tokio::test]
async fn a_basic_password_never_goes_to_a_plain_http_realm_not_allowed_it() {
    let (tok, tok_log) = server(|_| http_response("200 OK", &[], br#"{"token":"t"}"#));
    let realm = format!("http://{}/token", tok.addr);
    let (reg, _) = server(move |_| {
        http_response(
            "401 Unauthorized",
            &[(
                "WWW-Authenticate",
                format!(r#"Bearer realm="{realm}",service="reg""#),
            )],
            b"",
        )
    });
    // The registry itself is allowed plain HTTP, the realm's host is not.
    let c = client_for(&reg.addr, basic(), &[]);
    let e = c
        .manifest(&reg.reference("team/app:1.0"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "oci.insecure_not_allowed", "{e}");
    assert!(tok_log.all().is_empty(), "{:?}", tok_log.all());
}

#[tokio::test]
async fn a_token_endpoint_that_never_stops_talking_is_cut_off() {
    // A chunked reply of 16 MiB that never ends its JSON string (nor its chunk stream).
    let (tok, _) = server(|_| {
        let mut r = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        let chunk = vec![b'A'; 64 << 10];
        r.extend_from_slice(format!("{:x}\r\n{{\"token\":\"", 10).as_bytes());
        r.extend_from_slice(b"\r\n");
        for _ in 0..256 {
            r.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            r.extend_from_slice(&chunk);
            r.extend_from_slice(b"\r\n");
        }
        r
    });
    let realm = format!("http://{}/token", tok.addr);
    let (reg, _) = server(move |_| {
        http_response(
            "401 Unauthorized",
            &[(
                "WWW-Authenticate",
                format!(r#"Bearer realm="{realm}",service="reg""#),
            )],
            b"",
        )
    });
    for creds in [Credentials::Anonymous, basic()] {
        let c = client_for(&reg.addr, creds, &[&tok.addr]);
        let t = Instant::now();
        let e = c.resolve(&reg.reference("team/app:1.0")).await.unwrap_err();
        assert_eq!(e.code(), "oci.too_large", "{e}");
        assert!(t.elapsed() < Duration::from_secs(10));
    }
}

#[tokio::test]
async fn a_redirect_to_a_plain_http_host_not_allowed_it_is_refused() {
    let (other, other_log) = server(|_| {
        http_response(
            "200 OK",
            &[
                (
                    "Content-Type",
                    "application/vnd.oci.image.manifest.v1+json".to_owned(),
                ),
                (
                    "Docker-Content-Digest",
                    Digest::sha256_of(MANIFEST).to_string(),
                ),
            ],
            MANIFEST,
        )
    });
    let other_addr = other.addr.clone();
    let (reg, _) = server(move |req| {
        let path = req.split_whitespace().nth(1).unwrap_or("");
        http_response(
            "307 Temporary Redirect",
            &[("Location", format!("http://{other_addr}{path}"))],
            b"",
        )
    });
    let c = client_for(&reg.addr, Credentials::Anonymous, &[]);
    let e = c.resolve(&reg.reference("team/app:1.0")).await.unwrap_err();
    assert_eq!(e.code(), "oci.insecure_not_allowed", "{e}");
    assert!(other_log.all().is_empty());
}

#[tokio::test]
async fn endless_redirects_end() {
    let (reg, log) = server(|req| {
        let path = req.split_whitespace().nth(1).unwrap_or("");
        http_response("302 Found", &[("Location", format!("{path}x"))], b"")
    });
    let c = client_for(&reg.addr, Credentials::Anonymous, &[]);
    let e = c
        .manifest(&reg.reference("team/app:1.0"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "oci.origin.redirect", "{e}");
    assert_eq!(log.all().len(), 6);
}

#[tokio::test]
async fn a_digest_header_is_never_the_resolved_digest() {
    // The header names other bytes: resolving the tag fails instead of returning it.
    let lie = Digest::sha256_of(b"the attacker's manifest");
    let (reg, log) = server(move |_| {
        http_response(
            "200 OK",
            &[
                (
                    "Content-Type",
                    "application/vnd.oci.image.manifest.v1+json".to_owned(),
                ),
                ("Docker-Content-Digest", lie.to_string()),
            ],
            MANIFEST,
        )
    });
    let c = client_for(&reg.addr, Credentials::Anonymous, &[]);
    let e = c.resolve(&reg.reference("team/app:1.0")).await.unwrap_err();
    assert_eq!(e.code(), "oci.digest_mismatch", "{e}");
    // The tag was resolved from the bytes (a GET), not from a HEAD's header.
    assert!(log.all().iter().all(|r| r.starts_with("GET ")));
    // Without a header the digest is the bytes' own.
    let (reg, _) = server(|_| {
        http_response(
            "200 OK",
            &[(
                "Content-Type",
                "application/vnd.oci.image.manifest.v1+json".to_owned(),
            )],
            MANIFEST,
        )
    });
    let c = client_for(&reg.addr, Credentials::Anonymous, &[]);
    assert_eq!(
        c.resolve(&reg.reference("team/app:1.0")).await.unwrap(),
        Digest::sha256_of(MANIFEST)
    );
}

#[tokio::test]
async fn credentials_go_to_the_registry_and_its_allowed_realm() {
    // The healthy path still works: Basic credentials at the realm the registry names, the
    // token at the registry.
    let (tok, tok_log) = server(|_| http_response("200 OK", &[], br#"{"token":"tok-1"}"#));
    let realm = format!("http://{}/token", tok.addr);
    let (reg, reg_log) = server(move |req| {
        if req.contains("Bearer tok-1") {
            return http_response(
                "200 OK",
                &[(
                    "Content-Type",
                    "application/vnd.oci.image.manifest.v1+json".to_owned(),
                )],
                MANIFEST,
            );
        }
        http_response(
            "401 Unauthorized",
            &[(
                "WWW-Authenticate",
                format!(r#"Bearer realm="{realm}",service="reg""#),
            )],
            b"",
        )
    });
    let c = client_for(&reg.addr, basic(), &[&tok.addr]);
    let m = c.manifest(&reg.reference("team/app:1.0")).await.unwrap();
    assert_eq!(m.digest, Digest::sha256_of(MANIFEST));
    let token_req = &tok_log.all()[0];
    assert!(
        token_req.contains("scope=repository%3Ateam%2Fapp%3Apull"),
        "{token_req}"
    );
    assert!(token_req.contains("service=reg"), "{token_req}");
    assert!(authorized(token_req));
    assert_eq!(reg_log.all().len(), 2);
}

// ----------------------------------------------------------------------- hostile layouts

mod layouts {
    use std::path::{Path, PathBuf};
    use std::time::{Duration, Instant};

    use provenance_core::{Digest, ImageReference};
    use provenance_oci::{EvidenceSource, ExportOptions, LayoutSource, LayoutWriter};

    /// The example layout of the repository (signed AI images).
    fn example() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/ai-workloads/registry")
    }

    fn copy_dir(from: &Path, to: &Path) {
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

    fn copy() -> (tempfile::TempDir, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("layout");
        copy_dir(&example(), &dir);
        (tmp, dir)
    }

    #[test]
    fn index_json_linked_to_dev_zero_is_refused_unread() {
        let (_tmp, dir) = copy();
        std::fs::remove_file(dir.join("index.json")).unwrap();
        std::os::unix::fs::symlink("/dev/zero", dir.join("index.json")).unwrap();
        let e = LayoutSource::open(&dir).unwrap_err();
        assert_eq!(e.code(), "oci.unsafe_file", "{e}");
        assert!(!e.is_infrastructure());
    }

    #[test]
    fn a_blobs_folder_linked_elsewhere_is_refused() {
        let (_tmp, dir) = copy();
        // Blobs are read only from inside the layout: blobs/sha256 may not be a link.
        let blobs = dir.join("blobs/sha256");
        std::fs::rename(&blobs, dir.join("elsewhere")).unwrap();
        std::os::unix::fs::symlink(dir.join("elsewhere"), &blobs).unwrap();
        let e = LayoutSource::open(&dir).unwrap_err();
        assert_eq!(e.code(), "oci.unsafe_file", "{e}");
    }

    #[test]
    fn a_fifo_is_refused_without_hanging() {
        let (_tmp, dir) = copy();
        std::fs::remove_file(dir.join("oci-layout")).unwrap();
        let ok = std::process::Command::new("mkfifo")
            .arg(dir.join("oci-layout"))
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("SKIPPED: mkfifo not available");
            return;
        }
        let t = Instant::now();
        let e = LayoutSource::open(&dir).unwrap_err();
        assert_eq!(e.code(), "oci.unsafe_file", "{e}");
        assert!(t.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn a_blob_linked_outside_the_layout_is_not_read() {
        let (tmp, dir) = copy();
        let layout = LayoutSource::open(&dir).unwrap();
        let img = ImageReference::parse("registry.example.com/ml/tokenizer:1.0").unwrap();
        let m = layout.manifest(&img).await.unwrap();
        let blob = dir.join("blobs/sha256").join(m.digest.hex());
        let outside = tmp.path().join("outside");
        std::fs::rename(&blob, &outside).unwrap();
        std::os::unix::fs::symlink(&outside, &blob).unwrap();
        let e = layout.manifest(&img).await.unwrap_err();
        assert_eq!(e.code(), "oci.unsafe_file", "{e}");
    }

    #[test]
    fn a_regular_index_json_is_bounded_while_reading() {
        let (_tmp, dir) = copy();
        // 5 MiB of whitespace: larger than the manifest limit.
        std::fs::write(dir.join("index.json"), vec![b' '; 5 << 20]).unwrap();
        let e = LayoutSource::open(&dir).unwrap_err();
        assert_eq!(e.code(), "oci.too_large", "{e}");
    }

    #[test]
    fn the_writer_never_writes_through_a_planted_link() {
        let tmp = tempfile::tempdir().unwrap();
        let victim = tmp.path().join("victim");
        std::fs::write(&victim, "victim").unwrap();
        // A folder holding only a link where oci-layout goes: not a clean layout.
        let exp = tmp.path().join("exp");
        std::fs::create_dir(&exp).unwrap();
        std::os::unix::fs::symlink(&victim, exp.join("oci-layout")).unwrap();
        let e = LayoutWriter::create(&exp).unwrap_err();
        assert_eq!(e.code(), "oci.unsafe_file", "{e}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "victim");
        // A folder holding something else: not ours to write into.
        let other = tmp.path().join("other");
        std::fs::create_dir(&other).unwrap();
        std::fs::write(other.join("notes.txt"), "mine").unwrap();
        let e = LayoutWriter::create(&other).unwrap_err();
        assert_eq!(e.code(), "oci.unsafe_file", "{e}");
        // The destination itself a link.
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&other, &link).unwrap();
        let e = LayoutWriter::create(&link).unwrap_err();
        assert_eq!(e.code(), "oci.unsafe_file", "{e}");
        // A clean layout with links planted where a blob, index.json and their temporary
        // files go: every one is replaced, none written through.
        let clean = tmp.path().join("clean");
        LayoutWriter::create(&clean).unwrap().finish().unwrap();
        let bytes = b"blob bytes";
        let d = Digest::sha256_of(bytes);
        let w = LayoutWriter::create(&clean).unwrap();
        let blob = w.blob_path(&d);
        std::os::unix::fs::symlink(&victim, &blob).unwrap();
        assert!(!w.has_blob(&d));
        w.put_blob(&d, bytes).unwrap();
        std::fs::remove_file(clean.join("index.json")).unwrap();
        std::os::unix::fs::symlink(&victim, clean.join("index.json")).unwrap();
        w.finish().unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "victim");
        assert_eq!(std::fs::read(&blob).unwrap(), bytes);
        assert!(
            !std::fs::symlink_metadata(clean.join("index.json"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
    }

    #[tokio::test]
    async fn export_into_a_folder_holding_a_link_writes_nothing_through_it() {
        let tmp = tempfile::tempdir().unwrap();
        let victim = tmp.path().join("victim");
        std::fs::write(&victim, "victim").unwrap();
        let exp = tmp.path().join("exp");
        std::fs::create_dir(&exp).unwrap();
        std::os::unix::fs::symlink(&victim, exp.join("oci-layout")).unwrap();
        let src = LayoutSource::open(example()).unwrap();
        let img = ImageReference::parse("registry.example.com/ml/llm-server:1.0").unwrap();
        let e = provenance_oci::export(&src, &img, &exp, &ExportOptions::default())
            .await
            .unwrap_err();
        assert_eq!(e.code(), "oci.unsafe_file", "{e}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "victim");
    }

    #[tokio::test]
    async fn evidence_held_for_one_image_is_bounded_over_all_its_layers() {
        use provenance_oci::Limits;
        let img = ImageReference::parse("registry.example.com/ml/llm-server:1.0").unwrap();
        let full = LayoutSource::open(example()).unwrap();
        let d = full.resolve(&img).await.unwrap();
        let sigs = full.signatures(&img, &d, None).await.unwrap();
        let atts = full.attestations(&img, &d, None).await.unwrap();
        let biggest = sigs
            .iter()
            .map(|s| s.payload.len())
            .chain(atts.iter().map(|a| a.envelope.len()))
            .max()
            .unwrap() as u64;
        let total: u64 = atts.iter().map(|a| a.envelope.len() as u64).sum();
        assert!(atts.len() >= 2 && total > biggest);
        // Each layer is under the per-blob limit, all of them together over the per-image one.
        let small = LayoutSource::open_with_limits(
            example(),
            Limits {
                max_blob_bytes: biggest,
                max_evidence_bytes: total - 1,
                ..Limits::default()
            },
        )
        .unwrap();
        // What crosses the budget is left out unread (the image's owner sized it): fewer
        // attestations, never an error that `failurePolicy: Ignore` would admit.
        let kept = small.attestations(&img, &d, None).await.unwrap();
        assert!(kept.len() < atts.len(), "{} of {}", kept.len(), atts.len());
        let held: u64 = kept.iter().map(|a| a.envelope.len() as u64).sum();
        assert!(held < total, "{held} of {total}");
    }

    #[tokio::test]
    async fn an_index_naming_one_manifest_a_thousand_times_is_copied_once() {
        use provenance_core::DigestAlgorithm;
        use provenance_oci::Manifest;
        let tmp = tempfile::tempdir().unwrap();
        let src_dir = tmp.path().join("src");
        let mut w = LayoutWriter::create(&src_dir).unwrap();
        let empty = Digest::sha256_of(b"{}");
        w.put_blob(&empty, b"{}").unwrap();
        let child = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty.to_string(), "size": 2},
            "layers": [],
        }))
        .unwrap();
        let cd = Digest::sha256_of(&child);
        w.put_blob(&cd, &child).unwrap();
        let entry = serde_json::json!({"mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": cd.to_string(), "size": child.len(),
            "platform": {"os": "linux", "architecture": "amd64"}});
        let index = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": vec![entry; 1000],
        }))
        .unwrap();
        let index = Manifest::from_bytes(index, DigestAlgorithm::Sha256, None).unwrap();
        w.add_entry(&index, Some("1.0"), None).unwrap();
        w.finish().unwrap();
        let src = LayoutSource::open(&src_dir).unwrap();
        let img = ImageReference::parse("registry.example.com/team/app:1.0").unwrap();
        let report = provenance_oci::export(
            &src,
            &img,
            &tmp.path().join("out"),
            &ExportOptions::default(),
        )
        .await
        .unwrap();
        // The index and its one platform manifest.
        assert_eq!(report.manifests, 2);
    }

    #[tokio::test]
    async fn an_export_has_one_deadline_over_everything_it_copies() {
        // A registry that never answers: the export's own deadline ends it, whatever the
        // per-request deadlines are.
        let s = super::common::FaultServer::start(|_| None);
        let c = provenance_oci::RegistryClient::new(
            provenance_oci::RegistryConfig {
                retries: 0,
                timeouts: provenance_oci::Timeouts {
                    request: Duration::from_secs(60),
                    operation: Duration::from_secs(120),
                    ..provenance_oci::Timeouts::default()
                },
                ..provenance_oci::RegistryConfig::default()
            }
            .allow_http(s.addr.clone()),
        )
        .unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let t = Instant::now();
        let e = provenance_oci::export(
            &c,
            &s.reference("team/app:1.0"),
            &tmp.path().join("out"),
            &ExportOptions {
                deadline: Some(Duration::from_millis(500)),
                ..ExportOptions::default()
            },
        )
        .await
        .unwrap_err();
        assert_eq!(e.code(), "oci.timeout", "{e}");
        assert!(e.to_string().contains("export of"), "{e}");
        assert!(t.elapsed() < Duration::from_secs(10));
    }
}
