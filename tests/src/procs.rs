//! Shoal's own daemons as child processes: `shoal-supernode`, `shoal-agent`
//! and `shoal-tracker`, each with a temporary data directory.
//!
//! Every daemon binds `127.0.0.1:0` and writes its addresses atomically to
//! `--ready-file` as `{"http":"127.0.0.1:PORT","p2p":"127.0.0.1:PORT"}`;
//! [`Daemon`] waits for that file and for `GET /healthz` to answer 200.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use shoal_bench::daemon::{ReadyFile, plain_logs, wait_ready};
use tempfile::TempDir;

use crate::child::ChildGuard;

/// The path of a workspace binary in the same target directory as this test
/// (`target/debug/deps/tests-…` → `target/debug/NAME`), or in
/// `$SHOAL_BIN_DIR` if set (for instance `target/release`, to measure
/// release builds from a debug test binary).
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = match std::env::var_os("SHOAL_BIN_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => exe
            .parent()
            .and_then(|deps| deps.parent())
            .expect("test binary lives in target/<profile>/deps")
            .to_path_buf(),
    };
    let path = dir.join(name);
    if !path.exists() {
        panic!(
            "{} not found: build the daemons first with `cargo build --workspace --bins`",
            path.display()
        );
    }
    path
}

/// A running Shoal daemon.
pub struct Daemon {
    child: ChildGuard,
    name: String,
    /// The command line, to start the daemon again ([`Daemon::restart`]).
    program: OsString,
    args: Vec<OsString>,
    starts: u32,
    http: SocketAddr,
    p2p: Option<SocketAddr>,
    dir: TempDir,
}

/// Flags whose `127.0.0.1:0` becomes the bound address on a restart.
const HTTP_LISTEN: [&str; 2] = ["--listen", "--registry-listen"];
const P2P_LISTEN: &str = "--p2p-listen";

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
        Self::agent_at(&supernode.http_url(), upstreams, extra).await
    }

    /// [`Daemon::agent_with`] with the supernode at `supernode_url` (for
    /// instance a proxy in front of it).
    pub async fn agent_at(
        supernode_url: &str,
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
            .arg(supernode_url)
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
        let program = cmd.get_program().to_owned();
        let args: Vec<OsString> = cmd.get_args().map(ToOwned::to_owned).collect();
        let (child, ready) = launch(name, cmd, dir.path(), &format!("{name}.log")).await;
        Daemon {
            child,
            name: name.to_owned(),
            program,
            args,
            starts: 1,
            http: ready.http,
            p2p: ready.p2p,
            dir,
        }
    }

    /// Kills the daemon with SIGKILL (no shutdown, like a crash) and starts
    /// it again with the same flags, data directory and addresses: the
    /// `127.0.0.1:0` of its listen flags becomes the address it had bound.
    /// The new process logs to a file of its own (`NAME.restartN.log`).
    pub async fn restart(&mut self) {
        self.kill();
        let ready = self.dir.path().join("ready.json");
        let _ = std::fs::remove_file(&ready);
        let mut args = self.args.clone();
        for i in 1..args.len() {
            let flag = args[i - 1].to_str().unwrap_or_default();
            if HTTP_LISTEN.contains(&flag) {
                args[i] = self.http.to_string().into();
            } else if flag == P2P_LISTEN
                && let Some(p2p) = self.p2p
            {
                args[i] = p2p.to_string().into();
            }
        }
        let mut cmd = Command::new(&self.program);
        cmd.args(&args);
        let log = format!("{}.restart{}.log", self.name, self.starts);
        self.starts += 1;
        let (child, addrs) = launch(&self.name, cmd, self.dir.path(), &log).await;
        assert_eq!(addrs.http, self.http, "{} restarted elsewhere", self.name);
        self.child = child;
        self.p2p = addrs.p2p;
    }

    /// Kills the daemon with SIGKILL and reaps it; a later
    /// [`restart`](Self::restart) starts it again.
    pub fn kill(&mut self) {
        self.child.kill();
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

    /// The process id (for `/proc/PID/status`).
    pub fn pid(&self) -> u32 {
        self.child.id()
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

/// Starts `cmd` (a daemon with `--ready-file DIR/ready.json`), logging to
/// `DIR/LOG`, and waits until it has written its addresses and answers
/// `GET /healthz`.
async fn launch(name: &str, mut cmd: Command, dir: &Path, log: &str) -> (ChildGuard, ReadyFile) {
    plain_logs(&mut cmd);
    let cmdline = format!("{cmd:?}");
    let mut child = ChildGuard::spawn(name, cmd, &dir.join(log));
    match wait_ready(&mut child, &dir.join("ready.json"), &crate::http::client()).await {
        Ok(ready) => (child, ready),
        Err(e) => panic!("{e}\ncommand: {cmdline}"),
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
