//! Answering piece requests from other peers.
//!
//! One request per bidirectional stream: read the [`PieceRequest`] header
//! (size-limited, with a timeout), look the piece up in the
//! [`PieceProvider`], answer with a [`PieceResponse`] header and, for `Ok`,
//! the raw piece bytes, paced by the optional [`RateLimiter`]. A bad
//! header resets that stream only. Past the cap on concurrent uploads the
//! answer is `Busy`, without reading the piece. A [`ServeGate`] (the
//! supernode's seeding policy) may refuse a held piece with `Redirect` or
//! `Busy`; every request it admits is reported back to it when it ends.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use quinn::{RecvStream, SendStream};
use shoal_proto::wire::{ErrorCode, PieceRequest, PieceResponse};
use shoal_proto::{Digest, PieceMap, encode_frame};
use tokio::sync::{Semaphore, SemaphorePermit};

use super::limit::RateLimiter;
use super::metrics::{BYTES_SENT, REQUESTS_REFUSED};
use super::stream::{FrameReader, PROTOCOL_ERROR, ReadFrameError, TIMEOUT};

/// An upload that takes longer than this (from its stream's arrival to
/// its last byte handed to the connection) is logged at debug level with
/// the connection's path statistics.
const SLOW_UPLOAD: Duration = Duration::from_secs(2);

/// Bytes of a piece written (and reserved from the rate limiter) at once.
const SLICE: usize = 128 * 1024;

/// Where the server finds pieces: the agent's task store, the supernode's
/// content store. Implementations only report and return pieces that were
/// verified against the map; the server does not hash them again.
pub trait PieceProvider: Send + Sync + 'static {
    /// The piece map of `digest`, if this node knows the blob.
    fn piece_map(&self, digest: &Digest) -> Option<Arc<PieceMap>>;
    /// Whether piece `index` of `digest` is held and verified.
    fn has_piece(&self, digest: &Digest, index: u32) -> bool;
    /// The bytes of a held piece.
    fn read_piece(&self, digest: &Digest, index: u32) -> BoxFuture<'_, io::Result<Bytes>>;
}

/// Which held pieces a peer may have now: the part of serving that
/// differs between an ordinary agent (no gate: every held piece, to
/// anyone) and a seed (the supernode's seeding policy).
pub trait ServeGate: Send + Sync + 'static {
    /// Whether `peer` may have piece `index` of the blob of `map` (whose
    /// hashes are those of the pieces the server holds, in order). Called
    /// once the piece is known to be held and an upload slot is free;
    /// `Err` is the refusal to send.
    fn admit(&self, peer: SocketAddr, map: &PieceMap, index: u32) -> Result<(), PieceResponse>;
    /// A request [`ServeGate::admit`] allowed has ended: `delivered` if
    /// every byte was handed to the connection.
    fn end(&self, peer: SocketAddr, digest: &Digest, index: u32, delivered: bool);
}

/// An admitted request; tells the gate how it ended when dropped.
struct Admitted<'a> {
    gate: &'a dyn ServeGate,
    peer: SocketAddr,
    digest: Digest,
    index: u32,
    delivered: bool,
}

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        self.gate
            .end(self.peer, &self.digest, self.index, self.delivered);
    }
}

/// Serves pieces from a [`PieceProvider`] on every peer connection.
pub struct PieceServer {
    provider: Arc<dyn PieceProvider>,
    gate: Option<Arc<dyn ServeGate>>,
    uploads: Semaphore,
    max_uploads: usize,
    limiter: Option<Arc<RateLimiter>>,
}

impl std::fmt::Debug for PieceServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PieceServer")
            .field("max_uploads", &self.max_uploads)
            .field("active_uploads", &self.active_uploads())
            .field("limiter", &self.limiter)
            .field("gate", &self.gate.is_some())
            .finish_non_exhaustive()
    }
}

/// What to send back for one request.
enum Answer<'a> {
    /// The piece, with the upload slot it holds until it is sent and the
    /// gate's admission, if there is a gate.
    Piece(Bytes, SemaphorePermit<'a>, Option<Admitted<'a>>),
    Refuse(PieceResponse),
}

impl PieceServer {
    /// A server of `provider`'s pieces with at most `max_uploads` pieces
    /// being sent at once (further requests get `Busy`).
    pub fn new(provider: Arc<dyn PieceProvider>, max_uploads: usize) -> Self {
        PieceServer {
            provider,
            gate: None,
            uploads: Semaphore::new(max_uploads),
            max_uploads,
            limiter: None,
        }
    }

    /// Paces every upload of this server through `limiter`.
    pub fn with_rate_limit(mut self, limiter: Arc<RateLimiter>) -> Self {
        self.limiter = Some(limiter);
        self
    }

    /// Asks `gate` before serving any piece.
    pub fn with_gate(mut self, gate: Arc<dyn ServeGate>) -> Self {
        self.gate = Some(gate);
        self
    }

    /// Uploads in progress now.
    pub fn active_uploads(&self) -> usize {
        self.max_uploads - self.uploads.available_permits()
    }

    /// Handles one request stream from `peer` (on `conn`) to its end.
    pub(crate) async fn serve_stream(
        &self,
        conn: &quinn::Connection,
        peer: SocketAddr,
        mut send: SendStream,
        mut recv: RecvStream,
        timeout: Duration,
    ) {
        let started = std::time::Instant::now();
        let mut reader = FrameReader::<PieceRequest>::new();
        let read = async {
            let request = reader.header(&mut recv, timeout).await?;
            reader.expect_end(&mut recv, timeout).await?;
            Ok::<_, ReadFrameError>(request)
        };
        let request = match read.await {
            Ok(r) => r,
            Err(e) => {
                let (code, reason) = match e {
                    _ if e.is_protocol() => (PROTOCOL_ERROR, "bad_request"),
                    ReadFrameError::Timeout => (TIMEOUT, "timeout"),
                    // Reset by the requester (a request it gave up, such
                    // as an end-game copy that lost the race) or a lost
                    // connection.
                    _ => (TIMEOUT, "cancelled"),
                };
                ::metrics::counter!(REQUESTS_REFUSED, "reason" => reason).increment(1);
                tracing::debug!(%peer, error = %e, "dropping piece request stream");
                let _ = recv.stop(code);
                let _ = send.reset(code);
                return;
            }
        };
        let request_read = started.elapsed();
        let result = match self.answer(peer, &request).await {
            Answer::Refuse(resp) => {
                let reason = match resp {
                    PieceResponse::NotHave => "not_have",
                    PieceResponse::Busy => "busy",
                    PieceResponse::Redirect { .. } => "redirect",
                    PieceResponse::Error(ErrorCode::NoSuchPiece) => "no_such_piece",
                    PieceResponse::Error(_) | PieceResponse::Ok { .. } => "internal",
                };
                ::metrics::counter!(REQUESTS_REFUSED, "reason" => reason).increment(1);
                write_header(&mut send, &resp, timeout).await
            }
            Answer::Piece(bytes, _slot, mut admitted) => {
                let sent = self.send_piece(&mut send, bytes, timeout).await;
                if let Some(a) = &mut admitted {
                    a.delivered = sent.is_ok();
                }
                sent
            }
        };
        let took = started.elapsed();
        if took > SLOW_UPLOAD {
            let st = conn.stats();
            tracing::debug!(%peer, digest = %request.digest, index = request.index,
                ?request_read, ?took, ok = result.is_ok(), rtt = ?st.path.rtt, cwnd = st.path.cwnd,
                lost = st.path.lost_packets, congestion_events = st.path.congestion_events,
                sent = st.path.sent_packets, udp_tx = st.udp_tx.datagrams,
                udp_rx = st.udp_rx.datagrams, "slow upload");
        }
        match result {
            Ok(()) => {
                let _ = send.finish();
            }
            Err(e) => {
                tracing::debug!(%peer, digest = %request.digest, index = request.index, error = %e, "upload failed");
                let _ = send.reset(TIMEOUT);
            }
        }
    }

    /// Decides the answer; holds an upload slot while reading the piece.
    async fn answer(&self, peer: SocketAddr, req: &PieceRequest) -> Answer<'_> {
        let Some(map) = self.provider.piece_map(&req.digest) else {
            return Answer::Refuse(PieceResponse::NotHave);
        };
        if req.index >= map.piece_count() {
            return Answer::Refuse(PieceResponse::Error(ErrorCode::NoSuchPiece));
        }
        if !self.provider.has_piece(&req.digest, req.index) {
            return Answer::Refuse(PieceResponse::NotHave);
        }
        let Ok(slot) = self.uploads.try_acquire() else {
            return Answer::Refuse(PieceResponse::Busy);
        };
        let admitted = match &self.gate {
            Some(gate) => match gate.admit(peer, &map, req.index) {
                Ok(()) => Some(Admitted {
                    gate: gate.as_ref(),
                    peer,
                    digest: req.digest,
                    index: req.index,
                    delivered: false,
                }),
                Err(refusal) => return Answer::Refuse(refusal),
            },
            None => None,
        };
        let range = map.piece_range(req.index);
        match self.provider.read_piece(&req.digest, req.index).await {
            Ok(bytes) if bytes.len() as u64 == range.end - range.start => {
                Answer::Piece(bytes, slot, admitted)
            }
            Ok(bytes) => {
                tracing::error!(digest = %req.digest, index = req.index, len = bytes.len(), expected = range.end - range.start, "piece provider returned a piece of the wrong length");
                Answer::Refuse(PieceResponse::Error(ErrorCode::Internal))
            }
            Err(e) => {
                tracing::warn!(digest = %req.digest, index = req.index, error = %e, "cannot read piece");
                Answer::Refuse(PieceResponse::Error(ErrorCode::Internal))
            }
        }
    }

    /// Writes `Ok { len }` and the piece, paced by the limiter. The piece
    /// goes out in slices (views of the same buffer, no copy), each of
    /// which must be accepted within the timeout: a slow but moving peer
    /// is served, a stalled one is dropped.
    async fn send_piece(
        &self,
        send: &mut SendStream,
        mut bytes: Bytes,
        timeout: Duration,
    ) -> Result<(), UploadError> {
        let resp = PieceResponse::Ok {
            len: bytes.len() as u32,
        };
        // The header goes out with the first slice, in the same packet,
        // rather than alone while the first slice waits for the limiter.
        let mut header = Some(header_bytes(&resp));
        while !bytes.is_empty() {
            let slice = bytes.split_to(bytes.len().min(SLICE));
            if let Some(limiter) = &self.limiter {
                limiter.acquire(slice.len() as u64).await;
            }
            write_chunks(send, header.take(), slice, timeout).await?;
        }
        if let Some(header) = header {
            with_timeout(timeout, send.write_chunk(header)).await?;
        }
        Ok(())
    }
}

/// Why an answer could not be sent.
#[derive(Debug, thiserror::Error)]
enum UploadError {
    #[error("write timed out")]
    Timeout,
    #[error("{0}")]
    Write(#[from] quinn::WriteError),
}

fn header_bytes(resp: &PieceResponse) -> Bytes {
    let mut buf = Vec::with_capacity(16);
    encode_frame(resp, &mut buf).expect("a response header always fits");
    buf.into()
}

async fn write_header(
    send: &mut SendStream,
    resp: &PieceResponse,
    timeout: Duration,
) -> Result<(), UploadError> {
    with_timeout(timeout, send.write_chunk(header_bytes(resp))).await
}

/// Writes `header` (if any) and then the piece bytes `data`, in one write.
async fn write_chunks(
    send: &mut SendStream,
    header: Option<Bytes>,
    data: Bytes,
    timeout: Duration,
) -> Result<(), UploadError> {
    let len = data.len() as u64;
    match header {
        Some(header) => with_timeout(timeout, send.write_all_chunks(&mut [header, data])).await?,
        None => with_timeout(timeout, send.write_chunk(data)).await?,
    }
    ::metrics::counter!(BYTES_SENT).increment(len);
    Ok(())
}

async fn with_timeout(
    timeout: Duration,
    fut: impl Future<Output = Result<(), quinn::WriteError>>,
) -> Result<(), UploadError> {
    tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| UploadError::Timeout)?
        .map_err(UploadError::Write)
}
