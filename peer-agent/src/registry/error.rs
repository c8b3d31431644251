//! Registry errors the OCI way: an HTTP status plus the JSON body
//! `{"errors":[{"code","message","detail"}]}` with the distribution spec's
//! codes. Every error a client or an agent sees is built here.

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::{Deserialize, Serialize};

/// One OCI registry error, ready to be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub struct RegistryError {
    /// HTTP status.
    pub status: StatusCode,
    /// OCI error code such as `BLOB_UNKNOWN`.
    pub code: String,
    /// Human-readable message.
    pub message: String,
    /// Optional extra detail.
    pub detail: Option<String>,
    /// Seconds for `Retry-After`, with `TOOMANYREQUESTS`.
    pub retry_after: Option<u64>,
    /// `WWW-Authenticate` value, with `UNAUTHORIZED`.
    pub challenge: Option<String>,
}

/// Wire form of the error body.
#[derive(Debug, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The errors; Shoal always sends exactly one.
    pub errors: Vec<ErrorEntry>,
}

/// One entry of [`ErrorBody`].
#[derive(Debug, Serialize, Deserialize)]
pub struct ErrorEntry {
    /// OCI error code.
    pub code: String,
    /// Message.
    #[serde(default)]
    pub message: String,
    /// Detail, free-form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<serde_json::Value>,
}

impl RegistryError {
    /// An error with the given status, code and message.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        RegistryError {
            status,
            code: code.to_owned(),
            message: message.into(),
            detail: None,
            retry_after: None,
            challenge: None,
        }
    }

    /// Adds a detail string.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// 404 `BLOB_UNKNOWN`.
    pub fn blob_unknown(digest: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "BLOB_UNKNOWN",
            format!("blob unknown to registry: {digest}"),
        )
    }

    /// 404 `MANIFEST_UNKNOWN`.
    pub fn manifest_unknown(reference: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "MANIFEST_UNKNOWN",
            format!("manifest unknown: {reference}"),
        )
    }

    /// 400 `NAME_INVALID`.
    pub fn name_invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "NAME_INVALID", message)
    }

    /// 404 `NAME_UNKNOWN`: a registry or repository this mirror does not serve.
    pub fn name_unknown(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NAME_UNKNOWN", message)
    }

    /// 400 `DIGEST_INVALID`.
    pub fn digest_invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "DIGEST_INVALID", message)
    }

    /// 401 `UNAUTHORIZED`.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", message)
    }

    /// 403 `DENIED`.
    pub fn denied(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "DENIED", message)
    }

    /// 405 `UNSUPPORTED`: push, delete and anything else a pull mirror does not do.
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED", message)
    }

    /// 429 `TOOMANYREQUESTS`.
    pub fn too_many_requests(message: impl Into<String>, retry_after: Option<u64>) -> Self {
        let mut e = Self::new(StatusCode::TOO_MANY_REQUESTS, "TOOMANYREQUESTS", message);
        e.retry_after = retry_after;
        e
    }

    /// 416 with `RANGE_INVALID` (a code registries use for bad ranges).
    pub fn range_invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::RANGE_NOT_SATISFIABLE, "RANGE_INVALID", message)
    }

    /// 502 `UNAVAILABLE`: the upstream (or the supernode) failed us.
    pub fn bad_gateway(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, "UNAVAILABLE", message)
    }

    /// 503 `UNAVAILABLE`: temporarily unable to serve.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE", message)
    }

    /// 500 `UNKNOWN`: a local failure such as a disk error.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN", message)
    }

    /// Rebuilds an error from a response of another Shoal daemon (or a
    /// registry), keeping its status and first error entry.
    pub fn from_response_body(status: StatusCode, body: &[u8]) -> Self {
        match serde_json::from_slice::<ErrorBody>(body) {
            Ok(b) if !b.errors.is_empty() => {
                let e = &b.errors[0];
                let mut err = Self::new(status, &e.code, e.message.clone());
                err.detail = e.detail.as_ref().map(|d| match d {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                });
                err
            }
            _ => {
                let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
                Self::new(
                    status,
                    "UNKNOWN",
                    format!("unexpected response {status}: {text}"),
                )
            }
        }
    }

    /// The JSON body.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            errors: vec![ErrorEntry {
                code: self.code.clone(),
                message: self.message.clone(),
                detail: self.detail.clone().map(serde_json::Value::String),
            }],
        }
    }
}

impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.body()).unwrap_or_default();
        let mut resp = (
            self.status,
            [(http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response();
        resp.headers_mut().insert(
            "docker-distribution-api-version",
            http::HeaderValue::from_static("registry/2.0"),
        );
        if let Some(v) = self
            .challenge
            .and_then(|c| http::HeaderValue::from_str(&c).ok())
        {
            resp.headers_mut().insert(http::header::WWW_AUTHENTICATE, v);
        }
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(http::header::RETRY_AFTER, http::HeaderValue::from(secs));
        }
        resp
    }
}

impl From<shoal_proto::NameError> for RegistryError {
    fn from(e: shoal_proto::NameError) -> Self {
        match e {
            shoal_proto::NameError::Digest(d) => RegistryError::digest_invalid(d.to_string()),
            other => RegistryError::name_invalid(other.to_string()),
        }
    }
}

impl From<shoal_proto::DigestError> for RegistryError {
    fn from(e: shoal_proto::DigestError) -> Self {
        RegistryError::digest_invalid(e.to_string())
    }
}

impl From<crate::upstream::UpstreamError> for RegistryError {
    /// Maps an upstream failure to what a client should see. `NotFound`
    /// becomes a generic `NAME_UNKNOWN`; callers that know whether a
    /// manifest or a blob was missing match it first.
    fn from(e: crate::upstream::UpstreamError) -> Self {
        use crate::upstream::UpstreamError as U;
        match e {
            U::NotFound => RegistryError::name_unknown("not found upstream"),
            U::Unauthorized(m) => RegistryError::unauthorized(format!("upstream: {m}")),
            U::Denied(m) => RegistryError::denied(format!("upstream: {m}")),
            U::TooManyRequests { retry_after } => RegistryError::too_many_requests(
                "upstream is rate limiting requests",
                retry_after.map(|d| d.as_secs().max(1)),
            ),
            U::Timeout(m) => RegistryError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "UNAVAILABLE",
                format!("upstream timed out: {m}"),
            ),
            other => RegistryError::bad_gateway(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_json() {
        let e = RegistryError::blob_unknown("sha256:00").with_detail("x");
        let body = serde_json::to_vec(&e.body()).unwrap();
        let back = RegistryError::from_response_body(e.status, &body);
        assert_eq!(back, e);
    }

    #[test]
    fn garbage_body_becomes_unknown() {
        let e = RegistryError::from_response_body(StatusCode::BAD_GATEWAY, b"<html>");
        assert_eq!(e.code, "UNKNOWN");
        assert!(e.message.contains("<html>"));
    }
}
