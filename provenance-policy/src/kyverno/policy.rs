//! The `kyverno.io` policy model: ClusterPolicy and Policy (v1, v2beta1), parsed from JSON
//! values, with autogen rules for Pod controllers computed at load time.

use std::collections::BTreeMap;

use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::Error;
use crate::admission::request::string_map;
use crate::kyverno::matching::{KindSelector, MatchBlock};
use crate::lang::cel::CompiledCelRule;

/// What happens when an enforced rule fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailureAction {
    /// Report only (Kyverno's default).
    #[default]
    Audit,
    /// Block the request.
    Enforce,
}

impl FailureAction {
    fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "audit" => Some(FailureAction::Audit),
            "enforce" => Some(FailureAction::Enforce),
            _ => None,
        }
    }
}

/// One entry of `validationFailureActionOverrides` (policy) or `failureActionOverrides`
/// (rule): `action` for resources in `namespaces` (Kyverno wildcards) whose namespace labels
/// match `namespaceSelector`.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionOverride {
    /// The action.
    pub action: FailureAction,
    /// Namespace patterns (empty: any namespace).
    pub namespaces: Vec<String>,
    /// Namespace label selector, if any.
    pub namespace_selector: Option<crate::kyverno::matching::LabelSelector>,
}

impl ActionOverride {
    fn parse_list(v: &Value, path: &str) -> Result<Vec<Self>, Error> {
        let bad = |p: String, reason: &str| Error::InvalidPolicy {
            policy: String::new(),
            path: p,
            reason: reason.to_owned(),
        };
        let list = v
            .as_array()
            .ok_or_else(|| bad(path.to_owned(), "must be a list"))?;
        let mut out = Vec::new();
        for (i, o) in list.iter().enumerate() {
            let p = format!("{path}[{i}]");
            if let Some(k) = o.as_object().and_then(|m| {
                m.keys()
                    .find(|k| !["action", "namespaces", "namespaceSelector"].contains(&k.as_str()))
            }) {
                return Err(Error::Unsupported {
                    field: format!("{p}.{k} (unknown field)"),
                });
            }
            let action = o
                .get("action")
                .and_then(Value::as_str)
                .and_then(FailureAction::parse)
                .ok_or_else(|| bad(format!("{p}.action"), "must be Audit or Enforce"))?;
            let namespaces = match o.get("namespaces") {
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|x| {
                        x.as_str()
                            .map(str::to_owned)
                            .ok_or_else(|| bad(format!("{p}.namespaces"), "must be strings"))
                    })
                    .collect::<Result<Vec<_>, _>>()?,
                None | Some(Value::Null) => Vec::new(),
                Some(_) => return Err(bad(format!("{p}.namespaces"), "must be a list")),
            };
            let namespace_selector = match o.get("namespaceSelector") {
                Some(s) if !s.is_null() => {
                    Some(crate::kyverno::matching::LabelSelector::with_wildcards(
                        s,
                        &format!("{p}.namespaceSelector"),
                    )?)
                }
                _ => None,
            };
            if namespaces.is_empty() && namespace_selector.is_none() {
                return Err(bad(p, "names no namespaces and no namespaceSelector"));
            }
            out.push(ActionOverride {
                action,
                namespaces,
                namespace_selector,
            });
        }
        Ok(out)
    }

    fn applies(&self, namespace: &str, labels: &BTreeMap<String, String>) -> bool {
        let ns_ok = self.namespaces.is_empty()
            || self
                .namespaces
                .iter()
                .any(|p| provenance_core::wildcard::wildcard_match(p, namespace));
        let sel_ok = self
            .namespace_selector
            .as_ref()
            .is_none_or(|s| s.matches(labels));
        ns_ok && sel_ok
    }

    fn first(
        list: &[Self],
        namespace: &str,
        labels: &BTreeMap<String, String>,
    ) -> Option<FailureAction> {
        list.iter()
            .find(|o| o.applies(namespace, labels))
            .map(|o| o.action)
    }
}

/// What a rule does.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum RuleKind {
    /// `validate`: the raw block (pattern, anyPattern, deny, foreach, cel, podSecurity, ...).
    Validate(Value),
    /// `verifyImages`: the raw list of image verifications.
    VerifyImages(Value),
    /// `mutate`: applied by [`ClusterPolicy::mutate`] (the raw block is `raw.mutate`).
    Mutate,
    /// `generate`: the resources Kyverno would create ([`crate::kyverno::generate`]).
    Generate,
    /// A rule with none of the known blocks.
    Empty,
}

/// One rule of a ClusterPolicy / Policy.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Rule name (autogen rules are named `autogen-<name>` / `autogen-cronjob-<name>`).
    pub name: String,
    /// `match`.
    pub match_block: MatchBlock,
    /// `exclude`.
    pub exclude: Option<MatchBlock>,
    /// `preconditions` (raw).
    pub preconditions: Option<Value>,
    /// `celPreconditions` (raw).
    pub cel_preconditions: Option<Value>,
    /// `context` entries (raw).
    pub context: Vec<Value>,
    /// The rule's action.
    pub kind: RuleKind,
    /// `validate.failureAction` (or `verifyImages[].failureAction`), when set.
    pub failure_action: Option<FailureAction>,
    /// `validate.failureActionOverrides`: the action by namespace.
    pub failure_action_overrides: Vec<ActionOverride>,
    /// `validate.allowExistingViolations` (default true).
    pub allow_existing_violations: bool,
    /// Whether this rule was generated for Pod controllers.
    pub autogen: bool,
    /// `validate.cel`, compiled when the policy loads (with `celPreconditions`).
    pub cel: Option<Arc<CompiledCelRule>>,
    /// `validate.podSecurity`, compiled when the policy loads.
    pub pod_security: Option<Arc<crate::kyverno::pod_security::PodSecurity>>,
    /// The rule as written (after autogen rewriting for generated rules).
    pub raw: Value,
}

/// A `kyverno.io` ClusterPolicy or Policy.
#[derive(Debug, Clone)]
pub struct ClusterPolicy {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace` for a namespaced `Policy`.
    pub namespace: Option<String>,
    /// `ClusterPolicy` or `Policy`.
    pub kind: String,
    /// `metadata.annotations`.
    pub annotations: BTreeMap<String, String>,
    /// `spec.validationFailureAction` (or the rule-level override).
    pub failure_action: FailureAction,
    /// `spec.validationFailureActionOverrides`: the action by namespace.
    pub failure_action_overrides: Vec<ActionOverride>,
    /// `spec.failurePolicy`: `Fail` (default) or `Ignore`.
    pub failure_policy_ignore: bool,
    /// `spec.background` (default true).
    pub background: bool,
    /// Rules, including generated autogen rules.
    pub rules: Vec<Rule>,
    /// The policy as written.
    pub raw: Value,
}

fn invalid(policy: &str, path: impl Into<String>, reason: impl Into<String>) -> Error {
    Error::InvalidPolicy {
        policy: policy.to_owned(),
        path: path.into(),
        reason: reason.into(),
    }
}

fn with_policy(e: Error, policy: &str) -> Error {
    match e {
        Error::InvalidPolicy { path, reason, .. } => Error::InvalidPolicy {
            policy: policy.to_owned(),
            path,
            reason,
        },
        other => other,
    }
}

/// Spec fields Kyverno defines that change which requests a policy decides, but that this
/// engine does not read: set to anything but their default, the policy is refused.
fn refuse_unread_spec_fields(v: &Value) -> Result<(), Error> {
    let Some(spec) = v.get("spec") else {
        return Ok(());
    };
    let refuse = |field: &str, why: &str| {
        Err(Error::Unsupported {
            field: format!("spec.{field} ({why})"),
        })
    };
    match spec.get("applyRules") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if s == "All" => {}
        Some(_) => return refuse("applyRules", "only All, the default, is evaluated"),
    }
    if spec
        .pointer("/webhookConfiguration/matchConditions")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
    {
        return refuse(
            "webhookConfiguration.matchConditions",
            "webhook match conditions are not evaluated",
        );
    }
    Ok(())
}

impl Rule {
    fn from_value(v: &Value, policy: &str, path: &str) -> Result<Rule, Error> {
        let name = v
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(policy, format!("{path}.name"), "missing rule name"))?
            .to_owned();
        let match_value = v
            .get("match")
            .ok_or_else(|| invalid(policy, format!("{path}.match"), "missing match"))?;
        let match_block = MatchBlock::from_value(match_value, &format!("{path}.match"))
            .map_err(|e| with_policy(e, policy))?;
        let exclude = match v.get("exclude") {
            Some(e) if !e.is_null() => Some(
                MatchBlock::from_value(e, &format!("{path}.exclude"))
                    .map_err(|e| with_policy(e, policy))?,
            ),
            _ => None,
        };
        // One operation per rule, as Kyverno's policy validation requires: taking the first
        // and leaving the rest unread would drop a check the author wrote.
        let operations: Vec<&str> = ["validate", "verifyImages", "mutate", "generate"]
            .into_iter()
            .filter(|k| v.get(*k).is_some_and(|x| !x.is_null()))
            .collect();
        if operations.len() > 1 {
            return Err(invalid(
                policy,
                path.to_owned(),
                format!(
                    "a rule has one operation; this one has {}",
                    operations.join(" and ")
                ),
            ));
        }
        let kind = if let Some(val) = v.get("validate").filter(|x| !x.is_null()) {
            RuleKind::Validate(val.clone())
        } else if let Some(vi) = v.get("verifyImages").filter(|x| !x.is_null()) {
            RuleKind::VerifyImages(
                crate::kyverno::verify_images_fields::normalize(vi, path)
                    .map_err(|e| with_policy(e, policy))?,
            )
        } else if v.get("mutate").is_some_and(|x| !x.is_null()) {
            RuleKind::Mutate
        } else if v.get("generate").is_some_and(|x| !x.is_null()) {
            RuleKind::Generate
        } else {
            RuleKind::Empty
        };
        let failure_action = match v.pointer("/validate/failureAction").and_then(Value::as_str) {
            Some(s) => Some(FailureAction::parse(s).ok_or_else(|| {
                invalid(
                    policy,
                    format!("{path}.validate.failureAction"),
                    format!("unknown value {s:?}"),
                )
            })?),
            None => match &kind {
                // `verifyImages[].failureAction` sets the rule's action (Enforce if any
                // entry enforces).
                RuleKind::VerifyImages(list) => {
                    crate::kyverno::verify_images_fields::entries_failure_action(list)
                }
                _ => None,
            },
        };
        let failure_action_overrides = match v.pointer("/validate/failureActionOverrides") {
            Some(o) if !o.is_null() => {
                ActionOverride::parse_list(o, &format!("{path}.validate.failureActionOverrides"))
                    .map_err(|e| with_policy(e, policy))?
            }
            _ => Vec::new(),
        };
        let context = match v.get("context") {
            Some(Value::Array(a)) => a.clone(),
            Some(Value::Null) | None => Vec::new(),
            Some(_) => return Err(invalid(policy, format!("{path}.context"), "must be a list")),
        };
        let cel = match v.pointer("/validate/cel").filter(|c| !c.is_null()) {
            Some(c) => {
                let mut compiled = CompiledCelRule::compile(c)
                    .map_err(|e| invalid(policy, format!("{path}.validate.cel"), e.to_string()))?
                    .with_rule_name(name.clone())
                    .with_default_message(
                        v.pointer("/validate/message")
                            .and_then(Value::as_str)
                            .map(str::to_owned),
                    );
                if let Some(pre) = v.get("celPreconditions").filter(|p| !p.is_null()) {
                    compiled = compiled.with_preconditions(pre).map_err(|e| {
                        invalid(policy, format!("{path}.celPreconditions"), e.to_string())
                    })?;
                }
                Some(Arc::new(compiled))
            }
            None => None,
        };
        let pod_security = match v.pointer("/validate/podSecurity").filter(|c| !c.is_null()) {
            Some(ps) => Some(Arc::new(
                crate::kyverno::pod_security::PodSecurity::from_value(ps).map_err(|e| {
                    invalid(
                        policy,
                        format!("{path}.validate.podSecurity"),
                        e.to_string(),
                    )
                })?,
            )),
            None => None,
        };
        Ok(Rule {
            cel,
            pod_security,
            name,
            match_block,
            exclude,
            preconditions: v.get("preconditions").filter(|x| !x.is_null()).cloned(),
            cel_preconditions: v.get("celPreconditions").filter(|x| !x.is_null()).cloned(),
            context,
            kind,
            failure_action,
            failure_action_overrides,
            allow_existing_violations: v
                .pointer("/validate/allowExistingViolations")
                .and_then(Value::as_bool)
                .unwrap_or(true),
            autogen: false,
            raw: v.clone(),
        })
    }

    /// Every kind the `match` block names.
    fn match_kinds(&self) -> Vec<&KindSelector> {
        self.match_block
            .filters()
            .flat_map(|f| f.kinds.iter())
            .collect()
    }
}

impl ClusterPolicy {
    /// Parses a `kyverno.io/v1` or `v2beta1` ClusterPolicy or Policy. A field Kyverno's
    /// schema does not define is an [`Error::UnknownField`]; a defined field that would
    /// change a decision but is not evaluated here is an [`Error::Unsupported`].
    pub fn from_value(v: &Value) -> Result<ClusterPolicy, Error> {
        crate::schema::check(v, crate::schema::DocKind::ClusterPolicy)?;
        refuse_unread_spec_fields(v)?;
        let kind = v
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let name = v
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("", "metadata.name", "missing"))?
            .to_owned();
        let namespace = if kind == "Policy" {
            Some(
                v.pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or("default")
                    .to_owned(),
            )
        } else {
            None
        };
        let spec = v
            .get("spec")
            .ok_or_else(|| invalid(&name, "spec", "missing"))?;
        let failure_action = match spec.get("validationFailureAction").and_then(Value::as_str) {
            Some(s) => FailureAction::parse(s).ok_or_else(|| {
                invalid(
                    &name,
                    "spec.validationFailureAction",
                    format!("unknown value {s:?}"),
                )
            })?,
            None => FailureAction::Audit,
        };
        let failure_action_overrides = match spec.get("validationFailureActionOverrides") {
            Some(o) if !o.is_null() => {
                ActionOverride::parse_list(o, "spec.validationFailureActionOverrides")
                    .map_err(|e| with_policy(e, &name))?
            }
            _ => Vec::new(),
        };
        let rules_v = spec
            .get("rules")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut rules = Vec::with_capacity(rules_v.len());
        for (i, r) in rules_v.iter().enumerate() {
            let rule = Rule::from_value(r, &name, &format!("spec.rules[{i}]"))?;
            if matches!(rule.kind, RuleKind::Mutate) {
                let spec_on_update = match spec.get("mutateExistingOnPolicyUpdate") {
                    None | Some(Value::Null) => false,
                    Some(Value::Bool(b)) => *b,
                    Some(_) => {
                        return Err(invalid(
                            &name,
                            "spec.mutateExistingOnPolicyUpdate",
                            "must be a boolean",
                        ));
                    }
                };
                crate::kyverno::mutate::existing::check(
                    &r["mutate"],
                    spec_on_update,
                    &name,
                    namespace.as_deref(),
                    &format!("spec.rules[{i}].mutate"),
                )?;
            }
            if matches!(rule.kind, RuleKind::Generate) {
                crate::kyverno::generate::check(
                    &r["generate"],
                    &name,
                    namespace.as_deref(),
                    &format!("spec.rules[{i}].generate"),
                )?;
            }
            rules.push(rule);
        }
        let annotations = string_map(v.pointer("/metadata/annotations"));
        if let Some(c) = annotations.get(AUTOGEN_ANNOTATION) {
            check_autogen_controllers(&name, c)?;
        }
        let mut policy = ClusterPolicy {
            name,
            namespace,
            kind,
            annotations,
            failure_action,
            failure_action_overrides,
            failure_policy_ignore: spec.get("failurePolicy").and_then(Value::as_str)
                == Some("Ignore"),
            background: spec
                .get("background")
                .and_then(Value::as_bool)
                .unwrap_or(true),
            rules,
            raw: v.clone(),
        };
        policy.add_autogen_rules()?;
        Ok(policy)
    }

    /// The name as reports show it: `namespace/name` for a namespaced Policy.
    pub fn display_name(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{ns}/{}", self.name),
            None => self.name.clone(),
        }
    }

    /// The effective failure action of a rule.
    pub fn rule_failure_action(&self, rule: &Rule) -> FailureAction {
        rule.failure_action.unwrap_or(self.failure_action)
    }

    /// The action of `rule` for a resource in `namespace` with `labels`: the rule's
    /// `failureActionOverrides`, then its `failureAction`, then the policy's
    /// `validationFailureActionOverrides`, then `validationFailureAction` (the first that
    /// applies decides, as in Kyverno).
    pub fn rule_failure_action_in(
        &self,
        rule: &Rule,
        namespace: &str,
        labels: &BTreeMap<String, String>,
    ) -> FailureAction {
        if let Some(a) = ActionOverride::first(&rule.failure_action_overrides, namespace, labels) {
            return a;
        }
        if let Some(a) = rule.failure_action {
            return a;
        }
        ActionOverride::first(&self.failure_action_overrides, namespace, labels)
            .unwrap_or(self.failure_action)
    }

    /// Whether a `generate` rule also applies to triggers that existed before the policy
    /// (`generate.generateExisting`, else `spec.generateExisting` or
    /// `spec.generateExistingOnPolicyUpdate`). The engine decides one trigger at a time
    /// either way; a controller that honours the flag evaluates its existing resources when
    /// the policy is installed. `false` for rules that do not generate.
    pub fn generate_existing(&self, rule: &Rule) -> bool {
        matches!(rule.kind, RuleKind::Generate)
            && crate::kyverno::generate::generate_existing(&rule.raw, &self.raw)
    }

    fn can_autogen(&self) -> bool {
        let mut needed = false;
        for rule in &self.rules {
            if matches!(rule.kind, RuleKind::Generate) {
                return false;
            }
            if rule.raw.pointer("/mutate/patchesJson6902").is_some() {
                return false;
            }
            if rule
                .raw
                .pointer("/mutate/foreach")
                .and_then(Value::as_array)
                .is_some_and(|f| f.iter().any(|e| e.get("patchesJson6902").is_some()))
            {
                return false;
            }
            let blocks = std::iter::once(&rule.raw["match"]).chain(rule.raw.get("exclude"));
            for block in blocks {
                let mut descs: Vec<&Value> = vec![block.get("resources").unwrap_or(&Value::Null)];
                for key in ["any", "all"] {
                    if let Some(a) = block.get(key).and_then(Value::as_array) {
                        descs.extend(a.iter().map(|f| f.get("resources").unwrap_or(&Value::Null)));
                    }
                }
                for d in descs {
                    let set = |k: &str| d.get(k).is_some_and(|x| !x.is_null());
                    if set("name")
                        || d.get("names")
                            .and_then(Value::as_array)
                            .is_some_and(|a| !a.is_empty())
                        || set("selector")
                        || set("annotations")
                    {
                        return false;
                    }
                    let kinds: Vec<&str> = d
                        .get("kinds")
                        .and_then(Value::as_array)
                        .map(|a| a.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default();
                    let has_pod = kinds.iter().any(|k| KindSelector::parse(k).kind() == "Pod");
                    if kinds.len() > 1 && has_pod {
                        return false;
                    }
                    if kinds.iter().any(|k| {
                        matches!(
                            *k,
                            "Pod"
                                | "DaemonSet"
                                | "Deployment"
                                | "Job"
                                | "StatefulSet"
                                | "ReplicaSet"
                                | "ReplicationController"
                                | "CronJob"
                        )
                    }) {
                        needed = true;
                    }
                }
            }
        }
        needed
    }

    /// Adds Kyverno's autogen rules (`autogen-<rule>` for Deployments, DaemonSets, Jobs,
    /// StatefulSets, ReplicaSets and ReplicationControllers; `autogen-cronjob-<rule>` for
    /// CronJobs) as Kyverno computes them.
    fn add_autogen_rules(&mut self) -> Result<(), Error> {
        if !self.can_autogen() {
            return Ok(());
        }
        const ALL: &str =
            "CronJob,DaemonSet,Deployment,Job,ReplicaSet,ReplicationController,StatefulSet";
        let controllers = match self.annotations.get(AUTOGEN_ANNOTATION) {
            Some(c) => c.clone(),
            None => ALL.to_owned(),
        };
        if controllers == "none" {
            return Ok(());
        }
        let mut controller_kinds: Vec<&str> = controllers
            .split(',')
            .filter(|c| {
                matches!(
                    *c,
                    "DaemonSet"
                        | "Deployment"
                        | "Job"
                        | "StatefulSet"
                        | "ReplicaSet"
                        | "ReplicationController"
                ) || controllers == "all"
            })
            .collect();
        if controllers == "all" {
            controller_kinds = vec![
                "DaemonSet",
                "Deployment",
                "Job",
                "ReplicaSet",
                "ReplicationController",
                "StatefulSet",
            ];
        }
        controller_kinds.sort_unstable();
        let cronjob = controllers.contains("CronJob") || controllers.contains("all");
        let mut generated = Vec::new();
        for rule in &self.rules {
            if rule.name.starts_with("autogen-") {
                continue;
            }
            let match_kinds = rule.match_kinds();
            if !match_kinds.iter().any(|k| k.kind() == "Pod") {
                continue;
            }
            if let Some(ex) = &rule.exclude {
                let ex_kinds: Vec<_> = ex.filters().flat_map(|f| f.kinds.iter()).collect();
                if !ex_kinds.is_empty() && !ex_kinds.iter().any(|k| k.kind() == "Pod") {
                    continue;
                }
            }
            if controller_kinds.is_empty() {
                continue;
            }
            // A mutate rule with `targets` keeps only its patch in the controller rule, as
            // Kyverno's autogen does: the autogen rule mutates the Pod controller itself.
            let Some(controller_rule) =
                generate_rule(&rule.raw, "template", &controller_kinds, true)
            else {
                continue;
            };
            let mut named = controller_rule.clone();
            named["name"] = json!(autogen_name("autogen", &rule.name));
            let text = rewrite_paths(&named, is_cel(&named), false);
            generated.push(self.autogen_rule(&text)?);
            if cronjob
                && let Some(mut cj) =
                    generate_rule(&controller_rule, "jobTemplate", &["CronJob"], false)
            {
                cj["name"] = json!(autogen_name("autogen-cronjob", &rule.name));
                let text = rewrite_paths(&cj, is_cel(&cj), true);
                generated.push(self.autogen_rule(&text)?);
            }
        }
        self.rules.extend(generated);
        Ok(())
    }

    fn autogen_rule(&self, text: &str) -> Result<Rule, Error> {
        let v: Value = serde_json::from_str(text).map_err(|e| {
            invalid(
                &self.name,
                "spec.rules",
                format!("autogen produced invalid JSON: {e}"),
            )
        })?;
        let mut r = Rule::from_value(&v, &self.name, "spec.rules[autogen]")?;
        r.autogen = true;
        Ok(r)
    }
}

/// The annotation naming the Pod controllers autogen rules are generated for.
const AUTOGEN_ANNOTATION: &str = "pod-policies.kyverno.io/autogen-controllers";

/// Checks `pod-policies.kyverno.io/autogen-controllers`: Kyverno drops a name it does not
/// know, so a misspelled `Deploymnet` would leave Deployments unchecked. Here it is a load
/// error naming the closest controller. An empty item (an empty value, a trailing comma)
/// names no controller and is dropped, as Kyverno drops it.
fn check_autogen_controllers(policy: &str, controllers: &str) -> Result<(), Error> {
    const NAMES: &[&str] = &[
        "all",
        "none",
        "DaemonSet",
        "Deployment",
        "Job",
        "StatefulSet",
        "ReplicaSet",
        "ReplicationController",
        "CronJob",
    ];
    for name in controllers.split(',').filter(|n| !n.is_empty()) {
        if !NAMES.contains(&name) {
            let hint = crate::schema::suggest(name, NAMES)
                .map(|n| format!(" (did you mean `{n}`?)"))
                .unwrap_or_default();
            return Err(invalid(
                policy,
                format!("metadata.annotations[{AUTOGEN_ANNOTATION}]"),
                format!("unknown Pod controller {name:?}{hint}"),
            ));
        }
    }
    Ok(())
}

fn is_cel(rule: &Value) -> bool {
    rule.pointer("/validate/cel").is_some_and(|c| !c.is_null())
}

fn autogen_name(prefix: &str, name: &str) -> String {
    let mut n = format!("{prefix}-{name}");
    if n.len() > 63 {
        let mut end = 63;
        while !n.is_char_boundary(end) {
            end -= 1;
        }
        n.truncate(end);
    }
    n
}

/// Rewrites the kinds of filters naming Pod (any/all), or sets the legacy kinds.
fn rewrite_filters(block: &mut Value, kinds: &[&str], only_pod_filters: bool) {
    let kinds_v = json!(kinds);
    let mut touched = false;
    for key in ["any", "all"] {
        if let Some(Value::Array(filters)) = block.get_mut(key)
            && !filters.is_empty()
        {
            touched = true;
            for f in filters {
                let has_pod = f
                    .pointer("/resources/kinds")
                    .and_then(Value::as_array)
                    .is_some_and(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .any(|k| KindSelector::parse(k).kind() == "Pod")
                    });
                if (has_pod || !only_pod_filters)
                    && let Some(res) = f.get_mut("resources").and_then(Value::as_object_mut)
                {
                    res.insert("kinds".into(), kinds_v.clone());
                }
            }
        }
    }
    if !touched && let Some(obj) = block.as_object_mut() {
        let res = obj.entry("resources").or_insert_with(|| json!({}));
        if let Some(res) = res.as_object_mut() {
            res.insert("kinds".into(), kinds_v);
        }
    }
}

/// Builds the rule for controllers (`tpl_key` = `template`) or CronJobs (`jobTemplate`).
fn generate_rule(
    rule: &Value,
    tpl_key: &str,
    kinds: &[&str],
    only_pod_filters: bool,
) -> Option<Value> {
    let mut r = rule.clone();
    if let Some(m) = r.get_mut("match") {
        rewrite_filters(m, kinds, only_pod_filters);
    }
    if let Some(ex) = r.get_mut("exclude").filter(|e| !e.is_null()) {
        let legacy_kinds = ex
            .pointer("/resources/kinds")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty());
        let has_lists = ["any", "all"].iter().any(|k| {
            ex.get(*k)
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty())
        });
        if has_lists || legacy_kinds {
            rewrite_filters(ex, kinds, only_pod_filters);
        }
    }
    let wrap = |p: &Value| json!({"spec": {tpl_key: p}});
    // Kyverno's autogen keeps only the patch of a mutate rule: `patchStrategicMerge` wrapped
    // in the template, or each foreach's list, context, preconditions and wrapped patch.
    if let Some(mutate) = r.get("mutate").cloned().filter(|v| !v.is_null()) {
        if let Some(p) = mutate.get("patchStrategicMerge").filter(|p| !p.is_null()) {
            r["mutate"] = json!({"patchStrategicMerge": wrap(p)});
            return Some(r);
        }
        if let Some(list) = mutate.get("foreach").and_then(Value::as_array)
            && !list.is_empty()
        {
            let entries: Vec<Value> = list
                .iter()
                .map(|fe| {
                    let mut e = Map::new();
                    for k in ["list", "context", "preconditions"] {
                        if let Some(x) = fe.get(k) {
                            e.insert(k.into(), x.clone());
                        }
                    }
                    e.insert(
                        "patchStrategicMerge".into(),
                        wrap(fe.get("patchStrategicMerge").unwrap_or(&Value::Null)),
                    );
                    Value::Object(e)
                })
                .collect();
            r["mutate"] = json!({"foreach": entries});
            return Some(r);
        }
    }
    if let Some(validate) = r.get("validate").cloned().filter(|v| !v.is_null()) {
        let mut nv = Map::new();
        for k in [
            "message",
            "failureAction",
            "failureActionOverrides",
            "allowExistingViolations",
        ] {
            if let Some(x) = validate.get(k) {
                nv.insert(k.into(), x.clone());
            }
        }
        if let Some(p) = validate.get("pattern").filter(|p| !p.is_null()) {
            nv.insert("pattern".into(), wrap(p));
        } else if let Some(d) = validate.get("deny").filter(|p| !p.is_null()) {
            nv.insert("deny".into(), d.clone());
        } else if let Some(ps) = validate.get("podSecurity").filter(|p| !p.is_null()) {
            nv.insert("podSecurity".into(), ps.clone());
        } else if let Some(Value::Array(ap)) = validate.get("anyPattern") {
            nv.insert(
                "anyPattern".into(),
                Value::Array(ap.iter().map(wrap).collect()),
            );
        } else if let Some(fe) = validate.get("foreach").filter(|p| !p.is_null()) {
            nv.insert("foreach".into(), fe.clone());
        } else if validate.get("cel").is_some_and(|c| !c.is_null()) {
            r["validate"] = validate;
            return Some(r);
        } else {
            return None;
        }
        r["validate"] = Value::Object(nv);
        return Some(r);
    }
    if r.get("verifyImages").is_some_and(|v| !v.is_null()) {
        return Some(r);
    }
    if r.get("mutate").is_some_and(|v| !v.is_null()) {
        return Some(r);
    }
    None
}

/// Kyverno's textual rewrite of `request.object.spec` etc. in an autogen rule.
fn rewrite_paths(rule: &Value, cel: bool, cronjob: bool) -> String {
    let mut text = rule.to_string();
    let tpl = if cronjob {
        "spec.jobTemplate.spec.template"
    } else {
        "spec.template"
    };
    let pairs: Vec<(String, String)> = if cel {
        ["object", "oldObject"]
            .iter()
            .flat_map(|o| {
                [
                    (format!("{o}.spec"), format!("{o}.{tpl}.spec")),
                    (format!("{o}.metadata"), format!("{o}.{tpl}.metadata")),
                ]
            })
            .collect()
    } else {
        ["request.object", "request.oldObject"]
            .iter()
            .flat_map(|o| {
                [
                    (format!("{o}.spec"), format!("{o}.{tpl}.spec")),
                    (format!("{o}.metadata"), format!("{o}.{tpl}.metadata")),
                ]
            })
            .collect()
    };
    for (from, to) in pairs {
        text = text.replace(&from, &to);
    }
    text
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn autogen_rules_are_generated_and_rewritten() {
        let p = ClusterPolicy::from_value(&json!({
            "apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy",
            "metadata": {"name": "p"},
            "spec": {"rules": [{
                "name": "r",
                "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                "validate": {"message": "m", "deny": {"conditions": {"any": [
                    {"key": "{{ request.object.spec.hostNetwork }}", "operator": "Equals", "value": true}]}}}
            }]}
        }))
        .unwrap();
        let names: Vec<_> = p.rules.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["r", "autogen-r", "autogen-cronjob-r"]);
        let cj = p.rules[2].raw.to_string();
        assert!(
            cj.contains("request.object.spec.jobTemplate.spec.template.spec.hostNetwork"),
            "{cj}"
        );
        assert!(!p.rules[1].raw.to_string().contains("jobTemplate"));
    }

    #[test]
    fn a_misspelled_autogen_controller_is_refused() {
        let policy = |controllers: &str| {
            json!({
                "apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy",
                "metadata": {"name": "p", "annotations": {AUTOGEN_ANNOTATION: controllers}},
                "spec": {"rules": [{
                    "name": "r",
                    "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                    "validate": {"message": "m", "pattern": {"spec": {"hostNetwork": false}}}
                }]}
            })
        };
        let p = ClusterPolicy::from_value(&policy("Deployment,CronJob")).unwrap();
        assert_eq!(p.rules.len(), 3);
        // Empty items name nothing: a trailing comma, or an empty value (no autogen rules).
        let p = ClusterPolicy::from_value(&policy("Deployment,")).unwrap();
        assert_eq!(p.rules.len(), 2);
        let p = ClusterPolicy::from_value(&policy("")).unwrap();
        assert_eq!(p.rules.len(), 1);
        // A name with a blank around it is not a controller name Kyverno matches.
        let e = ClusterPolicy::from_value(&policy("CronJob, Deployment")).unwrap_err();
        assert!(e.to_string().contains("did you mean `Deployment`?"), "{e}");
        let e = ClusterPolicy::from_value(&policy("Deploymnet")).unwrap_err();
        assert_eq!(e.code(), "policy.invalid");
        assert!(e.to_string().contains("did you mean `Deployment`?"), "{e}");
    }
}
