//! The in-process puller that verifies every digest: the implementation
//! lives in `shoal-bench` (whose benchmark nodes pull with it); this module
//! keeps the tests' paths, and adds a client with Basic credentials.

pub use shoal_bench::pull::*;

/// A client for [`pull`] that sends Basic credentials with every request,
/// as a container runtime does once a registry has challenged it.
pub fn client_with_basic_auth(user: &str, password: &str) -> reqwest::Client {
    crate::registry::authorized_client(&crate::registry::basic_authorization(user, password))
}
