//! The reference data set: CSV, JSON Lines and Parquet versions of the same data give the same
//! table; errors name the input, the line or row and the column; sampling is uniform and
//! deterministic; `to_jsonl` parses back to the same table; no input makes a parser panic.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parquet::basic::Compression;
use parquet::data_type::{
    BoolType, ByteArray, ByteArrayType, DoubleType, FixedLenByteArray, FixedLenByteArrayType, FloatType, Int32Type,
    Int64Type,
};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
use proptest::prelude::*;
use vigil::monitor::reference::{
    load, load_sampled, parse, parse_sampled, Column, ColumnData, Format, ReferenceError, Table,
};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reference").join(name)
}

fn num(name: &str, v: &[f64]) -> Column {
    Column { name: name.into(), data: ColumnData::Num(v.to_vec()) }
}

fn cat(name: &str, v: &[Option<&str>]) -> Column {
    Column { name: name.into(), data: ColumnData::Cat(v.iter().map(|s| s.map(str::to_owned)).collect()) }
}

/// The table in tests/fixtures/reference/sample.{csv,jsonl}.
fn sample_table() -> Table {
    let nan = f64::NAN;
    Table {
        columns: vec![
            num("id", &[1.0, 2.0, 3.0, 4.0]),
            num("price", &[9.5, nan, -0.25, 1000.0]),
            cat("city", &[Some("Zürich"), Some("東京"), None, Some("São Paulo")]),
            cat("flag", &[Some("true"), Some("false"), Some("true"), None]),
            cat("note", &[Some("hello, world"), Some("multi\r\nline"), None, Some("😀")]),
            cat("code", &[Some("007"), Some("A12"), Some("007"), Some("B")]),
        ],
        rows: 4,
    }
}

// ---- Parquet writing (no pyarrow here: files are made with the parquet crate's writer) ----

enum Pq {
    Bool(Vec<Option<bool>>),
    I32(Vec<Option<i32>>),
    I64(Vec<Option<i64>>),
    F32(Vec<Option<f32>>),
    F64(Vec<Option<f64>>),
    Bytes(Vec<Option<Vec<u8>>>),
    Fixed(Vec<Option<Vec<u8>>>),
}

fn split<T: Clone>(v: &[Option<T>]) -> (Vec<T>, Vec<i16>) {
    let values = v.iter().flatten().cloned().collect();
    let defs = v.iter().map(|x| i16::from(x.is_some())).collect();
    (values, defs)
}

/// Writes `columns` (all of `rows` rows) under `schema`, `group` rows per row group.
fn write_parquet(schema: &str, columns: &[Pq], rows: usize, group: usize) -> Vec<u8> {
    let schema = Arc::new(parse_message_type(schema).unwrap());
    let props = Arc::new(WriterProperties::builder().set_compression(Compression::SNAPPY).build());
    let mut out = Vec::new();
    let mut writer = SerializedFileWriter::new(&mut out, schema, props).unwrap();
    let mut start = 0;
    while start < rows.max(1) {
        let end = (start + group).min(rows);
        let mut rg = writer.next_row_group().unwrap();
        let mut i = 0;
        while let Some(mut col) = rg.next_column().unwrap() {
            macro_rules! put {
                ($t:ty, $v:expr, $conv:expr) => {{
                    let slice = &$v[start..end];
                    let (values, defs) = split(slice);
                    let values: Vec<_> = values.into_iter().map($conv).collect();
                    let w = col.typed::<$t>();
                    let defs = (w.get_descriptor().max_def_level() > 0).then_some(defs);
                    w.write_batch(&values, defs.as_deref(), None).unwrap();
                }};
            }
            match &columns[i] {
                Pq::Bool(v) => put!(BoolType, v, |x| x),
                Pq::I32(v) => put!(Int32Type, v, |x| x),
                Pq::I64(v) => put!(Int64Type, v, |x| x),
                Pq::F32(v) => put!(FloatType, v, |x| x),
                Pq::F64(v) => put!(DoubleType, v, |x| x),
                Pq::Bytes(v) => put!(ByteArrayType, v, ByteArray::from),
                Pq::Fixed(v) => {
                    put!(FixedLenByteArrayType, v, |b: Vec<u8>| FixedLenByteArray::from(ByteArray::from(b)))
                }
            }
            col.close().unwrap();
            i += 1;
        }
        rg.close().unwrap();
        start = end;
        if rows == 0 {
            break;
        }
    }
    writer.close().unwrap();
    out
}

fn strs(v: &[Option<&str>]) -> Vec<Option<Vec<u8>>> {
    v.iter().map(|s| s.map(|s| s.as_bytes().to_vec())).collect()
}

fn sample_parquet(group: usize) -> Vec<u8> {
    write_parquet(
        "message m {
            required int64 id;
            optional double price;
            optional binary city (UTF8);
            optional boolean flag;
            optional binary note (STRING);
            optional binary code (UTF8);
        }",
        &[
            Pq::I64(vec![Some(1), Some(2), Some(3), Some(4)]),
            Pq::F64(vec![Some(9.5), None, Some(-0.25), Some(1000.0)]),
            Pq::Bytes(strs(&[Some("Zürich"), Some("東京"), None, Some("São Paulo")])),
            Pq::Bool(vec![Some(true), Some(false), Some(true), None]),
            Pq::Bytes(strs(&[Some("hello, world"), Some("multi\r\nline"), None, Some("😀")])),
            Pq::Bytes(strs(&[Some("007"), Some("A12"), Some("007"), Some("B")])),
        ],
        4,
        group,
    )
}

fn message(r: Result<Table, ReferenceError>) -> String {
    match r {
        Ok(t) => panic!("expected an error, got {t:?}"),
        Err(e) => e.to_string(),
    }
}

fn assert_mentions(msg: &str, words: &[&str]) {
    for w in words {
        assert!(msg.contains(w), "{msg:?} should mention {w:?}");
    }
}

// ---- Same data, three formats ----

#[test]
fn csv_jsonl_and_parquet_versions_give_the_same_table() {
    let expected = sample_table();
    assert_eq!(load(&fixture("sample.csv")).unwrap(), expected);
    assert_eq!(load(&fixture("sample.jsonl")).unwrap(), expected);
    for group in [1, 3, 4] {
        let bytes = sample_parquet(group);
        assert_eq!(parse(&bytes, Format::Parquet, "request body").unwrap(), expected, "row groups of {group}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sample.parquet");
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(load(&path).unwrap(), expected);
    }
    let csv = std::fs::read(fixture("sample.csv")).unwrap();
    assert_eq!(parse(&csv, Format::Csv, "request body").unwrap(), expected);
    let jsonl = std::fs::read(fixture("sample.jsonl")).unwrap();
    assert_eq!(parse(&jsonl, Format::Jsonl, "request body").unwrap(), expected);
}

#[test]
fn formats_from_names_and_content_types() {
    assert_eq!(Format::from_path(Path::new("a/ref.CSV")), Some(Format::Csv));
    assert_eq!(Format::from_path(Path::new("ref.jsonl")), Some(Format::Jsonl));
    assert_eq!(Format::from_path(Path::new("ref.ndjson")), Some(Format::Jsonl));
    assert_eq!(Format::from_path(Path::new("ref.json")), Some(Format::Jsonl));
    assert_eq!(Format::from_path(Path::new("ref.parquet")), Some(Format::Parquet));
    assert_eq!(Format::from_path(Path::new("ref.pq")), Some(Format::Parquet));
    assert_eq!(Format::from_path(Path::new("ref.csv.gz")), None);
    assert_eq!(Format::from_path(Path::new("ref")), None);
    assert_eq!(Format::from_content_type("text/csv"), Some(Format::Csv));
    assert_eq!(Format::from_content_type("application/jsonl"), Some(Format::Jsonl));
    assert_eq!(Format::from_content_type("application/json-lines"), Some(Format::Jsonl));
    assert_eq!(Format::from_content_type("application/x-parquet"), Some(Format::Parquet));
    assert_eq!(Format::from_content_type("application/octet-stream"), None);
    assert_eq!(Format::sniff(&sample_parquet(4)), Some(Format::Parquet));
}

// ---- Kind inference ----

#[test]
fn csv_kinds_and_missing_values() {
    let csv = "n,b,mixed,empty,ws\n1,true,1,,x\n NaN ,false,two,, y \nnull,TRUE,3,,z\nN/A,,NA,,\n";
    let t = parse(csv.as_bytes(), Format::Csv, "request body").unwrap();
    let nan = f64::NAN;
    let expected = Table {
        columns: vec![
            num("n", &[1.0, nan, nan, nan]),
            cat("b", &[Some("true"), Some("false"), Some("TRUE"), None]),
            cat("mixed", &[Some("1"), Some("two"), Some("3"), None]),
            num("empty", &[nan, nan, nan, nan]),
            cat("ws", &[Some("x"), Some(" y "), Some("z"), None]),
        ],
        rows: 4,
    };
    assert_eq!(t, expected);
}

#[test]
fn csv_header_only_and_bom() {
    let t = parse(b"\xEF\xBB\xBFa,b\n", Format::Csv, "x").unwrap();
    assert_eq!(t, Table { columns: vec![num("a", &[]), num("b", &[])], rows: 0 });
}

#[test]
fn jsonl_kinds_union_of_keys_and_mixed_columns() {
    let jsonl = "{\"b\":1,\"a\":\"x\"}\n\r\n{\"c\":true,\"b\":2.5}\n{\"a\":3,\"b\":null,\"d\":null}\n{\"a\":1e20}\n";
    let t = parse(jsonl.as_bytes(), Format::Jsonl, "request body").unwrap();
    let nan = f64::NAN;
    let expected = Table {
        columns: vec![
            num("b", &[1.0, 2.5, nan, nan]),
            cat("a", &[Some("x"), None, Some("3"), Some("1e20")]),
            cat("c", &[None, Some("true"), None, None]),
            num("d", &[nan, nan, nan, nan]),
        ],
        rows: 4,
    };
    assert_eq!(t, expected);
    // Objects with no keys are rows too.
    assert_eq!(parse(b"{}\n{}\n", Format::Jsonl, "x").unwrap(), Table { columns: vec![], rows: 2 });
}

#[test]
fn parquet_types() {
    let n = 3;
    let bytes = write_parquet(
        "message m {
            optional int32 i8 (INT_8);
            optional int32 u32 (UINT_32);
            optional int64 u64 (INTEGER(64,false));
            optional int32 dec (DECIMAL(9,2));
            optional int64 dec64 (DECIMAL(18,3));
            optional binary decb (DECIMAL(20,2));
            optional fixed_len_byte_array(4) decf (DECIMAL(8,1));
            optional int32 day (DATE);
            optional int64 ts (TIMESTAMP(MILLIS,true));
            optional int64 tsn (TIMESTAMP(NANOS,false));
            optional float f;
            optional binary raw;
            optional binary e (ENUM);
            optional fixed_len_byte_array(16) id (UUID);
            optional fixed_len_byte_array(2) h (FLOAT16);
        }",
        &[
            Pq::I32(vec![Some(-5), None, Some(7)]),
            Pq::I32(vec![Some(-1), Some(0), None]),
            Pq::I64(vec![Some(-1), Some(1), None]),
            Pq::I32(vec![Some(12345), Some(-5), None]),
            Pq::I64(vec![Some(1500), None, Some(-1)]),
            Pq::Bytes(vec![Some(vec![0x01, 0x00]), Some(vec![0xff]), None]),
            Pq::Fixed(vec![Some(vec![0, 0, 0, 25]), Some(vec![0xff, 0xff, 0xff, 0xff]), None]),
            Pq::I32(vec![Some(19_000), None, Some(-1)]),
            Pq::I64(vec![Some(1_700_000_000_500), None, Some(0)]),
            Pq::I64(vec![Some(1_500_000_000), None, Some(-1)]),
            Pq::F32(vec![Some(0.5), Some(f32::NAN), None]),
            Pq::Bytes(strs(&[Some("plain"), None, Some("bytes")])),
            Pq::Bytes(strs(&[Some("RED"), Some("GREEN"), None])),
            Pq::Fixed(vec![Some((0u8..16).collect()), None, Some(vec![0xab; 16])]),
            Pq::Fixed(vec![Some(vec![0x00, 0x3c]), Some(vec![0x00, 0xc0]), None]),
        ],
        n,
        2,
    );
    let t = parse(&bytes, Format::Parquet, "request body").unwrap();
    let nan = f64::NAN;
    let expected = Table {
        columns: vec![
            num("i8", &[-5.0, nan, 7.0]),
            num("u32", &[4_294_967_295.0, 0.0, nan]),
            num("u64", &[18_446_744_073_709_551_615.0, 1.0, nan]),
            num("dec", &[123.45, -0.05, nan]),
            num("dec64", &[1.5, nan, -0.001]),
            num("decb", &[2.56, -0.01, nan]),
            num("decf", &[2.5, -0.1, nan]),
            num("day", &[19_000.0, nan, -1.0]),
            num("ts", &[1_700_000_000.5, nan, 0.0]),
            num("tsn", &[1.5, nan, -1e-9]),
            num("f", &[0.5, nan, nan]),
            cat("raw", &[Some("plain"), None, Some("bytes")]),
            cat("e", &[Some("RED"), Some("GREEN"), None]),
            cat(
                "id",
                &[Some("00010203-0405-0607-0809-0a0b0c0d0e0f"), None, Some("abababab-abab-abab-abab-abababababab")],
            ),
            num("h", &[1.0, -2.0, nan]),
        ],
        rows: n,
    };
    assert_eq!(t, expected);
}

#[test]
fn parquet_nested_and_repeated_columns_are_refused_by_name() {
    let nested = write_parquet(
        "message m { optional int32 a; optional group g { optional int32 x; } }",
        &[Pq::I32(vec![Some(1)]), Pq::I32(vec![Some(2)])],
        1,
        1,
    );
    assert_mentions(&message(parse(&nested, Format::Parquet, "request body")), &["request body", "`g`", "nested"]);
    let schema = Arc::new(parse_message_type("message m { repeated int32 xs; }").unwrap());
    let mut out = Vec::new();
    let mut w = SerializedFileWriter::new(&mut out, schema, Arc::new(WriterProperties::builder().build())).unwrap();
    let mut rg = w.next_row_group().unwrap();
    let mut col = rg.next_column().unwrap().unwrap();
    col.typed::<Int32Type>().write_batch(&[1, 2], Some(&[1, 1]), Some(&[0, 1])).unwrap();
    col.close().unwrap();
    rg.close().unwrap();
    w.close().unwrap();
    assert_mentions(&message(parse(&out, Format::Parquet, "request body")), &["`xs`", "repeated"]);
}

#[test]
fn parquet_infinity_is_an_error_naming_row_and_column() {
    let bytes =
        write_parquet("message m { optional double x; }", &[Pq::F64(vec![Some(1.0), Some(f64::INFINITY)])], 2, 2);
    assert_mentions(&message(parse(&bytes, Format::Parquet, "request body")), &["request body", "row 2", "`x`", "inf"]);
}

// ---- Errors name where and what ----

#[test]
fn wrong_field_count_names_the_physical_line() {
    // The quoted field spans lines 2-3, so the short record is on line 5.
    let csv = "a,b\n1,\"x\ny\"\n2,z\n3\n";
    let msg = message(parse(csv.as_bytes(), Format::Csv, "request body"));
    assert_mentions(&msg, &["request body", "line 5", "expected 2 fields", "found 1"]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ref.csv");
    std::fs::write(&path, "a,b\n1,2,3\n").unwrap();
    assert_mentions(&message(load(&path)), &[&path.display().to_string(), "line 2", "found 3"]);
}

#[test]
fn bad_headers_are_refused() {
    assert_mentions(&message(parse(b"a,,c\n1,2,3\n", Format::Csv, "x")), &["line 1", "column 2", "empty"]);
    assert_mentions(&message(parse(b"a,b,a\n1,2,3\n", Format::Csv, "x")), &["line 1", "`a`", "columns 1 and 3"]);
    assert_mentions(&message(parse(b"", Format::Csv, "x")), &["header"]);
    let wide = (0..10_001).map(|i| format!("c{i}")).collect::<Vec<_>>().join(",");
    assert_mentions(&message(parse(wide.as_bytes(), Format::Csv, "x")), &["10000 columns", "10001"]);
}

#[test]
fn infinity_in_a_numeric_csv_column_is_an_error_but_text_in_a_categorical_one() {
    let msg = message(parse(b"x\n1\n2\ninf\n", Format::Csv, "request body"));
    assert_mentions(&msg, &["line 4", "`x`", "\"inf\"", "finite number"]);
    let t = parse(b"x\ninf\nabc\n", Format::Csv, "x").unwrap();
    assert_eq!(t.columns[0], cat("x", &[Some("inf"), Some("abc")]));
}

#[test]
fn invalid_utf8_names_line_and_column() {
    let msg = message(parse(b"a,b\n1,\xff\n", Format::Csv, "request body"));
    assert_mentions(&msg, &["line 2", "`b`", "UTF-8"]);
}

#[test]
fn unknown_extension_names_file_and_supported_ones() {
    let msg = match load(Path::new("/data/ref.xlsx")) {
        Err(e @ ReferenceError::UnknownFormat { .. }) => e.to_string(),
        other => panic!("{other:?}"),
    };
    assert_mentions(&msg, &["/data/ref.xlsx", ".csv", ".jsonl", ".parquet"]);
}

#[test]
fn missing_file_names_it() {
    assert_mentions(&message(load(Path::new("/nonexistent/ref.csv"))), &["/nonexistent/ref.csv", "cannot read"]);
}

#[test]
fn bad_json_names_the_line() {
    let jsonl = "{\"a\":1}\n\n{\"a\": 2,}\n";
    assert_mentions(&message(parse(jsonl.as_bytes(), Format::Jsonl, "request body")), &["request body", "line 3"]);
    let nested = "{\"a\":1}\n{\"a\":2,\"tags\":[1,2]}\n";
    assert_mentions(&message(parse(nested.as_bytes(), Format::Jsonl, "x")), &["line 2", "`tags`", "an array"]);
    let object = "{\"a\":{\"b\":1}}\n";
    assert_mentions(&message(parse(object.as_bytes(), Format::Jsonl, "x")), &["line 1", "`a`", "an object"]);
    assert_mentions(&message(parse(b"{\"a\":1}\n5\n", Format::Jsonl, "x")), &["line 2", "JSON object"]);
    assert_mentions(&message(parse(b"[{\"a\":1}]", Format::Jsonl, "x")), &["line 1", "one JSON object per line"]);
    assert_mentions(&message(parse(b"{\"a\":1,\"a\":2}", Format::Jsonl, "x")), &["line 1", "`a`", "twice"]);
    assert_mentions(&message(parse(b"{\"a\":1e999}", Format::Jsonl, "x")), &["line 1"]);
    assert_mentions(&message(parse(b"{\"\":1}", Format::Jsonl, "x")), &["line 1", "non-empty"]);
}

#[test]
fn not_parquet_is_an_error() {
    assert_mentions(&message(parse(b"a,b\n1,2\n", Format::Parquet, "request body")), &["request body", "Parquet"]);
}

// ---- set_kind ----

#[test]
fn set_kind_both_ways() {
    let mut t = Table {
        columns: vec![
            num("x", &[1.0, 2.5, f64::NAN, -3.0, 1e20]),
            cat("c", &[Some("1"), None, Some(" NA "), Some("2.5"), Some("-0")]),
        ],
        rows: 5,
    };
    t.set_kind("x", true).unwrap();
    assert_eq!(t.columns[0], cat("x", &[Some("1"), Some("2.5"), None, Some("-3"), Some("1e20")]));
    t.set_kind("x", true).unwrap();
    t.set_kind("x", false).unwrap();
    assert_eq!(t.columns[0], num("x", &[1.0, 2.5, f64::NAN, -3.0, 1e20]));
    t.set_kind("c", false).unwrap();
    assert_eq!(t.columns[1], num("c", &[1.0, f64::NAN, f64::NAN, 2.5, 0.0]));

    let mut t = Table { columns: vec![cat("zip", &[Some("01234"), Some("12-34"), Some("x")])], rows: 3 };
    let before = t.clone();
    let err = t.set_kind("zip", false).unwrap_err();
    assert_mentions(&err.to_string(), &["`zip`", "row 2", "\"12-34\"", "number"]);
    assert_eq!(t, before, "a failed set_kind leaves the table unchanged");
    assert!(matches!(t.set_kind("nope", true), Err(ReferenceError::NoSuchColumn(_))));
}

// ---- Sampling ----

fn numbered(rows: usize) -> Table {
    Table {
        columns: vec![
            num("i", &(0..rows).map(|i| i as f64).collect::<Vec<_>>()),
            Column {
                name: "s".into(),
                data: ColumnData::Cat((0..rows).map(|i| (i % 7 != 0).then(|| format!("v{i}"))).collect()),
            },
        ],
        rows,
    }
}

#[test]
fn sample_is_deterministic_sized_ordered_and_aligned() {
    let t = numbered(1000);
    let a = t.sample(100, 7);
    assert_eq!(a, t.sample(100, 7));
    assert_ne!(a, t.sample(100, 8));
    assert_eq!(a.rows, 100);
    let ColumnData::Num(i) = &a.columns[0].data else { panic!() };
    let ColumnData::Cat(s) = &a.columns[1].data else { panic!() };
    assert_eq!(i.len(), 100);
    assert!(i.windows(2).all(|w| w[0] < w[1]), "original order kept, no repeats");
    for (x, v) in i.iter().zip(s) {
        let x = *x as usize;
        assert_eq!(v.as_deref(), (x % 7 != 0).then(|| format!("v{x}")).as_deref(), "same rows in every column");
    }
    assert_eq!(t.sample(1000, 1), t);
    assert_eq!(t.sample(5000, 1), t);
    assert_eq!(t.sample(0, 1).rows, 0);
}

#[test]
fn sample_is_roughly_uniform() {
    // 200 fixed seeds × 50 of 1000 rows: the mean picked index should be ≈ 499.5 (sd ≈ 5.7), and
    // each tenth of the table should get ≈ 1000 of the 10,000 picks (sd ≈ 30).
    let t = numbered(1000);
    let mut sum = 0.0;
    let mut deciles = [0u32; 10];
    for seed in 0..200 {
        let ColumnData::Num(i) = &t.sample(50, seed).columns[0].data else { panic!() };
        for &x in i {
            sum += x;
            deciles[x as usize / 100] += 1;
        }
    }
    let mean = sum / 10_000.0;
    assert!((mean - 499.5).abs() < 25.0, "mean picked index {mean}");
    for (d, &n) in deciles.iter().enumerate() {
        assert!((850..1150).contains(&n), "decile {d} got {n} picks");
    }
}

#[test]
fn sampled_loading_equals_loading_then_sampling() {
    let rows = 2000;
    let t = numbered(rows);
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("i,s\n");
    for r in 0..rows {
        let s = match &t.columns[1].data {
            ColumnData::Cat(v) => v[r].clone().unwrap_or_default(),
            _ => unreachable!(),
        };
        csv.push_str(&format!("{r},{s}\n"));
    }
    let csv_path = dir.path().join("big.csv");
    std::fs::write(&csv_path, &csv).unwrap();
    let jsonl_path = dir.path().join("big.jsonl");
    std::fs::write(&jsonl_path, t.to_jsonl()).unwrap();
    let ColumnData::Cat(s) = &t.columns[1].data else { panic!() };
    let pq = write_parquet(
        "message m { required int64 i; optional binary s (UTF8); }",
        &[
            Pq::I64((0..rows as i64).map(Some).collect()),
            Pq::Bytes(s.iter().map(|v| v.as_ref().map(|s| s.as_bytes().to_vec())).collect()),
        ],
        rows,
        300,
    );
    let pq_path = dir.path().join("big.parquet");
    std::fs::write(&pq_path, &pq).unwrap();

    for path in [&csv_path, &jsonl_path, &pq_path] {
        let full = load(path).unwrap();
        assert_eq!(full, t, "{}", path.display());
        for (k, seed) in [(0, 1), (1, 2), (150, 3), (1999, 4), (2000, 5), (usize::MAX, 6)] {
            assert_eq!(load_sampled(path, k, seed).unwrap(), t.sample(k, seed), "{} k={k}", path.display());
        }
    }
    for (bytes, format) in [(csv.as_bytes(), Format::Csv), (&pq[..], Format::Parquet)] {
        assert_eq!(parse_sampled(bytes, format, "body", 10, 9).unwrap(), t.sample(10, 9));
    }
}

#[test]
fn sampled_loading_still_infers_kinds_from_every_row() {
    // Only the last row is text: a sample that misses it is still categorical.
    let mut csv = String::from("x\n");
    for i in 0..100 {
        csv.push_str(&format!("{i}\n"));
    }
    csv.push_str("text\n");
    let t = parse_sampled(csv.as_bytes(), Format::Csv, "x", 3, 1).unwrap();
    assert!(t.columns[0].data.is_categorical());
    assert_eq!(t.rows, 3);
}

// ---- to_jsonl round trip ----

#[test]
fn to_jsonl_round_trips_the_fixture_and_keeps_numeric_looking_text_categorical() {
    let t = sample_table();
    assert_eq!(parse(&t.to_jsonl(), Format::Jsonl, "x").unwrap(), t);
    let t = Table {
        columns: vec![
            cat("zip", &[Some("01234"), Some("5"), Some("true")]),
            num("n", &[0.1, -0.0, 1.0265909819511759e92]),
        ],
        rows: 3,
    };
    let out = t.to_jsonl();
    assert_eq!(std::str::from_utf8(&out).unwrap().lines().next().unwrap(), "{\"zip\":\"01234\",\"n\":0.1}");
    assert_eq!(parse(&out, Format::Jsonl, "x").unwrap(), t);
}

fn arb_table() -> impl Strategy<Value = Table> {
    let text = prop_oneof![
        "[a-z0-9 ]{0,6}",
        "\\PC{0,8}",
        Just("1.5".to_owned()),
        Just("NA".to_owned()),
        Just("\"quoted\"\n\\".to_owned()),
    ];
    let number = prop_oneof![
        any::<f64>().prop_map(|x| if x.is_finite() { x } else { f64::NAN }),
        (-1000i64..1000).prop_map(|x| x as f64),
        Just(f64::NAN),
    ];
    (1usize..12, 0usize..5).prop_flat_map(move |(rows, ncols)| {
        let column = prop_oneof![
            prop::collection::vec(number.clone(), rows).prop_map(ColumnData::Num),
            prop::collection::vec(prop::option::weighted(0.8, text.clone()), rows).prop_map(ColumnData::Cat),
        ];
        prop::collection::vec(column, ncols).prop_map(move |data| {
            let columns = data
                .into_iter()
                .enumerate()
                .map(|(i, mut data)| {
                    // JSON Lines cannot say "categorical" for a column with no value at all.
                    if let ColumnData::Cat(v) = &mut data {
                        if v.iter().all(Option::is_none) {
                            v[0] = Some(String::new());
                        }
                    }
                    Column { name: format!("col {i} ☃"), data }
                })
                .collect();
            Table { columns, rows }
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn to_jsonl_then_parse_is_identity(t in arb_table()) {
        let back = parse(&t.to_jsonl(), Format::Jsonl, "round trip").unwrap();
        prop_assert_eq!(back, t);
    }

    #[test]
    fn set_kind_there_and_back_is_identity(t in arb_table()) {
        let mut u = t.clone();
        for c in &t.columns {
            if !c.data.is_categorical() {
                u.set_kind(&c.name, true).unwrap();
                u.set_kind(&c.name, false).unwrap();
            }
        }
        prop_assert_eq!(u, t);
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        for format in [Format::Csv, Format::Jsonl, Format::Parquet] {
            let _ = parse(&bytes, format, "fuzz");
        }
    }

    #[test]
    fn random_text_never_panics(text in "[a-z0-9,\"\n{}:\\[\\] .-]{0,200}") {
        for format in [Format::Csv, Format::Jsonl] {
            let _ = parse(text.as_bytes(), format, "fuzz");
        }
    }
}

#[test]
fn corrupted_parquet_is_an_error_not_a_crash() {
    let good = sample_parquet(2);
    let mut rng_state = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        rng_state
    };
    for _ in 0..5000 {
        let mut bad = good.clone();
        for _ in 0..1 + next() % 4 {
            let i = (next() % bad.len() as u64) as usize;
            bad[i] = next() as u8;
        }
        let _ = parse(&bad, Format::Parquet, "fuzz");
    }
    for cut in 0..good.len() {
        let _ = parse(&good[..cut], Format::Parquet, "fuzz");
    }
}

/// Scale check, run by hand: `VIGIL_REF_ROWS=1000000 cargo test --release --test reference -- --ignored`
/// (watch peak memory with `/usr/bin/time -v`). 20 columns, 18 numeric and 2 categorical.
#[test]
#[ignore]
fn large_csv_and_jsonl_stream() {
    let rows: usize = std::env::var("VIGIL_REF_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let csv_path = dir.path().join("large.csv");
    let jsonl_path = dir.path().join("large.jsonl");
    {
        use std::io::Write;
        let mut csv = std::io::BufWriter::new(std::fs::File::create(&csv_path).unwrap());
        let mut jsonl = std::io::BufWriter::new(std::fs::File::create(&jsonl_path).unwrap());
        let names: Vec<String> = (0..20).map(|c| format!("f{c}")).collect();
        writeln!(csv, "{}", names.join(",")).unwrap();
        for r in 0..rows {
            let cells: Vec<String> = (0..20)
                .map(|c| {
                    if c < 18 {
                        format!("{}", (r * 31 + c * 7) as f64 / 13.0)
                    } else {
                        format!("cat{}", (r + c) % 17)
                    }
                })
                .collect();
            writeln!(csv, "{}", cells.join(",")).unwrap();
            let fields: Vec<String> = (0..20)
                .map(|c| if c < 18 { format!("\"f{c}\":{}", cells[c]) } else { format!("\"f{c}\":\"{}\"", cells[c]) })
                .collect();
            writeln!(jsonl, "{{{}}}", fields.join(",")).unwrap();
        }
    }
    for path in [&csv_path, &jsonl_path] {
        let start = std::time::Instant::now();
        let t = load(path).unwrap();
        assert_eq!(t.rows, rows);
        eprintln!("{}: full load {:?}", path.display(), start.elapsed());
        drop(t);
        let start = std::time::Instant::now();
        let t = load_sampled(path, 10_000, 1).unwrap();
        assert_eq!(t.rows, 10_000.min(rows));
        eprintln!("{}: sampled load {:?}", path.display(), start.elapsed());
    }
}

#[test]
fn csv_blank_lines_are_skipped_and_quoted_empty_is_missing() {
    let t = parse(b"x\n1\n\n\"\"\n2\n", Format::Csv, "x").unwrap();
    assert_eq!(t, Table { columns: vec![num("x", &[1.0, f64::NAN, 2.0])], rows: 3 });
}
