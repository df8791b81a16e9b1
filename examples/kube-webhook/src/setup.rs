//! The flags, and what the webhook loads once at start: the policies, the trust root, the
//! evidence source.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use provenance_core::TrustRoot;
use provenance_core::verify::{PUBLIC_GOOD_TRUSTED_ROOT, Verifier};
use provenance_oci::{DockerConfig, LayoutSource, RegistryClient, RegistryConfig};
use provenance_policy::PolicySet;
use provenance_policy::admission::loader::LoadedPolicy;

/// Kyverno policies as a kube-rs admission webhook: `POST /validate`, `POST /mutate`.
#[derive(clap::Parser, Debug)]
#[command(name = "provenance-kube-webhook", version)]
pub struct Args {
    /// Policy files or folders (YAML/JSON; folders are searched recursively). Repeatable.
    #[arg(long = "policies", visible_alias = "policy", required = true)]
    pub policies: Vec<PathBuf>,
    /// TLS certificate chain (PEM).
    #[arg(long)]
    pub cert: PathBuf,
    /// TLS private key (PEM).
    #[arg(long)]
    pub key: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0:8443")]
    pub listen: SocketAddr,
    /// Per-request deadline in milliseconds; keep it below the webhook's `timeoutSeconds`.
    #[arg(long, default_value_t = 8000, value_parser = clap::value_parser!(u64).range(1..))]
    pub deadline_ms: u64,
    /// `verifyImages` evidence from an OCI image layout folder (air-gapped sites) instead of
    /// the images' registries.
    #[arg(long)]
    pub registry_layout: Option<PathBuf>,
    /// Sigstore `trusted_root.json` for signature verification [default: the embedded
    /// public-good root].
    #[arg(long, visible_alias = "trusted-root")]
    pub trust_root: Option<PathBuf>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub registry: RegistryArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub facts: crate::facts::FactsArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub cluster: crate::cluster::ClusterArgs,
}

/// How registries are reached (when evidence does not come from `--registry-layout`).
#[derive(clap::Args, Debug)]
pub struct RegistryArgs {
    /// Registries that may be reached over plain HTTP (e.g. a loopback mirror). Repeatable.
    #[arg(long)]
    pub allow_http: Vec<String>,
    /// Contact `HOST:PORT` instead of `REGISTRY` (an air-gapped copy of a registry), written
    /// `REGISTRY=HOST:PORT`. Repeatable.
    #[arg(long, value_parser = parse_endpoint)]
    pub registry_endpoint: Vec<(String, String)>,
    /// Docker `config.json` with registry credentials [default: $DOCKER_CONFIG/config.json or
    /// ~/.docker/config.json when present].
    #[arg(long)]
    pub docker_config: Option<PathBuf>,
}

fn parse_endpoint(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((r, e)) if !r.is_empty() && !e.is_empty() => Ok((r.to_owned(), e.to_owned())),
        _ => Err(format!("expected REGISTRY=HOST:PORT, got {s:?}")),
    }
}

/// Every policy in the YAML/JSON files under `paths` (files, or folders searched
/// recursively; hidden entries skipped). An unreadable file, a file without a policy and a
/// policy this engine cannot enforce are errors: a policy must never be silently out of force.
pub fn policies(paths: &[PathBuf]) -> Result<PolicySet, String> {
    fn walk(p: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
        if p.is_dir() {
            let mut entries = std::fs::read_dir(p)
                .and_then(|d| {
                    d.map(|e| e.map(|e| e.path()))
                        .collect::<Result<Vec<_>, _>>()
                })
                .map_err(|e| format!("{}: {e}", p.display()))?;
            entries.retain(|e| {
                !e.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            });
            entries.sort();
            for e in entries.iter().filter(|e| e.is_dir() || is_policy_file(e)) {
                walk(e, out)?;
            }
        } else {
            out.push(p.to_path_buf());
        }
        Ok(())
    }
    let mut files = Vec::new();
    for p in paths {
        walk(p, &mut files)?;
    }
    let mut set = PolicySet::default();
    for f in &files {
        let name = f.display().to_string();
        let text = std::fs::read_to_string(f).map_err(|e| format!("{name}: {e}"))?;
        let before = set.policies().len();
        set.add_yaml(&text, &name)
            .map_err(|e| format!("[{}] {e}", e.code()))?;
        if set.policies().len() == before {
            return Err(format!("{name}: no policy in this file"));
        }
    }
    if let Some(LoadedPolicy::Unsupported { name, reason, .. }) = set
        .policies()
        .iter()
        .find(|p| matches!(p, LoadedPolicy::Unsupported { .. }))
    {
        return Err(format!("policy {name:?} cannot be enforced: {reason}"));
    }
    if let Some(why) = set.policies().iter().find_map(|p| p.never_at_admission()) {
        return Err(format!("[webhook.policy.not_for_admission] {why}"));
    }
    if set.policies().is_empty() {
        return Err(format!("no policy files under {paths:?}"));
    }
    Ok(set)
}

fn is_policy_file(p: &Path) -> bool {
    p.extension()
        .is_some_and(|e| e == "yaml" || e == "yml" || e == "json")
}

/// The Kubernetes client (from the kubeconfig, else the in-cluster service account), or none
/// with `--no-cluster`.
pub async fn client(no_cluster: bool) -> Result<Option<kube::Client>, String> {
    if no_cluster {
        return Ok(None);
    }
    let client = kube::Client::try_default().await.map_err(|e| {
        format!("no Kubernetes API access ({e}); give --no-cluster to run without it")
    })?;
    Ok(Some(client))
}

/// The signature verifier over `trust_root` (a Sigstore `trusted_root.json`), or over the
/// embedded public-good root.
pub fn verifier(trust_root: Option<&Path>) -> Result<Verifier, String> {
    let bytes = match trust_root {
        Some(p) => std::fs::read(p).map_err(|e| format!("--trust-root {}: {e}", p.display()))?,
        None => PUBLIC_GOOD_TRUSTED_ROOT.to_vec(),
    };
    let root = TrustRoot::from_trusted_root_json(&bytes)
        .map_err(|e| format!("trust root: {e} [{}]", e.code()))?;
    Verifier::new(&root).map_err(|e| format!("trust root: {e} [{}]", e.code()))
}

/// The current time, in seconds since the epoch.
pub fn now() -> provenance_core::UnixTime {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    provenance_core::UnixTime(since.map_or(0, |d| d.as_secs() as i64))
}

/// A failure to start, shown as its message.
pub struct Fail(String);

impl From<String> for Fail {
    fn from(message: String) -> Self {
        Fail(message)
    }
}

impl std::fmt::Debug for Fail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where `verifyImages` evidence comes from: an OCI image layout (`--registry-layout`) or the
/// images' registries.
pub type Source = provenance_oci::AnySource;

/// The source the flags name.
pub fn open_source(args: &Args) -> Result<Source, String> {
    match &args.registry_layout {
        Some(dir) => LayoutSource::open(dir)
            .map(Source::Layout)
            .map_err(|e| format!("--registry-layout {}: {e} [{}]", dir.display(), e.code())),
        None => Ok(Source::from(registry(&args.registry)?)),
    }
}

/// The registry client the flags describe.
fn registry(args: &RegistryArgs) -> Result<RegistryClient, String> {
    let docker_config = match &args.docker_config {
        Some(p) => Some(
            DockerConfig::from_file(p)
                .map_err(|e| format!("--docker-config {}: {e} [{}]", p.display(), e.code()))?,
        ),
        None => DockerConfig::from_environment()
            .map_err(|e| format!("Docker config: {e} [{}]", e.code()))?,
    };
    let mut config = RegistryConfig {
        docker_config,
        ..RegistryConfig::default()
    };
    for r in &args.allow_http {
        config = config.allow_http(r.clone());
    }
    for (registry, endpoint) in &args.registry_endpoint {
        config = config.with_endpoint(registry.clone(), endpoint.clone());
    }
    RegistryClient::new(config).map_err(|e| format!("registry client: {e} [{}]", e.code()))
}
