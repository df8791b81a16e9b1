//! Selection, indexing, equality, the binary operators and the built-in functions over
//! evaluated values.

use std::sync::Arc;

use kube_cel::cel::Value;
use kube_cel::cel::objects::{Key, KeyRef};

use crate::lang::cel::value::type_name;

use super::lower::{BinOp, Builtin, ImageMethod};
use super::{
    Env, EvalError, EvalResult, R, V, as_str, materialize, materialize_owned, none, optional_of,
    some, v_type_name, wrap_some,
};
pub(super) fn select<'v>(v: V<'v>, field: &str, test: bool, env: &dyn Env<'v>) -> R<'v> {
    let found: Option<V<'v>> = match &v {
        V::Json(serde_json::Value::Object(m)) => m.get(field).map(V::Json),
        V::Cel(Value::Map(m)) => m.get(&KeyRef::String(field)).cloned().map(V::Cel),
        V::Request => match field {
            "object" => Some(env.request_object(false)?),
            "oldObject" => Some(env.request_object(true)?),
            f => env.request_field(f).map(V::Json),
        },
        other => {
            return Err(EvalError::new(format!(
                "no such key: {field} (selection on {})",
                v_type_name(other)
            )));
        }
    };
    match found {
        Some(x) => Ok(if test { V::Cel(Value::Bool(true)) } else { x }),
        None if test => Ok(V::Cel(Value::Bool(false))),
        None => Err(EvalError::new(format!("no such key: {field}"))),
    }
}

pub(super) fn index_value<'v>(target: V<'v>, i: &V<'v>, env: &dyn Env<'v>) -> R<'v> {
    match &target {
        V::Json(serde_json::Value::Object(_)) | V::Request => match as_str(i) {
            Some(k) => select(target, k, false, env),
            None => Err(EvalError::new(format!(
                "no such key: {}",
                crate::lang::cel::value::display(&materialize(i, env)?)
            ))),
        },
        V::Json(serde_json::Value::Array(l)) => {
            let idx = list_index(&materialize(i, env)?, &target)?;
            usize::try_from(idx)
                .ok()
                .and_then(|n| l.get(n))
                .map(V::Json)
                .ok_or_else(|| EvalError::new(format!("index out of bounds: {idx}")))
        }
        V::Cel(Value::Map(m)) => {
            let key = materialize(i, env)?;
            m.get(&to_keyref(&key)?)
                .cloned()
                .map(V::Cel)
                .ok_or_else(|| {
                    EvalError::new(format!(
                        "no such key: {}",
                        crate::lang::cel::value::display(&key)
                    ))
                })
        }
        V::Items(l) => {
            let idx = list_index(&materialize(i, env)?, &target)?;
            usize::try_from(idx)
                .ok()
                .and_then(|n| l.get(n))
                .cloned()
                .ok_or_else(|| EvalError::new(format!("index out of bounds: {idx}")))
        }
        V::Cel(Value::List(l)) => {
            let idx = list_index(&materialize(i, env)?, &target)?;
            usize::try_from(idx)
                .ok()
                .and_then(|n| l.get(n))
                .cloned()
                .map(V::Cel)
                .ok_or_else(|| EvalError::new(format!("index out of bounds: {idx}")))
        }
        other => Err(no_overload_v("_[_]", &[other, i])),
    }
}

fn list_index(i: &Value, target: &V<'_>) -> Result<i64, EvalError> {
    Ok(match i {
        Value::Int(n) => *n,
        Value::UInt(n) => i64::try_from(*n).unwrap_or(i64::MAX),
        Value::Float(f) if f.fract() == 0.0 => *f as i64,
        other => {
            return Err(EvalError::new(format!(
                "no matching overload for '_[_]' applied to ({}, {})",
                v_type_name(target),
                type_name(other)
            )));
        }
    })
}

fn to_keyref(v: &Value) -> Result<KeyRef<'_>, EvalError> {
    Ok(match v {
        Value::String(s) => KeyRef::String(s.as_str()),
        Value::Int(i) => KeyRef::Int(*i),
        Value::UInt(u) => KeyRef::Uint(*u),
        Value::Bool(b) => KeyRef::Bool(*b),
        other => {
            return Err(EvalError::new(format!(
                "unsupported map key type: {}",
                type_name(other)
            )));
        }
    })
}

pub(super) fn to_key(v: &Value) -> Result<Key, EvalError> {
    Ok(match v {
        Value::String(s) => Key::String(s.clone()),
        Value::Int(i) => Key::Int(*i),
        Value::UInt(u) => Key::Uint(*u),
        Value::Bool(b) => Key::Bool(*b),
        other => {
            return Err(EvalError::new(format!(
                "unsupported map key type: {}",
                type_name(other)
            )));
        }
    })
}

pub(super) fn no_overload(op: &str, args: &[&Value]) -> EvalError {
    let types: Vec<String> = args.iter().map(|v| type_name(v)).collect();
    EvalError::new(format!(
        "no matching overload for '{op}' applied to ({})",
        types.join(", ")
    ))
}

pub(super) fn no_overload_v(op: &str, args: &[&V<'_>]) -> EvalError {
    let types: Vec<String> = args.iter().map(|v| v_type_name(v)).collect();
    EvalError::new(format!(
        "no matching overload for '{op}' applied to ({})",
        types.join(", ")
    ))
}

/// A JSON scalar as a CEL value (`None` for lists and maps).
fn json_scalar(j: &serde_json::Value) -> Option<Value> {
    match j {
        serde_json::Value::Array(_) | serde_json::Value::Object(_) => None,
        other => crate::lang::cel::value::json_to_cel(other).ok(),
    }
}

/// CEL equality without copying JSON where possible.
/// A CEL type as a value: equal to the same type only (a function value with a name no
/// expression can call).
pub(super) fn type_value(name: &str) -> Value {
    Value::Function(Arc::new(format!("{TYPE_PREFIX}{name}")), None)
}

/// The name a type value carries after this prefix.
const TYPE_PREFIX: &str = "@type:";

/// The CEL type name of `v`, as cel-go names it (`int`, `string`, `map`, `null_type`, ...).
fn cel_type_of<'n>(v: &'n V<'_>) -> &'n str {
    match v {
        V::Json(serde_json::Value::Null) => "null_type",
        V::Json(serde_json::Value::Bool(_)) => "bool",
        V::Json(serde_json::Value::Number(n)) if n.is_i64() => "int",
        V::Json(serde_json::Value::Number(n)) if n.is_u64() => "uint",
        V::Json(serde_json::Value::Number(_)) => "double",
        V::Json(serde_json::Value::String(_)) => "string",
        V::Json(serde_json::Value::Array(_)) | V::Items(_) => "list",
        V::Json(serde_json::Value::Object(_)) | V::Request => "map",
        V::JsonSome(_) => "optional_type",
        V::Cel(c) => match c {
            Value::List(_) => "list",
            Value::Map(_) => "map",
            Value::Function(name, _) if name.starts_with(TYPE_PREFIX) => "type",
            Value::Function(..) => "function",
            Value::Int(_) => "int",
            Value::UInt(_) => "uint",
            Value::Float(_) => "double",
            Value::String(_) => "string",
            Value::Bytes(_) => "bytes",
            Value::Bool(_) => "bool",
            Value::Duration(_) => "google.protobuf.Duration",
            Value::Timestamp(_) => "google.protobuf.Timestamp",
            Value::Opaque(o) => o.runtime_type_name(),
            Value::Null => "null_type",
        },
    }
}

fn equals<'v>(a: &V<'v>, b: &V<'v>, env: &dyn Env<'v>) -> Result<bool, EvalError> {
    if let (Some(x), Some(y)) = (as_str(a), as_str(b)) {
        return Ok(x == y);
    }
    match (a, b) {
        (V::Json(x), V::Cel(y)) | (V::Cel(y), V::Json(x)) => {
            if let Some(xs) = json_scalar(x) {
                return Ok(xs == *y);
            }
        }
        (V::Json(x), V::Json(y)) => {
            if let (Some(xs), Some(ys)) = (json_scalar(x), json_scalar(y)) {
                return Ok(xs == ys);
            }
        }
        _ => {}
    }
    Ok(materialize(a, env)? == materialize(b, env)?)
}

pub(super) fn binary<'v>(op: BinOp, a: V<'v>, b: V<'v>, env: &dyn Env<'v>) -> EvalResult {
    use std::cmp::Ordering;
    match op {
        BinOp::Eq => return Ok(Value::Bool(equals(&a, &b, env)?)),
        BinOp::Ne => return Ok(Value::Bool(!equals(&a, &b, env)?)),
        BinOp::In => {
            return Ok(Value::Bool(match &b {
                V::Json(serde_json::Value::Object(m)) => match as_str(&a) {
                    Some(k) => m.contains_key(k),
                    None => false,
                },
                V::Json(serde_json::Value::Array(items)) => {
                    let mut found = false;
                    for item in items {
                        if equals(&a, &V::Json(item), env)? {
                            found = true;
                            break;
                        }
                    }
                    found
                }
                V::Items(items) => {
                    let mut found = false;
                    for item in items.iter() {
                        if equals(&a, item, env)? {
                            found = true;
                            break;
                        }
                    }
                    found
                }
                V::Cel(Value::List(l)) => {
                    let mut found = false;
                    for item in l.iter() {
                        if equals(&a, &V::Cel(item.clone()), env)? {
                            found = true;
                            break;
                        }
                    }
                    found
                }
                V::Cel(Value::Map(m)) => {
                    let k = materialize(&a, env)?;
                    match to_keyref(&k) {
                        Ok(k) => m.get(&k).is_some(),
                        Err(_) => false,
                    }
                }
                V::Request => match as_str(&a) {
                    Some("object" | "oldObject") => true,
                    Some(k) => env.request_field(k).is_some(),
                    None => false,
                },
                other => return Err(no_overload_v("@in", &[&a, other])),
            }));
        }
        _ => {}
    }
    let a = materialize_owned(a, env)?;
    let b = materialize_owned(b, env)?;
    let cmp = |a: &Value, b: &Value, name: &str| -> Result<Ordering, EvalError> {
        match (a, b) {
            (Value::Map(_), _) | (Value::List(_), _) | (Value::Null, _) | (_, Value::Null) => {
                Err(no_overload(name, &[a, b]))
            }
            _ => a.partial_cmp(b).ok_or_else(|| no_overload(name, &[a, b])),
        }
    };
    let arith = |r: Result<Value, kube_cel::cel::ExecutionError>| {
        r.map_err(|e| EvalError::new(e.to_string()))
    };
    Ok(match op {
        BinOp::Lt => Value::Bool(cmp(&a, &b, "_<_")? == Ordering::Less),
        BinOp::Le => Value::Bool(cmp(&a, &b, "_<=_")? != Ordering::Greater),
        BinOp::Gt => Value::Bool(cmp(&a, &b, "_>_")? == Ordering::Greater),
        BinOp::Ge => Value::Bool(cmp(&a, &b, "_>=_")? != Ordering::Less),
        BinOp::Add => arith(a + b)?,
        BinOp::Sub => arith(a - b)?,
        BinOp::Mul => arith(a * b)?,
        BinOp::Div => arith(a / b)?,
        BinOp::Mod => arith(a % b)?,
        BinOp::Eq | BinOp::Ne | BinOp::In => Value::Null,
    })
}

pub(super) fn builtin<'v>(
    b: Builtin,
    target: Option<V<'v>>,
    args: Vec<V<'v>>,
    env: &dyn Env<'v>,
) -> R<'v> {
    let mut args = args.into_iter();
    let mut next = || args.next().unwrap_or(V::Cel(Value::Null));
    let str_pair = |t: &Option<V<'v>>, a: &V<'v>, name: &str| -> Result<bool, EvalError> {
        match (t.as_ref().and_then(as_str), as_str(a)) {
            (Some(x), Some(y)) => Ok(match name {
                "startsWith" => x.starts_with(y),
                "endsWith" => x.ends_with(y),
                _ => x.contains(y),
            }),
            _ => Err(match t {
                Some(t) => no_overload_v(name, &[t, a]),
                None => no_overload_v(name, &[a]),
            }),
        }
    };
    let bool_v = |b: bool| Ok(V::Cel(Value::Bool(b)));
    match b {
        Builtin::TypeOf => Ok(V::Cel(type_value(cel_type_of(&next())))),
        Builtin::Size => {
            let v = match target {
                Some(t) => t,
                None => next(),
            };
            let n = match &v {
                V::Json(serde_json::Value::String(s)) => s.chars().count(),
                V::Json(serde_json::Value::Array(a)) => a.len(),
                V::Json(serde_json::Value::Object(m)) => m.len(),
                V::Cel(Value::String(s)) => s.chars().count(),
                V::Cel(Value::Bytes(b)) => b.len(),
                V::Cel(Value::List(l)) => l.len(),
                V::Cel(Value::Map(m)) => m.map.len(),
                V::Items(items) => items.len(),
                other => return Err(no_overload_v("size", &[other])),
            };
            Ok(V::Cel(Value::Int(i64::try_from(n).unwrap_or(i64::MAX))))
        }
        Builtin::StartsWith => bool_v(str_pair(&target, &next(), "startsWith")?),
        Builtin::EndsWith => bool_v(str_pair(&target, &next(), "endsWith")?),
        Builtin::Contains => bool_v(str_pair(&target, &next(), "contains")?),
        Builtin::OrValue | Builtin::Or | Builtin::HasValue | Builtin::OptValue => {
            let t = target.unwrap_or(V::Cel(Value::Null));
            let Some(opt) = optional_of(&t) else {
                let name = match b {
                    Builtin::OrValue => "orValue",
                    Builtin::Or => "or",
                    Builtin::HasValue => "hasValue",
                    _ => "value",
                };
                return Err(no_overload_v(name, &[&t]));
            };
            match b {
                Builtin::OrValue => Ok(opt.unwrap_or_else(next)),
                Builtin::Or => {
                    if opt.is_some() {
                        Ok(t)
                    } else {
                        let other = next();
                        if optional_of(&other).is_none() {
                            return Err(no_overload_v("or", &[&t, &other]));
                        }
                        Ok(other)
                    }
                }
                Builtin::HasValue => bool_v(opt.is_some()),
                _ => opt.ok_or_else(|| EvalError::new("optional.none() dereference")),
            }
        }
        Builtin::Image(m) => {
            let t = target.unwrap_or(V::Cel(Value::Null));
            let img = match &t {
                V::Cel(Value::Opaque(o)) => o.downcast_ref::<crate::lang::cel::kyverno::ImageRef>(),
                _ => None,
            };
            let Some(img) = img else {
                return Err(no_overload_v(&format!("{m:?}"), &[&t]));
            };
            let s = |x: &str| Ok(V::Cel(Value::String(Arc::new(x.to_owned()))));
            match m {
                ImageMethod::Registry => s(&img.registry),
                ImageMethod::Repository => s(&img.repository),
                ImageMethod::Identifier => s(img.identifier()),
                ImageMethod::Tag => s(&img.tag),
                ImageMethod::Digest => s(&img.digest),
                ImageMethod::ContainsDigest => bool_v(!img.digest.is_empty()),
            }
        }
        Builtin::Authz(m) => {
            let t = match target {
                Some(t) => materialize_owned(t, env)?,
                None => Value::Null,
            };
            let mut values = Vec::new();
            for a in args {
                values.push(materialize_owned(a, env)?);
            }
            crate::lang::cel::authz::method(m, &t, &values)
                .map(V::Cel)
                .map_err(EvalError::new)
        }
        Builtin::OptionalOf => wrap_some(next(), env),
        Builtin::OptionalNone => Ok(V::Cel(none())),
        Builtin::OptionalOfNonZero => {
            let v = materialize_owned(next(), env)?;
            let zero = match &v {
                Value::Null => true,
                Value::Bool(b) => !b,
                Value::Int(i) => *i == 0,
                Value::UInt(u) => *u == 0,
                Value::Float(f) => *f == 0.0,
                Value::String(s) => s.is_empty(),
                Value::Bytes(b) => b.is_empty(),
                Value::List(l) => l.is_empty(),
                Value::Map(m) => m.map.is_empty(),
                _ => false,
            };
            Ok(V::Cel(if zero { none() } else { some(v) }))
        }
    }
}
