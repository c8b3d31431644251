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
        let config = format!(
            "version: 0.1\n\
             log:\n  level: info\n  formatter: text\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  \
             maintenance:\n    uploadpurging:\n      enabled: false\n\
             http:\n  addr: 127.0.0.1:0\n  secret: shoal-bench-not-a-secret\n",
            storage.display()
        );
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).map_err(spawn_err)?;
        let mut cmd = Command::new(REGISTRY_BIN);
        cmd.arg("serve").arg(&config_path);
        // The registry reads REGISTRY_* variables as config overrides.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("REGISTRY_") {
                cmd.env_remove(key);
            }
        }
        let log = dir.path().join("registry.log");
        let mut child = ChildProcess::spawn("docker-registry", cmd, &log).map_err(spawn_err)?;
        let found = poll(
            "docker-registry to log its address",
            STARTUP_TIMEOUT,
            || {
                let text = crate::child::tail(&log, 64 * 1024);
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
        .await;
        let addr = found.map_err(|message| DaemonError::NotReady {
            message,
            log_tail: child.log_tail(4096),
        })?;
        let registry = DockerRegistry {
            child,
            addr,
            _dir: dir,
        };
        let client = crate::http::client(Duration::from_secs(5));
        let url = format!("{}/v2/", registry.url());
        poll(
            "docker-registry to answer GET /v2/",
            STARTUP_TIMEOUT,
            || {
                let req = client.get(&url).send();
                async move {
                    Ok(req
                        .await
                        .ok()
                        .filter(|r| r.status().is_success())
                        .map(|_| ()))
                }
            },
        )
        .await
        .map_err(|message| DaemonError::NotReady {
            message,
            log_tail: registry.child.log_tail(4096),
        })?;
        Ok(registry)
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

/// The address in a `listening on 127.0.0.1:PORT` log line.
fn parse_listening(log: &str) -> Option<SocketAddr> {
    log.lines().find_map(|line| {
        let rest = &line[line.find("listening on ")? + "listening on ".len()..];
        let token = rest.split(|c: char| c == '"' || c.is_whitespace()).next()?;
        token.parse().ok()
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
        assert_eq!(super::parse_listening("nothing"), None);
    }
}
