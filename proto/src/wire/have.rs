//! The `have` stream: which pieces the sender holds, kept up to date.
//!
//! Each side of a connection opens one unidirectional stream and sends
//! [`HaveMessage`] frames on it. For every blob the first message is the
//! full [`Bitfield`]; after it, [`HaveMessage::Have`] adds single pieces and
//! [`HaveMessage::Forget`] says the blob is gone (after which a new full
//! bitfield may start it again). [`HaveSequence`] enforces that order:
//! the sender runs its messages through one before writing them, the
//! receiver runs what it reads through another and drops the stream at the
//! first violation. It also bounds how many blobs one peer can make us
//! track.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::bitfield::Bitfield;
use crate::digest::Digest;
use crate::frame::Message;
use crate::piece::MAX_PIECES;

/// One update on the `have` stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum HaveMessage {
    /// Every piece the sender holds of `digest`: the first message for
    /// it, or a restatement that replaces what was said before (a blob
    /// evicted and fetched again is announced afresh).
    Bitfield {
        /// Digest of the blob.
        digest: Digest,
        /// One bit per piece of the blob's piece map.
        bits: Bitfield,
    },
    /// The sender now also holds piece `index` of `digest`.
    Have {
        /// Digest of the blob.
        digest: Digest,
        /// The piece now held.
        index: u32,
    },
    /// The sender no longer holds any piece of `digest`.
    Forget {
        /// Digest of the blob.
        digest: Digest,
    },
}

impl HaveMessage {
    /// The blob this message is about.
    pub fn digest(&self) -> &Digest {
        match self {
            HaveMessage::Bitfield { digest, .. }
            | HaveMessage::Have { digest, .. }
            | HaveMessage::Forget { digest } => digest,
        }
    }
}

impl Message for HaveMessage {
    /// A tag, 32 digest bytes, and a bitfield of [`MAX_PIECES`] bits
    /// (8192 bytes) with its two length varints.
    const MAX_LEN: u32 = MAX_PIECES / 8 + 64;
}

/// Why a `have` message is out of order or out of bounds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HaveError {
    /// A `Have` or `Forget` for a blob with no bitfield sent before.
    #[error("update for {0} before its bitfield")]
    NoBitfield(Digest),
    /// A `Have` index outside the blob's bitfield.
    #[error("piece {index} of {digest} is outside its {len} pieces")]
    IndexOutOfRange {
        /// Digest of the blob.
        digest: Digest,
        /// The index received.
        index: u32,
        /// The bitfield's length.
        len: u32,
    },
    /// More blobs than the sequence's limit are being tracked at once.
    #[error("more than {0} blobs announced on one stream")]
    TooManyBlobs(usize),
}

/// Checks the order of messages on one `have` stream.
///
/// Keeps only each announced blob's piece count, so memory is bounded by
/// the `max_blobs` given to [`new`](Self::new).
#[derive(Debug, Clone)]
pub struct HaveSequence {
    lens: HashMap<Digest, u32>,
    max_blobs: usize,
}

impl HaveSequence {
    /// Default limit on blobs tracked per stream.
    pub const DEFAULT_MAX_BLOBS: usize = 4096;

    /// A sequence at the start of a stream, tracking at most `max_blobs`
    /// blobs at once.
    pub fn new(max_blobs: usize) -> Self {
        HaveSequence {
            lens: HashMap::new(),
            max_blobs,
        }
    }

    /// Accepts `msg` as the next message of the stream, or says why not.
    /// A refused message leaves the sequence unchanged.
    pub fn check(&mut self, msg: &HaveMessage) -> Result<(), HaveError> {
        match msg {
            HaveMessage::Bitfield { digest, bits } => {
                if !self.lens.contains_key(digest) && self.lens.len() >= self.max_blobs {
                    return Err(HaveError::TooManyBlobs(self.max_blobs));
                }
                self.lens.insert(*digest, bits.len());
            }
            HaveMessage::Have { digest, index } => {
                let len = *self
                    .lens
                    .get(digest)
                    .ok_or(HaveError::NoBitfield(*digest))?;
                if *index >= len {
                    return Err(HaveError::IndexOutOfRange {
                        digest: *digest,
                        index: *index,
                        len,
                    });
                }
            }
            HaveMessage::Forget { digest } => {
                self.lens
                    .remove(digest)
                    .ok_or(HaveError::NoBitfield(*digest))?;
            }
        }
        Ok(())
    }

    /// Whether a bitfield for `digest` has been accepted and not forgotten.
    pub fn knows(&self, digest: &Digest) -> bool {
        self.lens.contains_key(digest)
    }

    /// Number of blobs currently tracked.
    pub fn len(&self) -> usize {
        self.lens.len()
    }

    /// Whether no blob is tracked.
    pub fn is_empty(&self) -> bool {
        self.lens.is_empty()
    }
}

impl Default for HaveSequence {
    fn default() -> Self {
        Self::new(Self::DEFAULT_MAX_BLOBS)
    }
}
