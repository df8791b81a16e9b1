//! Kyverno `validate.pattern` / `anyPattern` matching.
//!
//! [`validate`] walks a pattern over a resource as Kyverno's `MatchPattern` does
//! (`pkg/engine/validate`), with every anchor:
//!
//! - `(key)` conditional: if the resource's value does not match, the enclosing map is skipped;
//!   a missing key skips too;
//! - `^(key)` existence: at least one element of the resource list must match;
//! - `=(key)` equality: checked only if the key is present;
//! - `X(key)` negation: the key must not be present (fails, never skips);
//! - `<(key)` global: a mismatch skips the whole rule;
//! - `+(key)` add-if-not-present is a mutate anchor; in a validate pattern it is a plain key
//!   (which a resource never has), as in Kyverno.
//!
//! Scalar patterns use Kyverno's value operators ([`validate_value`]): `*` and `?` wildcards,
//! `!` (not), `|` (or), `&` (and), `>`, `<`, `>=`, `<=`, ranges `a-b` and `a!-b`, durations
//! (`>1h`), quantities (`<=2Gi`), and `null` matching empty values. Lists of maps match when
//! every element matches the first pattern element (elements whose conditional anchors do not
//! apply are skipped).
//!
//! The outcome distinguishes *fail* from *skip* exactly as Kyverno does, so a caller can report
//! `skip` for a rule whose conditional anchors did not apply.

use crate::lang::jmespath::units::{
    GoNum, format_f6, format_upper_e, go_num, parse_duration, parse_float, parse_int,
    parse_quantity,
};
use provenance_core::wildcard::{has_wildcard, wildcard_match};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::BTreeMap;

/// The outcome of matching a resource against a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatternOutcome {
    /// The resource matches.
    Pass,
    /// The resource does not match.
    ///
    /// When `path` is empty, Kyverno's `MatchPattern` returned a non-skip error without a path
    /// (an anchored key of the pattern is missing from the resource): Kyverno's validate
    /// handler then reports the rule as **error**, not fail ("validation error: rule X
    /// execution error: ..."). With a path, it reports **fail** ("failed at path ...").
    Fail {
        /// Where (e.g. `/spec/containers/0/image/`); empty when Kyverno reports none.
        path: String,
        /// Why.
        message: String,
    },
    /// A conditional or global anchor did not apply: the rule is skipped.
    Skip {
        /// Where (Kyverno reports none for skips: usually empty).
        path: String,
        /// Why.
        message: String,
    },
}

const NEG_MSG: &str = "negation anchor matched in resource";
const COND_MSG: &str = "conditional anchor mismatch";
const GLOBAL_MSG: &str = "global anchor mismatch";

/// Maximum nesting depth of patterns (bounds recursion).
const MAX_DEPTH: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Conditional,
    Global,
    Negation,
    /// Kyverno's `*PatternError` with `Skip` set.
    PatternSkip,
    Plain,
}

#[derive(Debug, Clone)]
struct PErr {
    kind: Kind,
    msg: String,
}

impl PErr {
    fn plain(msg: String) -> PErr {
        PErr {
            kind: Kind::Plain,
            msg,
        }
    }
    fn is_skip(&self) -> bool {
        match self.kind {
            Kind::Conditional | Kind::Global => true,
            Kind::Negation => false,
            _ => self.msg.contains(COND_MSG) || self.msg.contains(GLOBAL_MSG),
        }
    }
    fn is_negation(&self) -> bool {
        match self.kind {
            Kind::Negation => true,
            Kind::Conditional | Kind::Global => false,
            _ => self.msg.contains(NEG_MSG),
        }
    }
}

type Res = Result<(), (String, PErr)>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AnchorType {
    Condition,
    Global,
    Negation,
    AddIfNotPresent,
    Equality,
    Existence,
}

/// Parses an anchored key: `^([+<=X^])?\((.+)\)$` after trimming spaces.
fn parse_anchor(s: &str) -> Option<(AnchorType, &str)> {
    let s = s.trim();
    let (t, rest) = match s.as_bytes().first()? {
        b'+' => (AnchorType::AddIfNotPresent, &s[1..]),
        b'<' => (AnchorType::Global, &s[1..]),
        b'=' => (AnchorType::Equality, &s[1..]),
        b'X' => (AnchorType::Negation, &s[1..]),
        b'^' => (AnchorType::Existence, &s[1..]),
        _ => (AnchorType::Condition, s),
    };
    let inner = rest.strip_prefix('(')?.strip_suffix(')')?;
    if inner.is_empty() || inner.contains('\n') {
        return None;
    }
    Some((t, inner))
}

struct Walk {
    /// Kyverno's AnchorMap: anchored key -> seen in the resource.
    anchors: BTreeMap<String, bool>,
    depth: usize,
}

/// Matches `resource` against a Kyverno validate `pattern`.
pub fn validate(resource: &Value, pattern: &Value) -> PatternOutcome {
    let mut w = Walk {
        anchors: BTreeMap::new(),
        depth: 0,
    };
    match w.element(resource, pattern, "/") {
        Ok(()) => PatternOutcome::Pass,
        Err((path, e)) => {
            if e.is_skip() {
                PatternOutcome::Skip {
                    path: String::new(),
                    message: e.msg,
                }
            } else if e.is_negation() {
                PatternOutcome::Fail {
                    path,
                    message: e.msg,
                }
            } else if w.keys_are_missing() {
                PatternOutcome::Fail {
                    path: String::new(),
                    message: e.msg,
                }
            } else {
                PatternOutcome::Fail {
                    path,
                    message: e.msg,
                }
            }
        }
    }
}

/// Matches against each pattern of an `anyPattern` list: passes if one passes; skips if none
/// passes, at least one skips and none fails; fails otherwise (with the failures' messages
/// joined). For `anyPattern`, Kyverno reports a failure as **fail** even when the individual
/// pattern errors had no path, so the returned `Fail` always has an empty `path` here and
/// does not mean "error".
pub fn validate_any(resource: &Value, patterns: &[Value]) -> PatternOutcome {
    let mut fails = Vec::new();
    let mut skips = Vec::new();
    for (i, p) in patterns.iter().enumerate() {
        match validate(resource, p) {
            PatternOutcome::Pass => return PatternOutcome::Pass,
            PatternOutcome::Skip { message, .. } => {
                skips.push(format!("anyPattern[{i}]: {message}"))
            }
            PatternOutcome::Fail { path, message } => {
                fails.push(format!("anyPattern[{i}] failed at path {path}: {message}"))
            }
        }
    }
    if fails.is_empty() && skips.is_empty() {
        // Kyverno passes a rule whose anyPattern list is empty.
        return PatternOutcome::Pass;
    }
    if fails.is_empty() {
        return PatternOutcome::Skip {
            path: String::new(),
            message: skips.join("; "),
        };
    }
    PatternOutcome::Fail {
        path: String::new(),
        message: fails.join("; "),
    }
}

fn short(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "<nil>".into(),
        other => {
            let s = other.to_string();
            if s.len() > 200 {
                format!(
                    "{}...",
                    &s[..s.char_indices().nth(200).map(|c| c.0).unwrap_or(s.len())]
                )
            } else {
                s
            }
        }
    }
}

fn combine(errs: &[PErr]) -> String {
    errs.iter()
        .map(|e| e.msg.as_str())
        .collect::<Vec<_>>()
        .join("; ")
}

impl Walk {
    fn keys_are_missing(&self) -> bool {
        self.anchors
            .iter()
            .any(|(k, seen)| !*seen && !matches!(parse_anchor(k), Some((AnchorType::Negation, _))))
    }

    fn check_anchor_in_resource(&mut self, pattern: &Map<String, Value>, resource: &Value) {
        for key in pattern.keys() {
            if let Some((t, k)) = parse_anchor(key)
                && matches!(
                    t,
                    AnchorType::Condition | AnchorType::Existence | AnchorType::Negation
                )
            {
                let entry = self.anchors.entry(key.clone()).or_insert(false);
                if *entry {
                    continue;
                }
                if resource_has_key(resource, k) {
                    *entry = true;
                }
            }
        }
    }

    fn element(&mut self, resource: &Value, pattern: &Value, path: &str) -> Res {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            self.depth -= 1;
            return Err((
                path.to_string(),
                PErr::plain(format!("pattern nested too deeply at {path}")),
            ));
        }
        let r = self.element_inner(resource, pattern, path);
        self.depth -= 1;
        r
    }

    fn element_inner(&mut self, resource: &Value, pattern: &Value, path: &str) -> Res {
        match pattern {
            Value::Object(pm) => {
                let Value::Object(rm) = resource else {
                    return Err((
                        path.to_string(),
                        PErr::plain(format!(
                            "pattern and resource have different structures. Path: {path}. Expected object, found {}",
                            kind_name(resource)
                        )),
                    ));
                };
                self.check_anchor_in_resource(pm, resource);
                self.map(rm, pm, path)
            }
            Value::Array(pa) => {
                let Value::Array(ra) = resource else {
                    return Err((
                        path.to_string(),
                        PErr::plain(format!(
                            "validation rule failed at path {path}, resource does not satisfy the expected overlay pattern"
                        )),
                    ));
                };
                self.array(ra, pa, path)
            }
            _ => {
                if let Value::Array(items) = resource {
                    for it in items {
                        if !validate_value(it, pattern) {
                            return Err((
                                path.to_string(),
                                PErr::plain(format!(
                                    "resource value '{}' does not match '{}' at path {path}",
                                    short(resource),
                                    short(pattern)
                                )),
                            ));
                        }
                    }
                    return Ok(());
                }
                if !validate_value(resource, pattern) {
                    return Err((
                        path.to_string(),
                        PErr::plain(format!(
                            "resource value '{}' does not match '{}' at path {path}",
                            short(resource),
                            short(pattern)
                        )),
                    ));
                }
                Ok(())
            }
        }
    }

    fn map(&mut self, rm: &Map<String, Value>, pm: &Map<String, Value>, path: &str) -> Res {
        let pm = expand_in_metadata(pm, rm);
        let mut anchors: Vec<(&String, &Value)> = Vec::new();
        let mut plain: Vec<(&String, &Value)> = Vec::new();
        for (k, v) in pm.iter() {
            match parse_anchor(k) {
                Some((
                    AnchorType::Condition
                    | AnchorType::Existence
                    | AnchorType::Equality
                    | AnchorType::Negation,
                    _,
                )) => anchors.push((k, v)),
                _ => plain.push((k, v)),
            }
        }
        anchors.sort_by(|a, b| a.0.cmp(b.0));
        let mut skip_errors: Vec<PErr> = Vec::new();
        let mut apply_count = 0usize;
        for (k, v) in &anchors {
            match self.handle(k, v, rm, path) {
                Ok(()) => apply_count += 1,
                Err((p, e)) => {
                    if e.is_skip() {
                        skip_errors.push(e);
                        continue;
                    }
                    let sibling = skip_errors.iter().any(|s| s.kind != Kind::PatternSkip);
                    if !sibling {
                        return Err((p, e));
                    }
                }
            }
        }
        if !skip_errors.is_empty() {
            let sibling = skip_errors.iter().any(|s| s.kind != Kind::PatternSkip);
            if apply_count == 0 || sibling {
                return Err((
                    path.to_string(),
                    PErr {
                        kind: Kind::PatternSkip,
                        msg: combine(&skip_errors),
                    },
                ));
            }
        }
        // Plain keys: sorted; global anchors and keys with nested anchors go first (pushed to
        // the front one by one, as Kyverno's list does).
        plain.sort_by(|a, b| a.0.cmp(b.0));
        let mut front: Vec<(&String, &Value)> = Vec::new();
        let mut back: Vec<(&String, &Value)> = Vec::new();
        for (k, v) in plain {
            let global = matches!(parse_anchor(k), Some((AnchorType::Global, _)));
            if global || has_nested_anchors(v) {
                front.push((k, v));
            } else {
                back.push((k, v));
            }
        }
        front.reverse();
        for (k, v) in front.into_iter().chain(back) {
            self.handle(k, v, rm, path)?;
        }
        Ok(())
    }

    fn handle(&mut self, key: &str, pattern: &Value, rm: &Map<String, Value>, path: &str) -> Res {
        let anchor = parse_anchor(key);
        match anchor {
            Some((AnchorType::Condition, k)) => {
                let cur = format!("{path}{k}/");
                match rm.get(k) {
                    Some(v) => self.element(v, pattern, &cur).map_err(|(p, e)| {
                        (
                            p,
                            PErr {
                                kind: Kind::Conditional,
                                msg: format!("{COND_MSG}: {}", e.msg),
                            },
                        )
                    }),
                    None => Err((
                        cur,
                        PErr {
                            kind: Kind::Conditional,
                            msg: format!(
                                "{COND_MSG}: conditional anchor key doesn't exist in the resource"
                            ),
                        },
                    )),
                }
            }
            Some((AnchorType::Global, k)) => {
                let cur = format!("{path}{k}/");
                match rm.get(k) {
                    Some(v) => self.element(v, pattern, &cur).map_err(|(p, e)| {
                        (
                            p,
                            PErr {
                                kind: Kind::Global,
                                msg: format!("{GLOBAL_MSG}: {}", e.msg),
                            },
                        )
                    }),
                    None => Ok(()),
                }
            }
            Some((AnchorType::Existence, k)) => {
                let cur = format!("{path}{k}/");
                let Some(v) = rm.get(k) else { return Ok(()) };
                let Value::Array(items) = v else {
                    return Err((
                        cur,
                        PErr::plain(format!(
                            "invalid resource type {}: Existence ^ () anchor can be used only on list/array type resource",
                            kind_name(v)
                        )),
                    ));
                };
                let Value::Array(pats) = pattern else {
                    return Err((
                        cur,
                        PErr::plain(format!(
                            "invalid pattern type {}: Pattern has to be of list to compare against resource",
                            kind_name(pattern)
                        )),
                    ));
                };
                for p in pats {
                    if !p.is_object() {
                        return Err((
                            cur,
                            PErr::plain(format!(
                                "invalid pattern type {}: Pattern has to be of type map to compare against items in resource",
                                kind_name(pattern)
                            )),
                        ));
                    }
                    let mut found = false;
                    for (i, it) in items.iter().enumerate() {
                        if self.element(it, p, &format!("{cur}{i}/")).is_ok() {
                            found = true;
                            break;
                        }
                    }
                    if !found {
                        return Err((
                            cur.clone(),
                            PErr::plain(format!(
                                "existence anchor validation failed at path {cur}"
                            )),
                        ));
                    }
                }
                Ok(())
            }
            Some((AnchorType::Equality, k)) => {
                let cur = format!("{path}{k}/");
                match rm.get(k) {
                    Some(v) => self.element(v, pattern, &cur),
                    None => Ok(()),
                }
            }
            Some((AnchorType::Negation, k)) => {
                let cur = format!("{path}{k}/");
                if rm.contains_key(k) {
                    return Err((
                        cur.clone(),
                        PErr {
                            kind: Kind::Negation,
                            msg: format!("{NEG_MSG}: {cur} is not allowed"),
                        },
                    ));
                }
                Ok(())
            }
            Some((AnchorType::AddIfNotPresent, _)) | None => {
                let cur = format!("{path}{key}/");
                let rv = rm.get(key).unwrap_or(&Value::Null);
                if pattern.as_str() == Some("*") {
                    if rv.is_null() {
                        return Err((
                            path.to_string(),
                            PErr::plain(format!("{path}/{key} not found")),
                        ));
                    }
                    return Ok(());
                }
                self.element(rv, pattern, &cur)
            }
        }
    }

    fn array(&mut self, ra: &[Value], pa: &[Value], path: &str) -> Res {
        let Some(first) = pa.first() else {
            return Err((path.to_string(), PErr::plain("pattern Array empty".into())));
        };
        match first {
            Value::Object(_) => {
                let mut apply = 0usize;
                let mut skips = Vec::new();
                for (i, it) in ra.iter().enumerate() {
                    let cur = format!("{path}{i}/");
                    match self.element(it, first, &cur) {
                        Ok(()) => apply += 1,
                        Err((p, e)) => {
                            if e.is_skip() {
                                skips.push(e);
                                continue;
                            }
                            return Err((p, e));
                        }
                    }
                }
                if apply == 0 && !skips.is_empty() {
                    return Err((
                        path.to_string(),
                        PErr {
                            kind: Kind::PatternSkip,
                            msg: combine(&skips),
                        },
                    ));
                }
                Ok(())
            }
            Value::Array(_) => {
                if ra.len() < pa.len() {
                    return Err((
                        String::new(),
                        PErr::plain(format!(
                            "validate Array failed, array length mismatch, resource Array len is {} and pattern Array len is {}",
                            ra.len(),
                            pa.len()
                        )),
                    ));
                }
                let mut apply = 0usize;
                let mut skips = Vec::new();
                for (i, p) in pa.iter().enumerate() {
                    let cur = format!("{path}{i}/");
                    match self.element(&ra[i], p, &cur) {
                        Ok(()) => apply += 1,
                        Err((ep, e)) => {
                            if e.is_skip() {
                                skips.push(e);
                                continue;
                            }
                            return Err((ep, e));
                        }
                    }
                }
                if apply == 0 && !skips.is_empty() {
                    return Err((
                        path.to_string(),
                        PErr {
                            kind: Kind::PatternSkip,
                            msg: combine(&skips),
                        },
                    ));
                }
                Ok(())
            }
            scalar => {
                let arr = Value::Array(ra.to_vec());
                self.element(&arr, scalar, path)
            }
        }
    }
}

fn kind_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "nil",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn resource_has_key(resource: &Value, key: &str) -> bool {
    match resource {
        Value::Object(m) => m.contains_key(key),
        Value::Array(a) => a.iter().any(|v| resource_has_key(v, key)),
        _ => false,
    }
}

fn has_nested_anchors(v: &Value) -> bool {
    match v {
        Value::Object(m) => {
            m.keys().any(|k| {
                matches!(
                    parse_anchor(k),
                    Some((
                        AnchorType::Condition
                            | AnchorType::Existence
                            | AnchorType::Equality
                            | AnchorType::Negation
                            | AnchorType::Global,
                        _
                    ))
                )
            }) || m.values().any(has_nested_anchors)
        }
        Value::Array(a) => a.iter().any(has_nested_anchors),
        _ => false,
    }
}

/// Kyverno's `wildcards.ExpandInMetadata`: wildcard keys in `metadata.labels` /
/// `metadata.annotations` patterns are replaced by the first matching resource key.
fn expand_in_metadata<'p>(
    pm: &'p Map<String, Value>,
    rm: &Map<String, Value>,
) -> Cow<'p, Map<String, Value>> {
    let Some((meta_key, Value::Object(pmeta))) = pattern_value("metadata", pm) else {
        return Cow::Borrowed(pm);
    };
    let Some(Value::Object(rmeta)) = rm.get("metadata") else {
        return Cow::Borrowed(pm);
    };
    let mut new_meta = pmeta.clone();
    let mut changed = false;
    for tag in ["labels", "annotations"] {
        let Some((pkey, pdata)) = string_map(tag, pmeta) else {
            continue;
        };
        let Some((_, rdata)) = string_map(tag, rmeta) else {
            continue;
        };
        let mut results = Map::new();
        for (k, v) in &pdata {
            if has_wildcard(k) {
                let (t, inner) = match parse_anchor(k) {
                    Some((t, inner)) => (Some(t), inner.to_string()),
                    None => (None, k.clone()),
                };
                let matched = rdata
                    .keys()
                    .find(|rk| wildcard_match(&inner, rk))
                    .cloned()
                    .unwrap_or(inner);
                let nk = match t {
                    Some(t) => format!("{}({matched})", anchor_prefix(t)),
                    None => matched,
                };
                results.insert(nk, Value::String(v.clone()));
            } else {
                results.insert(k.clone(), Value::String(v.clone()));
            }
        }
        new_meta.insert(pkey, Value::Object(results));
        changed = true;
    }
    if !changed {
        return Cow::Borrowed(pm);
    }
    let mut out = pm.clone();
    out.insert(meta_key, Value::Object(new_meta));
    Cow::Owned(out)
}

fn anchor_prefix(t: AnchorType) -> &'static str {
    match t {
        AnchorType::Condition => "",
        AnchorType::Global => "<",
        AnchorType::Negation => "X",
        AnchorType::AddIfNotPresent => "+",
        AnchorType::Equality => "=",
        AnchorType::Existence => "^",
    }
}

fn pattern_value<'a>(tag: &str, m: &'a Map<String, Value>) -> Option<(String, &'a Value)> {
    m.iter()
        .find(|(k, _)| *k == tag || parse_anchor(k).is_some_and(|(_, inner)| inner == tag))
        .map(|(k, v)| (k.clone(), v))
}

fn string_map(tag: &str, m: &Map<String, Value>) -> Option<(String, BTreeMap<String, String>)> {
    let (k, v) = pattern_value(tag, m)?;
    let Value::Object(o) = v else { return None };
    let out = o
        .iter()
        .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
        .collect();
    Some((k, out))
}

// ---------------------------------------------------------------------------------------------
// Scalar values (pkg/engine/pattern)

/// Kyverno's string-pattern operators (`pkg/engine/operator`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StrOp {
    Equal,
    MoreEqual,
    LessEqual,
    NotEqual,
    More,
    Less,
    InRange,
    NotInRange,
}

impl StrOp {
    fn len(self) -> usize {
        match self {
            StrOp::Equal | StrOp::InRange | StrOp::NotInRange => 0,
            StrOp::MoreEqual | StrOp::LessEqual => 2,
            StrOp::NotEqual | StrOp::More | StrOp::Less => 1,
        }
    }
}

/// `[-|+]?\d+(?:\.\d+)?[A-Za-z]*` matched at the start of `s`: the length consumed.
fn range_operand(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    if matches!(b.first(), Some(b'-' | b'|' | b'+')) {
        i = 1;
    }
    let ds = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    if i == ds {
        return None;
    }
    if i + 1 < b.len() && b[i] == b'.' && b[i + 1].is_ascii_digit() {
        i += 1;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
    }
    while i < b.len() && b[i].is_ascii_alphabetic() {
        i += 1;
    }
    Some(i)
}

/// Splits `left<sep>right` where both are range operands (regex `^(op)sep(op)$`). The regex
/// engine backtracks, so every split point is tried.
fn split_range<'a>(s: &'a str, sep: &str) -> Option<(&'a str, &'a str)> {
    for (idx, _) in s.match_indices(sep) {
        let (l, r) = (&s[..idx], &s[idx + sep.len()..]);
        if range_operand(l) == Some(l.len()) && range_operand(r) == Some(r.len()) {
            return Some((l, r));
        }
    }
    None
}

/// Kyverno's `GetOperatorFromStringPattern`.
pub(crate) fn string_operator(p: &str) -> StrOp {
    if p.len() < 2 {
        return StrOp::Equal;
    }
    if p.starts_with(">=") {
        return StrOp::MoreEqual;
    }
    if p.starts_with("<=") {
        return StrOp::LessEqual;
    }
    if p.starts_with('>') {
        return StrOp::More;
    }
    if p.starts_with('<') {
        return StrOp::Less;
    }
    if p.starts_with('!') {
        return StrOp::NotEqual;
    }
    if split_range(p, "!-").is_some() {
        return StrOp::NotInRange;
    }
    if split_range(p, "-").is_some() {
        return StrOp::InRange;
    }
    StrOp::Equal
}

/// Kyverno's `pattern.Validate`: whether a resource value matches a scalar (or map) pattern.
pub fn validate_value(value: &Value, pattern: &Value) -> bool {
    match pattern {
        Value::Bool(p) => value.as_bool() == Some(*p),
        Value::Number(n) => match go_num(n) {
            GoNum::Int(p) => match value {
                Value::Number(v) => match go_num(v) {
                    GoNum::Int(i) => i == p,
                    GoNum::Float(f) => f == f.trunc() && f as i64 == p,
                },
                Value::String(s) => parse_int(s) == Some(p),
                _ => false,
            },
            GoNum::Float(p) => match value {
                Value::Number(v) => match go_num(v) {
                    GoNum::Int(i) => p == p.trunc() && p as i64 == i,
                    GoNum::Float(f) => f == p,
                },
                Value::String(s) => parse_float(s) == Some(p),
                _ => false,
            },
        },
        Value::Null => match value {
            Value::Number(v) => v.as_f64() == Some(0.0),
            Value::String(s) => s.is_empty(),
            Value::Bool(b) => !b,
            Value::Null => true,
            _ => false,
        },
        Value::Object(_) => value.is_object(),
        Value::String(p) => validate_string_patterns(value, p),
        Value::Array(_) => false,
    }
}

fn validate_string_patterns(value: &Value, pattern: &str) -> bool {
    if value.as_str() == Some(pattern) {
        return true;
    }
    pattern.split('|').any(|cond| {
        cond.trim_matches(' ')
            .split('&')
            .all(|c| validate_string_pattern(value, c.trim_matches(' '), 0))
    })
}

fn validate_string_pattern(value: &Value, pattern: &str, depth: usize) -> bool {
    if depth > 4 {
        return false;
    }
    let op = string_operator(pattern);
    match op {
        StrOp::InRange => match split_range(pattern, "-") {
            Some((l, r)) => {
                validate_string_pattern(value, &format!(">= {l}"), depth + 1)
                    && validate_string_pattern(value, &format!("<= {r}"), depth + 1)
            }
            None => false,
        },
        StrOp::NotInRange => match split_range(pattern, "!-") {
            Some((l, r)) => {
                validate_string_pattern(value, &format!("< {l}"), depth + 1)
                    || validate_string_pattern(value, &format!("> {r}"), depth + 1)
            }
            None => false,
        },
        _ => {
            let p = pattern.get(op.len()..).unwrap_or("").trim();
            validate_string(value, p, op)
        }
    }
}

fn number_to_string(value: &Value) -> Option<String> {
    match value {
        Value::Null => Some("0".into()),
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(match go_num(n) {
            GoNum::Int(i) => i.to_string(),
            GoNum::Float(f) => format_f6(f),
        }),
        _ => None,
    }
}

fn by_op(o: Ordering, op: StrOp) -> Option<bool> {
    Some(match op {
        StrOp::Equal => o == Ordering::Equal,
        StrOp::NotEqual => o != Ordering::Equal,
        StrOp::More => o == Ordering::Greater,
        StrOp::Less => o == Ordering::Less,
        StrOp::MoreEqual => o != Ordering::Less,
        StrOp::LessEqual => o != Ordering::Greater,
        _ => return None,
    })
}

fn validate_string(value: &Value, pattern: &str, op: StrOp) -> bool {
    // Durations.
    if let Some(pd) = parse_duration(pattern)
        && let Some(vs) = number_to_string(value)
        && let Some(vd) = parse_duration(&vs)
        && let Some(r) = by_op(vd.cmp(&pd), op)
    {
        return r;
    }
    // Quantities.
    if let Some(pq) = parse_quantity(pattern)
        && let Some(vs) = number_to_string(value)
        && let Some(vq) = parse_quantity(&vs)
        && let Some(r) = by_op(vq.cmp(&pq), op)
    {
        return r;
    }
    // Strings (wildcards), for equality only.
    if op != StrOp::Equal && op != StrOp::NotEqual {
        return false;
    }
    let s = match value {
        Value::Number(n) => match go_num(n) {
            GoNum::Int(i) => i.to_string(),
            GoNum::Float(f) => format_upper_e(f),
        },
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        _ => return false,
    };
    let m = wildcard_match(pattern, &s);
    if op == StrOp::NotEqual { !m } else { m }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn anchors_and_operators() {
        let pod = json!({"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [
            {"name": "c", "image": "nginx:1.2", "resources": {"limits": {"memory": "2Gi"}}}]}});
        let p = |v: Value| validate(&pod, &v);
        assert_eq!(
            p(json!({"spec": {"containers": [{"image": "!*:latest"}]}})),
            PatternOutcome::Pass
        );
        assert!(matches!(
            p(json!({"spec": {"containers": [{"image": "*:latest"}]}})),
            PatternOutcome::Fail { .. }
        ));
        assert!(matches!(
            p(json!({"spec": {"containers": [{"(image)": "*:latest", "name": "x"}]}})),
            PatternOutcome::Skip { .. }
        ));
        assert_eq!(
            p(json!({"spec": {"containers": [{"resources": {"limits": {"memory": "<=4Gi"}}}]}})),
            PatternOutcome::Pass
        );
        assert!(matches!(
            p(json!({"spec": {"X(hostNetwork)": "*", "containers": [{"X(image)": "null"}]}})),
            PatternOutcome::Fail { .. }
        ));
        assert_eq!(
            p(json!({"metadata": {"labels": {"ap?": "a"}}})),
            PatternOutcome::Pass
        );
        assert_eq!(
            p(json!({"spec": {"^(containers)": [{"name": "c"}]}})),
            PatternOutcome::Pass
        );
        assert_eq!(
            validate_any(
                &pod,
                &[
                    json!({"spec": {"hostPID": true}}),
                    json!({"metadata": {"labels": {"app": "a|b"}}})
                ]
            ),
            PatternOutcome::Pass
        );
        assert!(validate_value(&json!("5"), &json!("1-10")));
        assert!(!validate_value(&json!(5), &json!("1!-10")));
        assert!(validate_value(&json!("90s"), &json!(">1m")));
    }

    #[test]
    fn ranges_quantities_and_signs() {
        let v = |value: Value, pattern: &str| validate_value(&value, &json!(pattern));
        assert!(v(json!(4), ">= 3"));
        assert!(v(json!(2), "0-2") && !v(json!(3), "0-2"));
        assert!(v(json!(0), "10!-20") && !v(json!(15), "10!-20") && v(json!(25), "10!-20"));
        assert!(!v(json!(0), "0.00001-2.00001") && !v(json!(2.0001), "0.00001-2.00001"));
        assert!(v(json!(2), "2-2") && !v(json!(2), "2!-2"));
        assert!(v(json!("256Mi"), "128Mi-512Mi") && !v(json!("1024Mi"), "128Mi-512Mi"));
        assert!(v(json!("1024Mi"), "128Mi!-512Mi"));
        assert!(v(json!(-9), "-10-8") && !v(json!(9), "-10--8") && v(json!(9), "-10!--8"));
        assert!(v(json!("-9Mi"), "-10Mi-8Mi") && v(json!("7Mi"), "-10Mi-+8Mi"));
        assert!(v(json!(0), "+0-+1") && v(json!("1025Mi"), "+0Mi!-+1024Mi"));
        assert!(v(json!("1Gi"), ">1000Mi") && v(json!("1G"), "<1Gi") && v(json!("0.2"), "200m"));
        assert!(v(json!(1024), "1024") && !v(json!("2048"), "1024"));
        assert!(!v(json!("500m"), ">=0.6") && v(json!("12s"), "<=12s"));
        assert!(v(json!(7.00001), ">7.000001") && v(json!(7.00001), "!7"));
    }
}
