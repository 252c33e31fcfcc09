//! Faults under real conditions (issue 7, item 3), through the real binary over real sockets.
//! Each test states its expectation in its doc comment and prints the figure it observed
//! (`cargo test --test faults -- --nocapture` shows them).
//!
//! Covered elsewhere and not repeated here: upstream down, slow, resetting before the headers,
//! speaking garbage, truncating its body, shedding, clients leaving, slow-loris (tests/errors.rs);
//! drain (tests/drain.rs); SIGTERM / SIGKILL and the prediction log (tests/ground_truth.rs); a
//! state file that cannot be saved at start (tests/versions.rs); shadow pausing on latency
//! (tests/shadow.rs).
//!
//! Here: the model server SIGKILLed while answering; half-open upstreams (silent after accept,
//! stalling mid-body, with `proxy.body_idle_timeout` on and off); malformed client HTTP over raw TCP;
//! bodies of 128 MiB each way with vigil's memory bounded; the analysis queue saturated; the
//! state dir becoming unusable at run time; SIGKILL of vigil and restart on the same state.

mod support;

use bytes::Bytes;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Checks one of vigil's own proxy errors (`{"error","kind","source","retryable",...}`).
#[track_caller]
fn assert_proxy_error(r: &Resp, status: u16, kind: &str) -> Value {
    assert_eq!(r.status.as_u16(), status, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"), "{:?}", r.headers);
    let v = r.json();
    assert_eq!(v["kind"], kind, "{v}");
    assert_eq!(v["source"], "upstream", "{v}");
    assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{v}");
    assert!(v["retryable"].is_boolean(), "{v}");
    v
}

/// A V2 inference through `base`, optionally made slow by the demo model.
fn infer_req(base: &str, delay_ms: Option<u64>) -> http::Request<TestBody> {
    let mut b = request("POST", &format!("{base}/v2/models/demo/infer")).header("content-type", "application/json");
    if let Some(ms) = delay_ms {
        b = b.header("x-demo-delay-ms", ms.to_string());
    }
    b.body(TestBody::full(INFER_BODY)).unwrap()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

// ---------------------------------------------------------------------------------------------
// 1. The model server killed while answering

/// Expectation: requests waiting on a model server that is SIGKILLed get a clean 502 JSON error
/// from vigil (`upstream_reset`, source upstream; `retryable: false` because the model may have
/// acted on the request), vigil stays up (healthz 200, a second live version serves), and once
/// the model restarts on the same port, traffic to it recovers without touching vigil.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_server_killed_while_answering_gives_clean_502_and_traffic_recovers() {
    let mut m1 = DemoModel::start("v1").await;
    let m2 = DemoModel::start("v2").await;
    let addr1 = m1.addr;
    let vigil = Vigil::builder().upstream("v1", &m1.url()).upstream("v2", &m2.url()).start().await;
    let base = format!("http://{}", vigil.proxy);

    // Four clients wait on the slow model (10 s: far longer than the test).
    const WAITING: usize = 4;
    let mut waiting = Vec::new();
    for _ in 0..WAITING {
        let base = base.clone();
        waiting.push(tokio::spawn(async move {
            let t = Instant::now();
            let r = try_send(&h1_client(), infer_req(&base, Some(10_000))).await;
            (r, t)
        }));
    }
    vigil.wait_metric("vigil_in_flight_requests", &[], WAITING as f64).await;
    let killed_at = Instant::now();
    m1.sigkill();
    let mut after_kill = Vec::new();
    for w in waiting {
        let (r, _) = w.await.unwrap();
        let r = r.expect("the client got an HTTP answer, not a broken connection");
        after_kill.push(killed_at.elapsed());
        let v = assert_proxy_error(&r, 502, "upstream_reset");
        assert_eq!(v["version"], "v1", "{v}");
        assert_eq!(v["retryable"], false, "{v}");
    }
    vigil.wait_metric("vigil_in_flight_requests", &[], 0.0).await;

    // vigil is up, v1 is down (502 upstream_unavailable), v2 serves.
    assert_eq!(vigil.admin("GET", "/healthz", None).await.status, 200);
    let r = try_send(&h1_client(), infer_req(&base, None)).await.unwrap();
    assert_proxy_error(&r, 502, "upstream_unavailable");
    let r = vigil.admin("POST", "/admin/versions/v2/activate", None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let client = h1_client();
    let mut v2_ok = 0;
    for _ in 0..20 {
        assert_eq!(infer(&client, &base).await.as_deref(), Ok("v2"));
        v2_ok += 1;
    }

    // v1 restarts on the same port; back to v1: served again.
    let _m1 = DemoModel::start_on("v1", addr1).await;
    let r = vigil.admin("POST", "/admin/versions/v1/activate", None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let recovered_at = Instant::now();
    let first = poll_for("v1 serving again", || async { infer(&client, &base).await }).await;
    assert_eq!(first, "v1");
    let recovery = recovered_at.elapsed();
    let mut v1_ok = 0;
    for _ in 0..20 {
        assert_eq!(infer(&client, &base).await.as_deref(), Ok("v1"));
        v1_ok += 1;
    }
    let m = vigil.metrics().await;
    let resets = m.sum("vigil_upstream_errors_total", &[("version", "v1"), ("kind", "upstream_reset")]);
    assert_eq!(resets, WAITING as f64, "{}", m.text);
    eprintln!(
        "model killed: {WAITING}/{WAITING} waiting clients got 502 upstream_reset within {:.1} ms of the kill \
         (slowest); v2 served {v2_ok}/20 meanwhile; after the restart on {addr1} v1 served {v1_ok}/20 \
         (first answer {:.1} ms after activation)",
        ms(*after_kill.iter().max().unwrap()),
        ms(recovery)
    );
}

// ---------------------------------------------------------------------------------------------
// 2. Half-open upstreams

/// Expectation: an upstream that accepts the connection and then never reads nor answers makes
/// vigil answer `504 upstream_timeout` after `proxy.response_timeout` (here 300 ms), every time;
/// nothing stays in flight and vigil keeps answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_upstream_gives_504_after_response_timeout() {
    let silent = silent_upstream().await;
    let live = Upstream::start("live").await;
    let config = format!(
        "[proxy]\nresponse_timeout = \"300ms\"\n\n[[versions]]\nname = \"v1\"\nurl = \"http://{silent}\"\n\n\
         [[versions]]\nname = \"v2\"\nurl = \"{}\"\n",
        live.url()
    );
    let vigil = Vigil::builder().config(&config).no_wait_ready().start().await;
    let client = h1_client();
    let mut took = Vec::new();
    for i in 0..3 {
        let t = Instant::now();
        let req = request("POST", &vigil.url(&format!("/v2/models/demo/infer?i={i}")))
            .body(TestBody::full(INFER_BODY))
            .unwrap();
        let r = send(&client, req).await;
        took.push(t.elapsed());
        let v = assert_proxy_error(&r, 504, "upstream_timeout");
        assert_eq!(v["retryable"], true, "{v}");
    }
    vigil.wait_metric("vigil_in_flight_requests", &[], 0.0).await;
    assert_eq!(vigil.admin("GET", "/healthz", None).await.status, 200);
    let r = vigil.admin("POST", "/admin/versions/v2/activate", None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(vigil.which(&client).await, "live");
    let m = vigil.metrics().await;
    assert_eq!(m.sum("vigil_upstream_errors_total", &[("version", "v1"), ("kind", "upstream_timeout")]), 3.0);
    eprintln!(
        "half-open upstream: 3/3 clients got 504 upstream_timeout in {:?} ms (response_timeout 300 ms); \
         in flight back to 0; v2 served after",
        took.iter().map(|d| ms(*d).round()).collect::<Vec<_>>()
    );
}

/// GETs `/stream-held` (support::Upstream "u1") through vigil and checks that its headers (200,
/// from u1) and first chunk reach the client at once. Returns the body, now waiting on the
/// stalled upstream, and when the headers arrived (since `t`).
async fn open_stalled_body(client: &HttpClient, vigil: &Vigil, t: Instant) -> (hyper::body::Incoming, Duration) {
    let res = client.request(request("GET", &vigil.url("/stream-held")).body(TestBody::empty()).unwrap());
    let res = res.await.expect("the headers reach the client");
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers().get("x-upstream").unwrap(), "u1");
    let headers_at = t.elapsed();
    let mut body = res.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(first, "first-chunk");
    (body, headers_at)
}

/// Expectation: an upstream that sends its headers and a first chunk, then stalls, gives the
/// client those headers and that chunk at once; after `proxy.body_idle_timeout` without a byte,
/// vigil cuts the response short: the client's body ends in an error (a truncated message, over
/// HTTP/1.1 and HTTP/2 alike) instead of hanging, the stall is counted as
/// `upstream_body_timeout`, the in-flight slot is freed and vigil serves on. A stream that keeps
/// moving with gaps shorter than the timeout is not cut, however long it lasts in total.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_stalling_mid_body_is_cut_after_the_body_idle_timeout() {
    let up = Upstream::start("u1").await;
    let config = format!(
        "[proxy]\nresponse_timeout = \"300ms\"\nbody_idle_timeout = \"300ms\"\n\n[[versions]]\nname = \"v1\"\nurl = \"{}\"\n",
        up.url()
    );
    let vigil = Vigil::builder().config(&config).start().await;
    for (n, (proto, client)) in [("HTTP/1.1", h1_client()), ("HTTP/2", h2_client())].into_iter().enumerate() {
        let t = Instant::now();
        let (mut body, headers_at) = open_stalled_body(&client, &vigil, t).await;
        up.wait_held(n + 1).await;
        let first_at = t.elapsed();
        // The client's own patience is far longer than vigil's timeout.
        let next = tokio::time::timeout(DEADLINE, body.frame()).await.expect("vigil cut the stalled body");
        let cut_at = t.elapsed();
        match next {
            Some(Err(_)) => {}
            other => panic!("{proto}: a stalled body must end in an error (a truncated message), got {other:?}"),
        }
        assert!(cut_at - first_at >= Duration::from_millis(300), "{proto}: cut before the timeout");
        vigil.wait_metric("vigil_in_flight_requests", &[], 0.0).await;
        eprintln!(
            "stalled body ({proto}): headers after {:.1} ms, first chunk, then cut {:.0} ms later \
             (body_idle_timeout 300 ms); in flight back to 0",
            ms(headers_at),
            ms(cut_at - first_at)
        );
    }
    let m = vigil.metrics().await;
    assert_eq!(m.sum("vigil_upstream_errors_total", &[("version", "v1"), ("kind", "upstream_body_timeout")]), 2.0);
    // Gaps of 150 ms, 1.05 s in all: longer than the timeout in total, never idle that long.
    let r = get(&vigil.url("/stream?chunks=8&size=100&delay_ms=150")).await;
    assert_eq!(r.status, 200);
    assert_bytes_eq(&r.body, &pattern(800), "a slow stream that keeps moving");
    assert_eq!(get(&vigil.url("/echo/after")).await.status, 200);
    let m = vigil.metrics().await;
    assert_eq!(m.sum("vigil_upstream_errors_total", &[("kind", "upstream_body_timeout")]), 2.0);
    up.release();
}

/// Expectation: with `body_idle_timeout = "0s"` (off, for upstreams that stream with long
/// pauses), a stalled body stays open until the client gives up; when it does, vigil's in-flight
/// gauge returns to 0, the exchange is captured as aborted, and vigil serves on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_stalling_mid_body_with_the_idle_timeout_off_holds_until_the_client_gives_up() {
    let up = Upstream::start("u1").await;
    let config = format!(
        "[proxy]\nresponse_timeout = \"300ms\"\nbody_idle_timeout = \"0s\"\n\n[[versions]]\nname = \"v1\"\nurl = \"{}\"\n",
        up.url()
    );
    let vigil = Vigil::builder().config(&config).start().await;
    let t = Instant::now();
    let stalled_for;
    {
        let client = h1_client();
        let (mut body, headers_at) = open_stalled_body(&client, &vigil, t).await;
        up.wait_held(1).await;
        // The client's own patience: 2 x response_timeout without a byte.
        let next = tokio::time::timeout(Duration::from_millis(600), body.frame()).await;
        assert!(next.is_err(), "the stalled body produced something: {next:?}");
        stalled_for = t.elapsed() - headers_at;
        assert_eq!(vigil.metrics().await.sum("vigil_in_flight_requests", &[]), 1.0);
        // The client gives up: dropping the body and the client closes the connection.
    }
    let gave_up = Instant::now();
    vigil.wait_metric("vigil_in_flight_requests", &[], 0.0).await;
    let freed = gave_up.elapsed();
    assert_eq!(get(&vigil.url("/echo/after")).await.status, 200);
    vigil.wait_metric("vigil_captures_total", &[], 2.0).await;
    let m = vigil.metrics().await;
    assert_eq!(m.sum("vigil_upstream_errors_total", &[]), 0.0, "a client leaving is not an upstream error");
    eprintln!(
        "stalled body, idle timeout off: the client gave up after {:.0} ms of silence; in flight 1 -> 0 in {:.1} ms",
        ms(stalled_for),
        ms(freed)
    );
}

/// Expectation: a client that stops halfway through its request body (Content-Length or
/// chunked) is the one to blame when `proxy.response_timeout` passes: the model cannot answer a
/// request it has not received. vigil answers `408 client_timeout` (source downstream), counts no
/// upstream error (so a slow client cannot fail a rollout's analysis or fire the error-rate
/// alert), with capture on and off alike; a model that is slow after a complete upload still
/// gets `504 upstream_timeout`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_stalling_its_upload_gets_408_and_the_model_is_not_blamed() {
    let up = Upstream::start("u1").await;
    for capture in [true, false] {
        let config = format!(
            "[proxy]\nresponse_timeout = \"300ms\"\n[capture]\nenabled = {capture}\n\n[[versions]]\nname = \"v1\"\nurl = \"{}\"\n",
            up.url()
        );
        let vigil = Vigil::builder().config(&config).start().await;
        let stalls: [&[u8]; 2] = [
            b"POST /echo/stalled HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n0123456789",
            b"POST /echo/stalled HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\na\r\n0123456789\r\n",
        ];
        for raw in stalls {
            let t = Instant::now();
            let out = raw_exchange(vigil.proxy, raw).await;
            let took = t.elapsed();
            let r = RawResponse::parse(&out);
            assert!(r.status_line.contains(" 408 "), "capture {capture}: {}", String::from_utf8_lossy(&out));
            let v: Value = serde_json::from_slice(&r.body).expect("a JSON error");
            assert_eq!(v["kind"], "client_timeout", "{v}");
            assert_eq!(v["source"], "downstream", "{v}");
            assert_eq!(v["retryable"], true, "{v}");
            eprintln!("stalled upload (capture {capture}): 408 client_timeout after {:.0} ms", ms(took));
        }
        // The model is slow after a complete upload: that is the upstream's timeout.
        let r =
            send(&h1_client(), request("POST", &vigil.url("/slow?ms=2000")).body(TestBody::full("complete")).unwrap())
                .await;
        assert_proxy_error(&r, 504, "upstream_timeout");
        let m = vigil.metrics().await;
        assert_eq!(m.sum("vigil_requests_total", &[("code", "408")]), 2.0);
        assert_eq!(m.sum("vigil_upstream_errors_total", &[("kind", "upstream_timeout")]), 1.0, "only the slow model");
        assert_eq!(m.sum("vigil_upstream_errors_total", &[]), 1.0);
        vigil.wait_metric("vigil_in_flight_requests", &[], 0.0).await;
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Malformed client HTTP

/// Writes `raw`, optionally shuts down the write side (the client is done sending), and reads
/// until vigil closes. Returns what came back.
async fn raw_then_close(addr: SocketAddr, raw: &[u8], half_close: bool) -> Vec<u8> {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    // vigil may answer and close before reading everything (oversize headers): a failed write
    // is then expected, the answer is what counts.
    let _ = s.write_all(raw).await;
    if half_close {
        let _ = s.shutdown().await;
    }
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match tokio::time::timeout(DEADLINE, s.read(&mut buf)).await.expect("vigil never closed") {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    out
}

fn status_line(out: &[u8]) -> String {
    String::from_utf8_lossy(out).lines().next().unwrap_or("").to_owned()
}

/// Expectation: each malformed request is answered 4xx (or the connection is closed) and never
/// reaches the upstream as a complete request; vigil keeps serving after every one.
///
/// - a garbage request line, invalid bytes in a header name and in a header value: 400;
/// - headers beyond hyper's read buffer (its default `max_buf_size`, 8192 + 4096 x 100 = 417,792
///   bytes; vigil does not change it): 431;
/// - more than 100 headers (hyper's default header count): 431;
/// - a Content-Length larger than the body, then the client closes: the upstream may have seen
///   the headers (vigil streams bodies) but never a complete body;
/// - Content-Length together with `Transfer-Encoding: chunked` (a smuggling vector): 400, or if
///   accepted (RFC 9112 §6.1 allows it), read as chunked, forwarded with one framing only (never
///   both headers), and the client connection closed after the answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_client_http_is_refused_and_never_forwarded() {
    let up = Upstream::start("u1").await;
    let vigil = Vigil::builder().upstream("v1", &up.url()).start().await;
    let big_value = "a".repeat(500 * 1024);
    let many: String = (0..150).map(|i| format!("x-h{i}: {i}\r\n")).collect();
    let cases: Vec<(&str, Vec<u8>, bool, &[&str])> = vec![
        ("garbage request line", b"\x16\x03\x01\x02\x00 HELLO\r\n\r\n".to_vec(), false, &["HTTP/1.1 400"]),
        (
            "request line without version",
            b"GET /echo/bad1\r\nHost: h\r\nConnection: close\r\n\r\n".to_vec(),
            false,
            &["HTTP/1.1 400"],
        ),
        (
            "invalid byte in a header name",
            b"GET /echo/bad2 HTTP/1.1\r\nHost: h\r\nBad Name: x\r\nConnection: close\r\n\r\n".to_vec(),
            false,
            &["HTTP/1.1 400"],
        ),
        (
            "control byte in a header value",
            b"GET /echo/bad3 HTTP/1.1\r\nHost: h\r\nx-v: a\x01b\r\nConnection: close\r\n\r\n".to_vec(),
            false,
            &["HTTP/1.1 400"],
        ),
        (
            "500 KiB header",
            format!("GET /echo/bad4 HTTP/1.1\r\nHost: h\r\nx-big: {big_value}\r\nConnection: close\r\n\r\n")
                .into_bytes(),
            false,
            &["HTTP/1.1 431"],
        ),
        (
            "150 headers",
            format!("GET /echo/bad5 HTTP/1.1\r\nHost: h\r\n{many}Connection: close\r\n\r\n").into_bytes(),
            false,
            &["HTTP/1.1 431"],
        ),
        (
            "Content-Length larger than the body, then close",
            b"POST /echo/bad6 HTTP/1.1\r\nHost: h\r\nContent-Length: 1000\r\n\r\nonly-these-bytes".to_vec(),
            true,
            &["", "HTTP/1.1 4", "HTTP/1.1 5"],
        ),
        (
            "Content-Length and Transfer-Encoding",
            // No `Connection: close`: RFC 9112 §6.1 says the server MUST close after answering
            // such a request, so reading to the end only returns if vigil does.
            b"POST /echo/bad7 HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n\
              5\r\nhello\r\n0\r\n\r\n"
                .to_vec(),
            false,
            &["HTTP/1.1 400", "HTTP/1.1 200"],
        ),
    ];
    let client = h1_client();
    for (what, raw, half_close, allowed) in &cases {
        let t = Instant::now();
        let out = raw_then_close(vigil.proxy, raw, *half_close).await;
        let took = t.elapsed();
        let line = status_line(&out);
        assert!(
            allowed.iter().any(|a| if a.is_empty() { out.is_empty() } else { line.starts_with(a) }),
            "{what}: got {line:?} ({} bytes), expected one of {allowed:?}",
            out.len()
        );
        eprintln!(
            "malformed: {what}: {} in {:.1} ms",
            if line.is_empty() { "closed without an answer".to_owned() } else { line.clone() },
            ms(took)
        );
        // vigil keeps serving.
        assert_eq!(vigil.which(&client).await, "u1", "after {what}");
    }

    let reached: Vec<_> = up.requests().into_iter().filter(|r| r.uri.starts_with("/echo/bad")).collect();
    for r in &reached {
        match r.uri.as_str() {
            // Headers first, then the body as it comes: the upstream saw the request begin, but
            // the body must end in an error, never as a complete (short) request.
            "/echo/bad6" => {
                assert!(r.body_error.is_some(), "a truncated upload reached the upstream as complete: {r:?}")
            }
            "/echo/bad7" => {
                let out = raw_then_close(vigil.proxy, &cases[7].1, false).await;
                let answer = RawResponse::parse(&out);
                assert_eq!(answer.header("connection"), Some("close"), "{answer:?}");
                assert!(
                    r.header("content-length").is_none() || r.header("transfer-encoding").is_none(),
                    "both framings forwarded: {r:?}"
                );
                assert_eq!(r.body, "hello", "{r:?}");
            }
            other => panic!("a malformed request reached the upstream: {other} {r:?}"),
        }
    }
    eprintln!(
        "malformed: {} cases; reached the upstream: {:?}",
        cases.len(),
        reached.iter().map(|r| (r.uri.clone(), r.body_error.is_some())).collect::<Vec<_>>()
    );
    assert_eq!(vigil.admin("GET", "/healthz", None).await.status, 200);
}

/// vigil's resident set high-water mark (`VmHWM`), in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("vigil's /proc status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status");
    kib * 1024
}

/// Reads `body` to its end, checking it is `unit` repeated (from offset 0); returns its length.
async fn drain_repeating(mut body: hyper::body::Incoming, unit: &[u8]) -> usize {
    let mut n = 0usize;
    while let Some(frame) = body.frame().await {
        let data = frame.expect("the body streams to its end").into_data().unwrap_or_default();
        let mut rest = &data[..];
        while !rest.is_empty() {
            let at = n % unit.len();
            let take = rest.len().min(unit.len() - at);
            assert!(rest[..take] == unit[at..at + take], "the body differs within bytes {n}..{}", n + take);
            n += take;
            rest = &rest[take..];
        }
    }
    n
}

/// Expectation: vigil sets no body size limit of its own (the model server owns that policy, as
/// behind Envoy without a buffer filter): a 128 MiB upload and a 128 MiB download stream through
/// byte for byte while vigil's memory stays bounded, because bodies are streamed and the capture
/// keeps at most `capture.max_body_bytes` of each (counted as truncated).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_far_larger_than_memory_budgets_stream_through_with_bounded_memory() {
    const CHUNK: usize = 64 * 1024;
    const CHUNKS: usize = 2048; // 128 MiB
    let up = Upstream::start("u1").await;
    let vigil = Vigil::builder().upstream("v1", &up.url()).start().await;
    // Warm up (connections, pools, the analysis thread), then take the baseline.
    assert_eq!(get(&vigil.url("/echo/warm")).await.status, 200);
    let before = peak_rss(vigil.pid());

    let chunk = Bytes::from(pattern(CHUNK));
    let upload = TestBody::chunks(vec![chunk.clone(); CHUNKS], Duration::ZERO);
    let res = h1_client()
        .request(request("POST", &vigil.url("/echo/upload")).body(upload).unwrap())
        .await
        .expect("the upload's answer");
    assert_eq!(res.status(), 200);
    assert_eq!(drain_repeating(res.into_body(), &chunk).await, CHUNK * CHUNKS, "echoed bytes");
    assert_eq!(up.requests_to("/echo/upload")[0].body.len(), CHUNK * CHUNKS, "bytes the upstream received");

    // The download is pattern(CHUNKS * CHUNK); support::pattern repeats every 2^24 bytes.
    let res = h1_client()
        .request(
            request("GET", &vigil.url(&format!("/stream?chunks={CHUNKS}&size={CHUNK}")))
                .body(TestBody::empty())
                .unwrap(),
        )
        .await
        .expect("the download's headers");
    assert_eq!(res.status(), 200);
    let period = pattern(1 << 24);
    assert_eq!(drain_repeating(res.into_body(), &period).await, CHUNK * CHUNKS, "downloaded bytes");

    vigil.wait_metric("vigil_captures_truncated_total", &[], 2.0).await;
    let after = peak_rss(vigil.pid());
    let grew = after.saturating_sub(before);
    eprintln!(
        "large bodies: 128 MiB up and echoed back, 128 MiB down, byte-identical; vigil's peak RSS {:.1} -> {:.1} MiB (+{:.1} MiB)",
        before as f64 / 1048576.0,
        after as f64 / 1048576.0,
        grew as f64 / 1048576.0
    );
    // 384 MiB passed through; the capture keeps 2 x 256 KiB per exchange and hyper's buffers
    // are bounded per connection. 32 MiB leaves room for allocator slack, not for a buffered body.
    assert!(grew < 32 * 1024 * 1024, "vigil's peak RSS grew by {grew} bytes: a body was buffered");
}

// ---------------------------------------------------------------------------------------------
// 4. The analysis queue saturated

/// `n` V2 inferences through `base`, `conc` at a time; checks every answer is 200 with exactly
/// `expected`; returns each client's latency, sorted.
async fn load(base: &str, n: usize, conc: usize, expected: &bytes::Bytes) -> Vec<Duration> {
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..conc {
        let (base, next, expected) = (base.to_owned(), next.clone(), expected.clone());
        tasks.push(tokio::spawn(async move {
            let client = h1_client();
            let mut lat = Vec::new();
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < n {
                let t = Instant::now();
                let r = send(&client, infer_req(&base, None)).await;
                lat.push(t.elapsed());
                assert_eq!(r.status, 200, "{}", r.text());
                assert_bytes_eq(&r.body, &expected[..], "answer through vigil vs the model's own");
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort();
    all
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    ms(sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1])
}

/// Expectation: with `capture.queue_capacity = 1` and 8 concurrent clients, captures are dropped
/// and counted (`vigil_captures_dropped_total > 0`, captured + dropped = requests), and every
/// client still gets 200 with the model's exact bytes: a full queue never reaches the client.
/// The figure (not asserted: timing) is client p50/p99 with the queue saturated vs a default
/// queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saturated_analysis_queue_drops_captures_never_answers() {
    const N: usize = 400;
    const CONC: usize = 8;
    let model = DemoModel::start("v1").await;
    let direct = send(&h1_client(), infer_req(&model.url(), None)).await;
    assert_eq!(direct.status, 200);
    let expected = direct.body.clone();

    let saturated =
        Vigil::builder().upstream("v1", &model.url()).config("[capture]\nqueue_capacity = 1\n").start().await;
    let roomy = Vigil::builder().upstream("v1", &model.url()).start().await;

    let lat_sat = load(&format!("http://{}", saturated.proxy), N, CONC, &expected).await;
    let lat_roomy = load(&format!("http://{}", roomy.proxy), N, CONC, &expected).await;

    let (dropped, captured) = poll_for("every request captured or dropped", || async {
        let m = saturated.metrics().await;
        let (d, c) = (m.sum("vigil_captures_dropped_total", &[]), m.sum("vigil_captures_total", &[]));
        if d + c == N as f64 {
            Ok((d, c))
        } else {
            Err(format!("dropped {d} + captured {c} != {N}"))
        }
    })
    .await;
    assert!(dropped > 0.0, "a one-slot queue under {CONC} clients dropped nothing");
    let m = roomy.metrics().await;
    assert_eq!(m.sum("vigil_captures_dropped_total", &[]), 0.0);
    assert_eq!(saturated.metrics().await.sum("vigil_requests_total", &[("code", "200")]), N as f64);
    eprintln!(
        "queue saturated (capacity 1, {CONC} clients, {N} requests): {dropped} captures dropped, {captured} \
         analysed, {N}/{N} answers 200 byte-identical to the model's; client p50 {:.2} ms p99 {:.2} ms \
         vs default queue p50 {:.2} ms p99 {:.2} ms",
        pct(&lat_sat, 0.5),
        pct(&lat_sat, 0.99),
        pct(&lat_roomy, 0.5),
        pct(&lat_roomy, 0.99)
    );
}

// ---------------------------------------------------------------------------------------------
// 5. The state dir becomes unusable at run time

/// vigil in front of `m1` (active) and `m2`, with the demo reference (a file outside the state
/// dir) so that every inference logs a row, flushed every 50 ms.
async fn with_reference(m1: &DemoModel, m2: &DemoModel, tmp: &std::path::Path, state: &std::path::Path) -> Vigil {
    let reference = tmp.join("reference.csv");
    std::fs::write(&reference, vigil::demo::reference_csv(500, 7)).unwrap();
    let config = "[schema]\npredictions = [\"probability\", \"label\"]\n[prediction_log]\nflush_interval = \"50ms\"\n";
    Vigil::builder()
        .upstream("v1", &m1.url())
        .upstream("v2", &m2.url())
        .config(config)
        .state_dir(state)
        .args(["--reference".to_string(), reference.display().to_string()])
        .start()
        .await
}

/// Expectation: when the state dir is replaced by a file while vigil runs (as root, chmod would
/// not stop writes; a path that cannot hold files does), requests keep being served (200), admin
/// mutations answer 500 with a JSON error naming the file (`state_write_failed`), nothing
/// changes, `vigil_state_write_errors_total` counts each, and vigil's log says so. Once the
/// dir is back, the next mutation succeeds and the audit chain verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_dir_unusable_at_run_time_keeps_serving_and_refuses_changes_loudly() {
    let (m1, m2) = (DemoModel::start("v1").await, DemoModel::start("v2").await);
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let vigil = with_reference(&m1, &m2, tmp.path(), &state).await;
    let base = format!("http://{}", vigil.proxy);
    let client = h1_client();
    assert_eq!(infer(&client, &base).await.as_deref(), Ok("v1"));
    vigil.wait_metric("vigil_prediction_log_rows_total", &[], 1.0).await;

    // The dir goes away and a file takes its place.
    let moved = tmp.path().join("state.moved");
    std::fs::rename(&state, &moved).unwrap();
    std::fs::write(&state, b"not a directory").unwrap();

    let mut served = 0;
    for _ in 0..20 {
        assert_eq!(infer(&client, &base).await.as_deref(), Ok("v1"));
        served += 1;
    }
    let r = vigil.admin("POST", "/admin/versions/v2/activate", None).await;
    assert_eq!(r.status, 500, "{}", r.text());
    let v = r.json();
    assert_eq!(v["kind"], "state_write_failed", "{v}");
    let state_json = state.join("state.json").display().to_string();
    assert!(v["error"].as_str().unwrap().contains(&state_json), "the error does not name {state_json}: {v}");
    assert_eq!(vigil.versions().await["active"], "v1", "a change that could not be saved took effect");

    let csv = vigil::demo::reference_csv(200, 5);
    let r = vigil.admin_req("PUT", "/admin/reference", Some(&csv), &[("content-type", "text/csv")]).await;
    assert_eq!(r.status, 500, "{}", r.text());
    let rv = r.json();
    assert_eq!(rv["kind"], "state_write_failed", "{rv}");
    assert!(rv["error"].as_str().unwrap().contains(&state.display().to_string()), "{rv}");

    let m = vigil.metrics().await;
    let state_errors = m.sum("vigil_state_write_errors_total", &[]);
    assert!(state_errors >= 2.0, "{}", m.text);
    poll_for("the log to name the file", || async {
        let log = vigil.stderr();
        if log.contains(&state_json) {
            Ok(())
        } else {
            Err(log)
        }
    })
    .await;
    // The prediction log's figures once the 20 rows are through (an open SQLite file keeps
    // working when its path is gone: the rows go on into the moved file, not asserted).
    let _ = poll_for("the prediction log to take the 20 rows", || async {
        let m = vigil.metrics().await;
        if m.sum("vigil_prediction_log_rows_total", &[]) >= 21.0
            || m.sum("vigil_prediction_log_errors_total", &[]) > 0.0
        {
            Ok(())
        } else {
            Err(m.text)
        }
    })
    .await;
    let m = vigil.metrics().await;
    let (log_errors, log_rows) =
        (m.sum("vigil_prediction_log_errors_total", &[]), m.sum("vigil_prediction_log_rows_total", &[]));
    assert_eq!(vigil.admin("GET", "/healthz", None).await.status, 200);

    // The dir comes back: changes go through again and the chain is whole.
    std::fs::remove_file(&state).unwrap();
    std::fs::rename(&moved, &state).unwrap();
    let r = vigil.admin("POST", "/admin/versions/v2/activate", None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(infer(&client, &base).await.as_deref(), Ok("v2"));
    let out = run_to_exit(&["audit", "verify", "--state-dir", state.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    eprintln!(
        "state dir replaced by a file: {served}/20 requests 200; activate and reference upload 500 \
         state_write_failed naming the file; vigil_state_write_errors_total {state_errors}; \
         prediction log errors {log_errors}, rows {log_rows} (its open file keeps working); \
         after the dir came back: activate 200, audit verify: {}",
        String::from_utf8_lossy(&out.stdout).trim()
    );
}

/// Sets vigil's file size limit (RLIMIT_FSIZE, soft): no write may take a regular file beyond
/// `bytes`. With SIGXFSZ ignored (inherited from this test process), such a write fails with
/// EFBIG, which is what a full disk looks like to vigil (ENOSPC): files cannot grow.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn set_file_size_limit(pid: u32, bytes: u64) {
    let mut old = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: plain syscalls on valid pointers.
    let rc = unsafe { libc::prlimit(pid as libc::pid_t, libc::RLIMIT_FSIZE, std::ptr::null(), &mut old) };
    assert_eq!(rc, 0, "prlimit(get): {}", std::io::Error::last_os_error());
    let new = libc::rlimit { rlim_cur: bytes.min(old.rlim_max), rlim_max: old.rlim_max };
    let rc = unsafe { libc::prlimit(pid as libc::pid_t, libc::RLIMIT_FSIZE, &new, std::ptr::null_mut()) };
    assert_eq!(rc, 0, "prlimit(set): {}", std::io::Error::last_os_error());
}

/// Expectation: when the state dir is full at run time (files cannot grow), requests keep being
/// served (200, the model's answers), admin mutations answer 500 with a JSON error naming the
/// file and change nothing, `vigil_state_write_errors_total` and
/// `vigil_prediction_log_errors_total` count the failures, the log names the files, and vigil
/// does not die (no SIGXFSZ, no panic). When space is back, changes go through, the prediction
/// log writes again, and the audit chain verifies.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_dir_full_at_run_time_keeps_serving_counts_and_recovers() {
    // SAFETY: setting a signal disposition; inherited by the vigil child across exec.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    let (m1, m2) = (DemoModel::start("v1").await, DemoModel::start("v2").await);
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let vigil = with_reference(&m1, &m2, tmp.path(), &state).await;
    let base = format!("http://{}", vigil.proxy);
    let client = h1_client();
    // Something in every file first: state.json, audit.jsonl, predictions.db.
    let r = vigil.admin("POST", "/admin/versions/v2/activate", None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    for _ in 0..5 {
        assert_eq!(infer(&client, &base).await.as_deref(), Ok("v2"));
    }
    vigil.wait_metric("vigil_prediction_log_rows_total", &[], 5.0).await;

    // The disk is full: no file may grow past its current size (1 byte is below every file's).
    set_file_size_limit(vigil.pid(), 1);
    let mut served = 0;
    for _ in 0..30 {
        assert_eq!(infer(&client, &base).await.as_deref(), Ok("v2"));
        served += 1;
    }
    let r = vigil.admin("POST", "/admin/rollback", None).await;
    assert_eq!(r.status, 500, "{}", r.text());
    let v = r.json();
    assert_eq!(v["kind"], "state_write_failed", "{v}");
    let state_json = state.join("state.json").display().to_string();
    assert!(v["error"].as_str().unwrap().contains(&state_json), "the error does not name {state_json}: {v}");
    assert_eq!(vigil.versions().await["active"], "v2", "a change that could not be saved took effect");
    // Every row is accounted for: written, or dropped by a failed write and counted.
    let (log_errors, dropped) = poll_for("prediction log write errors counted", || async {
        let m = vigil.metrics().await;
        let e = m.sum("vigil_prediction_log_errors_total", &[("op", "write")]);
        let (w, d) = (m.sum("vigil_prediction_log_rows_total", &[]), m.sum("vigil_prediction_log_dropped_total", &[]));
        if e > 0.0 && w + d == 35.0 {
            Ok((e, d))
        } else {
            Err(format!("{w} rows written, {d} dropped, {e} write errors"))
        }
    })
    .await;
    let m = vigil.metrics().await;
    let state_errors = m.sum("vigil_state_write_errors_total", &[("file", "state")]);
    assert_eq!(state_errors, 1.0, "{}", m.text);
    let rows_full = m.sum("vigil_prediction_log_rows_total", &[]);
    let db = state.join("predictions.db").display().to_string();
    poll_for("the log to name both files", || async {
        let log = vigil.stderr();
        if log.contains(&state_json) && log.contains(&db) {
            Ok(())
        } else {
            Err(log)
        }
    })
    .await;
    assert_eq!(vigil.admin("GET", "/healthz", None).await.status, 200);

    // Space is back.
    set_file_size_limit(vigil.pid(), u64::MAX);
    let r = vigil.admin("POST", "/admin/rollback", None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    for _ in 0..5 {
        assert_eq!(infer(&client, &base).await.as_deref(), Ok("v1"));
    }
    let rows_after = poll_for("the prediction log writing again", || async {
        let rows = vigil.metrics().await.sum("vigil_prediction_log_rows_total", &[]);
        if rows >= rows_full + 5.0 {
            Ok(rows)
        } else {
            Err(format!("{rows} rows"))
        }
    })
    .await;
    let out = run_to_exit(&["audit", "verify", "--state-dir", state.to_str().unwrap()], &[]);
    let verified = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_eq!(out.status.code(), Some(0), "{verified}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(verified.starts_with("ok: 2 entries"), "{verified}");
    eprintln!(
        "state dir full: {served}/30 requests 200 meanwhile; rollback 500 state_write_failed naming state.json; \
         vigil_state_write_errors_total{{file=state}} {state_errors}; prediction log write errors {log_errors}, \
         {dropped} rows dropped and counted ({rows_full} written before); space back: rollback 200, rows {rows_full} -> {rows_after}, \
         audit verify: {verified}"
    );
}

// ---------------------------------------------------------------------------------------------
// 6. SIGKILL and restart

/// Expectation: after an activate, a reference upload, traffic and a flush of the prediction
/// log, a SIGKILL of vigil and a restart on the same state dir bring back the same active and
/// previous versions and the uploaded reference; `vigil audit verify` exits 0, the next
/// mutation chains onto the old head, and the prediction log holds at least the flushed rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_and_restart_keep_routes_reference_audit_and_flushed_predictions() {
    let (m1, m2) = (DemoModel::start("v1").await, DemoModel::start("v2").await);
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let config = "[schema]\npredictions = [\"probability\", \"label\"]\n[prediction_log]\nflush_interval = \"50ms\"\n";
    let start = || {
        Vigil::builder().upstream("v1", &m1.url()).upstream("v2", &m2.url()).config(config).state_dir(&state).start()
    };
    let vigil = start().await;

    let r = vigil.admin("POST", "/admin/versions/v2/activate", None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let csv = vigil::demo::reference_csv(300, 9);
    let r = vigil.admin_req("PUT", "/admin/reference", Some(&csv), &[("content-type", "text/csv")]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    eventually("the uploaded reference in use", || async {
        vigil.admin("GET", "/admin/reference", None).await.json()["reference"]["rows"] == 300
    })
    .await;
    let base = format!("http://{}", vigil.proxy);
    let client = h1_client();
    const N: usize = 25;
    for _ in 0..N {
        assert_eq!(infer(&client, &base).await.as_deref(), Ok("v2"));
    }
    // INFER_BODY is one row: one logged row per request, once flushed.
    vigil.wait_metric("vigil_prediction_log_rows_total", &[], N as f64).await;
    let flushed = vigil.metrics().await.sum("vigil_prediction_log_rows_total", &[]);
    let head = vigil.admin("GET", "/admin/audit", None).await.json()["head"].as_str().unwrap().to_owned();
    let entries_before = vigil.audit().len();

    let t = Instant::now();
    vigil.sigkill();
    let vigil = start().await;
    let restart = t.elapsed();

    let versions = vigil.versions().await;
    assert_eq!((versions["active"].as_str(), versions["previous"].as_str()), (Some("v2"), Some("v1")), "{versions}");
    let r = vigil.admin("GET", "/admin/reference", None).await.json();
    assert_eq!(r["reference"]["rows"], 300, "{r}");
    assert_eq!(r["reference"]["source"]["kind"], "upload", "{r}");
    let out = run_to_exit(&["audit", "verify", "--state-dir", state.to_str().unwrap()], &[]);
    let verified = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_eq!(out.status.code(), Some(0), "{verified}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(verified.ends_with(&format!("head {head}")), "the chain's head moved across the kill: {verified}");
    let rows = count_rows(&state, "");
    assert!(rows as f64 >= flushed, "{rows} rows after the kill, {flushed} were flushed");
    assert_eq!(infer(&client, &format!("http://{}", vigil.proxy)).await.as_deref(), Ok("v2"));

    let r = vigil.admin("POST", "/admin/rollback", None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let got = vigil.admin("GET", "/admin/audit?limit=1", None).await.json();
    let next = &got["entries"][0];
    assert_eq!(next["prev"], head.as_str(), "{got}");
    assert_eq!(next["seq"], json!(entries_before + 1), "{got}");
    assert_eq!(vigil.versions().await["active"], "v1");
    eprintln!(
        "SIGKILL + restart ({:.0} ms to ready): active v2 / previous v1, reference 300 rows (upload), \
         audit: {verified}; next entry seq {} chains onto it; prediction log {rows} rows (>= {flushed} flushed)",
        ms(restart),
        next["seq"]
    );
}
