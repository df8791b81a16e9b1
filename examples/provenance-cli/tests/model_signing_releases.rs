//! Every released PyPI `model-signing` signs one model folder
//! (`scripts/fixtures/model-signing/releases.sh`, one venv per release from
//! `scripts/ci-setup-model-signing-releases.sh`); `provenance verify model` must give, on each
//! signature and on tampered copies, the verdict of the newest release's own verifier
//! (`model_signing verify`). The one deliberate difference (shard signatures, which
//! model_signing's verifier cannot read back) is named in `known_difference` and in
//! `docs/interop-model-signing.md`.
//!
//! Without the venvs: a loud SKIPPED outside CI, a failure with `CI=true`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

use serde_json::{Value, json};

/// The identity @sigstore/mock's default token carries (mock-services.js).
const ISSUER: &str = "https://token.actions.githubusercontent.com";
const SUBJECT: &str = "https://github.com/acme/model/.github/workflows/release.yml@refs/heads/main";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn cache() -> PathBuf {
    match std::env::var_os("PROVENANCE_TOOLS_CACHE") {
        Some(c) => PathBuf::from(c),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
            .join(".cache/provenance-tools"),
    }
    .join("model-signing")
}

/// The releases the setup script installs, oldest first.
fn releases() -> Vec<String> {
    let out = Command::new("bash")
        .arg(repo().join("scripts/ci-setup-model-signing-releases.sh"))
        .arg("--list")
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Whether the tools are there; outside CI, says loudly that the test is skipped.
fn tools_or_skip(releases: &[String]) -> bool {
    let missing: Vec<&String> = releases
        .iter()
        .filter(|v| !cache().join(v).join("bin/python").exists())
        .collect();
    let openssl = Command::new("openssl").arg("version").output().is_ok();
    if missing.is_empty() && openssl {
        return true;
    }
    let msg = format!(
        "model-signing releases not installed ({missing:?} missing under {}; openssl: {openssl}): run scripts/ci-setup-model-signing-releases.sh",
        cache().display()
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{msg}");
    }
    eprintln!("\n==================================================================");
    eprintln!("SKIPPED: {msg}");
    eprintln!("==================================================================\n");
    false
}

/// scripts/fixtures/sigstore/mock-services.js on loopback, for keyless signatures.
struct Mock {
    child: Child,
    _stdin: ChildStdin,
}

impl Drop for Mock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the mock Sigstore services and writes `out/sigstore/trusted_root.json` and
/// `out/sigstore/client_trust_config.json` (model_signing 1.1's `--trust_config`: the trusted root
/// and a signing configuration naming the mock). Returns the mock and its token, or `None`
/// (loudly outside CI; a failure in CI) when node or the mock's packages are missing.
fn start_mock(out: &Path) -> Option<(Mock, String)> {
    let node_dir = repo().join("scripts/fixtures/sigstore");
    let ready = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
        && node_dir.join("node_modules/@sigstore/mock").is_dir();
    if !ready {
        let msg = "node or scripts/fixtures/sigstore/node_modules missing (scripts/ci-setup-sigstore-node.sh): keyless signatures not generated";
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{msg}");
        }
        eprintln!("SKIPPED (keyless only): {msg}");
        return None;
    }
    let mut child = Command::new("node")
        .arg(node_dir.join("mock-services.js"))
        .current_dir(&node_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let v: Value = serde_json::from_str(&line).unwrap();
    let url = v["url"].as_str().unwrap();
    let service = json!({
        "url": url, "majorApiVersion": 1,
        "validFor": {"start": "2000-01-01T00:00:00Z"}, "operator": "provenance-mock"
    });
    let client = json!({
        "mediaType": "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json",
        "trustedRoot": v["trusted_root"],
        "signingConfig": {
            "mediaType": "application/vnd.dev.sigstore.signingconfig.v0.2+json",
            "caUrls": [service], "oidcUrls": [service], "rekorTlogUrls": [service],
            "rekorTlogConfig": {"selector": "ANY"}, "tsaUrls": [], "tsaConfig": {"selector": "ANY"}
        }
    });
    let keys = out.join("sigstore");
    std::fs::create_dir_all(&keys).unwrap();
    std::fs::write(
        keys.join("trusted_root.json"),
        serde_json::to_vec(&v["trusted_root"]).unwrap(),
    )
    .unwrap();
    std::fs::write(
        keys.join("client_trust_config.json"),
        serde_json::to_vec(&client).unwrap(),
    )
    .unwrap();
    let token = v["token"].as_str().unwrap().to_owned();
    Some((
        Mock {
            child,
            _stdin: stdin,
        },
        token,
    ))
}

/// The trust flags of a method: (provenance flag, model_signing subcommand and flag, the
/// trusted file, a wrong one).
fn trust_of(method: &str) -> (&'static str, [&'static str; 2], &'static str, &'static str) {
    match method {
        "key" | "key-shards" | "key-blake2" | "key-blake3" => (
            "--public-key",
            ["key", "--public_key"],
            "ec-p256.pub",
            "other.pub",
        ),
        "keyless" => (
            "--identity",
            ["sigstore", "--identity"],
            SUBJECT,
            "https://github.com/evil/model/.github/workflows/release.yml@refs/heads/main",
        ),
        "cert-self" => (
            "--certificate-chain",
            ["certificate", "--certificate_chain"],
            "self.pem",
            "other-root.pem",
        ),
        _ => (
            "--certificate-chain",
            ["certificate", "--certificate_chain"],
            "root.pem",
            "other-root.pem",
        ),
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Verdict {
    Accept,
    Reject,
}

impl Verdict {
    fn of(ok: bool) -> Self {
        if ok { Verdict::Accept } else { Verdict::Reject }
    }
    fn word(self) -> &'static str {
        match self {
            Verdict::Accept => "accept",
            Verdict::Reject => "reject",
        }
    }
}

struct Run<'a> {
    out: &'a Path,
    reference: PathBuf,
}

impl Run<'_> {
    fn provenance(
        &self,
        model: &Path,
        sig: &Path,
        method: &str,
        key: &str,
        strict: bool,
    ) -> (Verdict, String) {
        let (flag, _, _, _) = trust_of(method);
        let mut c = Command::new(env!("CARGO_BIN_EXE_provenance"));
        c.args(["verify", "model"])
            .arg(model)
            .arg("--signature")
            .arg(sig);
        if method == "keyless" {
            // `key` is the expected identity.
            c.args([
                "--identity",
                key,
                "--identity-provider",
                ISSUER,
                "--trust-config",
            ])
            .arg(self.out.join("sigstore/trusted_root.json"));
        } else {
            c.arg(flag).arg(self.out.join("keys").join(key));
        }
        if strict {
            c.args([
                "--reject-ca-signing-certificate",
                "--reject-legacy-signatures",
            ]);
        }
        let o = c.output().unwrap();
        (
            Verdict::of(o.status.success()),
            String::from_utf8_lossy(&o.stderr).trim().to_owned(),
        )
    }

    /// model_signing's verdict: its CLI (`model_signing verify`), except for signatures the
    /// CLI cannot read back by construction (it always re-hashes whole files with SHA-256):
    /// shards and other hashes go through its Python API, which takes the serialization from
    /// the signature.
    fn model_signing(
        &self,
        model: &Path,
        sig: &Path,
        method: &str,
        key: &str,
    ) -> (Verdict, String) {
        if matches!(method, "key-shards" | "key-blake2" | "key-blake3") {
            return self.model_signing_api(model, sig, key);
        }
        self.model_signing_cli(model, sig, method, key)
    }

    fn model_signing_api(&self, model: &Path, sig: &Path, key: &str) -> (Verdict, String) {
        const VERIFY: &str = "import pathlib, sys\nimport model_signing\nmodel, sig, key = sys.argv[1:]\nmodel_signing.verifying.Config().use_elliptic_key_verifier(public_key=pathlib.Path(key)).verify(pathlib.Path(model), pathlib.Path(sig))\n";
        let o = Command::new(self.reference.with_file_name("python"))
            .args(["-c", VERIFY])
            .arg(model)
            .arg(sig)
            .arg(self.out.join("keys").join(key))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&o.stderr).into_owned();
        (
            Verdict::of(o.status.success()),
            text.lines().last().unwrap_or_default().to_owned(),
        )
    }

    fn model_signing_cli(
        &self,
        model: &Path,
        sig: &Path,
        method: &str,
        key: &str,
    ) -> (Verdict, String) {
        let (_, [sub, flag], _, _) = trust_of(method);
        let mut c = Command::new(&self.reference);
        c.args(["verify", sub])
            .arg(model)
            .arg("--signature")
            .arg(sig);
        if method == "keyless" {
            c.args([
                "--identity",
                key,
                "--identity_provider",
                ISSUER,
                "--trust_config",
            ])
            .arg(self.out.join("sigstore/client_trust_config.json"));
        } else {
            c.arg(flag).arg(self.out.join("keys").join(key));
        }
        let o = c.output().unwrap();
        let mut text = String::from_utf8_lossy(&o.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&o.stderr));
        (
            Verdict::of(o.status.success()),
            text.lines().last().unwrap_or_default().to_owned(),
        )
    }
}

fn release_at_least(v: &str, major: u32) -> bool {
    v.split('.')
        .next()
        .and_then(|m| m.parse::<u32>().ok())
        .is_some_and(|m| m >= major)
}

/// Releases that signed over the non-standard DSSE encoding (0.1.x and 0.2.0).
fn legacy_encoding(v: &str) -> bool {
    let mut parts = v.split('.').map(|p| p.parse::<u32>().unwrap_or(u32::MAX));
    matches!((parts.next(), parts.next()), (Some(0), Some(minor)) if minor <= 2)
}

/// Where provenance deliberately differs from model_signing on a genuine signature: shard
/// signatures of the v1.0 format (1.0.0 onwards; model_signing's API fails on the `shard_size`
/// it wrote as a float) and BLAKE2b signatures (model_signing writes `blake2b` and reads only
/// `blake2`), which model_signing cannot read back.
fn known_difference(
    release: &str,
    method: &str,
    prov: Verdict,
    ms: Verdict,
) -> Option<&'static str> {
    if prov != Verdict::Accept || ms != Verdict::Reject {
        return None;
    }
    match method {
        "key-shards" if release_at_least(release, 1) => {
            Some("model_signing cannot verify its own shard signatures")
        }
        "key-blake2" => Some("model_signing cannot verify its own BLAKE2b signatures"),
        _ => None,
    }
}

/// A copy of the model with one change.
fn tampered(out: &Path, name: &str, change: impl Fn(&Path)) -> PathBuf {
    let dst = out.join("tampered").join(name);
    let _ = std::fs::remove_dir_all(&dst);
    copy_dir(&out.join("model"), &dst);
    change(&dst);
    dst
}

fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        let to = dst.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to);
        } else {
            std::fs::copy(e.path(), &to).unwrap();
        }
    }
}

#[test]
fn every_model_signing_release_verifies_as_the_current_model_signing_does() {
    let releases = releases();
    if !tools_or_skip(&releases) {
        return;
    }
    let newest = releases.last().unwrap().clone();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path();
    let mock = start_mock(out);
    let mut generator = Command::new("bash");
    generator
        .arg(repo().join("scripts/fixtures/model-signing/releases.sh"))
        .arg(out);
    if let Some((_, token)) = &mock {
        generator
            .env(
                "KEYLESS_TRUST_CONFIG",
                out.join("sigstore/client_trust_config.json"),
            )
            .env("KEYLESS_TOKEN", token);
    }
    let gen_out = generator.output().unwrap();
    eprintln!("{}", String::from_utf8_lossy(&gen_out.stdout));
    assert!(
        gen_out.status.success(),
        "generator failed: {}",
        String::from_utf8_lossy(&gen_out.stderr)
    );
    let run = Run {
        out,
        reference: cache().join(&newest).join("bin/model_signing"),
    };
    let changed = tampered(out, "changed-byte", |m| {
        let p = m.join("weights/model.bin");
        let mut b = std::fs::read(&p).unwrap();
        b[300_000] ^= 1;
        std::fs::write(&p, b).unwrap();
    });
    let extra = tampered(out, "extra-file", |m| {
        std::fs::write(m.join("extra.bin"), b"x").unwrap();
    });
    let model = out.join("model");
    // Ignore rules: a git file added after signing (both verifiers ignore git paths by
    // default), and the signature stored inside the model folder (both leave it out).
    let git_added = tampered(out, "git-file-added", |m| {
        std::fs::write(m.join(".gitignore"), b"*.tmp\n").unwrap();
    });

    let mut failures = Vec::new();
    let mut matrix = Vec::new();
    let mut signatures = 0;
    for release in &releases {
        let dir = out.join(release);
        let mut entries: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        entries.sort();
        for name in &entries {
            if let Some(method) = name.strip_prefix("FAILED-") {
                let why = std::fs::read_to_string(dir.join(name)).unwrap_or_default();
                let last = why.lines().last().unwrap_or_default().to_owned();
                matrix.push(format!(
                    "| {release} | {method} | (cannot sign: {last}) | | | |"
                ));
                continue;
            }
            let Some(method) = name.strip_suffix(".sig") else {
                continue;
            };
            signatures += 1;
            let sig = dir.join(name);
            let (_, _, good, wrong) = trust_of(method);
            let (prov, prov_err) = run.provenance(&model, &sig, method, good, false);
            let (ms, ms_err) = run.model_signing(&model, &sig, method, good);
            let (strict, strict_err) = run.provenance(&model, &sig, method, good, true);
            let diff = known_difference(release, method, prov, ms);
            if prov != ms && diff.is_none() {
                failures.push(format!(
                    "{release} {method}: provenance {} ({prov_err}), model_signing {} ({ms_err})",
                    prov.word(),
                    ms.word()
                ));
            }
            // The strict options refuse CA signing certificates and the 0.1.x/0.2.0
            // encoding, and change nothing else.
            let strict_refuses =
                legacy_encoding(release) || method == "cert-ca-leaf" || method == "cert-self";
            let want_strict = if strict_refuses {
                Verdict::Reject
            } else {
                prov
            };
            if strict != want_strict {
                failures.push(format!(
                    "{release} {method}: strict provenance {} ({strict_err}), expected {}",
                    strict.word(),
                    want_strict.word()
                ));
            }
            let mut negatives = String::new();
            if prov == Verdict::Accept && ms == Verdict::Accept {
                let cases: [(&str, &Path, &str); 3] = [
                    ("changed byte", &changed, good),
                    ("extra file", &extra, good),
                    ("wrong key or root", &model, wrong),
                ];
                for (case, m, trust) in cases {
                    let (p, pe) = run.provenance(m, &sig, method, trust, false);
                    let (r, _) = run.model_signing(m, &sig, method, trust);
                    if p != Verdict::Reject || r != Verdict::Reject {
                        failures.push(format!(
                            "{release} {method} {case}: provenance {} ({pe}), model_signing {}",
                            p.word(),
                            r.word()
                        ));
                    }
                }
                negatives = "both reject".into();
                if method == "key" || method == "cert" {
                    let inside = tampered(out, &format!("sig-inside-{release}-{method}"), |_| {});
                    let inside_sig = inside.join("model.sig");
                    std::fs::copy(&sig, &inside_sig).unwrap();
                    for (case, m, s) in [
                        ("git file added", &git_added, &sig),
                        ("signature inside the folder", &inside, &inside_sig),
                    ] {
                        let (p, pe) = run.provenance(m, s, method, good, false);
                        let (r, re) = run.model_signing(m, s, method, good);
                        if p != r {
                            failures.push(format!(
                                "{release} {method} {case}: provenance {} ({pe}), model_signing {} ({re})",
                                p.word(),
                                r.word()
                            ));
                        }
                        negatives.push_str(&format!("; {case}: both {}", p.word()));
                    }
                }
            } else if prov == Verdict::Accept {
                // A known difference: provenance alone accepts, so it alone must refuse the
                // tampered copies.
                for (case, m, trust) in [
                    ("changed byte", &changed, good),
                    ("extra file", &extra, good),
                    ("wrong key or root", &model, wrong),
                ] {
                    let (p, pe) = run.provenance(m, &sig, method, trust, false);
                    if p != Verdict::Reject {
                        failures.push(format!(
                            "{release} {method} {case}: provenance accepts ({pe})"
                        ));
                    }
                }
                negatives = "provenance rejects".into();
            }
            matrix.push(format!(
                "| {release} | {method} | {} | {} | {} | {}{} |",
                prov.word(),
                ms.word(),
                strict.word(),
                negatives,
                diff.map(|d| format!("; known difference: {d}"))
                    .unwrap_or_default()
            ));
            if prov == Verdict::Reject {
                matrix.push(format!("|   | provenance: {prov_err} | | | | |"));
            }
        }
    }
    println!(
        "| release | method | provenance | model_signing {newest} | provenance strict | tampered copies |"
    );
    println!("|---|---|---|---|---|---|");
    for line in &matrix {
        println!("{line}");
    }
    assert!(signatures >= releases.len(), "too few signatures generated");
    assert!(
        failures.is_empty(),
        "verdicts differ:\n{}",
        failures.join("\n")
    );
}
