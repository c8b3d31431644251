//! Asking a supernode to seed a blob nobody has.
//!
//! The swarm state decides when and which supernode (rendezvous hashing);
//! this module only sends `POST {supernode}/api/v1/seed` with a
//! [`SeedRequest`] body, signed like every request between daemons (and,
//! with the cluster secret, over mutual TLS with the cluster CA). Each
//! request runs in its own task, with a timeout and a cap on requests in
//! flight, so a slow supernode never stalls the tracker. Failures are
//! logged and counted; the state asks again after its `seed_retry` when
//! the blob is still missing.

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use shoal_agent::http_auth::Auth;
use shoal_proto::wire::HttpAuth;
use tokio::sync::Semaphore;

use crate::metrics::SEED_REQUESTS;
use shoal_proto::tracker_wire::SeedRequest;

/// Longest a seeding request may take, answer included.
pub const SEED_TIMEOUT: Duration = Duration::from_secs(10);

/// Seeding requests in flight at most; more are dropped (and retried by
/// the state later).
pub const MAX_IN_FLIGHT: usize = 64;

/// The supernode endpoint, relative to a supernode's base URL.
pub const SEED_PATH: &str = "/api/v1/seed";

/// Longest part of an error answer quoted in the log.
const MAX_ERROR_BODY: usize = 512;

/// Why a seeding request failed.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    /// The supernode URL and the path do not make a URL.
    #[error("invalid seed URL {0:?}")]
    Url(String),
    /// No answer in time, or a connection error.
    #[error("seed request failed: {0}")]
    Transport(#[from] reqwest::Error),
    /// The supernode answered with a status other than 2xx.
    #[error("supernode answered {status}: {body}")]
    Rejected {
        /// The status.
        status: StatusCode,
        /// The start of the body.
        body: String,
    },
}

impl SeedError {
    /// The `result` label of [`SEED_REQUESTS`].
    fn label(&self) -> &'static str {
        match self {
            SeedError::Rejected { .. } => "rejected",
            SeedError::Url(_) | SeedError::Transport(_) => "failed",
        }
    }
}

/// Sends seeding requests. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Seeder {
    http: reqwest::Client,
    auth: Auth,
    slots: Arc<Semaphore>,
}

impl Seeder {
    /// A seeder that signs its requests with `auth` (none: unsigned, for
    /// `--insecure-no-auth`), in plain HTTP (or HTTPS with the system
    /// roots, for an `https://` supernode URL).
    pub fn new(auth: Option<HttpAuth>) -> anyhow::Result<Self> {
        Self::for_auth(auth.map_or(Auth::Insecure, Auth::Signed))
    }

    /// A seeder that sends its requests as `auth` says: a cluster member
    /// ([`Auth::Member`]) signs them and sends them over mutual TLS.
    pub fn for_auth(auth: Auth) -> anyhow::Result<Self> {
        // reqwest is built without a default TLS provider; https supernodes
        // need rustls' ring provider installed (idempotent; also done by
        // `client_builder`).
        shoal_agent::daemon::install_crypto_provider();
        let http = auth
            .client_builder()?
            .connect_timeout(Duration::from_secs(5))
            .timeout(SEED_TIMEOUT)
            // A redirect would change the signed path; refuse it.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Seeder {
            http,
            auth,
            slots: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
        })
    }

    /// Asks `supernode` (a base URL) to seed, in a task of its own.
    pub fn spawn(&self, supernode: &str, req: SeedRequest) {
        let Ok(slot) = self.slots.clone().try_acquire_owned() else {
            tracing::warn!(%supernode, blob = %req.digest, "too many seed requests in flight; dropped");
            metrics::counter!(SEED_REQUESTS, "result" => "dropped").increment(1);
            return;
        };
        let this = self.clone();
        let supernode = supernode.to_owned();
        tokio::spawn(async move {
            let result = this.send(&supernode, &req).await;
            drop(slot);
            let label = match &result {
                Ok(()) => {
                    tracing::info!(%supernode, blob = %req.digest, "supernode asked to seed");
                    "ok"
                }
                Err(e) => {
                    tracing::warn!(%supernode, blob = %req.digest, "cannot ask supernode to seed: {e}");
                    e.label()
                }
            };
            metrics::counter!(SEED_REQUESTS, "result" => label).increment(1);
        });
    }

    /// Sends one request and waits for its answer.
    pub async fn send(&self, supernode: &str, req: &SeedRequest) -> Result<(), SeedError> {
        let url = format!("{}{SEED_PATH}", supernode.trim_end_matches('/'));
        let url = self.auth.api_url(&url).map_err(|_| SeedError::Url(url))?;
        let body = serde_json::to_vec(req).expect("a SeedRequest serializes");
        let target = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        };
        let builder = self
            .http
            .post(url)
            .header(http::header::CONTENT_TYPE, "application/json");
        let mut resp = self
            .auth
            .sign(builder, "POST", &target, &body)
            .body(body)
            .send()
            .await?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        // Only the start of the body is read: enough for the log.
        let mut shown = Vec::new();
        while shown.len() < MAX_ERROR_BODY {
            match resp.chunk().await {
                Ok(Some(chunk)) => shown.extend_from_slice(&chunk),
                Ok(None) | Err(_) => break,
            }
        }
        shown.truncate(MAX_ERROR_BODY);
        Err(SeedError::Rejected {
            status,
            body: String::from_utf8_lossy(&shown).into_owned(),
        })
    }
}
