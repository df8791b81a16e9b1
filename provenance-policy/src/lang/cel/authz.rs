//! Kyverno's authorization CEL libraries, for ValidatingPolicies with `evaluation.mode: Envoy`
//! or `HTTP`: the response builders (`envoy.Allowed()`, `envoy.Denied(403).WithBody(..)`,
//! `http.Allowed()`, `http.Denied(reason)`, `.Response()`, ...), the HTTP request helpers
//! (`object.attributes.Header(name)`, `.QueryParam(name)`) and `jwt.Decode(token, key)`.
//!
//! Every builder value is an opaque CEL value ([`AuthzValue`]); a validation's result is read
//! back with [`AuthzResponse::from_value`]. Nothing here reads a clock: `jwt.Decode` checks a
//! token's `exp`, `nbf` and `iat` against the `now` the caller passes.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use kube_cel::cel::Value;
use kube_cel::cel::objects::{Key, Map};
use provenance_core::UnixTime;

use super::KyvernoFn;
use super::value::{cel_to_json, json_to_cel, type_name};

/// A header an Envoy response adds or sets (`envoy.Header(key, value)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvoyHeader {
    /// Header name.
    pub key: String,
    /// Header value.
    pub value: String,
    /// `KeepEmptyValue()`: keep the header even when its value is empty.
    pub keep_empty_value: bool,
}

/// An allowing Envoy response (`envoy.Allowed()` and its `With...` builders).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EnvoyOk {
    /// Headers added to the upstream request (`WithHeader`).
    pub headers: Vec<EnvoyHeader>,
    /// Headers removed from the upstream request (`WithoutHeader`).
    pub headers_to_remove: Vec<String>,
    /// Headers added to the downstream response (`WithResponseHeader`).
    pub response_headers_to_add: Vec<EnvoyHeader>,
    /// Query parameters set on the upstream request (`WithQueryParam`).
    pub query_parameters_to_set: Vec<(String, String)>,
    /// Query parameters removed from the upstream request (`WithoutQueryParam`).
    pub query_parameters_to_remove: Vec<String>,
}

/// A denying Envoy response (`envoy.Denied(code)` and its `With...` builders).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EnvoyDenied {
    /// The HTTP status code sent to the client.
    pub status: i32,
    /// The body sent to the client (`WithBody`).
    pub body: String,
    /// Headers sent to the client (`WithHeader`).
    pub headers: Vec<EnvoyHeader>,
}

/// The HTTP part of an Envoy `CheckResponse`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvoyHttpResponse {
    /// The request is allowed.
    Ok(EnvoyOk),
    /// The request is denied.
    Denied(EnvoyDenied),
}

/// An Envoy `CheckResponse` (`.Response()` of an allowing or denying response).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvoyCheckResponse {
    /// The gRPC status code: 0 (OK) when allowed, 7 (PERMISSION_DENIED) when denied.
    pub grpc_status: i32,
    /// The gRPC status message (`WithMessage`).
    pub message: String,
    /// Allowed or denied, with what Envoy does to the request or answers.
    pub http: EnvoyHttpResponse,
    /// `WithMetadata`: dynamic metadata for later filters (a JSON object).
    pub dynamic_metadata: Option<serde_json::Value>,
}

/// A response of the HTTP authorization library (`http.Allowed().Response()`,
/// `http.Denied(reason).Response()`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpCheckResponse {
    /// The request is allowed.
    Ok,
    /// The request is denied, with a reason.
    Denied {
        /// Why.
        reason: String,
    },
}

/// What an Envoy or HTTP authorization policy answers for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthzResponse {
    /// An Envoy `CheckResponse`.
    Envoy(EnvoyCheckResponse),
    /// An HTTP check response.
    Http(HttpCheckResponse),
}

impl AuthzResponse {
    /// Whether the request is allowed.
    pub fn is_allowed(&self) -> bool {
        matches!(
            self,
            AuthzResponse::Envoy(EnvoyCheckResponse {
                http: EnvoyHttpResponse::Ok(_),
                ..
            }) | AuthzResponse::Http(HttpCheckResponse::Ok)
        )
    }

    /// Reads a validation's value: `Some` for a response of the given library, `None` for
    /// `null` (the validation has no opinion), `Err` for anything else.
    pub fn from_value(v: &Value, envoy: bool) -> Result<Option<AuthzResponse>, String> {
        let expected = if envoy {
            "envoy.service.auth.v3.CheckResponse"
        } else {
            "http.CheckResponse"
        };
        match v {
            Value::Null => Ok(None),
            Value::Opaque(o) => match o.downcast_ref::<AuthzValue>() {
                Some(AuthzValue::EnvoyResponse(r)) if envoy => {
                    Ok(Some(AuthzResponse::Envoy(r.clone())))
                }
                Some(AuthzValue::HttpResponse(r)) if !envoy => {
                    Ok(Some(AuthzResponse::Http(r.clone())))
                }
                _ => Err(format!(
                    "rule response output is expected to be of type {expected}, got {}",
                    type_name(v)
                )),
            },
            other => Err(format!(
                "rule response output is expected to be of type {expected}, got {}",
                type_name(other)
            )),
        }
    }
}

/// A value of the authorization libraries, as CEL expressions build it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthzValue {
    /// `envoy.Allowed()`
    EnvoyOk(EnvoyOk),
    /// `envoy.Denied(code)`
    EnvoyDenied(EnvoyDenied),
    /// `envoy.Header(key, value)`
    EnvoyHeader(EnvoyHeader),
    /// `envoy.QueryParam(key, value)`
    EnvoyQueryParam(String, String),
    /// `.Response()` of an Envoy response.
    EnvoyResponse(EnvoyCheckResponse),
    /// `http.Allowed()`
    HttpOk,
    /// `http.Denied(reason)`
    HttpDenied(String),
    /// `.Response()` of an HTTP response.
    HttpResponse(HttpCheckResponse),
}

impl kube_cel::cel::objects::Opaque for AuthzValue {
    fn runtime_type_name(&self) -> &str {
        match self {
            AuthzValue::EnvoyOk(_) => "envoy.service.auth.v3.OkHttpResponse",
            AuthzValue::EnvoyDenied(_) => "envoy.service.auth.v3.DeniedHttpResponse",
            AuthzValue::EnvoyHeader(_) => "envoy.config.core.v3.HeaderValueOption",
            AuthzValue::EnvoyQueryParam(..) => "envoy.config.core.v3.QueryParameter",
            AuthzValue::EnvoyResponse(_) => "envoy.service.auth.v3.CheckResponse",
            AuthzValue::HttpOk => "http.CheckResponseOk",
            AuthzValue::HttpDenied(_) => "http.CheckResponseDenied",
            AuthzValue::HttpResponse(_) => "http.CheckResponse",
        }
    }
}

/// Methods of the authorization libraries' values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthzMethod {
    Response,
    WithBody,
    WithHeader,
    WithoutHeader,
    WithResponseHeader,
    WithQueryParam,
    WithoutQueryParam,
    KeepEmptyValue,
    WithMessage,
    WithMetadata,
    /// `object.attributes.Header(name)` (HTTP requests).
    Header,
    /// `object.attributes.QueryParam(name)` (HTTP requests).
    QueryParam,
}

impl AuthzMethod {
    /// The method called `name` with `argc` arguments, in the Envoy (`envoy`) or HTTP library.
    pub(crate) fn lookup(name: &str, argc: usize, envoy: bool) -> Option<AuthzMethod> {
        Some(match (name, argc, envoy) {
            ("Response", 0, _) => AuthzMethod::Response,
            ("WithBody", 1, true) => AuthzMethod::WithBody,
            ("WithHeader", 1 | 2, true) => AuthzMethod::WithHeader,
            ("WithoutHeader", 1, true) => AuthzMethod::WithoutHeader,
            ("WithResponseHeader", 1 | 2, true) => AuthzMethod::WithResponseHeader,
            ("WithQueryParam", 1 | 2, true) => AuthzMethod::WithQueryParam,
            ("WithoutQueryParam", 1, true) => AuthzMethod::WithoutQueryParam,
            ("KeepEmptyValue", 0 | 1, true) => AuthzMethod::KeepEmptyValue,
            ("WithMessage", 1, true) => AuthzMethod::WithMessage,
            ("WithMetadata", 1, true) => AuthzMethod::WithMetadata,
            ("Header", 1, false) => AuthzMethod::Header,
            ("QueryParam", 1, false) => AuthzMethod::QueryParam,
            _ => return None,
        })
    }
}

fn opaque(v: AuthzValue) -> Value {
    Value::Opaque(Arc::new(v))
}

fn as_authz(v: &Value) -> Option<&AuthzValue> {
    match v {
        Value::Opaque(o) => o.downcast_ref::<AuthzValue>(),
        _ => None,
    }
}

fn string_arg<'a>(f: &str, args: &'a [Value], i: usize) -> Result<&'a str, String> {
    match args.get(i) {
        Some(Value::String(s)) => Ok(s.as_str()),
        Some(other) => Err(format!(
            "{f}: argument {} must be a string, got {}",
            i + 1,
            type_name(other)
        )),
        None => Err(format!("{f}: missing argument {}", i + 1)),
    }
}

fn no_overload(f: &str, target: &Value, args: &[Value]) -> String {
    let mut types = vec![type_name(target)];
    types.extend(args.iter().map(type_name));
    format!(
        "found no matching overload for '{f}' applied to ({})",
        types.join(", ")
    )
}

/// Calls a global function of the authorization libraries (`envoy.*`, `http.Allowed/Denied`,
/// `jwt.Decode`).
pub(crate) fn call(f: KyvernoFn, args: &[Value], now: UnixTime) -> Result<Value, String> {
    match f {
        KyvernoFn::EnvoyAllowed => Ok(opaque(AuthzValue::EnvoyOk(EnvoyOk::default()))),
        KyvernoFn::EnvoyDenied => match args.first() {
            Some(Value::Int(code)) => {
                let status = i32::try_from(*code)
                    .map_err(|_| format!("envoy.Denied: status code {code} is out of range"))?;
                Ok(opaque(AuthzValue::EnvoyDenied(EnvoyDenied {
                    status,
                    ..EnvoyDenied::default()
                })))
            }
            Some(other) => Err(format!(
                "envoy.Denied: the status code must be an int, got {}",
                type_name(other)
            )),
            None => Err("envoy.Denied: missing status code".to_owned()),
        },
        KyvernoFn::EnvoyHeader => Ok(opaque(AuthzValue::EnvoyHeader(EnvoyHeader {
            key: string_arg("envoy.Header", args, 0)?.to_owned(),
            value: string_arg("envoy.Header", args, 1)?.to_owned(),
            keep_empty_value: false,
        }))),
        KyvernoFn::EnvoyQueryParam => Ok(opaque(AuthzValue::EnvoyQueryParam(
            string_arg("envoy.QueryParam", args, 0)?.to_owned(),
            string_arg("envoy.QueryParam", args, 1)?.to_owned(),
        ))),
        KyvernoFn::HttpAllowed => Ok(opaque(AuthzValue::HttpOk)),
        KyvernoFn::HttpDenied => Ok(opaque(AuthzValue::HttpDenied(
            string_arg("http.Denied", args, 0)?.to_owned(),
        ))),
        KyvernoFn::JwtDecode => jwt_decode(
            string_arg("jwt.Decode", args, 0)?,
            string_arg("jwt.Decode", args, 1)?,
            now,
        ),
        other => Err(format!(
            "{other:?} is not available in an authorization policy"
        )),
    }
}

/// A header from `args` at `i`: `envoy.Header(..)` (one argument) or key and value (two).
fn header_args(f: &str, args: &[Value]) -> Result<EnvoyHeader, String> {
    match args {
        [h] => match as_authz(h) {
            Some(AuthzValue::EnvoyHeader(h)) => Ok(h.clone()),
            _ => Err(format!(
                "{f}: expected envoy.config.core.v3.HeaderValueOption, got {}",
                type_name(h)
            )),
        },
        _ => Ok(EnvoyHeader {
            key: string_arg(f, args, 0)?.to_owned(),
            value: string_arg(f, args, 1)?.to_owned(),
            keep_empty_value: false,
        }),
    }
}

/// Calls a method of the authorization libraries on `target`.
pub(crate) fn method(m: AuthzMethod, target: &Value, args: &[Value]) -> Result<Value, String> {
    let name = format!("{m:?}");
    let fail = || no_overload(&name, target, args);
    if matches!(m, AuthzMethod::Header | AuthzMethod::QueryParam) {
        return request_values(m, target, args).ok_or_else(fail)?;
    }
    let Some(t) = as_authz(target) else {
        return Err(fail());
    };
    let out = match (m, t) {
        (AuthzMethod::Response, AuthzValue::EnvoyOk(ok)) => {
            AuthzValue::EnvoyResponse(EnvoyCheckResponse {
                grpc_status: 0,
                message: String::new(),
                http: EnvoyHttpResponse::Ok(ok.clone()),
                dynamic_metadata: None,
            })
        }
        (AuthzMethod::Response, AuthzValue::EnvoyDenied(d)) => {
            AuthzValue::EnvoyResponse(EnvoyCheckResponse {
                grpc_status: 7,
                message: String::new(),
                http: EnvoyHttpResponse::Denied(d.clone()),
                dynamic_metadata: None,
            })
        }
        (AuthzMethod::Response, AuthzValue::HttpOk) => {
            AuthzValue::HttpResponse(HttpCheckResponse::Ok)
        }
        (AuthzMethod::Response, AuthzValue::HttpDenied(reason)) => {
            AuthzValue::HttpResponse(HttpCheckResponse::Denied {
                reason: reason.clone(),
            })
        }
        (AuthzMethod::WithBody, AuthzValue::EnvoyDenied(d)) => {
            let mut d = d.clone();
            d.body = string_arg(&name, args, 0)?.to_owned();
            AuthzValue::EnvoyDenied(d)
        }
        (AuthzMethod::WithHeader, AuthzValue::EnvoyOk(ok)) => {
            let mut ok = ok.clone();
            ok.headers.push(header_args(&name, args)?);
            AuthzValue::EnvoyOk(ok)
        }
        (AuthzMethod::WithHeader, AuthzValue::EnvoyDenied(d)) => {
            let mut d = d.clone();
            d.headers.push(header_args(&name, args)?);
            AuthzValue::EnvoyDenied(d)
        }
        (AuthzMethod::WithoutHeader, AuthzValue::EnvoyOk(ok)) => {
            let mut ok = ok.clone();
            ok.headers_to_remove
                .push(string_arg(&name, args, 0)?.to_owned());
            AuthzValue::EnvoyOk(ok)
        }
        (AuthzMethod::WithResponseHeader, AuthzValue::EnvoyOk(ok)) => {
            let mut ok = ok.clone();
            ok.response_headers_to_add.push(header_args(&name, args)?);
            AuthzValue::EnvoyOk(ok)
        }
        (AuthzMethod::WithQueryParam, AuthzValue::EnvoyOk(ok)) => {
            let mut ok = ok.clone();
            let param = match args {
                [p] => match as_authz(p) {
                    Some(AuthzValue::EnvoyQueryParam(k, v)) => (k.clone(), v.clone()),
                    _ => return Err(fail()),
                },
                _ => (
                    string_arg(&name, args, 0)?.to_owned(),
                    string_arg(&name, args, 1)?.to_owned(),
                ),
            };
            ok.query_parameters_to_set.push(param);
            AuthzValue::EnvoyOk(ok)
        }
        (AuthzMethod::WithoutQueryParam, AuthzValue::EnvoyOk(ok)) => {
            let mut ok = ok.clone();
            ok.query_parameters_to_remove
                .push(string_arg(&name, args, 0)?.to_owned());
            AuthzValue::EnvoyOk(ok)
        }
        (AuthzMethod::KeepEmptyValue, AuthzValue::EnvoyHeader(h)) => {
            let keep = match args.first() {
                None => true,
                Some(Value::Bool(b)) => *b,
                Some(_) => return Err(fail()),
            };
            AuthzValue::EnvoyHeader(EnvoyHeader {
                keep_empty_value: keep,
                ..h.clone()
            })
        }
        (AuthzMethod::WithMessage, AuthzValue::EnvoyResponse(r)) => {
            let mut r = r.clone();
            r.message = string_arg(&name, args, 0)?.to_owned();
            AuthzValue::EnvoyResponse(r)
        }
        (AuthzMethod::WithMetadata, AuthzValue::EnvoyResponse(r)) => {
            let mut r = r.clone();
            let meta = match args.first() {
                Some(v @ Value::Map(_)) => cel_to_json(v).map_err(|e| format!("{name}: {e}"))?,
                _ => return Err(fail()),
            };
            r.dynamic_metadata = Some(meta);
            AuthzValue::EnvoyResponse(r)
        }
        _ => return Err(fail()),
    };
    Ok(opaque(out))
}

/// `Header(name)` / `QueryParam(name)` on HTTP request attributes: the values of the header
/// (name canonicalized as Go's `textproto` does) or query parameter, empty when absent.
/// `None`: the target is not request attributes.
fn request_values(m: AuthzMethod, target: &Value, args: &[Value]) -> Option<Result<Value, String>> {
    let Value::Map(attrs) = target else {
        return None;
    };
    let Some(Value::String(key)) = args.first() else {
        return None;
    };
    let (field, key) = match m {
        AuthzMethod::Header => ("header", canonical_header_key(key)),
        _ => ("query", key.as_str().to_owned()),
    };
    let Some(Value::Map(values)) = attrs.map.get(&Key::String(Arc::new(field.to_owned()))) else {
        return None;
    };
    Some(Ok(match values.map.get(&Key::String(Arc::new(key))) {
        Some(v @ Value::List(_)) => v.clone(),
        _ => Value::List(Arc::new(Vec::new())),
    }))
}

/// Go's `textproto.CanonicalMIMEHeaderKey`: the first letter and each letter after a hyphen
/// upper case, the rest lower case; a key with a space or a byte outside the header token
/// alphabet is returned unchanged.
pub(crate) fn canonical_header_key(key: &str) -> String {
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if !key.bytes().all(token) {
        return key.to_owned();
    }
    let mut upper = true;
    key.bytes()
        .map(|b| {
            let c = if upper {
                b.to_ascii_uppercase()
            } else {
                b.to_ascii_lowercase()
            };
            upper = b == b'-';
            char::from(c)
        })
        .collect()
}

/// Claims whose values are points in time, as the JWT library parses them.
const TIME_CLAIMS: [&str; 3] = ["exp", "nbf", "iat"];

/// `jwt.Decode(token, key)`: verifies a compact JWS signed with HMAC (HS256, HS384, HS512)
/// under `key`, and returns `{Claims, Valid}`: the claims as a JSON-like map (numbers as
/// doubles, times as Unix seconds; `null` when there are none) and whether `exp`, `nbf` and
/// `iat` hold at `now`. A token that does not parse or verify is an error.
fn jwt_decode(token: &str, key: &str, now: UnixTime) -> Result<Value, String> {
    let err = |m: &str| Err(format!("jwt.Decode: {m}"));
    if key.is_empty() {
        return err("the key is empty");
    }
    let parts: Vec<&str> = token.split('.').collect();
    let [header, payload, signature] = parts.as_slice() else {
        return err("the token is not a compact JWS (three dot-separated parts)");
    };
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let decode_json = |part: &str, what: &str| -> Result<serde_json::Value, String> {
        let bytes = b64
            .decode(part)
            .map_err(|e| format!("jwt.Decode: the {what} is not base64url: {e}"))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| format!("jwt.Decode: the {what} is not JSON: {e}"))
    };
    let header = decode_json(header, "header")?;
    let alg = header
        .get("alg")
        .and_then(|a| a.as_str())
        .unwrap_or_default();
    let algorithm = match alg {
        "HS256" => aws_lc_rs::hmac::HMAC_SHA256,
        "HS384" => aws_lc_rs::hmac::HMAC_SHA384,
        "HS512" => aws_lc_rs::hmac::HMAC_SHA512,
        other => {
            return Err(format!(
                "jwt.Decode: a symmetric key cannot verify a token signed with {other:?}"
            ));
        }
    };
    let sig = b64
        .decode(signature)
        .map_err(|e| format!("jwt.Decode: the signature is not base64url: {e}"))?;
    let signed = &token[..token.len() - signature.len() - 1];
    let hkey = aws_lc_rs::hmac::Key::new(algorithm, key.as_bytes());
    if aws_lc_rs::hmac::verify(&hkey, signed.as_bytes(), &sig).is_err() {
        return err("the signature does not verify with the key");
    }
    let claims = decode_json(payload, "payload")?;
    let Some(claims) = claims.as_object() else {
        return err("the payload is not a JSON object");
    };
    let mut times = HashMap::new();
    let mut out = serde_json::Map::new();
    for (name, value) in claims {
        let converted = match name.as_str() {
            n if TIME_CLAIMS.contains(&n) => {
                let secs = numeric_date(value)
                    .ok_or_else(|| format!("jwt.Decode: claim {n:?} is not a numeric date"))?;
                times.insert(n, secs);
                serde_json::json!(secs as f64)
            }
            "iss" | "sub" | "jti" => {
                if !value.is_string() {
                    return Err(format!("jwt.Decode: claim {name:?} must be a string"));
                }
                value.clone()
            }
            // The library reads `aud` as a list of strings, which its claim conversion
            // cannot represent: a token with an audience is an error.
            "aud" => return err("claim \"aud\" (a list of strings) cannot be converted"),
            _ => doubles(value),
        };
        out.insert(name.clone(), converted);
    }
    let t = now.0;
    let valid = times.get("exp").is_none_or(|exp| t < *exp)
        && times.get("nbf").is_none_or(|nbf| t >= *nbf)
        && times.get("iat").is_none_or(|iat| *iat <= t);
    let claims = if out.is_empty() {
        Value::Null
    } else {
        json_to_cel(&serde_json::Value::Object(out)).map_err(|e| format!("jwt.Decode: {e}"))?
    };
    let mut token = HashMap::new();
    token.insert(Key::String(Arc::new("Claims".to_owned())), claims);
    token.insert(
        Key::String(Arc::new("Valid".to_owned())),
        Value::Bool(valid),
    );
    Ok(Value::Map(Map {
        map: Arc::new(token),
    }))
}

/// A JWT numeric date: a number (fractions dropped) or a string holding one.
fn numeric_date(v: &serde_json::Value) -> Option<i64> {
    match v {
        serde_json::Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite() && f.abs() < 9.0e15)
                .map(|f| f.trunc() as i64)
        }),
        serde_json::Value::String(s) => s
            .parse::<f64>()
            .ok()
            .and_then(|f| (f.is_finite() && f.abs() < 9.0e15).then(|| f.trunc() as i64)),
        _ => None,
    }
}

/// A JSON value with every number a double (as a protobuf `Struct` holds numbers).
fn doubles(v: &serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Number(n) => n
            .as_f64()
            .and_then(serde_json::Number::from_f64)
            .map_or(serde_json::Value::Null, serde_json::Value::Number),
        serde_json::Value::Array(a) => serde_json::Value::Array(a.iter().map(doubles).collect()),
        serde_json::Value::Object(o) => {
            serde_json::Value::Object(o.iter().map(|(k, x)| (k.clone(), doubles(x))).collect())
        }
        other => other.clone(),
    }
}
