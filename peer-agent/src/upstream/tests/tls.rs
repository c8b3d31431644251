//! HTTPS upstreams: a throw-away CA from rcgen, a rustls server in front of
//! the fake registry, and the client with and without that CA.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::fake::{Fake, MANIFEST, handle, opts, repo, tag};
use crate::upstream::{Upstream, UpstreamConfig, UpstreamError};

/// Accepts TCP and completes the TLS handshake before handing the stream
/// to axum; failed handshakes are dropped.
struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else {
                continue;
            };
            if let Ok(tls) = self.acceptor.accept(tcp).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// Starts an HTTPS fake registry; returns its address and the CA's PEM file.
async fn https_registry(dir: &std::path::Path) -> (SocketAddr, PathBuf) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "upstream test CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);

    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    params.use_authority_key_identifier_extension = true;
    let cert = params.signed_by(&key, &issuer).unwrap();

    let ca_pem = dir.join("ca.pem");
    std::fs::write(&ca_pem, ca_cert.pem()).unwrap();

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone(), ca_cert.der().clone()], key_der)
        .unwrap();
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];

    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let listener = TlsListener {
        tcp,
        acceptor: TlsAcceptor::from(Arc::new(server)),
    };
    let app = Router::new()
        .fallback(handle)
        .with_state(Arc::new(Fake::default()));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, ca_pem)
}

#[tokio::test]
async fn https_works_with_the_ca_file_and_fails_clearly_without() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, ca_pem) = https_registry(dir.path()).await;
    let url = format!("https://{addr}");

    let mut cfg = UpstreamConfig::new(&url);
    cfg.ca_file = Some(ca_pem);
    let up = Upstream::new("private", &cfg, &opts()).unwrap();
    let m = up.get_manifest(&repo(), &tag("1.0"), &[]).await.unwrap();
    assert_eq!(&m.bytes[..], MANIFEST);

    let hits_before = std::time::Instant::now();
    let up = Upstream::new("private", &UpstreamConfig::new(&url), &opts()).unwrap();
    let err = up
        .get_manifest(&repo(), &tag("1.0"), &[])
        .await
        .unwrap_err();
    let UpstreamError::Tls(msg) = &err else {
        panic!("expected a TLS error, got {err}")
    };
    assert!(msg.contains("certificate verification failed"), "{msg}");
    assert!(
        msg.contains("\"private\"") && msg.contains("ca_file"),
        "{msg}"
    );
    assert!(!err.is_retryable());
    assert!(hits_before.elapsed() < std::time::Duration::from_secs(2));

    // A plain-HTTP client config never talks to an https upstream over http,
    // and an http URL against the TLS port does not succeed either.
    let plain = Upstream::new(
        "private",
        &UpstreamConfig::new(format!("http://{addr}")),
        &opts(),
    )
    .unwrap();
    assert!(plain.get_manifest(&repo(), &tag("1.0"), &[]).await.is_err());
}

#[tokio::test]
async fn a_ca_file_without_certificates_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.pem");
    std::fs::write(&path, "not a certificate\n").unwrap();
    let mut cfg = UpstreamConfig::new("https://127.0.0.1:1");
    cfg.ca_file = Some(path);
    let err = Upstream::new("x", &cfg, &opts()).unwrap_err();
    assert!(
        matches!(&err, UpstreamError::Config(m) if m.contains("no PEM certificate")),
        "{err}"
    );
}
