//! The plain data of the download scheduler: its configuration, the
//! actions it asks for, and its counters.

use std::time::Duration;

#[cfg(doc)]
use crate::swarm::Download;
use crate::swarm::PeerId;

/// Tuning of a [`Download`]. The defaults are what the simulator found
/// best for the DESIGN.md scenarios.
#[derive(Debug, Clone)]
pub struct DownloadConfig {
    /// Missing pieces from the client's read position on that come before
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
    /// With a budget, requests in flight never ask for more than the
    /// budget downloads in this long (plus `extra_in_flight`): a download
    /// held below its budget by something else (a node short of CPU,
    /// uploaders shared by many) gains nothing from more, they only wait
    /// at the uploaders, time out and are asked again.
    pub max_queue: Duration,
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
    /// …and never before the piece would be done at this rate (bytes per
    /// second): the slowest delivery still worth waiting for.
    pub min_rate: f64,
    /// Consecutive timeouts after which a peer is dropped.
    pub max_timeouts: u32,
    /// How long a peer that refused as busy is left alone, unless it calls
    /// back with `Available` first; doubles per refusal in a row. Shorter
    /// back-offs mostly buy more refusals: with 500 ms (up to 2 s) the
    /// 50-node fanout-upbound run counted 3–4.4 refusals per piece
    /// delivered, with 1 s (up to 4 s) 2.6–3.0, for a run no slower.
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
            window: 8,
            min_depth: 1,
            max_depth: 16,
            download_rate: None,
            extra_in_flight: 2,
            min_in_flight: 2,
            max_in_flight: 64,
            max_queue: Duration::from_secs(2),
            window_interval: Duration::from_millis(250),
            target_latency: Duration::from_millis(250),
            rate_horizon: Duration::from_secs(2),
            request_timeout: Duration::from_secs(5),
            timeout_factor: 4.0,
            min_rate: 128.0 * 1024.0,
            max_timeouts: 3,
            busy_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(4),
            refusal_memory: Duration::from_secs(2),
            seed_starve_in_flight: 2,
            seed_starve_rate: 0.95,
            endgame_copies: 2,
            max_waiting: 16,
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
