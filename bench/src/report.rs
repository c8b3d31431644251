//! `report.json` and the stdout table of a `run`.
//!
//! Shape (issue 4): `{"scenario", "peers", "image_bytes", "bound_s",
//! "systems": {"shoal": {…}, "direct": {…}, "bittorrent": {…}}}` (systems
//! as run) plus the run's parameters,
//! notes and machine. Each system has `p50_s`, `p90_s`, `max_s` (over the
//! nodes that completed), `bound_s` (Kumar–Ross for peer-to-peer systems,
//! the direct bound for `direct`), `ratio_to_bound` (`max_s / bound_s`),
//! `upstream_bytes_ratio` (bytes the upstream sent / image bytes),
//! `seed_bytes_ratio` (copies of the image the seed sent),
//! `peer_bytes_fraction`, `cpu_s`, `cpu_per_wall` (CPU seconds per second
//! of `max_s`) and `per_node_s` (every node's completion time, node order,
//! `null` for a failed pull).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::stats::Summary;
use crate::systems::{SystemKind, SystemOutcome};
use crate::units::mib;

/// The whole report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Scenario name.
    pub scenario: String,
    /// Number of nodes N.
    pub peers: usize,
    /// Bytes each node downloads: manifest, config and layers (F).
    pub image_bytes: u64,
    /// Number of layers.
    pub layers: usize,
    /// Kumar–Ross bound in seconds.
    pub bound_s: f64,
    /// Bound of a direct pull in seconds.
    pub direct_bound_s: f64,
    /// The caps, MiB/s.
    pub rates_mib_s: Rates,
    /// `sequential` or `concurrent`.
    pub schedule: String,
    /// Limitations and warnings worth reading before the numbers.
    pub notes: Vec<String>,
    /// Where it ran.
    pub machine: Machine,
    /// Per system, keyed by name.
    pub systems: BTreeMap<String, SystemReport>,
}

/// The caps of a run in MiB/s.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rates {
    /// Seed upload u_s.
    pub seed_up: f64,
    /// Peer upload u.
    pub peer_up: f64,
    /// Peer download d.
    pub peer_down: f64,
}

/// The machine.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// Logical CPUs available.
    pub nproc: usize,
    /// `model name` from /proc/cpuinfo.
    pub cpu_model: String,
}

impl Machine {
    /// This machine.
    pub fn detect() -> Machine {
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|text| {
                text.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        Machine {
            nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model,
        }
    }
}

/// One system's figures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SystemReport {
    /// Median completion time (completed nodes).
    pub p50_s: Option<f64>,
    /// 90th percentile.
    pub p90_s: Option<f64>,
    /// Slowest node.
    pub max_s: Option<f64>,
    /// The bound this system is held to.
    pub bound_s: f64,
    /// `max_s / bound_s`.
    pub ratio_to_bound: Option<f64>,
    /// Upstream bytes sent / image bytes.
    pub upstream_bytes_ratio: f64,
    /// Bytes the seed sent to the nodes / image bytes: copies of the image
    /// the seed uploaded (BASELINES.md's "seed copies sent").
    pub seed_bytes_ratio: f64,
    /// Fraction of node bytes from other peers.
    pub peer_bytes_fraction: f64,
    /// CPU seconds of the system's processes and bench threads.
    pub cpu_s: f64,
    /// `cpu_s / max_s`: near the core count means the CPU, not the caps,
    /// limited the run.
    pub cpu_per_wall: Option<f64>,
    /// Pulls that completed with every digest verified.
    pub verified_pulls: usize,
    /// Pulls that failed.
    pub failed_pulls: usize,
    /// The failures' messages (first few).
    pub errors: Vec<String>,
    /// Every node's completion time in seconds from t0, node order; `null`
    /// for a node whose pull failed.
    pub per_node_s: Vec<Option<f64>>,
}

/// Failure messages kept per system.
const MAX_ERRORS: usize = 5;

impl SystemReport {
    /// Figures of `outcome`, held to `bound_s`, for an image of
    /// `image_bytes`.
    pub fn new(outcome: &SystemOutcome, bound_s: f64, image_bytes: u64) -> SystemReport {
        let ok: Vec<f64> = outcome
            .nodes
            .iter()
            .filter(|n| n.error.is_none())
            .map(|n| n.finished_s)
            .collect();
        let summary = Summary::of(&ok);
        let max = summary.map(|s| s.max);
        let cpu_s = outcome.cpu.as_secs_f64();
        SystemReport {
            p50_s: summary.map(|s| s.p50),
            p90_s: summary.map(|s| s.p90),
            max_s: max,
            bound_s,
            ratio_to_bound: max.map(|m| m / bound_s),
            upstream_bytes_ratio: outcome.upstream_bytes as f64 / image_bytes.max(1) as f64,
            seed_bytes_ratio: outcome.seed_bytes as f64 / image_bytes.max(1) as f64,
            peer_bytes_fraction: outcome.peer_bytes_fraction,
            cpu_s,
            cpu_per_wall: max.filter(|m| *m > 0.0).map(|m| cpu_s / m),
            verified_pulls: ok.len(),
            failed_pulls: outcome.nodes.len() - ok.len(),
            errors: outcome
                .nodes
                .iter()
                .filter_map(|n| n.error.clone())
                .take(MAX_ERRORS)
                .collect(),
            per_node_s: outcome
                .nodes
                .iter()
                .map(|n| n.error.is_none().then_some(n.finished_s))
                .collect(),
        }
    }
}

/// Systems in the order tables and plots show them.
pub fn ordered(report: &Report) -> Vec<(&str, &SystemReport)> {
    let order = [
        SystemKind::Shoal,
        SystemKind::Direct,
        SystemKind::Bittorrent,
    ]
    .map(SystemKind::name);
    let mut out: Vec<(&str, &SystemReport)> = report
        .systems
        .iter()
        .map(|(k, v)| (k.as_str(), v))
        .collect();
    out.sort_by_key(|(k, _)| order.iter().position(|o| o == k).unwrap_or(usize::MAX));
    out
}

/// The table printed on stdout.
pub fn render_table(report: &Report) -> String {
    let r = &report.rates_mib_s;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "scenario {} · {} nodes · image {:.1} MiB in {} layers · seed up {} · peer up {} · peer down {} MiB/s",
        report.scenario,
        report.peers,
        mib(report.image_bytes),
        report.layers,
        trim(r.seed_up),
        trim(r.peer_up),
        trim(r.peer_down),
    );
    let _ = writeln!(
        out,
        "Kumar–Ross bound {:.1} s · direct bound {:.1} s · systems run {}\n",
        report.bound_s,
        report.direct_bound_s,
        if report.schedule == "concurrent" {
            "concurrently"
        } else {
            "one after another"
        }
    );
    let _ = writeln!(
        out,
        "{:<10} {:>7} {:>7} {:>7} {:>8} {:>10} {:>10} {:>7} {:>11} {:>7} {:>9} {:>7}",
        "system",
        "p50 s",
        "p90 s",
        "max s",
        "bound s",
        "max/bound",
        "upstream×",
        "seed×",
        "peer bytes",
        "cpu s",
        "cpu/wall",
        "ok"
    );
    for (name, s) in ordered(report) {
        let _ = writeln!(
            out,
            "{:<10} {:>7} {:>7} {:>7} {:>8.1} {:>10} {:>10.2} {:>7.2} {:>11.2} {:>7.1} {:>9} {:>7}",
            name,
            opt(s.p50_s, 1),
            opt(s.p90_s, 1),
            opt(s.max_s, 1),
            s.bound_s,
            opt(s.ratio_to_bound, 2),
            s.upstream_bytes_ratio,
            s.seed_bytes_ratio,
            s.peer_bytes_fraction,
            s.cpu_s,
            opt(s.cpu_per_wall, 2),
            format!("{}/{}", s.verified_pulls, s.verified_pulls + s.failed_pulls),
        );
    }
    for note in &report.notes {
        let _ = write!(out, "\nnote: {note}");
    }
    for (name, s) in ordered(report) {
        for e in &s.errors {
            let _ = write!(out, "\n{name} error: {e}");
        }
    }
    out.push('\n');
    out
}

fn opt(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.decimals$}"))
}

fn trim(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests;
