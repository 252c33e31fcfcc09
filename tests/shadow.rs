//! Shadow traffic through the real binary: mirrored copies to a candidate, the what-if kinds
//! (sensitivity, stress, adversarial, explanations) against the demo model over real sockets,
//! and the budget, proven by counting what the model servers received (`GET /stats/received`
//! on the demo model: requests and rows by `x-vigil-shadow` kind).

mod support;

use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;
use support::*;

const ROWS: usize = 4;

fn reference_file(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("reference.csv");
    std::fs::write(&path, vigil::demo::reference_csv(1000, 7)).unwrap();
    path
}

/// The what-if kinds off: tests of mirroring and probing alone.
const NO_WHATIF: &str = r#"
"#;

fn config(extra: &str) -> String {
    format!(
        r#"
[schema]
predictions = ["probability", "label"]
[performance]
probability = "probability"
prediction = "label"
{extra}
"#
    )
}

/// One V2 request of `ROWS` rows through vigil; the answer must be the model's.
async fn infer(vigil: &Vigil, rng: &mut fastrand::Rng) -> Value {
    let data: Vec<f64> = (0..ROWS)
        .flat_map(|_| {
            [
                40.0 + 12.0 * (rng.f64() * 2.0 - 1.0),
                55_000.0 + 15_000.0 * (rng.f64() * 2.0 - 1.0),
                0.5 + 0.167 * (rng.f64() * 2.0 - 1.0),
                36.0 + 20.0 * (rng.f64() * 2.0 - 1.0),
            ]
        })
        .collect();
    let body = json!({"inputs": [{"name": "input-0", "shape": [ROWS, 4], "datatype": "FP64", "data": data}]});
    let req = request("POST", &vigil.url("/v2/models/demo/infer"))
        .header("content-type", "application/json")
        .body(TestBody::full(body.to_string()))
        .unwrap();
    let r = send(&h1_client(), req).await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

/// Requests and rows the model received, by kind ("live", "mirror", "sensitivity", ...).
async fn received(model: &DemoModel) -> Value {
    get(&format!("{}/stats/received", model.url())).await.json()
}

fn rows_of(r: &Value, kind: &str) -> f64 {
    r[kind]["rows"].as_f64().unwrap_or(0.0)
}

/// Live traffic at a steady pace: `n` requests, one every `gap`.
async fn steady(vigil: &Vigil, n: usize, gap: Duration) {
    let mut rng = fastrand::Rng::with_seed(7);
    let mut tick = tokio::time::interval(gap);
    for _ in 0..n {
        tick.tick().await;
        infer(vigil, &mut rng).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shadow_traffic_never_exceeds_its_budget() {
    let (v1, v2) = (DemoModel::start("v1").await, DemoModel::start("v2").await);
    let dir = tempfile::tempdir().unwrap();
    let reference = reference_file(dir.path());
    // Small budgets, frequent jobs: every kind wants more than it may have.
    let shares =
        [("mirror", 0.5, 20.0), ("sensitivity", 0.1, 40.0), ("adversarial", 0.1, 60.0), ("explain", 0.2, 100.0)];
    let extra = r#"
[shadow.mirror]
noise_fraction = 0.0
budget = { share = 0.5, burst = 20.0, max_concurrency = 4 }
[shadow.mirror.candidates]
v2 = 1.0
[shadow.sensitivity]
budget = { share = 0.1, burst = 40.0, max_concurrency = 1 }
every = "100ms"
steps = [0.5, 1.0]
[shadow.stress]
enabled = false
[shadow.adversarial]
budget = { share = 0.1, burst = 60.0, max_concurrency = 1 }
every = "100ms"
queries = 50
[shadow.explain]
budget = { share = 0.2, burst = 100.0, max_concurrency = 1 }
every = "100ms"
background = 5
"#;
    let vigil = Vigil::builder()
        .upstream("v1", &v1.url())
        .upstream("v2", &v2.url())
        .config(&config(extra))
        .args(["--reference".to_string(), reference.display().to_string(), "--active".into(), "v1".into()])
        .start()
        .await;

    // 4 s of live traffic at 100 requests (400 rows) per second.
    steady(&vigil, 400, Duration::from_millis(10)).await;
    // Let jobs in flight finish; nothing new is affordable without live traffic... except what
    // the buckets still hold, which the bound below includes (the burst).
    tokio::time::sleep(Duration::from_secs(3)).await;

    let (r1, r2) = (received(&v1).await, received(&v2).await);
    let live = rows_of(&r1, "live");
    assert_eq!(live, (400 * ROWS) as f64, "v1 received every live row once: {r1}");
    assert_eq!(rows_of(&r2, "live"), 0.0, "the candidate received no live traffic: {r2}");
    // The bound: a bucket starts empty, fills at share × the live row rate (pingora-limits'
    // estimate, which trails the true rate by up to one 1 s interval) and holds at most `burst`.
    // So over the run a kind sends at most share × live rows + burst, plus share × one second of
    // live rows for the estimator's lag at the end of the run (400 rows/s).
    for (kind, share, burst) in shares {
        let sent = if kind == "mirror" { rows_of(&r2, kind) } else { rows_of(&r1, kind) };
        let bound = share * live + burst + share * 400.0;
        assert!(sent <= bound, "{kind}: {sent} rows sent, budget {bound} ({r1} / {r2})");
        eprintln!("{kind}: {sent} rows sent of a budget of {bound}");
    }
    assert!(rows_of(&r2, "mirror") > 0.0, "mirroring happened: {r2}");
    assert!(rows_of(&r1, "sensitivity") > 0.0, "sensitivity jobs ran: {r1}");
    assert!(rows_of(&r1, "explain") > 0.0, "explanations ran: {r1}");

    // What was refused is counted, and the live monitors saw live rows only.
    let m = vigil.metrics().await;
    let refused = m.sum("vigil_shadow_requests_total", &[("kind", "mirror"), ("result", "budget")]);
    assert!(refused > 0.0, "a 100% mirror over a 50% budget refuses some copies");
    assert_eq!(m.sum("vigil_records_total", &[("version", "v1")]), (400 * ROWS) as f64);
    assert_eq!(m.sum("vigil_records_total", &[("version", "v2")]), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirrored_candidate_is_compared_with_the_live_answers() {
    let (v1, v2) = (DemoModel::start("v1").await, DemoModel::start("v2").await);
    let dir = tempfile::tempdir().unwrap();
    let reference = reference_file(dir.path());
    let extra = r#"
[shadow.mirror]
noise_fraction = 0.5
"#;
    let vigil = Vigil::builder()
        .upstream("v1", &v1.url())
        .upstream("v2", &v2.url())
        .config(&config(&format!("{extra}{NO_WHATIF}")))
        .args(["--reference", &reference.display().to_string(), "--active", "v1", "--mirror", "v2=1.0"])
        .start()
        .await;
    steady(&vigil, 300, Duration::from_millis(5)).await;

    let shadow = poll_for("mirror comparisons of 100+ requests", || async {
        let s = vigil.admin("GET", "/admin/shadow", None).await.json();
        if s["mirrors"]["v2"]["requests"].as_u64().unwrap_or(0) >= 100 {
            Ok(s)
        } else {
            Err(s.to_string())
        }
    })
    .await;
    let v2view = &shadow["mirrors"]["v2"];
    let agreement = v2view["agreement_ratio"].as_f64().unwrap();
    // v2's weights differ from v1's: they disagree on some rows, agree on most.
    assert!(agreement > 0.5 && agreement < 1.0, "{v2view}");
    assert!(v2view["mean_abs_score_diff"].as_f64().unwrap() > 0.0);
    assert_eq!(v2view["error_ratio"].as_f64(), Some(0.0));
    // The demo model is deterministic: it agrees with itself, and the whole disagreement is real.
    assert_eq!(v2view["noise_agreement_ratio"].as_f64(), Some(1.0), "{v2view}");
    assert!((v2view["disagreement_beyond_noise"].as_f64().unwrap() - (1.0 - agreement)).abs() < 1e-12);
    assert!(v2view["candidate_latency"]["count"].as_u64().unwrap() >= 100);
    assert!(v2view["live_latency"]["p99"].as_f64().unwrap() > 0.0);
    let gauge = vigil.metrics().await.sum("vigil_mirror_agreement_ratio", &[("candidate", "v2")]);
    assert!(gauge > 0.5 && gauge < 1.0, "vigil_mirror_agreement_ratio (published every second): {gauge}");

    // The admin API stops it (audited); a fraction outside [0, 1] and the active version are refused.
    let bad = vigil.admin("PUT", "/admin/shadow/mirrors/v2", Some(json!({"fraction": 1.5}))).await;
    assert_eq!(bad.status, 400, "{}", bad.text());
    let active = vigil.admin("PUT", "/admin/shadow/mirrors/v1", Some(json!({"fraction": 0.5}))).await;
    assert_eq!(active.status, 409, "{}", active.text());
    let unknown = vigil.admin("PUT", "/admin/shadow/mirrors/v9", Some(json!({"fraction": 0.5}))).await;
    assert_eq!(unknown.status, 404, "{}", unknown.text());
    let del = vigil.admin("DELETE", "/admin/shadow/mirrors/v2", None).await;
    assert_eq!(del.status, 200, "{}", del.text());
    let audit = std::fs::read_to_string(vigil.state_dir.join("audit.jsonl")).unwrap();
    assert!(audit.lines().any(|l| l.contains("\"mirror.delete\"")), "{audit}");
    // Copies already on their way when DELETE answered may still land; none may start after it.
    let before = poll_for("mirrored copies in flight to land", || async {
        let a = rows_of(&received(&v2).await, "mirror");
        tokio::time::sleep(Duration::from_millis(300)).await;
        let b = rows_of(&received(&v2).await, "mirror");
        if a == b {
            Ok(b)
        } else {
            Err(format!("{a} then {b} mirrored rows"))
        }
    })
    .await;
    steady(&vigil, 50, Duration::from_millis(5)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rows_of(&received(&v2).await, "mirror"), before, "no mirroring after DELETE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn robustness_and_explanations_per_version() {
    let v1 = DemoModel::start("v1").await;
    let dir = tempfile::tempdir().unwrap();
    let reference = reference_file(dir.path());
    let extra = r#"
[shadow.sensitivity]
budget = { share = 1.0, burst = 1000.0, max_concurrency = 1 }
every = "200ms"
[shadow.stress]
budget = { share = 1.0, burst = 1100.0, max_concurrency = 1 }
every = "1s"
batch_rows = 50
[shadow.adversarial]
budget = { share = 1.0, burst = 1000.0, max_concurrency = 1 }
every = "200ms"
queries = 300
[shadow.explain]
budget = { share = 1.0, burst = 5000.0, max_concurrency = 1 }
every = "200ms"
background = 10
"#;
    let vigil = Vigil::builder()
        .upstream("v1", &v1.url())
        .config(&config(extra))
        .args(["--reference".to_string(), reference.display().to_string()])
        .start()
        .await;
    let traffic = async {
        steady(&vigil, 1500, Duration::from_millis(4)).await;
    };
    let report = async {
        poll_for("sensitivity, stress, adversarial and importance for v1", || async {
            let r = vigil.admin("GET", "/admin/robustness?version=v1", None).await.json();
            let v = &r["versions"][0];
            let ready = !v["sensitivity"].is_null()
                && !v["stress"].is_null()
                && !v["adversarial"].is_null()
                && !v["importance"].is_null();
            if ready {
                Ok(r)
            } else {
                let s = vigil.admin("GET", "/admin/shadow", None).await.json();
                Err(format!("{r}\nshadow: {}", s["jobs"]))
            }
        })
        .await
    };
    let (_, report) = tokio::join!(traffic, report);
    eprintln!("{report:#}");
    let m = vigil.metrics().await;
    for f in ["age", "income", "debt_ratio", "tenure_months"] {
        let s = m.sum("vigil_feature_sensitivity", &[("version", "v1"), ("feature", f)]);
        assert!(s > 0.0 && s < 1.0, "{f}: sensitivity {s}");
        let i = m.sum("vigil_feature_importance", &[("version", "v1"), ("feature", f)]);
        assert!(i >= 0.0, "{f}: importance {i}");
    }
    // debt_ratio has the largest standardized weight in v1 (1.5): it moves the score most per std.
    let s = |f: &str| m.sum("vigil_feature_sensitivity", &[("version", "v1"), ("feature", f)]);
    assert!(s("debt_ratio") > s("age") && s("debt_ratio") > s("tenure_months"));
    let flip = m.sum("vigil_adversarial_flip_ratio", &[("version", "v1")]);
    assert!((0.0..=1.0).contains(&flip));

    // One explanation on demand: Σ SHAP = prediction − base value (shap's local accuracy).
    let payload = json!({"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64",
        "data": [52.0, 30000.0, 0.8, 6.0]}]});
    let r =
        vigil.admin("POST", "/admin/explain", Some(json!({"request": payload, "path": "/v2/models/demo/infer"}))).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let e = r.json();
    let shap = &e["shap"];
    let sum: f64 = shap["values"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).sum();
    let (pred, base) = (shap["prediction"].as_f64().unwrap(), shap["base_value"].as_f64().unwrap());
    assert!((sum - (pred - base)).abs() < 1e-9, "local accuracy: {sum} vs {pred} - {base}");
    assert!(e["values"]["debt_ratio"].as_f64().unwrap() > 0.0, "a high debt ratio raises the default risk: {e}");
    // Bad requests get JSON errors.
    let bad = vigil
        .admin("POST", "/admin/explain", Some(json!({"request": {"inputs": []}, "path": "/v2/models/demo/infer"})))
        .await;
    assert_eq!(bad.status, 400, "{}", bad.text());
    let missing = vigil.admin("GET", "/admin/explain/no-such-request", None).await;
    assert_eq!(missing.status, 404, "{}", missing.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shadow_pauses_while_the_live_upstream_is_slow() {
    let (v1, v2) = (DemoModel::start("v1").await, DemoModel::start("v2").await);
    let dir = tempfile::tempdir().unwrap();
    let reference = reference_file(dir.path());
    let extra = r#"
[shadow.pause]
p99_latency = "100ms"
window = "3s"
min_requests = 10
"#;
    let vigil = Vigil::builder()
        .upstream("v1", &v1.url())
        .upstream("v2", &v2.url())
        .config(&config(&format!("{extra}{NO_WHATIF}")))
        .args(["--reference", &reference.display().to_string(), "--active", "v1", "--mirror", "v2=1.0"])
        .start()
        .await;
    // The model slows down: every live answer takes 150 ms, above the 100 ms p99 limit.
    let slow = |i: usize| {
        let vigil = &vigil;
        async move {
            let body = json!({"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64",
                "data": [40.0 + i as f64, 55000.0, 0.5, 36.0]}]});
            let req = request("POST", &vigil.url("/v2/models/demo/infer"))
                .header("content-type", "application/json")
                .header("x-demo-delay-ms", "150")
                .body(TestBody::full(body.to_string()))
                .unwrap();
            assert_eq!(send(&h1_client(), req).await.status, 200);
        }
    };
    futures_util::future::join_all((0..40).map(slow)).await;
    let paused = poll_for("shadow paused", || async {
        let s = vigil.admin("GET", "/admin/shadow", None).await.json();
        if s["paused"]["signal"] == "latency" {
            Ok(s)
        } else {
            Err(s.to_string())
        }
    })
    .await;
    assert!(paused["paused"]["observed"].as_f64().unwrap() > 0.01, "{paused}");
    let before = rows_of(&received(&v2).await, "mirror");
    futures_util::future::join_all((40..60).map(slow)).await;
    // The gauge is published every second.
    vigil.wait_metric("vigil_shadow_paused", &[("kind", "mirror")], 1.0).await;
    let m = vigil.metrics().await;
    assert!(m.sum("vigil_shadow_requests_total", &[("kind", "mirror"), ("result", "paused")]) > 0.0);
    assert_eq!(rows_of(&received(&v2).await, "mirror"), before, "nothing mirrored while paused");

    // Fast again: once the slow answers leave the 3 s window, mirroring resumes.
    tokio::time::sleep(Duration::from_secs(3)).await;
    steady(&vigil, 40, Duration::from_millis(10)).await;
    poll_for("mirroring resumed", || async {
        let now = rows_of(&received(&v2).await, "mirror");
        if now > before {
            Ok(())
        } else {
            Err(format!("{now} mirrored rows"))
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_probing_the_decision_boundary_is_flagged_audited_and_blocked() {
    let v1 = DemoModel::start("v1").await;
    let dir = tempfile::tempdir().unwrap();
    let reference = reference_file(dir.path());
    let extra = r#"
[shadow.probing]
block = true
min_requests = 30
"#;
    let vigil = Vigil::builder()
        .upstream("v1", &v1.url())
        .config(&config(&format!("{extra}{NO_WHATIF}")))
        .args(["--reference".to_string(), reference.display().to_string()])
        .start()
        .await;
    let ask = |client: &'static str, debt: f64| {
        let vigil = &vigil;
        async move {
            // v1 at the features' means: p = sigmoid(1.5 z_debt − 0.3), 0.5 at debt ≈ 0.533.
            let body = json!({"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64",
                "data": [40.0, 55000.0, debt, 36.0]}]});
            let req = request("POST", &vigil.url("/v2/models/demo/infer"))
                .header("content-type", "application/json")
                .header("x-client-id", client)
                .body(TestBody::full(body.to_string()))
                .unwrap();
            send(&h1_client(), req).await.status
        }
    };
    // An honest client with spread-out inputs, and a prober sweeping debt_ratio in tiny steps
    // around the boundary.
    let mut rng = fastrand::Rng::with_seed(3);
    for i in 0..60 {
        assert_eq!(ask("honest", 0.5 + 0.3 * (rng.f64() * 2.0 - 1.0)).await, 200);
        let status = ask("prober", 0.52 + 0.0005 * i as f64).await;
        assert!(status == 200 || status == 429);
    }
    let flagged = poll_for("the prober flagged", || async {
        let r = vigil.admin("GET", "/admin/robustness", None).await.json();
        let f = r["probing"]["flagged"].as_array().cloned().unwrap_or_default();
        if f.iter().any(|c| c["client"] == "prober") {
            Ok(f)
        } else {
            Err(r["probing"].to_string())
        }
    })
    .await;
    assert!(!flagged.iter().any(|c| c["client"] == "honest"), "{flagged:?}");
    let r = ask("prober", 0.53).await;
    assert_eq!(r, 429, "a flagged client is answered 429 while block = true");
    assert_eq!(ask("honest", 0.4).await, 200);
    let audit = std::fs::read_to_string(vigil.state_dir.join("audit.jsonl")).unwrap();
    assert!(audit.lines().any(|l| l.contains("\"probing.flag\"") && l.contains("prober")), "{audit}");
    let m = vigil.metrics().await;
    assert!(m.sum("vigil_probing_clients_flagged_total", &[]) >= 1.0);
}
