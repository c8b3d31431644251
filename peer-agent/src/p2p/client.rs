//! Fetching one piece from a peer and verifying it.
//!
//! The client opens a bidirectional stream, writes the [`PieceRequest`]
//! header, reads the [`PieceResponse`] header and then exactly the piece's
//! length in raw bytes, as the chunks quinn hands out (no copy), hashing
//! them as they arrive. The piece is returned only if its sha256 matches
//! the [`PieceMap`]; otherwise the error names the peer, which the caller
//! drops and reports.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use shoal_proto::wire::{ErrorCode, MAX_HINT, PieceRequest, PieceResponse};
use shoal_proto::{Digest, PieceError, PieceMap, encode_frame};

use super::endpoint::ConnectError;
use super::stream::{FrameReader, PROTOCOL_ERROR, ReadFrameError, read_end};

/// Largest chunk taken from quinn at once while reading a piece.
const CHUNK: usize = 1 << 20;

/// Why a piece could not be fetched from a peer.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The index is not in the piece map (a caller bug; no peer involved).
    #[error("piece {index} is not in the map of {count} pieces")]
    NoSuchPiece {
        /// Requested index.
        index: u32,
        /// Pieces in the map.
        count: u32,
    },
    /// No authenticated connection to the peer could be had.
    #[error("cannot connect to peer {peer}: {source}")]
    Connect {
        /// The peer.
        peer: SocketAddr,
        /// What failed.
        source: ConnectError,
    },
    /// The connection or stream failed in transit.
    #[error("transfer from peer {peer} failed: {reason}")]
    Transport {
        /// The peer.
        peer: SocketAddr,
        /// What failed.
        reason: String,
    },
    /// The peer did not answer or stalled beyond the I/O timeout.
    #[error("peer {peer} timed out {stage}")]
    Timeout {
        /// The peer.
        peer: SocketAddr,
        /// What was awaited: opening the stream, sending the request,
        /// the response header, or the piece's bytes.
        stage: &'static str,
    },
    /// The peer does not hold the piece.
    #[error("peer {peer} does not have the piece")]
    NotHave {
        /// The peer.
        peer: SocketAddr,
    },
    /// The peer is at its upload cap.
    #[error("peer {peer} is busy")]
    Busy {
        /// The peer.
        peer: SocketAddr,
    },
    /// A seed asked us to take other pieces first (its seeding policy).
    #[error("peer {peer} redirected the request to pieces {hint:?}")]
    Redirect {
        /// The peer.
        peer: SocketAddr,
        /// Pieces it would serve instead, best first, at most
        /// [`MAX_HINT`].
        hint: Vec<u32>,
    },
    /// The peer refused the request with an error code.
    #[error("peer {peer} refused the request: {code:?}")]
    Refused {
        /// The peer.
        peer: SocketAddr,
        /// Its reason.
        code: ErrorCode,
    },
    /// The peer broke the protocol: a garbage header, a wrong length, a
    /// stream that ended early.
    #[error("peer {peer} broke the protocol: {reason}")]
    Protocol {
        /// The peer.
        peer: SocketAddr,
        /// What it did.
        reason: String,
    },
    /// The peer sent a piece that does not match the piece map.
    #[error("peer {peer} sent a bad piece: {source}")]
    BadPiece {
        /// The peer.
        peer: SocketAddr,
        /// How the piece was wrong.
        source: PieceError,
    },
}

impl FetchError {
    /// The peer involved, if any.
    pub fn peer(&self) -> Option<SocketAddr> {
        match self {
            FetchError::NoSuchPiece { .. } => None,
            FetchError::Connect { peer, .. }
            | FetchError::Transport { peer, .. }
            | FetchError::Timeout { peer, .. }
            | FetchError::NotHave { peer }
            | FetchError::Busy { peer }
            | FetchError::Redirect { peer, .. }
            | FetchError::Refused { peer, .. }
            | FetchError::Protocol { peer, .. }
            | FetchError::BadPiece { peer, .. } => Some(*peer),
        }
    }

    /// Whether the peer misbehaved (bad piece, broken protocol): drop it
    /// and report it, rather than merely trying elsewhere.
    pub fn is_misbehaviour(&self) -> bool {
        matches!(
            self,
            FetchError::Protocol { .. } | FetchError::BadPiece { .. }
        )
    }
}

/// A piece whose length and sha256 matched the piece map, held as the
/// chunks it arrived in.
#[derive(Debug, Clone)]
pub struct VerifiedPiece {
    digest: Digest,
    index: u32,
    len: u64,
    chunks: Vec<Bytes>,
}

impl VerifiedPiece {
    /// Digest of the blob.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// Index of the piece.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// Length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the piece is empty (only the piece of an empty blob is).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes, in order, as received.
    pub fn chunks(&self) -> &[Bytes] {
        &self.chunks
    }

    /// The bytes in one buffer (copies unless the piece came in one chunk).
    pub fn into_bytes(self) -> Bytes {
        if self.chunks.len() == 1 {
            return self.chunks.into_iter().next().unwrap_or_default();
        }
        let mut out = BytesMut::with_capacity(self.len as usize);
        for c in &self.chunks {
            out.extend_from_slice(c);
        }
        out.freeze()
    }
}

/// Requests piece `index` of `map` on `conn` and verifies it.
pub(crate) async fn request_piece(
    conn: &quinn::Connection,
    peer: SocketAddr,
    map: &PieceMap,
    index: u32,
    timeout: Duration,
) -> Result<VerifiedPiece, FetchError> {
    // Verified as its bytes arrive: sha256 resumed from the map's value
    // before the piece.
    let mut check = map.check_piece(index).map_err(|e| FetchError::Protocol {
        peer,
        reason: e.to_string(),
    })?;
    let range = map.piece_range(index);
    let expected = range.end - range.start;
    let transport = |e: &dyn std::fmt::Display| FetchError::Transport {
        peer,
        reason: e.to_string(),
    };
    let timed_out = |stage| move |_| FetchError::Timeout { peer, stage };

    let (mut send, mut recv) = tokio::time::timeout(timeout, conn.open_bi())
        .await
        .map_err(timed_out("opening a stream"))?
        .map_err(|e| transport(&e))?;
    let mut header = Vec::with_capacity(48);
    let req = PieceRequest {
        digest: map.digest,
        index,
    };
    encode_frame(&req, &mut header).expect("a request header always fits");
    tokio::time::timeout(timeout, send.write_all(&header))
        .await
        .map_err(timed_out("sending the request"))?
        .map_err(|e| transport(&e))?;
    let _ = send.finish();

    let mut reader = FrameReader::<PieceResponse>::new();
    let resp = reader
        .header(&mut recv, timeout)
        .await
        .map_err(|e| match e {
            ReadFrameError::Timeout => FetchError::Timeout {
                peer,
                stage: "awaiting the response",
            },
            ReadFrameError::Read(e) => transport(&e),
            e => FetchError::Protocol {
                peer,
                reason: format!("response header: {e}"),
            },
        })?;
    if !matches!(resp, PieceResponse::Ok { .. }) {
        // A refusal is the whole answer; whatever follows it is moot.
        let _ = read_end(&mut recv);
    }
    let len = match resp {
        PieceResponse::Ok { len } => u64::from(len),
        PieceResponse::NotHave => return Err(FetchError::NotHave { peer }),
        PieceResponse::Busy => return Err(FetchError::Busy { peer }),
        PieceResponse::Error(code) => return Err(FetchError::Refused { peer, code }),
        PieceResponse::Redirect { mut hint } => {
            hint.truncate(MAX_HINT);
            return Err(FetchError::Redirect { peer, hint });
        }
    };
    if len != expected {
        let _ = recv.stop(PROTOCOL_ERROR);
        return Err(reject(
            peer,
            PieceError::WrongLength {
                index,
                expected,
                actual: len,
            },
        ));
    }

    let mut chunks = Vec::new();
    let mut got = 0u64;
    let first = reader.into_leftover();
    if first.len() as u64 > expected {
        let _ = recv.stop(PROTOCOL_ERROR);
        return Err(FetchError::Protocol {
            peer,
            reason: "more bytes than the piece".into(),
        });
    }
    if !first.is_empty() {
        got += first.len() as u64;
        check.update(&first);
        chunks.push(first);
    }
    while got < expected {
        let want = (expected - got).min(CHUNK as u64) as usize;
        let chunk = tokio::time::timeout(timeout, recv.read_chunk(want, true))
            .await
            .map_err(timed_out("receiving the piece"))?
            .map_err(|e| transport(&e))?;
        let Some(chunk) = chunk else {
            return Err(FetchError::Protocol {
                peer,
                reason: format!("stream ended after {got} of {expected} piece bytes"),
            });
        };
        got += chunk.bytes.len() as u64;
        check.update(&chunk.bytes);
        chunks.push(chunk.bytes);
    }
    // A reset after the last byte changes nothing: the piece is whole and
    // is verified below.
    if let Ok(extra @ 1..) = read_end(&mut recv) {
        let _ = recv.stop(PROTOCOL_ERROR);
        return Err(FetchError::Protocol {
            peer,
            reason: format!("{extra} bytes after the piece"),
        });
    }
    check.finish().map_err(|e| reject(peer, e))?;
    Ok(VerifiedPiece {
        digest: map.digest,
        index,
        len: expected,
        chunks,
    })
}

/// Logs a rejected piece and names the peer that sent it. The swarm
/// counts it (it also counts pieces fetched over HTTP): counting here too
/// would count every bad piece twice.
fn reject(peer: SocketAddr, source: PieceError) -> FetchError {
    tracing::warn!(%peer, error = %source, "peer sent a bad piece");
    FetchError::BadPiece { peer, source }
}
