//! Kyverno condition operators (`preconditions`, `deny.conditions`, `conditions` of
//! foreach and attestations), with Kyverno's type rules.
//!
//! Each operator follows the Go handler of the same name in Kyverno
//! (`pkg/engine/variables/operator`), quirks included:
//!
//! - `Equals` / `NotEquals` (and the legacy `Equal` / `NotEqual`): durations (`1h` equals
//!   `60m`, a number is seconds), quantities (`1Gi` equals `1024Mi`), wildcards in the value
//!   (`nginx:*`), numbers across int / float / numeric strings, deep equality of lists and maps.
//! - `In` / `NotIn` (deprecated): the key (or every element of a list key) must be in the value
//!   list; a string value may be a JSON array or a wildcard.
//! - `AnyIn`, `AllIn`, `AnyNotIn`, `AllNotIn`: wildcards both ways, ranges (`0-10`, `0!-10`).
//! - `GreaterThan`, `GreaterThanOrEquals`, `LessThan`, `LessThanOrEquals`: durations,
//!   quantities, numbers, numeric strings and semantic versions.
//! - `DurationGreaterThan` ... (deprecated): durations, numbers are seconds.
//!
//! An operator that does not apply to the operand types yields `false` (as in Kyverno); an
//! unknown operator is an [`Error::Condition`].

use crate::Error;
use crate::kyverno::pattern::validate_value;
use crate::kyverno::variables;
use crate::lang::jmespath::Env;
use crate::lang::jmespath::units::{
    GoNum, SECOND, go_num, go_sprint, parse_duration, parse_float, parse_int, parse_quantity,
    parse_semver,
};
use provenance_core::wildcard::wildcard_match;
use serde_json::Value;
use std::cmp::Ordering;

/// A condition operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Operator {
    /// `Equals` (or legacy `Equal`).
    Equals,
    /// `NotEquals` (or legacy `NotEqual`).
    NotEquals,
    /// `In` (deprecated).
    In,
    /// `NotIn` (deprecated).
    NotIn,
    /// `AnyIn`.
    AnyIn,
    /// `AllIn`.
    AllIn,
    /// `AnyNotIn`.
    AnyNotIn,
    /// `AllNotIn`.
    AllNotIn,
    /// `GreaterThan`.
    GreaterThan,
    /// `GreaterThanOrEquals`.
    GreaterThanOrEquals,
    /// `LessThan`.
    LessThan,
    /// `LessThanOrEquals`.
    LessThanOrEquals,
    /// `DurationGreaterThan` (deprecated).
    DurationGreaterThan,
    /// `DurationGreaterThanOrEquals` (deprecated).
    DurationGreaterThanOrEquals,
    /// `DurationLessThan` (deprecated).
    DurationLessThan,
    /// `DurationLessThanOrEquals` (deprecated).
    DurationLessThanOrEquals,
}

impl Operator {
    /// Parses an operator name, case-insensitively as Kyverno does.
    pub fn parse(name: &str) -> Option<Operator> {
        let l = name.to_ascii_lowercase();
        Some(match l.as_str() {
            "equal" | "equals" => Operator::Equals,
            "notequal" | "notequals" => Operator::NotEquals,
            "in" => Operator::In,
            "notin" => Operator::NotIn,
            "anyin" => Operator::AnyIn,
            "allin" => Operator::AllIn,
            "anynotin" => Operator::AnyNotIn,
            "allnotin" => Operator::AllNotIn,
            "greaterthan" => Operator::GreaterThan,
            "greaterthanorequals" => Operator::GreaterThanOrEquals,
            "lessthan" => Operator::LessThan,
            "lessthanorequals" => Operator::LessThanOrEquals,
            "durationgreaterthan" => Operator::DurationGreaterThan,
            "durationgreaterthanorequals" => Operator::DurationGreaterThanOrEquals,
            "durationlessthan" => Operator::DurationLessThan,
            "durationlessthanorequals" => Operator::DurationLessThanOrEquals,
            _ => return None,
        })
    }
}

/// Evaluates `key <operator> value` with Kyverno's rules. Only an unknown operator is an error.
pub fn evaluate(key: &Value, operator: &str, value: &Value) -> Result<bool, Error> {
    let op = Operator::parse(operator).ok_or_else(|| Error::Condition {
        path: String::new(),
        reason: format!("unknown condition operator {operator:?}"),
    })?;
    Ok(evaluate_op(key, op, value))
}

/// Evaluates `key <op> value`.
pub fn evaluate_op(key: &Value, op: Operator, value: &Value) -> bool {
    match op {
        Operator::Equals => equal(key, value),
        Operator::NotEquals => not_equal(key, value),
        Operator::In => in_op(key, value, false),
        Operator::NotIn => in_op(key, value, true),
        Operator::AnyIn => any_op(key, value, false),
        Operator::AnyNotIn => any_op(key, value, true),
        Operator::AllIn => all_op(key, value, false),
        Operator::AllNotIn => all_op(key, value, true),
        Operator::GreaterThan => numeric(key, value, |o| o == Ordering::Greater),
        Operator::GreaterThanOrEquals => numeric(key, value, |o| o != Ordering::Less),
        Operator::LessThan => numeric(key, value, |o| o == Ordering::Less),
        Operator::LessThanOrEquals => numeric(key, value, |o| o != Ordering::Greater),
        Operator::DurationGreaterThan => duration_op(key, value, |o| o == Ordering::Greater),
        Operator::DurationGreaterThanOrEquals => duration_op(key, value, |o| o != Ordering::Less),
        Operator::DurationLessThan => duration_op(key, value, |o| o == Ordering::Less),
        Operator::DurationLessThanOrEquals => duration_op(key, value, |o| o != Ordering::Greater),
    }
}

/// Result of one `{key, operator, value}` condition, with its optional message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConditionsResult {
    /// Whether the block holds.
    pub passed: bool,
    /// Kyverno's message: the `message`s of the conditions that decided the outcome, joined.
    pub message: String,
}

/// Evaluates a preconditions / deny block: `{any: [...], all: [...]}` or the legacy plain list
/// of conditions (all must hold). Variables in keys and values are substituted first (missing
/// variables resolve to `null`, as in Kyverno's preconditions).
pub fn evaluate_block(
    conditions: &Value,
    ctx: &Value,
    env: &Env,
    path: &str,
) -> Result<bool, Error> {
    evaluate_block_with_message(conditions, ctx, env, path).map(|r| r.passed)
}

/// Like [`evaluate_block`], and also returns Kyverno's message for the outcome.
pub fn evaluate_block_with_message(
    conditions: &Value,
    ctx: &Value,
    env: &Env,
    path: &str,
) -> Result<ConditionsResult, Error> {
    match conditions {
        Value::Null => Ok(ConditionsResult {
            passed: true,
            message: String::new(),
        }),
        Value::Array(list) => {
            let mut trues = Vec::new();
            for (i, c) in list.iter().enumerate() {
                let (ok, msg) = evaluate_one(c, ctx, env, &format!("{path}[{i}]"))?;
                if !ok {
                    return Ok(ConditionsResult {
                        passed: false,
                        message: msg,
                    });
                }
                trues.push(msg);
            }
            Ok(ConditionsResult {
                passed: true,
                message: join_non_empty(&trues, ";"),
            })
        }
        Value::Object(m) => {
            // Like Kyverno's JSON decoding of AnyAllConditions, other keys are ignored.
            let mut any_ok = true;
            let mut falses = Vec::new();
            let mut trues = Vec::new();
            if let Some(any) = m.get("any").filter(|v| !v.is_null()) {
                let list = any.as_array().ok_or_else(|| Error::Condition {
                    path: format!("{path}.any"),
                    reason: "must be a list of conditions".into(),
                })?;
                any_ok = false;
                for (i, c) in list.iter().enumerate() {
                    let (ok, msg) = evaluate_one(c, ctx, env, &format!("{path}.any[{i}]"))?;
                    if ok {
                        any_ok = true;
                        trues.push(msg);
                        break;
                    }
                    falses.push(msg);
                }
            }
            let mut all_ok = true;
            if let Some(all) = m.get("all").filter(|v| !v.is_null()) {
                let list = all.as_array().ok_or_else(|| Error::Condition {
                    path: format!("{path}.all"),
                    reason: "must be a list of conditions".into(),
                })?;
                for (i, c) in list.iter().enumerate() {
                    let (ok, msg) = evaluate_one(c, ctx, env, &format!("{path}.all[{i}]"))?;
                    if !ok {
                        all_ok = false;
                        falses.push(msg);
                        break;
                    }
                    trues.push(msg);
                }
            }
            let passed = any_ok && all_ok;
            Ok(ConditionsResult {
                passed,
                message: join_non_empty(if passed { &trues } else { &falses }, "; "),
            })
        }
        _ => Err(Error::Condition {
            path: path.to_string(),
            reason: "conditions must be a list or an {any, all} object".into(),
        }),
    }
}

fn join_non_empty(v: &[String], sep: &str) -> String {
    v.iter()
        .filter(|s| !s.is_empty())
        .cloned()
        .collect::<Vec<_>>()
        .join(sep)
}

fn evaluate_one(c: &Value, ctx: &Value, env: &Env, path: &str) -> Result<(bool, String), Error> {
    let obj = c.as_object().ok_or_else(|| Error::Condition {
        path: path.to_string(),
        reason: "a condition must be an object with key, operator and value".into(),
    })?;
    let op_name = obj
        .get("operator")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::Condition {
            path: path.to_string(),
            reason: "missing operator".into(),
        })?;
    let op = Operator::parse(op_name).ok_or_else(|| Error::Condition {
        path: path.to_string(),
        reason: format!("unknown condition operator {op_name:?}"),
    })?;
    let null = Value::Null;
    let key = variables::substitute_in_conditions(
        obj.get("key").unwrap_or(&null),
        ctx,
        env,
        &format!("{path}.key"),
    )?;
    let value = variables::substitute_in_conditions(
        obj.get("value").unwrap_or(&null),
        ctx,
        env,
        &format!("{path}.value"),
    )?;
    let msg = obj
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    Ok((evaluate_op(&key, op, &value), msg))
}

// ---------------------------------------------------------------------------------------------
// Durations (operator.go parseDuration)

fn num_seconds(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => Some(match go_num(n) {
            GoNum::Int(i) => i.wrapping_mul(SECOND),
            GoNum::Float(f) => (f as i64).wrapping_mul(SECOND),
        }),
        _ => None,
    }
}

fn str_duration(v: &Value) -> Option<i64> {
    match v {
        Value::String(s) if s != "0" => parse_duration(s),
        _ => None,
    }
}

/// Kyverno's `parseDuration(key, value)`: at least one side is a duration string, the other a
/// duration string or a number of seconds.
fn parse_durations(key: &Value, value: &Value) -> Option<(i64, i64)> {
    let kd = str_duration(key);
    let vd = str_duration(value);
    if kd.is_none() && vd.is_none() {
        return None;
    }
    let k = match kd {
        Some(k) => k,
        None => num_seconds(key)?,
    };
    let v = match vd {
        Some(v) => v,
        None => num_seconds(value)?,
    };
    Some((k, v))
}

fn secs(ns: i64) -> f64 {
    ns as f64 / 1e9
}

// ---------------------------------------------------------------------------------------------
// Equals / NotEquals

fn deep_equal(a: &Value, b: &Value) -> bool {
    crate::lang::jmespath::json_eq(a, b)
}

/// Equality of a float key and a typed value (validateValueWithFloatPattern).
fn float_eq(key: f64, value: &Value) -> Option<bool> {
    match value {
        Value::Number(n) => Some(match go_num(n) {
            GoNum::Int(i) => {
                if key == key.trunc() {
                    key as i64 == i
                } else {
                    return None;
                }
            }
            GoNum::Float(f) => f == key,
        }),
        Value::String(s) => Some(parse_float(s).is_some_and(|f| f == key)),
        _ => None,
    }
}

fn int_eq(key: i64, value: &Value) -> Option<bool> {
    match value {
        Value::Number(n) => match go_num(n) {
            GoNum::Int(i) => Some(i == key),
            GoNum::Float(f) => {
                if f == f.trunc() {
                    Some(f as i64 == key)
                } else {
                    None
                }
            }
        },
        Value::String(s) => Some(parse_int(s).is_some_and(|i| i == key)),
        _ => None,
    }
}

fn string_eq(key: &str, value: &Value) -> Option<bool> {
    let kv = Value::String(key.to_string());
    if let Some((k, v)) = parse_durations(&kv, value) {
        return Some(secs(k) == secs(v));
    }
    if let Some(kq) = parse_quantity(key)
        && let Value::String(vs) = value
    {
        return parse_quantity(vs).map(|vq| kq.cmp(&vq) == Ordering::Equal);
    }
    match value {
        Value::String(vs) => Some(wildcard_match(vs, key)),
        _ => None,
    }
}

fn equal(key: &Value, value: &Value) -> bool {
    match key {
        Value::Bool(b) => value.as_bool() == Some(*b),
        Value::Number(n) => match go_num(n) {
            GoNum::Int(i) => int_eq(i, value).unwrap_or(false),
            GoNum::Float(f) => float_eq(f, value).unwrap_or(false),
        },
        Value::String(s) => string_eq(s, value).unwrap_or(false),
        Value::Object(_) => value.is_object() && deep_equal(key, value),
        Value::Array(_) => value.is_array() && deep_equal(key, value),
        Value::Null => false,
    }
}

fn not_equal(key: &Value, value: &Value) -> bool {
    match key {
        Value::Bool(b) => match value.as_bool() {
            Some(v) => v != *b,
            None => true,
        },
        Value::Number(n) => match go_num(n) {
            GoNum::Int(i) => int_eq(i, value).map(|e| !e).unwrap_or(true),
            GoNum::Float(f) => float_eq(f, value).map(|e| !e).unwrap_or(true),
        },
        Value::String(s) => {
            // NotEqual's quantity branch: an empty string value falls back to wildcards.
            let kv = Value::String(s.clone());
            if let Some((k, v)) = parse_durations(&kv, value) {
                return secs(k) != secs(v);
            }
            if let Some(kq) = parse_quantity(s)
                && let Value::String(vs) = value
            {
                if vs.is_empty() {
                    return !wildcard_match(vs, s);
                }
                return match parse_quantity(vs) {
                    Some(vq) => kq.cmp(&vq) != Ordering::Equal,
                    None => true,
                };
            }
            match value {
                Value::String(vs) => !wildcard_match(vs, s),
                _ => true,
            }
        }
        Value::Object(_) => !value.is_object() || !deep_equal(key, value),
        Value::Array(_) => !value.is_array() || !deep_equal(key, value),
        Value::Null => false,
    }
}

// ---------------------------------------------------------------------------------------------
// In / NotIn (deprecated)

/// A scalar key as `fmt.Sprint` prints it (`None` for other types).
fn scalar_key(key: &Value) -> Option<String> {
    match key {
        Value::String(s) => Some(s.clone()),
        Value::Number(_) | Value::Bool(_) => Some(go_sprint(key)),
        _ => None,
    }
}

/// `json.Unmarshal` of a string into `[]string`: `None` when it is not such a document.
fn json_string_array(s: &str) -> Option<Vec<String>> {
    let v: Value = serde_json::from_str(s).ok()?;
    match v {
        Value::Array(a) => a
            .into_iter()
            .map(|x| match x {
                Value::String(s) => Some(s),
                _ => None,
            })
            .collect(),
        Value::Null => Some(Vec::new()),
        _ => None,
    }
}

/// keyExistsInArray: `Err(())` is Kyverno's "invalid type".
fn key_exists_in_array(key: &str, value: &Value) -> Result<bool, ()> {
    match value {
        Value::Array(vals) => Ok(vals.iter().any(|v| {
            let s = go_sprint(v);
            wildcard_match(&s, key) || wildcard_match(key, &s)
        })),
        Value::String(vs) => {
            if wildcard_match(vs, key) {
                return Ok(true);
            }
            let arr = json_string_array(vs).ok_or(())?;
            Ok(arr.iter().any(|v| v == key))
        }
        _ => Err(()),
    }
}

fn set_exists_in_array(key: &[String], value: &Value, not_in: bool) -> Result<bool, ()> {
    let vals: Vec<String> = match value {
        Value::Array(vals) => vals
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or(())?,
        Value::String(vs) => {
            if key.len() == 1 && &key[0] == vs {
                return Ok(true);
            }
            json_string_array(vs).ok_or(())?
        }
        _ => return Err(()),
    };
    let all_found = key.iter().all(|k| vals.contains(k));
    Ok(if not_in { !all_found } else { all_found })
}

fn in_op(key: &Value, value: &Value, negate: bool) -> bool {
    if let Some(k) = scalar_key(key) {
        return match key_exists_in_array(&k, value) {
            Ok(found) => found != negate,
            Err(()) => false,
        };
    }
    if let Value::Array(items) = key {
        let Some(keys) = items
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
        else {
            return false;
        };
        return set_exists_in_array(&keys, value, negate).unwrap_or(false);
    }
    false
}

// ---------------------------------------------------------------------------------------------
// AnyIn / AnyNotIn / AllIn / AllNotIn

fn is_in_range_pattern(s: &str) -> bool {
    crate::kyverno::pattern::string_operator(s) == crate::kyverno::pattern::StrOp::InRange
}

/// anyKeyExistsInArray / allKeyExistsInArray (identical in Kyverno).
fn any_key_exists_in_array(key: &str, value: &Value) -> Result<bool, ()> {
    match value {
        Value::Array(vals) => Ok(vals.iter().any(|v| {
            let s = go_sprint(v);
            wildcard_match(&s, key) || wildcard_match(key, &s)
        })),
        Value::String(vs) => {
            if wildcard_match(vs, key) {
                return Ok(true);
            }
            if is_in_range_pattern(vs) {
                return Ok(validate_value(&Value::String(key.to_string()), value));
            }
            let arr = string_list(vs)?;
            Ok(arr.iter().any(|v| v == key))
        }
        _ => Err(()),
    }
}

/// A string value that is valid JSON must be a JSON array of strings; otherwise it is a
/// one-element list.
fn string_list(vs: &str) -> Result<Vec<String>, ()> {
    if serde_json::from_str::<Value>(vs).is_ok() {
        json_string_array(vs).ok_or(())
    } else {
        Ok(vec![vs.to_string()])
    }
}

fn wild_either(a: &str, b: &str) -> bool {
    wildcard_match(a, b) || wildcard_match(b, a)
}

fn is_any_in(key: &[String], vals: &[String]) -> bool {
    key.iter().any(|k| vals.iter().any(|v| wild_either(k, v)))
}

fn is_any_not_in(key: &[String], vals: &[String]) -> bool {
    key.iter().any(|k| !vals.iter().any(|v| wild_either(k, v)))
}

fn is_all_in(key: &[String], vals: &[String]) -> bool {
    key.iter().all(|k| vals.iter().any(|v| wild_either(k, v)))
}

fn is_all_not_in(key: &[String], vals: &[String]) -> bool {
    !key.iter().any(|k| vals.iter().any(|v| wild_either(k, v)))
}

fn range_holds(k: &str, pattern: &str) -> bool {
    validate_value(
        &Value::String(k.to_string()),
        &Value::String(pattern.to_string()),
    )
}

fn any_set_exists_in_array(key: &[String], value: &Value, not_in: bool) -> Result<bool, ()> {
    let vals: Vec<String> = match value {
        Value::Array(vals) => vals.iter().map(go_sprint).collect(),
        Value::Number(_) | Value::Bool(_) => vec![go_sprint(value)],
        Value::String(vs) => {
            if key.len() == 1 && &key[0] == vs {
                return Ok(!not_in);
            }
            if is_in_range_pattern(vs) {
                return Ok(if not_in {
                    let p = vs.replacen('-', "!-", 1);
                    key.iter().any(|k| range_holds(k, &p))
                } else {
                    key.iter().any(|k| range_holds(k, vs))
                });
            }
            string_list(vs)?
        }
        _ => return Err(()),
    };
    Ok(if not_in {
        is_any_not_in(key, &vals)
    } else {
        is_any_in(key, &vals)
    })
}

fn all_set_exists_in_array(key: &[String], value: &Value, not_in: bool) -> Result<bool, ()> {
    let vals: Vec<String> = match value {
        Value::Array(vals) => vals.iter().map(go_sprint).collect(),
        Value::String(vs) => {
            if key.len() == 1 && &key[0] == vs {
                return Ok(!not_in);
            }
            if is_in_range_pattern(vs) {
                return Ok(if not_in {
                    !key.iter().any(|k| range_holds(k, vs))
                } else {
                    key.iter().all(|k| range_holds(k, vs))
                });
            }
            string_list(vs)?
        }
        _ => return Err(()),
    };
    Ok(if not_in {
        is_all_not_in(key, &vals)
    } else {
        is_all_in(key, &vals)
    })
}

fn any_op(key: &Value, value: &Value, not_in: bool) -> bool {
    if let Some(k) = scalar_key(key) {
        return match any_key_exists_in_array(&k, value) {
            Ok(found) => found != not_in,
            Err(()) => false,
        };
    }
    if let Value::Array(items) = key {
        let keys: Vec<String> = items.iter().map(go_sprint).collect();
        return any_set_exists_in_array(&keys, value, not_in).unwrap_or(false);
    }
    false
}

fn all_op(key: &Value, value: &Value, not_in: bool) -> bool {
    if let Some(k) = scalar_key(key) {
        return match any_key_exists_in_array(&k, value) {
            Ok(found) => found != not_in,
            Err(()) => false,
        };
    }
    if let Value::Array(items) = key {
        let keys: Vec<String> = items.iter().map(go_sprint).collect();
        return all_set_exists_in_array(&keys, value, not_in).unwrap_or(false);
    }
    false
}

// ---------------------------------------------------------------------------------------------
// GreaterThan & co.

fn cmp_f(a: f64, b: f64) -> Option<Ordering> {
    a.partial_cmp(&b)
}

fn numeric_typed(key: f64, key_v: &Value, value: &Value) -> Option<Ordering> {
    match value {
        Value::Number(n) => cmp_f(key, n.as_f64()?),
        Value::String(s) => {
            if let Some((k, v)) = parse_durations(key_v, value) {
                return cmp_f(secs(k), secs(v));
            }
            if let Some(f) = parse_float(s) {
                return cmp_f(key, f);
            }
            None
        }
        _ => None,
    }
}

fn numeric(key: &Value, value: &Value, want: fn(Ordering) -> bool) -> bool {
    let ord = match key {
        Value::Number(n) => n.as_f64().and_then(|k| numeric_typed(k, key, value)),
        Value::String(s) => numeric_string(s, key, value),
        _ => None,
    };
    ord.is_some_and(want)
}

fn numeric_string(s: &str, key: &Value, value: &Value) -> Option<Ordering> {
    if let Some((k, v)) = parse_durations(key, value) {
        return cmp_f(secs(k), secs(v));
    }
    if let (Some(kq), Value::String(vs)) = (parse_quantity(s), value)
        && let Some(vq) = parse_quantity(vs)
    {
        return Some(kq.cmp(&vq));
    }
    if let Some(f) = parse_float(s) {
        return numeric_typed(f, &serde_json::json!(f), value);
    }
    if let Some(i) = parse_int(s) {
        return numeric_typed(i as f64, &Value::from(i), value);
    }
    if let Some(kv) = parse_semver(s) {
        if let Value::String(vs) = value {
            let vv = parse_semver(vs)?;
            return Some(kv.cmp(&vv));
        }
        return None;
    }
    None
}

// ---------------------------------------------------------------------------------------------
// Duration* (deprecated)

fn duration_op(key: &Value, value: &Value, want: fn(Ordering) -> bool) -> bool {
    let k = match key {
        Value::Number(_) => num_seconds(key),
        Value::String(s) => parse_duration(s),
        _ => None,
    };
    let Some(k) = k else { return false };
    let v = match value {
        Value::Number(_) => num_seconds(value),
        Value::String(s) => parse_duration(s),
        _ => None,
    };
    v.is_some_and(|v| want(k.cmp(&v)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn blocks_substitute_and_combine() {
        let ctx = json!({"request": {"operation": "CREATE", "object": {"metadata": {"labels": {"tier": "gpu"}},
            "spec": {"containers": [{"resources": {"limits": {"memory": "16Gi"}}}]}}}});
        let env = Env::default();
        let block = json!({
            "any": [
                {"key": "{{ request.operation }}", "operator": "Equals", "value": "DELETE"},
                {"key": "{{ request.object.metadata.labels.tier }}", "operator": "AnyIn", "value": ["gpu", "tpu"], "message": "accelerated"}
            ],
            "all": [
                {"key": "{{ request.object.spec.containers[0].resources.limits.memory }}", "operator": "GreaterThan", "value": "8Gi"}
            ]
        });
        let r = evaluate_block_with_message(&block, &ctx, &env, "preconditions").unwrap();
        assert!(r.passed);
        assert_eq!(r.message, "accelerated");
        let legacy = json!([{"key": "{{ request.operation }}", "operator": "NotEquals", "value": "CREATE", "message": "m"}]);
        let r = evaluate_block_with_message(&legacy, &ctx, &env, "deny.conditions").unwrap();
        assert!(!r.passed);
        assert_eq!(r.message, "m");
        // A missing key is an error, as in Kyverno.
        let missing = json!({"all": [{"key": "{{ request.object.nope }}", "operator": "Equals", "value": ""}]});
        let e = evaluate_block(&missing, &ctx, &env, "preconditions").unwrap_err();
        assert_eq!(e.code(), "policy.variable_not_found");
        assert!(evaluate(&json!(1), "Bogus", &json!(1)).is_err());
    }

    #[test]
    fn operator_type_rules() {
        let t = |k: Value, op: &str, v: Value| evaluate(&k, op, &v).unwrap();
        assert!(t(json!("1Gi"), "Equals", json!("1024Mi")));
        assert!(t(json!("1h"), "Equals", json!(3600)));
        assert!(t(json!("nginx:1.2"), "Equals", json!("nginx:*")));
        assert!(t(json!("1.10.0"), "GreaterThan", json!("1.9.0")));
        assert!(t(json!(5), "AnyIn", json!("0-10")));
        assert!(t(json!([1, 11]), "AnyNotIn", json!("0-10")));
        assert!(!t(json!([1, 5]), "AllNotIn", json!("0-10")));
        assert!(t(json!("90m"), "DurationGreaterThan", json!("1h")));
        assert!(t(json!("kube-system"), "AnyIn", json!(["kube-*"])));
    }
}
