//! Super-seeding: the supernode's [`ServePolicy`].
//!
//! The seed's upload is the scarcest link of a swarm that has just started:
//! every byte it sends twice is a byte it did not send of a piece nobody
//! has yet. Kumar and Ross's constructive schedule (DESIGN.md, "Scheduling
//! goals") has the seed hand out distinct pieces, in proportion to each
//! peer's upload capacity, and the peers relay them to each other. This
//! policy does that for a pull-based protocol:
//!
//! - A request for a piece that has been handed out more often than some
//!   piece the requester lacks is refused with [`Rejection::Redirect`],
//!   whose hint names the least distributed pieces the requester lacks
//!   (least promised to others, then rarest in the swarm, then lowest
//!   index, so that pieces enter the swarm in the order clients read them). Hinted pieces count as promised for a while, so that
//!   concurrent requesters receive different hints. Hence each piece goes
//!   out once before any piece goes out twice. A piece whose first copy
//!   has not yet been announced by its receiver is not sent again for a
//!   while (`transit_grace`): the requester is redirected to wait for it
//!   at that peer.
//! - Each peer may have a number of concurrent uploads from the seed
//!   proportional to its upload weight, and among queued requests the peer
//!   that received least relative to its weight goes first.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use super::PeerId;
use super::policy::{Admission, Rejection, ServePolicy};
use crate::Bitfield;
use crate::time::Time;

/// Parameters of [`SuperSeed`].
#[derive(Debug, Clone)]
pub struct SuperSeedConfig {
    /// Pieces named in one redirect hint.
    pub hint_len: usize,
    /// How long a hinted piece stays reserved for its requester.
    pub promise_ttl: Duration,
    /// Concurrent uploads to a peer of average upload weight; a peer gets
    /// this times its weight relative to the mean, at least one.
    pub per_peer_active: f64,
    /// How long after sending a piece that no peer announced yet the seed
    /// refuses to send it again (the copy is on its way). After that the
    /// receiver is assumed gone.
    pub transit_grace: Duration,
}

impl Default for SuperSeedConfig {
    fn default() -> Self {
        SuperSeedConfig {
            hint_len: 2,
            promise_ttl: Duration::from_secs(2),
            per_peer_active: 2.0,
            transit_grace: Duration::from_secs(2),
        }
    }
}

#[derive(Debug)]
struct SeedPeer {
    has: Bitfield,
    weight: f64,
    /// Pieces delivered to this peer.
    received: u64,
}

/// The seeding policy; see the module documentation.
#[derive(Debug)]
pub struct SuperSeed {
    config: SuperSeedConfig,
    /// Admitted (running, queued or delivered), per piece.
    admitted: Vec<u32>,
    /// Outstanding hints naming each piece.
    promised: Vec<u32>,
    /// When each piece was last admitted.
    last_sent: Vec<Option<Time>>,
    /// Copies delivered, per piece.
    delivered: Vec<u32>,
    /// Connected peers holding each piece.
    avail: Vec<u32>,
    peers: BTreeMap<PeerId, SeedPeer>,
    /// Outstanding promises, oldest first (the TTL is constant).
    promises: VecDeque<(Time, PeerId, u32)>,
    pieces: u32,
}

impl SuperSeed {
    /// A policy for a blob of `pieces` pieces.
    pub fn new(config: SuperSeedConfig, pieces: u32) -> Self {
        let n = pieces as usize;
        SuperSeed {
            config,
            admitted: vec![0; n],
            promised: vec![0; n],
            last_sent: vec![None; n],
            delivered: vec![0; n],
            avail: vec![0; n],
            peers: BTreeMap::new(),
            promises: VecDeque::new(),
            pieces,
        }
    }

    /// Copies of each piece delivered so far.
    pub fn delivered(&self) -> &[u32] {
        &self.delivered
    }

    /// Total pieces delivered, all copies.
    pub fn delivered_total(&self) -> u64 {
        self.delivered.iter().map(|&c| u64::from(c)).sum()
    }

    fn mean_weight(&self) -> f64 {
        if self.peers.is_empty() {
            return 1.0;
        }
        let sum: f64 = self.peers.values().map(|p| p.weight).sum();
        (sum / self.peers.len() as f64).max(f64::MIN_POSITIVE)
    }

    fn expire_promises(&mut self, now: Time) {
        while let Some(&(at, _, piece)) = self.promises.front() {
            if at + self.config.promise_ttl > now {
                break;
            }
            self.promises.pop_front();
            self.promised[piece as usize] -= 1;
        }
    }

    fn take_promise(&mut self, peer: PeerId, piece: u32) {
        let found = self
            .promises
            .iter()
            .position(|&(_, p, i)| p == peer && i == piece);
        if let Some(i) = found {
            self.promises.remove(i);
            self.promised[piece as usize] -= 1;
        }
    }

    /// Pieces `peer` lacks that went out less often than `piece`: least
    /// admitted first, then least promised, then rarest, then lowest index.
    /// In index order because every client reads its blob from the start:
    /// pieces entering the swarm in order are what the streaming windows
    /// ask for first (random order left the in-order stream at 5% of the
    /// blob while the download was at 50%).
    fn better_pieces(&mut self, peer: PeerId, piece: u32, held: &Bitfield) -> Vec<u32> {
        let limit = self.admitted[piece as usize];
        if limit == 0 {
            return Vec::new();
        }
        let has = self.peers.get(&peer).map(|p| &p.has);
        let mut better: Vec<(u32, u32, u32, u32)> = Vec::new();
        for i in held.iter_held() {
            if i >= self.pieces || has.is_some_and(|h| h.get(i)) {
                continue;
            }
            let (a, p) = (self.admitted[i as usize], self.promised[i as usize]);
            if a < limit {
                better.push((a, p, self.avail[i as usize], i));
            }
        }
        better.sort_unstable();
        better.truncate(self.config.hint_len.max(1));
        better.into_iter().map(|b| b.3).collect()
    }
}

impl ServePolicy for SuperSeed {
    fn admit(&mut self, now: Time, peer: PeerId, piece: u32, held: &Bitfield) -> Admission {
        if piece >= self.pieces {
            return Admission::Reject(Rejection::NotHeld);
        }
        self.expire_promises(now);
        self.take_promise(peer, piece);
        let hint = self.better_pieces(peer, piece, held);
        if !hint.is_empty() {
            for &h in &hint {
                self.promised[h as usize] += 1;
                self.promises.push_back((now, peer, h));
            }
            return Admission::Reject(Rejection::Redirect { hint });
        }
        let i = piece as usize;
        let on_its_way = self.last_sent[i].is_some_and(|t| now < t + self.config.transit_grace);
        if self.admitted[i] > 0 && self.avail[i] == 0 && on_its_way {
            // Its first copy is still on its way into the swarm: the
            // requester will see it at a peer in a moment.
            return Admission::Reject(Rejection::Redirect { hint: Vec::new() });
        }
        self.admitted[i] += 1;
        self.last_sent[i] = Some(now);
        Admission::Allow
    }

    fn on_end(&mut self, _now: Time, peer: PeerId, piece: u32, delivered: bool) {
        let i = piece as usize;
        if delivered {
            self.delivered[i] += 1;
            if let Some(p) = self.peers.get_mut(&peer) {
                p.received += 1;
            }
        } else {
            self.admitted[i] = self.admitted[i].saturating_sub(1);
        }
    }

    fn peer_limit(&self, peer: PeerId) -> u32 {
        let weight = self.peers.get(&peer).map_or(1.0, |p| p.weight);
        let share = self.config.per_peer_active * weight / self.mean_weight();
        (share.round() as u32).max(1)
    }

    fn pick_waiting(&mut self, waiting: &[PeerId]) -> usize {
        // Least received relative to weight first; the oldest among equals.
        let score = |peer: &PeerId| {
            self.peers
                .get(peer)
                .map_or(0.0, |p| p.received as f64 / p.weight.max(f64::MIN_POSITIVE))
        };
        let mut best = 0;
        for (i, peer) in waiting.iter().enumerate() {
            if score(peer) < score(&waiting[best]) {
                best = i;
            }
        }
        best
    }

    fn on_peer_connected(&mut self, _now: Time, peer: PeerId, pieces: &Bitfield, weight: f64) {
        let has = if pieces.len() == self.pieces {
            pieces.clone()
        } else {
            Bitfield::new(self.pieces)
        };
        if let Some(old) = self.peers.remove(&peer) {
            for i in old.has.iter_held() {
                self.avail[i as usize] -= 1;
            }
        }
        for i in has.iter_held() {
            self.avail[i as usize] += 1;
        }
        let weight = if weight.is_finite() && weight > 0.0 {
            weight
        } else {
            1.0
        };
        self.peers.insert(
            peer,
            SeedPeer {
                has,
                weight,
                received: 0,
            },
        );
    }

    fn on_have(&mut self, _now: Time, peer: PeerId, piece: u32) {
        if piece >= self.pieces {
            return;
        }
        if let Some(p) = self.peers.get_mut(&peer)
            && p.has.set(piece)
        {
            self.avail[piece as usize] += 1;
        }
    }

    fn on_peer_disconnected(&mut self, _now: Time, peer: PeerId) {
        if let Some(old) = self.peers.remove(&peer) {
            for i in old.has.iter_held() {
                self.avail[i as usize] -= 1;
            }
        }
    }
}

#[cfg(test)]
mod tests;
