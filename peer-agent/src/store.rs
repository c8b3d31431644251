//! The content store: complete, verified blobs and manifests on disk.
//!
//! Layout under the data dir (DESIGN.md "Storage"):
//!
//! - `blobs/sha256/<2 hex>/<64 hex>`: complete, verified blobs (and
//!   `<64 hex>.pieces`, the piece map, where one was computed);
//! - `manifests/sha256/<2 hex>/<64 hex>` (+ `.type` holding the media type);
//! - `tmp/`: downloads in progress, emptied on start.
//!
//! Everything is written under `tmp/` and renamed into place once verified,
//! so nothing partial is ever visible under a digest's name.
//!
//! Disk use: before a download starts, [`ContentStore::make_room_for`]
//! refuses a blob the file system has no space for (a clear error instead
//! of a body cut short by a full disk) and, with a quota (`--max-disk`),
//! evicts least-recently-used complete blobs that nobody uses ([`quota`]).
//! Readers and transfers hold a [`BlobPin`], which keeps a blob from being
//! evicted. An eviction renames the blob out of `blobs/` in one step (a
//! reader sees the whole blob or none) and then removes its piece map.
//! [`ContentStore::evictions`] tells whoever listens (the swarm, which
//! then tells its peers) which blobs went.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use shoal_proto::units::ByteSize;
use shoal_proto::{Digest, PieceMap, decode_frame, encode_frame};

pub mod quota;

use quota::Lru;

/// Gauge: bytes of complete blobs in the store.
pub const STORE_BYTES: &str = "shoal_store_bytes";
/// Counter: complete blobs evicted to keep within `--max-disk`.
pub const STORE_EVICTIONS: &str = "shoal_store_evictions_total";

/// Evictions queued per [`ContentStore::evictions`] receiver before the
/// oldest are dropped (the receiver then sees a lag).
const EVICTIONS_QUEUED: usize = 256;

/// Why the store cannot take a blob.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The file system under the data dir has too little space left.
    #[error(
        "local disk full: a {needed}-byte blob does not fit in the {available} bytes left under {dir}"
    )]
    NoSpace {
        /// Bytes the blob needs.
        needed: u64,
        /// Bytes the file system has left.
        available: u64,
        /// The data dir.
        dir: String,
    },
    /// A write failed because the file system is full (another download
    /// took the space after this one started).
    #[error("local disk full: writing {path} failed")]
    DiskFull {
        /// The file being written.
        path: String,
    },
    /// The blob alone is larger than the disk quota.
    #[error("a {size}-byte blob is larger than the disk quota (--max-disk {max})")]
    OverQuota {
        /// Bytes the blob needs.
        size: u64,
        /// The quota.
        max: ByteSize,
    },
}

/// Handle to a data dir's content store. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ContentStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    root: PathBuf,
    next_tmp: AtomicU64,
    max_disk: Option<ByteSize>,
    lru: Mutex<Lru>,
    /// Digests of evicted blobs, for [`ContentStore::evictions`].
    evicted: tokio::sync::broadcast::Sender<Digest>,
}

/// Keeps a blob from being evicted while it is read or transferred;
/// released on drop.
#[derive(Debug)]
pub struct BlobPin {
    inner: Arc<Inner>,
    digest: Digest,
}

impl Drop for BlobPin {
    fn drop(&mut self) {
        if let Ok(mut lru) = self.inner.lru.lock() {
            lru.unpin(&self.digest);
        }
    }
}

impl ContentStore {
    /// Opens (creating if needed) the store in `data_dir` and clears
    /// leftovers of downloads that a previous run did not finish.
    pub fn open(data_dir: &Path) -> io::Result<Self> {
        Self::open_with_quota(data_dir, None)
    }

    /// [`ContentStore::open`] with a disk quota for complete blobs: the
    /// least recently used ones that nobody uses are evicted to keep
    /// within it. The blobs already stored are ranked by modification time.
    pub fn open_with_quota(data_dir: &Path, max_disk: Option<ByteSize>) -> io::Result<Self> {
        for sub in ["blobs/sha256", "manifests/sha256", "tmp"] {
            std::fs::create_dir_all(data_dir.join(sub))?;
        }
        for entry in std::fs::read_dir(data_dir.join("tmp"))? {
            let _ = std::fs::remove_file(entry?.path());
        }
        let mut lru = Lru::default();
        let mut found = scan_blobs(&data_dir.join("blobs/sha256"))?;
        found.sort_by_key(|&(_, _, mtime)| mtime);
        for (digest, size, _) in found {
            lru.insert(digest, size);
        }
        metrics::describe_gauge!(
            STORE_BYTES,
            metrics::Unit::Bytes,
            "Bytes of complete blobs in the content store."
        );
        metrics::describe_counter!(
            STORE_EVICTIONS,
            "Complete blobs evicted to keep within --max-disk."
        );
        metrics::gauge!(STORE_BYTES).set(lru.total() as f64);
        let store = ContentStore {
            inner: Arc::new(Inner {
                root: data_dir.to_owned(),
                next_tmp: AtomicU64::new(0),
                max_disk,
                lru: Mutex::new(lru),
                evicted: tokio::sync::broadcast::channel(EVICTIONS_QUEUED).0,
            }),
        };
        if let Some(max) = max_disk {
            tracing::info!(used = store.used_bytes(), max = %max, "disk quota for complete blobs");
        }
        Ok(store)
    }

    /// The quota for complete blobs, if any.
    pub fn max_disk(&self) -> Option<ByteSize> {
        self.inner.max_disk
    }

    /// Bytes of the complete blobs in the store.
    pub fn used_bytes(&self) -> u64 {
        self.lru().total()
    }

    fn lru(&self) -> std::sync::MutexGuard<'_, Lru> {
        self.inner.lru.lock().expect("store lock")
    }

    /// The digests of blobs evicted from now on, as each eviction happens.
    pub fn evictions(&self) -> tokio::sync::broadcast::Receiver<Digest> {
        self.inner.evicted.subscribe()
    }

    /// Keeps blob `digest` from being evicted until the pin is dropped.
    /// Take it before looking the blob up: a blob found after pinning
    /// stays until the pin goes. The blob need not be complete yet.
    pub fn pin(&self, digest: &Digest) -> BlobPin {
        self.lru().pin(*digest);
        BlobPin {
            inner: self.inner.clone(),
            digest: *digest,
        }
    }

    /// Checks, before a download of `size` bytes starts, that it can be
    /// stored: with a quota, evicts least-recently-used unpinned blobs to
    /// make room (a blob larger than the whole quota is refused), and
    /// refuses a blob the file system has no space left for.
    pub async fn make_room_for(&self, size: u64) -> Result<(), StoreError> {
        if let Some(max) = self.inner.max_disk {
            if size > max.bytes() {
                return Err(StoreError::OverQuota { size, max });
            }
            self.make_room(size).await;
        }
        let root = self.inner.root.clone();
        let available = tokio::task::spawn_blocking(move || available_space(&root))
            .await
            .ok()
            .and_then(Result::ok);
        match available {
            Some(available) if available < size => Err(StoreError::NoSpace {
                needed: size,
                available,
                dir: self.inner.root.display().to_string(),
            }),
            _ => Ok(()),
        }
    }

    /// Evicts least-recently-used unpinned blobs until the complete blobs
    /// plus `incoming` bytes fit the quota (or nothing unpinned is left);
    /// returns the number evicted. Without a quota, does nothing.
    pub async fn make_room(&self, incoming: u64) -> usize {
        let Some(max) = self.inner.max_disk else {
            return 0;
        };
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.evict(max.bytes(), incoming))
            .await
            .unwrap_or(0)
    }

    /// [`ContentStore::make_room`]'s blocking part. Victims leave `blobs/`
    /// by a rename under the lock, so a concurrent pin either comes first
    /// (and the blob stays) or finds no blob.
    fn evict(&self, max: u64, incoming: u64) -> usize {
        let mut doomed = Vec::new();
        let mut lru = self.lru();
        for digest in lru.victims(max, incoming) {
            let path = self.blob_path(&digest);
            let tmp = self.temp_path("evicted");
            match std::fs::rename(&path, &tmp) {
                Ok(()) => doomed.push(tmp),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(%digest, error = %e, "cannot evict blob");
                    continue;
                }
            }
            let _ = std::fs::remove_file(self.piece_map_path(&digest));
            let size = lru.remove(&digest).unwrap_or(0);
            metrics::counter!(STORE_EVICTIONS).increment(1);
            tracing::info!(%digest, size, "evicted least recently used blob (disk quota)");
            // No receiver is no error: nobody needs to know.
            let _ = self.inner.evicted.send(digest);
        }
        let evicted = doomed.len();
        let (total, over) = (lru.total(), lru.total() + incoming > max);
        drop(lru);
        metrics::gauge!(STORE_BYTES).set(total as f64);
        if over {
            tracing::warn!(
                used = total,
                incoming,
                max,
                "over the disk quota: the remaining blobs are in use"
            );
        }
        for tmp in doomed {
            let _ = std::fs::remove_file(tmp);
        }
        evicted
    }

    /// The data dir.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// Where the complete blob `digest` lives (whether or not it exists).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        shard(&self.inner.root.join("blobs/sha256"), digest)
    }

    fn manifest_path(&self, digest: &Digest) -> PathBuf {
        shard(&self.inner.root.join("manifests/sha256"), digest)
    }

    /// The size of the complete blob, if the store has it; counts as a use
    /// of the blob for the quota's least-recently-used order.
    pub async fn blob_size(&self, digest: &Digest) -> Option<u64> {
        let size = tokio::fs::metadata(self.blob_path(digest))
            .await
            .ok()
            .filter(|m| m.is_file())
            .map(|m| m.len())?;
        self.lru().touch(digest);
        Some(size)
    }

    /// A fresh, unique path under `tmp/` for a download in progress.
    pub fn temp_path(&self, label: &str) -> PathBuf {
        let n = self.inner.next_tmp.fetch_add(1, Ordering::Relaxed);
        self.inner
            .root
            .join("tmp")
            .join(format!("{label}.{}.{n}", std::process::id()))
    }

    /// Moves a verified temporary file into place as blob `digest`.
    pub async fn commit_blob(&self, tmp: &Path, digest: &Digest) -> io::Result<PathBuf> {
        let dest = self.blob_path(digest);
        commit(tmp, &dest).await?;
        let size = tokio::fs::metadata(&dest).await?.len();
        let total = {
            let mut lru = self.lru();
            lru.insert(*digest, size);
            lru.total()
        };
        metrics::gauge!(STORE_BYTES).set(total as f64);
        Ok(dest)
    }

    /// Stores the piece map of a blob (before the blob itself is committed).
    pub async fn put_piece_map(&self, map: &PieceMap) -> io::Result<()> {
        let mut bytes = Vec::new();
        encode_frame(map, &mut bytes).map_err(io::Error::other)?;
        let tmp = self.temp_path("pieces");
        tokio::fs::write(&tmp, &bytes).await?;
        commit(&tmp, &self.piece_map_path(&map.digest)).await
    }

    /// The stored piece map of a blob, if any (validated on decode).
    pub fn get_piece_map(&self, digest: &Digest) -> Option<PieceMap> {
        let bytes = std::fs::read(self.piece_map_path(digest)).ok()?;
        match decode_frame::<PieceMap>(&bytes) {
            Ok(map) if map.digest == *digest => Some(map),
            _ => {
                tracing::warn!(%digest, "stored piece map is damaged; ignoring it");
                None
            }
        }
    }

    fn piece_map_path(&self, digest: &Digest) -> PathBuf {
        self.blob_path(digest).with_extension("pieces")
    }

    /// Stores a verified manifest with its media type.
    pub async fn put_manifest(
        &self,
        digest: &Digest,
        media_type: &str,
        bytes: &[u8],
    ) -> io::Result<()> {
        let dest = self.manifest_path(digest);
        let tmp = self.temp_path("manifest");
        tokio::fs::write(&tmp, bytes).await?;
        let tmp_type = self.temp_path("manifest-type");
        tokio::fs::write(&tmp_type, media_type).await?;
        // The type file goes first: the content file's presence means complete.
        commit(&tmp_type, &dest.with_extension("type")).await?;
        commit(&tmp, &dest).await
    }

    /// A stored manifest and its media type. The bytes are re-hashed, so a
    /// file damaged on disk is never served.
    pub async fn get_manifest(&self, digest: &Digest) -> Option<(String, Bytes)> {
        let path = self.manifest_path(digest);
        let bytes = tokio::fs::read(&path).await.ok()?;
        if Digest::of(&bytes) != *digest {
            tracing::warn!(%digest, "stored manifest is damaged; discarding it");
            let _ = tokio::fs::remove_file(&path).await;
            return None;
        }
        let media_type = tokio::fs::read_to_string(path.with_extension("type"))
            .await
            .ok()?;
        Some((media_type, Bytes::from(bytes)))
    }
}

fn shard(base: &Path, digest: &Digest) -> PathBuf {
    let hex = digest.hex();
    base.join(&hex[..2]).join(hex)
}

/// Every complete blob under `blobs/sha256`: digest, size, modification time.
fn scan_blobs(base: &Path) -> io::Result<Vec<(Digest, u64, std::time::SystemTime)>> {
    let mut out = Vec::new();
    for shard in std::fs::read_dir(base)? {
        let shard = shard?;
        if !shard.file_type()?.is_dir() {
            continue;
        }
        for entry in std::fs::read_dir(shard.path())? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(digest) = name
                .to_str()
                .and_then(|hex| Digest::parse(&format!("sha256:{hex}")).ok())
            else {
                continue; // piece maps and strangers
            };
            let meta = entry.metadata()?;
            if meta.is_file() {
                let mtime = meta.modified().unwrap_or(std::time::UNIX_EPOCH);
                out.push((digest, meta.len(), mtime));
            }
        }
    }
    Ok(out)
}

/// Whether a write failed because the file system (or the user's disk
/// quota) is full.
pub fn is_disk_full(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    )
}

/// Bytes an unprivileged writer may still use on the file system of `dir`.
fn available_space(dir: &Path) -> io::Result<u64> {
    let st = rustix::fs::statvfs(dir)?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

async fn commit(tmp: &Path, dest: &Path) -> io::Result<()> {
    if let Some(parent) = dest.parent() {
        tokio::fs::create_dir_all(parent).await?;
    }
    tokio::fs::rename(tmp, dest).await
}

#[cfg(test)]
mod tests;
