//! `provenance apply`: Kyverno's `kyverno apply` for provenance. Loads policies and resources,
//! gathers the evidence the `verifyImages` rules need (from an OCI image layout on disk or from
//! registries), decides each resource and prints a result table or PolicyReports.
//!
//! Gathering is one resolve + discovery per distinct image, run concurrently (bounded by
//! `--concurrency`). Everything fetched is unverified until `provenance-policy` verifies it
//! through `provenance-core` against the trust root; anything that cannot be gathered becomes
//! an `error` result, never a pass.
#![forbid(unsafe_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use provenance_core::verify::Verifier;
use provenance_core::{RuleResult, RuleStatus, TrustRoot, UnixTime};
use provenance_oci::{LayoutSource, RegistryClient, RegistryConfig};
use provenance_policy::admission::PolicySet;
pub use provenance_policy::admission::gather::gather;
use provenance_policy::admission::request::ResourceInput;
use provenance_policy::kyverno::verify_images::{ImageEvidence, ImageRequest, VerifyImagesContext};
use provenance_policy::lang::jmespath::Env;
use serde_json::Value;

/// Files larger than this are refused (policies and resources are small text files).
const MAX_FILE_BYTES: u64 = 16 << 20;
/// The name of the trust root an example layout may ship next to its blobs.
const LAYOUT_TRUST_ROOT: &str = "trusted_root.json";

/// Arguments of `provenance apply`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Exit codes:
  0  every resource is admitted
  1  an enforced rule blocks a resource (a failing rule, or an error result: evidence that
     could not be fetched or verified fails closed)
  2  usage or input error (flags, unreadable or malformed policies, resources, trust root)")]
pub struct ApplyArgs {
    /// Policy files or folders (YAML/JSON; folders are read recursively), as `kyverno apply
    /// POLICY...` takes them.
    #[arg(value_name = "POLICY", required_unless_present = "policy_flags")]
    pub policies: Vec<PathBuf>,
    /// A policy file or folder, like a positional POLICY. Repeatable.
    #[arg(long = "policy", visible_alias = "policies", value_name = "DIR|FILE")]
    pub policy_flags: Vec<PathBuf>,
    /// Resource file or folder (YAML/JSON, multi-document, `List` kinds). Repeatable, or
    /// comma-separated as kyverno apply takes them (`-r a.yaml,b.yaml`).
    #[arg(
        short = 'r',
        long = "resource",
        visible_alias = "resources",
        required = true,
        value_delimiter = ',',
        value_name = "DIR|FILE"
    )]
    pub resources: Vec<PathBuf>,
    /// Take image evidence from this OCI image layout folder (no network).
    #[arg(long, value_name = "DIR", conflicts_with = "online")]
    pub registry_layout: Option<PathBuf>,
    /// Take image evidence from the registries the images name.
    #[arg(long)]
    pub online: bool,
    /// Allow plain HTTP for this registry (as written in image references). Repeatable.
    #[arg(long = "allow-http", value_name = "REGISTRY", requires = "online")]
    pub allow_http: Vec<String>,
    /// Contact `HOST[:PORT]` instead of REGISTRY (an in-house or test copy). Repeatable.
    #[arg(
        long = "registry-endpoint",
        value_name = "REGISTRY=HOST",
        requires = "online"
    )]
    pub registry_endpoint: Vec<String>,
    /// Trust the PEM CA certificates in FILE for REGISTRY's TLS (a private CA), besides the
    /// system's roots; no other registry trusts them. Repeatable.
    #[arg(
        long = "registry-ca",
        value_name = "REGISTRY=FILE",
        requires = "online"
    )]
    pub registry_ca: Vec<String>,
    /// Sigstore `trusted_root.json` to verify with. Default: the embedded public-good root.
    /// A `trusted_root.json` inside `--registry-layout` is never used implicitly.
    #[arg(long, visible_alias = "trusted-root", value_name = "FILE")]
    pub trust_root: Option<PathBuf>,
    /// DANGEROUS: trust the `trusted_root.json` shipped inside `--registry-layout`: whoever
    /// can write the layout then chooses the CAs and logs signatures are checked against.
    #[arg(long, requires = "registry_layout", conflicts_with = "trust_root")]
    pub trust_root_from_layout: bool,
    /// Labels of a namespace for `namespaceSelector`: `NAMESPACE=KEY=VALUE`. Repeatable.
    /// Namespace objects among the resources supply labels too; these win.
    #[arg(long = "namespace-labels", value_name = "NS=KEY=VALUE")]
    pub namespace_labels: Vec<String>,
    /// A YAML/JSON file mapping namespaces to labels: `{ns: {key: value}}`.
    #[arg(long, value_name = "FILE")]
    pub namespace_labels_file: Option<PathBuf>,
    /// Cluster data for rule `context` entries (`configMap`, `apiCall` with `urlPath`): files
    /// or folders of resources (YAML/JSON, `List` kinds), or `kyverno test`'s
    /// `ClusterResource` documents (`spec.resources`, `spec.crds`). ConfigMaps and API GETs
    /// are answered from them; anything they lack makes the rule an `error`. Repeatable.
    /// Without it, such rules report `error` with `policy.unsupported`.
    #[arg(long = "cluster-resources", value_name = "DIR|FILE")]
    pub cluster_resources: Vec<PathBuf>,
    /// The existing resources mutate-existing policies may patch (ClusterPolicy mutate rules
    /// with `targets`, MutatingPolicies with `mutateExisting`), as `kyverno apply
    /// --target-resources` takes them: files or folders, repeatable or comma-separated. They
    /// join the cluster data; the patched copies are written with the mutated resources
    /// (`-o PATH`), and nothing is changed in place.
    #[arg(
        long = "target-resources",
        visible_alias = "target-resource",
        value_delimiter = ',',
        value_name = "DIR|FILE"
    )]
    pub target_resources: Vec<PathBuf>,
    /// Evaluation and verification time (RFC 3339). Default: the system clock.
    #[arg(long)]
    pub now: Option<String>,
    /// Output: a result `table`, or PolicyReports as `yaml` or `json`. Anything else is a path
    /// the mutated resources are written to, as `kyverno apply -o PATH` does (a `.yaml`,
    /// `.yml` or `.json` file gets every mutated resource, a folder one file per resource),
    /// and the results are printed as a table.
    #[arg(
        short = 'o',
        long = "output",
        default_value = "table",
        value_name = "table|yaml|json|PATH"
    )]
    pub output: String,
    /// Print PolicyReports, as `kyverno apply --policy-report` does: the same as `-o yaml`.
    #[arg(short = 'p', long, conflicts_with = "output")]
    pub policy_report: bool,
    /// Most images gathered at once.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,
}

/// Runs `provenance apply`: exit 0 when every resource is admitted, 1 when an enforced rule
/// blocks one, 2 on usage or input errors.
pub fn run(mut args: ApplyArgs) -> ExitCode {
    if args.policy_report {
        args.output = "yaml".into();
    }
    match run_inner(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            if args.output == "json" {
                println!(
                    "{}",
                    serde_json::json!({"error": {"code": "cli.usage", "message": e, "exitCode": 2}})
                );
            }
            eprintln!("provenance apply: {e}");
            ExitCode::from(2)
        }
    }
}

fn run_inner(args: &ApplyArgs) -> Result<bool, String> {
    let now = match &args.now {
        Some(s) => UnixTime::parse_rfc3339(s)
            .ok_or_else(|| format!("--now: not an RFC 3339 timestamp: {s}"))?,
        None => system_now(),
    };
    let policy_paths: Vec<PathBuf> = args
        .policies
        .iter()
        .chain(&args.policy_flags)
        .cloned()
        .collect();
    let policies = load_policies(&policy_paths)?;
    let docs = load_resources(&args.resources)?;
    let ns_labels = namespace_labels(&docs, args)?;
    let inputs = resource_inputs(docs, &ns_labels);

    let requests: Vec<ImageRequest> = inputs
        .iter()
        .flat_map(|i| policies.image_requests(i))
        .collect();
    let root = trust_root(args)?;
    let verifier = Verifier::new(&root).map_err(|e| format!("trust root: {e} [{}]", e.code()))?;
    let evidence = if requests.is_empty() {
        BTreeMap::new()
    } else {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the async runtime: {e}"))?;
        let limit = usize::from(args.concurrency);
        if let Some(dir) = &args.registry_layout {
            let layout = LayoutSource::open(dir)
                .map_err(|e| format!("--registry-layout {}: {e} [{}]", dir.display(), e.code()))?;
            rt.block_on(gather(Arc::new(layout), &requests, limit))
        } else if args.online {
            let client = RegistryClient::new(registry_config(args)?)
                .map_err(|e| format!("registry client: {e} [{}]", e.code()))?;
            rt.block_on(gather(Arc::new(client), &requests, limit))
        } else {
            // No source: every image is an error result (fail closed), with the reason.
            ImageEvidence::unavailable_for(
                &requests,
                "no evidence source: pass --registry-layout DIR or --online",
            )
        }
    };

    let mut env = Env::at(now);
    if !args.cluster_resources.is_empty() || !args.target_resources.is_empty() {
        let mut snapshot =
            provenance_policy::admission::cluster::ClusterSnapshot::new().with_resources_supplied();
        for f in files_under(&args.cluster_resources)? {
            let base = f.parent().unwrap_or(Path::new(".")).to_path_buf();
            crate::cluster_data::add_cluster_resources_file(&mut snapshot, &f, &base)?;
        }
        for target in load_resources(&args.target_resources)? {
            snapshot.add_resource(target);
        }
        env = env.with_cluster(Arc::new(snapshot));
    }
    // Many resources share images: a pass is verified once per (rule, image digest).
    let cache = provenance_policy::kyverno::verify_images::VerifyImagesCache::new(4096, 3600);
    let cx = VerifyImagesContext::new(&evidence, &verifier, now).with_cache(Some(&cache));
    let mut results: Vec<RuleResult> = Vec::new();
    let mut blocked = Vec::new();
    let mut mutated: Vec<(String, Value)> = Vec::new();
    for input in &inputs {
        // As `kyverno apply`: mutate rules first, then validation of the mutated resource.
        let d = policies.decide_mutating(input, &env, Some(&cx));
        if !d.allowed || !d.mutation_blocking.is_empty() {
            blocked.push(resource_name(input));
        }
        if !d.mutation_patches.is_empty() {
            let object = provenance_policy::kyverno::mutate::json_patch::apply(
                &input.object,
                &d.mutation_patches,
                "mutation",
            )
            .map_err(|e| format!("{}: {e}", resource_name(input)))?;
            mutated.push((resource_name(input), object));
        }
        // Mutate-existing policies' patched copies of their targets, after the resource
        // that triggered them, as `kyverno apply` prints "patched targets".
        for t in &d.mutated_targets {
            if let Some(p) = &t.patched {
                let r = &t.result.resource;
                let name = if r.namespace.is_empty() {
                    format!("{}/{}", r.kind, r.name)
                } else {
                    format!("{}/{}/{}", r.kind, r.namespace, r.name)
                };
                mutated.push((name, p.clone()));
            }
        }
        results.extend(d.results);
    }
    if !matches!(args.output.as_str(), "table" | "yaml" | "json") {
        write_mutated(Path::new(&args.output), &mutated)?;
    }
    match args.output.as_str() {
        "json" | "yaml" => {
            let reports = provenance_policy::admission::report::policy_reports(&results, now);
            let text = if args.output == "json" {
                serde_json::to_string_pretty(&reports)
                    .map_err(|e| format!("cannot write JSON: {e}"))?
            } else {
                serde_saphyr::to_string_multiple(&reports)
                    .map_err(|e| format!("cannot write YAML: {e}"))?
            };
            println!("{text}");
        }
        _ => print_table(&results, &blocked, inputs.len()),
    }
    Ok(blocked.is_empty())
}

fn system_now() -> UnixTime {
    UnixTime(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or_default(),
    )
}

fn read_text(path: &Path) -> Result<String, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(format!(
            "{}: larger than {MAX_FILE_BYTES} bytes",
            path.display()
        ));
    }
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// The YAML/JSON files under `paths` (files as given; folders recursively, sorted).
pub fn files_under(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>, depth: usize) -> Result<(), String> {
        if depth > 16 {
            return Err(format!("{}: folders nested too deeply", dir.display()));
        }
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?
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
            return Err(format!("{}: no such file or folder", p.display()));
        }
    }
    Ok(out)
}

/// Loads every policy under `paths`.
pub fn load_policies(paths: &[PathBuf]) -> Result<PolicySet, String> {
    let mut set = PolicySet::default();
    for f in files_under(paths)? {
        let text = read_text(&f)?;
        let name = f.display().to_string();
        set.add_yaml(&text, &name).map_err(|e| {
            // Most load errors name the file (and line and column) themselves.
            let text = e.to_string();
            if text.contains(&name) {
                text
            } else {
                format!("{name}: {text}")
            }
        })?;
    }
    if set.policies().is_empty() {
        return Err("no policies found under --policy".into());
    }
    // A document this engine cannot evaluate would silently leave enforcement: refuse it.
    for p in set.policies() {
        if let provenance_policy::admission::loader::LoadedPolicy::Unsupported {
            name,
            reason,
            ..
        } = p
        {
            return Err(format!(
                "policy {name:?} cannot be evaluated [policy.unsupported]: {reason}"
            ));
        }
    }
    Ok(set)
}

/// Loads every resource under `paths`: multi-document YAML/JSON, `*List` kinds flattened.
pub fn load_resources(paths: &[PathBuf]) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    for f in files_under(paths)? {
        let text = read_text(&f)?;
        let name = f.display().to_string();
        let docs = provenance_policy::yaml::load_documents(&text, &name)
            .map_err(|e| format!("{name}: {e}"))?;
        for (i, doc) in docs.into_iter().enumerate() {
            flatten(doc, &name, i, &mut out, 0)?;
        }
    }
    Ok(out)
}

fn flatten(
    doc: Value,
    file: &str,
    index: usize,
    out: &mut Vec<Value>,
    depth: usize,
) -> Result<(), String> {
    if doc.is_null() {
        return Ok(());
    }
    let kind = doc.get("kind").and_then(Value::as_str).unwrap_or_default();
    if kind.is_empty() || !doc.is_object() {
        return Err(format!("{file}: document {index} has no kind"));
    }
    if kind.ends_with("List") && doc.get("items").is_some() {
        if depth > 4 {
            return Err(format!("{file}: document {index}: Lists nested too deeply"));
        }
        let Some(items) = doc.get("items").and_then(Value::as_array) else {
            return Err(format!("{file}: document {index}: items is not a list"));
        };
        for item in items.clone() {
            flatten(item, file, index, out, depth + 1)?;
        }
        return Ok(());
    }
    out.push(doc);
    Ok(())
}

/// Namespace labels: from Namespace objects, then `--namespace-labels-file`, then
/// `--namespace-labels` (later sources win per key).
fn namespace_labels(
    docs: &[Value],
    args: &ApplyArgs,
) -> Result<BTreeMap<String, BTreeMap<String, String>>, String> {
    let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for d in docs {
        if d.get("kind").and_then(Value::as_str) == Some("Namespace")
            && let Some(name) = d.pointer("/metadata/name").and_then(Value::as_str)
        {
            let labels = out.entry(name.to_owned()).or_default();
            if let Some(Value::Object(l)) = d.pointer("/metadata/labels") {
                for (k, v) in l {
                    if let Some(v) = v.as_str() {
                        labels.insert(k.clone(), v.to_owned());
                    }
                }
            }
        }
    }
    if let Some(f) = &args.namespace_labels_file {
        let name = f.display().to_string();
        let v = provenance_policy::yaml::load_document(&read_text(f)?, &name)
            .map_err(|e| format!("{name}: {e}"))?;
        let Value::Object(map) = v else {
            return Err(format!("{name}: expected a mapping of namespace to labels"));
        };
        for (ns, labels) in map {
            let Value::Object(labels) = labels else {
                return Err(format!("{name}: {ns}: expected a mapping of labels"));
            };
            let entry = out.entry(ns.clone()).or_default();
            for (k, v) in labels {
                let Some(v) = v.as_str() else {
                    return Err(format!("{name}: {ns}.{k}: label values are strings"));
                };
                entry.insert(k, v.to_owned());
            }
        }
    }
    for s in &args.namespace_labels {
        let mut parts = s.splitn(3, '=');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(ns), Some(k), Some(v)) if !ns.is_empty() && !k.is_empty() => {
                out.entry(ns.to_owned())
                    .or_default()
                    .insert(k.to_owned(), v.to_owned());
            }
            _ => return Err(format!("--namespace-labels {s}: expected NS=KEY=VALUE")),
        }
    }
    Ok(out)
}

/// One admission input (CREATE) per resource, with its namespace's labels.
pub fn resource_inputs(
    docs: Vec<Value>,
    ns_labels: &BTreeMap<String, BTreeMap<String, String>>,
) -> Vec<ResourceInput> {
    docs.into_iter()
        .map(|doc| {
            let mut input = ResourceInput::create(doc);
            if let Some(l) = ns_labels.get(input.namespace()) {
                input.namespace_labels = l.clone();
            }
            input
        })
        .collect()
}

/// Writes the mutated resources to `path`: every one into a `.yaml`, `.yml` or `.json` file
/// (YAML documents, or a JSON list), or one YAML file per resource into a folder (made if
/// missing), named after the resource's kind, namespace and name.
fn write_mutated(path: &Path, mutated: &[(String, Value)]) -> Result<(), String> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default();
    let yaml =
        |v: &Value| serde_saphyr::to_string(v).map_err(|e| format!("cannot write YAML: {e}"));
    let write = |p: &Path, text: String| {
        std::fs::write(p, text).map_err(|e| format!("-o {}: {e}", p.display()))
    };
    match ext {
        "json" => {
            let list: Vec<&Value> = mutated.iter().map(|(_, v)| v).collect();
            let text = serde_json::to_string_pretty(&list)
                .map_err(|e| format!("cannot write JSON: {e}"))?;
            write(path, text + "\n")
        }
        "yaml" | "yml" => {
            let mut text = String::new();
            for (_, v) in mutated {
                text.push_str("---\n");
                text.push_str(&yaml(v)?);
            }
            write(path, text)
        }
        _ => {
            std::fs::create_dir_all(path).map_err(|e| format!("-o {}: {e}", path.display()))?;
            for (name, v) in mutated {
                let file: String = name
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                            c
                        } else {
                            '_'
                        }
                    })
                    .collect();
                write(&path.join(format!("{file}.yaml")), yaml(v)?)?;
            }
            Ok(())
        }
    }
}

fn resource_name(input: &ResourceInput) -> String {
    if input.namespace().is_empty() {
        format!("{}/{}", input.kind(), input.name())
    } else {
        format!("{}/{}/{}", input.kind(), input.namespace(), input.name())
    }
}

fn trust_root(args: &ApplyArgs) -> Result<TrustRoot, String> {
    let (bytes, what) = match (&args.trust_root, &args.registry_layout) {
        (Some(f), _) => (
            std::fs::read(f).map_err(|e| format!("--trust-root {}: {e}", f.display()))?,
            f.display().to_string(),
        ),
        // Only when asked for by name: whoever wrote the layout chose that trust root.
        (None, Some(dir)) if args.trust_root_from_layout => {
            let f = dir.join(LAYOUT_TRUST_ROOT);
            eprintln!(
                "warning: --trust-root-from-layout: verifying with the trust root shipped in the layout ({}); whoever wrote the layout chose it",
                f.display()
            );
            (
                read_layout_file(&f).map_err(|e| format!("{}: {e}", f.display()))?,
                f.display().to_string(),
            )
        }
        _ => (
            provenance_core::verify::PUBLIC_GOOD_TRUSTED_ROOT.to_vec(),
            "the embedded public-good trust root".to_owned(),
        ),
    };
    TrustRoot::from_trusted_root_json(&bytes).map_err(|e| format!("{what}: {e} [{}]", e.code()))
}

/// Reads a file shipped in a layout: a regular file (not a link, device or FIFO), at most
/// `MAX_FILE_BYTES`.
fn read_layout_file(f: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    if !std::fs::symlink_metadata(f)?.file_type().is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut out = Vec::new();
    std::fs::File::open(f)?
        .take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut out)?;
    if out.len() as u64 > MAX_FILE_BYTES {
        return Err(std::io::Error::other("too large"));
    }
    Ok(out)
}

/// A registry client configuration (shared with `verify image`, `inspect`, `export` and
/// signing) from `--allow-http REGISTRY`, `--registry-endpoint
/// REGISTRY=HOST` and `--registry-ca REGISTRY=FILE` values, with credentials from the Docker
/// config.
pub fn registry_config_from(
    allow_http: &[String],
    endpoints: &[String],
    cas: &[String],
) -> Result<RegistryConfig, String> {
    let pair = |flag: &str, s: &str, what: &str| {
        s.split_once('=')
            .filter(|(r, v)| !r.is_empty() && !v.is_empty())
            .map(|(r, v)| (r.to_owned(), v.to_owned()))
            .ok_or_else(|| format!("{flag} {s}: expected REGISTRY={what}"))
    };
    let mut config = RegistryConfig {
        docker_config: provenance_oci::DockerConfig::from_environment()
            .map_err(|e| format!("Docker config: {e} [{}]", e.code()))?,
        ..RegistryConfig::default()
    };
    for r in allow_http {
        config = config.allow_http(r.clone());
    }
    for s in endpoints {
        let (registry, host) = pair("--registry-endpoint", s, "HOST[:PORT]")?;
        config = config.with_endpoint(registry, host);
    }
    for s in cas {
        let (registry, file) = pair("--registry-ca", s, "FILE")?;
        let pem = std::fs::read_to_string(&file)
            .map_err(|e| format!("--registry-ca {registry}={file}: {e}"))?;
        config = config.with_ca_pem(registry, pem);
    }
    Ok(config)
}

fn registry_config(args: &ApplyArgs) -> Result<RegistryConfig, String> {
    registry_config_from(&args.allow_http, &args.registry_endpoint, &args.registry_ca)
}

fn print_table(results: &[RuleResult], blocked: &[String], resources: usize) {
    let rows: Vec<[String; 5]> = results
        .iter()
        .map(|r| {
            let res = if r.resource.namespace.is_empty() {
                format!("{}/{}", r.resource.kind, r.resource.name)
            } else {
                format!(
                    "{}/{}/{}",
                    r.resource.kind, r.resource.namespace, r.resource.name
                )
            };
            [
                r.policy.clone(),
                r.rule.clone(),
                res,
                r.status.as_str().to_owned(),
                r.message.replace('\n', " "),
            ]
        })
        .collect();
    let header = ["POLICY", "RULE", "RESOURCE", "RESULT", "MESSAGE"];
    let mut width = [0usize; 4];
    for (i, w) in width.iter_mut().enumerate() {
        *w = rows
            .iter()
            .map(|r| r[i].chars().count())
            .chain(std::iter::once(header[i].len()))
            .max()
            .unwrap_or_default();
    }
    let line = |cells: [&str; 5]| {
        println!(
            "{:<w0$}  {:<w1$}  {:<w2$}  {:<w3$}  {}",
            cells[0],
            cells[1],
            cells[2],
            cells[3],
            cells[4],
            w0 = width[0],
            w1 = width[1],
            w2 = width[2],
            w3 = width[3]
        );
    };
    line(header);
    for r in &rows {
        line([&r[0], &r[1], &r[2], &r[3], &r[4]]);
    }
    let count = |s: RuleStatus| results.iter().filter(|r| r.status == s).count();
    let distinct: BTreeSet<&String> = blocked.iter().collect();
    println!();
    println!(
        "pass: {}, fail: {}, warn: {}, error: {}, skip: {}; {} resources, {} blocked",
        count(RuleStatus::Pass),
        count(RuleStatus::Fail),
        count(RuleStatus::Warn),
        count(RuleStatus::Error),
        count(RuleStatus::Skip),
        resources,
        distinct.len()
    );
    for b in distinct {
        println!("blocked: {b}");
    }
}
