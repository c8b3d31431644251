//! A lying peer for swarm tests, running in the test process.
//!
//! [`FakePeer`] is a member of the cluster (it holds the secret, so its
//! QUIC handshakes succeed) built from `shoal_agent`'s own transport: a
//! [`P2pEndpoint`] whose [`PieceProvider`] claims every piece of the blobs
//! it is given and [`Lie`]s when asked for one. It announces a full
//! bitfield of each blob to the tracker, answers every peer's bitfield with
//! a full one, and — persistent, like a real attacker — says it again
//! every [`REANNOUNCE`] (a `Forget` and a new full bitfield on each
//! connection), so that a peer which merely forgets it is asked again. It
//! counts the piece requests it receives.

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use shoal_agent::http_auth::Auth;
use shoal_agent::p2p::{ClusterTls, P2pConfig, P2pEndpoint, PeerEvent, PieceProvider, PieceServer};
use shoal_agent::supernode_client::SupernodeClient;
use shoal_agent::swarm::TrackerClient;
use shoal_proto::tracker_wire::AnnounceRequest;
use shoal_proto::wire::{ClusterSecret, HaveMessage};
use shoal_proto::{Bitfield, Digest, PieceMap, RepoName};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::cluster::{REPO, UPSTREAM_NAME};

/// How often the fake repeats its claims to the tracker and to its peers.
pub const REANNOUNCE: Duration = Duration::from_secs(1);

/// What the fake answers to a piece request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lie {
    /// Bytes of the right length whose sha256 does not match the map.
    WrongBytes,
    /// `NotHave`, for pieces it claims to hold.
    NotHave,
}

/// The fake's pieces: every piece of every map, all lies.
struct Liar {
    lie: Lie,
    maps: HashMap<Digest, Arc<PieceMap>>,
    /// Piece requests received (the server looks the map up once for each).
    requests: AtomicUsize,
}

impl PieceProvider for Liar {
    fn piece_map(&self, digest: &Digest) -> Option<Arc<PieceMap>> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.maps.get(digest).cloned()
    }

    fn has_piece(&self, digest: &Digest, _: u32) -> bool {
        self.lie == Lie::WrongBytes && self.maps.contains_key(digest)
    }

    fn read_piece(&self, digest: &Digest, index: u32) -> BoxFuture<'_, io::Result<Bytes>> {
        let map = self.maps.get(digest).cloned();
        Box::pin(async move {
            let map = map.ok_or_else(|| io::Error::other("unknown blob"))?;
            let range = map.piece_range(index);
            Ok(Bytes::from(vec![0x5a; (range.end - range.start) as usize]))
        })
    }
}

/// Serves nothing: the provider of an endpoint that only asks.
pub struct NoPieces;

impl PieceProvider for NoPieces {
    fn piece_map(&self, _: &Digest) -> Option<Arc<PieceMap>> {
        None
    }

    fn has_piece(&self, _: &Digest, _: u32) -> bool {
        false
    }

    fn read_piece(&self, _: &Digest, _: u32) -> BoxFuture<'_, io::Result<Bytes>> {
        Box::pin(async { Err(io::Error::other("nothing here")) })
    }
}

/// An endpoint on `127.0.0.1:0` holding the cluster secret `contents`
/// (the text of a secret file) that serves nothing: the client side of a
/// test. It is not yet running its accept loop.
pub fn asking_endpoint(contents: &str) -> P2pEndpoint {
    member_endpoint(contents, None)
}

/// Like [`asking_endpoint`], also delivering what peers send on their
/// `have` streams (and connection events) to the returned receiver.
pub fn listening_endpoint(contents: &str) -> (P2pEndpoint, mpsc::Receiver<PeerEvent>) {
    let (tx, rx) = mpsc::channel(1024);
    (member_endpoint(contents, Some(tx)), rx)
}

fn member_endpoint(contents: &str, events: Option<mpsc::Sender<PeerEvent>>) -> P2pEndpoint {
    crate::http::install_crypto_provider();
    let secret = ClusterSecret::from_file_contents(contents.as_bytes()).expect("secret");
    let tls = ClusterTls::new(&secret).expect("cluster tls");
    let server = PieceServer::new(Arc::new(NoPieces), 1);
    P2pEndpoint::bind(
        P2pConfig::with_listen("127.0.0.1:0".parse().unwrap()),
        &tls,
        server,
        events,
    )
    .expect("bind member endpoint")
}

/// A lying member of the swarm; see the module documentation. Stops (and
/// closes its connections) on drop.
pub struct FakePeer {
    endpoint: P2pEndpoint,
    liar: Arc<Liar>,
    tasks: Vec<JoinHandle<()>>,
}

impl FakePeer {
    /// Fetches the complete piece map of each of `blobs` (digests of `REPO`
    /// on the default upstream) from `supernode_url`, binds a QUIC endpoint
    /// on `127.0.0.1:0` with the cluster secret in `secret_file`, and starts
    /// claiming and announcing the blobs to `tracker_url`.
    pub async fn start(
        lie: Lie,
        secret_file: &Path,
        supernode_url: &str,
        tracker_url: &str,
        blobs: &[String],
    ) -> FakePeer {
        crate::http::install_crypto_provider();
        let contents = std::fs::read(secret_file).expect("read secret");
        let secret = ClusterSecret::from_file_contents(&contents).expect("secret");
        let mut maps = HashMap::new();
        let auth = Auth::member(&secret).expect("member identity");
        let supernode =
            SupernodeClient::for_auth(supernode_url, auth.clone()).expect("supernode client");
        for blob in blobs {
            let map = complete_map(&supernode, blob).await;
            maps.insert(map.digest, Arc::new(map));
        }
        let liar = Arc::new(Liar {
            lie,
            maps,
            requests: AtomicUsize::new(0),
        });
        let tls = ClusterTls::new(&secret).expect("cluster tls");
        // Uploads are free: a liar never says `Busy`.
        let server = PieceServer::new(liar.clone(), 1 << 16);
        let (tx, rx) = mpsc::channel(1024);
        let endpoint = P2pEndpoint::bind(
            P2pConfig::with_listen("127.0.0.1:0".parse().unwrap()),
            &tls,
            server,
            Some(tx),
        )
        .expect("bind fake peer");
        let tracker = TrackerClient::new(tracker_url, auth).expect("tracker");
        let ep = endpoint.clone();
        let mut tasks = vec![tokio::spawn(async move {
            ep.run(std::future::pending()).await;
        })];
        tasks.push(tokio::spawn(answer_bitfields(
            endpoint.clone(),
            liar.clone(),
            rx,
        )));
        tasks.push(tokio::spawn(announce(
            tracker,
            endpoint.local_addr().expect("addr"),
            liar.clone(),
        )));
        FakePeer {
            endpoint,
            liar,
            tasks,
        }
    }

    /// The fake's QUIC address.
    pub fn addr(&self) -> SocketAddr {
        self.endpoint.local_addr().expect("addr")
    }

    /// Piece requests received so far, from everybody.
    pub fn requests(&self) -> usize {
        self.liar.requests.load(Ordering::Relaxed)
    }
}

impl Drop for FakePeer {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        self.endpoint.close();
    }
}

/// Asks the supernode for `blob`'s piece map until it is complete (the
/// supernode fetches the blob on the first request).
pub async fn complete_map(supernode: &SupernodeClient, blob: &str) -> PieceMap {
    let digest = Digest::parse(blob).expect("digest");
    let repo = RepoName::parse(REPO).expect("repo");
    let mut view = supernode
        .piece_map(UPSTREAM_NAME, &repo, &digest, 0)
        .await
        .expect("piece map");
    while !view.complete {
        view = supernode
            .piece_map(UPSTREAM_NAME, &repo, &digest, view.pieces.len())
            .await
            .expect("piece map");
    }
    view.to_map().expect("valid map")
}

/// Answers each peer's bitfield with a full one, and repeats the claim on
/// every connection every [`REANNOUNCE`].
async fn answer_bitfields(
    endpoint: P2pEndpoint,
    liar: Arc<Liar>,
    mut events: mpsc::Receiver<PeerEvent>,
) {
    let mut told: HashSet<(SocketAddr, Digest)> = HashSet::new();
    let mut tick = tokio::time::interval(REANNOUNCE);
    loop {
        tokio::select! {
            ev = events.recv() => match ev {
                None => return,
                Some(PeerEvent::Have { peer, msg: HaveMessage::Bitfield { digest, .. } }) => {
                    if liar.maps.contains_key(&digest) && told.insert((peer, digest)) {
                        claim(&endpoint, &liar, peer, digest, false).await;
                    }
                }
                Some(PeerEvent::Disconnected { peer }) => told.retain(|(p, _)| *p != peer),
                Some(_) => {}
            },
            _ = tick.tick() => {
                for &(peer, digest) in &told {
                    claim(&endpoint, &liar, peer, digest, true).await;
                }
            }
        }
    }
}

/// Tells `peer` that the fake holds every piece of `digest` (after a
/// `Forget`, when `again`).
async fn claim(endpoint: &P2pEndpoint, liar: &Liar, peer: SocketAddr, digest: Digest, again: bool) {
    let pieces = liar.maps[&digest].piece_count();
    if again {
        let _ = endpoint
            .send_have(peer, &HaveMessage::Forget { digest })
            .await;
    }
    let bits = Bitfield::full(pieces);
    let _ = endpoint
        .send_have(peer, &HaveMessage::Bitfield { digest, bits })
        .await;
}

/// Announces every blob with a full bitfield every [`REANNOUNCE`].
async fn announce(tracker: TrackerClient, addr: SocketAddr, liar: Arc<Liar>) {
    let peer_id = 0xbad0_0000_0000_0000 | u64::from(addr.port());
    loop {
        for (digest, map) in &liar.maps {
            let req = AnnounceRequest {
                blob: *digest,
                upstream: UPSTREAM_NAME.into(),
                repo: REPO.into(),
                peer: peer_id,
                addr: addr.to_string(),
                pieces: Some(Bitfield::full(map.piece_count())),
                upload_load: 0,
                labels: Default::default(),
                seed: false,
                stopped: false,
            };
            // A tracker that is down is asked again next round.
            let _ = tracker.announce(&req).await;
        }
        tokio::time::sleep(REANNOUNCE).await;
    }
}
