//! Keyless signing against @sigstore/mock's Fulcio, CT log, Rekor v1 and timestamp authority,
//! served over HTTP on loopback by scripts/fixtures/sigstore/mock-services.js (Node 20 and
//! `npm ci` there, done by scripts/ci-setup-sigstore-node.sh). The bundles are verified by
//! provenance-core's verifier and cross-checked with @sigstore/verify and sigstore-python.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use provenance_core::verify::{
    Artifact, Check, Expectation, IdentityExpectation, SignatureMaterial, Signer, Verifier,
};
use provenance_core::{Digest, TrustRoot, UnixTime};
use provenance_oci::Error;
use provenance_oci::keyless::{
    IdentityToken, KeylessConfig, KeylessSigner, TimestampProtocol, TokenSource,
};

const ISSUER: &str = "https://token.actions.githubusercontent.com";
const SUBJECT: &str = "https://github.com/acme/model/.github/workflows/release.yml@refs/heads/main";

fn node_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/fixtures/sigstore")
}

fn require(what: &str, ok: bool) -> bool {
    if !ok {
        if std::env::var_os("CI").is_some() {
            panic!("{what} missing: run scripts/ci-setup-sigstore-node.sh");
        }
        eprintln!("SKIPPED: {what} missing (scripts/ci-setup-sigstore-node.sh installs it)");
    }
    ok
}

/// The mock services, killed when dropped.
struct Mock {
    child: Child,
    _stdin: ChildStdin,
    url: String,
    root_json: Vec<u8>,
    token: String,
    dir: tempfile::TempDir,
}

impl Drop for Mock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Mock {
    fn start(faults: &[&str]) -> Option<Mock> {
        let dir = node_dir();
        let have_node = Command::new("node")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !require("node", have_node)
            || !require(
                "scripts/fixtures/sigstore/node_modules",
                dir.join("node_modules/@sigstore/mock").is_dir(),
            )
        {
            return None;
        }
        let mut cmd = Command::new("node");
        cmd.arg(dir.join("mock-services.js"));
        for f in faults {
            cmd.args(["--fault", f]);
        }
        let mut child = cmd
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("mock-services.js said {line:?}: {e}"));
        let tmp = tempfile::tempdir().unwrap();
        let root_json = serde_json::to_vec_pretty(&v["trusted_root"]).unwrap();
        std::fs::write(tmp.path().join("trusted_root.json"), &root_json).unwrap();
        Some(Mock {
            child,
            _stdin: stdin,
            url: v["url"].as_str().unwrap().to_owned(),
            root_json,
            token: v["token"].as_str().unwrap().to_owned(),
            dir: tmp,
        })
    }

    fn root(&self) -> TrustRoot {
        TrustRoot::from_trusted_root_json(&self.root_json).unwrap()
    }

    fn config(&self) -> KeylessConfig {
        let mut c = KeylessConfig::new(&self.url, &self.url, self.root());
        c.allow_http = true;
        c.timeout = Duration::from_secs(20);
        c
    }

    fn with_tsa(&self, protocol: TimestampProtocol) -> KeylessConfig {
        self.config()
            .with_timestamp_authority(&format!("{}/api/v1/timestamp", self.url), protocol)
    }

    fn token(&self) -> IdentityToken {
        IdentityToken::parse(&self.token).unwrap()
    }

    /// The requests the services saw, as `METHOD /path` lines.
    fn requests(&self) -> Vec<String> {
        let out = Command::new("node")
            .arg("-e")
            .arg(format!(
                "fetch('{}/log').then(r => r.text()).then(t => process.stdout.write(t))",
                self.url
            ))
            .output()
            .unwrap();
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .filter(|l| l != "GET /log")
            .collect()
    }
}

fn now() -> UnixTime {
    UnixTime(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
            + 60,
    )
}

/// Verifies with a fresh provenance-core verifier (independent of the signer's).
fn verify_ours(mock: &Mock, bundle: &[u8], artifact: Artifact<'_>) -> provenance_core::Verified {
    Verifier::new(&mock.root())
        .unwrap()
        .verify(
            artifact,
            &SignatureMaterial::Bundle(bundle.to_vec()),
            &Expectation::Keyless(IdentityExpectation::exact(SUBJECT, ISSUER)),
            now(),
        )
        .unwrap()
}

/// Cross-checks with @sigstore/verify and sigstore-python (each must be installed in CI).
fn cross_check(mock: &Mock, name: &str, bundle: &[u8], mode: &str, value: &str) {
    let bundle_path = mock.dir.path().join(format!("{name}.sigstore.json"));
    std::fs::write(&bundle_path, bundle).unwrap();
    let root_path = mock.dir.path().join("trusted_root.json");
    let args = [
        bundle_path.to_str().unwrap(),
        root_path.to_str().unwrap(),
        SUBJECT,
        ISSUER,
        mode,
        value,
    ];
    let out = Command::new("node")
        .arg(node_dir().join("verify-one.js"))
        .args(args)
        .current_dir(node_dir())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "@sigstore/verify rejected {name}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let have_python = Command::new("python3")
        .args(["-c", "import sigstore"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_python {
        if std::env::var_os("CI").is_some() {
            panic!("sigstore-python missing (scripts/ci-setup-model-signing.sh installs it)");
        }
        eprintln!("SKIPPED: sigstore-python cross-check (python3 -m pip install sigstore)");
        return;
    }
    let out = Command::new("python3")
        .arg(node_dir().join("verify_one_sigstore_python.py"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sigstore-python rejected {name}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn blob_signed_keyless_verifies_here_and_in_sigstore_js_and_python() {
    let Some(mock) = Mock::start(&[]) else { return };
    let signer = KeylessSigner::new(mock.with_tsa(TimestampProtocol::Rfc3161)).unwrap();
    let blob = b"model weights stand-in\n";
    let signed = signer.sign_blob(&mock.token(), blob).await.unwrap();

    let Signer::Certificate(id) = &signed.verified.signer else {
        panic!("expected a certificate signer")
    };
    assert_eq!(id.subject(), Some(SUBJECT));
    assert_eq!(id.issuer.as_deref(), Some(ISSUER));
    assert!(signed.verified.transparency_verified);
    // SET integrated time and the RFC 3161 timestamp.
    assert_eq!(signed.verified.verified_times.len(), 2, "{signed:?}");

    let bundle: serde_json::Value = serde_json::from_slice(&signed.json).unwrap();
    assert_eq!(
        bundle["mediaType"],
        "application/vnd.dev.sigstore.bundle.v0.3+json"
    );
    assert_eq!(
        bundle["verificationMaterial"]["tlogEntries"][0]["kindVersion"]["kind"],
        "hashedrekord"
    );
    let ours = verify_ours(&mock, &signed.json, Artifact::Bytes(blob));
    assert_eq!(ours.signer, signed.verified.signer);
    // A different blob does not verify with it.
    let other = Verifier::new(&mock.root()).unwrap().verify(
        Artifact::Bytes(b"other"),
        &SignatureMaterial::Bundle(signed.json.clone()),
        &Expectation::Keyless(IdentityExpectation::exact(SUBJECT, ISSUER)),
        now(),
    );
    assert_eq!(other.unwrap_err().code(), "verify.artifact.mismatch");

    let artifact = mock.dir.path().join("blob");
    std::fs::write(&artifact, blob).unwrap();
    cross_check(
        &mock,
        "blob",
        &signed.json,
        "--artifact",
        artifact.to_str().unwrap(),
    );
    assert_eq!(
        mock.requests(),
        [
            "POST /api/v2/signingCert",
            "POST /api/v1/timestamp",
            "POST /api/v1/log/entries"
        ]
    );
}

#[tokio::test]
async fn in_toto_attestation_signed_keyless_verifies_here_and_in_sigstore_js_and_python() {
    let Some(mock) = Mock::start(&[]) else { return };
    let signer = KeylessSigner::new(mock.with_tsa(TimestampProtocol::SigstoreJson)).unwrap();
    let artifact = b"model.safetensors stand-in";
    let digest = Digest::sha256_of(artifact);
    let statement = serde_json::json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "model.safetensors", "digest": {"sha256": digest.hex()}}],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {"buildDefinition": {"buildType": "https://provenance.test/keyless"}},
    });
    let statement = serde_json::to_vec(&statement).unwrap();
    // One certificate, two signatures (the certificate is reused while valid).
    let cert = signer.certify(&mock.token()).await.unwrap();
    assert_eq!(cert.identity().subject(), Some(SUBJECT));
    // The certificate is a provenance_core Signer: its key signs, its material is the leaf.
    {
        use provenance_core::sign::{Signer as _, SignerMaterial};
        let sig = cert.sign(b"message").unwrap();
        let key = cert.public_key();
        aws_lc_rs::signature::UnparsedPublicKey::new(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
            key.raw(),
        )
        .verify(b"message", &sig)
        .unwrap();
        assert_eq!(
            cert.material(),
            SignerMaterial::CertificateChain(vec![cert.certificate_der().to_vec()])
        );
    }
    let signed = signer.sign_in_toto_with(&cert, &statement).await.unwrap();
    let again = signer.sign_in_toto_with(&cert, &statement).await.unwrap();
    assert_ne!(signed.json, again.json);

    let bundle: serde_json::Value = serde_json::from_slice(&signed.json).unwrap();
    assert_eq!(
        bundle["verificationMaterial"]["tlogEntries"][0]["kindVersion"]["kind"],
        "dsse"
    );
    let ours = verify_ours(&mock, &signed.json, Artifact::Digest(&digest));
    let (ptype, payload) = ours.payload.unwrap();
    assert_eq!(ptype, "application/vnd.in-toto+json");
    assert_eq!(payload, statement);
    cross_check(
        &mock,
        "attestation",
        &signed.json,
        "--subject-sha256",
        &digest.hex(),
    );
    assert_eq!(
        mock.requests()
            .iter()
            .filter(|r| *r == "POST /api/v2/signingCert")
            .count(),
        1
    );

    // Not an in-toto statement with a SHA-256 subject: refused before anything is signed.
    let e = signer
        .sign_in_toto_with(
            &cert,
            br#"{"_type":"https://in-toto.io/Statement/v1","subject":[]}"#,
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), "oci.sign.input");
}

#[tokio::test]
async fn fulcio_certifying_another_key_is_refused_before_anything_is_signed() {
    let Some(mock) = Mock::start(&["fulcio-other-key"]) else {
        return;
    };
    let signer = KeylessSigner::new(mock.config()).unwrap();
    let e = signer.sign_blob(&mock.token(), b"x").await.unwrap_err();
    assert_eq!(e.code(), "oci.sign.certificate_key_mismatch", "{e}");
    assert_eq!(mock.requests(), ["POST /api/v2/signingCert"]);
}

#[tokio::test]
async fn sct_from_a_log_outside_the_trust_root_is_refused() {
    let Some(mock) = Mock::start(&["fulcio-no-sct"]) else {
        return;
    };
    let signer = KeylessSigner::new(mock.config()).unwrap();
    let e = signer.sign_blob(&mock.token(), b"x").await.unwrap_err();
    assert_eq!(e.code(), "oci.sign.certificate_sct", "{e}");
    assert!(e.to_string().contains("does not list"), "{e}");
    assert_eq!(mock.requests(), ["POST /api/v2/signingCert"]);
}

#[tokio::test]
async fn certificate_from_a_ca_outside_the_trust_root_is_refused() {
    let (Some(a), Some(b)) = (Mock::start(&[]), Mock::start(&[])) else {
        return;
    };
    // Services of `a`, trust root of `b`.
    let mut config = a.config();
    config.trust_root = b.root();
    let signer = KeylessSigner::new(config).unwrap();
    let e = signer.sign_blob(&a.token(), b"x").await.unwrap_err();
    assert_eq!(e.code(), "oci.sign.certificate_chain", "{e}");
}

#[tokio::test]
async fn rekor_answer_with_a_bad_set_is_refused() {
    let Some(mock) = Mock::start(&["rekor-bad-set"]) else {
        return;
    };
    let signer = KeylessSigner::new(mock.config()).unwrap();
    let e = signer.sign_blob(&mock.token(), b"x").await.unwrap_err();
    assert_eq!(e.code(), "oci.sign.bundle_unverified", "{e}");
    let Error::SignedBundleUnverified { check, .. } = e else {
        panic!("{e:?}")
    };
    assert_eq!(check, Check::TlogSet);
}

#[tokio::test]
async fn rekor_entry_for_another_signature_is_refused() {
    let Some(mock) = Mock::start(&["rekor-other-body"]) else {
        return;
    };
    let signer = KeylessSigner::new(mock.config()).unwrap();
    let e = signer.sign_blob(&mock.token(), b"x").await.unwrap_err();
    let Error::SignedBundleUnverified { check, .. } = &e else {
        panic!("{e:?}")
    };
    assert_eq!(*check, Check::TlogEntryMismatch, "{e}");
}

#[tokio::test]
async fn certificate_for_another_identity_than_expected_is_refused() {
    let Some(mock) = Mock::start(&[]) else { return };
    let mut config = mock.config();
    config.expected_identity = Some(IdentityExpectation::exact(
        "https://github.com/acme/model/.github/workflows/other.yml@refs/heads/main",
        ISSUER,
    ));
    let signer = KeylessSigner::new(config).unwrap();
    let e = signer.sign_blob(&mock.token(), b"x").await.unwrap_err();
    let Error::SignedBundleUnverified { check, .. } = &e else {
        panic!("{e:?}")
    };
    assert_eq!(*check, Check::IdentitySubject, "{e}");
    // The expected identity, as a pattern: accepted.
    let mut config = mock.config();
    let mut id = IdentityExpectation::exact("", ISSUER);
    id.subject_exact = None;
    id.subject = Some("https://github.com/acme/model/*".into());
    config.expected_identity = Some(id);
    KeylessSigner::new(config)
        .unwrap()
        .sign_blob(&mock.token(), b"x")
        .await
        .unwrap();
}

#[tokio::test]
async fn stalled_services_fail_with_a_timeout_naming_the_call() {
    for (fault, operation) in [
        ("stall-fulcio", "POST /api/v2/signingCert"),
        ("stall-rekor", "POST /api/v1/log/entries"),
        ("stall-tsa", "POST /"),
    ] {
        let Some(mock) = Mock::start(&[fault]) else {
            return;
        };
        let mut config = mock.with_tsa(TimestampProtocol::Rfc3161);
        config.timeout = Duration::from_millis(700);
        let signer = KeylessSigner::new(config).unwrap();
        let started = Instant::now();
        let e = signer.sign_blob(&mock.token(), b"x").await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(10), "{fault}");
        let Error::Timeout {
            operation: op,
            after_ms,
            ..
        } = &e
        else {
            panic!("{fault}: {e:?}")
        };
        assert_eq!((op.as_str(), *after_ms), (operation, 700), "{fault}");
        assert_eq!(e.code(), "oci.timeout");
    }
}

#[tokio::test]
async fn identity_tokens_from_github_actions_and_files() {
    let Some(mock) = Mock::start(&[]) else { return };
    let gha = TokenSource::GitHubActions {
        request_url: format!("{}/gha-token?api-version=2.0", mock.url),
        request_token: "gha-request-token".into(),
        audience: "sigstore".into(),
    };
    let t = gha.fetch(Duration::from_secs(10), true).await.unwrap();
    assert_eq!(t.claims().issuer, ISSUER);
    assert_eq!(t.claims().subject, SUBJECT);
    assert_eq!(t.claims().audience, ["sigstore"]);
    // HTTPS only unless allowed.
    let e = gha.fetch(Duration::from_secs(10), false).await.unwrap_err();
    assert_eq!(e.code(), "oci.insecure_not_allowed");
    // A wrong request token is refused by the endpoint.
    let wrong = TokenSource::GitHubActions {
        request_url: format!("{}/gha-token", mock.url),
        request_token: "nope".into(),
        audience: "sigstore".into(),
    };
    let e = wrong
        .fetch(Duration::from_secs(10), true)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Registry { status: 401, .. }), "{e:?}");
    // The token fetched signs.
    let signer = KeylessSigner::new(mock.config()).unwrap();
    signer.sign_blob(&t, b"from GitHub Actions").await.unwrap();

    // A file and a Kubernetes projected token file (with a trailing newline).
    let path = mock.dir.path().join("token");
    std::fs::write(&path, format!("{}\n", mock.token)).unwrap();
    for source in [
        TokenSource::File(path.clone()),
        TokenSource::KubernetesServiceAccount(path.clone()),
    ] {
        let t = source.fetch(Duration::from_secs(1), false).await.unwrap();
        assert_eq!(t.as_str(), mock.token);
    }
    let missing = TokenSource::File(mock.dir.path().join("absent"));
    let e = missing
        .fetch(Duration::from_secs(1), false)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "oci.io");
    let e = TokenSource::Env("PROVENANCE_TEST_NO_SUCH_VARIABLE".into())
        .fetch(Duration::from_secs(1), false)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "oci.sign.identity_token");
}

#[tokio::test]
async fn stalled_token_endpoint_times_out() {
    let Some(mock) = Mock::start(&["stall-token"]) else {
        return;
    };
    let gha = TokenSource::GitHubActions {
        request_url: format!("{}/gha-token", mock.url),
        request_token: "gha-request-token".into(),
        audience: "sigstore".into(),
    };
    let e = gha
        .fetch(Duration::from_millis(500), true)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "oci.timeout", "{e}");
}

#[test]
fn configuration_contacts_nothing_and_refuses_plain_http() {
    // Unroutable addresses: building a signer must not touch them.
    let root = TrustRoot::from_trusted_root_json(provenance_core::verify::PUBLIC_GOOD_TRUSTED_ROOT)
        .unwrap();
    let config = KeylessConfig::new("https://192.0.2.1", "https://192.0.2.2", root.clone());
    KeylessSigner::new(config).unwrap();
    let e = KeylessSigner::new(KeylessConfig::new(
        "http://192.0.2.1",
        "https://192.0.2.2",
        root.clone(),
    ))
    .unwrap_err();
    assert_eq!(e.code(), "oci.insecure_not_allowed");
    let e =
        KeylessSigner::new(KeylessConfig::new("ftp://x", "https://192.0.2.2", root)).unwrap_err();
    assert_eq!(e.code(), "oci.config");
    let pg = KeylessConfig::public_good().unwrap();
    assert_eq!(pg.fulcio_url, "https://fulcio.sigstore.dev");
    assert!(pg.timestamp_url.is_none());
}

#[tokio::test]
async fn expired_token_is_refused_before_contacting_fulcio() {
    let Some(mock) = Mock::start(&[]) else { return };
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let jwt = format!(
        "{}.{}.",
        b64(r#"{"alg":"none"}"#),
        b64(&format!(
            r#"{{"iss":"{ISSUER}","sub":"{SUBJECT}","exp":1000}}"#
        ))
    );
    let signer = KeylessSigner::new(mock.config()).unwrap();
    let e = signer
        .sign_blob(&IdentityToken::parse(&jwt).unwrap(), b"x")
        .await
        .unwrap_err();
    assert_eq!(e.code(), "oci.sign.identity_token");
    assert!(mock.requests().is_empty());
}

// ------------------------------------------------------------------ model signing, keyless

fn model_fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/model-signing")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// The model-signing v1.0 statement over `model` (files serialization, git paths ignored),
/// from provenance_oci::model's manifest code, as `model_signing sign` writes it.
fn model_statement(model: &Path) -> Vec<u8> {
    use provenance_oci::model::{IgnoreSet, Method, VerifyOptions, compute_manifest};
    let ignore = IgnoreSet::new(Vec::<String>::new()).with_git_paths();
    let m = compute_manifest(
        model,
        Method::Files,
        &ignore,
        &VerifyOptions::default(),
        None,
    )
    .unwrap();
    let resources: Vec<serde_json::Value> = m
        .resources
        .iter()
        .map(|(name, d)| serde_json::json!({"name": name, "digest": hex::encode(d), "algorithm": "sha256"}))
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "model", "digest": {"sha256": m.root_digest().hex()}}],
        "predicateType": "https://model_signing/signature/v1.0",
        "predicate": {
            "serialization": {"method": "files", "hash_type": "sha256", "allow_symlinks": false,
                              "ignore_paths": ignore.to_strings()},
            "resources": resources,
        },
    }))
    .unwrap()
}

fn verify_model_keyless(
    model: &Path,
    sig: &Path,
    root_json: &[u8],
) -> Result<provenance_oci::model::ModelReport, provenance_oci::model::ModelError> {
    use provenance_oci::model::{ModelTrust, VerifyOptions, verify_model};
    verify_model(
        model,
        sig,
        &ModelTrust::Keyless {
            root: Box::new(TrustRoot::from_trusted_root_json(root_json).unwrap()),
            identity: IdentityExpectation::exact(SUBJECT, ISSUER),
        },
        &VerifyOptions::default(),
        now(),
    )
}

/// `model_signing verify sigstore` with a client trust config holding `root_json`; `None`
/// when model_signing is not installed (outside CI).
fn model_signing_verifies(model: &Path, sig: &Path, root_json: &[u8], dir: &Path) -> Option<bool> {
    let installed = Command::new("model_signing")
        .arg("--help")
        .output()
        .is_ok_and(|o| o.status.success());
    if !installed {
        if std::env::var_os("CI").is_some() {
            panic!("model_signing missing: run scripts/ci-setup-model-signing.sh");
        }
        eprintln!("SKIPPED: model_signing cross-check (scripts/ci-setup-model-signing.sh)");
        return None;
    }
    let root: serde_json::Value = serde_json::from_slice(root_json).unwrap();
    let url = root["tlogs"][0]["baseUrl"]
        .as_str()
        .unwrap_or("http://127.0.0.1")
        .to_owned();
    let service = |u: &str| {
        serde_json::json!([{"url": u, "majorApiVersion": 1,
        "validFor": {"start": "2000-01-01T00:00:00Z"}, "operator": "provenance-mock"}])
    };
    let config = serde_json::json!({
        "mediaType": "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json",
        "trustedRoot": root,
        "signingConfig": {
            "mediaType": "application/vnd.dev.sigstore.signingconfig.v0.2+json",
            "caUrls": service(&url), "oidcUrls": service(&url), "rekorTlogUrls": service(&url),
            "tsaUrls": [], "rekorTlogConfig": {"selector": "ANY"}, "tsaConfig": {"selector": "ANY"},
        },
    });
    let path = dir.join("trust_config.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
    let out = Command::new("model_signing")
        .args(["verify", "sigstore"])
        .arg(model)
        .arg("--signature")
        .arg(sig)
        .arg("--trust_config")
        .arg(&path)
        .args(["--identity", SUBJECT, "--identity_provider", ISSUER])
        .output()
        .unwrap();
    if !out.status.success() {
        eprintln!(
            "model_signing: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Some(out.status.success())
}

#[tokio::test]
async fn model_folder_signed_keyless_verifies_here_and_with_model_signing() {
    let Some(mock) = Mock::start(&[]) else { return };
    let model = mock.dir.path().join("model");
    copy_dir(&model_fixture().join("model"), &model);
    let statement = model_statement(&model);
    let signer = KeylessSigner::new(mock.config()).unwrap();
    let signed = signer
        .sign_in_toto(&mock.token(), &statement)
        .await
        .unwrap();
    let sig = mock.dir.path().join("model.sig");
    std::fs::write(&sig, &signed.json).unwrap();

    let report = verify_model_keyless(&model, &sig, &mock.root_json).unwrap();
    assert!(report.signer.contains(SUBJECT), "{}", report.signer);
    assert_eq!(report.files, 5);
    if let Some(ok) = model_signing_verifies(&model, &sig, &mock.root_json, mock.dir.path()) {
        assert!(ok, "model_signing rejected the keyless model signature");
    }

    // A changed byte: both refuse.
    let weights = model.join("weights/model-00001-of-00001.bin");
    let mut bytes = std::fs::read(&weights).unwrap();
    bytes[7] ^= 1;
    std::fs::write(&weights, &bytes).unwrap();
    let e = verify_model_keyless(&model, &sig, &mock.root_json).unwrap_err();
    assert_eq!(e.code(), "model.file_changed", "{e}");
    if let Some(ok) = model_signing_verifies(&model, &sig, &mock.root_json, mock.dir.path()) {
        assert!(!ok, "model_signing accepted a changed model");
    }

    // Regenerate the committed fixture (signed against this mock, with its trusted root).
    if std::env::var_os("PROVENANCE_WRITE_KEYLESS_MODEL_FIXTURE").is_some() {
        let dir = model_fixture().join("signatures");
        std::fs::write(dir.join("keyless.sig"), &signed.json).unwrap();
        std::fs::write(dir.join("keyless-trusted_root.json"), &mock.root_json).unwrap();
    }
}

/// The committed keyless model signature (written by the test above with
/// PROVENANCE_WRITE_KEYLESS_MODEL_FIXTURE=1 against @sigstore/mock, with that mock's trusted
/// root) verifies offline, and a changed model or another identity does not.
#[test]
fn committed_keyless_model_signature_verifies_offline() {
    let dir = model_fixture();
    let sig = dir.join("signatures/keyless.sig");
    let root_json = std::fs::read(dir.join("signatures/keyless-trusted_root.json")).unwrap();
    let report = verify_model_keyless(&dir.join("model"), &sig, &root_json).unwrap();
    assert!(report.signer.contains(SUBJECT), "{}", report.signer);

    use provenance_oci::model::{ModelTrust, VerifyOptions, verify_model};
    let other = verify_model(
        &dir.join("model"),
        &sig,
        &ModelTrust::Keyless {
            root: Box::new(TrustRoot::from_trusted_root_json(&root_json).unwrap()),
            identity: IdentityExpectation::exact("https://github.com/other/repo", ISSUER),
        },
        &VerifyOptions::default(),
        now(),
    )
    .unwrap_err();
    assert_eq!(other.code(), "model.signature", "{other}");
    assert!(
        other.to_string().contains("verify.identity.subject"),
        "{other}"
    );

    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("model");
    copy_dir(&dir.join("model"), &model);
    std::fs::write(model.join("extra.bin"), b"x").unwrap();
    let e = verify_model_keyless(&model, &sig, &root_json).unwrap_err();
    assert_eq!(e.code(), "model.file_extra", "{e}");
}
