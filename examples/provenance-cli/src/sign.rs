//! `provenance sign image|blob|model|dataset`: key-based signing with cosign's and
//! model_signing's flag names.
//!
//! - `sign image IMAGE --key cosign.key`: cosign's `.sig` signature (or, with
//!   `--new-bundle-format`, cosign 3's Sigstore bundle referrer: a DSSE envelope over the
//!   `https://sigstore.dev/cosign/sign/v1` Statement), into the registry or an OCI layout;
//!   with `--keyless` (a Fulcio certificate) or `--tlog-upload`, the signature is logged in
//!   Rekor, verified, and written with cosign's certificate and SET annotations.
//! - `sign blob FILE --key KEY --bundle OUT [--output-signature SIG]`: `cosign sign-blob`;
//!   with `--keyless` (and `--identity-token`, `--fulcio-url`, `--rekor-url`,
//!   `--timestamp-server-url`, `--trust-root`) a Fulcio certificate and a Rekor entry instead of
//!   a key, the bundle verified before it is written (`crate::keyless`).
//! - `sign model MODEL_PATH --private_key KEY [--signature model.sig]`: `model_signing sign
//!   key` (with `--signing_certificate` and `--certificate_chain`: `sign certificate`; with
//!   `--keyless`: `sign sigstore`, a Fulcio certificate and a Rekor entry).
//! - `sign dataset PATH --key KEY --bundle OUT`: an in-toto attestation whose subject is the
//!   dataset digest.
//!
//! With a key nothing is uploaded to a transparency log: verifiers must accept key-only material
//! (`--insecure-ignore-tlog`, Kyverno `rekor: {ignoreTlog: true}`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use base64::Engine;
use provenance_core::sign::{CertifiedKey, Signer, SigningKey, bundle, simple_signing_payload};
use provenance_oci::model::{
    Method, SignModelOptions, VerifyOptions, dataset_statement, sign_dataset, sign_model,
};
use provenance_oci::sign::{
    SignOptions, attach_bundle_referrer_to, attach_signature_from_bundle, cosign_sign_statement,
    index_children, sign_image, sign_image_bundle_with,
};
use serde_json::json;

use crate::image_source::{SourceArgs, parse_image, signature_repository};
use crate::signing::{Target, load_key, resolve, with_publisher};
use crate::ui::{Failure, runtime};

/// Arguments of `provenance sign`.
#[derive(clap::Args, Debug)]
#[command(after_help = crate::ui::EXIT_CODES_HELP)]
pub struct SignArgs {
    #[command(subcommand)]
    what: What,
}

#[derive(clap::Subcommand, Debug)]
enum What {
    /// Sign a container image (cosign `sign`: `--key`, logged with `--tlog-upload`, or
    /// `--keyless`).
    Image(ImageArgs),
    /// Sign a file into a Sigstore bundle (cosign `sign-blob --bundle`: `--key`, logged with
    /// `--tlog-upload`, or `--keyless`).
    Blob(BlobArgs),
    /// Sign a model folder (OpenSSF model-signing v1.0, as `model_signing sign
    /// key|certificate|sigstore`: `--private-key`, `--signing-certificate`, or `--keyless`).
    Model(ModelArgs),
    /// Sign a dataset (file or folder) as the subject of an in-toto attestation, with a key
    /// or keylessly (`--keyless`).
    Dataset(DatasetArgs),
}

/// The private key flags.
#[derive(clap::Args, Debug)]
struct KeyArgs {
    /// Private key: cosign.key (encrypted; password from PROVENANCE_PASSWORD, COSIGN_PASSWORD
    /// or the terminal) or a PKCS#8 / SEC1 PEM.
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// The key's password. Deprecated: visible in the process list; prefer PROVENANCE_PASSWORD
    /// or COSIGN_PASSWORD, or the terminal prompt.
    #[arg(long, value_name = "PASSWORD")]
    password: Option<String>,
}

#[derive(clap::Args, Debug)]
struct ImageArgs {
    /// The image, as written in a Pod spec (a tag is resolved once; the digest is signed).
    #[arg(value_name = "IMAGE")]
    image: String,
    /// Private key: cosign.key (encrypted; password from PROVENANCE_PASSWORD, COSIGN_PASSWORD
    /// or the terminal) or a PKCS#8 / SEC1 PEM. Required unless --keyless.
    #[arg(long, value_name = "FILE", required_unless_present = "keyless")]
    key: Option<PathBuf>,
    /// The key's password. Deprecated: visible in the process list; prefer PROVENANCE_PASSWORD
    /// or COSIGN_PASSWORD, or the terminal prompt.
    #[arg(long, value_name = "PASSWORD")]
    password: Option<String>,
    #[command(flatten)]
    keyless: crate::keyless::KeylessArgs,
    /// `key=value` annotations, signed in the payload (cosign `-a`).
    #[arg(short = 'a', long = "annotations", value_name = "KEY=VALUE")]
    annotations: Vec<String>,
    /// Write a Sigstore bundle referrer as cosign 3 does (`--new-bundle-format`: a DSSE
    /// envelope over the `https://sigstore.dev/cosign/sign/v1` Statement naming the digest;
    /// logged as a `dsse` entry with --keyless or --tlog-upload) instead of the `.sig` tag.
    #[arg(long)]
    new_bundle_format: bool,
    /// When the image is an index (multi-platform), sign every platform manifest too, not
    /// just the index (cosign `--recursive`).
    #[arg(long)]
    recursive: bool,
    #[command(flatten)]
    source: SourceArgs,
}

#[derive(clap::Args, Debug)]
struct BlobArgs {
    /// The file to sign.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Private key: cosign.key (encrypted; password from PROVENANCE_PASSWORD, COSIGN_PASSWORD
    /// or the terminal) or a PKCS#8 / SEC1 PEM. Required unless --keyless.
    #[arg(long, value_name = "FILE", required_unless_present = "keyless")]
    key: Option<PathBuf>,
    /// The key's password. Deprecated: visible in the process list; prefer PROVENANCE_PASSWORD
    /// or COSIGN_PASSWORD, or the terminal prompt.
    #[arg(long, value_name = "PASSWORD")]
    password: Option<String>,
    #[command(flatten)]
    keyless: crate::keyless::KeylessArgs,
    /// Write the Sigstore bundle here.
    #[arg(long, value_name = "FILE")]
    bundle: Option<PathBuf>,
    /// Write the base64 signature here.
    #[arg(long, value_name = "FILE")]
    output_signature: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
struct ModelArgs {
    /// The model folder.
    #[arg(value_name = "MODEL_PATH")]
    model_path: PathBuf,
    /// Private key (PEM; cosign.key accepted too).
    #[arg(
        long = "private-key",
        visible_aliases = ["private_key", "key"],
        value_name = "FILE",
        required_unless_present = "keyless"
    )]
    private_key: Option<PathBuf>,
    #[command(flatten)]
    keyless: crate::keyless::KeylessArgs,
    /// The key's password. Deprecated: visible in the process list; prefer PROVENANCE_PASSWORD
    /// or COSIGN_PASSWORD, or the terminal prompt.
    #[arg(long, value_name = "PASSWORD")]
    password: Option<String>,
    /// Signing certificate (PEM) for the key: `model_signing sign certificate`.
    #[arg(
        long = "signing-certificate",
        visible_alias = "signing_certificate",
        value_name = "FILE"
    )]
    signing_certificate: Option<PathBuf>,
    /// Intermediate certificates (PEM), repeatable.
    #[arg(
        long = "certificate-chain",
        visible_alias = "certificate_chain",
        value_name = "FILE",
        requires = "signing_certificate"
    )]
    certificate_chain: Vec<PathBuf>,
    /// Where to write the signature.
    #[arg(long, value_name = "SIGNATURE_PATH", default_value = "model.sig")]
    signature: PathBuf,
    /// Paths to leave out (repeatable), relative to the current directory or absolute, as
    /// model_signing reads them (`--ignore-paths model/logs`); paths outside the model folder
    /// ignore nothing.
    #[arg(long = "ignore-paths", value_name = "IGNORE_PATHS", num_args = 1..)]
    ignore_paths: Vec<PathBuf>,
    /// Sign `.git`, `.gitattributes`, `.github`, `.gitignore` too.
    #[arg(long = "no-ignore-git-paths")]
    no_ignore_git_paths: bool,
    /// Follow symlinks that stay inside the model folder.
    #[arg(long = "allow-symlinks", visible_alias = "allow_symlinks")]
    allow_symlinks: bool,
    /// Hash files in shards of this many bytes (`shards` serialization) instead of whole.
    #[arg(long, value_name = "BYTES")]
    shard_size: Option<u64>,
    /// Hashing threads (default: all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

#[derive(clap::Args, Debug)]
struct DatasetArgs {
    /// The dataset file or folder.
    #[arg(value_name = "PATH")]
    path: PathBuf,
    /// Private key: cosign.key (encrypted; password from PROVENANCE_PASSWORD, COSIGN_PASSWORD
    /// or the terminal) or a PKCS#8 / SEC1 PEM. Required unless --keyless.
    #[arg(long, value_name = "FILE", required_unless_present = "keyless")]
    key: Option<PathBuf>,
    /// The key's password. Deprecated: visible in the process list; prefer PROVENANCE_PASSWORD
    /// or COSIGN_PASSWORD, or the terminal prompt.
    #[arg(long, value_name = "PASSWORD")]
    password: Option<String>,
    #[command(flatten)]
    keyless: crate::keyless::KeylessArgs,
    /// Write the Sigstore bundle here.
    #[arg(long, value_name = "FILE")]
    bundle: PathBuf,
    /// The subject name (default: the file or folder name).
    #[arg(long)]
    name: Option<String>,
    /// Predicate JSON file (default: an empty object of --type).
    #[arg(long, value_name = "FILE")]
    predicate: Option<PathBuf>,
    /// Predicate type URI.
    #[arg(long = "type", default_value = provenance_attest::croissant::DATASET_PROVENANCE_V1)]
    predicate_type: String,
}

/// Runs `provenance sign`.
pub fn run(args: SignArgs) -> ExitCode {
    let (name, r) = match args.what {
        What::Image(a) => ("sign image", image(a)),
        What::Blob(a) => ("sign blob", blob(a)),
        What::Model(a) => ("sign model", model(a)),
        What::Dataset(a) => ("sign dataset", dataset(a)),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            f.eprint(name);
            f.exit.into()
        }
    }
}

fn annotations(list: &[String]) -> Result<BTreeMap<String, String>, Failure> {
    list.iter()
        .map(|a| {
            a.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or_else(|| Failure::usage(format!("-a {a}: expected KEY=VALUE")))
        })
        .collect()
}

fn image(a: ImageArgs) -> Result<(), Failure> {
    let (logged, key) =
        crate::signing::signer_flags(&a.keyless, a.key.as_deref(), a.password.as_deref())?;
    let image = parse_image(&a.image)?;
    let options = SignOptions {
        annotations: annotations(&a.annotations)?,
        repository: signature_repository(&a.source)?,
    };
    let target = Target::open(&a.source)?;
    let rt = runtime()?;
    let written = rt.block_on(async {
        let (signer, key) = if logged {
            let s = crate::keyless::LoggedSigner::prepare(&a.keyless, key).await?;
            (Some(s), None)
        } else {
            (None, key)
        };
        with_publisher!(&target, |p| {
            let digest = resolve(p, &image).await?;
            let mut digests = vec![digest.clone()];
            if a.recursive {
                let children = index_children(p, &image, &digest)
                    .await
                    .map_err(|e| Failure::evidence(&format!("reading {image}"), &e))?;
                digests.extend(children);
            }
            let mut written = Vec::new();
            for d in &digests {
                let one = Signing {
                    image: &image,
                    digest: d,
                    options: &options,
                    bundle_format: a.new_bundle_format,
                };
                written.push(one.run(p, signer.as_ref(), key.as_ref()).await?);
            }
            Ok::<_, Failure>(written)
        })
    })?;
    for (out, how) in written {
        eprintln!(
            "signed {image} {how}; verified and written to {}",
            out.reference
        );
        println!("{}", out.reference);
    }
    Ok(())
}

/// One image digest to sign.
struct Signing<'a> {
    image: &'a provenance_core::ImageReference,
    digest: &'a provenance_core::Digest,
    options: &'a SignOptions,
    bundle_format: bool,
}

impl Signing<'_> {
    /// Signs with the logged signer (keyless, or a key with Rekor) or the key alone; returns
    /// what was written and a description of the signer.
    async fn run<P: provenance_oci::Publisher>(
        &self,
        p: &P,
        signer: Option<&crate::keyless::LoggedSigner>,
        key: Option<&SigningKey>,
    ) -> Result<(provenance_oci::sign::Published, String), Failure> {
        let (image, digest) = (self.image, self.digest);
        let failed = |e: provenance_oci::Error| Failure::evidence(&format!("signing {image}"), &e);
        match (signer, key) {
            (Some(s), _) => {
                let (signed, r) = if self.bundle_format {
                    let statement = cosign_sign_statement(digest, &self.options.annotations);
                    let signed = s.sign_in_toto(&statement).await?;
                    let r = attach_bundle_referrer_to(
                        p,
                        image,
                        digest,
                        &signed.json,
                        self.options.repository.as_ref(),
                    )
                    .await;
                    (signed, r)
                } else {
                    let payload =
                        simple_signing_payload(&image.name(), digest, &self.options.annotations);
                    let signed = s.sign_blob(&payload).await?;
                    let r = attach_signature_from_bundle(
                        p,
                        image,
                        digest,
                        &payload,
                        &signed.json,
                        s.chain(),
                        self.options.repository.as_ref(),
                    )
                    .await;
                    (signed, r)
                };
                Ok((r.map_err(failed)?, crate::keyless::describe(&signed)))
            }
            (None, Some(key)) => {
                let r = if self.bundle_format {
                    sign_image_bundle_with(
                        p,
                        image,
                        digest,
                        key,
                        self.options,
                        &bundle::Options::default(),
                    )
                    .await
                } else {
                    sign_image(p, image, digest, key, self.options).await
                };
                Ok((
                    r.map_err(failed)?,
                    String::from("with the key (no log entry)"),
                ))
            }
            (None, None) => Err(Failure::usage("sign image needs --key FILE or --keyless")),
        }
    }
}

fn write(path: &PathBuf, bytes: &[u8]) -> Result<(), Failure> {
    std::fs::write(path, bytes).map_err(|e| Failure::usage(format!("{}: {e}", path.display())))
}

fn blob(a: BlobArgs) -> Result<(), Failure> {
    if a.keyless.transparency(a.key.is_some())? {
        return blob_logged(&a);
    }
    let Some(k) = &a.key else {
        return Err(Failure::usage("sign blob needs --key FILE or --keyless"));
    };
    let key = load_key(k, a.password.as_deref())?;
    let bytes =
        std::fs::read(&a.file).map_err(|e| Failure::usage(format!("{}: {e}", a.file.display())))?;
    if a.bundle.is_none() && a.output_signature.is_none() {
        return Err(Failure::usage("nothing to write")
            .hint("pass --bundle FILE and/or --output-signature FILE"));
    }
    let b = bundle::message_signature(&key, &bytes)
        .map_err(|e| Failure::usage(format!("signing: {e} [{}]", e.code())))?;
    if let Some(p) = &a.bundle {
        write(p, &b)?;
    }
    if let Some(p) = &a.output_signature {
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap_or_default();
        let sig = v["messageSignature"]["signature"]
            .as_str()
            .unwrap_or_default();
        write(p, sig.as_bytes())?;
    }
    println!(
        "{}",
        base64::engine::general_purpose::STANDARD.encode(key.public_key().key_id().as_bytes())
    );
    Ok(())
}

/// `sign blob FILE --keyless --bundle OUT` (Fulcio certificate) or `--key K --tlog-upload`:
/// a Rekor entry, and the bundle verified against the trust root before it is written (see
/// docs/signing-keyless.md).
fn blob_logged(a: &BlobArgs) -> Result<(), Failure> {
    let Some(out) = &a.bundle else {
        return Err(Failure::usage(
            "--keyless and --tlog-upload need --bundle FILE",
        ));
    };
    let key = a
        .key
        .as_ref()
        .map(|k| load_key(k, a.password.as_deref()))
        .transpose()?;
    let (line, summary) =
        runtime()?.block_on(crate::keyless::sign_blob(&a.keyless, key, &a.file, out))?;
    if let Some(p) = &a.output_signature {
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out).unwrap_or_default()).unwrap_or_default();
        let sig = v["messageSignature"]["signature"]
            .as_str()
            .unwrap_or_default();
        write(p, sig.as_bytes())?;
    }
    eprintln!("{line}");
    println!("{summary}");
    Ok(())
}

fn model(a: ModelArgs) -> Result<(), Failure> {
    if a.keyless.tlog_upload {
        return Err(Failure::usage(
            "--tlog-upload: model signatures with a key carry no log entry (as `model_signing sign key`); use --keyless for a logged signature",
        ));
    }
    a.keyless.transparency(false)?;
    if a.keyless.keyless {
        return model_keyless(&a);
    }
    let Some(private_key) = &a.private_key else {
        return Err(Failure::usage(
            "sign model needs --private-key FILE or --keyless",
        ));
    };
    let key: SigningKey = load_key(private_key, a.password.as_deref())?;
    let signer: Box<dyn Signer> = match &a.signing_certificate {
        None => Box::new(key),
        Some(cert) => {
            let mut pem_text = std::fs::read_to_string(cert)
                .map_err(|e| Failure::usage(format!("{}: {e}", cert.display())))?;
            for c in &a.certificate_chain {
                pem_text.push_str(
                    &std::fs::read_to_string(c)
                        .map_err(|e| Failure::usage(format!("{}: {e}", c.display())))?,
                );
            }
            Box::new(CertifiedKey::from_pem_chain(key, &pem_text).map_err(|e| {
                Failure::usage(format!("--signing-certificate: {e} [{}]", e.code()))
            })?)
        }
    };
    let opts = model_options(&a)?;
    let signed = sign_model(&a.model_path, &a.signature, signer.as_ref(), &opts)
        .map_err(|e| Failure::usage(format!("{}: {e} [{}]", a.model_path.display(), e.code())))?;
    println!(
        "{}",
        json!({
            "signature": signed.signature,
            "rootDigest": signed.root_digest.to_string(),
            "files": signed.manifest.files,
            "bytes": signed.manifest.bytes,
        })
    );
    Ok(())
}

fn model_options(a: &ModelArgs) -> Result<SignModelOptions, Failure> {
    Ok(SignModelOptions {
        ignore_paths: crate::verify_model::ignore_paths_from_cwd(&a.model_path, &a.ignore_paths)?,
        ignore_git_paths: !a.no_ignore_git_paths,
        allow_symlinks: a.allow_symlinks,
        method: match a.shard_size {
            Some(n) if n > 0 => Method::Shards(n),
            Some(_) => return Err(Failure::usage("--shard-size must be positive")),
            None => Method::Files,
        },
        threads: a.threads,
        ..Default::default()
    })
}

/// `sign model MODEL_PATH --keyless`: the model-signing Statement signed with a Fulcio
/// certificate and logged in Rekor; the bundle verified before it is written.
fn model_keyless(a: &ModelArgs) -> Result<(), Failure> {
    if a.private_key.is_some() || a.signing_certificate.is_some() {
        return Err(Failure::usage(
            "--keyless excludes --private-key and --signing-certificate",
        ));
    }
    let opts = model_options(a)?;
    let (manifest, payload) =
        provenance_oci::model::model_payload(&a.model_path, &a.signature, &opts).map_err(|e| {
            Failure::usage(format!("{}: {e} [{}]", a.model_path.display(), e.code()))
        })?;
    let (line, summary) = runtime()?.block_on(crate::keyless::sign_statement(
        &a.keyless,
        &payload,
        &a.signature,
    ))?;
    eprintln!("{line}");
    println!(
        "{}",
        json!({
            "signature": a.signature,
            "rootDigest": manifest.root_digest().to_string(),
            "files": manifest.files,
            "bytes": manifest.bytes,
            "keyless": summary,
        })
    );
    Ok(())
}

fn dataset(a: DatasetArgs) -> Result<(), Failure> {
    if a.keyless.tlog_upload {
        return Err(Failure::usage(
            "--tlog-upload: dataset signatures with a key carry no log entry; use --keyless for a logged signature",
        ));
    }
    a.keyless.transparency(false)?;
    if a.keyless.keyless && a.key.is_some() {
        return Err(Failure::usage("--keyless excludes --key"));
    }
    let predicate = match &a.predicate {
        Some(p) => {
            let bytes =
                std::fs::read(p).map_err(|e| Failure::usage(format!("{}: {e}", p.display())))?;
            serde_json::from_slice(&bytes)
                .map_err(|e| Failure::usage(format!("{}: not JSON: {e}", p.display())))?
        }
        None => json!({}),
    };
    let name = a.name.clone().unwrap_or_else(|| {
        a.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "dataset".into())
    });
    let input = |e: provenance_oci::model::ModelError| Failure {
        code: e.code().to_owned(),
        ..Failure::usage(format!("{}: {e}", a.path.display()))
    };
    if a.keyless.keyless {
        // The Statement signed with a Fulcio certificate and logged in Rekor; the bundle is
        // verified before it is written.
        let (digest, statement) = dataset_statement(
            &a.path,
            &name,
            &a.predicate_type,
            predicate,
            &VerifyOptions::default(),
        )
        .map_err(input)?;
        let (line, summary) = runtime()?.block_on(crate::keyless::sign_statement(
            &a.keyless, &statement, &a.bundle,
        ))?;
        eprintln!("{line}");
        println!(
            "{}",
            json!({ "digest": digest.to_string(), "bundle": a.bundle, "keyless": summary })
        );
        return Ok(());
    }
    let Some(key_path) = &a.key else {
        return Err(Failure::usage("sign dataset needs --key FILE or --keyless"));
    };
    let key = load_key(key_path, a.password.as_deref())?;
    let (digest, b) = sign_dataset(
        &a.path,
        &name,
        &a.predicate_type,
        predicate,
        &key,
        &VerifyOptions::default(),
    )
    .map_err(input)?;
    write(&a.bundle, &b)?;
    println!(
        "{}",
        json!({ "digest": digest.to_string(), "bundle": a.bundle })
    );
    Ok(())
}
