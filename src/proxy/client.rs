//! The upstream clients: HTTP/1.1 connections driven inline by each exchange ([`super::h1`]),
//! and hyper-util's pooled client for HTTP/2 with prior knowledge (h2c), which multiplexes
//! exchanges over one connection and so needs a task of its own.

use super::body::RequestBody;
use super::h1::H1Pool;
use crate::config::ProxyConfig;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::sync::Arc;
use std::time::Duration;

pub type H2Client = Client<HttpConnector, RequestBody>;

#[derive(Clone)]
pub struct Clients {
    pub http1: Arc<H1Pool>,
    pub http2: H2Client,
}

impl Clients {
    pub fn new(cfg: &ProxyConfig) -> Clients {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(cfg.connect_timeout));
        connector.enforce_http(true);
        let http2 = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .pool_idle_timeout(cfg.upstream_idle_timeout)
            .pool_max_idle_per_host(cfg.max_idle_per_upstream)
            .http2_only(true)
            .build(connector);
        let http1 = H1Pool::new(cfg.max_idle_per_upstream, cfg.upstream_idle_timeout, cfg.connect_timeout);
        http1.spawn_sweeper(Duration::from_secs(5).min(cfg.upstream_idle_timeout));
        Clients { http1, http2 }
    }
}
