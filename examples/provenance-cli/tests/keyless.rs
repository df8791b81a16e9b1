//! `provenance sign blob --keyless` against @sigstore/mock's Fulcio, Rekor and timestamp
//! authority on loopback (scripts/fixtures/sigstore/mock-services.js, installed by
//! scripts/ci-setup-sigstore-node.sh), then `provenance verify bundle` on what it wrote.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Stdio};

use assert_cmd::Command;
use predicates::prelude::PredicateBooleanExt as _;
use predicates::str::contains;
use serde_json::Value;

const ISSUER: &str = "https://token.actions.githubusercontent.com";
const SUBJECT: &str = "https://github.com/acme/model/.github/workflows/release.yml@refs/heads/main";

fn node_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/fixtures/sigstore")
}

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
    fn start(faults: &[&str]) -> Option<Mock> {
        let ready = std::process::Command::new("node")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
            && node_dir().join("node_modules/@sigstore/mock").is_dir();
        if !ready {
            if std::env::var_os("CI").is_some() {
                panic!(
                    "node or scripts/fixtures/sigstore/node_modules missing: run scripts/ci-setup-sigstore-node.sh"
                );
            }
            eprintln!("SKIPPED: node or scripts/fixtures/sigstore/node_modules missing");
            return None;
        }
        let mut cmd = std::process::Command::new("node");
        cmd.arg(node_dir().join("mock-services.js"));
        for f in faults {
            cmd.args(["--fault", f]);
        }
        let mut child = cmd
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
        std::fs::write(dir.path().join("token"), v["token"].as_str().unwrap()).unwrap();
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

    /// `provenance sign blob FILE --keyless ...` against these services.
    fn sign(&self, file: &str, bundle: &str, token: &str) -> Command {
        let mut c = Command::cargo_bin("provenance").unwrap();
        c.env("NO_COLOR", "1")
            .env_remove("SIGSTORE_ID_TOKEN")
            .args([
                "sign",
                "blob",
                file,
                "--keyless",
                "--bundle",
                bundle,
                "--identity-token",
                token,
                "--fulcio-url",
                &self.url,
                "--rekor-url",
                &self.url,
                "--trust-root",
                &self.path("trusted_root.json"),
                "--allow-insecure-http",
            ]);
        c
    }
}

#[test]
fn sign_blob_keyless_writes_a_bundle_that_verify_bundle_accepts() {
    let Some(mock) = Mock::start(&[]) else { return };
    let file = mock.path("weights.bin");
    std::fs::write(&file, b"weights").unwrap();
    let bundle = mock.path("weights.sigstore.json");
    // The token from a file, with a timestamp authority, JSON output.
    let out = mock
        .sign(&file, &bundle, &mock.path("token"))
        .args([
            "--timestamp-server-url",
            &format!("{}/api/v1/timestamp", mock.url),
        ])
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["signer"]["subject"], SUBJECT);
    assert_eq!(v["signer"]["issuer"], ISSUER);
    assert_eq!(v["verifiedTimes"].as_array().unwrap().len(), 2);

    let verify = |artifact: &str| {
        let mut c = Command::cargo_bin("provenance").unwrap();
        c.env("NO_COLOR", "1").args([
            "verify",
            "bundle",
            "--bundle",
            &bundle,
            "--certificate-identity",
            SUBJECT,
            "--certificate-oidc-issuer",
            ISSUER,
            "--trusted-root",
            &mock.path("trusted_root.json"),
            artifact,
        ]);
        c
    };
    verify(&file).assert().code(0);
    let other = mock.path("other.bin");
    std::fs::write(&other, b"other").unwrap();
    verify(&other).assert().code(1);

    // The token given literally; the summary line on stderr, the signature file written.
    let sig = mock.path("again.sig");
    mock.sign(&file, &mock.path("again.json"), &mock.token)
        .args(["--output-signature", &sig])
        .assert()
        .code(0)
        .stderr(contains("signed keylessly by ").and(contains("bundle verified")));
    let again: Value =
        serde_json::from_slice(&std::fs::read(mock.path("again.json")).unwrap()).unwrap();
    assert_eq!(
        std::fs::read_to_string(&sig).unwrap(),
        again["messageSignature"]["signature"].as_str().unwrap()
    );
    // --keyless and --key together, or --keyless without --bundle: usage errors.
    mock.sign(&file, &bundle, &mock.token)
        .args(["--key", &file])
        .assert()
        .code(2)
        .stderr(contains("exclude each other"));
}

#[test]
fn sign_blob_keyless_failures_have_exit_codes_and_error_codes() {
    let Some(mock) = Mock::start(&["rekor-bad-set"]) else {
        return;
    };
    let file = mock.path("f");
    std::fs::write(&file, b"x").unwrap();
    let bundle = mock.path("b.json");
    mock.sign(&file, &bundle, &mock.token)
        .assert()
        .code(1)
        .stderr(contains("[oci.sign.bundle_unverified]").and(contains("verify.tlog.set")));
    assert!(!Path::new(&bundle).exists(), "no bundle is written");

    // Not a token.
    mock.sign(&file, &bundle, "not-a-jwt")
        .assert()
        .code(2)
        .stderr(contains("[oci.sign.identity_token]"));
    // Plain HTTP without --allow-insecure-http.
    let mut c = Command::cargo_bin("provenance").unwrap();
    c.args([
        "sign",
        "blob",
        &file,
        "--keyless",
        "--bundle",
        &bundle,
        "--identity-token",
        &mock.token,
        "--fulcio-url",
        &mock.url,
        "--rekor-url",
        &mock.url,
    ])
    .assert()
    .code(2)
    .stderr(contains("[oci.insecure_not_allowed]"));

    let Some(stalled) = Mock::start(&["stall-fulcio"]) else {
        return;
    };
    stalled
        .sign(&file, &bundle, &stalled.token)
        .args(["--timeout-seconds", "1"])
        .assert()
        .code(3)
        .stderr(contains("[oci.timeout]").and(contains("POST /api/v2/signingCert")));
}

#[test]
fn sign_model_keyless_then_verify_model() {
    let Some(mock) = Mock::start(&[]) else { return };
    let model = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../provenance-oci/tests/fixtures/model-signing/model");
    let sig = mock.path("model.sig");
    let mut c = Command::cargo_bin("provenance").unwrap();
    let out = c
        .args([
            "sign",
            "model",
            model.to_str().unwrap(),
            "--keyless",
            "--signature",
            &sig,
        ])
        .args([
            "--identity-token",
            &mock.token,
            "--fulcio-url",
            &mock.url,
            "--rekor-url",
            &mock.url,
        ])
        .args([
            "--trust-root",
            &mock.path("trusted_root.json"),
            "--allow-insecure-http",
        ])
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["files"], 5);
    assert_eq!(v["keyless"]["signer"]["subject"], SUBJECT);
    let mut c = Command::cargo_bin("provenance").unwrap();
    c.args([
        "verify",
        "model",
        model.to_str().unwrap(),
        "--signature",
        &sig,
    ])
    .args(["--identity", SUBJECT, "--identity-provider", ISSUER])
    .args(["--trust-config", &mock.path("trusted_root.json")])
    .assert()
    .code(0);
    // A key and --keyless together: usage error.
    let mut c = Command::cargo_bin("provenance").unwrap();
    c.args([
        "sign",
        "model",
        model.to_str().unwrap(),
        "--keyless",
        "--signature",
        &sig,
    ])
    .args(["--private-key", &sig, "--identity-token", &mock.token])
    .assert()
    .code(2);
}

#[test]
fn sign_dataset_keyless_then_verify_bundle() {
    let Some(mock) = Mock::start(&[]) else { return };
    let data = mock.path("train.parquet");
    std::fs::write(&data, b"rows").unwrap();
    let predicate = mock.path("dataset.json");
    std::fs::write(
        &predicate,
        serde_json::json!({
            "name": "train", "sourceUri": "s3://acme/train.parquet", "license": "CC-BY-4.0",
            "digest": {"sha256": provenance_core::Digest::sha256_of(b"rows").hex()},
        })
        .to_string(),
    )
    .unwrap();
    let bundle = mock.path("train.sigstore.json");
    let sign = || {
        let mut c = Command::cargo_bin("provenance").unwrap();
        c.args(["sign", "dataset", &data, "--keyless", "--bundle", &bundle])
            .args(["--predicate", &predicate])
            .args(["--identity-token", &mock.token])
            .args(mock.services());
        c
    };
    let out = sign().assert().code(0).get_output().stdout.clone();
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        v["digest"],
        provenance_core::Digest::sha256_of(b"rows").to_string()
    );
    assert_eq!(v["keyless"]["signer"]["subject"], SUBJECT);
    // The bundle is an in-toto attestation about the dataset's digest, logged and certified.
    let b: Value = serde_json::from_slice(&std::fs::read(&bundle).unwrap()).unwrap();
    assert!(b["dsseEnvelope"].is_object(), "{b}");
    let verify = |artifact: &str| {
        let mut c = Command::cargo_bin("provenance").unwrap();
        c.args(["verify", "bundle", "--bundle", &bundle])
            .args(["--certificate-identity", SUBJECT])
            .args(["--certificate-oidc-issuer", ISSUER])
            .args(["--trusted-root", &mock.path("trusted_root.json"), artifact]);
        c
    };
    verify(&data).assert().code(0);
    let other = mock.path("other.parquet");
    std::fs::write(&other, b"other rows").unwrap();
    verify(&other).assert().code(1);
    // A predicate the dataset type does not accept: a usage error with its code, said once.
    let mut c = Command::cargo_bin("provenance").unwrap();
    c.args(["sign", "dataset", &data, "--keyless", "--bundle", &bundle])
        .args(["--identity-token", &mock.token])
        .args(mock.services())
        .assert()
        .code(2)
        .stderr(contains("[model.malformed_manifest]\n").and(contains("[cli.usage]").not()));
    // --keyless with --key, or --tlog-upload with a key: usage errors.
    sign().args(["--key", &data]).assert().code(2);
    let mut c = Command::cargo_bin("provenance").unwrap();
    c.args([
        "sign", "dataset", &data, "--key", &data, "--bundle", &bundle,
    ])
    .arg("--tlog-upload")
    .assert()
    .code(2);
}

/// A copy of the AI-workloads OCI layout (its unsigned image is signed here).
fn layout_copy(mock: &Mock) -> String {
    layout_copy_named(mock, "layout")
}

fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        let to = dst.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to);
        } else {
            std::fs::copy(e.path(), &to).unwrap();
        }
    }
}

const UNSIGNED: &str = "registry.example.com/ml/unsigned:1.0";

impl Mock {
    /// The service flags of `sign image` / `attest` against these services.
    fn services(&self) -> Vec<String> {
        [
            "--fulcio-url",
            &self.url,
            "--rekor-url",
            &self.url,
            "--trust-root",
            &self.path("trusted_root.json"),
            "--allow-insecure-http",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    /// `provenance sign image UNSIGNED --keyless` into `layout` against these services.
    fn sign_image_keyless(&self, layout: &str) -> Command {
        let mut c = provenance();
        c.args([
            "sign",
            "image",
            UNSIGNED,
            "--keyless",
            "--identity-token",
            &self.token,
        ])
        .args(["--registry-layout", layout])
        .args(self.services());
        c
    }

    /// `provenance verify image IMAGE --registry-layout LAYOUT` with the mock's trust root.
    fn verify_image(&self, layout: &str, extra: &[&str]) -> Command {
        let mut c = Command::cargo_bin("provenance").unwrap();
        c.env("NO_COLOR", "1")
            .args([
                "verify",
                "image",
                UNSIGNED,
                "--registry-layout",
                layout,
                "--trusted-root",
                &self.path("trusted_root.json"),
            ])
            .args(extra);
        c
    }
}

fn provenance() -> Command {
    let mut c = Command::cargo_bin("provenance").unwrap();
    c.env("NO_COLOR", "1").env_remove("SIGSTORE_ID_TOKEN");
    c
}

#[test]
fn sign_image_and_attest_keyless_write_cosign_layers_that_verify_image_accepts() {
    let Some(mock) = Mock::start(&[]) else { return };
    let layout = layout_copy(&mock);
    let keyless = [
        "--certificate-identity",
        SUBJECT,
        "--certificate-oidc-issuer",
        ISSUER,
    ];
    // Unsigned to start with.
    mock.verify_image(&layout, &keyless).assert().code(1);

    mock.sign_image_keyless(&layout)
        .assert()
        .code(0)
        .stderr(contains(format!(
            "keylessly by {SUBJECT} ({ISSUER}), Rekor log index"
        )));
    let out = mock
        .verify_image(&layout, &keyless)
        .args(["-o", "json"])
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let v: Value = serde_json::from_slice(&out).unwrap();
    let text = v.to_string();
    assert!(text.contains(SUBJECT), "{text}");
    assert!(text.contains("logIndex"), "{text}");
    // Another identity does not pass.
    mock.verify_image(
        &layout,
        &[
            "--certificate-identity",
            "someone@example.com",
            "--certificate-oidc-issuer",
            ISSUER,
        ],
    )
    .assert()
    .code(1);

    // A keyless SLSA attestation as a `.att` layer, and one as a bundle referrer.
    let predicate = mock.path("slsa.json");
    std::fs::write(
        &predicate,
        br#"{"buildDefinition":{"buildType":"https://example.com/build/v1","externalParameters":{}},"runDetails":{"builder":{"id":"https://github.com/actions/runner"}}}"#,
    )
    .unwrap();
    mock.verify_image(
        &layout,
        &[&keyless[..], &["--type", "slsaprovenance1"]].concat(),
    )
    .assert()
    .code(1);
    for extra in [&[][..], &["--new-bundle-format"][..]] {
        provenance()
            .args([
                "attest",
                UNSIGNED,
                "--keyless",
                "--identity-token",
                &mock.token,
            ])
            .args(["--predicate", &predicate, "--type", "slsaprovenance1"])
            .args(["--registry-layout", &layout])
            .args(extra)
            .args(mock.services())
            .assert()
            .code(0)
            .stderr(contains("keylessly by"));
    }
    let out = mock
        .verify_image(
            &layout,
            &[&keyless[..], &["--type", "slsaprovenance1", "-o", "json"]].concat(),
        )
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let v: Value = serde_json::from_slice(&out).unwrap();
    let origins: Vec<&str> = v[0]["attestations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            assert_eq!(a["predicateType"], "https://slsa.dev/provenance/v1");
            assert_eq!(a["signer"]["identity"], SUBJECT);
            assert_eq!(a["transparencyVerified"], true);
            a["origin"].as_str().unwrap()
        })
        .collect();
    assert_eq!(origins, ["cosign-tag", "referrer"]);

    // The `.att` layer carries cosign's certificate and SET annotations.
    let index: Value =
        serde_json::from_slice(&std::fs::read(Path::new(&layout).join("index.json")).unwrap())
            .unwrap();
    let att = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| {
            m["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .is_some_and(|n| {
                    n.starts_with("registry.example.com/ml/unsigned:sha256-") && n.ends_with(".att")
                })
        })
        .expect("an .att manifest");
    let digest = att["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:");
    let m: Value = serde_json::from_slice(
        &std::fs::read(Path::new(&layout).join("blobs/sha256").join(digest)).unwrap(),
    )
    .unwrap();
    let ann = &m["layers"][0]["annotations"];
    for k in [
        "dev.sigstore.cosign/certificate",
        "dev.sigstore.cosign/chain",
        "dev.sigstore.cosign/bundle",
        "predicateType",
    ] {
        assert!(ann[k].is_string(), "{k} missing: {ann}");
    }
}

#[test]
fn sign_image_with_a_key_and_tlog_upload_is_logged_and_needs_no_insecure_flag() {
    let Some(mock) = Mock::start(&[]) else { return };
    let layout = layout_copy(&mock);
    let dir = mock.dir.path().to_str().unwrap().to_owned();
    provenance()
        .current_dir(&dir)
        .args([
            "generate-key-pair",
            "--unencrypted",
            "--output-key-prefix",
            "k",
        ])
        .assert()
        .code(0);
    let key = mock.path("k.key");
    let public = mock.path("k.pub");
    let verify = |extra: &[&str]| {
        let mut c = mock.verify_image(&layout, &["--key", &public]);
        c.args(extra);
        c
    };
    // Key-only first: accepted only with --insecure-ignore-tlog.
    provenance()
        .args([
            "sign",
            "image",
            UNSIGNED,
            "--key",
            &key,
            "--registry-layout",
            &layout,
        ])
        .assert()
        .code(0)
        .stderr(contains("no log entry"));
    verify(&[]).assert().code(1);
    verify(&["--insecure-ignore-tlog"]).assert().code(0);

    // With --tlog-upload the signature is in the mock Rekor, and verifies without the flag.
    let fresh = layout_copy_named(&mock, "layout2");
    provenance()
        .args(["sign", "image", UNSIGNED, "--key", &key, "--tlog-upload"])
        .args(["--registry-layout", &fresh])
        .args(mock.services())
        .assert()
        .code(0)
        .stderr(contains("with key ").and(contains("Rekor log index")));
    mock.verify_image(&fresh, &["--key", &public])
        .assert()
        .code(0);
    // With a bundle referrer too.
    let third = layout_copy_named(&mock, "layout3");
    provenance()
        .args([
            "sign",
            "image",
            UNSIGNED,
            "--key",
            &key,
            "--tlog-upload",
            "--new-bundle-format",
        ])
        .args(["--registry-layout", &third])
        .args(mock.services())
        .assert()
        .code(0);
    mock.verify_image(&third, &["--key", &public])
        .assert()
        .code(0);
    // As cosign 3 writes it with the log upload: the sign/v1 Statement in a DSSE envelope,
    // logged as a `dsse` entry whose verifier is the key, named by the key's hint.
    let bundle = referrer_bundle(&third);
    assert_eq!(
        bundle["dsseEnvelope"]["payloadType"],
        "application/vnd.in-toto+json"
    );
    let vm = &bundle["verificationMaterial"];
    assert!(vm["publicKey"]["hint"].is_string(), "{vm}");
    assert_eq!(vm["tlogEntries"][0]["kindVersion"]["kind"], "dsse");

    // Service flags without --keyless or --tlog-upload are refused, not ignored.
    provenance()
        .args([
            "sign",
            "image",
            UNSIGNED,
            "--key",
            &key,
            "--registry-layout",
            &layout,
        ])
        .args(["--trust-root", &mock.path("trusted_root.json")])
        .assert()
        .code(2)
        .stderr(contains(
            "--trust-root applies to --keyless or --tlog-upload",
        ));
    // --keyless with --key: a usage error.
    provenance()
        .args([
            "sign",
            "image",
            UNSIGNED,
            "--key",
            &key,
            "--keyless",
            "--registry-layout",
            &layout,
        ])
        .assert()
        .code(2)
        .stderr(contains("exclude each other"));
}

#[test]
fn sign_image_keyless_refuses_a_bad_log_answer_and_writes_nothing() {
    let Some(mock) = Mock::start(&["rekor-bad-set"]) else {
        return;
    };
    let layout = layout_copy(&mock);
    let before = std::fs::read(Path::new(&layout).join("index.json")).unwrap();
    mock.sign_image_keyless(&layout)
        .assert()
        .code(1)
        .stderr(contains("[oci.sign.bundle_unverified]").and(contains("verify.tlog.set")));
    assert_eq!(
        std::fs::read(Path::new(&layout).join("index.json")).unwrap(),
        before,
        "nothing is written"
    );
}

/// The bundle of the one Sigstore bundle referrer written into `layout` (a copy of the
/// example layout) since it was copied.
fn referrer_bundle(layout: &str) -> Value {
    let read = |digest: &str| {
        std::fs::read(
            Path::new(layout)
                .join("blobs/sha256")
                .join(digest.trim_start_matches("sha256:")),
        )
        .unwrap()
    };
    let index_of = |dir: &Path| -> Vec<Value> {
        let v: Value =
            serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
        v["manifests"].as_array().unwrap().clone()
    };
    let before = index_of(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../ai-workloads/registry"));
    let bundles: Vec<Value> = index_of(Path::new(layout))
        .iter()
        .filter(|e| !before.contains(e))
        .map(|e| serde_json::from_slice::<Value>(&read(e["digest"].as_str().unwrap())).unwrap())
        .filter(|m| m["artifactType"] == "application/vnd.dev.sigstore.bundle.v0.3+json")
        .map(|m| serde_json::from_slice(&read(m["layers"][0]["digest"].as_str().unwrap())).unwrap())
        .collect();
    assert_eq!(bundles.len(), 1, "one bundle referrer");
    bundles.into_iter().next().unwrap()
}

fn layout_copy_named(mock: &Mock, name: &str) -> String {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ai-workloads/registry");
    let dst = mock.dir.path().join(name);
    copy_dir(&src, &dst);
    dst.to_str().unwrap().to_owned()
}
