//! The QUIC endpoint: one UDP socket that listens and dials, and a cache
//! of one authenticated connection per peer.
//!
//! Every connection, dialled or accepted, gets a driver task that serves
//! the peer's piece requests with the [`PieceServer`] and reads its `have`
//! stream, so a connection carries traffic both ways. The cache is keyed
//! by the peer's socket address; since a peer dials from the socket it
//! listens on, an accepted connection is found again when we want to fetch
//! from that peer. A closed connection leaves the cache and the next use
//! dials again. A semaphore bounds the connections open at once.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use shoal_proto::PieceMap;
use shoal_proto::wire::HaveMessage;
use tokio::sync::{Semaphore, mpsc};

use super::client::{FetchError, VerifiedPiece, request_piece};
use super::config::P2pConfig;
use super::connection::{PeerConnection, accept, drive};
use super::have::{HaveSendError, PeerEvent};
use super::server::PieceServer;
use super::socket::udp_socket;
use super::stream::SHUTDOWN;
use super::tls::{ClusterTls, SERVER_NAME, TlsSetupError, setup_err};

/// Why the endpoint could not be created.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// The TLS configuration could not be built.
    #[error(transparent)]
    Tls(#[from] TlsSetupError),
    /// The UDP socket could not be bound.
    #[error("cannot bind UDP {addr}: {source}")]
    Socket {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
    /// A transport setting is out of range.
    #[error("invalid QUIC setting: {0}")]
    Config(String),
}

/// Why no connection to a peer could be had.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The cap on open connections is reached.
    #[error("too many open connections")]
    TooManyConnections,
    /// Dialling or the handshake took longer than the connect timeout.
    #[error("connect timed out")]
    Timeout,
    /// quinn refused to start the connection (endpoint closed, bad address).
    #[error("{0}")]
    Start(#[from] quinn::ConnectError),
    /// The handshake failed: unreachable, or the peer is not a member of
    /// this cluster (or we are not a member of its cluster).
    #[error("handshake failed: {0}")]
    Handshake(#[from] quinn::ConnectionError),
}

pub(super) type Slot = tokio::sync::Mutex<Option<Arc<PeerConnection>>>;

pub(super) struct Inner {
    pub(super) endpoint: quinn::Endpoint,
    pub(super) client: quinn::ClientConfig,
    pub(super) config: Arc<P2pConfig>,
    pub(super) server: PieceServer,
    pub(super) events: Option<mpsc::Sender<PeerEvent>>,
    pub(super) peers: Mutex<HashMap<SocketAddr, Arc<Slot>>>,
    pub(super) permits: Arc<Semaphore>,
}

/// Shoal's QUIC endpoint: serves pieces, fetches pieces, carries `have`
/// updates. Cheap to clone; clones share the socket and the connections.
#[derive(Clone)]
pub struct P2pEndpoint {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for P2pEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("P2pEndpoint")
            .field("local_addr", &self.local_addr().ok())
            .finish_non_exhaustive()
    }
}

/// The address as the cache keys it: IPv4-mapped IPv6 as plain IPv4.
pub(super) fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

impl P2pEndpoint {
    /// Binds the UDP socket and sets up TLS. Must be called within a tokio
    /// runtime. Incoming connections are accepted once [`run`](Self::run)
    /// is running; `events`, if given, receives [`PeerEvent`]s.
    pub fn bind(
        config: P2pConfig,
        tls: &ClusterTls,
        server: PieceServer,
        events: Option<mpsc::Sender<PeerEvent>>,
    ) -> Result<Self, BindError> {
        let transport = config.transport();
        let server_crypto = QuicServerConfig::try_from(tls.server_config()?)
            .map_err(|e| BindError::Tls(setup_err(e)))?;
        let mut server_config = quinn::ServerConfig::with_crypto(Arc::new(server_crypto));
        server_config.transport_config(transport.clone());
        let client_crypto = QuicClientConfig::try_from(tls.client_config()?)
            .map_err(|e| BindError::Tls(setup_err(e)))?;
        let mut client = quinn::ClientConfig::new(Arc::new(client_crypto));
        client.transport_config(transport);
        // What peers may send us; with the transport's MTU discovery
        // bound, packets grow to what the path carries.
        let mut ep_config = quinn::EndpointConfig::default();
        ep_config
            .max_udp_payload_size(config.max_udp_payload)
            .map_err(|e| {
                BindError::Config(format!("max UDP payload {}: {e}", config.max_udp_payload))
            })?;
        let socket_err = |source| BindError::Socket {
            addr: config.listen,
            source,
        };
        let socket = udp_socket(config.listen, config.max_udp_payload).map_err(socket_err)?;
        let endpoint = quinn::Endpoint::new_with_abstract_socket(
            ep_config,
            Some(server_config),
            socket,
            Arc::new(quinn::TokioRuntime),
        )
        .map_err(socket_err)?;
        let permits = Arc::new(Semaphore::new(config.max_connections));
        Ok(P2pEndpoint {
            inner: Arc::new(Inner {
                endpoint,
                client,
                config: Arc::new(config),
                server,
                events,
                peers: Mutex::new(HashMap::new()),
                permits,
            }),
        })
    }

    /// The bound UDP address (with the real port when bound to port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.endpoint.local_addr()
    }

    /// The piece server answering this endpoint's peers.
    pub fn server(&self) -> &PieceServer {
        &self.inner.server
    }

    /// Accepts incoming connections until `shutdown` completes, then closes
    /// every connection and waits (briefly) for the peers to acknowledge.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let incoming = tokio::select! {
                () = &mut shutdown => break,
                incoming = self.inner.endpoint.accept() => match incoming {
                    Some(i) => i,
                    None => break,
                },
            };
            // Under load, make unvalidated senders prove their address
            // first (one extra round trip), so spoofed handshakes cannot
            // hold connection slots.
            let max = self.inner.config.max_connections;
            if self.inner.permits.available_permits() < max / 2
                && !incoming.remote_address_validated()
                && incoming.may_retry()
            {
                let _ = incoming.retry();
                continue;
            }
            let Ok(permit) = self.inner.permits.clone().try_acquire_owned() else {
                tracing::debug!(remote = %incoming.remote_address(), "refusing connection: too many open");
                incoming.refuse();
                continue;
            };
            tokio::spawn(accept(self.inner.clone(), incoming, permit));
        }
        self.close();
        let _ = tokio::time::timeout(
            self.inner.config.io_timeout,
            self.inner.endpoint.wait_idle(),
        )
        .await;
    }

    /// Closes every connection and stops accepting new ones.
    pub fn close(&self) {
        self.inner.endpoint.close(SHUTDOWN, b"shutdown");
    }

    /// The cached connection to `peer`, or a new one.
    pub async fn connect(&self, peer: SocketAddr) -> Result<Arc<PeerConnection>, ConnectError> {
        self.connect_inner(canonical(peer)).await.map(|(c, _)| c)
    }

    /// Like `connect`; also tells whether the connection came from the cache.
    async fn connect_inner(
        &self,
        peer: SocketAddr,
    ) -> Result<(Arc<PeerConnection>, bool), ConnectError> {
        let inner = &self.inner;
        let timeout = inner.config.connect_timeout;
        let slot = inner.slot(peer);
        let mut cached = tokio::time::timeout(timeout, slot.lock())
            .await
            .map_err(|_| ConnectError::Timeout)?;
        if let Some(c) = cached.as_ref().filter(|c| c.is_open()) {
            return Ok((c.clone(), true));
        }
        let permit = inner
            .permits
            .clone()
            .try_acquire_owned()
            .map_err(|_| ConnectError::TooManyConnections)?;
        let connecting = inner
            .endpoint
            .connect_with(inner.client.clone(), peer, SERVER_NAME)?;
        let conn = tokio::time::timeout(timeout, connecting)
            .await
            .map_err(|_| ConnectError::Timeout)??;
        let pc = inner.wrap(conn, peer);
        *cached = Some(pc.clone());
        drop(cached);
        tokio::spawn(drive(inner.clone(), pc.clone(), permit));
        Ok((pc, false))
    }

    /// Fetches piece `index` of `map` from `peer` and verifies it.
    ///
    /// A cached connection found dead is replaced once; every other
    /// failure is returned as is, naming the peer.
    pub async fn fetch_piece(
        &self,
        peer: SocketAddr,
        map: &PieceMap,
        index: u32,
    ) -> Result<VerifiedPiece, FetchError> {
        let count = map.piece_count();
        if index >= count {
            return Err(FetchError::NoSuchPiece { index, count });
        }
        let peer = canonical(peer);
        let timeout = self.inner.config.io_timeout;
        let connect_err = |source| FetchError::Connect { peer, source };
        let (pc, reused) = self.connect_inner(peer).await.map_err(connect_err)?;
        let first = request_piece(&pc.conn, peer, map, index, timeout).await;
        if let Err(FetchError::Timeout { .. }) = &first {
            let st = pc.conn.stats();
            tracing::debug!(
                %peer,
                rtt = ?pc.conn.rtt(),
                cwnd = st.path.cwnd,
                mtu = st.path.current_mtu,
                lost = st.path.lost_packets,
                congestion_events = st.path.congestion_events,
                sent = st.path.sent_packets,
                udp_tx = st.udp_tx.datagrams,
                udp_rx = st.udp_rx.datagrams,
                "piece request timed out"
            );
        }
        match first {
            Err(FetchError::Transport { .. } | FetchError::Timeout { .. })
                if reused && !pc.is_open() =>
            {
                self.inner.forget(&pc);
                let (pc, _) = self.connect_inner(peer).await.map_err(connect_err)?;
                request_piece(&pc.conn, peer, map, index, timeout).await
            }
            result => result,
        }
    }

    /// Sends a `have` update to `peer`, connecting if needed.
    pub async fn send_have(
        &self,
        peer: SocketAddr,
        msg: &HaveMessage,
    ) -> Result<(), HaveSendError> {
        self.send_haves(peer, std::slice::from_ref(msg)).await
    }

    /// Sends `have` updates to `peer` in one write, connecting if needed.
    pub async fn send_haves(
        &self,
        peer: SocketAddr,
        msgs: &[HaveMessage],
    ) -> Result<(), HaveSendError> {
        self.connect(peer).await?.send_haves(msgs).await
    }

    /// Peers with an open cached connection.
    pub fn connected_peers(&self) -> Vec<SocketAddr> {
        let peers = self.inner.peers.lock().expect("peer cache poisoned");
        peers
            .iter()
            .filter(|(_, slot)| {
                slot.try_lock()
                    .is_ok_and(|c| c.as_ref().is_some_and(|c| c.is_open()))
            })
            .map(|(addr, _)| *addr)
            .collect()
    }
}

impl Inner {
    pub(super) fn slot(&self, peer: SocketAddr) -> Arc<Slot> {
        let mut peers = self.peers.lock().expect("peer cache poisoned");
        peers.entry(peer).or_default().clone()
    }

    pub(super) fn wrap(&self, conn: quinn::Connection, peer: SocketAddr) -> Arc<PeerConnection> {
        Arc::new(PeerConnection {
            peer,
            conn,
            have: Default::default(),
            config: self.config.clone(),
        })
    }

    /// Caches an accepted connection unless a usable one is there or a
    /// dial to the same peer is in progress.
    pub(super) fn remember(&self, pc: &Arc<PeerConnection>) {
        let slot = self.slot(pc.peer);
        if let Ok(mut cached) = slot.try_lock()
            && !cached.as_ref().is_some_and(|c| c.is_open())
        {
            *cached = Some(pc.clone());
        }
    }

    /// Drops `pc` from the cache if it is the cached connection.
    pub(super) fn forget(&self, pc: &PeerConnection) {
        let mut peers = self.peers.lock().expect("peer cache poisoned");
        let Some(slot) = peers.get(&pc.peer) else {
            return;
        };
        let Ok(mut cached) = slot.try_lock() else {
            return;
        };
        if cached
            .as_ref()
            .is_some_and(|c| c.conn.stable_id() == pc.conn.stable_id())
        {
            *cached = None;
            drop(cached);
            peers.remove(&pc.peer);
        }
    }
}
