//! Child processes that cannot outlive the bench.
//!
//! Each child runs in a process group of its own with its output in a log
//! file. Dropping a [`ChildProcess`] kills its group and reaps it. Every
//! live group is also listed in a process-wide registry, so that the Ctrl-C
//! handler can kill them all with [`kill_all`] before the bench exits (the
//! terminal's SIGINT does not reach children in other process groups).
//! Where util-linux's `setpriv` exists, children are started through
//! `setpriv --pdeathsig KILL`, so that even a SIGKILL'd bench takes them
//! along; that signal fires when the *thread* that spawned the child ends,
//! so spawn from a long-lived thread (a runtime worker, not
//! `spawn_blocking`).

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use rustix::process::{Pid, Signal, kill_process_group};

/// Process groups of live children.
static LIVE: Mutex<BTreeSet<u32>> = Mutex::new(BTreeSet::new());

/// Where util-linux installs `setpriv`.
const SETPRIV: &str = "/usr/bin/setpriv";

/// Kills the process group of every live child; returns how many there were.
pub fn kill_all() -> usize {
    let live = std::mem::take(&mut *LIVE.lock().unwrap_or_else(|p| p.into_inner()));
    for &pgid in &live {
        kill_group(pgid);
    }
    live.len()
}

fn kill_group(pgid: u32) {
    if let Some(pid) = Pid::from_raw(pgid as i32) {
        // ESRCH (already gone) is fine.
        let _ = kill_process_group(pid, Signal::KILL);
    }
}

/// A running child, killed with its process group on drop.
#[derive(Debug)]
pub struct ChildProcess {
    name: String,
    child: Child,
    log: PathBuf,
    reaped: bool,
}

impl ChildProcess {
    /// Starts `cmd` with stdout and stderr both going to `log`.
    pub fn spawn(name: &str, cmd: Command, log: &Path) -> std::io::Result<ChildProcess> {
        let out = File::create(log)?;
        let err = out.try_clone()?;
        let mut cmd = with_parent_death_signal(cmd);
        cmd.stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        let child = cmd.spawn()?;
        LIVE.lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(child.id());
        Ok(ChildProcess {
            name: name.to_string(),
            child,
            log: log.to_path_buf(),
            reaped: false,
        })
    }

    /// The name given at spawn time.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The process id (also its process group id).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The log file.
    pub fn log_path(&self) -> &Path {
        &self.log
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

    /// The last `max` bytes of the log, labelled, for error messages.
    pub fn log_tail(&self, max: u64) -> String {
        format!(
            "----- {} log tail ({}) -----\n{}\n----- end of {} -----",
            self.name,
            self.log.display(),
            tail(&self.log, max),
            self.name
        )
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        let pgid = self.child.id();
        // Kill the group even if the leader was reaped: it may have left children.
        kill_group(pgid);
        if !self.reaped {
            let _ = self.child.wait();
        }
        LIVE.lock().unwrap_or_else(|p| p.into_inner()).remove(&pgid);
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
