//! The supernode's HTTP API for agents (documented in `docs/API.md`):
//!
//! - `GET|HEAD /api/v1/manifests?upstream=NAME&repo=REPO&reference=TAG|DIGEST`
//! - `GET|HEAD /api/v1/blobs?upstream=NAME&repo=REPO&digest=DIGEST` (with `Range`)
//! - `GET /api/v1/piecemap?upstream=NAME&repo=REPO&digest=DIGEST&known=K`
//! - `GET /api/v1/access?upstream=NAME&repo=REPO&reference=REF|digest=DIGEST`
//!   (may the client whose credentials the agent forwards read it; see
//!   [`access`])
//! - `POST /api/v1/seed` (for the tracker, only with a cluster secret; see
//!   [`seeding`])
//!
//! With a cluster secret (`--cluster-secret-file`) the API is served only
//! over mutual TLS with the cluster CA (`shoal_agent::daemon::serve_cluster_api`)
//! and every route requires `Authorization: Shoal ts=…,sig=…` signed with
//! it ([`shoal_agent::http_auth`]); an agent's client's own credentials
//! travel in `Shoal-Client-Authorization`. Without a secret the API is
//! plain HTTP, open to anyone who can reach it.
//!
//! Responses and errors have the same shape as a registry's, so an agent
//! can pass them through unchanged.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::{HeaderMap, Method, Uri};
use shoal_agent::fetch::FetchError;
use shoal_agent::http_auth::require_auth;
use shoal_agent::registry::{RegistryError, blob_response, manifest_response, query_param};
use shoal_agent::upstream::Upstream;
use shoal_proto::{Digest, Reference, RepoName};
use tracing::instrument;

use crate::source::upstream_source;
use crate::{Supernode, access, seeding};

/// The API router (without `/healthz` and `/metrics`). With a cluster
/// secret every route requires a request signed with it (`401` otherwise),
/// and `POST /api/v1/seed` exists; without one the API answers anyone who
/// can reach it.
pub fn app(state: Arc<Supernode>) -> Router {
    let mut router = Router::new()
        .route("/api/v1/manifests", get(manifest))
        .route("/api/v1/blobs", get(blob))
        .route("/api/v1/piecemap", get(seeding::piece_map))
        .route("/api/v1/access", get(access::access));
    if let Some(auth) = state.auth.clone() {
        // Only the tracker asks for seeding; only members may ask anything.
        router = router
            .route("/api/v1/seed", post(seeding::seed))
            .route_layer(middleware::from_fn_with_state(auth, require_auth));
    }
    router
        .fallback(|| async {
            RegistryError::new(
                http::StatusCode::NOT_FOUND,
                "UNSUPPORTED",
                "unknown endpoint",
            )
        })
        .with_state(state)
}

pub(crate) fn param(uri: &Uri, key: &str) -> Result<String, RegistryError> {
    query_param(uri, key)
        .ok_or_else(|| RegistryError::name_invalid(format!("missing query parameter {key:?}")))
}

pub(crate) fn target<'a>(
    s: &'a Supernode,
    uri: &Uri,
) -> Result<(&'a Upstream, RepoName), RegistryError> {
    let name = param(uri, "upstream")?;
    let upstream = s.upstreams.get(&name).ok_or_else(|| {
        let mut shown = name.clone();
        shown.truncate(100);
        RegistryError::name_unknown(format!(
            "upstream {shown:?} is not configured on this supernode"
        ))
    })?;
    Ok((upstream, RepoName::parse(&param(uri, "repo")?)?))
}

#[instrument(skip_all, fields(uri = %uri))]
async fn manifest(State(s): State<Arc<Supernode>>, method: Method, uri: Uri) -> Response {
    let res = async {
        let (upstream, repo) = target(&s, &uri)?;
        let reference = Reference::parse(&param(&uri, "reference")?)?;
        let m = s
            .manifests
            .get(upstream, &repo, &reference)
            .await
            .inspect_err(|e| s.access.note_refused(upstream, &repo, e.status))?;
        Ok::<_, RegistryError>(manifest_response(
            &method,
            &m.media_type,
            &m.digest,
            m.bytes,
        ))
    };
    res.await.unwrap_or_else(IntoResponse::into_response)
}

#[instrument(skip_all, fields(uri = %uri))]
async fn blob(
    State(s): State<Arc<Supernode>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let res = async {
        let (upstream, repo) = target(&s, &uri)?;
        let digest = Digest::parse(&param(&uri, "digest")?)?;
        let handle = s
            .fetcher
            .get(&digest, || {
                upstream_source(upstream.clone(), repo.clone(), digest)
            })
            .await
            .inspect_err(|e| {
                if let FetchError::Source(e) = e {
                    s.access.note_refused(upstream, &repo, e.status);
                }
            })?;
        blob_response(&method, &headers, handle)
    };
    res.await.unwrap_or_else(IntoResponse::into_response)
}
