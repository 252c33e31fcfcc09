//! Progressive rollouts end to end: a good candidate climbs its steps and is promoted; a bad one
//! (a model build that fails half its requests) is detected by the analysis, rolled back at once,
//! audited and alerted while a client keeps calling; the admin API answers errors properly; a
//! restart resumes the rollout in progress.

mod support;

use serde_json::{json, Value};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::*;

const TOKEN: &str = "rollout-token";

fn config(hook: &str) -> String {
    format!(
        "[alerts]\nevaluate_every = \"200ms\"\n\n[[alerts.receivers]]\nname = \"oncall\"\nwebhook = \"{hook}/echo/hook\"\n"
    )
}

/// A client calling through vigil until stopped; counts answers by status class.
struct Client {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    errors: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Client {
    fn start(vigil: &Vigil) -> Client {
        let (stop, ok, errors) =
            (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let (s, o, e, base) = (stop.clone(), ok.clone(), errors.clone(), vigil.url(""));
        let task = tokio::spawn(async move {
            let client = h1_client();
            while !s.load(Ordering::Relaxed) {
                match infer(&client, &base).await {
                    Ok(_) => o.fetch_add(1, Ordering::Relaxed),
                    Err(_) => e.fetch_add(1, Ordering::Relaxed),
                };
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        Client { stop, ok, errors, task }
    }

    async fn stop(self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap();
        (self.ok.load(Ordering::Relaxed), self.errors.load(Ordering::Relaxed))
    }
}

async fn admin(vigil: &Vigil, method: &str, path: &str, body: Option<Value>) -> Resp {
    let text = body.map(|v| v.to_string());
    let auth = format!("Bearer {TOKEN}");
    vigil.admin_req(method, path, text.as_deref(), &[("authorization", &auth), ("x-vigil-actor", "release-bot")]).await
}

async fn rollouts(vigil: &Vigil) -> Value {
    let r = vigil.admin("GET", "/admin/rollouts", None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

/// Waits until the latest finished rollout is in `phase`.
async fn finished(vigil: &Vigil, phase: &str) -> Value {
    poll_for(&format!("the rollout to finish {phase}"), || async {
        let r = rollouts(vigil).await;
        match &r["history"][0] {
            h if h["phase"] == phase && r["current"].is_null() => Ok(h.clone()),
            _ => Err(format!("{r}")),
        }
    })
    .await
}

fn actions(vigil: &Vigil) -> Vec<String> {
    vigil.audit().iter().map(|e| e["action"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_candidate_is_rolled_back_audited_and_alerted() {
    let good = DemoModel::start("v1").await;
    let bad = DemoModel::start_with("v2", &["--error-ratio", "0.5"]).await;
    let hook = Upstream::start("hook").await;
    let vigil = Vigil::builder()
        .config(&config(&hook.url()))
        .upstream("v1", &good.url())
        .upstream("v2", &bad.url())
        .env("VIGIL_ADMIN_TOKEN", TOKEN)
        .start()
        .await;
    let client = Client::start(&vigil);

    let spec = json!({
        "candidate": "v2",
        "steps": [20, 50, 100],
        "step_duration": "3s",
        "analysis": {"interval": "300ms", "threshold": 2, "window": "2s", "min_requests": 10,
                     "metrics": [{"name": "error_rate", "max": 0.1}]},
    });
    let r = admin(&vigil, "POST", "/admin/rollouts", Some(spec)).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let started = r.json();
    assert_eq!((started["phase"].as_str(), started["weight"].as_u64()), (Some("Progressing"), Some(20)));
    assert_eq!(started["stable"], "v1");
    let v = vigil.versions().await;
    let weight = |v: &Value, name: &str| {
        v["versions"].as_array().unwrap().iter().find(|x| x["name"] == name).unwrap()["weight"].clone()
    };
    assert_eq!(weight(&v, "v2"), 20, "{v}");

    // Detected and rolled back by the analysis, not by anyone here.
    let done = finished(&vigil, "RolledBack").await;
    assert_eq!(done["weight"], 0);
    assert!(done["message"].as_str().unwrap().contains("error_rate"), "{done}");
    let check = &done["analysis"][0];
    assert_eq!((check["metric"].as_str(), check["result"].as_str()), (Some("error_rate"), Some("fail")));
    assert!(check["value"].as_f64().unwrap() > 0.1, "{check}");
    assert_eq!(done["step"], 0, "it never left the first step");
    let v = vigil.versions().await;
    assert_eq!(v["active"], "v1");
    assert_eq!(weight(&v, "v2"), 0);

    // The client kept being served: after the rollback every answer comes from v1. (The client
    // sends one request at a time: once one more has answered, none started before the rollback.)
    let ok_now = client.ok.load(Ordering::Relaxed);
    eventually("an answer after the rollback", || async { client.ok.load(Ordering::Relaxed) > ok_now }).await;
    let (ok_before, errors_before) = (client.ok.load(Ordering::Relaxed), client.errors.load(Ordering::Relaxed));
    eventually("more answers after the rollback", || async { client.ok.load(Ordering::Relaxed) >= ok_before + 30 })
        .await;
    let (ok, errors) = client.stop().await;
    assert_eq!(errors, errors_before, "no errors once v2 is out");
    assert!(ok > 0 && errors > 0, "v2 failed some answers before it was caught: ok {ok}, errors {errors}");

    // Audited: who started it, and vigil's rollback with the failed analysis as its reason.
    let audit = vigil.audit();
    let start = audit.iter().find(|e| e["action"] == "rollout.start").expect("rollout.start audited");
    assert_eq!(start["actor"], "release-bot");
    assert_eq!(start["target"], "v2");
    let back = audit.iter().find(|e| e["action"] == "rollout.rollback").expect("rollout.rollback audited");
    assert_eq!(back["actor"], "vigil");
    assert_eq!(back["detail"]["phase"], "RolledBack");
    assert_eq!(back["detail"]["analysis"][0]["result"], "fail");
    let after_weight =
        back["after"]["versions"].as_array().unwrap().iter().find(|x| x["name"] == "v2").unwrap()["weight"].clone();
    assert_eq!(after_weight, 0);

    // Alerted: the built-in VigilRolloutRolledBack fires and reaches the webhook.
    let alert = poll_for("the rollback alert at the webhook", || async {
        hook.requests_to("/echo/hook")
            .iter()
            .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap())
            .find(|p| p["groupLabels"]["alertname"] == "VigilRolloutRolledBack")
            .ok_or("none yet".to_owned())
    })
    .await;
    assert_eq!(alert["status"], "firing");
    assert_eq!(alert["alerts"][0]["labels"]["candidate"], "v2");
    assert_eq!(alert["alerts"][0]["labels"]["severity"], "critical");
    assert!(actions(&vigil).contains(&"alert.firing".to_owned()));
    vigil.wait_metric("vigil_rollout_failed", &[("candidate", "v2")], 1.0).await;

    // The owners' report tells the story: the incident and the automatic rollback.
    let report = vigil.admin("GET", "/admin/report?format=json", None).await.json();
    let incident = report["incidents"].as_array().unwrap().iter().find(|i| i["alert"] == "VigilRolloutRolledBack");
    assert!(incident.is_some_and(|i| i["labels"]["candidate"] == "v2"), "{}", report["incidents"]);
    let changes: Vec<&str> =
        report["changes"].as_array().unwrap().iter().map(|c| c["summary"].as_str().unwrap()).collect();
    assert!(
        changes.iter().any(|c| c.starts_with("vigil rolled the rollout of v2 back automatically: analysis failed")),
        "{changes:?}"
    );

    // The whole trail still verifies.
    let out = Command::new(BIN).args(["audit", "verify", "--state-dir"]).arg(&vigil.state_dir).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_candidate_climbs_its_steps_and_is_promoted() {
    let (m1, m2) = (DemoModel::start("v1").await, DemoModel::start("v2").await);
    let vigil = Vigil::builder()
        .config("[alerts]\nevaluate_every = \"200ms\"\n")
        .upstream("v1", &m1.url())
        .upstream("v2", &m2.url())
        .env("VIGIL_ADMIN_TOKEN", TOKEN)
        .start()
        .await;
    let client = Client::start(&vigil);
    let spec = json!({"candidate": "v2", "steps": [30, 60], "step_duration": "1s",
                      "analysis": {"interval": "200ms", "window": "2s", "min_requests": 5}});
    let r = admin(&vigil, "POST", "/admin/rollouts", Some(spec)).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_owned();
    let done = finished(&vigil, "Succeeded").await;
    assert_eq!(done["id"], id);
    assert_eq!(done["weight"], 100);
    assert_eq!(done["failed_checks"], 0);
    // The default analysis: error rate, p99 latency, alerts on the candidate; all passed.
    let metrics: Vec<&str> =
        done["analysis"].as_array().unwrap().iter().map(|c| c["metric"].as_str().unwrap()).collect();
    assert_eq!(metrics, ["error_rate", "latency_p99_seconds", "alerts"]);
    assert!(done["analysis"].as_array().unwrap().iter().all(|c| c["result"] == "pass"), "{done}");
    let v = vigil.versions().await;
    assert_eq!((v["active"].as_str(), v["previous"].as_str()), (Some("v2"), Some("v1")));
    let (_, errors) = client.stop().await;
    assert_eq!(errors, 0);
    let trail: Vec<String> = actions(&vigil).into_iter().filter(|a| a.starts_with("rollout.")).collect();
    assert_eq!(trail, ["rollout.start", "rollout.step", "rollout.promote"]);
    let m = vigil.metrics().await;
    assert_eq!(m.sum("vigil_rollout_phase", &[("candidate", "v2"), ("phase", "Succeeded")]), 1.0);
    assert_eq!(m.sum("vigil_rollout_failed", &[("candidate", "v2")]), 0.0);
}

#[tokio::test]
async fn the_api_refuses_what_it_cannot_do_and_pauses_resumes_aborts() {
    let (m1, m2) = (DemoModel::start("v1").await, DemoModel::start("v2").await);
    let vigil = Vigil::builder()
        .upstream("v1", &m1.url())
        .upstream("v2", &m2.url())
        .env("VIGIL_ADMIN_TOKEN", TOKEN)
        .start()
        .await;
    let spec = json!({"candidate": "v2", "steps": [10, 100], "step_duration": "1h"});
    let r = vigil.admin("POST", "/admin/rollouts", Some(spec.clone())).await;
    assert_eq!(r.status, 401, "no token");
    let err = |r: &Resp| {
        (
            r.status,
            r.json()["kind"].as_str().unwrap_or("").to_owned(),
            r.json()["error"].as_str().unwrap_or("").to_owned(),
        )
    };
    let r = admin(&vigil, "POST", "/admin/rollouts", Some(json!({"candidate": "v9"}))).await;
    assert_eq!(err(&r).0, 404, "{}", r.text());
    let r = admin(&vigil, "POST", "/admin/rollouts", Some(json!({"candidate": "v1"}))).await;
    assert_eq!(err(&r).0, 409, "the active version");
    let r = admin(&vigil, "POST", "/admin/rollouts", Some(json!({"candidate": "v2", "steps": [50, 20]}))).await;
    let (status, _, msg) = err(&r);
    assert_eq!(status, 400);
    assert!(msg.contains("steps") && msg.contains("rising"), "{msg}");
    let r = admin(
        &vigil,
        "POST",
        "/admin/rollouts",
        Some(json!({"candidate": "v2", "analysis": {"metrics": [{"name": "nope", "max": 1}]}})),
    )
    .await;
    assert!(err(&r).2.contains("analysis.metrics[0].name"), "{}", r.text());
    let r = admin(&vigil, "POST", "/admin/rollouts", Some(json!({"candidate": "v2", "stpes": [1]}))).await;
    assert!(err(&r).2.contains("stpes"), "unknown fields are named: {}", r.text());

    let r = admin(&vigil, "POST", "/admin/rollouts", Some(spec.clone())).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_owned();
    let r = admin(&vigil, "POST", "/admin/rollouts", Some(spec)).await;
    assert_eq!(err(&r).0, 409, "one rollout at a time");
    assert_eq!(err(&r).1, "rollout_in_progress");

    let r = admin(&vigil, "POST", &format!("/admin/rollouts/{id}/pause"), None).await;
    assert_eq!((r.status.as_u16(), r.json()["phase"].as_str()), (200, Some("Paused")));
    let r = admin(&vigil, "POST", &format!("/admin/rollouts/{id}/pause"), None).await;
    assert_eq!(r.status, 409, "already paused");
    let r = admin(&vigil, "POST", &format!("/admin/rollouts/{id}/resume"), None).await;
    assert_eq!(r.json()["phase"], "Progressing");
    let r = admin(&vigil, "POST", "/admin/rollouts/r-nope/abort", None).await;
    assert_eq!(err(&r).0, 404);
    let r = admin(&vigil, "POST", &format!("/admin/rollouts/{id}/explode"), None).await;
    assert_eq!(r.status, 404);
    let r = admin(&vigil, "GET", &format!("/admin/rollouts/{id}/abort"), None).await;
    assert_eq!(r.status, 405);
    let r = admin(&vigil, "POST", &format!("/admin/rollouts/{id}/abort"), None).await;
    assert_eq!((r.status.as_u16(), r.json()["phase"].as_str()), (200, Some("Aborted")));
    let v = vigil.versions().await;
    assert_eq!(v["versions"][1]["weight"], 0, "{v}");
    let r = admin(&vigil, "POST", &format!("/admin/rollouts/{id}/abort"), None).await;
    assert_eq!(err(&r).1, "rollout_finished");
    let trail: Vec<String> = actions(&vigil).into_iter().filter(|a| a.starts_with("rollout.")).collect();
    assert_eq!(trail, ["rollout.start", "rollout.pause", "rollout.resume", "rollout.abort"]);
}

#[tokio::test]
async fn a_restart_resumes_the_rollout_in_progress() {
    let (m1, m2) = (DemoModel::start("v1").await, DemoModel::start("v2").await);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let start = || {
        Vigil::builder()
            .upstream("v1", &m1.url())
            .upstream("v2", &m2.url())
            .state_dir(&state)
            .env("VIGIL_ADMIN_TOKEN", TOKEN)
            .start()
    };
    let vigil = start().await;
    let spec = json!({"candidate": "v2", "steps": [25, 100], "step_duration": "1h"});
    let r = admin(&vigil, "POST", "/admin/rollouts", Some(spec)).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let id = r.json()["id"].clone();
    vigil.stop().await;

    let vigil = start().await;
    let r = rollouts(&vigil).await;
    assert_eq!(r["current"]["id"], id);
    assert_eq!((r["current"]["phase"].as_str(), r["current"]["weight"].as_u64()), (Some("Progressing"), Some(25)));
    let v = vigil.versions().await;
    assert_eq!(v["versions"][1]["weight"], 25, "state.json kept the step's weight: {v}");
}
