//! The compiled form of an expression ([`Node`]) and the lowering of `cel`'s AST into it.

use std::sync::Arc;

use kube_cel::cel::Value;
use kube_cel::cel::common::ast::{CallExpr, EntryExpr, Expr, IdedExpr, LiteralValue, operators};

use crate::lang::cel::kyverno::{self, KyvernoFn};

use super::ops::type_value;
/// The variables every expression may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Root {
    Object,
    OldObject,
    Request,
    NamespaceObject,
    Params,
    /// An ImageValidatingPolicy binding (`images`, `attestors`, `attestations`, `ref`).
    Image(crate::lang::cel::ImageBinding),
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
    /// A ValidatingPolicy with `evaluation.mode: Envoy`: the `envoy` and `jwt` libraries.
    Envoy,
    /// A ValidatingPolicy with `evaluation.mode: HTTP`: `http.Allowed/Denied`, the request
    /// helpers and the `jwt` library.
    Http,
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
    /// Methods of the authorization libraries' values.
    Authz(crate::lang::cel::authz::AuthzMethod),
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
    pub(super) range: Node,
    pub(super) iter_var: usize,
    pub(super) iter_var2: Option<usize>,
    pub(super) accu: usize,
    pub(super) init: Node,
    pub(super) cond: Node,
    pub(super) step: Node,
    pub(super) result: Node,
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

pub(super) const TARGET_VAR: &str = "@t";
pub(super) const ARG_VARS: [&str; 8] = ["@a0", "@a1", "@a2", "@a3", "@a4", "@a5", "@a6", "@a7"];

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
                Node::Root(Root::Image(crate::lang::cel::ImageBinding::Images))
            }
            "attestors" if self.dialect == Dialect::ImagePolicy => {
                Node::Root(Root::Image(crate::lang::cel::ImageBinding::Attestors))
            }
            "attestations" if self.dialect == Dialect::ImagePolicy => {
                Node::Root(Root::Image(crate::lang::cel::ImageBinding::Attestations))
            }
            "ref" if self.dialect == Dialect::ImageMatch => {
                Node::Root(Root::Image(crate::lang::cel::ImageBinding::Ref))
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
        if let Some(target) = &call.target
            && matches!(self.dialect, Dialect::Envoy | Dialect::Http)
        {
            let envoy = self.dialect == Dialect::Envoy;
            if let Expr::Ident(lib) = &target.expr
                && self.local(lib).is_none()
            {
                let f = match (lib.as_str(), name, a.len(), envoy) {
                    ("envoy", "Allowed", 0, true) => Some(KyvernoFn::EnvoyAllowed),
                    ("envoy", "Denied", 1, true) => Some(KyvernoFn::EnvoyDenied),
                    ("envoy", "Header", 2, true) => Some(KyvernoFn::EnvoyHeader),
                    ("envoy", "QueryParam", 2, true) => Some(KyvernoFn::EnvoyQueryParam),
                    ("http", "Allowed", 0, false) => Some(KyvernoFn::HttpAllowed),
                    ("http", "Denied", 1, false) => Some(KyvernoFn::HttpDenied),
                    ("jwt", "Decode", 2, _) => Some(KyvernoFn::JwtDecode),
                    ("envoy" | "jwt", ..) => {
                        return Err(LowerError::Invalid(format!(
                            "undeclared reference to '{lib}.{name}' with {} argument(s)",
                            a.len()
                        )));
                    }
                    ("json" | "mcp", ..) => {
                        return Err(LowerError::Unsupported(format!(
                            "Kyverno CEL function {lib}.{name}"
                        )));
                    }
                    _ => None,
                };
                if let Some(f) = f {
                    let args = a.iter().map(|x| self.lower(x)).collect::<Result<_, _>>()?;
                    return Ok(Node::Kyverno(f, args));
                }
            }
            if let Some(m) = crate::lang::cel::authz::AuthzMethod::lookup(name, a.len(), envoy) {
                let t = self.bx(target)?;
                let args = a.iter().map(|x| self.lower(x)).collect::<Result<_, _>>()?;
                return Ok(Node::Builtin(Builtin::Authz(m), Some(t), args));
            }
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
