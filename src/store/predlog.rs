//! The prediction log: every live record (one row of a batch) in `predictions.db` in the state
//! dir, an SQLite database in WAL mode, so that ground-truth labels arriving minutes or days later
//! can be joined to the prediction they judge, and operators can query it with the `sqlite3` shell.
//!
//! Owns: `predictions.db` (and its `-wal` / `-shm` files) and the `vigil-predlog` writer thread.
//! May not touch: routes, sockets, the capture queue.
//!
//! **Never on the request path.** [`LogHandle::append`] is called by the analysis thread; it puts
//! the rows on an unbounded channel and adds them to a shared count of queued rows. Above
//! [`Options::queue_rows`] the rows are dropped and counted (`vigil_prediction_log_dropped_total`).
//! The writer thread owns the only connection. It writes pending rows in one transaction when
//! [`Options::flush_rows`] are pending or [`Options::flush_interval`] has passed since the oldest
//! pending row, whichever comes first; the JSON of the feature, prediction and segment columns is
//! built there, not on the analysis thread.
//!
//! **Durability.** `synchronous=NORMAL` in WAL mode: a committed transaction is in the WAL file
//! before the commit returns, so it survives a kill of the process (SIGKILL loses at most the rows
//! not yet flushed: at most one `flush_interval` or `flush_rows` worth). An OS crash or power loss
//! may lose the last transactions (the WAL is not fsynced on every commit), never corrupt the file.
//! [`PredictionLog::close`] (on SIGTERM, after the analysis thread has stopped) writes everything
//! queued and checkpoints the WAL into the main file.
//!
//! **One row per (request id, row).** Clients reuse `x-request-id`; when the same id and row are
//! logged twice the later prediction replaces the earlier one, label included (the new row has no
//! label and a new `id`, so it also counts as new for retention).
//!
//! **Retention**, on the writer thread every [`Options::retention_every`]: rows older than
//! [`Options::max_age`] (by prediction time), then the oldest rows (by `id`) above
//! [`Options::max_rows`], in chunks of 10,000 rows per transaction so appends are not starved.
//! The row count is read once at open and then kept in memory. Freed pages are reused by later
//! rows; the file does not shrink (run `VACUUM` offline to shrink it). A read held open in the
//! `sqlite3` shell does not block the writer, but keeps the WAL from being checkpointed: the
//! `-wal` file grows until the read ends.
//!
//! **Errors** never panic and never stop the writer: a failed write is logged (the first of each
//! kind at once, then at most once a minute), counted in `vigil_prediction_log_errors_total{op}`,
//! and its rows are counted as dropped; the next batch tries again.
//!
//! Schema (`PRAGMA user_version = 1`):
//! ```sql
//! CREATE TABLE predictions (
//!   id INTEGER PRIMARY KEY,
//!   request_id TEXT NOT NULL,
//!   row INTEGER NOT NULL,            -- index of the row in its batch
//!   version TEXT NOT NULL,           -- model version that answered
//!   time_ms INTEGER NOT NULL,        -- prediction time, Unix ms
//!   features TEXT NOT NULL,          -- JSON object {name: value}
//!   predictions TEXT NOT NULL,       -- JSON object {name: value}
//!   segments TEXT,                   -- JSON object {segment: value} or NULL
//!   label TEXT,                      -- JSON value of the ground truth, NULL until feedback
//!   labelled_ms INTEGER,             -- when the label arrived, Unix ms
//!   UNIQUE (request_id, row)
//! );
//! CREATE INDEX predictions_time ON predictions(time_ms);
//!
//! -- Feedback other than labels (created on open when missing; older vigils ignore it):
//! CREATE TABLE feedback (
//!   id INTEGER PRIMARY KEY,
//!   request_id TEXT NOT NULL,
//!   row INTEGER NOT NULL,
//!   time_ms INTEGER NOT NULL,        -- when it arrived, Unix ms
//!   comment TEXT,                    -- free-form, at most 4 KiB (checked by POST /feedback)
//!   score REAL                       -- a numeric score the labeller gave
//! );
//! CREATE INDEX feedback_row ON feedback(request_id, row);
//! ```
//! A comment's text goes through the `[privacy]` detectors ([`Options::redactor`]) on the writer
//! thread before it is stored. A comment is stored only for a logged prediction (like a label) and is appended, never
//! replaced: the export reads the latest comment and the latest score of each row. A prediction
//! replaced by a reused request id loses its comments with its label; retention by age deletes
//! comments older than `max_age` (by arrival), and comments of rows trimmed by `max_rows` stay
//! until then (they are never read without their row).
//! Values in the JSON columns are numbers, strings or `null` (missing, NaN or infinite). Example:
//! ```sql
//! SELECT version, count(*), avg(predictions ->> '$.score')
//!   FROM predictions WHERE label IS NOT NULL AND label ->> '$' = 1 GROUP BY version;
//! ```

use crate::telemetry;
use metrics::{Counter, Gauge, Histogram};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde_json::{Map, Value};
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::oneshot;

/// The file name in the state dir.
pub const FILE_NAME: &str = "predictions.db";

/// The schema version in `PRAGMA user_version`.
const SCHEMA_VERSION: i64 = 1;

/// Rows deleted per retention transaction.
const RETENTION_CHUNK: i64 = 10_000;

/// Messages the writer handles before it looks at the clock (interval flush, retention).
const MAX_MESSAGES_PER_TURN: usize = 1024;

/// After the first error of a kind, at most one log line per this interval.
const ERROR_LOG_EVERY: Duration = Duration::from_secs(60);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS predictions (
  id INTEGER PRIMARY KEY,
  request_id TEXT NOT NULL,
  row INTEGER NOT NULL,
  version TEXT NOT NULL,
  time_ms INTEGER NOT NULL,
  features TEXT NOT NULL,
  predictions TEXT NOT NULL,
  segments TEXT,
  label TEXT,
  labelled_ms INTEGER,
  UNIQUE (request_id, row)
);
CREATE INDEX IF NOT EXISTS predictions_time ON predictions(time_ms);
";

/// Run on every open (not only on a schema upgrade): a file from before comments gets the table.
const FEEDBACK_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS feedback (
  id INTEGER PRIMARY KEY,
  request_id TEXT NOT NULL,
  row INTEGER NOT NULL,
  time_ms INTEGER NOT NULL,
  comment TEXT,
  score REAL
);
CREATE INDEX IF NOT EXISTS feedback_row ON feedback(request_id, row);
";

const INSERT: &str = "INSERT OR IGNORE INTO predictions \
    (request_id, row, version, time_ms, features, predictions, segments) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
const DELETE_ONE: &str = "DELETE FROM predictions WHERE request_id = ?1 AND row = ?2";
const DELETE_FEEDBACK_ONE: &str = "DELETE FROM feedback WHERE request_id = ?1 AND row = ?2";
const SELECT_EXISTS: &str = "SELECT 1 FROM predictions WHERE request_id = ?1 AND row = ?2";
const INSERT_COMMENT: &str =
    "INSERT INTO feedback (request_id, row, time_ms, comment, score) VALUES (?1, ?2, ?3, ?4, ?5)";
const DELETE_OLD_FEEDBACK: &str =
    "DELETE FROM feedback WHERE id IN (SELECT id FROM feedback WHERE time_ms < ?1 LIMIT ?2)";
const SELECT_FOR_LABEL: &str =
    "SELECT id, version, time_ms, predictions, segments, label FROM predictions WHERE request_id = ?1 AND row = ?2";
const UPDATE_LABEL: &str = "UPDATE predictions SET label = ?1, labelled_ms = ?2 WHERE id = ?3";
const SELECT_ROWS: &str = "SELECT row, version, time_ms, features, predictions, segments, label, labelled_ms \
    FROM predictions WHERE request_id = ?1 ORDER BY row";
const DELETE_OLD: &str = "DELETE FROM predictions WHERE id IN (SELECT id FROM predictions WHERE time_ms < ?1 LIMIT ?2)";
const DELETE_OLDEST: &str = "DELETE FROM predictions WHERE id IN (SELECT id FROM predictions ORDER BY id LIMIT ?1)";

/// One value of a logged column: JSON `null`, a number or a string.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Missing,
    /// Written as a JSON number that parses back to the same `f64`; NaN and infinities as `null`.
    Num(f64),
    Text(Arc<str>),
}

/// The names of the logged columns, shared by every append until the reference changes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Columns {
    pub features: Vec<String>,
    pub predictions: Vec<String>,
    pub segments: Vec<String>,
}

/// One live record: one row of a batch. Its cells are indexed like the [`Columns`] it is appended
/// with; a name without a cell is written as `null`, a cell without a name is ignored.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedRow {
    pub request_id: Arc<str>,
    /// Index of the row in its batch.
    pub row: u32,
    /// The model version that answered.
    pub version: Arc<str>,
    /// Prediction time.
    pub time: SystemTime,
    pub features: Vec<Cell>,
    pub predictions: Vec<Cell>,
    pub segments: Vec<Cell>,
}

/// Ground truth for one logged row.
#[derive(Debug, Clone, PartialEq)]
pub struct Label {
    pub request_id: String,
    pub row: u32,
    /// Stored as JSON text in the `label` column (a scalar, by the feedback endpoint's contract).
    pub label: Value,
}

/// Feedback other than a label for one logged row: a free-form comment, a score, or both.
#[derive(Debug, Clone, PartialEq)]
pub struct Comment {
    pub request_id: String,
    pub row: u32,
    pub comment: Option<String>,
    /// Finite (the feedback endpoint checks).
    pub score: Option<f64>,
}

/// What became of one [`Label`].
#[derive(Debug, Clone, PartialEq)]
pub enum JoinOutcome {
    /// The prediction was found and now carries the label.
    Joined(JoinedRow),
    /// No prediction with that request id and row (never logged, dropped, or removed by retention).
    Unknown,
}

/// A prediction joined with its label.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct JoinedRow {
    pub request_id: String,
    pub row: u32,
    pub version: String,
    /// Prediction time, Unix ms.
    pub time_ms: i64,
    pub predictions: Map<String, Value>,
    /// Empty when the row was logged without segments.
    pub segments: Map<String, Value>,
    pub label: Value,
    /// The label this one replaced, if the row had one.
    pub replaced: Option<Value>,
}

/// One stored row, as [`LogHandle::rows`] reads it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StoredRow {
    pub request_id: String,
    pub row: u32,
    pub version: String,
    /// Prediction time, Unix ms.
    pub time_ms: i64,
    pub features: Map<String, Value>,
    pub predictions: Map<String, Value>,
    /// Empty when the row was logged without segments.
    pub segments: Map<String, Value>,
    pub label: Option<Value>,
    /// When the label arrived, Unix ms.
    pub labelled_ms: Option<i64>,
}

/// How the log batches, bounds and trims.
#[derive(Debug, Clone)]
pub struct Options {
    /// Longest time a row waits on the writer before its batch is written.
    pub flush_interval: Duration,
    /// Pending rows that make the writer write at once.
    pub flush_rows: usize,
    /// Rows queued or pending on the writer above which appends are dropped.
    pub queue_rows: usize,
    /// Rows whose prediction time is older than this are deleted.
    pub max_age: Option<Duration>,
    /// The oldest rows above this count are deleted.
    pub max_rows: Option<u64>,
    /// How often retention runs (and once right after open).
    pub retention_every: Duration,
    /// How long a write waits for a lock held by another connection (an operator's shell).
    pub busy_timeout: Duration,
    /// `[privacy]` detectors for free-text comments, run on the writer thread before a comment
    /// is stored. Rows arrive already redacted (by the analysis thread, `monitor::Monitor`).
    pub redactor: Option<Arc<crate::privacy::Redactor>>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            flush_interval: Duration::from_millis(200),
            flush_rows: 256,
            queue_rows: 100_000,
            max_age: Some(Duration::from_secs(7 * 24 * 3600)),
            max_rows: Some(10_000_000),
            retention_every: Duration::from_secs(60),
            busy_timeout: Duration::from_secs(5),
            redactor: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the prediction log {}: {cause}", path.display())]
    Open { path: PathBuf, cause: String },
    #[error("prediction log {op} failed: {source}")]
    Sqlite {
        op: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    #[error("the prediction log is closed")]
    Closed,
}

/// Counts since open, for tests and the admin API (the same numbers go to Prometheus).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogStats {
    /// Rows appended and not yet written (or dropped by a failed write).
    pub queued: usize,
    /// Rows written.
    pub written: u64,
    /// Rows dropped: queue full, failed write, or log closed.
    pub dropped: u64,
    /// Failed operations of any kind.
    pub errors: u64,
    /// Rows in the table, as the writer counts them.
    pub rows: u64,
}

/// The operations of `vigil_prediction_log_errors_total{op}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Open = 0,
    Write = 1,
    Label = 2,
    Retention = 3,
    Read = 4,
}

const OPS: [&str; 5] = ["open", "write", "label", "retention", "read"];

impl Op {
    fn name(self) -> &'static str {
        OPS[self as usize]
    }
}

struct Shared {
    path: PathBuf,
    queue_rows: usize,
    queued: AtomicUsize,
    written: AtomicU64,
    dropped: AtomicU64,
    errors: AtomicU64,
    rows: AtomicU64,
    m_written: Counter,
    m_dropped: Counter,
    m_errors: [Counter; 5],
    m_rows: Gauge,
    m_flush: Histogram,
}

impl Shared {
    fn new(path: PathBuf, queue_rows: usize) -> Shared {
        Shared {
            path,
            queue_rows,
            queued: AtomicUsize::new(0),
            written: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            rows: AtomicU64::new(0),
            m_written: metrics::counter!(telemetry::PREDICTION_LOG_ROWS_TOTAL),
            m_dropped: metrics::counter!(telemetry::PREDICTION_LOG_DROPPED),
            m_errors: OPS.map(|op| metrics::counter!(telemetry::PREDICTION_LOG_ERRORS, "op" => op)),
            m_rows: metrics::gauge!(telemetry::PREDICTION_LOG_ROWS),
            m_flush: metrics::histogram!(telemetry::PREDICTION_LOG_FLUSH_DURATION),
        }
    }

    fn drop_rows(&self, n: usize) {
        self.dropped.fetch_add(n as u64, Ordering::Relaxed);
        self.m_dropped.increment(n as u64);
    }

    fn count_error(&self, op: Op) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        self.m_errors[op as usize].increment(1);
    }

    fn set_rows(&self, rows: u64) {
        self.rows.store(rows, Ordering::Relaxed);
        self.m_rows.set(rows as f64);
    }
}

enum Msg {
    Append(Arc<Columns>, Vec<LoggedRow>),
    Label(Vec<Label>, oneshot::Sender<Result<Vec<JoinOutcome>, StoreError>>),
    Rows(String, oneshot::Sender<Result<Vec<StoredRow>, StoreError>>),
    Comment(Vec<Comment>, oneshot::Sender<Result<Vec<bool>, StoreError>>),
    Flush(oneshot::Sender<Result<(), StoreError>>),
    Close,
}

/// A cheap, cloneable handle on the log: append, label, look up. Every call returns at once.
#[derive(Clone)]
pub struct LogHandle {
    tx: mpsc::Sender<Msg>,
    shared: Arc<Shared>,
}

/// The open log: owns the writer thread. Derefs to [`LogHandle`] for appends and lookups.
pub struct PredictionLog {
    handle: LogHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Deref for PredictionLog {
    type Target = LogHandle;

    fn deref(&self) -> &LogHandle {
        &self.handle
    }
}

impl PredictionLog {
    /// Opens (or creates) `predictions.db` in `dir` and starts the writer thread. The error names
    /// the file and the cause (missing or read-only dir, a file from a newer vigil, ...).
    pub fn open(dir: &Path, options: Options) -> Result<PredictionLog, StoreError> {
        let path = dir.join(FILE_NAME);
        let shared = Arc::new(Shared::new(path.clone(), options.queue_rows));
        let fail = |cause: String| {
            shared.count_error(Op::Open);
            StoreError::Open { path: path.clone(), cause }
        };
        let (conn, rows) = open_db(&path, &options).map_err(&fail)?;
        shared.set_rows(rows);
        let (tx, rx) = mpsc::channel();
        let writer = Writer::new(conn, rx, shared.clone(), options, rows);
        let thread = crate::background::spawn("vigil-predlog", move || writer.run())
            .map_err(|e| fail(format!("cannot start the writer thread: {e}")))?;
        Ok(PredictionLog { handle: LogHandle { tx, shared }, thread: Some(thread) })
    }

    /// A handle for another owner (the analysis thread, the feedback endpoint). It does not keep
    /// the writer alive: after `close` (or drop) of this log, its appends are dropped and counted
    /// and its requests answer [`StoreError::Closed`].
    pub fn handle(&self) -> LogHandle {
        self.handle.clone()
    }

    /// Writes everything queued, checkpoints the WAL into the database file and stops the writer.
    /// Blocking: call it off the runtime (`spawn_blocking`), after the analysis thread has stopped.
    pub fn close(mut self) {
        let _ = self.handle.tx.send(Msg::Close);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for PredictionLog {
    /// Without `close`: tells the writer to finish what is queued, and does not wait for it.
    fn drop(&mut self) {
        if self.thread.take().is_some() {
            let _ = self.handle.tx.send(Msg::Close);
        }
    }
}

impl LogHandle {
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// Queues rows for the writer. Never blocks: above [`Options::queue_rows`] queued rows, the
    /// whole append is dropped and counted.
    pub fn append(&self, columns: &Arc<Columns>, rows: Vec<LoggedRow>) {
        let n = rows.len();
        if n == 0 {
            return;
        }
        let s = &self.shared;
        let before = s.queued.fetch_add(n, Ordering::Relaxed);
        if before + n > s.queue_rows {
            s.queued.fetch_sub(n, Ordering::Relaxed);
            s.drop_rows(n);
            return;
        }
        if self.tx.send(Msg::Append(columns.clone(), rows)).is_err() {
            s.queued.fetch_sub(n, Ordering::Relaxed);
            s.drop_rows(n);
        }
    }

    /// Joins labels to their predictions, in order, in one transaction, after writing the rows
    /// pending at the time of the call (so a label for a just-logged prediction finds it).
    pub fn label(&self, labels: Vec<Label>) -> oneshot::Receiver<Result<Vec<JoinOutcome>, StoreError>> {
        let (reply, rx) = oneshot::channel();
        if let Err(mpsc::SendError(Msg::Label(_, reply))) = self.tx.send(Msg::Label(labels, reply)) {
            let _ = reply.send(Err(StoreError::Closed));
        }
        rx
    }

    /// Stores comments and scores for logged predictions, in order, in one transaction, after
    /// writing the rows pending at the time of the call. Answers, per comment, whether its
    /// prediction was found (and the comment stored); a comment for an unknown row is not kept.
    pub fn comment(&self, comments: Vec<Comment>) -> oneshot::Receiver<Result<Vec<bool>, StoreError>> {
        let (reply, rx) = oneshot::channel();
        if let Err(mpsc::SendError(Msg::Comment(_, reply))) = self.tx.send(Msg::Comment(comments, reply)) {
            let _ = reply.send(Err(StoreError::Closed));
        }
        rx
    }

    /// Every stored row of a request, by row index.
    pub fn rows(&self, request_id: &str) -> oneshot::Receiver<Result<Vec<StoredRow>, StoreError>> {
        let (reply, rx) = oneshot::channel();
        if let Err(mpsc::SendError(Msg::Rows(_, reply))) = self.tx.send(Msg::Rows(request_id.to_owned(), reply)) {
            let _ = reply.send(Err(StoreError::Closed));
        }
        rx
    }

    /// Writes the pending rows now; answers when they are committed (or the write failed).
    pub fn flush(&self) -> oneshot::Receiver<Result<(), StoreError>> {
        let (reply, rx) = oneshot::channel();
        if let Err(mpsc::SendError(Msg::Flush(reply))) = self.tx.send(Msg::Flush(reply)) {
            let _ = reply.send(Err(StoreError::Closed));
        }
        rx
    }

    pub fn stats(&self) -> LogStats {
        let s = &self.shared;
        LogStats {
            queued: s.queued.load(Ordering::Relaxed),
            written: s.written.load(Ordering::Relaxed),
            dropped: s.dropped.load(Ordering::Relaxed),
            errors: s.errors.load(Ordering::Relaxed),
            rows: s.rows.load(Ordering::Relaxed),
        }
    }
}

/// Opens the database, sets WAL mode, creates or checks the schema, counts the rows.
fn open_db(path: &Path, options: &Options) -> Result<(Connection, u64), String> {
    let conn = Connection::open(path).map_err(|e| e.to_string())?;
    let setup = || -> rusqlite::Result<Result<u64, String>> {
        conn.busy_timeout(options.busy_timeout)?;
        if conn.is_readonly(rusqlite::MAIN_DB)? {
            return Ok(Err("the file is read-only".into()));
        }
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Ok(Err(format!("cannot switch to WAL mode (journal mode is {mode})")));
        }
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            return Ok(Err(format!(
                "schema version {version} was written by a newer vigil (this one knows {SCHEMA_VERSION})"
            )));
        }
        if version < SCHEMA_VERSION {
            conn.execute_batch(&format!("BEGIN; {SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"))?;
        }
        conn.execute_batch(FEEDBACK_SCHEMA)?;
        let rows: i64 = conn.query_row("SELECT count(*) FROM predictions", [], |r| r.get(0))?;
        Ok(Ok(rows as u64))
    };
    match setup() {
        Ok(Ok(rows)) => Ok((conn, rows)),
        Ok(Err(cause)) => Err(cause),
        Err(e) => Err(e.to_string()),
    }
}

fn unix_ms(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis().min(i64::MAX as u128) as i64,
        Err(e) => -(e.duration().as_millis().min(i64::MAX as u128) as i64),
    }
}

/// Where retention is: between passes, deleting by age, or trimming to the row cap.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Retention {
    Idle,
    Age {
        cutoff_ms: i64,
    },
    /// Comments older than the same cutoff (by arrival).
    FeedbackAge {
        cutoff_ms: i64,
    },
    Count,
}

/// First error of each kind at once, then at most one line per [`ERROR_LOG_EVERY`].
#[derive(Default)]
struct ErrorLog {
    last: [Option<Instant>; 5],
    suppressed: [u64; 5],
}

impl ErrorLog {
    fn report(&mut self, shared: &Shared, op: Op, error: &dyn std::fmt::Display) {
        shared.count_error(op);
        let i = op as usize;
        let due = self.last[i].is_none_or(|t| t.elapsed() >= ERROR_LOG_EVERY);
        if due {
            let suppressed = std::mem::take(&mut self.suppressed[i]);
            tracing::error!(
                op = op.name(),
                path = %shared.path.display(),
                suppressed,
                "prediction log {} failed: {error}",
                op.name()
            );
            self.last[i] = Some(Instant::now());
        } else {
            self.suppressed[i] += 1;
        }
    }
}

/// The `"name":` prefixes of the last columns seen (they change only with the reference).
type Keys = [Vec<Box<[u8]>>; 3];

/// The writer's JSON: the keys of the last columns seen, and reusable buffers.
#[derive(Default)]
struct Json {
    keys: Option<(Arc<Columns>, Keys)>,
    features: Vec<u8>,
    predictions: Vec<u8>,
    segments: Vec<u8>,
}

fn keys_for<'a>(cache: &'a mut Option<(Arc<Columns>, Keys)>, columns: &Arc<Columns>) -> &'a Keys {
    let stale = !matches!(cache, Some((c, _)) if Arc::ptr_eq(c, columns));
    if stale {
        let prefixes = |names: &[String]| -> Vec<Box<[u8]>> {
            names
                .iter()
                .map(|n| {
                    let mut k = serde_json::to_vec(n).expect("a string serializes");
                    k.push(b':');
                    k.into_boxed_slice()
                })
                .collect()
        };
        let keys = [prefixes(&columns.features), prefixes(&columns.predictions), prefixes(&columns.segments)];
        *cache = Some((columns.clone(), keys));
    }
    &cache.as_ref().expect("set above").1
}

fn write_object(buf: &mut Vec<u8>, keys: &[Box<[u8]>], cells: &[Cell]) {
    buf.clear();
    buf.push(b'{');
    for (i, key) in keys.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        buf.extend_from_slice(key);
        match cells.get(i) {
            Some(Cell::Num(x)) if x.is_finite() => {
                serde_json::to_writer(&mut *buf, x).expect("writing to a Vec cannot fail");
            }
            Some(Cell::Text(s)) => serde_json::to_writer(&mut *buf, &**s).expect("writing to a Vec cannot fail"),
            _ => buf.extend_from_slice(b"null"),
        }
    }
    buf.push(b'}');
}

fn as_str(buf: &[u8]) -> &str {
    std::str::from_utf8(buf).expect("serde_json writes UTF-8")
}

fn parse_object(text: Option<&str>) -> Map<String, Value> {
    // A value an operator broke by hand reads as empty rather than failing the whole request.
    text.and_then(|t| serde_json::from_str(t).ok()).unwrap_or_default()
}

fn parse_value(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

struct Writer {
    conn: Connection,
    rx: mpsc::Receiver<Msg>,
    shared: Arc<Shared>,
    options: Options,
    pending: Vec<(Arc<Columns>, Vec<LoggedRow>)>,
    pending_rows: usize,
    pending_since: Option<Instant>,
    rows: u64,
    json: Json,
    retention: Retention,
    next_retention: Instant,
    errors: ErrorLog,
}

impl Writer {
    fn new(conn: Connection, rx: mpsc::Receiver<Msg>, shared: Arc<Shared>, options: Options, rows: u64) -> Writer {
        conn.set_prepared_statement_cache_capacity(16);
        Writer {
            conn,
            rx,
            shared,
            options,
            pending: Vec::new(),
            pending_rows: 0,
            pending_since: None,
            rows,
            json: Json::default(),
            retention: Retention::Idle,
            next_retention: Instant::now(),
            errors: ErrorLog::default(),
        }
    }

    fn run(mut self) {
        loop {
            let timeout = if self.retention != Retention::Idle {
                Duration::ZERO
            } else {
                let mut deadline = self.next_retention;
                if let Some(since) = self.pending_since {
                    deadline = deadline.min(since + self.options.flush_interval);
                }
                deadline.saturating_duration_since(Instant::now())
            };
            let first = match self.rx.recv_timeout(timeout) {
                Ok(msg) => Some(msg),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return self.finish(),
            };
            // Take whatever else is there (a burst becomes one transaction), but not forever: a
            // queue that never empties must not hold off the interval flush or retention.
            let mut next = first;
            let mut taken = 0;
            while let Some(msg) = next {
                if matches!(msg, Msg::Close) {
                    return self.finish();
                }
                self.handle(msg);
                taken += 1;
                if taken == MAX_MESSAGES_PER_TURN {
                    break;
                }
                next = match self.rx.try_recv() {
                    Ok(msg) => Some(msg),
                    Err(TryRecvError::Empty) => None,
                    Err(TryRecvError::Disconnected) => return self.finish(),
                };
            }
            if self.pending_since.is_some_and(|t| t.elapsed() >= self.options.flush_interval) {
                let _ = self.flush();
            }
            self.retention_step();
        }
    }

    /// Handles what is still queued, writes it, and checkpoints the WAL into the main file.
    fn finish(mut self) {
        loop {
            match self.rx.try_recv() {
                Ok(Msg::Close) => {}
                Ok(msg) => self.handle(msg),
                Err(_) => break,
            }
        }
        let _ = self.flush();
        let checkpoint = self.conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        if let Err(e) = checkpoint {
            self.errors.report(&self.shared, Op::Write, &format_args!("checkpoint: {e}"));
        }
    }

    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Append(columns, rows) => {
                self.pending_rows += rows.len();
                self.pending.push((columns, rows));
                self.pending_since.get_or_insert_with(Instant::now);
                if self.pending_rows >= self.options.flush_rows {
                    let _ = self.flush();
                }
            }
            Msg::Label(labels, reply) => {
                let _ = self.flush();
                let result = self.apply_labels(labels).map_err(|e| {
                    self.errors.report(&self.shared, Op::Label, &e);
                    StoreError::Sqlite { op: "label", source: e }
                });
                let _ = reply.send(result);
            }
            Msg::Rows(request_id, reply) => {
                let _ = self.flush();
                let result = self.read_rows(&request_id).map_err(|e| {
                    self.errors.report(&self.shared, Op::Read, &e);
                    StoreError::Sqlite { op: "read", source: e }
                });
                let _ = reply.send(result);
            }
            Msg::Comment(comments, reply) => {
                let _ = self.flush();
                let result = self.apply_comments(comments).map_err(|e| {
                    self.errors.report(&self.shared, Op::Label, &e);
                    StoreError::Sqlite { op: "comment", source: e }
                });
                let _ = reply.send(result);
            }
            Msg::Flush(reply) => {
                let _ = reply.send(self.flush());
            }
            Msg::Close => {}
        }
    }

    /// Writes the pending rows in one transaction. On failure they are dropped and counted.
    fn flush(&mut self) -> Result<(), StoreError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.pending);
        let n = std::mem::take(&mut self.pending_rows);
        self.pending_since = None;
        let started = Instant::now();
        let result = write_batch(&mut self.conn, &mut self.json, &batch);
        self.shared.queued.fetch_sub(n, Ordering::Relaxed);
        match result {
            Ok(added) => {
                self.shared.m_flush.record(started.elapsed().as_secs_f64());
                self.shared.written.fetch_add(n as u64, Ordering::Relaxed);
                self.shared.m_written.increment(n as u64);
                self.rows += added;
                self.shared.set_rows(self.rows);
                // Reuse the outer vector's allocation for the next batch.
                let mut batch = batch;
                batch.clear();
                self.pending = batch;
                Ok(())
            }
            Err(e) => {
                self.shared.drop_rows(n);
                self.errors.report(&self.shared, Op::Write, &e);
                Err(StoreError::Sqlite { op: "write", source: e })
            }
        }
    }

    fn apply_labels(&mut self, labels: Vec<Label>) -> rusqlite::Result<Vec<JoinOutcome>> {
        let now_ms = unix_ms(SystemTime::now());
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut out = Vec::with_capacity(labels.len());
        {
            let mut select = tx.prepare_cached(SELECT_FOR_LABEL)?;
            let mut update = tx.prepare_cached(UPDATE_LABEL)?;
            for l in labels {
                let found = select
                    .query_row(params![l.request_id, l.row], |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, i64>(2)?,
                            r.get::<_, String>(3)?,
                            r.get::<_, Option<String>>(4)?,
                            r.get::<_, Option<String>>(5)?,
                        ))
                    })
                    .optional()?;
                let Some((id, version, time_ms, predictions, segments, earlier)) = found else {
                    out.push(JoinOutcome::Unknown);
                    continue;
                };
                let text = l.label.to_string();
                update.execute(params![text, now_ms, id])?;
                out.push(JoinOutcome::Joined(JoinedRow {
                    request_id: l.request_id,
                    row: l.row,
                    version,
                    time_ms,
                    predictions: parse_object(Some(&predictions)),
                    segments: parse_object(segments.as_deref()),
                    label: l.label,
                    replaced: earlier.as_deref().map(parse_value),
                }));
            }
        }
        tx.commit()?;
        Ok(out)
    }

    fn apply_comments(&mut self, comments: Vec<Comment>) -> rusqlite::Result<Vec<bool>> {
        let now_ms = unix_ms(SystemTime::now());
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut out = Vec::with_capacity(comments.len());
        {
            let mut exists = tx.prepare_cached(SELECT_EXISTS)?;
            let mut insert = tx.prepare_cached(INSERT_COMMENT)?;
            for c in comments {
                let found = exists.exists(params![c.request_id, c.row])?;
                if found {
                    let comment = match (&self.options.redactor, c.comment.as_deref()) {
                        (Some(r), Some(text)) => Some(r.scrub_text(text).into_owned()),
                        (_, text) => text.map(str::to_owned),
                    };
                    insert.execute(params![c.request_id, c.row, now_ms, comment, c.score])?;
                }
                out.push(found);
            }
        }
        tx.commit()?;
        Ok(out)
    }

    fn read_rows(&mut self, request_id: &str) -> rusqlite::Result<Vec<StoredRow>> {
        let mut select = self.conn.prepare_cached(SELECT_ROWS)?;
        let rows = select.query_map([request_id], |r| {
            Ok(StoredRow {
                request_id: request_id.to_owned(),
                row: r.get(0)?,
                version: r.get(1)?,
                time_ms: r.get(2)?,
                features: parse_object(r.get::<_, Option<String>>(3)?.as_deref()),
                predictions: parse_object(r.get::<_, Option<String>>(4)?.as_deref()),
                segments: parse_object(r.get::<_, Option<String>>(5)?.as_deref()),
                label: r.get::<_, Option<String>>(6)?.as_deref().map(parse_value),
                labelled_ms: r.get(7)?,
            })
        })?;
        rows.collect()
    }

    /// One step of retention: start a pass when due, else delete one chunk of the current pass.
    fn retention_step(&mut self) {
        if self.retention == Retention::Idle {
            let now = Instant::now();
            if now < self.next_retention {
                return;
            }
            self.next_retention = now + self.options.retention_every;
            self.retention = match self.options.max_age {
                Some(age) => {
                    let age_ms = age.as_millis().min(i64::MAX as u128) as i64;
                    Retention::Age { cutoff_ms: unix_ms(SystemTime::now()).saturating_sub(age_ms) }
                }
                None => Retention::Count,
            };
        }
        match self.retention {
            Retention::Idle => {}
            Retention::Age { cutoff_ms } => match self.conn.execute(DELETE_OLD, params![cutoff_ms, RETENTION_CHUNK]) {
                Ok(n) => {
                    self.rows = self.rows.saturating_sub(n as u64);
                    if (n as i64) < RETENTION_CHUNK {
                        self.retention = Retention::FeedbackAge { cutoff_ms };
                    }
                }
                Err(e) => {
                    self.errors.report(&self.shared, Op::Retention, &e);
                    self.retention = Retention::Idle;
                }
            },
            Retention::FeedbackAge { cutoff_ms } => {
                match self.conn.execute(DELETE_OLD_FEEDBACK, params![cutoff_ms, RETENTION_CHUNK]) {
                    Ok(n) if (n as i64) < RETENTION_CHUNK => self.retention = Retention::Count,
                    Ok(_) => {}
                    Err(e) => {
                        self.errors.report(&self.shared, Op::Retention, &e);
                        self.retention = Retention::Count;
                    }
                }
            }
            Retention::Count => {
                let excess = match self.options.max_rows {
                    Some(max) => self.rows.saturating_sub(max),
                    None => 0,
                };
                if excess == 0 {
                    self.retention = Retention::Idle;
                } else {
                    let chunk = (excess as i64).min(RETENTION_CHUNK);
                    match self.conn.execute(DELETE_OLDEST, [chunk]) {
                        Ok(0) => {
                            // The count is off (rows deleted by hand): count again.
                            self.retention = Retention::Idle;
                            match self.conn.query_row("SELECT count(*) FROM predictions", [], |r| r.get::<_, i64>(0)) {
                                Ok(rows) => self.rows = rows as u64,
                                Err(e) => self.errors.report(&self.shared, Op::Retention, &e),
                            }
                        }
                        Ok(n) => self.rows = self.rows.saturating_sub(n as u64),
                        Err(e) => {
                            self.errors.report(&self.shared, Op::Retention, &e);
                            self.retention = Retention::Idle;
                        }
                    }
                }
            }
        }
        self.shared.set_rows(self.rows);
    }
}

/// Inserts a batch in one transaction; returns how many rows are new (not replacements).
fn write_batch(
    conn: &mut Connection,
    json: &mut Json,
    batch: &[(Arc<Columns>, Vec<LoggedRow>)],
) -> rusqlite::Result<u64> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut added = 0u64;
    {
        let mut insert = tx.prepare_cached(INSERT)?;
        let mut delete = tx.prepare_cached(DELETE_ONE)?;
        let mut delete_feedback = tx.prepare_cached(DELETE_FEEDBACK_ONE)?;
        let Json { keys, features, predictions, segments: segs } = json;
        for (columns, rows) in batch {
            let [fk, pk, sk] = keys_for(keys, columns);
            for r in rows {
                write_object(features, fk, &r.features);
                write_object(predictions, pk, &r.predictions);
                let segments = if sk.is_empty() {
                    None
                } else {
                    write_object(segs, sk, &r.segments);
                    Some(as_str(segs))
                };
                let values = params![
                    &*r.request_id,
                    r.row,
                    &*r.version,
                    unix_ms(r.time),
                    as_str(features),
                    as_str(predictions),
                    segments
                ];
                if insert.execute(values)? == 1 {
                    added += 1;
                } else {
                    // The same request id and row again: the later prediction replaces the earlier.
                    delete.execute(params![&*r.request_id, r.row])?;
                    delete_feedback.execute(params![&*r.request_id, r.row])?;
                    insert.execute(values)?;
                }
            }
        }
    }
    tx.commit()?;
    Ok(added)
}

#[cfg(test)]
mod tests;
