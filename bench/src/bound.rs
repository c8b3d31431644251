//! The theoretical minimum distribution times the reports compare against.
//!
//! Kumar & Ross ("Peer-Assisted File Distribution: The Minimum Distribution
//! Time", 2006): a seed with upload `u_s` and `N` peers with upload `u` and
//! download `d` cannot get a file of `F` bytes to every peer faster than
//! `max(F/u_s, F/d, N·F/(u_s + N·u))`, and a scheduler can get arbitrarily
//! close (DESIGN.md, "Scheduling goals"). Without peer-to-peer transfer
//! (every node from the source, as in the `direct` baseline) the source's
//! upload must carry all `N` copies: `max(F/d, N·F/u_s)`.

use crate::units::Rate;

/// The inputs of both bounds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BoundParams {
    /// Number of receiving nodes N.
    pub peers: usize,
    /// File size F in bytes.
    pub file_bytes: u64,
    /// Seed (or upstream) upload u_s.
    pub seed_up: Rate,
    /// Upload of each peer u.
    pub peer_up: Rate,
    /// Download of each peer d.
    pub peer_down: Rate,
}

/// Kumar–Ross lower bound in seconds: `max(F/u_s, F/d, N·F/(u_s + N·u))`.
pub fn kumar_ross(p: &BoundParams) -> f64 {
    let f = p.file_bytes as f64;
    let n = p.peers as f64;
    let us = p.seed_up.bytes_per_sec() as f64;
    let u = p.peer_up.bytes_per_sec() as f64;
    let d = p.peer_down.bytes_per_sec() as f64;
    (f / us).max(f / d).max(n * f / (us + n * u))
}

/// Lower bound in seconds for every node pulling from the source alone:
/// `max(F/d, N·F/u_s)`.
pub fn direct(p: &BoundParams) -> f64 {
    let f = p.file_bytes as f64;
    let n = p.peers as f64;
    let us = p.seed_up.bytes_per_sec() as f64;
    let d = p.peer_down.bytes_per_sec() as f64;
    (f / d).max(n * f / us)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::MIB;

    fn params(n: usize, f_mib: u64, us: u64, u: u64, d: u64) -> BoundParams {
        BoundParams {
            peers: n,
            file_bytes: f_mib * MIB,
            seed_up: Rate::mib_per_sec(us),
            peer_up: Rate::mib_per_sec(u),
            peer_down: Rate::mib_per_sec(d),
        }
    }

    /// The figures in BASELINES.md.
    #[test]
    fn design_scenarios() {
        let smoke = params(10, 64, 16, 4, 4);
        assert_eq!(kumar_ross(&smoke), 16.0);
        assert_eq!(direct(&smoke), 40.0);
        let sym = params(50, 128, 16, 4, 4);
        assert_eq!(kumar_ross(&sym), 32.0);
        assert_eq!(direct(&sym), 400.0);
        let up = params(50, 128, 16, 2, 8);
        assert!((kumar_ross(&up) - 6400.0 / 116.0).abs() < 1e-9);
        assert!((kumar_ross(&up) - 55.17).abs() < 0.01);
        assert_eq!(direct(&up), 400.0);
    }

    #[test]
    fn each_term_can_dominate() {
        // Seed-bound: a slow seed and fast peers.
        assert_eq!(kumar_ross(&params(2, 10, 1, 100, 100)), 10.0);
        // Download-bound.
        assert_eq!(kumar_ross(&params(2, 10, 100, 100, 1)), 10.0);
        // Direct with one peer is whichever link is slower.
        assert_eq!(direct(&params(1, 10, 5, 1, 2)), 5.0);
    }
}
