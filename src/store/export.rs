//! The prediction log read back for retraining: rows in time order, filtered, written as JSON
//! lines, CSV or Parquet to any `io::Write`, one page of rows at a time.
//!
//! **Already redacted.** The rows and comments it reads were redacted before they were written
//! (`privacy::Redactor` on the analysis thread, comments on the log's writer thread): an export
//! holds hashes, masks and buckets where `[privacy]` says so, and nothing here redacts again.
//!
//! Owns: a read-only SQLite connection of its own to `predictions.db` (WAL lets it read while the
//! `vigil-predlog` thread writes), the export's columns and the three writers.
//! May not touch: the writer thread's connection, routes, sockets. Everything here blocks: run it
//! off the runtime (`spawn_blocking`), with a writer that hands bytes on as they come.
//!
//! **Pages, not one long read.** [`Reader`] reads [`PAGE_ROWS`] rows per query, in
//! `(time_ms, id)` order, each page starting after the last row of the one before (keyset
//! pagination over the `predictions_time` index). Each page is its own short read transaction, so
//! a ten-million-row export never holds a snapshot that keeps the WAL from being checkpointed, and
//! memory holds one page (one Parquet row group). The price: rows written or deleted while the
//! export runs may or may not be in it, as in any paginated read.
//!
//! **Columns.** Every format has the same columns, in this order:
//! `request_id, row, version, time` (RFC 3339, ms, UTC), the features, the predictions, `label`,
//! `labelled_at` (RFC 3339 or null), and `comment, score` when the log holds any comment or score
//! (the latest of each per row). Features and predictions are flattened to top-level columns
//! under their own names, in the order the log wrote them. A name that clashes with one already
//! taken gets a prefix: `feature.` for a feature named like a fixed column (`feature.version`),
//! `prediction.` for a prediction named like a fixed column or a feature (`prediction.age`).
//! CSV and Parquet need the column set before the first row: it is the union of the names in the
//! first page ([`PAGE_ROWS`] rows). A name first seen later is left out of CSV and Parquet (the
//! reference changed mid-export: export the two spans separately); JSON lines keep it.
//!
//! **Values.** JSON lines: numbers, strings, booleans as logged, `null` for missing. CSV: the same
//! as text, empty for missing. Parquet: each feature, prediction and label column is DOUBLE when
//! the first page holds only numbers (booleans as 1 and 0) in it, else UTF8 BYTE_ARRAY (numbers as
//! their JSON text), all optional; a later string that is no number reads as null in a DOUBLE
//! column. `row` is INT64; `time` and `labelled_at` are INT64 TIMESTAMP(MILLIS, UTC); `score` is
//! DOUBLE. Row groups of [`ROW_GROUP_ROWS`] rows, Snappy-compressed, each written to the output as
//! soon as it is complete.

use parquet::basic::{Compression, LogicalType, Repetition, TimeUnit, Type as Physical};
use parquet::data_type::{ByteArray, ByteArrayType, DoubleType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::{Type, TypePtr};
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OpenFlags};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

/// Rows read per query; the first page also decides the CSV and Parquet columns.
pub const PAGE_ROWS: usize = 10_000;

/// Rows per Parquet row group.
pub const ROW_GROUP_ROWS: usize = 10_000;

/// Columns every export has (and `comment`, `score` when there are comments), reserved: a
/// feature or prediction of the same name gets a prefix.
const FIXED: [&str; 8] = ["request_id", "row", "version", "time", "label", "labelled_at", "comment", "score"];

/// The latest time RFC 3339 can write with a four-digit year (9999-12-31T23:59:59.999Z), in ms.
const MAX_TIME_MS: i64 = 253_402_300_799_999;

/// The output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Jsonl,
    Csv,
    Parquet,
}

impl Format {
    /// `jsonl`, `csv` or `parquet`.
    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "jsonl" => Some(Format::Jsonl),
            "csv" => Some(Format::Csv),
            "parquet" => Some(Format::Parquet),
            _ => None,
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Format::Jsonl => "jsonl",
            Format::Csv => "csv",
            Format::Parquet => "parquet",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Jsonl => "application/x-ndjson",
            Format::Csv => "text/csv; charset=utf-8",
            Format::Parquet => "application/vnd.apache.parquet",
        }
    }
}

/// Which rows: `since <= time < until` (Unix ms), with or without a label, of one version, at
/// most `limit` of them. `None` is no condition.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    /// `Some(true)`: only labelled rows; `Some(false)`: only rows still without a label.
    pub labelled: Option<bool>,
    pub version: Option<String>,
    pub limit: Option<u64>,
}

/// One exported row: a logged prediction with its label and latest comment and score.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportRow {
    pub request_id: String,
    pub row: i64,
    pub version: String,
    /// Prediction time, Unix ms.
    pub time_ms: i64,
    /// In the order the log wrote them (the reference's).
    pub features: Vec<(String, Value)>,
    pub predictions: Vec<(String, Value)>,
    pub label: Option<Value>,
    /// When the label arrived, Unix ms.
    pub labelled_ms: Option<i64>,
    pub comment: Option<String>,
    pub score: Option<f64>,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("cannot open the prediction log {} for reading: {cause}", path.display())]
    Open { path: PathBuf, cause: String },
    #[error("reading the prediction log failed: {0}")]
    Read(#[from] rusqlite::Error),
    #[error("writing the export failed: {0}")]
    Write(#[from] io::Error),
    #[error("writing Parquet failed: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
}

impl ExportError {
    /// The output went away (the client closed the connection): nothing to report.
    pub fn is_disconnect(&self) -> bool {
        match self {
            ExportError::Write(e) => e.kind() == io::ErrorKind::BrokenPipe,
            ExportError::Parquet(parquet::errors::ParquetError::External(e)) => {
                e.downcast_ref::<io::Error>().is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
            }
            _ => false,
        }
    }
}

/// Where the writers get their rows: pages in order, an empty page at the end.
pub trait Source {
    /// Whether the export has `comment` and `score` columns.
    fn feedback(&self) -> bool;
    fn next_page(&mut self) -> Result<Vec<ExportRow>, ExportError>;
}

/// Pages read from `predictions.db` over a read-only connection of its own.
pub struct Reader {
    conn: Connection,
    sql: String,
    filter: Filter,
    /// The `(time_ms, id)` of the last row read; the next page starts after it.
    after: (i64, i64),
    remaining: u64,
    feedback: bool,
    /// The first page, read by `open` so that a failing query fails before anything is sent.
    first: Option<Vec<ExportRow>>,
}

impl Reader {
    /// Opens `path` read-only and reads the first page.
    pub fn open(path: &Path, filter: Filter) -> Result<Reader, ExportError> {
        let fail = |cause: String| ExportError::Open { path: path.to_owned(), cause };
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(|e| fail(e.to_string()))?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(|e| fail(e.to_string()))?;
        // The writer creates the table on open; a file from before comments has none.
        let table: bool = conn
            .query_row("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'feedback'", [], |r| {
                r.get::<_, i64>(0)
            })
            .map_err(|e| fail(e.to_string()))?
            > 0;
        let feedback = table && conn.query_row("SELECT EXISTS (SELECT 1 FROM feedback)", [], |r| r.get(0))?;
        let mut sql = String::from(
            "SELECT p.id, p.request_id, p.row, p.version, p.time_ms, p.features, p.predictions, p.label, p.labelled_ms",
        );
        if feedback {
            for col in ["comment", "score"] {
                let _ = write!(
                    sql,
                    ", (SELECT f.{col} FROM feedback f WHERE f.request_id = p.request_id AND f.row = p.row \
                     AND f.{col} IS NOT NULL ORDER BY f.id DESC LIMIT 1)"
                );
            }
        }
        sql.push_str(
            " FROM predictions p WHERE (p.time_ms, p.id) > (?1, ?2) AND p.time_ms < ?3 \
             AND (?4 IS NULL OR p.version = ?4)",
        );
        match filter.labelled {
            Some(true) => sql.push_str(" AND p.label IS NOT NULL"),
            Some(false) => sql.push_str(" AND p.label IS NULL"),
            None => {}
        }
        sql.push_str(" ORDER BY p.time_ms, p.id LIMIT ?5");
        let mut reader = Reader {
            conn,
            sql,
            after: (filter.since_ms.unwrap_or(i64::MIN), i64::MIN),
            remaining: filter.limit.unwrap_or(u64::MAX),
            filter,
            feedback,
            first: None,
        };
        reader.first = Some(reader.read_page()?);
        Ok(reader)
    }

    fn read_page(&mut self) -> Result<Vec<ExportRow>, ExportError> {
        let n = self.remaining.min(PAGE_ROWS as u64);
        if n == 0 {
            return Ok(Vec::new());
        }
        let mut stmt = self.conn.prepare_cached(&self.sql)?;
        let params = [
            SqlValue::Integer(self.after.0),
            SqlValue::Integer(self.after.1),
            SqlValue::Integer(self.filter.until_ms.unwrap_or(i64::MAX)),
            self.filter.version.clone().map_or(SqlValue::Null, SqlValue::Text),
            SqlValue::Integer(n as i64),
        ];
        let feedback = self.feedback;
        let mut last = self.after;
        let rows = stmt.query_map(rusqlite::params_from_iter(params), |r| {
            last = (r.get(4)?, r.get(0)?);
            Ok(ExportRow {
                request_id: r.get(1)?,
                row: r.get(2)?,
                version: r.get(3)?,
                time_ms: r.get(4)?,
                features: ordered(r.get::<_, Option<String>>(5)?.as_deref()),
                predictions: ordered(r.get::<_, Option<String>>(6)?.as_deref()),
                label: r.get::<_, Option<String>>(7)?.as_deref().map(label_value),
                labelled_ms: r.get(8)?,
                comment: if feedback { r.get(9)? } else { None },
                score: if feedback { r.get(10)? } else { None },
            })
        })?;
        let page = rows.collect::<Result<Vec<_>, _>>()?;
        self.after = last;
        self.remaining -= page.len() as u64;
        if (page.len() as u64) < n {
            self.remaining = 0;
        }
        Ok(page)
    }
}

impl Source for Reader {
    fn feedback(&self) -> bool {
        self.feedback
    }

    fn next_page(&mut self) -> Result<Vec<ExportRow>, ExportError> {
        match self.first.take() {
            Some(page) => Ok(page),
            None => self.read_page(),
        }
    }
}

/// A JSON object column as `(name, value)` pairs in the stored order. A value an operator broke
/// by hand reads as empty rather than failing the export.
fn ordered(text: Option<&str>) -> Vec<(String, Value)> {
    struct Ordered(Vec<(String, Value)>);
    impl<'de> serde::Deserialize<'de> for Ordered {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> serde::de::Visitor<'de> for V {
                type Value = Ordered;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("a JSON object")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Ordered, A::Error> {
                    let mut out = Vec::new();
                    while let Some((k, v)) = map.next_entry::<String, Value>()? {
                        out.push((k, v));
                    }
                    Ok(Ordered(out))
                }
            }
            d.deserialize_map(V)
        }
    }
    text.and_then(|t| serde_json::from_str::<Ordered>(t).ok()).map(|o| o.0).unwrap_or_default()
}

fn label_value(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

/// Unix ms as RFC 3339 with milliseconds, UTC; clamped to what a four-digit year can say.
pub fn rfc3339_ms(ms: i64) -> String {
    let ms = ms.clamp(0, MAX_TIME_MS) as u64;
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// Parses a time bound: Unix ms (digits), RFC 3339 (`2024-05-01T12:00:00Z`, fractions and
/// `±hh:mm` offsets allowed) or a date (`2024-05-01`, midnight UTC). None when it is neither.
pub fn parse_time(s: &str) -> Option<i64> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().ok();
    }
    if !s.is_ascii() {
        return None;
    }
    let b = s.as_bytes();
    if b.len() == 10 {
        return parse_time(&format!("{s}T00:00:00Z"));
    }
    if b.len() < 20 || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let (base, offset_ms) = match b[b.len() - 1] {
        b'Z' | b'z' => (&s[..s.len() - 1], 0i64),
        _ => {
            let tail = &b[b.len() - 6..];
            let sign = match tail[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let digit = |i: usize| tail[i].is_ascii_digit().then(|| (tail[i] - b'0') as i64);
            if tail[3] != b':' {
                return None;
            }
            let (h, m) = (digit(1)? * 10 + digit(2)?, digit(4)? * 10 + digit(5)?);
            if h > 23 || m > 59 {
                return None;
            }
            (&s[..s.len() - 6], sign * (h * 60 + m) * 60_000)
        }
    };
    let mut base = base.to_owned();
    base.replace_range(10..11, "T");
    let t = humantime::parse_rfc3339_weak(&base).ok()?;
    let ms = t.duration_since(UNIX_EPOCH).ok()?.as_millis() as i64;
    Some(ms - offset_ms)
}

/// Writes every row of `source` to `out` in `format`; returns how many rows.
pub fn write<W: Write + Send>(format: Format, source: &mut dyn Source, out: W) -> Result<u64, ExportError> {
    let first = source.next_page()?;
    let layout = Layout::from_rows(&first, source.feedback());
    match format {
        Format::Jsonl => write_jsonl(&layout, first, source, out),
        Format::Csv => write_csv(&layout, first, source, out),
        Format::Parquet => write_parquet(&layout, first, source, out),
    }
}

/// The kind of a feature, prediction or label column, from the values of the first page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Only numbers, booleans or nulls.
    Num,
    Text,
}

fn kind_of(v: &Value) -> Option<Kind> {
    match v {
        Value::Null => None,
        Value::Number(_) | Value::Bool(_) => Some(Kind::Num),
        _ => Some(Kind::Text),
    }
}

#[derive(Debug, Clone)]
struct Column {
    /// The name in the log.
    source: String,
    /// The name in the export.
    name: String,
    kind: Kind,
}

/// The export's columns, decided from the first page.
#[derive(Debug, Clone)]
struct Layout {
    features: Vec<Column>,
    predictions: Vec<Column>,
    label: Kind,
    feedback: bool,
    /// Every name taken (fixed and flattened), for naming the JSON-lines extras.
    taken: HashSet<String>,
    known_features: HashSet<String>,
    known_predictions: HashSet<String>,
}

/// `name`, or `name` with `prefix` in front (as often as needed) when it is taken.
fn unique(prefix: &str, name: &str, taken: &mut HashSet<String>) -> String {
    let mut n = name.to_owned();
    while taken.contains(&n) {
        n = format!("{prefix}{n}");
    }
    taken.insert(n.clone());
    n
}

impl Layout {
    fn from_rows(rows: &[ExportRow], feedback: bool) -> Layout {
        fn union(rows: &[ExportRow], cells: fn(&ExportRow) -> &[(String, Value)]) -> Vec<(String, Kind)> {
            let mut out: Vec<(String, Kind)> = Vec::new();
            let mut at: HashMap<String, usize> = HashMap::new();
            for r in rows {
                for (name, v) in cells(r) {
                    let i = *at.entry(name.clone()).or_insert_with(|| {
                        out.push((name.clone(), Kind::Num));
                        out.len() - 1
                    });
                    if kind_of(v) == Some(Kind::Text) {
                        out[i].1 = Kind::Text;
                    }
                }
            }
            out
        }
        let mut taken: HashSet<String> = FIXED.iter().map(|s| s.to_string()).collect();
        let mut named = |prefix: &str, cols: Vec<(String, Kind)>| -> Vec<Column> {
            cols.into_iter()
                .map(|(source, kind)| Column { name: unique(prefix, &source, &mut taken), source, kind })
                .collect()
        };
        let features = named("feature.", union(rows, |r| &r.features));
        let predictions = named("prediction.", union(rows, |r| &r.predictions));
        let label = if rows.iter().any(|r| r.label.as_ref().and_then(kind_of) == Some(Kind::Text)) {
            Kind::Text
        } else {
            Kind::Num
        };
        Layout {
            known_features: features.iter().map(|c| c.source.clone()).collect(),
            known_predictions: predictions.iter().map(|c| c.source.clone()).collect(),
            features,
            predictions,
            label,
            feedback,
            taken,
        }
    }

    /// The header: fixed columns, features, predictions, label, feedback.
    fn names(&self) -> Vec<&str> {
        let mut out = vec!["request_id", "row", "version", "time"];
        out.extend(self.features.iter().map(|c| c.name.as_str()));
        out.extend(self.predictions.iter().map(|c| c.name.as_str()));
        out.extend(["label", "labelled_at"]);
        if self.feedback {
            out.extend(["comment", "score"]);
        }
        out
    }
}

/// The value of column `name` in `cells`, expected at `i` (rows usually keep the layout's order).
fn lookup<'a>(cells: &'a [(String, Value)], i: usize, name: &str) -> Option<&'a Value> {
    match cells.get(i) {
        Some((n, v)) if n == name => Some(v),
        _ => cells.iter().find(|(n, _)| n == name).map(|(_, v)| v),
    }
}

/// Runs `each` on every row of the first page and then of every page `source` gives.
fn for_each_row(
    first: Vec<ExportRow>,
    source: &mut dyn Source,
    mut each: impl FnMut(&ExportRow) -> Result<(), ExportError>,
) -> Result<u64, ExportError> {
    let mut page = first;
    let mut n = 0u64;
    while !page.is_empty() {
        for r in &page {
            each(r)?;
        }
        n += page.len() as u64;
        page = source.next_page()?;
    }
    Ok(n)
}

fn write_jsonl<W: Write>(
    layout: &Layout,
    first: Vec<ExportRow>,
    source: &mut dyn Source,
    mut out: W,
) -> Result<u64, ExportError> {
    let mut line = Vec::with_capacity(1024);
    let n = for_each_row(first, source, |r| {
        line.clear();
        let mut obj = JsonObject::new(&mut line);
        obj.field("request_id", &r.request_id);
        obj.field("row", &r.row);
        obj.field("version", &r.version);
        obj.field("time", &rfc3339_ms(r.time_ms));
        for (i, c) in layout.features.iter().enumerate() {
            obj.field(&c.name, lookup(&r.features, i, &c.source).unwrap_or(&Value::Null));
        }
        for (i, c) in layout.predictions.iter().enumerate() {
            obj.field(&c.name, lookup(&r.predictions, i, &c.source).unwrap_or(&Value::Null));
        }
        // Names the first page did not have: kept, named by the same rule.
        let extra_features = r.features.iter().filter(|(n, _)| !layout.known_features.contains(n));
        let extra_predictions = r.predictions.iter().filter(|(n, _)| !layout.known_predictions.contains(n));
        let mut taken: Option<HashSet<String>> = None;
        for (prefix, (name, v)) in
            extra_features.map(|c| ("feature.", c)).chain(extra_predictions.map(|c| ("prediction.", c)))
        {
            let taken = taken.get_or_insert_with(|| layout.taken.clone());
            obj.field(&unique(prefix, name, taken), v);
        }
        obj.field("label", &r.label);
        obj.field("labelled_at", &r.labelled_ms.map(rfc3339_ms));
        if layout.feedback {
            obj.field("comment", &r.comment);
            obj.field("score", &r.score);
        }
        obj.end();
        line.push(b'\n');
        out.write_all(&line)?;
        Ok(())
    })?;
    out.flush()?;
    Ok(n)
}

/// Writes one JSON object, fields in the order given.
struct JsonObject<'a> {
    buf: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> JsonObject<'a> {
    fn new(buf: &'a mut Vec<u8>) -> JsonObject<'a> {
        buf.push(b'{');
        JsonObject { buf, first: true }
    }

    fn field<T: serde::Serialize + ?Sized>(&mut self, key: &str, value: &T) {
        if !self.first {
            self.buf.push(b',');
        }
        self.first = false;
        serde_json::to_writer(&mut *self.buf, key).expect("writing to a Vec cannot fail");
        self.buf.push(b':');
        // Values come from JSON (or are strings and numbers): they serialize; a non-finite score
        // (possible only by hand) becomes null.
        if serde_json::to_writer(&mut *self.buf, value).is_err() {
            self.buf.extend_from_slice(b"null");
        }
    }

    fn end(self) {
        self.buf.push(b'}');
    }
}

/// A value as CSV or Parquet text: strings as they are, numbers and booleans as JSON writes them.
fn text_into(v: &Value, buf: &mut String) {
    buf.clear();
    match v {
        Value::Null => {}
        Value::String(s) => buf.push_str(s),
        other => {
            let _ = write!(buf, "{other}");
        }
    }
}

fn write_csv<W: Write>(
    layout: &Layout,
    first: Vec<ExportRow>,
    source: &mut dyn Source,
    out: W,
) -> Result<u64, ExportError> {
    let mut csv = csv::WriterBuilder::new().buffer_capacity(64 * 1024).from_writer(out);
    let to_io = |e: csv::Error| match e.into_kind() {
        csv::ErrorKind::Io(e) => ExportError::Write(e),
        other => ExportError::Write(io::Error::other(format!("{other:?}"))),
    };
    csv.write_record(layout.names()).map_err(to_io)?;
    let mut record = csv::ByteRecord::new();
    let mut cell = String::new();
    let n = for_each_row(first, source, |r| {
        record.clear();
        record.push_field(r.request_id.as_bytes());
        record.push_field(r.row.to_string().as_bytes());
        record.push_field(r.version.as_bytes());
        record.push_field(rfc3339_ms(r.time_ms).as_bytes());
        for (cols, cells) in [(&layout.features, &r.features), (&layout.predictions, &r.predictions)] {
            for (i, c) in cols.iter().enumerate() {
                text_into(lookup(cells, i, &c.source).unwrap_or(&Value::Null), &mut cell);
                record.push_field(cell.as_bytes());
            }
        }
        text_into(r.label.as_ref().unwrap_or(&Value::Null), &mut cell);
        record.push_field(cell.as_bytes());
        record.push_field(r.labelled_ms.map(rfc3339_ms).unwrap_or_default().as_bytes());
        if layout.feedback {
            record.push_field(r.comment.as_deref().unwrap_or("").as_bytes());
            cell.clear();
            if let Some(s) = r.score {
                let _ = write!(cell, "{}", Value::from(s));
            }
            record.push_field(cell.as_bytes());
        }
        csv.write_byte_record(&record).map_err(to_io)
    })?;
    csv.flush()?;
    Ok(n)
}

/// How one Parquet column gets its values from a row.
enum Get<'a> {
    RequestId,
    Row,
    Version,
    Time,
    Feature(usize, &'a Column),
    Prediction(usize, &'a Column),
    Label(Kind),
    LabelledAt,
    Comment,
    Score,
}

impl Get<'_> {
    /// The kind of a feature, prediction or label column (the others have fixed types).
    fn kind(&self) -> Kind {
        match self {
            Get::Feature(_, c) | Get::Prediction(_, c) => c.kind,
            Get::Label(kind) => *kind,
            _ => Kind::Text,
        }
    }

    /// The value of a feature, prediction or label column in `r`.
    fn value<'r>(&self, r: &'r ExportRow) -> Option<&'r Value> {
        match self {
            Get::Feature(i, c) => lookup(&r.features, *i, &c.source),
            Get::Prediction(i, c) => lookup(&r.predictions, *i, &c.source),
            Get::Label(_) => r.label.as_ref(),
            _ => None,
        }
    }
}

fn parquet_schema(layout: &Layout) -> Result<(TypePtr, Vec<Get<'_>>), ExportError> {
    let prim = |name: &str, physical: Physical, logical: Option<LogicalType>, required: bool| {
        let rep = if required { Repetition::REQUIRED } else { Repetition::OPTIONAL };
        Type::primitive_type_builder(name, physical)
            .with_repetition(rep)
            .with_logical_type(logical)
            .build()
            .map(Arc::new)
    };
    let string = || Some(LogicalType::String);
    let millis = || Some(LogicalType::timestamp(true, TimeUnit::MILLIS));
    let by_kind = |name: &str, kind: Kind| match kind {
        Kind::Num => prim(name, Physical::DOUBLE, None, false),
        Kind::Text => prim(name, Physical::BYTE_ARRAY, string(), false),
    };
    let mut fields = vec![
        prim("request_id", Physical::BYTE_ARRAY, string(), true)?,
        prim("row", Physical::INT64, None, true)?,
        prim("version", Physical::BYTE_ARRAY, string(), true)?,
        prim("time", Physical::INT64, millis(), true)?,
    ];
    let mut gets = vec![Get::RequestId, Get::Row, Get::Version, Get::Time];
    for (i, c) in layout.features.iter().enumerate() {
        fields.push(by_kind(&c.name, c.kind)?);
        gets.push(Get::Feature(i, c));
    }
    for (i, c) in layout.predictions.iter().enumerate() {
        fields.push(by_kind(&c.name, c.kind)?);
        gets.push(Get::Prediction(i, c));
    }
    fields.push(by_kind("label", layout.label)?);
    fields.push(prim("labelled_at", Physical::INT64, millis(), false)?);
    gets.extend([Get::Label(layout.label), Get::LabelledAt]);
    if layout.feedback {
        fields.push(prim("comment", Physical::BYTE_ARRAY, string(), false)?);
        fields.push(prim("score", Physical::DOUBLE, None, false)?);
        gets.extend([Get::Comment, Get::Score]);
    }
    let schema = Type::group_type_builder("vigil_export").with_fields(fields).build()?;
    Ok((Arc::new(schema), gets))
}

/// A number for a DOUBLE column: numbers, booleans as 1 / 0, strings that parse as numbers.
fn as_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn write_parquet<W: Write + Send>(
    layout: &Layout,
    first: Vec<ExportRow>,
    source: &mut dyn Source,
    out: W,
) -> Result<u64, ExportError> {
    let (schema, gets) = parquet_schema(layout)?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_created_by(format!("vigil {}", env!("CARGO_PKG_VERSION")))
        .build();
    let mut file = SerializedFileWriter::new(out, schema, Arc::new(props))?;
    let mut group: Vec<ExportRow> = Vec::with_capacity(ROW_GROUP_ROWS.min(first.len()));
    let mut page = first;
    let mut n = 0u64;
    loop {
        let done = page.is_empty();
        for r in page {
            group.push(r);
            if group.len() == ROW_GROUP_ROWS {
                write_row_group(&mut file, &gets, &group)?;
                n += group.len() as u64;
                group.clear();
            }
        }
        if done {
            break;
        }
        page = source.next_page()?;
    }
    if !group.is_empty() {
        write_row_group(&mut file, &gets, &group)?;
        n += group.len() as u64;
    }
    let mut out = file.into_inner()?;
    out.flush()?;
    Ok(n)
}

fn write_row_group<W: Write + Send>(
    file: &mut SerializedFileWriter<W>,
    gets: &[Get<'_>],
    rows: &[ExportRow],
) -> Result<(), ExportError> {
    let mut group = file.next_row_group()?;
    let mut defs: Vec<i16> = Vec::with_capacity(rows.len());
    let mut cell = String::new();
    for get in gets {
        let mut col = group.next_column()?.ok_or_else(|| {
            ExportError::Parquet(parquet::errors::ParquetError::General("fewer columns than the schema".into()))
        })?;
        defs.clear();
        // Fills `defs` (1 present, 0 null) and `out` with the present values.
        fn opt(v: Option<f64>, defs: &mut Vec<i16>, out: &mut Vec<f64>) {
            defs.push(v.is_some() as i16);
            out.extend(v);
        }
        match get {
            Get::Row | Get::Time | Get::LabelledAt => {
                let values: Vec<i64> = match get {
                    Get::Row => rows.iter().map(|r| r.row).collect(),
                    Get::Time => rows.iter().map(|r| r.time_ms).collect(),
                    _ => rows
                        .iter()
                        .filter_map(|r| {
                            defs.push(r.labelled_ms.is_some() as i16);
                            r.labelled_ms
                        })
                        .collect(),
                };
                let optional = matches!(get, Get::LabelledAt);
                col.typed::<Int64Type>().write_batch(&values, optional.then_some(&defs[..]), None)?;
            }
            Get::RequestId | Get::Version => {
                let values: Vec<ByteArray> = rows
                    .iter()
                    .map(|r| {
                        ByteArray::from(if matches!(get, Get::RequestId) { &r.request_id } else { &r.version }.as_str())
                    })
                    .collect();
                col.typed::<ByteArrayType>().write_batch(&values, None, None)?;
            }
            Get::Score => {
                let mut values = Vec::with_capacity(rows.len());
                for r in rows {
                    opt(r.score.filter(|s| s.is_finite()), &mut defs, &mut values);
                }
                col.typed::<DoubleType>().write_batch(&values, Some(&defs), None)?;
            }
            Get::Comment => {
                let values: Vec<ByteArray> = rows
                    .iter()
                    .filter_map(|r| {
                        defs.push(r.comment.is_some() as i16);
                        r.comment.as_deref().map(ByteArray::from)
                    })
                    .collect();
                col.typed::<ByteArrayType>().write_batch(&values, Some(&defs), None)?;
            }
            Get::Feature(..) | Get::Prediction(..) | Get::Label(_) => {
                let value = |r| get.value(r);
                match get.kind() {
                    Kind::Num => {
                        let mut values = Vec::with_capacity(rows.len());
                        for r in rows {
                            opt(value(r).and_then(as_f64).filter(|x| x.is_finite()), &mut defs, &mut values);
                        }
                        col.typed::<DoubleType>().write_batch(&values, Some(&defs), None)?;
                    }
                    Kind::Text => {
                        let mut values = Vec::with_capacity(rows.len());
                        for r in rows {
                            match value(r).filter(|v| !v.is_null()) {
                                Some(v) => {
                                    text_into(v, &mut cell);
                                    values.push(ByteArray::from(cell.as_str()));
                                    defs.push(1);
                                }
                                None => defs.push(0),
                            }
                        }
                        col.typed::<ByteArrayType>().write_batch(&values, Some(&defs), None)?;
                    }
                }
            }
        }
        col.close()?;
    }
    group.close()?;
    Ok(())
}

#[cfg(test)]
mod tests;
