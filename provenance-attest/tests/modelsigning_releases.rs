//! Envelope shapes written by earlier model_signing releases: `"keyid": null` (0.1.x to
//! 1.0.1) and the `Digests/v0.1` predicate (0.1.x/0.2.0) parse; a non-string key id still fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use provenance_attest::modelsigning::{MODEL_SIGNING_DIGESTS_V01, ModelSigningManifest};
use provenance_attest::{Envelope, Limits, extract_envelopes};

fn statement() -> String {
    format!(
        r#"{{"_type":"https://in-toto.io/Statement/v1","subject":[{{"name":"config.json","digest":{{"sha256":"{}"}},"annotations":{{"actual_hash_algorithm":"file-sha256"}}}}],"predicateType":"{MODEL_SIGNING_DIGESTS_V01}","predicate":{{}}}}"#,
        "ab".repeat(32)
    )
}

fn bundle(keyid: &str) -> String {
    format!(
        r#"{{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":{{"publicKey":{{"rawBytes":"AA=="}}}},"dsseEnvelope":{{"payload":"{}","payloadType":"application/vnd.in-toto+json","signatures":[{{"sig":"AAAA","keyid":{keyid}}}]}}}}"#,
        B64.encode(statement())
    )
}

#[test]
fn a_null_key_id_reads_as_empty() {
    let found = extract_envelopes(bundle("null").as_bytes(), &Limits::default()).unwrap();
    assert_eq!(found.len(), 1);
    let env = &found[0].1;
    assert_eq!(env.signatures.len(), 1);
    assert_eq!(env.signatures[0].keyid, "");
    let statement = env.statement(&Limits::default()).unwrap();
    let (name, m) = ModelSigningManifest::from_statement(&statement, &Limits::default()).unwrap();
    assert_eq!(name, "");
    assert_eq!(m.resources.len(), 1);
    assert_eq!(m.serialization.method, "files");
    // An empty string and a real id are kept as they are; a number is still an error.
    let found = extract_envelopes(bundle(r#""k1""#).as_bytes(), &Limits::default()).unwrap();
    assert_eq!(found[0].1.signatures[0].keyid, "k1");
    assert!(extract_envelopes(bundle("7").as_bytes(), &Limits::default()).is_err());
    let bare = r#"{"payloadType":"text/plain","payload":"aGk=","signatures":[{"sig":"AA==","keyid":null}]}"#;
    assert_eq!(
        Envelope::from_json(bare.as_bytes()).unwrap().signatures[0].keyid,
        ""
    );
}
