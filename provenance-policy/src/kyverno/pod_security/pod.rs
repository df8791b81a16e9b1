//! A typed view of the parts of a pod that the checks read.

use serde_json::{Map, Value};

#[derive(Debug, Clone, Default)]
pub(super) struct SeLinux<'a> {
    pub(super) typ: &'a str,
    pub(super) user: &'a str,
    pub(super) role: &'a str,
}

#[derive(Debug, Clone, Default)]
pub(super) struct SecurityContext<'a> {
    pub(super) allow_privilege_escalation: Option<bool>,
    pub(super) privileged: Option<bool>,
    /// `(add, drop)` when `capabilities` is set.
    pub(super) capabilities: Option<(Vec<&'a str>, Vec<&'a str>)>,
    pub(super) proc_mount: Option<&'a str>,
    pub(super) run_as_non_root: Option<bool>,
    pub(super) run_as_user: Option<i64>,
    pub(super) seccomp_type: Option<&'a str>,
    pub(super) selinux: Option<SeLinux<'a>>,
    pub(super) host_process: Option<bool>,
    pub(super) apparmor_type: Option<&'a str>,
    pub(super) sysctls: Vec<&'a str>,
}

#[derive(Debug, Clone, Default)]
pub(super) struct Container<'a> {
    pub(super) name: &'a str,
    pub(super) image: &'a str,
    pub(super) sc: Option<SecurityContext<'a>>,
    /// `(index in ports, hostPort)` for non-zero host ports.
    pub(super) host_ports: Vec<(usize, i64)>,
    /// Hosts set in probes and lifecycle handlers, in Kubernetes' visiting order.
    pub(super) probe_hosts: Vec<&'a str>,
}

#[derive(Debug, Clone)]
pub(super) struct Volume<'a> {
    pub(super) name: &'a str,
    /// The first volume source key present, or `None` when only unknown keys are.
    pub(super) source: Option<&'static str>,
    pub(super) host_path: Option<&'a str>,
}

#[derive(Debug, Clone, Default)]
pub(super) struct Pod<'a> {
    pub(super) annotations: Vec<(&'a str, &'a str)>,
    pub(super) host_network: bool,
    pub(super) host_pid: bool,
    pub(super) host_ipc: bool,
    pub(super) windows: bool,
    pub(super) sc: Option<SecurityContext<'a>>,
    pub(super) volumes: Vec<Volume<'a>>,
    pub(super) init: Vec<Container<'a>>,
    pub(super) containers: Vec<Container<'a>>,
    pub(super) ephemeral: Vec<Container<'a>>,
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

pub(super) const ALLOWED_VOLUME_SOURCES: &[&str] = &[
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
pub(super) fn extract(resource: &Value) -> R<(&str, Pod<'_>)> {
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
