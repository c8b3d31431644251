//! The agent's client of the supernode's HTTP API (documented in
//! `docs/API.md`): manifests and blobs of a named upstream, fetched through
//! the supernode so the upstream sees each of them once per cluster.
//!
//! A cluster member ([`Auth::Member`]) signs every request and sends it
//! over mutual TLS with the cluster CA: its manifests, blobs and the
//! clients' credentials of access checks never cross the network in clear.
//! Without the cluster secret, requests are unsigned plain HTTP, which only
//! a supernode without the secret answers: [`SupernodeClient::probe`] says
//! so at startup, and the first refusal is explained once in the log.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::{FutureExt, StreamExt, TryStreamExt};
use http::{StatusCode, header};
use reqwest::Url;
use shoal_proto::wire::AUTH_SCHEME;
use shoal_proto::{Digest, Reference, RepoName};

use crate::access::{CLIENT_AUTH_HEADER, ClientAuth};
use crate::fetch::{BlobSource, SourceBody};
use crate::http_auth::Auth;
use crate::registry::RegistryError;
use crate::upstream::AccessTarget;

/// Longest wait for the startup check of [`SupernodeClient::probe`].
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

/// Largest manifest accepted from the supernode.
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

/// A manifest as the supernode returned it, already checked against its digest.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    /// Media type (the upstream's `Content-Type`).
    pub media_type: String,
    /// sha256 of `bytes`.
    pub digest: Digest,
    /// The manifest, byte for byte.
    pub bytes: Bytes,
}

/// HTTP client for one supernode. Cheap to clone.
#[derive(Clone, Debug)]
pub struct SupernodeClient {
    base: Url,
    http: reqwest::Client,
    header_timeout: Duration,
    auth: Auth,
}

impl SupernodeClient {
    /// A client for the supernode at `base` (e.g. `http://10.0.0.5:65011`)
    /// that does not sign its requests: only a supernode without a cluster
    /// secret answers it. See [`SupernodeClient::for_auth`].
    pub fn new(base: &str) -> anyhow::Result<Self> {
        Self::for_auth(base, Auth::Insecure)
    }

    /// A client for the supernode at `base` that sends its requests as
    /// `auth` says: a member signs them and dials `base` over mutual TLS
    /// (as `https://`, see [`Auth::api_url`]); a supernode with a cluster
    /// secret answers nothing else.
    pub fn for_auth(base: &str, auth: Auth) -> anyhow::Result<Self> {
        let base = auth
            .api_url(base)
            .map_err(|e| anyhow::anyhow!("supernode URL: {e}"))?;
        let http = auth
            .client_builder()?
            .connect_timeout(Duration::from_secs(5))
            .read_timeout(Duration::from_secs(60))
            .pool_idle_timeout(Duration::from_secs(60))
            .build()?;
        Ok(SupernodeClient {
            base,
            http,
            header_timeout: Duration::from_secs(180),
            auth,
        })
    }

    /// The same supernode, with requests sent as `auth` says (see
    /// [`SupernodeClient::for_auth`]).
    ///
    /// # Panics
    ///
    /// If the HTTP client cannot be built for `auth`, which
    /// [`SupernodeClient::for_auth`] reports as an error instead.
    pub fn with_auth(self, auth: Auth) -> Self {
        Self::for_auth(self.base.as_str(), auth).expect("build the supernode client")
    }

    /// Checks once that the supernode answers this client, and logs a clear
    /// explanation when it cannot: a supernode that requires the cluster
    /// secret while this node has none, or a TLS handshake that fails
    /// (another secret, or a supernode without one).
    pub async fn probe(&self) {
        // Any API route will do: without its parameters, a supernode that
        // answers this client says 400; only refusals and failures matter.
        let req = self.get(self.url("api/v1/manifests", &[]));
        let err = match tokio::time::timeout(PROBE_TIMEOUT, req.send()).await {
            Ok(Ok(resp)) => {
                // A refusal is explained by `send`'s check, like any other.
                let _ = self.check(resp).await;
                return;
            }
            Ok(Err(e)) => e,
            Err(_) => {
                tracing::warn!(supernode = %self.base, "supernode did not answer the startup check in time");
                return;
            }
        };
        let chain = error_chain(&err);
        if self.auth.tls().is_some() && is_tls_failure(&err) {
            tracing::error!(
                supernode = %self.base,
                "cannot complete the TLS handshake with the supernode ({chain}); it must run \
                 with the same cluster secret (--cluster-secret-file) as this node"
            );
        } else {
            tracing::warn!(supernode = %self.base, "supernode not reachable yet: {chain}");
        }
    }

    /// Logs, once per process, why an unsigned request was refused.
    fn explain_refusal(&self, err: &RegistryError) {
        static EXPLAINED: AtomicBool = AtomicBool::new(false);
        if self.auth.http_auth().is_none() && !EXPLAINED.swap(true, Ordering::Relaxed) {
            tracing::error!(
                supernode = %self.base,
                "the supernode requires the cluster secret: start this agent with \
                 --cluster-secret-file (the supernode said: {})",
                err.message
            );
        }
    }

    /// A signed `GET` of `url`.
    fn get(&self, url: Url) -> reqwest::RequestBuilder {
        let target = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        };
        self.auth.sign(self.http.get(url), "GET", &target, b"")
    }

    fn url(&self, path: &str, params: &[(&str, &str)]) -> Url {
        let mut u = self.base.join(path).expect("static path");
        u.query_pairs_mut().extend_pairs(params);
        u
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response, RegistryError> {
        let resp = tokio::time::timeout(self.header_timeout, req.send())
            .await
            .map_err(|_| RegistryError::unavailable("supernode did not answer in time"))?
            .map_err(|e| RegistryError::unavailable(format!("supernode unreachable: {e}")))?;
        self.check(resp).await
    }

    /// A success as is; an error status as a [`RegistryError`] (a refusal
    /// by the cluster explained in the log once).
    async fn check(&self, resp: reqwest::Response) -> Result<reqwest::Response, RegistryError> {
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let retry_after = resp.headers().get(header::RETRY_AFTER).cloned();
        // The cluster's refusal names its scheme; an access check's 401
        // (the client's registry credentials) names the upstream's.
        let by_cluster = resp
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .is_some_and(|v| v.as_bytes().starts_with(AUTH_SCHEME.as_bytes()));
        let body = resp.bytes().await.unwrap_or_default();
        let mut err = RegistryError::from_response_body(status, &body[..body.len().min(64 * 1024)]);
        err.retry_after = retry_after.and_then(|v| v.to_str().ok()?.parse().ok());
        if status == StatusCode::UNAUTHORIZED && by_cluster {
            self.explain_refusal(&err);
        }
        Err(err)
    }

    /// The manifest `reference` of `repo` on upstream `upstream`, with the
    /// client's `Accept` header passed along.
    pub async fn manifest(
        &self,
        upstream: &str,
        repo: &RepoName,
        reference: &Reference,
        accept: Option<&str>,
    ) -> Result<FetchedManifest, RegistryError> {
        let reference_s = reference.to_string();
        let url = self.url(
            "api/v1/manifests",
            &[
                ("upstream", upstream),
                ("repo", repo.as_str()),
                ("reference", &reference_s),
            ],
        );
        let mut req = self.get(url);
        if let Some(a) = accept {
            req = req.header(header::ACCEPT, a);
        }
        let resp = self.send(req).await?;
        let media_type = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let claimed = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| Digest::parse(v).ok());
        let bytes = read_bounded(resp, MAX_MANIFEST_BYTES).await?;
        let digest = Digest::of(&bytes);
        let expected = match reference {
            Reference::Digest(d) => Some(*d),
            Reference::Tag(_) => claimed,
        };
        if let Some(e) = expected
            && e != digest
        {
            return Err(RegistryError::bad_gateway(format!(
                "manifest from supernode does not match its digest {e} (got {digest})"
            )));
        }
        Ok(FetchedManifest {
            media_type,
            digest,
            bytes,
        })
    }

    /// Asks whether `client` may read `repo` (`GET /api/v1/access`): `Ok`,
    /// or the supernode's 401 `UNAUTHORIZED` / 403 `DENIED`, or another
    /// error when it cannot tell. The client's `Authorization` travels in
    /// [`CLIENT_AUTH_HEADER`].
    pub async fn access(
        &self,
        upstream: &str,
        repo: &RepoName,
        target: &AccessTarget,
        client: &ClientAuth,
    ) -> Result<(), RegistryError> {
        let (key, value) = match target {
            AccessTarget::Manifest(r) => ("reference", r.to_string()),
            AccessTarget::Blob(d) => ("digest", d.to_string()),
        };
        let url = self.url(
            "api/v1/access",
            &[
                ("upstream", upstream),
                ("repo", repo.as_str()),
                (key, &value),
            ],
        );
        let mut req = self.get(url);
        if let Some(v) = client.header() {
            req = req.header(CLIENT_AUTH_HEADER, v.clone());
        }
        self.send(req).await.map(drop)
    }

    /// Opens blob `digest` at `offset`.
    pub async fn blob(
        &self,
        upstream: &str,
        repo: &RepoName,
        digest: &Digest,
        offset: u64,
    ) -> Result<SourceBody, RegistryError> {
        let digest_s = digest.to_string();
        let url = self.url(
            "api/v1/blobs",
            &[
                ("upstream", upstream),
                ("repo", repo.as_str()),
                ("digest", &digest_s),
            ],
        );
        let mut req = self.get(url);
        if offset > 0 {
            req = req.header(header::RANGE, format!("bytes={offset}-"));
        }
        let resp = self.send(req).await?;
        let total_size = match resp.status() {
            StatusCode::PARTIAL_CONTENT => content_range_total(&resp).ok_or_else(|| {
                RegistryError::bad_gateway("supernode sent 206 without a valid Content-Range")
            })?,
            _ if offset > 0 => {
                return Err(RegistryError::bad_gateway(
                    "supernode ignored the Range header",
                ));
            }
            _ => resp.content_length().ok_or_else(|| {
                RegistryError::bad_gateway("supernode sent a blob without Content-Length")
            })?,
        };
        let stream = resp
            .bytes_stream()
            .inspect_ok(|b| {
                metrics::counter!("shoal_agent_bytes_received_total", "source" => "supernode")
                    .increment(b.len() as u64);
            })
            .map_err(|e| {
                RegistryError::bad_gateway(format!("blob stream from supernode broke: {e}"))
            })
            .boxed();
        Ok(SourceBody { total_size, stream })
    }
}

/// `e` and its causes, `: `-separated.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// Whether a TLS error (a failed handshake, a refused certificate) is
/// among `e`'s causes. I/O errors hide the rustls error they carry from
/// `source()`; `get_ref` finds it.
fn is_tls_failure(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if c.is::<rustls::Error>() {
            return true;
        }
        if let Some(inner) = c
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            && is_tls_failure(inner)
        {
            return true;
        }
        cause = c.source();
    }
    false
}

fn content_range_total(resp: &reqwest::Response) -> Option<u64> {
    let v = resp.headers().get(header::CONTENT_RANGE)?.to_str().ok()?;
    v.rsplit_once('/')?.1.parse().ok()
}

async fn read_bounded(resp: reqwest::Response, max: usize) -> Result<Bytes, RegistryError> {
    if resp.content_length().is_some_and(|n| n > max as u64) {
        return Err(RegistryError::bad_gateway(format!(
            "manifest larger than {max} bytes"
        )));
    }
    let mut out = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk
            .map_err(|e| RegistryError::bad_gateway(format!("reading from supernode: {e}")))?;
        if out.len() + chunk.len() > max {
            return Err(RegistryError::bad_gateway(format!(
                "manifest larger than {max} bytes"
            )));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(out))
}

/// A blob fetched through the supernode, as a [`BlobSource`] for the fetcher.
pub struct SupernodeSource {
    /// The supernode.
    pub client: SupernodeClient,
    /// Upstream name.
    pub upstream: String,
    /// Repository the client asked for.
    pub repo: RepoName,
    /// The blob.
    pub digest: Digest,
}

impl BlobSource for SupernodeSource {
    fn open(&self, offset: u64) -> BoxFuture<'static, Result<SourceBody, RegistryError>> {
        let (c, u, r, d) = (
            self.client.clone(),
            self.upstream.clone(),
            self.repo.clone(),
            self.digest,
        );
        async move { c.blob(&u, &r, &d, offset).await }.boxed()
    }

    fn label(&self) -> &'static str {
        "supernode"
    }
}

/// A blob's piece map as the supernode's `GET /api/v1/piecemap` returns it:
/// while the supernode is still fetching the blob, `pieces` holds the hashes
/// of the pieces it has so far (`complete` is false).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PieceMapView {
    /// The blob.
    pub digest: Digest,
    /// Its size.
    pub size: u64,
    /// Length of every piece but the last.
    pub piece_size: u32,
    /// sha256 of each piece known so far, in order.
    pub pieces: Vec<Digest>,
    /// Whether `pieces` covers the whole blob.
    pub complete: bool,
    /// The supernode's QUIC address, where it serves these pieces.
    #[serde(default)]
    pub seed_addr: Option<std::net::SocketAddr>,
}

impl PieceMapView {
    /// The view as a [`shoal_proto::PieceMap`] whose `pieces` may be a
    /// prefix of the blob's; refuses inconsistent views.
    pub fn to_map(&self) -> Result<shoal_proto::PieceMap, RegistryError> {
        let layout = shoal_proto::swarm::Layout {
            size: self.size,
            piece_size: self.piece_size,
        };
        let full = layout.piece_count() as usize;
        let bad = |what: &str| {
            RegistryError::bad_gateway(format!("supernode sent an invalid piece map: {what}"))
        };
        if self.piece_size == 0 || self.pieces.len() > full {
            return Err(bad("more hashes than pieces"));
        }
        if self.complete != (self.pieces.len() == full) {
            return Err(bad("completeness does not match the hash count"));
        }
        let map = shoal_proto::PieceMap {
            digest: self.digest,
            size: self.size,
            piece_size: self.piece_size,
            pieces: self.pieces.clone(),
        };
        if self.complete {
            map.validate().map_err(|e| bad(&e.to_string()))?;
        }
        Ok(map)
    }
}

impl SupernodeClient {
    /// The piece map of a blob, starting the supernode's fetch if needed.
    /// With `known`, waits (briefly) until more than that many piece hashes
    /// are known.
    pub async fn piece_map(
        &self,
        upstream: &str,
        repo: &RepoName,
        digest: &Digest,
        known: usize,
    ) -> Result<PieceMapView, RegistryError> {
        let digest_s = digest.to_string();
        let known_s = known.to_string();
        let url = self.url(
            "api/v1/piecemap",
            &[
                ("upstream", upstream),
                ("repo", repo.as_str()),
                ("digest", &digest_s),
                ("known", &known_s),
            ],
        );
        let resp = self.send(self.get(url)).await?;
        let bytes = read_bounded(resp, MAX_MANIFEST_BYTES).await?;
        let view: PieceMapView = serde_json::from_slice(&bytes).map_err(|e| {
            RegistryError::bad_gateway(format!("supernode sent an invalid piece map: {e}"))
        })?;
        if view.digest != *digest {
            return Err(RegistryError::bad_gateway(
                "supernode sent the piece map of another blob",
            ));
        }
        view.to_map()?;
        Ok(view)
    }
}
