//! Answers one AdmissionReview whose images must be signed: the evidence (signatures,
//! attestations) is gathered from an OCI image layout on disk, verified against a trust root,
//! and the answer pins each verified image to its digest, all within a deadline
//! (`admission::review::respond_online`, feature `oci`). Swap the `LayoutSource` for a
//! `provenance_oci::RegistryClient` to read registries instead.
//!
//! ```sh
//! cargo run -p provenance-policy --features oci --example verify_images -- \
//!   POLICY.yaml REVIEW.json OCI_LAYOUT_DIR TRUSTED_ROOT.json \
//!   [--namespace-label KEY=VALUE]... [--now UNIX_SECONDS]
//! ```
//!
//! Does what the API server does with a mutating and a validating webhook: asks the mutating
//! answer (its JSONPatch pins each verified image to its digest), applies the patch, and asks
//! the validating answer for the patched object. Prints both; exits 0 when the request is
//! allowed, 1 when it is denied. `--now` fixes the time of verification (the library never
//! reads a clock; this program reads it when `--now` is not given).
#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use provenance_policy::admission::review::respond_online;
use provenance_policy::core::{TrustRoot, UnixTime, Verifier};
use provenance_policy::kyverno::mutate::json_patch;
use provenance_policy::{Phase, PolicySet, RequestFacts, Review};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match run().await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

async fn run() -> Result<bool, Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: verify_images POLICY.yaml REVIEW.json OCI_LAYOUT_DIR TRUSTED_ROOT.json \
                 [--namespace-label KEY=VALUE]... [--now UNIX_SECONDS]";
    let [policy, review, layout, root, rest @ ..] = args.as_slice() else {
        return Err(usage.into());
    };
    let mut labels = Vec::new();
    let mut now = None;
    for pair in rest.chunks(2) {
        match pair {
            [flag, kv] if flag == "--namespace-label" => {
                let (k, v) = kv.split_once('=').ok_or("a namespace label is KEY=VALUE")?;
                labels.push((k.to_owned(), v.to_owned()));
            }
            [flag, n] if flag == "--now" => now = Some(UnixTime(n.parse()?)),
            _ => return Err(usage.into()),
        }
    }

    let mut set = PolicySet::default();
    set.add_yaml(&std::fs::read_to_string(policy)?, policy)?;
    let verifier = Verifier::new(&TrustRoot::from_trusted_root_json(&std::fs::read(root)?)?)?;
    let source = Arc::new(provenance_oci::LayoutSource::open(layout)?);
    let facts = RequestFacts::new().namespace_labels(labels);
    let mut body: serde_json::Value = serde_json::from_slice(&std::fs::read(review)?)?;
    let now = match now {
        Some(n) => n,
        None => UnixTime(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_secs() as i64,
        ),
    };
    let deadline = Duration::from_secs(5);

    // 1. The mutating webhook: verifies, and pins tags to the digests it verified.
    let review = Review::parse(&body, &facts)?;
    let mutate = respond_online(
        &set,
        &review,
        Phase::Mutate,
        source.clone(),
        &verifier,
        deadline,
        now,
    );
    let mutate = mutate.await;
    println!("mutate: {}", serde_json::to_string_pretty(&mutate.review)?);

    // 2. The API server applies the patch to the object...
    if let Some(object) = body.pointer_mut("/request/object") {
        *object = json_patch::apply(object, &mutate.patch, "patch")?;
    }

    // 3. ...and asks the validating webhook about the patched object.
    let review = Review::parse(&body, &facts)?;
    let validate = respond_online(
        &set,
        &review,
        Phase::Validate,
        source,
        &verifier,
        deadline,
        now,
    );
    let validate = validate.await;
    println!(
        "validate: {}",
        serde_json::to_string_pretty(&validate.review)?
    );
    for r in &validate.decision.results {
        eprintln!(
            "{:<6} {}/{}: {}",
            r.status.as_str(),
            r.policy,
            r.rule,
            r.message
        );
    }
    Ok(validate.decision.allowed)
}
