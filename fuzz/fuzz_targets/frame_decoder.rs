//! Feeds arbitrary bytes to the incremental frame decoder, in arbitrary
//! chunkings (which must not change the result), and to whole-buffer frame
//! decoding, with a message type using every wire type of the crate. Beyond
//! "no panic", whatever decodes must be consistent and re-encode to the same
//! value. Run with `-malloc_limit_mb` (as `scripts/fuzz.sh` does) to catch an
//! allocation a hostile length could cause.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::{Deserialize, Serialize};
use shoal_fuzz::{check_bitfield, check_piece_map, decode_consistently, split_chunks};
use shoal_proto::{Bitfield, Digest, Message, PieceMap, Reference, RepoName, Tag};

/// A message using every wire type of the crate, shaped like peer traffic.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum Wire {
    Request {
        digest: Digest,
        piece: u32,
        offset: u64,
    },
    Have {
        piece: u32,
    },
    Bits(Bitfield),
    Map(PieceMap),
    Names {
        repo: RepoName,
        tag: Tag,
        reference: Reference,
    },
    Blob(Vec<u8>),
    Text(String),
    Nested(Vec<Vec<u32>>),
    Bye,
}

impl Message for Wire {
    const MAX_LEN: u32 = 64 * 1024;
}

fuzz_target!(|data: &[u8]| {
    let (chunks, input) = split_chunks(data);
    for msg in decode_consistently::<Wire>(input, &chunks) {
        match &msg {
            Wire::Map(m) => check_piece_map(m),
            Wire::Bits(b) => check_bitfield(b),
            _ => {}
        }
    }
});
