//! The runtime every Shoal peer needs, and the node agent built from it.
//!
//! The supernode is a peer that also has an upstream behind it, so the
//! parts both use live here and the supernode crate builds on this library
//! (DESIGN.md "Where shared runtime code lives"):
//!
//! - [`daemon`]: logging, metrics, health, ready file, serving with shutdown;
//! - [`serve`](mod@serve): the HTTP accept loop with connection, header size
//!   and header time limits, shared by every daemon;
//! - [`config`]: the upstream list and the TOML config file;
//! - [`upstream`]: the OCI registry client (auth, retries, TLS, timeouts);
//! - [`store`]: the content store of verified blobs and manifests;
//! - [`fetch`]: single-flight streaming downloads into the store;
//! - [`http_auth`]: cluster-secret signatures on internal HTTP APIs;
//! - [`p2p`]: the QUIC piece transport with cluster authentication;
//! - [`pieces`]: serving pieces of stored blobs and running downloads;
//! - [`registry`]: the OCI pull API's paths, ranges, responses and errors;
//! - [`supernode_client`]: the agent's client of the supernode API;
//! - [`access`]: who may read a repository, checked with the client's own
//!   credentials before anything of it is served;
//! - [`mirror`]: the agent's registry mirror for local container runtimes;
//! - [`agent`]: the agent daemon's configuration and `run`.
#![warn(missing_docs)]

pub mod access;
pub mod agent;
pub mod blob_file;
mod buffers;
pub mod config;
pub mod daemon;
pub mod fetch;
pub mod http_auth;
pub mod mirror;
pub mod p2p;
pub mod pieces;
pub mod registry;
pub mod serve;
pub mod store;
pub mod supernode_client;
pub mod swarm;
pub mod upstream;
pub mod upstream_source;
