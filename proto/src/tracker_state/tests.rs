//! Unit tests of the tracker state: ranking, expiry, seeding, bounds.

use std::time::Duration;

use super::*;

const PIECES: u32 = 8;

fn blob(i: u32) -> Digest {
    Digest::of(&i.to_be_bytes())
}

fn bits(held: &[u32]) -> Bitfield {
    let mut b = Bitfield::new(PIECES);
    for &i in held {
        b.set(i);
    }
    b
}

fn announce(peer: u64, pieces: Bitfield) -> Announce {
    Announce {
        blob: blob(0),
        peer: PeerId(peer),
        addr: format!("10.0.0.{peer}:7000"),
        pieces,
        upload_load: 0,
        labels: BTreeMap::new(),
        seed: false,
        stopped: false,
    }
}

fn labelled(mut a: Announce, zone: &str) -> Announce {
    a.labels.insert("zone".into(), zone.into());
    a
}

fn ids(reply: &AnnounceReply) -> Vec<u64> {
    reply.peers.iter().map(|p| p.peer.0).collect()
}

fn tracker() -> TrackerState {
    TrackerState::new(
        TrackerConfig {
            supernodes: vec!["sn-a".into(), "sn-b".into()],
            ..TrackerConfig::default()
        },
        42,
    )
}

const T0: Time = Time::ZERO;

#[test]
fn useful_then_local_then_lightly_loaded() {
    let mut t = tracker();
    let mut busy = labelled(announce(1, bits(&[0, 1])), "a");
    busy.upload_load = 90;
    t.handle_announce(T0, busy).unwrap();
    t.handle_announce(T0, labelled(announce(2, bits(&[0, 1])), "a"))
        .unwrap();
    t.handle_announce(T0, labelled(announce(3, bits(&[0, 1])), "b"))
        .unwrap();
    t.handle_announce(T0, labelled(announce(4, bits(&[5])), "a"))
        .unwrap();
    // Requester holds 0 and 1: peer 4 is the only one with something new.
    let reply = t
        .handle_announce(T0, labelled(announce(9, bits(&[0, 1])), "a"))
        .unwrap();
    assert_eq!(ids(&reply), [4, 2, 1, 3]);
}

#[test]
fn reply_is_bounded_and_excludes_the_requester() {
    let mut t = TrackerState::new(
        TrackerConfig {
            max_reply_peers: 5,
            ..TrackerConfig::default()
        },
        1,
    );
    for p in 0..20 {
        t.handle_announce(T0, announce(p, bits(&[]))).unwrap();
    }
    let reply = t.handle_announce(T0, announce(7, bits(&[]))).unwrap();
    assert_eq!(reply.peers.len(), 5);
    assert!(!ids(&reply).contains(&7));
    // Ranking is randomised but reproducible.
    let again = |seed| {
        let mut t = TrackerState::new(
            TrackerConfig {
                max_reply_peers: 5,
                ..TrackerConfig::default()
            },
            seed,
        );
        (0..20).for_each(|p| {
            t.handle_announce(T0, announce(p, bits(&[]))).unwrap();
        });
        ids(&t.handle_announce(T0, announce(7, bits(&[]))).unwrap())
    };
    assert_eq!(again(3), again(3));
    assert_ne!(again(3), again(4));
}

#[test]
fn complete_peers_and_seeds_get_no_list() {
    let mut t = tracker();
    t.handle_announce(T0, announce(1, bits(&[]))).unwrap();
    let reply = t
        .handle_announce(T0, announce(2, Bitfield::full(PIECES)))
        .unwrap();
    assert!(reply.peers.is_empty());
    // …but they are handed to others.
    let reply = t.handle_announce(T0, announce(3, bits(&[]))).unwrap();
    assert_eq!(ids(&reply)[0], 2);
}

#[test]
fn seed_only_when_peers_do_not_cover() {
    let mut t = tracker();
    let mut seed = announce(100, Bitfield::full(PIECES));
    seed.seed = true;
    t.handle_announce(T0, seed).unwrap();
    t.handle_announce(T0, announce(1, bits(&[0, 1, 2, 3])))
        .unwrap();
    let reply = t.handle_announce(T0, announce(2, bits(&[]))).unwrap();
    assert_eq!(ids(&reply), [100, 1]);
    assert!(reply.peers[0].seed);
    t.handle_announce(T0, announce(3, bits(&[4, 5, 6, 7])))
        .unwrap();
    let reply = t.handle_announce(T0, announce(2, bits(&[]))).unwrap();
    assert!(!ids(&reply).contains(&100), "{reply:?}");
}

#[test]
fn peers_expire_unless_they_announce() {
    let mut t = tracker();
    let r = t.handle_announce(T0, announce(1, bits(&[0]))).unwrap();
    assert!(r.interval >= Duration::from_secs(27) && r.interval <= Duration::from_secs(33));
    let t1 = Time::from_millis(60_000);
    t.handle_announce(t1, announce(2, bits(&[0]))).unwrap();
    let first = t.poll_timeout().unwrap();
    // 3 intervals of at most 33 s.
    assert_eq!(first, T0 + Duration::from_secs(99));
    t.handle_timeout(first);
    assert_eq!(t.peer_count(), 1);
    assert_eq!(
        t.peers(&blob(0)).map(|p| p.0).collect::<Vec<_>>(),
        [PeerId(2)]
    );
    // Announcing again moves the expiry.
    t.handle_announce(Time::from_millis(120_000), announce(2, bits(&[0])))
        .unwrap();
    t.handle_timeout(t1 + Duration::from_secs(99));
    assert_eq!(t.peer_count(), 1);
    t.handle_timeout(Time::from_millis(120_000) + Duration::from_secs(99));
    assert_eq!((t.peer_count(), t.blob_count()), (0, 0));
    assert_eq!(t.poll_timeout(), None);
}

#[test]
fn stopped_peers_leave_at_once() {
    let mut t = tracker();
    t.handle_announce(T0, announce(1, bits(&[0]))).unwrap();
    let mut bye = announce(1, bits(&[0]));
    bye.stopped = true;
    t.handle_announce(T0, bye).unwrap();
    assert_eq!(t.peer_count(), 0);
}

#[test]
fn a_blob_nobody_has_goes_to_one_supernode() {
    let mut t = tracker();
    t.handle_announce(T0, announce(1, Bitfield::new(0)))
        .unwrap();
    let expected = rendezvous(&blob(0), &["sn-a", "sn-b"]).unwrap().to_string();
    assert_eq!(
        t.poll_action(),
        Some(TrackerAction::SeedBlob {
            blob: blob(0),
            supernode: expected
        })
    );
    // Not asked again while the request is fresh…
    t.handle_announce(Time::from_millis(5_000), announce(2, Bitfield::new(0)))
        .unwrap();
    assert_eq!(t.poll_action(), None);
    // …but again once it is stale and still nobody has the blob.
    t.handle_announce(Time::from_millis(10_000), announce(2, Bitfield::new(0)))
        .unwrap();
    assert!(t.poll_action().is_some());
    let mut seed = announce(100, Bitfield::full(PIECES));
    seed.seed = true;
    t.handle_announce(Time::from_millis(11_000), seed).unwrap();
    t.handle_announce(Time::from_millis(30_000), announce(2, Bitfield::new(0)))
        .unwrap();
    assert_eq!(t.poll_action(), None);
}

#[test]
fn memory_is_bounded() {
    let mut t = TrackerState::new(
        TrackerConfig {
            max_peers_per_blob: 3,
            max_blobs: 2,
            ..TrackerConfig::default()
        },
        5,
    );
    for p in 0..5 {
        t.handle_announce(Time::from_millis(p), announce(p, bits(&[])))
            .unwrap();
    }
    let left: Vec<u64> = t.peers(&blob(0)).map(|p| p.0.0).collect();
    assert_eq!(left, [2, 3, 4]);
    for b in 1..4 {
        let mut a = announce(1, bits(&[]));
        a.blob = blob(b);
        t.handle_announce(Time::from_millis(10 + u64::from(b)), a)
            .unwrap();
    }
    assert_eq!(t.blob_count(), 2);
    assert_eq!(t.peers(&blob(0)).count(), 0);
    assert_eq!(t.peer_count(), 2);
}

#[test]
fn bad_announces_are_refused() {
    let mut t = tracker();
    t.handle_announce(T0, announce(1, bits(&[0]))).unwrap();
    let wrong = announce(2, Bitfield::new(PIECES + 1));
    assert!(matches!(
        t.handle_announce(T0, wrong),
        Err(AnnounceError::BitfieldLength { .. })
    ));
    let mut long = announce(3, bits(&[]));
    long.addr = "x".repeat(1000);
    assert!(t.handle_announce(T0, long).is_err());
    let mut many = announce(4, bits(&[]));
    for i in 0..17 {
        many.labels.insert(format!("k{i}"), "v".into());
    }
    assert!(matches!(
        t.handle_announce(T0, many),
        Err(AnnounceError::TooManyLabels(17, 16))
    ));
}
