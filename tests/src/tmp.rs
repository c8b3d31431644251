//! Temporary directories for processes and clients.
//!
//! Set `SHOAL_TEST_KEEP_TMP=1` to keep them after the test (their paths are
//! in the failure output), for instance to read a whole daemon log.

use tempfile::TempDir;

/// A new directory under the system temp dir, named `<prefix>XXXXXX`.
pub fn dir(prefix: &str) -> TempDir {
    let keep = std::env::var_os("SHOAL_TEST_KEEP_TMP").is_some_and(|v| !v.is_empty() && v != "0");
    tempfile::Builder::new()
        .prefix(prefix)
        .disable_cleanup(keep)
        .tempdir()
        .unwrap_or_else(|e| panic!("create temp dir {prefix}*: {e}"))
}
