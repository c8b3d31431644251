//! The read-only subset of the distribution API the benchmarks need:
//! `GET /v2/`, `GET|HEAD /v2/<repo>/manifests/<tag|digest>` and
//! `GET|HEAD /v2/<repo>/blobs/<digest>` with single-range `Range` requests.
//! Everything else gets the OCI error JSON.

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use super::AppState;
use crate::image::Blob;

/// Body chunk when the upstream is capped: small enough that capped
/// connections take turns finely.
const CAPPED_CHUNK: usize = 64 * 1024;
/// Body chunk when it is not.
const FREE_CHUNK: usize = 1 << 20;

pub(super) fn router(state: AppState) -> Router {
    Router::new().fallback(handle).with_state(state)
}

async fn handle(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let head = match method {
        Method::GET => false,
        Method::HEAD => true,
        _ => {
            return oci_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "UNSUPPORTED",
                "read-only registry",
            );
        }
    };
    let path = uri.path();
    if path == "/v2/" || path == "/v2" {
        return ([("docker-distribution-api-version", "registry/2.0")], "{}").into_response();
    }
    let Some(rest) = path.strip_prefix("/v2/") else {
        return oci_error(StatusCode::NOT_FOUND, "UNSUPPORTED", "not a registry path");
    };
    if let Some((repo, reference)) = rest.rsplit_once("/manifests/") {
        if repo != state.config.repo {
            return oci_error(StatusCode::NOT_FOUND, "NAME_UNKNOWN", repo);
        }
        return manifest(&state, reference, head);
    }
    if let Some((repo, digest)) = rest.rsplit_once("/blobs/") {
        if repo != state.config.repo {
            return oci_error(StatusCode::NOT_FOUND, "NAME_UNKNOWN", repo);
        }
        return blob(&state, digest, head, headers.get(header::RANGE));
    }
    oci_error(StatusCode::NOT_FOUND, "UNSUPPORTED", "unknown endpoint")
}

fn manifest(state: &AppState, reference: &str, head: bool) -> Response {
    let m = &state.config.image.manifest;
    if reference != state.config.tag && reference != m.digest {
        return oci_error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN", reference);
    }
    state.counters.count(&m.digest, head);
    let body = if head {
        Body::empty()
    } else {
        state.counters.add_bytes(m.size());
        Body::from(m.bytes.clone())
    };
    let mut resp = Response::new(body);
    set_blob_headers(resp.headers_mut(), m, m.size());
    resp
}

fn blob(state: &AppState, digest: &str, head: bool, range: Option<&HeaderValue>) -> Response {
    let Some(blob) = state.blob(digest) else {
        return oci_error(StatusCode::NOT_FOUND, "BLOB_UNKNOWN", digest);
    };
    state.counters.count(digest, head);
    let total = blob.size();
    let (status, start, end) = match range.map(|r| parse_range(r.to_str().unwrap_or(""), total)) {
        None => (StatusCode::OK, 0, total),
        Some(Some((start, end))) => (StatusCode::PARTIAL_CONTENT, start, end),
        Some(None) => {
            let mut resp = oci_error(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "BLOB_UNKNOWN",
                "bad range",
            );
            resp.headers_mut().insert(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&format!("bytes */{total}")).expect("ascii"),
            );
            return resp;
        }
    };
    let body = if head {
        Body::empty()
    } else {
        stream_body(state, blob.bytes.slice(start as usize..end as usize))
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    set_blob_headers(resp.headers_mut(), blob, end - start);
    if status == StatusCode::PARTIAL_CONTENT {
        let value = format!("bytes {start}-{}/{total}", end - 1);
        resp.headers_mut().insert(
            header::CONTENT_RANGE,
            HeaderValue::from_str(&value).expect("ascii"),
        );
    }
    resp
}

/// The body in chunks, each let through the shared throttle and counted as
/// it is handed to the connection.
fn stream_body(state: &AppState, bytes: Bytes) -> Body {
    let throttle = state.config.throttle.clone();
    let chunk = if throttle.is_limited() {
        CAPPED_CHUNK
    } else {
        FREE_CHUNK
    };
    let counters = state.counters.clone();
    let stream = futures_util::stream::unfold(bytes, move |mut rest| {
        let throttle = throttle.clone();
        let counters = counters.clone();
        async move {
            if rest.is_empty() {
                return None;
            }
            let piece = rest.split_to(chunk.min(rest.len()));
            throttle.consume(piece.len() as u64).await;
            counters.add_bytes(piece.len() as u64);
            Some((Ok::<_, std::convert::Infallible>(piece), rest))
        }
    });
    Body::from_stream(stream)
}

fn set_blob_headers(headers: &mut HeaderMap, blob: &Blob, len: u64) {
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(blob.media_type),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(
        "docker-content-digest",
        HeaderValue::from_str(&blob.digest).expect("digest is ascii"),
    );
}

/// A single range `bytes=a-b`, `bytes=a-` or `bytes=-n` of a `total`-byte
/// blob as a half-open `[start, end)`, or `None` if unsatisfiable.
pub(crate) fn parse_range(value: &str, total: u64) -> Option<(u64, u64)> {
    let spec = value.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    let (start, end) = if first.is_empty() {
        let n: u64 = last.parse().ok()?;
        (total.checked_sub(n.min(total))?, total)
    } else {
        let start: u64 = first.parse().ok()?;
        let end = if last.is_empty() {
            total
        } else {
            last.parse::<u64>().ok()?.saturating_add(1).min(total)
        };
        (start, end)
    };
    (start < end).then_some((start, end))
}

fn oci_error(status: StatusCode, code: &str, detail: &str) -> Response {
    let body = serde_json::json!({
        "errors": [{"code": code, "message": code.to_lowercase().replace('_', " "), "detail": detail}]
    });
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-99", 1000), Some((0, 100)));
        assert_eq!(parse_range("bytes=900-", 1000), Some((900, 1000)));
        assert_eq!(parse_range("bytes=-100", 1000), Some((900, 1000)));
        assert_eq!(parse_range("bytes=990-2000", 1000), Some((990, 1000)));
        assert_eq!(parse_range("bytes=1000-", 1000), None);
        assert_eq!(parse_range("bytes=0-1,5-6", 1000), None);
        assert_eq!(parse_range("items=0-1", 1000), None);
    }
}
