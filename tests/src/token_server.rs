//! A registry token server for `docker-registry`'s `auth: token:` (the
//! Docker token authentication flow): `GET /token?service=&scope=` with
//! Basic credentials answers `{"token": JWT}`, an ES256 JWT whose `x5c`
//! header carries the signing certificate; the registry trusts it because
//! that self-signed certificate is its `rootcertbundle`.
//!
//! Users are a fixed table; each valid user gets `pull` on every repository
//! it asks for, unless it is listed as having no access (then the token
//! grants nothing and the registry refuses it). Wrong or missing
//! credentials get a 401.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{self, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use shoal_bench::http::Server;

/// The `service` the registry and the tokens name.
pub const SERVICE: &str = "shoal-test-registry";
/// The tokens' issuer.
pub const ISSUER: &str = "shoal-test-token-issuer";

/// A running token server, stopped on drop.
pub struct TokenServer {
    server: Server,
    signer: Arc<Signer>,
    cert_pem: PathBuf,
}

struct Signer {
    key: EcdsaKeyPair,
    rng: SystemRandom,
    /// The signing certificate, standard base64 of its DER.
    x5c: String,
    users: HashMap<String, String>,
    no_access: Vec<String>,
}

impl TokenServer {
    /// Starts a token server on `127.0.0.1:0` with `users` (name,
    /// password); those in `no_access` authenticate but are granted
    /// nothing. Writes the signing certificate into `dir`.
    pub async fn start(dir: &Path, users: &[(&str, &str)], no_access: &[&str]) -> TokenServer {
        let key = rcgen::KeyPair::generate().expect("token signing key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Shoal test token signer");
        let cert = params.self_signed(&key).expect("self-sign token cert");
        let cert_pem = dir.join("token-signer.pem");
        std::fs::write(&cert_pem, cert.pem()).expect("write token cert");
        let signer = Arc::new(Signer {
            key: EcdsaKeyPair::from_pkcs8(
                &ECDSA_P256_SHA256_FIXED_SIGNING,
                &key.serialize_der(),
                &SystemRandom::new(),
            )
            .expect("ring key from PKCS#8"),
            rng: SystemRandom::new(),
            x5c: STANDARD.encode(cert.der()),
            users: users
                .iter()
                .map(|(u, p)| (u.to_string(), p.to_string()))
                .collect(),
            no_access: no_access.iter().map(|u| u.to_string()).collect(),
        });
        let app = Router::new()
            .route("/token", get(token))
            .with_state(signer.clone());
        let server = Server::start(app, "token server")
            .await
            .expect("bind token server");
        TokenServer {
            server,
            signer,
            cert_pem,
        }
    }

    /// `http://127.0.0.1:PORT/token`.
    pub fn realm(&self) -> String {
        format!("{}/token", self.server.url())
    }

    /// The certificate the registry must trust (its `rootcertbundle`).
    pub fn cert_pem(&self) -> &Path {
        &self.cert_pem
    }

    /// A token granting `actions` on `repo` to a test harness (to push).
    pub fn mint(&self, repo: &str, actions: &[&str]) -> String {
        self.signer.sign("harness", &[(repo.to_string(), actions)])
    }
}

impl Signer {
    /// `user` if `authorization` holds its Basic credentials.
    fn user(&self, headers: &HeaderMap) -> Option<String> {
        let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
        let encoded = value.strip_prefix("Basic ")?;
        let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
        let (user, password) = decoded.split_once(':')?;
        (self.users.get(user)? == password).then(|| user.to_string())
    }

    fn sign(&self, subject: &str, access: &[(String, &[&str])]) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_secs();
        let header = serde_json::json!({"typ": "JWT", "alg": "ES256", "x5c": [self.x5c]});
        let access: Vec<_> = access
            .iter()
            .map(|(name, actions)| {
                serde_json::json!({"type": "repository", "name": name, "actions": actions})
            })
            .collect();
        let claims = serde_json::json!({
            "iss": ISSUER, "sub": subject, "aud": SERVICE,
            "exp": now + 300, "nbf": now - 10, "iat": now,
            "jti": format!("{now}-{}", rand_hex(&self.rng)),
            "access": access,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig = self
            .key
            .sign(&self.rng, signing_input.as_bytes())
            .expect("sign token");
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
    }
}

fn rand_hex(rng: &SystemRandom) -> String {
    let bytes: [u8; 8] = ring::rand::generate(rng).expect("random").expose();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn token(
    State(s): State<Arc<Signer>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let Some(user) = s.user(&headers) else {
        return (
            StatusCode::UNAUTHORIZED,
            [(http::header::WWW_AUTHENTICATE, "Basic realm=\"token\"")],
            r#"{"errors":[{"code":"UNAUTHORIZED","message":"bad or missing credentials"}]}"#,
        )
            .into_response();
    };
    let query = query.unwrap_or_default();
    let pull: &[&str] = if s.no_access.contains(&user) {
        &[]
    } else {
        &["pull"]
    };
    let access: Vec<(String, &[&str])> = form_pairs(&query)
        .into_iter()
        .filter(|(k, _)| k == "scope")
        .filter_map(|(_, scope)| {
            let mut parts = scope.splitn(3, ':');
            match (parts.next(), parts.next()) {
                (Some("repository"), Some(name)) => Some((name.to_string(), pull)),
                _ => None,
            }
        })
        .collect();
    let token = s.sign(&user, &access);
    axum::Json(serde_json::json!({"token": token, "access_token": token, "expires_in": 300}))
        .into_response()
}

/// `key=value` pairs of a query string, percent-decoded.
fn form_pairs(query: &str) -> Vec<(String, String)> {
    reqwest::Url::parse(&format!("http://x/?{query}"))
        .map(|u| u.query_pairs().into_owned().collect())
        .unwrap_or_default()
}
