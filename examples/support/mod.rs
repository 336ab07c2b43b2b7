//! Helpers shared by the benchmark examples.

use std::time::Duration;

/// User + system CPU time of process `pid`, or of this process for `None`, from `/proc`
/// (Linux; zero elsewhere).
pub(crate) fn cpu_time(pid: Option<u32>) -> Duration {
    let path = pid.map_or_else(
        || "/proc/self/stat".to_owned(),
        |p| format!("/proc/{p}/stat"),
    );
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    // The fields after the command name, which is in parentheses and may contain spaces.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime, fields 14 and 15 of the line, are at 11 and 12 after the name; the
    // kernel counts them in clock ticks, 100 per second on Linux.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}
