//! Access checks with a client's own credentials: may this client read
//! this repository? A `HEAD` of the manifest or blob the client asked for,
//! sent anonymously or with the client's `Authorization`, never with the
//! configured credentials. A Bearer challenge is answered by asking the
//! realm for a token with the client's credentials (Basic, as Docker
//! clients send them), so a client only gets what the upstream grants it.

use http::{HeaderValue, Method, StatusCode};
use shoal_proto::{Digest, Reference, RepoName};

use super::auth::pull_scope;
use super::challenge::challenges_of;
use super::request::{Authorization, Req};
use super::{Inner, UpstreamError};

/// What an access check asks the upstream about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AccessTarget {
    /// `HEAD /v2/<repo>/manifests/<reference>`.
    Manifest(Reference),
    /// `HEAD /v2/<repo>/blobs/<digest>`.
    Blob(Digest),
}

impl Inner {
    /// `Ok` when `client` (an `Authorization` value, or `None` for an
    /// anonymous client) may read `target` in `repo`: the upstream answered
    /// the `HEAD` with a success. A 401 is [`UpstreamError::Unauthorized`],
    /// a 403 [`UpstreamError::Denied`], a 404 [`UpstreamError::NotFound`]
    /// (the content is not in that repository, whoever asks).
    pub(super) async fn check_access(
        &self,
        repo: &RepoName,
        target: &AccessTarget,
        client: Option<&HeaderValue>,
    ) -> Result<(), UpstreamError> {
        let req = match target {
            AccessTarget::Manifest(reference) => {
                self.manifest_req(Method::HEAD, repo, reference, &[])?
            }
            AccessTarget::Blob(digest) => Req::new(
                Method::HEAD,
                self.url(&format!("/v2/{repo}/blobs/{digest}")),
            ),
        };
        let client = client.map(|v| {
            let mut v = v.clone();
            v.set_sensitive(true);
            v
        });
        // A client holding a token already gets no other treatment; Basic
        // credentials are sent only where the upstream asks for them.
        let is_bearer = client.as_ref().is_some_and(|v| {
            v.as_bytes()
                .get(..7)
                .is_some_and(|p| p.eq_ignore_ascii_case(b"bearer "))
        });
        let first = match &client {
            Some(v) if is_bearer => Authorization::Client(v.clone()),
            _ => Authorization::Anonymous,
        };
        let mut resp = self.send_with_retries(&req, &first).await?;
        if resp.status() == StatusCode::UNAUTHORIZED && !is_bearer {
            let challenges = challenges_of(resp.headers());
            let bearer = challenges
                .iter()
                .find(|c| c.scheme == "bearer" && c.param("realm").is_some_and(|r| !r.is_empty()));
            let answer = if let Some(c) = bearer {
                let realm = self.realm_of(c)?;
                let scope = pull_scope(repo);
                let token_scope = c.param("scope").filter(|s| !s.is_empty()).unwrap_or(&scope);
                let with = match &client {
                    Some(v) => Authorization::Client(v.clone()),
                    None => Authorization::Anonymous,
                };
                let (token, _) = self
                    .fetch_token(&realm, c.param("service"), token_scope, &with)
                    .await?;
                Some(Authorization::Bearer(token))
            } else if challenges.iter().any(|c| c.scheme == "basic") {
                client.map(Authorization::Client)
            } else {
                None
            };
            if let Some(auth) = answer {
                drop(resp);
                resp = self.send_with_retries(&req, &auth).await?;
            }
        }
        if resp.status().is_success() {
            return Ok(());
        }
        Err(self.status_error(resp).await)
    }
}
