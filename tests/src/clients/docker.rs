//! A private dockerd with `registry-mirrors`, and `docker pull` through it.
//!
//! dockerd runs with everything under a temporary directory: data root
//! (vfs storage driver, no mounts needed per layer), exec root (which also
//! holds the containerd that dockerd starts and supervises: its socket,
//! config and pid file), pid file, socket and `daemon.json`. The one
//! exception is dockerd 20.10's trust key, `/etc/docker/key.json`, created
//! once if missing: only daemon.json could move it, and that file is kept
//! identical to the documented example.
//! Networking is off (`--bridge=none`, no iptables, no ip_forward or
//! masquerading changes to the host).
//!
//! dockerd bind-mounts its data root onto itself and starts containerd in a
//! session of its own, so dropping [`Dockerd`] first asks dockerd to stop
//! (SIGTERM: it stops containerd and unmounts), then kills what is left:
//! the process group, the supervised containerd by its pid file, and any
//! mount still under the temporary directory.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use rustix::process::{Pid, Signal, kill_process};
use tempfile::TempDir;

use super::{Output, daemon_json, loopback_only_env, require_tool, run};
use crate::child::ChildGuard;
use crate::wait::{COMMAND_TIMEOUT, STARTUP_TIMEOUT, poll};

/// A running dockerd (and its containerd), stopped on drop.
pub struct Dockerd {
    child: ChildGuard,
    socket: PathBuf,
    dir: TempDir,
}

impl Dockerd {
    /// Starts dockerd with `registry-mirrors` pointing at `mirror`
    /// (`127.0.0.1:PORT`), and waits until `docker version` answers.
    pub async fn start(mirror: &str) -> Dockerd {
        let bin = require_tool("dockerd", "docker.io");
        docker_cli();
        let dir = crate::tmp::dir("shoal-dockerd-");
        let d = dir.path();
        let socket = d.join("docker.sock");
        let config = d.join("daemon.json");
        std::fs::write(&config, daemon_json(mirror)).expect("write daemon.json");
        std::fs::create_dir(d.join("cli")).expect("create docker CLI config dir");
        let mut cmd = Command::new(bin);
        cmd.env("PATH", super::daemon_path());
        cmd.args([
            "--iptables=false",
            "--ip6tables=false",
            "--ip-forward=false",
            "--ip-masq=false",
            "--bridge=none",
            "--storage-driver=vfs",
            "--log-level=info",
        ])
        .arg("--data-root")
        .arg(d.join("root"))
        .arg("--exec-root")
        .arg(d.join("exec"))
        .arg("--pidfile")
        .arg(d.join("dockerd.pid"))
        .arg("-H")
        .arg(format!("unix://{}", socket.display()))
        .arg("--config-file")
        .arg(&config)
        .envs(loopback_only_env());
        let mut child = ChildGuard::spawn("dockerd", cmd, &d.join("dockerd.log"));
        let up = poll("dockerd socket", STARTUP_TIMEOUT, || {
            let exited = child.try_exited();
            let exists = socket.exists();
            async move {
                match exited {
                    Some(status) => Err(format!("dockerd exited: {status}")),
                    None => Ok(exists.then_some(())),
                }
            }
        })
        .await;
        if let Err(e) = up {
            panic!("{e}");
        }
        let dockerd = Dockerd { child, socket, dir };
        let ready = poll("docker version", STARTUP_TIMEOUT, || {
            let cmd = dockerd.docker(["version"]);
            async move { Ok(run(cmd, STARTUP_TIMEOUT).await.success().then_some(())) }
        })
        .await;
        if let Err(e) = ready {
            panic!("{e}");
        }
        dockerd
    }

    /// A `docker -H unix://SOCK <args>` command with its own CLI config dir.
    pub fn docker<I, S>(&self, args: I) -> tokio::process::Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut cmd = tokio::process::Command::new(docker_cli());
        cmd.arg("-H")
            .arg(format!("unix://{}", self.socket.display()))
            .args(args)
            .env("DOCKER_CONFIG", self.dir.path().join("cli"))
            .env_remove("DOCKER_HOST")
            .env_remove("DOCKER_CONTEXT");
        cmd
    }

    /// `docker pull IMAGE`.
    pub async fn pull(&self, image_ref: &str) -> Output {
        run(self.docker(["pull", image_ref]), COMMAND_TIMEOUT).await
    }

    /// `RepoDigests` of a local image (`NAME@sha256:…` entries).
    pub async fn repo_digests(&self, image_ref: &str) -> Vec<String> {
        let out = run(
            self.docker([
                "image",
                "inspect",
                "--format",
                "{{json .RepoDigests}}",
                image_ref,
            ]),
            COMMAND_TIMEOUT,
        )
        .await;
        out.assert_success();
        serde_json::from_str(out.stdout.trim())
            .unwrap_or_else(|e| panic!("RepoDigests not JSON ({e}):\n{out}"))
    }

    /// dockerd's log tail (it includes its containerd's output).
    pub fn log_tail(&self) -> String {
        self.child.log_tail()
    }

    fn containerd_pid(&self) -> Option<Pid> {
        let pid_file = self.dir.path().join("exec/containerd/containerd.pid");
        let pid: i32 = std::fs::read_to_string(pid_file)
            .ok()?
            .trim()
            .parse()
            .ok()?;
        // Only if that pid still is our containerd.
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let ours = String::from_utf8_lossy(&cmdline).contains(&*self.dir.path().to_string_lossy());
        if ours { Pid::from_raw(pid) } else { None }
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        // (ChildGuard prints dockerd's log tail if the test failed.)
        let containerd = self.containerd_pid();
        self.child.terminate(Duration::from_secs(30));
        if let Some(pid) = containerd
            && self.containerd_pid() == Some(pid)
        {
            let _ = kill_process(pid, Signal::KILL);
        }
        unmount_below(self.dir.path());
    }
}

/// The docker CLI: Debian's (same release as dockerd) when present.
fn docker_cli() -> PathBuf {
    let debian = Path::new("/usr/bin/docker");
    if debian.is_file() {
        debian.to_path_buf()
    } else {
        require_tool("docker", "docker.io")
    }
}

/// Lazily unmounts every mount point at or below `dir`, deepest first.
fn unmount_below(dir: &Path) {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut points: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(PathBuf::from)
        .filter(|p| p.starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
    for p in points {
        if let Err(e) = rustix::mount::unmount(&p, rustix::mount::UnmountFlags::DETACH) {
            eprintln!("unmount {}: {e}", p.display());
        }
    }
}
