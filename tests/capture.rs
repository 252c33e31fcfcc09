//! The capture tap: live exchanges are captured (vigil_captures_total), shadow ones are not;
//! /admin/latency counts per version; /metrics exposes the documented families.

mod support;

use serde_json::Value;
use support::*;

const CAPTURES: &str = "vigil_captures_total";

async fn get_shadow(client: &HttpClient, url: &str) -> Resp {
    send(client, request("GET", url).header("x-vigil-shadow", "1").body(TestBody::empty()).unwrap()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_requests_are_captured_and_shadow_requests_are_not() {
    let up = Upstream::start("u1").await;
    let vigil = Vigil::builder().upstream("v1", &up.url()).start().await;
    let client = h1_client();
    // Readiness probes go straight to the upstream: nothing captured yet.
    assert_eq!(vigil.metrics().await.sum(CAPTURES, &[]), 0.0);

    for i in 0..5 {
        let r =
            send(&client, request("POST", &vigil.url(&format!("/echo/live-{i}"))).body(TestBody::full("x")).unwrap())
                .await;
        assert_eq!(r.status, 200);
    }
    vigil.wait_metric(CAPTURES, &[], 5.0).await;

    for i in 0..5 {
        let r = get_shadow(&client, &vigil.url(&format!("/echo/shadow-{i}"))).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.upstream(), "u1");
    }
    // Shadow requests are forwarded...
    assert_eq!(up.requests_to("/echo/shadow-").len(), 5);
    // ...but not captured: after one more live request the count is exactly one more.
    let r = get(&vigil.url("/echo/live-last")).await;
    assert_eq!(r.status, 200);
    vigil.wait_metric(CAPTURES, &[], 6.0).await;
    let m = vigil.metrics().await;
    assert_eq!(m.sum(CAPTURES, &[]), 6.0);
    assert_eq!(m.sum("vigil_captures_dropped_total", &[]), 0.0);
    // Shadow exchanges are still answered and counted as requests.
    assert_eq!(m.sum("vigil_requests_total", &[("version", "v1"), ("code", "200")]), 11.0);

    // A shadow request the upstream fails is not captured either.
    let r = get_shadow(&client, &vigil.url("/status/500")).await;
    assert_eq!(r.status, 500);
    let r = get(&vigil.url("/echo/live-after")).await;
    assert_eq!(r.status, 200);
    vigil.wait_metric(CAPTURES, &[], 7.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_is_counted_per_version() {
    let (u1, u2) = (Upstream::start("u1").await, Upstream::start("u2").await);
    let vigil = Vigil::builder().upstream("v1", &u1.url()).upstream("v2", &u2.url()).start().await;
    let client = h1_client();
    for _ in 0..3 {
        assert_eq!(vigil.which(&client).await, "u1");
    }
    get_shadow(&client, &vigil.url("/echo/shadow")).await;
    assert_eq!(vigil.admin("POST", "/admin/versions/v2/activate", None).await.status, 200);
    for _ in 0..2 {
        assert_eq!(vigil.which(&client).await, "u2");
    }
    get_shadow(&client, &vigil.url("/echo/shadow")).await;
    vigil.wait_metric(CAPTURES, &[], 5.0).await;

    let count = |v: &Value, name: &str| v["versions"][name]["count"].as_u64();
    let latency = poll_for("/admin/latency to count 3 for v1 and 2 for v2", || async {
        let r = vigil.admin("GET", "/admin/latency", None).await;
        assert_eq!(r.status, 200);
        let latency = r.json();
        match (count(&latency, "v1"), count(&latency, "v2")) {
            (Some(3), Some(2)) => Ok(latency),
            _ => Err(latency.to_string()),
        }
    })
    .await;
    assert_eq!(latency["unit"], "ms");
    for name in ["v1", "v2"] {
        let v = &latency["versions"][name];
        for part in ["total", "upstream", "ttfb"] {
            let p = &v[part];
            for key in ["p50", "p90", "p99", "p99.9", "max", "mean"] {
                assert!(p[key].as_f64().is_some_and(|x| x >= 0.0), "{name}.{part}.{key} in {latency}");
            }
        }
        assert!(v["total"]["p50"].as_f64() <= v["total"]["max"].as_f64(), "{latency}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capture_can_be_disabled_and_truncates_large_bodies() {
    let up = Upstream::start("u1").await;
    let config = format!("[capture]\nenabled = false\n\n[[versions]]\nname = \"v1\"\nurl = \"{}\"\n", up.url());
    let off = Vigil::builder().config(&config).start().await;
    for _ in 0..3 {
        assert_eq!(get(&off.url("/echo")).await.status, 200);
    }
    let m = off.metrics().await;
    assert_eq!(m.sum("vigil_requests_total", &[("code", "200")]), 3.0);
    assert_eq!(m.sum(CAPTURES, &[]), 0.0);

    let config = format!("[capture]\nmax_body_bytes = 1024\n\n[[versions]]\nname = \"v1\"\nurl = \"{}\"\n", up.url());
    let small = Vigil::builder().config(&config).start().await;
    let body = pattern(100_000);
    let r =
        send(&h1_client(), request("POST", &small.url("/echo/big")).body(TestBody::full(body.clone())).unwrap()).await;
    // The cap limits what is captured, never what is forwarded.
    assert_bytes_eq(&r.body, &body, "echo beyond capture.max_body_bytes");
    small.wait_metric(CAPTURES, &[], 1.0).await;
    small.wait_metric("vigil_captures_truncated_total", &[], 1.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_expose_the_documented_families() {
    let up = Upstream::start("u1").await;
    let vigil = Vigil::builder().upstream("v1", &up.url()).start().await;
    assert_eq!(get(&vigil.url("/echo")).await.status, 200);
    let r = vigil.admin("GET", "/metrics", None).await;
    assert!(r.header("content-type").is_some_and(|c| c.starts_with("text/plain")), "{:?}", r.headers);
    let families = [
        "vigil_requests_total",
        "vigil_request_duration_seconds",
        "vigil_upstream_duration_seconds",
        "vigil_in_flight_requests",
        "vigil_upstream_errors_total",
        "vigil_captures_total",
        "vigil_captures_dropped_total",
        "vigil_active_version_info",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
    ];
    poll_for("every documented metric family on /metrics", || async {
        let m = vigil.metrics().await;
        let missing: Vec<_> = families.iter().filter(|f| !m.has(f)).collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!("missing {missing:?}"))
        }
    })
    .await;
    let m = vigil.metrics().await;
    assert_eq!(m.sum("vigil_requests_total", &[("version", "v1"), ("code", "200")]), 1.0);
    assert_eq!(m.sum("vigil_active_version_info", &[("version", "v1")]), 1.0);
    assert_eq!(m.sum("vigil_request_duration_seconds_count", &[("version", "v1")]), 1.0);
    assert!(m.sum("process_resident_memory_bytes", &[]) > 0.0);
    assert!(m.text.contains("# TYPE vigil_requests_total counter"), "{}", m.text);
}
