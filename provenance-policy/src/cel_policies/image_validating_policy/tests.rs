use provenance_core::verify::Expectation;
use serde_json::json;

use super::load::{glob_to_regex, predicate_type};
use super::verify::{annotations_match, cosign_expectations};
use super::*;

fn glob(p: &str, s: &str) -> bool {
    match glob_to_regex(p) {
        Ok(re) => re.is_match(s),
        Err(e) => panic!("{p}: {e}"),
    }
}

#[test]
fn globs_match_as_gobwas_without_separators() {
    assert!(glob(
        "ghcr.io/*",
        "ghcr.io/kyverno/test-verify-image:signed"
    ));
    assert!(!glob("ghcr.io/*", "docker.io/ghcr.io/x"));
    assert!(glob("*", ""));
    assert!(glob(
        "docker.io/library/busy?ox:1",
        "docker.io/library/busybox:1"
    ));
    assert!(!glob(
        "docker.io/library/busy?ox:1",
        "docker.io/library/busyox:1"
    ));
    assert!(glob("reg.test/{a,b}/*", "reg.test/b/x"));
    assert!(!glob("reg.test/{a,b}/*", "reg.test/c/x"));
    assert!(glob("reg.test/[a-c]x", "reg.test/bx"));
    assert!(!glob("reg.test/[!a-c]x", "reg.test/bx"));
    assert!(glob("reg.test/[!a-c]x", "reg.test/dx"));
    assert!(glob(r"reg.test/\*", "reg.test/*"));
    assert!(!glob(r"reg.test/\*", "reg.test/a"));
    // Regular-expression characters are literal.
    assert!(!glob("reg.test/a+b", "reg.test/aab"));
    assert!(glob("reg.test/a+b(c)", "reg.test/a+b(c)"));
    for bad in ["reg.test/[a", "reg.test/{a,b", "reg.test/\\"] {
        assert!(glob_to_regex(bad).is_err(), "{bad}");
    }
}

#[test]
fn cosign_predicate_short_names() {
    assert_eq!(
        predicate_type("slsaprovenance1"),
        "https://slsa.dev/provenance/v1"
    );
    assert_eq!(predicate_type("cyclonedx"), "https://cyclonedx.org/bom");
    assert_eq!(
        predicate_type("https://example.com/custom"),
        "https://example.com/custom"
    );
}

#[test]
fn attestor_options() {
    let key = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE7c0Y2e+L3WkeMLgTTZ3y0Kxl1Dgi\nR1R0ufBKTv3lj6XbD7zUyIDF4dDdxBDUVYbl3OBVQwqu7NcldcZ2ZmnCOA==\n-----END PUBLIC KEY-----\n";
    let ok = |v: Json| cosign_expectations("a", &v).map(|(e, _)| e);
    let Ok(e) =
        ok(json!({"cosign": {"key": {"data": key}, "ctlog": {"insecureIgnoreTlog": true}}}))
    else {
        panic!("key attestor")
    };
    assert!(matches!(
        e.as_slice(),
        [Expectation::Key {
            allow_no_transparency: true,
            ..
        }]
    ));
    let Ok(e) = ok(json!({"cosign": {"keyless": {"identities": [
        {"subject": "a@example.com", "issuer": "https://accounts.google.com"},
        {"subjectRegExp": ".*@example.com", "issuerRegExp": ".*"}
    ]}, "ctlog": {"url": "https://rekor.example"}}})) else {
        panic!("keyless attestor")
    };
    assert_eq!(e.len(), 2);
    if let Some((id, checks)) = e[0].keyless() {
        assert!(checks.transparency_log && checks.sct);
        assert_eq!(id.subject_exact.as_deref(), Some("a@example.com"));
        assert_eq!(id.subject, None);
    } else {
        panic!("keyless expectation");
    }
    for (v, what) in [
        (json!({"notary": {"certs": {"value": "x"}}}), "notary"),
        (json!({"cosign": {"key": {"kms": "awskms:///x"}}}), "kms"),
        (
            json!({"cosign": {"key": {"data": key, "hashAlgorithm": "sha512"}}}),
            "hashAlgorithm",
        ),
        (
            json!({"cosign": {"certificate": {"cert": {"value": "x"}, "certChain": {"value": "y"}}}}),
            "certChain",
        ),
        (
            json!({"cosign": {"keyless": {"identities": [{"subjectExpression": "x"}]}}}),
            "subjectExpression",
        ),
        (
            json!({"cosign": {"key": {"data": key}, "source": {"repository": "r"}}}),
            "source",
        ),
        (
            json!({"cosign": {"key": {"data": key}, "tuf": {"mirror": "https://tuf.example"}}}),
            "tuf",
        ),
    ] {
        match ok(v) {
            Err(e) => {
                assert!(e.unsupported, "{}", e.message);
                assert!(e.message.contains(what), "{}", e.message);
            }
            Ok(_) => panic!("{what} must be unsupported"),
        }
    }
    // Trust material written in the attestor: read, and malformed material is an error.
    let with = |v: Json| cosign_expectations("a", &v);
    let Ok((e, t)) = with(
        json!({"cosign": {"keyless": {"identities": [{"subject": "s", "issuer": "i"}]},
        "ctlog": {"insecureIgnoreTlog": true, "insecureIgnoreSCT": true, "rekorPubKey": key}}}),
    ) else {
        panic!("keyless attestor with a Rekor key")
    };
    let (_, checks) = e[0].keyless().unwrap();
    assert!(!checks.transparency_log && !checks.sct);
    assert_eq!(t.rekor_keys.as_ref().map(Vec::len), Some(1));
    for (v, what) in [
        (
            json!({"cosign": {"key": {"data": key}, "ctlog": {"rekorPubKey": "x"}}}),
            "rekorPubKey",
        ),
        (
            json!({"cosign": {"keyless": {"roots": "x", "identities": [{"subject": "s"}]}}}),
            "roots",
        ),
        (
            json!({"cosign": {"key": {"data": key}, "trustedRoot": {"value": "{}"}}}),
            "trustedRoot",
        ),
        (
            json!({"cosign": {"key": {"data": key}, "trustedRoot": {"value": "{}"}, "ctlog": {"rekorPubKey": key}}}),
            "rekorPubKey",
        ),
    ] {
        match with(v) {
            Err(e) => {
                assert!(!e.unsupported, "{}", e.message);
                assert!(e.message.contains("policy.trust.invalid"), "{}", e.message);
                assert!(e.message.contains(what), "{}", e.message);
            }
            Ok(_) => panic!("malformed {what} must be an error"),
        }
    }
    assert!(ok(json!({"cosign": {"key": {"data": "not a key"}}})).is_err());
    assert!(ok(json!({"cosign": {}})).is_err());
}

#[test]
fn annotations_are_checked_on_the_signed_payload() {
    let att = json!({"cosign": {"annotations": {"team": "ml"}}});
    assert!(annotations_match(
        &att,
        br#"{"optional": {"team": "ml", "x": "y"}}"#
    ));
    assert!(!annotations_match(
        &att,
        br#"{"optional": {"team": "web"}}"#
    ));
    assert!(!annotations_match(&att, b"{}"));
    assert!(!annotations_match(&att, b""));
    assert!(annotations_match(&json!({"cosign": {}}), b""));
}
