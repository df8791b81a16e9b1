//! Loading an ImageValidatingPolicy: its `spec` checked field by field and compiled (globs,
//! image extractors, attestors and attestations).

use std::collections::BTreeMap;

use serde_json::Value as Json;

use crate::Error;
use crate::cel_policies::validating_policy::{FailurePolicy, MatchConstraints, ValidationAction};
use crate::lang::cel::{
    Dialect, Program, check_variables, compile_audit_annotations_in, compile_named_in,
    compile_validations_in, compile_variables_in, str_field,
};

use super::{Attestation, ImageMatcher, ImageValidatingPolicy, list};

const SPEC_FIELDS: &[&str] = &[
    "matchConstraints",
    "matchConditions",
    "matchImageReferences",
    "images",
    "attestors",
    "attestations",
    "variables",
    "validations",
    "auditAnnotations",
    "validationActions",
    "failurePolicy",
    "validationConfigurations",
    "evaluation",
    "webhookConfiguration",
    "autogen",
    "credentials",
];

/// Translates a gobwas/glob pattern (no separators: `*` also matches `/`) to an anchored
/// regular expression: `*`, `?`, `[abc]`, `[!a-z]`, `{a,b}` and `\` escapes.
pub(super) fn glob_to_regex(glob: &str) -> Result<regex::Regex, String> {
    let mut re = String::from("(?s)^");
    let mut chars = glob.chars().peekable();
    let mut braces = 0usize;
    while let Some(c) = chars.next() {
        match c {
            '*' => re.push_str(".*"),
            '?' => re.push('.'),
            '\\' => match chars.next() {
                Some(n) => re.push_str(&regex::escape(&n.to_string())),
                None => return Err("trailing escape".into()),
            },
            '{' => {
                braces += 1;
                re.push_str("(?:");
            }
            '}' if braces > 0 => {
                braces -= 1;
                re.push(')');
            }
            ',' if braces > 0 => re.push('|'),
            '[' => {
                let mut class = String::from("[");
                if chars.peek() == Some(&'!') {
                    chars.next();
                    class.push('^');
                }
                let mut closed = false;
                for n in chars.by_ref() {
                    match n {
                        ']' => {
                            closed = true;
                            break;
                        }
                        '-' => class.push('-'),
                        other => class.push_str(&regex::escape(&other.to_string())),
                    }
                }
                if !closed {
                    return Err("unclosed character class".into());
                }
                class.push(']');
                re.push_str(&class);
            }
            other => re.push_str(&regex::escape(&other.to_string())),
        }
    }
    if braces > 0 {
        return Err("unclosed alternatives".into());
    }
    re.push('$');
    regex::Regex::new(&re).map_err(|e| e.to_string())
}

/// The cosign short names of predicate types (`cosign attest --type`).
pub(super) fn predicate_type(t: &str) -> String {
    match t {
        "slsaprovenance" | "slsaprovenance02" => "https://slsa.dev/provenance/v0.2",
        "slsaprovenance1" => "https://slsa.dev/provenance/v1",
        "spdx" | "spdxjson" => "https://spdx.dev/Document",
        "cyclonedx" => "https://cyclonedx.org/bom",
        "link" => "https://in-toto.io/Link/v1",
        "vuln" => "https://cosign.sigstore.dev/attestation/vuln/v1",
        "openvex" => "https://openvex.dev/ns",
        "custom" => "https://cosign.sigstore.dev/attestation/v1",
        other => other,
    }
    .to_owned()
}

/// Default image extractors by the requested resource, as Kyverno compiles them.
pub(super) fn default_extractor_sources(
    group: &str,
    version: &str,
    resource: &str,
) -> Option<&'static str> {
    match (group, version, resource) {
        ("", "v1", "pods") => Some("spec"),
        ("batch", "v1", "jobs")
        | ("apps", "v1", "deployments" | "statefulsets" | "daemonsets" | "replicasets") => {
            Some("spec.template.spec")
        }
        ("batch", "v1", "cronjobs") => Some("spec.jobTemplate.spec.template.spec"),
        _ => None,
    }
}

const DEFAULT_SECTIONS: [&str; 3] = ["containers", "initContainers", "ephemeralContainers"];

pub(super) fn default_extractors() -> Result<Vec<(String, Program)>, Error> {
    let mut out = Vec::new();
    for prefix in [
        "spec",
        "spec.template.spec",
        "spec.jobTemplate.spec.template.spec",
    ] {
        for section in DEFAULT_SECTIONS {
            let src = format!(
                "(object != null ? object : oldObject).{prefix}.?{section}.orValue([]).map(e, e.image)"
            );
            out.push((
                format!("{prefix}|{section}"),
                Program::compile_in(&src, Dialect::ImagePolicy)?,
            ));
        }
    }
    Ok(out)
}

/// The fields of an attestor's `cosign` object (Kyverno's CRD), with what each must be: a
/// field outside this inventory, or of another type, is a load error. Trust material or a
/// waiver written with another type (a list of PEM blocks, `"true"`) would otherwise be read
/// as absent and the caller's trust root would decide instead.
const COSIGN_FIELDS: &[(&str, FieldType)] = &[
    (
        "key",
        FieldType::Object(&[
            ("data", FieldType::Str),
            ("kms", FieldType::Str),
            ("hashAlgorithm", FieldType::Str),
            ("expression", FieldType::Str),
        ]),
    ),
    (
        "keyless",
        FieldType::Object(&[
            ("identities", FieldType::List),
            ("roots", FieldType::Str),
            ("additionalExtensions", FieldType::Map),
        ]),
    ),
    (
        "certificate",
        FieldType::Object(&[
            (
                "cert",
                FieldType::Object(&[("value", FieldType::Str), ("expression", FieldType::Str)]),
            ),
            (
                "certChain",
                FieldType::Object(&[("value", FieldType::Str), ("expression", FieldType::Str)]),
            ),
        ]),
    ),
    ("source", FieldType::Map),
    (
        "ctlog",
        FieldType::Object(&[
            ("url", FieldType::Str),
            ("rekorPubKey", FieldType::Str),
            ("ctLogPubKey", FieldType::Str),
            ("tsaCertChain", FieldType::Str),
            ("insecureIgnoreTlog", FieldType::Bool),
            ("insecureIgnoreSCT", FieldType::Bool),
        ]),
    ),
    ("tuf", FieldType::Map),
    (
        "trustedRoot",
        FieldType::Object(&[("value", FieldType::Str), ("expression", FieldType::Str)]),
    ),
    ("annotations", FieldType::Map),
];

/// What a field of [`COSIGN_FIELDS`] must be.
#[derive(Clone, Copy)]
enum FieldType {
    Str,
    Bool,
    List,
    /// Any object (its content is checked where it is used).
    Map,
    /// An object with exactly these fields.
    Object(&'static [(&'static str, FieldType)]),
}

/// Checks an attestor's `cosign` object against [`COSIGN_FIELDS`]; `Err((path, reason))`.
fn check_cosign_fields(att: &Json, path: &str) -> Result<(), (String, String)> {
    fn check(v: &Json, ty: FieldType, path: &str) -> Result<(), (String, String)> {
        let bad = |what: &str| Err((path.to_owned(), format!("must be {what}")));
        match ty {
            _ if v.is_null() => Ok(()),
            FieldType::Str if !v.is_string() => bad("a string"),
            FieldType::Bool if !v.is_boolean() => bad("true or false"),
            FieldType::List if !v.is_array() => bad("a list"),
            FieldType::Map if !v.is_object() => bad("an object"),
            FieldType::Object(fields) => {
                let Some(o) = v.as_object() else {
                    return bad("an object");
                };
                for (k, x) in o {
                    let Some((_, t)) = fields.iter().find(|(n, _)| n == k) else {
                        return Err((
                            format!("{path}.{k}"),
                            "unknown field: not enforced, so the policy is refused".into(),
                        ));
                    };
                    check(x, *t, &format!("{path}.{k}"))?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
    match att.get("cosign") {
        Some(c) if !c.is_null() => check(
            c,
            FieldType::Object(COSIGN_FIELDS),
            &format!("{path}.cosign"),
        ),
        _ => Ok(()),
    }
}

pub(super) fn unsupported(policy: &str, what: &str) -> Error {
    Error::Unsupported {
        field: format!("ImageValidatingPolicy {policy}: {what}"),
    }
}

impl ImageValidatingPolicy {
    /// Loads and compiles an ImageValidatingPolicy document.
    pub fn from_value(v: &Json) -> Result<Self, Error> {
        let meta = v.get("metadata");
        let name = meta
            .and_then(|m| str_field(m, "name"))
            .unwrap_or_default()
            .to_owned();
        let namespace = meta
            .and_then(|m| str_field(m, "namespace"))
            .unwrap_or_default();
        let api_version = str_field(v, "apiVersion").unwrap_or_default();
        let kind = str_field(v, "kind").unwrap_or_default();
        let invalid = |policy: &str, path: &str, reason: &str| Error::InvalidPolicy {
            policy: policy.to_owned(),
            path: path.to_owned(),
            reason: reason.to_owned(),
        };
        if !matches!(
            api_version,
            "policies.kyverno.io/v1"
                | "policies.kyverno.io/v1beta1"
                | "policies.kyverno.io/v1alpha1"
        ) {
            return Err(invalid(
                &name,
                "apiVersion",
                "expected policies.kyverno.io/v1, v1beta1 or v1alpha1",
            ));
        }
        let full = match kind {
            "ImageValidatingPolicy" => name.clone(),
            "NamespacedImageValidatingPolicy" => format!("{namespace}/{name}"),
            _ => return Err(invalid(&name, "kind", "expected ImageValidatingPolicy")),
        };
        if name.is_empty() {
            return Err(invalid(&full, "metadata.name", "required"));
        }
        let spec = v
            .get("spec")
            .filter(|s| s.is_object())
            .ok_or_else(|| invalid(&full, "spec", "expected an object"))?;
        let with_policy = |e: Error| match e {
            Error::InvalidPolicy { path, reason, .. } => Error::InvalidPolicy {
                policy: full.clone(),
                path,
                reason,
            },
            other => other,
        };
        for key in spec.as_object().into_iter().flat_map(|m| m.keys()) {
            if !SPEC_FIELDS.contains(&key.as_str()) {
                return Err(unsupported(&full, &format!("spec.{key}")));
            }
        }
        if let Some(mode) = spec.pointer("/evaluation/mode").and_then(Json::as_str)
            && mode != "Kubernetes"
        {
            return Err(unsupported(&full, &format!("spec.evaluation.mode: {mode}")));
        }
        if spec
            .get("credentials")
            .and_then(Json::as_object)
            .is_some_and(|c| c.values().any(|x| !x.is_null()))
        {
            return Err(unsupported(
                &full,
                "spec.credentials (registry credentials are the caller's configuration)",
            ));
        }
        let match_constraints = spec
            .get("matchConstraints")
            .filter(|m| !m.is_null())
            .map(|m| MatchConstraints::from_value(m, "spec.matchConstraints"))
            .transpose()
            .map_err(with_policy)?;
        let dialect = Dialect::ImagePolicy;
        let match_conditions =
            compile_named_in(spec, "matchConditions", "spec", dialect).map_err(with_policy)?;
        let variables = compile_variables_in(spec, "spec", dialect).map_err(with_policy)?;
        let validations =
            compile_validations_in(spec, "validations", "spec", dialect).map_err(with_policy)?;
        let audit_annotations =
            compile_audit_annotations_in(spec, "spec", dialect).map_err(with_policy)?;
        let mut match_images = Vec::new();
        for (i, m) in list(spec, "matchImageReferences").iter().enumerate() {
            let path = format!("spec.matchImageReferences[{i}]");
            if let Some(g) = str_field(m, "glob").filter(|g| !g.is_empty()) {
                let re =
                    glob_to_regex(g).map_err(|e| invalid(&full, &format!("{path}.glob"), &e))?;
                match_images.push(ImageMatcher::Glob(re));
            } else if let Some(e) = str_field(m, "expression").filter(|e| !e.is_empty()) {
                match_images.push(ImageMatcher::Expression(
                    Program::compile_in(e, Dialect::ImageMatch).map_err(with_policy)?,
                ));
            } else {
                return Err(invalid(
                    &full,
                    &path,
                    "either glob or expression must be set",
                ));
            }
        }
        let mut extractors = Vec::new();
        for (i, e) in list(spec, "images").iter().enumerate() {
            let path = format!("spec.images[{i}]");
            let n = str_field(e, "name")
                .filter(|n| !n.is_empty())
                .ok_or_else(|| invalid(&full, &format!("{path}.name"), "required"))?;
            let src = str_field(e, "expression")
                .ok_or_else(|| invalid(&full, &format!("{path}.expression"), "required"))?;
            extractors.push((
                n.to_owned(),
                Program::compile_in(src, dialect).map_err(with_policy)?,
            ));
        }
        let mut attestors = serde_json::Map::new();
        for (i, a) in list(spec, "attestors").iter().enumerate() {
            let n = str_field(a, "name")
                .filter(|n| !n.is_empty())
                .ok_or_else(|| invalid(&full, &format!("spec.attestors[{i}].name"), "required"))?;
            let has = |k: &str| a.get(k).is_some_and(|x| !x.is_null());
            if has("cosign") == has("notary") {
                return Err(invalid(
                    &full,
                    &format!("spec.attestors[{i}]"),
                    "exactly one of cosign or notary must be set",
                ));
            }
            check_cosign_fields(a, &format!("spec.attestors[{i}]"))
                .map_err(|(path, reason)| invalid(&full, &path, &reason))?;
            attestors.insert(n.to_owned(), a.clone());
        }
        let mut attestations = BTreeMap::new();
        let mut attestation_names = serde_json::Map::new();
        for (i, a) in list(spec, "attestations").iter().enumerate() {
            let path = format!("spec.attestations[{i}]");
            let n = str_field(a, "name")
                .filter(|n| !n.is_empty())
                .ok_or_else(|| invalid(&full, &format!("{path}.name"), "required"))?;
            let ty = |k: &str| {
                a.get(k)
                    .and_then(|x| str_field(x, "type"))
                    .filter(|t| !t.is_empty())
            };
            let att = match (ty("intoto"), ty("referrer")) {
                (Some(t), None) => Attestation::InToto(predicate_type(t)),
                (None, Some(t)) => Attestation::Referrer(t.to_owned()),
                _ => {
                    return Err(invalid(
                        &full,
                        &path,
                        "exactly one of intoto.type or referrer.type must be set",
                    ));
                }
            };
            attestation_names.insert(n.to_owned(), Json::String(n.to_owned()));
            attestations.insert(n.to_owned(), att);
        }
        check_variables(
            &variables,
            match_conditions
                .iter()
                .map(|m| &m.program)
                .chain(extractors.iter().map(|(_, p)| p))
                .chain(validations.iter().flat_map(|v| {
                    std::iter::once(&v.expression).chain(v.message_expression.iter())
                }))
                .chain(audit_annotations.iter().map(|a| &a.value)),
        )
        .map_err(with_policy)?;
        let mut validation_actions = Vec::new();
        for (i, a) in list(spec, "validationActions").iter().enumerate() {
            validation_actions.push(match a.as_str() {
                Some("Deny") => ValidationAction::Deny,
                Some("Audit") => ValidationAction::Audit,
                Some("Warn") => ValidationAction::Warn,
                _ => {
                    return Err(invalid(
                        &full,
                        &format!("spec.validationActions[{i}]"),
                        "expected Deny, Audit or Warn",
                    ));
                }
            });
        }
        let failure_policy = match str_field(spec, "failurePolicy") {
            None | Some("Fail") => FailurePolicy::Fail,
            Some("Ignore") => FailurePolicy::Ignore,
            Some(_) => {
                return Err(invalid(
                    &full,
                    "spec.failurePolicy",
                    "expected Fail or Ignore",
                ));
            }
        };
        let config = spec.get("validationConfigurations");
        let flag = |k: &str| {
            config
                .and_then(|c| c.get(k))
                .and_then(Json::as_bool)
                .unwrap_or(true)
        };
        Ok(ImageValidatingPolicy {
            name: full.clone(),
            kind: kind.to_owned(),
            api_version: api_version.to_owned(),
            match_constraints,
            match_conditions,
            variables,
            validations,
            audit_annotations,
            match_images,
            extractors,
            default_extractors: default_extractors()?,
            attestors: Json::Object(attestors),
            attestations,
            attestation_names: Json::Object(attestation_names),
            validation_actions,
            failure_policy,
            mutate_digest: flag("mutateDigest"),
            verify_digest: flag("verifyDigest"),
            required: flag("required"),
            exceptions: Vec::new(),
        })
    }
}
