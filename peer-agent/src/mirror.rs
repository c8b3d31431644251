//! The agent's registry mirror: the OCI distribution pull API that Docker,
//! containerd, CRI-O, podman and skopeo talk to on localhost.
//!
//! Each request is routed to a configured upstream by name: `?ns=<registry>`
//! (containerd), a leading path segment naming an upstream
//! (`/v2/<registry>/<repo>/...`, for `registries.conf` mirrors), or else the
//! default upstream (Docker's `registry-mirrors` only mirrors docker.io).
//! Unknown registries are refused and never contacted. Blobs are served
//! from the local content store, or fetched once through the supernode while
//! being streamed to every waiting client.
//!
//! Nothing of a repository is served, from the cluster or from the local
//! disk, before [`AccessControl`] has checked the client's own credentials
//! (or their absence) against the upstream: content fetched with the
//! cluster's credentials is not the client's to read until then.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, Method, Uri, header};
use shoal_proto::{Digest, Reference, RepoName};
use tokio::sync::Semaphore;
use tracing::instrument;

use crate::access::{AccessControl, ClientAuth, TOKEN_PATH, token_body, with_challenge};
use crate::fetch::Fetcher;
use crate::registry::{
    RegistryError, V2Path, blob_response, manifest_response, query_param, split_v2_path,
    v2_base_response,
};
use crate::supernode_client::{FetchedManifest, SupernodeClient, SupernodeSource};
use crate::swarm::{BlobRef, Swarm};
use crate::upstream::{AccessTarget, Upstream, UpstreamError};
use crate::upstream_source::UpstreamSource;

/// Everything the mirror needs to answer requests.
pub struct Mirror {
    /// Upstream names in configuration order; the first is the default.
    pub upstreams: Vec<String>,
    /// Where manifests and missing blobs come from.
    pub supernode: SupernodeClient,
    /// Local content store and single-flight downloads.
    pub fetcher: Fetcher,
    /// The swarm, when peer-to-peer is on: blobs come in pieces from peers
    /// and the supernode instead of whole over HTTP.
    pub swarm: Option<Arc<Swarm>>,
    /// Upstream clients by name, for the last-resort direct fetch of
    /// manifests and blobs (only with the swarm on).
    pub direct: HashMap<String, Upstream>,
    /// Whether a client may read a repository.
    pub access: AccessControl,
    /// With the swarm on: an image manifest's blobs are fetched as soon as
    /// it is served, at most this semaphore's permits at once (see
    /// [`Mirror::prefetch`]); `None` turns that off.
    pub prefetch: Option<Arc<Semaphore>>,
}

/// Blobs fetched ahead of the clients at once, by default.
pub const PREFETCH_AT_ONCE: usize = 4;

/// The mirror's router (without `/healthz` and `/metrics`).
pub fn app(mirror: Arc<Mirror>) -> Router {
    Router::new()
        .route(TOKEN_PATH, axum::routing::get(token))
        .fallback(handle)
        .with_state(mirror)
}

/// The agent's token realm: a token standing for the credentials the
/// client presents (or for none).
async fn token(State(m): State<Arc<Mirror>>, headers: HeaderMap) -> Response {
    let client = ClientAuth::from_headers(&headers, header::AUTHORIZATION);
    let body = token_body(&m.access.tokens().issue(client));
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn handle(
    State(m): State<Arc<Mirror>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let res = match split_v2_path(uri.path()) {
        V2Path::NotFound => Err(RegistryError::new(
            http::StatusCode::NOT_FOUND,
            "UNSUPPORTED",
            "not a registry API endpoint",
        )),
        _ if method != Method::GET && method != Method::HEAD => Err(RegistryError::unsupported(
            format!("{method} is not supported: this is a read-only pull-through mirror"),
        )),
        // Like Docker Hub: an anonymous ping is challenged, so runtimes
        // fetch a token from the agent's realm, with the credentials they
        // have for the registry (see `access::tokens`).
        V2Path::Base if headers.contains_key(header::AUTHORIZATION) => Ok(v2_base_response()),
        V2Path::Base => Err(RegistryError::unauthorized(
            "authenticate with the token realm named in WWW-Authenticate (anonymously for public images)",
        )),
        V2Path::Unsupported(what) => Err(RegistryError::unsupported(format!(
            "{what} is not supported by a pull-through mirror"
        ))),
        V2Path::Manifest { name, reference } => {
            m.manifest(&method, &uri, name, reference, &headers).await
        }
        V2Path::Blob { name, digest } => m.blob(&method, &uri, name, digest, &headers).await,
    };
    res.map_err(|e| with_challenge(e, &headers))
        .unwrap_or_else(IntoResponse::into_response)
}

impl Mirror {
    /// Maps a request to `(upstream name, repository)`.
    pub fn route(&self, uri: &Uri, raw_name: &str) -> Result<(String, RepoName), RegistryError> {
        let (upstream, name) = match query_param(uri, "ns") {
            Some(ns) => match self.upstreams.iter().find(|u| **u == ns) {
                Some(u) => (u.clone(), raw_name),
                None => return Err(self.unknown_registry(&ns)),
            },
            None => match raw_name.split_once('/') {
                Some((first, rest)) if self.upstreams.iter().any(|u| u == first) => {
                    (first.to_owned(), rest)
                }
                _ => (self.upstreams[0].clone(), raw_name),
            },
        };
        Ok((upstream, RepoName::parse(name)?))
    }

    fn unknown_registry(&self, ns: &str) -> RegistryError {
        let mut shown = ns.to_owned();
        shown.truncate(100);
        RegistryError::name_unknown(format!(
            "registry {shown:?} is not served by this mirror (configured: {})",
            self.upstreams.join(", ")
        ))
    }

    #[instrument(skip_all, fields(name = raw_name, reference = raw_ref))]
    async fn manifest(
        &self,
        method: &Method,
        uri: &Uri,
        raw_name: &str,
        raw_ref: &str,
        headers: &HeaderMap,
    ) -> Result<Response, RegistryError> {
        let (upstream, repo) = self.route(uri, raw_name)?;
        let reference = Reference::parse(&percent_decode_colon(raw_ref))?;
        let client = self.access.tokens().client(headers);
        self.access
            .check(
                &client,
                &upstream,
                &repo,
                &AccessTarget::Manifest(reference.clone()),
            )
            .await?;
        if let Reference::Digest(d) = &reference
            && let Some((media_type, bytes)) = self.fetcher.store().get_manifest(d).await
        {
            self.prefetch(&upstream, &repo, &bytes);
            return Ok(manifest_response(method, &media_type, d, bytes));
        }
        let accept = accept_header(headers);
        let m = match self
            .supernode
            .manifest(&upstream, &repo, &reference, accept.as_deref())
            .await
        {
            Ok(m) => m,
            Err(e) => {
                self.direct_manifest(&upstream, &repo, &reference, e)
                    .await?
            }
        };
        if let Err(e) = self
            .fetcher
            .store()
            .put_manifest(&m.digest, &m.media_type, &m.bytes)
            .await
        {
            tracing::warn!(error = %e, "cannot cache manifest locally");
        }
        self.prefetch(&upstream, &repo, &m.bytes);
        Ok(manifest_response(method, &m.media_type, &m.digest, m.bytes))
    }

    /// Starts fetching the blobs of `manifest` (config, then layers) if it
    /// is an image manifest and prefetching is on, without waiting: a
    /// runtime fetches three layers at a time, so the rest would otherwise
    /// start only as the first ones finish, all over the fleet at once.
    /// The blobs go to the store like any other; a client asking for one
    /// joins its download. Blobs already stored cost a lookup. A failure is
    /// only logged: the client's own request tries every fallback.
    fn prefetch(&self, upstream: &str, repo: &RepoName, manifest: &[u8]) {
        let (Some(swarm), Some(permits)) = (&self.swarm, &self.prefetch) else {
            return;
        };
        let Some(blobs) = shoal_proto::media::image_blobs(manifest) else {
            return;
        };
        let (swarm, permits) = (swarm.clone(), permits.clone());
        let (upstream, repo) = (upstream.to_owned(), repo.clone());
        tokio::spawn(async move {
            for digest in blobs {
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    return;
                };
                let blob = BlobRef {
                    upstream: upstream.clone(),
                    repo: repo.clone(),
                    digest,
                };
                let swarm = swarm.clone();
                tokio::spawn(async move {
                    let _permit = permit;
                    let done = match swarm.get(blob).await {
                        Ok(handle) => handle.finished().await,
                        Err(e) => Err(e),
                    };
                    if let Err(e) = done {
                        tracing::info!(%digest, error = %e, "prefetch failed; left to the client's request");
                    }
                });
            }
        });
    }

    /// The manifest straight from the upstream (verified against its
    /// digest), when the supernode failed with `err`, a 5xx, and the agent
    /// fetches directly (swarm on); else `err`.
    async fn direct_manifest(
        &self,
        upstream: &str,
        repo: &RepoName,
        reference: &Reference,
        err: RegistryError,
    ) -> Result<FetchedManifest, RegistryError> {
        let Some(client) = self
            .direct
            .get(upstream)
            .filter(|_| err.status.is_server_error())
        else {
            return Err(err);
        };
        tracing::warn!(error = %err, "supernode failed; fetching the manifest from the upstream directly");
        let m = client
            .get_manifest(repo, reference, &shoal_proto::media::MANIFEST_ACCEPT)
            .await
            .map_err(|e| match e {
                UpstreamError::NotFound => RegistryError::manifest_unknown(reference),
                other => other.into(),
            })?;
        Ok(FetchedManifest {
            media_type: m.media_type,
            digest: m.digest,
            bytes: m.bytes,
        })
    }

    #[instrument(skip_all, fields(name = raw_name, digest = raw_digest))]
    async fn blob(
        &self,
        method: &Method,
        uri: &Uri,
        raw_name: &str,
        raw_digest: &str,
        headers: &HeaderMap,
    ) -> Result<Response, RegistryError> {
        let (upstream, repo) = self.route(uri, raw_name)?;
        let digest = Digest::parse(&percent_decode_colon(raw_digest))?;
        let client = self.access.tokens().client(headers);
        self.access
            .check(&client, &upstream, &repo, &AccessTarget::Blob(digest))
            .await?;
        let Some(swarm) = &self.swarm else {
            let handle = self
                .fetcher
                .get(&digest, || SupernodeSource {
                    client: self.supernode.clone(),
                    upstream,
                    repo,
                    digest,
                })
                .await?;
            return blob_response(method, headers, handle);
        };
        // Fallbacks in order: the swarm (peers, then the supernode over QUIC
        // and HTTP per piece), the whole blob from the supernode, the
        // upstream directly. Each is tried only if the one before could not
        // even start (no piece map, supernode unreachable).
        let blob = BlobRef {
            upstream: upstream.clone(),
            repo: repo.clone(),
            digest,
        };
        let swarm_err = match swarm.get(blob).await {
            Ok(handle) => return blob_response(method, headers, handle),
            Err(e) => e,
        };
        tracing::warn!(%digest, error = %swarm_err, "swarm download failed; fetching whole from the supernode");
        let whole = self
            .fetcher
            .get(&digest, || SupernodeSource {
                client: self.supernode.clone(),
                upstream: upstream.clone(),
                repo: repo.clone(),
                digest,
            })
            .await;
        let err = match whole {
            Ok(handle) => return blob_response(method, headers, handle),
            Err(e) => e,
        };
        let Some(client) = self.direct.get(&upstream) else {
            return Err(err.into());
        };
        tracing::warn!(%digest, error = %err, "supernode failed; fetching from the upstream directly");
        let handle = self
            .fetcher
            .get(&digest, || UpstreamSource {
                upstream: client.clone(),
                repo,
                digest,
                on_bytes: |n| {
                    metrics::counter!(crate::swarm::BYTES_RECEIVED, "source" => "upstream")
                        .increment(n)
                },
            })
            .await?;
        blob_response(method, headers, handle)
    }
}

/// All `Accept` values joined, as clients may send several headers.
pub fn accept_header(headers: &HeaderMap) -> Option<String> {
    let v: Vec<&str> = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    (!v.is_empty()).then(|| v.join(", "))
}

/// Some clients percent-encode the `:` of a digest; nothing else valid in
/// a reference needs decoding.
fn percent_decode_colon(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains('%') {
        std::borrow::Cow::Owned(s.replace("%3A", ":").replace("%3a", ":"))
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}
