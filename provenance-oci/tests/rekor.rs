//! Rekor look-ups (feature `rekor`): a cosign signature stripped of its SET gets it back from a
//! loopback Rekor responder serving the fixture's real log entry, and verifies offline; a
//! forged entry does not.
#![cfg(feature = "rekor")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::{FaultServer, core_fixture, http_response};
use provenance_core::verify::{Artifact, Expectation, Verifier};
use provenance_core::{Digest, PublicKey, TrustRoot, UnixTime};
use provenance_oci::SignatureLayer;
use provenance_oci::rekor::RekorClient;

struct Fixture {
    layer: SignatureLayer,
    set: serde_json::Value,
    image: Digest,
    verifier: Verifier,
    key: PublicKey,
    now: UnixTime,
}

fn fixture() -> Fixture {
    let dir = core_fixture("cosign-key-set");
    let layer: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("cosign-layer.json")).unwrap()).unwrap();
    let payload = STANDARD.decode(layer["payload"].as_str().unwrap()).unwrap();
    let mut annotations: BTreeMap<String, String> =
        serde_json::from_value(layer["annotations"].clone()).unwrap();
    let set: serde_json::Value =
        serde_json::from_str(&annotations.remove("dev.sigstore.cosign/bundle").unwrap()).unwrap();
    let expect: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("expect.json")).unwrap()).unwrap();
    let root =
        TrustRoot::from_trusted_root_json(&std::fs::read(dir.join("trusted_root.json")).unwrap())
            .unwrap();
    Fixture {
        layer: SignatureLayer {
            media_type: layer["mediaType"].as_str().unwrap().to_owned(),
            digest: Digest::sha256_of(&payload),
            payload,
            annotations,
            manifest_digest: Digest::sha256_of(b"sig manifest"),
        },
        set,
        image: Digest::parse(expect["image_digest"].as_str().unwrap()).unwrap(),
        verifier: Verifier::new(&root).unwrap(),
        key: PublicKey::from_pem(&std::fs::read_to_string(dir.join("key.pub")).unwrap()).unwrap(),
        now: UnixTime(expect["now"].as_i64().unwrap()),
    }
}

/// A Rekor responder holding one entry (built from the SET cosign stored). It reads request
/// heads only, so it answers the index query for any hash.
fn rekor(entry: serde_json::Value) -> FaultServer {
    FaultServer::start(move |req| {
        if req.starts_with("POST /api/v1/index/retrieve") {
            Some(http_response(
                "200 OK",
                &[("Content-Type", "application/json".into())],
                br#"["24296fb24b8ad77aabc"]"#,
            ))
        } else if req.starts_with("POST /api/v1/log/entries/retrieve") {
            let body =
                serde_json::to_vec(&serde_json::json!([{ "24296fb24b8ad77aabc": entry }])).unwrap();
            Some(http_response(
                "200 OK",
                &[("Content-Type", "application/json".into())],
                &body,
            ))
        } else {
            Some(http_response("404 Not Found", &[], b""))
        }
    })
}

fn entry_from_set(set: &serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "body": set["Payload"]["body"],
        "integratedTime": set["Payload"]["integratedTime"],
        "logID": set["Payload"]["logID"],
        "logIndex": set["Payload"]["logIndex"],
        "verification": {"signedEntryTimestamp": set["SignedEntryTimestamp"]},
    })
}

#[tokio::test]
async fn missing_set_is_recovered_from_rekor_and_verified_offline() {
    let f = fixture();
    let expectation = Expectation::key(f.key.clone());
    // Without the SET the signature does not verify (no transparency evidence).
    let e = f
        .verifier
        .verify(
            Artifact::Digest(&f.image),
            &f.layer.material(),
            &expectation,
            f.now,
        )
        .unwrap_err();
    assert!(e.code().contains("tlog"), "{}", e.code());

    let server = rekor(entry_from_set(&f.set));
    let client = RekorClient::new(
        &format!("http://{}", server.addr),
        Duration::from_secs(5),
        true,
    )
    .unwrap();
    let candidates = client.candidates(&f.layer).await.unwrap();
    assert_eq!(candidates.len(), 1);
    let ok = f
        .verifier
        .verify(
            Artifact::Digest(&f.image),
            &candidates[0].material(),
            &expectation,
            f.now,
        )
        .unwrap();
    assert!(ok.transparency_verified);
}

#[tokio::test]
async fn forged_rekor_entry_does_not_verify() {
    let f = fixture();
    let mut entry = entry_from_set(&f.set);
    // Move the integrated time: the SET no longer covers the entry.
    entry["integratedTime"] = serde_json::json!(entry["integratedTime"].as_i64().unwrap() + 1);
    let server = rekor(entry);
    let client = RekorClient::new(
        &format!("http://{}", server.addr),
        Duration::from_secs(5),
        true,
    )
    .unwrap();
    let candidates = client.candidates(&f.layer).await.unwrap();
    assert_eq!(candidates.len(), 1);
    assert!(
        f.verifier
            .verify(
                Artifact::Digest(&f.image),
                &candidates[0].material(),
                &Expectation::key(f.key.clone()),
                f.now,
            )
            .is_err()
    );
}

#[tokio::test]
async fn rekor_requires_https_unless_allowed_and_reports_timeouts() {
    let e = RekorClient::new("http://rekor.example", Duration::from_secs(1), false).unwrap_err();
    assert_eq!(e.code(), "oci.insecure_not_allowed");
    let stall = FaultServer::start(|_| None);
    let client = RekorClient::new(
        &format!("http://{}", stall.addr),
        Duration::from_millis(300),
        true,
    )
    .unwrap();
    let e = client
        .uuids_for_hash(&Digest::sha256_of(b"x"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "oci.timeout", "{e}");
}
