//! Body wrappers that tee chunks into the capture as they stream, without holding them back.
//!
//! [`RequestBody`] wraps the client's body on its way upstream; [`ResponseBody`] wraps the
//! upstream's body on its way to the client and, when it ends (or is dropped because the client
//! left), assembles the [`Capture`] and offers it to the queue. Chunks are passed on unchanged;
//! the tap copies a small first chunk (a slice would pin hyper's whole read buffer while the
//! capture is queued), keeps a reference-counted slice of a large one (no copy for large
//! single-chunk bodies) and copies later chunks only up to `capture.max_body_bytes`.
//!
//! [`ResponseBody`] also owns the upstream body's **idle timeout** (`proxy.body_idle_timeout`,
//! Envoy's `stream_idle_timeout`, nginx's `proxy_read_timeout`): once the headers have gone to
//! the client, an upstream that stops sending mid-body is cut off after that long without a
//! byte. The status is already on the wire, so the only honest signal left is an unfinished
//! message: the body ends in an error, hyper closes the client's connection (HTTP/1.1) or resets
//! the stream (HTTP/2), and the client sees a truncated response rather than a hang. The timer
//! costs nothing on a body that never makes vigil wait: it is armed on the first `Pending`.

use crate::capture::{Capture, CaptureSink, CapturedBody, Outcome, Timings};
use bytes::{Bytes, BytesMut};
use http::uri::PathAndQuery;
use http::{HeaderValue, Method};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};
use tokio::time::Sleep;

use super::admission::InFlightGuard;
use super::h1::H1Conn;
use crate::telemetry::VersionMetrics;

/// First chunks up to this size are copied into the capture rather than sliced (see `push`).
const COPY_UP_TO: usize = 16 * 1024;

/// Accumulates up to `cap` bytes of a body.
#[derive(Debug, Default)]
pub struct Collected {
    first: Option<Bytes>,
    rest: Option<BytesMut>,
    seen: u64,
}

impl Collected {
    pub fn push(&mut self, chunk: &Bytes, cap: usize) {
        let held = self.first.as_ref().map_or(0, Bytes::len) + self.rest.as_ref().map_or(0, BytesMut::len);
        self.seen += chunk.len() as u64;
        let room = cap.saturating_sub(held);
        if room == 0 || chunk.is_empty() {
            return;
        }
        let take = &chunk[..chunk.len().min(room)];
        match (&self.first, &mut self.rest) {
            // A small chunk is copied: a slice would share, and keep alive while the capture
            // waits in the analysis and mirror queues, the whole read buffer hyper cut it from.
            (None, _) if take.len() <= COPY_UP_TO => self.first = Some(Bytes::copy_from_slice(take)),
            (None, _) => self.first = Some(chunk.slice(..take.len())),
            (Some(first), None) => {
                let mut buf = BytesMut::with_capacity((first.len() + take.len()).min(cap));
                buf.extend_from_slice(first);
                buf.extend_from_slice(take);
                self.rest = Some(buf);
            }
            (Some(_), Some(buf)) => buf.extend_from_slice(take),
        }
    }

    pub fn take(&mut self) -> CapturedBody {
        let bytes = match (self.rest.take(), self.first.take()) {
            (Some(buf), _) => buf.freeze(),
            (None, Some(first)) => first,
            (None, None) => Bytes::new(),
        };
        CapturedBody { bytes, seen: self.seen }
    }
}

/// What the client's request body shares with the rest of the exchange: its captured bytes (for
/// the response side of the tap) and whether it has ended (so a response timeout can tell a
/// client still uploading from a model that does not answer).
#[derive(Debug, Default)]
pub(crate) struct RequestTap {
    collected: Mutex<Collected>,
    ended: AtomicBool,
}

impl RequestTap {
    /// Whether the client has sent its whole body.
    pub(crate) fn ended(&self) -> bool {
        self.ended.load(Ordering::Relaxed)
    }
}

/// The client's request body on its way upstream. `tap`: where to copy up to `cap` bytes (0
/// when capture is off) and to mark the end; None for a request without a body.
pub struct RequestBody {
    inner: Incoming,
    tap: Option<(Arc<RequestTap>, usize)>,
}

impl RequestBody {
    pub(crate) fn new(inner: Incoming, tap: Option<(Arc<RequestTap>, usize)>) -> RequestBody {
        if let Some((t, _)) = tap.as_ref().filter(|_| inner.is_end_stream()) {
            // An empty body may never be polled.
            t.ended.store(true, Ordering::Relaxed);
        }
        RequestBody { inner, tap }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Some((tap, cap)) = &this.tap {
            match &polled {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Some(data) = frame.data_ref().filter(|_| *cap > 0) {
                        tap.collected.lock().unwrap().push(data, *cap);
                    }
                    if this.inner.is_end_stream() {
                        tap.ended.store(true, Ordering::Relaxed);
                    }
                }
                Poll::Ready(None) => tap.ended.store(true, Ordering::Relaxed),
                _ => {}
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Everything known about an exchange when its response starts; completed into a [`Capture`].
pub(crate) struct ResponseTap {
    pub sink: CaptureSink,
    pub request: Option<Arc<RequestTap>>,
    pub response: Collected,
    pub request_id: HeaderValue,
    pub version: Arc<str>,
    pub method: Method,
    pub path: PathAndQuery,
    pub status: u16,
    pub started_at: SystemTime,
    pub start: Instant,
    pub upstream: std::time::Duration,
    pub ttfb: std::time::Duration,
    pub origin: crate::capture::Origin,
    pub done: bool,
}

impl ResponseTap {
    fn finish(&mut self, outcome: Outcome) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let request = match &self.request {
            Some(r) => r.collected.lock().unwrap().take(),
            None => CapturedBody::default(),
        };
        self.sink.offer(Capture {
            request_id: self.request_id.clone(),
            version: self.version.clone(),
            method: std::mem::take(&mut self.method),
            path: self.path.clone(),
            status: self.status,
            outcome,
            request,
            response: self.response.take(),
            started_at: self.started_at,
            timings: Timings { total: self.start.elapsed(), upstream: self.upstream, ttfb: self.ttfb },
            origin: std::mem::take(&mut self.origin),
        });
    }
}

impl Drop for ResponseTap {
    fn drop(&mut self) {
        // Dropped before the end was seen: the client went away (or hyper stopped polling).
        self.finish(Outcome::ClientAborted);
    }
}

/// Why a response body ended early. hyper turns it into a closed connection (HTTP/1.1) or a
/// reset stream (HTTP/2): the headers are already on the wire, so the client learns of it as
/// a truncated message.
#[derive(Debug)]
pub enum BodyError {
    /// The upstream's body failed (reset, closed early, bad chunking).
    Upstream(hyper::Error),
    /// The upstream sent nothing for `proxy.body_idle_timeout`.
    IdleTimeout(Duration),
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::Upstream(e) => write!(f, "upstream response body failed: {e}"),
            BodyError::IdleTimeout(d) => {
                write!(f, "upstream sent no body bytes for {d:?} (proxy.body_idle_timeout)")
            }
        }
    }
}

impl std::error::Error for BodyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BodyError::Upstream(e) => Some(e),
            BodyError::IdleTimeout(_) => None,
        }
    }
}

/// The idle timer of one upstream body: armed lazily on the first `Pending`, pushed back on the
/// next `Pending` after any progress, so a body that arrives in one piece never touches the
/// timer wheel. Idle time counts from when vigil first waited after the last frame.
pub(crate) struct Idle {
    /// `None`: off (`body_idle_timeout = "0s"`).
    timeout: Option<Duration>,
    sleep: Option<Pin<Box<Sleep>>>,
    progressed: bool,
}

impl Idle {
    pub(crate) fn new(timeout: Duration) -> Idle {
        Idle { timeout: (!timeout.is_zero()).then_some(timeout), sleep: None, progressed: false }
    }

    fn progress(&mut self) {
        self.progressed = true;
    }

    /// Called when the body is `Pending`: whether the timeout has passed.
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(timeout) = self.timeout else { return false };
        match &mut self.sleep {
            None => self.sleep = Some(Box::pin(tokio::time::sleep(timeout))),
            Some(s) if self.progressed => s.as_mut().reset(tokio::time::Instant::now() + timeout),
            Some(_) => {}
        }
        self.progressed = false;
        self.sleep.as_mut().is_some_and(|s| std::future::Future::poll(s.as_mut(), cx).is_ready())
    }
}

/// The response body vigil hands to hyper: the upstream's (tapped) or vigil's own.
pub struct ResponseBody {
    kind: Kind,
    _guard: Option<InFlightGuard>,
}

#[allow(clippy::large_enum_variant)] // inline on purpose: one allocation fewer per request
enum Kind {
    /// `conn`: the HTTP/1.1 connection this body arrives on, driven from `poll_frame` and
    /// returned to its pool when the body ends. None for HTTP/2 (its own task drives it).
    Upstream {
        inner: Incoming,
        conn: Option<H1Conn>,
        tap: Option<ResponseTap>,
        idle: Idle,
        /// Counts a body that fails or stalls in `vigil_upstream_errors_total`.
        metrics: Arc<VersionMetrics>,
    },
    Local(Option<Bytes>),
}

impl ResponseBody {
    pub(crate) fn upstream(
        inner: Incoming,
        mut conn: Option<H1Conn>,
        mut tap: Option<ResponseTap>,
        guard: Option<InFlightGuard>,
        idle: Idle,
        metrics: Arc<VersionMetrics>,
    ) -> ResponseBody {
        if inner.is_end_stream() {
            if let Some(t) = tap.as_mut() {
                t.finish(Outcome::Complete);
            }
            // hyper may never poll an empty body: hand the connection back now.
            if let Some(c) = conn.take() {
                c.release(&mut Context::from_waker(std::task::Waker::noop()));
            }
        }
        ResponseBody { kind: Kind::Upstream { inner, conn, tap, idle, metrics }, _guard: guard }
    }

    pub fn local(bytes: Bytes) -> ResponseBody {
        ResponseBody { kind: Kind::Local(Some(bytes)), _guard: None }
    }

    pub(crate) fn guarded(mut self, guard: Option<InFlightGuard>) -> ResponseBody {
        self._guard = guard;
        self
    }
}

impl From<Bytes> for ResponseBody {
    fn from(b: Bytes) -> Self {
        ResponseBody::local(b)
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match &mut self.kind {
            Kind::Local(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Kind::Upstream { inner, conn, tap, idle, metrics } => {
                let polled = match conn.as_mut() {
                    Some(c) => c.poll_body(cx, |cx| Pin::new(&mut *inner).poll_frame(cx)),
                    None => Pin::new(&mut *inner).poll_frame(cx),
                };
                if polled.is_pending() {
                    if !idle.expired(cx) {
                        return Poll::Pending;
                    }
                    let after = idle.timeout.unwrap_or_default();
                    metrics.upstream_error(crate::telemetry::BODY_TIMEOUT);
                    if let Some(t) = tap.as_mut() {
                        t.finish(Outcome::UpstreamBodyError);
                    }
                    tracing::debug!(version = %metrics.name(), "upstream body idle for {after:?}: cutting the response short");
                    // Drops the upstream connection mid-message (never back to the pool), the
                    // tap (already finished) and the body; a later poll sees an empty body.
                    self.kind = Kind::Local(None);
                    return Poll::Ready(Some(Err(BodyError::IdleTimeout(after))));
                }
                idle.progress();
                let ended = match &polled {
                    Poll::Ready(Some(Ok(_))) => inner.is_end_stream(),
                    Poll::Ready(None) => true,
                    _ => false,
                };
                if ended {
                    if let Some(c) = conn.take() {
                        c.release(cx);
                    }
                }
                if let Poll::Ready(Some(Err(_))) = &polled {
                    metrics.upstream_error(crate::telemetry::BODY_ERROR);
                }
                if let Some(t) = tap.as_mut() {
                    match &polled {
                        Poll::Ready(Some(Ok(frame))) => {
                            if let Some(data) = frame.data_ref() {
                                let cap = t.sink.max_body_bytes();
                                t.response.push(data, cap);
                            }
                        }
                        Poll::Ready(Some(Err(_))) => t.finish(Outcome::UpstreamBodyError),
                        _ => {}
                    }
                    if ended {
                        t.finish(Outcome::Complete);
                    }
                }
                polled.map(|f| f.map(|r| r.map_err(BodyError::Upstream)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Local(b) => b.is_none(),
            Kind::Upstream { inner, .. } => inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Local(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Kind::Local(None) => SizeHint::with_exact(0),
            Kind::Upstream { inner, .. } => inner.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Collected;
    use bytes::Bytes;

    #[test]
    fn a_small_first_chunk_is_copied_out_of_the_read_buffer() {
        // hyper cuts a body chunk from its connection's read buffer (8 KiB and up): a slice of
        // a 100-byte body would keep all of it alive while the capture waits in the queues.
        let read_buffer = Bytes::from(vec![7u8; 8192]);
        let chunk = read_buffer.slice(..100);
        let mut c = Collected::default();
        c.push(&chunk, 1024);
        let body = c.take();
        assert_eq!(body.bytes, chunk);
        assert_ne!(body.bytes.as_ptr(), chunk.as_ptr(), "copied, not a slice of the read buffer");
        assert!(!body.truncated());
    }

    #[test]
    fn a_large_single_chunk_is_kept_without_copy() {
        let chunk = Bytes::from(vec![7u8; super::COPY_UP_TO + 1]);
        let mut c = Collected::default();
        c.push(&chunk, 1 << 20);
        let body = c.take();
        assert_eq!(body.bytes, chunk);
        assert_eq!(body.bytes.as_ptr(), chunk.as_ptr());
    }

    #[test]
    fn chunks_are_joined_and_capped() {
        let mut c = Collected::default();
        for part in [&b"abcd"[..], b"efgh", b"ijkl"] {
            c.push(&Bytes::copy_from_slice(part), 6);
        }
        let body = c.take();
        assert_eq!(&body.bytes[..], b"abcdef");
        assert_eq!(body.seen, 12);
        assert!(body.truncated());
    }

    #[test]
    fn zero_cap_keeps_nothing_but_counts() {
        let mut c = Collected::default();
        c.push(&Bytes::from_static(b"abc"), 0);
        let body = c.take();
        assert!(body.bytes.is_empty());
        assert_eq!(body.seen, 3);
    }
}
