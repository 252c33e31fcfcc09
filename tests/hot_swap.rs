//! Version swaps under load lose no request, and the active version survives a restart.

mod support;

use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_swaps_under_load_lose_no_request() {
    let (m1, m2) = (DemoModel::start("v1").await, DemoModel::start("v2").await);
    let vigil = Vigil::builder().upstream("v1", &m1.url()).upstream("v2", &m2.url()).start().await;
    let base = format!("http://{}", vigil.proxy);

    let stop = Arc::new(AtomicBool::new(false));
    let mut loops = Vec::new();
    for _ in 0..4 {
        let (stop, base) = (stop.clone(), base.clone());
        loops.push(tokio::spawn(async move {
            let client = h1_client();
            let (mut ok, mut failures) = (0u64, Vec::new());
            while !stop.load(Ordering::Relaxed) {
                match infer(&client, &base).await {
                    Ok(v) if v == "v1" || v == "v2" => ok += 1,
                    Ok(v) => failures.push(format!("answered by model_version {v:?}")),
                    Err(e) => failures.push(e),
                }
            }
            (ok, failures)
        }));
    }

    let swapper = h1_client();
    for i in 0..100 {
        let r = vigil.admin("POST", "/admin/versions/v2/activate", None).await;
        assert_eq!(r.status, 200, "swap {i}: {}", r.text());
        assert_eq!(infer(&swapper, &base).await.unwrap(), "v2", "after activating v2 (swap {i})");
        let r = vigil.admin("POST", "/admin/rollback", None).await;
        assert_eq!(r.status, 200, "swap {i}: {}", r.text());
        assert_eq!(infer(&swapper, &base).await.unwrap(), "v1", "after rolling back (swap {i})");
    }
    stop.store(true, Ordering::Relaxed);

    let (mut total, mut failures) = (0, Vec::new());
    for l in loops {
        let (ok, f) = l.await.unwrap();
        assert!(ok > 0, "a client loop made no successful request");
        total += ok;
        failures.extend(f);
    }
    assert!(failures.is_empty(), "{} of {} requests failed, e.g. {:?}", failures.len(), total, &failures[..1]);

    let m = vigil.metrics().await;
    let all: f64 = m.sum("vigil_requests_total", &[]);
    let ok: f64 = m.sum("vigil_requests_total", &[("code", "200")]);
    assert_eq!(all, ok, "non-200 answers counted:\n{}", m.text);
    assert_eq!(all, (total + 200) as f64);
    assert_eq!(vigil.audit().len(), 200);
    assert_eq!(m.sum("vigil_upstream_errors_total", &[]), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_the_active_version_and_weights() {
    let (m1, m2) = (DemoModel::start("v1").await, DemoModel::start("v2").await);
    let state = tempfile::tempdir().unwrap();
    let config = format!(
        "[routing]\nactive = \"v1\"\n\n\
         [[versions]]\nname = \"v1\"\nurl = \"{}\"\n\n\
         [[versions]]\nname = \"v2\"\nurl = \"{}\"\n",
        m1.url(),
        m2.url()
    );
    let client = h1_client();

    let vigil = Vigil::builder().config(&config).state_dir(state.path()).start().await;
    assert_eq!(infer(&client, &vigil.url("")).await.unwrap(), "v1");
    assert_eq!(vigil.admin("POST", "/admin/versions/v2/activate", None).await.status, 200);
    assert_eq!(vigil.admin("PUT", "/admin/versions/v1", Some(json!({"weight": 25}))).await.status, 200);
    // A version registered at run time survives too.
    let r = vigil.admin("PUT", "/admin/versions/v3", Some(json!({"url": m1.url(), "protocol": "http1"}))).await;
    assert_eq!(r.status, 201);
    let status = vigil.stop().await;
    assert_eq!(status.code(), Some(0));

    let vigil = Vigil::builder().config(&config).state_dir(state.path()).start().await;
    let view = vigil.versions().await;
    assert_eq!(view["active"], "v2", "{view}");
    assert_eq!(view["previous"], "v1", "{view}");
    let v1 = view["versions"].as_array().unwrap().iter().find(|v| v["name"] == "v1").unwrap();
    assert_eq!(v1["weight"], 25, "{view}");
    assert_eq!(v1["traffic_share"], 25, "{view}");
    assert!(vigil.stderr().contains("restored from state"), "{}", vigil.stderr());
    let v3 = view["versions"].as_array().unwrap().iter().find(|v| v["name"] == "v3").expect("v3 restored");
    assert_eq!((&v3["url"], &v3["protocol"], &v3["weight"]), (&json!(m1.url()), &json!("http1"), &json!(0)));

    // Take v1's canary weight away: everything goes to v2.
    assert_eq!(vigil.admin("PUT", "/admin/versions/v1", Some(json!({"weight": 0}))).await.status, 200);
    let client = h1_client();
    for _ in 0..20 {
        assert_eq!(infer(&client, &vigil.url("")).await.unwrap(), "v2");
    }
    // Rollback still knows where to go after the restart.
    assert_eq!(vigil.admin("POST", "/admin/rollback", None).await.json()["active"], "v1");
    assert_eq!(infer(&client, &vigil.url("")).await.unwrap(), "v1");
}

#[test]
fn a_corrupt_state_file_stops_the_start() {
    let state = tempfile::tempdir().unwrap();
    std::fs::write(state.path().join("state.json"), "{ not json").unwrap();
    let out = run_to_exit(
        &[
            "run",
            "--upstream",
            "v1=http://127.0.0.1:9",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--state-dir",
            state.path().to_str().unwrap(),
        ],
        &[],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "vigil started on a corrupt state file");
    assert!(stderr.contains("state.json") && stderr.contains("state.dir"), "{stderr}");
}

/// A SIGKILL (OOM killer, node failure) gives vigil no chance to flush anything: every routing
/// change must already be on disk when the admin API answered it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_after_a_change_loses_neither_the_change_nor_its_audit_line() {
    let (m1, m2) = (DemoModel::start("v1").await, DemoModel::start("v2").await);
    let state = tempfile::tempdir().unwrap();
    let config = format!(
        "[[versions]]\nname = \"v1\"\nurl = \"{}\"\n\n[[versions]]\nname = \"v2\"\nurl = \"{}\"\n",
        m1.url(),
        m2.url()
    );
    let mut vigil = Vigil::builder().config(&config).state_dir(state.path()).start().await;
    assert_eq!(vigil.admin("POST", "/admin/versions/v2/activate", None).await.status, 200);
    assert_eq!(vigil.admin("PUT", "/admin/versions/v1", Some(json!({"weight": 10}))).await.status, 200);
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(vigil.pid() as libc::pid_t, libc::SIGKILL) };
    let status = vigil.wait_exit().await;
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(libc::SIGKILL));

    let vigil = Vigil::builder().config(&config).state_dir(state.path()).start().await;
    let view = vigil.versions().await;
    assert_eq!(view["active"], "v2", "{view}");
    let v1 = view["versions"].as_array().unwrap().iter().find(|v| v["name"] == "v1").unwrap();
    assert_eq!(v1["traffic_share"], 10, "{view}");
    let audit = vigil.audit();
    let actions: Vec<&str> = audit.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["version.activate", "version.put"], "{audit:?}");
    assert_eq!(audit[1]["after"]["active"], "v2");
}
