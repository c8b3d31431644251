//! Piece maps: how a blob is cut into pieces and how each piece is checked.
//!
//! Peers swap pieces, not whole blobs, so that each piece can be verified
//! (and a bad peer dropped) as soon as it arrives. The supernode computes
//! the map with a [`PieceHasher`] while it streams the blob from upstream;
//! agents fetch it and check every piece with [`PieceMap::verify_piece`]
//! (or [`PieceMap::check_piece`] as its bytes stream in).
//!
//! A map lists sha256 *chaining values* (see [`ChainHasher`]), not hashes
//! of the pieces on their own: entry `i` is the state of the blob's sha256
//! after piece `i`, and the last entry is the blob's digest itself. A piece
//! is checked by resuming sha256 from the entry before it, so the check
//! costs one pass over the piece, and a blob whose pieces all check hashes
//! to its digest: the whole-blob digest, the root of trust, is verified
//! piece by piece, in any order, without hashing the blob again. Pieces
//! are therefore a multiple of sha256's 64-byte block.
//!
//! A map that comes off the wire is validated while it is decoded, so a
//! [`PieceMap`] obtained from serde is always internally consistent.

use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::digest::{ChainHasher, Digest, SHA256_BLOCK};
use crate::frame::Message;

/// Smallest piece size [`piece_size_for`] picks: 256 KiB.
pub const MIN_PIECE_SIZE: u32 = 256 * 1024;
/// Largest piece size accepted anywhere: 16 MiB. A peer holds a piece in
/// memory while it verifies it, so this bounds per-request memory.
pub const MAX_PIECE_SIZE: u32 = 16 * 1024 * 1024;
/// Largest number of pieces in one map.
pub const MAX_PIECES: u32 = 65_536;
/// Largest blob accepted: 1 TiB, which is [`MAX_PIECES`] pieces of
/// [`MAX_PIECE_SIZE`].
pub const MAX_BLOB_SIZE: u64 = MAX_PIECES as u64 * MAX_PIECE_SIZE as u64;
/// How many pieces [`piece_size_for`] aims at for one blob.
const TARGET_PIECES: u64 = 256;

/// The piece size for a blob of `size` bytes: `size / 256` rounded up to a
/// power of two, clamped to [`MIN_PIECE_SIZE`]`..=`[`MAX_PIECE_SIZE`].
///
/// A few hundred pieces give every peer of a large swarm distinct work while
/// keeping each store-and-forward hop short.
pub fn piece_size_for(size: u64) -> u32 {
    let raw = size.div_ceil(TARGET_PIECES).min(u64::from(MAX_PIECE_SIZE));
    // Both bounds are powers of two, so clamping keeps a power of two.
    let pow2 = raw.next_power_of_two() as u32;
    pow2.clamp(MIN_PIECE_SIZE, MAX_PIECE_SIZE)
}

/// Why a piece map is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PieceMapError {
    /// The blob is larger than [`MAX_BLOB_SIZE`].
    #[error("blob of {size} bytes exceeds the limit of {MAX_BLOB_SIZE}")]
    BlobTooLarge {
        /// Declared blob size.
        size: u64,
    },
    /// The piece size is zero, larger than [`MAX_PIECE_SIZE`], or not a
    /// multiple of sha256's 64-byte block.
    #[error("piece size {0} is not a multiple of 64 bytes in 64..={MAX_PIECE_SIZE}")]
    BadPieceSize(u32),
    /// The blob would need more than [`MAX_PIECES`] pieces.
    #[error("blob needs {0} pieces; at most {MAX_PIECES} are allowed")]
    TooManyPieces(u64),
    /// The number of piece hashes does not match size and piece size.
    #[error("piece map lists {actual} pieces but size and piece size give {expected}")]
    CountMismatch {
        /// Pieces implied by size and piece size.
        expected: u64,
        /// Piece hashes actually listed.
        actual: u64,
    },
    /// The last chaining value is not the blob's digest (for an empty
    /// blob: the digest is not the sha256 of nothing).
    #[error("the piece map does not end at the blob's digest")]
    DigestMismatch,
}

/// Why a received piece was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PieceError {
    /// The piece index is not below the map's piece count.
    #[error("piece {index} does not exist; the blob has {count} pieces")]
    NoSuchPiece {
        /// Requested index.
        index: u32,
        /// Pieces in the map.
        count: u32,
    },
    /// The piece has the wrong number of bytes.
    #[error("piece {index} has {actual} bytes; expected {expected}")]
    WrongLength {
        /// Piece index.
        index: u32,
        /// Length the map implies.
        expected: u64,
        /// Length received.
        actual: u64,
    },
    /// The piece does not carry sha256 from the map's value before it to
    /// its own: corrupt data or a bad peer.
    #[error("piece {index} does not match its hash")]
    HashMismatch {
        /// Piece index.
        index: u32,
    },
}

/// How a blob is cut into pieces, with the sha256 chaining value at the
/// end of each piece (module docs).
///
/// Piece `i` covers bytes `i * piece_size .. min((i + 1) * piece_size, size)`:
/// every piece is `piece_size` long except possibly the last one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawPieceMap")]
pub struct PieceMap {
    /// Digest of the whole blob.
    pub digest: Digest,
    /// Blob size in bytes.
    pub size: u64,
    /// Length of every piece but the last.
    pub piece_size: u32,
    /// The blob's sha256 chaining value after each piece, in order; the
    /// last one is `digest`.
    pub pieces: Vec<Digest>,
}

/// The unchecked wire form; [`PieceMap`] is decoded through it and validated.
#[derive(Deserialize)]
struct RawPieceMap {
    digest: Digest,
    size: u64,
    piece_size: u32,
    pieces: Vec<Digest>,
}

impl TryFrom<RawPieceMap> for PieceMap {
    type Error = PieceMapError;
    fn try_from(r: RawPieceMap) -> Result<Self, PieceMapError> {
        let map = PieceMap {
            digest: r.digest,
            size: r.size,
            piece_size: r.piece_size,
            pieces: r.pieces,
        };
        map.validate()?;
        Ok(map)
    }
}

impl Message for PieceMap {
    /// [`MAX_PIECES`] hashes of 32 bytes plus a few varints.
    const MAX_LEN: u32 = MAX_PIECES * 32 + 64;
}

/// Pieces a blob of `size` bytes needs with `piece_size`, after checking both.
fn expected_pieces(size: u64, piece_size: u32) -> Result<u32, PieceMapError> {
    if size > MAX_BLOB_SIZE {
        return Err(PieceMapError::BlobTooLarge { size });
    }
    if piece_size == 0 || piece_size > MAX_PIECE_SIZE || u64::from(piece_size) % SHA256_BLOCK != 0 {
        return Err(PieceMapError::BadPieceSize(piece_size));
    }
    let n = size.div_ceil(u64::from(piece_size));
    if n > u64::from(MAX_PIECES) {
        return Err(PieceMapError::TooManyPieces(n));
    }
    Ok(n as u32)
}

impl PieceMap {
    /// Builds and validates a map from its parts. Reads at most one hash
    /// more than the size implies, however long `pieces` is.
    pub fn build(
        digest: Digest,
        size: u64,
        piece_size: u32,
        pieces: impl IntoIterator<Item = Digest>,
    ) -> Result<Self, PieceMapError> {
        let n = expected_pieces(size, piece_size)?;
        let pieces: Vec<Digest> = pieces.into_iter().take(n as usize + 1).collect();
        let map = PieceMap {
            digest,
            size,
            piece_size,
            pieces,
        };
        map.validate()?;
        Ok(map)
    }

    /// Checks that size, piece size and the number of hashes fit together
    /// and within the limits, and that the chain ends at the digest.
    pub fn validate(&self) -> Result<(), PieceMapError> {
        let n = expected_pieces(self.size, self.piece_size)?;
        if self.pieces.len() as u64 != u64::from(n) {
            return Err(PieceMapError::CountMismatch {
                expected: u64::from(n),
                actual: self.pieces.len() as u64,
            });
        }
        let end = match self.pieces.last() {
            Some(last) => *last,
            None => ChainHasher::new().finish(),
        };
        if end != self.digest {
            return Err(PieceMapError::DigestMismatch);
        }
        Ok(())
    }

    /// Number of pieces.
    pub fn piece_count(&self) -> u32 {
        self.pieces.len() as u32
    }

    /// The byte range of piece `index` within the blob.
    ///
    /// # Panics
    ///
    /// If `index >= self.piece_count()`, like slice indexing. Check indices
    /// that come from peers first, or use [`PieceMap::verify_piece`].
    pub fn piece_range(&self, index: u32) -> Range<u64> {
        assert!(
            index < self.piece_count(),
            "piece {index} out of range for {} pieces",
            self.piece_count()
        );
        let start = u64::from(index) * u64::from(self.piece_size);
        let end = (start + u64::from(self.piece_size)).min(self.size);
        start..end
    }

    /// Checks that `bytes` is piece `index`: right length, right sha256.
    pub fn verify_piece(&self, index: u32, bytes: &[u8]) -> Result<(), PieceError> {
        let mut check = self.check_piece(index)?;
        check.update(bytes);
        check.finish()
    }

    /// A check of piece `index` fed with its bytes as they arrive, for a
    /// piece known to this map (a map still being computed lists a prefix
    /// of the pieces).
    pub fn check_piece(&self, index: u32) -> Result<PieceCheck, PieceError> {
        let count = self.piece_count();
        if index >= count {
            return Err(PieceError::NoSuchPiece { index, count });
        }
        let range = self.piece_range(index);
        let hasher = match index.checked_sub(1) {
            None => ChainHasher::new(),
            Some(before) => ChainHasher::resume(&self.pieces[before as usize], range.start),
        };
        // The blob's last piece ends the chain with sha256's padding, at
        // the digest; every other piece ends at a block boundary.
        let last = range.end == self.size;
        Ok(PieceCheck {
            index,
            start: range.start,
            expected: range.end - range.start,
            hasher,
            end: if last {
                self.digest
            } else {
                self.pieces[index as usize]
            },
            last,
        })
    }
}

/// One piece's check in progress, from [`PieceMap::check_piece`].
#[derive(Clone)]
pub struct PieceCheck {
    index: u32,
    /// Where the piece starts in the blob (the hasher resumed there).
    start: u64,
    /// The piece's length.
    expected: u64,
    /// Resumed at the piece's start.
    hasher: ChainHasher,
    /// The value the piece must end at.
    end: Digest,
    last: bool,
}

impl PieceCheck {
    /// Feeds the piece's next bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
    }

    /// Whether the bytes fed are the piece: its length, and sha256 carried
    /// from the value before it to the piece's own.
    pub fn finish(self) -> Result<(), PieceError> {
        let actual = self.hasher.len() - self.start;
        if actual != self.expected {
            return Err(PieceError::WrongLength {
                index: self.index,
                expected: self.expected,
                actual,
            });
        }
        let end = if self.last {
            Some(self.hasher.finish())
        } else {
            self.hasher.chain_value()
        };
        if end != Some(self.end) {
            return Err(PieceError::HashMismatch { index: self.index });
        }
        Ok(())
    }
}

/// Computes a [`PieceMap`] from a blob fed in chunks of any size.
///
/// One sha256 pass gives the blob's digest and every piece's chaining
/// value, so the supernode can build the map while it streams the blob
/// from upstream and serve each piece as soon as [`PieceHasher::completed`]
/// lists it.
#[derive(Clone)]
pub struct PieceHasher {
    piece_size: u32,
    hasher: ChainHasher,
    /// Bytes fed into the current piece.
    in_current: u32,
    /// Chaining values of the pieces completed, except the latest one
    /// while it may still be the blob's last (whose entry is the digest).
    pieces: Vec<Digest>,
    /// The chaining value of the piece just completed, listed once the
    /// next byte shows it was not the last.
    pending: Option<Digest>,
}

impl PieceHasher {
    /// A hasher cutting pieces of `piece_size` bytes, usually
    /// [`piece_size_for`] of the expected blob size.
    pub fn new(piece_size: u32) -> Self {
        PieceHasher {
            piece_size,
            hasher: ChainHasher::new(),
            in_current: 0,
            pieces: Vec::new(),
            pending: None,
        }
    }

    /// A hasher for a blob expected to be `size` bytes, with
    /// [`piece_size_for`]`(size)`.
    pub fn for_size(size: u64) -> Self {
        let mut h = Self::new(piece_size_for(size));
        let expected = size
            .div_ceil(u64::from(h.piece_size))
            .min(u64::from(MAX_PIECES));
        h.pieces.reserve_exact(expected as usize);
        h
    }

    /// Feeds the next bytes of the blob.
    pub fn update(&mut self, mut data: &[u8]) {
        // A piece size without chaining values is refused by `finish`;
        // just hash (and avoid looping forever on zero) here.
        if self.piece_size == 0 || u64::from(self.piece_size) % SHA256_BLOCK != 0 {
            self.hasher.update(data);
            return;
        }
        while !data.is_empty() {
            if let Some(p) = self.pending.take() {
                self.pieces.push(p);
            }
            let room = (self.piece_size - self.in_current) as usize;
            let take = room.min(data.len());
            self.hasher.update(&data[..take]);
            self.in_current += take as u32;
            data = &data[take..];
            if self.in_current == self.piece_size {
                self.pending = self.hasher.chain_value();
                self.in_current = 0;
            }
        }
    }

    /// Chaining values of the pieces known complete so far, in order.
    pub fn completed(&self) -> &[Digest] {
        &self.pieces
    }

    /// Bytes fed so far.
    pub fn len(&self) -> u64 {
        self.hasher.len()
    }

    /// Whether no bytes have been fed yet.
    pub fn is_empty(&self) -> bool {
        self.hasher.is_empty()
    }

    /// The map of everything fed; its `digest` is the computed whole-blob
    /// sha256, which the caller compares with the digest it expected.
    pub fn finish(mut self) -> Result<PieceMap, PieceMapError> {
        let size = self.hasher.len();
        let digest = self.hasher.finish();
        if self.pending.is_some() || self.in_current > 0 {
            self.pieces.push(digest);
        }
        let map = PieceMap {
            digest,
            size,
            piece_size: self.piece_size,
            pieces: self.pieces,
        };
        map.validate()?;
        Ok(map)
    }
}

#[cfg(test)]
mod tests;
