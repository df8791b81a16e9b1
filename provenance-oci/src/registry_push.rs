//! Writing to a registry: blob uploads (monolithic POST + PUT) and manifest PUTs, with the same
//! authentication as reads (bearer tokens with push scope) and per-request deadlines.

use provenance_core::{Digest, ImageReference};
use reqwest::Method;
use reqwest::header::{CONTENT_TYPE, LOCATION};

use super::{Ctx, RegistryClient};
use crate::error::Error;
use crate::source::repo_of;
use crate::types::Manifest;

impl RegistryClient {
    fn push_ctx<'a>(&'a self, image: &'a ImageReference) -> Result<Ctx<'a>, Error> {
        let mut ctx = self.ctx(image)?;
        ctx.push = true;
        Ok(ctx)
    }

    /// One write request with a body (401 -> authorize with push scope -> resend once).
    #[allow(clippy::too_many_arguments)]
    async fn send_body(
        &self,
        ctx: &Ctx<'_>,
        host: &str,
        method: Method,
        url: &str,
        content_type: &str,
        body: &[u8],
        what: &'static str,
        reference: &str,
    ) -> Result<reqwest::Response, Error> {
        self.send_authorized(ctx, host, method, url, what, reference, |rb| {
            rb.header(CONTENT_TYPE, content_type).body(body.to_vec())
        })
        .await
    }

    async fn push_blob_inner(
        &self,
        repo: &ImageReference,
        digest: &Digest,
        bytes: &[u8],
    ) -> Result<(), Error> {
        let ctx = self.push_ctx(repo)?;
        let host = ctx.primary_host();
        let reference = format!("{}@{digest}", repo.name());
        // Already there: nothing to upload.
        let head = ctx.url(&host, &format!("blobs/{digest}"));
        match self
            .send(&ctx, &host, Method::HEAD, &head, "*/*", "blob", &reference)
            .await
        {
            Ok(_) => return Ok(()),
            Err(Error::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
        let start = ctx.url(&host, "blobs/uploads/");
        let resp = self
            .send_body(
                &ctx,
                &host,
                Method::POST,
                &start,
                "application/octet-stream",
                &[],
                "blob upload",
                &reference,
            )
            .await?;
        let location = resp
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| Error::Registry {
                registry: host.clone(),
                operation: "POST blob upload".into(),
                status: resp.status().as_u16(),
                message: "no Location header".into(),
            })?
            .to_owned();
        // Resolved against the POST's URL as a browser would (absolute, host-relative or
        // path-relative); wherever it points, `send_body` sends credentials only to the
        // registry's own origin and never goes from HTTPS to plain HTTP.
        let mut target = reqwest::Url::parse(&start)
            .and_then(|base| base.join(&location))
            .map_err(|e| Error::Registry {
                registry: host.clone(),
                operation: "POST blob upload".into(),
                status: resp.status().as_u16(),
                message: format!("unusable Location header: {e}"),
            })?;
        target
            .query_pairs_mut()
            .append_pair("digest", &digest.to_string());
        let url = target.to_string();
        self.send_body(
            &ctx,
            &host,
            Method::PUT,
            &url,
            "application/octet-stream",
            bytes,
            "blob upload",
            &reference,
        )
        .await?;
        Ok(())
    }

    async fn push_manifest_inner(
        &self,
        target: &ImageReference,
        manifest: &Manifest,
    ) -> Result<(), Error> {
        let ctx = self.push_ctx(target)?;
        let host = ctx.primary_host();
        let reference = match (target.tag(), target.digest_str()) {
            (_, Some(_)) => manifest.digest.to_string(),
            (Some(t), None) => t.to_owned(),
            (None, None) => manifest.digest.to_string(),
        };
        let url = ctx.url(&host, &format!("manifests/{reference}"));
        let resp = self
            .send_body(
                &ctx,
                &host,
                Method::PUT,
                &url,
                &manifest.media_type,
                &manifest.bytes,
                "manifest",
                &target.to_string(),
            )
            .await?;
        // The registry must have stored the bytes we sent.
        if let Some(d) = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|s| Digest::parse(s.trim()).ok())
            && d != manifest.digest
        {
            return Err(Error::DigestMismatch {
                reference: target.to_string(),
                expected: manifest.digest.to_string(),
                actual: d.to_string(),
            });
        }
        Ok(())
    }

    /// Uploads blob `digest` (`bytes`) to `image`'s repository, unless it is already there.
    pub async fn push_blob(
        &self,
        image: &ImageReference,
        digest: &Digest,
        bytes: &[u8],
    ) -> Result<(), Error> {
        self.deadline(
            image.domain(),
            "blob upload",
            self.config.timeouts.operation,
            self.push_blob_inner(&repo_of(image), digest, bytes),
        )
        .await
    }

    /// Stores `manifest` under `target`'s tag (or, when `target` has a digest or no tag,
    /// under the manifest's digest).
    pub async fn push_manifest(
        &self,
        target: &ImageReference,
        manifest: &Manifest,
    ) -> Result<(), Error> {
        self.deadline(
            target.domain(),
            "manifest upload",
            self.config.timeouts.operation,
            self.push_manifest_inner(target, manifest),
        )
        .await
    }
}
