//! The agent's download scheduler for one blob.
//!
//! Decides which piece to request from which connected peer, and when to
//! give up on a request or a peer. The goals come from DESIGN.md
//! ("Scheduling goals") and from where BitTorrent loses in BASELINES.md:
//!
//! - **Streaming**: the pieces just past the client's read position come
//!   first, so the in-order HTTP stream to Docker never starves.
//! - **Rarest first** among the rest, ties broken by a per-download random
//!   order (seeded), so that peers fetch different pieces and have
//!   something to trade.
//! - **Every upload busy**: each peer gets a pipeline of requests sized
//!   from its measured throughput times a target latency (with a floor and
//!   a cap), so its link never idles between requests.
//! - **The seed as a last resort**: a seed is asked for pieces no other
//!   connected peer has, for pieces it hinted, or when the other peers
//!   cannot keep this download busy. Its upload goes to new pieces.
//! - **End-game** duplicates only once every missing piece is requested.
//! - **Safety**: a bad piece bans its sender; requests time out; a peer
//!   that keeps timing out is dropped.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;

use super::peer::PeerState;
use super::policy::Rejection;
use super::window::Window;
use super::{Layout, PeerId};
use crate::Bitfield;
use crate::time::Time;

/// Tuning of a [`Download`]. The defaults are what the simulator found
/// best for the DESIGN.md scenarios.
#[derive(Debug, Clone)]
pub struct DownloadConfig {
    /// Pieces just past the client's read position that come before
    /// rarest-first.
    pub window: u32,
    /// Fewest requests in flight per peer.
    pub min_depth: u32,
    /// Most requests in flight per peer.
    pub max_depth: u32,
    /// This node's download budget in bytes per second (the agent's
    /// `--download-rate`), if it has one. Requests in flight are sized
    /// from it; without it, from the measured download rate.
    pub download_rate: Option<f64>,
    /// Requests in flight beyond what the rate times `target_latency`
    /// needs, so that a faster source is noticed.
    pub extra_in_flight: u32,
    /// Fewest requests in flight in total (while there is something to
    /// request).
    pub min_in_flight: u32,
    /// Most requests in flight in total.
    pub max_in_flight: u32,
    /// Least time between two adjustments of the in-flight window.
    pub window_interval: Duration,
    /// How much time's worth of a peer's throughput to keep requested.
    pub target_latency: Duration,
    /// Window over which a peer's throughput is measured.
    pub rate_horizon: Duration,
    /// A request is given up after at least this long…
    pub request_timeout: Duration,
    /// …or this many times its expected duration at the measured rate.
    pub timeout_factor: f64,
    /// Consecutive timeouts after which a peer is dropped.
    pub max_timeouts: u32,
    /// How long a peer that refused as busy is left alone, unless it calls
    /// back with `Available` first; doubles per refusal in a row.
    pub busy_backoff: Duration,
    /// Longest back-off.
    pub max_backoff: Duration,
    /// How long a piece a peer refused is not asked of it again.
    pub refusal_memory: Duration,
    /// Seeds are asked for any piece when fewer than this many requests
    /// are in flight to other peers…
    pub seed_starve_in_flight: u32,
    /// …or when the measured download rate is below this fraction of
    /// `download_rate` (if that is set).
    pub seed_starve_rate: f64,
    /// Most requests for one piece in the end-game.
    pub endgame_copies: u32,
    /// While this many peers that refused us as busy have not called back
    /// yet, no other peers are tried (only the ones that call back or just
    /// delivered): in a busy swarm, probing finds a free slot rarely.
    pub max_waiting: u32,
}

impl Default for DownloadConfig {
    fn default() -> Self {
        DownloadConfig {
            window: 4,
            min_depth: 1,
            max_depth: 16,
            download_rate: None,
            extra_in_flight: 2,
            min_in_flight: 2,
            max_in_flight: 64,
            window_interval: Duration::from_millis(250),
            target_latency: Duration::from_millis(250),
            rate_horizon: Duration::from_secs(2),
            request_timeout: Duration::from_secs(5),
            timeout_factor: 4.0,
            max_timeouts: 3,
            busy_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(2),
            refusal_memory: Duration::from_secs(2),
            seed_starve_in_flight: 2,
            seed_starve_rate: 0.9,
            endgame_copies: 2,
            max_waiting: 4,
        }
    }
}

/// What the driver knows about a peer when it connects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerKind {
    /// An ordinary agent.
    Peer,
    /// A supernode or other seed: asked only as a last resort.
    Seed,
}

/// Why a [`Download`] wants a peer disconnected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// It sent a piece that failed verification.
    CorruptPiece,
    /// Its requests kept timing out.
    Unresponsive,
    /// It sent something impossible (wrong bitfield length, piece index
    /// out of range).
    ProtocolViolation,
    /// It was banned earlier and connected again.
    Banned,
}

/// What the driver must do for a [`Download`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Ask `peer` for `piece`; report the outcome with
    /// [`Download::handle_piece_verified`], [`Download::handle_piece_corrupt`],
    /// [`Download::handle_request_rejected`] or
    /// [`Download::handle_request_failed`].
    Request {
        /// Whom to ask.
        peer: PeerId,
        /// Which piece.
        piece: u32,
    },
    /// Stop the request for `piece` to `peer` (the piece came from
    /// elsewhere, or the request timed out).
    Cancel {
        /// Whom it was asked of.
        peer: PeerId,
        /// Which piece.
        piece: u32,
    },
    /// Disconnect `peer`; the download has already forgotten it.
    DropPeer {
        /// Which peer.
        peer: PeerId,
        /// Why.
        reason: DropReason,
    },
    /// Every piece is verified. Emitted once.
    Complete,
}

/// Counters of a [`Download`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DownloadStats {
    /// Requests sent.
    pub requests: u64,
    /// Pieces verified and kept.
    pub pieces: u64,
    /// Verified pieces that were already held (end-game duplicates).
    pub duplicates: u64,
    /// Pieces that failed verification.
    pub corrupt: u64,
    /// Requests that timed out.
    pub timeouts: u64,
    /// Busy refusals.
    pub busy: u64,
    /// Seed redirects.
    pub redirects: u64,
    /// Requests that failed otherwise (stream errors, not held).
    pub failed: u64,
    /// Requests cancelled.
    pub cancels: u64,
    /// Peers banned.
    pub banned: u64,
}

impl DownloadStats {
    /// Adds `other`'s counters to these (for totals over many downloads).
    pub fn merge(&mut self, other: &DownloadStats) {
        self.requests += other.requests;
        self.pieces += other.pieces;
        self.duplicates += other.duplicates;
        self.corrupt += other.corrupt;
        self.timeouts += other.timeouts;
        self.busy += other.busy;
        self.redirects += other.redirects;
        self.failed += other.failed;
        self.cancels += other.cancels;
        self.banned += other.banned;
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub(super) struct PieceInfo {
    /// Connected non-seed peers holding it.
    pub avail: u32,
    /// Requests in flight for it.
    pub in_flight: u32,
}

/// The cached answer of [`Download::poll_timeout`]: `None` when it must be
/// recomputed.
type TimeoutCache = Cell<Option<Option<Time>>>;

/// A deadline or back-off end `t` was added: the cached next timeout can
/// only move earlier.
pub(super) fn timeout_added(cache: &TimeoutCache, t: Time) {
    if let Some(cur) = cache.get() {
        cache.set(Some(Some(cur.map_or(t, |c| c.min(t)))));
    }
}

/// A deadline `t` went away: if it was the earliest, recompute.
fn timeout_removed(cache: &TimeoutCache, t: Time) {
    if let Some(Some(cur)) = cache.get()
        && t <= cur
    {
        cache.set(None);
    }
}

/// Most banned peers remembered; older bans are forgotten first.
const MAX_BANNED: usize = 4096;

/// Download scheduler for one blob; see the module documentation.
///
/// Call order: feed inputs with the `handle_*` methods (each takes `now`,
/// which must not go backwards), then drain [`Download::poll_action`] until
/// it returns `None` — requests are chosen lazily there, once per batch of
/// inputs — then arm a timer for [`Download::poll_timeout`] and call
/// [`Download::handle_timeout`] when it fires. Outcomes of requests may be
/// reported in any order, also after a `Cancel` (a verified piece is kept
/// whoever sent it).
#[derive(Debug)]
pub struct Download {
    pub(super) config: DownloadConfig,
    pub(super) layout: Layout,
    pub(super) have: Bitfield,
    pub(super) pieces: Vec<PieceInfo>,
    pub(super) peers: BTreeMap<PeerId, PeerState>,
    banned: VecDeque<PeerId>,
    banned_set: BTreeSet<PeerId>,
    pub(super) read_pos: u32,
    /// Random tie-break order of the pieces.
    pub(super) rank: Vec<u32>,
    pub(super) actions: VecDeque<Action>,
    pub(super) now: Time,
    /// Every peer must be reconsidered at the next poll.
    pub(super) fill_all: bool,
    /// Only these peers have news.
    pub(super) fill_some: BTreeSet<PeerId>,
    /// Missing pieces no connected non-seed peer holds.
    pub(super) unavailable: u32,
    /// Whether the last fill found the download starving.
    pub(super) was_starving: bool,
    /// Missing pieces with no request in flight.
    pub(super) unrequested: u32,
    pub(super) in_flight: u32,
    /// Recent deliveries (time, bytes), for the download rate.
    recent: VecDeque<(Time, u64)>,
    /// Sum of the bytes in `recent`.
    recent_bytes: u64,
    /// When the first request went out.
    pub(super) started: Option<Time>,
    pub(super) window: Window,
    /// [`Download::poll_timeout`]'s answer, until the next input.
    pub(super) next_timeout: TimeoutCache,
    /// Connected seeds.
    pub(super) seeds: Vec<PeerId>,
    /// The peer that just delivered: asked first at the next fill.
    pub(super) prefer: Option<PeerId>,
    /// Peers that refused us as busy and will call back.
    pub(super) waiting_on: u32,
    pub(super) stats: DownloadStats,
    complete_sent: bool,
}

impl Download {
    /// A download of a blob cut as `layout`, already holding `have` (all
    /// zero for a new download, the persisted bitfield when resuming).
    /// `rng_seed` makes the tie-breaks reproducible; give each agent its
    /// own.
    ///
    /// # Panics
    ///
    /// If `have.len()` is not the layout's piece count.
    pub fn new(config: DownloadConfig, layout: Layout, have: Bitfield, rng_seed: u64) -> Self {
        let n = layout.piece_count();
        assert_eq!(have.len(), n, "bitfield length must match the layout");
        let mut rank: Vec<u32> = (0..n).collect();
        rank.shuffle(&mut SmallRng::seed_from_u64(rng_seed));
        let unrequested = n - have.count();
        let window = Window::new(&config, layout.piece_size);
        Download {
            config,
            layout,
            have,
            pieces: vec![PieceInfo::default(); n as usize],
            peers: BTreeMap::new(),
            banned: VecDeque::new(),
            banned_set: BTreeSet::new(),
            read_pos: 0,
            rank,
            actions: VecDeque::new(),
            now: Time::ZERO,
            fill_all: true,
            fill_some: BTreeSet::new(),
            unavailable: unrequested,
            was_starving: false,
            unrequested,
            in_flight: 0,
            recent: VecDeque::new(),
            recent_bytes: 0,
            started: None,
            window,
            next_timeout: Cell::new(None),
            seeds: Vec::new(),
            prefer: None,
            waiting_on: 0,
            stats: DownloadStats::default(),
            complete_sent: false,
        }
    }

    /// Pieces held (verified).
    pub fn have(&self) -> &Bitfield {
        &self.have
    }

    /// Whether every piece is held.
    pub fn is_complete(&self) -> bool {
        self.have.is_complete()
    }

    /// Counters.
    pub fn stats(&self) -> &DownloadStats {
        &self.stats
    }

    /// Connected peers.
    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    /// Requests in flight.
    pub fn in_flight(&self) -> u32 {
        self.in_flight
    }

    /// Measured throughput from `peer` in bytes per second, if known.
    pub fn peer_rate(&self, peer: PeerId) -> Option<f64> {
        self.peers.get(&peer).and_then(|p| p.rate)
    }

    /// Measured download rate over the last `rate_horizon`, in bytes per
    /// second (verified pieces only).
    pub fn download_rate(&self) -> Option<f64> {
        let start = self.started?;
        let horizon = self.config.rate_horizon;
        let span = (self.now - start).min(horizon).as_secs_f64();
        if span <= 0.0 {
            return None;
        }
        let bytes = self.recent_bytes;
        Some(bytes as f64 / span)
    }

    /// Requests to keep in flight in total; see [`Window`].
    pub(super) fn in_flight_target(&self) -> u32 {
        match self.config.download_rate {
            Some(_) => self.window.size(),
            None => self
                .window
                .target(&self.config, self.download_rate(), self.layout.piece_size),
        }
    }

    /// Whether `peer` was banned (and not yet forgotten).
    pub fn is_banned(&self, peer: PeerId) -> bool {
        self.banned_set.contains(&peer)
    }

    fn tick(&mut self, now: Time) {
        self.now = self.now.max(now);
    }

    /// A peer connected (or re-sent its whole bitfield).
    pub fn handle_peer_connected(
        &mut self,
        now: Time,
        peer: PeerId,
        kind: PeerKind,
        has: Bitfield,
    ) {
        self.tick(now);
        if self.banned_set.contains(&peer) {
            self.actions.push_back(Action::DropPeer {
                peer,
                reason: DropReason::Banned,
            });
            return;
        }
        if has.len() != self.layout.piece_count() {
            self.drop_peer(peer, DropReason::ProtocolViolation);
            return;
        }
        self.forget_peer(peer);
        if kind == PeerKind::Peer {
            for i in has.iter_held() {
                self.avail_inc(i);
            }
        }
        if kind == PeerKind::Seed {
            self.seeds.push(peer);
        }
        self.peers.insert(peer, PeerState::new(kind, has));
        // Availability changed for everybody's rarest-first order.
        self.fill_all = true;
    }

    /// A connected peer has a new piece.
    pub fn handle_have(&mut self, now: Time, peer: PeerId, piece: u32) {
        self.tick(now);
        if piece >= self.layout.piece_count() {
            if self.peers.contains_key(&peer) {
                self.drop_peer(peer, DropReason::ProtocolViolation);
            }
            return;
        }
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        if p.has.set(piece) {
            let kind = p.kind;
            if !self.have.get(piece) {
                p.note_fresh(piece);
                self.fill_some.insert(peer);
            }
            if kind == PeerKind::Peer {
                self.avail_inc(piece);
            }
        }
    }

    /// A peer went away (or was dropped): its requests are forgotten and
    /// their pieces become requestable from others.
    pub fn handle_peer_disconnected(&mut self, now: Time, peer: PeerId) {
        self.tick(now);
        self.forget_peer(peer);
    }

    /// The client will read `piece` next (its position in the blob divided
    /// by the piece size). Pieces from there on get priority.
    pub fn handle_read_position(&mut self, now: Time, piece: u32) {
        self.tick(now);
        let piece = piece.min(self.layout.piece_count());
        // The order changes; the candidates do not, so no refill is due.
        self.read_pos = piece;
    }

    /// `peer` delivered `piece` and it matched its hash; the driver has
    /// written it. Verified bytes are kept whoever sent them.
    pub fn handle_piece_verified(&mut self, now: Time, peer: PeerId, piece: u32) {
        self.tick(now);
        if piece >= self.layout.piece_count() {
            return;
        }
        let bytes = self.layout.piece_len(piece);
        let was_unrequested = !self.have.get(piece) && self.pieces[piece as usize].in_flight == 0;
        if let Some(p) = self.peers.get_mut(&peer) {
            if let Some(r) = p.take_request(piece) {
                self.pieces[piece as usize].in_flight -= 1;
                self.in_flight -= 1;
                timeout_removed(&self.next_timeout, r.deadline);
            }
            p.delivered(&self.config, self.now, bytes);
            self.fill_some.insert(peer);
            // Its upload slot just freed up: nobody else knows yet.
            self.prefer = Some(peer);
        }
        self.recent.push_back((self.now, bytes));
        self.recent_bytes += bytes;
        let horizon = self.config.rate_horizon;
        while let Some(&(t, b)) = self.recent.front() {
            if t + horizon >= self.now {
                break;
            }
            self.recent.pop_front();
            self.recent_bytes -= b;
        }
        if let Some(started) = self.started {
            let rate = self.download_rate();
            self.window.adapt(&self.config, self.now, started, rate);
        }
        if !self.have.set(piece) {
            self.stats.duplicates += 1;
            return;
        }
        self.stats.pieces += 1;
        if was_unrequested {
            self.unrequested -= 1;
        }
        if self.pieces[piece as usize].avail == 0 {
            self.unavailable -= 1;
        }
        // Cancel the other copies (end-game) of this piece.
        let others: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, p)| p.requests.iter().any(|r| r.piece == piece))
            .map(|(&id, _)| id)
            .collect();
        for id in others {
            self.cancel(id, piece);
            self.fill_some.insert(id);
        }
        if self.have.is_complete() && !self.complete_sent {
            self.complete_sent = true;
            self.actions.push_back(Action::Complete);
        }
    }

    /// `peer` delivered `piece` and it did not match its hash: the peer is
    /// banned and dropped, the piece requested elsewhere.
    pub fn handle_piece_corrupt(&mut self, now: Time, peer: PeerId, piece: u32) {
        self.tick(now);
        self.stats.corrupt += 1;
        let _ = piece;
        if self.peers.contains_key(&peer) {
            self.ban(peer, DropReason::CorruptPiece);
        }
    }

    /// `peer` refused the request for `piece`.
    pub fn handle_request_rejected(
        &mut self,
        now: Time,
        peer: PeerId,
        piece: u32,
        reason: Rejection,
    ) {
        self.tick(now);
        if !self.end_request(peer, piece) {
            return;
        }
        let (now, cfg) = (self.now, &self.config);
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        match reason {
            Rejection::Busy => {
                self.stats.busy += 1;
                let backoff = cfg.busy_backoff.saturating_mul(1 << p.busy_streak.min(16));
                p.backoff_until = now + backoff.min(cfg.max_backoff);
                timeout_added(&self.next_timeout, p.backoff_until);
                p.busy_streak += 1;
                if !p.waiting {
                    p.waiting = true;
                    self.waiting_on += 1;
                }
            }
            Rejection::NotHeld => {
                self.stats.failed += 1;
                if p.has.get(piece) {
                    p.has.clear(piece);
                    if p.kind == PeerKind::Peer {
                        self.avail_dec(piece);
                    }
                }
            }
            Rejection::Redirect { hint } => {
                self.stats.redirects += 1;
                p.refuse(piece, now, now + cfg.refusal_memory);
                let n = self.layout.piece_count();
                p.hint = hint.into_iter().filter(|&h| h < n).take(16).collect();
                p.rescan();
            }
        }
        if let Some(p) = self.peers.get(&peer) {
            timeout_added(&self.next_timeout, p.backoff_until);
        }
        self.fill_some.insert(peer);
    }

    /// `peer`, which refused us as busy, has a slot reserved for us now.
    pub fn handle_peer_available(&mut self, now: Time, peer: PeerId) {
        self.tick(now);
        if let Some(p) = self.peers.get_mut(&peer) {
            p.backoff_until = Time::ZERO;
            p.busy_streak = 0;
            if p.waiting {
                p.waiting = false;
                self.waiting_on -= 1;
            }
            self.next_timeout.set(None);
            self.fill_some.insert(peer);
            self.prefer = Some(peer);
        }
    }

    /// The request for `piece` to `peer` failed without an answer (stream
    /// reset, short read).
    pub fn handle_request_failed(&mut self, now: Time, peer: PeerId, piece: u32) {
        self.tick(now);
        if !self.end_request(peer, piece) {
            return;
        }
        self.stats.failed += 1;
        if let Some(p) = self.peers.get_mut(&peer) {
            p.backoff_until = self.now + self.config.busy_backoff;
            timeout_added(&self.next_timeout, p.backoff_until);
        }
    }

    /// Gives up requests past their deadline and ends back-offs.
    pub fn handle_timeout(&mut self, now: Time) {
        self.tick(now);
        self.next_timeout.set(None);
        let now = self.now;
        let mut expired = Vec::new();
        for (&id, p) in &self.peers {
            if p.backoff_until != Time::ZERO && p.backoff_until <= now {
                self.fill_some.insert(id);
            }
            for r in &p.requests {
                if r.deadline <= now {
                    expired.push((id, r.piece));
                }
            }
        }
        for (id, piece) in expired {
            self.stats.timeouts += 1;
            self.cancel(id, piece);
            let Some(p) = self.peers.get_mut(&id) else {
                continue;
            };
            p.timeouts_in_row += 1;
            p.rate = p.rate.map(|r| r / 2.0);
            p.backoff_until = now + self.config.max_backoff;
            if p.timeouts_in_row >= self.config.max_timeouts {
                self.drop_peer(id, DropReason::Unresponsive);
            }
        }
        for p in self.peers.values_mut() {
            if p.backoff_until <= now {
                p.backoff_until = Time::ZERO;
                if p.waiting {
                    p.waiting = false;
                    self.waiting_on -= 1;
                }
            }
        }
    }

    /// The next thing to do, if any. Chooses new requests when inputs since
    /// the last call made that worthwhile.
    pub fn poll_action(&mut self) -> Option<Action> {
        if self.actions.is_empty() {
            self.fill();
        }
        self.actions.pop_front()
    }

    /// When [`Download::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Time> {
        if let Some(cached) = self.next_timeout.get() {
            return cached;
        }
        let next = self
            .peers
            .values()
            .flat_map(|p| {
                let backoff = (p.backoff_until != Time::ZERO).then_some(p.backoff_until);
                p.requests.iter().map(|r| r.deadline).chain(backoff)
            })
            .min();
        self.next_timeout.set(Some(next));
        next
    }

    /// Forgets a request; false if there was none.
    fn end_request(&mut self, peer: PeerId, piece: u32) -> bool {
        let Some(p) = self.peers.get_mut(&peer) else {
            return false;
        };
        let Some(r) = p.take_request(piece) else {
            return false;
        };
        timeout_removed(&self.next_timeout, r.deadline);
        self.release(piece);
        true
    }

    /// Bookkeeping for a request of `piece` that ended without the piece.
    fn release(&mut self, piece: u32) {
        let info = &mut self.pieces[piece as usize];
        info.in_flight -= 1;
        self.in_flight -= 1;
        if info.in_flight == 0 && !self.have.get(piece) {
            self.unrequested += 1;
            for (&id, p) in self.peers.iter_mut() {
                if p.has.get(piece) {
                    p.note_fresh(piece);
                    self.fill_some.insert(id);
                }
            }
        }
    }

    /// One more connected non-seed peer holds `piece`.
    fn avail_inc(&mut self, piece: u32) {
        let info = &mut self.pieces[piece as usize];
        info.avail += 1;
        if info.avail == 1 && !self.have.get(piece) {
            self.unavailable -= 1;
        }
    }

    /// One fewer connected non-seed peer holds `piece`.
    fn avail_dec(&mut self, piece: u32) {
        let info = &mut self.pieces[piece as usize];
        info.avail -= 1;
        if info.avail == 0 && !self.have.get(piece) {
            self.unavailable += 1;
        }
    }

    fn cancel(&mut self, peer: PeerId, piece: u32) {
        if self.end_request(peer, piece) {
            self.stats.cancels += 1;
            self.actions.push_back(Action::Cancel { peer, piece });
        }
    }

    fn forget_peer(&mut self, peer: PeerId) {
        let Some(p) = self.peers.remove(&peer) else {
            return;
        };
        self.seeds.retain(|&s| s != peer);
        if p.waiting {
            self.waiting_on -= 1;
        }
        if p.kind == PeerKind::Peer {
            for i in p.has.iter_held() {
                self.avail_dec(i);
            }
        }
        for r in p.requests {
            self.release(r.piece);
        }
        self.fill_some.remove(&peer);
        self.next_timeout.set(None);
    }

    fn drop_peer(&mut self, peer: PeerId, reason: DropReason) {
        self.forget_peer(peer);
        self.actions.push_back(Action::DropPeer { peer, reason });
    }

    fn ban(&mut self, peer: PeerId, reason: DropReason) {
        self.stats.banned += 1;
        if self.banned_set.insert(peer) {
            self.banned.push_back(peer);
            if self.banned.len() > MAX_BANNED
                && let Some(old) = self.banned.pop_front()
            {
                self.banned_set.remove(&old);
            }
        }
        self.drop_peer(peer, reason);
    }
}

#[cfg(test)]
mod tests;
