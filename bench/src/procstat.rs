//! CPU time and memory of other processes (the gateway, backends, proxies),
//! read from `/proc/<pid>/stat` and `/proc/<pid>/status`.

use std::fs;

/// Why a process could not be sampled.
#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    /// `/proc/<pid>/...` could not be read (no such process, not Linux).
    #[error("cannot read /proc/{pid}/{file}: {source}")]
    Read {
        /// The process.
        pid: u32,
        /// The file under `/proc/<pid>`.
        file: &'static str,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file did not have the expected layout.
    #[error("unexpected layout of /proc/{pid}/{file}")]
    Layout {
        /// The process.
        pid: u32,
        /// The file under `/proc/<pid>`.
        file: &'static str,
    },
}

/// One reading of a process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcSample {
    /// User + system CPU time of all its threads so far, seconds.
    pub cpu_seconds: f64,
    /// Peak resident set size (VmHWM), KiB.
    pub peak_rss_kib: u64,
    /// Current resident set size (VmRSS), KiB.
    pub rss_kib: u64,
    /// Bytes it caused to be written to storage so far (`write_bytes` of
    /// `/proc/<pid>/io`: WAL, data files, logs); 0 when not readable.
    pub write_bytes: u64,
}

/// Clock ticks per second of `/proc/<pid>/stat` times.
pub fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions; it only reads a constant.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

/// Reads `pid`'s CPU time and memory now.
pub fn sample(pid: u32) -> Result<ProcSample, ProcError> {
    let read = |file: &'static str| {
        fs::read_to_string(format!("/proc/{pid}/{file}")).map_err(|source| ProcError::Read {
            pid,
            file,
            source,
        })
    };
    let ticks = parse_cpu_ticks(&read("stat")?).ok_or(ProcError::Layout { pid, file: "stat" })?;
    let status = read("status")?;
    let field = |name| {
        parse_status_kib(&status, name).ok_or(ProcError::Layout {
            pid,
            file: "status",
        })
    };
    Ok(ProcSample {
        cpu_seconds: ticks as f64 / clock_ticks_per_second(),
        peak_rss_kib: field("VmHWM:")?,
        rss_kib: field("VmRSS:")?,
        write_bytes: read("io")
            .ok()
            .and_then(|io| parse_io_field(&io, "write_bytes:"))
            .unwrap_or(0),
    })
}

/// The value of `name` (e.g. `write_bytes:`) in a `/proc/<pid>/io` text.
pub fn parse_io_field(io: &str, name: &str) -> Option<u64> {
    io.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.trim().parse().ok())
}

/// The command name of `pid` (`/proc/<pid>/comm`), if readable.
pub fn command_name(pid: u32) -> Option<String> {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim().to_owned())
}

/// utime + stime (fields 14 and 15) of a `/proc/<pid>/stat` line. The
/// command name (field 2) may hold spaces and parentheses, so fields are
/// counted after its last `)`.
pub fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): utime is field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// The KiB value of a `Name:   123 kB` line of `/proc/<pid>/status`.
pub fn parse_status_kib(status: &str, name: &str) -> Option<u64> {
    status
        .lines()
        .find(|l| l.starts_with(name))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_command_names() {
        let stat = "4242 (a b) c)) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 3 0 1 2 3";
        assert_eq!(parse_cpu_ticks(stat), Some(325));
        assert_eq!(parse_cpu_ticks("garbage"), None);
    }

    #[test]
    fn parses_io_fields() {
        let io = "rchar: 10\nwchar: 20\nread_bytes: 4096\nwrite_bytes: 8192\n";
        assert_eq!(parse_io_field(io, "write_bytes:"), Some(8192));
        assert_eq!(parse_io_field(io, "nope:"), None);
    }

    #[test]
    fn parses_status_fields() {
        let status = "Name:\thts\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\n";
        assert_eq!(parse_status_kib(status, "VmHWM:"), Some(20480));
        assert_eq!(parse_status_kib(status, "VmRSS:"), Some(10240));
        assert_eq!(parse_status_kib(status, "VmSwap:"), None);
    }

    #[test]
    fn samples_this_process() {
        let s = sample(std::process::id()).unwrap();
        assert!(s.peak_rss_kib >= s.rss_kib.min(s.peak_rss_kib));
        assert!(s.rss_kib > 0);
        assert!(s.cpu_seconds >= 0.0);
    }
}
