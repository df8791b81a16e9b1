//! Adversarial evidence in an OCI layout written by the test: a gzip bomb as a signature layer,
//! thousands of signature layers on one image, a blob over the size limit, and a layer whose
//! descriptor lies about its size. Each ends in the exact error (or an inert, bounded read)
//! and none in a verified signature.
//!
//! Hostile model folders and signed manifests for the folder verifier (`verify_model`): a
//! validly signed manifest naming `../outside`, an absolute path, `./` or `//` paths, or a
//! duplicate name; names that differ from the folder's only by case or Unicode normalization;
//! directory symlinks (inside and outside the root, dangling); a socket and a FIFO. Each ends
//! in its exact `model.*` code, never in a report.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::Path;

use provenance_core::verify::{
    Artifact, CosignSignature, Expectation, PUBLIC_GOOD_TRUSTED_ROOT, SignatureMaterial, Verifier,
};
use provenance_core::{Digest, ImageReference, PublicKey, TrustRoot, UnixTime};
use provenance_oci::{EvidenceSource, LayoutSource, Limits};
use serde_json::json;

const IMAGE: &str = "registry.provenance.test/acme/model:v1";
const SIG: &str = "dev.cosignproject.cosign/signature";

/// Writes `bytes` as a blob and returns its descriptor fields.
fn blob(root: &Path, bytes: &[u8]) -> (String, u64) {
    let d = Digest::sha256_of(bytes);
    let hex = d.to_string().trim_start_matches("sha256:").to_owned();
    std::fs::create_dir_all(root.join("blobs/sha256")).unwrap();
    std::fs::write(root.join("blobs/sha256").join(&hex), bytes).unwrap();
    (d.to_string(), bytes.len() as u64)
}

/// A layout with one image and a cosign `.sig` manifest holding `layers` (media type, bytes,
/// declared size override). Returns the layout root's image digest.
fn layout(root: &Path, layers: &[(&str, Vec<u8>, Option<u64>)]) -> Digest {
    std::fs::write(
        root.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let (cfg, cfg_size) = blob(root, b"{}");
    let image = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg, "size": cfg_size},
        "layers": []
    });
    let image_bytes = serde_json::to_vec(&image).unwrap();
    let (image_digest, image_size) = blob(root, &image_bytes);
    let descs: Vec<_> = layers
        .iter()
        .map(|(mt, bytes, size)| {
            let (d, n) = blob(root, bytes);
            json!({"mediaType": mt, "digest": d, "size": size.unwrap_or(n),
                   "annotations": {SIG: "MEUCIQDfakefakefakefakefakefakefakefakefakefakefakefakeAiBfakefakefakefakefakefakefakefakefakefakefakefake"}})
        })
        .collect();
    let sig = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg, "size": cfg_size},
        "layers": descs
    });
    let sig_bytes = serde_json::to_vec(&sig).unwrap();
    let (sig_digest, sig_size) = blob(root, &sig_bytes);
    let tag = format!(
        "registry.provenance.test/acme/model:{}.sig",
        image_digest.replace(':', "-")
    );
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": image_digest, "size": image_size,
             "annotations": {"org.opencontainers.image.ref.name": IMAGE}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sig_digest, "size": sig_size,
             "annotations": {"org.opencontainers.image.ref.name": tag}}
        ]
    });
    std::fs::write(root.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    Digest::parse(&image_digest).unwrap()
}

fn bomb() -> Vec<u8> {
    std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/adversarial/zeros-128m.gz"
    ))
    .unwrap()
}

fn key_expectation() -> Expectation {
    // Any key: fuzzed or hostile layers must not verify whatever the key.
    let root = TrustRoot::from_trusted_root_json(PUBLIC_GOOD_TRUSTED_ROOT).unwrap();
    let pem = root.tlogs[0].public_key.to_pem();
    Expectation::Key {
        key: PublicKey::all_from_pem(&pem).unwrap().remove(0),
        allow_no_transparency: true,
    }
}

#[tokio::test]
async fn gzip_bomb_signature_layer_is_read_as_is_and_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let bomb = bomb();
    assert!(bomb.len() < 256 << 10, "the fixture is small compressed");
    let digest = layout(
        dir.path(),
        &[(
            "application/vnd.oci.image.layer.v1.tar+gzip",
            bomb.clone(),
            None,
        )],
    );
    let src = LayoutSource::open(dir.path()).unwrap();
    let img = ImageReference::parse(IMAGE).unwrap();
    assert_eq!(src.resolve(&img).await.unwrap(), digest);
    let sigs = src.signatures(&img, &digest, None).await.unwrap();
    assert_eq!(sigs.len(), 1);
    // Never decompressed: the payload is exactly the compressed bytes.
    assert_eq!(sigs[0].payload, bomb);

    let verifier =
        Verifier::new(&TrustRoot::from_trusted_root_json(PUBLIC_GOOD_TRUSTED_ROOT).unwrap())
            .unwrap();
    let material = SignatureMaterial::Cosign(CosignSignature::new(
        sigs[0].payload.clone(),
        sigs[0].annotations.clone(),
    ));
    let err = verifier
        .verify(
            Artifact::Digest(&digest),
            &material,
            &key_expectation(),
            UnixTime(1_800_000_000),
        )
        .unwrap_err();
    assert_eq!(err.code(), "verify.cosign.payload_invalid", "{err}");
}

#[tokio::test]
async fn thousands_of_signature_layers_hit_the_layer_limit() {
    let dir = tempfile::tempdir().unwrap();
    let layers: Vec<_> = (0..5000)
        .map(|i| {
            (
                "application/vnd.dev.cosign.simplesigning.v1+json",
                format!("{{\"n\":{i}}}").into_bytes(),
                None,
            )
        })
        .collect();
    let digest = layout(dir.path(), &layers);
    let src = LayoutSource::open(dir.path()).unwrap();
    let img = ImageReference::parse(IMAGE).unwrap();
    // The `.sig` manifest is the image owner's: past the limit it is not evidence (no
    // signatures), never an error that `failurePolicy: Ignore` would turn into an admission.
    assert!(
        src.signatures(&img, &digest, None)
            .await
            .unwrap()
            .is_empty(),
        "a manifest over the layer limit is left out"
    );

    // Exactly at the limit is fine.
    let dir = tempfile::tempdir().unwrap();
    let digest = layout(dir.path(), &layers[..256]);
    let src = LayoutSource::open(dir.path()).unwrap();
    assert_eq!(
        src.signatures(&img, &digest, None).await.unwrap().len(),
        256
    );
}

#[tokio::test]
async fn oversized_and_lying_layers() {
    let img = ImageReference::parse(IMAGE).unwrap();
    // Over the blob limit, by the descriptor: refused before reading.
    let dir = tempfile::tempdir().unwrap();
    let digest = layout(
        dir.path(),
        &[(
            "application/vnd.dev.cosign.simplesigning.v1+json",
            vec![b'{'; 4096],
            None,
        )],
    );
    let limits = Limits {
        max_blob_bytes: 1024,
        ..Limits::default()
    };
    let src = LayoutSource::open_with_limits(dir.path(), limits).unwrap();
    assert!(
        src.signatures(&img, &digest, None)
            .await
            .unwrap()
            .is_empty(),
        "an oversized layer is left out"
    );

    // A descriptor that claims fewer bytes than the blob has: the read is bounded by the
    // claim and the mismatch is an error, not a truncated payload.
    let dir = tempfile::tempdir().unwrap();
    let digest = layout(
        dir.path(),
        &[(
            "application/vnd.dev.cosign.simplesigning.v1+json",
            vec![b' '; 4096],
            Some(100),
        )],
    );
    let src = LayoutSource::open(dir.path()).unwrap();
    assert!(
        src.signatures(&img, &digest, None)
            .await
            .unwrap()
            .is_empty(),
        "a layer whose size lies is left out, not truncated"
    );
}

// ---------------------------------------------------------------------------------------------
// Model folders.

mod model_folders {
    use std::path::{Path, PathBuf};

    use provenance_core::sign::{KeyAlgorithm, SigningKey, bundle};
    use provenance_core::{Digest, UnixTime};
    use provenance_oci::model::{
        ModelError, ModelTrust, SignModelOptions, VerifyOptions, sign_model, verify_model,
    };
    use serde_json::json;

    const NOW: UnixTime = UnixTime(1_800_000_000);

    /// A small model folder: `config.json` and `weights/model.bin`.
    fn model(root: &Path) -> PathBuf {
        let m = root.join("model");
        std::fs::create_dir_all(m.join("weights")).unwrap();
        std::fs::write(m.join("config.json"), br#"{"layers": 2}"#).unwrap();
        std::fs::write(m.join("weights/model.bin"), b"weights").unwrap();
        m
    }

    fn key() -> SigningKey {
        SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap()
    }

    fn trust(k: &SigningKey) -> ModelTrust {
        ModelTrust::Key(k.public_key())
    }

    /// A model-signing signature by `k` over exactly these resources (name, content), written
    /// as the reference tool writes it: the subject is the root digest over the resources'
    /// SHA-256 digests in the order given.
    fn signature_naming(dir: &Path, k: &SigningKey, resources: &[(&str, &[u8])]) -> PathBuf {
        let mut all = Vec::new();
        let list: Vec<_> = resources
            .iter()
            .map(|(name, content)| {
                let d = Digest::sha256_of(content);
                all.extend_from_slice(d.as_bytes());
                json!({"name": name, "digest": d.hex(), "algorithm": "sha256"})
            })
            .collect();
        let statement = json!({
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": "model", "digest": {"sha256": Digest::sha256_of(&all).hex()}}],
            "predicateType": "https://model_signing/signature/v1.0",
            "predicate": {
                "serialization": {"method": "files", "hash_type": "sha256",
                                  "allow_symlinks": false, "ignore_paths": []},
                "resources": list,
            },
        });
        let b = bundle::dsse_with(
            k,
            "application/vnd.in-toto+json",
            &serde_json::to_vec(&statement).unwrap(),
            &bundle::Options {
                hint: Some(String::new()),
                ..Default::default()
            },
        )
        .unwrap();
        let path = dir.join("hostile.sig");
        std::fs::write(&path, b).unwrap();
        path
    }

    fn code(r: Result<provenance_oci::model::ModelReport, ModelError>) -> (String, ModelError) {
        match r {
            Ok(report) => panic!("a hostile model verified: {report:?}"),
            Err(e) => (e.code().to_owned(), e),
        }
    }

    /// The signature helper is sound: naming the folder's real files verifies.
    #[test]
    fn a_hand_written_signature_over_the_real_files_verifies() {
        let d = tempfile::tempdir().unwrap();
        let m = model(d.path());
        let k = key();
        let s = signature_naming(
            d.path(),
            &k,
            &[
                ("config.json", br#"{"layers": 2}"#),
                ("weights/model.bin", b"weights"),
            ],
        );
        let r = verify_model(&m, &s, &trust(&k), &VerifyOptions::default(), NOW).unwrap();
        assert_eq!(r.files, 2);
    }

    #[test]
    fn signed_manifest_naming_a_path_outside_the_root_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let m = model(d.path());
        std::fs::write(d.path().join("outside"), b"secret").unwrap();
        let k = key();
        for name in [
            "../outside",
            "weights/../../outside",
            "weights/../config.json",
        ] {
            let s = signature_naming(
                d.path(),
                &k,
                &[
                    ("config.json", br#"{"layers": 2}"#),
                    (name, b"secret"),
                    ("weights/model.bin", b"weights"),
                ],
            );
            let (c, e) = code(verify_model(
                &m,
                &s,
                &trust(&k),
                &VerifyOptions::default(),
                NOW,
            ));
            assert_eq!(c, "model.unsafe_path", "{name}: {e}");
            // Tolerating unsigned files does not make a hostile name acceptable.
            let opts = VerifyOptions {
                ignore_unsigned_files: true,
                ..VerifyOptions::default()
            };
            let (c, e) = code(verify_model(&m, &s, &trust(&k), &opts, NOW));
            assert_eq!(c, "model.unsafe_path", "{name}: {e}");
        }
    }

    #[test]
    fn signed_manifest_naming_an_absolute_path_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let m = model(d.path());
        let outside = d.path().join("outside");
        std::fs::write(&outside, b"secret").unwrap();
        let k = key();
        let abs = outside.to_str().unwrap();
        let s = signature_naming(
            d.path(),
            &k,
            &[(abs, b"secret"), ("config.json", br#"{"layers": 2}"#)],
        );
        let (c, e) = code(verify_model(
            &m,
            &s,
            &trust(&k),
            &VerifyOptions::default(),
            NOW,
        ));
        assert_eq!(c, "model.unsafe_path", "{e}");
        assert!(
            matches!(&e, ModelError::UnsafePath { reason, .. } if *reason == "absolute path"),
            "{e:?}"
        );
    }

    #[test]
    fn signed_manifest_with_dot_empty_or_backslash_components_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let m = model(d.path());
        let k = key();
        for (name, reason) in [
            ("./config.json", "`.` or `..` component"),
            ("weights/./model.bin", "`.` or `..` component"),
            ("weights//model.bin", "empty path component"),
            ("weights/", "empty path component"),
            ("", "empty path"),
            ("weights\\model.bin", "NUL or backslash in path"),
            ("config.json\0.txt", "NUL or backslash in path"),
        ] {
            let s = signature_naming(
                d.path(),
                &k,
                &[(name, b"weights"), ("config.json", br#"{"layers": 2}"#)],
            );
            let (c, e) = code(verify_model(
                &m,
                &s,
                &trust(&k),
                &VerifyOptions::default(),
                NOW,
            ));
            assert_eq!(c, "model.unsafe_path", "{name:?}: {e}");
            assert!(
                matches!(&e, ModelError::UnsafePath { reason: r, .. } if *r == reason),
                "{name:?}: {e:?}"
            );
        }
    }

    #[test]
    fn signed_manifest_naming_a_file_twice_is_malformed() {
        let d = tempfile::tempdir().unwrap();
        let m = model(d.path());
        let k = key();
        let s = signature_naming(
            d.path(),
            &k,
            &[
                ("config.json", br#"{"layers": 2}"#),
                ("config.json", br#"{"layers": 2}"#),
                ("weights/model.bin", b"weights"),
            ],
        );
        let (c, e) = code(verify_model(
            &m,
            &s,
            &trust(&k),
            &VerifyOptions::default(),
            NOW,
        ));
        assert_eq!(c, "model.malformed_manifest", "{e}");
    }

    #[test]
    fn names_differing_only_by_case_or_unicode_normalization_do_not_match() {
        let d = tempfile::tempdir().unwrap();
        let m = model(d.path());
        let k = key();
        // Signed `Config.json`, the folder has `config.json`: file names are compared byte for
        // byte, as model-signing does on a case-sensitive file system.
        let s = signature_naming(
            d.path(),
            &k,
            &[
                ("Config.json", br#"{"layers": 2}"#),
                ("weights/model.bin", b"weights"),
            ],
        );
        let (c, e) = code(verify_model(
            &m,
            &s,
            &trust(&k),
            &VerifyOptions::default(),
            NOW,
        ));
        assert_eq!(c, "model.mismatch", "{e}");
        let ModelError::Mismatch { diff } = e else {
            unreachable!()
        };
        assert_eq!(diff.missing, vec!["Config.json".to_owned()]);
        assert_eq!(diff.extra, vec!["config.json".to_owned()]);

        // Signed `café.bin` in NFC (U+00E9), the folder's file is NFD (`e` + U+0301).
        let nfc = "weights/caf\u{e9}.bin";
        let nfd = "weights/cafe\u{301}.bin";
        std::fs::write(m.join(nfd), b"tensor").unwrap();
        let s = signature_naming(
            d.path(),
            &k,
            &[
                ("config.json", br#"{"layers": 2}"#),
                (nfc, b"tensor"),
                ("weights/model.bin", b"weights"),
            ],
        );
        let (c, e) = code(verify_model(
            &m,
            &s,
            &trust(&k),
            &VerifyOptions::default(),
            NOW,
        ));
        assert_eq!(c, "model.mismatch", "{e}");
        let ModelError::Mismatch { diff } = e else {
            unreachable!()
        };
        assert_eq!(diff.missing, vec![nfc.to_owned()]);
        assert_eq!(diff.extra, vec![nfd.to_owned()]);
    }

    /// Signs the folder as it is now (before the attack), with the project's own signer.
    fn sign_now(d: &Path, m: &Path, k: &SigningKey) -> PathBuf {
        let s = d.join("model.sig");
        sign_model(m, &s, k, &SignModelOptions::default()).unwrap();
        verify_model(m, &s, &trust(k), &VerifyOptions::default(), NOW).unwrap();
        s
    }

    #[test]
    fn directory_symlinks_are_refused_inside_outside_and_dangling() {
        let d = tempfile::tempdir().unwrap();
        let m = model(d.path());
        let k = key();
        let s = sign_now(d.path(), &m, &k);
        let allow = VerifyOptions {
            allow_symlinks: true,
            ..VerifyOptions::default()
        };
        // `weights` replaced by a symlink to a copy inside the root.
        std::fs::rename(m.join("weights"), m.join("real-weights")).unwrap();
        std::os::unix::fs::symlink("real-weights", m.join("weights")).unwrap();
        let (c, e) = code(verify_model(
            &m,
            &s,
            &trust(&k),
            &VerifyOptions::default(),
            NOW,
        ));
        assert_eq!(c, "model.symlink", "{e}");
        let (c, e) = code(verify_model(&m, &s, &trust(&k), &allow, NOW));
        assert_eq!(c, "model.unsupported", "{e}");

        // ... to a folder outside the root.
        std::fs::remove_file(m.join("weights")).unwrap();
        std::fs::rename(m.join("real-weights"), d.path().join("outside-weights")).unwrap();
        std::os::unix::fs::symlink(d.path().join("outside-weights"), m.join("weights")).unwrap();
        let (c, e) = code(verify_model(
            &m,
            &s,
            &trust(&k),
            &VerifyOptions::default(),
            NOW,
        ));
        assert_eq!(c, "model.symlink", "{e}");
        let (c, e) = code(verify_model(&m, &s, &trust(&k), &allow, NOW));
        assert_eq!(c, "model.symlink_escape", "{e}");

        // ... dangling.
        std::fs::remove_file(m.join("weights")).unwrap();
        std::os::unix::fs::symlink("nowhere", m.join("weights")).unwrap();
        let (c, e) = code(verify_model(&m, &s, &trust(&k), &allow, NOW));
        assert_eq!(c, "model.symlink_escape", "{e}");
    }

    #[test]
    fn sockets_and_fifos_in_the_model_are_special_files() {
        let d = tempfile::tempdir().unwrap();
        let m = model(d.path());
        let k = key();
        let s = sign_now(d.path(), &m, &k);
        // A Unix socket where a weights file could be.
        let sock = m.join("weights/extra.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let (c, e) = code(verify_model(
            &m,
            &s,
            &trust(&k),
            &VerifyOptions::default(),
            NOW,
        ));
        assert_eq!(c, "model.special_file", "{e}");
        assert_eq!(
            e,
            ModelError::SpecialFile {
                path: "weights/extra.sock".into()
            }
        );
        std::fs::remove_file(&sock).unwrap();

        // A FIFO replacing a signed file: refused without being opened (a read would block).
        std::fs::remove_file(m.join("config.json")).unwrap();
        let made = std::process::Command::new("mkfifo")
            .arg(m.join("config.json"))
            .status();
        match made {
            Ok(st) if st.success() => {
                let (c, e) = code(verify_model(
                    &m,
                    &s,
                    &trust(&k),
                    &VerifyOptions::default(),
                    NOW,
                ));
                assert_eq!(c, "model.special_file", "{e}");
            }
            _ if std::env::var("CI").as_deref() == Ok("true") => {
                panic!("mkfifo (coreutils) is needed under CI")
            }
            _ => eprintln!("SKIPPED: FIFO case (mkfifo not available)"),
        }
    }
}
