//! ValidatingPolicies with `evaluation.mode: Envoy` / `HTTP` (authorization policies).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use base64::Engine as _;
use provenance_core::UnixTime;
use provenance_core::outcome::RuleStatus;
use provenance_policy::Error;
use provenance_policy::cel_policies::validating_policy::{
    Authorization, AuthzResponse, EnvoyHttpResponse, EvaluationMode, HttpCheckResponse,
    ValidatingPolicy,
};
use provenance_policy::lang::cel::ContextData;
use serde_json::{Value, json};

const NOW: UnixTime = UnixTime(1_750_000_000);

fn policy(mode: &str, spec: Value) -> Result<ValidatingPolicy, Error> {
    let mut spec = spec;
    spec["evaluation"] = json!({"mode": mode});
    ValidatingPolicy::from_value(&json!({
        "apiVersion": "policies.kyverno.io/v1",
        "kind": "ValidatingPolicy",
        "metadata": {"name": "authz"},
        "spec": spec,
    }))
}

fn validations(exprs: &[&str]) -> Value {
    json!({"validations": exprs.iter().map(|e| json!({"expression": e})).collect::<Vec<_>>()})
}

fn envoy_request(headers: Value) -> Value {
    json!({"attributes": {"request": {"http": {"method": "GET", "path": "/api", "headers": headers}}}})
}

fn authorize(p: &ValidatingPolicy, request: &Value) -> Authorization {
    p.authorize(request, &ContextData::new(), NOW)
}

fn hs256(claims: Value, key: &str) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let signed = format!(
        "{}.{}",
        b64.encode(br#"{"alg":"HS256","typ":"JWT"}"#),
        b64.encode(claims.to_string())
    );
    let k = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key.as_bytes());
    let tag = aws_lc_rs::hmac::sign(&k, signed.as_bytes());
    format!("{signed}.{}", b64.encode(tag.as_ref()))
}

#[test]
fn envoy_allow_and_deny_with_body_and_headers() {
    let p = policy(
        "Envoy",
        validations(&[
            "object.attributes.request.http.path == '/forbidden' ? envoy.Denied(403).WithBody('no').WithHeader('x-why', 'path').Response() : null",
            "envoy.Allowed().WithHeader(envoy.Header('x-user', 'a').KeepEmptyValue()).WithoutHeader('cookie').Response().WithMessage('ok')",
        ]),
    )
    .unwrap();
    assert_eq!(p.evaluation_mode(), EvaluationMode::Envoy);
    let Authorization::Answer(AuthzResponse::Envoy(ok)) = authorize(&p, &envoy_request(json!({})))
    else {
        panic!("expected an Envoy answer");
    };
    assert_eq!(ok.grpc_status, 0);
    assert_eq!(ok.message, "ok");
    let EnvoyHttpResponse::Ok(ok) = ok.http else {
        panic!("expected an allow");
    };
    assert_eq!(ok.headers.len(), 1);
    assert!(ok.headers[0].keep_empty_value);
    assert_eq!(ok.headers_to_remove, vec!["cookie".to_owned()]);

    let forbidden = json!({"attributes": {"request": {"http": {"path": "/forbidden"}}}});
    let Authorization::Answer(r) = authorize(&p, &forbidden) else {
        panic!("expected an answer");
    };
    assert!(!r.is_allowed());
    let AuthzResponse::Envoy(denied) = r else {
        panic!("expected Envoy");
    };
    assert_eq!(denied.grpc_status, 7);
    let EnvoyHttpResponse::Denied(d) = denied.http else {
        panic!("expected a deny");
    };
    assert_eq!((d.status, d.body.as_str()), (403, "no"));
    assert_eq!(d.headers[0].key, "x-why");

    let rows = p.evaluate_authz_payload(&forbidden, "req.json", &ContextData::new(), NOW);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].status, RuleStatus::Fail);
    assert_eq!(rows[0].message, "request denied with status code 403");
    assert_eq!(rows[0].rule, "authz");
    assert_eq!(rows[0].resource.name, "req.json");
}

#[test]
fn http_allow_deny_and_header_lookup() {
    let p = policy(
        "HTTP",
        validations(&[
            "object.attributes.Header('x-token') == ['s3cret'] ? http.Allowed().Response() : null",
            "http.Denied('token ' + object.attributes.method).Response()",
        ]),
    )
    .unwrap();
    // Header names are canonicalized as Go's textproto does: the request's `X-Token`.
    let allowed = json!({"attributes": {"method": "GET", "header": {"X-Token": ["s3cret"]}}});
    assert_eq!(
        authorize(&p, &allowed),
        Authorization::Answer(AuthzResponse::Http(HttpCheckResponse::Ok))
    );
    let denied = json!({"attributes": {"method": "POST", "header": {"x-token": ["s3cret"]}}});
    let rows = p.evaluate_authz_payload(&denied, "r", &ContextData::new(), NOW);
    assert_eq!(rows[0].status, RuleStatus::Fail);
    assert_eq!(rows[0].message, "request denied, reason: token POST");
    let rows = p.evaluate_authz_payload(&allowed, "r", &ContextData::new(), NOW);
    assert_eq!(
        (rows[0].status, rows[0].message.as_str()),
        (RuleStatus::Pass, "request allowed")
    );
}

#[test]
fn no_response_and_false_match_condition_do_not_answer() {
    let mut spec = validations(&["null"]);
    spec["matchConditions"] =
        json!([{"name": "get", "expression": "object.attributes.request.http.method == 'GET'"}]);
    let p = policy("Envoy", spec).unwrap();
    assert_eq!(
        authorize(&p, &envoy_request(json!({}))),
        Authorization::NoAnswer
    );
    let post = json!({"attributes": {"request": {"http": {"method": "POST"}}}});
    assert_eq!(authorize(&p, &post), Authorization::NoAnswer);
    let rows = p.evaluate_authz_payload(&post, "r", &ContextData::new(), NOW);
    assert_eq!(
        (rows[0].status, rows[0].message.as_str()),
        (RuleStatus::Skip, "request does not match")
    );
}

#[test]
fn cel_error_is_an_error_at_its_validation() {
    let p = policy(
        "Envoy",
        validations(&[
            "null",
            "object.attributes.nope == 1 ? envoy.Allowed().Response() : null",
        ]),
    )
    .unwrap();
    let Authorization::Error { path, error } = authorize(&p, &envoy_request(json!({}))) else {
        panic!("expected an error");
    };
    assert_eq!(path, "spec.validations[1]");
    assert_eq!(error.code(), "policy.cel");
    let rows = p.evaluate_authz_payload(&envoy_request(json!({})), "r", &ContextData::new(), NOW);
    assert_eq!(rows[0].status, RuleStatus::Error);
    let reason = &rows[0].reasons[0];
    assert_eq!(reason.code, "policy.cel");
    assert_eq!(reason.path.as_deref(), Some("spec.validations[1]"));

    // A response of the wrong kind (no `.Response()`) is an error, never an allow.
    let p = policy("Envoy", validations(&["envoy.Allowed()"])).unwrap();
    assert!(matches!(
        authorize(&p, &envoy_request(json!({}))),
        Authorization::Error { .. }
    ));
    let p = policy("HTTP", validations(&["true"])).unwrap();
    assert!(matches!(
        authorize(&p, &json!({"attributes": {}})),
        Authorization::Error { .. }
    ));
}

#[test]
fn failure_policy_ignore_turns_errors_into_no_answer() {
    let mut spec = validations(&["object.attributes.nope ? envoy.Allowed().Response() : null"]);
    spec["failurePolicy"] = json!("Ignore");
    let p = policy("Envoy", spec).unwrap();
    assert_eq!(
        authorize(&p, &envoy_request(json!({}))),
        Authorization::NoAnswer
    );
}

#[test]
fn wrong_payload_shapes_are_errors() {
    let p = policy("Envoy", validations(&["envoy.Allowed().Response()"])).unwrap();
    for bad in [
        json!([]),
        json!("GET"),
        json!({"attributes": {"request": {"http": {"headers": {"a": 1}}}}}),
        json!({"attributes": {"request": {"htp": {}}}}),
        json!({"attributes": {"request": {"http": {"size": "ten"}}}}),
        json!({"attributes": {"request": {"time": "yesterday"}}}),
        json!({"attributes": {"request": {"http": {"method": "GET"}, "http ": {}}}}),
    ] {
        let Authorization::Error { path, error } = authorize(&p, &bad) else {
            panic!("{bad} was accepted");
        };
        assert_eq!(path, "payload", "{bad}");
        assert_eq!(error.code(), "policy.request", "{bad}");
        let rows = p.evaluate_authz_payload(&bad, "r", &ContextData::new(), NOW);
        assert_eq!(rows[0].status, RuleStatus::Error, "{bad}");
    }
    // Proto names and defaults: `context_extensions` is read as `contextExtensions`, absent
    // fields read as their defaults.
    let p = policy(
        "Envoy",
        validations(&["object.attributes.contextExtensions['a'] == 'b' && object.attributes.request.http.method == '' && object.attributes.source.address.socketAddress.portValue == 0 ? envoy.Allowed().Response() : envoy.Denied(401).Response()"]),
    )
    .unwrap();
    let r = authorize(
        &p,
        &json!({"attributes": {"context_extensions": {"a": "b"}}}),
    );
    assert!(matches!(r, Authorization::Answer(a) if a.is_allowed()));

    let p = policy("HTTP", validations(&["http.Allowed().Response()"])).unwrap();
    for bad in [
        json!(null),
        json!({"attributes": {"header": {"a": "b"}}}),
        json!({"attributes": {"contentLength": 1.5}}),
        json!({"attributes": {"body": "not base64!"}}),
        json!({"attributes": {"methd": "GET"}}),
        json!({"attribute": {}}),
    ] {
        assert!(
            matches!(authorize(&p, &bad), Authorization::Error { ref path, .. } if path == "payload"),
            "{bad} was accepted"
        );
    }
}

#[test]
fn jwt_decode_verifies_and_checks_times() {
    let p = policy(
        "Envoy",
        json!({
            "variables": [
                {"name": "auth", "expression": "object.attributes.request.http.headers[?'authorization'].orValue('').split(' ')"},
                {"name": "token", "expression": "size(variables.auth) == 2 ? jwt.Decode(variables.auth[1], 'secret') : null"}
            ],
            "validations": [
                {"expression": "variables.token == null || !variables.token.Valid ? envoy.Denied(401).Response() : null"},
                {"expression": "variables.token.Claims.?role.orValue('') != 'admin' ? envoy.Denied(403).Response() : null"},
                {"expression": "envoy.Allowed().Response()"}
            ]
        }),
    )
    .unwrap();
    let status = |headers: Value| match authorize(&p, &envoy_request(headers)) {
        Authorization::Answer(AuthzResponse::Envoy(r)) => match r.http {
            EnvoyHttpResponse::Ok(_) => 200,
            EnvoyHttpResponse::Denied(d) => d.status,
        },
        other => panic!("{other:?}"),
    };
    let bearer = |claims: Value, key: &str| json!({"authorization": format!("Bearer {}", hs256(claims, key))});
    let later = NOW.0 + 3600;
    assert_eq!(status(json!({})), 401);
    assert_eq!(
        status(bearer(json!({"role": "admin", "exp": later}), "secret")),
        200
    );
    assert_eq!(
        status(bearer(json!({"role": "guest", "exp": later}), "secret")),
        403
    );
    // Expired, or not yet valid: not Valid.
    assert_eq!(
        status(bearer(json!({"role": "admin", "exp": NOW.0}), "secret")),
        401
    );
    assert_eq!(
        status(bearer(json!({"role": "admin", "nbf": later}), "secret")),
        401
    );
    // Signed with another key: an evaluation error, never an allow.
    let r = authorize(
        &p,
        &envoy_request(bearer(json!({"role": "admin"}), "other")),
    );
    assert!(
        matches!(r, Authorization::Error { ref path, .. } if path == "spec.validations[0]"),
        "{r:?}"
    );
    // A token with an audience: the library cannot convert its claims (an error).
    let r = authorize(
        &p,
        &envoy_request(bearer(json!({"role": "admin", "aud": "x"}), "secret")),
    );
    assert!(matches!(r, Authorization::Error { .. }), "{r:?}");
}

#[test]
fn strict_loading() {
    let unsupported = |spec: Value| match policy("Envoy", spec) {
        Err(Error::Unsupported { field }) => field,
        other => panic!("{other:?}"),
    };
    assert!(
        unsupported(json!({"validations": [{"expression": "null", "message": "m"}]}))
            .contains("spec.validations[0].message")
    );
    assert!(
        unsupported(json!({"validations": [], "validationActions": ["Deny"]}))
            .contains("spec.validationActions")
    );
    assert!(
        unsupported(json!({"validations": [], "matchConstraints": {}}))
            .contains("spec.matchConstraints")
    );
    // The libraries of one mode are not the other's.
    assert!(policy("HTTP", validations(&["envoy.Allowed().Response()"])).is_err());
    assert!(policy("Envoy", validations(&["envoy.Denied()"])).is_err());
    assert!(policy("Kubernetes", validations(&["envoy.Allowed()"])).is_err());
    // Such policies never apply to admission requests.
    let p = policy("HTTP", validations(&["http.Allowed().Response()"])).unwrap();
    assert!(
        p.evaluate(&provenance_policy::lang::cel::PolicyInput::create(
            json!({"kind": "Pod"})
        ))
        .is_empty()
    );
    assert!(matches!(
        policy("Grpc", validations(&[])),
        Err(Error::InvalidPolicy { .. })
    ));
}
