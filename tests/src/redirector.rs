//! Redirects and where they lead: a fake upstream that answers every
//! request with a redirect, and a canary server that counts the requests
//! reaching it. Whether a daemon followed a redirect is whether the canary
//! was hit.
//!
//! [`loopback_name`] gives a host name of this machine that is not an IP
//! literal nor `localhost` (so a URL with it looks public to the redirect
//! check) yet resolves to a loopback address the servers can bind.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

/// A running server of one of this module's kinds; stops accepting
/// connections when dropped.
pub struct Server {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    /// Answers every request with `307 Temporary Redirect` to `target`
    /// followed by the request's path and query.
    pub async fn redirector(ip: IpAddr, target: &str) -> Server {
        let target = target.trim_end_matches('/').to_owned();
        Self::start(ip, move |uri: Uri| {
            let path = uri.path_and_query().map_or("/", |p| p.as_str());
            let location = format!("{target}{path}");
            let mut resp = StatusCode::TEMPORARY_REDIRECT.into_response();
            resp.headers_mut().insert(
                header::LOCATION,
                HeaderValue::from_str(&location).expect("location header"),
            );
            resp
        })
        .await
    }

    /// Answers every request with a 404 OCI error; counts them.
    pub async fn canary(ip: IpAddr) -> Server {
        Self::start(ip, |_| {
            let body = r#"{"errors":[{"code":"BLOB_UNKNOWN","message":"canary"}]}"#;
            (StatusCode::NOT_FOUND, body).into_response()
        })
        .await
    }

    async fn start(
        ip: IpAddr,
        answer: impl Fn(Uri) -> Response + Clone + Send + Sync + 'static,
    ) -> Server {
        let hits = Arc::new(AtomicUsize::new(0));
        let listener = tokio::net::TcpListener::bind((ip, 0))
            .await
            .unwrap_or_else(|e| panic!("bind {ip}:0: {e}"));
        let addr = listener.local_addr().expect("local_addr");
        let counter = hits.clone();
        let app = axum::Router::new().fallback(move |uri: Uri| {
            counter.fetch_add(1, Ordering::SeqCst);
            let resp = answer(uri);
            async move { resp }
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Server { addr, hits, task }
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Requests received so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// A host name of this machine (not an IP literal, not `localhost`) and the
/// loopback address it resolves to: the machine's own name (which
/// `/etc/hosts` maps to `127.0.1.1` or `127.0.0.1` on Debian), else one of
/// the other loopback names Debian's `/etc/hosts` carries. Panics if none
/// resolves to a loopback address.
pub async fn loopback_name() -> (String, IpAddr) {
    let own = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap_or_default()
        .trim()
        .to_owned();
    let mut tried = Vec::new();
    for name in [
        own.as_str(),
        "localhost.localdomain",
        "ip6-localhost",
        "ip6-loopback",
    ] {
        if name.is_empty() {
            continue;
        }
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((name, 0))
            .await
            .map(Iterator::collect)
            .unwrap_or_default();
        if let Some(ip) = addrs.iter().map(SocketAddr::ip).find(IpAddr::is_loopback) {
            return (name.to_owned(), ip);
        }
        tried.push(format!("{name:?} -> {addrs:?}"));
    }
    panic!(
        "no host name of this machine resolves to a loopback address ({}): add the host name to /etc/hosts",
        tried.join(", ")
    )
}
