//! A local `opentracker` for one torrent.
//!
//! Debian's build only serves whitelisted info-hashes and chroots into its
//! root directory when started as root (then drops to `nobody`), so the
//! tracker gets a directory of its own, readable by everyone, holding its
//! config and `whitelist.txt`; the whitelist path in the config is relative,
//! which resolves inside the chroot as well as without it. opentracker
//! cannot bind port 0 and report the port, so a free port is picked first.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::{Tools, TorrentError};
use crate::child::ChildProcess;
use crate::wait::{STARTUP_TIMEOUT, poll};

/// Bytes of its log quoted in errors.
const LOG_TAIL: u64 = 2048;

/// A running opentracker; killed when dropped.
#[derive(Debug)]
pub struct OpenTracker {
    child: ChildProcess,
    addr: SocketAddr,
}

impl OpenTracker {
    /// Starts opentracker in `dir` (created) on `addr`, a free port of
    /// 127.0.0.1 picked with [`crate::cluster::free_port`] beforehand (the torrent's
    /// announce URL names it), serving only `info_hash` (40 hex digits);
    /// waits until it answers a scrape.
    pub async fn start(
        tools: &Tools,
        dir: &Path,
        info_hash: &str,
        addr: SocketAddr,
    ) -> Result<OpenTracker, TorrentError> {
        let root = dir.join("root");
        std::fs::create_dir_all(&root).map_err(TorrentError::io(root.display()))?;
        let readable = |path: &Path, mode: u32| {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
                .map_err(TorrentError::io(format!("chmod {}", path.display())))
        };
        readable(dir, 0o755)?;
        readable(&root, 0o755)?;
        let whitelist = root.join("whitelist.txt");
        std::fs::write(&whitelist, format!("{info_hash}\n"))
            .map_err(TorrentError::io(whitelist.display()))?;
        readable(&whitelist, 0o644)?;
        let config = dir.join("opentracker.conf");
        std::fs::write(
            &config,
            format!(
                "access.whitelist whitelist.txt\ntracker.rootdir {}\ntracker.user nobody\n",
                root.display()
            ),
        )
        .map_err(TorrentError::io(config.display()))?;

        let port = addr.port().to_string();
        let mut cmd = Command::new(&tools.opentracker);
        cmd.arg("-f")
            .arg(&config)
            .args(["-i", "127.0.0.1", "-p", &port, "-P", &port]);
        let child = ChildProcess::spawn("opentracker", cmd, &dir.join("opentracker.log"))
            .map_err(TorrentError::io("start opentracker"))?;
        let mut tracker = OpenTracker { child, addr };
        let client = crate::http::client(Duration::from_secs(5));
        let url = tracker.scrape_url(info_hash);
        let answered = poll("opentracker to answer a scrape", STARTUP_TIMEOUT, || {
            let exited = tracker.child.try_exited();
            let req = client.get(&url).send();
            async move {
                if let Some(status) = exited {
                    return Err(format!("opentracker exited: {status}"));
                }
                Ok(match req.await {
                    Ok(r) if r.status().is_success() => Some(()),
                    _ => None,
                })
            }
        })
        .await;
        answered.map_err(|message| TorrentError::NotReady {
            message,
            log_tail: Some(tracker.child.log_tail(LOG_TAIL)),
        })?;
        Ok(tracker)
    }

    /// The announce URL to put in the torrent.
    pub fn announce_url(addr: SocketAddr) -> String {
        format!("http://{addr}/announce")
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The process.
    pub fn process(&self) -> &ChildProcess {
        &self.child
    }

    fn scrape_url(&self, info_hash: &str) -> String {
        let mut url = format!("http://{}/scrape?info_hash=", self.addr);
        for pair in info_hash.as_bytes().chunks(2) {
            url.push('%');
            url.push_str(std::str::from_utf8(pair).unwrap_or("00"));
        }
        url
    }

    /// Waits until the scrape of `info_hash` counts at least `seeds`
    /// complete peers (BASELINES.md: leechers start once the seed is known).
    pub async fn wait_for_seeds(&self, info_hash: &str, seeds: u64) -> Result<(), TorrentError> {
        let client = crate::http::client(Duration::from_secs(5));
        let url = self.scrape_url(info_hash);
        let seeded = poll(
            "the seed to show in the tracker's scrape",
            STARTUP_TIMEOUT,
            || {
                let req = client.get(&url).send();
                async move {
                    let Ok(resp) = req.await else {
                        return Ok(None);
                    };
                    let body = resp.bytes().await.unwrap_or_default();
                    Ok(scrape_complete(&body).filter(|n| *n >= seeds).map(drop))
                }
            },
        )
        .await;
        seeded.map_err(|message| TorrentError::NotReady {
            message,
            log_tail: Some(self.child.log_tail(LOG_TAIL)),
        })
    }
}

/// The `complete` count of a bencoded scrape answer for one info-hash
/// (`d5:filesd20:<hash>d8:completei1e10:downloadedi0e10:incompletei0eeee`);
/// `None` while the tracker does not know the torrent (`d5:filesdee`).
fn scrape_complete(body: &[u8]) -> Option<u64> {
    const KEY: &[u8] = b"8:completei";
    let at = body.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let digits = &body[at..];
    let end = digits.iter().position(|&b| b == b'e')?;
    std::str::from_utf8(&digits[..end]).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_complete_count() {
        let body = b"d5:filesd20:\x8c\x0b,\x1baF<7\xfb \xb2\x13\x95\xa5\xaa\xf4\xcbv\xaf\x10\
                     d8:completei1e10:downloadedi0e10:incompletei7eeee";
        assert_eq!(scrape_complete(body), Some(1));
        assert_eq!(scrape_complete(b"d5:filesdee"), None);
        let no_seed = b"d5:filesd20:aaaaaaaaaaaaaaaaaaaad10:incompletei3e8:completei0eeee";
        assert_eq!(scrape_complete(no_seed), Some(0));
    }
}
