//! Shoal: a tracker, a supernode (the seed) and N agents as processes; node
//! i pulls through agent i like a container runtime would. The embedded
//! upstream behind the supernode is not capped: the seed is.

use std::time::Duration;

use super::{REPO, SystemError, SystemKind, SystemOutcome, SystemSpec, TAG, UPSTREAM_NAME, fleet};
use crate::cluster::{Caps, Cluster, ClusterConfig};
use crate::throttle::Throttle;
use crate::upstream::{Upstream, UpstreamConfig};

/// Whether the daemons take `--upload-rate` / `--download-rate` yet. Until
/// they do (the swarming issue), the seed and peer caps are not passed and
/// the report says so; the peer download cap is enforced by the pull
/// clients either way.
pub const DAEMONS_TAKE_RATE_FLAGS: bool = false;

/// The report's note while the daemons enforce no caps.
pub const UNCAPPED_NOTE: &str = "shoal: agents have no rate caps and no P2P yet, so this is \
     N agents pulling through one supernode whose seed cap is not enforced; only the \
     per-node download cap (client-side) applies";

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
    let mut notes = Vec::new();
    if !DAEMONS_TAKE_RATE_FLAGS {
        notes.push(UNCAPPED_NOTE.to_string());
    }
    Ok(SystemOutcome {
        kind: SystemKind::Shoal,
        nodes,
        upstream_bytes: upstream.counters().bytes_sent(),
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
    let (seed_caps, peer_caps) = if DAEMONS_TAKE_RATE_FLAGS {
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
    })
    .await?;
    Ok((upstream, cluster))
}
