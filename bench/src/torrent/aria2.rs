//! `aria2c` as a BitTorrent seed or leecher, set up as BASELINES.md says:
//! loopback only, DHT, PEX and local peer discovery off (the tracker is the
//! only source of peers), seeding kept on (`--seed-ratio=0.0`), caps on the
//! total upload and download, and `--on-bt-download-complete` running a
//! hook that timestamps completion: aria2 runs it once every piece has
//! passed its SHA-1 check.
//!
//! The seed also serves aria2's JSON-RPC on loopback (with a random
//! secret), from which [`upload_length`] reads how many bytes it uploaded.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use serde_json::{Value, json};

use super::Tools;
use crate::units::Rate;

/// The file the completion hook writes (its content: seconds since the
/// Unix epoch, with nanoseconds).
pub const DONE_FILE: &str = "done";

/// What one aria2c process does.
#[derive(Clone, Debug)]
pub struct Aria2Config {
    /// The `.torrent` file.
    pub torrent: PathBuf,
    /// `-d`: where the torrent's directory is (seed) or goes (leecher).
    pub dir: PathBuf,
    /// `--listen-port`: the BitTorrent port, on 127.0.0.1.
    pub listen: SocketAddr,
    /// `--bt-max-peers`.
    pub max_peers: usize,
    /// `--max-overall-upload-limit`.
    pub upload: Rate,
    /// `--max-overall-download-limit` (leechers).
    pub download: Option<Rate>,
    /// Seed: the content is in `dir` already (`--bt-seed-unverified`).
    pub seed: bool,
    /// `--on-bt-download-complete` (leechers): see [`write_hook`].
    pub hook: Option<PathBuf>,
    /// JSON-RPC on 127.0.0.1 at this port with this secret.
    pub rpc: Option<(u16, String)>,
}

/// The aria2c command line for `cfg`.
pub fn command(tools: &Tools, cfg: &Aria2Config) -> Command {
    let mut cmd = Command::new(&tools.aria2c);
    cmd.arg("-d")
        .arg(&cfg.dir)
        .arg(format!("--listen-port={}", cfg.listen.port()))
        .arg(format!("--interface={}", cfg.listen.ip()))
        .args([
            "--disable-ipv6=true",
            "--enable-dht=false",
            "--enable-dht6=false",
            "--enable-peer-exchange=false",
            "--bt-enable-lpd=false",
            "--seed-ratio=0.0",
            "--file-allocation=none",
            "--allow-overwrite=true",
            "--auto-file-renaming=false",
            "--summary-interval=0",
            "--console-log-level=warn",
            "--show-console-readout=false",
            "--enable-color=false",
        ])
        .arg(format!("--bt-max-peers={}", cfg.max_peers))
        .arg(format!(
            "--max-overall-upload-limit={}",
            cfg.upload.bytes_per_sec()
        ))
        // A second line of defence after the process-group kill.
        .arg(format!("--stop-with-process={}", std::process::id()));
    if let Some(down) = cfg.download {
        cmd.arg(format!(
            "--max-overall-download-limit={}",
            down.bytes_per_sec()
        ));
    }
    if cfg.seed {
        cmd.arg("--bt-seed-unverified=true");
    }
    if let Some(hook) = &cfg.hook {
        cmd.arg(format!("--on-bt-download-complete={}", hook.display()));
    }
    if let Some((port, secret)) = &cfg.rpc {
        cmd.args(["--enable-rpc=true", "--rpc-listen-all=false"])
            .arg(format!("--rpc-listen-port={port}"))
            .arg(format!("--rpc-secret={secret}"));
    }
    cmd.arg(&cfg.torrent);
    cmd
}

/// Writes `dir/on-complete.sh`, which records the time it runs in
/// `dir/`[`DONE_FILE`] (atomically, through a rename). Returns its path.
pub fn write_hook(dir: &Path) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    let d = dir.display();
    let script = format!(
        "#!/bin/sh\n\
         # aria2c --on-bt-download-complete: every piece is in and verified.\n\
         date +%s.%N > '{d}/{DONE_FILE}.tmp' && mv '{d}/{DONE_FILE}.tmp' '{d}/{DONE_FILE}'\n"
    );
    let path = dir.join("on-complete.sh");
    std::fs::write(&path, script)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    Ok(path)
}

/// When the hook in `dir` ran, if it has.
pub fn completed_at(dir: &Path) -> Option<SystemTime> {
    let text = std::fs::read_to_string(dir.join(DONE_FILE)).ok()?;
    let secs: f64 = text.trim().parse().ok()?;
    SystemTime::UNIX_EPOCH.checked_add(std::time::Duration::try_from_secs_f64(secs).ok()?)
}

/// A fresh random RPC secret (16 bytes from the kernel, hex).
pub fn rpc_secret() -> std::io::Result<String> {
    use std::io::Read as _;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(hex::encode(bytes))
}

/// Bytes uploaded so far by every active download of the aria2c whose
/// JSON-RPC listens on `port` with `secret` (`aria2.tellActive`,
/// `uploadLength`).
pub async fn upload_length(
    client: &reqwest::Client,
    port: u16,
    secret: &str,
) -> Result<u64, String> {
    let url = format!("http://127.0.0.1:{port}/jsonrpc");
    let body = json!({
        "jsonrpc": "2.0",
        "id": "shoal-bench",
        "method": "aria2.tellActive",
        "params": [format!("token:{secret}"), ["uploadLength"]],
    });
    let resp = client
        .post(&url)
        .json(&body)
        .send()
        .await
        .map_err(|e| format!("POST {url}: {}", crate::http::error_chain(&e)))?;
    let value: Value = resp.json().await.map_err(|e| format!("POST {url}: {e}"))?;
    sum_upload_lengths(&value).ok_or_else(|| format!("POST {url}: unexpected answer {value}"))
}

/// The sum of `result[*].uploadLength` (decimal strings) of a
/// `tellActive` answer.
fn sum_upload_lengths(answer: &Value) -> Option<u64> {
    answer["result"]
        .as_array()?
        .iter()
        .map(|d| d["uploadLength"].as_str()?.parse::<u64>().ok())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_upload_lengths() {
        let answer = json!({"id": "1", "jsonrpc": "2.0",
            "result": [{"uploadLength": "3001000"}, {"uploadLength": "5"}]});
        assert_eq!(sum_upload_lengths(&answer), Some(3_001_005));
        assert_eq!(sum_upload_lengths(&json!({"error": {"code": 1}})), None);
    }

    #[test]
    fn hook_records_the_time() {
        let dir = tempfile::tempdir().unwrap();
        let hook = write_hook(dir.path()).unwrap();
        assert_eq!(completed_at(dir.path()), None);
        let before = SystemTime::now() - std::time::Duration::from_secs(1);
        let status = Command::new(&hook).arg("gid").status().unwrap();
        assert!(status.success());
        let at = completed_at(dir.path()).expect("hook wrote the time");
        assert!(at >= before, "{at:?} < {before:?}");
    }

    #[test]
    fn leecher_command_has_the_caps_and_no_discovery() {
        let tools = Tools {
            aria2c: "aria2c".into(),
            opentracker: "opentracker".into(),
            mktorrent: "mktorrent".into(),
        };
        let cmd = command(
            &tools,
            &Aria2Config {
                torrent: "t.torrent".into(),
                dir: "d".into(),
                listen: "127.0.0.1:4000".parse().unwrap(),
                max_peers: 20,
                upload: Rate::mib_per_sec(4),
                download: Some(Rate::mib_per_sec(2)),
                seed: false,
                hook: Some("h.sh".into()),
                rpc: None,
            },
        );
        let args: Vec<String> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        for want in [
            "--listen-port=4000",
            "--enable-dht=false",
            "--enable-peer-exchange=false",
            "--bt-enable-lpd=false",
            "--seed-ratio=0.0",
            "--bt-max-peers=20",
            "--max-overall-upload-limit=4194304",
            "--max-overall-download-limit=2097152",
            "--on-bt-download-complete=h.sh",
        ] {
            assert!(args.iter().any(|a| a == want), "{want} missing in {args:?}");
        }
        assert_eq!(args.last().map(String::as_str), Some("t.torrent"));
        assert!(!args.iter().any(|a| a.starts_with("--bt-seed-unverified")));
    }
}
