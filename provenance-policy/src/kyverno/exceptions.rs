//! Kyverno PolicyExceptions (`kyverno.io/v2`, `v2beta1`, `v2alpha1`).
//!
//! A PolicyException names policy/rule pairs (`spec.exceptions`), the resources it covers
//! (`spec.match`, `any`/`all` only, as Kyverno's `checkMatchesResources`), optional
//! `spec.conditions`, and, for `podSecurity` rules, the controls it exempts
//! (`spec.podSecurity`). Kyverno reports a rule an exception covers as `skip`.
//!
//! For `validate.podSecurity` rules Kyverno is finer ([`check_pod_security`]): an exception
//! without `podSecurity` entries skips the rule; otherwise the rule is evaluated, and only if it
//! fails are the exceptions' `podSecurity` entries applied: `skip` when nothing is left, `fail`
//! with what is left otherwise.
//!
//! Pure: evaluating conditions needs the JSON context and `Env` the engine already builds.

use serde_json::Value;

use crate::Error;
use crate::admission::request::ResourceInput;
use crate::kyverno::matching::MatchBlock;
use crate::kyverno::pod_security::{PodSecurity, PssExclude, PssOutcome, wildcard_match};
use crate::lang::jmespath::Env;

/// One `spec.exceptions[]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExceptionTarget {
    /// `policyName`: the ClusterPolicy name, or `<namespace>/<name>` for a namespaced Policy.
    pub policy_name: String,
    /// `ruleNames` (wildcards `*` and `?` allowed, as in Kyverno).
    pub rule_names: Vec<String>,
}

/// A parsed PolicyException.
#[derive(Debug, Clone)]
pub struct PolicyException {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace` (empty when unset).
    pub namespace: String,
    /// `spec.exceptions`.
    pub targets: Vec<ExceptionTarget>,
    /// `spec.background` (default true).
    pub background: bool,
    match_block: MatchBlock,
    conditions: Option<Value>,
    pod_security: Vec<PssExclude>,
}

const API_VERSIONS: &[&str] = &["kyverno.io/v2", "kyverno.io/v2beta1", "kyverno.io/v2alpha1"];

impl PolicyException {
    /// Parses a PolicyException document and validates it as Kyverno does: a `policyName` in
    /// every exception, no user information in `match` when `background` is on, and valid
    /// `podSecurity` entries.
    pub fn from_value(v: &Value) -> Result<Self, Error> {
        let name = v
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let err = |path: &str, reason: String| Error::InvalidPolicy {
            policy: name.clone(),
            path: path.to_string(),
            reason,
        };
        let api = v.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        if !API_VERSIONS.contains(&api) {
            return Err(err(
                "apiVersion",
                format!("unsupported PolicyException apiVersion {api:?}"),
            ));
        }
        if v.get("kind").and_then(Value::as_str) != Some("PolicyException") {
            return Err(err("kind", "must be PolicyException".into()));
        }
        let namespace = v
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let spec = v
            .get("spec")
            .and_then(Value::as_object)
            .ok_or_else(|| err("spec", "a spec object is required".into()))?;
        let background = match spec.get("background") {
            None | Some(Value::Null) => true,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(err("spec.background", "must be a boolean".into())),
        };
        let mut targets = Vec::new();
        match spec.get("exceptions") {
            None | Some(Value::Null) => {}
            Some(Value::Array(list)) => {
                for (i, e) in list.iter().enumerate() {
                    let path = format!("spec.exceptions[{i}]");
                    let policy_name = e
                        .get("policyName")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string();
                    if policy_name.is_empty() {
                        return Err(err(
                            &format!("{path}.policyName"),
                            "An exception requires a policy name".into(),
                        ));
                    }
                    let rule_names = match e.get("ruleNames") {
                        None | Some(Value::Null) => Vec::new(),
                        Some(Value::Array(r)) => r
                            .iter()
                            .map(|x| {
                                x.as_str().map(str::to_string).ok_or_else(|| {
                                    err(&format!("{path}.ruleNames"), "must be strings".into())
                                })
                            })
                            .collect::<Result<_, _>>()?,
                        Some(_) => {
                            return Err(err(&format!("{path}.ruleNames"), "must be a list".into()));
                        }
                    };
                    targets.push(ExceptionTarget {
                        policy_name,
                        rule_names,
                    });
                }
            }
            Some(_) => return Err(err("spec.exceptions", "must be a list".into())),
        }
        let match_value = spec.get("match").cloned().unwrap_or(Value::Null);
        let mut match_block = if match_value.is_null() {
            MatchBlock::default()
        } else {
            MatchBlock::from_value(&match_value, "spec.match").map_err(|e| match e {
                Error::InvalidPolicy { path, reason, .. } => Error::InvalidPolicy {
                    policy: name.clone(),
                    path,
                    reason,
                },
                other => other,
            })?
        };
        // Kyverno's `MatchResources` of an exception has only `any` and `all`.
        match_block.legacy = None;
        if background
            && ["any", "all"].iter().any(|k| {
                match_value
                    .get(*k)
                    .and_then(Value::as_array)
                    .is_some_and(|l| {
                        l.iter().any(|f| {
                            ["subjects", "roles", "clusterRoles"]
                                .iter()
                                .any(|u| f.get(*u).is_some_and(|x| !x.is_null()))
                        })
                    })
            })
        {
            return Err(err(
                "spec.match",
                "invalid field: user information is not allowed when background is enabled".into(),
            ));
        }
        let conditions = spec.get("conditions").filter(|c| !c.is_null()).cloned();
        let pod_security = PssExclude::list_from_value(spec.get("podSecurity"), "spec.podSecurity")
            .map_err(|e| match e {
                Error::InvalidPolicy { path, reason, .. } => Error::InvalidPolicy {
                    policy: name.clone(),
                    path,
                    reason,
                },
                other => other,
            })?;
        Ok(PolicyException {
            name,
            namespace,
            targets,
            background,
            match_block,
            conditions,
            pod_security,
        })
    }

    /// Kyverno's key for messages: `<namespace>/<name>`, or `<name>` without a namespace.
    pub fn key(&self) -> String {
        if self.namespace.is_empty() {
            self.name.clone()
        } else {
            format!("{}/{}", self.namespace, self.name)
        }
    }

    /// Whether `spec.exceptions` names this policy (exactly) and rule (wildcards).
    pub fn contains(&self, policy: &str, rule: &str) -> bool {
        self.targets.iter().any(|t| {
            t.policy_name == policy && t.rule_names.iter().any(|r| wildcard_match(r, rule))
        })
    }

    /// Whether `spec.match` covers the resource (`any`: one filter; `all`: every filter; an
    /// empty match covers nothing). User criteria (`subjects`, `roles`, `clusterRoles`) always
    /// count, as in Kyverno: an unknown requester is not the user an exception names. A match
    /// that cannot be decided (unknown namespace labels or roles) does not cover the resource.
    pub fn matches_resource(&self, input: &ResourceInput) -> bool {
        !self.match_block.is_empty() && self.match_block.try_matches_with_user(input) == Ok(true)
    }

    /// Whether the exception applies to `rule` of `policy` (`<namespace>/<name>` for a
    /// namespaced Policy) for this resource: it names the pair, its match covers the resource
    /// and its conditions hold. Conditions that cannot be evaluated make it not apply (Kyverno
    /// logs and moves on).
    pub fn applies(
        &self,
        policy: &str,
        rule: &str,
        input: &ResourceInput,
        ctx: &Value,
        env: &Env,
    ) -> bool {
        if !self.contains(policy, rule) || !self.matches_resource(input) {
            return false;
        }
        match &self.conditions {
            None => true,
            Some(c) => crate::kyverno::conditions::evaluate_block(c, ctx, env, "spec.conditions")
                .unwrap_or(false),
        }
    }

    /// `spec.podSecurity`.
    pub fn pod_security(&self) -> &[PssExclude] {
        &self.pod_security
    }

    /// Whether `spec.podSecurity` has entries.
    pub fn has_pod_security(&self) -> bool {
        !self.pod_security.is_empty()
    }
}

/// Kyverno's message for a rule skipped by exceptions: the first exception without
/// `podSecurity` entries (`rule is skipped due to policy exception <key>`) when there is one,
/// else all of them (`rule is skipped due to policy exceptions <k1>, <k2>`).
pub fn skip_message(matched: &[&PolicyException]) -> String {
    if let Some(e) = matched.iter().find(|e| !e.has_pod_security()) {
        return format!("rule is skipped due to policy exception {}", e.key());
    }
    let keys: Vec<String> = matched.iter().map(|e| e.key()).collect();
    format!(
        "rule is skipped due to policy exceptions {}",
        keys.join(", ")
    )
}

/// Evaluates a `podSecurity` rule with the exceptions that apply to it (see
/// [`PolicyException::applies`]), as Kyverno's PSS handler does:
/// [`PssOutcome::Excepted`] (report `skip`, message from [`skip_message`]) when one of them has
/// no `podSecurity` entries, or when their entries exempt every failure; otherwise the rule's
/// own outcome (`Fail` lists what the exceptions left).
pub fn check_pod_security(
    rule: &PodSecurity,
    resource: &Value,
    matched: &[&PolicyException],
) -> PssOutcome {
    if matched.iter().any(|e| !e.has_pod_security()) {
        return PssOutcome::Excepted;
    }
    let extra: Vec<PssExclude> = matched
        .iter()
        .flat_map(|e| e.pod_security.iter().cloned())
        .collect();
    rule.check_with_exclusions(resource, &extra)
}
