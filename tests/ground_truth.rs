//! Ground truth through the real binary: predictions logged to SQLite, labels posted to
//! /feedback, joined, and the performance figures read back from /admin/performance and
//! /metrics. The metric functions themselves are checked against scikit-learn in
//! tests/stats_perf.rs; here the point is that the right rows and labels reach them, that the
//! log is durable (SIGTERM loses nothing, SIGKILL at most the last batch) and that bad feedback
//! gets a clear answer.

mod support;

use serde_json::{json, Value};
use std::path::Path;
use support::*;

const ROWS: usize = 4;

/// (truth, predicted class, probability, age) of one labelled row.
type Pair = (i64, i64, f64, f64);

fn reference_file(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("reference.csv");
    std::fs::write(&path, vigil::demo::reference_csv(1000, 7)).unwrap();
    path
}

fn config(extra: &str) -> String {
    format!(
        r#"
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
margin = 0.05
[performance.baseline]
accuracy = 0.99
roc_auc = 0.5
[[performance.segments]]
name = "age_band"
feature = "age"
edges = [40]
{extra}
"#
    )
}

/// One V2 request of `ROWS` rows; returns (probability, label) per row as the model answered.
async fn infer(vigil: &Vigil, id: &str, rng: &mut fastrand::Rng) -> (Vec<[f64; 4]>, Vec<(f64, i64)>) {
    let rows: Vec<[f64; 4]> = (0..ROWS)
        .map(|_| {
            [
                40.0 + 12.0 * (rng.f64() * 2.0 - 1.0),
                55_000.0 + 15_000.0 * (rng.f64() * 2.0 - 1.0),
                0.5 + 0.167 * (rng.f64() * 2.0 - 1.0),
                36.0 + 20.0 * (rng.f64() * 2.0 - 1.0),
            ]
        })
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
    let outputs = out["outputs"].as_array().unwrap();
    let find = |name: &str| outputs.iter().find(|o| o["name"] == name).unwrap()["data"].as_array().unwrap().clone();
    let (p, l) = (find("probability"), find("label"));
    (rows, (0..ROWS).map(|k| (p[k].as_f64().unwrap(), l[k].as_i64().unwrap())).collect())
}

/// vigil in front of `model`, with `reference` and the config text.
fn vigil_for(model: &DemoModel, reference: &Path, config: &str) -> VigilBuilder {
    Vigil::builder()
        .upstream("v1", &model.url())
        .config(config)
        .args(["--reference".to_string(), reference.display().to_string()])
}

async fn performance_with(vigil: &Vigil, labelled: u64) -> Value {
    poll_for(&format!("{labelled} labelled records in /admin/performance"), || async {
        let p = vigil.admin("GET", "/admin/performance?version=v1&window=1000", None).await.json();
        if p["versions"]["v1"]["1000"]["labelled"].as_u64() == Some(labelled) {
            Ok(p)
        } else {
            Err(p.to_string())
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labels_join_their_predictions_and_performance_follows() {
    let model = DemoModel::start("v1").await;
    let dir = tempfile::tempdir().unwrap();
    let reference = reference_file(dir.path());
    let vigil = vigil_for(&model, &reference, &config("")).start().await;

    // 50 requests of 4 rows; the truth is drawn from the model's own probability (a calibrated
    // model), so the estimated accuracy has something to agree with.
    let mut rng = fastrand::Rng::with_seed(42);
    let mut answers = Vec::new();
    for i in 0..50 {
        let id = format!("req-{i}");
        let (rows, preds) = infer(&vigil, &id, &mut rng).await;
        let truth: Vec<i64> = preds.iter().map(|(p, _)| (rng.f64() < *p) as i64).collect();
        answers.push((id, rows, preds, truth));
    }
    // Everything is in the log before labels are posted (the join also flushes pending rows,
    // but the capture may still be on its way through analysis).
    poll_for("200 rows in predictions.db", || async {
        let n = count_rows(&vigil.state_dir, "");
        if n == 200 {
            Ok(())
        } else {
            Err(n.to_string())
        }
    })
    .await;

    // Shapes: rows one by one (requests 0-9, in one array), whole batches (10-39), with a wrong
    // first label for request 10 sent again, and two ids vigil never saw. Requests 40-49 stay
    // unlabelled.
    let mut singles = Vec::new();
    for (id, _, _, truth) in &answers[..10] {
        for (r, y) in truth.iter().enumerate() {
            singles.push(json!({"request_id": id, "row": r, "label": y}));
        }
    }
    singles.push(json!({"request_id": "never-seen", "label": 1}));
    singles.push(json!({"request_id": "also-never-seen", "labels": [1, 0]}));
    let r = vigil.admin("POST", "/feedback", Some(Value::Array(singles))).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let a = r.json();
    assert_eq!((a["received"].as_u64(), a["joined"].as_u64(), a["unknown"].as_u64()), (Some(43), Some(40), Some(3)));
    assert_eq!(a["unknown_ids"], json!(["also-never-seen", "never-seen"]));
    let wrong: Vec<i64> = answers[10].3.iter().map(|y| 1 - y).collect();
    let r = vigil.admin("POST", "/feedback", Some(json!({"request_id": answers[10].0, "labels": wrong}))).await;
    assert_eq!(r.json()["joined"], 4);
    for (id, _, _, truth) in &answers[10..40] {
        let r = vigil.admin("POST", "/feedback", Some(json!({"request_id": id, "labels": truth}))).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }

    let p = performance_with(&vigil, 160).await;
    let w = &p["versions"]["v1"]["1000"];
    assert_eq!(w["unlabelled"], 40, "{w}");
    // The figures from the same 160 (truth, prediction) pairs, counted here.
    let pairs: Vec<Pair> = answers[..40]
        .iter()
        .flat_map(|(_, rows, preds, truth)| {
            preds.iter().zip(truth).zip(rows).map(|(((p, l), y), row)| (*y, *l, *p, row[0]))
        })
        .collect();
    let count = |f: &dyn Fn(&Pair) -> bool| pairs.iter().filter(|x| f(x)).count() as u64;
    let (tn, fp) = (count(&|x| x.0 == 0 && x.1 == 0), count(&|x| x.0 == 0 && x.1 == 1));
    let (fn_, tp) = (count(&|x| x.0 == 1 && x.1 == 0), count(&|x| x.0 == 1 && x.1 == 1));
    let c = &w["classification"];
    assert_eq!(c["classes"], json!(["0", "1"]), "{c}");
    assert_eq!(c["confusion_matrix"], json!([[tn, fp], [fn_, tp]]), "{c}");
    let accuracy = (tp + tn) as f64 / 160.0;
    assert!((c["accuracy"].as_f64().unwrap() - accuracy).abs() < 1e-12, "{c}");
    let recall = tp as f64 / (tp + fn_) as f64;
    assert!((c["recall"].as_f64().unwrap() - recall).abs() < 1e-12, "{c}");
    let y: Vec<bool> = pairs.iter().map(|x| x.0 == 1).collect();
    let s: Vec<f64> = pairs.iter().map(|x| x.2).collect();
    let auc = vigil::monitor::performance::metrics::roc_auc(&y, &s).unwrap();
    assert!((c["roc_auc"].as_f64().unwrap() - auc).abs() < 1e-12, "{c}");
    // Estimated over all 200 predictions of the span; with labels drawn from the probabilities it
    // is close to the realised accuracy (a loose check: 160 labels are a small sample).
    let est = w["estimated"]["accuracy"].as_f64().unwrap();
    assert_eq!(w["estimated"]["n"], 200, "{w}");
    assert!((est - accuracy).abs() < 0.15, "estimated {est} vs realised {accuracy}");
    // Baseline: accuracy 0.99 is far above what this model does: degraded; roc_auc 0.5 is not.
    assert_eq!(w["degraded"], true, "{w}");
    let checks = w["baseline"].as_array().unwrap();
    let check = |m: &str| checks.iter().find(|b| b["metric"] == m).unwrap().clone();
    assert_eq!(check("accuracy")["degraded"], true);
    assert_eq!(check("roc_auc")["degraded"], false);
    assert!((check("accuracy")["gap"].as_f64().unwrap() - (accuracy - 0.99)).abs() < 1e-12);
    // Segments: age <= 40 and above, counted here too.
    let seg = &w["segments"]["age_band"];
    let young = count(&|x| x.3 <= 40.0);
    let groups = seg["groups"].as_array().unwrap();
    assert_eq!(groups[0]["group"], "(-inf, 40]", "{seg}");
    assert_eq!(groups[0]["labelled"], young);
    assert_eq!(groups[1]["group"], "(40, inf)");
    assert_eq!(groups[1]["labelled"], 160 - young);
    assert!(seg["fairness"]["demographic_parity_difference"].as_f64().is_some(), "{seg}");

    // Prometheus: the same figures, and feedback results.
    let m = vigil.metrics().await;
    assert!((m.sum("vigil_model_accuracy", &[("version", "v1")]) - accuracy).abs() < 1e-12);
    assert_eq!(m.sum("vigil_model_degraded", &[("version", "v1"), ("metric", "accuracy")]), 1.0);
    assert_eq!(m.sum("vigil_feedback_total", &[("result", "unknown")]), 3.0);
    assert_eq!(m.sum("vigil_feedback_total", &[("result", "replaced")]), 4.0);
    assert_eq!(m.sum("vigil_feedback_total", &[("result", "joined")]), 160.0);
    assert!(m.has("vigil_model_estimated_accuracy"));
    assert!(m.has("vigil_fairness_demographic_parity_difference"));

    // The log, as an operator's sqlite3 shell sees it.
    assert_eq!(count_rows(&vigil.state_dir, "WHERE label IS NOT NULL"), 160);
    let (p, label, version): (f64, i64, String) = prediction_db(&vigil.state_dir)
        .query_row(
            "SELECT json_extract(predictions, '$.probability'), json_extract(label, '$'), version \
             FROM predictions WHERE request_id = 'req-10' AND row = 0",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!((p, label, version.as_str()), (answers[10].2[0].0, answers[10].3[0], "v1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_feedback_gets_a_clear_answer_and_the_token_is_its_own() {
    let model = DemoModel::start("v1").await;
    let dir = tempfile::tempdir().unwrap();
    let reference = reference_file(dir.path());
    let vigil = vigil_for(&model, &reference, &config("")).env("VIGIL_FEEDBACK_TOKEN", "labels-only").start().await;
    let body = r#"{"request_id": "a", "label": 1}"#;
    let r = vigil.admin_req("POST", "/feedback", Some(body), &[]).await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(r.text().contains("VIGIL_FEEDBACK_TOKEN"), "{}", r.text());
    let auth = [("authorization", "Bearer labels-only")];
    let r = vigil.admin_req("POST", "/feedback", Some(body), &auth).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["unknown"], 1);
    for (bad, needle) in [
        (r#"[{"request_id": "a", "label": 1}, {"request_id": "b"}]"#, "element 1"),
        (r#"{"request_id": "a", "lable": 1}"#, "lable"),
        (r#"{"request_id": "a", "label": {"x": 1}}"#, "label must be"),
        ("not json", "invalid JSON"),
    ] {
        let r = vigil.admin_req("POST", "/feedback", Some(bad), &auth).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
        assert_eq!(r.json()["kind"], "bad_request");
        assert!(r.json()["error"].as_str().unwrap().contains(needle), "{bad}: {}", r.text());
    }
    let r = vigil.admin_req("GET", "/feedback", None, &auth).await;
    assert_eq!(r.status, 405);
    let r = vigil.admin("GET", "/admin/performance?window=2h", None).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("1000, 1h"), "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_loses_no_prediction_and_sigkill_at_most_the_unflushed_batch() {
    let model = DemoModel::start("v1").await;
    let dir = tempfile::tempdir().unwrap();
    let reference = reference_file(dir.path());
    let state = dir.path().join("state");
    let mut rng = fastrand::Rng::with_seed(3);

    // A flush interval far longer than the test: only shutdown writes these rows.
    let lazy = config("[prediction_log]\nflush_interval = \"1h\"\nflush_rows = 100000\n")
        .replace("[prediction_log]\nflush_interval = \"50ms\"\n", "");
    let vigil = vigil_for(&model, &reference, &lazy).state_dir(&state).start().await;
    for i in 0..30 {
        infer(&vigil, &format!("t-{i}"), &mut rng).await;
    }
    // Captures reach analysis within a tick; then SIGTERM.
    vigil.wait_metric("vigil_records_total", &[("version", "v1")], (30 * ROWS) as f64).await;
    assert_eq!(vigil.stop().await.code(), Some(0));
    assert_eq!(count_rows(&state, ""), (30 * ROWS) as i64, "SIGTERM lost rows");

    // Restart on the same state dir with the default-like flush interval; after the interval has
    // passed, a SIGKILL loses nothing already flushed.
    let vigil = vigil_for(&model, &reference, &config("")).state_dir(&state).start().await;
    for i in 0..20 {
        infer(&vigil, &format!("k-{i}"), &mut rng).await;
    }
    vigil.wait_metric("vigil_prediction_log_rows_total", &[], (20 * ROWS) as f64).await;
    vigil.sigkill();
    assert_eq!(count_rows(&state, ""), (50 * ROWS) as i64, "SIGKILL lost flushed rows");
    assert_eq!(count_rows(&state, "WHERE request_id LIKE 'k-%'"), (20 * ROWS) as i64);
}
