//! The actor that owns the tracker's swarm state.
//!
//! [`TrackerState`] (in `shoal-proto`) is sans-IO; one task here drives it
//! (STYLE.md 4): a cloneable [`TrackerHandle`] sends a command with a
//! oneshot reply over a bounded channel, and the task, which alone owns the
//! state, answers it, drains the state's actions (seeding requests), and
//! arms a timer for `poll_timeout` so that silent peers expire. Time is the
//! tokio clock since the task started, converted to the state's [`Time`];
//! tests may pause it.
//!
//! Beside the state, the task remembers each blob's [`Origin`] (upstream
//! and repository, the last announced) because a seeding request needs
//! them and the sans-IO state has no use for them.

use std::collections::HashMap;

use shoal_proto::Digest;
use shoal_proto::time::Time;
use shoal_proto::tracker_state::{
    Announce, AnnounceError, AnnounceReply, TrackerAction, TrackerConfig, TrackerState,
};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::metrics::{BLOBS, PEERS};
use crate::seed::Seeder;
use shoal_proto::tracker_wire::{Origin, SeedRequest, SwarmPeer, SwarmView};

/// Commands queued at most; senders wait when the task is behind.
const CHANNEL_CAPACITY: usize = 1024;

/// Why a call to the state task failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The state refused the announce.
    #[error(transparent)]
    Rejected(#[from] AnnounceError),
    /// The task has stopped (the tracker is shutting down).
    #[error("tracker state has stopped")]
    Stopped,
}

enum Command {
    Announce {
        announce: Announce,
        origin: Origin,
        reply: oneshot::Sender<Result<AnnounceReply, AnnounceError>>,
    },
    Swarm {
        blob: Digest,
        reply: oneshot::Sender<Option<SwarmView>>,
    },
}

/// Talks to the state task. Cheap to clone; the task stops when every
/// handle is dropped or the shutdown token fires.
#[derive(Clone, Debug)]
pub struct TrackerHandle {
    tx: mpsc::Sender<Command>,
}

impl TrackerHandle {
    /// Starts the state task with `config` and RNG seed `rng_seed`;
    /// seeding requests go through `seeder`.
    pub fn spawn(
        config: TrackerConfig,
        rng_seed: u64,
        seeder: Seeder,
        shutdown: CancellationToken,
    ) -> Self {
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        let actor = Actor {
            state: TrackerState::new(config, rng_seed),
            origins: HashMap::new(),
            start: Instant::now(),
            seeder,
            rx,
        };
        tokio::spawn(actor.run(shutdown));
        TrackerHandle { tx }
    }

    /// Records an announce and returns the peers for it.
    pub async fn announce(
        &self,
        announce: Announce,
        origin: Origin,
    ) -> Result<AnnounceReply, CallError> {
        let (reply, rx) = oneshot::channel();
        self.call(Command::Announce {
            announce,
            origin,
            reply,
        })
        .await?;
        Ok(rx.await.map_err(|_| CallError::Stopped)??)
    }

    /// The peers known for `blob`, if any.
    pub async fn swarm(&self, blob: Digest) -> Result<Option<SwarmView>, CallError> {
        let (reply, rx) = oneshot::channel();
        self.call(Command::Swarm { blob, reply }).await?;
        rx.await.map_err(|_| CallError::Stopped)
    }

    async fn call(&self, cmd: Command) -> Result<(), CallError> {
        self.tx.send(cmd).await.map_err(|_| CallError::Stopped)
    }
}

struct Actor {
    state: TrackerState,
    origins: HashMap<Digest, Origin>,
    start: Instant,
    seeder: Seeder,
    rx: mpsc::Receiver<Command>,
}

impl Actor {
    async fn run(mut self, shutdown: CancellationToken) {
        loop {
            let deadline = self.state.poll_timeout().and_then(|t| self.instant(t));
            tokio::select! {
                () = shutdown.cancelled() => break,
                cmd = self.rx.recv() => match cmd {
                    Some(cmd) => self.handle(cmd),
                    None => break,
                },
                () = sleep_until(deadline) => {
                    let now = self.now();
                    self.state.handle_timeout(now);
                }
            }
            self.drain_actions();
            self.prune_origins();
            metrics::gauge!(PEERS).set(self.state.peer_count() as f64);
            metrics::gauge!(BLOBS).set(self.state.blob_count() as f64);
        }
        tracing::debug!("tracker state task stopped");
    }

    fn now(&self) -> Time {
        Time::from_duration(self.start.elapsed())
    }

    /// The instant of state time `t`; `None` if it is too far away to
    /// represent (never, in effect).
    fn instant(&self, t: Time) -> Option<Instant> {
        self.start.checked_add(t.since_epoch())
    }

    fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::Announce {
                announce,
                origin,
                reply,
            } => {
                let blob = announce.blob;
                let stopped = announce.stopped;
                let now = self.now();
                let res = self.state.handle_announce(now, announce);
                if res.is_ok() && !stopped {
                    self.origins.insert(blob, origin);
                }
                let _ = reply.send(res);
            }
            Command::Swarm { blob, reply } => {
                let _ = reply.send(self.swarm(blob));
            }
        }
    }

    fn swarm(&self, blob: Digest) -> Option<SwarmView> {
        let peers: Vec<SwarmPeer> = self
            .state
            .peers(&blob)
            .map(|(id, pieces)| SwarmPeer {
                peer: id.0,
                pieces: pieces.count(),
                total: pieces.len(),
            })
            .collect();
        if peers.is_empty() {
            return None;
        }
        let origin = self.origins.get(&blob);
        Some(SwarmView {
            blob,
            upstream: origin.map(|o| o.upstream.clone()),
            repo: origin.map(|o| o.repo.to_string()),
            peers,
        })
    }

    fn drain_actions(&mut self) {
        while let Some(action) = self.state.poll_action() {
            match action {
                TrackerAction::SeedBlob { blob, supernode } => {
                    let Some(origin) = self.origins.get(&blob) else {
                        // Cannot happen: the announce that created the
                        // swarm recorded its origin.
                        tracing::warn!(%blob, "no upstream known for a blob to seed");
                        continue;
                    };
                    let req = SeedRequest {
                        upstream: origin.upstream.clone(),
                        repo: origin.repo.to_string(),
                        digest: blob,
                    };
                    self.seeder.spawn(&supernode, req);
                }
            }
        }
    }

    /// Forgets the origins of blobs the state no longer tracks. Runs only
    /// once stale entries make up a fifth of the map, so its cost is
    /// amortised over the removals that made them.
    fn prune_origins(&mut self) {
        let tracked = self.state.blob_count();
        if self.origins.len() > tracked + tracked / 4 + 64 {
            let state = &self.state;
            self.origins
                .retain(|blob, _| state.peers(blob).next().is_some());
        }
    }
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
