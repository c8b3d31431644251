//! The agent daemon: command line, config file, and `run`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::config::{NamedUpstream, UpstreamEntry, load_file, merge_upstreams, parse_name_value};
use crate::daemon::{self, LogFormat, ReadyInfo};
use crate::fetch::Fetcher;
use crate::mirror::{self, Mirror};
use crate::store::ContentStore;
use crate::supernode_client::SupernodeClient;

/// Default address of the registry mirror for local container runtimes.
pub const DEFAULT_REGISTRY_LISTEN: &str = "127.0.0.1:65001";
/// Default address for peer-to-peer traffic.
pub const DEFAULT_P2P_LISTEN: &str = "0.0.0.0:65002";
/// Default data dir.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/shoal/agent";

/// shoal-agent: runs on every node. Serves the OCI registry pull API to the
/// node's container runtimes (Docker `registry-mirrors`, containerd
/// `hosts.toml`, `registries.conf`) and fetches content through the cluster.
///
/// Every flag can also be set in the TOML file given with `--config` (same
/// names with `_` for `-`), or with the environment variable shown; flags win
/// over the environment, which wins over the file.
#[derive(Parser, Debug, Default)]
#[command(name = "shoal-agent", version, about, long_about)]
pub struct AgentArgs {
    /// TOML config file.
    #[arg(long, env = "SHOAL_AGENT_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address of the registry mirror that local container runtimes use
    /// [default: 127.0.0.1:65001].
    #[arg(long, env = "SHOAL_AGENT_REGISTRY_LISTEN", value_name = "ADDR")]
    pub registry_listen: Option<SocketAddr>,
    /// Address for peer-to-peer piece traffic (QUIC) [default: 0.0.0.0:65002].
    #[arg(long, env = "SHOAL_AGENT_P2P_LISTEN", value_name = "ADDR")]
    pub p2p_listen: Option<SocketAddr>,
    /// Directory for the content store and downloads in progress
    /// [default: /var/lib/shoal/agent].
    #[arg(long, env = "SHOAL_AGENT_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Base URL of the supernode's API, e.g. http://supernode:65011 (required).
    #[arg(long, env = "SHOAL_AGENT_SUPERNODE", value_name = "URL")]
    pub supernode: Option<String>,
    /// Base URL of the tracker, e.g. http://tracker:65010.
    #[arg(long, env = "SHOAL_AGENT_TRACKER", value_name = "URL")]
    pub tracker: Option<String>,
    /// A registry this mirror serves, as NAME=URL: NAME as clients name it
    /// (docker.io, ghcr.io, registry.example.com:5000), URL where it really
    /// is. Repeatable; the first is the default for clients that do not name
    /// a registry. Must match the supernode's list. Requests for any other
    /// registry are refused [default: docker.io=https://registry-1.docker.io].
    #[arg(long = "upstream", value_name = "NAME=URL", value_parser = parse_name_value)]
    pub upstreams: Vec<(String, String)>,
    /// Extra CA certificates (PEM) for one upstream, as NAME=FILE. Repeatable.
    #[arg(long = "upstream-ca", value_name = "NAME=FILE", value_parser = parse_name_value)]
    pub upstream_cas: Vec<(String, String)>,
    /// Log format: text or json [default: text]. RUST_LOG sets the filter.
    #[arg(long, env = "SHOAL_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Write {"http": ADDR, "p2p": ADDR} to this file once listening, so
    /// scripts that bind port 0 learn the real addresses.
    #[arg(long, value_name = "FILE")]
    pub ready_file: Option<PathBuf>,
}

/// The agent's config file.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentFile {
    /// See `--registry-listen`.
    pub registry_listen: Option<SocketAddr>,
    /// See `--p2p-listen`.
    pub p2p_listen: Option<SocketAddr>,
    /// See `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// See `--supernode`.
    pub supernode: Option<String>,
    /// See `--tracker`.
    pub tracker: Option<String>,
    /// See `--log-format`.
    pub log_format: Option<LogFormat>,
    /// `[[upstream]]` tables: name, url, ca_file, username, password(_file).
    pub upstream: Vec<UpstreamEntry>,
}

/// Validated agent configuration.
#[derive(Debug)]
pub struct AgentConfig {
    /// Registry mirror address.
    pub registry_listen: SocketAddr,
    /// P2P address.
    pub p2p_listen: SocketAddr,
    /// Data dir.
    pub data_dir: PathBuf,
    /// Supernode base URL.
    pub supernode: String,
    /// Tracker base URL, if any.
    pub tracker: Option<String>,
    /// Upstreams, default first.
    pub upstreams: Vec<NamedUpstream>,
    /// Log format.
    pub log_format: LogFormat,
    /// Ready file.
    pub ready_file: Option<PathBuf>,
}

impl AgentArgs {
    /// Merges flags (and environment) over the config file and validates.
    pub fn into_config(self) -> anyhow::Result<AgentConfig> {
        let file: AgentFile = load_file(self.config.as_deref())?;
        let supernode = self.supernode.or(file.supernode).context(
            "no supernode configured: pass --supernode URL (or supernode = \"URL\" in the config file)",
        )?;
        Ok(AgentConfig {
            registry_listen: self
                .registry_listen
                .or(file.registry_listen)
                .unwrap_or_else(|| DEFAULT_REGISTRY_LISTEN.parse().expect("valid default")),
            p2p_listen: self
                .p2p_listen
                .or(file.p2p_listen)
                .unwrap_or_else(|| DEFAULT_P2P_LISTEN.parse().expect("valid default")),
            data_dir: self
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| DEFAULT_DATA_DIR.into()),
            supernode,
            tracker: self.tracker.or(file.tracker),
            upstreams: merge_upstreams(&self.upstreams, &self.upstream_cas, &file.upstream)?,
            log_format: self.log_format.or(file.log_format).unwrap_or_default(),
            ready_file: self.ready_file,
        })
    }
}

/// Runs the agent until `shutdown` is cancelled.
pub async fn run(cfg: AgentConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let metrics = daemon::install_metrics();
    let store = ContentStore::open(&cfg.data_dir)
        .with_context(|| format!("cannot open data dir {}", cfg.data_dir.display()))?;
    let mirror = Arc::new(Mirror {
        upstreams: cfg.upstreams.iter().map(|u| u.name.clone()).collect(),
        supernode: SupernodeClient::new(&cfg.supernode)?,
        fetcher: Fetcher::new(store, 3),
    });
    let listener = daemon::bind(cfg.registry_listen).await?;
    let http = listener.local_addr()?;
    // Reserve the P2P address now so the ready file tells the truth; the
    // piece transport takes this socket over.
    let p2p = std::net::UdpSocket::bind(cfg.p2p_listen)
        .with_context(|| format!("cannot listen on {}", cfg.p2p_listen))?;
    let ready = ReadyInfo {
        http,
        p2p: Some(p2p.local_addr()?),
    };
    tracing::info!(registry = %http, p2p = %ready.p2p.expect("set"), supernode = %cfg.supernode,
        upstreams = ?mirror.upstreams, "shoal-agent listening");
    if let Some(path) = &cfg.ready_file {
        daemon::write_ready_file(path, &ready)?;
    }
    let app = mirror::app(mirror).merge(daemon::ops_router(metrics));
    daemon::serve(listener, app, shutdown.cancelled_owned()).await?;
    Ok(())
}
