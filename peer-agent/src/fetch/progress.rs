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
    pub(super) hashes: Mutex<Vec<Digest>>,
    /// Pieces held, for downloads filled piece by piece (in any order);
    /// `None` for sequential downloads, which hold the pieces whose hash
    /// is known.
    pub(super) held: Mutex<Option<Bitfield>>,
    /// The file the download is written to, open for reading pieces.
    file: Mutex<Option<Arc<std::fs::File>>>,
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

    pub(super) fn new(digest: Digest) -> Self {
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

    pub(super) fn set_file(&self, file: Arc<std::fs::File>) {
        *self.file.lock().expect("lock") = Some(file);
    }
}
