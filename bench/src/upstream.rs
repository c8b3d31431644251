//! An embedded, read-only OCI registry: the benchmark's upstream.
//!
//! It serves one [`PlatformImage`] from memory as `repo:tag` (manifest by
//! tag and by digest, config and layers with `Range` support, GET and HEAD),
//! counts every body byte it sends and the requests per digest, and can cap
//! its *total* upload rate with one [`Throttle`] shared by all connections:
//! the `direct` baseline's capped registry, which serves waiting clients in
//! turn. The routes are in [`routes`]; [`app`] builds the router without a
//! socket, [`Upstream::start`] serves it on `127.0.0.1:0`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;

use crate::http::Server;
use crate::image::{Blob, PlatformImage};
use crate::throttle::Throttle;

mod routes;

/// What the upstream serves and how fast.
#[derive(Clone, Debug)]
pub struct UpstreamConfig {
    /// The image, shared with whoever generated it.
    pub image: Arc<PlatformImage>,
    /// Repository name, e.g. `library/shoal-bench`.
    pub repo: String,
    /// The tag that resolves to the image's manifest.
    pub tag: String,
    /// Cap on the total rate of all responses.
    pub throttle: Throttle,
}

/// Requests for one digest.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Requests {
    /// GETs (including ranged ones).
    pub gets: u64,
    /// HEADs.
    pub heads: u64,
}

/// What the upstream has sent so far.
#[derive(Debug, Default)]
pub struct Counters {
    bytes_sent: AtomicU64,
    requests: Mutex<HashMap<String, Requests>>,
}

impl Counters {
    /// Body bytes handed to the network, manifests and blobs.
    pub fn bytes_sent(&self) -> u64 {
        self.bytes_sent.load(Ordering::Relaxed)
    }

    /// Requests for `digest` (a manifest fetched by tag counts under its
    /// digest).
    pub fn requests(&self, digest: &str) -> Requests {
        self.lock().get(digest).copied().unwrap_or_default()
    }

    fn add_bytes(&self, n: u64) {
        self.bytes_sent.fetch_add(n, Ordering::Relaxed);
    }

    fn count(&self, digest: &str, head: bool) {
        let mut map = self.lock();
        let entry = map.entry(digest.to_string()).or_default();
        if head {
            entry.heads += 1;
        } else {
            entry.gets += 1;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Requests>> {
        self.requests.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Shared by every request.
#[derive(Clone, Debug)]
pub struct AppState {
    config: UpstreamConfig,
    counters: Arc<Counters>,
}

impl AppState {
    /// State serving `config`, counting into `counters`.
    pub fn new(config: UpstreamConfig, counters: Arc<Counters>) -> AppState {
        AppState { config, counters }
    }

    fn blob(&self, digest: &str) -> Option<&Blob> {
        self.config.image.blobs().find(|b| b.digest == digest)
    }
}

/// The registry's routes, for serving or for calling without a socket.
pub fn app(state: AppState) -> Router {
    routes::router(state)
}

/// A running embedded registry; stops when dropped.
#[derive(Debug)]
pub struct Upstream {
    server: Server,
    counters: Arc<Counters>,
}

impl Upstream {
    /// Serves `config` on `127.0.0.1:0`.
    pub async fn start(config: UpstreamConfig) -> std::io::Result<Upstream> {
        let counters = Arc::new(Counters::default());
        let router = app(AppState::new(config, counters.clone()));
        let server = Server::start(router, "embedded upstream").await?;
        Ok(Upstream { server, counters })
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// What it has sent so far.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }
}
