//! Registry credentials: explicit settings, Docker `config.json` (`auths`, `credHelpers`,
//! `credsStore`, helpers run as processes with a timeout).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tokio::io::AsyncWriteExt;

use crate::error::Error;

/// Credentials for one registry.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Credentials {
    /// No credentials (anonymous pulls; anonymous bearer tokens are still requested).
    Anonymous,
    /// Username and password (HTTP Basic, or exchanged at the bearer-token endpoint).
    Basic {
        /// User name.
        username: String,
        /// Password or access token.
        password: String,
    },
    /// A registry bearer token sent as is (`registrytoken` in Docker's config).
    Bearer(String),
    /// An OAuth2 refresh token (`identitytoken` in Docker's config, or a credential helper's
    /// answer with username `<token>`): exchanged at the Bearer challenge's realm with the
    /// distribution token specification's OAuth2 flow (`POST`, `grant_type=refresh_token`)
    /// for an access token. Never sent to the registry itself.
    IdentityToken(String),
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Anonymous => f.write_str("Anonymous"),
            Credentials::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
            Credentials::Bearer(_) => f.write_str("Bearer(<redacted>)"),
            Credentials::IdentityToken(_) => f.write_str("IdentityToken(<redacted>)"),
        }
    }
}

#[derive(Debug, Clone, Default, serde::Deserialize)]
struct AuthEntry {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
    identitytoken: Option<String>,
    registrytoken: Option<String>,
}

/// A Docker / Podman `config.json`: static `auths`, per-registry `credHelpers` and a default
/// `credsStore`. Helpers (`docker-credential-<name> get`) run only when a registry asks for
/// credentials, with a timeout.
#[derive(Clone, Default)]
pub struct DockerConfig {
    auths: BTreeMap<String, AuthEntry>,
    cred_helpers: BTreeMap<String, String>,
    creds_store: Option<String>,
    helper_timeout: Duration,
    helper_dir: Option<PathBuf>,
}

impl fmt::Debug for DockerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DockerConfig")
            .field("auths", &self.auths.keys().collect::<Vec<_>>())
            .field("cred_helpers", &self.cred_helpers)
            .field("creds_store", &self.creds_store)
            .finish()
    }
}

#[derive(serde::Deserialize)]
struct RawConfig {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: BTreeMap<String, String>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
}

#[derive(serde::Deserialize)]
struct HelperOutput {
    #[serde(rename = "Username", default)]
    username: String,
    #[serde(rename = "Secret", default)]
    secret: String,
}

/// Largest `config.json` read.
const MAX_CONFIG_BYTES: usize = 1 << 20;

/// The key Docker uses for Docker Hub in `config.json`.
const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

fn normalize_key(key: &str) -> String {
    let k = key
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let k = k.split('/').next().unwrap_or(k);
    match k {
        "index.docker.io" | "registry-1.docker.io" | "docker.io" => "docker.io".to_owned(),
        other => other.to_owned(),
    }
}

impl DockerConfig {
    /// Parses `config.json` bytes.
    pub fn from_json(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() > MAX_CONFIG_BYTES {
            return Err(Error::TooLarge {
                what: "docker config.json".into(),
                limit: MAX_CONFIG_BYTES as u64,
            });
        }
        let raw: RawConfig = serde_json::from_slice(bytes).map_err(|e| Error::Config {
            message: format!("docker config.json: {e}"),
        })?;
        Ok(DockerConfig {
            auths: raw
                .auths
                .into_iter()
                .map(|(k, v)| (normalize_key(&k), v))
                .collect(),
            cred_helpers: raw
                .cred_helpers
                .into_iter()
                .map(|(k, v)| (normalize_key(&k), v))
                .collect(),
            creds_store: raw.creds_store.filter(|s| !s.is_empty()),
            helper_timeout: Duration::from_secs(10),
            helper_dir: None,
        })
    }

    /// Reads a `config.json` file.
    pub fn from_file(path: &Path) -> Result<Self, Error> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, &e))?;
        Self::from_json(&bytes)
    }

    /// Reads `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`; `Ok(None)` when
    /// neither exists.
    pub fn from_environment() -> Result<Option<Self>, Error> {
        let path = match std::env::var_os("DOCKER_CONFIG") {
            Some(dir) => PathBuf::from(dir).join("config.json"),
            None => match std::env::var_os("HOME") {
                Some(home) => PathBuf::from(home).join(".docker").join("config.json"),
                None => return Ok(None),
            },
        };
        if !path.exists() {
            return Ok(None);
        }
        Self::from_file(&path).map(Some)
    }

    /// Sets how long a credential helper may run (default 10 s).
    pub fn with_helper_timeout(mut self, timeout: Duration) -> Self {
        self.helper_timeout = timeout;
        self
    }

    /// Runs credential helpers from `dir` instead of looking them up on `PATH`.
    pub fn with_helper_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.helper_dir = Some(dir.into());
        self
    }

    /// Credentials for `registry` (a host as written in image references, e.g. `docker.io`,
    /// `ghcr.io`, `localhost:5000`): `credHelpers[registry]`, else `auths[registry]`, else
    /// `credsStore`, else anonymous. Helpers are run as processes.
    pub async fn credentials_for(&self, registry: &str) -> Result<Credentials, Error> {
        let key = normalize_key(registry);
        if let Some(helper) = self.cred_helpers.get(&key) {
            return self.run_helper(helper, &key).await;
        }
        if let Some(entry) = self.auths.get(&key)
            && let Some(c) = entry_credentials(entry, &key)?
        {
            return Ok(c);
        }
        if let Some(store) = &self.creds_store {
            return self.run_helper(store, &key).await;
        }
        Ok(Credentials::Anonymous)
    }

    async fn run_helper(&self, helper: &str, registry: &str) -> Result<Credentials, Error> {
        if helper.is_empty()
            || !helper
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        {
            return Err(Error::Config {
                message: format!("invalid credential helper name {helper:?}"),
            });
        }
        let program = format!("docker-credential-{helper}");
        let server = if registry == "docker.io" {
            DOCKER_HUB_KEY.to_owned()
        } else {
            registry.to_owned()
        };
        let auth_err = |message: String| Error::Auth {
            registry: registry.to_owned(),
            message,
        };
        let run = async {
            let exe = match &self.helper_dir {
                Some(d) => d.join(&program),
                None => PathBuf::from(&program),
            };
            let mut child = tokio::process::Command::new(exe)
                .arg("get")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| auth_err(format!("cannot run {program}: {e}")))?;
            if let Some(mut stdin) = child.stdin.take() {
                stdin
                    .write_all(server.as_bytes())
                    .await
                    .map_err(|e| auth_err(format!("{program}: {e}")))?;
            }
            child
                .wait_with_output()
                .await
                .map_err(|e| auth_err(format!("{program}: {e}")))
        };
        let out = tokio::time::timeout(self.helper_timeout, run)
            .await
            .map_err(|_| Error::Timeout {
                registry: registry.to_owned(),
                operation: format!("credential helper {program}"),
                after_ms: self.helper_timeout.as_millis() as u64,
            })??;
        if !out.status.success() {
            let stdout = String::from_utf8_lossy(&out.stdout);
            // Helpers print "credentials not found in native keychain" when they hold nothing.
            if stdout.contains("credentials not found") {
                return Ok(Credentials::Anonymous);
            }
            return Err(auth_err(format!(
                "{program} exited with {}: {}",
                out.status,
                stdout.chars().take(200).collect::<String>()
            )));
        }
        if out.stdout.len() > MAX_CONFIG_BYTES {
            return Err(auth_err(format!("{program} printed too much")));
        }
        let parsed: HelperOutput = serde_json::from_slice(&out.stdout)
            .map_err(|e| auth_err(format!("{program} printed invalid JSON: {e}")))?;
        // Docker's convention: username `<token>` means the secret is an identity token.
        if parsed.username == "<token>" {
            if parsed.secret.is_empty() {
                return Err(auth_err(format!(
                    "{program} returned an empty identity token"
                )));
            }
            return Ok(Credentials::IdentityToken(parsed.secret));
        }
        Ok(Credentials::Basic {
            username: parsed.username,
            password: parsed.secret,
        })
    }
}

fn entry_credentials(entry: &AuthEntry, registry: &str) -> Result<Option<Credentials>, Error> {
    if let Some(t) = entry.registrytoken.as_ref().filter(|t| !t.is_empty()) {
        return Ok(Some(Credentials::Bearer(t.clone())));
    }
    if let Some(t) = entry.identitytoken.as_ref().filter(|t| !t.is_empty()) {
        return Ok(Some(Credentials::IdentityToken(t.clone())));
    }
    if let Some(a) = entry.auth.as_ref().filter(|a| !a.is_empty()) {
        let decoded = STANDARD.decode(a.trim()).map_err(|e| Error::Config {
            message: format!("auths[{registry}].auth is not base64: {e}"),
        })?;
        let text = String::from_utf8(decoded).map_err(|_| Error::Config {
            message: format!("auths[{registry}].auth is not UTF-8"),
        })?;
        let (u, p) = text.split_once(':').ok_or_else(|| Error::Config {
            message: format!("auths[{registry}].auth is not user:password"),
        })?;
        return Ok(Some(Credentials::Basic {
            username: u.to_owned(),
            password: p.to_owned(),
        }));
    }
    match (&entry.username, &entry.password) {
        (Some(u), Some(p)) if !u.is_empty() => Ok(Some(Credentials::Basic {
            username: u.clone(),
            password: p.clone(),
        })),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[tokio::test]
    async fn auths_basic_and_hub_key() {
        let cfg = DockerConfig::from_json(
            br#"{"auths":{"https://index.docker.io/v1/":{"auth":"dXNlcjpwYXNz"},
                 "ghcr.io":{"username":"u","password":"p"},
                 "r.example":{"registrytoken":"tok"}}}"#,
        )
        .unwrap();
        assert_eq!(
            cfg.credentials_for("docker.io").await.unwrap(),
            Credentials::Basic {
                username: "user".into(),
                password: "pass".into()
            }
        );
        assert_eq!(
            cfg.credentials_for("ghcr.io").await.unwrap(),
            Credentials::Basic {
                username: "u".into(),
                password: "p".into()
            }
        );
        assert_eq!(
            cfg.credentials_for("r.example").await.unwrap(),
            Credentials::Bearer("tok".into())
        );
        assert_eq!(
            cfg.credentials_for("quay.io").await.unwrap(),
            Credentials::Anonymous
        );
    }

    #[tokio::test]
    async fn helper_runs_as_process() {
        let dir = tempfile::tempdir().unwrap();
        let helper = dir.path().join("docker-credential-provtest");
        std::fs::write(
            &helper,
            "#!/bin/sh\nread server\n[ \"$1\" = get ] || exit 3\nprintf '{\"ServerURL\":\"%s\",\"Username\":\"alice\",\"Secret\":\"s3cret-%s\"}' \"$server\" \"$server\"\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
        let cfg = DockerConfig::from_json(br#"{"credHelpers":{"localhost:5000":"provtest"}}"#)
            .unwrap()
            .with_helper_dir(dir.path())
            .with_helper_timeout(Duration::from_secs(5));
        assert_eq!(
            cfg.credentials_for("localhost:5000").await.unwrap(),
            Credentials::Basic {
                username: "alice".into(),
                password: "s3cret-localhost:5000".into()
            }
        );
        // A registry without a helper entry and no store is anonymous: the helper is not run.
        assert_eq!(
            cfg.credentials_for("other:5000").await.unwrap(),
            Credentials::Anonymous
        );
    }

    #[tokio::test]
    async fn missing_helper_is_auth_error() {
        let cfg = DockerConfig::from_json(br#"{"credsStore":"does-not-exist-xyz"}"#).unwrap();
        let e = cfg.credentials_for("ghcr.io").await.unwrap_err();
        assert_eq!(e.code(), "oci.auth");
        assert!(e.is_infrastructure());
    }
}
