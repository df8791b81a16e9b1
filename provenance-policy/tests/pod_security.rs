//! `validate.podSecurity`: every Pod Security Standards control at baseline and restricted,
//! excludes, controllers, versions, errors, PolicyException `podSecurity` entries, and the
//! kyverno-cli corpus cases that use `podSecurity`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use provenance_policy::admission::request::ResourceInput;
use provenance_policy::kyverno::exceptions::{PolicyException, check_pod_security, skip_message};
use provenance_policy::kyverno::matching::MatchBlock;
use provenance_policy::kyverno::pod_security::{PodSecurity, PssOutcome, Violation};
use provenance_policy::lang::jmespath::Env;
use serde_json::{Value, json};

fn rule(level: &str, version: &str) -> PodSecurity {
    PodSecurity::from_value(&json!({"level": level, "version": version})).unwrap()
}

fn rule_with(v: Value) -> PodSecurity {
    PodSecurity::from_value(&v).unwrap()
}

/// A container that passes the restricted level.
fn good_container(name: &str, image: &str) -> Value {
    json!({
        "name": name,
        "image": image,
        "securityContext": {
            "allowPrivilegeEscalation": false,
            "capabilities": {"drop": ["ALL"]}
        }
    })
}

/// A Pod that passes the restricted level: three containers, pod-level runAsNonRoot and
/// seccomp.
fn good_pod() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "good", "namespace": "default"},
        "spec": {
            "securityContext": {
                "runAsNonRoot": true,
                "seccompProfile": {"type": "RuntimeDefault"}
            },
            "initContainers": [good_container("init", "busybox:1.36")],
            "containers": [
                good_container("app", "nginx:1.25"),
                good_container("sidecar", "envoy:1.30")
            ],
            "volumes": [{"name": "cache", "emptyDir": {}}]
        }
    })
}

fn set(v: &mut Value, pointer: &str, value: Value) {
    // Creates missing objects along the way.
    let mut cur = v;
    let parts: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
    for (i, p) in parts.iter().enumerate() {
        let last = i == parts.len() - 1;
        if let Ok(idx) = p.parse::<usize>() {
            cur = &mut cur[idx];
        } else {
            if last {
                cur[*p] = value;
                return;
            }
            if cur.get(*p).is_none() {
                cur[*p] = json!({});
            }
            cur = &mut cur[*p];
        }
        if last {
            *cur = value;
            return;
        }
    }
}

fn fail(ps: &PodSecurity, resource: &Value) -> (String, Vec<Violation>) {
    match ps.check(resource) {
        PssOutcome::Fail {
            message,
            violations,
        } => (message, violations),
        other => panic!("expected a failure, got {other:?}"),
    }
}

fn ids(v: &[Violation]) -> Vec<&'static str> {
    v.iter().map(|x| x.check_id).collect()
}

fn fields(v: &[Violation]) -> Vec<String> {
    v.iter()
        .flat_map(|x| x.fields.iter().map(|f| f.text.clone()))
        .collect()
}

#[test]
fn good_pod_passes_every_level() {
    for level in ["privileged", "baseline", "restricted"] {
        for version in ["latest", "", "v1.18", "v1.24", "v1.29", "v1.34"] {
            assert_eq!(
                rule(level, version).check(&good_pod()),
                PssOutcome::Pass,
                "{level}:{version}"
            );
        }
    }
}

/// One control: a mutation of the good pod, the check IDs it fails at baseline and at
/// restricted, and the field errors (restricted).
struct Case {
    name: &'static str,
    mutate: fn(&mut Value),
    baseline: &'static [&'static str],
    restricted: &'static [&'static str],
    fields: &'static [&'static str],
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "HostProcess (pod)",
            mutate: |p| {
                set(
                    p,
                    "/spec/securityContext/windowsOptions",
                    json!({"hostProcess": true}),
                )
            },
            baseline: &["windowsHostProcess"],
            restricted: &["windowsHostProcess"],
            fields: &[
                "spec.securityContext.windowsOptions.hostProcess is forbidden, forbidden values found: true",
            ],
        },
        Case {
            name: "HostProcess (container)",
            mutate: |p| {
                set(
                    p,
                    "/spec/containers/1/securityContext/windowsOptions",
                    json!({"hostProcess": true}),
                )
            },
            baseline: &["windowsHostProcess"],
            restricted: &["windowsHostProcess"],
            fields: &[
                "spec.containers[1].securityContext.windowsOptions.hostProcess is forbidden, forbidden values found: true",
            ],
        },
        Case {
            name: "host namespaces",
            mutate: |p| {
                set(p, "/spec/hostNetwork", json!(true));
                set(p, "/spec/hostIPC", json!(true));
                set(p, "/spec/hostPID", json!(false));
            },
            baseline: &["hostNamespaces"],
            restricted: &["hostNamespaces"],
            fields: &[
                "spec.hostNetwork is forbidden, forbidden values found: true",
                "spec.hostIPC is forbidden, forbidden values found: true",
            ],
        },
        Case {
            name: "privileged",
            mutate: |p| {
                set(
                    p,
                    "/spec/initContainers/0/securityContext/privileged",
                    json!(true),
                )
            },
            baseline: &["privileged"],
            restricted: &["privileged"],
            fields: &[
                "spec.initContainers[0].securityContext.privileged is forbidden, forbidden values found: true",
            ],
        },
        Case {
            name: "capabilities beyond the default set",
            mutate: |p| {
                set(
                    p,
                    "/spec/containers/0/securityContext/capabilities/add",
                    json!(["SYS_ADMIN", "CHOWN", "NET_RAW"]),
                )
            },
            baseline: &["capabilities_baseline"],
            restricted: &["capabilities_baseline", "capabilities_restricted"],
            fields: &[
                "spec.containers[0].securityContext.capabilities.add is forbidden, forbidden values found: [NET_RAW SYS_ADMIN]",
                "spec.containers[0].securityContext.capabilities.add is forbidden, forbidden values found: [CHOWN NET_RAW SYS_ADMIN]",
            ],
        },
        Case {
            name: "hostPath volume",
            mutate: |p| {
                set(
                    p,
                    "/spec/volumes/0",
                    json!({"name": "host", "hostPath": {"path": "/etc"}}),
                )
            },
            baseline: &["hostPathVolumes"],
            restricted: &["hostPathVolumes", "restrictedVolumes"],
            fields: &[
                "spec.volumes[0].hostPath is forbidden, forbidden values found: /etc",
                "spec.volumes[0].hostPath: Forbidden",
            ],
        },
        Case {
            name: "host ports",
            mutate: |p| {
                set(
                    p,
                    "/spec/containers/1/ports",
                    json!([{"containerPort": 80}, {"containerPort": 443, "hostPort": 8443}]),
                )
            },
            baseline: &["hostPorts"],
            restricted: &["hostPorts"],
            fields: &[
                "spec.containers[1].ports[1].hostPort is forbidden, forbidden values found: 8443",
            ],
        },
        Case {
            name: "AppArmor (field)",
            mutate: |p| {
                set(
                    p,
                    "/spec/securityContext/appArmorProfile",
                    json!({"type": "Unconfined"}),
                )
            },
            baseline: &["appArmorProfile"],
            restricted: &["appArmorProfile"],
            fields: &[
                "spec.securityContext.appArmorProfile.type is forbidden, forbidden values found: Unconfined",
            ],
        },
        Case {
            name: "AppArmor (annotation)",
            mutate: |p| {
                set(
                    p,
                    "/metadata/annotations",
                    json!({"container.apparmor.security.beta.kubernetes.io/app": "unconfined"}),
                )
            },
            baseline: &["appArmorProfile"],
            restricted: &["appArmorProfile"],
            fields: &[
                "spec.template.metadata.annotations[container.apparmor.security.beta.kubernetes.io/app] is forbidden, forbidden values found: unconfined",
            ],
        },
        Case {
            name: "SELinux",
            mutate: |p| {
                set(
                    p,
                    "/spec/containers/0/securityContext/seLinuxOptions",
                    json!({"type": "spc_t", "user": "root"}),
                )
            },
            baseline: &["seLinuxOptions"],
            restricted: &["seLinuxOptions"],
            fields: &[
                "spec.containers[0].securityContext.seLinuxOptions.type is forbidden, forbidden values found: spc_t",
                "spec.containers[0].securityContext.seLinuxOptions.user is forbidden, forbidden values found: root",
            ],
        },
        Case {
            name: "/proc mount type",
            mutate: |p| {
                set(
                    p,
                    "/spec/containers/0/securityContext/procMount",
                    json!("Unmasked"),
                )
            },
            baseline: &["procMount"],
            restricted: &["procMount"],
            fields: &[
                "spec.containers[0].securityContext.procMount is forbidden, forbidden values found: Unmasked",
            ],
        },
        Case {
            name: "seccomp Unconfined (pod)",
            mutate: |p| {
                set(
                    p,
                    "/spec/securityContext/seccompProfile",
                    json!({"type": "Unconfined"}),
                )
            },
            baseline: &["seccompProfile_baseline"],
            restricted: &["seccompProfile_baseline", "seccompProfile_restricted"],
            fields: &[
                "spec.securityContext.seccompProfile.type is forbidden, forbidden values found: Unconfined",
                "spec.securityContext.seccompProfile.type is forbidden, forbidden values found: Unconfined",
            ],
        },
        Case {
            name: "seccomp profile without a type",
            mutate: |p| {
                set(
                    p,
                    "/spec/containers/0/securityContext/seccompProfile",
                    json!({}),
                )
            },
            baseline: &["seccompProfile_baseline"],
            restricted: &["seccompProfile_baseline", "seccompProfile_restricted"],
            fields: &[
                "spec.containers[0].securityContext.seccompProfile.type: Forbidden",
                "spec.containers[0].securityContext.seccompProfile.type: Forbidden",
            ],
        },
        Case {
            name: "sysctls",
            mutate: |p| {
                set(
                    p,
                    "/spec/securityContext/sysctls",
                    json!([{"name": "net.ipv4.tcp_syncookies", "value": "1"}, {"name": "kernel.msgmax", "value": "1"}]),
                )
            },
            baseline: &["sysctls"],
            restricted: &["sysctls"],
            fields: &[
                "spec.securityContext.sysctls[1].name is forbidden, forbidden values found: kernel.msgmax",
            ],
        },
        Case {
            name: "probe host",
            mutate: |p| {
                set(
                    p,
                    "/spec/containers/0/livenessProbe",
                    json!({"httpGet": {"host": "10.0.0.1", "port": 80}}),
                )
            },
            baseline: &["hostProbesAndHostLifecycle"],
            restricted: &["hostProbesAndHostLifecycle"],
            fields: &[],
        },
        // Restricted only.
        Case {
            name: "volume types",
            mutate: |p| {
                set(
                    p,
                    "/spec/volumes/0",
                    json!({"name": "nfs", "nfs": {"server": "x", "path": "/"}}),
                )
            },
            baseline: &[],
            restricted: &["restrictedVolumes"],
            fields: &["spec.volumes[0].nfs: Forbidden"],
        },
        Case {
            name: "privilege escalation",
            mutate: |p| {
                set(
                    p,
                    "/spec/containers/1/securityContext/allowPrivilegeEscalation",
                    json!(true),
                );
                set(
                    p,
                    "/spec/initContainers/0/securityContext/allowPrivilegeEscalation",
                    Value::Null,
                );
            },
            baseline: &[],
            restricted: &["allowPrivilegeEscalation"],
            fields: &[
                "spec.initContainers[0].securityContext.allowPrivilegeEscalation is forbidden, forbidden values found: nil",
                "spec.containers[1].securityContext.allowPrivilegeEscalation is forbidden, forbidden values found: true",
            ],
        },
        Case {
            name: "running as non-root",
            mutate: |p| {
                set(p, "/spec/securityContext/runAsNonRoot", Value::Null);
                set(
                    p,
                    "/spec/containers/0/securityContext/runAsNonRoot",
                    json!(false),
                );
                set(
                    p,
                    "/spec/containers/1/securityContext/runAsNonRoot",
                    json!(true),
                );
            },
            baseline: &[],
            restricted: &["runAsNonRoot"],
            fields: &[
                "spec.containers[0].securityContext.runAsNonRoot is forbidden, forbidden values found: false",
                "spec.initContainers[0].securityContext.runAsNonRoot: Required value",
            ],
        },
        Case {
            name: "runAsUser 0",
            mutate: |p| {
                set(p, "/spec/securityContext/runAsUser", json!(0));
                set(
                    p,
                    "/spec/containers/1/securityContext/runAsUser",
                    json!(1000),
                );
            },
            baseline: &[],
            restricted: &["runAsUser"],
            fields: &["spec.securityContext.runAsUser is forbidden, forbidden values found: 0"],
        },
        Case {
            name: "seccomp unset",
            mutate: |p| set(p, "/spec/securityContext/seccompProfile", Value::Null),
            baseline: &[],
            restricted: &["seccompProfile_restricted"],
            fields: &[
                "spec.initContainers[0].securityContext.seccompProfile.type: Required value",
                "spec.containers[0].securityContext.seccompProfile.type: Required value",
                "spec.containers[1].securityContext.seccompProfile.type: Required value",
            ],
        },
        Case {
            name: "capabilities not dropped",
            mutate: |p| {
                set(
                    p,
                    "/spec/containers/0/securityContext/capabilities",
                    json!({"drop": ["NET_RAW"], "add": ["NET_BIND_SERVICE"]}),
                )
            },
            baseline: &[],
            restricted: &["capabilities_restricted"],
            fields: &[
                "spec.containers[0].securityContext.capabilities.drop is forbidden, forbidden values found: [NET_RAW]",
            ],
        },
    ]
}

#[test]
fn every_control_at_both_levels() {
    let baseline = rule("baseline", "latest");
    let restricted = rule("restricted", "latest");
    let mut checked = 0;
    for case in cases() {
        let mut pod = good_pod();
        (case.mutate)(&mut pod);
        if case.baseline.is_empty() {
            assert_eq!(baseline.check(&pod), PssOutcome::Pass, "{}", case.name);
        } else {
            let (_, v) = fail(&baseline, &pod);
            assert_eq!(ids(&v), case.baseline, "baseline: {}", case.name);
        }
        let (msg, v) = fail(&restricted, &pod);
        assert_eq!(ids(&v), case.restricted, "restricted: {}", case.name);
        assert_eq!(fields(&v), case.fields, "restricted fields: {}", case.name);
        assert!(
            msg.starts_with("It violates PodSecurity \"restricted:latest\": (Forbidden reason: ")
        );
        checked += 1;
    }
    assert_eq!(checked, cases().len());
}

#[test]
fn kyverno_messages() {
    // From Kyverno's conformance suite (reports/background/test-report-background-mode).
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "badpod01", "namespace": "default"},
        "spec": {"containers": [{
            "name": "container01", "image": "dummyimagename",
            "securityContext": {
                "allowPrivilegeEscalation": false,
                "runAsNonRoot": true,
                "seccompProfile": {"type": "RuntimeDefault"}
            }
        }]}
    });
    let outcome = rule("restricted", "latest").check(&pod);
    assert_eq!(
        PodSecurity::rule_message("restricted", &outcome),
        "Validation rule 'restricted' failed. It violates PodSecurity \"restricted:latest\": \
         (Forbidden reason: unrestricted capabilities, field error list: \
         [spec.containers[0].securityContext.capabilities.drop: Required value])"
    );

    // A bare container at restricted.
    let bare = json!({"kind": "Pod", "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "nginx", "image": "nginx"}]}});
    let (msg, _) = fail(&rule("restricted", "latest"), &bare);
    assert_eq!(
        msg,
        "It violates PodSecurity \"restricted:latest\": \
         (Forbidden reason: allowPrivilegeEscalation != false, field error list: [spec.containers[0].securityContext.allowPrivilegeEscalation: Required value])\
         (Forbidden reason: unrestricted capabilities, field error list: [spec.containers[0].securityContext.capabilities.drop: Required value])\
         (Forbidden reason: runAsNonRoot != true, field error list: [spec.containers[0].securityContext.runAsNonRoot: Required value])\
         (Forbidden reason: seccompProfile, field error list: [spec.containers[0].securityContext.seccompProfile.type: Required value])"
    );
    assert_eq!(
        PodSecurity::rule_message("r", &PssOutcome::Pass),
        "Validation rule 'r' passed."
    );
}

#[test]
fn details_follow_pod_security_admission() {
    let mut pod = good_pod();
    set(
        &mut pod,
        "/spec/containers/0/securityContext/capabilities/add",
        json!(["SYS_ADMIN"]),
    );
    set(
        &mut pod,
        "/spec/containers/1/securityContext/capabilities/add",
        json!(["NET_RAW"]),
    );
    let (_, v) = fail(&rule("baseline", "latest"), &pod);
    assert_eq!(v[0].reason, "non-default capabilities");
    assert_eq!(
        v[0].detail,
        "containers \"app\", \"sidecar\" must not include \"NET_RAW\", \"SYS_ADMIN\" in securityContext.capabilities.add"
    );
    assert_eq!(v[0].control, "Capabilities");
    let mut pod = good_pod();
    set(&mut pod, "/spec/hostPID", json!(true));
    let (_, v) = fail(&rule("baseline", "latest"), &pod);
    assert_eq!(v[0].detail, "hostPID=true");
    assert_eq!(v[0].control, "Host Namespaces");
}

#[test]
fn versions_select_the_check_revision() {
    // container_engine_t is allowed from v1.31.
    let mut pod = good_pod();
    set(
        &mut pod,
        "/spec/securityContext/seLinuxOptions",
        json!({"type": "container_engine_t"}),
    );
    assert_eq!(rule("baseline", "latest").check(&pod), PssOutcome::Pass);
    assert_eq!(rule("baseline", "v1.31").check(&pod), PssOutcome::Pass);
    let (_, v) = fail(&rule("baseline", "v1.30"), &pod);
    assert_eq!(ids(&v), ["seLinuxOptions"]);

    // Sysctls allowed by version.
    let mut pod = good_pod();
    set(
        &mut pod,
        "/spec/securityContext/sysctls",
        json!([{"name": "net.ipv4.tcp_rmem", "value": "1"}]),
    );
    assert_eq!(rule("baseline", "v1.32").check(&pod), PssOutcome::Pass);
    assert!(matches!(
        rule("baseline", "v1.31").check(&pod),
        PssOutcome::Fail { .. }
    ));

    // Before v1.19 the seccomp check reads the alpha annotations, not the field.
    let mut pod = good_pod();
    set(
        &mut pod,
        "/spec/securityContext/seccompProfile",
        json!({"type": "Unconfined"}),
    );
    assert_eq!(rule("baseline", "v1.18").check(&pod), PssOutcome::Pass);
    set(
        &mut pod,
        "/metadata/annotations",
        json!({"seccomp.security.alpha.kubernetes.io/pod": "unconfined"}),
    );
    let (_, v) = fail(&rule("baseline", "v1.18"), &pod);
    assert_eq!(
        v[0].detail,
        "forbidden annotation seccomp.security.alpha.kubernetes.io/pod=\"unconfined\""
    );

    // Windows pods skip the restricted Linux-only checks from v1.25.
    let mut pod = good_pod();
    for i in 0..2 {
        set(
            &mut pod,
            &format!("/spec/containers/{i}/securityContext"),
            Value::Null,
        );
    }
    set(
        &mut pod,
        "/spec/initContainers/0/securityContext",
        Value::Null,
    );
    set(
        &mut pod,
        "/spec/securityContext/seccompProfile",
        Value::Null,
    );
    set(&mut pod, "/spec/os", json!({"name": "windows"}));
    assert_eq!(rule("restricted", "latest").check(&pod), PssOutcome::Pass);
    let (_, v) = fail(&rule("restricted", "v1.24"), &pod);
    assert_eq!(
        ids(&v),
        [
            "allowPrivilegeEscalation",
            "capabilities_restricted",
            "seccompProfile_restricted"
        ]
    );
}

#[test]
fn controllers_and_cronjobs_use_the_pod_template() {
    let pod = good_pod();
    let mut deploy = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "d"},
        "spec": {"template": {"metadata": pod["metadata"].clone(), "spec": pod["spec"].clone()}}
    });
    let restricted = rule("restricted", "latest");
    assert_eq!(restricted.check(&deploy), PssOutcome::Pass);
    set(
        &mut deploy,
        "/spec/template/spec/containers/0/securityContext/privileged",
        json!(true),
    );
    let (msg, v) = fail(&restricted, &deploy);
    assert_eq!(
        v[0].fields[0].field,
        "spec.template.spec.containers[0].securityContext.privileged"
    );
    assert!(
        msg.contains("[spec.template.spec.containers[0].securityContext.privileged is forbidden")
    );

    let mut cron = json!({
        "apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": "c"},
        "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {"spec": pod["spec"].clone()}}}}
    });
    assert_eq!(restricted.check(&cron), PssOutcome::Pass);
    set(
        &mut cron,
        "/spec/jobTemplate/spec/template/spec/hostNetwork",
        json!(true),
    );
    let (_, v) = fail(&restricted, &cron);
    assert_eq!(
        v[0].fields[0].field,
        "spec.jobTemplate.spec.template.spec.hostNetwork"
    );

    for kind in [
        "DaemonSet",
        "Job",
        "StatefulSet",
        "ReplicaSet",
        "ReplicationController",
    ] {
        let mut r = deploy.clone();
        r["kind"] = json!(kind);
        assert!(
            matches!(restricted.check(&r), PssOutcome::Fail { .. }),
            "{kind}"
        );
    }
    let svc = json!({"kind": "Service", "metadata": {"name": "s"}, "spec": {}});
    assert!(matches!(restricted.check(&svc), PssOutcome::Error { .. }));
}

#[test]
fn malformed_pods_are_errors_not_passes() {
    let restricted = rule("baseline", "latest");
    for (ptr, value) in [
        ("/spec/hostNetwork", json!("yes")),
        ("/spec/containers", json!({"name": "x"})),
        ("/spec/containers/0/securityContext/privileged", json!(1)),
        ("/spec/containers/0/ports", json!([{"hostPort": "80"}])),
        ("/spec/securityContext/runAsUser", json!(1.5)),
        ("/metadata/annotations", json!({"a": 1})),
    ] {
        let mut pod = good_pod();
        set(&mut pod, ptr, value);
        assert!(
            matches!(restricted.check(&pod), PssOutcome::Error { .. }),
            "{ptr}"
        );
    }
}

#[test]
fn policy_validation() {
    for bad in [
        json!({"level": "strict"}),
        json!({"version": "latest"}),
        json!({"level": "baseline", "version": "1.24"}),
        json!({"level": "baseline", "version": "v2.0"}),
        // Container-level control without images.
        json!({"level": "baseline", "exclude": [{"controlName": "Capabilities"}]}),
        // Pod-level control with images.
        json!({"level": "baseline", "exclude": [{"controlName": "Host Namespaces", "images": ["*"]}]}),
        // restrictedField without values and the reverse.
        json!({"level": "baseline", "exclude": [{"controlName": "SELinux", "restrictedField": "spec.securityContext.seLinuxOptions.type"}]}),
        json!({"level": "baseline", "exclude": [{"controlName": "SELinux", "values": ["x"]}]}),
        json!({"level": "baseline", "exclude": [{"controlName": "Nope"}]}),
    ] {
        let e = PodSecurity::from_value(&bad).unwrap_err();
        assert_eq!(e.code(), "policy.invalid", "{bad}");
    }
}

#[test]
fn excludes_pod_level() {
    let mut pod = good_pod();
    set(&mut pod, "/spec/hostNetwork", json!(true));
    set(
        &mut pod,
        "/spec/volumes/0",
        json!({"name": "host", "hostPath": {"path": "/var/lib1"}}),
    );
    // Whole control.
    let ps = rule_with(json!({"level": "baseline", "version": "latest",
        "exclude": [{"controlName": "Host Namespaces"}]}));
    let (_, v) = fail(&ps, &pod);
    assert_eq!(ids(&v), ["hostPathVolumes"]);
    // Both controls, the hostPath one through a value pattern.
    let ps = rule_with(json!({"level": "baseline",
    "exclude": [
        {"controlName": "Host Namespaces"},
        {"controlName": "HostPath Volumes", "restrictedField": "spec.volumes[*].hostPath", "values": ["/var/*"]}
    ]}));
    assert_eq!(ps.check(&pod), PssOutcome::Pass);
    // A value that does not match keeps the failure.
    let ps = rule_with(json!({"level": "baseline",
    "exclude": [
        {"controlName": "Host Namespaces"},
        {"controlName": "HostPath Volumes", "restrictedField": "spec.volumes[*].hostPath", "values": ["/etc"]}
    ]}));
    assert_eq!(ids(&fail(&ps, &pod).1), ["hostPathVolumes"]);
    // A field of another control does not exclude.
    let ps = rule_with(json!({"level": "baseline",
        "exclude": [{"controlName": "Host Namespaces", "restrictedField": "spec.hostPID", "values": ["true"]}]}));
    assert_eq!(
        ids(&fail(&ps, &pod).1),
        ["hostNamespaces", "hostPathVolumes"]
    );
    // At restricted, Volume Types must be excluded too.
    let ps = rule_with(json!({"level": "restricted",
        "exclude": [{"controlName": "Host Namespaces"}, {"controlName": "HostPath Volumes"}]}));
    assert_eq!(ids(&fail(&ps, &pod).1), ["restrictedVolumes"]);
    let ps = rule_with(json!({"level": "restricted",
        "exclude": [{"controlName": "Host Namespaces"}, {"controlName": "HostPath Volumes"}, {"controlName": "Volume Types"}]}));
    assert_eq!(ps.check(&pod), PssOutcome::Pass);
}

#[test]
fn excludes_container_level_by_image() {
    let mut pod = good_pod();
    set(
        &mut pod,
        "/spec/containers/0/securityContext/capabilities/add",
        json!(["SYS_ADMIN"]),
    );
    set(
        &mut pod,
        "/spec/containers/1/securityContext/capabilities/add",
        json!(["NET_RAW"]),
    );
    let base = |images: Value, values: Value| {
        rule_with(json!({"level": "baseline", "exclude": [{
            "controlName": "Capabilities", "images": images,
            "restrictedField": "spec.containers[*].securityContext.capabilities.add", "values": values
        }]}))
    };
    // Only nginx is excluded: envoy still fails.
    let (msg, v) = fail(&base(json!(["nginx:*"]), json!(["SYS_ADMIN"])), &pod);
    assert_eq!(
        fields(&v),
        [
            "spec.containers[1].securityContext.capabilities.add is forbidden, forbidden values found: [NET_RAW]"
        ]
    );
    assert!(msg.contains("non-default capabilities"));
    // Both images, values cover both.
    assert_eq!(
        base(json!(["nginx:*", "envoy*"]), json!(["SYS_ADMIN", "NET_*"])).check(&pod),
        PssOutcome::Pass
    );
    // Values must cover every bad value of a field.
    let (_, v) = fail(&base(json!(["*"]), json!(["SYS_ADMIN"])), &pod);
    assert_eq!(v[0].fields.len(), 1);
    // Without restrictedField and values, the whole control for the image.
    let ps = rule_with(json!({"level": "restricted", "exclude": [
        {"controlName": "Capabilities", "images": ["*"]}]}));
    assert_eq!(ps.check(&pod), PssOutcome::Pass);
    // Restricted: excluding only the baseline field leaves capabilities_restricted.
    let ps = rule_with(json!({"level": "restricted", "exclude": [{
        "controlName": "Capabilities", "images": ["*"],
        "restrictedField": "spec.containers[*].securityContext.capabilities.add", "values": ["SYS_ADMIN", "NET_RAW"]}]}));
    assert_eq!(ps.check(&pod), PssOutcome::Pass);
    // Privileged init container excluded by its image.
    let mut pod = good_pod();
    set(
        &mut pod,
        "/spec/initContainers/0/securityContext/privileged",
        json!(true),
    );
    let ps = rule_with(json!({"level": "baseline", "exclude": [{
        "controlName": "Privileged Containers", "images": ["busybox*"],
        "restrictedField": "spec.initContainers[*].securityContext.privileged", "values": ["true"]}]}));
    assert_eq!(ps.check(&pod), PssOutcome::Pass);
    let ps = rule_with(json!({"level": "baseline", "exclude": [{
        "controlName": "Privileged Containers", "images": ["nginx*"]}]}));
    assert!(matches!(ps.check(&pod), PssOutcome::Fail { .. }));
}

#[test]
fn excludes_for_seccomp_and_run_as_non_root() {
    // Pod-level seccomp exclusion at restricted, as in Kyverno's samples.
    let mut pod = good_pod();
    set(
        &mut pod,
        "/spec/securityContext/seccompProfile",
        json!({"type": "Unconfined"}),
    );
    let ps = rule_with(json!({"level": "restricted", "exclude": [{
        "controlName": "Seccomp", "restrictedField": "spec.securityContext.seccompProfile.type",
        "values": ["Unconfined"]}]}));
    assert_eq!(ps.check(&pod), PssOutcome::Pass);
    // Container-level runAsNonRoot: the excluded image only.
    let mut pod = good_pod();
    set(&mut pod, "/spec/securityContext/runAsNonRoot", Value::Null);
    let ps = rule_with(json!({"level": "restricted", "exclude": [{
        "controlName": "Running as Non-root", "images": ["nginx*", "envoy*", "busybox*"]}]}));
    assert_eq!(ps.check(&pod), PssOutcome::Pass);
    let ps = rule_with(json!({"level": "restricted", "exclude": [{
        "controlName": "Running as Non-root", "images": ["nginx*"]}]}));
    let (_, v) = fail(&ps, &pod);
    assert_eq!(
        fields(&v),
        [
            "spec.initContainers[0].securityContext.runAsNonRoot: Required value",
            "spec.containers[1].securityContext.runAsNonRoot: Required value"
        ]
    );
}

fn yaml_docs(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    provenance_policy::yaml::load_documents(&text, &path.display().to_string()).unwrap()
}

fn exception(v: Value) -> PolicyException {
    PolicyException::from_value(&v).unwrap()
}

#[test]
fn policy_exceptions_with_pod_security() {
    // Kyverno conformance: reports/background/multiple-exceptions-with-pod-security.
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "test-pod"},
        "spec": {
            "containers": [{"name": "primary", "image": "public.ecr.aws/docker/library/alpine:latest",
                "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]},
                    "runAsNonRoot": true, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}}}],
            "initContainers": [
                {"name": "init1", "image": "public.ecr.aws/docker/library/alpine:latest",
                 "securityContext": {"allowPrivilegeEscalation": false,
                    "capabilities": {"add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"]}, "privileged": false,
                    "runAsNonRoot": true, "runAsUser": 10001, "seccompProfile": {"type": "RuntimeDefault"}}},
                {"name": "init2", "image": "public.ecr.aws/docker/library/busybox:latest",
                 "securityContext": {"allowPrivilegeEscalation": false,
                    "capabilities": {"add": ["SYS_TIME"], "drop": ["ALL"]}, "privileged": false,
                    "runAsNonRoot": true, "runAsUser": 10002, "seccompProfile": {"type": "RuntimeDefault"}}}
            ]
        }
    });
    let polex = |name: &str, image: &str, values: Value| {
        exception(json!({
            "apiVersion": "kyverno.io/v2", "kind": "PolicyException",
            "metadata": {"name": name, "namespace": "ns"},
            "spec": {
                "exceptions": [{"policyName": "psp-baseline", "ruleNames": ["baseline"]}],
                "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                "podSecurity": [{"controlName": "Capabilities", "images": [image],
                    "restrictedField": "spec.initContainers[*].securityContext.capabilities.add",
                    "values": values}]
            }
        }))
    };
    let e1 = polex(
        "init1-exception-baseline",
        "public.ecr.aws/docker/library/alpine:latest",
        json!(["NET_ADMIN", "NET_RAW"]),
    );
    let e2 = polex(
        "init2-exception-baseline",
        "public.ecr.aws/docker/library/busybox:latest",
        json!(["SYS_TIME"]),
    );
    let ps = rule("baseline", "v1.29");
    let input = ResourceInput::create(pod.clone());
    let ctx = json!({"request": input.request_json()});
    let env = Env::default();
    assert!(e1.applies("psp-baseline", "baseline", &input, &ctx, &env));
    assert!(!e1.applies("psp-baseline", "other", &input, &ctx, &env));
    assert!(!e1.applies("other", "baseline", &input, &ctx, &env));
    assert_eq!(
        check_pod_security(&ps, &pod, &[&e1, &e2]),
        PssOutcome::Excepted
    );
    assert_eq!(
        skip_message(&[&e1, &e2]),
        "rule is skipped due to policy exceptions ns/init1-exception-baseline, ns/init2-exception-baseline"
    );
    let outcome = check_pod_security(&ps, &pod, &[&e2]);
    assert_eq!(
        PodSecurity::rule_message("baseline", &outcome),
        "Validation rule 'baseline' failed. It violates PodSecurity \"baseline:v1.29\": \
         (Forbidden reason: non-default capabilities, field error list: \
         [spec.initContainers[0].securityContext.capabilities.add is forbidden, forbidden values found: [NET_ADMIN NET_RAW]])"
    );
    // An exception without podSecurity skips the rule outright.
    let plain = exception(json!({
        "apiVersion": "kyverno.io/v2beta1", "kind": "PolicyException",
        "metadata": {"name": "all"},
        "spec": {"exceptions": [{"policyName": "psp-baseline", "ruleNames": ["*"]}],
                 "match": {"all": [{"resources": {"kinds": ["Pod"], "names": ["test-*"]}}]}}
    }));
    assert!(plain.applies("psp-baseline", "baseline", &input, &ctx, &env));
    assert_eq!(
        check_pod_security(&ps, &pod, &[&plain, &e2]),
        PssOutcome::Excepted
    );
    assert_eq!(
        skip_message(&[&e2, &plain]),
        "rule is skipped due to policy exception all"
    );
    // A passing pod passes even with exceptions.
    assert_eq!(
        check_pod_security(&ps, &good_pod(), &[&e1]),
        PssOutcome::Pass
    );
}

fn shared_dir() -> Option<PathBuf> {
    let dir = std::env::var("PROVENANCE_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared")));
    if dir.join("corpora/kyverno-cli").is_dir() {
        Some(dir)
    } else if std::env::var_os("CI").is_some() {
        panic!("corpus missing at {}", dir.display());
    } else {
        println!("SKIPPED: no corpus at {}", dir.display());
        None
    }
}

fn find_tests(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = rd.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            find_tests(&p, out);
        } else if p.file_name().is_some_and(|n| n == "kyverno-test.yaml") {
            out.push(p);
        }
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The kyverno-cli corpus cases whose rules use `podSecurity`, evaluated through this API
/// (match block, PolicyExceptions, the check).
#[test]
fn corpus_pod_security_cases() {
    let Some(shared) = shared_dir() else {
        return;
    };
    let mut tests = Vec::new();
    find_tests(&shared.join("corpora/kyverno-cli"), &mut tests);
    let (mut checked, mut passed, mut not_evaluated) = (0, 0, 0);
    let mut failures = Vec::new();
    for test in &tests {
        let dir = test.parent().unwrap();
        let spec = yaml_docs(test).remove(0);
        let policies: Vec<Value> = strings(&spec["policies"])
            .iter()
            .flat_map(|f| yaml_docs(&dir.join(f)))
            .collect();
        let uses_pss = policies.iter().any(|p| {
            p.pointer("/spec/rules")
                .and_then(Value::as_array)
                .is_some_and(|r| {
                    r.iter()
                        .any(|r| r.pointer("/validate/podSecurity").is_some())
                })
        });
        if !uses_pss {
            continue;
        }
        let resources: Vec<Value> = strings(&spec["resources"])
            .iter()
            .flat_map(|f| yaml_docs(&dir.join(f)))
            .collect();
        let exceptions: Vec<PolicyException> = strings(&spec["exceptions"])
            .iter()
            .flat_map(|f| yaml_docs(&dir.join(f)))
            .map(|d| PolicyException::from_value(&d).unwrap())
            .collect();
        for result in spec["results"].as_array().unwrap() {
            let policy_name = result["policy"].as_str().unwrap();
            let rule_name = result["rule"].as_str().unwrap();
            let expected = result["result"].as_str().unwrap();
            let kind = result["kind"].as_str().unwrap_or("");
            let Some(rule_v) = policies
                .iter()
                .filter(|p| {
                    p.pointer("/metadata/name").and_then(Value::as_str) == Some(policy_name)
                })
                .flat_map(|p| {
                    p.pointer("/spec/rules")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                })
                .find(|r| r["name"] == rule_name)
            else {
                not_evaluated += 1;
                continue;
            };
            let Some(ps_v) = rule_v.pointer("/validate/podSecurity") else {
                not_evaluated += 1;
                continue;
            };
            let ps = PodSecurity::from_value(ps_v).unwrap();
            let matcher = MatchBlock::from_value(&rule_v["match"], "match").unwrap();
            for name in strings(&result["resources"]) {
                let resource = resources
                    .iter()
                    .find(|r| r["metadata"]["name"] == name.as_str() && r["kind"] == kind)
                    .unwrap_or_else(|| panic!("{}: resource {name}", test.display()));
                let input = ResourceInput::create(resource.clone());
                let ctx = json!({"request": input.request_json()});
                let actual = if !matcher.matches(&input) {
                    "skip"
                } else {
                    let matched: Vec<&PolicyException> = exceptions
                        .iter()
                        .filter(|e| {
                            e.applies(policy_name, rule_name, &input, &ctx, &Env::default())
                        })
                        .collect();
                    match check_pod_security(&ps, resource, &matched) {
                        PssOutcome::Pass => "pass",
                        PssOutcome::Fail { .. } => "fail",
                        PssOutcome::Excepted => "skip",
                        _ => "error",
                    }
                };
                checked += 1;
                if actual == expected {
                    passed += 1;
                } else {
                    failures.push(format!(
                        "{}: {policy_name}/{rule_name}/{name}: expected {expected}, got {actual}",
                        test.display()
                    ));
                }
            }
        }
    }
    println!(
        "kyverno-cli podSecurity cases: {checked} checked, {passed} passed, {} failed, {not_evaluated} not evaluated",
        failures.len()
    );
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(
        checked >= 3,
        "expected the podSecurity corpus cases, found {checked}"
    );
}

#[test]
fn kyverno_quirks() {
    // Kyverno's check filter only drops restricted checks at `baseline`: `privileged` runs them.
    let bare = json!({"kind": "Pod", "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "nginx", "image": "nginx"}]}});
    let (msg, v) = fail(&rule("privileged", "latest"), &bare);
    assert_eq!(v.len(), 4);
    assert!(msg.starts_with("It violates PodSecurity \"privileged:latest\": "));
    // The version is echoed as written, empty included.
    let (msg, _) = fail(&rule_with(json!({"level": "restricted"})), &bare);
    assert!(msg.starts_with("It violates PodSecurity \"restricted:\": "));
    // Ephemeral containers are checked, after init containers and containers.
    let mut pod = good_pod();
    set(
        &mut pod,
        "/spec/ephemeralContainers",
        json!([{"name": "debug", "image": "busybox", "securityContext": {"privileged": true}}]),
    );
    let (_, v) = fail(&rule("baseline", "latest"), &pod);
    assert_eq!(
        fields(&v),
        [
            "spec.ephemeralContainers[0].securityContext.privileged is forbidden, forbidden values found: true"
        ]
    );
    // A CronJob's metadata is the job template's (Kyverno's getSpec), not the pod template's.
    let annotated = json!({"container.apparmor.security.beta.kubernetes.io/app": "unconfined"});
    let mut cron = json!({"kind": "CronJob", "metadata": {"name": "c"},
        "spec": {"jobTemplate": {"spec": {"template": {
            "metadata": {"annotations": annotated.clone()},
            "spec": good_pod()["spec"].clone()}}}}});
    assert_eq!(rule("baseline", "latest").check(&cron), PssOutcome::Pass);
    set(
        &mut cron,
        "/spec/jobTemplate/metadata",
        json!({"annotations": annotated}),
    );
    let (_, v) = fail(&rule("baseline", "latest"), &cron);
    assert_eq!(ids(&v), ["appArmorProfile"]);
    // A pod-level exclusion without images runs against one empty `fake` container, so a
    // container-level field error is removed once, not for every container.
    let mut pod = good_pod();
    set(&mut pod, "/spec/securityContext/runAsNonRoot", Value::Null);
    let ps = rule_with(
        json!({"level": "restricted", "exclude": [{"controlName": "Running as Non-root"}]}),
    );
    let (_, v) = fail(&ps, &pod);
    assert_eq!(
        fields(&v),
        [
            "spec.initContainers[0].securityContext.runAsNonRoot: Required value",
            "spec.containers[1].securityContext.runAsNonRoot: Required value"
        ]
    );
}
