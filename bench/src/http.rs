//! HTTP clients for talking to registries and daemons on loopback.
//!
//! reqwest is built without a TLS provider of its own (`rustls-no-provider`):
//! [`client`] installs rustls' ring provider first.

use std::time::Duration;

/// Installs rustls' ring crypto provider as the process default (idempotent).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A plain-HTTP client without proxies and with a generous per-request
/// timeout (it only guards against a hung run). Each benchmark node gets its
/// own, so nodes do not share connections.
pub fn client(timeout: Duration) -> reqwest::Client {
    install_crypto_provider();
    reqwest::Client::builder()
        .no_proxy()
        .timeout(timeout)
        .build()
        .expect("build HTTP client")
}

/// An error with all its sources, `outer: inner: innermost` (reqwest's own
/// `Display` leaves out the cause, e.g. the certificate problem).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        out.push_str(": ");
        out.push_str(&e.to_string());
        source = e.source();
    }
    out
}
