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
//! ([`crate::verify_images_fields`]), and so do the attestors of an ImageValidatingPolicy.

use serde_json::Value;

use crate::Error;

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
}

use Node::{Any, Conditions, Lazy, List, Obj};

/// `metadata` (Kubernetes ObjectMeta).
const METADATA: Node = Obj(&[
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
    ("kinds", Any),
    ("name", Any),
    ("names", Any),
    ("namespaces", Any),
    ("annotations", Any),
    ("selector", LABEL_SELECTOR),
    ("namespaceSelector", LABEL_SELECTOR),
    ("operations", Any),
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
    ("roles", Any),
    ("clusterRoles", Any),
]);

/// `match` / `exclude` of a rule (`any` / `all`, or the legacy flat form).
const MATCH: Node = Obj(&[
    ("any", List(&RESOURCE_FILTER)),
    ("all", List(&RESOURCE_FILTER)),
    ("resources", RESOURCE_DESCRIPTION),
    ("subjects", SUBJECTS),
    ("roles", Any),
    ("clusterRoles", Any),
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
            ("method", Any),
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

const NAME_EXPRESSION: Node = List(&Obj(&[("name", Any), ("expression", Any)]));

const ACTION_OVERRIDES: Node = List(&Obj(&[
    ("action", Any),
    ("namespaces", Any),
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
    ("failureAction", Any),
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

const CLONE: Node = Obj(&[("name", Any), ("namespace", Any)]);
const CLONE_LIST: Node = Obj(&[
    ("namespace", Any),
    ("kinds", Any),
    ("selector", LABEL_SELECTOR),
]);

const GENERATE: Node = Obj(&[
    ("generateExisting", Any),
    ("synchronize", Any),
    ("orphanDownstreamOnPolicyDelete", Any),
    ("apiVersion", Any),
    ("kind", Any),
    ("name", Any),
    ("namespace", Any),
    ("uid", Any),
    ("data", Any),
    ("clone", CLONE),
    ("cloneList", CLONE_LIST),
    (
        "foreach",
        List(&Obj(&[
            ("list", Any),
            ("context", CONTEXT),
            ("preconditions", Conditions),
            ("apiVersion", Any),
            ("kind", Any),
            ("name", Any),
            ("namespace", Any),
            ("uid", Any),
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
            ("applyRules", Any),
            ("failurePolicy", Any),
            ("validationFailureAction", Any),
            ("validationFailureActionOverrides", ACTION_OVERRIDES),
            ("emitWarning", Any),
            ("admission", Any),
            ("background", Any),
            ("schemaValidation", Any),
            ("webhookTimeoutSeconds", Any),
            ("mutateExistingOnPolicyUpdate", Any),
            ("generateExisting", Any),
            ("generateExistingOnPolicyUpdate", Any),
            ("useServerSideApply", Any),
            (
                "webhookConfiguration",
                Obj(&[
                    ("failurePolicy", Any),
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
const MATCH_RESOURCES: Node = Obj(&[
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

const AUDIT_ANNOTATIONS: Node = List(&Obj(&[("key", Any), ("valueExpression", Any)]));

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
/// [`crate::image_validating_policy`]).
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
        }
    }
}

/// Checks a document of `kind` against its inventory: the first unknown field (in document
/// order) is an [`Error::UnknownField`] (its position is filled in by the loader, which has
/// the text).
pub(crate) fn check(doc: &Value, kind: DocKind) -> Result<(), Error> {
    let mut path = String::new();
    match walk(doc, kind.node(), &mut path) {
        None => Ok(()),
        Some((path, field, suggestion)) => Err(Error::UnknownField {
            file: String::new(),
            line: 0,
            column: 0,
            policy: doc
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            path,
            field,
            suggestion: suggestion.map(str::to_owned),
        }),
    }
}

type Found = (String, String, Option<&'static str>);

fn walk(v: &Value, node: Node, path: &mut String) -> Option<Found> {
    match node {
        Any => None,
        Lazy(f) => walk(v, f(), path),
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
                    return Some((path.clone(), k.clone(), suggest(k, &names)));
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
