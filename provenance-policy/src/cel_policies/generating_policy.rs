//! Kyverno's CEL `GeneratingPolicy` (`policies.kyverno.io` v1alpha1, v1beta1, v1; also
//! `NamespacedGeneratingPolicy`) as a pure decision: the resources Kyverno's background
//! controller would create for one trigger, without creating anything.
//!
//! Evaluation follows Kyverno's GeneratingPolicy engine:
//!
//! 1. `matchConstraints` select the trigger (no `matchConstraints`: nothing is selected); a
//!    NamespacedGeneratingPolicy applies to triggers of its own namespace only. Not selected:
//!    no result.
//! 2. CEL PolicyExceptions whose `policyRefs` name the policy (kind `GeneratingPolicy`): one
//!    that holds gives one `skip` result (`pass` with `reportResult: pass`), rule
//!    `exception`, and nothing is generated.
//! 3. `matchConditions`: one false → no result (Kyverno reports nothing); an error → `error`.
//! 4. `variables` (lazy) and every `generate[].expression` in order. `generator.Apply(namespace,
//!    [objects])` records the objects (a `...List` object, or any object with `items`, stands
//!    for its items) for `namespace`; `resource.Get/List` read the [`ContextData`] of the input.
//!    Then `auditAnnotations`. Any evaluation error: one `error` result (`failed to evaluate
//!    policy: ...`), nothing generated.
//! 5. Otherwise one `pass` result, `policy evaluated successfully`, rule name the policy name,
//!    and the generated resources in [`PolicyResponse::generated`].
//!
//! Each generated resource is the object as written, in the target namespace (none for a
//! cluster-scoped kind), without `uid`, `resourceVersion`, `creationTimestamp`,
//! `managedFields` and `selfLink`, without `ownerReferences` when it moves to another
//! namespace, and with Kyverno's labels (`app.kubernetes.io/managed-by: kyverno`,
//! `generate.kyverno.io/policy-name`, `trigger-name`, `trigger-namespace`, `trigger-uid`,
//! `trigger-kind`, `trigger-group`, `trigger-version`, and `source-uid` when the object came
//! from the cluster). The action is always [`GenerateAction::Create`]: the decision does not
//! compare with what exists (the applier creates or, with `synchronize`, updates).
//!
//! A GeneratingPolicy never blocks admission: Kyverno generates in the background.
//!
//! ```
//! use provenance_policy::lang::cel::PolicyInput;
//! use provenance_policy::cel_policies::generating_policy::GeneratingPolicy;
//! use serde_json::json;
//!
//! let policy = GeneratingPolicy::from_value(&json!({
//!     "apiVersion": "policies.kyverno.io/v1", "kind": "GeneratingPolicy",
//!     "metadata": {"name": "default-config"},
//!     "spec": {
//!         "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
//!             "operations": ["CREATE"], "resources": ["namespaces"]}]},
//!         "variables": [{"name": "ns", "expression": "object.metadata.name"}],
//!         "generate": [{"expression": "generator.Apply(variables.ns, [{'apiVersion': dyn('v1'), 'kind': dyn('ConfigMap'), 'metadata': dyn({'name': 'defaults'})}])"}]
//!     }
//! }))?;
//! let input = PolicyInput::create(json!({
//!     "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}
//! }));
//! let response = policy.evaluate(&input);
//! assert_eq!(response.generated.len(), 1);
//! assert_eq!(response.generated[0].target().namespace, "team-a");
//! # Ok::<(), provenance_policy::Error>(())
//! ```

use std::cell::RefCell;
use std::sync::Arc;

use provenance_core::outcome::{Reason, RuleResult, RuleStatus};
use serde_json::{Map, Value};

use crate::Error;
use crate::cel_policies::validating_policy::{
    CelPolicyException, MatchConstraints, is_cluster_scoped_kind,
};
use crate::kyverno::engine::PolicyResponse;
use crate::kyverno::generate::{GenerateAction, GeneratedResource, MANAGED_BY_LABEL};
use crate::lang::cel::{
    AuditAnnotation, KyvernoFn, MatchConditions, NamedProgram, PolicyFunctions, PolicyInput,
    Program, RequestView, Variable, VariableScope, check_variables, compile_audit_annotations,
    compile_named, compile_variables, evaluate_audit_annotations, evaluate_match_conditions,
    str_field,
};
use crate::schema::Node::{self, Any, Bool, List, Obj, Str};
use crate::schema::{AUDIT_ANNOTATIONS, MATCH_RESOURCES, METADATA, NAME_EXPRESSION};

pub use crate::lang::cel::ContextData;

/// The most resources one evaluation may generate; more is an evaluation error.
pub const MAX_GENERATED: usize = 1000;

/// The keys of a GeneratingPolicy's `spec`.
const SPEC_FIELDS: &[&str] = &[
    "matchConstraints",
    "matchConditions",
    "variables",
    "generate",
    "evaluation",
    "auditAnnotations",
    "webhookConfiguration",
    "useServerSideApply",
];

/// The field inventory of a GeneratingPolicy document, as Kyverno's CRD defines it.
pub(crate) const INVENTORY: Node = Obj(&[
    ("apiVersion", Any),
    ("kind", Any),
    ("metadata", METADATA),
    (
        "spec",
        Obj(&[
            ("matchConstraints", MATCH_RESOURCES),
            ("matchConditions", NAME_EXPRESSION),
            ("variables", NAME_EXPRESSION),
            (
                "generate",
                List(&Obj(&[
                    ("expression", Str),
                    ("template", Obj(&[("interpolate", Any), ("value", Any)])),
                ])),
            ),
            (
                "evaluation",
                Obj(&[
                    ("admission", Obj(&[("enabled", Bool)])),
                    ("generateExisting", Obj(&[("enabled", Bool)])),
                    ("synchronize", Obj(&[("enabled", Bool)])),
                    ("orphanDownstreamOnPolicyDelete", Obj(&[("enabled", Bool)])),
                    ("skipBackgroundRequests", Bool),
                ]),
            ),
            ("auditAnnotations", AUDIT_ANNOTATIONS),
            ("webhookConfiguration", Obj(&[("timeoutSeconds", Any)])),
            ("useServerSideApply", Bool),
        ]),
    ),
    ("status", Any),
]);

/// A compiled GeneratingPolicy.
#[derive(Debug)]
pub struct GeneratingPolicy {
    name: String,
    kind: String,
    api_version: String,
    scope_namespace: Option<String>,
    match_constraints: Option<MatchConstraints>,
    match_conditions: Vec<NamedProgram>,
    variables: Vec<Variable>,
    generations: Vec<Program>,
    audit_annotations: Vec<AuditAnnotation>,
    generate_existing: bool,
    synchronize: bool,
    orphan_downstream_on_policy_delete: bool,
    exceptions: Vec<Arc<CelPolicyException>>,
}

/// `evaluation.<key>.enabled`, checked to be a boolean.
pub(crate) fn enabled_flag(
    spec: &Value,
    key: &str,
    default: bool,
    invalid: &dyn Fn(&str, &str) -> Error,
) -> Result<bool, Error> {
    match spec.get("evaluation").and_then(|e| e.get(key)) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => match v.get("enabled") {
            None | Some(Value::Null) => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(invalid(
                &format!("spec.evaluation.{key}.enabled"),
                "expected true or false",
            )),
        },
    }
}

/// The identity shared by GeneratingPolicy and DeletingPolicy documents: (name as reported,
/// plain name, namespace, kind, apiVersion).
pub(crate) struct Identity {
    pub full_name: String,
    pub namespace: String,
    pub kind: String,
    pub api_version: String,
}

/// Reads and checks `apiVersion`, `kind` (`kind` or `Namespaced<kind>`), `metadata.name`.
pub(crate) fn identity(v: &Value, kind: &str) -> Result<Identity, Error> {
    let meta = v.get("metadata");
    let name = meta
        .and_then(|m| str_field(m, "name"))
        .unwrap_or_default()
        .to_owned();
    let namespace = meta
        .and_then(|m| str_field(m, "namespace"))
        .unwrap_or_default()
        .to_owned();
    let invalid = |path: &str, reason: String| Error::InvalidPolicy {
        policy: name.clone(),
        path: path.to_owned(),
        reason,
    };
    let api_version = str_field(v, "apiVersion").unwrap_or_default();
    if !matches!(
        api_version,
        "policies.kyverno.io/v1" | "policies.kyverno.io/v1beta1" | "policies.kyverno.io/v1alpha1"
    ) {
        return Err(invalid(
            "apiVersion",
            "expected policies.kyverno.io/v1, v1beta1 or v1alpha1".to_owned(),
        ));
    }
    let doc_kind = str_field(v, "kind").unwrap_or_default();
    let namespaced = format!("Namespaced{kind}");
    let full_name = if doc_kind == kind {
        name.clone()
    } else if doc_kind == namespaced {
        if namespace.is_empty() {
            return Err(invalid(
                "metadata.namespace",
                format!("required for a {namespaced}"),
            ));
        }
        format!("{namespace}/{name}")
    } else {
        return Err(invalid("kind", format!("expected {kind} or {namespaced}")));
    };
    if name.is_empty() {
        return Err(invalid("metadata.name", "required".to_owned()));
    }
    Ok(Identity {
        full_name,
        namespace: if doc_kind == kind {
            String::new()
        } else {
            namespace
        },
        kind: doc_kind.to_owned(),
        api_version: api_version.to_owned(),
    })
}

/// Refuses `spec` keys outside `allowed` (the schema check does so first when loading
/// through [`crate::admission::loader`]; this keeps `from_value` strict on its own).
pub(crate) fn check_spec_keys(
    spec: &Value,
    allowed: &[&str],
    kind: &str,
    policy: &str,
) -> Result<(), Error> {
    for key in spec.as_object().into_iter().flat_map(|m| m.keys()) {
        if !allowed.contains(&key.as_str()) {
            return Err(Error::Unsupported {
                field: format!("{kind} {policy}: spec.{key}"),
            });
        }
    }
    Ok(())
}

/// The outcome of the CEL PolicyExceptions of a policy for one request.
pub(crate) enum ExceptionOutcome {
    /// None applies.
    None,
    /// Some apply: `reportResult: pass` of the highest-priority one, and their keys.
    Exempt { pass: bool, keys: Vec<String> },
    /// One could not be evaluated (and none applied before it).
    Error(Error),
}

/// Evaluates `exceptions` as Kyverno does for GeneratingPolicy and DeletingPolicy: every
/// exception's `matchConditions`; an error after one already applied is ignored.
pub(crate) fn evaluate_exceptions(
    exceptions: &[Arc<CelPolicyException>],
    scope: &VariableScope<'_, '_>,
) -> ExceptionOutcome {
    let mut matched: Vec<&CelPolicyException> = Vec::new();
    for ex in exceptions {
        match ex.matches(scope) {
            Ok(true) => matched.push(ex),
            Ok(false) => {}
            Err(_) if !matched.is_empty() => {}
            Err(e) => return ExceptionOutcome::Error(e),
        }
    }
    let Some(first) = matched.first() else {
        return ExceptionOutcome::None;
    };
    let mut selected = *first;
    for ex in &matched {
        if ex.priority() > selected.priority() {
            selected = ex;
        }
    }
    ExceptionOutcome::Exempt {
        pass: selected.reports_pass(),
        keys: matched.iter().map(|e| e.key().to_owned()).collect(),
    }
}

impl GeneratingPolicy {
    /// Loads and compiles a GeneratingPolicy (or NamespacedGeneratingPolicy) document.
    ///
    /// Errors: [`Error::InvalidPolicy`] naming the field (a `generate` entry without
    /// `expression`, a flag that is not a boolean, ...), [`Error::Cel`] for an expression
    /// that does not compile, [`Error::Unsupported`] for `generate[].template`,
    /// `evaluation.admission.enabled: false` and unknown `spec` keys.
    pub fn from_value(v: &Value) -> Result<Self, Error> {
        let id = identity(v, "GeneratingPolicy")?;
        let policy = id.full_name.clone();
        let invalid = |path: &str, reason: &str| Error::InvalidPolicy {
            policy: policy.clone(),
            path: path.to_owned(),
            reason: reason.to_owned(),
        };
        let spec = v
            .get("spec")
            .filter(|s| s.is_object())
            .ok_or_else(|| invalid("spec", "expected an object"))?;
        check_spec_keys(spec, SPEC_FIELDS, "GeneratingPolicy", &policy)?;
        let with_policy = |e: Error| match e {
            Error::InvalidPolicy { path, reason, .. } => Error::InvalidPolicy {
                policy: policy.clone(),
                path,
                reason,
            },
            other => other,
        };
        let match_constraints = spec
            .get("matchConstraints")
            .filter(|m| !m.is_null())
            .map(|m| MatchConstraints::from_value(m, "spec.matchConstraints"))
            .transpose()
            .map_err(with_policy)?;
        let match_conditions =
            compile_named(spec, "matchConditions", "spec").map_err(with_policy)?;
        let variables = compile_variables(spec, "spec").map_err(with_policy)?;
        let audit_annotations = compile_audit_annotations(spec, "spec").map_err(with_policy)?;
        let entries = match spec.get("generate") {
            Some(Value::Array(a)) if !a.is_empty() => a,
            _ => {
                return Err(invalid(
                    "spec.generate",
                    "required: a list of at least one generation",
                ));
            }
        };
        let mut generations = Vec::with_capacity(entries.len());
        for (i, g) in entries.iter().enumerate() {
            let path = format!("spec.generate[{i}]");
            if g.get("template").is_some_and(|t| !t.is_null()) {
                return Err(Error::Unsupported {
                    field: format!("GeneratingPolicy {policy}: {path}.template"),
                });
            }
            let Some(expr) = g.get("expression").and_then(Value::as_str) else {
                return Err(invalid(
                    &format!("{path}.expression"),
                    "required: a CEL expression",
                ));
            };
            generations.push(Program::compile(expr)?);
        }
        check_variables(
            &variables,
            match_conditions
                .iter()
                .map(|m| &m.program)
                .chain(generations.iter())
                .chain(audit_annotations.iter().map(|a| &a.value)),
        )?;
        if !enabled_flag(spec, "admission", true, &invalid)? {
            return Err(Error::Unsupported {
                field: format!(
                    "GeneratingPolicy {policy}: spec.evaluation.admission.enabled: false (background-only generation)"
                ),
            });
        }
        if spec
            .get("evaluation")
            .and_then(|e| e.get("skipBackgroundRequests"))
            .is_some_and(|s| !s.is_null() && !s.is_boolean())
        {
            return Err(invalid(
                "spec.evaluation.skipBackgroundRequests",
                "expected true or false",
            ));
        }
        if spec
            .get("useServerSideApply")
            .is_some_and(|s| !s.is_null() && !s.is_boolean())
        {
            return Err(invalid("spec.useServerSideApply", "expected true or false"));
        }
        Ok(GeneratingPolicy {
            generate_existing: enabled_flag(spec, "generateExisting", false, &invalid)?,
            synchronize: enabled_flag(spec, "synchronize", false, &invalid)?,
            orphan_downstream_on_policy_delete: enabled_flag(
                spec,
                "orphanDownstreamOnPolicyDelete",
                false,
                &invalid,
            )?,
            name: id.full_name,
            kind: id.kind,
            api_version: id.api_version,
            scope_namespace: (!id.namespace.is_empty()).then_some(id.namespace),
            match_constraints,
            match_conditions,
            variables,
            generations,
            audit_annotations,
            exceptions: Vec::new(),
        })
    }

    /// Attaches the exceptions among `exceptions` whose `policyRefs` name this policy.
    pub fn add_exceptions(&mut self, exceptions: &[Arc<CelPolicyException>]) {
        crate::cel_policies::validating_policy::attach_exceptions(
            &mut self.exceptions,
            &self.name,
            &self.kind,
            exceptions,
        );
    }

    /// The policy name (`namespace/name` for a NamespacedGeneratingPolicy).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `GeneratingPolicy` or `NamespacedGeneratingPolicy`.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The `apiVersion` the policy was written in.
    pub fn api_version(&self) -> &str {
        &self.api_version
    }

    /// `spec.matchConstraints`.
    pub fn match_constraints(&self) -> Option<&MatchConstraints> {
        self.match_constraints.as_ref()
    }

    /// `spec.evaluation.generateExisting.enabled`: a controller that honours it evaluates the
    /// existing resources the policy selects when the policy is installed (the engine decides
    /// one trigger at a time).
    pub fn generate_existing(&self) -> bool {
        self.generate_existing
    }

    /// `spec.evaluation.synchronize.enabled`.
    pub fn synchronize(&self) -> bool {
        self.synchronize
    }

    /// `spec.evaluation.orphanDownstreamOnPolicyDelete.enabled`.
    pub fn orphan_downstream_on_policy_delete(&self) -> bool {
        self.orphan_downstream_on_policy_delete
    }

    /// Evaluates the policy for one trigger. `rules` is empty when the policy does not
    /// select the trigger (or a match condition is false).
    pub fn evaluate(&self, input: &PolicyInput) -> PolicyResponse {
        self.evaluate_view(&RequestView::new(input))
    }

    /// Evaluates against an already bound request.
    pub fn evaluate_view(&self, view: &RequestView<'_>) -> PolicyResponse {
        let mut response = PolicyResponse {
            policy: self.name.clone(),
            kind: self.kind.clone(),
            rules: Vec::new(),
            generated: Vec::new(),
        };
        let input = view.input();
        if let Some(ns) = &self.scope_namespace
            && input.namespace() != *ns
        {
            return response;
        }
        let resource = input.resource_ref();
        let result = |rule: &str, status: RuleStatus, message: String| {
            RuleResult::new(self.name.clone(), rule, resource.clone(), status, message)
        };
        let failed = |e: &Error| {
            result(
                &self.name,
                RuleStatus::Error,
                format!("failed to evaluate policy: {e}"),
            )
            .with_reason(Reason::new(e.code(), e.to_string()))
        };
        match self
            .match_constraints
            .as_ref()
            .map(|mc| mc.try_matches(input))
        {
            Some(Ok(true)) => {}
            Some(Err(e)) => {
                response.rules.push(
                    result(
                        &self.name,
                        RuleStatus::Error,
                        format!("failed to execute matching: {e}"),
                    )
                    .with_reason(Reason::new(e.code(), e.to_string())),
                );
                return response;
            }
            _ => return response,
        }
        let generator = Generator {
            policy: self,
            trigger: input.subject(),
            out: RefCell::new(Vec::new()),
        };
        let scope = VariableScope::new(view, &self.variables).with_functions(&generator);
        match evaluate_exceptions(&self.exceptions, &scope) {
            ExceptionOutcome::None => {}
            ExceptionOutcome::Exempt { pass, keys } => {
                let (status, verb) = if pass {
                    (RuleStatus::Pass, "passed")
                } else {
                    (RuleStatus::Skip, "skipped")
                };
                response.rules.push(result(
                    "exception",
                    status,
                    format!(
                        "rule is {verb} due to policy exception: {}",
                        keys.join(", ")
                    ),
                ));
                return response;
            }
            ExceptionOutcome::Error(e) => {
                response.rules.push(failed(&e));
                return response;
            }
        }
        match evaluate_match_conditions(&self.match_conditions, &scope) {
            MatchConditions::Hold => {}
            MatchConditions::False => return response,
            MatchConditions::Errors { first, .. } => {
                response.rules.push(failed(&first));
                return response;
            }
        }
        for (i, g) in self.generations.iter().enumerate() {
            if let Err(e) = g.evaluate_in(&scope) {
                response.rules.push(failed(&e).with_reason(
                    Reason::new(e.code(), e.to_string()).at(format!("spec.generate[{i}]")),
                ));
                return response;
            }
        }
        if let Err(e) = evaluate_audit_annotations(&self.audit_annotations, &scope) {
            response.rules.push(failed(&e));
            return response;
        }
        response.generated = generator.out.into_inner();
        response.rules.push(result(
            &self.name,
            RuleStatus::Pass,
            "policy evaluated successfully".to_owned(),
        ));
        response
    }
}

/// Answers `generator.Apply` for one evaluation.
struct Generator<'a> {
    policy: &'a GeneratingPolicy,
    trigger: Option<&'a Value>,
    out: RefCell<Vec<GeneratedResource>>,
}

impl Generator<'_> {
    fn apply(&self, args: &[crate::lang::cel::Value]) -> Result<crate::lang::cel::Value, String> {
        let namespace = match args.first() {
            Some(crate::lang::cel::Value::String(s)) => s.as_str().to_owned(),
            Some(crate::lang::cel::Value::Null) => String::new(),
            _ => return Err("generator.Apply: argument 1 must be a namespace string".to_owned()),
        };
        let list = match args.get(1) {
            Some(v @ crate::lang::cel::Value::List(_)) => {
                crate::lang::cel::value::cel_to_json(v)
                    .map_err(|e| format!("generator.Apply: {e}"))?
            }
            _ => return Err("generator.Apply: argument 2 must be a list of objects".to_owned()),
        };
        if let Some(own) = &self.policy.scope_namespace
            && namespace != *own
        {
            return Err(format!(
                "generator.Apply: cross-namespace generation denied: a policy in namespace {own:?} cannot generate resources into namespace {namespace:?}"
            ));
        }
        let mut items = Vec::new();
        for (i, obj) in list.as_array().into_iter().flatten().enumerate() {
            let Some(map) = obj.as_object() else {
                return Err(format!(
                    "generator.Apply: element {i} is not an object (got {obj})"
                ));
            };
            match map.get("items") {
                Some(Value::Array(list_items)) => {
                    for (j, item) in list_items.iter().enumerate() {
                        if !item.is_object() {
                            return Err(format!(
                                "generator.Apply: element {i}, item {j} is not an object"
                            ));
                        }
                        items.push(item.clone());
                    }
                }
                _ => items.push(obj.clone()),
            }
        }
        let mut out = self.out.borrow_mut();
        if out.len() + items.len() > MAX_GENERATED {
            return Err(format!(
                "generator.Apply: more than {MAX_GENERATED} resources generated"
            ));
        }
        for item in items {
            out.push(self.generated(item, &namespace)?);
        }
        Ok(crate::lang::cel::Value::Bool(true))
    }

    /// The resource Kyverno would write for `item` generated into `namespace`.
    fn generated(&self, mut item: Value, namespace: &str) -> Result<GeneratedResource, String> {
        let text = |v: &Value, p: &str| {
            v.pointer(p)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let (api_version, kind, name) = (
            text(&item, "/apiVersion"),
            text(&item, "/kind"),
            text(&item, "/metadata/name"),
        );
        if api_version.is_empty() || kind.is_empty() || name.is_empty() {
            return Err(format!(
                "generator.Apply: a generated object needs apiVersion, kind and metadata.name (got {api_version:?}, {kind:?}, {name:?})"
            ));
        }
        let mut target_ns = namespace.to_owned();
        if is_cluster_scoped_kind(&kind) {
            if self.policy.scope_namespace.is_some() {
                return Err(format!(
                    "generator.Apply: cross-scope generation denied: a namespaced policy cannot generate the cluster-scoped {api_version} {kind}"
                ));
            }
            target_ns.clear();
        }
        let source_ns = text(&item, "/metadata/namespace");
        let source_uid = text(&item, "/metadata/uid");
        let from_cluster = !text(&item, "/metadata/resourceVersion").is_empty();
        let Some(meta) = item.get_mut("metadata").and_then(Value::as_object_mut) else {
            return Err("generator.Apply: metadata is not an object".to_owned());
        };
        if !source_ns.is_empty() && source_ns != target_ns {
            meta.remove("ownerReferences");
        }
        for k in [
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "managedFields",
            "selfLink",
        ] {
            meta.remove(k);
        }
        if target_ns.is_empty() {
            meta.remove("namespace");
        } else {
            meta.insert("namespace".into(), Value::String(target_ns));
        }
        let mut labels: Map<String, Value> = meta
            .get("labels")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let trigger = self.trigger.unwrap_or(&Value::Null);
        let trigger_api = text(trigger, "/apiVersion");
        let (group, version) = match trigger_api.split_once('/') {
            Some((g, v)) => (g.to_owned(), v.to_owned()),
            None => (String::new(), trigger_api.clone()),
        };
        let plain = self.policy.name.rsplit('/').next().unwrap_or_default();
        let mut set = |k: &str, v: String| {
            labels.insert(k.to_owned(), Value::String(v));
        };
        set(MANAGED_BY_LABEL, "kyverno".to_owned());
        set("generate.kyverno.io/policy-name", plain.to_owned());
        set(
            "generate.kyverno.io/trigger-name",
            text(trigger, "/metadata/name"),
        );
        set(
            "generate.kyverno.io/trigger-namespace",
            text(trigger, "/metadata/namespace"),
        );
        set(
            "generate.kyverno.io/trigger-uid",
            text(trigger, "/metadata/uid"),
        );
        set("generate.kyverno.io/trigger-kind", text(trigger, "/kind"));
        set("generate.kyverno.io/trigger-group", group);
        set("generate.kyverno.io/trigger-version", version);
        if from_cluster {
            set("generate.kyverno.io/source-uid", source_uid);
        }
        meta.insert("labels".into(), Value::Object(labels));
        let source = from_cluster.then(|| provenance_core::outcome::ResourceRef {
            api_version: api_version.clone(),
            kind: kind.clone(),
            namespace: source_ns,
            name: name.clone(),
        });
        Ok(GeneratedResource {
            policy: self.policy.name.clone(),
            rule: self.policy.name.clone(),
            action: GenerateAction::Create,
            resource: item,
            source,
            synchronize: self.policy.synchronize,
            orphan_downstream_on_policy_delete: self.policy.orphan_downstream_on_policy_delete,
        })
    }
}

impl PolicyFunctions for Generator<'_> {
    fn call(
        &self,
        f: KyvernoFn,
        args: &[crate::lang::cel::Value],
    ) -> Result<crate::lang::cel::Value, String> {
        match f {
            KyvernoFn::GeneratorApply => self.apply(args),
            _ => Err(format!("{f:?} is not available in a GeneratingPolicy")),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy(spec: Value) -> Result<GeneratingPolicy, Error> {
        GeneratingPolicy::from_value(&json!({
            "apiVersion": "policies.kyverno.io/v1", "kind": "GeneratingPolicy",
            "metadata": {"name": "copy-secrets"},
            "spec": spec,
        }))
    }

    fn on_namespaces(extra: Value) -> Value {
        let mut spec = json!({
            "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                "operations": ["CREATE"], "resources": ["namespaces"]}]},
            "variables": [
                {"name": "ns", "expression": "object.metadata.name"},
                {"name": "sources", "expression": "resource.List('v1', 'secrets', 'default')"}
            ],
            "generate": [{"expression": "generator.Apply(variables.ns, [variables.sources])"}]
        });
        if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                s.insert(k.clone(), v.clone());
            }
        }
        spec
    }

    fn trigger(name: &str) -> PolicyInput<'static> {
        PolicyInput::create(json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "uid": "ns-uid", "labels": {"team": name}}
        }))
    }

    fn with_secret(mut input: PolicyInput) -> PolicyInput {
        input.context.add_resource(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "registry", "namespace": "default", "uid": "s-1",
                "resourceVersion": "42", "ownerReferences": [{"uid": "o"}]},
            "data": {"k": "dg=="}
        }));
        input
    }

    #[test]
    fn generates_from_variables_and_resource_lookups() {
        let p = policy(on_namespaces(
            json!({"evaluation": {"synchronize": {"enabled": true}}}),
        ))
        .expect("loads");
        let resp = p.evaluate(&with_secret(trigger("team-a")));
        assert_eq!(resp.rules.len(), 1);
        assert_eq!(resp.rules[0].status, RuleStatus::Pass);
        assert_eq!(resp.rules[0].rule, "copy-secrets");
        assert_eq!(resp.generated.len(), 1);
        let g = &resp.generated[0];
        assert_eq!(g.target().namespace, "team-a");
        assert_eq!(g.target().name, "registry");
        assert!(g.synchronize);
        assert_eq!(g.action, GenerateAction::Create);
        assert_eq!(
            g.source.as_ref().map(|s| s.namespace.as_str()),
            Some("default")
        );
        let meta = &g.resource["metadata"];
        assert!(meta.get("uid").is_none() && meta.get("resourceVersion").is_none());
        assert!(meta.get("ownerReferences").is_none(), "moved namespace");
        assert_eq!(meta["labels"]["generate.kyverno.io/trigger-name"], "team-a");
        assert_eq!(meta["labels"]["generate.kyverno.io/source-uid"], "s-1");
        assert_eq!(meta["labels"][MANAGED_BY_LABEL], "kyverno");
        assert_eq!(g.resource["data"]["k"], "dg==");
    }

    #[test]
    fn match_conditions_false_gives_no_result() {
        let p = policy(on_namespaces(json!({"matchConditions": [
            {"name": "prod-only", "expression": "object.metadata.name.startsWith('prod-')"}
        ]})))
        .expect("loads");
        let resp = p.evaluate(&with_secret(trigger("team-a")));
        assert!(resp.rules.is_empty() && resp.generated.is_empty());
        let resp = p.evaluate(&with_secret(trigger("prod-a")));
        assert_eq!(resp.generated.len(), 1);
    }

    #[test]
    fn missing_cluster_data_is_an_error_not_an_empty_generation() {
        let p = policy(on_namespaces(json!({}))).expect("loads");
        let resp = p.evaluate(&trigger("team-a"));
        assert_eq!(resp.rules.len(), 1);
        assert_eq!(resp.rules[0].status, RuleStatus::Error);
        assert!(
            resp.rules[0].message.contains("resource.list"),
            "{}",
            resp.rules[0].message
        );
        assert!(resp.generated.is_empty());
    }

    #[test]
    fn not_selected_and_bad_objects() {
        let p = policy(on_namespaces(json!({}))).expect("loads");
        let pod = PolicyInput::create(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "x"}}));
        assert!(p.evaluate(&pod).rules.is_empty());
        let p = policy(on_namespaces(json!({"generate": [
            {"expression": "generator.Apply('x', [{'kind': 'ConfigMap'}])"}
        ]})))
        .expect("loads");
        let resp = p.evaluate(&trigger("a"));
        assert_eq!(resp.rules[0].status, RuleStatus::Error);
        assert!(resp.rules[0].message.contains("metadata.name"));
    }

    #[test]
    fn strict_loading() {
        let err = |spec: Value| policy(spec).expect_err("refused").to_string();
        assert!(err(json!({"generate": []})).contains("spec.generate"));
        assert!(
            err(on_namespaces(json!({"generate": [{}]}))).contains("spec.generate[0].expression")
        );
        assert!(
            err(on_namespaces(
                json!({"generate": [{"template": {"interpolate": "cel", "value": "x"}}]})
            ))
            .contains("spec.generate[0].template")
        );
        assert!(err(on_namespaces(json!({"surprise": 1}))).contains("spec.surprise"));
        assert!(
            err(on_namespaces(
                json!({"evaluation": {"synchronize": {"enabled": "yes"}}})
            ))
            .contains("spec.evaluation.synchronize.enabled")
        );
        assert!(
            err(on_namespaces(
                json!({"evaluation": {"admission": {"enabled": false}}})
            ))
            .contains("admission.enabled")
        );
        assert!(
            err(on_namespaces(
                json!({"generate": [{"expression": "generator.Apply("}]})
            ))
            .contains("generator.Apply(")
        );
        // Through the loader, the CRD inventory refuses unknown fields anywhere.
        let text = "apiVersion: policies.kyverno.io/v1\nkind: GeneratingPolicy\nmetadata: {name: g}\nspec:\n  generate:\n  - expresion: x\n";
        let e = crate::admission::loader::load_policies(text, "g.yaml").expect_err("unknown field");
        assert!(e.to_string().contains("expresion"), "{e}");
    }

    #[test]
    fn namespaced_policy_stays_in_its_namespace() {
        let p = GeneratingPolicy::from_value(&json!({
            "apiVersion": "policies.kyverno.io/v1", "kind": "NamespacedGeneratingPolicy",
            "metadata": {"name": "g", "namespace": "team-a"},
            "spec": {
                "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                    "operations": ["CREATE"], "resources": ["configmaps"]}]},
                "generate": [{"expression": "generator.Apply('team-b', [{'apiVersion': dyn('v1'), 'kind': dyn('ConfigMap'), 'metadata': dyn({'name': 'x'})}])"}]
            }
        }))
        .expect("loads");
        let cm = |ns: &str| {
            PolicyInput::create(json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "c", "namespace": ns}}))
        };
        assert!(p.evaluate(&cm("team-b")).rules.is_empty());
        let resp = p.evaluate(&cm("team-a"));
        assert_eq!(resp.rules[0].status, RuleStatus::Error);
        assert!(resp.rules[0].message.contains("cross-namespace"));
        assert_eq!(p.name(), "team-a/g");
    }
}
