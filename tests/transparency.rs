//! The data path is a transparent proxy: method, path, query, end-to-end headers, status and body
//! bytes pass unchanged both ways (streamed), hop-by-hop headers stop at vigil, `x-request-id` is
//! kept or created, and HTTP/1.1 and h2c clients are served with either upstream protocol.

mod support;

use bytes::Bytes;
use http_body_util::BodyExt;
use std::time::Duration;
use support::*;

async fn setup() -> (Upstream, Vigil) {
    let up = Upstream::start("u1").await;
    let vigil = Vigil::builder().upstream("v1", &up.url()).start().await;
    (up, vigil)
}

/// vigil with one version `v1` on `up`, speaking `protocol` to it.
async fn setup_protocol(protocol: &str) -> (Upstream, Vigil) {
    let up = Upstream::start("u1").await;
    let config = format!("[[versions]]\nname = \"v1\"\nurl = \"{}\"\nprotocol = \"{protocol}\"\n", up.url());
    let vigil = Vigil::builder().config(&config).start().await;
    (up, vigil)
}

fn is_uuid_v4(s: &str) -> bool {
    let b = s.as_bytes();
    s.len() == 36
        && s.chars()
            .enumerate()
            .all(|(i, c)| if matches!(i, 8 | 13 | 18 | 23) { c == '-' } else { c.is_ascii_hexdigit() })
        && b[14] == b'4'
        && matches!(b[19], b'8' | b'9' | b'a' | b'b' | b'A' | b'B')
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_and_response_bodies_are_byte_identical_up_to_10_mib() {
    let (up, vigil) = setup().await;
    let client = h1_client();
    for (i, len) in [0usize, 1, 1000, 70_000, LARGE_LEN].into_iter().enumerate() {
        let body = Bytes::from(pattern(len));
        let path = format!("/echo/{i}");
        let req = request("POST", &vigil.url(&path)).body(TestBody::full(body.clone())).unwrap();
        let r = send(&client, req).await;
        assert_eq!(r.status, 200);
        assert_bytes_eq(&r.body, &body, &format!("response to a {len}-byte upload"));
        assert_eq!(r.header("content-length"), Some(len.to_string().as_str()));
        let seen = up.one(&path);
        assert_bytes_eq(&seen.body, &body, &format!("{len}-byte upload as the upstream got it"));
        if len > 0 {
            assert_eq!(seen.header("content-length"), Some(len.to_string().as_str()));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_10_mib_response_is_byte_identical() {
    let (_up, vigil) = setup().await;
    let r = get(&vigil.url("/large")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some(LARGE_LEN.to_string().as_str()));
    assert_bytes_eq(&r.body, &pattern(LARGE_LEN), "10 MiB response");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_streaming_response_is_byte_identical() {
    let (_up, vigil) = setup().await;
    // Many small chunks, with delays between them.
    let r = get(&vigil.url("/stream?chunks=300&size=37&delay_ms=1")).await;
    assert_eq!(r.status, 200);
    assert!(r.header("content-length").is_none(), "a streamed body has no length: {:?}", r.headers);
    assert_bytes_eq(&r.body, &pattern(300 * 37), "chunked response");
    // Big chunks adding up to 10 MiB.
    let r = get(&vigil.url("/stream?chunks=160&size=65536")).await;
    assert_bytes_eq(&r.body, &pattern(160 * 65536), "10 MiB chunked response");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_response_reaches_the_client_before_the_upstream_finishes() {
    let (up, vigil) = setup().await;
    for client in [h1_client(), h2_client()] {
        let req = request("GET", &vigil.url("/stream-held")).body(TestBody::empty()).unwrap();
        let res = client.request(req).await.unwrap();
        assert_eq!(res.status(), 200);
        let mut body = res.into_body();
        // The upstream holds the rest of the body until released: the first chunk must already
        // be here, or vigil buffers.
        let first = tokio::time::timeout(DEADLINE, body.frame()).await.expect("first chunk never came");
        let first = first.unwrap().unwrap().into_data().unwrap();
        assert_eq!(&first[..], b"first-chunk");
        up.release();
        let rest = body.collect().await.unwrap().to_bytes();
        assert_eq!(&rest[..], b"second-chunk");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_request_body_is_forwarded_byte_identical() {
    let (up, vigil) = setup().await;
    let all = Bytes::from(pattern(200 * 101));
    let chunks: Vec<Bytes> = (0..200).map(|i| all.slice(i * 101..(i + 1) * 101)).collect();
    let req =
        request("POST", &vigil.url("/echo/chunked")).body(TestBody::chunks(chunks, Duration::from_millis(1))).unwrap();
    let r = send(&h1_client(), req).await;
    assert_eq!(r.status, 200);
    assert_bytes_eq(&r.body, &all, "echo of a chunked upload");
    let seen = up.one("/echo/chunked");
    assert_bytes_eq(&seen.body, &all, "chunked upload as the upstream got it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_non_json_bodies_pass_unchanged() {
    let (up, vigil) = setup().await;
    let r = get(&vigil.url("/binary")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    let expected: Vec<u8> = (0..BINARY_LEN).map(|i| (i % 256) as u8).rev().collect();
    assert_bytes_eq(&r.body, &expected, "binary response");

    // Not UTF-8, with NULs, CR LF and a fake end of headers inside.
    let mut upload = b"\x00\xff\xfe\r\n\r\nHTTP/1.1 200 OK\r\n\x80\x81".to_vec();
    upload.extend(pattern(5000));
    let req = request("PUT", &vigil.url("/echo/bin"))
        .header("content-type", "application/x-protobuf")
        .body(TestBody::full(upload.clone()))
        .unwrap();
    let r = send(&h1_client(), req).await;
    assert_bytes_eq(&r.body, &upload, "binary echo");
    let seen = up.one("/echo/bin");
    assert_bytes_eq(&seen.body, &upload, "binary upload at the upstream");
    assert_eq!(seen.header("content-type"), Some("application/x-protobuf"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_statuses_and_their_bodies_pass_through() {
    let (_up, vigil) = setup().await;
    let client = h1_client();
    for code in [201u16, 204, 400, 401, 404, 409, 418, 422, 429, 500, 502, 503, 504] {
        let r = send(&client, request("GET", &vigil.url(&format!("/status/{code}"))).body(TestBody::empty()).unwrap())
            .await;
        assert_eq!(r.status.as_u16(), code);
        // The upstream's own answer, not one of vigil's.
        assert_eq!(r.upstream(), "u1");
        assert_eq!(r.header("x-upstream-status"), Some(code.to_string().as_str()));
        if code == 204 {
            assert!(r.body.is_empty());
        } else {
            assert_eq!(r.header("content-type"), Some("application/problem+json"));
            let expected = format!(r#"{{"upstream_status":{code},"detail":"the upstream's own body for {code}"}}"#);
            assert_eq!(r.text(), expected);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_to_end_headers_pass_both_ways_including_multi_value() {
    let (up, vigil) = setup().await;
    let req = request("GET", &vigil.url("/echo/headers"))
        .header("x-custom", "Hello, World")
        .header("accept", "application/json")
        .header("user-agent", "vigil-tests/1")
        .header("authorization", "Bearer model-token")
        .header("x-multi", "a")
        .header("x-multi", "b")
        .header("x-multi", "c")
        .header("cookie", "k=v")
        .body(TestBody::empty())
        .unwrap();
    let r = send(&h1_client(), req).await;
    assert_eq!(r.status, 200);
    let seen = up.one("/echo/headers");
    assert_eq!(seen.header("x-custom"), Some("Hello, World"));
    assert_eq!(seen.header("accept"), Some("application/json"));
    assert_eq!(seen.header("user-agent"), Some("vigil-tests/1"));
    assert_eq!(seen.header("authorization"), Some("Bearer model-token"));
    assert_eq!(seen.header("cookie"), Some("k=v"));
    assert_eq!(seen.header_all("x-multi"), ["a", "b", "c"]);
    // HTTP/1.1 to HTTP/1.1: the client's Host reaches the upstream.
    assert_eq!(seen.header("host"), Some(vigil.proxy.to_string().as_str()));

    let r = get(&vigil.url("/headers-out")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header_all("x-multi"), ["one", "two"]);
    assert_eq!(r.header_all("set-cookie"), ["a=1; Path=/", "b=2; HttpOnly"]);
    assert_eq!(r.header("x-custom-resp"), Some("Hello, World"));
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(r.text(), "headers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_by_hop_headers_are_removed_both_ways() {
    let (up, vigil) = setup().await;
    let raw = "GET /echo/hop HTTP/1.1\r\n\
        Host: model.example:8080\r\n\
        Connection: close, x-hop\r\n\
        x-hop: secret\r\n\
        Keep-Alive: timeout=5\r\n\
        Proxy-Connection: keep-alive\r\n\
        TE: gzip\r\n\
        Upgrade: websocket\r\n\
        x-end-to-end: kept\r\n\
        \r\n";
    let res = RawResponse::parse(&raw_exchange(vigil.proxy, raw.as_bytes()).await);
    assert!(res.status_line.starts_with("HTTP/1.1 200"), "{}", res.status_line);
    let seen = up.one("/echo/hop");
    for h in ["x-hop", "keep-alive", "proxy-connection", "te", "upgrade"] {
        assert!(seen.header(h).is_none(), "hop-by-hop {h} was forwarded: {:?}", seen.headers);
    }
    assert_ne!(seen.header("connection"), Some("close, x-hop"));
    assert_eq!(seen.header("x-end-to-end"), Some("kept"));
    assert_eq!(seen.header("host"), Some("model.example:8080"));

    // Control: sent straight to the upstream, the same request keeps those headers.
    RawResponse::parse(&raw_exchange(up.addr, raw.replace("/echo/hop", "/echo/ctl").as_bytes()).await);
    assert_eq!(up.one("/echo/ctl").header("x-hop"), Some("secret"), "control: the upstream records x-hop");

    // Response direction: the upstream names x-hop-resp in its Connection header.
    let raw = b"GET /headers-out HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let direct = RawResponse::parse(&raw_exchange(up.addr, raw).await);
    assert_eq!(direct.header("x-hop-resp"), Some("secret"), "control: the upstream sends x-hop-resp");
    let res = RawResponse::parse(&raw_exchange(vigil.proxy, raw).await);
    assert!(res.status_line.starts_with("HTTP/1.1 200"), "{}", res.status_line);
    assert!(res.header("x-hop-resp").is_none(), "Connection-named response header forwarded: {:?}", res.headers);
    assert_eq!(res.header("x-custom-resp"), Some("Hello, World"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_http1_exchange_is_byte_exact() {
    let (up, vigil) = setup().await;
    // A hand-written chunked upload, chunk boundaries of our own choosing.
    let payload = pattern(3000);
    let mut raw =
        b"POST /echo/raw?x=1 HTTP/1.1\r\nHost: h\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for chunk in payload.chunks(701) {
        raw.extend(format!("{:x}\r\n", chunk.len()).as_bytes());
        raw.extend(chunk);
        raw.extend(b"\r\n");
    }
    raw.extend(b"0\r\n\r\n");
    let res = RawResponse::parse(&raw_exchange(vigil.proxy, &raw).await);
    assert!(res.status_line.starts_with("HTTP/1.1 200"), "{}", res.status_line);
    assert_bytes_eq(&res.body, &payload, "raw chunked echo");
    assert_eq!(res.header("x-echo-uri"), Some("/echo/raw?x=1"));
    assert!(res.header("x-request-id").is_some());
    assert_bytes_eq(&up.one("/echo/raw").body, &payload, "raw chunked upload at the upstream");

    let raw = b"GET /binary HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
    let res = RawResponse::parse(&raw_exchange(vigil.proxy, raw).await);
    let expected: Vec<u8> = (0..BINARY_LEN).map(|i| (i % 256) as u8).rev().collect();
    assert_bytes_eq(&res.body, &expected, "raw binary response");
    assert_eq!(res.header("content-length"), Some(BINARY_LEN.to_string().as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_strings_pass_unchanged() {
    let (up, vigil) = setup().await;
    let client = h1_client();
    for pq in [
        "/echo/q?a=1&b=2",
        "/echo/q?a=1&a=2&empty=&flag",
        "/echo/q?enc=%20%2F%3F%26%3D%25&utf=%C3%A9",
        "/echo/q?",
        "/echo/q/with%20space/and;matrix=1?z=9",
    ] {
        let r = send(&client, request("GET", &vigil.url(pq)).body(TestBody::empty()).unwrap()).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-echo-uri"), Some(pq));
        assert_eq!(up.requests().last().unwrap().uri, pq);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn methods_pass_unchanged() {
    let (up, vigil) = setup().await;
    let client = h1_client();
    for m in ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "PURGE"] {
        let path = format!("/echo/method-{m}");
        let body = if matches!(m, "GET" | "DELETE" | "OPTIONS") { TestBody::empty() } else { TestBody::full(m) };
        let r = send(&client, request(m, &vigil.url(&path)).body(body).unwrap()).await;
        assert_eq!(r.status, 200, "{m}");
        assert_eq!(r.header("x-echo-method"), Some(m));
        assert_eq!(up.one(&path).method.as_str(), m);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_gets_headers_without_body() {
    let (up, vigil) = setup().await;
    let r = send(&h1_client(), request("HEAD", &vigil.url("/large")).body(TestBody::empty()).unwrap()).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some(LARGE_LEN.to_string().as_str()));
    assert!(r.body.is_empty());
    assert_eq!(up.one("/large").method, "HEAD");
    // The connection is still usable after a HEAD (no stray body bytes).
    let raw =
        b"HEAD /large HTTP/1.1\r\nHost: h\r\n\r\nGET /echo/after-head HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
    let all = raw_exchange(vigil.proxy, raw).await;
    let text = String::from_utf8_lossy(&all);
    assert_eq!(text.matches("HTTP/1.1 200").count(), 2, "{text}");
    assert!(text.contains("x-echo-uri: /echo/after-head"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_id_is_kept_when_sent() {
    let (up, vigil) = setup().await;
    for client in [h1_client(), h2_client()] {
        let id = format!("client-id-{}", client_nonce());
        let req = request("GET", &vigil.url("/echo/id")).header("x-request-id", &id).body(TestBody::empty()).unwrap();
        let r = send(&client, req).await;
        assert_eq!(r.header("x-request-id"), Some(id.as_str()));
        assert_eq!(r.header_all("x-request-id").len(), 1);
        assert_eq!(up.requests().last().unwrap().header_all("x-request-id"), [id]);
    }
}

fn client_nonce() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_id_is_generated_when_absent_and_seen_by_both_sides() {
    let (up, vigil) = setup().await;
    let mut ids = Vec::new();
    for (i, client) in [h1_client(), h1_client(), h2_client()].iter().enumerate() {
        let path = format!("/echo/gen-{i}");
        let r = send(client, request("GET", &vigil.url(&path)).body(TestBody::empty()).unwrap()).await;
        let id = r.header("x-request-id").expect("x-request-id on the response").to_owned();
        assert!(is_uuid_v4(&id), "not a UUID v4: {id}");
        assert_eq!(up.one(&path).header("x-request-id"), Some(id.as_str()), "upstream saw another id");
        assert_eq!(r.header("x-echo-request-id"), Some(id.as_str()));
        ids.push(id);
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3, "ids repeat: {ids:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_client_with_protocol_auto_speaks_h2_upstream() {
    let (up, vigil) = setup_protocol("auto").await;
    let client = h2_client();
    let body = Bytes::from(pattern(1_000_000));
    let req = request("POST", &vigil.url("/echo/h2?q=1"))
        .header("x-custom", "h2-value")
        .header("x-multi", "a")
        .header("x-multi", "b")
        .body(TestBody::full(body.clone()))
        .unwrap();
    let r = send(&client, req).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.version, http::Version::HTTP_2);
    assert_bytes_eq(&r.body, &body, "h2 echo");
    let seen = up.one("/echo/h2?q=1");
    assert_eq!(seen.version, http::Version::HTTP_2, "protocol auto with an h2 client must use h2 upstream");
    assert_eq!(seen.header("x-custom"), Some("h2-value"));
    assert_eq!(seen.header_all("x-multi"), ["a", "b"]);
    assert_bytes_eq(&seen.body, &body, "h2 upload at the upstream");
    assert!(seen.header("x-request-id").is_some());

    // Streams and large bodies over h2 too; and an HTTP/1.1 client still gets HTTP/1.1 upstream.
    let r = send(&client, request("GET", &vigil.url("/large")).body(TestBody::empty()).unwrap()).await;
    assert_bytes_eq(&r.body, &pattern(LARGE_LEN), "10 MiB over h2");
    let r =
        send(&client, request("GET", &vigil.url("/stream?chunks=100&size=10")).body(TestBody::empty()).unwrap()).await;
    assert_bytes_eq(&r.body, &pattern(1000), "stream over h2");
    let r = send(&client, request("GET", &vigil.url("/status/503")).body(TestBody::empty()).unwrap()).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.upstream(), "u1");

    let r = get(&vigil.url("/echo/h1")).await;
    assert_eq!(r.version, http::Version::HTTP_11);
    assert_eq!(up.one("/echo/h1").version, http::Version::HTTP_11);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_client_with_protocol_http1_speaks_http1_upstream() {
    let (up, vigil) = setup_protocol("http1").await;
    let client = h2_client();
    let body = Bytes::from(pattern(300_000));
    let req = request("POST", &vigil.url("/echo/down?x=y"))
        .header("x-custom", "h2-to-h1")
        .body(TestBody::full(body.clone()))
        .unwrap();
    let r = send(&client, req).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.version, http::Version::HTTP_2);
    assert_bytes_eq(&r.body, &body, "h2 to http1 echo");
    let seen = up.one("/echo/down?x=y");
    assert_eq!(seen.version, http::Version::HTTP_11);
    assert_eq!(seen.header("x-custom"), Some("h2-to-h1"));
    // An HTTP/1.1 upstream needs Host: the h2 client's :authority.
    assert_eq!(seen.header("host"), Some(vigil.proxy.to_string().as_str()));
    assert_bytes_eq(&seen.body, &body, "h2 to http1 upload");

    // A chunked (unknown length) h2 upload reaches the HTTP/1.1 upstream intact.
    let all = Bytes::from(pattern(50 * 99));
    let chunks = (0..50).map(|i| all.slice(i * 99..(i + 1) * 99)).collect();
    let req = request("POST", &vigil.url("/echo/down-chunked")).body(TestBody::chunks(chunks, Duration::ZERO)).unwrap();
    let r = send(&client, req).await;
    assert_bytes_eq(&r.body, &all, "h2 streamed upload to http1");

    // Response headers of an HTTP/1.1 upstream become valid HTTP/2 ones.
    let r = send(&client, request("GET", &vigil.url("/headers-out")).body(TestBody::empty()).unwrap()).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header_all("set-cookie"), ["a=1; Path=/", "b=2; HttpOnly"]);
    assert!(r.header("x-hop-resp").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_client_with_protocol_http2_speaks_h2_upstream() {
    let (up, vigil) = setup_protocol("http2").await;
    let body = Bytes::from(pattern(100_000));
    let req = request("POST", &vigil.url("/echo/up")).body(TestBody::full(body.clone())).unwrap();
    let r = send(&h1_client(), req).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.version, http::Version::HTTP_11);
    assert_bytes_eq(&r.body, &body, "http1 to h2 echo");
    let seen = up.one("/echo/up");
    assert_eq!(seen.version, http::Version::HTTP_2);
    assert_bytes_eq(&seen.body, &body, "http1 to h2 upload");
}

/// RFC 9113 §8.3.1: an intermediary forwarding over HTTP/2 builds `:authority` from the original
/// request, and a Host header that differs from `:authority` makes the request malformed.
/// vigil sends `:authority` = the upstream URL's authority and keeps the client's different Host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_client_to_h2_upstream_sends_consistent_host_and_authority() {
    let (up, vigil) = setup_protocol("http2").await;
    let req = request("GET", &vigil.url("/echo/authority")).header("host", "model.example").body(TestBody::empty());
    let r = send(&h1_client(), req.unwrap()).await;
    assert_eq!(r.status, 200);
    let seen = up.one("/echo/authority");
    assert_eq!(seen.version, http::Version::HTTP_2);
    if let Some(host) = seen.header("host") {
        assert_eq!(Some(host), seen.authority.as_deref(), "Host and :authority differ on an HTTP/2 request");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_h2_streams_on_one_connection() {
    let (up, vigil) = setup().await;
    let client = h2_client();
    let mut tasks = Vec::new();
    for i in 0..64 {
        let (client, url) = (client.clone(), vigil.url(&format!("/echo/mux-{i}")));
        tasks.push(tokio::spawn(async move {
            let body = bytes::Bytes::from(format!("stream {i} ").repeat(i + 1));
            let r = send(&client, request("POST", &url).body(TestBody::full(body.clone())).unwrap()).await;
            assert_eq!(r.status, 200);
            assert_bytes_eq(&r.body, &body, &format!("stream {i}"));
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(up.requests_to("/echo/mux-").len(), 64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_100_continue_uploads_work() {
    let (up, vigil) = setup().await;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let payload = pattern(2 * 1024 * 1024);
    let mut s = tokio::net::TcpStream::connect(vigil.proxy).await.unwrap();
    let head = format!(
        "POST /echo/expect HTTP/1.1\r\nHost: h\r\nConnection: close\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
        payload.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    // curl waits for "100 Continue" before sending a large body.
    let mut interim = [0u8; 25];
    tokio::time::timeout(DEADLINE, s.read_exact(&mut interim)).await.expect("no 100 Continue").unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    s.write_all(&payload).await.unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(DEADLINE, s.read_to_end(&mut rest)).await.expect("no final answer").unwrap();
    let res = RawResponse::parse(&rest);
    assert!(res.status_line.starts_with("HTTP/1.1 200"), "{}", res.status_line);
    assert_bytes_eq(&res.body, &payload, "echo after 100-continue");
    assert_bytes_eq(&up.one("/echo/expect").body, &payload, "upload after 100-continue at the upstream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_delimited_upstream_bodies_arrive_whole() {
    let addr =
        garbage_upstream(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nbody delimited by the end of the connection")
            .await;
    let vigil = Vigil::builder().upstream("v1", &format!("http://{addr}")).start().await;
    let r = get(&vigil.url("/anything")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "body delimited by the end of the connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_bytes_pass_unchanged() {
    // obs-text (a Latin-1 byte), odd spacing in values, an unusual but valid name.
    let addr = garbage_upstream(
        b"HTTP/1.1 299 Custom Reason\r\nConnection: close\r\nContent-Length: 2\r\nx-latin: caf\xe9\r\n\
          x-spaces: a  b\tc\r\nx-weird_name.v2: 1\r\n\r\nok",
    )
    .await;
    let vigil = Vigil::builder().upstream("v1", &format!("http://{addr}")).start().await;
    let raw = raw_exchange(vigil.proxy, b"GET /h HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n").await;
    let text = String::from_utf8_lossy(&raw);
    assert!(raw.starts_with(b"HTTP/1.1 299"), "{text}");
    assert!(raw.windows(14).any(|w| w == b"x-latin: caf\xe9\r"), "{text}");
    assert!(text.contains("x-spaces: a  b\tc\r\n"), "{text}");
    assert!(text.contains("x-weird_name.v2: 1\r\n"), "{text}");
    assert!(raw.ends_with(b"\r\n\r\nok"), "{text}");
}
