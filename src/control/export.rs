//! `GET /admin/export?since=&until=&labelled=&version=&format=&limit=`: the prediction log as a
//! file for retraining (JSON lines, CSV or Parquet), streamed as it is read.
//!
//! Owns: the route's parameters, the export threads' start and their bound, the streamed body.
//! May not touch: the prediction log's writer connection (the export reads through one of its
//! own, `store::export::Reader`), the data path.
//!
//! **Streaming.** A `vigil-export` thread (nice 10, like the log's writer: an export is heavy and
//! can wait, the data path cannot) reads pages of rows and writes the file into 64 KiB chunks on a
//! bounded channel of [`CHANNEL_CHUNKS`]; the response body takes them off as the client reads.
//! A slow client slows the thread, never fills memory; a client that leaves stops it at its next
//! chunk. The status and headers are sent once the first page is read, so a database that cannot
//! be read is a 503, not a broken file; an error after that (rare: a disk error mid-read) aborts
//! the chunked body, so the client sees a failed transfer rather than a short file.
//!
//! Parameters (each at most once; an unknown one is a 400, so `labeled=true` does not silently
//! export everything):
//! - `since`, `until`: prediction time, `since <= time < until`: Unix ms, RFC 3339
//!   (`2024-05-01T12:00:00Z`, `+02:00` offsets as `%2B02:00` or as is) or a date (`2024-05-01`);
//! - `labelled=true` (only rows with a label) or `false` (only rows still without one);
//! - `version`: one model version; `limit`: at most this many rows (the earliest);
//! - `format`: `jsonl` (default), `csv` or `parquet`.
//!
//! Errors: 400 naming the parameter, 401 without the admin token (the export is data), 429 when
//! [`MAX_RUNNING`] exports are running, 503 when the prediction log is off or cannot be read.

use super::{Admin, ApiError};
use crate::store::export::{self, Filter, Format, Reader};
use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use std::io::{self, Write};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime};
use tokio::sync::{mpsc, oneshot};

/// Chunks of the file waiting for the client at most (each about [`CHUNK_BYTES`]).
pub const CHANNEL_CHUNKS: usize = 4;

/// The size the export thread fills before it hands a chunk over.
pub const CHUNK_BYTES: usize = 64 * 1024;

/// Exports running at once at most: each holds a thread and reads the whole log.
pub const MAX_RUNNING: usize = 2;

static RUNNING: AtomicUsize = AtomicUsize::new(0);

/// The response body of an export: chunks from the export thread, in order; an error aborts it.
pub struct ExportBody {
    rx: mpsc::Receiver<Result<Bytes, io::Error>>,
}

impl Body for ExportBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.rx.poll_recv(cx).map(|chunk| chunk.map(|r| r.map(Frame::data)))
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

/// The export's parameters, from the query string.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    pub filter: Filter,
    pub format: Format,
}

const KNOWN: &str = "since, until, labelled, version, format, limit";

/// Parses the query string. Errors name the parameter and say what it takes.
pub fn parse_query(query: Option<&str>) -> Result<Params, String> {
    let mut filter = Filter::default();
    let mut format = None;
    let mut seen: Vec<String> = Vec::new();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (raw_key, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = decode(raw_key).ok_or_else(|| format!("parameter {raw_key:?}: invalid percent-encoding"))?;
        let value = decode(raw_value).ok_or_else(|| format!("{key}: invalid percent-encoding in {raw_value:?}"))?;
        if seen.contains(&key) {
            return Err(format!("{key} is given twice"));
        }
        let time = |v: &str| {
            export::parse_time(v).ok_or_else(|| {
                format!("{key} must be Unix ms, RFC 3339 (2024-05-01T12:00:00Z) or a date (2024-05-01), not {v:?}")
            })
        };
        match key.as_str() {
            "since" => filter.since_ms = Some(time(&value)?),
            "until" => filter.until_ms = Some(time(&value)?),
            "labelled" => {
                filter.labelled = Some(match value.as_str() {
                    "true" => true,
                    "false" => false,
                    other => return Err(format!("labelled must be true or false, not {other:?}")),
                })
            }
            "version" if value.is_empty() => return Err("version is empty".into()),
            "version" => filter.version = Some(value),
            "format" => {
                format = Some(
                    Format::parse(&value)
                        .ok_or_else(|| format!("format must be jsonl, csv or parquet, not {value:?}"))?,
                )
            }
            "limit" => match value.parse::<u64>() {
                Ok(n) if n > 0 => filter.limit = Some(n),
                _ => return Err(format!("limit must be a whole number above 0, not {value:?}")),
            },
            _ => return Err(format!("unknown parameter {key:?}; known: {KNOWN}")),
        }
        seen.push(key);
    }
    if let (Some(since), Some(until)) = (filter.since_ms, filter.until_ms) {
        if since >= until {
            return Err(format!(
                "since ({}) must be before until ({})",
                export::rfc3339_ms(since),
                export::rfc3339_ms(until)
            ));
        }
    }
    Ok(Params { filter, format: format.unwrap_or(Format::Jsonl) })
}

/// Percent-decoding (`%2B` is `+`); a `+` stays a `+` (times carry offsets, names no spaces).
fn decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// One running export; the count goes down when the thread ends (or never started).
struct Slot;

impl Slot {
    fn take() -> Option<Slot> {
        RUNNING.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < MAX_RUNNING).then_some(n + 1)).ok()?;
        Some(Slot)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        RUNNING.fetch_sub(1, Ordering::AcqRel);
    }
}

pub async fn get<B>(admin: &Admin, req: &Request<B>) -> Result<Response<ExportBody>, ApiError> {
    admin.auth.check(req.headers())?;
    let Params { filter, format } = parse_query(req.uri().query()).map_err(ApiError::bad_request)?;
    let path: PathBuf = admin.feedback.as_ref().map(|f| f.log.path().to_owned()).ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "export_disabled",
            "nothing to export: the prediction log is off (prediction_log.enabled = false, or capture or analysis is off)",
        )
    })?;
    let slot = Slot::take().ok_or_else(|| {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_exports",
            format!("{MAX_RUNNING} exports are running; try again when one has finished"),
        )
    })?;
    let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
    let (ready_tx, ready_rx) = oneshot::channel();
    crate::background::spawn("vigil-export", move || {
        let _slot = slot;
        run(path, filter, format, tx, ready_tx)
    })
    .map_err(|e| ApiError::internal("export_failed", format!("cannot start the export thread: {e}")))?;
    match ready_rx.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "prediction_log_error", e.to_string()))
        }
        Err(_) => return Err(ApiError::internal("export_failed", "the export thread ended before it started")),
    }
    let mut res = Response::new(ExportBody { rx });
    let headers = res.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(format.content_type()));
    let disposition = format!("attachment; filename=\"{}\"", file_name(SystemTime::now(), format));
    headers.insert(header::CONTENT_DISPOSITION, HeaderValue::from_str(&disposition).expect("ASCII file name"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

/// `vigil-export-20240501T120000Z.jsonl`: the time of the export, UTC, to the second.
fn file_name(now: SystemTime, format: Format) -> String {
    let ms = now.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    let t: String = export::rfc3339_ms(ms).chars().take(19).filter(|c| *c != '-' && *c != ':').collect();
    format!("vigil-export-{t}Z.{}", format.extension())
}

/// The export thread: open and read the first page (then say ready), write the rest.
fn run(
    path: PathBuf,
    filter: Filter,
    format: Format,
    tx: mpsc::Sender<Result<Bytes, io::Error>>,
    ready: oneshot::Sender<Result<(), export::ExportError>>,
) {
    let started = Instant::now();
    let mut reader = match Reader::open(&path, filter) {
        Ok(r) => r,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    if ready.send(Ok(())).is_err() {
        return; // the request is gone
    }
    let mut out = ChannelWriter { tx: tx.clone(), buf: Vec::with_capacity(CHUNK_BYTES) };
    let format_name = format.extension();
    match export::write(format, &mut reader, &mut out) {
        Ok(rows) => {
            tracing::info!(rows, format = format_name, elapsed_ms = started.elapsed().as_millis() as u64, "export done")
        }
        Err(e) if e.is_disconnect() => tracing::info!(format = format_name, "export stopped: the client went away"),
        Err(e) => {
            tracing::warn!(error = %e, format = format_name, "export failed");
            let _ = tx.blocking_send(Err(io::Error::other(e.to_string())));
        }
    }
}

/// Bytes into [`CHUNK_BYTES`] chunks on the body's channel; waits while the channel is full.
/// A closed channel (the client left) is `BrokenPipe`.
struct ChannelWriter {
    tx: mpsc::Sender<Result<Bytes, io::Error>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK_BYTES)));
        self.tx.blocking_send(Ok(chunk)).map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK_BYTES {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters() {
        let p = parse_query(None).unwrap();
        assert_eq!((p.format, &p.filter), (Format::Jsonl, &Filter::default()));
        let p = parse_query(Some(
            "since=2024-05-01T00:00:00Z&until=1714608000000&labelled=true&version=v%202&format=parquet&limit=10",
        ))
        .unwrap();
        assert_eq!(p.format, Format::Parquet);
        assert_eq!(
            p.filter,
            Filter {
                since_ms: Some(1_714_521_600_000),
                until_ms: Some(1_714_608_000_000),
                labelled: Some(true),
                version: Some("v 2".into()),
                limit: Some(10),
            }
        );
        // An offset, sent as is or encoded.
        let a = parse_query(Some("since=2024-05-01T02:00:00+02:00")).unwrap();
        let b = parse_query(Some("since=2024-05-01T02:00:00%2B02:00")).unwrap();
        assert_eq!((a.filter.since_ms, b.filter.since_ms), (Some(1_714_521_600_000), Some(1_714_521_600_000)));
        assert_eq!(parse_query(Some("labelled=false")).unwrap().filter.labelled, Some(false));
    }

    #[test]
    fn errors_name_the_parameter() {
        for (query, needle) in [
            ("format=xml", "format must be jsonl, csv or parquet, not \"xml\""),
            ("labeled=true", "unknown parameter \"labeled\""),
            ("labelled=yes", "labelled must be true or false"),
            ("since=yesterday", "since must be Unix ms"),
            ("until=2024-13-01T00:00:00Z", "until must be"),
            ("limit=0", "limit must be"),
            ("limit=-3", "limit must be"),
            ("version=", "version is empty"),
            ("format=csv&format=csv", "format is given twice"),
            ("since=2024-05-02&until=2024-05-01", "since (2024-05-02T00:00:00.000Z) must be before until"),
            ("version=%zz", "version: invalid percent-encoding"),
            ("version=%ff", "version: invalid percent-encoding"),
        ] {
            let e = parse_query(Some(query)).unwrap_err();
            assert!(e.contains(needle), "{query}: {e}");
        }
    }

    #[test]
    fn file_names_have_no_colons() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_714_521_600_123);
        assert_eq!(file_name(t, Format::Csv), "vigil-export-20240501T000000Z.csv");
    }
}
