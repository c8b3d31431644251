//! Feeds arbitrary bytes to every decoder in shoal-proto that faces hostile
//! input: the incremental frame decoder (in arbitrary chunkings, which must
//! not change the result), whole-buffer frame decoding, piece maps and
//! bitfields off the wire, digest / name / reference parsing, and manifest
//! media type detection. Beyond "no panic", it checks that what decodes is
//! consistent and re-encodes to the same value. Run with `-malloc_limit_mb`
//! (as `scripts/fuzz.sh` does) to catch an allocation a hostile length could
//! cause.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::{Deserialize, Serialize};
use shoal_proto::{
    Bitfield, Digest, FrameDecoder, FrameError, Message, PieceMap, Reference, RepoName, Tag,
    decode_frame, encode_frame, media,
};

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

/// Decodes `input` as a stream of `M` frames, fed in chunks of the given
/// sizes (cycled; an empty list means all at once). Stops after `TooLarge`,
/// which leaves the stream unusable.
fn decode_stream<M: Message>(input: &[u8], chunks: &[usize]) -> Vec<Result<M, FrameError>> {
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

fn check_piece_map(map: &PieceMap) {
    assert_eq!(map.validate(), Ok(()));
    let mut next = 0;
    for i in 0..map.piece_count() {
        let r = map.piece_range(i);
        assert_eq!(r.start, next);
        assert!(r.end > r.start);
        next = r.end;
    }
    assert_eq!(next, map.size);
}

fn check_bitfield(b: &Bitfield) {
    assert!(b.count() <= b.len());
    assert_eq!(b.is_complete(), b.first_missing().is_none());
    if let Some(i) = b.first_missing() {
        assert!(i < b.len() && !b.get(i));
    }
}

/// Whatever decodes must satisfy its invariants and survive a round trip.
fn check_decoded(msg: &Wire) {
    match msg {
        Wire::Map(m) => check_piece_map(m),
        Wire::Bits(b) => check_bitfield(b),
        _ => {}
    }
    let mut frame = Vec::new();
    encode_frame(msg, &mut frame).expect("a decoded message re-encodes");
    assert_eq!(
        &decode_frame::<Wire>(&frame).expect("re-encoded message decodes"),
        msg
    );
}

fn check_strings(s: &str) {
    if let Ok(d) = Digest::parse(s) {
        assert_eq!(Digest::parse(&d.to_string()), Ok(d));
    }
    if let Ok(n) = RepoName::parse(s) {
        assert_eq!(n.as_str(), s);
    }
    if let Ok(t) = Tag::parse(s) {
        assert_eq!(t.as_str(), s);
    }
    if let Ok(r) = Reference::parse(s) {
        assert_eq!(Reference::parse(&r.to_string()), Ok(r));
    }
}

fuzz_target!(|data: &[u8]| {
    // The first byte says how many of the following bytes are chunk sizes.
    let (chunks, input): (Vec<usize>, &[u8]) = match data.split_first() {
        Some((&k, rest)) => {
            let k = usize::from(k % 8).min(rest.len());
            (
                rest[..k].iter().map(|&c| usize::from(c)).collect(),
                &rest[k..],
            )
        }
        None => (Vec::new(), data),
    };

    let whole = decode_stream::<Wire>(input, &[]);
    assert_eq!(
        decode_stream::<Wire>(input, &chunks),
        whole,
        "chunking changed the result"
    );
    assert_eq!(
        decode_stream::<Wire>(input, &[1]),
        whole,
        "byte-wise decoding changed the result"
    );
    for msg in whole.iter().flatten() {
        check_decoded(msg);
    }
    if let Ok(msg) = decode_frame::<Wire>(input) {
        assert_eq!(whole.len(), 1);
        assert_eq!(whole[0].as_ref(), Ok(&msg));
    }

    for map in decode_stream::<PieceMap>(input, &chunks).iter().flatten() {
        check_piece_map(map);
    }
    if let Ok(map) = decode_frame::<PieceMap>(input) {
        check_piece_map(&map);
    }

    if let Ok(s) = std::str::from_utf8(input) {
        check_strings(s);
    }
    if let Some(kind) = media::detect_media_type(input) {
        let _ = (media::is_manifest_media_type(&kind), media::is_index(&kind));
    }
});
