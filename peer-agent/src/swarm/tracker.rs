//! The tracker's announce API, as the agent calls it (`docs/API.md`,
//! "Tracker API"): signed JSON over HTTP with a timeout; a cluster member
//! ([`Auth::Member`]) sends it over mutual TLS with the cluster CA.

use std::time::Duration;

use shoal_proto::tracker_wire::{AnnounceRequest, AnnounceResponse};

use crate::http_auth::Auth;

/// Longest wait for an announce.
const ANNOUNCE_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest announce reply read.
const MAX_REPLY: usize = 1024 * 1024;

/// Why an announce failed.
#[derive(Debug, thiserror::Error)]
pub enum AnnounceError {
    /// The tracker could not be reached or did not answer in time.
    #[error("tracker unreachable: {0}")]
    Transport(String),
    /// The tracker answered with an error status.
    #[error("tracker refused the announce: {status} {body}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The start of its body.
        body: String,
    },
    /// The reply was not an announce response.
    #[error("invalid tracker reply: {0}")]
    Invalid(String),
}

/// A client for one tracker. Cheap to clone.
#[derive(Clone, Debug)]
pub struct TrackerClient {
    http: reqwest::Client,
    base: String,
    auth: Auth,
}

impl TrackerClient {
    /// A client for the tracker at `base` (e.g. `http://tracker:65010`),
    /// signing requests with `auth`; a member dials it over TLS, as
    /// `https://` (see [`Auth::api_url`]).
    pub fn new(base: &str, auth: Auth) -> anyhow::Result<Self> {
        let url = auth
            .api_url(base)
            .map_err(|e| anyhow::anyhow!("tracker URL: {e}"))?;
        let http = auth.client_builder()?.timeout(ANNOUNCE_TIMEOUT).build()?;
        Ok(TrackerClient {
            http,
            base: url.as_str().trim_end_matches('/').to_owned(),
            auth,
        })
    }

    /// Announces and returns the tracker's peer list and interval.
    pub async fn announce(&self, req: &AnnounceRequest) -> Result<AnnounceResponse, AnnounceError> {
        let target = "/api/v1/announce";
        let body = serde_json::to_vec(req).map_err(|e| AnnounceError::Invalid(e.to_string()))?;
        let builder = self
            .http
            .post(format!("{}{target}", self.base))
            .header(http::header::CONTENT_TYPE, "application/json");
        let resp = self
            .auth
            .sign(builder, "POST", target, &body)
            .body(body)
            .send()
            .await
            .map_err(|e| AnnounceError::Transport(e.to_string()))?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| AnnounceError::Transport(e.to_string()))?;
        if !status.is_success() {
            let mut body = String::from_utf8_lossy(&bytes).into_owned();
            body.truncate(200);
            return Err(AnnounceError::Refused {
                status: status.as_u16(),
                body,
            });
        }
        if bytes.len() > MAX_REPLY {
            return Err(AnnounceError::Invalid("reply too large".into()));
        }
        serde_json::from_slice(&bytes).map_err(|e| AnnounceError::Invalid(e.to_string()))
    }
}
