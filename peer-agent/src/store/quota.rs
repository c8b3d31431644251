//! The disk quota's policy: least-recently-used eviction of complete blobs
//! that nobody is using.
//!
//! [`Lru`] is plain data with no I/O and no clock (STYLE.md 1): "recent" is
//! a logical tick that every insert and access advances, so the policy is
//! deterministic and unit-tested below. The store ([`super::ContentStore`])
//! keeps one behind a mutex, asks it for [`Lru::victims`] before a download
//! starts and periodically ([`spawn_enforcer`]), and removes the victims'
//! files while still holding the lock, so that a blob pinned by a reader
//! or a transfer is never chosen.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use shoal_proto::Digest;
use tokio_util::sync::CancellationToken;

use super::ContentStore;

/// How often the quota is enforced besides before each download.
pub const ENFORCE_INTERVAL: Duration = Duration::from_secs(30);

/// One complete blob as the policy sees it.
#[derive(Clone, Copy, Debug)]
struct Entry {
    size: u64,
    /// Tick of the last insert or access.
    last: u64,
}

/// Complete blobs by recency of use, their total size, and the pins of
/// blobs in use (see the module documentation).
#[derive(Debug, Default)]
pub struct Lru {
    entries: HashMap<Digest, Entry>,
    /// `(last, digest)` of every entry, oldest first.
    order: BTreeSet<(u64, Digest)>,
    /// Readers and transfers per blob; a pinned blob is never a victim.
    /// Pins may name blobs not (yet) in `entries`: a download in progress.
    pins: HashMap<Digest, u32>,
    tick: u64,
    total: u64,
}

impl Lru {
    /// Adds (or replaces) a complete blob of `size` bytes as the most
    /// recently used.
    pub fn insert(&mut self, digest: Digest, size: u64) {
        self.remove(&digest);
        self.tick += 1;
        self.entries.insert(
            digest,
            Entry {
                size,
                last: self.tick,
            },
        );
        self.order.insert((self.tick, digest));
        self.total += size;
    }

    /// Marks `digest` as just used; false if it is not tracked.
    pub fn touch(&mut self, digest: &Digest) -> bool {
        let Some(e) = self.entries.get_mut(digest) else {
            return false;
        };
        self.order.remove(&(e.last, *digest));
        self.tick += 1;
        e.last = self.tick;
        self.order.insert((e.last, *digest));
        true
    }

    /// Forgets `digest`; returns its size if it was tracked.
    pub fn remove(&mut self, digest: &Digest) -> Option<u64> {
        let e = self.entries.remove(digest)?;
        self.order.remove(&(e.last, *digest));
        self.total -= e.size;
        Some(e.size)
    }

    /// Takes a pin on `digest` (a reader or transfer uses it).
    pub fn pin(&mut self, digest: Digest) {
        *self.pins.entry(digest).or_default() += 1;
    }

    /// Releases a pin taken with [`Lru::pin`].
    pub fn unpin(&mut self, digest: &Digest) {
        if let Some(n) = self.pins.get_mut(digest) {
            *n -= 1;
            if *n == 0 {
                self.pins.remove(digest);
            }
        }
    }

    /// Whether a reader or transfer uses `digest`.
    pub fn is_pinned(&self, digest: &Digest) -> bool {
        self.pins.contains_key(digest)
    }

    /// Bytes of the complete blobs tracked.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Blobs tracked.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no blob is tracked.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The unpinned blobs to evict, least recently used first, so that the
    /// rest plus `incoming` bytes fit in `max`: as few as possible, and all
    /// unpinned ones if even that is not enough. The caller removes them
    /// (with [`Lru::remove`]).
    pub fn victims(&self, max: u64, incoming: u64) -> Vec<Digest> {
        let mut over = (self.total + incoming).saturating_sub(max);
        let mut out = Vec::new();
        for (_, digest) in &self.order {
            if over == 0 {
                break;
            }
            if self.is_pinned(digest) {
                continue;
            }
            let size = self.entries[digest].size;
            over = over.saturating_sub(size);
            out.push(*digest);
        }
        out
    }
}

/// Enforces `store`'s quota every [`ENFORCE_INTERVAL`] until `shutdown`
/// (a no-op for a store without one).
pub fn spawn_enforcer(store: ContentStore, shutdown: CancellationToken) {
    if store.max_disk().is_none() {
        return;
    }
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(ENFORCE_INTERVAL) => {}
            }
            store.make_room(0).await;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: u8) -> Digest {
        Digest::from_bytes([n; 32])
    }

    fn lru(sizes: &[(u8, u64)]) -> Lru {
        let mut l = Lru::default();
        for &(n, size) in sizes {
            l.insert(d(n), size);
        }
        l
    }

    #[test]
    fn evicts_least_recently_used_first_and_only_as_much_as_needed() {
        let mut l = lru(&[(1, 10), (2, 10), (3, 10)]);
        assert_eq!(l.total(), 30);
        assert!(l.victims(30, 0).is_empty());
        assert_eq!(l.victims(25, 0), vec![d(1)]);
        assert_eq!(l.victims(30, 15), vec![d(1), d(2)]);
        // An access makes a blob the most recent.
        assert!(l.touch(&d(1)));
        assert_eq!(l.victims(25, 0), vec![d(2)]);
        assert_eq!(l.victims(10, 0), vec![d(2), d(3)]);
        assert!(!l.touch(&d(9)));
    }

    #[test]
    fn pinned_blobs_are_never_victims() {
        let mut l = lru(&[(1, 10), (2, 10), (3, 10)]);
        l.pin(d(1));
        l.pin(d(1));
        assert_eq!(l.victims(25, 0), vec![d(2)]);
        l.unpin(&d(1));
        assert!(l.is_pinned(&d(1)));
        assert_eq!(l.victims(0, 0), vec![d(2), d(3)]);
        l.unpin(&d(1));
        assert!(!l.is_pinned(&d(1)));
        assert_eq!(l.victims(25, 0), vec![d(1)]);
        // A pin may precede the blob (a download in progress).
        l.pin(d(4));
        l.insert(d(4), 5);
        assert_eq!(l.victims(0, 0), vec![d(1), d(2), d(3)]);
    }

    #[test]
    fn everything_unpinned_goes_when_nothing_else_fits() {
        let mut l = lru(&[(1, 10), (2, 10)]);
        l.pin(d(2));
        assert_eq!(l.victims(5, 100), vec![d(1)]);
    }

    #[test]
    fn remove_and_reinsert_keep_the_total() {
        let mut l = lru(&[(1, 10), (2, 20)]);
        assert_eq!(l.remove(&d(1)), Some(10));
        assert_eq!(l.remove(&d(1)), None);
        assert_eq!((l.total(), l.len()), (20, 1));
        l.insert(d(2), 7);
        assert_eq!((l.total(), l.len()), (7, 1));
        assert_eq!(l.victims(0, 0), vec![d(2)]);
    }
}
