//! Shoal: a tracker, a supernode (the seed) and N agents as processes; node
//! i pulls through agent i like a container runtime would. The embedded
//! upstream behind the supernode is not capped: the seed is. With
//! `--upstream URL` the supernode and agents use that registry instead,
//! through the bench's counting proxy ([`Source`]).

use std::time::Duration;

use super::source::Source;
use super::{SystemError, SystemKind, SystemOutcome, SystemSpec, UPSTREAM_NAME, fleet};
use crate::cluster::{Caps, Cluster, ClusterConfig};
use crate::throttle::Throttle;

/// The report's note with `--no-p2p`: the daemons enforce no caps.
pub const UNCAPPED_NOTE: &str = "shoal: with --no-p2p the agents fetch whole blobs from the \
     supernode over HTTP: N agents pulling through one supernode, no P2P, no daemon rate caps \
     (the seed cap is not enforced); only the per-node download cap (client-side) applies";

/// The report's note with piece swarming (the default).
pub const P2P_NOTE: &str = "shoal: daemons share a generated cluster \
     secret and swarm pieces over QUIC; seed and peer caps are passed to them as \
     --upload-rate/--download-rate; the runtimes read from their agents uncapped (loopback on the node)";

/// Measures Shoal.
pub async fn run(spec: &SystemSpec) -> Result<SystemOutcome, SystemError> {
    let prepared = prepare(spec).await;
    spec.wait_for_start().await;
    let (upstream, cluster) = prepared?;
    let urls: Vec<String> = cluster.agents.iter().map(|a| a.http_url()).collect();
    // With swarming, each agent caps its node's traffic with other nodes
    // (`--download-rate`); its runtime reads from it over the node's
    // loopback, which no NIC limits. Without, the client is capped.
    let client_cap = (!spec.p2p).then_some(spec.peer_down);
    let nodes = fleet::pull_all(&urls, client_cap, &spec.progress).await;

    let client = crate::http::client(Duration::from_secs(30));
    let metrics = cluster.scrape(&client).await?;
    let cpu = cluster.cpu_time();
    if let Err(e) = cluster.save_metrics(&client, &spec.logs_dir).await {
        tracing::warn!(
            "could not save daemon metrics to {}: {e}",
            spec.logs_dir.display()
        );
    }
    if let Err(e) = cluster.save_logs(&spec.logs_dir) {
        tracing::warn!(
            "could not save daemon logs to {}: {e}",
            spec.logs_dir.display()
        );
    }
    drop(cluster);
    let mut notes = vec![if spec.p2p { P2P_NOTE } else { UNCAPPED_NOTE }.to_string()];
    notes.extend(upstream.note("shoal", spec));
    Ok(SystemOutcome {
        kind: SystemKind::Shoal,
        nodes,
        upstream_bytes: upstream.bytes_sent(),
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

/// The upstream (uncapped: the seed is capped) and the cluster.
async fn prepare(spec: &SystemSpec) -> Result<(Source, Cluster), SystemError> {
    let upstream = Source::start(spec, Throttle::unlimited())
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
