//! Length-prefixed frames with a hard size limit per message type.
//!
//! Every control message between peers, agents and the tracker travels as
//! one frame: a `u32` big-endian body length, then the body (encoded by
//! the private `codec` module). Each message type declares its own
//! [`Message::MAX_LEN`]; a length header above it is refused the moment its
//! four bytes are in, before any byte of the body is buffered, so a hostile
//! peer cannot make us allocate more than the limit.
//!
//! [`FrameDecoder`] is sans-IO: the caller hands it whatever bytes arrived,
//! in chunks of any size, and it takes exactly the bytes of the next frame,
//! no more. Bytes after a frame stay in the caller's buffer, which is how a
//! piece's raw payload can follow its header frame and go straight to disk.

use std::fmt;
use std::marker::PhantomData;

use bytes::Buf;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec;

/// Bytes of the length header in front of every body.
pub const HEADER_LEN: usize = 4;

/// A type that travels in frames.
pub trait Message: Serialize + DeserializeOwned {
    /// Largest body accepted or produced for this type, in bytes. Choose it
    /// from the largest legitimate value: it is also what a hostile peer can
    /// make the decoder buffer.
    const MAX_LEN: u32;
}

/// Why a frame could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The frame's body is longer than the message type allows.
    #[error("frame body of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Declared (decoding) or encoded (encoding) body length.
        len: u64,
        /// The message type's [`Message::MAX_LEN`].
        max: u32,
    },
    /// The input ended inside a frame.
    #[error("truncated frame: {got} of {expected} bytes")]
    Truncated {
        /// Bytes the frame needs, header included (just the header's if the
        /// header itself is incomplete).
        expected: u64,
        /// Bytes available.
        got: u64,
    },
    /// The body is not a valid encoding of the message type.
    #[error("malformed frame body: {0}")]
    Malformed(String),
    /// Bytes are left after the message: inside its body, or after the one
    /// frame a whole buffer was supposed to hold.
    #[error("{extra} unexpected bytes after the message")]
    TrailingBytes {
        /// Number of extra bytes.
        extra: usize,
    },
    /// The message could not be encoded (a bug in its `Serialize`).
    #[error("cannot encode message: {0}")]
    Encode(String),
}

/// Appends `msg` as one frame to `out`.
///
/// Fails with [`FrameError::TooLarge`], leaving `out` as it was, if the body
/// would exceed `M::MAX_LEN`.
pub fn encode_frame<M: Message>(msg: &M, out: &mut Vec<u8>) -> Result<(), FrameError> {
    let len = codec::encoded_len(msg)?;
    if len > u64::from(M::MAX_LEN) {
        return Err(FrameError::TooLarge {
            len,
            max: M::MAX_LEN,
        });
    }
    let start = out.len();
    out.reserve(HEADER_LEN + len as usize);
    out.extend_from_slice(&(len as u32).to_be_bytes());
    if let Err(e) = codec::encode_into(msg, out) {
        out.truncate(start);
        return Err(e);
    }
    debug_assert_eq!((out.len() - start - HEADER_LEN) as u64, len);
    Ok(())
}

/// Decodes a buffer that must hold exactly one frame.
///
/// For input that arrives in pieces, use [`FrameDecoder`].
pub fn decode_frame<M: Message>(buf: &[u8]) -> Result<M, FrameError> {
    let Some((header, rest)) = buf.split_first_chunk::<HEADER_LEN>() else {
        return Err(FrameError::Truncated {
            expected: HEADER_LEN as u64,
            got: buf.len() as u64,
        });
    };
    let len = u32::from_be_bytes(*header);
    if len > M::MAX_LEN {
        return Err(FrameError::TooLarge {
            len: len.into(),
            max: M::MAX_LEN,
        });
    }
    let len = len as usize;
    if rest.len() < len {
        return Err(FrameError::Truncated {
            expected: (HEADER_LEN + len) as u64,
            got: buf.len() as u64,
        });
    }
    if rest.len() > len {
        return Err(FrameError::TrailingBytes {
            extra: rest.len() - len,
        });
    }
    codec::decode_exact(rest)
}

/// Where the decoder is within the current frame.
#[derive(Clone, Copy)]
enum State {
    /// Reading the length header; `filled` of its bytes are in.
    Header {
        bytes: [u8; HEADER_LEN],
        filled: usize,
    },
    /// Reading a body of `len` bytes into the buffer.
    Body { len: u32 },
    /// A header above the limit was seen; the stream cannot be resynchronised.
    Failed { len: u32 },
}

const START: State = State::Header {
    bytes: [0; HEADER_LEN],
    filled: 0,
};

/// Smallest allocation for a body buffer, to avoid many tiny reallocations.
const MIN_ALLOC: usize = 1024;
/// Largest body buffer kept between frames; a larger one is freed.
const KEEP_ALLOC: usize = 64 * 1024;

/// Incremental, sans-IO decoder of a stream of `M` frames.
///
/// Call [`decode`](Self::decode) whenever bytes arrive, and again while it
/// returns `Ok(Some(_))`: each call consumes bytes up to the end of at most
/// one frame and leaves the rest in the caller's buffer. When the stream
/// ends, [`finish`](Self::finish) tells whether it ended between frames.
///
/// After [`FrameError::TooLarge`] the decoder stays failed and repeats that
/// error: the stream has lost its framing and should be closed. After
/// [`FrameError::Malformed`] or [`FrameError::TrailingBytes`] the bad frame
/// has been consumed whole and decoding may continue with the next one,
/// though a peer that sends either is usually best dropped.
pub struct FrameDecoder<M> {
    state: State,
    body: Vec<u8>,
    _message: PhantomData<fn() -> M>,
}

impl<M: Message> FrameDecoder<M> {
    /// A decoder at the start of a stream.
    pub fn new() -> Self {
        FrameDecoder {
            state: START,
            body: Vec::new(),
            _message: PhantomData,
        }
    }

    /// Consumes bytes from `buf` up to the end of the next frame.
    ///
    /// Returns `Ok(None)` once `buf` is exhausted mid-frame (or empty), and
    /// `Ok(Some(msg))` as soon as a frame is complete, without touching the
    /// bytes after it.
    pub fn decode(&mut self, buf: &mut impl Buf) -> Result<Option<M>, FrameError> {
        loop {
            match self.state {
                State::Failed { len } => {
                    return Err(FrameError::TooLarge {
                        len: len.into(),
                        max: M::MAX_LEN,
                    });
                }
                State::Header {
                    mut bytes,
                    mut filled,
                } => {
                    let take = (HEADER_LEN - filled).min(buf.remaining());
                    buf.copy_to_slice(&mut bytes[filled..filled + take]);
                    filled += take;
                    if filled < HEADER_LEN {
                        self.state = State::Header { bytes, filled };
                        return Ok(None);
                    }
                    let len = u32::from_be_bytes(bytes);
                    if len > M::MAX_LEN {
                        self.state = State::Failed { len };
                        return Err(FrameError::TooLarge {
                            len: len.into(),
                            max: M::MAX_LEN,
                        });
                    }
                    self.state = State::Body { len };
                }
                State::Body { len } => {
                    let len = len as usize;
                    let take = (len - self.body.len()).min(buf.remaining());
                    self.reserve(len, take);
                    let mut left = take;
                    while left > 0 {
                        let chunk = buf.chunk();
                        let n = chunk.len().min(left);
                        self.body.extend_from_slice(&chunk[..n]);
                        buf.advance(n);
                        left -= n;
                    }
                    if self.body.len() < len {
                        return Ok(None);
                    }
                    self.state = START;
                    let result = codec::decode_exact(&self.body);
                    if self.body.capacity() > KEEP_ALLOC {
                        self.body = Vec::new();
                    } else {
                        self.body.clear();
                    }
                    return result.map(Some);
                }
            }
        }
    }

    /// Makes room for `additional` more body bytes, growing geometrically
    /// but never past the frame's length.
    fn reserve(&mut self, frame_len: usize, additional: usize) {
        let needed = self.body.len() + additional;
        if needed > self.body.capacity() {
            let target = needed
                .max(self.body.capacity() * 2)
                .max(MIN_ALLOC)
                .min(frame_len);
            self.body.reserve_exact(target - self.body.len());
        }
    }

    /// Whether the decoder is between frames (nothing of a frame buffered).
    pub fn is_idle(&self) -> bool {
        matches!(self.state, State::Header { filled: 0, .. })
    }

    /// Checks, at the end of the stream, that it did not end inside a frame.
    pub fn finish(&self) -> Result<(), FrameError> {
        match self.state {
            State::Header { filled: 0, .. } => Ok(()),
            State::Header { filled, .. } => Err(FrameError::Truncated {
                expected: HEADER_LEN as u64,
                got: filled as u64,
            }),
            State::Body { len } => Err(FrameError::Truncated {
                expected: (HEADER_LEN + len as usize) as u64,
                got: (HEADER_LEN + self.body.len()) as u64,
            }),
            State::Failed { len } => Err(FrameError::TooLarge {
                len: len.into(),
                max: M::MAX_LEN,
            }),
        }
    }
}

impl<M: Message> Default for FrameDecoder<M> {
    fn default() -> Self {
        Self::new()
    }
}

impl<M> fmt::Debug for FrameDecoder<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Header { filled, .. } => format!("header {filled}/{HEADER_LEN}"),
            State::Body { len } => format!("body {}/{len}", self.body.len()),
            State::Failed { len } => format!("failed on length {len}"),
        };
        f.debug_struct("FrameDecoder")
            .field("state", &state)
            .finish()
    }
}

#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod check;
#[cfg(test)]
mod tests;
