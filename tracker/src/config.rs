//! The tracker's configuration, in two stages (STYLE.md 11): clap flags
//! ([`TrackerArgs`]) and the TOML file ([`TrackerFile`]) are merged, flags
//! winning, then validated into a [`Config`] the rest of the crate trusts.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use reqwest::Url;
use serde::Deserialize;
use shoal_agent::config::load_file;
use shoal_agent::daemon::{HttpArgs, HttpFile, HttpLimits, LogFormat};
use shoal_agent::http_auth::Auth;
use shoal_agent::p2p::load_cluster_secret;

/// Default listen address.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:65010";

/// Default announce interval told to agents, in seconds.
pub const DEFAULT_ANNOUNCE_INTERVAL_SECS: f64 = 30.0;

/// Shortest accepted announce interval (tests use a second or less).
const MIN_ANNOUNCE_INTERVAL: Duration = Duration::from_millis(50);

/// Longest accepted announce interval.
const MAX_ANNOUNCE_INTERVAL: Duration = Duration::from_secs(24 * 3600);

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
    /// File holding the cluster secret (at least 16 bytes; surrounding
    /// whitespace is ignored). Every API request must be signed with it,
    /// and seeding requests to supernodes are; the API is then served only
    /// over mutual TLS with the cluster CA, and supernodes are reached over
    /// TLS too (an http:// supernode URL is dialled as https://). Required
    /// unless --insecure-no-auth is given.
    #[arg(long, env = "SHOAL_CLUSTER_SECRET_FILE", value_name = "FILE")]
    pub cluster_secret_file: Option<PathBuf>,
    /// Accept unsigned requests from anyone and send unsigned seeding
    /// requests. For tests and development only; never in a cluster.
    #[arg(long, conflicts_with = "cluster_secret_file")]
    pub insecure_no_auth: bool,
    /// Seconds between two announces of an agent, as told to agents
    /// (decimals allowed). It is stretched when many peers announce, and a
    /// peer silent for three intervals expires [default: 30].
    #[arg(long, env = "SHOAL_TRACKER_ANNOUNCE_INTERVAL", value_name = "SECONDS")]
    pub announce_interval: Option<f64>,
    /// Log format: text or json [default: text]. RUST_LOG sets the filter.
    #[arg(long, env = "SHOAL_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Write {"http": ADDR} to this file once listening.
    #[arg(long, value_name = "FILE")]
    pub ready_file: Option<PathBuf>,
    /// Limits of the HTTP listener.
    #[command(flatten)]
    pub http: HttpArgs,
}

/// The tracker's config file.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrackerFile {
    /// See `--listen`.
    pub listen: Option<SocketAddr>,
    /// See `--supernode`.
    pub supernodes: Vec<String>,
    /// See `--cluster-secret-file`.
    pub cluster_secret_file: Option<PathBuf>,
    /// See `--insecure-no-auth`.
    pub insecure_no_auth: bool,
    /// See `--announce-interval` (seconds).
    pub announce_interval: Option<f64>,
    /// See `--log-format`.
    pub log_format: Option<LogFormat>,
    /// See `--http-max-connections`.
    pub http_max_connections: Option<usize>,
    /// See `--http-header-timeout` (`30s`).
    pub http_header_timeout: Option<String>,
}

/// Validated tracker configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listen address.
    pub listen: SocketAddr,
    /// Supernode base URLs, without a trailing `/`; these strings are the
    /// ids that rendezvous hashing ranks.
    pub supernodes: Vec<String>,
    /// Request authentication.
    pub auth: Auth,
    /// Announce interval told to agents, before scaling and jitter.
    pub announce_interval: Duration,
    /// Log format.
    pub log_format: LogFormat,
    /// Ready file.
    pub ready_file: Option<PathBuf>,
    /// Limits of the HTTP listener.
    pub http: HttpLimits,
}

impl TrackerArgs {
    /// Merges flags over the config file and validates the result.
    pub fn into_config(self) -> anyhow::Result<Config> {
        let file: TrackerFile = load_file(self.config.as_deref())?;
        let secret_file = self.cluster_secret_file.or(file.cluster_secret_file);
        let insecure = self.insecure_no_auth || file.insecure_no_auth;
        let auth = match (secret_file, insecure) {
            (Some(_), true) => {
                bail!("--cluster-secret-file and --insecure-no-auth exclude each other")
            }
            (Some(path), false) => Auth::member(&load_cluster_secret(&path)?)?,
            (None, true) => Auth::Insecure,
            (None, false) => bail!(
                "--cluster-secret-file FILE is required (or --insecure-no-auth, \
                 for tests and development only)"
            ),
        };
        let supernodes = if self.supernodes.is_empty() {
            file.supernodes
        } else {
            self.supernodes
        };
        let secs = self
            .announce_interval
            .or(file.announce_interval)
            .unwrap_or(DEFAULT_ANNOUNCE_INTERVAL_SECS);
        Ok(Config {
            listen: self
                .listen
                .or(file.listen)
                .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("valid default")),
            supernodes: supernodes
                .iter()
                .map(|s| normalize_supernode(s))
                .collect::<anyhow::Result<_>>()?,
            auth,
            announce_interval: announce_interval(secs)?,
            log_format: self.log_format.or(file.log_format).unwrap_or_default(),
            ready_file: self.ready_file,
            http: self.http.limits_over(&HttpFile::new(
                file.http_max_connections,
                file.http_header_timeout.clone(),
            ))?,
        })
    }
}

/// Checks an announce interval given in seconds.
fn announce_interval(secs: f64) -> anyhow::Result<Duration> {
    let d = Duration::try_from_secs_f64(secs)
        .with_context(|| format!("invalid announce interval {secs}"))?;
    if !(MIN_ANNOUNCE_INTERVAL..=MAX_ANNOUNCE_INTERVAL).contains(&d) {
        bail!(
            "announce interval {secs} s is outside {} s ..= {} s",
            MIN_ANNOUNCE_INTERVAL.as_secs_f64(),
            MAX_ANNOUNCE_INTERVAL.as_secs()
        );
    }
    Ok(d)
}

/// Checks a supernode URL and drops trailing slashes, so that
/// `http://sn:1/` and `http://sn:1` name the same supernode.
fn normalize_supernode(url: &str) -> anyhow::Result<String> {
    let parsed = Url::parse(url).with_context(|| format!("invalid supernode URL {url:?}"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        bail!("supernode URL must be http:// or https:// with a host, got {url:?}");
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        bail!("supernode URL must not have a query or fragment, got {url:?}");
    }
    Ok(url.trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn parse(args: &[&str]) -> anyhow::Result<Config> {
        let mut all = vec!["shoal-tracker"];
        all.extend_from_slice(args);
        TrackerArgs::try_parse_from(all)?.into_config()
    }

    fn secret_file() -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(b"0123456789abcdef0123\n").unwrap();
        f
    }

    #[test]
    fn defaults() {
        let cfg = parse(&["--insecure-no-auth"]).unwrap();
        assert_eq!(cfg.listen, DEFAULT_LISTEN.parse().unwrap());
        assert!(cfg.supernodes.is_empty());
        assert!(matches!(cfg.auth, Auth::Insecure));
        assert_eq!(cfg.announce_interval, Duration::from_secs(30));
        assert_eq!(cfg.log_format, LogFormat::Text);
        assert_eq!(cfg.ready_file, None);
    }

    #[test]
    fn secret_is_required_unless_insecure() {
        let err = parse(&[]).unwrap_err().to_string();
        assert!(err.contains("--cluster-secret-file"), "{err}");
        let f = secret_file();
        let path = f.path().to_str().unwrap();
        let cfg = parse(&["--cluster-secret-file", path]).unwrap();
        assert!(cfg.auth.http_auth().is_some());
        assert!(cfg.auth.tls().is_some(), "the API is served over TLS");
        assert!(parse(&["--cluster-secret-file", path, "--insecure-no-auth"]).is_err());
        let err = parse(&["--cluster-secret-file", "/nonexistent/secret"]).unwrap_err();
        assert!(
            format!("{err:#}").contains("/nonexistent/secret"),
            "{err:#}"
        );
    }

    #[test]
    fn flags_win_over_the_file() {
        let secret = secret_file();
        let mut file = tempfile::NamedTempFile::new().unwrap();
        write!(
            file,
            "listen = \"127.0.0.1:9\"\nsupernodes = [\"http://a:1/\"]\n\
             announce_interval = 5\ncluster_secret_file = {:?}\n",
            secret.path()
        )
        .unwrap();
        let conf = file.path().to_str().unwrap();
        let cfg = parse(&["--config", conf]).unwrap();
        assert_eq!(cfg.listen, "127.0.0.1:9".parse().unwrap());
        assert_eq!(cfg.supernodes, ["http://a:1"]);
        assert_eq!(cfg.announce_interval, Duration::from_secs(5));
        assert!(cfg.auth.http_auth().is_some());
        let cfg = parse(&[
            "--config",
            conf,
            "--announce-interval",
            "0.5",
            "--supernode",
            "https://b:2",
            "--supernode",
            "http://c:3/x/",
        ])
        .unwrap();
        assert_eq!(cfg.announce_interval, Duration::from_millis(500));
        assert_eq!(cfg.supernodes, ["https://b:2", "http://c:3/x"]);
    }

    #[test]
    fn bad_values_are_refused() {
        for args in [
            &["--announce-interval", "0"][..],
            &["--announce-interval", "-1"],
            &["--announce-interval", "NaN"],
            &["--announce-interval", "1e9"],
            &["--supernode", "ftp://a"],
            &["--supernode", "not a url"],
            &["--supernode", "http://a/?q=1"],
        ] {
            let mut all = vec!["--insecure-no-auth"];
            all.extend_from_slice(args);
            assert!(parse(&all).is_err(), "{args:?}");
        }
    }
}
