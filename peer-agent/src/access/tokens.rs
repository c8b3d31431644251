//! The agent's own token realm, so that container runtimes send the
//! credentials they have.
//!
//! Runtimes decide from the `GET /v2/` ping whether and how to
//! authenticate: Docker and skopeo send no credentials to a registry whose
//! ping answers 200, and fail on a Basic challenge when they have none. So
//! the agent answers an unauthenticated ping the way Docker Hub does, with
//! a Bearer challenge naming its own realm (`GET /shoal/token`). A runtime
//! asks that realm for a token, with the Basic credentials it has for the
//! registry or anonymously; the agent answers with a random token that
//! stands for those credentials, held in memory for [`TOKEN_TTL`], and
//! later requests carrying the token are checked with the credentials it
//! stands for. The realm checks nothing itself: every request is checked
//! against the upstream ([`super::AccessControl`]).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use http::{HeaderMap, header};

use super::ClientAuth;

/// Path of the agent's token realm.
pub const TOKEN_PATH: &str = "/shoal/token";
/// How long a token stands for its credentials.
pub const TOKEN_TTL: Duration = Duration::from_secs(3600);
/// Most tokens held; past that, expired ones go, then the oldest.
const MAX_TOKENS: usize = 16 * 1024;

/// Tokens issued by the agent's realm, each standing for a client's
/// credentials (or for an anonymous client).
#[derive(Default)]
pub struct ClientTokens {
    map: Mutex<HashMap<String, (ClientAuth, Instant)>>,
}

impl ClientTokens {
    /// A new token standing for `client`.
    pub fn issue(&self, client: ClientAuth) -> String {
        let bytes: [u8; 32] = rand::random();
        let token = format!("shoal.{}", hex::encode(bytes));
        let now = Instant::now();
        let mut map = self.map.lock().expect("tokens lock");
        if map.len() >= MAX_TOKENS {
            map.retain(|_, (_, at)| now.saturating_duration_since(*at) < TOKEN_TTL);
        }
        if map.len() >= MAX_TOKENS
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        map.insert(token.clone(), (client, now));
        token
    }

    /// The client's credentials: those a token of ours stands for, else
    /// the `Authorization` header as it is (none, Basic, or an upstream's
    /// own token).
    pub fn client(&self, headers: &HeaderMap) -> ClientAuth {
        let given = ClientAuth::from_headers(headers, header::AUTHORIZATION);
        let ours = given
            .header()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .filter(|t| t.starts_with("shoal."));
        let Some(token) = ours else {
            return given;
        };
        let map = self.map.lock().expect("tokens lock");
        match map.get(token.trim()) {
            Some((client, at)) if at.elapsed() < TOKEN_TTL => client.clone(),
            _ => given,
        }
    }
}

/// The Bearer challenge naming the agent's realm at the address the client
/// used (its `Host` header).
pub fn challenge(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b))
        })
        .unwrap_or("127.0.0.1");
    format!("Bearer realm=\"http://{host}{TOKEN_PATH}\",service=\"shoal\"")
}

/// The realm's JSON answer for `token`.
pub fn token_body(token: &str) -> String {
    serde_json::json!({
        "token": token,
        "access_token": token,
        "expires_in": TOKEN_TTL.as_secs(),
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn with_auth(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn a_token_stands_for_the_credentials_it_was_issued_for() {
        let tokens = ClientTokens::default();
        let alice = ClientAuth::from_headers(&with_auth("Basic YQ=="), header::AUTHORIZATION);
        let t = tokens.issue(alice);
        let got = tokens.client(&with_auth(&format!("Bearer {t}")));
        assert_eq!(got.header().unwrap(), "Basic YQ==");
        let anon = tokens.issue(ClientAuth::anonymous());
        assert!(
            tokens
                .client(&with_auth(&format!("Bearer {anon}")))
                .is_anonymous()
        );
        // Unknown tokens and other schemes pass as they are.
        let forged = tokens.client(&with_auth("Bearer shoal.00"));
        assert_eq!(forged.header().unwrap(), "Bearer shoal.00");
        let basic = tokens.client(&with_auth("Basic Yg=="));
        assert_eq!(basic.header().unwrap(), "Basic Yg==");
        assert!(tokens.client(&HeaderMap::new()).is_anonymous());
    }

    #[test]
    fn challenge_names_the_realm_at_the_host_used() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:65001"));
        assert_eq!(
            challenge(&h),
            "Bearer realm=\"http://127.0.0.1:65001/shoal/token\",service=\"shoal\""
        );
        h.insert(header::HOST, HeaderValue::from_static("evil\",x=\"y"));
        assert!(challenge(&h).contains("http://127.0.0.1/shoal/token"));
    }
}
