//! Kyverno `mutate` rules (`kyverno.io/v1` ClusterPolicy / Policy): `patchStrategicMerge` with
//! anchors, `patchesJson6902`, and `foreach` over either.
//!
//! A rule that matches loads its `context`, checks its `preconditions` (`skip` when they do not
//! hold), substitutes `{{ }}` variables in its patch and applies it to the resource as the
//! previous rules left it: `pass` when the resource changed ("mutated Kind/name"), `skip` when
//! nothing changed ("no patches applied"), `error` when a variable, the context or the patch
//! fails. Rules run in order, each seeing the previous rule's output (also as
//! `request.object`), and policies in order, each seeing the previous policy's output, as
//! Kyverno's engine does; [`json_patch::diff`] turns the final object into the admission
//! response's RFC 6902 patch.
//!
//! Rules with `targets` change other resources than the request's object ("mutate
//! existing"): [`ClusterPolicy::mutate`] leaves them out, as Kyverno's admission step does,
//! and [`ClusterPolicy::mutate_existing`] ([`existing`]) decides what Kyverno's background
//! controller would write to the targets.

pub mod existing;
pub mod json_patch;
pub mod strategic;

pub use existing::{MutateExisting, TargetMutation};

use std::sync::Arc;

use provenance_core::{RuleResult, RuleStatus};
use serde_json::{Value, json};

use crate::Error;
use crate::admission::request::ResourceInput;
use crate::kyverno::conditions;
use crate::kyverno::context::{base_context, set_dotted};
use crate::kyverno::engine::{PolicyResponse, RuleEval, Variables, load_context, resource_ref};
use crate::kyverno::exceptions::PolicyException;
use crate::kyverno::policy::{ClusterPolicy, Rule, RuleKind};
use crate::kyverno::variables;
use crate::lang::jmespath::{self, Env};

/// The outcome of one patch or rule.
enum Outcome {
    Pass(Value),
    Skip(String),
    Error(Box<RuleResult>),
}

impl ClusterPolicy {
    /// Whether the policy has a `mutate` rule.
    pub fn has_mutate(&self) -> bool {
        self.rules
            .iter()
            .any(|r| matches!(r.kind, RuleKind::Mutate))
    }

    /// Applies the policy's `mutate` rules to `input` in order. Returns one result per rule
    /// that matched and the resource as the last rule left it. Rules with `targets` (mutate
    /// existing) give no result here and leave `input` as it is, as in Kyverno's admission
    /// step: [`ClusterPolicy::mutate_existing`] evaluates them.
    pub fn mutate(
        &self,
        input: &ResourceInput,
        vars: &Variables,
        env: &Env,
        exceptions: &[Arc<PolicyException>],
    ) -> (PolicyResponse, Value) {
        let mut current = input.clone();
        let mut rules = Vec::new();
        let applies_ns = match &self.namespace {
            Some(ns) => input.namespace() == ns,
            None => true,
        };
        let apply_one = self.raw.pointer("/spec/applyRules").and_then(Value::as_str) == Some("One");
        if applies_ns {
            for rule in self
                .rules
                .iter()
                .filter(|r| matches!(r.kind, RuleKind::Mutate) && !existing::has_targets(r))
            {
                let Some((result, patched)) =
                    self.mutate_rule(rule, &current, vars, env, exceptions)
                else {
                    continue;
                };
                let passed = result.status == RuleStatus::Pass;
                rules.push(result);
                if let Some(p) = patched {
                    current.object = p;
                }
                if apply_one && passed {
                    break;
                }
            }
        }
        (
            PolicyResponse {
                policy: self.display_name(),
                kind: self.kind.clone(),
                rules,
                generated: Vec::new(),
            },
            current.object,
        )
    }

    fn mutate_rule(
        &self,
        rule: &Rule,
        input: &ResourceInput,
        vars: &Variables,
        env: &Env,
        exceptions: &[Arc<PolicyException>],
    ) -> Option<(RuleResult, Option<Value>)> {
        let ev = RuleEval {
            policy: self,
            rule,
            env,
            vars,
            resource: resource_ref(input),
        };
        match rule.match_block.try_matches(input) {
            Ok(true) => {}
            Ok(false) => return None,
            Err(e) => return Some((ev.error(&e), None)),
        }
        if let Some(ex) = &rule.exclude {
            match ex.try_excludes(input) {
                Ok(false) => {}
                Ok(true) => return None,
                Err(e) => return Some((ev.error(&e), None)),
            }
        }
        let mutate = rule.raw.get("mutate").cloned().unwrap_or(Value::Null);
        // Not in Kyverno's schema (refused as unknown when the policy loads); never ignored.
        if mutate.get("mutateImage").is_some_and(|m| !m.is_null()) {
            return Some((ev.unsupported("mutate.mutateImage"), None));
        }
        let mut ctx = base_context(input);
        vars.apply(&mut ctx, &rule.name);
        let base = ctx.clone();
        let matched: Vec<&PolicyException> = exceptions
            .iter()
            .filter(|e| e.applies(&self.display_name(), &rule.name, input, &base, env))
            .map(|e| e.as_ref())
            .collect();
        if !matched.is_empty() {
            return Some((
                ev.result(
                    RuleStatus::Skip,
                    crate::kyverno::exceptions::skip_message(&matched),
                ),
                None,
            ));
        }
        if let Err(r) = load_context(&ev, &rule.context, &mut ctx, vars, "context", &rule.raw) {
            return Some((*r, None));
        }
        if let Some(pre) = &rule.preconditions {
            match conditions::evaluate_block(pre, &ctx, env, "preconditions") {
                Ok(true) => {}
                Ok(false) => {
                    return Some((ev.result(RuleStatus::Skip, "preconditions not met"), None));
                }
                Err(e) => return Some((ev.error(&e), None)),
            }
        }
        Some(apply(&ev, &mutate, &input.object, &mut ctx))
    }
}

/// A mutate block (its `foreach`, else its patches) applied to `resource`: the rule's result
/// and, when it passed, the patched resource.
fn apply(
    ev: &RuleEval<'_>,
    mutate: &Value,
    resource: &Value,
    ctx: &mut Value,
) -> (RuleResult, Option<Value>) {
    let outcome = match mutate.get("foreach").filter(|f| !f.is_null()) {
        Some(fe) => foreach(ev, fe, resource, ctx, 0),
        None => patch(ev, mutate, resource, ctx, "mutate"),
    };
    match outcome {
        Outcome::Pass(patched) => {
            let msg = mutated_message(&patched);
            (ev.result(RuleStatus::Pass, msg), Some(patched))
        }
        Outcome::Skip(m) => (ev.result(RuleStatus::Skip, m), None),
        Outcome::Error(r) => (*r, None),
    }
}

fn mutated_message(r: &Value) -> String {
    let s = |p: &str| r.pointer(p).and_then(Value::as_str).unwrap_or_default();
    match s("/metadata/namespace") {
        "" => format!("mutated {}/{}", s("/kind"), s("/metadata/name")),
        ns => format!(
            "mutated {}/{} in namespace {ns}",
            s("/kind"),
            s("/metadata/name")
        ),
    }
}

/// Substitutes the variables of one patch block (`patchStrategicMerge` or
/// `patchesJson6902`) and applies it to `resource`.
fn patch(ev: &RuleEval<'_>, block: &Value, resource: &Value, ctx: &Value, at: &str) -> Outcome {
    let err = |e: &Error| Outcome::Error(Box::new(ev.error(e)));
    let psm = block.get("patchStrategicMerge").filter(|p| !p.is_null());
    let json6902 = block
        .get("patchesJson6902")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    let patched = if let Some(p) = psm {
        let p = match crate::kyverno::engine::subst(
            p,
            ctx,
            ev.env,
            &format!("{at}.patchStrategicMerge"),
        ) {
            Ok(p) => p,
            Err(e) => return err(&e),
        };
        match strategic::apply(resource, &p) {
            Ok(Some(v)) => v,
            Ok(None) => return Outcome::Skip("no patches applied".into()),
            Err(e) => return err(&e),
        }
    } else if let Some(text) = json6902 {
        let field = format!("{at}.patchesJson6902");
        let text = match variables::substitute_str_with(text, ctx, ev.env, &field) {
            Ok(Value::String(s)) => s,
            Ok(other) => other.to_string(),
            Err(e) => return err(&e),
        };
        let ops = match json_patch::parse(&text, &field) {
            Ok(o) => o,
            Err(e) => return err(&e),
        };
        match json_patch::apply(resource, &ops, &field) {
            Ok(v) => v,
            Err(e) => return err(&e),
        }
    } else {
        return err(&Error::InvalidPolicy {
            policy: ev.policy.name.clone(),
            path: at.to_owned(),
            reason: "empty mutate rule: no patchStrategicMerge, patchesJson6902 or foreach".into(),
        });
    };
    if !patched.is_object() {
        return err(&Error::Patch {
            field: at.to_owned(),
            reason: "the patched resource is not an object".into(),
        });
    }
    if patched == *resource {
        Outcome::Skip("no patches applied".into())
    } else {
        Outcome::Pass(patched)
    }
}

/// `mutate.foreach`: each entry runs over its list, each seeing the previous entry's output.
fn foreach(
    ev: &RuleEval<'_>,
    entries: &Value,
    resource: &Value,
    ctx: &mut Value,
    depth: usize,
) -> Outcome {
    let Some(entries) = entries.as_array() else {
        return Outcome::Error(Box::new(ev.error(&Error::InvalidPolicy {
            policy: ev.policy.name.clone(),
            path: "mutate.foreach".into(),
            reason: "must be a list".into(),
        })));
    };
    if depth > 16 {
        return Outcome::Error(Box::new(ev.error(&Error::InvalidPolicy {
            policy: ev.policy.name.clone(),
            path: "mutate.foreach".into(),
            reason: "foreach nested deeper than 16 levels".into(),
        })));
    }
    let mut current = resource.clone();
    let mut applied = 0usize;
    for (fi, fe) in entries.iter().enumerate() {
        let list = match crate::kyverno::engine::foreach_list(fe, ctx, ev.env) {
            Ok(jmespath::QueryResult::Value(Value::Array(a))) => a,
            Ok(jmespath::QueryResult::Value(other)) => vec![other],
            Ok(jmespath::QueryResult::NotFound { .. }) => vec![Value::Null],
            Err(e) => return Outcome::Error(Box::new(ev.error(&e))),
        };
        match elements(ev, fe, fi, &list, &current, ctx, depth) {
            Outcome::Error(r) => return Outcome::Error(r),
            Outcome::Skip(_) => {}
            Outcome::Pass(p) => {
                applied += 1;
                current = p;
                set_dotted(ctx, "request.object", current.clone());
            }
        }
    }
    if applied == 0 {
        Outcome::Skip(format!("{applied} elements processed"))
    } else {
        Outcome::Pass(current)
    }
}

/// The most elements one mutate `foreach` patches. Every element's patch produces the whole
/// resource again, so the cost grows with the square of the list: a list longer than this (no
/// real Pod has a thousand containers) is an `error`, not minutes of CPU per request.
pub const MAX_FOREACH_ELEMENTS: usize = 1024;

fn elements(
    ev: &RuleEval<'_>,
    fe: &Value,
    fi: usize,
    list: &[Value],
    resource: &Value,
    ctx: &Value,
    depth: usize,
) -> Outcome {
    if list.len() > MAX_FOREACH_ELEMENTS {
        return Outcome::Error(Box::new(ev.error(&Error::InvalidPolicy {
            policy: ev.policy.name.clone(),
            path: format!("mutate.foreach[{fi}].list"),
            reason: format!(
                "{} elements, more than the {MAX_FOREACH_ELEMENTS} a mutate foreach patches (each element's patch rewrites the whole resource)",
                list.len()
            ),
        })));
    }
    let psm = fe.get("patchStrategicMerge").is_some_and(|p| !p.is_null());
    let reverse = match fe.get("order").and_then(Value::as_str) {
        Some("Descending") => true,
        Some(_) => false,
        None => psm,
    };
    let mut order: Vec<usize> = (0..list.len()).collect();
    if reverse {
        order.reverse();
    }
    let mut patched = resource.clone();
    for index in order {
        let element = &list[index];
        if element.is_null() {
            continue;
        }
        let mut c = ctx.clone();
        if let Some(obj) = c.as_object_mut() {
            obj.insert("element".into(), element.clone());
            obj.insert("elementIndex".into(), json!(index));
            obj.insert(format!("element{depth}"), element.clone());
            obj.insert(format!("elementIndex{depth}"), json!(index));
        }
        if let Some(entries) = fe.get("context").and_then(Value::as_array)
            && let Err(r) = load_context(
                ev,
                entries,
                &mut c,
                ev.vars,
                &format!("mutate.foreach[{fi}].context"),
                fe,
            )
        {
            return Outcome::Error(r);
        }
        if let Some(pre) = fe.get("preconditions").filter(|p| !p.is_null()) {
            match conditions::evaluate_block(pre, &c, ev.env, "mutate.foreach.preconditions") {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => return Outcome::Error(Box::new(ev.error(&e))),
            }
        }
        let out = match fe.get("foreach").filter(|n| !n.is_null()) {
            Some(nested) => foreach(ev, nested, &patched, &mut c, depth + 1),
            None => patch(ev, fe, &patched, &c, &format!("mutate.foreach[{fi}]")),
        };
        match out {
            Outcome::Error(r) => return Outcome::Error(r),
            Outcome::Skip(_) => {}
            Outcome::Pass(p) => patched = p,
        }
    }
    if patched == *resource {
        Outcome::Skip("no patches applied".into())
    } else {
        Outcome::Pass(patched)
    }
}
