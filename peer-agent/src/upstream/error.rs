//! Errors of the upstream client, and how transport failures and registry
//! answers are turned into them.

use std::error::Error as StdError;
use std::fmt::Write as _;
use std::time::Duration;

use serde::Deserialize;
use shoal_proto::Digest;

/// Why an upstream request failed.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The repository, manifest or blob does not exist upstream (HTTP 404).
    #[error("not found upstream")]
    NotFound,
    /// The upstream wants (other) credentials (HTTP 401); holds its message.
    #[error("unauthorized by upstream: {0}")]
    Unauthorized(String),
    /// The credentials were accepted but do not grant access (HTTP 403).
    #[error("access denied by upstream: {0}")]
    Denied(String),
    /// Rate limited (HTTP 429) on every attempt, or told to wait longer than `backoff_max`.
    #[error("rate limited by upstream{}", retry_after_text(retry_after))]
    TooManyRequests {
        /// How long the upstream asked us to wait, when it said.
        retry_after: Option<Duration>,
    },
    /// The TLS handshake failed, typically certificate verification; names the upstream.
    #[error("{0}")]
    Tls(String),
    /// No connection could be established (DNS, refused, unreachable).
    #[error("cannot connect to upstream: {0}")]
    Connect(String),
    /// An established connection broke (reset, body shorter than announced).
    #[error("upstream connection failed: {0}")]
    Transport(String),
    /// No response headers within `request_timeout`, or a body idle for `read_timeout`.
    #[error("upstream timed out: {0}")]
    Timeout(String),
    /// Any other unexpected HTTP status, with the upstream's message.
    #[error("upstream answered HTTP {status}: {message}")]
    Status {
        /// The HTTP status code.
        status: u16,
        /// The registry's error codes and messages, or a bounded excerpt of its body.
        message: String,
    },
    /// Content did not hash to the digest it was requested by or announced with.
    #[error("digest mismatch: expected {expected}, upstream sent {actual}")]
    DigestMismatch {
        /// The digest asked for (or announced in `Docker-Content-Digest`).
        expected: Digest,
        /// The sha256 of what actually arrived.
        actual: Digest,
    },
    /// A response body is larger than allowed; holds the size announced or seen so far.
    #[error("upstream response of {0} bytes exceeds the size limit")]
    TooLarge(u64),
    /// The upstream broke the protocol: missing or bad headers, bad token, unsafe redirect.
    #[error("upstream protocol error: {0}")]
    Protocol(String),
    /// The configuration cannot work: bad URL, unreadable CA file, half-given credentials.
    #[error("invalid upstream configuration: {0}")]
    Config(String),
}

impl UpstreamError {
    /// Whether trying again later may succeed: connection trouble, timeouts,
    /// 5xx and rate limiting. Certificate, auth, 4xx and integrity failures
    /// are not retryable.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Connect(_) | Self::Transport(_) | Self::Timeout(_) => true,
            Self::TooManyRequests { .. } => true,
            Self::Status { status, .. } => *status >= 500,
            _ => false,
        }
    }

    /// The error for a non-success status. `message` is the upstream's own
    /// explanation (see [`describe_error_body`]).
    pub(super) fn from_status(status: u16, retry_after: Option<Duration>, message: String) -> Self {
        match status {
            401 => Self::Unauthorized(message),
            403 => Self::Denied(message),
            404 => Self::NotFound,
            429 => Self::TooManyRequests { retry_after },
            _ => Self::Status { status, message },
        }
    }

    /// Classifies a reqwest failure of the request phase or of a body read.
    pub(super) fn from_reqwest(err: &reqwest::Error, upstream: &str) -> Self {
        let chain = chain(err);
        let origin = err
            .url()
            .map(|u| u.origin().ascii_serialization())
            .unwrap_or_default();
        if let Some(tls) = tls_failure(&chain, upstream, &origin) {
            return Self::Tls(tls);
        }
        let text = chain_text(&chain);
        if err.is_timeout() {
            Self::Timeout(text)
        } else if err.is_redirect() {
            Self::Protocol(text)
        } else if err.is_builder() {
            Self::Config(text)
        } else if err.is_connect() {
            Self::Connect(text)
        } else {
            Self::Transport(text)
        }
    }
}

fn retry_after_text(d: &Option<Duration>) -> String {
    match d {
        Some(d) => format!(" (retry after {}s)", d.as_secs()),
        None => String::new(),
    }
}

/// The error and its causes, looking inside `io::Error`s too: their
/// `source()` skips the wrapped error, which is where rustls puts its own.
fn chain<'a>(err: &'a (dyn StdError + 'static)) -> Vec<&'a (dyn StdError + 'static)> {
    let mut out = Vec::new();
    let mut cur = Some(err);
    while let Some(e) = cur {
        if out.len() >= 16 {
            break;
        }
        out.push(e);
        cur = match e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn StdError + 'static)),
            None => e.source(),
        };
    }
    out
}

/// `a: b: c`, skipping causes whose text the previous ones already contain.
fn chain_text(chain: &[&(dyn StdError + 'static)]) -> String {
    let mut text = String::new();
    for e in chain {
        let s = e.to_string();
        if s.is_empty() || text.contains(&s) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&s);
    }
    truncate(&text, MAX_MESSAGE)
}

/// A clear message when the chain holds a TLS failure, else `None`.
/// `origin` is the server spoken to (`https://host:port`), when known.
fn tls_failure(
    chain: &[&(dyn StdError + 'static)],
    upstream: &str,
    origin: &str,
) -> Option<String> {
    let at = if origin.is_empty() {
        String::new()
    } else {
        format!(" ({origin})")
    };
    let certificate = |detail: &str| {
        format!(
            "TLS certificate verification failed for upstream {upstream:?}{at}: {detail}. The server's \
             certificate is not trusted by the system store or the configured ca_file; if the \
             registry uses a private CA, set ca_file to that CA's PEM file"
        )
    };
    for e in chain {
        if let Some(r) = e.downcast_ref::<rustls::Error>() {
            return Some(match r {
                rustls::Error::InvalidCertificate(_) => certificate(&r.to_string()),
                other => format!("TLS handshake with upstream {upstream:?}{at} failed: {other}"),
            });
        }
    }
    let detail = chain_text(chain);
    let lower = detail.to_ascii_lowercase();
    (lower.contains("certificate") || lower.contains("unknownissuer")).then(|| certificate(&detail))
}

/// Bound on messages carried in errors.
const MAX_MESSAGE: usize = 512;

/// Bytes of an error body read to explain it.
pub(super) const ERROR_BODY_LIMIT: usize = 16 * 1024;

#[derive(Deserialize)]
struct OciErrors {
    errors: Vec<OciError>,
}

#[derive(Deserialize)]
struct OciError {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

/// The upstream's explanation of an error response: `CODE: message` per
/// OCI error, or a sanitised excerpt of a non-JSON body; bounded.
pub(super) fn describe_error_body(body: &[u8]) -> Option<String> {
    if let Ok(oci) = serde_json::from_slice::<OciErrors>(body) {
        let mut out = String::new();
        for e in oci.errors.iter().take(8) {
            if !out.is_empty() {
                out.push_str("; ");
            }
            match (e.code.is_empty(), e.message.is_empty()) {
                (false, false) => write!(out, "{}: {}", e.code, e.message),
                (false, true) => write!(out, "{}", e.code),
                (true, _) => write!(out, "{}", e.message),
            }
            .expect("writing to a String");
        }
        let out = sanitize(&out);
        if !out.is_empty() {
            return Some(truncate(&out, MAX_MESSAGE));
        }
    }
    let text = sanitize(&String::from_utf8_lossy(&body[..body.len().min(1024)]));
    (!text.is_empty()).then(|| truncate(&text, 200))
}

/// Control characters become spaces, runs of whitespace one space.
fn sanitize(s: &str) -> String {
    s.split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// At most `max` bytes, cut at a character boundary, marked with `…`.
pub(super) fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oci_error_bodies_are_summarised() {
        let body = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"x"}},{"code":"DENIED","message":""}]}"#;
        assert_eq!(
            describe_error_body(body).unwrap(),
            "MANIFEST_UNKNOWN: manifest unknown; DENIED"
        );
        assert_eq!(
            describe_error_body(b"<html>\n  Bad\tGateway\n</html>").unwrap(),
            "<html> Bad Gateway </html>"
        );
        assert_eq!(describe_error_body(b""), None);
        let huge = format!(
            r#"{{"errors":[{{"code":"X","message":"{}"}}]}}"#,
            "m".repeat(100_000)
        );
        assert!(describe_error_body(huge.as_bytes()).unwrap().len() <= MAX_MESSAGE + 4);
        assert!(describe_error_body(&[b'z'; 100_000]).unwrap().len() <= 204);
    }

    #[test]
    fn statuses_map_to_variants() {
        assert!(matches!(
            UpstreamError::from_status(404, None, String::new()),
            UpstreamError::NotFound
        ));
        assert!(
            matches!(UpstreamError::from_status(401, None, "m".into()), UpstreamError::Unauthorized(m) if m == "m")
        );
        assert!(matches!(
            UpstreamError::from_status(403, None, "m".into()),
            UpstreamError::Denied(_)
        ));
        let e = UpstreamError::from_status(503, None, "busy".into());
        assert!(e.is_retryable());
        assert_eq!(e.to_string(), "upstream answered HTTP 503: busy");
        assert!(!UpstreamError::from_status(400, None, String::new()).is_retryable());
        let e = UpstreamError::from_status(429, Some(Duration::from_secs(7)), String::new());
        assert_eq!(e.to_string(), "rate limited by upstream (retry after 7s)");
    }

    #[test]
    fn io_wrapped_rustls_errors_are_found() {
        let rustls_err = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, rustls_err);
        let c = chain(&io);
        let msg = tls_failure(&c, "corp", "https://r.corp:443").unwrap();
        assert!(msg.contains("certificate verification failed"), "{msg}");
        assert!(msg.contains("\"corp\" (https://r.corp:443)"), "{msg}");
        assert!(msg.contains("UnknownIssuer"), "{msg}");
        let plain = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
        assert_eq!(tls_failure(&chain(&plain), "corp", ""), None);
    }
}
