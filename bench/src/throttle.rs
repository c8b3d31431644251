//! The async side of `shoal_proto`'s [`TokenBucket`] (the rate arithmetic,
//! without I/O, shared with the daemons and the simulator): a cloneable
//! handle that makes callers sleep until their bytes fit under the rate.
//!
//! The bucket lends: a reservation always succeeds and returns how long to
//! wait, so callers are served in the order they reserved and the long-run
//! rate never exceeds the cap however late timers fire.
//!
//! One [`Throttle`] shared by many connections caps their *total* rate and
//! serves them in turn (the order in which they asked), the way the
//! baselines' capping proxy did; one per client caps that client alone.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use shoal_proto::rate::TokenBucket;

use crate::units::Rate;

/// A rate cap, or none. Cheap to clone; clones share the same bucket.
#[derive(Clone, Debug, Default)]
pub struct Throttle {
    bucket: Option<Arc<Mutex<TokenBucket>>>,
}

impl Throttle {
    /// No cap: [`Throttle::consume`] returns at once.
    pub fn unlimited() -> Throttle {
        Throttle { bucket: None }
    }

    /// A cap at `rate`, with a burst of [`default_burst`].
    pub fn new(rate: Rate) -> Throttle {
        let bps = rate.bytes_per_sec();
        let bucket = TokenBucket::new(bps, default_burst(bps), Instant::now());
        Throttle {
            bucket: Some(Arc::new(Mutex::new(bucket))),
        }
    }

    /// A cap at `rate` if given, else none.
    pub fn optional(rate: Option<Rate>) -> Throttle {
        rate.map(Throttle::new).unwrap_or_default()
    }

    /// Whether this throttle caps anything.
    pub fn is_limited(&self) -> bool {
        self.bucket.is_some()
    }

    /// Waits until `bytes` may pass.
    pub async fn consume(&self, bytes: u64) {
        let Some(bucket) = &self.bucket else {
            return;
        };
        let wait = bucket
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .reserve(bytes, Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// The burst the bench allows at `rate` bytes per second: 20 ms worth, at
/// least 128 KiB, enough to absorb timer slack without visibly exceeding
/// the rate.
pub fn default_burst(rate: u64) -> u64 {
    (rate / 50).max(128 * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_burst_has_a_floor() {
        assert_eq!(default_burst(1 << 20), 128 * 1024);
        assert_eq!(default_burst(100 << 20), 2 << 20);
    }

    /// What the direct baseline relies on: connections that reserve one
    /// chunk after another at a shared bucket are served in turn, and the
    /// total rate is the cap.
    #[test]
    fn shared_bucket_serves_in_turn_at_the_cap() {
        use std::time::Duration;
        let t0 = Instant::now();
        let rate = 16 << 20;
        let chunk = 64 * 1024;
        let mut bucket = TokenBucket::new(rate, default_burst(rate), t0);
        // Ten connections each reserve a chunk at t0, in order.
        let waits: Vec<Duration> = (0..10).map(|_| bucket.reserve(chunk, t0)).collect();
        assert!(waits.windows(2).all(|w| w[0] <= w[1]), "{waits:?}");
        // 160 MiB through the bucket back to back take 10 s, less the burst.
        let mut now = t0;
        for _ in 0..(160 * 16) {
            now += bucket.reserve(chunk, now);
        }
        let secs = (now - t0).as_secs_f64();
        let expected =
            (160.0 * 1048576.0 + 10.0 * chunk as f64 - default_burst(rate) as f64) / rate as f64;
        assert!((secs - expected).abs() < 1e-3, "{secs} vs {expected}");
    }

    #[test]
    fn unlimited_is_unlimited() {
        assert!(!Throttle::unlimited().is_limited());
        assert!(Throttle::new(Rate::mib_per_sec(1)).is_limited());
        assert!(!Throttle::optional(None).is_limited());
    }
}
