//! Upstream HTTP/1.1 connections: kept alive and reused across requests, and replaced without a
//! client ever seeing an error when the upstream closed them while they sat idle.

mod support;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use support::*;
use tokio::net::TcpListener;

/// An HTTP/1.1 upstream answering "ok" that counts the connections it accepted.
async fn counting_upstream() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = listener.accept().await else { continue };
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::from_static(b"ok"))))
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(s), svc).await;
            });
        }
    });
    (format!("http://{addr}"), accepted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_requests_reuse_one_upstream_connection() {
    let (url, accepted) = counting_upstream().await;
    let vigil = Vigil::builder().upstream("v1", &url).no_wait_ready().start().await;
    let client = h1_client();
    for i in 0..50 {
        let r =
            send(&client, request("POST", &vigil.url("/v2/models/m/infer")).body(TestBody::full("{}")).unwrap()).await;
        assert_eq!((r.status.as_u16(), r.text().as_str()), (200, "ok"), "request {i}");
    }
    // The readiness probe may have opened one of its own; the 50 exchanges shared one more.
    assert!(
        accepted.load(Ordering::SeqCst) <= 2,
        "{} upstream connections for 50 sequential requests",
        accepted.load(Ordering::SeqCst)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_closing_idle_connections_never_shows_as_an_error() {
    // Answers as if keeping the connection alive (no `Connection: close`), then closes it: the
    // pooled connection is dead by the time the next request wants it.
    let addr = garbage_upstream(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await;
    let vigil = Vigil::builder().upstream("v1", &format!("http://{addr}")).start().await;
    let client = h1_client();
    for i in 0..50 {
        let r = send(&client, request("GET", &vigil.url("/x")).body(TestBody::empty()).unwrap()).await;
        assert_eq!((r.status.as_u16(), r.text().as_str()), (200, "ok"), "request {i}");
    }
    let m = vigil.metrics().await;
    assert_eq!(m.sum("vigil_upstream_errors_total", &[]), 0.0);
    assert_eq!(m.sum("vigil_requests_total", &[("code", "200")]), 50.0);
}
