//! Drift monitoring off the hot path, on the analysis thread:
//!
//! - `decode+update/v2 32x20`: one captured V2 exchange (a request of 32 rows × 20 FP32 features,
//!   its response with a probability and a label per row) decoded, mapped onto the schema and
//!   added to the version's window, PCA error included. Throughput in feature values.
//! - `evaluate/100 features x 10000`: one full evaluation of a 10,000-record window of 100 numeric
//!   features against a 5,000-row reference (the default methods: normed Wasserstein, with PSI,
//!   Jensen-Shannon and the KS statistic beside it), exact (the window fits `exact_limit`) and
//!   binned (over the 1,000-bin reference grid).
//!
//! Run: cargo bench --bench drift

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use http::{HeaderValue, Method};
use std::sync::Arc;
use std::time::SystemTime;
use vigil::capture::{Capture, CapturedBody, Outcome, Timings};
use vigil::config::{Config, WindowSpec};
use vigil::monitor::performance::Tracker;
use vigil::monitor::profile::{Profile, Source};
use vigil::monitor::reference::{Column, ColumnData, Table};
use vigil::monitor::{Monitor, Settings};

fn normal(rng: &mut fastrand::Rng) -> f64 {
    let (u, v) = (1.0 - rng.f64(), rng.f64());
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

fn table(features: usize, rows: usize, seed: u64) -> Table {
    let mut rng = fastrand::Rng::with_seed(seed);
    let columns = (0..features)
        .map(|j| Column {
            name: format!("f{j}"),
            data: ColumnData::Num((0..rows).map(|_| j as f64 + normal(&mut rng)).collect()),
        })
        .collect();
    Table { columns, rows }
}

fn monitor(features: usize, reference_rows: usize, window: usize, exact_limit: usize) -> Monitor {
    let mut config = Config::default();
    config.drift.window = WindowSpec::Count(window);
    config.drift.exact_limit = exact_limit;
    let source = Source::File { path: "bench".into() };
    let profile = Profile::build(table(features, reference_rows, 1), source, &config.schema, &config.drift).unwrap();
    Monitor::new(
        Settings::from_config(&config),
        Some(Arc::new(profile)),
        None,
        Tracker::new(config.performance.clone(), None),
    )
    .0
}

fn v2_exchange(rows: usize, features: usize, seed: u64) -> Capture {
    let mut rng = fastrand::Rng::with_seed(seed);
    let data: Vec<Vec<f32>> =
        (0..rows).map(|_| (0..features).map(|j| (j as f64 + normal(&mut rng)) as f32).collect()).collect();
    let request = serde_json::json!({"inputs": [{"name": "input-0", "shape": [rows, features], "datatype": "FP32", "data": data}]});
    let probs: Vec<f64> = (0..rows).map(|_| rng.f64()).collect();
    let labels: Vec<i64> = probs.iter().map(|p| (*p > 0.5) as i64).collect();
    let response = serde_json::json!({"model_name": "m", "outputs": [
        {"name": "probability", "shape": [rows, 1], "datatype": "FP64", "data": probs},
        {"name": "label", "shape": [rows], "datatype": "INT64", "data": labels}]});
    let body = |v: serde_json::Value| {
        let bytes = Bytes::from(v.to_string());
        CapturedBody { seen: bytes.len() as u64, bytes }
    };
    Capture {
        request_id: HeaderValue::from_static("bench"),
        version: Arc::from("v1"),
        method: Method::POST,
        path: "/v2/models/m/infer".parse().unwrap(),
        status: 200,
        outcome: Outcome::Complete,
        request: body(request),
        response: body(response),
        started_at: SystemTime::now(),
        timings: Timings::default(),
        origin: Default::default(),
    }
}

fn decode_and_update(c: &mut Criterion) {
    let _ = vigil::telemetry::install();
    let mut m = monitor(20, 5000, 1000, 10_000);
    let exchange = v2_exchange(32, 20, 2);
    let mut g = c.benchmark_group("decode+update");
    g.throughput(Throughput::Elements(32 * 20));
    g.bench_function("v2 32x20", |b| b.iter(|| m.process(&exchange)));
    g.finish();
}

fn evaluate(c: &mut Criterion) {
    let _ = vigil::telemetry::install();
    let mut g = c.benchmark_group("evaluate");
    g.sample_size(10);
    for (name, exact_limit) in [("exact", 10_000), ("binned", 1_000)] {
        let mut m = monitor(100, 5000, 10_000, exact_limit);
        for i in 0..(10_000 / 32 + 1) {
            m.process(&v2_exchange(32, 100, i));
        }
        g.bench_function(format!("100 features x 10000 {name}"), |b| {
            b.iter_batched(|| (), |_| m.evaluate(), BatchSize::SmallInput)
        });
    }
    g.finish();
}

criterion_group!(benches, decode_and_update, evaluate);
criterion_main!(benches);
