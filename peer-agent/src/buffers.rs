//! Reused read buffers. Reading a piece or a chunk of a blob into a fresh
//! allocation costs a page fault and a page clearing per 4 KiB (allocations
//! this large come from `mmap`); buffers lent out as [`Bytes`] come back to
//! a pool when the transport drops the last view of them.

use std::sync::{Arc, LazyLock, Mutex};

use bytes::Bytes;

/// Capacity the [`shared`] pool keeps for reuse.
const SHARED_POOL_BYTES: usize = 64 << 20;

/// The process's pool: piece reads for peers and blob reads for clients.
pub(crate) fn shared() -> &'static Arc<BufferPool> {
    static POOL: LazyLock<Arc<BufferPool>> =
        LazyLock::new(|| Arc::new(BufferPool::new(SHARED_POOL_BYTES)));
    &POOL
}

/// Buffers that go back to the pool when the last [`Bytes`] view of them
/// is dropped, up to `max_bytes` of capacity held.
pub(crate) struct BufferPool {
    free: Mutex<Free>,
    max_bytes: usize,
}

#[derive(Default)]
struct Free {
    bufs: Vec<Vec<u8>>,
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
    /// it), preferably the smallest kept one large enough, so that piece
    /// reads do not take the buffers sized for blob chunks. A kept buffer
    /// is handed out without clearing it again; a fresh one comes zeroed
    /// from the allocator (untouched pages, no `memset`).
    pub(crate) fn take(&self, len: usize) -> PoolBuf {
        let reused = {
            let mut free = self.free.lock().expect("lock");
            let fit = (free.bufs.iter().enumerate())
                .filter(|(_, b)| b.capacity() >= len)
                .min_by_key(|(_, b)| b.capacity())
                .map(|(i, _)| i);
            let buf = fit.map(|i| free.bufs.swap_remove(i));
            if let Some(b) = &buf {
                free.bytes -= b.capacity();
            }
            buf
        };
        let buf = reused.map_or_else(
            || vec![0; len],
            |mut b| {
                // Its whole capacity was initialised when it was created,
                // so this grows nothing and writes nothing.
                b.resize(b.capacity(), 0);
                b
            },
        );
        PoolBuf { buf, len }
    }

    /// `buf` as [`Bytes`] that return it to this pool when dropped.
    pub(crate) fn lend(self: &Arc<Self>, buf: PoolBuf) -> Bytes {
        Bytes::from_owner(Pooled {
            buf,
            pool: self.clone(),
        })
    }

    fn give(&self, buf: Vec<u8>) {
        let mut free = self.free.lock().expect("lock");
        if free.bytes + buf.capacity() <= self.max_bytes {
            free.bytes += buf.capacity();
            free.bufs.push(buf);
        }
    }
}

/// A buffer from [`BufferPool::take`]: `len` bytes in front of an
/// allocation whose whole capacity is initialised, so that handing it out
/// again for another length never clears it.
pub(crate) struct PoolBuf {
    buf: Vec<u8>,
    len: usize,
}

impl std::ops::Deref for PoolBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl std::ops::DerefMut for PoolBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.buf[..self.len]
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
    /// again (same allocation), and the pool keeps no more than its cap.
    #[test]
    fn buffers_return_when_the_last_view_drops_up_to_the_cap() {
        let pool = Arc::new(BufferPool::new(1024));
        let mut buf = pool.take(1000);
        let ptr = buf.as_ptr();
        buf[996..].copy_from_slice(b"kept");
        let bytes = pool.lend(buf);
        let view = bytes.slice(10..20);
        drop(bytes);
        assert_eq!(pool.free.lock().unwrap().bufs.len(), 0, "a view is alive");
        drop(view);
        assert_eq!(pool.free.lock().unwrap().bytes, 1000);
        let again = pool.take(800);
        assert_eq!((again.as_ptr(), again.len()), (ptr, 800));
        // Lent for a shorter length and then a longer one again, it is
        // not cleared: the bytes past the shorter length are still there.
        drop(pool.lend(again));
        let larger = pool.take(1000);
        assert_eq!((larger.as_ptr(), &larger[996..]), (ptr, &b"kept"[..]));
        drop(larger);
        // Over the cap: dropped, not kept.
        pool.give(vec![0; 2000]);
        assert_eq!(pool.free.lock().unwrap().bytes, 0);
    }

    /// A kept buffer too small for the request is left for a later one.
    #[test]
    fn a_kept_buffer_is_reused_only_if_large_enough() {
        let pool = Arc::new(BufferPool::new(1 << 20));
        let small = pool.take(100);
        let small_ptr = small.as_ptr();
        drop(pool.lend(small));
        let big = pool.take(1000);
        assert_ne!(big.as_ptr(), small_ptr);
        let again = pool.take(50);
        assert_eq!(again.as_ptr(), small_ptr);
    }
}
