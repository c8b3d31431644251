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

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use shoal_proto::{Digest, PieceMap, decode_frame, encode_frame};

/// Handle to a data dir's content store. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ContentStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    root: PathBuf,
    next_tmp: AtomicU64,
}

impl ContentStore {
    /// Opens (creating if needed) the store in `data_dir` and clears
    /// leftovers of downloads that a previous run did not finish.
    pub fn open(data_dir: &Path) -> io::Result<Self> {
        for sub in ["blobs/sha256", "manifests/sha256", "tmp"] {
            std::fs::create_dir_all(data_dir.join(sub))?;
        }
        for entry in std::fs::read_dir(data_dir.join("tmp"))? {
            let _ = std::fs::remove_file(entry?.path());
        }
        Ok(ContentStore {
            inner: Arc::new(Inner {
                root: data_dir.to_owned(),
                next_tmp: AtomicU64::new(0),
            }),
        })
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

    /// The size of the complete blob, if the store has it.
    pub async fn blob_size(&self, digest: &Digest) -> Option<u64> {
        tokio::fs::metadata(self.blob_path(digest))
            .await
            .ok()
            .filter(|m| m.is_file())
            .map(|m| m.len())
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

async fn commit(tmp: &Path, dest: &Path) -> io::Result<()> {
    if let Some(parent) = dest.parent() {
        tokio::fs::create_dir_all(parent).await?;
    }
    tokio::fs::rename(tmp, dest).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn manifests_round_trip_and_damage_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        let body = b"{\"schemaVersion\":2}";
        let d = Digest::of(body);
        assert!(store.get_manifest(&d).await.is_none());
        store.put_manifest(&d, "application/x", body).await.unwrap();
        let (mt, got) = store.get_manifest(&d).await.unwrap();
        assert_eq!((mt.as_str(), &got[..]), ("application/x", &body[..]));
        std::fs::write(store.manifest_path(&d), b"tampered").unwrap();
        assert!(store.get_manifest(&d).await.is_none());
    }

    #[tokio::test]
    async fn tmp_is_cleared_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        let t = store.temp_path("x");
        std::fs::write(&t, b"partial").unwrap();
        drop(store);
        ContentStore::open(dir.path()).unwrap();
        assert!(!t.exists());
    }
}
