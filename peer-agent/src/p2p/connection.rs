//! One authenticated connection to a peer, and the task that drives it:
//! piece requests on bidirectional streams (quinn caps how many are open)
//! go to the [`PieceServer`](super::PieceServer), the peer's `have` stream
//! to the [`PeerEvent`] channel.

use std::net::SocketAddr;
use std::sync::Arc;

use shoal_proto::wire::HaveMessage;
use tokio::sync::OwnedSemaphorePermit;
use tokio::task::JoinSet;

use super::config::P2pConfig;
use super::endpoint::{Inner, canonical};
use super::have::{self, HaveSendError, HaveSender, PeerEvent};
use super::metrics::PEERS_CONNECTED;

/// One authenticated connection to a peer.
#[derive(Debug)]
pub struct PeerConnection {
    pub(super) peer: SocketAddr,
    pub(super) conn: quinn::Connection,
    pub(super) have: tokio::sync::Mutex<HaveSender>,
    pub(super) config: Arc<P2pConfig>,
}

impl PeerConnection {
    /// The peer's address.
    pub fn remote_addr(&self) -> SocketAddr {
        self.peer
    }

    /// Whether the connection is still usable.
    pub fn is_open(&self) -> bool {
        self.conn.close_reason().is_none()
    }

    /// Sends `have` updates to the peer, in one write (see [`HaveMessage`]
    /// for the order: bitfield first on each connection).
    pub async fn send_haves(&self, msgs: &[HaveMessage]) -> Result<(), HaveSendError> {
        self.have
            .lock()
            .await
            .send(&self.conn, msgs, self.config.io_timeout)
            .await
    }

    /// The underlying quinn connection.
    #[cfg(test)]
    pub(crate) fn quinn(&self) -> &quinn::Connection {
        &self.conn
    }
}

/// Completes the handshake of an incoming connection, then drives it.
pub(super) async fn accept(
    inner: Arc<Inner>,
    incoming: quinn::Incoming,
    permit: OwnedSemaphorePermit,
) {
    let remote = incoming.remote_address();
    let conn = match tokio::time::timeout(inner.config.connect_timeout, incoming).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => {
            tracing::debug!(%remote, error = %e, "incoming handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%remote, "incoming handshake timed out");
            return;
        }
    };
    let pc = inner.wrap(conn, canonical(remote));
    inner.remember(&pc);
    drive(inner, pc, permit).await;
}

/// Serves one connection until it closes: piece requests on bidirectional
/// streams (quinn caps how many are open), the `have` stream on the
/// unidirectional one.
pub(super) async fn drive(
    inner: Arc<Inner>,
    pc: Arc<PeerConnection>,
    _permit: OwnedSemaphorePermit,
) {
    let peer = pc.peer;
    let timeout = inner.config.io_timeout;
    ::metrics::gauge!(PEERS_CONNECTED).increment(1.0);
    emit(&inner, PeerEvent::Connected { peer }).await;
    let mut tasks = JoinSet::new();
    loop {
        tokio::select! {
            bi = pc.conn.accept_bi() => {
                let Ok((send, recv)) = bi else { break };
                let inner = inner.clone();
                let conn = pc.conn.clone();
                tasks.spawn(async move {
                    inner.server.serve_stream(&conn, peer, send, recv, timeout).await;
                });
            }
            uni = pc.conn.accept_uni() => {
                let Ok(recv) = uni else { break };
                tasks.spawn(have::receive(peer, recv, inner.events.clone(), timeout));
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    drop(tasks);
    inner.forget(&pc);
    ::metrics::gauge!(PEERS_CONNECTED).decrement(1.0);
    emit(&inner, PeerEvent::Disconnected { peer }).await;
}

async fn emit(inner: &Inner, event: PeerEvent) {
    if let Some(tx) = &inner.events {
        let _ = tx.send(event).await;
    }
}
