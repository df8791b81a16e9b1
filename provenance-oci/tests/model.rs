//! Model-folder verification against real model-signing 1.1 signatures
//! (fixtures from `scripts/fixtures/model-signing/generate.sh`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use provenance_core::{PublicKey, UnixTime};
use provenance_oci::model::{
    ManifestDiff, ModelError, ModelTrust, VerifyOptions, dataset_digest, verify_dataset_digest,
    verify_model,
};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/model-signing")
}

fn key(name: &str) -> ModelTrust {
    let pem = std::fs::read_to_string(fixtures().join("keys").join(name)).unwrap();
    ModelTrust::Key(PublicKey::from_pem(&pem).unwrap())
}

fn chain(name: &str) -> ModelTrust {
    ModelTrust::certificate_chain_from_pem(
        &std::fs::read(fixtures().join("keys").join(name)).unwrap(),
    )
    .unwrap()
}

fn sig(name: &str) -> PathBuf {
    fixtures().join("signatures").join(name)
}

fn now() -> UnixTime {
    provenance_oci::model::system_now()
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

/// A private copy of the fixture model.
fn model_copy() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("model");
    copy_dir(&fixtures().join("model"), &m);
    (dir, m)
}

fn verify(
    m: &Path,
    s: &Path,
    t: &ModelTrust,
) -> Result<provenance_oci::model::ModelReport, ModelError> {
    verify_model(m, s, t, &VerifyOptions::default(), now())
}

fn mismatch(r: Result<provenance_oci::model::ModelReport, ModelError>) -> (String, ManifestDiff) {
    match r {
        Err(e @ ModelError::Mismatch { .. }) => {
            let code = e.code().to_owned();
            let ModelError::Mismatch { diff } = e else {
                unreachable!()
            };
            (code, diff)
        }
        other => panic!("expected a mismatch, got {other:?}"),
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn key_signature_verifies_the_fixture_model() {
    let r = verify(
        &fixtures().join("model"),
        &sig("key.sig"),
        &key("ec-p256.pub"),
    )
    .unwrap();
    assert_eq!(r.files, 5);
    assert_eq!(r.model_name, "model");
    assert!(r.signer.starts_with("key:sha256:"));
    assert_eq!(r.bytes, 1_200_000 + 70 + 18 + 20);
}

#[test]
fn shard_signature_verifies_the_fixture_model() {
    let r = verify(
        &fixtures().join("model"),
        &sig("key-shards.sig"),
        &key("ec-p256.pub"),
    )
    .unwrap();
    assert_eq!(r.method, provenance_oci::model::Method::Shards(512 * 1024));
}

#[test]
fn certificate_chain_signature_verifies() {
    let r = verify(
        &fixtures().join("model"),
        &sig("cert.sig"),
        &chain("root.pem"),
    )
    .unwrap();
    assert!(r.signer.contains("model signer"), "{}", r.signer);
    // The intermediate alone is not a trust anchor (as for model_signing: "unable to get
    // issuer certificate"); see tests/model_chain.rs.
    let e = verify(
        &fixtures().join("model"),
        &sig("cert.sig"),
        &chain("inter.pem"),
    )
    .unwrap_err();
    assert_eq!(e.code(), "model.certificate_chain", "{e}");
}

#[test]
fn certificate_chain_to_an_unrelated_root_is_rejected() {
    let e = verify(
        &fixtures().join("model"),
        &sig("cert.sig"),
        &chain("other-root.pem"),
    )
    .unwrap_err();
    assert_eq!(e.code(), "model.certificate_chain", "{e}");
}

#[test]
fn wrong_key_is_rejected_by_its_hint() {
    let e = verify(
        &fixtures().join("model"),
        &sig("key.sig"),
        &key("other.pub"),
    )
    .unwrap_err();
    assert_eq!(e.code(), "model.key_mismatch", "{e}");
}

#[test]
fn wrong_key_without_hint_fails_the_signature_check() {
    let (_d, m) = model_copy();
    let mut b: serde_json::Value =
        serde_json::from_slice(&std::fs::read(sig("key.sig")).unwrap()).unwrap();
    b["verificationMaterial"]["publicKey"]["hint"] = serde_json::Value::String(String::new());
    let s = m.parent().unwrap().join("nohint.sig");
    std::fs::write(&s, serde_json::to_vec(&b).unwrap()).unwrap();
    verify(&m, &s, &key("ec-p256.pub")).unwrap();
    let e = verify(&m, &s, &key("other.pub")).unwrap_err();
    assert_eq!(e.code(), "model.signature", "{e}");
}

#[test]
fn key_trust_refuses_a_certificate_bundle() {
    let e = verify(
        &fixtures().join("model"),
        &sig("cert.sig"),
        &key("ec-p256.pub"),
    )
    .unwrap_err();
    assert_eq!(e.code(), "model.signature", "{e}");
    let e = verify(
        &fixtures().join("model"),
        &sig("key.sig"),
        &chain("root.pem"),
    )
    .unwrap_err();
    assert_eq!(e.code(), "model.signature", "{e}");
}

#[test]
fn tampered_payload_is_rejected() {
    let (_d, m) = model_copy();
    let mut b: serde_json::Value =
        serde_json::from_slice(&std::fs::read(sig("key.sig")).unwrap()).unwrap();
    use base64::Engine as _;
    let eng = base64::engine::general_purpose::STANDARD;
    let p = eng
        .decode(b["dsseEnvelope"]["payload"].as_str().unwrap())
        .unwrap();
    let p = String::from_utf8(p)
        .unwrap()
        .replace("config.json", "config.jsoo");
    b["dsseEnvelope"]["payload"] = serde_json::Value::String(eng.encode(p));
    let s = m.parent().unwrap().join("forged.sig");
    std::fs::write(&s, serde_json::to_vec(&b).unwrap()).unwrap();
    let e = verify(&m, &s, &key("ec-p256.pub")).unwrap_err();
    assert_eq!(e.code(), "model.signature", "{e}");
}

#[test]
fn one_changed_byte_is_reported_as_changed() {
    for s in ["key.sig", "key-shards.sig"] {
        let (_d, m) = model_copy();
        let f = m.join("weights/model-00001-of-00001.bin");
        let mut bytes = std::fs::read(&f).unwrap();
        bytes[700_000] ^= 1;
        std::fs::write(&f, bytes).unwrap();
        let (code, diff) = mismatch(verify(&m, &sig(s), &key("ec-p256.pub")));
        assert_eq!(code, "model.file_changed");
        assert_eq!(diff.changed, strings(&["weights/model-00001-of-00001.bin"]));
        assert!(diff.missing.is_empty() && diff.extra.is_empty());
    }
}

#[test]
fn missing_file_is_reported() {
    let (_d, m) = model_copy();
    std::fs::remove_file(m.join("tokenizer/vocab.txt")).unwrap();
    let (code, diff) = mismatch(verify(&m, &sig("key.sig"), &key("ec-p256.pub")));
    assert_eq!(code, "model.file_missing");
    assert_eq!(diff.missing, strings(&["tokenizer/vocab.txt"]));
}

#[test]
fn extra_file_is_reported_and_tolerated_with_ignore_unsigned_files() {
    let (_d, m) = model_copy();
    std::fs::write(m.join("weights/nested/backdoor.bin"), b"x").unwrap();
    let (code, diff) = mismatch(verify(&m, &sig("key.sig"), &key("ec-p256.pub")));
    assert_eq!(code, "model.file_extra");
    assert_eq!(diff.extra, strings(&["weights/nested/backdoor.bin"]));
    let opts = VerifyOptions {
        ignore_unsigned_files: true,
        ..VerifyOptions::default()
    };
    verify_model(&m, &sig("key.sig"), &key("ec-p256.pub"), &opts, now()).unwrap();
    // An extra empty file is a resource under `files` (model-signing hashes it).
    std::fs::remove_file(m.join("weights/nested/backdoor.bin")).unwrap();
    std::fs::write(m.join("empty2"), b"").unwrap();
    let (_, diff) = mismatch(verify(&m, &sig("key.sig"), &key("ec-p256.pub")));
    assert_eq!(diff.extra, strings(&["empty2"]));
}

#[test]
fn renamed_file_is_missing_plus_extra() {
    let (_d, m) = model_copy();
    std::fs::rename(m.join("config.json"), m.join("config2.json")).unwrap();
    let (code, diff) = mismatch(verify(&m, &sig("key.sig"), &key("ec-p256.pub")));
    assert_eq!(code, "model.mismatch");
    assert_eq!(diff.missing, strings(&["config.json"]));
    assert_eq!(diff.extra, strings(&["config2.json"]));
}

#[cfg(unix)]
#[test]
fn symlinks_are_refused_and_never_followed_out_of_the_root() {
    let (d, m) = model_copy();
    let outside = d.path().join("outside.json");
    std::fs::copy(m.join("config.json"), &outside).unwrap();
    std::fs::remove_file(m.join("config.json")).unwrap();
    std::os::unix::fs::symlink(&outside, m.join("config.json")).unwrap();
    let e = verify(&m, &sig("key.sig"), &key("ec-p256.pub")).unwrap_err();
    assert_eq!(
        e,
        ModelError::Symlink {
            path: "config.json".into()
        }
    );
    let opts = VerifyOptions {
        allow_symlinks: true,
        ..VerifyOptions::default()
    };
    let e = verify_model(&m, &sig("key.sig"), &key("ec-p256.pub"), &opts, now()).unwrap_err();
    assert_eq!(
        e,
        ModelError::SymlinkEscape {
            path: "config.json".into()
        }
    );
    // A relative `..` link escaping the root is refused the same way.
    std::fs::remove_file(m.join("config.json")).unwrap();
    std::os::unix::fs::symlink("../outside.json", m.join("config.json")).unwrap();
    let e = verify_model(&m, &sig("key.sig"), &key("ec-p256.pub"), &opts, now()).unwrap_err();
    assert_eq!(e.code(), "model.symlink_escape");
    // An in-root symlink is followed when allowed (content hashed under the link's path).
    std::fs::remove_file(m.join("config.json")).unwrap();
    std::fs::copy(&outside, m.join("weights/real-config.json")).unwrap();
    std::os::unix::fs::symlink("weights/real-config.json", m.join("config.json")).unwrap();
    let (_, diff) = mismatch(verify_model(
        &m,
        &sig("key.sig"),
        &key("ec-p256.pub"),
        &opts,
        now(),
    ));
    assert_eq!(diff.extra, strings(&["weights/real-config.json"]));
    assert!(diff.changed.is_empty() && diff.missing.is_empty());
}

#[test]
fn signature_inside_the_folder_and_git_paths_are_ignored() {
    let (_d, m) = model_copy();
    std::fs::copy(sig("key.sig"), m.join("model.sig")).unwrap();
    std::fs::write(m.join(".gitattributes"), b"changed").unwrap();
    std::fs::create_dir_all(m.join(".git/objects")).unwrap();
    std::fs::write(m.join(".git/objects/x"), b"x").unwrap();
    verify(&m, &m.join("model.sig"), &key("ec-p256.pub")).unwrap();
    // Only the four git names are ignored, not every `.git*` name.
    std::fs::write(m.join(".gitmodules"), b"x").unwrap();
    let (_, diff) = mismatch(verify(&m, &m.join("model.sig"), &key("ec-p256.pub")));
    assert_eq!(diff.extra, strings(&[".gitmodules"]));
    // With git paths not ignored, the .git tree and .gitattributes become extra files.
    std::fs::remove_file(m.join(".gitmodules")).unwrap();
    let opts = VerifyOptions {
        ignore_git_paths: false,
        ..VerifyOptions::default()
    };
    // The signed manifest lists the git paths in ignore_paths, which verification honours.
    verify_model(&m, &m.join("model.sig"), &key("ec-p256.pub"), &opts, now()).unwrap();
}

#[test]
fn caller_ignore_paths_hide_files() {
    let (_d, m) = model_copy();
    std::fs::create_dir_all(m.join("logs")).unwrap();
    std::fs::write(m.join("logs/run.txt"), b"x").unwrap();
    let opts = VerifyOptions {
        ignore_paths: vec!["logs".into()],
        ..VerifyOptions::default()
    };
    verify_model(&m, &sig("key.sig"), &key("ec-p256.pub"), &opts, now()).unwrap();
}

#[test]
fn the_cache_is_used_and_paranoid_mode_ignores_it() {
    let (d, m) = model_copy();
    settle();
    let cache = d.path().join("cache.json");
    let opts = VerifyOptions {
        cache: Some(cache.clone()),
        ..VerifyOptions::default()
    };
    verify_model(&m, &sig("key.sig"), &key("ec-p256.pub"), &opts, now()).unwrap();
    verify_model(&m, &sig("key.sig"), &key("ec-p256.pub"), &opts, now()).unwrap();
    // Poison the cached digest of config.json: a cache hit must be what is compared.
    let text = std::fs::read_to_string(&cache).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let entries = v["entries"].as_object_mut().unwrap();
    let k = entries
        .keys()
        .find(|k| k.ends_with(":config.json"))
        .unwrap()
        .clone();
    entries.insert(k, serde_json::Value::String("00".repeat(32)));
    std::fs::write(&cache, serde_json::to_vec(&v).unwrap()).unwrap();
    let (_, diff) = mismatch(verify_model(
        &m,
        &sig("key.sig"),
        &key("ec-p256.pub"),
        &opts,
        now(),
    ));
    assert_eq!(diff.changed, strings(&["config.json"]));
    let paranoid = VerifyOptions {
        paranoid: true,
        ..opts.clone()
    };
    verify_model(&m, &sig("key.sig"), &key("ec-p256.pub"), &paranoid, now()).unwrap();
    // Paranoid mode refreshed the cache with the real digest.
    verify_model(&m, &sig("key.sig"), &key("ec-p256.pub"), &opts, now()).unwrap();
    // A real change (new size, new mtime/ctime) misses the cache.
    std::fs::write(m.join("config.json"), b"{}").unwrap();
    let (_, diff) = mismatch(verify_model(
        &m,
        &sig("key.sig"),
        &key("ec-p256.pub"),
        &opts,
        now(),
    ));
    assert_eq!(diff.changed, strings(&["config.json"]));
}

#[test]
fn dataset_digest_of_a_folder_binds_each_path_to_its_digest() {
    let opts = VerifyOptions::default();
    let d = dataset_digest(&fixtures().join("model"), &opts).unwrap();
    // Recomputed by hand: (u64 BE path length, path, SHA-256) per file, in path order, git
    // paths ignored.
    let mut all = Vec::new();
    for rel in [
        "config.json",
        "tokenizer/empty.txt",
        "tokenizer/vocab.txt",
        "weights/model-00001-of-00001.bin",
        "weights/nested/deep/adapter.safetensors",
    ] {
        let bytes = std::fs::read(fixtures().join("model").join(rel)).unwrap();
        all.extend_from_slice(&(rel.len() as u64).to_be_bytes());
        all.extend_from_slice(rel.as_bytes());
        all.extend_from_slice(provenance_core::Digest::sha256_of(&bytes).as_bytes());
    }
    assert_eq!(d, provenance_core::Digest::sha256_of(&all));
    verify_dataset_digest(&fixtures().join("model"), &d.to_string(), &opts).unwrap();
    verify_dataset_digest(&fixtures().join("model"), d.hex().as_str(), &opts).unwrap();
    let e = verify_dataset_digest(&fixtures().join("model/config.json"), &d.to_string(), &opts)
        .unwrap_err();
    assert_eq!(e.code(), "model.dataset_mismatch");
    // Not model-signing's subject digest, which leaves the names out.
    let b: serde_json::Value =
        serde_json::from_slice(&std::fs::read(sig("key.sig")).unwrap()).unwrap();
    use base64::Engine as _;
    let p = base64::engine::general_purpose::STANDARD
        .decode(b["dsseEnvelope"]["payload"].as_str().unwrap())
        .unwrap();
    let p: serde_json::Value = serde_json::from_slice(&p).unwrap();
    let subject = p["subject"][0]["digest"]["sha256"].as_str().unwrap();
    assert_ne!(d.hex(), subject);
}

#[test]
fn moving_a_dataset_file_to_another_name_changes_the_digest() {
    let dir = tempfile::tempdir().unwrap();
    let ds = dir.path().join("ds");
    for (rel, bytes) in [
        ("cat/001.jpg", b"meow".as_slice()),
        ("dog/001.jpg", b"woof".as_slice()),
    ] {
        std::fs::create_dir_all(ds.join(rel).parent().unwrap()).unwrap();
        std::fs::write(ds.join(rel), bytes).unwrap();
    }
    let opts = VerifyOptions::default();
    let signed = dataset_digest(&ds, &opts).unwrap();
    // A dog relabelled as a cat: same bytes, same file order, another name.
    std::fs::rename(ds.join("dog/001.jpg"), ds.join("cat/002.jpg")).unwrap();
    let e = verify_dataset_digest(&ds, &signed.to_string(), &opts).unwrap_err();
    assert_eq!(e.code(), "model.dataset_mismatch", "{e}");
    // Two files swapping names (each bytes under the other's name).
    std::fs::rename(ds.join("cat/002.jpg"), ds.join("dog/001.jpg")).unwrap();
    verify_dataset_digest(&ds, &signed.to_string(), &opts).unwrap();
    std::fs::write(ds.join("cat/001.jpg"), b"woof").unwrap();
    std::fs::write(ds.join("dog/001.jpg"), b"meow").unwrap();
    let e = verify_dataset_digest(&ds, &signed.to_string(), &opts).unwrap_err();
    assert_eq!(e.code(), "model.dataset_mismatch", "{e}");
}

#[test]
fn missing_model_or_signature_is_an_error_not_a_pass() {
    let e = verify(
        Path::new("/nonexistent-model"),
        &sig("key.sig"),
        &key("ec-p256.pub"),
    )
    .unwrap_err();
    assert_eq!(e.code(), "model.io");
    let e = verify(
        &fixtures().join("model"),
        Path::new("/nonexistent.sig"),
        &key("ec-p256.pub"),
    )
    .unwrap_err();
    assert_eq!(e.code(), "model.io");
    let (d, m) = model_copy();
    let s = d.path().join("garbage.sig");
    std::fs::write(&s, b"{not json").unwrap();
    assert_eq!(
        verify(&m, &s, &key("ec-p256.pub")).unwrap_err().code(),
        "model.malformed_signature"
    );
}

/// When the reference CLI is installed (`scripts/ci-setup-model-signing.sh`), it and this
/// library must give the same verdict on pristine and tampered copies.
#[test]
fn model_signing_cli_agrees_when_installed() {
    let ok = std::process::Command::new("model_signing")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        eprintln!("model_signing not installed: cross-check skipped");
        return;
    }
    type Tamper = fn(&Path);
    let cases: Vec<(&str, Tamper)> = vec![
        ("pristine", |_| {}),
        ("changed byte", |m| {
            let f = m.join("weights/model-00001-of-00001.bin");
            let mut b = std::fs::read(&f).unwrap();
            b[1_100_000] ^= 0x40;
            std::fs::write(f, b).unwrap();
        }),
        ("missing", |m| {
            std::fs::remove_file(m.join("config.json")).unwrap()
        }),
        ("extra", |m| {
            std::fs::write(m.join("tokenizer/extra.txt"), b"x").unwrap()
        }),
        ("renamed", |m| {
            std::fs::rename(m.join("tokenizer/vocab.txt"), m.join("tokenizer/vocab.old")).unwrap()
        }),
        ("git paths", |m| {
            std::fs::write(m.join(".gitignore"), b"*.tmp").unwrap()
        }),
    ];
    for (name, tamper) in cases {
        for (s, trust, args) in [
            (
                "key.sig",
                key("ec-p256.pub"),
                vec!["key", "--public_key", "keys/ec-p256.pub"],
            ),
            (
                "cert.sig",
                chain("root.pem"),
                vec!["certificate", "--certificate_chain", "keys/root.pem"],
            ),
        ] {
            let (_d, m) = model_copy();
            tamper(&m);
            let ours = verify(&m, &sig(s), &trust).is_ok();
            let theirs = std::process::Command::new("model_signing")
                .current_dir(fixtures())
                .arg("verify")
                .arg(args[0])
                .arg(&m)
                .arg("--signature")
                .arg(sig(s))
                .args(&args[1..])
                .output()
                .unwrap()
                .status
                .success();
            assert_eq!(ours, theirs, "{name} with {s}");
            assert_eq!(
                ours,
                name == "pristine" || name == "git paths",
                "{name} with {s}"
            );
        }
    }
}

#[test]
fn a_model_signing_signature_is_not_a_dataset_attestation_of_the_folder() {
    use provenance_core::TrustRoot;
    use provenance_core::verify::{Expectation, PUBLIC_GOOD_TRUSTED_ROOT};
    use provenance_oci::model::verify_dataset_attestation;
    let root = TrustRoot::from_trusted_root_json(PUBLIC_GOOD_TRUSTED_ROOT).unwrap();
    let pem = std::fs::read_to_string(fixtures().join("keys/ec-p256.pub")).unwrap();
    let exp = Expectation::Key {
        key: PublicKey::from_pem(&pem).unwrap(),
        allow_no_transparency: true,
    };
    // Its subject is model-signing's root digest, which does not bind the file names: the
    // folder's dataset digest does, so they never match (verify such folders as models).
    let bundle = std::fs::read(sig("key.sig")).unwrap();
    let opts = VerifyOptions::default();
    let (_d, m) = model_copy();
    let e = verify_dataset_attestation(&m, &bundle, &exp, &root, &opts, now()).unwrap_err();
    assert_eq!(e.code(), "model.signature", "{e}");
    assert!(e.to_string().contains("verify."), "{e}");
    verify_model(&m, &sig("key.sig"), &key("ec-p256.pub"), &opts, now()).unwrap();
}

/// When the reference CLI is installed: a folder with names whose order differs between
/// string order and path order (`a.b` vs `a/b`), non-ASCII and `:` in names, hidden files and
/// an empty folder, signed by model_signing (files and shards), verifies here.
#[test]
fn tricky_names_signed_by_model_signing_verify_when_installed() {
    let ok = std::process::Command::new("model_signing")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        eprintln!("model_signing not installed: skipped");
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let m = d.path().join("tricky");
    for dir in ["a", "a/b", "a-b", "empty/dir", ".hidden"] {
        std::fs::create_dir_all(m.join(dir)).unwrap();
    }
    for (f, content) in [
        ("a.b", "1"),
        ("a/b/c", "2"),
        ("a/z", "3"),
        ("a-b/x", "4"),
        ("a0", "5"),
        ("ü-weights.bin", "6"),
        ("x:1:2", "7"),
        (".hidden/h", "8"),
        ("A", "9"),
    ] {
        std::fs::write(m.join(f), content).unwrap();
    }
    let keyfile = fixtures().join("keys/ec-p256.key");
    let s_files = d.path().join("files.sig");
    let st = std::process::Command::new("model_signing")
        .args(["sign", "key"])
        .arg(&m)
        .arg("--private_key")
        .arg(&keyfile)
        .arg("--signature")
        .arg(&s_files)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let r = verify(&m, &s_files, &key("ec-p256.pub")).unwrap();
    assert_eq!(r.files, 9);
    let s_shards = d.path().join("shards.sig");
    let py = format!(
        "import model_signing\n\
         h = model_signing.hashing.Config().use_shard_serialization(shard_size=1)\n\
         model_signing.signing.Config().use_elliptic_key_signer(private_key={:?}).set_hashing_config(h).sign({:?}, {:?})\n",
        keyfile.to_str().unwrap(),
        m.to_str().unwrap(),
        s_shards.to_str().unwrap()
    );
    let st = std::process::Command::new("python3")
        .args(["-c", &py])
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    verify(&m, &s_shards, &key("ec-p256.pub")).unwrap();
    std::fs::write(m.join("x:1:2"), "changed").unwrap();
    let (_, diff) = mismatch(verify(&m, &s_shards, &key("ec-p256.pub")));
    assert_eq!(diff.changed, strings(&["x:1:2"]));
}

/// BLAKE2b signatures (model_signing's Python API, `hashing_algorithm="blake2"`; fixtures from
/// `scripts/fixtures/model-signing/generate-oci.sh`).
fn blake2_sig(name: &str) -> PathBuf {
    fixtures().join("oci").join(name)
}

#[test]
fn blake2b_files_and_shards_signatures_verify_and_catch_changes() {
    let (_d, m) = model_copy();
    let r = verify(&m, &blake2_sig("key-blake2.sig"), &key("ec-p256.pub")).unwrap();
    assert_eq!(r.files, 5);
    assert_eq!(r.method, provenance_oci::model::Method::Files);
    let r = verify(
        &m,
        &blake2_sig("key-blake2-shards.sig"),
        &key("ec-p256.pub"),
    )
    .unwrap();
    assert_eq!(r.method, provenance_oci::model::Method::Shards(512 * 1024));
    // A SHA-256 signature of the same folder still verifies (the hash is the signed one).
    verify(&m, &sig("key.sig"), &key("ec-p256.pub")).unwrap();

    std::fs::write(m.join("tokenizer/vocab.txt"), b"hello\nworld\n<pad>\n").unwrap();
    for s in ["key-blake2.sig", "key-blake2-shards.sig"] {
        let (code, diff) = mismatch(verify(&m, &blake2_sig(s), &key("ec-p256.pub")));
        assert_eq!(code, "model.file_changed", "{s}");
        assert_eq!(diff.changed, strings(&["tokenizer/vocab.txt"]), "{s}");
    }
}

#[test]
fn one_cache_serves_sha256_and_blake2b_without_mixing_them() {
    let (d, m) = model_copy();
    settle();
    let opts = VerifyOptions {
        cache: Some(d.path().join("cache.json")),
        ..VerifyOptions::default()
    };
    // Each run keeps only its own entries; alternating hashes must never reuse a digest of the
    // other algorithm.
    for s in [
        sig("key.sig"),
        blake2_sig("key-blake2.sig"),
        sig("key.sig"),
        blake2_sig("key-blake2.sig"),
    ] {
        verify_model(&m, &s, &key("ec-p256.pub"), &opts, now()).unwrap();
    }
    let text = std::fs::read_to_string(d.path().join("cache.json")).unwrap();
    assert!(text.contains("blake2b:"), "{text}");
}

/// Waits until files written now are older than the cache's racy window.
fn settle() {
    std::thread::sleep(std::time::Duration::from_nanos(
        provenance_oci::model::hash::RACY_WINDOW_NS as u64 + 200_000_000,
    ));
}

fn cache_keys(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["entries"].as_object().unwrap().keys().cloned().collect()
}

#[test]
fn a_file_swapped_in_after_the_walk_cannot_poison_the_cache() {
    use provenance_oci::model::hash::{DigestCache, Task, hash_tasks};
    let (d, m) = model_copy();
    // The modified folder is in place when the walk stats it; the signed one is swapped in
    // (a directory rename: the file's own ctime does not change) before it is read.
    let good = d.path().join("tokenizer.good");
    std::fs::rename(m.join("tokenizer"), &good).unwrap();
    std::fs::create_dir(m.join("tokenizer")).unwrap();
    std::fs::write(m.join("tokenizer/vocab.txt"), b"hello\nworld\n<pad>\n").unwrap();
    std::fs::copy(good.join("empty.txt"), m.join("tokenizer/empty.txt")).unwrap();
    settle();
    let cache_path = d.path().join("cache.json");
    let ignore = provenance_oci::model::IgnoreSet::default().with_git_paths();
    let entries = provenance_oci::model::walk::walk(&m, &ignore, false, None).unwrap();
    let tasks: Vec<Task> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| Task {
            entry: i,
            start: 0,
            end: e.size,
            whole: true,
        })
        .collect();
    let evil = d.path().join("tokenizer.evil");
    std::fs::rename(m.join("tokenizer"), &evil).unwrap();
    std::fs::rename(&good, m.join("tokenizer")).unwrap();
    let cache = DigestCache::open(&cache_path);
    let e = hash_tasks(
        &entries,
        &tasks,
        1,
        Some(&cache),
        None,
        provenance_oci::model::HashAlgorithm::Sha256,
    )
    .unwrap_err();
    assert_eq!(e.code(), "model.unstable", "{e}");
    cache.save().unwrap();
    assert!(
        !cache_keys(&cache_path)
            .iter()
            .any(|k| k.ends_with(":tokenizer/vocab.txt")),
        "a digest was cached under the stat of another file"
    );
    // The modified folder back in place: its change is seen, with the cache.
    std::fs::rename(m.join("tokenizer"), &good).unwrap();
    std::fs::rename(&evil, m.join("tokenizer")).unwrap();
    let opts = VerifyOptions {
        cache: Some(cache_path),
        ..VerifyOptions::default()
    };
    let (code, diff) = mismatch(verify_model(
        &m,
        &sig("key.sig"),
        &key("ec-p256.pub"),
        &opts,
        now(),
    ));
    assert_eq!(code, "model.file_changed");
    assert_eq!(diff.changed, strings(&["tokenizer/vocab.txt"]));
}

#[cfg(unix)]
#[test]
fn a_file_replaced_by_a_symlink_after_the_walk_is_not_followed() {
    use provenance_oci::model::hash::{Task, hash_tasks};
    let (d, m) = model_copy();
    let ignore = provenance_oci::model::IgnoreSet::default().with_git_paths();
    let entries = provenance_oci::model::walk::walk(&m, &ignore, false, None).unwrap();
    let i = entries.iter().position(|e| e.rel == "config.json").unwrap();
    let outside = d.path().join("outside.json");
    std::fs::copy(m.join("config.json"), &outside).unwrap();
    std::fs::remove_file(m.join("config.json")).unwrap();
    std::os::unix::fs::symlink(&outside, m.join("config.json")).unwrap();
    let task = Task {
        entry: i,
        start: 0,
        end: entries[i].size,
        whole: true,
    };
    let e = hash_tasks(
        &entries,
        &[task],
        1,
        None,
        None,
        provenance_oci::model::HashAlgorithm::Sha256,
    )
    .unwrap_err();
    assert_eq!(e.code(), "model.unstable", "{e}");
}

#[test]
fn recently_modified_files_are_hashed_but_not_cached() {
    let (d, m) = model_copy();
    settle();
    let cache = d.path().join("cache.json");
    let opts = VerifyOptions {
        cache: Some(cache.clone()),
        ..VerifyOptions::default()
    };
    verify_model(&m, &sig("key.sig"), &key("ec-p256.pub"), &opts, now()).unwrap();
    assert!(
        cache_keys(&cache)
            .iter()
            .any(|k| k.ends_with(":config.json"))
    );
    // Rewritten just now (same bytes): within the racy window, not cached.
    let bytes = std::fs::read(m.join("config.json")).unwrap();
    std::fs::write(m.join("config.json"), &bytes).unwrap();
    verify_model(&m, &sig("key.sig"), &key("ec-p256.pub"), &opts, now()).unwrap();
    let keys = cache_keys(&cache);
    assert!(
        !keys.iter().any(|k| k.ends_with(":config.json")),
        "{keys:?}"
    );
    assert!(keys.iter().any(|k| k.ends_with(":tokenizer/vocab.txt")));
    settle();
    verify_model(&m, &sig("key.sig"), &key("ec-p256.pub"), &opts, now()).unwrap();
    assert!(
        cache_keys(&cache)
            .iter()
            .any(|k| k.ends_with(":config.json"))
    );
}

#[test]
fn a_shard_task_notices_a_file_that_grew_after_the_walk() {
    use provenance_oci::model::hash::{Task, hash_tasks};
    let (_d, m) = model_copy();
    let ignore = provenance_oci::model::IgnoreSet::default().with_git_paths();
    let entries = provenance_oci::model::walk::walk(&m, &ignore, false, None).unwrap();
    let i = entries.iter().position(|e| e.rel == "config.json").unwrap();
    let size = entries[i].size;
    // Shard tasks read their range only: the growth is past every shard.
    let tasks = [
        Task {
            entry: i,
            start: 0,
            end: size / 2,
            whole: false,
        },
        Task {
            entry: i,
            start: size / 2,
            end: size,
            whole: false,
        },
    ];
    let alg = provenance_oci::model::HashAlgorithm::Sha256;
    hash_tasks(&entries, &tasks, 1, None, None, alg).unwrap();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(m.join("config.json"))
        .unwrap();
    std::io::Write::write_all(&mut f, b"appended").unwrap();
    drop(f);
    let e = hash_tasks(&entries, &tasks, 1, None, None, alg).unwrap_err();
    assert_eq!(e.code(), "model.unstable", "{e}");
    // And through the verifier, a shards signature over the grown file fails.
    let (code, _) = mismatch(verify(&m, &sig("key-shards.sig"), &key("ec-p256.pub")));
    assert_eq!(code, "model.file_changed");
}

#[cfg(unix)]
#[test]
fn the_cache_is_saved_through_a_fresh_temporary_file_never_a_symlink() {
    let (d, m) = model_copy();
    let cache = d.path().join("cache.json");
    let victim = d.path().join("victim");
    std::fs::write(&victim, b"keep").unwrap();
    // The temporary names a fixed-name scheme would use, planted as symlinks.
    for name in ["cache.tmp", "cache.json.tmp"] {
        std::os::unix::fs::symlink(&victim, d.path().join(name)).unwrap();
    }
    let opts = VerifyOptions {
        cache: Some(cache.clone()),
        ..VerifyOptions::default()
    };
    verify_model(&m, &sig("key.sig"), &key("ec-p256.pub"), &opts, now()).unwrap();
    assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
    assert!(cache.is_file());
    // A symlink at the cache path itself is replaced, its target untouched.
    std::fs::remove_file(&cache).unwrap();
    std::os::unix::fs::symlink(&victim, &cache).unwrap();
    verify_model(&m, &sig("key.sig"), &key("ec-p256.pub"), &opts, now()).unwrap();
    assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
    assert!(
        std::fs::symlink_metadata(&cache)
            .unwrap()
            .file_type()
            .is_file()
    );
    let leftovers: Vec<_> = std::fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".cache.json."))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[cfg(unix)]
#[test]
fn command_line_ignore_paths_resolve_against_the_base_and_the_model_root() {
    use provenance_oci::model::resolve_ignore_paths;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("model/logs")).unwrap();
    std::fs::write(d.join("model/real.bin"), b"x").unwrap();
    std::os::unix::fs::symlink("real.bin", d.join("model/link.bin")).unwrap();
    // The parent folder reached through a symlink (as /tmp and /private/tmp).
    std::os::unix::fs::symlink(d, d.join("alias")).unwrap();
    let paths: Vec<PathBuf> = [
        "model/logs",
        "./model/logs/../real.bin",
        "model/link.bin",
        "logs",
        "model",
        "alias/model/logs",
    ]
    .iter()
    .map(PathBuf::from)
    .chain([d.join("model/logs"), PathBuf::from("/elsewhere/logs")])
    .collect();
    let r = resolve_ignore_paths(Path::new("model"), d, &paths);
    assert_eq!(
        r.inside,
        strings(&["logs", "real.bin", "link.bin", "logs", "logs"])
    );
    assert_eq!(
        r.outside,
        vec![
            PathBuf::from("logs"),
            PathBuf::from("model"),
            PathBuf::from("/elsewhere/logs")
        ]
    );
    // The model folder as the base (the model-verifier's rule).
    let r = resolve_ignore_paths(&d.join("model"), &d.join("model"), &[PathBuf::from("logs")]);
    assert_eq!(r.inside, strings(&["logs"]));
}

#[test]
fn blake3_files_hash_as_model_signing_1_1_writes_them() {
    use provenance_oci::model::{HashAlgorithm, IgnoreSet, Method, compute_manifest_with};
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("empty.bin"), b"").unwrap();
    std::fs::write(d.path().join("abc.txt"), b"abc").unwrap();
    let m = compute_manifest_with(
        d.path(),
        Method::Files,
        HashAlgorithm::Blake3,
        &IgnoreSet::new(Vec::<String>::new()),
        &VerifyOptions::default(),
        None,
    )
    .unwrap();
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let got: Vec<(String, String)> = m
        .resources
        .iter()
        .map(|(n, d)| (n.clone(), hex(d)))
        .collect();
    // BLAKE3 test vectors: "abc" and the empty input.
    assert_eq!(
        got,
        vec![
            (
                "abc.txt".to_owned(),
                "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85".to_owned()
            ),
            (
                "empty.bin".to_owned(),
                "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262".to_owned()
            ),
        ]
    );
}

#[test]
fn blake3_is_read_for_files_only() {
    use provenance_attest::modelsigning::ModelSigningManifest;
    use provenance_oci::model::HashAlgorithm;
    let manifest = |method: &str, hash: &str| -> ModelSigningManifest {
        serde_json::from_value(serde_json::json!({
            "serialization": {"method": method, "hash_type": hash, "shard_size": 1024},
            "resources": []
        }))
        .unwrap()
    };
    assert_eq!(
        HashAlgorithm::from_manifest(&manifest("files", "blake3")).unwrap(),
        HashAlgorithm::Blake3
    );
    for (method, hash) in [
        ("shards", "blake3"),
        ("files", "blake3-256"),
        ("files", "md5"),
    ] {
        let e = HashAlgorithm::from_manifest(&manifest(method, hash)).unwrap_err();
        assert_eq!(e.code(), "model.unsupported", "{method} {hash}");
    }
}
