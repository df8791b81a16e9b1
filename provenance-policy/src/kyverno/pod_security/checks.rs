//! The checks of `pod-security-admission` (`policy.DefaultChecks()`), with their field errors
//! and results.

use super::pod::{ALLOWED_VOLUME_SOURCES, Container, Pod, SeLinux};
use super::{FieldViolation, Level, Violation, check_control_name};

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
pub(super) struct FieldErr {
    pub(super) field: String,
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
    pub(super) fn bad_values(&self) -> Vec<String> {
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
pub(super) struct CheckResult {
    pub(super) id: &'static str,
    reason: String,
    detail: String,
    pub(super) errs: Vec<FieldErr>,
}

impl CheckResult {
    pub(super) fn into_violation(self, kind: &str) -> Violation {
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
pub(super) fn evaluate(level: Level, minor: u32, pod: &Pod) -> Vec<CheckResult> {
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
