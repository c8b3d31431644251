//! Swarms with a hostile peer and with peers leaving.

use std::time::Duration;

use shoal_proto::sim::{Leave, Scenario};

use super::{all_finished, run};

#[test]
fn a_peer_sending_bad_pieces_is_dropped_and_the_rest_complete() {
    let mut sc = Scenario::smoke();
    sc.bad_peers = vec![3];
    let r = run(&sc);
    let slowest = all_finished(&r, &[3]);
    assert!(r.download.corrupt > 0, "{r}");
    // Each peer that got a bad piece banned the sender, once.
    assert_eq!(r.download.banned, r.download.corrupt, "{r}");
    assert!(r.download.banned <= 9, "{r}");
    assert!(slowest <= 1.3 * r.bound_secs, "{r}");
}

#[test]
fn a_peer_leaving_midway_does_not_stall_the_others() {
    let mut sc = Scenario::smoke();
    sc.leaves = vec![(2, Duration::from_secs(6), Leave::Close)];
    let r = run(&sc);
    let slowest = all_finished(&r, &[2]);
    assert!(r.completion[2].is_none(), "{r}");
    assert!(slowest <= 1.3 * r.bound_secs, "{r}");
}

#[test]
fn a_peer_vanishing_silently_is_timed_out() {
    let mut sc = Scenario::smoke();
    sc.leaves = vec![
        (2, Duration::from_secs(6), Leave::Vanish),
        (5, Duration::from_secs(8), Leave::Vanish),
    ];
    let r = run(&sc);
    let slowest = all_finished(&r, &[2, 5]);
    assert!(r.download.timeouts > 0, "{r}");
    assert!(slowest <= 1.5 * r.bound_secs, "{r}");
}
