//! The distribution systems a run compares, each measured the same way:
//! prepare (upstream, daemons), wait at the common start line, take t0,
//! start N pulls at once ([`fleet`]), record every node's completion time,
//! then read byte counters and CPU time before tearing down.
//!
//! - [`shoal`]: N agents, one supernode and a tracker as processes; node i
//!   pulls through agent i; the upstream is the embedded registry, uncapped
//!   (the seed is the supernode).
//! - [`direct`]: N clients pull straight from the embedded registry, whose
//!   total upload is capped at the seed rate.
//! - [`bittorrent`]: opentracker, one aria2c seed and N aria2c leechers
//!   sharing the image's blobs as one torrent.
//!
//! [`source`] is the counted upstream of `shoal` and `direct`: the embedded
//! registry, or a proxy in front of `--upstream URL`.
//!
//! Each system runs on a tokio runtime of its own in a thread of its own
//! ([`run_isolated`]), so that the bench's own CPU time (pull clients,
//! embedded upstream) can be charged to the system that used it, also when
//! systems run at the same time.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::Barrier;

use crate::daemon::DaemonError;
use crate::image::PlatformImage;
use crate::procstat::thread_cpu;
use crate::progress::Progress;
use crate::torrent::{PieceSize, TorrentError};
use crate::units::Rate;

pub mod bittorrent;
pub mod direct;
pub mod fleet;
pub mod shoal;
pub mod source;

/// Repository of the benchmark image on the upstream.
pub const REPO: &str = "library/shoal-bench";
/// Its tag.
pub const TAG: &str = "bench";
/// The name the agents know the upstream by.
pub const UPSTREAM_NAME: &str = "docker.io";

/// Which system.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum SystemKind {
    /// Shoal: agents, supernode, tracker.
    Shoal,
    /// Every node straight from the capped upstream.
    Direct,
    /// aria2c seed and leechers with an opentracker.
    Bittorrent,
}

impl SystemKind {
    /// The key in report.json.
    pub fn name(self) -> &'static str {
        match self {
            SystemKind::Shoal => "shoal",
            SystemKind::Direct => "direct",
            SystemKind::Bittorrent => "bittorrent",
        }
    }
}

/// What one system run needs.
#[derive(Clone, Debug)]
pub struct SystemSpec {
    /// Which system.
    pub kind: SystemKind,
    /// The image to distribute.
    pub image: Arc<PlatformImage>,
    /// Number of nodes.
    pub peers: usize,
    /// Seed (or capped upstream) upload.
    pub seed_up: Rate,
    /// Per-node upload.
    pub peer_up: Rate,
    /// Per-node download, enforced by each pull client.
    pub peer_down: Rate,
    /// Where the daemon binaries are.
    pub bin_dir: PathBuf,
    /// Where to copy daemon logs.
    pub logs_dir: PathBuf,
    /// Progress shown while pulling.
    pub progress: Arc<Progress>,
    /// Systems that run together wait here until all are prepared.
    pub start_line: Option<Arc<Barrier>>,
    /// Shoal only: run the daemons' peer-to-peer path.
    pub p2p: bool,
    /// BitTorrent only: the torrent's piece size.
    pub bt_piece_size: PieceSize,
    /// A real registry to use instead of the embedded upstream (the image
    /// has been pushed to it as [`REPO`]:[`TAG`]).
    pub upstream_url: Option<String>,
}

impl SystemSpec {
    async fn wait_for_start(&self) {
        if let Some(barrier) = &self.start_line {
            barrier.wait().await;
        }
    }
}

/// One node's pull.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeResult {
    /// Seconds from t0 to the end of its pull (verified), or to its failure.
    pub finished_s: f64,
    /// Body bytes received.
    pub bytes: u64,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

/// What a system run measured.
#[derive(Clone, Debug, PartialEq)]
pub struct SystemOutcome {
    /// Which system.
    pub kind: SystemKind,
    /// Every node, in node order.
    pub nodes: Vec<NodeResult>,
    /// Body bytes the upstream sent (manifests and blobs).
    pub upstream_bytes: u64,
    /// Body bytes the seed sent to the nodes (Shoal: what the agents got
    /// from the supernode; direct: the upstream's bytes).
    pub seed_bytes: u64,
    /// Fraction of the nodes' bytes that came from other peers.
    pub peer_bytes_fraction: f64,
    /// CPU time of the system's processes and of the bench threads that
    /// served and pulled for it.
    pub cpu: Duration,
    /// Limitations of this measurement, for the report.
    pub notes: Vec<String>,
}

/// Why a system could not be measured.
#[derive(Debug, thiserror::Error)]
pub enum SystemError {
    /// The embedded upstream could not listen.
    #[error("embedded upstream: {0}")]
    Upstream(std::io::Error),
    /// A daemon did not start or answer.
    #[error(transparent)]
    Daemon(#[from] DaemonError),
    /// The BitTorrent tools failed or are missing.
    #[error(transparent)]
    Torrent(#[from] TorrentError),
    /// The system's runtime could not be built, or its thread panicked.
    #[error("{0}")]
    Runtime(String),
}

/// Runs `spec` on a runtime of its own in a new thread; join the handle for
/// the outcome.
pub fn run_isolated(spec: SystemSpec) -> JoinHandle<Result<SystemOutcome, SystemError>> {
    let name = format!("bench-{}", spec.kind.name());
    std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
            let worker_cpu = Arc::new(AtomicU64::new(0));
            let on_stop = worker_cpu.clone();
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name(name)
                .enable_all()
                .on_thread_stop(move || {
                    let nanos = thread_cpu().as_nanos() as u64;
                    on_stop.fetch_add(nanos, Ordering::Relaxed);
                })
                .build()
                .map_err(|e| SystemError::Runtime(format!("build runtime: {e}")))?;
            let result = rt.block_on(async {
                let r = match spec.kind {
                    SystemKind::Shoal => shoal::run(&spec).await,
                    SystemKind::Direct => direct::run(&spec).await,
                    SystemKind::Bittorrent => bittorrent::run(&spec).await,
                };
                spec.progress.finish();
                r
            });
            // Waits for the workers to stop, which adds their CPU time.
            rt.shutdown_timeout(Duration::from_secs(10));
            let mut outcome = result?;
            outcome.cpu += Duration::from_nanos(worker_cpu.load(Ordering::Relaxed)) + thread_cpu();
            Ok(outcome)
        })
        .expect("spawn system thread")
}

/// Joins a [`run_isolated`] thread, turning a panic into an error.
pub fn join(
    handle: JoinHandle<Result<SystemOutcome, SystemError>>,
) -> Result<SystemOutcome, SystemError> {
    handle
        .join()
        .unwrap_or_else(|_| Err(SystemError::Runtime("system thread panicked".into())))
}
