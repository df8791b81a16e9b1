//! CEL for Kyverno policies: `validate.cel` rules of a ClusterPolicy and the expressions of
//! a `policies.kyverno.io` ValidatingPolicy.
//!
//! # Design
//!
//! * **Compile once.** [`Program::compile`] parses with `cel` 0.13's parser (optional syntax
//!   `.?field` / `[?key]` enabled) and lowers the AST into a form whose identifiers are already
//!   resolved. Parse errors name the expression.
//! * **Bind once per request, lazily.** A [`RequestView`] wraps one [`PolicyInput`]; `object`,
//!   `oldObject`, `request`, `namespaceObject` and `params` are read in place as borrowed JSON
//!   views: nothing is converted up front, and only values handed to library functions or
//!   built into new maps are copied. One view serves every expression, rule and policy
//!   evaluated for the request (see `docs/performance-cel.md`).
//! * **Lazy variables.** A policy's `variables` are evaluated when an expression first reads
//!   `variables.NAME`, once per policy and request ([`VariableScope`]).
//! * **Libraries.** The core language is evaluated natively (see `eval.rs`); Kubernetes' CEL
//!   libraries come from `kube-cel` (strings, lists, sets, regex, quantity, url, ip/cidr,
//!   semver, format, math, encoders, jsonpatch); Kyverno's `image()`/`isImage()` reference
//!   library is native ([`ImageRef`]); its `resource`, `image.GetMetadata`, `globalContext` and
//!   `http` libraries answer from [`ContextData`].
//!
//! # Differences from Kyverno / cel-go
//!
//! * No type checking at compile time: a misspelled field is an evaluation error, not a
//!   policy load error. Undeclared top-level identifiers are rejected at compile time.
//! * No cost budget (expressions are bounded by the input size; comprehensions cannot loop
//!   forever).
//! * `authorizer`, message construction (`Type{...}`) and type identifiers as values
//!   (`type(x) == string`) are rejected at compile time ([`crate::Error::Unsupported`] or [`crate::Error::Cel`]).
//! * Function names are resolved at evaluation time: an unknown function is an evaluation
//!   error (an `error` result, never a pass), not a load error.
//! * Expressions nested more than 6 levels deep, with long operator chains or longer than
//!   2 KiB are parsed on a short-lived thread with a large stack (the generated parser is
//!   deeply recursive).
//! * `cel` 0.13's own optional selection (`a.?b`) errors on a missing field; this evaluator
//!   implements it as the CEL spec says (absent field → `optional.none()`).

pub mod authz;
pub mod autogen;
mod eval;
mod input;
mod kyverno;
pub mod value;

use std::cell::{OnceCell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

pub use input::{GroupVersionResource, Operation, PolicyInput, UserInfo};
pub use kube_cel::cel::Value;
pub use kyverno::{ContextData, ImageRef, KyvernoFn};
use provenance_core::RuleStatus;

pub(crate) use eval::lower::Dialect;
use eval::lower::{Lowering, Node, Root};
use eval::{Env, EvalError, EvalResult, R, V};
use kube_cel::cel::objects::{Key, Map};

use crate::Error;

/// The longest CEL source accepted.
pub const MAX_EXPRESSION_LEN: usize = 64 * 1024;

/// Kubernetes' limit on an evaluated `messageExpression` (`MaxEvaluatedMessageExpressionSizeBytes`).
pub const MAX_MESSAGE_LEN: usize = 5 * 1024;

/// The identifiers an ImageValidatingPolicy binds besides the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImageBinding {
    /// `images`: extractor name → matched image references.
    Images,
    /// `attestors`: attestor name → attestor.
    Attestors,
    /// `attestations`: attestation name → name.
    Attestations,
    /// `ref`: the image a `matchImageReferences` expression tests.
    Ref,
}

/// What an ImageValidatingPolicy evaluation supplies to its expressions: the
/// [`ImageBinding`] values and the image verification functions. Implemented by
/// [`crate::cel_policies::image_validating_policy`]; the CEL evaluator only calls it.
pub trait ImageScope {
    /// The value bound to `binding`, if any.
    fn binding(&self, binding: ImageBinding) -> Option<&serde_json::Value>;
    /// Calls an image verification function ([`KyvernoFn::is_image_verification`]) with
    /// evaluated arguments. `Err` is an evaluation error.
    fn call(&self, f: KyvernoFn, args: &[Value]) -> Result<Value, String>;
}

/// Kyverno library functions the policy being evaluated answers
/// ([`KyvernoFn::is_policy_function`]): `generator.Apply` records what a GeneratingPolicy
/// generates, `time.now()` is the `now` the caller passed. Implemented by
/// [`crate::cel_policies::generating_policy`] and [`crate::cel_policies::deleting_policy`].
pub(crate) trait PolicyFunctions {
    /// Calls `f` with evaluated arguments. `Err` is an evaluation error.
    fn call(&self, f: KyvernoFn, args: &[Value]) -> Result<Value, String>;
}

/// A compiled CEL expression.
#[derive(Debug)]
pub struct Program {
    source: Arc<str>,
    node: Node,
    slots: usize,
    variables: Vec<Arc<str>>,
}

impl Program {
    /// Parses and lowers `src`. Errors carry the expression.
    pub fn compile(src: &str) -> Result<Program, Error> {
        Self::compile_in(src, Dialect::Standard)
    }

    /// Parses and lowers `src` for the given dialect.
    pub(crate) fn compile_in(src: &str, dialect: Dialect) -> Result<Program, Error> {
        let err = |reason: String| Error::Cel {
            expression: src.to_owned(),
            reason,
        };
        if src.len() > MAX_EXPRESSION_LEN {
            return Err(err(format!(
                "expression longer than {MAX_EXPRESSION_LEN} bytes"
            )));
        }
        if src.trim().is_empty() {
            return Err(err("empty expression".to_owned()));
        }
        let score = nesting_score(src);
        if score > MAX_NESTING {
            return Err(err(format!(
                "expression nests deeper than {MAX_NESTING} levels"
            )));
        }
        let owned = src.to_owned();
        let work = move || compile_inner(&owned, dialect);
        // The generated parser is deeply recursive (about 100 KiB of stack per nesting level
        // in debug builds): shallow expressions are parsed in place, others on a thread with
        // a large stack so that no input can overflow the caller's stack.
        let lowered = if score <= INLINE_NESTING
            && operator_count(src) <= INLINE_OPERATORS
            && src.len() <= INLINE_LEN
        {
            work()
        } else {
            std::thread::Builder::new()
                .name("cel-parse".to_owned())
                .stack_size(PARSE_STACK)
                .spawn(work)
                .map_err(|e| err(format!("cannot start the parser thread: {e}")))?
                .join()
                .unwrap_or_else(|_| {
                    Err(CompileError::Invalid(
                        "the CEL parser failed on this input".to_owned(),
                    ))
                })
        };
        let (node, slots, variables) = lowered.map_err(|e| match e {
            CompileError::Unsupported(rest) => Error::Unsupported {
                field: format!("CEL {rest} (in {src:?})"),
            },
            CompileError::Invalid(reason) => err(reason),
        })?;
        Ok(Program {
            source: Arc::from(src),
            node,
            slots,
            variables,
        })
    }

    /// The source text.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The `variables.NAME` names this expression reads, in first-use order.
    pub fn variables_used(&self) -> impl Iterator<Item = &str> {
        self.variables.iter().map(|v| v.as_ref())
    }

    fn run<'v>(&self, env: &dyn Env<'v>) -> R<'v> {
        let locals = RefCell::new(Vec::with_capacity(self.slots));
        eval::budget::with_budget(eval::budget::COST_LIMIT, || {
            eval::eval(&self.node, env, &locals)
        })
    }

    fn error(&self, e: EvalError) -> Error {
        if e.0 == eval::budget::BUDGET_EXCEEDED {
            return Error::CelBudgetExceeded {
                expression: self.source.to_string(),
                limit: eval::budget::COST_LIMIT,
            };
        }
        Error::Cel {
            expression: self.source.to_string(),
            reason: e.0,
        }
    }

    /// Evaluates against a request with no policy variables.
    pub fn evaluate(&self, view: &RequestView<'_>) -> Result<Value, Error> {
        let scope = VariableScope::empty(view);
        self.evaluate_in(&scope)
    }

    /// Evaluates with a policy's lazily evaluated variables.
    pub fn evaluate_in(&self, scope: &VariableScope<'_, '_>) -> Result<Value, Error> {
        let v = self.run(scope).map_err(|e| self.error(e))?;
        eval::materialize(&v, scope).map_err(|e| self.error(e))
    }

    /// Evaluates to a boolean; any other type is an error.
    pub fn evaluate_bool(&self, scope: &VariableScope<'_, '_>) -> Result<bool, Error> {
        match self.run(scope).map_err(|e| self.error(e))? {
            V::Cel(Value::Bool(b)) => Ok(b),
            V::Json(serde_json::Value::Bool(b)) => Ok(*b),
            other => {
                let v = eval::materialize(&other, scope).map_err(|e| self.error(e))?;
                Err(self.error(EvalError(format!(
                    "expected a bool, got {}",
                    value::type_name(&v)
                ))))
            }
        }
    }

    /// Evaluates to a string; any other type is an error.
    pub fn evaluate_string(&self, scope: &VariableScope<'_, '_>) -> Result<String, Error> {
        match self.evaluate_in(scope)? {
            Value::String(s) => Ok(s.as_str().to_owned()),
            other => Err(self.error(EvalError(format!(
                "expected a string, got {}",
                value::type_name(&other)
            )))),
        }
    }

    /// Evaluates and converts the result to JSON.
    pub fn evaluate_json(&self, scope: &VariableScope<'_, '_>) -> Result<serde_json::Value, Error> {
        let v = self.evaluate_in(scope)?;
        value::cel_to_json(&v).map_err(|r| self.error(EvalError(r)))
    }
}

/// Deepest bracket / ternary / unary nesting accepted (cel-go's parser limit is 250).
const MAX_NESTING: usize = 200;
/// Deepest AST accepted (bounds the evaluator's recursion).
const MAX_AST_DEPTH: usize = 400;
/// Expressions at most this nested and long are parsed on the caller's stack.
const INLINE_NESTING: usize = 6;
const INLINE_OPERATORS: usize = 48;
const INLINE_LEN: usize = 2048;
/// Stack of the parser thread for deeper expressions.
const PARSE_STACK: usize = 256 << 20;

enum CompileError {
    Unsupported(String),
    Invalid(String),
}

type Lowered = (Node, usize, Vec<Arc<str>>);

fn compile_inner(src: &str, dialect: Dialect) -> Result<Lowered, CompileError> {
    let parsed = std::panic::catch_unwind(|| {
        kube_cel::cel::parser::Parser::new()
            .enable_optional_syntax(true)
            .parse(src)
    })
    .map_err(|_| CompileError::Invalid("the CEL parser failed on this input".to_owned()))?
    .map_err(|e| CompileError::Invalid(format!("parse error: {e}")))?;
    if eval::lower::ast_depth(&parsed) > MAX_AST_DEPTH {
        return Err(CompileError::Invalid(format!(
            "expression nests deeper than {MAX_AST_DEPTH} levels"
        )));
    }
    let mut lowering = Lowering::new();
    lowering.dialect = dialect;
    let node = lowering.lower(&parsed).map_err(|e| match e {
        eval::lower::LowerError::Unsupported(what) => CompileError::Unsupported(what),
        eval::lower::LowerError::Invalid(reason) => CompileError::Invalid(reason),
    })?;
    Ok((node, lowering.max_slots, lowering.refs.variables))
}

/// An upper estimate of the parser's recursion: bracket depth plus ternaries plus the longest
/// run of unary operators, outside string literals.
fn nesting_score(src: &str) -> usize {
    let (mut depth, mut max_depth, mut ternaries, mut unary_run, mut max_unary) =
        (0usize, 0, 0, 0, 0);
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for ch in src.chars() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if ch == '\\' {
                escaped = true;
            } else if ch == q {
                quote = None;
            }
            continue;
        }
        match ch {
            '\'' | '"' => quote = Some(ch),
            '(' | '[' | '{' => {
                depth += 1;
                max_depth = max_depth.max(depth);
            }
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            '?' => ternaries += 1,
            _ => {}
        }
        if ch == '!' || ch == '-' {
            unary_run += 1;
            max_unary = max_unary.max(unary_run);
        } else if !ch.is_whitespace() {
            unary_run = 0;
        }
    }
    max_depth + ternaries + max_unary
}

/// Operator, member-access and separator characters outside string literals: each can add a
/// level to the parser's recursion (left-nested chains such as `a + b + c` or `a.b.c`).
fn operator_count(src: &str) -> usize {
    let mut n = 0;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for ch in src.chars() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if ch == '\\' {
                escaped = true;
            } else if ch == q {
                quote = None;
            }
            continue;
        }
        match ch {
            '\'' | '"' => quote = Some(ch),
            '+' | '-' | '*' | '/' | '%' | '<' | '>' | '=' | '!' | '&' | '|' | '?' | ':' | '.'
            | ',' | '[' | '(' | '{' => n += 1,
            _ => {}
        }
    }
    n
}

/// One request bound for CEL.
///
/// Nothing is converted up front: expressions read the request's JSON in place, and only
/// values handed to library functions or built into new lists and maps are copied. The
/// `request` object's metadata is built once, on first use.
pub struct RequestView<'a> {
    input: &'a PolicyInput<'a>,
    /// The admission request `request` describes: `input` itself, except for a
    /// mutate-existing target, whose expressions see the target as `object` and the
    /// trigger's request as `request`.
    request: &'a PolicyInput<'a>,
    request_json: OnceCell<serde_json::Value>,
    request_value: OnceCell<EvalResult>,
}

impl<'a> RequestView<'a> {
    /// Wraps `input`; nothing is converted yet.
    pub fn new(input: &'a PolicyInput<'a>) -> Self {
        RequestView {
            input,
            request: input,
            request_json: OnceCell::new(),
            request_value: OnceCell::new(),
        }
    }

    /// Binds `input` as `object`, `oldObject` and `namespaceObject`, and `request` as the
    /// admission request (`request.object` is `request`'s object): a mutate-existing target
    /// evaluated for the trigger that selected it.
    pub(crate) fn with_request(input: &'a PolicyInput<'a>, request: &'a PolicyInput<'a>) -> Self {
        RequestView {
            input,
            request,
            request_json: OnceCell::new(),
            request_value: OnceCell::new(),
        }
    }

    /// The input this view binds.
    pub fn input(&self) -> &'a PolicyInput<'a> {
        self.input
    }

    fn request_json(&self) -> &serde_json::Value {
        self.request_json
            .get_or_init(|| self.request.request_json())
    }

    pub(crate) fn root<'v>(&'v self, r: Root) -> R<'v> {
        Ok(match r {
            Root::Object => V::json_or_null(self.input.object.as_deref()),
            Root::OldObject => V::json_or_null(self.input.old_object.as_deref()),
            Root::NamespaceObject => V::json_or_null(self.input.namespace_object.as_ref()),
            Root::Params => V::json_or_null(self.input.params.as_ref()),
            Root::Request => V::Request,
            Root::Image(b) => {
                return Err(EvalError(format!(
                    "{b:?} is not available in this expression"
                )));
            }
        })
    }

    /// `request.object` (`old`: `request.oldObject`).
    pub(crate) fn request_object<'v>(&'v self, old: bool) -> R<'v> {
        let o = if old {
            self.request.old_object.as_deref()
        } else {
            self.request.object.as_deref()
        };
        Ok(V::json_or_null(o))
    }

    fn request_value(&self) -> EvalResult {
        self.request_value
            .get_or_init(|| {
                let base = value::json_to_cel(self.request_json()).map_err(EvalError)?;
                let Value::Map(m) = base else {
                    return Err(EvalError("request is not a map".to_owned()));
                };
                let mut map: HashMap<Key, Value> = (*m.map).clone();
                let conv = |v: Option<&serde_json::Value>| match v {
                    Some(v) => value::json_to_cel(v).map_err(EvalError),
                    None => Ok(Value::Null),
                };
                map.insert(Key::from("object"), conv(self.request.object.as_deref())?);
                map.insert(
                    Key::from("oldObject"),
                    conv(self.request.old_object.as_deref())?,
                );
                Ok(Value::Map(Map { map: Arc::new(map) }))
            })
            .clone()
    }
}

/// A named, compiled policy variable.
#[derive(Debug)]
pub struct Variable {
    /// The name (`variables.NAME`).
    pub name: Arc<str>,
    /// The expression.
    pub program: Program,
}

impl Variable {
    /// Compiles one variable.
    pub fn compile(name: &str, expression: &str) -> Result<Self, Error> {
        Ok(Variable {
            name: Arc::from(name),
            program: Program::compile(expression)?,
        })
    }
}

enum VarState<'v> {
    Pending,
    Running,
    Done(R<'v>),
}

/// A policy's variables for one request: each is evaluated at most once, when first read.
pub struct VariableScope<'v, 'a> {
    view: &'v RequestView<'a>,
    vars: &'v [Variable],
    state: RefCell<Vec<VarState<'v>>>,
    images: Option<&'v dyn ImageScope>,
    functions: Option<&'v dyn PolicyFunctions>,
}

impl<'v, 'a> VariableScope<'v, 'a> {
    /// A scope over `vars` for the request in `view`.
    pub fn new(view: &'v RequestView<'a>, vars: &'v [Variable]) -> Self {
        VariableScope {
            view,
            vars,
            state: RefCell::new(vars.iter().map(|_| VarState::Pending).collect()),
            images: None,
            functions: None,
        }
    }

    /// Binds the functions the policy being evaluated answers (`generator.Apply`,
    /// `time.now()`).
    pub(crate) fn with_functions(mut self, functions: &'v dyn PolicyFunctions) -> Self {
        self.functions = Some(functions);
        self
    }

    /// Binds an ImageValidatingPolicy's `images`, `attestors`, `attestations` (or `ref`) and
    /// its image verification functions.
    pub fn with_images(mut self, images: &'v dyn ImageScope) -> Self {
        self.images = Some(images);
        self
    }

    /// A scope with no variables.
    pub fn empty(view: &'v RequestView<'a>) -> Self {
        Self::new(view, &[])
    }

    /// The request view.
    pub fn view(&self) -> &'v RequestView<'a> {
        self.view
    }

    fn var_index(&self, name: &str) -> Option<usize> {
        // Later declarations shadow earlier ones of the same name, as in a map.
        self.vars.iter().rposition(|v| v.name.as_ref() == name)
    }

    fn force(&self, i: usize) -> R<'v> {
        {
            let mut st = self.state.borrow_mut();
            match &st[i] {
                VarState::Done(r) => return r.clone(),
                VarState::Running => {
                    return Err(EvalError(format!(
                        "variable '{}' refers to itself",
                        self.vars[i].name
                    )));
                }
                VarState::Pending => st[i] = VarState::Running,
            }
        }
        let r = self.vars[i].program.run(self);
        self.state.borrow_mut()[i] = VarState::Done(r.clone());
        r
    }
}

impl<'v> Env<'v> for VariableScope<'v, '_> {
    fn root(&self, r: Root) -> R<'v> {
        match r {
            Root::Image(b) => match self.images.and_then(|i| i.binding(b)) {
                Some(v) => Ok(V::Json(v)),
                None => Err(EvalError(format!(
                    "{b:?} is not available in this expression"
                ))),
            },
            _ => self.view.root(r),
        }
    }

    fn request_field(&self, field: &str) -> Option<&'v serde_json::Value> {
        self.view.request_json().get(field)
    }

    fn request_value(&self) -> EvalResult {
        self.view.request_value()
    }

    fn request_object(&self, old: bool) -> R<'v> {
        self.view.request_object(old)
    }

    fn variable(&self, name: &str) -> R<'v> {
        match self.var_index(name) {
            Some(i) => self.force(i),
            None => Err(EvalError(format!(
                "no such key: {name} (undeclared variable)"
            ))),
        }
    }

    fn all_variables(&self) -> R<'v> {
        let mut map = HashMap::new();
        for (i, v) in self.vars.iter().enumerate() {
            let val = eval::materialize(&self.force(i)?, self)?;
            map.insert(Key::String(Arc::new(v.name.to_string())), val);
        }
        Ok(V::Cel(Value::Map(Map { map: Arc::new(map) })))
    }

    fn kyverno(&self, f: KyvernoFn, args: &[Value]) -> R<'v> {
        if f.is_image_verification()
            && let Some(images) = self.images
        {
            return images.call(f, args).map(V::Cel).map_err(EvalError);
        }
        if f.is_policy_function()
            && let Some(functions) = self.functions
        {
            return functions.call(f, args).map(V::Cel).map_err(EvalError);
        }
        self.view.input.context.call(f, args)
    }
}

/// The outcome of a `validate.cel` rule (or of one ValidatingPolicy) for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CelOutcome {
    /// Pass, fail, skip (preconditions not met) or error.
    pub status: RuleStatus,
    /// Kyverno's message for this outcome.
    pub message: String,
    /// Index of the failing validation, if one failed or errored.
    pub failed_index: Option<usize>,
    /// The failing validation's `reason` (`Invalid` when unset), if one failed.
    pub reason: Option<String>,
    /// Evaluated `auditAnnotations` (key → value; empty values omitted).
    pub audit_annotations: BTreeMap<String, String>,
}

impl CelOutcome {
    fn new(status: RuleStatus, message: impl Into<String>) -> Self {
        CelOutcome {
            status,
            message: message.into(),
            failed_index: None,
            reason: None,
            audit_annotations: BTreeMap::new(),
        }
    }
}

/// One compiled validation (`expression`, `message`, `messageExpression`, `reason`).
#[derive(Debug)]
pub struct Validation {
    /// The expression; must evaluate to a bool.
    pub expression: Program,
    /// The static message.
    pub message: Option<String>,
    /// The message expression; must evaluate to a string.
    pub message_expression: Option<Program>,
    /// The reason (`Unauthorized`, `Forbidden`, `Invalid`, `RequestEntityTooLarge`).
    pub reason: Option<String>,
}

/// A named CEL expression (a match condition / `celPreconditions` entry).
#[derive(Debug)]
pub struct NamedProgram {
    /// The name.
    pub name: String,
    /// The expression.
    pub program: Program,
}

/// What a list of `matchConditions` says about a request ([`evaluate_match_conditions`]).
#[derive(Debug)]
pub(crate) enum MatchConditions {
    /// Every condition is true (or there are none).
    Hold,
    /// A condition is false: the request does not match, whatever else failed to evaluate.
    False,
    /// No condition is false and at least one failed to evaluate: the errors, in order.
    Errors {
        /// The first error.
        first: Error,
        /// The errors after it.
        more: Vec<Error>,
    },
}

/// Evaluates `conditions` in order as Kubernetes evaluates `matchConditions`: the first false
/// one decides (evaluation stops there), errors before it do not; with none false, any
/// evaluation error leaves the match undecided.
pub(crate) fn evaluate_match_conditions(
    conditions: &[NamedProgram],
    scope: &VariableScope<'_, '_>,
) -> MatchConditions {
    let mut errors = Vec::new();
    for c in conditions {
        match c.program.evaluate_bool(scope) {
            Ok(true) => {}
            Ok(false) => return MatchConditions::False,
            Err(e) => errors.push(e),
        }
    }
    let mut errors = errors.into_iter();
    match errors.next() {
        None => MatchConditions::Hold,
        Some(first) => MatchConditions::Errors {
            first,
            more: errors.collect(),
        },
    }
}

/// An audit annotation (`key`, `valueExpression`).
#[derive(Debug)]
pub struct AuditAnnotation {
    /// The key.
    pub key: String,
    /// The value expression: a string or null.
    pub value: Program,
}

pub(crate) fn str_field<'v>(v: &'v serde_json::Value, key: &str) -> Option<&'v str> {
    v.get(key).and_then(|x| x.as_str())
}

fn list<'v>(
    v: &'v serde_json::Value,
    key: &str,
    path: &str,
) -> Result<&'v [serde_json::Value], Error> {
    match v.get(key) {
        None | Some(serde_json::Value::Null) => Ok(&[]),
        Some(serde_json::Value::Array(a)) => Ok(a),
        Some(_) => Err(Error::InvalidPolicy {
            policy: String::new(),
            path: format!("{path}.{key}"),
            reason: "expected a list".to_owned(),
        }),
    }
}

fn required_str<'v>(v: &'v serde_json::Value, key: &str, path: &str) -> Result<&'v str, Error> {
    str_field(v, key).ok_or_else(|| Error::InvalidPolicy {
        policy: String::new(),
        path: format!("{path}.{key}"),
        reason: "required string field is missing".to_owned(),
    })
}

/// Compiles `variables: [{name, expression}]` at `path`.
pub(crate) fn compile_variables(v: &serde_json::Value, path: &str) -> Result<Vec<Variable>, Error> {
    compile_variables_in(v, path, Dialect::Standard)
}

/// [`compile_variables`] for a dialect.
pub(crate) fn compile_variables_in(
    v: &serde_json::Value,
    path: &str,
    dialect: Dialect,
) -> Result<Vec<Variable>, Error> {
    let mut out = Vec::new();
    for (i, item) in list(v, "variables", path)?.iter().enumerate() {
        let p = format!("{path}.variables[{i}]");
        out.push(Variable {
            name: Arc::from(required_str(item, "name", &p)?),
            program: Program::compile_in(required_str(item, "expression", &p)?, dialect)?,
        });
    }
    Ok(out)
}

/// Compiles `validations`/`expressions: [{expression, message, messageExpression, reason}]`.
pub(crate) fn compile_validations(
    v: &serde_json::Value,
    key: &str,
    path: &str,
) -> Result<Vec<Validation>, Error> {
    compile_validations_in(v, key, path, Dialect::Standard)
}

/// [`compile_validations`] for a dialect.
pub(crate) fn compile_validations_in(
    v: &serde_json::Value,
    key: &str,
    path: &str,
    dialect: Dialect,
) -> Result<Vec<Validation>, Error> {
    let mut out = Vec::new();
    for (i, item) in list(v, key, path)?.iter().enumerate() {
        let p = format!("{path}.{key}[{i}]");
        out.push(Validation {
            expression: Program::compile_in(required_str(item, "expression", &p)?, dialect)?,
            message: str_field(item, "message").map(str::to_owned),
            message_expression: str_field(item, "messageExpression")
                .filter(|s| !s.trim().is_empty())
                .map(|m| Program::compile_in(m, dialect))
                .transpose()?,
            reason: str_field(item, "reason").map(str::to_owned),
        });
    }
    Ok(out)
}

/// Compiles `matchConditions`/`celPreconditions: [{name, expression}]`.
pub(crate) fn compile_named(
    v: &serde_json::Value,
    key: &str,
    path: &str,
) -> Result<Vec<NamedProgram>, Error> {
    compile_named_in(v, key, path, Dialect::Standard)
}

/// [`compile_named`] for a dialect.
pub(crate) fn compile_named_in(
    v: &serde_json::Value,
    key: &str,
    path: &str,
    dialect: Dialect,
) -> Result<Vec<NamedProgram>, Error> {
    let mut out = Vec::new();
    for (i, item) in list(v, key, path)?.iter().enumerate() {
        let p = format!("{path}.{key}[{i}]");
        out.push(NamedProgram {
            name: str_field(item, "name").unwrap_or_default().to_owned(),
            program: Program::compile_in(required_str(item, "expression", &p)?, dialect)?,
        });
    }
    Ok(out)
}

/// Compiles `auditAnnotations: [{key, valueExpression}]`.
pub(crate) fn compile_audit_annotations(
    v: &serde_json::Value,
    path: &str,
) -> Result<Vec<AuditAnnotation>, Error> {
    compile_audit_annotations_in(v, path, Dialect::Standard)
}

/// [`compile_audit_annotations`] for a dialect.
pub(crate) fn compile_audit_annotations_in(
    v: &serde_json::Value,
    path: &str,
    dialect: Dialect,
) -> Result<Vec<AuditAnnotation>, Error> {
    let mut out = Vec::new();
    for (i, item) in list(v, "auditAnnotations", path)?.iter().enumerate() {
        let p = format!("{path}.auditAnnotations[{i}]");
        out.push(AuditAnnotation {
            key: required_str(item, "key", &p)?.to_owned(),
            value: Program::compile_in(required_str(item, "valueExpression", &p)?, dialect)?,
        });
    }
    Ok(out)
}

/// Checks that every `variables.NAME` read by `programs` is declared.
pub(crate) fn check_variables<'p>(
    vars: &'p [Variable],
    programs: impl Iterator<Item = &'p Program>,
) -> Result<(), Error> {
    let all = vars.iter().map(|v| &v.program).chain(programs);
    for p in all {
        for name in p.variables_used() {
            if !vars.iter().any(|v| v.name.as_ref() == name) {
                return Err(Error::Cel {
                    expression: p.source().to_owned(),
                    reason: format!("undeclared variable '{name}'"),
                });
            }
        }
    }
    Ok(())
}

/// Evaluates audit annotations (string or null values), as Kubernetes does.
pub(crate) fn evaluate_audit_annotations(
    annotations: &[AuditAnnotation],
    scope: &VariableScope<'_, '_>,
) -> Result<BTreeMap<String, String>, Error> {
    let mut out = BTreeMap::new();
    for a in annotations {
        match a.value.evaluate_in(scope)? {
            Value::Null => {}
            Value::String(s) => {
                if !s.is_empty() {
                    out.insert(a.key.clone(), s.as_str().to_owned());
                }
            }
            other => {
                return Err(Error::Cel {
                    expression: a.value.source().to_owned(),
                    reason: format!(
                        "audit annotation '{}' must be a string or null, got {}",
                        a.key,
                        value::type_name(&other)
                    ),
                });
            }
        }
    }
    Ok(out)
}

/// How Kyverno maps Kubernetes' validator decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum K8sMode {
    /// ClusterPolicy `validate.cel`: evaluation errors deny (fail).
    ValidateCel,
    /// ValidatingAdmissionPolicy: evaluation errors are `error` results; with
    /// `failurePolicy: Ignore` match-condition errors skip.
    AdmissionPolicy { ignore_errors: bool },
}

/// A compiled ClusterPolicy `validate.cel` rule (with the rule's `celPreconditions`).
///
/// Evaluated as Kyverno's `validate.cel` handler does (through Kubernetes'
/// ValidatingAdmissionPolicy validator):
/// * preconditions false → skip, `cel preconditions not met`;
/// * an expression false → fail with its `message`, else the rule's `validate.message`, else
///   `failed expression: <expression>`; a `messageExpression` that yields a non-empty single
///   line of at most 5 KiB replaces the message;
/// * an evaluation error → fail (Kubernetes' default failure policy `Fail` denies) with
///   `expression '<expression>' resulted in error: <reason>`;
/// * otherwise pass, `Validation rule '<rule>' passed.`
#[derive(Debug)]
pub struct CompiledCelRule {
    rule_name: String,
    default_message: Option<String>,
    preconditions: Vec<NamedProgram>,
    variables: Vec<Variable>,
    validations: Vec<Validation>,
    audit_annotations: Vec<AuditAnnotation>,
    has_params: bool,
}

impl CompiledCelRule {
    /// Compiles the `validate.cel` object: `{expressions, paramKind, paramRef, variables,
    /// auditAnnotations}`.
    pub fn compile(cel: &serde_json::Value) -> Result<Self, Error> {
        let path = "validate.cel";
        if !cel.is_object() {
            return Err(Error::InvalidPolicy {
                policy: String::new(),
                path: path.to_owned(),
                reason: "expected an object".to_owned(),
            });
        }
        for key in cel.as_object().into_iter().flat_map(|m| m.keys()) {
            if !matches!(
                key.as_str(),
                "expressions"
                    | "paramKind"
                    | "paramRef"
                    | "variables"
                    | "auditAnnotations"
                    | "generate"
            ) {
                return Err(Error::Unsupported {
                    field: format!("{path}.{key}"),
                });
            }
        }
        let variables = compile_variables(cel, path)?;
        let validations = compile_validations(cel, "expressions", path)?;
        let audit_annotations = compile_audit_annotations(cel, path)?;
        check_variables(
            &variables,
            validations
                .iter()
                .flat_map(|v| std::iter::once(&v.expression).chain(v.message_expression.iter()))
                .chain(audit_annotations.iter().map(|a| &a.value)),
        )?;
        Ok(CompiledCelRule {
            rule_name: String::new(),
            default_message: None,
            preconditions: Vec::new(),
            variables,
            validations,
            audit_annotations,
            has_params: cel.get("paramKind").is_some_and(|p| !p.is_null())
                || cel.get("paramRef").is_some_and(|p| !p.is_null()),
        })
    }

    /// Sets the rule name (used in the pass message).
    pub fn with_rule_name(mut self, name: impl Into<String>) -> Self {
        self.rule_name = name.into();
        self
    }

    /// Sets the rule's `validate.message`, used for expressions without a message.
    pub fn with_default_message(mut self, message: Option<String>) -> Self {
        self.default_message = message.filter(|m| !m.is_empty());
        self
    }

    /// Compiles the rule's `celPreconditions` (`[{name, expression}]`).
    pub fn with_preconditions(mut self, preconditions: &serde_json::Value) -> Result<Self, Error> {
        let wrapped = serde_json::json!({ "celPreconditions": preconditions });
        self.preconditions = compile_named(&wrapped, "celPreconditions", "rule")?;
        check_variables(
            &self.variables,
            self.preconditions.iter().map(|p| &p.program),
        )?;
        Ok(self)
    }

    /// Evaluates the rule against one request.
    pub fn evaluate(&self, view: &RequestView<'_>) -> CelOutcome {
        if self.has_params && view.input.params.is_none() {
            return CelOutcome::new(
                RuleStatus::Error,
                "error in parameterized resource: paramKind/paramRef need a params object supplied with the request",
            );
        }
        let pass = format!("Validation rule '{}' passed.", self.rule_name);
        self.k8s_validate(view, K8sMode::ValidateCel, &pass)
    }

    /// Builds a rule from compiled parts (ValidatingAdmissionPolicy shares this evaluator).
    pub(crate) fn from_parts(
        preconditions: Vec<NamedProgram>,
        variables: Vec<Variable>,
        validations: Vec<Validation>,
        audit_annotations: Vec<AuditAnnotation>,
    ) -> Self {
        CompiledCelRule {
            rule_name: String::new(),
            default_message: None,
            preconditions,
            variables,
            validations,
            audit_annotations,
            has_params: false,
        }
    }

    /// Kubernetes' ValidatingAdmissionPolicy validator, with Kyverno's mapping of its decisions.
    pub(crate) fn k8s_validate(
        &self,
        view: &RequestView<'_>,
        mode: K8sMode,
        pass_message: &str,
    ) -> CelOutcome {
        let scope = VariableScope::new(view, &self.variables);
        let (skip_message, error_status) = match mode {
            K8sMode::ValidateCel => ("cel preconditions not met", RuleStatus::Fail),
            K8sMode::AdmissionPolicy { .. } => ("match conditions aren't met", RuleStatus::Error),
        };
        for p in &self.preconditions {
            match p.program.evaluate_bool(&scope) {
                Ok(true) => {}
                Ok(false) => return CelOutcome::new(RuleStatus::Skip, skip_message),
                Err(_)
                    if matches!(
                        mode,
                        K8sMode::AdmissionPolicy {
                            ignore_errors: true
                        }
                    ) =>
                {
                    return CelOutcome::new(RuleStatus::Skip, skip_message);
                }
                Err(e) => {
                    return CelOutcome::new(error_status, k8s_eval_error(&p.program, &e));
                }
            }
        }
        for (i, v) in self.validations.iter().enumerate() {
            let verdict = v.expression.evaluate_in(&scope);
            let (status, message) = match verdict {
                Ok(Value::Bool(true)) => continue,
                Ok(Value::Bool(false)) => (
                    RuleStatus::Fail,
                    k8s_message(v, self.default_message.as_deref(), &scope),
                ),
                Ok(other) => (
                    error_status,
                    k8s_eval_error(
                        &v.expression,
                        &v.expression.error(EvalError(format!(
                            "expected a bool, got {}",
                            value::type_name(&other)
                        ))),
                    ),
                ),
                Err(e) => (error_status, k8s_eval_error(&v.expression, &e)),
            };
            let mut out = CelOutcome::new(status, message);
            out.failed_index = Some(i);
            if status == RuleStatus::Fail {
                out.reason = Some(v.reason.clone().unwrap_or_else(|| "Invalid".to_owned()));
            }
            return out;
        }
        let mut out = CelOutcome::new(RuleStatus::Pass, pass_message);
        match evaluate_audit_annotations(&self.audit_annotations, &scope) {
            Ok(a) => out.audit_annotations = a,
            Err(e) => return CelOutcome::new(error_status, cel_reason(&e)),
        }
        out
    }
}

fn cel_reason(e: &Error) -> String {
    match e {
        Error::Cel { reason, .. } => reason.clone(),
        other => other.to_string(),
    }
}

/// Kubernetes' message for an expression that failed to evaluate.
fn k8s_eval_error(p: &Program, e: &Error) -> String {
    format!(
        "expression '{}' resulted in error: {}",
        p.source(),
        cel_reason(e)
    )
}

/// Kubernetes' message for a validation that evaluated to false.
fn k8s_message(v: &Validation, default: Option<&str>, scope: &VariableScope<'_, '_>) -> String {
    if let Some(me) = &v.message_expression
        && let Ok(s) = me.evaluate_string(scope)
    {
        let s = s.trim();
        if !s.is_empty() && s.len() <= MAX_MESSAGE_LEN && !s.contains('\n') {
            return s.to_owned();
        }
    }
    let msg = v
        .message
        .as_deref()
        .filter(|m| !m.is_empty())
        .or(default)
        .unwrap_or_default()
        .trim();
    if !msg.is_empty() {
        return msg.to_owned();
    }
    format!("failed expression: {}", v.expression.source().trim())
}

/// Compiles a `validate.cel` object and evaluates it against one request (convenience for
/// one-off use; compile once with [`CompiledCelRule`] when evaluating many requests).
pub fn evaluate_validate_cel(
    spec: &serde_json::Value,
    request: &RequestView<'_>,
) -> Result<CelOutcome, Error> {
    Ok(CompiledCelRule::compile(spec)?.evaluate(request))
}
