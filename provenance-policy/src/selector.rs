//! Kubernetes label selectors (`matchLabels` + `matchExpressions`), as every policy kind
//! reads them: ClusterPolicy `selector` / `namespaceSelector` (where Kyverno also allows
//! wildcards in `matchLabels`), CEL policies' `objectSelector` / `namespaceSelector`,
//! `paramRef.selector`, `cloneList.selector` and mutate-existing target selectors.

use std::collections::BTreeMap;

use provenance_core::wildcard::{has_wildcard, wildcard_match};
use serde_json::Value;

use crate::Error;

/// A label selector.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    match_labels: BTreeMap<String, String>,
    /// `(key, operator, values)`; the operator is `In`, `NotIn`, `Exists` or `DoesNotExist`.
    match_expressions: Vec<(String, String, Vec<String>)>,
    /// Whether `*` and `?` in `matchLabels` keys and values are wildcards (Kyverno's
    /// ClusterPolicy selectors).
    wildcards: bool,
}

impl LabelSelector {
    /// Parses a selector object as Kubernetes defines it: `matchLabels` a map of strings
    /// (YAML booleans and numbers read as their text), `matchExpressions` a list of
    /// `{key, operator, values}` with `In`/`NotIn` needing values. `path` names the selector
    /// in errors.
    pub fn from_value(v: &Value, path: &str) -> Result<Self, Error> {
        let invalid = |at: String, reason: &str| Error::InvalidPolicy {
            policy: String::new(),
            path: at,
            reason: reason.to_owned(),
        };
        if !v.is_object() {
            return Err(invalid(path.to_owned(), "a selector must be a map"));
        }
        let mut sel = LabelSelector::default();
        if let Some(ml) = v.get("matchLabels").filter(|x| !x.is_null()) {
            let m = ml
                .as_object()
                .ok_or_else(|| invalid(format!("{path}.matchLabels"), "expected a map"))?;
            for (k, val) in m {
                let s = match val {
                    Value::String(s) => s.clone(),
                    Value::Bool(b) => b.to_string(),
                    Value::Number(n) => n.to_string(),
                    _ => {
                        return Err(invalid(
                            format!("{path}.matchLabels.{k}"),
                            "expected a string",
                        ));
                    }
                };
                sel.match_labels.insert(k.clone(), s);
            }
        }
        if let Some(me) = v.get("matchExpressions").filter(|x| !x.is_null()) {
            let list = me
                .as_array()
                .ok_or_else(|| invalid(format!("{path}.matchExpressions"), "expected a list"))?;
            for (i, e) in list.iter().enumerate() {
                let at = format!("{path}.matchExpressions[{i}]");
                let text = |k: &str| e.get(k).and_then(Value::as_str);
                let key = text("key").ok_or_else(|| invalid(at.clone(), "missing key"))?;
                let op = text("operator").ok_or_else(|| invalid(at.clone(), "missing operator"))?;
                if !matches!(op, "In" | "NotIn" | "Exists" | "DoesNotExist") {
                    return Err(invalid(
                        at,
                        "operator must be In, NotIn, Exists or DoesNotExist",
                    ));
                }
                let values: Vec<String> = match e.get("values").filter(|x| !x.is_null()) {
                    None => Vec::new(),
                    Some(Value::Array(a)) => a
                        .iter()
                        .map(|x| x.as_str().map(str::to_owned))
                        .collect::<Option<_>>()
                        .ok_or_else(|| {
                            invalid(format!("{at}.values"), "expected a list of strings")
                        })?,
                    Some(_) => return Err(invalid(format!("{at}.values"), "expected a list")),
                };
                if matches!(op, "In" | "NotIn") && values.is_empty() {
                    return Err(invalid(at, "operator In and NotIn need values"));
                }
                sel.match_expressions
                    .push((key.to_owned(), op.to_owned(), values));
            }
        }
        Ok(sel)
    }

    /// [`LabelSelector::from_value`] with Kyverno's wildcards (`*`, `?`) in `matchLabels`
    /// keys and values, as ClusterPolicy `selector` and `namespaceSelector` read them.
    pub fn with_wildcards(v: &Value, path: &str) -> Result<Self, Error> {
        let mut sel = Self::from_value(v, path)?;
        sel.wildcards = true;
        Ok(sel)
    }

    /// Whether the selector has no requirement (it matches every label set).
    pub fn is_empty(&self) -> bool {
        self.match_labels.is_empty() && self.match_expressions.is_empty()
    }

    /// Whether the selector looks at no label other than `key`.
    pub fn only_uses_key(&self, key: &str) -> bool {
        self.match_labels.keys().all(|k| k == key)
            && self.match_expressions.iter().all(|(k, _, _)| k == key)
    }

    /// Whether `labels` satisfy the selector (an empty selector matches everything).
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let label_matches = |(k, v): (&String, &String)| {
            if self.wildcards && (has_wildcard(k) || has_wildcard(v)) {
                labels
                    .iter()
                    .any(|(lk, lv)| wildcard_match(k, lk) && wildcard_match(v, lv))
            } else {
                labels.get(k) == Some(v)
            }
        };
        self.match_labels.iter().all(label_matches)
            && self.match_expressions.iter().all(|(key, op, values)| {
                let actual = labels.get(key);
                match op.as_str() {
                    "In" => actual.is_some_and(|a| values.contains(a)),
                    "NotIn" => actual.is_none_or(|a| !values.contains(a)),
                    "Exists" => actual.is_some(),
                    "DoesNotExist" => actual.is_none(),
                    _ => false,
                }
            })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn wildcards_only_where_kyverno_reads_them() {
        let v = json!({"matchLabels": {"app": "web-*"}});
        let web = labels(&[("app", "web-1")]);
        assert!(
            LabelSelector::with_wildcards(&v, "s")
                .unwrap()
                .matches(&web)
        );
        assert!(!LabelSelector::from_value(&v, "s").unwrap().matches(&web));
    }

    #[test]
    fn expressions_and_typed_values() {
        let v = json!({"matchLabels": {"gpu": true},
            "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["dev"]},
                                 {"key": "team", "operator": "Exists"}]});
        let s = LabelSelector::from_value(&v, "s").unwrap();
        assert!(s.matches(&labels(&[("gpu", "true"), ("team", "ml")])));
        assert!(!s.matches(&labels(&[("gpu", "true"), ("team", "ml"), ("tier", "dev")])));
        assert!(!s.matches(&labels(&[("gpu", "true")])));
        assert!(!s.is_empty());
        assert!(
            LabelSelector::from_value(&json!({}), "s")
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn what_cannot_be_a_selector_is_refused_not_read_as_match_all() {
        for bad in [
            json!("app=web"),
            json!({"matchLabels": "app=web"}),
            json!({"matchLabels": {"app": ["web"]}}),
            json!({"matchExpressions": {"key": "a"}}),
            json!({"matchExpressions": [{"operator": "Exists"}]}),
            json!({"matchExpressions": [{"key": "a", "operator": "Equals", "values": ["b"]}]}),
            json!({"matchExpressions": [{"key": "a", "operator": "In"}]}),
            json!({"matchExpressions": [{"key": "a", "operator": "In", "values": [1]}]}),
        ] {
            assert!(
                LabelSelector::with_wildcards(&bad, "spec.selector").is_err(),
                "{bad}"
            );
        }
    }
}
