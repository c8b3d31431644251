//! The writer thread that hashes and writes a sequential download's bytes
//! off the async task, and [`BlobHasher`], the hashes it computes on the way.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use shoal_proto::{Digest, Hasher, PieceHasher, PieceMap};
use tokio::sync::watch;

use super::{FetchError, PieceProgress, State, io_err};

/// Largest batch written to disk in one blocking call.
pub(super) const WRITE_BATCH: usize = 4 * 1024 * 1024;

/// The whole-blob hash, plus piece hashes when the fetcher makes piece maps.
pub(super) enum BlobHasher {
    Whole(Hasher),
    Pieces(Box<PieceHasher>, Arc<PieceProgress>),
}

impl BlobHasher {
    fn update(&mut self, data: &[u8]) {
        match self {
            BlobHasher::Whole(h) => h.update(data),
            BlobHasher::Pieces(h, progress) => {
                h.update(data);
                let done = h.completed();
                progress.update_hashes(|known| {
                    let grows = done.len() > known.len();
                    if grows {
                        known.extend_from_slice(&done[known.len()..]);
                    }
                    grows
                });
            }
        }
    }

    /// The digest of all bytes, and the piece map when computed.
    pub(super) fn finish(self) -> (Digest, Option<PieceMap>) {
        match self {
            BlobHasher::Whole(h) => (h.finish(), None),
            BlobHasher::Pieces(h, progress) => match h.finish() {
                Ok(map) => {
                    // The last piece's hash is known only now.
                    progress.update_hashes(|known| {
                        *known = map.pieces.clone();
                        true
                    });
                    (map.digest, Some(map))
                }
                // Sizes beyond the piece map's limits: no map, and a digest
                // that cannot match, so the blob is refused.
                Err(e) => {
                    tracing::warn!(error = %e, "cannot build a piece map");
                    (Digest::from_bytes([0; 32]), None)
                }
            },
        }
    }
}

/// Batches queued for the writer thread: enough to keep the network side
/// reading while a batch is hashed and written, little enough to bound
/// memory (at most this many × [`WRITE_BATCH`] per download).
const WRITER_QUEUE: usize = 4;

/// Hashes and writes a download's bytes on a blocking thread of its own,
/// so that receiving the next bytes overlaps hashing and writing the last
/// ones. Publishes each batch's end as the download's `written` offset
/// once the batch is on disk.
pub(super) struct Writer {
    tx: tokio::sync::mpsc::Sender<Bytes>,
    job: tokio::task::JoinHandle<(std::fs::File, BlobHasher, u64, Result<(), FetchError>)>,
}

impl Writer {
    pub(super) fn start(
        file: std::fs::File,
        hasher: BlobHasher,
        path: Arc<PathBuf>,
        state: watch::Sender<State>,
    ) -> Self {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(WRITER_QUEUE);
        let job = tokio::task::spawn_blocking(move || {
            let (mut file, mut hasher, mut written) = (file, hasher, 0u64);
            while let Some(batch) = rx.blocking_recv() {
                hasher.update(&batch);
                if let Err(e) = file.write_all(&batch) {
                    return (file, hasher, written, Err(io_err(&path, e)));
                }
                written += batch.len() as u64;
                state.send_modify(|s| {
                    if let State::Running { written: w, .. } = s {
                        *w = written;
                    }
                });
            }
            (file, hasher, written, Ok(()))
        });
        Writer { tx, job }
    }

    /// Queues `batch`; false when the writer has stopped on an error.
    pub(super) async fn send(&self, batch: Bytes) -> bool {
        self.tx.send(batch).await.is_ok()
    }

    /// Waits for every queued batch to be written; returns the file, the
    /// hasher, the bytes written and the first write error.
    pub(super) async fn finish(
        self,
    ) -> Result<(std::fs::File, BlobHasher, u64, Result<(), FetchError>), FetchError> {
        drop(self.tx);
        self.job
            .await
            .map_err(|e| FetchError::Io(format!("writer thread failed: {e}")))
    }
}
