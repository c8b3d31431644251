//! The `direct` baseline: every node pulls straight from the upstream,
//! whose total upload is capped at the seed rate by one token bucket shared
//! by all connections (waiting clients served in turn), each node capped at
//! the peer download rate: BASELINES.md's "Direct".

use std::time::Duration;

use super::{REPO, SystemError, SystemKind, SystemOutcome, SystemSpec, TAG, fleet};
use crate::throttle::Throttle;
use crate::upstream::{Upstream, UpstreamConfig};

/// Measures the direct baseline.
pub async fn run(spec: &SystemSpec) -> Result<SystemOutcome, SystemError> {
    let upstream = Upstream::start(UpstreamConfig {
        image: spec.image.clone(),
        repo: REPO.into(),
        tag: TAG.into(),
        throttle: Throttle::new(spec.seed_up),
    })
    .await;
    spec.wait_for_start().await;
    let upstream = upstream.map_err(SystemError::Upstream)?;
    let urls = vec![upstream.url(); spec.peers];
    let nodes = fleet::pull_all(&urls, spec.peer_down, &spec.progress).await;
    Ok(SystemOutcome {
        kind: SystemKind::Direct,
        nodes,
        upstream_bytes: upstream.counters().bytes_sent(),
        seed_bytes: upstream.counters().bytes_sent(),
        peer_bytes_fraction: 0.0,
        cpu: Duration::ZERO,
        notes: Vec::new(),
    })
}
