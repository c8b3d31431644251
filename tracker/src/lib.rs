//! The tracker: tells agents which peers hold which pieces of a blob.
//!
//! Its state is soft (rebuilt from announces), so a restart loses nothing
//! that matters. The swarm logic itself lives in `shoal-proto`; this crate
//! is the HTTP front and the daemon around it. So far it starts, answers
//! `/healthz` and serves `/metrics`; announces arrive with piece swarming.
#![warn(missing_docs)]

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use serde::Deserialize;
use shoal_agent::config::load_file;
use shoal_agent::daemon::{self, LogFormat, ReadyInfo};
use tokio_util::sync::CancellationToken;

/// Default listen address.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:65010";

/// shoal-tracker: coordinates the swarm. Keeps, per blob, which peers hold
/// which pieces, and hands blobs nobody has to a supernode.
///
/// Every flag can also be set in the TOML file given with `--config`, or
/// with the environment variable shown; flags win.
#[derive(Parser, Debug, Default)]
#[command(name = "shoal-tracker", version, about, long_about)]
pub struct TrackerArgs {
    /// TOML config file.
    #[arg(long, env = "SHOAL_TRACKER_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// HTTP address for agents' announces, /healthz and /metrics
    /// [default: 0.0.0.0:65010].
    #[arg(long, env = "SHOAL_TRACKER_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Base URL of a supernode that seeds blobs nobody has. Repeatable; each
    /// blob goes to one of them by rendezvous hashing.
    #[arg(long = "supernode", value_name = "URL")]
    pub supernodes: Vec<String>,
    /// Log format: text or json [default: text]. RUST_LOG sets the filter.
    #[arg(long, env = "SHOAL_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Write {"http": ADDR} to this file once listening.
    #[arg(long, value_name = "FILE")]
    pub ready_file: Option<PathBuf>,
}

/// The tracker's config file.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrackerFile {
    /// See `--listen`.
    pub listen: Option<SocketAddr>,
    /// See `--supernode`.
    pub supernodes: Vec<String>,
    /// See `--log-format`.
    pub log_format: Option<LogFormat>,
}

/// Validated tracker configuration.
#[derive(Debug)]
pub struct TrackerConfig {
    /// Listen address.
    pub listen: SocketAddr,
    /// Supernode base URLs.
    pub supernodes: Vec<String>,
    /// Log format.
    pub log_format: LogFormat,
    /// Ready file.
    pub ready_file: Option<PathBuf>,
}

impl TrackerArgs {
    /// Merges flags over the config file.
    pub fn into_config(self) -> anyhow::Result<TrackerConfig> {
        let file: TrackerFile = load_file(self.config.as_deref())?;
        Ok(TrackerConfig {
            listen: self
                .listen
                .or(file.listen)
                .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("valid default")),
            supernodes: if self.supernodes.is_empty() {
                file.supernodes
            } else {
                self.supernodes
            },
            log_format: self.log_format.or(file.log_format).unwrap_or_default(),
            ready_file: self.ready_file,
        })
    }
}

/// Runs the tracker until `shutdown` is cancelled.
pub async fn run(cfg: TrackerConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let metrics = daemon::install_metrics();
    let listener = daemon::bind(cfg.listen).await?;
    let http = listener.local_addr()?;
    tracing::info!(listen = %http, supernodes = ?cfg.supernodes, "shoal-tracker listening");
    if let Some(path) = &cfg.ready_file {
        daemon::write_ready_file(path, &ReadyInfo { http, p2p: None })?;
    }
    daemon::serve(
        listener,
        daemon::ops_router(metrics),
        shutdown.cancelled_owned(),
    )
    .await?;
    Ok(())
}
