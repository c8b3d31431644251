//! CPU time of processes and threads, from `/proc` and the thread CPU
//! clock: what the report's `cpu_s` adds up.

use std::time::Duration;

use rustix::time::{ClockId, clock_gettime};

/// User plus system CPU time of process `pid` so far, from
/// `/proc/<pid>/stat`; `None` once the process is gone.
pub fn process_cpu(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let ticks = parse_stat_ticks(&stat)?;
    Some(ticks_to_duration(
        ticks,
        rustix::param::clock_ticks_per_second(),
    ))
}

/// CPU time the calling thread has used so far.
pub fn thread_cpu() -> Duration {
    let t = clock_gettime(ClockId::ThreadCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// `utime + stime` (fields 14 and 15, in clock ticks) of a `/proc/PID/stat`
/// line. The command name (field 2) is in parentheses and may itself hold
/// spaces and parentheses, so fields are counted from the last `)`.
pub fn parse_stat_ticks(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // `after` starts at field 3 (state): utime is field 14, index 11.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

fn ticks_to_duration(ticks: u64, per_second: u64) -> Duration {
    let per_second = per_second.max(1);
    Duration::from_secs(ticks / per_second)
        + Duration::from_nanos((ticks % per_second) * 1_000_000_000 / per_second)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_utime_and_stime() {
        let stat = "4242 (shoal agent (x)) S 1 4242 4242 0 -1 4194560 812 0 0 0 \
                    150 37 0 0 20 0 9 0 123 456 789";
        assert_eq!(parse_stat_ticks(stat), Some(187));
        assert_eq!(parse_stat_ticks("garbage"), None);
    }

    #[test]
    fn ticks_convert_exactly() {
        assert_eq!(ticks_to_duration(250, 100), Duration::from_millis(2500));
    }

    #[test]
    fn own_process_and_thread_have_cpu_time() {
        assert!(process_cpu(std::process::id()).is_some());
        let _ = thread_cpu();
    }
}
