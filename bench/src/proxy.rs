//! A read-only forwarding proxy in front of a real registry (`--upstream
//! URL`): the `direct` baseline's capped upstream when the bench does not
//! serve the image itself. Like BASELINES.md's capping proxy, it lets the
//! bodies of all its responses through one shared [`Throttle`] (waiting
//! clients served in turn) and counts the body bytes it passes on.
//!
//! GET and HEAD only, every header but the hop-by-hop ones and `Host`
//! forwarded both ways; redirects (a registry handing blobs to its storage)
//! are followed by the proxy, so their bytes are capped and counted too.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;

use crate::http::Server;
use crate::throttle::Throttle;

/// Upper bound on one forwarded request: only guards against a hung run.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3600);

/// Headers that belong to one connection, not to the message.
const HOP_BY_HOP: [HeaderName; 6] = [
    header::CONNECTION,
    header::HOST,
    header::TRANSFER_ENCODING,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
];

#[derive(Clone, Debug)]
struct ProxyState {
    target: String,
    client: reqwest::Client,
    throttle: Throttle,
    bytes: Arc<AtomicU64>,
}

/// A running proxy; stops when dropped.
#[derive(Debug)]
pub struct Proxy {
    server: Server,
    bytes: Arc<AtomicU64>,
}

impl Proxy {
    /// Forwards `127.0.0.1:0` to `target` (`http(s)://host:port`, no
    /// trailing slash), the response bodies capped by `throttle`.
    pub async fn start(target: &str, throttle: Throttle) -> std::io::Result<Proxy> {
        let bytes = Arc::new(AtomicU64::new(0));
        let state = ProxyState {
            target: target.to_string(),
            client: crate::http::client(REQUEST_TIMEOUT),
            throttle,
            bytes: bytes.clone(),
        };
        let router = Router::new().fallback(forward).with_state(state);
        let server = Server::start(router, "upstream proxy").await?;
        Ok(Proxy { server, bytes })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Body bytes passed on to clients so far.
    pub fn bytes_sent(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}

async fn forward(
    State(state): State<ProxyState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return (StatusCode::METHOD_NOT_ALLOWED, "read-only proxy").into_response();
    }
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let url = format!("{}{path}", state.target);
    let resp = match state
        .client
        .request(method, &url)
        .headers(end_to_end(&headers))
        .send()
        .await
    {
        Ok(resp) => resp,
        Err(e) => {
            let detail = format!("GET {url}: {}", crate::http::error_chain(&e));
            return (StatusCode::BAD_GATEWAY, detail).into_response();
        }
    };
    let status = resp.status();
    let out_headers = end_to_end(resp.headers());
    let (throttle, counter) = (state.throttle.clone(), state.bytes.clone());
    let body = resp.bytes_stream().then(move |chunk| {
        let (throttle, counter) = (throttle.clone(), counter.clone());
        async move {
            let chunk = chunk?;
            throttle.consume(chunk.len() as u64).await;
            counter.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            Ok::<_, reqwest::Error>(chunk)
        }
    });
    let mut response = Response::new(Body::from_stream(body));
    *response.status_mut() = status;
    *response.headers_mut() = out_headers;
    response
}

/// `headers` without the hop-by-hop ones.
fn end_to_end(headers: &HeaderMap) -> HeaderMap {
    let mut out = headers.clone();
    for name in &HOP_BY_HOP {
        out.remove(name);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::synthetic;
    use crate::pull::{PullRequest, pull};
    use crate::upstream::{Upstream, UpstreamConfig};

    #[tokio::test]
    async fn forwards_a_pull_and_counts_its_bytes() {
        let image = Arc::new(synthetic(5, 300_000, 2));
        let upstream = Upstream::start(UpstreamConfig {
            image: image.clone(),
            repo: "library/x".into(),
            tag: "t".into(),
            throttle: Throttle::unlimited(),
        })
        .await
        .unwrap();
        let proxy = Proxy::start(&upstream.url(), Throttle::unlimited())
            .await
            .unwrap();
        let client = crate::http::client(Duration::from_secs(30));
        let pulled = pull(&client, &PullRequest::new(&proxy.url(), "library/x", "t"))
            .await
            .unwrap();
        assert_eq!(pulled.manifest_digest, image.manifest.digest);
        // Every body: what the upstream counts (manifests and blobs) plus
        // the `{}` of the `/v2/` ping.
        assert_eq!(proxy.bytes_sent(), upstream.counters().bytes_sent() + 2);
        assert!(proxy.bytes_sent() >= image.pull_bytes());
        let missing = client
            .get(format!("{}/v2/library/y/manifests/t", proxy.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        let post = client
            .post(format!("{}/v2/", proxy.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
    }
}
