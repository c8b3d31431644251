//! A blob straight from an upstream registry, as a [`BlobSource`] for the
//! fetcher's sequential path: how the supernode fetches, and the agent's
//! last-resort fallback.

use futures_util::future::BoxFuture;
use futures_util::{FutureExt, StreamExt, TryStreamExt};
use shoal_proto::{Digest, RepoName};

use crate::fetch::{BlobSource, SourceBody};
use crate::registry::RegistryError;
use crate::upstream::{Upstream, UpstreamError};

/// Blob `digest` of `repo` on `upstream`.
pub struct UpstreamSource {
    /// The upstream client.
    pub upstream: Upstream,
    /// Repository.
    pub repo: RepoName,
    /// Blob.
    pub digest: Digest,
    /// Counts the bytes received (each daemon has its own metric).
    pub on_bytes: fn(u64),
}

impl BlobSource for UpstreamSource {
    fn open(&self, offset: u64) -> BoxFuture<'static, Result<SourceBody, RegistryError>> {
        let (u, r, d, on_bytes) = (
            self.upstream.clone(),
            self.repo.clone(),
            self.digest,
            self.on_bytes,
        );
        async move {
            let body = u.get_blob(&r, &d, offset).await.map_err(|e| match e {
                UpstreamError::NotFound => RegistryError::blob_unknown(d),
                other => other.into(),
            })?;
            let stream = body
                .stream
                .inspect_ok(move |b| on_bytes(b.len() as u64))
                .map_err(RegistryError::from)
                .boxed();
            Ok(SourceBody {
                total_size: body.total_size,
                stream,
            })
        }
        .boxed()
    }

    fn label(&self) -> &'static str {
        "upstream"
    }
}
