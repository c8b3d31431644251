//! Churn and outages in a swarm (issue 5, "Faults").
//!
//! - `killed_agents_leave_the_swarm_and_the_rest_complete`: ten agents pull
//!   one image at once from a supernode whose upload is capped, so the
//!   pulls take seconds; three of them are SIGKILLed mid-transfer. The
//!   other seven complete with verified digests (the puller checks every
//!   blob's sha256), and the tracker stops listing the dead peers once
//!   their announces expire.
//! - `supernode_outage_falls_back_to_the_upstream_and_restart_reuses_the_store`:
//!   the supernode is SIGKILLed while it seeds; the agents' pulls complete
//!   from the upstream directly. Restarted on the same data dir and
//!   address, it serves a new agent (alone: the first two are gone) from
//!   its content store: the upstream sees no second GET for the blobs it
//!   had complete.
//! - `an_upstream_outage_still_serves_what_the_cluster_holds`: one agent
//!   pulls the image, then the upstream registry is killed. The same agent
//!   pulls it again (from its disk) and another agent pulls it by tag and
//!   by digest (from the supernode and its peer), every blob verified; a
//!   blob the cluster never held gets an OCI error instead of a hang.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use shoal_tests::cluster::{REPO, TAG, UPSTREAM_NAME};
use shoal_tests::image::{LayerSpec, PlatformSpec, TestImage};
use shoal_tests::lock;
use shoal_tests::oci_pull::{PullRequest, pull};
use shoal_tests::swarm::{SwarmCluster, SwarmOptions, received_from};
use shoal_tests::wait::poll;

const MIB: usize = 1024 * 1024;
/// Bound on waiting for the pulls: far beyond their few seconds, short of
/// a hang.
const PULLS_DONE: Duration = Duration::from_secs(300);
/// Bound on waiting for a state change the daemons reach in seconds.
const SETTLE: Duration = Duration::from_secs(120);
/// What `shoal_agent_bytes_received_total` sums.
const RECEIVED: &str = "shoal_agent_bytes_received_total";

/// One platform of 24 + 8 MiB of random data (128 pieces of 256 KiB).
fn image(seed: u64) -> TestImage {
    let layer = |key, size| LayerSpec { key, size };
    TestImage::generate(
        seed,
        &[PlatformSpec {
            os: "linux",
            architecture: "amd64",
            layers: vec![layer(31, 24 * MIB), layer(32, 8 * MIB)],
        }],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_agents_leave_the_swarm_and_the_rest_complete() {
    const AGENTS: usize = 10;
    let victims = 7..AGENTS;
    let _heavy = lock::heavy().await;
    let mut c = SwarmCluster::start(
        image(0xc4_0bb1),
        &SwarmOptions {
            agents: AGENTS,
            // 32 MiB to ten agents through a 4 MiB/s seed: at least 8 s.
            seed_rate: Some("4MiB".into()),
            seed_uploads: Some("4".into()),
            agent_rate: Some("8MiB".into()),
            announce_interval: "1".into(),
        },
    )
    .await;
    let big = c.image.platform("amd64").layers[0].digest.clone();
    let dead: Vec<SocketAddr> = c.p2p_addrs(victims.clone());
    let mut pulls = c.spawn_pulls(0..AGENTS);

    // Mid-transfer: each victim has pieces and the tracker lists it.
    for i in victims.clone() {
        let agent = &c.agents[i];
        poll(&format!("agent {i} to receive 2 MiB"), SETTLE, || async {
            let got = agent.metric_sum(RECEIVED).await.unwrap_or(0.0);
            Ok((got >= (2 * MIB) as f64).then_some(()))
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", agent.log_tail()));
    }
    poll("the tracker to list the victims", SETTLE, || async {
        let listed: HashSet<_> = c.tracker_peers(&big).await.into_iter().collect();
        Ok(dead.iter().all(|a| listed.contains(a)).then_some(()))
    })
    .await
    .unwrap();
    let finished: Vec<usize> = pulls
        .iter()
        .filter(|(_, t)| t.is_finished())
        .map(|(i, _)| *i)
        .collect();
    assert!(
        finished.is_empty(),
        "pulls {finished:?} finished before the kill: the test would prove nothing"
    );

    for i in victims.clone() {
        c.agents[i].kill();
    }
    for (_, task) in pulls.iter().filter(|(i, _)| victims.contains(i)) {
        task.abort();
    }
    pulls.retain(|(i, _)| !victims.contains(i));
    tokio::time::timeout(PULLS_DONE, c.expect_pulled(pulls))
        .await
        .expect("the surviving agents' pulls hung");

    let blobs: Vec<String> = c
        .image
        .platform("amd64")
        .blobs()
        .map(|b| b.digest.clone())
        .collect();
    let live: HashSet<SocketAddr> = c.p2p_addrs(0..7).into_iter().collect();
    for blob in &blobs {
        let listed = poll(
            &format!("the tracker to forget the dead peers of {blob}"),
            SETTLE,
            || async {
                let listed = c.tracker_peers(blob).await;
                Ok((!listed.iter().any(|a| dead.contains(a))).then_some(listed))
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", c.tracker.log_tail()));
        assert!(
            !listed.is_empty() && listed.iter().all(|a| live.contains(a)),
            "tracker lists {listed:?} for {blob}; live agents are {live:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supernode_outage_falls_back_to_the_upstream_and_restart_reuses_the_store() {
    let _heavy = lock::heavy().await;
    let mut c = SwarmCluster::start(
        image(0x5e_ed0d),
        &SwarmOptions {
            agents: 2,
            // 32 MiB at 1 MiB/s: the supernode seeds for 32 s (its
            // seeding policy sends each piece once), leaving time to see
            // the pulls under way on a loaded machine; it has the blobs
            // from the (uncapped) upstream long before. The kill comes as
            // soon as that is seen, so the cap does not lengthen the test.
            seed_rate: Some("1MiB".into()),
            ..SwarmOptions::default()
        },
    )
    .await;
    let amd64 = c.image.platform("amd64").clone();
    let pulls = c.spawn_pulls(0..2);
    // Seeding: the agents have some bytes and the supernode stored every
    // blob of the image.
    let stored = |digest: &str| {
        let hex = digest.trim_start_matches("sha256:");
        c.supernode
            .data_dir()
            .join("blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .is_file()
    };
    poll("the supernode to store every blob", SETTLE, || async {
        Ok(amd64.blobs().all(|b| stored(&b.digest)).then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", c.supernode.log_tail()));
    for agent in &c.agents {
        poll("an agent to receive 1 MiB", SETTLE, || async {
            let got = agent.metric_sum(RECEIVED).await.unwrap_or(0.0);
            Ok((got >= MIB as f64).then_some(()))
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", agent.log_tail()));
    }
    assert!(
        pulls.iter().all(|(_, t)| !t.is_finished()),
        "a pull finished before the supernode was killed"
    );

    c.supernode.kill();
    tokio::time::timeout(PULLS_DONE, c.expect_pulled(pulls))
        .await
        .expect("pulls hung after the supernode died");
    let mut from_upstream = 0.0;
    for agent in &c.agents {
        from_upstream += received_from(&agent.metrics().await, "upstream");
    }
    assert!(
        from_upstream > 0.0,
        "no agent fetched from the upstream after the supernode died"
    );

    c.registry.settle().await;
    let before: Vec<usize> = amd64
        .blobs()
        .map(|b| c.registry.blob_gets(REPO, &b.digest))
        .collect();
    // Without the first agents, the new one's blobs can only come
    // through the supernode.
    for agent in &mut c.agents {
        agent.kill();
    }
    c.supernode.restart().await;
    let fresh = c.start_agent(&[]).await;
    c.agents.push(fresh);
    let pulls = c.spawn_pulls([2]);
    tokio::time::timeout(PULLS_DONE, c.expect_pulled(pulls))
        .await
        .expect("pull through the restarted supernode hung");
    c.registry.settle().await;
    for (blob, before) in amd64.blobs().zip(before) {
        assert_eq!(
            c.registry.blob_gets(REPO, &blob.digest),
            before,
            "the restarted supernode fetched {} again\n{}",
            blob.digest,
            c.supernode.log_tail()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_outage_still_serves_what_the_cluster_holds() {
    let _heavy = lock::heavy().await;
    let c = SwarmCluster::start(
        TestImage::generate(
            0x0d_07a6e,
            &[PlatformSpec {
                os: "linux",
                architecture: "amd64",
                layers: vec![LayerSpec {
                    key: 33,
                    size: 4 * MIB,
                }],
            }],
        ),
        &SwarmOptions::default(),
    )
    .await;
    c.expect_pulled(c.spawn_pulls([0])).await;
    let manifest = c.image.platform("amd64").manifest.digest.clone();

    let SwarmCluster {
        agents,
        registry,
        supernode,
        ..
    } = c;
    drop(registry);
    let client = shoal_tests::http::client();
    for (i, reference) in [(0, TAG), (1, TAG), (1, manifest.as_str())] {
        let agent = &agents[i];
        let req = PullRequest::new(&agent.http_url(), REPO, reference).with_ns(UPSTREAM_NAME);
        let pulled = tokio::time::timeout(PULLS_DONE, pull(&client, &req))
            .await
            .expect("a pull with the upstream down hung")
            .unwrap_or_else(|e| {
                panic!(
                    "agent {i}, {reference}, upstream down: {e}\nagent:\n{}\nsupernode:\n{}",
                    agent.log_tail(),
                    supernode.log_tail()
                )
            });
        assert_eq!(pulled.manifest_digest, manifest, "agent {i}, {reference}");
    }
    // What the cluster never held: a clear error, not a hang.
    let missing = format!(
        "{}/v2/{REPO}/blobs/sha256:{}?ns={UPSTREAM_NAME}",
        agents[1].http_url(),
        "0".repeat(64)
    );
    let resp = tokio::time::timeout(PULLS_DONE, client.get(&missing).send())
        .await
        .expect("a blob request with the upstream down hung")
        .expect("an answer");
    assert!(
        resp.status().is_server_error() || resp.status().is_client_error(),
        "{}",
        resp.status()
    );
    let body = resp.bytes().await.unwrap_or_default();
    assert!(
        shoal_tests::fault_upstream::oci_code(&body).is_some(),
        "not an OCI error: {}",
        String::from_utf8_lossy(&body)
    );
}
