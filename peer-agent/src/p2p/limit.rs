//! The upload rate limiter: a shared [`TokenBucket`] that tasks wait on.

use std::sync::Mutex;

use shoal_proto::rate::TokenBucket;
use tokio::time::Instant;

/// Caps the bytes per second sent by every upload that shares it.
///
/// Each sender reserves what it is about to write and sleeps until the
/// bucket has paid for it; reservations are served in order. Uses tokio's
/// clock, so paused-time tests work.
#[derive(Debug)]
pub struct RateLimiter {
    bucket: Mutex<TokenBucket>,
}

impl RateLimiter {
    /// A limiter of `bytes_per_sec`, allowing bursts of `burst` bytes.
    pub fn new(bytes_per_sec: u64, burst: u64) -> Self {
        RateLimiter {
            bucket: Mutex::new(TokenBucket::new(
                bytes_per_sec,
                burst,
                Instant::now().into_std(),
            )),
        }
    }

    /// The limit in bytes per second.
    pub fn rate(&self) -> u64 {
        self.bucket.lock().expect("rate limiter poisoned").rate()
    }

    /// Changes the limit from now on.
    pub fn set_rate(&self, bytes_per_sec: u64) {
        self.with_bucket(|b, now| b.set_rate(bytes_per_sec, now));
    }

    /// Gives back `n` bytes acquired for a transfer that did not happen.
    pub fn refund(&self, n: u64) {
        self.with_bucket(|b, now| b.refund(n, now));
    }

    /// Runs `f` on the bucket with the current time.
    fn with_bucket<R>(&self, f: impl FnOnce(&mut TokenBucket, std::time::Instant) -> R) -> R {
        let now = Instant::now().into_std();
        f(&mut self.bucket.lock().expect("rate limiter poisoned"), now)
    }

    /// Waits until `n` more bytes may be sent.
    pub async fn acquire(&self, n: u64) {
        let now = Instant::now();
        let delay = self
            .bucket
            .lock()
            .expect("rate limiter poisoned")
            .reserve(n, now.into_std());
        if !delay.is_zero() {
            tokio::time::sleep_until(now + delay).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn paces_to_the_rate() {
        let limiter = RateLimiter::new(10_000_000, 100_000);
        let start = Instant::now();
        for _ in 0..20 {
            limiter.acquire(100_000).await;
        }
        // 2 MB at 10 MB/s with 100 kB of burst: at least 190 ms.
        assert!(
            start.elapsed() >= Duration::from_millis(190),
            "{:?}",
            start.elapsed()
        );
        limiter.set_rate(2_000_000);
        assert_eq!(limiter.rate(), 2_000_000);
    }
}
