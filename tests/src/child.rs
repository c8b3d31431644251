//! A child process that cannot outlive its test.
//!
//! [`ChildGuard`] starts a command in its own process group with its output
//! going to a log file. Dropping the guard kills the whole group and reaps the
//! child, also while a failed test unwinds; in that case the tail of the log is
//! printed first, so the test output shows what the process said.
//!
//! If the test binary itself dies without unwinding (SIGKILL, Ctrl-C: the
//! children sit in process groups of their own, so the terminal's SIGINT
//! does not reach them), the kernel kills the children: they are started
//! through util-linux's `setpriv --pdeathsig KILL`. That signal fires when
//! the *thread* that started the child exits, so start children from the
//! test's own thread (the test future), not from `spawn_blocking`.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process_group};

/// How many bytes of a log [`ChildGuard`] prints when a test fails.
const TAIL_BYTES: u64 = 16 * 1024;

/// A running child process, killed with its process group on drop.
pub struct ChildGuard {
    name: String,
    child: Child,
    logs: Vec<PathBuf>,
    reaped: bool,
    noise: Option<fn(&str) -> bool>,
}

impl ChildGuard {
    /// Starts `cmd` with stdout and stderr both written to `log`.
    pub fn spawn(name: &str, cmd: Command, log: &Path) -> ChildGuard {
        let out = File::create(log).unwrap_or_else(|e| panic!("create {}: {e}", log.display()));
        let err = out.try_clone().expect("clone log file handle");
        Self::spawn_with(name, cmd, out, err, vec![log.to_path_buf()])
    }

    /// Starts `cmd` with stdout to `stdout_log` and stderr to `stderr_log`.
    pub fn spawn_split(
        name: &str,
        cmd: Command,
        stdout_log: &Path,
        stderr_log: &Path,
    ) -> ChildGuard {
        let create =
            |p: &Path| File::create(p).unwrap_or_else(|e| panic!("create {}: {e}", p.display()));
        let logs = vec![stderr_log.to_path_buf(), stdout_log.to_path_buf()];
        Self::spawn_with(name, cmd, create(stdout_log), create(stderr_log), logs)
    }

    fn spawn_with(
        name: &str,
        cmd: Command,
        out: File,
        err: File,
        logs: Vec<PathBuf>,
    ) -> ChildGuard {
        let mut cmd = with_parent_death_signal(cmd);
        cmd.stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            // Own process group, so that Drop can kill whatever the child forks.
            .process_group(0);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("{name}: cannot start {:?}: {e}", cmd.get_program()));
        ChildGuard {
            name: name.to_string(),
            child,
            logs,
            reaped: false,
            noise: None,
        }
    }

    /// Leaves lines for which `noise` is true out of [`Self::log_tail`].
    pub fn hide_in_tail(&mut self, noise: fn(&str) -> bool) {
        self.noise = Some(noise);
    }

    /// The name given at spawn time.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The child's process id (also its process group id).
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The exit status if the child has exited, without blocking.
    pub fn try_exited(&mut self) -> Option<ExitStatus> {
        let status = self.child.try_wait().expect("try_wait");
        if status.is_some() {
            self.reaped = true;
        }
        status
    }

    /// The log files of this child (stderr first).
    pub fn logs(&self) -> &[PathBuf] {
        &self.logs
    }

    /// The whole primary log (stderr, or the merged log) as text.
    pub fn log(&self) -> String {
        std::fs::read(&self.logs[0])
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The last bytes of each log, labelled, for failure messages.
    pub fn log_tail(&self) -> String {
        let mut out = String::new();
        for log in &self.logs {
            out.push_str(&format!(
                "----- {} log tail: {} -----\n",
                self.name,
                log.display()
            ));
            let text = tail(log, 8 * TAIL_BYTES);
            let kept: Vec<&str> = text
                .lines()
                .filter(|l| !self.noise.is_some_and(|noise| noise(l)))
                .collect();
            out.push_str(tail_str(&kept.join("\n"), TAIL_BYTES as usize));
            out.push('\n');
            out.push_str(&format!("----- end of {} -----\n", self.name));
        }
        out
    }

    /// Sends SIGTERM to the process group, waits up to `grace` for the child to
    /// exit, then kills the group. Returns the exit status.
    pub fn terminate(&mut self, grace: Duration) -> Option<ExitStatus> {
        if self.reaped {
            return self.child.try_wait().ok().flatten();
        }
        self.signal_group(Signal::TERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.reaped = true;
                // Stragglers in the group (if any) go too.
                self.signal_group(Signal::KILL);
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill()
    }

    /// Kills the process group and reaps the child.
    pub fn kill(&mut self) -> Option<ExitStatus> {
        self.signal_group(Signal::KILL);
        let status = self.child.wait().ok();
        self.reaped = true;
        status
    }

    fn signal_group(&self, signal: Signal) {
        if let Some(pid) = Pid::from_raw(self.child.id() as i32) {
            // ESRCH (group already gone) is fine.
            let _ = kill_process_group(pid, signal);
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.log_tail());
        }
        // Kill the group even if the leader was reaped: it may have left children.
        self.signal_group(Signal::KILL);
        if !self.reaped {
            let _ = self.child.wait();
        }
    }
}

/// `setpriv --pdeathsig KILL -- <cmd>` with `cmd`'s environment and working
/// directory, or `cmd` unchanged where `setpriv` is missing.
fn with_parent_death_signal(cmd: Command) -> Command {
    const SETPRIV: &str = "/usr/bin/setpriv";
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
