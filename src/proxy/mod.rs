//! The data path: accept client connections, pick a version, forward the request, stream the
//! answer back unchanged, and tap both bodies into a capture on the way.
//!
//! Owns: listeners and connections ([`server`]), the tower stack ([`stack`]), the upstream
//! clients, body tees, and the errors vigil answers itself. May read the routes table and offer
//! captures; may not await anything but the upstream.
//! Architecture invariant: the only shared state touched per request is the routes `ArcSwap`
//! (one `load`), the capture queue (`try_send`), and atomic counters.

pub mod admission;
pub mod body;
mod client;
pub mod error;
mod h1;
pub mod headers;
pub mod server;

pub use client::Clients;

use crate::capture::{Capture, CaptureSink, CapturedBody, Origin, Outcome, Timings};
use crate::config::{ProxyConfig, UpstreamProtocol};
use crate::routes::{RouteTable, Version};
use crate::telemetry::HotCounters;
use admission::{Admission, AdmissionLayer, Admitted, InFlightGuard};
use body::{RequestBody, RequestTap, ResponseBody, ResponseTap};
use error::{ErrorKind, ProxyError};
use futures_util::future::BoxFuture;
use headers::{X_REQUEST_ID, X_VIGIL_SHADOW};
use http::uri::PathAndQuery;
use http::{header, HeaderValue, Request, Response, Version as HttpVersion};
use hyper::body::Incoming;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

/// Whether vigil should receive traffic: an upstream has answered, and vigil is not draining.
#[derive(Debug, Default)]
pub struct Readiness {
    answered: AtomicBool,
    draining: AtomicBool,
}

impl Readiness {
    /// Records an upstream answer (live or probe). Only an answer below 500 counts: a model
    /// server that is still loading says 503.
    pub fn observe(&self, status: http::StatusCode) {
        if status.as_u16() < 500 && !self.answered.load(Ordering::Relaxed) {
            self.answered.store(true, Ordering::Relaxed);
            metrics::gauge!(crate::telemetry::READY).set(if self.is_ready() { 1.0 } else { 0.0 });
        }
    }
    pub fn mark_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
        metrics::gauge!(crate::telemetry::READY).set(0.0);
    }
    pub fn has_answered(&self) -> bool {
        self.answered.load(Ordering::Relaxed)
    }
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }
    pub fn is_ready(&self) -> bool {
        self.has_answered() && !self.is_draining()
    }
}

/// Client keys answered 429 (probing detection with `shadow.probing.block`). The data path pays
/// one relaxed atomic load per request while it is empty.
#[derive(Default)]
pub struct Blocklist {
    active: AtomicBool,
    keys: arc_swap::ArcSwap<std::collections::HashSet<String>>,
}

impl Blocklist {
    pub fn set(&self, keys: std::collections::HashSet<String>) {
        self.active.store(!keys.is_empty(), Ordering::Relaxed);
        self.keys.store(Arc::new(keys));
    }

    fn blocks(
        &self,
        headers: &http::HeaderMap,
        client_header: Option<&header::HeaderName>,
        peer: Option<std::net::IpAddr>,
    ) -> bool {
        if !self.active.load(Ordering::Relaxed) {
            return false;
        }
        let keys = self.keys.load();
        match client_header.and_then(|h| headers.get(h)).and_then(|v| v.to_str().ok()) {
            Some(k) => keys.contains(k),
            None => peer.is_some_and(|ip| keys.contains(&ip.to_string())),
        }
    }
}

struct Shared {
    routes: Arc<RouteTable>,
    blocklist: Arc<Blocklist>,
    /// `capture.client_header`: copied into each capture's [`Origin`].
    client_header: Option<header::HeaderName>,
    clients: Clients,
    sink: Option<CaptureSink>,
    response_timeout: Duration,
    body_idle_timeout: Duration,
    readiness: Arc<Readiness>,
}

/// The forwarding service: innermost layer of the stack. One clone per client connection,
/// which knows its peer's address.
#[derive(Clone)]
pub struct Proxy {
    shared: Arc<Shared>,
    peer: Option<std::net::IpAddr>,
}

impl Admission<Proxy> {
    /// The stack for one accepted connection.
    pub fn for_peer(&self, peer: std::net::SocketAddr) -> Stack {
        let mut s = self.clone();
        s.inner_mut().peer = Some(peer.ip());
        s
    }
}

/// The whole data-path stack as hyper serves it.
pub type Stack = Admission<Proxy>;

/// Builds the stack: admission (max in flight, load shedding) around the forwarding service.
pub fn stack(
    cfg: &ProxyConfig,
    client_header: &str,
    blocklist: Arc<Blocklist>,
    routes: Arc<RouteTable>,
    sink: Option<CaptureSink>,
    readiness: Arc<Readiness>,
    counters: Arc<HotCounters>,
) -> (Stack, Arc<admission::AdmissionState>) {
    let proxy = Proxy {
        shared: Arc::new(Shared {
            routes,
            blocklist,
            client_header: header::HeaderName::from_bytes(client_header.as_bytes()).ok(),
            clients: Clients::new(cfg),
            sink,
            response_timeout: cfg.response_timeout,
            body_idle_timeout: cfg.body_idle_timeout,
            readiness,
        }),
        peer: None,
    };
    let admission = AdmissionLayer::new(cfg.max_in_flight, counters);
    let state = admission.state();
    (tower::ServiceBuilder::new().layer(admission).service(proxy), state)
}

impl tower::Service<Admitted> for Proxy {
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response<ResponseBody>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, (req, guard): Admitted) -> Self::Future {
        let shared = self.shared.clone();
        let peer = self.peer;
        Box::pin(async move { Ok(forward(&shared, req, guard, peer).await) })
    }
}

async fn forward(
    shared: &Shared,
    req: Request<Incoming>,
    guard: InFlightGuard,
    peer: Option<std::net::IpAddr>,
) -> Response<ResponseBody> {
    let start = Instant::now();
    let started_at = SystemTime::now();
    let (mut parts, body) = req.into_parts();

    let request_id = match parts.headers.get(X_REQUEST_ID) {
        Some(id) => id.clone(),
        None => {
            let id = headers::new_request_id();
            parts.headers.insert(X_REQUEST_ID, id.clone());
            id
        }
    };
    if shared.blocklist.blocks(&parts.headers, shared.client_header.as_ref(), peer) {
        let err = ProxyError::new(
            ErrorKind::ClientBlocked,
            "this client is flagged for probing the model (shadow.probing.block); it may try again once it stops",
        );
        let res: Response<ResponseBody> = err.response(Some(&request_id), None);
        let (parts, body) = res.into_parts();
        return Response::from_parts(parts, body.guarded(Some(guard)));
    }
    // One load per request: the exchange stays on this version whatever the control plane does.
    let version: Arc<Version> = shared.routes.load().pick().clone();

    let capture = match &shared.sink {
        Some(sink) if !parts.headers.contains_key(X_VIGIL_SHADOW) => Some(sink),
        _ => None,
    };
    // A request with a body gets a tap even with capture off (cap 0): the response timeout must
    // know whether the client had finished sending. A bodiless request needs none.
    let request_tap = match capture {
        Some(s) => Some((Arc::new(RequestTap::default()), s.max_body_bytes())),
        None if !http_body::Body::is_end_stream(&body) => Some((Arc::new(RequestTap::default()), 0)),
        None => None,
    };
    let path = parts.uri.path_and_query().cloned().unwrap_or_else(|| PathAndQuery::from_static("/"));
    let method = parts.method.clone();
    let origin = match capture {
        Some(_) => Origin {
            content_type: parts.headers.get(header::CONTENT_TYPE).cloned(),
            client: shared.client_header.as_ref().and_then(|h| parts.headers.get(h)).cloned(),
            peer,
        },
        None => Origin::default(),
    };

    let downstream_h2 = parts.version == HttpVersion::HTTP_2;
    let upstream_h2 = match version.protocol {
        UpstreamProtocol::Auto => downstream_h2,
        UpstreamProtocol::Http1 => false,
        UpstreamProtocol::Http2 => true,
    };
    headers::strip_hop_by_hop(&mut parts.headers, downstream_h2 && upstream_h2);
    if upstream_h2 {
        // HTTP/2 names the host in :authority, which the client sets from the upstream URI; a
        // Host header that disagrees with it makes the request malformed (RFC 9113 §8.3.1).
        parts.headers.remove(header::HOST);
    } else if !parts.headers.contains_key(header::HOST) {
        // An HTTP/2 client names the host in :authority; an HTTP/1.1 upstream wants Host.
        // With neither (an HTTP/1.0 client), name the upstream.
        let authority = parts.uri.authority().unwrap_or(version.url.authority());
        if let Ok(v) = HeaderValue::from_str(authority.as_str()) {
            parts.headers.insert(header::HOST, v);
        }
    }
    let sent = send(shared, parts, body, &version, upstream_h2, request_tap.clone()).await;
    let (res, conn, upstream) = match sent {
        Ok(ok) => ok,
        Err((err, upstream)) => {
            return local_response(
                capture,
                &err,
                &request_id,
                &version,
                method,
                path,
                started_at,
                start,
                upstream,
                guard,
                origin,
            )
        }
    };
    shared.readiness.observe(res.status());

    let (mut parts, body) = res.into_parts();
    headers::strip_hop_by_hop(&mut parts.headers, upstream_h2 && downstream_h2);
    if !parts.headers.contains_key(X_REQUEST_ID) {
        parts.headers.insert(X_REQUEST_ID, request_id.clone());
    }
    // Hand back the client's HTTP version; hyper writes the response in the connection's protocol.
    parts.version = if downstream_h2 { HttpVersion::HTTP_2 } else { HttpVersion::HTTP_11 };
    let status = parts.status.as_u16();
    version.metrics.request(status);

    let tap = capture.map(|sink| ResponseTap {
        sink: sink.clone(),
        request: request_tap.map(|(t, _)| t),
        response: Default::default(),
        request_id: request_id.clone(),
        version: version.name.clone(),
        method,
        path,
        status,
        started_at,
        start,
        upstream,
        ttfb: start.elapsed(),
        origin,
        done: false,
    });
    let idle = body::Idle::new(shared.body_idle_timeout);
    Response::from_parts(parts, ResponseBody::upstream(body, conn, tap, Some(guard), idle, version.metrics.clone()))
}

/// Sends the request upstream and waits for the response headers, at most `response_timeout`.
/// On failure returns the error and the time spent waiting on the upstream. An HTTP/1.1
/// exchange also returns the connection, which its response body drives from then on.
async fn send(
    shared: &Shared,
    mut parts: http::request::Parts,
    body: Incoming,
    version: &Version,
    upstream_h2: bool,
    request_tap: Option<(Arc<RequestTap>, usize)>,
) -> Result<(Response<Incoming>, Option<h1::H1Conn>, Duration), (ProxyError, Duration)> {
    let bad_uri = |e: http::Error| {
        (ProxyError::new(ErrorKind::BadRequest, format!("cannot build the upstream URI: {e}")), Duration::ZERO)
    };
    parts.uri = if upstream_h2 {
        version.url.uri_for(parts.uri.path_and_query()).map_err(bad_uri)?
    } else {
        version.url.origin_form(parts.uri.path_and_query()).map_err(bad_uri)?
    };
    parts.version = if upstream_h2 { HttpVersion::HTTP_2 } else { HttpVersion::HTTP_11 };
    let uploading = request_tap.as_ref().map(|(t, _)| t.clone());
    let upstream_req = Request::from_parts(parts, RequestBody::new(body, request_tap));
    let sent = Instant::now();
    let exchange = async {
        if upstream_h2 {
            match shared.clients.http2.request(upstream_req).await {
                Ok(res) => Ok((res, None)),
                Err(e) => Err(ProxyError::from_client(&e)),
            }
        } else {
            match shared.clients.http1.send(version.url.authority(), upstream_req).await {
                Ok((res, conn)) => Ok((res, Some(conn))),
                Err(h1::SendError::Connect(e)) => Err(ProxyError::connect(e)),
                Err(h1::SendError::Http(e)) => Err(ProxyError::from_hyper(&e)),
            }
        }
    };
    match tokio::time::timeout(shared.response_timeout, exchange).await {
        Ok(Ok((res, conn))) => Ok((res, conn, sent.elapsed())),
        Ok(Err(e)) => Err((e, Duration::ZERO)),
        // The upstream cannot answer a request it has not fully received: the client is slow.
        Err(_) if uploading.is_some_and(|t| !t.ended()) => Err((
            ProxyError::new(
                ErrorKind::ClientTimeout,
                format!(
                    "the client had not finished sending its request body within {:?} (proxy.response_timeout)",
                    shared.response_timeout
                ),
            ),
            sent.elapsed(),
        )),
        Err(_) => Err((
            ProxyError::new(
                ErrorKind::UpstreamTimeout,
                format!(
                    "upstream sent no response headers within {:?} (proxy.response_timeout)",
                    shared.response_timeout
                ),
            ),
            sent.elapsed(),
        )),
    }
}

#[allow(clippy::too_many_arguments)]
fn local_response(
    capture: Option<&CaptureSink>,
    err: &ProxyError,
    request_id: &HeaderValue,
    version: &Version,
    method: http::Method,
    path: PathAndQuery,
    started_at: SystemTime,
    start: Instant,
    upstream: Duration,
    guard: InFlightGuard,
    origin: Origin,
) -> Response<ResponseBody> {
    let status = err.kind.status().as_u16();
    version.metrics.request(status);
    if err.kind.is_upstream() {
        version.metrics.upstream_error(err.kind.as_str());
    }
    tracing::debug!(version = %version.name, kind = err.kind.as_str(), error = %err.message, "answering with a local error");
    let res: Response<ResponseBody> = err.response(Some(request_id), Some(&version.name));
    if let Some(sink) = capture {
        let elapsed = start.elapsed();
        sink.offer(Capture {
            request_id: request_id.clone(),
            version: version.name.clone(),
            method,
            path,
            status,
            outcome: Outcome::VigilError,
            request: CapturedBody::default(),
            response: CapturedBody::default(),
            started_at,
            timings: Timings { total: elapsed, upstream, ttfb: elapsed },
            origin,
        });
    }
    let (parts, body) = res.into_parts();
    Response::from_parts(parts, body.guarded(Some(guard)))
}
