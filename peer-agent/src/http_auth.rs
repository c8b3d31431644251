//! Request authentication: every API request must carry
//! `Authorization: Shoal ts=…,sig=…`, signed with the cluster secret over
//! the method, the path with its query, the time and the body
//! (`shoal_proto::wire::HttpAuth`).
//!
//! The check needs the whole body, so this layer also enforces the body
//! size limit, in both modes. A refused request gets `401 UNAUTHORIZED`
//! with the OCI error body, before any handler (or the swarm state) sees
//! it.

use std::time::SystemTime;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use shoal_proto::wire::{AUTH_SCHEME, HttpAuth};

use crate::registry::RegistryError;

/// How a daemon's cluster-internal HTTP API authenticates requests.
#[derive(Debug, Clone)]
pub enum Auth {
    /// Requests must carry a valid `Authorization: Shoal …` signature, and
    /// outgoing requests are signed with the same key.
    Signed(HttpAuth),
    /// Nothing is checked or signed (`--insecure-no-auth`).
    Insecure,
}

impl Auth {
    /// The signer and verifier, unless authentication is off.
    pub fn http_auth(&self) -> Option<&HttpAuth> {
        match self {
            Auth::Signed(a) => Some(a),
            Auth::Insecure => None,
        }
    }

    /// Adds the signature header to an outgoing request (a no-op when
    /// authentication is off). `target` is the path with its query.
    pub fn sign(
        &self,
        req: reqwest::RequestBuilder,
        method: &str,
        target: &str,
        body: &[u8],
    ) -> reqwest::RequestBuilder {
        match self.http_auth() {
            Some(a) => req.header(
                AUTHORIZATION,
                a.sign(method, target, body, SystemTime::now()),
            ),
            None => req,
        }
    }
}

/// Largest request body accepted.
pub const MAX_BODY: usize = 64 * 1024;

/// Middleware: reads the body (at most [`MAX_BODY`]) and, unless `auth` is
/// [`Auth::Insecure`], verifies the request's signature.
pub async fn require_auth(State(auth): State<Auth>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let header = match parts.headers.get(AUTHORIZATION).map(|v| v.to_str()) {
        Some(Ok(v)) => Some(v.to_owned()),
        Some(Err(_)) => return unauthorized("Authorization header is not ASCII"),
        None => None,
    };
    let verifier = auth.http_auth();
    if verifier.is_some() && header.is_none() {
        return unauthorized(format!(
            "missing Authorization: {AUTH_SCHEME} header (sign requests with the cluster secret)"
        ));
    }
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY).await else {
        return RegistryError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "SIZE_INVALID",
            format!("request body unreadable or larger than {MAX_BODY} bytes"),
        )
        .into_response();
    };
    if let (Some(verifier), Some(header)) = (verifier, header) {
        let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let method = parts.method.as_str();
        if let Err(e) = verifier.verify(&header, method, target, &bytes, SystemTime::now()) {
            tracing::info!(%method, %target, "refused request: {e}");
            return unauthorized(e.to_string());
        }
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

fn unauthorized(message: impl Into<String>) -> Response {
    let mut resp = RegistryError::unauthorized(message).into_response();
    resp.headers_mut().insert(
        WWW_AUTHENTICATE,
        http::HeaderValue::from_static(AUTH_SCHEME),
    );
    resp
}
