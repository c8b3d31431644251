//! A child process that cannot outlive its test.
//!
//! [`ChildGuard`] is the bench's [`ChildProcess`] (a command in its own
//! process group with its output going to log files, the whole group killed
//! and the child reaped on drop) that also prints the tail of its logs when
//! a failed test unwinds, so the test output shows what the process said.
//! It dereferences to the [`ChildProcess`] for everything else
//! ([`ChildProcess::try_exited`], [`ChildProcess::terminate`], …).
//!
//! If the test binary itself dies without unwinding (SIGKILL, Ctrl-C: the
//! children sit in process groups of their own, so the terminal's SIGINT
//! does not reach them), the kernel kills the children: they are started
//! through util-linux's `setpriv --pdeathsig KILL`. That signal fires when
//! the *thread* that started the child exits, so start children from the
//! test's own thread (the test future), not from `spawn_blocking`.

use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::process::Command;

pub use shoal_bench::child::{ChildProcess, tail, tail_str};

/// How many bytes of a log [`ChildGuard`] prints when a test fails.
const TAIL_BYTES: u64 = 16 * 1024;

/// A running child process, killed with its process group on drop.
pub struct ChildGuard(ChildProcess);

impl ChildGuard {
    /// Starts `cmd` with stdout and stderr both written to `log`.
    pub fn spawn(name: &str, cmd: Command, log: &Path) -> ChildGuard {
        let program = cmd.get_program().to_owned();
        let child = ChildProcess::spawn(name, cmd, log);
        ChildGuard(child.unwrap_or_else(|e| panic!("{name}: cannot start {program:?}: {e}")))
    }

    /// Starts `cmd` with stdout to `stdout_log` and stderr to `stderr_log`.
    pub fn spawn_split(
        name: &str,
        cmd: Command,
        stdout_log: &Path,
        stderr_log: &Path,
    ) -> ChildGuard {
        let program = cmd.get_program().to_owned();
        let child = ChildProcess::spawn_split(name, cmd, stdout_log, stderr_log);
        ChildGuard(child.unwrap_or_else(|e| panic!("{name}: cannot start {program:?}: {e}")))
    }

    /// The child's process id (also its process group id).
    pub fn id(&self) -> u32 {
        self.0.pid()
    }

    /// The last bytes of each log, labelled, for failure messages.
    pub fn log_tail(&self) -> String {
        self.0.log_tail(TAIL_BYTES)
    }
}

impl Deref for ChildGuard {
    type Target = ChildProcess;

    fn deref(&self) -> &ChildProcess {
        &self.0
    }
}

impl DerefMut for ChildGuard {
    fn deref_mut(&mut self) -> &mut ChildProcess {
        &mut self.0
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.log_tail());
        }
        // Dropping the process kills its group.
    }
}
