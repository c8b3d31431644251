//! The two headers of a piece request stream.
//!
//! The client opens a bidirectional stream, writes one [`PieceRequest`]
//! frame and finishes its side of the stream. The server writes one [`PieceResponse`] frame; after
//! [`PieceResponse::Ok`] come exactly `len` raw bytes of the piece and the
//! end of the stream. The client knows the piece's length and hash from the
//! [`PieceMap`](crate::piece::PieceMap), so it refuses a wrong `len` before
//! reading a byte of payload and checks the hash before using the piece.

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::frame::Message;

/// Asks the peer for one piece of one blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PieceRequest {
    /// Digest of the blob.
    pub digest: Digest,
    /// Index of the piece within the blob's piece map.
    pub index: u32,
}

impl Message for PieceRequest {
    /// 32 digest bytes and a varint of at most 5 bytes.
    const MAX_LEN: u32 = 40;
}

/// Why a server answered without a piece.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ErrorCode {
    /// The index is beyond the blob's piece count.
    NoSuchPiece,
    /// The server failed to read a piece it should have (disk error); the
    /// client should try another peer.
    Internal,
}

/// Most pieces named in a [`PieceResponse::Redirect`].
pub const MAX_HINT: usize = 4;

/// The server's answer to a [`PieceRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PieceResponse {
    /// The piece follows: `len` raw bytes, then the end of the stream.
    Ok {
        /// Length of the piece in bytes; must equal the map's length.
        len: u32,
    },
    /// The server does not hold this piece (or this blob) now.
    NotHave,
    /// The server is at its cap of concurrent uploads; ask again later or
    /// ask another peer.
    Busy,
    /// The request failed for the given reason.
    Error(ErrorCode),
    /// A seed wants the requester to take other pieces first: the ones
    /// sent least often so far (the seeding policy of DESIGN.md). `hint`
    /// names up to [`MAX_HINT`] pieces it will serve this requester now,
    /// best first; empty when the piece's first copy is still on its way
    /// into the swarm and is better fetched from the peer receiving it.
    Redirect {
        /// Pieces to ask for instead, best first.
        hint: Vec<u32>,
    },
}

impl Message for PieceResponse {
    /// A variant tag and a hint: a varint count and [`MAX_HINT`] varints of
    /// at most 5 bytes (a decoded hint may be longer; users cut it).
    const MAX_LEN: u32 = 2 + 1 + 5 * MAX_HINT as u32;
}
