//! Registry authentication as Docker and OCI clients do it: anonymous
//! first; on a 401, answer its `WWW-Authenticate` challenge with a Bearer
//! token from the realm (cached per scope until it expires) or with the
//! configured Basic credentials, then try once more. Once an upstream is
//! known to want Bearer or Basic, later requests authenticate up front.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use http::{HeaderValue, Method, StatusCode};
use reqwest::{Response, Url};
use serde::Deserialize;
use shoal_proto::RepoName;

use super::challenge::{Challenge, challenges_of};
use super::request::{Authorization, Req, url_for_log};
use super::{Inner, UpstreamError};

/// The scope a pull of `repo` needs.
pub(super) fn pull_scope(repo: &RepoName) -> String {
    format!("repository:{repo}:pull")
}

/// At most this many scopes keep a cached token.
const MAX_CACHED_TOKENS: usize = 1024;
/// Token responses are small; anything bigger is not one.
const TOKEN_BODY_LIMIT: usize = 64 * 1024;
/// Lifetime assumed when the token response does not say (Docker's default).
const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(60);
/// Cap on a token's announced lifetime, so expiry arithmetic stays sane.
const MAX_TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);

/// What this upstream asked for last.
#[derive(Clone)]
enum Scheme {
    Basic,
    Bearer { realm: Url, service: Option<String> },
}

struct CachedToken {
    header: HeaderValue,
    expires: Instant,
}

#[derive(Default)]
struct AuthState {
    scheme: Option<Scheme>,
    tokens: HashMap<String, CachedToken>,
}

/// Per-upstream auth state: the scheme it wants and tokens per scope.
#[derive(Default)]
pub(super) struct AuthCache {
    state: Mutex<AuthState>,
    /// Held while fetching a token, so that concurrent requests needing one
    /// ask the realm once and share the answer.
    fetching: tokio::sync::Mutex<()>,
}

impl AuthCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, AuthState> {
        self.state.lock().expect("auth state lock")
    }

    fn cached(&self, scope: &str) -> Option<HeaderValue> {
        self.cached_at(scope, Instant::now())
    }

    fn cached_at(&self, scope: &str, now: Instant) -> Option<HeaderValue> {
        let state = self.lock();
        let t = state.tokens.get(scope)?;
        (t.expires > now).then(|| t.header.clone())
    }

    fn store(&self, scope: &str, header: HeaderValue, ttl: Duration) {
        self.store_at(scope, header, ttl, Instant::now());
    }

    fn store_at(&self, scope: &str, header: HeaderValue, ttl: Duration, now: Instant) {
        // Refresh a little before the upstream's deadline.
        let margin = (ttl / 4).min(Duration::from_secs(10));
        let mut state = self.lock();
        if state.tokens.len() >= MAX_CACHED_TOKENS {
            state.tokens.retain(|_, t| t.expires > now);
        }
        if state.tokens.len() >= MAX_CACHED_TOKENS {
            let soonest = state
                .tokens
                .iter()
                .min_by_key(|(_, t)| t.expires)
                .map(|(k, _)| k.clone());
            if let Some(k) = soonest {
                state.tokens.remove(&k);
            }
        }
        let expires = now + (ttl - margin);
        state
            .tokens
            .insert(scope.to_owned(), CachedToken { header, expires });
    }

    fn forget(&self, scope: &str) {
        self.lock().tokens.remove(scope);
    }
}

impl Inner {
    /// Sends `req` for a pull of `repo`, answering one 401 challenge. A
    /// final 401 is returned like any other status for the caller to map.
    pub(super) async fn send_authed(
        &self,
        req: &Req,
        repo: &RepoName,
    ) -> Result<Response, UpstreamError> {
        let scope = pull_scope(repo);
        let sent = self.authorization_for(&scope).await?;
        let resp = self.send_with_retries(req, &sent).await?;
        if resp.status() != StatusCode::UNAUTHORIZED {
            return Ok(resp);
        }
        self.auth.forget(&scope);
        let challenges = challenges_of(resp.headers());
        let auth = match self.answer(&challenges, &scope, &sent).await? {
            Ok(auth) => auth,
            Err(why) => {
                return Err(match self.status_error(resp).await {
                    UpstreamError::Unauthorized(m) => {
                        UpstreamError::Unauthorized(format!("{m} ({why})"))
                    }
                    other => other,
                });
            }
        };
        drop(resp);
        tracing::debug!("retrying with credentials");
        let resp = self.send_with_retries(req, &auth).await?;
        if resp.status() == StatusCode::UNAUTHORIZED {
            self.auth.forget(&scope);
        }
        Ok(resp)
    }

    /// What to send up front: a cached token, Basic credentials, a fresh
    /// token from a known realm, or nothing.
    async fn authorization_for(&self, scope: &str) -> Result<Authorization, UpstreamError> {
        if let Some(token) = self.auth.cached(scope) {
            return Ok(Authorization::Bearer(token));
        }
        let scheme = self.auth.lock().scheme.clone();
        Ok(match scheme {
            Some(Scheme::Basic) if self.credentials.is_some() => Authorization::Basic,
            Some(Scheme::Bearer { realm, service }) => {
                Authorization::Bearer(self.token(&realm, service.as_deref(), scope, scope).await?)
            }
            _ => Authorization::Anonymous,
        })
    }

    /// Credentials answering `challenges`, or why there are none.
    async fn answer(
        &self,
        challenges: &[Challenge],
        scope: &str,
        sent: &Authorization,
    ) -> Result<Result<Authorization, &'static str>, UpstreamError> {
        let bearer = challenges
            .iter()
            .find(|c| c.scheme == "bearer" && c.param("realm").is_some_and(|r| !r.is_empty()));
        if let Some(c) = bearer {
            let realm = self.realm_of(c)?;
            let service = c.param("service").map(str::to_owned);
            let token_scope = c.param("scope").filter(|s| !s.is_empty()).unwrap_or(scope);
            self.auth.lock().scheme = Some(Scheme::Bearer {
                realm: realm.clone(),
                service: service.clone(),
            });
            let token = self
                .token(&realm, service.as_deref(), token_scope, scope)
                .await?;
            return Ok(Ok(Authorization::Bearer(token)));
        }
        if challenges.iter().any(|c| c.scheme == "basic") {
            if self.credentials.is_none() {
                return Ok(Err(
                    "the upstream asks for Basic credentials and none are configured",
                ));
            }
            if matches!(sent, Authorization::Basic) {
                return Ok(Err("the configured credentials were refused"));
            }
            self.auth.lock().scheme = Some(Scheme::Basic);
            return Ok(Ok(Authorization::Basic));
        }
        Ok(Err("no Bearer or Basic challenge in WWW-Authenticate"))
    }

    /// The realm of a Bearer challenge, refused unless it is http(s), keeps
    /// an https upstream on https, and leads a public upstream to no
    /// internal address (the rule for redirects: no request forgery).
    pub(super) fn realm_of(&self, c: &Challenge) -> Result<Url, UpstreamError> {
        let realm_text = c.param("realm").unwrap_or_default();
        let realm = Url::parse(realm_text)
            .map_err(|e| UpstreamError::Protocol(format!("bad token realm {realm_text:?}: {e}")))?;
        let downgrade = realm.scheme() == "http" && self.base.scheme() != "http";
        if downgrade || !matches!(realm.scheme(), "http" | "https") {
            return Err(UpstreamError::Protocol(format!(
                "refusing token realm {}: an https upstream must use an https realm",
                url_for_log(&realm)
            )));
        }
        if let Err(why) = super::redirect::check(std::slice::from_ref(&self.base), &realm) {
            return Err(UpstreamError::Protocol(format!(
                "refusing token realm {}: {why}",
                url_for_log(&realm)
            )));
        }
        Ok(realm)
    }

    /// A token for `key` (the scope this client asks with), fetched for
    /// `token_scope` (what the challenge asked for) unless one is cached.
    async fn token(
        &self,
        realm: &Url,
        service: Option<&str>,
        token_scope: &str,
        key: &str,
    ) -> Result<HeaderValue, UpstreamError> {
        let _one_fetch_at_a_time = self.auth.fetching.lock().await;
        if let Some(token) = self.auth.cached(key) {
            return Ok(token);
        }
        let auth = match self.credentials {
            Some(_) => Authorization::Basic,
            None => Authorization::Anonymous,
        };
        let (token, ttl) = self.fetch_token(realm, service, token_scope, &auth).await?;
        self.auth.store(key, token.clone(), ttl);
        Ok(token)
    }

    /// Asks the realm for a token for `scope`, authenticating with `auth`
    /// (the configured credentials, or a client's for an access check).
    #[tracing::instrument(level = "debug", skip_all, fields(realm = %url_for_log(realm), %scope))]
    pub(super) async fn fetch_token(
        &self,
        realm: &Url,
        service: Option<&str>,
        scope: &str,
        auth: &Authorization,
    ) -> Result<(HeaderValue, Duration), UpstreamError> {
        let mut url = realm.clone();
        {
            let mut query = url.query_pairs_mut();
            if let Some(service) = service {
                query.append_pair("service", service);
            }
            query.append_pair("scope", scope);
        }
        let mut resp = self
            .send_with_retries(&Req::new(Method::GET, url), auth)
            .await?;
        if !resp.status().is_success() {
            return Err(match self.status_error(resp).await {
                UpstreamError::Unauthorized(m) => UpstreamError::Unauthorized(format!(
                    "token endpoint refused the credentials: {m}"
                )),
                other => other,
            });
        }
        let body = self.read_body(&mut resp, TOKEN_BODY_LIMIT).await?;
        let parsed = parse_token(&body)?;
        tracing::debug!(ttl = ?parsed.1, "got registry token");
        Ok(parsed)
    }
}

/// The `Authorization` value and lifetime from a token endpoint's answer.
fn parse_token(body: &[u8]) -> Result<(HeaderValue, Duration), UpstreamError> {
    #[derive(Deserialize)]
    struct TokenResponse {
        #[serde(default)]
        token: Option<String>,
        #[serde(default)]
        access_token: Option<String>,
        #[serde(default)]
        expires_in: Option<f64>,
    }
    // serde's message could quote the body, and the body holds the token.
    let r: TokenResponse = serde_json::from_slice(body).map_err(|e| {
        UpstreamError::Protocol(format!(
            "token response is not the expected JSON (line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    let token = [r.token, r.access_token]
        .into_iter()
        .flatten()
        .find(|t| !t.is_empty())
        .ok_or_else(|| {
            UpstreamError::Protocol("token response has neither token nor access_token".into())
        })?;
    let mut header = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
        UpstreamError::Protocol("token holds characters not allowed in a header".into())
    })?;
    header.set_sensitive(true);
    let ttl = match r.expires_in {
        Some(s) if s >= 1.0 => Duration::from_secs_f64(s.min(MAX_TOKEN_TTL.as_secs_f64())),
        _ => DEFAULT_TOKEN_TTL,
    };
    Ok((header, ttl))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_responses() {
        let (h, ttl) = parse_token(br#"{"token":"abc","expires_in":300}"#).unwrap();
        assert_eq!(h, "Bearer abc");
        assert!(h.is_sensitive());
        assert_eq!(ttl, Duration::from_secs(300));
        let (h, ttl) = parse_token(br#"{"access_token":"xyz"}"#).unwrap();
        assert_eq!(h, "Bearer xyz");
        assert_eq!(ttl, DEFAULT_TOKEN_TTL);
        let (h, _) =
            parse_token(br#"{"token":"","access_token":"xyz","expires_in":1e30}"#).unwrap();
        assert_eq!(h, "Bearer xyz");
        assert!(parse_token(br#"{"expires_in":300}"#).is_err());
        assert!(parse_token(b"Bearer secret").is_err());
        let err = parse_token(br#"{"token":"secret-value","expires_in":"soon"}"#).unwrap_err();
        assert!(!err.to_string().contains("secret"), "{err}");
        assert!(parse_token(br#"{"token":"a\nb"}"#).is_err());
    }

    #[test]
    fn token_cache_expires_before_the_upstream_deadline() {
        let cache = AuthCache::default();
        let t0 = Instant::now();
        let at = |secs| t0 + Duration::from_secs(secs);
        let token = HeaderValue::from_static("Bearer t");
        cache.store_at("s", token.clone(), Duration::from_secs(60), t0);
        assert!(cache.cached_at("s", t0).is_some());
        assert!(cache.cached_at("other", t0).is_none());
        assert!(cache.cached_at("s", at(49)).is_some());
        assert!(cache.cached_at("s", at(51)).is_none());
        cache.store_at("short", token.clone(), Duration::from_secs(4), t0);
        assert!(cache.cached_at("short", at(2)).is_some());
        assert!(cache.cached_at("short", at(3)).is_none());
        cache.forget("s");
        assert!(cache.cached_at("s", t0).is_none());
        for i in 0..MAX_CACHED_TOKENS + 10 {
            cache.store_at(&i.to_string(), token.clone(), Duration::from_secs(60), t0);
        }
        assert!(cache.lock().tokens.len() <= MAX_CACHED_TOKENS);
    }
}
