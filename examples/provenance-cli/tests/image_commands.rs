//! `provenance verify image`, `inspect` and `export` against `examples/ai-workloads` (an OCI
//! layout with keyless- and key-signed images, attestations as cosign `.att` layers and as
//! Sigstore bundle referrers, and their trust root), and against a real registry on loopback
//! (Debian `docker-registry`). Every case asserts its exit code and the message or JSON field
//! that says why.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use predicates::str::contains;
use serde_json::Value;

const ID: &str = "ml-team@example.com";
const ISSUER: &str = "https://accounts.google.com";

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../ai-workloads")
}

fn layout() -> PathBuf {
    example().join("registry")
}

fn trust_root() -> PathBuf {
    layout().join("trusted_root.json")
}

fn image(name: &str) -> String {
    format!("registry.example.com/{name}:1.0")
}

fn provenance() -> Command {
    let mut c = Command::cargo_bin("provenance").unwrap();
    c.env("NO_COLOR", "1");
    c
}

/// The release / rogue public keys of the example, written to a temporary folder.
fn keys() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let v: Value =
        serde_json::from_slice(&std::fs::read(layout().join("keys.json")).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let release = dir.path().join("release.pub");
    let rogue = dir.path().join("rogue.pub");
    std::fs::write(&release, v["release"].as_str().unwrap()).unwrap();
    std::fs::write(&rogue, v["rogue"].as_str().unwrap()).unwrap();
    (dir, release, rogue)
}

/// The keyless signer of the example's `ml/` images.
const KEYLESS: [&str; 4] = [
    "--certificate-identity",
    ID,
    "--certificate-oidc-issuer",
    ISSUER,
];

/// `verify image` offline from the OCI layout `dir` with the example's trust root pinned.
fn verify_in(dir: &Path, args: &[&str]) -> Command {
    let mut c = provenance();
    c.args(["verify", "image"])
        .args(args)
        .arg("--registry-layout")
        .arg(dir)
        .arg("--trust-root")
        .arg(trust_root());
    c
}

/// `verify image` offline from the example layout with its trust root pinned.
fn verify(args: &[&str]) -> Command {
    verify_in(&layout(), args)
}

fn keyless(img: &str) -> Command {
    verify(&[&[img][..], &KEYLESS].concat())
}

fn json_of(out: &[u8]) -> Value {
    serde_json::from_slice(out)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(out)))
}

/// Runs `c`, asserts its exit code and returns its standard output as JSON.
fn json_exit(c: &mut Command, code: i32) -> Value {
    json_of(&c.assert().code(code).get_output().stdout)
}

/// `inspect IMAGE -o json` of the OCI layout `dir`, and `extra` arguments.
fn inspect_json(img: &str, dir: &Path, extra: &[&str], code: i32) -> Value {
    json_exit(
        provenance()
            .args(["inspect", img, "-o", "json"])
            .args(extra)
            .arg("--registry-layout")
            .arg(dir),
        code,
    )
}

// ------------------------------------------------------------------------- verify image

#[test]
fn signed_image_verifies_keyless_and_says_by_whom() {
    keyless(&image("ml/llm-server"))
        .assert()
        .code(0)
        .stdout(contains("Verified registry.example.com/ml/llm-server:1.0 (sha256:3f42cdc8251f5bbb916c70dea2d92d703b3a690eb4d5ca456874421210c667f9)"))
        .stdout(contains(format!("signed by {ID} (issuer {ISSUER}), log index")));
}

#[test]
fn signed_image_json_names_digest_signer_and_log_index() {
    let v = json_exit(keyless(&image("ml/llm-server")).args(["-o", "json"]), 0);
    let img = &v[0];
    assert_eq!(img["verified"], true);
    assert_eq!(
        img["digest"],
        "sha256:3f42cdc8251f5bbb916c70dea2d92d703b3a690eb4d5ca456874421210c667f9"
    );
    let sig = &img["signatures"][0];
    assert_eq!(sig["signer"]["type"], "certificate");
    assert_eq!(sig["signer"]["identity"], ID);
    assert_eq!(sig["signer"]["issuer"], ISSUER);
    assert!(sig["logIndex"].as_i64().is_some(), "{sig}");
    assert_eq!(sig["transparencyVerified"], true);
    assert_eq!(sig["origin"], "cosign-tag");
    assert!(img["error"].is_null());
}

#[test]
fn unsigned_image_fails_with_exit_1_and_says_so() {
    keyless(&image("ml/unsigned"))
        .assert()
        .code(1)
        .stdout("")
        .stderr(contains(
            "registry.example.com/ml/unsigned:1.0 (sha256:8b837e2365c30173f71285968a006d56bfb9b9abc0732b6752f92814ef19996e): no signatures found [cli.verify.no_signatures]",
        ))
        .stderr(contains("what to do: sign it"));
}

#[test]
fn unsigned_image_json_says_why() {
    let v = json_exit(keyless(&image("ml/unsigned")).args(["-o", "json"]), 1);
    assert_eq!(v[0]["verified"], false);
    assert_eq!(v[0]["error"]["code"], "cli.verify.no_signatures");
    assert_eq!(v[0]["error"]["exitCode"], 1);
    assert!(v[0]["signatures"].as_array().unwrap().is_empty());
}

#[test]
fn keyless_identity_mismatch_fails() {
    // Signed by intern@example.com, expected ml-team@.
    let out = keyless(&image("ml/wrong-identity"))
        .assert()
        .code(1)
        .stderr(contains(
            "expected subject \"ml-team@example.com\", certificate has [\"intern@example.com\"]",
        ))
        .stderr(contains("[verify.identity.subject]"))
        .get_output()
        .stderr
        .clone();
    // The code is said once, at the end of the line.
    let stderr = String::from_utf8(out).unwrap();
    assert_eq!(
        stderr.matches("verify.identity.subject").count(),
        1,
        "{stderr}"
    );
    // The genuine image, with the wrong expected identity or issuer.
    verify(&[
        &image("ml/llm-server"),
        "--certificate-identity",
        "intern@example.com",
        "--certificate-oidc-issuer",
        ISSUER,
    ])
    .assert()
    .code(1)
    .stderr(contains("verify.identity.subject"));
    verify(&[
        &image("ml/llm-server"),
        "--certificate-identity",
        ID,
        "--certificate-oidc-issuer",
        "https://token.actions.githubusercontent.com",
    ])
    .assert()
    .code(1)
    .stderr(contains("verify.identity.issuer"));
}

#[test]
fn identity_regular_expressions() {
    verify(&[
        &image("ml/llm-server"),
        "--certificate-identity-regexp",
        r"^ml-team@example\.com$",
        "--certificate-oidc-issuer-regexp",
        r"^https://accounts\.google\.com$",
    ])
    .assert()
    .code(0);
    verify(&[
        &image("ml/llm-server"),
        "--certificate-identity-regexp",
        "^intern@",
        "--certificate-oidc-issuer",
        ISSUER,
    ])
    .assert()
    .code(1);
}

#[test]
fn key_verification() {
    let (_dir, release, rogue) = keys();
    let release = release.to_str().unwrap();
    let rogue = rogue.to_str().unwrap();
    let v = json_exit(
        &mut verify(&[&image("gpu/cuda-app"), "--key", release, "-o", "json"]),
        0,
    );
    let sig = &v[0]["signatures"][0];
    assert_eq!(sig["signer"]["type"], "key");
    assert_eq!(sig["signer"]["keyKind"], "ecdsa-p256");
    assert!(
        sig["signer"]["keyId"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    assert!(sig["logIndex"].as_i64().is_some());
    // cosign's --offline is accepted (nothing is looked up online anyway).
    for offline in ["--offline", "--offline=true"] {
        verify(&[&image("gpu/cuda-app"), "--key", release, offline])
            .assert()
            .code(0);
    }
    // cosign's spellings of the switch: `--insecure-ignore-tlog=true|false`.
    for switch in [
        "--insecure-ignore-tlog",
        "--insecure-ignore-tlog=true",
        "--insecure-ignore-tlog=false",
    ] {
        verify(&[&image("gpu/cuda-app"), "--key", release, switch])
            .assert()
            .code(0);
    }
    verify(&[
        &image("gpu/cuda-app"),
        "--insecure-ignore-tlog=maybe",
        "--key",
        release,
    ])
    .assert()
    .code(2);
    // Signed with the rogue key: the release key does not verify it, the rogue key does.
    verify(&[&image("gpu/wrong-key"), "--key", release])
        .assert()
        .code(1)
        .stderr(contains("verify.signature.invalid"))
        .stderr(contains("not made with the private key of --key"));
    verify(&[&image("gpu/wrong-key"), "--key", rogue])
        .assert()
        .code(0);
    // An image signed keylessly only does not verify with a key (as cosign, the signature
    // is checked against the key; the certificate's key is another one).
    verify(&[&image("ml/wrong-identity"), "--key", release])
        .assert()
        .code(1)
        .stderr(contains("none of 1 signatures verified"))
        .stderr(contains("verify.signature.invalid"));
}

#[test]
fn attestations_by_predicate_type() {
    // SLSA v1 as a Sigstore bundle referrer, keyless.
    keyless(&image("ml/llm-server"))
        .args(["--type", "slsaprovenance1"])
        .assert()
        .code(0)
        .stdout(contains(
            "attestation https://slsa.dev/provenance/v1 (referrer): signed by ml-team@example.com",
        ));
    keyless(&image("ml/missing-slsa"))
        .args(["--type", "https://slsa.dev/provenance/v1"])
        .assert()
        .code(1)
        .stderr(contains(
            "no attestations found (need https://slsa.dev/provenance/v1)",
        ));
    // SPDX and CycloneDX signed with the release key, as cosign .att layers and referrers.
    let (_dir, release, _) = keys();
    let v = json_exit(
        &mut verify(&[
            &image("gpu/cuda-app"),
            "--key",
            release.to_str().unwrap(),
            "--type",
            "spdxjson",
            "--type",
            "cyclonedx",
            "-o",
            "json",
        ]),
        0,
    );
    let mut seen: Vec<(String, String)> = v[0]["attestations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["predicateType"].as_str().unwrap().to_owned(),
                a["origin"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("https://cyclonedx.org/bom", "cosign-tag"),
            ("https://cyclonedx.org/bom", "referrer"),
            ("https://spdx.dev/Document", "cosign-tag"),
            ("https://spdx.dev/Document", "referrer"),
        ]
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
    );
    // gpu/missing-sbom has a CycloneDX attestation but no SPDX one.
    verify(&[
        &image("gpu/missing-sbom"),
        "--key",
        release.to_str().unwrap(),
        "--type",
        "spdx",
    ])
    .assert()
    .code(1)
    .stderr(contains("https://spdx.dev/Document"));
}

#[test]
fn the_public_good_root_does_not_trust_the_fixtures() {
    let public_good =
        example().join("../../provenance-core/src/verify/public-good-trusted_root.json");
    provenance()
        .args(["verify", "image", &image("ml/llm-server")])
        .args(KEYLESS)
        .arg("--registry-layout")
        .arg(layout())
        .arg("--trust-root")
        .arg(public_good)
        .assert()
        .code(1)
        .stderr(contains("none of 2 signatures verified"));
}

#[test]
fn several_images_exit_with_the_worst_outcome() {
    keyless(&image("ml/llm-server"))
        .arg(image("ml/unsigned"))
        .assert()
        .code(1)
        .stdout(contains("Verified registry.example.com/ml/llm-server:1.0"))
        .stderr(contains("ml/unsigned:1.0"));
}

#[test]
fn an_image_the_layout_does_not_hold_is_an_evidence_error() {
    keyless("registry.example.com/ml/nowhere:9.9")
        .assert()
        .code(3)
        .stderr(contains("cannot resolve"))
        .stderr(contains("[oci.not_found]"));
}

// -------------------------------------------------------------------------------- usage

#[test]
fn usage_errors_exit_2_and_say_what_to_do() {
    // No signer at all.
    verify(&[&image("ml/llm-server")])
        .assert()
        .code(2)
        .stderr(contains("no signer to verify against"))
        .stderr(contains("pass --key FILE, or --certificate-identity"));
    // An identity without an issuer.
    verify(&[&image("ml/llm-server"), "--certificate-identity", ID])
        .assert()
        .code(2)
        .stderr(contains("needs both a signer identity"));
    // A key and an identity (clap).
    verify(&[
        &image("ml/llm-server"),
        "--key",
        "k.pub",
        "--certificate-identity",
        ID,
    ])
    .assert()
    .code(2);
    // Unknown predicate type name.
    keyless(&image("ml/llm-server"))
        .args(["--type", "slsa"])
        .assert()
        .code(2)
        .stderr(contains("--type slsa"));
    // A bad regular expression.
    verify(&[
        &image("ml/llm-server"),
        "--certificate-identity-regexp",
        "(",
        "--certificate-oidc-issuer",
        ISSUER,
    ])
    .assert()
    .code(2)
    .stderr(contains("--certificate-identity-regexp"));
    // Not an image reference.
    keyless("Registry.Example.com/UPPER CASE")
        .assert()
        .code(2)
        .stderr(contains("not an image reference"));
    // A missing key file, a folder that is no layout, no image, a bad --now.
    verify(&[&image("ml/llm-server"), "--key", "/nonexistent/key.pub"])
        .assert()
        .code(2)
        .stderr(contains("--key /nonexistent/key.pub"));
    provenance()
        .args(["verify", "image", &image("ml/llm-server"), "--key"])
        .arg(trust_root())
        .assert()
        .code(2);
    let empty = tempfile::tempdir().unwrap();
    provenance()
        .args(["verify", "image", &image("ml/llm-server")])
        .args(KEYLESS)
        .arg("--registry-layout")
        .arg(empty.path())
        .assert()
        .code(2)
        .stderr(contains("provenance export IMAGE --to DIR"));
    provenance()
        .args(["verify", "image", "--key", "k.pub"])
        .assert()
        .code(2);
    keyless(&image("ml/llm-server"))
        .args(["--now", "yesterday"])
        .assert()
        .code(2)
        .stderr(contains("RFC 3339"));
    // inspect and export share the flags and the codes.
    provenance()
        .args(["inspect", "not a reference"])
        .assert()
        .code(2);
    provenance()
        .args(["export", &image("ml/llm-server")])
        .assert()
        .code(2)
        .stderr(contains("--to"));
}

#[test]
fn help_documents_the_exit_codes() {
    for cmd in [&["verify", "image"][..], &["inspect"], &["export"]] {
        provenance()
            .args(cmd)
            .arg("--help")
            .assert()
            .code(0)
            .stdout(contains("Exit codes:"))
            .stdout(contains("3  evidence could not be obtained"));
    }
}

// -------------------------------------------------------------------------------- inspect

#[test]
fn inspect_without_trust_is_an_unverified_listing() {
    provenance()
        .args(["inspect", &image("gpu/cuda-app")])
        .arg("--registry-layout")
        .arg(layout())
        .assert()
        .code(0)
        .stdout(contains("UNVERIFIED listing"))
        .stdout(contains("claims certificate for ml-team@example.com"));
    let v = inspect_json(&image("gpu/cuda-app"), &layout(), &[], 0);
    assert!(
        v["verification"]
            .as_str()
            .unwrap()
            .contains("UNVERIFIED listing"),
        "{v}"
    );
    assert_eq!(
        v["digest"],
        "sha256:054b7fcaae5174632ae0b1df3ca8c6f8d7b91f9a80b2ae45608addcaa12c91bc"
    );
    // Two cosign signature layers (keyless and key), six attestations (cosign .att and
    // bundle referrers), three bundle referrers, no .sbom attachment.
    assert_eq!(v["signatures"].as_array().unwrap().len(), 2);
    assert_eq!(v["attestations"].as_array().unwrap().len(), 6);
    assert_eq!(v["referrers"].as_array().unwrap().len(), 3);
    assert_eq!(v["sboms"].as_array().unwrap().len(), 0);
    for item in v["signatures"]
        .as_array()
        .unwrap()
        .iter()
        .chain(v["attestations"].as_array().unwrap())
    {
        assert!(item.get("verified").is_none(), "{item}");
    }
    let mut types: Vec<&str> = v["attestations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["claimedPredicateType"].as_str().unwrap())
        .collect();
    types.sort();
    types.dedup();
    assert_eq!(
        types,
        [
            "https://cyclonedx.org/bom",
            "https://slsa.dev/provenance/v1",
            "https://spdx.dev/Document"
        ]
    );
    for r in v["referrers"].as_array().unwrap() {
        assert_eq!(
            r["artifactType"],
            "application/vnd.dev.sigstore.bundle.v0.3+json"
        );
    }
}

#[test]
fn inspect_with_a_key_says_which_evidence_verifies() {
    let (_dir, release, rogue) = keys();
    let root = trust_root();
    let run = |key: &Path, code: i32| {
        let extra = [
            "--key",
            key.to_str().unwrap(),
            "--trust-root",
            root.to_str().unwrap(),
        ];
        inspect_json(&image("gpu/cuda-app"), &layout(), &extra, code)
    };
    let v = run(&release, 0);
    let verified = |kind: &str| -> Vec<bool> {
        v[kind]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["verified"].as_bool().unwrap())
            .collect()
    };
    // The key-signed signature verifies, the keyless one does not (with the reason).
    assert_eq!(verified("signatures").iter().filter(|b| **b).count(), 1);
    let rejected = v["signatures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["verified"] == false)
        .unwrap();
    assert!(
        rejected["error"]["code"]
            .as_str()
            .unwrap()
            .starts_with("verify."),
        "{rejected}"
    );
    // SPDX and CycloneDX (two shapes each) verify with the key; SLSA is keyless.
    assert_eq!(verified("attestations").iter().filter(|b| **b).count(), 4);
    // Nothing verifies with the rogue key: exit 1.
    let v = run(&rogue, 1);
    assert!(
        v["signatures"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["verified"] == false)
    );
}

// ------------------------------------------------------- export, then verify offline

#[test]
fn export_from_a_registry_then_verify_offline() {
    let Some((reg, endpoint)) = common::serve_layout(&layout()) else {
        return;
    };
    let out_dir = tempfile::tempdir().unwrap();
    let to = out_dir.path().join("airgap");
    let v = json_exit(
        provenance()
            .args(["export", &image("ml/llm-server"), &image("gpu/cuda-app")])
            .arg("--to")
            .arg(&to)
            .args(["--allow-http", "registry.example.com"])
            .args(["--registry-endpoint", &endpoint])
            .args(["-o", "json"]),
        0,
    );
    assert_eq!(v[0]["exported"], true);
    assert_eq!(
        v[0]["digest"],
        "sha256:3f42cdc8251f5bbb916c70dea2d92d703b3a690eb4d5ca456874421210c667f9"
    );
    assert_eq!(v[0]["referrers"], 3, "{v}");
    assert_eq!(v[1]["cosignTags"].as_array().unwrap().len(), 2, "{v}");
    // The registry is gone: everything below reads the exported layout only.
    drop(reg);
    let offline = |args: &[&str]| verify_in(&to, args);
    let keyless_offline = |img: &str| verify_in(&to, &[&[img][..], &KEYLESS].concat());
    keyless_offline(&image("ml/llm-server"))
        .args(["--type", "slsaprovenance1"])
        .assert()
        .code(0)
        .stdout(contains(
            "attestation https://slsa.dev/provenance/v1 (referrer)",
        ));
    keyless_offline(&image("ml/llm-server"))
        .assert()
        .code(0)
        .stdout(contains("Verified registry.example.com/ml/llm-server:1.0"));
    let (_dir, release, _) = keys();
    offline(&[
        &image("gpu/cuda-app"),
        "--key",
        release.to_str().unwrap(),
        "--type",
        "spdxjson",
        "--type",
        "cyclonedx",
    ])
    .assert()
    .code(0);
    // An image that was not exported is not there.
    keyless_offline(&image("ml/unsigned"))
        .assert()
        .code(3)
        .stderr(contains("oci.not_found"));
}

#[test]
fn verify_and_export_from_a_registry_that_is_down_exit_3() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("registry.example.com=127.0.0.1:{port}");
    let online = [
        "--allow-http",
        "registry.example.com",
        "--registry-endpoint",
        &endpoint,
    ];
    provenance()
        .args(["verify", "image", &image("ml/llm-server")])
        .args(KEYLESS)
        .args(online)
        .arg("--trust-root")
        .arg(trust_root())
        .assert()
        .code(3)
        .stderr(contains("what to do: check that the registry is reachable"));
    let out_dir = tempfile::tempdir().unwrap();
    provenance()
        .args(["export", &image("ml/llm-server"), "--to"])
        .arg(out_dir.path().join("x"))
        .args(online)
        .assert()
        .code(3);
}

#[test]
fn export_from_a_layout_into_another_layout() {
    let out_dir = tempfile::tempdir().unwrap();
    let to = out_dir.path().join("copy");
    provenance()
        .args(["export", &image("ml/tokenizer"), "--to"])
        .arg(&to)
        .arg("--registry-layout")
        .arg(layout())
        .assert()
        .code(0)
        .stdout(contains("Exported registry.example.com/ml/tokenizer:1.0"));
    verify_in(
        &to,
        &[&[image("ml/tokenizer").as_str()][..], &KEYLESS].concat(),
    )
    .assert()
    .code(0);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

#[test]
fn inspect_lists_sboms_from_cosign_tags_and_referrers() {
    use provenance_core::{Digest, DigestAlgorithm};
    use provenance_oci::{LayoutWriter, Manifest};
    // A copy of the example layout, plus an SPDX SBOM for gpu/cuda-app attached the two ways
    // tools do it: cosign's `.sbom` tag, and an OCI 1.1 referrer (oras attach).
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("layout");
    copy_dir(&layout(), &copy);
    let subject = "sha256:054b7fcaae5174632ae0b1df3ca8c6f8d7b91f9a80b2ae45608addcaa12c91bc";
    let sbom = br#"{"spdxVersion":"SPDX-2.3","SPDXID":"SPDXRef-DOCUMENT","name":"cuda-app"}"#;
    let sbom_digest = Digest::sha256_of(sbom);
    let empty = b"{}";
    let empty_digest = Digest::sha256_of(empty);
    let mut w = LayoutWriter::create(&copy).unwrap();
    w.put_blob(&sbom_digest, sbom).unwrap();
    w.put_blob(&empty_digest, empty).unwrap();
    let manifest = |extra: serde_json::Value| {
        let mut m = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.empty.v1+json",
                       "digest": empty_digest.to_string(), "size": 2},
            "layers": [{"mediaType": "text/spdx+json", "digest": sbom_digest.to_string(),
                        "size": sbom.len()}],
        });
        for (k, v) in extra.as_object().unwrap() {
            m[k] = v.clone();
        }
        Manifest::from_bytes(
            serde_json::to_vec(&m).unwrap(),
            DigestAlgorithm::Sha256,
            None,
        )
        .unwrap()
    };
    let tagged = manifest(serde_json::json!({}));
    w.add_entry(
        &tagged,
        Some(&format!("sha256-{}.sbom", &subject[7..])),
        None,
    )
    .unwrap();
    let referrer = manifest(serde_json::json!({
        "artifactType": "application/spdx+json",
        "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": subject, "size": 471},
    }));
    w.add_entry(&referrer, None, Some("application/spdx+json"))
        .unwrap();
    w.finish().unwrap();

    let v = inspect_json(&image("gpu/cuda-app"), &copy, &[], 0);
    let sboms = v["sboms"].as_array().unwrap();
    assert_eq!(sboms.len(), 2, "{v}");
    assert_eq!(sboms[0]["origin"], "cosign-tag");
    assert_eq!(sboms[0]["mediaType"], "text/spdx+json");
    assert_eq!(sboms[0]["layerDigest"], sbom_digest.to_string());
    assert_eq!(sboms[1]["origin"], "referrer");
    assert_eq!(sboms[1]["mediaType"], "application/spdx+json");
    assert_eq!(sboms[1]["manifestDigest"], referrer.digest.to_string());
    assert_eq!(v["referrers"].as_array().unwrap().len(), 4);
    provenance()
        .args(["inspect", &image("gpu/cuda-app")])
        .arg("--registry-layout")
        .arg(&copy)
        .assert()
        .code(0)
        .stdout(contains("sboms (2):"))
        .stdout(contains("unsigned cosign attachment"));
}

#[test]
fn hostile_layout_files_are_refused_and_never_written_through() {
    let tmp = tempfile::tempdir().unwrap();
    // index.json a link to /dev/zero: refused at once, nothing read.
    let zero = tmp.path().join("zero");
    copy_dir(&layout(), &zero);
    std::fs::remove_file(zero.join("index.json")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", zero.join("index.json")).unwrap();
    provenance()
        .args(["inspect", &image("ml/tokenizer")])
        .arg("--registry-layout")
        .arg(&zero)
        .assert()
        .code(2)
        .stderr(contains("[oci.unsafe_file]"));
    // An export destination holding a link where oci-layout goes: refused, the link's target
    // untouched.
    let victim = tmp.path().join("victim");
    std::fs::write(&victim, "victim").unwrap();
    let exp = tmp.path().join("exp");
    std::fs::create_dir(&exp).unwrap();
    std::os::unix::fs::symlink(&victim, exp.join("oci-layout")).unwrap();
    provenance()
        .args(["export", &image("ml/llm-server"), "--to"])
        .arg(&exp)
        .arg("--registry-layout")
        .arg(layout())
        .assert()
        .code(3)
        .stderr(contains("[oci.unsafe_file]"));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "victim");
}
