//! Lists the supply-chain evidence an image has: its digest, cosign signatures, attestations
//! and OCI 1.1 referrers, from an OCI image layout on disk or from the image's registry. Every
//! byte is digest-checked and size-bounded; nothing here is verified (that is
//! `provenance_core::Verifier`'s job): this is what a verifier would be given.
//!
//! ```sh
//! cargo run -p provenance-oci --example evidence -- IMAGE [OCI_LAYOUT_DIR]
//! ```
//!
//! Without a layout the registry is asked over HTTPS, with the credentials of
//! `~/.docker/config.json`.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use provenance_core::ImageReference;
use provenance_oci::{EvidenceSource, LayoutSource, RegistryClient, RegistryConfig};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.as_slice() {
        [image] => match RegistryClient::new(RegistryConfig::default()) {
            Ok(registry) => list(&registry, image).await,
            Err(e) => Err(e.into()),
        },
        [image, layout] => match LayoutSource::open(layout) {
            Ok(layout) => list(&layout, image).await,
            Err(e) => Err(e.into()),
        },
        _ => Err("usage: evidence IMAGE [OCI_LAYOUT_DIR]".into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn list<S: EvidenceSource>(
    source: &S,
    image: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let image = ImageReference::parse(image)?;
    let digest = source.resolve(&image).await?;
    println!("{image}\n  digest {digest}");
    for s in source.signatures(&image, &digest, None).await? {
        println!("  signature   {} {}", s.digest, s.media_type);
    }
    for a in source.attestations(&image, &digest, None).await? {
        let predicate = a
            .predicate_type
            .as_deref()
            .unwrap_or("(predicate type not annotated)");
        println!("  attestation {} {predicate}", a.digest);
    }
    let referrers = source.referrers(&image, &digest, None).await?;
    for r in &referrers.items {
        let kind = r.artifact_type.as_deref().unwrap_or(&r.media_type);
        println!("  referrer    {} {kind}", r.digest);
    }
    Ok(())
}
