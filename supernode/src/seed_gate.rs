//! The seeding policy on the wire: [`SeedGate`] runs the protocol's
//! [`SuperSeed`] for every blob the supernode serves, behind its piece
//! server.
//!
//! The supernode's upload is the swarm's scarcest link while a blob is new:
//! a piece it sends twice is a piece nobody has yet that it did not send.
//! So a request for a piece that already went out more often than some
//! other piece the requester lacks is answered with a `Redirect` naming the
//! least distributed pieces instead (and a piece whose first copy has not
//! been announced by its receiver yet is not sent again for a moment: the
//! requester finds it at that peer). Each piece thus enters the swarm once
//! before any piece goes out twice, and the agents spread it among
//! themselves (DESIGN.md, "Scheduling goals"; the same policy the
//! simulator in `proto` runs).
//!
//! The policy needs to know what each agent holds: agents send the
//! supernode their bitfield and `have`s for the blob they download, like to
//! any peer, and [`SeedGate::event`] feeds them in. A request from an agent
//! whose bitfield has not arrived yet counts it as holding nothing.
//!
//! State is per blob and bounded: at most [`MAX_BLOBS`] blobs, the least
//! recently used forgotten first (forgetting only costs a few duplicate
//! sends).

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Instant;

use shoal_agent::p2p::{PeerEvent, ServeGate};
use shoal_proto::swarm::{Admission, PeerId, Rejection, ServePolicy, SuperSeed, SuperSeedConfig};
use shoal_proto::time::Time;
use shoal_proto::wire::{HaveMessage, MAX_HINT, PieceResponse};
use shoal_proto::{Bitfield, Digest, PieceMap};

/// Most blobs with seeding state at once.
pub const MAX_BLOBS: usize = 256;

/// The supernode's [`ServeGate`]; see the module documentation.
#[derive(Debug)]
pub struct SeedGate {
    config: SuperSeedConfig,
    start: Instant,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    ids: HashMap<SocketAddr, PeerId>,
    next_id: u64,
    blobs: HashMap<Digest, Blob>,
    /// Bumped on every use, for least-recently-used eviction.
    clock: u64,
}

#[derive(Debug)]
struct Blob {
    policy: SuperSeed,
    /// Pieces the supernode holds (its length is the blob's piece count):
    /// the first `held_prefix`, as it fetches a blob in order.
    held: Bitfield,
    held_prefix: u32,
    /// Peers the policy knows for this blob.
    peers: HashSet<PeerId>,
    used: u64,
}

impl Default for SeedGate {
    fn default() -> Self {
        SeedGate::new(SuperSeedConfig::default())
    }
}

impl SeedGate {
    /// A gate running [`SuperSeed`] with `config` for every blob.
    pub fn new(config: SuperSeedConfig) -> Self {
        SeedGate {
            config,
            start: Instant::now(),
            state: Mutex::default(),
        }
    }

    fn now(&self) -> Time {
        Time::from_duration(self.start.elapsed())
    }

    /// Takes in what a peer says it holds, and its connection's end.
    pub fn event(&self, ev: &PeerEvent) {
        let now = self.now();
        let mut st = self.state.lock().expect("seed gate lock");
        match ev {
            PeerEvent::Connected { .. } => {}
            PeerEvent::Disconnected { peer } => {
                if let Some(id) = st.ids.remove(peer) {
                    for blob in st.blobs.values_mut() {
                        if blob.peers.remove(&id) {
                            blob.policy.on_peer_disconnected(now, id);
                        }
                    }
                }
            }
            PeerEvent::Have { peer, msg } => match msg {
                HaveMessage::Bitfield { digest, bits } => {
                    let id = st.id(*peer);
                    let blob = st.blob(&self.config, digest, bits.len());
                    blob.policy.on_peer_connected(now, id, bits, 1.0);
                    blob.peers.insert(id);
                }
                HaveMessage::Have { digest, index } => {
                    let id = st.id(*peer);
                    if let Some(blob) = st.blobs.get_mut(digest)
                        && blob.peers.contains(&id)
                    {
                        blob.policy.on_have(now, id, *index);
                    }
                }
                HaveMessage::Forget { digest } => {
                    let id = st.id(*peer);
                    if let Some(blob) = st.blobs.get_mut(digest)
                        && blob.peers.remove(&id)
                    {
                        blob.policy.on_peer_disconnected(now, id);
                    }
                }
            },
        }
    }

    /// Copies of each piece of `digest` delivered so far, if it has state.
    #[cfg(test)]
    fn delivered(&self, digest: &Digest) -> Option<Vec<u32>> {
        let st = self.state.lock().expect("seed gate lock");
        st.blobs.get(digest).map(|b| b.policy.delivered().to_vec())
    }
}

impl State {
    fn id(&mut self, addr: SocketAddr) -> PeerId {
        let next = &mut self.next_id;
        *self.ids.entry(addr).or_insert_with(|| {
            *next += 1;
            PeerId(*next)
        })
    }

    /// The state of `digest`, made afresh if it has none or a different
    /// piece count; evicts the least recently used blob beyond the cap.
    fn blob(&mut self, config: &SuperSeedConfig, digest: &Digest, pieces: u32) -> &mut Blob {
        self.clock += 1;
        let used = self.clock;
        if self
            .blobs
            .get(digest)
            .is_none_or(|b| b.held.len() != pieces)
        {
            if self.blobs.len() >= MAX_BLOBS
                && !self.blobs.contains_key(digest)
                && let Some(old) = self
                    .blobs
                    .iter()
                    .min_by_key(|(_, b)| b.used)
                    .map(|(d, _)| *d)
            {
                self.blobs.remove(&old);
            }
            self.blobs.insert(
                *digest,
                Blob {
                    policy: SuperSeed::new(config.clone(), pieces),
                    held: Bitfield::new(pieces),
                    held_prefix: 0,
                    peers: HashSet::new(),
                    used,
                },
            );
        }
        let blob = self.blobs.get_mut(digest).expect("just inserted");
        blob.used = used;
        blob
    }
}

impl ServeGate for SeedGate {
    fn admit(&self, peer: SocketAddr, map: &PieceMap, index: u32) -> Result<(), PieceResponse> {
        let now = self.now();
        let count = map.piece_count();
        let mut st = self.state.lock().expect("seed gate lock");
        let id = st.id(peer);
        let blob = st.blob(&self.config, &map.digest, count);
        // The supernode fetches a blob in order: it holds exactly the
        // pieces whose hashes it knows.
        let known = (map.pieces.len() as u32).min(count);
        while blob.held_prefix < known {
            blob.held.set(blob.held_prefix);
            blob.held_prefix += 1;
        }
        if blob.peers.insert(id) {
            blob.policy
                .on_peer_connected(now, id, &Bitfield::new(count), 1.0);
        }
        match blob.policy.admit(now, id, index, &blob.held) {
            Admission::Allow => Ok(()),
            Admission::Reject(Rejection::Busy) => Err(PieceResponse::Busy),
            Admission::Reject(Rejection::NotHeld) => Err(PieceResponse::NotHave),
            Admission::Reject(Rejection::Redirect { mut hint }) => {
                hint.truncate(MAX_HINT);
                Err(PieceResponse::Redirect { hint })
            }
        }
    }

    fn end(&self, peer: SocketAddr, digest: &Digest, index: u32, delivered: bool) {
        let now = self.now();
        let mut st = self.state.lock().expect("seed gate lock");
        let Some(&id) = st.ids.get(&peer) else {
            return;
        };
        if let Some(blob) = st.blobs.get_mut(digest)
            && blob.peers.contains(&id)
        {
            blob.policy.on_end(now, id, index, delivered);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pieces: u32, known: u32) -> PieceMap {
        let piece_size = 1024u32;
        PieceMap {
            digest: Digest::of(b"blob"),
            size: u64::from(pieces) * u64::from(piece_size),
            piece_size,
            pieces: (0..known).map(|i| Digest::of(&i.to_le_bytes())).collect(),
        }
    }

    fn addr(n: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], n))
    }

    /// Two peers asking for piece 0 at once: the first gets it, the second
    /// is sent to piece 1; once each piece went out once, a second copy
    /// of a piece is allowed only after its receiver announced it.
    #[test]
    fn each_piece_goes_out_once_before_any_twice() {
        let gate = SeedGate::default();
        let m = map(4, 4);
        assert_eq!(gate.admit(addr(1), &m, 0), Ok(()));
        match gate.admit(addr(2), &m, 0) {
            Err(PieceResponse::Redirect { hint }) => assert_eq!(hint.first(), Some(&1)),
            other => panic!("expected a redirect, got {other:?}"),
        }
        gate.end(addr(1), &m.digest, 0, true);
        for i in 1..4 {
            assert_eq!(gate.admit(addr(2), &m, i), Ok(()), "piece {i}");
            gate.end(addr(2), &m.digest, i, true);
        }
        // Piece 0's copy went to peer 1, which has not said it has it.
        assert!(matches!(
            gate.admit(addr(3), &m, 0),
            Err(PieceResponse::Redirect { .. })
        ));
        gate.event(&PeerEvent::Have {
            peer: addr(1),
            msg: HaveMessage::Bitfield {
                digest: m.digest,
                bits: {
                    let mut b = Bitfield::new(4);
                    b.set(0);
                    b
                },
            },
        });
        // Everything went out once; a second copy is fine, but the
        // requester is told of pieces it lacks that went out less often
        // only if there are any (there are none).
        assert_eq!(gate.admit(addr(3), &m, 0), Ok(()));
        assert_eq!(gate.delivered(&m.digest), Some(vec![1, 1, 1, 1]));
    }

    /// While the supernode's own fetch runs, it hints only pieces it holds.
    #[test]
    fn hints_only_held_pieces() {
        let gate = SeedGate::default();
        let partial = map(8, 2);
        assert_eq!(gate.admit(addr(1), &partial, 0), Ok(()));
        match gate.admit(addr(2), &partial, 0) {
            Err(PieceResponse::Redirect { hint }) => assert_eq!(hint, vec![1]),
            other => panic!("expected a redirect, got {other:?}"),
        }
    }

    /// State stays bounded however many blobs are asked for.
    #[test]
    fn blob_state_is_bounded() {
        let gate = SeedGate::default();
        for n in 0..(MAX_BLOBS as u32 + 10) {
            let mut m = map(2, 2);
            m.digest = Digest::of(&n.to_le_bytes());
            let _ = gate.admit(addr(1), &m, 0);
        }
        assert_eq!(gate.state.lock().unwrap().blobs.len(), MAX_BLOBS);
    }
}
