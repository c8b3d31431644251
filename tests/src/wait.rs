//! Bounded waits: poll a condition until it holds or a deadline passes.
//!
//! Tests never assert on how fast something happens; they only wait, with a
//! generous bound, for something to become true. The polling itself is the
//! bench's, so both wait the same way.

use std::time::Duration;

pub use shoal_bench::wait::{STARTUP_TIMEOUT, poll};

/// How long helpers let one client command (a pull) run.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(300);
