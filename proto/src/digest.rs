//! Content digests as used by OCI registries.
//!
//! Only `sha256` is accepted. Other algorithms the OCI image spec registers
//! (`sha512`, `blake3`) are recognised so the caller can answer with a clear
//! "unsupported algorithm" error instead of a generic parse failure.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
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

#[cfg(test)]
mod tests {
    use super::*;

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
