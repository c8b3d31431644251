//! The upstream as the supernode's blob source: the shared
//! [`UpstreamSource`], counting into `shoal_supernode_upstream_bytes_total`.

use shoal_agent::upstream::Upstream;
pub use shoal_agent::upstream_source::UpstreamSource;
use shoal_proto::{Digest, RepoName};

/// Blob `digest` of `repo` fetched by the supernode from `upstream`.
pub fn upstream_source(upstream: Upstream, repo: RepoName, digest: Digest) -> UpstreamSource {
    UpstreamSource {
        upstream,
        repo,
        digest,
        on_bytes: |n| metrics::counter!("shoal_supernode_upstream_bytes_total").increment(n),
    }
}
