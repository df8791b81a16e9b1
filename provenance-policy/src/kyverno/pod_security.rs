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

use serde_json::{Map, Value};

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

fn invalid(path: &str, reason: impl Into<String>) -> Error {
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

fn opt_string(v: Option<&Value>, path: &str) -> Result<String, Error> {
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

// ---------------------------------------------------------------------------------------------
// Kyverno's wildcard matching (`*` any run, `?` one character).

/// Kyverno's `wildcard.Match`: `*` matches any run of characters, `?` exactly one.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

fn any_pattern(patterns: &[String], text: &str) -> bool {
    patterns.iter().any(|p| wildcard_match(p, text))
}

// ---------------------------------------------------------------------------------------------
// A typed view of the parts of a pod that the checks read.

#[derive(Debug, Clone, Default)]
struct SeLinux<'a> {
    typ: &'a str,
    user: &'a str,
    role: &'a str,
}

#[derive(Debug, Clone, Default)]
struct SecurityContext<'a> {
    allow_privilege_escalation: Option<bool>,
    privileged: Option<bool>,
    /// `(add, drop)` when `capabilities` is set.
    capabilities: Option<(Vec<&'a str>, Vec<&'a str>)>,
    proc_mount: Option<&'a str>,
    run_as_non_root: Option<bool>,
    run_as_user: Option<i64>,
    seccomp_type: Option<&'a str>,
    selinux: Option<SeLinux<'a>>,
    host_process: Option<bool>,
    apparmor_type: Option<&'a str>,
    sysctls: Vec<&'a str>,
}

#[derive(Debug, Clone, Default)]
struct Container<'a> {
    name: &'a str,
    image: &'a str,
    sc: Option<SecurityContext<'a>>,
    /// `(index in ports, hostPort)` for non-zero host ports.
    host_ports: Vec<(usize, i64)>,
    /// Hosts set in probes and lifecycle handlers, in Kubernetes' visiting order.
    probe_hosts: Vec<&'a str>,
}

#[derive(Debug, Clone)]
struct Volume<'a> {
    name: &'a str,
    /// The first volume source key present, or `None` when only unknown keys are.
    source: Option<&'static str>,
    host_path: Option<&'a str>,
}

#[derive(Debug, Clone, Default)]
struct Pod<'a> {
    annotations: Vec<(&'a str, &'a str)>,
    host_network: bool,
    host_pid: bool,
    host_ipc: bool,
    windows: bool,
    sc: Option<SecurityContext<'a>>,
    volumes: Vec<Volume<'a>>,
    init: Vec<Container<'a>>,
    containers: Vec<Container<'a>>,
    ephemeral: Vec<Container<'a>>,
}

type R<T> = Result<T, String>;

fn present<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

fn obj_at<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> R<Option<&'a Map<String, Value>>> {
    match present(obj, key) {
        None => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(_) => Err(format!("{path}.{key}: expected an object")),
    }
}

fn bool_at(obj: &Map<String, Value>, key: &str, path: &str) -> R<Option<bool>> {
    match present(obj, key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(format!("{path}.{key}: expected a boolean")),
    }
}

fn str_at<'a>(obj: &'a Map<String, Value>, key: &str, path: &str) -> R<Option<&'a str>> {
    match present(obj, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(format!("{path}.{key}: expected a string")),
    }
}

fn int_at(obj: &Map<String, Value>, key: &str, path: &str) -> R<Option<i64>> {
    match present(obj, key) {
        None => Ok(None),
        Some(v) => v
            .as_i64()
            .map(Some)
            .ok_or_else(|| format!("{path}.{key}: expected an integer")),
    }
}

fn list_at<'a>(obj: &'a Map<String, Value>, key: &str, path: &str) -> R<&'a [Value]> {
    match present(obj, key) {
        None => Ok(&[]),
        Some(Value::Array(a)) => Ok(a.as_slice()),
        Some(_) => Err(format!("{path}.{key}: expected a list")),
    }
}

fn str_list_at<'a>(obj: &'a Map<String, Value>, key: &str, path: &str) -> R<Vec<&'a str>> {
    list_at(obj, key, path)?
        .iter()
        .enumerate()
        .map(|(i, v)| {
            v.as_str()
                .ok_or_else(|| format!("{path}.{key}[{i}]: expected a string"))
        })
        .collect()
}

fn parse_sc<'a>(m: &'a Map<String, Value>, path: &str, pod_level: bool) -> R<SecurityContext<'a>> {
    let mut sc = SecurityContext {
        run_as_non_root: bool_at(m, "runAsNonRoot", path)?,
        run_as_user: int_at(m, "runAsUser", path)?,
        ..SecurityContext::default()
    };
    if !pod_level {
        sc.allow_privilege_escalation = bool_at(m, "allowPrivilegeEscalation", path)?;
        sc.privileged = bool_at(m, "privileged", path)?;
        sc.proc_mount = str_at(m, "procMount", path)?;
        if let Some(c) = obj_at(m, "capabilities", path)? {
            let p = format!("{path}.capabilities");
            sc.capabilities = Some((str_list_at(c, "add", &p)?, str_list_at(c, "drop", &p)?));
        }
    } else {
        for (i, s) in list_at(m, "sysctls", path)?.iter().enumerate() {
            let p = format!("{path}.sysctls[{i}]");
            let s = s
                .as_object()
                .ok_or_else(|| format!("{p}: expected an object"))?;
            sc.sysctls.push(str_at(s, "name", &p)?.unwrap_or(""));
        }
    }
    if let Some(s) = obj_at(m, "seccompProfile", path)? {
        sc.seccomp_type = Some(str_at(s, "type", &format!("{path}.seccompProfile"))?.unwrap_or(""));
    }
    if let Some(s) = obj_at(m, "appArmorProfile", path)? {
        sc.apparmor_type =
            Some(str_at(s, "type", &format!("{path}.appArmorProfile"))?.unwrap_or(""));
    }
    if let Some(s) = obj_at(m, "seLinuxOptions", path)? {
        let p = format!("{path}.seLinuxOptions");
        sc.selinux = Some(SeLinux {
            typ: str_at(s, "type", &p)?.unwrap_or(""),
            user: str_at(s, "user", &p)?.unwrap_or(""),
            role: str_at(s, "role", &p)?.unwrap_or(""),
        });
    }
    if let Some(w) = obj_at(m, "windowsOptions", path)? {
        sc.host_process = bool_at(w, "hostProcess", &format!("{path}.windowsOptions"))?;
    }
    Ok(sc)
}

fn handler_hosts<'a>(h: &'a Map<String, Value>, path: &str, out: &mut Vec<&'a str>) -> R<()> {
    for key in ["httpGet", "tcpSocket"] {
        if let Some(x) = obj_at(h, key, path)?
            && let Some(host) = str_at(x, "host", &format!("{path}.{key}"))?
            && !host.is_empty()
        {
            out.push(host);
        }
    }
    Ok(())
}

fn parse_container<'a>(v: &'a Value, path: &str) -> R<Container<'a>> {
    let m = v
        .as_object()
        .ok_or_else(|| format!("{path}: expected an object"))?;
    let mut c = Container {
        name: str_at(m, "name", path)?.unwrap_or(""),
        image: str_at(m, "image", path)?.unwrap_or(""),
        ..Container::default()
    };
    if let Some(sc) = obj_at(m, "securityContext", path)? {
        c.sc = Some(parse_sc(sc, &format!("{path}.securityContext"), false)?);
    }
    for (i, p) in list_at(m, "ports", path)?.iter().enumerate() {
        let pp = format!("{path}.ports[{i}]");
        let p = p
            .as_object()
            .ok_or_else(|| format!("{pp}: expected an object"))?;
        let port = int_at(p, "hostPort", &pp)?.unwrap_or(0);
        if i32::try_from(port).is_err() {
            return Err(format!("{pp}.hostPort: out of range"));
        }
        if port != 0 {
            c.host_ports.push((i, port));
        }
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = obj_at(m, probe, path)? {
            handler_hosts(p, &format!("{path}.{probe}"), &mut c.probe_hosts)?;
        }
    }
    if let Some(l) = obj_at(m, "lifecycle", path)? {
        for h in ["postStart", "preStop"] {
            if let Some(x) = obj_at(l, h, &format!("{path}.lifecycle"))? {
                handler_hosts(x, &format!("{path}.lifecycle.{h}"), &mut c.probe_hosts)?;
            }
        }
    }
    Ok(c)
}

const ALLOWED_VOLUME_SOURCES: &[&str] = &[
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "image",
    "persistentVolumeClaim",
    "projected",
    "secret",
];

const RESTRICTED_VOLUME_SOURCES: &[&str] = &[
    "hostPath",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "gitRepo",
    "nfs",
    "iscsi",
    "glusterfs",
    "rbd",
    "flexVolume",
    "cinder",
    "cephfs",
    "flocker",
    "fc",
    "azureFile",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "photonPersistentDisk",
    "portworxVolume",
    "scaleIO",
    "storageos",
];

fn parse_volume<'a>(v: &'a Value, path: &str) -> R<Volume<'a>> {
    let m = v
        .as_object()
        .ok_or_else(|| format!("{path}: expected an object"))?;
    let name = str_at(m, "name", path)?.unwrap_or("");
    let mut source = None;
    for k in ALLOWED_VOLUME_SOURCES
        .iter()
        .chain(RESTRICTED_VOLUME_SOURCES)
    {
        if present(m, k).is_some() {
            if !matches!(m.get(*k), Some(Value::Object(_))) {
                return Err(format!("{path}.{k}: expected an object"));
            }
            if source.is_none() {
                source = Some(*k);
            }
        }
    }
    let host_path = match obj_at(m, "hostPath", path)? {
        Some(h) => Some(str_at(h, "path", &format!("{path}.hostPath"))?.unwrap_or("")),
        None => None,
    };
    Ok(Volume {
        name,
        source,
        host_path,
    })
}

/// Finds the pod spec and metadata as Kyverno's `getSpec` does; returns the kind too.
fn extract(resource: &Value) -> R<(&str, Pod<'_>)> {
    let kind = resource.get("kind").and_then(Value::as_str).unwrap_or("");
    let (spec, meta) = match kind {
        "Pod" => (resource.get("spec"), resource.get("metadata")),
        "DaemonSet"
        | "Deployment"
        | "Job"
        | "StatefulSet"
        | "ReplicaSet"
        | "ReplicationController" => (
            resource.pointer("/spec/template/spec"),
            resource.pointer("/spec/template/metadata"),
        ),
        "CronJob" => (
            resource.pointer("/spec/jobTemplate/spec/template/spec"),
            // Kyverno takes the job template's metadata here, not the pod template's.
            resource.pointer("/spec/jobTemplate/metadata"),
        ),
        _ => return Err("could not find correct resource type".to_string()),
    };
    let spec = match spec {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) => Some(m),
        Some(_) => return Err("pod spec: expected an object".into()),
    };
    let mut pod = Pod::default();
    match meta {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            if let Some(a) = obj_at(m, "annotations", "metadata")? {
                for (k, v) in a {
                    let v = v
                        .as_str()
                        .ok_or_else(|| format!("metadata.annotations[{k}]: expected a string"))?;
                    pod.annotations.push((k.as_str(), v));
                }
                pod.annotations.sort_unstable();
            }
        }
        Some(_) => return Err("metadata: expected an object".into()),
    }
    let Some(spec) = spec else {
        return Ok((kind, pod));
    };
    let p = "spec";
    pod.host_network = bool_at(spec, "hostNetwork", p)?.unwrap_or(false);
    pod.host_pid = bool_at(spec, "hostPID", p)?.unwrap_or(false);
    pod.host_ipc = bool_at(spec, "hostIPC", p)?.unwrap_or(false);
    if let Some(os) = obj_at(spec, "os", p)? {
        pod.windows = str_at(os, "name", "spec.os")? == Some("windows");
    }
    if let Some(sc) = obj_at(spec, "securityContext", p)? {
        pod.sc = Some(parse_sc(sc, "spec.securityContext", true)?);
    }
    for (i, v) in list_at(spec, "volumes", p)?.iter().enumerate() {
        pod.volumes
            .push(parse_volume(v, &format!("spec.volumes[{i}]"))?);
    }
    for (key, out) in [
        ("initContainers", &mut pod.init),
        ("containers", &mut pod.containers),
        ("ephemeralContainers", &mut pod.ephemeral),
    ] {
        for (i, v) in list_at(spec, key, p)?.iter().enumerate() {
            out.push(parse_container(v, &format!("spec.{key}[{i}]"))?);
        }
    }
    Ok((kind, pod))
}

// ---------------------------------------------------------------------------------------------
// Field errors and check results.

#[derive(Debug, Clone, PartialEq, Eq)]
enum Bad {
    /// Go's empty string (no value shown).
    Empty,
    Str(String),
    Bool(bool),
    Int(i64),
    List(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct FieldErr {
    field: String,
    required: bool,
    bad: Bad,
}

impl FieldErr {
    fn forbidden(field: String, bad: Bad) -> Self {
        // Go's empty string is "no value" both in the message and for exclude values.
        let bad = match bad {
            Bad::Str(s) if s.is_empty() => Bad::Empty,
            other => other,
        };
        FieldErr {
            field,
            required: false,
            bad,
        }
    }

    fn required(field: String) -> Self {
        FieldErr {
            field,
            required: true,
            bad: Bad::Empty,
        }
    }

    /// Kyverno's `extractBadValues`.
    fn bad_values(&self) -> Vec<String> {
        match &self.bad {
            Bad::Empty => Vec::new(),
            Bad::Str(s) => vec![s.clone()],
            Bad::Bool(b) => vec![b.to_string()],
            Bad::Int(i) => vec![i.to_string()],
            Bad::List(l) => l.clone(),
        }
    }

    /// Kyverno's rendering in `FormatChecksPrint`.
    fn text(&self, field: &str) -> String {
        if self.required {
            return format!("{field}: Required value");
        }
        let shown = match &self.bad {
            Bad::Empty => return format!("{field}: Forbidden"),
            Bad::Str(s) => s.clone(),
            Bad::Bool(b) => b.to_string(),
            Bad::Int(i) => i.to_string(),
            Bad::List(l) => format!("[{}]", l.join(" ")),
        };
        format!("{field} is forbidden, forbidden values found: {shown}")
    }
}

#[derive(Debug, Clone)]
struct CheckResult {
    id: &'static str,
    reason: String,
    detail: String,
    errs: Vec<FieldErr>,
}

impl CheckResult {
    fn into_violation(self, kind: &str) -> Violation {
        let fields = self
            .errs
            .iter()
            .map(|e| {
                let field = convert_field(&e.field, kind);
                FieldViolation {
                    text: e.text(&field),
                    field,
                    required: e.required,
                    values: e.bad_values(),
                }
            })
            .collect();
        Violation {
            check_id: self.id,
            control: check_control_name(self.id),
            reason: self.reason,
            detail: self.detail,
            fields,
        }
    }
}

/// Kyverno's `convertChecks`: textual rewrite of field paths for controllers and CronJobs, and
/// of `metadata` for every kind.
fn convert_field(field: &str, kind: &str) -> String {
    let f = match kind {
        "DaemonSet"
        | "Deployment"
        | "Job"
        | "StatefulSet"
        | "ReplicaSet"
        | "ReplicationController" => field.replace("spec", "spec.template.spec"),
        "CronJob" => field.replace("spec", "spec.jobTemplate.spec.template.spec"),
        _ => field.to_string(),
    };
    f.replace("metadata", "spec.template.metadata")
}

fn pluralize<'a>(one: &'a str, many: &'a str, n: usize) -> &'a str {
    if n == 1 { one } else { many }
}

fn join_quote<S: AsRef<str>>(items: &[S]) -> String {
    if items.is_empty() {
        return String::new();
    }
    let mut s = String::from("\"");
    for (i, x) in items.iter().enumerate() {
        if i > 0 {
            s.push_str("\", \"");
        }
        s.push_str(x.as_ref());
    }
    s.push('"');
    s
}

/// A sorted, de-duplicated list (Go's `sets.String.List()`).
fn sorted_set(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v.dedup();
    v
}

/// The field path of a container (`spec.<list>[<index>]`), formatted only when an error needs
/// it.
#[derive(Debug, Clone, Copy)]
struct CPath {
    list: &'static str,
    index: usize,
}

impl std::fmt::Display for CPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "spec.{}[{}]", self.list, self.index)
    }
}

/// Containers in `pod-security-admission`'s visiting order with their field paths.
fn visit<'p, 'a>(pod: &'p Pod<'a>) -> impl Iterator<Item = (&'p Container<'a>, CPath)> {
    let f = |list: &'static str| {
        move |(index, c): (usize, &'p Container<'a>)| (c, CPath { list, index })
    };
    pod.init
        .iter()
        .enumerate()
        .map(f("initContainers"))
        .chain(pod.containers.iter().enumerate().map(f("containers")))
        .chain(
            pod.ephemeral
                .iter()
                .enumerate()
                .map(f("ephemeralContainers")),
        )
}

fn fail(
    id: &'static str,
    reason: impl Into<String>,
    detail: String,
    errs: Vec<FieldErr>,
) -> Option<CheckResult> {
    Some(CheckResult {
        id,
        reason: reason.into(),
        detail,
        errs,
    })
}

/// `setters` joined with " and " (Kubernetes' `strings.Join(badSetters.Data(), " and ")`).
fn containers_phrase(names: &[&str]) -> String {
    format!(
        "{} {}",
        pluralize("container", "containers", names.len()),
        join_quote(names)
    )
}

// ----- the checks, in `policy.DefaultChecks()` order -----

fn check_allow_privilege_escalation(pod: &Pod, minor: u32) -> Option<CheckResult> {
    if minor >= 25 && pod.windows {
        return None;
    }
    let mut names = Vec::new();
    let mut errs = Vec::new();
    for (c, path) in visit(pod) {
        let f = format!("{path}.securityContext.allowPrivilegeEscalation");
        match &c.sc {
            None => errs.push(FieldErr::required(f)),
            Some(sc) => match sc.allow_privilege_escalation {
                None => errs.push(FieldErr::forbidden(f, Bad::Str("nil".into()))),
                Some(true) => errs.push(FieldErr::forbidden(f, Bad::Bool(true))),
                Some(false) => continue,
            },
        }
        names.push(c.name);
    }
    if names.is_empty() {
        return None;
    }
    fail(
        "allowPrivilegeEscalation",
        "allowPrivilegeEscalation != false",
        format!(
            "{} must set securityContext.allowPrivilegeEscalation=false",
            containers_phrase(&names)
        ),
        errs,
    )
}

fn check_apparmor(pod: &Pod) -> Option<CheckResult> {
    let allowed = |t: &str| t == "RuntimeDefault" || t == "Localhost";
    let mut setters: Vec<String> = Vec::new();
    let mut errs = Vec::new();
    let mut bad_values = Vec::new();
    if let Some(t) = pod.sc.as_ref().and_then(|s| s.apparmor_type)
        && !allowed(t)
    {
        setters.push("pod".into());
        errs.push(FieldErr::forbidden(
            "spec.securityContext.appArmorProfile.type".into(),
            Bad::Str(t.into()),
        ));
        bad_values.push(t.to_string());
    }
    let mut names = Vec::new();
    let mut cerrs = Vec::new();
    for (c, path) in visit(pod) {
        if let Some(t) = c.sc.as_ref().and_then(|s| s.apparmor_type)
            && !allowed(t)
        {
            names.push(c.name);
            cerrs.push(FieldErr::forbidden(
                format!("{path}.securityContext.appArmorProfile.type"),
                Bad::Str(t.into()),
            ));
            bad_values.push(t.to_string());
        }
    }
    if !names.is_empty() {
        setters.push(containers_phrase(&names));
        errs.extend(cerrs);
    }
    let mut bad_list = sorted_set(bad_values);
    let mut annots = Vec::new();
    for (k, v) in &pod.annotations {
        if k.starts_with("container.apparmor.security.beta.kubernetes.io/")
            && !(v.is_empty() || *v == "runtime/default" || v.starts_with("localhost/"))
        {
            annots.push(format!("{k}={v:?}"));
            errs.push(FieldErr::forbidden(
                format!("metadata.annotations[{k}]"),
                Bad::Str((*v).to_string()),
            ));
        }
    }
    if !annots.is_empty() {
        annots.sort();
        setters.push(pluralize("annotation", "annotations", annots.len()).to_string());
        bad_list.extend(annots);
    }
    if setters.is_empty() {
        return None;
    }
    fail(
        "appArmorProfile",
        pluralize(
            "forbidden AppArmor profile",
            "forbidden AppArmor profiles",
            bad_list.len(),
        ),
        format!(
            "{} must not set AppArmor profile type to {}",
            setters.join(" and "),
            join_quote(&bad_list)
        ),
        errs,
    )
}

const BASELINE_CAPABILITIES: &[&str] = &[
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

fn check_capabilities_baseline(pod: &Pod) -> Option<CheckResult> {
    let mut names = Vec::new();
    let mut errs = Vec::new();
    let mut all_bad = Vec::new();
    for (c, path) in visit(pod) {
        if let Some((add, _)) = c.sc.as_ref().and_then(|s| s.capabilities.as_ref()) {
            let bad: Vec<String> = add
                .iter()
                .filter(|a| !BASELINE_CAPABILITIES.contains(a))
                .map(|a| a.to_string())
                .collect();
            if !bad.is_empty() {
                all_bad.extend(bad.iter().cloned());
                names.push(c.name);
                errs.push(FieldErr::forbidden(
                    format!("{path}.securityContext.capabilities.add"),
                    Bad::List(sorted_set(bad)),
                ));
            }
        }
    }
    if names.is_empty() {
        return None;
    }
    fail(
        "capabilities_baseline",
        "non-default capabilities",
        format!(
            "{} must not include {} in securityContext.capabilities.add",
            containers_phrase(&names),
            join_quote(&sorted_set(all_bad))
        ),
        errs,
    )
}

fn check_capabilities_restricted(pod: &Pod, minor: u32) -> Option<CheckResult> {
    if minor >= 25 && pod.windows {
        return None;
    }
    let mut missing = Vec::new();
    let mut missing_errs = Vec::new();
    let mut adding = Vec::new();
    let mut adding_errs = Vec::new();
    let mut forbidden_caps = Vec::new();
    for (c, path) in visit(pod) {
        let drop_path = format!("{path}.securityContext.capabilities.drop");
        let Some((add, drop)) = c.sc.as_ref().and_then(|s| s.capabilities.as_ref()) else {
            missing.push(c.name);
            missing_errs.push(FieldErr::required(drop_path));
            continue;
        };
        if !drop.contains(&"ALL") {
            missing.push(c.name);
            if drop.is_empty() {
                missing_errs.push(FieldErr::required(drop_path));
            } else {
                missing_errs.push(FieldErr::forbidden(
                    drop_path,
                    Bad::List(sorted_set(drop.iter().map(|s| s.to_string()).collect())),
                ));
            }
        }
        let bad: Vec<String> = add
            .iter()
            .filter(|a| **a != "NET_BIND_SERVICE")
            .map(|a| a.to_string())
            .collect();
        if !bad.is_empty() {
            forbidden_caps.extend(bad.iter().cloned());
            adding.push(c.name);
            adding_errs.push(FieldErr::forbidden(
                format!("{path}.securityContext.capabilities.add"),
                Bad::List(sorted_set(bad)),
            ));
        }
    }
    let mut details = Vec::new();
    if !missing.is_empty() {
        details.push(format!(
            "{} must set securityContext.capabilities.drop=[\"ALL\"]",
            containers_phrase(&missing)
        ));
    }
    if !adding.is_empty() {
        details.push(format!(
            "{} must not include {} in securityContext.capabilities.add",
            containers_phrase(&adding),
            join_quote(&sorted_set(forbidden_caps))
        ));
    }
    if details.is_empty() {
        return None;
    }
    missing_errs.extend(adding_errs);
    fail(
        "capabilities_restricted",
        "unrestricted capabilities",
        details.join("; "),
        missing_errs,
    )
}

fn check_host_namespaces(pod: &Pod) -> Option<CheckResult> {
    let mut data = Vec::new();
    let mut errs = Vec::new();
    for (set, name) in [
        (pod.host_network, "hostNetwork"),
        (pod.host_pid, "hostPID"),
        (pod.host_ipc, "hostIPC"),
    ] {
        if set {
            data.push(format!("{name}=true"));
            errs.push(FieldErr::forbidden(format!("spec.{name}"), Bad::Bool(true)));
        }
    }
    if data.is_empty() {
        return None;
    }
    fail("hostNamespaces", "host namespaces", data.join(", "), errs)
}

fn check_host_path_volumes(pod: &Pod) -> Option<CheckResult> {
    let mut names = Vec::new();
    let mut errs = Vec::new();
    for (i, v) in pod.volumes.iter().enumerate() {
        if let Some(p) = v.host_path {
            names.push(v.name);
            let bad = if p.is_empty() {
                Bad::Empty
            } else {
                Bad::Str(p.into())
            };
            errs.push(FieldErr::forbidden(
                format!("spec.volumes[{i}].hostPath"),
                bad,
            ));
        }
    }
    if names.is_empty() {
        return None;
    }
    fail(
        "hostPathVolumes",
        "hostPath volumes",
        format!(
            "{} {}",
            pluralize("volume", "volumes", names.len()),
            join_quote(&names)
        ),
        errs,
    )
}

fn check_host_ports(pod: &Pod) -> Option<CheckResult> {
    let mut names = Vec::new();
    let mut errs = Vec::new();
    let mut ports = Vec::new();
    for (c, path) in visit(pod) {
        if c.host_ports.is_empty() {
            continue;
        }
        names.push(c.name);
        for (i, p) in &c.host_ports {
            ports.push(p.to_string());
            errs.push(FieldErr::forbidden(
                format!("{path}.ports[{i}].hostPort"),
                Bad::Int(*p),
            ));
        }
    }
    if names.is_empty() {
        return None;
    }
    let ports = sorted_set(ports);
    fail(
        "hostPorts",
        "hostPort",
        format!(
            "{} {} {} {}",
            containers_phrase(&names),
            pluralize("uses", "use", names.len()),
            pluralize("hostPort", "hostPorts", ports.len()),
            ports.join(", ")
        ),
        errs,
    )
}

fn check_host_probes(pod: &Pod) -> Option<CheckResult> {
    let mut names: Vec<String> = Vec::new();
    let mut hosts: Vec<String> = Vec::new();
    for (c, _) in visit(pod) {
        if !c.probe_hosts.is_empty() {
            names.push(c.name.to_string());
            hosts.extend(c.probe_hosts.iter().map(|h| h.to_string()));
        }
    }
    if names.is_empty() {
        return None;
    }
    let names = sorted_set(names);
    let hosts = sorted_set(hosts);
    fail(
        "hostProbesAndHostLifecycle",
        "probe or lifecycle host",
        format!(
            "{} {} {} {} {}",
            pluralize("container", "containers", names.len()),
            join_quote(&names),
            pluralize("uses", "use", names.len()),
            pluralize(
                "probe or lifecycle host",
                "probe or lifecycle hosts",
                hosts.len()
            ),
            join_quote(&hosts)
        ),
        Vec::new(),
    )
}

fn check_privileged(pod: &Pod) -> Option<CheckResult> {
    let mut names = Vec::new();
    let mut errs = Vec::new();
    for (c, path) in visit(pod) {
        if c.sc.as_ref().and_then(|s| s.privileged) == Some(true) {
            names.push(c.name);
            errs.push(FieldErr::forbidden(
                format!("{path}.securityContext.privileged"),
                Bad::Bool(true),
            ));
        }
    }
    if names.is_empty() {
        return None;
    }
    fail(
        "privileged",
        "privileged",
        format!(
            "{} must not set securityContext.privileged=true",
            containers_phrase(&names)
        ),
        errs,
    )
}

fn check_proc_mount(pod: &Pod) -> Option<CheckResult> {
    let mut names = Vec::new();
    let mut errs = Vec::new();
    let mut types = Vec::new();
    for (c, path) in visit(pod) {
        if let Some(pm) = c.sc.as_ref().and_then(|s| s.proc_mount)
            && pm != "Default"
        {
            names.push(c.name);
            let bad = if pm.is_empty() {
                Bad::Empty
            } else {
                Bad::Str(pm.into())
            };
            errs.push(FieldErr::forbidden(
                format!("{path}.securityContext.procMount"),
                bad,
            ));
            types.push(pm.to_string());
        }
    }
    if names.is_empty() {
        return None;
    }
    fail(
        "procMount",
        "procMount",
        format!(
            "{} must not set securityContext.procMount to {}",
            containers_phrase(&names),
            join_quote(&sorted_set(types))
        ),
        errs,
    )
}

fn check_restricted_volumes(pod: &Pod) -> Option<CheckResult> {
    let mut names = Vec::new();
    let mut errs = Vec::new();
    let mut types = Vec::new();
    for (i, v) in pod.volumes.iter().enumerate() {
        if v.source
            .is_some_and(|s| ALLOWED_VOLUME_SOURCES.contains(&s))
        {
            continue;
        }
        let t = v.source.unwrap_or("unknown");
        names.push(v.name);
        types.push(t.to_string());
        errs.push(FieldErr::forbidden(
            format!("spec.volumes[{i}].{t}"),
            Bad::Empty,
        ));
    }
    if names.is_empty() {
        return None;
    }
    let types = sorted_set(types);
    fail(
        "restrictedVolumes",
        "restricted volume types",
        format!(
            "{} {} {} {} {}",
            pluralize("volume", "volumes", names.len()),
            join_quote(&names),
            pluralize("uses", "use", names.len()),
            pluralize(
                "restricted volume type",
                "restricted volume types",
                types.len()
            ),
            join_quote(&types)
        ),
        errs,
    )
}

fn check_run_as_non_root(pod: &Pod) -> Option<CheckResult> {
    let mut setters: Vec<String> = Vec::new();
    let mut setter_errs = Vec::new();
    let mut pod_ok = false;
    match pod.sc.as_ref().and_then(|s| s.run_as_non_root) {
        Some(false) => {
            setters.push("pod".into());
            setter_errs.push(FieldErr::forbidden(
                "spec.securityContext.runAsNonRoot".into(),
                Bad::Bool(false),
            ));
        }
        Some(true) => pod_ok = true,
        None => {}
    }
    let mut explicit = Vec::new();
    let mut explicit_errs = Vec::new();
    let mut implicit = Vec::new();
    let mut implicit_errs = Vec::new();
    for (c, path) in visit(pod) {
        let f = format!("{path}.securityContext.runAsNonRoot");
        match c.sc.as_ref().and_then(|s| s.run_as_non_root) {
            Some(false) => {
                explicit.push(c.name);
                explicit_errs.push(FieldErr::forbidden(f, Bad::Bool(false)));
            }
            Some(true) => {}
            None => {
                if !pod_ok {
                    implicit.push(c.name);
                    implicit_errs.push(FieldErr::required(f));
                }
            }
        }
    }
    if !explicit.is_empty() {
        setters.push(containers_phrase(&explicit));
        setter_errs.extend(explicit_errs);
    }
    let mut details = Vec::new();
    let mut errs = Vec::new();
    if !setters.is_empty() {
        details.push(format!(
            "{} must not set securityContext.runAsNonRoot=false",
            setters.join(" and ")
        ));
        errs.extend(setter_errs);
    }
    if !implicit.is_empty() {
        details.push(format!(
            "pod or {} must set securityContext.runAsNonRoot=true",
            containers_phrase(&implicit)
        ));
        errs.extend(implicit_errs);
    }
    if details.is_empty() {
        return None;
    }
    fail(
        "runAsNonRoot",
        "runAsNonRoot != true",
        details.join("\n"),
        errs,
    )
}

fn check_run_as_user(pod: &Pod) -> Option<CheckResult> {
    let mut setters: Vec<String> = Vec::new();
    let mut errs = Vec::new();
    if pod.sc.as_ref().and_then(|s| s.run_as_user) == Some(0) {
        setters.push("pod".into());
        errs.push(FieldErr::forbidden(
            "spec.securityContext.runAsUser".into(),
            Bad::Int(0),
        ));
    }
    let mut names = Vec::new();
    for (c, path) in visit(pod) {
        if c.sc.as_ref().and_then(|s| s.run_as_user) == Some(0) {
            names.push(c.name);
            errs.push(FieldErr::forbidden(
                format!("{path}.securityContext.runAsUser"),
                Bad::Int(0),
            ));
        }
    }
    if !names.is_empty() {
        setters.push(containers_phrase(&names));
    }
    if setters.is_empty() {
        return None;
    }
    fail(
        "runAsUser",
        "runAsUser=0",
        format!("{} must not set runAsUser=0", setters.join(" and ")),
        errs,
    )
}

fn check_selinux(pod: &Pod, minor: u32) -> Option<CheckResult> {
    let allowed_type = |t: &str| {
        matches!(
            t,
            "" | "container_t" | "container_init_t" | "container_kvm_t"
        ) || (minor >= 31 && t == "container_engine_t")
    };
    let mut bad_types = Vec::new();
    let (mut set_user, mut set_role) = (false, false);
    let mut check = |o: &SeLinux, prefix: &str, errs: &mut Vec<FieldErr>| -> bool {
        let mut valid = true;
        if !allowed_type(o.typ) {
            valid = false;
            bad_types.push(o.typ.to_string());
            errs.push(FieldErr::forbidden(
                format!("{prefix}.seLinuxOptions.type"),
                Bad::Str(o.typ.into()),
            ));
        }
        if !o.user.is_empty() {
            valid = false;
            set_user = true;
            errs.push(FieldErr::forbidden(
                format!("{prefix}.seLinuxOptions.user"),
                Bad::Str(o.user.into()),
            ));
        }
        if !o.role.is_empty() {
            valid = false;
            set_role = true;
            errs.push(FieldErr::forbidden(
                format!("{prefix}.seLinuxOptions.role"),
                Bad::Str(o.role.into()),
            ));
        }
        valid
    };
    let mut setters: Vec<String> = Vec::new();
    let mut errs = Vec::new();
    if let Some(o) = pod.sc.as_ref().and_then(|s| s.selinux.as_ref()) {
        let mut pod_errs = Vec::new();
        if !check(o, "spec.securityContext", &mut pod_errs) {
            setters.push("pod".into());
            errs.extend(pod_errs);
        }
    }
    let mut names = Vec::new();
    let mut cerrs = Vec::new();
    for (c, path) in visit(pod) {
        if let Some(o) = c.sc.as_ref().and_then(|s| s.selinux.as_ref())
            && !check(o, &format!("{path}.securityContext"), &mut cerrs)
        {
            names.push(c.name);
        }
    }
    if !names.is_empty() {
        setters.push(containers_phrase(&names));
        errs.extend(cerrs);
    }
    if setters.is_empty() {
        return None;
    }
    let mut data = Vec::new();
    let bad_types = sorted_set(bad_types);
    if !bad_types.is_empty() {
        data.push(format!(
            "{} {}",
            pluralize("type", "types", bad_types.len()),
            join_quote(&bad_types)
        ));
    }
    if set_user {
        data.push("user may not be set".to_string());
    }
    if set_role {
        data.push("role may not be set".to_string());
    }
    fail(
        "seLinuxOptions",
        "seLinuxOptions",
        format!(
            "{} set forbidden securityContext.seLinuxOptions: {}",
            setters.join(" and "),
            data.join("; ")
        ),
        errs,
    )
}

fn valid_seccomp(t: &str) -> bool {
    t == "RuntimeDefault" || t == "Localhost"
}

fn check_seccomp_baseline(pod: &Pod, minor: u32) -> Option<CheckResult> {
    if minor < 19 {
        // v1.0-v1.18: the alpha annotations.
        let valid = |v: &str| {
            v == "runtime/default" || v == "docker/default" || v.starts_with("localhost/")
        };
        let mut data = Vec::new();
        let mut errs = Vec::new();
        let mut keys: Vec<String> = vec!["seccomp.security.alpha.kubernetes.io/pod".into()];
        for (c, _) in visit(pod) {
            keys.push(format!(
                "container.seccomp.security.alpha.kubernetes.io/{}",
                c.name
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for key in keys {
            if !seen.insert(key.clone()) {
                continue;
            }
            if let Some((_, v)) = pod.annotations.iter().find(|(k, _)| *k == key)
                && !valid(v)
            {
                data.push(format!("{key}={v:?}"));
                errs.push(FieldErr::forbidden(
                    format!("metadata.annotations[{key}]"),
                    if v.is_empty() {
                        Bad::Empty
                    } else {
                        Bad::Str((*v).to_string())
                    },
                ));
            }
        }
        if data.is_empty() {
            return None;
        }
        data.sort();
        return fail(
            "seccompProfile_baseline",
            "seccompProfile",
            format!(
                "forbidden {} {}",
                pluralize("annotation", "annotations", data.len()),
                data.join(", ")
            ),
            errs,
        );
    }
    let mut setters: Vec<String> = Vec::new();
    let mut errs = Vec::new();
    let mut bad = Vec::new();
    if let Some(t) = pod.sc.as_ref().and_then(|s| s.seccomp_type)
        && !valid_seccomp(t)
    {
        setters.push("pod".into());
        errs.push(FieldErr::forbidden(
            "spec.securityContext.seccompProfile.type".into(),
            Bad::Str(t.into()),
        ));
        bad.push(t.to_string());
    }
    let mut names = Vec::new();
    for (c, path) in visit(pod) {
        if let Some(t) = c.sc.as_ref().and_then(|s| s.seccomp_type)
            && !valid_seccomp(t)
        {
            names.push(c.name);
            errs.push(FieldErr::forbidden(
                format!("{path}.securityContext.seccompProfile.type"),
                Bad::Str(t.into()),
            ));
            bad.push(t.to_string());
        }
    }
    if !names.is_empty() {
        setters.push(containers_phrase(&names));
    }
    if setters.is_empty() {
        return None;
    }
    fail(
        "seccompProfile_baseline",
        "seccompProfile",
        format!(
            "{} must not set securityContext.seccompProfile.type to {}",
            setters.join(" and "),
            join_quote(&sorted_set(bad))
        ),
        errs,
    )
}

fn check_seccomp_restricted(pod: &Pod, minor: u32) -> Option<CheckResult> {
    if minor >= 25 && pod.windows {
        return None;
    }
    let mut setters: Vec<String> = Vec::new();
    let mut errs = Vec::new();
    let mut bad = Vec::new();
    let mut pod_set = false;
    if let Some(t) = pod.sc.as_ref().and_then(|s| s.seccomp_type) {
        if valid_seccomp(t) {
            pod_set = true;
        } else {
            setters.push("pod".into());
            errs.push(FieldErr::forbidden(
                "spec.securityContext.seccompProfile.type".into(),
                Bad::Str(t.into()),
            ));
            bad.push(t.to_string());
        }
    }
    let mut explicit = Vec::new();
    let mut implicit = Vec::new();
    let mut implicit_errs = Vec::new();
    for (c, path) in visit(pod) {
        let f = format!("{path}.securityContext.seccompProfile.type");
        match c.sc.as_ref().and_then(|s| s.seccomp_type) {
            Some(t) => {
                if !valid_seccomp(t) {
                    explicit.push(c.name);
                    errs.push(FieldErr::forbidden(f, Bad::Str(t.into())));
                    bad.push(t.to_string());
                }
            }
            None => {
                if !pod_set {
                    implicit.push(c.name);
                    implicit_errs.push(FieldErr::required(f));
                }
            }
        }
    }
    if !explicit.is_empty() {
        setters.push(containers_phrase(&explicit));
    }
    if !setters.is_empty() {
        return fail(
            "seccompProfile_restricted",
            "seccompProfile",
            format!(
                "{} must not set securityContext.seccompProfile.type to {}",
                setters.join(" and "),
                join_quote(&sorted_set(bad))
            ),
            errs,
        );
    }
    if !implicit.is_empty() {
        return fail(
            "seccompProfile_restricted",
            "seccompProfile",
            format!(
                "pod or {} must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\"",
                containers_phrase(&implicit)
            ),
            implicit_errs,
        );
    }
    None
}

fn sysctl_allowed(name: &str, minor: u32) -> bool {
    match name {
        "kernel.shm_rmid_forced"
        | "net.ipv4.ip_local_port_range"
        | "net.ipv4.tcp_syncookies"
        | "net.ipv4.ping_group_range"
        | "net.ipv4.ip_unprivileged_port_start" => true,
        "net.ipv4.ip_local_reserved_ports" => minor >= 27,
        "net.ipv4.tcp_keepalive_time"
        | "net.ipv4.tcp_fin_timeout"
        | "net.ipv4.tcp_keepalive_intvl"
        | "net.ipv4.tcp_keepalive_probes" => minor >= 29,
        "net.ipv4.tcp_rmem" | "net.ipv4.tcp_wmem" => minor >= 32,
        _ => false,
    }
}

fn check_sysctls(pod: &Pod, minor: u32) -> Option<CheckResult> {
    let mut names = Vec::new();
    let mut errs = Vec::new();
    if let Some(sc) = &pod.sc {
        for (i, name) in sc.sysctls.iter().enumerate() {
            if !sysctl_allowed(name, minor) {
                names.push(*name);
                errs.push(FieldErr::forbidden(
                    format!("spec.securityContext.sysctls[{i}].name"),
                    if name.is_empty() {
                        Bad::Empty
                    } else {
                        Bad::Str((*name).to_string())
                    },
                ));
            }
        }
    }
    if names.is_empty() {
        return None;
    }
    fail("sysctls", "forbidden sysctls", names.join(", "), errs)
}

fn check_host_process(pod: &Pod) -> Option<CheckResult> {
    let mut names = Vec::new();
    let mut cerrs = Vec::new();
    for (c, path) in visit(pod) {
        if c.sc.as_ref().and_then(|s| s.host_process) == Some(true) {
            names.push(c.name);
            cerrs.push(FieldErr::forbidden(
                format!("{path}.securityContext.windowsOptions.hostProcess"),
                Bad::Bool(true),
            ));
        }
    }
    let mut setters: Vec<String> = Vec::new();
    let mut errs = Vec::new();
    if pod.sc.as_ref().and_then(|s| s.host_process) == Some(true) {
        setters.push("pod".into());
        errs.push(FieldErr::forbidden(
            "spec.securityContext.windowsOptions.hostProcess".into(),
            Bad::Bool(true),
        ));
    }
    if !names.is_empty() {
        setters.push(containers_phrase(&names));
        errs.extend(cerrs);
    }
    if setters.is_empty() {
        return None;
    }
    fail(
        "windowsHostProcess",
        "hostProcess",
        format!(
            "{} must not set securityContext.windowsOptions.hostProcess=true",
            setters.join(" and ")
        ),
        errs,
    )
}

/// Kyverno's `evaluatePSS`: every default check (restricted ones skipped at `baseline`), in
/// `policy.DefaultChecks()` order.
fn evaluate(level: Level, minor: u32, pod: &Pod) -> Vec<CheckResult> {
    let restricted = level != Level::Baseline;
    let mut out = Vec::new();
    let mut push = |r: Option<CheckResult>| {
        if let Some(r) = r {
            out.push(r);
        }
    };
    if restricted {
        push(check_allow_privilege_escalation(pod, minor));
    }
    push(check_apparmor(pod));
    push(check_capabilities_baseline(pod));
    if restricted {
        push(check_capabilities_restricted(pod, minor));
    }
    push(check_host_namespaces(pod));
    push(check_host_path_volumes(pod));
    push(check_host_ports(pod));
    push(check_host_probes(pod));
    push(check_privileged(pod));
    push(check_proc_mount(pod));
    if restricted {
        push(check_restricted_volumes(pod));
        push(check_run_as_non_root(pod));
        push(check_run_as_user(pod));
    }
    push(check_selinux(pod, minor));
    push(check_seccomp_baseline(pod, minor));
    if restricted {
        push(check_seccomp_restricted(pod, minor));
    }
    push(check_sysctls(pod, minor));
    push(check_host_process(pod));
    out
}

// ---------------------------------------------------------------------------------------------
// Exclusions (Kyverno's `ApplyPodSecurityExclusion` / `exemptExclusions`).

/// Replaces every run of ASCII digits by `*`.
fn star_indexes(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut in_digits = false;
    for ch in field.chars() {
        if ch.is_ascii_digit() {
            if !in_digits {
                out.push('*');
            }
            in_digits = true;
        } else {
            out.push(ch);
            in_digits = false;
        }
    }
    out
}

/// Kyverno's `parseField`: the starred field, the first index, and the container list named by
/// the second alphabetic word (when it is one).
fn parse_field(field: &str) -> (String, Option<usize>, Option<&'static str>) {
    let starred = star_indexes(field);
    let first_index = field
        .split(|c: char| !c.is_ascii_digit())
        .find(|s| !s.is_empty())
        .and_then(|s| s.parse().ok());
    let second_word = field
        .split(|c: char| !c.is_ascii_alphabetic())
        .filter(|s| !s.is_empty())
        .nth(1);
    let kind = match second_word {
        Some("containers") => Some("containers"),
        Some("initContainers") => Some("initContainers"),
        Some("ephemeralContainers") => Some("ephemeralContainers"),
        _ => None,
    };
    (starred, first_index, kind)
}

fn container_name<'a>(pod: &Pod<'a>, kind: &str, index: Option<usize>) -> &'a str {
    let list = match kind {
        "containers" => &pod.containers,
        "initContainers" => &pod.init,
        _ => &pod.ephemeral,
    };
    index
        .and_then(|i| list.get(i))
        .map(|c| c.name)
        .unwrap_or("")
}

fn apply_exclusions(
    level: Level,
    minor: u32,
    excludes: &[PssExclude],
    mut results: Vec<CheckResult>,
    pod: &Pod,
) -> Vec<CheckResult> {
    for exclude in excludes {
        if results.is_empty() {
            break;
        }
        let ids = control_check_ids(&exclude.control_name);
        if ids.is_empty() {
            continue;
        }
        let container_level = !exclude.images.is_empty();
        let probe = if container_level {
            fn pick<'a>(list: &[Container<'a>], images: &[String]) -> Vec<Container<'a>> {
                list.iter()
                    .filter(|c| any_pattern(images, c.image))
                    .cloned()
                    .collect()
            }
            Pod {
                init: pick(&pod.init, &exclude.images),
                containers: pick(&pod.containers, &exclude.images),
                ephemeral: pick(&pod.ephemeral, &exclude.images),
                ..Pod::default()
            }
        } else {
            Pod {
                containers: vec![Container {
                    name: "fake",
                    ..Container::default()
                }],
                init: Vec::new(),
                ephemeral: Vec::new(),
                ..pod.clone()
            }
        };
        let exclude_results = evaluate(level, minor, &probe);
        for er in &exclude_results {
            if !ids.contains(&er.id) {
                continue;
            }
            for ee in &er.errs {
                let (ex_field, ex_index, ex_kind) = if container_level {
                    parse_field(&ee.field)
                } else {
                    (star_indexes(&ee.field), None, None)
                };
                if !(exclude.restricted_field.is_empty() || ex_field == exclude.restricted_field) {
                    continue;
                }
                if !exclude.values.is_empty()
                    && !ee
                        .bad_values()
                        .iter()
                        .all(|b| any_pattern(&exclude.values, b))
                {
                    continue;
                }
                let ex_container = ex_kind.map(|k| container_name(&probe, k, ex_index));
                let Some(pos) = results.iter().position(|r| r.id == er.id) else {
                    continue;
                };
                let target = &mut results[pos];
                let hit = target.errs.iter().position(|de| {
                    if container_level {
                        let (d_field, d_index, d_kind) = parse_field(&de.field);
                        match d_kind {
                            Some(k) => {
                                ex_field == d_field
                                    && ex_container == Some(container_name(pod, k, d_index))
                            }
                            None => ex_field == d_field,
                        }
                    } else {
                        ex_field == star_indexes(&de.field)
                    }
                });
                if let Some(i) = hit {
                    target.errs.swap_remove(i);
                }
                if target.errs.is_empty() {
                    results.remove(pos);
                }
            }
        }
    }
    results
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn wildcard() {
        assert!(wildcard_match("nginx*", "nginx:1.2"));
        assert!(wildcard_match("*", ""));
        assert!(wildcard_match("a?c", "abc"));
        assert!(!wildcard_match("a?c", "ac"));
        assert!(!wildcard_match("busybox", "nginx"));
    }

    #[test]
    fn versions() {
        assert_eq!(parse_version(""), Some(u32::MAX));
        assert_eq!(parse_version("latest"), Some(u32::MAX));
        assert_eq!(parse_version("v1.24"), Some(24));
        assert_eq!(parse_version("v1.024"), None);
        assert_eq!(parse_version("1.24"), None);
        assert_eq!(parse_version("v2.0"), None);
    }

    #[test]
    fn fields() {
        assert_eq!(
            parse_field("spec.containers[10].ports[2].hostPort"),
            (
                "spec.containers[*].ports[*].hostPort".to_string(),
                Some(10),
                Some("containers")
            )
        );
        assert_eq!(parse_field("spec.hostNetwork").2, None);
    }
}
