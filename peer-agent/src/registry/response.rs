//! Building registry responses for manifests and blobs, shared by the
//! agent's mirror and the supernode's API so both speak identically.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use shoal_proto::Digest;

use super::{RegistryError, parse_range};
use crate::fetch::BlobHandle;

/// `Docker-Distribution-API-Version`.
pub const API_VERSION_HEADER: &str = "docker-distribution-api-version";

/// The answer to `GET /v2/`.
pub fn v2_base_response() -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/json"),
            (
                header::HeaderName::from_static(API_VERSION_HEADER),
                "registry/2.0",
            ),
        ],
        "{}",
    )
        .into_response()
}

/// A manifest with its media type and digest; the body is omitted for HEAD.
pub fn manifest_response(
    method: &Method,
    media_type: &str,
    digest: &Digest,
    bytes: Bytes,
) -> Response {
    let len = bytes.len();
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        Body::from(bytes)
    };
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(media_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    insert_digest(h, digest);
    resp
}

/// A blob (or the requested `Range` of it), streamed as it becomes available.
pub fn blob_response(
    method: &Method,
    request: &HeaderMap,
    blob: BlobHandle,
) -> Result<Response, RegistryError> {
    let size = blob.size();
    let range_header = request
        .get(header::RANGE)
        .map(|v| v.to_str().unwrap_or("invalid"));
    let range = parse_range(range_header, size)?;
    let (status, start, end) = match range {
        Some(r) => (StatusCode::PARTIAL_CONTENT, r.start, r.end),
        None => (StatusCode::OK, 0, size),
    };
    let digest = *blob.digest();
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        Body::from_stream(blob.stream(start..end))
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if range.is_some() {
        let v = format!("bytes {start}-{}/{size}", end - 1);
        h.insert(
            header::CONTENT_RANGE,
            HeaderValue::from_str(&v).expect("ascii"),
        );
    }
    insert_digest(h, &digest);
    Ok(resp)
}

fn insert_digest(h: &mut HeaderMap, digest: &Digest) {
    h.insert(
        "docker-content-digest",
        HeaderValue::from_str(&digest.to_string()).expect("ascii"),
    );
    h.insert(API_VERSION_HEADER, HeaderValue::from_static("registry/2.0"));
    h.insert(
        header::ETAG,
        HeaderValue::from_str(&format!("\"{digest}\"")).expect("ascii"),
    );
}
