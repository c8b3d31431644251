//! `GET /api/v1/access?upstream=&repo=&reference=|digest=`: may the client
//! whose `Authorization` the agent forwards (in
//! [`CLIENT_AUTH_HEADER`], absent for an anonymous client) read this
//! repository? `200` if so, `401 UNAUTHORIZED` or `403 DENIED` if not,
//! `404` when the manifest or blob is not in that repository, another
//! error when the upstream cannot tell (`docs/API.md`).
//!
//! The supernode's own credentials never count: the question goes upstream
//! as a `HEAD` with the client's credentials only
//! ([`Upstream::check_access`]), and its verdict is cached per credentials,
//! upstream and repository ([`Verdicts`]). One case costs no upstream
//! request: an anonymous client of an upstream for which the supernode has
//! no credentials may read exactly what the supernode itself may, so it is
//! allowed unless the supernode's own (anonymous) requests for that
//! repository were refused; only then is the upstream asked (once per
//! TTL), to notice when the repository opens.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode, Uri};
use shoal_agent::access::{CLIENT_AUTH_HEADER, ClientAuth, VERDICT_TTL, Verdict, Verdicts};
use shoal_agent::registry::{RegistryError, query_param};
use shoal_agent::upstream::{AccessTarget, Upstream, UpstreamError};
use shoal_proto::{Digest, Reference, RepoName};
use tracing::instrument;

use crate::Supernode;
use crate::api::{param, target};

/// Most repositories remembered as refusing anonymous access.
const MAX_PRIVATE: usize = 16 * 1024;

/// Access verdicts, and where anonymous requests were refused.
pub struct AccessChecks {
    verdicts: Verdicts,
    /// (upstream, repo) whose anonymous requests got a 401 or 403.
    private: Mutex<HashSet<(String, RepoName)>>,
}

impl Default for AccessChecks {
    fn default() -> Self {
        AccessChecks {
            verdicts: Verdicts::new(VERDICT_TTL),
            private: Mutex::default(),
        }
    }
}

impl AccessChecks {
    /// Notes a refusal (401 or 403) of the supernode's own request for
    /// `repo`: with no credentials configured, the repository is closed to
    /// anonymous clients.
    pub fn note_refused(&self, upstream: &Upstream, repo: &RepoName, status: StatusCode) {
        if upstream.has_credentials()
            || !matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN)
        {
            return;
        }
        let mut private = self.private.lock().expect("private lock");
        if private.len() >= MAX_PRIVATE {
            // Forgetting only costs anonymous probes of these repositories.
            private.clear();
        }
        private.insert((upstream.name().to_owned(), repo.clone()));
    }

    /// Whether anonymous requests for `repo` were refused (and, with
    /// `open`, forgets that).
    fn refused_anonymous(&self, upstream: &Upstream, repo: &RepoName, open: bool) -> bool {
        let key = (upstream.name().to_owned(), repo.clone());
        let mut private = self.private.lock().expect("private lock");
        if open {
            private.remove(&key)
        } else {
            private.contains(&key)
        }
    }

    /// `Ok` when `client` may read `repo` of `upstream`.
    pub async fn check(
        &self,
        upstream: &Upstream,
        repo: &RepoName,
        target: &AccessTarget,
        client: &ClientAuth,
    ) -> Result<(), RegistryError> {
        let ask = || async {
            let like_us = client.is_anonymous() && !upstream.has_credentials();
            if like_us && !self.refused_anonymous(upstream, repo, false) {
                return Ok(Verdict::Allowed);
            }
            match upstream.check_access(repo, target, client.header()).await {
                Ok(()) => {
                    if like_us {
                        self.refused_anonymous(upstream, repo, true);
                    }
                    Ok(Verdict::Allowed)
                }
                Err(e @ (UpstreamError::Unauthorized(_) | UpstreamError::Denied(_))) => {
                    if client.is_anonymous() {
                        tracing::info!(upstream = %upstream.name(), %repo,
                            "repository refuses anonymous clients");
                    }
                    Verdict::from_error(e.into())
                }
                Err(UpstreamError::NotFound) => Err(match target {
                    AccessTarget::Manifest(r) => RegistryError::manifest_unknown(r),
                    AccessTarget::Blob(d) => RegistryError::blob_unknown(d),
                }),
                Err(e) => Verdict::from_error(e.into()),
            }
        };
        self.verdicts
            .check(client, upstream.name(), repo, ask)
            .await
    }
}

/// The handler of `GET /api/v1/access`.
#[instrument(skip_all, fields(uri = %uri))]
pub async fn access(State(s): State<Arc<Supernode>>, uri: Uri, headers: HeaderMap) -> Response {
    let res = async {
        let (upstream, repo) = target(&s, &uri)?;
        let what = match (query_param(&uri, "reference"), query_param(&uri, "digest")) {
            (Some(r), None) => AccessTarget::Manifest(Reference::parse(&r)?),
            (None, Some(_)) => AccessTarget::Blob(Digest::parse(&param(&uri, "digest")?)?),
            _ => {
                return Err(RegistryError::name_invalid(
                    "give exactly one of the query parameters \"reference\" and \"digest\"",
                ));
            }
        };
        let client = ClientAuth::from_headers(&headers, CLIENT_AUTH_HEADER);
        s.access.check(upstream, &repo, &what, &client).await?;
        Ok::<_, RegistryError>(StatusCode::OK.into_response())
    };
    res.await.unwrap_or_else(IntoResponse::into_response)
}
