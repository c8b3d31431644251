//! Serving pieces of what the fetcher holds: complete blobs in the content
//! store (with their stored piece maps) and downloads still running (with
//! the piece hashes computed so far), so a seed serves pieces while its own
//! upstream fetch is still going.

use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use shoal_proto::{Digest, PieceMap};

use crate::fetch::Fetcher;
use crate::p2p::PieceProvider;

/// A [`PieceProvider`] over a [`Fetcher`] and its content store.
pub struct FetcherPieces {
    fetcher: Fetcher,
}

impl FetcherPieces {
    /// Serves the pieces `fetcher` holds.
    pub fn new(fetcher: Fetcher) -> Self {
        FetcherPieces { fetcher }
    }

    /// Where the piece bytes are now, and the map that locates them.
    fn locate(&self, digest: &Digest) -> Option<(PieceMap, PathBuf)> {
        if let Some(p) = self.fetcher.progress(digest)
            && let (Some(map), Some(tmp)) = (p.partial_map(), p.temp_file())
        {
            return Some((map, (*tmp).clone()));
        }
        let map = self.fetcher.store().get_piece_map(digest)?;
        Some((map, self.fetcher.store().blob_path(digest)))
    }
}

impl PieceProvider for FetcherPieces {
    fn piece_map(&self, digest: &Digest) -> Option<Arc<PieceMap>> {
        self.locate(digest).map(|(map, _)| Arc::new(map))
    }

    fn has_piece(&self, digest: &Digest, index: u32) -> bool {
        match self.fetcher.progress(digest) {
            Some(p) if p.temp_file().is_some() => p.has_piece(index),
            _ => self
                .fetcher
                .store()
                .get_piece_map(digest)
                .is_some_and(|m| index < m.piece_count()),
        }
    }

    fn read_piece(&self, digest: &Digest, index: u32) -> BoxFuture<'_, io::Result<Bytes>> {
        let located = self.locate(digest);
        let final_path = self.fetcher.store().blob_path(digest);
        async move {
            let (map, path) =
                located.ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "blob not held"))?;
            if index >= map.piece_count() {
                return Err(io::Error::new(io::ErrorKind::NotFound, "piece not held"));
            }
            let range = map.piece_range(index);
            tokio::task::spawn_blocking(move || {
                // A download may finish (and rename its file) between
                // locating and opening: fall back to the stored blob.
                let file = match std::fs::File::open(&path) {
                    Ok(f) => f,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        std::fs::File::open(&final_path)?
                    }
                    Err(e) => return Err(e),
                };
                let mut buf = vec![0u8; (range.end - range.start) as usize];
                // These bytes were verified when written (against the
                // piece map, or as part of the whole-blob digest); the
                // receiver verifies them again against its map.
                file.read_exact_at(&mut buf, range.start)?;
                Ok(Bytes::from(buf))
            })
            .await
            .map_err(io::Error::other)?
        }
        .boxed()
    }
}

/// How a daemon runs its piece transport.
#[derive(Debug, Clone)]
pub struct P2pOptions {
    /// UDP address for QUIC.
    pub listen: std::net::SocketAddr,
    /// The cluster secret; peers without it get nothing.
    pub secret: shoal_proto::wire::ClusterSecret,
    /// Most pieces sent at once; further requests are refused as busy.
    pub max_uploads: usize,
    /// Upload cap in bytes per second, if any.
    pub upload_rate: Option<u64>,
}

/// Binds the QUIC endpoint that serves `provider`'s pieces to members of
/// the cluster (and fetches pieces from them).
pub fn bind_p2p(
    opts: &P2pOptions,
    provider: Arc<dyn PieceProvider>,
) -> anyhow::Result<crate::p2p::endpoint::P2pEndpoint> {
    bind_p2p_with_events(opts, provider, None)
}

/// [`bind_p2p`], delivering the peers' `have` updates and connection
/// events to `events` (what an agent's swarm needs).
pub fn bind_p2p_with_events(
    opts: &P2pOptions,
    provider: Arc<dyn PieceProvider>,
    events: Option<tokio::sync::mpsc::Sender<crate::p2p::PeerEvent>>,
) -> anyhow::Result<crate::p2p::endpoint::P2pEndpoint> {
    use anyhow::Context;
    let tls = crate::p2p::tls::ClusterTls::new(&opts.secret).context("setting up cluster TLS")?;
    let mut server = crate::p2p::server::PieceServer::new(provider, opts.max_uploads);
    if let Some(rate) = opts.upload_rate {
        // A burst of a quarter second keeps the cap smooth at piece scale.
        let burst = (rate / 4).max(64 * 1024);
        server = server.with_rate_limit(Arc::new(crate::p2p::limit::RateLimiter::new(rate, burst)));
    }
    crate::p2p::endpoint::P2pEndpoint::bind(
        crate::p2p::P2pConfig::with_listen(opts.listen),
        &tls,
        server,
        events,
    )
    .with_context(|| format!("cannot listen for peers on {}", opts.listen))
}
