//! `validate.podSecurity`: the Kubernetes Pod Security Standards (baseline and restricted) as
//! Kyverno evaluates them.
//!
//! Kyverno runs the checks of Kubernetes' `pod-security-admission` (`policy.DefaultChecks()`,
//! with field errors) over the pod spec and metadata of a Pod, of a controller's pod template or
//! of a CronJob's job template, then removes what the rule's `exclude` entries (and a matching
//! PolicyException's `podSecurity` entries) allow. This module reimplements those checks and that
//! exclusion logic, with the same quirks:
//!
//! - at `restricted`, every check runs, including the baseline forms of the checks the
//!   restricted ones replace in `pod-security-admission` (capabilities, seccomp); at
//!   `privileged`, Kyverno's check filter keeps every check too (it only filters `baseline`);
//! - the version of each check is the newest whose minimum version is not newer than the
//!   rule's `version`, or the check's first version when all are newer;
//! - an exclude without `images` is evaluated against a copy of the pod whose only container is
//!   an empty one named `fake`; an exclude with `images` against a pod made of the matching
//!   containers only (no metadata, no pod security context);
//! - the failure message is Kyverno's `FormatChecksPrint`, with field paths rewritten for
//!   controllers (`spec` to `spec.template.spec`, `metadata` to `spec.template.metadata`).
//!
//! Pure: no I/O, no clock. Malformed input gives [`PssOutcome::Error`], never a pass.

mod checks;
mod controls;
mod exclusions;
mod pod;

use serde_json::Value;

use crate::Error;

pub use controls::{CONTROL_NAMES, Level, PssExclude, check_control_name, control_check_ids};
pub use exclusions::wildcard_match;

use checks::evaluate;
use controls::{invalid, opt_string};
use exclusions::apply_exclusions;
use pod::extract;

/// A compiled `validate.podSecurity` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodSecurity {
    level: Level,
    /// The version as written (`""`, `latest`, `v1.x`), for the message.
    version_text: String,
    /// Minor version of `v1.x`; `u32::MAX` for `latest`.
    minor: u32,
    exclude: Vec<PssExclude>,
}

/// A field-level violation (a `field.Error` of `pod-security-admission`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FieldViolation {
    /// The field path, e.g. `spec.containers[0].securityContext.privileged` (for controllers,
    /// rewritten as Kyverno does: `spec.template.spec...`).
    pub field: String,
    /// `true` when the field is required but missing (`Required value`), `false` when its
    /// value is forbidden.
    pub required: bool,
    /// The forbidden values, as Kyverno compares them with an exclude's `values`.
    pub values: Vec<String>,
    /// Kyverno's rendering of this error in the failure message.
    pub text: String,
}

/// One failed Pod Security Standards check.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Violation {
    /// The check ID of `pod-security-admission`, e.g. `allowPrivilegeEscalation`.
    pub check_id: &'static str,
    /// Kyverno's control name for it (empty for `hostProbesAndHostLifecycle`).
    pub control: &'static str,
    /// The forbidden reason, e.g. `allowPrivilegeEscalation != false`.
    pub reason: String,
    /// The forbidden detail, e.g. `container "nginx" must set ...`.
    pub detail: String,
    /// The field errors.
    pub fields: Vec<FieldViolation>,
}

/// The result of a `podSecurity` check.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PssOutcome {
    /// Every check passed (or was excluded by the rule).
    Pass,
    /// Some checks failed.
    Fail {
        /// Kyverno's message without the rule prefix:
        /// `It violates PodSecurity "restricted:latest": (Forbidden reason: ...)`.
        /// [`PodSecurity::rule_message`] adds `Validation rule '<rule>' failed. `.
        message: String,
        /// The failed checks, in `pod-security-admission`'s check order.
        violations: Vec<Violation>,
    },
    /// The checks failed, and PolicyException `podSecurity` entries excluded every failure
    /// (only from [`PodSecurity::check_with_exclusions`]): Kyverno reports `skip`.
    Excepted,
    /// The resource could not be checked (unsupported kind, malformed pod spec): Kyverno
    /// reports a rule `error`.
    Error {
        /// What is wrong.
        message: String,
    },
}

impl PodSecurity {
    /// Compiles a `podSecurity` object: `level` (required), `version` (`latest` by default),
    /// `exclude`.
    pub fn from_value(v: &Value) -> Result<Self, Error> {
        let path = "validate.podSecurity";
        let obj = v
            .as_object()
            .ok_or_else(|| invalid(path, "must be an object"))?;
        let level = match obj.get("level").and_then(Value::as_str) {
            Some("privileged") => Level::Privileged,
            Some("baseline") => Level::Baseline,
            Some("restricted") => Level::Restricted,
            Some(other) => {
                return Err(invalid(
                    &format!("{path}.level"),
                    format!("unknown level {other:?} (privileged, baseline, restricted)"),
                ));
            }
            None => return Err(invalid(&format!("{path}.level"), "a level is required")),
        };
        let version_text = opt_string(obj.get("version"), &format!("{path}.version"))?;
        let minor = parse_version(&version_text).ok_or_else(|| {
            invalid(
                &format!("{path}.version"),
                format!(
                    "failed to parse pod security api version: {version_text:?} (latest or v1.<minor>)"
                ),
            )
        })?;
        let exclude = PssExclude::list_from_value(obj.get("exclude"), &format!("{path}.exclude"))?;
        Ok(PodSecurity {
            level,
            version_text,
            minor,
            exclude,
        })
    }

    /// The level.
    pub fn level(&self) -> Level {
        self.level
    }

    /// The version as written in the policy (empty when absent).
    pub fn version(&self) -> &str {
        &self.version_text
    }

    /// The rule's exclude entries.
    pub fn excludes(&self) -> &[PssExclude] {
        &self.exclude
    }

    /// Checks a Pod (or a controller with a pod template, or a CronJob) resource.
    pub fn check(&self, resource: &Value) -> PssOutcome {
        self.check_with_exclusions(resource, &[])
    }

    /// Like [`PodSecurity::check`], then, when checks fail, applies `extra` (the `podSecurity`
    /// entries of the PolicyExceptions that match, in order) to the remaining failures:
    /// [`PssOutcome::Excepted`] when none is left, else `Fail` with what is left.
    pub fn check_with_exclusions(&self, resource: &Value, extra: &[PssExclude]) -> PssOutcome {
        let (kind, pod) = match extract(resource) {
            Ok(x) => x,
            Err(message) => return PssOutcome::Error { message },
        };
        let mut results = evaluate(self.level, self.minor, &pod);
        if !self.exclude.is_empty() {
            results = apply_exclusions(self.level, self.minor, &self.exclude, results, &pod);
        }
        if results.is_empty() {
            return PssOutcome::Pass;
        }
        if !extra.is_empty() {
            results = apply_exclusions(self.level, self.minor, extra, results, &pod);
            if results.is_empty() {
                return PssOutcome::Excepted;
            }
        }
        let violations: Vec<Violation> = results
            .into_iter()
            .map(|r| r.into_violation(kind))
            .collect();
        let mut message = format!(
            "It violates PodSecurity \"{}:{}\": ",
            self.level.as_str(),
            self.version_text
        );
        format_checks(&violations, &mut message);
        PssOutcome::Fail {
            message,
            violations,
        }
    }

    /// Kyverno's rule message for an outcome: `Validation rule '<rule>' passed.` or
    /// `Validation rule '<rule>' failed. It violates PodSecurity ...`; the error text for
    /// `Error`; empty for `Excepted` (the caller names the exception).
    pub fn rule_message(rule: &str, outcome: &PssOutcome) -> String {
        match outcome {
            PssOutcome::Pass => format!("Validation rule '{rule}' passed."),
            PssOutcome::Fail { message, .. } => {
                format!("Validation rule '{rule}' failed. {message}")
            }
            PssOutcome::Error { message } => message.clone(),
            PssOutcome::Excepted => String::new(),
        }
    }
}

/// `latest` / empty → `u32::MAX`; `v1.<minor>` → minor.
fn parse_version(v: &str) -> Option<u32> {
    if v.is_empty() || v == "latest" {
        return Some(u32::MAX);
    }
    let minor = v.strip_prefix("v1.")?;
    if minor.is_empty()
        || !minor.bytes().all(|b| b.is_ascii_digit())
        || (minor.len() > 1 && minor.starts_with('0'))
    {
        return None;
    }
    minor.parse().ok()
}

fn format_checks(violations: &[Violation], out: &mut String) {
    for v in violations {
        out.push_str("(Forbidden reason: ");
        out.push_str(&v.reason);
        out.push_str(", field error list: [");
        for (i, f) in v.fields.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            out.push_str(&f.text);
        }
        out.push_str("])");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(parse_version(""), Some(u32::MAX));
        assert_eq!(parse_version("latest"), Some(u32::MAX));
        assert_eq!(parse_version("v1.24"), Some(24));
        assert_eq!(parse_version("v1.024"), None);
        assert_eq!(parse_version("1.24"), None);
        assert_eq!(parse_version("v2.0"), None);
    }
}
