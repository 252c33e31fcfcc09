//! Listeners: accept connections, serve HTTP/1.1 and HTTP/2 (h2c, prior knowledge) on the same
//! port, and drain gracefully. Used by the data path and the control plane alike.
//!
//! Drain, as mini-redis teaches it: when `shutdown` resolves, the listener is dropped (new
//! connections are refused), every open connection is told to finish its current exchanges
//! (HTTP/1.1: close after the response; HTTP/2: GOAWAY), and we wait for them, at most
//! `drain_timeout`.

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use std::future::Future;
use std::time::Duration;
use tokio::net::TcpListener;

/// Connection settings shared by both listeners.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub header_read_timeout: Duration,
    pub drain_timeout: Duration,
}

fn builder(opts: &ServerOptions) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1().timer(TokioTimer::new()).header_read_timeout(opts.header_read_timeout).keep_alive(true);
    b.http2().timer(TokioTimer::new());
    b
}

/// Serves on `listener` until `shutdown` resolves, then drains. `make` builds the service for a
/// connection from the peer's address. Returns whether every connection finished in time.
pub async fn serve<M, S, B>(
    listener: TcpListener,
    make: M,
    opts: ServerOptions,
    shutdown: impl Future<Output = ()>,
) -> bool
where
    M: Fn(std::net::SocketAddr) -> S,
    S: hyper::service::Service<http::Request<Incoming>, Response = http::Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let builder = builder(&opts);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let conn = builder.serve_connection(TokioIo::new(stream), make(peer)).into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                });
            }
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    tokio::time::timeout(opts.drain_timeout, graceful.shutdown()).await.is_ok()
}
