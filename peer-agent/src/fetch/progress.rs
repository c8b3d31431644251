//! [`PieceProgress`]: the piece hashes and held pieces of a download in
//! progress, shared with the peers that serve its pieces before it completes.

use std::sync::{Arc, Mutex};

use shoal_proto::{Bitfield, Digest, PieceMap};

/// Piece hashes of a download in progress, computed as bytes pass, so its
/// pieces can be served to peers before the whole blob is in.
#[derive(Debug)]
pub struct PieceProgress {
    digest: Digest,
    /// Blob size and piece size, once the source told the size.
    pub(super) layout: Mutex<Option<(u64, u32)>>,
    /// Hashes of the pieces known so far, in order; changed only through
    /// [`PieceProgress::update_hashes`].
    hashes: Mutex<Vec<Digest>>,
    /// The piece map of `hashes`, built on first use after each change:
    /// every piece served from a running download asks for it.
    map: Mutex<Option<Arc<PieceMap>>>,
    /// Pieces held, for downloads filled piece by piece (in any order);
    /// `None` for sequential downloads, which hold the pieces whose hash
    /// is known.
    pub(super) held: Mutex<Option<Bitfield>>,
    /// The file the download is written to, open for reading pieces.
    file: Mutex<Option<Arc<crate::blob_file::BlobFile>>>,
    pub(super) grew: tokio::sync::Notify,
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
    pub fn partial_map(&self) -> Option<Arc<PieceMap>> {
        let (size, piece_size) = (*self.layout.lock().expect("lock"))?;
        // The hashes stay locked until the map built from them is cached,
        // so a change in between cannot leave a stale map behind.
        let hashes = self.hashes.lock().expect("lock");
        let mut cached = self.map.lock().expect("lock");
        if let Some(map) = &*cached {
            return Some(map.clone());
        }
        let map = Arc::new(PieceMap {
            digest: self.digest,
            size,
            piece_size,
            pieces: hashes.clone(),
        });
        *cached = Some(map.clone());
        Some(map)
    }

    /// Changes the known hashes with `change`, which says whether it
    /// changed them; then readers see the new map and waiters wake up.
    pub(super) fn update_hashes(&self, change: impl FnOnce(&mut Vec<Digest>) -> bool) {
        let mut hashes = self.hashes.lock().expect("lock");
        if change(&mut hashes) {
            *self.map.lock().expect("lock") = None;
            drop(hashes);
            self.grew.notify_waiters();
        }
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

    pub(super) fn new(digest: Digest) -> Self {
        PieceProgress {
            digest,
            layout: Mutex::default(),
            hashes: Mutex::default(),
            map: Mutex::default(),
            held: Mutex::default(),
            file: Mutex::default(),
            grew: tokio::sync::Notify::new(),
        }
    }

    /// The file the download is being written to, open for reading (it
    /// stays readable once the download is renamed into the store).
    pub fn file(&self) -> Option<Arc<crate::blob_file::BlobFile>> {
        self.file.lock().expect("lock").clone()
    }

    pub(super) fn set_file(&self, file: Arc<crate::blob_file::BlobFile>) {
        *self.file.lock().expect("lock") = Some(file);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Serving reads the same map until the hashes change, then the new
    /// one: never a stale map.
    #[test]
    fn the_map_is_built_once_per_change() {
        let p = PieceProgress::new(Digest::of(b"blob"));
        assert!(p.partial_map().is_none(), "no map before the layout");
        *p.layout.lock().unwrap() = Some((3 * 1024, 1024));
        let first = p.partial_map().unwrap();
        assert!(first.pieces.is_empty());
        assert!(Arc::ptr_eq(&first, &p.partial_map().unwrap()));
        p.update_hashes(|h| {
            h.push(Digest::of(b"0"));
            true
        });
        let second = p.partial_map().unwrap();
        assert_eq!(second.pieces, [Digest::of(b"0")]);
        p.update_hashes(|_| false);
        assert!(Arc::ptr_eq(&second, &p.partial_map().unwrap()));
    }
}
