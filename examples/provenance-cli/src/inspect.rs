//! `provenance inspect IMAGE`: what evidence an image has, wherever it is stored (cosign
//! `.sig` / `.att` / `.sbom` tags, OCI 1.1 referrers, Sigstore bundles), and, when a key or an
//! identity is given, whether each signature and attestation verifies against it and the
//! trust root. Without trust material it is an unverified listing and says so: the signer it
//! shows is what the material claims, nothing more.

use std::process::ExitCode;

use base64::Engine;
use provenance_core::verify::{CertificateIdentity, Expectation, SignatureMaterial, Verifier};
use provenance_core::{Digest, UnixTime};
use provenance_oci::EvidenceSource;
use serde_json::{Value, json};

use crate::image_source::{
    Source, SourceArgs, TrustArgs, describe_source, open_source, parse_image, signature_repository,
};
use crate::ui::{Exit, Failure, Progress, Style, TEXT_OR_JSON};
use crate::verify_image::{
    attestation_material, attestation_origin, signature_origin, verified_json, verified_text,
};

/// Arguments of `provenance inspect`.
#[derive(clap::Args, Debug)]
#[command(after_help = crate::ui::EXIT_CODES_HELP)]
pub struct InspectArgs {
    /// The image, as written in a Pod spec.
    #[arg(value_name = "IMAGE")]
    pub image: String,
    #[command(flatten)]
    pub trust: TrustArgs,
    #[command(flatten)]
    pub source: SourceArgs,
    /// Verify as of this time (RFC 3339) instead of the system clock.
    #[arg(long)]
    pub now: Option<String>,
    /// Output: `text`, or `json` (one object on stdout).
    #[arg(short = 'o', long = "output", default_value = "text", value_parser = TEXT_OR_JSON)]
    pub output: String,
}

/// Who the material says signed it, read without verifying anything.
pub fn claimed_signer(m: &SignatureMaterial) -> Option<String> {
    let from_der = |der: &[u8]| {
        CertificateIdentity::from_der(der).ok().map(|c| {
            format!(
                "certificate for {} (issuer {})",
                c.subject().unwrap_or("?"),
                c.issuer.as_deref().unwrap_or("?")
            )
        })
    };
    match m {
        SignatureMaterial::Cosign(c) => {
            if let Some(p) = c
                .annotations
                .get(provenance_core::verify::ANNOTATION_CERTIFICATE)
            {
                let block = pem::parse(p).ok()?;
                from_der(block.contents())
            } else {
                Some("a key (no certificate)".into())
            }
        }
        SignatureMaterial::Bundle(json) => {
            let v: Value = serde_json::from_slice(json).ok()?;
            let vm = v.get("verificationMaterial")?;
            let raw = vm
                .pointer("/certificate/rawBytes")
                .or_else(|| vm.pointer("/x509CertificateChain/certificates/0/rawBytes"))
                .and_then(Value::as_str);
            match raw {
                Some(b64) => {
                    let der = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
                    from_der(&der)
                }
                None => vm
                    .pointer("/publicKey/hint")
                    .and_then(Value::as_str)
                    .map(|h| format!("a key (hint {h})"))
                    .or_else(|| Some("a key".into())),
            }
        }
        _ => None,
    }
}

/// One signature or attestation, listed and maybe verified.
fn item(
    kind: &str,
    origin: &str,
    layer: &Digest,
    manifest: &Digest,
    material: &SignatureMaterial,
    claimed_type: Option<String>,
    check: Option<(&Verifier, &Expectation, &Digest, UnixTime)>,
) -> Value {
    let mut v = json!({
        "kind": kind,
        "origin": origin,
        "layerDigest": layer.to_string(),
        "manifestDigest": manifest.to_string(),
        "claimedSigner": claimed_signer(material),
    });
    if kind == "attestation" {
        v["claimedPredicateType"] = json!(claimed_type);
    }
    if let Some((verifier, exp, digest, now)) = check {
        let verified = if kind == "attestation" {
            verifier.verify_attestation(digest, material, exp, now)
        } else {
            verifier.verify_image_signature(digest, material, exp, now)
        };
        match verified {
            Ok(ok) => {
                let mut subject_ok = true;
                if kind == "attestation" {
                    let st = ok
                        .payload
                        .as_ref()
                        .and_then(|(_, p)| provenance_attest::Statement::from_json(p).ok());
                    subject_ok = st.as_ref().is_some_and(|s| s.matches(digest));
                    v["predicateType"] = json!(st.map(|s| s.predicate_type));
                }
                if subject_ok {
                    v["verified"] = json!(true);
                    v["verification"] = verified_json(&ok);
                    v["summary"] = json!(verified_text(&ok));
                } else {
                    v["verified"] = json!(false);
                    v["error"] = json!({
                        "code": "cli.verify.attestation_subject",
                        "message": format!("the signed statement does not name {digest} as its subject"),
                    });
                }
            }
            Err(e) => {
                v["verified"] = json!(false);
                v["error"] = json!({"code": e.code(), "message": e.to_string()});
            }
        }
    }
    v
}

async fn inspect(
    src: &Source,
    args: &InspectArgs,
    check: Option<(&Verifier, &Expectation, UnixTime)>,
) -> Result<Value, Failure> {
    let image = parse_image(&args.image)?;
    let repository = signature_repository(&args.source)?;
    let repo = repository.as_ref();
    let what = |w: &str| {
        format!(
            "{}: cannot read its {w} from the {}",
            args.image,
            describe_source(src)
        )
    };
    let digest = src.resolve(&image).await.map_err(|e| {
        Failure::evidence(
            &format!(
                "{}: cannot resolve in the {}",
                args.image,
                describe_source(src)
            ),
            &e,
        )
    })?;
    let manifest = src
        .manifest_at(&image, &digest)
        .await
        .map_err(|e| Failure::evidence(&what("manifest"), &e))?;
    let (sigs, atts, sboms, referrers) = tokio::join!(
        src.signatures(&image, &digest, repo),
        src.attestations(&image, &digest, repo),
        src.sboms(&image, &digest, repo),
        src.referrers(repo.unwrap_or(&image), &digest, None),
    );
    let sigs = sigs.map_err(|e| Failure::evidence(&what("signatures"), &e))?;
    let atts = atts.map_err(|e| Failure::evidence(&what("attestations"), &e))?;
    let sboms = sboms.map_err(|e| Failure::evidence(&what("SBOMs"), &e))?;
    let referrers = referrers.map_err(|e| Failure::evidence(&what("referrers"), &e))?;
    let check = check.map(|(v, e, now)| (v, e, &digest, now));
    let signatures: Vec<Value> = sigs
        .iter()
        .map(|s| {
            item(
                "signature",
                signature_origin(s),
                &s.digest,
                &s.manifest_digest,
                &s.material(),
                None,
                check,
            )
        })
        .collect();
    let attestations: Vec<Value> = atts
        .iter()
        .map(|a| {
            let m = attestation_material(a);
            let claimed = a
                .predicate_type
                .clone()
                .or_else(|| m.claimed_predicate_type());
            item(
                "attestation",
                attestation_origin(a),
                &a.digest,
                &a.manifest_digest,
                &m,
                claimed,
                check,
            )
        })
        .collect();
    let mut sboms: Vec<Value> = sboms
        .iter()
        .map(|s| {
            json!({
                "origin": "cosign-tag",
                "mediaType": s.media_type,
                "layerDigest": s.digest.to_string(),
                "size": s.bytes.len(),
                "verified": Value::Null,
                "note": "cosign .sbom attachments are not signed; sign them as attestations",
            })
        })
        .collect();
    // SBOMs pushed as OCI 1.1 referrers (`oras attach --artifact-type application/spdx+json`).
    for r in &referrers.items {
        let at = r.artifact_type.as_deref().unwrap_or_default();
        if at.contains("spdx") || at.contains("cyclonedx") || at.contains("sbom") {
            sboms.push(json!({
                "origin": "referrer",
                "mediaType": at,
                "manifestDigest": r.digest.to_string(),
                "size": r.size,
                "verified": Value::Null,
                "note": "an SBOM referrer is not signed by itself; sign SBOMs as attestations",
            }));
        }
    }
    let referrer_list: Vec<Value> = referrers
        .items
        .iter()
        .map(|r| {
            json!({
                "digest": r.digest.to_string(),
                "mediaType": r.media_type,
                "artifactType": r.artifact_type,
                "size": r.size,
            })
        })
        .collect();
    Ok(json!({
        "image": args.image,
        "reference": image.to_string(),
        "digest": digest.to_string(),
        "mediaType": manifest.media_type,
        "source": describe_source(src),
        "verification": if check.is_some() { "checked against the given signer and trust root" } else { "none: no --key or --certificate-identity given; this is an UNVERIFIED listing (signers are what the material claims)" },
        "signatures": signatures,
        "attestations": attestations,
        "sboms": sboms,
        "referrers": referrer_list,
        "referrersOrigin": format!("{:?}", referrers.origin),
    }))
}

fn print_text(v: &Value, checked: bool) {
    let style = Style::stdout();
    let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    println!("{} ({})", style.bold(&s(&v["reference"])), s(&v["digest"]));
    println!("  media type: {}", s(&v["mediaType"]));
    println!("  source: {}", s(&v["source"]));
    if !checked {
        println!(
            "  {}",
            style.yellow("UNVERIFIED listing: no --key or --certificate-identity given; signers below are claims, not proof")
        );
    }
    let status = |i: &Value| -> String {
        match i["verified"].as_bool() {
            Some(true) => style.green(&format!("verified: {}", s(&i["summary"]))),
            Some(false) => style.red(&format!(
                "NOT verified: [{}] {}",
                s(&i["error"]["code"]),
                s(&i["error"]["message"])
            )),
            None => format!(
                "claims {}",
                i["claimedSigner"]
                    .as_str()
                    .unwrap_or("an unreadable signer")
            ),
        }
    };
    let list = |name: &str, items: &Value| -> Vec<Value> {
        let items = items.as_array().cloned().unwrap_or_default();
        println!("{name} ({}):", items.len());
        items
    };
    for i in list("signatures", &v["signatures"]) {
        println!(
            "  - {} {}: {}",
            s(&i["origin"]),
            s(&i["layerDigest"]),
            status(&i)
        );
    }
    for i in list("attestations", &v["attestations"]) {
        let ty = i["predicateType"]
            .as_str()
            .or(i["claimedPredicateType"].as_str())
            .unwrap_or("unknown type");
        println!(
            "  - {ty} via {} {}: {}",
            s(&i["origin"]),
            s(&i["layerDigest"]),
            status(&i)
        );
    }
    for i in list("sboms", &v["sboms"]) {
        if i["origin"] == "referrer" {
            println!(
                "  - {} referrer {} ({} bytes manifest, not signed by itself)",
                s(&i["mediaType"]),
                s(&i["manifestDigest"]),
                i["size"]
            );
        } else {
            println!(
                "  - {} {} ({} bytes, unsigned cosign attachment)",
                s(&i["mediaType"]),
                s(&i["layerDigest"]),
                i["size"]
            );
        }
    }
    for i in list("referrers", &v["referrers"]) {
        println!(
            "  - {} {}",
            i["artifactType"].as_str().unwrap_or("(no artifact type)"),
            s(&i["digest"])
        );
    }
}

/// Runs `provenance inspect`: exit 0 when listed (and, with a signer given, when at least
/// one signature or attestation verified), 1 when a signer was given and nothing verified,
/// 2 on usage errors, 3 when the evidence could not be read.
pub fn run(args: &InspectArgs) -> ExitCode {
    match run_inner(args) {
        Ok(e) => e.into(),
        Err(f) => {
            if args.output == "json" {
                println!("{}", json!({"error": f.to_json()}));
            }
            f.eprint("inspect");
            f.exit.into()
        }
    }
}

fn run_inner(args: &InspectArgs) -> Result<Exit, Failure> {
    let now = crate::ui::now_from(args.now.as_deref())?;
    let expectation = args.trust.expectation()?;
    parse_image(&args.image)?;
    let verifier = match &expectation {
        Some(_) => {
            let (root, _) = args
                .trust
                .trust_root(args.source.registry_layout.as_deref())?;
            Some(
                Verifier::new(&root)
                    .map_err(|e| Failure::usage(format!("trust root: {e} [{}]", e.code())))?,
            )
        }
        None => None,
    };
    let src = open_source(&args.source)?;
    let rt = crate::ui::runtime()?;
    let check = match (&verifier, &expectation) {
        (Some(v), Some(e)) => Some((v, e, now)),
        _ => None,
    };
    let progress = Progress::spinner(&format!("inspecting {}", args.image));
    let v = rt.block_on(inspect(&src, args, check))?;
    drop(progress);
    if args.output == "json" {
        println!(
            "{}",
            serde_json::to_string_pretty(&v).unwrap_or_else(|_| v.to_string())
        );
    } else {
        print_text(&v, check.is_some());
    }
    if check.is_none() {
        return Ok(Exit::Ok);
    }
    let any_verified = ["signatures", "attestations"].iter().any(|k| {
        v[*k]
            .as_array()
            .is_some_and(|a| a.iter().any(|i| i["verified"] == json!(true)))
    });
    if any_verified {
        Ok(Exit::Ok)
    } else {
        let f = Failure::failed(
            "cli.inspect.nothing_verified",
            format!(
                "{}: no signature or attestation verified against the given signer",
                args.image
            ),
        );
        f.eprint("inspect");
        Ok(Exit::Failed)
    }
}
