//! A supernode stand-in that records the seeding requests it receives.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use http::{HeaderMap, Method, StatusCode};
use shoal_agent::daemon::{HttpLimits, ListenerTls, serve, serve_tls};
use shoal_agent::p2p::ClusterTls;
use shoal_proto::tracker_wire::SeedRequest;
use shoal_proto::wire::{ClusterSecret, HttpAuth};
use tokio_util::sync::CancellationToken;

/// A request a fake supernode received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// Path and query.
    pub target: String,
    /// Whether its signature verified with [`SECRET`].
    pub signed: bool,
    /// The parsed body.
    pub body: Option<SeedRequest>,
}

/// A supernode stand-in on `127.0.0.1:0` that records seeding requests
/// and answers 202 when they are signed with `verify`'s key, 401 if not.
pub struct FakeSupernode {
    /// Its base URL.
    pub url: String,
    requests: Arc<Mutex<Vec<Recorded>>>,
    shutdown: CancellationToken,
}

impl FakeSupernode {
    /// Starts one that checks signatures with `verify`, in plain HTTP.
    pub async fn start(verify: HttpAuth) -> Self {
        Self::start_with(verify, None).await
    }

    /// Starts one that checks signatures with `verify`, over TLS as a
    /// member of `secret`'s cluster (as a supernode with the secret does).
    pub async fn start_tls(verify: HttpAuth, secret: &ClusterSecret) -> Self {
        let tls = ClusterTls::new(secret).unwrap();
        Self::start_with(verify, Some(tls)).await
    }

    async fn start_with(verify: HttpAuth, tls: Option<ClusterTls>) -> Self {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let app = Router::new()
            .route("/api/v1/seed", post(record))
            .with_state((verify, requests.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone().cancelled_owned();
        let limits = HttpLimits::default();
        tokio::spawn(async move {
            match tls {
                None => serve(listener, app, &limits, stop).await.unwrap(),
                Some(tls) => {
                    let tls = ListenerTls {
                        config: Arc::new(tls.http_server_config().unwrap()),
                        plain: Router::new(),
                    };
                    serve_tls(listener, app, tls, &limits, stop).await.unwrap();
                }
            }
        });
        FakeSupernode {
            url: format!("http://{addr}"),
            requests,
            shutdown,
        }
    }

    /// The requests received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for FakeSupernode {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

type FakeState = (HttpAuth, Arc<Mutex<Vec<Recorded>>>);

async fn record(
    State((verify, requests)): State<FakeState>,
    method: Method,
    uri: http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let target = uri.path_and_query().unwrap().as_str().to_owned();
    let signed = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|h| {
            verify
                .verify(h, method.as_str(), &target, &body, SystemTime::now())
                .is_ok()
        });
    requests.lock().unwrap().push(Recorded {
        target,
        signed,
        body: serde_json::from_slice(&body).ok(),
    });
    if signed {
        StatusCode::ACCEPTED
    } else {
        StatusCode::UNAUTHORIZED
    }
}
