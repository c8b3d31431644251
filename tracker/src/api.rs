//! The tracker's HTTP API (documented in `docs/API.md`, "Tracker API"):
//!
//! - `POST /api/v1/announce`: [`AnnounceRequest`] → [`AnnounceResponse`];
//! - `GET /api/v1/swarm/{digest}`: [`SwarmView`], a debug view.
//!
//! Every route sits behind [`require_auth`](shoal_agent::http_auth::require_auth).
//! Errors are OCI-style JSON bodies with a matching status.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, middleware};
use http::StatusCode;
use shoal_agent::registry::RegistryError;
use shoal_proto::Digest;
use tracing::instrument;

use crate::metrics::ANNOUNCES;
use crate::state::{CallError, TrackerHandle};
use shoal_agent::http_auth::{Auth, require_auth};
use shoal_proto::tracker_wire::{AnnounceRequest, AnnounceResponse, SwarmView};

/// Error code of a malformed or invalid announce (400).
pub const ANNOUNCE_INVALID: &str = "ANNOUNCE_INVALID";

/// The API router (without `/healthz` and `/metrics`), authenticated as
/// `auth` says.
pub fn app(handle: TrackerHandle, auth: Auth) -> Router {
    Router::new()
        .route("/api/v1/announce", post(announce))
        .route("/api/v1/swarm/{digest}", get(swarm))
        .route_layer(middleware::from_fn_with_state(auth, require_auth))
        .fallback(|| async {
            RegistryError::new(StatusCode::NOT_FOUND, "UNSUPPORTED", "unknown endpoint")
        })
        .with_state(handle)
}

fn invalid(message: impl Into<String>) -> RegistryError {
    RegistryError::new(StatusCode::BAD_REQUEST, ANNOUNCE_INVALID, message)
}

fn stopped() -> RegistryError {
    RegistryError::unavailable("tracker is shutting down")
}

#[instrument(skip_all, fields(blob, peer))]
async fn announce(
    State(handle): State<TrackerHandle>,
    body: Bytes,
) -> Result<Json<AnnounceResponse>, RegistryError> {
    let req: AnnounceRequest = serde_json::from_slice(&body)
        .map_err(|e| invalid(format!("invalid announce body: {e}")))?;
    let span = tracing::Span::current();
    span.record("blob", tracing::field::display(&req.blob));
    span.record("peer", req.peer);
    let (announce, origin) = req.into_parts().map_err(|e| invalid(e.to_string()))?;
    let reply = handle
        .announce(announce, origin)
        .await
        .map_err(|e| match e {
            CallError::Rejected(e) => invalid(e.to_string()),
            CallError::Stopped => stopped(),
        })?;
    metrics::counter!(ANNOUNCES).increment(1);
    Ok(Json(AnnounceResponse::from(reply)))
}

#[instrument(skip_all, fields(digest = %digest))]
async fn swarm(
    State(handle): State<TrackerHandle>,
    Path(digest): Path<String>,
) -> Result<Json<SwarmView>, RegistryError> {
    let blob = Digest::parse(&digest).map_err(|e| RegistryError::digest_invalid(e.to_string()))?;
    let view = handle
        .swarm(blob)
        .await
        .map_err(|_| stopped())?
        .ok_or_else(|| RegistryError::blob_unknown(blob))?;
    Ok(Json(view))
}
