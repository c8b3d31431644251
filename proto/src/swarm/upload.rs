//! The serving side of a peer: bounded concurrent uploads, a wait list of
//! refused requesters, and a [`ServePolicy`] deciding what to serve.
//!
//! An uploader that queued every request would hide its load: requesters
//! would wait behind each other instead of asking an idle peer, and hold
//! their request windows on it. So an [`Uploader`] runs at most
//! `max_active` uploads and refuses the rest as [`Rejection::Busy`]. But
//! refusing alone makes requesters poll: the simulator counted eight or
//! nine refusals per delivered piece in a busy swarm. So a refused peer is
//! also put on a bounded wait list, and when a slot frees, the policy picks
//! a waiting peer, the slot is reserved for it for `reserve_for`, and it is
//! told with [`UploadAction::Available`]. Requesters then wait to be called
//! instead of polling, and the wait list gives each a fair turn.
//!
//! Transfers limited by their downloaders can leave the upload link partly
//! idle with every slot taken; when the driver reports that
//! ([`Uploader::handle_link_spare`]), up to `max_active_spare` run.

use std::collections::VecDeque;
use std::time::Duration;

use super::PeerId;
use super::policy::{Admission, Rejection, ServeAll, ServePolicy};
use crate::Bitfield;
use crate::time::Time;

/// Limits of one [`Uploader`].
#[derive(Debug, Clone)]
pub struct UploadConfig {
    /// Uploads running at once; they share the upload link.
    pub max_active: u32,
    /// Uploads running at once while the driver reports spare upload
    /// capacity.
    pub max_active_spare: u32,
    /// Refused peers remembered to be called back.
    pub max_waitlist: u32,
    /// How long a freed slot is kept for the peer it was offered to.
    pub reserve_for: Duration,
}

impl Default for UploadConfig {
    fn default() -> Self {
        UploadConfig {
            max_active: 4,
            max_active_spare: 16,
            max_waitlist: 64,
            reserve_for: Duration::from_millis(250),
        }
    }
}

/// What the driver must do for an [`Uploader`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadAction {
    /// Start sending `piece` to `peer`; report the end with
    /// [`Uploader::handle_upload_done`] or [`Uploader::handle_upload_failed`].
    Serve {
        /// Requester.
        peer: PeerId,
        /// Piece to send.
        piece: u32,
    },
    /// Answer the request with a refusal.
    Reject {
        /// Requester.
        peer: PeerId,
        /// Piece it asked for.
        piece: u32,
        /// Why.
        reason: Rejection,
    },
    /// Tell `peer` (refused as busy before) that a slot is reserved for it.
    Available {
        /// The waiting peer.
        peer: PeerId,
    },
}

/// Counters of an [`Uploader`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UploadStats {
    /// Uploads completed.
    pub served: u64,
    /// Requests refused as busy.
    pub busy: u64,
    /// Requests for pieces not held.
    pub not_held: u64,
    /// Requests redirected by the policy.
    pub redirected: u64,
    /// Admitted requests that ended without delivery.
    pub aborted: u64,
    /// `Available` calls sent.
    pub offered: u64,
    /// Reserved slots nobody came for.
    pub unclaimed: u64,
}

/// The serving side for one blob: a state machine over requests.
///
/// Call order: feed inputs with the `handle_*` methods (each taking `now`),
/// then drain [`Uploader::poll_action`] until it returns `None`, then arm a
/// timer for [`Uploader::poll_timeout`] and call [`Uploader::handle_timeout`]
/// when it fires. Before [`Uploader::handle_request`], a driver that can
/// tell should report [`Uploader::handle_link_spare`].
#[derive(Debug)]
pub struct Uploader<P = ServeAll> {
    config: UploadConfig,
    policy: P,
    held: Bitfield,
    active: Vec<(PeerId, u32)>,
    /// Slots offered to a waiting peer, until when.
    reserved: Vec<(PeerId, Time)>,
    waitlist: VecDeque<PeerId>,
    actions: VecDeque<UploadAction>,
    stats: UploadStats,
    link_spare: bool,
}

impl<P: ServePolicy> Uploader<P> {
    /// An uploader holding `held`, deciding with `policy`.
    pub fn new(config: UploadConfig, held: Bitfield, policy: P) -> Self {
        Uploader {
            config,
            policy,
            held,
            active: Vec::new(),
            reserved: Vec::new(),
            waitlist: VecDeque::new(),
            actions: VecDeque::new(),
            stats: UploadStats::default(),
            link_spare: false,
        }
    }

    /// The policy, for its statistics.
    pub fn policy(&self) -> &P {
        &self.policy
    }

    /// Pieces this uploader serves.
    pub fn held(&self) -> &Bitfield {
        &self.held
    }

    /// Counters.
    pub fn stats(&self) -> &UploadStats {
        &self.stats
    }

    /// Uploads running now.
    pub fn active(&self) -> usize {
        self.active.len()
    }

    /// Fraction of the normal upload slots in use (may exceed 1 while the
    /// link has spare capacity), for announces.
    pub fn load(&self) -> f64 {
        self.active.len() as f64 / f64::from(self.config.max_active.max(1))
    }

    /// Whether the upload link has spare capacity now (the running
    /// transfers do not use all of it). A daemon reads this off its upload
    /// rate limiter before handing in a request.
    pub fn handle_link_spare(&mut self, now: Time, spare: bool) {
        self.link_spare = spare;
        self.offer_free_slots(now);
    }

    fn slots(&self) -> usize {
        let n = if self.link_spare {
            self.config.max_active_spare.max(self.config.max_active)
        } else {
            self.config.max_active
        };
        n as usize
    }

    /// This node now holds `piece` (verified) and may serve it.
    pub fn handle_piece_added(&mut self, _now: Time, piece: u32) {
        if piece < self.held.len() {
            self.held.set(piece);
        }
    }

    /// A peer connected; see [`ServePolicy::on_peer_connected`].
    pub fn handle_peer_connected(
        &mut self,
        now: Time,
        peer: PeerId,
        pieces: &Bitfield,
        weight: f64,
    ) {
        self.policy.on_peer_connected(now, peer, pieces, weight);
    }

    /// A connected peer announced a new piece.
    pub fn handle_have(&mut self, now: Time, peer: PeerId, piece: u32) {
        self.policy.on_have(now, peer, piece);
    }

    /// A peer went away: its uploads end undelivered (the driver has
    /// already stopped the streams) and it leaves the wait list.
    pub fn handle_peer_disconnected(&mut self, now: Time, peer: PeerId) {
        let ended: Vec<u32> = self
            .active
            .iter()
            .filter(|a| a.0 == peer)
            .map(|a| a.1)
            .collect();
        self.active.retain(|a| a.0 != peer);
        for piece in ended {
            self.end_undelivered(now, peer, piece);
        }
        self.reserved.retain(|r| r.0 != peer);
        self.waitlist.retain(|&w| w != peer);
        self.policy.on_peer_disconnected(now, peer);
        self.offer_free_slots(now);
    }

    /// `peer` asks for `piece`.
    pub fn handle_request(&mut self, now: Time, peer: PeerId, piece: u32) {
        if self.active.contains(&(peer, piece)) {
            return;
        }
        if piece >= self.held.len() || !self.held.get(piece) {
            self.stats.not_held += 1;
            self.reject(peer, piece, Rejection::NotHeld);
            return;
        }
        let mine = self.reserved.iter().position(|r| r.0 == peer);
        let taken = self.active.len() + self.reserved.len() - usize::from(mine.is_some());
        let running = self.active.iter().filter(|a| a.0 == peer).count() as u32;
        if taken >= self.slots() || running >= self.policy.peer_limit(peer) {
            self.stats.busy += 1;
            self.reject(peer, piece, Rejection::Busy);
            self.wait(peer);
            return;
        }
        match self.policy.admit(now, peer, piece, &self.held) {
            Admission::Reject(reason) => {
                if matches!(reason, Rejection::Redirect { .. }) {
                    self.stats.redirected += 1;
                }
                self.reject(peer, piece, reason);
            }
            Admission::Allow => {
                if let Some(i) = mine {
                    self.reserved.swap_remove(i);
                }
                self.active.push((peer, piece));
                self.actions.push_back(UploadAction::Serve { peer, piece });
            }
        }
    }

    /// `peer` no longer wants `piece` (it got it elsewhere); if it was
    /// running, the driver has stopped the stream.
    pub fn handle_cancel(&mut self, now: Time, peer: PeerId, piece: u32) {
        if let Some(i) = self.active.iter().position(|&a| a == (peer, piece)) {
            self.active.swap_remove(i);
            self.end_undelivered(now, peer, piece);
            self.offer_free_slots(now);
        }
    }

    /// All bytes of `piece` went out to `peer`.
    pub fn handle_upload_done(&mut self, now: Time, peer: PeerId, piece: u32) {
        if let Some(i) = self.active.iter().position(|&a| a == (peer, piece)) {
            self.active.swap_remove(i);
            self.stats.served += 1;
            self.policy.on_end(now, peer, piece, true);
            self.offer_free_slots(now);
        }
    }

    /// Sending `piece` to `peer` failed (stream reset, write error).
    pub fn handle_upload_failed(&mut self, now: Time, peer: PeerId, piece: u32) {
        self.handle_cancel(now, peer, piece);
    }

    /// Frees reservations nobody claimed.
    pub fn handle_timeout(&mut self, now: Time) {
        let before = self.reserved.len();
        self.reserved.retain(|r| r.1 > now);
        let expired = before - self.reserved.len();
        if expired > 0 {
            self.stats.unclaimed += expired as u64;
            self.offer_free_slots(now);
        }
    }

    /// The next thing to do, if any.
    pub fn poll_action(&mut self) -> Option<UploadAction> {
        self.actions.pop_front()
    }

    /// When [`Uploader::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Time> {
        self.reserved.iter().map(|r| r.1).min()
    }

    fn reject(&mut self, peer: PeerId, piece: u32, reason: Rejection) {
        self.actions.push_back(UploadAction::Reject {
            peer,
            piece,
            reason,
        });
    }

    fn wait(&mut self, peer: PeerId) {
        let known = self.waitlist.contains(&peer) || self.reserved.iter().any(|r| r.0 == peer);
        if !known && self.waitlist.len() < self.config.max_waitlist as usize {
            self.waitlist.push_back(peer);
        }
    }

    fn end_undelivered(&mut self, now: Time, peer: PeerId, piece: u32) {
        self.stats.aborted += 1;
        self.policy.on_end(now, peer, piece, false);
    }

    /// Offers free slots to waiting peers, in the policy's order.
    fn offer_free_slots(&mut self, now: Time) {
        while self.active.len() + self.reserved.len() < self.slots() && !self.waitlist.is_empty() {
            self.waitlist.make_contiguous();
            let pick = self.policy.pick_waiting(self.waitlist.as_slices().0);
            let Some(peer) = self.waitlist.remove(pick.min(self.waitlist.len() - 1)) else {
                return;
            };
            self.reserved.push((peer, now + self.config.reserve_for));
            self.stats.offered += 1;
            self.actions.push_back(UploadAction::Available { peer });
        }
    }
}

#[cfg(test)]
mod tests;
