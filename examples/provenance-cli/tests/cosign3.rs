//! cosign 3 image signatures through a real registry on loopback (docker-registry, no referrers
//! API, so the `sha256-<hex>` tag fallback is used), in both directions:
//!
//! - a signature made without provenance's signer, as `cosign sign --new-bundle-format` writes
//!   it (scripts/fixtures/sigstore/cosign3-sign-image.js: the bundle from @sigstore/sign, or
//!   from sigstore-python with cosign3_sign_sigstore_python.py, against @sigstore/mock's Fulcio
//!   and Rekor; the referrer manifest and tag index written over HTTP), is accepted by
//!   `provenance verify image` for the mock's keyless identity;
//! - what `provenance sign image --new-bundle-format` writes has the same referrer fields and
//!   the same Statement, and its bundle verifies with @sigstore/verify (verify-one.js) and
//!   sigstore-python (verify_one_sigstore_python.py);
//! - a Statement about another digest, or a referrer attached to another image than its
//!   Statement names, is refused with an exact code (`verify.artifact.mismatch`; a referrer
//!   whose own `subject` is another image is not read at all: `cli.verify.no_signatures`).
//!
//! docs/interop-cosign3.md lists the fields and the cosign source each was read in.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Stdio};

use assert_cmd::Command;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::{Pusher, Registry};
use provenance_core::Digest;
use serde_json::{Value, json};

const ISSUER: &str = "https://token.actions.githubusercontent.com";
const SUBJECT: &str = "https://github.com/acme/model/.github/workflows/release.yml@refs/heads/main";
const BUNDLE_V03: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const SIGN_V1: &str = "https://sigstore.dev/cosign/sign/v1";

fn node_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/fixtures/sigstore")
}

/// mock-services.js (Fulcio, CT log, Rekor v1, TSA on loopback), killed on drop.
struct Mock {
    child: Child,
    _stdin: ChildStdin,
    url: String,
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
    fn start() -> Option<Mock> {
        let ready = std::process::Command::new("node")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
            && node_dir().join("node_modules/@sigstore/sign").is_dir();
        if !ready {
            if std::env::var_os("CI").is_some() {
                panic!(
                    "node or scripts/fixtures/sigstore/node_modules missing: run scripts/ci-setup-sigstore-node.sh"
                );
            }
            eprintln!("SKIPPED: node or scripts/fixtures/sigstore/node_modules missing");
            return None;
        }
        let mut child = std::process::Command::new("node")
            .arg(node_dir().join("mock-services.js"))
            .current_dir(node_dir())
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
        let v: Value = serde_json::from_str(&line).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("trusted_root.json"),
            serde_json::to_vec(&v["trusted_root"]).unwrap(),
        )
        .unwrap();
        Some(Mock {
            child,
            _stdin: stdin,
            url: v["url"].as_str().unwrap().to_owned(),
            token: v["token"].as_str().unwrap().to_owned(),
            dir,
        })
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_owned()
    }
}

/// Whether sigstore-python runs here (scripts/ci-setup-sigstore-python.sh installs it; in CI
/// its absence is a failure).
fn sigstore_python() -> bool {
    let ok = std::process::Command::new("python3")
        .args(["-c", "import sigstore"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        if std::env::var_os("CI").is_some() {
            panic!("sigstore-python missing: run scripts/ci-setup-sigstore-python.sh");
        }
        eprintln!("SKIPPED: sigstore-python missing (scripts/ci-setup-sigstore-python.sh)");
    }
    ok
}

/// Runs `program script args...` in scripts/fixtures/sigstore and asserts it succeeded.
fn run_fixture_tool(program: &str, script: &str, args: &[&str]) {
    let out = std::process::Command::new(program)
        .arg(node_dir().join(script))
        .current_dir(node_dir())
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A registry, the mock services, and an HTTP client for reading what was written.
struct Setup {
    reg: Registry,
    mock: Mock,
    endpoint: String,
}

impl Setup {
    fn start() -> Option<Setup> {
        let reg = Registry::start()?;
        let mock = Mock::start()?;
        let endpoint = format!("registry.example.com={}", reg.addr);
        Some(Setup {
            reg,
            mock,
            endpoint,
        })
    }

    fn base(&self) -> String {
        format!("http://{}", self.reg.addr)
    }

    /// Pushes a one-layer image `repo:tag`; returns its manifest digest.
    fn push_image(&self, repo: &str, tag: &str, layer: &[u8]) -> Digest {
        let p = Pusher::at(&self.base());
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
            let c = p.blob(repo, config).await;
            let l = p.blob(repo, layer).await;
            let m = serde_json::to_vec(&json!({
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": c.to_string(), "size": config.len()},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": l.to_string(), "size": layer.len()}],
            }))
            .unwrap();
            p.manifest(repo, tag, OCI_MANIFEST, &m).await
        })
    }

    /// GET `/v2/<repo>/manifests/<reference>` (None on 404).
    fn manifest(&self, repo: &str, reference: &str) -> Option<Value> {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let r = reqwest::Client::new()
                .get(format!("{}/v2/{repo}/manifests/{reference}", self.base()))
                .header("accept", format!("{OCI_MANIFEST}, {OCI_INDEX}"))
                .send()
                .await
                .unwrap();
            if r.status().as_u16() == 404 {
                return None;
            }
            assert!(r.status().is_success(), "GET {reference}: {}", r.status());
            Some(serde_json::from_slice(&r.bytes().await.unwrap()).unwrap())
        })
    }

    fn blob(&self, repo: &str, digest: &str) -> Vec<u8> {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let r = reqwest::Client::new()
                .get(format!("{}/v2/{repo}/blobs/{digest}", self.base()))
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "GET blob {digest}");
            r.bytes().await.unwrap().to_vec()
        })
    }

    /// The cosign 3 signer stand-in (no provenance code): signs `digest` in `repo`.
    fn cosign3_sign(&self, repo: &str, digest: &Digest, extra: &[&str]) -> Value {
        let out = std::process::Command::new("node")
            .arg(node_dir().join("cosign3-sign-image.js"))
            .current_dir(node_dir())
            .args(["--registry", &self.base(), "--repo", repo])
            .args(["--digest", &digest.to_string()])
            .args(["--services", &self.mock.url, "--token", &self.mock.token])
            .args(extra)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "cosign3-sign-image.js: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn provenance(&self) -> Command {
        let mut c = Command::cargo_bin("provenance").unwrap();
        c.env("NO_COLOR", "1").env_remove("SIGSTORE_ID_TOKEN");
        c
    }

    /// The flags that point `registry.example.com` at the loopback registry.
    fn net(&self) -> [&str; 4] {
        [
            "--allow-http",
            "registry.example.com",
            "--registry-endpoint",
            &self.endpoint,
        ]
    }

    /// `provenance verify image registry.example.com/<image> -o json` for the mock's identity.
    fn verify(&self, image: &str) -> (Option<i32>, Value) {
        let out = Command::cargo_bin("provenance")
            .unwrap()
            .env("NO_COLOR", "1")
            .args(["verify", "image", &format!("registry.example.com/{image}")])
            .args(["--allow-http", "registry.example.com"])
            .args(["--registry-endpoint", &self.endpoint])
            .args(["--trusted-root", &self.mock.path("trusted_root.json")])
            .args(["--certificate-identity", SUBJECT])
            .args(["--certificate-oidc-issuer", ISSUER, "-o", "json"])
            .output()
            .unwrap();
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        (out.status.code(), v)
    }

    /// The referrers tag index of `digest` in `repo` and the referrer manifests it lists.
    fn referrers(&self, repo: &str, digest: &Digest) -> (Value, Vec<(String, Value)>) {
        let index = self
            .manifest(repo, &format!("sha256-{}", digest.hex()))
            .expect("the referrers tag index");
        let manifests = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                let d = e["digest"].as_str().unwrap().to_owned();
                let m = self.manifest(repo, &d).unwrap();
                (d, m)
            })
            .collect();
        (index, manifests)
    }
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

fn statement_of(bundle: &Value) -> Value {
    let payload = bundle["dsseEnvelope"]["payload"].as_str().unwrap();
    serde_json::from_slice(&STANDARD.decode(payload).unwrap()).unwrap()
}

/// The fields cosign 3 writes in an image-signature referrer manifest, checked one by one.
fn assert_cosign3_referrer(m: &Value, subject: &Digest, layer_bytes: &[u8]) {
    assert_eq!(
        keys(m),
        [
            "annotations",
            "artifactType",
            "config",
            "layers",
            "mediaType",
            "schemaVersion",
            "subject"
        ]
        .map(String::from)
        .into(),
        "{m}"
    );
    assert_eq!(m["schemaVersion"], 2);
    assert_eq!(m["mediaType"], OCI_MANIFEST);
    assert_eq!(m["artifactType"], BUNDLE_V03);
    assert_eq!(
        m["config"],
        json!({
            "mediaType": "application/vnd.oci.empty.v1+json",
            "artifactType": BUNDLE_V03,
            "digest": Digest::sha256_of(b"{}").to_string(),
            "size": 2,
        })
    );
    assert_eq!(
        m["layers"],
        json!([{
            "mediaType": BUNDLE_V03,
            "digest": Digest::sha256_of(layer_bytes).to_string(),
            "size": layer_bytes.len(),
        }])
    );
    assert_eq!(m["subject"]["digest"], subject.to_string());
    assert_eq!(m["subject"]["mediaType"], OCI_MANIFEST);
    let ann = &m["annotations"];
    assert_eq!(
        keys(ann),
        [
            "dev.sigstore.bundle.content",
            "dev.sigstore.bundle.predicateType",
            "org.opencontainers.image.created",
        ]
        .map(String::from)
        .into(),
        "{ann}"
    );
    assert_eq!(ann["dev.sigstore.bundle.content"], "dsse-envelope");
    assert_eq!(ann["dev.sigstore.bundle.predicateType"], SIGN_V1);
    let created = ann["org.opencontainers.image.created"].as_str().unwrap();
    assert!(
        provenance_core::UnixTime::parse_rfc3339(created).is_some()
            && created.len() == 20
            && created.ends_with('Z'),
        "RFC 3339, UTC, whole seconds: {created}"
    );
}

/// cosign 3's signing Statement about `digest` with the subject annotations `annotations`.
fn assert_cosign3_statement(bundle: &Value, digest: &Digest, annotations: Value) {
    assert_eq!(bundle["mediaType"], BUNDLE_V03);
    assert_eq!(
        bundle["dsseEnvelope"]["payloadType"],
        "application/vnd.in-toto+json"
    );
    let sigs = bundle["dsseEnvelope"]["signatures"].as_array().unwrap();
    assert_eq!(sigs.len(), 1);
    assert_eq!(keys(&sigs[0]), BTreeSet::from(["sig".to_owned()]));
    assert_eq!(
        statement_of(bundle),
        json!({
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"digest": {"sha256": digest.hex()}, "annotations": annotations}],
            "predicateType": SIGN_V1,
            "predicate": {},
        })
    );
}

#[test]
fn a_cosign3_signature_made_without_provenance_verifies_through_the_tag_fallback() {
    let Some(s) = Setup::start() else { return };
    let digest = s.push_image("ml/app", "1.0", b"weights");
    let made = s.cosign3_sign("ml/app", &digest, &[]);
    assert_cosign3_statement(&made["bundle"], &digest, json!({}));
    assert_eq!(
        made["bundle"]["verificationMaterial"]["tlogEntries"][0]["kindVersion"]["kind"],
        "dsse"
    );

    // What the registry holds: the referrer manifest and the tag index, as cosign writes them.
    let (index, referrers) = s.referrers("ml/app", &digest);
    assert_eq!(index["mediaType"], OCI_INDEX);
    assert_eq!(referrers.len(), 1);
    let (rd, m) = &referrers[0];
    assert_eq!(rd, made["referrer"]["digest"].as_str().unwrap());
    let layer = s.blob("ml/app", m["layers"][0]["digest"].as_str().unwrap());
    assert_cosign3_referrer(m, &digest, &layer);
    assert_eq!(
        keys(&index["manifests"][0]),
        ["artifactType", "digest", "mediaType", "size"]
            .map(String::from)
            .into()
    );
    assert_eq!(index["manifests"][0]["artifactType"], BUNDLE_V03);

    let (code, v) = s.verify("ml/app:1.0");
    assert_eq!(code, Some(0), "{v}");
    let sigs = v[0]["signatures"].as_array().unwrap();
    assert_eq!(sigs.len(), 1, "{v}");
    assert_eq!(sigs[0]["origin"], "referrer");
    assert_eq!(sigs[0]["signer"]["identity"], SUBJECT);
    assert_eq!(sigs[0]["transparencyVerified"], true);
    assert!(
        v[0]["attestations"].as_array().unwrap().is_empty(),
        "a signature is not an attestation: {v}"
    );
}

#[test]
fn a_cosign3_signature_signed_by_sigstore_python_verifies_through_the_tag_fallback() {
    let Some(s) = Setup::start() else { return };
    if !sigstore_python() {
        return;
    }
    let digest = s.push_image("ml/py", "1.0", b"python-signed");
    let token = s.mock.path("token");
    std::fs::write(&token, &s.mock.token).unwrap();
    let bundle = s.mock.path("python.sigstore.json");
    run_fixture_tool(
        "python3",
        "cosign3_sign_sigstore_python.py",
        &[
            &s.mock.url,
            &s.mock.path("trusted_root.json"),
            &token,
            &digest.hex(),
            &bundle,
        ],
    );
    let made = s.cosign3_sign("ml/py", &digest, &["--bundle", &bundle]);
    assert_cosign3_statement(&made["bundle"], &digest, json!({}));
    assert_eq!(
        made["bundle"]["verificationMaterial"]["tlogEntries"][0]["kindVersion"]["kind"],
        "dsse"
    );
    let (_, referrers) = s.referrers("ml/py", &digest);
    assert_eq!(referrers.len(), 1);
    let (_, m) = &referrers[0];
    let layer = s.blob("ml/py", m["layers"][0]["digest"].as_str().unwrap());
    assert_cosign3_referrer(m, &digest, &layer);
    let (code, v) = s.verify("ml/py:1.0");
    assert_eq!(code, Some(0), "{v}");
    let sigs = v[0]["signatures"].as_array().unwrap();
    assert_eq!(sigs.len(), 1, "{v}");
    assert_eq!(sigs[0]["signer"]["identity"], SUBJECT);
    assert_eq!(sigs[0]["transparencyVerified"], true);
}

#[test]
fn sign_image_new_bundle_format_writes_what_cosign3_writes() {
    let Some(s) = Setup::start() else { return };
    // The reference: the independent producer's referrer for one image.
    let theirs_digest = s.push_image("ml/theirs", "1.0", b"theirs");
    s.cosign3_sign("ml/theirs", &theirs_digest, &[]);
    let (theirs_index, theirs) = s.referrers("ml/theirs", &theirs_digest);

    // Ours, keyless against the same services.
    let digest = s.push_image("ml/ours", "1.0", b"ours");
    s.provenance()
        .args(["sign", "image", "registry.example.com/ml/ours:1.0"])
        .args(["--keyless", "--identity-token", &s.mock.token])
        .args(["--fulcio-url", &s.mock.url, "--rekor-url", &s.mock.url])
        .args(["--trust-root", &s.mock.path("trusted_root.json")])
        .args(["--allow-insecure-http", "--new-bundle-format"])
        .args(s.net())
        .assert()
        .code(0);
    let (index, ours) = s.referrers("ml/ours", &digest);
    assert_eq!(ours.len(), 1);
    let (_, m) = &ours[0];
    let layer = s.blob("ml/ours", m["layers"][0]["digest"].as_str().unwrap());
    assert_cosign3_referrer(m, &digest, &layer);
    // Field for field the independent producer's manifest, but for the subject, the bundle
    // layer and the time.
    let (_, t) = &theirs[0];
    for f in ["schemaVersion", "mediaType", "artifactType", "config"] {
        assert_eq!(m[f], t[f], "{f}");
    }
    assert_eq!(m["layers"][0]["mediaType"], t["layers"][0]["mediaType"]);
    assert_eq!(keys(&m["layers"][0]), keys(&t["layers"][0]));
    assert_eq!(keys(&m["subject"]), keys(&t["subject"]));
    assert_eq!(keys(&m["annotations"]), keys(&t["annotations"]));
    // The tag index entry: cosign's fields (ours adds the manifest's annotations, as the
    // referrers API lists them).
    let entry = &index["manifests"][0];
    for f in ["mediaType", "artifactType"] {
        assert_eq!(entry[f], theirs_index["manifests"][0][f], "{f}");
    }
    assert!(keys(&theirs_index["manifests"][0]).is_subset(&keys(entry)));

    // The bundle: the same Statement shape, a dsse log entry, the certificate alone.
    let bundle: Value = serde_json::from_slice(&layer).unwrap();
    assert_cosign3_statement(&bundle, &digest, json!({}));
    let vm = &bundle["verificationMaterial"];
    assert!(vm["certificate"]["rawBytes"].is_string(), "{vm}");
    assert_eq!(vm["tlogEntries"][0]["kindVersion"]["kind"], "dsse");

    // @sigstore/verify and sigstore-python accept it, for the image digest.
    let path = s.mock.path("ours.sigstore.json");
    std::fs::write(&path, &layer).unwrap();
    let root = s.mock.path("trusted_root.json");
    let hex = digest.hex();
    let args = [
        path.as_str(),
        &root,
        SUBJECT,
        ISSUER,
        "--subject-sha256",
        &hex,
    ];
    run_fixture_tool("node", "verify-one.js", &args);
    if sigstore_python() {
        run_fixture_tool("python3", "verify_one_sigstore_python.py", &args);
    }
    // And provenance reads both as signatures.
    for image in ["ml/ours:1.0", "ml/theirs:1.0"] {
        let (code, v) = s.verify(image);
        assert_eq!(code, Some(0), "{image}: {v}");
    }
}

#[test]
fn sign_image_new_bundle_format_with_a_key_signs_the_annotations_in_the_subject() {
    let Some(s) = Setup::start() else { return };
    let digest = s.push_image("ml/keyed", "1.0", b"keyed");
    let dir = s.mock.dir.path();
    s.provenance()
        .current_dir(dir)
        .args(["generate-key-pair", "--unencrypted"])
        .assert()
        .code(0);
    s.provenance()
        .current_dir(dir)
        .args(["sign", "image", "registry.example.com/ml/keyed:1.0"])
        .args([
            "--key",
            "cosign.key",
            "-a",
            "team=ml",
            "--new-bundle-format",
        ])
        .args(s.net())
        .assert()
        .code(0);
    let (_, ours) = s.referrers("ml/keyed", &digest);
    assert_eq!(ours.len(), 1);
    let (_, m) = &ours[0];
    let layer = s.blob("ml/keyed", m["layers"][0]["digest"].as_str().unwrap());
    assert_cosign3_referrer(m, &digest, &layer);
    let bundle: Value = serde_json::from_slice(&layer).unwrap();
    assert_cosign3_statement(&bundle, &digest, json!({"team": "ml"}));
    // `--tlog-upload=false`: a public-key hint and no log entry.
    let vm = &bundle["verificationMaterial"];
    assert!(vm["publicKey"]["hint"].is_string(), "{vm}");
    assert!(
        vm.get("tlogEntries").is_none_or(|t| t == &json!([])),
        "{vm}"
    );
    Command::cargo_bin("provenance")
        .unwrap()
        .current_dir(dir)
        .args(["verify", "image", "registry.example.com/ml/keyed:1.0"])
        .args(["--allow-http", "registry.example.com"])
        .args(["--registry-endpoint", &s.endpoint])
        .args(["--key", "cosign.pub", "--insecure-ignore-tlog"])
        .assert()
        .code(0);
}

#[test]
fn a_cosign3_statement_about_another_digest_is_not_a_signature_of_this_image() {
    // The bundle verifies (signature, certificate, log entry) but its Statement names another
    // digest: the subject check refuses it before the kind is looked at, with the code a
    // message signature over another manifest gets.
    let Some(s) = Setup::start() else { return };
    let digest = s.push_image("ml/app", "1.0", b"weights");
    let other = Digest::sha256_of(b"another manifest");
    s.cosign3_sign("ml/app", &digest, &["--statement-sha256", &other.hex()]);
    let (code, v) = s.verify("ml/app:1.0");
    assert_eq!(code, Some(1), "{v}");
    let rejected = v[0]["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 1, "{v}");
    assert_eq!(rejected[0]["origin"], "referrer");
    assert_eq!(rejected[0]["code"], "verify.artifact.mismatch", "{v}");
}

#[test]
fn a_cosign3_referrer_attached_to_another_image_than_its_statement_names_is_refused() {
    let Some(s) = Setup::start() else { return };
    let a = s.push_image("ml/app", "a", b"image a");
    let b = s.push_image("ml/app", "b", b"image b");
    // A's signature (the Statement names A), attached to B (the referrer's subject is B): read
    // as B's signature, refused because the Statement is about A.
    s.cosign3_sign("ml/app", &a, &["--subject-digest", &b.to_string()]);
    let (code, v) = s.verify("ml/app:b");
    assert_eq!(code, Some(1), "{v}");
    let rejected = v[0]["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 1, "{v}");
    assert_eq!(rejected[0]["code"], "verify.artifact.mismatch", "{v}");
    // A has no referrer: nothing to verify.
    let (code, v) = s.verify("ml/app:a");
    assert_eq!(code, Some(1), "{v}");
    assert_eq!(v[0]["error"]["code"], "cli.verify.no_signatures", "{v}");

    // A tag index that lists B's referrer under A: the referrer names B as its subject, so it
    // is not read as A's (and A's Statement inside would not make it one either).
    let (index_b, _) = s.referrers("ml/app", &b);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(Pusher::at(&s.base()).manifest(
        "ml/app",
        &format!("sha256-{}", a.hex()),
        OCI_INDEX,
        &serde_json::to_vec(&index_b).unwrap(),
    ));
    let (code, v) = s.verify("ml/app:a");
    assert_eq!(code, Some(1), "{v}");
    assert_eq!(v[0]["error"]["code"], "cli.verify.no_signatures", "{v}");
}

#[test]
fn sign_image_new_bundle_format_writes_into_the_signature_repository_when_asked() {
    let Some(s) = Setup::start() else { return };
    let digest = s.push_image("ml/app", "1.0", b"weights");
    let dir = s.mock.dir.path();
    s.provenance()
        .current_dir(dir)
        .args(["generate-key-pair", "--unencrypted"])
        .assert()
        .code(0);
    let sigs = [
        "--signature-repository",
        "registry.example.com/ml/signatures",
    ];
    s.provenance()
        .current_dir(dir)
        .args(["sign", "image", "registry.example.com/ml/app:1.0"])
        .args(["--key", "cosign.key", "--new-bundle-format"])
        .args(sigs)
        .args(s.net())
        .assert()
        .code(0);
    // As cosign writes it with COSIGN_REPOSITORY: the referrer and the tag index in the
    // signature repository, the subject still the image.
    assert!(
        s.manifest("ml/app", &format!("sha256-{}", digest.hex()))
            .is_none()
    );
    let (_, referrers) = s.referrers("ml/signatures", &digest);
    assert_eq!(referrers.len(), 1);
    let (_, m) = &referrers[0];
    let layer = s.blob("ml/signatures", m["layers"][0]["digest"].as_str().unwrap());
    assert_cosign3_referrer(m, &digest, &layer);
    let verify = |extra: &[&str]| {
        Command::cargo_bin("provenance")
            .unwrap()
            .current_dir(dir)
            .args(["verify", "image", "registry.example.com/ml/app:1.0"])
            .args(["--key", "cosign.pub", "--insecure-ignore-tlog"])
            .args(s.net())
            .args(extra)
            .assert()
    };
    verify(&sigs).code(0);
    verify(&[]).code(1);
}

/// PEM text of a DER certificate or key.
fn pem(tag: &str, der_b64: &str) -> String {
    let der = STANDARD.decode(der_b64).unwrap();
    let b64 = STANDARD.encode(der);
    let body: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {tag}-----\n{}\n-----END {tag}-----\n",
        body.join("\n")
    )
}

fn indented(text: &str, n: usize) -> String {
    text.lines()
        .map(|l| format!("{}{l}\n", " ".repeat(n)))
        .collect()
}

/// The same independently made cosign 3 signature through the policy engine, with the mock's
/// (private) Sigstore written in the policies and no `--trust-root`: a ClusterPolicy with
/// `type: SigstoreBundle` and with `type: Cosign` (keyless `roots`, `rekor.pubkey`,
/// `ctlog.pubkey`), and an ImageValidatingPolicy (`trustedRoot`). An unsigned image in the same
/// Pod fails each of them.
#[test]
fn a_cosign3_signature_made_without_provenance_passes_policies_that_write_their_trust() {
    let Some(s) = Setup::start() else { return };
    let signed = s.push_image("ml/app", "1.0", b"weights");
    s.cosign3_sign("ml/app", &signed, &[]);
    s.push_image("ml/unsigned", "1.0", b"other weights");
    let root: Value =
        serde_json::from_slice(&std::fs::read(s.mock.path("trusted_root.json")).unwrap()).unwrap();
    let roots: String = root["certificateAuthorities"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|ca| ca["certChain"]["certificates"].as_array().unwrap().clone())
        .map(|c| pem("CERTIFICATE", c["rawBytes"].as_str().unwrap()))
        .collect();
    let rekor = pem(
        "PUBLIC KEY",
        root["tlogs"][0]["publicKey"]["rawBytes"].as_str().unwrap(),
    );
    let ct = pem(
        "PUBLIC KEY",
        root["ctlogs"][0]["publicKey"]["rawBytes"].as_str().unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    let cluster_policy = |ty: &str| {
        format!(
            r#"apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {{name: cosign3-{lower}}}
spec:
  validationFailureAction: Enforce
  rules:
    - name: signed
      match: {{any: [{{resources: {{kinds: [Pod]}}}}]}}
      verifyImages:
        - imageReferences: ["registry.example.com/ml/*"]
          type: {ty}
          mutateDigest: false
          verifyDigest: false
          attestors:
            - entries:
                - keyless:
                    subject: "{SUBJECT}"
                    issuer: "{ISSUER}"
                    roots: |
{roots_}                    rekor:
                      pubkey: |
{rekor_}                    ctlog:
                      pubkey: |
{ct_}"#,
            lower = ty.to_ascii_lowercase(),
            roots_ = indented(&roots, 22),
            rekor_ = indented(&rekor, 24),
            ct_ = indented(&ct, 24),
        )
    };
    std::fs::write(
        dir.path().join("bundle.yaml"),
        cluster_policy("SigstoreBundle"),
    )
    .unwrap();
    std::fs::write(dir.path().join("cosign.yaml"), cluster_policy("Cosign")).unwrap();
    let trusted_root = serde_json::to_string(&root).unwrap().replace('\'', "''");
    std::fs::write(
        dir.path().join("ivp.yaml"),
        format!(
            r#"apiVersion: policies.kyverno.io/v1
kind: ImageValidatingPolicy
metadata: {{name: cosign3-ivp}}
spec:
  validationActions: [Deny]
  matchConstraints:
    resourceRules:
      - apiGroups: [""]
        apiVersions: [v1]
        operations: [CREATE, UPDATE]
        resources: [pods]
  matchImageReferences:
    - glob: "registry.example.com/ml/*"
  validationConfigurations: {{verifyDigest: false, mutateDigest: false}}
  attestors:
    - name: ci
      cosign:
        trustedRoot:
          value: '{trusted_root}'
        keyless:
          identities:
            - subject: "{SUBJECT}"
              issuer: "{ISSUER}"
  validations:
    - expression: "images.containers.all(i, verifyImageSignatures(i, [attestors.ci]) > 0)"
      message: "not signed"
"#
        ),
    )
    .unwrap();
    let pod = |name: &str, image: &str| {
        json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "ml"},
            "spec": {"containers": [{"name": "c", "image": image}]}})
    };
    let resources = tempfile::tempdir().unwrap();
    std::fs::write(
        resources.path().join("pods.json"),
        serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "List", "items": [
            pod("signed", "registry.example.com/ml/app:1.0"),
            pod("unsigned", "registry.example.com/ml/unsigned:1.0"),
        ]}))
        .unwrap(),
    )
    .unwrap();
    let out = s
        .provenance()
        .arg("apply")
        .args(["--policy", dir.path().to_str().unwrap()])
        .args([
            "--resource",
            resources.path().join("pods.json").to_str().unwrap(),
        ])
        .arg("--online")
        .args(s.net())
        .args(["-o", "json"])
        .output()
        .unwrap();
    let reports: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let mut got = BTreeSet::new();
    for report in reports.as_array().unwrap() {
        for r in report["results"].as_array().into_iter().flatten() {
            got.insert((
                r["resources"][0]["name"].as_str().unwrap().to_owned(),
                r["policy"].as_str().unwrap().to_owned(),
                r["result"].as_str().unwrap().to_owned(),
            ));
        }
    }
    let want: BTreeSet<(String, String, String)> = [
        ("signed", "cosign3-sigstorebundle", "pass"),
        ("signed", "cosign3-cosign", "pass"),
        ("signed", "cosign3-ivp", "pass"),
        ("unsigned", "cosign3-sigstorebundle", "fail"),
        ("unsigned", "cosign3-cosign", "fail"),
        ("unsigned", "cosign3-ivp", "fail"),
    ]
    .iter()
    .map(|(a, b, c)| ((*a).to_owned(), (*b).to_owned(), (*c).to_owned()))
    .collect();
    assert_eq!(
        got,
        want,
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
