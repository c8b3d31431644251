//! Client for upstream OCI registries (docker.io, ghcr.io, quay.io, private
//! ones), pull side only.
//!
//! The supernode fetches each blob from upstream once through this client;
//! agents use it as the last resort when neither peers nor the supernode
//! can serve. Every call is bounded: a connect timeout, a timeout until the
//! response headers, and an idle timeout on every body read.
//!
//! - [`config`] holds what the operator writes ([`UpstreamConfig`]) and the
//!   tunables ([`UpstreamOptions`]).
//! - `auth` and `challenge`: `WWW-Authenticate` parsing, Bearer tokens
//!   cached per scope, Basic credentials.
//! - `retry` (policy) and `request` (I/O): backoff with jitter for
//!   connection errors, timeouts, 5xx and 429; only the request phase is
//!   retried. A failure inside a blob body goes to the caller, who resumes
//!   with an offset.
//! - `manifest` and `blob`: the three registry calls.
//! - `access`: whether a client, with its own credentials, may read a
//!   repository (never with the configured credentials).
//! - `tls`: rustls with ring, system store plus an optional CA file; never
//!   an unverified connection, never a fallback to plain HTTP.
//! - [`error`] holds [`UpstreamError`] and its classification.
//!
//! Credentials and tokens never appear in logs or errors: header values are
//! marked sensitive, and `Debug` of the config hides the password.

mod access;
mod auth;
mod blob;
mod challenge;
pub mod config;
pub mod error;
mod manifest;
mod redirect;
mod request;
mod retry;
mod tls;

#[cfg(test)]
mod tests;

use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::stream::BoxStream;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use reqwest::Url;
use shoal_proto::{Digest, Reference, RepoName};

pub use access::AccessTarget;
pub use config::{UpstreamConfig, UpstreamOptions};
pub use error::UpstreamError;
pub use manifest::{DEFAULT_MANIFEST_MEDIA_TYPES, MAX_MANIFEST_SIZE};

use config::Credentials;

/// What a manifest `HEAD` tells: enough to resolve a tag without a pull.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestHead {
    /// From `Docker-Content-Digest` (or the reference, when it is a digest).
    pub digest: Digest,
    /// From `Content-Type`.
    pub media_type: String,
    /// From `Content-Length`.
    pub size: u64,
}

/// A fetched manifest whose bytes hash to `digest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The sha256 of `bytes`.
    pub digest: Digest,
    /// From `Content-Type`, else the manifest's own `mediaType`.
    pub media_type: String,
    /// The manifest exactly as served.
    pub bytes: Bytes,
}

/// A blob body from `offset` to the end.
///
/// The stream yields the bytes from `offset` on, in order, each read
/// bounded by `read_timeout`; it ends with an error if the body breaks off,
/// stalls, or is longer or shorter than announced. It does not check the
/// digest: the caller hashes what it stores.
pub struct BlobBody {
    /// Size of the whole blob, not of the part streamed.
    pub total_size: u64,
    /// Where the stream starts within the blob.
    pub offset: u64,
    /// The bytes from `offset` to `total_size`.
    pub stream: BoxStream<'static, Result<Bytes, UpstreamError>>,
}

impl std::fmt::Debug for BlobBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobBody")
            .field("total_size", &self.total_size)
            .field("offset", &self.offset)
            .finish_non_exhaustive()
    }
}

/// A client for one upstream registry. Cloning is cheap and clones share
/// connections and cached tokens.
#[derive(Clone)]
pub struct Upstream {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    base: Url,
    client: reqwest::Client,
    opts: UpstreamOptions,
    credentials: Option<Credentials>,
    auth: auth::AuthCache,
    /// Jitter for backoff only; nothing depends on its sequence.
    rng: Mutex<SmallRng>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("name", &self.inner.name)
            .field("url", &self.inner.base.as_str())
            .finish_non_exhaustive()
    }
}

impl Upstream {
    /// Validates `cfg` and builds the client. `name` identifies the upstream
    /// in logs and errors. Does no network I/O.
    pub fn new(
        name: &str,
        cfg: &UpstreamConfig,
        opts: &UpstreamOptions,
    ) -> Result<Self, UpstreamError> {
        let base = parse_base_url(&cfg.url)?;
        let credentials = match (&cfg.username, &cfg.password) {
            (Some(username), Some(password)) => Some(Credentials {
                username: username.clone(),
                password: password.clone(),
            }),
            (None, None) => None,
            _ => {
                return Err(UpstreamError::Config(format!(
                    "upstream {name:?}: username and password must be given together"
                )));
            }
        };
        let https = base.scheme() == "https";
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls::client_config(cfg.ca_file.as_deref())?)
            .https_only(https)
            .redirect(redirect_policy())
            .connect_timeout(opts.connect_timeout)
            .user_agent(concat!("shoal/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| UpstreamError::Config(format!("upstream {name:?}: HTTP client: {e}")))?;
        let seed = RandomState::new().hash_one(name);
        Ok(Self {
            inner: Arc::new(Inner {
                name: name.to_owned(),
                base,
                client,
                opts: opts.clone(),
                credentials,
                auth: auth::AuthCache::default(),
                rng: Mutex::new(SmallRng::seed_from_u64(seed)),
            }),
        })
    }

    /// The name given to [`Upstream::new`].
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Whether credentials are configured for this upstream (then what the
    /// client fetches says nothing about what an anonymous client may read).
    pub fn has_credentials(&self) -> bool {
        self.inner.credentials.is_some()
    }

    /// Whether a client with `Authorization` value `client` (`None`:
    /// anonymous) may read `target` in `repo`: a `HEAD` of it with the
    /// client's credentials only, answering a Bearer challenge with a token
    /// the realm issues for them. `Ok` on a success;
    /// [`UpstreamError::Unauthorized`] or [`UpstreamError::Denied`] when
    /// the upstream refuses, [`UpstreamError::NotFound`] when `target` is
    /// not in `repo`; other errors when it cannot tell.
    #[tracing::instrument(level = "debug", skip_all, fields(upstream = %self.inner.name, %repo))]
    pub async fn check_access(
        &self,
        repo: &RepoName,
        target: &AccessTarget,
        client: Option<&http::HeaderValue>,
    ) -> Result<(), UpstreamError> {
        self.inner.check_access(repo, target, client).await
    }

    /// `HEAD /v2/<repo>/manifests/<reference>`: digest, media type and size
    /// without a `GET` (registries count GETs as pulls). `accept` lists the
    /// manifest media types wanted; empty means
    /// [`DEFAULT_MANIFEST_MEDIA_TYPES`].
    #[tracing::instrument(level = "debug", skip_all, fields(upstream = %self.inner.name, %repo, %reference))]
    pub async fn head_manifest(
        &self,
        repo: &RepoName,
        reference: &Reference,
        accept: &[&str],
    ) -> Result<ManifestHead, UpstreamError> {
        self.inner.head_manifest(repo, reference, accept).await
    }

    /// `GET` a manifest of at most [`MAX_MANIFEST_SIZE`] bytes. When
    /// `reference` is a digest the bytes must hash to it; for a tag they
    /// must match `Docker-Content-Digest` when the upstream sends one.
    /// Otherwise [`UpstreamError::DigestMismatch`].
    #[tracing::instrument(level = "debug", skip_all, fields(upstream = %self.inner.name, %repo, %reference))]
    pub async fn get_manifest(
        &self,
        repo: &RepoName,
        reference: &Reference,
        accept: &[&str],
    ) -> Result<Manifest, UpstreamError> {
        self.inner.get_manifest(repo, reference, accept).await
    }

    /// `GET /v2/<repo>/blobs/<digest>` from `offset` on (with `Range` when
    /// `offset > 0`; if the upstream ignores it, the first `offset` bytes
    /// are dropped here). Follows redirects to blob storage without
    /// carrying `Authorization` to another host. Retries cover only the
    /// request; if the body fails, call again with the offset reached.
    #[tracing::instrument(level = "debug", skip_all, fields(upstream = %self.inner.name, %repo, %digest, offset = offset))]
    pub async fn get_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
        offset: u64,
    ) -> Result<BlobBody, UpstreamError> {
        self.inner.get_blob(repo, digest, offset).await
    }
}

impl Inner {
    /// `path` (starting with `/v2/`) under the base URL, keeping any path
    /// prefix the base has.
    fn url(&self, path: &str) -> Url {
        let mut url = self.base.clone();
        url.set_path(&format!("{}{path}", self.base.path().trim_end_matches('/')));
        url
    }
}

fn parse_base_url(text: &str) -> Result<Url, UpstreamError> {
    let bad = |why: &str| UpstreamError::Config(format!("upstream URL {text:?}: {why}"));
    let url = Url::parse(text).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(bad("scheme must be https or http"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            "put credentials in username and password, not in the URL",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("no query or fragment allowed"));
    }
    Ok(url)
}

/// Follows up to 10 redirects (registries send blobs to S3 or a CDN) but
/// never from https to plain http. reqwest itself drops `Authorization`
/// when a redirect leaves the host, port or scheme. A public upstream
/// cannot redirect to an internal address ([`redirect`]).
fn redirect_policy() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let from_https = attempt.previous().iter().any(|u| u.scheme() == "https");
        if attempt.previous().len() > 10 {
            attempt.error("too many redirects")
        } else if from_https && attempt.url().scheme() != "https" {
            attempt.error("refusing a redirect from https to plain http")
        } else if let Err(why) = redirect::check(attempt.previous(), attempt.url()) {
            attempt.error(why)
        } else {
            attempt.follow()
        }
    })
}

#[cfg(test)]
mod unit_tests {
    use super::*;

    #[test]
    fn base_urls() {
        for ok in [
            "https://registry-1.docker.io",
            "http://127.0.0.1:5000",
            "https://h/prefix/",
        ] {
            parse_base_url(ok).unwrap();
        }
        for bad in [
            "registry-1.docker.io",
            "ftp://h",
            "https://u:p@h",
            "https://h/?q=1",
            "file:///etc/passwd",
            "",
        ] {
            assert!(
                matches!(parse_base_url(bad), Err(UpstreamError::Config(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn urls_keep_a_path_prefix() {
        let mut cfg = UpstreamConfig::new("https://h.example/prefix/");
        let up = Upstream::new("p", &cfg, &UpstreamOptions::default()).unwrap();
        assert_eq!(
            up.inner.url("/v2/a/blobs/x").as_str(),
            "https://h.example/prefix/v2/a/blobs/x"
        );
        cfg.url = "https://h.example".into();
        let up = Upstream::new("p", &cfg, &UpstreamOptions::default()).unwrap();
        assert_eq!(
            up.inner.url("/v2/a/blobs/x").as_str(),
            "https://h.example/v2/a/blobs/x"
        );
    }

    #[test]
    fn half_credentials_are_refused() {
        let mut cfg = UpstreamConfig::new("https://h.example");
        cfg.username = Some("u".into());
        let err = Upstream::new("x", &cfg, &UpstreamOptions::default()).unwrap_err();
        assert!(matches!(err, UpstreamError::Config(_)), "{err}");
    }

    #[test]
    fn unreadable_ca_file_is_a_config_error() {
        let mut cfg = UpstreamConfig::new("https://h.example");
        cfg.ca_file = Some("/nonexistent/ca.pem".into());
        let err = Upstream::new("x", &cfg, &UpstreamOptions::default()).unwrap_err();
        assert!(
            matches!(&err, UpstreamError::Config(m) if m.contains("/nonexistent/ca.pem")),
            "{err}"
        );
    }
}
