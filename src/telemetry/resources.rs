//! Resource usage of vigil and of the model server it fronts, read at scrape time: no background
//! thread, nothing between scrapes. The model process is read from `/proc/<pid>` (a fixed pid, a
//! pid file re-read each time, or the oldest process whose name matches), the model's cgroup
//! from its cgroup v2 files. Rendered by hand in the Prometheus text format (CPU seconds are
//! fractional, and a reading that failed must leave its metric *absent*, not stale), and served
//! as JSON by `GET /admin/resources`.
//!
//! Owns: the `vigil_model_process_*` and `vigil_model_cgroup_*` names, cgroup v2 file parsing,
//! finding the model's pid. May not touch: anything but `/proc`, the pid file and the cgroup
//! directory, all read only. A failed reading is never an error to the caller: its metrics are
//! left out and `vigil_resource_read_errors_total{source}` counts it.

use super::process::{ProcessStats, ReadError};
use metrics::Counter;
use serde::Serialize;
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Failed readings, by `source`: `vigil`, `model_process` (also: pid file unreadable, no process
/// matching the name), `model_cgroup` (one per cgroup file that could not be read or parsed).
pub const RESOURCE_READ_ERRORS: &str = "vigil_resource_read_errors_total";

/// How the model process is found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PidSource {
    /// `resources.model_pid`.
    Pid(u32),
    /// `resources.model_pid_file`: read at every scrape, so a restarted server is followed.
    File(PathBuf),
    /// `resources.model_process_name`: a substring of `/proc/<pid>/comm` or of the command line.
    Name(String),
}

/// The readers vigil was configured with, and the error counters they feed.
pub struct Resources {
    pid: Option<PidSource>,
    cgroup: Option<PathBuf>,
    /// For [`PidSource::Name`]: the pid found by the last scan and how many processes matched;
    /// checked (still alive, still matching) before /proc is scanned again.
    found: Mutex<Option<(u32, usize)>>,
    errors: Errors,
}

struct Errors {
    vigil: Counter,
    model_process: Counter,
    model_cgroup: Counter,
}

/// One reading of everything configured.
#[derive(Debug, Clone)]
pub struct Readings {
    pub vigil: Result<ProcessStats, ReadError>,
    /// None when no way to find the model process is configured.
    pub model: Option<ModelReading>,
    /// None when `resources.model_cgroup` is not set.
    pub cgroup: Option<CgroupReading>,
}

#[derive(Debug, Clone)]
pub struct ModelReading {
    pub source: PidSource,
    /// The pid read or found; None when the pid file or the name scan failed.
    pub pid: Option<u32>,
    /// For [`PidSource::Name`]: how many processes matched (the oldest was taken).
    pub matches: Option<usize>,
    /// Err: the pid could not be found or its `/proc/<pid>/stat` read.
    pub stats: Result<ProcessStats, ReadError>,
    /// Readings that failed while the process itself was read (open fds: permission).
    pub errors: Vec<ReadError>,
}

#[derive(Debug, Clone)]
pub struct CgroupReading {
    pub path: PathBuf,
    pub stats: CgroupStats,
    /// One per file that could not be read or parsed; its figures are None.
    pub errors: Vec<ReadError>,
}

/// The figures of one cgroup v2 directory. None: not read (see the reading's errors) or, for the
/// throttling figures, not there (the cpu controller is not enabled for this cgroup).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CgroupStats {
    /// `cpu.stat` usage_usec, in seconds.
    pub cpu_seconds: Option<f64>,
    pub cpu_user_seconds: Option<f64>,
    pub cpu_system_seconds: Option<f64>,
    /// `cpu.stat` nr_periods: enforcement periods that elapsed (only with a CPU limit).
    pub cpu_periods: Option<u64>,
    /// `cpu.stat` nr_throttled: periods in which the cgroup was throttled.
    pub cpu_throttled_periods: Option<u64>,
    /// `cpu.stat` throttled_usec, in seconds.
    pub cpu_throttled_seconds: Option<f64>,
    /// `memory.current`.
    pub memory_bytes: Option<u64>,
    /// `memory.max`; None when it says "max" (no limit) or could not be read.
    pub memory_limit_bytes: Option<u64>,
    /// `memory.stat` anon: anonymous memory (heap, stacks, model weights loaded into RAM).
    pub memory_anon_bytes: Option<u64>,
    /// `memory.stat` file: page cache.
    pub memory_file_bytes: Option<u64>,
    /// `memory.events` oom: times the limit was hit and reclaim failed.
    pub oom_events: Option<u64>,
    /// `memory.events` oom_kill: processes the OOM killer killed in this cgroup.
    pub oom_kills: Option<u64>,
    /// `pids.current`.
    pub pids: Option<u64>,
}

impl Resources {
    /// Registers the error counters (at 0, so `rate()` works from the first scrape).
    pub fn new(pid: Option<PidSource>, cgroup: Option<PathBuf>) -> Resources {
        let counter = |s: &'static str| metrics::counter!(RESOURCE_READ_ERRORS, "source" => s);
        let errors = Errors {
            vigil: counter("vigil"),
            model_process: counter("model_process"),
            model_cgroup: counter("model_cgroup"),
        };
        errors.vigil.increment(0);
        if pid.is_some() {
            errors.model_process.increment(0);
        }
        if cgroup.is_some() {
            errors.model_cgroup.increment(0);
        }
        Resources { pid, cgroup, found: Mutex::new(None), errors }
    }

    pub fn pid_source(&self) -> Option<&PidSource> {
        self.pid.as_ref()
    }

    pub fn cgroup(&self) -> Option<&Path> {
        self.cgroup.as_deref()
    }

    /// Reads everything configured now, counting what failed.
    pub fn read(&self) -> Readings {
        let (vigil, vigil_fds) = ProcessStats::read_all("self");
        self.errors.vigil.increment(vigil.is_err() as u64 + vigil_fds.is_some() as u64);
        let model = self.pid.as_ref().map(|source| {
            let reading = self.read_model(source);
            self.errors.model_process.increment(reading.stats.is_err() as u64 + reading.errors.len() as u64);
            reading
        });
        let cgroup = self.cgroup.as_ref().map(|dir| {
            let (stats, errors) = CgroupStats::read(dir);
            self.errors.model_cgroup.increment(errors.len() as u64);
            CgroupReading { path: dir.clone(), stats, errors }
        });
        Readings { vigil, model, cgroup }
    }

    fn read_model(&self, source: &PidSource) -> ModelReading {
        let mut matches = None;
        let pid = match source {
            PidSource::Pid(p) => Ok(*p),
            PidSource::File(f) => read_pid_file(f),
            PidSource::Name(name) => {
                let mut found = self.found.lock().unwrap_or_else(|e| e.into_inner());
                let cached = found.filter(|(p, _)| process_matches(*p, name));
                let hit = match cached {
                    Some(hit) => Ok(hit),
                    None => find_by_name(Path::new("/proc"), name, std::process::id()),
                };
                *found = hit.as_ref().ok().copied();
                hit.map(|(p, n)| {
                    matches = Some(n);
                    p
                })
            }
        };
        let (stats, fd_error) = match &pid {
            Ok(p) => ProcessStats::read_all(&p.to_string()),
            Err(e) => (Err(e.clone()), None),
        };
        ModelReading { source: source.clone(), pid: pid.ok(), matches, stats, errors: fd_error.into_iter().collect() }
    }
}

/// Reads a pid file: one positive number, surrounding whitespace ignored.
pub fn read_pid_file(path: &Path) -> Result<u32, ReadError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ReadError::io(&shown, &e))?;
    match text.trim().parse::<u32>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(ReadError::new(shown, format!("holds {:?}, not a pid", truncate(text.trim(), 40)))),
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Whether `/proc/<pid>`'s command name or command line contains `name`.
fn process_matches(pid: u32, name: &str) -> bool {
    process_matches_in(Path::new("/proc"), pid, name)
}

fn process_matches_in(proc: &Path, pid: u32, name: &str) -> bool {
    let dir = proc.join(pid.to_string());
    let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
    if comm.trim_end_matches('\n').contains(name) {
        return true;
    }
    // The command line's arguments are separated (and ended) by NUL bytes.
    let cmdline = std::fs::read(dir.join("cmdline")).unwrap_or_default();
    let cmdline: String = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    cmdline.trim_end().contains(name)
}

/// Scans `proc` (normally `/proc`) for processes other than `exclude` whose command name or line
/// contains `name`; returns the oldest (earliest start, then lowest pid) and how many matched.
pub fn find_by_name(proc: &Path, name: &str, exclude: u32) -> Result<(u32, usize), ReadError> {
    let shown = proc.display().to_string();
    let entries = std::fs::read_dir(proc).map_err(|e| ReadError::io(&shown, &e))?;
    let mut best: Option<(u64, u32)> = None;
    let mut count = 0;
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        if pid == exclude || !process_matches_in(proc, pid, name) {
            continue;
        }
        count += 1;
        let start = start_ticks(&proc.join(pid.to_string()).join("stat")).unwrap_or(u64::MAX);
        if best.is_none_or(|b| (start, pid) < b) {
            best = Some((start, pid));
        }
    }
    match best {
        Some((_, pid)) => Ok((pid, count)),
        None => Err(ReadError::new(format!("{shown}/*/comm, cmdline"), format!("no process matches {name:?}"))),
    }
}

/// Field 22 (starttime, clock ticks after boot) of a `stat` file.
fn start_ticks(stat: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(stat).ok()?;
    let rest = text.get(text.rfind(')')? + 1..)?;
    rest.split_whitespace().nth(19)?.parse().ok()
}

impl CgroupStats {
    /// Reads the cgroup v2 files of `dir`. Each file that is missing, unreadable or malformed
    /// leaves its figures None and adds one error; the others are still read.
    pub fn read(dir: &Path) -> (CgroupStats, Vec<ReadError>) {
        let mut s = CgroupStats::default();
        let mut errors = Vec::new();
        let mut file = |name: &str, parse: &mut dyn FnMut(&str) -> Result<(), String>| {
            let path = dir.join(name);
            let shown = path.display().to_string();
            match std::fs::read_to_string(&path) {
                Ok(text) => {
                    if let Err(why) = parse(&text) {
                        errors.push(ReadError::new(shown, why));
                    }
                }
                Err(e) => errors.push(ReadError::io(shown, &e)),
            }
        };
        file("cpu.stat", &mut |t| {
            s.cpu_seconds = Some(keyed(t, "usage_usec")? as f64 / 1e6);
            s.cpu_user_seconds = keyed(t, "user_usec").ok().map(|u| u as f64 / 1e6);
            s.cpu_system_seconds = keyed(t, "system_usec").ok().map(|u| u as f64 / 1e6);
            // Present only when the cpu controller is enabled for this cgroup.
            s.cpu_periods = keyed(t, "nr_periods").ok();
            s.cpu_throttled_periods = keyed(t, "nr_throttled").ok();
            s.cpu_throttled_seconds = keyed(t, "throttled_usec").ok().map(|u| u as f64 / 1e6);
            Ok(())
        });
        file("memory.current", &mut |t| single(t).map(|v| s.memory_bytes = Some(v)));
        file("memory.max", &mut |t| {
            s.memory_limit_bytes = match t.trim() {
                "max" => None,
                _ => Some(single(t)?),
            };
            Ok(())
        });
        file("memory.stat", &mut |t| {
            s.memory_anon_bytes = Some(keyed(t, "anon")?);
            s.memory_file_bytes = Some(keyed(t, "file")?);
            Ok(())
        });
        file("memory.events", &mut |t| {
            s.oom_events = Some(keyed(t, "oom")?);
            s.oom_kills = Some(keyed(t, "oom_kill")?);
            Ok(())
        });
        file("pids.current", &mut |t| single(t).map(|v| s.pids = Some(v)));
        (s, errors)
    }
}

/// The value of `key` in a flat keyed file (`key value` per line: cpu.stat, memory.stat, ...).
fn keyed(text: &str, key: &str) -> Result<u64, String> {
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix(key).filter(|rest| rest.starts_with(' ')))
        .ok_or_else(|| format!("no {key:?} line"))?;
    line.trim().parse().map_err(|_| format!("{key} is {:?}, not a number", truncate(line.trim(), 40)))
}

/// A single-value file (`memory.current`, `pids.current`).
fn single(text: &str) -> Result<u64, String> {
    let t = text.trim();
    t.parse().map_err(|_| format!("holds {:?}, not a number", truncate(t, 40)))
}

impl Readings {
    /// Appends every figure that was read, in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        if let Ok(v) = &self.vigil {
            v.render(out);
        }
        if let Some(Ok(m)) = self.model.as_ref().map(|m| &m.stats) {
            counter(
                out,
                "vigil_model_process_cpu_seconds_total",
                "User and system CPU time of the model server process, in seconds.",
                Some(m.cpu_seconds),
            );
            gauge(
                out,
                "vigil_model_process_resident_memory_bytes",
                "Resident memory of the model server process.",
                Some(m.resident_bytes as f64),
            );
            gauge(
                out,
                "vigil_model_process_open_fds",
                "Open file descriptors of the model server process.",
                m.open_fds.map(|v| v as f64),
            );
            gauge(out, "vigil_model_process_threads", "Threads of the model server process.", Some(m.threads as f64));
            gauge(
                out,
                "vigil_model_process_start_time_seconds",
                "Start time of the model server process since the Unix epoch, in seconds.",
                Some(m.start_time_seconds),
            );
        }
        if let Some(c) = &self.cgroup {
            let s = &c.stats;
            let f = |v: Option<u64>| v.map(|v| v as f64);
            counter(
                out,
                "vigil_model_cgroup_cpu_seconds_total",
                "CPU time of the model's cgroup (cpu.stat usage_usec), in seconds.",
                s.cpu_seconds,
            );
            counter(
                out,
                "vigil_model_cgroup_cpu_user_seconds_total",
                "User CPU time of the model's cgroup, in seconds.",
                s.cpu_user_seconds,
            );
            counter(
                out,
                "vigil_model_cgroup_cpu_system_seconds_total",
                "System CPU time of the model's cgroup, in seconds.",
                s.cpu_system_seconds,
            );
            counter(
                out,
                "vigil_model_cgroup_cpu_periods_total",
                "CPU limit enforcement periods of the model's cgroup.",
                f(s.cpu_periods),
            );
            counter(
                out,
                "vigil_model_cgroup_cpu_throttled_periods_total",
                "Periods in which the model's cgroup was throttled by its CPU limit.",
                f(s.cpu_throttled_periods),
            );
            counter(
                out,
                "vigil_model_cgroup_cpu_throttled_seconds_total",
                "Time the model's cgroup was throttled by its CPU limit, in seconds.",
                s.cpu_throttled_seconds,
            );
            gauge(
                out,
                "vigil_model_cgroup_memory_bytes",
                "Memory used by the model's cgroup (memory.current).",
                f(s.memory_bytes),
            );
            gauge(
                out,
                "vigil_model_cgroup_memory_limit_bytes",
                "Memory limit of the model's cgroup (memory.max; absent when unlimited).",
                f(s.memory_limit_bytes),
            );
            gauge(
                out,
                "vigil_model_cgroup_memory_anon_bytes",
                "Anonymous memory of the model's cgroup (memory.stat anon).",
                f(s.memory_anon_bytes),
            );
            gauge(
                out,
                "vigil_model_cgroup_memory_file_bytes",
                "Page cache of the model's cgroup (memory.stat file).",
                f(s.memory_file_bytes),
            );
            counter(
                out,
                "vigil_model_cgroup_oom_events_total",
                "Times the model's cgroup hit its memory limit and reclaim failed (memory.events oom).",
                f(s.oom_events),
            );
            counter(
                out,
                "vigil_model_cgroup_oom_kills_total",
                "Processes of the model's cgroup killed by the OOM killer (memory.events oom_kill).",
                f(s.oom_kills),
            );
            gauge(
                out,
                "vigil_model_cgroup_pids",
                "Processes and threads in the model's cgroup (pids.current).",
                f(s.pids),
            );
        }
    }
}

fn counter(out: &mut String, name: &str, help: &str, value: Option<f64>) {
    sample(out, name, "counter", help, value)
}

fn gauge(out: &mut String, name: &str, help: &str, value: Option<f64>) {
    sample(out, name, "gauge", help, value)
}

fn sample(out: &mut String, name: &str, kind: &str, help: &str, value: Option<f64>) {
    if let Some(v) = value {
        let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).unwrap();
    }

    /// A cgroup v2 directory as a container with CPU and memory limits has it (Linux 6.x).
    fn cgroup_fixture(dir: &Path, memory_max: &str) {
        write(
            dir,
            "cpu.stat",
            "usage_usec 12500000\nuser_usec 10000000\nsystem_usec 2500000\ncore_sched.force_idle_usec 0\n\
             nr_periods 400\nnr_throttled 25\nthrottled_usec 1500000\nnr_bursts 0\nburst_usec 0\n",
        );
        write(dir, "memory.current", "536870912\n");
        write(dir, "memory.max", memory_max);
        write(
            dir,
            "memory.stat",
            "anon 402653184\nfile 100663296\nkernel 8388608\nkernel_stack 262144\nanon_thp 0\n\
             file_mapped 1048576\nfile_dirty 0\nactive_anon 0\ninactive_anon 402653184\n",
        );
        write(dir, "memory.events", "low 0\nhigh 0\nmax 12\noom 3\noom_kill 2\noom_group_kill 0\n");
        write(dir, "pids.current", "17\n");
    }

    #[test]
    fn reads_every_cgroup_v2_file() {
        let t = tempfile::tempdir().unwrap();
        cgroup_fixture(t.path(), "1073741824\n");
        let (s, errors) = CgroupStats::read(t.path());
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            s,
            CgroupStats {
                cpu_seconds: Some(12.5),
                cpu_user_seconds: Some(10.0),
                cpu_system_seconds: Some(2.5),
                cpu_periods: Some(400),
                cpu_throttled_periods: Some(25),
                cpu_throttled_seconds: Some(1.5),
                memory_bytes: Some(536_870_912),
                memory_limit_bytes: Some(1_073_741_824),
                memory_anon_bytes: Some(402_653_184),
                memory_file_bytes: Some(100_663_296),
                oom_events: Some(3),
                oom_kills: Some(2),
                pids: Some(17),
            }
        );
    }

    #[test]
    fn memory_max_of_max_means_no_limit_and_no_error() {
        let t = tempfile::tempdir().unwrap();
        cgroup_fixture(t.path(), "max\n");
        let (s, errors) = CgroupStats::read(t.path());
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(s.memory_limit_bytes, None);
        assert_eq!(s.memory_bytes, Some(536_870_912));
    }

    #[test]
    fn throttling_is_absent_without_the_cpu_controller_and_that_is_no_error() {
        let t = tempfile::tempdir().unwrap();
        cgroup_fixture(t.path(), "max\n");
        write(t.path(), "cpu.stat", "usage_usec 42\nuser_usec 40\nsystem_usec 2\n");
        let (s, errors) = CgroupStats::read(t.path());
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(s.cpu_seconds, Some(42e-6));
        assert_eq!((s.cpu_periods, s.cpu_throttled_periods, s.cpu_throttled_seconds), (None, None, None));
    }

    #[test]
    fn a_missing_or_garbled_file_leaves_only_its_own_figures_out() {
        let t = tempfile::tempdir().unwrap();
        cgroup_fixture(t.path(), "max\n");
        std::fs::remove_file(t.path().join("pids.current")).unwrap();
        write(t.path(), "memory.current", "lots\n");
        write(t.path(), "memory.events", "low 0\nhigh 0\n");
        let (s, errors) = CgroupStats::read(t.path());
        let mut why: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        why.sort();
        let dir = t.path().display();
        assert_eq!(
            why,
            [
                format!("{dir}/memory.current: holds \"lots\", not a number"),
                format!("{dir}/memory.events: no \"oom\" line"),
                format!("{dir}/pids.current: not found"),
            ]
        );
        assert_eq!((s.memory_bytes, s.oom_kills, s.pids), (None, None, None));
        assert_eq!(s.cpu_seconds, Some(12.5));
        assert_eq!(s.memory_anon_bytes, Some(402_653_184));
    }

    #[test]
    fn keyed_lines_match_whole_keys() {
        // "oom" must not take "oom_kill"'s line nor "oom_group_kill"'s.
        let t = "oom_kill 5\noom_group_kill 1\noom 2\n";
        assert_eq!(keyed(t, "oom"), Ok(2));
        assert_eq!(keyed(t, "oom_kill"), Ok(5));
        assert!(keyed("file_mapped 3\n", "file").is_err());
    }

    #[test]
    fn an_empty_directory_reads_as_six_errors() {
        let t = tempfile::tempdir().unwrap();
        let (s, errors) = CgroupStats::read(t.path());
        assert_eq!(errors.len(), 6);
        assert_eq!(s, CgroupStats::default());
    }

    #[test]
    fn pid_files_hold_one_positive_number() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("model.pid");
        std::fs::write(&f, " 4242\n").unwrap();
        assert_eq!(read_pid_file(&f), Ok(4242));
        for bad in ["", "0", "-1", "42 43", "pid=42"] {
            std::fs::write(&f, bad).unwrap();
            assert!(read_pid_file(&f).unwrap_err().reason.contains("not a pid"), "{bad:?}");
        }
        assert_eq!(read_pid_file(&t.path().join("none")).unwrap_err().reason, "not found");
    }

    /// A fake /proc with processes `(pid, comm, cmdline, starttime)`.
    fn fake_proc(dir: &Path, procs: &[(u32, &str, &str, u64)]) {
        for (pid, comm, cmdline, start) in procs {
            let p = dir.join(pid.to_string());
            std::fs::create_dir(&p).unwrap();
            write(&p, "comm", &format!("{comm}\n"));
            write(&p, "cmdline", &cmdline.replace(' ', "\0"));
            write(
                &p,
                "stat",
                &format!("{pid} ({comm}) S 1 1 1 0 -1 0 0 0 0 0 1 1 0 0 20 0 1 0 {start} 0 10 0 0 0 0 0 0 0"),
            );
        }
        std::fs::create_dir(dir.join("sys")).unwrap();
    }

    #[test]
    fn finds_the_oldest_process_by_name_or_command_line() {
        let t = tempfile::tempdir().unwrap();
        fake_proc(
            t.path(),
            &[
                (30, "python3", "python3 -m mlserver start .", 500),
                (31, "python3", "python3 -m mlserver worker", 600),
                (12, "python3", "python3 -m mlserver start .", 400),
                (7, "bash", "bash", 1),
                (99, "vigil", "vigil run --upstream mlserver=http://x", 2),
                (40, "tritonserver", "/opt/tritonserver/bin/tritonserver", 900),
            ],
        );
        // 99 is vigil itself (its command line mentions mlserver): never taken.
        assert_eq!(find_by_name(t.path(), "mlserver", 99), Ok((12, 3)));
        assert_eq!(find_by_name(t.path(), "tritonserver", 99), Ok((40, 1)));
        assert_eq!(find_by_name(t.path(), "torchserve", 99).unwrap_err().reason, "no process matches \"torchserve\"");
        assert!(process_matches_in(t.path(), 31, "mlserver worker"));
        assert!(!process_matches_in(t.path(), 1234, "x"));
    }

    #[test]
    fn renders_what_was_read_and_nothing_else() {
        let t = tempfile::tempdir().unwrap();
        cgroup_fixture(t.path(), "max\n");
        std::fs::remove_file(t.path().join("pids.current")).unwrap();
        let (stats, errors) = CgroupStats::read(t.path());
        let readings = Readings {
            vigil: Err(ReadError::new("/proc/self/stat", "not found")),
            model: Some(ModelReading {
                source: PidSource::Pid(1),
                pid: Some(1),
                matches: None,
                stats: Err(ReadError::new("/proc/1/stat", "not found")),
                errors: vec![],
            }),
            cgroup: Some(CgroupReading { path: t.path().into(), stats, errors }),
        };
        let mut out = String::new();
        readings.render(&mut out);
        assert!(!out.contains("process_cpu_seconds_total "), "{out}");
        assert!(!out.contains("vigil_model_process_"), "{out}");
        assert!(!out.contains("vigil_model_cgroup_pids"), "{out}");
        assert!(!out.contains("vigil_model_cgroup_memory_limit_bytes"), "{out}");
        assert!(out.contains("\nvigil_model_cgroup_cpu_seconds_total 12.5\n"), "{out}");
        assert!(
            out.contains("# TYPE vigil_model_cgroup_oom_kills_total counter\nvigil_model_cgroup_oom_kills_total 2\n")
        );
        assert!(out.contains("\nvigil_model_cgroup_memory_bytes 536870912\n"), "{out}");
    }
}
