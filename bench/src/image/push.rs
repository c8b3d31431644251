//! Pushing images through the distribution API: a monolithic upload per
//! blob (POST, then PUT with `?digest=`), then the manifests.

use reqwest::{Client, StatusCode};

use super::{Blob, PlatformImage, TestImage};
use crate::http::error_chain;

/// Why a push failed.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The request did not get a response.
    #[error("{what}: {detail}")]
    Request {
        /// e.g. `PUT manifest library/app:1.0`.
        what: String,
        /// The error with all its causes.
        detail: String,
    },
    /// The registry answered with an unexpected status.
    #[error("{what}: {status}: {body}")]
    Status {
        /// e.g. `start upload of sha256:…`.
        what: String,
        /// The status received.
        status: StatusCode,
        /// The response body (the registry's error JSON).
        body: String,
    },
    /// The upload answer lacked its `Location` header.
    #[error("start upload of {0}: no Location header")]
    NoLocation(String),
    /// The registry computed another digest for a manifest.
    #[error("registry computed digest {got:?} for {reference}, want {want}")]
    DigestMismatch {
        /// `repo:reference`.
        reference: String,
        /// What the registry said.
        got: Option<String>,
        /// The manifest's digest.
        want: String,
    },
}

impl TestImage {
    /// Pushes the whole image to `base_url` (e.g. `http://127.0.0.1:PORT`)
    /// as `repo:tag`; manifests are also put by digest. Panics on failure
    /// (a test helper); [`TestImage::try_push`] returns the error.
    pub async fn push(&self, client: &Client, base_url: &str, repo: &str, tag: &str) {
        if let Err(e) = self.try_push(client, base_url, repo, tag).await {
            panic!("push {repo}:{tag} to {base_url}: {e}");
        }
    }

    /// Like [`TestImage::push`], returning the error.
    pub async fn try_push(
        &self,
        client: &Client,
        base_url: &str,
        repo: &str,
        tag: &str,
    ) -> Result<(), PushError> {
        for blob in self.blobs() {
            push_blob(client, base_url, repo, blob).await?;
        }
        for p in &self.platforms {
            put_manifest(client, base_url, repo, &p.manifest.digest, &p.manifest).await?;
        }
        put_manifest(client, base_url, repo, &self.index.digest, &self.index).await?;
        put_manifest(client, base_url, repo, tag, &self.index).await
    }
}

impl PlatformImage {
    /// Pushes config, layers and the manifest (by digest and as `tag`).
    pub async fn try_push(
        &self,
        client: &Client,
        base_url: &str,
        repo: &str,
        tag: &str,
    ) -> Result<(), PushError> {
        for blob in self.blobs() {
            push_blob(client, base_url, repo, blob).await?;
        }
        put_manifest(
            client,
            base_url,
            repo,
            &self.manifest.digest,
            &self.manifest,
        )
        .await?;
        put_manifest(client, base_url, repo, tag, &self.manifest).await
    }
}

/// Monolithic upload: POST to open an upload, PUT the bytes with `?digest=`.
async fn push_blob(
    client: &Client,
    base_url: &str,
    repo: &str,
    blob: &Blob,
) -> Result<(), PushError> {
    let what = format!("start upload of {}", blob.digest);
    let resp = client
        .post(format!("{base_url}/v2/{repo}/blobs/uploads/"))
        .send()
        .await
        .map_err(|e| request_error(&what, &e))?;
    if resp.status() != StatusCode::ACCEPTED {
        return Err(status_error(what, resp).await);
    }
    let location = resp
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| PushError::NoLocation(blob.digest.clone()))?
        .to_string();
    let mut url = if location.starts_with('/') {
        format!("{base_url}{location}")
    } else {
        location
    };
    url.push(if url.contains('?') { '&' } else { '?' });
    url.push_str("digest=");
    url.push_str(&blob.digest);
    let what = format!("upload of {}", blob.digest);
    let resp = client
        .put(url)
        .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
        .body(blob.bytes.clone())
        .send()
        .await
        .map_err(|e| request_error(&what, &e))?;
    if resp.status() != StatusCode::CREATED {
        return Err(status_error(what, resp).await);
    }
    Ok(())
}

async fn put_manifest(
    client: &Client,
    base_url: &str,
    repo: &str,
    reference: &str,
    manifest: &Blob,
) -> Result<(), PushError> {
    let what = format!("PUT manifest {repo}:{reference}");
    let resp = client
        .put(format!("{base_url}/v2/{repo}/manifests/{reference}"))
        .header(reqwest::header::CONTENT_TYPE, manifest.media_type)
        .body(manifest.bytes.clone())
        .send()
        .await
        .map_err(|e| request_error(&what, &e))?;
    if resp.status() != StatusCode::CREATED {
        return Err(status_error(what, resp).await);
    }
    let digest = resp
        .headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if digest.as_deref() != Some(manifest.digest.as_str()) {
        return Err(PushError::DigestMismatch {
            reference: format!("{repo}:{reference}"),
            got: digest,
            want: manifest.digest.clone(),
        });
    }
    Ok(())
}

fn request_error(what: &str, e: &reqwest::Error) -> PushError {
    PushError::Request {
        what: what.to_string(),
        detail: error_chain(e),
    }
}

async fn status_error(what: String, resp: reqwest::Response) -> PushError {
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    PushError::Status { what, status, body }
}
