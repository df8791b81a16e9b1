//! The Pod Security Standards levels and Kyverno's controls, and the `exclude` entries that name
//! them.

use serde_json::Value;

use crate::Error;

/// The Pod Security Standards level of a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// `privileged` (Kyverno still runs every check, see the module docs).
    Privileged,
    /// `baseline`.
    Baseline,
    /// `restricted`.
    Restricted,
}

impl Level {
    /// The level as written in a policy.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Privileged => "privileged",
            Level::Baseline => "baseline",
            Level::Restricted => "restricted",
        }
    }
}

/// One `exclude` entry of a `podSecurity` rule or of a PolicyException's `podSecurity` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PssExclude {
    /// The control name, e.g. `Capabilities` or `HostPath Volumes`.
    pub control_name: String,
    /// Image patterns (`*`, `?`) selecting containers; empty for pod-level exclusions.
    pub images: Vec<String>,
    /// The restricted field, e.g. `spec.containers[*].securityContext.capabilities.add`; empty
    /// selects every field of the control.
    pub restricted_field: String,
    /// Allowed values (patterns) of the restricted field.
    pub values: Vec<String>,
}

/// Control names Kyverno accepts in `controlName`.
pub const CONTROL_NAMES: &[&str] = &[
    "HostProcess",
    "Host Namespaces",
    "Privileged Containers",
    "Capabilities",
    "HostPath Volumes",
    "Host Ports",
    "AppArmor",
    "SELinux",
    "/proc Mount Type",
    "Seccomp",
    "Sysctls",
    "Volume Types",
    "Privilege Escalation",
    "Running as Non-root",
    "Running as Non-root user",
];

const CONTAINER_LEVEL_CONTROLS: &[&str] = &[
    "Capabilities",
    "Privileged Containers",
    "Host Ports",
    "/proc Mount Type",
    "Privilege Escalation",
];

const POD_LEVEL_CONTROLS: &[&str] = &[
    "Host Namespaces",
    "HostPath Volumes",
    "Sysctls",
    "Volume Types",
];

/// The check IDs (`pod-security-admission`) of a Kyverno control name.
pub fn control_check_ids(control: &str) -> &'static [&'static str] {
    match control {
        "Capabilities" => &["capabilities_baseline", "capabilities_restricted"],
        "Seccomp" => &["seccompProfile_baseline", "seccompProfile_restricted"],
        "Privileged Containers" => &["privileged"],
        "Host Ports" => &["hostPorts"],
        "/proc Mount Type" => &["procMount"],
        "HostProcess" => &["windowsHostProcess"],
        "SELinux" => &["seLinuxOptions"],
        "Host Namespaces" => &["hostNamespaces"],
        "HostPath Volumes" => &["hostPathVolumes"],
        "Sysctls" => &["sysctls"],
        "AppArmor" => &["appArmorProfile"],
        "Privilege Escalation" => &["allowPrivilegeEscalation"],
        "Running as Non-root" => &["runAsNonRoot"],
        "Running as Non-root user" => &["runAsUser"],
        "Volume Types" => &["restrictedVolumes"],
        _ => &[],
    }
}

/// The Kyverno control name of a check ID (empty when none, e.g. `hostProbesAndHostLifecycle`).
pub fn check_control_name(id: &str) -> &'static str {
    CONTROL_NAMES
        .iter()
        .find(|c| control_check_ids(c).contains(&id))
        .copied()
        .unwrap_or("")
}

pub(super) fn invalid(path: &str, reason: impl Into<String>) -> Error {
    Error::InvalidPolicy {
        policy: String::new(),
        path: path.to_string(),
        reason: reason.into(),
    }
}

fn string_list(v: Option<&Value>, path: &str) -> Result<Vec<String>, Error> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, s)| {
                s.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| invalid(&format!("{path}[{i}]"), "must be a string"))
            })
            .collect(),
        Some(_) => Err(invalid(path, "must be a list of strings")),
    }
}

pub(super) fn opt_string(v: Option<&Value>, path: &str) -> Result<String, Error> {
    match v {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(invalid(path, "must be a string")),
    }
}

impl PssExclude {
    /// Parses and validates one exclude entry as Kyverno's `PodSecurityStandard.Validate` does:
    /// a known control name, images required for container-level controls and forbidden for
    /// pod-level ones, `restrictedField` and `values` set together.
    pub fn from_value(v: &Value, path: &str) -> Result<Self, Error> {
        let obj = v
            .as_object()
            .ok_or_else(|| invalid(path, "must be an object"))?;
        let control_name = opt_string(obj.get("controlName"), &format!("{path}.controlName"))?;
        if !CONTROL_NAMES.contains(&control_name.as_str()) {
            return Err(invalid(
                &format!("{path}.controlName"),
                format!("unknown Pod Security Standards control {control_name:?}"),
            ));
        }
        let images = string_list(obj.get("images"), &format!("{path}.images"))?;
        let restricted_field = opt_string(
            obj.get("restrictedField"),
            &format!("{path}.restrictedField"),
        )?;
        let values = string_list(obj.get("values"), &format!("{path}.values"))?;
        if CONTAINER_LEVEL_CONTROLS.contains(&control_name.as_str()) && images.is_empty() {
            return Err(invalid(
                &format!("{path}.controlName"),
                "exclude.images must be specified for the container level control",
            ));
        }
        if POD_LEVEL_CONTROLS.contains(&control_name.as_str()) && !images.is_empty() {
            return Err(invalid(
                &format!("{path}.controlName"),
                "exclude.images must not be specified for the pod level control",
            ));
        }
        if !restricted_field.is_empty() && values.is_empty() {
            return Err(invalid(&format!("{path}.values"), "values is required"));
        }
        if restricted_field.is_empty() && !values.is_empty() {
            return Err(invalid(
                &format!("{path}.restrictedField"),
                "restrictedField is required",
            ));
        }
        Ok(PssExclude {
            control_name,
            images,
            restricted_field,
            values,
        })
    }

    /// Parses a list of exclude entries (`null` or absent is an empty list).
    pub fn list_from_value(v: Option<&Value>, path: &str) -> Result<Vec<Self>, Error> {
        match v {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(a)) => a
                .iter()
                .enumerate()
                .map(|(i, e)| PssExclude::from_value(e, &format!("{path}[{i}]")))
                .collect(),
            Some(_) => Err(invalid(path, "must be a list")),
        }
    }
}
