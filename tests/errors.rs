//! Errors vigil answers itself: JSON `{"error","kind","source","retryable","request_id","version"}`
//! with 502/504/503, counted in `vigil_upstream_errors_total`; vigil stays up through them.

mod support;

use serde_json::Value;
use support::*;

/// Checks the JSON body of one of vigil's own errors and returns it.
#[track_caller]
fn assert_vigil_error(r: &Resp, status: u16, kind: &str, retryable: bool) -> Value {
    assert_eq!(r.status.as_u16(), status, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(r.header("x-upstream").is_none(), "answered by an upstream, not by vigil");
    let v = r.json();
    assert_eq!(v["kind"], kind, "{v}");
    assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{v}");
    assert_eq!(v["retryable"], retryable, "{v}");
    let source = if kind == "overloaded" { "vigil" } else { "upstream" };
    assert_eq!(v["source"], source, "{v}");
    v
}

async fn get_with_id(client: &HttpClient, url: &str, id: Option<&str>) -> Resp {
    let mut b = request("GET", url);
    if let Some(id) = id {
        b = b.header("x-request-id", id);
    }
    send(client, b.body(TestBody::empty()).unwrap()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_down_gives_502_upstream_unavailable() {
    let dead = dead_port();
    let vigil = Vigil::builder().upstream("v1", &format!("http://{dead}")).no_wait_ready().start().await;
    let client = h1_client();

    let r = get_with_id(&client, &vigil.url("/v2/models/demo/infer"), None).await;
    let v = assert_vigil_error(&r, 502, "upstream_unavailable", true);
    let id = r.header("x-request-id").expect("x-request-id on an error").to_owned();
    assert_eq!(v["request_id"], id.as_str());
    assert_eq!(v["version"], "v1");

    let r = get_with_id(&client, &vigil.url("/x"), Some("my-id-42")).await;
    let v = assert_vigil_error(&r, 502, "upstream_unavailable", true);
    assert_eq!(v["request_id"], "my-id-42");
    assert_eq!(r.header("x-request-id"), Some("my-id-42"));

    // Over h2 too.
    let r = get_with_id(&h2_client(), &vigil.url("/y"), None).await;
    assert_vigil_error(&r, 502, "upstream_unavailable", true);

    let m = vigil.metrics().await;
    assert_eq!(m.sum("vigil_upstream_errors_total", &[("version", "v1"), ("kind", "upstream_unavailable")]), 3.0);
    assert_eq!(m.sum("vigil_requests_total", &[("version", "v1"), ("code", "502")]), 3.0);
    // Never answered: not ready; but alive.
    let r = vigil.admin("GET", "/readyz", None).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["ready"], false);
    assert_eq!(vigil.admin("GET", "/healthz", None).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_upstream_gives_504_upstream_timeout() {
    let up = Upstream::start("u1").await;
    let config =
        format!("[proxy]\nresponse_timeout = \"200ms\"\n\n[[versions]]\nname = \"v1\"\nurl = \"{}\"\n", up.url());
    let vigil = Vigil::builder().config(&config).start().await;
    let client = h1_client();

    // /hold answers only when released; /slow sleeps far longer than the timeout.
    for path in ["/hold", "/slow?ms=30000"] {
        let r = get_with_id(&client, &vigil.url(path), Some("slow-1")).await;
        let v = assert_vigil_error(&r, 504, "upstream_timeout", true);
        assert_eq!(v["request_id"], "slow-1");
        assert_eq!(v["version"], "v1");
    }
    // vigil is still up and forwarding.
    assert_eq!(vigil.admin("GET", "/healthz", None).await.status, 200);
    let r = get_with_id(&client, &vigil.url("/echo/after"), None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.upstream(), "u1");
    let m = vigil.metrics().await;
    assert_eq!(m.sum("vigil_upstream_errors_total", &[("version", "v1"), ("kind", "upstream_timeout")]), 2.0);
    assert_eq!(m.sum("vigil_requests_total", &[("version", "v1"), ("code", "504")]), 2.0);
    vigil.wait_metric("vigil_in_flight_requests", &[], 0.0).await;
    up.release();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_closing_before_responding_gives_502_upstream_reset() {
    let addr = closing_upstream().await;
    let vigil = Vigil::builder().upstream("v1", &format!("http://{addr}")).no_wait_ready().start().await;
    let client = h1_client();
    for i in 0..3 {
        let r = get_with_id(&client, &vigil.url("/v2/models/demo/infer"), Some(&format!("reset-{i}"))).await;
        let v = assert_vigil_error(&r, 502, "upstream_reset", false);
        assert_eq!(v["request_id"], format!("reset-{i}"));
    }
    let m = vigil.metrics().await;
    assert_eq!(m.sum("vigil_upstream_errors_total", &[("version", "v1"), ("kind", "upstream_reset")]), 3.0);
    assert_eq!(vigil.admin("GET", "/healthz", None).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_speaking_garbage_gives_502() {
    let addr = garbage_upstream(b"SSH-2.0-OpenSSH_9.6\r\n\r\n").await;
    let vigil = Vigil::builder().upstream("v1", &format!("http://{addr}")).no_wait_ready().start().await;
    let r = get_with_id(&h1_client(), &vigil.url("/x"), None).await;
    assert_vigil_error(&r, 502, "bad_gateway", false);
    let m = vigil.metrics().await;
    assert_eq!(m.sum("vigil_upstream_errors_total", &[("version", "v1"), ("kind", "bad_gateway")]), 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_upstream_body_is_not_passed_off_as_complete() {
    // Content-Length promises 100 bytes; 7 come, then the connection closes.
    let addr = garbage_upstream(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial").await;
    let vigil = Vigil::builder().upstream("v1", &format!("http://{addr}")).start().await;
    let err = try_send(&h1_client(), request("GET", &vigil.url("/cl")).body(TestBody::empty()).unwrap()).await;
    assert!(err.is_err(), "a truncated body reached the client as a complete response: {err:?}");
    // Counted as the upstream's failure, after the headers went through.
    vigil.wait_metric("vigil_upstream_errors_total", &[("version", "v1"), ("kind", "upstream_body_error")], 1.0).await;

    // Chunked: two chunks, then the connection closes without the last chunk.
    let addr = garbage_upstream(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n3\r\ndef\r\n").await;
    let vigil = Vigil::builder().upstream("v1", &format!("http://{addr}")).start().await;
    let err = try_send(&h1_client(), request("GET", &vigil.url("/ch")).body(TestBody::empty()).unwrap()).await;
    assert!(err.is_err(), "a truncated chunked body reached the client as a complete response: {err:?}");
    let raw = raw_exchange(vigil.proxy, b"GET /ch HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n").await;
    assert!(
        !raw.ends_with(b"0\r\n\r\n"),
        "vigil terminated a truncated chunked body: {:?}",
        String::from_utf8_lossy(&raw)
    );
    vigil.wait_metric("vigil_upstream_errors_total", &[("kind", "upstream_body_error")], 2.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_in_flight_sheds_with_503_overloaded() {
    let up = Upstream::start("u1").await;
    let config = format!("[proxy]\nmax_in_flight = 1\n\n[[versions]]\nname = \"v1\"\nurl = \"{}\"\n", up.url());
    let vigil = Vigil::builder().config(&config).start().await;

    let url = vigil.url("/hold");
    let held = tokio::spawn(async move { get(&url).await });
    up.wait_held(1).await;

    let r = get_with_id(&h1_client(), &vigil.url("/echo/second"), Some("shed-1")).await;
    let v = assert_vigil_error(&r, 503, "overloaded", true);
    assert_eq!(v["request_id"], "shed-1");
    assert_eq!(r.header("x-request-id"), Some("shed-1"));
    assert!(r.header("retry-after").is_some(), "no Retry-After: {:?}", r.headers);
    assert!(up.requests_to("/echo/second").is_empty(), "a shed request reached the upstream");
    let m = vigil.metrics().await;
    assert_eq!(m.sum("vigil_requests_shed_total", &[]), 1.0);
    assert_eq!(m.sum("vigil_in_flight_requests", &[]), 1.0);

    up.release();
    let r = held.await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "released");
    // The slot is free again (the held response has ended by now).
    let r = get(&vigil.url("/echo/third")).await;
    assert_eq!(r.status, 200);
    vigil.wait_metric("vigil_in_flight_requests", &[], 0.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overloaded_answer_carries_a_generated_request_id() {
    let up = Upstream::start("u1").await;
    let config = format!("[proxy]\nmax_in_flight = 1\n\n[[versions]]\nname = \"v1\"\nurl = \"{}\"\n", up.url());
    let vigil = Vigil::builder().config(&config).start().await;
    let url = vigil.url("/hold");
    let held = tokio::spawn(async move { get(&url).await });
    up.wait_held(1).await;

    let r = get(&vigil.url("/echo/second")).await;
    let v = assert_vigil_error(&r, 503, "overloaded", true);
    up.release();
    held.await.unwrap();
    let id = r.header("x-request-id").expect("every response carries x-request-id");
    assert_eq!(v["request_id"], id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_leaving_mid_response_frees_its_slot() {
    let up = Upstream::start("u1").await;
    let config = format!("[proxy]\nmax_in_flight = 1\n\n[[versions]]\nname = \"v1\"\nurl = \"{}\"\n", up.url());
    let vigil = Vigil::builder().config(&config).start().await;
    {
        let client = h1_client();
        let res = client.request(request("GET", &vigil.url("/stream-held")).body(TestBody::empty()).unwrap());
        let res = res.await.unwrap();
        let mut body = res.into_body();
        let first = http_body_util::BodyExt::frame(&mut body).await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), "first-chunk");
        assert_eq!(vigil.metrics().await.sum("vigil_in_flight_requests", &[]), 1.0);
        // Dropping the body and the client closes the connection mid-response.
    }
    vigil.wait_metric("vigil_in_flight_requests", &[], 0.0).await;
    let r = get(&vigil.url("/echo/next")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    // The aborted exchange is still captured (as aborted), the next one too.
    vigil.wait_metric("vigil_captures_total", &[], 2.0).await;
}

/// A client that sends its headers and part of its body, then goes away.
async fn abort_mid_upload(vigil: &Vigil, extra_header: &str) {
    use tokio::io::AsyncWriteExt;
    let mut s = tokio::net::TcpStream::connect(vigil.proxy).await.unwrap();
    let head =
        format!("POST /echo/abort HTTP/1.1\r\nHost: h\r\n{extra_header}Content-Length: 100000\r\n\r\n0123456789");
    s.write_all(head.as_bytes()).await.unwrap();
    // vigil has the request in flight (headers, a few body bytes): now the client goes away.
    eventually("the upload to be in flight", || async {
        vigil.metrics().await.sum("vigil_in_flight_requests", &[]) == 1.0
    })
    .await;
    drop(s);
    vigil.wait_metric("vigil_in_flight_requests", &[], 0.0).await;
    assert_eq!(get(&vigil.url("/echo/next")).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_leaving_mid_upload_is_not_an_upstream_error() {
    let up = Upstream::start("u1").await;
    let vigil = Vigil::builder().upstream("v1", &up.url()).start().await;
    abort_mid_upload(&vigil, "").await;
    let m = vigil.metrics().await;
    assert_eq!(m.sum("vigil_upstream_errors_total", &[]), 0.0, "{}", m.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_leaving_mid_upload_is_not_an_upstream_error_without_capture() {
    let up = Upstream::start("u1").await;
    let config = format!("[capture]\nenabled = false\n\n[[versions]]\nname = \"v1\"\nurl = \"{}\"\n", up.url());
    let vigil = Vigil::builder().config(&config).start().await;
    abort_mid_upload(&vigil, "").await;
    let vigil2 = Vigil::builder().upstream("v1", &up.url()).start().await;
    abort_mid_upload(&vigil2, "x-vigil-shadow: 1\r\n").await;
    for v in [&vigil, &vigil2] {
        let m = v.metrics().await;
        assert_eq!(m.sum("vigil_upstream_errors_total", &[]), 0.0, "{}", m.text);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_loris_connections_are_closed_after_header_read_timeout() {
    let up = Upstream::start("u1").await;
    let config =
        format!("[proxy]\nheader_read_timeout = \"200ms\"\n\n[[versions]]\nname = \"v1\"\nurl = \"{}\"\n", up.url());
    let vigil = Vigil::builder().config(&config).start().await;
    let mut s = tokio::net::TcpStream::connect(vigil.proxy).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    s.write_all(b"GET /echo/loris HTTP/1.1\r\nHost: h\r\n").await.unwrap();
    let mut buf = Vec::new();
    // Never finishing the headers: vigil must hang up (with or without a 408).
    let read = tokio::time::timeout(DEADLINE, s.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "vigil kept a connection with unfinished headers open");
    let text = String::from_utf8_lossy(&buf);
    assert!(buf.is_empty() || text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(up.requests_to("/echo/loris").is_empty());
    assert_eq!(get(&vigil.url("/echo/ok")).await.status, 200);
}
