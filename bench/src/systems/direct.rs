//! The `direct` baseline: every node pulls straight from the upstream,
//! whose total upload is capped at the seed rate by one token bucket shared
//! by all connections (waiting clients served in turn), each node capped at
//! the peer download rate: BASELINES.md's "Direct". With `--upstream URL`
//! the nodes pull from that registry through the bench's capping,
//! counting proxy ([`Source`]).

use std::time::Duration;

use super::source::Source;
use super::{SystemError, SystemKind, SystemOutcome, SystemSpec, fleet};
use crate::throttle::Throttle;

/// Measures the direct baseline.
pub async fn run(spec: &SystemSpec) -> Result<SystemOutcome, SystemError> {
    let source = Source::start(spec, Throttle::new(spec.seed_up)).await;
    spec.wait_for_start().await;
    let source = source.map_err(SystemError::Upstream)?;
    let urls = vec![source.url(); spec.peers];
    let nodes = fleet::pull_all(&urls, Some(spec.peer_down), &spec.progress).await;
    Ok(SystemOutcome {
        kind: SystemKind::Direct,
        nodes,
        upstream_bytes: source.bytes_sent(),
        seed_bytes: source.bytes_sent(),
        peer_bytes_fraction: 0.0,
        cpu: Duration::ZERO,
        notes: source.note("direct", spec).into_iter().collect(),
    })
}
