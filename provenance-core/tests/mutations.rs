//! Mutation test: for every fixture that verifies (the conformance corpus' accept cases and the
//! project's own fixtures), at least 200 targeted mutations of the signature, certificate,
//! payload, message digest, artifact, SET, inclusion proof (hashes, root hash, index, tree
//! size), checkpoint, log entry (index, log id, kind, body, integrated time), RFC 3161
//! timestamps and cosign annotations; every one must be rejected. Prints the totals.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use provenance_core::verify::{Artifact, SignatureMaterial, Verifier};
use provenance_core::{CosignSignature, Digest};
use serde_json::Value;

#[path = "fixtures/common.rs"]
mod common;
use common::*;

/// At least this many mutations per fixture.
const MIN_MUTATIONS: usize = 200;

/// One mutated input: the material and, for artifact mutations, other artifact bytes/digest.
struct Mutation {
    label: String,
    material: SignatureMaterial,
    artifact: Option<Vec<u8>>,
    image_digest: Option<Digest>,
}

/// `count` distinct single-bit flips spread over `bytes`.
fn flips(bytes: &[u8], count: usize) -> Vec<(usize, u8, Vec<u8>)> {
    let mut out = Vec::new();
    if bytes.is_empty() {
        return out;
    }
    let mut seen = BTreeSet::new();
    let total = bytes.len() * 8;
    let count = count.min(total);
    let mut k = 0usize;
    while out.len() < count && k < total * 2 {
        let pos = (k * bytes.len()) / count.max(1) % bytes.len();
        let pos = (pos + k / count.max(1)) % bytes.len();
        let bit = ((k * 5) % 8) as u8;
        k += 1;
        if !seen.insert((pos, bit)) {
            continue;
        }
        let mut m = bytes.to_vec();
        m[pos] ^= 1 << bit;
        out.push((pos, bit, m));
    }
    out
}

fn set(v: &Value, ptr: &str, new: Value) -> Value {
    let mut v = v.clone();
    *v.pointer_mut(ptr).unwrap() = new;
    v
}

fn remove(v: &Value, ptr: &str) -> Value {
    let mut v = v.clone();
    let (parent, key) = ptr.rsplit_once('/').unwrap();
    match v.pointer_mut(parent).unwrap() {
        Value::Object(o) => {
            o.remove(key);
        }
        Value::Array(a) => {
            a.remove(key.parse::<usize>().unwrap());
        }
        _ => panic!("cannot remove {ptr}"),
    }
    v
}

/// Bit flips in a base64 field of a JSON document.
fn b64_field(v: &Value, ptr: &str, count: usize, label: &str, out: &mut Vec<(String, Value)>) {
    let Some(s) = v.pointer(ptr).and_then(Value::as_str) else {
        return;
    };
    let bytes = STANDARD.decode(s).unwrap();
    for (pos, bit, m) in flips(&bytes, count) {
        out.push((
            format!("{label}: flip byte {pos} bit {bit}"),
            set(v, ptr, Value::String(STANDARD.encode(m))),
        ));
    }
}

/// Changes to a decimal number written as a string (proto3 int64) or as a number.
fn num_field(v: &Value, ptr: &str, label: &str, out: &mut Vec<(String, Value)>) {
    let Some(cur) = v.pointer(ptr) else { return };
    let (n, as_string) = match cur {
        Value::String(s) => (s.parse::<i64>().unwrap(), true),
        Value::Number(n) => (n.as_i64().unwrap(), false),
        _ => return,
    };
    for d in [1i64, -1, 7, 1000, 86_400, -86_400, n] {
        let m = n.wrapping_add(d);
        if m == n || (d == n && m == 0) && n == 0 {
            continue;
        }
        let new = if as_string {
            Value::String(m.to_string())
        } else {
            Value::from(m)
        };
        out.push((format!("{label}: {n} -> {m}"), set(v, ptr, new)));
    }
}

/// Mutations of a checkpoint (signed note): every character class of the note body, and all
/// signature lines at once.
fn checkpoint_field(v: &Value, ptr: &str, out: &mut Vec<(String, Value)>) {
    let Some(text) = v.pointer(ptr).and_then(Value::as_str) else {
        return;
    };
    let Some((body, sigs)) = text.split_once("\n\n") else {
        return;
    };
    let body_chars: Vec<char> = body.chars().collect();
    let n = body_chars.len();
    for k in 0..16 {
        let pos = k * n / 16;
        let mut c = body_chars.clone();
        if c[pos] == '\n' {
            continue;
        }
        c[pos] = match c[pos] {
            '0'..='8' => ((c[pos] as u8) + 1) as char,
            '9' => '0',
            'a'..='y' | 'A'..='Y' => ((c[pos] as u8) + 1) as char,
            _ => 'x',
        };
        let body: String = c.into_iter().collect();
        out.push((
            format!("checkpoint: body char {pos}"),
            set(v, ptr, Value::String(format!("{body}\n\n{sigs}"))),
        ));
    }
    // Flip a bit in every signature line's signature (key hint and signature bytes).
    for byte in [0usize, 2, 3, 4, 10, 20, 40] {
        let mut lines = Vec::new();
        for line in sigs.lines() {
            let Some(rest) = line.strip_prefix("\u{2014} ") else {
                lines.push(line.to_owned());
                continue;
            };
            let (name, sig) = rest.rsplit_once(' ').unwrap();
            let mut raw = STANDARD.decode(sig).unwrap();
            let b = byte.min(raw.len() - 1);
            raw[b] ^= 0x01;
            lines.push(format!("\u{2014} {name} {}", STANDARD.encode(raw)));
        }
        out.push((
            format!("checkpoint: every signature, byte {byte}"),
            set(
                v,
                ptr,
                Value::String(format!("{body}\n\n{}\n", lines.join("\n"))),
            ),
        ));
    }
    out.push((
        "checkpoint: signatures removed".into(),
        set(v, ptr, Value::String(format!("{body}\n\n"))),
    ));
}

fn bundle_mutations(f: &Fixture, json: &[u8]) -> Vec<Mutation> {
    let v: Value = serde_json::from_slice(json).unwrap();
    let mut out: Vec<(String, Value)> = Vec::new();
    b64_field(&v, "/messageSignature/signature", 40, "signature", &mut out);
    b64_field(
        &v,
        "/messageSignature/messageDigest/digest",
        16,
        "message digest",
        &mut out,
    );
    b64_field(
        &v,
        "/dsseEnvelope/signatures/0/sig",
        40,
        "DSSE signature",
        &mut out,
    );
    b64_field(&v, "/dsseEnvelope/payload", 24, "DSSE payload", &mut out);
    if v.pointer("/dsseEnvelope/payloadType").is_some() {
        out.push((
            "DSSE payloadType".into(),
            set(
                &v,
                "/dsseEnvelope/payloadType",
                "application/vnd.in-toto+jsom".into(),
            ),
        ));
    }
    b64_field(
        &v,
        "/verificationMaterial/certificate/rawBytes",
        40,
        "certificate",
        &mut out,
    );
    b64_field(
        &v,
        "/verificationMaterial/x509CertificateChain/certificates/0/rawBytes",
        40,
        "certificate",
        &mut out,
    );
    for ptr in [
        "/verificationMaterial/certificate",
        "/verificationMaterial/x509CertificateChain",
    ] {
        if v.pointer(ptr).is_some() {
            out.push(("certificate removed".into(), remove(&v, ptr)));
        }
    }
    let entries = v
        .pointer("/verificationMaterial/tlogEntries")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for (i, e) in entries.iter().enumerate() {
        let p = format!("/verificationMaterial/tlogEntries/{i}");
        let has_set = e.get("inclusionPromise").is_some();
        let has_proof = e.get("inclusionProof").is_some();
        b64_field(&v, &format!("{p}/logId/keyId"), 8, "log id", &mut out);
        b64_field(
            &v,
            &format!("{p}/canonicalizedBody"),
            24,
            "log entry body",
            &mut out,
        );
        let other_kind = if e["kindVersion"]["kind"] == "hashedrekord" {
            "dsse"
        } else {
            "hashedrekord"
        };
        out.push((
            format!("log entry kind -> {other_kind}"),
            set(&v, &format!("{p}/kindVersion/kind"), other_kind.into()),
        ));
        out.push((
            "log entry version".into(),
            set(&v, &format!("{p}/kindVersion/version"), "0.0.9".into()),
        ));
        if has_set {
            b64_field(
                &v,
                &format!("{p}/inclusionPromise/signedEntryTimestamp"),
                24,
                "SET",
                &mut out,
            );
            // The SET covers the index and the integrated time.
            num_field(&v, &format!("{p}/logIndex"), "log index", &mut out);
            num_field(
                &v,
                &format!("{p}/integratedTime"),
                "integrated time",
                &mut out,
            );
        }
        if has_proof {
            let pp = format!("{p}/inclusionProof");
            b64_field(
                &v,
                &format!("{pp}/rootHash"),
                12,
                "proof root hash",
                &mut out,
            );
            let hashes = e["inclusionProof"]["hashes"].as_array().map_or(0, Vec::len);
            for h in 0..hashes {
                b64_field(
                    &v,
                    &format!("{pp}/hashes/{h}"),
                    6,
                    &format!("proof hash {h}"),
                    &mut out,
                );
            }
            if hashes > 0 {
                out.push((
                    "proof hash removed".into(),
                    remove(&v, &format!("{pp}/hashes/0")),
                ));
            }
            num_field(&v, &format!("{pp}/logIndex"), "proof log index", &mut out);
            num_field(&v, &format!("{pp}/treeSize"), "proof tree size", &mut out);
            checkpoint_field(&v, &format!("{pp}/checkpoint/envelope"), &mut out);
            if !has_set {
                out.push(("inclusion proof removed".into(), remove(&v, &pp)));
            }
        }
        if !has_proof && has_set {
            out.push((
                "SET removed".into(),
                remove(&v, &format!("{p}/inclusionPromise")),
            ));
        }
    }
    if !entries.is_empty() {
        out.push((
            "log entries removed".into(),
            set(
                &v,
                "/verificationMaterial/tlogEntries",
                Value::Array(vec![]),
            ),
        ));
    }
    let stamps = v
        .pointer("/verificationMaterial/timestampVerificationData/rfc3161Timestamps")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    for t in 0..stamps {
        b64_field(
            &v,
            &format!(
                "/verificationMaterial/timestampVerificationData/rfc3161Timestamps/{t}/signedTimestamp"
            ),
            30,
            "RFC 3161 timestamp",
            &mut out,
        );
    }
    // Top up with more signature flips until the minimum is reached.
    let sig_ptr = if v.pointer("/messageSignature/signature").is_some() {
        "/messageSignature/signature"
    } else {
        "/dsseEnvelope/signatures/0/sig"
    };
    let artifact_count = 16;
    if out.len() + artifact_count < MIN_MUTATIONS {
        let mut extra = Vec::new();
        b64_field(&v, sig_ptr, 600, "signature", &mut extra);
        let have: BTreeSet<String> = out.iter().map(|(l, _)| l.clone()).collect();
        for (l, m) in extra {
            if out.len() + artifact_count >= MIN_MUTATIONS + 20 {
                break;
            }
            if !have.contains(&l) {
                out.push((l, m));
            }
        }
    }
    let mut muts: Vec<Mutation> = out
        .into_iter()
        .map(|(label, v)| Mutation {
            label,
            material: SignatureMaterial::Bundle(serde_json::to_vec(&v).unwrap()),
            artifact: None,
            image_digest: None,
        })
        .collect();
    for (pos, bit, m) in flips(&f.artifact, artifact_count) {
        muts.push(Mutation {
            label: format!("artifact: flip byte {pos} bit {bit}"),
            material: f.material.clone(),
            artifact: Some(m),
            image_digest: None,
        });
    }
    muts
}

fn cosign_mutations(f: &Fixture, sig: &CosignSignature) -> Vec<Mutation> {
    let mut out: Vec<(String, CosignSignature)> = Vec::new();
    let with = |key: &str, value: String| {
        let mut s = sig.clone();
        s.annotations.insert(key.to_owned(), value);
        s
    };
    let ann = |k: &str| sig.annotations.get(k).cloned();
    // An attestation layer: the DSSE envelope's signature, payload and type.
    if let Ok(env) = serde_json::from_slice::<Value>(&sig.payload)
        && env.get("payloadType").is_some()
    {
        let mut vs = Vec::new();
        b64_field(&env, "/signatures/0/sig", 60, "DSSE signature", &mut vs);
        b64_field(&env, "/payload", 40, "DSSE payload", &mut vs);
        vs.push((
            "DSSE payloadType".into(),
            set(&env, "/payloadType", "application/vnd.in-toto+jsom".into()),
        ));
        for (l, m) in vs {
            let mut s = sig.clone();
            s.payload = serde_json::to_vec(&m).unwrap();
            out.push((l, s));
        }
    }
    // Signature.
    let sig_key = "dev.cosignproject.cosign/signature";
    let raw = STANDARD.decode(ann(sig_key).unwrap()).unwrap();
    for (pos, bit, m) in flips(&raw, 60) {
        out.push((
            format!("signature: flip byte {pos} bit {bit}"),
            with(sig_key, STANDARD.encode(m)),
        ));
    }
    // Payload bytes. In a DSSE envelope the `keyid` is an unauthenticated hint (the DSSE
    // spec: not covered by the signature), so flips inside its value are not mutations of
    // signed content and are left out.
    let keyid_range = std::str::from_utf8(&sig.payload)
        .ok()
        .and_then(|t| {
            let start = t.find("\"keyid\":\"")? + "\"keyid\":\"".len();
            let len = t[start..].find('"')?;
            Some(start..start + len)
        })
        .unwrap_or(0..0);
    for (pos, bit, m) in flips(&sig.payload, 50) {
        if keyid_range.contains(&pos) {
            continue;
        }
        let mut s = sig.clone();
        s.payload = m;
        out.push((format!("payload: flip byte {pos} bit {bit}"), s));
    }
    // Certificate.
    let cert_key = "dev.sigstore.cosign/certificate";
    if let Some(pem_text) = ann(cert_key) {
        let block = pem::parse(pem_text).unwrap();
        for (pos, bit, m) in flips(block.contents(), 40) {
            out.push((
                format!("certificate: flip byte {pos} bit {bit}"),
                with(cert_key, pem::encode(&pem::Pem::new("CERTIFICATE", m))),
            ));
        }
        let mut s = sig.clone();
        s.annotations.remove(cert_key);
        out.push(("certificate removed".into(), s));
    }
    // SET bundle.
    let set_key = "dev.sigstore.cosign/bundle";
    if let Some(set_json) = ann(set_key) {
        let v: Value = serde_json::from_str(&set_json).unwrap();
        let mut vs = Vec::new();
        b64_field(&v, "/SignedEntryTimestamp", 30, "SET", &mut vs);
        b64_field(&v, "/Payload/body", 24, "SET body", &mut vs);
        num_field(
            &v,
            "/Payload/integratedTime",
            "SET integrated time",
            &mut vs,
        );
        num_field(&v, "/Payload/logIndex", "SET log index", &mut vs);
        let log_id = v["Payload"]["logID"].as_str().unwrap();
        for k in 0..8 {
            let mut b = hex::decode(log_id).unwrap();
            b[k * 4] ^= 0x10;
            vs.push((
                format!("SET log id byte {}", k * 4),
                set(&v, "/Payload/logID", hex::encode(b).into()),
            ));
        }
        for (l, m) in vs {
            out.push((l, with(set_key, m.to_string())));
        }
        let mut s = sig.clone();
        s.annotations.remove(set_key);
        out.push(("SET removed".into(), s));
    }
    // RFC 3161 timestamp.
    let ts_key = "dev.sigstore.cosign/rfc3161timestamp";
    if let Some(ts_json) = ann(ts_key) {
        let v: Value = serde_json::from_str(&ts_json).unwrap();
        let mut vs = Vec::new();
        b64_field(
            &v,
            "/SignedRFC3161Timestamp",
            30,
            "RFC 3161 timestamp",
            &mut vs,
        );
        for (l, m) in vs {
            out.push((l, with(ts_key, m.to_string())));
        }
    }
    // Top up with signature flips.
    if out.len() + 16 < MIN_MUTATIONS {
        for (pos, bit, m) in flips(&raw, 600) {
            let l = format!("signature: flip byte {pos} bit {bit}");
            if out.iter().any(|(x, _)| *x == l) {
                continue;
            }
            out.push((l, with(sig_key, STANDARD.encode(m))));
            if out.len() + 16 >= MIN_MUTATIONS + 20 {
                break;
            }
        }
    }
    let mut muts: Vec<Mutation> = out
        .into_iter()
        .map(|(label, s)| Mutation {
            label,
            material: SignatureMaterial::Cosign(s),
            artifact: None,
            image_digest: None,
        })
        .collect();
    // Other image digests.
    let d = f.image_digest.clone().unwrap();
    for (pos, bit, m) in flips(d.as_bytes(), 16) {
        muts.push(Mutation {
            label: format!("image digest: flip byte {pos} bit {bit}"),
            material: f.material.clone(),
            artifact: None,
            image_digest: Some(Digest::from_bytes(d.algorithm(), &m).unwrap()),
        });
    }
    muts
}

#[test]
fn every_mutation_is_rejected() {
    let mut fixtures = load_fixtures();
    if let Some(shared) = shared() {
        let mut conf = conformance_accept_cases(&shared);
        conf.push(real_attestation_fixture(&shared));
        conf.append(&mut fixtures);
        fixtures = conf;
    }
    let mut grand_total = 0;
    let mut accepted_total = Vec::new();
    let mut codes: BTreeMap<String, usize> = BTreeMap::new();
    println!(
        "{:<52} {:>9} {:>9} {:>9}",
        "fixture", "mutations", "rejected", "accepted"
    );
    for f in &fixtures {
        let verifier = Verifier::new(&f.root).unwrap();
        f.verify_with(&verifier, &f.material)
            .unwrap_or_else(|e| panic!("{}: the unmutated fixture must verify: {e}", f.name));
        let muts = match &f.material {
            SignatureMaterial::Bundle(json) => bundle_mutations(f, json),
            SignatureMaterial::Cosign(sig) => cosign_mutations(f, sig),
            _ => unreachable!(),
        };
        let mut accepted = Vec::new();
        for m in &muts {
            let artifact = match (&m.artifact, &m.image_digest) {
                (Some(bytes), _) => Artifact::Bytes(bytes),
                (None, Some(d)) => Artifact::Digest(d),
                (None, None) => f.artifact(),
            };
            match verifier.verify(artifact, &m.material, &f.expectation, f.now) {
                Ok(_) => accepted.push(m.label.clone()),
                Err(e) => *codes.entry(e.code().to_owned()).or_default() += 1,
            }
        }
        println!(
            "{:<52} {:>9} {:>9} {:>9}",
            f.name,
            muts.len(),
            muts.len() - accepted.len(),
            accepted.len()
        );
        for a in &accepted {
            println!("    ACCEPTED: {a}");
        }
        assert!(
            muts.len() >= MIN_MUTATIONS,
            "{}: only {} mutations",
            f.name,
            muts.len()
        );
        grand_total += muts.len();
        accepted_total.extend(accepted.into_iter().map(|a| format!("{}: {a}", f.name)));
    }
    println!(
        "\nmutations: {} fixtures, {grand_total} mutations, {} rejected, {} accepted",
        fixtures.len(),
        grand_total - accepted_total.len(),
        accepted_total.len()
    );
    println!("rejections by check:");
    for (code, n) in &codes {
        println!("    {code:<40} {n}");
    }
    assert!(
        accepted_total.is_empty(),
        "mutations accepted: {accepted_total:#?}"
    );
}
