//! A trivial model server for measuring the generator itself: reads the request body
//! and answers every request with a small fixed V2-style JSON response.
//!
//! ```text
//! cargo run --release -p vigil-loadtest --example sink -- [ADDR] [THREADS]
//! ```
//! Defaults: `127.0.0.1:9000`, 1 thread. Speaks HTTP/1.1 and h2c.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

fn main() {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:9000".into());
    let threads: usize = args.next().map_or(1, |t| t.parse().expect("THREADS"));
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(serve(addr));
}

async fn serve(addr: String) {
    let listener = TcpListener::bind(&addr).await.expect("bind");
    eprintln!("sink listening on {}", listener.local_addr().unwrap());
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let svc = service_fn(|req: Request<Incoming>| async move {
                req.into_body().collect().await?;
                Ok::<_, hyper::Error>(Response::new(Full::new(Bytes::from_static(
                    br#"{"model_name":"demo","outputs":[{"name":"p","shape":[1],"datatype":"FP64","data":[0.5]}]}"#,
                ))))
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}
