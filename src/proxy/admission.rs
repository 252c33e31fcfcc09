//! Admission: a tower layer that bounds requests in flight and sheds the excess with 503
//! `overloaded` at once, rather than queueing (a queue in a sidecar only turns overload into
//! latency for everyone). A request stays "in flight" until its response body has ended.

use super::body::ResponseBody;
use super::error::{ErrorKind, ProxyError};
use super::headers::X_REQUEST_ID;
use crate::telemetry::HotCounters;
use futures_util::future::{Either, Ready};
use http::{Request, Response};
use hyper::body::Incoming;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

pub struct AdmissionState {
    in_flight: AtomicUsize,
    max: usize,
    counters: Arc<HotCounters>,
}

impl AdmissionState {
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }
}

/// Releases one in-flight slot when dropped (with the response body).
pub struct InFlightGuard(Arc<AdmissionState>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.counters.in_flight.decrement(1.0);
    }
}

#[derive(Clone)]
pub struct AdmissionLayer {
    state: Arc<AdmissionState>,
}

impl AdmissionLayer {
    pub fn new(max: usize, counters: Arc<HotCounters>) -> AdmissionLayer {
        AdmissionLayer { state: Arc::new(AdmissionState { in_flight: AtomicUsize::new(0), max, counters }) }
    }

    pub fn state(&self) -> Arc<AdmissionState> {
        self.state.clone()
    }
}

impl<S> tower::Layer<S> for AdmissionLayer {
    type Service = Admission<S>;
    fn layer(&self, inner: S) -> Admission<S> {
        Admission { inner, state: self.state.clone() }
    }
}

#[derive(Clone)]
pub struct Admission<S> {
    inner: S,
    state: Arc<AdmissionState>,
}

impl<S> Admission<S> {
    pub fn inner_mut(&mut self) -> &mut S {
        &mut self.inner
    }
}

/// The inner service receives its in-flight guard with the request, to tie it to the body.
pub type Admitted = (Request<Incoming>, InFlightGuard);

impl<S> tower::Service<Request<Incoming>> for Admission<S>
where
    S: tower::Service<Admitted, Response = Response<ResponseBody>, Error = Infallible>,
{
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = Either<Ready<Result<Response<ResponseBody>, Infallible>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Incoming>) -> Self::Future {
        let n = self.state.in_flight.fetch_add(1, Ordering::Relaxed);
        if n >= self.state.max {
            self.state.in_flight.fetch_sub(1, Ordering::Relaxed);
            self.state.counters.shed.increment(1);
            let err = ProxyError::new(
                ErrorKind::Overloaded,
                format!("vigil has {} requests in flight (proxy.max_in_flight); try again shortly", self.state.max),
            );
            let id = req.headers().get(X_REQUEST_ID).cloned().unwrap_or_else(super::headers::new_request_id);
            return Either::Left(futures_util::future::ready(Ok(err.response(Some(&id), None))));
        }
        self.state.counters.in_flight.increment(1.0);
        Either::Right(self.inner.call((req, InFlightGuard(self.state.clone()))))
    }
}
