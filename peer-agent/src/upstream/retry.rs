//! Retry policy: exponential backoff with jitter and `Retry-After`, as pure
//! functions so that they are tested without a network or a clock.

use std::time::{Duration, SystemTime};

use rand::Rng;

use super::UpstreamOptions;

/// Wait before retry number `attempt + 1`: `base · 2^attempt`, capped at
/// `max`, of which the upper half is random ("equal jitter") so that many
/// clients failing together do not come back together.
pub(super) fn backoff(attempt: u32, base: Duration, max: Duration, rng: &mut impl Rng) -> Duration {
    let factor = 1u32.checked_shl(attempt).unwrap_or(u32::MAX);
    let full = base.saturating_mul(factor).min(max);
    let half = full / 2;
    half + rng.random_range(Duration::ZERO..=full - half)
}

/// Parses `Retry-After`: delta seconds or an HTTP date (relative to `now`).
pub(super) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// How long to wait after a 429 before attempt `attempt + 1`, or `None` to
/// give up: retries are used up, or the upstream asks for a longer wait
/// than `backoff_max` (a quota reset hours away is not worth holding a
/// request open for; the caller gets `TooManyRequests` with the delay).
pub(super) fn after_rate_limit(
    retry_after: Option<Duration>,
    attempt: u32,
    opts: &UpstreamOptions,
    rng: &mut impl Rng,
) -> Option<Duration> {
    if attempt >= opts.retries {
        return None;
    }
    match retry_after {
        Some(wait) if wait > opts.backoff_max => None,
        Some(wait) => Some(wait),
        None => Some(backoff(attempt, opts.backoff_base, opts.backoff_max, rng)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        let mut rng = SmallRng::seed_from_u64(7);
        let base = Duration::from_millis(200);
        let max = Duration::from_secs(5);
        for attempt in 0..40 {
            let full = (base * 2u32.saturating_pow(attempt.min(20))).min(max);
            for _ in 0..50 {
                let d = backoff(attempt, base, max, &mut rng);
                assert!(
                    d >= full / 2 && d <= full,
                    "attempt {attempt}: {d:?} vs {full:?}"
                );
            }
        }
        let spread: std::collections::HashSet<_> =
            (0..20).map(|_| backoff(3, base, max, &mut rng)).collect();
        assert!(spread.len() > 10, "jitter should vary the delay");
        assert_eq!(backoff(100, Duration::ZERO, max, &mut rng), Duration::ZERO);
    }

    #[test]
    fn retry_after_forms() {
        let now = httpdate::parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT").unwrap();
        assert_eq!(parse_retry_after(" 3 ", now), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-1", now), None);
    }

    #[test]
    fn rate_limit_policy() {
        let mut rng = SmallRng::seed_from_u64(1);
        let opts = UpstreamOptions::default();
        let one = Some(Duration::from_secs(1));
        assert_eq!(after_rate_limit(one, 0, &opts, &mut rng), one);
        assert_eq!(after_rate_limit(one, opts.retries, &opts, &mut rng), None);
        assert_eq!(
            after_rate_limit(Some(Duration::from_secs(3600)), 0, &opts, &mut rng),
            None
        );
        let d = after_rate_limit(None, 0, &opts, &mut rng).unwrap();
        assert!(d <= opts.backoff_base);
    }
}
