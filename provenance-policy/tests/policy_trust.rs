//! Trust material written in the policy (a private Sigstore, an air-gapped site): a
//! ClusterPolicy attestor's `keyless.roots`, `rekor.pubkey`, `ctlog.pubkey`,
//! `ctlog.tsaCertChain`, `rekor.ignoreTlog`, `ctlog.ignoreSCT` and `certificates.cert`, and an
//! ImageValidatingPolicy attestor's `ctlog.rekorPubKey` / `ctLogPubKey` / `tsaCertChain`,
//! `keyless.roots` and `trustedRoot`.
//!
//! The material is real: bundles and cosign layers made by Sigstore's own clients against
//! `@sigstore/mock` (a private Fulcio, Rekor, CT log and timestamp authority), from
//! `provenance-core/tests/fixtures/sigstore`. The caller's trust root is Sigstore's public-good
//! root, which trusts none of it: every pass below comes from what the policy writes, and every
//! part left out or wrong makes the decision fail.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use provenance_core::verify::{
    CosignSignature, PUBLIC_GOOD_TRUSTED_ROOT, SignatureMaterial, Verifier,
};
use provenance_core::{Digest, RuleStatus, TrustRoot, UnixTime};
use provenance_policy::admission::request::ResourceInput;
use provenance_policy::admission::{Decision, PolicySet};
use provenance_policy::kyverno::verify_images::{ImageEvidence, VerifyImagesContext};
use provenance_policy::lang::jmespath::Env;
use serde_json::{Value, json};

const IMAGE: &str = "registry.provenance.test/acme/model:v1";

fn read(name: &str, file: &str) -> Vec<u8> {
    let p = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../provenance-core/tests/fixtures/sigstore"
    ))
    .join(name)
    .join(file);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn json_of(name: &str, file: &str) -> Value {
    serde_json::from_slice(&read(name, file)).unwrap()
}

fn pem(tag: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {tag}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap());
        out.push('\n');
    }
    out.push_str(&format!("-----END {tag}-----\n"));
    out
}

/// The private Sigstore of a fixture, as PEM text a policy would carry.
struct Private {
    fulcio_roots: String,
    rekor_key: String,
    ct_key: String,
    tsa_chain: String,
    trusted_root_json: String,
}

fn private(name: &str) -> Private {
    let t = json_of(name, "trusted_root.json");
    let certs = |v: &Value| -> String {
        v["certChain"]["certificates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                pem(
                    "CERTIFICATE",
                    &STANDARD.decode(c["rawBytes"].as_str().unwrap()).unwrap(),
                )
            })
            .collect()
    };
    let key = |v: &Value| {
        pem(
            "PUBLIC KEY",
            &STANDARD
                .decode(v["publicKey"]["rawBytes"].as_str().unwrap())
                .unwrap(),
        )
    };
    Private {
        fulcio_roots: t["certificateAuthorities"]
            .as_array()
            .map(|a| a.iter().map(certs).collect())
            .unwrap_or_default(),
        rekor_key: key(&t["tlogs"][0]),
        ct_key: t["ctlogs"]
            .as_array()
            .map(|a| key(&a[0]))
            .unwrap_or_default(),
        tsa_chain: t["timestampAuthorities"]
            .as_array()
            .map(|a| a.iter().map(certs).collect())
            .unwrap_or_default(),
        trusted_root_json: String::from_utf8(read(name, "trusted_root.json")).unwrap(),
    }
}

fn indent(text: &str, n: usize) -> String {
    text.lines()
        .map(|l| format!("{}{l}\n", " ".repeat(n)))
        .collect()
}

fn pod() -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "inference", "namespace": "ml"},
        "spec": {"containers": [{"name": "server", "image": IMAGE}]}})
}

/// Decides `policy` for [`pod`] with a verifier over Sigstore's public-good root.
fn decide(policy: &str, evidence: ImageEvidence, now: UnixTime) -> Decision {
    let mut set = PolicySet::default();
    set.add_yaml(policy, "p.yaml")
        .unwrap_or_else(|e| panic!("{e}\n{policy}"));
    let root = TrustRoot::from_trusted_root_json(PUBLIC_GOOD_TRUSTED_ROOT).unwrap();
    let verifier = Verifier::new(&root).unwrap();
    let evidence = BTreeMap::from([(IMAGE.to_owned(), evidence)]);
    let cx = VerifyImagesContext::new(&evidence, &verifier, now);
    set.decide_with(&ResourceInput::create(pod()), &Env::at(now), Some(&cx))
}

fn status(d: &Decision) -> (RuleStatus, String) {
    assert_eq!(d.results.len(), 1, "{:?}", d.results);
    if std::env::var_os("SHOW_MESSAGES").is_some() {
        eprintln!("{:?}: {}", d.results[0].status, d.results[0].message);
    }
    (d.results[0].status, d.results[0].message.clone())
}

/// A ClusterPolicy requiring a keyless SLSA v1 attestation; `attestor` is the YAML of the
/// `keyless` object's extra fields (indented by the caller's convention: flat, two spaces).
fn keyless_attestation_policy(subject: &str, issuer: &str, extra: &str) -> String {
    format!(
        r#"apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {{name: private-sigstore}}
spec:
  validationFailureAction: Enforce
  rules:
    - name: slsa
      match: {{any: [{{resources: {{kinds: [Pod]}}}}]}}
      verifyImages:
        - imageReferences: ["registry.provenance.test/acme/*"]
          verifyDigest: false
          mutateDigest: false
          attestations:
            - type: https://slsa.dev/provenance/v1
              attestors:
                - entries:
                    - keyless:
                        subject: "{subject}"
                        issuer: "{issuer}"
{}"#,
        indent(extra, 24)
    )
}

/// The YAML of `roots`, `rekor` and `ctlog` for the private Sigstore `p`, with the parts
/// `leave_out` names left out and `flags` added to `rekor` / `ctlog`.
fn trust_yaml(p: &Private, leave_out: &[&str], rekor_flags: &str, ctlog_flags: &str) -> String {
    let block = |text: &str| indent(text, 4);
    let mut out = String::new();
    if !leave_out.contains(&"roots") {
        out += &format!("roots: |\n{}", indent(&p.fulcio_roots, 2));
    }
    let mut rekor = String::new();
    if !leave_out.contains(&"rekor") {
        rekor += &format!("  pubkey: |\n{}", block(&p.rekor_key));
    }
    rekor += rekor_flags;
    if !rekor.is_empty() {
        out += &format!("rekor:\n{rekor}");
    }
    let mut ctlog = String::new();
    if !leave_out.contains(&"ctlog") {
        ctlog += &format!("  pubkey: |\n{}", block(&p.ct_key));
    }
    if !leave_out.contains(&"tsa") {
        ctlog += &format!("  tsaCertChain: |\n{}", block(&p.tsa_chain));
    }
    ctlog += ctlog_flags;
    if !ctlog.is_empty() {
        out += &format!("ctlog:\n{ctlog}");
    }
    out
}

fn keyless_dsse() -> (Private, ImageEvidence, UnixTime, String, String) {
    let expect = json_of("keyless-dsse", "expect.json");
    let ev = ImageEvidence::resolved(Digest::sha256_of(&read("keyless-dsse", "artifact")))
        .with_attestations([SignatureMaterial::Bundle(read(
            "keyless-dsse",
            "bundle.sigstore.json",
        ))]);
    (
        private("keyless-dsse"),
        ev,
        UnixTime(expect["now"].as_i64().unwrap()),
        expect["identity"].as_str().unwrap().to_owned(),
        expect["issuer"].as_str().unwrap().to_owned(),
    )
}

#[test]
fn a_private_sigstore_written_in_the_attestor_verifies_and_every_part_counts() {
    let (p, ev, now, subject, issuer) = keyless_dsse();
    let run = |extra: &str| {
        status(&decide(
            &keyless_attestation_policy(&subject, &issuer, extra),
            ev.clone(),
            now,
        ))
    };

    // Everything the private Sigstore needs, written in the attestor: pass.
    let (s, m) = run(&trust_yaml(&p, &[], "", ""));
    assert_eq!(s, RuleStatus::Pass, "{m}");

    // Nothing written: the public-good root trusts none of it.
    let (s, m) = run("");
    assert_eq!(s, RuleStatus::Fail, "{m}");
    assert!(m.contains("[verify.tlog.unknown_log]"), "{m}");

    // Each part left out fails: the Fulcio roots, the Rekor key (the entry's log is unknown),
    // the CT key (the SCT cannot be verified), the timestamp authority (its certificate is
    // not a trusted one).
    for (part, code) in [
        ("roots", "verify.certificate.chain"),
        ("rekor", "verify.tlog.unknown_log"),
        ("ctlog", "verify.certificate.sct"),
        ("tsa", "verify.timestamp.invalid"),
    ] {
        let (s, m) = run(&trust_yaml(&p, &[part], "", ""));
        assert_eq!(s, RuleStatus::Fail, "without {part}: {m}");
        assert!(m.contains(&format!("[{code}]")), "without {part}: {m}");
    }

    // The SCT waived: the CT key is no longer needed.
    let (s, m) = run(&trust_yaml(&p, &["ctlog"], "", "  ignoreSCT: true\n"));
    assert_eq!(s, RuleStatus::Pass, "ignoreSCT: {m}");

    // The log waived: the inclusion proof is not needed, but a signing time still is (the
    // timestamp authority's), and the certificate must still chain to the written roots.
    let (s, m) = run(&trust_yaml(&p, &["rekor"], "  ignoreTlog: true\n", ""));
    assert_eq!(
        s,
        RuleStatus::Fail,
        "ignoreTlog with an entry of an unknown log: {m}"
    );
    assert!(m.contains("[verify.tlog.unknown_log]"), "{m}");
    let (s, m) = run(&trust_yaml(&p, &[], "  ignoreTlog: true\n", ""));
    assert_eq!(s, RuleStatus::Pass, "ignoreTlog: {m}");
    let (s, m) = run(&trust_yaml(
        &p,
        &["roots"],
        "  ignoreTlog: true\n",
        "  ignoreSCT: true\n",
    ));
    assert_eq!(s, RuleStatus::Fail, "waivers never waive the chain: {m}");
    assert!(m.contains("[verify.certificate.chain]"), "{m}");

    // The log waived, and the bundle's log entry forged (its integrated time moved, so the
    // SET no longer covers it): the waiver does not make a forged entry acceptable.
    let mut forged: Value = json_of("keyless-dsse", "bundle.sigstore.json");
    let t = &mut forged["verificationMaterial"]["tlogEntries"][0]["integratedTime"];
    let moved = t.as_str().unwrap().parse::<i64>().unwrap() - 60;
    *t = json!(moved.to_string());
    let forged_ev = ev.clone().with_attestations([SignatureMaterial::Bundle(
        serde_json::to_vec(&forged).unwrap(),
    )]);
    let (s, m) = status(&decide(
        &keyless_attestation_policy(
            &subject,
            &issuer,
            &trust_yaml(&p, &[], "  ignoreTlog: true\n", ""),
        ),
        forged_ev,
        now,
    ));
    assert_eq!(s, RuleStatus::Fail, "forged entry under ignoreTlog: {m}");
    assert!(m.contains("[verify."), "{m}");
}

#[test]
fn wrong_or_malformed_trust_material_never_passes() {
    let (p, ev, now, subject, issuer) = keyless_dsse();
    let run = |extra: &str| {
        status(&decide(
            &keyless_attestation_policy(&subject, &issuer, extra),
            ev.clone(),
            now,
        ))
    };

    // A Rekor key that did not sign the entry (the CT log's key in its place).
    let wrong_rekor = Private {
        rekor_key: p.ct_key.clone(),
        ..private("keyless-dsse")
    };
    let (s, m) = run(&trust_yaml(&wrong_rekor, &[], "", ""));
    assert_eq!(s, RuleStatus::Fail, "{m}");
    assert!(m.contains("[verify.tlog.unknown_log]"), "{m}");

    // Roots that do not chain: the timestamp authority's chain given as Fulcio roots.
    let wrong_roots = Private {
        fulcio_roots: p.tsa_chain.clone(),
        ..private("keyless-dsse")
    };
    let (s, m) = run(&trust_yaml(&wrong_roots, &[], "", ""));
    assert_eq!(s, RuleStatus::Fail, "{m}");
    assert!(m.contains("[verify.certificate.chain]"), "{m}");

    // Malformed material is an error naming the field, never a pass.
    for (bad, field) in [
        (
            Private {
                fulcio_roots: "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n".into(),
                ..private("keyless-dsse")
            },
            "keyless.roots",
        ),
        (
            Private {
                rekor_key: p.fulcio_roots.clone(),
                ..private("keyless-dsse")
            },
            "rekor.pubkey",
        ),
        (
            Private {
                tsa_chain: "not pem".into(),
                ..private("keyless-dsse")
            },
            "tsaCertChain",
        ),
    ] {
        let (s, m) = run(&trust_yaml(&bad, &[], "", ""));
        assert_eq!(s, RuleStatus::Error, "{field}: {m}");
        assert!(
            m.contains("policy.trust.invalid") && m.contains(field),
            "{field}: {m}"
        );
    }
}

fn cosign_key_set() -> (Private, ImageEvidence, UnixTime, String) {
    let expect = json_of("cosign-key-set", "expect.json");
    let layer = json_of("cosign-key-set", "cosign-layer.json");
    let payload = STANDARD.decode(layer["payload"].as_str().unwrap()).unwrap();
    let annotations: BTreeMap<String, String> = layer["annotations"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect();
    let ev =
        ImageEvidence::resolved(Digest::parse(expect["image_digest"].as_str().unwrap()).unwrap())
            .with_signatures([SignatureMaterial::Cosign(CosignSignature::new(
                payload,
                annotations,
            ))]);
    (
        private("cosign-key-set"),
        ev,
        UnixTime(expect["now"].as_i64().unwrap()),
        String::from_utf8(read("cosign-key-set", "key.pub")).unwrap(),
    )
}

fn key_policy(key: &str, extra: &str) -> String {
    format!(
        r#"apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {{name: private-rekor}}
spec:
  validationFailureAction: Enforce
  rules:
    - name: signed
      match: {{any: [{{resources: {{kinds: [Pod]}}}}]}}
      verifyImages:
        - imageReferences: ["registry.provenance.test/acme/*"]
          verifyDigest: false
          mutateDigest: false
          attestors:
            - entries:
                - keys:
                    publicKeys: |
{}{}"#,
        indent(key, 22),
        indent(extra, 20)
    )
}

#[test]
fn key_attestors_with_a_private_rekor_and_the_common_ignore_flags() {
    let (p, ev, now, key) = cosign_key_set();
    let run = |extra: &str| status(&decide(&key_policy(&key, extra), ev.clone(), now));

    // The signature's SET is from a log the public-good root does not trust.
    let (s, m) = run("");
    assert_eq!(s, RuleStatus::Fail, "{m}");
    // The private Rekor's key written in the policy: the SET verifies.
    let (s, m) = run(&format!("rekor:\n  pubkey: |\n{}", indent(&p.rekor_key, 4)));
    assert_eq!(s, RuleStatus::Pass, "{m}");
    // A Rekor key that did not sign the SET.
    let (s, m) = run(&format!("rekor:\n  pubkey: |\n{}", indent(&p.ct_key, 4)));
    assert_eq!(s, RuleStatus::Fail, "{m}");
    // The common `rekor: {ignoreTlog: true}, ctlog: {ignoreSCT: true}`: the key alone
    // decides, as with cosign, so the untrusted SET does not matter.
    let (s, m) = run("rekor: {ignoreTlog: true}\nctlog: {ignoreSCT: true}\n");
    assert_eq!(s, RuleStatus::Pass, "{m}");
    // ...and another key still fails.
    let other = p.rekor_key.clone();
    let (s, m) = status(&decide(
        &key_policy(&other, "rekor: {ignoreTlog: true}\n"),
        ev.clone(),
        now,
    ));
    assert_eq!(s, RuleStatus::Fail, "{m}");
}

#[test]
fn image_validating_policy_trusted_root_and_ctlog_keys() {
    let (p, ev, now, subject, issuer) = keyless_dsse();
    let policy = |keyless_extra: &str, cosign_extra: &str| {
        format!(
            r#"apiVersion: policies.kyverno.io/v1
kind: ImageValidatingPolicy
metadata: {{name: private-sigstore}}
spec:
  validationActions: [Deny]
  matchConstraints:
    resourceRules:
      - apiGroups: [""]
        apiVersions: [v1]
        operations: [CREATE, UPDATE]
        resources: [pods]
  matchImageReferences:
    - glob: "registry.provenance.test/acme/*"
  validationConfigurations: {{verifyDigest: false, mutateDigest: false}}
  attestors:
    - name: ci
      cosign:
        keyless:
          identities:
            - subject: "{subject}"
              issuer: "{issuer}"
{}{}  attestations:
    - name: slsa
      intoto: {{type: https://slsa.dev/provenance/v1}}
  validations:
    - expression: "images.containers.all(i, verifyAttestationSignatures(i, attestations.slsa, [attestors.ci]) > 0)"
      message: "no verified SLSA provenance"
"#,
            indent(keyless_extra, 10),
            indent(cosign_extra, 8)
        )
    };
    let run = |extra: &str| status(&decide(&policy("", extra), ev.clone(), now));
    let (s, m) = run("");
    assert_eq!(s, RuleStatus::Fail, "{m}");
    // The whole trusted root, inline.
    let (s, m) = run(&format!(
        "trustedRoot:\n  value: '{}'\n",
        p.trusted_root_json.replace('\n', "").replace('\'', "''")
    ));
    assert_eq!(s, RuleStatus::Pass, "{m}");
    // The parts, inline.
    let parts = format!(
        "ctlog:\n  url: https://rekor.private.test\n  rekorPubKey: |\n{}  ctLogPubKey: |\n{}  tsaCertChain: |\n{}",
        indent(&p.rekor_key, 4),
        indent(&p.ct_key, 4),
        indent(&p.tsa_chain, 4)
    );
    let roots = format!("roots: |\n{}", indent(&p.fulcio_roots, 2));
    let (s, m) = status(&decide(&policy(&roots, &parts), ev.clone(), now));
    assert_eq!(s, RuleStatus::Pass, "{m}");
    // Without the roots the certificate does not chain.
    let (s, m) = run(&parts);
    assert_eq!(s, RuleStatus::Fail, "{m}");
}

#[test]
fn trust_written_with_another_type_or_a_misspelled_name_does_not_load() {
    let ivp = |cosign: &str| {
        format!(
            r#"apiVersion: policies.kyverno.io/v1
kind: ImageValidatingPolicy
metadata: {{name: typed}}
spec:
  validationActions: [Deny]
  matchConstraints:
    resourceRules:
      - apiGroups: [""]
        apiVersions: [v1]
        operations: [CREATE]
        resources: [pods]
  attestors:
    - name: ci
      cosign:
{}  validations:
    - expression: "images.containers.all(i, verifyImageSignatures(i, [attestors.ci]) > 0)"
"#,
            indent(cosign, 8)
        )
    };
    let keyless = "keyless:\n  identities: [{subject: s, issuer: i}]\n";
    for (extra, field) in [
        (format!("{keyless}  roots: [PEM]\n"), "roots"),
        (format!("{keyless}  root: PEM\n"), "root"),
        (
            format!("{keyless}ctlog:\n  rekorPubKey: [K]\n"),
            "rekorPubKey",
        ),
        (
            format!("{keyless}ctlog:\n  insecureIgnoreSCT: \"true\"\n"),
            "insecureIgnoreSCT",
        ),
        (
            format!("{keyless}trustedRoot:\n  value: {{mediaType: x}}\n"),
            "value",
        ),
        (format!("{keyless}trustedRoot: '{{}}'\n"), "trustedRoot"),
    ] {
        let mut set = PolicySet::default();
        let e = set.add_yaml(&ivp(&extra), "p.yaml").unwrap_err();
        assert_eq!(e.code(), "policy.invalid", "{field}: {e}");
        assert!(e.to_string().contains(field), "{field}: {e}");
    }
    let cpol = |keyless_extra: &str| keyless_attestation_policy("s", "i", keyless_extra);
    for (extra, field) in [
        ("roots: [PEM]\n", "roots"),
        ("rekor: {pubkey: [K]}\n", "pubkey"),
        ("ctlog: {ignoreSCT: \"true\"}\n", "ignoreSCT"),
        ("root: PEM\n", "root"),
    ] {
        let mut set = PolicySet::default();
        let e = set.add_yaml(&cpol(extra), "p.yaml").unwrap_err();
        assert!(
            e.code() == "policy.invalid" || e.code() == "policy.unsupported",
            "{field}: {e}"
        );
        assert!(e.to_string().contains(field), "{field}: {e}");
    }
}

/// A `certificates` attestor (ClusterPolicy `certificates.cert`, IVP `certificate.cert.value`):
/// the signature is verified with the certificate's public key, as Kyverno does. The material is
/// a cosign keyless `.sig` layer; its own certificate is the one the policy names.
#[test]
fn a_certificate_attestor_verifies_with_the_certificates_key() {
    let name = "cosign-keyless-set-tsa";
    let expect = json_of(name, "expect.json");
    let layer = json_of(name, "cosign-layer.json");
    let annotations: BTreeMap<String, String> = layer["annotations"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect();
    let cert = annotations["dev.sigstore.cosign/certificate"].clone();
    let ev =
        ImageEvidence::resolved(Digest::parse(expect["image_digest"].as_str().unwrap()).unwrap())
            .with_signatures([SignatureMaterial::Cosign(CosignSignature::new(
                STANDARD.decode(layer["payload"].as_str().unwrap()).unwrap(),
                annotations,
            ))]);
    let now = UnixTime(expect["now"].as_i64().unwrap());
    let policy = |cert: &str| {
        format!(
            r#"apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {{name: cert-attestor}}
spec:
  validationFailureAction: Enforce
  rules:
    - name: signed
      match: {{any: [{{resources: {{kinds: [Pod]}}}}]}}
      verifyImages:
        - imageReferences: ["registry.provenance.test/acme/*"]
          verifyDigest: false
          mutateDigest: false
          attestors:
            - entries:
                - certificates:
                    cert: |
{}                    rekor: {{ignoreTlog: true}}
"#,
            indent(cert, 22)
        )
    };
    let (s, m) = status(&decide(&policy(&cert), ev.clone(), now));
    assert_eq!(s, RuleStatus::Pass, "{m}");
    // Another certificate (the private Fulcio's root) names another key.
    let other = private("keyless-dsse").fulcio_roots;
    let (s, m) = status(&decide(&policy(&other), ev.clone(), now));
    assert_eq!(s, RuleStatus::Fail, "{m}");
    assert!(m.contains("[verify.signature.invalid]"), "{m}");
    // A chain is refused (Kyverno cannot verify one either).
    let mut set = PolicySet::default();
    let with_chain = policy(&cert).replace(
        "                    rekor: {ignoreTlog: true}\n",
        "                    certChain: x\n                    rekor: {ignoreTlog: true}\n",
    );
    assert_ne!(with_chain, policy(&cert));
    let e = set.add_yaml(&with_chain, "p.yaml").unwrap_err();
    assert_eq!(e.code(), "policy.unsupported", "{e}");
}
