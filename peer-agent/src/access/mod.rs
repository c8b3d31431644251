//! Access control for private repositories.
//!
//! Content in the cluster (the agent's disk, the supernode's store, peers)
//! was fetched with the supernode's (or agent's) configured credentials, so
//! holding it says nothing about who may read it. Before the agent serves
//! any manifest or blob of a repository to a client, the client's own
//! credentials (or their absence) are checked against the upstream: the
//! agent asks the supernode (`GET /api/v1/access`, `docs/API.md`), which
//! sends a `HEAD` of the requested manifest or blob upstream with the
//! client's credentials only ([`Upstream::check_access`]). When the
//! supernode cannot answer (down, unreachable, failing with a 5xx), an
//! agent that fetches from the upstream directly (with the swarm on) makes
//! that `HEAD` itself ([`ask_upstream`]): a supernode outage neither opens
//! private content nor locks out admitted clients.
//!
//! Verdicts are cached for [`VERDICT_TTL`] per client credentials, upstream
//! and repository, at the agent and at the supernode, so a pull costs one
//! check and a public repository costs no upstream request per pull. The
//! cache is keyed by a salted hash of the credentials; the credentials
//! themselves are never logged or shown by `Debug`. When the check cannot
//! be made (supernode or upstream down), an earlier grant younger than
//! [`STALE_LIMIT`] is reused, as the supernode reuses a tag's last
//! resolution; a client that was never granted access gets an error.
//!
//! Container runtimes are made to send their credentials by the agent's
//! own token realm ([`tokens`]).
//!
//! [`Upstream::check_access`]: crate::upstream::Upstream::check_access

mod tokens;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderValue, StatusCode};
use sha2::{Digest as _, Sha256};
use shoal_proto::RepoName;

use crate::registry::RegistryError;
use crate::supernode_client::SupernodeClient;
use crate::upstream::{AccessTarget, Upstream, UpstreamError};

pub use tokens::{ClientTokens, TOKEN_PATH, TOKEN_TTL, challenge, token_body};

/// How long a verdict is reused before the upstream is asked again.
pub const VERDICT_TTL: Duration = Duration::from_secs(60);
/// How old a grant may be and still be used while the check cannot be made.
pub const STALE_LIMIT: Duration = Duration::from_secs(3600);
/// The header that carries a client's `Authorization` value from the agent
/// to the supernode (`Authorization` itself is the cluster signature's).
pub const CLIENT_AUTH_HEADER: &str = "shoal-client-authorization";
/// Most verdicts kept; past that, expired ones go, then the oldest.
const MAX_VERDICTS: usize = 16 * 1024;

/// A client's credentials as it presented them: its `Authorization` value,
/// or none. `Debug` never shows the value.
#[derive(Clone, Default)]
pub struct ClientAuth(Option<HeaderValue>);

impl ClientAuth {
    /// An anonymous client.
    pub fn anonymous() -> Self {
        Self(None)
    }

    /// The credentials in header `name` of `headers` (an empty value counts
    /// as none).
    pub fn from_headers(headers: &HeaderMap, name: impl http::header::AsHeaderName) -> Self {
        Self(headers.get(name).filter(|v| !v.is_empty()).map(|v| {
            let mut v = v.clone();
            v.set_sensitive(true);
            v
        }))
    }

    /// The `Authorization` value, if any (marked sensitive).
    pub fn header(&self) -> Option<&HeaderValue> {
        self.0.as_ref()
    }

    /// Whether the client presented no credentials.
    pub fn is_anonymous(&self) -> bool {
        self.0.is_none()
    }
}

impl fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(_) => f.write_str("ClientAuth(<redacted>)"),
            None => f.write_str("ClientAuth(anonymous)"),
        }
    }
}

/// The upstream's answer for one client and repository.
#[derive(Debug, Clone)]
pub enum Verdict {
    /// The client may read the repository.
    Allowed,
    /// It may not: a 401 `UNAUTHORIZED` or 403 `DENIED` to send it.
    Refused(RegistryError),
}

impl Verdict {
    /// A refusal error becomes a verdict; any other error means the
    /// upstream could not tell and is returned as it is.
    pub fn from_error(e: RegistryError) -> Result<Verdict, RegistryError> {
        if matches!(e.status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
            Ok(Verdict::Refused(e))
        } else {
            Err(e)
        }
    }

    fn into_result(self) -> Result<(), RegistryError> {
        match self {
            Verdict::Allowed => Ok(()),
            Verdict::Refused(e) => Err(e),
        }
    }
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    /// Salted sha256 of the `Authorization` value; zeros for anonymous.
    who: [u8; 32],
    upstream: String,
    repo: RepoName,
}

/// Verdicts per (credentials, upstream, repository), each reused for a TTL;
/// concurrent checks of one key share one question to the upstream.
pub struct Verdicts {
    salt: [u8; 32],
    ttl: Duration,
    map: Mutex<HashMap<Key, (Verdict, Instant)>>,
    inflight: Mutex<HashMap<Key, Arc<tokio::sync::Mutex<()>>>>,
}

impl Verdicts {
    /// An empty cache reusing verdicts for `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Verdicts {
            salt: rand::random(),
            ttl,
            map: Mutex::default(),
            inflight: Mutex::default(),
        }
    }

    fn key(&self, client: &ClientAuth, upstream: &str, repo: &RepoName) -> Key {
        let who = match client.header() {
            None => [0; 32],
            Some(v) => Sha256::new()
                .chain_update(self.salt)
                .chain_update(v.as_bytes())
                .finalize()
                .into(),
        };
        Key {
            who,
            upstream: upstream.to_owned(),
            repo: repo.clone(),
        }
    }

    fn fresh(&self, key: &Key, now: Instant) -> Option<Verdict> {
        let map = self.map.lock().expect("verdicts lock");
        let (v, at) = map.get(key)?;
        (now.saturating_duration_since(*at) < self.ttl).then(|| v.clone())
    }

    fn granted_within(&self, key: &Key, now: Instant, limit: Duration) -> bool {
        let map = self.map.lock().expect("verdicts lock");
        matches!(map.get(key), Some((Verdict::Allowed, at))
            if now.saturating_duration_since(*at) < limit)
    }

    fn insert(&self, key: Key, verdict: Verdict, now: Instant) {
        let mut map = self.map.lock().expect("verdicts lock");
        if map.len() >= MAX_VERDICTS {
            map.retain(|_, (_, at)| now.saturating_duration_since(*at) < self.ttl);
        }
        if map.len() >= MAX_VERDICTS
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        map.insert(key, (verdict, now));
    }

    /// The verdict for `client` on `repo` of `upstream`: a fresh cached one,
    /// else `ask`'s (cached). When `ask` cannot tell because something is
    /// unavailable (an `Err` with a 5xx status), a grant younger than
    /// [`STALE_LIMIT`] still counts; any other error (a 404: the content
    /// is not in that repository) is returned and nothing is cached.
    pub async fn check<F, Fut>(
        &self,
        client: &ClientAuth,
        upstream: &str,
        repo: &RepoName,
        ask: F,
    ) -> Result<(), RegistryError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Verdict, RegistryError>>,
    {
        let key = self.key(client, upstream, repo);
        if let Some(v) = self.fresh(&key, Instant::now()) {
            return v.into_result();
        }
        let lock = self
            .inflight
            .lock()
            .expect("inflight lock")
            .entry(key.clone())
            .or_default()
            .clone();
        let result = {
            let _one_question_at_a_time = lock.lock().await;
            match self.fresh(&key, Instant::now()) {
                Some(v) => v.into_result(),
                None => match ask().await {
                    Ok(v) => {
                        self.insert(key.clone(), v.clone(), Instant::now());
                        v.into_result()
                    }
                    Err(e)
                        if e.status.is_server_error()
                            && self.granted_within(&key, Instant::now(), STALE_LIMIT) =>
                    {
                        tracing::warn!(%upstream, %repo, error = %e,
                            "cannot check access; reusing this client's earlier grant");
                        Ok(())
                    }
                    Err(e) => Err(e),
                },
            }
        };
        let mut inflight = self.inflight.lock().expect("inflight lock");
        if Arc::strong_count(&lock) == 2 {
            inflight.remove(&key);
        }
        result
    }
}

/// The agent's access checks, made through the supernode (or, when it
/// cannot answer, directly with the upstream), and the tokens its realm
/// issued.
pub struct AccessControl {
    verdicts: Verdicts,
    supernode: SupernodeClient,
    direct: HashMap<String, Upstream>,
    tokens: ClientTokens,
}

impl AccessControl {
    /// Checks through `supernode`, caching verdicts for [`VERDICT_TTL`];
    /// `direct` holds the upstream clients asked when the supernode cannot
    /// answer (none: such checks fail).
    pub fn new(supernode: SupernodeClient, direct: HashMap<String, Upstream>) -> Self {
        AccessControl {
            verdicts: Verdicts::new(VERDICT_TTL),
            supernode,
            direct,
            tokens: ClientTokens::default(),
        }
    }

    /// The tokens of the agent's realm.
    pub fn tokens(&self) -> &ClientTokens {
        &self.tokens
    }

    /// `Ok` when `client` may read `repo` of `upstream`; else the 401 or
    /// 403 to send, or why it cannot be told.
    pub async fn check(
        &self,
        client: &ClientAuth,
        upstream: &str,
        repo: &RepoName,
        target: &AccessTarget,
    ) -> Result<(), RegistryError> {
        let ask = || async {
            match self.supernode.access(upstream, repo, target, client).await {
                Ok(()) => Ok(Verdict::Allowed),
                Err(e) if e.status.is_server_error() => match self.direct.get(upstream) {
                    Some(direct) => {
                        tracing::warn!(%upstream, %repo, error = %e,
                            "supernode cannot check access; asking the upstream directly");
                        ask_upstream(direct, repo, target, client).await
                    }
                    None => Err(e),
                },
                Err(e) => Verdict::from_error(e),
            }
        };
        self.verdicts.check(client, upstream, repo, ask).await
    }
}

/// Asks `upstream` itself whether `client` may read `target` in `repo`
/// ([`Upstream::check_access`], with the client's credentials only): a
/// verdict, a 404 when `target` is not in `repo`, or why it cannot tell.
pub async fn ask_upstream(
    upstream: &Upstream,
    repo: &RepoName,
    target: &AccessTarget,
    client: &ClientAuth,
) -> Result<Verdict, RegistryError> {
    match upstream.check_access(repo, target, client.header()).await {
        Ok(()) => Ok(Verdict::Allowed),
        Err(UpstreamError::NotFound) => Err(match target {
            AccessTarget::Manifest(r) => RegistryError::manifest_unknown(r),
            AccessTarget::Blob(d) => RegistryError::blob_unknown(d),
        }),
        Err(e) => Verdict::from_error(e.into()),
    }
}

/// Adds the agent's challenge (see [`challenge`]) to a 401 that has none.
pub fn with_challenge(mut e: RegistryError, request: &HeaderMap) -> RegistryError {
    if e.status == StatusCode::UNAUTHORIZED && e.challenge.is_none() {
        e.challenge = Some(challenge(request));
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> RepoName {
        RepoName::parse("team/app").unwrap()
    }

    fn basic(v: &'static str) -> ClientAuth {
        let mut h = HeaderMap::new();
        h.insert(http::header::AUTHORIZATION, HeaderValue::from_static(v));
        ClientAuth::from_headers(&h, http::header::AUTHORIZATION)
    }

    #[test]
    fn debug_hides_credentials() {
        let c = basic("Basic YWxpY2U6aHVudGVyMg==");
        assert!(c.header().unwrap().is_sensitive());
        let shown = format!("{c:?}");
        assert!(!shown.contains("YWxp"), "{shown}");
        assert!(ClientAuth::from_headers(&HeaderMap::new(), "authorization").is_anonymous());
    }

    #[tokio::test]
    async fn verdicts_are_cached_per_credentials() {
        let v = Verdicts::new(Duration::from_secs(60));
        let asked = std::sync::atomic::AtomicUsize::new(0);
        let (a, b) = (basic("Basic YQ=="), basic("Basic Yg=="));
        let grant = |ok: bool| {
            asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move {
                Ok(if ok {
                    Verdict::Allowed
                } else {
                    Verdict::Refused(RegistryError::unauthorized("no"))
                })
            }
        };
        assert!(v.check(&a, "r", &repo(), || grant(true)).await.is_ok());
        assert!(v.check(&a, "r", &repo(), || grant(false)).await.is_ok());
        let e = v
            .check(&b, "r", &repo(), || grant(false))
            .await
            .unwrap_err();
        assert_eq!(e.status, StatusCode::UNAUTHORIZED);
        assert!(v.check(&b, "r", &repo(), || grant(true)).await.is_err());
        let anon = ClientAuth::anonymous();
        assert!(v.check(&anon, "r", &repo(), || grant(false)).await.is_err());
        assert!(
            v.check(&a, "other", &repo(), || grant(false))
                .await
                .is_err()
        );
        assert_eq!(asked.load(std::sync::atomic::Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn an_unanswerable_check_reuses_only_a_grant() {
        let v = Verdicts::new(Duration::ZERO);
        let down = || async { Err(RegistryError::bad_gateway("upstream down")) };
        let (a, b) = (basic("Basic YQ=="), basic("Basic Yg=="));
        assert!(v.check(&a, "r", &repo(), down).await.is_err());
        let ok = || async { Ok(Verdict::Allowed) };
        assert!(v.check(&a, "r", &repo(), ok).await.is_ok());
        assert!(v.check(&a, "r", &repo(), down).await.is_ok());
        let no = || async { Ok(Verdict::Refused(RegistryError::denied("no"))) };
        assert!(v.check(&b, "r", &repo(), no).await.is_err());
        let e = v.check(&b, "r", &repo(), down).await.unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_GATEWAY);
        let v = Verdicts::new(Duration::ZERO);
        assert!(v.check(&a, "r", &repo(), ok).await.is_ok());
        let elsewhere = || async { Err(RegistryError::blob_unknown("sha256:00")) };
        let e = v.check(&a, "r", &repo(), elsewhere).await.unwrap_err();
        assert_eq!(e.status, StatusCode::NOT_FOUND);
    }

    #[test]
    fn challenge_only_on_401() {
        let h = HeaderMap::new();
        let e = with_challenge(RegistryError::unauthorized("x"), &h);
        assert!(e.challenge.unwrap().starts_with("Bearer realm="));
        assert!(
            with_challenge(RegistryError::denied("x"), &h)
                .challenge
                .is_none()
        );
    }
}
