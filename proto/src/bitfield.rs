//! Which pieces of a blob a peer holds, one bit per piece.
//!
//! Peers send bitfields in announces and on the `have` stream, and agents
//! persist theirs so a restart resumes a download; it has to be small on the
//! wire and cheap to scan for the next missing piece. In memory the bits sit
//! in `u64` words; on the wire they are bytes (bit `i` is bit `i % 8` of byte
//! `i / 8`), so a bitfield costs one bit per piece plus its length.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::piece::MAX_PIECES;

/// A fixed-length set of piece indices.
///
/// Bits past `len` are always zero, which keeps equality, counting and
/// scanning simple.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "WireBitfield", into = "WireBitfield")]
pub struct Bitfield {
    words: Vec<u64>,
    len: u32,
}

/// Why a bitfield from the wire was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BitfieldError {
    /// The bitfield claims more than [`MAX_PIECES`] pieces.
    #[error("bitfield of {0} pieces exceeds the limit of {MAX_PIECES}")]
    TooLong(u32),
    /// The number of bytes does not match the length.
    #[error("bitfield of {len} pieces needs {expected} bytes, got {actual}")]
    WrongByteCount {
        /// Declared number of pieces.
        len: u32,
        /// Bytes that length needs.
        expected: usize,
        /// Bytes received.
        actual: usize,
    },
    /// A bit past the declared length is set.
    #[error("bitfield has bits set past its length {0}")]
    BitsPastEnd(u32),
}

/// The wire form: the length and the bits packed into bytes.
#[derive(Serialize, Deserialize)]
struct WireBitfield {
    len: u32,
    bits: Vec<u8>,
}

impl From<Bitfield> for WireBitfield {
    fn from(b: Bitfield) -> Self {
        let mut bits: Vec<u8> = b.words.iter().flat_map(|w| w.to_le_bytes()).collect();
        bits.truncate(byte_len(b.len));
        WireBitfield { len: b.len, bits }
    }
}

impl TryFrom<WireBitfield> for Bitfield {
    type Error = BitfieldError;
    fn try_from(w: WireBitfield) -> Result<Self, BitfieldError> {
        if w.len > MAX_PIECES {
            return Err(BitfieldError::TooLong(w.len));
        }
        let expected = byte_len(w.len);
        if w.bits.len() != expected {
            return Err(BitfieldError::WrongByteCount {
                len: w.len,
                expected,
                actual: w.bits.len(),
            });
        }
        let words: Vec<u64> = w
            .bits
            .chunks(8)
            .map(|c| {
                let mut b = [0u8; 8];
                b[..c.len()].copy_from_slice(c);
                u64::from_le_bytes(b)
            })
            .collect();
        let field = Bitfield { words, len: w.len };
        if field
            .words
            .last()
            .is_some_and(|&last| last & !field.last_word_mask() != 0)
        {
            return Err(BitfieldError::BitsPastEnd(w.len));
        }
        Ok(field)
    }
}

fn byte_len(len: u32) -> usize {
    (len as usize).div_ceil(8)
}

fn word_len(len: u32) -> usize {
    (len as usize).div_ceil(64)
}

impl Bitfield {
    /// A bitfield of `len` pieces, none held.
    ///
    /// Allocates `len / 8` bytes: take `len` from a validated [`PieceMap`],
    /// not straight from a peer.
    ///
    /// [`PieceMap`]: crate::piece::PieceMap
    pub fn new(len: u32) -> Self {
        Bitfield {
            words: vec![0; word_len(len)],
            len,
        }
    }

    /// A bitfield of `len` pieces, all held.
    pub fn full(len: u32) -> Self {
        let mut b = Bitfield {
            words: vec![u64::MAX; word_len(len)],
            len,
        };
        let mask = b.last_word_mask();
        if let Some(last) = b.words.last_mut() {
            *last &= mask;
        }
        b
    }

    /// Bits of the last word that lie within `len`.
    fn last_word_mask(&self) -> u64 {
        match self.len % 64 {
            0 => u64::MAX,
            r => (1u64 << r) - 1,
        }
    }

    /// Number of pieces (held or not).
    pub fn len(&self) -> u32 {
        self.len
    }

    /// Whether the bitfield covers no pieces at all.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn check(&self, index: u32) {
        assert!(
            index < self.len,
            "piece {index} out of range for bitfield of {}",
            self.len
        );
    }

    /// Whether piece `index` is held.
    ///
    /// # Panics
    ///
    /// If `index >= self.len()`.
    pub fn get(&self, index: u32) -> bool {
        self.check(index);
        self.words[(index / 64) as usize] >> (index % 64) & 1 == 1
    }

    /// Marks piece `index` held; returns whether it was missing before.
    ///
    /// # Panics
    ///
    /// If `index >= self.len()`.
    pub fn set(&mut self, index: u32) -> bool {
        self.check(index);
        let word = &mut self.words[(index / 64) as usize];
        let bit = 1u64 << (index % 64);
        let was_missing = *word & bit == 0;
        *word |= bit;
        was_missing
    }

    /// Marks piece `index` missing (for instance after a failed write).
    ///
    /// # Panics
    ///
    /// If `index >= self.len()`.
    pub fn clear(&mut self, index: u32) {
        self.check(index);
        self.words[(index / 64) as usize] &= !(1u64 << (index % 64));
    }

    /// Number of pieces held.
    pub fn count(&self) -> u32 {
        self.words.iter().map(|w| w.count_ones()).sum()
    }

    /// Whether every piece is held (true for an empty bitfield).
    pub fn is_complete(&self) -> bool {
        self.count() == self.len
    }

    /// Number of pieces held here and missing from `other`: what this peer
    /// could give `other`. Only the pieces both bitfields cover count.
    pub fn count_not_in(&self, other: &Bitfield) -> u32 {
        self.words
            .iter()
            .zip(&other.words)
            .map(|(a, b)| (a & !b).count_ones())
            .sum()
    }

    /// The lowest missing piece, if any.
    pub fn first_missing(&self) -> Option<u32> {
        self.iter_missing().next()
    }

    /// Missing pieces in increasing order.
    pub fn iter_missing(&self) -> impl Iterator<Item = u32> + '_ {
        self.iter_bits(|w| !w)
    }

    /// Held pieces in increasing order.
    pub fn iter_held(&self) -> impl Iterator<Item = u32> + '_ {
        self.iter_bits(|w| w)
    }

    /// Indices of the set bits of `select(word)`, limited to `len`.
    fn iter_bits(&self, select: fn(u64) -> u64) -> impl Iterator<Item = u32> + '_ {
        let len = self.len;
        self.words.iter().enumerate().flat_map(move |(i, &w)| {
            let mut bits = select(w);
            std::iter::from_fn(move || {
                if bits == 0 {
                    return None;
                }
                let b = bits.trailing_zeros();
                bits &= bits - 1;
                Some(i as u32 * 64 + b)
            })
            .take_while(move |&idx| idx < len)
        })
    }
}

impl fmt::Debug for Bitfield {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Bitfield({}/{} held)", self.count(), self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn empty_bitfield_is_complete() {
        let b = Bitfield::new(0);
        assert!(b.is_empty() && b.is_complete());
        assert_eq!(b.first_missing(), None);
        assert_eq!(Bitfield::full(0), b);
    }

    #[test]
    fn set_get_count() {
        let mut b = Bitfield::new(130);
        assert_eq!(b.first_missing(), Some(0));
        assert!(b.set(0));
        assert!(!b.set(0));
        b.set(64);
        b.set(129);
        assert!(b.get(0) && b.get(64) && b.get(129) && !b.get(1));
        assert_eq!(b.count(), 3);
        assert_eq!(b.first_missing(), Some(1));
        assert_eq!(b.iter_held().collect::<Vec<_>>(), [0, 64, 129]);
        b.clear(64);
        assert_eq!(b.count(), 2);
        assert_eq!(b.iter_missing().count(), 128);
    }

    #[test]
    fn count_not_in_counts_what_one_could_give_the_other() {
        let mut a = Bitfield::new(130);
        let mut b = Bitfield::new(130);
        for i in [1, 64, 100, 129] {
            a.set(i);
        }
        b.set(64);
        b.set(5);
        assert_eq!(a.count_not_in(&b), 3);
        assert_eq!(b.count_not_in(&a), 1);
        assert_eq!(a.count_not_in(&Bitfield::full(130)), 0);
    }

    #[test]
    fn full_has_no_bits_past_end() {
        for len in [1, 63, 64, 65, 128, 1000] {
            let b = Bitfield::full(len);
            assert!(b.is_complete(), "{len}");
            assert_eq!(b.count(), len);
            assert_eq!(b.iter_missing().next(), None);
        }
    }

    #[test]
    #[should_panic(expected = "out of range")]
    fn set_out_of_range_panics() {
        Bitfield::new(10).set(10);
    }

    #[test]
    fn wire_form_is_checked() {
        let bad = [
            WireBitfield {
                len: 9,
                bits: vec![0],
            },
            WireBitfield {
                len: 8,
                bits: vec![0, 0],
            },
            WireBitfield {
                len: 3,
                bits: vec![0b1000],
            },
            WireBitfield {
                len: MAX_PIECES + 1,
                bits: vec![0; byte_len(MAX_PIECES + 1)],
            },
        ];
        for w in bad {
            assert!(Bitfield::try_from(w).is_err());
        }
        let ok = Bitfield::try_from(WireBitfield {
            len: 3,
            bits: vec![0b101],
        })
        .unwrap();
        assert_eq!(ok.iter_held().collect::<Vec<_>>(), [0, 2]);
    }

    #[test]
    fn json_round_trip() {
        let mut b = Bitfield::new(20);
        b.set(3);
        b.set(19);
        let json = serde_json::to_string(&b).unwrap();
        assert_eq!(json, r#"{"len":20,"bits":[8,0,8]}"#);
        assert_eq!(serde_json::from_str::<Bitfield>(&json).unwrap(), b);
    }

    proptest! {
        #[test]
        fn behaves_like_a_set(len in 0u32..300, ops in prop::collection::vec((any::<u32>(), any::<bool>()), 0..200)) {
            let mut b = Bitfield::new(len);
            let mut model = std::collections::BTreeSet::new();
            if len > 0 {
                for (i, add) in ops {
                    let i = i % len;
                    if add {
                        prop_assert_eq!(b.set(i), model.insert(i));
                    } else {
                        b.clear(i);
                        model.remove(&i);
                    }
                }
            }
            prop_assert_eq!(b.count() as usize, model.len());
            prop_assert_eq!(b.iter_held().collect::<Vec<_>>(), model.iter().copied().collect::<Vec<_>>());
            let missing: Vec<u32> = (0..len).filter(|i| !model.contains(i)).collect();
            prop_assert_eq!(b.iter_missing().collect::<Vec<_>>(), missing.clone());
            prop_assert_eq!(b.first_missing(), missing.first().copied());
            prop_assert_eq!(b.is_complete(), missing.is_empty());
            let back: Bitfield = serde_json::from_str(&serde_json::to_string(&b).unwrap()).unwrap();
            prop_assert_eq!(back, b);
        }
    }
}
