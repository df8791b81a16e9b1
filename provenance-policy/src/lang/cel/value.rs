//! Conversions between `serde_json::Value` and CEL values.
//!
//! CEL values here are `kube_cel::cel::Value`: lists, maps and strings are reference counted,
//! so a value converted once per request can be shared by every expression, comprehension
//! variable and policy without copying.

use std::collections::HashMap;
use std::sync::Arc;

use kube_cel::cel::Value;
use kube_cel::cel::objects::{Key, Map, OptionalValue};

/// The deepest JSON nesting converted; deeper documents are rejected (never truncated).
pub const MAX_DEPTH: usize = 256;

/// Converts JSON into a CEL value. Integers become `int` (or `uint` above `i64::MAX`),
/// other numbers `double`, objects maps with string keys.
///
/// Fails (with a reason) when the document nests deeper than [`MAX_DEPTH`].
pub fn json_to_cel(v: &serde_json::Value) -> Result<Value, String> {
    convert(v, 0)
}

fn convert(v: &serde_json::Value, depth: usize) -> Result<Value, String> {
    if depth > MAX_DEPTH {
        return Err(format!("JSON nests deeper than {MAX_DEPTH} levels"));
    }
    Ok(match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::Int(i)
            } else if let Some(u) = n.as_u64() {
                Value::UInt(u)
            } else {
                Value::Float(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        serde_json::Value::String(s) => Value::String(Arc::new(s.clone())),
        serde_json::Value::Array(a) => {
            let mut out = Vec::with_capacity(a.len());
            for item in a {
                out.push(convert(item, depth + 1)?);
            }
            Value::List(Arc::new(out))
        }
        serde_json::Value::Object(o) => {
            let mut out = HashMap::with_capacity(o.len());
            for (k, item) in o {
                out.insert(Key::String(Arc::new(k.clone())), convert(item, depth + 1)?);
            }
            Value::Map(Map { map: Arc::new(out) })
        }
    })
}

/// Converts a CEL value back into JSON.
///
/// Maps with non-string keys use the key's text; bytes become base64-free arrays of numbers are
/// not produced: bytes are rejected, as are durations, timestamps and opaque values other than
/// optionals (an empty optional becomes `null`). Non-finite doubles are rejected.
pub fn cel_to_json(v: &Value) -> Result<serde_json::Value, String> {
    cel_to_json_depth(v, 0)
}

fn cel_to_json_depth(v: &Value, depth: usize) -> Result<serde_json::Value, String> {
    if depth > MAX_DEPTH {
        return Err(format!("value nests deeper than {MAX_DEPTH} levels"));
    }
    Ok(match v {
        Value::Null => serde_json::Value::Null,
        Value::Bool(b) => serde_json::Value::Bool(*b),
        Value::Int(i) => serde_json::Value::from(*i),
        Value::UInt(u) => serde_json::Value::from(*u),
        Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(serde_json::Value::Number)
            .ok_or_else(|| format!("double {f} has no JSON representation"))?,
        Value::String(s) => serde_json::Value::String(s.as_str().to_owned()),
        Value::List(l) => serde_json::Value::Array(
            l.iter()
                .map(|x| cel_to_json_depth(x, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        Value::Map(m) => {
            let mut out = serde_json::Map::with_capacity(m.map.len());
            for (k, x) in m.map.iter() {
                let key = match k {
                    Key::String(s) => s.as_str().to_owned(),
                    other => other.to_string(),
                };
                out.insert(key, cel_to_json_depth(x, depth + 1)?);
            }
            serde_json::Value::Object(out)
        }
        Value::Opaque(o) => {
            if let Some(opt) = o.downcast_ref::<OptionalValue>() {
                match opt.value() {
                    Some(inner) => cel_to_json_depth(inner, depth + 1)?,
                    None => serde_json::Value::Null,
                }
            } else {
                return Err(format!(
                    "a {} value has no JSON representation",
                    o.runtime_type_name()
                ));
            }
        }
        other => {
            return Err(format!(
                "a {} value has no JSON representation",
                other.type_of()
            ));
        }
    })
}

/// The CEL type name of a value, as error messages print it.
pub fn type_name(v: &Value) -> String {
    match v {
        Value::Opaque(o) => o.runtime_type_name().to_owned(),
        Value::Float(_) => "double".to_owned(),
        other => other.type_of().to_string(),
    }
}

/// A short rendering of a value for messages (strings unquoted, others in CEL-ish syntax).
pub fn display(v: &Value) -> String {
    match v {
        Value::String(s) => s.as_str().to_owned(),
        Value::Int(i) => i.to_string(),
        Value::UInt(u) => format!("{u}u"),
        Value::Float(f) => f.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "null".to_owned(),
        other => match cel_to_json(other) {
            Ok(j) => j.to_string(),
            Err(_) => format!("<{}>", type_name(other)),
        },
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_json() {
        let j = serde_json::json!({"a": [1, 2.5, "x", null, true, {"b": {}}], "u": 18446744073709551615u64});
        let c = json_to_cel(&j).unwrap();
        assert_eq!(cel_to_json(&c).unwrap(), j);
    }

    #[test]
    fn rejects_deep_json() {
        let mut j = serde_json::json!(1);
        for _ in 0..(MAX_DEPTH + 2) {
            j = serde_json::json!([j]);
        }
        assert!(json_to_cel(&j).is_err());
    }
}
