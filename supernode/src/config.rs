//! The supernode's command line and config file.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use serde::Deserialize;
use shoal_agent::config::{
    NamedUpstream, UpstreamEntry, UpstreamTimeoutArgs, load_file, max_disk, merge_upstreams,
    parse_name_value,
};
use shoal_agent::daemon::{HttpArgs, HttpFile, HttpLimits, LogFormat};
use shoal_agent::p2p::config::max_udp_payload;
use shoal_agent::p2p::load_cluster_secret;
use shoal_agent::pieces::P2pOptions;
use shoal_agent::upstream::UpstreamOptions;
use shoal_proto::units::{ByteSize, Rate};

/// Default API address.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:65011";
/// Default P2P address.
pub const DEFAULT_P2P_LISTEN: &str = "0.0.0.0:65012";
/// Default data dir.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/shoal/supernode";
/// Default time a tag → digest resolution is reused.
pub const DEFAULT_TAG_TTL: Duration = Duration::from_secs(30);

/// shoal-supernode: the cluster's seed. Fetches manifests and blobs from the
/// upstream registries once, stores them, and serves them to agents.
///
/// Every flag can also be set in the TOML file given with `--config` (same
/// names with `_` for `-`; upstreams as [[upstream]] tables with name, url,
/// ca_file, username, password or password_file), or with the environment
/// variable shown; flags win over the environment, which wins over the file.
#[derive(Parser, Debug, Default)]
#[command(name = "shoal-supernode", version, about, long_about)]
pub struct SupernodeArgs {
    /// TOML config file.
    #[arg(long, env = "SHOAL_SUPERNODE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address of the HTTP API for agents (also /healthz, /metrics)
    /// [default: 0.0.0.0:65011].
    #[arg(long, env = "SHOAL_SUPERNODE_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Address for peer-to-peer piece traffic (QUIC) [default: 0.0.0.0:65012].
    #[arg(long, env = "SHOAL_SUPERNODE_P2P_LISTEN", value_name = "ADDR")]
    pub p2p_listen: Option<SocketAddr>,
    /// Directory for the content store [default: /var/lib/shoal/supernode].
    #[arg(long, env = "SHOAL_SUPERNODE_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Disk quota for complete blobs in the data dir, e.g. 200GiB or 1TB
    /// (a bare number is bytes). The least recently used blobs that no
    /// agent is fetching are evicted to stay within it, before each
    /// download and every 30 s [default: no quota; a download that does not
    /// fit on the disk is refused].
    #[arg(long, env = "SHOAL_SUPERNODE_MAX_DISK", value_name = "SIZE")]
    pub max_disk: Option<ByteSize>,
    /// Base URL of the tracker, e.g. http://tracker:65010.
    #[arg(long, env = "SHOAL_SUPERNODE_TRACKER", value_name = "URL")]
    pub tracker: Option<String>,
    /// An upstream registry as NAME=URL: NAME as clients name it (docker.io,
    /// ghcr.io, registry.example.com:5000), URL where it is
    /// (https://registry-1.docker.io). Repeatable; the first is the default
    /// [default: docker.io=https://registry-1.docker.io].
    #[arg(long = "upstream", value_name = "NAME=URL", value_parser = parse_name_value)]
    pub upstreams: Vec<(String, String)>,
    /// Extra CA certificates (PEM) trusted for one upstream, as NAME=FILE,
    /// in addition to the system store. Repeatable.
    #[arg(long = "upstream-ca", value_name = "NAME=FILE", value_parser = parse_name_value)]
    pub upstream_cas: Vec<(String, String)>,
    /// How long a tag's resolution to a digest is reused before the upstream
    /// is asked again, in seconds [default: 30].
    #[arg(long, env = "SHOAL_SUPERNODE_TAG_TTL", value_name = "SECONDS")]
    pub tag_ttl: Option<u64>,
    /// File holding the cluster secret shared by every Shoal daemon of the
    /// cluster. Enables seeding pieces over QUIC (only to members) and the
    /// /api/v1/seed endpoint for the tracker, serves the API only over
    /// mutual TLS with the cluster CA (plain HTTP gets /healthz and
    /// /metrics only), and makes every API request require a signature
    /// made with it. Without it the supernode only serves whole manifests
    /// and blobs over plain HTTP, to anyone who reaches its API (insecure:
    /// for tests and development).
    #[arg(long, env = "SHOAL_CLUSTER_SECRET_FILE", value_name = "FILE")]
    pub cluster_secret_file: Option<PathBuf>,
    /// Cap on the bytes per second sent to peers over QUIC, e.g. 100MiB,
    /// 800Mbit (a bare number is MiB/s) [default: no cap].
    #[arg(long, env = "SHOAL_SUPERNODE_UPLOAD_RATE", value_name = "RATE")]
    pub upload_rate: Option<Rate>,
    /// Most pieces sent to peers at once; further requests are refused as
    /// busy so the requester asks another peer [default: 64].
    #[arg(long, env = "SHOAL_SUPERNODE_MAX_UPLOADS", value_name = "N")]
    pub max_uploads: Option<usize>,
    /// Largest UDP payload (bytes) accepted from peers and probed for by
    /// QUIC path MTU discovery, from 1200 to 65527 [default: 8952, a
    /// 9000-byte jumbo frame]. Connections start small and grow only as
    /// far as probes get through, so 1500-byte networks settle at 1452;
    /// set 1452 to never probe beyond standard Ethernet.
    #[arg(
        long,
        env = "SHOAL_SUPERNODE_P2P_MAX_UDP_PAYLOAD",
        value_name = "BYTES"
    )]
    pub p2p_max_udp_payload: Option<u16>,
    /// Log format: text or json [default: text]. RUST_LOG sets the filter.
    #[arg(long, env = "SHOAL_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Write {"http": ADDR, "p2p": ADDR} to this file once listening.
    #[arg(long, value_name = "FILE")]
    pub ready_file: Option<PathBuf>,
    /// Limits of the API's HTTP listener.
    #[command(flatten)]
    pub http: HttpArgs,
    /// Timeouts of the upstream registry client.
    #[command(flatten)]
    pub upstream_timeouts: UpstreamTimeoutArgs,
}

/// The supernode's config file.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SupernodeFile {
    /// See `--listen`.
    pub listen: Option<SocketAddr>,
    /// See `--p2p-listen`.
    pub p2p_listen: Option<SocketAddr>,
    /// See `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// See `--max-disk`.
    pub max_disk: Option<String>,
    /// See `--tracker`.
    pub tracker: Option<String>,
    /// See `--tag-ttl`.
    pub tag_ttl: Option<u64>,
    /// See `--log-format`.
    pub log_format: Option<LogFormat>,
    /// See `--cluster-secret-file`.
    pub cluster_secret_file: Option<PathBuf>,
    /// See `--upload-rate`.
    pub upload_rate: Option<String>,
    /// See `--max-uploads`.
    pub max_uploads: Option<usize>,
    /// See `--p2p-max-udp-payload`.
    pub p2p_max_udp_payload: Option<u16>,
    /// See `--http-max-connections`.
    pub http_max_connections: Option<usize>,
    /// See `--http-header-timeout` (`30s`).
    pub http_header_timeout: Option<String>,
    /// See `--upstream-connect-timeout` (`10s`).
    pub upstream_connect_timeout: Option<String>,
    /// See `--upstream-read-timeout` (`30s`).
    pub upstream_read_timeout: Option<String>,
    /// Upstreams.
    pub upstream: Vec<UpstreamEntry>,
}

/// Validated supernode configuration.
#[derive(Debug)]
pub struct SupernodeConfig {
    /// API address.
    pub listen: SocketAddr,
    /// P2P address.
    pub p2p_listen: SocketAddr,
    /// Data dir.
    pub data_dir: PathBuf,
    /// Disk quota for complete blobs.
    pub max_disk: Option<ByteSize>,
    /// Tracker base URL.
    pub tracker: Option<String>,
    /// Upstreams, default first.
    pub upstreams: Vec<NamedUpstream>,
    /// Timeouts and retries of the upstream client.
    pub upstream_options: UpstreamOptions,
    /// Tag TTL.
    pub tag_ttl: Duration,
    /// Log format.
    pub log_format: LogFormat,
    /// Ready file.
    pub ready_file: Option<PathBuf>,
    /// Limits of the HTTP listener.
    pub http: HttpLimits,
    /// Piece transport, when a cluster secret is configured.
    pub p2p: Option<P2pOptions>,
}

impl SupernodeArgs {
    /// Merges flags (and environment) over the config file and validates.
    pub fn into_config(self) -> anyhow::Result<SupernodeConfig> {
        let file: SupernodeFile = load_file(self.config.as_deref())?;
        let p2p_listen = self
            .p2p_listen
            .or(file.p2p_listen)
            .unwrap_or_else(|| DEFAULT_P2P_LISTEN.parse().expect("valid default"));
        let upload_rate = match (self.upload_rate, &file.upload_rate) {
            (Some(r), _) => Some(r),
            (None, Some(text)) => Some(
                text.parse::<Rate>()
                    .map_err(|e| anyhow::anyhow!("upload_rate: {e}"))?,
            ),
            (None, None) => None,
        };
        let p2p = match self.cluster_secret_file.or(file.cluster_secret_file) {
            Some(path) => Some(P2pOptions {
                listen: p2p_listen,
                secret: load_cluster_secret(&path)?,
                max_uploads: self.max_uploads.or(file.max_uploads).unwrap_or(64).max(1),
                upload_rate: upload_rate.map(Rate::bytes_per_sec),
                max_udp_payload: max_udp_payload(
                    self.p2p_max_udp_payload,
                    file.p2p_max_udp_payload,
                )
                .map_err(anyhow::Error::msg)?,
            }),
            None => None,
        };
        Ok(SupernodeConfig {
            listen: self
                .listen
                .or(file.listen)
                .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("valid default")),
            p2p_listen,
            data_dir: self
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| DEFAULT_DATA_DIR.into()),
            max_disk: max_disk(self.max_disk, file.max_disk.as_deref())?,
            tracker: self.tracker.or(file.tracker),
            upstreams: merge_upstreams(&self.upstreams, &self.upstream_cas, &file.upstream)?,
            upstream_options: self.upstream_timeouts.options_over(
                file.upstream_connect_timeout.as_deref(),
                file.upstream_read_timeout.as_deref(),
            )?,
            tag_ttl: self
                .tag_ttl
                .or(file.tag_ttl)
                .map(Duration::from_secs)
                .unwrap_or(DEFAULT_TAG_TTL),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let c = SupernodeArgs::default().into_config().unwrap();
        assert_eq!(c.listen, DEFAULT_LISTEN.parse().unwrap());
        assert_eq!(c.tag_ttl, Duration::from_secs(30));
        assert_eq!(c.upstreams[0].name, "docker.io");
        assert_eq!(c.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        assert_eq!(c.max_disk, None);
        assert_eq!(c.upstream_options, UpstreamOptions::default());
    }

    #[test]
    fn flags_win_over_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("s.toml");
        std::fs::write(
            &f,
            "listen = \"127.0.0.1:1\"\ntag_ttl = 5\nmax_disk = \"2GiB\"\nupstream_connect_timeout = \"4s\"\nupstream_read_timeout = \"9s\"\n[[upstream]]\nname = \"ghcr.io\"\nurl = \"https://ghcr.io\"\n",
        )
        .unwrap();
        let args = SupernodeArgs {
            config: Some(f),
            listen: Some("127.0.0.1:2".parse().unwrap()),
            upstream_timeouts: UpstreamTimeoutArgs {
                upstream_read_timeout: Some(Duration::from_secs(3)),
                ..Default::default()
            },
            ..Default::default()
        };
        let c = args.into_config().unwrap();
        assert_eq!(c.upstream_options.connect_timeout, Duration::from_secs(4));
        assert_eq!(c.upstream_options.read_timeout, Duration::from_secs(3));
        assert_eq!(c.listen, "127.0.0.1:2".parse().unwrap());
        assert_eq!(c.tag_ttl, Duration::from_secs(5));
        assert_eq!(c.max_disk.map(ByteSize::bytes), Some(2 << 30));
        assert_eq!(c.upstreams[0].name, "ghcr.io");
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("s.toml");
        std::fs::write(&f, "lisen = \"x\"\n").unwrap();
        let args = SupernodeArgs {
            config: Some(f),
            ..Default::default()
        };
        assert!(args.into_config().is_err());
    }
}
