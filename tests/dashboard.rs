//! The dashboard at `GET /` of the control plane, through the real binary.
//!
//! - `the_page_and_its_assets_are_served_from_the_binary`: the page, its script, stylesheet and
//!   icon with their headers (CSP `default-src 'self'`, revalidation by ETag), 404 / 405 answers.
//! - `rollback_from_the_dashboard_in_headless_chromium`: end to end in Debian's `chromium`, driven
//!   by playwright from `tests/e2e/dashboard.py` with the Python named by `VIGIL_BROWSER_PYTHON`
//!   (`.ci/run` builds one in `target/browser-venv`). Without it the test says so and passes,
//!   except under CI=true, where it fails. vigil runs in front of the demo model as v1 and v2 with
//!   a reference, traffic flows, and v2 is activated through the API (v1 is `previous`); the
//!   script checks the page (charts with data, versions, the API's error for a wrong token),
//!   clicks Roll back with the right token, then Activate v2 and Roll back again, then starts a
//!   rollout of v2 through the API and finds it, a firing alert of this test's rule and the shadow
//!   state in their panels (every panel reads vigil's own routes: nothing is faked in the
//!   browser); this side then checks that the API says v1 is active with v2 at 25%, and the audit
//!   trail has exactly those changes, by the token's holder. The screenshot is
//!   `target/dashboard.png`.

mod support;

use serde_json::Value;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use support::*;

const TOKEN: &str = "dashboard-test-token";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_and_its_assets_are_served_from_the_binary() {
    let model = DemoModel::start("v1").await;
    let vigil = Vigil::builder().upstream("v1", &model.url()).start().await;

    let page = vigil.admin("GET", "/", None).await;
    assert_eq!(page.status, 200, "{}", page.text());
    assert_eq!(page.header("content-type"), Some("text/html; charset=utf-8"));
    let csp = page.header("content-security-policy").expect("a CSP header");
    assert!(csp.starts_with("default-src 'self'"), "{csp}");
    assert_eq!(page.header("cache-control"), Some("no-cache"));
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    let html = page.text();
    assert!(html.contains(r#"data-testid="versions-table""#), "{html}");

    for (asset, kind) in [("app.js", "text/javascript"), ("app.css", "text/css"), ("favicon.svg", "image/svg+xml")] {
        let path = format!("/dashboard/{asset}");
        assert!(html.contains(&path), "the page does not load {path}");
        let r = vigil.admin("GET", &path, None).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert!(r.header("content-type").unwrap().starts_with(kind), "{path}: {:?}", r.header("content-type"));
        assert!(!r.text().is_empty());
        // A browser's revalidation: the same bytes answer 304 with no body.
        let etag = r.header("etag").expect("an ETag").to_owned();
        let again = vigil.admin_req("GET", &path, None, &[("if-none-match", &etag)]).await;
        assert_eq!(again.status, 304, "{path}");
        assert!(again.text().is_empty());
    }
    // The page and a trailing slash are the same route; other methods and names are refused.
    let r = vigil.admin("GET", "/dashboard/app.js/", None).await;
    assert_eq!(r.status, 200);
    let r = vigil.admin("GET", "/dashboard/secrets.txt", None).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["kind"], "not_found");
    let r = vigil.admin("POST", "/", None).await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET"));
    let r = vigil.admin("DELETE", "/dashboard/app.js", None).await;
    assert_eq!(r.status, 405);
    assert_eq!(r.json()["kind"], "method_not_allowed");
}

fn browser_python_or_skip() -> Option<PathBuf> {
    let python = std::env::var_os("VIGIL_BROWSER_PYTHON").filter(|p| !p.is_empty()).map(PathBuf::from);
    if python.is_none() {
        assert!(std::env::var_os("CI").is_none(), "CI is set but VIGIL_BROWSER_PYTHON is not: .ci/run builds the venv");
        println!("skipped: set VIGIL_BROWSER_PYTHON to a Python with playwright, and install chromium (see .ci/run)");
        eprintln!("skipped: set VIGIL_BROWSER_PYTHON to a Python with playwright, and install chromium (see .ci/run)");
    }
    python
}

/// Demo-model V2 traffic through vigil at `rate` requests/s of 4 rows each, for `duration` or
/// until `stop` resolves.
async fn traffic(vigil: &Vigil, rate: f64, duration: Option<Duration>, stop: impl std::future::Future<Output = ()>) {
    let cfg = vigil_loadtest::Config {
        target: vigil.url("").parse().unwrap(),
        rate,
        duration,
        batch: 4,
        connections: 2,
        seed: 3,
        reference: Arc::new(vigil_loadtest::Reference::default()),
        ..Default::default()
    };
    let report = vigil_loadtest::run(cfg, stop).await;
    assert_eq!(report.errors.total(), 0, "{}", report.to_table());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_from_the_dashboard_in_headless_chromium() {
    let Some(python) = browser_python_or_skip() else { return };
    let (m1, m2) = (DemoModel::start("v1").await, DemoModel::start("v2").await);
    let dir = tempfile::tempdir().unwrap();
    let reference = dir.path().join("reference.csv");
    std::fs::write(&reference, vigil::demo::reference_csv(500, 7)).unwrap();
    let config = format!(
        "[schema]\npredictions = [\"probability\", \"label\"]\n\
         [drift]\nwindow = 200\nevaluate_every = \"200ms\"\n\
         [resources]\nmodel_pid = {}\n\
         [alerts]\nevaluate_every = \"200ms\"\n\
         [[alerts.rules]]\nalert = \"DashboardTraffic\"\nfigure = \"request_rate\"\nwindow = \"5s\"\n\
         match = {{ version = \"v1\" }}\nabove = 0.0\nseverity = \"info\"\n\
         annotations = {{ summary = \"traffic on {{{{ $labels.version }}}}\" }}\n",
        m1.pid()
    );
    let vigil = Vigil::builder()
        .upstream("v1", &m1.url())
        .upstream("v2", &m2.url())
        .config(&config)
        .args(["--reference".to_string(), reference.display().to_string()])
        .env("VIGIL_ADMIN_TOKEN", TOKEN)
        .start()
        .await;

    // Rows for v1's drift window and latency, then v2 active through the API: v1 is `previous`.
    traffic(&vigil, 100.0, Some(Duration::from_millis(800)), std::future::pending()).await;
    poll_for("v1's drift scores and latency", || async {
        let d = vigil.admin("GET", "/admin/drift", None).await.json();
        let scored =
            d["versions"]["v1"]["features"].as_array().is_some_and(|f| f.iter().all(|f| f["statistic"].is_number()));
        let l = vigil.admin("GET", "/admin/latency", None).await.json();
        if scored && l["versions"]["v1"]["count"].as_u64() > Some(0) {
            Ok(())
        } else {
            Err(format!("drift: {d}\nlatency: {l}"))
        }
    })
    .await;
    let bearer = format!("Bearer {TOKEN}");
    let r = vigil.admin_req("POST", "/admin/versions/v2/activate", None, &[("authorization", &bearer)]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = vigil.versions().await;
    assert_eq!((v["active"].as_str(), v["previous"].as_str()), (Some("v2"), Some("v1")), "{v}");

    // Light traffic while the browser watches, so the traffic lines move.
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let background = {
        let target = vigil.url("");
        tokio::spawn(async move {
            let cfg = vigil_loadtest::Config {
                target: target.parse().unwrap(),
                rate: 10.0,
                batch: 4,
                connections: 1,
                seed: 5,
                reference: Arc::new(vigil_loadtest::Reference::default()),
                ..Default::default()
            };
            vigil_loadtest::run(cfg, async move {
                let _ = stop_rx.await;
            })
            .await
        })
    };

    let screenshot = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/dashboard.png");
    let mut cmd = Command::new(&python);
    cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/dashboard.py"))
        .args(["--url", &vigil.admin_url("/"), "--token", TOKEN, "--screenshot"])
        .arg(&screenshot)
        .stdin(Stdio::null());
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("run the dashboard script")).await.unwrap();
    let _ = stop_tx.send(());
    let report = background.await.unwrap();
    assert_eq!(report.errors.total(), 0, "{}", report.to_table());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "dashboard.py: {}\nstdout:\n{stdout}\nstderr:\n{stderr}", out.status);
    let figures: Value = serde_json::from_str(stdout.trim().lines().last().unwrap_or("")).expect("the script's JSON");
    println!("dashboard.py: {figures}");
    assert_eq!(figures["wrong_token_error"]["kind"], "unauthorized", "{figures}");

    // The click went through the API: v1 is active, and the trail says who rolled back.
    let v = vigil.versions().await;
    assert_eq!(v["active"], "v1", "{v}");
    let audit = vigil.admin("GET", "/admin/audit?action=version.rollback", None).await.json();
    assert_eq!(audit["matched"], 2, "{audit}");
    for entry in audit["entries"].as_array().unwrap() {
        assert_eq!(entry["actor"], "admin", "{entry}");
        assert_eq!(entry["before"]["active"], "v2", "{entry}");
        assert_eq!(entry["after"]["active"], "v1", "{entry}");
    }
    // The API's activation, then the page's rollback, Activate v2 and rollback; the refused click
    // (wrong token) changed and audited nothing. Then the script's rollout of v2 (at 25%).
    let trail = vigil.audit();
    let actions: Vec<(&str, &str)> = trail
        .iter()
        .map(|e| (e["action"].as_str().unwrap(), e["target"].as_str().unwrap_or("-")))
        .filter(|(a, _)| a.starts_with("version.") || a.starts_with("rollout."))
        .collect();
    assert_eq!(
        actions,
        [
            ("version.activate", "v2"),
            ("version.rollback", "-"),
            ("version.activate", "v2"),
            ("version.rollback", "-"),
            ("rollout.start", "v2")
        ],
        "{trail:?}"
    );
    let r = vigil.admin("GET", "/admin/rollouts", None).await.json();
    assert_eq!(r["current"]["id"], figures["rollout_id"], "{r}");
    assert_eq!(r["current"]["weight"], 25, "{r}");
    assert!(trail.iter().any(|e| e["action"] == "alert.firing"), "the test rule's alert was not audited");
    assert!(std::fs::metadata(&screenshot).map(|m| m.len() > 10_000).unwrap_or(false), "no screenshot");
}
