//! The tracker killed in the middle of a swarm and restarted (issue 3
//! "Must show", issue 5 "Tracker outage"), with real processes on
//! loopback.
//!
//! - `a_tracker_killed_mid_swarm_and_restarted_rebuilds_and_swarms_again`:
//!   four agents pull an image through a supernode whose upload is capped,
//!   so they trade pieces for seconds. Once pieces flow between agents the
//!   tracker is SIGKILLed (no shutdown, its state is gone) and restarted on
//!   the same address. Every pull completes with verified digests. The new
//!   tracker process learns the swarm again from the agents' announces
//!   (they keep announcing the blobs they seed: `shoal_tracker_blobs`
//!   covers the image's blobs again), and a pull of a second image after
//!   the restart swarms: the agents receive its bytes from each other, which
//!   they can only do through peers the new tracker named (an agent starts
//!   a download by telling the tracker's peers about it).

use std::time::Duration;

use shoal_tests::cluster::REPO;
use shoal_tests::lock;
use shoal_tests::swarm::{SwarmCluster, SwarmOptions, amd64_image};
use shoal_tests::wait::poll;

const MIB: usize = 1024 * 1024;
const AGENTS: usize = 4;
/// Bound on waiting for pulls: far beyond their seconds, short of a hang.
const PULLS_DONE: Duration = Duration::from_secs(300);
/// Bound on waiting for a state the daemons reach in seconds.
const SETTLE: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tracker_killed_mid_swarm_and_restarted_rebuilds_and_swarms_again() {
    let _heavy = lock::heavy().await;
    // 24 MiB to four agents through a 2 MiB/s seed: the seed alone needs
    // 12 s to send each piece once, so the swarm runs for longer than that.
    let mut c = SwarmCluster::start(
        amd64_image(0x7_4ac4, 51, &[16, 8]),
        &SwarmOptions {
            agents: AGENTS,
            seed_rate: Some("2MiB".into()),
            agent_rate: Some("8MiB".into()),
            announce_interval: "1".into(),
            ..SwarmOptions::default()
        },
    )
    .await;
    let second = amd64_image(0x7_4ac5, 53, &[8]);
    second
        .push(&c.registry.client(), &c.registry.url(), REPO, "second")
        .await;
    let first_blobs = c.image.platform("amd64").blobs().count() as f64;

    let pulls = c.spawn_pulls(0..AGENTS);
    poll("pieces to move between agents", SETTLE, || async {
        let moved = c.peer_bytes().await;
        Ok((moved > 0.0).then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", c.tracker.log_tail()));
    let finished = pulls.iter().filter(|(_, t)| t.is_finished()).count();
    assert_eq!(
        finished, 0,
        "pulls finished before the tracker was killed: the test would prove nothing"
    );
    let announces_before = c
        .tracker
        .metric_sum("shoal_tracker_announces_total")
        .await
        .unwrap_or(0.0);
    c.tracker.kill();
    // Pieces keep moving between the agents that know each other while
    // the tracker is down; then it comes back on the same address.
    tokio::time::sleep(Duration::from_secs(2)).await;
    c.tracker.restart().await;

    tokio::time::timeout(PULLS_DONE, c.expect_pulled(pulls))
        .await
        .expect("pulls hung after the tracker was killed");

    // The new process starts empty and learns the swarm from announces.
    let tracker = &c.tracker;
    let rebuilt = poll(
        "the restarted tracker to know the image's blobs",
        SETTLE,
        || async {
            let blobs = tracker
                .metric_sum("shoal_tracker_blobs")
                .await
                .unwrap_or(0.0);
            Ok((blobs >= first_blobs).then_some(blobs))
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", tracker.log_tail()));

    let peer_before = c.peer_bytes().await;
    let want = second.platform("amd64").manifest.digest.clone();
    let pulls = c.spawn_pulls_of("second", 0..AGENTS);
    tokio::time::timeout(PULLS_DONE, c.expect_pulled_manifest(pulls, &want))
        .await
        .expect("pulls of the second image hung");
    let swarmed = c.peer_bytes().await - peer_before;
    let announces_after = c
        .tracker
        .metric_sum("shoal_tracker_announces_total")
        .await
        .unwrap_or(0.0);
    eprintln!(
        "tracker restart: {announces_before} announces before the kill, {announces_after} \
         to the new process; {rebuilt} blobs rebuilt; second image: {:.1} MiB from peers",
        swarmed / MIB as f64
    );
    assert!(
        announces_after > 0.0,
        "the restarted tracker got no announce"
    );
    assert!(
        swarmed > 0.0,
        "the pull after the restart did not swarm: no bytes from peers\n{}",
        c.agents[0].log_tail()
    );
}
