//! The rustls client configuration: system trust store plus an optional CA
//! file, ring as the crypto provider whatever the process default is.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use super::UpstreamError;

/// The system's CA certificates, read once per process.
fn system_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for e in &found.errors {
            tracing::warn!(error = %e, "could not load some system CA certificates");
        }
        if found.certs.is_empty() {
            tracing::warn!("no system CA certificates found; only ca_file will be trusted");
        }
        found.certs
    })
}

/// Reads every certificate of a PEM file.
fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, UpstreamError> {
    let bad = |e: &dyn std::fmt::Display| {
        UpstreamError::Config(format!("cannot read CA file {}: {e}", path.display()))
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(&e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(&e))?;
    if certs.is_empty() {
        return Err(UpstreamError::Config(format!(
            "CA file {} holds no PEM certificate",
            path.display()
        )));
    }
    Ok(certs)
}

/// A verifying client config trusting the system store and `ca_file`.
pub(super) fn client_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, UpstreamError> {
    let mut roots = RootCertStore::empty();
    let (_, ignored) = roots.add_parsable_certificates(system_roots().iter().cloned());
    if ignored > 0 {
        tracing::debug!(ignored, "skipped unparsable system CA certificates");
    }
    if let Some(path) = ca_file {
        for cert in read_ca_file(path)? {
            roots.add(cert).map_err(|e| {
                UpstreamError::Config(format!(
                    "CA file {}: unusable certificate: {e}",
                    path.display()
                ))
            })?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| UpstreamError::Config(format!("TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    // A preconfigured config is used as is by reqwest, so offer HTTP/2 here.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}
