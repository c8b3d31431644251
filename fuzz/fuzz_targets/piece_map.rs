//! Piece maps and bitfields off the network: a [`PieceMap`] frame (the
//! store's and the peers' encoding), a [`PieceMap`] and a [`Bitfield`] as
//! JSON (the supernode's and the tracker's HTTP APIs), and a bitfield in a
//! frame of its own. Whatever decodes must be valid (pieces tile the blob,
//! no bit past the end) and survive a round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::{Deserialize, Serialize};
use shoal_fuzz::{check_bitfield, check_piece_map, decode_consistently, split_chunks};
use shoal_proto::{Bitfield, Message, PieceMap};

/// A bitfield as a frame of its own, as it travels inside `have` messages.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Bits(Bitfield);

impl Message for Bits {
    const MAX_LEN: u32 = shoal_proto::piece::MAX_PIECES / 8 + 16;
}

fuzz_target!(|data: &[u8]| {
    let (chunks, input) = split_chunks(data);
    for map in decode_consistently::<PieceMap>(input, &chunks) {
        check_piece_map(&map);
    }
    for Bits(b) in decode_consistently::<Bits>(input, &chunks) {
        check_bitfield(&b);
    }
    if let Ok(map) = serde_json::from_slice::<PieceMap>(input) {
        check_piece_map(&map);
        let json = serde_json::to_vec(&map).expect("encodes");
        assert_eq!(serde_json::from_slice::<PieceMap>(&json).ok(), Some(map));
    }
    if let Ok(b) = serde_json::from_slice::<Bitfield>(input) {
        check_bitfield(&b);
        let json = serde_json::to_vec(&b).expect("encodes");
        assert_eq!(serde_json::from_slice::<Bitfield>(&json).ok(), Some(b));
    }
});
