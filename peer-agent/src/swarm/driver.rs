//! The event loop of one swarm download: moves events between the network
//! (supernode, tracker, peers) and [`Download`], nothing more.
//!
//! 1. The piece map comes from the supernode (`GET /api/v1/piecemap`),
//!    long-polled while the supernode's own fetch is running; only pieces
//!    whose hash is known are ever handed to the scheduler.
//! 2. The supernode's QUIC address is always a [`PeerKind::Seed`] peer.
//!    Other peers come from the tracker (announced with our bitfield, at
//!    the tracker's interval) and from peers that send us their bitfield;
//!    we send ours to every peer once per connection, and a `have` for
//!    each piece we verify.
//! 3. [`Download`]'s requests run concurrently through
//!    [`P2pEndpoint::fetch_piece`](crate::p2p::P2pEndpoint::fetch_piece)
//!    (which verifies each piece against the map); outcomes go back to it.
//! 4. Fallback: when nothing was verified for [`STALL`], a seed dropped
//!    for timeouts is reconnected; if it still is connected, some missing
//!    pieces are fetched over HTTP from the supernode (range requests, each piece
//!    verified against the map). A pull therefore completes without the
//!    tracker and without peers.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use shoal_proto::swarm::{
    Action, Download, DownloadConfig, DropReason, Layout, PeerId, PeerKind, Rejection,
};
use shoal_proto::time::Time;
use shoal_proto::tracker_wire::AnnounceResponse;
use shoal_proto::wire::HaveMessage;
use shoal_proto::{Bitfield, PieceMap};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::outbox::Batch;
use super::tracker::AnnounceError;
use super::{BYTES_RECEIVED, BlobRef, PEERS_DROPPED, PIECES_REJECTED, PIECES_VERIFIED, Swarm};
use crate::fetch::{FetchError, PieceTask};
use crate::p2p::{self, RateLimiter, VerifiedPiece};
use crate::registry::RegistryError;
use crate::supernode_client::PieceMapView;

mod http;

/// Without a verified piece for this long, fall back to HTTP.
const STALL: Duration = Duration::from_secs(10);
/// Stalls in a row with the seed connected before HTTP is used.
const SEED_STALLS: u32 = 3;
/// Times a seed dropped for timeouts is reconnected before HTTP is used.
const SEED_RETRIES: u32 = 2;
/// Most pieces fetched over HTTP per stall, before the swarm gets another
/// chance.
const FALLBACK_PIECES: usize = 8;
/// Wait before asking the supernode again after a failed map request.
const MAP_RETRY: Duration = Duration::from_secs(1);
/// The id of the supernode in the scheduler.
const SEED: PeerId = PeerId(0);
/// A peer that refuses more pieces than this which it said it holds is
/// dropped for the rest of the download and its bitfields are ignored: it
/// lies about its pieces (an honest peer refuses a claimed piece only in
/// the moment between evicting a blob and saying so). Without this, a
/// liar that keeps re-sending its bitfield is asked again and again.
const MAX_NOT_HELD: u32 = 8;

/// The result of one piece request.
struct Outcome {
    peer: PeerId,
    piece: u32,
    result: Result<VerifiedPiece, p2p::FetchError>,
    /// Time spent waiting for the download cap, then on the request.
    waited: Duration,
    took: Duration,
}

/// A peer as the driver knows it.
struct Known {
    id: PeerId,
    /// Every piece it said it holds (also those whose hash we do not know
    /// yet, which the scheduler is told about once we do).
    bits: Bitfield,
}

/// One download's loop; see the module documentation.
pub struct Driver {
    swarm: Arc<Swarm>,
    task: PieceTask,
    blob: BlobRef,
    events: mpsc::Receiver<PeerEvent>,
}

use crate::p2p::PeerEvent;

/// The loop's state once the piece map's layout is known.
struct Running {
    swarm: Arc<Swarm>,
    task: PieceTask,
    blob: BlobRef,
    dl: Download,
    start: Instant,
    /// The piece map as far as hashes are known.
    map: Arc<PieceMap>,
    complete_map: bool,
    seed: Option<SocketAddr>,
    peers: HashMap<SocketAddr, Known>,
    addrs: HashMap<PeerId, SocketAddr>,
    next_id: u64,
    /// Peers that got our bitfield on their current connection.
    told: HashSet<SocketAddr>,
    requests: HashMap<(PeerId, u32), AbortHandle>,
    outcomes: (mpsc::Sender<Outcome>, mpsc::Receiver<Outcome>),
    last_progress: Instant,
    /// Stalls in a row with the seed connected.
    stalls: u32,
    /// Times the seed was reconnected after being dropped.
    seed_retries: u32,
    /// Claimed pieces each peer refused as not held (see [`MAX_NOT_HELD`]).
    not_held: HashMap<SocketAddr, u32>,
}

impl Driver {
    /// A driver filling `task` with `blob`, fed `events` for it.
    pub fn new(
        swarm: Arc<Swarm>,
        task: PieceTask,
        blob: BlobRef,
        events: mpsc::Receiver<PeerEvent>,
    ) -> Self {
        Driver {
            swarm,
            task,
            blob,
            events,
        }
    }

    /// Runs the download to completion; returns the complete piece map.
    pub async fn run(mut self) -> Result<PieceMap, FetchError> {
        let view = self
            .swarm
            .opts
            .supernode
            .piece_map(&self.blob.upstream, &self.blob.repo, &self.blob.digest, 0)
            .await?;
        let map = view.to_map()?;
        let layout = Layout::of(&map);
        let have = self.task.start(layout).await?;
        if !self.task.set_known_hashes(&map.pieces) {
            return Err(FetchError::Io(
                "the supernode's piece map contradicts the one pieces were verified against".into(),
            ));
        }
        let config = DownloadConfig {
            // The streaming window (the first missing pieces from the
            // client's read position are asked first) stays at its
            // default: the supernode's seeding policy redirects agents
            // that all ask it for the same next pieces to different ones,
            // which without the policy left them nothing to trade.
            //
            // The seed only for pieces no connected peer has or that it
            // hinted: its upload is the swarm's bottleneck, and a piece a
            // peer holds is better fetched there even if it is busy for a
            // moment (smoke: 1.14-1.16x the bound, against 1.17-1.26x with
            // two requests kept on the seed).
            seed_starve_in_flight: 0,
            // A capped seed shared by many peers is slow, not dead.
            request_timeout: Duration::from_secs(15),
            download_rate: self.swarm.opts.download_rate.map(|r| r as f64),
            ..DownloadConfig::default()
        };
        let dl = Download::new(config, layout, have, self.swarm.rng_seed());
        let seed = self.seed_addr(&view).await;
        let now = Instant::now();
        let mut r = Running {
            swarm: self.swarm.clone(),
            task: self.task.clone(),
            blob: self.blob.clone(),
            dl,
            start: now,
            map: Arc::new(map),
            complete_map: view.complete,
            seed,
            peers: HashMap::new(),
            addrs: HashMap::new(),
            next_id: 1,
            told: HashSet::new(),
            requests: HashMap::new(),
            outcomes: mpsc::channel(256),
            last_progress: now,
            stalls: 0,
            seed_retries: 0,
            not_held: HashMap::new(),
        };
        r.add_seed();
        for (addr, bits) in self.swarm.take_early(&self.blob.digest) {
            r.peer_bitfield(addr, bits);
        }
        r.run(&mut self.events).await
    }

    /// The supernode's QUIC address, with the URL's host for an
    /// unspecified IP.
    async fn seed_addr(&self, view: &PieceMapView) -> Option<SocketAddr> {
        let addr = view.seed_addr?;
        if !addr.ip().is_unspecified() {
            return Some(addr);
        }
        let host = self.swarm.opts.supernode_host.as_deref()?;
        let mut found = tokio::net::lookup_host((host, addr.port())).await.ok()?;
        found.next()
    }
}

impl Running {
    fn now(&self) -> Time {
        Time::from_duration(self.start.elapsed())
    }

    fn known(&self) -> u32 {
        self.map.piece_count()
    }

    /// `bits` limited to the pieces whose hash is known.
    fn masked(&self, bits: &Bitfield) -> Bitfield {
        let mut out = Bitfield::new(self.dl.have().len());
        for i in bits.iter_held().take_while(|i| *i < self.known()) {
            out.set(i);
        }
        out
    }

    fn add_seed(&mut self) {
        let Some(addr) = self.seed else { return };
        let mut bits = Bitfield::new(self.dl.have().len());
        for i in 0..self.known() {
            bits.set(i);
        }
        let now = self.now();
        self.dl
            .handle_peer_connected(now, SEED, PeerKind::Seed, bits.clone());
        self.addrs.insert(SEED, addr);
        self.peers.insert(addr, Known { id: SEED, bits });
        // The seed's policy hands out the pieces fewest peers have: it
        // needs to know ours.
        self.tell(addr);
    }

    async fn run(
        &mut self,
        events: &mut mpsc::Receiver<PeerEvent>,
    ) -> Result<PieceMap, FetchError> {
        let mut map_poll = (!self.complete_map).then(|| self.poll_map(Duration::ZERO));
        let mut announce: Option<BoxFuture<'static, Result<AnnounceResponse, AnnounceError>>> =
            None;
        let mut next_announce = Instant::now();
        let has_tracker = self.swarm.opts.tracker.is_some();
        loop {
            // The node's download cap is shared by its running downloads.
            if let Some(budget) = self.swarm.opts.download_rate {
                let share = budget as f64 / self.swarm.running_downloads().max(1) as f64;
                self.dl.set_budget_share(share);
            }
            while let Some(action) = self.dl.poll_action() {
                match action {
                    Action::Request { peer, piece } => self.request(peer, piece),
                    Action::Cancel { peer, piece } => {
                        if let Some(h) = self.requests.remove(&(peer, piece)) {
                            h.abort();
                        }
                    }
                    Action::DropPeer { peer, reason } => self.drop_peer(peer, reason),
                    Action::Complete => {}
                }
            }
            if self.dl.is_complete() && self.complete_map {
                let aborted = self.requests.len();
                for (_, h) in self.requests.drain() {
                    h.abort();
                }
                let st = self.dl.stats();
                tracing::info!(
                    digest = %self.blob.digest,
                    requests = st.requests,
                    pieces = st.pieces,
                    duplicates = st.duplicates,
                    timeouts = st.timeouts,
                    busy = st.busy,
                    failed = st.failed,
                    cancels = st.cancels,
                    aborted_at_end = aborted,
                    "swarm download complete"
                );
                return Ok((*self.map).clone());
            }
            if announce.is_none()
                && Instant::now() >= next_announce
                && let Some(tracker) = self.swarm.opts.tracker.clone()
            {
                let req = self
                    .swarm
                    .announce_request(&self.blob, Some(self.dl.have().clone()));
                announce = Some(async move { tracker.announce(&req).await }.boxed());
            }
            let timer = self
                .dl
                .poll_timeout()
                .map(|t| self.start + t.since_epoch())
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            let stall_at = self.last_progress + STALL;
            tokio::select! {
                Some(o) = self.outcomes.1.recv() => self.outcome(o).await?,
                Some(ev) = events.recv() => self.event(ev),
                res = async { map_poll.as_mut().expect("guarded").await }, if map_poll.is_some() => {
                    map_poll = self.map_result(res);
                }
                res = async { announce.as_mut().expect("guarded").await }, if announce.is_some() => {
                    announce = None;
                    next_announce = Instant::now() + self.announced(res);
                }
                () = tokio::time::sleep_until(timer) => {
                    let now = self.now();
                    self.dl.handle_timeout(now);
                }
                () = tokio::time::sleep_until(stall_at) => self.http_fallback().await?,
                // Wakes the loop for the next announce (started at the top).
                () = tokio::time::sleep_until(next_announce), if announce.is_none() && has_tracker => {}
            }
        }
    }

    /// Asks the supernode for more hashes than we know (after `delay`).
    fn poll_map(&self, delay: Duration) -> BoxFuture<'static, Result<PieceMapView, RegistryError>> {
        let client = self.swarm.opts.supernode.clone();
        let blob = self.blob.clone();
        let known = self.known() as usize;
        async move {
            tokio::time::sleep(delay).await;
            client
                .piece_map(&blob.upstream, &blob.repo, &blob.digest, known)
                .await
        }
        .boxed()
    }

    /// Takes in a grown map; returns the next poll, if the map is partial.
    fn map_result(
        &mut self,
        res: Result<PieceMapView, RegistryError>,
    ) -> Option<BoxFuture<'static, Result<PieceMapView, RegistryError>>> {
        let view = match res.and_then(|v| v.to_map().map(|m| (m, v.complete))) {
            Ok(v) => v,
            Err(e) => {
                tracing::debug!(error = %e, "piece map poll failed");
                return Some(self.poll_map(MAP_RETRY));
            }
        };
        let (map, complete) = view;
        let old = self.known();
        if map.size == self.map.size
            && map.piece_size == self.map.piece_size
            && map.piece_count() > old
        {
            if !self.task.set_known_hashes(&map.pieces) {
                tracing::warn!(digest = %self.blob.digest,
                    "ignoring a piece map from the supernode that changes hashes it sent before");
                return Some(self.poll_map(MAP_RETRY));
            }
            self.map = Arc::new(map);
            self.complete_map = complete;
            let now = self.now();
            let new = self.known();
            let mut haves = Vec::new();
            for k in self.peers.values() {
                for i in old..new {
                    if k.id == SEED || k.bits.get(i) {
                        haves.push((k.id, i));
                    }
                }
            }
            for (id, i) in haves {
                self.dl.handle_have(now, id, i);
            }
        }
        (!self.complete_map).then(|| self.poll_map(Duration::ZERO))
    }

    /// Connects to the peers the tracker named; returns when to announce
    /// next.
    fn announced(&mut self, res: Result<AnnounceResponse, AnnounceError>) -> Duration {
        let reply = match res {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(error = %e, "announce failed");
                return super::DEFAULT_INTERVAL;
            }
        };
        tracing::debug!(digest = %self.blob.digest, peers = reply.peers.len(), "announced");
        for p in reply.peers {
            if p.peer == self.swarm.opts.peer_id {
                continue;
            }
            let Ok(addr) = p.addr.parse::<SocketAddr>() else {
                continue;
            };
            if Some(addr) == self.seed || addr == self.swarm.opts.advertise || self.shunned(addr) {
                continue;
            }
            self.tell(addr);
        }
        Duration::from_millis(reply.interval_ms.clamp(100, 60_000))
    }

    /// Sends our bitfield to `addr`, once per connection.
    fn tell(&mut self, addr: SocketAddr) {
        if !self.told.insert(addr) {
            return;
        }
        let msg = HaveMessage::Bitfield {
            digest: self.blob.digest,
            bits: self.dl.have().clone(),
        };
        self.swarm.haves.now(vec![(addr, vec![msg])]);
    }

    fn event(&mut self, ev: PeerEvent) {
        let now = self.now();
        match ev {
            PeerEvent::Connected { .. } => {}
            PeerEvent::Disconnected { peer } => {
                self.told.remove(&peer);
                if Some(peer) != self.seed
                    && let Some(k) = self.peers.remove(&peer)
                {
                    self.addrs.remove(&k.id);
                    self.dl.handle_peer_disconnected(now, k.id);
                }
            }
            PeerEvent::Have { peer, msg } => match msg {
                HaveMessage::Bitfield { bits, .. } => self.peer_bitfield(peer, bits),
                HaveMessage::Have { index, .. } => {
                    if let Some(k) = self.peers.get_mut(&peer)
                        && index < k.bits.len()
                    {
                        k.bits.set(index);
                        if index < self.map.piece_count() {
                            let id = k.id;
                            self.dl.handle_have(now, id, index);
                        }
                    }
                }
                HaveMessage::Forget { .. } => {
                    if let Some(k) = self.peers.remove(&peer) {
                        self.addrs.remove(&k.id);
                        self.dl.handle_peer_disconnected(now, k.id);
                    }
                }
            },
        }
    }

    /// A peer sent its whole bitfield: (re)connect it in the scheduler and
    /// make sure it has ours.
    fn peer_bitfield(&mut self, addr: SocketAddr, bits: Bitfield) {
        tracing::debug!(digest = %self.blob.digest, peer = %addr, pieces = bits.count(), "peer bitfield");
        if bits.len() != self.dl.have().len() || Some(addr) == self.seed || self.shunned(addr) {
            return;
        }
        let id = match self.peers.get(&addr) {
            Some(k) => k.id,
            None => {
                let id = PeerId(self.next_id);
                self.next_id += 1;
                id
            }
        };
        let now = self.now();
        let masked = self.masked(&bits);
        self.dl
            .handle_peer_connected(now, id, PeerKind::Peer, masked);
        self.addrs.insert(id, addr);
        self.peers.insert(addr, Known { id, bits });
        self.tell(addr);
    }

    /// Whether `addr` is not to be asked for pieces: banned agent-wide for
    /// a bad piece, or caught lying about its pieces in this download.
    fn shunned(&self, addr: SocketAddr) -> bool {
        self.swarm.is_banned(addr) || self.not_held.get(&addr) > Some(&MAX_NOT_HELD)
    }

    fn drop_peer(&mut self, peer: PeerId, reason: DropReason) {
        tracing::info!(?peer, ?reason, addr = ?self.addrs.get(&peer), "dropping peer");
        let label = match reason {
            DropReason::CorruptPiece => "corrupt_piece",
            DropReason::Unresponsive => "unresponsive",
            DropReason::ProtocolViolation => "protocol_violation",
            DropReason::Banned => "banned",
        };
        metrics::counter!(PEERS_DROPPED, "reason" => label).increment(1);
        if let Some(addr) = self.addrs.remove(&peer) {
            self.peers.remove(&addr);
            if peer != SEED && matches!(reason, DropReason::CorruptPiece | DropReason::Banned) {
                self.swarm.ban(addr);
            }
        }
        self.abort_requests(peer);
    }

    fn request(&mut self, peer: PeerId, piece: u32) {
        let Some(addr) = self.addrs.get(&peer).copied() else {
            let now = self.now();
            self.dl.handle_request_failed(now, peer, piece);
            return;
        };
        let (endpoint, map, tx) = (
            self.swarm.endpoint.clone(),
            self.map.clone(),
            self.outcomes.0.clone(),
        );
        let limiter = self.swarm.limiter.clone();
        let handle = tokio::spawn(async move {
            // The download cap is spent on pieces asked for; a request
            // cancelled before it went out, or answered without a body
            // (busy, redirect, not held), gives its bytes back.
            let asked = Instant::now();
            let spent = match limiter {
                Some(l) if piece < map.piece_count() => {
                    let r = map.piece_range(piece);
                    Some(Budget::acquire(l, r.end - r.start).await)
                }
                _ => None,
            };
            let sent = Instant::now();
            let result = endpoint.fetch_piece(addr, &map, piece).await;
            let (waited, took) = (sent - asked, sent.elapsed());
            if let Some(b) = spent
                && no_body(&result)
            {
                b.refund();
            }
            let _ = tx
                .send(Outcome {
                    peer,
                    piece,
                    result,
                    waited,
                    took,
                })
                .await;
        });
        self.requests.insert((peer, piece), handle.abort_handle());
    }

    async fn outcome(&mut self, o: Outcome) -> Result<(), FetchError> {
        self.requests.remove(&(o.peer, o.piece));
        match o.result {
            Ok(piece) => {
                let len = piece.len();
                tracing::trace!(peer = ?o.peer, piece = o.piece, waited = ?o.waited, took = ?o.took, "piece received");
                let fresh = self
                    .task
                    .put_piece(o.piece, piece.chunks().to_vec())
                    .await?;
                if fresh {
                    let source = if o.peer == SEED { "supernode" } else { "peer" };
                    metrics::counter!(BYTES_RECEIVED, "source" => source).increment(len);
                    self.verified(o.piece);
                }
                let now = self.now();
                self.dl.handle_piece_verified(now, o.peer, o.piece);
                // A seed whose connection was lost gets our bitfield again.
                if let Some(seed) = self.seed
                    && !self.told.contains(&seed)
                {
                    self.tell(seed);
                }
            }
            Err(e) => {
                let now = self.now();
                tracing::debug!(peer = ?o.peer, piece = o.piece, waited = ?o.waited, took = ?o.took, error = %e, "piece request failed");
                if e.is_misbehaviour() {
                    metrics::counter!(PIECES_REJECTED).increment(1);
                    self.dl.handle_piece_corrupt(now, o.peer, o.piece);
                } else {
                    match e {
                        p2p::FetchError::Busy { .. } => {
                            self.dl
                                .handle_request_rejected(now, o.peer, o.piece, Rejection::Busy)
                        }
                        p2p::FetchError::Redirect { hint, .. } => {
                            // A seed pointing us at pieces we hold has a
                            // wrong picture of ours: tell it again.
                            if hint.iter().any(|&i| self.dl.have().get(i))
                                && let Some(addr) = self.addrs.get(&o.peer).copied()
                            {
                                self.told.remove(&addr);
                                self.tell(addr);
                            }
                            self.dl.handle_request_rejected(
                                now,
                                o.peer,
                                o.piece,
                                Rejection::Redirect { hint },
                            )
                        }
                        p2p::FetchError::NotHave { peer: addr } => {
                            self.dl.handle_request_rejected(
                                now,
                                o.peer,
                                o.piece,
                                Rejection::NotHeld,
                            );
                            self.not_held_by(o.peer, addr);
                        }
                        _ => self.dl.handle_request_failed(now, o.peer, o.piece),
                    }
                }
            }
        }
        Ok(())
    }

    /// Aborts the requests in flight to `peer`.
    fn abort_requests(&mut self, peer: PeerId) {
        self.requests.retain(|(p, _), h| {
            if *p == peer {
                h.abort();
            }
            *p != peer
        });
    }

    /// `peer` (at `addr`) refused a piece it claimed: past
    /// [`MAX_NOT_HELD`] such refusals it is dropped for this download.
    fn not_held_by(&mut self, peer: PeerId, addr: SocketAddr) {
        if peer == SEED || self.addrs.get(&peer) != Some(&addr) {
            return;
        }
        let n = self.not_held.entry(addr).or_default();
        *n += 1;
        if *n == MAX_NOT_HELD + 1 {
            tracing::info!(%addr, "dropping peer: it refuses pieces it claims to hold");
            metrics::counter!(PEERS_DROPPED, "reason" => "lied_about_pieces").increment(1);
            let now = self.now();
            self.dl.handle_peer_disconnected(now, peer);
            self.peers.remove(&addr);
            self.addrs.remove(&peer);
            self.abort_requests(peer);
        }
    }

    /// Bookkeeping for a newly written piece: metrics, and its `have`
    /// queued in the agent's outbox for every peer told about this blob.
    fn verified(&mut self, piece: u32) {
        self.last_progress = Instant::now();
        self.stalls = 0;
        metrics::counter!(PIECES_VERIFIED).increment(1);
        // A peer known to hold the piece has no use for hearing that we
        // do: it will not ask us for it. The seed holds everything but is
        // told anyway: it hands out the pieces fewest peers have.
        let msg = HaveMessage::Have {
            digest: self.blob.digest,
            index: piece,
        };
        let batch: Batch = self
            .told
            .iter()
            .filter(|addr| {
                let known = self.peers.get(addr).filter(|_| Some(**addr) != self.seed);
                !known.is_some_and(|k| k.bits.get(piece))
            })
            .map(|addr| (*addr, vec![msg.clone()]))
            .collect();
        self.swarm.haves.batched(batch);
    }
}

/// Download-cap bytes taken for one request.
struct Budget {
    limiter: Arc<RateLimiter>,
    bytes: u64,
}

impl Budget {
    /// Waits until `bytes` of the cap are available and takes them; if the
    /// wait is abandoned (the request cancelled before it went out), they
    /// are given back.
    async fn acquire(limiter: Arc<RateLimiter>, bytes: u64) -> Budget {
        let waiting = RefundOnDrop(Some(Budget { limiter, bytes }));
        if let Some(b) = &waiting.0 {
            b.limiter.acquire(b.bytes).await;
        }
        waiting.disarm()
    }

    /// Gives the bytes back: the request used none.
    fn refund(self) {
        self.limiter.refund(self.bytes);
    }
}

/// A [`Budget`] given back if dropped before [`RefundOnDrop::disarm`].
struct RefundOnDrop(Option<Budget>);

impl RefundOnDrop {
    fn disarm(mut self) -> Budget {
        self.0.take().expect("disarmed once")
    }
}

impl Drop for RefundOnDrop {
    fn drop(&mut self) {
        if let Some(b) = self.0.take() {
            b.refund();
        }
    }
}

/// Whether a request ended before any byte of the piece came (so the
/// download cap was not used).
fn no_body(result: &Result<VerifiedPiece, p2p::FetchError>) -> bool {
    use p2p::FetchError as E;
    matches!(
        result,
        Err(E::NoSuchPiece { .. }
            | E::Connect { .. }
            | E::NotHave { .. }
            | E::Busy { .. }
            | E::Redirect { .. }
            | E::Refused { .. })
    )
}
