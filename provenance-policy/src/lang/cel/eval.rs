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

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
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
    /// An ImageValidatingPolicy binding (`images`, `attestors`, `attestations`, `ref`).
    Image(super::ImageBinding),
}

/// Which identifiers and functions an expression may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Dialect {
    /// ValidatingPolicy, ClusterPolicy `validate.cel`, admission policies.
    #[default]
    Standard,
    /// ImageValidatingPolicy: adds `images`, `attestors`, `attestations` and the image
    /// verification functions.
    ImagePolicy,
    /// An ImageValidatingPolicy `matchImageReferences` expression: `ref` and the image library.
    ImageMatch,
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
    /// `type(x)`: the type of `x`, a value equal only to the same type.
    TypeOf,
    /// Methods of Kyverno's image reference type.
    Image(ImageMethod),
}

/// `registry()`, `repository()`, ... on a Kyverno image reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ImageMethod {
    Registry,
    Repository,
    Identifier,
    Tag,
    Digest,
    ContainsDigest,
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
    pub dialect: Dialect,
    pub max_slots: usize,
    pub refs: Refs,
}

const TARGET_VAR: &str = "@t";
const ARG_VARS: [&str; 8] = ["@a0", "@a1", "@a2", "@a3", "@a4", "@a5", "@a6", "@a7"];

/// Why an expression cannot be lowered to the evaluator's tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LowerError {
    /// It uses something this engine does not implement (a Kyverno CEL library, the
    /// authorizer, ...): the policy is evaluated as unsupported, never as passing.
    Unsupported(String),
    /// It is not a valid expression.
    Invalid(String),
}

impl From<String> for LowerError {
    fn from(reason: String) -> Self {
        LowerError::Invalid(reason)
    }
}

impl Lowering {
    pub fn new() -> Self {
        Lowering {
            scopes: Vec::new(),
            dialect: Dialect::Standard,
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

    pub fn lower(&mut self, e: &IdedExpr) -> Result<Node, LowerError> {
        Ok(match &e.expr {
            Expr::Literal(l) => Node::Lit(literal(l)),
            Expr::Ident(name) => self.ident(name)?,
            Expr::Select(s) => {
                if let Expr::Ident(base) = &s.operand.expr
                    && base == "variables"
                    && self.local("variables").is_none()
                {
                    if s.test {
                        return Err(LowerError::Unsupported("has() on variables".to_owned()));
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
                            return Err(LowerError::Invalid(
                                "struct fields in a map literal".to_owned(),
                            ));
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
            Expr::Struct(s) => self.object_construction(s)?,
            Expr::Unspecified => {
                return Err(LowerError::Invalid("unspecified expression".to_owned()));
            }
        })
    }

    /// Typed object construction as Kubernetes' mutating admission policies use it:
    /// `Object{...}` and `Object.<field path>{...}` (apply configurations) and
    /// `JSONPatch{op, path, from, value}`. Both are plain maps here, which is how apply
    /// configurations and patch operations are read. Other message types are unsupported.
    fn object_construction(
        &mut self,
        s: &kube_cel::cel::common::ast::StructExpr,
    ) -> Result<Node, LowerError> {
        let name = s.type_name.as_str();
        let is_object = name == "Object" || name.starts_with("Object.");
        let is_patch = name == "JSONPatch";
        if !is_object && !is_patch {
            return Err(LowerError::Unsupported(format!(
                "message construction ({name}{{...}})"
            )));
        }
        let mut out = Vec::with_capacity(s.entries.len());
        for entry in &s.entries {
            let EntryExpr::StructField(f) = &entry.expr else {
                return Err(LowerError::Invalid(format!(
                    "map entry in the construction of {name}"
                )));
            };
            if is_patch && !matches!(f.field.as_str(), "op" | "path" | "from" | "value") {
                return Err(LowerError::Invalid(format!(
                    "JSONPatch has no field {:?} (op, path, from, value)",
                    f.field
                )));
            }
            if out.iter().any(|(k, _, _): &(Node, Node, bool)| {
                matches!(k, Node::Lit(Value::String(x)) if x.as_str() == f.field)
            }) {
                return Err(LowerError::Invalid(format!(
                    "field {:?} set twice in {name}{{...}}",
                    f.field
                )));
            }
            // A typed literal set directly as a field must be of that field's type
            // (`Object.spec{...}` at `spec` of `Object{...}`), as Kubernetes checks.
            if is_object
                && let Expr::Struct(inner) = &f.value.expr
                && inner.type_name != format!("{name}.{}", f.field)
            {
                return Err(LowerError::Invalid(format!(
                    "type mismatch: {}{{...}} set as field {:?} of {name}{{...}} (expected {name}.{})",
                    inner.type_name, f.field, f.field
                )));
            }
            out.push((
                Node::Lit(Value::String(Arc::new(f.field.clone()))),
                self.lower(&f.value)?,
                f.optional,
            ));
        }
        Ok(Node::MapLit(out))
    }

    fn ident(&mut self, name: &str) -> Result<Node, LowerError> {
        if let Some(slot) = self.local(name) {
            return Ok(Node::Local(slot));
        }
        Ok(match name {
            "object" => Node::Root(Root::Object),
            "oldObject" => Node::Root(Root::OldObject),
            "request" => Node::Root(Root::Request),
            "namespaceObject" => Node::Root(Root::NamespaceObject),
            "params" => Node::Root(Root::Params),
            "images" if self.dialect == Dialect::ImagePolicy => {
                Node::Root(Root::Image(super::ImageBinding::Images))
            }
            "attestors" if self.dialect == Dialect::ImagePolicy => {
                Node::Root(Root::Image(super::ImageBinding::Attestors))
            }
            "attestations" if self.dialect == Dialect::ImagePolicy => {
                Node::Root(Root::Image(super::ImageBinding::Attestations))
            }
            "ref" if self.dialect == Dialect::ImageMatch => {
                Node::Root(Root::Image(super::ImageBinding::Ref))
            }
            "variables" => {
                self.refs.all_variables = true;
                Node::AllVars
            }
            "authorizer" => {
                return Err(LowerError::Unsupported("the authorizer library".to_owned()));
            }
            // The type names, as values `type(x)` is compared with.
            "null_type" | "int" | "uint" | "double" | "bool" | "string" | "bytes" | "list"
            | "map" | "type" => Node::Lit(type_value(name)),
            other => {
                return Err(LowerError::Invalid(format!(
                    "undeclared reference to '{other}'"
                )));
            }
        })
    }

    fn bx(&mut self, e: &IdedExpr) -> Result<Box<Node>, LowerError> {
        Ok(Box::new(self.lower(e)?))
    }

    fn call(&mut self, call: &CallExpr) -> Result<Node, LowerError> {
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
                        _ => {
                            return Err(LowerError::Invalid(
                                "optional selection needs a field name".to_owned(),
                            ));
                        }
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
            // `dyn(x)` only changes the static type cel-go checks: the value is `x`.
            if name == "dyn" && a.len() == 1 && self.local("dyn").is_none() {
                return self.lower(&a[0]);
            }
            if let Some(f) = kyverno::lookup("", name, a.len())? {
                if f.is_image_verification() && self.dialect != Dialect::ImagePolicy {
                    return Err(LowerError::Invalid(format!(
                        "undeclared reference to '{name}' (only ImageValidatingPolicy expressions may verify images)"
                    )));
                }
                let args = a.iter().map(|x| self.lower(x)).collect::<Result<_, _>>()?;
                return Ok(Node::Kyverno(f, args));
            }
            let builtin = match (name, a.len()) {
                ("size", 1) => Some(Builtin::Size),
                ("type", 1) => Some(Builtin::TypeOf),
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
        // `cel.bind(name, init, body)`: `body` with `name` bound to `init` (a comprehension
        // over an empty list, as cel-go expands the macro).
        if let Some(target) = &call.target
            && let Expr::Ident(ns) = &target.expr
            && ns == "cel"
            && name == "bind"
            && self.local("cel").is_none()
            && let [var, init, body] = a.as_slice()
        {
            let Expr::Ident(var) = &var.expr else {
                return Err(LowerError::Invalid(
                    "cel.bind: the first argument must be an identifier".to_owned(),
                ));
            };
            let init = self.lower(init)?;
            let depth = self.scopes.len();
            let iter_var = self.push("@bind");
            let accu = self.push(var);
            let result = self.lower(body)?;
            self.scopes.truncate(depth);
            return Ok(Node::Comprehension(Box::new(Compr {
                range: Node::List(Vec::new()),
                iter_var,
                iter_var2: None,
                accu,
                init,
                cond: Node::Lit(Value::Bool(false)),
                step: Node::Local(accu),
                result,
            })));
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
                _ => {
                    return Err(LowerError::Invalid(format!(
                        "undeclared reference to 'optional.{name}'"
                    )));
                }
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
                ("registry", 0) => Some(Builtin::Image(ImageMethod::Registry)),
                ("repository", 0) => Some(Builtin::Image(ImageMethod::Repository)),
                ("identifier", 0) => Some(Builtin::Image(ImageMethod::Identifier)),
                ("tag", 0) => Some(Builtin::Image(ImageMethod::Tag)),
                ("digest", 0) => Some(Builtin::Image(ImageMethod::Digest)),
                ("containsDigest", 0) => Some(Builtin::Image(ImageMethod::ContainsDigest)),
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
                let re = crate::re2::compile(p.inner())
                    .map_err(|e| format!("invalid regular expression {:?}: {e}", p.inner()))?;
                return Ok(Node::Matches(self.bx(target)?, Arc::new(re)));
            }
        }
        // Everything else: Kubernetes' and CEL's function libraries.
        if a.len() > ARG_VARS.len() {
            return Err(LowerError::Invalid(format!("{name}: too many arguments")));
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

/// The depth of a parsed expression, computed without recursion.
pub(crate) fn ast_depth(e: &IdedExpr) -> usize {
    let mut max = 0;
    let mut stack = vec![(e, 1usize)];
    while let Some((e, d)) = stack.pop() {
        max = max.max(d);
        match &e.expr {
            Expr::Call(c) => {
                if let Some(t) = &c.target {
                    stack.push((t, d + 1));
                }
                stack.extend(c.args.iter().map(|a| (a, d + 1)));
            }
            Expr::Comprehension(c) => {
                for x in [
                    &c.iter_range,
                    &c.accu_init,
                    &c.loop_cond,
                    &c.loop_step,
                    &c.result,
                ] {
                    stack.push((x, d + 1));
                }
            }
            Expr::List(l) => stack.extend(l.elements.iter().map(|x| (x, d + 1))),
            Expr::Map(m) => {
                for entry in &m.entries {
                    if let EntryExpr::MapEntry(me) = &entry.expr {
                        stack.push((&me.key, d + 1));
                        stack.push((&me.value, d + 1));
                    }
                }
            }
            Expr::Struct(st) => {
                for entry in &st.entries {
                    if let EntryExpr::StructField(f) = &entry.expr {
                        stack.push((&f.value, d + 1));
                    }
                }
            }
            Expr::Select(s) => stack.push((&s.operand, d + 1)),
            Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => {}
        }
    }
    max
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
    static LIBRARY: Context<'static> = {
        let mut ctx = Context::default().with_all();
        // Regular expressions with Go's meaning (ASCII `\d \w \s \b`), not Rust's.
        ctx.add_function("matches", re2_matches);
        ctx.add_function("find", re2_find);
        ctx.add_function("findAll", re2_find_all);
        ctx
    };
}

fn re2_compile(
    function: &str,
    pattern: &str,
) -> Result<regex::Regex, kube_cel::cel::ExecutionError> {
    crate::re2::compile(pattern).map_err(|e| {
        kube_cel::cel::ExecutionError::function_error(function, format!("invalid regex: {e}"))
    })
}

/// `<string>.matches(<string>)` with Go's regular expressions.
fn re2_matches(
    kube_cel::cel::extractors::This(this): kube_cel::cel::extractors::This<Arc<String>>,
    pattern: Arc<String>,
) -> kube_cel::cel::ResolveResult {
    Ok(Value::Bool(
        re2_compile("matches", &pattern)?.is_match(&this),
    ))
}

/// `<string>.find(<string>)` with Go's regular expressions.
fn re2_find(
    kube_cel::cel::extractors::This(this): kube_cel::cel::extractors::This<Arc<String>>,
    pattern: Arc<String>,
) -> kube_cel::cel::ResolveResult {
    let re = re2_compile("find", &pattern)?;
    let found = re
        .find(&this)
        .map(|m| m.as_str().to_owned())
        .unwrap_or_default();
    Ok(Value::String(Arc::new(found)))
}

/// `<string>.findAll(<string>[, <int>])` with Go's regular expressions (a negative limit
/// means all matches).
fn re2_find_all(
    kube_cel::cel::extractors::This(this): kube_cel::cel::extractors::This<Arc<String>>,
    kube_cel::cel::extractors::Arguments(args): kube_cel::cel::extractors::Arguments,
) -> kube_cel::cel::ResolveResult {
    let Some(Value::String(pattern)) = args.first() else {
        return Err(kube_cel::cel::ExecutionError::function_error(
            "findAll",
            "expected a string pattern",
        ));
    };
    let re = re2_compile("findAll", pattern)?;
    let limit = match args.get(1) {
        Some(Value::Int(n)) if *n >= 0 => usize::try_from(*n).unwrap_or(usize::MAX),
        _ => usize::MAX,
    };
    let found: Vec<Value> = re
        .find_iter(&this)
        .take(limit)
        .map(|m| Value::String(Arc::new(m.as_str().to_owned())))
        .collect();
    Ok(Value::List(Arc::new(found)))
}

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
/// Most node evaluations one top-level CEL expression may make (the variables it reads
/// included): a bound on comprehensions over comprehensions, as Kubernetes bounds the cost of
/// admission expressions. Exceeding it is an error ([`crate::Error::CelBudgetExceeded`]).
pub const COST_LIMIT: u64 = 1_000_000;

/// The message of the error that ends an evaluation over budget.
pub(crate) const BUDGET_EXCEEDED: &str = "evaluation cost budget exceeded";

thread_local! {
    /// (remaining budget, nesting depth of evaluations, whether the budget ran out).
    static BUDGET: std::cell::Cell<(u64, u32, bool)> = const { std::cell::Cell::new((0, 0, false)) };
}

/// Runs `f` as one evaluation against the budget: the outermost evaluation starts a fresh
/// budget of `limit`; nested ones (variables) draw from it. Once the budget has run out, the
/// whole evaluation is the budget error, whatever `f` returned (an error absorbed by `||` or
/// `&&` must not turn into a definite answer).
pub(crate) fn with_budget<'v>(limit: u64, f: impl FnOnce() -> R<'v>) -> R<'v> {
    let (remaining, depth, exhausted) = BUDGET.with(|b| b.get());
    let start = if depth == 0 {
        (limit, 1, false)
    } else {
        (remaining, depth + 1, exhausted)
    };
    BUDGET.with(|b| b.set(start));
    let out = f();
    let (remaining, depth, exhausted) = BUDGET.with(|b| b.get());
    BUDGET.with(|b| b.set((remaining, depth.saturating_sub(1), exhausted)));
    if exhausted {
        return Err(EvalError::new(BUDGET_EXCEEDED));
    }
    out
}

/// Charges `n` units of the budget at once (sizes of built values, see [`size_units`]).
fn charge_n(n: u64) -> Result<(), EvalError> {
    if n == 0 {
        return Ok(());
    }
    BUDGET.with(|b| {
        let (remaining, depth, exhausted) = b.get();
        if depth == 0 {
            return Ok(());
        }
        if exhausted || remaining < n {
            b.set((0, depth, true));
            return Err(EvalError::new(BUDGET_EXCEEDED));
        }
        b.set((remaining - n, depth, false));
        Ok(())
    })
}

/// What building a value of `v`'s size costs: a unit per 10 bytes of a string or bytes value
/// and per 10 elements of a list or map, as Kubernetes' CEL cost model charges concatenation
/// (so values doubled through variables run out of budget long before memory).
fn size_units(v: &V<'_>) -> u64 {
    let n = match v {
        V::Cel(Value::String(s)) => s.len(),
        V::Cel(Value::Bytes(b)) => b.len(),
        V::Cel(Value::List(l)) => l.len(),
        V::Cel(Value::Map(m)) => m.map.len(),
        V::Items(items) => items.len(),
        V::Json(serde_json::Value::String(s)) => s.len(),
        V::Json(serde_json::Value::Array(a)) => a.len(),
        _ => 0,
    };
    (n / 10) as u64
}

/// Charges `a + b` for the value it builds (kept out of [`eval`], whose frame size bounds the
/// nesting the evaluator survives).
#[inline(never)]
fn charge_concat(a: &V<'_>, b: &V<'_>) -> Result<(), EvalError> {
    charge_n(size_units(a).saturating_add(size_units(b)))
}

/// `out`, once charged for its size (a library call's result).
#[inline(never)]
fn charged<'v>(out: R<'v>) -> R<'v> {
    let out = out?;
    charge_n(size_units(&out))?;
    Ok(out)
}

fn charge() -> Result<(), EvalError> {
    BUDGET.with(|b| {
        let (remaining, depth, exhausted) = b.get();
        if depth == 0 {
            return Ok(());
        }
        if remaining == 0 || exhausted {
            b.set((0, depth, true));
            return Err(EvalError::new(BUDGET_EXCEEDED));
        }
        b.set((remaining - 1, depth, false));
        Ok(())
    })
}

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
        let name = match &call.expr {
            Expr::Call(c) => c.func_name.as_str(),
            _ => "?",
        };
        // A library function that panics on some input must not take the caller down:
        // the panic becomes an evaluation error (fail closed).
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            Value::resolve(call, &scope)
        }))
        .map_err(|_| EvalError::new(format!("{name}: the function failed on this input")))?
        .map_err(|e| EvalError::new(format!("{name}: {e}")))
    })
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

fn select<'v>(v: V<'v>, field: &str, test: bool, env: &dyn Env<'v>) -> R<'v> {
    let found: Option<V<'v>> = match &v {
        V::Json(serde_json::Value::Object(m)) => m.get(field).map(V::Json),
        V::Cel(Value::Map(m)) => m.get(&KeyRef::String(field)).cloned().map(V::Cel),
        V::Request => match field {
            "object" => Some(env.root(Root::Object)?),
            "oldObject" => Some(env.root(Root::OldObject)?),
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

fn index_value<'v>(target: V<'v>, i: &V<'v>, env: &dyn Env<'v>) -> R<'v> {
    match &target {
        V::Json(serde_json::Value::Object(_)) | V::Request => match as_str(i) {
            Some(k) => select(target, k, false, env),
            None => Err(EvalError::new(format!(
                "no such key: {}",
                super::value::display(&materialize(i, env)?)
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
                    EvalError::new(format!("no such key: {}", super::value::display(&key)))
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

fn no_overload_v(op: &str, args: &[&V<'_>]) -> EvalError {
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
        other => super::value::json_to_cel(other).ok(),
    }
}

/// CEL equality without copying JSON where possible.
/// A CEL type as a value: equal to the same type only (a function value with a name no
/// expression can call).
fn type_value(name: &str) -> Value {
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

fn binary<'v>(op: BinOp, a: V<'v>, b: V<'v>, env: &dyn Env<'v>) -> EvalResult {
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

fn builtin<'v>(b: Builtin, target: Option<V<'v>>, args: Vec<V<'v>>, env: &dyn Env<'v>) -> R<'v> {
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
                V::Cel(Value::Opaque(o)) => o.downcast_ref::<super::kyverno::ImageRef>(),
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
