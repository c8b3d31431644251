//! The swarm logic of one blob: what to request from whom, what to serve.
//!
//! Three state machines, all sans-IO in the shape STYLE.md asks for
//! (`handle_*(now, input)`, `poll_action()`, `poll_timeout()`), so that the
//! agent, the supernode and the simulator in [`crate::sim`] drive the same
//! code:
//!
//! - [`Download`]: the agent's piece scheduler for one blob: a streaming
//!   window at the client's read position, rarest-first with seeded
//!   tie-breaks, a total request window sized by feedback from the download
//!   budget, per-peer pipelines sized from measured throughput, the seed as
//!   a last resort, end-game duplicates, timeouts and bans.
//! - [`Uploader`]: the serving side every node runs: a few concurrent
//!   uploads (more while the link has spare capacity); a request beyond
//!   that is refused as [`Rejection::Busy`], its sender put on a wait list
//!   and called back ([`UploadAction::Available`]) when a slot frees. What
//!   may be served, and who is called first, is a [`ServePolicy`]:
//!   [`ServeAll`] for ordinary peers, [`SuperSeed`] for the supernode
//!   ([`Seeder`]): each piece out once before any piece twice, in index
//!   order, in proportion to the requesters' upload weights.
//!
//! How they talk (what a driver carries over the wire): a [`Download`]'s
//! `Request`/`Cancel` become piece requests; an [`Uploader`]'s `Serve` is
//! the piece, `Reject` the refusal (`Busy`, `NotHeld`, or `Redirect` with a
//! hint list from a seed), `Available` a small call-back message. `have`
//! updates feed both sides.
//!
//! Peers are named by [`PeerId`], which the driver assigns; the state
//! machines never see addresses or connections. The defaults of every
//! configuration are what the simulator found best (see `sim`).

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
