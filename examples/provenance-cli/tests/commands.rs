//! Exit codes and `-o json` of `reference`, `test`, `apply`, `verify bundle` and `verify
//! model`, with the committed fixtures (Sigstore bundles from `provenance-core/tests/fixtures`,
//! model-signing signatures from `provenance-oci/tests/fixtures`): 0 verified / passed, 1
//! failed, 2 usage or input error.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use predicates::str::contains;
use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn provenance() -> Command {
    let mut c = Command::cargo_bin("provenance").unwrap();
    c.env("NO_COLOR", "1");
    c
}

fn json_of(out: &[u8]) -> Value {
    serde_json::from_slice(out)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(out)))
}

// ----------------------------------------------------------------------------- reference

#[test]
fn reference_prints_parts_and_rejects_bad_input_with_2() {
    let out = provenance()
        .args(["reference", "nginx:1.27"])
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let v = json_of(&out);
    assert_eq!(v["reference"], "docker.io/library/nginx:1.27");
    provenance()
        .args(["reference", "-o", "text", "nginx"])
        .assert()
        .code(0)
        .stdout("nginx -> docker.io/library/nginx\n");
    provenance()
        .args(["reference", "library/UPPER"])
        .assert()
        .code(2)
        .stderr(contains("library/UPPER"));
}

// ---------------------------------------------------------------------------------- test

const POLICY: &str = r#"apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: require-app-label}
spec:
  validationFailureAction: Enforce
  rules:
  - name: check-app
    match: {any: [{resources: {kinds: [Pod]}}]}
    validate:
      message: "label app is required"
      pattern: {metadata: {labels: {app: "?*"}}}
"#;

const RESOURCES: &str = r#"apiVersion: v1
kind: Pod
metadata: {name: good, labels: {app: web}}
spec: {containers: [{name: c, image: nginx}]}
---
apiVersion: v1
kind: Pod
metadata: {name: bad}
spec: {containers: [{name: c, image: nginx}]}
"#;

fn suite(bad_expected: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("policy.yaml"), POLICY).unwrap();
    std::fs::write(dir.path().join("resources.yaml"), RESOURCES).unwrap();
    std::fs::write(
        dir.path().join("kyverno-test.yaml"),
        format!(
            "apiVersion: cli.kyverno.io/v1alpha1\nkind: Test\nmetadata: {{name: labels}}\npolicies: [policy.yaml]\nresources: [resources.yaml]\nresults:\n- {{policy: require-app-label, rule: check-app, resources: [good], kind: Pod, result: pass}}\n- {{policy: require-app-label, rule: check-app, resources: [bad], kind: Pod, result: {bad_expected}}}\n"
        ),
    )
    .unwrap();
    dir
}

#[test]
fn test_passes_fails_and_prints_json_lines() {
    let ok = suite("fail");
    provenance()
        .arg("test")
        .arg(ok.path())
        .assert()
        .code(0)
        .stdout(contains("2 passed, 0 failed, 0 skipped"));
    let out = provenance()
        .arg("test")
        .arg(ok.path())
        .args(["-o", "json"])
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let rows: Vec<Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| json_of(l.as_bytes()))
        .collect();
    assert_eq!(rows.len(), 2);
    // A wrong expectation is a failed test: exit 1.
    let wrong = suite("pass");
    provenance()
        .arg("test")
        .arg(wrong.path())
        .assert()
        .code(1)
        .stdout(contains("1 passed, 1 failed"));
    // Nothing to run, or a bad --now: usage errors.
    let empty = tempfile::tempdir().unwrap();
    provenance()
        .arg("test")
        .arg(empty.path())
        .assert()
        .code(2)
        .stderr(contains("no kyverno-test.yaml found"));
    provenance()
        .arg("test")
        .arg(ok.path())
        .args(["--now", "soon"])
        .assert()
        .code(2);
    // kyverno test's flags: --file-name / -f, --fail-only, and the no-op ones.
    let renamed = tempfile::tempdir().unwrap();
    for f in ["policy.yaml", "resources.yaml"] {
        std::fs::copy(wrong.path().join(f), renamed.path().join(f)).unwrap();
    }
    std::fs::copy(
        wrong.path().join("kyverno-test.yaml"),
        renamed.path().join("my-test.yaml"),
    )
    .unwrap();
    provenance()
        .arg("test")
        .arg(renamed.path())
        .assert()
        .code(2)
        .stderr(contains("--file-name"));
    let out = provenance()
        .arg("test")
        .arg(renamed.path())
        .args(["-f", "my-test.yaml", "--fail-only", "--remove-color"])
        .args(["--detailed-results", "--require-tests"])
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let out = String::from_utf8(out).unwrap();
    assert!(out.contains("FAIL ") && !out.contains("PASS "), "{out}");
    assert!(out.contains("1 passed, 1 failed"), "{out}");
    // `--format` still works (older scripts).
    provenance()
        .arg("test")
        .arg(ok.path())
        .args(["--format", "json"])
        .assert()
        .code(0);
}

// --------------------------------------------------------------------------------- apply

#[test]
fn apply_exit_codes_and_json() {
    let s = suite("fail");
    let run = |resources: &str| {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("r.yaml"), resources).unwrap();
        let out = provenance()
            .arg("apply")
            .arg("--policy")
            .arg(s.path().join("policy.yaml"))
            .arg("--resource")
            .arg(dir.path().join("r.yaml"))
            .args(["-o", "json"])
            .output()
            .unwrap();
        (out.status.code(), json_of(&out.stdout))
    };
    let (code, reports) = run(RESOURCES);
    assert_eq!(code, Some(1), "the Pod without a label is blocked");
    let results = reports[0]["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    let (code, _) = run(RESOURCES.split("---").next().unwrap());
    assert_eq!(code, Some(0));
    // Missing files: usage error, and JSON says so on stdout.
    let out = provenance()
        .args([
            "apply",
            "--policy",
            "/nonexistent",
            "--resource",
            "/nonexistent",
            "-o",
            "json",
        ])
        .assert()
        .code(2)
        .stderr(contains("/nonexistent"))
        .get_output()
        .stdout
        .clone();
    assert_eq!(json_of(&out)["error"]["exitCode"], 2);
}

#[test]
fn apply_takes_policies_as_arguments_like_kyverno_apply() {
    let s = suite("fail");
    let policy = s.path().join("policy.yaml");
    let resources = s.path().join("resources.yaml");
    let (p, r) = (policy.to_str().unwrap(), resources.to_str().unwrap());
    // One evaluation time for every run: the reports carry it, and runs compared with each
    // other must not straddle a second.
    let now = ["--now", "2027-01-15T08:00:00Z"];
    let run = |args: &[&str]| {
        let out = provenance()
            .arg("apply")
            .args(args)
            .args(["-o", "json"])
            .args(now)
            .output()
            .unwrap();
        (out.status.code(), json_of(&out.stdout))
    };
    // `kyverno apply POLICY... --resource R` / `-r R`, and the `--policy` form: one report.
    let flags = run(&["--policy", p, "--resource", r]);
    assert_eq!(flags.0, Some(1), "{}", flags.1);
    for args in [
        &[p, "--resource", r][..],
        &[p, "-r", r],
        &["-r", r, p],
        &["--policies", p, "--resources", r],
    ] {
        assert_eq!(run(args), flags, "{args:?}");
    }
    // Resources comma-separated, as kyverno's --resource takes them.
    let split = tempfile::tempdir().unwrap();
    let mut parts = RESOURCES.split("---");
    let (good, bad) = (
        split.path().join("good.yaml"),
        split.path().join("bad.yaml"),
    );
    std::fs::write(&good, parts.next().unwrap()).unwrap();
    std::fs::write(&bad, parts.next().unwrap()).unwrap();
    let both = format!("{},{}", good.to_str().unwrap(), bad.to_str().unwrap());
    assert_eq!(run(&[p, "-r", &both]), flags);
    // kyverno's --policy-report / -p: PolicyReports in YAML, as -o yaml.
    let yaml = |args: &[&str]| {
        let out = provenance()
            .arg("apply")
            .args(args)
            .args(now)
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8(out.stdout).unwrap())
    };
    let want = yaml(&[p, "-r", r, "-o", "yaml"]);
    assert!(want.1.contains("PolicyReport\n"), "{}", want.1);
    assert_eq!(yaml(&[p, "-r", r, "-p"]), want);
    assert_eq!(yaml(&[p, "-r", r, "--policy-report"]), want);
    // Positional and --policy together: both are read.
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other.yaml");
    std::fs::write(
        &other,
        POLICY.replace("require-app-label", "require-app-label-too"),
    )
    .unwrap();
    let both = run(&[p, "--policy", other.to_str().unwrap(), "-r", r]);
    let text = both.1.to_string();
    assert!(
        text.contains("\"require-app-label\"") && text.contains("require-app-label-too"),
        "{text}"
    );
    // No policy at all: a usage error naming what is missing.
    provenance()
        .args(["apply", "-r", r])
        .assert()
        .code(2)
        .stderr(contains("POLICY"));
}

#[test]
fn layout_and_trust_root_flags_are_spelled_the_same_on_every_command() {
    let help = |cmd: &[&str]| {
        let out = provenance()
            .args(cmd)
            .arg("--help")
            .assert()
            .code(0)
            .get_output()
            .stdout
            .clone();
        String::from_utf8(out).unwrap()
    };
    for cmd in [
        &["apply"][..],
        &["verify", "image"],
        &["verify", "model"],
        &["inspect"],
        &["export"],
    ] {
        let h = help(cmd);
        assert!(h.contains("--registry-layout"), "{cmd:?} --help:\n{h}");
    }
    for cmd in [
        &["apply"][..],
        &["verify", "image"],
        &["verify", "model"],
        &["verify", "bundle"],
        &["inspect"],
        &["sign", "image"],
        &["sign", "blob"],
        &["sign", "model"],
        &["attest"],
    ] {
        let h = help(cmd);
        for flag in ["--trust-root", "--trusted-root"] {
            assert!(h.contains(flag), "{cmd:?} --help lacks {flag}:\n{h}");
        }
    }
    // `verify model --layout` (the older spelling) still works.
    let f = repo().join("provenance-oci/tests/fixtures/model-signing");
    for spelling in ["--layout", "--registry-layout"] {
        provenance()
            .args([
                "verify",
                "model",
                "oci://example.com/models/tiny:1.0",
                spelling,
            ])
            .arg(f.join("oci/layout"))
            .arg("--key")
            .arg(f.join("keys/ec-p256.pub"))
            .assert()
            .code(0);
    }
}

// ------------------------------------------------------------------------- verify bundle

fn bundle_case(name: &str) -> PathBuf {
    repo()
        .join("provenance-core/tests/fixtures/sigstore")
        .join(name)
}

#[test]
fn verify_bundle_exit_codes_and_json() {
    let c = bundle_case("keyless-msg-v0.3");
    let keyless = |identity: &str, extra: &[&str]| {
        let mut cmd = provenance();
        cmd.args(["verify", "bundle", "--bundle"])
            .arg(c.join("bundle.sigstore.json"))
            .arg("--trusted-root")
            .arg(c.join("trusted_root.json"))
            .args(["--certificate-identity", identity])
            .args([
                "--certificate-oidc-issuer",
                "https://token.actions.githubusercontent.com",
            ])
            .args(["--now", "2026-11-27T07:35:30Z"])
            .args(extra)
            .arg(c.join("artifact"));
        cmd
    };
    let id = "https://github.com/acme/model/.github/workflows/release.yml@refs/heads/main";
    keyless(id, &[])
        .assert()
        .code(0)
        .stdout(contains("OK: verified"));
    let out = keyless(id, &["-o", "json"])
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let v = json_of(&out);
    assert_eq!(v["verified"], true);
    assert_eq!(v["signer"]["identity"], id);
    // Another identity: a failed verification, 1.
    keyless("https://github.com/evil/x", &["-o", "json"])
        .assert()
        .code(1)
        .stdout(contains("\"verified\":false"))
        .stderr(contains("verify.identity"));
    // An unreadable bundle: input error, 2.
    provenance()
        .args(["verify", "bundle", "--bundle", "/nonexistent.json"])
        .args(["--key", "/nonexistent.pub", "sha256:00"])
        .assert()
        .code(2)
        .stderr(contains("FAILED input"));
}

// -------------------------------------------------------------------------- verify model

#[test]
fn verify_model_exit_codes_and_json() {
    let f = repo().join("provenance-oci/tests/fixtures/model-signing");
    let verify = |model: &Path, key: &Path, extra: &[&str]| {
        let mut cmd = provenance();
        cmd.args(["verify", "model"])
            .arg(model)
            .arg("--signature")
            .arg(f.join("signatures/key.sig"))
            .arg("--public-key")
            .arg(key)
            .args(extra);
        cmd
    };
    let key = f.join("keys/ec-p256.pub");
    let out = verify(&f.join("model"), &key, &["-o", "json"])
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    assert_eq!(json_of(&out)["verified"], true);
    // Another key: 1.
    verify(&f.join("model"), &f.join("keys/other.pub"), &[])
        .assert()
        .code(1);
    // A changed file: 1, naming the file.
    let tmp = tempfile::tempdir().unwrap();
    let copy = tmp.path().join("model");
    copy_dir(&f.join("model"), &copy);
    std::fs::write(copy.join("config.json"), b"{}").unwrap();
    let out = verify(&copy, &key, &["-o", "json"])
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let v = json_of(&out);
    assert_eq!(v["verified"], false);
    assert_eq!(v["code"], "model.file_changed", "{v}");
    // No trust given, or a key file that does not exist: 2.
    provenance()
        .args(["verify", "model"])
        .arg(f.join("model"))
        .assert()
        .code(2);
    verify(&f.join("model"), Path::new("/nonexistent.pub"), &[])
        .assert()
        .code(2)
        .stderr(contains("model.config"));
}

#[test]
fn verify_model_finds_model_sig_in_the_model_folder_as_the_init_container_does() {
    let f = repo().join("provenance-oci/tests/fixtures/model-signing");
    let tmp = tempfile::tempdir().unwrap();
    let copy = tmp.path().join("model");
    copy_dir(&f.join("model"), &copy);
    std::fs::copy(f.join("signatures/key.sig"), copy.join("model.sig")).unwrap();
    // No model.sig in the current directory: the one in the folder (not hashed as a file).
    let cwd = tempfile::tempdir().unwrap();
    provenance()
        .current_dir(cwd.path())
        .args(["verify", "model"])
        .arg(&copy)
        .arg("--key")
        .arg(f.join("keys/ec-p256.pub"))
        .assert()
        .code(0);
    // A model.sig in the current directory wins, as model_signing's default.
    std::fs::write(cwd.path().join("model.sig"), b"not a bundle").unwrap();
    provenance()
        .current_dir(cwd.path())
        .args(["verify", "model"])
        .arg(&copy)
        .arg("--key")
        .arg(f.join("keys/ec-p256.pub"))
        .assert()
        .code(predicates::ord::ne(0));
}

#[test]
fn tlog_upload_takes_cosigns_true_false_spelling() {
    let dir = tempfile::tempdir().unwrap();
    provenance()
        .current_dir(dir.path())
        .args(["generate-key-pair", "--unencrypted"])
        .assert()
        .code(0);
    std::fs::write(dir.path().join("blob"), b"hello").unwrap();
    // `--tlog-upload=false` is the default: a key-signed bundle, no log contacted.
    provenance()
        .current_dir(dir.path())
        .args([
            "sign",
            "blob",
            "blob",
            "--key",
            "cosign.key",
            "--tlog-upload=false",
        ])
        .args(["--bundle", "blob.sigstore.json"])
        .assert()
        .code(0);
    provenance()
        .current_dir(dir.path())
        .args(["verify", "bundle", "--bundle", "blob.sigstore.json"])
        .args(["--key", "cosign.pub", "--allow-no-transparency", "blob"])
        .assert()
        .code(0);
    provenance()
        .current_dir(dir.path())
        .args([
            "sign",
            "blob",
            "blob",
            "--key",
            "cosign.key",
            "--tlog-upload=perhaps",
        ])
        .args(["--bundle", "blob.sigstore.json"])
        .assert()
        .code(2);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

#[test]
fn top_level_help_lists_the_exit_codes() {
    provenance()
        .arg("--help")
        .assert()
        .code(0)
        .stdout(contains("Exit codes:"))
        .stdout(contains("2  usage or input error"));
}

#[test]
fn trust_flags_are_spelled_the_same_on_every_verify_command() {
    // --trust-root, --certificate-identity and --certificate-oidc-issuer are accepted by
    // `verify bundle` and `verify model` as by `verify image`, `inspect` and `apply`.
    let c = bundle_case("keyless-msg-v0.3");
    provenance()
        .args(["verify", "bundle", "--bundle"])
        .arg(c.join("bundle.sigstore.json"))
        .arg("--trust-root")
        .arg(c.join("trusted_root.json"))
        .args([
            "--certificate-identity",
            "https://github.com/acme/model/.github/workflows/release.yml@refs/heads/main",
            "--certificate-oidc-issuer",
            "https://token.actions.githubusercontent.com",
            "--now",
            "2026-11-27T07:35:30Z",
        ])
        .arg(c.join("artifact"))
        .assert()
        .code(0);
    for cmd in [
        &["verify", "model"][..],
        &["verify", "bundle"],
        &["verify", "image"],
    ] {
        let out = provenance()
            .args(cmd)
            .arg("--help")
            .assert()
            .code(0)
            .get_output()
            .stdout
            .clone();
        let help = String::from_utf8(out).unwrap();
        for flag in [
            "--trust-root",
            "--certificate-identity",
            "--certificate-oidc-issuer",
            "--key",
        ] {
            assert!(help.contains(flag), "{cmd:?} --help lacks {flag}:\n{help}");
        }
    }
}

#[test]
fn apply_mutates_then_validates_and_writes_mutated_resources_like_kyverno_apply_o() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        r#"apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: add-team}
spec:
  rules:
    - name: add-team-label
      match: {any: [{resources: {kinds: [Pod]}}]}
      mutate:
        patchStrategicMerge:
          metadata:
            labels:
              +(team): ml-platform
---
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: require-team}
spec:
  validationFailureAction: Enforce
  rules:
    - name: team-label
      match: {any: [{resources: {kinds: [Pod]}}]}
      validate:
        message: "a team label is required"
        pattern: {metadata: {labels: {team: "?*"}}}
"#,
    )
    .unwrap();
    let resources = dir.path().join("pods.yaml");
    std::fs::write(
        &resources,
        r#"apiVersion: v1
kind: Pod
metadata: {name: unlabelled, namespace: ml}
spec: {containers: [{name: c, image: nginx}]}
---
apiVersion: v1
kind: Pod
metadata: {name: labelled, namespace: ml, labels: {team: search}}
spec: {containers: [{name: c, image: nginx}]}
"#,
    )
    .unwrap();
    let (p, r) = (policy.to_str().unwrap(), resources.to_str().unwrap());
    // The validation sees the mutated Pod: both are admitted.
    let out = provenance()
        .args(["apply", p, "-r", r, "-o", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", json_of(&out.stdout));
    // -o FOLDER: one file per mutated resource (the labelled Pod is not changed).
    let folder = dir.path().join("mutated");
    provenance()
        .args(["apply", p, "-r", r, "-o", folder.to_str().unwrap()])
        .assert()
        .code(0)
        .stdout(contains("add-team-label"));
    let files: Vec<_> = std::fs::read_dir(&folder).unwrap().collect();
    assert_eq!(files.len(), 1);
    let text = std::fs::read_to_string(folder.join("Pod_ml_unlabelled.yaml")).unwrap();
    let pod: Value = provenance_policy::yaml::load_documents(&text, "pod").unwrap()[0].clone();
    assert_eq!(pod["metadata"]["labels"]["team"], "ml-platform", "{text}");
    assert_eq!(pod["spec"]["containers"][0]["image"], "nginx");
    // -o FILE.json: every mutated resource in a JSON list.
    let file = dir.path().join("mutated.json");
    provenance()
        .args(["apply", p, "-r", r, "-o", file.to_str().unwrap()])
        .assert()
        .code(0);
    let list = json_of(&std::fs::read(&file).unwrap());
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["metadata"]["name"], "unlabelled");
    // Without the mutate policy the unlabelled Pod is blocked.
    let only_validate = dir.path().join("validate.yaml");
    std::fs::write(
        &only_validate,
        std::fs::read_to_string(&policy)
            .unwrap()
            .split("---\n")
            .nth(1)
            .unwrap(),
    )
    .unwrap();
    provenance()
        .args(["apply", only_validate.to_str().unwrap(), "-r", r])
        .assert()
        .code(1);
}

#[test]
fn apply_reads_config_maps_from_cluster_resources() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::write(
        p.join("policy.yaml"),
        r#"apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: blocked-teams}
spec:
  validationFailureAction: Enforce
  rules:
  - name: team
    match: {any: [{resources: {kinds: [Pod]}}]}
    context:
    - name: blocked
      configMap: {name: blocked-teams, namespace: default}
    validate:
      message: team is blocked
      deny:
        conditions:
          any: [{key: "{{ request.object.metadata.labels.team }}", operator: AnyIn, value: "{{ blocked.data.teams }}"}]
"#,
    )
    .unwrap();
    std::fs::write(
        p.join("pod.yaml"),
        "apiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: default, labels: {team: red}}\nspec: {containers: [{name: c, image: nginx}]}\n",
    )
    .unwrap();
    std::fs::write(
        p.join("cluster.yaml"),
        "apiVersion: cli.kyverno.io/v1alpha1\nkind: ClusterResource\nmetadata: {name: c}\nspec:\n  resources:\n  - apiVersion: v1\n    kind: ConfigMap\n    metadata: {name: blocked-teams, namespace: default}\n    data: {teams: '[\"red\"]'}\n",
    )
    .unwrap();
    let apply = |cluster: Option<&str>| {
        let mut c = provenance();
        c.arg("apply")
            .arg(p.join("policy.yaml"))
            .arg("-r")
            .arg(p.join("pod.yaml"))
            .args(["-o", "json"]);
        if let Some(f) = cluster {
            c.arg("--cluster-resources").arg(p.join(f));
        }
        let out = c.output().unwrap();
        let r = json_of(&out.stdout);
        (out.status.code(), r[0]["results"][0].clone())
    };
    let (code, result) = apply(Some("cluster.yaml"));
    assert_eq!(code, Some(1), "{result}");
    assert_eq!(result["result"], "fail", "{result}");
    // Without cluster data the rule cannot be decided: an error, blocking.
    let (code, result) = apply(None);
    assert_eq!(code, Some(1));
    assert_eq!(result["result"], "error", "{result}");
    // With cluster data that lacks the ConfigMap: an error too, never a pass.
    std::fs::write(
        p.join("empty.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: other, namespace: default}\n",
    )
    .unwrap();
    let (code, result) = apply(Some("empty.yaml"));
    assert_eq!(code, Some(1));
    assert_eq!(result["result"], "error", "{result}");
    assert!(
        result["message"]
            .as_str()
            .unwrap_or_default()
            .contains("not found"),
        "{result}"
    );
}

#[test]
fn apply_patches_target_resources_for_mutate_existing_policies() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::write(
        p.join("policies.yaml"),
        r#"apiVersion: policies.kyverno.io/v1beta1
kind: MutatingPolicy
metadata: {name: label-configmaps}
spec:
  evaluation: {mutateExisting: {enabled: true}}
  matchConstraints:
    resourceRules:
    - {apiGroups: [apps], apiVersions: [v1], operations: [CREATE], resources: [deployments]}
  targetMatchConstraints:
    objectSelector: {matchLabels: {sync: "yes"}}
    resourceRules:
    - {apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [configmaps]}
  mutations:
  - patchType: ApplyConfiguration
    applyConfiguration:
      expression: >
        Object{metadata: Object.metadata{labels: Object.metadata.labels{mutated: "true"}}}
---
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: annotate-secrets}
spec:
  rules:
  - name: annotate
    match: {any: [{resources: {kinds: [Deployment]}}]}
    mutate:
      targets:
      - {apiVersion: v1, kind: Secret, namespace: "{{ request.object.metadata.namespace }}"}
      patchStrategicMerge:
        metadata:
          annotations:
            synced-by: "{{ request.object.metadata.name }}"
"#,
    )
    .unwrap();
    std::fs::write(
        p.join("deploy.yaml"),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: team}\nspec: {replicas: 1}\n",
    )
    .unwrap();
    std::fs::write(
        p.join("targets.yaml"),
        r#"apiVersion: v1
kind: ConfigMap
metadata: {name: synced, namespace: team, labels: {sync: "yes"}}
data: {k: v}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: left-alone, namespace: team}
data: {k: v}
---
apiVersion: v1
kind: Secret
metadata: {name: creds, namespace: team}
"#,
    )
    .unwrap();
    let run = |extra: &[&str]| {
        let mut c = provenance();
        c.arg("apply")
            .arg(p.join("policies.yaml"))
            .arg("-r")
            .arg(p.join("deploy.yaml"));
        c.args(extra);
        c.output().unwrap()
    };
    let targets = p.join("targets.yaml");
    let out_file = p.join("out.json");
    let out = run(&[
        "--target-resources",
        targets.to_str().unwrap(),
        "-o",
        out_file.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let written = json_of(&std::fs::read(&out_file).unwrap());
    let names: Vec<(&str, &str)> = written
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["kind"].as_str().unwrap(),
                v["metadata"]["name"].as_str().unwrap(),
            )
        })
        .collect();
    // A MutatingPolicy with mutateExisting also mutates the trigger at admission, as in
    // Kyverno; then the patched targets, in policy order.
    assert_eq!(
        names,
        vec![
            ("Deployment", "web"),
            ("Secret", "creds"),
            ("ConfigMap", "synced")
        ],
        "{written}"
    );
    assert_eq!(written[1]["metadata"]["annotations"]["synced-by"], "web");
    assert_eq!(written[2]["metadata"]["labels"]["mutated"], "true");
    assert_eq!(written[2]["data"]["k"], "v");
    // The target files are not changed in place.
    assert!(
        !std::fs::read_to_string(&targets)
            .unwrap()
            .contains("mutated")
    );
    // The results name the targets.
    let report = json_of(
        &run(&[
            "--target-resources",
            targets.to_str().unwrap(),
            "-o",
            "json",
        ])
        .stdout,
    );
    let text = report.to_string();
    assert!(
        text.contains("synced") && !text.contains("left-alone"),
        "{text}"
    );
    // Without targets nothing is selected: the ClusterPolicy rule has no cluster data to
    // read (an error, never blocking), and only the trigger is written.
    let out_file = p.join("none.json");
    let out = run(&["-o", out_file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let written = json_of(&std::fs::read(&out_file).unwrap());
    assert_eq!(written.as_array().unwrap().len(), 1, "{written}");
    assert_eq!(written[0]["kind"], "Deployment");
}
