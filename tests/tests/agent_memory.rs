//! Agent memory (RSS), idle and while serving ten peers: figures for
//! `docs/BENCHMARKS.md` ("Agent memory"), not a pass/fail test, so it is
//! ignored by default. Run it against release daemons:
//!
//! ```sh
//! cargo build --release --workspace --bins
//! SHOAL_BIN_DIR=$PWD/target/release cargo test -p shoal-tests --test tests \
//!     agent_memory -- --ignored --nocapture
//! ```
//!
//! - `agent_rss_idle_and_serving_ten_peers`: agent A starts (idle RSS),
//!   pulls a 64 MiB image (idle RSS with the image stored), then ten fresh
//!   agents pull the same image at once while the supernode's upload is
//!   capped at 4 MiB/s and theirs at 1 MiB/s, so most pieces come from A
//!   (its upload uncapped). A's `VmRSS` is sampled every 100 ms; the
//!   largest sample and its peak (`VmHWM`) are the busy figures.

use std::time::{Duration, Instant};

use shoal_tests::image::{LayerSpec, PlatformSpec, TestImage};
use shoal_tests::lock;
use shoal_tests::proc_status::rss_kib;
use shoal_tests::swarm::{SwarmCluster, SwarmOptions, received_from};

const MIB: usize = 1024 * 1024;
const PEERS: usize = 10;
/// Bound on waiting for pulls: far beyond their seconds, short of a hang.
const PULLS_DONE: Duration = Duration::from_secs(600);

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "prints figures; run with --ignored against release daemons"]
async fn agent_rss_idle_and_serving_ten_peers() {
    let _heavy = lock::heavy().await;
    let layer = |key, size| LayerSpec { key, size };
    let image = TestImage::generate(
        0x5eed_5a4d,
        &[PlatformSpec {
            os: "linux",
            architecture: "amd64",
            layers: vec![layer(11, 32 * MIB), layer(12, 24 * MIB), layer(13, 8 * MIB)],
        }],
    );
    let mut c = SwarmCluster::start(
        image,
        &SwarmOptions {
            agents: 1,
            seed_rate: Some("4MiB".into()),
            seed_uploads: Some("4".into()),
            announce_interval: "1".into(),
            ..SwarmOptions::default()
        },
    )
    .await;
    let pid = c.agents[0].pid();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (idle, _) = rss_kib(pid);

    let pulls = c.spawn_pulls([0]);
    tokio::time::timeout(PULLS_DONE, c.expect_pulled(pulls))
        .await
        .expect("first pull hung");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (idle_stored, hwm_own_pull) = rss_kib(pid);

    let slow = ["--upload-rate".to_string(), "1MiB".to_string()];
    let more = futures_util::future::join_all((0..PEERS).map(|_| c.start_agent(&slow))).await;
    c.agents.extend(more);
    let started = Instant::now();
    let mut pulls = c.spawn_pulls(1..=PEERS);
    let mut peak_sampled = 0;
    while pulls.iter().any(|(_, t)| !t.is_finished()) {
        assert!(started.elapsed() < PULLS_DONE, "pulls hung");
        peak_sampled = peak_sampled.max(rss_kib(pid).0);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let elapsed = started.elapsed();
    let finished = std::mem::take(&mut pulls);
    c.expect_pulled(finished).await;
    let (after, hwm) = rss_kib(pid);
    let sent = c.agents[0]
        .metric_sum("shoal_agent_bytes_sent_total")
        .await
        .unwrap_or(0.0);
    let mut from_peers = 0.0;
    for a in &c.agents[1..] {
        from_peers += received_from(&a.metrics().await, "peer");
    }
    println!(
        "agent memory: idle {:.1} MiB; idle with the 64 MiB image stored {:.1} MiB \
         (peak during its own pull {:.1} MiB)",
        mib(idle),
        mib(idle_stored),
        mib(hwm_own_pull)
    );
    println!(
        "agent memory: serving {PEERS} peers for {:.1} s ({:.0} MiB sent by A; \
         {:.0} MiB received by the peers from peers): peak RSS {:.1} MiB \
         (sampled max {:.1} MiB), {:.1} MiB after",
        elapsed.as_secs_f64(),
        sent / MIB as f64,
        from_peers / MIB as f64,
        mib(hwm),
        mib(peak_sampled),
        mib(after)
    );
}
