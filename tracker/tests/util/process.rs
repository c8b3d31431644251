//! The real `shoal-tracker` binary as a child process, and an HTTP client
//! that signs its requests (and, signing, speaks TLS as a member of
//! [`SECRET`]'s cluster: a tracker with the secret serves only that).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use http::{Method, StatusCode};
use serde_json::Value;
use shoal_proto::Digest;
use shoal_proto::wire::{ClusterSecret, HttpAuth};
use shoal_tracker::Auth;

use super::SECRET;

/// The real `shoal-tracker` binary, killed when dropped.
pub struct TrackerProcess {
    child: Child,
    /// Its HTTP address.
    pub addr: SocketAddr,
    /// Its temporary directory (ready file, log).
    pub dir: tempfile::TempDir,
}

impl TrackerProcess {
    /// Starts it on `127.0.0.1:0` with `args` and waits for its ready file.
    pub async fn start(args: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ready = dir.path().join("ready.json");
        let log = std::fs::File::create(dir.path().join("tracker.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_shoal-tracker"))
            .args(["--listen", "127.0.0.1:0", "--ready-file"])
            .arg(&ready)
            .args(args)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut p = TrackerProcess {
            child,
            addr: "0.0.0.0:0".parse().unwrap(),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(text) = std::fs::read(&ready) {
                let v: Value = serde_json::from_slice(&text).unwrap();
                p.addr = v["http"].as_str().unwrap().parse().unwrap();
                return p;
            }
            if let Some(status) = p.child.try_wait().unwrap() {
                panic!("tracker exited with {status}: {}", p.log());
            }
            assert!(Instant::now() < deadline, "tracker not ready: {}", p.log());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("tracker.log")).unwrap_or_default()
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for TrackerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A secret file holding [`SECRET`], readable by its owner only.
pub fn secret_file(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("cluster.secret");
    std::fs::write(&path, [SECRET, b"\n"].concat()).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// An HTTP client for the binary, signing with `auth`.
pub struct Client {
    http: reqwest::Client,
    base: String,
    auth: Option<HttpAuth>,
}

impl Client {
    /// A client of the tracker at `base`; with `auth`, over TLS.
    pub fn new(base: String, auth: Option<HttpAuth>) -> Self {
        shoal_agent::daemon::install_crypto_provider();
        let tls = match &auth {
            Some(_) => Auth::member(&ClusterSecret::new(SECRET).unwrap()).unwrap(),
            None => Auth::Insecure,
        };
        let base = tls.api_url(&base).unwrap();
        Client {
            http: tls
                .client_builder()
                .unwrap()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
            base: base.as_str().trim_end_matches('/').to_owned(),
            auth,
        }
    }

    /// Sends a request and returns the status and JSON body (`Null` if not
    /// JSON).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let bytes = body
            .map(|b| serde_json::to_vec(b).unwrap())
            .unwrap_or_default();
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .header(http::header::CONTENT_TYPE, "application/json");
        if let Some(a) = &self.auth {
            req = req.header(
                http::header::AUTHORIZATION,
                a.sign(method.as_str(), path, &bytes, SystemTime::now()),
            );
        }
        let resp = req.body(bytes).send().await.unwrap();
        let status = resp.status();
        let bytes = resp.bytes().await.unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// An announce.
    pub async fn announce(&self, body: &Value) -> (StatusCode, Value) {
        self.send(Method::POST, "/api/v1/announce", Some(body))
            .await
    }

    /// The swarm view of `blob`.
    pub async fn swarm(&self, blob: Digest) -> (StatusCode, Value) {
        self.send(Method::GET, &format!("/api/v1/swarm/{blob}"), None)
            .await
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        let resp = self
            .http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .unwrap();
        resp.text().await.unwrap()
    }
}

/// The value of the metric line starting with `series ` (name and
/// labels), if present.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}
