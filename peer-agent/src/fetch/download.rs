//! A sequential download: opens its source, resumes a broken stream from
//! the offset reached, and verifies the blob before it enters the store.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures_util::stream::{BoxStream, Fuse};
use futures_util::{FutureExt, StreamExt};
use shoal_proto::{Digest, Hasher, PieceHasher, piece_size_for};
use tokio::sync::watch;

use super::writer::{BlobHasher, WRITE_BATCH, Writer};
use super::{BlobSource, FetchError, Fetcher, Forget, PieceProgress, State, io_err};
use crate::blob_file::BlobFile;
use crate::registry::RegistryError;

pub(super) struct Download<S> {
    pub(super) fetcher: Fetcher,
    pub(super) digest: Digest,
    pub(super) source: S,
    pub(super) tx: watch::Sender<State>,
    pub(super) pieces: Option<Arc<PieceProgress>>,
}

impl<S: BlobSource> Download<S> {
    pub(super) async fn run(self) {
        // Forget the job however it ends (even by panic), so that a later
        // request starts afresh instead of waiting on a dead job.
        let _forget = Forget::new(&self.fetcher, self.digest, &self.tx);
        let state = match self.transfer().await {
            Ok(_) => State::Done,
            Err(e) => {
                tracing::warn!(digest = %self.digest, error = %e, "download failed");
                State::Failed(e)
            }
        };
        // Publish the outcome before the job is forgotten, so a new request
        // finds the blob stored, or a failure it does not join.
        self.tx.send_replace(state);
    }

    async fn transfer(&self) -> Result<u64, FetchError> {
        let label = self.source.label();
        let body = self.source.open(0).await?;
        let size = body.total_size;
        // Refused before any reader sees a size: a client gets a clear
        // error instead of a body cut short by a full disk.
        self.fetcher.store.make_room_for(size).await?;
        let mut stream = body.stream.fuse();
        let mut pending = None;
        let tmp = Arc::new(self.fetcher.store.temp_path(&self.digest.hex()));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&*tmp)
            .map_err(|e| io_err(&tmp, e))?;
        self.tx.send_replace(State::Running {
            size,
            written: 0,
            tmp: tmp.clone(),
        });
        let hasher = match &self.pieces {
            Some(progress) => {
                let piece_size = piece_size_for(size);
                // Pieces are read with `pread`, which leaves the offset
                // the writer appends at alone.
                progress.set_file(Arc::new(BlobFile::buffered(
                    file.try_clone().map_err(|e| io_err(&tmp, e))?,
                )));
                *progress.layout.lock().expect("lock") = Some((size, piece_size));
                BlobHasher::Pieces(Box::new(PieceHasher::new(piece_size)), progress.clone())
            }
            None => BlobHasher::Whole(Hasher::new()),
        };
        let writer = Writer::start(file, hasher, tmp.clone(), self.tx.clone());
        let mut received = 0u64;
        let mut resumes = 0;
        let mut outcome = loop {
            let batch = match next_batch(&mut stream, &mut pending).await {
                Ok(Some(b)) => b,
                Ok(None) => break Ok(()),
                Err(e) => {
                    if resumes >= self.fetcher.resume_attempts || received >= size {
                        break Err(FetchError::Source(e));
                    }
                    resumes += 1;
                    tracing::info!(digest = %self.digest, offset = received, error = %e, "source stream broke; resuming");
                    match self.source.open(received).await {
                        Ok(b) if b.total_size == size => {
                            stream = b.stream.fuse();
                            continue;
                        }
                        Ok(b) => {
                            break Err(FetchError::SizeMismatch {
                                source_label: label,
                                got: b.total_size,
                                expected: size,
                            });
                        }
                        Err(e) => break Err(FetchError::Source(e)),
                    }
                }
            };
            if received + batch.len() as u64 > size {
                break Err(FetchError::SizeMismatch {
                    source_label: label,
                    got: received + batch.len() as u64,
                    expected: size,
                });
            }
            let n = batch.len() as u64;
            if !writer.send(batch).await {
                // The writer stopped on an error, which `finish` returns.
                break Ok(());
            }
            received += n;
            metrics::counter!("shoal_fetch_bytes_total", "source" => label).increment(n);
        };
        let (file, hasher, written, write_result) = writer.finish().await?;
        if outcome.is_ok() {
            outcome = write_result;
        }
        let mut piece_map = None;
        let result = outcome.and_then(|()| {
            if written != size {
                return Err(FetchError::SizeMismatch {
                    source_label: label,
                    got: written,
                    expected: size,
                });
            }
            let (actual, map) = hasher.finish();
            piece_map = map;
            if actual != self.digest {
                return Err(FetchError::DigestMismatch {
                    source_label: label,
                    expected: self.digest,
                    actual,
                });
            }
            Ok(())
        });
        drop(file);
        match result {
            Ok(()) => {
                if let Some(map) = &piece_map {
                    // The map goes first: a visible blob always has its map.
                    self.fetcher
                        .store
                        .put_piece_map(map)
                        .await
                        .map_err(|e| FetchError::Io(format!("storing piece map: {e}")))?;
                }
                self.fetcher
                    .store
                    .commit_blob(&tmp, &self.digest)
                    .await
                    .map_err(|e| io_err(&tmp, e))?;
                self.fetcher.note_written_directly(&self.digest, false);
                tracing::info!(digest = %self.digest, size, source = label, "blob verified and stored");
                Ok(size)
            }
            Err(e) => {
                let _ = tokio::fs::remove_file(&*tmp).await;
                Err(e)
            }
        }
    }
}

/// The next chunk plus whatever else the stream has ready right now, up to
/// [`WRITE_BATCH`]: big writes when data flows fast, no delay when it trickles.
/// An error that arrives after part of a batch is kept in `pending` and
/// returned by the next call, once the bytes before it are written.
async fn next_batch(
    stream: &mut Fuse<BoxStream<'static, Result<Bytes, RegistryError>>>,
    pending: &mut Option<RegistryError>,
) -> Result<Option<Bytes>, RegistryError> {
    if let Some(e) = pending.take() {
        return Err(e);
    }
    let Some(first) = stream.next().await.transpose()? else {
        return Ok(None);
    };
    if first.len() >= WRITE_BATCH {
        return Ok(Some(first));
    }
    let mut buf = BytesMut::from(&first[..]);
    while buf.len() < WRITE_BATCH {
        match stream.next().now_or_never() {
            Some(Some(Ok(more))) => buf.extend_from_slice(&more),
            Some(Some(Err(e))) => {
                *pending = Some(e);
                break;
            }
            Some(None) | None => break,
        }
    }
    Ok(Some(buf.freeze()))
}
