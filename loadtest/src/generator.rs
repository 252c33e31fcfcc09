//! The run loop: [`Config`] in, [`Report`] out.
//!
//! # Architecture: one pacer thread, `connections` worker tasks
//!
//! * The **pacer** (an OS thread, see [`schedule`](crate::schedule)) adds one permit to a
//!   semaphore at each request's intended time.
//! * **`connections` worker tasks** loop: take a permit, claim the next request index
//!   `i` from an atomic counter, build the body, send it, read the whole response,
//!   record `completion - (t0 + i / rate)`.
//!
//! Why a fixed set of workers rather than a task per request behind a semaphore: the
//! workers *are* the concurrency limit (at most `connections` requests in flight, which
//! is also the connection-pool size for HTTP/1), so nothing is spawned per request and
//! there is no second queue; a backlog is just unclaimed permits. Indices are claimed
//! in order, so when the server stalls, the oldest late request is the next one sent and
//! its whole wait is in its latency: this is the wrk2 model. The per-request cost is one
//! semaphore acquire, one atomic add, a short uncontended mutex for the histograms, and
//! the HTTP exchange itself, which keeps the generator well above 5,000 req/s on one
//! core (see the README for measurements).
//!
//! # Ending a run
//!
//! The schedule ends when `duration` has elapsed or `stop` resolves (both are treated
//! the same). Workers then *drain*: requests that were due but still waiting for a free
//! connection are sent (they are late, and their latency says so) until the drain
//! deadline, `end + timeout`; every request's own deadline is also capped at the drain
//! deadline. Whatever is still queued after that is reported as `unsent`.

use crate::payload::{self, Protocol};
use crate::reference::{Reference, RowTransform, Sampler};
use crate::report::{new_histogram, ErrorCounts, Report, MAX_TRACKABLE_US};
use crate::schedule::{pace, Schedule};
use bytes::Bytes;
use hdrhistogram::Histogram;
use http::{header, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

/// Everything a run needs. `Config::default()` targets `http://127.0.0.1:8080` with
/// V2, model `demo`, 100 req/s until stopped, batch 1, 32 connections, 10 s timeout,
/// seed 0 and the demo reference.
#[derive(Debug, Clone)]
pub struct Config {
    /// Base URL, `http://host:port` (an optional path prefix is kept, e.g.
    /// `http://host/proxy` posts to `/proxy/v2/models/...`). HTTPS is not supported.
    pub target: Uri,
    pub protocol: Protocol,
    /// Model name in the request path.
    pub model: String,
    /// Requests per second (finite, > 0).
    pub rate: f64,
    /// Length of the schedule; `None` runs until `stop` resolves.
    pub duration: Option<Duration>,
    /// Rows per request.
    pub batch: usize,
    /// Maximum requests in flight, which is also the HTTP/1 connection-pool size.
    pub connections: usize,
    /// Per-request timeout, from the moment the request is sent to the end of the
    /// response body (the connect time included).
    pub timeout: Duration,
    /// Seeds the row sampling; request `n`'s rows depend only on `(seed, n)`.
    pub seed: u64,
    /// `x-request-id` is `<prefix><n>`; `None` means `lt-<seed>-`.
    pub request_id_prefix: Option<String>,
    /// Where rows come from.
    pub reference: Arc<Reference>,
    /// Optional per-row hook (drift scenarios).
    pub transform: Option<Arc<dyn RowTransform>>,
    /// Speak HTTP/2 with prior knowledge (h2c) instead of HTTP/1.1.
    pub http2: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            target: Uri::from_static("http://127.0.0.1:8080"),
            protocol: Protocol::V2,
            model: "demo".into(),
            rate: 100.0,
            duration: None,
            batch: 1,
            connections: 32,
            timeout: Duration::from_secs(10),
            seed: 0,
            request_id_prefix: None,
            reference: Arc::new(Reference::default()),
            transform: None,
            http2: false,
        }
    }
}

/// A [`Config`] that [`run`] cannot use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Check everything [`run`] would otherwise panic on.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError(m));
        if self.target.scheme_str() != Some("http") || self.target.authority().is_none() {
            return bad(format!("target `{}` must be an http://host[:port] URL (https is not supported)", self.target));
        }
        if !(self.rate.is_finite() && self.rate > 0.0) {
            return bad(format!("rate must be a positive number, got {}", self.rate));
        }
        if self.batch == 0 {
            return bad("batch must be at least 1".into());
        }
        if self.connections == 0 {
            return bad("connections must be at least 1".into());
        }
        if self.timeout.is_zero() {
            return bad("timeout must be positive".into());
        }
        if self.reference.width() == 0 {
            return bad("the reference has no features".into());
        }
        if self.model.is_empty() || self.model.contains(['/', '?', '#', ' ']) {
            return bad(format!("invalid model name `{}`", self.model));
        }
        let prefix = self.id_prefix();
        if http::HeaderValue::from_str(&prefix).is_err() {
            return bad(format!("request id prefix `{prefix}` is not a valid header value"));
        }
        self.url().map(|_| ())
    }

    /// The full request URL.
    pub fn url(&self) -> Result<Uri, ConfigError> {
        let base = self.target.to_string();
        let url = format!("{}{}", base.trim_end_matches('/'), self.protocol.path(&self.model));
        url.parse().map_err(|e| ConfigError(format!("bad request URL `{url}`: {e}")))
    }

    /// The `x-request-id` prefix actually used.
    pub fn id_prefix(&self) -> String {
        self.request_id_prefix.clone().unwrap_or_else(|| format!("lt-{}-", self.seed))
    }
}

/// Counters and histograms shared by the workers (one short lock per request).
struct Stats {
    ok: u64,
    non_2xx: BTreeMap<u16, u64>,
    errors: ErrorCounts,
    latency: Histogram<u64>,
    service: Histogram<u64>,
    last_done: Instant,
}

enum Outcome {
    Status(u16),
    Connect,
    Timeout,
    Other,
}

struct Shared {
    client: Client<HttpConnector, Full<Bytes>>,
    url: Uri,
    protocol: Protocol,
    sampler: Sampler,
    width: usize,
    batch: usize,
    seed: u64,
    id_prefix: String,
    timeout: Duration,
    schedule: Schedule,
    t0: Instant,
    /// One permit per request that is due and not yet claimed.
    due: Arc<Semaphore>,
    /// Next request index to claim (= requests sent so far).
    next: AtomicU64,
    stats: Mutex<Stats>,
}

/// Run the generator until `duration` elapses or `stop` resolves, then drain and
/// return the report. Must be called inside a tokio runtime (any flavour); spawns
/// `connections` tasks and one OS thread (the pacer). Dropping the returned future
/// aborts the workers and stops the pacer.
///
/// # Panics
/// If the config is invalid; call [`Config::validate`] first to get an error instead.
pub async fn run(cfg: Config, stop: impl Future<Output = ()>) -> Report {
    if let Err(e) = cfg.validate() {
        panic!("invalid loadtest config: {e}");
    }
    let url = cfg.url().expect("validated");
    let schedule = Schedule::new(cfg.rate, cfg.duration);

    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(cfg.timeout));
    let client = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(cfg.connections)
        .pool_idle_timeout(Duration::from_secs(90))
        .http2_only(cfg.http2)
        .build(connector);

    let t0 = Instant::now();
    let shared = Arc::new(Shared {
        client,
        url: url.clone(),
        protocol: cfg.protocol,
        sampler: Sampler::new(cfg.reference.clone(), cfg.transform.clone()),
        width: cfg.reference.width(),
        batch: cfg.batch,
        seed: cfg.seed,
        id_prefix: cfg.id_prefix(),
        timeout: cfg.timeout,
        schedule,
        t0,
        due: Arc::new(Semaphore::new(0)),
        next: AtomicU64::new(0),
        stats: Mutex::new(Stats {
            ok: 0,
            non_2xx: BTreeMap::new(),
            errors: ErrorCounts::default(),
            latency: new_histogram(),
            service: new_histogram(),
            last_done: t0,
        }),
    });

    // `ended` becomes Some(end of schedule) when the pacer finishes.
    let (ended_tx, ended_rx) = watch::channel(None::<Instant>);
    let mut workers = JoinSet::new();
    for _ in 0..cfg.connections {
        workers.spawn(worker(shared.clone(), ended_rx.clone()));
    }

    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let (pacer_tx, mut pacer_rx) = tokio::sync::oneshot::channel();
    let due = shared.due.clone();
    std::thread::Builder::new()
        .name("loadtest-pacer".into())
        .spawn(move || {
            let outcome = pace(schedule, t0, &due, &stop_rx);
            let _ = ended_tx.send(Some(outcome.ended));
            let _ = pacer_tx.send(outcome);
        })
        .expect("spawn pacer thread");

    tokio::pin!(stop);
    let outcome = tokio::select! {
        o = &mut pacer_rx => o,
        () = &mut stop => {
            let _ = stop_tx.send(());
            pacer_rx.await
        }
    }
    .expect("pacer thread reports before exiting");
    drop(stop_tx);

    // Workers stop by themselves at the drain deadline; the extra second is only a
    // safety net against a request that ignores its timeout.
    let hard = outcome.ended + cfg.timeout + Duration::from_secs(1);
    let joined = tokio::time::timeout_at(hard.into(), async { while workers.join_next().await.is_some() {} }).await;
    if joined.is_err() {
        workers.shutdown().await;
    }

    let sent = shared.next.load(Ordering::SeqCst);
    let stats = shared.stats.lock().expect("stats lock");
    let mut errors = stats.errors;
    let answered = stats.ok + stats.non_2xx.values().sum::<u64>() + errors.total();
    // Requests cut off by the safety net never recorded an outcome: they timed out.
    errors.timeout += sent.saturating_sub(answered);
    let duration = stats.last_done.max(outcome.ended).duration_since(t0);
    Report {
        url: url.to_string(),
        protocol: cfg.protocol,
        batch: cfg.batch,
        connections: cfg.connections,
        seed: cfg.seed,
        target_rate: cfg.rate,
        scheduled: outcome.released,
        sent,
        unsent: outcome.released.saturating_sub(sent),
        ok: stats.ok,
        non_2xx: stats.non_2xx.clone(),
        errors,
        duration,
        achieved_rate: if duration.is_zero() { 0.0 } else { sent as f64 / duration.as_secs_f64() },
        latency: stats.latency.clone(),
        service: stats.service.clone(),
    }
}

async fn worker(shared: Arc<Shared>, mut ended: watch::Receiver<Option<Instant>>) {
    let mut rows = Vec::with_capacity(shared.batch * shared.width);
    loop {
        let permit = tokio::select! {
            biased;
            p = shared.due.acquire() => p.expect("semaphore is never closed"),
            _ = ended.wait_for(Option::is_some) => match shared.due.try_acquire() {
                Ok(p) => p,
                Err(_) => return, // schedule over and nothing left to send
            },
        };
        let drain_deadline = (*ended.borrow()).map(|end| end + shared.timeout);
        if drain_deadline.is_some_and(|d| Instant::now() >= d) {
            return; // dropping the permit leaves the request counted as unsent
        }
        permit.forget();
        let index = shared.next.fetch_add(1, Ordering::Relaxed);
        send_one(&shared, index, drain_deadline, &mut rows).await;
    }
}

async fn send_one(shared: &Shared, index: u64, cap: Option<Instant>, rows: &mut Vec<f64>) {
    let offset = shared.schedule.intended(index);
    let intended = shared.t0 + offset;

    let id = format!("{}{index}", shared.id_prefix);
    shared.sampler.fill_batch(shared.seed, index, offset, shared.batch, rows);
    let body = payload::build_body(shared.protocol, &id, rows, shared.width);
    let request = Request::post(shared.url.clone())
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-request-id", id)
        .body(Full::new(Bytes::from(body)))
        .expect("request parts were validated");

    let sent_at = Instant::now();
    let deadline = match cap {
        Some(cap) => (sent_at + shared.timeout).min(cap),
        None => sent_at + shared.timeout,
    };
    let exchange = async {
        let response = shared.client.request(request).await.map_err(|e| {
            if e.is_connect() {
                Outcome::Connect
            } else {
                Outcome::Other
            }
        })?;
        let status = response.status().as_u16();
        response.into_body().collect().await.map_err(|_| Outcome::Other)?;
        Ok::<_, Outcome>(status)
    };
    let outcome = match tokio::time::timeout_at(deadline.into(), exchange).await {
        Ok(Ok(status)) => Outcome::Status(status),
        Ok(Err(e)) => e,
        Err(_) => Outcome::Timeout,
    };
    let done = Instant::now();

    let us = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(MAX_TRACKABLE_US);
    let mut s = shared.stats.lock().expect("stats lock");
    s.last_done = s.last_done.max(done);
    match outcome {
        Outcome::Status(code) => {
            if (200..300).contains(&code) {
                s.ok += 1;
            } else {
                *s.non_2xx.entry(code).or_default() += 1;
            }
            s.latency.saturating_record(us(done.saturating_duration_since(intended)));
            s.service.saturating_record(us(done - sent_at));
        }
        Outcome::Connect => s.errors.connect += 1,
        Outcome::Timeout => s.errors.timeout += 1,
        Outcome::Other => s.errors.other += 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_validation() {
        let mut c = Config::default();
        assert_eq!(c.url().unwrap().to_string(), "http://127.0.0.1:8080/v2/models/demo/infer");
        c.target = Uri::from_static("http://h:1/prefix/");
        c.protocol = Protocol::V1;
        c.model = "m".into();
        assert_eq!(c.url().unwrap().to_string(), "http://h:1/prefix/v1/models/m:predict");
        assert!(c.validate().is_ok());
        assert_eq!(c.id_prefix(), "lt-0-");

        let bad = |f: fn(&mut Config)| {
            let mut c = Config::default();
            f(&mut c);
            c.validate().unwrap_err().0
        };
        assert!(bad(|c| c.target = Uri::from_static("https://h")).contains("https"));
        assert!(bad(|c| c.target = Uri::from_static("/relative")).contains("http://"));
        assert!(bad(|c| c.rate = 0.0).contains("rate"));
        assert!(bad(|c| c.rate = f64::NAN).contains("rate"));
        assert!(bad(|c| c.batch = 0).contains("batch"));
        assert!(bad(|c| c.connections = 0).contains("connections"));
        assert!(bad(|c| c.model = "a/b".into()).contains("model"));
        assert!(bad(|c| c.request_id_prefix = Some("a\nb".into())).contains("prefix"));
        assert!(bad(|c| c.reference = Arc::new(Reference::Synthetic(vec![]))).contains("features"));
    }
}
