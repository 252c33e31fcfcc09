//! HTTP/1.1 upstream connections driven inline by the exchange that uses them.
//!
//! hyper's pooled client runs every upstream connection as a task of its own, so each exchange
//! crosses tasks twice (request handed to the connection task, response handed back), usually
//! between threads. Here the exchange's own task polls the upstream connection: while waiting for
//! the response headers (in [`H1Pool::send`]) and while streaming the body (the [`H1Conn`] rides
//! in the response body and is polled from `poll_frame`). Socket readiness wakes the client's
//! connection task directly; no channel, no second task. When the body has ended, the connection
//! goes back to the idle list of its upstream, if it is still good for another request.
//!
//! HTTP/1.1 carries one exchange at a time, so "the exchange that uses it" is always well
//! defined. HTTP/2 upstreams, which multiplex, stay on hyper-util's pooled client.

use super::body::RequestBody;
use http::uri::Authority;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, Connection, SendRequest};
use hyper_util::rt::TokioIo;
use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// Why an exchange could not get its response headers.
#[derive(Debug)]
pub enum SendError {
    /// No connection could be opened (refused, unreachable, connect timeout).
    Connect(std::io::Error),
    /// The connection failed after the request was handed to it.
    Http(hyper::Error),
}

/// Idle upstream connections, per upstream authority.
pub struct H1Pool {
    /// Per upstream authority; a handful of entries, so a scan beats hashing.
    idle: Mutex<Vec<(Authority, Vec<Idle>)>>,
    max_idle: usize,
    idle_timeout: Duration,
    connect_timeout: Duration,
}

struct Idle {
    conn: H1Conn,
    since: Instant,
}

impl Idle {
    fn usable(&self, idle_timeout: Duration) -> bool {
        self.since.elapsed() < idle_timeout && self.conn.is_open()
    }
}

/// One upstream HTTP/1.1 connection: the request sender and the connection future that does
/// the I/O, which whoever holds this polls.
pub struct H1Conn {
    sender: SendRequest<RequestBody>,
    conn: Option<Connection<TokioIo<TcpStream>, RequestBody>>,
    authority: Authority,
    pool: Arc<H1Pool>,
}

impl H1Conn {
    /// Lets the connection do whatever I/O is ready. Drops it once it has finished (closed or
    /// failed), which also fails any request still waiting on it.
    fn drive(&mut self, cx: &mut Context<'_>) {
        if let Some(conn) = self.conn.as_mut() {
            if let Poll::Ready(result) = Pin::new(conn).poll(cx) {
                if let Err(e) = result {
                    tracing::debug!(upstream = %self.authority, error = %e, "upstream connection failed");
                }
                self.conn = None;
            }
        }
    }

    fn is_open(&self) -> bool {
        self.conn.is_some() && !self.sender.is_closed()
    }

    /// Polls `inner` (the response body), driving the connection so that it makes progress.
    pub fn poll_body<T>(
        &mut self,
        cx: &mut Context<'_>,
        mut inner: impl FnMut(&mut Context<'_>) -> Poll<T>,
    ) -> Poll<T> {
        if let Poll::Ready(t) = inner(cx) {
            return Poll::Ready(t);
        }
        self.drive(cx);
        inner(cx)
    }

    /// Gives the connection back to its pool once the response has ended. One more drive lets
    /// hyper finish the message; a connection that closed or will close is dropped instead.
    pub fn release(mut self, cx: &mut Context<'_>) {
        self.drive(cx);
        if self.is_open() {
            let pool = self.pool.clone();
            pool.put(self);
        }
    }
}

impl H1Pool {
    pub fn new(max_idle: usize, idle_timeout: Duration, connect_timeout: Duration) -> Arc<H1Pool> {
        Arc::new(H1Pool { idle: Mutex::new(Vec::new()), max_idle, idle_timeout, connect_timeout })
    }

    /// Closes idle connections that expired or that the upstream closed. Nothing polls an idle
    /// connection, so without this a closed one would sit in CLOSE_WAIT until its next checkout.
    pub fn sweep(&self) {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut idle = self.idle.lock().unwrap();
        for (_, list) in idle.iter_mut() {
            list.retain_mut(|entry| {
                entry.conn.drive(&mut cx);
                entry.usable(self.idle_timeout)
            });
        }
        idle.retain(|(_, list)| !list.is_empty());
    }

    /// Sweeps every `period` while the pool lives.
    pub fn spawn_sweeper(self: &Arc<Self>, period: Duration) {
        let pool = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.tick().await;
            loop {
                tick.tick().await;
                match pool.upgrade() {
                    Some(p) => p.sweep(),
                    None => return,
                }
            }
        });
    }

    fn take(&self, authority: &Authority) -> Option<H1Conn> {
        let mut idle = self.idle.lock().unwrap();
        let (_, list) = idle.iter_mut().find(|(a, _)| a == authority)?;
        // Most recently used first: its socket is the least likely to have been closed.
        while let Some(entry) = list.pop() {
            if entry.usable(self.idle_timeout) {
                return Some(entry.conn);
            }
        }
        None
    }

    fn put(&self, conn: H1Conn) {
        let mut idle = self.idle.lock().unwrap();
        let i = match idle.iter().position(|(a, _)| *a == conn.authority) {
            Some(i) => i,
            None => {
                idle.push((conn.authority.clone(), Vec::new()));
                idle.len() - 1
            }
        };
        let list = &mut idle[i].1;
        if list.len() < self.max_idle {
            list.push(Idle { conn, since: Instant::now() });
        }
    }

    async fn connect(self: &Arc<Self>, authority: &Authority) -> Result<H1Conn, SendError> {
        let addr = (authority.host().trim_start_matches('[').trim_end_matches(']'), authority.port_u16().unwrap_or(80));
        let stream = match tokio::time::timeout(self.connect_timeout, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(SendError::Connect(e)),
            Err(_) => {
                return Err(SendError::Connect(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("connect timed out after {:?} (proxy.connect_timeout)", self.connect_timeout),
                )))
            }
        };
        let _ = stream.set_nodelay(true);
        let (sender, conn) = http1::Builder::new().handshake(TokioIo::new(stream)).await.map_err(SendError::Http)?;
        Ok(H1Conn { sender, conn: Some(conn), authority: authority.clone(), pool: self.clone() })
    }

    /// Sends `req` (origin-form URI, Host set) to `authority` on an idle connection or a new one,
    /// and drives that connection until the response headers arrive. A request that an idle
    /// connection could not take (it had been closed meanwhile) is retried on another one.
    pub async fn send(
        self: &Arc<Self>,
        authority: &Authority,
        mut req: Request<RequestBody>,
    ) -> Result<(Response<Incoming>, H1Conn), SendError> {
        loop {
            let (mut conn, reused) = match self.take(authority) {
                Some(c) => (c, true),
                None => (self.connect(authority).await?, false),
            };
            let ready = poll_fn(|cx| {
                conn.drive(cx);
                match conn.sender.poll_ready(cx) {
                    Poll::Ready(r) => Poll::Ready(r.is_ok()),
                    Poll::Pending if conn.conn.is_none() => Poll::Ready(false),
                    Poll::Pending => Poll::Pending,
                }
            })
            .await;
            if !ready {
                if reused {
                    continue;
                }
                return Err(SendError::Connect(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "upstream closed a new connection before it could be used",
                )));
            }
            let mut response = pin!(conn.sender.try_send_request(req));
            let result = poll_fn(|cx| {
                if let Poll::Ready(r) = response.as_mut().poll(cx) {
                    return Poll::Ready(r);
                }
                conn.drive(cx);
                response.as_mut().poll(cx)
            })
            .await;
            match result {
                Ok(res) => return Ok((res, conn)),
                Err(mut e) => match e.take_message() {
                    // Never written to the socket: safe to send on another connection.
                    Some(back) if reused => req = back,
                    _ => return Err(SendError::Http(e.into_error())),
                },
            }
        }
    }
}
