//! Integration tests: one test binary (helpers in the `shoal-tests` library).
//!
//! - `harness`: the helpers checked straight against docker-registry, with
//!   the real clients using the registry itself as their mirror;
//! - `daemons`: each Shoal daemon starts, reports its addresses, answers
//!   `/healthz` and `/metrics`; the agent routes and refuses namespaces;
//! - `through_agent`: skopeo, ctr and dockerd pull through agent + supernode;
//! - `tls_upstream`: an HTTPS upstream with and without its CA;
//! - `fanout`: concurrent pulls reach the upstream once per blob.
//! - `swarm`: agents with the cluster secret swap verified pieces over QUIC;
//!   a node without it cannot fetch a piece.
//!
//! Tests that start dockerd, containerd or many daemons take
//! `shoal_tests::lock::heavy()` so that only one of them runs at a time.

mod daemons;
mod fanout;
mod faults;
mod harness;
mod swarm;
mod through_agent;
mod tls_upstream;
