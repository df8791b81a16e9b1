//! `provenance verify image IMAGE...`: what `cosign verify` and `cosign verify-attestation`
//! do, on the SDK. Resolves each image to its digest once, discovers its signatures (cosign
//! `.sig` tag, Sigstore bundle referrers) or, with `--type`, its attestations (cosign `.att`
//! tag, bundle referrers), and verifies them against `--key` or a keyless identity and the
//! trust root. Evidence comes from the registry, or offline from `--registry-layout DIR`.
//!
//! An image passes when at least one signature (or, per `--type`, one attestation of that
//! predicate type naming the image digest as its subject) verifies. It prints what was
//! verified: digest, signer identity or key, transparency-log index.

use std::process::ExitCode;

use provenance_core::verify::{
    CosignSignature, Expectation, SignatureMaterial, Signer, Verified, Verifier,
};
use provenance_core::{Digest, ImageReference, UnixTime};
use provenance_oci::{AttestationLayer, EvidenceSource, SignatureLayer};
use serde_json::{Value, json};

use crate::image_source::{
    Source, SourceArgs, TrustArgs, describe_source, open_source, parse_image, signature_repository,
};
use crate::ui::{Exit, Failure, Progress, Style, TEXT_OR_JSON};

/// Arguments of `provenance verify image`.
#[derive(clap::Args, Debug)]
#[command(after_help = crate::ui::EXIT_CODES_HELP)]
pub struct ImageArgs {
    /// Images to verify, as written in a Pod spec (a tag is resolved to a digest once).
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
    #[command(flatten)]
    pub trust: TrustArgs,
    /// Verify attestations of this predicate type instead of signatures (cosign
    /// `verify-attestation --type`): a URI, or one of cosign's names `slsaprovenance`,
    /// `slsaprovenance02`, `slsaprovenance1`, `link`, `spdx`, `spdxjson`, `cyclonedx`,
    /// `vuln`, `openvex`, `custom`. Repeatable: every type needs a verified attestation.
    #[arg(long = "type", value_name = "PREDICATE_TYPE")]
    pub types: Vec<String>,
    #[command(flatten)]
    pub source: SourceArgs,
    /// Verify as of this time (RFC 3339) instead of the system clock.
    #[arg(long)]
    pub now: Option<String>,
    /// Output: `text`, or `json` (an array, one object per image, on stdout).
    #[arg(short = 'o', long = "output", default_value = "text", value_parser = TEXT_OR_JSON)]
    pub output: String,
    /// Accepted for cosign's scripts (`cosign verify --offline`): verification never contacts
    /// a transparency log here; log entries are checked from what the signature carries.
    #[arg(
        long = "offline",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new(),
        value_name = "BOOL"
    )]
    pub _offline: Option<bool>,
}

/// cosign's short names for predicate types (`cosign attest --type`).
pub fn predicate_type(name: &str) -> Result<String, Failure> {
    let uri = match name {
        "slsaprovenance" | "slsaprovenance02" => "https://slsa.dev/provenance/v0.2",
        "slsaprovenance1" => "https://slsa.dev/provenance/v1",
        "link" => "https://in-toto.io/Link/v1",
        "spdx" | "spdxjson" => "https://spdx.dev/Document",
        "cyclonedx" => "https://cyclonedx.org/bom",
        "vuln" => "https://cosign.sigstore.dev/attestation/vuln/v1",
        "openvex" => "https://openvex.dev/ns",
        "custom" => "https://cosign.sigstore.dev/attestation/v1",
        other if other.contains("://") => other,
        other => {
            return Err(Failure::usage(format!(
                "--type {other}: not a predicate type URI nor one of cosign's names"
            ))
            .hint("use a URI such as https://slsa.dev/provenance/v1, or slsaprovenance1, spdxjson, cyclonedx, link, vuln, openvex, custom"));
        }
    };
    Ok(uri.to_owned())
}

/// The signer, as JSON.
pub fn signer_json(s: &Signer) -> Value {
    match s {
        Signer::Key { key_id, kind } => json!({
            "type": "key",
            "keyId": key_id.to_string(),
            "keyKind": kind.to_string(),
        }),
        Signer::Certificate(c) => json!({
            "type": "certificate",
            "identity": c.subject(),
            "issuer": c.issuer,
            "subjectAlternativeNames": c
                .subject_alternative_names
                .iter()
                .map(|s| s.as_str().to_owned())
                .collect::<Vec<_>>(),
        }),
        _ => json!({"type": "unknown"}),
    }
}

/// The signer, for people.
pub fn signer_text(s: &Signer) -> String {
    match s {
        Signer::Key { key_id, kind } => format!("{kind} key {key_id}"),
        Signer::Certificate(c) => format!(
            "{} (issuer {})",
            c.subject().unwrap_or("?"),
            c.issuer.as_deref().unwrap_or("?")
        ),
        _ => "an unknown signer".into(),
    }
}

/// What a verification proved, as JSON fields.
pub fn verified_json(v: &Verified) -> Value {
    json!({
        "signer": signer_json(&v.signer),
        "logIndex": v.log_index,
        "integratedTime": v.integrated_time.map(|t| t.to_string()),
        "transparencyVerified": v.transparency_verified,
    })
}

/// What a verification proved, for people.
pub fn verified_text(v: &Verified) -> String {
    let mut s = format!("signed by {}", signer_text(&v.signer));
    if let Some(i) = v.log_index {
        s.push_str(&format!(", log index {i}"));
    }
    if let Some(t) = v.integrated_time {
        s.push_str(&format!(", integrated {t}"));
    }
    if !v.transparency_verified {
        s.push_str(", NO transparency-log evidence");
    }
    s
}

/// Where a signature layer was found.
pub fn signature_origin(l: &SignatureLayer) -> &'static str {
    if l.media_type
        .starts_with(provenance_oci::types::SIGSTORE_BUNDLE_PREFIX)
    {
        "referrer"
    } else {
        "cosign-tag"
    }
}

/// Where an attestation layer was found.
pub fn attestation_origin(a: &AttestationLayer) -> &'static str {
    if a.is_bundle() {
        "referrer"
    } else {
        "cosign-tag"
    }
}

/// The material to verify for an attestation layer: the bundle, or cosign's `.att` layer (the
/// DSSE envelope with its annotations).
pub fn attestation_material(a: &AttestationLayer) -> SignatureMaterial {
    if a.is_bundle() {
        SignatureMaterial::Bundle(a.envelope.clone())
    } else {
        SignatureMaterial::Cosign(CosignSignature::new(
            a.envelope.clone(),
            a.annotations.clone(),
        ))
    }
}

/// A hint for a verification error code.
pub fn hint_for(code: &str, keyed: bool) -> Option<&'static str> {
    Some(match code {
        "verify.identity.subject" | "verify.identity.issuer" | "verify.identity.extension" => {
            "the image was signed by someone else: compare --certificate-identity / --certificate-oidc-issuer with the signer `provenance inspect IMAGE` shows"
        }
        "verify.signature.invalid" if keyed => {
            "the signature was not made with the private key of --key: check you have the right public key"
        }
        "verify.material.kind_mismatch" => {
            "the signature is keyless but --key was given, or key-signed but an identity was given: use the matching flags"
        }
        "verify.certificate.chain" | "verify.tlog.unknown_log" | "verify.certificate.sct" => {
            "the signature chains to a CA or log the trust root does not hold: pass the trusted_root.json of the Sigstore instance that signed it with --trust-root"
        }
        "verify.tlog.missing" => {
            "the signature has no transparency-log entry; if it was made with --tlog-upload=false and you accept that, add --insecure-ignore-tlog (with --key)"
        }
        _ => return None,
    })
}

/// One verified signature or attestation.
struct Proven {
    origin: &'static str,
    layer: Digest,
    manifest: Digest,
    predicate_type: Option<String>,
    verified: Verified,
}

/// One piece of material that did not verify.
struct Rejected {
    origin: &'static str,
    layer: Digest,
    code: String,
    reason: String,
}

/// The outcome for one image.
struct ImageOutcome {
    input: String,
    reference: Option<String>,
    digest: Option<Digest>,
    signatures: Vec<Proven>,
    attestations: Vec<Proven>,
    rejected: Vec<Rejected>,
    failure: Option<Failure>,
}

impl ImageOutcome {
    fn new(input: &str) -> Self {
        ImageOutcome {
            input: input.to_owned(),
            reference: None,
            digest: None,
            signatures: Vec::new(),
            attestations: Vec::new(),
            rejected: Vec::new(),
            failure: None,
        }
    }

    fn exit(&self) -> Exit {
        self.failure.as_ref().map_or(Exit::Ok, |f| f.exit)
    }

    fn to_json(&self) -> Value {
        let proven = |p: &Proven| {
            let mut v = verified_json(&p.verified);
            v["origin"] = json!(p.origin);
            v["layerDigest"] = json!(p.layer.to_string());
            v["manifestDigest"] = json!(p.manifest.to_string());
            if let Some(t) = &p.predicate_type {
                v["predicateType"] = json!(t);
            }
            v
        };
        json!({
            "image": self.input,
            "reference": self.reference,
            "digest": self.digest.as_ref().map(ToString::to_string),
            "verified": self.failure.is_none(),
            "signatures": self.signatures.iter().map(proven).collect::<Vec<_>>(),
            "attestations": self.attestations.iter().map(proven).collect::<Vec<_>>(),
            "rejected": self.rejected.iter().map(|r| json!({
                "origin": r.origin,
                "layerDigest": r.layer.to_string(),
                "code": r.code,
                "reason": r.reason,
            })).collect::<Vec<_>>(),
            "error": self.failure.as_ref().map(Failure::to_json),
        })
    }
}

struct Plan<'a> {
    expectation: &'a Expectation,
    types: &'a [String],
    repository: Option<&'a ImageReference>,
    verifier: &'a Verifier,
    now: UnixTime,
}

/// Each distinct rejection once, with how many signatures it applies to.
fn summarize_rejections(rejected: &[Rejected], code: &str) -> String {
    // When every rejection has the failure's own code, the failure line ends with it: the
    // reasons go without it, so that the code is said once.
    let one_code = rejected.iter().all(|r| r.code == code);
    let mut seen: Vec<(String, usize)> = Vec::new();
    for r in rejected {
        let line = if one_code {
            r.reason.clone()
        } else {
            format!("[{}] {}", r.code, r.reason)
        };
        match seen.iter_mut().find(|(l, _)| *l == line) {
            Some((_, n)) => *n += 1,
            None => seen.push((line, 1)),
        }
    }
    seen.into_iter()
        .map(|(line, n)| if n > 1 { format!("{n}x {line}") } else { line })
        .collect::<Vec<_>>()
        .join("; ")
}

async fn verify_one(src: &Source, input: &str, plan: &Plan<'_>) -> ImageOutcome {
    let mut out = ImageOutcome::new(input);
    let image = match parse_image(input) {
        Ok(i) => i,
        Err(f) => {
            out.failure = Some(f);
            return out;
        }
    };
    out.reference = Some(image.to_string());
    let digest = match src.resolve(&image).await {
        Ok(d) => d,
        Err(e) => {
            out.failure = Some(Failure::evidence(
                &format!("{input}: cannot resolve in the {}", describe_source(src)),
                &e,
            ));
            return out;
        }
    };
    out.digest = Some(digest.clone());
    let keyed = matches!(plan.expectation, Expectation::Key { .. });

    if plan.types.is_empty() {
        let sigs = match src.signatures(&image, &digest, plan.repository).await {
            Ok(s) => s,
            Err(e) => {
                out.failure = Some(Failure::evidence(
                    &format!("{input}: cannot read its signatures"),
                    &e,
                ));
                return out;
            }
        };
        if sigs.is_empty() {
            out.failure = Some(
                Failure::failed(
                    "cli.verify.no_signatures",
                    format!("{input} ({digest}): no signatures found"),
                )
                .hint("sign it (`cosign sign`), or, if its signatures live in another repository, pass --signature-repository"),
            );
            return out;
        }
        for s in &sigs {
            match plan.verifier.verify_image_signature(
                &digest,
                &s.material(),
                plan.expectation,
                plan.now,
            ) {
                Ok(v) => out.signatures.push(Proven {
                    origin: signature_origin(s),
                    layer: s.digest.clone(),
                    manifest: s.manifest_digest.clone(),
                    predicate_type: None,
                    verified: v,
                }),
                Err(e) => out.rejected.push(Rejected {
                    origin: signature_origin(s),
                    layer: s.digest.clone(),
                    code: e.code().to_owned(),
                    reason: e.to_string(),
                }),
            }
        }
        if out.signatures.is_empty() {
            let code = out
                .rejected
                .last()
                .map_or("verify.failed".to_owned(), |r| r.code.clone());
            let mut f = Failure::failed(
                code.clone(),
                format!(
                    "{input} ({digest}): none of {} signatures verified: {}",
                    sigs.len(),
                    summarize_rejections(&out.rejected, &code)
                ),
            );
            f.hint = hint_for(&code, keyed).map(str::to_owned);
            out.failure = Some(f);
        }
        return out;
    }

    let atts = match src.attestations(&image, &digest, plan.repository).await {
        Ok(a) => a,
        Err(e) => {
            out.failure = Some(Failure::evidence(
                &format!("{input}: cannot read its attestations"),
                &e,
            ));
            return out;
        }
    };
    // Verify every attestation once; the verified statement (not the unverified claim)
    // decides which type it proves.
    let mut proven_types: Vec<String> = Vec::new();
    for a in &atts {
        let origin = attestation_origin(a);
        let v = match plan.verifier.verify_attestation(
            &digest,
            &attestation_material(a),
            plan.expectation,
            plan.now,
        ) {
            Ok(v) => v,
            Err(e) => {
                out.rejected.push(Rejected {
                    origin,
                    layer: a.digest.clone(),
                    code: e.code().to_owned(),
                    reason: e.to_string(),
                });
                continue;
            }
        };
        let statement = v
            .payload
            .as_ref()
            .map(|(_, p)| provenance_attest::Statement::from_json(p));
        match statement {
            Some(Ok(st)) if st.matches(&digest) => {
                if plan.types.contains(&st.predicate_type) {
                    proven_types.push(st.predicate_type.clone());
                    out.attestations.push(Proven {
                        origin,
                        layer: a.digest.clone(),
                        manifest: a.manifest_digest.clone(),
                        predicate_type: Some(st.predicate_type),
                        verified: v,
                    });
                }
            }
            Some(Ok(st)) => out.rejected.push(Rejected {
                origin,
                layer: a.digest.clone(),
                code: "cli.verify.attestation_subject".into(),
                reason: format!(
                    "{} attestation names another subject than {digest}",
                    st.predicate_type
                ),
            }),
            Some(Err(e)) => out.rejected.push(Rejected {
                origin,
                layer: a.digest.clone(),
                code: e.code().to_owned(),
                reason: format!("signed payload is not an in-toto statement: {e}"),
            }),
            None => out.rejected.push(Rejected {
                origin,
                layer: a.digest.clone(),
                code: "cli.verify.attestation_payload".into(),
                reason: "no signed payload".into(),
            }),
        }
    }
    let missing: Vec<&String> = plan
        .types
        .iter()
        .filter(|t| !proven_types.contains(t))
        .collect();
    if !missing.is_empty() {
        let list = missing
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let f = if atts.is_empty() {
            Failure::failed(
                "cli.verify.no_attestations",
                format!("{input} ({digest}): no attestations found (need {list})"),
            )
            .hint("attest it (`cosign attest --type ...`), or, if its attestations live in another repository, pass --signature-repository")
        } else {
            let code = out
                .rejected
                .last()
                .map_or("cli.verify.no_attestation_of_type".to_owned(), |r| {
                    r.code.clone()
                });
            let mut f = Failure::failed(
                code.clone(),
                format!(
                    "{input} ({digest}): no verified attestation of type {list} among {} attestations{}",
                    atts.len(),
                    if out.rejected.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", summarize_rejections(&out.rejected, &code))
                    }
                ),
            );
            f.hint = hint_for(&code, keyed)
                .map(str::to_owned)
                .or_else(|| Some("`provenance inspect IMAGE` lists the attestations and the predicate types they claim".into()));
            f
        };
        out.failure = Some(f);
    }
    out
}

fn print_text(o: &ImageOutcome) {
    let style = Style::stdout();
    if let Some(f) = &o.failure {
        f.eprint("verify image");
        return;
    }
    let digest = o
        .digest
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default();
    println!(
        "{} {} ({digest})",
        style.green("Verified"),
        o.reference.as_deref().unwrap_or(&o.input)
    );
    for p in &o.signatures {
        println!("  signature ({}): {}", p.origin, verified_text(&p.verified));
    }
    for p in &o.attestations {
        println!(
            "  attestation {} ({}): {}",
            p.predicate_type.as_deref().unwrap_or("?"),
            p.origin,
            verified_text(&p.verified)
        );
    }
    if !o.rejected.is_empty() {
        println!(
            "  {} other signature or attestation layer(s) did not verify (see -o json)",
            o.rejected.len()
        );
    }
}

/// Runs `provenance verify image`.
pub fn run(args: &ImageArgs) -> ExitCode {
    match run_inner(args) {
        Ok(e) => e.into(),
        Err(f) => {
            if args.output == "json" {
                println!("{}", json!([{"verified": false, "error": f.to_json()}]));
            }
            f.eprint("verify image");
            f.exit.into()
        }
    }
}

fn run_inner(args: &ImageArgs) -> Result<Exit, Failure> {
    let now = crate::ui::now_from(args.now.as_deref())?;
    let Some(expectation) = args.trust.expectation()? else {
        return Err(Failure::usage("no signer to verify against")
            .hint("pass --key FILE, or --certificate-identity (or -regexp) with --certificate-oidc-issuer (or -regexp); `provenance inspect IMAGE` lists the evidence without verifying"));
    };
    let types = args
        .types
        .iter()
        .map(|t| predicate_type(t))
        .collect::<Result<Vec<_>, _>>()?;
    for i in &args.images {
        parse_image(i)?;
    }
    let (root, _) = args
        .trust
        .trust_root(args.source.registry_layout.as_deref())?;
    let verifier = Verifier::new(&root)
        .map_err(|e| Failure::usage(format!("trust root: {e} [{}]", e.code())))?;
    let repository = signature_repository(&args.source)?;
    let src = open_source(&args.source)?;
    let rt = crate::ui::runtime()?;
    let plan = Plan {
        expectation: &expectation,
        types: &types,
        repository: repository.as_ref(),
        verifier: &verifier,
        now,
    };
    let mut exit = Exit::Ok;
    let mut outcomes = Vec::new();
    for input in &args.images {
        let progress = Progress::spinner(&format!("verifying {input}"));
        let o = rt.block_on(verify_one(&src, input, &plan));
        drop(progress);
        exit = exit.worst(o.exit());
        if args.output != "json" {
            print_text(&o);
        } else if let Some(f) = &o.failure {
            f.eprint("verify image");
        }
        outcomes.push(o);
    }
    if args.output == "json" {
        let all: Vec<Value> = outcomes.iter().map(ImageOutcome::to_json).collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&all).unwrap_or_else(|_| "[]".into())
        );
    }
    Ok(exit)
}
