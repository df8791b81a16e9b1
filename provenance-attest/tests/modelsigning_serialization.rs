//! model-signing writes `shard_size` as a float: whole-number floats are bytes, others errors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use provenance_attest::modelsigning::Serialization;

#[test]
fn shard_size_accepts_whole_floats_only() {
    let s: Serialization =
        serde_json::from_str(r#"{"method":"shards","hash_type":"sha256","shard_size":524288.0}"#)
            .unwrap();
    assert_eq!(s.shard_size, Some(524_288));
    let s: Serialization =
        serde_json::from_str(r#"{"method":"shards","shard_size":1048576}"#).unwrap();
    assert_eq!(s.shard_size, Some(1_048_576));
    let s: Serialization = serde_json::from_str(r#"{"method":"files"}"#).unwrap();
    assert_eq!(s.shard_size, None);
    for bad in [
        r#"{"shard_size":1.5}"#,
        r#"{"shard_size":-1}"#,
        r#"{"shard_size":"1"}"#,
    ] {
        assert!(serde_json::from_str::<Serialization>(bad).is_err(), "{bad}");
    }
}
