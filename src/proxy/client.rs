//! The pooled upstream clients: one for HTTP/1.1, one for HTTP/2 with prior knowledge (h2c).
//! Keep-alive connections are pooled per upstream authority and reused across requests.

use super::body::RequestBody;
use crate::config::ProxyConfig;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

pub type UpstreamClient = Client<HttpConnector, RequestBody>;

#[derive(Clone)]
pub struct Clients {
    pub http1: UpstreamClient,
    pub http2: UpstreamClient,
}

impl Clients {
    pub fn new(cfg: &ProxyConfig) -> Clients {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(cfg.connect_timeout));
        connector.enforce_http(true);
        let build = |http2: bool| {
            Client::builder(TokioExecutor::new())
                .pool_timer(TokioTimer::new())
                .timer(TokioTimer::new())
                .pool_idle_timeout(cfg.upstream_idle_timeout)
                .pool_max_idle_per_host(cfg.max_idle_per_upstream)
                .http2_only(http2)
                .build(connector.clone())
        };
        Clients { http1: build(false), http2: build(true) }
    }
}
