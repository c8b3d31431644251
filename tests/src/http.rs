//! HTTP clients for the tests.
//!
//! reqwest is built without a TLS provider of its own (`rustls-no-provider`):
//! every client installs rustls' ring provider first, and an HTTPS client is
//! given a preconfigured rustls `ClientConfig` that trusts the test CA.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::CertificateDer;

/// Per-request timeout: generous, it only guards against a hung test.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

pub use shoal_bench::http::{error_chain, install_crypto_provider};

/// A client for plain-HTTP endpoints on loopback.
pub fn client() -> reqwest::Client {
    shoal_bench::http::client(REQUEST_TIMEOUT)
}

/// A client that trusts exactly `ca` (a DER certificate) for HTTPS.
pub fn client_trusting(ca: &CertificateDer<'static>) -> reqwest::Client {
    install_crypto_provider();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).expect("add test CA to root store");
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS protocol versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    reqwest::Client::builder()
        .no_proxy()
        .timeout(REQUEST_TIMEOUT)
        .tls_backend_preconfigured(tls)
        .build()
        .expect("build HTTPS client")
}
