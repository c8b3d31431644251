//! Shoal's own daemons as child processes: `shoal-supernode`, `shoal-agent`
//! and `shoal-tracker`, each with a temporary data directory.
//!
//! Every daemon binds `127.0.0.1:0` and writes its addresses atomically to
//! `--ready-file` as `{"http":"127.0.0.1:PORT","p2p":"127.0.0.1:PORT"}`;
//! [`Daemon`] waits for that file and for `GET /healthz` to answer 200.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use tempfile::TempDir;

use crate::child::ChildGuard;
use crate::wait::{STARTUP_TIMEOUT, poll};

/// The path of a workspace binary in the same target directory as this test
/// (`target/debug/deps/tests-…` → `target/debug/NAME`).
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test binary lives in target/<profile>/deps");
    let path = dir.join(name);
    if !path.exists() {
        panic!(
            "{} not found: build the daemons first with `cargo build --workspace --bins`",
            path.display()
        );
    }
    path
}

/// The ready file's content.
#[derive(Deserialize, Debug)]
struct ReadyFile {
    http: SocketAddr,
    p2p: Option<SocketAddr>,
}

/// A running Shoal daemon.
pub struct Daemon {
    child: ChildGuard,
    http: SocketAddr,
    p2p: Option<SocketAddr>,
    dir: TempDir,
}

/// Options for [`Daemon::supernode`].
#[derive(Clone, Debug, Default)]
pub struct SupernodeOptions {
    /// `--upstream NAME=URL`, the first is the default.
    pub upstreams: Vec<(String, String)>,
    /// `--upstream-ca NAME=PEMFILE`.
    pub upstream_cas: Vec<(String, PathBuf)>,
}

impl Daemon {
    /// Starts `shoal-supernode`.
    pub async fn supernode(opts: &SupernodeOptions) -> Daemon {
        Self::start("shoal-supernode", |cmd, dir, ready| {
            cmd.args(["--listen", "127.0.0.1:0", "--p2p-listen", "127.0.0.1:0"])
                .arg("--data-dir")
                .arg(dir.join("data"))
                .arg("--ready-file")
                .arg(ready);
            for (name, url) in &opts.upstreams {
                cmd.arg("--upstream").arg(format!("{name}={url}"));
            }
            for (name, pem) in &opts.upstream_cas {
                cmd.arg("--upstream-ca")
                    .arg(format!("{name}={}", pem.display()));
            }
        })
        .await
    }

    /// Starts `shoal-supernode` with extra flags (for instance
    /// `--cluster-secret-file`, `--upload-rate`).
    pub async fn supernode_with(opts: &SupernodeOptions, extra: &[String]) -> Daemon {
        Self::start("shoal-supernode", |cmd, dir, ready| {
            cmd.args(["--listen", "127.0.0.1:0", "--p2p-listen", "127.0.0.1:0"])
                .arg("--data-dir")
                .arg(dir.join("data"))
                .arg("--ready-file")
                .arg(ready)
                .args(extra);
            for (name, url) in &opts.upstreams {
                cmd.arg("--upstream").arg(format!("{name}={url}"));
            }
        })
        .await
    }

    /// Starts `shoal-agent` using `supernode`, with the given upstreams
    /// (`NAME`, `URL`; the first is the default).
    pub async fn agent(supernode: &Daemon, upstreams: &[(String, String)]) -> Daemon {
        Self::agent_with(supernode, upstreams, &[]).await
    }

    /// [`Daemon::agent`] with extra flags (for instance
    /// `--cluster-secret-file`, `--tracker`, `--upload-rate`, or
    /// `--data-dir` to use a directory that outlives the process).
    pub async fn agent_with(
        supernode: &Daemon,
        upstreams: &[(String, String)],
        extra: &[String],
    ) -> Daemon {
        Self::start("shoal-agent", |cmd, dir, ready| {
            cmd.args(extra);
            // `extra` may name the data dir (to restart on the same one).
            if !extra.iter().any(|a| a == "--data-dir") {
                cmd.arg("--data-dir").arg(dir.join("data"));
            }
            cmd.args([
                "--registry-listen",
                "127.0.0.1:0",
                "--p2p-listen",
                "127.0.0.1:0",
            ])
            .arg("--supernode")
            .arg(supernode.http_url())
            .arg("--ready-file")
            .arg(ready);
            for (name, url) in upstreams {
                cmd.arg("--upstream").arg(format!("{name}={url}"));
            }
        })
        .await
    }

    /// Starts `shoal-tracker` with the cluster secret in `secret` and extra
    /// flags.
    pub async fn tracker_with(secret: &Path, extra: &[String]) -> Daemon {
        Self::start("shoal-tracker", |cmd, _dir, ready| {
            cmd.args(["--listen", "127.0.0.1:0", "--cluster-secret-file"])
                .arg(secret)
                .arg("--ready-file")
                .arg(ready)
                .args(extra);
        })
        .await
    }

    /// Starts `shoal-tracker` with a fresh cluster secret in its temp dir.
    pub async fn tracker() -> Daemon {
        Self::start("shoal-tracker", |cmd, dir, ready| {
            let secret = dir.join("cluster-secret");
            std::fs::write(&secret, "test cluster secret, 32 bytes long\n").expect("write secret");
            cmd.args(["--listen", "127.0.0.1:0", "--cluster-secret-file"])
                .arg(secret)
                .arg("--ready-file")
                .arg(ready);
        })
        .await
    }

    async fn start(name: &str, args: impl FnOnce(&mut Command, &Path, &Path)) -> Daemon {
        let bin = binary(name);
        let dir = crate::tmp::dir(&format!("{name}-"));
        let ready = dir.path().join("ready.json");
        let mut cmd = Command::new(&bin);
        args(&mut cmd, dir.path(), &ready);
        // Plain text logs: they end up in files and in failure messages;
        // no backtraces, they would push a panic's message out of the tail.
        cmd.env("NO_COLOR", "1").env("RUST_BACKTRACE", "0");
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info");
        }
        let cmdline = format!("{cmd:?}");
        let mut child = ChildGuard::spawn(name, cmd, &dir.path().join(format!("{name}.log")));

        let started = poll(
            &format!("{name} to write {}", ready.display()),
            STARTUP_TIMEOUT,
            || {
                let exited = child.try_exited();
                let content = std::fs::read(&ready).ok();
                async move {
                    if let Some(bytes) = content
                        && let Ok(parsed) = serde_json::from_slice::<ReadyFile>(&bytes)
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
        .await;
        let ready = match started {
            Ok(r) => r,
            Err(e) => panic!("{e}\ncommand: {cmdline}"),
        };
        let mut daemon = Daemon {
            child,
            http: ready.http,
            p2p: ready.p2p,
            dir,
        };
        let client = crate::http::client();
        let url = format!("{}/healthz", daemon.http_url());
        let healthy = poll(&format!("{name} GET /healthz"), STARTUP_TIMEOUT, || {
            let exited = daemon.child.try_exited();
            let req = client.get(&url).send();
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
        .await;
        if let Err(e) = healthy {
            panic!("{e}");
        }
        daemon
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

    /// The daemon's `--data-dir`.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The daemon's whole log so far.
    pub fn log(&self) -> String {
        self.child.log()
    }

    /// Labelled tail of the log, for failure messages.
    pub fn log_tail(&self) -> String {
        self.child.log_tail()
    }

    /// The Prometheus text from `GET /metrics`.
    pub async fn metrics(&self) -> String {
        let url = format!("{}/metrics", self.http_url());
        let resp = crate::http::client()
            .get(&url)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        assert!(resp.status().is_success(), "GET {url}: {}", resp.status());
        resp.text().await.expect("metrics body")
    }

    /// The sum of every sample of metric `name` (all label sets), or `None`
    /// if the metric is absent.
    pub async fn metric_sum(&self, name: &str) -> Option<f64> {
        sum_metric(&self.metrics().await, name)
    }
}

/// Sums the samples of `name` in Prometheus text format.
pub fn sum_metric(text: &str, name: &str) -> Option<f64> {
    let mut found = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with(' ') || rest.starts_with('{')) {
            continue;
        }
        let value = rest.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok());
        if let Some(v) = value {
            *found.get_or_insert(0.0) += v;
        }
    }
    found
}

#[cfg(test)]
mod tests {
    #[test]
    fn sums_prometheus_samples() {
        let text =
            "# HELP x\nshoal_bytes{src=\"a\"} 2\nshoal_bytes{src=\"b\"} 3\nshoal_bytes_total 9\n";
        assert_eq!(super::sum_metric(text, "shoal_bytes"), Some(5.0));
        assert_eq!(super::sum_metric(text, "missing"), None);
    }
}
