//! The serving side of a peer: bounded concurrent uploads, a bounded queue,
//! and a [`ServePolicy`] deciding which requests deserve a slot at all.
//!
//! An uploader that queued every request would hide its load from the
//! requesters: they would wait behind each other instead of asking an idle
//! peer. So an [`Uploader`] runs at most `max_active` uploads, keeps at most
//! `max_queued` waiting (each for at most `max_queue_wait`), and refuses
//! anything beyond that with [`Rejection::Busy`], which tells the requester's
//! [`Download`](super::Download) to try elsewhere.

use std::collections::VecDeque;
use std::time::Duration;

use super::PeerId;
use crate::Bitfield;
use crate::time::Time;

/// Limits of one [`Uploader`].
#[derive(Debug, Clone)]
pub struct UploadConfig {
    /// Uploads running at once; they share the upload link.
    pub max_active: u32,
    /// Uploads running at once while the driver reports spare upload
    /// capacity ([`Uploader::handle_link_spare`]): transfers limited by
    /// their downloaders leave room for more.
    pub max_active_spare: u32,
    /// Requests waiting for a slot; more are refused as busy.
    pub max_queued: u32,
    /// A queued request waiting longer than this is refused as busy, so
    /// its requester asks someone else.
    pub max_queue_wait: Duration,
}

impl Default for UploadConfig {
    fn default() -> Self {
        UploadConfig {
            max_active: 4,
            max_active_spare: 16,
            max_queued: 0,
            max_queue_wait: Duration::from_secs(2),
        }
    }
}

/// Why a request was not served; sent back to the requester.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// Every upload slot and the queue are full: ask another peer, or this
    /// one later.
    Busy,
    /// The uploader does not hold the piece.
    NotHeld,
    /// A seed wants this requester to take other pieces first (the least
    /// distributed ones); `hint` lists pieces it will serve.
    Redirect {
        /// Pieces the seed reserved for this requester, best first.
        hint: Vec<u32>,
    },
}

/// What a [`ServePolicy`] says about one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Serve it when a slot is free.
    Allow,
    /// Refuse it with this reason.
    Reject(Rejection),
}

/// Which requests an [`Uploader`] serves, and in what order: the piece of
/// the serving side that differs between an ordinary peer ([`ServeAll`]) and
/// a seed ([`SuperSeed`](super::SuperSeed)).
///
/// The uploader has already checked that it holds the piece and that a slot
/// or queue place is free before it calls [`ServePolicy::admit`]. Every
/// admitted request ends in exactly one [`ServePolicy::on_end`].
pub trait ServePolicy {
    /// Whether `peer` may have `piece`; `held` is what the uploader holds.
    fn admit(&mut self, now: Time, peer: PeerId, piece: u32, held: &Bitfield) -> Admission;

    /// An admitted request ended: `delivered` if all bytes went out, false
    /// if it was cancelled, failed, or dropped from the queue.
    fn on_end(&mut self, now: Time, peer: PeerId, piece: u32, delivered: bool) {
        let _ = (now, peer, piece, delivered);
    }

    /// Concurrent uploads one peer may have.
    fn peer_limit(&self, peer: PeerId) -> u32 {
        let _ = peer;
        u32::MAX
    }

    /// Index into `waiting` (never empty; each entry `(peer, piece)`, oldest
    /// first, all startable) of the request to start next.
    fn pick_queued(&mut self, waiting: &[(PeerId, u32)]) -> usize {
        let _ = waiting;
        0
    }

    /// A peer connected, holding `pieces`, with relative upload capacity
    /// `upload_weight` (1.0 when unknown).
    fn on_peer_connected(
        &mut self,
        now: Time,
        peer: PeerId,
        pieces: &Bitfield,
        upload_weight: f64,
    ) {
        let _ = (now, peer, pieces, upload_weight);
    }

    /// A connected peer announced a new piece.
    fn on_have(&mut self, now: Time, peer: PeerId, piece: u32) {
        let _ = (now, peer, piece);
    }

    /// A peer went away.
    fn on_peer_disconnected(&mut self, now: Time, peer: PeerId) {
        let _ = (now, peer);
    }
}

impl<P: ServePolicy + ?Sized> ServePolicy for Box<P> {
    fn admit(&mut self, now: Time, peer: PeerId, piece: u32, held: &Bitfield) -> Admission {
        (**self).admit(now, peer, piece, held)
    }
    fn on_end(&mut self, now: Time, peer: PeerId, piece: u32, delivered: bool) {
        (**self).on_end(now, peer, piece, delivered)
    }
    fn peer_limit(&self, peer: PeerId) -> u32 {
        (**self).peer_limit(peer)
    }
    fn pick_queued(&mut self, waiting: &[(PeerId, u32)]) -> usize {
        (**self).pick_queued(waiting)
    }
    fn on_peer_connected(
        &mut self,
        now: Time,
        peer: PeerId,
        pieces: &Bitfield,
        upload_weight: f64,
    ) {
        (**self).on_peer_connected(now, peer, pieces, upload_weight)
    }
    fn on_have(&mut self, now: Time, peer: PeerId, piece: u32) {
        (**self).on_have(now, peer, piece)
    }
    fn on_peer_disconnected(&mut self, now: Time, peer: PeerId) {
        (**self).on_peer_disconnected(now, peer)
    }
}

/// The policy of an ordinary peer: serve any piece held, first come first
/// served.
#[derive(Debug, Clone, Copy, Default)]
pub struct ServeAll;

impl ServePolicy for ServeAll {
    fn admit(&mut self, _: Time, _: PeerId, _: u32, _: &Bitfield) -> Admission {
        Admission::Allow
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
}

/// Counters of an [`Uploader`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UploadStats {
    /// Uploads completed.
    pub served: u64,
    /// Requests refused as busy (including queue time-outs).
    pub busy: u64,
    /// Requests for pieces not held.
    pub not_held: u64,
    /// Requests redirected by the policy.
    pub redirected: u64,
    /// Admitted requests that ended without delivery.
    pub aborted: u64,
}

#[derive(Debug, Clone)]
struct Queued {
    peer: PeerId,
    piece: u32,
    since: Time,
}

/// The serving side for one blob: a state machine over requests.
///
/// Call order: feed inputs with the `handle_*` methods (each taking `now`),
/// then drain [`Uploader::poll_action`] until it returns `None`, then arm a
/// timer for [`Uploader::poll_timeout`] and call [`Uploader::handle_timeout`]
/// when it fires. A [`UploadAction::Serve`] may come out of any `handle_*`
/// call that frees a slot, not only out of the request's own.
#[derive(Debug)]
pub struct Uploader<P = ServeAll> {
    config: UploadConfig,
    policy: P,
    held: Bitfield,
    active: Vec<(PeerId, u32)>,
    queue: VecDeque<Queued>,
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
            queue: VecDeque::new(),
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

    /// Fraction of upload slots in use, 0..=1, for announces.
    pub fn load(&self) -> f64 {
        self.active.len() as f64 / f64::from(self.config.max_active.max(1))
    }

    /// Whether the upload link has spare capacity now (the running
    /// transfers do not use all of it). While it has, up to
    /// `max_active_spare` uploads run instead of `max_active`. A daemon
    /// reads this off its upload rate limiter before handing in a request.
    pub fn handle_link_spare(&mut self, _now: Time, spare: bool) {
        self.link_spare = spare;
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

    /// A peer went away: its queued and running uploads end undelivered
    /// (the driver has already stopped the streams).
    pub fn handle_peer_disconnected(&mut self, now: Time, peer: PeerId) {
        let mut ended = Vec::new();
        self.queue.retain(|q| {
            let keep = q.peer != peer;
            if !keep {
                ended.push(q.piece);
            }
            keep
        });
        self.active.retain(|&(p, piece)| {
            let keep = p != peer;
            if !keep {
                ended.push(piece);
            }
            keep
        });
        for piece in ended {
            self.stats.aborted += 1;
            self.policy.on_end(now, peer, piece, false);
        }
        self.policy.on_peer_disconnected(now, peer);
        self.start_queued(now);
    }

    /// `peer` asks for `piece`.
    pub fn handle_request(&mut self, now: Time, peer: PeerId, piece: u32) {
        let duplicate = self.active.contains(&(peer, piece))
            || self
                .queue
                .iter()
                .any(|q| q.peer == peer && q.piece == piece);
        if duplicate {
            return;
        }
        if piece >= self.held.len() || !self.held.get(piece) {
            self.stats.not_held += 1;
            self.reject(peer, piece, Rejection::NotHeld);
            return;
        }
        let slot_free = self.active.len() < self.slots();
        let queue_free = self.queue.len() < self.config.max_queued as usize;
        if !slot_free && !queue_free {
            self.stats.busy += 1;
            self.reject(peer, piece, Rejection::Busy);
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
                self.queue.push_back(Queued {
                    peer,
                    piece,
                    since: now,
                });
                self.start_queued(now);
                // Queued behind the per-peer limit with no room left: refuse
                // rather than hold more than `max_queued`.
                if self.queue.len() > self.config.max_queued as usize
                    && let Some(q) = self.queue.pop_back()
                {
                    self.end_undelivered(now, q.peer, q.piece);
                    self.stats.busy += 1;
                    self.reject(q.peer, q.piece, Rejection::Busy);
                }
            }
        }
    }

    /// `peer` no longer wants `piece` (it got it elsewhere); if it was
    /// running, the driver has stopped the stream.
    pub fn handle_cancel(&mut self, now: Time, peer: PeerId, piece: u32) {
        let before = self.queue.len() + self.active.len();
        self.queue.retain(|q| !(q.peer == peer && q.piece == piece));
        self.active.retain(|&a| a != (peer, piece));
        if self.queue.len() + self.active.len() < before {
            self.end_undelivered(now, peer, piece);
            self.start_queued(now);
        }
    }

    /// All bytes of `piece` went out to `peer`.
    pub fn handle_upload_done(&mut self, now: Time, peer: PeerId, piece: u32) {
        if let Some(i) = self.active.iter().position(|&a| a == (peer, piece)) {
            self.active.swap_remove(i);
            self.stats.served += 1;
            self.policy.on_end(now, peer, piece, true);
            self.start_queued(now);
        }
    }

    /// Sending `piece` to `peer` failed (stream reset, write error).
    pub fn handle_upload_failed(&mut self, now: Time, peer: PeerId, piece: u32) {
        if let Some(i) = self.active.iter().position(|&a| a == (peer, piece)) {
            self.active.swap_remove(i);
            self.end_undelivered(now, peer, piece);
            self.start_queued(now);
        }
    }

    /// Refuses queued requests that waited longer than `max_queue_wait`.
    pub fn handle_timeout(&mut self, now: Time) {
        while let Some(q) = self.queue.front() {
            if q.since + self.config.max_queue_wait > now {
                break;
            }
            let q = self.queue.pop_front().expect("front exists");
            self.end_undelivered(now, q.peer, q.piece);
            self.stats.busy += 1;
            self.reject(q.peer, q.piece, Rejection::Busy);
        }
    }

    /// The next thing to do, if any.
    pub fn poll_action(&mut self) -> Option<UploadAction> {
        self.actions.pop_front()
    }

    /// When [`Uploader::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Time> {
        self.queue
            .front()
            .map(|q| q.since + self.config.max_queue_wait)
    }

    fn reject(&mut self, peer: PeerId, piece: u32, reason: Rejection) {
        self.actions.push_back(UploadAction::Reject {
            peer,
            piece,
            reason,
        });
    }

    fn end_undelivered(&mut self, now: Time, peer: PeerId, piece: u32) {
        self.stats.aborted += 1;
        self.policy.on_end(now, peer, piece, false);
    }

    /// Starts queued requests while slots are free, in the policy's order.
    fn start_queued(&mut self, _now: Time) {
        while self.active.len() < self.slots() {
            let startable: Vec<(usize, (PeerId, u32))> = self
                .queue
                .iter()
                .enumerate()
                .filter(|(_, q)| {
                    let running = self.active.iter().filter(|a| a.0 == q.peer).count();
                    (running as u32) < self.policy.peer_limit(q.peer)
                })
                .map(|(i, q)| (i, (q.peer, q.piece)))
                .collect();
            if startable.is_empty() {
                return;
            }
            let pairs: Vec<(PeerId, u32)> = startable.iter().map(|s| s.1).collect();
            let pick = self.policy.pick_queued(&pairs).min(pairs.len() - 1);
            let q = self.queue.remove(startable[pick].0).expect("index valid");
            self.active.push((q.peer, q.piece));
            self.actions.push_back(UploadAction::Serve {
                peer: q.peer,
                piece: q.piece,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serve(peer: u64, piece: u32) -> UploadAction {
        UploadAction::Serve {
            peer: PeerId(peer),
            piece,
        }
    }

    fn drain<P: ServePolicy>(u: &mut Uploader<P>) -> Vec<UploadAction> {
        std::iter::from_fn(|| u.poll_action()).collect()
    }

    #[test]
    fn bounded_slots_then_queue_then_busy() {
        let cfg = UploadConfig {
            max_active: 1,
            max_active_spare: 1,
            max_queued: 1,
            max_queue_wait: Duration::from_secs(1),
        };
        let mut u = Uploader::new(cfg, Bitfield::full(4), ServeAll);
        let t = Time::ZERO;
        u.handle_request(t, PeerId(1), 0);
        u.handle_request(t, PeerId(2), 1);
        u.handle_request(t, PeerId(3), 2);
        let busy = UploadAction::Reject {
            peer: PeerId(3),
            piece: 2,
            reason: Rejection::Busy,
        };
        assert_eq!(drain(&mut u), [serve(1, 0), busy]);
        u.handle_upload_done(t, PeerId(1), 0);
        assert_eq!(drain(&mut u), [serve(2, 1)]);
        assert_eq!(u.stats().served, 1);
    }

    #[test]
    fn queue_wait_is_bounded_and_not_held_is_refused() {
        let cfg = UploadConfig {
            max_active: 1,
            max_active_spare: 1,
            max_queued: 2,
            max_queue_wait: Duration::from_secs(1),
        };
        let mut held = Bitfield::new(4);
        held.set(0);
        held.set(1);
        let mut u = Uploader::new(cfg, held, ServeAll);
        u.handle_request(Time::ZERO, PeerId(1), 0);
        u.handle_request(Time::ZERO, PeerId(2), 1);
        u.handle_request(Time::ZERO, PeerId(2), 3);
        assert_eq!(u.poll_timeout(), Some(Time::from_millis(1000)));
        u.handle_timeout(Time::from_millis(1000));
        let got = drain(&mut u);
        assert_eq!(got.len(), 3);
        assert!(matches!(
            got[1],
            UploadAction::Reject {
                piece: 3,
                reason: Rejection::NotHeld,
                ..
            }
        ));
        assert!(matches!(
            got[2],
            UploadAction::Reject {
                piece: 1,
                reason: Rejection::Busy,
                ..
            }
        ));
        assert_eq!(u.poll_timeout(), None);
    }

    #[test]
    fn cancel_and_disconnect_free_slots() {
        let cfg = UploadConfig {
            max_active: 1,
            max_active_spare: 1,
            max_queued: 4,
            max_queue_wait: Duration::from_secs(5),
        };
        let mut u = Uploader::new(cfg, Bitfield::full(4), ServeAll);
        let t = Time::ZERO;
        u.handle_request(t, PeerId(1), 0);
        u.handle_request(t, PeerId(1), 1);
        u.handle_request(t, PeerId(2), 2);
        assert_eq!(drain(&mut u), [serve(1, 0)]);
        u.handle_cancel(t, PeerId(1), 0);
        assert_eq!(drain(&mut u), [serve(1, 1)]);
        u.handle_peer_disconnected(t, PeerId(1));
        assert_eq!(drain(&mut u), [serve(2, 2)]);
        assert_eq!(u.stats().aborted, 2);
    }
}
