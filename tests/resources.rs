//! `[resources]`: the model server's process and cgroup figures in /metrics and
//! GET /admin/resources, read from a real `vigil demo-model` child process and from cgroup v2
//! fixture files; failed readings leave their metrics out and are counted, never an error.

mod support;

use serde_json::Value;
use std::path::Path;
use support::*;

const ERRORS: &str = "vigil_resource_read_errors_total";

fn config(resources: &str) -> String {
    format!("[resources]\n{resources}\n")
}

/// The files of a cgroup v2 directory of a container with CPU and memory limits.
fn cgroup_fixture(dir: &Path) {
    let files = [
        (
            "cpu.stat",
            "usage_usec 12500000\nuser_usec 10000000\nsystem_usec 2500000\nnr_periods 400\n\
             nr_throttled 25\nthrottled_usec 1500000\nnr_bursts 0\nburst_usec 0\n",
        ),
        ("memory.current", "536870912\n"),
        ("memory.max", "1073741824\n"),
        ("memory.stat", "anon 402653184\nfile 100663296\nkernel 8388608\nfile_mapped 1048576\n"),
        ("memory.events", "low 0\nhigh 0\nmax 12\noom 3\noom_kill 2\noom_group_kill 0\n"),
        ("pids.current", "17\n"),
    ];
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
}

fn value(m: &Metrics, name: &str) -> Option<f64> {
    let mut it = m.matching(name, &[]);
    let v = it.next().map(|s| s.value);
    assert!(it.next().is_none(), "{name} has more than one sample");
    v
}

async fn resources(vigil: &Vigil) -> Value {
    let r = vigil.admin("GET", "/admin/resources", None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    r.json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_model_process_is_measured_by_pid() {
    let model = DemoModel::start("v1").await;
    let vigil = Vigil::builder()
        .config(&config(&format!("model_pid = {}", model.pid())))
        .upstream("v1", &model.url())
        .start()
        .await;
    let m = vigil.metrics().await;
    let rss = value(&m, "vigil_model_process_resident_memory_bytes").expect("model RSS");
    assert!(rss > 0.0, "{rss}");
    let cpu = value(&m, "vigil_model_process_cpu_seconds_total").expect("model CPU");
    assert!(cpu >= 0.0, "{cpu}");
    assert!(value(&m, "vigil_model_process_threads").expect("model threads") >= 1.0);
    assert!(value(&m, "vigil_model_process_open_fds").expect("model fds (same uid)") >= 3.0);
    assert!(value(&m, "vigil_model_process_start_time_seconds").expect("model start") > 1.0e9);
    // vigil's own, as before, plus its thread count.
    assert!(value(&m, "process_resident_memory_bytes").unwrap() > 0.0);
    assert!(value(&m, "vigil_process_threads").unwrap() >= 1.0);
    assert!(m.text.contains("# TYPE vigil_model_process_cpu_seconds_total counter\n"));
    assert_eq!(m.sum(ERRORS, &[("source", "model_process")]), 0.0);
    assert_eq!(m.matching(ERRORS, &[("source", "model_process")]).count(), 1, "registered at 0");
    assert!(!m.has("vigil_model_cgroup_cpu_seconds_total"), "no cgroup configured");

    let first = resources(&vigil).await;
    assert_eq!(first["interval_seconds"], Value::Null, "{first}");
    let p = &first["model_process"];
    assert_eq!(p["source"], "model_pid");
    assert_eq!(p["pid"], model.pid());
    assert!(p["resident_memory_bytes"].as_u64().unwrap() > 0, "{p}");
    assert_eq!(p["cpu_per_second"], Value::Null, "the first call has no rate");
    assert_eq!(p["errors"], serde_json::json!([]));
    assert_eq!(first["vigil"]["pid"], vigil.pid());
    assert_eq!(first["model_cgroup"], Value::Null);

    // Some work for the model between the two readings; the rate is over the interval between calls.
    infer(&h1_client(), &vigil.url("")).await.unwrap();
    let second = resources(&vigil).await;
    assert!(second["interval_seconds"].as_f64().unwrap() > 0.0, "{second}");
    assert!(second["model_process"]["cpu_per_second"].as_f64().unwrap() >= 0.0, "{second}");
    assert!(second["vigil"]["cpu_per_second"].as_f64().unwrap() >= 0.0, "{second}");

    let r = vigil.admin("POST", "/admin/resources", None).await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pid_file_is_read_again_so_a_restarted_model_is_followed() {
    let (a, b) = (DemoModel::start("v1").await, DemoModel::start("v2").await);
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("model.pid");
    std::fs::write(&pid_file, format!("{}\n", a.pid())).unwrap();
    let vigil = Vigil::builder()
        .config(&config(&format!("model_pid_file = {:?}", pid_file.display().to_string())))
        .upstream("v1", &a.url())
        .start()
        .await;
    let v = resources(&vigil).await;
    assert_eq!(v["model_process"]["source"], "model_pid_file");
    assert_eq!(v["model_process"]["pid_file"], pid_file.display().to_string());
    assert_eq!(v["model_process"]["pid"], a.pid());

    // The server restarted under another pid and rewrote its file.
    std::fs::write(&pid_file, format!("{}\n", b.pid())).unwrap();
    let v = resources(&vigil).await;
    assert_eq!(v["model_process"]["pid"], b.pid());
    assert_eq!(v["model_process"]["cpu_per_second"], Value::Null, "no rate across pids");
    assert!(value(&vigil.metrics().await, "vigil_model_process_resident_memory_bytes").unwrap() > 0.0);

    // Between the old server's exit and the new one's start, the file is gone: no figures.
    std::fs::remove_file(&pid_file).unwrap();
    let m = vigil.metrics().await;
    assert!(!m.has("vigil_model_process_resident_memory_bytes"));
    assert_eq!(m.sum(ERRORS, &[("source", "model_process")]), 1.0);
    let v = resources(&vigil).await;
    assert_eq!(v["model_process"]["pid"], Value::Null);
    assert_eq!(v["model_process"]["errors"][0]["error"], "not found", "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_model_process_is_found_by_name() {
    let version = format!("by-name-{}", std::process::id());
    let model = DemoModel::start(&version).await;
    let vigil = Vigil::builder()
        .config(&config(&format!("model_process_name = {version:?}")))
        .upstream("v1", &model.url())
        .start()
        .await;
    let v = resources(&vigil).await;
    let p = &v["model_process"];
    assert_eq!(
        (&p["source"], &p["name"], &p["matches"]),
        (&"model_process_name".into(), &version.clone().into(), &1.into())
    );
    assert_eq!(p["pid"], model.pid());
    assert!(value(&vigil.metrics().await, "vigil_model_process_resident_memory_bytes").unwrap() > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_pid_or_an_unmatched_name_gives_no_metric_and_an_error_count() {
    let gone = DemoModel::start("v1").await;
    let dead = gone.pid();
    drop(gone); // killed and reaped: the pid is free
    let up = Upstream::start("u1").await;
    let vigil =
        Vigil::builder().config(&config(&format!("model_pid = {dead}"))).upstream("v1", &up.url()).start().await;
    let m = vigil.metrics().await;
    assert!(!m.text.contains("vigil_model_process_"), "{}", m.text);
    assert_eq!(m.sum(ERRORS, &[("source", "model_process")]), 1.0, "counted in the same scrape");
    assert!(value(&m, "process_resident_memory_bytes").unwrap() > 0.0, "vigil's own figures stay");
    assert_eq!(vigil.metrics().await.sum(ERRORS, &[("source", "model_process")]), 2.0, "one per scrape");
    let v = resources(&vigil).await;
    assert_eq!(v["model_process"]["pid"], dead);
    assert_eq!(v["model_process"]["resident_memory_bytes"], Value::Null);
    assert_eq!(v["model_process"]["errors"][0]["path"], format!("/proc/{dead}/stat"));
    assert_eq!(v["model_process"]["errors"][0]["error"], "not found");
    drop(vigil);

    let name = "no-such-model-server-7f3a";
    let vigil = Vigil::builder()
        .config(&config(&format!("model_process_name = {name:?}")))
        .upstream("v1", &up.url())
        .start()
        .await;
    let m = vigil.metrics().await;
    assert!(!m.text.contains("vigil_model_process_"));
    assert_eq!(m.sum(ERRORS, &[("source", "model_process")]), 1.0);
    let v = resources(&vigil).await;
    assert_eq!(v["model_process"]["pid"], Value::Null);
    assert_eq!(v["model_process"]["errors"][0]["error"], format!("no process matches {name:?}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cgroup_directory_gives_the_cgroup_metrics() {
    let cg = tempfile::tempdir().unwrap();
    cgroup_fixture(cg.path());
    let up = Upstream::start("u1").await;
    let cg_path = cg.path().display().to_string();
    let vigil = Vigil::builder()
        .config(&config(&format!("model_cgroup = {cg_path:?}")))
        .upstream("v1", &up.url())
        .start()
        .await;
    let m = vigil.metrics().await;
    let expected = [
        ("vigil_model_cgroup_cpu_seconds_total", 12.5),
        ("vigil_model_cgroup_cpu_user_seconds_total", 10.0),
        ("vigil_model_cgroup_cpu_system_seconds_total", 2.5),
        ("vigil_model_cgroup_cpu_periods_total", 400.0),
        ("vigil_model_cgroup_cpu_throttled_periods_total", 25.0),
        ("vigil_model_cgroup_cpu_throttled_seconds_total", 1.5),
        ("vigil_model_cgroup_memory_bytes", 536870912.0),
        ("vigil_model_cgroup_memory_limit_bytes", 1073741824.0),
        ("vigil_model_cgroup_memory_anon_bytes", 402653184.0),
        ("vigil_model_cgroup_memory_file_bytes", 100663296.0),
        ("vigil_model_cgroup_oom_events_total", 3.0),
        ("vigil_model_cgroup_oom_kills_total", 2.0),
        ("vigil_model_cgroup_pids", 17.0),
    ];
    for (name, v) in expected {
        assert_eq!(value(&m, name), Some(v), "{name}");
    }
    assert_eq!(m.sum(ERRORS, &[("source", "model_cgroup")]), 0.0);
    assert!(!m.text.contains("vigil_model_process_"), "no model process configured");

    let first = resources(&vigil).await;
    let c = &first["model_cgroup"];
    assert_eq!(c["path"], cg_path);
    assert_eq!((c["memory_limit_bytes"].as_u64(), c["oom_kills"].as_u64()), (Some(1 << 30), Some(2)));
    assert_eq!(c["cpu_per_second"], Value::Null);
    assert_eq!(first["model_process"], Value::Null);
    // The model used another 2 s of CPU, 0.5 s of it throttled.
    std::fs::write(
        cg.path().join("cpu.stat"),
        "usage_usec 14500000\nuser_usec 12000000\nsystem_usec 2500000\nnr_periods 420\nnr_throttled 30\nthrottled_usec 2000000\n",
    )
    .unwrap();
    let second = resources(&vigil).await;
    let interval = second["interval_seconds"].as_f64().unwrap();
    let c = &second["model_cgroup"];
    assert!((c["cpu_per_second"].as_f64().unwrap() - 2.0 / interval).abs() < 1e-9 * (2.0 / interval), "{second}");
    assert!(c["cpu_throttled_per_second"].as_f64().unwrap() > 0.0, "{second}");

    // No memory limit: the limit metric is absent, and that is no error.
    std::fs::write(cg.path().join("memory.max"), "max\n").unwrap();
    // pids.current gone (pids controller off): that figure alone is missing, and counted.
    std::fs::remove_file(cg.path().join("pids.current")).unwrap();
    let m = vigil.metrics().await;
    assert_eq!(value(&m, "vigil_model_cgroup_memory_limit_bytes"), None);
    assert_eq!(value(&m, "vigil_model_cgroup_pids"), None);
    assert_eq!(value(&m, "vigil_model_cgroup_memory_bytes"), Some(536870912.0));
    assert_eq!(m.sum(ERRORS, &[("source", "model_cgroup")]), 1.0);
    let v = resources(&vigil).await;
    assert_eq!(v["model_cgroup"]["memory_limit_bytes"], Value::Null);
    assert_eq!(v["model_cgroup"]["errors"][0]["path"], format!("{cg_path}/pids.current"));
    assert_eq!(v["model_cgroup"]["errors"].as_array().unwrap().len(), 1);
}

#[test]
fn a_missing_cgroup_directory_is_a_config_error_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("vigil.toml");
    std::fs::write(
        &file,
        "[resources]\nmodel_cgroup = \"/nonexistent/kubepods.slice\"\n\n[[versions]]\nname = \"v1\"\nurl = \"http://127.0.0.1:1\"\n",
    )
    .unwrap();
    let out = run_to_exit(&["check-config", file.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("resources.model_cgroup") && stderr.contains("/nonexistent/kubepods.slice"), "{stderr}");
}
