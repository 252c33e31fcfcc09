//! SIGTERM: readiness goes 503, the listener closes, in-flight requests finish, exit 0.

mod support;

use support::*;

async fn refused(addr: std::net::SocketAddr) -> bool {
    tokio::net::TcpStream::connect(addr).await.is_err()
}

async fn drains_in_flight(client: HttpClient, protocol: &str) {
    let up = Upstream::start("u1").await;
    let mut vigil = Vigil::builder().upstream("v1", &up.url()).start().await;
    let url = vigil.url("/hold");
    let in_flight = tokio::spawn(async move {
        try_send(&client, request("GET", &url).header("x-request-id", "draining-1").body(TestBody::empty()).unwrap())
            .await
    });
    up.wait_held(1).await;

    vigil.sigterm();
    // While the request is held, vigil is draining: not ready, and no longer accepting.
    let admin = vigil.admin_url("/readyz");
    eventually("/readyz to answer 503 draining", || {
        let admin = admin.clone();
        async move {
            let r = get(&admin).await;
            r.status == 503 && r.json()["reason"] == "draining"
        }
    })
    .await;
    let proxy = vigil.proxy;
    eventually("new proxy connections to be refused", || refused(proxy)).await;
    assert!(!in_flight.is_finished(), "{protocol}: the in-flight request ended before the upstream answered");

    up.release();
    let r = in_flight.await.unwrap().unwrap_or_else(|e| panic!("{protocol}: in-flight request failed: {e}"));
    assert_eq!(r.status, 200, "{protocol}");
    assert_eq!(r.text(), "released");
    assert_eq!(r.header("x-request-id"), Some("draining-1"));
    let status = vigil.wait_exit().await;
    assert_eq!(status.code(), Some(0), "{protocol}: stderr:\n{}", vigil.stderr());
    assert!(vigil.stderr().contains("drained"), "{}", vigil.stderr());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_an_in_flight_http1_request() {
    drains_in_flight(h1_client(), "HTTP/1.1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_an_in_flight_h2_request() {
    drains_in_flight(h2_client(), "h2c").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_when_idle_exits_0() {
    let up = Upstream::start("u1").await;
    let vigil = Vigil::builder().upstream("v1", &up.url()).start().await;
    // A keep-alive connection that is idle must not hold the exit back.
    let client = h1_client();
    assert_eq!(vigil.which(&client).await, "u1");
    let proxy = vigil.proxy;
    let status = vigil.stop().await;
    assert_eq!(status.code(), Some(0));
    assert!(refused(proxy).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_timeout_bounds_the_wait_and_still_exits_0() {
    let up = Upstream::start("u1").await;
    let config = format!("[proxy]\ndrain_timeout = \"300ms\"\n\n[[versions]]\nname = \"v1\"\nurl = \"{}\"\n", up.url());
    let mut vigil = Vigil::builder().config(&config).start().await;
    let url = vigil.url("/hold");
    let in_flight =
        tokio::spawn(
            async move { try_send(&h1_client(), request("GET", &url).body(TestBody::empty()).unwrap()).await },
        );
    up.wait_held(1).await;
    vigil.sigterm();
    // Never released: vigil gives up after drain_timeout and exits anyway.
    let status = vigil.wait_exit().await;
    assert_eq!(status.code(), Some(0), "stderr:\n{}", vigil.stderr());
    assert!(vigil.stderr().contains("drain timeout"), "{}", vigil.stderr());
    let r = in_flight.await.unwrap();
    assert!(r.is_err(), "the abandoned request got an answer: {r:?}");
}
