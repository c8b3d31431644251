//! Reused read buffers. Reading a piece or a chunk of a blob into a fresh
//! allocation costs a page fault and a page clearing per 4 KiB (allocations
//! this large come from `mmap`); buffers lent out as [`Bytes`] come back to
//! a pool when the transport drops the last view of them.
//!
//! Buffers come in size classes (powers of two from [`MIN_CLASS`]) so that
//! reads of nearby lengths share them: a pool that kept buffers of every
//! length it was asked for filled up with the wrong ones and allocated
//! (and cleared) fresh 4 MiB blob chunks all the time.

use std::collections::VecDeque;
use std::sync::{Arc, LazyLock, Mutex};

use bytes::Bytes;

/// Capacity the [`shared`] pool keeps for reuse.
const SHARED_POOL_BYTES: usize = 64 << 20;

/// Smallest buffer capacity handed out.
const MIN_CLASS: usize = 64 << 10;

/// Alignment of every buffer handed out: the block size direct I/O needs
/// of memory addresses (see [`crate::blob_file`]).
pub(crate) const ALIGN: usize = 4096;

/// The process's pool: piece reads for peers and blob reads for clients.
pub(crate) fn shared() -> &'static Arc<BufferPool> {
    static POOL: LazyLock<Arc<BufferPool>> =
        LazyLock::new(|| Arc::new(BufferPool::new(SHARED_POOL_BYTES)));
    &POOL
}

/// The capacity of the buffers that serve requests of `len` bytes.
fn class_of(len: usize) -> usize {
    len.max(MIN_CLASS).next_power_of_two()
}

/// Buffers that go back to the pool when the last [`Bytes`] view of them
/// is dropped, up to `max_bytes` of capacity held; past that, the buffers
/// returned longest ago are freed.
pub(crate) struct BufferPool {
    free: Mutex<Free>,
    max_bytes: usize,
}

#[derive(Default)]
struct Free {
    /// Oldest returned first.
    bufs: VecDeque<Vec<u8>>,
    /// Capacity of `bufs`, summed.
    bytes: usize,
}

impl BufferPool {
    /// An empty pool keeping at most `max_bytes` of buffers.
    pub(crate) fn new(max_bytes: usize) -> Self {
        BufferPool {
            free: Mutex::default(),
            max_bytes,
        }
    }

    /// A buffer of `len` bytes (contents unspecified: the caller fills
    /// it): the kept buffer of its size class returned last (the one most
    /// likely still in the CPU's caches), else a fresh one, zeroed by the
    /// allocator (untouched pages, no `memset`). Kept buffers are handed
    /// out without clearing them again.
    pub(crate) fn take(&self, len: usize) -> PoolBuf {
        let class = class_of(len);
        let reused = {
            let mut free = self.free.lock().expect("lock");
            let fit = free.bufs.iter().rposition(|b| b.len() == class + ALIGN);
            let buf = fit.and_then(|i| free.bufs.remove(i));
            if buf.is_some() {
                free.bytes -= class + ALIGN;
            }
            buf
        };
        // One block more than the class, so that an aligned start fits.
        let buf = reused.unwrap_or_else(|| vec![0; class + ALIGN]);
        let start = buf.as_ptr().align_offset(ALIGN);
        PoolBuf { buf, start, len }
    }

    /// `buf` as [`Bytes`] that return it to this pool when dropped.
    pub(crate) fn lend(self: &Arc<Self>, buf: PoolBuf) -> Bytes {
        Bytes::from_owner(Pooled {
            buf,
            pool: self.clone(),
        })
    }

    fn give(&self, buf: Vec<u8>) {
        if buf.len() > self.max_bytes {
            return;
        }
        let mut free = self.free.lock().expect("lock");
        free.bytes += buf.len();
        free.bufs.push_back(buf);
        while free.bytes > self.max_bytes {
            let Some(old) = free.bufs.pop_front() else {
                break;
            };
            free.bytes -= old.len();
        }
    }
}

/// A buffer from [`BufferPool::take`]: `len` bytes at the first
/// [`ALIGN`]-aligned address of an initialised buffer of its size class,
/// so that handing it out again for another length never clears it.
pub(crate) struct PoolBuf {
    buf: Vec<u8>,
    start: usize,
    len: usize,
}

impl std::ops::Deref for PoolBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.buf[self.start..self.start + self.len]
    }
}

impl std::ops::DerefMut for PoolBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..self.start + self.len]
    }
}

/// A buffer lent out as [`Bytes`].
struct Pooled {
    buf: PoolBuf,
    pool: Arc<BufferPool>,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        self.pool.give(std::mem::take(&mut self.buf.buf));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A buffer comes back when its last view is dropped and is lent
    /// again (same allocation) without being cleared.
    #[test]
    fn buffers_return_when_the_last_view_drops() {
        let pool = Arc::new(BufferPool::new(1 << 20));
        let mut buf = pool.take(1000);
        let ptr = buf.as_ptr();
        buf[996..].copy_from_slice(b"kept");
        let bytes = pool.lend(buf);
        let view = bytes.slice(10..20);
        drop(bytes);
        assert_eq!(pool.free.lock().unwrap().bufs.len(), 0, "a view is alive");
        drop(view);
        assert_eq!(pool.free.lock().unwrap().bytes, MIN_CLASS + ALIGN);
        let again = pool.take(800);
        assert_eq!((again.as_ptr(), again.len()), (ptr, 800));
        // Lent for a shorter length and then a longer one again, it is
        // not cleared: the bytes past the shorter length are still there.
        drop(pool.lend(again));
        let larger = pool.take(1000);
        assert_eq!((larger.as_ptr(), &larger[996..]), (ptr, &b"kept"[..]));
    }

    /// Lengths of one size class share buffers; a buffer of another class
    /// is left for a request of its own class.
    #[test]
    fn buffers_serve_their_size_class() {
        let pool = Arc::new(BufferPool::new(16 << 20));
        let small = pool.take(100);
        let small_ptr = small.as_ptr();
        drop(pool.lend(small));
        let big = pool.take(200 << 10);
        assert_ne!(big.as_ptr(), small_ptr);
        let big_ptr = big.as_ptr();
        drop(pool.lend(big));
        // 256 KiB is the class of 200 KiB: the same buffer.
        assert_eq!(pool.take(256 << 10).as_ptr(), big_ptr);
        assert_eq!(pool.take(50).as_ptr(), small_ptr);
        // Every buffer starts on a block boundary, as direct I/O needs.
        for len in [1, 4096, 70_000, 1 << 20] {
            assert!(pool.take(len).as_ptr().addr().is_multiple_of(ALIGN));
        }
        assert_eq!(class_of(4 << 20), 4 << 20);
        assert_eq!(class_of((4 << 20) + 1), 8 << 20);
    }

    /// Over the cap, the buffers returned longest ago are freed and the
    /// one returned last is lent first.
    #[test]
    fn the_oldest_buffers_go_past_the_cap() {
        let pool = Arc::new(BufferPool::new(2 * (MIN_CLASS + ALIGN)));
        let bufs: Vec<PoolBuf> = (0..3).map(|_| pool.take(10)).collect();
        let ptrs: Vec<*const u8> = bufs.iter().map(|b| b.as_ptr()).collect();
        for b in bufs {
            drop(pool.lend(b));
        }
        assert_eq!(pool.free.lock().unwrap().bytes, 2 * (MIN_CLASS + ALIGN));
        let last = pool.take(10);
        let before = pool.take(10);
        assert_eq!((last.as_ptr(), before.as_ptr()), (ptrs[2], ptrs[1]));
        assert!(pool.free.lock().unwrap().bufs.is_empty());
        // A buffer larger than the whole cap is not kept at all.
        pool.give(vec![0; 4 * MIN_CLASS]);
        assert_eq!(pool.free.lock().unwrap().bytes, 0);
    }
}
