//! Unit tests of the download scheduler, one rule at a time.

use std::time::Duration;

use super::*;
use crate::swarm::Rejection;

const N: u32 = 16;
const PIECE: u32 = 1 << 20;

fn layout() -> Layout {
    Layout {
        size: u64::from(N) * u64::from(PIECE),
        piece_size: PIECE,
    }
}

/// One request per peer, no limit on the total.
fn config() -> DownloadConfig {
    DownloadConfig {
        min_depth: 1,
        max_depth: 1,
        extra_in_flight: 64,
        ..DownloadConfig::default()
    }
}

fn download(cfg: DownloadConfig) -> Download {
    Download::new(cfg, layout(), Bitfield::new(N), 1)
}

fn drain(d: &mut Download) -> Vec<Action> {
    std::iter::from_fn(|| d.poll_action()).collect()
}

fn requests(actions: &[Action]) -> Vec<(u64, u32)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Request { peer, piece } => Some((peer.0, *piece)),
            _ => None,
        })
        .collect()
}

fn pieces(held: &[u32]) -> Bitfield {
    let mut b = Bitfield::new(N);
    for &i in held {
        b.set(i);
    }
    b
}

const T0: Time = Time::ZERO;

#[test]
fn streaming_window_comes_first() {
    let mut d = download(config());
    d.handle_read_position(T0, 5);
    d.handle_peer_connected(T0, PeerId(1), PeerKind::Peer, Bitfield::full(N));
    assert_eq!(requests(&drain(&mut d)), [(1, 5)]);
    d.handle_piece_verified(Time::from_millis(100), PeerId(1), 5);
    assert_eq!(requests(&drain(&mut d)), [(1, 6)]);
}

#[test]
fn rarest_first_outside_the_window() {
    let mut d = download(DownloadConfig {
        window: 0,
        ..config()
    });
    d.handle_peer_connected(T0, PeerId(1), PeerKind::Peer, pieces(&[3, 7, 9]));
    d.handle_peer_connected(T0, PeerId(2), PeerKind::Peer, pieces(&[3, 9]));
    d.handle_peer_connected(T0, PeerId(3), PeerKind::Peer, pieces(&[3]));
    // Peer 1 alone has 7; 9 is held twice; 3 thrice.
    let got = requests(&drain(&mut d));
    assert!(got.contains(&(1, 7)), "{got:?}");
    assert!(got.contains(&(2, 9)), "{got:?}");
    assert!(got.contains(&(3, 3)), "{got:?}");
}

#[test]
fn ties_are_broken_by_seed_dependent_order() {
    let first = |seed| {
        let mut d = Download::new(
            DownloadConfig {
                window: 0,
                ..config()
            },
            layout(),
            Bitfield::new(N),
            seed,
        );
        d.handle_peer_connected(T0, PeerId(1), PeerKind::Peer, Bitfield::full(N));
        requests(&drain(&mut d))[0].1
    };
    assert_eq!(first(7), first(7));
    let distinct: std::collections::BTreeSet<u32> = (0..20).map(first).collect();
    assert!(distinct.len() > 3, "{distinct:?}");
}

#[test]
fn seed_only_for_pieces_nobody_else_has() {
    let mut d = download(DownloadConfig {
        seed_starve_in_flight: 0,
        max_depth: 4,
        min_depth: 4,
        window: 0,
        ..config()
    });
    d.handle_peer_connected(T0, PeerId(9), PeerKind::Seed, Bitfield::full(N));
    d.handle_peer_connected(
        T0,
        PeerId(1),
        PeerKind::Peer,
        pieces(&(0..14).collect::<Vec<_>>()),
    );
    let got = requests(&drain(&mut d));
    let from_seed: Vec<u32> = got.iter().filter(|r| r.0 == 9).map(|r| r.1).collect();
    assert_eq!(from_seed.len(), 2, "{got:?}");
    assert!(from_seed.iter().all(|&i| i >= 14), "{got:?}");
}

#[test]
fn seed_used_when_peers_cannot_keep_up() {
    let mut d = download(DownloadConfig {
        seed_starve_in_flight: 2,
        ..config()
    });
    d.handle_peer_connected(T0, PeerId(9), PeerKind::Seed, Bitfield::full(N));
    d.handle_peer_connected(T0, PeerId(1), PeerKind::Peer, Bitfield::full(N));
    let got = requests(&drain(&mut d));
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got.iter().any(|r| r.0 == 9));
}

#[test]
fn redirect_hint_is_followed() {
    let mut d = download(config());
    d.handle_peer_connected(T0, PeerId(9), PeerKind::Seed, Bitfield::full(N));
    assert_eq!(requests(&drain(&mut d)), [(9, 0)]);
    let hint = vec![11, 12];
    d.handle_request_rejected(T0, PeerId(9), 0, Rejection::Redirect { hint });
    assert_eq!(requests(&drain(&mut d)), [(9, 11)]);
    assert_eq!(d.stats().redirects, 1);
}

#[test]
fn a_redirect_from_a_peer_that_is_no_seed_drops_it() {
    let mut d = download(config());
    d.handle_peer_connected(T0, PeerId(1), PeerKind::Peer, Bitfield::full(N));
    let (peer, piece) = requests(&drain(&mut d))[0];
    assert_eq!(peer, 1);
    d.handle_request_rejected(T0, PeerId(1), piece, Rejection::Redirect { hint: vec![3] });
    assert!(matches!(
        drain(&mut d)[..],
        [
            Action::DropPeer {
                reason: DropReason::ProtocolViolation,
                ..
            },
            ..
        ]
    ));
}

#[test]
fn endgame_duplicates_then_cancels() {
    // Resume with only piece 15 missing.
    let mut have = Bitfield::full(N);
    have.clear(15);
    let mut d = Download::new(config(), layout(), have, 1);
    d.handle_peer_connected(T0, PeerId(1), PeerKind::Peer, Bitfield::full(N));
    assert_eq!(requests(&drain(&mut d)), [(1, 15)]);
    d.handle_peer_connected(T0, PeerId(2), PeerKind::Peer, Bitfield::full(N));
    assert_eq!(requests(&drain(&mut d)), [(2, 15)]);
    d.handle_piece_verified(Time::from_millis(10), PeerId(2), 15);
    assert_eq!(
        drain(&mut d),
        [
            Action::Cancel {
                peer: PeerId(1),
                piece: 15
            },
            Action::Complete
        ]
    );
    // A late copy is a duplicate, and Complete is not repeated.
    d.handle_piece_verified(Time::from_millis(11), PeerId(1), 15);
    assert_eq!(drain(&mut d), []);
    assert_eq!(d.stats().duplicates, 1);
}

#[test]
fn no_duplicates_before_endgame() {
    let mut d = download(DownloadConfig {
        max_depth: 64,
        min_depth: 64,
        ..config()
    });
    d.handle_peer_connected(T0, PeerId(1), PeerKind::Peer, pieces(&[0, 1]));
    d.handle_peer_connected(T0, PeerId(2), PeerKind::Peer, pieces(&[0, 1]));
    let got = requests(&drain(&mut d));
    assert_eq!(got.len(), 2, "pieces 2.. are held by nobody: {got:?}");
}

#[test]
fn corrupt_piece_bans_the_sender() {
    let mut d = download(config());
    d.handle_peer_connected(T0, PeerId(1), PeerKind::Peer, Bitfield::full(N));
    let [(1, piece)] = requests(&drain(&mut d))[..] else {
        panic!()
    };
    d.handle_piece_corrupt(Time::from_millis(5), PeerId(1), piece);
    assert_eq!(
        drain(&mut d),
        [Action::DropPeer {
            peer: PeerId(1),
            reason: DropReason::CorruptPiece
        }]
    );
    assert!(d.is_banned(PeerId(1)));
    d.handle_peer_connected(T0, PeerId(1), PeerKind::Peer, Bitfield::full(N));
    assert!(matches!(
        drain(&mut d)[..],
        [Action::DropPeer {
            reason: DropReason::Banned,
            ..
        }]
    ));
    d.handle_peer_connected(T0, PeerId(2), PeerKind::Peer, Bitfield::full(N));
    assert_eq!(requests(&drain(&mut d)), [(2, piece)]);
    assert_eq!(d.stats().corrupt, 1);
}

#[test]
fn timeouts_retry_elsewhere_then_drop() {
    let cfg = DownloadConfig {
        request_timeout: Duration::from_secs(1),
        min_rate: f64::from(PIECE) * 4.0,
        max_timeouts: 2,
        ..config()
    };
    let mut d = download(cfg);
    d.handle_peer_connected(T0, PeerId(1), PeerKind::Peer, Bitfield::full(N));
    let first = requests(&drain(&mut d));
    assert_eq!(first.len(), 1);
    let deadline = d.poll_timeout().expect("a request is in flight");
    assert_eq!(deadline, Time::from_millis(1000));
    d.handle_timeout(deadline);
    let got = drain(&mut d);
    assert_eq!(
        got[0],
        Action::Cancel {
            peer: PeerId(1),
            piece: first[0].1
        }
    );
    // Backing off: no new request to peer 1 until the back-off ends.
    assert_eq!(requests(&got), []);
    let resume = d.poll_timeout().expect("back-off end");
    d.handle_timeout(resume);
    assert_eq!(requests(&drain(&mut d)).len(), 1);
    d.handle_timeout(d.poll_timeout().unwrap());
    let got = drain(&mut d);
    assert!(got.contains(&Action::DropPeer {
        peer: PeerId(1),
        reason: DropReason::Unresponsive
    }));
    assert_eq!(d.peer_count(), 0);
    assert_eq!(d.in_flight(), 0);
}

#[test]
fn large_pieces_are_given_time() {
    // 1 MiB at the slowest worthwhile 128 KiB/s: 8 s, not the 5 s minimum.
    let mut d = download(config());
    d.handle_peer_connected(T0, PeerId(1), PeerKind::Peer, Bitfield::full(N));
    assert_eq!(requests(&drain(&mut d)).len(), 1);
    assert_eq!(d.poll_timeout(), Some(Time::from_millis(8000)));
}

#[test]
fn busy_backs_off_until_called_back() {
    let mut d = download(config());
    d.handle_peer_connected(T0, PeerId(1), PeerKind::Peer, Bitfield::full(N));
    let [(1, piece)] = requests(&drain(&mut d))[..] else {
        panic!()
    };
    d.handle_request_rejected(T0, PeerId(1), piece, Rejection::Busy);
    assert_eq!(drain(&mut d), []);
    // Left alone for the back-off, which doubles per refusal…
    assert_eq!(d.poll_timeout(), Some(Time::from_millis(1000)));
    d.handle_timeout(Time::from_millis(1000));
    let [(1, piece)] = requests(&drain(&mut d))[..] else {
        panic!()
    };
    d.handle_request_rejected(Time::from_millis(1000), PeerId(1), piece, Rejection::Busy);
    assert_eq!(d.poll_timeout(), Some(Time::from_millis(3000)));
    // …unless the peer calls back first.
    d.handle_peer_available(Time::from_millis(1100), PeerId(1));
    assert_eq!(requests(&drain(&mut d)).len(), 1);
}

#[test]
fn depth_grows_with_measured_throughput() {
    let cfg = DownloadConfig {
        min_depth: 1,
        max_depth: 8,
        target_latency: Duration::from_millis(500),
        ..DownloadConfig::default()
    };
    let mut d = download(cfg);
    d.handle_peer_connected(T0, PeerId(1), PeerKind::Peer, Bitfield::full(N));
    let mut now = T0;
    let mut outstanding = requests(&drain(&mut d));
    assert_eq!(outstanding.len(), 1);
    // 8 MiB/s: one 1 MiB piece every 125 ms.
    for _ in 0..6 {
        now += Duration::from_millis(125);
        let (_, piece) = outstanding.remove(0);
        d.handle_piece_verified(now, PeerId(1), piece);
        outstanding.extend(requests(&drain(&mut d)));
    }
    let rate = d.peer_rate(PeerId(1)).unwrap();
    assert!(rate > 4.0 * 1048576.0, "{rate}");
    assert!(d.in_flight() >= 4, "{}", d.in_flight());
}

#[test]
fn bad_input_from_peers_is_refused() {
    let mut d = download(config());
    d.handle_peer_connected(T0, PeerId(1), PeerKind::Peer, Bitfield::new(N + 1));
    assert!(matches!(
        drain(&mut d)[..],
        [Action::DropPeer {
            reason: DropReason::ProtocolViolation,
            ..
        }]
    ));
    d.handle_peer_connected(T0, PeerId(2), PeerKind::Peer, Bitfield::new(N));
    d.handle_have(T0, PeerId(2), N);
    assert!(matches!(
        drain(&mut d)[..],
        [Action::DropPeer {
            reason: DropReason::ProtocolViolation,
            ..
        }]
    ));
}

#[test]
fn window_covers_the_next_missing_pieces() {
    let mut have = Bitfield::new(N);
    have.set(5);
    have.set(6);
    let cfg = DownloadConfig {
        window: 2,
        min_depth: 2,
        max_depth: 2,
        ..config()
    };
    let mut d = Download::new(cfg, layout(), have, 1);
    d.handle_read_position(T0, 4);
    d.handle_peer_connected(T0, PeerId(2), PeerKind::Peer, pieces(&[7]));
    d.handle_peer_connected(T0, PeerId(1), PeerKind::Peer, pieces(&[4, 7, 9]));
    let mut got = requests(&drain(&mut d));
    got.sort_unstable();
    // 9 is rarer than 7, but 4 and 7 are what the client reads next.
    assert!(got.contains(&(1, 4)), "{got:?}");
    assert!(got.iter().any(|r| r.1 == 7), "{got:?}");
    assert!(!got.contains(&(1, 9)), "{got:?}");
}

#[test]
fn an_empty_redirect_means_get_it_elsewhere() {
    let mut d = download(config());
    d.handle_peer_connected(T0, PeerId(9), PeerKind::Seed, Bitfield::full(N));
    assert_eq!(requests(&drain(&mut d)), [(9, 0)]);
    d.handle_request_rejected(T0, PeerId(9), 0, Rejection::Redirect { hint: vec![] });
    let next = requests(&drain(&mut d));
    assert_eq!(next.len(), 1);
    assert_ne!(next[0], (9, 0));
}

#[test]
fn seed_used_when_below_budget() {
    let cfg = DownloadConfig {
        seed_starve_in_flight: 0,
        download_rate: Some(8.0 * 1048576.0),
        window: 0,
        min_depth: 4,
        max_depth: 4,
        ..config()
    };
    let mut d = download(cfg);
    d.handle_peer_connected(T0, PeerId(9), PeerKind::Seed, Bitfield::full(N));
    d.handle_peer_connected(T0, PeerId(1), PeerKind::Peer, Bitfield::full(N));
    // Before the rate is measured, the seed is left alone.
    let first = requests(&drain(&mut d));
    assert!(first.iter().all(|r| r.0 == 1), "{first:?}");
    // One 1 MiB piece in 3 s is far below 8 MiB/s: the seed may help.
    d.handle_piece_verified(Time::from_millis(3000), PeerId(1), first[0].1);
    let more = requests(&drain(&mut d));
    assert!(more.iter().any(|r| r.0 == 9), "{more:?}");
}
