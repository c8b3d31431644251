//! Downloads filled piece by piece, in any order (the swarm's path).
//!
//! A [`PieceTask`] owns `data-dir/tasks/<hex>/`: `data` (the blob, written
//! with `pwrite` at each piece's offset) and `pieces` (the layout, then one
//! byte per piece, set in place with a one-byte `pwrite` once the piece's
//! bytes are written; see [`TaskMeta`]). The
//! contiguous prefix of held pieces is published as the download's
//! `written`, so readers of the [`BlobHandle`](super::BlobHandle) stream
//! in order as soon as the next piece is there. Every piece put was
//! verified against the piece map, whose sha256 chaining values end at the
//! blob's digest (see [`shoal_proto::PieceMap`]), so a complete task is a
//! verified blob without hashing it again; it is renamed into the store.
//! A task that fails or whose agent dies stays on disk, and the next
//! [`Fetcher::get_pieced`] of the same digest resumes it from the persisted
//! bitfield; the pieces it resumed are read back and verified against the
//! complete map before the blob is committed. `tasks/` is never visible
//! as complete: only the store's `blobs/` is.

use std::future::Future;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use shoal_proto::swarm::Layout;
use shoal_proto::{Bitfield, Digest, PieceMap};
use tokio::sync::watch;

use super::{FetchError, Fetcher, Forget, PieceProgress, State, io_err};
use crate::blob_file::BlobFile;

/// `tasks/<hex>/pieces`: [`META_MAGIC`], the blob size (u64, little
/// endian), the piece size (u32, little endian), then one byte per piece, 1
/// once the piece is written. Created whole when a task starts; each piece
/// then costs a one-byte `pwrite` in place, never a new file.
struct TaskMeta {
    file: std::fs::File,
}

/// First bytes of a `pieces` file (a task file of another format is not
/// resumed, just restarted).
const META_MAGIC: &[u8; 16] = b"shoal-pieces-v1\n";
/// Bytes before the per-piece flags.
const META_HEADER: u64 = 16 + 8 + 4;

impl TaskMeta {
    fn header(layout: Layout) -> Vec<u8> {
        let mut h = Vec::with_capacity(META_HEADER as usize);
        h.extend_from_slice(META_MAGIC);
        h.extend_from_slice(&layout.size.to_le_bytes());
        h.extend_from_slice(&layout.piece_size.to_le_bytes());
        h
    }

    /// The pieces held according to the file at `path`, if it describes a
    /// task of `layout`.
    fn load(path: &Path, layout: Layout) -> Option<Bitfield> {
        let bytes = std::fs::read(path).ok()?;
        let (head, flags) = bytes.split_at_checked(META_HEADER as usize)?;
        if head != Self::header(layout).as_slice() || flags.len() != layout.piece_count() as usize {
            return None;
        }
        let mut have = Bitfield::new(layout.piece_count());
        for (i, flag) in flags.iter().enumerate() {
            match flag {
                0 => {}
                1 => {
                    have.set(i as u32);
                }
                _ => return None,
            }
        }
        Some(have)
    }

    /// Writes a fresh file at `path` for `layout` with `have` marked.
    fn create(path: &Path, layout: Layout, have: &Bitfield) -> io::Result<Self> {
        let mut bytes = Self::header(layout);
        bytes.extend((0..layout.piece_count()).map(|i| u8::from(have.get(i))));
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, path)?;
        Ok(TaskMeta {
            file: std::fs::OpenOptions::new().write(true).open(path)?,
        })
    }

    /// Marks piece `index` as written.
    fn mark(&self, index: u32) -> io::Result<()> {
        self.file.write_all_at(&[1], META_HEADER + u64::from(index))
    }
}

/// A download being filled piece by piece. Cheap to clone; given to the
/// job of [`Fetcher::get_pieced`].
#[derive(Clone)]
pub struct PieceTask {
    inner: Arc<Inner>,
}

struct Inner {
    digest: Digest,
    store: crate::store::ContentStore,
    dir: PathBuf,
    data: Arc<PathBuf>,
    tx: watch::Sender<State>,
    progress: Arc<PieceProgress>,
    state: tokio::sync::Mutex<Option<Filling>>,
}

/// The task's state once its layout is known.
struct Filling {
    layout: Layout,
    file: Arc<BlobFile>,
    meta: Arc<TaskMeta>,
    have: Bitfield,
    /// Pieces `0..prefix` are held.
    prefix: u32,
    /// Pieces found on disk when the task resumed, not yet verified.
    resumed: Bitfield,
}

impl Fetcher {
    /// The blob, from the store or from a piece-wise download that this
    /// call starts (running `job` with its [`PieceTask`]) or joins. `job`
    /// calls [`PieceTask::start`] once it knows the blob's layout, puts
    /// verified pieces with [`PieceTask::put_piece`], and returns the
    /// complete piece map once every piece is in; the whole-blob digest is
    /// then checked and the blob committed. Returns once the size is known.
    pub async fn get_pieced<F, Fut>(
        &self,
        digest: &Digest,
        job: F,
    ) -> Result<super::BlobHandle, FetchError>
    where
        F: FnOnce(PieceTask) -> Fut,
        Fut: Future<Output = Result<PieceMap, FetchError>> + Send + 'static,
    {
        if let Some(h) = self.local(digest).await {
            return Ok(h);
        }
        let joined = self.join_or_start(digest, true, |tx, progress| {
            let forget = Forget::new(self, *digest, &tx);
            let progress = progress.expect("pieced downloads track pieces");
            let dir = self.store.root().join("tasks").join(digest.hex());
            let task = PieceTask {
                inner: Arc::new(Inner {
                    digest: *digest,
                    store: self.store.clone(),
                    data: Arc::new(dir.join("data")),
                    dir,
                    tx,
                    progress,
                    state: tokio::sync::Mutex::new(None),
                }),
            };
            let fut = job(task.clone());
            let fetcher = self.clone();
            tokio::spawn(async move {
                // Forget the job however it ends (see `Download::run`).
                let _forget = forget;
                let state = match fut.await {
                    Ok(map) => match task.finish(&fetcher, &map).await {
                        Ok(()) => State::Done,
                        Err(e) => State::Failed(e),
                    },
                    Err(e) => State::Failed(e),
                };
                if let State::Failed(e) = &state {
                    tracing::warn!(digest = %task.inner.digest, error = %e, "piece-wise download failed");
                }
                task.inner.tx.send_replace(state);
            });
        });
        self.wait_handle(digest, joined).await
    }
}

impl PieceTask {
    /// The blob being downloaded.
    pub fn digest(&self) -> &Digest {
        &self.inner.digest
    }

    /// Sets the blob's layout, resuming the persisted task if it has the
    /// same layout (else starting afresh), and publishes the download's
    /// size to readers. Returns the pieces already held. Idempotent.
    pub async fn start(&self, layout: Layout) -> Result<Bitfield, FetchError> {
        let mut st = self.inner.state.lock().await;
        if let Some(f) = &*st {
            return Ok(f.have.clone());
        }
        let dir = self.inner.dir.clone();
        let data = self.inner.data.clone();
        let (file, meta, have) =
            tokio::task::spawn_blocking(move || open_task(&dir, &data, layout))
                .await
                .map_err(|e| FetchError::Io(e.to_string()))?
                .map_err(|e| io_err(&self.inner.dir, e))?;
        // Room for the pieces still missing, checked before any reader sees
        // a size; a task with nothing in it yet is not kept.
        let held: u64 = have.iter_held().map(|i| layout.piece_len(i)).sum();
        if let Err(e) = self.inner.store.make_room_for(layout.size - held).await {
            if have.count() == 0 {
                let _ = tokio::fs::remove_dir_all(&self.inner.dir).await;
            }
            return Err(e.into());
        }
        let resumed = have.count();
        if resumed > 0 {
            tracing::info!(digest = %self.inner.digest, pieces = resumed, of = layout.piece_count(),
                "resuming a persisted download");
        }
        let progress = &self.inner.progress;
        *progress.layout.lock().expect("lock") = Some((layout.size, layout.piece_size));
        *progress.held.lock().expect("lock") = Some(have.clone());
        let file = Arc::new(file);
        progress.set_file(file.clone());
        let mut filling = Filling {
            layout,
            file,
            meta: Arc::new(meta),
            have: have.clone(),
            prefix: 0,
            resumed: have.clone(),
        };
        self.inner.tx.send_replace(State::Running {
            size: layout.size,
            written: 0,
            tmp: self.inner.data.clone(),
        });
        self.advance(&mut filling);
        *st = Some(filling);
        Ok(have)
    }

    /// Piece hashes known so far (a prefix of the piece map), so that the
    /// held pieces among them can be served to peers. Returns whether
    /// `hashes` is the known list or extends it: a map whose earlier
    /// entries changed is refused, since pieces were verified against them.
    pub fn set_known_hashes(&self, hashes: &[Digest]) -> bool {
        let mut consistent = true;
        self.inner.progress.update_hashes(|known| {
            consistent = hashes.starts_with(known);
            let grows = consistent && hashes.len() > known.len();
            if grows {
                *known = hashes.to_vec();
            }
            grows
        });
        consistent
    }

    /// Writes piece `index`, whose bytes (`chunks`, in order) the caller
    /// verified against the piece map. Returns false if the piece was
    /// already held. Publishes the new prefix to readers and persists the
    /// bitfield.
    pub async fn put_piece(&self, index: u32, chunks: Vec<Bytes>) -> Result<bool, FetchError> {
        let mut st = self.inner.state.lock().await;
        let f = st
            .as_mut()
            .ok_or_else(|| FetchError::Io("piece written before the task started".into()))?;
        if index >= f.layout.piece_count() {
            return Err(FetchError::Io(format!("piece {index} is out of range")));
        }
        if f.have.get(index) {
            return Ok(false);
        }
        let len: u64 = chunks.iter().map(|c| c.len() as u64).sum();
        if len != f.layout.piece_len(index) {
            return Err(FetchError::Io(format!(
                "piece {index} has {len} bytes, expected {}",
                f.layout.piece_len(index)
            )));
        }
        let offset = u64::from(index) * u64::from(f.layout.piece_size);
        let (file, meta) = (f.file.clone(), f.meta.clone());
        tokio::task::spawn_blocking(move || {
            file.write_chunks_at(&chunks, offset)
                .and_then(|()| meta.mark(index))
        })
        .await
        .map_err(|e| FetchError::Io(e.to_string()))?
        .map_err(|e| io_err(&self.inner.data, e))?;
        f.have.set(index);
        *self.inner.progress.held.lock().expect("lock") = Some(f.have.clone());
        self.advance(f);
        Ok(true)
    }

    /// Pieces held.
    pub async fn have(&self) -> Option<Bitfield> {
        self.inner
            .state
            .lock()
            .await
            .as_ref()
            .map(|f| f.have.clone())
    }

    /// Moves the prefix past the held pieces that follow it and publishes
    /// its length as `written`.
    fn advance(&self, f: &mut Filling) {
        let start = f.prefix;
        while f.prefix < f.layout.piece_count() && f.have.get(f.prefix) {
            f.prefix += 1;
        }
        if f.prefix > start {
            let written = (u64::from(f.prefix) * u64::from(f.layout.piece_size)).min(f.layout.size);
            self.inner.tx.send_modify(|s| {
                if let State::Running { written: w, .. } = s {
                    *w = written;
                }
            });
        }
    }

    /// Checks that every piece is in, that `map` is the complete map of
    /// the digest and extends the hashes the pieces were verified against,
    /// and verifies the pieces resumed from disk; then stores the piece map
    /// and commits the blob. A blob that does not match is discarded with
    /// its task.
    async fn finish(&self, fetcher: &Fetcher, map: &PieceMap) -> Result<(), FetchError> {
        let mut st = self.inner.state.lock().await;
        let f = st
            .as_mut()
            .ok_or_else(|| FetchError::Io("download ended before it started".into()))?;
        if !f.have.is_complete() || f.prefix != f.layout.piece_count() {
            return Err(FetchError::SizeMismatch {
                source_label: "swarm",
                got: u64::from(f.have.count()),
                expected: u64::from(f.layout.piece_count()),
            });
        }
        let map_fits = map.digest == self.inner.digest
            && map.validate().is_ok()
            && map.size == f.layout.size
            && map.piece_size == f.layout.piece_size
            && self.set_known_hashes(&map.pieces);
        if !map_fits {
            return Err(FetchError::Io(format!(
                "the piece map of {} does not fit the pieces downloaded",
                self.inner.digest
            )));
        }
        if let Err(e) = verify_resumed(&f.file, map, &f.resumed).await {
            tracing::warn!(digest = %self.inner.digest, error = %e, "a resumed download is damaged; discarding it");
            let _ = tokio::fs::remove_dir_all(&self.inner.dir).await;
            return Err(e);
        }
        let store = &fetcher.store;
        store
            .put_piece_map(map)
            .await
            .map_err(|e| FetchError::Io(format!("storing piece map: {e}")))?;
        store
            .commit_blob(&self.inner.data, &self.inner.digest)
            .await
            .map_err(|e| io_err(&self.inner.data, e))?;
        fetcher.note_written_directly(&self.inner.digest, f.file.is_direct());
        let _ = tokio::fs::remove_dir_all(&self.inner.dir).await;
        tracing::info!(digest = %self.inner.digest, size = f.layout.size, "blob verified and stored (pieces)");
        Ok(())
    }
}

/// Reads back and verifies against `map` the pieces a task resumed from
/// disk: they were verified when first written, but a crash can leave a
/// piece marked whose bytes never reached the disk.
async fn verify_resumed(
    file: &Arc<BlobFile>,
    map: &PieceMap,
    resumed: &Bitfield,
) -> Result<(), FetchError> {
    if resumed.count() == 0 {
        return Ok(());
    }
    let (file, map, resumed) = (file.clone(), map.clone(), resumed.clone());
    tokio::task::spawn_blocking(move || {
        for i in resumed.iter_held() {
            let range = map.piece_range(i);
            let bytes = file
                .read_at(range.start, (range.end - range.start) as usize)
                .map_err(|e| FetchError::Io(format!("reading resumed piece {i}: {e}")))?;
            map.verify_piece(i, &bytes)
                .map_err(|e| FetchError::Io(format!("resumed {e}")))?;
        }
        Ok(())
    })
    .await
    .map_err(|e| FetchError::Io(e.to_string()))?
}

/// Opens the task's data file and its piece flags, resuming them if the
/// persisted layout is `layout`, and returns them with the pieces held.
fn open_task(
    dir: &Path,
    data: &Path,
    layout: Layout,
) -> io::Result<(BlobFile, TaskMeta, Bitfield)> {
    std::fs::create_dir_all(dir)?;
    let meta_path = dir.join("pieces");
    let resumed = TaskMeta::load(&meta_path, layout).filter(|_| data.is_file());
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(resumed.is_none())
        .open(data)?;
    file.set_len(layout.size)?;
    let have = resumed.unwrap_or_else(|| Bitfield::new(layout.piece_count()));
    let meta = TaskMeta::create(&meta_path, layout, &have)?;
    Ok((BlobFile::with_direct(file, data, true), meta, have))
}

#[cfg(test)]
mod tests;
