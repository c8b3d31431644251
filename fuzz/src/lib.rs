//! Checks shared by the fuzz targets in `fuzz_targets/`: feeding a byte
//! stream to a `FrameDecoder` in arbitrary chunkings and the round trip
//! every decoded frame must survive (shoal-proto's `frame::check`, which
//! its unit tests use too), and the invariants of a decoded piece map and
//! bitfield. Each target splits its input with [`split_chunks`] where
//! chunking matters.

pub use shoal_proto::frame::check::{Sample, decode_consistently, decode_stream, round_trip};
use shoal_proto::{Bitfield, PieceMap};

/// Splits fuzz input into chunk sizes and the stream: the first byte says
/// how many of the following bytes (at most 7) are chunk sizes.
pub fn split_chunks(data: &[u8]) -> (Vec<usize>, &[u8]) {
    match data.split_first() {
        Some((&k, rest)) => {
            let k = usize::from(k % 8).min(rest.len());
            (
                rest[..k].iter().map(|&c| usize::from(c)).collect(),
                &rest[k..],
            )
        }
        None => (Vec::new(), data),
    }
}

/// A decoded piece map is valid and its pieces tile the blob exactly.
pub fn check_piece_map(map: &PieceMap) {
    assert_eq!(map.validate(), Ok(()));
    let mut next = 0;
    for i in 0..map.piece_count() {
        let r = map.piece_range(i);
        assert_eq!(r.start, next);
        assert!(r.end > r.start);
        assert!(r.end - r.start <= u64::from(map.piece_size));
        next = r.end;
    }
    assert_eq!(next, map.size);
    assert_eq!(map.pieces.len(), map.piece_count() as usize);
}

/// A decoded bitfield's queries agree with each other.
pub fn check_bitfield(b: &Bitfield) {
    assert!(b.count() <= b.len());
    assert_eq!(b.is_complete(), b.first_missing().is_none());
    if let Some(i) = b.first_missing() {
        assert!(i < b.len() && !b.get(i));
    }
    assert_eq!(b.iter_held().count() as u32, b.count());
    assert_eq!(b.iter_missing().count() as u32, b.len() - b.count());
    assert!(b.iter_held().all(|i| i < b.len() && b.get(i)));
}
