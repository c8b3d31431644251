//! The tracker state's inputs, outputs and limits.

use std::collections::BTreeMap;
use std::time::Duration;

#[cfg(doc)]
use super::TrackerState;
use crate::swarm::PeerId;
use crate::{Bitfield, Digest};

/// Limits and timings of a [`TrackerState`].
#[derive(Debug, Clone)]
pub struct TrackerConfig {
    /// Supernode ids (their configured addresses); a blob nobody holds is
    /// given to one of them.
    pub supernodes: Vec<String>,
    /// Peers kept per blob; the stalest is evicted for a newcomer.
    pub max_peers_per_blob: usize,
    /// Blobs kept; the least recently announced is evicted for a new one.
    pub max_blobs: usize,
    /// Most peers in one reply.
    pub max_reply_peers: usize,
    /// Peers considered per announce in a large swarm (a random sample).
    pub rank_sample: usize,
    /// Announce interval told to peers, before scaling and jitter.
    pub announce_interval: Duration,
    /// The interval is stretched so that all peers together announce at
    /// most this often per second.
    pub max_announces_per_sec: f64,
    /// Relative random spread of the interval (0.1 = ±10%).
    pub interval_jitter: f64,
    /// A peer not heard from for this many intervals expires.
    pub expiry_intervals: u32,
    /// How long to wait before asking a supernode again to seed a blob.
    pub seed_retry: Duration,
    /// Seeds added to a reply when the other peers cannot cover the
    /// requester.
    pub max_reply_seeds: usize,
    /// Most locality labels per peer.
    pub max_labels: usize,
    /// Longest label key or value, and longest address, in bytes.
    pub max_text_len: usize,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            supernodes: Vec::new(),
            max_peers_per_blob: 10_000,
            max_blobs: 100_000,
            max_reply_peers: 50,
            rank_sample: 1_000,
            announce_interval: Duration::from_secs(30),
            max_announces_per_sec: 2_000.0,
            interval_jitter: 0.1,
            expiry_intervals: 3,
            seed_retry: Duration::from_secs(10),
            max_reply_seeds: 1,
            max_labels: 16,
            max_text_len: 256,
        }
    }
}

/// One peer's report about one blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announce {
    /// The blob.
    pub blob: Digest,
    /// Who announces.
    pub peer: PeerId,
    /// Where other peers reach it (opaque to the tracker).
    pub addr: String,
    /// Pieces it holds; length 0 if it does not know the piece map yet.
    pub pieces: Bitfield,
    /// Share of its upload capacity in use, in percent (0–100).
    pub upload_load: u8,
    /// Locality labels such as `zone=eu-1`, `rack=r7`.
    pub labels: BTreeMap<String, String>,
    /// Whether it is a supernode seeding this blob.
    pub seed: bool,
    /// Whether it is leaving the swarm (its entry is removed at once).
    pub stopped: bool,
}

/// A peer as handed out in a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// Its id.
    pub peer: PeerId,
    /// Its address.
    pub addr: String,
    /// Whether it is a seed (supernode).
    pub seed: bool,
}

/// The answer to an [`Announce`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnounceReply {
    /// Peers to connect to, best first.
    pub peers: Vec<PeerInfo>,
    /// When to announce again.
    pub interval: Duration,
}

/// Something the tracker daemon must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrackerAction {
    /// Ask `supernode` to fetch `blob` from upstream and seed it.
    SeedBlob {
        /// The blob nobody holds.
        blob: Digest,
        /// The supernode chosen by rendezvous hashing.
        supernode: String,
    },
}

/// Why an announce was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnnounceError {
    /// More locality labels than allowed.
    #[error("{0} locality labels; at most {1} are allowed")]
    TooManyLabels(usize, usize),
    /// An address, label key or label value is too long.
    #[error("a label or the address is longer than {0} bytes")]
    TextTooLong(usize),
    /// The bitfield's length differs from the other peers' for this blob.
    #[error("bitfield of {got} pieces; this blob has {expected}")]
    BitfieldLength {
        /// Piece count other peers announced.
        expected: u32,
        /// Piece count in this announce.
        got: u32,
    },
}
