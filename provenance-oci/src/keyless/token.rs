//! OIDC identity tokens for Fulcio: where they come from and what they claim.
//!
//! The token is read, never verified: its signature, audience and issuer are Fulcio's to check,
//! and the identity that counts is the one Fulcio writes into the certificate (which the
//! signer checks against the trust root). The claims are read only to compute the
//! proof-of-possession challenge, to refuse an expired token before contacting anyone, and to
//! tell the user whose token it is.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use super::http::Endpoint;
use crate::error::{Error, SigningStep};

/// Largest identity token accepted (real ones are 1-3 KB).
pub const MAX_TOKEN_BYTES: usize = 64 << 10;

/// The environment variable [`TokenSource::ambient`] reads first (as cosign and
/// sigstore-python do).
pub const SIGSTORE_ID_TOKEN_ENV: &str = "SIGSTORE_ID_TOKEN";
/// GitHub Actions' ID-token request URL variable (set when the job has `id-token: write`).
pub const GITHUB_ACTIONS_URL_ENV: &str = "ACTIONS_ID_TOKEN_REQUEST_URL";
/// GitHub Actions' ID-token request bearer token variable.
pub const GITHUB_ACTIONS_TOKEN_ENV: &str = "ACTIONS_ID_TOKEN_REQUEST_TOKEN";
/// Where cosign reads a Kubernetes projected service-account token meant for Sigstore.
pub const KUBERNETES_TOKEN_PATH: &str = "/var/run/sigstore/cosign/oidc-token";
/// The audience Fulcio expects.
pub const SIGSTORE_AUDIENCE: &str = "sigstore";

/// Issuers whose tokens Fulcio identifies by the `email` claim (for these the
/// proof-of-possession challenge is the email address, for all others the `sub` claim).
const EMAIL_ISSUERS: &[&str] = &[
    "https://accounts.google.com",
    "https://oauth2.sigstore.dev/auth",
    "https://oauth2.sigstage.dev/auth",
];

/// The claims of an identity token, as written in the token (unverified).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenClaims {
    /// `iss`.
    pub issuer: String,
    /// `sub`.
    pub subject: String,
    /// `email`, if present.
    pub email: Option<String>,
    /// `aud` (a string or a list in the token).
    pub audience: Vec<String>,
    /// `exp`, seconds since the Unix epoch, if present.
    pub expires_at: Option<i64>,
}

/// An OIDC identity token (a JWT) and its unverified claims. `Debug` never prints the token.
#[derive(Clone)]
pub struct IdentityToken {
    raw: String,
    claims: TokenClaims,
}

impl fmt::Debug for IdentityToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityToken")
            .field("claims", &self.claims)
            .finish_non_exhaustive()
    }
}

fn token_err(detail: impl Into<String>) -> Error {
    SigningStep::IdentityToken.fail(detail)
}

impl IdentityToken {
    /// Reads a compact JWT (`header.payload.signature`) and its claims. Fails when it is not a
    /// JWT, or when `iss` or `sub` is missing; nothing is verified.
    pub fn parse(raw: &str) -> Result<Self, Error> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(token_err("the identity token is empty"));
        }
        if raw.len() > MAX_TOKEN_BYTES {
            return Err(token_err(format!(
                "the identity token is larger than {MAX_TOKEN_BYTES} bytes"
            )));
        }
        let parts: Vec<&str> = raw.split('.').collect();
        if parts.len() != 3 {
            return Err(token_err(format!(
                "the identity token is not a JWT (expected 3 dot-separated parts, found {})",
                parts.len()
            )));
        }
        let payload = URL_SAFE_NO_PAD
            .decode(parts[1].trim_end_matches('='))
            .map_err(|_| token_err("the JWT payload is not base64url"))?;
        let v: Value = serde_json::from_slice(&payload)
            .map_err(|e| token_err(format!("the JWT payload is not JSON: {e}")))?;
        let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
        let issuer = text("iss").ok_or_else(|| token_err("the JWT has no `iss` claim"))?;
        let subject = text("sub").ok_or_else(|| token_err("the JWT has no `sub` claim"))?;
        let audience = match v.get("aud") {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        };
        let expires_at = v.get("exp").and_then(Value::as_i64);
        Ok(IdentityToken {
            raw: raw.to_owned(),
            claims: TokenClaims {
                issuer,
                subject,
                email: text("email"),
                audience,
                expires_at,
            },
        })
    }

    /// The token as sent to Fulcio.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The unverified claims.
    pub fn claims(&self) -> &TokenClaims {
        &self.claims
    }

    /// What the proof of possession signs, as Fulcio v2 checks it: the `email` claim for
    /// issuers that identify people by email, the `sub` claim otherwise.
    pub fn challenge(&self) -> Result<&str, Error> {
        if EMAIL_ISSUERS.contains(&self.claims.issuer.as_str()) {
            return self.claims.email.as_deref().ok_or_else(|| {
                token_err(format!(
                    "tokens from {} need an `email` claim",
                    self.claims.issuer
                ))
            });
        }
        Ok(&self.claims.subject)
    }

    /// Fails when the token says it expired at or before `now` (seconds since the epoch).
    pub fn check_not_expired(&self, now: i64) -> Result<(), Error> {
        match self.claims.expires_at {
            Some(exp) if exp <= now => Err(token_err(format!(
                "the identity token from {} expired at {exp} (now {now})",
                self.claims.issuer
            ))),
            _ => Ok(()),
        }
    }
}

/// Where to get the identity token from.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum TokenSource {
    /// The token itself.
    Literal(String),
    /// A file holding the token.
    File(PathBuf),
    /// An environment variable holding the token.
    Env(String),
    /// GitHub Actions' ID-token endpoint (`GET <request_url>&audience=<audience>` with
    /// `Authorization: bearer <request_token>`).
    GitHubActions {
        /// `ACTIONS_ID_TOKEN_REQUEST_URL`.
        request_url: String,
        /// `ACTIONS_ID_TOKEN_REQUEST_TOKEN`.
        request_token: String,
        /// The audience to ask for (`sigstore` for Fulcio).
        audience: String,
    },
    /// A Kubernetes projected service-account token file (audience `sigstore`), re-read on
    /// every use because the kubelet rotates it.
    KubernetesServiceAccount(PathBuf),
}

impl TokenSource {
    /// GitHub Actions' endpoint from `ACTIONS_ID_TOKEN_REQUEST_URL` and
    /// `ACTIONS_ID_TOKEN_REQUEST_TOKEN`, asking for audience `sigstore`; `None` outside a job
    /// with `id-token: write`.
    pub fn github_actions_from_env() -> Option<Self> {
        let request_url = std::env::var(GITHUB_ACTIONS_URL_ENV).ok()?;
        let request_token = std::env::var(GITHUB_ACTIONS_TOKEN_ENV).ok()?;
        Some(TokenSource::GitHubActions {
            request_url,
            request_token,
            audience: SIGSTORE_AUDIENCE.to_owned(),
        })
    }

    /// The first source available in this environment, in cosign's order: the
    /// `SIGSTORE_ID_TOKEN` variable, GitHub Actions, the Kubernetes token file at
    /// [`KUBERNETES_TOKEN_PATH`]. `None` when there is none (interactive browser flows are not
    /// supported).
    pub fn ambient() -> Option<Self> {
        if std::env::var_os(SIGSTORE_ID_TOKEN_ENV).is_some() {
            return Some(TokenSource::Env(SIGSTORE_ID_TOKEN_ENV.to_owned()));
        }
        if let Some(gha) = Self::github_actions_from_env() {
            return Some(gha);
        }
        let k8s = PathBuf::from(KUBERNETES_TOKEN_PATH);
        k8s.is_file()
            .then_some(TokenSource::KubernetesServiceAccount(k8s))
    }

    /// Gets the token; network sources run under `timeout` (the whole exchange). `allow_http`
    /// permits a plain-HTTP GitHub Actions endpoint (tests on loopback).
    pub async fn fetch(&self, timeout: Duration, allow_http: bool) -> Result<IdentityToken, Error> {
        match self {
            TokenSource::Literal(t) => IdentityToken::parse(t),
            TokenSource::Env(name) => {
                let v = std::env::var(name).map_err(|_| {
                    token_err(format!(
                        "environment variable {name} is not set (or not UTF-8)"
                    ))
                })?;
                IdentityToken::parse(&v)
            }
            TokenSource::File(p) | TokenSource::KubernetesServiceAccount(p) => {
                let meta = tokio::fs::metadata(p).await.map_err(|e| Error::io(p, &e))?;
                if meta.len() > MAX_TOKEN_BYTES as u64 {
                    return Err(token_err(format!(
                        "{} is larger than {MAX_TOKEN_BYTES} bytes",
                        p.display()
                    )));
                }
                let bytes = tokio::fs::read(p).await.map_err(|e| Error::io(p, &e))?;
                let text = String::from_utf8(bytes)
                    .map_err(|_| token_err(format!("{} is not UTF-8", p.display())))?;
                IdentityToken::parse(&text)
            }
            TokenSource::GitHubActions {
                request_url,
                request_token,
                audience,
            } => {
                let sep = if request_url.contains('?') { '&' } else { '?' };
                let url = format!("{request_url}{sep}audience={audience}");
                let ep = Endpoint::new("GitHub Actions token endpoint", &url, timeout, allow_http)?;
                let body = ep
                    .get("", &[("Authorization", format!("bearer {request_token}"))])
                    .await?;
                let v: Value = serde_json::from_slice(&body)
                    .map_err(|e| token_err(format!("GitHub Actions answered non-JSON: {e}")))?;
                let t = v
                    .get("value")
                    .and_then(Value::as_str)
                    .ok_or_else(|| token_err("GitHub Actions' answer has no `value`"))?;
                IdentityToken::parse(t)
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn jwt(claims: &str) -> String {
        format!(
            "{}.{}.SECRETSIG",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256"}"#),
            URL_SAFE_NO_PAD.encode(claims)
        )
    }

    #[test]
    fn claims_and_challenge() {
        let t = IdentityToken::parse(&jwt(
            r#"{"iss":"https://token.actions.githubusercontent.com","sub":"repo:a/b","aud":["sigstore"],"exp":100}"#,
        ))
        .unwrap();
        assert_eq!(t.challenge().unwrap(), "repo:a/b");
        assert_eq!(t.claims().audience, vec!["sigstore".to_owned()]);
        assert!(t.check_not_expired(99).is_ok());
        let e = t.check_not_expired(100).unwrap_err();
        assert_eq!(e.code(), "oci.sign.identity_token");
        assert!(
            !format!("{t:?}").contains("SECRETSIG"),
            "Debug must not print the token"
        );

        let g = IdentityToken::parse(&jwt(
            r#"{"iss":"https://accounts.google.com","sub":"1234","email":"a@example.com"}"#,
        ))
        .unwrap();
        assert_eq!(g.challenge().unwrap(), "a@example.com");
        let no_email = IdentityToken::parse(&jwt(
            r#"{"iss":"https://accounts.google.com","sub":"1234"}"#,
        ))
        .unwrap();
        assert_eq!(
            no_email.challenge().unwrap_err().code(),
            "oci.sign.identity_token"
        );
    }

    #[test]
    fn malformed_tokens_are_refused() {
        for bad in [
            "",
            "abc",
            "a.b",
            "a.!!!.c",
            &jwt("not json"),
            &jwt(r#"{"sub":"x"}"#),
            &jwt(r#"{"iss":"x"}"#),
        ] {
            let e = IdentityToken::parse(bad).unwrap_err();
            assert_eq!(e.code(), "oci.sign.identity_token", "{bad}: {e}");
        }
    }
}
