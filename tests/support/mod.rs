//! Test harness for vigil's integration tests.
//!
//! - [`Vigil`]: the real `vigil run` binary as a child process on `127.0.0.1:0`, with a fresh state
//!   dir, its stderr drained into a buffer, and readiness awaited by polling `/readyz`.
//! - [`Upstream`]: an in-process model-server stand-in (hyper, HTTP/1.1 and h2c) that records every
//!   request it receives and serves echo, status, streaming, large, binary, slow and held routes.
//! - [`DemoModel`]: `vigil demo-model` as a child process.
//! - HTTP client helpers (hyper's legacy client, HTTP/1.1 or h2c), raw HTTP/1.1 over a socket,
//!   Prometheus text parsing and poll-with-deadline.
//!
//! No fixed sleeps stand in for readiness: everything that waits polls a condition with a deadline.

#![allow(dead_code)]

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use std::convert::Infallible;
use std::future::Future;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

/// The vigil binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_vigil");

/// How long any single wait may take before the test fails (a liveness bound, not a timing check).
pub const DEADLINE: Duration = Duration::from_secs(20);

/// A V2 inference request the demo model accepts.
pub const INFER_BODY: &str =
    r#"{"inputs":[{"name":"input-0","shape":[1,4],"datatype":"FP64","data":[35,42000,0.7,12]}]}"#;

// ---------------------------------------------------------------------------------------------
// Small utilities

/// Removes ANSI escape sequences (`ESC [ ... letter`).
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Deterministic, non-trivial bytes: every byte value occurs, and the sequence does not repeat
/// with a short period.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i.wrapping_mul(31) ^ (i >> 8).wrapping_mul(7) ^ (i >> 16)) as u8).collect()
}

/// Compares two byte strings without printing megabytes on failure.
#[track_caller]
pub fn assert_bytes_eq(actual: &[u8], expected: &[u8], what: &str) {
    if actual != expected {
        let first = actual.iter().zip(expected).position(|(a, b)| a != b);
        panic!(
            "{what}: bodies differ: got {} bytes, expected {} bytes, first difference at {:?}",
            actual.len(),
            expected.len(),
            first
        );
    }
}

/// Polls `check` until it returns true; panics after [`DEADLINE`].
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + DEADLINE;
    loop {
        if check().await {
            return;
        }
        if Instant::now() > deadline {
            panic!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls `f` until it returns `Some`; panics after [`DEADLINE`] with the last `Err` description.
pub async fn poll_for<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + DEADLINE;
    loop {
        let last = match f().await {
            Ok(v) => return v,
            Err(e) => e,
        };
        if Instant::now() > deadline {
            panic!("timed out waiting for {what}; last: {last}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A port on 127.0.0.1 with nothing listening (bound, then released).
pub fn dead_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

fn parse_query(q: Option<&str>) -> Vec<(String, String)> {
    q.unwrap_or("")
        .split('&')
        .filter(|s| !s.is_empty())
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (kv.to_owned(), String::new()),
        })
        .collect()
}

fn query_num(q: &[(String, String)], key: &str, default: usize) -> usize {
    q.iter().find(|(k, _)| k == key).and_then(|(_, v)| v.parse().ok()).unwrap_or(default)
}

// ---------------------------------------------------------------------------------------------
// Bodies and clients

/// A body for requests (client side) and responses (test upstream): whole, or streamed as chunks.
pub enum TestBody {
    Full(Option<Bytes>),
    Chunks(mpsc::Receiver<Bytes>),
}

impl TestBody {
    pub fn empty() -> TestBody {
        TestBody::Full(None)
    }

    pub fn full(b: impl Into<Bytes>) -> TestBody {
        TestBody::Full(Some(b.into()))
    }

    /// A body of unknown length (chunked in HTTP/1.1) sending `chunks` one by one, with `delay`
    /// between them.
    pub fn chunks(chunks: Vec<Bytes>, delay: Duration) -> TestBody {
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            for c in chunks {
                if tx.send(c).await.is_err() {
                    return;
                }
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
            }
        });
        TestBody::Chunks(rx)
    }
}

impl Body for TestBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            TestBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            TestBody::Chunks(rx) => rx.poll_recv(cx).map(|c| c.map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, TestBody::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            TestBody::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            TestBody::Full(None) => SizeHint::with_exact(0),
            TestBody::Chunks(_) => SizeHint::default(),
        }
    }
}

pub type HttpClient = Client<HttpConnector, TestBody>;

/// An HTTP/1.1 client (keep-alive pool).
pub fn h1_client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// An HTTP/2 client with prior knowledge (h2c).
pub fn h2_client() -> HttpClient {
    Client::builder(TokioExecutor::new()).http2_only(true).build_http()
}

/// A collected response.
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub version: http::Version,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().expect("ASCII header value"))
    }

    pub fn header_all(&self, name: &str) -> Vec<String> {
        self.headers.get_all(name).iter().map(|v| v.to_str().unwrap().to_owned()).collect()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): status {} body {:?}", self.status, self.text()))
    }

    /// Which test upstream answered (its `x-upstream` header).
    #[track_caller]
    pub fn upstream(&self) -> String {
        self.header("x-upstream")
            .unwrap_or_else(|| panic!("no x-upstream header: status {} body {:?}", self.status, self.text()))
            .to_owned()
    }
}

pub fn request(method: &str, url: &str) -> http::request::Builder {
    Request::builder().method(Method::from_bytes(method.as_bytes()).unwrap()).uri(url)
}

/// Sends and collects; Err when the exchange failed below HTTP.
pub async fn try_send(client: &HttpClient, req: Request<TestBody>) -> Result<Resp, String> {
    let res = client.request(req).await.map_err(|e| format!("{e:?}"))?;
    let (parts, body) = res.into_parts();
    let body = body.collect().await.map_err(|e| format!("body: {e:?}"))?.to_bytes();
    Ok(Resp { status: parts.status, version: parts.version, headers: parts.headers, body })
}

#[track_caller]
pub fn send(client: &HttpClient, req: Request<TestBody>) -> impl Future<Output = Resp> + '_ {
    let what = format!("{} {}", req.method(), req.uri());
    async move { try_send(client, req).await.unwrap_or_else(|e| panic!("{what}: {e}")) }
}

/// GET with a fresh HTTP/1.1 client.
pub async fn get(url: &str) -> Resp {
    send(&h1_client(), request("GET", url).body(TestBody::empty()).unwrap()).await
}

/// Sends `raw` over a fresh TCP connection and reads until the peer closes (send
/// `Connection: close`). Returns every byte received.
pub async fn raw_exchange(addr: SocketAddr, raw: &[u8]) -> Vec<u8> {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(raw).await.expect("write");
    let mut out = Vec::new();
    tokio::time::timeout(DEADLINE, s.read_to_end(&mut out)).await.expect("raw read timed out").expect("read");
    out
}

/// A parsed raw HTTP/1.1 response.
#[derive(Debug)]
pub struct RawResponse {
    pub status_line: String,
    /// Header lines as received, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked when it was chunked.
    pub body: Vec<u8>,
    pub chunked: bool,
}

impl RawResponse {
    pub fn parse(bytes: &[u8]) -> RawResponse {
        let end = bytes.windows(4).position(|w| w == b"\r\n\r\n").expect("end of headers");
        let head = std::str::from_utf8(&bytes[..end]).expect("ASCII head");
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap().to_owned();
        let headers: Vec<(String, String)> = lines
            .map(|l| {
                let (n, v) = l.split_once(':').expect("header line");
                (n.trim().to_ascii_lowercase(), v.trim().to_owned())
            })
            .collect();
        let rest = &bytes[end + 4..];
        let chunked = headers.iter().any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
        let body = if chunked { dechunk(rest) } else { rest.to_vec() };
        RawResponse { status_line, headers, body, chunked }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n").expect("chunk size line");
        let size_str = std::str::from_utf8(&b[..eol]).unwrap();
        let size = usize::from_str_radix(size_str.split(';').next().unwrap().trim(), 16).expect("hex chunk size");
        b = &b[eol + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&b[..size]);
        assert_eq!(&b[size..size + 2], b"\r\n", "chunk terminator");
        b = &b[size + 2..];
    }
}

// ---------------------------------------------------------------------------------------------
// Prometheus text

#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

#[derive(Debug, Clone)]
pub struct Metrics {
    pub text: String,
    pub samples: Vec<Sample>,
}

impl Metrics {
    pub fn parse(text: &str) -> Metrics {
        let mut samples = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').expect("sample line");
            let value: f64 = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v.parse().unwrap_or(f64::NAN),
            };
            let (name, labels) = match series.split_once('{') {
                Some((n, rest)) => (n.to_owned(), parse_labels(rest.trim_end_matches('}'))),
                None => (series.to_owned(), Vec::new()),
            };
            samples.push(Sample { name, labels, value });
        }
        Metrics { text: text.to_owned(), samples }
    }

    /// Sum of the samples named `name` whose labels include every pair of `labels`.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(name, labels).map(|s| s.value).sum()
    }

    pub fn matching<'a>(&'a self, name: &'a str, labels: &'a [(&str, &str)]) -> impl Iterator<Item = &'a Sample> {
        self.samples.iter().filter(move |s| {
            s.name == name && labels.iter().all(|(k, v)| s.labels.iter().any(|(lk, lv)| lk == k && lv == v))
        })
    }

    /// Whether any sample of this metric family exists (histograms: `_bucket`, `_sum`, `_count`).
    pub fn has(&self, family: &str) -> bool {
        self.samples.iter().any(|s| {
            s.name == family
                || s.name.strip_prefix(family).is_some_and(|rest| matches!(rest, "_bucket" | "_sum" | "_count"))
        })
    }
}

fn parse_labels(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some((k, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, n)) = chars.next() {
                        value.push(match n {
                            'n' => '\n',
                            other => other,
                        });
                    }
                }
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        out.push((k.trim_start_matches(',').trim().to_owned(), value));
        rest = &after[end..];
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Child processes

/// A child process whose stderr is drained into a shared buffer by a thread, so it never blocks.
struct Logged {
    child: Child,
    log: Arc<Mutex<String>>,
}

/// On Linux, the child gets SIGKILL if the thread that spawned it dies, so a killed or crashed
/// test binary leaves no vigil behind.
fn die_with_parent(cmd: &mut Command) {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = cmd;
}

fn spawn_logged(mut cmd: Command) -> Logged {
    die_with_parent(&mut cmd);
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn vigil");
    let stderr = child.stderr.take().unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    let sink = log.clone();
    std::thread::spawn(move || {
        let mut r = BufReader::new(stderr);
        let mut line = Vec::new();
        loop {
            line.clear();
            match r.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => sink.lock().unwrap().push_str(&String::from_utf8_lossy(&line)),
            }
        }
    });
    Logged { child, log }
}

impl Logged {
    /// Waits until a stderr line (ANSI stripped) contains `needle`; returns that line.
    async fn wait_for_line(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let log = strip_ansi(&self.log.lock().unwrap());
            if let Some(line) = log.lines().find(|l| l.contains(needle)) {
                return line.to_owned();
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                // Let the drain thread catch up with the last lines.
                tokio::time::sleep(Duration::from_millis(50)).await;
                panic!("process exited ({status}) before logging {needle:?}; stderr:\n{}", self.log.lock().unwrap());
            }
            if Instant::now() > deadline {
                panic!("no {needle:?} line on stderr; stderr so far:\n{log}");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn kill(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn find_addr(line: &str, key: &str) -> SocketAddr {
    line.split_whitespace()
        .find_map(|t| t.strip_prefix(key))
        .unwrap_or_else(|| panic!("no {key} in {line:?}"))
        .trim_end_matches(',')
        .parse()
        .unwrap_or_else(|e| panic!("bad address after {key} in {line:?}: {e}"))
}

/// A running `vigil run`, killed on drop.
pub struct Vigil {
    proc: Logged,
    pub proxy: SocketAddr,
    pub admin: SocketAddr,
    pub state_dir: PathBuf,
    _state_tmp: Option<tempfile::TempDir>,
    _config_tmp: tempfile::TempDir,
}

/// Options for starting vigil.
pub struct VigilBuilder {
    args: Vec<String>,
    config: Option<String>,
    env: Vec<(String, String)>,
    state_dir: Option<PathBuf>,
    wait_ready: bool,
}

impl VigilBuilder {
    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.args.push(a.into());
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, args: I) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// `--upstream NAME=URL`.
    pub fn upstream(self, name: &str, url: &str) -> Self {
        self.arg("--upstream").arg(format!("{name}={url}"))
    }

    /// A config file with this TOML text (`--config`).
    pub fn config(mut self, toml: &str) -> Self {
        self.config = Some(toml.to_owned());
        self
    }

    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.to_owned(), v.to_owned()));
        self
    }

    /// Use this state dir instead of a fresh temporary one (to restart on the same state).
    pub fn state_dir(mut self, dir: &Path) -> Self {
        self.state_dir = Some(dir.to_owned());
        self
    }

    /// Do not wait for `/readyz` to answer 200 (upstream down on purpose).
    pub fn no_wait_ready(mut self) -> Self {
        self.wait_ready = false;
        self
    }

    pub async fn start(self) -> Vigil {
        let config_tmp = tempfile::tempdir().unwrap();
        let (state_dir, state_tmp) = match self.state_dir {
            Some(d) => (d, None),
            None => {
                let t = tempfile::tempdir().unwrap();
                (t.path().join("state"), Some(t))
            }
        };
        let mut cmd = Command::new(BIN);
        cmd.arg("run")
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--state-dir"])
            .arg(&state_dir);
        if let Some(text) = &self.config {
            let path = config_tmp.path().join("vigil.toml");
            std::fs::write(&path, text).unwrap();
            cmd.arg("--config").arg(path);
        }
        cmd.args(&self.args);
        cmd.env("RUST_LOG", "info").env_remove("VIGIL_ADMIN_TOKEN").env_remove("VIGIL_CONFIG");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let mut proc = spawn_logged(cmd);
        let line = proc.wait_for_line("vigil listening").await;
        let proxy = find_addr(&line, "proxy=");
        let admin = find_addr(&line, "admin=");
        let vigil = Vigil { proc, proxy, admin, state_dir, _state_tmp: state_tmp, _config_tmp: config_tmp };
        if self.wait_ready {
            let url = vigil.admin_url("/readyz");
            let client = h1_client();
            eventually("vigil /readyz to answer 200", || {
                let req = request("GET", &url).body(TestBody::empty()).unwrap();
                let client = &client;
                async move { matches!(try_send(client, req).await, Ok(r) if r.status == StatusCode::OK) }
            })
            .await;
        }
        vigil
    }
}

impl Vigil {
    pub fn builder() -> VigilBuilder {
        VigilBuilder { args: Vec::new(), config: None, env: Vec::new(), state_dir: None, wait_ready: true }
    }

    /// `vigil run --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --state-dir <tmp> ARGS...`,
    /// returned once ready.
    pub async fn start(args: &[&str]) -> Vigil {
        Vigil::builder().args(args.iter().copied()).start().await
    }

    /// A proxy URL for `path_and_query`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.proxy, path)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{}", self.admin, path)
    }

    pub fn pid(&self) -> u32 {
        self.proc.child.id()
    }

    /// Everything vigil wrote to stderr so far, ANSI stripped.
    pub fn stderr(&self) -> String {
        strip_ansi(&self.proc.log.lock().unwrap())
    }

    /// Raw stderr, escape codes included.
    pub fn stderr_raw(&self) -> String {
        self.proc.log.lock().unwrap().clone()
    }

    pub fn sigterm(&self) {
        let rc = unsafe { libc::kill(self.pid() as libc::pid_t, libc::SIGTERM) };
        assert_eq!(rc, 0, "kill(SIGTERM)");
    }

    /// SIGKILL, and wait until the process is gone (no shutdown code runs).
    pub fn sigkill(mut self) {
        self.proc.kill();
    }

    /// Waits for the process to exit (at most [`DEADLINE`]).
    pub async fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.proc.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                panic!("vigil did not exit; stderr:\n{}", self.stderr());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// SIGTERM, then wait for the exit.
    pub async fn stop(mut self) -> ExitStatus {
        self.sigterm();
        self.wait_exit().await
    }

    /// A control-plane request; `body` is sent as is.
    pub async fn admin_req(&self, method: &str, path: &str, body: Option<&str>, headers: &[(&str, &str)]) -> Resp {
        let mut b = request(method, &self.admin_url(path));
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let body = match body {
            Some(s) => {
                b = b.header("content-type", "application/json");
                TestBody::full(s.to_owned())
            }
            None => TestBody::empty(),
        };
        send(&h1_client(), b.body(body).unwrap()).await
    }

    /// A control-plane request with an optional JSON body.
    pub async fn admin(&self, method: &str, path: &str, body: Option<Value>) -> Resp {
        let text = body.map(|v| v.to_string());
        self.admin_req(method, path, text.as_deref(), &[]).await
    }

    /// GET /admin/versions.
    pub async fn versions(&self) -> Value {
        let r = self.admin("GET", "/admin/versions", None).await;
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()
    }

    pub async fn metrics(&self) -> Metrics {
        let r = self.admin("GET", "/metrics", None).await;
        assert_eq!(r.status, 200);
        Metrics::parse(&r.text())
    }

    /// Waits until `metric{labels}` sums to `value`.
    pub async fn wait_metric(&self, name: &str, labels: &[(&str, &str)], value: f64) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let last = self.metrics().await.sum(name, labels);
            if last == value {
                return;
            }
            if Instant::now() > deadline {
                panic!("{name}{labels:?} is {last}, expected {value}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The audit trail, one JSON value per line.
    pub fn audit(&self) -> Vec<Value> {
        match std::fs::read_to_string(self.state_dir.join("audit.jsonl")) {
            Ok(text) => text.lines().map(|l| serde_json::from_str(l).expect("audit line is JSON")).collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => panic!("audit.jsonl: {e}"),
        }
    }

    /// `state.json`, if written.
    pub fn state_file(&self) -> Option<Value> {
        std::fs::read(self.state_dir.join("state.json")).ok().map(|b| serde_json::from_slice(&b).unwrap())
    }

    /// One GET through the proxy to `/echo`; returns the answering upstream's name.
    pub async fn which(&self, client: &HttpClient) -> String {
        let r = send(client, request("GET", &self.url("/echo")).body(TestBody::empty()).unwrap()).await;
        assert_eq!(r.status, 200, "{}", r.text());
        r.upstream()
    }
}

impl Drop for Vigil {
    fn drop(&mut self) {
        self.proc.kill();
    }
}

/// Runs the vigil binary to completion (it must exit within [`DEADLINE`]).
pub fn run_to_exit(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args).env("RUST_LOG", "info").env_remove("VIGIL_ADMIN_TOKEN").env_remove("VIGIL_CONFIG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    die_with_parent(&mut cmd);
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn vigil");
    let pid = child.id();
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let out_t = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = out.read_to_end(&mut b);
        b
    });
    let err_t = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = err.read_to_end(&mut b);
        b
    });
    let deadline = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            let _ = child.wait();
            let stderr = err_t.join().unwrap();
            panic!("vigil {args:?} did not exit; stderr:\n{}", String::from_utf8_lossy(&stderr));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    std::process::Output { status, stdout: out_t.join().unwrap(), stderr: err_t.join().unwrap() }
}

/// `vigil demo-model` as a child process, killed on drop.
pub struct DemoModel {
    proc: Logged,
    pub addr: SocketAddr,
    pub version: String,
}

impl DemoModel {
    pub async fn start(version: &str) -> DemoModel {
        DemoModel::start_with(version, &[]).await
    }

    /// With extra `vigil demo-model` flags, e.g. `["--error-ratio", "0.5"]`.
    pub async fn start_with(version: &str, extra: &[&str]) -> DemoModel {
        DemoModel::spawn(version, "127.0.0.1:0", extra).await
    }

    /// On a given address, e.g. the one a killed model server listened on (a restart).
    pub async fn start_on(version: &str, addr: SocketAddr) -> DemoModel {
        DemoModel::spawn(version, &addr.to_string(), &[]).await
    }

    async fn spawn(version: &str, listen: &str, extra: &[&str]) -> DemoModel {
        let mut cmd = Command::new(BIN);
        cmd.args(["demo-model", "--listen", listen, "--model-version", version]);
        cmd.args(extra);
        let mut proc = spawn_logged(cmd);
        let line = proc.wait_for_line("listening on").await;
        let addr = line.rsplit(' ').next().unwrap().trim().parse().expect("demo model address");
        DemoModel { proc, addr, version: version.to_owned() }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The model server's process id.
    pub fn pid(&self) -> u32 {
        self.proc.child.id()
    }

    /// SIGKILL, and wait until the process is gone (its sockets close; nothing answers).
    pub fn sigkill(&mut self) {
        self.proc.kill();
    }
}

impl Drop for DemoModel {
    fn drop(&mut self) {
        self.proc.kill();
    }
}

/// POSTs a V2 inference to the demo model through `base` and returns the answering model_version.
pub async fn infer(client: &HttpClient, base: &str) -> Result<String, String> {
    let req = request("POST", &format!("{base}/v2/models/demo/infer"))
        .header("content-type", "application/json")
        .body(TestBody::full(INFER_BODY))
        .unwrap();
    let r = try_send(client, req).await?;
    if r.status != 200 {
        return Err(format!("status {}: {}", r.status, r.text()));
    }
    let v: Value = serde_json::from_slice(&r.body).map_err(|e| format!("not JSON: {e}: {}", r.text()))?;
    v["model_version"].as_str().map(str::to_owned).ok_or_else(|| format!("no model_version in {v}"))
}

// ---------------------------------------------------------------------------------------------
// The test upstream

/// One request as the test upstream received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: Method,
    /// Path and query, exactly as received.
    pub uri: String,
    pub version: http::Version,
    /// `:authority` (HTTP/2) or the `Host` header (HTTP/1.1).
    pub authority: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// Why reading the body failed (the peer closed mid-body, ...); `body` is then empty.
    pub body_error: Option<String>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    pub fn header_all(&self, name: &str) -> Vec<String> {
        self.headers.get_all(name).iter().map(|v| v.to_str().unwrap().to_owned()).collect()
    }
}

struct UpState {
    name: String,
    requests: Mutex<Vec<Recorded>>,
    held: watch::Sender<usize>,
    release: watch::Sender<bool>,
}

/// The body the large routes serve.
pub const LARGE_LEN: usize = 10 * 1024 * 1024;
/// The body `/binary` serves.
pub const BINARY_LEN: usize = 64 * 1024 + 3;

/// An in-process upstream on 127.0.0.1:0 (HTTP/1.1 and h2c). Every response carries
/// `x-upstream: <name>`. Routes:
///
/// - `GET /v2/health/ready`: 200.
/// - `/echo...` (any method): 200 with the request body; `x-echo-method`, `x-echo-uri`,
///   `x-echo-version`, `x-echo-request-id` describe the request.
/// - `/status/{code}`: that status with a JSON body naming it (`application/problem+json`).
/// - `/stream?chunks=N&size=S&delay_ms=D`: [`pattern`]`(N*S)` in N chunks, no Content-Length.
/// - `/stream-held`: sends `first-chunk`, then waits for [`Upstream::release`], then `second-chunk`.
/// - `/large`: [`pattern`]`(LARGE_LEN)` with Content-Length.
/// - `/binary`: all byte values, `application/octet-stream`.
/// - `/slow?ms=N`: sleeps before the headers.
/// - `/hold`: counts itself as held and answers only after [`Upstream::release`].
/// - `/headers-out`: custom and multi-value response headers, and a Connection-named one.
/// - anything else: 404.
pub struct Upstream {
    pub addr: SocketAddr,
    pub name: String,
    state: Arc<UpState>,
    task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    pub async fn start(name: &str) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(UpState {
            name: name.to_owned(),
            requests: Mutex::new(Vec::new()),
            held: watch::channel(0).0,
            release: watch::channel(false).0,
        });
        let st = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let st = st.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| handle(st.clone(), req));
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Upstream { addr, name: name.to_owned(), state, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request received so far, except readiness probes.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().unwrap().iter().filter(|r| r.uri != "/v2/health/ready").cloned().collect()
    }

    /// Received requests whose path and query start with `prefix`.
    pub fn requests_to(&self, prefix: &str) -> Vec<Recorded> {
        self.requests().into_iter().filter(|r| r.uri.starts_with(prefix)).collect()
    }

    /// The only request received whose path and query start with `prefix`.
    #[track_caller]
    pub fn one(&self, prefix: &str) -> Recorded {
        let mut v = self.requests_to(prefix);
        assert_eq!(v.len(), 1, "expected one request to {prefix}, got {v:?}");
        v.pop().unwrap()
    }

    /// Waits until `n` requests are being held by `/hold` or `/stream-held`.
    pub async fn wait_held(&self, n: usize) {
        let mut rx = self.state.held.subscribe();
        tokio::time::timeout(DEADLINE, rx.wait_for(|c| *c >= n))
            .await
            .unwrap_or_else(|_| panic!("upstream {} never held {n} requests", self.name))
            .unwrap();
    }

    /// Lets every held request (now and later) proceed.
    pub fn release(&self) {
        self.state.release.send_replace(true);
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.release();
        self.task.abort();
    }
}

fn reply(status: u16, body: impl Into<Bytes>) -> Response<TestBody> {
    let mut r = Response::new(TestBody::full(body));
    *r.status_mut() = StatusCode::from_u16(status).unwrap();
    r
}

async fn handle(st: Arc<UpState>, req: Request<Incoming>) -> Result<Response<TestBody>, Infallible> {
    let (parts, body) = req.into_parts();
    let (body, body_error) = match body.collect().await {
        Ok(c) => (c.to_bytes(), None),
        Err(e) => (Bytes::new(), Some(e.to_string())),
    };
    let uri = parts.uri.path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_default();
    let authority = parts
        .uri
        .authority()
        .map(|a| a.to_string())
        .or_else(|| parts.headers.get("host").map(|h| h.to_str().unwrap_or("").to_owned()));
    st.requests.lock().unwrap().push(Recorded {
        method: parts.method.clone(),
        uri: uri.clone(),
        version: parts.version,
        authority,
        headers: parts.headers.clone(),
        body: body.clone(),
        body_error,
    });
    let path = parts.uri.path();
    let query = parse_query(parts.uri.query());
    let mut res = if path == "/v2/health/ready" {
        reply(200, r#"{"ready":true}"#)
    } else if path.starts_with("/echo") {
        let mut r = reply(200, body);
        let h = r.headers_mut();
        h.insert("content-type", "application/octet-stream".parse().unwrap());
        h.insert("x-echo-method", parts.method.as_str().parse().unwrap());
        h.insert("x-echo-uri", uri.parse().unwrap());
        h.insert("x-echo-version", format!("{:?}", parts.version).parse().unwrap());
        if let Some(id) = parts.headers.get("x-request-id") {
            h.insert("x-echo-request-id", id.clone());
        }
        r
    } else if let Some(code) = path.strip_prefix("/status/") {
        let code: u16 = code.parse().unwrap_or(400);
        let body = if matches!(code, 204 | 304) {
            String::new()
        } else {
            format!(r#"{{"upstream_status":{code},"detail":"the upstream's own body for {code}"}}"#)
        };
        let mut r = reply(code, body);
        r.headers_mut().insert("content-type", "application/problem+json".parse().unwrap());
        r.headers_mut().insert("x-upstream-status", code.to_string().parse().unwrap());
        r
    } else if path == "/stream" {
        let (n, size, delay) =
            (query_num(&query, "chunks", 10), query_num(&query, "size", 16), query_num(&query, "delay_ms", 0));
        let all = Bytes::from(pattern(n * size));
        let chunks = (0..n).map(|i| all.slice(i * size..(i + 1) * size)).collect();
        Response::new(TestBody::chunks(chunks, Duration::from_millis(delay as u64)))
    } else if path == "/stream-held" {
        let (tx, rx) = mpsc::channel(4);
        let st = st.clone();
        tokio::spawn(async move {
            let _ = tx.send(Bytes::from_static(b"first-chunk")).await;
            st.held.send_modify(|c| *c += 1);
            let _ = st.release.subscribe().wait_for(|r| *r).await;
            let _ = tx.send(Bytes::from_static(b"second-chunk")).await;
        });
        Response::new(TestBody::Chunks(rx))
    } else if path == "/large" {
        reply(200, pattern(LARGE_LEN))
    } else if path == "/binary" {
        let body: Vec<u8> = (0..BINARY_LEN).map(|i| (i % 256) as u8).rev().collect();
        let mut r = reply(200, body);
        r.headers_mut().insert("content-type", "application/octet-stream".parse().unwrap());
        r
    } else if path == "/slow" {
        tokio::time::sleep(Duration::from_millis(query_num(&query, "ms", 1000) as u64)).await;
        reply(200, "slow answer")
    } else if path == "/hold" {
        st.held.send_modify(|c| *c += 1);
        let _ = st.release.subscribe().wait_for(|r| *r).await;
        reply(200, "released")
    } else if path == "/headers-out" {
        let mut r = reply(200, "headers");
        let h = r.headers_mut();
        h.append("x-multi", "one".parse().unwrap());
        h.append("x-multi", "two".parse().unwrap());
        h.append("set-cookie", "a=1; Path=/".parse().unwrap());
        h.append("set-cookie", "b=2; HttpOnly".parse().unwrap());
        h.insert("x-custom-resp", "Hello, World".parse().unwrap());
        h.insert("content-type", "text/plain; charset=utf-8".parse().unwrap());
        if parts.version != http::Version::HTTP_2 {
            h.insert("connection", "x-hop-resp".parse().unwrap());
            h.insert("x-hop-resp", "secret".parse().unwrap());
        }
        r
    } else {
        reply(404, format!("test upstream has no route {path}"))
    };
    res.headers_mut().insert("x-upstream", st.name.parse().unwrap());
    Ok(res)
}

/// A raw TCP upstream that reads a request's headers and closes the connection without answering.
pub async fn closing_upstream() -> SocketAddr {
    raw_upstream(None).await
}

/// A raw TCP upstream that answers every request with `answer` verbatim (e.g. not HTTP at all).
pub async fn garbage_upstream(answer: &'static [u8]) -> SocketAddr {
    raw_upstream(Some(answer)).await
}

async fn raw_upstream(answer: Option<&'static [u8]>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else { continue };
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                if let Some(a) = answer {
                    let _ = s.write_all(a).await;
                }
                let _ = s.shutdown().await;
            });
        }
    });
    addr
}

/// A half-open upstream: it accepts connections and keeps them, but never reads nor answers.
pub async fn silent_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut kept = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            kept.push(s);
        }
    });
    addr
}

/// The prediction log, read-only, as an operator's sqlite3 shell would open it.
#[allow(dead_code)]
pub fn prediction_db(state_dir: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open_with_flags(state_dir.join("predictions.db"), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap()
}

/// Rows of the prediction log matching `filter` (SQL after `FROM predictions`, e.g. a WHERE clause).
#[allow(dead_code)]
pub fn count_rows(state_dir: &Path, filter: &str) -> i64 {
    prediction_db(state_dir).query_row(&format!("SELECT count(*) FROM predictions {filter}"), [], |r| r.get(0)).unwrap()
}
