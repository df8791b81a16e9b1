//! The field inventory of every policy document this crate loads, checked before a document
//! is read: a field Kyverno's (or Kubernetes') CRD schema does not define is a load error
//! ([`Error::UnknownField`]) naming the field, its path and the closest allowed name, as the
//! API server would reject it. A misspelled `pattern` must never turn a rule into one that
//! checks nothing.
//!
//! The inventory lists names only. Whether a known field is enforced, or refused with
//! [`Error::Unsupported`], is decided where the field is read. Free-form content (resource
//! patterns, condition keys and values, labels, `data` of a generate rule) is not looked
//! into. `verifyImages` entries have their own, stricter inventory
//! ([`crate::kyverno::verify_images_fields`]), and so do the attestors of an ImageValidatingPolicy.

use serde_json::Value;

use crate::Error;
use crate::error::UnknownField;

/// What a field holds.
#[derive(Clone, Copy)]
pub(crate) enum Node {
    /// Free-form content: not looked into.
    Any,
    /// An object with exactly these fields.
    Obj(&'static [(&'static str, Node)]),
    /// A list whose items are `Node`.
    List(&'static Node),
    /// Kyverno conditions: `{any: [...], all: [...]}` or a (legacy) list of conditions.
    Conditions,
    /// A node defined by a function (for recursive shapes).
    Lazy(fn() -> Node),
    /// A string that must be one of these values (a CRD enum).
    Enum(&'static [&'static str]),
    /// A string.
    Str,
    /// A boolean.
    Bool,
}

use Node::{Any, Bool, Conditions, Enum, Lazy, List, Obj, Str};

/// Kyverno's failure actions (the CRD accepts both spellings).
const FAILURE_ACTION: Node = Enum(&["Audit", "Enforce", "audit", "enforce"]);

/// A list of strings.
const STRINGS: Node = List(&Str);

const OPERATIONS: Node = List(&Enum(&["CREATE", "CONNECT", "UPDATE", "DELETE"]));
const FAILURE_POLICY: Node = Enum(&["Ignore", "Fail"]);

/// `metadata` (Kubernetes ObjectMeta).
pub(crate) const METADATA: Node = Obj(&[
    ("name", Any),
    ("namespace", Any),
    ("generateName", Any),
    ("labels", Any),
    ("annotations", Any),
    ("uid", Any),
    ("resourceVersion", Any),
    ("generation", Any),
    ("creationTimestamp", Any),
    ("deletionTimestamp", Any),
    ("deletionGracePeriodSeconds", Any),
    ("ownerReferences", Any),
    ("finalizers", Any),
    ("managedFields", Any),
    ("selfLink", Any),
]);

const LABEL_SELECTOR: Node = Obj(&[
    ("matchLabels", Any),
    (
        "matchExpressions",
        List(&Obj(&[("key", Any), ("operator", Any), ("values", Any)])),
    ),
]);

const CONDITION: Node = Obj(&[
    ("key", Any),
    ("operator", Any),
    ("value", Any),
    ("message", Any),
]);

const CONDITION_LIST: Node = List(&CONDITION);
const ANY_ALL_CONDITIONS: Node = Obj(&[("any", CONDITION_LIST), ("all", CONDITION_LIST)]);

const RESOURCE_DESCRIPTION: Node = Obj(&[
    ("kinds", STRINGS),
    ("name", Str),
    ("names", STRINGS),
    ("namespaces", STRINGS),
    ("annotations", Any),
    ("selector", LABEL_SELECTOR),
    ("namespaceSelector", LABEL_SELECTOR),
    ("operations", OPERATIONS),
]);

const SUBJECTS: Node = List(&Obj(&[
    ("kind", Any),
    ("apiGroup", Any),
    ("name", Any),
    ("namespace", Any),
]));

const RESOURCE_FILTER: Node = Obj(&[
    ("resources", RESOURCE_DESCRIPTION),
    ("subjects", SUBJECTS),
    ("roles", STRINGS),
    ("clusterRoles", STRINGS),
]);

/// `match` / `exclude` of a rule (`any` / `all`, or the legacy flat form).
const MATCH: Node = Obj(&[
    ("any", List(&RESOURCE_FILTER)),
    ("all", List(&RESOURCE_FILTER)),
    ("resources", RESOURCE_DESCRIPTION),
    ("subjects", SUBJECTS),
    ("roles", STRINGS),
    ("clusterRoles", STRINGS),
]);

const KEY_VALUE: Node = Obj(&[("key", Any), ("value", Any)]);

/// One `context` entry.
const CONTEXT: Node = List(&Obj(&[
    ("name", Any),
    ("configMap", Obj(&[("name", Any), ("namespace", Any)])),
    (
        "apiCall",
        Obj(&[
            ("urlPath", Any),
            ("method", Enum(&["GET", "POST"])),
            ("data", List(&KEY_VALUE)),
            (
                "service",
                Obj(&[
                    ("url", Any),
                    ("caBundle", Any),
                    ("headers", List(&KEY_VALUE)),
                ]),
            ),
            ("jmesPath", Any),
            ("default", Any),
        ]),
    ),
    (
        "imageRegistry",
        Obj(&[
            ("reference", Any),
            ("jmesPath", Any),
            (
                "imageRegistryCredentials",
                Obj(&[
                    ("allowInsecureRegistry", Any),
                    ("providers", Any),
                    ("secrets", Any),
                ]),
            ),
        ]),
    ),
    (
        "variable",
        Obj(&[("value", Any), ("jmesPath", Any), ("default", Any)]),
    ),
    ("globalReference", Obj(&[("name", Any), ("jmesPath", Any)])),
]));

pub(crate) const NAME_EXPRESSION: Node = List(&Obj(&[("name", Any), ("expression", Any)]));

const ACTION_OVERRIDES: Node = List(&Obj(&[
    ("action", FAILURE_ACTION),
    ("namespaces", STRINGS),
    ("namespaceSelector", LABEL_SELECTOR),
]));

const DENY: Node = Obj(&[("conditions", Conditions)]);

const VALIDATE_FOREACH: Node = List(&Obj(&[
    ("list", Any),
    ("elementScope", Any),
    ("context", CONTEXT),
    ("preconditions", Conditions),
    ("pattern", Any),
    ("anyPattern", Any),
    ("deny", DENY),
    ("foreach", Lazy(validate_foreach)),
]));

fn validate_foreach() -> Node {
    VALIDATE_FOREACH
}

const MUTATE_FOREACH: Node = List(&Obj(&[
    ("list", Any),
    ("order", Any),
    ("context", CONTEXT),
    ("preconditions", Conditions),
    ("patchStrategicMerge", Any),
    ("patchesJson6902", Any),
    ("foreach", Lazy(mutate_foreach)),
]));

fn mutate_foreach() -> Node {
    MUTATE_FOREACH
}

const CERT_LOG: Node = Obj(&[("ignoreSCT", Any), ("pubkey", Any), ("tsaCertChain", Any)]);
const REKOR: Node = Obj(&[("url", Any), ("pubkey", Any), ("ignoreTlog", Any)]);

/// `validate.manifests` (evaluated as unsupported; its fields are still checked).
const MANIFESTS: Node = Obj(&[
    (
        "attestors",
        List(&Obj(&[
            ("count", Any),
            (
                "entries",
                List(&Obj(&[
                    (
                        "keys",
                        Obj(&[
                            ("publicKeys", Any),
                            ("signatureAlgorithm", Any),
                            ("kms", Any),
                            ("secret", Obj(&[("name", Any), ("namespace", Any)])),
                            ("rekor", REKOR),
                            ("ctlog", CERT_LOG),
                        ]),
                    ),
                    (
                        "certificates",
                        Obj(&[
                            ("cert", Any),
                            ("certChain", Any),
                            ("rekor", REKOR),
                            ("ctlog", CERT_LOG),
                        ]),
                    ),
                    (
                        "keyless",
                        Obj(&[
                            ("issuer", Any),
                            ("issuerRegExp", Any),
                            ("subject", Any),
                            ("subjectRegExp", Any),
                            ("roots", Any),
                            ("additionalExtensions", Any),
                            ("rekor", REKOR),
                            ("ctlog", CERT_LOG),
                        ]),
                    ),
                    ("attestor", Any),
                    ("annotations", Any),
                    ("repository", Any),
                    ("signatureAlgorithm", Any),
                ])),
            ),
        ])),
    ),
    ("annotationDomain", Any),
    (
        "ignoreFields",
        List(&Obj(&[
            (
                "objects",
                List(&Obj(&[
                    ("group", Any),
                    ("version", Any),
                    ("kind", Any),
                    ("namespace", Any),
                    ("name", Any),
                ])),
            ),
            ("fields", Any),
        ])),
    ),
    ("dryRun", Obj(&[("enable", Any), ("namespace", Any)])),
    ("repository", Any),
]);

const VALIDATE: Node = Obj(&[
    ("failureAction", FAILURE_ACTION),
    ("failureActionOverrides", ACTION_OVERRIDES),
    ("allowExistingViolations", Any),
    ("message", Any),
    ("manifests", MANIFESTS),
    ("foreach", Lazy(validate_foreach)),
    ("pattern", Any),
    ("anyPattern", Any),
    ("deny", DENY),
    (
        "podSecurity",
        Obj(&[
            ("level", Any),
            ("version", Any),
            (
                "exclude",
                List(&Obj(&[
                    ("controlName", Any),
                    ("images", Any),
                    ("restrictedField", Any),
                    ("values", Any),
                ])),
            ),
        ]),
    ),
    (
        "cel",
        Obj(&[
            ("generate", Any),
            (
                "expressions",
                List(&Obj(&[
                    ("expression", Any),
                    ("message", Any),
                    ("messageExpression", Any),
                    ("reason", Any),
                ])),
            ),
            ("paramKind", Obj(&[("apiVersion", Any), ("kind", Any)])),
            (
                "paramRef",
                Obj(&[
                    ("name", Any),
                    ("namespace", Any),
                    ("selector", LABEL_SELECTOR),
                    ("parameterNotFoundAction", Any),
                ]),
            ),
            (
                "auditAnnotations",
                List(&Obj(&[("key", Any), ("valueExpression", Any)])),
            ),
            ("variables", NAME_EXPRESSION),
        ]),
    ),
    ("assert", Any),
]);

const MUTATE: Node = Obj(&[
    (
        "targets",
        List(&Obj(&[
            ("apiVersion", Any),
            ("kind", Any),
            ("name", Any),
            ("namespace", Any),
            ("uid", Any),
            ("selector", LABEL_SELECTOR),
            ("context", CONTEXT),
            ("preconditions", Conditions),
        ])),
    ),
    ("patchStrategicMerge", Any),
    ("patchesJson6902", Any),
    ("foreach", Lazy(mutate_foreach)),
    ("mutateExistingOnPolicyUpdate", Any),
]);

const CLONE: Node = Obj(&[("name", Str), ("namespace", Str)]);
const CLONE_LIST: Node = Obj(&[
    ("namespace", Str),
    ("kinds", STRINGS),
    ("selector", LABEL_SELECTOR),
]);

/// `generate` (checked further by `generate::check` when the policy loads: one pattern, a
/// target, namespaces of a namespaced Policy; a target `uid` is refused). `data` is the
/// generated object, free-form.
const GENERATE: Node = Obj(&[
    ("generateExisting", Bool),
    ("synchronize", Bool),
    ("orphanDownstreamOnPolicyDelete", Bool),
    ("apiVersion", Str),
    ("kind", Str),
    ("name", Str),
    ("namespace", Str),
    ("uid", Str),
    ("data", Any),
    ("clone", CLONE),
    ("cloneList", CLONE_LIST),
    (
        "foreach",
        List(&Obj(&[
            ("list", Str),
            ("context", CONTEXT),
            ("preconditions", Conditions),
            ("apiVersion", Str),
            ("kind", Str),
            ("name", Str),
            ("namespace", Str),
            ("uid", Str),
            ("data", Any),
            ("clone", CLONE),
            ("cloneList", CLONE_LIST),
        ])),
    ),
]);

/// One rule of a ClusterPolicy / Policy.
const RULE: Node = Obj(&[
    ("name", Any),
    ("context", CONTEXT),
    ("match", MATCH),
    ("exclude", MATCH),
    ("imageExtractors", Any),
    ("preconditions", Conditions),
    ("celPreconditions", NAME_EXPRESSION),
    ("mutate", MUTATE),
    ("validate", VALIDATE),
    ("generate", GENERATE),
    // Checked by `verify_images_fields`.
    ("verifyImages", Any),
    ("skipBackgroundRequests", Any),
    ("reportProperties", Any),
]);

/// A `kyverno.io` ClusterPolicy or Policy (v1 and v2beta1).
const CLUSTER_POLICY: Node = Obj(&[
    ("apiVersion", Any),
    ("kind", Any),
    ("metadata", METADATA),
    (
        "spec",
        Obj(&[
            ("rules", List(&RULE)),
            ("applyRules", Enum(&["All", "One"])),
            ("failurePolicy", FAILURE_POLICY),
            ("validationFailureAction", FAILURE_ACTION),
            ("validationFailureActionOverrides", ACTION_OVERRIDES),
            ("emitWarning", Bool),
            ("admission", Bool),
            ("background", Bool),
            ("schemaValidation", Any),
            ("webhookTimeoutSeconds", Any),
            ("mutateExistingOnPolicyUpdate", Any),
            ("generateExisting", Bool),
            ("generateExistingOnPolicyUpdate", Bool),
            ("useServerSideApply", Bool),
            (
                "webhookConfiguration",
                Obj(&[
                    ("failurePolicy", FAILURE_POLICY),
                    ("timeoutSeconds", Any),
                    ("matchConditions", NAME_EXPRESSION),
                ]),
            ),
        ]),
    ),
    ("status", Any),
]);

/// A `kyverno.io` PolicyException (v2, v2beta1, v2alpha1).
const POLICY_EXCEPTION: Node = Obj(&[
    ("apiVersion", Any),
    ("kind", Any),
    ("metadata", METADATA),
    (
        "spec",
        Obj(&[
            ("background", Any),
            (
                "match",
                Obj(&[
                    ("any", List(&RESOURCE_FILTER)),
                    ("all", List(&RESOURCE_FILTER)),
                ]),
            ),
            ("conditions", Conditions),
            (
                "exceptions",
                List(&Obj(&[("policyName", Any), ("ruleNames", Any)])),
            ),
            (
                "podSecurity",
                List(&Obj(&[
                    ("controlName", Any),
                    ("images", Any),
                    ("restrictedField", Any),
                    ("values", Any),
                ])),
            ),
        ]),
    ),
    ("status", Any),
]);

const RULE_WITH_OPERATIONS: Node = List(&Obj(&[
    ("apiGroups", Any),
    ("apiVersions", Any),
    ("resources", Any),
    ("operations", Any),
    ("scope", Any),
    ("resourceNames", Any),
]));

/// `matchConstraints` / `matchResources`.
pub(crate) const MATCH_RESOURCES: Node = Obj(&[
    ("namespaceSelector", LABEL_SELECTOR),
    ("objectSelector", LABEL_SELECTOR),
    ("resourceRules", RULE_WITH_OPERATIONS),
    ("excludeResourceRules", RULE_WITH_OPERATIONS),
    ("matchPolicy", Any),
]);

const VALIDATIONS: Node = List(&Obj(&[
    ("expression", Any),
    ("message", Any),
    ("messageExpression", Any),
    ("reason", Any),
]));

pub(crate) const AUDIT_ANNOTATIONS: Node = List(&Obj(&[("key", Any), ("valueExpression", Any)]));

const PARAM_KIND: Node = Obj(&[("apiVersion", Any), ("kind", Any)]);
const PARAM_REF: Node = Obj(&[
    ("name", Any),
    ("namespace", Any),
    ("selector", LABEL_SELECTOR),
    ("parameterNotFoundAction", Any),
]);

/// A `policies.kyverno.io` ValidatingPolicy / NamespacedValidatingPolicy.
const VALIDATING_POLICY: Node = Obj(&[
    ("apiVersion", Any),
    ("kind", Any),
    ("metadata", METADATA),
    (
        "spec",
        Obj(&[
            ("matchConstraints", MATCH_RESOURCES),
            ("matchConditions", NAME_EXPRESSION),
            ("variables", NAME_EXPRESSION),
            ("validations", VALIDATIONS),
            ("auditAnnotations", AUDIT_ANNOTATIONS),
            ("validationActions", Any),
            ("failurePolicy", Any),
            (
                "evaluation",
                Obj(&[
                    ("mode", Any),
                    ("admission", Obj(&[("enabled", Any)])),
                    ("background", Obj(&[("enabled", Any)])),
                ]),
            ),
            ("webhookConfiguration", Obj(&[("timeoutSeconds", Any)])),
            (
                "autogen",
                Obj(&[
                    ("podControllers", Obj(&[("controllers", Any)])),
                    ("validatingAdmissionPolicy", Obj(&[("enabled", Any)])),
                ]),
            ),
            ("paramKind", PARAM_KIND),
            ("paramRef", PARAM_REF),
        ]),
    ),
    ("status", Any),
]);

/// A `policies.kyverno.io` ImageValidatingPolicy: its spec keys (their content is checked by
/// [`crate::cel_policies::image_validating_policy`]).
const IMAGE_VALIDATING_POLICY: Node = Obj(&[
    ("apiVersion", Any),
    ("kind", Any),
    ("metadata", METADATA),
    (
        "spec",
        Obj(&[
            ("matchConstraints", MATCH_RESOURCES),
            ("matchConditions", NAME_EXPRESSION),
            ("matchImageReferences", Any),
            ("images", Any),
            ("attestors", Any),
            ("attestations", Any),
            ("variables", NAME_EXPRESSION),
            ("validations", VALIDATIONS),
            ("auditAnnotations", AUDIT_ANNOTATIONS),
            ("validationActions", Any),
            ("failurePolicy", Any),
            ("validationConfigurations", Any),
            ("evaluation", Any),
            ("webhookConfiguration", Any),
            ("autogen", Any),
            ("credentials", Any),
        ]),
    ),
    ("status", Any),
]);

/// A Kubernetes ValidatingAdmissionPolicy.
const VALIDATING_ADMISSION_POLICY: Node = Obj(&[
    ("apiVersion", Any),
    ("kind", Any),
    ("metadata", METADATA),
    (
        "spec",
        Obj(&[
            ("paramKind", PARAM_KIND),
            ("matchConstraints", MATCH_RESOURCES),
            ("validations", VALIDATIONS),
            ("failurePolicy", Any),
            ("auditAnnotations", AUDIT_ANNOTATIONS),
            ("matchConditions", NAME_EXPRESSION),
            ("variables", NAME_EXPRESSION),
        ]),
    ),
    ("status", Any),
]);

/// A Kubernetes ValidatingAdmissionPolicyBinding.
const BINDING: Node = Obj(&[
    ("apiVersion", Any),
    ("kind", Any),
    ("metadata", METADATA),
    (
        "spec",
        Obj(&[
            ("policyName", Any),
            ("paramRef", PARAM_REF),
            ("matchResources", MATCH_RESOURCES),
            ("validationActions", Any),
        ]),
    ),
]);

const MUTATIONS: Node = List(&Obj(&[
    ("patchType", Enum(&["ApplyConfiguration", "JSONPatch"])),
    ("applyConfiguration", Obj(&[("expression", Str)])),
    ("jsonPatch", Obj(&[("expression", Str)])),
]));
const REINVOCATION_POLICY: Node = Enum(&["Never", "IfNeeded"]);

/// A Kubernetes MutatingAdmissionPolicy.
const MUTATING_ADMISSION_POLICY: Node = Obj(&[
    ("apiVersion", Any),
    ("kind", Any),
    ("metadata", METADATA),
    (
        "spec",
        Obj(&[
            ("paramKind", PARAM_KIND),
            ("matchConstraints", MATCH_RESOURCES),
            ("variables", NAME_EXPRESSION),
            ("mutations", MUTATIONS),
            ("failurePolicy", FAILURE_POLICY),
            ("matchConditions", NAME_EXPRESSION),
            ("reinvocationPolicy", REINVOCATION_POLICY),
        ]),
    ),
    ("status", Any),
]);

/// A Kubernetes MutatingAdmissionPolicyBinding.
const MUTATING_BINDING: Node = Obj(&[
    ("apiVersion", Any),
    ("kind", Any),
    ("metadata", METADATA),
    (
        "spec",
        Obj(&[
            ("policyName", Str),
            ("paramRef", PARAM_REF),
            ("matchResources", MATCH_RESOURCES),
        ]),
    ),
]);

/// A `policies.kyverno.io` MutatingPolicy / NamespacedMutatingPolicy.
const MUTATING_POLICY: Node = Obj(&[
    ("apiVersion", Any),
    ("kind", Any),
    ("metadata", METADATA),
    (
        "spec",
        Obj(&[
            ("matchConstraints", MATCH_RESOURCES),
            ("matchConditions", NAME_EXPRESSION),
            ("variables", NAME_EXPRESSION),
            ("mutations", MUTATIONS),
            ("failurePolicy", FAILURE_POLICY),
            ("reinvocationPolicy", REINVOCATION_POLICY),
            ("auditAnnotations", AUDIT_ANNOTATIONS),
            (
                "evaluation",
                Obj(&[
                    ("mode", Any),
                    ("admission", Obj(&[("enabled", Bool)])),
                    ("background", Obj(&[("enabled", Bool)])),
                    ("mutateExisting", Obj(&[("enabled", Bool)])),
                    ("skipBackgroundRequests", Bool),
                    ("useServerSideApply", Bool),
                ]),
            ),
            ("webhookConfiguration", Obj(&[("timeoutSeconds", Any)])),
            (
                "autogen",
                Obj(&[
                    ("podControllers", Obj(&[("controllers", Any)])),
                    ("mutatingAdmissionPolicy", Obj(&[("enabled", Bool)])),
                ]),
            ),
            ("targetMatchConstraints", Any),
            ("targetMatchConditions", NAME_EXPRESSION),
        ]),
    ),
    ("status", Any),
]);

/// A `policies.kyverno.io` PolicyException.
const CEL_POLICY_EXCEPTION: Node = Obj(&[
    ("apiVersion", Any),
    ("kind", Any),
    ("metadata", METADATA),
    (
        "spec",
        Obj(&[
            ("policyRefs", List(&Obj(&[("name", Any), ("kind", Any)]))),
            ("matchConditions", NAME_EXPRESSION),
            ("images", Any),
            ("allowedValues", Any),
            ("reportResult", Any),
            ("evaluationMode", Any),
            ("expiresAt", Any),
            ("properties", Any),
        ]),
    ),
    ("status", Any),
]);

/// The document kinds with a field inventory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DocKind {
    ClusterPolicy,
    PolicyException,
    ValidatingPolicy,
    ImageValidatingPolicy,
    ValidatingAdmissionPolicy,
    ValidatingAdmissionPolicyBinding,
    CelPolicyException,
    MutatingAdmissionPolicy,
    MutatingAdmissionPolicyBinding,
    MutatingPolicy,
}

impl DocKind {
    fn node(self) -> Node {
        match self {
            DocKind::ClusterPolicy => CLUSTER_POLICY,
            DocKind::PolicyException => POLICY_EXCEPTION,
            DocKind::ValidatingPolicy => VALIDATING_POLICY,
            DocKind::ImageValidatingPolicy => IMAGE_VALIDATING_POLICY,
            DocKind::ValidatingAdmissionPolicy => VALIDATING_ADMISSION_POLICY,
            DocKind::ValidatingAdmissionPolicyBinding => BINDING,
            DocKind::CelPolicyException => CEL_POLICY_EXCEPTION,
            DocKind::MutatingAdmissionPolicy => MUTATING_ADMISSION_POLICY,
            DocKind::MutatingAdmissionPolicyBinding => MUTATING_BINDING,
            DocKind::MutatingPolicy => MUTATING_POLICY,
        }
    }
}

/// Checks a document of `kind` against its inventory: the first unknown field found is an
/// [`Error::UnknownField`] (its position is filled in by the loader, which has
/// the text).
pub(crate) fn check(doc: &Value, kind: DocKind) -> Result<(), Error> {
    check_node(doc, kind.node())
}

/// [`check`] against an inventory defined next to its kind (GeneratingPolicy and
/// DeletingPolicy define theirs in their modules).
pub(crate) fn check_node(doc: &Value, node: Node) -> Result<(), Error> {
    let mut path = String::new();
    let policy = doc
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    match walk(doc, node, &mut path) {
        None => Ok(()),
        Some(Found::Field(path, field, suggestion)) => {
            Err(Error::UnknownField(Box::new(UnknownField {
                file: String::new(),
                line: 0,
                column: 0,
                policy,
                path,
                field,
                suggestion: suggestion.map(str::to_owned),
            })))
        }
        Some(Found::Type(path, expected)) => Err(Error::InvalidPolicy {
            policy,
            path,
            reason: format!("must be {expected}: a value of another type would be read as absent"),
        }),
        Some(Found::Value(path, value, allowed)) => {
            let hint = suggest(&value, allowed)
                .map(|s| format!("; did you mean `{s}`?"))
                .unwrap_or_default();
            Err(Error::InvalidPolicy {
                policy,
                path,
                reason: format!(
                    "unknown value {value:?} (one of {}{hint})",
                    allowed.join(", ")
                ),
            })
        }
    }
}

/// What [`walk`] found wrong.
enum Found {
    /// A value of another type than the schema's: path, the type expected.
    Type(String, &'static str),
    /// A field the schema does not define: path, field, closest allowed name.
    Field(String, String, Option<&'static str>),
    /// A value outside an enum: path, value, allowed values.
    Value(String, String, &'static [&'static str]),
}

fn walk(v: &Value, node: Node, path: &mut String) -> Option<Found> {
    match node {
        Any => None,
        Lazy(f) => walk(v, f(), path),
        _ if v.is_null() => None,
        Str if !v.is_string() => Some(Found::Type(path.clone(), "a string")),
        Bool if !v.is_boolean() => Some(Found::Type(path.clone(), "true or false")),
        Str | Bool => None,
        List(_) if !v.is_array() => Some(Found::Type(path.clone(), "a list")),
        Obj(_) if !v.is_object() => Some(Found::Type(path.clone(), "an object")),
        Enum(_) if !v.is_string() => Some(Found::Type(path.clone(), "a string")),
        List(item) => {
            let a = v.as_array()?;
            a.iter().enumerate().find_map(|(i, x)| {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                let r = walk(x, *item, path);
                path.truncate(len);
                r
            })
        }
        Conditions => match v {
            Value::Array(_) => walk(v, CONDITION_LIST, path),
            Value::Object(_) => walk(v, ANY_ALL_CONDITIONS, path),
            _ => Some(Found::Type(
                path.clone(),
                "conditions (a list or an object)",
            )),
        },
        Enum(values) => match v.as_str() {
            Some(s) if !values.contains(&s) => {
                Some(Found::Value(path.clone(), s.to_owned(), values))
            }
            _ => None,
        },
        Obj(fields) => {
            let o = v.as_object()?;
            for (k, x) in o {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
                let Some((_, child)) = fields.iter().find(|(n, _)| n == k) else {
                    let names: Vec<&'static str> = fields.iter().map(|(n, _)| *n).collect();
                    return Some(Found::Field(path.clone(), k.clone(), suggest(k, &names)));
                };
                if let Some(found) = walk(x, *child, path) {
                    return Some(found);
                }
                path.truncate(len);
            }
            None
        }
    }
}

/// The allowed name closest to `word` (edit distance at most 2, ignoring case), if any.
pub(crate) fn suggest(word: &str, allowed: &[&'static str]) -> Option<&'static str> {
    let w = word.to_ascii_lowercase();
    allowed
        .iter()
        .map(|a| (distance(&w, &a.to_ascii_lowercase()), *a))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, a)| a)
}

/// Levenshtein distance over characters.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::admission::loader::load_policies;

    const POLICY: &str = "\
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: p
spec:
  validationFailureAction: Enforce
  rules:
  - name: r
    match:
      any:
      - resources:
          kinds: [Pod]
    validate:
      message: m
      pattern:
        spec:
          anything: goes
";

    /// The load error of `POLICY` with `from` replaced by `to`.
    fn load_err(from: &str, to: &str) -> Error {
        assert!(POLICY.contains(from), "{from}");
        load_policies(&POLICY.replacen(from, to, 1), "p.yaml").unwrap_err()
    }

    fn unknown(e: &Error) -> (&str, usize, usize, Option<&str>) {
        match e {
            Error::UnknownField(u) => (&u.path, u.line, u.column, u.suggestion.as_deref()),
            e => panic!("expected an unknown field, got {e:?}"),
        }
    }

    #[test]
    fn the_reference_policy_loads() {
        assert_eq!(load_policies(POLICY, "p.yaml").unwrap().len(), 1);
    }

    #[test]
    fn a_misspelled_pattern_is_refused_with_path_position_and_suggestion() {
        let e = load_err("      pattern:", "      patern:");
        assert_eq!(e.code(), "policy.invalid");
        assert_eq!(
            unknown(&e),
            ("spec.rules[0].validate.patern", 15, 7, Some("pattern"))
        );
        assert_eq!(
            e.to_string(),
            "p.yaml:15:7: policy p: spec.rules[0].validate.patern: unknown field \
             (did you mean `pattern`?)"
        );
    }

    #[test]
    fn misspellings_at_every_level() {
        for (from, to, path, hint) in [
            ("  rules:", "  rule:", "spec.rule", Some("rules")),
            (
                "  validationFailureAction",
                "  validationFailureActon",
                "spec.validationFailureActon",
                Some("validationFailureAction"),
            ),
            ("metadata:", "metdata:", "metdata", Some("metadata")),
            ("  name: p", "  nme: p", "metadata.nme", Some("name")),
            (
                "    match:",
                "    matches:",
                "spec.rules[0].matches",
                Some("match"),
            ),
            (
                "      any:",
                "      anyy:",
                "spec.rules[0].match.anyy",
                Some("any"),
            ),
            (
                "      - resources:",
                "      - resource:",
                "spec.rules[0].match.any[0].resource",
                Some("resources"),
            ),
            (
                "          kinds:",
                "          kind:",
                "spec.rules[0].match.any[0].resources.kind",
                Some("kinds"),
            ),
            (
                "      message:",
                "      messag:",
                "spec.rules[0].validate.messag",
                Some("message"),
            ),
            (
                "      message:",
                "      somethingElse:",
                "spec.rules[0].validate.somethingElse",
                None,
            ),
        ] {
            let e = load_err(from, to);
            let (p, line, _, h) = unknown(&e);
            assert_eq!((p, h), (path, hint), "{to}");
            assert!(line > 0, "{to}: no line");
        }
    }

    #[test]
    fn enum_values_are_checked() {
        let e = load_err(
            "kinds: [Pod]",
            "kinds: [Pod]\n          operations: [CREATE, UPDTE]",
        );
        assert_eq!(e.code(), "policy.invalid");
        assert_eq!(
            e.to_string(),
            "policy p: p.yaml:13:32: spec.rules[0].match.any[0].resources.operations[1]: \
             unknown value \"UPDTE\" (one of CREATE, CONNECT, UPDATE, DELETE; did you mean `UPDATE`?)"
        );
        let e = load_err("  rules:", "  failurePolicy: Ignroe\n  rules:");
        assert!(e.to_string().contains("did you mean `Ignore`?"), "{e}");
    }

    #[test]
    fn pattern_contents_are_free_form() {
        let p = POLICY.replace(
            "anything: goes",
            "(anythin?): \"*\"\n          =(patern): x",
        );
        load_policies(&p, "p.yaml").unwrap();
    }

    #[test]
    fn conditions_context_foreach_and_mutate_are_checked() {
        let rule = |body: &str| {
            format!(
                "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {{name: p}}\nspec:\n  rules:\n  - name: r\n    match: {{any: [{{resources: {{kinds: [Pod]}}}}]}}\n{body}"
            )
        };
        for (body, path, hint) in [
            (
                "    preconditions:\n      anyy:\n      - {key: a, operator: Equals, value: a}\n    validate: {deny: {}}\n",
                "spec.rules[0].preconditions.anyy",
                Some("any"),
            ),
            (
                "    validate:\n      deny:\n        conditions:\n          all:\n          - {key: a, opertor: Equals, value: a}\n",
                "spec.rules[0].validate.deny.conditions.all[0].opertor",
                Some("operator"),
            ),
            (
                "    context:\n    - name: c\n      variable: {jmespath: x}\n    validate: {deny: {}}\n",
                "spec.rules[0].context[0].variable.jmespath",
                Some("jmesPath"),
            ),
            (
                "    validate:\n      foreach:\n      - list: x\n        foreach:\n        - list: y\n          patern: {}\n",
                "spec.rules[0].validate.foreach[0].foreach[0].patern",
                Some("pattern"),
            ),
            (
                "    mutate:\n      patchStrategicMerg: {}\n",
                "spec.rules[0].mutate.patchStrategicMerg",
                Some("patchStrategicMerge"),
            ),
            (
                "    generate:\n      synchronise: true\n",
                "spec.rules[0].generate.synchronise",
                Some("synchronize"),
            ),
        ] {
            let e = load_policies(&rule(body), "p.yaml").unwrap_err();
            let (p, line, _, h) = unknown(&e);
            assert_eq!((p, h), (path, hint), "{body}");
            assert!(line > 0, "{body}: no line");
        }
    }

    #[test]
    fn mutate_and_generate_rules_still_load_as_unsupported() {
        let p = POLICY.replace(
            "    validate:\n      message: m\n      pattern:\n        spec:\n          anything: goes\n",
            "    mutate:\n      patchStrategicMerge: {metadata: {labels: {a: b}}}\n",
        );
        let loaded = load_policies(&p, "p.yaml").unwrap();
        match &loaded[0] {
            crate::admission::loader::LoadedPolicy::Kyverno(cp) => {
                assert!(matches!(
                    cp.rules[0].kind,
                    crate::kyverno::policy::RuleKind::Mutate
                ));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unread_fields_that_change_decisions_are_refused() {
        for (from, to) in [
            ("spec:\n  valid", "spec:\n  applyRules: One\n  valid"),
            (
                "spec:\n  valid",
                "spec:\n  webhookConfiguration:\n    matchConditions: [{name: a, expression: 'true'}]\n  valid",
            ),
        ] {
            let e = load_err(from, to);
            assert_eq!(e.code(), "policy.unsupported", "{to}: {e}");
        }
        load_policies(
            &POLICY.replace(
                "spec:\n  valid",
                "spec:\n  applyRules: All\n  admission: true\n  webhookTimeoutSeconds: 10\n  valid",
            ),
            "p.yaml",
        )
        .unwrap();
    }

    #[test]
    fn unknown_kinds_and_versions_are_refused() {
        let e = load_err("kind: ClusterPolicy", "kind: ClusterPolcy");
        assert_eq!(e.code(), "policy.invalid");
        let text = e.to_string();
        assert!(text.contains("p.yaml:2:1: kind"), "{text}");
        assert!(text.contains("did you mean `ClusterPolicy`?"), "{text}");
        let e = load_err("kind: ClusterPolicy", "kind: Namespace");
        assert!(e.to_string().contains("unknown policy kind"), "{e}");
        let e = load_err("kyverno.io/v1", "kyverno.io/v3");
        assert!(
            e.to_string()
                .contains("ClusterPolicy is not served as kyverno.io/v3"),
            "{e}"
        );
        // Kinds Kyverno defines but this engine does not evaluate load as unsupported.
        let loaded = load_policies(
            "apiVersion: kyverno.io/v2\nkind: ClusterCleanupPolicy\nmetadata: {name: m}\n",
            "m.yaml",
        )
        .unwrap();
        assert!(matches!(
            loaded[0],
            crate::admission::loader::LoadedPolicy::Unsupported { .. }
        ));
    }

    #[test]
    fn exceptions_and_cel_kinds_are_checked() {
        for (doc, path, hint) in [
            (
                "apiVersion: kyverno.io/v2\nkind: PolicyException\nmetadata: {name: e}\nspec:\n  exceptions:\n  - policyName: p\n    ruleName: [r]\n",
                "spec.exceptions[0].ruleName",
                Some("ruleNames"),
            ),
            (
                "apiVersion: policies.kyverno.io/v1\nkind: ValidatingPolicy\nmetadata: {name: v}\nspec:\n  validations:\n  - expresion: 'true'\n",
                "spec.validations[0].expresion",
                Some("expression"),
            ),
            (
                "apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicyBinding\nmetadata: {name: b}\nspec:\n  policyname: v\n",
                "spec.policyname",
                Some("policyName"),
            ),
            (
                "apiVersion: policies.kyverno.io/v1\nkind: ImageValidatingPolicy\nmetadata: {name: i}\nspec:\n  atestors: []\n",
                "spec.atestors",
                Some("attestors"),
            ),
        ] {
            let e = load_policies(doc, "x.yaml").unwrap_err();
            let (p, line, _, h) = unknown(&e);
            assert_eq!((p, h), (path, hint), "{doc}");
            assert!(line > 0);
        }
    }

    #[test]
    fn an_expiring_cel_exception_is_refused() {
        let doc = "apiVersion: policies.kyverno.io/v1\nkind: PolicyException\nmetadata: {name: e}\nspec:\n  policyRefs: [{name: v, kind: ValidatingPolicy}]\n  matchConditions: [{name: a, expression: 'true'}]\n";
        load_policies(doc, "e.yaml").unwrap();
        let e = load_policies(
            &format!("{doc}  expiresAt: '2026-01-01T00:00:00Z'\n"),
            "e.yaml",
        )
        .unwrap_err();
        assert_eq!(e.code(), "policy.unsupported", "{e}");
        let e = load_policies(&format!("{doc}  expiresAd: x\n"), "e.yaml").unwrap_err();
        assert_eq!(unknown(&e).3, Some("expiresAt"));
    }

    #[test]
    fn background_only_policies_load() {
        // `admission: false` is for the caller to honour (the webhook refuses such a policy;
        // a background scan uses it).
        load_policies(
            &POLICY.replace("spec:\n  valid", "spec:\n  admission: false\n  valid"),
            "p.yaml",
        )
        .unwrap();
        let doc = "apiVersion: policies.kyverno.io/v1\nkind: ValidatingPolicy\nmetadata: {name: v}\nspec:\n  validations: [{expression: 'true'}]\n  evaluation: {admission: {enabled: false}}\n";
        load_policies(doc, "v.yaml").unwrap();
    }

    #[test]
    fn suggestions_need_a_close_name() {
        assert_eq!(
            suggest("patern", &["pattern", "anyPattern"]),
            Some("pattern")
        );
        assert_eq!(
            suggest("AnyPattern", &["pattern", "anyPattern"]),
            Some("anyPattern")
        );
        assert_eq!(suggest("xyz", &["pattern", "anyPattern"]), None);
        assert_eq!(distance("kitten", "sitting"), 3);
    }

    #[test]
    fn direct_parsing_is_strict_too() {
        let v: Value = serde_json::from_str(
            r#"{"apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy", "metadata": {"name": "p"},
                "spec": {"rules": [{"name": "r", "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                "validate": {"anyPatern": []}}]}}"#,
        )
        .unwrap();
        let e = crate::kyverno::policy::ClusterPolicy::from_value(&v).unwrap_err();
        assert_eq!(
            unknown(&e),
            ("spec.rules[0].validate.anyPatern", 0, 0, Some("anyPattern"))
        );
        assert_eq!(
            e.to_string(),
            "policy p: spec.rules[0].validate.anyPatern: unknown field (did you mean `anyPattern`?)"
        );
    }
}
