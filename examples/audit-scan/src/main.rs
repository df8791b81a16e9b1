//! `audit-scan`: a background scan of a cluster's Pods against Kyverno policies, writing one
//! PolicyReport per namespace (YAML or JSON, to stdout or a folder). Pods come from the
//! cluster through kube-rs, or from `kubectl get namespaces,pods -A -o json` saved to a file
//! (`--from-file`). `verifyImages` evidence comes from an OCI layout (`--registry-layout`) or
//! the registries (`--online`), as for `provenance apply`.
//!
//! With `--warm-webhook URL` the Pods read are also sent to an admission webhook's
//! `/preverify`, so its caches hold what their next replicas need.
//!
//! Exit codes: 0 reports written (whatever they contain: an audit blocks nothing), 2 usage or
//! input error, 3 the cluster could not be read, 4 reports written but the webhook to warm did
//! not answer every request.
#![forbid(unsafe_code)]

mod cluster;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use audit_scan::{Scanner, list_items, namespace_labels, reports};
use provenance_core::verify::{PUBLIC_GOOD_TRUSTED_ROOT, Verifier};
use provenance_core::{TrustRoot, UnixTime};
use provenance_oci::{LayoutSource, RegistryClient, RegistryConfig};
use provenance_policy::admission::gather::gather;
use provenance_policy::kyverno::verify_images::{ImageEvidence, ImageRequest, VerifyImagesContext};
use serde_json::Value;

/// Files larger than this are refused.
const MAX_FILE_BYTES: u64 = 256 << 20;

#[derive(clap::Parser, Debug)]
#[command(
    name = "audit-scan",
    version,
    about = "Background scan of a cluster's Pods against Kyverno policies, writing PolicyReports",
    after_help = "Exit codes:
  0  reports written (an audit blocks nothing: failures are in the reports)
  2  usage or input error (flags, unreadable or malformed files, no kubeconfig)
  3  the cluster could not be read (API server unreachable, access refused)
  4  reports written, but --warm-webhook did not answer every request"
)]
struct Args {
    /// Policy file or folder (YAML/JSON; folders are read recursively). Repeatable.
    #[arg(long = "policy", required = true, value_name = "DIR|FILE")]
    policies: Vec<PathBuf>,
    /// Read resources from this `kubectl get namespaces,pods -A -o json` output (a List,
    /// JSON or YAML) instead of the cluster. Repeatable.
    #[arg(long = "from-file", value_name = "FILE")]
    from_file: Vec<PathBuf>,
    /// The kubeconfig to use (default: KUBECONFIG, ~/.kube/config, or in-cluster).
    #[arg(long, value_name = "FILE", conflicts_with = "from_file")]
    kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long, value_name = "NAME", conflicts_with = "from_file")]
    context: Option<String>,
    /// Scan only the Pods of this namespace.
    #[arg(short = 'n', long, value_name = "NS")]
    namespace: Option<String>,
    /// Take image evidence from this OCI image layout folder (no network).
    #[arg(long, value_name = "DIR", conflicts_with = "online")]
    registry_layout: Option<PathBuf>,
    /// Take image evidence from the registries the images name.
    #[arg(long)]
    online: bool,
    /// Allow plain HTTP for this registry. Repeatable.
    #[arg(long = "allow-http", value_name = "REGISTRY", requires = "online")]
    allow_http: Vec<String>,
    /// Contact `HOST[:PORT]` instead of REGISTRY. Repeatable.
    #[arg(
        long = "registry-endpoint",
        value_name = "REGISTRY=HOST",
        requires = "online"
    )]
    registry_endpoint: Vec<String>,
    /// Sigstore `trusted_root.json`. Default: the embedded public-good root. A
    /// `trusted_root.json` inside --registry-layout is never used implicitly.
    #[arg(long, visible_alias = "trusted-root", value_name = "FILE")]
    trust_root: Option<PathBuf>,
    /// DANGEROUS: trust the `trusted_root.json` shipped inside --registry-layout: whoever can
    /// write the layout then chooses the CAs and logs signatures are checked against.
    #[arg(long, requires = "registry_layout", conflicts_with = "trust_root")]
    trust_root_from_layout: bool,
    /// Labels of a namespace for `namespaceSelector` (`NS=KEY=VALUE`), added to those of the
    /// Namespace objects read. Repeatable.
    #[arg(long = "namespace-labels", value_name = "NS=KEY=VALUE")]
    namespace_labels: Vec<String>,
    /// Report format.
    #[arg(short = 'o', long = "output", default_value = "yaml", value_parser = ["yaml", "json"])]
    output: String,
    /// Write one file per report into this folder (`<namespace>.policyreport.yaml`,
    /// `cluster.policyreport.yaml`) instead of stdout.
    #[arg(long, value_name = "DIR")]
    out_dir: Option<PathBuf>,
    /// Evaluation and verification time (RFC 3339). Default: the system clock.
    #[arg(long)]
    now: Option<String>,
    /// After the scan, warm this admission webhook's caches with the Pods read
    /// (`https://provenance-webhook.provenance-system.svc`): each distinct Pod is sent to its
    /// `POST /preverify`, so the evidence and verified checks its next replica needs are
    /// cached (after a webhook restart, or on a new replica). HTTPS only.
    #[arg(long, value_name = "URL")]
    warm_webhook: Option<String>,
    /// PEM certificate(s) to trust for the webhook's TLS (its serving CA); the system's roots
    /// otherwise.
    #[arg(long, value_name = "FILE", requires = "warm_webhook")]
    webhook_ca_cert: Option<PathBuf>,
    /// Most images gathered at once (and, with --warm-webhook, most requests to it at once).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    concurrency: u16,
}

enum Failure {
    Usage(String),
    Cluster(String),
    /// The reports were written, but the webhook to warm did not answer every request.
    Warm(String),
}

fn main() -> ExitCode {
    let args = <Args as clap::Parser>::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(m)) => {
            eprintln!("audit-scan: {m}");
            ExitCode::from(2)
        }
        Err(Failure::Cluster(m)) => {
            eprintln!("audit-scan: {m}");
            eprintln!(
                "  what to do: check the kubeconfig's server and credentials (kubectl get pods -A works?); the scan needs list on pods and namespaces"
            );
            ExitCode::from(3)
        }
        Err(Failure::Warm(m)) => {
            eprintln!("audit-scan: {m}");
            eprintln!(
                "  what to do: check --warm-webhook (its Service URL) and --webhook-ca-cert (the CA of its serving certificate); the reports were written"
            );
            ExitCode::from(4)
        }
    }
}

fn usage(m: impl Into<String>) -> Failure {
    Failure::Usage(m.into())
}

fn system_now() -> UnixTime {
    UnixTime(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or_default(),
    )
}

fn read_text(path: &Path) -> Result<String, Failure> {
    let meta = std::fs::metadata(path).map_err(|e| usage(format!("{}: {e}", path.display())))?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(usage(format!(
            "{}: larger than {MAX_FILE_BYTES} bytes",
            path.display()
        )));
    }
    std::fs::read_to_string(path).map_err(|e| usage(format!("{}: {e}", path.display())))
}

/// The YAML/JSON files under `paths` (folders recursively, sorted).
fn files_under(paths: &[PathBuf]) -> Result<Vec<PathBuf>, Failure> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>, depth: usize) -> Result<(), Failure> {
        if depth > 16 {
            return Err(usage(format!(
                "{}: folders nested too deeply",
                dir.display()
            )));
        }
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| usage(format!("{}: {e}", dir.display())))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, out, depth + 1)?;
            } else if p
                .extension()
                .and_then(|x| x.to_str())
                .is_some_and(|x| matches!(x, "yaml" | "yml" | "json"))
            {
                out.push(p);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            walk(p, &mut out, 0)?;
        } else if p.is_file() {
            out.push(p.clone());
        } else {
            return Err(usage(format!("{}: no such file or folder", p.display())));
        }
    }
    Ok(out)
}

fn documents(paths: &[PathBuf]) -> Result<Vec<(String, Value)>, Failure> {
    let mut out = Vec::new();
    for f in files_under(paths)? {
        let name = f.display().to_string();
        let docs = provenance_policy::yaml::load_documents(&read_text(&f)?, &name)
            .map_err(|e| usage(format!("{name}: {e}")))?;
        out.extend(docs.into_iter().map(|d| (name.clone(), d)));
    }
    Ok(out)
}

/// Largest `trusted_root.json` read from a layout.
const MAX_LAYOUT_TRUST_ROOT_BYTES: u64 = 4 << 20;

/// Reads a file shipped in a layout: a regular file (not a link, device or FIFO), at most
/// 4 MiB.
fn read_layout_file(f: &std::path::Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    if !std::fs::symlink_metadata(f)?.file_type().is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut out = Vec::new();
    std::fs::File::open(f)?
        .take(MAX_LAYOUT_TRUST_ROOT_BYTES + 1)
        .read_to_end(&mut out)?;
    if out.len() as u64 > MAX_LAYOUT_TRUST_ROOT_BYTES {
        return Err(std::io::Error::other("larger than 4 MiB"));
    }
    Ok(out)
}

fn trust_root(args: &Args) -> Result<TrustRoot, Failure> {
    let (bytes, what) = match (&args.trust_root, &args.registry_layout) {
        (Some(f), _) => (
            std::fs::read(f).map_err(|e| usage(format!("--trust-root {}: {e}", f.display())))?,
            f.display().to_string(),
        ),
        (None, Some(dir)) if args.trust_root_from_layout => {
            let f = dir.join("trusted_root.json");
            eprintln!(
                "warning: --trust-root-from-layout: verifying with the trust root shipped in the layout ({}); whoever wrote the layout chose it",
                f.display()
            );
            (
                read_layout_file(&f).map_err(|e| usage(format!("{}: {e}", f.display())))?,
                f.display().to_string(),
            )
        }
        _ => (
            PUBLIC_GOOD_TRUSTED_ROOT.to_vec(),
            "the embedded public-good trust root".to_owned(),
        ),
    };
    TrustRoot::from_trusted_root_json(&bytes)
        .map_err(|e| usage(format!("{what}: {e} [{}]", e.code())))
}

fn registry_config(args: &Args) -> Result<RegistryConfig, Failure> {
    let mut config = RegistryConfig {
        docker_config: provenance_oci::DockerConfig::from_environment()
            .map_err(|e| usage(format!("Docker config: {e} [{}]", e.code())))?,
        ..RegistryConfig::default()
    };
    for r in &args.allow_http {
        config = config.allow_http(r.clone());
    }
    for s in &args.registry_endpoint {
        let Some((registry, host)) = s
            .split_once('=')
            .filter(|(r, h)| !r.is_empty() && !h.is_empty())
        else {
            return Err(usage(format!(
                "--registry-endpoint {s}: expected REGISTRY=HOST[:PORT]"
            )));
        };
        config = config.with_endpoint(registry, host);
    }
    Ok(config)
}

fn evidence(
    args: &Args,
    rt: &tokio::runtime::Runtime,
    requests: &[ImageRequest],
) -> Result<BTreeMap<String, ImageEvidence>, Failure> {
    if requests.is_empty() {
        return Ok(BTreeMap::new());
    }
    let limit = usize::from(args.concurrency);
    if let Some(dir) = &args.registry_layout {
        let layout = LayoutSource::open(dir).map_err(|e| {
            usage(format!(
                "--registry-layout {}: {e} [{}]",
                dir.display(),
                e.code()
            ))
        })?;
        return Ok(rt.block_on(gather(Arc::new(layout), requests, limit)));
    }
    if args.online {
        let client = RegistryClient::new(registry_config(args)?)
            .map_err(|e| usage(format!("registry client: {e} [{}]", e.code())))?;
        return Ok(rt.block_on(gather(Arc::new(client), requests, limit)));
    }
    // No source: every image is an error result with the reason (fail closed).
    Ok(ImageEvidence::unavailable_for(
        requests,
        "no evidence source: pass --registry-layout DIR or --online",
    ))
}

fn extra_labels(
    labels: &mut BTreeMap<String, BTreeMap<String, String>>,
    flags: &[String],
) -> Result<(), Failure> {
    for s in flags {
        let mut parts = s.splitn(3, '=');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(ns), Some(k), Some(v)) if !ns.is_empty() && !k.is_empty() => {
                labels
                    .entry(ns.to_owned())
                    .or_default()
                    .insert(k.to_owned(), v.to_owned());
            }
            _ => {
                return Err(usage(format!(
                    "--namespace-labels {s}: expected NS=KEY=VALUE"
                )));
            }
        }
    }
    Ok(())
}

fn run(args: &Args) -> Result<(), Failure> {
    let now = match &args.now {
        Some(s) => UnixTime::parse_rfc3339(s)
            .ok_or_else(|| usage(format!("--now: not an RFC 3339 timestamp: {s}")))?,
        None => system_now(),
    };
    let scanner = Scanner::from_documents(documents(&args.policies)?)
        .map_err(|e| usage(format!("policies: {e}")))?;
    if scanner.policies().policies().is_empty() && scanner.skipped().is_empty() {
        return Err(usage("no policies found under --policy"));
    }
    for s in scanner.skipped() {
        eprintln!(
            "skipped {}: {} (as Kyverno's background scan)",
            s.policy, s.reason
        );
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| usage(format!("cannot start the async runtime: {e}")))?;

    let mut resources = Vec::new();
    if args.from_file.is_empty() {
        let config = rt
            .block_on(cluster::config(args.kubeconfig.as_deref(), args.context.as_deref()))
            .map_err(|e| match e {
                cluster::ClusterError::Config(m) | cluster::ClusterError::Api(m) => usage(format!(
                    "no cluster to scan: {m}; pass --from-file FILE (kubectl get namespaces,pods -A -o json > FILE) or --kubeconfig"
                )),
            })?;
        resources = rt
            .block_on(cluster::read(config, args.namespace.as_deref()))
            .map_err(|e| match e {
                cluster::ClusterError::Config(m) | cluster::ClusterError::Api(m) => {
                    Failure::Cluster(m)
                }
            })?;
    } else {
        for f in &args.from_file {
            let name = f.display().to_string();
            for doc in provenance_policy::yaml::load_documents(&read_text(f)?, &name)
                .map_err(|e| usage(format!("{name}: {e}")))?
            {
                resources.extend(list_items(doc).map_err(|e| usage(format!("{name}: {e}")))?);
            }
        }
    }
    let mut labels = namespace_labels(&resources);
    extra_labels(&mut labels, &args.namespace_labels)?;
    let pods: Vec<Value> = resources
        .into_iter()
        .filter(|r| r.get("kind").and_then(Value::as_str) != Some("Namespace"))
        .filter(|r| {
            args.namespace.as_deref().is_none_or(|ns| {
                r.pointer("/metadata/namespace").and_then(Value::as_str) == Some(ns)
            })
        })
        .collect();

    let warm = match &args.warm_webhook {
        Some(url) => Some(Warm::new(args, url, audit_scan::warm_bodies(&pods))?),
        None => None,
    };
    let inputs = scanner.inputs(pods, &labels);
    let requests = scanner.image_requests(&inputs);
    let root = trust_root(args)?;
    let verifier =
        Verifier::new(&root).map_err(|e| usage(format!("trust root: {e} [{}]", e.code())))?;
    let evidence = evidence(args, &rt, &requests)?;
    // Many Pods share images: a pass is verified once per (rule, image digest).
    let cache = provenance_policy::kyverno::verify_images::VerifyImagesCache::new(4096, 3600);
    let cx = VerifyImagesContext::new(&evidence, &verifier, now).with_cache(Some(&cache));
    let results = scanner.scan(&inputs, &cx, now);
    let reports = reports(&results, now);
    eprintln!(
        "scanned {} resources with {} policies: {} results in {} reports",
        inputs.len(),
        scanner.policies().policies().len(),
        results.len(),
        reports.len()
    );
    write(args, &reports)?;
    match warm {
        Some(w) => rt.block_on(w.run(usize::from(args.concurrency))),
        None => Ok(()),
    }
}

/// What `--warm-webhook` sends, and where.
struct Warm {
    client: reqwest::Client,
    url: String,
    bodies: Vec<Value>,
}

impl Warm {
    /// The client for `--warm-webhook` and the bodies it will send.
    fn new(args: &Args, base: &str, bodies: Vec<Value>) -> Result<Warm, Failure> {
        let url = format!("{}/preverify", base.trim_end_matches('/'));
        if !url.starts_with("https://") {
            return Err(usage(format!(
                "--warm-webhook {base}: the webhook is reached over HTTPS only"
            )));
        }
        let mut client = reqwest::Client::builder().timeout(std::time::Duration::from_secs(30));
        if let Some(ca) = &args.webhook_ca_cert {
            let pem = std::fs::read(ca).map_err(|e| usage(format!("{}: {e}", ca.display())))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| usage(format!("{}: not PEM certificates: {e}", ca.display())))?;
            if certs.is_empty() {
                return Err(usage(format!("{}: no PEM certificate in it", ca.display())));
            }
            for cert in certs {
                client = client.add_root_certificate(cert);
            }
        }
        let client = client
            .build()
            .map_err(|e| usage(format!("cannot build the HTTPS client: {e}")))?;
        Ok(Warm {
            client,
            url,
            bodies,
        })
    }

    /// Sends every body, at most `limit` at once; says how many verified, did not, and were
    /// not answered (the first such error is given).
    async fn run(self, limit: usize) -> Result<(), Failure> {
        let total = self.bodies.len();
        let sem = Arc::new(tokio::sync::Semaphore::new(limit.max(1)));
        let mut tasks = tokio::task::JoinSet::new();
        for body in self.bodies {
            let (client, url, sem) = (self.client.clone(), self.url.clone(), sem.clone());
            tasks.spawn(async move {
                let _permit = sem.acquire_owned().await;
                let r = client.post(&url).json(&body).send().await;
                let r = match r {
                    Ok(r) if r.status().is_success() => r,
                    Ok(r) => return Err(format!("{url} answered {}", r.status())),
                    Err(e) => return Err(format!("{url}: {e}")),
                };
                let answer: Value = r
                    .json()
                    .await
                    .map_err(|e| format!("{url}: unreadable answer: {e}"))?;
                Ok(answer["verified"].as_bool() == Some(true))
            });
        }
        let (mut verified, mut not_verified, mut failed) = (0usize, 0usize, 0usize);
        let mut first_error = None;
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok(Ok(true)) => verified += 1,
                Ok(Ok(false)) => not_verified += 1,
                Ok(Err(e)) => {
                    failed += 1;
                    first_error.get_or_insert(e);
                }
                Err(e) => {
                    failed += 1;
                    first_error.get_or_insert(e.to_string());
                }
            }
        }
        eprintln!(
            "warmed the webhook with {total} workloads: {verified} verified, {not_verified} not verified, {failed} not answered"
        );
        match first_error {
            Some(e) => Err(Failure::Warm(format!(
                "{failed} of {total} workloads were not answered by the webhook: {e}"
            ))),
            None => Ok(()),
        }
    }
}

fn render(args: &Args, docs: &[Value]) -> Result<String, Failure> {
    if args.output == "json" {
        let v = if docs.len() == 1 {
            docs[0].clone()
        } else {
            Value::Array(docs.to_vec())
        };
        serde_json::to_string_pretty(&v).map_err(|e| usage(format!("cannot write JSON: {e}")))
    } else {
        serde_saphyr::to_string_multiple(docs).map_err(|e| usage(format!("cannot write YAML: {e}")))
    }
}

fn write(args: &Args, reports: &[Value]) -> Result<(), Failure> {
    let Some(dir) = &args.out_dir else {
        let text = if args.output == "json" {
            serde_json::to_string_pretty(reports)
                .map_err(|e| usage(format!("cannot write JSON: {e}")))?
        } else {
            render(args, reports)?
        };
        println!("{text}");
        return Ok(());
    };
    std::fs::create_dir_all(dir).map_err(|e| usage(format!("--out-dir {}: {e}", dir.display())))?;
    for r in reports {
        let ns = r
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("cluster");
        let file = dir.join(format!("{ns}.policyreport.{}", args.output));
        std::fs::write(&file, render(args, std::slice::from_ref(r))?)
            .map_err(|e| usage(format!("{}: {e}", file.display())))?;
        eprintln!("wrote {}", file.display());
    }
    Ok(())
}
