//! Helpers shared by the tracker tests: announce bodies, signed requests
//! and an in-process tracker here; fake supernodes in [`supernode`]; the
//! real binary and its HTTP client in [`process`].

mod process;
mod supernode;

pub use process::{Client, TrackerProcess, metric, secret_file};
pub use supernode::FakeSupernode;

use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::Body;
use http::{Method, Request, StatusCode};
use serde_json::{Value, json};
use shoal_proto::wire::{ClusterSecret, HttpAuth};
use shoal_proto::{Bitfield, Digest};
use shoal_tracker::{Auth, Config, Seeder, TrackerHandle};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// The cluster secret of the tests.
pub const SECRET: &[u8] = b"tracker test cluster secret";

/// The signer for [`SECRET`].
pub fn auth() -> HttpAuth {
    ClusterSecret::new(SECRET).unwrap().http_auth()
}

/// A signer for another cluster.
pub fn wrong_auth() -> HttpAuth {
    ClusterSecret::new(&b"some other cluster's secret"[..])
        .unwrap()
        .http_auth()
}

/// A distinct blob per `i`.
pub fn blob(i: u32) -> Digest {
    Digest::of(&i.to_be_bytes())
}

/// An announce body of `peer` for `blob` holding `pieces`.
pub fn announce(blob: Digest, peer: u64, pieces: Option<&Bitfield>) -> Value {
    json!({
        "blob": blob,
        "upstream": "docker.io",
        "repo": "library/app",
        "peer": peer,
        "addr": format!("127.0.0.1:{}", 40_000 + peer),
        "pieces": pieces,
        "upload_load": 10,
        "labels": {"zone": "z1"},
        "seed": false,
        "stopped": false,
    })
}

/// A bitfield of `len` pieces holding the first `held`.
pub fn pieces(len: u32, held: u32) -> Bitfield {
    let mut b = Bitfield::new(len);
    for i in 0..held {
        b.set(i);
    }
    b
}

/// A request signed with `auth` (unsigned with `None`).
pub fn request(method: Method, path: &str, body: &[u8], auth: Option<&HttpAuth>) -> Request<Body> {
    let mut req = Request::builder()
        .method(method.clone())
        .uri(path)
        .header(http::header::CONTENT_TYPE, "application/json");
    if let Some(a) = auth {
        let value = a.sign(method.as_str(), path, body, SystemTime::now());
        req = req.header(http::header::AUTHORIZATION, value);
    }
    req.body(Body::from(body.to_vec())).unwrap()
}

/// A tracker in this process: the API router and its state task.
pub struct InProcess {
    /// The router `app` built.
    pub router: Router,
    shutdown: CancellationToken,
}

impl InProcess {
    /// A tracker requiring [`SECRET`], with these supernodes and interval.
    pub fn new(supernodes: &[String], interval: Duration) -> Self {
        Self::with_auth(supernodes, interval, Auth::Signed(auth()))
    }

    /// A tracker with the given authentication.
    pub fn with_auth(supernodes: &[String], interval: Duration, auth: Auth) -> Self {
        let cfg = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            supernodes: supernodes.to_vec(),
            auth,
            announce_interval: interval,
            log_format: Default::default(),
            ready_file: None,
            http: Default::default(),
        };
        let shutdown = CancellationToken::new();
        let seeder = Seeder::new(cfg.auth.http_auth().cloned()).unwrap();
        let handle = TrackerHandle::spawn(
            shoal_tracker::state_config(&cfg),
            7,
            seeder,
            shutdown.clone(),
        );
        InProcess {
            router: shoal_tracker::app(handle, cfg.auth),
            shutdown,
        }
    }

    /// Sends `req` and returns the status and the JSON body (`Null` if
    /// the body is not JSON).
    pub async fn call(&self, req: Request<Body>) -> (StatusCode, Value) {
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// A signed announce.
    pub async fn announce(&self, body: &Value) -> (StatusCode, Value) {
        let bytes = serde_json::to_vec(body).unwrap();
        self.call(request(
            Method::POST,
            "/api/v1/announce",
            &bytes,
            Some(&auth()),
        ))
        .await
    }

    /// The signed swarm view of `blob`.
    pub async fn swarm(&self, blob: Digest) -> (StatusCode, Value) {
        let path = format!("/api/v1/swarm/{blob}");
        self.call(request(Method::GET, &path, b"", Some(&auth())))
            .await
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The peer ids in an announce reply, sorted.
pub fn peer_ids(reply: &Value) -> Vec<u64> {
    let mut ids: Vec<u64> = reply["peers"]
        .as_array()
        .expect("peers array")
        .iter()
        .map(|p| p["peer"].as_u64().unwrap())
        .collect();
    ids.sort_unstable();
    ids
}

/// The peer ids and piece counts of a swarm view, by id.
pub fn swarm_peers(view: &Value) -> Vec<(u64, u64)> {
    let mut ids: Vec<(u64, u64)> = view["peers"]
        .as_array()
        .expect("peers array")
        .iter()
        .map(|p| (p["peer"].as_u64().unwrap(), p["pieces"].as_u64().unwrap()))
        .collect();
    ids.sort_unstable();
    ids
}

/// Polls `check` every 20 ms until it is true; panics after `timeout`.
pub async fn wait_for(what: &str, timeout: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
