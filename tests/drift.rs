//! Drift through the real binary: a reference file, live V2 traffic from the load generator (some
//! features shifted), /admin/drift and /metrics. The statistics themselves are checked against
//! scipy in tests/stats_*.rs; here the point is that the right rows reach them, per version, and
//! that bad payloads change nothing for clients.

mod support;

use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use support::*;
use vigil::monitor::stats::ks;

const SCHEMA: &str = r#"
[schema]
predictions = ["probability", "label"]
"#;

fn reference_file(dir: &std::path::Path, rows: usize, seed: u64) -> std::path::PathBuf {
    let path = dir.join("reference.csv");
    std::fs::write(&path, vigil::demo::reference_csv(rows, seed)).unwrap();
    path
}

/// Waits for an evaluation whose window for `version` holds `records` records.
async fn drift_with(vigil: &Vigil, version: &str, records: u64) -> Value {
    poll_for(&format!("a drift window of {records} records for {version}"), || async {
        let d = vigil.admin("GET", "/admin/drift", None).await.json();
        let n = d["versions"][version]["window"]["records"].as_u64().unwrap_or(0);
        if n == records {
            Ok(d)
        } else {
            Err(d.to_string())
        }
    })
    .await
}

fn feature<'a>(d: &'a Value, version: &str, name: &str) -> &'a Value {
    d["versions"][version]["features"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == name)
        .unwrap_or_else(|| panic!("no feature {name} in {d}"))
}

async fn traffic(vigil: &Vigil, requests: u64, batch: usize, shift: &[&str]) {
    let reference = vigil_loadtest::Reference::default();
    let transform = (!shift.is_empty()).then(|| {
        let specs: Vec<String> = shift.iter().map(|s| s.to_string()).collect();
        Arc::new(vigil_loadtest::Shift::parse(&specs, &reference).unwrap()) as Arc<dyn vigil_loadtest::RowTransform>
    });
    let rate = 200.0;
    let cfg = vigil_loadtest::Config {
        target: vigil.url("").parse().unwrap(),
        rate,
        duration: Some(Duration::from_secs_f64(requests as f64 / rate)),
        batch,
        connections: 4,
        seed: 11,
        transform,
        reference: Arc::new(reference),
        ..Default::default()
    };
    let report = vigil_loadtest::run(cfg, std::future::pending::<()>()).await;
    assert_eq!(report.errors.total(), 0, "{}", report.to_table());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shifted_features_and_predictions_are_flagged_and_nothing_else() {
    let model = DemoModel::start("v1").await;
    let dir = tempfile::tempdir().unwrap();
    let reference = reference_file(dir.path(), 2000, 7);
    let vigil = Vigil::builder()
        .upstream("v1", &model.url())
        .config(&format!("{SCHEMA}\n[drift]\nwindow = 1000\nevaluate_every = \"100ms\"\n"))
        .args(["--reference".to_string(), reference.display().to_string()])
        .start()
        .await;
    // 1,000 rows: income up one standard deviation, tenure down one; age and debt_ratio as in
    // the reference.
    traffic(&vigil, 125, 8, &["income=1.0", "tenure_months=-1.0"]).await;
    let d = drift_with(&vigil, "v1", 1000).await;
    assert_eq!(d["status"], "ok");
    assert_eq!(d["reference"]["rows"], 2000);
    for (name, drifted) in [("age", false), ("income", true), ("debt_ratio", false), ("tenure_months", true)] {
        let f = feature(&d, "v1", name);
        // A reference above 1,000 rows: Evidently's default is the normed Wasserstein distance.
        assert_eq!(f["method"], "wasserstein", "{f}");
        assert_eq!(f["method_source"], "auto");
        assert_eq!(f["threshold"], 0.1);
        assert_eq!(f["drift"], drifted, "{name}: {f}");
        assert_eq!(f["records"], 1000);
        assert_eq!(f["evaluation"], "exact");
    }
    // The shift moves the model's outputs too.
    let probability = &d["versions"]["v1"]["predictions"][0];
    assert_eq!(probability["name"], "probability");
    assert_eq!(probability["drift"], true, "{probability}");
    assert_eq!(d["versions"]["v1"]["dataset"]["drifted"], 2);
    assert_eq!(d["versions"]["v1"]["dataset"]["share"], 0.5);

    let m = vigil.metrics().await;
    assert_eq!(m.sum("vigil_feature_drifted", &[("version", "v1"), ("feature", "income")]), 1.0);
    assert_eq!(m.sum("vigil_feature_drifted", &[("version", "v1"), ("feature", "age")]), 0.0);
    let score =
        m.sum("vigil_feature_drift_score", &[("version", "v1"), ("feature", "income"), ("method", "wasserstein")]);
    let statistic = feature(&d, "v1", "income")["statistic"].as_f64().unwrap();
    assert!((score - statistic).abs() <= 1e-12 * statistic, "{score} vs {statistic}");
    assert_eq!(m.sum("vigil_records_total", &[("version", "v1")]), 1000.0);
    assert_eq!(m.sum("vigil_prediction_drifted", &[("version", "v1"), ("output", "probability")]), 1.0);
    assert!(m.has("vigil_covariate_shift_score"));

    // The histograms behind one feature.
    let h = vigil.admin("GET", "/admin/drift/income", None).await.json();
    let hist = &h["versions"]["v1"]["histogram"];
    assert_eq!(hist["reference"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap()).sum::<u64>(), 2000);
    assert_eq!(hist["current"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap()).sum::<u64>(), 1000);
    assert_eq!(vigil.admin("GET", "/admin/drift/nope", None).await.status, 404);
}

/// Sends `rows` known rows (10 per request) and returns them per feature.
async fn send_rows(vigil: &Vigil, rows: &[[f64; 4]]) {
    let client = h1_client();
    for chunk in rows.chunks(10) {
        let data: Vec<f64> = chunk.iter().flatten().copied().collect();
        let body = serde_json::json!({"inputs": [{"name": "input-0", "shape": [chunk.len(), 4], "datatype": "FP64", "data": data}]});
        let r = send(
            &client,
            request("POST", &vigil.url("/v2/models/demo/infer"))
                .header("content-type", "application/json")
                .body(TestBody::full(body.to_string()))
                .unwrap(),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_reference_uses_ks_on_exactly_the_rows_sent() {
    let model = DemoModel::start("v1").await;
    let dir = tempfile::tempdir().unwrap();
    let reference = reference_file(dir.path(), 800, 3);
    let vigil = Vigil::builder()
        .upstream("v1", &model.url())
        .config(&format!("{SCHEMA}\n[drift]\nwindow = 300\nevaluate_every = \"100ms\"\n"))
        .args(["--reference".to_string(), reference.display().to_string()])
        .start()
        .await;
    // 400 rows: the window keeps the last 300.
    let source = vigil_loadtest::Reference::default();
    let mut rng = fastrand::Rng::with_seed(5);
    let rows: Vec<[f64; 4]> = (0..400)
        .map(|_| {
            let mut r = [0.0; 4];
            source.sample_row(&mut rng, &mut r);
            r[0] += 6.0; // age: +0.5 sd
            r
        })
        .collect();
    send_rows(&vigil, &rows).await;
    let d = drift_with(&vigil, "v1", 300).await;

    // The same statistic over the same values, computed here (the function is checked against
    // scipy.stats.ks_2samp in tests/stats_ks.rs).
    let text = std::fs::read_to_string(&reference).unwrap();
    for (col, name) in ["age", "income", "debt_ratio", "tenure_months"].iter().enumerate() {
        let mut r: Vec<f64> =
            text.lines().skip(1).map(|l| l.split(',').nth(col).unwrap().parse::<f64>().unwrap()).collect();
        let mut w: Vec<f64> = rows[100..].iter().map(|row| row[col]).collect();
        r.sort_by(f64::total_cmp);
        w.sort_by(f64::total_cmp);
        let expected = ks::ks_2samp(&r, &w);
        let f = feature(&d, "v1", name);
        assert_eq!(f["method"], "ks", "{f}");
        // Equal up to JSON's round trip (serde_json may parse the last digit one ulp off).
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-15 * b.abs();
        assert!(close(f["statistic"].as_f64().unwrap(), expected.statistic), "{name}: {f} vs {expected:?}");
        assert!(close(f["p_value"].as_f64().unwrap(), expected.p_value), "{name}: {f} vs {expected:?}");
        assert_eq!(f["drift"], expected.p_value < 0.05, "{name}");
    }
    assert_eq!(feature(&d, "v1", "age")["drift"], true);
    // The label column has two values: the two-proportion z-test.
    let label = &d["versions"]["v1"]["predictions"][1];
    assert_eq!(label["name"], "label");
    assert_eq!(label["method"], "ztest");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_payloads_reach_the_model_untouched_and_are_counted() {
    let model = DemoModel::start("v1").await;
    let dir = tempfile::tempdir().unwrap();
    let reference = reference_file(dir.path(), 500, 1);
    let vigil = Vigil::builder()
        .upstream("v1", &model.url())
        .config(&format!("{SCHEMA}\n[drift]\nwindow = 100\nevaluate_every = \"100ms\"\n"))
        .args(["--reference".to_string(), reference.display().to_string()])
        .start()
        .await;
    let client = h1_client();
    let post = |body: &'static str| {
        request("POST", &vigil.url("/v2/models/demo/infer"))
            .header("content-type", "application/json")
            .body(TestBody::full(body))
            .unwrap()
    };
    let direct = |body: &'static str| {
        request("POST", &format!("{}/v2/models/demo/infer", model.url()))
            .header("content-type", "application/json")
            .body(TestBody::full(body))
            .unwrap()
    };
    // Not JSON, or cut short: the model's own answer comes back, byte for byte.
    for garbage in ["hello, model", "{\"inputs\": [{\"name\": \"input-0\", \"sha"] {
        let via = send(&client, post(garbage)).await;
        let straight = send(&client, direct(garbage)).await;
        assert_eq!(via.status, straight.status);
        assert_bytes_eq(&via.body, &straight.body, "error body of the model");
    }
    // Decodes, the model answers, but an extra input matches no feature.
    let extra = r#"{"inputs":[{"name":"input-0","shape":[1,4],"datatype":"FP64","data":[35,42000,0.7,12]},
                   {"name":"extra","shape":[1,2],"datatype":"FP64","data":[1,2]}]}"#;
    let via = send(&client, post(extra)).await;
    assert_eq!(via.status, 200);
    assert_eq!(via.json()["outputs"], send(&client, direct(extra)).await.json()["outputs"]);
    // And a good one still counts.
    assert_eq!(send(&client, post(INFER_BODY)).await.status, 200);

    vigil.wait_metric("vigil_records_total", &[("version", "v1")], 1.0).await;
    let m = vigil.metrics().await;
    assert_eq!(m.sum("vigil_decode_failures_total", &[("reason", "not_json")]), 1.0);
    assert_eq!(m.sum("vigil_decode_failures_total", &[("reason", "truncated")]), 1.0);
    assert_eq!(m.sum("vigil_decode_failures_total", &[("reason", "schema_mismatch")]), 1.0);
    let d = poll_for("the schema warning", || async {
        let d = vigil.admin("GET", "/admin/drift", None).await.json();
        if d["schema_warnings"].as_array().unwrap().is_empty() {
            Err(d.to_string())
        } else {
            Ok(d)
        }
    })
    .await;
    assert!(d["schema_warnings"][0].as_str().unwrap().contains("\"extra\""), "{d}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_is_replaced_at_run_time_audited_and_kept_across_restarts() {
    let model = DemoModel::start("v1").await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let reference = reference_file(dir.path(), 500, 1);
    let config = format!("{SCHEMA}\n[drift]\nwindow = 100\nevaluate_every = \"100ms\"\n");
    let start = || {
        Vigil::builder()
            .upstream("v1", &model.url())
            .config(&config)
            .state_dir(&state)
            .env("VIGIL_ADMIN_TOKEN", "s3cret")
            .args(["--reference".to_string(), reference.display().to_string()])
            .start()
    };
    let vigil = start().await;
    let r = vigil.admin("GET", "/admin/reference", None).await.json();
    assert_eq!(r["reference"]["rows"], 500);
    assert_eq!(r["reference"]["source"]["kind"], "file");

    let csv = vigil::demo::reference_csv(300, 9);
    let auth = [("authorization", "Bearer s3cret"), ("content-type", "text/csv"), ("x-vigil-actor", "alice")];
    // No token: 401, nothing changes.
    let r = vigil.admin_req("PUT", "/admin/reference", Some(&csv), &[("content-type", "text/csv")]).await;
    assert_eq!(r.status, 401);
    // Unknown media type: 415.
    let r = vigil
        .admin_req(
            "PUT",
            "/admin/reference",
            Some(&csv),
            &[("authorization", "Bearer s3cret"), ("content-type", "image/png")],
        )
        .await;
    assert_eq!(r.status, 415, "{}", r.text());
    // A CSV with a short row: 400 naming the line.
    let bad = "age,income,debt_ratio,tenure_months,probability,label\n1,2,3,4,0.5,1\n1,2\n";
    let r = vigil.admin_req("PUT", "/admin/reference", Some(bad), &auth).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.json()["error"].as_str().unwrap().contains('3'), "{}", r.text());
    // A CSV without the configured prediction columns: 422 naming them.
    let r = vigil.admin_req("PUT", "/admin/reference", Some("age,income\n1,2\n"), &auth).await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.json()["error"].as_str().unwrap().contains("probability"), "{}", r.text());

    let r = vigil.admin_req("PUT", "/admin/reference", Some(&csv), &auth).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["rows"], 300);
    eventually("the new reference in use", || async {
        vigil.admin("GET", "/admin/reference", None).await.json()["reference"]["rows"] == 300
    })
    .await;
    let audit = std::fs::read_to_string(state.join("audit.jsonl")).unwrap();
    let last: Value = serde_json::from_str(audit.lines().last().unwrap()).unwrap();
    assert_eq!(last["action"], "reference.replace");
    assert_eq!(last["actor"], "alice");
    assert_eq!(last["before"]["rows"], 500);
    assert_eq!(last["after"]["rows"], 300);
    assert_eq!(audit.lines().count(), 1, "refused uploads are not audited:\n{audit}");
    drop(vigil);

    // A restart with the same config keeps the uploaded reference, not the file.
    let vigil = start().await;
    let r = vigil.admin("GET", "/admin/reference", None).await.json();
    assert_eq!(r["reference"]["rows"], 300, "{r}");
    assert_eq!(r["reference"]["source"]["kind"], "upload");
    assert_eq!(r["reference"]["source"]["actor"], "alice");
    // DELETE goes back to the file.
    let r = vigil.admin_req("DELETE", "/admin/reference", None, &auth).await;
    assert_eq!(r.status, 200, "{}", r.text());
    eventually("the file's reference in use", || async {
        vigil.admin("GET", "/admin/reference", None).await.json()["reference"]["rows"] == 500
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_is_learned_from_the_first_live_records() {
    let model = DemoModel::start("v1").await;
    let vigil = Vigil::builder()
        .upstream("v1", &model.url())
        .config("[reference]\nlearn = 200\n[drift]\nwindow = 100\nevaluate_every = \"100ms\"\n")
        .start()
        .await;
    let d = vigil.admin("GET", "/admin/drift", None).await.json();
    assert_eq!(d["status"], "learning", "{d}");
    traffic(&vigil, 40, 8, &[]).await;
    let d = poll_for("a learned reference", || async {
        let d = vigil.admin("GET", "/admin/drift", None).await.json();
        if d["status"] == "ok" {
            Ok(d)
        } else {
            Err(d.to_string())
        }
    })
    .await;
    assert_eq!(d["reference"]["source"]["kind"], "learned");
    assert_eq!(d["reference"]["rows"], 200);
    // One wide input with no names configured: columns named after the input.
    assert_eq!(d["reference"]["features"][0]["name"], "input-0[0]", "{d}");
    assert_eq!(d["reference"]["predictions"][0]["name"], "probability");
    assert!(vigil.state_dir.join("reference.jsonl").exists());
}

#[test]
fn offline_drift_compares_two_files_with_the_live_machinery() {
    let dir = tempfile::tempdir().unwrap();
    let reference = reference_file(dir.path(), 600, 1);
    let same = dir.path().join("same.csv");
    std::fs::write(&same, vigil::demo::reference_csv(400, 2)).unwrap();
    // Shift age by 20 years in a copy.
    let shifted = dir.path().join("shifted.csv");
    let text = vigil::demo::reference_csv(400, 3);
    let mut lines = text.lines();
    let mut out = format!("{}\n", lines.next().unwrap());
    for l in lines {
        let (age, rest) = l.split_once(',').unwrap();
        out.push_str(&format!("{},{rest}\n", age.parse::<f64>().unwrap() + 20.0));
    }
    std::fs::write(&shifted, out).unwrap();
    let config = dir.path().join("vigil.toml");
    std::fs::write(&config, SCHEMA).unwrap();
    let run = |current: &std::path::Path| {
        run_to_exit(
            &[
                "drift",
                "--reference",
                reference.to_str().unwrap(),
                "--current",
                current.to_str().unwrap(),
                "--config",
                config.to_str().unwrap(),
            ],
            &[],
        )
    };
    let ok = run(&same);
    assert_eq!(ok.status.code(), Some(0), "{}", String::from_utf8_lossy(&ok.stderr));
    let report: Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(report["window"]["records"], 400);
    assert_eq!(report["dataset"]["drifted"], 0, "{report}");
    let drifted = run(&shifted);
    assert_eq!(drifted.status.code(), Some(1), "{}", String::from_utf8_lossy(&drifted.stderr));
    let report: Value = serde_json::from_slice(&drifted.stdout).unwrap();
    let age = report["features"].as_array().unwrap().iter().find(|f| f["name"] == "age").unwrap();
    assert_eq!(age["drift"], true, "{age}");
    assert_eq!(age["method"], "ks");
    let bad = run_to_exit(&["drift", "--reference", "/nonexistent.csv", "--current", same.to_str().unwrap()], &[]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--reference"), "{}", String::from_utf8_lossy(&bad.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_and_json_pointer_payloads_become_records() {
    let model = DemoModel::start("v1").await;
    let dir = tempfile::tempdir().unwrap();
    // The demo reference with V1's unnamed output named "prediction".
    let csv = vigil::demo::reference_csv(500, 1).replacen("probability,label", "prediction,label", 1);
    let reference = dir.path().join("reference.csv");
    std::fs::write(&reference, csv).unwrap();
    let vigil = Vigil::builder()
        .upstream("v1", &model.url())
        .config(
            "[schema]\npredictions = [\"prediction\"]\ntarget = \"label\"\n\
             [drift]\nwindow = 100\nevaluate_every = \"100ms\"\n",
        )
        .args(["--reference".to_string(), reference.display().to_string()])
        .start()
        .await;
    let client = h1_client();
    let body = r#"{"instances": [[35, 42000, 0.7, 12], [50, 61000, 0.2, 40], [23, 18000, 0.9, 2]]}"#;
    let r = send(
        &client,
        request("POST", &vigil.url("/v1/models/demo:predict"))
            .header("content-type", "application/json")
            .body(TestBody::full(body))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let d = drift_with(&vigil, "v1", 3).await;
    let p = &d["versions"]["v1"]["predictions"][0];
    assert_eq!(p["name"], "prediction");
    assert_eq!(p["records"], 3, "{p}");
    assert_eq!(feature(&d, "v1", "income")["records"], 3);

    // Any JSON API, mapped with pointers: the test upstream echoes the body back, so the
    // predictions are read from the same document.
    let up = Upstream::start("u").await;
    let vigil = Vigil::builder()
        .upstream("v1", &up.url())
        .config(
            "[schema]\npredictions = [\"prediction\"]\ntarget = \"label\"\n\
             [drift]\nwindow = 100\nevaluate_every = \"100ms\"\n\
             [[codec.routes]]\npath_prefix = \"/echo/score\"\nprotocol = \"json\"\n\
             features = \"/data/rows\"\npredictions = \"/result/scores\"\n",
        )
        .args(["--reference".to_string(), reference.display().to_string()])
        .start()
        .await;
    let body = r#"{"data": {"rows": [{"age": 35, "income": 42000, "debt_ratio": 0.7, "tenure_months": 12},
                                     {"age": 51, "income": 30000, "debt_ratio": 0.1, "tenure_months": 3}]},
                   "result": {"scores": [0.2, 0.7]}}"#;
    let r = send(&client, request("POST", &vigil.url("/echo/score")).body(TestBody::full(body)).unwrap()).await;
    assert_eq!(r.status, 200);
    let d = drift_with(&vigil, "v1", 2).await;
    assert_eq!(feature(&d, "v1", "debt_ratio")["records"], 2, "{d}");
    assert_eq!(d["versions"]["v1"]["predictions"][0]["records"], 2, "{d}");
    // Paths no route names and no protocol claims are proxied and not analysed.
    let r = send(&client, request("POST", &vigil.url("/echo/other")).body(TestBody::full(body)).unwrap()).await;
    assert_eq!(r.status, 200);
    let m = vigil.metrics().await;
    assert_eq!(m.sum("vigil_decode_failures_total", &[]), 0.0, "{}", m.text);
}
