//! The agent's swarm: blobs fetched in verified pieces from peers over
//! QUIC, with the supernode as seed and fallback.
//!
//! - [`Swarm`]: the agent-wide handle. [`Swarm::get`] turns a blob request
//!   into a piece-wise download of the [`Fetcher`] (single-flight,
//!   persisted, streamed to readers in order) driven by [`driver`];
//!   [`Swarm::run_events`] routes the transport's `have` updates to the
//!   download they concern, and answers peers asking about blobs this agent
//!   holds complete. After a download completes the agent keeps announcing
//!   the blob to the tracker (seeding) until shutdown or until the disk
//!   quota evicts it. An evicted blob is forgotten at once towards every
//!   connected peer ([`HaveMessage::Forget`]), so that none keeps asking
//!   for its pieces (and drops this agent as a liar when refused).
//! - [`driver`]: the event loop of one download, a thin shell around
//!   [`shoal_proto::swarm::Download`].
//! - [`tracker`]: the announce client.
//!
//! The last resort, when neither the swarm nor the supernode can deliver,
//! is the upstream itself ([`crate::upstream_source`]).

pub mod driver;
pub mod outbox;
pub mod tracker;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shoal_proto::tracker_wire::AnnounceRequest;
use shoal_proto::wire::HaveMessage;
use shoal_proto::{Bitfield, Digest, RepoName};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use crate::fetch::{BlobHandle, FetchError, Fetcher};
use crate::p2p::{P2pEndpoint, PeerEvent, RateLimiter};
use crate::supernode_client::SupernodeClient;
pub use tracker::TrackerClient;

/// Bytes received, labelled by `source` (`peer`, `supernode`, `upstream`).
pub const BYTES_RECEIVED: &str = "shoal_agent_bytes_received_total";
/// Pieces verified and written.
pub const PIECES_VERIFIED: &str = "shoal_agent_pieces_verified_total";
/// Pieces that failed verification (their senders are dropped).
pub const PIECES_REJECTED: &str = "shoal_agent_pieces_rejected_total";
/// Peers a download dropped, labelled by `reason` (`corrupt_piece`,
/// `unresponsive`, `protocol_violation`, `banned`, `lied_about_pieces`).
pub const PEERS_DROPPED: &str = "shoal_agent_peers_dropped_total";

/// Events queued per running download before the router waits.
const TASK_EVENTS: usize = 256;
/// Most blobs whose early bitfields are kept.
const MAX_EARLY: usize = 256;
/// Most banned peer addresses remembered; the oldest ban is lifted first.
const MAX_BANNED: usize = 4096;
/// Announce interval when the tracker gave none (or is unreachable).
const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

/// How the agent swarms.
#[derive(Clone, Debug)]
pub struct SwarmOptions {
    /// This agent's id at the tracker (random per start).
    pub peer_id: u64,
    /// The QUIC address other peers reach this agent at.
    pub advertise: SocketAddr,
    /// The supernode: piece maps, seed, HTTP fallback.
    pub supernode: SupernodeClient,
    /// Host of the supernode's URL, used when it reports an unspecified
    /// QUIC address.
    pub supernode_host: Option<String>,
    /// The tracker, if any.
    pub tracker: Option<TrackerClient>,
    /// Download cap in bytes per second.
    pub download_rate: Option<u64>,
    /// The upload slots (to report upload load to the tracker).
    pub max_uploads: usize,
    /// Upstream clients by name: where a download's missing pieces come
    /// from when the supernode is unreachable.
    pub direct: HashMap<String, crate::upstream::Upstream>,
}

/// A blob and where it comes from upstream.
#[derive(Clone, Debug)]
pub struct BlobRef {
    /// Upstream registry name.
    pub upstream: String,
    /// Repository there.
    pub repo: RepoName,
    /// The blob.
    pub digest: Digest,
}

/// The agent's swarm; see the module documentation.
pub struct Swarm {
    opts: SwarmOptions,
    endpoint: P2pEndpoint,
    fetcher: Fetcher,
    limiter: Option<Arc<RateLimiter>>,
    tasks: Mutex<HashMap<Digest, mpsc::Sender<PeerEvent>>>,
    /// Bitfields peers sent for blobs without a running download here
    /// (they may start one soon), bounded by [`MAX_EARLY`].
    early: Mutex<HashMap<Digest, HashMap<SocketAddr, Bitfield>>>,
    /// Peers that sent a bad piece, by address, oldest first (bounded by
    /// [`MAX_BANNED`]). Agent-wide: a peer caught lying in one download is
    /// not asked in any other, and its bitfields are ignored (a scheduler
    /// ban alone is by peer id, which a new bitfield would renew).
    banned: Mutex<VecDeque<SocketAddr>>,
    shutdown: CancellationToken,
    next_seed: AtomicU64,
    /// Every download's `have` updates, merged per peer.
    haves: outbox::HaveOutbox,
}

impl Swarm {
    /// A swarm over `endpoint` filling `fetcher`'s store; background work
    /// (seeding announces, forgetting evicted blobs) stops with `shutdown`.
    /// Must be called within a Tokio runtime.
    pub fn new(
        opts: SwarmOptions,
        endpoint: P2pEndpoint,
        fetcher: Fetcher,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        let limiter = opts
            .download_rate
            .map(|r| Arc::new(RateLimiter::new(r, (r / 4).max(256 * 1024))));
        let evictions = fetcher.store().evictions();
        let swarm = Arc::new(Swarm {
            next_seed: AtomicU64::new(opts.peer_id),
            haves: outbox::HaveOutbox::start(endpoint.clone()),
            opts,
            endpoint,
            fetcher,
            limiter,
            tasks: Mutex::default(),
            early: Mutex::default(),
            banned: Mutex::default(),
            shutdown,
        });
        tokio::spawn(swarm.clone().forget_evicted(evictions));
        swarm
    }

    /// Tells the connected peers, for each blob the store evicts, that this
    /// agent no longer holds it, until shutdown. Peers told nothing of a
    /// blob refuse the update locally (the `have` order), which is harmless.
    async fn forget_evicted(self: Arc<Self>, mut evictions: broadcast::Receiver<Digest>) {
        loop {
            let digest = tokio::select! {
                () = self.shutdown.cancelled() => return,
                next = evictions.recv() => match next {
                    Ok(digest) => digest,
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "evictions not forgotten towards peers");
                        continue;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
            };
            // Fetched again already: its download announces it afresh.
            if self.tasks.lock().expect("lock").contains_key(&digest) {
                continue;
            }
            let msg = HaveMessage::Forget { digest };
            let endpoint = &self.endpoint;
            let sends = endpoint.connected_peers().into_iter().map(|peer| {
                let msg = &msg;
                async move {
                    match endpoint.send_have(peer, msg).await {
                        Ok(()) => tracing::debug!(%peer, %digest, "forgot evicted blob"),
                        Err(e) => tracing::trace!(%peer, %digest, error = %e, "no forget sent"),
                    }
                }
            });
            futures_util::future::join_all(sends).await;
        }
    }

    /// Swarm downloads running now (they share the download cap).
    pub(crate) fn running_downloads(&self) -> usize {
        self.tasks.lock().expect("lock").len()
    }

    /// The blob, from the store or from a swarm download this call starts
    /// or joins; returns once its size is known.
    pub async fn get(self: &Arc<Self>, blob: BlobRef) -> Result<BlobHandle, FetchError> {
        let me = self.clone();
        let digest = blob.digest;
        self.fetcher
            .get_pieced(&digest, move |task| async move {
                let (tx, rx) = mpsc::channel(TASK_EVENTS);
                me.tasks.lock().expect("lock").insert(digest, tx);
                let _unregister = Unregister(me.clone(), digest);
                let map = driver::Driver::new(me.clone(), task, blob.clone(), rx)
                    .run()
                    .await?;
                me.clone().spawn_seeding(blob, map.piece_count());
                Ok(map)
            })
            .await
    }

    /// Routes the transport's events to running downloads until the
    /// channel closes; answers bitfield requests for complete blobs.
    pub async fn run_events(self: Arc<Self>, mut events: mpsc::Receiver<PeerEvent>) {
        while let Some(ev) = events.recv().await {
            tracing::trace!(?ev, "peer event");
            match &ev {
                // `shoal_agent_peers_connected` is kept by the transport.
                PeerEvent::Connected { .. } => {}
                PeerEvent::Disconnected { .. } => {
                    let senders: Vec<_> =
                        self.tasks.lock().expect("lock").values().cloned().collect();
                    for tx in senders {
                        let _ = tx.try_send(ev.clone());
                    }
                }
                PeerEvent::Have { peer, msg } => {
                    let digest = *msg.digest();
                    let tx = self.tasks.lock().expect("lock").get(&digest).cloned();
                    match tx {
                        Some(tx) => {
                            let _ = tx.send(ev.clone()).await;
                        }
                        None => self.remember_early(*peer, msg),
                    }
                }
            }
        }
    }

    /// Keeps what a peer said about a blob with no download running here,
    /// for a download that starts later; answers a peer that lacks pieces
    /// of a blob held complete here.
    ///
    /// A complete bitfield gets no answer: its sender needs nothing, and
    /// two complete agents answering each other's bitfields would go on
    /// for ever (each answer is a bitfield too).
    fn remember_early(&self, peer: SocketAddr, msg: &HaveMessage) {
        let digest = *msg.digest();
        if let HaveMessage::Bitfield { bits, .. } = msg
            && !bits.is_complete()
            && self.answer_complete(peer, digest)
        {
            return;
        }
        let mut early = self.early.lock().expect("lock");
        match msg {
            HaveMessage::Bitfield { bits, .. } => {
                if !early.contains_key(&digest) && early.len() >= MAX_EARLY {
                    return;
                }
                early.entry(digest).or_default().insert(peer, bits.clone());
            }
            HaveMessage::Have { index, .. } => {
                if let Some(bits) = early.get_mut(&digest).and_then(|m| m.get_mut(&peer))
                    && *index < bits.len()
                {
                    bits.set(*index);
                }
            }
            HaveMessage::Forget { .. } => {
                if let Some(m) = early.get_mut(&digest) {
                    m.remove(&peer);
                }
            }
        }
    }

    /// The bitfields peers sent for `digest` before its download started.
    fn take_early(&self, digest: &Digest) -> HashMap<SocketAddr, Bitfield> {
        self.early
            .lock()
            .expect("lock")
            .remove(digest)
            .unwrap_or_default()
    }

    /// Tells `peer` that this agent holds every piece of `digest`, if so.
    fn answer_complete(&self, peer: SocketAddr, digest: Digest) -> bool {
        let Some(map) = self.fetcher.store().get_piece_map(&digest) else {
            return false;
        };
        if !self.fetcher.store().blob_path(&digest).is_file() {
            return false;
        }
        let endpoint = self.endpoint.clone();
        tokio::spawn(async move {
            let msg = HaveMessage::Bitfield {
                digest,
                bits: Bitfield::full(map.piece_count()),
            };
            if let Err(e) = endpoint.send_have(peer, &msg).await {
                tracing::debug!(%peer, error = %e, "cannot send bitfield");
            }
        });
        true
    }

    /// The announce for `blob` with `pieces` held.
    fn announce_request(&self, blob: &BlobRef, pieces: Option<Bitfield>) -> AnnounceRequest {
        let load = self.endpoint.server().active_uploads() * 100 / self.opts.max_uploads.max(1);
        AnnounceRequest {
            blob: blob.digest,
            upstream: blob.upstream.clone(),
            repo: blob.repo.as_str().to_owned(),
            peer: self.opts.peer_id,
            addr: self.opts.advertise.to_string(),
            pieces,
            upload_load: load.min(100) as u8,
            labels: Default::default(),
            seed: false,
            stopped: false,
        }
    }

    /// Keeps announcing a complete blob at the tracker's interval, until
    /// it is evicted from the store.
    fn spawn_seeding(self: Arc<Self>, blob: BlobRef, pieces: u32) {
        let Some(tracker) = self.opts.tracker.clone() else {
            return;
        };
        tokio::spawn(async move {
            // The first announce may come before the blob is committed.
            let mut stored = false;
            loop {
                let present = self.fetcher.store().blob_path(&blob.digest).is_file();
                stored |= present;
                if stored && !present {
                    // Evicted (the disk quota): leave this blob's swarm.
                    let mut req = self.announce_request(&blob, None);
                    req.stopped = true;
                    let _ = tracker.announce(&req).await;
                    return;
                }
                let req = self.announce_request(&blob, Some(Bitfield::full(pieces)));
                let interval = match tracker.announce(&req).await {
                    Ok(r) => Duration::from_millis(r.interval_ms.max(100)),
                    Err(e) => {
                        tracing::debug!(error = %e, "seeding announce failed");
                        DEFAULT_INTERVAL
                    }
                };
                tokio::select! {
                    () = self.shutdown.cancelled() => return,
                    () = tokio::time::sleep(interval) => {}
                }
            }
        });
    }

    /// Never asks `peer` for a piece again (see `banned`).
    fn ban(&self, peer: SocketAddr) {
        let mut banned = self.banned.lock().expect("lock");
        if !banned.contains(&peer) {
            if banned.len() >= MAX_BANNED {
                banned.pop_front();
            }
            banned.push_back(peer);
        }
    }

    /// Whether `peer` sent a bad piece to this agent.
    fn is_banned(&self, peer: SocketAddr) -> bool {
        self.banned.lock().expect("lock").contains(&peer)
    }

    fn rng_seed(&self) -> u64 {
        self.next_seed
            .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
    }
}

/// Removes a download's event route when it ends.
struct Unregister(Arc<Swarm>, Digest);

impl Drop for Unregister {
    fn drop(&mut self) {
        if let Ok(mut tasks) = self.0.tasks.lock() {
            tasks.remove(&self.1);
        }
    }
}
