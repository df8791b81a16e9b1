//! `provenance attest IMAGE --predicate FILE --type URI --key KEY`: cosign `attest` (by
//! default key-based without a transparency log). The predicate is wrapped in an in-toto
//! Statement v1 whose subject is the image digest, checked by this SDK's parser for its type
//! (SLSA, SPDX, CycloneDX, model card, dataset provenance, ...), signed in a DSSE envelope and
//! written as a `.att` layer, or with `--new-bundle-format` as a Sigstore bundle referrer. With `--keyless` (a Fulcio
//! certificate) or `--key K --tlog-upload`, the envelope is logged in Rekor and the bundle
//! verified before anything is written; the `.att` layer then carries cosign's certificate and
//! SET annotations.

use std::path::PathBuf;
use std::process::ExitCode;

use provenance_attest::build::{resource, statement};
use provenance_core::sign::bundle;
use provenance_oci::sign::{
    attach_attestation_from_bundle, attach_bundle_referrer_to, attest_image,
    attest_image_bundle_to, remove_attestations,
};

use crate::image_source::{SourceArgs, parse_image, signature_repository};
use crate::signing::{Target, resolve, with_publisher};
use crate::ui::{Failure, runtime};

/// Arguments of `provenance attest`.
#[derive(clap::Args, Debug)]
#[command(after_help = crate::ui::EXIT_CODES_HELP)]
pub struct AttestArgs {
    /// The image, as written in a Pod spec (a tag is resolved once; the digest is attested).
    #[arg(value_name = "IMAGE")]
    image: String,
    /// The predicate (JSON file).
    #[arg(long, value_name = "FILE")]
    predicate: PathBuf,
    /// Predicate type: a URI, or cosign's short names (`slsaprovenance1`, `slsaprovenance`,
    /// `spdxjson`, `cyclonedx`, `vuln`, `custom`).
    #[arg(long = "type", value_name = "URI", default_value = "custom")]
    predicate_type: String,
    /// Private key: cosign.key (password from PROVENANCE_PASSWORD,
    /// COSIGN_PASSWORD or the terminal) or a PKCS#8 / SEC1 PEM.
    /// Required unless --keyless.
    #[arg(long, value_name = "FILE", required_unless_present = "keyless")]
    key: Option<PathBuf>,
    /// The key's password. Deprecated: visible in the process list; prefer PROVENANCE_PASSWORD
    /// or COSIGN_PASSWORD, or the terminal prompt.
    #[arg(long, value_name = "PASSWORD")]
    password: Option<String>,
    /// Write a Sigstore bundle referrer instead of the `.att` tag.
    #[arg(long)]
    new_bundle_format: bool,
    /// Remove the image's `.att` attestations of the same predicate type first (cosign
    /// `--replace`). Not with --new-bundle-format (referrers are never deleted).
    #[arg(long, conflicts_with = "new_bundle_format")]
    replace: bool,
    #[command(flatten)]
    keyless: crate::keyless::KeylessArgs,
    #[command(flatten)]
    source: SourceArgs,
}

/// cosign's `--type` short names.
pub fn predicate_type_uri(t: &str) -> &str {
    match t {
        "slsaprovenance" | "slsaprovenance02" => "https://slsa.dev/provenance/v0.2",
        "slsaprovenance1" => "https://slsa.dev/provenance/v1",
        "spdx" => "https://spdx.dev/Document",
        "spdxjson" => "https://spdx.dev/Document",
        "cyclonedx" => "https://cyclonedx.org/bom",
        "vuln" => "https://cosign.sigstore.dev/attestation/vuln/v1",
        "openvex" => "https://openvex.dev/ns",
        "custom" => "https://cosign.sigstore.dev/attestation/v1",
        other => other,
    }
}

/// Runs `provenance attest`.
pub fn run(args: AttestArgs) -> ExitCode {
    match attest(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            f.eprint("attest");
            f.exit.into()
        }
    }
}

fn attest(a: AttestArgs) -> Result<(), Failure> {
    let (logged, key) =
        crate::signing::signer_flags(&a.keyless, a.key.as_deref(), a.password.as_deref())?;
    let image = parse_image(&a.image)?;
    let bytes = std::fs::read(&a.predicate)
        .map_err(|e| Failure::usage(format!("--predicate {}: {e}", a.predicate.display())))?;
    let predicate: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
        Failure::usage(format!(
            "--predicate {}: not JSON: {e}",
            a.predicate.display()
        ))
    })?;
    let ptype = predicate_type_uri(&a.predicate_type).to_owned();
    let repository = signature_repository(&a.source)?;
    let target = Target::open(&a.source)?;
    let rt = runtime()?;
    let (out, how) = rt.block_on(async {
        let (signer, key) = if logged {
            let s = crate::keyless::LoggedSigner::prepare(&a.keyless, key).await?;
            (Some(s), None)
        } else {
            (None, key)
        };
        with_publisher!(&target, |p| {
            let digest = resolve(p, &image).await?;
            let st = statement(vec![resource(&image.name(), &digest)], &ptype, predicate)
                .map_err(|e| {
                    Failure::usage(format!(
                        "--predicate {} as {ptype}: {e} [{}]",
                        a.predicate.display(),
                        e.code()
                    ))
                })?
                .to_json();
            let failed =
                |e: provenance_oci::Error| Failure::evidence(&format!("attesting {image}"), &e);
            if a.replace {
                let n = remove_attestations(p, &image, &digest, &ptype, repository.as_ref())
                    .await
                    .map_err(failed)?;
                eprintln!("removed {n} earlier {ptype} attestation(s) of {image}");
            }
            match (&signer, &key) {
                (Some(s), _) => {
                    let signed = s.sign_in_toto(&st).await?;
                    let r = if a.new_bundle_format {
                        attach_bundle_referrer_to(
                            p,
                            &image,
                            &digest,
                            &signed.json,
                            repository.as_ref(),
                        )
                        .await
                    } else {
                        attach_attestation_from_bundle(
                            p,
                            &image,
                            &digest,
                            &signed.json,
                            s.chain(),
                            repository.as_ref(),
                        )
                        .await
                    };
                    Ok((r.map_err(failed)?, crate::keyless::describe(&signed)))
                }
                (None, Some(key)) => {
                    let r = if a.new_bundle_format {
                        attest_image_bundle_to(
                            p,
                            &image,
                            &digest,
                            key,
                            &st,
                            &bundle::Options::default(),
                            repository.as_ref(),
                        )
                        .await
                    } else {
                        attest_image(p, &image, &digest, key, &st, repository.as_ref()).await
                    };
                    Ok((
                        r.map_err(failed)?,
                        String::from("with the key (no log entry)"),
                    ))
                }
                (None, None) => Err(Failure::usage("attest needs --key FILE or --keyless")),
            }
        })
    })?;
    eprintln!(
        "attested {image} ({ptype}) {how}; written to {}",
        out.reference
    );
    println!("{}", out.reference);
    Ok(())
}
