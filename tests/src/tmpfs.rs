//! A small tmpfs of its own for a test that needs a disk to fill up.
//!
//! Mounting needs root (CI and the test machine run the tests as root).
//! [`Tmpfs`] unmounts on drop, also when the test fails; the unmount is
//! lazy (`MNT_DETACH`), so a process still holding a file there does not
//! keep the mount alive in the test's namespace.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use rustix::mount::{MountFlags, UnmountFlags, mount, unmount};
use tempfile::TempDir;

/// A mounted tmpfs, unmounted on drop.
pub struct Tmpfs {
    mountpoint: PathBuf,
    _dir: TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (a `size=` mount option: `16m`, `1g`) on a
    /// fresh temporary directory. Panics, saying why, if it cannot.
    pub fn mount(size: &str) -> Tmpfs {
        let dir = crate::tmp::dir("tmpfs-");
        let mountpoint = dir.path().join("mnt");
        std::fs::create_dir(&mountpoint).expect("create mount point");
        let data = std::ffi::CString::new(format!("size={size},mode=0755")).expect("options");
        if let Err(e) = mount(
            "tmpfs",
            &mountpoint,
            "tmpfs",
            MountFlags::NOSUID | MountFlags::NODEV,
            data.as_c_str(),
        ) {
            panic!(
                "cannot mount a tmpfs on {} ({e}): this test needs root",
                mountpoint.display()
            );
        }
        Tmpfs {
            mountpoint,
            _dir: dir,
        }
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        &self.mountpoint
    }

    /// Fills the file system up with file `name`, then gives `leave`
    /// bytes back: afterwards about `leave` bytes are free. Returns the
    /// file's path.
    pub fn fill(&self, name: &str, leave: u64) -> PathBuf {
        let path = self.mountpoint.join(name);
        let mut file = std::fs::File::create(&path).expect("create filler");
        let chunk = vec![0xa5u8; 64 * 1024];
        let mut written = 0u64;
        loop {
            match file.write(&chunk) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => panic!("fill {}: {e}", path.display()),
            }
        }
        file.set_len(written.saturating_sub(leave))
            .expect("shrink filler");
        file.sync_all().expect("sync filler");
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        if let Err(e) = unmount(&self.mountpoint, UnmountFlags::DETACH) {
            eprintln!("unmount {}: {e}", self.mountpoint.display());
        }
    }
}
