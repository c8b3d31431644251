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

mod outcome;
mod types;

pub use types::{Action, DownloadConfig, DownloadStats, DropReason, PeerKind};

use rand::SeedableRng;
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;

use super::peer::PeerState;
use super::window::Window;
use super::{Layout, PeerId};
use crate::Bitfield;
use crate::time::Time;

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
    pub(super) fill_some: Vec<PeerId>,
    /// Missing pieces no connected non-seed peer holds.
    pub(super) unavailable: u32,
    /// Whether the last fill found the download starving.
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
    /// This download's part of the node's download cap
    /// (`config.download_rate`), which the node's downloads share.
    pub(super) budget_share: Option<f64>,
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
        let budget_share = config.download_rate;
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
            fill_some: Vec::new(),
            unavailable: unrequested,
            unrequested,
            in_flight: 0,
            recent: VecDeque::new(),
            recent_bytes: 0,
            started: None,
            window,
            budget_share,
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

    /// Sets this download's part of the node's download cap, in bytes per
    /// second, when other downloads share the cap; its requests in flight
    /// are sized against that part from now on. A download without a cap
    /// keeps none.
    pub fn set_budget_share(&mut self, rate: f64) {
        if let Some(r) = &mut self.budget_share {
            *r = rate;
        }
    }

    /// Requests to keep in flight in total; see [`Window`].
    pub(super) fn in_flight_target(&self) -> u32 {
        self.window.target(
            &self.config,
            self.budget_share,
            self.download_rate(),
            self.layout.piece_size,
        )
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
                self.news(peer);
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
                    self.fill_some.push(id);
                }
            }
        }
    }

    /// `peer` may have something new to request: look at it at the next
    /// fill.
    pub(super) fn news(&mut self, peer: PeerId) {
        if self.fill_some.last() != Some(&peer) {
            self.fill_some.push(peer);
        }
        if self.fill_some.len() > 4 * self.peers.len() + 16 {
            self.fill_some.sort_unstable();
            self.fill_some.dedup();
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
        self.fill_some.retain(|&p| p != peer);
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
