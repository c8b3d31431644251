//! Real container clients pulling through a mirror: skopeo, containerd's
//! `ctr`, and dockerd with the docker CLI.
//!
//! Their configuration is the very text users are told to write: the
//! examples under `docs/examples/` are included here and only the agent's
//! placeholder address (and the real registry, which must not be reached)
//! is substituted.
//!
//! Every client runs with `HTTP(S)_PROXY` pointing at a dead loopback port
//! and `NO_PROXY` covering loopback: if a client ever falls back from the
//! mirror to the real registry, that request fails at once instead of
//! leaving the machine.

pub mod containerd;
pub mod docker;
pub mod skopeo;

use std::fmt;
use std::process::ExitStatus;
use std::time::Duration;

/// The agent address the examples use; tests replace it.
pub const EXAMPLE_AGENT: &str = "127.0.0.1:65001";
/// The real upstream in `hosts.toml`; tests replace it with a dead port.
pub const EXAMPLE_SERVER: &str = "https://registry-1.docker.io";
/// A loopback address nothing listens on.
pub const DEAD_ADDR: &str = "127.0.0.1:1";

/// `docs/examples/daemon.json`.
pub const DAEMON_JSON: &str = include_str!("../../../docs/examples/daemon.json");
/// `docs/examples/hosts.toml`.
pub const HOSTS_TOML: &str = include_str!("../../../docs/examples/hosts.toml");
/// `docs/examples/registries.conf`.
pub const REGISTRIES_CONF: &str = include_str!("../../../docs/examples/registries.conf");

/// `daemon.json` with the mirror at `mirror` (`127.0.0.1:PORT`).
pub fn daemon_json(mirror: &str) -> String {
    substitute(DAEMON_JSON, EXAMPLE_AGENT, mirror)
}

/// `hosts.toml` for docker.io with the mirror at `mirror` and the real
/// registry replaced by a dead loopback port, so only the mirror can serve.
pub fn hosts_toml(mirror: &str) -> String {
    let text = substitute(HOSTS_TOML, EXAMPLE_AGENT, mirror);
    substitute(&text, EXAMPLE_SERVER, &format!("https://{DEAD_ADDR}"))
}

/// `registries.conf` with the mirror at `mirror`.
pub fn registries_conf(mirror: &str) -> String {
    substitute(REGISTRIES_CONF, EXAMPLE_AGENT, mirror)
}

fn substitute(template: &str, from: &str, to: &str) -> String {
    assert!(
        template.contains(from),
        "example lost its placeholder {from:?}:\n{template}"
    );
    template.replace(from, to)
}

/// Environment that makes a client unable to reach anything but loopback
/// over HTTP(S): every other request goes to a proxy that is not there.
pub fn loopback_only_env() -> Vec<(&'static str, String)> {
    let proxy = format!("http://{DEAD_ADDR}");
    let mut env: Vec<_> = ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"]
        .into_iter()
        .map(|k| (k, proxy.clone()))
        .collect();
    for key in ["NO_PROXY", "no_proxy"] {
        env.push((key, "127.0.0.1,localhost,::1".to_string()));
    }
    env
}

/// Applies [`loopback_only_env`] to `cmd`.
pub fn loopback_only(cmd: &mut tokio::process::Command) {
    cmd.envs(loopback_only_env());
}

/// The result of a finished client command.
pub struct Output {
    /// The command line, for messages.
    pub command: String,
    /// Exit status (`None` if it timed out and was killed).
    pub status: Option<ExitStatus>,
    /// Captured stdout.
    pub stdout: String,
    /// Captured stderr.
    pub stderr: String,
}

impl Output {
    /// Whether the command exited with status 0.
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    /// Panics with the full output unless the command succeeded.
    pub fn assert_success(&self) -> &Output {
        assert!(self.success(), "command failed:\n{self}");
        self
    }
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = match self.status {
            Some(s) => s.to_string(),
            None => "timed out (killed)".to_string(),
        };
        write!(
            f,
            "$ {}\n{status}\n--- stdout (tail) ---\n{}\n--- stderr (tail) ---\n{}",
            self.command,
            crate::child::tail_str(&self.stdout, 8 * 1024),
            crate::child::tail_str(&self.stderr, 8 * 1024)
        )
    }
}

/// Runs `cmd` to completion with a timeout; the child is killed if the
/// timeout passes or the test is dropped meanwhile.
pub async fn run(mut cmd: tokio::process::Command, timeout: Duration) -> Output {
    let command = format!("{:?}", cmd.as_std());
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {command}: {e}"));
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(out) => {
            let out = out.unwrap_or_else(|e| panic!("{command}: {e}"));
            Output {
                command,
                status: Some(out.status),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            }
        }
        Err(_) => Output {
            command,
            status: None,
            stdout: String::new(),
            stderr: String::new(),
        },
    }
}

/// `PATH` with the system directories appended, for daemons that start
/// helpers by name (dockerd starts containerd, containerd starts runc).
pub fn daemon_path() -> std::ffi::OsString {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path).chain(SYSTEM_DIRS.map(Into::into));
    std::env::join_paths(dirs).expect("PATH entries without ':'")
}

const SYSTEM_DIRS: [&str; 6] = [
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

/// The path of `program`: found on `PATH` or in the usual system
/// directories (root's `sbin` ones may be missing from `PATH`), or an
/// absolute path that exists. Panics naming the Debian package to install.
pub fn require_tool(program: &str, package: &str) -> std::path::PathBuf {
    let candidates: Vec<std::path::PathBuf> = if program.contains('/') {
        vec![program.into()]
    } else {
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .chain(SYSTEM_DIRS.map(Into::into))
            .map(|d| d.join(program))
            .collect()
    };
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{program} not found: install Debian's {package} package"))
}
