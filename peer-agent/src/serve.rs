//! Serving a daemon's HTTP listener to clients that may be hostile.
//!
//! Every Shoal daemon's HTTP API goes through [`serve`]: an accept loop
//! with a bound on connections and hyper's HTTP/1.1 server with limits on
//! the request head, instead of `axum::serve`, which has neither.
//!
//! - **Connections**: at most [`HttpLimits::max_connections`] are served
//!   at once (a semaphore taken on accept). One more is answered
//!   `503 Service Unavailable` with `Retry-After` and closed, so that a
//!   flood costs a bounded number of file descriptors and tasks, and a
//!   client over the limit gets an answer instead of a hang.
//! - **Slow clients**: a client has [`HttpLimits::header_timeout`] to send
//!   a request's head, counted from the moment the server waits for one
//!   (so an idle keep-alive connection is closed after it too); then the
//!   connection is closed. A client that never finishes its headers
//!   (slowloris) holds a connection slot for that long at most.
//! - **Size**: a request head (request line and headers) over
//!   [`MAX_HEAD_BYTES`] gets `431 Request Header Fields Too Large`; hyper
//!   also caps the number of headers (100) and the URI (64 KiB, `414`).
//! - **Closing**: after the last response, the server stops writing and
//!   reads what the client still sends for a moment ([`LINGER`], at most
//!   [`LINGER_BYTES`]) before closing: closing with unread input makes the
//!   kernel send a reset, which can destroy an error response (such as a
//!   431) before the client reads it.
//!
//! Only HTTP/1.1 is served: registry clients (docker, containerd, skopeo)
//! and the daemons' own clients speak HTTP/1.1 to a cleartext endpoint, and
//! hyper's HTTP/2 detection reads the connection preface before any
//! timeout applies.
//!
//! - **TLS** ([`serve_tls`]): a connection whose first byte opens a TLS
//!   handshake is served the full router over TLS (the handshake, too, must
//!   finish within the header timeout); any other connection is served a
//!   plain-HTTP router of its own (the daemons give it only `/healthz` and
//!   `/metrics`, and a refusal for everything else).

use std::future::Future;
use std::io;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;

/// Largest request head (request line and headers) read, in bytes.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Default for [`HttpLimits::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Default for [`HttpLimits::header_timeout`].
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a closing connection's input is still read and dropped.
pub const LINGER: Duration = Duration::from_secs(2);
/// Most bytes read and dropped from a closing connection.
pub const LINGER_BYTES: usize = 1 << 20;
/// Most connections over the limit being answered 503 at once; beyond it,
/// they are closed without an answer.
const MAX_REFUSING: usize = 64;
/// Time given to write the 503 to a connection over the limit.
const REFUSE_WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// Counter of connections refused because the limit was reached.
pub const CONNECTIONS_REFUSED: &str = "shoal_http_connections_refused_total";
/// Gauge of HTTP connections being served.
pub const CONNECTIONS_OPEN: &str = "shoal_http_connections_open";
/// Counter of TLS handshakes that failed or timed out (for instance a
/// client without a cluster member certificate).
pub const TLS_HANDSHAKE_FAILURES: &str = "shoal_http_tls_handshake_failures_total";

/// The first byte of a TLS record carrying a handshake message.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// TLS on a listener (see [`serve_tls`]).
#[derive(Clone)]
pub struct ListenerTls {
    /// The server side of the handshake.
    pub config: Arc<rustls::ServerConfig>,
    /// What a connection speaking plain HTTP is served.
    pub plain: Router,
}

/// The answer to a connection over the limit.
const BUSY_RESPONSE: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: text/plain; charset=utf-8\r\n\
content-length: 37\r\n\
retry-after: 1\r\n\
connection: close\r\n\
\r\n\
too many connections; try again soon\n";

/// Limits of a daemon's HTTP listener, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpLimits {
    /// Most connections served at once.
    pub max_connections: usize,
    /// Time a client has to send a request's head.
    pub header_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
        }
    }
}

/// The HTTP limit flags every daemon takes (`#[command(flatten)]`).
#[derive(clap::Args, Clone, Debug, Default)]
pub struct HttpArgs {
    /// Most HTTP connections served at once; a connection over the limit
    /// is answered 503 and closed [default: 1024].
    #[arg(long, env = "SHOAL_HTTP_MAX_CONNECTIONS", value_name = "N")]
    pub http_max_connections: Option<usize>,
    /// Time a client has to send a request's headers before its connection
    /// is closed, e.g. 30s, 500ms, 2m (a bare number is seconds)
    /// [default: 30s].
    #[arg(long, env = "SHOAL_HTTP_HEADER_TIMEOUT", value_name = "DURATION",
          value_parser = parse_duration)]
    pub http_header_timeout: Option<Duration>,
}

impl HttpArgs {
    /// Validates the flags, filling in defaults.
    pub fn limits(&self) -> anyhow::Result<HttpLimits> {
        self.limits_over(&HttpFile::default())
    }

    /// Validates the flags over the config file's values, filling in
    /// defaults; flags win.
    pub fn limits_over(&self, file: &HttpFile) -> anyhow::Result<HttpLimits> {
        let file_timeout = match &file.http_header_timeout {
            Some(text) => Some(
                parse_duration(text).map_err(|e| anyhow::anyhow!("http_header_timeout: {e}"))?,
            ),
            None => None,
        };
        let max_connections = self
            .http_max_connections
            .or(file.http_max_connections)
            .unwrap_or(DEFAULT_MAX_CONNECTIONS);
        if max_connections == 0 {
            anyhow::bail!("--http-max-connections must be at least 1");
        }
        let header_timeout = self
            .http_header_timeout
            .or(file_timeout)
            .unwrap_or(DEFAULT_HEADER_TIMEOUT);
        if header_timeout.is_zero() {
            anyhow::bail!("--http-header-timeout must be more than 0");
        }
        Ok(HttpLimits {
            max_connections,
            header_timeout,
        })
    }
}

/// The same limits in a daemon's TOML config file. Config files refuse
/// unknown keys, so each daemon's file struct repeats these two fields and
/// hands them over with [`HttpFile::new`].
#[derive(Clone, Debug, Default)]
pub struct HttpFile {
    /// See `--http-max-connections`.
    pub http_max_connections: Option<usize>,
    /// See `--http-header-timeout`, as text (`30s`).
    pub http_header_timeout: Option<String>,
}

impl HttpFile {
    /// The two values as read from a config file.
    pub fn new(http_max_connections: Option<usize>, http_header_timeout: Option<String>) -> Self {
        HttpFile {
            http_max_connections,
            http_header_timeout,
        }
    }
}

/// Parses `500ms`, `30s`, `2m`, or a bare number of seconds (`1.5`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (num, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else {
        (t, 1.0)
    };
    let bad = || format!("{text:?} is not a duration such as 30s, 500ms or 2m");
    let n: f64 = num.trim().parse().map_err(|_| bad())?;
    Duration::try_from_secs_f64(n * scale).map_err(|_| bad())
}

/// Serves `app` on `listener` with `limits` until `shutdown` completes,
/// then lets the connections in progress finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: &HttpLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    serve_with(listener, app, None, limits, shutdown).await
}

/// [`serve`], with `app` served only over TLS with `tls.config`, and
/// `tls.plain` to connections that speak plain HTTP.
pub async fn serve_tls(
    listener: TcpListener,
    app: Router,
    tls: ListenerTls,
    limits: &HttpLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    serve_with(listener, app, Some(tls), limits, shutdown).await
}

async fn serve_with(
    listener: TcpListener,
    app: Router,
    tls: Option<ListenerTls>,
    limits: &HttpLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let tls = tls.map(|t| (TlsAcceptor::from(t.config), t.plain));
    let header_timeout = limits.header_timeout;
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        // The buffer bound stops an unfinished head from growing; the
        // header bound refuses a finished one that one read brought in.
        .max_buf_size(MAX_HEAD_BYTES)
        .max_header_size(MAX_HEAD_BYTES);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let refusing = Arc::new(Semaphore::new(MAX_REFUSING));
    // Connections hold a receiver of `stop` (told to shut down when it is
    // dropped) and a receiver of `done` (waited for at the end).
    let (stop_tx, stop_rx) = watch::channel(());
    let (done_tx, done_rx) = watch::channel(());
    let mut shutdown = pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    accept_error(e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        match slots.clone().try_acquire_owned() {
            Ok(slot) => {
                let (builder, app, tls) = (builder.clone(), app.clone(), tls.clone());
                let (stop, done) = (stop_rx.clone(), done_rx.clone());
                tokio::spawn(async move {
                    metrics::gauge!(CONNECTIONS_OPEN).increment(1.0);
                    let _ = stream.set_nodelay(true);
                    match tls {
                        None => connection(stream, &builder, app, stop).await,
                        Some((acceptor, plain)) => {
                            let routers = (app, plain);
                            tls_or_plain(stream, &builder, &acceptor, routers, header_timeout, stop)
                                .await
                        }
                    }
                    metrics::gauge!(CONNECTIONS_OPEN).decrement(1.0);
                    drop((slot, done));
                });
            }
            Err(_) => {
                metrics::counter!(CONNECTIONS_REFUSED).increment(1);
                if let Ok(permit) = refusing.clone().try_acquire_owned() {
                    tokio::spawn(async move {
                        refuse(stream).await;
                        drop(permit);
                    });
                }
            }
        }
    }
    drop((listener, stop_tx, stop_rx, done_rx));
    done_tx.closed().await;
    Ok(())
}

/// Logs a failed accept; waits a little when the failure is about this
/// process (out of file descriptors), not about one connection.
async fn accept_error(e: io::Error) {
    use io::ErrorKind::*;
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | ConnectionRefused | Interrupted
    ) {
        return;
    }
    tracing::warn!("accepting an HTTP connection failed: {e}");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// Serves `api` over TLS to a connection that opens with a handshake
/// (which must finish within `timeout`), `plain` to one that speaks plain
/// HTTP, and nothing to one that stays silent for `timeout`.
async fn tls_or_plain(
    stream: TcpStream,
    builder: &http1::Builder,
    acceptor: &TlsAcceptor,
    (api, plain): (Router, Router),
    timeout: Duration,
    stop: watch::Receiver<()>,
) {
    match tokio::time::timeout(timeout, first_byte(&stream)).await {
        Ok(Some(TLS_HANDSHAKE_RECORD)) => {
            match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => connection(tls, builder, api, stop).await,
                Ok(Err(e)) => handshake_failed(&e.to_string()),
                Err(_) => handshake_failed("timed out"),
            }
        }
        Ok(Some(_)) => connection(stream, builder, plain, stop).await,
        // Closed, or silent for the whole timeout.
        Ok(None) | Err(_) => {}
    }
}

/// The first byte the client sent, left unread; `None` if it closed first.
async fn first_byte(stream: &TcpStream) -> Option<u8> {
    let mut byte = [0u8; 1];
    match stream.peek(&mut byte).await {
        Ok(1) => Some(byte[0]),
        _ => None,
    }
}

/// Logs and counts a TLS handshake that failed.
fn handshake_failed(why: &str) {
    metrics::counter!(TLS_HANDSHAKE_FAILURES).increment(1);
    tracing::debug!("TLS handshake with an HTTP client failed: {why}");
}

/// Serves one connection, then closes it without losing the last response.
async fn connection<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    builder: &http1::Builder,
    app: Router,
    mut stop: watch::Receiver<()>,
) {
    {
        let service = TowerToHyperService::new(app);
        let mut conn = pin!(builder.serve_connection(TokioIo::new(&mut stream), service));
        let mut stopping = false;
        loop {
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        if e.is_timeout() {
                            tracing::debug!("HTTP client too slow to send its request head; closing");
                        } else {
                            tracing::debug!("HTTP connection ended: {e}");
                        }
                    }
                    break;
                }
                _ = stop.changed(), if !stopping => {
                    stopping = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
    linger(stream).await;
}

/// Answers a connection over the limit with 503 and closes it.
async fn refuse(mut stream: TcpStream) {
    let written = tokio::time::timeout(REFUSE_WRITE_TIMEOUT, stream.write_all(BUSY_RESPONSE)).await;
    if matches!(written, Ok(Ok(()))) {
        linger(stream).await;
    }
}

/// Stops writing, then reads and drops the client's input until it closes,
/// for at most [`LINGER`] and [`LINGER_BYTES`], so that closing does not
/// reset the connection before the client has read the last response.
async fn linger<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S) {
    let _ = stream.shutdown().await;
    let drain = async {
        let mut buf = [0u8; 8192];
        let mut total = 0;
        while total < LINGER_BYTES {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        for bad in ["", "s", "-1s", "1h", "ten", "1e400"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn defaults_and_validation() {
        assert_eq!(HttpArgs::default().limits().unwrap(), HttpLimits::default());
        let zero = HttpArgs {
            http_max_connections: Some(0),
            ..HttpArgs::default()
        };
        assert!(zero.limits().is_err());
        let instant = HttpArgs {
            http_header_timeout: Some(Duration::ZERO),
            ..HttpArgs::default()
        };
        assert!(instant.limits().is_err());
    }

    #[test]
    fn flags_win_over_the_file() {
        let file = HttpFile::new(Some(7), Some("5s".into()));
        let from_file = HttpArgs::default().limits_over(&file).unwrap();
        assert_eq!(from_file.max_connections, 7);
        assert_eq!(from_file.header_timeout, Duration::from_secs(5));
        let flags = HttpArgs {
            http_max_connections: Some(9),
            http_header_timeout: Some(Duration::from_secs(1)),
        };
        let both = flags.limits_over(&file).unwrap();
        assert_eq!(both.max_connections, 9);
        assert_eq!(both.header_timeout, Duration::from_secs(1));
        let bad = HttpFile::new(None, Some("soon".into()));
        assert!(HttpArgs::default().limits_over(&bad).is_err());
    }

    /// The header timeout runs only while a request head is awaited: a
    /// response that takes longer to send than the timeout is not cut.
    #[tokio::test]
    async fn a_slow_response_outlives_the_header_timeout() {
        use axum::body::Body;
        use futures_util::stream;

        let slow = || async {
            let chunks = stream::unfold(0u8, |i| async move {
                if i == 4 {
                    return None;
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
                Some((Ok::<_, io::Error>(vec![b'a' + i; 1000]), i + 1))
            });
            Body::from_stream(chunks)
        };
        let app = Router::new().route("/slow", axum::routing::get(slow));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let limits = HttpLimits {
            max_connections: 4,
            header_timeout: Duration::from_millis(200),
        };
        let stop = tokio_util::sync::CancellationToken::new();
        let server = tokio::spawn({
            let stop = stop.clone();
            async move { serve(listener, app, &limits, stop.cancelled_owned()).await }
        });

        let mut conn = TcpStream::connect(addr).await.unwrap();
        conn.write_all(b"GET /slow HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut raw = Vec::new();
        tokio::time::timeout(Duration::from_secs(60), conn.read_to_end(&mut raw))
            .await
            .expect("response within a minute")
            .expect("read");
        let text = String::from_utf8_lossy(&raw);
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        for c in ["a", "b", "c", "d"] {
            assert!(text.contains(&c.repeat(1000)), "chunk {c} missing: {text}");
        }
        stop.cancel();
        server.await.unwrap().unwrap();
    }

    #[test]
    fn busy_response_length_is_right() {
        let text = std::str::from_utf8(BUSY_RESPONSE).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}", body.len())));
    }
}
