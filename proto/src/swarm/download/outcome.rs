//! How the outcome of each request (verified, corrupt, refused, failed,
//! timed out) and a peer's call-back change the download: the half of the
//! scheduler's inputs that concern requests already sent.

use super::{Action, Download, DropReason, PeerKind, timeout_added, timeout_removed};
use crate::swarm::PeerId;
use crate::swarm::policy::Rejection;
use crate::time::Time;

impl Download {
    /// `peer` delivered `piece` and it matched its hash; the driver has
    /// written it. Verified bytes are kept whoever sent them.
    pub fn handle_piece_verified(&mut self, now: Time, peer: PeerId, piece: u32) {
        self.tick(now);
        if piece >= self.layout.piece_count() {
            return;
        }
        let bytes = self.layout.piece_len(piece);
        let was_unrequested = !self.have.get(piece) && self.pieces[piece as usize].in_flight == 0;
        if let Some(p) = self.peers.get_mut(&peer) {
            if let Some(r) = p.take_request(piece) {
                self.pieces[piece as usize].in_flight -= 1;
                self.in_flight -= 1;
                timeout_removed(&self.next_timeout, r.deadline);
            }
            p.delivered(&self.config, self.now, bytes);
            self.news(peer);
            // Its upload slot just freed up: nobody else knows yet.
            self.prefer = Some(peer);
        }
        self.recent.push_back((self.now, bytes));
        self.recent_bytes += bytes;
        let horizon = self.config.rate_horizon;
        while let Some(&(t, b)) = self.recent.front() {
            if t + horizon >= self.now {
                break;
            }
            self.recent.pop_front();
            self.recent_bytes -= b;
        }
        if let Some(started) = self.started {
            let rate = self.download_rate();
            self.window.adapt(
                &self.config,
                self.budget_share,
                self.now,
                started,
                rate,
                self.layout.piece_size,
            );
        }
        if !self.have.set(piece) {
            self.stats.duplicates += 1;
            return;
        }
        self.stats.pieces += 1;
        if was_unrequested {
            self.unrequested -= 1;
        }
        if self.pieces[piece as usize].avail == 0 {
            self.unavailable -= 1;
        }
        // Cancel the other copies (end-game) of this piece.
        let others: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, p)| p.requests.iter().any(|r| r.piece == piece))
            .map(|(&id, _)| id)
            .collect();
        for id in others {
            self.cancel(id, piece);
            self.news(id);
        }
        if self.have.is_complete() && !self.complete_sent {
            self.complete_sent = true;
            self.actions.push_back(Action::Complete);
        }
    }

    /// `peer` delivered `piece` and it did not match its hash: the peer is
    /// banned and dropped, the piece requested elsewhere.
    pub fn handle_piece_corrupt(&mut self, now: Time, peer: PeerId, piece: u32) {
        self.tick(now);
        self.stats.corrupt += 1;
        let _ = piece;
        if self.peers.contains_key(&peer) {
            self.ban(peer, DropReason::CorruptPiece);
        }
    }

    /// `peer` refused the request for `piece`.
    pub fn handle_request_rejected(
        &mut self,
        now: Time,
        peer: PeerId,
        piece: u32,
        reason: Rejection,
    ) {
        self.tick(now);
        if !self.end_request(peer, piece) {
            return;
        }
        let Some(kind) = self.peers.get(&peer).map(|p| p.kind) else {
            return;
        };
        if matches!(reason, Rejection::Redirect { .. }) && kind != PeerKind::Seed {
            // Only a seed runs a seeding policy: a peer that redirects
            // could keep us asking it for nothing.
            self.drop_peer(peer, DropReason::ProtocolViolation);
            return;
        }
        let (now, cfg) = (self.now, &self.config);
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        match reason {
            Rejection::Busy => {
                self.stats.busy += 1;
                let backoff = cfg.busy_backoff.saturating_mul(1 << p.busy_streak.min(16));
                p.backoff_until = now + backoff.min(cfg.max_backoff);
                timeout_added(&self.next_timeout, p.backoff_until);
                p.busy_streak += 1;
                if !p.waiting {
                    p.waiting = true;
                    self.waiting_on += 1;
                }
            }
            Rejection::NotHeld => {
                self.stats.failed += 1;
                if p.has.get(piece) {
                    p.has.clear(piece);
                    if p.kind == PeerKind::Peer {
                        self.avail_dec(piece);
                    }
                }
            }
            Rejection::Redirect { hint } => {
                self.stats.redirects += 1;
                p.refuse(piece, now, now + cfg.refusal_memory);
                let n = self.layout.piece_count();
                p.hint = hint.into_iter().filter(|&h| h < n).take(16).collect();
                p.rescan();
            }
        }
        if let Some(p) = self.peers.get(&peer) {
            timeout_added(&self.next_timeout, p.backoff_until);
        }
        self.news(peer);
    }

    /// `peer`, which refused us as busy, has a slot reserved for us now.
    pub fn handle_peer_available(&mut self, now: Time, peer: PeerId) {
        self.tick(now);
        if let Some(p) = self.peers.get_mut(&peer) {
            p.backoff_until = Time::ZERO;
            p.busy_streak = 0;
            if p.waiting {
                p.waiting = false;
                self.waiting_on -= 1;
            }
            self.next_timeout.set(None);
            self.news(peer);
            self.prefer = Some(peer);
        }
    }

    /// The request for `piece` to `peer` failed without an answer (stream
    /// reset, short read).
    pub fn handle_request_failed(&mut self, now: Time, peer: PeerId, piece: u32) {
        self.tick(now);
        if !self.end_request(peer, piece) {
            return;
        }
        self.stats.failed += 1;
        if let Some(p) = self.peers.get_mut(&peer) {
            p.backoff_until = self.now + self.config.busy_backoff;
            timeout_added(&self.next_timeout, p.backoff_until);
        }
    }

    /// Gives up requests past their deadline and ends back-offs.
    pub fn handle_timeout(&mut self, now: Time) {
        self.tick(now);
        self.next_timeout.set(None);
        let now = self.now;
        let mut expired = Vec::new();
        for (&id, p) in &self.peers {
            if p.backoff_until != Time::ZERO && p.backoff_until <= now {
                self.fill_some.push(id);
            }
            for r in &p.requests {
                if r.deadline <= now {
                    expired.push((id, r.piece));
                }
            }
        }
        for (id, piece) in expired {
            self.stats.timeouts += 1;
            self.cancel(id, piece);
            let Some(p) = self.peers.get_mut(&id) else {
                continue;
            };
            p.timeouts_in_row += 1;
            p.rate = p.rate.map(|r| r / 2.0);
            p.backoff_until = now + self.config.max_backoff;
            if p.timeouts_in_row >= self.config.max_timeouts {
                self.drop_peer(id, DropReason::Unresponsive);
            }
        }
        for p in self.peers.values_mut() {
            if p.backoff_until <= now {
                p.backoff_until = Time::ZERO;
                if p.waiting {
                    p.waiting = false;
                    self.waiting_on -= 1;
                }
            }
        }
    }
}
