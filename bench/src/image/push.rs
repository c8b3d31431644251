//! Pushing images through the distribution API: a monolithic upload per
//! blob (POST, then PUT with `?digest=`), then the manifests.

use reqwest::{Client, RequestBuilder, Response, StatusCode};

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
        let manifests = self.platforms.iter().map(|p| &p.manifest);
        push_parts(
            client,
            base_url,
            repo,
            self.blobs(),
            manifests,
            &self.index,
            tag,
        )
        .await
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
        let blobs = self.blobs();
        push_parts(client, base_url, repo, blobs, [], &self.manifest, tag).await
    }
}

/// Pushes `blobs`, then `manifests` and `top` by digest, then `top` as `tag`.
async fn push_parts<'a>(
    client: &Client,
    base_url: &str,
    repo: &str,
    blobs: impl IntoIterator<Item = &'a Blob>,
    manifests: impl IntoIterator<Item = &'a Blob>,
    top: &'a Blob,
    tag: &str,
) -> Result<(), PushError> {
    for blob in blobs {
        push_blob(client, base_url, repo, blob).await?;
    }
    for manifest in manifests.into_iter().chain([top]) {
        put_manifest(client, base_url, repo, &manifest.digest, manifest).await?;
    }
    put_manifest(client, base_url, repo, tag, top).await
}

/// Monolithic upload: POST to open an upload, PUT the bytes with `?digest=`.
async fn push_blob(
    client: &Client,
    base_url: &str,
    repo: &str,
    blob: &Blob,
) -> Result<(), PushError> {
    let what = format!("start upload of {}", blob.digest);
    let start = client.post(format!("{base_url}/v2/{repo}/blobs/uploads/"));
    let resp = send_expecting(start, StatusCode::ACCEPTED, what).await?;
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
    let upload = client
        .put(url)
        .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
        .body(blob.bytes.clone());
    send_expecting(
        upload,
        StatusCode::CREATED,
        format!("upload of {}", blob.digest),
    )
    .await?;
    Ok(())
}

async fn put_manifest(
    client: &Client,
    base_url: &str,
    repo: &str,
    reference: &str,
    manifest: &Blob,
) -> Result<(), PushError> {
    let put = client
        .put(format!("{base_url}/v2/{repo}/manifests/{reference}"))
        .header(reqwest::header::CONTENT_TYPE, manifest.media_type)
        .body(manifest.bytes.clone());
    let what = format!("PUT manifest {repo}:{reference}");
    let resp = send_expecting(put, StatusCode::CREATED, what).await?;
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

/// Sends `request` (`what` names it in errors); an answer other than
/// `want` is an error carrying the registry's body.
async fn send_expecting(
    request: RequestBuilder,
    want: StatusCode,
    what: String,
) -> Result<Response, PushError> {
    let resp = request.send().await.map_err(|e| PushError::Request {
        what: what.clone(),
        detail: error_chain(&e),
    })?;
    if resp.status() != want {
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        return Err(PushError::Status { what, status, body });
    }
    Ok(resp)
}
