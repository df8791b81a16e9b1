//! Tree-walking interpreter over borrowed `serde_json::Value`s.

use super::Env;
use super::functions;
use super::parser::{Cmp, Node};
use serde_json::{Map, Value};
use std::borrow::Cow;

/// A value produced during evaluation: borrowed from the input (or the AST) when possible.
pub(crate) type Val<'a> = Cow<'a, Value>;

pub(crate) static NULL: Value = Value::Null;

/// Maximum evaluation depth (function calls and nested projections).
const MAX_DEPTH: usize = 512;

/// Evaluation context.
pub(crate) struct Ctx<'e> {
    pub env: &'e Env,
    pub depth: usize,
}

/// JMESPath truthiness.
pub(crate) fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        Value::Number(_) => true,
    }
}

/// Deep equality with numbers compared by value (`1 == 1.0`).
pub(crate) fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if let (Some(i), Some(j)) = (x.as_i64(), y.as_i64()) {
                i == j
            } else {
                x.as_f64() == y.as_f64()
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

/// A JSON number from an `f64` (integral values become integers, as Go's encoder prints them).
pub(crate) fn num(f: f64) -> Value {
    if f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 {
        Value::from(f as i64)
    } else {
        serde_json::Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null)
    }
}

/// Splits an array value into its elements (borrowed if the array was).
fn into_items<'a>(v: Val<'a>) -> Option<Vec<Val<'a>>> {
    match v {
        Cow::Borrowed(Value::Array(a)) => Some(a.iter().map(Cow::Borrowed).collect()),
        Cow::Owned(Value::Array(a)) => Some(a.into_iter().map(Cow::Owned).collect()),
        _ => None,
    }
}

fn slice_bounds(len: i64, start: Option<i64>, stop: Option<i64>, step: i64) -> (i64, i64) {
    let cap = |v: i64| -> i64 {
        if v < 0 {
            let v = v + len;
            if v < 0 {
                if step < 0 { -1 } else { 0 }
            } else {
                v
            }
        } else if v >= len {
            if step < 0 { len - 1 } else { len }
        } else {
            v
        }
    };
    let s = match start {
        Some(v) => cap(v),
        None => {
            if step < 0 {
                len - 1
            } else {
                0
            }
        }
    };
    let e = match stop {
        Some(v) => cap(v),
        None => {
            if step < 0 {
                -1
            } else {
                len
            }
        }
    };
    (s, e)
}

/// An evaluation failure: go-jmespath (Kyverno's fork) distinguishes a key missing from a map
/// (`NotFoundError`, "Unknown key") from real errors; most operators turn the former into `null`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum EvalError {
    /// A key missing from an object.
    NotFound(String),
    /// Any other error.
    Other(String),
}

impl From<String> for EvalError {
    fn from(s: String) -> Self {
        EvalError::Other(s)
    }
}

impl std::fmt::Display for EvalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EvalError::NotFound(k) => write!(f, "Unknown key \"{k}\" in path"),
            EvalError::Other(s) => f.write_str(s),
        }
    }
}

type R<'a> = Result<Val<'a>, EvalError>;

/// Turns a `NotFound` into `null` (what most go-jmespath operators do).
pub(crate) fn nf_null(r: R<'_>) -> R<'_> {
    match r {
        Err(EvalError::NotFound(_)) => Ok(Cow::Borrowed(&NULL)),
        other => other,
    }
}

/// Evaluates `node` against `data`.
pub(crate) fn eval<'a>(node: &'a Node, data: Val<'a>, cx: &mut Ctx<'_>) -> R<'a> {
    match node {
        Node::Identity => Ok(data),
        Node::Field(name) => match data {
            Cow::Borrowed(Value::Object(m)) => match m.get(name.as_str()) {
                Some(x) => Ok(Cow::Borrowed(x)),
                None => Err(EvalError::NotFound(name.clone())),
            },
            Cow::Owned(Value::Object(mut m)) => match m.remove(name.as_str()) {
                Some(x) => Ok(Cow::Owned(x)),
                None => Err(EvalError::NotFound(name.clone())),
            },
            _ => Ok(Cow::Borrowed(&NULL)),
        },
        Node::Literal(v) => Ok(Cow::Borrowed(v)),
        Node::Subexpr(l, r) | Node::IndexExpr(l, r) => {
            let left = eval(l, data, cx)?;
            eval(r, left, cx)
        }
        Node::Pipe(l, r) => {
            let left = nf_null(eval(l, data, cx))?;
            nf_null(eval(r, left, cx))
        }
        Node::Index(i) => {
            let Some(mut items) = into_items(data) else {
                return Ok(Cow::Borrowed(&NULL));
            };
            let len = items.len() as i64;
            let idx = if *i < 0 { len + *i } else { *i };
            if idx < 0 || idx >= len {
                return Ok(Cow::Borrowed(&NULL));
            }
            Ok(items.swap_remove(idx as usize))
        }
        Node::Slice(start, stop, step) => {
            let step = step.unwrap_or(1);
            let Some(items) = into_items(data) else {
                return Ok(Cow::Borrowed(&NULL));
            };
            if step == 0 {
                return Err(EvalError::Other("invalid slice: step cannot be 0".into()));
            }
            let len = items.len() as i64;
            let (s, e) = slice_bounds(len, *start, *stop, step);
            let mut out = Vec::new();
            let mut slots: Vec<Option<Val<'a>>> = items.into_iter().map(Some).collect();
            let mut i = s;
            while (step > 0 && i < e) || (step < 0 && i > e) {
                if let Some(slot) = slots.get_mut(i as usize)
                    && let Some(v) = slot.take()
                {
                    out.push(v.into_owned());
                }
                i = match i.checked_add(step) {
                    Some(n) => n,
                    None => break,
                };
            }
            Ok(Cow::Owned(Value::Array(out)))
        }
        Node::Projection(..) | Node::Flatten(_) => Ok(match eval_items(node, data, cx)? {
            Some(items) => Cow::Owned(Value::Array(
                items.into_iter().map(Cow::into_owned).collect(),
            )),
            None => Cow::Borrowed(&NULL),
        }),
        Node::ValueProjection(l, r) => {
            let Ok(left) = eval(l, data, cx) else {
                return Ok(Cow::Borrowed(&NULL));
            };
            let items: Vec<Val<'a>> = match left {
                Cow::Borrowed(Value::Object(m)) => m.values().map(Cow::Borrowed).collect(),
                Cow::Owned(Value::Object(m)) => m.into_iter().map(|(_, v)| Cow::Owned(v)).collect(),
                _ => return Ok(Cow::Borrowed(&NULL)),
            };
            project(items, r, cx)
        }
        Node::Filter(l, r, cond) => {
            let Ok(Some(items)) = eval_items(l, data, cx) else {
                return Ok(Cow::Borrowed(&NULL));
            };
            let mut out = Vec::new();
            for it in items {
                let c = nf_null(eval(cond, Cow::Borrowed(it.as_ref()), cx))?;
                if truthy(&c) {
                    drop(c);
                    let v = nf_null(eval(r, it, cx))?;
                    if !v.is_null() {
                        out.push(v.into_owned());
                    }
                }
            }
            Ok(Cow::Owned(Value::Array(out)))
        }
        Node::Compare(op, l, r) => {
            let left = nf_null(eval(l, Cow::Borrowed(data.as_ref()), cx))?;
            let right = nf_null(eval(r, Cow::Borrowed(data.as_ref()), cx))?;
            let res = match op {
                Cmp::Eq => Value::Bool(json_eq(&left, &right)),
                Cmp::Ne => Value::Bool(!json_eq(&left, &right)),
                _ => match (left.as_ref(), right.as_ref()) {
                    (Value::Number(a), Value::Number(b)) => {
                        let (a, b) = (a.as_f64().unwrap_or(0.0), b.as_f64().unwrap_or(0.0));
                        Value::Bool(match op {
                            Cmp::Lt => a < b,
                            Cmp::Lte => a <= b,
                            Cmp::Gt => a > b,
                            _ => a >= b,
                        })
                    }
                    _ => Value::Null,
                },
            };
            Ok(Cow::Owned(res))
        }
        Node::Or(l, r) => {
            if let Cow::Borrowed(d) = data {
                let left = nf_null(eval(l, Cow::Borrowed(d), cx))?;
                if truthy(&left) {
                    return Ok(left);
                }
                return nf_null(eval(r, Cow::Borrowed(d), cx));
            }
            let left = nf_null(eval(l, Cow::Borrowed(data.as_ref()), cx))?.into_owned();
            if truthy(&left) {
                return Ok(Cow::Owned(left));
            }
            nf_null(eval(r, data, cx))
        }
        Node::And(l, r) => {
            if let Cow::Borrowed(d) = data {
                let left = nf_null(eval(l, Cow::Borrowed(d), cx))?;
                if !truthy(&left) {
                    return Ok(left);
                }
                return eval(r, Cow::Borrowed(d), cx);
            }
            let left = nf_null(eval(l, Cow::Borrowed(data.as_ref()), cx))?.into_owned();
            if !truthy(&left) {
                return Ok(Cow::Owned(left));
            }
            eval(r, data, cx)
        }
        Node::Not(inner) => {
            let v = nf_null(eval(inner, data, cx))?;
            Ok(Cow::Owned(Value::Bool(!truthy(&v))))
        }
        Node::MultiList(items) => {
            if data.is_null() {
                return Ok(Cow::Borrowed(&NULL));
            }
            let mut out = Vec::with_capacity(items.len());
            for it in items {
                out.push(nf_null(eval(it, Cow::Borrowed(data.as_ref()), cx))?.into_owned());
            }
            Ok(Cow::Owned(Value::Array(out)))
        }
        Node::MultiHash(items) => {
            if data.is_null() {
                return Ok(Cow::Borrowed(&NULL));
            }
            let mut out = Map::new();
            for (k, it) in items {
                let v = nf_null(eval(it, Cow::Borrowed(data.as_ref()), cx))?.into_owned();
                out.insert(k.clone(), v);
            }
            Ok(Cow::Owned(Value::Object(out)))
        }
        Node::Function(name, args) => {
            cx.depth += 1;
            if cx.depth > MAX_DEPTH {
                return Err(EvalError::Other("evaluation nested too deeply".into()));
            }
            let r = functions::call(name, args, data, cx);
            cx.depth -= 1;
            r
        }
        Node::Expref(_) => Err(EvalError::Other(
            "an expression reference (&expr) is only valid as a function argument".into(),
        )),
    }
}

/// Evaluates `node` as a list without building it: `Some(items)` when the result is an array
/// (items stay borrowed from the input where possible), `None` when it is not an array.
/// Errors are exactly those of [`eval`]. Projections and flattens chain through this, so
/// `spec.containers[].image` or `[a, b][].c` copy only the values they finally return.
fn eval_items<'a>(
    node: &'a Node,
    data: Val<'a>,
    cx: &mut Ctx<'_>,
) -> Result<Option<Vec<Val<'a>>>, EvalError> {
    match node {
        Node::Flatten(inner) => {
            // go-jmespath: any error on the left gives null.
            let Ok(Some(items)) = eval_items(inner, data, cx) else {
                return Ok(None);
            };
            let mut out = Vec::with_capacity(items.len());
            for it in items {
                match it {
                    Cow::Borrowed(Value::Array(a)) => out.extend(a.iter().map(Cow::Borrowed)),
                    Cow::Owned(Value::Array(a)) => out.extend(a.into_iter().map(Cow::Owned)),
                    other => out.push(other),
                }
            }
            Ok(Some(out))
        }
        Node::Projection(l, r) => {
            let items = match eval_items(l, data, cx) {
                Ok(Some(items)) => items,
                Ok(None) | Err(EvalError::NotFound(_)) => return Ok(None),
                Err(e) => return Err(e),
            };
            let mut out = Vec::with_capacity(items.len());
            for it in items {
                let v = nf_null(eval(r, it, cx))?;
                if !v.is_null() {
                    out.push(v);
                }
            }
            Ok(Some(out))
        }
        Node::MultiList(list) => match data {
            Cow::Borrowed(Value::Null) => Ok(None),
            Cow::Borrowed(d) => {
                let mut out = Vec::with_capacity(list.len());
                for it in list {
                    out.push(nf_null(eval(it, Cow::Borrowed(d), cx))?);
                }
                Ok(Some(out))
            }
            Cow::Owned(d) => {
                if d.is_null() {
                    return Ok(None);
                }
                let mut out = Vec::with_capacity(list.len());
                for it in list {
                    out.push(Cow::Owned(
                        nf_null(eval(it, Cow::Borrowed(&d), cx))?.into_owned(),
                    ));
                }
                Ok(Some(out))
            }
        },
        Node::Subexpr(l, r) | Node::IndexExpr(l, r) => {
            let left = eval(l, data, cx)?;
            eval_items(r, left, cx)
        }
        Node::Pipe(l, r) => {
            let left = nf_null(eval(l, data, cx))?;
            match eval_items(r, left, cx) {
                Err(EvalError::NotFound(_)) => Ok(None),
                other => other,
            }
        }
        _ => Ok(into_items(eval(node, data, cx)?)),
    }
}

fn project<'a>(items: Vec<Val<'a>>, rhs: &'a Node, cx: &mut Ctx<'_>) -> R<'a> {
    let mut out = Vec::with_capacity(items.len());
    for it in items {
        let v = nf_null(eval(rhs, it, cx))?;
        if !v.is_null() {
            out.push(v.into_owned());
        }
    }
    Ok(Cow::Owned(Value::Array(out)))
}
