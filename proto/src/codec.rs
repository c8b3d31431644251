//! The body codec of every frame: bincode 1.3, in this one file.
//!
//! bincode 1.x carries an "unmaintained" advisory and 3.0 is a stub that
//! does not compile, so a switch (postcard, wincode) may come. Every bincode
//! call of the crate is here, behind three crate-private functions, so that
//! switch touches this file only. The options (varint integers, little
//! endian) are fixed in [`options`] and used for encoding and decoding alike.
//!
//! Decoding is always bounded by the body's length: bincode charges every
//! byte it reads against that limit, including the declared length of a
//! string or byte vector *before* allocating for it, so a hostile length
//! prefix inside a body fails instead of allocating. The one allocation a
//! lying length can still cause is serde's preallocation for a sequence
//! (`Vec<T>`, maps), which serde caps at 1 MiB per sequence and which is
//! freed as soon as decoding fails; message types should keep sequences
//! shallow.

use bincode::Options;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::frame::FrameError;

/// Longest error text kept from the codec: its messages can quote input.
const MAX_ERROR_TEXT: usize = 200;

/// The one set of bincode options, shared by encoding and decoding.
fn options() -> impl Options {
    bincode::DefaultOptions::new()
        .with_varint_encoding()
        .with_little_endian()
        .allow_trailing_bytes()
}

fn error_text(e: &bincode::Error) -> String {
    let mut s = e.to_string();
    if s.len() > MAX_ERROR_TEXT {
        let mut end = MAX_ERROR_TEXT;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

/// Encoded size of `value` in bytes, without encoding it.
pub(crate) fn encoded_len<T: Serialize>(value: &T) -> Result<u64, FrameError> {
    options()
        .serialized_size(value)
        .map_err(|e| FrameError::Encode(error_text(&e)))
}

/// Appends the encoding of `value` to `out`.
pub(crate) fn encode_into<T: Serialize>(value: &T, out: &mut Vec<u8>) -> Result<(), FrameError> {
    options()
        .serialize_into(out, value)
        .map_err(|e| FrameError::Encode(error_text(&e)))
}

/// Decodes one value that must span all of `body`.
///
/// Never reads beyond `body.len()` bytes, and never allocates for a string
/// or byte vector longer than that (sequences: see the module docs).
pub(crate) fn decode_exact<T: DeserializeOwned>(body: &[u8]) -> Result<T, FrameError> {
    // Reading through `&mut &[u8]` advances the slice, which tells how many
    // bytes the value used.
    let mut rest = body;
    let value = options()
        .with_limit(body.len() as u64)
        .deserialize_from(&mut rest)
        .map_err(|e| FrameError::Malformed(error_text(&e)))?;
    if !rest.is_empty() {
        return Err(FrameError::TrailingBytes { extra: rest.len() });
    }
    Ok(value)
}
