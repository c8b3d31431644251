//! Checks of the frame decoder shared by the unit tests and the fuzz
//! targets (`fuzz/`, which turn on the `fuzzing` feature): feeding a byte
//! stream to a [`FrameDecoder`] in arbitrary chunkings, and the round trip
//! every decoded message must survive. [`Sample`] is a message type using
//! every wire type of the crate.
//!
//! Not part of the crate's API: built for its own tests and with the
//! `fuzzing` feature only.

use serde::{Deserialize, Serialize};

use super::{FrameDecoder, FrameError, Message, decode_frame, encode_frame};
use crate::bitfield::Bitfield;
use crate::digest::Digest;
use crate::piece::PieceMap;
use crate::reference::{Reference, RepoName, Tag};

/// A message using every wire type of the crate, shaped like peer traffic.
/// The variants' order is part of the tests (their bytes are spelled out).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Sample {
    /// Variant 0.
    Request {
        /// A blob.
        digest: Digest,
        /// A piece of it.
        piece: u32,
        /// An offset.
        offset: u64,
    },
    /// Variant 1.
    Have {
        /// A piece.
        piece: u32,
    },
    /// Variant 2.
    Bits(Bitfield),
    /// Variant 3.
    Map(PieceMap),
    /// Variant 4.
    Names {
        /// A repository.
        repo: RepoName,
        /// A tag.
        tag: Tag,
        /// A manifest reference.
        reference: Reference,
    },
    /// Variant 5.
    Blob(Vec<u8>),
    /// Variant 6.
    Text(String),
    /// Variant 7.
    Nested(Vec<Vec<u32>>),
    /// Variant 8.
    Bye,
}

impl Message for Sample {
    const MAX_LEN: u32 = 4096;
}

/// Decodes `input` as a stream of `M` frames, fed in chunks of the given
/// sizes (cycled; an empty list means all at once, a size of 0 counts as
/// 1). Stops after `TooLarge`, which leaves the stream unusable. Checks that
/// the decoder consumes every byte it is given, never buffers more than
/// `M::MAX_LEN`, and that `finish` agrees with `is_idle`.
pub fn decode_stream<M: Message>(input: &[u8], chunks: &[usize]) -> Vec<Result<M, FrameError>> {
    let mut dec = FrameDecoder::<M>::new();
    let mut out = Vec::new();
    let mut rest = input;
    let mut sizes = chunks.iter().copied().cycle();
    while !rest.is_empty() {
        let n = sizes.next().unwrap_or(rest.len()).clamp(1, rest.len());
        let mut chunk = &rest[..n];
        rest = &rest[n..];
        loop {
            let decoded = dec.decode(&mut chunk);
            assert!(dec.body.capacity() <= M::MAX_LEN as usize, "over-allocated");
            match decoded {
                Ok(None) => break,
                Ok(Some(m)) => out.push(Ok(m)),
                Err(e @ FrameError::TooLarge { .. }) => {
                    out.push(Err(e));
                    return out;
                }
                Err(e) => out.push(Err(e)),
            }
        }
        assert!(chunk.is_empty(), "decoder left bytes of a chunk unread");
    }
    assert_eq!(dec.is_idle(), dec.finish().is_ok());
    out
}

/// Decodes `input` whole, in the given chunks and byte by byte, asserts the
/// three agree and that what decodes re-encodes to the same message, and
/// returns the messages.
pub fn decode_consistently<M>(input: &[u8], chunks: &[usize]) -> Vec<M>
where
    M: Message + PartialEq + std::fmt::Debug,
{
    let whole = decode_stream::<M>(input, &[]);
    assert_eq!(
        decode_stream::<M>(input, chunks),
        whole,
        "chunking changed the result"
    );
    assert_eq!(
        decode_stream::<M>(input, &[1]),
        whole,
        "byte-wise decoding changed the result"
    );
    if let Ok(msg) = decode_frame::<M>(input) {
        assert_eq!(whole.len(), 1);
        assert_eq!(whole[0].as_ref(), Ok(&msg));
    }
    let msgs: Vec<M> = whole.into_iter().flatten().collect();
    for msg in &msgs {
        round_trip(msg);
    }
    msgs
}

/// `decode(encode(msg)) == msg`, and the encoding respects `MAX_LEN`.
pub fn round_trip<M>(msg: &M)
where
    M: Message + PartialEq + std::fmt::Debug,
{
    let mut frame = Vec::new();
    encode_frame(msg, &mut frame).expect("a decoded message re-encodes");
    assert!(frame.len() <= 4 + M::MAX_LEN as usize, "frame over MAX_LEN");
    assert_eq!(
        &decode_frame::<M>(&frame).expect("re-encoded message decodes"),
        msg
    );
}
