//! Serving pieces of what the fetcher holds: complete blobs in the content
//! store (with their stored piece maps) and downloads still running (with
//! the piece hashes computed so far), so a seed serves pieces while its own
//! upstream fetch is still going.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use shoal_proto::{Digest, PieceMap};

use crate::blob_file::BlobFile;
use crate::fetch::Fetcher;
use crate::p2p::PieceProvider;

/// Stored blobs whose piece maps are kept decoded; past this many the
/// cache starts afresh.
const MAX_CACHED_MAPS: usize = 1024;

/// A [`PieceProvider`] over a [`Fetcher`] and its content store.
///
/// Serving a piece costs one `pread` into a reused buffer: the piece maps
/// of stored blobs are decoded once, running downloads lend their open
/// file, and buffers come back to a pool when the transport is done with
/// them (fresh buffers would cost a page fault per 4 KiB).
pub struct FetcherPieces {
    fetcher: Fetcher,
    maps: Mutex<HashMap<Digest, Arc<PieceMap>>>,
}

/// Where a piece's bytes are.
enum Located {
    /// A running download: its map so far and its open file.
    Running(Arc<PieceMap>, Arc<BlobFile>),
    /// A complete blob in the store.
    Stored(Arc<PieceMap>),
}

impl Located {
    fn map(&self) -> &PieceMap {
        match self {
            Located::Running(map, _) | Located::Stored(map) => map,
        }
    }
}

impl FetcherPieces {
    /// Serves the pieces `fetcher` holds.
    pub fn new(fetcher: Fetcher) -> Self {
        FetcherPieces {
            fetcher,
            maps: Mutex::default(),
        }
    }

    /// Where the piece bytes are now, and the map that locates them.
    fn locate(&self, digest: &Digest) -> Option<Located> {
        if let Some(p) = self.fetcher.progress(digest)
            && let (Some(map), Some(file)) = (p.partial_map(), p.file())
        {
            return Some(Located::Running(map, file));
        }
        self.stored_map(digest).map(Located::Stored)
    }

    /// The piece map of a stored blob, decoded once; forgotten when the
    /// blob is gone (evicted).
    fn stored_map(&self, digest: &Digest) -> Option<Arc<PieceMap>> {
        let store = self.fetcher.store();
        let cached = self.maps.lock().expect("lock").get(digest).cloned();
        if let Some(map) = cached {
            if store.blob_path(digest).is_file() {
                return Some(map);
            }
            self.maps.lock().expect("lock").remove(digest);
            return None;
        }
        let map = Arc::new(store.get_piece_map(digest)?);
        let mut maps = self.maps.lock().expect("lock");
        if maps.len() >= MAX_CACHED_MAPS {
            maps.clear();
        }
        maps.insert(*digest, map.clone());
        Some(map)
    }
}

impl PieceProvider for FetcherPieces {
    fn piece_map(&self, digest: &Digest) -> Option<Arc<PieceMap>> {
        match self.locate(digest)? {
            Located::Running(map, _) | Located::Stored(map) => Some(map),
        }
    }

    fn has_piece(&self, digest: &Digest, index: u32) -> bool {
        match self.fetcher.progress(digest) {
            Some(p) if p.file().is_some() => p.has_piece(index),
            _ => self
                .stored_map(digest)
                .is_some_and(|m| index < m.piece_count()),
        }
    }

    fn read_piece(&self, digest: &Digest, index: u32) -> BoxFuture<'_, io::Result<Bytes>> {
        let located = self.locate(digest);
        let final_path = self.fetcher.store().blob_path(digest);
        async move {
            let located =
                located.ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "blob not held"))?;
            let map = located.map();
            if index >= map.piece_count() {
                return Err(io::Error::new(io::ErrorKind::NotFound, "piece not held"));
            }
            let range = map.piece_range(index);
            tokio::task::spawn_blocking(move || {
                let file = match located {
                    Located::Running(_, file) => file,
                    // Pieces for peers bypass the page cache even when
                    // the blob is complete: one piece per request, read
                    // once per peer, seldom worth a cached copy.
                    Located::Stored(_) => Arc::new(BlobFile::open_direct(&final_path)?),
                };
                // These bytes were verified when written (against the
                // piece map, or as part of the whole-blob digest); the
                // receiver verifies them again against its map.
                file.read_at(range.start, (range.end - range.start) as usize)
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
    /// Largest UDP payload accepted and probed for
    /// ([`crate::p2p::P2pConfig::max_udp_payload`]).
    pub max_udp_payload: u16,
}

/// Binds the QUIC endpoint serving `provider`'s pieces, with the upload
/// rate and slot limits of `opts`; `events`, if given, receives the peers'
/// `have` updates and connection events (what an agent's swarm and a
/// seeding policy need); `gate`, if given, decides which held pieces each
/// peer may have (the supernode's seeding policy).
pub fn bind_p2p(
    opts: &P2pOptions,
    provider: Arc<dyn PieceProvider>,
    events: Option<tokio::sync::mpsc::Sender<crate::p2p::PeerEvent>>,
    gate: Option<Arc<dyn crate::p2p::ServeGate>>,
) -> anyhow::Result<crate::p2p::endpoint::P2pEndpoint> {
    use anyhow::Context;
    let tls = crate::p2p::tls::ClusterTls::new(&opts.secret).context("setting up cluster TLS")?;
    let mut server = crate::p2p::server::PieceServer::new(provider, opts.max_uploads);
    if let Some(rate) = opts.upload_rate {
        // A burst of a quarter second keeps the cap smooth at piece scale.
        let burst = (rate / 4).max(64 * 1024);
        server = server.with_rate_limit(Arc::new(crate::p2p::limit::RateLimiter::new(rate, burst)));
    }
    if let Some(gate) = gate {
        server = server.with_gate(gate);
    }
    crate::p2p::endpoint::P2pEndpoint::bind(
        crate::p2p::P2pConfig {
            max_udp_payload: opts.max_udp_payload,
            ..crate::p2p::P2pConfig::with_listen(opts.listen)
        },
        &tls,
        server,
        events,
    )
    .with_context(|| format!("cannot listen for peers on {}", opts.listen))
}
