//! Kyverno `{{ }}` variable substitution and `$( )` pattern references.
//!
//! Every string in a JSON value (map keys too) is scanned for `{{ expr }}`; each `expr` is
//! evaluated as JMESPath against a context document (`request`, `element`, `elementIndex`,
//! `images`, context entries, values, ...). As in Kyverno (`pkg/engine/variables/vars.go`):
//!
//! - a string that is exactly one variable becomes the typed result (`"{{ request.object.spec.replicas }}"`
//!   becomes `3`, not `"3"`); otherwise results are interpolated (strings as they are, other
//!   values as Go's JSON encoder writes them, `null` as `null`);
//! - `\{{ ... }}` is an escape: left alone and unescaped to `{{ ... }}`;
//! - substitution repeats until no variable is left, so a variable may produce another one;
//!   `{{- expr }}` substitutes once (shallow) and escapes any `{{` in the result;
//! - `{{@}}` is the resource value at the current pattern path (`request.object...`);
//! - on a DELETE request, `request.object` reads `request.oldObject`;
//! - a variable whose path ends on a missing key (go-jmespath's "Unknown key") fails with
//!   [`Error::VariableNotFound`], in preconditions, deny conditions, patterns and messages alike
//!   (Kyverno then reports a rule error, or skips a foreach element); a variable that resolves to
//!   `null` is substituted as `null`. Write `{{ request.object.x || '' }}` for an optional value.
//!
//! Compiled expressions are cached in a small concurrent cache keyed by the expression text.

use crate::Error;
use crate::lang::jmespath::{Env, Expression, QueryResult, go_json_string};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

/// Most substitution rounds on one string (a variable that keeps producing variables).
const MAX_ROUNDS: usize = 64;
/// Largest string substitution may build. A value that contains variable syntax (say a
/// resource field holding `{{ request }}`) is scanned again after it is substituted, as
/// Kyverno does; without a bound, each round could double the string.
pub const MAX_SUBSTITUTED_BYTES: usize = 1 << 20;
/// Most bytes substitution may copy while building one string, over all its rounds (each
/// replacement copies the string): bounds the work when a value holds many variables.
pub const MAX_SUBSTITUTION_WORK: usize = 16 << 20;
/// Entries kept in the expression cache before it is cleared.
const CACHE_LIMIT: usize = 4096;

type Cache = RwLock<HashMap<String, Arc<Expression>>>;

fn cache() -> &'static Cache {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE.get_or_init(|| RwLock::new(HashMap::new()))
}

/// Compiles `src`, or returns the cached compiled expression.
pub fn compile_cached(src: &str) -> Result<Arc<Expression>, Error> {
    if let Ok(g) = cache().read()
        && let Some(e) = g.get(src)
    {
        return Ok(Arc::clone(e));
    }
    let e = Arc::new(Expression::compile(src)?);
    if let Ok(mut g) = cache().write() {
        if g.len() >= CACHE_LIMIT {
            g.clear();
        }
        g.insert(src.to_string(), Arc::clone(&e));
    }
    Ok(e)
}

/// Substitutes every variable in `value` (no `now`: `time_now*` fail). `path` is where `value`
/// sits in the rule or policy (`/validate/pattern`, or `spec.rules[0].validate.pattern`), used
/// for `{{@}}`, relative `$()` references and error messages.
pub fn substitute(value: &Value, ctx: &Value, path: &str) -> Result<Value, Error> {
    substitute_with(value, ctx, &Env::default(), path)
}

/// Substitutes every variable in `value` in `env`.
pub fn substitute_with(value: &Value, ctx: &Value, env: &Env, path: &str) -> Result<Value, Error> {
    let with_refs = substitute_references(value, path)?;
    let s = Subst {
        ctx,
        env,
        delete: is_delete(ctx),
        base: path,
    };
    s.walk(&with_refs, path)
}

/// Substitutes the variables of one string; the result is typed when `s` is exactly one
/// variable.
pub fn substitute_str(s: &str, ctx: &Value, path: &str) -> Result<Value, Error> {
    substitute_str_with(s, ctx, &Env::default(), path)
}

/// [`substitute_str`] in `env`.
pub fn substitute_str_with(s: &str, ctx: &Value, env: &Env, path: &str) -> Result<Value, Error> {
    let st = Subst {
        ctx,
        env,
        delete: is_delete(ctx),
        base: path,
    };
    st.string(s, path)
}

/// Whether `s` contains a (non-escaped) `{{ }}` variable.
pub fn has_variables(s: &str) -> bool {
    !find_vars(s).is_empty()
}

/// Substitution in a condition key or value (Kyverno's `SubstituteAllInPreconditions`: same
/// rules as everywhere else).
pub(crate) fn substitute_in_conditions(
    value: &Value,
    ctx: &Value,
    env: &Env,
    path: &str,
) -> Result<Value, Error> {
    substitute_with(value, ctx, env, path)
}

fn is_delete(ctx: &Value) -> bool {
    ctx.pointer("/request/operation").and_then(Value::as_str) == Some("DELETE")
}

struct Subst<'c> {
    ctx: &'c Value,
    env: &'c Env,
    delete: bool,
    /// The caller's path of the whole value (`/validate/pattern` or `spec.rules[0].validate.pattern`).
    base: &'c str,
}

impl Subst<'_> {
    fn walk(&self, v: &Value, path: &str) -> Result<Value, Error> {
        match v {
            Value::String(s) => self.string(s, path),
            Value::Array(a) => {
                let mut out = Vec::with_capacity(a.len());
                for (i, x) in a.iter().enumerate() {
                    out.push(self.walk(x, &format!("{path}/{i}"))?);
                }
                Ok(Value::Array(out))
            }
            Value::Object(m) => {
                let mut out = Map::new();
                for (k, x) in m {
                    let nk = if has_variables(k) || k.contains("\\{{") {
                        match self.string(k, path)? {
                            Value::String(s) => s,
                            _ => {
                                return Err(Error::Variable {
                                    path: path.to_string(),
                                    reason: format!(
                                        "expected string after substituting variables in key \"{k}\""
                                    ),
                                });
                            }
                        }
                    } else {
                        k.clone()
                    };
                    let child = format!("{path}/{}", k.replace('/', "\\/"));
                    out.insert(nk, self.walk(x, &child)?);
                }
                Ok(Value::Object(out))
            }
            other => Ok(other.clone()),
        }
    }

    fn lookup(&self, variable: &str, path: &str) -> Result<Value, Error> {
        let expr = compile_cached(variable).map_err(|e| Error::Variable {
            path: path.to_string(),
            reason: format!("invalid variable {variable}: {e}"),
        })?;
        match expr.query(self.ctx, self.env) {
            Ok(QueryResult::Value(v)) => Ok(v),
            Ok(QueryResult::NotFound { key }) => Err(Error::VariableNotFound {
                path: path.to_string(),
                variable: variable.to_string(),
                key,
            }),
            Err(e) => Err(Error::Variable {
                path: path.to_string(),
                reason: format!("failed to resolve {variable}: {e}"),
            }),
        }
    }

    fn string(&self, s: &str, path: &str) -> Result<Value, Error> {
        let mut value = s.to_string();
        let mut vars = find_vars(&value);
        let mut rounds = 0usize;
        let mut work = 0usize;
        while !vars.is_empty() {
            rounds += 1;
            if rounds > MAX_ROUNDS {
                return Err(Error::Variable {
                    path: path.to_string(),
                    reason: format!("variables in {s:?} keep producing variables"),
                });
            }
            let original = value.clone();
            let mut shallow = false;
            for m in &vars {
                let (prefix, v) = if m.initial {
                    ("", m.text.as_str())
                } else {
                    m.text
                        .split_at(m.text.chars().next().map(char::len_utf8).unwrap_or(0))
                };
                let (mut variable, sh) = braces_trimmed(v);
                shallow = sh;
                if variable == "@" {
                    variable = at_variable(self.ctx, self.base, path);
                }
                if self.delete {
                    variable = variable.replace("request.object", "request.oldObject");
                }
                let mut result = self.lookup(&variable, path)?;
                if original == v {
                    return Ok(result);
                }
                if shallow && !result.is_null() {
                    match &result {
                        Value::String(r) => result = Value::String(r.replace("{{", "\\{{")),
                        _ => {
                            return Err(Error::Variable {
                                path: path.to_string(),
                                reason: format!(
                                    "shallow substitution of {variable} needs a string result"
                                ),
                            });
                        }
                    }
                }
                let text = match &result {
                    Value::String(r) => r.clone(),
                    other => go_json_string(other),
                };
                let needle = format!("{prefix}{v}");
                work = work.saturating_add(value.len()).saturating_add(text.len());
                if work > MAX_SUBSTITUTION_WORK {
                    return Err(Error::Variable {
                        path: path.to_string(),
                        reason: format!(
                            "substituting the variables of this string copies more than {MAX_SUBSTITUTION_WORK} bytes"
                        ),
                    });
                }
                if value.len().saturating_sub(needle.len()) + prefix.len() + text.len()
                    > MAX_SUBSTITUTED_BYTES
                {
                    return Err(Error::Variable {
                        path: path.to_string(),
                        reason: format!(
                            "substituting {variable} would make the string longer than {MAX_SUBSTITUTED_BYTES} bytes"
                        ),
                    });
                }
                let repl = format!("{prefix}{text}");
                value = value.replacen(&needle, &repl, 1);
            }
            vars = if shallow {
                Vec::new()
            } else {
                find_vars(&value)
            };
        }
        Ok(Value::String(value.replace("\\{{", "{{")))
    }
}

/// `{{@}}`: the resource value at the pattern path (`request.object` + the path after the
/// `validate/pattern` or `foreach/N/pattern` prefix), or under `target` when the context has one.
/// `base` may be written with slashes (`/validate/pattern`) or as a field path
/// (`spec.rules[0].validate.pattern`); below it, `path` continues with `/`-separated segments.
fn at_variable(ctx: &Value, base: &str, path: &str) -> String {
    let prefix = if ctx.get("target").is_some() {
        "target"
    } else {
        "request.object"
    };
    let tail = path.strip_prefix(base).unwrap_or(path);
    let mut parts: Vec<&str> = base
        .split(['/', '.', '[', ']'])
        .chain(tail.split('/'))
        .filter(|p| !p.is_empty())
        .collect();
    // A path from the policy root: drop `spec/rules/N`.
    if parts.len() >= 3 && parts[0] == "spec" && parts[1] == "rules" {
        parts.drain(..3);
    }
    if let Some(i) = parts.iter().position(|p| *p == "foreach") {
        parts.drain(..=i);
    }
    let parts: Vec<&str> = parts.into_iter().skip(2).collect();
    let mut out = prefix.to_string();
    for p in parts {
        if p.bytes().all(|b| b.is_ascii_digit()) && !p.is_empty() {
            out.push_str(&format!("[{p}]"));
        } else if p
            .bytes()
            .enumerate()
            .all(|(i, b)| b == b'_' || b.is_ascii_alphabetic() || (i > 0 && b.is_ascii_digit()))
        {
            out.push('.');
            out.push_str(p);
        } else {
            out.push('.');
            out.push_str(&serde_json::to_string(p).unwrap_or_default());
        }
    }
    out
}

/// Kyverno's `replaceBracesAndTrimSpaces`: drops every `{{` and `}}`, trims, and reports a
/// leading `-` (shallow substitution).
fn braces_trimmed(v: &str) -> (String, bool) {
    let s = v.replace("{{", "").replace("}}", "");
    let t = s.trim();
    if let Some(rest) = t.strip_prefix('-') {
        return (rest.trim().to_string(), true);
    }
    (t.to_string(), false)
}

/// One match of Kyverno's variable regex `(^|[^\\])(\{\{(?:\{[^{}]*\}|[^{}])*\}\})`.
#[derive(Debug)]
struct VarMatch {
    /// The matched text, including the preceding character when not at the start.
    text: String,
    /// Whether the match starts with `{{` (Kyverno's `RegexVariableInit`).
    initial: bool,
}

/// The end (exclusive) of a `{{ ... }}` starting at byte `j`, if one starts there.
fn var_end(b: &[u8], j: usize) -> Option<usize> {
    if b.get(j) != Some(&b'{') || b.get(j + 1) != Some(&b'{') {
        return None;
    }
    let mut k = j + 2;
    loop {
        match b.get(k)? {
            b'{' => {
                let mut m = k + 1;
                loop {
                    match b.get(m)? {
                        b'}' => break,
                        b'{' => return None,
                        _ => m += 1,
                    }
                }
                k = m + 1;
            }
            b'}' => {
                return if b.get(k + 1) == Some(&b'}') {
                    Some(k + 2)
                } else {
                    None
                };
            }
            _ => k += 1,
        }
    }
}

fn find_vars(s: &str) -> Vec<VarMatch> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < b.len() {
        let mut found = None;
        let mut i = pos;
        while i < b.len() {
            if i == 0
                && let Some(end) = var_end(b, 0)
            {
                found = Some((0, end, true));
                break;
            }
            if b[i] != b'\\' {
                // The preceding character may be multi-byte: find the next char boundary.
                let next = i + s[i..].chars().next().map(char::len_utf8).unwrap_or(1);
                if let Some(end) = var_end(b, next) {
                    found = Some((i, end, false));
                    break;
                }
                i = next;
                continue;
            }
            i += 1;
        }
        match found {
            Some((st, end, initial)) => {
                out.push(VarMatch {
                    text: s[st..end].to_string(),
                    initial,
                });
                pos = end;
            }
            None => break,
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// $( ) references (pattern values that point at other resource paths)

/// Resolves `$(path)` references in `value` against `value` itself, as Kyverno's
/// `substituteReferences` does; `\$(...)` is an escape.
pub fn substitute_references(value: &Value, path: &str) -> Result<Value, Error> {
    if !contains_reference(value) {
        return Ok(value.clone());
    }
    let mut leaves = Vec::new();
    collect_leaves(value, path, &mut leaves);
    refs_walk(value, path, &leaves)
}

fn contains_reference(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains("$("),
        Value::Array(a) => a.iter().any(contains_reference),
        Value::Object(m) => m
            .iter()
            .any(|(k, x)| k.contains("$(") || contains_reference(x)),
        _ => false,
    }
}

fn collect_leaves(v: &Value, path: &str, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                collect_leaves(x, &format!("{path}/{i}"), out);
            }
        }
        Value::Object(m) => {
            for (k, x) in m {
                out.push((remove_anchors_from_path(path), Value::String(k.clone())));
                collect_leaves(x, &format!("{path}/{}", k.replace('/', "\\/")), out);
            }
        }
        other => out.push((remove_anchors_from_path(path), other.clone())),
    }
}

fn refs_walk(v: &Value, path: &str, leaves: &[(String, Value)]) -> Result<Value, Error> {
    match v {
        Value::String(s) => Ok(Value::String(refs_string(s, path, leaves)?)),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .map(|(i, x)| refs_walk(x, &format!("{path}/{i}"), leaves))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, x) in m {
                let nk = refs_string(k, path, leaves)?;
                let child = format!("{path}/{}", k.replace('/', "\\/"));
                out.insert(nk, refs_walk(x, &child, leaves)?);
            }
            Ok(Value::Object(out))
        }
        other => Ok(other.clone()),
    }
}

/// Matches of `^\$\(.[^ ]*\)|[^\\]\$\(.[^ ]*\)` (greedy up to the last `)` before a space).
fn find_refs(s: &str) -> Vec<(String, bool)> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut pos = 0usize;
    let ref_end = |j: usize| -> Option<usize> {
        if b.get(j) != Some(&b'$') || b.get(j + 1) != Some(&b'(') {
            return None;
        }
        // One arbitrary character, then non-spaces, then ')': take the last ')' in the run.
        let first = j + 2;
        let c = s.get(first..)?.chars().next()?;
        let mut k = first + c.len_utf8();
        let mut last = if c == ')' { None } else { None::<usize> };
        while k < b.len() && b[k] != b' ' {
            if b[k] == b')' {
                last = Some(k);
            }
            k += 1;
        }
        last.map(|l| l + 1)
    };
    while pos < b.len() {
        let mut found = None;
        let mut i = pos;
        while i < b.len() {
            if i == 0
                && let Some(e) = ref_end(0)
            {
                found = Some((0, e, true));
                break;
            }
            if b[i] != b'\\' {
                let next = i + s[i..].chars().next().map(char::len_utf8).unwrap_or(1);
                if let Some(e) = ref_end(next) {
                    found = Some((i, e, false));
                    break;
                }
                i = next;
                continue;
            }
            i += 1;
        }
        match found {
            Some((st, e, initial)) => {
                out.push((s[st..e].to_string(), initial));
                pos = e;
            }
            None => break,
        }
    }
    out
}

fn refs_string(s: &str, path: &str, leaves: &[(String, Value)]) -> Result<String, Error> {
    if !s.contains("$(") {
        return Ok(s.to_string());
    }
    let mut value = s.to_string();
    for (m, initial) in find_refs(s) {
        let (prefix, r) = if initial {
            ("", m.as_str())
        } else {
            m.split_at(m.chars().next().map(char::len_utf8).unwrap_or(0))
        };
        let resolved = resolve_reference(r, path, leaves)?;
        value = value.replacen(&m, &format!("{prefix}{resolved}"), 1);
    }
    // Escaped references: `\$(...)` loses its backslash.
    let mut out = String::with_capacity(value.len());
    let mut rest = value.as_str();
    while let Some(i) = rest.find("\\$(") {
        out.push_str(&rest[..i]);
        out.push_str("$(");
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

fn resolve_reference(r: &str, path: &str, leaves: &[(String, Value)]) -> Result<String, Error> {
    let trimmed = r.trim_matches(|c| c == '$' || c == '(' || c == ')');
    let op_len = match crate::kyverno::pattern::string_operator(trimmed) {
        crate::kyverno::pattern::StrOp::MoreEqual | crate::kyverno::pattern::StrOp::LessEqual => 2,
        crate::kyverno::pattern::StrOp::More
        | crate::kyverno::pattern::StrOp::Less
        | crate::kyverno::pattern::StrOp::NotEqual => 1,
        _ => 0,
    };
    let (op, p) = trimmed.split_at(op_len);
    if p.is_empty() {
        return Err(Error::Variable {
            path: path.to_string(),
            reason: format!("expected path, found empty reference {r}"),
        });
    }
    let abs = if p.starts_with('/') {
        clean_path(p)
    } else {
        clean_path(&format!("{path}/{p}"))
    };
    let found = leaves
        .iter()
        .rev()
        .find(|(lp, _)| *lp == abs)
        .map(|(_, v)| v);
    let val = match found {
        None | Some(Value::Null) => {
            return Err(Error::Variable {
                path: path.to_string(),
                reason: format!("got nil resolved variable {r} at path {path}"),
            });
        }
        Some(v) => v,
    };
    match (op, val) {
        (_, Value::String(s)) => Ok(format!("{op}{s}")),
        ("", _) => Err(Error::Variable {
            path: path.to_string(),
            reason: format!("NotResolvedReferenceErr,reference {r} not resolved at path {path}"),
        }),
        (_, Value::Number(n)) => Ok(format!(
            "{op}{}",
            match crate::lang::jmespath::units::go_num(n) {
                crate::lang::jmespath::units::GoNum::Int(i) => i.to_string(),
                crate::lang::jmespath::units::GoNum::Float(f) => format!("{f:.6}"),
            }
        )),
        _ => Err(Error::Variable {
            path: path.to_string(),
            reason: format!("incorrect expression: operator {op} does not match with value {val}"),
        }),
    }
}

/// Go's `path.Clean` for slash paths.
fn clean_path(p: &str) -> String {
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
    let joined = parts.join("/");
    if abs {
        format!("/{joined}")
    } else if joined.is_empty() {
        ".".into()
    } else {
        joined
    }
}

/// Kyverno's `RemoveAnchorsFromPath`.
fn remove_anchors_from_path(p: &str) -> String {
    let parts: Vec<String> = p
        .split('/')
        .skip(usize::from(p.starts_with('/')))
        .map(|part| {
            let t = part.trim();
            let inner = t
                .strip_prefix(['+', '<', '=', 'X', '^'])
                .filter(|r| r.starts_with('('))
                .unwrap_or(t);
            match inner.strip_prefix('(').and_then(|r| r.strip_suffix(')')) {
                Some(k) if !k.is_empty() => k.to_string(),
                _ => part.to_string(),
            }
        })
        .collect();
    let joined = clean_path(&parts.join("/"));
    if p.starts_with('/') && !joined.starts_with('/') {
        format!("/{joined}")
    } else {
        joined
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    /// Found by the `pattern` fuzz target: a resource whose strings hold `{{ request }}`,
    /// substituted into a string that names the request, grew by the whole request every
    /// round (minutes of CPU, hundreds of MB). Now a bounded error.
    #[test]
    fn self_referencing_values_cannot_grow_a_string_without_bound() {
        let bomb = "x{{ request}} {{ request}} {{ request}}";
        let ctx = serde_json::json!({"request": {"object": {"a": bomb, "b": bomb}}});
        let pattern = serde_json::json!({"key": format!("*{bomb}")});
        let result = substitute(&pattern, &ctx, "/validate/pattern");
        assert!(
            matches!(&result, Err(Error::Variable { reason, .. })
                if reason.contains("longer than 1048576 bytes") || reason.contains("copies more than")),
            "expected a bounded error, got {result:?}"
        );
        // Many variables that each stay small: bounded by the work, not the length.
        let many = "{{ request.object.a }}".repeat(20_000);
        let ctx = serde_json::json!({"request": {"object": {"a": "x".repeat(900)}}});
        let result = substitute(&serde_json::json!(many), &ctx, "/validate/message");
        assert!(
            matches!(&result, Err(Error::Variable { reason, .. }) if reason.contains("copies more than")),
            "expected a bounded error, got {result:?}"
        );
        // An ordinary message is unaffected.
        let ok = substitute(
            &serde_json::json!("name {{ request.object.a }}"),
            &serde_json::json!({"request": {"object": {"a": "pod-1"}}}),
            "/validate/message",
        );
        assert_eq!(ok.ok(), Some(serde_json::json!("name pod-1")));
    }

    use serde_json::json;

    #[test]
    fn finds_variables_like_kyverno_regex() {
        let v = find_vars("a{{x}}b\\{{y}}{{z}}");
        let texts: Vec<&str> = v.iter().map(|m| m.text.as_str()).collect();
        assert_eq!(texts, vec!["a{{x}}", "}{{z}}"]);
        assert!(find_vars("{{ {a} }}")[0].initial);
        assert!(find_vars("no vars").is_empty());
    }

    #[test]
    fn typed_and_interpolated() {
        let ctx = json!({"request": {"object": {"n": 3, "s": "x", "l": [1, "a"], "z": null}}});
        assert_eq!(
            substitute_str("{{request.object.n}}", &ctx, "").unwrap(),
            json!(3)
        );
        assert_eq!(
            substitute_str("n={{ request.object.n }} s={{request.object.s}} l={{request.object.l}} z={{request.object.z}}", &ctx, "").unwrap(),
            json!("n=3 s=x l=[1,\"a\"] z=null")
        );
        assert_eq!(
            substitute_str("\\{{ x }}", &ctx, "").unwrap(),
            json!("{{ x }}")
        );
        let e = substitute_str("{{ request.object.missing }}", &ctx, "/m").unwrap_err();
        assert_eq!(e.code(), "policy.variable_not_found");
        assert_eq!(
            substitute_str("{{ request.object.missing || 'd' }}", &ctx, "").unwrap(),
            json!("d")
        );
    }

    #[test]
    fn nested_shallow_and_keys() {
        let ctx = json!({
            "request": {"operation": "CREATE", "object": {"metadata": {"name": "temp", "annotations": {"k": "name"}}}},
            "raw": "{{ keep {{me}} }}",
            "foo": "bar",
            "indirect": "{{foo}}"
        });
        // The inner variable is substituted first, then the outer one.
        assert_eq!(
            substitute_str(
                "{{request.object.metadata.{{request.object.metadata.annotations.k}}}}",
                &ctx,
                ""
            )
            .unwrap(),
            json!("temp")
        );
        // `{{- x }}` substitutes once and keeps the braces of its result.
        assert_eq!(
            substitute_str("{{- raw }} {{foo}} {{indirect}}", &ctx, "").unwrap(),
            json!("{{ keep {{me}} }} bar bar")
        );
        // Keys are substituted too. A string that is exactly one variable takes the typed
        // result as is, without substituting again (Kyverno returns early there).
        let v = substitute(
            &json!({"{{foo}}-key": ["{{indirect}}", "x{{indirect}}"]}),
            &ctx,
            "/x",
        )
        .unwrap();
        assert_eq!(v, json!({"bar-key": ["{{foo}}", "xbar"]}));
        // On DELETE, request.object reads request.oldObject.
        let del = json!({"request": {"operation": "DELETE", "oldObject": {"n": 1}}});
        assert_eq!(
            substitute_str("{{ request.object.n }}", &del, "").unwrap(),
            json!(1)
        );
        // `{{@}}` is the resource value at the pattern path.
        let at = json!({"request": {"object": {"spec": {"containers": [{"name": "c0"}]}}}});
        assert_eq!(
            substitute_str("{{@}}", &at, "/validate/pattern/spec/containers/0/name").unwrap(),
            json!("c0")
        );
        let pattern = json!({"spec": {"containers": [{"name": "{{@}}"}]}});
        assert_eq!(
            substitute(&pattern, &at, "spec.rules[0].validate.pattern").unwrap(),
            json!({"spec": {"containers": [{"name": "c0"}]}})
        );
    }

    #[test]
    fn random_strings_never_panic() {
        const PIECES: &[&str] = &[
            "{{", "}}", "{", "}", "\\", "$(", ")", "@", "-", " ", "a", ".", "/", "..", "é",
            "request", "object", "'", "`", "||", "[0]", "\\{{",
        ];
        let ctx = json!({"request": {"object": {"a": "{{a}}", "b": [1]}}, "a": "x"});
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..20_000 {
            let mut src = String::new();
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            for _ in 0..(seed % 10) + 1 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                src.push_str(PIECES[(seed % PIECES.len() as u64) as usize]);
            }
            let _ = substitute_str(&src, &ctx, "/validate/pattern/x");
            let _ = substitute(&json!({ src.clone(): [src.clone()] }), &ctx, "/p");
            let _ = crate::kyverno::pattern::validate(&ctx, &json!({ src.clone(): src }));
        }
    }

    #[test]
    fn references_resolve_relative_paths() {
        let doc = json!({"spec": {"a": "5", "b": ">=$(./../a)"}});
        let out = substitute_references(&doc, "").unwrap();
        assert_eq!(out, json!({"spec": {"a": "5", "b": ">=5"}}));
    }
}
