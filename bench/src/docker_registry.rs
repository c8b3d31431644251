//! Debian's `docker-registry` (CNCF distribution) on loopback with
//! filesystem storage in a temporary directory: the real upstream of the
//! `mirror` benchmark.
//!
//! It is told to listen on `127.0.0.1:0` and logs
//! `msg="listening on 127.0.0.1:PORT"` once bound; that line gives the port.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use crate::child::ChildProcess;
use crate::daemon::DaemonError;
use crate::wait::{STARTUP_TIMEOUT, poll};

/// Where Debian installs the registry.
pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

/// Whether the registry is installed.
pub fn installed() -> bool {
    Path::new(REGISTRY_BIN).is_file()
}

/// A running registry; killed on drop, its storage deleted.
#[derive(Debug)]
pub struct DockerRegistry {
    child: ChildProcess,
    addr: SocketAddr,
    _dir: TempDir,
}

impl DockerRegistry {
    /// Starts the registry and waits until `GET /v2/` answers.
    pub async fn start() -> Result<DockerRegistry, DaemonError> {
        let spawn_err = |source| DaemonError::Spawn {
            name: "docker-registry".into(),
            source,
        };
        let dir = tempfile::Builder::new()
            .prefix("shoal-bench-registry-")
            .tempdir()
            .map_err(spawn_err)?;
        let storage = dir.path().join("storage");
        std::fs::create_dir(&storage).map_err(spawn_err)?;
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config(&storage, false, "")).map_err(spawn_err)?;
        let log = dir.path().join("registry.log");
        let mut child = ChildProcess::spawn("docker-registry", command(&config_path), &log)
            .map_err(spawn_err)?;
        let not_ready = |message, child: &ChildProcess| DaemonError::NotReady {
            message,
            log_tail: child.log_tail(4096),
        };
        let addr = match wait_listening(&mut child).await {
            Ok(addr) => addr,
            Err(message) => return Err(not_ready(message, &child)),
        };
        let client = crate::http::client(Duration::from_secs(5));
        let url = format!("http://{addr}");
        if let Err(message) = wait_answering(&client, &url).await {
            return Err(not_ready(message, &child));
        }
        Ok(DockerRegistry {
            child,
            addr,
            _dir: dir,
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// CPU time used so far.
    pub fn cpu_time(&self) -> Duration {
        self.child.cpu_time().unwrap_or_default()
    }
}

/// The registry's configuration: filesystem storage under `storage`
/// (deletes allowed), `127.0.0.1:0`, text logs, and the access log on stdout
/// if `access_log`. `tail` is appended as it is: more of the `http:` section
/// (such as `  tls:`), then sections of its own (such as `auth:`).
pub fn config(storage: &Path, access_log: bool, tail: &str) -> String {
    format!(
        "version: 0.1\n\
         log:\n  level: info\n  formatter: text\n  accesslog:\n    disabled: {}\n\
         storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n  \
         maintenance:\n    uploadpurging:\n      enabled: false\n\
         http:\n  addr: 127.0.0.1:0\n  secret: shoal-not-a-secret\n{tail}",
        !access_log,
        storage.display()
    )
}

/// `docker-registry serve CONFIG`, without this process's `REGISTRY_*`
/// variables (the registry reads them as overrides of its config).
pub fn command(config: &Path) -> Command {
    let mut cmd = Command::new(REGISTRY_BIN);
    cmd.arg("serve").arg(config);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("REGISTRY_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// Waits until the registry `child` has logged the address it listens on
/// (in its primary log: stderr, or the merged log); fails at once if it
/// exits.
pub async fn wait_listening(child: &mut ChildProcess) -> Result<SocketAddr, String> {
    poll(
        "docker-registry to log its address",
        STARTUP_TIMEOUT,
        || {
            let text = child.log();
            let exited = child.try_exited();
            async move {
                if let Some(addr) = parse_listening(&text) {
                    return Ok(Some(addr));
                }
                match exited {
                    Some(status) => Err(format!("docker-registry exited early: {status}")),
                    None => Ok(None),
                }
            }
        },
    )
    .await
}

/// Waits until `GET {base_url}/v2/` answers: with success, or with 401
/// from a registry behind authentication.
pub async fn wait_answering(client: &reqwest::Client, base_url: &str) -> Result<(), String> {
    let url = format!("{base_url}/v2/");
    poll(
        "docker-registry to answer GET /v2/",
        STARTUP_TIMEOUT,
        || {
            let req = client.get(&url).send();
            async move {
                Ok(match req.await {
                    Ok(resp)
                        if resp.status().is_success()
                            || resp.status() == reqwest::StatusCode::UNAUTHORIZED =>
                    {
                        Some(())
                    }
                    _ => None,
                })
            }
        },
    )
    .await
}

/// The address in a `listening on 127.0.0.1:PORT` log line.
fn parse_listening(log: &str) -> Option<SocketAddr> {
    log.lines().find_map(|line| {
        let rest = &line[line.find("listening on ")? + "listening on ".len()..];
        // Over TLS the line goes on: `listening on 127.0.0.1:PORT, tls`.
        let end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ':'))
            .unwrap_or(rest.len());
        rest[..end].parse().ok()
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn finds_the_listening_line() {
        let log = "time=\"x\" level=info msg=\"redis not configured\"\n\
                   time=\"x\" level=info msg=\"listening on 127.0.0.1:43687\" go.version=go1.19\n";
        assert_eq!(
            super::parse_listening(log),
            Some("127.0.0.1:43687".parse().unwrap())
        );
        let tls = "time=\"x\" level=info msg=\"listening on 127.0.0.1:43688, tls\"\n";
        assert_eq!(
            super::parse_listening(tls),
            Some("127.0.0.1:43688".parse().unwrap())
        );
        assert_eq!(super::parse_listening("nothing"), None);
    }
}
