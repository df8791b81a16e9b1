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
//! use provenance_policy::lang::jmespath::{Expression, search};
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
use crate::admission::cluster::ClusterData;
use provenance_core::UnixTime;
use serde_json::Value;
use std::borrow::Cow;
use std::sync::Arc;

pub(crate) use gojson::to_string as go_json_string;
pub(crate) use interp::json_eq;

/// What evaluation may need besides the document: the current time, for `time_now*`, and
/// the cluster data rule `context` entries read ([`crate::admission::cluster`]).
#[derive(Debug, Clone, Default)]
pub struct Env {
    /// The current time. Functions that need it fail when it is `None`; nothing reads a clock.
    pub now: Option<UnixTime>,
    /// Answers `configMap`, `apiCall` and `globalReference` context entries. Without it,
    /// rules that have such entries report `error` with the code `policy.unsupported`.
    pub cluster: Option<Arc<dyn ClusterData>>,
}

/// Two environments are equal when their times are and they share the same cluster data.
impl PartialEq for Env {
    fn eq(&self, other: &Self) -> bool {
        self.now == other.now
            && match (&self.cluster, &other.cluster) {
                (None, None) => true,
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                _ => false,
            }
    }
}

impl Eq for Env {}

impl Env {
    /// An environment in which `now` is the given time.
    pub fn at(now: UnixTime) -> Env {
        Env {
            now: Some(now),
            cluster: None,
        }
    }

    /// The same environment, answering cluster look-ups from `data`.
    pub fn with_cluster(mut self, data: Arc<dyn ClusterData>) -> Env {
        self.cluster = Some(data);
        self
    }
}

/// Parses `src` and applies [`Expression::reads_only_fields`].
#[cfg(test)]
fn reads_only_fields(src: &str, allowed: &dyn Fn(&str) -> bool) -> bool {
    Expression::compile(src).is_ok_and(|e| e.reads_only_fields(allowed))
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

    /// Whether the expression reads its input document only through fields named at its top
    /// level for which `allowed` holds: no `@`, wildcard, index, slice or flatten applied to the
    /// document itself, and no function whose value depends on the clock (`time_*`). What the
    /// expression does with the value of an allowed field (filters, projections, functions,
    /// `@` inside them) cannot reach the rest of the document: JMESPath has no way back to the
    /// root. Quoted and escaped identifiers count by their value.
    pub(crate) fn reads_only_fields(&self, allowed: &dyn Fn(&str) -> bool) -> bool {
        use parser::Node;
        /// `n` evaluated against the input document itself.
        fn at_root(n: &Node, allowed: &dyn Fn(&str) -> bool) -> bool {
            match n {
                Node::Field(name) => allowed(name),
                Node::Literal(_) => true,
                Node::Identity | Node::Index(_) | Node::Slice(..) => false,
                // The right side is evaluated against what the left side produced.
                Node::Subexpr(a, b)
                | Node::Projection(a, b)
                | Node::ValueProjection(a, b)
                | Node::IndexExpr(a, b)
                | Node::Pipe(a, b) => at_root(a, allowed) && below_root(b),
                Node::Filter(a, cond, rhs) => {
                    at_root(a, allowed) && below_root(cond) && below_root(rhs)
                }
                Node::Flatten(a) | Node::Not(a) => at_root(a, allowed),
                Node::Compare(_, a, b) | Node::Or(a, b) | Node::And(a, b) => {
                    at_root(a, allowed) && at_root(b, allowed)
                }
                Node::MultiList(v) => v.iter().all(|x| at_root(x, allowed)),
                Node::MultiHash(v) => v.iter().all(|(_, x)| at_root(x, allowed)),
                Node::Function(name, args) => {
                    !name.starts_with("time_") && args.iter().all(|x| at_root(x, allowed))
                }
                // Applied by a function to the elements of another argument, never to the root.
                Node::Expref(a) => below_root(a),
            }
        }
        /// `n` evaluated against a value derived from allowed fields: only the clock can still
        /// make it depend on anything else.
        fn below_root(n: &Node) -> bool {
            match n {
                Node::Function(name, args) => {
                    !name.starts_with("time_") && args.iter().all(below_root)
                }
                Node::Subexpr(a, b)
                | Node::Projection(a, b)
                | Node::ValueProjection(a, b)
                | Node::IndexExpr(a, b)
                | Node::Pipe(a, b)
                | Node::Compare(_, a, b)
                | Node::Or(a, b)
                | Node::And(a, b) => below_root(a) && below_root(b),
                Node::Filter(a, b, c) => below_root(a) && below_root(b) && below_root(c),
                Node::Flatten(a) | Node::Not(a) | Node::Expref(a) => below_root(a),
                Node::MultiList(v) => v.iter().all(below_root),
                Node::MultiHash(v) => v.iter().all(|(_, x)| below_root(x)),
                Node::Identity
                | Node::Field(_)
                | Node::Literal(_)
                | Node::Index(_)
                | Node::Slice(..) => true,
            }
        }
        at_root(&self.ast, allowed)
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn which_expressions_read_only_allowed_fields() {
        let allowed = |n: &str| n != "request" && n != "images";
        for yes in [
            "runDetails.builder.id",
            " spdxVersion ",
            "components[?type=='library'] | length(@)",
            "subject[0].digest.sha256",
            "predicate.materials[*].uri",
            "sort_by(components, &name)[0].name",
            "length(components) > `3` && spdxVersion == 'SPDX-2.3'",
            "{a: name, b: components[].name}",
            "`\"literal\"`",
        ] {
            assert!(reads_only_fields(yes, &allowed), "{yes}");
        }
        for no in [
            "request.namespace",
            "\"\\u0072equest\".namespace",
            "\"request\".namespace",
            "*.namespace | [0]",
            "@",
            "values(@)[0]",
            "keys(@)",
            "[0]",
            "[*].x",
            "[]",
            "map(&namespace, values(@))",
            "name || request.namespace",
            "[name, images]",
            "time_now_utc()",
            "components[?created < time_now()]",
            "not a valid (expression",
            "",
        ] {
            assert!(!reads_only_fields(no, &allowed), "{no}");
        }
    }

    /// Deterministic pseudo-random expressions from JMESPath's own alphabet: compiling and
    /// evaluating them must never panic (errors are fine).
    #[test]
    fn random_expressions_never_panic() {
        const PIECES: &[&str] = &[
            "a",
            "b",
            ".",
            "*",
            "[",
            "]",
            "[?",
            "[]",
            "{",
            "}",
            "(",
            ")",
            ",",
            ":",
            "|",
            "||",
            "&&",
            "!",
            "@",
            "&",
            "==",
            "!=",
            "<",
            "<=",
            ">",
            ">=",
            "`1`",
            "`[1,{\"a\":2}]`",
            "'s'",
            "\"q\"",
            "-1",
            "0",
            "2",
            "length(",
            "sort_by(",
            "max_by(",
            "to_upper(",
            "add(",
            "items(",
            "map(",
            "merge(",
            "not_null(",
            "x509_decode(",
            "time_add(",
            " ",
        ];
        let doc = json!({"a": [{"b": 1, "a": "x"}, {"b": [2, 3]}], "b": {"a": null}});
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            let mut src = String::new();
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let n = (seed % 12) as usize + 1;
            for _ in 0..n {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                src.push_str(PIECES[(seed % PIECES.len() as u64) as usize]);
            }
            if let Ok(e) = Expression::compile(&src) {
                let _ = e.search(&doc);
                let _ = e.query(&doc, &Env::default());
            }
        }
    }

    #[test]
    fn expression_is_send_and_sync() {
        fn check<T: Send + Sync + 'static>() {}
        check::<Expression>();
        check::<Env>();
    }

    #[test]
    fn hostile_nesting_is_an_error_not_a_crash() {
        let deep = "a.".repeat(50_000) + "a";
        assert!(Expression::compile(&deep).is_err());
        let parens = "(".repeat(10_000) + "a" + &")".repeat(10_000);
        assert!(Expression::compile(&parens).is_err());
        let nots = "!".repeat(10_000) + "a";
        assert!(Expression::compile(&nots).is_err());
    }

    #[test]
    fn missing_keys_follow_go_jmespath() {
        let doc = json!({"a": {"b": null}});
        let e = |s: &str| {
            Expression::compile(s)
                .unwrap()
                .query(&doc, &Env::default())
                .unwrap()
        };
        assert_eq!(e("a.x"), QueryResult::NotFound { key: "x".into() });
        assert_eq!(e("a.b.c"), QueryResult::Value(Value::Null));
        assert_eq!(e("a.x || 'd'"), QueryResult::Value(json!("d")));
        assert_eq!(e("a.x | @"), QueryResult::Value(Value::Null));
        assert_eq!(e("[a.x]"), QueryResult::Value(json!([null])));
        assert_eq!(e("a && a.x"), QueryResult::NotFound { key: "x".into() });
        assert!(
            Expression::compile("a.x | length(@)")
                .unwrap()
                .search(&doc)
                .is_err()
        );
        assert_eq!(search("a.x", &doc).unwrap(), Value::Null);
    }
}
