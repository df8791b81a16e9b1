//! Every document in `shared/corpora/predicates` is parsed or rejected as its `SOURCE` says.
//!
//! The corpus is read at run time (never copied into the repository): `PROVENANCE_SHARED` if
//! set, else `../../shared` from this crate. Missing corpus: panic under `CI`, skip otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use provenance_attest::croissant::{CroissantDataset, DatasetProvenance};
use provenance_attest::cyclonedx::Bom;
use provenance_attest::huggingface::HfCard;
use provenance_attest::modelcard::ModelCard;
use provenance_attest::slsa::Provenance;
use provenance_attest::spdx::{Spdx3Document, SpdxDocument};
use provenance_attest::{
    Container, Envelope, Limits, Predicate, Statement, StatementVersion, TypedPredicate,
    extract_envelopes, pae,
};
use provenance_core::Digest;
use serde_json::Value;

fn corpus(sub: &str) -> Option<PathBuf> {
    let base = std::env::var_os("PROVENANCE_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared")));
    let dir = base.join("corpora/predicates").join(sub);
    if dir.is_dir() {
        return Some(dir);
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "corpus folder {} is missing (set PROVENANCE_SHARED to the shared/ folder)",
            dir.display()
        );
    }
    println!("SKIPPED: corpus folder {} not found", dir.display());
    None
}

fn read(dir: &Path, file: &str) -> Vec<u8> {
    std::fs::read(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// Checks that the table covers exactly the files the folder's manifest.json lists.
fn assert_covers(dir: &Path, covered: &[&str]) {
    let manifest: Value = serde_json::from_slice(&read(dir, "manifest.json")).unwrap();
    let listed: BTreeSet<&str> = manifest
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["file"].as_str().unwrap())
        .collect();
    let covered: BTreeSet<&str> = covered.iter().copied().collect();
    assert_eq!(
        listed,
        covered,
        "test table and manifest.json of {} differ",
        dir.display()
    );
}

fn report(file: &str, outcome: &str) {
    println!("{file:<78} {outcome}");
}

fn expect_err<T: std::fmt::Debug>(file: &str, r: Result<T, provenance_attest::Error>, code: &str) {
    match r {
        Err(e) => {
            assert_eq!(e.code(), code, "{file}: wrong error: {e}");
            report(file, &format!("rejected as expected: {} ({e})", e.code()));
        }
        Ok(v) => panic!("{file}: expected {code}, parsed: {v:?}"),
    }
}

/// Statement of the only (or `index`-th) envelope in a container document.
fn statement_in(dir: &Path, file: &str, index: usize) -> (Container, Envelope, Statement) {
    let limits = Limits::default();
    let mut found = extract_envelopes(&read(dir, file), &limits).unwrap();
    assert!(
        index < found.len(),
        "{file}: only {} envelopes",
        found.len()
    );
    let (c, env) = found.swap_remove(index);
    let st = env.statement(&limits).unwrap();
    (c, env, st)
}

fn slsa(st: &Statement) -> Provenance {
    let p = Predicate::from_statement(st, &Limits::default()).unwrap();
    match p.typed {
        TypedPredicate::SlsaProvenance(p) => *p,
        other => panic!("not SLSA: {other:?}"),
    }
}

#[test]
fn dsse_corpus() {
    let Some(dir) = corpus("dsse") else { return };
    let files = [
        "protocol-test-vector.envelope.json",
        "protocol-test-vector.params.txt",
        "envelope-single.placeholder.json",
        "envelope-multisig.placeholder.json",
    ];
    assert_covers(&dir, &files);

    let env = Envelope::from_json(&read(&dir, files[0])).unwrap();
    assert_eq!(env.payload, b"hello world");
    assert_eq!(env.signatures.len(), 1);
    assert_eq!(
        env.signatures[0].sig_bytes().unwrap().len(),
        64,
        "raw r||s P-256"
    );
    let params = String::from_utf8(read(&dir, files[1])).unwrap();
    let expected_pae = params
        .lines()
        .find(|l| l.starts_with("DSSEv1 "))
        .expect("PAE line in the test vector");
    assert_eq!(env.signed_bytes(), expected_pae.as_bytes());
    assert_eq!(
        pae(&env.payload_type, &env.payload),
        expected_pae.as_bytes()
    );
    report(files[0], "ok: payload and PAE match the spec test vector");
    report(files[1], "ok: PAE line used as the expected value above");

    for f in &files[2..] {
        expect_err(
            f,
            Envelope::from_json(&read(&dir, f)),
            "attest.dsse.invalid",
        );
    }
}

#[test]
fn slsa_intoto_corpus() {
    let Some(dir) = corpus("slsa-intoto") else {
        return;
    };
    let limits = Limits::default();
    let v02 = "slsa-v0.2/gha-generic-v1.2.2-workflow_dispatch.intoto.jsonl";
    let v02_payload = "slsa-v0.2/gha-generic-v1.2.2-workflow_dispatch.intoto.payload.json";
    let bcr = "slsa-v1/bcr-MODULE.bazel.sigstore-bundle-v0.3.json";
    let bcr_payload = "slsa-v1/bcr-MODULE.bazel.sigstore-bundle-v0.3.payload.json";
    let deleg = "slsa-v1/gha-delegator-v2.1.0-workflow_dispatch.sigstore-bundle-v0.2.json";
    let deleg_payload =
        "slsa-v1/gha-delegator-v2.1.0-workflow_dispatch.sigstore-bundle-v0.2.payload.json";
    let npm = "slsa-v1/npm-provenance-npm-test-cli-v1-prega.npm-attestations.json";
    let npm0 = "slsa-v1/npm-provenance-npm-test-cli-v1-prega.npm-attestations.att0.payload.json";
    let npm1 = "slsa-v1/npm-provenance-npm-test-cli-v1-prega.npm-attestations.att1.payload.json";
    let gcb = "slsa-v0.1/gcb-container-github.gcb-wrapper.json";
    let gcb_payload = "slsa-v0.1/gcb-container-github.gcb-wrapper.payload.json";
    let vsa = "vsa-v1/gke-gce-pre.bcid-vsa.jsonl";
    let vsa_payload = "vsa-v1/gke-gce-pre.bcid-vsa.payload.json";
    let reference = "intoto-v1-spec/reference-predicate.statement.json";
    let release = "intoto-v1-spec/release-predicate-oci.statement.json";
    let test_result = "intoto-v1-spec/test-result-predicate.statement.json";
    assert_covers(
        &dir,
        &[
            v02,
            v02_payload,
            bcr,
            bcr_payload,
            deleg,
            deleg_payload,
            npm,
            npm0,
            npm1,
            gcb,
            gcb_payload,
            vsa,
            vsa_payload,
            reference,
            release,
            test_result,
        ],
    );

    // Each container's decoded payload is byte-identical to its DERIVED payload file, and the
    // Statement parsed from either is the same.
    for (container, index, payload) in [
        (v02, 0, v02_payload),
        (bcr, 0, bcr_payload),
        (deleg, 0, deleg_payload),
        (npm, 0, npm0),
        (npm, 1, npm1),
        (gcb, 0, gcb_payload),
        (vsa, 0, vsa_payload),
    ] {
        let (_, env, st) = statement_in(&dir, container, index);
        assert_eq!(env.payload, read(&dir, payload), "{container}[{index}]");
        assert_eq!(st, Statement::from_json(&read(&dir, payload)).unwrap());
        report(payload, "ok: equals the decoded envelope payload");
    }

    // SLSA v0.2 in a raw DSSE line.
    let (c, _, st) = statement_in(&dir, v02, 0);
    assert_eq!(c, Container::Bare);
    assert_eq!(st.version, StatementVersion::V01);
    let p = slsa(&st);
    let Provenance::V02(p02) = &p else {
        panic!("{v02}: not v0.2")
    };
    assert!(p.builder_id().starts_with(
        "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/generator_generic_slsa3.yml@"
    ));
    assert_eq!(p02.invocation.config_source.digest.len(), 1);
    let subject_digest =
        Digest::parse(&format!("sha256:{}", st.subjects[0].digest["sha256"])).unwrap();
    assert!(st.matches(&subject_digest));
    assert!(!st.matches(&Digest::sha256_of(b"something else")));
    report(
        v02,
        &format!("ok: Statement v0.1, SLSA v0.2, builder {}", p.builder_id()),
    );

    // SLSA v1 in a Sigstore bundle v0.3, Statement v1.
    let (c, _, st) = statement_in(&dir, bcr, 0);
    assert!(matches!(c, Container::SigstoreBundle(ref m) if m.contains("v0.3")));
    assert_eq!(st.version, StatementVersion::V1);
    let p = slsa(&st);
    assert!(matches!(p, Provenance::V1(_)));
    assert_eq!(p.inputs().len(), 1);
    report(
        bcr,
        &format!(
            "ok: bundle v0.3, Statement v1, SLSA v1, builder {}",
            p.builder_id()
        ),
    );

    // SLSA v1 inside Statement v0.1 (delegator).
    let (_, _, st) = statement_in(&dir, deleg, 0);
    assert_eq!(st.version, StatementVersion::V01);
    let p = slsa(&st);
    let Provenance::V1(p1) = &p else {
        panic!("{deleg}: not v1")
    };
    assert!(p1.build_definition.external_parameters["inputs"].is_object());
    report(deleg, "ok: bundle v0.2, Statement v0.1 carrying SLSA v1");

    // npm: a publish attestation (no typed view) and SLSA v1.
    let found = extract_envelopes(&read(&dir, npm), &limits).unwrap();
    assert_eq!(found.len(), 2);
    let publish = found[0].1.statement(&limits).unwrap();
    let pp = Predicate::from_statement(&publish, &limits).unwrap();
    assert_eq!(pp.typed, TypedPredicate::Other);
    assert_eq!(pp.value["name"], "sigstore");
    assert_eq!(publish.subjects[0].digest["sha512"].len(), 128);
    let prov = found[1].1.statement(&limits).unwrap();
    assert!(matches!(slsa(&prov), Provenance::V1(_)));
    report(npm, "ok: npm publish v0.1 (untyped) + SLSA v1");

    // Cloud Build: SLSA v0.1.
    let (c, env, st) = statement_in(&dir, gcb, 0);
    assert_eq!(c, Container::CloudBuild(0));
    assert!(env.signatures[0].keyid.starts_with("projects/"));
    let p = slsa(&st);
    assert!(matches!(p, Provenance::V01(_)));
    assert!(
        p.builder_id()
            .starts_with("https://cloudbuild.googleapis.com/")
    );
    report(
        gcb,
        &format!(
            "ok: Cloud Build wrapper, SLSA v0.1, builder {}",
            p.builder_id()
        ),
    );

    // VSA v1.
    let (_, _, st) = statement_in(&dir, vsa, 0);
    let pr = Predicate::from_statement(&st, &limits).unwrap();
    let TypedPredicate::Vsa(v) = &pr.typed else {
        panic!("{vsa}: not a VSA")
    };
    assert!(v.passed());
    assert!(v.verified_levels.iter().any(|l| l == "SLSA_BUILD_LEVEL_2"));
    assert_eq!(pr.summary().verification_passed, Some(true));
    report(vsa, "ok: VSA v1 PASSED");

    // in-toto spec examples.
    let st = Statement::from_json(&read(&dir, reference)).unwrap();
    assert_eq!(
        Predicate::from_statement(&st, &limits).unwrap().typed,
        TypedPredicate::Other
    );
    report(reference, "ok: Statement v1, reference/v0.1 (untyped)");
    let st = Statement::from_json(&read(&dir, test_result)).unwrap();
    assert_eq!(st.subjects[0].digest["gitCommit"].len(), 40);
    report(test_result, "ok: Statement v1, gitCommit subject");
    let err = Statement::from_json(&read(&dir, release)).unwrap_err();
    assert_eq!(err.path(), Some("subject[0].digest.sha256"));
    expect_err(release, Err::<(), _>(err), "attest.invalid_digest");
}

#[test]
fn oci_layout_attestation_blob() {
    let Some(dir) = corpus("oci-cosign-layout") else {
        return;
    };
    let limits = Limits::default();
    let image = String::from_utf8(read(&dir, "layout.digest")).unwrap();
    let image = Digest::parse(image.trim()).unwrap();
    let mut envelopes = 0;
    for entry in std::fs::read_dir(dir.join("layout/blobs/sha256")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(&path).unwrap();
        // Blobs are content-addressed: check that first.
        assert_eq!(Digest::sha256_of(&bytes).hex(), name);
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        if v.get("payloadType").is_some() {
            let env = Envelope::from_json(&bytes).unwrap();
            let st = env.statement(&limits).unwrap();
            assert!(
                st.matches(&image),
                "attestation subject is the image index digest"
            );
            assert!(matches!(slsa(&st), Provenance::V02(_)));
            envelopes += 1;
            report(
                &format!("layout/blobs/sha256/{name}"),
                "ok: DSSE, SLSA v0.2 on the image",
            );
        }
    }
    assert_eq!(envelopes, 1);
}

#[test]
fn cyclonedx_corpus() {
    let Some(dir) = corpus("cyclonedx") else {
        return;
    };
    let ml16 = "mlbom/valid-machine-learning-1.6.json";
    let ml15 = "mlbom/valid-machine-learning-1.5.json";
    let env16 = "mlbom/valid-machine-learning-considerations-env-1.6.json";
    let xml16 = "mlbom/valid-machine-learning-1.6.xml";
    let gpt = "mlbom/bom-examples-pr50-FoundationModels-gpt-4o.json";
    let bad1 = "mlbom/bom-examples-pr50-OpenSource.INVALID-trailing-comma.json";
    let bad2 = "mlbom/bom-examples-pr50-Dataset.INVALID-trailing-comma.json";
    let laravel = "sbom/laravel-7.12.0.bom.1.4.json";
    let cern = "sbom/cern-lhc-vdm-editor.bom.1.2.json";
    let cern_xml = "sbom/cern-lhc-vdm-editor.bom.1.2.xml";
    assert_covers(
        &dir,
        &[
            ml16, ml15, env16, xml16, gpt, bad1, bad2, laravel, cern, cern_xml,
        ],
    );

    // Independent count of components from the raw JSON, to compare with the typed view.
    fn count_components(v: &Value) -> usize {
        let mut n = 0;
        let mut stack: Vec<&Value> = vec![v];
        while let Some(x) = stack.pop() {
            if let Some(cs) = x.get("components").and_then(Value::as_array) {
                n += cs.len();
                stack.extend(cs.iter());
            }
            if let Some(c) = x.get("metadata").and_then(|m| m.get("component")) {
                n += 1;
                stack.push(c);
            }
            if let Some(fs) = x.get("formulation").and_then(Value::as_array) {
                stack.extend(fs.iter());
            }
        }
        n
    }

    for f in [ml16, ml15] {
        let bytes = read(&dir, f);
        let bom = Bom::from_json(&bytes).unwrap();
        let raw: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(bom.all_components().count(), count_components(&raw));
        let models: Vec<_> = bom.models().collect();
        assert_eq!(models.len(), 1);
        let mc = models[0].model_card.as_ref().unwrap();
        let params = mc.model_parameters.as_ref().unwrap();
        assert!(!params.datasets.is_empty());
        let card = ModelCard::from_cyclonedx(models[0], Some(&bom));
        assert_eq!(card.training_datasets.len(), params.datasets.len());
        assert!(!card.intended_use.users.is_empty());
        assert!(!card.limitations.is_empty());
        assert!(!card.evaluation.is_empty());
        // The mapped card is itself a valid predicate.
        ModelCard::from_value(&card.to_value(), &Limits::default()).unwrap();
        report(
            f,
            &format!(
                "ok: spec {}, model {}, {} dataset(s), {} metric(s)",
                bom.spec_version,
                card.name,
                card.training_datasets.len(),
                card.evaluation[0].metrics.len()
            ),
        );
    }

    let bom = Bom::from_json(&read(&dir, env16)).unwrap();
    let m = bom.models().next().unwrap();
    let env = &m
        .model_card
        .as_ref()
        .unwrap()
        .considerations
        .as_ref()
        .unwrap()
        .environmental_considerations;
    assert!(env["energyConsumptions"].is_array());
    report(env16, "ok: 1.6 environmentalConsiderations kept as JSON");

    let bom = Bom::from_json(&read(&dir, gpt)).unwrap();
    assert_eq!(
        bom.models().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        ["gpt-4o"]
    );
    report(gpt, "ok: model gpt-4o");

    for f in [bad1, bad2] {
        let err = Bom::from_json(&read(&dir, f)).unwrap_err();
        assert!(matches!(err, provenance_attest::Error::Syntax { line, .. } if line > 0));
        expect_err(f, Err::<(), _>(err), "attest.cyclonedx.syntax");
    }

    let bytes = read(&dir, laravel);
    let bom = Bom::from_json(&bytes).unwrap();
    let raw: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        bom.components.len(),
        raw["components"].as_array().unwrap().len()
    );
    assert_eq!(bom.components.len(), 62, "SOURCE: 62 components");
    assert_eq!(bom.dependencies.len(), 63, "SOURCE: 63 dependencies");
    assert!(!bom.licenses().is_empty());
    assert!(bom.components.iter().all(|c| c.purl.is_some()));
    report(
        laravel,
        &format!(
            "ok: 1.4, {} components, licenses {:?}",
            bom.components.len(),
            bom.licenses()
        ),
    );

    let bom = Bom::from_json(&read(&dir, cern)).unwrap();
    assert_eq!(bom.components.len(), 43, "SOURCE: 43 npm components");
    report(cern, "ok: 1.2, 43 components");

    for f in [xml16, cern_xml] {
        xml_case(&dir, f);
    }
}

fn xml_case(dir: &Path, f: &str) {
    // The JSON parser refuses XML with a clear error ...
    expect_err(
        f,
        Bom::from_json(&read(dir, f)),
        "attest.cyclonedx.unsupported",
    );
    // ... and the XML parser reads it to the same BOM as its JSON twin.
    let xml = String::from_utf8(read(dir, f)).unwrap();
    let bom = Bom::from_xml(&xml).unwrap();
    let json = Bom::from_json(&read(dir, &f.replace(".xml", ".json"))).unwrap();
    assert_eq!(bom.spec_version, json.spec_version);
    // Serial numbers differ: the cern twins were generated separately.
    assert!(
        bom.serial_number
            .as_deref()
            .is_some_and(|s| s.starts_with("urn:uuid:"))
    );
    let names = |b: &Bom| {
        b.all_components()
            .map(|c| (c.name.clone(), c.version.clone(), c.purl.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&bom), names(&json));
    let hashes = |b: &Bom| {
        b.all_components()
            .flat_map(|c| c.hashes.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(hashes(&bom), hashes(&json));
    assert_eq!(bom.licenses(), json.licenses());
    assert_eq!(bom.dependencies, json.dependencies);
    let cards = |b: &Bom| {
        b.models()
            .map(|m| ModelCard::from_cyclonedx(m, Some(b)))
            .collect::<Vec<_>>()
    };
    assert_eq!(cards(&bom), cards(&json));
    report(
        f,
        &format!(
            "ok (XML): same {} components, hashes, licenses, dependencies and model cards as the JSON twin",
            bom.all_components().count()
        ),
    );
}

#[test]
fn spdx_corpus() {
    let Some(dir) = corpus("spdx") else { return };
    let ex23 = "spdx-2.3/SPDXJSONExample-v2.3.spdx.json";
    let ex22 = "spdx-2.2/SPDXJSONExample-v2.2.spdx.json";
    let trivy = "spdx-2.2/trivy-container-image-514-packages.INVALID.spdx.json";
    let maven = "spdx-2.3/example14-examplemaven-enriched.spdx.json";
    let ai = "spdx-3.0/ai-example02-sbom.spdx3.json";
    let dataset = "spdx-3.0/dataset-example01.spdx3.json";
    let sw = "spdx-3.0/software-example13.spdx3.json";
    assert_covers(&dir, &[ex23, ex22, trivy, maven, ai, dataset, sw]);
    let limits = Limits::default();

    // Counts SOURCE states, where it states them; always the raw JSON's counts.
    for (f, stated) in [(ex23, Some((4, 7))), (ex22, None), (maven, Some((6, 11)))] {
        let bytes = read(&dir, f);
        let doc = SpdxDocument::from_json(&bytes).unwrap();
        let raw: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            doc.packages.len(),
            raw["packages"].as_array().unwrap().len()
        );
        assert_eq!(
            doc.relationships.len(),
            raw["relationships"].as_array().unwrap().len()
        );
        if let Some((packages, relationships)) = stated {
            assert_eq!(doc.packages.len(), packages, "{f}");
            assert_eq!(doc.relationships.len(), relationships, "{f}");
        }
        let problems = doc.problems();
        assert!(problems.is_empty(), "{f}: {problems:?}");
        report(
            f,
            &format!(
                "ok: {}, {} packages, {} relationships, licenses {:?}",
                doc.spdx_version,
                doc.packages.len(),
                doc.relationships.len(),
                doc.licenses()
            ),
        );
    }
    // purls: SOURCE says example14 has purl externalRefs, but the file has none; compare
    // with the raw JSON instead.
    for f in [ex23, ex22, maven] {
        let bytes = read(&dir, f);
        let doc = SpdxDocument::from_json(&bytes).unwrap();
        let raw = String::from_utf8(bytes).unwrap();
        let with_purl = doc.packages.iter().filter(|p| p.purl().is_some()).count();
        assert_eq!(with_purl > 0, raw.contains("\"purl\""), "{f}");
    }

    // Real trivy output: parses (leniently) but fails validation for the reasons SOURCE gives.
    let doc = SpdxDocument::from_json(&read(&dir, trivy)).unwrap();
    assert_eq!(doc.packages.len(), 514);
    let problems = doc.problems();
    let has = |suffix: &str| {
        problems
            .iter()
            .any(|e| e.path().is_some_and(|p| p.ends_with(suffix)))
    };
    assert!(
        has("downloadLocation"),
        "missing downloadLocation not found"
    );
    assert!(has("licenseDeclared"), "comma-separated licenses not found");
    assert!(has("relationshipType"), "DESCRIBE not found");
    report(
        trivy,
        &format!(
            "parsed, rejected by validation as expected: {} problems, first: {}",
            problems.len(),
            problems[0]
        ),
    );

    for f in [ai, dataset, sw] {
        expect_err(
            f,
            SpdxDocument::from_json(&read(&dir, f)),
            "attest.spdx.unsupported",
        );
    }
    let doc = Spdx3Document::from_json_with(&read(&dir, ai), &limits).unwrap();
    let models: Vec<_> = doc.ai_packages().collect();
    assert_eq!(models.len(), 1);
    assert!(models[0].properties.contains_key("ai_domain"));
    let datasets: Vec<_> = doc.datasets().collect();
    assert_eq!(datasets.len(), 1);
    assert_eq!(
        doc.licenses_of(models[0].spdx_id.as_deref().unwrap()),
        ["CC0-1.0"]
    );
    assert!(
        doc.relationships()
            .iter()
            .any(|(_, t, _)| *t == "trainedOn")
    );
    let card = ModelCard::from_spdx3(&doc, models[0]);
    assert_eq!(card.license.as_deref(), Some("CC0-1.0"));
    let trained_on: Vec<&str> = doc
        .relationships()
        .into_iter()
        .filter(|(_, t, _)| *t == "trainedOn")
        .flat_map(|(_, _, to)| to)
        .collect();
    assert_eq!(card.training_datasets.len(), trained_on.len());
    assert!(
        card.evaluation[0]
            .metrics
            .iter()
            .any(|m| m.metric_type == "precision")
    );
    ModelCard::from_value(&card.to_value(), &limits).unwrap();
    report(
        ai,
        &format!(
            "ok (SPDX 3): 1 AI package, 1 dataset, CC0-1.0; model card trained on {:?}",
            card.training_datasets
                .iter()
                .map(|d| &d.name)
                .collect::<Vec<_>>()
        ),
    );

    let doc = Spdx3Document::from_json_with(&read(&dir, dataset), &limits).unwrap();
    let ds = doc.datasets().next().unwrap();
    assert!(!ds.hashes().is_empty());
    assert_eq!(
        doc.licenses_of(ds.spdx_id.as_deref().unwrap()),
        ["CC-BY-4.0"]
    );
    let dp = DatasetProvenance::from_spdx3(&doc, ds);
    let dp = DatasetProvenance::from_value(&serde_json::to_value(&dp).unwrap(), &limits).unwrap();
    assert_eq!(dp.license, "CC-BY-4.0");
    assert_eq!(
        dp.collection.collector.as_deref(),
        Some("Our World in Data")
    );
    report(
        dataset,
        &format!(
            "ok (SPDX 3): dataset with hashes {:?}, valid dataset-provenance draft",
            ds.hashes()
        ),
    );

    let doc = Spdx3Document::from_json_with(&read(&dir, sw), &limits).unwrap();
    assert_eq!(doc.of_type("software_Package").count(), 4);
    report(sw, "ok (SPDX 3): 4 software_Package");
}

#[test]
fn huggingface_corpus() {
    let Some(dir) = corpus("hf-modelcard") else {
        return;
    };
    let index = "huggingface_hub-fixtures/sample_simple_model_index.md";
    let simple = "huggingface_hub-fixtures/sample_simple.md";
    let bad_index = "huggingface_hub-fixtures/sample_invalid_model_index.md";
    let bad_data = "huggingface_hub-fixtures/sample_invalid_card_data.md";
    let none = "huggingface_hub-fixtures/sample_no_metadata.md";
    let crlf = "huggingface_hub-fixtures/sample_windows_line_breaks.md";
    let dataset = "huggingface_hub-fixtures/sample_datasetcard_simple.md";
    let template = "huggingface_hub-templates/modelcard_template.md";
    let spec = "hub-docs/modelcard.md";
    let checklist = "hub-docs/release-checklist-frontmatter.md";
    assert_covers(
        &dir,
        &[
            index, simple, bad_index, bad_data, none, crlf, dataset, template, spec, checklist,
        ],
    );
    let text = |f: &str| String::from_utf8(read(&dir, f)).unwrap();

    let card = HfCard::parse(&text(index)).unwrap();
    let mc = ModelCard::from_hf_card(&card, "fallback");
    assert_eq!(mc.name, "my-cool-model");
    assert_eq!(mc.license.as_deref(), Some("mit"));
    assert_eq!(mc.evaluation.len(), 2);
    assert_eq!(
        mc.evaluation[1].dataset.as_ref().unwrap().split.as_deref(),
        Some("test")
    );
    assert_eq!(mc.training_datasets[0].name, "beans");
    assert_eq!(card.front_matter["library_name"], "timm");
    report(index, "ok: license mit, 2 evaluations, dataset beans");

    let card = HfCard::parse(&text(simple)).unwrap();
    assert_eq!(card.library_name.as_deref(), Some("pytorch-lightning"));
    let mc = ModelCard::from_hf_card(&card, "org/my-cool-model");
    assert_eq!(mc.name, "org/my-cool-model");
    report(simple, "ok");

    let card = HfCard::parse(&text(bad_index)).unwrap();
    assert_eq!(card.model_index.len(), 1);
    assert!(ModelCard::from_hf_card(&card, "m").evaluation.is_empty());
    report(
        bad_index,
        "ok: results without a dataset dropped, as huggingface_hub does",
    );

    let err = HfCard::parse(&text(bad_data)).unwrap_err();
    assert_eq!(err.path(), Some("."));
    expect_err(bad_data, Err::<(), _>(err), "attest.hf_card.schema");
    expect_err(
        none,
        HfCard::parse(&text(none)),
        "attest.hf_card.no_front_matter",
    );

    let card = HfCard::parse(&text(crlf)).unwrap();
    assert_eq!(card.license, ["mit"]);
    assert_eq!(card.language, ["eo"]);
    assert!(
        card.front_matter["widget"][2]["text"]
            .as_str()
            .unwrap()
            .contains('ĝ')
    );
    report(crlf, "ok: CRLF and non-ASCII");

    let card = HfCard::parse(&text(dataset)).unwrap();
    assert_eq!(card.license, ["bsd-3-clause"]);
    assert_eq!(card.front_matter["pretty_name"], "Sample Segmentation");
    let mut draft = DatasetProvenance::from_hf_card(
        &card,
        "org/sample-segmentation",
        "https://huggingface.co/datasets/org/sample-segmentation",
    );
    assert_eq!(draft.license, "bsd-3-clause");
    let err =
        DatasetProvenance::from_value(&serde_json::to_value(&draft).unwrap(), &Limits::default())
            .unwrap_err();
    assert_eq!(err.path(), Some("digest"));
    draft
        .digest
        .insert("sha256".into(), Digest::sha256_of(b"revision").hex());
    DatasetProvenance::from_value(&serde_json::to_value(&draft).unwrap(), &Limits::default())
        .unwrap();
    report(
        dataset,
        "ok: dataset card, license list; dataset provenance draft needs a digest",
    );

    for f in [template, spec] {
        let err = HfCard::parse(&text(f)).unwrap_err();
        assert!(
            matches!(
                err.code(),
                "attest.hf_card.syntax" | "attest.hf_card.schema"
            ),
            "{f}: {err}"
        );
        report(f, &format!("rejected as expected: {} ({err})", err.code()));
    }

    let card = HfCard::parse(&text(checklist)).unwrap();
    let mc = ModelCard::from_hf_card(&card, "username/model");
    assert_eq!(mc.base_models[0].name, "username/base-model");
    assert_eq!(mc.license.as_deref(), Some("apache-2.0"));
    assert_eq!(mc.task.as_deref(), Some("text-generation"));
    assert_eq!(mc.undigested_datasets(), ["username/dataset"]);
    report(checklist, "ok: base_model, license, datasets, pipeline_tag");
}

#[test]
fn croissant_corpus() {
    let Some(dir) = corpus("croissant") else {
        return;
    };
    let simple = "1.0/simple-parquet.metadata.json";
    let dices = "1.0/dices-350.metadata.json";
    let hf = "1.1/huggingface-data_provenance_initiative.metadata.json";
    assert_covers(&dir, &[simple, dices, hf]);

    let d = CroissantDataset::from_json(&read(&dir, simple)).unwrap();
    assert_eq!(
        d.conforms_to.as_deref(),
        Some("http://mlcommons.org/croissant/1.0")
    );
    assert_eq!(d.digests().len(), 1);
    assert_eq!(d.record_set.len(), 1);
    report(
        simple,
        &format!(
            "ok: {} file(s) with sha256, license {:?}",
            d.digests().len(),
            d.license
        ),
    );

    let d = CroissantDataset::from_json(&read(&dir, dices)).unwrap();
    assert!(
        d.extensions
            .keys()
            .filter(|k| k.starts_with("rai:"))
            .count()
            >= 5
    );
    assert_eq!(d.license, ["cc-by-sa-4.0"]);
    report(dices, &format!("ok: {} RAI properties", d.extensions.len()));

    let d = CroissantDataset::from_json(&read(&dir, hf)).unwrap();
    assert_eq!(
        d.conforms_to.as_deref(),
        Some("http://mlcommons.org/croissant/1.1")
    );
    // The HF export puts a URL in `sha256` of the git repository FileObject: not a digest.
    assert!(d.digests().is_empty());
    assert_eq!(d.undigested_files().len(), 1);
    report(
        hf,
        "ok: 1.1; repository FileObject has a URL, not a digest, in sha256",
    );

    // Dataset provenance drafts: complete when exactly one file is digested (it is the
    // dataset), refused at `digest` otherwise.
    for f in [simple, dices, hf] {
        let d = CroissantDataset::from_json(&read(&dir, f)).unwrap();
        let draft = serde_json::to_value(DatasetProvenance::from_croissant(&d)).unwrap();
        let r = DatasetProvenance::from_value(&draft, &Limits::default());
        if d.digests().len() == 1 {
            assert_eq!(r.unwrap().digest["sha256"], d.digests()[0].1);
            report(f, "dataset provenance draft: valid");
        } else {
            // Required fields are checked in order: a card without a license fails there.
            let missing = if d.license.is_empty() {
                "license"
            } else {
                "digest"
            };
            assert_eq!(r.unwrap_err().path(), Some(missing));
            report(
                f,
                &format!("dataset provenance draft: refused at `{missing}` (incomplete card)"),
            );
        }
    }
}

/// Every corpus file, cut at many points, goes through every parser: errors are fine, panics
/// are not (a cheap stand-in for fuzzing with real seeds).
#[test]
fn corpus_prefixes_never_panic() {
    let Some(root) = corpus("") else { return };
    let mut stack = vec![root];
    let mut files = Vec::new();
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    let limits = Limits::default();
    let mut runs = 0usize;
    for path in &files {
        let bytes = std::fs::read(path).unwrap();
        let cuts = if bytes.len() > 100_000 { 8 } else { 48 };
        for k in 0..=cuts {
            let input = &bytes[..bytes.len() * k / cuts];
            let _ = Envelope::from_json(input);
            let _ = extract_envelopes(input, &limits);
            let _ = Statement::from_json(input);
            let _ = Bom::from_json(input);
            let _ = SpdxDocument::from_json(input);
            let _ = Spdx3Document::from_json_with(input, &limits);
            let _ = CroissantDataset::from_json(input);
            let _ = ModelCard::from_json_with(input, &limits);
            if let Ok(text) = std::str::from_utf8(input) {
                let _ = HfCard::parse(text);
                let _ = Bom::from_xml(text);
            }
            runs += 1;
        }
    }
    println!(
        "{} files, {runs} prefixes through every parser, no panic",
        files.len()
    );
    assert!(files.len() >= 50);
}
