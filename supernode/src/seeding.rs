//! What the supernode does as the swarm's seed, over HTTP:
//!
//! - `GET /api/v1/piecemap?upstream=&repo=&digest=&known=K`: the blob's
//!   piece map, starting the upstream fetch if needed. While the fetch runs
//!   the map is partial (the hashes of the pieces fetched so far); with
//!   `known=K` the call waits (at most [`LONG_POLL`]) until more than K
//!   hashes are known, so agents learn new pieces without busy polling.
//! - `POST /api/v1/seed` (signed with the cluster secret): the tracker asks
//!   the supernode to fetch a blob nobody has; answered at once with 202,
//!   the fetch runs in the background.
//!
//! The pieces themselves are served over QUIC by the piece server.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{StatusCode, Uri};
use shoal_agent::registry::{RegistryError, query_param};
use shoal_agent::supernode_client::PieceMapView;
use shoal_proto::tracker_wire::SeedRequest;
use shoal_proto::{Digest, RepoName};

use crate::Supernode;
use crate::api::{param, target};
use crate::source::upstream_source;

/// Longest wait of a `piecemap` call for new hashes.
pub const LONG_POLL: Duration = Duration::from_secs(5);

impl Supernode {
    /// Starts fetching `digest` from `upstream` unless it is stored or
    /// already being fetched; returns once its size is known.
    pub async fn ensure_fetching(
        &self,
        upstream: &str,
        repo: RepoName,
        digest: Digest,
    ) -> Result<(), RegistryError> {
        let up = self.upstreams.get(upstream).ok_or_else(|| {
            RegistryError::name_unknown(format!(
                "upstream {upstream:?} is not configured on this supernode"
            ))
        })?;
        // The handle is dropped at once: the download goes on by itself.
        self.fetcher
            .get(&digest, || upstream_source(up.clone(), repo, digest))
            .await?;
        Ok(())
    }

    /// The piece map of `digest` as far as it is known.
    pub fn piece_map_view(&self, digest: &Digest) -> Option<PieceMapView> {
        if let Some(map) = self.fetcher.progress(digest).and_then(|p| p.partial_map()) {
            let complete =
                map.pieces.len() as u32 == shoal_proto::swarm::Layout::of(&map).piece_count();
            return Some(view(Arc::unwrap_or_clone(map), complete));
        }
        self.fetcher
            .store()
            .get_piece_map(digest)
            .map(|m| view(m, true))
    }
}

fn view(map: shoal_proto::PieceMap, complete: bool) -> PieceMapView {
    PieceMapView {
        digest: map.digest,
        size: map.size,
        piece_size: map.piece_size,
        pieces: map.pieces,
        complete,
        seed_addr: None,
    }
}

/// `GET /api/v1/piecemap`.
pub async fn piece_map(State(s): State<Arc<Supernode>>, uri: Uri) -> Response {
    let res = async {
        let (upstream, repo) = target(&s, &uri)?;
        let digest = Digest::parse(&param(&uri, "digest")?)?;
        let known: usize = match query_param(&uri, "known") {
            Some(k) => k
                .parse()
                .map_err(|_| RegistryError::name_invalid("known must be a number"))?,
            None => 0,
        };
        if s.piece_map_view(&digest).is_none() {
            s.ensure_fetching(upstream.name(), repo, digest).await?;
        }
        if let Some(progress) = s.fetcher.progress(&digest) {
            progress.wait_beyond(known, LONG_POLL).await;
        }
        s.piece_map_view(&digest)
            .map(|mut v| {
                v.seed_addr = s.p2p_addr.get().copied();
                Json(v)
            })
            .ok_or_else(|| {
                RegistryError::unavailable("the blob's fetch ended without a piece map; retry")
            })
    };
    match res.await {
        Ok(json) => json.into_response(),
        Err(e) => e.into_response(),
    }
}

/// `POST /api/v1/seed` (behind the signature check).
pub async fn seed(State(s): State<Arc<Supernode>>, Json(req): Json<SeedRequest>) -> Response {
    let repo = match RepoName::parse(&req.repo) {
        Ok(r) => r,
        Err(e) => return RegistryError::from(e).into_response(),
    };
    if !s.upstreams.contains_key(&req.upstream) {
        return RegistryError::name_unknown(format!(
            "upstream {:?} is not configured on this supernode",
            req.upstream
        ))
        .into_response();
    }
    tracing::info!(digest = %req.digest, upstream = %req.upstream, repo = %req.repo, "seeding on the tracker's request");
    tokio::spawn(async move {
        if let Err(e) = s.ensure_fetching(&req.upstream, repo, req.digest).await {
            tracing::warn!(digest = %req.digest, error = %e, "cannot seed");
        }
    });
    StatusCode::ACCEPTED.into_response()
}
