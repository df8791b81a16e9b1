//! Runs every table of the image-reference grammar's own tests (`corpora/docker-reference`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::PathBuf;

use provenance_core::reference::{self, AnyReference, ImageReference};
use serde_json::Value;

fn corpus_dir() -> Option<PathBuf> {
    let shared = std::env::var_os("PROVENANCE_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared")));
    let dir = shared.join("corpora/docker-reference");
    if dir.is_dir() {
        return Some(dir);
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "shared corpora missing at {}: CI must provide ../shared",
            dir.display()
        );
    }
    eprintln!("SKIPPED: shared corpora not found at {}", dir.display());
    None
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

fn opt<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str).filter(|x| !x.is_empty())
}

fn is_err(v: &Value) -> bool {
    match v.get("err") {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(_)) => true,
        _ => false,
    }
}

/// Checks one case; returns a failure description or None.
fn check(file: &str, c: &Value) -> Option<String> {
    let input = s(c, "input");
    let fail = |what: String| Some(format!("{file}: {c}: {what}"));
    match file {
        "parse.json" => match ImageReference::parse_raw(input) {
            Ok(r) if !is_err(c) => {
                if r.to_string() != input {
                    return fail(format!("round trip gave {r}"));
                }
                if r.name() != s(c, "repository")
                    || r.domain() != s(c, "domain")
                    || r.path() != s(c, "path")
                    || r.tag() != opt(c, "tag")
                    || r.digest_str() != opt(c, "digest")
                {
                    return fail(format!(
                        "parts {:?}",
                        (r.domain(), r.path(), r.tag(), r.digest_str())
                    ));
                }
                None
            }
            Ok(r) => fail(format!("accepted as {r}")),
            Err(e) if is_err(c) => {
                let want = s(c, "err");
                let got = e.to_string();
                (!got.ends_with(want))
                    .then(|| format!("{file}: {input:?}: error {got:?}, want {want:?}"))
            }
            Err(e) => fail(format!("rejected: {e}")),
        },
        "with_name_failure.json" => ImageReference::from_name(input)
            .ok()
            .map(|r| format!("{file}: {input:?} accepted as {r}")),
        "domain_and_path.json" => match ImageReference::from_name(input) {
            Ok(r) if r.domain() == s(c, "domain") && r.path() == s(c, "path") => None,
            other => fail(format!("{other:?}")),
        },
        "serialization.json" => {
            let json = serde_json::to_string(input).unwrap();
            match serde_json::from_str::<String>(&json).map(|x| ImageReference::parse_raw(&x)) {
                Ok(Ok(r)) if !is_err(c) => {
                    let back = serde_json::to_string(&r.to_string()).unwrap();
                    (r.name() != s(c, "name")
                        || r.tag() != opt(c, "tag")
                        || r.digest_str() != opt(c, "digest")
                        || back != json)
                        .then(|| format!("{file}: {input:?} gave {r}"))
                }
                Ok(Err(_)) if is_err(c) => None,
                other => fail(format!("{other:?}")),
            }
        }
        "with_tag.json" | "with_digest.json" => {
            let mut r = ImageReference::from_name(s(c, "name")).unwrap();
            let (tag, digest) = (opt(c, "tag"), opt(c, "digest"));
            if file == "with_tag.json" {
                if let Some(d) = digest {
                    r = r.with_digest(d).unwrap();
                }
                r = r.with_tag(tag.unwrap()).unwrap();
            } else {
                if let Some(t) = tag {
                    r = r.with_tag(t).unwrap();
                }
                r = r.with_digest(digest.unwrap()).unwrap();
            }
            (r.to_string() != s(c, "combined")).then(|| format!("{file}: got {r}"))
        }
        "parse_named.json" => match ImageReference::parse_canonical(input) {
            Ok(r) if !is_err(c) && r.domain() == s(c, "domain") && r.path() == s(c, "path") => None,
            Err(e) if is_err(c) && e.to_string().ends_with(s(c, "err")) => None,
            other => fail(format!("{other:?}")),
        },
        "validate_reference_name.json" | "validate_remote_name.json" => {
            let valid = c["valid"].as_bool().unwrap();
            let got = ImageReference::parse(input);
            (got.is_ok() != valid).then(|| format!("{file}: {input:?} valid={valid} got {got:?}"))
        }
        "normalize_repository_info.json" => match ImageReference::parse(input) {
            Ok(r)
                if r.familiar_name() == s(c, "familiar")
                    && r.to_string() == s(c, "full")
                    && r.domain() == s(c, "domain")
                    && r.path() == s(c, "path") =>
            {
                None
            }
            other => fail(format!("{other:?}")),
        },
        "normalize_repository_info_raw.json" => {
            // Every input form of the row must normalize to the same full name.
            let full = s(c, "FullName");
            for k in ["FamiliarName", "FullName", "AmbiguousName"] {
                let form = s(c, k);
                if form.is_empty() {
                    continue;
                }
                match ImageReference::parse(form) {
                    Ok(r)
                        if r.to_string() == full
                            && r.familiar_name() == s(c, "FamiliarName")
                            && r.domain() == s(c, "Domain")
                            && r.path() == s(c, "RemoteName") => {}
                    other => return fail(format!("{k}={form:?}: {other:?}")),
                }
            }
            None
        }
        "parse_any_reference.json" => match ImageReference::parse_any(input) {
            Ok(r) => {
                let kind = match r {
                    AnyReference::Named(_) => "named",
                    AnyReference::Digest(_) => "digest",
                };
                (r.to_string() != s(c, "expected") || kind != s(c, "kind"))
                    .then(|| format!("{file}: {input:?} gave {kind} {r}"))
            }
            Err(e) => fail(e.to_string()),
        },
        "normalized_split_hostname.json" => match ImageReference::parse(input) {
            Ok(r) if r.domain() == s(c, "domain") && r.path() == s(c, "path") => None,
            other => fail(format!("{other:?}")),
        },
        "parse_docker_ref.json" => match ImageReference::parse_docker_ref(input) {
            Ok(r) if r.to_string() == s(c, "expected") => None,
            other => fail(format!("{other:?}")),
        },
        "familiar_match.json" => {
            let r = match ImageReference::parse_any(s(c, "reference")).unwrap() {
                AnyReference::Named(r) => r,
                AnyReference::Digest(_) => return fail("digest reference".into()),
            };
            let got = r.familiar_match(s(c, "pattern")).unwrap();
            (got != c["expected"].as_bool().unwrap()).then(|| format!("{file}: got {got}"))
        }
        "normalize.json" => {
            let got = match c.get("from").and_then(Value::as_str) {
                Some("TestParseDockerRef") => {
                    ImageReference::parse_docker_ref(input).map(|r| r.to_string())
                }
                Some("TestParseAnyReference") => {
                    ImageReference::parse_any(input).map(|r| r.to_string())
                }
                _ => ImageReference::parse(input).map(|r| r.to_string()),
            };
            let fam_ok = match opt(c, "familiar") {
                Some(f) => ImageReference::parse(input)
                    .map(|r| r.familiar_name() == f)
                    .unwrap_or(false),
                None => true,
            };
            (got.as_deref().ok() != Some(s(c, "full")) || !fam_ok)
                .then(|| format!("{file}: {input:?} gave {got:?}"))
        }
        "regexp_domain.json" => {
            let want = c["match"].as_bool().unwrap();
            (reference::is_domain_and_port(input) != want)
                .then(|| format!("{file}: {input:?} want {want}"))
        }
        "regexp_full_name.json" => {
            let want = c["match"].as_bool().unwrap();
            let got = reference::split_name(input);
            match (got, want) {
                (None, false) => None,
                (Some((d, p)), true) => {
                    let subs = c.get("subs").and_then(Value::as_array)?;
                    (subs[0] != d || subs[1] != p)
                        .then(|| format!("{file}: {input:?} split {d:?} {p:?}"))
                }
                _ => fail(format!("got {got:?}")),
            }
        }
        "regexp_reference.json" => {
            let want = c["match"].as_bool().unwrap();
            match (reference::split_grammar(input), want) {
                (None, false) => None,
                (Some((n, t, d)), true) => {
                    let subs = c.get("subs").and_then(Value::as_array)?;
                    (subs[0] != n || subs[1] != t.unwrap_or("") || subs[2] != d.unwrap_or(""))
                        .then(|| format!("{file}: {input:?} split {n:?} {t:?} {d:?}"))
                }
                (got, _) => fail(format!("got {got:?}")),
            }
        }
        "regexp_identifier.json" => {
            let want = c["match"].as_bool().unwrap();
            (reference::is_hex_id(input) != want).then(|| format!("{file}: {input:?} want {want}"))
        }
        "manual_imperative_cases.json" => {
            let call = s(c, "call");
            let failed = match call {
                "ParseNormalizedNamed" => match ImageReference::parse(input) {
                    Ok(r) => {
                        is_err(c)
                            || r.to_string() != s(c, "full")
                            || r.familiar_string() != s(c, "familiar_string")
                            || r.tag().is_some() != c["is_tagged"].as_bool().unwrap_or(false)
                            || r.digest_str().is_some()
                                != c["is_canonical"].as_bool().unwrap_or(false)
                    }
                    Err(_) => !is_err(c),
                },
                "WithTag" => {
                    ImageReference::parse(s(c, "base"))
                        .unwrap()
                        .with_tag(s(c, "tag"))
                        .is_ok()
                        == is_err(c)
                }
                "WithDigest" => {
                    ImageReference::parse(s(c, "base"))
                        .unwrap()
                        .with_digest(s(c, "digest"))
                        .is_ok()
                        == is_err(c)
                }
                "FamiliarMatch" => {
                    let r = ImageReference::parse(s(c, "reference")).unwrap();
                    r.familiar_match(s(c, "pattern")).is_ok() == is_err(c)
                }
                other => return fail(format!("unknown call {other}")),
            };
            failed.then(|| format!("{file}: {call} {c}"))
        }
        _ => fail("no checker for this file".into()),
    }
}

#[test]
fn docker_reference_corpus() {
    let Some(dir) = corpus_dir() else { return };
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|f| f.ends_with(".json") && f != "raw_tables.json" && f != "extraction_report.json")
        .collect();
    files.sort();
    let (mut total, mut failures) = (0usize, Vec::new());
    for f in &files {
        let doc: Value = serde_json::from_slice(&std::fs::read(dir.join(f)).unwrap()).unwrap();
        let cases = doc["cases"].as_array().unwrap();
        let mut bad = 0;
        for c in cases {
            total += 1;
            if let Some(msg) = check(f, c) {
                bad += 1;
                failures.push(msg);
            }
        }
        println!("{f:40} {:>3}/{:<3} passed", cases.len() - bad, cases.len());
    }
    println!(
        "docker-reference corpus: {}/{} cases passed",
        total - failures.len(),
        total
    );
    assert!(failures.is_empty(), "failures:\n{}", failures.join("\n"));
    assert!(total > 300, "expected the whole corpus, ran {total}");
}
