//! Simulated swarms, driving the real state machines through `shoal_proto::sim`.
//!
//! Every test is deterministic (a fixed `rng_seed`, a virtual clock, no
//! sleeps). The DESIGN.md scenarios are checked against the Kumar–Ross
//! bound; the others check behaviour under faults and for streaming.
//! In a debug build the two 50-peer scenarios take the longest (each some
//! seconds); everything else is quick.

mod faults;
mod scenarios;

use shoal_proto::sim::{self, Report, Scenario};

/// Runs `sc`, prints its summary (shown with `--nocapture`), returns it.
fn run(sc: &Scenario) -> Report {
    let report = sim::run(sc);
    println!("{report}");
    report
}

/// Asserts that every peer not in `except` finished, and returns the
/// slowest of them.
fn all_finished(r: &Report, except: &[usize]) -> f64 {
    let mut slowest: f64 = 0.0;
    for (i, t) in r.completion.iter().enumerate() {
        if except.contains(&i) {
            continue;
        }
        let t = t.unwrap_or_else(|| panic!("peer {i} did not finish: {r}"));
        slowest = slowest.max(t);
    }
    slowest
}
