//! The DESIGN.md benchmark scenarios against the Kumar–Ross bound, super-
//! seeding, streaming and determinism.

use shoal_proto::sim::{MIB, Scenario};

use super::{all_finished, run};

/// DESIGN.md's target: the slowest peer within 1.2 × the bound.
const MAX_RATIO: f64 = 1.2;

#[test]
fn smoke_is_close_to_the_bound() {
    let r = run(&Scenario::smoke());
    let slowest = all_finished(&r, &[]);
    assert!(slowest <= MAX_RATIO * r.bound_secs, "{r}");
    // Peers have enough upload here: the seed sends about one copy, each
    // piece once before any piece twice.
    assert!(r.seed_copies() <= 1.05, "{r}");
    assert_eq!(r.seed_distinct_prefix(), 256, "{r}");
}

#[test]
fn fanout_sym_is_close_to_the_bound() {
    let r = run(&Scenario::fanout_sym());
    let slowest = all_finished(&r, &[]);
    assert!(slowest <= MAX_RATIO * r.bound_secs, "{r}");
    assert_eq!(r.seed_distinct_prefix(), 256, "{r}");
}

#[test]
fn fanout_upbound_is_close_to_the_bound() {
    let r = run(&Scenario::fanout_upbound());
    let slowest = all_finished(&r, &[]);
    assert!(slowest <= MAX_RATIO * r.bound_secs, "{r}");
    // Upload-bound: the bound needs the seed busy the whole time, so it
    // sends several copies; most bytes still come from peers.
    let received = r.seed_bytes + r.peer_upload_bytes;
    assert!(r.peer_upload_bytes / received >= 0.85, "{r}");
}

#[test]
fn seed_sends_each_piece_about_once_when_peers_can_relay() {
    // Peers upload twice what they download: the seed only has to inject.
    let sc = Scenario::new("ample-upload", 20, 32.0, 16.0, 8.0, 4.0);
    let r = run(&sc);
    let slowest = all_finished(&r, &[]);
    assert!(slowest <= MAX_RATIO * r.bound_secs, "{r}");
    assert_eq!(r.seed_distinct_prefix(), 128, "{r}");
    // Second copies only go to peers not yet connected to the first
    // receiver (the first second, while connections are set up).
    assert!(r.seed_copies() <= 1.15, "{r}");
}

#[test]
fn streaming_clients_get_bytes_early_and_in_order() {
    let r = run(&Scenario::smoke());
    for (i, done) in r.completion.iter().enumerate() {
        let done = done.expect("finished");
        let first = r.first_byte[i].expect("first piece");
        let half = r.half_stream[i].expect("half the blob");
        // The first in-order piece comes within a few percent of the
        // download, and half the blob is readable in order well before the
        // end.
        assert!(
            first <= 0.1 * done,
            "peer {i}: first {first:.2}s of {done:.2}s"
        );
        assert!(
            half <= 0.7 * done,
            "peer {i}: half {half:.2}s of {done:.2}s"
        );
    }
}

#[test]
fn runs_are_reproducible() {
    let mut sc = Scenario::new("tiny", 6, 8.0, 16.0, 4.0, 4.0);
    let a = run(&sc);
    let b = run(&sc);
    assert_eq!(a.completion, b.completion);
    assert_eq!(a.seed_bytes, b.seed_bytes);
    sc.rng_seed = 2;
    let c = run(&sc);
    assert_ne!(a.completion, c.completion);
}

#[test]
fn bound_is_kumar_ross() {
    let sc = Scenario::new("x", 10, 64.0, 16.0, 4.0, 4.0);
    let f = 64.0 * MIB;
    let expected = (f / (16.0 * MIB))
        .max(f / (4.0 * MIB))
        .max(10.0 * f / ((16.0 + 40.0) * MIB));
    assert!((sc.bound_secs() - expected).abs() < 1e-9);
}
