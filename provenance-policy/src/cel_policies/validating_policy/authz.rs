//! ValidatingPolicies with `evaluation.mode: Envoy` or `HTTP`: authorization policies that
//! answer an Envoy `CheckRequest` or an HTTP request with allow or deny, as Kyverno's
//! authorization server and `kyverno test` (`envoyPayloads`, `httpPayloads`) evaluate them.
//!
//! `object` is the request, checked against its schema first and completed with the default
//! of every field it leaves out (as the protobuf message or Go structure Kyverno decodes it
//! into reads). `matchConditions` (false: the policy does not answer), lazy `variables`, then
//! `validations` in order: the first that gives a response (not `null`) is the answer; none:
//! the policy does not answer. An evaluation error is an error unless `failurePolicy: Ignore`
//! (then the policy does not answer).

use provenance_core::UnixTime;
use provenance_core::outcome::{Reason, RuleResult, RuleStatus};
use serde_json::{Map, Value};

use super::{FailurePolicy, PolicyInput, ReasonExt, ValidatingPolicy};
use crate::Error;
use crate::lang::cel::authz::{AuthzResponse, EnvoyHttpResponse, HttpCheckResponse};
use crate::lang::cel::{
    ContextData, KyvernoFn, MatchConditions, PolicyFunctions, RequestView, VariableScope,
    evaluate_match_conditions,
};

/// What an authorization policy makes of one request.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Authorization {
    /// The policy does not answer: a match condition is false, no validation gave a
    /// response, or an error was ignored (`failurePolicy: Ignore`).
    NoAnswer,
    /// The first response a validation gave.
    Answer(AuthzResponse),
    /// The request could not be evaluated (fail closed: never an allow).
    Error {
        /// Where: `payload`, `spec.matchConditions`, `spec.validations[N]`, ...
        path: String,
        /// What went wrong.
        error: Error,
    },
}

struct Clock(UnixTime);

impl PolicyFunctions for Clock {
    fn call(
        &self,
        f: KyvernoFn,
        args: &[crate::lang::cel::Value],
    ) -> Result<crate::lang::cel::Value, String> {
        crate::lang::cel::authz::call(f, args, self.0)
    }
}

impl ValidatingPolicy {
    /// Whether the policy is an Envoy authorization policy (`evaluation.mode: Envoy`).
    pub fn is_envoy_mode(&self) -> bool {
        self.mode == super::EvaluationMode::Envoy
    }

    /// Whether the policy is an HTTP authorization policy (`evaluation.mode: HTTP`).
    pub fn is_http_mode(&self) -> bool {
        self.mode == super::EvaluationMode::Http
    }

    /// Evaluates an Envoy (`evaluation.mode: Envoy`) or HTTP (`HTTP`) authorization policy
    /// against one request, given as the JSON of an Envoy `CheckRequest` (protobuf JSON) or of
    /// Kyverno's HTTP `CheckRequest` (`{"attributes": {"method", "header", "path", ...}}`).
    /// `now` is the time `jwt.Decode` checks tokens against; `context` answers the CEL
    /// context libraries. A request that does not fit the schema is an
    /// [`Authorization::Error`] at `payload`. A policy of any other mode is an error too.
    pub fn authorize(
        &self,
        request: &Value,
        context: &ContextData,
        now: UnixTime,
    ) -> Authorization {
        let envoy = match self.mode {
            super::EvaluationMode::Envoy => true,
            super::EvaluationMode::Http => false,
            _ => {
                return Authorization::Error {
                    path: "spec.evaluation.mode".to_owned(),
                    error: Error::InvalidRequest {
                        reason: format!(
                            "ValidatingPolicy {} is not an Envoy or HTTP authorization policy",
                            self.name
                        ),
                    },
                };
            }
        };
        let object = match if envoy {
            normalize_envoy(request)
        } else {
            normalize_http(request)
        } {
            Ok(o) => o,
            Err(reason) => {
                return Authorization::Error {
                    path: "payload".to_owned(),
                    error: Error::InvalidRequest { reason },
                };
            }
        };
        let mut input = PolicyInput::create(object);
        input.context = context.clone();
        let view = RequestView::new(&input);
        let clock = Clock(now);
        let scope = VariableScope::new(&view, &self.variables).with_functions(&clock);
        let ignore = self.failure_policy == FailurePolicy::Ignore;
        let error = |path: String, error: Error| {
            if ignore {
                Authorization::NoAnswer
            } else {
                Authorization::Error { path, error }
            }
        };
        match evaluate_match_conditions(&self.match_conditions, &scope) {
            MatchConditions::Hold => {}
            MatchConditions::False => return Authorization::NoAnswer,
            MatchConditions::Errors { first, .. } => {
                return error("spec.matchConditions".to_owned(), first);
            }
        }
        for (index, v) in self.validations.iter().enumerate() {
            let path = format!("spec.validations[{index}]");
            let value = match v.expression.evaluate_in(&scope) {
                Ok(value) => value,
                Err(e) => return error(path, e),
            };
            match AuthzResponse::from_value(&value, envoy) {
                Ok(None) => continue,
                Ok(Some(r)) => return Authorization::Answer(r),
                Err(reason) => {
                    return error(
                        path,
                        Error::Cel {
                            expression: v.expression.source().to_owned(),
                            reason,
                        },
                    );
                }
            }
        }
        Authorization::NoAnswer
    }

    /// [`ValidatingPolicy::authorize`] as the results `kyverno test` reports for an
    /// `envoyPayloads` / `httpPayloads` entry: one result named after the policy, on the
    /// resource `name`: `pass` ("request allowed"), `fail` ("request denied with status code
    /// N" for Envoy, "request denied, reason: R" for HTTP), `skip` ("request does not match")
    /// or `error`.
    pub fn evaluate_authz_payload(
        &self,
        request: &Value,
        name: &str,
        context: &ContextData,
        now: UnixTime,
    ) -> Vec<RuleResult> {
        let resource = provenance_core::ResourceRef {
            api_version: String::new(),
            kind: String::new(),
            namespace: String::new(),
            name: name.to_owned(),
        };
        let result = |status: RuleStatus, message: String| {
            RuleResult::new(
                self.name.clone(),
                self.name.clone(),
                resource.clone(),
                status,
                message,
            )
        };
        vec![match self.authorize(request, context, now) {
            Authorization::NoAnswer => {
                result(RuleStatus::Skip, "request does not match".to_owned())
            }
            Authorization::Answer(r) => match r {
                AuthzResponse::Envoy(e) => match e.http {
                    EnvoyHttpResponse::Ok(_) => {
                        result(RuleStatus::Pass, "request allowed".to_owned())
                    }
                    EnvoyHttpResponse::Denied(d) => result(
                        RuleStatus::Fail,
                        format!("request denied with status code {}", d.status),
                    ),
                },
                AuthzResponse::Http(HttpCheckResponse::Ok) => {
                    result(RuleStatus::Pass, "request allowed".to_owned())
                }
                AuthzResponse::Http(HttpCheckResponse::Denied { reason }) => result(
                    RuleStatus::Fail,
                    format!("request denied, reason: {reason}"),
                ),
            },
            Authorization::Error { path, error } => result(RuleStatus::Error, error.to_string())
                .with_reason(Reason::from_error(&error).at(path)),
        }]
    }
}

/// The type of a field of a protobuf message, as protobuf JSON writes it.
#[derive(Clone, Copy)]
enum Ty {
    Str,
    Int64,
    UInt32,
    Bool,
    Bytes,
    /// `map<string, string>`
    StrMap,
    /// `map<string, google.protobuf.Struct>`
    StructMap,
    /// `map<string, google.protobuf.Any>`: refused unless empty (no type registry here).
    AnyMap,
    Timestamp,
    Enum(&'static [&'static str]),
    Msg(&'static [Field]),
    List(&'static [Field]),
}

/// A protobuf field: its JSON name, its proto name and its type.
struct Field(&'static str, &'static str, Ty);

const SOCKET_ADDRESS: &[Field] = &[
    Field("protocol", "protocol", Ty::Enum(&["TCP", "UDP"])),
    Field("address", "address", Ty::Str),
    Field("portValue", "port_value", Ty::UInt32),
    Field("namedPort", "named_port", Ty::Str),
    Field("resolverName", "resolver_name", Ty::Str),
    Field("ipv4Compat", "ipv4_compat", Ty::Bool),
    Field(
        "networkNamespaceFilepath",
        "network_namespace_filepath",
        Ty::Str,
    ),
];
const PIPE: &[Field] = &[
    Field("path", "path", Ty::Str),
    Field("mode", "mode", Ty::UInt32),
];
const INTERNAL_ADDRESS: &[Field] = &[
    Field("serverListenerName", "server_listener_name", Ty::Str),
    Field("endpointId", "endpoint_id", Ty::Str),
];
const ADDRESS: &[Field] = &[
    Field("socketAddress", "socket_address", Ty::Msg(SOCKET_ADDRESS)),
    Field("pipe", "pipe", Ty::Msg(PIPE)),
    Field(
        "envoyInternalAddress",
        "envoy_internal_address",
        Ty::Msg(INTERNAL_ADDRESS),
    ),
];
const PEER: &[Field] = &[
    Field("address", "address", Ty::Msg(ADDRESS)),
    Field("service", "service", Ty::Str),
    Field("labels", "labels", Ty::StrMap),
    Field("principal", "principal", Ty::Str),
    Field("certificate", "certificate", Ty::Str),
];
const HEADER_VALUE: &[Field] = &[
    Field("key", "key", Ty::Str),
    Field("value", "value", Ty::Str),
    Field("rawValue", "raw_value", Ty::Bytes),
];
const HEADER_MAP: &[Field] = &[Field("headers", "headers", Ty::List(HEADER_VALUE))];
const HTTP_REQUEST: &[Field] = &[
    Field("id", "id", Ty::Str),
    Field("method", "method", Ty::Str),
    Field("headers", "headers", Ty::StrMap),
    Field("headerMap", "header_map", Ty::Msg(HEADER_MAP)),
    Field("path", "path", Ty::Str),
    Field("host", "host", Ty::Str),
    Field("scheme", "scheme", Ty::Str),
    Field("query", "query", Ty::Str),
    Field("fragment", "fragment", Ty::Str),
    Field("size", "size", Ty::Int64),
    Field("protocol", "protocol", Ty::Str),
    Field("body", "body", Ty::Str),
    Field("rawBody", "raw_body", Ty::Bytes),
];
const REQUEST: &[Field] = &[
    Field("time", "time", Ty::Timestamp),
    Field("http", "http", Ty::Msg(HTTP_REQUEST)),
];
const METADATA: &[Field] = &[
    Field("filterMetadata", "filter_metadata", Ty::StructMap),
    Field("typedFilterMetadata", "typed_filter_metadata", Ty::AnyMap),
];
const TLS_SESSION: &[Field] = &[Field("sni", "sni", Ty::Str)];
const ATTRIBUTE_CONTEXT: &[Field] = &[
    Field("source", "source", Ty::Msg(PEER)),
    Field("destination", "destination", Ty::Msg(PEER)),
    Field("request", "request", Ty::Msg(REQUEST)),
    Field("contextExtensions", "context_extensions", Ty::StrMap),
    Field("metadataContext", "metadata_context", Ty::Msg(METADATA)),
    Field(
        "routeMetadataContext",
        "route_metadata_context",
        Ty::Msg(METADATA),
    ),
    Field("tlsSession", "tls_session", Ty::Msg(TLS_SESSION)),
];
const CHECK_REQUEST: &[Field] = &[Field(
    "attributes",
    "attributes",
    Ty::Msg(ATTRIBUTE_CONTEXT),
)];

/// Checks an Envoy `CheckRequest` in protobuf JSON (field names in lowerCamelCase or as in
/// the proto, no unknown field, values of the field's type) and completes it with the
/// default of every absent field, under the lowerCamelCase names.
pub(crate) fn normalize_envoy(v: &Value) -> Result<Value, String> {
    if !v.is_object() {
        return Err("an Envoy CheckRequest must be a JSON object".to_owned());
    }
    message(CHECK_REQUEST, v, "")
}

fn message(fields: &[Field], v: &Value, path: &str) -> Result<Value, String> {
    let empty = Map::new();
    let obj = match v {
        Value::Object(o) => o,
        Value::Null => &empty,
        other => return Err(format!("{}: expected an object, got {other}", shown(path))),
    };
    let mut out = Map::new();
    for (key, value) in obj {
        let Some(f) = fields.iter().find(|f| f.0 == key || f.1 == key) else {
            return Err(format!("{}: unknown field {key:?}", shown(path)));
        };
        let at = if path.is_empty() {
            f.0.to_owned()
        } else {
            format!("{path}.{}", f.0)
        };
        if out.contains_key(f.0) {
            return Err(format!("{at}: set twice"));
        }
        out.insert(f.0.to_owned(), field(f.2, value, &at)?);
    }
    for f in fields {
        if !out.contains_key(f.0) {
            let at = if path.is_empty() {
                f.0.to_owned()
            } else {
                format!("{path}.{}", f.0)
            };
            out.insert(f.0.to_owned(), field(f.2, &Value::Null, &at)?);
        }
    }
    Ok(Value::Object(out))
}

fn shown(path: &str) -> &str {
    if path.is_empty() { "the request" } else { path }
}

fn field(ty: Ty, v: &Value, path: &str) -> Result<Value, String> {
    let bad = |what: &str| Err(format!("{path}: expected {what}, got {v}"));
    match ty {
        Ty::Str => match v {
            Value::Null => Ok(Value::String(String::new())),
            Value::String(_) => Ok(v.clone()),
            _ => bad("a string"),
        },
        Ty::Bool => match v {
            Value::Null => Ok(Value::Bool(false)),
            Value::Bool(_) => Ok(v.clone()),
            _ => bad("a bool"),
        },
        Ty::Int64 | Ty::UInt32 => {
            let n = match v {
                Value::Null => Some(0),
                Value::Number(n) => n.as_i64(),
                Value::String(s) => s.parse::<i64>().ok(),
                _ => None,
            };
            match (ty, n) {
                (Ty::UInt32, Some(n)) if (0..=i64::from(u32::MAX)).contains(&n) => Ok(n.into()),
                (Ty::Int64, Some(n)) => Ok(n.into()),
                _ => bad("an integer in range"),
            }
        }
        Ty::Bytes => match v {
            Value::Null => Ok(Value::String(String::new())),
            Value::String(s) if base64_any(s) => Ok(v.clone()),
            _ => bad("base64 bytes"),
        },
        Ty::Timestamp => match v {
            Value::Null => Ok(Value::String("1970-01-01T00:00:00Z".to_owned())),
            Value::String(s) if UnixTime::parse_rfc3339(s).is_some() => Ok(v.clone()),
            _ => bad("an RFC 3339 timestamp"),
        },
        Ty::Enum(names) => match v {
            Value::Null => Ok(0.into()),
            Value::String(s) => match names.iter().position(|n| n == s) {
                Some(i) => Ok((i as i64).into()),
                None => bad(&format!("one of {names:?}")),
            },
            Value::Number(n) if n.as_i64().is_some_and(|i| i32::try_from(i).is_ok()) => {
                Ok(v.clone())
            }
            _ => bad("an enum name or number"),
        },
        Ty::StrMap | Ty::StructMap | Ty::AnyMap => {
            let empty = Map::new();
            let obj = match v {
                Value::Null => &empty,
                Value::Object(o) => o,
                _ => return bad("an object"),
            };
            for (k, x) in obj {
                match (ty, x) {
                    (Ty::StrMap, Value::String(_)) | (Ty::StructMap, Value::Object(_)) => {}
                    (Ty::AnyMap, _) => {
                        return Err(format!(
                            "{path}.{k}: google.protobuf.Any values are not supported"
                        ));
                    }
                    _ => {
                        return Err(format!(
                            "{path}.{k}: expected {}, got {x}",
                            if matches!(ty, Ty::StrMap) {
                                "a string"
                            } else {
                                "an object"
                            }
                        ));
                    }
                }
            }
            Ok(Value::Object(obj.clone()))
        }
        Ty::Msg(fields) => message(fields, v, path),
        Ty::List(fields) => match v {
            Value::Null => Ok(Value::Array(Vec::new())),
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, x)| message(fields, x, &format!("{path}[{i}]")))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
            _ => bad("a list"),
        },
    }
}

/// Whether `s` is base64, standard or URL-safe, padded or not (as protobuf JSON accepts).
fn base64_any(s: &str) -> bool {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .any(|e| e.decode(s).is_ok())
}

/// The fields of an HTTP `CheckRequest`'s `attributes`, with their types.
const HTTP_ATTRIBUTES: &[(&str, Ty)] = &[
    ("method", Ty::Str),
    ("header", Ty::StrMap),
    ("host", Ty::Str),
    ("protocol", Ty::Str),
    ("contentLength", Ty::Int64),
    ("body", Ty::Bytes),
    ("scheme", Ty::Str),
    ("path", Ty::Str),
    ("query", Ty::StrMap),
    ("fragment", Ty::Str),
];

/// Checks an HTTP `CheckRequest` (`{"attributes": {...}}`; keys matched without regard to
/// case, as Go's JSON decoding matches them; an unknown key is an error) and completes it
/// with the default of every absent field. `header` and `query` map names to lists of
/// strings.
pub(crate) fn normalize_http(v: &Value) -> Result<Value, String> {
    let Value::Object(top) = v else {
        return Err("an HTTP CheckRequest must be a JSON object".to_owned());
    };
    let mut attributes = &Value::Null;
    for (k, x) in top {
        if !k.eq_ignore_ascii_case("attributes") {
            return Err(format!("the request: unknown field {k:?}"));
        }
        attributes = x;
    }
    let empty = Map::new();
    let attrs = match attributes {
        Value::Null => &empty,
        Value::Object(o) => o,
        other => return Err(format!("attributes: expected an object, got {other}")),
    };
    let mut out = Map::new();
    for (k, x) in attrs {
        let Some((name, ty)) = HTTP_ATTRIBUTES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(k))
        else {
            return Err(format!("attributes: unknown field {k:?}"));
        };
        let path = format!("attributes.{name}");
        if out.contains_key(*name) {
            return Err(format!("{path}: set twice"));
        }
        let value = match ty {
            Ty::StrMap => string_lists(x, &path)?,
            Ty::Bytes => match x {
                Value::Null => Value::String(String::new()),
                Value::String(s)
                    if {
                        use base64::Engine as _;
                        base64::engine::general_purpose::STANDARD.decode(s).is_ok()
                    } =>
                {
                    x.clone()
                }
                _ => return Err(format!("{path}: expected base64 bytes, got {x}")),
            },
            Ty::Int64 => match x {
                Value::Null => 0.into(),
                Value::Number(n) if n.as_i64().is_some() => x.clone(),
                _ => return Err(format!("{path}: expected an integer, got {x}")),
            },
            _ => field(*ty, x, &path)?,
        };
        out.insert((*name).to_owned(), value);
    }
    for (name, ty) in HTTP_ATTRIBUTES {
        if !out.contains_key(*name) {
            let value = match ty {
                Ty::StrMap => Value::Object(Map::new()),
                Ty::Int64 => 0.into(),
                _ => Value::String(String::new()),
            };
            out.insert((*name).to_owned(), value);
        }
    }
    Ok(serde_json::json!({ "attributes": Value::Object(out) }))
}

/// A map of names to lists of strings (`null` lists are empty).
fn string_lists(v: &Value, path: &str) -> Result<Value, String> {
    let empty = Map::new();
    let obj = match v {
        Value::Null => &empty,
        Value::Object(o) => o,
        other => return Err(format!("{path}: expected an object, got {other}")),
    };
    let mut out = Map::new();
    for (k, x) in obj {
        let list = match x {
            Value::Null => Vec::new(),
            Value::Array(items) if items.iter().all(Value::is_string) => items.clone(),
            other => {
                return Err(format!(
                    "{path}.{k}: expected a list of strings, got {other}"
                ));
            }
        };
        out.insert(k.clone(), Value::Array(list));
    }
    Ok(Value::Object(out))
}

/// The `spec` fields an Envoy or HTTP policy is evaluated with; any other is refused at load
/// ([`Error::Unsupported`] naming it), as are `evaluation` settings other than `mode` and a
/// validation's `message`, `messageExpression` and `reason`: Kyverno's authorization engine
/// does not read them, so a policy relying on one would not do what it says.
pub(super) fn check_fields(spec: &Value, policy: &str) -> Result<(), Error> {
    let unsupported = |path: String| Error::Unsupported {
        field: format!(
            "ValidatingPolicy {policy}: {path} (not evaluated for evaluation.mode Envoy or HTTP)"
        ),
    };
    for (key, value) in spec.as_object().into_iter().flatten() {
        match key.as_str() {
            "matchConditions" | "variables" | "validations" | "failurePolicy" => {}
            "evaluation" => {
                for (k, x) in value.as_object().into_iter().flatten() {
                    if k != "mode" && !x.is_null() {
                        return Err(unsupported(format!("spec.evaluation.{k}")));
                    }
                }
            }
            _ if value.is_null() => {}
            other => return Err(unsupported(format!("spec.{other}"))),
        }
    }
    let validations = spec.get("validations").and_then(Value::as_array);
    for (i, v) in validations.into_iter().flatten().enumerate() {
        for (k, x) in v.as_object().into_iter().flatten() {
            if k != "expression" && !x.is_null() {
                return Err(unsupported(format!("spec.validations[{i}].{k}")));
            }
        }
    }
    Ok(())
}
