//! Capture: what the tap saw of one exchange, the bounded queue that carries it off the hot path,
//! and the consumer thread that turns captures into latency histograms and drift records.
//!
//! Owns: [`Capture`], [`CaptureSink`] (the only thing the data path touches: `try_send`), the
//! analysis thread and the HDR latency book. May not touch: routes, sockets.
//! Architecture invariant: the data path never waits on this module. A full queue drops the
//! capture and counts it; nothing here can slow a client.

mod latency;

pub use latency::{histogram as latency_histogram, LatencyBook, LatencySummary, Percentiles};

use crate::monitor::{self, Monitor};
use crate::telemetry;
use bytes::Bytes;
use http::uri::PathAndQuery;
use http::{HeaderValue, Method};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::mpsc;

/// How an exchange ended, from the client's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The whole response reached hyper's write buffer.
    Complete,
    /// The client went away before the response ended.
    ClientAborted,
    /// The upstream failed while streaming the response body.
    UpstreamBodyError,
    /// vigil answered itself (upstream unreachable, timeout, ...); see the status.
    VigilError,
}

/// Bytes of one body as the tap saw them, up to the capture cap.
#[derive(Debug, Clone, Default)]
pub struct CapturedBody {
    pub bytes: Bytes,
    /// Bytes that passed, including those beyond the cap.
    pub seen: u64,
}

impl CapturedBody {
    pub fn truncated(&self) -> bool {
        self.seen > self.bytes.len() as u64
    }
}

/// One live exchange, as analysis receives it.
#[derive(Debug, Clone)]
pub struct Capture {
    /// The `x-request-id` the upstream and the client saw (the join key for feedback).
    pub request_id: HeaderValue,
    pub version: Arc<str>,
    pub method: Method,
    /// Path and query as the client sent them.
    pub path: PathAndQuery,
    pub status: u16,
    pub outcome: Outcome,
    pub request: CapturedBody,
    pub response: CapturedBody,
    /// Wall-clock time the request headers arrived.
    pub started_at: SystemTime,
    pub timings: Timings,
    /// Who sent it and in what format: what shadow traffic needs to replay and attribute it.
    pub origin: Origin,
}

/// Where a live request came from, as far as shadow traffic needs to know.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    /// The request's `content-type`, sent again with mirrored copies.
    pub content_type: Option<HeaderValue>,
    /// The value of `capture.client_header` (default `x-client-id`), the key probing detection
    /// and per-client limits use; without it, the peer's IP address is the key.
    pub client: Option<HeaderValue>,
    pub peer: Option<std::net::IpAddr>,
}

impl Origin {
    /// The client key: the client header's value, else the peer address.
    pub fn client_key(&self) -> Option<String> {
        match (&self.client, self.peer) {
            (Some(h), _) => h.to_str().ok().map(str::to_owned),
            (None, Some(ip)) => Some(ip.to_string()),
            (None, None) => None,
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Timings {
    /// Request headers received to last response byte handed to the client connection.
    pub total: Duration,
    /// Request sent upstream to upstream response headers received.
    pub upstream: Duration,
    /// Request headers received to the first response byte (headers) handed to the client connection.
    pub ttfb: Duration,
}

/// The sending side of the capture queue. Cheap to share; never blocks.
#[derive(Clone)]
pub struct CaptureSink {
    tx: mpsc::Sender<Capture>,
    counters: Arc<telemetry::HotCounters>,
    max_body_bytes: usize,
}

impl CaptureSink {
    pub fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }

    /// Hands a capture to analysis, or drops and counts it when the queue is full.
    pub fn offer(&self, capture: Capture) {
        match self.tx.try_send(capture) {
            Ok(()) => self.counters.captures_total.increment(1),
            Err(_) => self.counters.captures_dropped.increment(1),
        }
    }
}

/// Creates the queue: the sink for the data path, the receiver for [`Consumer::spawn`].
pub fn channel(
    capacity: usize,
    max_body_bytes: usize,
    counters: Arc<telemetry::HotCounters>,
) -> (CaptureSink, mpsc::Receiver<Capture>) {
    let (tx, rx) = mpsc::channel(capacity);
    (CaptureSink { tx, counters, max_body_bytes }, rx)
}

/// The analysis consumer: one OS thread of its own, so that decoding and drift tests never take
/// time from the data path's runtime threads. It looks at the queue every [`monitor::TICK`] when
/// idle (no wake-up per capture: the data path's `try_send` does not signal anyone), takes what is
/// there, and evaluates the drift monitors when due.
///
/// The thread runs at a lower CPU priority ([`crate::background::NICE`]): when the data path and analysis
/// want the same core, the data path wins, and analysis falls behind into the bounded queue (whose
/// overflow is dropped and counted) rather than into the client's latency.
pub struct Consumer {
    thread: std::thread::JoinHandle<()>,
    stop: Arc<AtomicBool>,
}

impl Consumer {
    pub fn spawn(
        rx: mpsc::Receiver<Capture>,
        book: Arc<LatencyBook>,
        monitor: Option<Monitor>,
        shadow: Option<crate::shadow::ShadowTap>,
    ) -> Consumer {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = crate::background::spawn("vigil-analysis", move || consume(rx, book, monitor, shadow, flag))
            .expect("can spawn the analysis thread");
        Consumer { thread, stop }
    }

    /// Closes the queue, lets the thread finish what is in it (and evaluate once more), and waits.
    /// Blocking: call it off the runtime (`spawn_blocking`).
    pub fn stop(self) {
        self.stop.store(true, Ordering::Release);
        self.thread.thread().unpark();
        let _ = self.thread.join();
    }
}

fn consume(
    mut rx: mpsc::Receiver<Capture>,
    book: Arc<LatencyBook>,
    mut monitor: Option<Monitor>,
    shadow: Option<crate::shadow::ShadowTap>,
    stop: Arc<AtomicBool>,
) {
    let truncated = metrics::counter!(telemetry::CAPTURES_TRUNCATED);
    loop {
        let stopping = stop.load(Ordering::Acquire);
        if stopping {
            rx.close();
        }
        let mut taken = 0usize;
        let disconnected = loop {
            match rx.try_recv() {
                Ok(capture) => {
                    if capture.request.truncated() || capture.response.truncated() {
                        truncated.increment(1);
                    }
                    book.record(&capture);
                    let mut records = None;
                    if let Some(m) = monitor.as_mut() {
                        records = m.process(&capture);
                        if taken % 256 == 255 {
                            m.tick(Instant::now());
                        }
                    }
                    if let Some(s) = &shadow {
                        s.offer(&capture, records.as_ref());
                    }
                    taken += 1;
                }
                Err(mpsc::error::TryRecvError::Empty) => break false,
                Err(mpsc::error::TryRecvError::Disconnected) => break true,
            }
        };
        if let Some(m) = monitor.as_mut() {
            m.tick(Instant::now());
        }
        if stopping || disconnected {
            if let Some(m) = monitor.as_mut() {
                m.evaluate();
            }
            return;
        }
        if taken == 0 {
            std::thread::park_timeout(monitor::TICK);
        }
    }
}
