//! The `bittorrent` baseline (BASELINES.md, "BitTorrent"): a local
//! opentracker, one aria2c seed capped at the seed rate and N aria2c
//! leechers capped at the peer rates, all on loopback.
//!
//! The swarm distributes the image as one multi-file torrent whose files
//! are the image's blobs (manifest, config, layers), each named by its
//! digest: exactly the bytes a container runtime pulls (F, so the same
//! Kumar–Ross bound as Shoal), in one swarm, as a user who wanted the whole
//! image would set BitTorrent up. One torrent per blob would split the
//! nodes into several smaller swarms that compete for the same caps, and
//! put the small manifest and config in swarms of their own; pieces that
//! straddle two files are harmless. A node is done when aria2 runs its
//! `--on-bt-download-complete` hook, i.e. once every piece has passed its
//! SHA-1 check; afterwards the bench also checks every file against its
//! sha256 digest, and a node whose files do not match counts as failed.
//!
//! Preparation (writing the files, mktorrent, tracker, seed, waiting until
//! the tracker's scrape shows the seed) happens before the start line; t0
//! is taken just before the first leecher is spawned. Every process is a
//! [`ChildProcess`]: killed when the run ends, and on Ctrl-C.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use tempfile::TempDir;

use super::{NodeResult, SystemError, SystemKind, SystemOutcome, SystemSpec};
use crate::child::ChildProcess;
use crate::cluster::free_port;
use crate::image::{Blob, PlatformImage, sha256_digest};
use crate::torrent::aria2::{self, Aria2Config};
use crate::torrent::opentracker::OpenTracker;
use crate::torrent::{PieceSize, Tools, TorrentError};

/// Name of the torrent, and of its directory.
const TORRENT_NAME: &str = "shoal-bench-image";

/// Upper bound on the whole swarm: only guards against a hung run.
const SWARM_TIMEOUT: Duration = Duration::from_secs(3600);

/// How often the leechers' completion files are looked at.
const POLL: Duration = Duration::from_millis(100);

/// Bytes of a leecher's log quoted when it fails.
const LOG_TAIL: u64 = 2048;

/// Peers beyond N each aria2c may connect to (BASELINES.md: N + 10).
const EXTRA_PEERS: usize = 10;

/// The report's note on how this baseline is measured.
fn note(piece_size: PieceSize) -> String {
    format!(
        "bittorrent: opentracker, one aria2c seed and N aria2c leechers, one multi-file \
         torrent of the image's blobs with {piece_size} pieces; a node is done when aria2 \
         has verified every piece (its completion hook; sha256 of every file checked \
         afterwards); upstream and seed bytes are the seed's upload as aria2's RPC reports \
         it (uploadLength); peer bytes fraction = 1 - seed upload / (N × image bytes)"
    )
}

/// Measures the BitTorrent baseline.
pub async fn run(spec: &SystemSpec) -> Result<SystemOutcome, SystemError> {
    let prepared = Swarm::prepare(spec).await;
    spec.wait_for_start().await;
    let swarm = prepared?;

    let t0 = Instant::now();
    let t0_wall = SystemTime::now();
    spec.progress.started(t0);
    let mut leechers = Vec::with_capacity(spec.peers);
    for i in 0..spec.peers {
        leechers.push(swarm.spawn_leecher(spec, i)?);
    }
    let respawn = |i: usize| swarm.spawn_leecher(spec, i);
    let mut nodes = wait_for_leechers(&mut leechers, spec, t0, t0_wall, respawn).await;

    let client = crate::http::client(Duration::from_secs(10));
    let seed_bytes = aria2::upload_length(&client, swarm.rpc.0, &swarm.rpc.1)
        .await
        .map_err(|e| TorrentError::NotReady {
            message: format!("read the seed's upload: {e}"),
            log_tail: Some(swarm.seed.log_tail(LOG_TAIL)),
        })?;
    let cpu = leechers
        .iter()
        .map(|l| &l.process)
        .chain([&swarm.seed, swarm.tracker.process()])
        .filter_map(ChildProcess::cpu_time)
        .sum();
    if let Err(e) = save_logs(&leechers, &swarm, &spec.logs_dir) {
        tracing::warn!("could not save logs to {}: {e}", spec.logs_dir.display());
    }
    let dirs: Vec<PathBuf> = leechers.iter().map(|l| l.dir.clone()).collect();
    drop(leechers);
    let Swarm {
        seed,
        tracker,
        dir,
        image,
        ..
    } = swarm;
    drop((seed, tracker));
    let checked = tokio::task::spawn_blocking(move || {
        let errors: Vec<Option<String>> = dirs.iter().map(|d| verify(d, &image)).collect();
        drop(dir);
        errors
    })
    .await
    .map_err(|e| SystemError::Runtime(format!("verify the leechers' files: {e}")))?;
    for (node, error) in nodes.iter_mut().zip(checked) {
        if node.error.is_none() && error.is_some() {
            node.error = error;
            node.bytes = 0;
        }
    }

    let total = (spec.peers as u64 * spec.image.pull_bytes()).max(1) as f64;
    Ok(SystemOutcome {
        kind: SystemKind::Bittorrent,
        nodes,
        upstream_bytes: seed_bytes,
        seed_bytes,
        peer_bytes_fraction: (1.0 - seed_bytes as f64 / total).max(0.0),
        cpu,
        notes: vec![note(spec.bt_piece_size)],
    })
}

/// Tracker and seed, ready for leechers. Fields drop in order: processes
/// first, then the directory.
struct Swarm {
    seed: ChildProcess,
    tracker: OpenTracker,
    tools: Tools,
    torrent: PathBuf,
    image: std::sync::Arc<PlatformImage>,
    /// The seed's JSON-RPC port and secret.
    rpc: (u16, String),
    dir: TempDir,
}

impl Swarm {
    /// Writes the image's blobs as files, makes the torrent, starts the
    /// tracker and the seed, and waits until the tracker lists the seed.
    async fn prepare(spec: &SystemSpec) -> Result<Swarm, SystemError> {
        let tools = Tools::find().map_err(TorrentError::from)?;
        let dir = tempfile::Builder::new()
            .prefix("shoal-bench-bt-")
            .tempdir()
            .map_err(TorrentError::io("create a temporary directory"))?;
        let root = dir.path();
        let seed_dir = root.join("seed");
        write_content(&seed_dir.join(TORRENT_NAME), &spec.image)?;

        let tracker_addr = free_port().map_err(TorrentError::io("pick a tracker port"))?;
        let torrent = root.join(format!("{TORRENT_NAME}.torrent"));
        tools
            .make_torrent(
                &seed_dir.join(TORRENT_NAME),
                &OpenTracker::announce_url(tracker_addr),
                spec.bt_piece_size,
                &torrent,
            )
            .await?;
        let info_hash = tools.info_hash(&torrent).await?;
        let tracker =
            OpenTracker::start(&tools, &root.join("tracker"), &info_hash, tracker_addr).await?;

        let rpc_port = free_port()
            .map_err(TorrentError::io("pick the seed's RPC port"))?
            .port();
        let secret = aria2::rpc_secret().map_err(TorrentError::io("make an RPC secret"))?;
        let listen = free_port().map_err(TorrentError::io("pick the seed's port"))?;
        let cmd = aria2::command(
            &tools,
            &Aria2Config {
                torrent: torrent.clone(),
                dir: seed_dir.clone(),
                listen,
                max_peers: spec.peers + EXTRA_PEERS,
                upload: spec.seed_up,
                download: None,
                seed: true,
                hook: None,
                rpc: Some((rpc_port, secret.clone())),
            },
        );
        let mut seed = ChildProcess::spawn("seed", cmd, &root.join("seed.log"))
            .map_err(TorrentError::io("start the aria2c seed"))?;
        if let Err(e) = tracker.wait_for_seeds(&info_hash, 1).await {
            let exited = seed.try_exited();
            return Err(TorrentError::NotReady {
                message: format!("{e} (seed exited: {exited:?})"),
                log_tail: Some(seed.log_tail(LOG_TAIL)),
            }
            .into());
        }
        Ok(Swarm {
            seed,
            tracker,
            tools,
            torrent,
            image: spec.image.clone(),
            rpc: (rpc_port, secret),
            dir,
        })
    }

    /// Starts leecher `i` in a directory of its own.
    fn spawn_leecher(&self, spec: &SystemSpec, i: usize) -> Result<Leecher, TorrentError> {
        let dir = self.dir.path().join(format!("leecher-{i:03}"));
        std::fs::create_dir_all(&dir).map_err(TorrentError::io(dir.display()))?;
        let hook =
            aria2::write_hook(&dir).map_err(TorrentError::io("write the completion hook"))?;
        let listen = free_port().map_err(TorrentError::io("pick a leecher port"))?;
        let cmd = aria2::command(
            &self.tools,
            &Aria2Config {
                torrent: self.torrent.clone(),
                dir: dir.clone(),
                listen,
                max_peers: spec.peers + EXTRA_PEERS,
                upload: spec.peer_up,
                download: Some(spec.peer_down),
                seed: false,
                hook: Some(hook),
                rpc: None,
            },
        );
        let label = format!("leecher-{i:03}");
        let process = ChildProcess::spawn(&label, cmd, &dir.join(format!("{label}.log")))
            .map_err(TorrentError::io(format!("start aria2c {label}")))?;
        Ok(Leecher {
            process,
            dir,
            bind_retries: 0,
        })
    }
}

/// One leecher process and its download directory.
struct Leecher {
    process: ChildProcess,
    dir: PathBuf,
    /// Restarts after its listen port was taken.
    bind_retries: u32,
}

/// Restarts of one leecher whose listen port was taken.
const BIND_RETRIES: u32 = 3;
/// What aria2c logs when its listen port is taken.
const BIND_FAILED: &str = "failed to bind";

/// Waits until every leecher has run its completion hook (or exited, or
/// the swarm timed out); each node's time counts from `t0_wall`, the wall
/// clock at t0, since the hook stamps wall-clock time.
///
/// A leecher that exits because its listen port was taken between the
/// bench picking it and aria2c binding it (aria2c cannot bind port 0) is
/// started again on another port with `respawn`, at most
/// [`BIND_RETRIES`] times.
async fn wait_for_leechers(
    leechers: &mut [Leecher],
    spec: &SystemSpec,
    t0: Instant,
    t0_wall: SystemTime,
    respawn: impl Fn(usize) -> Result<Leecher, TorrentError>,
) -> Vec<NodeResult> {
    let image_bytes = spec.image.pull_bytes();
    let mut nodes: Vec<Option<NodeResult>> = vec![None; leechers.len()];
    let since_t0 = |at: SystemTime| at.duration_since(t0_wall).unwrap_or_default().as_secs_f64();
    while nodes.iter().any(Option::is_none) {
        let timed_out = t0.elapsed() > SWARM_TIMEOUT;
        for (i, (leecher, node)) in leechers.iter_mut().zip(nodes.iter_mut()).enumerate() {
            if node.is_some() {
                continue;
            }
            if let Some(at) = aria2::completed_at(&leecher.dir) {
                spec.progress
                    .bytes_counter()
                    .fetch_add(image_bytes, std::sync::atomic::Ordering::Relaxed);
                spec.progress.node_done(true);
                *node = Some(NodeResult {
                    finished_s: since_t0(at),
                    bytes: image_bytes,
                    error: None,
                });
                continue;
            }
            let exited = leecher.process.try_exited();
            if exited.is_some()
                && leecher.bind_retries < BIND_RETRIES
                && leecher.process.log_tail(LOG_TAIL).contains(BIND_FAILED)
            {
                let retries = leecher.bind_retries + 1;
                match respawn(i) {
                    Ok(mut fresh) => {
                        tracing::info!(leecher = i, "listen port was taken; restarted aria2c");
                        fresh.bind_retries = retries;
                        *leecher = fresh;
                        continue;
                    }
                    Err(e) => tracing::warn!(leecher = i, "cannot restart aria2c: {e}"),
                }
            }
            let failure = match exited {
                Some(status) => Some(format!(
                    "aria2c exited before completing: {status}\n{}",
                    leecher.process.log_tail(LOG_TAIL)
                )),
                None if timed_out => Some(format!("not complete after {SWARM_TIMEOUT:?}")),
                None => None,
            };
            if let Some(error) = failure {
                spec.progress.node_done(false);
                *node = Some(NodeResult {
                    finished_s: t0.elapsed().as_secs_f64(),
                    bytes: 0,
                    error: Some(format!("{}: {error}", leecher.process.name())),
                });
            }
        }
        tokio::time::sleep(POLL).await;
    }
    nodes.into_iter().flatten().collect()
}

/// File name of a blob in the torrent: its digest, `sha256-<hex>`.
fn file_name(blob: &Blob) -> String {
    blob.digest.replace(':', "-")
}

/// Every blob the runtime pulls: the manifest, the config, the layers.
fn pulled_blobs(image: &PlatformImage) -> impl Iterator<Item = &Blob> {
    std::iter::once(&image.manifest).chain(image.blobs())
}

/// Writes the image's blobs into `dir` (created), one file each.
fn write_content(dir: &Path, image: &PlatformImage) -> Result<(), TorrentError> {
    std::fs::create_dir_all(dir).map_err(TorrentError::io(dir.display()))?;
    for blob in pulled_blobs(image) {
        let path = dir.join(file_name(blob));
        std::fs::write(&path, &blob.bytes).map_err(TorrentError::io(path.display()))?;
    }
    Ok(())
}

/// Checks the files a leecher downloaded into `dir` against the image's
/// digests; the first problem, if any.
fn verify(dir: &Path, image: &PlatformImage) -> Option<String> {
    for blob in pulled_blobs(image) {
        let path = dir.join(TORRENT_NAME).join(file_name(blob));
        let got = match std::fs::read(&path) {
            Ok(bytes) => sha256_digest(&bytes),
            Err(e) => return Some(format!("{}: {e}", path.display())),
        };
        if got != blob.digest {
            return Some(format!(
                "{}: digest {got}, want {}",
                path.display(),
                blob.digest
            ));
        }
    }
    None
}

/// Copies every process's log into `dest`.
fn save_logs(leechers: &[Leecher], swarm: &Swarm, dest: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dest)?;
    let logs = leechers
        .iter()
        .map(|l| &l.process)
        .chain([&swarm.seed, swarm.tracker.process()])
        .map(ChildProcess::log_path);
    for log in logs {
        if let Some(name) = log.file_name() {
            std::fs::copy(log, dest.join(name))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::synthetic;

    #[test]
    fn verification_catches_a_changed_file() {
        let image = synthetic(3, 10_000, 2);
        let dir = tempfile::tempdir().unwrap();
        assert!(verify(dir.path(), &image).is_some(), "missing files pass");
        write_content(&dir.path().join(TORRENT_NAME), &image).unwrap();
        assert_eq!(verify(dir.path(), &image), None);
        let layer = dir
            .path()
            .join(TORRENT_NAME)
            .join(file_name(&image.layers[1]));
        let mut bytes = std::fs::read(&layer).unwrap();
        bytes[7] ^= 1;
        std::fs::write(&layer, bytes).unwrap();
        let err = verify(dir.path(), &image).expect("a flipped bit is caught");
        assert!(err.contains(&image.layers[1].digest), "{err}");
    }
}
