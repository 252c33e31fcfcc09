//! The reference data set as a table: loaded from CSV, JSON Lines or Parquet, one typed column per
//! feature, optionally reservoir-bounded so a reference larger than memory can still be used.
//!
//! Owns: reading and writing reference tables, column kinds, sampling. May not touch: statistics,
//! windows, config (the caller maps config overrides onto [`Table::set_kind`]).
//!
//! # Kinds
//! A column is numeric ([`ColumnData::Num`], `f64`, NaN = missing) or categorical
//! ([`ColumnData::Cat`], strings, `None` = missing). Numeric values are always finite or NaN:
//! an infinite value in a numeric column is an error, since no drift statistic and no JSON output
//! can carry it.
//!
//! * **CSV** — a header row names the columns (empty or duplicate names are errors). A column is
//!   numeric when every non-missing cell parses as a finite number (surrounding spaces allowed);
//!   otherwise categorical, with cells kept verbatim. Missing cells: the empty (or all-space)
//!   cell and the tokens in [`MISSING_TOKENS`] (any NaN spelling too), in either kind. `true` /
//!   `false` are not numbers, so a boolean column is categorical. A column with no value at all is
//!   numeric. Blank lines are skipped (by the csv reader), so a one-column file cannot express a
//!   missing value with an empty line: quote it (`""`).
//! * **JSON Lines** — one object per line, blank lines skipped; columns are the union of keys in
//!   first-seen order; a key absent from a row is missing there. Numbers are numeric, strings and
//!   booleans (`"true"` / `"false"`) categorical, `null` missing; arrays and objects are errors.
//!   A column holding both numbers and strings/booleans is categorical, its numbers written as
//!   [`format_number`] does. A column that is only ever `null` is numeric.
//! * **Parquet** — flat schemas only (a group or repeated field is an error naming it).
//!   INT8..INT64, UINT8..UINT64, FLOAT, DOUBLE, FLOAT16 and DECIMAL (scaled) are numeric;
//!   BOOLEAN, strings (UTF8 / STRING / ENUM / JSON or unannotated BYTE_ARRAY holding UTF-8) and
//!   UUID (canonical text) categorical; nulls and floating-point NaN missing. Temporal types are
//!   numeric: DATE in days since the Unix epoch, TIMESTAMP (and legacy INT96) in seconds since the
//!   epoch, TIME in seconds since midnight. INTERVAL, BSON, VARIANT and geospatial types are
//!   errors.
//!
//! # Memory
//! Text formats are read twice, streaming: the first pass checks every row and settles each
//! column's kind and the row count, the second keeps only the rows wanted, straight into typed
//! columns (8 bytes a numeric cell). Parquet is read column chunk by column chunk. With
//! [`load_sampled`] the rows kept are chosen up front from the row count, so memory is bounded by
//! the sample, not the file.
//!
//! # Robustness
//! No input makes the CSV or JSON Lines readers panic. The Parquet decoder (parquet 59) asserts
//! on some corrupt pages instead of returning an error; column chunk offsets are checked before
//! decoding and the decoder runs under `catch_unwind`, which turns the rest into errors in builds
//! that unwind. The release profile aborts on panic, so Parquet should come from a trusted
//! operator (config file or authenticated admin call), not from arbitrary clients.

mod csv_reader;
mod jsonl_reader;
mod parquet_reader;

use std::collections::HashSet;
use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::Path;

/// Most columns a reference may have.
pub const MAX_COLUMNS: usize = 10_000;

/// Longest JSON line accepted (a longer line is an error, not an allocation).
pub const MAX_LINE_BYTES: usize = 64 << 20;

/// Cell texts (after trimming spaces) read as missing in CSV cells and by [`Table::set_kind`].
/// Any spelling Rust parses as NaN (`nan`, `NaN`, `-nan`, ...) is missing too.
pub const MISSING_TOKENS: &[&str] = &["", "NA", "N/A", "n/a", "NaN", "nan", "null", "NULL", "None", "<NA>"];

/// File extensions [`Format::from_path`] knows, for messages.
pub const SUPPORTED_EXTENSIONS: &str = ".csv, .jsonl, .ndjson, .json, .parquet, .pq";

/// Values of one column. Numeric: f64 with NaN for missing. Categorical: strings, None for missing.
///
/// Equality treats NaN as equal to NaN: both mean "missing".
#[derive(Debug, Clone)]
pub enum ColumnData {
    Num(Vec<f64>),
    Cat(Vec<Option<String>>),
}

impl PartialEq for ColumnData {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (ColumnData::Num(a), ColumnData::Num(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y || (x.is_nan() && y.is_nan()))
            }
            (ColumnData::Cat(a), ColumnData::Cat(b)) => a == b,
            _ => false,
        }
    }
}

impl ColumnData {
    pub fn len(&self) -> usize {
        match self {
            ColumnData::Num(v) => v.len(),
            ColumnData::Cat(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn is_categorical(&self) -> bool {
        matches!(self, ColumnData::Cat(_))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub data: ColumnData,
}

/// Columns of equal length `rows`, in file order.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub columns: Vec<Column>,
    pub rows: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Jsonl,
    Parquet,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Csv => "CSV",
            Format::Jsonl => "JSON Lines",
            Format::Parquet => "Parquet",
        })
    }
}

impl Format {
    /// From a file extension (case-insensitive): `.csv`; `.jsonl` / `.ndjson` / `.json` (one object
    /// per line); `.parquet` / `.pq`. Anything else, compressed files included, is `None`.
    pub fn from_path(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "csv" => Some(Format::Csv),
            "jsonl" | "ndjson" | "json" => Some(Format::Jsonl),
            "parquet" | "pq" => Some(Format::Parquet),
            _ => None,
        }
    }

    /// From an HTTP Content-Type (parameters such as `; charset=utf-8` ignored, case-insensitive):
    /// `text/csv`, `application/csv` → CSV; `application/x-ndjson`, `application/ndjson`,
    /// `application/jsonl`, `application/x-jsonl`, `application/json-lines`,
    /// `application/jsonlines` and `application/json` (read as one object per line; a JSON array
    /// body is an error saying so) → JSON Lines; `application/vnd.apache.parquet`,
    /// `application/x-parquet`, `application/parquet` → Parquet. `application/octet-stream` and
    /// anything else → `None`: the caller may fall back on [`Format::sniff`].
    pub fn from_content_type(ct: &str) -> Option<Format> {
        let media = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        match media.as_str() {
            "text/csv" | "application/csv" => Some(Format::Csv),
            "application/x-ndjson"
            | "application/ndjson"
            | "application/jsonl"
            | "application/x-jsonl"
            | "application/json-lines"
            | "application/jsonlines"
            | "application/json" => Some(Format::Jsonl),
            "application/vnd.apache.parquet" | "application/x-parquet" | "application/parquet" => Some(Format::Parquet),
            _ => None,
        }
    }

    /// Guess from the content: Parquet by its `PAR1` magic at both ends, JSON Lines when the first
    /// non-space byte is `{`. CSV cannot be told from text and is never guessed.
    pub fn sniff(bytes: &[u8]) -> Option<Format> {
        if bytes.len() >= 12 && bytes.starts_with(b"PAR1") && bytes.ends_with(b"PAR1") {
            return Some(Format::Parquet);
        }
        let body = bytes.strip_prefix(b"\xEF\xBB\xBF".as_slice()).unwrap_or(bytes);
        match body.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'{') => Some(Format::Jsonl),
            _ => None,
        }
    }
}

/// Where in the input a problem is: a text line (1-based, physical), a data row (1-based, the
/// first row after a CSV header is row 1) and/or a column.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Location {
    pub line: Option<u64>,
    pub row: Option<u64>,
    pub column: Option<String>,
}

impl Location {
    pub fn line(line: u64) -> Location {
        Location { line: Some(line), ..Location::default() }
    }

    pub fn column(name: &str) -> Location {
        Location { column: Some(name.to_owned()), ..Location::default() }
    }

    pub fn cell_at_line(line: u64, column: &str) -> Location {
        Location { line: Some(line), row: None, column: Some(column.to_owned()) }
    }

    pub fn cell_at_row(row: u64, column: &str) -> Location {
        Location { line: None, row: Some(row), column: Some(column.to_owned()) }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, ", line {line}")?;
        }
        if let Some(row) = self.row {
            write!(f, ", row {row}")?;
        }
        if let Some(column) = &self.column {
            write!(f, ", column `{column}`")?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    #[error("{origin}: cannot read: {source}")]
    Io { origin: String, source: io::Error },
    #[error("{path}: cannot tell the reference format from the file name; expected one of {SUPPORTED_EXTENSIONS}")]
    UnknownFormat { path: String },
    /// The content is not a valid reference: `message` says what was expected and what was found.
    #[error("{origin}{at}: {message}")]
    Invalid { origin: String, at: Location, message: String },
    #[error("no column `{0}` in the reference")]
    NoSuchColumn(String),
    /// [`Table::set_kind`] to numeric met a value that is not a number (`row` is 1-based).
    #[error("column `{column}`, row {row}: expected a finite number or a missing value, found {value:?}")]
    NotANumber { column: String, row: usize, value: String },
}

impl ReferenceError {
    pub(crate) fn invalid(origin: &str, at: Location, message: impl Into<String>) -> ReferenceError {
        ReferenceError::Invalid { origin: origin.to_owned(), at, message: message.into() }
    }

    pub(crate) fn io(origin: &str, source: io::Error) -> ReferenceError {
        ReferenceError::Io { origin: origin.to_owned(), source }
    }
}

/// Where the bytes come from; text formats open it once per pass.
#[derive(Clone, Copy)]
pub(crate) enum Source<'a> {
    File(&'a Path),
    Bytes(&'a [u8]),
}

impl<'a> Source<'a> {
    pub(crate) fn open(&self, origin: &str) -> Result<Box<dyn BufRead + 'a>, ReferenceError> {
        match *self {
            Source::File(path) => {
                let file = File::open(path).map_err(|e| ReferenceError::io(origin, e))?;
                Ok(Box::new(BufReader::with_capacity(1 << 16, file)))
            }
            Source::Bytes(bytes) => Ok(Box::new(bytes)),
        }
    }
}

/// Loads a whole reference file; the format comes from the extension ([`Format::from_path`]).
pub fn load(path: &Path) -> Result<Table, ReferenceError> {
    load_sampled(path, usize::MAX, 0)
}

/// Loads at most `max_rows` rows of a reference file, a uniform sample without replacement in file
/// order, the same rows `load(path)?.sample(max_rows, seed)` would give, without ever holding more
/// than the sample in memory. Column kinds are inferred from every row, not just the sampled ones.
pub fn load_sampled(path: &Path, max_rows: usize, seed: u64) -> Result<Table, ReferenceError> {
    let origin = path.display().to_string();
    let format = Format::from_path(path).ok_or_else(|| ReferenceError::UnknownFormat { path: origin.clone() })?;
    match format {
        Format::Csv => csv_reader::read(Source::File(path), &origin, max_rows, seed),
        Format::Jsonl => jsonl_reader::read(Source::File(path), &origin, max_rows, seed),
        Format::Parquet => {
            let file = File::open(path).map_err(|e| ReferenceError::io(&origin, e))?;
            parquet_reader::read(file, &origin, max_rows, seed)
        }
    }
}

/// Parses a reference held in memory; `origin` names it in errors (e.g. "request body").
pub fn parse(bytes: &[u8], format: Format, origin: &str) -> Result<Table, ReferenceError> {
    parse_sampled(bytes, format, origin, usize::MAX, 0)
}

/// [`parse`] keeping at most `max_rows` rows, as [`load_sampled`] does.
pub fn parse_sampled(
    bytes: &[u8],
    format: Format,
    origin: &str,
    max_rows: usize,
    seed: u64,
) -> Result<Table, ReferenceError> {
    match format {
        Format::Csv => csv_reader::read(Source::Bytes(bytes), origin, max_rows, seed),
        Format::Jsonl => jsonl_reader::read(Source::Bytes(bytes), origin, max_rows, seed),
        Format::Parquet => parquet_reader::read(bytes::Bytes::copy_from_slice(bytes), origin, max_rows, seed),
    }
}

impl Table {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// A uniform random sample of `max_rows` rows without replacement (all columns, same rows,
    /// original order kept), deterministic for a seed. Unchanged if rows <= max_rows.
    pub fn sample(&self, max_rows: usize, seed: u64) -> Table {
        let Some(picks) = pick_rows(self.rows, max_rows, seed) else {
            return self.clone();
        };
        let columns = self
            .columns
            .iter()
            .map(|c| Column {
                name: c.name.clone(),
                data: match &c.data {
                    ColumnData::Num(v) => {
                        ColumnData::Num(picks.iter().map(|&i| v.get(i).copied().unwrap_or(f64::NAN)).collect())
                    }
                    ColumnData::Cat(v) => ColumnData::Cat(picks.iter().map(|&i| v.get(i).cloned().flatten()).collect()),
                },
            })
            .collect();
        Table { columns, rows: picks.len() }
    }

    /// Serializes as JSON Lines, one object per row with every column in order: numbers as JSON
    /// numbers, categorical values always as JSON strings, missing as `null`. `parse(…, Jsonl)`
    /// gives back an equal table, with two exceptions inherent to JSON Lines: a column with no
    /// value at all comes back numeric, and a table of zero rows comes back without columns.
    /// (An infinite number, which loading never produces, is written as `null`.)
    pub fn to_jsonl(&self) -> Vec<u8> {
        use std::io::Write;
        let names: Vec<String> =
            self.columns.iter().map(|c| serde_json::to_string(&c.name).unwrap_or_default()).collect();
        let mut out = Vec::with_capacity(self.rows * (2 + self.columns.len() * 12));
        let mut ryu = Vec::new();
        for row in 0..self.rows {
            out.push(b'{');
            for (i, (column, name)) in self.columns.iter().zip(&names).enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(name.as_bytes());
                out.push(b':');
                match &column.data {
                    ColumnData::Num(v) => match v.get(row) {
                        Some(x) if x.is_finite() => {
                            ryu.clear();
                            // Writing into a Vec cannot fail.
                            let _ = serde_json::to_writer(&mut ryu, x);
                            out.extend_from_slice(&ryu);
                        }
                        _ => out.extend_from_slice(b"null"),
                    },
                    ColumnData::Cat(v) => match v.get(row) {
                        Some(Some(s)) => {
                            let _ = serde_json::to_writer(&mut out, s);
                        }
                        _ => out.extend_from_slice(b"null"),
                    },
                }
            }
            let _ = out.write_all(b"}\n");
        }
        out
    }

    /// Forces a column's kind (config override). Numeric → categorical writes each number as
    /// [`format_number`] does (NaN → `None`). Categorical → numeric parses each value as a CSV cell
    /// is parsed (missing tokens → NaN); the first value that is not a finite number is an error
    /// and leaves the table unchanged. Setting the kind a column already has is a no-op.
    pub fn set_kind(&mut self, column: &str, categorical: bool) -> Result<(), ReferenceError> {
        let col = self
            .columns
            .iter_mut()
            .find(|c| c.name == column)
            .ok_or_else(|| ReferenceError::NoSuchColumn(column.to_owned()))?;
        match (&col.data, categorical) {
            (ColumnData::Num(v), true) => {
                let cat = v.iter().map(|&x| if x.is_nan() { None } else { Some(format_number(x)) }).collect();
                col.data = ColumnData::Cat(cat);
            }
            (ColumnData::Cat(v), false) => {
                let mut num = Vec::with_capacity(v.len());
                for (i, value) in v.iter().enumerate() {
                    let x = match value {
                        None => f64::NAN,
                        Some(s) => match classify(s) {
                            Cell::Missing => f64::NAN,
                            Cell::Num(x) => x,
                            Cell::Infinite | Cell::Text => {
                                return Err(ReferenceError::NotANumber {
                                    column: column.to_owned(),
                                    row: i + 1,
                                    value: s.clone(),
                                });
                            }
                        },
                    };
                    num.push(x);
                }
                col.data = ColumnData::Num(num);
            }
            _ => {}
        }
        Ok(())
    }
}

/// A number as categorical text: integers without a fractional part ("3", not "3.0") up to 1e15,
/// very large or very small magnitudes in exponent form ("1e20", "2.5e-7"), anything else in the
/// shortest decimal form that parses back to the same f64 ("0.1"). NaN gives "NaN", infinities
/// "inf" / "-inf".
pub fn format_number(x: f64) -> String {
    if x.is_nan() {
        return "NaN".to_owned();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    let a = x.abs();
    if x.fract() == 0.0 && a < 1e15 {
        format!("{}", x as i64)
    } else if !(1e-5..1e15).contains(&a) {
        format!("{x:e}")
    } else {
        format!("{x}")
    }
}

/// What a text cell holds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Cell {
    Missing,
    Num(f64),
    Infinite,
    Text,
}

pub(crate) fn classify(s: &str) -> Cell {
    let t = s.trim();
    if MISSING_TOKENS.contains(&t) {
        return Cell::Missing;
    }
    // Cheap pre-check: every float spelling starts with a digit, sign, dot, or i/n (inf, nan).
    match t.as_bytes().first() {
        Some(b'0'..=b'9' | b'+' | b'-' | b'.' | b'i' | b'I' | b'n' | b'N') => {}
        _ => return Cell::Text,
    }
    match t.parse::<f64>() {
        Ok(x) if x.is_finite() => Cell::Num(x),
        Ok(x) if x.is_nan() => Cell::Missing,
        Ok(_) => Cell::Infinite,
        Err(_) => Cell::Text,
    }
}

/// The rows a sample keeps, ascending; `None` when all `n` rows are kept (`n <= k`).
///
/// Floyd's algorithm: a uniform `k`-subset of `0..n` in O(k) time and memory whatever `n`, so the
/// streaming loaders can pick rows from the row count alone.
pub(crate) fn pick_rows(n: usize, k: usize, seed: u64) -> Option<Vec<usize>> {
    if n <= k {
        return None;
    }
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut set = HashSet::with_capacity(k);
    for j in (n - k)..n {
        let t = rng.usize(..=j);
        if !set.insert(t) {
            set.insert(j);
        }
    }
    let mut picks: Vec<usize> = set.into_iter().collect();
    picks.sort_unstable();
    Some(picks)
}

/// Walks rows in order and says which to keep.
pub(crate) struct Picker {
    picks: Option<Vec<usize>>,
    next: usize,
    total: usize,
}

impl Picker {
    pub(crate) fn new(n: usize, k: usize, seed: u64) -> Picker {
        let picks = pick_rows(n, k, seed);
        let total = picks.as_ref().map_or(n, Vec::len);
        Picker { picks, next: 0, total }
    }

    /// Rows the sample will hold.
    pub(crate) fn total(&self) -> usize {
        self.total
    }

    /// Whether row `row` is kept; rows must be asked about in increasing order.
    pub(crate) fn take(&mut self, row: usize) -> bool {
        match &self.picks {
            None => true,
            Some(p) => {
                if p.get(self.next) == Some(&row) {
                    self.next += 1;
                    true
                } else {
                    false
                }
            }
        }
    }

    /// Starts over from row 0 (Parquet walks the rows once per column).
    pub(crate) fn rewind(&mut self) {
        self.next = 0;
    }

    /// Whether every kept row has been taken, so the rest of the input can be skipped.
    pub(crate) fn done(&self) -> bool {
        self.picks.as_ref().is_some_and(|p| self.next == p.len())
    }
}

/// A column being filled during the second pass.
pub(crate) enum Builder {
    Num(Vec<f64>),
    Cat(Vec<Option<String>>),
}

impl Builder {
    pub(crate) fn new(categorical: bool, capacity: usize) -> Builder {
        if categorical {
            Builder::Cat(Vec::with_capacity(capacity))
        } else {
            Builder::Num(Vec::with_capacity(capacity))
        }
    }

    pub(crate) fn finish(self) -> ColumnData {
        match self {
            Builder::Num(v) => ColumnData::Num(v),
            Builder::Cat(v) => ColumnData::Cat(v),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_are_sorted_distinct_and_sized() {
        for seed in 0..50 {
            let picks = pick_rows(1000, 37, seed).unwrap();
            assert_eq!(picks.len(), 37);
            assert!(picks.windows(2).all(|w| w[0] < w[1]));
            assert!(picks.iter().all(|&i| i < 1000));
        }
        assert_eq!(pick_rows(10, 10, 1), None);
        assert_eq!(pick_rows(10, usize::MAX, 1), None);
        assert_eq!(pick_rows(10, 0, 1), Some(vec![]));
    }

    #[test]
    fn every_row_equally_likely() {
        // 20 rows, 5 picked, 4000 fixed seeds: each row expected 1000 times, sd ≈ 27.
        let mut hits = [0u32; 20];
        for seed in 0..4000 {
            for i in pick_rows(20, 5, seed).unwrap() {
                hits[i] += 1;
            }
        }
        for (i, &h) in hits.iter().enumerate() {
            assert!((850..1150).contains(&h), "row {i} picked {h} times");
        }
    }

    #[test]
    fn cells() {
        assert_eq!(classify(" 1.5 "), Cell::Num(1.5));
        assert_eq!(classify("-3"), Cell::Num(-3.0));
        assert_eq!(classify("1e3"), Cell::Num(1000.0));
        assert_eq!(classify(""), Cell::Missing);
        assert_eq!(classify("  "), Cell::Missing);
        assert_eq!(classify("NA"), Cell::Missing);
        assert_eq!(classify("-NaN"), Cell::Missing);
        assert_eq!(classify("inf"), Cell::Infinite);
        assert_eq!(classify("-Infinity"), Cell::Infinite);
        assert_eq!(classify("true"), Cell::Text);
        assert_eq!(classify("nope"), Cell::Text);
        assert_eq!(classify("1,5"), Cell::Text);
        assert_eq!(classify("0x10"), Cell::Text);
    }

    #[test]
    fn numbers_format_and_parse_back() {
        assert_eq!(format_number(3.0), "3");
        assert_eq!(format_number(-0.0), "0");
        assert_eq!(format_number(0.1), "0.1");
        assert_eq!(format_number(-2.5), "-2.5");
        assert_eq!(format_number(1e20), "1e20");
        assert_eq!(format_number(123456789012345.0), "123456789012345");
        assert_eq!(format_number(2.5e-7), "2.5e-7");
        for x in [0.1, 1.0 / 3.0, 1e300, -1e-300, 5e-324, 123.456, 1e15, 999999999999999.9] {
            assert_eq!(format_number(x).parse::<f64>().unwrap(), x);
        }
    }

    #[test]
    fn content_types() {
        assert_eq!(Format::from_content_type("text/csv; charset=utf-8"), Some(Format::Csv));
        assert_eq!(Format::from_content_type("Application/X-NDJSON"), Some(Format::Jsonl));
        assert_eq!(Format::from_content_type("application/json"), Some(Format::Jsonl));
        assert_eq!(Format::from_content_type("application/vnd.apache.parquet"), Some(Format::Parquet));
        assert_eq!(Format::from_content_type("application/octet-stream"), None);
        assert_eq!(Format::from_content_type(""), None);
    }

    #[test]
    fn sniffing() {
        assert_eq!(Format::sniff(b"PAR1\0\0\0\0\0\0\0\0PAR1"), Some(Format::Parquet));
        assert_eq!(Format::sniff(b"\xEF\xBB\xBF \n{\"a\":1}"), Some(Format::Jsonl));
        assert_eq!(Format::sniff(b"a,b\n1,2\n"), None);
        assert_eq!(Format::sniff(b""), None);
    }
}
