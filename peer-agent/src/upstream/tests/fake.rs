//! A fake registry with just enough behaviour for the client's paths,
//! served by axum on `127.0.0.1:0`, counting and recording what it sees.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::header::{
    AUTHORIZATION, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, HOST, LOCATION, RANGE, RETRY_AFTER,
    WWW_AUTHENTICATE,
};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use bytes::Bytes;
use futures_util::StreamExt;
use shoal_proto::{Digest, Reference, RepoName};

use crate::upstream::{BlobBody, Upstream, UpstreamConfig, UpstreamError, UpstreamOptions};

pub(super) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub(super) const MANIFEST: &[u8] =
    br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[]}"#;
/// `alice:s3cret`, base64.
pub(super) const BASIC_ALICE: &str = "Basic YWxpY2U6czNjcmV0";

pub(super) fn blob_bytes() -> Bytes {
    (0..100_000u32)
        .map(|i| (i % 251) as u8)
        .collect::<Vec<_>>()
        .into()
}

#[derive(Default, Clone, Copy, PartialEq, Eq)]
pub(super) enum AuthMode {
    #[default]
    Anonymous,
    Bearer,
    Basic,
}

/// A registry with just enough behaviour for the client's paths, counting
/// and recording what it sees.
pub(super) struct Fake {
    pub(super) auth: AuthMode,
    /// The token endpoint insists on alice's Basic credentials.
    pub(super) token_needs_basic: bool,
    pub(super) manifest: Bytes,
    pub(super) blob: Bytes,
    pub(super) ignore_range: bool,
    pub(super) stall_blob: bool,
    /// Blob requests are redirected to this base URL.
    pub(super) redirect_blobs_to: Option<String>,
    /// Answers given before behaving normally: status and `Retry-After`.
    pub(super) script: Mutex<VecDeque<(StatusCode, Option<&'static str>)>>,
    /// Requests under `/v2/`.
    pub(super) hits: AtomicUsize,
    pub(super) token_hits: AtomicUsize,
    pub(super) token_queries: Mutex<Vec<String>>,
    pub(super) token_auth: Mutex<Vec<Option<String>>>,
    /// `Authorization` of every request under `/v2/`.
    pub(super) seen_auth: Mutex<Vec<Option<String>>>,
}

impl Default for Fake {
    fn default() -> Self {
        Self {
            auth: AuthMode::Anonymous,
            token_needs_basic: false,
            manifest: Bytes::from_static(MANIFEST),
            blob: blob_bytes(),
            ignore_range: false,
            stall_blob: false,
            redirect_blobs_to: None,
            script: Mutex::default(),
            hits: AtomicUsize::new(0),
            token_hits: AtomicUsize::new(0),
            token_queries: Mutex::default(),
            token_auth: Mutex::default(),
            seen_auth: Mutex::default(),
        }
    }
}

impl Fake {
    pub(super) fn with_script(self, script: &[(StatusCode, Option<&'static str>)]) -> Self {
        *self.script.lock().unwrap() = script.iter().copied().collect();
        self
    }
    pub(super) fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
    pub(super) fn token_hits(&self) -> usize {
        self.token_hits.load(Ordering::SeqCst)
    }
}

fn oci_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({"errors":[{"code":code,"message":message}]}).to_string();
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .unwrap()
}

pub(super) async fn handle(
    State(f): State<Arc<Fake>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let auth = headers
        .get(AUTHORIZATION)
        .map(|v| v.to_str().unwrap().to_owned());
    if uri.path() == "/token" {
        f.token_hits.fetch_add(1, Ordering::SeqCst);
        f.token_queries
            .lock()
            .unwrap()
            .push(uri.query().unwrap_or_default().to_owned());
        f.token_auth.lock().unwrap().push(auth.clone());
        if f.token_needs_basic && auth.as_deref() != Some(BASIC_ALICE) {
            return oci_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", "bad credentials");
        }
        let n = f.token_hits();
        let body = serde_json::json!({"token": format!("tok-{n}"), "expires_in": 300});
        return Response::new(Body::from(body.to_string()));
    }
    let Some(rest) = uri.path().strip_prefix("/v2/") else {
        return oci_error(StatusCode::NOT_FOUND, "NOT_FOUND", "no such path");
    };
    f.hits.fetch_add(1, Ordering::SeqCst);
    f.seen_auth.lock().unwrap().push(auth.clone());
    let scripted = f.script.lock().unwrap().pop_front();
    if let Some((status, retry_after)) = scripted {
        let mut resp = oci_error(status, "SCRIPTED", "scripted failure");
        if let Some(ra) = retry_after {
            resp.headers_mut().insert(RETRY_AFTER, ra.parse().unwrap());
        }
        return resp;
    }
    let repo = rest
        .split("/manifests/")
        .next()
        .unwrap()
        .split("/blobs/")
        .next()
        .unwrap();
    let authorized = match f.auth {
        AuthMode::Anonymous => true,
        AuthMode::Bearer => auth
            .as_deref()
            .is_some_and(|a| a.starts_with("Bearer tok-")),
        AuthMode::Basic => auth.as_deref() == Some(BASIC_ALICE),
    };
    if !authorized {
        let host = headers[HOST].to_str().unwrap();
        let challenge = match f.auth {
            AuthMode::Bearer => format!(
                r#"Bearer realm="http://{host}/token",service="fake.registry",scope="repository:{repo}:pull""#
            ),
            _ => r#"Basic realm="fake, registry""#.to_owned(),
        };
        let mut resp = oci_error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "authentication required",
        );
        resp.headers_mut()
            .insert(WWW_AUTHENTICATE, challenge.parse().unwrap());
        return resp;
    }
    if let Some((_, reference)) = rest.split_once("/manifests/") {
        return manifest(&f, &method, reference);
    }
    if let Some((repo, digest)) = rest.split_once("/blobs/") {
        return blob(&f, &headers, repo, digest);
    }
    oci_error(StatusCode::NOT_FOUND, "NAME_UNKNOWN", "unknown path")
}

fn manifest(f: &Fake, method: &Method, reference: &str) -> Response {
    if reference == "missing" {
        return oci_error(
            StatusCode::NOT_FOUND,
            "MANIFEST_UNKNOWN",
            "manifest unknown",
        );
    }
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        Body::from(f.manifest.clone())
    };
    Response::builder()
        .header(CONTENT_TYPE, OCI_MANIFEST)
        .header(CONTENT_LENGTH, f.manifest.len())
        .header("Docker-Content-Digest", Digest::of(&f.manifest).to_string())
        .body(body)
        .unwrap()
}

fn blob(f: &Fake, headers: &HeaderMap, repo: &str, digest: &str) -> Response {
    if let Some(to) = &f.redirect_blobs_to {
        return Response::builder()
            .status(StatusCode::TEMPORARY_REDIRECT)
            .header(
                LOCATION,
                format!("{to}/v2/{repo}/blobs/{digest}?X-Amz-Signature=abc"),
            )
            .body(Body::empty())
            .unwrap();
    }
    let len = f.blob.len();
    if f.stall_blob {
        let first = f.blob.slice(..1000);
        let stream = futures_util::stream::once(async move { Ok::<_, std::io::Error>(first) })
            .chain(futures_util::stream::pending());
        return Response::builder()
            .header(CONTENT_LENGTH, len)
            .body(Body::from_stream(stream))
            .unwrap();
    }
    let range = headers.get(RANGE).map(|v| v.to_str().unwrap().to_owned());
    match range.and_then(|r| {
        r.strip_prefix("bytes=")?
            .strip_suffix('-')?
            .parse::<usize>()
            .ok()
    }) {
        Some(start) if !f.ignore_range => Response::builder()
            .status(StatusCode::PARTIAL_CONTENT)
            .header(CONTENT_RANGE, format!("bytes {start}-{}/{len}", len - 1))
            .header(CONTENT_LENGTH, len - start)
            .body(Body::from(f.blob.slice(start..)))
            .unwrap(),
        _ => Response::builder()
            .header(CONTENT_LENGTH, len)
            .body(Body::from(f.blob.clone()))
            .unwrap(),
    }
}

/// Serves `fake` on a fresh loopback port.
pub(super) async fn serve(fake: Fake) -> (Arc<Fake>, SocketAddr) {
    let fake = Arc::new(fake);
    let app = Router::new().fallback(handle).with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (fake, addr)
}

pub(super) fn opts() -> UpstreamOptions {
    UpstreamOptions {
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(2),
        read_timeout: Duration::from_secs(2),
        retries: 3,
        backoff_base: Duration::from_millis(5),
        backoff_max: Duration::from_secs(2),
    }
}

pub(super) fn client(addr: SocketAddr) -> Upstream {
    Upstream::new(
        "fake",
        &UpstreamConfig::new(format!("http://{addr}")),
        &opts(),
    )
    .unwrap()
}

pub(super) fn alice(addr: SocketAddr) -> Upstream {
    let mut cfg = UpstreamConfig::new(format!("http://{addr}"));
    cfg.username = Some("alice".into());
    cfg.password = Some("s3cret".into());
    Upstream::new("fake", &cfg, &opts()).unwrap()
}

pub(super) fn repo() -> RepoName {
    RepoName::parse("library/app").unwrap()
}

pub(super) fn tag(t: &str) -> Reference {
    Reference::parse(t).unwrap()
}

pub(super) async fn collect(body: BlobBody) -> Result<Vec<u8>, UpstreamError> {
    let mut out = Vec::new();
    let mut stream = body.stream;
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk?);
    }
    Ok(out)
}
