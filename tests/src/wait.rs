//! Bounded waits: poll a condition until it holds or a deadline passes.
//!
//! Tests never assert on how fast something happens; they only wait, with a
//! generous bound, for something to become true.

use std::future::Future;
use std::time::{Duration, Instant};

/// How long helpers wait for a process to become ready.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// How long helpers let one client command (a pull) run.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(300);

/// Calls `check` every `interval` until it returns `Some`, or fails with the
/// last diagnostic once `timeout` has passed.
///
/// `check` returns `Ok(Some(value))` when done, `Ok(None)` to keep waiting,
/// and `Err(message)` to give up at once (for instance: the process died).
pub async fn poll<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, String>>,
{
    let deadline = Instant::now() + timeout;
    let mut interval = Duration::from_millis(20);
    loop {
        if let Some(value) = check().await? {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            return Err(format!("timed out after {timeout:?} waiting for {what}"));
        }
        tokio::time::sleep(interval).await;
        interval = (interval * 2).min(Duration::from_millis(250));
    }
}
