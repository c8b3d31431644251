//! Content digests as used by OCI registries.
//!
//! Only `sha256` is accepted. Other algorithms the OCI image spec registers
//! (`sha512`, `blake3`) are recognised so the caller can answer with a clear
//! "unsupported algorithm" error instead of a generic parse failure.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::digest::generic_array::GenericArray;
use sha2::{Digest as _, Sha256};

/// A validated `sha256:<64 lowercase hex>` digest.
///
/// Stored as raw bytes; displays and serialises as the canonical string.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest([u8; 32]);

/// Why a string is not an acceptable digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// The string has no `algorithm:` prefix or is otherwise not a digest.
    #[error("invalid digest {0:?}: expected sha256:<64 lowercase hex>")]
    Malformed(String),
    /// A well-formed digest with an algorithm Shoal does not verify.
    #[error("unsupported digest algorithm {0:?}: only sha256 is supported")]
    UnsupportedAlgorithm(String),
    /// The algorithm is sha256 but the encoded part is not 64 lowercase hex.
    #[error("invalid sha256 digest {0:?}: expected 64 lowercase hex characters")]
    BadHex(String),
}

impl Digest {
    /// Length of the encoded hex part.
    pub const HEX_LEN: usize = 64;

    /// Builds a digest from raw sha256 output.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Digest(bytes)
    }

    /// The sha256 of `data`.
    pub fn of(data: &[u8]) -> Self {
        Digest(Sha256::digest(data).into())
    }

    /// Raw sha256 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The 64-character lowercase hex part, without `sha256:`.
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses `sha256:<hex>`, refusing anything else with a precise error.
    pub fn parse(s: &str) -> Result<Self, DigestError> {
        let Some((alg, enc)) = s.split_once(':') else {
            return Err(DigestError::Malformed(truncate(s)));
        };
        if !is_algorithm(alg) || enc.is_empty() || !is_encoded(enc) {
            return Err(DigestError::Malformed(truncate(s)));
        }
        if alg != "sha256" {
            return Err(DigestError::UnsupportedAlgorithm(truncate(alg)));
        }
        if enc.len() != Self::HEX_LEN
            || !enc
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(DigestError::BadHex(truncate(s)));
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(enc, &mut out).map_err(|_| DigestError::BadHex(truncate(s)))?;
        Ok(Digest(out))
    }
}

/// Keeps error messages bounded when the input is hostile.
fn truncate(s: &str) -> String {
    const MAX: usize = 100;
    if s.len() <= MAX {
        s.to_owned()
    } else {
        let mut end = MAX;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &s[..end])
    }
}

/// `algorithm-component (algorithm-separator algorithm-component)*` with
/// components `[a-z0-9]+` and separators `[+._-]` (OCI image spec).
fn is_algorithm(alg: &str) -> bool {
    !alg.is_empty()
        && alg.split(['+', '.', '_', '-']).all(|c| {
            !c.is_empty()
                && c.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

/// `[a-zA-Z0-9=_-]+` (OCI image spec).
fn is_encoded(enc: &str) -> bool {
    enc.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'=' || b == b'_' || b == b'-')
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Digest::parse(s)
    }
}

impl Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(self)
        } else {
            self.0.serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            Digest::parse(&s).map_err(serde::de::Error::custom)
        } else {
            <[u8; 32]>::deserialize(d).map(Digest)
        }
    }
}

/// Incremental sha256 that yields a [`Digest`].
#[derive(Default, Clone)]
pub struct Hasher(Sha256);

impl Hasher {
    /// A fresh hasher.
    pub fn new() -> Self {
        Self::default()
    }
    /// Feeds more bytes.
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }
    /// The digest of everything fed so far.
    pub fn finish(self) -> Digest {
        Digest(self.0.finalize().into())
    }
}

/// sha256's block size: chaining values exist only at multiples of it.
pub const SHA256_BLOCK: u64 = 64;

/// sha256's initial hash value (FIPS 180-4, 5.3.3).
const SHA256_IV: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

/// sha256 that can stop at a block boundary and be resumed there by
/// someone else.
///
/// After a whole number of 64-byte blocks, sha256's internal state (its
/// *chaining value*, 32 bytes, carried here as a [`Digest`]) is all that
/// the rest of the computation needs. A piece map lists the chaining value
/// at the end of every piece, so any piece can be checked on its own by
/// resuming from the value before it, and a blob whose pieces all check
/// hashes to its digest without being hashed a second time (see
/// [`PieceMap`](crate::PieceMap)). [`ChainHasher::new`] then
/// [`ChainHasher::finish`] is plain sha256.
#[derive(Clone)]
pub struct ChainHasher {
    state: [u32; 8],
    /// Bytes fed since the start of the message, including the resumed part.
    len: u64,
    buf: [u8; 64],
    /// Bytes of `buf` waiting for a whole block.
    buffered: usize,
}

impl Default for ChainHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl ChainHasher {
    /// sha256 from the start.
    pub fn new() -> Self {
        ChainHasher {
            state: SHA256_IV,
            len: 0,
            buf: [0; 64],
            buffered: 0,
        }
    }

    /// sha256 resumed after the first `offset` bytes of a message, whose
    /// chaining value is `chain`. `offset` must be a multiple of
    /// [`SHA256_BLOCK`] (it is rounded down otherwise, which can only make
    /// the result wrong, never panic).
    pub fn resume(chain: &Digest, offset: u64) -> Self {
        let mut state = [0u32; 8];
        for (w, b) in state.iter_mut().zip(chain.0.chunks_exact(4)) {
            *w = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        }
        ChainHasher {
            state,
            len: offset - offset % SHA256_BLOCK,
            buf: [0; 64],
            buffered: 0,
        }
    }

    /// Feeds more bytes.
    pub fn update(&mut self, mut data: &[u8]) {
        self.len += data.len() as u64;
        if self.buffered > 0 {
            let take = (64 - self.buffered).min(data.len());
            self.buf[self.buffered..self.buffered + take].copy_from_slice(&data[..take]);
            self.buffered += take;
            data = &data[take..];
            if self.buffered < 64 {
                return;
            }
            let block = self.buf;
            self.compress(&block);
            self.buffered = 0;
        }
        let whole = data.len() - data.len() % 64;
        for block in data[..whole].chunks_exact(64) {
            self.compress(block);
        }
        let rest = &data[whole..];
        self.buf[..rest.len()].copy_from_slice(rest);
        self.buffered = rest.len();
    }

    fn compress(&mut self, block: &[u8]) {
        sha2::compress256(
            &mut self.state,
            std::slice::from_ref(GenericArray::from_slice(block)),
        );
    }

    /// Bytes fed, counting the resumed part.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was fed or resumed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The chaining value after everything fed, if that is a whole number
    /// of blocks.
    pub fn chain_value(&self) -> Option<Digest> {
        (self.buffered == 0).then(|| self.state_bytes())
    }

    fn state_bytes(&self) -> Digest {
        let mut out = [0u8; 32];
        for (b, w) in out.chunks_exact_mut(4).zip(self.state) {
            b.copy_from_slice(&w.to_be_bytes());
        }
        Digest(out)
    }

    /// The sha256 of the whole message (resumed part included).
    pub fn finish(mut self) -> Digest {
        let bits = self.len.wrapping_mul(8);
        let mut tail = [0u8; 128];
        let n = self.buffered;
        tail[..n].copy_from_slice(&self.buf[..n]);
        tail[n] = 0x80;
        // Room for the 0x80 and the 8-byte length in this block, else one more.
        let total = if n + 1 + 8 <= 64 { 64 } else { 128 };
        tail[total - 8..total].copy_from_slice(&bits.to_be_bytes());
        for block in tail[..total].chunks_exact(64) {
            self.compress(block);
        }
        self.state_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_hasher_is_sha256_however_fed_and_resumed() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        for len in [0, 1, 55, 56, 63, 64, 65, 119, 120, 128, 500, 1000] {
            let want = Digest::of(&data[..len]);
            let mut whole = ChainHasher::new();
            whole.update(&data[..len]);
            assert_eq!(whole.len(), len as u64);
            assert_eq!(whole.finish(), want, "len {len}");
            let mut bytewise = ChainHasher::new();
            for b in &data[..len] {
                bytewise.update(std::slice::from_ref(b));
            }
            assert_eq!(bytewise.finish(), want, "len {len}, byte by byte");
            // Stopped at every block boundary, resumed from the value alone.
            for cut in (0..=len).step_by(64) {
                let mut first = ChainHasher::new();
                first.update(&data[..cut]);
                let chain = first.chain_value().expect("a block boundary");
                let mut rest = ChainHasher::resume(&chain, cut as u64);
                rest.update(&data[cut..len]);
                assert_eq!(rest.finish(), want, "len {len}, resumed at {cut}");
            }
        }
        let mut h = ChainHasher::new();
        h.update(&data[..65]);
        assert_eq!(h.chain_value(), None);
    }

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_and_displays_canonical_form() {
        let d = Digest::parse(EMPTY).unwrap();
        assert_eq!(d.to_string(), EMPTY);
        assert_eq!(d, Digest::of(b""));
    }

    #[test]
    fn refuses_other_algorithms_clearly() {
        let e = Digest::parse("sha512:abcd").unwrap_err();
        assert_eq!(e, DigestError::UnsupportedAlgorithm("sha512".into()));
        assert!(matches!(
            Digest::parse("blake3:abc"),
            Err(DigestError::UnsupportedAlgorithm(_))
        ));
    }

    #[test]
    fn refuses_malformed() {
        for s in [
            "",
            "sha256",
            "sha256:",
            ":abc",
            "SHA256:abc",
            "sha256:../../etc",
            "sha256:ab/cd",
        ] {
            assert!(Digest::parse(s).is_err(), "{s}");
        }
        let upper = EMPTY.to_uppercase().replace("SHA256", "sha256");
        assert!(matches!(Digest::parse(&upper), Err(DigestError::BadHex(_))));
        assert!(matches!(
            Digest::parse(&EMPTY[..70]),
            Err(DigestError::BadHex(_))
        ));
    }

    #[test]
    fn hostile_input_gives_bounded_error() {
        let long = format!("sha256:{}", "z".repeat(100_000));
        let msg = Digest::parse(&long).unwrap_err().to_string();
        assert!(msg.len() < 300);
    }
}
