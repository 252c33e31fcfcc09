//! The shadow client: vigil's own hyper client, behind a tower stack per kind.
//!
//! ```text
//! Pause (live upstream under pressure ⇒ paused) ─► LoadShed ─► ConcurrencyLimit(max_concurrency)
//!   ─► Budget (rows from the kind's bucket, else refused) ─► Timeout(shadow.timeout) ─► Sender
//! ```
//!
//! Owns: sending one shadow request and reading its whole answer (bounded), and the
//! `vigil_shadow_requests_total{kind,version,result}` / `vigil_shadow_rows_total` counts. Every
//! request carries `x-vigil-shadow: <kind>`. Nothing here is on the data path: it runs on the
//! shadow threads' own runtime.

use super::budget::{Bucket, LiveRate, Pressure};
use super::Kind;
use crate::config::UpstreamProtocol;
use crate::proxy::headers::{X_REQUEST_ID, X_VIGIL_SHADOW};
use crate::routes::Version;
use crate::telemetry;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{header, HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tower::{Service, ServiceBuilder, ServiceExt};

/// Largest answer body a shadow request reads.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024 * 1024;

/// One shadow request: where, what, and how many rows it costs.
pub struct ShadowRequest {
    pub version: Arc<Version>,
    pub method: Method,
    /// Path and query, as a live request would have them.
    pub path: http::uri::PathAndQuery,
    pub content_type: Option<HeaderValue>,
    pub request_id: Option<HeaderValue>,
    pub body: Bytes,
    /// Rows in the body: what the budget charges.
    pub rows: usize,
}

/// The model's answer to a shadow request.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Bytes,
    /// Request sent to the answer's headers (like the live `upstream` timing).
    pub headers_after: Duration,
    /// Request sent to the answer's last byte.
    pub latency: Duration,
}

/// Why a shadow request was not answered. The first four were never sent.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ShadowError {
    #[error("paused: the live upstream is under pressure")]
    Paused,
    #[error("shed: {0} shadow requests of this kind already in flight")]
    Concurrency(usize),
    #[error("over budget: the kind's row budget is spent for now")]
    Budget,
    #[error("dropped: the shadow queue is full")]
    Dropped,
    #[error("timed out after {0:?} (shadow.timeout)")]
    Timeout(Duration),
    #[error("upstream failed: {0}")]
    Upstream(String),
}

impl ShadowError {
    /// The `result` label.
    pub fn result(&self) -> &'static str {
        match self {
            ShadowError::Paused => "paused",
            ShadowError::Concurrency(_) => "shed",
            ShadowError::Budget => "budget",
            ShadowError::Dropped => "dropped",
            ShadowError::Timeout(_) => "timeout",
            ShadowError::Upstream(_) => "error",
        }
    }

    /// Whether the request reached the upstream (and cost it something).
    pub fn was_sent(&self) -> bool {
        matches!(self, ShadowError::Timeout(_) | ShadowError::Upstream(_))
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The innermost service: sends with hyper and reads the whole answer.
#[derive(Clone)]
struct Sender {
    kind: Kind,
    http1: Client<HttpConnector, Full<Bytes>>,
    http2: Client<HttpConnector, Full<Bytes>>,
}

impl Service<ShadowRequest> for Sender {
    type Response = Reply;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<Reply, BoxError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, r: ShadowRequest) -> Self::Future {
        let h2 = r.version.protocol == UpstreamProtocol::Http2;
        let client = if h2 { self.http2.clone() } else { self.http1.clone() };
        let kind = self.kind;
        Box::pin(async move {
            let uri = r.version.url.uri_for(Some(&r.path)).map_err(|e| format!("upstream URI: {e}"))?;
            let mut req = Request::builder().method(r.method).uri(uri);
            let h = req.headers_mut().expect("builder is valid");
            h.insert(X_VIGIL_SHADOW, HeaderValue::from_static(kind.as_str()));
            h.insert(header::CONTENT_TYPE, r.content_type.unwrap_or(HeaderValue::from_static("application/json")));
            if let Some(id) = r.request_id {
                h.insert(X_REQUEST_ID, id);
            }
            let req = req.body(Full::new(r.body)).map_err(|e| format!("request: {e}"))?;
            let sent = Instant::now();
            let res = client.request(req).await.map_err(|e| format!("{e}"))?;
            let headers_after = sent.elapsed();
            let status = res.status();
            let body = Limited::new(res.into_body(), MAX_ANSWER_BYTES)
                .collect()
                .await
                .map_err(|e| format!("reading the answer: {e}"))?
                .to_bytes();
            Ok(Reply { status, body, headers_after, latency: sent.elapsed() })
        })
    }
}

/// A tower layer that refuses a request at once, never sending it, when `refuse` says why: the
/// pause (the live upstream is under pressure) and the row budget (the kind's bucket cannot pay
/// for the request's rows) are both gates.
#[derive(Clone)]
struct Gate<S> {
    inner: S,
    refuse: Refusal,
}

/// Why a gate refuses a request, if it does.
type Refusal = Arc<dyn Fn(&ShadowRequest) -> Option<ShadowError> + Send + Sync>;

impl<S> Service<ShadowRequest> for Gate<S>
where
    S: Service<ShadowRequest, Response = Reply, Error = BoxError>,
    S::Future: Send + 'static,
{
    type Response = Reply;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<Reply, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, r: ShadowRequest) -> Self::Future {
        match (self.refuse)(&r) {
            Some(why) => Box::pin(async move { Err(Box::new(why) as BoxError) }),
            None => Box::pin(self.inner.call(r)),
        }
    }
}

type Stack = tower::util::BoxCloneSyncService<ShadowRequest, Reply, BoxError>;

/// One kind's way to the model: its stack and its bucket.
#[derive(Clone)]
pub struct Lane {
    pub kind: Kind,
    pub bucket: Arc<Bucket>,
    pub live: Arc<LiveRate>,
    pub pressure: Arc<Pressure>,
    stack: Stack,
    timeout: Duration,
    max_concurrency: usize,
    tally: Arc<Tally>,
    durations: Arc<std::sync::Mutex<HashMap<Arc<str>, metrics::Histogram>>>,
}

/// Shadow request results by kind, version and result, and rows sent: what `GET /admin/shadow`
/// shows and what `vigil_shadow_requests_total` / `vigil_shadow_rows_total` export (published
/// once a second, so counting costs a short lock, not a metrics-registry lookup, per request).
#[derive(Default)]
pub struct Tally {
    counts: std::sync::Mutex<HashMap<TallyKey, (u64, u64)>>,
}

/// (kind, version, result).
type TallyKey = (Kind, Arc<str>, &'static str);

type Nested = BTreeMap<String, BTreeMap<String, BTreeMap<String, u64>>>;

impl Tally {
    /// Counts one request of `kind` to `version` that ended in `result`, having sent `rows`.
    pub fn add(&self, kind: Kind, version: &Arc<str>, result: &'static str, rows: u64) {
        let mut c = self.counts.lock().unwrap();
        let e = c.entry((kind, version.clone(), result)).or_default();
        e.0 += 1;
        e.1 += rows;
    }

    /// kind → version → result → count.
    pub fn view(&self) -> Nested {
        let mut out = Nested::new();
        for ((kind, version, result), (n, _)) in self.counts.lock().unwrap().iter() {
            out.entry(kind.as_str().to_owned())
                .or_default()
                .entry(version.to_string())
                .or_default()
                .insert((*result).to_owned(), *n);
        }
        out
    }

    /// Sets the counters to the tally's totals.
    pub fn publish(&self) {
        let mut rows: HashMap<(Kind, Arc<str>), u64> = HashMap::new();
        for ((kind, version, result), (n, r)) in self.counts.lock().unwrap().iter() {
            metrics::counter!(telemetry::SHADOW_REQUESTS, "kind" => kind.as_str(), "version" => version.to_string(), "result" => *result)
                .absolute(*n);
            *rows.entry((*kind, version.clone())).or_default() += r;
        }
        for ((kind, version), r) in rows {
            metrics::counter!(telemetry::SHADOW_ROWS, "kind" => kind.as_str(), "version" => version.to_string())
                .absolute(r);
        }
    }
}

/// The hyper clients all lanes share (their connection pools).
#[derive(Clone)]
pub struct Clients {
    http1: Client<HttpConnector, Full<Bytes>>,
    http2: Client<HttpConnector, Full<Bytes>>,
}

impl Clients {
    /// Must be called within the shadow runtime (the pools spawn connection tasks on it).
    pub fn new(connect_timeout: Duration) -> Clients {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(connect_timeout));
        let build = |h2: bool| {
            Client::builder(TokioExecutor::new())
                .pool_timer(TokioTimer::new())
                .timer(TokioTimer::new())
                .pool_idle_timeout(Duration::from_secs(30))
                .http2_only(h2)
                .build(connector.clone())
        };
        Clients { http1: build(false), http2: build(true) }
    }
}

impl Lane {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        kind: Kind,
        clients: &Clients,
        bucket: Arc<Bucket>,
        max_concurrency: usize,
        live: Arc<LiveRate>,
        pressure: Arc<Pressure>,
        timeout: Duration,
        tally: Arc<Tally>,
    ) -> Lane {
        let sender = Sender { kind, http1: clients.http1.clone(), http2: clients.http2.clone() };
        let stack = ServiceBuilder::new()
            .layer_fn(|inner| {
                let pressure = pressure.clone();
                Gate { inner, refuse: Arc::new(move |_| pressure.paused().map(|_| ShadowError::Paused)) }
            })
            .load_shed()
            .concurrency_limit(max_concurrency)
            .layer_fn(|inner| {
                let (bucket, live) = (bucket.clone(), live.clone());
                let refuse = move |r: &ShadowRequest| (!bucket.try_take(r.rows, &live)).then_some(ShadowError::Budget);
                Gate { inner, refuse: Arc::new(refuse) }
            })
            .timeout(timeout)
            .service(sender);
        let stack = tower::util::BoxCloneSyncService::new(stack.map_err(|e: BoxError| e));
        Lane { kind, bucket, live, pressure, stack, timeout, max_concurrency, tally, durations: Default::default() }
    }

    /// Sends one shadow request through the stack and counts the result.
    pub async fn send(&self, r: ShadowRequest) -> Result<Reply, ShadowError> {
        let version = r.version.name.clone();
        let rows = r.rows;
        let result = match self.stack.clone().oneshot(r).await {
            Ok(reply) => Ok(reply),
            Err(e) => Err(self.classify(e)),
        };
        let label = match &result {
            Ok(reply) if reply.status.is_success() => "ok",
            Ok(_) => "error",
            Err(e) => e.result(),
        };
        let sent = result.as_ref().map(|_| true).unwrap_or_else(|e| e.was_sent());
        self.tally.add(self.kind, &version, label, if sent { rows.max(1) as u64 } else { 0 });
        if let Ok(reply) = &result {
            let kind = self.kind;
            self.durations
                .lock()
                .unwrap()
                .entry(version.clone())
                .or_insert_with(|| {
                    metrics::histogram!(telemetry::SHADOW_DURATION, "kind" => kind.as_str(), "version" => version.to_string())
                })
                .record(reply.latency.as_secs_f64());
        }
        result
    }

    fn classify(&self, e: BoxError) -> ShadowError {
        if let Some(s) = e.downcast_ref::<ShadowError>() {
            return s.clone();
        }
        if e.is::<tower::load_shed::error::Overloaded>() {
            return ShadowError::Concurrency(self.max_concurrency);
        }
        if e.is::<tower::timeout::error::Elapsed>() {
            return ShadowError::Timeout(self.timeout);
        }
        ShadowError::Upstream(e.to_string())
    }
}
