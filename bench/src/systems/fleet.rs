//! N nodes pulling at once, each with its own HTTP client (no shared
//! connections) and its own download cap, timed from one t0.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{NodeResult, REPO, TAG};
use crate::progress::Progress;
use crate::pull::{PullOptions, PullRequest, pull_with};
use crate::throttle::Throttle;
use crate::units::Rate;

/// Upper bound on one node's pull: only guards against a hung run.
const PULL_TIMEOUT: Duration = Duration::from_secs(3600);

/// Pulls the benchmark image from each of `registries` (one node per URL)
/// at the same time, each client capped at `down` if given (when the
/// client is the node's network end, as in a direct pull; a runtime reading
/// from its node's agent is not, the agent enforces the node's cap). Returns every node's
/// result relative to t0, taken just before the first pull starts.
pub async fn pull_all(
    registries: &[String],
    down: Option<Rate>,
    progress: &Arc<Progress>,
) -> Vec<NodeResult> {
    let clients: Vec<reqwest::Client> = registries
        .iter()
        .map(|_| crate::http::client(PULL_TIMEOUT))
        .collect();
    let t0 = Instant::now();
    progress.started(t0);
    let tasks: Vec<_> = registries
        .iter()
        .zip(clients)
        .map(|(url, client)| {
            let req = PullRequest::new(url, REPO, TAG);
            let opts = PullOptions {
                throttle: down.map_or_else(Throttle::unlimited, Throttle::new),
                progress: Some(progress.bytes_counter()),
            };
            let progress = progress.clone();
            tokio::spawn(async move {
                let result = pull_with(&client, &req, &opts).await;
                progress.node_done(result.is_ok());
                let secs = |at: Instant| (at - t0).as_secs_f64();
                match result {
                    Ok(timed) => NodeResult {
                        finished_s: secs(timed.finished),
                        bytes: timed.bytes,
                        error: None,
                    },
                    Err(e) => NodeResult {
                        finished_s: secs(Instant::now()),
                        bytes: 0,
                        error: Some(e.to_string()),
                    },
                }
            })
        })
        .collect();
    let mut nodes = Vec::with_capacity(tasks.len());
    for task in tasks {
        nodes.push(task.await.unwrap_or_else(|e| NodeResult {
            finished_s: (Instant::now() - t0).as_secs_f64(),
            bytes: 0,
            error: Some(format!("pull task failed: {e}")),
        }));
    }
    nodes
}
