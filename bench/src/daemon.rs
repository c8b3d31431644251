//! One Shoal daemon (`shoal-tracker`, `shoal-supernode`, `shoal-agent`) as a
//! child process, from its binary next to the bench's own.
//!
//! Every daemon binds `127.0.0.1:0` and writes its addresses atomically to
//! `--ready-file` as `{"http":"127.0.0.1:PORT","p2p":"127.0.0.1:PORT"}`;
//! [`Daemon::start`] waits for that file and for `GET /healthz` to answer
//! 200 ([`wait_ready`], which the integration tests' daemons use too).
//! `/metrics` is Prometheus text on the same address.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde::Deserialize;

use crate::child::ChildProcess;
use crate::wait::{STARTUP_TIMEOUT, poll};

/// The daemons the bench starts.
pub const DAEMON_BINARIES: [&str; 3] = ["shoal-tracker", "shoal-supernode", "shoal-agent"];

/// Bytes of a log quoted in error messages.
const LOG_TAIL: u64 = 4096;

/// Why a daemon did not start or answer.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The binary is missing.
    #[error(
        "{0} not found: build the daemons with `cargo build --workspace --bins`, \
         or point --bin-dir at them"
    )]
    NotFound(PathBuf),
    /// Spawning failed or its log could not be created.
    #[error("cannot start {name}: {source}")]
    Spawn {
        /// Binary name.
        name: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// It exited or did not become ready in time.
    #[error("{message}\n{log_tail}")]
    NotReady {
        /// What went wrong.
        message: String,
        /// The end of its log.
        log_tail: String,
    },
    /// `/metrics` could not be read.
    #[error("GET {url}: {detail}")]
    Metrics {
        /// The URL.
        url: String,
        /// The error.
        detail: String,
    },
}

/// Where the daemon binaries are: `explicit` if given, else the directory
/// of the running executable (cargo puts all workspace binaries there).
/// Checks that every daemon is present.
pub fn find_bin_dir(explicit: Option<&Path>) -> Result<PathBuf, DaemonError> {
    let dir = match explicit {
        Some(dir) => dir.to_path_buf(),
        None => std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(Path::to_path_buf))
            .unwrap_or_else(|| PathBuf::from(".")),
    };
    for name in DAEMON_BINARIES {
        let path = dir.join(name);
        if !path.is_file() {
            return Err(DaemonError::NotFound(path));
        }
    }
    Ok(dir)
}

/// The addresses a daemon writes to its ready file.
#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadyFile {
    /// The HTTP address.
    pub http: SocketAddr,
    /// The QUIC address, if the daemon has one.
    pub p2p: Option<SocketAddr>,
}

/// Gives a daemon command plain-text logs at `info` (unless `RUST_LOG`
/// says otherwise) and no backtraces: the logs end up in files and error
/// messages, where a backtrace would push a panic's message out of the tail.
pub fn plain_logs(cmd: &mut Command) {
    cmd.env("NO_COLOR", "1").env("RUST_BACKTRACE", "0");
    if std::env::var_os("RUST_LOG").is_none() {
        cmd.env("RUST_LOG", "info");
    }
}

/// Waits until `child` has written its addresses to `ready`, then until its
/// `GET /healthz` answers 200; fails at once if the child exits.
pub async fn wait_ready(
    child: &mut ChildProcess,
    ready: &Path,
    client: &reqwest::Client,
) -> Result<ReadyFile, String> {
    let name = child.name().to_string();
    let addrs = poll(
        &format!("{name} to write {}", ready.display()),
        STARTUP_TIMEOUT,
        || {
            let exited = child.try_exited();
            let content = std::fs::read(ready).ok();
            let name = &name;
            async move {
                if let Some(parsed) =
                    content.and_then(|b| serde_json::from_slice::<ReadyFile>(&b).ok())
                {
                    return Ok(Some(parsed));
                }
                match exited {
                    Some(status) => Err(format!("{name} exited before it was ready: {status}")),
                    None => Ok(None),
                }
            }
        },
    )
    .await?;
    let url = format!("http://{}/healthz", addrs.http);
    poll(&format!("{name} GET /healthz"), STARTUP_TIMEOUT, || {
        let exited = child.try_exited();
        let req = client.get(&url).send();
        let name = &name;
        async move {
            if let Some(status) = exited {
                return Err(format!("{name} exited: {status}"));
            }
            Ok(match req.await {
                Ok(r) if r.status() == reqwest::StatusCode::OK => Some(()),
                _ => None,
            })
        }
    })
    .await?;
    Ok(addrs)
}

/// A running daemon; killed when dropped.
#[derive(Debug)]
pub struct Daemon {
    child: ChildProcess,
    http: SocketAddr,
    p2p: Option<SocketAddr>,
}

impl Daemon {
    /// Starts `bin_dir/name` with `args` in `dir` (which receives the ready
    /// file and `label.log`), and waits until it is healthy.
    pub async fn start(
        bin_dir: &Path,
        name: &str,
        label: &str,
        dir: &Path,
        args: impl FnOnce(&mut Command),
    ) -> Result<Daemon, DaemonError> {
        let ready = dir.join("ready.json");
        let mut cmd = Command::new(bin_dir.join(name));
        args(&mut cmd);
        cmd.arg("--ready-file").arg(&ready);
        plain_logs(&mut cmd);
        let spawn_err = |source| DaemonError::Spawn {
            name: name.to_string(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(spawn_err)?;
        let mut child = ChildProcess::spawn(label, cmd, &dir.join(format!("{label}.log")))
            .map_err(spawn_err)?;
        let client = crate::http::client(Duration::from_secs(5));
        match wait_ready(&mut child, &ready, &client).await {
            Ok(addrs) => Ok(Daemon {
                child,
                http: addrs.http,
                p2p: addrs.p2p,
            }),
            Err(message) => Err(DaemonError::NotReady {
                message,
                log_tail: child.log_tail(LOG_TAIL),
            }),
        }
    }

    /// The HTTP address (registry API for an agent, API for the others).
    pub fn http_addr(&self) -> SocketAddr {
        self.http
    }

    /// `http://127.0.0.1:PORT`.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.http)
    }

    /// The QUIC address, if the daemon has one.
    pub fn p2p_addr(&self) -> Option<SocketAddr> {
        self.p2p
    }

    /// The child process.
    pub fn process(&self) -> &ChildProcess {
        &self.child
    }

    /// CPU time used so far (zero once it has exited).
    pub fn cpu_time(&self) -> Duration {
        self.child.cpu_time().unwrap_or_default()
    }

    /// The Prometheus text from `GET /metrics`.
    pub async fn metrics(&self, client: &reqwest::Client) -> Result<String, DaemonError> {
        let url = format!("{}/metrics", self.http_url());
        let err = |detail: String| DaemonError::Metrics {
            url: url.clone(),
            detail,
        };
        let resp = client
            .get(&url)
            .send()
            .await
            .map_err(|e| err(crate::http::error_chain(&e)))?;
        if !resp.status().is_success() {
            return Err(err(resp.status().to_string()));
        }
        resp.text().await.map_err(|e| err(e.to_string()))
    }
}
