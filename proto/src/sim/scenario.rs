//! What to simulate: the swarm's size, links, blob, faults, and the
//! configuration of the real state machines under test.

use std::time::Duration;

use crate::swarm::{DownloadConfig, SuperSeedConfig, UploadConfig};
use crate::tracker_state::TrackerConfig;

/// Bytes in a MiB; the scenarios' sizes and rates are in MiB and MiB/s.
pub const MIB: f64 = 1_048_576.0;

/// How a peer leaves the swarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leave {
    /// It closes its connections; the others notice after one latency.
    Close,
    /// It goes silent; the others notice only through request timeouts.
    Vanish,
}

/// One simulated swarm: a seed and `peers` agents pulling one blob.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Name for reports.
    pub name: String,
    /// Number of downloading peers.
    pub peers: usize,
    /// Blob size in bytes.
    pub file_bytes: u64,
    /// Piece size in bytes.
    pub piece_size: u32,
    /// Seed upload in bytes per second.
    pub seed_up: f64,
    /// Peer upload in bytes per second.
    pub peer_up: f64,
    /// Peer download in bytes per second.
    pub peer_down: f64,
    /// One-way latency of every link (and half the tracker round trip).
    pub latency: Duration,
    /// Peers start at random times in `0..start_spread`.
    pub start_spread: Duration,
    /// Seed for every random choice of the world and the state machines.
    pub rng_seed: u64,
    /// Each peer's download scheduler.
    pub download: DownloadConfig,
    /// Each peer's uploader.
    pub upload: UploadConfig,
    /// The seed's uploader.
    pub seed_upload: UploadConfig,
    /// The seed's policy.
    pub super_seed: SuperSeedConfig,
    /// The tracker.
    pub tracker: TrackerConfig,
    /// Connections a peer accepts or opens at most.
    pub max_connections: usize,
    /// Connections the seed accepts at most: a supernode serves the whole
    /// swarm, and a seed reachable by only some peers starves the rest.
    pub seed_max_connections: usize,
    /// Peers (indices `0..peers`) whose uploads fail verification.
    pub bad_peers: Vec<usize>,
    /// Peers that leave, when, and how.
    pub leaves: Vec<(usize, Duration, Leave)>,
    /// Give up when the virtual clock passes this.
    pub time_limit: Duration,
    /// Rates are recomputed at most once per this much virtual time (0:
    /// at every change). A transfer then starts up to this much late and a
    /// finished one leaves its share idle as long; 1 ms costs under 1% of
    /// completion time in the DESIGN.md scenarios and saves a third of the
    /// simulator's work.
    pub rate_quantum: Duration,
    /// How often link usage is sampled into [`Report::samples`](super::Report::samples).
    pub sample_every: Duration,
}

impl Scenario {
    /// A scenario with the given sizes (MiB) and rates (MiB/s), a piece
    /// size by [`piece_size_for`](crate::piece_size_for), 1 ms links and
    /// default configurations.
    pub fn new(name: &str, peers: usize, file_mib: f64, seed_up: f64, up: f64, down: f64) -> Self {
        let file_bytes = (file_mib * MIB) as u64;
        Scenario {
            name: name.to_string(),
            peers,
            file_bytes,
            piece_size: crate::piece_size_for(file_bytes),
            seed_up: seed_up * MIB,
            peer_up: up * MIB,
            peer_down: down * MIB,
            latency: Duration::from_millis(1),
            start_spread: Duration::from_millis(10),
            rng_seed: 1,
            download: DownloadConfig {
                download_rate: Some(down * MIB),
                ..DownloadConfig::default()
            },
            upload: UploadConfig::default(),
            seed_upload: UploadConfig {
                max_active: 16,
                max_active_spare: 32,
                ..UploadConfig::default()
            },
            super_seed: SuperSeedConfig::default(),
            tracker: TrackerConfig::default(),
            max_connections: 64,
            seed_max_connections: 4096,
            bad_peers: Vec::new(),
            leaves: Vec::new(),
            time_limit: Duration::from_secs(3600),
            sample_every: Duration::from_secs(1),
            rate_quantum: Duration::from_millis(1),
        }
    }

    /// DESIGN.md's `smoke`: 10 peers, 64 MiB, 16/4/4 MiB/s.
    pub fn smoke() -> Self {
        Self::new("smoke", 10, 64.0, 16.0, 4.0, 4.0)
    }

    /// DESIGN.md's `fanout-sym`: 50 peers, 128 MiB, 16/4/4 MiB/s.
    pub fn fanout_sym() -> Self {
        Self::new("fanout-sym", 50, 128.0, 16.0, 4.0, 4.0)
    }

    /// DESIGN.md's `fanout-upbound`: 50 peers, 128 MiB, 16/2/8 MiB/s.
    pub fn fanout_upbound() -> Self {
        Self::new("fanout-upbound", 50, 128.0, 16.0, 2.0, 8.0)
    }

    /// The same scenario with another piece size.
    pub fn with_piece_size(mut self, bytes: u32) -> Self {
        self.piece_size = bytes;
        self
    }

    /// Number of pieces.
    pub fn piece_count(&self) -> u32 {
        self.file_bytes.div_ceil(u64::from(self.piece_size.max(1))) as u32
    }

    /// The Kumar–Ross lower bound on the last completion, in seconds:
    /// max(F/u_s, F/d, N·F/(u_s + N·u)).
    pub fn bound_secs(&self) -> f64 {
        let f = self.file_bytes as f64;
        let n = self.peers as f64;
        let seed = f / self.seed_up;
        let down = f / self.peer_down;
        let total = n * f / (self.seed_up + n * self.peer_up);
        seed.max(down).max(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_match_design() {
        assert!((Scenario::smoke().bound_secs() - 16.0).abs() < 1e-9);
        assert!((Scenario::fanout_sym().bound_secs() - 32.0).abs() < 1e-9);
        let upbound = Scenario::fanout_upbound().bound_secs();
        assert!((upbound - 55.17).abs() < 0.01, "{upbound}");
    }
}
