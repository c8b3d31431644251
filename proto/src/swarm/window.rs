//! How many requests a download keeps in flight in total.
//!
//! Too few and the download link idles while each request waits on a
//! shared upload link; too many and this peer holds upload slots all over
//! the swarm with slow transfers while other peers are refused as busy
//! (the simulator showed a handful of greedy peers starving the rest). The
//! right number is about the download budget divided by the rate one
//! transfer gets, which depends on everybody else, so it is found by
//! feedback: with a known budget (the agent's `--download-rate`) the
//! window grows by one while the measured rate stays below the budget and
//! the window was what held requests back, and shrinks by one after the
//! rate has been at the budget for a while. Without a budget it follows the
//! measured rate times the target latency, plus a margin to probe.

use std::time::Duration;

use super::download::DownloadConfig;
use crate::time::Time;

/// Rate below this fraction of the budget grows the window.
const GROW_BELOW: f64 = 0.95;
/// Rate at or above this fraction of the budget counts as "at budget".
const AT_BUDGET: f64 = 0.97;
/// Adjustments at budget in a row before the window shrinks.
const SHRINK_AFTER: u32 = 4;

/// The in-flight window of a [`Download`](super::Download).
#[derive(Debug, Clone)]
pub(super) struct Window {
    size: u32,
    /// Requests were held back by the window since the last adjustment.
    limited: bool,
    last_adjust: Option<Time>,
    at_budget: u32,
}

impl Window {
    pub fn new(config: &DownloadConfig, piece_size: u32) -> Self {
        let mut w = Window {
            size: 0,
            limited: false,
            last_adjust: None,
            at_budget: 0,
        };
        let rate = config.download_rate.unwrap_or(0.0);
        w.size = pieces_for(config, rate, config.target_latency, piece_size);
        w
    }

    /// Requests to keep in flight under `budget` (this download's part of
    /// the node's cap, if it has one); `measured` is the recent download
    /// rate.
    pub fn target(
        &self,
        cfg: &DownloadConfig,
        budget: Option<f64>,
        measured: Option<f64>,
        piece_size: u32,
    ) -> u32 {
        match budget {
            Some(budget) => self
                .size
                .min(pieces_for(cfg, budget, cfg.max_queue, piece_size)),
            None => pieces_for(cfg, measured.unwrap_or(0.0), cfg.target_latency, piece_size),
        }
    }

    /// The adapted window size, before the `max_queue` cap.
    #[cfg(test)]
    pub fn size(&self) -> u32 {
        self.size
    }

    /// A request could not go out because the window was full.
    pub fn hit(&mut self) {
        self.limited = true;
    }

    /// Feeds the measured rate at `now`, to be compared with `budget`;
    /// adjusts at most once per `window_interval`. The window grows no
    /// further than [`DownloadConfig::max_queue`] allows.
    pub fn adapt(
        &mut self,
        cfg: &DownloadConfig,
        budget: Option<f64>,
        now: Time,
        started: Time,
        measured: Option<f64>,
        piece_size: u32,
    ) {
        let Some(budget) = budget else {
            return;
        };
        // Let the rate measurement fill its horizon once.
        if now < started + cfg.rate_horizon / 2 {
            return;
        }
        if self
            .last_adjust
            .is_some_and(|t| now < t + cfg.window_interval)
        {
            return;
        }
        self.last_adjust = Some(now);
        let rate = measured.unwrap_or(0.0);
        let limited = std::mem::take(&mut self.limited);
        if rate < budget * GROW_BELOW {
            self.at_budget = 0;
            if limited && self.size < pieces_for(cfg, budget, cfg.max_queue, piece_size) {
                self.size = clamp(cfg, self.size + 1);
            }
        } else if rate >= budget * AT_BUDGET {
            self.at_budget += 1;
            if self.at_budget >= SHRINK_AFTER {
                self.at_budget = 0;
                self.size = clamp(cfg, self.size.saturating_sub(1));
            }
        }
    }
}

/// Requests for what `rate` downloads in `span`, plus the margin
/// (`extra_in_flight`), within the configured bounds.
fn pieces_for(cfg: &DownloadConfig, rate: f64, span: Duration, piece_size: u32) -> u32 {
    let pieces = rate * span.as_secs_f64() / f64::from(piece_size.max(1));
    clamp(
        cfg,
        (pieces.ceil() as u32).saturating_add(cfg.extra_in_flight),
    )
}

fn clamp(cfg: &DownloadConfig, n: u32) -> u32 {
    let min = cfg.min_in_flight.max(1);
    n.clamp(min, cfg.max_in_flight.max(min))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const MIB: f64 = 1_048_576.0;

    /// Feeds `w` the measured `rate` at `t` against `cfg`'s whole budget,
    /// with 512 KiB pieces.
    fn adapt(w: &mut Window, cfg: &DownloadConfig, t: Time, start: Time, rate: f64) {
        w.adapt(cfg, cfg.download_rate, t, start, Some(rate), 512 * 1024);
    }

    fn config() -> DownloadConfig {
        DownloadConfig {
            download_rate: Some(4.0 * MIB),
            target_latency: Duration::from_millis(250),
            extra_in_flight: 2,
            ..DownloadConfig::default()
        }
    }

    #[test]
    fn starts_from_the_budget() {
        // 4 MiB/s × 250 ms = 1 MiB = 2 pieces of 512 KiB, plus 2.
        let w = Window::new(&config(), 512 * 1024);
        assert_eq!(w.size(), 4);
        // Without a budget it follows the measured rate.
        let cfg = DownloadConfig {
            download_rate: None,
            ..config()
        };
        let w = Window::new(&cfg, 512 * 1024);
        assert_eq!(w.target(&cfg, None, None, 512 * 1024), 2);
        assert_eq!(w.target(&cfg, None, Some(8.0 * MIB), 512 * 1024), 6);
    }

    #[test]
    fn grows_below_budget_only_when_it_held_requests_back() {
        let cfg = config();
        let mut w = Window::new(&cfg, 512 * 1024);
        let start = Time::ZERO;
        let mut t = Time::from_millis(1000);
        adapt(&mut w, &cfg, t, start, 2.0 * MIB);
        assert_eq!(w.size(), 4, "not limited: nothing to gain");
        t += cfg.window_interval;
        w.hit();
        adapt(&mut w, &cfg, t, start, 2.0 * MIB);
        assert_eq!(w.size(), 5);
        // At most one step per interval.
        w.hit();
        adapt(&mut w, &cfg, t, start, 2.0 * MIB);
        assert_eq!(w.size(), 5);
    }

    #[test]
    fn shrinks_after_a_while_at_budget() {
        let cfg = config();
        let mut w = Window::new(&cfg, 512 * 1024);
        let mut t = Time::from_millis(1000);
        for _ in 0..SHRINK_AFTER - 1 {
            adapt(&mut w, &cfg, t, Time::ZERO, 4.0 * MIB);
            t += cfg.window_interval;
        }
        assert_eq!(w.size(), 4);
        adapt(&mut w, &cfg, t, Time::ZERO, 4.0 * MIB);
        assert_eq!(w.size(), 3);
    }

    #[test]
    fn grows_no_further_than_the_budget_downloads_in_max_queue() {
        let cfg = config();
        let mut w = Window::new(&cfg, 512 * 1024);
        let mut t = Time::from_millis(1000);
        for _ in 0..100 {
            w.hit();
            adapt(&mut w, &cfg, t, Time::ZERO, MIB);
            t += cfg.window_interval;
        }
        // 4 MiB/s for 2 s is 16 pieces of 512 KiB, plus 2.
        assert_eq!(w.size(), 18);
        assert_eq!(w.target(&cfg, cfg.download_rate, Some(MIB), 512 * 1024), 18);
        // A quarter of the budget (three other downloads share it): at
        // most what 1 MiB/s downloads in 2 s, at once.
        assert_eq!(w.target(&cfg, Some(MIB), Some(MIB), 512 * 1024), 6);
    }
}
