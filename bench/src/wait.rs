//! Bounded waits: poll a condition until it holds or a deadline passes.

use std::future::Future;
use std::time::{Duration, Instant};

/// How long the bench waits for a process to become ready.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// Calls `check` until it returns `Ok(Some(_))`, with a growing interval
/// (20 ms up to 250 ms). `Ok(None)` means keep waiting, `Err` gives up at
/// once (for instance: the process died). Past `timeout`, fails with a
/// message naming `what`.
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
