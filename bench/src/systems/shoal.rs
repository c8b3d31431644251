//! Shoal: a tracker, a supernode (the seed) and N agents as processes; node
//! i pulls through agent i like a container runtime would. The embedded
//! upstream behind the supernode is not capped: the seed is.

use std::time::Duration;

use super::{REPO, SystemError, SystemKind, SystemOutcome, SystemSpec, TAG, UPSTREAM_NAME, fleet};
use crate::cluster::{Caps, Cluster, ClusterConfig};
use crate::throttle::Throttle;
use crate::upstream::{Upstream, UpstreamConfig};

/// The report's note with `--no-p2p`: the daemons enforce no caps.
pub const UNCAPPED_NOTE: &str = "shoal: with --no-p2p the agents fetch whole blobs from the \
     supernode over HTTP: N agents pulling through one supernode, no P2P, no daemon rate caps \
     (the seed cap is not enforced); only the per-node download cap (client-side) applies";

/// The report's note with piece swarming (the default).
pub const P2P_NOTE: &str = "shoal: daemons share a generated cluster \
     secret and swarm pieces over QUIC; seed and peer caps are passed to them as \
     --upload-rate/--download-rate, and the per-node download cap is also enforced client-side";

/// Measures Shoal.
pub async fn run(spec: &SystemSpec) -> Result<SystemOutcome, SystemError> {
    let prepared = prepare(spec).await;
    spec.wait_for_start().await;
    let (upstream, cluster) = prepared?;
    let urls: Vec<String> = cluster.agents.iter().map(|a| a.http_url()).collect();
    let nodes = fleet::pull_all(&urls, spec.peer_down, &spec.progress).await;

    let client = crate::http::client(Duration::from_secs(30));
    let metrics = cluster.scrape(&client).await?;
    let cpu = cluster.cpu_time();
    if let Err(e) = cluster.save_logs(&spec.logs_dir) {
        tracing::warn!(
            "could not save daemon logs to {}: {e}",
            spec.logs_dir.display()
        );
    }
    drop(cluster);
    let notes = vec![if spec.p2p { P2P_NOTE } else { UNCAPPED_NOTE }.to_string()];
    Ok(SystemOutcome {
        kind: SystemKind::Shoal,
        nodes,
        upstream_bytes: upstream.counters().bytes_sent(),
        seed_bytes: metrics
            .agent_bytes_by_source
            .get("supernode")
            .copied()
            .unwrap_or(0.0) as u64,
        peer_bytes_fraction: metrics.peer_bytes_fraction(),
        cpu,
        notes,
    })
}

async fn prepare(spec: &SystemSpec) -> Result<(Upstream, Cluster), SystemError> {
    let upstream = Upstream::start(UpstreamConfig {
        image: spec.image.clone(),
        repo: REPO.into(),
        tag: TAG.into(),
        throttle: Throttle::unlimited(),
    })
    .await
    .map_err(SystemError::Upstream)?;
    // The daemons enforce caps on their peer-to-peer path only.
    let (seed_caps, peer_caps) = if spec.p2p {
        (
            Caps {
                upload: Some(spec.seed_up),
                download: None,
            },
            Caps {
                upload: Some(spec.peer_up),
                download: Some(spec.peer_down),
            },
        )
    } else {
        (Caps::default(), Caps::default())
    };
    let cluster = Cluster::start(&ClusterConfig {
        bin_dir: spec.bin_dir.clone(),
        agents: spec.peers,
        upstream: (UPSTREAM_NAME.into(), upstream.url()),
        seed_caps,
        peer_caps,
        p2p: spec.p2p,
    })
    .await?;
    Ok((upstream, cluster))
}
