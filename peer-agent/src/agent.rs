//! The agent daemon: command line, config file, and `run`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::config::{
    NamedUpstream, UpstreamEntry, UpstreamTimeoutArgs, load_file, max_disk, merge_upstreams,
    parse_name_value,
};
use crate::daemon::{self, HttpArgs, HttpFile, HttpLimits, LogFormat, ReadyInfo};
use crate::fetch::Fetcher;
use crate::http_auth::Auth;
use crate::mirror::{self, Mirror};
use crate::p2p::load_cluster_secret;
use crate::pieces::{FetcherPieces, P2pOptions, bind_p2p};
use crate::store::ContentStore;
use crate::supernode_client::SupernodeClient;
use crate::swarm::{Swarm, SwarmOptions, TrackerClient};
use crate::upstream::{Upstream, UpstreamOptions};
use shoal_proto::units::{ByteSize, Rate};
use shoal_proto::wire::ClusterSecret;

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
    /// Disk quota for complete blobs in the data dir, e.g. 20GiB or 500GB
    /// (a bare number is bytes). The least recently used blobs that no
    /// client or peer is reading are evicted to stay within it, before each
    /// download and every 30 s [default: no quota; a download that does not
    /// fit on the disk is refused].
    #[arg(long, env = "SHOAL_AGENT_MAX_DISK", value_name = "SIZE")]
    pub max_disk: Option<ByteSize>,
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
    /// File holding the cluster secret shared by every Shoal daemon (at
    /// least 16 bytes). Enables peer-to-peer: blobs are fetched in verified
    /// pieces from other agents and the supernode over QUIC, and served to
    /// them. The supernode and the tracker are then reached over mutual
    /// TLS with the cluster CA (an http:// URL is dialled as https://).
    /// Without it, blobs come whole from the supernode over plain HTTP.
    #[arg(long, env = "SHOAL_CLUSTER_SECRET_FILE", value_name = "FILE")]
    pub cluster_secret_file: Option<PathBuf>,
    /// Address other peers reach this agent's QUIC port at, announced to
    /// the tracker [default: the P2P listen address].
    #[arg(long, env = "SHOAL_AGENT_P2P_ADVERTISE", value_name = "ADDR")]
    pub p2p_advertise: Option<SocketAddr>,
    /// Upload cap for pieces sent to peers, per second, e.g. 8MiB or
    /// 100Mbit [default: none].
    #[arg(long, env = "SHOAL_AGENT_UPLOAD_RATE", value_name = "RATE")]
    pub upload_rate: Option<Rate>,
    /// Download cap for pieces fetched from peers, per second, e.g. 8MiB
    /// or 100Mbit [default: none].
    #[arg(long, env = "SHOAL_AGENT_DOWNLOAD_RATE", value_name = "RATE")]
    pub download_rate: Option<Rate>,
    /// Most pieces sent to peers at once [default: 16].
    #[arg(long, env = "SHOAL_AGENT_MAX_UPLOADS", value_name = "N")]
    pub max_uploads: Option<usize>,
    /// Largest UDP payload (bytes) accepted from peers and probed for by
    /// QUIC path MTU discovery, from 1200 to 65527 [default: 8952, a
    /// 9000-byte jumbo frame]. Connections start small and grow only as
    /// far as probes get through, so 1500-byte networks settle at 1452;
    /// set 1452 to never probe beyond standard Ethernet.
    #[arg(long, env = "SHOAL_AGENT_P2P_MAX_UDP_PAYLOAD", value_name = "BYTES")]
    pub p2p_max_udp_payload: Option<u16>,
    /// Whether to start fetching every blob of an image manifest as soon as
    /// a client has it, instead of when the client asks for each blob
    /// (true or false) [default: true]. Runtimes fetch three layers at a
    /// time, so without it a fleet pulling a four-layer image starts the
    /// fourth only once a first is done, and then waits on it together.
    /// Blobs already in the store cost nothing; at most four are fetched
    /// ahead at once. Needs peer-to-peer (a cluster secret).
    #[arg(long, env = "SHOAL_AGENT_PREFETCH_LAYERS", value_name = "BOOL",
          action = clap::ArgAction::Set)]
    pub prefetch_layers: Option<bool>,
    /// Threads running the agent's work (its transfers, verification and
    /// HTTP), at least 1 [default: one per CPU]. 1 keeps the agent to about
    /// one core on a busy node; shoal-bench runs each of its many agents
    /// on one machine this way. Blocking disk work has its own threads.
    #[arg(long, env = "SHOAL_AGENT_WORKER_THREADS", value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..))]
    pub worker_threads: Option<u16>,
    /// Write {"http": ADDR, "p2p": ADDR} to this file once listening, so
    /// scripts that bind port 0 learn the real addresses.
    #[arg(long, value_name = "FILE")]
    pub ready_file: Option<PathBuf>,
    /// Limits of the registry mirror's HTTP listener.
    #[command(flatten)]
    pub http: HttpArgs,
    /// Timeouts of the direct upstream fetch.
    #[command(flatten)]
    pub upstream_timeouts: UpstreamTimeoutArgs,
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
    /// See `--max-disk`.
    pub max_disk: Option<String>,
    /// See `--supernode`.
    pub supernode: Option<String>,
    /// See `--tracker`.
    pub tracker: Option<String>,
    /// See `--log-format`.
    pub log_format: Option<LogFormat>,
    /// See `--cluster-secret-file`.
    pub cluster_secret_file: Option<PathBuf>,
    /// See `--p2p-advertise`.
    pub p2p_advertise: Option<SocketAddr>,
    /// See `--upload-rate`.
    pub upload_rate: Option<String>,
    /// See `--download-rate`.
    pub download_rate: Option<String>,
    /// See `--max-uploads`.
    pub max_uploads: Option<usize>,
    /// See `--p2p-max-udp-payload`.
    pub p2p_max_udp_payload: Option<u16>,
    /// See `--prefetch-layers`.
    pub prefetch_layers: Option<bool>,
    /// See `--http-max-connections`.
    pub http_max_connections: Option<usize>,
    /// See `--http-header-timeout` (`30s`).
    pub http_header_timeout: Option<String>,
    /// See `--upstream-connect-timeout` (`10s`).
    pub upstream_connect_timeout: Option<String>,
    /// See `--upstream-read-timeout` (`30s`).
    pub upstream_read_timeout: Option<String>,
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
    /// Disk quota for complete blobs.
    pub max_disk: Option<ByteSize>,
    /// Supernode base URL.
    pub supernode: String,
    /// Tracker base URL, if any.
    pub tracker: Option<String>,
    /// Upstreams, default first.
    pub upstreams: Vec<NamedUpstream>,
    /// Timeouts and retries of the direct upstream fetch.
    pub upstream_options: UpstreamOptions,
    /// Log format.
    pub log_format: LogFormat,
    /// Ready file.
    pub ready_file: Option<PathBuf>,
    /// Limits of the HTTP listener.
    pub http: HttpLimits,
    /// Peer-to-peer settings; `None` without a cluster secret.
    pub p2p: Option<AgentP2p>,
}

/// The agent's peer-to-peer settings.
#[derive(Debug)]
pub struct AgentP2p {
    /// The cluster secret.
    pub secret: ClusterSecret,
    /// Announced QUIC address, if not the bound one.
    pub advertise: Option<SocketAddr>,
    /// Upload cap in bytes per second.
    pub upload_rate: Option<u64>,
    /// Download cap in bytes per second.
    pub download_rate: Option<u64>,
    /// Most concurrent uploads.
    pub max_uploads: usize,
    /// Largest UDP payload accepted and probed for.
    pub max_udp_payload: u16,
    /// Whether an image manifest's blobs are fetched as soon as it is served.
    pub prefetch_layers: bool,
}

/// A rate from a flag or, failing that, the config file.
fn rate(flag: Option<Rate>, file: &Option<String>, name: &str) -> anyhow::Result<Option<u64>> {
    Ok(match (flag, file) {
        (Some(r), _) => Some(r.bytes_per_sec()),
        (None, Some(text)) => Some(
            text.parse::<Rate>()
                .map_err(|e| anyhow::anyhow!("{name}: {e}"))?
                .bytes_per_sec(),
        ),
        (None, None) => None,
    })
}

impl AgentArgs {
    /// Merges flags (and environment) over the config file and validates.
    pub fn into_config(self) -> anyhow::Result<AgentConfig> {
        let file: AgentFile = load_file(self.config.as_deref())?;
        let p2p = match self
            .cluster_secret_file
            .or(file.cluster_secret_file.clone())
        {
            Some(path) => Some(AgentP2p {
                secret: load_cluster_secret(&path)?,
                advertise: self.p2p_advertise.or(file.p2p_advertise),
                upload_rate: rate(self.upload_rate, &file.upload_rate, "upload_rate")?,
                download_rate: rate(self.download_rate, &file.download_rate, "download_rate")?,
                max_uploads: self.max_uploads.or(file.max_uploads).unwrap_or(16).max(1),
                max_udp_payload: crate::p2p::config::max_udp_payload(
                    self.p2p_max_udp_payload,
                    file.p2p_max_udp_payload,
                )
                .map_err(anyhow::Error::msg)?,
                prefetch_layers: self
                    .prefetch_layers
                    .or(file.prefetch_layers)
                    .unwrap_or(true),
            }),
            None => None,
        };
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
            max_disk: max_disk(self.max_disk, file.max_disk.as_deref())?,
            supernode,
            tracker: self.tracker.or(file.tracker),
            upstreams: merge_upstreams(&self.upstreams, &self.upstream_cas, &file.upstream)?,
            upstream_options: self.upstream_timeouts.options_over(
                file.upstream_connect_timeout.as_deref(),
                file.upstream_read_timeout.as_deref(),
            )?,
            log_format: self.log_format.or(file.log_format).unwrap_or_default(),
            ready_file: self.ready_file,
            http: self.http.limits_over(&HttpFile::new(
                file.http_max_connections,
                file.http_header_timeout.clone(),
            ))?,
            p2p,
        })
    }
}

/// Runs the agent until `shutdown` is cancelled.
pub async fn run(cfg: AgentConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let metrics = daemon::install_metrics();
    let store = ContentStore::open_with_quota(&cfg.data_dir, cfg.max_disk)
        .with_context(|| format!("cannot open data dir {}", cfg.data_dir.display()))?;
    crate::store::quota::spawn_enforcer(store.clone(), shutdown.clone());
    let auth = match &cfg.p2p {
        Some(p2p) => Auth::member(&p2p.secret)?,
        None => Auth::Insecure,
    };
    let supernode = SupernodeClient::for_auth(&cfg.supernode, auth.clone())?;
    tokio::spawn({
        let supernode = supernode.clone();
        async move { supernode.probe().await }
    });
    let fetcher = Fetcher::new(store, 3);
    let listener = daemon::bind(cfg.registry_listen).await?;
    let http = listener.local_addr()?;
    let mut direct = std::collections::HashMap::new();
    if cfg.p2p.is_some() {
        for u in &cfg.upstreams {
            let client = Upstream::new(&u.name, &u.config, &cfg.upstream_options)
                .with_context(|| format!("upstream {:?}", u.name))?;
            direct.insert(u.name.clone(), client);
        }
    }
    let (swarm, p2p_addr) = match &cfg.p2p {
        Some(p2p) => {
            let (swarm, addr) =
                start_swarm(&cfg, p2p, &auth, &supernode, &fetcher, &direct, &shutdown)?;
            (Some(swarm), Some(addr))
        }
        None => {
            daemon::warn_unencrypted();
            tracing::warn!(
                "no --cluster-secret-file: not swarming; fetching whole blobs through the supernode"
            );
            (None, None)
        }
    };
    let mirror = Arc::new(Mirror {
        upstreams: cfg.upstreams.iter().map(|u| u.name.clone()).collect(),
        access: crate::access::AccessControl::new(supernode.clone(), direct.clone()),
        supernode,
        fetcher,
        prefetch: cfg
            .p2p
            .as_ref()
            .filter(|p| p.prefetch_layers)
            .map(|_| Arc::new(tokio::sync::Semaphore::new(mirror::PREFETCH_AT_ONCE))),
        swarm,
        direct,
    });
    let ready = ReadyInfo {
        http,
        p2p: p2p_addr,
    };
    tracing::info!(registry = %http, p2p = ?p2p_addr, supernode = %cfg.supernode,
        upstreams = ?mirror.upstreams, swarm = cfg.p2p.is_some(), "shoal-agent listening");
    if let Some(path) = &cfg.ready_file {
        daemon::write_ready_file(path, &ready)?;
    }
    let app = mirror::app(mirror).merge(daemon::ops_router(metrics));
    daemon::serve(listener, app, &cfg.http, shutdown.cancelled_owned()).await?;
    Ok(())
}

/// Binds the QUIC endpoint, runs it and the event router, and returns the
/// swarm with the bound address.
fn start_swarm(
    cfg: &AgentConfig,
    p2p: &AgentP2p,
    auth: &Auth,
    supernode: &SupernodeClient,
    fetcher: &Fetcher,
    direct: &std::collections::HashMap<String, Upstream>,
    shutdown: &CancellationToken,
) -> anyhow::Result<(Arc<Swarm>, SocketAddr)> {
    let opts = P2pOptions {
        listen: cfg.p2p_listen,
        secret: p2p.secret.clone(),
        max_uploads: p2p.max_uploads,
        upload_rate: p2p.upload_rate,
        max_udp_payload: p2p.max_udp_payload,
    };
    let (tx, rx) = tokio::sync::mpsc::channel(1024);
    let provider = Arc::new(FetcherPieces::new(fetcher.clone()));
    let endpoint = bind_p2p(&opts, provider, Some(tx), None)?;
    let addr = endpoint.local_addr()?;
    let tracker = match &cfg.tracker {
        Some(url) => Some(TrackerClient::new(url, auth.clone())?),
        None => None,
    };
    let supernode_host = reqwest::Url::parse(&cfg.supernode)
        .ok()
        .and_then(|u| u.host_str().map(|h| h.trim_matches(['[', ']']).to_owned()));
    let swarm = Swarm::new(
        SwarmOptions {
            peer_id: rand::random(),
            advertise: p2p.advertise.unwrap_or(addr),
            supernode: supernode.clone(),
            supernode_host,
            tracker,
            download_rate: p2p.download_rate,
            max_uploads: p2p.max_uploads,
            direct: direct.clone(),
        },
        endpoint.clone(),
        fetcher.clone(),
        shutdown.clone(),
    );
    let stop = shutdown.clone();
    tokio::spawn(async move { endpoint.run(stop.cancelled_owned()).await });
    tokio::spawn(swarm.clone().run_events(rx));
    Ok((swarm, addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &[&str]) -> anyhow::Result<AgentConfig> {
        let mut argv = vec!["shoal-agent", "--supernode", "http://127.0.0.1:1"];
        argv.extend_from_slice(extra);
        AgentArgs::try_parse_from(argv)?.into_config()
    }

    #[test]
    fn upstream_timeouts_from_flag_or_file() {
        use std::time::Duration;
        let cfg = config(&[]).unwrap();
        assert_eq!(cfg.upstream_options, UpstreamOptions::default());
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("agent.toml");
        std::fs::write(
            &file,
            "upstream_connect_timeout = \"2s\"\nupstream_read_timeout = \"4s\"\n",
        )
        .unwrap();
        let path = file.to_str().unwrap();
        let cfg = config(&["--config", path, "--upstream-read-timeout", "3s"]).unwrap();
        assert_eq!(cfg.upstream_options.connect_timeout, Duration::from_secs(2));
        assert_eq!(cfg.upstream_options.read_timeout, Duration::from_secs(3));
        assert!(config(&["--upstream-connect-timeout", "never"]).is_err());
    }

    #[test]
    fn max_disk_from_flag_or_file() {
        assert_eq!(config(&[]).unwrap().max_disk, None);
        let cfg = config(&["--max-disk", "20GiB"]).unwrap();
        assert_eq!(cfg.max_disk.map(ByteSize::bytes), Some(20 << 30));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("agent.toml");
        std::fs::write(&file, "max_disk = \"1.5GB\"\n").unwrap();
        let cfg = config(&["--config", file.to_str().unwrap()]).unwrap();
        assert_eq!(cfg.max_disk.map(ByteSize::bytes), Some(1_500_000_000));
        assert!(config(&["--max-disk", "lots"]).is_err());
        std::fs::write(&file, "max_disk = \"0\"\n").unwrap();
        assert!(config(&["--config", file.to_str().unwrap()]).is_err());
    }

    #[test]
    fn p2p_is_off_without_a_secret() {
        let cfg = config(&["--upload-rate", "8MiB"]).unwrap();
        assert!(cfg.p2p.is_none());
    }

    #[test]
    fn secret_enables_p2p_with_defaults_and_parsed_rates() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "0123456789abcdef0123\n").unwrap();
        let path = secret.to_str().unwrap();
        let p2p = config(&["--cluster-secret-file", path])
            .unwrap()
            .p2p
            .unwrap();
        assert_eq!(
            (p2p.max_uploads, p2p.upload_rate, p2p.download_rate),
            (16, None, None)
        );
        let p2p = config(&[
            "--cluster-secret-file",
            path,
            "--upload-rate",
            "8MiB",
            "--download-rate",
            "100Mbit",
            "--max-uploads",
            "4",
        ])
        .unwrap()
        .p2p
        .unwrap();
        assert_eq!(p2p.upload_rate, Some(8 * 1024 * 1024));
        assert_eq!(p2p.download_rate, Some(100_000_000 / 8));
        assert_eq!(p2p.max_uploads, 4);
    }
}
