//! What a [`Download`](super::Download) knows about one connected peer:
//! its pieces, the requests in flight to it, and how fast it delivers.
//!
//! The throughput estimate sizes the request pipeline: enough bytes in
//! flight to cover the target latency at the peer's measured rate. More
//! than that only holds the peer's upload slots longer (the simulator found
//! one request per ordinary peer best on fast links). It is measured over busy periods (time with at
//! least one request outstanding), so idle gaps do not dilute it and the
//! first-byte latency is included, which is what the pipeline must cover.

use std::time::Duration;

use super::download::{DownloadConfig, PeerKind};
use crate::Bitfield;
use crate::time::Time;

/// One request in flight.
#[derive(Debug, Clone, Copy)]
pub(super) struct Request {
    pub piece: u32,
    pub deadline: Time,
}

/// Per-peer scheduling state.
#[derive(Debug)]
pub(super) struct PeerState {
    pub kind: PeerKind,
    pub has: Bitfield,
    pub requests: Vec<Request>,
    /// Delivered bytes per second, once measured.
    pub rate: Option<f64>,
    busy_since: Time,
    busy_bytes: u64,
    /// No requests before this (after a busy refusal or a failure).
    pub backoff_until: Time,
    pub busy_streak: u32,
    /// It refused us as busy and we wait for its `Available` call.
    pub waiting: bool,
    pub timeouts_in_row: u32,
    /// Pieces this peer refused (not held, redirected), until when.
    pub refused: Vec<(u32, Time)>,
    /// Pieces a seed asked us to take from it.
    pub hint: Vec<u32>,
    /// A full scan found nothing to request from this peer; since then
    /// only the pieces in `fresh` can be new candidates.
    pub scanned: bool,
    /// Pieces that became requestable from this peer since the scan.
    pub fresh: Vec<u32>,
    pub received_bytes: u64,
}

impl PeerState {
    pub fn new(kind: PeerKind, has: Bitfield) -> Self {
        PeerState {
            kind,
            has,
            requests: Vec::new(),
            rate: None,
            busy_since: Time::ZERO,
            busy_bytes: 0,
            backoff_until: Time::ZERO,
            busy_streak: 0,
            waiting: false,
            timeouts_in_row: 0,
            refused: Vec::new(),
            hint: Vec::new(),
            scanned: false,
            fresh: Vec::new(),
            received_bytes: 0,
        }
    }

    pub fn is_seed(&self) -> bool {
        self.kind == PeerKind::Seed
    }

    /// Requests this peer should have in flight, for pieces of
    /// `piece_len` bytes.
    pub fn depth(&self, config: &DownloadConfig, piece_len: u64) -> usize {
        let (min, max) = (config.min_depth.max(1), config.max_depth.max(1));
        let want = match self.rate {
            None => min,
            Some(rate) => {
                let bytes = rate * config.target_latency.as_secs_f64();
                (bytes / piece_len.max(1) as f64).ceil() as u32
            }
        };
        want.clamp(min, max.max(min)) as usize
    }

    /// When a request sent now, behind the ones in flight, should be given
    /// up.
    pub fn deadline(&self, config: &DownloadConfig, now: Time, piece_len: u64) -> Time {
        let ahead = (self.requests.len() + 1) as f64 * piece_len as f64;
        // At the measured rate if known, and never faster than the slowest
        // rate still worth waiting for: a large piece on a shared link
        // legitimately takes long, and cutting it off only to ask again
        // wastes everything sent so far.
        let slowest = ahead / config.min_rate.max(1.0);
        let expected = match self.rate {
            Some(rate) if rate > 0.0 => (ahead / rate) * config.timeout_factor,
            _ => 0.0,
        };
        let scaled = Duration::from_secs_f64(expected.max(slowest).min(3600.0));
        now + config.request_timeout.max(scaled)
    }

    /// Records a request going out.
    pub fn push_request(&mut self, piece: u32, now: Time, deadline: Time) {
        if self.requests.is_empty() {
            self.busy_since = now;
            self.busy_bytes = 0;
        }
        self.requests.push(Request { piece, deadline });
    }

    /// Removes the request for `piece`, if there is one.
    pub fn take_request(&mut self, piece: u32) -> Option<Request> {
        let i = self.requests.iter().position(|r| r.piece == piece)?;
        Some(self.requests.swap_remove(i))
    }

    /// Accounts `bytes` delivered at `now` and updates the rate estimate.
    pub fn delivered(&mut self, config: &DownloadConfig, now: Time, bytes: u64) {
        self.received_bytes += bytes;
        self.busy_bytes += bytes;
        self.busy_streak = 0;
        self.timeouts_in_row = 0;
        let elapsed = (now - self.busy_since).as_secs_f64();
        if elapsed <= 0.0 {
            return;
        }
        let sample = self.busy_bytes as f64 / elapsed;
        let horizon = config.rate_horizon.as_secs_f64();
        self.rate = Some(match self.rate {
            Some(old) if elapsed < horizon => old + (sample - old) * (elapsed / horizon),
            _ => sample,
        });
        if elapsed >= horizon {
            // Start a new measuring window so the estimate follows changes.
            self.busy_since = now;
            self.busy_bytes = 0;
        }
    }

    /// `piece` may have become requestable from this peer.
    pub fn note_fresh(&mut self, piece: u32) {
        if !self.scanned {
            return;
        }
        if self.fresh.len() < 64 {
            self.fresh.push(piece);
        } else {
            self.scanned = false;
            self.fresh.clear();
        }
    }

    /// Forgets the scan: the next pick looks at every piece.
    pub fn rescan(&mut self) {
        self.scanned = false;
        self.fresh.clear();
    }

    /// Whether `piece` was refused by this peer recently.
    pub fn refused(&self, piece: u32, now: Time) -> bool {
        self.refused
            .iter()
            .any(|&(p, until)| p == piece && until > now)
    }

    /// Remembers a refusal of `piece` until `until`, forgetting old ones.
    pub fn refuse(&mut self, piece: u32, now: Time, until: Time) {
        self.refused.retain(|&(_, t)| t > now);
        if self.refused.len() < 64 {
            self.refused.push((piece, until));
        }
    }
}
