//! A JMESPath engine with Kyverno's custom functions.
//!
//! Expressions are parsed once into an AST ([`Expression::compile`]) and evaluated directly on
//! borrowed [`serde_json::Value`]s: nothing is converted or copied until a result is built.
//! The grammar and evaluation rules follow go-jmespath (Kyverno's fork): a missing key is
//! `null`, ordering comparisons on non-numbers give `null`, projections drop `null`s.
//!
//! Kyverno's functions (`to_upper`, `regex_match`, `add` on quantities and durations,
//! `time_*`, `parse_yaml`, `x509_decode`, ...) are built in. The engine is pure: functions
//! that need the current time (`time_now`, `time_now_utc`, `time_since` with an empty end)
//! read it from [`Env::now`] and fail when the caller gave none.
//!
//! ```
//! use provenance_policy::jmespath::{Expression, search};
//! use serde_json::json;
//! let doc = json!({"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]}});
//! let e = Expression::compile("spec.containers[?image=='x'].name | length(@)").unwrap();
//! assert_eq!(e.search(&doc).unwrap(), json!(1));
//! assert_eq!(search("to_upper(spec.containers[1].name)", &doc).unwrap(), json!("B"));
//! ```

mod functions;
mod gojson;
mod interp;
mod kyverno;
mod lexer;
mod md5;
mod parser;
mod time;
pub(crate) mod units;
mod x509;

use crate::Error;
use provenance_core::UnixTime;
use serde_json::Value;
use std::borrow::Cow;

pub(crate) use gojson::to_string as go_json_string;
pub(crate) use interp::json_eq;

/// What evaluation may need besides the document: the current time, for `time_now*`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Env {
    /// The current time. Functions that need it fail when it is `None`; nothing reads a clock.
    pub now: Option<UnixTime>,
}

impl Env {
    /// An environment in which `now` is the given time.
    pub fn at(now: UnixTime) -> Env {
        Env { now: Some(now) }
    }
}

/// A compiled JMESPath expression. Compile once, evaluate many times (it is `Send + Sync`).
#[derive(Debug, Clone, PartialEq)]
pub struct Expression {
    src: String,
    ast: parser::Node,
}

impl Expression {
    /// Parses `src`. Syntax errors are [`Error::Jmespath`] with the expression and the reason.
    pub fn compile(src: &str) -> Result<Expression, Error> {
        let ast = parser::parse(src).map_err(|reason| Error::Jmespath {
            expression: src.to_string(),
            reason,
        })?;
        Ok(Expression {
            src: src.to_string(),
            ast,
        })
    }

    /// The source text of the expression.
    pub fn as_str(&self) -> &str {
        &self.src
    }

    /// Evaluates the expression against `data` with an empty [`Env`] (no `now`).
    pub fn search(&self, data: &Value) -> Result<Value, Error> {
        self.search_with(data, &Env::default())
    }

    /// Evaluates the expression against `data` in `env`.
    pub fn search_with(&self, data: &Value, env: &Env) -> Result<Value, Error> {
        let mut cx = interp::Ctx { env, depth: 0 };
        interp::nf_null(interp::eval(&self.ast, Cow::Borrowed(data), &mut cx))
            .map(Cow::into_owned)
            .map_err(|e| Error::Jmespath {
                expression: self.src.clone(),
                reason: e.to_string(),
            })
    }

    /// Evaluates the expression and reports whether the result is truthy (JMESPath rules:
    /// `null`, `false`, `""`, `[]` and `{}` are false), without building the result.
    pub fn is_truthy(&self, data: &Value, env: &Env) -> Result<bool, Error> {
        let mut cx = interp::Ctx { env, depth: 0 };
        interp::nf_null(interp::eval(&self.ast, Cow::Borrowed(data), &mut cx))
            .map(|v| interp::truthy(&v))
            .map_err(|e| Error::Jmespath {
                expression: self.src.clone(),
                reason: e.to_string(),
            })
    }
}

/// How a Kyverno variable lookup ended (see [`Expression::query`]).
#[derive(Debug, Clone, PartialEq)]
pub enum QueryResult {
    /// The expression produced a value (possibly `null`).
    Value(Value),
    /// The expression ended on a key missing from an object (go-jmespath's `NotFoundError`,
    /// "Unknown key"): Kyverno fails variable substitution in this case.
    NotFound {
        /// The missing key.
        key: String,
    },
}

impl Expression {
    /// Evaluates as Kyverno's context query does: a missing key that reaches the top of the
    /// expression (e.g. `request.object.metadata.labels.team` without that label) is reported as
    /// [`QueryResult::NotFound`] rather than `null`. Operators that absorb missing keys (`||`,
    /// `|`, comparisons, function arguments, projections) behave as in go-jmespath.
    pub fn query(&self, data: &Value, env: &Env) -> Result<QueryResult, Error> {
        let mut cx = interp::Ctx { env, depth: 0 };
        match interp::eval(&self.ast, Cow::Borrowed(data), &mut cx) {
            Ok(v) => Ok(QueryResult::Value(v.into_owned())),
            Err(interp::EvalError::NotFound(key)) => Ok(QueryResult::NotFound { key }),
            Err(e) => Err(Error::Jmespath {
                expression: self.src.clone(),
                reason: e.to_string(),
            }),
        }
    }
}

/// Compiles and evaluates `expr` against `data` (no `now`).
pub fn search(expr: &str, data: &Value) -> Result<Value, Error> {
    Expression::compile(expr)?.search(data)
}

/// Compiles and evaluates `expr` against `data` in `env`.
pub fn search_with(expr: &str, data: &Value, env: &Env) -> Result<Value, Error> {
    Expression::compile(expr)?.search_with(data, env)
}
