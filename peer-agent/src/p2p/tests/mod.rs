//! Tests of the transport over real sockets on 127.0.0.1 (port 0), with an
//! in-memory piece provider that counts how it is used.

mod auth;
mod fetch;
mod hostile;

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use rand::{RngCore, SeedableRng};
use shoal_proto::wire::ClusterSecret;
use shoal_proto::{Digest, PieceHasher, PieceMap};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use super::*;

pub(super) const SECRET: &[u8; 24] = b"test cluster secret 0001";

pub(super) fn secret(bytes: &[u8]) -> ClusterSecret {
    ClusterSecret::new(bytes.to_vec()).unwrap()
}

/// `len` pseudo-random bytes from `seed`.
pub(super) fn random_blob(len: usize, seed: u64) -> Bytes {
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    let mut v = vec![0u8; len];
    rng.fill_bytes(&mut v);
    Bytes::from(v)
}

/// The piece map of `blob` with `piece_size`.
pub(super) fn map_of(blob: &[u8], piece_size: u32) -> PieceMap {
    let mut h = PieceHasher::new(piece_size);
    h.update(blob);
    h.finish().unwrap()
}

/// How a [`MemProvider`] misbehaves.
#[derive(Default)]
pub(super) enum Mode {
    /// Serves what it has.
    #[default]
    Honest,
    /// Flips a byte of every piece it serves.
    Corrupt,
}

/// Blobs in memory; counts every call so tests can prove nothing was
/// served.
#[derive(Default)]
pub(super) struct MemProvider {
    blobs: HashMap<Digest, (Arc<PieceMap>, Bytes)>,
    missing: Vec<(Digest, u32)>,
    mode: Mode,
    /// If set, `read_piece` waits for a permit of this semaphore (and
    /// consumes it), after telling `entered`.
    gate: Option<(Arc<Semaphore>, mpsc::UnboundedSender<u32>)>,
    pub(super) lookups: AtomicUsize,
    pub(super) reads: AtomicUsize,
}

impl MemProvider {
    pub(super) fn with_blob(blob: Bytes, piece_size: u32) -> (Self, Arc<PieceMap>) {
        let map = Arc::new(map_of(&blob, piece_size));
        let mut p = MemProvider::default();
        p.blobs.insert(map.digest, (map.clone(), blob));
        (p, map)
    }

    pub(super) fn corrupt(mut self) -> Self {
        self.mode = Mode::Corrupt;
        self
    }

    pub(super) fn without(mut self, digest: Digest, index: u32) -> Self {
        self.missing.push((digest, index));
        self
    }

    /// Gates reads: returns the semaphore that releases them and the
    /// channel that reports each read as it starts.
    pub(super) fn gated(mut self) -> (Self, Arc<Semaphore>, mpsc::UnboundedReceiver<u32>) {
        let gate = Arc::new(Semaphore::new(0));
        let (tx, rx) = mpsc::unbounded_channel();
        self.gate = Some((gate.clone(), tx));
        (self, gate, rx)
    }

    pub(super) fn calls(&self) -> (usize, usize) {
        (
            self.lookups.load(Ordering::SeqCst),
            self.reads.load(Ordering::SeqCst),
        )
    }
}

impl PieceProvider for MemProvider {
    fn piece_map(&self, digest: &Digest) -> Option<Arc<PieceMap>> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        self.blobs.get(digest).map(|(m, _)| m.clone())
    }

    fn has_piece(&self, digest: &Digest, index: u32) -> bool {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        self.blobs.contains_key(digest) && !self.missing.contains(&(*digest, index))
    }

    fn read_piece(&self, digest: &Digest, index: u32) -> BoxFuture<'_, io::Result<Bytes>> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        let digest = *digest;
        Box::pin(async move {
            if let Some((gate, entered)) = &self.gate {
                let _ = entered.send(index);
                gate.acquire().await.unwrap().forget();
            }
            let (map, blob) = self.blobs.get(&digest).ok_or(io::ErrorKind::NotFound)?;
            let r = map.piece_range(index);
            let piece = blob.slice(r.start as usize..r.end as usize);
            Ok(match self.mode {
                Mode::Honest => piece,
                Mode::Corrupt => {
                    let mut v = piece.to_vec();
                    v[0] ^= 0xff;
                    Bytes::from(v)
                }
            })
        })
    }
}

/// A running endpoint on 127.0.0.1:0; stops when dropped.
pub(super) struct Node {
    pub(super) ep: P2pEndpoint,
    pub(super) addr: SocketAddr,
    stop: CancellationToken,
}

impl Node {
    /// Fetches piece `index` of `map` from `peer`, expecting an error.
    pub(super) async fn fetch_err(
        &self,
        peer: SocketAddr,
        map: &PieceMap,
        index: u32,
    ) -> FetchError {
        match self.ep.fetch_piece(peer, map, index).await {
            Ok(_) => panic!("piece {index} of {} was fetched", map.digest),
            Err(e) => e,
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

pub(super) struct NodeBuilder {
    secret: ClusterSecret,
    provider: Arc<dyn PieceProvider>,
    max_uploads: usize,
    limiter: Option<Arc<RateLimiter>>,
    events: Option<mpsc::Sender<PeerEvent>>,
}

pub(super) fn node(secret_bytes: &[u8], provider: Arc<dyn PieceProvider>) -> NodeBuilder {
    NodeBuilder {
        secret: secret(secret_bytes),
        provider,
        max_uploads: 16,
        limiter: None,
        events: None,
    }
}

/// A node with nothing to serve.
pub(super) fn client(secret_bytes: &[u8]) -> Node {
    node(secret_bytes, Arc::new(MemProvider::default())).start()
}

impl NodeBuilder {
    pub(super) fn max_uploads(mut self, n: usize) -> Self {
        self.max_uploads = n;
        self
    }

    pub(super) fn limiter(mut self, l: Arc<RateLimiter>) -> Self {
        self.limiter = Some(l);
        self
    }

    pub(super) fn events(mut self, tx: mpsc::Sender<PeerEvent>) -> Self {
        self.events = Some(tx);
        self
    }

    pub(super) fn start(self) -> Node {
        let tls = ClusterTls::new(&self.secret).unwrap();
        let mut server = PieceServer::new(self.provider, self.max_uploads);
        if let Some(l) = self.limiter {
            server = server.with_rate_limit(l);
        }
        let config = P2pConfig::with_listen("127.0.0.1:0".parse().unwrap());
        let ep = P2pEndpoint::bind(config, &tls, server, self.events).unwrap();
        let addr = ep.local_addr().unwrap();
        let stop = CancellationToken::new();
        let runner = ep.clone();
        let token = stop.clone();
        tokio::spawn(async move { runner.run(token.cancelled_owned()).await });
        Node { ep, addr, stop }
    }
}
