//! Producing attestations: builders' output parses with the verifier-side parsers, and signed
//! envelopes verify with `provenance_core::verify` (as a cosign `.att` layer).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::BTreeMap;

use provenance_attest::build::{
    SlsaProvenanceBuilder, dataset_predicate, model_card_predicate, resource, sign_statement,
    statement,
};
use provenance_attest::croissant::{DATASET_PROVENANCE_V1, DatasetProvenance};
use provenance_attest::modelcard::{MODEL_CARD_V1, ModelCard};
use provenance_attest::slsa::SLSA_PROVENANCE_V1;
use provenance_attest::{Envelope, Limits, Predicate, TypedPredicate};
use provenance_core::sign::{KeyAlgorithm, SigningKey};
use provenance_core::verify::{
    Artifact, CosignSignature, Expectation, PUBLIC_GOOD_TRUSTED_ROOT, SignatureMaterial, Verifier,
};
use provenance_core::{Digest, TrustRoot, UnixTime};

#[test]
fn slsa_training_run_provenance_parses_and_signed_envelopes_verify() {
    let model = Digest::sha256_of(b"weights");
    let data = Digest::sha256_of(b"train.parquet");
    let base = Digest::sha256_of(b"base");
    let p = SlsaProvenanceBuilder::new(
        "https://github.com/actions/runner",
        "https://example.com/training/v1",
    )
    .external_parameter("epochs", 3)
    .external_parameter(
        "workflow",
        serde_json::json!({"repository": "https://github.com/acme/train"}),
    )
    .internal_parameter("gpu", "a100")
    .dataset("s3://acme/train.parquet", &data)
    .base_model("hf://meta-llama/Llama-3.1-8B", &base)
    .invocation_id("run-42")
    .started_on(UnixTime(1_800_000_000))
    .finished_on(UnixTime(1_800_003_600))
    .build()
    .unwrap();
    assert_eq!(
        p["runDetails"]["builder"]["id"],
        "https://github.com/actions/runner"
    );
    assert_eq!(
        p["runDetails"]["metadata"]["startedOn"],
        "2027-01-15T08:00:00Z"
    );
    assert_eq!(
        p["buildDefinition"]["resolvedDependencies"][0]["digest"]["sha256"],
        data.hex()
    );
    assert_eq!(
        p["buildDefinition"]["resolvedDependencies"][1]["annotations"]["kind"],
        "base-model"
    );

    let st = statement(vec![resource("model", &model)], SLSA_PROVENANCE_V1, p).unwrap();
    let parsed = Predicate::from_statement(&st, &Limits::default()).unwrap();
    let TypedPredicate::SlsaProvenance(sp) = &parsed.typed else {
        panic!("not SLSA")
    };
    assert_eq!(sp.builder_id(), "https://github.com/actions/runner");
    let inputs: Vec<String> = sp.inputs().iter().map(|(n, _)| n.to_string()).collect();
    assert_eq!(inputs.len(), 2, "{inputs:?}");

    let v = Verifier::new(&TrustRoot::from_trusted_root_json(PUBLIC_GOOD_TRUSTED_ROOT).unwrap())
        .unwrap();
    for alg in [
        KeyAlgorithm::EcdsaP256,
        KeyAlgorithm::EcdsaP384,
        KeyAlgorithm::Ed25519,
    ] {
        let key = SigningKey::generate(alg).unwrap();
        let env = sign_statement(&st, &key).unwrap();
        let again = Envelope::from_json(&env.to_json()).unwrap();
        assert_eq!(again, env);
        let layer = SignatureMaterial::Cosign(CosignSignature::new(env.to_json(), BTreeMap::new()));
        let exp = Expectation::Key {
            key: key.public_key(),
            allow_no_transparency: true,
        };
        let ok = v
            .verify(
                Artifact::Digest(&model),
                &layer,
                &exp,
                UnixTime(1_800_000_000),
            )
            .unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!(ok.payload.unwrap().1, st.to_json());
        // The attestation is about the model, not another artifact.
        assert!(
            v.verify(
                Artifact::Digest(&data),
                &layer,
                &exp,
                UnixTime(1_800_000_000)
            )
            .is_err()
        );
    }
}

#[test]
fn slsa_builder_refuses_what_the_parser_refuses() {
    let e = SlsaProvenanceBuilder::new("", "https://example.com/t")
        .build()
        .unwrap_err();
    assert!(e.code().starts_with("attest."), "{}", e.code());
}

#[test]
fn model_card_and_dataset_predicates_round_trip() {
    let mut card = ModelCard::default();
    card.name = "acme/support-llm".into();
    card.license = Some("Apache-2.0".into());
    card.digest
        .insert("sha256".into(), Digest::sha256_of(b"w").hex());
    let p = model_card_predicate(&card).unwrap();
    let st = statement(
        vec![resource("model", &Digest::sha256_of(b"w"))],
        MODEL_CARD_V1,
        p,
    )
    .unwrap();
    let parsed = Predicate::from_statement(&st, &Limits::default()).unwrap();
    let TypedPredicate::ModelCard(c) = &parsed.typed else {
        panic!("not a model card")
    };
    assert_eq!(**c, card);
    assert!(model_card_predicate(&ModelCard::default()).is_err());

    let mut ds = DatasetProvenance::default();
    ds.name = "train".into();
    ds.source_uri = "s3://acme/train.parquet".into();
    ds.license = "CC-BY-4.0".into();
    ds.digest
        .insert("sha256".into(), Digest::sha256_of(b"d").hex());
    let p = dataset_predicate(&ds).unwrap();
    let st = statement(
        vec![resource("train.parquet", &Digest::sha256_of(b"d"))],
        DATASET_PROVENANCE_V1,
        p,
    )
    .unwrap();
    assert!(matches!(
        Predicate::from_statement(&st, &Limits::default())
            .unwrap()
            .typed,
        TypedPredicate::DatasetProvenance(_)
    ));
    ds.digest.clear();
    assert!(dataset_predicate(&ds).is_err());
}
