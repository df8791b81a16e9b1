//! One Sigstore service endpoint: HTTPS only unless allowed, a deadline on the whole exchange,
//! bounded answers, errors that name the service.

use std::time::Duration;

use crate::error::Error;

/// Largest answer read from Fulcio, Rekor, a timestamp authority or a token endpoint.
pub const MAX_ANSWER_BYTES: u64 = 1 << 20;

#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    http: reqwest::Client,
    /// `Fulcio at https://fulcio.sigstore.dev`, for errors.
    name: String,
    base: String,
    timeout: Duration,
}

impl Endpoint {
    pub(crate) fn new(
        service: &str,
        base_url: &str,
        timeout: Duration,
        allow_http: bool,
    ) -> Result<Self, Error> {
        let base = base_url.trim_end_matches('/').to_owned();
        if !(base.starts_with("https://") || (allow_http && base.starts_with("http://"))) {
            if base.starts_with("http://") {
                return Err(Error::InsecureNotAllowed {
                    registry: format!("{service} at {base}"),
                });
            }
            return Err(Error::Config {
                message: format!("{service} URL {base:?} is not an https:// URL"),
            });
        }
        let http = reqwest::Client::builder()
            .connect_timeout(timeout)
            .read_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::Config {
                message: format!("HTTP client: {e}"),
            })?;
        Ok(Endpoint {
            http,
            name: format!("{service} at {base}"),
            base,
            timeout,
        })
    }

    /// POSTs `body` with `content_type` to `path`; the answer's body on a 2xx status.
    pub(crate) async fn post(
        &self,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<Vec<u8>, Error> {
        let req = self
            .http
            .post(format!("{}{path}", self.base))
            .header("Content-Type", content_type)
            .header("Accept", "application/json, application/timestamp-reply")
            .body(body);
        self.run("POST", path, req).await
    }

    /// GETs `path` with extra headers; the answer's body on a 2xx status.
    pub(crate) async fn get(
        &self,
        path: &str,
        headers: &[(&str, String)],
    ) -> Result<Vec<u8>, Error> {
        let mut req = self.http.get(format!("{}{path}", self.base));
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        self.run("GET", path, req).await
    }

    async fn run(
        &self,
        method: &str,
        path: &str,
        req: reqwest::RequestBuilder,
    ) -> Result<Vec<u8>, Error> {
        let operation = format!("{method} {}", if path.is_empty() { "/" } else { path });
        let timeout_err = || Error::Timeout {
            registry: self.name.clone(),
            operation: operation.clone(),
            after_ms: self.timeout.as_millis() as u64,
        };
        let net = |e: reqwest::Error| {
            if e.is_timeout() {
                timeout_err()
            } else {
                Error::Network {
                    registry: self.name.clone(),
                    message: e.to_string(),
                }
            }
        };
        let exchange = async {
            let mut resp = req.send().await.map_err(net)?;
            let status = resp.status();
            let mut out = Vec::new();
            while let Some(chunk) = resp.chunk().await.map_err(net)? {
                out.extend_from_slice(&chunk);
                if out.len() as u64 > MAX_ANSWER_BYTES {
                    return Err(Error::TooLarge {
                        what: format!("answer of {} to {operation}", self.name),
                        limit: MAX_ANSWER_BYTES,
                    });
                }
            }
            if !status.is_success() {
                let excerpt: String = String::from_utf8_lossy(&out).chars().take(300).collect();
                return Err(Error::Registry {
                    registry: self.name.clone(),
                    operation: operation.clone(),
                    status: status.as_u16(),
                    message: excerpt.trim().to_owned(),
                });
            }
            Ok(out)
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| timeout_err())?
    }
}
