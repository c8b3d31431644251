//! The cluster secret every daemon is given, and the keys derived from it.
//!
//! One secret file (`--cluster-secret-file`) is shared by all members of a
//! cluster. It is never used as a key directly: each use gets its own key
//! from HKDF-SHA256 (RFC 5869) with a distinct label, so a key that leaks
//! from one use (say, a signature scheme with a flaw) says nothing about the
//! others. The labels in use are listed on [`ClusterSecret::derive_key`].
//!
//! Reading the file is the daemons' business; this module only checks its
//! contents, so that every daemon accepts and refuses the same files.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::wire::http_auth::HttpAuth;

/// HKDF salt: fixed, so that every member derives the same keys.
const HKDF_SALT: &[u8] = b"shoal cluster secret v1";

/// Label of the key that signs HTTP requests between daemons.
pub(crate) const HTTP_AUTH_LABEL: &[u8] = b"shoal http auth v1";

/// Why a cluster secret was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// Fewer than [`ClusterSecret::MIN_LEN`] bytes after trimming.
    #[error(
        "cluster secret has {len} bytes; at least {} are required \
         (generate one with `head -c 32 /dev/urandom | base64`)",
        ClusterSecret::MIN_LEN
    )]
    TooShort {
        /// Bytes found.
        len: usize,
    },
    /// More than [`ClusterSecret::MAX_LEN`] bytes: not a secret file.
    #[error(
        "cluster secret has {len} bytes; at most {} are allowed",
        ClusterSecret::MAX_LEN
    )]
    TooLong {
        /// Bytes found.
        len: usize,
    },
}

/// The shared secret that makes a node a member of the cluster.
///
/// Its `Debug` output never shows the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterSecret {
    bytes: Vec<u8>,
}

impl ClusterSecret {
    /// Fewest secret bytes accepted (128 bits).
    pub const MIN_LEN: usize = 16;
    /// Most secret bytes accepted; also a sane cap on reading the file.
    pub const MAX_LEN: usize = 4096;

    /// A secret of exactly these bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, SecretError> {
        let bytes = bytes.into();
        if bytes.len() < Self::MIN_LEN {
            return Err(SecretError::TooShort { len: bytes.len() });
        }
        if bytes.len() > Self::MAX_LEN {
            return Err(SecretError::TooLong { len: bytes.len() });
        }
        Ok(ClusterSecret { bytes })
    }

    /// A secret from a secret file's contents, without leading and trailing
    /// ASCII whitespace (so a trailing newline, or CRLF, does not matter).
    pub fn from_file_contents(contents: &[u8]) -> Result<Self, SecretError> {
        Self::new(contents.trim_ascii())
    }

    /// A 32-byte key for one use of the secret, named by `label`.
    ///
    /// HKDF-SHA256 with a fixed salt and `label` as the info string. Labels
    /// in use: `shoal http auth v1` ([`HttpAuth`]) and `shoal tls ca v1`
    /// (the seed of the cluster CA key, in the agent's transport).
    pub fn derive_key(&self, label: &[u8]) -> [u8; 32] {
        hkdf_sha256_32(HKDF_SALT, &self.bytes, label)
    }

    /// The signer and verifier of HTTP requests between daemons.
    pub fn http_auth(&self) -> HttpAuth {
        HttpAuth::new(self.derive_key(HTTP_AUTH_LABEL))
    }
}

impl fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClusterSecret({} bytes, redacted)", self.bytes.len())
    }
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// HKDF-SHA256 (RFC 5869) with an output of one hash length: extract, then
/// the first block of expand.
fn hkdf_sha256_32(salt: &[u8], ikm: &[u8], info: &[u8]) -> [u8; 32] {
    let prk = hmac_sha256(salt, &[ikm]);
    hmac_sha256(&prk, &[info, &[1]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hkdf_matches_rfc5869_case_1() {
        let ikm = [0x0b; 22];
        let salt: Vec<u8> = (0x00..=0x0c).collect();
        let info: Vec<u8> = (0xf0..=0xf9).collect();
        let okm = hkdf_sha256_32(&salt, &ikm, &info);
        assert_eq!(
            hex::encode(okm),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf"
        );
    }

    #[test]
    fn length_limits_and_trimming() {
        assert_eq!(
            ClusterSecret::new(*b"short").unwrap_err(),
            SecretError::TooShort { len: 5 }
        );
        assert!(matches!(
            ClusterSecret::new(vec![1; 5000]),
            Err(SecretError::TooLong { len: 5000 })
        ));
        let a = ClusterSecret::from_file_contents(b"0123456789abcdef\r\n").unwrap();
        let b = ClusterSecret::new(*b"0123456789abcdef").unwrap();
        assert_eq!(a, b);
        assert!(ClusterSecret::from_file_contents(b"  \n0123456789abcde\n").is_err());
        let msg = SecretError::TooShort { len: 3 }.to_string();
        assert!(msg.contains("at least 16"), "{msg}");
    }

    #[test]
    fn keys_differ_per_label_and_secret() {
        let a = ClusterSecret::new(*b"0123456789abcdef").unwrap();
        let b = ClusterSecret::new(*b"0123456789abcdeF").unwrap();
        assert_ne!(a.derive_key(b"x"), a.derive_key(b"y"));
        assert_ne!(a.derive_key(b"x"), b.derive_key(b"x"));
        assert_eq!(a.derive_key(b"x"), a.clone().derive_key(b"x"));
    }

    #[test]
    fn debug_hides_the_bytes() {
        let s = ClusterSecret::new(*b"supersecretvalue").unwrap();
        let shown = format!("{s:?}");
        assert!(!shown.contains("supersecret"), "{shown}");
    }
}
