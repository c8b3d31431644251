//! The in-process puller that verifies every digest: the implementation
//! lives in `shoal-bench` (whose benchmark nodes pull with it); this module
//! keeps the tests' paths.

pub use shoal_bench::pull::*;
