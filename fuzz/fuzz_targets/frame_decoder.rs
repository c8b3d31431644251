//! Feeds arbitrary bytes to the incremental frame decoder, in arbitrary
//! chunkings (which must not change the result), and to whole-buffer frame
//! decoding, with a message type using every wire type of the crate
//! (`shoal_proto::frame::check::Sample`, the frame unit tests' type too). Beyond
//! "no panic", whatever decodes must be consistent and re-encode to the same
//! value. Run with `-malloc_limit_mb` (as `scripts/fuzz.sh` does) to catch an
//! allocation a hostile length could cause.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shoal_fuzz::{Sample, check_bitfield, check_piece_map, decode_consistently, split_chunks};

fuzz_target!(|data: &[u8]| {
    let (chunks, input) = split_chunks(data);
    for msg in decode_consistently::<Sample>(input, &chunks) {
        match &msg {
            Sample::Map(m) => check_piece_map(m),
            Sample::Bits(b) => check_bitfield(b),
            _ => {}
        }
    }
});
