//! Shoal's protocol without I/O.
//!
//! Everything here is deterministic: no sockets, no tokio, no clock reads.
//! The daemons wrap these types with I/O; the benchmark simulator drives the
//! same code with a virtual clock.
//!
//! - [`digest`]: content digests (`sha256:<hex>`), parsed and validated.
//! - [`reference`]: repository names and tags per the OCI distribution spec.
#![warn(missing_docs)]

pub mod digest;
pub mod reference;

pub use digest::{Digest, DigestError, Hasher};
pub use reference::{NameError, Reference, RepoName, Tag};
