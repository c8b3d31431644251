//! The upstream: Debian's `docker-registry` (CNCF distribution 2.8) on
//! loopback, with filesystem storage in a temporary directory.
//!
//! The registry writes its access log in Apache combined format to stdout,
//! one line per completed request:
//!
//! ```text
//! 127.0.0.1 - - [27/Nov/2026:18:48:22 +0000] "GET /v2/foo/blobs/sha256:… HTTP/1.1" 200 2097152 "" "ua"
//! ```
//!
//! and its own logs (logrus text) to stderr, among them
//! `msg="listening on 127.0.0.1:43687"` once it has bound port 0. The access
//! log is kept apart so that [`Registry::count_requests`] counts requests, not
//! log messages. A line is written when the response is complete.
//!
//! [`Registry::start_with_auth`] puts the registry behind authentication:
//! Basic against an htpasswd file (bcrypt hashes made here), or Bearer
//! tokens from a [`TokenServer`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use shoal_bench::docker_registry;
use tempfile::TempDir;

use crate::child::ChildGuard;
use crate::tls::TestPki;
use crate::token_server::{ISSUER, SERVICE, TokenServer};
use crate::wait::poll;

pub use shoal_bench::docker_registry::REGISTRY_BIN;

/// One line of the access log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLogEntry {
    /// HTTP method, e.g. `GET`.
    pub method: String,
    /// Request target: path and query.
    pub target: String,
    /// Response status.
    pub status: u16,
}

/// How the registry authenticates its clients.
#[derive(Clone, Copy)]
pub enum RegistryAuth<'a> {
    /// Not at all: anyone may pull and push.
    None,
    /// Basic credentials checked against an htpasswd file with these
    /// (user, password) pairs.
    Htpasswd(&'a [(&'a str, &'a str)]),
    /// Bearer tokens issued by this token server (the Docker token flow).
    Token(&'a TokenServer),
}

/// `Basic <base64(user:password)>`.
pub fn basic_authorization(user: &str, password: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {encoded}")
}

/// A plain-HTTP client sending `authorization` with every request: to push
/// to a registry behind authentication, or to pull as a client with
/// credentials.
pub fn authorized_client(authorization: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    let mut value = reqwest::header::HeaderValue::from_str(authorization).expect("header value");
    value.set_sensitive(true);
    headers.insert(reqwest::header::AUTHORIZATION, value);
    reqwest::Client::builder()
        .no_proxy()
        .timeout(std::time::Duration::from_secs(120))
        .default_headers(headers)
        .build()
        .expect("build HTTP client")
}

/// A running `docker-registry`, killed on drop.
pub struct Registry {
    child: ChildGuard,
    addr: SocketAddr,
    tls: Option<rustls::pki_types::CertificateDer<'static>>,
    access_log: PathBuf,
    _dir: TempDir,
}

impl Registry {
    /// Starts a plain-HTTP registry.
    pub async fn start() -> Registry {
        Self::start_with(None, RegistryAuth::None).await
    }

    /// Starts a registry serving HTTPS with `pki`'s server certificate.
    pub async fn start_tls(pki: &TestPki) -> Registry {
        Self::start_with(Some(pki), RegistryAuth::None).await
    }

    /// Starts a plain-HTTP registry that authenticates every request.
    pub async fn start_with_auth(auth: RegistryAuth<'_>) -> Registry {
        Self::start_with(None, auth).await
    }

    async fn start_with(pki: Option<&TestPki>, auth: RegistryAuth<'_>) -> Registry {
        let dir = crate::tmp::dir("shoal-registry-");
        let storage = dir.path().join("storage");
        std::fs::create_dir(&storage).expect("create storage dir");
        let auth = auth_config(dir.path(), auth);
        let tls = match pki {
            Some(pki) => format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                pki.cert_pem.display(),
                pki.key_pem.display()
            ),
            None => String::new(),
        };
        let config_path = dir.path().join("config.yml");
        let config = docker_registry::config(&storage, true, &format!("{tls}{auth}"));
        std::fs::write(&config_path, config).expect("write registry config");

        if !docker_registry::installed() {
            panic!("{REGISTRY_BIN} not found: install Debian's docker-registry package");
        }
        let cmd = docker_registry::command(&config_path);
        let access_log = dir.path().join("access.log");
        let stderr_log = dir.path().join("registry.log");
        let mut child = ChildGuard::spawn_split("docker-registry", cmd, &access_log, &stderr_log);
        // Every request is also logged on stderr; the access log has them.
        child.hide_in_tail(|line| line.contains("msg=\"response completed\""));
        let addr = docker_registry::wait_listening(&mut child)
            .await
            .unwrap_or_else(|e| panic!("{e}"));

        let registry = Registry {
            child,
            addr,
            tls: pki.map(|p| p.ca_der.clone()),
            access_log,
            _dir: dir,
        };
        docker_registry::wait_answering(&registry.client(), &registry.url())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        registry
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` or `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// An HTTP client that can talk to this registry (trusting the test CA
    /// when the registry serves TLS).
    pub fn client(&self) -> reqwest::Client {
        match &self.tls {
            Some(ca) => crate::http::client_trusting(ca),
            None => crate::http::client(),
        }
    }

    /// The registry's own log (stderr) and access log tails.
    pub fn log_tail(&self) -> String {
        self.child.log_tail()
    }

    /// Every request in the access log so far.
    pub fn requests(&self) -> Vec<AccessLogEntry> {
        let text = std::fs::read(&self.access_log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        text.lines().filter_map(parse_access_line).collect()
    }

    /// How many requests with exactly this method (`GET` does not count
    /// `HEAD`) had a target containing `path_substring`.
    pub fn count_requests(&self, method: &str, path_substring: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.method == method && r.target.contains(path_substring))
            .count()
    }

    /// How many times the blob `digest` of `repo` was downloaded (GET, any status).
    pub fn blob_gets(&self, repo: &str, digest: &str) -> usize {
        self.count_requests("GET", &format!("/v2/{repo}/blobs/{digest}"))
    }

    /// Waits until the access log has stopped growing for a while, so that
    /// counts taken afterwards include every request already answered.
    pub async fn settle(&self) {
        let quiet = Duration::from_millis(750);
        let mut last = (self.requests().len(), std::time::Instant::now());
        let _ = poll(
            "registry access log to settle",
            Duration::from_secs(15),
            || {
                let n = self.requests().len();
                if n != last.0 {
                    last = (n, std::time::Instant::now());
                }
                let done = last.1.elapsed() >= quiet;
                async move { Ok(done.then_some(())) }
            },
        )
        .await;
    }
}

/// The `auth:` section of the registry's config for `auth`, writing the
/// htpasswd file into `dir` when needed.
fn auth_config(dir: &Path, auth: RegistryAuth<'_>) -> String {
    match auth {
        RegistryAuth::None => String::new(),
        RegistryAuth::Htpasswd(users) => {
            let path = dir.join("htpasswd");
            let lines: String = users
                .iter()
                .map(|(user, password)| {
                    // The lowest cost bcrypt allows: these are test passwords.
                    let hash = bcrypt::hash(password, 4).expect("bcrypt");
                    format!("{user}:{hash}\n")
                })
                .collect();
            std::fs::write(&path, lines).expect("write htpasswd");
            format!(
                "auth:\n  htpasswd:\n    realm: shoal-test\n    path: {}\n",
                path.display()
            )
        }
        RegistryAuth::Token(server) => format!(
            "auth:\n  token:\n    realm: {}\n    service: {SERVICE}\n    issuer: {ISSUER}\n    \
             rootcertbundle: {}\n",
            server.realm(),
            server.cert_pem().display()
        ),
    }
}

/// Parses one Apache combined log line; `None` for anything else.
pub fn parse_access_line(line: &str) -> Option<AccessLogEntry> {
    let start = line.find("] \"")? + 3;
    let rest = &line[start..];
    let end = rest.find('"')?;
    let mut request = rest[..end].split(' ');
    let method = request.next()?.to_string();
    let target = request.next()?.to_string();
    let status = rest[end + 1..].split_whitespace().next()?.parse().ok()?;
    Some(AccessLogEntry {
        method,
        target,
        status,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_access_lines() {
        let line = r#"127.0.0.1 - - [27/Nov/2026:18:48:22 +0000] "HEAD /v2/foo/blobs/sha256:aa HTTP/1.1" 400 110 "" "curl/7.88.1""#;
        assert_eq!(
            parse_access_line(line),
            Some(AccessLogEntry {
                method: "HEAD".into(),
                target: "/v2/foo/blobs/sha256:aa".into(),
                status: 400
            })
        );
        assert_eq!(parse_access_line("time=\"x\" level=info msg=\"hi\""), None);
    }
}
