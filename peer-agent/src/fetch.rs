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

use std::collections::HashMap;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use futures_util::future::BoxFuture;
use futures_util::stream::{BoxStream, Fuse};
use futures_util::{FutureExt, StreamExt};
use shoal_proto::{Bitfield, Digest, Hasher, PieceHasher, PieceMap, piece_size_for};
use tokio::sync::watch;

use crate::registry::RegistryError;
use crate::store::{BlobPin, ContentStore, StoreError, is_disk_full};

mod pieced;
pub use pieced::PieceTask;

/// Chunk size used when reading blobs back from disk: 4 MiB keeps the
/// hand-offs to the blocking pool few (warm pulls reach ~1 GB/s, 7% more
/// than with 1 MiB).
const READ_CHUNK: usize = 4 * 1024 * 1024;
/// Largest batch written to disk in one blocking call.
const WRITE_BATCH: usize = 4 * 1024 * 1024;

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
}

/// A download in progress, as the fetcher's map holds it.
#[derive(Clone)]
struct Inflight {
    rx: watch::Receiver<State>,
    pieces: Option<Arc<PieceProgress>>,
}

/// Piece hashes of a download in progress, computed as bytes pass, so its
/// pieces can be served to peers before the whole blob is in.
#[derive(Debug)]
pub struct PieceProgress {
    digest: Digest,
    /// Blob size and piece size, once the source told the size.
    layout: Mutex<Option<(u64, u32)>>,
    hashes: Mutex<Vec<Digest>>,
    /// Pieces held, for downloads filled piece by piece (in any order);
    /// `None` for sequential downloads, which hold the pieces whose hash
    /// is known.
    held: Mutex<Option<Bitfield>>,
    /// The file the download is written to, open for reading pieces.
    file: Mutex<Option<Arc<std::fs::File>>>,
    grew: tokio::sync::Notify,
}

impl PieceProgress {
    /// Number of pieces whose hash is known.
    pub fn known(&self) -> usize {
        self.hashes.lock().expect("lock").len()
    }

    /// Waits until more than `known` piece hashes are known, or `timeout`.
    pub async fn wait_beyond(&self, known: usize, timeout: std::time::Duration) {
        let wait = async {
            loop {
                let notified = self.grew.notified();
                if self.known() > known {
                    return;
                }
                notified.await;
            }
        };
        let _ = tokio::time::timeout(timeout, wait).await;
    }

    /// The pieces known so far as a (possibly partial) piece map: its
    /// `pieces` hold the hashes of the pieces already written, in order.
    pub fn partial_map(&self) -> Option<PieceMap> {
        let (size, piece_size) = (*self.layout.lock().expect("lock"))?;
        Some(PieceMap {
            digest: self.digest,
            size,
            piece_size,
            pieces: self.hashes.lock().expect("lock").clone(),
        })
    }

    /// Whether piece `index` is written (and its hash known).
    pub fn has_piece(&self, index: u32) -> bool {
        let known = (index as usize) < self.hashes.lock().expect("lock").len();
        match &*self.held.lock().expect("lock") {
            Some(held) => known && held.get(index),
            None => known,
        }
    }

    /// The pieces held by a download filled piece by piece (`None` for a
    /// sequential download).
    pub fn held(&self) -> Option<Bitfield> {
        self.held.lock().expect("lock").clone()
    }

    fn new(digest: Digest) -> Self {
        PieceProgress {
            digest,
            layout: Mutex::default(),
            hashes: Mutex::default(),
            held: Mutex::default(),
            file: Mutex::default(),
            grew: tokio::sync::Notify::new(),
        }
    }

    /// The file the download is being written to, open for reading (it
    /// stays readable once the download is renamed into the store).
    pub fn file(&self) -> Option<Arc<std::fs::File>> {
        self.file.lock().expect("lock").clone()
    }

    fn set_file(&self, file: Arc<std::fs::File>) {
        *self.file.lock().expect("lock") = Some(file);
    }
}

/// A blob that is either complete on disk or being downloaded. Keeps the
/// blob from being evicted (the disk quota) until it and its stream are
/// dropped.
pub struct BlobHandle {
    digest: Digest,
    size: u64,
    final_path: PathBuf,
    progress: Option<(watch::Receiver<State>, Arc<PathBuf>)>,
    pin: BlobPin,
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
        match map.get(digest) {
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

struct Forget {
    map: Arc<Mutex<HashMap<Digest, Inflight>>>,
    digest: Digest,
}

impl Drop for Forget {
    fn drop(&mut self) {
        if let Ok(mut map) = self.map.lock() {
            map.remove(&self.digest);
        }
    }
}

struct Download<S> {
    fetcher: Fetcher,
    digest: Digest,
    source: S,
    tx: watch::Sender<State>,
    pieces: Option<Arc<PieceProgress>>,
}

/// The whole-blob hash, plus piece hashes when the fetcher makes piece maps.
enum BlobHasher {
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
                let mut known = progress.hashes.lock().expect("lock");
                if done.len() > known.len() {
                    let new = &done[known.len()..];
                    known.extend_from_slice(new);
                    drop(known);
                    progress.grew.notify_waiters();
                }
            }
        }
    }

    /// The digest of all bytes, and the piece map when computed.
    fn finish(self) -> (Digest, Option<PieceMap>) {
        match self {
            BlobHasher::Whole(h) => (h.finish(), None),
            BlobHasher::Pieces(h, progress) => match h.finish() {
                Ok(map) => {
                    // The last piece's hash is known only now.
                    *progress.hashes.lock().expect("lock") = map.pieces.clone();
                    progress.grew.notify_waiters();
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

impl<S: BlobSource> Download<S> {
    async fn run(self) {
        // Forget the job however it ends (even by panic), so that a later
        // request starts afresh instead of waiting on a dead job.
        let _forget = Forget {
            map: self.fetcher.inflight.clone(),
            digest: self.digest,
        };
        let state = match self.transfer().await {
            Ok(_) => State::Done,
            Err(e) => {
                tracing::warn!(digest = %self.digest, error = %e, "download failed");
                State::Failed(e)
            }
        };
        // Publish the outcome before the job is forgotten, so a new request
        // either joins this job's result or finds the blob stored.
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
                progress.set_file(Arc::new(file.try_clone().map_err(|e| io_err(&tmp, e))?));
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

/// Batches queued for the writer thread: enough to keep the network side
/// reading while a batch is hashed and written, little enough to bound
/// memory (at most this many × [`WRITE_BATCH`] per download).
const WRITER_QUEUE: usize = 4;

/// Hashes and writes a download's bytes on a blocking thread of its own,
/// so that receiving the next bytes overlaps hashing and writing the last
/// ones. Publishes each batch's end as the download's `written` offset
/// once the batch is on disk.
struct Writer {
    tx: tokio::sync::mpsc::Sender<Bytes>,
    job: tokio::task::JoinHandle<(std::fs::File, BlobHasher, u64, Result<(), FetchError>)>,
}

impl Writer {
    fn start(
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
    async fn send(&self, batch: Bytes) -> bool {
        self.tx.send(batch).await.is_ok()
    }

    /// Waits for every queued batch to be written; returns the file, the
    /// hasher, the bytes written and the first write error.
    async fn finish(
        self,
    ) -> Result<(std::fs::File, BlobHasher, u64, Result<(), FetchError>), FetchError> {
        drop(self.tx);
        self.job
            .await
            .map_err(|e| FetchError::Io(format!("writer thread failed: {e}")))
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

fn io_err(path: &std::path::Path, e: io::Error) -> FetchError {
    if is_disk_full(&e) {
        return FetchError::Storage(StoreError::DiskFull {
            path: path.display().to_string(),
        });
    }
    FetchError::Io(format!("{}: {e}", path.display()))
}

impl BlobHandle {
    /// The blob's digest.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// The blob's total size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Whether the blob is complete and verified in the store.
    pub fn is_complete(&self) -> bool {
        self.progress.is_none()
    }

    /// The bytes in `range` (clamped to the blob), as they become available.
    pub fn stream(self, range: Range<u64>) -> BoxStream<'static, io::Result<Bytes>> {
        let end = range.end.min(self.size);
        let tail = Tail {
            pos: range.start.min(end),
            end,
            size: self.size,
            file: None,
            final_path: self.final_path,
            progress: self.progress,
            _pin: self.pin,
        };
        futures_util::stream::unfold(tail, |mut t| async move {
            match t.next_chunk().await {
                Ok(Some(b)) => Some((Ok(b), t)),
                Ok(None) => None,
                Err(e) => {
                    t.pos = t.end; // end the stream after the error
                    Some((Err(e), t))
                }
            }
        })
        .boxed()
    }
}

struct Tail {
    pos: u64,
    end: u64,
    size: u64,
    file: Option<std::fs::File>,
    final_path: PathBuf,
    progress: Option<(watch::Receiver<State>, Arc<PathBuf>)>,
    /// Keeps the blob from being evicted while it is read.
    _pin: BlobPin,
}

impl Tail {
    /// How many bytes of the blob may be read now; waits until that is
    /// more than `pos`.
    async fn available(&mut self) -> io::Result<u64> {
        let Some((rx, _)) = self.progress.as_mut() else {
            return Ok(self.size);
        };
        loop {
            let avail = match &*rx.borrow_and_update() {
                State::Opening => 0,
                // Hold back the range's final byte until the whole blob is
                // verified (a range short of the blob's end included).
                State::Running { written, .. } => (*written).min(self.end.saturating_sub(1)),
                State::Done => self.size,
                State::Failed(e) => return Err(io::Error::other(e.to_string())),
            };
            if avail > self.pos {
                return Ok(avail);
            }
            if rx.changed().await.is_err() {
                return match &*rx.borrow() {
                    State::Done => Ok(self.size),
                    State::Failed(e) => Err(io::Error::other(e.to_string())),
                    _ => Err(io::Error::other("download ended without a result")),
                };
            }
        }
    }

    async fn next_chunk(&mut self) -> io::Result<Option<Bytes>> {
        if self.pos >= self.end {
            return Ok(None);
        }
        let avail = self.available().await?.min(self.end);
        let want = ((avail - self.pos) as usize).min(READ_CHUNK);
        let file = match self.file.take() {
            Some(f) => f,
            None => self.open_file().await?,
        };
        let pos = self.pos;
        let (file, res) = tokio::task::spawn_blocking(move || {
            let mut f = file;
            // `read_to_end` fills the spare capacity without zeroing it first.
            let mut buf = Vec::with_capacity(want);
            let res = f
                .seek(SeekFrom::Start(pos))
                .and_then(|_| (&mut f).take(want as u64).read_to_end(&mut buf))
                .and_then(|n| {
                    if n == want {
                        Ok(buf)
                    } else {
                        Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!("blob file ended {} bytes early", want - n),
                        ))
                    }
                });
            (f, res)
        })
        .await
        .map_err(io::Error::other)?;
        self.file = Some(file);
        let buf = res?;
        self.pos += buf.len() as u64;
        Ok(Some(Bytes::from(buf)))
    }

    /// Opens the download's temporary file, or the stored blob if the
    /// download finished (and renamed it) in the meantime.
    async fn open_file(&self) -> io::Result<std::fs::File> {
        if let Some((_, tmp)) = &self.progress {
            match std::fs::File::open(&**tmp) {
                Ok(f) => return Ok(f),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        std::fs::File::open(&self.final_path)
    }
}

#[cfg(test)]
mod tests;
