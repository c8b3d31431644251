//! The agent's client of the supernode's HTTP API (documented in
//! `docs/API.md`): manifests and blobs of a named upstream, fetched through
//! the supernode so the upstream sees each of them once per cluster.

use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::{FutureExt, StreamExt, TryStreamExt};
use http::{StatusCode, header};
use reqwest::Url;
use shoal_proto::{Digest, Reference, RepoName};

use crate::fetch::{BlobSource, SourceBody};
use crate::registry::RegistryError;

/// Largest manifest accepted from the supernode.
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

/// A manifest as the supernode returned it, already checked against its digest.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    /// Media type (the upstream's `Content-Type`).
    pub media_type: String,
    /// sha256 of `bytes`.
    pub digest: Digest,
    /// The manifest, byte for byte.
    pub bytes: Bytes,
}

/// HTTP client for one supernode. Cheap to clone.
#[derive(Clone, Debug)]
pub struct SupernodeClient {
    base: Url,
    http: reqwest::Client,
    header_timeout: Duration,
}

impl SupernodeClient {
    /// A client for the supernode at `base` (e.g. `http://10.0.0.5:65011`).
    pub fn new(base: &str) -> anyhow::Result<Self> {
        let base =
            Url::parse(base).map_err(|e| anyhow::anyhow!("invalid supernode URL {base:?}: {e}"))?;
        if !matches!(base.scheme(), "http" | "https") {
            anyhow::bail!("supernode URL must be http:// or https://, got {base}");
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .read_timeout(Duration::from_secs(60))
            .pool_idle_timeout(Duration::from_secs(60))
            .build()?;
        Ok(SupernodeClient {
            base,
            http,
            header_timeout: Duration::from_secs(180),
        })
    }

    fn url(&self, path: &str, params: &[(&str, &str)]) -> Url {
        let mut u = self.base.join(path).expect("static path");
        u.query_pairs_mut().extend_pairs(params);
        u
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response, RegistryError> {
        let resp = tokio::time::timeout(self.header_timeout, req.send())
            .await
            .map_err(|_| RegistryError::unavailable("supernode did not answer in time"))?
            .map_err(|e| RegistryError::unavailable(format!("supernode unreachable: {e}")))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let body = resp.bytes().await.unwrap_or_default();
        Err(RegistryError::from_response_body(
            status,
            &body[..body.len().min(64 * 1024)],
        ))
    }

    /// The manifest `reference` of `repo` on upstream `upstream`, with the
    /// client's `Accept` header passed along.
    pub async fn manifest(
        &self,
        upstream: &str,
        repo: &RepoName,
        reference: &Reference,
        accept: Option<&str>,
    ) -> Result<FetchedManifest, RegistryError> {
        let reference_s = reference.to_string();
        let url = self.url(
            "api/v1/manifests",
            &[
                ("upstream", upstream),
                ("repo", repo.as_str()),
                ("reference", &reference_s),
            ],
        );
        let mut req = self.http.get(url);
        if let Some(a) = accept {
            req = req.header(header::ACCEPT, a);
        }
        let resp = self.send(req).await?;
        let media_type = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let claimed = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| Digest::parse(v).ok());
        let bytes = read_bounded(resp, MAX_MANIFEST_BYTES).await?;
        let digest = Digest::of(&bytes);
        let expected = match reference {
            Reference::Digest(d) => Some(*d),
            Reference::Tag(_) => claimed,
        };
        if let Some(e) = expected
            && e != digest
        {
            return Err(RegistryError::bad_gateway(format!(
                "manifest from supernode does not match its digest {e} (got {digest})"
            )));
        }
        Ok(FetchedManifest {
            media_type,
            digest,
            bytes,
        })
    }

    /// Opens blob `digest` at `offset`.
    pub async fn blob(
        &self,
        upstream: &str,
        repo: &RepoName,
        digest: &Digest,
        offset: u64,
    ) -> Result<SourceBody, RegistryError> {
        let digest_s = digest.to_string();
        let url = self.url(
            "api/v1/blobs",
            &[
                ("upstream", upstream),
                ("repo", repo.as_str()),
                ("digest", &digest_s),
            ],
        );
        let mut req = self.http.get(url);
        if offset > 0 {
            req = req.header(header::RANGE, format!("bytes={offset}-"));
        }
        let resp = self.send(req).await?;
        let total_size = match resp.status() {
            StatusCode::PARTIAL_CONTENT => content_range_total(&resp).ok_or_else(|| {
                RegistryError::bad_gateway("supernode sent 206 without a valid Content-Range")
            })?,
            _ if offset > 0 => {
                return Err(RegistryError::bad_gateway(
                    "supernode ignored the Range header",
                ));
            }
            _ => resp.content_length().ok_or_else(|| {
                RegistryError::bad_gateway("supernode sent a blob without Content-Length")
            })?,
        };
        let stream = resp
            .bytes_stream()
            .inspect_ok(|b| {
                metrics::counter!("shoal_agent_bytes_received_total", "source" => "supernode")
                    .increment(b.len() as u64);
            })
            .map_err(|e| {
                RegistryError::bad_gateway(format!("blob stream from supernode broke: {e}"))
            })
            .boxed();
        Ok(SourceBody { total_size, stream })
    }
}

fn content_range_total(resp: &reqwest::Response) -> Option<u64> {
    let v = resp.headers().get(header::CONTENT_RANGE)?.to_str().ok()?;
    v.rsplit_once('/')?.1.parse().ok()
}

async fn read_bounded(resp: reqwest::Response, max: usize) -> Result<Bytes, RegistryError> {
    if resp.content_length().is_some_and(|n| n > max as u64) {
        return Err(RegistryError::bad_gateway(format!(
            "manifest larger than {max} bytes"
        )));
    }
    let mut out = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk
            .map_err(|e| RegistryError::bad_gateway(format!("reading from supernode: {e}")))?;
        if out.len() + chunk.len() > max {
            return Err(RegistryError::bad_gateway(format!(
                "manifest larger than {max} bytes"
            )));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(out))
}

/// A blob fetched through the supernode, as a [`BlobSource`] for the fetcher.
pub struct SupernodeSource {
    /// The supernode.
    pub client: SupernodeClient,
    /// Upstream name.
    pub upstream: String,
    /// Repository the client asked for.
    pub repo: RepoName,
    /// The blob.
    pub digest: Digest,
}

impl BlobSource for SupernodeSource {
    fn open(&self, offset: u64) -> BoxFuture<'static, Result<SourceBody, RegistryError>> {
        let (c, u, r, d) = (
            self.client.clone(),
            self.upstream.clone(),
            self.repo.clone(),
            self.digest,
        );
        async move { c.blob(&u, &r, &d, offset).await }.boxed()
    }

    fn label(&self) -> &'static str {
        "supernode"
    }
}
