//! Reports through the real binary: traffic through the proxy to the demo model, labels and a
//! comment posted to /feedback, a version activated; `GET /admin/report` in JSON, HTML and
//! markdown says the same figures as `/admin/latency`, `/metrics`, `/admin/drift` and
//! `/admin/performance`, and names the activation and the comment. The `[report]` schedule
//! writes its files (kept to `keep` per format), posts the JSON to a webhook (an in-process
//! server records it), says in its next report that the active version changed, and counts a
//! webhook that cannot be reached.

mod support;

use serde_json::{json, Value};
use std::path::Path;
use support::*;

const ROWS: usize = 4;

fn reference_file(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("reference.csv");
    std::fs::write(&path, vigil::demo::reference_csv(1000, 7)).unwrap();
    path
}

const CONFIG: &str = r#"
[schema]
predictions = ["probability", "label"]
[drift]
evaluate_every = "100ms"
[prediction_log]
flush_interval = "50ms"
[performance]
probability = "probability"
prediction = "label"
windows = ["1000", "1h"]
min_records = 10
[performance.baseline]
accuracy = 0.99
[[performance.segments]]
name = "age_band"
feature = "age"
edges = [40]
"#;

/// One V2 request of `ROWS` rows with id `id`; returns the predicted labels.
async fn infer(vigil: &Vigil, id: &str, rng: &mut fastrand::Rng) -> Vec<i64> {
    let rows: Vec<[f64; 4]> = (0..ROWS)
        .map(|_| [25.0 + 30.0 * rng.f64(), 40_000.0 + 30_000.0 * rng.f64(), rng.f64(), 12.0 + 48.0 * rng.f64()])
        .collect();
    let data: Vec<f64> = rows.iter().flatten().copied().collect();
    let body = json!({"inputs": [{"name": "x", "shape": [ROWS, 4], "datatype": "FP64", "data": data}]});
    let req = request("POST", &vigil.url("/v2/models/demo/infer"))
        .header("content-type", "application/json")
        .header("x-request-id", id)
        .body(TestBody::full(body.to_string()))
        .unwrap();
    let r = send(&h1_client(), req).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let out = r.json();
    let labels = out["outputs"].as_array().unwrap().iter().find(|o| o["name"] == "label").unwrap()["data"].clone();
    (0..ROWS).map(|k| labels[k].as_i64().unwrap()).collect()
}

async fn get_ok(vigil: &Vigil, path: &str) -> Resp {
    let r = vigil.admin("GET", path, None).await;
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_says_what_the_admin_api_says() {
    let (v1, v2) = (DemoModel::start("v1").await, DemoModel::start("v2").await);
    let dir = tempfile::tempdir().unwrap();
    let reference = reference_file(dir.path());
    let vigil = Vigil::builder()
        .upstream("v1", &v1.url())
        .upstream("v2", &v2.url())
        .config(CONFIG)
        .args(["--reference".to_string(), reference.display().to_string()])
        .start()
        .await;

    // 30 requests to v1; every row labelled (a third of them wrongly), two comments with scores.
    let mut rng = fastrand::Rng::with_seed(5);
    let mut predicted = Vec::new();
    for i in 0..30 {
        predicted.push(infer(&vigil, &format!("q-{i}"), &mut rng).await);
    }
    poll_for("120 rows in predictions.db", || async {
        match count_rows(&vigil.state_dir, "") {
            120 => Ok(()),
            n => Err(n.to_string()),
        }
    })
    .await;
    let labels: Vec<Value> = predicted
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let labels: Vec<i64> = p.iter().map(|l| if i % 3 == 0 { 1 - l } else { *l }).collect();
            json!({"request_id": format!("q-{i}"), "labels": labels})
        })
        .collect();
    let r = vigil.admin("POST", "/feedback", Some(Value::Array(labels))).await;
    assert_eq!(r.json()["joined"], 120, "{}", r.text());
    let comment = "the <b>customer</b> churned | twice";
    let r = vigil
        .admin(
            "POST",
            "/feedback",
            Some(json!([
                {"request_id": "q-4", "comment": comment, "score": 2},
                {"request_id": "q-7", "row": 1, "score": 5},
            ])),
        )
        .await;
    assert_eq!(r.json()["comments"]["joined"], 2, "{}", r.text());
    poll_for("120 labelled in v1's 1000 window", || async {
        let p = get_ok(&vigil, "/admin/performance").await.json();
        match p["versions"]["v1"]["1000"]["labelled"].as_u64() {
            Some(120) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    poll_for("drift over v1's 120 records", || async {
        let d = get_ok(&vigil, "/admin/drift").await.json();
        match d["versions"]["v1"]["window"]["records"].as_u64() {
            Some(120) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let r = vigil.admin("POST", "/admin/versions/v2/activate", None).await;
    assert_eq!(r.status, 200, "{}", r.text());

    // The report, and the admin API's figures.
    let r = get_ok(&vigil, "/admin/report?format=json").await;
    assert_eq!(r.header("content-type"), Some("application/json"));
    let report = r.json();
    let latency = get_ok(&vigil, "/admin/latency").await.json();
    let drift = get_ok(&vigil, "/admin/drift").await.json();
    let perf = get_ok(&vigil, "/admin/performance").await.json();
    let metrics = vigil.metrics().await;

    assert_eq!(report["schema"], 1);
    assert_eq!(report["active_version"], "v2");
    // Traffic and latency of v1.
    let t = report["traffic"].as_array().unwrap().iter().find(|t| t["version"] == "v1").unwrap();
    assert_eq!(t["requests"].as_f64().unwrap(), metrics.sum("vigil_requests_total", &[("version", "v1")]));
    assert_eq!(t["requests"], 30);
    assert_eq!((t["errors"].as_u64(), t["error_rate"].as_f64()), (Some(0), Some(0.0)));
    let total = &latency["versions"]["v1"]["total"];
    for p in ["count", "p50", "p90", "p99", "max", "mean"] {
        assert_eq!(t["latency"][p], total[p], "latency {p}");
    }
    // Drift of every column of v1: the score is the p-value or the distance the verdict used.
    let dv = &drift["versions"]["v1"];
    let rv = report["drift"]["versions"].as_array().unwrap().iter().find(|v| v["version"] == "v1").unwrap();
    assert_eq!(rv["records"], dv["window"]["records"]);
    for kind in ["features", "predictions"] {
        let cols = dv[kind].as_array().unwrap();
        assert!(!cols.is_empty());
        for c in cols {
            let got = rv[kind].as_array().unwrap().iter().find(|x| x["name"] == c["name"]).unwrap();
            let want = if got["test"] == "p_value" { &c["p_value"] } else { &c["statistic"] };
            assert_eq!(&got["score"], want, "{kind} {}", c["name"]);
            assert_eq!(
                (&got["threshold"], &got["drift"], &got["method"]),
                (&c["threshold"], &c["drift"], &c["method"])
            );
        }
    }
    for k in ["evaluated", "drifted", "share", "drift"] {
        assert_eq!(rv["dataset"][k], dv["dataset"][k], "dataset {k}");
    }
    assert_eq!(rv["covariate_shift"]["score"], dv["covariate_shift"]["score"]);
    // Performance of v1, per window, against the baseline and by segment.
    let pv = report["performance"]["versions"].as_array().unwrap().iter().find(|v| v["version"] == "v1").unwrap();
    let windows: Vec<&str> = pv["windows"].as_array().unwrap().iter().map(|w| w["window"].as_str().unwrap()).collect();
    assert_eq!(windows, ["1000", "1h"]);
    for w in pv["windows"].as_array().unwrap() {
        let want = &perf["versions"]["v1"][w["window"].as_str().unwrap()];
        assert_eq!(w["labelled"], want["labelled"]);
        for m in ["accuracy", "precision", "recall", "f1", "roc_auc"] {
            assert_eq!(w["metrics"][m], want["classification"][m], "{m}");
        }
        assert_eq!(w["baseline"][0]["gap"], want["baseline"][0]["gap"]);
        assert_eq!(w["baseline"][0]["value"], want["baseline"][0]["value"]);
        assert_eq!(w["degraded"], want["degraded"]);
        let groups = &want["segments"]["age_band"]["groups"];
        let seg = w["segments"].as_array().unwrap().iter().find(|s| s["name"] == "age_band").unwrap();
        assert_eq!(seg["groups"].as_array().unwrap().len(), groups.as_array().unwrap().len());
        assert_eq!(seg["groups"][0]["figures"]["accuracy"], groups[0]["accuracy"]);
        assert_eq!(
            seg["fairness"]["demographic_parity_difference"],
            want["segments"]["age_band"]["fairness"]["demographic_parity_difference"]
        );
    }
    let accuracy = pv["windows"][0]["metrics"]["accuracy"].as_f64().unwrap();
    assert!((accuracy - 80.0 / 120.0).abs() < 1e-12, "{accuracy}");
    // The activation, from the audit trail.
    let changes = report["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!((changes[0]["action"].as_str(), changes[0]["target"].as_str()), (Some("version.activate"), Some("v2")));
    assert_eq!(changes[0]["summary"], "anonymous activated v2 (v1 was active)");
    // Feedback: the two entries, their scores, the comment.
    let f = &report["feedback"];
    assert_eq!((f["count"].as_u64(), f["scored"].as_u64(), f["mean_score"].as_f64()), (Some(2), Some(2), Some(3.5)));
    assert_eq!(f["comments"].as_array().unwrap().len(), 1);
    assert_eq!(
        (f["comments"][0]["comment"].as_str(), f["comments"][0]["request_id"].as_str()),
        (Some(comment), Some("q-4"))
    );
    let counts: Vec<u64> = f["histogram"].as_array().unwrap().iter().map(|b| b["count"].as_u64().unwrap()).collect();
    assert_eq!(counts, [1, 0, 0, 1]);
    // No scheduled report yet: the first one.
    assert_eq!(report["previous"], Value::Null);
    assert!(report["what_changed"][0].as_str().unwrap().contains("first report"), "{}", report["what_changed"]);
    assert!(report["what_changed"].to_string().contains("activated v2"));
    // Robustness: the shadow engine's books, as /admin/robustness serves them (what-if jobs of
    // the last samples may still be finishing: compared once the books read the same before and
    // after the report).
    let (rb, robustness) = poll_for("robustness books at rest around a report", || async {
        let before = get_ok(&vigil, "/admin/robustness").await.json();
        let report = get_ok(&vigil, "/admin/report?format=json").await.json();
        let after = get_ok(&vigil, "/admin/robustness").await.json();
        if before == after {
            Ok((after, report["robustness"].clone()))
        } else {
            Err("a what-if job finished in between".to_owned())
        }
    })
    .await;
    let versions = rb["versions"].as_array().unwrap();
    assert_eq!(robustness["versions"].as_array().unwrap().len(), versions.len());
    for v in versions {
        let got = robustness["versions"].as_array().unwrap().iter().find(|x| x["version"] == v["version"]).unwrap();
        assert_eq!(got["sensitivity_flip_ratio"], v["sensitivity"]["flip_ratio"]);
        assert_eq!(got["adversarial_flip_ratio"], v["adversarial"]["flip_ratio"]);
        assert_eq!(got["explanations"], v["explanations"]);
        let top: Vec<&Value> =
            v["importance"]["features"].as_array().map(|f| f.iter().take(5).collect()).unwrap_or_default();
        assert_eq!(got["top_features"].as_array().unwrap().len(), top.len());
    }

    // The same figures in the page, with a chart per section.
    let r = get_ok(&vigil, "/admin/report?format=html").await;
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let page = r.text();
    assert!(page.starts_with("<!DOCTYPE html>") && !page.contains("<script"));
    let p99 = total["p99"].as_f64().unwrap();
    assert!(page.contains(&format!("data-category=\"v1\" data-series=\"p99\" data-value=\"{p99}\"")), "latency chart");
    assert!(page.contains("Drift of v1: score per column against its threshold"));
    assert!(
        page.contains(&format!("data-category=\"accuracy @ 1000\" data-series=\"value\" data-value=\"{accuracy}\""))
    );
    assert!(page.contains("User feedback scores"));
    assert_eq!(page.matches("<svg").count(), 4, "latency, drift of v1, performance of v1, feedback");
    assert!(page.contains("the &lt;b&gt;customer&lt;/b&gt; churned | twice"), "the comment, escaped");
    assert!(page.contains("anonymous activated v2 (v1 was active)"));

    let r = get_ok(&vigil, "/admin/report?format=md").await;
    assert_eq!(r.header("content-type"), Some("text/markdown; charset=utf-8"));
    let doc = r.text();
    assert!(doc.contains("| v1 | 0% | 30 | 0 | 0% |"), "{doc}");
    assert!(doc.contains("anonymous activated v2 (v1 was active)"));
    assert!(doc.contains("the &lt;b&gt;customer&lt;/b&gt; churned \\| twice"), "{doc}");

    // A span that starts after the activation leaves it out.
    let r = get_ok(&vigil, &format!("/admin/report?format=json&since={}", now_ms())).await;
    assert_eq!(r.json()["changes"], json!([]));

    // Errors name the parameter; the route takes GET only.
    for (q, needle) in [("format=pdf", "format"), ("since=soon", "since"), ("window=1h", "window")] {
        let r = vigil.admin("GET", &format!("/admin/report?{q}"), None).await;
        assert_eq!(r.status, 400, "{q}: {}", r.text());
        assert_eq!(r.json()["kind"], "bad_request");
        assert!(r.json()["error"].as_str().unwrap().contains(needle), "{q}: {}", r.text());
    }
    let r = vigil.admin("POST", "/admin/report", None).await;
    assert_eq!((r.status.as_u16(), r.header("allow")), (405, Some("GET")));
}

fn now_ms() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()
}

/// Report files of `ext` in `dir`.
fn files(dir: &Path, ext: &str) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect())
        .unwrap_or_default();
    out.retain(|n| n.ends_with(&format!(".{ext}")));
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_reports_are_written_posted_and_say_what_changed() {
    let (v1, v2, hook) = (Upstream::start("v1").await, Upstream::start("v2").await, Upstream::start("hook").await);
    let config = format!(
        "[report]\nevery = \"200ms\"\nformats = [\"html\", \"md\", \"json\"]\nkeep = 2\nwebhook = \"{}/echo/reports\"\n",
        hook.url()
    );
    let vigil = Vigil::builder().upstream("v1", &v1.url()).upstream("v2", &v2.url()).config(&config).start().await;
    let client = h1_client();
    for _ in 0..5 {
        assert_eq!(vigil.which(&client).await, "v1");
    }
    let posted = |hook: &Upstream| -> Vec<Value> {
        hook.requests_to("/echo/reports").iter().map(|r| serde_json::from_slice(&r.body).unwrap()).collect()
    };

    // A first report, posted as JSON.
    let first = poll_for("a report posted to the webhook", || async {
        posted(&hook).into_iter().next().ok_or_else(|| "none yet".to_owned())
    })
    .await;
    let req = &hook.requests_to("/echo/reports")[0];
    assert_eq!((req.method.as_str(), req.header("content-type")), ("POST", Some("application/json")));
    assert_eq!(first["active_version"], "v1");
    assert_eq!(first["what_changed"][0], "This is the first report: there is no earlier one to compare with.");

    // Activate v2: a later report says so, compared with the one before it.
    let r = vigil.admin("POST", "/admin/versions/v2/activate", None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let after = poll_for("a report naming the activation", || async {
        posted(&hook)
            .into_iter()
            .find(|r| r["active_version"] == "v2")
            .ok_or_else(|| format!("{} reports, none with v2 active", posted(&hook).len()))
    })
    .await;
    let said: Vec<&str> = after["what_changed"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    assert_eq!(said[0], "The active version changed from v1 to v2.", "{said:?}");
    assert!(said[1].contains("anonymous activated v2 (v1 was active)"), "{said:?}");
    assert!(after["previous"].is_string());
    assert_eq!(after["changes"][0]["action"], "version.activate");

    // Files: every format, at most `keep` of each, no temporary file; the last one saved.
    let reports = vigil.state_dir.join("reports");
    poll_for("more reports than `keep`", || async {
        let n = vigil.metrics().await.sum("vigil_reports_total", &[]);
        if n >= 4.0 {
            Ok(())
        } else {
            Err(n.to_string())
        }
    })
    .await;
    // The thread keeps writing (a file appears before the oldest is deleted): the directory is
    // checked between two reports. Pruning that did not work would never pass.
    poll_for("at most `keep` reports per format, charts only of kept markdown reports", || async {
        let mut problems = Vec::new();
        for ext in ["html", "md", "json"] {
            let names = files(&reports, ext);
            if !(1..=2).contains(&names.len()) || !names.iter().all(|n| n.starts_with("vigil-report-")) {
                problems.push(format!("{ext}: {names:?}"));
            }
        }
        let md = files(&reports, "md");
        let stems: Vec<&str> = md.iter().map(|n| n.trim_end_matches(".md")).collect();
        let svg = files(&reports, "svg");
        if !svg.iter().all(|n| stems.iter().any(|s| n.starts_with(&format!("{s}.")))) {
            problems.push(format!("charts {svg:?} for reports {md:?}"));
        }
        if !files(&reports, "tmp").is_empty() {
            problems.push("a .tmp file".into());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    })
    .await;
    let newest = files(&reports, "json").pop().unwrap();
    let on_disk: Value = serde_json::from_slice(&std::fs::read(reports.join(&newest)).unwrap()).unwrap();
    assert_eq!(on_disk["schema"], 1);
    let html = std::fs::read_to_string(reports.join(files(&reports, "html").pop().unwrap())).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>") && html.contains("<svg"));
    // Markdown links its charts, written next to it (before it).
    let md = std::fs::read_to_string(reports.join(files(&reports, "md").pop().unwrap())).unwrap();
    let links: Vec<&str> = md.split("](").skip(1).filter_map(|s| s.split(')').next()).collect();
    assert!(links.iter().any(|l| l.ends_with(".latency.svg")), "{md}");
    for l in &links {
        assert!(std::fs::read_to_string(reports.join(l)).unwrap().starts_with("<svg"), "{l}");
    }
    let last: Value =
        serde_json::from_slice(&std::fs::read(vigil.state_dir.join("report-last.json")).unwrap()).unwrap();
    assert_eq!(last["active_version"], "v2");
    assert_eq!(vigil.metrics().await.sum("vigil_report_webhook_failures_total", &[]), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_that_cannot_be_reached_is_counted_and_the_files_are_still_written() {
    let v1 = Upstream::start("v1").await;
    let config = format!("[report]\nevery = \"200ms\"\nwebhook = \"http://{}/hook\"\n", dead_port());
    let vigil = Vigil::builder().upstream("v1", &v1.url()).config(&config).start().await;
    poll_for("two failed webhook posts, counted", || async {
        let n = vigil.metrics().await.sum("vigil_report_webhook_failures_total", &[]);
        if n >= 2.0 {
            Ok(())
        } else {
            Err(n.to_string())
        }
    })
    .await;
    // One post per report, never retried: no more failures than reports (a report is counted
    // before its post).
    let m = vigil.metrics().await;
    let (failures, reports) = (m.sum("vigil_report_webhook_failures_total", &[]), m.sum("vigil_reports_total", &[]));
    assert!(failures <= reports, "{failures} failures for {reports} reports");
    let reports = vigil.state_dir.join("reports");
    assert!(!files(&reports, "html").is_empty() && !files(&reports, "json").is_empty());
    assert!(files(&reports, "md").is_empty(), "md is not in the default formats");
    assert!(vigil.stderr().contains("report webhook failed"), "{}", vigil.stderr());
}
