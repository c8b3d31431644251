//! Plumbing every Shoal daemon shares: logging, the TLS crypto provider,
//! Prometheus metrics, `/healthz`, the ready file, and serving an axum
//! router until one shutdown signal fires (with the limits of
//! [`serve`](mod@crate::serve)), in plain HTTP or, for the cluster-internal
//! APIs of a cluster with a secret, over mutual TLS ([`serve_cluster_api`]).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::Path;

use axum::Router;
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use crate::serve::{HttpArgs, HttpFile, HttpLimits, ListenerTls, serve, serve_tls};

use crate::p2p::tls::ClusterTls;

/// Log output format, chosen with `--log-format`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Sets up `tracing` on stderr. `RUST_LOG` overrides the default `info`.
pub fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr);
    // A second initialisation (tests calling `run` twice) is harmless.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Installs rustls' ring provider process-wide; every binary calls this first.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Installs the Prometheus recorder (once per process) and returns its handle.
pub fn install_metrics() -> PrometheusHandle {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .install_recorder()
                .expect("metrics recorder installed twice")
        })
        .clone()
}

/// `/healthz` and `/metrics`, merged into every daemon's HTTP router.
pub fn ops_router(metrics: PrometheusHandle) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/metrics",
            get(move || {
                let m = metrics.clone();
                async move {
                    (
                        [(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                        m.render(),
                    )
                }
            }),
        )
}

/// Serves `api` (a supernode's or a tracker's API) and the ops endpoints
/// on `listener` until `shutdown` completes. With `tls` (the cluster
/// secret is configured) everything is served over TLS to cluster members
/// only (mutual TLS with the cluster CA, like the QUIC transport), and a
/// client speaking plain HTTP gets `/healthz` and `/metrics` and a `401`
/// for the API. Without, everything is served in plain HTTP, with a
/// warning in the log.
pub async fn serve_cluster_api(
    listener: TcpListener,
    api: Router,
    metrics: PrometheusHandle,
    tls: Option<&ClusterTls>,
    limits: &HttpLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let ops = ops_router(metrics);
    match tls {
        Some(tls) => {
            tracing::info!(
                ca = %tls.ca_fingerprint(),
                "API served over mutual TLS to cluster members only (plain HTTP: /healthz and /metrics)"
            );
            let listener_tls = ListenerTls {
                config: std::sync::Arc::new(tls.http_server_config()?),
                plain: ops.clone().fallback(crate::http_auth::tls_required),
            };
            serve_tls(listener, api.merge(ops), listener_tls, limits, shutdown).await?;
        }
        None => {
            warn_unencrypted();
            serve(listener, api.merge(ops), limits, shutdown).await?;
        }
    }
    Ok(())
}

/// Logs, once at startup, that a daemon without the cluster secret talks
/// to the other nodes in clear and without authentication.
pub fn warn_unencrypted() {
    tracing::warn!(
        "INSECURE: no cluster secret (--cluster-secret-file): node-to-node traffic \
         (agent, supernode and tracker APIs) is unauthenticated and unencrypted plain HTTP. \
         For tests and development only."
    );
}

/// What a daemon writes to `--ready-file` once it is listening, so that
/// whoever started it with port 0 learns the real addresses.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReadyInfo {
    /// The HTTP listen address (registry API, agent API, ops endpoints).
    pub http: SocketAddr,
    /// The peer-to-peer (QUIC) listen address, for daemons that have one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p2p: Option<SocketAddr>,
}

/// Writes `info` to `path` atomically (temporary name, then rename).
pub fn write_ready_file(path: &Path, info: &ReadyInfo) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec(info)?)?;
    std::fs::rename(&tmp, path)
}

/// Binds `addr`, with the address in the error message.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))
}

/// Cancels `token` on SIGINT or SIGTERM.
pub fn cancel_on_signal(token: CancellationToken) {
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("install SIGTERM handler");
            tokio::select! {
                _ = ctrl_c => {},
                _ = term.recv() => {},
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutting down");
        token.cancel();
    });
}

/// The body of every daemon's `main`: report a configuration error (exit
/// code 2), set up logging, run until SIGINT/SIGTERM, and turn a failure
/// into a one-line message and exit code 1.
pub async fn main_body<C, F, Fut>(
    name: &str,
    cfg: anyhow::Result<C>,
    log_format: impl FnOnce(&C) -> LogFormat,
    run: F,
) -> std::process::ExitCode
where
    F: FnOnce(C, CancellationToken) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    install_crypto_provider();
    let cfg = match cfg {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{name}: {e:#}");
            return std::process::ExitCode::from(2);
        }
    };
    init_tracing(log_format(&cfg));
    let shutdown = CancellationToken::new();
    cancel_on_signal(shutdown.clone());
    match run(cfg, shutdown).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("{name}: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
