//! Serialises the heavy tests.
//!
//! All integration tests run in one test binary; on a 2-core machine two
//! tests that each start dockerd, containerd or ten agents at once would
//! starve each other. A heavy test holds [`heavy`]'s guard for its whole run,
//! light tests run beside it.

use tokio::sync::{Mutex, MutexGuard};

static HEAVY: Mutex<()> = Mutex::const_new(());

/// Waits until no other heavy test runs; hold the guard until the end.
pub async fn heavy() -> MutexGuard<'static, ()> {
    HEAVY.lock().await
}
