//! A whole Shoal deployment on loopback: one tracker, one supernode and N
//! agents as separate processes, each with its own directory in one
//! temporary directory, all killed when the [`Cluster`] is dropped (and by
//! [`crate::child::kill_all`] on Ctrl-C).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use crate::daemon::{Daemon, DaemonError};
use crate::metrics;
use crate::units::Rate;

/// Worker threads of each agent (`--worker-threads`). Every agent stands
/// for a node of its own, but all share this machine's cores: one thread
/// apiece keeps the run queue at N threads instead of N per core, and the
/// scheduling delay (which QUIC reads as round-trip time) with it.
pub const AGENT_WORKER_THREADS: u16 = 1;

/// Rate caps of one daemon.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Caps {
    /// Total upload rate.
    pub upload: Option<Rate>,
    /// Total download rate.
    pub download: Option<Rate>,
}

impl Caps {
    /// Adds the daemon flags for these caps (none when both are unset), in
    /// bytes per second with an explicit unit (a bare number means MiB/s).
    fn apply(&self, cmd: &mut Command) {
        if let Some(rate) = self.upload {
            cmd.arg("--upload-rate")
                .arg(format!("{}B", rate.bytes_per_sec()));
        }
        if let Some(rate) = self.download {
            cmd.arg("--download-rate")
                .arg(format!("{}B", rate.bytes_per_sec()));
        }
    }
}

/// What to start.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// Directory holding the daemon binaries.
    pub bin_dir: PathBuf,
    /// Number of agents.
    pub agents: usize,
    /// The upstream registry as `(NAME, URL)`.
    pub upstream: (String, String),
    /// Caps given to the supernode.
    pub seed_caps: Caps,
    /// Caps given to every agent.
    pub peer_caps: Caps,
    /// Give every daemon a generated cluster secret, which turns on the
    /// peer-to-peer piece path (QUIC); without it agents fetch whole blobs
    /// from the supernode over HTTP and the tracker accepts unsigned
    /// requests (`--insecure-no-auth`).
    pub p2p: bool,
}

/// Byte counters read from the daemons' `/metrics`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClusterMetrics {
    /// `shoal_supernode_upstream_bytes_total`: what the seed fetched.
    pub supernode_upstream_bytes: f64,
    /// `shoal_agent_bytes_received_total` summed over agents, per `source`.
    pub agent_bytes_by_source: BTreeMap<String, f64>,
}

impl ClusterMetrics {
    /// Fraction of the agents' received bytes that came from other peers
    /// (every source other than the supernode and the upstream).
    pub fn peer_bytes_fraction(&self) -> f64 {
        let total: f64 = self.agent_bytes_by_source.values().sum();
        if total <= 0.0 {
            return 0.0;
        }
        let from_infra: f64 = self
            .agent_bytes_by_source
            .iter()
            .filter(|(source, _)| matches!(source.as_str(), "supernode" | "upstream"))
            .map(|(_, v)| v)
            .sum();
        (total - from_infra) / total
    }
}

/// Tracker, supernode and agents; dropped in that field order: agents first.
#[derive(Debug)]
pub struct Cluster {
    /// The agents.
    pub agents: Vec<Daemon>,
    /// The supernode.
    pub supernode: Daemon,
    /// The tracker.
    pub tracker: Daemon,
    dir: TempDir,
}

impl Cluster {
    /// Starts everything and waits until every daemon is healthy.
    pub async fn start(cfg: &ClusterConfig) -> Result<Cluster, DaemonError> {
        let dir = tempfile::Builder::new()
            .prefix("shoal-bench-")
            .tempdir()
            .map_err(|source| DaemonError::Spawn {
                name: "cluster directory".into(),
                source,
            })?;
        let root = dir.path();
        let bin = cfg.bin_dir.as_path();
        let io_err = |name: &str| {
            let name = name.to_string();
            move |source| DaemonError::Spawn { name, source }
        };
        // Peer-to-peer needs a shared secret; without it the tracker must be
        // told to accept unsigned requests.
        let secret = if cfg.p2p {
            Some(write_secret(root).map_err(io_err("cluster secret"))?)
        } else {
            None
        };
        let secret_args = |cmd: &mut Command| {
            if let Some(path) = &secret {
                cmd.arg("--cluster-secret-file").arg(path);
            }
        };
        // The tracker names the supernode and the supernode the tracker:
        // the supernode's port is picked before either starts.
        let sn_listen = free_port().map_err(io_err("supernode port"))?.to_string();
        let sn_url = format!("http://{sn_listen}");
        let tracker = Daemon::start(
            bin,
            "shoal-tracker",
            "tracker",
            &root.join("tracker"),
            |cmd| {
                cmd.args(["--listen", "127.0.0.1:0", "--supernode", &sn_url]);
                secret_args(cmd);
                if secret.is_none() {
                    cmd.arg("--insecure-no-auth");
                }
            },
        )
        .await?;
        let tracker_url = tracker.http_url();
        let upstream = format!("{}={}", cfg.upstream.0, cfg.upstream.1);
        let sn_dir = root.join("supernode");
        let supernode = Daemon::start(bin, "shoal-supernode", "supernode", &sn_dir, |cmd| {
            cmd.args(["--listen", &sn_listen, "--p2p-listen", "127.0.0.1:0"])
                .arg("--data-dir")
                .arg(sn_dir.join("data"))
                .args(["--tracker", &tracker_url, "--upstream", &upstream]);
            secret_args(cmd);
            cfg.seed_caps.apply(cmd);
        })
        .await?;
        let supernode_url = supernode.http_url();
        let agents = futures_util::future::join_all((0..cfg.agents).map(|i| {
            let dir = root.join(format!("agent-{i:03}"));
            let label = format!("agent-{i:03}");
            let (tracker_url, supernode_url, upstream) = (&tracker_url, &supernode_url, &upstream);
            async move {
                Daemon::start(bin, "shoal-agent", &label, &dir, |cmd| {
                    cmd.args([
                        "--registry-listen",
                        "127.0.0.1:0",
                        "--p2p-listen",
                        "127.0.0.1:0",
                    ])
                    .arg("--data-dir")
                    .arg(dir.join("data"))
                    .args(["--supernode", supernode_url, "--tracker", tracker_url])
                    .args(["--upstream", upstream])
                    .arg("--worker-threads")
                    .arg(AGENT_WORKER_THREADS.to_string());
                    secret_args(cmd);
                    cfg.peer_caps.apply(cmd);
                })
                .await
            }
        }))
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
        Ok(Cluster {
            agents,
            supernode,
            tracker,
            dir,
        })
    }

    /// Every daemon, agents first.
    pub fn daemons(&self) -> impl Iterator<Item = &Daemon> {
        self.agents.iter().chain([&self.supernode, &self.tracker])
    }

    /// CPU time all daemons have used so far. Read it before dropping the
    /// cluster: a process that has exited has no `/proc` entry left.
    pub fn cpu_time(&self) -> Duration {
        self.daemons().map(Daemon::cpu_time).sum()
    }

    /// Reads the byte counters from every daemon's `/metrics`.
    pub async fn scrape(&self, client: &reqwest::Client) -> Result<ClusterMetrics, DaemonError> {
        let sn = self.supernode.metrics(client).await?;
        let mut out = ClusterMetrics {
            supernode_upstream_bytes: metrics::sum(&sn, "shoal_supernode_upstream_bytes_total")
                .unwrap_or(0.0),
            ..ClusterMetrics::default()
        };
        for agent in &self.agents {
            let text = agent.metrics(client).await?;
            let by = metrics::sum_by_label(&text, "shoal_agent_bytes_received_total", "source");
            for (source, v) in by {
                *out.agent_bytes_by_source.entry(source).or_insert(0.0) += v;
            }
        }
        Ok(out)
    }

    /// Writes every daemon's `/metrics` text next to its log in `dest`
    /// (`<log name>.metrics`), for reading a run's counters afterwards.
    pub async fn save_metrics(&self, client: &reqwest::Client, dest: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dest)?;
        for d in self.daemons() {
            let log = d.process().log_path();
            if let Some(name) = log.file_name() {
                let text = d.metrics(client).await?;
                let mut file = name.to_os_string();
                file.push(".metrics");
                std::fs::write(dest.join(file), text)?;
            }
        }
        Ok(())
    }

    /// Copies every daemon's log into `dest` (created if needed).
    pub fn save_logs(&self, dest: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dest)?;
        for d in self.daemons() {
            let log = d.process().log_path();
            if let Some(name) = log.file_name() {
                std::fs::copy(log, dest.join(name))?;
            }
        }
        Ok(())
    }

    /// The temporary directory holding every daemon's data and log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// Writes a fresh random cluster secret (32 bytes from the kernel, hex)
/// to `dir/cluster.secret`.
fn write_secret(dir: &Path) -> std::io::Result<PathBuf> {
    use std::io::Read as _;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    let path = dir.join("cluster.secret");
    std::fs::write(&path, hex::encode(bytes))?;
    Ok(path)
}

/// An address on 127.0.0.1 whose TCP port is free right now, for programs
/// that cannot bind port 0 and report it (another process could take it
/// before the program binds it; on a bench machine that does not happen in
/// practice).
pub fn free_port() -> std::io::Result<std::net::SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.local_addr()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_fraction_counts_everything_but_seed_and_upstream() {
        let mut m = ClusterMetrics::default();
        assert_eq!(m.peer_bytes_fraction(), 0.0);
        m.agent_bytes_by_source.insert("supernode".into(), 10.0);
        assert_eq!(m.peer_bytes_fraction(), 0.0);
        m.agent_bytes_by_source.insert("peer".into(), 30.0);
        assert_eq!(m.peer_bytes_fraction(), 0.75);
    }
}
