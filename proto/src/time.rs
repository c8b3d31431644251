//! Time as the sans-IO state machines see it.
//!
//! The swarm logic never reads a clock: every `handle_*` call takes a `now`
//! and `poll_timeout` answers with a [`Time`]. A daemon converts
//! `std::time::Instant` by measuring from its own start
//! (`Time::from_duration(start.elapsed())`); the simulator advances a virtual
//! clock. Microsecond resolution is fine enough for piece transfers and
//! round-trip times and lets a `u64` span half a million years.

use std::fmt;
use std::ops::{Add, AddAssign, Sub};
use std::time::Duration;

/// A point in time: microseconds since an epoch chosen by the driver.
///
/// Only differences between two `Time`s from the same driver mean
/// anything.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Time(u64);

impl Time {
    /// The epoch.
    pub const ZERO: Time = Time(0);
    /// A time later than any the drivers produce, for "never".
    pub const MAX: Time = Time(u64::MAX);

    /// `micros` microseconds after the epoch.
    pub const fn from_micros(micros: u64) -> Self {
        Time(micros)
    }

    /// `millis` milliseconds after the epoch.
    pub const fn from_millis(millis: u64) -> Self {
        Time(millis.saturating_mul(1000))
    }

    /// `d` after the epoch (saturating at [`Time::MAX`]).
    pub fn from_duration(d: Duration) -> Self {
        Time(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
    }

    /// `secs` seconds after the epoch, rounded up to the next microsecond so
    /// that an event scheduled "at" a computed instant never fires early.
    /// Negative and NaN inputs give the epoch.
    pub fn from_secs_f64(secs: f64) -> Self {
        let micros = (secs * 1e6).ceil();
        if micros.is_nan() || micros <= 0.0 {
            Time::ZERO
        } else if micros >= u64::MAX as f64 {
            Time::MAX
        } else {
            Time(micros as u64)
        }
    }

    /// Microseconds since the epoch.
    pub const fn as_micros(self) -> u64 {
        self.0
    }

    /// Seconds since the epoch.
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e6
    }

    /// Time since the epoch.
    pub fn since_epoch(self) -> Duration {
        Duration::from_micros(self.0)
    }

    /// How long after `earlier` this is; zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Time) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Time {
    type Output = Time;
    /// Saturates at [`Time::MAX`] instead of overflowing.
    fn add(self, d: Duration) -> Time {
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        Time(self.0.saturating_add(micros))
    }
}

impl AddAssign<Duration> for Time {
    fn add_assign(&mut self, d: Duration) {
        *self = *self + d;
    }
}

impl Sub for Time {
    type Output = Duration;
    /// Saturates at zero, like [`Time::saturating_since`].
    fn sub(self, earlier: Time) -> Duration {
        self.saturating_since(earlier)
    }
}

impl fmt::Debug for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.6}s", self.as_secs_f64())
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        let t = Time::from_millis(1500);
        assert_eq!(t.as_micros(), 1_500_000);
        assert_eq!(t + Duration::from_millis(500), Time::from_millis(2000));
        assert_eq!(Time::from_millis(2000) - t, Duration::from_millis(500));
        assert_eq!(t - Time::from_millis(2000), Duration::ZERO);
        assert_eq!(Time::MAX + Duration::from_secs(1), Time::MAX);
    }

    #[test]
    fn from_secs_rounds_up() {
        assert_eq!(Time::from_secs_f64(0.000_000_1), Time::from_micros(1));
        assert_eq!(Time::from_secs_f64(2.0), Time::from_millis(2000));
        assert_eq!(Time::from_secs_f64(-1.0), Time::ZERO);
        assert_eq!(Time::from_secs_f64(f64::NAN), Time::ZERO);
        assert_eq!(Time::from_secs_f64(f64::INFINITY), Time::MAX);
    }
}
