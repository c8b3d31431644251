//! Peer ranking for an announce reply.
//!
//! A requester should hear first of peers that hold pieces it lacks, then
//! of peers in its own locality (same zone or rack: cheaper, faster links),
//! then of lightly loaded ones; a random key spreads requesters over equal
//! peers so no one peer is everybody's first choice. Peers with nothing
//! to give still come after, because in a flash crowd everybody starts
//! empty and they must find each other to trade. A seed is added only
//! when the other peers in the list cannot cover what the requester lacks,
//! so the supernode's upload goes where nobody else can serve.

use rand::Rng;
use rand::seq::IteratorRandom;

use super::{Announce, Entry, PeerInfo, TrackerState, rendezvous_order};
use crate::Bitfield;
use crate::swarm::PeerId;

/// Load is compared in steps of this many percent; within a step the
/// random key decides.
const LOAD_STEP: u8 = 25;

/// The ranked, bounded peer list for `a` (already recorded in `state`).
pub(super) fn rank(state: &mut TrackerState, a: &Announce) -> Vec<PeerInfo> {
    let config = &state.config;
    let Some(swarm) = state.swarms.get(&a.blob) else {
        return Vec::new();
    };
    let complete = !a.pieces.is_empty() && a.pieces.is_complete();
    if a.seed || complete {
        // Seeds and finished peers wait for others to connect to them.
        return Vec::new();
    }
    let others = swarm.peers.iter().filter(|(id, _)| **id != a.peer);
    let sample: Vec<(&PeerId, &Entry)> = if swarm.peers.len() > config.rank_sample {
        others.choose_multiple(&mut state.rng, config.rank_sample)
    } else {
        others.collect()
    };
    let mut seeds = Vec::new();
    let mut ranked = Vec::new();
    for (&id, e) in sample {
        if e.seed {
            seeds.push((id, e));
            continue;
        }
        let gives = if e.pieces.len() == a.pieces.len() && !a.pieces.is_empty() {
            e.pieces.count_not_in(&a.pieces) > 0
        } else {
            e.pieces.count() > 0
        };
        let local = a
            .labels
            .iter()
            .filter(|(k, v)| e.labels.get(*k) == Some(*v))
            .count();
        let key = (
            !gives,
            usize::MAX - local,
            e.load / LOAD_STEP,
            state.rng.random::<u32>(),
        );
        ranked.push((key, id, e));
    }
    ranked.sort_by_key(|x| x.0);
    ranked.truncate(config.max_reply_peers);
    let mut reply: Vec<PeerInfo> = Vec::new();
    if !seeds.is_empty() && !covers(a, ranked.iter().map(|r| &r.2.pieces)) {
        let ids: Vec<[u8; 8]> = seeds.iter().map(|s| s.0.0.to_be_bytes()).collect();
        for i in rendezvous_order(&a.blob, &ids)
            .into_iter()
            .take(config.max_reply_seeds)
        {
            let (id, e) = seeds[i];
            reply.push(info(id, e));
        }
        ranked.truncate(config.max_reply_peers.saturating_sub(reply.len()));
    }
    reply.extend(ranked.into_iter().map(|(_, id, e)| info(id, e)));
    reply
}

fn info(peer: PeerId, e: &Entry) -> PeerInfo {
    PeerInfo {
        peer,
        addr: e.addr.clone(),
        seed: e.seed,
    }
}

/// Whether the requester plus `peers` hold every piece.
fn covers<'a>(a: &Announce, peers: impl Iterator<Item = &'a Bitfield>) -> bool {
    if a.pieces.is_empty() {
        return false;
    }
    let mut cover = a.pieces.clone();
    let len = cover.len();
    for p in peers.filter(|p| p.len() == len) {
        for i in p.iter_held() {
            cover.set(i);
        }
        if cover.is_complete() {
            return true;
        }
    }
    cover.is_complete()
}
