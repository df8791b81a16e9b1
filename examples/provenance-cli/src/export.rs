//! `provenance export IMAGE... --to DIR`: copy images with every cosign signature,
//! attestation and SBOM and every OCI 1.1 referrer into an OCI image layout, for air-gapped
//! sites: carry the folder across, then `provenance verify image IMAGE --registry-layout DIR
//! --trust-root ROOT` (or `apply --registry-layout DIR`) verifies offline. Images are listed
//! in the layout under their full reference, so several images can share one layout.

use std::path::PathBuf;
use std::process::ExitCode;

use provenance_oci::{ExportOptions, export};
use serde_json::{Value, json};

use crate::image_source::{SourceArgs, open_source, parse_image, signature_repository};
use crate::ui::{Exit, Failure, Progress, Style, TEXT_OR_JSON};

/// Arguments of `provenance export`.
#[derive(clap::Args, Debug)]
#[command(after_help = crate::ui::EXIT_CODES_HELP)]
pub struct ExportArgs {
    /// Images to export, as written in a Pod spec.
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
    /// The OCI layout folder to write (created, or added to).
    #[arg(long, value_name = "DIR")]
    pub to: PathBuf,
    /// Also copy the image layers (possibly many GB). Without it the layout holds manifests,
    /// configs and all the evidence, which is everything verification needs.
    #[arg(long)]
    pub include_layers: bool,
    #[command(flatten)]
    pub source: SourceArgs,
    /// Output: `text`, or `json` (an array, one object per image, on stdout).
    #[arg(short = 'o', long = "output", default_value = "text", value_parser = TEXT_OR_JSON)]
    pub output: String,
}

/// Runs `provenance export`: exit 0 when every image was written, 2 on usage errors, 3 when
/// an image or its evidence could not be read.
pub fn run(args: &ExportArgs) -> ExitCode {
    match run_inner(args) {
        Ok(e) => e.into(),
        Err(f) => {
            if args.output == "json" {
                println!("{}", json!([{"exported": false, "error": f.to_json()}]));
            }
            f.eprint("export");
            f.exit.into()
        }
    }
}

fn run_inner(args: &ExportArgs) -> Result<Exit, Failure> {
    let images = args
        .images
        .iter()
        .map(|i| parse_image(i))
        .collect::<Result<Vec<_>, _>>()?;
    if args
        .source
        .registry_layout
        .as_ref()
        .is_some_and(|l| l == &args.to)
    {
        return Err(Failure::usage(
            "--to names the layout the images are read from",
        ));
    }
    let repository = signature_repository(&args.source)?;
    let src = open_source(&args.source)?;
    let rt = crate::ui::runtime()?;
    let style = Style::stdout();
    let mut exit = Exit::Ok;
    let mut out: Vec<Value> = Vec::new();
    for (input, image) in args.images.iter().zip(&images) {
        let options = ExportOptions {
            include_layers: args.include_layers,
            signature_repository: repository.clone(),
            name: Some(image.to_string()),
            ..ExportOptions::default()
        };
        let progress = Progress::spinner(&format!("exporting {input}"));
        let r = rt.block_on(export(&src, image, &args.to, &options));
        drop(progress);
        match r {
            Ok(report) => {
                let v = json!({
                    "image": input,
                    "reference": image.to_string(),
                    "exported": true,
                    "digest": report.digest.to_string(),
                    "to": args.to.display().to_string(),
                    "manifests": report.manifests,
                    "blobs": report.blobs,
                    "cosignTags": report.cosign_tags,
                    "referrers": report.referrers,
                    "layers": args.include_layers,
                });
                if args.output != "json" {
                    println!(
                        "{} {} ({}) to {}: {} manifests, {} blobs, cosign tags [{}], {} referrers{}",
                        style.green("Exported"),
                        image,
                        report.digest,
                        args.to.display(),
                        report.manifests,
                        report.blobs,
                        report.cosign_tags.join(", "),
                        report.referrers,
                        if args.include_layers {
                            ""
                        } else {
                            " (layers not copied; --include-layers copies them)"
                        }
                    );
                }
                out.push(v);
            }
            Err(e) => {
                let f = match &e {
                    provenance_oci::Error::Io { .. } => Failure::usage(format!(
                        "{input}: cannot write the layout {}: {e} [{}]",
                        args.to.display(),
                        e.code()
                    )),
                    _ => Failure::evidence(&format!("{input}: export failed"), &e),
                };
                f.eprint("export");
                exit = exit.worst(f.exit);
                out.push(json!({"image": input, "exported": false, "error": f.to_json()}));
            }
        }
    }
    if args.output == "json" {
        println!(
            "{}",
            serde_json::to_string_pretty(&out).unwrap_or_else(|_| "[]".into())
        );
    } else if exit == Exit::Ok {
        println!(
            "verify offline with: provenance verify image IMAGE --registry-layout {} --trust-root trusted_root.json (--key FILE or --certificate-identity ... --certificate-oidc-issuer ...)",
            args.to.display()
        );
    }
    Ok(exit)
}
