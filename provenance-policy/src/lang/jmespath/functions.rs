//! Built-in JMESPath functions and dispatch to Kyverno's extensions.

use super::gojson;
use super::interp::{Ctx, EvalError, NULL, Val, eval, json_eq, nf_null, num};
use super::kyverno;
use super::parser::Node;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::cmp::Ordering;

/// A function argument: a value, or an expression reference (`&expr`).
pub(crate) enum Arg<'a> {
    /// An evaluated value.
    V(Val<'a>),
    /// An unevaluated expression reference.
    E(&'a Node),
}

impl<'a> Arg<'a> {
    pub(crate) fn val(&self) -> Option<&Value> {
        match self {
            Arg::V(v) => Some(v.as_ref()),
            Arg::E(_) => None,
        }
    }
}

/// JMESPath type name of a value.
pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Calls function `name`.
pub(crate) fn call<'a>(
    name: &str,
    args: &'a [Node],
    data: Val<'a>,
    cx: &mut Ctx<'_>,
) -> Result<Val<'a>, EvalError> {
    match data {
        Cow::Borrowed(d) => call_ref(name, args, d, cx),
        Cow::Owned(o) => call_ref(name, args, &o, cx).map(|v| Cow::Owned(v.into_owned())),
    }
}

fn call_ref<'a>(
    name: &str,
    args: &'a [Node],
    d: &'a Value,
    cx: &mut Ctx<'_>,
) -> Result<Val<'a>, EvalError> {
    let mut vals: Vec<Arg<'a>> = Vec::with_capacity(args.len());
    for a in args {
        match a {
            Node::Expref(inner) => vals.push(Arg::E(inner)),
            other => vals.push(Arg::V(nf_null(eval(other, Cow::Borrowed(d), cx))?)),
        }
    }
    if let Some(r) = builtin(name, vals, cx)? {
        return Ok(r);
    }
    Err(EvalError::Other(format!("unknown function: {name}()")))
}

pub(crate) fn arity(name: &str, args: &[Arg<'_>], n: usize) -> Result<(), String> {
    if args.len() != n {
        return Err(format!(
            "invalid arity: {name}() takes {n} argument(s), {} given",
            args.len()
        ));
    }
    Ok(())
}

pub(crate) fn type_err(name: &str, pos: usize, want: &str, got: Option<&Value>) -> String {
    format!(
        "invalid type: {name}() argument {} must be {want}, got {}",
        pos + 1,
        got.map(type_name).unwrap_or("expression")
    )
}

pub(crate) fn arg_str<'b>(name: &str, args: &'b [Arg<'_>], i: usize) -> Result<&'b str, String> {
    match args.get(i).and_then(Arg::val) {
        Some(Value::String(s)) => Ok(s),
        other => Err(type_err(name, i, "a string", other)),
    }
}

pub(crate) fn arg_num(name: &str, args: &[Arg<'_>], i: usize) -> Result<f64, String> {
    match args.get(i).and_then(Arg::val) {
        Some(Value::Number(n)) => Ok(n.as_f64().unwrap_or(0.0)),
        other => Err(type_err(name, i, "a number", other)),
    }
}

pub(crate) fn arg_arr<'b>(
    name: &str,
    args: &'b [Arg<'_>],
    i: usize,
) -> Result<&'b Vec<Value>, String> {
    match args.get(i).and_then(Arg::val) {
        Some(Value::Array(a)) => Ok(a),
        other => Err(type_err(name, i, "an array", other)),
    }
}

pub(crate) fn arg_obj<'b>(
    name: &str,
    args: &'b [Arg<'_>],
    i: usize,
) -> Result<&'b Map<String, Value>, String> {
    match args.get(i).and_then(Arg::val) {
        Some(Value::Object(o)) => Ok(o),
        other => Err(type_err(name, i, "an object", other)),
    }
}

fn arg_expr<'a>(name: &str, args: &[Arg<'a>], i: usize) -> Result<&'a Node, String> {
    match args.get(i) {
        Some(Arg::E(e)) => Ok(e),
        other => Err(type_err(
            name,
            i,
            "an expression (&expr)",
            other.and_then(Arg::val),
        )),
    }
}

fn take<'a>(args: Vec<Arg<'a>>, i: usize) -> Val<'a> {
    match args.into_iter().nth(i) {
        Some(Arg::V(v)) => v,
        _ => Cow::Borrowed(&NULL),
    }
}

fn owned<'a>(v: Value) -> Option<Val<'a>> {
    Some(Cow::Owned(v))
}

/// Orders two values that are both numbers or both strings.
fn cmp_sortable(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

fn key_of(name: &str, e: &Node, v: &Value, cx: &mut Ctx<'_>) -> Result<Value, String> {
    let k = ev(e, v, cx)?;
    match k {
        Value::Number(_) | Value::String(_) => Ok(k),
        other => Err(format!(
            "invalid type: {name}() expression must return a number or a string, got {}",
            type_name(&other)
        )),
    }
}

fn builtin<'a>(
    name: &str,
    args: Vec<Arg<'a>>,
    cx: &mut Ctx<'_>,
) -> Result<Option<Val<'a>>, String> {
    let a = &args;
    Ok(match name {
        "abs" => {
            arity(name, a, 1)?;
            owned(num(arg_num(name, a, 0)?.abs()))
        }
        "avg" => {
            arity(name, a, 1)?;
            let arr = arg_arr(name, a, 0)?;
            let mut s = 0.0;
            for v in arr {
                s += v
                    .as_f64()
                    .ok_or_else(|| type_err(name, 0, "an array of numbers", Some(v)))?;
            }
            if arr.is_empty() {
                owned(Value::Null)
            } else {
                owned(num(s / arr.len() as f64))
            }
        }
        "ceil" => {
            arity(name, a, 1)?;
            owned(num(arg_num(name, a, 0)?.ceil()))
        }
        "floor" => {
            arity(name, a, 1)?;
            owned(num(arg_num(name, a, 0)?.floor()))
        }
        "contains" => {
            arity(name, a, 2)?;
            let search = a[1].val().unwrap_or(&NULL);
            match a[0].val() {
                Some(Value::Array(arr)) => {
                    owned(Value::Bool(arr.iter().any(|x| json_eq(x, search))))
                }
                Some(Value::String(s)) => match search {
                    Value::String(t) => owned(Value::Bool(s.contains(t.as_str()))),
                    _ => owned(Value::Bool(false)),
                },
                other => return Err(type_err(name, 0, "an array or a string", other)),
            }
        }
        "ends_with" => {
            arity(name, a, 2)?;
            let s = arg_str(name, a, 0)?;
            let t = arg_str(name, a, 1)?;
            owned(Value::Bool(s.ends_with(t)))
        }
        "starts_with" => {
            arity(name, a, 2)?;
            let s = arg_str(name, a, 0)?;
            let t = arg_str(name, a, 1)?;
            owned(Value::Bool(s.starts_with(t)))
        }
        "join" => {
            arity(name, a, 2)?;
            let glue = arg_str(name, a, 0)?;
            let arr = arg_arr(name, a, 1)?;
            let mut parts = Vec::with_capacity(arr.len());
            for v in arr {
                match v {
                    Value::String(s) => parts.push(s.as_str()),
                    other => return Err(type_err(name, 1, "an array of strings", Some(other))),
                }
            }
            owned(Value::String(parts.join(glue)))
        }
        "keys" => {
            arity(name, a, 1)?;
            let o = arg_obj(name, a, 0)?;
            owned(Value::Array(
                o.keys().map(|k| Value::String(k.clone())).collect(),
            ))
        }
        "values" => {
            arity(name, a, 1)?;
            let o = arg_obj(name, a, 0)?;
            owned(Value::Array(o.values().cloned().collect()))
        }
        "length" => {
            arity(name, a, 1)?;
            let n = match a[0].val() {
                Some(Value::String(s)) => s.chars().count(),
                Some(Value::Array(x)) => x.len(),
                Some(Value::Object(o)) => o.len(),
                other => return Err(type_err(name, 0, "a string, array or object", other)),
            };
            owned(Value::from(n as u64))
        }
        "map" => {
            arity(name, a, 2)?;
            let e = arg_expr(name, a, 0)?;
            let arr = arg_arr(name, a, 1)?;
            let mut out = Vec::with_capacity(arr.len());
            for v in arr {
                out.push(ev(e, v, cx)?);
            }
            owned(Value::Array(out))
        }
        "max" | "min" => {
            arity(name, a, 1)?;
            let arr = arg_arr(name, a, 0)?;
            let Some(first) = arr.first() else {
                return Ok(owned(Value::Null));
            };
            if !matches!(first, Value::Number(_) | Value::String(_)) {
                return Err(type_err(
                    name,
                    0,
                    "an array of numbers or strings",
                    Some(first),
                ));
            }
            let mut best = first;
            for v in &arr[1..] {
                let o = cmp_sortable(v, best)
                    .ok_or_else(|| type_err(name, 0, "an array of numbers or strings", Some(v)))?;
                if (name == "max" && o == Ordering::Greater)
                    || (name == "min" && o == Ordering::Less)
                {
                    best = v;
                }
            }
            owned(best.clone())
        }
        "max_by" | "min_by" => {
            arity(name, a, 2)?;
            let arr = arg_arr(name, a, 0)?;
            let e = arg_expr(name, a, 1)?;
            let mut best: Option<(&Value, Value)> = None;
            for v in arr {
                let k = key_of(name, e, v, cx)?;
                best = match best {
                    None => Some((v, k)),
                    Some((bv, bk)) => {
                        let o = cmp_sortable(&k, &bk).ok_or_else(|| {
                            format!(
                                "invalid type: {name}() keys must all be numbers or all strings"
                            )
                        })?;
                        if (name == "max_by" && o == Ordering::Greater)
                            || (name == "min_by" && o == Ordering::Less)
                        {
                            Some((v, k))
                        } else {
                            Some((bv, bk))
                        }
                    }
                };
            }
            owned(best.map(|(v, _)| v.clone()).unwrap_or(Value::Null))
        }
        "merge" => {
            if a.is_empty() {
                return Err(format!("invalid arity: {name}() takes at least 1 argument"));
            }
            let mut out = Map::new();
            for i in 0..a.len() {
                for (k, v) in arg_obj(name, a, i)? {
                    out.insert(k.clone(), v.clone());
                }
            }
            owned(Value::Object(out))
        }
        "not_null" => {
            if a.is_empty() {
                return Err(format!("invalid arity: {name}() takes at least 1 argument"));
            }
            let idx = a.iter().position(|x| x.val().is_some_and(|v| !v.is_null()));
            match idx {
                Some(i) => Some(take(args, i)),
                None => owned(Value::Null),
            }
        }
        "reverse" => {
            arity(name, a, 1)?;
            match a[0].val() {
                Some(Value::String(s)) => owned(Value::String(s.chars().rev().collect())),
                Some(Value::Array(x)) => owned(Value::Array(x.iter().rev().cloned().collect())),
                other => return Err(type_err(name, 0, "a string or an array", other)),
            }
        }
        "sort" => {
            arity(name, a, 1)?;
            let arr = arg_arr(name, a, 0)?;
            let mut v = arr.clone();
            check_homogeneous(name, &v)?;
            v.sort_by(|x, y| cmp_sortable(x, y).unwrap_or(Ordering::Equal));
            owned(Value::Array(v))
        }
        "sort_by" => {
            arity(name, a, 2)?;
            let arr = arg_arr(name, a, 0)?;
            let e = arg_expr(name, a, 1)?;
            let mut keyed = Vec::with_capacity(arr.len());
            for v in arr {
                keyed.push((key_of(name, e, v, cx)?, v));
            }
            let keys: Vec<Value> = keyed.iter().map(|(k, _)| k.clone()).collect();
            check_homogeneous(name, &keys)?;
            keyed.sort_by(|x, y| cmp_sortable(&x.0, &y.0).unwrap_or(Ordering::Equal));
            owned(Value::Array(
                keyed.into_iter().map(|(_, v)| v.clone()).collect(),
            ))
        }
        "sum" => {
            arity(name, a, 1)?;
            let arr = arg_arr(name, a, 0)?;
            if arr.iter().all(Value::is_number) {
                owned(num(arr.iter().filter_map(Value::as_f64).sum()))
            } else {
                owned(kyverno::sum(arr)?)
            }
        }
        "to_array" => {
            arity(name, a, 1)?;
            match a[0].val() {
                Some(Value::Array(_)) => Some(take(args, 0)),
                Some(v) => owned(Value::Array(vec![v.clone()])),
                None => return Err(type_err(name, 0, "a value", None)),
            }
        }
        "to_number" => {
            arity(name, a, 1)?;
            match a[0].val() {
                Some(Value::Number(_)) => Some(take(args, 0)),
                Some(Value::String(s)) => {
                    owned(gojson::parse_float(s).map(num).unwrap_or(Value::Null))
                }
                Some(_) => owned(Value::Null),
                None => return Err(type_err(name, 0, "a value", None)),
            }
        }
        "to_string" => {
            arity(name, a, 1)?;
            match a[0].val() {
                Some(Value::String(_)) => Some(take(args, 0)),
                Some(v) => owned(Value::String(gojson::to_string(v))),
                None => return Err(type_err(name, 0, "a value", None)),
            }
        }
        "type" => {
            arity(name, a, 1)?;
            match a[0].val() {
                Some(v) => owned(Value::String(type_name(v).to_string())),
                None => return Err(type_err(name, 0, "a value", None)),
            }
        }
        _ => kyverno::call(name, a, cx.env)?.map(Cow::Owned),
    })
}

fn check_homogeneous(name: &str, v: &[Value]) -> Result<(), String> {
    let Some(first) = v.first() else {
        return Ok(());
    };
    let ok = match first {
        Value::Number(_) => v.iter().all(Value::is_number),
        Value::String(_) => v.iter().all(Value::is_string),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid type: {name}() needs an array of numbers or an array of strings"
        ))
    }
}

/// Evaluates an expression reference on one value (a missing key is `null`).
fn ev(e: &Node, v: &Value, cx: &mut Ctx<'_>) -> Result<Value, String> {
    nf_null(eval(e, Cow::Borrowed(v), cx))
        .map(Cow::into_owned)
        .map_err(|e| e.to_string())
}
