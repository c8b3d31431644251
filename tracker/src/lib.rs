//! The tracker: tells agents which peers hold which pieces of a blob.
//!
//! Its state is soft (rebuilt from announces), so a restart loses nothing
//! that matters. The swarm logic itself lives in `shoal-proto`
//! (`tracker_state`); this crate is the daemon around it:
//!
//! - [`config`]: flags and config file, validated into a [`Config`];
//! - the JSON bodies of the API live in `shoal_proto::tracker_wire`, shared with its clients;
//! - `shoal_agent::http_auth`: the signed-request check and the body size limit;
//! - [`api`]: routes and handlers ([`app`]);
//! - [`state`]: the task that owns the swarm state ([`TrackerHandle`]);
//! - [`seed`]: asking a supernode to seed a blob nobody has;
//! - [`metrics`]: metric names.
//!
//! With the cluster secret, the API is served only over mutual TLS with
//! the cluster CA (`shoal_agent::daemon::serve_cluster_api`), and seeding
//! requests go to supernodes over TLS too.
//!
//! An announce travels: HTTP → signature check → [`api`] (JSON checked, split into
//! the state's `Announce` and the blob's origin) → [`state`] (the state
//! answers, and may ask for a seed) → [`seed`] (a signed request to the
//! supernode that rendezvous hashing picked).
#![warn(missing_docs)]

pub mod api;
pub mod config;
pub mod metrics;
pub mod seed;
pub mod state;

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

use shoal_agent::daemon::{self, ReadyInfo};
use shoal_proto::tracker_state::TrackerConfig;
use tokio_util::sync::CancellationToken;

pub use api::app;
pub use config::{Config, TrackerArgs};
pub use seed::Seeder;
pub use shoal_agent::http_auth::Auth;
pub use state::TrackerHandle;

/// The swarm state's settings for `cfg`; limits keep their defaults.
pub fn state_config(cfg: &Config) -> TrackerConfig {
    TrackerConfig {
        supernodes: cfg.supernodes.clone(),
        announce_interval: cfg.announce_interval,
        ..TrackerConfig::default()
    }
}

/// A seed for the state's RNG (peer ranking and interval jitter) from the
/// OS: std's `RandomState` keys are drawn from OS randomness.
pub fn os_rng_seed() -> u64 {
    RandomState::new().hash_one(0u8)
}

/// Runs the tracker until `shutdown` is cancelled.
pub async fn run(cfg: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let prometheus = daemon::install_metrics();
    metrics::describe();
    if matches!(cfg.auth, Auth::Insecure) {
        tracing::warn!(
            "INSECURE: --insecure-no-auth is set; anyone who reaches this tracker can \
             announce and trigger seeding. For tests and development only."
        );
    }
    let seeder = Seeder::for_auth(cfg.auth.clone())?;
    let handle = TrackerHandle::spawn(state_config(&cfg), os_rng_seed(), seeder, shutdown.clone());
    let listener = daemon::bind(cfg.listen).await?;
    let http = listener.local_addr()?;
    tracing::info!(
        listen = %http,
        supernodes = ?cfg.supernodes,
        announce_interval = ?cfg.announce_interval,
        "shoal-tracker listening"
    );
    if let Some(path) = &cfg.ready_file {
        daemon::write_ready_file(path, &ReadyInfo { http, p2p: None })?;
    }
    let tls = cfg.auth.tls().cloned();
    daemon::serve_cluster_api(
        listener,
        app(handle, cfg.auth),
        prometheus,
        tls.as_deref(),
        &cfg.http,
        shutdown.cancelled_owned(),
    )
    .await
}
