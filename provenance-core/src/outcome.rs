//! The outcome vocabulary every `provenance` crate reports in.
//!
//! A policy engine produces [`RuleResult`]s: which policy and rule looked at which resource,
//! with what [`RuleStatus`], a human message and machine-readable [`Reason`]s. The statuses
//! are Kyverno's and PolicyReport's (`pass`, `fail`, `warn`, `error`, `skip`).

use std::fmt;

use serde::{Deserialize, Serialize};

/// The status of one rule applied to one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleStatus {
    /// The resource satisfies the rule.
    Pass,
    /// The resource violates the rule.
    Fail,
    /// The resource violates a rule that only warns.
    Warn,
    /// The rule could not be evaluated (bad input, unreachable registry, ...). Never a pass.
    Error,
    /// The rule does not apply (no match, preconditions false).
    Skip,
}

impl RuleStatus {
    /// The lowercase name as PolicyReports and `kyverno test` write it.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleStatus::Pass => "pass",
            RuleStatus::Fail => "fail",
            RuleStatus::Warn => "warn",
            RuleStatus::Error => "error",
            RuleStatus::Skip => "skip",
        }
    }

    /// Parses the lowercase name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pass" => RuleStatus::Pass,
            "fail" => RuleStatus::Fail,
            "warn" => RuleStatus::Warn,
            "error" => RuleStatus::Error,
            "skip" => RuleStatus::Skip,
            _ => return None,
        })
    }

    /// Whether this status blocks admission when the rule is enforced.
    pub fn is_blocking(self) -> bool {
        matches!(self, RuleStatus::Fail | RuleStatus::Error)
    }
}

impl fmt::Display for RuleStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Identifies a Kubernetes resource a rule looked at.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceRef {
    /// `apiVersion` (e.g. `v1`, `apps/v1`).
    pub api_version: String,
    /// `kind` (e.g. `Pod`).
    pub kind: String,
    /// Namespace; empty for cluster-scoped resources.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl fmt::Display for ResourceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{}/{}", self.kind, self.name)
        } else {
            write!(f, "{}/{}/{}", self.kind, self.namespace, self.name)
        }
    }
}

/// A structured reason behind a result: a stable machine code plus context.
///
/// Codes are dotted and stable (`policy.pattern.mismatch`, `core.digest.mismatch`,
/// `verify.signature.invalid`); tools may match on them. `path` locates the field
/// (`spec.containers[0].image`), `subject` names what was checked (an image, an attestor).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    /// Stable machine code.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
    /// Field path the reason refers to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// What was being checked (image reference, attestor index, ...), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
}

impl Reason {
    /// A reason with a code and message.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Reason {
            code: code.into(),
            message: message.into(),
            path: None,
            subject: None,
        }
    }

    /// Sets the field path.
    pub fn at(mut self, path: impl Into<String>) -> Self {
        self.path = Some(path.into());
        self
    }

    /// Sets the subject.
    pub fn about(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }
}

impl From<&crate::Error> for Reason {
    fn from(e: &crate::Error) -> Self {
        Reason::new(e.code(), e.to_string())
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}", self.code, self.message)?;
        if let Some(p) = &self.path {
            write!(f, " (at {p})")?;
        }
        if let Some(s) = &self.subject {
            write!(f, " (for {s})")?;
        }
        Ok(())
    }
}

/// The result of one rule of one policy applied to one resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleResult {
    /// Policy name (`namespace/name` for namespaced policies).
    pub policy: String,
    /// Rule name.
    pub rule: String,
    /// The resource the rule looked at.
    pub resource: ResourceRef,
    /// The status.
    pub status: RuleStatus,
    /// Human-readable message (Kyverno's rule message, with variables substituted).
    #[serde(default)]
    pub message: String,
    /// Structured reasons; empty for a plain pass.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<Reason>,
}

impl RuleResult {
    /// A result with no reasons.
    pub fn new(
        policy: impl Into<String>,
        rule: impl Into<String>,
        resource: ResourceRef,
        status: RuleStatus,
        message: impl Into<String>,
    ) -> Self {
        RuleResult {
            policy: policy.into(),
            rule: rule.into(),
            resource,
            status,
            message: message.into(),
            reasons: Vec::new(),
        }
    }

    /// Adds a reason.
    pub fn with_reason(mut self, reason: Reason) -> Self {
        self.reasons.push(reason);
        self
    }
}

impl fmt::Display for RuleResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{} on {}: {}",
            self.policy, self.rule, self.resource, self.status
        )?;
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trips_and_blocks() {
        for s in [
            RuleStatus::Pass,
            RuleStatus::Fail,
            RuleStatus::Warn,
            RuleStatus::Error,
            RuleStatus::Skip,
        ] {
            assert_eq!(RuleStatus::parse(s.as_str()), Some(s));
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, format!("\"{s}\""));
        }
        assert!(RuleStatus::Error.is_blocking());
        assert!(!RuleStatus::Warn.is_blocking());
    }
}
