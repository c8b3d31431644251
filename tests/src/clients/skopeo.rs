//! skopeo pulling `docker://docker.io/...` through a `registries.conf`
//! mirror (containers/image, as CRI-O and podman do).
//!
//! The mirror's location `127.0.0.1:PORT/docker.io` makes containers/image
//! send `GET /v2/docker.io/library/NAME/...` to the mirror. `insecure = true`
//! in the mirror entry is what allows plain HTTP; no `--src-tls-verify=false`
//! is needed. All state (policy, lookaside config, temporary files, auth
//! lookups) is kept in a temporary directory.

use std::path::PathBuf;

use tempfile::TempDir;

use super::{Output, loopback_only, require_tool, run};
use crate::image::sha256_digest;
use crate::wait::COMMAND_TIMEOUT;

/// Which platform(s) to copy.
#[derive(Clone, Copy, Debug)]
pub enum Platforms<'a> {
    /// One architecture (with `--override-os linux --override-arch`).
    Arch(&'a str),
    /// Everything in the index (`--all`): the index is copied unchanged.
    All,
}

/// skopeo configured with one mirror.
pub struct Skopeo {
    bin: PathBuf,
    dir: TempDir,
    registries_conf: PathBuf,
    policy: PathBuf,
    copies: std::cell::Cell<u32>,
}

/// A finished `skopeo copy` into a `dir:` directory.
pub struct Copied {
    /// The `dir:` destination.
    pub dir: PathBuf,
    /// sha256 of the copied top-level `manifest.json`.
    pub manifest_digest: String,
    /// The command's output.
    pub output: Output,
}

impl Skopeo {
    /// skopeo whose `registries.conf` mirrors docker.io to `mirror`
    /// (`127.0.0.1:PORT`).
    pub fn with_mirror(mirror: &str) -> Skopeo {
        let bin = require_tool("skopeo", "skopeo");
        let dir = crate::tmp::dir("shoal-skopeo-");
        let registries_conf = dir.path().join("registries.conf");
        std::fs::write(&registries_conf, super::registries_conf(mirror))
            .expect("write registries.conf");
        let policy = dir.path().join("policy.json");
        std::fs::write(
            &policy,
            r#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
        )
        .expect("write policy.json");
        for sub in ["registries.d", "tmp", "run", "home"] {
            std::fs::create_dir(dir.path().join(sub)).expect("create skopeo dir");
        }
        Skopeo {
            bin,
            dir,
            registries_conf,
            policy,
            copies: std::cell::Cell::new(0),
        }
    }

    /// The registries.conf in use.
    pub fn registries_conf(&self) -> String {
        std::fs::read_to_string(&self.registries_conf).unwrap_or_default()
    }

    /// `skopeo copy docker://<image_ref> dir:<fresh dir>`. Returns the copy,
    /// or the failed command's output.
    pub async fn copy(&self, image_ref: &str, platforms: Platforms<'_>) -> Result<Copied, Output> {
        let n = self.copies.get() + 1;
        self.copies.set(n);
        let dest = self.dir.path().join(format!("copy-{n}"));
        let d = self.dir.path();
        let mut cmd = tokio::process::Command::new(&self.bin);
        cmd.arg("--registries-conf")
            .arg(&self.registries_conf)
            .arg("--policy")
            .arg(&self.policy)
            .arg("--registries.d")
            .arg(d.join("registries.d"))
            .arg("--tmpdir")
            .arg(d.join("tmp"));
        if let Platforms::Arch(arch) = platforms {
            cmd.args(["--override-os", "linux", "--override-arch", arch]);
        }
        cmd.args(["copy", "--retry-times", "0", "--src-no-creds"]);
        if let Platforms::All = platforms {
            cmd.arg("--all");
        }
        cmd.arg(format!("docker://{image_ref}"))
            .arg(format!("dir:{}", dest.display()))
            .env("HOME", d.join("home"))
            .env("XDG_RUNTIME_DIR", d.join("run"))
            .env("TMPDIR", d.join("tmp"))
            .env_remove("REGISTRY_AUTH_FILE")
            .env_remove("CONTAINERS_REGISTRIES_CONF")
            .env_remove("CONTAINERS_CONF");
        loopback_only(&mut cmd);
        let output = run(cmd, COMMAND_TIMEOUT).await;
        if !output.success() {
            return Err(output);
        }
        let manifest = std::fs::read(dest.join("manifest.json"))
            .expect("manifest.json in skopeo's dir: output");
        Ok(Copied {
            manifest_digest: sha256_digest(&manifest),
            dir: dest,
            output,
        })
    }
}
