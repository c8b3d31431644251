//! An upstream registry as a [`BlobSource`] for the shared fetcher.

use futures_util::future::BoxFuture;
use futures_util::{FutureExt, StreamExt, TryStreamExt};
use shoal_agent::fetch::{BlobSource, SourceBody};
use shoal_agent::registry::RegistryError;
use shoal_agent::upstream::{Upstream, UpstreamError};
use shoal_proto::{Digest, RepoName};

/// Blob `digest` of `repo` on `upstream`.
pub struct UpstreamSource {
    /// The upstream client.
    pub upstream: Upstream,
    /// Repository.
    pub repo: RepoName,
    /// Blob.
    pub digest: Digest,
}

/// Maps an upstream failure for a blob to the client's error.
pub fn blob_error(e: UpstreamError, digest: &Digest) -> RegistryError {
    match e {
        UpstreamError::NotFound => RegistryError::blob_unknown(digest),
        other => other.into(),
    }
}

impl BlobSource for UpstreamSource {
    fn open(&self, offset: u64) -> BoxFuture<'static, Result<SourceBody, RegistryError>> {
        let (u, r, d) = (self.upstream.clone(), self.repo.clone(), self.digest);
        async move {
            let body = u
                .get_blob(&r, &d, offset)
                .await
                .map_err(|e| blob_error(e, &d))?;
            let stream = body
                .stream
                .inspect_ok(|b| {
                    metrics::counter!("shoal_supernode_upstream_bytes_total")
                        .increment(b.len() as u64);
                })
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
