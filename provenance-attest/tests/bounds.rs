//! Limits, error codes and paths, and no panics on hostile input.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use provenance_attest::croissant::{CroissantDataset, DatasetProvenance};
use provenance_attest::cyclonedx::Bom;
use provenance_attest::huggingface::HfCard;
use provenance_attest::modelcard::ModelCard;
use provenance_attest::modelsigning::ModelSigningManifest;
use provenance_attest::spdx::{Spdx3Document, SpdxDocument};
use provenance_attest::{Envelope, Error, Limits, Predicate, Statement, extract_envelopes};
use provenance_core::Digest;
use serde_json::json;

const HELLO: &str = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

fn statement(subjects: usize) -> Vec<u8> {
    let subject: Vec<_> = (0..subjects)
        .map(|i| json!({"name": format!("s{i}"), "digest": {"sha256": HELLO}}))
        .collect();
    serde_json::to_vec(
        &json!({"_type": "https://in-toto.io/Statement/v1", "subject": subject,
        "predicateType": "https://example.com/p", "predicate": {}}),
    )
    .unwrap()
}

#[test]
fn depth_limit_applies_before_serde() {
    let limits = Limits::default().with_max_depth(8);
    let deep = format!("{}{}", "[".repeat(9), "]".repeat(9));
    let err = Statement::from_json_with(deep.as_bytes(), &limits).unwrap_err();
    assert_eq!(err.code(), "attest.too_deep");
    // Brackets inside strings do not count.
    let ok = br#"{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"[[[[[[[[[[[[","digest":{"sha256":"2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"}}],"predicateType":"x","predicate":{}}"#;
    Statement::from_json_with(ok, &limits).unwrap();
    // A very deep document is refused by the default limit, not by a stack overflow.
    let very_deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    for r in [
        Statement::from_json(very_deep.as_bytes()).map(|_| ()),
        Bom::from_json(very_deep.as_bytes()).map(|_| ()),
        SpdxDocument::from_json(very_deep.as_bytes()).map(|_| ()),
        Envelope::from_json(very_deep.as_bytes()).map(|_| ()),
    ] {
        assert_eq!(r.unwrap_err().code(), "attest.too_deep");
    }
    // Values handed in directly are bounded too.
    let mut v = json!(1);
    for _ in 0..200 {
        v = json!([v]);
    }
    let err =
        Predicate::parse("https://slsa.dev/provenance/v1", v, &Limits::default()).unwrap_err();
    assert_eq!(err.code(), "attest.too_deep");
}

#[test]
fn size_limit() {
    let limits = Limits::default().with_max_bytes(100);
    let err = Statement::from_json_with(&statement(3), &limits).unwrap_err();
    assert!(matches!(err, Error::TooLarge { limit: 100, .. }));
    assert_eq!(err.code(), "attest.too_large");
    let big = vec![b' '; (16 << 20) + 1];
    assert_eq!(
        Envelope::from_json(&big).unwrap_err().code(),
        "attest.dsse.too_large"
    );
    let err = HfCard::parse_with(&"x".repeat(101), &limits).unwrap_err();
    assert_eq!(err.code(), "attest.too_large");
}

#[test]
fn subject_limit_and_matching() {
    let limits = Limits::default().with_max_subjects(4);
    Statement::from_json_with(&statement(4), &limits).unwrap();
    let err = Statement::from_json_with(&statement(5), &limits).unwrap_err();
    assert!(matches!(
        err,
        Error::TooMany {
            count: 5,
            limit: 4,
            ..
        }
    ));
    assert_eq!(err.path(), Some("subject"));

    let st = Statement::from_json(&statement(2)).unwrap();
    assert!(st.matches(&Digest::sha256_of(b"hello")));
    assert_eq!(
        st.subject_for(&Digest::sha256_of(b"hello"))
            .unwrap()
            .name
            .as_deref(),
        Some("s0")
    );
    assert!(!st.matches(&Digest::sha256_of(b"hello!")));
    let sha512 = Digest::compute(provenance_core::DigestAlgorithm::Sha512, b"hello");
    assert!(!st.matches(&sha512), "different algorithm never matches");
}

#[test]
fn statement_errors_have_codes_and_paths() {
    let cases = [
        (
            json!({"_type": "https://in-toto.io/Statement/v2", "subject": [], "predicateType": "x"}),
            "attest.statement.unsupported",
            None,
        ),
        (
            json!({"_type": "https://in-toto.io/Statement/v1", "subject": [], "predicateType": "x", "predicate": {}}),
            "attest.statement.schema",
            Some("subject"),
        ),
        (
            json!({"_type": "https://in-toto.io/Statement/v1", "subject": [{"digest": {}}], "predicateType": "x", "predicate": {}}),
            "attest.statement.schema",
            Some("subject[0].digest"),
        ),
        (
            json!({"_type": "https://in-toto.io/Statement/v1", "subject": [{"digest": {"sha256": HELLO.to_uppercase()}}], "predicateType": "x", "predicate": {}}),
            "attest.invalid_digest",
            Some("subject[0].digest.sha256"),
        ),
        (
            json!({"_type": "https://in-toto.io/Statement/v1", "subject": [{"digest": {"sha256": HELLO}}], "predicate": {}}),
            "attest.statement.schema",
            Some("predicateType"),
        ),
        (
            json!({"_type": "https://in-toto.io/Statement/v1", "subject": [{"digest": {"sha256": HELLO}}], "predicateType": "x", "predicate": [1]}),
            "attest.statement.schema",
            Some("predicate"),
        ),
        (
            json!({"_type": "https://in-toto.io/Statement/v1", "subject": [{"digest": {"sha256": 5}}], "predicateType": "x", "predicate": {}}),
            "attest.statement.schema",
            Some("subject[0].digest.sha256"),
        ),
    ];
    for (doc, code, path) in cases {
        let err = Statement::from_json(&serde_json::to_vec(&doc).unwrap()).unwrap_err();
        assert_eq!(err.code(), code, "{doc}: {err}");
        if let Some(p) = path {
            assert_eq!(err.path(), Some(p), "{doc}: {err}");
        }
    }
    // An absent predicate is the empty object (in-toto: unset is treated as set-but-empty).
    let st = Statement::from_json(
        &serde_json::to_vec(&json!({"_type": "https://in-toto.io/Statement/v1",
            "subject": [{"digest": {"sha256": HELLO}}], "predicateType": "x"}))
        .unwrap(),
    )
    .unwrap();
    assert_eq!(st.predicate, json!({}));
    // Unknown algorithms are kept as written (e.g. gce_image_id), not validated.
    let st = Statement::from_json(
        &serde_json::to_vec(&json!({"_type": "https://in-toto.io/Statement/v1",
            "subject": [{"digest": {"gce_image_id": "8970095005306000053"}}],
            "predicateType": "x", "predicate": {}}))
        .unwrap(),
    )
    .unwrap();
    assert_eq!(st.subjects[0].digest["gce_image_id"], "8970095005306000053");
}

#[test]
fn predicate_errors_have_paths() {
    let limits = Limits::default();
    let err = Predicate::parse(
        "https://slsa.dev/provenance/v1",
        json!({"buildDefinition": {"buildType": "t", "resolvedDependencies": [{"uri": "u", "digest": []}]},
               "runDetails": {"builder": {"id": "b"}}}),
        &limits,
    )
    .unwrap_err();
    assert_eq!(err.code(), "attest.slsa.schema");
    assert_eq!(
        err.path(),
        Some("buildDefinition.resolvedDependencies[0].digest")
    );

    let err = Predicate::parse(
        "https://slsa.dev/provenance/v1",
        json!({"buildDefinition": {"buildType": "t", "externalParameters": {}}, "runDetails": {"builder": {}}}),
        &limits,
    )
    .unwrap_err();
    assert_eq!(err.path(), Some("runDetails.builder.id"));
    let err = Predicate::parse(
        "https://slsa.dev/provenance/v1",
        json!({"buildDefinition": {"buildType": "t"}, "runDetails": {"builder": {"id": "b"}}}),
        &limits,
    )
    .unwrap_err();
    assert_eq!(err.path(), Some("buildDefinition.externalParameters"));

    let err = Predicate::parse(
        "https://slsa.dev/verification_summary/v1",
        json!({"verifier": {"id": "v"}, "resourceUri": "r", "verificationResult": "MAYBE"}),
        &limits,
    )
    .unwrap_err();
    assert_eq!(err.path(), Some("verificationResult"));

    let err = Predicate::parse(
        "https://cyclonedx.org/bom",
        json!({"bomFormat": "CycloneDX", "specVersion": "1.6",
               "components": [{"name": "a", "hashes": [{"alg": "SHA-256", "content": 7}]}]}),
        &limits,
    )
    .unwrap_err();
    assert_eq!(err.path(), Some("components[0].hashes[0].content"));

    let err = Predicate::parse(
        "https://cyclonedx.org/bom",
        json!({"bomFormat": "CycloneDX", "specVersion": "2.0"}),
        &limits,
    )
    .unwrap_err();
    assert_eq!(err.code(), "attest.cyclonedx.unsupported");

    // Unknown predicate types are not an error: only the JSON is available.
    let p = Predicate::parse("https://example.com/x", json!({"a": 1}), &limits).unwrap();
    assert_eq!(p.value["a"], 1);
}

#[test]
fn item_limit() {
    let limits = Limits::default().with_max_items(10);
    let comps: Vec<_> = (0..11)
        .map(|i| json!({"type": "library", "name": format!("c{i}")}))
        .collect();
    let bom = serde_json::to_vec(
        &json!({"bomFormat": "CycloneDX", "specVersion": "1.5", "components": comps}),
    )
    .unwrap();
    let err = Bom::from_json_with(&bom, &limits).unwrap_err();
    assert!(matches!(err, Error::TooMany { count: 11, .. }));
    // Nested components count too.
    let nested = json!({"bomFormat": "CycloneDX", "specVersion": "1.5", "components": [
        {"type": "library", "name": "top", "components": (0..10).map(|i| json!({"type": "file", "name": format!("n{i}")})).collect::<Vec<_>>()}]});
    let err = Bom::from_value(&nested, &limits).unwrap_err();
    assert_eq!(err.code(), "attest.too_many");
}

#[test]
fn model_card_predicate() {
    let limits = Limits::default();
    let err = ModelCard::from_value(&json!({"name": ""}), &limits).unwrap_err();
    assert_eq!(err.path(), Some("name"));
    let err = ModelCard::from_value(
        &json!({"name": "m", "trainingDatasets": [{"name": "d", "digest": {"sha256": "abc"}}]}),
        &limits,
    )
    .unwrap_err();
    assert_eq!(err.path(), Some("trainingDatasets[0].digest.sha256"));
    let card = ModelCard::from_value(
        &json!({"name": "m", "owners": [{"name": "ml-platform"}],
                "trainingDatasets": [{"name": "d", "digest": {"sha256": HELLO}}, {"name": "e"}],
                "evaluation": [{"task": "t", "metrics": [{"type": "accuracy", "value": 0.9}]}]}),
        &limits,
    )
    .unwrap();
    assert_eq!(card.undigested_datasets(), ["e"]);
    // Round trip through the JSON conditions see.
    assert_eq!(
        ModelCard::from_value(&card.to_value(), &limits).unwrap(),
        card
    );
    let p = Predicate::parse(
        "https://mlcommons.org/model-card/v1",
        card.to_value(),
        &limits,
    )
    .unwrap();
    assert_eq!(p.summary().datasets, ["d", "e"]);
}

#[test]
fn dataset_provenance_predicate() {
    let limits = Limits::default();
    let good = json!({"name": "tickets", "sourceUri": "s3://bucket/tickets/", "license": "CC-BY-4.0",
        "digest": {"sha256": HELLO}, "sources": [{"uri": "https://x", "digest": {"sha256": HELLO}}],
        "collection": {"method": "export"}});
    let p = DatasetProvenance::from_value(&good, &limits).unwrap();
    assert_eq!(p.collection.method.as_deref(), Some("export"));
    let mut bad = good.clone();
    bad["digest"] = json!({});
    assert_eq!(
        DatasetProvenance::from_value(&bad, &limits)
            .unwrap_err()
            .path(),
        Some("digest")
    );
    let mut bad = good.clone();
    bad["license"] = json!("");
    assert_eq!(
        DatasetProvenance::from_value(&bad, &limits)
            .unwrap_err()
            .path(),
        Some("license")
    );
    let mut bad = good;
    bad.as_object_mut().unwrap().remove("sourceUri");
    assert_eq!(
        DatasetProvenance::from_value(&bad, &limits)
            .unwrap_err()
            .code(),
        "attest.dataset_provenance.schema"
    );
}

#[test]
fn model_signing_root_digest() {
    let limits = Limits::default();
    let d1 = Digest::sha256_of(b"weights");
    let d2 = Digest::sha256_of(b"config");
    let mut both = d1.as_bytes().to_vec();
    both.extend_from_slice(d2.as_bytes());
    let root = Digest::sha256_of(&both);
    let st = |root: &str| {
        Statement::from_json(
            &serde_json::to_vec(&json!({"_type": "https://in-toto.io/Statement/v1",
                "subject": [{"name": "model", "digest": {"sha256": root}}],
                "predicateType": "https://model_signing/signature/v1.0",
                "predicate": {"serialization": {"method": "files", "hash_type": "sha256", "allow_symlinks": false, "ignore_paths": [".git"]},
                    "resources": [{"name": "model.safetensors", "algorithm": "sha256", "digest": d1.hex()},
                                  {"name": "config.json", "algorithm": "sha256", "digest": d2.hex()}]}}))
            .unwrap(),
        )
        .unwrap()
    };
    let (name, m) = ModelSigningManifest::from_statement(&st(&root.hex()), &limits).unwrap();
    assert_eq!(name, "model");
    assert_eq!(m.resource("config.json").unwrap().digest, d2.hex());
    let err = ModelSigningManifest::from_statement(&st(HELLO), &limits).unwrap_err();
    assert_eq!(err.path(), Some("subject[0].digest.sha256"));
    // The v0.2 format: files are the subjects.
    let compat = Statement::from_json(
        &serde_json::to_vec(&json!({"_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": "model.safetensors", "digest": {"sha256": d1.hex()}},
                        {"name": "config.json", "digest": {"sha256": d2.hex()}}],
            "predicateType": "https://model_signing/Digests/v0.1", "predicate": {}}))
        .unwrap(),
    )
    .unwrap();
    let (_, m) = ModelSigningManifest::from_statement(&compat, &limits).unwrap();
    assert_eq!(m.resources.len(), 2);
    assert_eq!(m.resource("model.safetensors").unwrap().digest, d1.hex());
}

#[test]
fn croissant_and_spdx3_shape_errors() {
    let limits = Limits::default();
    let err = CroissantDataset::from_value(&json!({"@type": "sc:Dataset", "name": "x"}), &limits)
        .unwrap_err();
    assert_eq!(err.path(), Some("@context"));
    let err = CroissantDataset::from_value(
        &json!({"@context": {}, "@type": "sc:Thing", "name": "x"}),
        &limits,
    )
    .unwrap_err();
    assert_eq!(err.path(), Some("@type"));
    let err = Spdx3Document::from_value(
        &json!({"@context": "https://example.com/ctx", "@graph": [{"type": "x"}]}),
        &limits,
    )
    .unwrap_err();
    assert_eq!(err.code(), "attest.spdx.unsupported");
    let err = Spdx3Document::from_value(&json!({"@context": "https://spdx.org/rdf/3.0.1/spdx-context.jsonld", "@graph": [{"name": "x"}]}), &limits).unwrap_err();
    assert_eq!(err.path(), Some("@graph[0].type"));
}

/// A cheap stand-in for fuzzing until cargo-fuzz is wired: every prefix and a set of byte
/// mutations of small documents go through every parser; none may panic.
#[test]
fn no_panics_on_truncated_or_mutated_input() {
    let seeds: Vec<Vec<u8>> = vec![
        statement(2),
        br#"{"payloadType":"application/vnd.in-toto+json","payload":"eyJfdHlwZSI6MX0=","signatures":[{"sig":"AA=="}]}"#.to_vec(),
        serde_json::to_vec(&json!({"bomFormat": "CycloneDX", "specVersion": "1.6", "components": [
            {"type": "machine-learning-model", "name": "m", "modelCard": {"modelParameters": {"datasets": [{"ref": "d"}]}}},
            {"type": "data", "bom-ref": "d", "name": "d", "data": [{"type": "dataset", "contents": {"url": "u"}}]}]})).unwrap(),
        serde_json::to_vec(&json!({"spdxVersion": "SPDX-2.3", "SPDXID": "SPDXRef-DOCUMENT", "packages": [{"SPDXID": "SPDXRef-a", "name": "a", "licenseDeclared": "(MIT OR X)"}]})).unwrap(),
        b"---\nlicense: mit\nmodel-index:\n- name: m\n  results:\n  - dataset: {type: d}\n    metrics: [{type: acc, value: 1}]\n---\n".to_vec(),
    ];
    let limits = Limits::default();
    let mut runs = 0;
    for seed in &seeds {
        let mut inputs: Vec<Vec<u8>> = (0..seed.len()).map(|n| seed[..n].to_vec()).collect();
        for i in 0..seed.len() {
            for b in [b'{', b'"', b'\\', b'[', 0xff, b'0'] {
                let mut m = seed.clone();
                m[i] = b;
                inputs.push(m);
            }
        }
        for input in inputs {
            let _ = Envelope::from_json(&input);
            let _ = extract_envelopes(&input, &limits);
            let _ = Statement::from_json(&input);
            let _ = Bom::from_json(&input);
            let _ = SpdxDocument::from_json(&input);
            let _ = Spdx3Document::from_json_with(&input, &limits);
            let _ = CroissantDataset::from_json(&input);
            let _ = ModelCard::from_json_with(&input, &limits);
            if let Ok(text) = std::str::from_utf8(&input) {
                let _ = HfCard::parse(text);
            }
            runs += 1;
        }
    }
    assert!(runs > 1000);
}

#[test]
fn cyclonedx_xml_is_bounded() {
    let limits = Limits::default();
    let bomb = r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]>
<bom xmlns="http://cyclonedx.org/schema/bom/1.5"><components><component type="library"><name>&lol2;</name></component></components></bom>"#;
    let err = Bom::from_xml(bomb).unwrap_err();
    assert_eq!(err.code(), "attest.cyclonedx.syntax");
    assert!(
        matches!(err, Error::Syntax { line: 1, column, .. } if column > 1),
        "{err:?}"
    );
    let deep = format!(
        r#"<bom xmlns="http://cyclonedx.org/schema/bom/1.5">{}{}</bom>"#,
        "<a>".repeat(200),
        "</a>".repeat(200)
    );
    assert_eq!(Bom::from_xml(&deep).unwrap_err().code(), "attest.too_deep");
    let err = Bom::from_xml(r#"<bom xmlns="http://example.com/x"/>"#).unwrap_err();
    assert_eq!(err.path(), Some("bom@xmlns"));
    let err =
        Bom::from_xml(r#"<bom xmlns="http://cyclonedx.org/schema/bom/1.5"><components></bom>"#)
            .unwrap_err();
    assert_eq!(err.code(), "attest.cyclonedx.syntax");
    let ok = Bom::from_xml_with(
        r#"<bom xmlns="http://cyclonedx.org/schema/bom/1.4" version="2"><components><component type="library"><name>a &amp; b&#33;</name></component></components></bom>"#,
        &limits,
    )
    .unwrap();
    assert_eq!(ok.components[0].name, "a & b!");
    assert_eq!(ok.version, Some(2));
    // Mutations of a small XML BOM never panic.
    let seed = br#"<?xml version="1.0"?><bom xmlns="http://cyclonedx.org/schema/bom/1.6" version="1"><components><component type="data" bom-ref="d"><name>x</name><hashes><hash alg="SHA-256">00</hash></hashes><licenses><expression>MIT</expression></licenses><data><type>dataset</type></data></component></components><dependencies><dependency ref="d"><dependency ref="e"/></dependency></dependencies></bom>"#;
    for i in 0..seed.len() {
        for b in [b'<', b'>', b'&', b'"', b'/', b'x'] {
            let mut m = seed.to_vec();
            m[i] = b;
            if let Ok(s) = std::str::from_utf8(&m) {
                let _ = Bom::from_xml(s);
            }
        }
        if let Ok(s) = std::str::from_utf8(&seed[..i]) {
            let _ = Bom::from_xml(s);
        }
    }
}

#[test]
fn cyclonedx_data_component_maps_to_model_card_dataset() {
    let bom = Bom::from_value(
        &json!({"bomFormat": "CycloneDX", "specVersion": "1.6", "components": [
            {"type": "machine-learning-model", "bom-ref": "m", "group": "acme", "name": "llm", "version": "2",
             "publisher": "Acme", "supplier": {"name": "Acme"},
             "hashes": [{"alg": "SHA-256", "content": HELLO.to_uppercase()}, {"alg": "BLAKE3", "content": "ab"}],
             "licenses": [{"license": {"id": "Apache-2.0"}}, {"expression": "MIT OR BSD-3-Clause"}],
             "modelCard": {"modelParameters": {"task": "text-generation",
                 "datasets": [{"ref": "tickets"}, {"ref": "missing"}, {"type": "dataset", "name": "inline", "contents": {"url": "https://d"}}]},
                 "considerations": {"ethicalConsiderations": [{"name": "PII", "mitigationStrategy": "scrubbing"}]}}},
            {"type": "data", "bom-ref": "tickets", "name": "tickets-2025",
             "hashes": [{"alg": "SHA-256", "content": HELLO}], "licenses": [{"license": {"name": "internal"}}],
             "data": [{"type": "dataset", "contents": {"url": "s3://bucket/tickets"}, "sensitiveData": ["PII"]}]}]}),
        &Limits::default(),
    )
    .unwrap();
    let model = bom.models().next().unwrap();
    let card = ModelCard::from_cyclonedx(model, Some(&bom));
    assert_eq!(card.name, "acme/llm");
    assert_eq!(
        card.owners.len(),
        1,
        "publisher and supplier are the same owner"
    );
    assert_eq!(
        card.license.as_deref(),
        Some("Apache-2.0 AND (MIT OR BSD-3-Clause)")
    );
    assert_eq!(card.digest.len(), 1, "BLAKE3 has no in-toto name");
    assert_eq!(card.digest["sha256"], HELLO, "hex lowercased");
    let d = &card.training_datasets;
    assert_eq!(d.len(), 3);
    assert_eq!(d[0].name, "tickets-2025");
    assert_eq!(d[0].uri.as_deref(), Some("s3://bucket/tickets"));
    assert_eq!(d[0].digest["sha256"], HELLO);
    assert_eq!(d[0].license.as_deref(), Some("internal"));
    assert_eq!(d[1].name, "missing", "an unresolved ref keeps the ref");
    assert!(d[1].digest.is_empty());
    assert_eq!(d[2].uri.as_deref(), Some("https://d"));
    assert_eq!(card.undigested_datasets(), ["missing", "inline"]);
    assert_eq!(card.ethical_considerations, ["PII (mitigation: scrubbing)"]);
    ModelCard::from_value(&card.to_value(), &Limits::default()).unwrap();
    let p = Predicate::parse(
        "https://cyclonedx.org/bom",
        serde_json::to_value(&bom).unwrap(),
        &Limits::default(),
    )
    .unwrap();
    let s = p.summary();
    assert_eq!(s.models, ["llm"]);
    assert_eq!(s.datasets, ["inline", "tickets-2025"]);
    assert_eq!(s.components, 2);
}

#[test]
fn spdx_problems_include_checksums() {
    let doc = SpdxDocument::from_value(
        &json!({"spdxVersion": "SPDX-2.3", "SPDXID": "SPDXRef-DOCUMENT", "packages": [
            {"SPDXID": "SPDXRef-a", "name": "a", "downloadLocation": "NOASSERTION",
             "checksums": [{"algorithm": "SHA256", "checksumValue": "abc"}, {"algorithm": "SHA1", "checksumValue": "da39a3ee5e6b4b0d3255bfef95601890afd80709"}]}],
            "relationships": [{"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES", "relatedSpdxElement": "SPDXRef-a"}]}),
        &Limits::default(),
    )
    .unwrap();
    let problems = doc.problems();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].path(), Some("packages[0].checksums[0].sha256"));
}

#[test]
fn json_lines_of_envelopes_and_bundles() {
    let limits = Limits::default();
    let env = r#"{"payloadType":"text/plain","payload":"aGk=","signatures":[]}"#;
    let bundle = format!(
        r#"{{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","dsseEnvelope":{env}}}"#
    );
    let lines = format!("{env}\n{bundle}\n");
    let found = extract_envelopes(lines.as_bytes(), &limits).unwrap();
    assert_eq!(found.len(), 2);
    assert!(found.iter().all(|(_, e)| e.payload == b"hi"));
    assert_eq!(found[1].0, provenance_attest::Container::JsonLine(1));
    let many = format!("{env}\n").repeat(5);
    let err =
        extract_envelopes(many.as_bytes(), &Limits::default().with_max_subjects(4)).unwrap_err();
    assert_eq!(err.code(), "attest.too_many");
    assert_eq!(
        extract_envelopes(b"{}", &limits).unwrap_err().code(),
        "attest.unrecognized"
    );
    assert_eq!(
        extract_envelopes(b"", &limits).unwrap_err().code(),
        "attest.unrecognized"
    );
}

#[test]
fn building_statements_applies_the_parse_checks() {
    use provenance_attest::{ResourceDescriptor, StatementVersion};
    let limits = Limits::default();
    let err = Statement::new(StatementVersion::V1, vec![], "x", json!({}), &limits).unwrap_err();
    assert_eq!(err.path(), Some("subject"));
    let mut s = ResourceDescriptor::default();
    s.digest.insert("sha256".into(), "abc".into());
    let err = Statement::new(
        StatementVersion::V1,
        vec![s.clone()],
        "x",
        json!({}),
        &limits,
    )
    .unwrap_err();
    assert_eq!(err.path(), Some("subject[0].digest.sha256"));
    s.digest.insert("sha256".into(), HELLO.into());
    let err = Statement::new(
        StatementVersion::V1,
        vec![s.clone()],
        "x",
        json!("text"),
        &limits,
    )
    .unwrap_err();
    assert_eq!(err.path(), Some("predicate"));
    let card = ModelCard::from_value(&json!({"name": "m"}), &limits).unwrap();
    let st = Statement::new(
        StatementVersion::V1,
        vec![s],
        "https://mlcommons.org/model-card/v1",
        card.to_value(),
        &limits,
    )
    .unwrap();
    let back = Statement::from_json(&st.to_json()).unwrap();
    assert_eq!(back, st);
    let p = Predicate::from_statement(&back, &limits).unwrap();
    assert_eq!(p.summary().models, ["m"]);
}
