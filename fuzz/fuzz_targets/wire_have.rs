//! The `have` stream off the wire: [`HaveMessage`] frames in arbitrary
//! chunkings, each run through a [`HaveSequence`] as the receiver does.
//! Checks that every decoded message round-trips, that decoded bitfields
//! are consistent, that a refused message leaves the sequence unchanged,
//! and that the sequence never tracks more blobs than its limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shoal_fuzz::{check_bitfield, decode_consistently, split_chunks};
use shoal_proto::wire::{HaveMessage, HaveSequence};

/// Small, so that the fuzzer reaches the limit.
const MAX_BLOBS: usize = 3;

fuzz_target!(|data: &[u8]| {
    let (chunks, input) = split_chunks(data);
    let mut seq = HaveSequence::new(MAX_BLOBS);
    for msg in decode_consistently::<HaveMessage>(input, &chunks) {
        if let HaveMessage::Bitfield { bits, .. } = &msg {
            check_bitfield(bits);
        }
        let (len, knew) = (seq.len(), seq.knows(msg.digest()));
        match seq.check(&msg) {
            Ok(()) => match &msg {
                HaveMessage::Bitfield { digest, .. } => {
                    assert!(!knew && seq.knows(digest) && seq.len() == len + 1)
                }
                HaveMessage::Have { .. } => assert!(knew && seq.len() == len),
                HaveMessage::Forget { digest } => {
                    assert!(knew && !seq.knows(digest) && seq.len() == len - 1)
                }
            },
            Err(_) => assert!(seq.len() == len && seq.knows(msg.digest()) == knew),
        }
        assert!(seq.len() <= MAX_BLOBS);
    }
});
