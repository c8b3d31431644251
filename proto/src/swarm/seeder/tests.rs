//! Unit tests of super-seeding.

use super::*;
use crate::swarm::{UploadAction, UploadConfig, Uploader};

fn seeder(pieces: u32) -> Uploader<SuperSeed> {
    let cfg = UploadConfig {
        max_active: 64,
        ..UploadConfig::default()
    };
    let policy = SuperSeed::new(SuperSeedConfig::default(), pieces);
    Uploader::new(cfg, Bitfield::full(pieces), policy)
}

#[test]
fn every_piece_once_before_any_twice() {
    let n = 16;
    let mut s = seeder(n);
    let t = Time::ZERO;
    for p in 0..4 {
        s.handle_peer_connected(t, PeerId(p), &Bitfield::new(n), 1.0);
    }
    // Everybody asks for the first piece it lacks, streaming-style, and
    // follows hints.
    let mut has = vec![Bitfield::new(n); 4];
    let mut served = Vec::new();
    let mut asks: VecDeque<(PeerId, u32)> = (0..4).map(|p| (PeerId(p), 0)).collect();
    while let Some((peer, piece)) = asks.pop_front() {
        s.handle_request(t, peer, piece);
        while let Some(a) = s.poll_action() {
            match a {
                UploadAction::Serve { peer, piece } => {
                    served.push(piece);
                    s.handle_upload_done(t, peer, piece);
                    s.handle_have(t, peer, piece);
                    has[peer.0 as usize].set(piece);
                    if served.len() < n as usize {
                        let next = has[peer.0 as usize].first_missing().unwrap();
                        asks.push_back((peer, next));
                    }
                }
                UploadAction::Reject {
                    peer,
                    reason: Rejection::Redirect { hint },
                    ..
                } => asks.push_back((peer, hint[0])),
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    // The first n uploads are n distinct pieces; repeats only after.
    let mut first: Vec<u32> = served[..n as usize].to_vec();
    first.sort_unstable();
    assert_eq!(first, (0..n).collect::<Vec<_>>(), "{served:?}");
}

#[test]
fn a_piece_on_its_way_is_not_sent_again() {
    let mut s = seeder(1);
    let t = Time::ZERO;
    s.handle_peer_connected(t, PeerId(1), &Bitfield::new(1), 1.0);
    s.handle_peer_connected(t, PeerId(2), &Bitfield::new(1), 1.0);
    s.handle_request(t, PeerId(1), 0);
    assert!(matches!(s.poll_action(), Some(UploadAction::Serve { .. })));
    s.handle_upload_done(t, PeerId(1), 0);
    // Peer 1 has not announced it yet: peer 2 is told to wait for it.
    s.handle_request(t, PeerId(2), 0);
    assert_eq!(
        s.poll_action(),
        Some(UploadAction::Reject {
            peer: PeerId(2),
            piece: 0,
            reason: Rejection::Redirect { hint: vec![] }
        })
    );
    // Once it is in the swarm, a second copy is fine (round two).
    s.handle_have(t, PeerId(1), 0);
    s.handle_request(t, PeerId(2), 0);
    assert!(matches!(s.poll_action(), Some(UploadAction::Serve { .. })));
}

#[test]
fn per_peer_limit_follows_weight() {
    let mut s = seeder(8);
    let t = Time::ZERO;
    s.handle_peer_connected(t, PeerId(1), &Bitfield::new(8), 3.0);
    s.handle_peer_connected(t, PeerId(2), &Bitfield::new(8), 1.0);
    assert_eq!(s.policy().peer_limit(PeerId(1)), 3);
    assert_eq!(s.policy().peer_limit(PeerId(2)), 1);
}

#[test]
fn promises_expire() {
    let mut s = seeder(4);
    let t = Time::ZERO;
    s.handle_peer_connected(t, PeerId(1), &Bitfield::new(4), 1.0);
    s.handle_peer_connected(t, PeerId(2), &Bitfield::new(4), 1.0);
    s.handle_request(t, PeerId(1), 0);
    assert!(matches!(s.poll_action(), Some(UploadAction::Serve { .. })));
    s.handle_request(t, PeerId(2), 0);
    let Some(UploadAction::Reject {
        reason: Rejection::Redirect { hint },
        ..
    }) = s.poll_action()
    else {
        panic!("expected a redirect");
    };
    assert!(!hint.contains(&0));
    // After the promise expires and every piece is out once, 0 is fine.
    let later = Time::from_millis(10_000);
    s.handle_upload_done(later, PeerId(1), 0);
    s.handle_have(later, PeerId(1), 0);
    let mut served = 1;
    for (peer, piece) in [(1, 1), (1, 2), (1, 3), (2, 0)] {
        s.handle_request(later, PeerId(peer), piece);
        while let Some(a) = s.poll_action() {
            if let UploadAction::Serve { peer, piece } = a {
                served += 1;
                s.handle_upload_done(later, peer, piece);
                s.handle_have(later, peer, piece);
            }
        }
    }
    assert_eq!(served, 5);
}
