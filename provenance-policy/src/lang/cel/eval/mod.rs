//! A compiled form of `cel` 0.13's AST and a tree-walking evaluator over shared values.
//!
//! `cel` 0.13's own interpreter deep-copies every map and list it binds (each comprehension
//! step clones the element and the accumulator), which made one `all()/exists()` over a Pod
//! cost tens of microseconds. Here the parsed AST is lowered once into [`Node`]s whose
//! identifiers are already resolved (roots, comprehension slots, policy variables, Kyverno
//! libraries). Evaluation works on `V`: borrowed views into the request's JSON, or
//! `cel::Value`s (reference counted) for computed values, so selecting
//! `object.spec.containers` or binding a comprehension variable is a pointer copy and the
//! request is never converted as a whole.
//!
//! The core language (literals, selection, indexing, optionals, `has`, comprehension macros,
//! logic with CEL's error absorption, comparison, arithmetic, `in`, `size`, `matches` with a
//! literal pattern, string prefix/suffix/contains) is evaluated here. Every other function
//! (Kubernetes' libraries from `kube-cel`: strings, lists, regex, quantity, url, ip/cidr,
//! semver, format, ...) is delegated to `cel`'s function registry with already evaluated
//! arguments.

pub(super) mod budget;
mod library;
pub(super) mod lower;
mod ops;

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use kube_cel::cel::Value;
use kube_cel::cel::objects::{Map, OptionalValue};

use super::kyverno::KyvernoFn;
use super::value::type_name;

use budget::{charge, charge_concat, charged};
use library::delegate;
use lower::{BinOp, Compr, Node, Root};
use ops::{binary, builtin, index_value, no_overload, no_overload_v, select, to_key};

/// An evaluation error (the message only; the caller adds the expression).
#[derive(Debug, Clone, PartialEq)]
pub struct EvalError(pub String);

impl EvalError {
    fn new(msg: impl Into<String>) -> Self {
        EvalError(msg.into())
    }
}

pub(crate) type EvalResult = Result<Value, EvalError>;

/// A value during evaluation: a borrowed view into the request's JSON (nothing converted), an
/// optional holding such a view, the `request` root, or a CEL value.
#[derive(Debug, Clone)]
pub(crate) enum V<'v> {
    /// A JSON value of the request, read in place.
    Json(&'v serde_json::Value),
    /// `optional.of(json)`.
    JsonSome(&'v serde_json::Value),
    /// The `request` root (its `object`/`oldObject` are the `object`/`oldObject` roots).
    Request,
    /// A list built during evaluation whose items may be JSON views (concatenations,
    /// `filter`/`map` results), so building it copies no JSON.
    Items(Rc<Vec<V<'v>>>),
    /// A CEL value.
    Cel(Value),
}

/// The result of evaluating a node.
pub(crate) type R<'v> = Result<V<'v>, EvalError>;

static JSON_NULL: serde_json::Value = serde_json::Value::Null;

impl<'v> V<'v> {
    /// A JSON value, or `null` when absent.
    pub(crate) fn json_or_null(v: Option<&'v serde_json::Value>) -> V<'v> {
        V::Json(v.unwrap_or(&JSON_NULL))
    }
}

/// Where evaluation finds roots, variables and Kyverno's context data.
pub(crate) trait Env<'v> {
    fn root(&self, r: Root) -> R<'v>;
    /// `request.FIELD` other than `object`/`oldObject`.
    fn request_field(&self, field: &str) -> Option<&'v serde_json::Value>;
    /// The whole `request` object (materialized only when used as a value).
    fn request_value(&self) -> EvalResult;
    /// `request.object` (`old`: `request.oldObject`).
    fn request_object(&self, old: bool) -> R<'v>;
    fn variable(&self, name: &str) -> R<'v>;
    fn all_variables(&self) -> R<'v>;
    fn kyverno(&self, f: KyvernoFn, args: &[Value]) -> R<'v>;
}

type Locals<'v> = RefCell<Vec<R<'v>>>;

/// Converts to a CEL value (copying JSON views).
pub(crate) fn materialize<'v>(v: &V<'v>, env: &dyn Env<'v>) -> EvalResult {
    match v {
        V::Cel(c) => Ok(c.clone()),
        V::Json(j) => super::value::json_to_cel(j).map_err(EvalError),
        V::JsonSome(j) => Ok(some(super::value::json_to_cel(j).map_err(EvalError)?)),
        V::Request => env.request_value(),
        V::Items(items) => {
            let mut out = Vec::with_capacity(items.len());
            for i in items.iter() {
                out.push(materialize(i, env)?);
            }
            Ok(Value::List(Arc::new(out)))
        }
    }
}

/// The items of a list value, as views (`None`: not a list).
fn list_items<'v>(v: &V<'v>) -> Option<Vec<V<'v>>> {
    Some(match v {
        V::Json(serde_json::Value::Array(a)) => a.iter().map(V::Json).collect(),
        V::Cel(Value::List(l)) => l.iter().cloned().map(V::Cel).collect(),
        V::Items(items) => items.as_ref().clone(),
        _ => return None,
    })
}

fn materialize_owned<'v>(v: V<'v>, env: &dyn Env<'v>) -> EvalResult {
    match v {
        V::Cel(c) => Ok(c),
        other => materialize(&other, env),
    }
}

fn as_bool(v: &V<'_>) -> Option<bool> {
    match v {
        V::Cel(Value::Bool(b)) => Some(*b),
        V::Json(serde_json::Value::Bool(b)) => Some(*b),
        _ => None,
    }
}

fn as_str<'a>(v: &'a V<'_>) -> Option<&'a str> {
    match v {
        V::Cel(Value::String(s)) => Some(s.as_str()),
        V::Json(serde_json::Value::String(s)) => Some(s.as_str()),
        _ => None,
    }
}

fn v_type_name(v: &V<'_>) -> String {
    match v {
        V::Cel(c) => type_name(c),
        V::Json(j) | V::JsonSome(j) => {
            let t = match j {
                serde_json::Value::Null => "null",
                serde_json::Value::Bool(_) => "bool",
                serde_json::Value::Number(n) if n.is_f64() => "double",
                serde_json::Value::Number(_) => "int",
                serde_json::Value::String(_) => "string",
                serde_json::Value::Array(_) => "list",
                serde_json::Value::Object(_) => "map",
            };
            if matches!(v, V::JsonSome(_)) {
                "optional_type".to_owned()
            } else {
                t.to_owned()
            }
        }
        V::Request => "map".to_owned(),
        V::Items(_) => "list".to_owned(),
    }
}

/// `Some(None)`: an empty optional; `Some(Some(x))`: a present optional; `None`: not an
/// optional.
fn optional_of<'v>(v: &V<'v>) -> Option<Option<V<'v>>> {
    match v {
        V::JsonSome(j) => Some(Some(V::Json(j))),
        V::Cel(c) => as_optional(c).map(|o| o.value().cloned().map(V::Cel)),
        _ => None,
    }
}

/// Wraps in an optional without copying JSON views.
fn wrap_some<'v>(v: V<'v>, env: &dyn Env<'v>) -> R<'v> {
    match v {
        V::Json(j) => Ok(V::JsonSome(j)),
        other => Ok(V::Cel(some(materialize_owned(other, env)?))),
    }
}

/// Evaluates `node` with comprehension slots in `locals`.
pub(crate) fn eval<'v>(node: &Node, env: &dyn Env<'v>, locals: &Locals<'v>) -> R<'v> {
    charge()?;
    match node {
        Node::Lit(v) => Ok(V::Cel(v.clone())),
        Node::Root(r) => env.root(*r),
        Node::Var(name) => env.variable(name),
        Node::AllVars => env.all_variables(),
        Node::Local(slot) => locals
            .borrow()
            .get(*slot)
            .cloned()
            .unwrap_or_else(|| Err(EvalError::new("unbound comprehension variable"))),
        Node::Select {
            operand,
            field,
            test,
        } => {
            let v = eval(operand, env, locals)?;
            if let Some(opt) = optional_of(&v) {
                return match opt {
                    None => Ok(V::Cel(none())),
                    Some(inner) => wrap_some(select(inner, field, *test, env)?, env),
                };
            }
            select(v, field, *test, env)
        }
        Node::OptSelect { operand, field } => {
            let v = eval(operand, env, locals)?;
            let target = match optional_of(&v) {
                Some(None) => return Ok(V::Cel(none())),
                Some(Some(inner)) => inner,
                None => v,
            };
            match &target {
                V::Json(serde_json::Value::Object(_)) | V::Cel(Value::Map(_)) | V::Request => {
                    match select(target, field, false, env) {
                        Ok(x) => wrap_some(x, env),
                        Err(_) => Ok(V::Cel(none())),
                    }
                }
                other => Err(EvalError::new(format!(
                    "no such key: {field} (optional selection on {})",
                    v_type_name(other)
                ))),
            }
        }
        Node::Index {
            operand,
            index,
            optional,
        } => {
            let v = eval(operand, env, locals)?;
            let i = eval(index, env, locals)?;
            let (target, optional) = match optional_of(&v) {
                Some(None) => return Ok(V::Cel(none())),
                Some(Some(inner)) => (inner, true),
                None => (v, *optional),
            };
            let r = index_value(target, &i, env);
            if optional {
                match r {
                    Ok(x) => wrap_some(x, env),
                    Err(_) => Ok(V::Cel(none())),
                }
            } else {
                r
            }
        }
        Node::List(elems) => {
            let mut out = Vec::with_capacity(elems.len());
            for (e, optional) in elems {
                let v = eval(e, env, locals)?;
                if *optional {
                    match optional_of(&v) {
                        Some(Some(inner)) => out.push(inner),
                        Some(None) => {}
                        None => {
                            return Err(EvalError::new(
                                "optional list element is not an optional value",
                            ));
                        }
                    }
                } else {
                    out.push(v);
                }
            }
            if out.iter().all(|v| matches!(v, V::Cel(_))) {
                let vals = out
                    .into_iter()
                    .map(|v| match v {
                        V::Cel(c) => c,
                        _ => Value::Null,
                    })
                    .collect();
                Ok(V::Cel(Value::List(Arc::new(vals))))
            } else {
                Ok(V::Items(Rc::new(out)))
            }
        }
        Node::MapLit(entries) => {
            let mut out = HashMap::with_capacity(entries.len());
            for (k, v, optional) in entries {
                let key = to_key(&materialize_owned(eval(k, env, locals)?, env)?)?;
                let v = eval(v, env, locals)?;
                let v = if *optional {
                    match optional_of(&v) {
                        Some(Some(inner)) => materialize_owned(inner, env)?,
                        Some(None) => continue,
                        None => {
                            return Err(EvalError::new(
                                "optional map entry is not an optional value",
                            ));
                        }
                    }
                } else {
                    materialize_owned(v, env)?
                };
                if out.insert(key.clone(), v).is_some() {
                    return Err(EvalError::new(format!(
                        "repeated key in map literal: {key}"
                    )));
                }
            }
            Ok(V::Cel(Value::Map(Map { map: Arc::new(out) })))
        }
        Node::And(l, r) => {
            let lv = eval(l, env, locals);
            let lb = lv.as_ref().ok().and_then(as_bool);
            if lb == Some(false) {
                return Ok(V::Cel(Value::Bool(false)));
            }
            let rv = eval(r, env, locals);
            let rb = rv.as_ref().ok().and_then(as_bool);
            match (lb, rb) {
                (_, Some(false)) => Ok(V::Cel(Value::Bool(false))),
                (Some(true), Some(true)) => Ok(V::Cel(Value::Bool(true))),
                _ => Err(logic_error("_&&_", lv, rv)),
            }
        }
        Node::Or(l, r) => {
            let lv = eval(l, env, locals);
            let lb = lv.as_ref().ok().and_then(as_bool);
            if lb == Some(true) {
                return Ok(V::Cel(Value::Bool(true)));
            }
            let rv = eval(r, env, locals);
            let rb = rv.as_ref().ok().and_then(as_bool);
            match (lb, rb) {
                (_, Some(true)) => Ok(V::Cel(Value::Bool(true))),
                (Some(false), Some(false)) => Ok(V::Cel(Value::Bool(false))),
                _ => Err(logic_error("_||_", lv, rv)),
            }
        }
        Node::Not(x) => {
            let v = eval(x, env, locals)?;
            match as_bool(&v) {
                Some(b) => Ok(V::Cel(Value::Bool(!b))),
                None => Err(no_overload_v("!_", &[&v])),
            }
        }
        Node::Neg(x) => match materialize_owned(eval(x, env, locals)?, env)? {
            Value::Int(i) => i
                .checked_neg()
                .map(|n| V::Cel(Value::Int(n)))
                .ok_or_else(|| EvalError::new("integer overflow")),
            Value::Float(f) => Ok(V::Cel(Value::Float(-f))),
            other => Err(no_overload("-_", &[&other])),
        },
        Node::Cond(c, t, f) => {
            let v = eval(c, env, locals)?;
            match as_bool(&v) {
                Some(true) => eval(t, env, locals),
                Some(false) => eval(f, env, locals),
                None => Err(no_overload_v("_?_:_", &[&v])),
            }
        }
        Node::NotStrictlyFalse(x) => {
            let v = eval(x, env, locals);
            let strictly_false = matches!(v.as_ref().ok().and_then(as_bool), Some(false));
            Ok(V::Cel(Value::Bool(!strictly_false)))
        }
        Node::Bin(op, l, r) => {
            let a = eval(l, env, locals)?;
            let b = eval(r, env, locals)?;
            // A concatenation is charged for the value it builds, before building it.
            if *op == BinOp::Add {
                charge_concat(&a, &b)?;
            }
            if *op == BinOp::Add
                && !(matches!(a, V::Cel(_)) && matches!(b, V::Cel(_)))
                && let (Some(mut x), Some(y)) = (list_items(&a), list_items(&b))
            {
                x.extend(y);
                return Ok(V::Items(Rc::new(x)));
            }
            binary(*op, a, b, env).map(V::Cel)
        }
        Node::Comprehension(c) => comprehension(c, env, locals),
        Node::Builtin(b, target, args) => {
            let t = match target {
                Some(t) => Some(eval(t, env, locals)?),
                None => None,
            };
            let mut vals = Vec::with_capacity(args.len());
            for a in args {
                vals.push(eval(a, env, locals)?);
            }
            builtin(*b, t, vals, env)
        }
        Node::Matches(t, re) => {
            let v = eval(t, env, locals)?;
            match as_str(&v) {
                Some(s) => Ok(V::Cel(Value::Bool(re.is_match(s)))),
                None => Err(no_overload_v("matches", &[&v])),
            }
        }
        Node::Kyverno(f, args) => {
            let mut vals = Vec::with_capacity(args.len());
            for a in args {
                vals.push(materialize_owned(eval(a, env, locals)?, env)?);
            }
            charged(env.kyverno(*f, &vals))
        }
        Node::Delegate { call, target, args } => {
            let t = match target {
                Some(t) => Some(materialize_owned(eval(t, env, locals)?, env)?),
                None => None,
            };
            let mut vals = Vec::with_capacity(args.len());
            for a in args {
                vals.push(materialize_owned(eval(a, env, locals)?, env)?);
            }
            charged(delegate(call, t, vals).map(V::Cel))
        }
    }
}

fn logic_error(op: &str, l: R<'_>, r: R<'_>) -> EvalError {
    match (l, r) {
        (Err(e), _) | (_, Err(e)) => e,
        (Ok(a), Ok(b)) => no_overload_v(op, &[&a, &b]),
    }
}

fn comprehension<'v>(c: &Compr, env: &dyn Env<'v>, locals: &Locals<'v>) -> R<'v> {
    let range = eval(&c.range, env, locals)?;
    let init = eval(&c.init, env, locals);
    set_local(locals, c.accu, init);
    let run = |first: V<'v>, second: Option<V<'v>>| -> bool {
        let cond = eval(&c.cond, env, locals);
        if matches!(cond.as_ref().ok().and_then(as_bool), Some(false)) {
            return false;
        }
        set_local(locals, c.iter_var, Ok(first));
        if let (Some(slot), Some(v)) = (c.iter_var2, second) {
            set_local(locals, slot, Ok(v));
        }
        let step = eval(&c.step, env, locals);
        set_local(locals, c.accu, step);
        true
    };
    let two = c.iter_var2.is_some();
    match &range {
        V::Json(serde_json::Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let keep = if two {
                    run(V::Cel(Value::Int(i as i64)), Some(V::Json(item)))
                } else {
                    run(V::Json(item), None)
                };
                if !keep {
                    break;
                }
            }
        }
        V::Json(serde_json::Value::Object(m)) => {
            for (k, v) in m.iter() {
                let key = V::Cel(Value::String(Arc::new(k.clone())));
                if !run(key, two.then_some(V::Json(v))) {
                    break;
                }
            }
        }
        V::Cel(Value::List(items)) => {
            for (i, item) in items.iter().enumerate() {
                let keep = if two {
                    run(V::Cel(Value::Int(i as i64)), Some(V::Cel(item.clone())))
                } else {
                    run(V::Cel(item.clone()), None)
                };
                if !keep {
                    break;
                }
            }
        }
        V::Cel(Value::Map(m)) => {
            for (k, v) in m.map.iter() {
                if !run(V::Cel(Value::from(k)), two.then(|| V::Cel(v.clone()))) {
                    break;
                }
            }
        }
        V::Items(items) => {
            for (i, item) in items.iter().enumerate() {
                let keep = if two {
                    run(V::Cel(Value::Int(i as i64)), Some(item.clone()))
                } else {
                    run(item.clone(), None)
                };
                if !keep {
                    break;
                }
            }
        }
        V::Request => {
            let m = env.request_value()?;
            return comprehension_over(c, V::Cel(m), env, locals);
        }
        other => return Err(no_overload_v("comprehension range", &[other])),
    }
    eval(&c.result, env, locals)
}

fn comprehension_over<'v>(
    c: &Compr,
    range: V<'v>,
    env: &dyn Env<'v>,
    locals: &Locals<'v>,
) -> R<'v> {
    if let V::Cel(Value::Map(m)) = &range {
        for (k, v) in m.map.iter() {
            let cond = eval(&c.cond, env, locals);
            if matches!(cond.as_ref().ok().and_then(as_bool), Some(false)) {
                break;
            }
            set_local(locals, c.iter_var, Ok(V::Cel(Value::from(k))));
            if let Some(slot) = c.iter_var2 {
                set_local(locals, slot, Ok(V::Cel(v.clone())));
            }
            let step = eval(&c.step, env, locals);
            set_local(locals, c.accu, step);
        }
    }
    eval(&c.result, env, locals)
}

fn set_local<'v>(locals: &Locals<'v>, slot: usize, v: R<'v>) {
    let mut l = locals.borrow_mut();
    if l.len() <= slot {
        l.resize(slot + 1, Ok(V::Cel(Value::Null)));
    }
    l[slot] = v;
}

fn as_optional(v: &Value) -> Option<&OptionalValue> {
    match v {
        Value::Opaque(o) => o.downcast_ref::<OptionalValue>(),
        _ => None,
    }
}

pub(crate) fn some(v: Value) -> Value {
    Value::Opaque(Arc::new(OptionalValue::of(v)))
}

pub(crate) fn none() -> Value {
    Value::Opaque(Arc::new(OptionalValue::none()))
}
