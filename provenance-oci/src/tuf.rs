//! Trust-root refresh over TUF (cargo feature `tuf`).
//!
//! A [`TrustRootUpdater`] runs the TUF client workflow against a TUF repository (Sigstore's
//! public-good one, [`PUBLIC_GOOD_URL`], or any other) and yields its `trusted_root.json`
//! target as a [`provenance_core::TrustRoot`]:
//!
//! 1. from a pinned initial `root.json` (shipped with the program: [`PUBLIC_GOOD_ROOT`] for
//!    Sigstore), walk the root chain `N+1.root.json`, `N+2.root.json`, ... each signed by a
//!    threshold of the previous root's keys *and* of its own;
//! 2. `timestamp.json` -> the snapshot version it pins -> `N.snapshot.json` -> the targets
//!    version the snapshot pins -> `N.targets.json`, each checked for its role's signature
//!    threshold, its expiry against `now`, and a version that never goes back from what the
//!    cache folder already trusts (rollback protection across runs);
//! 3. the `trusted_root.json` target, whose length and SHA-256 must match the targets
//!    metadata, parsed by [`TrustRoot::from_trusted_root_json`].
//!
//! The verification state machine is `sigstore-tuf` (the TUF client of sigstore-rust, the
//! same release train as the bundle verifier `provenance-core` uses); this module gives it the
//! transport (this crate's reqwest client: HTTPS unless plain HTTP is allowed explicitly,
//! connect/request/operation deadlines, size limits) and the cache folder, and maps its
//! failures onto [`Error::TrustRootUpdate`] with one code per kind of failure.
//!
//! Nothing here runs implicitly: verification never refreshes a trust root. A refresh is an
//! explicit [`TrustRootUpdater::refresh`] call with `now` as an argument; when it fails, the
//! trust root from the last successful refresh stays the current one, and the error says why.
//!
//! ```no_run
//! use provenance_core::UnixTime;
//! use provenance_oci::tuf::{TrustRootUpdater, TufConfig};
//!
//! # async fn run(now: UnixTime) -> Result<(), provenance_oci::Error> {
//! let mut updater = TrustRootUpdater::new(TufConfig::public_good("/var/cache/provenance/tuf"))?;
//! let update = updater.refresh(now).await?;
//! let root = &update.trust_root;               // hand it to provenance_core::verify::Verifier
//! # let _ = root;
//! # Ok(()) }
//! ```

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use provenance_core::{Digest, TrustRoot, UnixTime};
use sigstore_tuf::transport::FetchFuture;
use sigstore_tuf::{FileStore, Repository, StoreRepository, Updater, UpdaterConfig};

use crate::error::{Error, TufFailure};

/// The base URL of Sigstore's public-good TUF repository.
pub const PUBLIC_GOOD_URL: &str = "https://tuf-repo-cdn.sigstore.dev";

/// The initial (pinned) `root.json` of Sigstore's public-good TUF repository: version 16,
/// expiring 2027-04-22, ECDSA P-256 keys, root and targets threshold 3 of 5. Later roots are
/// reached from it by the root-rotation chain; it only has to be replaced if the repository's
/// root keys all change at once or the chain can no longer be walked from it.
pub const PUBLIC_GOOD_ROOT: &[u8] = include_bytes!("../data/sigstore-public-good-root.json");

/// The target that holds Sigstore's trust root.
pub const TRUSTED_ROOT_TARGET: &str = "trusted_root.json";

/// Where and how a [`TrustRootUpdater`] refreshes.
#[derive(Clone)]
#[non_exhaustive]
pub struct TufConfig {
    /// Metadata base URL (`<url>/timestamp.json`, `<url>/N.root.json`, ...).
    pub metadata_url: String,
    /// Targets base URL; `None` means `<metadata_url>/targets`.
    pub targets_url: Option<String>,
    /// The pinned initial `root.json` bytes.
    pub initial_root: Vec<u8>,
    /// Folder for verified metadata and the verified target (created when missing). What is
    /// read from it is verified again from `initial_root` on every run.
    pub cache_dir: PathBuf,
    /// The target to read (default [`TRUSTED_ROOT_TARGET`]).
    pub target: String,
    /// Allow `http://` URLs (tests, loopback mirrors). Off by default.
    pub allow_http: bool,
    /// Connection deadline.
    pub connect_timeout: Duration,
    /// Deadline for one request, headers to last byte.
    pub request_timeout: Duration,
    /// Deadline for a whole refresh (all requests).
    pub operation_timeout: Duration,
    /// Largest `trusted_root.json` accepted (its length is also pinned by the metadata).
    pub max_target_bytes: u64,
    /// User agent sent with every request.
    pub user_agent: String,
}

impl std::fmt::Debug for TufConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TufConfig")
            .field("metadata_url", &self.metadata_url)
            .field("targets_url", &self.targets_url)
            .field("initial_root_bytes", &self.initial_root.len())
            .field("cache_dir", &self.cache_dir)
            .field("target", &self.target)
            .field("allow_http", &self.allow_http)
            .finish_non_exhaustive()
    }
}

impl TufConfig {
    /// A repository at `metadata_url` (targets under `<metadata_url>/targets`), pinned to
    /// `initial_root`, caching into `cache_dir`; HTTPS only, default deadlines.
    pub fn new(
        metadata_url: impl Into<String>,
        initial_root: impl Into<Vec<u8>>,
        cache_dir: impl Into<PathBuf>,
    ) -> Self {
        TufConfig {
            metadata_url: metadata_url.into(),
            targets_url: None,
            initial_root: initial_root.into(),
            cache_dir: cache_dir.into(),
            target: TRUSTED_ROOT_TARGET.to_owned(),
            allow_http: false,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            operation_timeout: Duration::from_secs(120),
            max_target_bytes: 4 << 20,
            user_agent: concat!("provenance-oci/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }

    /// Sigstore's public-good repository ([`PUBLIC_GOOD_URL`], [`PUBLIC_GOOD_ROOT`]).
    pub fn public_good(cache_dir: impl Into<PathBuf>) -> Self {
        TufConfig::new(PUBLIC_GOOD_URL, PUBLIC_GOOD_ROOT, cache_dir)
    }

    fn targets_base(&self) -> String {
        match &self.targets_url {
            Some(t) => t.clone(),
            None => format!("{}/targets", self.metadata_url.trim_end_matches('/')),
        }
    }
}

/// The outcome of a successful refresh.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TrustRootUpdate {
    /// The trust root read from the verified target.
    pub trust_root: TrustRoot,
    /// SHA-256 of the target's bytes.
    pub target_digest: Digest,
    /// Version of the TUF root the refresh ended on (higher than the pinned one after
    /// rotations).
    pub root_version: u64,
    /// Version of the timestamp metadata.
    pub timestamp_version: u64,
    /// Version of the snapshot metadata.
    pub snapshot_version: u64,
    /// Version of the top-level targets metadata.
    pub targets_version: u64,
    /// Earliest expiry of the metadata this result rests on; refresh before it.
    pub expires: UnixTime,
    /// False when the target is byte-identical to the previous successful refresh's.
    pub changed: bool,
}

/// Refreshes a trust root from a TUF repository; see the [module docs](self).
#[derive(Debug)]
pub struct TrustRootUpdater {
    config: TufConfig,
    http: reqwest::Client,
    current: Option<TrustRootUpdate>,
}

fn check_url(url: &str, allow_http: bool) -> Result<(), Error> {
    if url.starts_with("https://") {
        return Ok(());
    }
    if let Some(rest) = url.strip_prefix("http://") {
        if allow_http {
            return Ok(());
        }
        return Err(Error::InsecureNotAllowed {
            registry: rest.split('/').next().unwrap_or(rest).to_owned(),
        });
    }
    Err(Error::Config {
        message: format!("TUF repository URL {url:?} is neither https:// nor http://"),
    })
}

fn to_jiff(now: UnixTime) -> Result<jiff::Timestamp, Error> {
    jiff::Timestamp::from_second(now.0).map_err(|e| Error::Config {
        message: format!("time {} out of range: {e}", now.0),
    })
}

impl TrustRootUpdater {
    /// Checks the configuration (URL schemes, the initial root parses and is signed by a
    /// threshold of its own root keys), creates the cache folder when missing (rollback
    /// protection across runs rests on it) and builds the HTTP client. No request is sent.
    pub fn new(config: TufConfig) -> Result<Self, Error> {
        check_url(&config.metadata_url, config.allow_http)?;
        check_url(&config.targets_base(), config.allow_http)?;
        sigstore_tuf::TrustedMetadataSet::from_root(&config.initial_root)
            .map_err(|e| map_tuf_error(&config.metadata_url, "initial root", e, None))?;
        std::fs::create_dir_all(&config.cache_dir).map_err(|e| Error::io(&config.cache_dir, &e))?;
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .read_timeout(config.request_timeout)
            .user_agent(config.user_agent.clone())
            .redirect(crate::registry::no_downgrade_redirects())
            .build()
            .map_err(|e| Error::Config {
                message: format!("HTTP client: {e}"),
            })?;
        Ok(TrustRootUpdater {
            config,
            http,
            current: None,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &TufConfig {
        &self.config
    }

    /// The result of the last successful refresh (or [`load_cached`](Self::load_cached)),
    /// if any. A failed refresh leaves it unchanged.
    pub fn current(&self) -> Option<&TrustRootUpdate> {
        self.current.as_ref()
    }

    /// The current trust root, if a refresh has succeeded.
    pub fn trust_root(&self) -> Option<&TrustRoot> {
        self.current.as_ref().map(|c| &c.trust_root)
    }

    fn updater_config(&self) -> UpdaterConfig {
        let mut c = UpdaterConfig::default();
        c.target_max_length = self.config.max_target_bytes;
        c
    }

    /// Runs the TUF client workflow against the repository at `now` and, when every check
    /// passes, makes the verified target the current trust root. On failure the current trust
    /// root (if any) is kept and the error says which check failed
    /// ([`Error::TrustRootUpdate`], or a network / timeout / HTTP error).
    pub async fn refresh(&mut self, now: UnixTime) -> Result<&TrustRootUpdate, Error> {
        let stash = Arc::new(Mutex::new(None));
        let repo = HttpRepository {
            http: self.http.clone(),
            metadata_base: format!("{}/", self.config.metadata_url.trim_end_matches('/')),
            targets_base: format!("{}/", self.config.targets_base().trim_end_matches('/')),
            request_timeout: self.config.request_timeout,
            stash: stash.clone(),
        };
        let deadline = self.config.operation_timeout;
        let url = self.config.metadata_url.clone();
        let run = self.run(repo, now, Some(stash));
        let update = tokio::time::timeout(deadline, run)
            .await
            .map_err(|_| Error::Timeout {
                registry: url,
                operation: "TUF refresh".into(),
                after_ms: deadline.as_millis() as u64,
            })??;
        Ok(self.adopt(update))
    }

    /// Like [`refresh`](Self::refresh), but from the cache folder alone, with no network: the
    /// metadata and target a previous refresh stored are verified again from the pinned
    /// initial root at `now` (signatures, versions, expiry, hashes). For a process that
    /// starts without network, or must not wait for it.
    pub async fn load_cached(&mut self, now: UnixTime) -> Result<&TrustRootUpdate, Error> {
        let repo = StoreRepository::new(FileStore::new(self.config.cache_dir.clone()));
        let update = self.run(repo, now, None).await?;
        Ok(self.adopt(update))
    }

    fn adopt(&mut self, mut update: TrustRootUpdate) -> &TrustRootUpdate {
        update.changed = self
            .current
            .as_ref()
            .is_none_or(|c| c.target_digest != update.target_digest);
        self.current.insert(update)
    }

    async fn run(
        &self,
        repo: impl Repository + 'static,
        now: UnixTime,
        stash: Option<Arc<Mutex<Option<Error>>>>,
    ) -> Result<TrustRootUpdate, Error> {
        let url = self.config.metadata_url.as_str();
        let when = to_jiff(now)?;
        let fail = |stage: &str, e: sigstore_tuf::Error| {
            let net = stash
                .as_ref()
                .and_then(|s| s.lock().ok().and_then(|mut g| g.take()));
            map_tuf_error(url, stage, e, net)
        };
        let mut updater = Updater::new(repo, &self.config.initial_root)
            .map_err(|e| fail("initial root", e))?
            .with_config(self.updater_config())
            .with_store(FileStore::new(self.config.cache_dir.clone()));
        updater
            .refresh(when)
            .await
            .map_err(|e| fail("metadata", e))?;
        let target = self.config.target.clone();
        let bytes = updater
            .get_target(&target, when)
            .await
            .map_err(|e| fail(&target, e))?;
        let trust_root =
            TrustRoot::from_trusted_root_json(&bytes).map_err(|e| Error::TrustRootUpdate {
                url: url.to_owned(),
                failure: TufFailure::InvalidTarget,
                message: format!("{target}: {e}"),
            })?;
        let trusted = updater.trusted();
        let root = trusted.root();
        let ts = trusted.timestamp();
        let snap = trusted.snapshot();
        let tgt = trusted.targets_role("targets");
        let mut expires = root.expires;
        for e in [
            ts.map(|t| t.expires),
            snap.map(|s| s.expires),
            tgt.map(|t| t.expires),
        ]
        .into_iter()
        .flatten()
        {
            expires = expires.min(e);
        }
        Ok(TrustRootUpdate {
            trust_root,
            target_digest: Digest::sha256_of(&bytes),
            root_version: root.version,
            timestamp_version: ts.map_or(0, |t| t.version),
            snapshot_version: snap.map_or(0, |s| s.version),
            targets_version: tgt.map_or(0, |t| t.version),
            expires: UnixTime(expires.as_second()),
            changed: true,
        })
    }
}

/// Renders an error with its sources.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

fn map_tuf_error(url: &str, stage: &str, e: sigstore_tuf::Error, net: Option<Error>) -> Error {
    use sigstore_tuf::Error as T;
    let failure = match &e {
        T::Expired { .. } => TufFailure::Expired,
        T::Rollback { .. } => TufFailure::Rollback,
        T::ThresholdNotMet { .. } => TufFailure::ThresholdNotMet,
        T::IntegrityMismatch(_) => TufFailure::HashMismatch,
        T::TargetNotFound(_) => TufFailure::TargetNotFound,
        T::Transport { .. } => {
            if let Some(n) = net {
                return n;
            }
            TufFailure::Unavailable
        }
        T::Io { context, source } => {
            return Error::Io {
                path: context.clone(),
                message: source.to_string(),
            };
        }
        _ => TufFailure::InvalidMetadata,
    };
    Error::TrustRootUpdate {
        url: url.to_owned(),
        failure,
        message: format!("{stage}: {}", chain(&e)),
    }
}

/// The transport: this crate's HTTP client, with per-request deadlines and size bounds; the
/// classified error of a failed request is kept in `stash` for the caller.
struct HttpRepository {
    http: reqwest::Client,
    metadata_base: String,
    targets_base: String,
    request_timeout: Duration,
    stash: Arc<Mutex<Option<Error>>>,
}

impl HttpRepository {
    async fn get(&self, url: String, max_length: u64) -> sigstore_tuf::Result<Option<Vec<u8>>> {
        let host = url
            .split("://")
            .nth(1)
            .and_then(|r| r.split('/').next())
            .unwrap_or("")
            .to_owned();
        let fail = |e: Error| {
            let msg = e.to_string();
            if let Ok(mut g) = self.stash.lock() {
                *g = Some(e);
            }
            sigstore_tuf::Error::transport(msg)
        };
        let timeout = self.request_timeout;
        let attempt = async {
            let mut resp = self
                .http
                .get(&url)
                .send()
                .await
                .map_err(|e| Error::Network {
                    registry: host.clone(),
                    message: format!("GET {url}: {}", chain(&e)),
                })?;
            let status = resp.status();
            // 403 as well as 404: object stores answer 403 for a missing object, and the
            // root chain ends at the first missing N.root.json.
            if status == reqwest::StatusCode::NOT_FOUND || status == reqwest::StatusCode::FORBIDDEN
            {
                return Ok(None);
            }
            if !status.is_success() {
                return Err(Error::Registry {
                    registry: host.clone(),
                    operation: format!("GET {url}"),
                    status: status.as_u16(),
                    message: status.canonical_reason().unwrap_or("").to_owned(),
                });
            }
            let too_large = || Error::TooLarge {
                what: url.clone(),
                limit: max_length,
            };
            if resp.content_length().is_some_and(|l| l > max_length) {
                return Err(too_large());
            }
            let mut buf = Vec::new();
            while let Some(chunk) = resp.chunk().await.map_err(|e| Error::Network {
                registry: host.clone(),
                message: format!("reading {url}: {}", chain(&e)),
            })? {
                if (buf.len() + chunk.len()) as u64 > max_length {
                    return Err(too_large());
                }
                buf.extend_from_slice(&chunk);
            }
            Ok(Some(buf))
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(fail(e)),
            Err(_) => Err(fail(Error::Timeout {
                registry: host.clone(),
                operation: format!("GET {url}"),
                after_ms: timeout.as_millis() as u64,
            })),
        }
    }

    fn join(base: &str, name: &str) -> sigstore_tuf::Result<String> {
        // Names come from the trusted metadata or the workflow (N.root.json, hashed target
        // names); refuse anything that could leave the base.
        if name.is_empty()
            || name.starts_with('/')
            || name.contains("..")
            || name.contains("://")
            || name.contains('?')
            || name.contains('#')
        {
            return Err(sigstore_tuf::Error::transport(format!(
                "refusing to fetch {name:?}"
            )));
        }
        Ok(format!("{base}{name}"))
    }
}

impl Repository for HttpRepository {
    fn fetch_metadata<'a>(&'a self, name: &'a str, max_length: u64) -> FetchFuture<'a> {
        Box::pin(async move {
            let url = Self::join(&self.metadata_base, name)?;
            self.get(url, max_length).await
        })
    }

    fn fetch_target<'a>(&'a self, path: &'a str, max_length: u64) -> FetchFuture<'a> {
        Box::pin(async move {
            let url = Self::join(&self.targets_base, path)?;
            self.get(url, max_length).await
        })
    }
}
