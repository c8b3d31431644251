//! Child processes that cannot outlive the bench (or a test).
//!
//! Each child runs in a process group of its own with its output in log
//! files. Dropping a [`ChildProcess`] kills its group and reaps it. Every
//! live group is also listed in a process-wide registry, so that the Ctrl-C
//! handler can kill them all with [`kill_all`] before the bench exits (the
//! terminal's SIGINT does not reach children in other process groups).
//! Where util-linux's `setpriv` exists, children are started through
//! `setpriv --pdeathsig KILL`, so that even a SIGKILL'd bench takes them
//! along; that signal fires when the *thread* that spawned the child ends,
//! so spawn from a long-lived thread (a runtime worker, not
//! `spawn_blocking`).
//!
//! The integration tests' process guard (`shoal_tests::child`) is a
//! [`ChildProcess`] that also prints the log tail when a test fails.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process_group};

/// Process groups of live children.
static LIVE: Mutex<BTreeSet<u32>> = Mutex::new(BTreeSet::new());

/// Where util-linux installs `setpriv`.
const SETPRIV: &str = "/usr/bin/setpriv";

/// How much more of a log [`ChildProcess::log_tail`] reads when it leaves
/// lines out, so that what is left still fills the tail.
const FILTERED_READ: u64 = 8;

/// Kills the process group of every live child; returns how many there were.
pub fn kill_all() -> usize {
    let live = std::mem::take(&mut *live());
    for &pgid in &live {
        signal_group(pgid, Signal::KILL);
    }
    live.len()
}

fn live() -> std::sync::MutexGuard<'static, BTreeSet<u32>> {
    LIVE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Sends `signal` to process group `pgid`.
fn signal_group(pgid: u32, signal: Signal) {
    if let Some(pid) = Pid::from_raw(pgid as i32) {
        // ESRCH (already gone) is fine.
        let _ = kill_process_group(pid, signal);
    }
}

/// A running child, killed with its process group on drop.
#[derive(Debug)]
pub struct ChildProcess {
    name: String,
    child: Child,
    /// Stderr (or the merged log) first.
    logs: Vec<PathBuf>,
    reaped: bool,
    noise: Option<fn(&str) -> bool>,
}

impl ChildProcess {
    /// Starts `cmd` with stdout and stderr both going to `log`.
    pub fn spawn(name: &str, cmd: Command, log: &Path) -> std::io::Result<ChildProcess> {
        let out = File::create(log)?;
        let err = out.try_clone()?;
        Self::spawn_with(name, cmd, out, err, vec![log.to_path_buf()])
    }

    /// Starts `cmd` with stdout to `stdout_log` and stderr to `stderr_log`.
    pub fn spawn_split(
        name: &str,
        cmd: Command,
        stdout_log: &Path,
        stderr_log: &Path,
    ) -> std::io::Result<ChildProcess> {
        let (out, err) = (File::create(stdout_log)?, File::create(stderr_log)?);
        let logs = vec![stderr_log.to_path_buf(), stdout_log.to_path_buf()];
        Self::spawn_with(name, cmd, out, err, logs)
    }

    fn spawn_with(
        name: &str,
        cmd: Command,
        out: File,
        err: File,
        logs: Vec<PathBuf>,
    ) -> std::io::Result<ChildProcess> {
        let mut cmd = with_parent_death_signal(cmd);
        cmd.stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            // Own process group, so that Drop can kill whatever the child forks.
            .process_group(0);
        let child = cmd.spawn()?;
        live().insert(child.id());
        Ok(ChildProcess {
            name: name.to_string(),
            child,
            logs,
            reaped: false,
            noise: None,
        })
    }

    /// Leaves lines for which `noise` is true out of [`Self::log_tail`].
    pub fn hide_in_tail(&mut self, noise: fn(&str) -> bool) {
        self.noise = Some(noise);
    }

    /// The name given at spawn time.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The process id (also its process group id).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The primary log file: stderr, or the merged log.
    pub fn log_path(&self) -> &Path {
        &self.logs[0]
    }

    /// The log files (stderr first).
    pub fn logs(&self) -> &[PathBuf] {
        &self.logs
    }

    /// The whole primary log as text; empty if unreadable.
    pub fn log(&self) -> String {
        std::fs::read(self.log_path())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The exit status if the child has exited, without blocking.
    pub fn try_exited(&mut self) -> Option<ExitStatus> {
        let status = self.child.try_wait().ok().flatten();
        self.reaped |= status.is_some();
        status
    }

    /// CPU time (user + system) used so far; `None` once it has exited.
    pub fn cpu_time(&self) -> Option<Duration> {
        if self.reaped {
            return None;
        }
        crate::procstat::process_cpu(self.pid())
    }

    /// The last `max` bytes of each log, labelled, for error messages
    /// (without the lines [`Self::hide_in_tail`] named).
    pub fn log_tail(&self, max: u64) -> String {
        let mut out = String::new();
        for log in &self.logs {
            out.push_str(&format!(
                "----- {} log tail: {} -----\n",
                self.name,
                log.display()
            ));
            match self.noise {
                None => out.push_str(&tail(log, max)),
                Some(noise) => {
                    let text = tail(log, FILTERED_READ * max);
                    let kept: Vec<&str> = text.lines().filter(|l| !noise(l)).collect();
                    out.push_str(tail_str(&kept.join("\n"), max as usize));
                }
            }
            out.push_str(&format!("\n----- end of {} -----\n", self.name));
        }
        out
    }

    /// Sends SIGTERM to the process group, waits up to `grace` for the child
    /// to exit, then kills the group. Returns the exit status.
    pub fn terminate(&mut self, grace: Duration) -> Option<ExitStatus> {
        if self.reaped {
            return self.child.try_wait().ok().flatten();
        }
        signal_group(self.pid(), Signal::TERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Some(status) = self.try_exited() {
                // Stragglers in the group (if any) go too.
                signal_group(self.pid(), Signal::KILL);
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill()
    }

    /// Kills the process group and reaps the child.
    pub fn kill(&mut self) -> Option<ExitStatus> {
        signal_group(self.pid(), Signal::KILL);
        let status = self.child.wait().ok();
        self.reaped = true;
        status
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        let pgid = self.child.id();
        // Kill the group even if the leader was reaped: it may have left children.
        signal_group(pgid, Signal::KILL);
        if !self.reaped {
            let _ = self.child.wait();
        }
        live().remove(&pgid);
    }
}

/// `setpriv --pdeathsig KILL -- <cmd>` with `cmd`'s environment and working
/// directory, or `cmd` unchanged where `setpriv` is missing.
fn with_parent_death_signal(cmd: Command) -> Command {
    if !Path::new(SETPRIV).is_file() {
        return cmd;
    }
    let mut wrapped = Command::new(SETPRIV);
    wrapped
        .args(["--pdeathsig", "KILL", "--"])
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (key, value) in cmd.get_envs() {
        match value {
            Some(value) => wrapped.env(key, value),
            None => wrapped.env_remove(key),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        wrapped.current_dir(dir);
    }
    wrapped
}

/// The last `max` bytes of a file, lossily decoded; empty if unreadable.
pub fn tail(path: &Path, max: u64) -> String {
    let Ok(mut f) = File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(max)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

/// The last `max` bytes of `text`, starting on a character boundary.
pub fn tail_str(text: &str, max: usize) -> &str {
    let start = text.len().saturating_sub(max);
    let start = (start..text.len())
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(text.len());
    &text[start..]
}
