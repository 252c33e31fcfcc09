//! `[alerts]`: rules evaluated on vigil's own /metrics fire, notify, resolve and are audited;
//! notifications reach a webhook in Alertmanager's webhook format and a real Alertmanager
//! (Debian's `prometheus-alertmanager`) through its API, and Alertmanager's own webhook post has
//! the same shape as vigil's. The shipped `config/prometheus-rules.yml` passes `promtool`.

mod support;

use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::*;

/// A rule that fires when more than 20% of a version's answers over 2 s are 5xx.
fn config(receivers: &str) -> String {
    format!(
        r#"
[alerts]
evaluate_every = "200ms"
builtin_rules = false

[[alerts.rules]]
alert = "HighErrors"
figure = "error_ratio"
window = "2s"
above = 0.2
for = "400ms"
severity = "critical"
annotations = {{ summary = "{{{{ $labels.version }}}} errors at {{{{ $value }}}}", retrain = "{{{{ $exportURL }}}}" }}

{receivers}
"#
    )
}

/// Sends inferences through vigil until `stop` is set.
fn traffic(vigil: &Vigil, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<()> {
    let base = vigil.url("");
    tokio::spawn(async move {
        let client = h1_client();
        while !stop.load(Ordering::Relaxed) {
            let _ = infer(&client, &base).await;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
}

async fn alerts(vigil: &Vigil) -> Value {
    let r = vigil.admin("GET", "/admin/alerts", None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

async fn wait_state(vigil: &Vigil, alert: &str, state: Option<&str>) -> Value {
    poll_for(&format!("{alert} to be {state:?}"), || async {
        let a = alerts(vigil).await;
        let found = a["alerts"].as_array().unwrap().iter().find(|x| x["alert"] == alert).cloned();
        match (state, found) {
            (Some(s), Some(x)) if x["state"] == s => Ok(x),
            (None, None) => Ok(a),
            (_, other) => Err(format!("{other:?}")),
        }
    })
    .await
}

/// The JSON bodies posted to `prefix` on the hook server.
fn posts(hook: &Upstream, prefix: &str) -> Vec<Value> {
    hook.requests_to(prefix).iter().map(|r| serde_json::from_slice(&r.body).expect("JSON post")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_rate_alert_fires_notifies_resolves_and_is_audited() {
    let model = DemoModel::start_with("v1", &["--error-ratio", "0.5"]).await;
    let hook = Upstream::start("hook").await;
    let receivers = format!("[[alerts.receivers]]\nname = \"oncall\"\nwebhook = \"{}/echo/hook\"\n", hook.url());
    let vigil = Vigil::builder().config(&config(&receivers)).upstream("v1", &model.url()).start().await;

    let before = alerts(&vigil).await;
    assert_eq!(before["rules"][0]["alert"], "HighErrors");
    assert_eq!(before["rules"][0]["for"], "400ms");
    assert_eq!(before["receivers"][0], json!({"name": "oncall", "kind": "webhook"}));

    let stop = Arc::new(AtomicBool::new(false));
    let load = traffic(&vigil, stop.clone());
    let firing = wait_state(&vigil, "HighErrors", Some("firing")).await;
    assert_eq!(firing["labels"]["version"], "v1");
    assert_eq!(firing["labels"]["severity"], "critical");
    assert_eq!(firing["labels"]["alertname"], "HighErrors");
    let value = firing["value"].as_f64().unwrap();
    assert!((0.3..=0.7).contains(&value), "every 2nd answer is a 500: {value}");
    assert!(firing["firing_since"].is_string());
    vigil.wait_metric("vigil_alerts_firing", &[("rule", "HighErrors")], 1.0).await;

    // The webhook got Alertmanager's payload.
    let sent = poll_for("the firing notification", || async {
        posts(&hook, "/echo/hook").into_iter().find(|p| p["status"] == "firing").ok_or("none yet".to_owned())
    })
    .await;
    assert_eq!(sent["version"], "4");
    assert_eq!(sent["receiver"], "oncall");
    assert_eq!(sent["groupLabels"], json!({"alertname": "HighErrors"}));
    assert_eq!(sent["commonLabels"]["version"], "v1");
    let alert = &sent["alerts"][0];
    assert_eq!(alert["status"], "firing");
    assert_eq!(alert["endsAt"], "0001-01-01T00:00:00Z");
    assert!(alert["annotations"]["summary"].as_str().unwrap().starts_with("v1 errors at 0."), "{alert}");
    // The retraining hook: a URL of the labelled export of that version.
    let retrain = alert["annotations"]["retrain"].as_str().unwrap();
    assert!(retrain.starts_with(&format!("{}/admin/export?labelled=true&format=parquet&since=", vigil.admin_url(""))));
    assert!(retrain.ends_with("&version=v1"), "{retrain}");
    let hook_req = &hook.requests_to("/echo/hook")[0];
    assert_eq!(hook_req.headers["content-type"], "application/json");

    // Traffic stops: after the window there is no error ratio, and the alert resolves.
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();
    let after = wait_state(&vigil, "HighErrors", None).await;
    assert_eq!(after["recent"][0]["alert"], "HighErrors");
    assert!(after["recent"][0]["resolved_at"].is_string());
    let resolved = poll_for("the resolved notification", || async {
        posts(&hook, "/echo/hook").into_iter().find(|p| p["status"] == "resolved").ok_or("none yet".to_owned())
    })
    .await;
    assert_ne!(resolved["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
    vigil.wait_metric("vigil_alerts_firing", &[("rule", "HighErrors")], 0.0).await;
    let m = vigil.metrics().await;
    assert!(m.sum("vigil_alert_notifications_total", &[("receiver", "oncall"), ("result", "ok")]) >= 2.0);

    // Both transitions are in the audit trail, by vigil.
    let audit = vigil.audit();
    let of = |action: &str| audit.iter().filter(|e| e["action"] == action).cloned().collect::<Vec<_>>();
    let (f, r) = (of("alert.firing"), of("alert.resolved"));
    assert_eq!((f.len(), r.len()), (1, 1), "{audit:?}");
    assert_eq!(f[0]["actor"], "vigil");
    assert_eq!(f[0]["target"], "HighErrors");
    assert_eq!(f[0]["after"]["labels"]["version"], "v1");
    assert_eq!(f[0]["after"]["severity"], "critical");
    assert!(r[0]["after"]["resolved_at"].is_string());
}

#[tokio::test]
async fn alerts_answer_404_when_off_and_rules_are_checked_at_start() {
    let model = DemoModel::start("v1").await;
    let vigil = Vigil::builder().config("[alerts]\nenabled = false\n").upstream("v1", &model.url()).start().await;
    let r = vigil.admin("GET", "/admin/alerts", None).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["kind"], "alerts_disabled");
    let r = vigil.admin("DELETE", "/admin/alerts", None).await;
    assert_eq!(r.status, 405);

    // A rule on a figure vigil does not have fails at start, naming the key, value and choices.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vigil.toml");
    std::fs::write(
        &path,
        "[[alerts.rules]]\nalert = \"X\"\nfigure = \"vigil_no_such_gauge\"\nabove = 1\n[[versions]]\nname = \"v1\"\nurl = \"http://127.0.0.1:1\"\n",
    )
    .unwrap();
    let out = Command::new(BIN).args(["check-config"]).arg(&path).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("alerts.rules[0].figure") && err.contains("vigil_no_such_gauge"), "{err}");
    assert!(err.contains("error_ratio"), "the choices are listed: {err}");
}

// ---------------------------------------------------------------------------------------------
// Real Alertmanager and promtool (Debian's prometheus-alertmanager and prometheus packages;
// .ci/run installs them). Outside CI, a machine without them skips these tests and says so.

fn tool(path: &str) -> Option<&str> {
    if Path::new(path).exists() {
        return Some(path);
    }
    assert!(std::env::var_os("CI").is_none(), "{path} is missing: .ci/run installs it");
    eprintln!("skipping: {path} is not installed (apt-get install prometheus-alertmanager prometheus)");
    None
}

#[test]
fn the_shipped_prometheus_rules_pass_promtool() {
    let Some(promtool) = tool("/usr/bin/promtool") else { return };
    let rules = concat!(env!("CARGO_MANIFEST_DIR"), "/config/prometheus-rules.yml");
    let out = Command::new(promtool).args(["check", "rules", rules]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    let n = vigil::config::alerts::builtin_rules().len();
    assert!(text.contains(&format!("SUCCESS: {n} rules found")), "{text}");
}

struct Alertmanager {
    child: std::process::Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Alertmanager on a free port, routing everything to `webhook` at once.
async fn alertmanager(bin: &str, webhook: &str) -> Alertmanager {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("alertmanager.yml");
    std::fs::write(
        &cfg,
        format!(
            "route:\n  receiver: hook\n  group_by: [alertname]\n  group_wait: 0s\n  group_interval: 1s\n  repeat_interval: 1h\n\
             receivers:\n  - name: hook\n    webhook_configs:\n      - url: {webhook}\n        send_resolved: true\n"
        ),
    )
    .unwrap();
    let port = dead_port().port();
    let child = Command::new(bin)
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!("--storage.path={}", dir.path().join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let ready = format!("{url}/-/ready");
    eventually("Alertmanager to be ready", || {
        let ready = ready.clone();
        async move {
            let client = h1_client();
            let req = request("GET", &ready).body(TestBody::empty()).unwrap();
            matches!(try_send(&client, req).await, Ok(r) if r.status == 200)
        }
    })
    .await;
    Alertmanager { child, url, _dir: dir }
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_alertmanager_takes_the_alerts_and_its_webhook_matches_vigils() {
    let Some(bin) = tool("/usr/bin/prometheus-alertmanager") else { return };
    let hook = Upstream::start("hook").await;
    let am = alertmanager(bin, &format!("{}/echo/from-alertmanager", hook.url())).await;
    let model = DemoModel::start_with("v1", &["--error-ratio", "0.5"]).await;
    let receivers = format!(
        "[[alerts.receivers]]\nname = \"am\"\nalertmanager = \"{}\"\n\n\
         [[alerts.receivers]]\nname = \"direct\"\nwebhook = \"{}/echo/direct\"\n",
        am.url,
        hook.url()
    );
    let vigil = Vigil::builder().config(&config(&receivers)).upstream("v1", &model.url()).start().await;
    let stop = Arc::new(AtomicBool::new(false));
    let load = traffic(&vigil, stop.clone());

    // Alertmanager holds the alert, with vigil's labels and annotations.
    let held = poll_for("the alert in Alertmanager", || async {
        let r = get(&format!("{}/api/v2/alerts", am.url)).await;
        let list = r.json();
        list.as_array()
            .and_then(|a| a.iter().find(|x| x["labels"]["alertname"] == "HighErrors").cloned())
            .ok_or_else(|| format!("{list}"))
    })
    .await;
    assert_eq!(held["labels"]["version"], "v1");
    assert_eq!(held["labels"]["severity"], "critical");
    assert_eq!(held["status"]["state"], "active");
    assert!(held["annotations"]["summary"].as_str().unwrap().starts_with("v1 errors at"));
    assert!(held["generatorURL"].as_str().unwrap().starts_with(&vigil.admin_url("/admin/alerts")));

    // Alertmanager's own webhook post and vigil's direct one have the same shape.
    let theirs = poll_for("Alertmanager's webhook post", || async {
        posts(&hook, "/echo/from-alertmanager").into_iter().next().ok_or("none yet".to_owned())
    })
    .await;
    let ours = poll_for("vigil's webhook post", || async {
        posts(&hook, "/echo/direct").into_iter().next().ok_or("none yet".to_owned())
    })
    .await;
    assert_eq!(keys(&ours), keys(&theirs), "payload fields\nours: {ours}\ntheirs: {theirs}");
    assert_eq!(keys(&ours["alerts"][0]), keys(&theirs["alerts"][0]), "alert fields");
    assert_eq!(ours["version"], theirs["version"]);
    assert_eq!(ours["status"], theirs["status"]);
    assert_eq!(ours["groupKey"], theirs["groupKey"], "same grouping key for group_by [alertname]");
    assert_eq!(ours["alerts"][0]["labels"], theirs["alerts"][0]["labels"]);
    assert_eq!(ours["alerts"][0]["annotations"], theirs["alerts"][0]["annotations"]);
    assert_eq!(
        ours["alerts"][0]["startsAt"].as_str().map(|s| &s[..19]),
        theirs["alerts"][0]["startsAt"].as_str().map(|s| &s[..19])
    );

    // Resolution reaches Alertmanager too.
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();
    poll_for("the alert to resolve in Alertmanager", || async {
        let list = get(&format!("{}/api/v2/alerts?active=true", am.url)).await.json();
        let active = list.as_array().map(|a| a.iter().any(|x| x["labels"]["alertname"] == "HighErrors"));
        if active == Some(false) {
            Ok(())
        } else {
            Err(format!("{list}"))
        }
    })
    .await;
}
