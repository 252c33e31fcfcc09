//! /readyz: 503 until the active version answers the probe path below 500 (or a live request is
//! answered), then 200. /healthz is 200 from the start.

mod support;

use support::*;

fn config(up: &Upstream, probe_path: &str) -> String {
    format!(
        "[readiness]\nprobe_path = \"{probe_path}\"\nprobe_interval = \"20ms\"\n\n\
         [[versions]]\nname = \"v1\"\nurl = \"{}\"\n",
        up.url()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_answered_below_500_makes_vigil_ready() {
    let up = Upstream::start("u1").await;
    // 404 is below 500: the model server is up, it just has no such route.
    let vigil = Vigil::builder().config(&config(&up, "/status/404")).start().await;
    let r = vigil.admin("GET", "/readyz", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["ready"], true);
    assert!(!up.requests_to("/status/404").is_empty(), "vigil never probed the configured path");
    assert!(up.requests_to("/status/404").iter().all(|r| r.method == "GET"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_answered_5xx_keeps_vigil_unready_until_live_traffic_is_answered() {
    let up = Upstream::start("u1").await;
    let vigil = Vigil::builder().config(&config(&up, "/status/503")).no_wait_ready().start().await;
    // Three probes answered 503: still not ready, and alive.
    eventually("three readiness probes", || async { up.requests_to("/status/503").len() >= 3 }).await;
    let r = vigil.admin("GET", "/readyz", None).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.json()["ready"], false);
    assert_eq!(vigil.admin("GET", "/healthz", None).await.status, 200);
    // A live answer of 5xx does not count, as for the probe.
    assert_eq!(get(&vigil.url("/status/503")).await.status, 503);
    assert_eq!(vigil.admin("GET", "/readyz", None).await.status, 503);
    // Documented (config/vigil.toml): a live request answered below 500 also makes vigil ready.
    assert_eq!(get(&vigil.url("/echo")).await.status, 200);
    assert_eq!(vigil.admin("GET", "/readyz", None).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_url_prefix_is_prepended_to_probe_and_traffic() {
    let up = Upstream::start("u1").await;
    let vigil = Vigil::builder().upstream("v1", &format!("{}/echo/prefix/", up.url())).start().await;
    let r = get(&vigil.url("/v2/models/m/infer?x=1")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-echo-uri"), Some("/echo/prefix/v2/models/m/infer?x=1"));
    assert!(!up.requests_to("/echo/prefix/v2/health/ready").is_empty(), "probe ignored the URL prefix");
}
