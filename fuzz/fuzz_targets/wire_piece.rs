//! The piece request stream's two headers off the wire: a peer's
//! [`PieceRequest`] (server side) and a peer's [`PieceResponse`] (client
//! side), as frame streams in arbitrary chunkings. No panic, no allocation
//! beyond the tight `MAX_LEN`, and every decoded header round-trips.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shoal_fuzz::{decode_consistently, split_chunks};
use shoal_proto::wire::{PieceRequest, PieceResponse};

fuzz_target!(|data: &[u8]| {
    let (chunks, input) = split_chunks(data);
    decode_consistently::<PieceRequest>(input, &chunks);
    for resp in decode_consistently::<PieceResponse>(input, &chunks) {
        if let PieceResponse::Ok { len } = resp {
            // The client compares `len` with the map before reading any
            // payload; the decoded value is only a number.
            let _ = usize::try_from(len).expect("u32 fits usize");
        }
    }
});
