//! `GET /admin/resources`: the resource usage of vigil, of the model server process and of the
//! model's cgroup, as JSON, with CPU rates (cores in use) over the time since the previous call.
//! `/metrics` renders the same readings (`telemetry::resources`).
//!
//! Owns: the last reading (for the rates) and the JSON view. May not touch: anything but the
//! readings; it reads files at call time and keeps no thread.

use super::reply::json;
use super::AdminResponse;
use crate::config::ResourcesConfig;
use crate::telemetry::{PidSource, ProcessStats, ReadError, Readings, Resources};
use http::StatusCode;
use serde_json::{json, Map, Value};
use std::sync::Mutex;
use std::time::Instant;

/// The readers and the previous `/admin/resources` reading.
pub struct ResourceControl {
    resources: Resources,
    last: Mutex<Option<Previous>>,
}

/// What the rates of the next call are computed from.
#[derive(Debug, Clone, Copy)]
struct Previous {
    at: Instant,
    vigil_cpu: Option<f64>,
    /// (pid, CPU seconds): a rate only while the pid stays the same.
    model_cpu: Option<(u32, f64)>,
    cgroup_cpu: Option<f64>,
    cgroup_throttled: Option<f64>,
}

impl ResourceControl {
    pub fn from_config(c: &ResourcesConfig) -> ResourceControl {
        let pid = match (c.model_pid, &c.model_pid_file, &c.model_process_name) {
            (Some(p), _, _) => Some(PidSource::Pid(p)),
            (_, Some(f), _) => Some(PidSource::File(f.clone())),
            (_, _, Some(n)) => Some(PidSource::Name(n.clone())),
            _ => None,
        };
        ResourceControl::new(Resources::new(pid, c.model_cgroup.clone()))
    }

    pub fn new(resources: Resources) -> ResourceControl {
        ResourceControl { resources, last: Mutex::new(None) }
    }

    /// Reads everything now (failures are counted in `vigil_resource_read_errors_total`). Call it
    /// before rendering the recorder, so this scrape's failures are in this scrape's counters.
    pub fn read(&self) -> Readings {
        self.resources.read()
    }

    /// The JSON view of a reading now, with rates against the previous call's reading.
    pub fn get(&self) -> AdminResponse {
        let readings = self.resources.read();
        let now = Previous {
            at: Instant::now(),
            vigil_cpu: readings.vigil.as_ref().ok().map(|s| s.cpu_seconds),
            model_cpu: readings.model.as_ref().and_then(|m| Some((m.pid?, m.stats.as_ref().ok()?.cpu_seconds))),
            cgroup_cpu: readings.cgroup.as_ref().and_then(|c| c.stats.cpu_seconds),
            cgroup_throttled: readings.cgroup.as_ref().and_then(|c| c.stats.cpu_throttled_seconds),
        };
        let prev = self.last.lock().unwrap_or_else(|e| e.into_inner()).replace(now);
        json(StatusCode::OK, &view(&readings, prev.as_ref(), &now))
    }
}

/// Per second of wall time between two readings of a counter; None without an earlier reading or
/// when the counter went back (a restarted process or a recreated cgroup).
fn rate(before: Option<f64>, after: Option<f64>, seconds: Option<f64>) -> Option<f64> {
    let (b, a, s) = (before?, after?, seconds?);
    (a >= b && s > 0.0).then(|| (a - b) / s)
}

fn view(r: &Readings, prev: Option<&Previous>, now: &Previous) -> Value {
    let interval = prev.map(|p| now.at.duration_since(p.at).as_secs_f64());
    let mut vigil = process_view(&r.vigil, &[]);
    vigil.insert("pid".into(), json!(std::process::id()));
    vigil.insert("cpu_per_second".into(), json!(rate(prev.and_then(|p| p.vigil_cpu), now.vigil_cpu, interval)));
    let model = r.model.as_ref().map(|m| {
        let mut o = Map::new();
        match &m.source {
            PidSource::Pid(_) => {
                o.insert("source".into(), json!("model_pid"));
            }
            PidSource::File(f) => {
                o.insert("source".into(), json!("model_pid_file"));
                o.insert("pid_file".into(), json!(f.display().to_string()));
            }
            PidSource::Name(n) => {
                o.insert("source".into(), json!("model_process_name"));
                o.insert("name".into(), json!(n));
                o.insert("matches".into(), json!(m.matches));
            }
        }
        o.insert("pid".into(), json!(m.pid));
        o.extend(process_view(&m.stats, &m.errors));
        let same_pid = |p: &Previous| p.model_cpu.filter(|(pid, _)| Some(*pid) == m.pid).map(|(_, c)| c);
        let cpu_rate = rate(prev.and_then(same_pid), now.model_cpu.map(|(_, c)| c), interval);
        o.insert("cpu_per_second".into(), json!(cpu_rate));
        Value::Object(o)
    });
    let cgroup = r.cgroup.as_ref().map(|c| {
        let mut o = Map::new();
        o.insert("path".into(), json!(c.path.display().to_string()));
        if let Value::Object(stats) = json!(c.stats) {
            o.extend(stats);
        }
        let cpu = rate(prev.and_then(|p| p.cgroup_cpu), now.cgroup_cpu, interval);
        let throttled = rate(prev.and_then(|p| p.cgroup_throttled), now.cgroup_throttled, interval);
        o.insert("cpu_per_second".into(), json!(cpu));
        o.insert("cpu_throttled_per_second".into(), json!(throttled));
        o.insert("errors".into(), errors_view(c.errors.iter()));
        Value::Object(o)
    });
    json!({
        "interval_seconds": interval,
        "vigil": vigil,
        "model_process": model,
        "model_cgroup": cgroup,
    })
}

fn process_view(stats: &Result<ProcessStats, ReadError>, more: &[ReadError]) -> Map<String, Value> {
    let mut o = Map::new();
    let s = stats.as_ref().ok();
    o.insert("cpu_seconds".into(), json!(s.map(|s| s.cpu_seconds)));
    o.insert("cpu_user_seconds".into(), json!(s.map(|s| s.user_seconds)));
    o.insert("cpu_system_seconds".into(), json!(s.map(|s| s.system_seconds)));
    o.insert("resident_memory_bytes".into(), json!(s.map(|s| s.resident_bytes)));
    o.insert("open_fds".into(), json!(s.and_then(|s| s.open_fds)));
    o.insert("threads".into(), json!(s.map(|s| s.threads)));
    o.insert("start_time_seconds".into(), json!(s.map(|s| s.start_time_seconds)));
    o.insert("errors".into(), errors_view(stats.as_ref().err().into_iter().chain(more)));
    o
}

fn errors_view<'a>(errors: impl Iterator<Item = &'a ReadError>) -> Value {
    Value::Array(errors.map(|e| json!({"path": e.path, "error": e.reason})).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::{CgroupReading, CgroupStats, ModelReading};
    use std::time::Duration;

    fn stats(cpu: f64) -> ProcessStats {
        ProcessStats { cpu_seconds: cpu, resident_bytes: 1 << 20, threads: 3, ..Default::default() }
    }

    fn readings(model_pid: u32, model_cpu: f64, cgroup_cpu: f64) -> Readings {
        Readings {
            vigil: Ok(stats(1.0)),
            model: Some(ModelReading {
                source: PidSource::Name("mlserver".into()),
                pid: Some(model_pid),
                matches: Some(2),
                stats: Ok(stats(model_cpu)),
                errors: vec![ReadError::new("/proc/7/fd", "permission denied")],
            }),
            cgroup: Some(CgroupReading {
                path: "/sys/fs/cgroup".into(),
                stats: CgroupStats { cpu_seconds: Some(cgroup_cpu), ..Default::default() },
                errors: vec![ReadError::new("/sys/fs/cgroup/pids.current", "not found")],
            }),
        }
    }

    fn previous(r: &Readings, at: Instant) -> Previous {
        Previous {
            at,
            vigil_cpu: Some(1.0),
            model_cpu: r.model.as_ref().map(|m| (m.pid.unwrap(), m.stats.as_ref().unwrap().cpu_seconds)),
            cgroup_cpu: r.cgroup.as_ref().unwrap().stats.cpu_seconds,
            cgroup_throttled: None,
        }
    }

    #[test]
    fn the_first_call_has_no_rates() {
        let r = readings(7, 2.0, 10.0);
        let v = view(&r, None, &previous(&r, Instant::now()));
        assert_eq!(v["interval_seconds"], Value::Null);
        assert_eq!(v["model_process"]["cpu_per_second"], Value::Null);
        assert_eq!(v["model_cgroup"]["cpu_per_second"], Value::Null);
        assert_eq!(v["model_process"]["source"], "model_process_name");
        assert_eq!(v["model_process"]["matches"], 2);
        assert_eq!(v["model_process"]["open_fds"], Value::Null);
        assert_eq!(v["model_process"]["errors"][0]["error"], "permission denied");
        assert_eq!(v["model_cgroup"]["pids"], Value::Null);
        assert_eq!(v["model_cgroup"]["errors"][0]["path"], "/sys/fs/cgroup/pids.current");
    }

    #[test]
    fn rates_are_per_second_between_calls_and_restart_safe() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(4);
        let (a, b) = (readings(7, 2.0, 10.0), readings(7, 4.0, 16.0));
        let v = view(&b, Some(&previous(&a, t0)), &previous(&b, t1));
        assert_eq!(v["interval_seconds"], 4.0);
        assert_eq!(v["model_process"]["cpu_per_second"], 0.5);
        assert_eq!(v["model_cgroup"]["cpu_per_second"], 1.5);
        assert_eq!(v["vigil"]["cpu_per_second"], 0.0);
        // The model server restarted: another pid, its CPU counter started again.
        let c = readings(8, 0.5, 17.0);
        let v = view(&c, Some(&previous(&b, t0)), &previous(&c, t1));
        assert_eq!(v["model_process"]["cpu_per_second"], Value::Null);
        assert_eq!(v["model_cgroup"]["cpu_per_second"], 0.25);
        // A cgroup recreated under the same path: the counter went back, no rate.
        let d = readings(8, 0.5, 1.0);
        let v = view(&d, Some(&previous(&c, t0)), &previous(&d, t1));
        assert_eq!(v["model_cgroup"]["cpu_per_second"], Value::Null);
    }

    #[test]
    fn nothing_configured_shows_vigil_only() {
        let ctl = ResourceControl::from_config(&ResourcesConfig::default());
        let r = ctl.read();
        assert!(r.model.is_none() && r.cgroup.is_none());
        let v = view(
            &r,
            None,
            &Previous {
                at: Instant::now(),
                vigil_cpu: None,
                model_cpu: None,
                cgroup_cpu: None,
                cgroup_throttled: None,
            },
        );
        assert_eq!(v["model_process"], Value::Null);
        assert_eq!(v["model_cgroup"], Value::Null);
        assert!(v["vigil"]["resident_memory_bytes"].as_u64().unwrap() > 0);
        assert_eq!(v["vigil"]["pid"], std::process::id());
    }
}
