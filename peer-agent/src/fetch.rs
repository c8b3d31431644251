//! Single-flight streaming downloads into the content store.
//!
//! However many requests arrive for one digest, the [`Fetcher`] opens its
//! source once. The download is written under `tmp/`, hashed as it passes,
//! and every requester reads the growing file as bytes arrive (streaming,
//! not after the blob completes). A blob becomes visible in the store only
//! after its sha256 matched the digest; readers never receive the final byte
//! of an unverified blob, so no client can complete a body with bad content.
//! When the source's stream breaks, the download resumes from the offset it
//! reached, a bounded number of times.
//!
//! Next to that sequential path, [`Fetcher::get_pieced`] fills a blob piece
//! by piece in any order (the swarm's path, in [`pieced`]): readers see the
//! contiguous prefix of verified pieces, and the task is persisted under
//! `tasks/` so that a restarted agent resumes it.
//!
//! This file holds the [`Fetcher`] and the types its parts share; a
//! sequential download runs in `download`, hashing and writing on the
//! thread in `writer`; [`BlobHandle`] and its reader live in `handle`, and
//! [`PieceProgress`] in `progress`.

use std::collections::{HashMap, HashSet};
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use shoal_proto::Digest;
use tokio::sync::watch;

use crate::registry::RegistryError;
use crate::store::{ContentStore, StoreError, is_disk_full};

mod download;
mod handle;
mod pieced;
mod progress;
mod writer;

pub use handle::BlobHandle;
pub use pieced::PieceTask;
pub use progress::PieceProgress;

use download::Download;

/// A source's body: its total size and the bytes from the requested offset.
pub struct SourceBody {
    /// Size of the whole blob.
    pub total_size: u64,
    /// Bytes from the requested offset to the end.
    pub stream: BoxStream<'static, Result<Bytes, RegistryError>>,
}

/// Where a blob's bytes come from (the upstream, the supernode, later peers).
pub trait BlobSource: Send + Sync + 'static {
    /// Opens the blob at `offset`. Called again with the offset reached when
    /// a stream breaks.
    fn open(&self, offset: u64) -> BoxFuture<'static, Result<SourceBody, RegistryError>>;
    /// Label for metrics and logs (`upstream`, `supernode`, ...).
    fn label(&self) -> &'static str;
}

/// Why a download failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FetchError {
    /// The source refused or failed; carries the error to pass on.
    #[error(transparent)]
    Source(#[from] RegistryError),
    /// The source's bytes do not hash to the requested digest.
    #[error(
        "content from {source_label} does not match digest {expected} (got {actual}); discarded"
    )]
    DigestMismatch {
        /// Where the bytes came from.
        source_label: &'static str,
        /// The digest asked for.
        expected: Digest,
        /// The digest of what arrived.
        actual: Digest,
    },
    /// The source's stream ended early or ran long.
    #[error("{source_label} sent {got} bytes of a {expected}-byte blob")]
    SizeMismatch {
        /// Where the bytes came from.
        source_label: &'static str,
        /// Bytes received.
        got: u64,
        /// Bytes announced.
        expected: u64,
    },
    /// Writing to the local disk failed.
    #[error("local storage error: {0}")]
    Io(String),
    /// The local store cannot take the blob: the disk is full, or the blob
    /// is larger than the disk quota.
    #[error(transparent)]
    Storage(#[from] StoreError),
}

impl From<FetchError> for RegistryError {
    fn from(e: FetchError) -> Self {
        match e {
            FetchError::Source(r) => r,
            FetchError::Io(msg) => RegistryError::internal(format!("local storage error: {msg}")),
            // 507: this node cannot store the blob now; nothing is wrong
            // with the request or the upstream.
            FetchError::Storage(e) => RegistryError::new(
                http::StatusCode::INSUFFICIENT_STORAGE,
                "UNAVAILABLE",
                e.to_string(),
            ),
            other => RegistryError::bad_gateway(other.to_string()),
        }
    }
}

#[derive(Clone, Debug)]
enum State {
    Opening,
    Running {
        size: u64,
        written: u64,
        tmp: Arc<PathBuf>,
    },
    Done,
    Failed(FetchError),
}

/// Starts and shares downloads. Cheap to clone.
#[derive(Clone)]
pub struct Fetcher {
    store: ContentStore,
    inflight: Arc<Mutex<HashMap<Digest, Inflight>>>,
    resume_attempts: u32,
    piece_maps: bool,
    /// Blobs stored by this process from pieces written around the page
    /// cache: runtimes read them the same way (see [`BlobHandle`]). A hint
    /// for speed only; reads are correct either way.
    written_directly: Arc<Mutex<HashSet<Digest>>>,
}

/// A download in progress, as the fetcher's map holds it.
#[derive(Clone)]
struct Inflight {
    rx: watch::Receiver<State>,
    pieces: Option<Arc<PieceProgress>>,
}

impl Fetcher {
    /// A fetcher writing into `store`; a broken source stream is resumed at
    /// most `resume_attempts` times per download.
    pub fn new(store: ContentStore, resume_attempts: u32) -> Self {
        Fetcher {
            store,
            inflight: Arc::default(),
            resume_attempts,
            piece_maps: false,
            written_directly: Arc::default(),
        }
    }

    /// Records how the blob `digest` just stored was written.
    fn note_written_directly(&self, digest: &Digest, direct: bool) {
        let mut set = self.written_directly.lock().expect("lock");
        if direct {
            set.insert(*digest);
        } else {
            set.remove(digest);
        }
    }

    /// Also computes each download's piece map as its bytes pass, stores it
    /// beside the blob, and exposes partial maps while downloads run (what
    /// a seed needs to serve pieces before a blob is complete).
    pub fn with_piece_maps(mut self) -> Self {
        self.piece_maps = true;
        self
    }

    /// Piece progress of a running download of `digest`, if any.
    pub fn progress(&self, digest: &Digest) -> Option<Arc<PieceProgress>> {
        self.inflight
            .lock()
            .expect("inflight lock")
            .get(digest)?
            .pieces
            .clone()
    }

    /// The store this fetcher fills.
    pub fn store(&self) -> &ContentStore {
        &self.store
    }

    /// The blob from the store if it is complete there.
    pub async fn local(&self, digest: &Digest) -> Option<BlobHandle> {
        // Pinned before the lookup: a blob found stays until the handle goes.
        let pin = self.store.pin(digest);
        let size = self.store.blob_size(digest).await?;
        Some(BlobHandle {
            digest: *digest,
            size,
            final_path: self.store.blob_path(digest),
            progress: None,
            pieces: None,
            direct: self.written_directly.lock().expect("lock").contains(digest),
            pin,
        })
    }

    /// The blob, from the store or from a download that this call starts
    /// (with `source()`) or joins. Returns once the size is known.
    pub async fn get<S: BlobSource>(
        &self,
        digest: &Digest,
        source: impl FnOnce() -> S,
    ) -> Result<BlobHandle, FetchError> {
        if let Some(h) = self.local(digest).await {
            return Ok(h);
        }
        let joined = self.join_or_start(digest, self.piece_maps, |tx, pieces| {
            let job = Download {
                fetcher: self.clone(),
                digest: *digest,
                source: source(),
                tx,
                pieces,
            };
            tokio::spawn(job.run());
        });
        self.wait_handle(digest, joined).await
    }

    /// Joins the running download of `digest`, or registers a new one and
    /// calls `start` with its state sender (and piece progress, made if
    /// `pieced`). `None` when the store already has the blob.
    fn join_or_start(
        &self,
        digest: &Digest,
        pieced: bool,
        start: impl FnOnce(watch::Sender<State>, Option<Arc<PieceProgress>>),
    ) -> Option<watch::Receiver<State>> {
        let mut map = self.inflight.lock().expect("inflight lock");
        // A download that failed is not joined, even in the moment between
        // publishing its failure and leaving the map: the new request
        // starts afresh (perhaps from another upstream).
        let running = map
            .get(digest)
            .filter(|e| !matches!(&*e.rx.borrow(), State::Failed(_)));
        match running {
            Some(entry) => Some(entry.rx.clone()),
            // A download that finished since the caller's check has
            // already left the map: the store has the blob.
            None if self.store.blob_path(digest).is_file() => None,
            None => {
                let (tx, rx) = watch::channel(State::Opening);
                let pieces = pieced.then(|| Arc::new(PieceProgress::new(*digest)));
                map.insert(
                    *digest,
                    Inflight {
                        rx: rx.clone(),
                        pieces: pieces.clone(),
                    },
                );
                start(tx, pieces);
                Some(rx)
            }
        }
    }

    /// The handle of a joined download, once its size is known.
    async fn wait_handle(
        &self,
        digest: &Digest,
        joined: Option<watch::Receiver<State>>,
    ) -> Result<BlobHandle, FetchError> {
        let Some(mut rx) = joined else {
            return self
                .local(digest)
                .await
                .ok_or_else(|| FetchError::Io(format!("blob {digest} vanished from the store")));
        };
        loop {
            let state = rx.borrow_and_update().clone();
            match state {
                State::Opening => {}
                State::Running { size, tmp, .. } => {
                    return Ok(BlobHandle {
                        digest: *digest,
                        size,
                        final_path: self.store.blob_path(digest),
                        progress: Some((rx, tmp)),
                        pieces: self.progress(digest),
                        direct: false,
                        pin: self.store.pin(digest),
                    });
                }
                State::Done => {
                    return self.local(digest).await.ok_or_else(|| {
                        FetchError::Io(format!("blob {digest} vanished from the store"))
                    });
                }
                State::Failed(e) => return Err(e),
            }
            if rx.changed().await.is_err() {
                // The job ended; its last state tells how.
                if matches!(&*rx.borrow(), State::Opening) {
                    return Err(FetchError::Io("download task ended unexpectedly".into()));
                }
            }
        }
    }
}

/// Removes a download's entry from the in-flight map when the job ends,
/// unless a newer download of the same blob has taken its place.
struct Forget {
    map: Arc<Mutex<HashMap<Digest, Inflight>>>,
    digest: Digest,
    /// The job's own state channel, which tells its entry from a newer one.
    own: watch::Receiver<State>,
}

impl Forget {
    fn new(fetcher: &Fetcher, digest: Digest, tx: &watch::Sender<State>) -> Self {
        Forget {
            map: fetcher.inflight.clone(),
            digest,
            own: tx.subscribe(),
        }
    }
}

impl Drop for Forget {
    fn drop(&mut self) {
        if let Ok(mut map) = self.map.lock()
            && map
                .get(&self.digest)
                .is_some_and(|e| e.rx.same_channel(&self.own))
        {
            map.remove(&self.digest);
        }
    }
}

fn io_err(path: &std::path::Path, e: io::Error) -> FetchError {
    if is_disk_full(&e) {
        return FetchError::Storage(StoreError::DiskFull {
            path: path.display().to_string(),
        });
    }
    FetchError::Io(format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests;
