//! A deterministic simulator of one swarm, driving the real state machines.
//!
//! DESIGN.md asks for completion times close to the Kumar–Ross bound and
//! for the simulator to run "the very same code" as the daemons. So this
//! module contains no scheduling logic: every peer runs a real
//! [`Download`](crate::swarm::Download) and [`Uploader`](crate::swarm::Uploader),
//! the seed a real [`Seeder`](crate::swarm::Seeder), the tracker a real
//! [`TrackerState`](crate::tracker_state::TrackerState); the world only
//! delivers their messages after a link latency and moves piece bytes
//! through a fluid model of each node's upload and download capacity,
//! shared max-min fairly among running transfers. Everything random is
//! drawn from [`Scenario::rng_seed`], so a run is reproducible bit for bit.
//!
//! `shoal-bench` can use it for swarms too large for one machine. Cost:
//! every change of the running transfers recomputes all rates (progressive
//! filling, O(T log L) for T transfers over L links, at most once per
//! [`Scenario::rate_quantum`]); the 50-peer DESIGN.md scenarios take about
//! a second in a release build, 200 peers about ten. Thousands of nodes
//! would need a local rate model (each transfer at the lesser of its two
//! ends' fair shares, updated only around the change); the state machines
//! themselves are cheap (a full scan of the missing pieces only for a peer
//! with news).

mod fluid;
mod report;
mod scenario;
mod world;

pub use report::{Report, Sample};
pub use scenario::{Leave, MIB, Scenario};

use crate::swarm::DownloadStats;

/// Runs `scenario` to completion (or its time limit).
pub fn run(scenario: &Scenario) -> Report {
    let mut world = world::World::new(scenario);
    world.run();
    let peers = &world.nodes[1..];
    let mut download = DownloadStats::default();
    for d in peers.iter().filter_map(|n| n.download.as_ref()) {
        download.merge(d.stats());
    }
    Report {
        scenario: scenario.name.clone(),
        peers: scenario.peers,
        file_bytes: scenario.file_bytes,
        piece_size: scenario.piece_size,
        bound_secs: scenario.bound_secs(),
        completion: peers.iter().map(|n| secs(n.done_at)).collect(),
        first_byte: peers.iter().map(|n| secs(n.first_at)).collect(),
        half_stream: peers.iter().map(|n| secs(n.half_at)).collect(),
        seed_order: world.seed_order.clone(),
        seed_bytes: world.nodes[0].up_bytes,
        peer_upload_bytes: peers.iter().map(|n| n.up_bytes).sum(),
        download,
        samples: world.samples.clone(),
        events: world.events,
        reallocations: world.reallocations,
        end_secs: world.now.as_secs_f64(),
    }
}

fn secs(t: Option<crate::time::Time>) -> Option<f64> {
    t.map(|t| t.as_secs_f64())
}
