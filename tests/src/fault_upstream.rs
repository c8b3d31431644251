//! A programmable fake upstream registry for error-path tests: axum on
//! `127.0.0.1:0`, spawned on the test's own tokio runtime.
//!
//! It serves a [`TestImage`] under the given repositories (manifests by tag
//! and by digest, blobs with `Range`), and follows a fault script per path:
//! a 500, a 429 with `Retry-After: 1`, a truncated body (`Content-Length`
//! announces the full size, the connection is cut after half), corrupted
//! bytes (same length, one byte flipped), a stall (headers, then nothing
//! until [`FaultUpstream::release_stalls`]) or a corrupted half followed by
//! a stall, either always or the first N times. Every request is logged with its method, path, `Range` and status,
//! so tests can count exactly what reached the upstream.
//!
//! DESIGN.md wants a real registry in end-to-end tests; this fake is only
//! for the failures a real registry cannot be made to produce on demand.
//!
//! The client side: [`fetch`] records how far a body got and how it ended
//! ([`Fetched`]); [`raw_request`] sends a request target byte for byte
//! (reqwest would normalise `..` away); [`stored_blob`] and [`files_under`]
//! look into a daemon's content store.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{self, HeaderMap, Method, StatusCode, Uri, header};
use axum::response::Response;
use bytes::Bytes;
use futures_util::StreamExt;
use shoal_bench::http::Server;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use crate::image::{Blob, TestImage};

/// What goes wrong with a response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// 500 with an OCI error body.
    ServerError,
    /// 429 `TOOMANYREQUESTS` with `Retry-After: 1`.
    RateLimit,
    /// Full `Content-Length`, the first half of the body (what the socket
    /// took of it within 50 ms), then the connection is cut (GET only).
    Truncate,
    /// Full length with the middle byte flipped (GET only).
    Corrupt,
    /// Headers, then no byte until the stall is released (GET only).
    Stall,
    /// The first half with its first byte flipped, then a stall until
    /// released (GET only): bad bytes that stay in flight.
    CorruptThenStall,
}

impl Fault {
    fn body_only(self) -> bool {
        !matches!(self, Fault::ServerError | Fault::RateLimit)
    }
}

/// How often a fault applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Times {
    /// Until cleared.
    Always,
    /// The next N matching requests, then normal answers.
    First(u32),
}

/// One request that reached the fake, as answered.
#[derive(Clone, Debug)]
pub struct Logged {
    /// e.g. `GET`.
    pub method: String,
    /// Path without the query.
    pub path: String,
    /// The query string, if any.
    pub query: Option<String>,
    /// The `Range` header, if any.
    pub range: Option<String>,
    /// Response status.
    pub status: u16,
    /// The fault applied to this response, if any.
    pub fault: Option<Fault>,
}

struct Shared {
    repos: Vec<String>,
    tags: HashMap<String, String>,
    manifests: HashMap<String, Blob>,
    blobs: HashMap<String, Blob>,
    state: Mutex<ScriptState>,
    /// Bumped by [`FaultUpstream::release_stalls`].
    stalls: watch::Sender<u64>,
}

#[derive(Default)]
struct ScriptState {
    faults: HashMap<String, (Fault, Times)>,
    log: Vec<Logged>,
}

/// A running fake registry; stops accepting connections when dropped
/// (open ones end with the test's runtime).
pub struct FaultUpstream {
    server: Server,
    shared: Arc<Shared>,
}

impl Drop for FaultUpstream {
    fn drop(&mut self) {
        self.release_stalls();
    }
}

impl FaultUpstream {
    /// Serves `image` under each of `repos`, with `tag` pointing at its index.
    pub async fn start(image: &TestImage, repos: &[&str], tag: &str) -> FaultUpstream {
        let mut manifests = HashMap::new();
        let mut blobs = HashMap::new();
        for m in std::iter::once(&image.index).chain(image.platforms.iter().map(|p| &p.manifest)) {
            manifests.insert(m.digest.clone(), m.clone());
        }
        for b in image.blobs() {
            blobs.insert(b.digest.clone(), b.clone());
        }
        let shared = Arc::new(Shared {
            repos: repos.iter().map(|r| r.to_string()).collect(),
            tags: HashMap::from([(tag.to_string(), image.index.digest.clone())]),
            manifests,
            blobs,
            state: Mutex::default(),
            stalls: watch::channel(0).0,
        });
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(shared.clone());
        let server = Server::start(app, "fake upstream")
            .await
            .expect("bind fake upstream on 127.0.0.1:0");
        FaultUpstream { server, shared }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Applies `fault` to requests for `path` (e.g. [`blob_path`]), `times` times.
    pub fn fail(&self, path: &str, fault: Fault, times: Times) {
        let mut s = self.shared.state.lock().expect("lock");
        s.faults.insert(path.to_string(), (fault, times));
    }

    /// Removes the fault on `path` and releases stalled responses.
    pub fn clear(&self, path: &str) {
        self.shared.state.lock().expect("lock").faults.remove(path);
        self.release_stalls();
    }

    /// Ends every response stalled so far (the connection is cut).
    pub fn release_stalls(&self) {
        self.shared.stalls.send_modify(|n| *n += 1);
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Logged> {
        self.shared.state.lock().expect("lock").log.clone()
    }

    /// The requests for exactly `path`, any method.
    pub fn requests_for(&self, path: &str) -> Vec<Logged> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }

    /// How many `method` requests for exactly `path` arrived.
    pub fn count(&self, method: &str, path: &str) -> usize {
        self.requests_for(path)
            .iter()
            .filter(|r| r.method == method)
            .count()
    }

    /// How many requests arrived in all.
    pub fn total(&self) -> usize {
        self.shared.state.lock().expect("lock").log.len()
    }
}

/// `/v2/<repo>/blobs/<digest>`.
pub fn blob_path(repo: &str, digest: &str) -> String {
    format!("/v2/{repo}/blobs/{digest}")
}

/// `/v2/<repo>/manifests/<reference>`.
pub fn manifest_path(repo: &str, reference: &str) -> String {
    format!("/v2/{repo}/manifests/{reference}")
}

/// Where a daemon's content store keeps blob `digest` (`sha256:<hex>`):
/// `<data-dir>/blobs/sha256/<2 hex>/<hex>`.
pub fn stored_blob(data_dir: &Path, digest: &str) -> PathBuf {
    let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
    data_dir.join("blobs/sha256").join(&hex[..2]).join(hex)
}

/// Every regular file under `dir`, recursively (none if `dir` is missing).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

impl Shared {
    /// The fault for this request, counting one use of it.
    fn take_fault(&self, method: &Method, path: &str) -> Option<Fault> {
        let mut s = self.state.lock().expect("lock");
        let (fault, times) = s.faults.get_mut(path)?;
        if fault.body_only() && method != Method::GET {
            return None;
        }
        let fault = *fault;
        match times {
            Times::Always => Some(fault),
            Times::First(0) => None,
            Times::First(n) => {
                *n -= 1;
                Some(fault)
            }
        }
    }

    fn respond(
        &self,
        method: &Method,
        path: &str,
        range: Option<&str>,
        fault: Option<Fault>,
    ) -> Response {
        match fault {
            Some(Fault::ServerError) => {
                return oci_error(StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN", "injected 500");
            }
            Some(Fault::RateLimit) => {
                let mut r = oci_error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "TOOMANYREQUESTS",
                    "slow down",
                );
                r.headers_mut()
                    .insert(header::RETRY_AFTER, http::HeaderValue::from_static("1"));
                return r;
            }
            _ => {}
        }
        if path == "/v2/" || path == "/v2" {
            return Response::new(Body::from("{}"));
        }
        let Some(rest) = path.strip_prefix("/v2/") else {
            return oci_error(StatusCode::NOT_FOUND, "UNSUPPORTED", "not a registry path");
        };
        let mut parts = rest.rsplitn(3, '/');
        let (Some(last), Some(kind), Some(name)) = (parts.next(), parts.next(), parts.next())
        else {
            return oci_error(StatusCode::NOT_FOUND, "UNSUPPORTED", "not a registry path");
        };
        if !self.repos.iter().any(|r| r == name) {
            return oci_error(StatusCode::NOT_FOUND, "NAME_UNKNOWN", "repository unknown");
        }
        let blob = match kind {
            "manifests" => {
                let digest = self.tags.get(last).map(String::as_str).unwrap_or(last);
                match self.manifests.get(digest) {
                    Some(m) => m,
                    None => {
                        return oci_error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN", "no manifest");
                    }
                }
            }
            "blobs" => match self.blobs.get(last) {
                Some(b) => b,
                None => return oci_error(StatusCode::NOT_FOUND, "BLOB_UNKNOWN", "no blob"),
            },
            _ => return oci_error(StatusCode::NOT_FOUND, "UNSUPPORTED", "not a registry path"),
        };
        self.content(method, blob, range, fault)
    }

    fn content(
        &self,
        method: &Method,
        blob: &Blob,
        range: Option<&str>,
        fault: Option<Fault>,
    ) -> Response {
        let size = blob.bytes.len() as u64;
        let (status, start, end) = match range {
            None => (StatusCode::OK, 0, size),
            Some(r) => match parse_range(r, size) {
                Some((s, e)) => (StatusCode::PARTIAL_CONTENT, s, e),
                None => return oci_error(StatusCode::RANGE_NOT_SATISFIABLE, "RANGE_INVALID", r),
            },
        };
        let part = blob.bytes.slice(start as usize..end as usize);
        let len = part.len();
        let body = if method == Method::HEAD {
            Body::empty()
        } else {
            match fault {
                Some(Fault::Truncate) => {
                    // Let hyper flush the head and the first half (it does
                    // when the body is pending) before the cut; an error
                    // right away could drop the unflushed head too.
                    let half = part.slice(..len / 2);
                    let cut = futures_util::stream::once(async {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Err(std::io::Error::other("injected truncation"))
                    });
                    Body::from_stream(futures_util::stream::iter([Ok(half)]).chain(cut))
                }
                Some(Fault::Corrupt) => {
                    let mut bad = part.to_vec();
                    if let Some(b) = bad.get_mut(len / 2) {
                        *b ^= 0x01;
                    }
                    Body::from(bad)
                }
                Some(f @ (Fault::Stall | Fault::CorruptThenStall)) => {
                    let mut first = part.slice(..len / 2).to_vec();
                    if f == Fault::Stall {
                        first.clear();
                    } else if let Some(b) = first.first_mut() {
                        *b ^= 0x01;
                    }
                    let mut released = self.stalls.subscribe();
                    let stalled_at = *released.borrow_and_update();
                    let stall = futures_util::stream::once(async move {
                        let _ = released.wait_for(|n| *n != stalled_at).await;
                        Err(std::io::Error::other("stall released"))
                    });
                    let first = (!first.is_empty()).then(|| Ok(Bytes::from(first)));
                    Body::from_stream(futures_util::stream::iter(first).chain(stall))
                }
                _ => Body::from(part),
            }
        };
        let mut resp = Response::new(body);
        *resp.status_mut() = status;
        let h = resp.headers_mut();
        h.insert(header::CONTENT_LENGTH, len.into());
        h.insert(
            header::CONTENT_TYPE,
            blob.media_type.parse().expect("media type"),
        );
        h.insert(
            "docker-content-digest",
            blob.digest.parse().expect("digest"),
        );
        if status == StatusCode::PARTIAL_CONTENT {
            let v = format!("bytes {start}-{}/{size}", end - 1);
            h.insert(header::CONTENT_RANGE, v.parse().expect("ascii"));
        }
        resp
    }
}

async fn handle(
    State(s): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let path = uri.path().to_string();
    let range = headers
        .get(header::RANGE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let fault = s.take_fault(&method, &path);
    let resp = s.respond(&method, &path, range.as_deref(), fault);
    s.state.lock().expect("lock").log.push(Logged {
        method: method.to_string(),
        path,
        query: uri.query().map(str::to_string),
        range,
        status: resp.status().as_u16(),
        fault,
    });
    resp
}

/// `bytes=a-` or `bytes=a-b` → `(start, end)` (end exclusive).
fn parse_range(h: &str, size: u64) -> Option<(u64, u64)> {
    let (a, b) = h.trim().strip_prefix("bytes=")?.split_once('-')?;
    let start: u64 = a.parse().ok()?;
    let end = if b.is_empty() {
        size
    } else {
        b.parse::<u64>().ok()?.saturating_add(1).min(size)
    };
    (start < end).then_some((start, end))
}

fn oci_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({"errors": [{"code": code, "message": message}]});
    let mut resp = Response::new(Body::from(body.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

/// A response read by [`raw_request`].
#[derive(Debug)]
pub struct RawResponse {
    /// Status code.
    pub status: u16,
    /// Header names (lower case) and values.
    pub headers: Vec<(String, String)>,
    /// The body (de-chunked).
    pub body: Vec<u8>,
}

/// Sends `METHOD TARGET HTTP/1.1` exactly as given (no normalisation of
/// `..` or percent escapes) with `Connection: close` and an empty body, and
/// reads the whole response; bounded by 60 s.
pub async fn raw_request(
    addr: SocketAddr,
    method: &str,
    target: &str,
) -> Result<RawResponse, String> {
    let exchange = async {
        let mut conn = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        let head = format!(
            "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
        );
        conn.write_all(head.as_bytes())
            .await
            .map_err(|e| format!("send: {e}"))?;
        let mut raw = Vec::new();
        // A reset after the response (the server may close with unread input) is fine.
        let _ = conn.read_to_end(&mut raw).await;
        parse_response(&raw)
    };
    tokio::time::timeout(Duration::from_secs(60), exchange)
        .await
        .map_err(|_| format!("{method} {} timed out", crate::child::tail_str(target, 80)))?
}

fn parse_response(raw: &[u8]) -> Result<RawResponse, String> {
    let text_err = || {
        format!(
            "not an HTTP response: {:?}",
            String::from_utf8_lossy(&raw[..raw.len().min(200)])
        )
    };
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(text_err)?;
    let head = std::str::from_utf8(&raw[..split]).map_err(|_| text_err())?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(text_err)?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"))
    {
        body = dechunk(&body).ok_or("bad chunked body")?;
    }
    Ok(RawResponse {
        status,
        headers,
        body,
    })
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

/// What a client got from a GET: the status (none if the request failed
/// before one), the headers, as much of the body as arrived, and the error
/// that ended it, so tests can tell a cut-off body from a complete one.
pub struct Fetched {
    /// Response status.
    pub status: Option<reqwest::StatusCode>,
    /// Response headers.
    pub headers: reqwest::header::HeaderMap,
    /// The body bytes received.
    pub body: Vec<u8>,
    /// Why the request or the body failed, with its causes.
    pub error: Option<String>,
}

impl std::fmt::Debug for Fetched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let head = &self.body[..self.body.len().min(300)];
        let text = std::str::from_utf8(head).unwrap_or("<binary>");
        f.debug_struct("Fetched")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .field("body_len", &self.body.len())
            .field("body_start", &text)
            .field("error", &self.error)
            .finish()
    }
}

impl Fetched {
    /// A header as text.
    pub fn header(&self, name: impl reqwest::header::AsHeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// 2xx, read to the end without error, and exactly `blob`'s bytes.
    pub fn is_verified(&self, blob: &Blob) -> bool {
        self.status.is_some_and(|s| s.is_success())
            && self.error.is_none()
            && crate::image::sha256_digest(&self.body) == blob.digest
    }

    /// Whether a client can tell that it did not get a whole body: an
    /// error status, a broken body, or fewer bytes than announced.
    pub fn failed_visibly(&self) -> bool {
        let announced: Option<usize> = self
            .header(reqwest::header::CONTENT_LENGTH)
            .and_then(|v| v.parse().ok());
        !self.status.is_some_and(|s| s.is_success())
            || self.error.is_some()
            || announced.is_some_and(|n| self.body.len() < n)
    }

    /// The `code` of the first entry of an OCI error body.
    pub fn oci_code(&self) -> Option<String> {
        oci_code(&self.body)
    }
}

/// The `code` of the first entry of an OCI error body
/// (`{"errors":[{"code":...}]}`), if `body` is one.
pub fn oci_code(body: &[u8]) -> Option<String> {
    let json: serde_json::Value = serde_json::from_slice(body).ok()?;
    json["errors"][0]["code"].as_str().map(str::to_string)
}

/// GETs `url` with `headers` and reads the body until it ends or breaks.
pub async fn fetch(client: &reqwest::Client, url: &str, headers: &[(&str, &str)]) -> Fetched {
    let mut req = client.get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut out = Fetched {
        status: None,
        headers: Default::default(),
        body: Vec::new(),
        error: None,
    };
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) => {
            out.error = Some(crate::http::error_chain(&e));
            return out;
        }
    };
    out.status = Some(resp.status());
    out.headers = resp.headers().clone();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(c) => out.body.extend_from_slice(&c),
            Err(e) => {
                out.error = Some(crate::http::error_chain(&e));
                break;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::{LayerSpec, PlatformSpec};
    use reqwest::StatusCode;

    /// The fake itself: every script does what it says, and is counted.
    /// (Named so that `cargo test -p shoal-tests faults` runs it too.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn faults_follow_their_scripts() {
        let layers = vec![LayerSpec {
            key: 1,
            size: 256 << 10,
        }];
        let (os, architecture) = ("linux", "amd64");
        let image = TestImage::generate(
            7,
            &[PlatformSpec {
                os,
                architecture,
                layers,
            }],
        );
        let up = FaultUpstream::start(&image, &["a/b"], "t").await;
        let layer = image.platforms[0].layers[0].clone();
        let (bpath, mpath) = (blob_path("a/b", &layer.digest), manifest_path("a/b", "t"));
        let client = crate::http::client();
        let get = |path: &str, range: &'static str| {
            let (client, url) = (client.clone(), format!("{}{path}", up.url()));
            let range: Vec<_> = [("range", range)]
                .into_iter()
                .filter(|r| !r.1.is_empty())
                .collect();
            async move { fetch(&client, &url, &range).await }
        };

        let m = get(&mpath, "").await;
        assert!(m.is_verified(&image.index), "{m:?}");
        assert_eq!(
            m.header("docker-content-digest"),
            Some(&image.index.digest[..])
        );
        up.fail(&mpath, Fault::ServerError, Times::First(1));
        assert_eq!(
            get(&mpath, "").await.status,
            Some(StatusCode::INTERNAL_SERVER_ERROR)
        );
        assert_eq!(get(&mpath, "").await.status, Some(StatusCode::OK));
        up.fail(&mpath, Fault::RateLimit, Times::First(1));
        let limited = get(&mpath, "").await;
        assert_eq!(limited.status, Some(StatusCode::TOO_MANY_REQUESTS));
        assert_eq!(limited.header("retry-after"), Some("1"));
        assert_eq!(limited.oci_code().as_deref(), Some("TOOMANYREQUESTS"));
        assert_eq!(up.count("GET", &mpath), 4);

        up.fail(&bpath, Fault::Truncate, Times::First(1));
        let cut = get(&bpath, "").await;
        assert!(
            cut.failed_visibly() && cut.body.len() < layer.bytes.len(),
            "{cut:?}"
        );
        assert!(get(&bpath, "").await.is_verified(&layer));
        up.fail(&bpath, Fault::Corrupt, Times::Always);
        for _ in 0..2 {
            let bad = get(&bpath, "").await;
            assert!(
                bad.error.is_none() && bad.body.len() == layer.bytes.len(),
                "{bad:?}"
            );
            let flipped = bad
                .body
                .iter()
                .zip(&layer.bytes[..])
                .filter(|(a, b)| a != b);
            assert_eq!(flipped.count(), 1);
        }
        up.clear(&bpath);
        let part = get(&bpath, "bytes=10-").await;
        assert_eq!(part.status, Some(StatusCode::PARTIAL_CONTENT));
        assert_eq!(part.body, layer.bytes[10..]);
        let range = format!("bytes 10-{}/{}", layer.size() - 1, layer.size());
        assert_eq!(part.header("content-range"), Some(&range[..]));

        up.fail(&bpath, Fault::Stall, Times::Always);
        let resp = client
            .get(format!("{}{bpath}", up.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let mut body = resp.bytes_stream();
        // Nothing arrives while stalled (this only waits; it cannot flake).
        let wait = tokio::time::timeout(Duration::from_millis(300), body.next()).await;
        assert!(wait.is_err(), "{wait:?}");
        up.clear(&bpath);
        let end = tokio::time::timeout(Duration::from_secs(30), body.next()).await;
        assert!(
            matches!(end, Ok(Some(Err(_)))),
            "a released stall cuts the body"
        );

        let log = up.requests_for(&bpath);
        let faults: Vec<_> = log.iter().map(|r| r.fault).collect();
        use Fault::*;
        let want = [
            Some(Truncate),
            None,
            Some(Corrupt),
            Some(Corrupt),
            None,
            Some(Stall),
        ];
        assert_eq!(faults, want, "{log:?}");
        assert_eq!(log[4].range.as_deref(), Some("bytes=10-"));
        assert_eq!(up.total(), 10);
    }

    #[test]
    fn faults_helper_parses_raw_responses() {
        let raw = b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"e\r\n1\r\n}\r\n0\r\n\r\n";
        let r = parse_response(raw).unwrap();
        assert_eq!((r.status, &r.body[..]), (404, &b"{\"e}"[..]));
        assert!(parse_response(b"garbage").is_err());
    }
}
