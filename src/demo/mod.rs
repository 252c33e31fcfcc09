//! `vigil demo`: a built-in model server with two versions, vigil in front of it, and light
//! traffic from the load generator, all in one process: vigil's main job with no setup.
//! Owns: nothing the proxy depends on; it only uses the public `app::start`.

pub mod model;

use crate::config::{Config, VersionConfig};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;
use tokio::net::TcpListener;

pub struct DemoOptions {
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    /// Requests per second of generated traffic; 0 for none.
    pub rate: f64,
    /// Stop after this long; `None` until Ctrl-C.
    pub duration: Option<Duration>,
}

/// A reference data set for the demo model: `rows` rows drawn from the demo features'
/// distributions (seeded), with the v1 model's outputs as the `probability` and `label` columns.
pub fn reference_csv(rows: usize, seed: u64) -> String {
    let reference = vigil_loadtest::Reference::default();
    let model = model::DemoModel::new("demo", "v1");
    let mut out = reference.names().join(",");
    out.push_str(",probability,label\n");
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut row = vec![0.0; reference.width()];
    for _ in 0..rows {
        reference.sample_row(&mut rng, &mut row);
        let p = model.predict_row(&row);
        for x in &row {
            out.push_str(&format!("{x},"));
        }
        out.push_str(&format!("{p},{}\n", (p >= 0.5) as u8));
    }
    out
}

/// How late the demo's labels arrive.
const LABEL_DELAY_S: u64 = 5;

/// The demo's labelling job: every second, for the demo requests logged at least
/// [`LABEL_DELAY_S`] seconds ago, draws the truth from the model's own probability (a calibrated
/// model, so the estimated and the realised performance agree until something else changes) and
/// posts it to `POST /feedback` like any labelling job would; one request in five stays unlabelled.
async fn label_demo_traffic(
    log: crate::store::predlog::LogHandle,
    admin: SocketAddr,
    rate: f64,
    stop: tokio_util::sync::WaitForCancellationFutureOwned,
) {
    use http_body_util::Full;
    let client: hyper_util::client::legacy::Client<_, Full<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let mut rng = fastrand::Rng::with_seed(5);
    let mut next = 0u64;
    let started = std::time::Instant::now();
    let work = async {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            // The traffic's request ids count up at `rate` per second from the start.
            let age = started.elapsed().as_secs_f64() - LABEL_DELAY_S as f64;
            let sent_long_ago = (age.max(0.0) * rate) as u64;
            let mut items = Vec::new();
            while next < sent_long_ago && items.len() < 2000 {
                let id = format!("demo-{next}");
                next += 1;
                // Empty: that request's capture was dropped under load, or it failed: no label.
                let Ok(Ok(rows)) = log.rows(&id).await else { continue };
                if rows.is_empty() {
                    continue;
                }
                if rng.u8(0..5) == 0 {
                    continue;
                }
                let labels: Vec<u8> = rows
                    .iter()
                    .map(|r| {
                        let p = r.predictions.get("probability").and_then(serde_json::Value::as_f64).unwrap_or(0.5);
                        (rng.f64() < p) as u8
                    })
                    .collect();
                items.push(serde_json::json!({"request_id": id, "labels": labels}));
            }
            if items.is_empty() {
                continue;
            }
            let body = serde_json::to_vec(&items).expect("labels serialize");
            let req = http::Request::post(format!("http://{admin}/feedback"))
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(Full::new(bytes::Bytes::from(body)))
                .expect("valid request");
            if let Err(e) = client.request(req).await {
                tracing::warn!(error = %e, "demo labeller: POST /feedback failed");
            }
        }
    };
    tokio::select! {
        _ = work => {}
        _ = stop => {}
    }
}

/// When the demo's traffic starts to drift, and how.
const DEMO_SHIFT: &str = "income=1.0@60s";

pub async fn run(opts: DemoOptions) -> ExitCode {
    let mut models = Vec::new();
    // v3 is a broken build (3 in 10 requests answer 500) to roll out and watch roll back.
    for (version, error_ratio) in [("v1", 0.0), ("v2", 0.0), ("v3", 0.3)] {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("loopback port");
        let addr = listener.local_addr().expect("bound");
        tokio::spawn(model::serve(listener, model::DemoModel::new("demo", version).with_error_ratio(error_ratio)));
        models.push((version, addr));
    }
    let state_dir = std::env::temp_dir().join(format!("vigil-demo-{}", std::process::id()));
    let reference = state_dir.join("demo-reference.csv");
    if let Err(e) = std::fs::create_dir_all(&state_dir).and_then(|_| std::fs::write(&reference, reference_csv(2000, 7)))
    {
        eprintln!("vigil demo: cannot write {}: {e}", reference.display());
        return ExitCode::FAILURE;
    }
    let mut config = Config::default();
    config.reference.file = Some(reference);
    config.schema.predictions = vec!["probability".into(), "label".into()];
    config.drift.window = crate::config::WindowSpec::Count(1000);
    config.performance.probability = Some("probability".into());
    config.performance.prediction = Some("label".into());
    config.performance.windows =
        vec![crate::config::WindowSpec::Count(1000), crate::config::WindowSpec::Time(Duration::from_secs(300))];
    config.performance.segments = vec![crate::config::SegmentConfig {
        name: "age_band".into(),
        feature: Some("age".into()),
        pointer: None,
        edges: vec![30.0, 50.0],
    }];
    // Shadow traffic on show: every v1 request mirrored to v2, and the what-if kinds with budgets
    // large enough for demo traffic (the defaults are sized for production rates).
    config.shadow.mirror.candidates.insert("v2".into(), 1.0);
    let generous = |burst: f64| crate::config::Budget { share: 1.0, burst, max_concurrency: 1 };
    config.shadow.sensitivity.budget = generous(200.0);
    config.shadow.stress.budget = generous(1100.0);
    config.shadow.stress.every = std::time::Duration::from_secs(60);
    config.shadow.adversarial.budget = generous(1000.0);
    config.shadow.adversarial.queries = 300;
    config.shadow.adversarial.every = std::time::Duration::from_secs(5);
    config.shadow.explain.budget = generous(5000.0);
    config.shadow.explain.every = std::time::Duration::from_secs(5);
    config.proxy.listen = opts.listen;
    config.admin.listen = opts.admin_listen;
    config.state.dir = state_dir.clone();
    config.versions = models
        .iter()
        .map(|(name, addr)| VersionConfig {
            name: (*name).into(),
            url: format!("http://{addr}"),
            // v2 starts as a 10% canary beside v1.
            weight: if *name == "v2" { 10 } else { 0 },
            protocol: Default::default(),
        })
        .collect();
    if let Err(e) = config.validate() {
        eprintln!("vigil demo: {e}");
        return ExitCode::from(2);
    }
    let app = match crate::app::start(config).await {
        Ok(app) => app,
        Err(e) => {
            eprintln!("vigil demo: {e} (is another vigil running? try --listen / --admin-listen)");
            return ExitCode::FAILURE;
        }
    };
    let (proxy, admin) = (app.proxy_addr, app.admin_addr);
    println!(
        "\nvigil demo is running (state in {dir}).\n\
         \n  model server   v1 http://{v1}   v2 http://{v2}   v3 http://{v3} (a broken build: 30% errors)\
         \n  proxy          http://{proxy}   ({rate} req/s of V2 traffic: 90% v1, 10% v2 canary)\
         \n  control plane  http://{admin}\n\
         \nTry:\
         \n  curl -s http://{proxy}/v2/models/demo/infer -H 'content-type: application/json' \\\
         \n       -d '{{\"inputs\":[{{\"name\":\"input-0\",\"shape\":[1,4],\"datatype\":\"FP64\",\"data\":[35,42000,0.7,12]}}]}}'\
         \n  curl -s http://{admin}/admin/versions\
         \n  curl -s -X POST http://{admin}/admin/versions/v2/activate\
         \n  curl -s -X POST http://{admin}/admin/rollback\
         \n  curl -s http://{admin}/admin/latency\
         \n  curl -s http://{admin}/admin/drift          (verdicts once 1,000 records are in, ~1 min; then income shifts by +1 sd)\
         \n  curl -s http://{admin}/admin/drift/income\
         \n  curl -s http://{admin}/admin/performance   (a labeller posts ground truth for 80% of requests, {LABEL_DELAY_S} s late)\
         \n  curl -s http://{admin}/feedback -H 'content-type: application/json' -d '{{\"request_id\": \"demo-0\", \"label\": 1}}'\
         \n  sqlite3 {dir}/predictions.db 'select request_id, version, predictions, label from predictions limit 3'\
         \n  curl -s http://{admin}/admin/shadow       (v1's requests mirrored to v2: agreement, score difference, latency)\
         \n  curl -s http://{admin}/admin/robustness   (sensitivity, stress, adversarial flips, feature importance)\
         \n  curl -s http://{admin}/admin/explain -H 'content-type: application/json' -d '{{\"path\": \"/v2/models/demo/infer\",\
         \n       \"request\": {{\"inputs\":[{{\"name\":\"input-0\",\"shape\":[1,4],\"datatype\":\"FP64\",\"data\":[35,42000,0.7,12]}}]}}}}'\
         \n  curl -s -X POST http://{admin}/admin/rollouts -d '{{\"candidate\": \"v3\", \"steps\": [10, 50, 100], \"step_duration\": \"30s\",\
         \n       \"analysis\": {{\"interval\": \"5s\"}}}}'   (v3 fails 30% of its requests: watch it roll back)\
         \n  curl -s http://{admin}/admin/rollouts\
         \n  curl -s http://{admin}/admin/alerts        (VigilRolloutRolledBack fires after that rollback)\
         \n  curl -s http://{admin}/metrics | grep ^vigil_\n\
         \nCtrl-C stops.\n",
        dir = state_dir.display(),
        v1 = models[0].1,
        v2 = models[1].1,
        v3 = models[2].1,
        rate = opts.rate,
    );

    let stop = tokio_util::sync::CancellationToken::new();
    let traffic = (opts.rate > 0.0).then(|| {
        let cfg = vigil_loadtest::Config {
            target: format!("http://{proxy}").parse().expect("valid URI"),
            rate: opts.rate,
            connections: 8,
            request_id_prefix: Some("demo-".into()),
            transform: Some(std::sync::Arc::new(
                vigil_loadtest::Shift::parse(&[DEMO_SHIFT.into()], &vigil_loadtest::Reference::default())
                    .expect("the demo's shift is valid"),
            )),
            ..Default::default()
        };
        tokio::spawn(vigil_loadtest::run(cfg, stop.clone().cancelled_owned()))
    });
    let labeller = (opts.rate > 0.0)
        .then(|| app.prediction_log())
        .flatten()
        .map(|log| tokio::spawn(label_demo_traffic(log, admin, opts.rate, stop.clone().cancelled_owned())));
    match opts.duration {
        Some(d) => tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = tokio::signal::ctrl_c() => {}
        },
        None => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    stop.cancel();
    if let Some(l) = labeller {
        let _ = l.await;
    }
    if let Some(t) = traffic {
        if let Ok(report) = t.await {
            println!("\ndemo traffic:\n{}", report.to_table());
        }
    }
    app.shutdown().await;
    let _ = std::fs::remove_dir_all(&state_dir);
    ExitCode::SUCCESS
}
