//! What an operator configures per upstream registry, and the client's tunables.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// One upstream registry as written in a config file.
///
/// Only `url` is required. There is deliberately no switch to skip
/// certificate verification: a registry with a private CA is trusted by
/// pointing `ca_file` at that CA.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Base URL, e.g. `https://registry-1.docker.io` or `http://127.0.0.1:5000`.
    /// `http` is used only when written here; the client never downgrades.
    pub url: String,
    /// Extra PEM CA certificate(s) trusted in addition to the system store.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// User name for Basic auth, and for the token endpoint of a Bearer realm.
    #[serde(default)]
    pub username: Option<String>,
    /// Password or access token that goes with `username`. Never logged.
    #[serde(default)]
    pub password: Option<String>,
}

impl UpstreamConfig {
    /// An anonymous upstream at `url` trusting only the system CAs.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ca_file: None,
            username: None,
            password: None,
        }
    }
}

impl fmt::Debug for UpstreamConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamConfig")
            .field("url", &self.url)
            .field("ca_file", &self.ca_file)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Timeouts and retry policy of an [`Upstream`](super::Upstream).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamOptions {
    /// Limit for establishing a TCP (and TLS) connection.
    pub connect_timeout: Duration,
    /// Limit from sending a request until its response headers arrive,
    /// redirects included.
    pub request_timeout: Duration,
    /// Longest idle gap allowed between two chunks of a response body.
    pub read_timeout: Duration,
    /// Extra attempts after a retryable failure (connection error, timeout,
    /// 5xx, 429); `0` means a single attempt.
    pub retries: u32,
    /// Backoff before the first retry; doubles with each further retry.
    pub backoff_base: Duration,
    /// Upper bound of one backoff. A `Retry-After` longer than this is not
    /// waited for: the request fails with `TooManyRequests` at once.
    pub backoff_max: Duration,
}

impl Default for UpstreamOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(30),
            retries: 4,
            backoff_base: Duration::from_millis(200),
            backoff_max: Duration::from_secs(5),
        }
    }
}

/// Credentials checked to be complete; `Debug` hides the password.
#[derive(Clone)]
pub(super) struct Credentials {
    pub(super) username: String,
    pub(super) password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn option_defaults() {
        let o = UpstreamOptions::default();
        assert_eq!(o.connect_timeout, Duration::from_secs(10));
        assert_eq!(o.request_timeout, Duration::from_secs(30));
        assert_eq!(o.read_timeout, Duration::from_secs(30));
        assert_eq!(o.retries, 4);
        assert_eq!(o.backoff_base, Duration::from_millis(200));
        assert_eq!(o.backoff_max, Duration::from_secs(5));
    }

    #[test]
    fn config_needs_only_url() {
        let c: UpstreamConfig = serde_json::from_str(r#"{"url":"https://ghcr.io"}"#).unwrap();
        assert_eq!(c.url, "https://ghcr.io");
        assert!(c.ca_file.is_none() && c.username.is_none() && c.password.is_none());
        assert!(serde_json::from_str::<UpstreamConfig>(r#"{"ca_file":"/x"}"#).is_err());
        let typo = r#"{"url":"https://ghcr.io","insecure_skip_verify":true}"#;
        assert!(serde_json::from_str::<UpstreamConfig>(typo).is_err());
    }

    #[test]
    fn debug_hides_password() {
        let mut c = UpstreamConfig::new("https://r.example");
        c.username = Some("bob".into());
        c.password = Some("hunter2".into());
        let shown = format!("{c:?}");
        assert!(
            shown.contains("bob") && !shown.contains("hunter2"),
            "{shown}"
        );
        let creds = Credentials {
            username: "bob".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{creds:?}").contains("hunter2"));
    }
}
