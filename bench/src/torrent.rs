//! BitTorrent tooling for the `bittorrent` baseline, from Debian's packages
//! (BASELINES.md, "BitTorrent"): `mktorrent` makes the torrent, a local
//! `opentracker` ([`opentracker`]) tracks the swarm, `aria2c` ([`aria2`])
//! seeds and leeches.
//!
//! [`Tools::find`] looks the three binaries up on `PATH` and names the
//! Debian packages of the missing ones; [`PieceSize`] is the
//! `--bt-piece-size` value (a power of two, as mktorrent takes it: `-l` is
//! its log2).

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

pub mod aria2;
pub mod opentracker;

/// How long a short helper command (mktorrent, `aria2c -S`) may take.
const TOOL_TIMEOUT: Duration = Duration::from_secs(120);

/// The binaries the baseline runs, with the Debian package of each.
pub const TOOLS: [(&str, &str); 3] = [
    ("aria2c", "aria2"),
    ("opentracker", "opentracker"),
    ("mktorrent", "mktorrent"),
];

/// Why the BitTorrent baseline could not run.
#[derive(Debug, thiserror::Error)]
pub enum TorrentError {
    /// Some of the tools are not installed.
    #[error(transparent)]
    Missing(#[from] MissingTools),
    /// A file or directory could not be written or read.
    #[error("{what}: {source}")]
    Io {
        /// What was being done, with the path.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A helper command failed or printed something unexpected.
    #[error("{what}: {detail}")]
    Tool {
        /// The command.
        what: String,
        /// Its exit status and output, or what was missing from it.
        detail: String,
    },
    /// A process did not become ready, or answered wrongly.
    #[error("{message}{}", log_tail.as_deref().map(|t| format!("\n{t}")).unwrap_or_default())]
    NotReady {
        /// What went wrong.
        message: String,
        /// The end of the process's log, if there is one.
        log_tail: Option<String>,
    },
}

impl TorrentError {
    /// An [`TorrentError::Io`] for `what`.
    pub fn io(what: impl fmt::Display) -> impl FnOnce(std::io::Error) -> TorrentError {
        let what = what.to_string();
        move |source| TorrentError::Io { what, source }
    }
}

/// Tools that are not on `PATH`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct MissingTools {
    /// `(binary, Debian package)` of each missing tool.
    pub missing: Vec<(&'static str, &'static str)>,
}

impl fmt::Display for MissingTools {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = self
            .missing
            .iter()
            .map(|(bin, pkg)| format!("{bin} (Debian package {pkg})"))
            .collect();
        let packages: Vec<&str> = TOOLS.iter().map(|(_, pkg)| *pkg).collect();
        write!(
            f,
            "the bittorrent baseline needs aria2c, opentracker and mktorrent; not found on PATH: \
             {}; install them with `apt-get install {}`",
            names.join(", "),
            packages.join(" ")
        )
    }
}

/// Paths of the three tools.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tools {
    /// `aria2c`.
    pub aria2c: PathBuf,
    /// `opentracker`.
    pub opentracker: PathBuf,
    /// `mktorrent`.
    pub mktorrent: PathBuf,
}

impl Tools {
    /// Finds the tools on `PATH`.
    pub fn find() -> Result<Tools, MissingTools> {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let found: Vec<Option<PathBuf>> =
            TOOLS.iter().map(|(bin, _)| on_path(&path, bin)).collect();
        let missing: Vec<_> = TOOLS
            .iter()
            .zip(&found)
            .filter(|(_, f)| f.is_none())
            .map(|(t, _)| *t)
            .collect();
        match &found[..] {
            [Some(aria2c), Some(opentracker), Some(mktorrent)] => Ok(Tools {
                aria2c: aria2c.clone(),
                opentracker: opentracker.clone(),
                mktorrent: mktorrent.clone(),
            }),
            _ => Err(MissingTools { missing }),
        }
    }

    /// Runs `mktorrent` over `content_dir` (a directory: a multi-file
    /// torrent named after it) with `announce` as the tracker, writing
    /// `out`.
    pub async fn make_torrent(
        &self,
        content_dir: &Path,
        announce: &str,
        piece_size: PieceSize,
        out: &Path,
    ) -> Result<(), TorrentError> {
        let mut cmd = tokio::process::Command::new(&self.mktorrent);
        cmd.arg("-l")
            .arg(piece_size.log2().to_string())
            .args(["-a", announce])
            .arg("-o")
            .arg(out)
            .arg(content_dir);
        run_tool("mktorrent", cmd).await.map(drop)
    }

    /// The info-hash of `torrent`, as aria2c prints it (`aria2c -S`):
    /// 40 lowercase hex digits.
    pub async fn info_hash(&self, torrent: &Path) -> Result<String, TorrentError> {
        let mut cmd = tokio::process::Command::new(&self.aria2c);
        cmd.arg("-S").arg(torrent);
        let out = run_tool("aria2c -S", cmd).await?;
        parse_info_hash(&out).ok_or_else(|| TorrentError::Tool {
            what: format!("aria2c -S {}", torrent.display()),
            detail: format!("no `Info Hash:` line in its output:\n{out}"),
        })
    }
}

/// The first executable file named `bin` in the `PATH`-style list `path`.
fn on_path(path: &std::ffi::OsStr, bin: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    std::env::split_paths(path)
        .map(|dir| dir.join(bin))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Runs a short helper command; its stdout, or an error with its output.
async fn run_tool(what: &str, mut cmd: tokio::process::Command) -> Result<String, TorrentError> {
    cmd.stdin(std::process::Stdio::null()).kill_on_drop(true);
    let err = |detail: String| TorrentError::Tool {
        what: what.to_string(),
        detail,
    };
    let out = tokio::time::timeout(TOOL_TIMEOUT, cmd.output())
        .await
        .map_err(|_| err(format!("did not finish within {TOOL_TIMEOUT:?}")))?
        .map_err(|e| err(e.to_string()))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(err(format!(
            "{}\n{stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(stdout)
}

/// The hash in aria2c's `Info Hash: <hex>` line.
fn parse_info_hash(text: &str) -> Option<String> {
    let hex = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Info Hash:"))?
        .trim()
        .to_ascii_lowercase();
    (hex.len() == 40 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then_some(hex)
}

/// The torrent piece size: a power of two from 32 KiB to 256 MiB
/// (mktorrent's range).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PieceSize(u64);

/// Why a piece size was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PieceSizeError {
    /// Not a number with a known unit.
    #[error("`{0}` is not a size: expected e.g. 256KiB, 1MiB or 4MiB")]
    Unparsable(String),
    /// Not a power of two in range.
    #[error("piece size `{0}` must be a power of two from 32KiB to 256MiB")]
    OutOfRange(String),
}

impl PieceSize {
    /// The default, 256 KiB: the best of 256 KiB, 1 MiB and 4 MiB on the
    /// 50-node scenarios (BASELINES.md).
    pub const DEFAULT: PieceSize = PieceSize(256 * 1024);
    const MIN_LOG2: u32 = 15;
    const MAX_LOG2: u32 = 28;

    /// Bytes per piece.
    pub fn bytes(self) -> u64 {
        self.0
    }

    /// log2 of the size: mktorrent's `-l`.
    pub fn log2(self) -> u32 {
        self.0.trailing_zeros()
    }
}

impl Default for PieceSize {
    fn default() -> Self {
        PieceSize::DEFAULT
    }
}

impl fmt::Display for PieceSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 >= 1 << 20 {
            write!(f, "{} MiB", self.0 >> 20)
        } else {
            write!(f, "{} KiB", self.0 >> 10)
        }
    }
}

impl FromStr for PieceSize {
    type Err = PieceSizeError;

    /// `256KiB`, `1MiB`, `4M`, `262144` (bare: bytes); KiB/MiB and K/M
    /// are binary, KB/MB decimal (and so never a power of two).
    fn from_str(text: &str) -> Result<PieceSize, PieceSizeError> {
        let trimmed = text.trim();
        let split = trimmed
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(trimmed.len());
        let (number, unit) = trimmed.split_at(split);
        let unparsable = || PieceSizeError::Unparsable(text.to_string());
        let number: u64 = number.parse().map_err(|_| unparsable())?;
        let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kib" => 1 << 10,
            "m" | "mib" => 1 << 20,
            "kb" => 1000,
            "mb" => 1_000_000,
            _ => return Err(unparsable()),
        };
        let bytes = number
            .checked_mul(factor)
            .ok_or_else(|| PieceSizeError::OutOfRange(text.to_string()))?;
        let in_range = bytes.is_power_of_two()
            && (Self::MIN_LOG2..=Self::MAX_LOG2).contains(&bytes.trailing_zeros());
        if !in_range {
            return Err(PieceSizeError::OutOfRange(text.to_string()));
        }
        Ok(PieceSize(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn piece_sizes_parse_like_the_cli_spells_them() {
        let p = |s: &str| s.parse::<PieceSize>();
        assert_eq!(p("256KiB").unwrap(), PieceSize::DEFAULT);
        assert_eq!(p("1MiB").unwrap().bytes(), 1 << 20);
        assert_eq!(p("4M").unwrap().log2(), 22);
        assert_eq!(p("262144").unwrap().log2(), 18);
        assert_eq!(PieceSize::DEFAULT.log2(), 18);
        assert_eq!(p("1MiB").unwrap().to_string(), "1 MiB");
        assert!(matches!(p("1MB"), Err(PieceSizeError::OutOfRange(_))));
        assert!(matches!(p("16KiB"), Err(PieceSizeError::OutOfRange(_))));
        assert!(matches!(p("512MiB"), Err(PieceSizeError::OutOfRange(_))));
        assert!(matches!(p("3MiB"), Err(PieceSizeError::OutOfRange(_))));
        assert!(matches!(p("big"), Err(PieceSizeError::Unparsable(_))));
        assert!(matches!(p("1GiB"), Err(PieceSizeError::Unparsable(_))));
    }

    #[test]
    fn info_hash_from_aria2c_listing() {
        let out = "Mode: multi\nAnnounce:\n http://127.0.0.1:1/announce\n\
                   Info Hash: 8C0B2C1B61463C37FB20B21395A5AAF4CB76AF10\nPiece Length: 256KiB\n";
        assert_eq!(
            parse_info_hash(out).as_deref(),
            Some("8c0b2c1b61463c37fb20b21395a5aaf4cb76af10")
        );
        assert_eq!(parse_info_hash("Info Hash: xyz"), None);
    }

    #[test]
    fn missing_tools_name_their_packages() {
        let m = MissingTools {
            missing: vec![("aria2c", "aria2")],
        };
        let text = m.to_string();
        assert!(text.contains("aria2c (Debian package aria2)"), "{text}");
        assert!(text.contains("apt-get install aria2 opentracker mktorrent"));
        assert_eq!(on_path(std::ffi::OsStr::new("/nonexistent"), "sh"), None);
        assert!(on_path(std::ffi::OsStr::new("/bin:/usr/bin"), "sh").is_some());
    }
}
