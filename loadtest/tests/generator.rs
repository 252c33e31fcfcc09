//! End-to-end: run the generator against a tiny in-process hyper server.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use vigil_loadtest::{run, Config, Protocol, Reference};

#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    request_id: Option<String>,
    content_type: Option<String>,
    body: Bytes,
}

type Log = Arc<Mutex<Vec<Seen>>>;

/// Start a server on 127.0.0.1:0 that logs every request. `respond(n)` gives the
/// status and delay for the n-th request (0-based, in arrival order).
async fn server(respond: impl Fn(usize) -> (u16, Duration) + Send + Sync + 'static) -> (SocketAddr, Log) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let log: Log = Arc::default();
    let respond = Arc::new(respond);
    let log2 = log.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let (log, respond) = (log2.clone(), respond.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let (log, respond) = (log.clone(), respond.clone());
                    async move {
                        let header = |n: &str| req.headers().get(n).map(|v| v.to_str().unwrap().to_string());
                        let mut seen = Seen {
                            method: req.method().to_string(),
                            path: req.uri().path().to_string(),
                            request_id: header("x-request-id"),
                            content_type: header("content-type"),
                            body: Bytes::new(),
                        };
                        seen.body = req.into_body().collect().await?.to_bytes();
                        let n = {
                            let mut log = log.lock().unwrap();
                            log.push(seen);
                            log.len() - 1
                        };
                        let (status, delay) = respond(n);
                        if !delay.is_zero() {
                            tokio::time::sleep(delay).await;
                        }
                        Ok::<_, hyper::Error>(
                            Response::builder()
                                .status(status)
                                .body(Full::new(Bytes::from_static(
                                    br#"{"outputs":[{"name":"p","shape":[1],"datatype":"FP64","data":[0.5]}]}"#,
                                )))
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, log)
}

fn target(addr: SocketAddr) -> http::Uri {
    format!("http://{addr}").parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_every_request_arrives_with_a_parseable_body() {
    let (addr, log) = server(|_| (200, Duration::ZERO)).await;
    let cfg = Config {
        target: target(addr),
        rate: 200.0,
        duration: Some(Duration::from_millis(500)),
        batch: 3,
        connections: 8,
        seed: 42,
        ..Default::default()
    };
    let report = run(cfg, std::future::pending()).await;
    let seen = log.lock().unwrap().clone();

    assert_eq!(report.scheduled, 100, "200 req/s for 0.5 s");
    assert_eq!(report.sent, seen.len() as u64, "server saw every sent request");
    assert_eq!(report.sent, 100);
    assert_eq!(report.unsent, 0);
    assert_eq!(report.ok, 100);
    assert_eq!(report.errors.total(), 0);
    assert_eq!(report.latency.len(), 100);
    assert_eq!(report.service.len(), 100);
    assert!(report.percentile(99.0) >= report.percentile(50.0));

    let mut ids = HashSet::new();
    for s in &seen {
        assert_eq!(s.method, "POST");
        assert_eq!(s.path, "/v2/models/demo/infer");
        assert_eq!(s.content_type.as_deref(), Some("application/json"));
        let id = s.request_id.clone().expect("x-request-id header");
        assert!(id.starts_with("lt-42-"), "{id}");
        let body: Value = serde_json::from_slice(&s.body).expect("JSON body");
        assert_eq!(body["id"], id.as_str(), "body id matches the header");
        let input = &body["inputs"][0];
        assert_eq!(input["shape"], serde_json::json!([3, 4]));
        assert_eq!(input["datatype"], "FP64");
        let data = input["data"].as_array().unwrap();
        assert_eq!(data.len(), 12);
        for row in data.chunks(4) {
            let age = row[0].as_f64().unwrap();
            assert!((18.0..=90.0).contains(&age));
        }
        ids.insert(id);
    }
    let expected: HashSet<String> = (0..100).map(|n| format!("lt-42-{n}")).collect();
    assert_eq!(ids, expected, "ids are unique and cover 0..sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_with_csv_reference_statuses_and_stop() {
    // Every 4th request gets a 503.
    let (addr, log) = server(|n| (if n % 4 == 3 { 503 } else { 200 }, Duration::ZERO)).await;
    let reference = Reference::from_csv_str("a,b\n1,10\n2,20\n3,30\n").unwrap();
    let cfg = Config {
        target: target(addr),
        protocol: Protocol::V1,
        model: "m1".into(),
        rate: 200.0,
        duration: None,
        batch: 2,
        connections: 4,
        request_id_prefix: Some("run7-".into()),
        reference: Arc::new(reference),
        ..Default::default()
    };
    let report = run(cfg, tokio::time::sleep(Duration::from_millis(300))).await;
    let seen = log.lock().unwrap().clone();

    assert!(report.sent > 0);
    assert_eq!(report.sent, seen.len() as u64);
    assert_eq!(report.unsent, 0);
    let n503 = report.non_2xx.get(&503).copied().unwrap_or(0);
    assert_eq!(n503, report.sent / 4);
    assert_eq!(report.ok + n503, report.sent);
    for s in &seen {
        assert_eq!(s.path, "/v1/models/m1:predict");
        assert!(s.request_id.as_deref().unwrap().starts_with("run7-"));
        let body: Value = serde_json::from_slice(&s.body).unwrap();
        let rows = body["instances"].as_array().unwrap();
        assert_eq!(rows.len(), 2);
        for row in rows {
            let (a, b) = (row[0].as_f64().unwrap(), row[1].as_f64().unwrap());
            assert_eq!(b, a * 10.0, "whole rows of the CSV are sent");
        }
    }
    let json: Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(json["non_2xx"]["503"], n503);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_works() {
    let (addr, log) = server(|_| (200, Duration::ZERO)).await;
    let cfg = Config {
        target: target(addr),
        rate: 200.0,
        duration: Some(Duration::from_millis(100)),
        http2: true,
        ..Default::default()
    };
    let report = run(cfg, std::future::pending()).await;
    assert_eq!(report.sent, 20);
    assert_eq!(report.ok, 20);
    assert_eq!(log.lock().unwrap().len(), 20);
}

/// The coordinated-omission correction at work: one connection, the server stalls
/// 300 ms on the first request. The ~30 requests scheduled during the stall queue
/// behind it; the correction charges them for the wait, the service time does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stall_is_charged_to_queued_requests() {
    let (addr, _log) = server(|n| {
        let delay = if n == 0 { 300 } else { 0 };
        (200, Duration::from_millis(delay))
    })
    .await;
    let cfg = Config {
        target: target(addr),
        rate: 100.0,
        duration: Some(Duration::from_millis(500)),
        connections: 1,
        ..Default::default()
    };
    let report = run(cfg, std::future::pending()).await;
    assert_eq!(report.sent, 50);
    assert_eq!(report.ok, 50);
    let over = |h: &hdrhistogram::Histogram<u64>| h.count_between(100_000, u64::MAX);
    // Requests 1..=20 were intended before t=200 ms but could not leave before 300 ms:
    // by construction each waited > 100 ms for the connection.
    assert!(over(&report.latency) >= 20, "corrected: {}", over(&report.latency));
    // Only the stalled request itself was slow to serve.
    assert!(over(&report.service) <= 3, "service: {}", over(&report.service));
    assert!(report.latency.max() >= 300_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_refused_counts_as_connect_errors() {
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    }; // closed again: nothing listens there now
    let cfg =
        Config { target: target(addr), rate: 100.0, duration: Some(Duration::from_millis(100)), ..Default::default() };
    let report = run(cfg, std::future::pending()).await;
    assert_eq!(report.sent, 10);
    assert_eq!(report.errors.connect, 10);
    assert_eq!(report.ok, 0);
    assert!(report.latency.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_are_counted() {
    let (addr, _log) = server(|_| (200, Duration::from_secs(5))).await;
    let cfg = Config {
        target: target(addr),
        rate: 100.0,
        duration: Some(Duration::from_millis(50)),
        timeout: Duration::from_millis(100),
        ..Default::default()
    };
    let report = run(cfg, std::future::pending()).await;
    assert_eq!(report.sent, 5);
    assert_eq!(report.errors.timeout, 5);
}

#[tokio::test(flavor = "current_thread")]
async fn works_on_a_current_thread_runtime() {
    let (addr, log) = server(|_| (200, Duration::ZERO)).await;
    let cfg =
        Config { target: target(addr), rate: 500.0, duration: Some(Duration::from_millis(100)), ..Default::default() };
    let report = run(cfg, std::future::pending()).await;
    assert_eq!(report.sent, 50);
    assert_eq!(report.ok, 50);
    assert_eq!(log.lock().unwrap().len(), 50);
}
