//! The runtime every Shoal peer needs, and the node agent built from it.
//!
//! The supernode is a peer that also has an upstream behind it, so the
//! parts both use live here and the supernode crate builds on this library
//! (DESIGN.md "Where shared runtime code lives"):
//!
//! - [`daemon`]: logging, metrics, health, ready file, serving with shutdown;
//! - [`config`]: the upstream list and the TOML config file;
//! - [`upstream`]: the OCI registry client (auth, retries, TLS, timeouts);
//! - [`store`]: the content store of verified blobs and manifests;
//! - [`fetch`]: single-flight streaming downloads into the store;
//! - [`registry`]: the OCI pull API's paths, ranges, responses and errors;
//! - [`supernode_client`]: the agent's client of the supernode API;
//! - [`mirror`]: the agent's registry mirror for local container runtimes;
//! - [`agent`]: the agent daemon's configuration and `run`.
#![warn(missing_docs)]

pub mod agent;
pub mod config;
pub mod daemon;
pub mod fetch;
pub mod mirror;
pub mod registry;
pub mod store;
pub mod supernode_client;
pub mod upstream;
