//! The live progress line: per system, nodes done out of N, and the
//! aggregate receive rate of all nodes, redrawn on stderr.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::units::mib;

/// Progress of one system's pulls, updated by the pulls, read by the display.
#[derive(Debug)]
pub struct Progress {
    name: String,
    nodes: usize,
    done: AtomicUsize,
    failed: AtomicUsize,
    bytes: Arc<AtomicU64>,
    t0: Mutex<Option<Instant>>,
    finished: AtomicBool,
}

impl Progress {
    /// Progress of `nodes` pulls of system `name`.
    pub fn new(name: &str, nodes: usize) -> Arc<Progress> {
        Arc::new(Progress {
            name: name.to_string(),
            nodes,
            done: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
            bytes: Arc::new(AtomicU64::new(0)),
            t0: Mutex::new(None),
            finished: AtomicBool::new(false),
        })
    }

    /// The counter pulls add their body bytes to.
    pub fn bytes_counter(&self) -> Arc<AtomicU64> {
        self.bytes.clone()
    }

    /// Marks t0, the start of the pulls.
    pub fn started(&self, t0: Instant) {
        *self.t0.lock().unwrap_or_else(|p| p.into_inner()) = Some(t0);
    }

    /// One node finished, successfully or not.
    pub fn node_done(&self, ok: bool) {
        if ok {
            self.done.fetch_add(1, Ordering::Relaxed);
        } else {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The system is done (or gave up).
    pub fn finish(&self) {
        self.finished.store(true, Ordering::Relaxed);
    }

    fn t0(&self) -> Option<Instant> {
        *self.t0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Redraws the progress of `systems` on stderr every `interval` until all
/// are finished: in place on a terminal, one line every few seconds
/// otherwise.
pub async fn display(systems: Vec<Arc<Progress>>, interval: Duration) {
    let tty = std::io::stderr().is_terminal();
    let every = if tty {
        1
    } else {
        (5.0 / interval.as_secs_f64()).ceil() as u32
    };
    let mut last_bytes = 0u64;
    let mut last_at = Instant::now();
    let mut ticks = 0u32;
    loop {
        tokio::time::sleep(interval).await;
        let all_done = systems.iter().all(|p| p.finished.load(Ordering::Relaxed));
        let now = Instant::now();
        let bytes: u64 = systems
            .iter()
            .map(|p| p.bytes.load(Ordering::Relaxed))
            .sum();
        ticks += 1;
        if ticks >= every || all_done {
            ticks = 0;
            // The rate since the last line shown.
            let rate = mib(bytes - last_bytes) / (now - last_at).as_secs_f64().max(1e-3);
            (last_bytes, last_at) = (bytes, now);
            let line = render(&systems, now, rate);
            let mut err = std::io::stderr().lock();
            let _ = if tty {
                write!(err, "\r\x1b[2K{line}")
            } else {
                writeln!(err, "{line}")
            };
            let _ = err.flush();
        }
        if all_done {
            if tty {
                let _ = writeln!(std::io::stderr());
            }
            return;
        }
    }
}

/// `shoal 3/10 (12.4 s) · direct 1/10 (12.1 s) · 52.1 MiB/s`.
fn render(systems: &[Arc<Progress>], now: Instant, rate_mib_s: f64) -> String {
    let mut parts: Vec<String> = systems
        .iter()
        .map(|p| {
            let done = p.done.load(Ordering::Relaxed);
            let failed = p.failed.load(Ordering::Relaxed);
            let failed = if failed > 0 {
                format!(", {failed} failed")
            } else {
                String::new()
            };
            match p.t0() {
                Some(t0) => format!(
                    "{} {done}/{} nodes{failed} ({:.1} s)",
                    p.name,
                    p.nodes,
                    (now - t0).as_secs_f64()
                ),
                None => format!("{} starting", p.name),
            }
        })
        .collect();
    parts.push(format!("{rate_mib_s:.1} MiB/s"));
    parts.join(" · ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_and_rate() {
        let a = Progress::new("shoal", 10);
        let b = Progress::new("direct", 10);
        let t0 = Instant::now();
        a.started(t0);
        a.node_done(true);
        a.node_done(false);
        let line = render(&[a, b], t0 + Duration::from_millis(2500), 52.14);
        assert_eq!(
            line,
            "shoal 1/10 nodes, 1 failed (2.5 s) · direct starting · 52.1 MiB/s"
        );
    }
}
