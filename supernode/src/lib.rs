//! The supernode: a peer with an upstream behind it.
//!
//! It is the only component that talks to upstream registries. It resolves
//! tags (at most once per TTL, with a HEAD), caches manifests by digest
//! forever, and fetches each blob from upstream exactly once however many
//! agents ask (single flight), streaming it to all of them while it arrives
//! and verifying it before it enters the content store.
//!
//! - [`config`]: command line and config file;
//! - [`manifests`]: tag resolution and the manifest cache;
//! - [`source`]: the upstream as a blob source for the shared fetcher;
//! - [`seeding`]: piece maps for agents and seeding on the tracker's request;
//! - [`access`]: whether a client may read a repository, asked upstream
//!   with the client's own credentials;
//! - [`api`]: the HTTP API for agents (`docs/API.md`), served over mutual
//!   TLS with the cluster CA when the cluster secret is configured.
#![warn(missing_docs)]

pub mod access;
pub mod api;
pub mod config;
pub mod manifests;
pub mod seed_gate;
pub mod seeding;
pub mod source;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use anyhow::Context;
use shoal_agent::daemon::{self, ReadyInfo};
use shoal_agent::fetch::Fetcher;
use shoal_agent::http_auth::Auth;
use shoal_agent::p2p::ClusterTls;
use shoal_agent::pieces::{FetcherPieces, bind_p2p};
use shoal_agent::store::ContentStore;
use shoal_agent::upstream::Upstream;
use tokio_util::sync::CancellationToken;

use crate::config::SupernodeConfig;
use crate::manifests::ManifestCache;
use crate::seed_gate::SeedGate;

/// The supernode's shared state.
pub struct Supernode {
    /// Upstream clients by name.
    pub upstreams: HashMap<String, Upstream>,
    /// Tag resolution and manifests.
    pub manifests: ManifestCache,
    /// Content store and single-flight blob downloads.
    pub fetcher: Fetcher,
    /// Authentication of the cluster-internal endpoints.
    pub auth: Option<Auth>,
    /// The QUIC address pieces are served on, once bound.
    pub p2p_addr: OnceLock<SocketAddr>,
    /// Access checks for agents, with their clients' credentials.
    pub access: access::AccessChecks,
}

impl Supernode {
    /// Builds the state from a validated config.
    pub fn new(cfg: &SupernodeConfig) -> anyhow::Result<Self> {
        let store = ContentStore::open_with_quota(&cfg.data_dir, cfg.max_disk)
            .with_context(|| format!("cannot open data dir {}", cfg.data_dir.display()))?;
        let mut upstreams = HashMap::new();
        for u in &cfg.upstreams {
            let client = Upstream::new(&u.name, &u.config, &cfg.upstream_options)
                .with_context(|| format!("upstream {:?}", u.name))?;
            upstreams.insert(u.name.clone(), client);
        }
        Ok(Supernode {
            upstreams,
            manifests: ManifestCache::new(store.clone(), cfg.tag_ttl),
            // Piece maps cost a second sha256 pass; only a seed needs them.
            fetcher: if cfg.p2p.is_some() {
                Fetcher::new(store, 3).with_piece_maps()
            } else {
                Fetcher::new(store, 3)
            },
            auth: cfg.p2p.as_ref().map(|p| Auth::Signed(p.secret.http_auth())),
            p2p_addr: OnceLock::new(),
            access: access::AccessChecks::default(),
        })
    }
}

/// Runs the supernode until `shutdown` is cancelled.
pub async fn run(cfg: SupernodeConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let metrics = daemon::install_metrics();
    let state = Arc::new(Supernode::new(&cfg)?);
    shoal_agent::store::quota::spawn_enforcer(state.fetcher.store().clone(), shutdown.clone());
    let listener = daemon::bind(cfg.listen).await?;
    let http = listener.local_addr()?;
    let p2p = match &cfg.p2p {
        Some(opts) => {
            let provider = Arc::new(FetcherPieces::new(state.fetcher.clone()));
            let gate = Arc::new(SeedGate::default());
            let (events, mut rx) = tokio::sync::mpsc::channel(1024);
            let fed = gate.clone();
            tokio::spawn(async move {
                while let Some(ev) = rx.recv().await {
                    fed.event(&ev);
                }
            });
            let endpoint = bind_p2p(opts, provider, Some(events), Some(gate))?;
            let addr = endpoint.local_addr()?;
            let _ = state.p2p_addr.set(addr);
            let stop = shutdown.clone();
            tokio::spawn(async move { endpoint.run(stop.cancelled_owned()).await });
            Some(addr)
        }
        None => {
            tracing::warn!(
                "no --cluster-secret-file: not seeding pieces to peers; the API serves whole blobs over plain HTTP to anyone who reaches it (insecure)"
            );
            None
        }
    };
    let ready = ReadyInfo { http, p2p };
    tracing::info!(api = %http, p2p = ?p2p, upstreams = ?cfg.upstreams.iter().map(|u| &u.name).collect::<Vec<_>>(),
        "shoal-supernode listening");
    if let Some(path) = &cfg.ready_file {
        daemon::write_ready_file(path, &ready)?;
    }
    let tls = match &cfg.p2p {
        Some(opts) => Some(ClusterTls::new(&opts.secret)?),
        None => None,
    };
    daemon::serve_cluster_api(
        listener,
        api::app(state),
        metrics,
        tls.as_ref(),
        &cfg.http,
        shutdown.cancelled_owned(),
    )
    .await
}
