//! The error type of `provenance-policy`.

/// Errors reported by `provenance-policy`. Each variant has a stable code ([`Error::code`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A YAML or JSON document could not be parsed.
    #[error("{file}:{line}:{column}: {reason}")]
    Parse {
        /// File name (or `<input>`).
        file: String,
        /// 1-based line (0 when unknown).
        line: usize,
        /// 1-based column (0 when unknown).
        column: usize,
        /// What is wrong.
        reason: String,
    },
    /// A policy field has an invalid value.
    #[error("policy {policy}: {path}: {reason}")]
    InvalidPolicy {
        /// Policy name.
        policy: String,
        /// Field path within the policy (e.g. `spec.rules[0].match`).
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A policy document has a field its CRD schema does not define (a misspelling, most
    /// often): the API server would reject it, and reading on without it could turn a rule
    /// into one that checks nothing.
    #[error("{0}")]
    UnknownField(Box<UnknownField>),
    /// A policy uses a feature this engine does not implement.
    #[error("unsupported: {field}")]
    Unsupported {
        /// The field or feature (e.g. `spec.rules[0].mutate`).
        field: String,
    },
    /// A JMESPath expression failed to compile or evaluate.
    #[error("JMESPath {expression:?}: {reason}")]
    Jmespath {
        /// The expression.
        expression: String,
        /// What went wrong.
        reason: String,
    },
    /// A `{{ }}` variable could not be substituted.
    #[error("variable substitution failed at {path}: {reason}")]
    Variable {
        /// Where in the rule the variable appears.
        path: String,
        /// What went wrong (e.g. `variable request.object.x not found`).
        reason: String,
    },
    /// A condition could not be evaluated (unknown operator, type error).
    #[error("condition at {path}: {reason}")]
    Condition {
        /// Where in the rule the condition appears.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// A CEL expression failed to compile or evaluate.
    #[error("CEL {expression:?}: {reason}")]
    Cel {
        /// The expression.
        expression: String,
        /// What went wrong.
        reason: String,
    },
    /// An AdmissionReview or resource is malformed.
    #[error("invalid request: {reason}")]
    InvalidRequest {
        /// What is wrong.
        reason: String,
    },
    /// A `{{ }}` variable's path ends on a key missing from the context (go-jmespath's
    /// `Unknown key`): Kyverno reports a rule error, or skips a foreach element.
    #[error(
        "variable substitution failed at {path}: failed to resolve {variable}: Unknown key {key:?} in path"
    )]
    VariableNotFound {
        /// Where in the rule the variable appears.
        path: String,
        /// The variable's expression.
        variable: String,
        /// The missing key.
        key: String,
    },
    /// A context `variable` entry evaluated to null and has no `default`: Kyverno cannot add
    /// it to the context and the rule errors (it never sees a silent null).
    #[error("context entry {name} at {path}: the variable evaluated to null and has no default")]
    ContextVariableNull {
        /// Where in the rule the entry is (`context[0].variable`).
        path: String,
        /// The entry's name.
        name: String,
    },
    /// A `namespaceSelector` must be decided for a namespace whose labels are not known (the
    /// caller supplied none for it): the rule errors instead of silently not matching.
    #[error(
        "namespaceSelector at {path}: the labels of namespace {namespace:?} are unknown; the rule cannot be matched"
    )]
    NamespaceLabelsUnknown {
        /// The namespace.
        namespace: String,
        /// The selector's field path (`match.any[0].resources.namespaceSelector`).
        path: String,
    },
    /// A rule or exception matches on `roles` / `clusterRoles` but the requester's roles are
    /// not known (no RBAC look-up was made for the request).
    #[error(
        "{path}: matches on {field} but the requester's roles are unknown; the rule cannot be matched"
    )]
    RolesUnknown {
        /// `roles` or `clusterRoles`.
        field: String,
        /// Field path of the filter.
        path: String,
    },
    /// A mutate rule's patch could not be applied (an RFC 6902 operation on a missing path, a
    /// failed `test`, a strategic merge of a map onto a scalar, ...).
    #[error("mutate {field}: {reason}")]
    Patch {
        /// Where the patch is (`mutate.patchesJson6902[1]`, `mutate.patchStrategicMerge`).
        field: String,
        /// What went wrong.
        reason: String,
    },
    /// A `context` entry's look-up in the cluster data failed (not found, not supplied, a
    /// non-2xx answer): the rule cannot be decided. The code is the look-up's own
    /// ([`crate::admission::cluster::LookupError::code`]).
    #[error("context entry {name} at {path}: {source}")]
    ContextLookup {
        /// Where in the rule the entry is (`context[1].configMap`).
        path: String,
        /// The entry's name.
        name: String,
        /// Why the look-up has no answer.
        source: crate::admission::cluster::LookupError,
    },
    /// A `generate` rule cannot produce its resource (a `data` that is not an object, a
    /// target without a kind or name after substitution).
    #[error("generate at {path}: {reason}")]
    Generate {
        /// Field path (`generate.data`, `generate.foreach[0].clone`).
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The source of a `generate.clone` or `generate.cloneList` could not be read.
    #[error("generate at {path}: source resource {source}")]
    GenerateSource {
        /// Field path (`generate.clone`, `generate.cloneList.kinds[1]`).
        path: String,
        /// The source asked for (`v1 Secret default/regcred`).
        what: String,
        /// Why the look-up has no answer.
        source: crate::admission::cluster::LookupError,
    },
    /// The targets of a mutate-existing rule (`mutate.targets[N]`) could not be read: a
    /// target named by namespace and name is missing, or the cluster data failed.
    #[error("{path}: target {what}: {source}")]
    MutateTarget {
        /// Field path (`mutate.targets[0]`).
        path: String,
        /// The target asked for (`v1 Secret staging/secret-1`).
        what: String,
        /// Why the look-up has no answer.
        source: crate::admission::cluster::LookupError,
    },
    /// A CEL expression exceeded its evaluation budget.
    #[error("CEL {expression:?}: evaluation budget of {limit} exceeded")]
    CelBudgetExceeded {
        /// The expression.
        expression: String,
        /// The budget.
        limit: u64,
    },
}

/// A field a policy document's schema does not define ([`Error::UnknownField`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownField {
    /// File name (empty when the document was not loaded from text).
    pub file: String,
    /// 1-based line of the field's key (0 when unknown).
    pub line: usize,
    /// 1-based column of the field's key (0 when unknown).
    pub column: usize,
    /// Policy name (`metadata.name`).
    pub policy: String,
    /// Field path within the document (e.g. `spec.rules[0].validate.patern`).
    pub path: String,
    /// The unknown field's name.
    pub field: String,
    /// The allowed field at that level closest to it, if one is close.
    pub suggestion: Option<String>,
}

/// `f.yaml:12:9: policy p: spec.rules[0].validate.patern: unknown field (did you mean
/// `pattern`?)`, without the parts that are unknown.
impl std::fmt::Display for UnknownField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if !self.file.is_empty() {
            f.write_str(&self.file)?;
            if self.line > 0 {
                write!(f, ":{}:{}", self.line, self.column)?;
            }
            f.write_str(": ")?;
        }
        if !self.policy.is_empty() {
            write!(f, "policy {}: ", self.policy)?;
        }
        write!(f, "{}: unknown field", self.path)?;
        if let Some(s) = &self.suggestion {
            write!(f, " (did you mean `{s}`?)")?;
        }
        Ok(())
    }
}

impl Error {
    /// A stable, machine-readable code for this error, e.g. `policy.unsupported`.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Parse { .. } => "policy.parse",
            Error::InvalidPolicy { .. } | Error::UnknownField(_) => "policy.invalid",
            Error::Unsupported { .. } => "policy.unsupported",
            Error::Jmespath { .. } => "policy.jmespath",
            Error::Variable { .. } => "policy.variable",
            Error::Condition { .. } => "policy.condition",
            Error::Cel { .. } => "policy.cel",
            Error::InvalidRequest { .. } => "policy.request",
            Error::VariableNotFound { .. } => "policy.variable_not_found",
            Error::ContextVariableNull { .. } => "policy.context.variable_null",
            Error::NamespaceLabelsUnknown { .. } => "policy.match.namespace_labels_unknown",
            Error::RolesUnknown { .. } => "policy.match.roles_unknown",
            Error::CelBudgetExceeded { .. } => "policy.cel.budget_exceeded",
            Error::Patch { .. } => "policy.mutate.patch",
            Error::ContextLookup { source, .. } => source.code(),
            Error::Generate { .. } => "policy.generate",
            Error::MutateTarget { source, .. } => match source {
                crate::admission::cluster::LookupError::NotFound { .. } => {
                    "policy.mutate.target_not_found"
                }
                other => other.code(),
            },
            Error::GenerateSource { source, .. } => match source {
                crate::admission::cluster::LookupError::NotFound { .. } => {
                    "policy.generate.source_not_found"
                }
                other => other.code(),
            },
        }
    }
}
