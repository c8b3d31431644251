//! Blob data files, read and written around the page cache.
//!
//! A node's agent writes every byte of every image it pulls, and the bytes
//! it reads back (pieces for peers, chunks for the local runtime) are the
//! ones it has just written. Through the page cache, each written byte
//! costs a copy into a freshly allocated cache page and stays there as a
//! second copy of memory the node's runtime does not need (containerd
//! keeps its own). Block-aligned reads and writes go straight between the
//! agent's buffers and the disk instead (`O_DIRECT`): the copy is the
//! device's, and the page cache is left to the workloads. On the 2-core
//! bench machine, buffered writes of the 50-node fanout (6.4 GiB) took a
//! fifth of all CPU time (`docs/BENCHMARKS.md`).
//!
//! A blob's last partial block is written through the ordinary descriptor
//! (Linux keeps the two views of the file coherent); reads that start
//! mid-block are widened to whole blocks. Files written sequentially
//! through the page cache are read through it too ([`BlobFile::buffered`]).
//! File systems that refuse `O_DIRECT` (older tmpfs, some FUSE) get
//! buffered I/O throughout.

use bytes::Bytes;
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

use crate::buffers::{ALIGN, shared};

/// A blob's data file: a buffered descriptor, and a direct one where the
/// file system allows it.
#[derive(Debug)]
pub struct BlobFile {
    file: std::fs::File,
    direct: Option<std::fs::File>,
}

impl BlobFile {
    /// Wraps `file` (open at `path`), opening `path` once more for direct
    /// I/O, for writing too if `write`. For files whose every aligned
    /// write goes through [`BlobFile::write_chunks_at`]: a direct read of
    /// a range still dirty in the page cache waits for its writeback.
    pub fn with_direct(file: std::fs::File, path: &Path, write: bool) -> Self {
        let direct = std::fs::OpenOptions::new()
            .read(true)
            .write(write)
            .custom_flags(rustix::fs::OFlags::DIRECT.bits() as i32)
            .open(path)
            .inspect_err(|e| {
                tracing::debug!(path = %path.display(), error = %e, "no direct I/O; using the page cache");
            })
            .ok();
        BlobFile { file, direct }
    }

    /// Wraps `file` for I/O through the page cache only: files written
    /// sequentially through it (still cached for a pull again, and read
    /// ahead at the disk's full speed).
    pub fn buffered(file: std::fs::File) -> Self {
        BlobFile { file, direct: None }
    }

    /// Opens `path`, written by [`BlobFile::write_chunks_at`], for
    /// reading directly (see [`BlobFile::read_at`]).
    pub fn open_direct(path: &Path) -> io::Result<Self> {
        Ok(Self::with_direct(std::fs::File::open(path)?, path, false))
    }

    /// Whether aligned I/O bypasses the page cache.
    pub fn is_direct(&self) -> bool {
        self.direct.is_some()
    }

    /// Writes `chunks`, in order, at `offset`: the block-aligned part
    /// directly from an aligned buffer (one copy, of memory that stays in
    /// the CPU's caches), the rest through the page cache. Blocking.
    pub fn write_chunks_at(&self, chunks: &[Bytes], offset: u64) -> io::Result<()> {
        let total: usize = chunks.iter().map(Bytes::len).sum();
        let direct_len = match &self.direct {
            Some(_) if offset.is_multiple_of(ALIGN as u64) => total - total % ALIGN,
            _ => 0,
        };
        if direct_len == 0 {
            return write_chunks_at(&self.file, chunks, offset);
        }
        let direct = self.direct.as_ref().expect("checked above");
        let pool = shared();
        let mut buf = pool.take(direct_len);
        let mut at = 0;
        let mut rest: Vec<Bytes> = Vec::new();
        for c in chunks {
            let n = c.len().min(direct_len - at);
            buf[at..at + n].copy_from_slice(&c[..n]);
            at += n;
            if n < c.len() {
                rest.push(c.slice(n..));
            }
        }
        let written = direct.write_all_at(&buf, offset);
        drop(pool.lend(buf));
        match written {
            Ok(()) if rest.is_empty() => Ok(()),
            Ok(()) => write_chunks_at(&self.file, &rest, offset + direct_len as u64),
            Err(e) if refused(&e) => write_chunks_at(&self.file, chunks, offset),
            Err(e) => Err(e),
        }
    }

    /// Reads `len` bytes at `offset`: directly where the file system
    /// allows it (the read is widened to whole blocks and cut back), else
    /// through the page cache. A direct file is never read through the
    /// page cache: a buffered read reads ahead, and a page read ahead
    /// from a hole while a direct write fills it can keep the hole's
    /// zeros. Fails with `UnexpectedEof` if the file ends first.
    /// Blocking.
    pub fn read_at(&self, offset: u64, len: usize) -> io::Result<Bytes> {
        let pool = shared();
        let buffered = || {
            let mut buf = pool.take(len);
            self.file.read_exact_at(&mut buf, offset)?;
            Ok(pool.lend(buf))
        };
        let Some(direct) = self.direct.as_ref().filter(|_| len > 0) else {
            return buffered();
        };
        let skip = (offset % ALIGN as u64) as usize;
        let start = offset - skip as u64;
        let want = skip + len;
        let mut buf = pool.take(want.next_multiple_of(ALIGN));
        let mut got = 0;
        while got < want {
            match direct.read_at(&mut buf[got..], start + got as u64) {
                Ok(0) => break,
                // A short read ends at the end of the file, so the next
                // one (which finds it) need not be aligned.
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if got == 0 && refused(&e) => return buffered(),
                Err(e) => return Err(e),
            }
        }
        if got < want {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("file ended at byte {}", start + got as u64),
            ));
        }
        Ok(pool.lend(buf).slice(skip..want))
    }
}

/// Whether a direct read or write failed only because the file system,
/// having opened the file for direct I/O, takes no such request (an
/// alignment it does not support): the page cache serves it instead, the
/// one case where a direct file is read through it.
fn refused(e: &io::Error) -> bool {
    e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error())
}

/// Writes `chunks`, in order, into `file` at `offset` with one `pwritev`
/// (more only if the kernel writes part). One call per piece rather than
/// one per transport chunk: chunks end mid-block, and each partial-block
/// write into a hole makes the file system zero the rest of the block
/// first. Blocking.
pub fn write_chunks_at(file: &std::fs::File, chunks: &[Bytes], offset: u64) -> io::Result<()> {
    let mut slices: Vec<io::IoSlice<'_>> = chunks
        .iter()
        .filter(|c| !c.is_empty())
        .map(|c| io::IoSlice::new(c))
        .collect();
    let mut rest = &mut slices[..];
    let mut at = offset;
    while !rest.is_empty() {
        // The kernel takes at most IOV_MAX (1024) slices per call.
        let n = rest.len().min(1024);
        let written = match rustix::io::pwritev(file, &rest[..n], at) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(w) => w,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        };
        at += written as u64;
        io::IoSlice::advance_slices(&mut rest, written);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    /// Aligned and unaligned writes and reads, split across chunks at
    /// odd places, read back identically through either descriptor.
    #[test]
    fn aligned_and_unaligned_io_agree() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("data");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .expect("open");
        let size = 3 * 65536 + 1000;
        file.set_len(size as u64).expect("set_len");
        let blob = BlobFile::with_direct(file, &path, true);
        let want = pattern(size, 7);
        // Piece 1, then the short last piece (aligned offset, unaligned
        // length), then piece 0: chunks cut at odd lengths.
        for (start, end) in [(65536, 131072), (196608, size), (0, 65536)] {
            let bytes = Bytes::copy_from_slice(&want[start..end]);
            let cut = (end - start) / 3 + 17;
            let chunks = [
                bytes.slice(..cut),
                bytes.slice(cut..cut),
                bytes.slice(cut..),
            ];
            blob.write_chunks_at(&chunks, start as u64).expect("write");
        }
        // The unaligned write: piece 2, at an unaligned offset.
        let bytes = Bytes::copy_from_slice(&want[131072..196608]);
        blob.write_chunks_at(&[bytes.slice(..100)], 131072)
            .expect("write");
        blob.write_chunks_at(&[bytes.slice(100..)], 131172)
            .expect("write");
        let direct = BlobFile::open_direct(&path).expect("reopen");
        let buffered = BlobFile::buffered(std::fs::File::open(&path).expect("reopen"));
        assert_eq!(direct.is_direct(), blob.is_direct());
        assert!(!buffered.is_direct());
        for reader in [&direct, &buffered, &blob] {
            for (offset, len) in [
                (0, size),
                (4096, 8192),
                (65536, 70000),
                (100, 5000),
                (196608, 1000),
            ] {
                let got = reader.read_at(offset as u64, len).expect("read");
                assert_eq!(&got[..], &want[offset..offset + len], "{offset}+{len}");
            }
            let past = reader.read_at(196608, 2000).expect_err("past the end");
            assert_eq!(past.kind(), io::ErrorKind::UnexpectedEof);
        }
        assert_eq!(std::fs::read(&path).expect("read"), want);
    }
}
