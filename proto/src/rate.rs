//! A token bucket for rate budgets (upload and download caps), without I/O.
//!
//! The daemons ask the bucket how long to wait before sending `n` bytes and
//! sleep that long themselves; the simulator asks the same bucket with its
//! virtual clock. The bucket lends: a reservation larger than the balance
//! is granted at once and puts the bucket in debt, and the returned delay
//! is the time until the debt is paid. So a single reservation may be
//! larger than the burst, callers reserve exactly what they send, and
//! waiting callers are served in the order they reserved.
//!
//! Arithmetic is in integers (bytes and nanoseconds, with the remainder of
//! each refill carried), so results are exact and deterministic.

use std::time::{Duration, Instant};

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// Bytes per second with a burst allowance, driven by explicit `now`.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    /// Refill rate in bytes per second; never zero.
    rate: u64,
    /// Most tokens the bucket holds.
    burst: u64,
    /// Current balance; negative while in debt.
    tokens: i128,
    /// Refill not yet turned into whole tokens, in byte-nanoseconds.
    carry: u128,
    /// When the balance was last brought up to date.
    last: Instant,
}

impl TokenBucket {
    /// A full bucket refilling at `rate` bytes per second (at least 1) and
    /// holding at most `burst` bytes (at least 1).
    pub fn new(rate: u64, burst: u64, now: Instant) -> Self {
        let burst = burst.max(1);
        TokenBucket {
            rate: rate.max(1),
            burst,
            tokens: i128::from(burst),
            carry: 0,
            last: now,
        }
    }

    /// The refill rate in bytes per second.
    pub fn rate(&self) -> u64 {
        self.rate
    }

    /// Changes the rate from `now` on; the balance so far is kept.
    pub fn set_rate(&mut self, rate: u64, now: Instant) {
        self.refill(now);
        self.rate = rate.max(1);
        self.carry = 0;
    }

    /// Current balance in bytes at `now` (negative while in debt).
    pub fn balance(&mut self, now: Instant) -> i128 {
        self.refill(now);
        self.tokens
    }

    /// Reserves `n` bytes at `now` and returns how long the caller must
    /// wait before sending them (zero if the balance covered them).
    pub fn reserve(&mut self, n: u64, now: Instant) -> Duration {
        self.refill(now);
        self.tokens -= i128::from(n);
        self.debt_delay()
    }

    /// Gives back `n` bytes reserved earlier but not sent after all (a
    /// request that was refused before any byte came), up to the burst.
    pub fn refund(&mut self, n: u64, now: Instant) {
        self.refill(now);
        self.tokens = (self.tokens + i128::from(n)).min(i128::from(self.burst));
    }

    /// Takes `n` bytes only if the balance covers them now.
    pub fn try_take(&mut self, n: u64, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= i128::from(n) {
            self.tokens -= i128::from(n);
            true
        } else {
            false
        }
    }

    /// Time until a negative balance is back at zero.
    fn debt_delay(&self) -> Duration {
        if self.tokens >= 0 {
            return Duration::ZERO;
        }
        let debt = self.tokens.unsigned_abs() * NANOS_PER_SEC;
        let owed = debt.saturating_sub(self.carry);
        let nanos = owed.div_ceil(u128::from(self.rate));
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    fn refill(&mut self, now: Instant) {
        // A `now` before `last` (callers racing) refills nothing.
        let elapsed = now.saturating_duration_since(self.last).as_nanos();
        self.last = self.last.max(now);
        if self.tokens >= i128::from(self.burst) {
            self.carry = 0;
            return;
        }
        let total = elapsed * u128::from(self.rate) + self.carry;
        let whole = total / NANOS_PER_SEC;
        self.carry = total % NANOS_PER_SEC;
        let room = (i128::from(self.burst) - self.tokens) as u128;
        if whole >= room {
            self.tokens = i128::from(self.burst);
            self.carry = 0;
        } else {
            self.tokens += whole as i128;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_refund_pays_off_debt_but_never_beyond_the_burst() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(1000, 500, t0);
        assert_eq!(b.reserve(1500, t0), 1000 * MS);
        b.refund(1000, t0);
        assert_eq!(b.balance(t0), 0);
        assert_eq!(b.reserve(100, t0), 100 * MS, "the refunded debt is gone");
        b.refund(10_000, t0);
        assert_eq!(b.balance(t0), 500);
    }

    #[test]
    fn starts_full_and_refills_at_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(1000, 500, t0);
        assert!(b.try_take(500, t0));
        assert!(!b.try_take(1, t0));
        assert_eq!(b.balance(t0 + 100 * MS), 100);
        assert_eq!(b.balance(t0 + 10_000 * MS), 500, "capped at burst");
    }

    #[test]
    fn reserve_lends_and_says_how_long_to_wait() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(1000, 100, t0);
        assert_eq!(b.reserve(100, t0), Duration::ZERO);
        assert_eq!(b.reserve(1000, t0), Duration::from_secs(1));
        // A second caller queues behind the first.
        assert_eq!(b.reserve(500, t0), Duration::from_millis(1500));
        assert_eq!(b.reserve(0, t0 + 1500 * MS), Duration::ZERO);
    }

    #[test]
    fn long_run_average_matches_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(3_000_000, 64 * 1024, t0);
        let mut now = t0;
        let mut sent = 0u64;
        while now < t0 + Duration::from_secs(10) {
            now += b.reserve(7_777, now);
            sent += 7_777;
        }
        let expected = 3_000_000 * 10 + 64 * 1024;
        assert!(
            sent.abs_diff(expected) < 8_000,
            "sent {sent}, expected ~{expected}"
        );
    }

    #[test]
    fn fractional_refills_are_not_lost() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(3, 10, t0);
        assert!(b.try_take(10, t0));
        let mut now = t0;
        for _ in 0..1000 {
            now += MS;
            b.balance(now);
        }
        assert_eq!(b.balance(now), 3);
    }

    #[test]
    fn set_rate_and_zero_guards() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(0, 0, t0);
        assert_eq!(b.rate(), 1);
        assert_eq!(b.reserve(2, t0), Duration::from_secs(1));
        b.set_rate(1000, t0);
        assert_eq!(b.reserve(0, t0 + 500 * MS), Duration::ZERO);
        assert_eq!(b.balance(t0 + 500 * MS), 1);
    }
}
