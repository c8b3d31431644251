//! Downloads filled piece by piece, in any order (the swarm's path).
//!
//! A [`PieceTask`] owns `data-dir/tasks/<hex>/`: `data` (the blob, written
//! with `pwrite` at each piece's offset) and `pieces` (the layout and the
//! bitfield of pieces written, replaced atomically after every piece). The
//! contiguous prefix of held pieces is published as the download's
//! `written`, so readers of the [`BlobHandle`](super::BlobHandle) stream
//! in order as soon as the next piece is there; the whole-blob sha256 is
//! computed over that prefix as it advances (read back from the file) and
//! checked at the end exactly as on the sequential path, before the file
//! is renamed into the store. A task that fails or whose agent dies stays
//! on disk, and the next [`Fetcher::get_pieced`] of the same digest resumes
//! it from the persisted bitfield (its pieces are re-hashed as the prefix
//! passes them, and the final digest check catches anything damaged).
//! `tasks/` is never visible as complete: only the store's `blobs/` is.

use std::future::Future;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use shoal_proto::swarm::Layout;
use shoal_proto::{Bitfield, Digest, Hasher, PieceMap};
use tokio::sync::watch;

use super::{FetchError, Fetcher, Forget, PieceProgress, State, io_err};

/// What `tasks/<hex>/pieces` holds.
#[derive(Debug, Serialize, Deserialize)]
struct TaskMeta {
    size: u64,
    piece_size: u32,
    have: Bitfield,
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
    file: Arc<std::fs::File>,
    have: Bitfield,
    /// Pieces `0..prefix` are held and hashed into `hasher`.
    prefix: u32,
    hasher: Option<Hasher>,
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
            let forget = Forget {
                map: self.inflight.clone(),
                digest: *digest,
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
        let (file, have) = tokio::task::spawn_blocking(move || open_task(&dir, &data, layout))
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
        *progress.tmp.lock().expect("lock") = Some(self.inner.data.clone());
        *progress.held.lock().expect("lock") = Some(have.clone());
        let mut filling = Filling {
            layout,
            file: Arc::new(file),
            have: have.clone(),
            prefix: 0,
            hasher: Some(Hasher::new()),
        };
        self.inner.tx.send_replace(State::Running {
            size: layout.size,
            written: 0,
            tmp: self.inner.data.clone(),
        });
        self.advance(&mut filling).await?;
        *st = Some(filling);
        Ok(have)
    }

    /// Piece hashes known so far (a prefix of the piece map), so that the
    /// held pieces among them can be served to peers.
    pub fn set_known_hashes(&self, hashes: &[Digest]) {
        let progress = &self.inner.progress;
        let mut known = progress.hashes.lock().expect("lock");
        if hashes.len() > known.len() {
            *known = hashes.to_vec();
            drop(known);
            progress.grew.notify_waiters();
        }
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
        let file = f.file.clone();
        let mut have = f.have.clone();
        have.set(index);
        let meta = TaskMeta {
            size: f.layout.size,
            piece_size: f.layout.piece_size,
            have: have.clone(),
        };
        let dir = self.inner.dir.clone();
        tokio::task::spawn_blocking(move || -> io::Result<()> {
            let mut at = offset;
            for c in &chunks {
                file.write_all_at(c, at)?;
                at += c.len() as u64;
            }
            save_meta(&dir, &meta)
        })
        .await
        .map_err(|e| FetchError::Io(e.to_string()))?
        .map_err(|e| io_err(&self.inner.data, e))?;
        f.have = have.clone();
        *self.inner.progress.held.lock().expect("lock") = Some(have);
        self.advance(f).await?;
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

    /// Hashes the held pieces just past the prefix into the whole-blob
    /// hash and publishes the prefix's length as `written`.
    async fn advance(&self, f: &mut Filling) -> Result<(), FetchError> {
        let start = f.prefix;
        while f.prefix < f.layout.piece_count() && f.have.get(f.prefix) {
            let offset = u64::from(f.prefix) * u64::from(f.layout.piece_size);
            let len = f.layout.piece_len(f.prefix) as usize;
            let (file, mut hasher) = (f.file.clone(), f.hasher.take().expect("hasher"));
            let (hasher, res) = tokio::task::spawn_blocking(move || {
                let mut buf = vec![0u8; len];
                let res = file.read_exact_at(&mut buf, offset);
                if res.is_ok() {
                    hasher.update(&buf);
                }
                (hasher, res)
            })
            .await
            .map_err(|e| FetchError::Io(e.to_string()))?;
            f.hasher = Some(hasher);
            res.map_err(|e| io_err(&self.inner.data, e))?;
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
        Ok(())
    }

    /// Checks that every piece is in and the whole blob hashes to the
    /// digest, then stores the piece map and commits the blob. A blob that
    /// does not match is discarded with its task.
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
        let actual = f.hasher.take().expect("hasher").finish();
        if actual != self.inner.digest {
            let _ = tokio::fs::remove_dir_all(&self.inner.dir).await;
            return Err(FetchError::DigestMismatch {
                source_label: "swarm",
                expected: self.inner.digest,
                actual,
            });
        }
        *self.inner.progress.hashes.lock().expect("lock") = map.pieces.clone();
        self.inner.progress.grew.notify_waiters();
        let store = &fetcher.store;
        store
            .put_piece_map(map)
            .await
            .map_err(|e| FetchError::Io(format!("storing piece map: {e}")))?;
        store
            .commit_blob(&self.inner.data, &self.inner.digest)
            .await
            .map_err(|e| io_err(&self.inner.data, e))?;
        let _ = tokio::fs::remove_dir_all(&self.inner.dir).await;
        tracing::info!(digest = %self.inner.digest, size = f.layout.size, "blob verified and stored (pieces)");
        Ok(())
    }
}

/// Opens the task's data file, resuming it if its persisted layout is
/// `layout`, and returns it with the pieces held.
fn open_task(dir: &Path, data: &Path, layout: Layout) -> io::Result<(std::fs::File, Bitfield)> {
    std::fs::create_dir_all(dir)?;
    let meta: Option<TaskMeta> = std::fs::read(dir.join("pieces"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let resumable = meta.filter(|m| {
        m.size == layout.size
            && m.piece_size == layout.piece_size
            && m.have.len() == layout.piece_count()
            && data.is_file()
    });
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(resumable.is_none())
        .open(data)?;
    file.set_len(layout.size)?;
    let have = match resumable {
        Some(m) => m.have,
        None => {
            let have = Bitfield::new(layout.piece_count());
            save_meta(
                dir,
                &TaskMeta {
                    size: layout.size,
                    piece_size: layout.piece_size,
                    have: have.clone(),
                },
            )?;
            have
        }
    };
    Ok((file, have))
}

/// Replaces `pieces` atomically (write a temporary file, rename).
fn save_meta(dir: &Path, meta: &TaskMeta) -> io::Result<()> {
    let bytes = serde_json::to_vec(meta).map_err(io::Error::other)?;
    let tmp = dir.join("pieces.tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(tmp, dir.join("pieces"))
}

#[cfg(test)]
mod tests;
