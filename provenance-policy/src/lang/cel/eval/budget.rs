//! The evaluation cost budget.

use kube_cel::cel::Value;

use super::{EvalError, R, V};
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
pub(super) fn charge_concat(a: &V<'_>, b: &V<'_>) -> Result<(), EvalError> {
    charge_n(size_units(a).saturating_add(size_units(b)))
}

/// `out`, once charged for its size (a library call's result).
#[inline(never)]
pub(super) fn charged<'v>(out: R<'v>) -> R<'v> {
    let out = out?;
    charge_n(size_units(&out))?;
    Ok(out)
}

pub(super) fn charge() -> Result<(), EvalError> {
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
