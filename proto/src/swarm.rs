//! The swarm logic of one blob: what to request from whom, what to serve.
//!
//! Three state machines, all sans-IO in the shape STYLE.md asks for
//! (`handle_*(now, input)`, `poll_action()`, `poll_timeout()`), so that the
//! agent, the supernode and the simulator in [`crate::sim`] drive the same
//! code:
//!
//! - [`Download`]: the agent's piece scheduler for one blob: streaming
//!   window, rarest-first with seeded tie-breaks, per-peer request pipelines
//!   sized from measured throughput, end-game duplicates, timeouts, bans.
//! - [`Uploader`]: the serving side every peer runs: a bounded number of
//!   concurrent uploads and a bounded queue; beyond that a request is
//!   refused as busy so the requester goes elsewhere. What may be served is
//!   decided by a [`ServePolicy`]: [`ServeAll`] for ordinary peers,
//!   [`SuperSeed`] for the supernode (each piece out once before any piece
//!   twice, in proportion to the requesters' upload capacity).
//!
//! Peers are named by [`PeerId`], which the driver assigns; the state
//! machines never see addresses or connections.

mod download;
mod peer;
mod pick;
mod policy;
mod seeder;
mod upload;
mod window;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use download::{Action, Download, DownloadConfig, DownloadStats, DropReason, PeerKind};
pub use policy::{Admission, Rejection, ServeAll, ServePolicy};
pub use seeder::{SuperSeed, SuperSeedConfig};
pub use upload::{UploadAction, UploadConfig, UploadStats, Uploader};

/// The seeding uploader the supernode runs.
pub type Seeder = Uploader<SuperSeed>;

/// Identifies a peer within one process (agent, supernode or simulation).
///
/// Agents pick a random id at start and announce it to the tracker, which
/// hands it out with each address, so the same number names a peer in the
/// tracker, in peer lists and in the local state machines.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PeerId(pub u64);

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "peer:{:016x}", self.0)
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Sizes of the pieces of one blob, without their hashes: all the
/// scheduler needs to know about the blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Blob size in bytes.
    pub size: u64,
    /// Length of every piece but the last.
    pub piece_size: u32,
}

impl Layout {
    /// The layout of a validated piece map.
    pub fn of(map: &crate::PieceMap) -> Self {
        Layout {
            size: map.size,
            piece_size: map.piece_size,
        }
    }

    /// Number of pieces (0 for an empty blob; 1 for a blob shorter than a
    /// piece).
    pub fn piece_count(&self) -> u32 {
        if self.piece_size == 0 {
            return 0;
        }
        self.size.div_ceil(u64::from(self.piece_size)) as u32
    }

    /// Length of piece `index` in bytes (0 past the end).
    pub fn piece_len(&self, index: u32) -> u64 {
        let start = u64::from(index) * u64::from(self.piece_size);
        self.size
            .saturating_sub(start)
            .min(u64::from(self.piece_size))
    }
}
