//! Signed HTTP requests between daemons: `Authorization: Shoal ts=…,sig=…`.
//!
//! The tracker and the supernode's agent API accept a request only from a
//! cluster member. The caller signs the method, the path (with its query),
//! the time and the sha256 of the body with a key derived from the cluster
//! secret; the server recomputes the signature and checks that the time is
//! within a window of its own clock. Header value:
//!
//! ```text
//! Shoal ts=<unix seconds>,sig=<64 hex: HMAC-SHA256(key, canonical request)>
//! ```
//!
//! The canonical request is `"shoal-http-v1"`, then the method (upper case)
//! and the path, each prefixed by its length as a `u32` big endian, then
//! `ts` as a `u64` big endian, then the body's 32-byte sha256: unambiguous
//! however the parts look. Replays of the same request within the window
//! are possible; the APIs this protects (announces, piece map reads) are
//! idempotent. Time is an input (`now`), never read here.

use std::fmt;
use std::time::{Duration, SystemTime};

use hmac::{Hmac, Mac};
use sha2::{Digest as _, Sha256};

/// The `Authorization` scheme name.
pub const AUTH_SCHEME: &str = "Shoal";

/// Domain separation tag at the start of every canonical request.
const CONTEXT: &[u8] = b"shoal-http-v1";

/// Longest header value looked at; anything longer is malformed.
const MAX_HEADER_LEN: usize = 256;

/// Why a request's signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpAuthError {
    /// The header is not `Shoal ts=<digits>,sig=<64 hex>`.
    #[error("malformed Shoal authorization header")]
    Malformed,
    /// The timestamp is further from the server's clock than the window.
    #[error(
        "request timestamp is {skew_secs} s away from the server clock (window {window_secs} s)"
    )]
    Expired {
        /// Distance between the request's time and `now`, in seconds.
        skew_secs: u64,
        /// The accepted window, in seconds.
        window_secs: u64,
    },
    /// The signature does not match: wrong secret, or the request was
    /// altered.
    #[error("request signature does not match")]
    BadSignature,
}

/// Signs and verifies HTTP requests with a key derived from the cluster
/// secret; get one from [`ClusterSecret::http_auth`].
///
/// [`ClusterSecret::http_auth`]: crate::wire::ClusterSecret::http_auth
#[derive(Clone)]
pub struct HttpAuth {
    key: [u8; 32],
    window: Duration,
}

impl HttpAuth {
    /// Default accepted clock distance between signer and verifier.
    pub const DEFAULT_WINDOW: Duration = Duration::from_secs(300);

    pub(crate) fn new(key: [u8; 32]) -> Self {
        HttpAuth {
            key,
            window: Self::DEFAULT_WINDOW,
        }
    }

    /// The same key with another accepted clock window.
    pub fn with_window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// The `Authorization` header value for a request made at `now`.
    ///
    /// `path` is the request target as sent: path and query.
    pub fn sign(&self, method: &str, path: &str, body: &[u8], now: SystemTime) -> String {
        let ts = unix_secs(now);
        let sig = self.mac(method, path, ts, body).finalize().into_bytes();
        format!("{AUTH_SCHEME} ts={ts},sig={}", hex::encode(sig))
    }

    /// Checks a request's `Authorization` header value, received at `now`.
    pub fn verify(
        &self,
        header: &str,
        method: &str,
        path: &str,
        body: &[u8],
        now: SystemTime,
    ) -> Result<(), HttpAuthError> {
        let (ts, sig) = parse(header).ok_or(HttpAuthError::Malformed)?;
        let skew_secs = unix_secs(now).abs_diff(ts);
        if skew_secs > self.window.as_secs() {
            return Err(HttpAuthError::Expired {
                skew_secs,
                window_secs: self.window.as_secs(),
            });
        }
        self.mac(method, path, ts, body)
            .verify_slice(&sig)
            .map_err(|_| HttpAuthError::BadSignature)
    }

    fn mac(&self, method: &str, path: &str, ts: u64, body: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length");
        let method = method.to_ascii_uppercase();
        mac.update(CONTEXT);
        for part in [method.as_bytes(), path.as_bytes()] {
            mac.update(&(part.len() as u32).to_be_bytes());
            mac.update(part);
        }
        mac.update(&ts.to_be_bytes());
        mac.update(&Sha256::digest(body));
        mac
    }
}

impl fmt::Debug for HttpAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpAuth")
            .field("key", &"redacted")
            .field("window", &self.window)
            .finish()
    }
}

/// Seconds since the Unix epoch; times before it count as 0.
fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Splits `Shoal ts=<digits>,sig=<64 hex>` into its parts.
fn parse(header: &str) -> Option<(u64, [u8; 32])> {
    if header.len() > MAX_HEADER_LEN {
        return None;
    }
    let rest = header.strip_prefix(AUTH_SCHEME)?.strip_prefix(' ')?;
    let (ts, sig) = rest.split_once(',')?;
    let ts = ts.strip_prefix("ts=")?;
    if ts.is_empty() || ts.len() > 20 || !ts.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let ts = ts.parse().ok()?;
    let mut out = [0u8; 32];
    hex::decode_to_slice(sig.strip_prefix("sig=")?, &mut out).ok()?;
    Some((ts, out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ClusterSecret;

    fn auth(secret: &[u8; 16]) -> HttpAuth {
        ClusterSecret::new(*secret).unwrap().http_auth()
    }

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    const BODY: &[u8] = br#"{"digest":"sha256:00"}"#;

    #[test]
    fn signed_request_verifies() {
        let a = auth(b"0123456789abcdef");
        let h = a.sign("post", "/v1/announce?x=1", BODY, at(1_700_000_000));
        assert!(h.starts_with("Shoal ts=1700000000,sig="), "{h}");
        assert_eq!(h.len(), "Shoal ts=1700000000,sig=".len() + 64);
        a.verify(&h, "POST", "/v1/announce?x=1", BODY, at(1_700_000_000))
            .unwrap();
        // Within the window on either side.
        a.verify(&h, "POST", "/v1/announce?x=1", BODY, at(1_700_000_300))
            .unwrap();
        a.verify(&h, "POST", "/v1/announce?x=1", BODY, at(1_699_999_700))
            .unwrap();
    }

    #[test]
    fn expired_or_future_timestamp_is_refused() {
        let a = auth(b"0123456789abcdef");
        let h = a.sign("GET", "/p", b"", at(1_000_000));
        assert_eq!(
            a.verify(&h, "GET", "/p", b"", at(1_000_301)),
            Err(HttpAuthError::Expired {
                skew_secs: 301,
                window_secs: 300
            })
        );
        assert!(matches!(
            a.verify(&h, "GET", "/p", b"", at(999_000)),
            Err(HttpAuthError::Expired { .. })
        ));
        let narrow = a.clone().with_window(Duration::from_secs(5));
        assert!(narrow.verify(&h, "GET", "/p", b"", at(1_000_006)).is_err());
        narrow.verify(&h, "GET", "/p", b"", at(1_000_005)).unwrap();
    }

    #[test]
    fn wrong_secret_or_altered_request_is_refused() {
        let a = auth(b"0123456789abcdef");
        let b = auth(b"0123456789abcdeX");
        let now = at(5_000);
        let h = a.sign("PUT", "/a", BODY, now);
        let bad = Err(HttpAuthError::BadSignature);
        assert_eq!(b.verify(&h, "PUT", "/a", BODY, now), bad);
        assert_eq!(a.verify(&h, "POST", "/a", BODY, now), bad);
        assert_eq!(a.verify(&h, "PUT", "/b", BODY, now), bad);
        assert_eq!(a.verify(&h, "PUT", "/a", b"{}", now), bad);
        // Moving the timestamp invalidates the signature.
        let moved = h.replace("ts=5000", "ts=5001");
        assert_eq!(a.verify(&moved, "PUT", "/a", BODY, now), bad);
    }

    #[test]
    fn malformed_headers_are_refused() {
        let a = auth(b"0123456789abcdef");
        let good = a.sign("GET", "/", b"", at(10));
        let sig = good.split_once("sig=").unwrap().1;
        for h in [
            String::new(),
            "Shoal".into(),
            "Bearer abc".into(),
            format!("shoal ts=10,sig={sig}"),
            format!("Shoal ts=,sig={sig}"),
            format!("Shoal ts=-1,sig={sig}"),
            format!("Shoal ts=10,sig={}", &sig[..63]),
            format!("Shoal ts=10,sig={sig}00"),
            format!("Shoal ts=99999999999999999999999,sig={sig}"),
            format!("Shoal ts=10 ,sig={sig}"),
            "Shoal ".to_string() + &"x".repeat(10_000),
        ] {
            assert_eq!(
                a.verify(&h, "GET", "/", b"", at(10)),
                Err(HttpAuthError::Malformed),
                "{h:?}"
            );
        }
        a.verify(&good, "GET", "/", b"", at(10)).unwrap();
    }

    #[test]
    fn key_is_not_shown() {
        let shown = format!("{:?}", auth(b"0123456789abcdef"));
        assert!(shown.contains("redacted"));
    }
}
