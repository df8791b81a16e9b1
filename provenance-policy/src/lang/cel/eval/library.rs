//! Functions delegated to `cel`'s function registry (the core library and every `kube-cel`
//! library, with Go's regular expressions), and the overloads `cel` lacks.

use std::sync::Arc;

use kube_cel::KubeCelExt;
use kube_cel::cel::common::ast::{Expr, IdedExpr};
use kube_cel::cel::{Context, Value};

use super::lower::{ARG_VARS, TARGET_VAR};
use super::{EvalError, EvalResult};
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

pub(super) fn delegate(call: &IdedExpr, target: Option<Value>, args: Vec<Value>) -> EvalResult {
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
