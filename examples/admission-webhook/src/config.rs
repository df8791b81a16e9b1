//! Configuration: command-line flags and an optional YAML/JSON file (`--config`). A flag given
//! on the command line wins over the file; the file wins over the defaults. The file's keys are
//! the flags' long names (`deadline-ms: 2000`, `policies: [/etc/policies]`, ...).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::Parser;
use serde::Deserialize;

/// Largest AdmissionReview accepted by default (the API server's request limit is 3 MiB).
pub const DEFAULT_MAX_BODY: usize = 3 << 20;

/// Command-line flags. Every setting is optional here so that a `--config` file can supply it.
#[derive(Parser, Debug, Default)]
#[command(
    name = "provenance-webhook",
    version,
    about = "Kubernetes admission webhook for provenance policies"
)]
pub struct Args {
    /// Configuration file (YAML or JSON; keys are the long flag names). Flags win over it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 0.0.0.0:8443].
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Policy files or folders (YAML/JSON; folders are searched recursively). Repeatable.
    #[arg(long = "policies", visible_alias = "policy")]
    pub policies: Vec<PathBuf>,
    /// TLS certificate chain (PEM). Reloaded when it changes (certificate rotation).
    #[arg(long)]
    pub cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// DANGEROUS: serve plain HTTP (local experiments only; Kubernetes requires HTTPS).
    #[arg(long)]
    pub dangerous_plain_http: bool,
    /// YAML map of namespace -> labels, for `namespaceSelector` (the webhook has no API access).
    #[arg(long, visible_alias = "namespace-labels-file")]
    pub namespace_labels: Option<PathBuf>,
    /// Cluster data for `configMap` and `apiCall` (`urlPath` GET) context entries: files or
    /// folders of resources (YAML/JSON, `List` kinds) or `ClusterResource` documents, as
    /// `provenance apply --cluster-resources` reads them. Reloaded when they change; a
    /// snapshot that cannot be loaded keeps the last good one in force and fails `/readyz`.
    /// Without it, such rules report `error`. Repeatable.
    #[arg(long = "cluster-resources", value_name = "DIR|FILE")]
    pub cluster_resources: Vec<PathBuf>,
    /// Per-request deadline in milliseconds; keep it below the webhook's `timeoutSeconds`
    /// [default: 8000].
    #[arg(long)]
    pub deadline_ms: Option<u64>,
    /// How often to check policy files (and the certificate) for changes, in seconds
    /// [default: 2].
    #[arg(long)]
    pub reload_seconds: Option<u64>,
    /// Largest request body accepted, in bytes; larger bodies get HTTP 413 [default: 3145728].
    #[arg(long)]
    pub max_body_bytes: Option<usize>,
    /// `verifyImages` evidence from an OCI image layout folder (air-gapped sites).
    #[arg(long, conflicts_with = "online")]
    pub registry_layout: Option<PathBuf>,
    /// `verifyImages` evidence from the images' registries.
    #[arg(long)]
    pub online: bool,
    /// Registries that may be reached over plain HTTP (e.g. a loopback mirror). Repeatable.
    #[arg(long)]
    pub allow_http: Vec<String>,
    /// Contact `HOST:PORT` instead of `REGISTRY` (an air-gapped copy of a registry), written
    /// `REGISTRY=HOST:PORT`. Repeatable.
    #[arg(long, value_parser = parse_endpoint)]
    pub registry_endpoint: Vec<(String, String)>,
    /// Trust the PEM CA certificates in FILE for REGISTRY's TLS (a private CA), written
    /// `REGISTRY=FILE`; for that registry only, besides the system's roots. Repeatable.
    #[arg(long, value_parser = parse_ca)]
    pub registry_ca: Vec<(String, PathBuf)>,
    /// Docker `config.json` with registry credentials [default: $DOCKER_CONFIG/config.json or
    /// ~/.docker/config.json when present].
    #[arg(long)]
    pub docker_config: Option<PathBuf>,
    /// Sigstore `trusted_root.json` for signature verification (default: the embedded
    /// public-good root). Reloaded when it changes; a file that cannot be loaded keeps the
    /// last good root in force and fails `/readyz`.
    #[arg(long, visible_alias = "trusted-root")]
    pub trust_root: Option<PathBuf>,
    /// Entries kept by the evidence cache and by the memo of verified signatures
    /// [default: 4096].
    #[arg(long)]
    pub cache_size: Option<usize>,
    /// How long gathered evidence (tag resolution, signature and attestation lists) is reused,
    /// in seconds; 0 disables the evidence cache [default: 60].
    #[arg(long)]
    pub evidence_ttl_seconds: Option<u64>,
}

fn parse_endpoint(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((r, e)) if !r.is_empty() && !e.is_empty() => Ok((r.to_owned(), e.to_owned())),
        _ => Err(format!("expected REGISTRY=HOST:PORT, got {s:?}")),
    }
}

fn parse_ca(s: &str) -> Result<(String, PathBuf), String> {
    match s.split_once('=') {
        Some((r, f)) if !r.is_empty() && !f.is_empty() => Ok((r.to_owned(), PathBuf::from(f))),
        _ => Err(format!("expected REGISTRY=FILE, got {s:?}")),
    }
}

/// The `--config` file: the same settings as the flags, by their long names.
#[derive(Deserialize, Debug, Default)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
struct File {
    listen: Option<SocketAddr>,
    policies: Vec<PathBuf>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    dangerous_plain_http: Option<bool>,
    namespace_labels: Option<PathBuf>,
    cluster_resources: Vec<PathBuf>,
    deadline_ms: Option<u64>,
    reload_seconds: Option<u64>,
    max_body_bytes: Option<usize>,
    registry_layout: Option<PathBuf>,
    online: Option<bool>,
    allow_http: Vec<String>,
    registry_endpoints: BTreeMap<String, String>,
    registry_cas: BTreeMap<String, PathBuf>,
    docker_config: Option<PathBuf>,
    trust_root: Option<PathBuf>,
    cache_size: Option<usize>,
    evidence_ttl_seconds: Option<u64>,
}

/// The settings in force, after flags, file and defaults.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Policy files or folders.
    pub policies: Vec<PathBuf>,
    /// TLS certificate chain.
    pub cert: Option<PathBuf>,
    /// TLS private key.
    pub key: Option<PathBuf>,
    /// Serve plain HTTP.
    pub dangerous_plain_http: bool,
    /// Namespace labels file.
    pub namespace_labels: Option<PathBuf>,
    /// Cluster resources files or folders (empty: no cluster data).
    pub cluster_resources: Vec<PathBuf>,
    /// Per-request deadline in milliseconds.
    pub deadline_ms: u64,
    /// Reload interval in seconds.
    pub reload_seconds: u64,
    /// Body limit in bytes.
    pub max_body_bytes: usize,
    /// OCI layout evidence source.
    pub registry_layout: Option<PathBuf>,
    /// Registry evidence source.
    pub online: bool,
    /// Plain-HTTP registries.
    pub allow_http: Vec<String>,
    /// Registry -> endpoint overrides.
    pub registry_endpoints: BTreeMap<String, String>,
    /// Registry -> PEM file of CA certificates trusted for its TLS.
    pub registry_cas: BTreeMap<String, PathBuf>,
    /// Docker config.json.
    pub docker_config: Option<PathBuf>,
    /// Trust root file.
    pub trust_root: Option<PathBuf>,
    /// Cache entries.
    pub cache_size: usize,
    /// Evidence reuse, in seconds (0: off).
    pub evidence_ttl_seconds: u64,
}

fn load_file(path: &Path) -> Result<File, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let name = path.display().to_string();
    let v = provenance_policy::yaml::load_document(&text, &name)
        .map_err(|e| format!("{name}: [{}] {e}", e.code()))?;
    serde_json::from_value(v).map_err(|e| format!("{name}: {e}"))
}

impl Settings {
    /// Resolves flags over the `--config` file over the defaults, and checks the result.
    pub fn resolve(args: Args) -> Result<Settings, String> {
        let file = match &args.config {
            Some(p) => load_file(p)?,
            None => File::default(),
        };
        let pick_vec = |flag: Vec<PathBuf>, file: Vec<PathBuf>| {
            if flag.is_empty() { file } else { flag }
        };
        let mut registry_endpoints = file.registry_endpoints;
        registry_endpoints.extend(args.registry_endpoint);
        let mut registry_cas = file.registry_cas;
        registry_cas.extend(args.registry_ca);
        let s = Settings {
            listen: args
                .listen
                .or(file.listen)
                .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 8443))),
            policies: pick_vec(args.policies, file.policies),
            cert: args.cert.or(file.cert),
            key: args.key.or(file.key),
            dangerous_plain_http: args.dangerous_plain_http
                || file.dangerous_plain_http.unwrap_or(false),
            namespace_labels: args.namespace_labels.or(file.namespace_labels),
            cluster_resources: pick_vec(args.cluster_resources, file.cluster_resources),
            deadline_ms: args.deadline_ms.or(file.deadline_ms).unwrap_or(8000),
            reload_seconds: args.reload_seconds.or(file.reload_seconds).unwrap_or(2),
            max_body_bytes: args
                .max_body_bytes
                .or(file.max_body_bytes)
                .unwrap_or(DEFAULT_MAX_BODY),
            registry_layout: args.registry_layout.or(file.registry_layout),
            online: args.online || file.online.unwrap_or(false),
            allow_http: if args.allow_http.is_empty() {
                file.allow_http
            } else {
                args.allow_http
            },
            registry_endpoints,
            registry_cas,
            docker_config: args.docker_config.or(file.docker_config),
            trust_root: args.trust_root.or(file.trust_root),
            cache_size: args.cache_size.or(file.cache_size).unwrap_or(4096),
            evidence_ttl_seconds: args
                .evidence_ttl_seconds
                .or(file.evidence_ttl_seconds)
                .unwrap_or(60),
        };
        if s.policies.is_empty() {
            return Err("no policies: give --policies (or `policies:` in --config)".into());
        }
        if !s.dangerous_plain_http && (s.cert.is_none() || s.key.is_none()) {
            return Err("--cert and --key are required (or `cert:`/`key:` in --config)".into());
        }
        if s.registry_layout.is_some() && s.online {
            return Err("--registry-layout and --online exclude each other".into());
        }
        if !s.registry_cas.is_empty() && !s.online {
            return Err("--registry-ca needs --online (it is about registries' TLS)".into());
        }
        if s.deadline_ms == 0 {
            return Err("--deadline-ms must be at least 1".into());
        }
        if s.max_body_bytes == 0 {
            return Err("--max-body-bytes must be at least 1".into());
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("webhook.yaml");
        std::fs::write(
            &path,
            "listen: 127.0.0.1:9443\npolicies: [/p]\ncert: /c\nkey: /k\ndeadline-ms: 1500\n\
             max-body-bytes: 1024\nregistry-endpoints: {ghcr.io: 127.0.0.1:5000}\n\
             online: true\nregistry-cas: {ghcr.io: /etc/ca.pem}\ncluster-resources: [/cr]\n",
        )
        .unwrap();
        let args = Args::try_parse_from([
            "provenance-webhook",
            "--config",
            path.to_str().unwrap(),
            "--deadline-ms",
            "700",
            "--registry-endpoint",
            "docker.io=127.0.0.1:5001",
            "--registry-ca",
            "registry.internal=/etc/internal-ca.pem",
        ])
        .unwrap();
        let s = Settings::resolve(args).unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:9443");
        assert_eq!(s.policies, vec![PathBuf::from("/p")]);
        assert_eq!(s.deadline_ms, 700);
        assert_eq!(s.cluster_resources, vec![PathBuf::from("/cr")]);
        assert_eq!(s.max_body_bytes, 1024);
        assert_eq!(s.reload_seconds, 2);
        assert_eq!(s.registry_endpoints.len(), 2);
        assert_eq!(s.registry_endpoints["docker.io"], "127.0.0.1:5001");
        assert_eq!(s.registry_cas.len(), 2);
        assert_eq!(
            s.registry_cas["registry.internal"],
            PathBuf::from("/etc/internal-ca.pem")
        );
    }

    #[test]
    fn unknown_keys_and_missing_policies_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("webhook.yaml");
        std::fs::write(&path, "policies: [/p]\ndeadline: 5\n").unwrap();
        let args = Args::try_parse_from(["provenance-webhook", "--config", path.to_str().unwrap()])
            .unwrap();
        let err = Settings::resolve(args).unwrap_err();
        assert!(err.contains("deadline"), "{err}");
        let args = Args::try_parse_from(["provenance-webhook", "--dangerous-plain-http"]).unwrap();
        assert!(Settings::resolve(args).unwrap_err().contains("no policies"));
        assert!(Args::try_parse_from(["provenance-webhook", "--registry-endpoint", "x"]).is_err());
    }
}
