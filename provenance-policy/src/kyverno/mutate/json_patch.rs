//! RFC 6902 JSON Patch: applying `patchesJson6902` as Kyverno does, and computing the patch
//! from an original object to a mutated one (the admission response's `JSONPatch`).
//!
//! Kyverno applies patches with three relaxations of RFC 6902, kept here: negative array
//! indices count from the end, `remove` of a missing path does nothing, and `add` creates the
//! missing parents of its path (objects, or an array when the next segment is an index).

use serde_json::{Map, Value, json};

use crate::Error;

/// Most operations one `patchesJson6902` may hold.
const MAX_OPS: usize = 10_000;

fn err(field: &str, reason: impl Into<String>) -> Error {
    Error::Patch {
        field: field.to_owned(),
        reason: reason.into(),
    }
}

/// Parses `patchesJson6902` as Kyverno takes it: a JSON array, or YAML text for one.
pub fn parse(text: &str, field: &str) -> Result<Vec<Value>, Error> {
    let trimmed = text.trim_start();
    let doc: Value = if trimmed.starts_with('[') {
        serde_json::from_str(trimmed).map_err(|e| err(field, format!("invalid JSON: {e}")))?
    } else {
        crate::yaml::load_document(text, field).map_err(|e| err(field, e.to_string()))?
    };
    match doc {
        Value::Array(ops) if ops.len() <= MAX_OPS => Ok(ops),
        Value::Array(_) => Err(err(field, format!("more than {MAX_OPS} operations"))),
        Value::Null => Ok(Vec::new()),
        _ => Err(err(field, "must be a list of operations")),
    }
}

/// Splits a JSON pointer into its unescaped tokens.
fn tokens(pointer: &str, field: &str) -> Result<Vec<String>, Error> {
    if pointer.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = pointer.strip_prefix('/') else {
        return Err(err(
            field,
            format!("invalid JSON pointer {pointer:?}: must start with '/'"),
        ));
    };
    Ok(rest
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect())
}

/// An array index token: `Some(i)` for a valid index (negative ones counted from `len`),
/// `None` for `-` (one past the end).
fn index(
    token: &str,
    len: usize,
    allow_end: bool,
    path: &str,
    field: &str,
) -> Result<usize, Error> {
    if token == "-" {
        return if allow_end {
            Ok(len)
        } else {
            Err(err(field, format!("{path}: '-' is only valid in add")))
        };
    }
    let bad = || err(field, format!("{path}: invalid array index {token:?}"));
    if token.len() > 1 && token.starts_with('0') {
        return Err(bad());
    }
    let i: i64 = token.parse().map_err(|_| bad())?;
    let max = if allow_end {
        len
    } else {
        len.saturating_sub(1)
    };
    let i = if i < 0 {
        let from_end = i64::try_from(len).map_err(|_| bad())? + i;
        if from_end < 0 {
            return Err(err(field, format!("{path}: index {i} out of range")));
        }
        from_end
    } else {
        i
    };
    let i = usize::try_from(i).map_err(|_| bad())?;
    if i > max || (!allow_end && len == 0) {
        return Err(err(field, format!("{path}: index {i} out of range")));
    }
    Ok(i)
}

/// The parent container of the last token of `toks`, created when `create` is set.
fn parent_mut<'a>(
    doc: &'a mut Value,
    toks: &[String],
    create: bool,
    path: &str,
    field: &str,
) -> Result<&'a mut Value, Error> {
    let mut cur = doc;
    let parents = toks.len().saturating_sub(1);
    for (i, t) in toks.iter().enumerate().take(parents) {
        let next_is_index = toks
            .get(i + 1)
            .is_some_and(|n| n == "-" || n.parse::<i64>().is_ok());
        cur = match cur {
            Value::Object(m) => {
                if !m.contains_key(t) {
                    if !create {
                        return Err(err(field, format!("{path}: missing key {t:?}")));
                    }
                    let fresh = if next_is_index {
                        Value::Array(Vec::new())
                    } else {
                        Value::Object(Map::new())
                    };
                    m.insert(t.clone(), fresh);
                }
                m.get_mut(t)
                    .ok_or_else(|| err(field, format!("{path}: missing key {t:?}")))?
            }
            Value::Array(a) => {
                let len = a.len();
                let i = index(t, len, create, path, field)?;
                if i == len {
                    a.push(if next_is_index {
                        Value::Array(Vec::new())
                    } else {
                        Value::Object(Map::new())
                    });
                }
                &mut a[i]
            }
            _ => {
                return Err(err(
                    field,
                    format!("{path}: {t:?} is not inside an object or array"),
                ));
            }
        };
    }
    Ok(cur)
}

fn get<'a>(doc: &'a Value, toks: &[String], path: &str, field: &str) -> Result<&'a Value, Error> {
    let mut cur = doc;
    for t in toks {
        cur = match cur {
            Value::Object(m) => m
                .get(t)
                .ok_or_else(|| err(field, format!("{path}: missing key {t:?}")))?,
            Value::Array(a) => &a[index(t, a.len(), false, path, field)?],
            _ => return Err(err(field, format!("{path}: {t:?} not found"))),
        };
    }
    Ok(cur)
}

fn add(
    doc: &mut Value,
    toks: &[String],
    value: Value,
    path: &str,
    field: &str,
) -> Result<(), Error> {
    let Some(last) = toks.last() else {
        *doc = value;
        return Ok(());
    };
    match parent_mut(doc, toks, true, path, field)? {
        Value::Object(m) => {
            m.insert(last.clone(), value);
        }
        Value::Array(a) => {
            let i = index(last, a.len(), true, path, field)?;
            a.insert(i, value);
        }
        _ => {
            return Err(err(
                field,
                format!("{path}: parent is not an object or array"),
            ));
        }
    }
    Ok(())
}

/// Removes and returns the value at `toks`; `Ok(None)` when it is missing and `lenient`.
fn remove(
    doc: &mut Value,
    toks: &[String],
    lenient: bool,
    path: &str,
    field: &str,
) -> Result<Option<Value>, Error> {
    let Some(last) = toks.last() else {
        return Ok(Some(std::mem::take(doc)));
    };
    let parent = match parent_mut(doc, toks, false, path, field) {
        Ok(p) => p,
        Err(_) if lenient => return Ok(None),
        Err(e) => return Err(e),
    };
    match parent {
        Value::Object(m) => match m.remove(last) {
            Some(v) => Ok(Some(v)),
            None if lenient => Ok(None),
            None => Err(err(field, format!("{path}: missing key {last:?}"))),
        },
        Value::Array(a) => match index(last, a.len(), false, path, field) {
            Ok(i) => Ok(Some(a.remove(i))),
            Err(_) if lenient => Ok(None),
            Err(e) => Err(e),
        },
        _ if lenient => Ok(None),
        _ => Err(err(
            field,
            format!("{path}: parent is not an object or array"),
        )),
    }
}

/// Applies `ops` to `doc` (Kyverno's options: negative indices, lenient remove, add creates
/// parents). An error names the operation's index and what failed; `doc` is not changed.
pub fn apply(doc: &Value, ops: &[Value], field: &str) -> Result<Value, Error> {
    let mut out = doc.clone();
    for (i, op) in ops.iter().enumerate() {
        let f = format!("{field}[{i}]");
        let name = op
            .get("op")
            .and_then(Value::as_str)
            .ok_or_else(|| err(&f, "operation without \"op\""))?;
        let path = op
            .get("path")
            .and_then(Value::as_str)
            .ok_or_else(|| err(&f, format!("{name}: missing \"path\"")))?;
        let toks = tokens(path, &f)?;
        let value = || {
            op.get("value")
                .cloned()
                .ok_or_else(|| err(&f, format!("{name} {path}: missing \"value\"")))
        };
        let from = || -> Result<(String, Vec<String>), Error> {
            let from = op
                .get("from")
                .and_then(Value::as_str)
                .ok_or_else(|| err(&f, format!("{name} {path}: missing \"from\"")))?;
            Ok((from.to_owned(), tokens(from, &f)?))
        };
        match name {
            "add" => add(&mut out, &toks, value()?, path, &f)?,
            "remove" => {
                remove(&mut out, &toks, true, path, &f)?;
            }
            "replace" => {
                let v = value()?;
                if toks.is_empty() {
                    out = v;
                } else {
                    remove(&mut out, &toks, false, path, &f)
                        .map_err(|e| err(&f, format!("replace: {e}")))?;
                    add(&mut out, &toks, v, path, &f)?;
                }
            }
            "move" => {
                let (fp, ft) = from()?;
                if toks.len() > ft.len() && toks[..ft.len()] == ft[..] {
                    return Err(err(&f, format!("move: {path} is inside {fp}")));
                }
                let v = remove(&mut out, &ft, false, &fp, &f)?
                    .ok_or_else(|| err(&f, format!("move: {fp} not found")))?;
                add(&mut out, &toks, v, path, &f)?;
            }
            "copy" => {
                let (fp, ft) = from()?;
                let v = get(&out, &ft, &fp, &f)?.clone();
                add(&mut out, &toks, v, path, &f)?;
            }
            "test" => {
                let want = value()?;
                let got = get(&out, &toks, path, &f)?;
                if *got != want {
                    return Err(err(
                        &f,
                        format!("test {path} failed: the value is {got}, not {want}"),
                    ));
                }
            }
            other => return Err(err(&f, format!("unknown operation {other:?}"))),
        }
    }
    Ok(out)
}

fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// The RFC 6902 patch that turns `from` into `to` (strict operations only, so that any
/// conforming applier, the API server's included, gets `to`).
pub fn diff(from: &Value, to: &Value) -> Vec<Value> {
    let mut ops = Vec::new();
    diff_at(from, to, "", &mut ops);
    ops
}

fn diff_at(from: &Value, to: &Value, path: &str, ops: &mut Vec<Value>) {
    if from == to {
        return;
    }
    match (from, to) {
        (Value::Object(a), Value::Object(b)) => {
            for k in a.keys() {
                if !b.contains_key(k) {
                    ops.push(json!({"op": "remove", "path": format!("{path}/{}", escape(k))}));
                }
            }
            for (k, v) in b {
                let p = format!("{path}/{}", escape(k));
                match a.get(k) {
                    Some(old) => diff_at(old, v, &p, ops),
                    None => ops.push(json!({"op": "add", "path": p, "value": v})),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                diff_at(x, y, &format!("{path}/{i}"), ops);
            }
        }
        (Value::Array(a), Value::Array(b)) if b.len() > a.len() && b[..a.len()] == a[..] => {
            for (i, v) in b.iter().enumerate().skip(a.len()) {
                ops.push(json!({"op": "add", "path": format!("{path}/{i}"), "value": v}));
            }
        }
        (Value::Array(a), Value::Array(b)) if b.len() < a.len() && a[..b.len()] == b[..] => {
            for i in (b.len()..a.len()).rev() {
                ops.push(json!({"op": "remove", "path": format!("{path}/{i}")}));
            }
        }
        _ => ops.push(json!({"op": "replace", "path": path, "value": to})),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn run(doc: Value, ops: Value) -> Result<Value, Error> {
        apply(&doc, ops.as_array().unwrap(), "mutate.patchesJson6902")
    }

    #[test]
    fn add_remove_replace_move_copy_test() {
        let doc = json!({"a": {"b": [1, 2]}, "c": "x"});
        let out = run(
            doc,
            json!([
                {"op": "add", "path": "/a/b/-", "value": 3},
                {"op": "add", "path": "/a/b/0", "value": 0},
                {"op": "remove", "path": "/a/b/1"},
                {"op": "replace", "path": "/c", "value": "y"},
                {"op": "copy", "from": "/c", "path": "/d"},
                {"op": "move", "from": "/d", "path": "/e"},
                {"op": "test", "path": "/e", "value": "y"},
                {"op": "add", "path": "/f~1g", "value": true},
            ]),
        )
        .unwrap();
        assert_eq!(
            out,
            json!({"a": {"b": [0, 2, 3]}, "c": "y", "e": "y", "f/g": true})
        );
    }

    #[test]
    fn kyverno_relaxations() {
        // add creates missing parents; remove of a missing path is a no-op; -1 is the last.
        let out = run(
            json!({"metadata": {}, "l": [1, 2, 3]}),
            json!([
                {"op": "add", "path": "/metadata/labels/app", "value": "x"},
                {"op": "add", "path": "/spec/list/-", "value": 1},
                {"op": "remove", "path": "/nope/deeper"},
                {"op": "remove", "path": "/l/-1"},
            ]),
        )
        .unwrap();
        assert_eq!(
            out,
            json!({"metadata": {"labels": {"app": "x"}}, "spec": {"list": [1]}, "l": [1, 2]})
        );
    }

    #[test]
    fn errors_are_clear() {
        let doc = json!({"a": 1, "l": [1]});
        let e = run(
            doc.clone(),
            json!([{"op": "test", "path": "/a", "value": 2}]),
        )
        .unwrap_err();
        assert_eq!(e.code(), "policy.mutate.patch");
        assert!(e.to_string().contains("test /a failed"), "{e}");
        let e = run(
            doc.clone(),
            json!([{"op": "replace", "path": "/b", "value": 2}]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("missing key \"b\""), "{e}");
        let e = run(doc.clone(), json!([{"op": "add", "path": "a", "value": 2}])).unwrap_err();
        assert!(e.to_string().contains("must start with '/'"), "{e}");
        let e = run(
            doc.clone(),
            json!([{"op": "add", "path": "/l/5", "value": 2}]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("out of range"), "{e}");
        let e = run(
            doc.clone(),
            json!([{"op": "add", "path": "/l/01", "value": 2}]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("invalid array index"), "{e}");
        let e = run(doc.clone(), json!([{"op": "jump", "path": "/a"}])).unwrap_err();
        assert!(e.to_string().contains("unknown operation"), "{e}");
        let e = run(
            doc.clone(),
            json!([{"op": "add", "path": "/a/b", "value": 1}]),
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("parent is not an object or array"),
            "{e}"
        );
        let e = run(
            doc.clone(),
            json!([{"op": "move", "from": "/l", "path": "/l/0"}]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("inside"), "{e}");
        let e = run(doc, json!([{"op": "add", "path": "/x"}])).unwrap_err();
        assert!(e.to_string().contains("missing \"value\""), "{e}");
    }

    #[test]
    fn yaml_and_json_forms() {
        let y = parse("- op: add\n  path: /a\n  value: 1\n", "f").unwrap();
        let j = parse(r#"[{"op": "add", "path": "/a", "value": 1}]"#, "f").unwrap();
        assert_eq!(y, j);
        assert!(parse("op: add", "f").is_err());
    }

    #[test]
    fn diff_round_trips() {
        let cases = [
            (
                json!({"a": [1, 2], "b": {"c": 1}}),
                json!({"a": [1, 2, 3], "b": {}, "d": null}),
            ),
            (json!({"a": [1, 2, 3]}), json!({"a": [1]})),
            (json!({"a": [1, 2, 3]}), json!({"a": [3, 2, 1, 0]})),
            (json!({"a/b": "~"}), json!({"a/b": "x", "c~d": 1})),
        ];
        for (from, to) in cases {
            let ops = diff(&from, &to);
            assert_eq!(apply(&from, &ops, "diff").unwrap(), to, "{ops:?}");
        }
    }
}
