//! Peers that lie (issue 3 "Must show", issue 5 "Hostile input → Wire"),
//! against real agents, supernode and tracker on loopback; the liars are
//! [`FakePeer`]s (members of the cluster, so they pass the handshake) or a
//! member endpoint in the test process.
//!
//! - `a_peer_sending_wrong_bytes_is_banned_and_pulls_verify`: a peer that
//!   announces every piece of every blob and answers with wrong bytes. Each
//!   agent rejects its pieces (`shoal_agent_pieces_rejected_total`), drops
//!   it (`shoal_agent_peers_dropped_total{reason="corrupt_piece"}`) and
//!   never asks it again, although it keeps re-announcing itself: a second
//!   image, which it also claims, is pulled without a single request to it.
//!   Every pull verifies.
//! - `a_peer_claiming_pieces_it_lacks_is_dropped`: a peer that claims
//!   every piece and answers `NotHave`, re-sending its claim every second.
//!   Each download drops it after a few refusals
//!   (`reason="lied_about_pieces"`), so it gets a bounded number of
//!   requests; the pulls complete.
//! - `requests_beyond_bounds_get_errors_and_the_agent_stays_healthy`: a
//!   member asks an agent for pieces past a blob's last piece and of a blob
//!   it does not know: `NoSuchPiece` and `NotHave`, counted in
//!   `shoal_agent_piece_requests_refused_total`; the agent still serves.
//! - `a_complete_agent_answers_only_bitfields_that_lack_pieces`: an agent
//!   holding a blob answers a member's bitfield that lacks pieces with its
//!   own full one, once, and a full bitfield not at all (two complete
//!   agents answering each other's bitfields went on for ever, which in a
//!   50-node fanout cost a third of the machine's CPU).
//! - `thousands_of_streams_are_limited_and_other_transfers_complete`: a
//!   member fires 2000 piece requests at an agent at once. quinn lets at
//!   most `max_concurrent_bidi_streams` of them be open, the upload cap
//!   answers the rest `Busy` (counted), and another agent's pull from the
//!   same agent completes meanwhile.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use shoal_agent::p2p::{FetchError, P2pEndpoint, PeerEvent};
use shoal_agent::supernode_client::SupernodeClient;
use shoal_proto::wire::{ErrorCode, HaveMessage};
use shoal_proto::{Bitfield, Digest, PieceMap};
use shoal_tests::cluster::REPO;
use shoal_tests::fake_peer::{FakePeer, Lie, asking_endpoint, complete_map, listening_endpoint};
use shoal_tests::image::TestImage;
use shoal_tests::lock;
use shoal_tests::metrics::labelled;
use shoal_tests::procs::Daemon;
use shoal_tests::swarm::{SECRET, SwarmCluster, SwarmOptions, amd64_image, member_auth};
use shoal_tests::wait::poll;

const REJECTED: &str = "shoal_agent_pieces_rejected_total";
const DROPPED: &str = "shoal_agent_peers_dropped_total";
const REFUSED: &str = "shoal_agent_piece_requests_refused_total";
/// Bound on waiting for pulls: far beyond their seconds, short of a hang.
const PULLS_DONE: Duration = Duration::from_secs(300);

/// Every blob digest of the amd64 image of `image`.
fn blobs(image: &TestImage) -> Vec<String> {
    image
        .platform("amd64")
        .blobs()
        .map(|b| b.digest.clone())
        .collect()
}

/// A swarm whose seed is slow enough (2 MiB/s) that the agents spend
/// seconds trading pieces, which is when they meet the liar.
async fn slow_seed_swarm(image: TestImage, agents: usize) -> SwarmCluster {
    SwarmCluster::start(
        image,
        &SwarmOptions {
            agents,
            seed_rate: Some("2MiB".into()),
            agent_rate: Some("8MiB".into()),
            announce_interval: "1".into(),
            ..SwarmOptions::default()
        },
    )
    .await
}

/// A [`FakePeer`] in `c` telling `lie` about `claimed`.
async fn liar(c: &SwarmCluster, lie: Lie, claimed: &[String]) -> FakePeer {
    FakePeer::start(
        lie,
        &c.secret,
        &c.supernode.http_url(),
        &c.tracker.http_url(),
        claimed,
    )
    .await
}

/// Every agent of `c` pulls the image; each pull must verify.
async fn pull_all(c: &SwarmCluster) {
    let pulls = c.spawn_pulls(0..c.agents.len());
    tokio::time::timeout(PULLS_DONE, c.expect_pulled(pulls))
        .await
        .expect("pulls hung");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_sending_wrong_bytes_is_banned_and_pulls_verify() {
    let _heavy = lock::heavy().await;
    let c = slow_seed_swarm(amd64_image(0xbad_b17e, 41, &[8, 8]), 4).await;
    let second = amd64_image(0xbad_b17f, 43, &[4]);
    second
        .push(&c.registry.client(), &c.registry.url(), REPO, "second")
        .await;
    let claimed: Vec<String> = blobs(&c.image).into_iter().chain(blobs(&second)).collect();
    let fake = liar(&c, Lie::WrongBytes, &claimed).await;

    pull_all(&c).await;
    for (i, a) in c.agents.iter().enumerate() {
        let metrics = a.metrics().await;
        let rejected = shoal_tests::procs::sum_metric(&metrics, REJECTED).unwrap_or(0.0);
        let dropped = labelled(&metrics, DROPPED, "reason=\"corrupt_piece\"");
        assert!(
            rejected > 0.0 && dropped > 0.0,
            "agent {i} never caught the liar: {rejected} pieces rejected, {dropped} peers dropped\n{}",
            a.log_tail()
        );
    }
    let asked = fake.requests();
    assert!(asked > 0, "nobody asked the fake peer");

    // The fake keeps claiming both images, to the tracker and to each
    // agent; stragglers of the first pulls have long been answered.
    tokio::time::sleep(3 * shoal_tests::fake_peer::REANNOUNCE).await;
    let asked = fake.requests();
    let want = second.platform("amd64").manifest.digest.clone();
    let pulls = c.spawn_pulls_of("second", 0..c.agents.len());
    tokio::time::timeout(PULLS_DONE, c.expect_pulled_manifest(pulls, &want))
        .await
        .expect("second pulls hung");
    assert_eq!(
        fake.requests(),
        asked,
        "agents asked a peer they had caught sending bad pieces again"
    );
    eprintln!(
        "hostile: the liar got {asked} requests; {} pieces rejected in all",
        c.agents_sum(REJECTED).await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_claiming_pieces_it_lacks_is_dropped() {
    let _heavy = lock::heavy().await;
    let c = slow_seed_swarm(amd64_image(0x1a_c4e5, 45, &[8, 8]), 3).await;
    let claimed = blobs(&c.image);
    let fake = liar(&c, Lie::NotHave, &claimed).await;
    pull_all(&c).await;

    let mut dropped = 0.0;
    for a in &c.agents {
        dropped += labelled(&a.metrics().await, DROPPED, "reason=\"lied_about_pieces\"");
    }
    let asked = fake.requests();
    // Per download: the refusals that get it dropped (9) plus what was in
    // flight to it then (at most 16 requests per peer).
    let bound = c.agents.len() * claimed.len() * (9 + 16);
    eprintln!("liar: {asked} requests (bound {bound}), dropped by {dropped} downloads");
    assert!(asked > 0, "nobody asked the fake peer");
    assert!(dropped > 0.0, "no download dropped the liar");
    assert!(
        asked <= bound,
        "the liar got {asked} requests, more than {bound}: it is not limited"
    );
}

/// A member of the cluster in the test process that only asks.
fn member() -> P2pEndpoint {
    let ep = asking_endpoint(SECRET);
    let run = ep.clone();
    tokio::spawn(async move { run.run(std::future::pending()).await });
    ep
}

/// The complete piece map of `blob` from the supernode.
async fn piece_map(c: &SwarmCluster, blob: &str) -> PieceMap {
    let client = SupernodeClient::new(&c.supernode.http_url())
        .unwrap()
        .with_auth(member_auth(SECRET));
    complete_map(&client, blob).await
}

/// A swarm of `agents` agents where agent 0 holds the whole image.
async fn one_agent_holds_the_image(image: TestImage, agents: usize) -> SwarmCluster {
    let c = SwarmCluster::start(
        image,
        &SwarmOptions {
            agents,
            agent_rate: Some("16MiB".into()),
            ..SwarmOptions::default()
        },
    )
    .await;
    let pulls = c.spawn_pulls([0]);
    tokio::time::timeout(PULLS_DONE, c.expect_pulled(pulls))
        .await
        .expect("first pull hung");
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_beyond_bounds_get_errors_and_the_agent_stays_healthy() {
    let _heavy = lock::heavy().await;
    let c = one_agent_holds_the_image(amd64_image(0xb0_07d5, 47, &[2]), 1).await;
    let agent = &c.agents[0];
    let addr = agent.p2p_addr().expect("agent p2p address");
    let layer = c.image.platform("amd64").layers[0].digest.clone();
    let map = piece_map(&c, &layer).await;
    let member = member();

    // The same blob, as if it had more pieces: the indices past its last.
    let mut longer = map.clone();
    let extra = 1000;
    longer.size += u64::from(map.piece_size) * u64::from(extra);
    longer
        .pieces
        .extend(std::iter::repeat_n(map.pieces[0], extra as usize));
    for index in [map.piece_count(), map.piece_count() + extra - 1] {
        match member.fetch_piece(addr, &longer, index).await {
            Err(FetchError::Refused {
                code: ErrorCode::NoSuchPiece,
                ..
            }) => {}
            other => panic!("piece {index} past the end: {other:?}"),
        }
    }
    // A blob the agent has never heard of.
    let mut unknown = map.clone();
    unknown.digest = Digest::parse(&format!("sha256:{}", "ab".repeat(32))).unwrap();
    match member.fetch_piece(addr, &unknown, 0).await {
        Err(FetchError::NotHave { .. }) => {}
        other => panic!("piece of an unknown blob: {other:?}"),
    }

    let metrics = agent.metrics().await;
    assert_eq!(labelled(&metrics, REFUSED, "reason=\"no_such_piece\""), 2.0);
    assert_eq!(labelled(&metrics, REFUSED, "reason=\"not_have\""), 1.0);
    // Still serving, on the same connection and to everyone.
    let piece = member
        .fetch_piece(addr, &map, 0)
        .await
        .expect("a real piece");
    assert_eq!(piece.index(), 0);
    let status = shoal_tests::http::client()
        .get(format!("{}/healthz", agent.http_url()))
        .send()
        .await
        .unwrap()
        .status();
    assert!(status.is_success(), "healthz: {status}");
}

/// Sends `peer` the bitfield `bits` of `digest` from `member`, and
/// returns the bitfields `peer` sends back about `digest` until it is
/// quiet for `quiet`.
async fn answers_to(
    member: &P2pEndpoint,
    events: &mut tokio::sync::mpsc::Receiver<PeerEvent>,
    peer: std::net::SocketAddr,
    digest: Digest,
    bits: Bitfield,
    quiet: Duration,
) -> Vec<Bitfield> {
    member
        .send_have(peer, &HaveMessage::Bitfield { digest, bits })
        .await
        .expect("send bitfield");
    let mut got = Vec::new();
    while let Ok(Some(ev)) = tokio::time::timeout(quiet, events.recv()).await {
        if let PeerEvent::Have {
            peer: from,
            msg: HaveMessage::Bitfield { digest: d, bits },
        } = ev
            && from == peer
            && d == digest
        {
            got.push(bits);
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_complete_agent_answers_only_bitfields_that_lack_pieces() {
    let _heavy = lock::heavy().await;
    let c = one_agent_holds_the_image(amd64_image(0xb17f_1e1d, 47, &[2]), 1).await;
    let addr = c.agents[0].p2p_addr().expect("agent p2p address");
    let layer = c.image.platform("amd64").layers[0].digest.clone();
    let map = piece_map(&c, &layer).await;
    let (member, mut events) = listening_endpoint(SECRET);
    let run = member.clone();
    tokio::spawn(async move { run.run(std::future::pending()).await });
    let quiet = Duration::from_secs(3);

    let full = Bitfield::full(map.piece_count());
    let answers = answers_to(&member, &mut events, addr, map.digest, full, quiet).await;
    assert!(
        answers.is_empty(),
        "a full bitfield was answered {} times",
        answers.len()
    );

    let lacking = Bitfield::new(map.piece_count());
    let answers = answers_to(&member, &mut events, addr, map.digest, lacking, quiet).await;
    assert_eq!(answers.len(), 1, "one answer to a bitfield lacking pieces");
    assert!(answers[0].is_complete(), "the agent holds the whole blob");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_streams_are_limited_and_other_transfers_complete() {
    const STREAMS: u32 = 2000;
    let _heavy = lock::heavy().await;
    let mut c = one_agent_holds_the_image(amd64_image(0x5_7eea, 49, &[8]), 1).await;
    let holder = c.agents[0].p2p_addr().expect("agent p2p address");
    let layer = c.image.platform("amd64").layers[0].digest.clone();
    let map = Arc::new(piece_map(&c, &layer).await);
    let newcomer: Daemon = c.start_agent(&[]).await;
    c.agents.push(newcomer);

    let member = member();
    let flood = {
        let (member, map) = (member.clone(), map.clone());
        tokio::spawn(async move {
            let count = map.piece_count();
            futures_util::stream::iter(0..STREAMS)
                .map(|i| {
                    let (member, map) = (member.clone(), map.clone());
                    async move { member.fetch_piece(holder, &map, i % count).await }
                })
                .buffer_unordered(STREAMS as usize)
                .collect::<Vec<_>>()
                .await
        })
    };
    // Another agent pulls meanwhile; the holder is one of its peers.
    let busy_seen = poll("the flood to hit the upload cap", PULLS_DONE, || async {
        let metrics = c.agents[0].metrics().await;
        let busy = labelled(&metrics, REFUSED, "reason=\"busy\"");
        Ok((busy > 0.0).then_some(busy))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", c.agents[0].log_tail()));
    let pulls = c.spawn_pulls([1]);
    tokio::time::timeout(PULLS_DONE, c.expect_pulled(pulls))
        .await
        .expect("the other agent's pull hung during the flood");
    let results = tokio::time::timeout(PULLS_DONE, flood)
        .await
        .expect("the flood hung")
        .expect("flood task");

    let ok = results.iter().filter(|r| r.is_ok()).count();
    let count = |f: fn(&FetchError) -> bool| {
        results
            .iter()
            .filter(|r| r.as_ref().err().is_some_and(f))
            .count()
    };
    let busy = count(|e| matches!(e, FetchError::Busy { .. }));
    // Requests that waited in vain for one of the streams quinn allows.
    let waited = count(|e| matches!(e, FetchError::Timeout { .. }));
    let other: Vec<String> = results
        .iter()
        .filter_map(|r| r.as_ref().err())
        .filter(|e| !matches!(e, FetchError::Busy { .. } | FetchError::Timeout { .. }))
        .take(5)
        .map(ToString::to_string)
        .collect();
    let metrics = c.agents[0].metrics().await;
    let refused_busy = labelled(&metrics, REFUSED, "reason=\"busy\"");
    eprintln!(
        "flood: {STREAMS} requests: {ok} served, {busy} busy, {waited} timed out waiting \
         for a stream, {} other ({other:?}); busy counted {refused_busy} (first seen {busy_seen})",
        STREAMS as usize - ok - busy - waited
    );
    assert!(busy > 0, "the upload cap never refused the flood");
    assert!(refused_busy >= busy as f64, "busy answers not counted");
    // Every request was served, refused, or held back by quinn's stream
    // limit; none broke the connection or found a wedged agent; and the
    // agent still serves.
    assert_eq!(ok + busy + waited, STREAMS as usize, "{other:?}");
    member
        .fetch_piece(holder, &map, 0)
        .await
        .expect("the agent serves after the flood");
}
