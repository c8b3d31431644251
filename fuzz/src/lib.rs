//! Checks shared by the fuzz targets in `fuzz_targets/`: feeding a byte
//! stream to a [`FrameDecoder`] in arbitrary chunkings, the invariants of a
//! decoded piece map and bitfield, and the round trip every decoded frame
//! must survive. Each target splits its input with [`split_chunks`] where
//! chunking matters.

use shoal_proto::{
    Bitfield, FrameDecoder, FrameError, Message, PieceMap, decode_frame, encode_frame,
};

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

/// Decodes `input` as a stream of `M` frames, fed in chunks of the given
/// sizes (cycled; an empty list means all at once). Stops after `TooLarge`,
/// which leaves the stream unusable. Checks that the decoder consumes every
/// byte it is given and that `finish` agrees with `is_idle`.
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
            match dec.decode(&mut chunk) {
                Ok(None) => break,
                Ok(Some(m)) => out.push(Ok(m)),
                Err(e @ FrameError::TooLarge { .. }) => {
                    out.push(Err(e));
                    return out;
                }
                Err(e) => out.push(Err(e)),
            }
        }
        assert!(
            chunk.is_empty(),
            "decoder returned Ok(None) with bytes left"
        );
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
