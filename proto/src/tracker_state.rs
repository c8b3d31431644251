//! The tracker's soft state: per blob, who holds what, and who to send
//! where.
//!
//! Everything here is rebuilt from announces, so a restarted tracker loses
//! nothing that matters for long (DESIGN.md, "Scale beyond one machine").
//! Every announce refreshes one peer's entry and returns a ranked, bounded
//! peer list (see `rank`); peers that stop announcing expire; a blob nobody
//! holds is handed to one supernode, picked by [`rendezvous`] hashing so
//! that every tracker picks the same one. Memory is bounded by
//! `max_blobs × max_peers_per_blob` entries, and labels and addresses by
//! their own limits.

mod rank;
mod rendezvous;
mod types;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::swarm::PeerId;
use crate::time::Time;
use crate::{Bitfield, Digest};

pub use rendezvous::{rendezvous, rendezvous_order, rendezvous_weight};
pub use types::{Announce, AnnounceError, AnnounceReply, PeerInfo, TrackerAction, TrackerConfig};

#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub addr: String,
    pub pieces: Bitfield,
    pub load: u8,
    pub labels: BTreeMap<String, String>,
    pub seed: bool,
    pub last: Time,
    pub expires: Time,
}

#[derive(Debug, Default)]
pub(crate) struct Swarm {
    pub peers: BTreeMap<PeerId, Entry>,
    /// Piece count, once a peer announced a non-empty bitfield.
    pub pieces: Option<u32>,
    pub last: Time,
    seed_asked: Option<Time>,
}

/// The tracker's state for all blobs; see the module documentation.
///
/// Call order: [`TrackerState::handle_announce`] per announce (it answers
/// directly); after each call drain [`TrackerState::poll_action`]; arm a
/// timer for [`TrackerState::poll_timeout`] and call
/// [`TrackerState::handle_timeout`] when it fires, which expires peers.
#[derive(Debug)]
pub struct TrackerState {
    config: TrackerConfig,
    swarms: HashMap<Digest, Swarm>,
    /// (expiry time, blob, peer) for every entry.
    expiry: BTreeSet<(Time, Digest, PeerId)>,
    /// (last announce, blob) for every blob.
    activity: BTreeSet<(Time, Digest)>,
    actions: VecDeque<TrackerAction>,
    rng: SmallRng,
    peer_count: usize,
}

impl TrackerState {
    /// An empty tracker; `rng_seed` drives ranking and jitter.
    pub fn new(config: TrackerConfig, rng_seed: u64) -> Self {
        TrackerState {
            config,
            swarms: HashMap::new(),
            expiry: BTreeSet::new(),
            activity: BTreeSet::new(),
            actions: VecDeque::new(),
            rng: SmallRng::seed_from_u64(rng_seed),
            peer_count: 0,
        }
    }

    /// Blobs tracked.
    pub fn blob_count(&self) -> usize {
        self.swarms.len()
    }

    /// Peer entries over all blobs.
    pub fn peer_count(&self) -> usize {
        self.peer_count
    }

    /// Peers known for `blob`, with the pieces each holds.
    pub fn peers(&self, blob: &Digest) -> impl Iterator<Item = (PeerId, &Bitfield)> {
        self.swarms
            .get(blob)
            .into_iter()
            .flat_map(|s| s.peers.iter().map(|(&id, e)| (id, &e.pieces)))
    }

    /// How long an entry lives without a new announce.
    fn ttl(&self) -> Duration {
        self.base_interval()
            .mul_f64(1.0 + self.config.interval_jitter.max(0.0))
            .saturating_mul(self.config.expiry_intervals.max(1))
    }

    fn base_interval(&self) -> Duration {
        let rate = self.config.max_announces_per_sec.max(f64::MIN_POSITIVE);
        let spread = Duration::from_secs_f64((self.peer_count as f64 / rate).min(86_400.0));
        self.config.announce_interval.max(spread)
    }

    fn validate(&self, a: &Announce) -> Result<(), AnnounceError> {
        let max = self.config.max_text_len;
        if a.labels.len() > self.config.max_labels {
            return Err(AnnounceError::TooManyLabels(
                a.labels.len(),
                self.config.max_labels,
            ));
        }
        let too_long =
            a.addr.len() > max || a.labels.iter().any(|(k, v)| k.len() > max || v.len() > max);
        if too_long {
            return Err(AnnounceError::TextTooLong(max));
        }
        if let Some(expected) = self.swarms.get(&a.blob).and_then(|s| s.pieces)
            && !a.pieces.is_empty()
            && a.pieces.len() != expected
        {
            return Err(AnnounceError::BitfieldLength {
                expected,
                got: a.pieces.len(),
            });
        }
        Ok(())
    }

    /// Records `a` and answers with peers for it.
    pub fn handle_announce(
        &mut self,
        now: Time,
        a: Announce,
    ) -> Result<AnnounceReply, AnnounceError> {
        self.validate(&a)?;
        let interval = {
            let jitter = self.config.interval_jitter.clamp(0.0, 1.0);
            let factor = 1.0 + self.rng.random_range(-jitter..=jitter);
            self.base_interval().mul_f64(factor)
        };
        if a.stopped {
            self.remove(&a.blob, a.peer);
            return Ok(AnnounceReply {
                peers: Vec::new(),
                interval,
            });
        }
        self.touch_blob(now, a.blob);
        self.upsert(now, &a);
        let peers = rank::rank(self, &a);
        self.maybe_ask_seed(now, a.blob);
        Ok(AnnounceReply { peers, interval })
    }

    /// Expires peers that stopped announcing.
    pub fn handle_timeout(&mut self, now: Time) {
        while let Some(&(at, blob, peer)) = self.expiry.first() {
            if at > now {
                break;
            }
            self.remove(&blob, peer);
        }
    }

    /// When [`TrackerState::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Time> {
        self.expiry.first().map(|e| e.0)
    }

    /// The next thing to do, if any.
    pub fn poll_action(&mut self) -> Option<TrackerAction> {
        self.actions.pop_front()
    }

    fn touch_blob(&mut self, now: Time, blob: Digest) {
        if let Some(s) = self.swarms.get(&blob) {
            self.activity.remove(&(s.last, blob));
        } else {
            while self.swarms.len() >= self.config.max_blobs.max(1) {
                let Some(&(_, old)) = self.activity.first() else {
                    break;
                };
                self.remove_blob(&old);
            }
            self.swarms.insert(blob, Swarm::default());
        }
        let s = self.swarms.get_mut(&blob).expect("inserted above");
        s.last = now;
        self.activity.insert((now, blob));
    }

    fn upsert(&mut self, now: Time, a: &Announce) {
        let expires = now + self.ttl();
        let swarm = self.swarms.get_mut(&a.blob).expect("touched");
        if !a.pieces.is_empty() {
            swarm.pieces.get_or_insert(a.pieces.len());
        }
        let known = swarm.peers.contains_key(&a.peer);
        let evict = if !known && swarm.peers.len() >= self.config.max_peers_per_blob.max(1) {
            // The stalest non-seed goes (or the stalest seed if only seeds).
            swarm
                .peers
                .iter()
                .min_by_key(|(id, e)| (e.seed, e.last, **id))
                .map(|(&id, _)| id)
        } else {
            None
        };
        if let Some(id) = evict {
            self.remove(&a.blob, id);
        }
        let swarm = self.swarms.get_mut(&a.blob).expect("touched");
        let entry = Entry {
            addr: a.addr.clone(),
            pieces: a.pieces.clone(),
            load: a.upload_load.min(100),
            labels: a.labels.clone(),
            seed: a.seed,
            last: now,
            expires,
        };
        if let Some(old) = swarm.peers.insert(a.peer, entry) {
            self.expiry.remove(&(old.expires, a.blob, a.peer));
        } else {
            self.peer_count += 1;
        }
        self.expiry.insert((expires, a.blob, a.peer));
    }

    fn remove(&mut self, blob: &Digest, peer: PeerId) {
        let Some(swarm) = self.swarms.get_mut(blob) else {
            return;
        };
        if let Some(e) = swarm.peers.remove(&peer) {
            self.peer_count -= 1;
            self.expiry.remove(&(e.expires, *blob, peer));
        }
        if swarm.peers.is_empty() {
            self.remove_blob(blob);
        }
    }

    fn remove_blob(&mut self, blob: &Digest) {
        if let Some(s) = self.swarms.remove(blob) {
            self.activity.remove(&(s.last, *blob));
            for (id, e) in s.peers {
                self.peer_count -= 1;
                self.expiry.remove(&(e.expires, *blob, id));
            }
        }
    }

    /// Asks a supernode to seed `blob` if nobody holds any of it.
    fn maybe_ask_seed(&mut self, now: Time, blob: Digest) {
        let retry = self.config.seed_retry;
        let Some(swarm) = self.swarms.get_mut(&blob) else {
            return;
        };
        let held = swarm.peers.values().any(|e| e.seed || e.pieces.count() > 0);
        let asked_recently = swarm.seed_asked.is_some_and(|t| t + retry > now);
        if held || asked_recently {
            return;
        }
        if let Some(supernode) = rendezvous(&blob, &self.config.supernodes) {
            swarm.seed_asked = Some(now);
            self.actions.push_back(TrackerAction::SeedBlob {
                blob,
                supernode: supernode.clone(),
            });
        }
    }
}

#[cfg(test)]
mod tests;
