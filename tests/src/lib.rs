//! Shared helpers for Shoal's integration tests.
//!
//! The tests start real processes on `127.0.0.1:0` in temporary directories
//! and kill them when the test ends, also on failure (then they print the
//! tail of each process's log):
//!
//! - [`registry`]: the upstream, Debian's `docker-registry`, with its access
//!   log parsed to count requests per blob;
//! - [`image`]: seeded multi-platform OCI images and pushing them;
//! - [`tls`]: a test CA and a server certificate for loopback;
//! - [`token_server`]: a registry token server issuing signed JWTs, for a
//!   registry behind Bearer token authentication;
//! - [`procs`] and [`cluster`]: `shoal-supernode`, `shoal-agent`,
//!   `shoal-tracker` from the workspace's target directory; [`swarm`]: a
//!   swarming cluster (tracker, seeding supernode, agents, cluster secret);
//! - [`clients`]: skopeo, containerd's `ctr` and dockerd pulling through a
//!   mirror, configured with the examples in `docs/examples/`;
//! - [`oci_pull`]: an in-process puller that verifies every digest;
//! - [`fake_peer`]: a cluster member that lies about its pieces;
//! - [`tap`]: a TCP forwarder that records what crosses it;
//! - [`redirector`]: an upstream that only redirects, and a canary that
//!   counts who followed;
//! - [`tmpfs`]: a small file system of its own, to fill up;
//! - [`metrics`]: Prometheus samples picked by label; [`proc_status`]: a
//!   daemon's resident memory and open descriptors;
//! - [`child`], [`wait`], [`http`], [`lock`], [`tmp`]: process guards,
//!   bounded waits, HTTP clients, the lock that keeps heavy tests from
//!   overlapping, and temporary directories (`SHOAL_TEST_KEEP_TMP=1` keeps
//!   them for a look after a failure).

pub mod child;
pub mod clients;
pub mod cluster;
pub mod fake_peer;
pub mod fault_upstream;
pub mod http;
pub mod image;
pub mod lock;
pub mod metrics;
pub mod oci_pull;
pub mod proc_status;
pub mod procs;
pub mod redirector;
pub mod registry;
pub mod swarm;
pub mod tap;
pub mod tls;
pub mod tmp;
pub mod tmpfs;
pub mod token_server;
pub mod wait;
