//! A private containerd (root, state, sockets and config in a temporary
//! directory) and `ctr images pull --hosts-dir` through a mirror.
//!
//! The CRI plugin and the snapshotters that need special filesystems are
//! disabled; pulls unpack with the `native` snapshotter, which needs no
//! mounts. containerd verifies each layer's diff_id while unpacking, so a
//! successful pull also proves the layers are intact.

use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

use super::{Output, hosts_toml, loopback_only, require_tool, run};
use crate::child::ChildGuard;
use crate::wait::{COMMAND_TIMEOUT, STARTUP_TIMEOUT, poll};

/// The containerd namespace the tests use.
pub const NAMESPACE: &str = "shoal-test";

/// A running containerd, killed on drop.
pub struct Containerd {
    child: ChildGuard,
    ctr: PathBuf,
    socket: PathBuf,
    dir: TempDir,
}

impl Containerd {
    /// Starts containerd and waits until `ctr version` answers.
    pub async fn start() -> Containerd {
        let bin = require_tool("containerd", "containerd");
        let ctr = require_tool("ctr", "containerd");
        let dir = crate::tmp::dir("shoal-ctrd-");
        let d = dir.path();
        let socket = d.join("containerd.sock");
        let config = d.join("config.toml");
        std::fs::write(&config, config_toml(d, &socket)).expect("write containerd config");
        let mut cmd = Command::new(bin);
        cmd.env("PATH", super::daemon_path());
        cmd.arg("--config")
            .arg(&config)
            .arg("--root")
            .arg(d.join("root"))
            .arg("--state")
            .arg(d.join("state"))
            .arg("--address")
            .arg(&socket)
            .args(["--log-level", "info"]);
        let mut child = ChildGuard::spawn("containerd", cmd, &d.join("containerd.log"));
        let containerd = poll("containerd socket", STARTUP_TIMEOUT, || {
            let exited = child.try_exited();
            let exists = socket.exists();
            async move {
                match exited {
                    Some(status) => Err(format!("containerd exited: {status}")),
                    None => Ok(exists.then_some(())),
                }
            }
        })
        .await;
        if let Err(e) = containerd {
            panic!("{e}");
        }
        let containerd = Containerd {
            child,
            ctr,
            socket,
            dir,
        };
        let ready = poll("ctr version", STARTUP_TIMEOUT, || {
            let cmd = containerd.ctr(["version"]);
            async move { Ok(run(cmd, STARTUP_TIMEOUT).await.success().then_some(())) }
        })
        .await;
        if let Err(e) = ready {
            panic!("{e}");
        }
        containerd
    }

    /// A `ctr --address SOCK -n NAMESPACE <args>` command.
    pub fn ctr<I, S>(&self, args: I) -> tokio::process::Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut cmd = tokio::process::Command::new(&self.ctr);
        cmd.arg("--address")
            .arg(&self.socket)
            .args(["--namespace", NAMESPACE])
            .args(args);
        loopback_only(&mut cmd);
        cmd
    }

    /// Writes `DIR/docker.io/hosts.toml` pointing at `mirror` and returns DIR.
    pub fn hosts_dir(&self, mirror: &str) -> PathBuf {
        let hosts = self
            .dir
            .path()
            .join(format!("certs.d-{}", mirror.replace(':', "_")));
        std::fs::create_dir_all(hosts.join("docker.io")).expect("create hosts dir");
        std::fs::write(hosts.join("docker.io/hosts.toml"), hosts_toml(mirror))
            .expect("write hosts.toml");
        hosts
    }

    /// `ctr images pull --hosts-dir DIR --platform PLATFORM IMAGE` with the
    /// mirror at `mirror` (`127.0.0.1:PORT`).
    pub async fn pull(&self, mirror: &str, image_ref: &str, platform: &str) -> Output {
        let hosts = self.hosts_dir(mirror);
        let mut cmd = self.ctr(["images", "pull", "--hosts-dir"]);
        cmd.arg(&hosts)
            .args(["--platform", platform, "--snapshotter", "native", image_ref]);
        run(cmd, COMMAND_TIMEOUT).await
    }

    /// The target digest of `image_ref` from `ctr images ls`, if listed.
    pub async fn image_digest(&self, image_ref: &str) -> Option<String> {
        let out = run(self.ctr(["images", "ls"]), COMMAND_TIMEOUT).await;
        out.assert_success();
        parse_images_ls(&out.stdout, image_ref)
    }

    /// containerd's log tail.
    pub fn log_tail(&self) -> String {
        self.child.log_tail()
    }
}

/// Version 2 config: everything under `dir`, no CRI, no network services.
fn config_toml(dir: &Path, socket: &Path) -> String {
    format!(
        r#"version = 2
root = "{root}"
state = "{state}"
disabled_plugins = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
]

[grpc]
  address = "{socket}"

[ttrpc]
  address = "{socket}.ttrpc"

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{opt}"
"#,
        root = dir.join("root").display(),
        state = dir.join("state").display(),
        socket = socket.display(),
        opt = dir.join("opt").display(),
    )
}

/// Finds `image_ref`'s digest in `ctr images ls` output
/// (`REF TYPE DIGEST SIZE PLATFORMS LABELS`).
fn parse_images_ls(stdout: &str, image_ref: &str) -> Option<String> {
    stdout.lines().skip(1).find_map(|line| {
        let mut cols = line.split_whitespace();
        if cols.next()? != image_ref {
            return None;
        }
        cols.find(|c| c.starts_with("sha256:")).map(str::to_string)
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_ctr_images_ls() {
        let out = "REF TYPE DIGEST SIZE PLATFORMS LABELS\n\
                   docker.io/library/x:1 application/vnd.oci.image.index.v1+json sha256:abc 5.5 MiB linux/amd64,linux/arm64 -\n";
        assert_eq!(
            super::parse_images_ls(out, "docker.io/library/x:1").as_deref(),
            Some("sha256:abc")
        );
        assert_eq!(super::parse_images_ls(out, "docker.io/library/y:1"), None);
    }
}
