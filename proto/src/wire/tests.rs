//! Round trips and limits of the wire messages, and the `have` order.

use proptest::prelude::*;

use super::*;
use crate::bitfield::Bitfield;
use crate::digest::Digest;
use crate::frame::{FrameDecoder, FrameError, Message, decode_frame, encode_frame};
use crate::piece::MAX_PIECES;

fn digest() -> impl Strategy<Value = Digest> {
    any::<[u8; 32]>().prop_map(Digest::from_bytes)
}

fn bitfield(max_len: u32) -> impl Strategy<Value = Bitfield> {
    (0..=max_len, any::<u64>()).prop_map(|(len, seed)| {
        let mut b = Bitfield::new(len);
        let mut x = seed | 1;
        for i in 0..len {
            // xorshift: a cheap deterministic pattern per seed.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if x & 1 == 1 {
                b.set(i);
            }
        }
        b
    })
}

fn response() -> impl Strategy<Value = PieceResponse> {
    prop_oneof![
        any::<u32>().prop_map(|len| PieceResponse::Ok { len }),
        Just(PieceResponse::NotHave),
        Just(PieceResponse::Busy),
        Just(PieceResponse::Error(ErrorCode::NoSuchPiece)),
        Just(PieceResponse::Error(ErrorCode::Internal)),
        prop::collection::vec(any::<u32>(), 0..=MAX_HINT)
            .prop_map(|hint| PieceResponse::Redirect { hint }),
    ]
}

fn have() -> impl Strategy<Value = HaveMessage> {
    prop_oneof![
        (digest(), bitfield(2000))
            .prop_map(|(digest, bits)| HaveMessage::Bitfield { digest, bits }),
        (digest(), any::<u32>()).prop_map(|(digest, index)| HaveMessage::Have { digest, index }),
        digest().prop_map(|digest| HaveMessage::Forget { digest }),
    ]
}

fn round_trip<M: Message + PartialEq + std::fmt::Debug>(msg: &M) {
    let mut buf = Vec::new();
    encode_frame(msg, &mut buf).unwrap();
    assert!(buf.len() - 4 <= M::MAX_LEN as usize);
    assert_eq!(&decode_frame::<M>(&buf).unwrap(), msg);
}

proptest! {
    #[test]
    fn request_round_trips(digest in digest(), index in any::<u32>()) {
        round_trip(&PieceRequest { digest, index });
    }

    #[test]
    fn response_round_trips(r in response()) {
        round_trip(&r);
    }

    #[test]
    fn have_round_trips_in_a_stream(msgs in prop::collection::vec(have(), 0..8), split in 1usize..64) {
        let mut buf = Vec::new();
        for m in &msgs {
            encode_frame(m, &mut buf).unwrap();
        }
        let mut dec = FrameDecoder::<HaveMessage>::new();
        let mut got = Vec::new();
        for mut chunk in buf.chunks(split) {
            while let Some(m) = dec.decode(&mut chunk).unwrap() {
                got.push(m);
            }
        }
        dec.finish().unwrap();
        prop_assert_eq!(got, msgs);
    }

    #[test]
    fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = decode_frame::<PieceRequest>(&bytes);
        let _ = decode_frame::<PieceResponse>(&bytes);
        let _ = decode_frame::<HaveMessage>(&bytes);
    }
}

#[test]
fn largest_messages_fit_their_limits() {
    let d = Digest::of(b"x");
    round_trip(&PieceRequest {
        digest: d,
        index: u32::MAX,
    });
    round_trip(&PieceResponse::Ok { len: u32::MAX });
    round_trip(&PieceResponse::Redirect {
        hint: vec![u32::MAX; MAX_HINT],
    });
    round_trip(&HaveMessage::Bitfield {
        digest: d,
        bits: Bitfield::full(MAX_PIECES),
    });
    round_trip(&HaveMessage::Have {
        digest: d,
        index: u32::MAX,
    });
}

#[test]
fn limits_are_tight() {
    // Each limit is at most a few bytes above its largest message.
    let d = Digest::of(b"x");
    let mut buf = Vec::new();
    encode_frame(
        &PieceRequest {
            digest: d,
            index: u32::MAX,
        },
        &mut buf,
    )
    .unwrap();
    assert!(PieceRequest::MAX_LEN as usize - (buf.len() - 4) <= 8);
    buf.clear();
    let bits = Bitfield::full(MAX_PIECES);
    encode_frame(&HaveMessage::Bitfield { digest: d, bits }, &mut buf).unwrap();
    assert!(HaveMessage::MAX_LEN as usize - (buf.len() - 4) <= 64);
}

#[test]
fn hostile_length_is_refused_before_buffering() {
    let mut dec = FrameDecoder::<PieceRequest>::new();
    let mut input: &[u8] = &[0, 0, 1, 0, 1, 2, 3];
    assert!(matches!(
        dec.decode(&mut input),
        Err(FrameError::TooLarge { len: 256, max: 40 })
    ));
    // A bitfield claiming more than MAX_PIECES pieces fits the frame limit
    // but is refused while decoding (bincode varints: 0xFC = u32 follows,
    // 0xFB = u16 follows).
    let len = MAX_PIECES + 1;
    let bytes = len.div_ceil(8) as u16;
    let mut body = vec![0u8];
    body.extend_from_slice(&[7; 32]);
    body.push(0xFC);
    body.extend_from_slice(&len.to_le_bytes());
    body.push(0xFB);
    body.extend_from_slice(&bytes.to_le_bytes());
    body.resize(body.len() + usize::from(bytes), 0);
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    assert!(body.len() <= HaveMessage::MAX_LEN as usize);
    assert!(matches!(
        decode_frame::<HaveMessage>(&frame),
        Err(FrameError::Malformed(_))
    ));
}

#[test]
fn have_sequence_enforces_order() {
    let d = Digest::of(b"a");
    let e = Digest::of(b"b");
    let mut s = HaveSequence::new(1);
    let have = |index| HaveMessage::Have { digest: d, index };
    assert_eq!(s.check(&have(0)), Err(HaveError::NoBitfield(d)));
    let bits = HaveMessage::Bitfield {
        digest: d,
        bits: Bitfield::new(4),
    };
    s.check(&bits).unwrap();
    assert!(s.knows(&d));
    // A restatement replaces the blob's state (it was evicted and fetched
    // again), within the same limit.
    s.check(&bits).unwrap();
    assert_eq!(s.len(), 1);
    s.check(&have(3)).unwrap();
    assert_eq!(
        s.check(&have(4)),
        Err(HaveError::IndexOutOfRange {
            digest: d,
            index: 4,
            len: 4
        })
    );
    let other = HaveMessage::Bitfield {
        digest: e,
        bits: Bitfield::new(1),
    };
    assert_eq!(s.check(&other), Err(HaveError::TooManyBlobs(1)));
    s.check(&HaveMessage::Forget { digest: d }).unwrap();
    assert!(s.is_empty());
    assert_eq!(s.check(&have(0)), Err(HaveError::NoBitfield(d)));
    s.check(&other).unwrap();
    assert_eq!(s.len(), 1);
    assert_eq!(
        s.check(&HaveMessage::Forget { digest: d }),
        Err(HaveError::NoBitfield(d))
    );
}
