//! The per-request hot path: what vigil adds to every exchange.
//!
//! - `route+tap`: one routes load and pick (with and without a canary), a request id, the
//!   hop-by-hop header pass, teeing a 1 KiB body into the capture and offering the capture.
//!
//! Whole exchanges over sockets (added latency and CPU per request at a fixed rate, against
//! nginx) are measured by loadtest/bench/proxy-overhead.sh, not here: sequential loopback
//! round trips in one process mostly measure thread wake-ups.
//!
//! Run: cargo bench --bench hot_path

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use http::{HeaderMap, HeaderValue, Method};
use std::sync::Arc;
use std::time::SystemTime;
use vigil::capture::{self, Capture, Outcome, Timings};
use vigil::config::UpstreamProtocol;
use vigil::proxy::body::Collected;
use vigil::proxy::headers;
use vigil::routes::{RouteTable, Routes, UpstreamUrl, Version};
use vigil::telemetry::HotCounters;

fn body_1k() -> Bytes {
    let row = "[41.5,52000.0,0.43,30.0]";
    let mut data = String::from("{\"inputs\":[{\"name\":\"input-0\",\"shape\":[38,4],\"datatype\":\"FP64\",\"data\":[");
    while data.len() < 990 {
        data.push_str(row);
        data.push(',');
    }
    data.pop();
    data.push_str("]}]}");
    Bytes::from(data)
}

fn route_and_tap(c: &mut Criterion) {
    let _ = vigil::telemetry::install();
    let url = UpstreamUrl::parse("http://127.0.0.1:1").unwrap();
    let plain = Arc::new(RouteTable::from_pointee(
        Routes::new(vec![Arc::new(Version::new("v1", url.clone(), 0, UpstreamProtocol::Auto))], "v1", None).unwrap(),
    ));
    let canary = Arc::new(RouteTable::from_pointee(
        Routes::new(
            vec![
                Arc::new(Version::new("v1", url.clone(), 0, UpstreamProtocol::Auto)),
                Arc::new(Version::new("v2", url, 10, UpstreamProtocol::Auto)),
            ],
            "v1",
            None,
        )
        .unwrap(),
    ));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (sink, mut rx) = rt.block_on(async { capture::channel(1 << 16, 256 * 1024, Arc::new(HotCounters::new())) });
    let body = body_1k();
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    headers.insert("connection", HeaderValue::from_static("keep-alive"));

    let mut g = c.benchmark_group("route+tap");
    g.throughput(Throughput::Elements(1));
    for (name, table) in [("active only", &plain), ("10% canary", &canary)] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let version = table.load().pick().clone();
                let id = headers::new_request_id();
                let mut h = headers.clone();
                headers::strip_hop_by_hop(&mut h, false);
                let (mut req, mut res) = (Collected::default(), Collected::default());
                req.push(&body, sink.max_body_bytes());
                res.push(&body, sink.max_body_bytes());
                sink.offer(Capture {
                    request_id: id,
                    version: version.name.clone(),
                    method: Method::POST,
                    path: http::uri::PathAndQuery::from_static("/v2/models/demo/infer"),
                    status: 200,
                    outcome: Outcome::Complete,
                    request: req.take(),
                    response: res.take(),
                    started_at: SystemTime::now(),
                    timings: Timings::default(),
                    origin: Default::default(),
                });
                version.metrics.request(200);
                // Keep the queue from filling: the consumer's side, outside what vigil's client path pays.
                while rx.try_recv().is_ok() {}
            })
        });
    }
    g.finish();
}

criterion_group!(benches, route_and_tap);
criterion_main!(benches);
