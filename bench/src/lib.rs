//! `shoal-bench`: starts whole Shoal clusters on one machine, drives
//! large-fanout pulls, and compares them with direct pulls and with the
//! theoretical bound.
//!
//! The bench never links the daemons: it spawns their binaries (found next
//! to its own executable, or in `--bin-dir`) as separate processes on
//! loopback, the way an operator runs them.
//!
//! How the modules fit:
//!
//! - Inputs: [`scenario`] (DESIGN.md's scenario table, overrides,
//!   validation), [`units`] (rates and sizes as the CLI spells them),
//!   [`image`] (seeded OCI images in memory, and pushing them).
//! - The world: [`upstream`] (an embedded read-only registry that counts
//!   what it sends and can cap its total upload; [`proxy`] does the same in
//!   front of a real registry given with `--upstream`), [`daemon`] and
//!   [`cluster`] (tracker, supernode and agents as child processes, see
//!   [`child`]), [`docker_registry`] (Debian's registry, for `mirror`).
//! - The clients: [`pull`] (what a container runtime does, digests
//!   verified), rate-capped with [`throttle`] (over `shoal_proto::rate`'s token
//!   bucket).
//! - Measuring: [`systems`] (Shoal and the `direct` and `bittorrent`
//!   baselines, each on its own runtime, with [`progress`] on stderr;
//!   [`torrent`] drives aria2c, opentracker and mktorrent), [`procstat`] and
//!   [`metrics`] (CPU time, daemon counters), [`bound`] and [`stats`].
//! - Output: [`report`] (report.json, the table), [`plot`]
//!   (completion.svg); [`run`] ties a `run` together, [`mirror`] is the
//!   pull-through mirror benchmark.
//!
//! Shared helpers, also used by the integration tests (`shoal-tests`):
//! [`http`] (clients, error chains, a router served on loopback), [`wait`]
//! (bounded polling), [`child`] (process guards), [`daemon`] (starting a
//! daemon and waiting until it is ready), [`docker_registry`] (its config,
//! command and readiness).

#![warn(missing_docs)]

pub mod bound;
pub mod child;
pub mod cluster;
pub mod daemon;
pub mod docker_registry;
pub mod http;
pub mod image;
pub mod metrics;
pub mod mirror;
pub mod plot;
pub mod procstat;
pub mod progress;
pub mod proxy;
pub mod pull;
pub mod report;
pub mod run;
pub mod scenario;
pub mod stats;
pub mod systems;
pub mod throttle;
pub mod torrent;
pub mod upstream;
pub mod wait;

pub use shoal_proto::units;
