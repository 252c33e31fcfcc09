//! The watch loop's cost per evaluation (every `alerts.evaluate_every`, 15 s by default): parse a
//! /metrics text back (`telemetry::scrape`), push it into the history, evaluate the built-in rules
//! and find what to notify.
//!
//! The text is synthetic but shaped like a busy vigil's: 4 versions, 50 features with drift
//! gauges (score, p-value, drifted), 6 status codes, the request and upstream duration histograms
//! (17 buckets each), performance gauges for 3 windows: 822 series.
//!
//! Run: cargo bench --bench ops

use criterion::{criterion_group, criterion_main, Criterion};
use std::fmt::Write;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use vigil::alerts::{figures, Engine};
use vigil::config::AlertsConfig;
use vigil::privacy::Redactor;
use vigil::telemetry::scrape::{History, Scrape};

const BUCKETS: [&str; 17] = [
    "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "30",
    "60", "+Inf",
];

fn metrics_text(tick: u64) -> String {
    let mut s = String::new();
    for v in ["v1", "v2", "v3", "v4"] {
        for (i, code) in ["200", "400", "404", "500", "502", "503"].iter().enumerate() {
            let _ =
                writeln!(s, "vigil_requests_total{{version=\"{v}\",code=\"{code}\"}} {}", tick * 100 / (i as u64 + 1));
        }
        for h in ["vigil_request_duration_seconds", "vigil_upstream_duration_seconds"] {
            for (i, le) in BUCKETS.iter().enumerate() {
                let _ = writeln!(s, "{h}_bucket{{version=\"{v}\",le=\"{le}\"}} {}", tick * (i as u64 + 1) * 10);
            }
            let _ = writeln!(s, "{h}_sum{{version=\"{v}\"}} {}", tick as f64 * 0.3);
            let _ = writeln!(s, "{h}_count{{version=\"{v}\"}} {}", tick * 170);
        }
        for f in 0..50 {
            for (m, x) in [("vigil_feature_drift_score", 0.05), ("vigil_feature_drift_p_value", 0.4)] {
                let _ = writeln!(s, "{m}{{version=\"{v}\",feature=\"feature_{f}\",method=\"psi\"}} {x}");
            }
            let _ = writeln!(s, "vigil_feature_drifted{{version=\"{v}\",feature=\"feature_{f}\"}} 0");
        }
        for w in ["1000", "1h", "24h"] {
            for m in ["accuracy", "roc_auc", "log_loss"] {
                let _ = writeln!(s, "vigil_model_{m}{{version=\"{v}\",window=\"{w}\"}} 0.9");
            }
        }
        let _ = writeln!(s, "vigil_dataset_drift_share{{version=\"{v}\"}} 0.02");
        let _ = writeln!(s, "vigil_dataset_drifted{{version=\"{v}\"}} 0");
    }
    let _ = writeln!(s, "vigil_captures_total {}\nvigil_captures_dropped_total 0", tick * 1000);
    s
}

fn bench(c: &mut Criterion) {
    let text = metrics_text(1000);
    let series = text.lines().count();
    let mut g = c.benchmark_group(format!("watch loop, {series} series"));
    g.bench_function("parse /metrics", |b| b.iter(|| black_box(Scrape::parse(black_box(&text)))));

    let cfg = AlertsConfig::default();
    let mut engine = Engine::new(&cfg, "http://vigil".into(), Arc::new(Redactor::off()));
    let mut history = History::new(figures::history_names(), engine.horizon());
    let t0 = Instant::now();
    // A full 5-minute window of 15 s scrapes behind the one measured.
    for i in 0..20u64 {
        history.push(t0 + Duration::from_secs(15 * i), Scrape::parse(&metrics_text(i)).0);
    }
    let mut i = 20u64;
    g.bench_function("parse + push + evaluate built-in rules + due", |b| {
        b.iter(|| {
            i += 1;
            let now = t0 + Duration::from_secs(15 * i);
            history.push(now, Scrape::parse(&text).0);
            let t = engine.evaluate(&history, now, SystemTime::now());
            black_box((t, engine.due(now, SystemTime::now())))
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
