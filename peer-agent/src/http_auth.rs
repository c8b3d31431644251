//! Request authentication: every API request must carry
//! `Authorization: Shoal ts=…,sig=…`, signed with the cluster secret over
//! the method, the path with its query, the time and the body
//! (`shoal_proto::wire::HttpAuth`).
//!
//! The check needs the whole body, so this layer also enforces the body
//! size limit, in both modes. A refused request gets `401 UNAUTHORIZED`
//! with the OCI error body, before any handler (or the swarm state) sees
//! it.
//!
//! With the cluster secret, the same APIs are also served only over mutual
//! TLS with the cluster CA ([`ClusterTls`]); a member ([`Auth::Member`])
//! dials them over TLS whatever the scheme of the configured URL
//! ([`Auth::api_url`]), and a connection in plain HTTP gets only
//! [`tls_required`] (besides `/healthz` and `/metrics`).

use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use reqwest::Url;
use shoal_proto::wire::{AUTH_SCHEME, ClusterSecret, HttpAuth};

use crate::p2p::tls::{ClusterTls, TlsSetupError};
use crate::registry::RegistryError;

/// How a daemon's cluster-internal HTTP API authenticates requests.
#[derive(Debug, Clone)]
pub enum Auth {
    /// Requests must carry a valid `Authorization: Shoal …` signature, and
    /// outgoing requests are signed with the same key (over plain HTTP:
    /// for tests of the signature alone; daemons use [`Auth::Member`]).
    Signed(HttpAuth),
    /// A cluster member: requests are signed as with [`Auth::Signed`] and
    /// sent over mutual TLS with the cluster CA.
    Member {
        /// The request signer.
        sign: HttpAuth,
        /// This node's TLS identity.
        tls: Arc<ClusterTls>,
    },
    /// Nothing is checked or signed (`--insecure-no-auth`).
    Insecure,
}

impl Auth {
    /// A cluster member of `secret`: signs its requests and sends them
    /// over TLS with a member certificate of its own.
    pub fn member(secret: &ClusterSecret) -> Result<Self, TlsSetupError> {
        Ok(Auth::Member {
            sign: secret.http_auth(),
            tls: Arc::new(ClusterTls::new(secret)?),
        })
    }

    /// The signer and verifier, unless authentication is off.
    pub fn http_auth(&self) -> Option<&HttpAuth> {
        match self {
            Auth::Signed(a) | Auth::Member { sign: a, .. } => Some(a),
            Auth::Insecure => None,
        }
    }

    /// The TLS identity, for a member.
    pub fn tls(&self) -> Option<&Arc<ClusterTls>> {
        match self {
            Auth::Member { tls, .. } => Some(tls),
            Auth::Signed(_) | Auth::Insecure => None,
        }
    }

    /// A reqwest client builder for the daemons' APIs: for a member, TLS
    /// with the cluster CA and our member certificate, HTTPS only.
    pub fn client_builder(&self) -> Result<reqwest::ClientBuilder, TlsSetupError> {
        crate::daemon::install_crypto_provider();
        let builder = reqwest::Client::builder();
        Ok(match self.tls() {
            Some(tls) => builder
                .tls_backend_preconfigured(tls.http_client_config()?)
                .https_only(true)
                .http1_only(),
            None => builder,
        })
    }

    /// The base URL `base` (`http://` or `https://`) as this node dials it:
    /// a member always dials `https://` (an `http://` URL is upgraded, on
    /// the same port), since a daemon with the cluster secret serves its
    /// API only over TLS.
    pub fn api_url(&self, base: &str) -> anyhow::Result<Url> {
        let mut url = Url::parse(base).map_err(|e| anyhow::anyhow!("invalid URL {base:?}: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            anyhow::bail!("URL must be http:// or https://, got {base}");
        }
        if self.tls().is_some() && url.scheme() == "http" {
            let port = url.port_or_known_default();
            url.set_scheme("https")
                .expect("http and https are both special");
            url.set_port(port).expect("an http URL has a host");
        }
        Ok(url)
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

/// The answer to a plain-HTTP request for a daemon's API when the daemon
/// serves it only over TLS: `401 UNAUTHORIZED`, saying what to do.
pub async fn tls_required() -> Response {
    unauthorized(
        "this API is served only over TLS to members of the cluster: give this node the \
         cluster secret (--cluster-secret-file); it then connects with TLS",
    )
}

fn unauthorized(message: impl Into<String>) -> Response {
    let mut resp = RegistryError::unauthorized(message).into_response();
    resp.headers_mut().insert(
        WWW_AUTHENTICATE,
        http::HeaderValue::from_static(AUTH_SCHEME),
    );
    resp
}
