//! One process's resource usage, read from `/proc/<pid>` as the Prometheus client libraries do:
//! CPU seconds, resident memory, open file descriptors, threads and start time. vigil renders its
//! own as `process_cpu_seconds_total`, `process_resident_memory_bytes`, `process_open_fds`,
//! `process_start_time_seconds` and `vigil_process_threads`; the model server's figures
//! (`telemetry::resources`) use the same reading. Read at scrape time, so it costs nothing between
//! scrapes.
//!
//! Owns: parsing `/proc/<pid>/stat` and counting `/proc/<pid>/fd`. May not touch: anything but
//! `/proc` (and `/proc/stat` for the boot time).

use std::fmt;

/// One reading of a process's CPU and memory.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessStats {
    /// User plus system CPU time since the process started.
    pub cpu_seconds: f64,
    pub user_seconds: f64,
    pub system_seconds: f64,
    pub resident_bytes: u64,
    /// None when `/proc/<pid>/fd` cannot be listed: another user's process needs
    /// `CAP_SYS_PTRACE` (or the same uid) for it, while `stat` is readable by anyone.
    pub open_fds: Option<u64>,
    pub threads: u64,
    /// Seconds since the Unix epoch; 0 when the boot time is unknown.
    pub start_time_seconds: f64,
}

/// A reading that failed: which file, and why. Shown in `/admin/resources`; counted in
/// `vigil_resource_read_errors_total`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadError {
    pub path: String,
    pub reason: String,
}

impl ReadError {
    pub fn new(path: impl Into<String>, reason: impl Into<String>) -> ReadError {
        ReadError { path: path.into(), reason: reason.into() }
    }

    pub fn io(path: impl Into<String>, e: &std::io::Error) -> ReadError {
        let reason = match e.kind() {
            std::io::ErrorKind::NotFound => "not found".to_owned(),
            std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
            _ => e.to_string(),
        };
        ReadError { path: path.into(), reason }
    }
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.reason)
    }
}

/// The machine constants a `stat` line is scaled by.
#[derive(Debug, Clone, Copy)]
pub struct Scale {
    /// Clock ticks per second (`_SC_CLK_TCK`, 100 on Linux).
    pub ticks: f64,
    pub page_size: u64,
    /// Boot time, seconds since the epoch (`btime` of `/proc/stat`).
    pub boot_time: Option<f64>,
}

impl Scale {
    /// Read once: none of these change while the machine runs, and `/proc/stat` (for the boot
    /// time) is costly to read on machines with many cores.
    pub fn of_this_machine() -> Scale {
        static SCALE: std::sync::OnceLock<Scale> = std::sync::OnceLock::new();
        *SCALE.get_or_init(|| Scale { ticks: clock_ticks(), page_size: page_size(), boot_time: boot_time() })
    }
}

impl ProcessStats {
    /// Reads `/proc/<pid>` (`self` for this process). Err when the process is gone, `/proc` is
    /// not there or the file does not parse; never panics. `open_fds` is None when the fd
    /// directory cannot be listed.
    pub fn read(pid: &str) -> Result<ProcessStats, ReadError> {
        ProcessStats::read_all(pid).0
    }

    /// [`ProcessStats::read`], plus why `/proc/<pid>/fd` could not be listed when it could not.
    pub fn read_all(pid: &str) -> (Result<ProcessStats, ReadError>, Option<ReadError>) {
        let path = format!("/proc/{pid}/stat");
        let parsed = std::fs::read_to_string(&path)
            .map_err(|e| ReadError::io(&path, &e))
            .and_then(|stat| parse_stat(&stat, &Scale::of_this_machine()).map_err(|why| ReadError::new(&path, why)));
        let mut stats = match parsed {
            Ok(s) => s,
            Err(e) => return (Err(e), None),
        };
        let fd_dir = format!("/proc/{pid}/fd");
        match std::fs::read_dir(&fd_dir) {
            Ok(d) => {
                stats.open_fds = Some(d.count() as u64);
                (Ok(stats), None)
            }
            Err(e) => (Ok(stats), Some(ReadError::io(fd_dir, &e))),
        }
    }

    /// Appends vigil's own reading in the Prometheus text format. Rendered by hand rather than
    /// through the `metrics` facade, whose counters are integers: CPU seconds are fractional.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write;
        let _ = write!(
            out,
            "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n\
             # TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total {}\n\
             # HELP process_resident_memory_bytes Resident memory size in bytes.\n\
             # TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes {}\n",
            self.cpu_seconds, self.resident_bytes
        );
        if let Some(fds) = self.open_fds {
            let _ = write!(
                out,
                "# HELP process_open_fds Number of open file descriptors.\n\
                 # TYPE process_open_fds gauge\nprocess_open_fds {fds}\n"
            );
        }
        let _ = write!(
            out,
            "# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.\n\
             # TYPE process_start_time_seconds gauge\nprocess_start_time_seconds {}\n\
             # HELP vigil_process_threads Threads of the vigil process.\n\
             # TYPE vigil_process_threads gauge\nvigil_process_threads {}\n",
            self.start_time_seconds, self.threads
        );
    }
}

/// Parses one `/proc/<pid>/stat` line (proc(5)). The command name (field 2) is in parentheses
/// and may itself hold spaces and parentheses, so the fields are counted from the *last* `)`.
/// `open_fds` is left None: it is not in this file.
pub fn parse_stat(stat: &str, scale: &Scale) -> Result<ProcessStats, String> {
    let close = stat.rfind(')').ok_or("no ')' closing the command name")?;
    let rest = stat.get(close + 1..).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state); utime is field 14, stime 15, num_threads 20, starttime 22, rss 24.
    let field = |n: usize| -> Result<u64, String> {
        let raw = fields.get(n - 3).ok_or_else(|| format!("only {} fields after the command name", fields.len()))?;
        raw.parse::<u64>().map_err(|_| format!("field {n} is {raw:?}, not a number"))
    };
    let (utime, stime) = (field(14)?, field(15)?);
    // rss is signed in the kernel's format; a negative value (never seen in practice) reads as 0.
    let rss_pages = fields.get(21).and_then(|f| f.parse::<i64>().ok()).ok_or("field 24 (rss) is not a number")?;
    let ticks = if scale.ticks > 0.0 { scale.ticks } else { 100.0 };
    Ok(ProcessStats {
        cpu_seconds: (utime + stime) as f64 / ticks,
        user_seconds: utime as f64 / ticks,
        system_seconds: stime as f64 / ticks,
        resident_bytes: (rss_pages.max(0) as u64).saturating_mul(scale.page_size),
        open_fds: None,
        threads: field(20)?,
        start_time_seconds: scale.boot_time.map(|b| b + field(22).unwrap_or(0) as f64 / ticks).unwrap_or(0.0),
    })
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as u64
    } else {
        4096
    }
}

fn boot_time() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines().find_map(|l| l.strip_prefix("btime ")).and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCALE: Scale = Scale { ticks: 100.0, page_size: 4096, boot_time: Some(1_700_000_000.0) };

    /// A stat line with `name` as the command; utime 250, stime 50, 7 threads, started 1234.5 s
    /// after boot, 300 pages resident.
    fn line(name: &str) -> String {
        format!(
            "4242 ({name}) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 7 0 123450 \
             104857600 300 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0"
        )
    }

    #[test]
    fn parses_a_plain_stat_line() {
        let s = parse_stat(&line("python3"), &SCALE).unwrap();
        assert_eq!(s.cpu_seconds, 3.0);
        assert_eq!((s.user_seconds, s.system_seconds), (2.5, 0.5));
        assert_eq!(s.resident_bytes, 300 * 4096);
        assert_eq!(s.threads, 7);
        assert_eq!(s.start_time_seconds, 1_700_000_000.0 + 1234.5);
        assert_eq!(s.open_fds, None);
    }

    #[test]
    fn command_names_with_spaces_and_parentheses_do_not_shift_fields() {
        for name in ["tritonserver --model-repo", "a) b (c", "))", "(", "x) S 1 2 3 4 5 6 7 8 9 10 11 12"] {
            let s = parse_stat(&line(name), &SCALE).unwrap_or_else(|e| panic!("{name:?}: {e}"));
            assert_eq!((s.cpu_seconds, s.threads, s.resident_bytes), (3.0, 7, 300 * 4096), "{name:?}");
        }
    }

    #[test]
    fn truncated_or_garbled_lines_are_errors_not_panics() {
        for text in ["", "4242 (x", "4242 (x) S 1 2", "4242 (x) S 1 4242 4242 0 -1 4194560 1000 0 0 0 abc 50"] {
            assert!(parse_stat(text, &SCALE).is_err(), "{text:?}");
        }
        // Multi-byte characters right after the parenthesis must not split a char boundary.
        assert!(parse_stat("1 (é)é", &SCALE).is_err());
    }

    #[test]
    fn unknown_boot_time_gives_zero_start_time() {
        let s = parse_stat(&line("x"), &Scale { boot_time: None, ..SCALE }).unwrap();
        assert_eq!(s.start_time_seconds, 0.0);
    }

    #[test]
    fn reads_this_process() {
        let s = ProcessStats::read("self").unwrap();
        assert!(s.resident_bytes > 0 && s.threads >= 1 && s.open_fds.unwrap() > 0, "{s:?}");
        let gone = ProcessStats::read("999999999").unwrap_err();
        assert_eq!(gone.path, "/proc/999999999/stat");
        assert_eq!(gone.reason, "not found");
    }
}
