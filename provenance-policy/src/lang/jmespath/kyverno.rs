//! Kyverno's JMESPath functions (`pkg/engine/jmespath` in Kyverno), pure: `time_now*` and
//! `time_since` with an empty end read [`Env::now`]; `random` and DNS look-ups are refused.

use super::Env;
use super::functions::{Arg, arg_num, arg_str, arity, type_err};
use super::interp::{json_eq, num};
use super::time::GoTime;
use super::units::{
    Quantity, format_duration, format_g, parse_duration, parse_int, parse_quantity, parse_semver,
};
use base64::Engine as _;
use serde_json::{Map, Value};
use std::cmp::Ordering;

/// Calls Kyverno function `name`; `Ok(None)` when there is no such function.
pub(crate) fn call(name: &str, a: &[Arg<'_>], env: &Env) -> Result<Option<Value>, String> {
    let s = |i: usize| arg_str(name, a, i);
    Ok(Some(match name {
        "compare" => {
            arity(name, a, 2)?;
            Value::from(match s(0)?.cmp(s(1)?) {
                Ordering::Less => -1,
                Ordering::Equal => 0,
                Ordering::Greater => 1,
            })
        }
        "equal_fold" => {
            arity(name, a, 2)?;
            Value::Bool(equal_fold(s(0)?, s(1)?))
        }
        "replace" => {
            arity(name, a, 4)?;
            let n = arg_num(name, a, 3)?;
            Value::String(go_replace(s(0)?, s(1)?, s(2)?, n as i64))
        }
        "replace_all" => {
            arity(name, a, 3)?;
            Value::String(go_replace(s(0)?, s(1)?, s(2)?, -1))
        }
        "to_upper" => {
            arity(name, a, 1)?;
            Value::String(s(0)?.to_uppercase())
        }
        "to_lower" => {
            arity(name, a, 1)?;
            Value::String(s(0)?.to_lowercase())
        }
        "trim" => {
            arity(name, a, 2)?;
            let cut: Vec<char> = s(1)?.chars().collect();
            Value::String(s(0)?.trim_matches(|c| cut.contains(&c)).to_string())
        }
        "trim_prefix" => {
            arity(name, a, 2)?;
            let (st, p) = (s(0)?, s(1)?);
            Value::String(st.strip_prefix(p).unwrap_or(st).to_string())
        }
        "split" => {
            arity(name, a, 2)?;
            let (st, sep) = (s(0)?, s(1)?);
            let parts: Vec<Value> = if sep.is_empty() {
                st.chars().map(|c| Value::String(c.to_string())).collect()
            } else {
                st.split(sep)
                    .map(|p| Value::String(p.to_string()))
                    .collect()
            };
            Value::Array(parts)
        }
        "regex_replace_all" | "regex_replace_all_literal" => {
            arity(name, a, 3)?;
            let re = regex(name, s(0)?)?;
            let src = iface_to_string(name, a, 1)?;
            let repl = iface_to_string(name, a, 2)?;
            let out = if name == "regex_replace_all" {
                re.replace_all(&src, go_template(&repl).as_str())
                    .into_owned()
            } else {
                re.replace_all(&src, regex::NoExpand(&repl)).into_owned()
            };
            Value::String(out)
        }
        "regex_match" => {
            arity(name, a, 2)?;
            let re = regex(name, s(0)?)?;
            Value::Bool(re.is_match(&iface_to_string(name, a, 1)?))
        }
        "pattern_match" => {
            arity(name, a, 2)?;
            let p = s(0)?;
            Value::Bool(provenance_core::wildcard::wildcard_match(
                p,
                &iface_to_string(name, a, 1)?,
            ))
        }
        "label_match" => {
            arity(name, a, 2)?;
            let (Some(Value::Object(l)), Some(Value::Object(m))) = (a[0].val(), a[1].val()) else {
                return Err(type_err(name, 0, "an object", a[0].val()));
            };
            Value::Bool(
                l.iter()
                    .all(|(k, v)| m.get(k).is_some_and(|w| json_eq(v, w))),
            )
        }
        "to_boolean" => {
            arity(name, a, 1)?;
            match s(0)?.to_lowercase().as_str() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                other => {
                    return Err(format!(
                        "to_boolean(): lowercase argument must be 'true' or 'false' (provided: '{other}')"
                    ));
                }
            }
        }
        "add" | "subtract" | "multiply" | "divide" | "modulo" => {
            arity(name, a, 2)?;
            let l = operand(name, a[0].val())?;
            let r = operand(name, a[1].val())?;
            arith(name, l, r)?
        }
        "round" => {
            arity(name, a, 2)?;
            let x = arg_num(name, a, 0)?;
            let n = arg_num(name, a, 1)?;
            if n.fract() != 0.0 || !n.is_finite() {
                return Err("round(): the number of digits must be an integer".into());
            }
            if n < 0.0 {
                return Err("round(): the number of digits must not be negative".into());
            }
            let shift = 10f64.powf(n);
            num((x * shift).round() / shift)
        }
        "base64_decode" => {
            arity(name, a, 1)?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(s(0)?)
                .map_err(|e| format!("base64_decode(): {e}"))?;
            Value::String(String::from_utf8_lossy(&bytes).into_owned())
        }
        "base64_encode" => {
            arity(name, a, 1)?;
            Value::String(base64::engine::general_purpose::STANDARD.encode(s(0)?))
        }
        "path_canonicalize" => {
            arity(name, a, 1)?;
            Value::String(clean_path(s(0)?))
        }
        "truncate" => {
            arity(name, a, 2)?;
            let st = s(0)?;
            let n = arg_num(name, a, 1)?.max(0.0) as usize;
            Value::String(st.chars().take(n).collect())
        }
        "semver_compare" => {
            arity(name, a, 2)?;
            let v = parse_semver(s(0)?).unwrap_or_else(super::units::Semver::zero);
            Value::Bool(semver_range(s(1)?)?.iter().any(|and| {
                and.iter().all(|(op, w)| {
                    let o = v.cmp(w);
                    match *op {
                        "<" => o == Ordering::Less,
                        "<=" => o != Ordering::Greater,
                        ">" => o == Ordering::Greater,
                        ">=" => o != Ordering::Less,
                        "!=" => o != Ordering::Equal,
                        _ => o == Ordering::Equal,
                    }
                })
            }))
        }
        "parse_json" => {
            arity(name, a, 1)?;
            serde_json::from_str(s(0)?).map_err(|e| format!("parse_json(): {e}"))?
        }
        "parse_yaml" => {
            arity(name, a, 1)?;
            crate::yaml::load_document(s(0)?, "<parse_yaml>")
                .map_err(|e| format!("parse_yaml(): {e}"))?
        }
        "lookup" => {
            arity(name, a, 2)?;
            match a[0].val() {
                Some(Value::Object(o)) => match a[1].val() {
                    Some(Value::String(k)) => o.get(k).cloned().unwrap_or(Value::Null),
                    other => return Err(type_err(name, 1, "a string", other)),
                },
                Some(Value::Array(arr)) => match a[1].val() {
                    Some(Value::Number(n)) => {
                        let f = n.as_f64().unwrap_or(f64::NAN);
                        if f.fract() != 0.0 || !f.is_finite() {
                            return Err(format!(
                                "lookup(): argument #2: expected an integer number but got: {}",
                                format_g(f)
                            ));
                        }
                        if f < 0.0 || f >= arr.len() as f64 {
                            Value::Null
                        } else {
                            arr[f as usize].clone()
                        }
                    }
                    other => return Err(type_err(name, 1, "a number", other)),
                },
                other => return Err(type_err(name, 0, "an object or an array", other)),
            }
        }
        "items" => {
            arity(name, a, 3)?;
            let (kn, vn) = (s(1)?, s(2)?);
            let pair = |k: Value, v: Value| {
                let mut m = Map::new();
                m.insert(kn.to_string(), k);
                m.insert(vn.to_string(), v);
                Value::Object(m)
            };
            match a[0].val() {
                Some(Value::Object(o)) => Value::Array(
                    o.iter()
                        .map(|(k, v)| pair(Value::String(k.clone()), v.clone()))
                        .collect(),
                ),
                Some(Value::Array(arr)) => Value::Array(
                    arr.iter()
                        .enumerate()
                        .map(|(i, v)| pair(Value::from(i as u64), v.clone()))
                        .collect(),
                ),
                other => return Err(type_err(name, 0, "an object or an array", other)),
            }
        }
        "object_from_lists" => {
            arity(name, a, 2)?;
            let (Some(Value::Array(keys)), Some(Value::Array(vals))) = (a[0].val(), a[1].val())
            else {
                return Err(type_err(name, 0, "two arrays", a[0].val()));
            };
            let mut out = Map::new();
            for (i, k) in keys.iter().enumerate() {
                let key = scalar_to_string(k).ok_or_else(|| {
                    "object_from_lists(): argument 1 must be an array of strings".to_string()
                })?;
                out.insert(key, vals.get(i).cloned().unwrap_or(Value::Null));
            }
            Value::Object(out)
        }
        "random" => {
            return Err(
                "random() is not supported: policy evaluation here is deterministic".into(),
            );
        }
        "x509_decode" => {
            arity(name, a, 1)?;
            super::x509::decode(s(0)?)?
        }
        "time_since" => {
            arity(name, a, 3)?;
            let layout = s(0)?;
            let t1 = parse_time_layout(layout, s(1)?)?;
            let t2 = if s(2)?.is_empty() {
                now(name, env)?
            } else {
                parse_time_layout(layout, s(2)?)?
            };
            Value::String(format_duration(t2.sub(&t1)))
        }
        "time_now" | "time_now_utc" => {
            arity(name, a, 0)?;
            Value::String(now(name, env)?.format_rfc3339())
        }
        "time_to_cron" => {
            arity(name, a, 1)?;
            let t = rfc(name, a, 0)?;
            let c = t.civil();
            Value::String(format!(
                "{} {} {} {} {}",
                c.minute, c.hour, c.day, c.month, c.weekday
            ))
        }
        "time_add" => {
            arity(name, a, 2)?;
            let t = rfc(name, a, 0)?;
            let d = dur(name, a, 1)?;
            Value::String(t.add(d).format_rfc3339())
        }
        "time_parse" => {
            arity(name, a, 2)?;
            let (layout, ts) = (s(0)?, s(1)?);
            if parse_int(layout).is_some() {
                let secs = parse_int(ts)
                    .ok_or_else(|| format!("time_parse(): invalid epoch time {ts:?}"))?;
                Value::String(GoTime::from_unix(secs, 0, 0).format_rfc3339())
            } else {
                Value::String(parse_time_layout(layout, ts)?.format_rfc3339())
            }
        }
        "time_utc" => {
            arity(name, a, 1)?;
            Value::String(rfc(name, a, 0)?.utc().format_rfc3339())
        }
        "time_diff" => {
            arity(name, a, 2)?;
            let (t1, t2) = (rfc(name, a, 0)?, rfc(name, a, 1)?);
            Value::String(format_duration(t2.sub(&t1)))
        }
        "time_before" => {
            arity(name, a, 2)?;
            Value::Bool(rfc(name, a, 0)?.sub(&rfc(name, a, 1)?) < 0)
        }
        "time_after" => {
            arity(name, a, 2)?;
            Value::Bool(rfc(name, a, 0)?.sub(&rfc(name, a, 1)?) > 0)
        }
        "time_between" => {
            arity(name, a, 3)?;
            let t = rfc(name, a, 0)?;
            let (st, en) = (rfc(name, a, 1)?, rfc(name, a, 2)?);
            Value::Bool(t.sub(&st) > 0 && t.sub(&en) < 0)
        }
        "time_truncate" => {
            arity(name, a, 2)?;
            let t = rfc(name, a, 0)?;
            let d = dur(name, a, 1)?;
            Value::String(t.truncate(d).format_rfc3339())
        }
        "image_normalize" => {
            arity(name, a, 1)?;
            Value::String(image_normalize(s(0)?)?)
        }
        "is_external_url" => {
            arity(name, a, 1)?;
            Value::Bool(is_external_url(s(0)?)?)
        }
        "sha256" => {
            arity(name, a, 1)?;
            Value::String(hex::encode(aws_lc_rs::digest::digest(
                &aws_lc_rs::digest::SHA256,
                s(0)?.as_bytes(),
            )))
        }
        "sha1" => {
            arity(name, a, 1)?;
            Value::String(hex::encode(aws_lc_rs::digest::digest(
                &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
                s(0)?.as_bytes(),
            )))
        }
        "md5" => {
            arity(name, a, 1)?;
            Value::String(hex::encode(super::md5::md5(s(0)?.as_bytes())))
        }
        _ => return Ok(None),
    }))
}

fn now(name: &str, env: &Env) -> Result<GoTime, String> {
    env.now
        .map(|t| GoTime::from_unix(t.0, 0, 0))
        .ok_or_else(|| format!("{name}(): the current time was not provided (Env::now)"))
}

fn rfc(name: &str, a: &[Arg<'_>], i: usize) -> Result<GoTime, String> {
    let s = arg_str(name, a, i)?;
    GoTime::parse_rfc3339(s)
        .ok_or_else(|| format!("{name}(): parsing time {s:?} as RFC 3339 failed"))
}

fn dur(name: &str, a: &[Arg<'_>], i: usize) -> Result<i64, String> {
    let s = arg_str(name, a, i)?;
    parse_duration(s).ok_or_else(|| format!("{name}(): invalid duration {s:?}"))
}

fn parse_time_layout(layout: &str, s: &str) -> Result<GoTime, String> {
    let r = if layout.is_empty() {
        GoTime::parse_rfc3339(s)
    } else {
        GoTime::parse_layout(layout, s)
    };
    r.ok_or_else(|| format!("parsing time {s:?} with layout {layout:?} failed"))
}

fn equal_fold(a: &str, b: &str) -> bool {
    a.chars().count() == b.chars().count()
        && a.chars().zip(b.chars()).all(|(x, y)| {
            x == y || x.to_lowercase().eq(y.to_lowercase()) || x.to_uppercase().eq(y.to_uppercase())
        })
}

/// Go's `strings.Replace(s, old, new, n)` (`n < 0`: all).
fn go_replace(s: &str, old: &str, new: &str, n: i64) -> String {
    if n == 0 || (old == new) {
        return s.to_string();
    }
    if old.is_empty() {
        // Go inserts `new` before each rune and at the end, up to n times.
        let mut out = String::new();
        let mut count = 0i64;
        for c in s.chars() {
            if n < 0 || count < n {
                out.push_str(new);
                count += 1;
            }
            out.push(c);
        }
        if n < 0 || count < n {
            out.push_str(new);
        }
        return out;
    }
    if n < 0 {
        s.replace(old, new)
    } else {
        s.replacen(old, new, n as usize)
    }
}

/// Go's regular expressions (ASCII `\d \w \s \b`, see [`crate::re2`]).
fn regex(name: &str, p: &str) -> Result<regex::Regex, String> {
    crate::re2::compile(p).map_err(|e| format!("{name}(): {e}"))
}

/// Go's `Regexp.Expand` template syntax (`$1`, `${name}`, `$$`, longest name after `$`) is the
/// one Rust's `regex` uses: the replacement is passed through unchanged.
fn go_template(t: &str) -> String {
    t.to_string()
}

/// Kyverno's `ifaceToString` for regex / pattern arguments: strings, numbers (float32
/// formatting), booleans.
fn iface_to_string(name: &str, a: &[Arg<'_>], i: usize) -> Result<String, String> {
    match a.get(i).and_then(Arg::val) {
        Some(v @ (Value::String(_) | Value::Number(_) | Value::Bool(_))) => {
            Ok(scalar_to_string(v).unwrap_or_default())
        }
        other => Err(type_err(name, i, "a string or a number", other)),
    }
}

fn scalar_to_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(match n.as_i64() {
            Some(i) => i.to_string(),
            None => format!("{}", n.as_f64().unwrap_or(0.0) as f32),
        }),
        _ => None,
    }
}

/// Go's `filepath.Clean` (what `filepath.Join` of one element does); `""` stays `""`.
fn clean_path(p: &str) -> String {
    if p.is_empty() {
        return String::new();
    }
    let abs = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !abs {
                    parts.push("..");
                }
            }
            s => parts.push(s),
        }
    }
    let j = parts.join("/");
    match (abs, j.is_empty()) {
        (true, _) => format!("/{j}"),
        (false, true) => ".".into(),
        (false, false) => j,
    }
}

// ---------------------------------------------------------------------------------------------
// Arithmetic on numbers, quantities and durations (arithmetic.go)

#[derive(Debug, Clone, Copy)]
enum Operand {
    Scalar(f64),
    Quantity(Quantity, QFormat),
    Duration(i64),
}

/// A quantity's Kubernetes format (from its suffix), kept for printing results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum QFormat {
    BinarySI,
    DecimalSI,
    DecimalExponent,
}

fn qformat(s: &str) -> QFormat {
    if s.ends_with('i') {
        QFormat::BinarySI
    } else if s
        .trim_start_matches(['+', '-'])
        .trim_start_matches(|c: char| c.is_ascii_digit() || c == '.')
        .starts_with(['e', 'E'])
        && s.len() > 1
        && !s.ends_with('E')
    {
        QFormat::DecimalExponent
    } else {
        QFormat::DecimalSI
    }
}

fn operand(name: &str, v: Option<&Value>) -> Result<Operand, String> {
    match v {
        Some(Value::Number(n)) => Ok(Operand::Scalar(n.as_f64().unwrap_or(0.0))),
        Some(Value::String(s)) => {
            if let Some(q) = parse_quantity(s) {
                Ok(Operand::Quantity(q, qformat(s)))
            } else if let Some(d) = parse_duration(s) {
                Ok(Operand::Duration(d))
            } else {
                Err(format!("{name}(): invalid operand {s:?}"))
            }
        }
        _ => Err(format!("{name}(): invalid operand")),
    }
}

fn mismatch(name: &str) -> String {
    format!("{name}(): types mismatch")
}

fn arith(name: &str, l: Operand, r: Operand) -> Result<Value, String> {
    use Operand::*;
    let zero = || format!("{name}(): zero divisor");
    Ok(match (name, l, r) {
        ("add" | "sum", Scalar(a), Scalar(b)) => num(a + b),
        ("add" | "sum", Quantity(a, f), Quantity(b, _)) => {
            Value::String(q_string(q_add(a, b, false), f))
        }
        ("add" | "sum", Duration(a), Duration(b)) => {
            Value::String(format_duration(a.wrapping_add(b)))
        }
        ("subtract", Scalar(a), Scalar(b)) => num(a - b),
        ("subtract", Quantity(a, f), Quantity(b, _)) => {
            Value::String(q_string(q_add(a, b, true), f))
        }
        ("subtract", Duration(a), Duration(b)) => Value::String(format_duration(a.wrapping_sub(b))),
        ("multiply", Scalar(a), Scalar(b)) => num(a * b),
        ("multiply", Quantity(q, f), Scalar(x)) | ("multiply", Scalar(x), Quantity(q, f)) => {
            let s = parse_quantity(&format_g(x)).ok_or_else(|| mismatch(name))?;
            Value::String(q_string(q_mul(q, s), f))
        }
        ("multiply", Duration(d), Scalar(x)) | ("multiply", Scalar(x), Duration(d)) => {
            let secs = d as f64 / 1e9 * x;
            Value::String(format_duration((secs * 1e9) as i64))
        }
        ("divide", Scalar(a), Scalar(b)) => {
            if b == 0.0 {
                return Err(zero());
            }
            num(a / b)
        }
        ("divide", Quantity(a, _), Quantity(b, _)) => {
            let d = b.to_f64();
            if d == 0.0 {
                return Err(zero());
            }
            num(a.to_f64() / d)
        }
        ("divide", Quantity(q, f), Scalar(x)) => {
            if x == 0.0 {
                return Err(zero());
            }
            let s = parse_quantity(&format_g(x)).ok_or_else(|| mismatch(name))?;
            Value::String(q_string(q_div(q, s).ok_or_else(zero)?, f))
        }
        ("divide", Duration(a), Duration(b)) => {
            if b == 0 {
                return Err(zero());
            }
            num(a as f64 / b as f64)
        }
        ("divide", Duration(d), Scalar(x)) => {
            if x == 0.0 {
                return Err(zero());
            }
            let secs = d as f64 / 1e9 / x;
            Value::String(format_duration((secs * 1e9) as i64))
        }
        ("modulo", Scalar(a), Scalar(b)) => {
            let (i, j) = (a as i64, b as i64);
            if a != i as f64 || b != j as f64 {
                return Err(format!("{name}(): non-integer argument(s) for modulo"));
            }
            if j == 0 {
                return Err(zero());
            }
            num(i.wrapping_rem(j) as f64)
        }
        ("modulo", Quantity(a, f), Quantity(b, _)) => {
            let (x, y) = (a.to_f64(), b.to_f64());
            let (i, j) = (x as i64, y as i64);
            if x != i as f64 || y != j as f64 {
                return Err(format!("{name}(): non-integer argument(s) for modulo"));
            }
            if j == 0 {
                return Err(zero());
            }
            let r = i.wrapping_rem(j);
            Value::String(q_string(
                super::units::Quantity {
                    mant: i128::from(r),
                    exp: 0,
                    binary: f == QFormat::BinarySI,
                },
                f,
            ))
        }
        ("modulo", Duration(a), Duration(b)) => {
            if b == 0 {
                return Err(zero());
            }
            Value::String(format_duration(a.wrapping_rem(b)))
        }
        _ => return Err(mismatch(name)),
    })
}

/// Kyverno's `sum`: numbers, quantities or durations, at least one.
pub(crate) fn sum(arr: &[Value]) -> Result<Value, String> {
    let Some(first) = arr.first() else {
        return Err("sum(): at least one element in the array is required".into());
    };
    let mut acc = first.clone();
    for item in &arr[1..] {
        let l = operand("sum", Some(&acc))?;
        let r = operand("sum", Some(item))?;
        acc = arith("sum", l, r)?;
    }
    Ok(acc)
}

fn align(a: Quantity, b: Quantity) -> Option<(i128, i128, i32)> {
    let e = a.exp.min(b.exp);
    let ma = a
        .mant
        .checked_mul(10i128.checked_pow((a.exp - e) as u32)?)?;
    let mb = b
        .mant
        .checked_mul(10i128.checked_pow((b.exp - e) as u32)?)?;
    Some((ma, mb, e))
}

fn from_f64(f: f64) -> Quantity {
    parse_quantity(&format!("{f:e}").replace('e', "e")).unwrap_or(Quantity {
        mant: 0,
        exp: 0,
        binary: false,
    })
}

fn q_add(a: Quantity, b: Quantity, sub: bool) -> Quantity {
    match align(a, b) {
        Some((x, y, e)) => {
            let r = if sub {
                x.checked_sub(y)
            } else {
                x.checked_add(y)
            };
            match r {
                Some(m) => Quantity {
                    mant: m,
                    exp: e,
                    binary: a.binary,
                },
                None => from_f64(if sub {
                    a.to_f64() - b.to_f64()
                } else {
                    a.to_f64() + b.to_f64()
                }),
            }
        }
        None => from_f64(if sub {
            a.to_f64() - b.to_f64()
        } else {
            a.to_f64() + b.to_f64()
        }),
    }
}

fn q_mul(a: Quantity, b: Quantity) -> Quantity {
    match a.mant.checked_mul(b.mant) {
        Some(m) => Quantity {
            mant: m,
            exp: a.exp + b.exp,
            binary: a.binary,
        },
        None => from_f64(a.to_f64() * b.to_f64()),
    }
}

/// Division rounded toward zero at the larger of the two scales (inf.Dec `QuoRound`).
fn q_div(a: Quantity, b: Quantity) -> Option<Quantity> {
    if b.mant == 0 {
        return None;
    }
    let scale = (-a.exp).max(-b.exp).max(0);
    // a / b at 10^-scale: a.mant * 10^(a.exp + scale - b.exp) / b.mant
    let shift = a.exp + scale - b.exp;
    let (num_, den) = if shift >= 0 {
        (
            a.mant.checked_mul(10i128.checked_pow(shift as u32)?)?,
            b.mant,
        )
    } else {
        (
            a.mant,
            b.mant.checked_mul(10i128.checked_pow((-shift) as u32)?)?,
        )
    };
    Some(Quantity {
        mant: num_.checked_div(den)?,
        exp: -scale,
        binary: a.binary,
    })
}

/// Kubernetes' canonical quantity string (`Quantity.String()`).
fn q_string(q: Quantity, f: QFormat) -> String {
    let (mut m, mut e) = (q.mant, q.exp);
    if m == 0 {
        return "0".into();
    }
    while m % 10 == 0 {
        m /= 10;
        e += 1;
    }
    // Kubernetes keeps at most nano precision, rounding up (away from zero).
    if e < -9 {
        let div = 10i128.checked_pow((-9 - e) as u32).unwrap_or(i128::MAX);
        let r = m / div;
        m = if m % div != 0 { r + m.signum() } else { r };
        e = -9;
        while m != 0 && m % 10 == 0 {
            m /= 10;
            e += 1;
        }
        if m == 0 {
            return "0".into();
        }
    }
    if f == QFormat::BinarySI
        && e >= 0
        && let Some(v) = 10i128.checked_pow(e as u32).and_then(|p| m.checked_mul(p))
        && v.abs() >= 1024
    {
        let mut amount = v;
        let mut k = 0;
        while k < 6 && amount % 1024 == 0 {
            amount /= 1024;
            k += 1;
        }
        let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][k];
        return format!("{amount}{suffix}");
    }
    let r = e.rem_euclid(3);
    if r != 0 {
        m = m.saturating_mul(10i128.pow(r as u32));
        e -= r;
    }
    if f == QFormat::DecimalExponent {
        return if e == 0 {
            m.to_string()
        } else {
            format!("{m}e{e}")
        };
    }
    let suffix = match e {
        -9 => "n",
        -6 => "u",
        -3 => "m",
        0 => "",
        3 => "k",
        6 => "M",
        9 => "G",
        12 => "T",
        15 => "P",
        18 => "E",
        _ => return format!("{m}e{e}"),
    };
    format!("{m}{suffix}")
}

// ---------------------------------------------------------------------------------------------
// semver ranges (blang/semver `ParseRange`)

type Cmp = (&'static str, super::units::Semver);

fn semver_range(r: &str) -> Result<Vec<Vec<Cmp>>, String> {
    let mut ors = Vec::new();
    for part in r.split("||") {
        let toks: Vec<&str> = part.split_whitespace().collect();
        if toks.is_empty() {
            return Err(format!("semver_compare(): invalid range {r:?}"));
        }
        // Join an operator written apart from its version (`>= 1.2.3`).
        let mut merged: Vec<String> = Vec::new();
        let mut pending = String::new();
        for t in toks {
            if matches!(t, ">" | ">=" | "<" | "<=" | "=" | "==" | "!=" | "!") {
                pending.push_str(t);
            } else {
                merged.push(format!("{pending}{t}"));
                pending.clear();
            }
        }
        if !pending.is_empty() {
            return Err(format!("semver_compare(): invalid range {r:?}"));
        }
        let mut ands: Vec<Vec<Cmp>> = vec![Vec::new()];
        for m in merged {
            let (op, v) = split_op(&m);
            let expanded = expand_wildcard(op, v)
                .ok_or_else(|| format!("semver_compare(): invalid range {r:?}"))?;
            // `!=1.2.x` expands to an OR: distribute it.
            if expanded.len() > 1 {
                let mut next = Vec::new();
                for base in &ands {
                    for alt in &expanded {
                        let mut b = base.clone();
                        b.extend(alt.iter().cloned());
                        next.push(b);
                    }
                }
                ands = next;
            } else if let Some(alt) = expanded.into_iter().next() {
                for base in &mut ands {
                    base.extend(alt.iter().cloned());
                }
            }
        }
        ors.extend(ands);
    }
    Ok(ors)
}

fn split_op(s: &str) -> (&'static str, &str) {
    for (p, op) in [
        (">=", ">="),
        ("<=", "<="),
        ("!=", "!="),
        ("==", "="),
        (">", ">"),
        ("<", "<"),
        ("=", "="),
        ("!", "!="),
    ] {
        if let Some(rest) = s.strip_prefix(p) {
            return (op, rest);
        }
    }
    ("=", s)
}

fn sv(s: &str) -> Option<super::units::Semver> {
    parse_semver(s)
}

/// Expands `1.2.x`-style wildcards; returns OR-alternatives of AND-lists.
fn expand_wildcard(op: &'static str, v: &str) -> Option<Vec<Vec<Cmp>>> {
    let parts: Vec<&str> = v.split('.').collect();
    let is_w = |p: &str| matches!(p, "x" | "X" | "*");
    let wild = parts.iter().position(|p| is_w(p));
    let Some(w) = wild else {
        return Some(vec![vec![(op, sv(v)?)]]);
    };
    if parts.len() != 3 || w == 0 {
        return None;
    }
    let major: u64 = parts[0].parse().ok()?;
    let (lo, hi) = if w == 1 {
        (format!("{major}.0.0"), format!("{}.0.0", major + 1))
    } else {
        let minor: u64 = parts[1].parse().ok()?;
        (
            format!("{major}.{minor}.0"),
            format!("{major}.{}.0", minor + 1),
        )
    };
    let (lo, hi) = (sv(&lo)?, sv(&hi)?);
    Some(match op {
        ">=" => vec![vec![(">=", lo)]],
        ">" => vec![vec![(">=", hi)]],
        "<" => vec![vec![("<", lo)]],
        "<=" => vec![vec![("<", hi)]],
        "!=" => vec![vec![("<", lo)], vec![(">=", hi)]],
        _ => vec![vec![(">=", lo), ("<", hi)]],
    })
}

// ---------------------------------------------------------------------------------------------
// images and URLs

fn image_normalize(image: &str) -> Result<String, String> {
    let full = match image.find('/') {
        Some(i) => {
            let first = &image[..i];
            if !first.contains(['.', ':']) && first != "localhost" && first.to_lowercase() == first
            {
                format!("docker.io/{image}")
            } else {
                image.to_string()
            }
        }
        None => format!("docker.io/{image}"),
    };
    provenance_core::ImageReference::parse_raw(&full)
        .map_err(|e| format!("image_normalize(): bad image: {full}: {e}"))?;
    let (name, digest) = match full.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (full.as_str(), None),
    };
    let slash = name.rfind('/').unwrap_or(0);
    let (repo, tag) = match name[slash..].find(':') {
        Some(i) => (&name[..slash + i], Some(&name[slash + i + 1..])),
        None => (name, None),
    };
    Ok(match digest {
        Some(d) => format!("{repo}@{d}"),
        None => format!("{repo}:{}", tag.unwrap_or("latest")),
    })
}

fn is_external_url(u: &str) -> Result<bool, String> {
    let rest = match u.split_once("://") {
        Some((_, r)) => r,
        None => u,
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let hostport = authority.rsplit('@').next().unwrap_or("");
    let host = if let Some(h) = hostport.strip_prefix('[') {
        h.split(']').next().unwrap_or("")
    } else {
        hostport.split(':').next().unwrap_or("")
    };
    let lower = host.to_ascii_lowercase();
    if lower == "localhost" || lower.ends_with(".localhost") {
        // Resolves to loopback addresses by definition (RFC 6761), no look-up needed.
        return Ok(false);
    }
    match host.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(ip)) => Ok(!(ip.is_loopback() || ip.is_private())),
        Ok(std::net::IpAddr::V6(ip)) => {
            let private = (ip.segments()[0] & 0xfe00) == 0xfc00;
            Ok(!(ip.is_loopback() || private))
        }
        Err(_) => Err(format!(
            "is_external_url(): resolving host {host:?} needs DNS, which pure evaluation does not do"
        )),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::super::{Env, search, search_with};
    use provenance_core::UnixTime;
    use serde_json::{Value, json};

    fn s(e: &str) -> Value {
        search(e, &json!({})).unwrap()
    }

    #[test]
    fn strings() {
        assert_eq!(s("compare('a', 'b')"), json!(-1));
        assert_eq!(s("equal_fold('Go', 'GO')"), json!(true));
        assert_eq!(s("replace('a-b-c', '-', '+', `1`)"), json!("a+b-c"));
        assert_eq!(s("replace_all('a-b-c', '-', '+')"), json!("a+b+c"));
        assert_eq!(s("trim('--x--', '-')"), json!("x"));
        assert_eq!(s("trim_prefix('nginx:1', 'nginx:')"), json!("1"));
        assert_eq!(s("split('a,b', ',')"), json!(["a", "b"]));
        assert_eq!(s("truncate('Lorem ipsum', `2.6`)"), json!("Lo"));
        assert_eq!(s("truncate('Lorem', `-1`)"), json!(""));
        assert_eq!(s("to_boolean('TRUE')"), json!(true));
        assert!(search("to_boolean('yes')", &json!({})).is_err());
        assert_eq!(
            s("path_canonicalize('/var/run///containerd////')"),
            json!("/var/run/containerd")
        );
        assert_eq!(s("path_canonicalize('/../../')"), json!("/"));
        assert_eq!(s("base64_encode('hi')"), json!("aGk="));
        assert_eq!(s("base64_decode('aGk=')"), json!("hi"));
        assert_eq!(s("regex_match('^v[0-9]+$', 'v12')"), json!(true));
        assert_eq!(s("regex_match('^[0-9]+$', `12`)"), json!(true));
        assert_eq!(
            s("regex_replace_all('([a-z]+)-([0-9]+)', 'abc-12', '${2}_$1')"),
            json!("12_abc")
        );
        assert_eq!(
            s("regex_replace_all_literal('[0-9]', 'a1b2', '$1')"),
            json!("a$1b$1")
        );
        assert_eq!(s("pattern_match('nginx:*', 'nginx:1.2')"), json!(true));
        assert_eq!(
            s("sha256('')"),
            json!("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        );
        assert_eq!(s("md5('abc')"), json!("900150983cd24fb0d6963f7d28e17f72"));
    }

    #[test]
    fn arithmetic() {
        assert_eq!(s("add(`1`, `2`)"), json!(3));
        assert_eq!(s("add('1Gi', '512Mi')"), json!("1536Mi"));
        assert_eq!(s("add('500m', '1')"), json!("1500m"));
        assert_eq!(s("subtract('2Gi', '1Gi')"), json!("1Gi"));
        assert_eq!(s("add('1h', '30s')"), json!("1h0m30s"));
        // Kyverno quirk: `30m` is a quantity (30 milli) before it is a duration.
        assert!(search("add('1h', '30m')", &json!({})).is_err());
        assert_eq!(s("multiply('250m', `4`)"), json!("1"));
        assert_eq!(s("multiply('1h', `2`)"), json!("2h0m0s"));
        assert_eq!(s("divide('1Gi', '512Mi')"), json!(2));
        assert_eq!(s("divide(`10`, `4`)"), json!(2.5));
        assert_eq!(s("modulo(`10`, `4`)"), json!(2));
        assert_eq!(s("modulo('10Gi', '3Gi')"), json!("1Gi"));
        assert!(search("divide(`1`, `0`)", &json!({})).is_err());
        assert!(search("add('1Gi', `1`)", &json!({})).is_err());
        assert_eq!(s("sum(['1Gi', '1Gi'])"), json!("2Gi"));
        assert_eq!(s("sum(`[1, 2.5]`)"), json!(3.5));
        assert_eq!(s("round(`2.71828`, `2`)"), json!(2.72));
    }

    #[test]
    fn objects_and_lists() {
        assert_eq!(
            s("items(`{\"b\": 2, \"a\": 1}`, 'k', 'v')"),
            json!([{"k": "a", "v": 1}, {"k": "b", "v": 2}])
        );
        assert_eq!(s("items(`[\"x\"]`, 'i', 'v')"), json!([{"i": 0, "v": "x"}]));
        assert_eq!(s("lookup(`{\"a\": 1}`, 'a')"), json!(1));
        assert_eq!(s("lookup(`[1, 2]`, `5`)"), Value::Null);
        assert_eq!(
            s("object_from_lists(`[\"a\", \"b\"]`, `[1]`)"),
            json!({"a": 1, "b": null})
        );
        assert_eq!(
            s("label_match(`{\"a\": \"1\"}`, `{\"a\": \"1\", \"b\": \"2\"}`)"),
            json!(true)
        );
        assert_eq!(s("parse_json('{\"a\": [1]}').a[0]"), json!(1));
        assert_eq!(s("parse_yaml('a: [1, b]').a[1]"), json!("b"));
        assert_eq!(s("semver_compare('4.1.3', '>=4.1.x')"), json!(true));
        assert_eq!(s("semver_compare('4.1.3', '!4.x.x')"), json!(false));
        assert_eq!(s("semver_compare('1.8.6', '>1.0.0 <2.0.0')"), json!(true));
        assert_eq!(
            s("semver_compare('2.1.5', '<2.0.0 || >=3.0.0')"),
            json!(false)
        );
        assert_eq!(
            s("image_normalize('nginx')"),
            json!("docker.io/nginx:latest")
        );
        assert_eq!(
            s("image_normalize('ghcr.io/a/b:1')"),
            json!("ghcr.io/a/b:1")
        );
        assert!(search("random('[a-z]{4}')", &json!({})).is_err());
        assert_eq!(s("is_external_url('http://10.0.0.1/x')"), json!(false));
        assert_eq!(s("is_external_url('https://8.8.8.8')"), json!(true));
        assert_eq!(
            s("is_external_url('http://localhost:8080/x')"),
            json!(false)
        );
        assert!(search("is_external_url('http://example.com')", &json!({})).is_err());
    }

    #[test]
    fn extreme_arguments_do_not_panic() {
        for e in [
            "time_parse('1', '9223372036854775807')",
            "time_parse('1', '-9223372036854775808')",
            "time_add('9999-12-31T23:59:59Z', '2562047h')",
            "time_truncate('0001-01-01T00:00:00Z', '-1h')",
            "add('1e99999', '1')",
            "add('9e99', '1n')",
            "multiply('170141183460469231731687303715884105727', `1e300`)",
            "divide('1', `0.0000001`)",
            "divide('1Ei', `3`)",
            "modulo(`-9223372036854775808`, `-1`)",
            "sum(['1.000000000000000000000000000001', '1e-30'])",
            "round(`1e308`, `400`)",
            "truncate('abc', `1e30`)",
            "`[1, 2, 3]`[1::9223372036854775807]",
            "`[1, 2, 3]`[::-9223372036854775807]",
            "`[1, 2, 3]`[-9223372036854775808]",
            "semver_compare('1.0.0', '>=1.x.x || <0.0.0-a.b.c || !=2.*.*')",
            "regex_match('(((((((((a)))))))))*{1000}{1000}', 'a')",
            "x509_decode('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----')",
            "base64_decode('%%%')",
            "items(`{}`, '', '')",
            "split('', '')",
            "replace('abc', '', 'x', `-1`)",
        ] {
            let _ = search(e, &json!({}));
        }
        assert_eq!(s("replace('ab', '', '-', `-1`)"), json!("-a-b-"));
    }

    #[test]
    fn time_functions_are_pure() {
        assert!(search("time_now_utc()", &json!({})).is_err());
        let env = Env::at(UnixTime(1_700_000_000));
        assert_eq!(
            search_with("time_now_utc()", &json!({}), &env).unwrap(),
            json!("2023-11-14T22:13:20Z")
        );
        assert_eq!(
            s("time_add('2023-01-01T00:00:00Z', '36h')"),
            json!("2023-01-02T12:00:00Z")
        );
        assert_eq!(
            s("time_diff('2023-01-01T00:00:00Z', '2023-01-01T01:30:00Z')"),
            json!("1h30m0s")
        );
        assert_eq!(
            s("time_before('2023-01-01T00:00:00Z', '2023-01-02T00:00:00Z')"),
            json!(true)
        );
        assert_eq!(
            s("time_utc('2023-01-01T02:00:00+02:00')"),
            json!("2023-01-01T00:00:00Z")
        );
        assert_eq!(
            s("time_to_cron('2023-01-01T02:03:00Z')"),
            json!("3 2 1 1 0")
        );
        assert_eq!(
            s("time_parse('2006-01-02', '2023-05-06')"),
            json!("2023-05-06T00:00:00Z")
        );
        assert_eq!(
            s("time_parse('1702691171', '1702691171')"),
            json!("2023-12-16T01:46:11Z")
        );
        assert_eq!(
            s("time_truncate('2023-01-01T13:45:00Z', '1h')"),
            json!("2023-01-01T13:00:00Z")
        );
        assert_eq!(
            search_with(
                "time_since('', '2023-11-14T22:00:00Z', '')",
                &json!({}),
                &env
            )
            .unwrap(),
            json!("13m20s")
        );
    }
}
