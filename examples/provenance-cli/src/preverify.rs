//! `provenance preverify`: asks a running admission webhook to decide workloads before they
//! are applied, so their evidence and verified signatures are in its caches when the API
//! server asks (the webhook's `POST /preverify`). A CD pipeline calls it on push, after
//! signing and before `kubectl apply`. It admits nothing: the API server's request is decided
//! again, from the caches.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use serde_json::{Value, json};

use crate::ui::{Exit, Failure, Style, TEXT_OR_JSON};

/// Arguments of `provenance preverify`.
#[derive(clap::Args, Debug)]
#[command(after_help = crate::ui::EXIT_CODES_HELP)]
pub struct PreverifyArgs {
    /// The webhook's base URL (`https://provenance-webhook.provenance-system.svc`).
    #[arg(long, value_name = "URL")]
    pub webhook: String,
    /// Manifests to pre-verify (YAML or JSON, several documents per file), each as it will be
    /// applied.
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Images to pre-verify without a manifest (decided as a Pod in `--namespace`).
    #[arg(long = "image", value_name = "IMAGE")]
    pub images: Vec<String>,
    /// The namespace the `--image` Pod is decided in.
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
    /// PEM certificate(s) to trust for the webhook's TLS (its serving CA); the system's roots
    /// otherwise.
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// How long to wait for each answer, in seconds.
    #[arg(long, default_value_t = 30)]
    pub timeout: u64,
    /// Output: `text` (one line per result) or `json` (the webhook's answers, one per line).
    #[arg(short = 'o', long = "output", default_value = "text", value_parser = TEXT_OR_JSON)]
    pub output: String,
}

/// Runs `provenance preverify`: exit 0 when every workload verified, 1 when one did not, 2 on
/// usage errors, 3 when the webhook could not be asked.
pub fn run(args: &PreverifyArgs) -> ExitCode {
    match run_inner(args) {
        Ok(e) => e.into(),
        Err(f) => {
            f.eprint("preverify");
            f.exit.into()
        }
    }
}

/// The bodies to send: one per manifest document, and one for all `--image`s.
fn bodies(args: &PreverifyArgs) -> Result<Vec<(String, Value)>, Failure> {
    let mut out = Vec::new();
    for f in &args.files {
        let text = std::fs::read_to_string(f)
            .map_err(|e| Failure::usage(format!("cannot read {}: {e}", f.display())))?;
        let name = f.display().to_string();
        let docs = provenance_policy::yaml::load_documents(&text, &name)
            .map_err(|e| Failure::usage(e.to_string()))?;
        for doc in docs.into_iter().filter(|d| !d.is_null()) {
            let what = format!(
                "{}/{}",
                doc["kind"].as_str().unwrap_or("?"),
                doc.pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or("?")
            );
            out.push((what, json!({ "object": doc })));
        }
    }
    if !args.images.is_empty() {
        out.push((
            format!("images in {}", args.namespace),
            json!({"images": args.images, "namespace": args.namespace}),
        ));
    }
    if out.is_empty() {
        return Err(Failure::usage(
            "nothing to pre-verify: give manifests with -f FILE or images with --image IMAGE",
        ));
    }
    Ok(out)
}

fn run_inner(args: &PreverifyArgs) -> Result<Exit, Failure> {
    let bodies = bodies(args)?;
    let url = format!("{}/preverify", args.webhook.trim_end_matches('/'));
    if !url.starts_with("https://") {
        return Err(Failure::usage(format!(
            "--webhook {}: the webhook is reached over HTTPS only",
            args.webhook
        )));
    }
    let mut client = reqwest::Client::builder().timeout(Duration::from_secs(args.timeout));
    if let Some(ca) = &args.ca_cert {
        let pem = std::fs::read(ca)
            .map_err(|e| Failure::usage(format!("cannot read {}: {e}", ca.display())))?;
        for cert in reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| Failure::usage(format!("{}: not PEM certificates: {e}", ca.display())))?
        {
            client = client.add_root_certificate(cert);
        }
    }
    let client = client
        .build()
        .map_err(|e| Failure::usage(format!("cannot build the HTTPS client: {e}")))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::usage(format!("cannot start the runtime: {e}")))?;
    let style = Style::stdout();
    let mut all_verified = true;
    for (what, body) in bodies {
        let answer = rt.block_on(ask(&client, &url, &body))?;
        let verified = answer["verified"].as_bool() == Some(true);
        all_verified &= verified;
        if args.output == "json" {
            println!("{}", json!({"workload": what, "answer": answer}));
            continue;
        }
        let verdict = if verified {
            style.green("verified")
        } else {
            style.red("NOT verified")
        };
        println!("{what}: {verdict}");
        for r in answer["results"].as_array().into_iter().flatten() {
            let codes = r["codes"]
                .as_array()
                .map(|c| {
                    c.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            println!(
                "  {:<6} {}/{}: {}{}",
                r["status"].as_str().unwrap_or("?"),
                r["policy"].as_str().unwrap_or("?"),
                r["rule"].as_str().unwrap_or("?"),
                r["message"].as_str().unwrap_or(""),
                if codes.is_empty() {
                    String::new()
                } else {
                    format!(" [{codes}]")
                }
            );
        }
    }
    Ok(if all_verified { Exit::Ok } else { Exit::Failed })
}

/// One `POST /preverify`: the webhook's answer, or why there is none.
async fn ask(client: &reqwest::Client, url: &str, body: &Value) -> Result<Value, Failure> {
    let unreachable = |e: String| Failure {
        exit: Exit::Evidence,
        code: "cli.webhook.unreachable".into(),
        message: format!("POST {url}: {e}"),
        hint: Some(
            "check --webhook and that the webhook's certificate is trusted (--ca-cert)".into(),
        ),
    };
    let resp = client
        .post(url)
        .json(body)
        .send()
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let status = resp.status();
    let text = resp.text().await.map_err(|e| unreachable(e.to_string()))?;
    let v: Value = serde_json::from_str(&text).map_err(|e| {
        unreachable(format!(
            "answered {status} with a body that is not JSON: {e}"
        ))
    })?;
    if !status.is_success() {
        return Err(Failure {
            exit: if status.is_client_error() {
                Exit::Usage
            } else {
                Exit::Evidence
            },
            code: v["code"]
                .as_str()
                .unwrap_or("cli.webhook.refused")
                .to_owned(),
            message: format!(
                "POST {url}: {status}: {}",
                v["message"].as_str().unwrap_or(&text)
            ),
            hint: None,
        });
    }
    Ok(v)
}
