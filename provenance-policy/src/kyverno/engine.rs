//! Evaluating ClusterPolicy / Policy rules against one resource.
//!
//! For each rule: `match`/`exclude` decide whether it applies (no result when it does not, as
//! Kyverno reports nothing for rules that do not match); `context` entries are loaded;
//! `preconditions` decide `skip`; then the rule body decides `pass`, `fail` or `error`.
//! `mutate` rules run first ([`crate::kyverno::mutate`]): [`ClusterPolicy::evaluate_prepared`]
//! applies them and validates the mutated object, unless the caller ran the mutation phase itself
//! ([`Prepared::without_mutation`]).
//! Context entries that read the cluster (`configMap`, `apiCall`, `globalReference`) are
//! answered by the [`ClusterData`](crate::admission::cluster::ClusterData) in the [`Env`]; a
//! look-up it cannot answer makes the rule an `error` with the look-up's code.
//! `generate` rules produce the resources Kyverno would create ([`crate::kyverno::generate`]),
//! listed in [`PolicyResponse::generated`].
//! Features this engine does not implement (cluster context entries without cluster data, `imageRegistry` entries, manifests) produce an `error` result whose
//! reason has the code `policy.unsupported`: never a pass.

use provenance_core::{Reason, ResourceRef, RuleResult, RuleStatus};
use serde_json::{Map, Value, json};

use crate::Error;
use crate::admission::request::ResourceInput;
use crate::kyverno::conditions;
use crate::kyverno::context::{base_context, has_dotted, set_dotted};
use crate::kyverno::pattern::{self, PatternOutcome};
use crate::kyverno::policy::{ClusterPolicy, Rule, RuleKind};
use crate::kyverno::variables;
use crate::lang::jmespath::{self, Env};

/// Extra variables for evaluation: values files of `kyverno test`, or a caller's own.
#[derive(Debug, Clone, Default)]
pub struct Variables {
    /// Dotted keys set in the context of every rule (`request.operation`, `foo.bar`).
    pub global: Vec<(String, Value)>,
    /// Per rule name: dotted keys set for that rule only.
    pub per_rule: Vec<(String, Vec<(String, Value)>)>,
}

impl Variables {
    pub(crate) fn apply(&self, ctx: &mut Value, rule: &str) {
        for (k, v) in &self.global {
            set_dotted(ctx, k, v.clone());
        }
        for (r, vars) in &self.per_rule {
            let base = rule
                .strip_prefix("autogen-cronjob-")
                .or_else(|| rule.strip_prefix("autogen-"))
                .unwrap_or(rule);
            if r == rule || r == base {
                for (k, v) in vars {
                    set_dotted(ctx, k, v.clone());
                }
            }
        }
    }

    /// Whether no variable is set.
    pub fn is_empty(&self) -> bool {
        self.global.is_empty() && self.per_rule.is_empty()
    }

    /// Whether the values set `key` or a field under it (`key.data.env`).
    fn provides(&self, key: &str, rule: &str) -> bool {
        let under = |k: &str| k == key || k.strip_prefix(key).is_some_and(|r| r.starts_with('.'));
        let base = rule
            .strip_prefix("autogen-cronjob-")
            .or_else(|| rule.strip_prefix("autogen-"))
            .unwrap_or(rule);
        self.global.iter().any(|(k, _)| under(k))
            || self
                .per_rule
                .iter()
                .any(|(r, vars)| (r == rule || r == base) && vars.iter().any(|(k, _)| under(k)))
    }
}

/// The response of one policy for one resource: a result per rule that applied.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct PolicyResponse {
    /// Policy name as reports show it.
    pub policy: String,
    /// Policy kind.
    pub kind: String,
    /// One result per applicable rule.
    pub rules: Vec<RuleResult>,
    /// The resources the policy's `generate` rules produce for this resource (see
    /// [`crate::kyverno::generate`]); the engine creates nothing itself.
    pub generated: Vec<crate::kyverno::generate::GeneratedResource>,
}

impl PolicyResponse {
    /// The response of policy `policy` (of kind `kind`) with these rule results and nothing
    /// generated.
    pub fn new(policy: impl Into<String>, kind: impl Into<String>, rules: Vec<RuleResult>) -> Self {
        PolicyResponse {
            policy: policy.into(),
            kind: kind.into(),
            rules,
            generated: Vec::new(),
        }
    }
}

/// Code of the reason attached to results of unsupported features.
pub const UNSUPPORTED: &str = "policy.unsupported";

pub(crate) fn resource_ref(input: &ResourceInput) -> ResourceRef {
    ResourceRef {
        api_version: input
            .object
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        kind: input.kind().to_owned(),
        namespace: input.namespace().to_owned(),
        name: input.name().to_owned(),
    }
}

pub(crate) struct RuleEval<'a> {
    pub(crate) policy: &'a ClusterPolicy,
    pub(crate) rule: &'a Rule,
    pub(crate) env: &'a Env,
    /// The caller's values (a context entry they provide is not loaded).
    pub(crate) vars: &'a Variables,
    pub(crate) resource: ResourceRef,
}

/// A request's JMESPath context document, built once and lent to each rule in turn: a rule
/// reads it, or adds to it (context entries, the caller's variables, `foreach` element keys),
/// and it is restored when the rule is done, so no rule copies the request.
#[derive(Debug)]
pub(crate) struct Doc {
    cell: std::sync::Mutex<Option<Value>>,
    /// The document's own top-level keys (what a rule adds beside them is removed).
    keys: Vec<String>,
    /// The document as built, to check in debug builds that every loan restores it.
    #[cfg(debug_assertions)]
    pristine: Value,
}

impl Doc {
    fn new(doc: Value) -> Self {
        Doc {
            keys: doc
                .as_object()
                .map(|o| o.keys().cloned().collect())
                .unwrap_or_default(),
            #[cfg(debug_assertions)]
            pristine: doc.clone(),
            cell: std::sync::Mutex::new(Some(doc)),
        }
    }

    /// Lends the document. `written`: its keys under which the borrower may write; their
    /// values are saved (copied) now and put back on return. `rebuild` makes the document
    /// anew should it be out on another loan (the engine never lends it twice at once).
    fn lend(&self, written: Vec<String>, rebuild: impl FnOnce() -> Value) -> Lent<'_> {
        let value = self
            .cell
            .lock()
            .ok()
            .and_then(|mut c| c.take())
            .unwrap_or_else(rebuild);
        let saved = written
            .into_iter()
            .map(|k| {
                let v = value.get(&k).cloned();
                (k, v)
            })
            .collect();
        Lent {
            doc: self,
            value,
            saved,
        }
    }
}

/// The context document on loan from a [`Doc`]; restored and given back when dropped.
pub(crate) struct Lent<'d> {
    doc: &'d Doc,
    value: Value,
    saved: Vec<(String, Option<Value>)>,
}

impl std::ops::Deref for Lent<'_> {
    type Target = Value;
    fn deref(&self) -> &Value {
        &self.value
    }
}

impl std::ops::DerefMut for Lent<'_> {
    fn deref_mut(&mut self) -> &mut Value {
        &mut self.value
    }
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        let mut value = std::mem::take(&mut self.value);
        let Some(obj) = value.as_object_mut() else {
            return;
        };
        obj.retain(|k, _| self.doc.keys.contains(k));
        for (k, v) in self.saved.drain(..) {
            match v {
                Some(v) => {
                    obj.insert(k, v);
                }
                None => {
                    obj.remove(&k);
                }
            }
        }
        #[cfg(debug_assertions)]
        debug_assert!(
            value == self.doc.pristine,
            "a lent context came back changed"
        );
        // Given back only when it is the document again (otherwise the next loan rebuilds).
        if obj_len(&value) == self.doc.keys.len()
            && let Ok(mut c) = self.doc.cell.lock()
        {
            *c = Some(value);
        }
    }
}

fn obj_len(v: &Value) -> usize {
    v.as_object().map_or(0, serde_json::Map::len)
}

impl RuleEval<'_> {
    pub(crate) fn result(&self, status: RuleStatus, message: impl Into<String>) -> RuleResult {
        RuleResult::new(
            self.policy.display_name(),
            self.rule.name.clone(),
            self.resource.clone(),
            status,
            message,
        )
    }

    pub(crate) fn error(&self, e: &Error) -> RuleResult {
        self.result(RuleStatus::Error, e.to_string())
            .with_reason(Reason::new(e.code(), e.to_string()).about(self.resource.to_string()))
    }

    pub(crate) fn unsupported(&self, field: &str) -> RuleResult {
        let msg = format!("unsupported: {field}");
        self.result(RuleStatus::Error, msg.clone())
            .with_reason(Reason::new(UNSUPPORTED, msg).at(field.to_owned()))
    }
}

/// A request prepared once for every policy that evaluates it: the JMESPath context document
/// and the CEL view are built once, not per policy or rule.
pub struct Prepared<'a> {
    input: &'a ResourceInput,
    doc: Doc,
    cel: std::sync::OnceLock<crate::lang::cel::PolicyInput<'a>>,
    images: Option<&'a crate::kyverno::verify_images::VerifyImagesContext<'a>>,
    exceptions: Vec<std::sync::Arc<crate::kyverno::exceptions::PolicyException>>,
    outcomes: std::sync::Mutex<Vec<crate::kyverno::verify_images::VerifyOutcome>>,
    /// The resource's image sites, parsed once for every `verifyImages` rule.
    sites: std::sync::OnceLock<crate::kyverno::verify_images::ParsedSites>,
    /// Whether `mutate` rules are left out (the caller ran the mutation phase, or the object
    /// is the one a validating webhook receives, already mutated).
    skip_mutation: bool,
}

impl<'a> Prepared<'a> {
    /// Prepares `input`.
    pub fn new(input: &'a ResourceInput) -> Self {
        Prepared {
            input,
            doc: Doc::new(base_context(input)),
            cel: std::sync::OnceLock::new(),
            images: None,
            exceptions: Vec::new(),
            outcomes: std::sync::Mutex::new(Vec::new()),
            sites: std::sync::OnceLock::new(),
            skip_mutation: false,
        }
    }

    /// Leaves `mutate` rules out: no result for them, and validation sees the input as it
    /// is. For a caller that ran [`ClusterPolicy::mutate`] itself (and validates its
    /// output), or a validating webhook, whose object is already mutated.
    pub fn without_mutation(mut self) -> Self {
        self.skip_mutation = true;
        self
    }

    /// Supplies the evidence and verifier `verifyImages` rules need.
    pub fn with_images(
        mut self,
        cx: &'a crate::kyverno::verify_images::VerifyImagesContext<'a>,
    ) -> Self {
        self.images = Some(cx);
        self
    }

    /// Supplies the PolicyExceptions (`kyverno.io`) in force.
    pub fn with_exceptions(
        mut self,
        exceptions: Vec<std::sync::Arc<crate::kyverno::exceptions::PolicyException>>,
    ) -> Self {
        self.exceptions = exceptions;
        self
    }

    /// The `verifyImages` outcomes (with their digest patches) recorded so far.
    pub fn image_outcomes(&self) -> Vec<crate::kyverno::verify_images::VerifyOutcome> {
        self.outcomes.lock().map(|o| o.clone()).unwrap_or_default()
    }

    /// The resource input.
    pub fn input(&self) -> &'a ResourceInput {
        self.input
    }

    /// The CEL view of the input (built on first use).
    pub fn cel_input(&self) -> &crate::lang::cel::PolicyInput<'a> {
        self.cel
            .get_or_init(|| crate::lang::cel::PolicyInput::from(self.input))
    }
}

impl ClusterPolicy {
    /// Evaluates every rule of the policy against `input`.
    pub fn evaluate(&self, input: &ResourceInput, vars: &Variables, env: &Env) -> PolicyResponse {
        self.evaluate_prepared(&Prepared::new(input), vars, env)
    }

    /// Evaluates every rule of the policy against a prepared request.
    pub fn evaluate_prepared(
        &self,
        prepared: &Prepared<'_>,
        vars: &Variables,
        env: &Env,
    ) -> PolicyResponse {
        let input = prepared.input;
        // Mutate rules first, as Kyverno applies them: validation then sees the patched
        // object, and the mutate results come first.
        if !prepared.skip_mutation && self.has_mutate() {
            let (mut mutated, object) = self.mutate(input, vars, env, &prepared.exceptions);
            let patched_input = input.with_object(object);
            let mut inner = Prepared::new(&patched_input)
                .with_exceptions(prepared.exceptions.clone())
                .without_mutation();
            inner.images = prepared.images;
            let validated = self.evaluate_prepared(&inner, vars, env);
            if let Ok(mut o) = prepared.outcomes.lock() {
                o.extend(inner.image_outcomes());
            }
            mutated.rules.extend(validated.rules);
            mutated.generated.extend(validated.generated);
            return mutated;
        }
        let mut rules = Vec::new();
        let mut generated = Vec::new();
        let applies_ns = match &self.namespace {
            Some(ns) => input.namespace() == ns,
            None => true,
        };
        if applies_ns {
            for rule in &self.rules {
                if let Some(r) = self.evaluate_rule(rule, prepared, vars, env, &mut generated) {
                    rules.push(r);
                }
            }
        }
        // Policies annotated `policies.kyverno.io/scored: "false"` report failures as warnings.
        if self
            .annotations
            .get("policies.kyverno.io/scored")
            .map(String::as_str)
            == Some("false")
        {
            for r in &mut rules {
                if r.status == RuleStatus::Fail {
                    r.status = RuleStatus::Warn;
                }
            }
        }
        PolicyResponse {
            policy: self.display_name(),
            kind: self.kind.clone(),
            rules,
            generated,
        }
    }

    fn evaluate_rule(
        &self,
        rule: &Rule,
        prepared: &Prepared<'_>,
        vars: &Variables,
        env: &Env,
        generated: &mut Vec<crate::kyverno::generate::GeneratedResource>,
    ) -> Option<RuleResult> {
        let input = prepared.input;
        let ev = RuleEval {
            policy: self,
            rule,
            env,
            vars,
            resource: resource_ref(input),
        };
        // Match and exclude fail closed: when the outcome depends on facts the caller could
        // not supply (a namespace's labels, the requester's roles), the rule is an error.
        match rule.match_block.try_matches(input) {
            Ok(true) => {}
            Ok(false) => return None,
            Err(e) => return Some(ev.error(&e)),
        }
        if let Some(ex) = &rule.exclude {
            match ex.try_excludes(input) {
                Ok(false) => {}
                Ok(true) => return None,
                Err(e) => return Some(ev.error(&e)),
            }
        }
        match &rule.kind {
            RuleKind::Validate(_) | RuleKind::VerifyImages(_) | RuleKind::Generate => {}
            // Applied by `ClusterPolicy::mutate` before validation.
            RuleKind::Mutate => return None,
            RuleKind::Empty => return Some(ev.unsupported("rule without validate")),
        }
        // The request's context document, on loan for this rule (see `Doc`).
        let mut ctx = prepared
            .doc
            .lend(written_keys(rule, vars, &prepared.doc.keys), || {
                base_context(input)
            });
        // PolicyExceptions: an exception that names this rule and matches skips it (for
        // podSecurity rules, exceptions with podSecurity entries narrow the checks instead).
        let matched: Vec<&crate::kyverno::exceptions::PolicyException> = prepared
            .exceptions
            .iter()
            .filter(|e| e.applies(&self.display_name(), &rule.name, input, &ctx, env))
            .map(|e| e.as_ref())
            .collect();
        if let Some(pss) = &rule.pod_security {
            use crate::kyverno::pod_security::{PodSecurity, PssOutcome};
            let out = crate::kyverno::exceptions::check_pod_security(pss, &input.object, &matched);
            let (status, message) = match &out {
                PssOutcome::Pass => (
                    RuleStatus::Pass,
                    PodSecurity::rule_message(&rule.name, &out),
                ),
                PssOutcome::Fail { .. } => (
                    RuleStatus::Fail,
                    PodSecurity::rule_message(&rule.name, &out),
                ),
                PssOutcome::Excepted => (
                    RuleStatus::Skip,
                    crate::kyverno::exceptions::skip_message(&matched),
                ),
                _ => (
                    RuleStatus::Error,
                    PodSecurity::rule_message(&rule.name, &out),
                ),
            };
            return Some(ev.result(status, message));
        }
        if !matched.is_empty() {
            return Some(ev.result(
                RuleStatus::Skip,
                crate::kyverno::exceptions::skip_message(&matched),
            ));
        }
        // The image sites a verifyImages rule reads; a rule that covers none of the
        // resource's images has no response at all, before its context or preconditions.
        let custom_sites;
        let sites = match &rule.kind {
            RuleKind::VerifyImages(vi) => {
                let sites = match rule.raw.get("imageExtractors").filter(|x| !x.is_null()) {
                    Some(x) => {
                        custom_sites = crate::kyverno::verify_images::ParsedSites::for_rule(
                            &input.object,
                            Some(x),
                        );
                        &custom_sites
                    }
                    None => prepared.sites.get_or_init(|| {
                        crate::kyverno::verify_images::ParsedSites::of(&input.object)
                    }),
                };
                if !sites.covered_by(vi) {
                    return None;
                }
                Some(sites)
            }
            _ => None,
        };
        if rule.cel_preconditions.is_some() && rule.cel.is_none() {
            return Some(ev.unsupported("celPreconditions on a rule without validate.cel"));
        }
        if !(rule.context.is_empty() && vars.is_empty()) {
            vars.apply(&mut ctx, &rule.name);
            if let Err(r) = load_context(&ev, &rule.context, &mut ctx, vars, "context", &rule.raw) {
                return Some(*r);
            }
        }
        if let Some(pre) = &rule.preconditions {
            match conditions::evaluate_block(pre, &ctx, env, "preconditions") {
                Ok(true) => {}
                Ok(false) => return Some(ev.result(RuleStatus::Skip, "preconditions not met")),
                Err(e) => return Some(ev.error(&e)),
            }
        }
        match &rule.kind {
            RuleKind::Validate(validate) => Some(validate_rule(&ev, validate, prepared, &mut ctx)),
            RuleKind::Generate => Some(crate::kyverno::generate::run(&ev, &ctx, input, generated)),
            RuleKind::VerifyImages(vi) => {
                let Some(cx) = prepared.images else {
                    return Some(ev.unsupported(
                        "verifyImages without image evidence (supply a VerifyImagesContext)",
                    ));
                };
                let Some(sites) = sites else {
                    return Some(ev.unsupported("verifyImages rule without image sites"));
                };
                let out = cx.evaluate_sites(&self.name, &rule.name, vi, sites, &ctx, env);
                let mut r = ev.result(out.status, out.message.clone());
                if out.status == RuleStatus::Error {
                    r = r.with_reason(Reason::new(
                        "policy.verify_images.error",
                        out.message.clone(),
                    ));
                } else if out.status == RuleStatus::Fail {
                    r = r.with_reason(Reason::new(
                        "policy.verify_images.failed",
                        out.message.clone(),
                    ));
                }
                // Then one reason per image with the specific check that failed.
                if matches!(out.status, RuleStatus::Fail | RuleStatus::Error) {
                    for reason in &out.reasons {
                        r = r.with_reason(reason.clone());
                    }
                }
                if let Ok(mut o) = prepared.outcomes.lock() {
                    o.push(out);
                }
                Some(r)
            }
            _ => None,
        }
    }
}

/// Loads `context` entries into the document. Entries whose name the caller supplied as a
/// variable are not loaded (as `kyverno test` does).
///
/// Cluster look-ups (`configMap`, `apiCall`, `globalReference`) ask the [`Env`]'s
/// [`ClusterData`](crate::admission::cluster::ClusterData). Kyverno loads them lazily, so a failed
/// look-up only matters where it is used: a later `variable` entry whose `jmesPath` reads it takes
/// its `default` (an error without one), and a rule `body` (the rule or foreach entry, its context
/// aside) that mentions it errors. An unused failed look-up is harmless, as in Kyverno.
pub(crate) fn load_context(
    ev: &RuleEval<'_>,
    entries: &[Value],
    ctx: &mut Value,
    vars: &Variables,
    path: &str,
    body: &Value,
) -> Result<(), Box<RuleResult>> {
    let mut failed: Vec<(String, Error)> = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let name = entry
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let epath = format!("{path}[{i}]");
        if name.is_empty() {
            return Err(Box::new(ev.error(&Error::InvalidPolicy {
                policy: ev.policy.name.clone(),
                path: epath,
                reason: "context entry without a name".into(),
            })));
        }
        if vars.provides(name, &ev.rule.name) && has_dotted(ctx, name) {
            continue;
        }
        // An entry that reads a failed look-up fails with it (a variable's jmesPath falls back
        // to its default first).
        let reads_failed = failed
            .iter()
            .find(|(n, _)| mentions(&strip_context(entry).to_string(), n));
        if let Some(var) = entry.get("variable") {
            if let Some((n, e)) = reads_failed {
                let in_jmespath = var
                    .get("jmesPath")
                    .and_then(Value::as_str)
                    .is_some_and(|j| mentions(j, n));
                let elsewhere = mentions(
                    &var.get("value").map(Value::to_string).unwrap_or_default(),
                    n,
                ) || mentions(
                    &var.get("default").map(Value::to_string).unwrap_or_default(),
                    n,
                );
                match var.get("default").filter(|d| !d.is_null()) {
                    Some(_) if in_jmespath && !elsewhere => {
                        let fallback = json!({"default": var["default"]});
                        let value = eval_variable_entry(name, &fallback, ctx, ev.env, &epath)
                            .map_err(|e| Box::new(ev.error(&e)))?;
                        set_dotted(ctx, name, value);
                        continue;
                    }
                    _ => return Err(Box::new(ev.error(e))),
                }
            }
            let value = eval_variable_entry(name, var, ctx, ev.env, &epath)
                .map_err(|e| Box::new(ev.error(&e)))?;
            set_dotted(ctx, name, value);
            continue;
        }
        let kind = ["configMap", "apiCall", "imageRegistry", "globalReference"]
            .into_iter()
            .find(|k| entry.get(*k).is_some())
            .unwrap_or("unknown context entry");
        let Some(cluster) = ev.env.cluster.as_deref() else {
            return Err(Box::new(ev.unsupported(&format!(
                "{epath}.{kind} ({name}) without a supplied value"
            ))));
        };
        if let Some((_, e)) = reads_failed {
            return Err(Box::new(ev.error(e)));
        }
        let kpath = format!("{epath}.{kind}");
        let loaded = match kind {
            "configMap" => load_config_map(ev, cluster, &entry[kind], ctx, &kpath),
            "apiCall" => load_api_call(ev, cluster, &entry[kind], ctx, &kpath),
            "globalReference" => load_global_reference(ev, cluster, &entry[kind], ctx, &kpath),
            _ => {
                return Err(Box::new(ev.unsupported(&format!(
                    "{epath}.{kind} ({name}) without a supplied value"
                ))));
            }
        };
        match loaded {
            Ok(value) => set_dotted(ctx, name, value),
            Err(Lookup::Unsupported(why)) => {
                return Err(Box::new(
                    ev.unsupported(&format!("{kpath} ({name}): {why}")),
                ));
            }
            Err(Lookup::Failed(source)) => failed.push((
                name.to_owned(),
                Error::ContextLookup {
                    path: kpath,
                    name: name.to_owned(),
                    source,
                },
            )),
            Err(Lookup::Error(e)) => return Err(Box::new(ev.error(&e))),
        }
    }
    if !failed.is_empty() {
        let rest = strip_context(body).to_string();
        if let Some((_, e)) = failed.iter().find(|(n, _)| mentions(&rest, n)) {
            return Err(Box::new(ev.error(e)));
        }
    }
    Ok(())
}

/// Why a cluster look-up produced no value.
enum Lookup {
    /// The source has no data of this kind (reported as unsupported, as without a source).
    Unsupported(String),
    /// The look-up failed: an error where the entry is used.
    Failed(crate::admission::cluster::LookupError),
    /// The entry itself is wrong (a variable in it cannot be substituted, a bad jmesPath).
    Error(Error),
}

impl From<crate::admission::cluster::LookupError> for Lookup {
    fn from(e: crate::admission::cluster::LookupError) -> Self {
        match e {
            crate::admission::cluster::LookupError::NotSupplied { .. } => {
                Lookup::Unsupported(e.to_string())
            }
            e => Lookup::Failed(e),
        }
    }
}

/// The value with every `context` field removed (what a rule uses besides its context).
fn strip_context(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| k.as_str() != "context")
                .map(|(k, v)| (k.clone(), strip_context(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_context).collect()),
        other => other.clone(),
    }
}

/// Whether `text` refers to the context entry `name` the way Kyverno's lazy loader decides
/// it: `name` not preceded by a letter, digit or `.`, and followed by a word boundary.
fn mentions(text: &str, name: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    text.match_indices(name).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + name.len()..].chars().next();
        // `\b`: a word character on exactly one side of the end of the name.
        let boundary = name.chars().next_back().is_some_and(word) != after.is_some_and(word);
        !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '.') && boundary
    })
}

fn substituted_string(v: &Value, ctx: &Value, env: &Env, path: &str) -> Result<String, Lookup> {
    match v {
        Value::Null => Ok(String::new()),
        Value::String(s) => match variables::substitute_str_with(s, ctx, env, path) {
            Ok(Value::String(s)) => Ok(s),
            Ok(other) => Err(Lookup::Error(Error::Variable {
                path: path.to_owned(),
                reason: format!("expected a string, got {other}"),
            })),
            Err(e) => Err(Lookup::Error(e)),
        },
        other => Err(Lookup::Error(Error::Variable {
            path: path.to_owned(),
            reason: format!("expected a string, got {other}"),
        })),
    }
}

/// A `configMap` entry: `{"data": ..., "metadata": ...}` of the ConfigMap. An empty
/// namespace is the policy's (a namespaced Policy) or `default`; a namespaced Policy may not
/// read another namespace's ConfigMaps.
fn load_config_map(
    ev: &RuleEval<'_>,
    cluster: &dyn crate::admission::cluster::ClusterData,
    cm: &Value,
    ctx: &Value,
    path: &str,
) -> Result<Value, Lookup> {
    let name = substituted_string(&cm["name"], ctx, ev.env, &format!("{path}.name"))?;
    let mut namespace =
        substituted_string(&cm["namespace"], ctx, ev.env, &format!("{path}.namespace"))?;
    let policy_ns = ev.policy.namespace.as_deref().unwrap_or_default();
    if namespace.is_empty() {
        namespace = if policy_ns.is_empty() {
            "default".into()
        } else {
            policy_ns.to_owned()
        };
    }
    if !policy_ns.is_empty() && namespace != policy_ns {
        return Err(Lookup::Error(Error::InvalidPolicy {
            policy: ev.policy.name.clone(),
            path: format!("{path}.namespace"),
            reason: format!(
                "ConfigMap namespace {namespace:?} is different from the policy namespace {policy_ns:?}"
            ),
        }));
    }
    Ok(cluster.config_map(&namespace, &name)?)
}

/// An `apiCall` entry: a Kubernetes API call (`urlPath`) or a service call (`service.url`),
/// then `jmesPath` over the answer. A failed call takes `default` when there is one.
fn load_api_call(
    ev: &RuleEval<'_>,
    cluster: &dyn crate::admission::cluster::ClusterData,
    call: &Value,
    ctx: &Value,
    path: &str,
) -> Result<Value, Lookup> {
    let method = match call.get("method").and_then(Value::as_str) {
        None | Some("") => "GET".to_owned(),
        Some(m) => m.to_uppercase(),
    };
    if method != "GET" && method != "POST" {
        return Err(Lookup::Error(Error::InvalidPolicy {
            policy: ev.policy.name.clone(),
            path: format!("{path}.method"),
            reason: format!("method {method:?} is not GET or POST"),
        }));
    }
    // `data` is a list of key/value pairs, sent as a JSON object.
    let body = match call.get("data").and_then(Value::as_array) {
        Some(pairs) if !pairs.is_empty() => {
            let mut m = Map::new();
            for (i, p) in pairs.iter().enumerate() {
                let key = p.get("key").and_then(Value::as_str).unwrap_or_default();
                let value = variables::substitute_with(
                    p.get("value").unwrap_or(&Value::Null),
                    ctx,
                    ev.env,
                    &format!("{path}.data[{i}].value"),
                )
                .map_err(Lookup::Error)?;
                m.insert(key.to_owned(), value);
            }
            Some(Value::Object(m))
        }
        _ => None,
    };
    let answer = if let Some(svc) = call.get("service").filter(|s| !s.is_null()) {
        let url = substituted_string(&svc["url"], ctx, ev.env, &format!("{path}.service.url"))?;
        cluster.service_call(&method, &url, body.as_ref())
    } else {
        let url_path =
            substituted_string(&call["urlPath"], ctx, ev.env, &format!("{path}.urlPath"))?;
        if let Some(policy_ns) = ev.policy.namespace.as_deref().filter(|n| !n.is_empty())
            && !stays_in_namespace(&url_path, policy_ns)
        {
            return Err(Lookup::Error(Error::InvalidPolicy {
                policy: ev.policy.name.clone(),
                path: format!("{path}.urlPath"),
                reason: format!("{url_path} does not stay in the policy namespace {policy_ns:?}"),
            }));
        }
        cluster.api_call(&method, &url_path, body.as_ref())
    };
    let data = match answer {
        Ok(d) => d,
        Err(e) => {
            return match call.get("default").filter(|d| !d.is_null()) {
                // A failed call takes the default as is (no jmesPath), as Kyverno's does.
                Some(d) => Ok(d.clone()),
                None => Err(e.into()),
            };
        }
    };
    project(ev, call, data, ctx, path)
}

/// Whether a namespaced Policy's `apiCall.urlPath` reads only its own namespace: objects in
/// it, or the Namespace object itself. Decided on the path as parsed for the look-up
/// ([`ApiPath`](crate::admission::cluster::ApiPath)), never on its text: a path whose
/// `namespaces` segment is not where the API server reads the namespace (a group named
/// `namespaces`, an empty segment) is refused.
fn stays_in_namespace(url_path: &str, policy_ns: &str) -> bool {
    match crate::admission::cluster::ApiPath::parse(url_path) {
        Ok(p) => match &p.namespace {
            Some(ns) => ns == policy_ns,
            None => {
                p.group.is_empty()
                    && p.resource == "namespaces"
                    && p.name.as_deref() == Some(policy_ns)
            }
        },
        Err(_) => false,
    }
}

/// `data` through the entry's `jmesPath` (variables substituted first), or as is without one.
fn project(
    ev: &RuleEval<'_>,
    entry: &Value,
    data: Value,
    ctx: &Value,
    path: &str,
) -> Result<Value, Lookup> {
    match entry
        .get("jmesPath")
        .and_then(Value::as_str)
        .filter(|j| !j.is_empty())
    {
        None => Ok(data),
        Some(j) => {
            let expr = substituted_string(&json!(j), ctx, ev.env, &format!("{path}.jmesPath"))?;
            jmespath::search_with(&expr, &data, ev.env).map_err(Lookup::Error)
        }
    }
}

/// A `globalReference` entry: `name` is the GlobalContextEntry, optionally `.projection`;
/// `jmesPath` applies to the data.
fn load_global_reference(
    ev: &RuleEval<'_>,
    cluster: &dyn crate::admission::cluster::ClusterData,
    gr: &Value,
    ctx: &Value,
    path: &str,
) -> Result<Value, Lookup> {
    let full = substituted_string(&gr["name"], ctx, ev.env, &format!("{path}.name"))?;
    let (entry, projection) = match full.split_once('.') {
        Some((e, p)) => (e, p.split('.').next().unwrap_or_default()),
        None => (full.as_str(), ""),
    };
    let mut data = cluster.global_context(entry)?;
    if !projection.is_empty() {
        data = match data.get(projection) {
            Some(v) if data.is_object() => v.clone(),
            _ => {
                return Err(Lookup::Failed(
                    crate::admission::cluster::LookupError::NotFound {
                        what: format!(
                            "projection {projection:?} of global context entry {entry:?}"
                        ),
                    },
                ));
            }
        };
    }
    project(ev, gr, data, ctx, path)
}

/// A context `variable` entry, as Kyverno's variable loader evaluates it: `default` is
/// substituted first (an unresolvable variable in it is an error even when unused); `value`
/// (with `jmesPath` applied to it) or `jmesPath` over the context replaces the default; a
/// `jmesPath` error falls back to the default when there is one. A result that is still null
/// is an error ([`Error::ContextVariableNull`]): Kyverno cannot add the entry and the rule
/// fails to load its context, it never sees a silent null.
fn eval_variable_entry(
    name: &str,
    var: &Value,
    ctx: &Value,
    env: &Env,
    path: &str,
) -> Result<Value, Error> {
    let default = match var.get("default").filter(|d| !d.is_null()) {
        Some(d) => Some(variables::substitute_with(
            d,
            ctx,
            env,
            &format!("{path}.variable.default"),
        )?),
        None => None,
    };
    let expr = match var.get("jmesPath").and_then(Value::as_str) {
        Some(e) if !e.is_empty() => {
            match variables::substitute_str_with(e, ctx, env, &format!("{path}.variable.jmesPath"))?
            {
                Value::String(s) => Some(s),
                other => Some(other.to_string()),
            }
        }
        _ => None,
    };
    let mut output = default.clone().unwrap_or(Value::Null);
    if let Some(v) = var.get("value") {
        let value = variables::substitute_with(v, ctx, env, &format!("{path}.variable.value"))?;
        match &expr {
            Some(expr) => match jmespath::search_with(expr, &value, env) {
                Ok(found) => output = found,
                Err(e) if default.is_none() => return Err(e),
                Err(_) => {}
            },
            None => output = value,
        }
    } else if let Some(expr) = &expr {
        match jmespath::search_with(expr, ctx, env) {
            Ok(found) if !found.is_null() => output = found,
            Ok(_) => {}
            Err(e) if default.is_none() => return Err(e),
            Err(_) => {}
        }
    }
    if output.is_null() {
        return Err(Error::ContextVariableNull {
            path: format!("{path}.variable"),
            name: name.to_owned(),
        });
    }
    Ok(output)
}

fn message_of(ev: &RuleEval<'_>, validate: &Value, ctx: &Value) -> String {
    match validate.get("message").and_then(Value::as_str) {
        Some(m) => match variables::substitute_str_with(m, ctx, ev.env, "validate.message") {
            Ok(Value::String(s)) => s,
            Ok(other) => other.to_string(),
            Err(_) => m.to_owned(),
        },
        None => String::new(),
    }
}

fn validate_rule(
    ev: &RuleEval<'_>,
    validate: &Value,
    prepared: &Prepared<'_>,
    ctx: &mut Value,
) -> RuleResult {
    let input = prepared.input;
    let message = message_of(ev, validate, &*ctx);
    for unsupported in ["manifests", "assert"] {
        if validate.get(unsupported).is_some_and(|v| !v.is_null()) {
            return ev.unsupported(&format!("validate.{unsupported}"));
        }
    }
    if let Some(cel) = &ev.rule.cel {
        let view = crate::lang::cel::RequestView::new(prepared.cel_input());
        let out = cel.evaluate(&view);
        let mut r = ev.result(out.status, out.message.clone());
        if out.status == RuleStatus::Error {
            r = r.with_reason(provenance_core::Reason::new("policy.cel", out.message));
        }
        return r;
    }
    let outcome = check_block(ev, validate, &input.object, ctx, &message, 0);
    match outcome {
        Check::Pass => ev.result(RuleStatus::Pass, pass_message(&ev.rule.name)),
        Check::Skip(m) => ev.result(RuleStatus::Skip, m),
        Check::Fail(m) => ev.result(RuleStatus::Fail, m),
        Check::Error(r) => *r,
    }
}

fn pass_message(rule: &str) -> String {
    format!("validation rule '{rule}' passed.")
}

/// Substitutes variables only when the value has any (patterns without `{{` are used as is).
pub(crate) fn subst<'v>(
    v: &'v Value,
    ctx: &Value,
    env: &Env,
    path: &str,
) -> Result<std::borrow::Cow<'v, Value>, Error> {
    fn has_vars(v: &Value) -> bool {
        match v {
            Value::String(s) => s.contains("{{"),
            Value::Array(a) => a.iter().any(has_vars),
            Value::Object(m) => m.iter().any(|(k, v)| k.contains("{{") || has_vars(v)),
            _ => false,
        }
    }
    if has_vars(v) {
        variables::substitute_with(v, ctx, env, path).map(std::borrow::Cow::Owned)
    } else {
        Ok(std::borrow::Cow::Borrowed(v))
    }
}

enum Check {
    Pass,
    Skip(String),
    Fail(String),
    Error(Box<RuleResult>),
}

fn fail_message(message: &str, rule: &str, detail: &str) -> String {
    format!("validation error: {message}. rule {rule} {detail}")
}

/// Evaluates the checks of a validate block or a foreach entry against `target`.
fn check_block(
    ev: &RuleEval<'_>,
    block: &Value,
    target: &Value,
    ctx: &mut Value,
    message: &str,
    depth: usize,
) -> Check {
    let rule = &ev.rule.name;
    if let Some(deny) = block.get("deny").filter(|d| !d.is_null()) {
        let conds = deny.get("conditions").cloned().unwrap_or(Value::Null);
        return match conditions::evaluate_block(&conds, ctx, ev.env, "validate.deny.conditions") {
            Ok(true) => Check::Fail(message.to_owned()),
            Ok(false) => Check::Pass,
            Err(e) => Check::Error(Box::new(ev.error(&e))),
        };
    }
    if let Some(p) = block.get("pattern").filter(|d| !d.is_null()) {
        let p = match subst(p, ctx, ev.env, "validate.pattern") {
            Ok(p) => p,
            Err(e) => return Check::Error(Box::new(ev.error(&e))),
        };
        return match pattern::validate(target, &p) {
            PatternOutcome::Pass => Check::Pass,
            PatternOutcome::Skip { path, message: m } => {
                Check::Skip(format!("rule {rule} skipped at path {path}: {m}"))
            }
            // Kyverno reports a missing anchored key (no path) as an error, not a failure.
            PatternOutcome::Fail { path, message: m } if path.is_empty() => {
                Check::Error(Box::new(ev.result(
                    RuleStatus::Error,
                    format!("validation error: {message}. rule {rule} error: {m}"),
                )))
            }
            PatternOutcome::Fail { path, .. } => Check::Fail(fail_message(
                message,
                rule,
                &format!("failed at path {path}"),
            )),
        };
    }
    if let Some(any) = block.get("anyPattern").filter(|d| !d.is_null()) {
        let Some(list) = any.as_array() else {
            return Check::Error(Box::new(ev.error(&Error::InvalidPolicy {
                policy: ev.policy.name.clone(),
                path: "validate.anyPattern".into(),
                reason: "must be a list".into(),
            })));
        };
        // Kyverno substitutes the whole list before checking any entry: an unresolvable
        // variable in any entry is an error, even when an earlier entry would pass.
        let mut substituted = Vec::with_capacity(list.len());
        for p in list {
            match subst(p, ctx, ev.env, "validate.anyPattern") {
                Ok(p) => substituted.push(p),
                Err(e) => return Check::Error(Box::new(ev.error(&e))),
            }
        }
        let mut failures = Vec::new();
        let mut skips = 0;
        for (i, p) in substituted.iter().enumerate() {
            match pattern::validate(target, p) {
                PatternOutcome::Pass => return Check::Pass,
                PatternOutcome::Skip { .. } => skips += 1,
                PatternOutcome::Fail { path, .. } => failures.push(format!(
                    "rule {rule}[anyPattern[{i}]] failed at path {path}"
                )),
            }
        }
        if skips == list.len() {
            return Check::Skip(format!(
                "rule {rule} skipped: all anyPattern entries skipped"
            ));
        }
        return Check::Fail(format!(
            "validation error: {message}. {}",
            failures.join(" ")
        ));
    }
    if let Some(fe) = block.get("foreach").filter(|d| !d.is_null()) {
        return check_foreach(ev, fe, target, ctx, message, depth);
    }
    Check::Error(Box::new(ev.unsupported(
        "validate without pattern, anyPattern, deny or foreach",
    )))
}

/// The value of a `foreach` entry's `list` expression, its `{{ }}` variables substituted
/// first (validate and mutate `foreach` read it the same way; what a missing value means is
/// theirs to decide).
pub(crate) fn foreach_list(
    fe: &Value,
    ctx: &Value,
    env: &Env,
) -> Result<jmespath::QueryResult, Error> {
    let list_expr = fe.get("list").and_then(Value::as_str).unwrap_or_default();
    let list_expr = match variables::substitute_str_with(list_expr, ctx, env, "foreach.list")? {
        Value::String(s) => s,
        other => other.to_string(),
    };
    variables::compile_cached(&list_expr).and_then(|e| e.query(ctx, env))
}

fn check_foreach(
    ev: &RuleEval<'_>,
    foreach: &Value,
    target: &Value,
    ctx: &mut Value,
    message: &str,
    depth: usize,
) -> Check {
    // The context is the rule's loan of the request's document (see `Doc`), not a copy:
    // `foreach_in` restores every key it writes, whatever the outcome, so no copy per foreach
    // (or per element: a copy per element made a foreach over N containers cost N copies of
    // an N-container Pod; see docs/performance-growth.md).
    foreach_in(ev, foreach, target, ctx, message, depth)
}

/// The keys of the request's context document (`keys`) that `rule` may write under: the first
/// segment of each of its context entries' names, and every key when the caller supplies
/// variables (they can set any dotted key).
fn written_keys(rule: &Rule, vars: &Variables, keys: &[String]) -> Vec<String> {
    if !vars.is_empty() {
        return keys.to_vec();
    }
    rule.context
        .iter()
        .filter_map(|c| c.get("name").and_then(Value::as_str))
        .filter_map(|n| crate::kyverno::context::split_dotted(n).into_iter().next())
        .filter(|first| keys.contains(first))
        .collect()
}

/// How many keys [`foreach_keys`] lists first for the element itself.
const ELEMENT_KEYS: usize = 4;

/// The top-level context keys one foreach level writes: the [`ELEMENT_KEYS`] element keys,
/// then the first segment of each of its entries' context names.
fn foreach_keys(entries: &[Value], depth: usize) -> Vec<String> {
    let mut keys = vec![
        "element".to_owned(),
        "elementIndex".to_owned(),
        format!("element{depth}"),
        format!("elementIndex{depth}"),
    ];
    for fe in entries {
        for c in fe
            .get("context")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            if let Some(first) = c
                .get("name")
                .and_then(Value::as_str)
                .and_then(|n| crate::kyverno::context::split_dotted(n).into_iter().next())
                && !keys.contains(&first)
            {
                keys.push(first);
            }
        }
    }
    keys
}

/// Puts the saved top-level keys of `ctx` back as they were (absent ones removed).
fn restore_keys(ctx: &mut Value, saved: &[(String, Option<Value>)]) {
    if let Some(obj) = ctx.as_object_mut() {
        for (k, v) in saved {
            match v {
                Some(v) => {
                    obj.insert(k.clone(), v.clone());
                }
                None => {
                    obj.remove(k);
                }
            }
        }
    }
}

/// One foreach level over the scratch context `ctx`: each element sees `ctx` as it was plus
/// its element keys and its context entries, exactly as a fresh copy would; the keys this
/// level writes are restored when it ends, whatever the outcome.
fn foreach_in(
    ev: &RuleEval<'_>,
    foreach: &Value,
    target: &Value,
    ctx: &mut Value,
    message: &str,
    depth: usize,
) -> Check {
    let Some(entries) = foreach.as_array() else {
        return Check::Error(Box::new(ev.error(&Error::InvalidPolicy {
            policy: ev.policy.name.clone(),
            path: "validate.foreach".into(),
            reason: "must be a list".into(),
        })));
    };
    let keys = foreach_keys(entries, depth);
    let saved: Vec<(String, Option<Value>)> = keys
        .into_iter()
        .map(|k| {
            let v = ctx.get(&k).cloned();
            (k, v)
        })
        .collect();
    let outcome = foreach_entries(ev, entries, target, ctx, message, depth, &saved);
    restore_keys(ctx, &saved);
    outcome
}

fn foreach_entries(
    ev: &RuleEval<'_>,
    entries: &[Value],
    target: &Value,
    ctx: &mut Value,
    message: &str,
    depth: usize,
    saved: &[(String, Option<Value>)],
) -> Check {
    let mut applied = 0usize;
    for (fi, fe) in entries.iter().enumerate() {
        // An "Unknown key" in the list expression skips this foreach, as Kyverno does.
        let list = match foreach_list(fe, ctx, ev.env) {
            Ok(jmespath::QueryResult::Value(Value::Array(a))) => a,
            Ok(jmespath::QueryResult::Value(Value::Null)) => continue,
            Ok(jmespath::QueryResult::NotFound { .. }) => continue,
            Ok(jmespath::QueryResult::Value(other)) => vec![other],
            Err(e) => return Check::Error(Box::new(ev.error(&e))),
        };
        let element_scope = fe.get("elementScope").and_then(Value::as_bool);
        let context = fe.get("context").and_then(Value::as_array);
        let mut inner = Map::new();
        for k in ["pattern", "anyPattern", "deny"] {
            if let Some(v) = fe.get(k) {
                inner.insert(k.into(), v.clone());
            }
        }
        let inner = Value::Object(inner);
        for (i, element) in list.iter().enumerate() {
            if element_scope == Some(true) && !element.is_object() {
                return Check::Error(Box::new(ev.error(&Error::InvalidPolicy {
                    policy: ev.policy.name.clone(),
                    path: format!("validate.foreach[{fi}].elementScope"),
                    reason: format!("elementScope is true but element {i} is not an object"),
                })));
            }
            // The previous element's context entries are undone (its element keys are
            // overwritten below; nested levels restore their own keys): this element starts
            // from the context as the level found it.
            restore_keys(ctx, &saved[ELEMENT_KEYS..]);
            if let Some(obj) = ctx.as_object_mut() {
                obj.insert("element".into(), element.clone());
                obj.insert("elementIndex".into(), json!(i));
                obj.insert(format!("element{depth}"), element.clone());
                obj.insert(format!("elementIndex{depth}"), json!(i));
            }
            if let Some(entries) = context
                && let Err(r) = load_context(
                    ev,
                    entries,
                    ctx,
                    ev.vars,
                    &format!("foreach[{fi}].context"),
                    fe,
                )
            {
                return Check::Error(r);
            }
            if let Some(pre) = fe.get("preconditions").filter(|p| !p.is_null()) {
                // Kyverno skips the element when its preconditions cannot be evaluated.
                match conditions::evaluate_block(pre, ctx, ev.env, "foreach.preconditions") {
                    Ok(true) => {}
                    Ok(false) | Err(_) => continue,
                }
            }
            let elem_target = match element_scope {
                Some(false) => target,
                _ if element.is_object() => element,
                _ => target,
            };
            let outcome = if let Some(nested) = fe.get("foreach").filter(|n| !n.is_null()) {
                foreach_in(ev, nested, elem_target, ctx, message, depth + 1)
            } else {
                check_block(ev, &inner, elem_target, ctx, message, depth)
            };
            match outcome {
                Check::Pass => applied += 1,
                Check::Skip(_) => {}
                Check::Fail(m) => return Check::Fail(m),
                Check::Error(r) => return Check::Error(r),
            }
        }
    }
    if applied == 0 {
        return Check::Skip(format!(
            "rule {} skipped: no foreach element applied",
            ev.rule.name
        ));
    }
    Check::Pass
}

#[cfg(test)]
mod tests {
    use super::stays_in_namespace;

    #[test]
    fn a_namespaced_policy_reads_its_own_namespace_only() {
        for ok in [
            "/api/v1/namespaces/mine/configmaps",
            "/api/v1/namespaces/mine/configmaps/cm",
            "/apis/apps/v1/namespaces/mine/deployments?labelSelector=app%3Dweb",
            "/api/v1/namespaces/mine",
        ] {
            assert!(stays_in_namespace(ok, "mine"), "{ok}");
        }
        for out in [
            "/api/v1/namespaces/other/configmaps",
            "/apis/namespaces/mine/namespaces/other/configmaps",
            "/api/v1//namespaces/mine/configmaps",
            "/api/v1/configmaps",
            "/api/v1/namespaces",
            "/api/v1/namespaces/other",
            "/apis/x/v1/namespaces/mine",
            "/api/v1/namespaces/mine/pods/p/log",
            "namespaces/mine/configmaps",
        ] {
            assert!(!stays_in_namespace(out, "mine"), "{out}");
        }
    }
}
