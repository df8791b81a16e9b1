//! Faults a healthy registry does not produce, served by a loopback responder: stalls, 5xx,
//! bytes that do not match their digest, truncated bodies, lying digest headers, oversized
//! manifests, the OCI 1.1 referrers API, and the Basic / Bearer authentication flows. Every
//! fault must end in a specific error, never in content.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{FaultServer, http_response};
use provenance_core::Digest;
use provenance_oci::{
    Credentials, EvidenceSource, ReferrersOrigin, RegistryClient, RegistryConfig, RegistrySettings,
    Timeouts,
};

const MANIFEST: &[u8] = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;

fn client(server: &FaultServer, retries: u32, request: Duration) -> RegistryClient {
    RegistryClient::new(
        RegistryConfig {
            retries,
            backoff: Duration::from_millis(5),
            timeouts: Timeouts {
                request,
                operation: request * 4,
                ..Timeouts::default()
            },
            ..RegistryConfig::default()
        }
        .allow_http(server.addr.clone()),
    )
    .unwrap()
}

fn manifest_ok() -> Vec<u8> {
    http_response(
        "200 OK",
        &[
            (
                "Content-Type",
                "application/vnd.oci.image.manifest.v1+json".into(),
            ),
            (
                "Docker-Content-Digest",
                Digest::sha256_of(MANIFEST).to_string(),
            ),
        ],
        MANIFEST,
    )
}

#[tokio::test]
async fn stall_past_the_deadline_is_a_timeout() {
    let s = FaultServer::start(|_| None);
    let c = client(&s, 0, Duration::from_millis(300));
    let start = Instant::now();
    let e = c.resolve(&s.reference("r/app:v1")).await.unwrap_err();
    assert_eq!(e.code(), "oci.timeout", "{e}");
    assert!(e.is_infrastructure());
    assert!(start.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn server_errors_are_retried_then_reported() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c2 = calls.clone();
    let s = FaultServer::start(move |_| {
        if c2.fetch_add(1, Ordering::SeqCst) < 2 {
            Some(http_response("503 Service Unavailable", &[], b"busy"))
        } else {
            Some(manifest_ok())
        }
    });
    let img = s.reference("r/app:v1");
    let d = client(&s, 2, Duration::from_secs(5))
        .resolve(&img)
        .await
        .unwrap();
    assert_eq!(d, Digest::sha256_of(MANIFEST));
    assert_eq!(calls.load(Ordering::SeqCst), 3);

    let always = FaultServer::start(|_| Some(http_response("500 Internal Server Error", &[], b"")));
    let e = client(&always, 1, Duration::from_secs(5))
        .resolve(&always.reference("r/app:v1"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "oci.registry", "{e}");
    assert!(e.is_infrastructure());
    assert!(matches!(
        e,
        provenance_oci::Error::Registry { status: 500, .. }
    ));
}

#[tokio::test]
async fn blob_bytes_not_matching_the_digest_are_rejected() {
    let s = FaultServer::start(|_| Some(http_response("200 OK", &[], b"evil bytes")));
    let want = Digest::sha256_of(b"good bytes");
    let e = client(&s, 0, Duration::from_secs(5))
        .blob(&s.reference("r/app"), &want, 1024)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "oci.digest_mismatch", "{e}");
    assert!(!e.is_infrastructure());
    // Same for a manifest fetched by digest.
    let e = client(&s, 0, Duration::from_secs(5))
        .manifest_at(&s.reference("r/app"), &want)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "oci.digest_mismatch", "{e}");
}

#[tokio::test]
async fn truncated_body_is_a_network_error() {
    let s = FaultServer::start(|_| {
        let mut r =
            b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n".to_vec();
        r.extend_from_slice(b"only a little");
        Some(r)
    });
    let e = client(&s, 0, Duration::from_secs(5))
        .blob(&s.reference("r/app"), &Digest::sha256_of(b"x"), 4096)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "oci.network", "{e}");
}

#[tokio::test]
async fn tag_whose_bytes_do_not_match_the_announced_digest() {
    // The registry announces one digest and serves other bytes (a tag moving between the
    // HEAD and the GET looks like this too).
    let s = FaultServer::start(|_| {
        Some(http_response(
            "200 OK",
            &[(
                "Docker-Content-Digest",
                Digest::sha256_of(b"the other manifest").to_string(),
            )],
            MANIFEST,
        ))
    });
    let e = client(&s, 0, Duration::from_secs(5))
        .manifest(&s.reference("r/app:v1"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "oci.digest_mismatch", "{e}");
}

#[tokio::test]
async fn oversized_manifest_is_refused() {
    let big = vec![b' '; 5 << 20];
    let s = FaultServer::start(move |_| Some(http_response("200 OK", &[], &big)));
    let e = client(&s, 0, Duration::from_secs(10))
        .manifest(&s.reference("r/app:v1"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "oci.too_large", "{e}");
}

#[tokio::test]
async fn referrers_api_is_used_when_the_registry_has_it() {
    let subject = Digest::sha256_of(MANIFEST);
    let referrer = Digest::sha256_of(b"referrer manifest");
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": referrer.to_string(),
             "size": 17, "artifactType": "application/vnd.dev.sigstore.bundle.v0.3+json"},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": Digest::sha256_of(b"o").to_string(),
             "size": 1, "artifactType": "application/x-other"}
        ]
    }))
    .unwrap();
    let path = format!("GET /v2/r/app/referrers/{subject}");
    let s = FaultServer::start(move |req| {
        if req.starts_with(&path) {
            Some(http_response(
                "200 OK",
                &[(
                    "Content-Type",
                    "application/vnd.oci.image.index.v1+json".into(),
                )],
                &index,
            ))
        } else {
            Some(http_response("404 Not Found", &[], b""))
        }
    });
    let c = client(&s, 0, Duration::from_secs(5));
    let img = s.reference("r/app");
    let r = c
        .referrers(
            &img,
            &subject,
            Some("application/vnd.dev.sigstore.bundle.v0.3+json"),
        )
        .await
        .unwrap();
    assert_eq!(r.origin, ReferrersOrigin::Api);
    assert_eq!(r.items.len(), 1, "filtered client-side too");
    assert_eq!(r.items[0].digest, referrer);
    // Another subject: the API answers 404, the tag schema has nothing: empty.
    let r = c
        .referrers(&img, &Digest::sha256_of(b"z"), None)
        .await
        .unwrap();
    assert_eq!(r.origin, ReferrersOrigin::TagSchema);
    assert!(r.items.is_empty());
}

fn basic_server(user: &'static str, pass: &'static str) -> FaultServer {
    use base64::Engine;
    let want = format!(
        "authorization: basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
    .to_ascii_lowercase();
    FaultServer::start(move |req| {
        if req.to_ascii_lowercase().contains(&want) {
            Some(manifest_ok())
        } else {
            Some(http_response(
                "401 Unauthorized",
                &[("WWW-Authenticate", "Basic realm=\"test\"".into())],
                b"",
            ))
        }
    })
}

#[tokio::test]
async fn basic_auth_from_settings_and_failures() {
    let s = basic_server("alice", "pw");
    let img = s.reference("r/app:v1");
    let e = client(&s, 0, Duration::from_secs(5))
        .resolve(&img)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "oci.auth", "{e}");
    assert!(e.is_infrastructure());

    let with = |password: &str| {
        RegistryClient::new(RegistryConfig::default().with_registry(
            s.addr.clone(),
            RegistrySettings {
                insecure_http: true,
                credentials: Some(Credentials::Basic {
                    username: "alice".into(),
                    password: password.into(),
                }),
                ..Default::default()
            },
        ))
        .unwrap()
    };
    assert_eq!(
        with("pw").resolve(&img).await.unwrap(),
        Digest::sha256_of(MANIFEST)
    );
    let e = with("wrong").resolve(&img).await.unwrap_err();
    assert_eq!(e.code(), "oci.auth", "{e}");
}

#[tokio::test]
async fn basic_auth_from_docker_config() {
    let s = basic_server("bob", "secret");
    let cfg = provenance_oci::DockerConfig::from_json(
        format!(r#"{{"auths":{{"{}":{{"auth":"{}"}}}}}}"#, s.addr, {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode("bob:secret")
        })
        .as_bytes(),
    )
    .unwrap();
    let c = RegistryClient::new(
        RegistryConfig {
            docker_config: Some(cfg),
            ..RegistryConfig::default()
        }
        .allow_http(s.addr.clone()),
    )
    .unwrap();
    assert_eq!(
        c.resolve(&s.reference("r/app:v1")).await.unwrap(),
        Digest::sha256_of(MANIFEST)
    );
}

#[tokio::test]
async fn bearer_token_flow_anonymous_and_with_credentials() {
    let token_requests = Arc::new(AtomicUsize::new(0));
    let tr = token_requests.clone();
    let addr_cell: Arc<std::sync::OnceLock<String>> = Arc::new(std::sync::OnceLock::new());
    let a2 = addr_cell.clone();
    let s = FaultServer::start(move |req| {
        let addr = a2.get().cloned().unwrap_or_default();
        let lower = req.to_ascii_lowercase();
        let challenge = format!(
            "Bearer realm=\"http://{addr}/token\",service=\"test-registry\",scope=\"repository:r/app:pull\""
        );
        if req.starts_with("GET /token") {
            tr.fetch_add(1, Ordering::SeqCst);
            if !req.contains("scope=repository%3Ar%2Fapp%3Apull")
                && !req.contains("scope=repository:r/app:pull")
            {
                return Some(http_response("400 Bad Request", &[], b"bad scope"));
            }
            return Some(http_response(
                "200 OK",
                &[("Content-Type", "application/json".into())],
                br#"{"token":"tok-123","expires_in":300}"#,
            ));
        }
        if lower.contains("authorization: bearer tok-123") {
            return Some(manifest_ok());
        }
        Some(http_response(
            "401 Unauthorized",
            &[("WWW-Authenticate", challenge)],
            b"",
        ))
    });
    addr_cell.set(s.addr.clone()).unwrap();
    let c = client(&s, 0, Duration::from_secs(5));
    let img = s.reference("r/app:v1");
    assert_eq!(c.resolve(&img).await.unwrap(), Digest::sha256_of(MANIFEST));
    assert_eq!(token_requests.load(Ordering::SeqCst), 1);
    // The token is cached per registry and repository.
    c.resolve(&img).await.unwrap();
    assert_eq!(token_requests.load(Ordering::SeqCst), 1);
}

/// A registry whose token endpoint only speaks the OAuth2 refresh-token grant: `POST` with a
/// form holding `grant_type=refresh_token`, the refresh token `rt-secret`, `service`, `scope`
/// and `client_id`. It counts the grants it accepted.
fn oauth2_registry() -> (FaultServer, Arc<AtomicUsize>) {
    let grants = Arc::new(AtomicUsize::new(0));
    let g = grants.clone();
    let addr_cell: Arc<std::sync::OnceLock<String>> = Arc::new(std::sync::OnceLock::new());
    let a2 = addr_cell.clone();
    let s = FaultServer::start(move |req| {
        let addr = a2.get().cloned().unwrap_or_default();
        let lower = req.to_ascii_lowercase();
        if req.starts_with("GET /oauth/token") {
            // The token GET flow (for anonymous and Basic credentials) must not be used with an
            // identity token.
            return Some(http_response("400 Bad Request", &[], b"GET not accepted"));
        }
        if req.starts_with("POST /oauth/token") {
            let body = req.split("\r\n\r\n").nth(1).unwrap_or("");
            let mut form: Vec<(&str, &str)> = body
                .split('&')
                .filter_map(|kv| kv.split_once('='))
                .collect();
            form.sort();
            let ok_type = lower.contains("content-type: application/x-www-form-urlencoded");
            let want = vec![
                ("client_id", "provenance"),
                ("grant_type", "refresh_token"),
                ("refresh_token", "rt-secret"),
                ("scope", "repository%3Ar%2Fapp%3Apull"),
                ("service", "test-registry"),
            ];
            if !ok_type || form != want {
                return Some(http_response(
                    "401 Unauthorized",
                    &[("Content-Type", "application/json".into())],
                    br#"{"error":"invalid_grant"}"#,
                ));
            }
            g.fetch_add(1, Ordering::SeqCst);
            return Some(http_response(
                "200 OK",
                &[("Content-Type", "application/json".into())],
                br#"{"access_token":"at-456","scope":"repository:r/app:pull","expires_in":300,"issued_at":"2026-01-01T00:00:00Z"}"#,
            ));
        }
        if lower.contains("authorization: bearer at-456") {
            return Some(manifest_ok());
        }
        if lower.contains("authorization:") {
            return Some(http_response("403 Forbidden", &[], b"wrong credentials"));
        }
        Some(http_response(
            "401 Unauthorized",
            &[(
                "WWW-Authenticate",
                format!(
                    "Bearer realm=\"http://{addr}/oauth/token\",service=\"test-registry\",scope=\"repository:r/app:pull\""
                ),
            )],
            b"",
        ))
    });
    addr_cell.set(s.addr.clone()).unwrap();
    (s, grants)
}

fn with_docker_config(s: &FaultServer, cfg: provenance_oci::DockerConfig) -> RegistryClient {
    RegistryClient::new(
        RegistryConfig {
            docker_config: Some(cfg),
            ..RegistryConfig::default()
        }
        .allow_http(s.addr.clone()),
    )
    .unwrap()
}

#[tokio::test]
async fn identity_token_from_config_uses_the_oauth2_refresh_grant() {
    let (s, grants) = oauth2_registry();
    let cfg = provenance_oci::DockerConfig::from_json(
        format!(
            r#"{{"auths":{{"{}":{{"identitytoken":"rt-secret"}}}}}}"#,
            s.addr
        )
        .as_bytes(),
    )
    .unwrap();
    let c = with_docker_config(&s, cfg);
    let img = s.reference("r/app:v1");
    assert_eq!(c.resolve(&img).await.unwrap(), Digest::sha256_of(MANIFEST));
    assert_eq!(grants.load(Ordering::SeqCst), 1);
    // The access token is cached per registry and repository.
    c.resolve(&img).await.unwrap();
    assert_eq!(grants.load(Ordering::SeqCst), 1);

    // A refresh token the endpoint refuses is an authentication error, not content.
    let cfg = provenance_oci::DockerConfig::from_json(
        format!(
            r#"{{"auths":{{"{}":{{"identitytoken":"rt-revoked"}}}}}}"#,
            s.addr
        )
        .as_bytes(),
    )
    .unwrap();
    let e = with_docker_config(&s, cfg).resolve(&img).await.unwrap_err();
    assert_eq!(e.code(), "oci.auth", "{e}");
    assert!(e.to_string().contains("invalid_grant"), "{e}");
}

#[tokio::test]
async fn helper_token_username_uses_the_oauth2_refresh_grant() {
    let (s, grants) = oauth2_registry();
    let dir = tempfile::tempdir().unwrap();
    let helper = dir.path().join("docker-credential-oauthtest");
    std::fs::write(
        &helper,
        "#!/bin/sh\nread server\nprintf '{\"ServerURL\":\"%s\",\"Username\":\"<token>\",\"Secret\":\"rt-secret\"}' \"$server\"\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let cfg = provenance_oci::DockerConfig::from_json(
        format!(r#"{{"credHelpers":{{"{}":"oauthtest"}}}}"#, s.addr).as_bytes(),
    )
    .unwrap()
    .with_helper_dir(dir.path());
    assert_eq!(
        cfg.credentials_for(&s.addr).await.unwrap(),
        Credentials::IdentityToken("rt-secret".into())
    );
    let c = with_docker_config(&s, cfg);
    assert_eq!(
        c.resolve(&s.reference("r/app:v1")).await.unwrap(),
        Digest::sha256_of(MANIFEST)
    );
    assert_eq!(grants.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn identity_token_is_only_exchanged_at_a_bearer_realm() {
    // Basic challenge with an identity token: refused, the token is never sent as a password.
    let basic = FaultServer::start(|req| {
        if req.to_ascii_lowercase().contains("authorization:") {
            return Some(http_response(
                "500 Internal Server Error",
                &[],
                b"credential sent",
            ));
        }
        Some(http_response(
            "401 Unauthorized",
            &[("WWW-Authenticate", "Basic realm=\"r\"".into())],
            b"",
        ))
    });
    let cfg = provenance_oci::DockerConfig::from_json(
        format!(
            r#"{{"auths":{{"{}":{{"identitytoken":"rt-secret"}}}}}}"#,
            basic.addr
        )
        .as_bytes(),
    )
    .unwrap();
    let e = with_docker_config(&basic, cfg)
        .resolve(&basic.reference("r/app:v1"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "oci.auth", "{e}");
    assert!(e.to_string().contains("Bearer realm"), "{e}");
}

/// A keep-alive registry that answers every request with a small 404 and counts the
/// connections it accepts.
fn keep_alive_not_found() -> (String, Arc<AtomicUsize>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut s) = conn else { continue };
            count.fetch_add(1, Ordering::SeqCst);
            std::thread::spawn(move || {
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let body =
                    br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#;
                let mut buf = Vec::new();
                let mut tmp = [0u8; 4096];
                loop {
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        let head = format!(
                            "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                            body.len()
                        );
                        // Head and body in two writes, as a registry may send them.
                        if s.write_all(head.as_bytes()).is_err() {
                            return;
                        }
                        std::thread::sleep(Duration::from_millis(5));
                        if s.write_all(body).is_err() {
                            return;
                        }
                    }
                    match s.read(&mut tmp) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&tmp[..n]),
                    }
                }
            });
        }
    });
    (addr, accepted)
}

#[tokio::test]
async fn error_answers_keep_their_connection() {
    // A registry without the referrers API answers 404 twice per lookup: each answer's body
    // is read, so that one connection serves them all (far away, a new connection costs its
    // TCP and TLS handshakes).
    let (addr, accepted) = keep_alive_not_found();
    let c = RegistryClient::new(
        RegistryConfig {
            retries: 0,
            ..RegistryConfig::default()
        }
        .allow_http(addr.clone()),
    )
    .unwrap();
    for tag in ["v1", "v2", "v3"] {
        let img = provenance_core::ImageReference::parse(&format!("{addr}/r/app:{tag}")).unwrap();
        let e = c.resolve(&img).await.unwrap_err();
        assert_eq!(e.code(), "oci.not_found", "{e}");
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "one connection for three 404s"
    );
}
