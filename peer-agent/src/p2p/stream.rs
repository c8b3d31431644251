//! Reading frames from a QUIC stream with a size limit and a timeout, and
//! the application error codes used to reset streams and close
//! connections.

use std::time::Duration;

use bytes::Bytes;
use quinn::{RecvStream, VarInt};
use shoal_proto::{FrameDecoder, FrameError, Message};

/// Error code for streams and connections closed because the peer broke
/// the protocol (garbage, oversized or truncated frames, wrong order).
pub(crate) const PROTOCOL_ERROR: VarInt = VarInt::from_u32(1);
/// Error code for streams closed because a peer was too slow.
pub(crate) const TIMEOUT: VarInt = VarInt::from_u32(2);
/// Error code for connections closed at shutdown.
pub(crate) const SHUTDOWN: VarInt = VarInt::from_u32(0);

/// Largest chunk taken from quinn at once while reading frames.
const CHUNK: usize = 64 * 1024;

/// Why no frame could be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadFrameError {
    /// The peer sent nothing for the whole timeout.
    #[error("timed out")]
    Timeout,
    /// The bytes are not a valid frame of the expected type.
    #[error("bad frame: {0}")]
    Frame(#[from] FrameError),
    /// The stream ended before a frame began.
    #[error("stream ended")]
    Ended,
    /// The stream or connection failed.
    #[error("{0}")]
    Read(#[from] quinn::ReadError),
}

impl ReadFrameError {
    /// Whether the peer broke the protocol (as opposed to a transport
    /// failure or a timeout).
    pub(crate) fn is_protocol(&self) -> bool {
        matches!(self, ReadFrameError::Frame(_) | ReadFrameError::Ended)
    }
}

/// Reads frames of type `M` from one stream; bytes after a frame stay
/// available for the raw payload that may follow it.
pub(crate) struct FrameReader<M> {
    decoder: FrameDecoder<M>,
    pending: Bytes,
}

impl<M: Message> FrameReader<M> {
    /// A reader at the start of a stream.
    pub(crate) fn new() -> Self {
        FrameReader {
            decoder: FrameDecoder::new(),
            pending: Bytes::new(),
        }
    }

    /// The next frame, or `Ok(None)` if the stream ended cleanly between
    /// frames. Each read from the network must complete within `timeout`,
    /// except while waiting for a new frame to begin when `wait_idle` is
    /// set (long-lived streams are quiet most of the time).
    pub(crate) async fn next(
        &mut self,
        recv: &mut RecvStream,
        timeout: Duration,
        wait_idle: bool,
    ) -> Result<Option<M>, ReadFrameError> {
        loop {
            if let Some(msg) = self.decoder.decode(&mut self.pending)? {
                return Ok(Some(msg));
            }
            let read = recv.read_chunk(CHUNK, true);
            let chunk = if wait_idle && self.decoder.is_idle() {
                read.await?
            } else {
                tokio::time::timeout(timeout, read)
                    .await
                    .map_err(|_| ReadFrameError::Timeout)??
            };
            match chunk {
                Some(c) => self.pending = c.bytes,
                None => {
                    self.decoder.finish()?;
                    return Ok(None);
                }
            }
        }
    }

    /// Like [`next`](Self::next) without waiting idle, and an end of stream
    /// is an error: for streams that must carry exactly one header.
    pub(crate) async fn header(
        &mut self,
        recv: &mut RecvStream,
        timeout: Duration,
    ) -> Result<M, ReadFrameError> {
        self.next(recv, timeout, false)
            .await?
            .ok_or(ReadFrameError::Ended)
    }

    /// Checks that the stream ends right after the last frame (the peer
    /// finished its side): anything more breaks the protocol.
    pub(crate) async fn expect_end(
        &mut self,
        recv: &mut RecvStream,
        timeout: Duration,
    ) -> Result<(), ReadFrameError> {
        let extra = if self.pending.is_empty() {
            tokio::time::timeout(timeout, recv.read_chunk(CHUNK, true))
                .await
                .map_err(|_| ReadFrameError::Timeout)??
                .map_or(0, |c| c.bytes.len())
        } else {
            self.pending.len()
        };
        if extra > 0 {
            return Err(FrameError::TrailingBytes { extra }.into());
        }
        Ok(())
    }

    /// Bytes received after the last frame, not yet consumed.
    pub(crate) fn into_leftover(self) -> Bytes {
        self.pending
    }
}

/// Reads the end of a stream whose answer has been read in full, if the
/// peer's FIN is already here, and returns how many bytes came after the
/// answer (a peer that sends any breaks the protocol). Never waits: with
/// the FIN not yet here, nothing is read.
///
/// quinn sends STOP_SENDING for every receive stream dropped before its end
/// was read, even one whose FIN has arrived; on a piece request that frame
/// costs a datagram, and the peer's acknowledgement another.
pub(crate) fn read_end(recv: &mut RecvStream) -> Result<usize, quinn::ReadError> {
    use futures_util::FutureExt;
    match recv.read_chunk(usize::MAX, true).now_or_never() {
        Some(Ok(Some(extra))) => Ok(extra.bytes.len()),
        Some(Ok(None)) | None => Ok(0),
        Some(Err(e)) => Err(e),
    }
}
