//! Answers one AdmissionReview with Kyverno policies, as a validating webhook would: the
//! library's front door ([`Review`], [`PolicySet::respond`]) without the HTTP server around it.
//!
//! ```sh
//! cargo run -p provenance-policy --example admission -- POLICY_FILE_OR_DIR REVIEW.json \
//!   [--namespace-label KEY=VALUE]... [--now UNIX_SECONDS]
//! ```
//!
//! Prints the AdmissionReview to answer with and exits 0 when the request is allowed, 1 when
//! it is denied. The namespace's labels are what the API server does not send: without any
//! `--namespace-label`, they are unknown, and a rule with a `namespaceSelector` is an error
//! instead of a silent non-match. Rules that need image evidence (verifyImages) report that it
//! is missing; the `verify_images` example gathers it.
#![forbid(unsafe_code)]

use std::path::Path;
use std::process::ExitCode;

use provenance_policy::core::UnixTime;
use provenance_policy::lang::jmespath::Env;
use provenance_policy::{Phase, PolicySet, RequestFacts, Review};

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<bool, Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: admission POLICY_FILE_OR_DIR REVIEW.json \
                 [--namespace-label KEY=VALUE]... [--now UNIX_SECONDS]";
    let (Some(policies), Some(review)) = (args.next(), args.next()) else {
        return Err(usage.into());
    };
    let mut labels = Vec::new();
    let mut now = None;
    while let Some(flag) = args.next() {
        match (flag.as_str(), args.next()) {
            ("--namespace-label", Some(kv)) => {
                let (k, v) = kv.split_once('=').ok_or("a namespace label is KEY=VALUE")?;
                labels.push((k.to_owned(), v.to_owned()));
            }
            ("--now", Some(n)) => now = Some(UnixTime(n.parse()?)),
            _ => return Err(usage.into()),
        }
    }

    let set = load(Path::new(&policies))?;
    let facts = if labels.is_empty() {
        RequestFacts::new()
    } else {
        RequestFacts::new().namespace_labels(labels)
    };
    let review = Review::from_slice(&std::fs::read(&review)?, &facts)?;
    // The library never reads a clock: `now` is an argument.
    let now = match now {
        Some(n) => n,
        None => UnixTime(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_secs() as i64,
        ),
    };
    let answer = set.respond(&review, Phase::Validate, None, &Env::at(now));
    println!("{}", serde_json::to_string_pretty(&answer.review)?);
    for r in &answer.decision.results {
        eprintln!(
            "{:<6} {}/{}: {}",
            r.status.as_str(),
            r.policy,
            r.rule,
            r.message
        );
    }
    Ok(answer.decision.allowed)
}

/// Every `.yaml`/`.yml` file of `path` (a file or a directory), in name order.
fn load(path: &Path) -> Result<PolicySet, Box<dyn std::error::Error>> {
    let mut files = Vec::new();
    if path.is_dir() {
        for entry in std::fs::read_dir(path)? {
            let p = entry?.path();
            if p.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                files.push(p);
            }
        }
        files.sort();
    } else {
        files.push(path.to_owned());
    }
    let mut set = PolicySet::default();
    for f in files {
        set.add_yaml(&std::fs::read_to_string(&f)?, &f.display().to_string())?;
    }
    Ok(set)
}
