//! `provenance generate-key-pair`, `sign`, `attest` end to end: images signed and attested into
//! a real registry on loopback (docker-registry, no referrers API) are admitted by `provenance
//! apply` with the AI-workload policy `verify-ai-images` (its keyless attestor swapped for the
//! generated key, with `rekor.ignoreTlog`), and refused when unsigned, signed by another key or
//! attested by another builder. Blobs, models and datasets signed by the CLI verify with the
//! CLI's verifiers (and with `model_signing` in `sign_model_...`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::Registry;
use provenance_core::{Digest, DigestAlgorithm, ImageReference};
use provenance_oci::{Manifest, RegistryClient, RegistryConfig};
use serde_json::{Value, json};

const PASSWORD: &str = "test password";

fn provenance(dir: &Path, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_provenance"))
        .current_dir(dir)
        .env("COSIGN_PASSWORD", PASSWORD)
        .args(args)
        .output()
        .unwrap();
    eprintln!(
        "$ provenance {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let out = provenance(dir, args);
    assert!(out.status.success(), "provenance {} failed", args.join(" "));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../ai-workloads")
}

/// Pushes a one-layer image under `registry.example.com/<repo>:<tag>` (through the endpoint).
async fn push_image(client: &RegistryClient, repo: &str, tag: &str, layer: &[u8]) {
    let image = ImageReference::parse(&format!("registry.example.com/{repo}:{tag}")).unwrap();
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    client
        .push_blob(&image, &Digest::sha256_of(config), config)
        .await
        .unwrap();
    client
        .push_blob(&image, &Digest::sha256_of(layer), layer)
        .await
        .unwrap();
    let m = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": Digest::sha256_of(config).to_string(), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": Digest::sha256_of(layer).to_string(), "size": layer.len()}],
    });
    let m = Manifest::from_bytes(
        serde_json::to_vec(&m).unwrap(),
        DigestAlgorithm::Sha256,
        None,
    )
    .unwrap();
    client.push_manifest(&image, &m).await.unwrap();
}

/// `verify-ai-images` with its keyless attestor replaced by `public_key` (no transparency log).
fn key_policy(public_key: &str) -> Value {
    let text = std::fs::read_to_string(example().join("policies/verify-ai-images.yaml")).unwrap();
    let mut policy: Value = serde_saphyr::from_str(&text).unwrap();
    let vi = &mut policy["spec"]["rules"][0]["verifyImages"][0];
    assert!(
        vi["attestors"][0]["entries"][0]["keyless"].is_object(),
        "the example changed"
    );
    vi["attestors"] = json!([{ "entries": [{ "keys": {
        "publicKeys": public_key,
        "rekor": { "ignoreTlog": true },
    }}]}]);
    policy
}

fn pod(name: &str, image: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "ml-serving"},
        "spec": {"containers": [{"name": "server", "image": image}]},
    })
}

fn slsa(builder: &str) -> Value {
    json!({
        "buildDefinition": {
            "buildType": "https://example.com/training/v1",
            "externalParameters": {"workflow": {"repository": "https://github.com/example/ml"}},
            "resolvedDependencies": [{"uri": "s3://datasets/train.parquet", "digest": {"sha256": Digest::sha256_of(b"data").hex()}}],
        },
        "runDetails": {"builder": {"id": builder}},
    })
}

#[test]
fn signed_and_attested_images_pass_the_ai_workload_policy_through_a_registry() {
    let Some(reg) = Registry::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(d, &["generate-key-pair"]);
    let key_pem = std::fs::read_to_string(d.join("cosign.key")).unwrap();
    assert!(key_pem.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----"));
    ok(
        d,
        &[
            "generate-key-pair",
            "--output-key-prefix",
            "rogue",
            "--algorithm",
            "ecdsa-p384",
        ],
    );
    // Refuses to overwrite.
    assert!(!provenance(d, &["generate-key-pair"]).status.success());

    let config = RegistryConfig::default().allow_http("registry.example.com");
    let mut config = config;
    config
        .registries
        .entry("registry.example.com".into())
        .or_default()
        .endpoint = Some(reg.addr.clone());
    let client = RegistryClient::new(config).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        for (repo, layer) in [
            ("ml/server", &b"server"[..]),
            ("ml/bundled", b"bundled"),
            ("ml/unsigned", b"unsigned"),
            ("ml/rogue", b"rogue"),
            ("ml/wrong-builder", b"wrong"),
        ] {
            push_image(&client, repo, "1.0", layer).await;
        }
    });

    let endpoint = format!("registry.example.com={}", reg.addr);
    let net = [
        "--allow-http",
        "registry.example.com",
        "--registry-endpoint",
        endpoint.as_str(),
    ];
    let good = slsa("https://github.com/actions/runner");
    std::fs::write(d.join("slsa.json"), good.to_string()).unwrap();
    std::fs::write(
        d.join("slsa-evil.json"),
        slsa("https://evil.example.com").to_string(),
    )
    .unwrap();
    let sign = |image: &str, key: &str, extra: &[&str]| {
        let mut a = vec![
            "sign",
            "image",
            image,
            "--key",
            key,
            "-a",
            "pipeline=train-42",
        ];
        a.extend_from_slice(extra);
        a.extend_from_slice(&net);
        ok(d, &a);
    };
    let attest = |image: &str, key: &str, predicate: &str, extra: &[&str]| {
        let mut a = vec![
            "attest",
            image,
            "--predicate",
            predicate,
            "--type",
            "slsaprovenance1",
            "--key",
            key,
        ];
        a.extend_from_slice(extra);
        a.extend_from_slice(&net);
        ok(d, &a);
    };
    sign("registry.example.com/ml/server:1.0", "cosign.key", &[]);
    attest(
        "registry.example.com/ml/server:1.0",
        "cosign.key",
        "slsa.json",
        &[],
    );
    sign(
        "registry.example.com/ml/bundled:1.0",
        "cosign.key",
        &["--new-bundle-format"],
    );
    attest(
        "registry.example.com/ml/bundled:1.0",
        "cosign.key",
        "slsa.json",
        &["--new-bundle-format"],
    );
    sign("registry.example.com/ml/rogue:1.0", "rogue.key", &[]);
    attest(
        "registry.example.com/ml/rogue:1.0",
        "rogue.key",
        "slsa.json",
        &[],
    );
    sign(
        "registry.example.com/ml/wrong-builder:1.0",
        "cosign.key",
        &[],
    );
    attest(
        "registry.example.com/ml/wrong-builder:1.0",
        "cosign.key",
        "slsa-evil.json",
        &[],
    );
    // A predicate the SLSA parser refuses is refused before anything is signed.
    std::fs::write(
        d.join("bad.json"),
        r#"{"runDetails": {"builder": {"id": 3}}}"#,
    )
    .unwrap();
    let mut a = vec![
        "attest",
        "registry.example.com/ml/server:1.0",
        "--predicate",
        "bad.json",
        "--type",
        "slsaprovenance1",
        "--key",
        "cosign.key",
    ];
    a.extend_from_slice(&net);
    assert_eq!(provenance(d, &a).status.code(), Some(2));

    // `verify image` (cosign verify flags) accepts the key-signed image.
    let mut v = vec![
        "verify",
        "image",
        "registry.example.com/ml/server:1.0",
        "--key",
        "cosign.pub",
        "--insecure-ignore-tlog",
    ];
    v.extend_from_slice(&net);
    ok(d, &v);

    let policy = key_policy(&std::fs::read_to_string(d.join("cosign.pub")).unwrap());
    std::fs::write(
        d.join("policy.yaml"),
        serde_json::to_string_pretty(&policy).unwrap(),
    )
    .unwrap();
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ml-serving", "labels": {"purpose": "ai-inference"}}});
    let pods = [
        (
            "server",
            "registry.example.com/ml/server:1.0",
            "pass",
            "verified registry.example.com/ml/server:1.0",
        ),
        (
            "bundled",
            "registry.example.com/ml/bundled:1.0",
            "pass",
            "verified registry.example.com/ml/bundled:1.0",
        ),
        (
            "unsigned",
            "registry.example.com/ml/unsigned:1.0",
            "fail",
            "no signatures found",
        ),
        (
            "rogue",
            "registry.example.com/ml/rogue:1.0",
            "fail",
            "verify.signature.invalid",
        ),
        (
            "wrong-builder",
            "registry.example.com/ml/wrong-builder:1.0",
            "fail",
            "attestation conditions not met",
        ),
    ];
    let mut resources = vec![serde_json::to_string(&ns).unwrap()];
    for (name, image, _, _) in &pods {
        resources.push(serde_json::to_string(&pod(name, image)).unwrap());
    }
    std::fs::write(d.join("resources.yaml"), resources.join("\n---\n")).unwrap();
    let mut a = vec![
        "apply",
        "--policy",
        "policy.yaml",
        "--resource",
        "resources.yaml",
        "--online",
        "-o",
        "json",
    ];
    a.extend_from_slice(&net);
    let out = provenance(d, &a);
    assert_eq!(out.status.code(), Some(1), "three Pods must be blocked");
    let reports: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut seen = 0;
    for report in reports.as_array().unwrap() {
        for r in report["results"].as_array().unwrap() {
            let name = r["resources"][0]["name"].as_str().unwrap();
            let (_, _, want, fragment) = pods.iter().find(|p| p.0 == name).unwrap();
            let msg = r["message"].as_str().unwrap_or_default();
            assert_eq!(r["result"], *want, "{name}: {msg}");
            assert!(msg.contains(fragment), "{name}: {msg:?} lacks {fragment:?}");
            seen += 1;
        }
    }
    assert_eq!(seen, pods.len());
}

#[test]
fn blobs_models_and_datasets_signed_by_the_cli_verify() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(d, &["generate-key-pair", "--algorithm", "ecdsa-p256"]);
    // A plain PKCS#8 key too.
    ok(
        d,
        &[
            "generate-key-pair",
            "--output-key-prefix",
            "plain",
            "--unencrypted",
        ],
    );
    assert!(
        std::fs::read_to_string(d.join("plain.key"))
            .unwrap()
            .starts_with("-----BEGIN PRIVATE KEY-----")
    );
    std::fs::write(d.join("artifact.bin"), b"release artifact").unwrap();
    ok(
        d,
        &[
            "sign",
            "blob",
            "artifact.bin",
            "--key",
            "cosign.key",
            "--bundle",
            "artifact.sigstore.json",
            "--output-signature",
            "artifact.sig",
        ],
    );
    assert!(
        !std::fs::read_to_string(d.join("artifact.sig"))
            .unwrap()
            .is_empty()
    );
    ok(
        d,
        &[
            "verify",
            "bundle",
            "artifact.bin",
            "--bundle",
            "artifact.sigstore.json",
            "--key",
            "cosign.pub",
            "--allow-no-transparency",
        ],
    );
    // Another artifact or key: refused.
    std::fs::write(d.join("other.bin"), b"other").unwrap();
    assert_eq!(
        provenance(
            d,
            &[
                "verify",
                "bundle",
                "other.bin",
                "--bundle",
                "artifact.sigstore.json",
                "--key",
                "cosign.pub",
                "--allow-no-transparency"
            ]
        )
        .status
        .code(),
        Some(1)
    );
    assert!(
        !provenance(
            d,
            &[
                "verify",
                "bundle",
                "artifact.bin",
                "--bundle",
                "artifact.sigstore.json",
                "--key",
                "plain.pub",
                "--allow-no-transparency"
            ]
        )
        .status
        .success()
    );
    // Wrong password: a usage error naming the variable.
    let out = Command::new(env!("CARGO_BIN_EXE_provenance"))
        .current_dir(d)
        .env("COSIGN_PASSWORD", "wrong")
        .args([
            "sign",
            "blob",
            "artifact.bin",
            "--key",
            "cosign.key",
            "--bundle",
            "x.json",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("COSIGN_PASSWORD"));

    // A model folder, with model_signing's flag spellings.
    let model = d.join("model");
    std::fs::create_dir_all(model.join("weights")).unwrap();
    std::fs::write(model.join("config.json"), b"{}").unwrap();
    std::fs::write(model.join("weights/model.safetensors"), vec![7u8; 300_000]).unwrap();
    ok(
        d,
        &[
            "sign",
            "model",
            "model",
            "--private_key",
            "plain.key",
            "--signature",
            "model.sig",
        ],
    );
    ok(
        d,
        &[
            "verify",
            "model",
            "model",
            "--signature",
            "model.sig",
            "--public_key",
            "plain.pub",
        ],
    );
    std::fs::write(model.join("config.json"), b"{\"changed\": true}").unwrap();
    assert_eq!(
        provenance(
            d,
            &[
                "verify",
                "model",
                "model",
                "--signature",
                "model.sig",
                "--public_key",
                "plain.pub"
            ]
        )
        .status
        .code(),
        Some(1)
    );

    // A dataset file as an in-toto subject, verified by `verify bundle` against its digest.
    std::fs::write(d.join("train.parquet"), b"rows").unwrap();
    std::fs::write(
        d.join("dataset.json"),
        json!({
            "name": "train", "sourceUri": "s3://acme/train.parquet", "license": "CC-BY-4.0",
            "digest": {"sha256": Digest::sha256_of(b"rows").hex()},
        })
        .to_string(),
    )
    .unwrap();
    ok(
        d,
        &[
            "sign",
            "dataset",
            "train.parquet",
            "--key",
            "cosign.key",
            "--bundle",
            "train.sigstore.json",
            "--predicate",
            "dataset.json",
        ],
    );
    ok(
        d,
        &[
            "verify",
            "bundle",
            "train.parquet",
            "--bundle",
            "train.sigstore.json",
            "--key",
            "cosign.pub",
            "--allow-no-transparency",
        ],
    );
}

/// Copies the AI-workloads layout into `dir/layout` and adds an image index
/// `registry.example.com/ml/multi:1.0` over two of its image manifests; returns the layout
/// and the two platform digests.
fn layout_with_index(dir: &Path) -> (String, Vec<String>) {
    fn copy(src: &Path, dst: &Path) {
        std::fs::create_dir_all(dst).unwrap();
        for e in std::fs::read_dir(src).unwrap() {
            let e = e.unwrap();
            let to = dst.join(e.file_name());
            if e.file_type().unwrap().is_dir() {
                copy(&e.path(), &to);
            } else {
                std::fs::copy(e.path(), &to).unwrap();
            }
        }
    }
    let layout = dir.join("layout");
    copy(&example().join("registry"), &layout);
    let index_path = layout.join("index.json");
    let mut index: Value = serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    let tagged = |name: &str| {
        index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == name)
            .unwrap()
            .clone()
    };
    let platforms = [
        (tagged("registry.example.com/ml/unsigned:1.0"), "amd64"),
        (tagged("registry.example.com/ml/trainer:1.0"), "arm64"),
    ];
    let children: Vec<String> = platforms
        .iter()
        .map(|(d, _)| d["digest"].as_str().unwrap().to_owned())
        .collect();
    let oci_index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": platforms.iter().map(|(d, arch)| json!({
            "mediaType": d["mediaType"], "digest": d["digest"], "size": d["size"],
            "platform": { "os": "linux", "architecture": arch },
        })).collect::<Vec<_>>(),
    }))
    .unwrap();
    let digest = Digest::sha256_of(&oci_index);
    std::fs::write(layout.join("blobs/sha256").join(digest.hex()), &oci_index).unwrap();
    index["manifests"].as_array_mut().unwrap().push(json!({
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "digest": digest.to_string(),
        "size": oci_index.len(),
        "annotations": { "org.opencontainers.image.ref.name": "registry.example.com/ml/multi:1.0" },
    }));
    std::fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
    (layout.to_str().unwrap().to_owned(), children)
}

#[test]
fn recursive_signing_covers_every_platform_and_replace_drops_earlier_attestations() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    ok(dir, &["generate-key-pair", "--output-key-prefix", "k"]);
    let (layout, children) = layout_with_index(dir);
    let at = |d: &str| format!("registry.example.com/ml/multi@{d}");
    let verify = |image: &str, extra: &[&str]| {
        let mut args = vec![
            "verify",
            "image",
            image,
            "--registry-layout",
            &layout,
            "--key",
            "k.pub",
            "--insecure-ignore-tlog",
        ];
        args.extend_from_slice(extra);
        provenance(dir, &args).status.code()
    };

    // Without --recursive only the index is signed.
    ok(
        dir,
        &[
            "sign",
            "image",
            "registry.example.com/ml/multi:1.0",
            "--key",
            "k.key",
            "--registry-layout",
            &layout,
        ],
    );
    assert_eq!(verify("registry.example.com/ml/multi:1.0", &[]), Some(0));
    assert_eq!(verify(&at(&children[0]), &[]), Some(1));
    // With it, every platform manifest too: one reference printed per digest.
    let out = ok(
        dir,
        &[
            "sign",
            "image",
            "registry.example.com/ml/multi:1.0",
            "--key",
            "k.key",
            "--recursive",
            "--registry-layout",
            &layout,
        ],
    );
    assert_eq!(out.lines().count(), 3, "{out}");
    for c in &children {
        assert_eq!(verify(&at(c), &[]), Some(0), "platform {c}");
    }

    // Two SLSA attestations append; --replace keeps only the newest, which is what verifies.
    let predicate = dir.join("slsa.json");
    let image = "registry.example.com/ml/multi:1.0";
    for builder in ["https://ci.example.com/old", "https://ci.example.com/new"] {
        std::fs::write(&predicate, serde_json::to_vec(&slsa(builder)).unwrap()).unwrap();
        ok(
            dir,
            &[
                "attest",
                image,
                "--predicate",
                "slsa.json",
                "--type",
                "slsaprovenance1",
                "--key",
                "k.key",
                "--registry-layout",
                &layout,
            ],
        );
    }
    let count = || {
        let out = provenance(
            dir,
            &[
                "verify",
                "image",
                image,
                "--registry-layout",
                &layout,
                "--key",
                "k.pub",
                "--insecure-ignore-tlog",
                "--type",
                "slsaprovenance1",
                "-o",
                "json",
            ],
        );
        assert_eq!(out.status.code(), Some(0));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v[0]["attestations"].as_array().unwrap().len()
    };
    assert_eq!(count(), 2);
    std::fs::write(
        &predicate,
        serde_json::to_vec(&slsa("https://ci.example.com/newest")).unwrap(),
    )
    .unwrap();
    let out = provenance(
        dir,
        &[
            "attest",
            image,
            "--predicate",
            "slsa.json",
            "--type",
            "slsaprovenance1",
            "--key",
            "k.key",
            "--replace",
            "--registry-layout",
            &layout,
        ],
    );
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("removed 2 earlier https://slsa.dev/provenance/v1 attestation(s)")
    );
    assert_eq!(count(), 1);
    // --replace with a bundle referrer: a usage error.
    let out = provenance(
        dir,
        &[
            "attest",
            image,
            "--predicate",
            "slsa.json",
            "--type",
            "slsaprovenance1",
            "--key",
            "k.key",
            "--replace",
            "--new-bundle-format",
            "--registry-layout",
            &layout,
        ],
    );
    assert_eq!(out.status.code(), Some(2));
}
