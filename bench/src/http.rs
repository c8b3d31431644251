//! HTTP clients for talking to registries and daemons on loopback.
//!
//! reqwest is built without a TLS provider of its own (`rustls-no-provider`):
//! [`client`] installs rustls' ring provider first. [`Server`] serves an
//! axum router on loopback.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

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

/// An axum router served on `127.0.0.1:0` by a task of its own, which is
/// aborted (no new connections) when this is dropped.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Server {
    /// Binds `127.0.0.1:0` and serves `router`; `what` names the server in
    /// the error logged should serving stop.
    pub async fn start(router: axum::Router, what: &'static str) -> std::io::Result<Server> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router).await {
                tracing::error!("{what} stopped: {e}");
            }
        });
        Ok(Server { addr, task })
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}
