//! What a simulation run measured.

use std::fmt;

use crate::swarm::DownloadStats;

/// Link usage at one instant, sampled once per simulated second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Seconds since the start.
    pub t: f64,
    /// Seed upload in use, bytes per second.
    pub seed_up: f64,
    /// Upload of all peers in use, bytes per second.
    pub peers_up: f64,
    /// Download of all peers in use, bytes per second.
    pub peers_down: f64,
    /// Peers done by then.
    pub done: usize,
}

/// The outcome of one [`run`](super::run).
#[derive(Debug, Clone)]
pub struct Report {
    /// Scenario name.
    pub scenario: String,
    /// Number of peers.
    pub peers: usize,
    /// Blob size in bytes.
    pub file_bytes: u64,
    /// Piece size in bytes.
    pub piece_size: u32,
    /// The Kumar–Ross bound in seconds.
    pub bound_secs: f64,
    /// Per peer, when its download completed (seconds), if it did.
    pub completion: Vec<Option<f64>>,
    /// Per peer, when its in-order client stream got its first piece.
    pub first_byte: Vec<Option<f64>>,
    /// Per peer, when its in-order client stream had half the blob.
    pub half_stream: Vec<Option<f64>>,
    /// Pieces in the order the seed started uploading them (aborted
    /// uploads included).
    pub seed_order: Vec<u32>,
    /// Bytes the seed uploaded (partial pieces included).
    pub seed_bytes: f64,
    /// Bytes all peers uploaded.
    pub peer_upload_bytes: f64,
    /// Download counters summed over the peers.
    pub download: DownloadStats,
    /// Link usage over time.
    pub samples: Vec<Sample>,
    /// Events processed.
    pub events: u64,
    /// Times the fluid rates were recomputed.
    pub reallocations: u64,
    /// Virtual time at the end, in seconds.
    pub end_secs: f64,
}

fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    Some(sorted[i])
}

impl Report {
    /// Completion times of the peers that finished, ascending.
    pub fn finished(&self) -> Vec<f64> {
        let mut t: Vec<f64> = self.completion.iter().flatten().copied().collect();
        t.sort_by(f64::total_cmp);
        t
    }

    /// Number of peers that finished.
    pub fn finished_count(&self) -> usize {
        self.completion.iter().flatten().count()
    }

    /// Median completion time of the peers that finished.
    pub fn p50(&self) -> Option<f64> {
        quantile(&self.finished(), 0.5)
    }

    /// 90th percentile completion time.
    pub fn p90(&self) -> Option<f64> {
        quantile(&self.finished(), 0.9)
    }

    /// Completion time of the slowest peer that finished.
    pub fn max(&self) -> Option<f64> {
        self.finished().last().copied()
    }

    /// Slowest completion divided by the bound.
    pub fn ratio(&self) -> Option<f64> {
        self.max().map(|m| m / self.bound_secs)
    }

    /// Bytes the seed sent, in copies of the blob.
    pub fn seed_copies(&self) -> f64 {
        self.seed_bytes / self.file_bytes as f64
    }

    /// How many of the seed's first uploads were distinct pieces before
    /// the first repeat (the piece count if no piece was sent twice before
    /// all were sent once).
    pub fn seed_distinct_prefix(&self) -> usize {
        let mut seen = std::collections::BTreeSet::new();
        self.seed_order
            .iter()
            .take_while(|&&p| seen.insert(p))
            .count()
    }

    /// Median time to the first in-order piece.
    pub fn first_byte_p50(&self) -> Option<f64> {
        let mut t: Vec<f64> = self.first_byte.iter().flatten().copied().collect();
        t.sort_by(f64::total_cmp);
        quantile(&t, 0.5)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.2}"));
        write!(
            f,
            "{} N={} piece={}KiB bound={:.2}s p50={} p90={} max={} ratio={} seed_copies={:.3} first_byte_p50={} done={}/{} dup={} busy={} redirects={} timeouts={} events={} reallocations={}",
            self.scenario,
            self.peers,
            self.piece_size / 1024,
            self.bound_secs,
            s(self.p50()),
            s(self.p90()),
            s(self.max()),
            s(self.ratio()),
            self.seed_copies(),
            s(self.first_byte_p50()),
            self.finished_count(),
            self.peers,
            self.download.duplicates,
            self.download.busy,
            self.download.redirects,
            self.download.timeouts,
            self.events,
            self.reallocations,
        )
    }
}
