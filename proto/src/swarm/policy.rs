//! What an uploader may serve: the [`ServePolicy`] trait, its answers, and
//! the plain [`ServeAll`] policy of an ordinary peer.
//!
//! Serving mechanics (slots, the wait list, notifications) are the same for
//! every node and live in [`Uploader`](super::Uploader); what differs
//! between an agent and a supernode is only which request gets served and
//! who is told first when a slot frees, so that is a small trait, like
//! quinn's congestion `Controller` (STYLE.md item 5).

use super::PeerId;
use crate::Bitfield;
use crate::time::Time;

/// Why a request was not served; sent back to the requester.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// Every upload slot is taken. The requester is put on the wait list
    /// and told with an `Available` message when a slot frees for it.
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
    /// Serve it.
    Allow,
    /// Refuse it with this reason.
    Reject(Rejection),
}

/// Which requests an [`Uploader`](super::Uploader) serves, and who hears
/// first of a free slot: the part of the serving side that differs between
/// an ordinary peer ([`ServeAll`]) and a seed ([`SuperSeed`](super::SuperSeed)).
///
/// The uploader has already checked that it holds the piece and that a slot
/// is free before it calls [`ServePolicy::admit`]. Every admitted request
/// ends in exactly one [`ServePolicy::on_end`].
pub trait ServePolicy {
    /// Whether `peer` may have `piece`; `held` is what the uploader holds.
    fn admit(&mut self, now: Time, peer: PeerId, piece: u32, held: &Bitfield) -> Admission;

    /// An admitted request ended: `delivered` if all bytes went out, false
    /// if it was cancelled or failed.
    fn on_end(&mut self, now: Time, peer: PeerId, piece: u32, delivered: bool) {
        let _ = (now, peer, piece, delivered);
    }

    /// Concurrent uploads one peer may have.
    fn peer_limit(&self, peer: PeerId) -> u32 {
        let _ = peer;
        u32::MAX
    }

    /// Index into `waiting` (never empty, oldest first) of the peer to
    /// offer a free slot to.
    fn pick_waiting(&mut self, waiting: &[PeerId]) -> usize {
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
    fn pick_waiting(&mut self, waiting: &[PeerId]) -> usize {
        (**self).pick_waiting(waiting)
    }
    fn on_peer_connected(&mut self, now: Time, peer: PeerId, pieces: &Bitfield, weight: f64) {
        (**self).on_peer_connected(now, peer, pieces, weight)
    }
    fn on_have(&mut self, now: Time, peer: PeerId, piece: u32) {
        (**self).on_have(now, peer, piece)
    }
    fn on_peer_disconnected(&mut self, now: Time, peer: PeerId) {
        (**self).on_peer_disconnected(now, peer)
    }
}

/// The policy of an ordinary peer: serve any piece held; a free slot goes
/// to the longest waiting peer.
///
/// (Calling the peer that holds the fewest pieces first was tried in the
/// simulator: it evened out an upload-bound swarm slightly but made the
/// download-bound one half again slower, because peers moving in lockstep
/// have little to trade.)
#[derive(Debug, Clone, Copy, Default)]
pub struct ServeAll;

impl ServePolicy for ServeAll {
    fn admit(&mut self, _: Time, _: PeerId, _: u32, _: &Bitfield) -> Admission {
        Admission::Allow
    }
}
