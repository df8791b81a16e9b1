//! A compiled form of `cel` 0.13's AST and a tree-walking evaluator over shared values.
//!
//! `cel` 0.13's own interpreter deep-copies every map and list it binds (each comprehension
//! step clones the element and the accumulator), which made one `all()/exists()` over a Pod
//! cost tens of microseconds. Here the parsed AST is lowered once into [`Node`]s whose
//! identifiers are already resolved (roots, comprehension slots, policy variables, Kyverno
//! libraries), and evaluation works on `cel::Value`, whose lists, maps and strings are
//! reference counted: selecting `object.spec.containers` or binding a comprehension variable
//! is a pointer copy.
//!
//! The core language (literals, selection, indexing, optionals, `has`, comprehension macros,
//! logic with CEL's error absorption, comparison, arithmetic, `in`, `size`, `matches` with a
//! literal pattern, string prefix/suffix/contains) is evaluated here. Every other function
//! (Kubernetes' libraries from `kube-cel`: strings, lists, regex, quantity, url, ip/cidr,
//! semver, format, ...) is delegated to `cel`'s function registry with already evaluated
//! arguments.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use kube_cel::KubeCelExt;
use kube_cel::cel::common::ast::{CallExpr, EntryExpr, Expr, IdedExpr, LiteralValue, operators};
use kube_cel::cel::objects::{Key, KeyRef, Map, OptionalValue};
use kube_cel::cel::{Context, Value};

use super::kyverno::{self, KyvernoFn};
use super::value::type_name;

/// An evaluation error (the message only; the caller adds the expression).
#[derive(Debug, Clone, PartialEq)]
pub struct EvalError(pub String);

impl EvalError {
    fn new(msg: impl Into<String>) -> Self {
        EvalError(msg.into())
    }
}

pub(crate) type EvalResult = Result<Value, EvalError>;

/// The variables every expression may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Root {
    Object,
    OldObject,
    Request,
    NamespaceObject,
    Params,
}

/// Binary operators evaluated natively.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}

/// Functions evaluated natively.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Builtin {
    Size,
    StartsWith,
    EndsWith,
    Contains,
    OrValue,
    Or,
    HasValue,
    OptValue,
    OptionalOf,
    OptionalNone,
    OptionalOfNonZero,
}

/// A lowered expression.
#[derive(Debug)]
pub(crate) enum Node {
    Lit(Value),
    Root(Root),
    /// `variables.NAME`
    Var(Arc<str>),
    /// bare `variables`
    AllVars,
    Local(usize),
    Select {
        operand: Box<Node>,
        field: Arc<String>,
        test: bool,
    },
    OptSelect {
        operand: Box<Node>,
        field: Arc<String>,
    },
    Index {
        operand: Box<Node>,
        index: Box<Node>,
        optional: bool,
    },
    List(Vec<(Node, bool)>),
    MapLit(Vec<(Node, Node, bool)>),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Not(Box<Node>),
    Neg(Box<Node>),
    Cond(Box<Node>, Box<Node>, Box<Node>),
    NotStrictlyFalse(Box<Node>),
    Bin(BinOp, Box<Node>, Box<Node>),
    Comprehension(Box<Compr>),
    Builtin(Builtin, Option<Box<Node>>, Vec<Node>),
    Matches(Box<Node>, Arc<regex::Regex>),
    Kyverno(KyvernoFn, Vec<Node>),
    Delegate {
        call: Box<IdedExpr>,
        target: Option<Box<Node>>,
        args: Vec<Node>,
    },
}

#[derive(Debug)]
pub(crate) struct Compr {
    range: Node,
    iter_var: usize,
    iter_var2: Option<usize>,
    accu: usize,
    init: Node,
    cond: Node,
    step: Node,
    result: Node,
}

/// What a compiled expression refers to.
#[derive(Debug, Default, Clone)]
pub(crate) struct Refs {
    /// `variables.NAME` names, in first-use order.
    pub variables: Vec<Arc<str>>,
    /// Whether bare `variables` is used.
    pub all_variables: bool,
}

/// Lowering state.
pub(crate) struct Lowering {
    scopes: Vec<String>,
    pub max_slots: usize,
    pub refs: Refs,
}

const TARGET_VAR: &str = "@t";
const ARG_VARS: [&str; 8] = ["@a0", "@a1", "@a2", "@a3", "@a4", "@a5", "@a6", "@a7"];

impl Lowering {
    pub fn new() -> Self {
        Lowering {
            scopes: Vec::new(),
            max_slots: 0,
            refs: Refs::default(),
        }
    }

    fn local(&self, name: &str) -> Option<usize> {
        self.scopes.iter().rposition(|s| s == name)
    }

    fn push(&mut self, name: &str) -> usize {
        self.scopes.push(name.to_owned());
        self.max_slots = self.max_slots.max(self.scopes.len());
        self.scopes.len() - 1
    }

    pub fn lower(&mut self, e: &IdedExpr) -> Result<Node, String> {
        Ok(match &e.expr {
            Expr::Literal(l) => Node::Lit(literal(l)),
            Expr::Ident(name) => self.ident(name)?,
            Expr::Select(s) => {
                if let Expr::Ident(base) = &s.operand.expr
                    && base == "variables"
                    && self.local("variables").is_none()
                {
                    if s.test {
                        return Err("unsupported: has() on variables".to_owned());
                    }
                    let name: Arc<str> = Arc::from(s.field.as_str());
                    if !self.refs.variables.contains(&name) {
                        self.refs.variables.push(name.clone());
                    }
                    return Ok(Node::Var(name));
                }
                Node::Select {
                    operand: Box::new(self.lower(&s.operand)?),
                    field: Arc::new(s.field.clone()),
                    test: s.test,
                }
            }
            Expr::List(l) => {
                let mut out = Vec::with_capacity(l.elements.len());
                for (i, el) in l.elements.iter().enumerate() {
                    out.push((self.lower(el)?, l.optional_indices.contains(&i)));
                }
                Node::List(out)
            }
            Expr::Map(m) => {
                let mut out = Vec::with_capacity(m.entries.len());
                for entry in &m.entries {
                    match &entry.expr {
                        EntryExpr::MapEntry(me) => {
                            out.push((self.lower(&me.key)?, self.lower(&me.value)?, me.optional))
                        }
                        EntryExpr::StructField(_) => {
                            return Err("struct fields in a map literal".to_owned());
                        }
                    }
                }
                Node::MapLit(out)
            }
            Expr::Comprehension(c) => {
                let range = self.lower(&c.iter_range)?;
                let init = self.lower(&c.accu_init)?;
                let depth = self.scopes.len();
                let iter_var = self.push(&c.iter_var);
                let iter_var2 = c.iter_var2.as_deref().map(|v| self.push(v));
                let accu = self.push(&c.accu_var);
                let cond = self.lower(&c.loop_cond)?;
                let step = self.lower(&c.loop_step)?;
                let result = self.lower(&c.result)?;
                self.scopes.truncate(depth);
                Node::Comprehension(Box::new(Compr {
                    range,
                    iter_var,
                    iter_var2,
                    accu,
                    init,
                    cond,
                    step,
                    result,
                }))
            }
            Expr::Call(call) => self.call(call)?,
            Expr::Struct(s) => {
                return Err(format!(
                    "unsupported: message construction ({}{{...}})",
                    s.type_name
                ));
            }
            Expr::Unspecified => return Err("unspecified expression".to_owned()),
        })
    }

    fn ident(&mut self, name: &str) -> Result<Node, String> {
        if let Some(slot) = self.local(name) {
            return Ok(Node::Local(slot));
        }
        Ok(match name {
            "object" => Node::Root(Root::Object),
            "oldObject" => Node::Root(Root::OldObject),
            "request" => Node::Root(Root::Request),
            "namespaceObject" => Node::Root(Root::NamespaceObject),
            "params" => Node::Root(Root::Params),
            "variables" => {
                self.refs.all_variables = true;
                Node::AllVars
            }
            "authorizer" => return Err("unsupported: the authorizer library".to_owned()),
            other => return Err(format!("undeclared reference to '{other}'")),
        })
    }

    fn bx(&mut self, e: &IdedExpr) -> Result<Box<Node>, String> {
        Ok(Box::new(self.lower(e)?))
    }

    fn call(&mut self, call: &CallExpr) -> Result<Node, String> {
        let a = &call.args;
        let name = call.func_name.as_str();
        if call.target.is_none() {
            match (name, a.len()) {
                (operators::CONDITIONAL, 3) => {
                    return Ok(Node::Cond(
                        self.bx(&a[0])?,
                        self.bx(&a[1])?,
                        self.bx(&a[2])?,
                    ));
                }
                (operators::LOGICAL_AND, 2) => {
                    return Ok(Node::And(self.bx(&a[0])?, self.bx(&a[1])?));
                }
                (operators::LOGICAL_OR, 2) => {
                    return Ok(Node::Or(self.bx(&a[0])?, self.bx(&a[1])?));
                }
                (operators::LOGICAL_NOT, 1) => return Ok(Node::Not(self.bx(&a[0])?)),
                (operators::NEGATE, 1) => return Ok(Node::Neg(self.bx(&a[0])?)),
                (operators::NOT_STRICTLY_FALSE, 1) => {
                    return Ok(Node::NotStrictlyFalse(self.bx(&a[0])?));
                }
                (operators::INDEX, 2) | (operators::OPT_INDEX, 2) => {
                    return Ok(Node::Index {
                        operand: self.bx(&a[0])?,
                        index: self.bx(&a[1])?,
                        optional: name == operators::OPT_INDEX,
                    });
                }
                (operators::OPT_SELECT, 2) => {
                    let field = match &a[1].expr {
                        Expr::Literal(LiteralValue::String(s)) => s.inner().to_owned(),
                        _ => return Err("optional selection needs a field name".to_owned()),
                    };
                    return Ok(Node::OptSelect {
                        operand: self.bx(&a[0])?,
                        field: Arc::new(field),
                    });
                }
                (op, 2) => {
                    let bin = match op {
                        operators::EQUALS => Some(BinOp::Eq),
                        operators::NOT_EQUALS => Some(BinOp::Ne),
                        operators::LESS => Some(BinOp::Lt),
                        operators::LESS_EQUALS => Some(BinOp::Le),
                        operators::GREATER => Some(BinOp::Gt),
                        operators::GREATER_EQUALS => Some(BinOp::Ge),
                        operators::IN => Some(BinOp::In),
                        operators::ADD => Some(BinOp::Add),
                        operators::SUBSTRACT => Some(BinOp::Sub),
                        operators::MULTIPLY => Some(BinOp::Mul),
                        operators::DIVIDE => Some(BinOp::Div),
                        operators::MODULO => Some(BinOp::Mod),
                        _ => None,
                    };
                    if let Some(bin) = bin {
                        return Ok(Node::Bin(bin, self.bx(&a[0])?, self.bx(&a[1])?));
                    }
                }
                _ => {}
            }
            let builtin = match (name, a.len()) {
                ("size", 1) => Some(Builtin::Size),
                ("optional.of", 1) => Some(Builtin::OptionalOf),
                ("optional.none", 0) => Some(Builtin::OptionalNone),
                ("optional.ofNonZeroValue", 1) => Some(Builtin::OptionalOfNonZero),
                _ => None,
            };
            if let Some(b) = builtin {
                let args = a.iter().map(|x| self.lower(x)).collect::<Result<_, _>>()?;
                return Ok(Node::Builtin(b, None, args));
            }
        }
        if let Some(target) = &call.target
            && let Expr::Ident(ns) = &target.expr
            && ns == "optional"
            && self.local("optional").is_none()
        {
            let b = match (name, a.len()) {
                ("of", 1) => Builtin::OptionalOf,
                ("none", 0) => Builtin::OptionalNone,
                ("ofNonZeroValue", 1) => Builtin::OptionalOfNonZero,
                _ => return Err(format!("undeclared reference to 'optional.{name}'")),
            };
            let args = a.iter().map(|x| self.lower(x)).collect::<Result<_, _>>()?;
            return Ok(Node::Builtin(b, None, args));
        }
        if let Some(target) = &call.target {
            // Kyverno's libraries: `resource.get(...)`, `image.GetMetadata(...)`, ...
            if let Expr::Ident(lib) = &target.expr
                && self.local(lib).is_none()
                && let Some(f) = kyverno::lookup(lib, name, a.len())?
            {
                let args = a.iter().map(|x| self.lower(x)).collect::<Result<_, _>>()?;
                return Ok(Node::Kyverno(f, args));
            }
            let builtin = match (name, a.len()) {
                ("size", 0) => Some(Builtin::Size),
                ("startsWith", 1) => Some(Builtin::StartsWith),
                ("endsWith", 1) => Some(Builtin::EndsWith),
                ("contains", 1) => Some(Builtin::Contains),
                ("orValue", 1) => Some(Builtin::OrValue),
                ("or", 1) => Some(Builtin::Or),
                ("hasValue", 0) => Some(Builtin::HasValue),
                ("value", 0) => Some(Builtin::OptValue),
                _ => None,
            };
            if let Some(b) = builtin {
                let t = self.bx(target)?;
                let args = a.iter().map(|x| self.lower(x)).collect::<Result<_, _>>()?;
                return Ok(Node::Builtin(b, Some(t), args));
            }
            if name == "matches"
                && a.len() == 1
                && let Expr::Literal(LiteralValue::String(p)) = &a[0].expr
            {
                let re = regex::Regex::new(p.inner())
                    .map_err(|e| format!("invalid regular expression {:?}: {e}", p.inner()))?;
                return Ok(Node::Matches(self.bx(target)?, Arc::new(re)));
            }
        }
        // Everything else: Kubernetes' and CEL's function libraries.
        if a.len() > ARG_VARS.len() {
            return Err(format!("{name}: too many arguments"));
        }
        let ident = |n: &str| IdedExpr {
            id: 0,
            expr: Expr::Ident(n.to_owned()),
        };
        let synthetic = IdedExpr {
            id: 0,
            expr: Expr::Call(CallExpr {
                func_name: call.func_name.clone(),
                target: call.target.as_ref().map(|_| Box::new(ident(TARGET_VAR))),
                args: (0..a.len()).map(|i| ident(ARG_VARS[i])).collect(),
            }),
        };
        let target = match &call.target {
            Some(t) => Some(self.bx(t)?),
            None => None,
        };
        let args = a.iter().map(|x| self.lower(x)).collect::<Result<_, _>>()?;
        Ok(Node::Delegate {
            call: Box::new(synthetic),
            target,
            args,
        })
    }
}

fn literal(l: &LiteralValue) -> Value {
    match l {
        LiteralValue::Boolean(b) => Value::Bool(*b.inner()),
        LiteralValue::Bytes(b) => Value::Bytes(Arc::new(b.inner().to_vec())),
        LiteralValue::Double(d) => Value::Float(*d.inner()),
        LiteralValue::Int(i) => Value::Int(*i.inner()),
        LiteralValue::Null => Value::Null,
        LiteralValue::String(s) => Value::String(Arc::new(s.inner().to_owned())),
        LiteralValue::UInt(u) => Value::UInt(*u.inner()),
    }
}

thread_local! {
    /// `cel`'s standard functions plus every `kube-cel` library, built once per thread.
    static LIBRARY: Context<'static> = Context::default().with_all();
}

/// Where evaluation finds roots, variables and Kyverno's context data.
pub(crate) trait Env {
    fn root(&self, r: Root) -> EvalResult;
    fn variable(&self, name: &str) -> EvalResult;
    fn all_variables(&self) -> EvalResult;
    fn kyverno(&self, f: KyvernoFn, args: &[Value]) -> EvalResult;
}

/// Evaluates `node` with comprehension slots in `locals`.
pub(crate) fn eval(
    node: &Node,
    env: &dyn Env,
    locals: &RefCell<Vec<Result<Value, EvalError>>>,
) -> EvalResult {
    match node {
        Node::Lit(v) => Ok(v.clone()),
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
            if let Some(opt) = as_optional(&v) {
                return Ok(match opt.value() {
                    None => none(),
                    Some(inner) => some(select(inner, field, *test)?),
                });
            }
            select(&v, field, *test)
        }
        Node::OptSelect { operand, field } => {
            let v = eval(operand, env, locals)?;
            let target = match as_optional(&v) {
                Some(opt) => match opt.value() {
                    None => return Ok(none()),
                    Some(inner) => inner.clone(),
                },
                None => v,
            };
            match &target {
                Value::Map(m) => Ok(match m.get(&KeyRef::String(field.as_str())) {
                    Some(x) => some(x.clone()),
                    None => none(),
                }),
                other => Err(EvalError::new(format!(
                    "no such key: {field} (optional selection on {})",
                    type_name(other)
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
            let (target, optional) = match as_optional(&v) {
                Some(opt) => match opt.value() {
                    None => return Ok(none()),
                    Some(inner) => (inner.clone(), true),
                },
                None => (v, *optional),
            };
            let r = index_value(&target, &i);
            if optional {
                Ok(match r {
                    Ok(x) => some(x),
                    Err(_) => none(),
                })
            } else {
                r
            }
        }
        Node::List(elems) => {
            let mut out = Vec::with_capacity(elems.len());
            for (e, optional) in elems {
                let v = eval(e, env, locals)?;
                if *optional {
                    match as_optional(&v) {
                        Some(opt) => {
                            if let Some(inner) = opt.value() {
                                out.push(inner.clone());
                            }
                        }
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
            Ok(Value::List(Arc::new(out)))
        }
        Node::MapLit(entries) => {
            let mut out = HashMap::with_capacity(entries.len());
            for (k, v, optional) in entries {
                let key = to_key(&eval(k, env, locals)?)?;
                let v = eval(v, env, locals)?;
                let v = if *optional {
                    match as_optional(&v) {
                        Some(opt) => match opt.value() {
                            Some(inner) => inner.clone(),
                            None => continue,
                        },
                        None => {
                            return Err(EvalError::new(
                                "optional map entry is not an optional value",
                            ));
                        }
                    }
                } else {
                    v
                };
                if out.insert(key.clone(), v).is_some() {
                    return Err(EvalError::new(format!(
                        "repeated key in map literal: {key}"
                    )));
                }
            }
            Ok(Value::Map(Map { map: Arc::new(out) }))
        }
        Node::And(l, r) => {
            let lv = eval(l, env, locals);
            if matches!(lv, Ok(Value::Bool(false))) {
                return Ok(Value::Bool(false));
            }
            let rv = eval(r, env, locals);
            match (lv, rv) {
                (_, Ok(Value::Bool(false))) => Ok(Value::Bool(false)),
                (Ok(Value::Bool(true)), Ok(Value::Bool(true))) => Ok(Value::Bool(true)),
                (Err(e), _) => Err(e),
                (_, Err(e)) => Err(e),
                (Ok(a), Ok(b)) => Err(no_overload("_&&_", &[&a, &b])),
            }
        }
        Node::Or(l, r) => {
            let lv = eval(l, env, locals);
            if matches!(lv, Ok(Value::Bool(true))) {
                return Ok(Value::Bool(true));
            }
            let rv = eval(r, env, locals);
            match (lv, rv) {
                (_, Ok(Value::Bool(true))) => Ok(Value::Bool(true)),
                (Ok(Value::Bool(false)), Ok(Value::Bool(false))) => Ok(Value::Bool(false)),
                (Err(e), _) => Err(e),
                (_, Err(e)) => Err(e),
                (Ok(a), Ok(b)) => Err(no_overload("_||_", &[&a, &b])),
            }
        }
        Node::Not(x) => match eval(x, env, locals)? {
            Value::Bool(b) => Ok(Value::Bool(!b)),
            other => Err(no_overload("!_", &[&other])),
        },
        Node::Neg(x) => match eval(x, env, locals)? {
            Value::Int(i) => i
                .checked_neg()
                .map(Value::Int)
                .ok_or_else(|| EvalError::new("integer overflow")),
            Value::Float(f) => Ok(Value::Float(-f)),
            other => Err(no_overload("-_", &[&other])),
        },
        Node::Cond(c, t, f) => match eval(c, env, locals)? {
            Value::Bool(true) => eval(t, env, locals),
            Value::Bool(false) => eval(f, env, locals),
            other => Err(no_overload("_?_:_", &[&other])),
        },
        Node::NotStrictlyFalse(x) => Ok(Value::Bool(!matches!(
            eval(x, env, locals),
            Ok(Value::Bool(false))
        ))),
        Node::Bin(op, l, r) => {
            let a = eval(l, env, locals)?;
            let b = eval(r, env, locals)?;
            binary(*op, a, b)
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
            builtin(*b, t, vals)
        }
        Node::Matches(t, re) => match eval(t, env, locals)? {
            Value::String(s) => Ok(Value::Bool(re.is_match(&s))),
            other => Err(no_overload("matches", &[&other])),
        },
        Node::Kyverno(f, args) => {
            let mut vals = Vec::with_capacity(args.len());
            for a in args {
                vals.push(eval(a, env, locals)?);
            }
            env.kyverno(*f, &vals)
        }
        Node::Delegate { call, target, args } => {
            let t = match target {
                Some(t) => Some(eval(t, env, locals)?),
                None => None,
            };
            let mut vals = Vec::with_capacity(args.len());
            for a in args {
                vals.push(eval(a, env, locals)?);
            }
            delegate(call, t, vals)
        }
    }
}

/// Overloads `cel` 0.13 lacks (checked before delegating).
fn native_override(name: &str, target: &Option<Value>, args: &[Value]) -> Option<EvalResult> {
    match (name, target, args) {
        ("string", None, [v]) => Some(Ok(Value::String(Arc::new(match v {
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::UInt(u) => u.to_string(),
            Value::String(s) => return Some(Ok(Value::String(s.clone()))),
            _ => return None,
        })))),
        _ => None,
    }
}

fn delegate(call: &IdedExpr, target: Option<Value>, args: Vec<Value>) -> EvalResult {
    if let Expr::Call(c) = &call.expr
        && let Some(r) = native_override(&c.func_name, &target, &args)
    {
        return r;
    }
    LIBRARY.with(|lib| {
        let mut scope = lib.new_inner_scope();
        if let Some(t) = target {
            scope.add_variable_from_value(TARGET_VAR, t);
        }
        for (i, a) in args.into_iter().enumerate() {
            scope.add_variable_from_value(ARG_VARS[i], a);
        }
        Value::resolve(call, &scope).map_err(|e| {
            let name = match &call.expr {
                Expr::Call(c) => c.func_name.as_str(),
                _ => "?",
            };
            EvalError::new(format!("{name}: {e}"))
        })
    })
}

fn comprehension(
    c: &Compr,
    env: &dyn Env,
    locals: &RefCell<Vec<Result<Value, EvalError>>>,
) -> EvalResult {
    let range = eval(&c.range, env, locals)?;
    let init = eval(&c.init, env, locals);
    set_local(locals, c.accu, init);
    let run = |first: Value, second: Option<Value>| -> Result<bool, EvalError> {
        if matches!(eval(&c.cond, env, locals), Ok(Value::Bool(false))) {
            return Ok(false);
        }
        set_local(locals, c.iter_var, Ok(first));
        if let (Some(slot), Some(v)) = (c.iter_var2, second) {
            set_local(locals, slot, Ok(v));
        }
        let step = eval(&c.step, env, locals);
        set_local(locals, c.accu, step);
        Ok(true)
    };
    match &range {
        Value::List(items) => {
            for (i, item) in items.iter().enumerate() {
                let keep = if c.iter_var2.is_some() {
                    run(Value::Int(i as i64), Some(item.clone()))?
                } else {
                    run(item.clone(), None)?
                };
                if !keep {
                    break;
                }
            }
        }
        Value::Map(m) => {
            for (k, v) in m.map.iter() {
                if !run(Value::from(k), c.iter_var2.map(|_| v.clone()))? {
                    break;
                }
            }
        }
        other => return Err(no_overload("comprehension range", &[other])),
    }
    eval(&c.result, env, locals)
}

fn set_local(locals: &RefCell<Vec<Result<Value, EvalError>>>, slot: usize, v: EvalResult) {
    let mut l = locals.borrow_mut();
    if l.len() <= slot {
        l.resize(slot + 1, Ok(Value::Null));
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

fn select(v: &Value, field: &str, test: bool) -> EvalResult {
    match v {
        Value::Map(m) => match m.get(&KeyRef::String(field)) {
            Some(x) => Ok(if test { Value::Bool(true) } else { x.clone() }),
            None if test => Ok(Value::Bool(false)),
            None => Err(EvalError::new(format!("no such key: {field}"))),
        },
        other => Err(EvalError::new(format!(
            "no such key: {field} (selection on {})",
            type_name(other)
        ))),
    }
}

fn index_value(target: &Value, i: &Value) -> EvalResult {
    match target {
        Value::Map(m) => {
            let key = to_keyref(i)?;
            m.get(&key)
                .cloned()
                .ok_or_else(|| EvalError::new(format!("no such key: {}", super::value::display(i))))
        }
        Value::List(l) => {
            let idx = match i {
                Value::Int(n) => *n,
                Value::UInt(n) => i64::try_from(*n).unwrap_or(i64::MAX),
                Value::Float(f) if f.fract() == 0.0 => *f as i64,
                other => return Err(no_overload("_[_]", &[target, other])),
            };
            usize::try_from(idx)
                .ok()
                .and_then(|n| l.get(n))
                .cloned()
                .ok_or_else(|| EvalError::new(format!("index out of bounds: {idx}")))
        }
        other => Err(no_overload("_[_]", &[other, i])),
    }
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

fn to_key(v: &Value) -> Result<Key, EvalError> {
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

fn no_overload(op: &str, args: &[&Value]) -> EvalError {
    let types: Vec<String> = args.iter().map(|v| type_name(v)).collect();
    EvalError::new(format!(
        "no matching overload for '{op}' applied to ({})",
        types.join(", ")
    ))
}

fn binary(op: BinOp, a: Value, b: Value) -> EvalResult {
    use std::cmp::Ordering;
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
        BinOp::Eq => Value::Bool(a == b),
        BinOp::Ne => Value::Bool(a != b),
        BinOp::Lt => Value::Bool(cmp(&a, &b, "_<_")? == Ordering::Less),
        BinOp::Le => Value::Bool(cmp(&a, &b, "_<=_")? != Ordering::Greater),
        BinOp::Gt => Value::Bool(cmp(&a, &b, "_>_")? == Ordering::Greater),
        BinOp::Ge => Value::Bool(cmp(&a, &b, "_>=_")? != Ordering::Less),
        BinOp::In => match &b {
            Value::List(l) => Value::Bool(l.contains(&a)),
            Value::Map(m) => match to_keyref(&a) {
                Ok(k) => Value::Bool(m.get(&k).is_some()),
                Err(_) => Value::Bool(false),
            },
            _ => return Err(no_overload("@in", &[&a, &b])),
        },
        BinOp::Add => arith(a + b)?,
        BinOp::Sub => arith(a - b)?,
        BinOp::Mul => arith(a * b)?,
        BinOp::Div => arith(a / b)?,
        BinOp::Mod => arith(a % b)?,
    })
}

fn builtin(b: Builtin, target: Option<Value>, args: Vec<Value>) -> EvalResult {
    let mut args = args.into_iter();
    let mut next = || args.next().unwrap_or(Value::Null);
    let str_pair = |t: &Option<Value>,
                    a: &Value,
                    name: &str|
     -> Result<(Arc<String>, Arc<String>), EvalError> {
        match (t, a) {
            (Some(Value::String(x)), Value::String(y)) => Ok((x.clone(), y.clone())),
            (Some(x), y) => Err(no_overload(name, &[x, y])),
            (None, y) => Err(no_overload(name, &[y])),
        }
    };
    match b {
        Builtin::Size => {
            let v = match target {
                Some(t) => t,
                None => next(),
            };
            let n = match &v {
                Value::String(s) => s.chars().count(),
                Value::Bytes(b) => b.len(),
                Value::List(l) => l.len(),
                Value::Map(m) => m.map.len(),
                other => return Err(no_overload("size", &[other])),
            };
            Ok(Value::Int(i64::try_from(n).unwrap_or(i64::MAX)))
        }
        Builtin::StartsWith => {
            let (s, p) = str_pair(&target, &next(), "startsWith")?;
            Ok(Value::Bool(s.starts_with(p.as_str())))
        }
        Builtin::EndsWith => {
            let (s, p) = str_pair(&target, &next(), "endsWith")?;
            Ok(Value::Bool(s.ends_with(p.as_str())))
        }
        Builtin::Contains => {
            let (s, p) = str_pair(&target, &next(), "contains")?;
            Ok(Value::Bool(s.contains(p.as_str())))
        }
        Builtin::OrValue | Builtin::Or | Builtin::HasValue | Builtin::OptValue => {
            let t = target.unwrap_or(Value::Null);
            let Some(opt) = as_optional(&t) else {
                let name = match b {
                    Builtin::OrValue => "orValue",
                    Builtin::Or => "or",
                    Builtin::HasValue => "hasValue",
                    _ => "value",
                };
                return Err(no_overload(name, &[&t]));
            };
            match b {
                Builtin::OrValue => Ok(opt.value().cloned().unwrap_or_else(next)),
                Builtin::Or => {
                    if opt.value().is_some() {
                        Ok(t.clone())
                    } else {
                        let other = next();
                        if as_optional(&other).is_none() {
                            return Err(no_overload("or", &[&t, &other]));
                        }
                        Ok(other)
                    }
                }
                Builtin::HasValue => Ok(Value::Bool(opt.value().is_some())),
                _ => opt
                    .value()
                    .cloned()
                    .ok_or_else(|| EvalError::new("optional.none() dereference")),
            }
        }
        Builtin::OptionalOf => Ok(some(next())),
        Builtin::OptionalNone => Ok(none()),
        Builtin::OptionalOfNonZero => {
            let v = next();
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
            Ok(if zero { none() } else { some(v) })
        }
    }
}
