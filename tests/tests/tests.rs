//! Integration tests: one test binary (helpers in the `shoal-tests` library).
//!
//! - `harness`: the helpers checked straight against docker-registry, with
//!   the real clients using the registry itself as their mirror;
//! - `daemons`: each Shoal daemon starts, reports its addresses, answers
//!   `/healthz` and `/metrics`; the agent routes and refuses namespaces;
//! - `through_agent`: skopeo, ctr and dockerd pull through agent + supernode;
//! - `tls_upstream`: an HTTPS upstream with and without its CA;
//! - `fanout`: concurrent pulls reach the upstream once per blob.
//! - `bench_smoke`: `shoal-bench run --scenario smoke` end to end; its
//!   report's invariants (every pull verified, upstream ratio, fields).
//! - `hostile_http`: oversized request heads get 431, slow clients are cut
//!   after the header timeout, connections over the limit get 503 and a
//!   flood costs bounded descriptors, on all three daemons;
//! - `supernode_auth`: a supernode with a cluster secret refuses unsigned
//!   requests, and those signed with another secret, on every API route;
//! - `swarm`: agents with the cluster secret swap verified pieces over QUIC;
//!   a node without it cannot fetch a piece.
//! - `private`: a registry behind Basic or Bearer token auth; only clients
//!   the upstream admits get its manifests and blobs from the agent, even
//!   from the agent's disk, and no password reaches a log.
//! - `churn`: agents killed mid-swarm and a supernode outage: the rest
//!   complete, the tracker forgets the dead, the supernode's store survives.
//! - `disk`: a full disk (a small tmpfs; needs root) and the `--max-disk`
//!   quota's least-recently-used eviction.
//! - `hostile_peer`: peers that send bad pieces, claim pieces they lack,
//!   ask beyond bounds or flood an agent with streams are caught, dropped
//!   or limited, and counted; the other pulls complete.
//! - `agent_memory` (ignored, prints figures): agent RSS idle and while
//!   serving ten peers.
//! - `node_tls`: with the cluster secret, the supernode's and the
//!   tracker's APIs answer only over mutual TLS with the cluster CA; a
//!   forwarder between agent and supernode sees no plaintext.
//! - `tracker_restart`: the tracker SIGKILLed mid-swarm and restarted on
//!   its address: the pulls complete, the tracker rebuilds its state from
//!   announces, and a new pull swarms again.
//!
//! Tests that start dockerd, containerd or many daemons take
//! `shoal_tests::lock::heavy()` so that only one of them runs at a time.

mod agent_memory;
mod bench_smoke;
mod churn;
mod daemons;
mod disk;
mod fanout;
mod faults;
mod harness;
mod hostile_http;
mod hostile_peer;
mod node_tls;
mod private;
mod supernode_auth;
mod swarm;
mod through_agent;
mod tls_upstream;
mod tracker_restart;
