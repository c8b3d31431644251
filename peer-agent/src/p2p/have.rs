//! The `have` stream of a connection: our updates out, the peer's in.
//!
//! Each side opens one unidirectional stream, on first use, and writes
//! [`HaveMessage`] frames in the order [`HaveSequence`] enforces: per blob
//! the full bitfield first, then single indices. A new connection starts
//! with no blob announced, which is why [`PeerEvent::Connected`] exists:
//! on it the agent sends its bitfields to the new peer.

use std::net::SocketAddr;
use std::time::Duration;

use quinn::{Connection, RecvStream, SendStream};
use shoal_proto::encode_frame;
use shoal_proto::wire::{HaveError, HaveMessage, HaveSequence};
use tokio::sync::mpsc;

use super::endpoint::ConnectError;
use super::stream::{FrameReader, PROTOCOL_ERROR};

/// What happened on the peer connections, for the agent's swarm driver.
///
/// Delivered on the bounded channel given to
/// [`P2pEndpoint::bind`](super::P2pEndpoint::bind); a consumer that falls
/// behind slows down the connection that produces the events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerEvent {
    /// An authenticated connection with `peer` is up (dialled or accepted).
    Connected {
        /// The peer's address.
        peer: SocketAddr,
    },
    /// `peer` sent an update on its `have` stream (already order-checked).
    Have {
        /// The peer's address.
        peer: SocketAddr,
        /// The update.
        msg: HaveMessage,
    },
    /// The connection with `peer` closed.
    Disconnected {
        /// The peer's address.
        peer: SocketAddr,
    },
}

/// Why a `have` update was not sent.
#[derive(Debug, thiserror::Error)]
pub enum HaveSendError {
    /// The update is out of order for this connection (for instance an
    /// index before the blob's bitfield); nothing was sent.
    #[error("out of order on this connection: {0}")]
    Order(#[from] HaveError),
    /// No connection to the peer.
    #[error("cannot connect: {0}")]
    Connect(#[from] ConnectError),
    /// The stream failed or stalled; the next update starts a new stream
    /// that needs bitfields first again.
    #[error("have stream failed: {0}")]
    Transport(String),
}

/// Our side of the `have` stream of one connection.
#[derive(Debug, Default)]
pub(crate) struct HaveSender {
    stream: Option<SendStream>,
    seq: HaveSequence,
}

impl HaveSender {
    /// Checks `msgs` against the order, then writes them in one go (one
    /// QUIC packet for a few updates, not one each), opening the stream
    /// first if needed. Nothing is sent if any of them is out of order.
    pub(crate) async fn send(
        &mut self,
        conn: &Connection,
        msgs: &[HaveMessage],
        timeout: Duration,
    ) -> Result<(), HaveSendError> {
        let mut frame = Vec::new();
        let mut seq = self.seq.clone();
        for msg in msgs {
            encode_frame(msg, &mut frame).map_err(|e| HaveSendError::Transport(e.to_string()))?;
            seq.check(msg)?;
        }
        // A failed write below drops the stream and this order state with it.
        self.seq = seq;
        let result = async {
            if self.stream.is_none() {
                let s = tokio::time::timeout(timeout, conn.open_uni())
                    .await
                    .map_err(|_| "timed out opening the stream".to_string())?
                    .map_err(|e| e.to_string())?;
                self.stream = Some(s);
            }
            let stream = self.stream.as_mut().expect("just opened");
            tokio::time::timeout(timeout, stream.write_all(&frame))
                .await
                .map_err(|_| "write timed out".to_string())?
                .map_err(|e| e.to_string())
        }
        .await;
        match result {
            Ok(()) => Ok(()),
            Err(reason) => {
                if let Some(mut s) = self.stream.take() {
                    let _ = s.reset(PROTOCOL_ERROR);
                }
                self.seq = HaveSequence::default();
                Err(HaveSendError::Transport(reason))
            }
        }
    }
}

/// Reads the peer's `have` stream to its end, checking the order and
/// forwarding each update. A violation stops the stream (not the
/// connection). Without a consumer, updates are checked and dropped.
pub(crate) async fn receive(
    peer: SocketAddr,
    mut recv: RecvStream,
    events: Option<mpsc::Sender<PeerEvent>>,
    timeout: Duration,
) {
    let mut reader = FrameReader::<HaveMessage>::new();
    let mut seq = HaveSequence::default();
    loop {
        let msg = match reader.next(&mut recv, timeout, true).await {
            Ok(Some(msg)) => msg,
            Ok(None) => return,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "dropping have stream");
                let _ = recv.stop(PROTOCOL_ERROR);
                return;
            }
        };
        if let Err(e) = seq.check(&msg) {
            tracing::debug!(%peer, error = %e, "peer broke the have order");
            let _ = recv.stop(PROTOCOL_ERROR);
            return;
        }
        if let Some(tx) = &events
            && tx.send(PeerEvent::Have { peer, msg }).await.is_err()
        {
            return;
        }
    }
}
