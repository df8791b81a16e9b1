//! `provenance trust-root update --cache DIR [--tuf-url URL --tuf-root ROOT] [--out FILE]`:
//! refresh a Sigstore trust root over TUF (by default Sigstore's public-good repository, from
//! the root.json embedded in provenance-oci), verify it, and write the verified
//! `trusted_root.json` where `--trust-root` flags can read it. `--offline` re-verifies what a
//! previous update left in the cache folder without the network. Nothing else in the CLI
//! refreshes trust roots.

use std::path::PathBuf;
use std::process::ExitCode;

use provenance_core::UnixTime;
use provenance_oci::tuf::{PUBLIC_GOOD_URL, TrustRootUpdater, TufConfig};
use serde_json::json;

use crate::ui::{Exit, Failure, Style, TEXT_OR_JSON};

/// Arguments of `provenance trust-root`.
#[derive(clap::Args, Debug)]
pub struct TrustRootArgs {
    #[command(subcommand)]
    command: TrustRootCommand,
}

#[derive(clap::Subcommand, Debug)]
enum TrustRootCommand {
    /// Refresh a trust root from a TUF repository and write the verified trusted_root.json.
    #[command(after_help = crate::ui::EXIT_CODES_HELP)]
    Update(UpdateArgs),
}

/// Arguments of `provenance trust-root update`.
#[derive(clap::Args, Debug)]
struct UpdateArgs {
    /// The TUF repository (metadata base URL). Default: Sigstore's public good instance.
    #[arg(long, value_name = "URL", default_value = PUBLIC_GOOD_URL)]
    tuf_url: String,
    /// The pinned initial root.json for --tuf-url (required for any repository other than
    /// the public-good one, whose root is built in).
    #[arg(long, value_name = "FILE")]
    tuf_root: Option<PathBuf>,
    /// Folder for verified TUF metadata: later updates are checked against it (rollback
    /// protection), and --offline reads it.
    #[arg(long, value_name = "DIR")]
    cache: PathBuf,
    /// Write the verified trusted_root.json here (replaced only when the update succeeds).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Verify the cache folder again without the network.
    #[arg(long)]
    offline: bool,
    /// Allow a plain-HTTP --tuf-url (a loopback mirror, tests).
    #[arg(long)]
    allow_http: bool,
    /// The time to check expiry against (RFC 3339); defaults to the system clock.
    #[arg(long)]
    now: Option<String>,
    /// Output: `text`, or `json` (one object on stdout).
    #[arg(short = 'o', long = "output", default_value = "text", value_parser = TEXT_OR_JSON)]
    output: String,
}

/// Runs `provenance trust-root ...`: exit 0 when the trust root was updated and verified, 1
/// when a TUF check refused it (expired, rollback, threshold, hash), 2 on usage errors, 3 when
/// the repository could not be read.
pub fn run(args: &TrustRootArgs) -> ExitCode {
    match &args.command {
        TrustRootCommand::Update(u) => match update(u) {
            Ok(()) => Exit::Ok.into(),
            Err(f) => {
                if u.output == "json" {
                    println!("{}", json!({"updated": false, "error": f.to_json()}));
                }
                f.eprint("trust-root update");
                f.exit.into()
            }
        },
    }
}

fn update(args: &UpdateArgs) -> Result<(), Failure> {
    let now = match &args.now {
        Some(s) => UnixTime::parse_rfc3339(s)
            .ok_or_else(|| Failure::usage(format!("--now: not an RFC 3339 timestamp: {s}")))?,
        None => UnixTime(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or_default(),
        ),
    };
    let mut config = match &args.tuf_root {
        Some(path) => {
            let root = std::fs::read(path)
                .map_err(|e| Failure::usage(format!("--tuf-root {}: {e}", path.display())))?;
            TufConfig::new(args.tuf_url.clone(), root, args.cache.clone())
        }
        None if args.tuf_url.trim_end_matches('/') == PUBLIC_GOOD_URL => {
            TufConfig::public_good(args.cache.clone())
        }
        None => {
            return Err(Failure::usage(
                "--tuf-root is required with a --tuf-url other than the public-good one",
            ));
        }
    };
    config.allow_http = args.allow_http;
    let mut updater = TrustRootUpdater::new(config).map_err(|e| classify(&args.tuf_url, &e))?;
    let rt = crate::ui::runtime()?;
    let result = rt.block_on(async {
        if args.offline {
            updater.load_cached(now).await.cloned()
        } else {
            updater.refresh(now).await.cloned()
        }
    });
    let update = result.map_err(|e| classify(&args.tuf_url, &e))?;
    if let Some(out) = &args.out {
        let bytes = std::fs::read(args.cache.join("targets/trusted_root.json"))
            .map_err(|e| Failure::usage(format!("reading the verified target: {e}")))?;
        // The cached copy must be the bytes that were just verified.
        if provenance_core::Digest::sha256_of(&bytes) != update.target_digest {
            return Err(Failure::failed(
                "oci.tuf.hash_mismatch",
                "the cached trusted_root.json changed after verification",
            ));
        }
        let tmp = out.with_extension("json.tmp");
        std::fs::write(&tmp, &bytes)
            .and_then(|()| std::fs::rename(&tmp, out))
            .map_err(|e| Failure::usage(format!("--out {}: {e}", out.display())))?;
    }
    let expires = update.expires.to_string();
    if args.output == "json" {
        println!(
            "{}",
            json!({
                "updated": true,
                "url": args.tuf_url,
                "rootVersion": update.root_version,
                "timestampVersion": update.timestamp_version,
                "snapshotVersion": update.snapshot_version,
                "targetsVersion": update.targets_version,
                "trustedRootSha256": update.target_digest.to_string(),
                "trustRootFingerprint": update.trust_root.fingerprint().to_string(),
                "expires": expires,
                "out": args.out.as_ref().map(|p| p.display().to_string()),
            })
        );
    } else {
        let style = Style::stdout();
        println!(
            "{} trust root from {} (TUF root v{}, timestamp v{}, targets v{}); {}; valid until {}{}",
            style.green("verified"),
            args.tuf_url,
            update.root_version,
            update.timestamp_version,
            update.targets_version,
            update.target_digest,
            expires,
            args.out
                .as_ref()
                .map(|p| format!("; written to {}", p.display()))
                .unwrap_or_default()
        );
    }
    Ok(())
}

/// TUF refusals are failed checks (exit 1); everything else is evidence that could not be read
/// (exit 3) or a usage error.
fn classify(url: &str, e: &provenance_oci::Error) -> Failure {
    match e {
        provenance_oci::Error::TrustRootUpdate { .. } => Failure::failed(e.code(), e.to_string())
            .hint("the previous trusted_root.json (if any) was left as it was"),
        provenance_oci::Error::Config { .. } => Failure::usage(e.to_string()),
        provenance_oci::Error::InsecureNotAllowed { .. } => Failure::usage(e.to_string())
            .hint("pass --allow-http if the TUF repository really only speaks plain HTTP"),
        other => Failure::evidence(&format!("TUF repository {url}"), other),
    }
}
