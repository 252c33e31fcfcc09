//! The writers on rows built here (read back with serde_json, the csv crate and the parquet
//! crate's own reader), and the reader on real `predictions.db` files written by the real log.

use super::*;
use crate::store::predlog::{self, Cell, Columns, Comment, Label, LoggedRow, PredictionLog};
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;
use serde_json::json;
use std::collections::BTreeMap;

/// Rows from a vector, a page at a time.
struct Pages {
    pages: std::vec::IntoIter<Vec<ExportRow>>,
    feedback: bool,
}

impl Pages {
    fn new(rows: Vec<ExportRow>, page: usize, feedback: bool) -> Pages {
        let pages: Vec<Vec<ExportRow>> = rows.chunks(page.max(1)).map(|c| c.to_vec()).collect();
        Pages { pages: pages.into_iter(), feedback }
    }
}

impl Source for Pages {
    fn feedback(&self) -> bool {
        self.feedback
    }

    fn next_page(&mut self) -> Result<Vec<ExportRow>, ExportError> {
        Ok(self.pages.next().unwrap_or_default())
    }
}

fn cells(pairs: &[(&str, Value)]) -> Vec<(String, Value)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
}

const T0: i64 = 1_714_521_600_000; // 2024-05-01T00:00:00Z

fn row(i: i64) -> ExportRow {
    ExportRow {
        request_id: format!("r{i}"),
        row: i % 3,
        version: "v1".into(),
        time_ms: T0 + i * 1000,
        features: cells(&[("age", json!(30.5 + i as f64)), ("city", json!(if i % 2 == 0 { "Paris" } else { "Lyon" }))]),
        predictions: cells(&[("score", json!(0.125 * (i % 8) as f64)), ("label", json!(i % 2))]),
        label: (i % 4 != 3).then(|| json!(i % 2)),
        labelled_ms: (i % 4 != 3).then_some(T0 + 86_400_000 + i),
        comment: (i == 1).then(|| "wrong, \"really\"\nsecond line".to_owned()),
        score: (i == 1).then_some(4.0),
    }
}

fn export(format: Format, rows: Vec<ExportRow>, page: usize, feedback: bool) -> (u64, Vec<u8>) {
    let mut out = Vec::new();
    let n = write(format, &mut Pages::new(rows, page, feedback), &mut out).unwrap();
    (n, out)
}

#[test]
fn jsonl_has_one_flat_object_per_row_in_order() {
    let rows: Vec<ExportRow> = (0..5).map(row).collect();
    let (n, out) = export(Format::Jsonl, rows, 2, true);
    assert_eq!(n, 5);
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5);
    // Key order: fixed, features, predictions (`score` and `label` clash with fixed columns),
    // label, feedback.
    let order = [
        "request_id",
        "row",
        "version",
        "time",
        "age",
        "city",
        "prediction.score",
        "prediction.label",
        "label",
        "labelled_at",
        "comment",
        "score",
    ];
    let at: Vec<usize> = order
        .iter()
        .map(|k| lines[0].find(&format!("\"{k}\":")).unwrap_or_else(|| panic!("{k}: {}", lines[0])))
        .collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{}", lines[0]);
    assert_eq!(serde_json::from_str::<serde_json::Map<String, Value>>(lines[0]).unwrap().len(), order.len());
    let first: Value = serde_json::from_str(lines[1]).unwrap();
    assert_eq!(first["request_id"], "r1");
    assert_eq!(first["row"], 1);
    assert_eq!(first["time"], "2024-05-01T00:00:01.000Z");
    assert_eq!(first["age"], 31.5);
    assert_eq!(first["city"], "Lyon");
    assert_eq!(first["prediction.label"], 1);
    assert_eq!(first["label"], 1);
    assert_eq!(first["labelled_at"], "2024-05-02T00:00:00.001Z");
    assert_eq!(first["comment"], "wrong, \"really\"\nsecond line");
    assert_eq!(first["score"], 4.0);
    assert_eq!(first["prediction.score"], 0.125);
    let unlabelled: Value = serde_json::from_str(lines[3]).unwrap();
    assert_eq!((&unlabelled["label"], &unlabelled["labelled_at"]), (&Value::Null, &Value::Null));
}

#[test]
fn jsonl_key_order_follows_the_layout() {
    // The prediction `score` clashes with the fixed feedback column `score`, reserved even when
    // there are no comments (names do not depend on whether anyone commented).
    let rows: Vec<ExportRow> = (0..2).map(row).collect();
    let (_, out) = export(Format::Jsonl, rows, 10, false);
    let line = String::from_utf8(out).unwrap().lines().next().unwrap().to_owned();
    let order = [
        "\"request_id\"",
        "\"row\"",
        "\"version\"",
        "\"time\"",
        "\"age\"",
        "\"city\"",
        "\"prediction.score\"",
        "\"prediction.label\"",
        "\"label\"",
        "\"labelled_at\"",
    ];
    let at: Vec<usize> = order.iter().map(|k| line.find(k).unwrap_or_else(|| panic!("{k} in {line}"))).collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{line}");
    assert!(!line.contains("\"comment\""), "{line}");
}

#[test]
fn clashing_names_get_prefixes_and_stay_unique() {
    let mut r = row(0);
    r.features = cells(&[("version", json!("x")), ("feature.version", json!(1)), ("age", json!(3))]);
    r.predictions = cells(&[("age", json!(0.5)), ("time", json!(2)), ("prediction.age", json!(7))]);
    let layout = Layout::from_rows(&[r], false);
    let names: Vec<&str> = layout.names();
    assert_eq!(
        names,
        [
            "request_id",
            "row",
            "version",
            "time",
            "feature.version",
            "feature.feature.version",
            "age",
            "prediction.age",
            "prediction.time",
            "prediction.prediction.age",
            "label",
            "labelled_at"
        ]
    );
    let set: HashSet<&str> = names.iter().copied().collect();
    assert_eq!(set.len(), names.len(), "{names:?}");
}

#[test]
fn names_not_in_the_first_page_stay_in_jsonl_only() {
    let mut late = row(1);
    late.features.push(("new_feature".into(), json!(9)));
    let rows = vec![row(0), late];
    let (_, out) = export(Format::Jsonl, rows.clone(), 1, false);
    let text = String::from_utf8(out).unwrap();
    let second: Value = serde_json::from_str(text.lines().nth(1).unwrap()).unwrap();
    assert_eq!(second["new_feature"], 9);
    let (_, out) = export(Format::Csv, rows, 1, false);
    let text = String::from_utf8(out).unwrap();
    assert!(!text.contains("new_feature"), "{text}");
}

#[test]
fn csv_has_a_header_and_escaped_values() {
    let rows: Vec<ExportRow> = (0..5).map(row).collect();
    let (n, out) = export(Format::Csv, rows, 2, true);
    assert_eq!(n, 5);
    let mut reader = csv::Reader::from_reader(&out[..]);
    let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_owned).collect();
    assert_eq!(
        header,
        [
            "request_id",
            "row",
            "version",
            "time",
            "age",
            "city",
            "prediction.score",
            "prediction.label",
            "label",
            "labelled_at",
            "comment",
            "score"
        ]
    );
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(records.len(), 5);
    let r1 = &records[1];
    assert_eq!(&r1[0], "r1");
    assert_eq!(&r1[3], "2024-05-01T00:00:01.000Z");
    assert_eq!(&r1[4], "31.5");
    assert_eq!(&r1[5], "Lyon");
    assert_eq!(&r1[8], "1");
    assert_eq!(&r1[10], "wrong, \"really\"\nsecond line");
    assert_eq!(&r1[11], "4.0");
    let r3 = &records[3];
    assert_eq!((&r3[8], &r3[9], &r3[10], &r3[11]), ("", "", "", ""));
}

/// A Parquet file's rows as name → field.
fn parquet_rows(bytes: Vec<u8>) -> (usize, Vec<BTreeMap<String, Field>>) {
    let reader = SerializedFileReader::new(bytes::Bytes::from(bytes)).unwrap();
    let groups = reader.metadata().num_row_groups();
    let rows = reader
        .get_row_iter(None)
        .unwrap()
        .map(|r| r.unwrap().get_column_iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .collect();
    (groups, rows)
}

#[test]
fn parquet_reads_back_with_the_same_values_in_row_groups() {
    let total = ROW_GROUP_ROWS * 2 + 17;
    let rows: Vec<ExportRow> = (0..total as i64).map(row).collect();
    // Pages of another size than row groups: groups are cut by rows, not by pages.
    let (n, out) = export(Format::Parquet, rows.clone(), 3000, true);
    assert_eq!(n, total as u64);
    let (groups, back) = parquet_rows(out);
    assert_eq!(groups, 3);
    assert_eq!(back.len(), total);
    for (i, (want, got)) in rows.iter().zip(&back).enumerate() {
        assert_eq!(got["request_id"], Field::Str(want.request_id.clone()), "row {i}");
        assert_eq!(got["row"], Field::Long(want.row));
        assert_eq!(got["version"], Field::Str("v1".into()));
        assert_eq!(got["time"], Field::TimestampMillis(want.time_ms));
        assert_eq!(got["age"], Field::Double(want.features[0].1.as_f64().unwrap()));
        assert_eq!(got["city"], Field::Str(want.features[1].1.as_str().unwrap().to_owned()));
        assert_eq!(got["prediction.score"], Field::Double(want.predictions[0].1.as_f64().unwrap()));
        match &want.label {
            Some(l) => assert_eq!(got["label"], Field::Double(l.as_f64().unwrap())),
            None => assert_eq!(got["label"], Field::Null),
        }
        match want.labelled_ms {
            Some(t) => assert_eq!(got["labelled_at"], Field::TimestampMillis(t)),
            None => assert_eq!(got["labelled_at"], Field::Null),
        }
        match &want.comment {
            Some(c) => assert_eq!(got["comment"], Field::Str(c.clone())),
            None => assert_eq!(got["comment"], Field::Null),
        }
        match want.score {
            Some(s) => assert_eq!(got["score"], Field::Double(s)),
            None => assert_eq!(got["score"], Field::Null),
        }
    }
}

#[test]
fn parquet_column_kinds_come_from_the_values() {
    let mut a = row(0);
    a.label = Some(json!("cat"));
    a.features = cells(&[("flag", json!(true)), ("mixed", json!(1.5)), ("none", Value::Null)]);
    let mut b = row(1);
    b.label = Some(json!(2));
    b.features = cells(&[("flag", json!(false)), ("mixed", json!("x")), ("none", Value::Null)]);
    // A later string in a DOUBLE column: a number if it parses, else null.
    let mut c = row(2);
    c.features = cells(&[("flag", json!("1.25")), ("mixed", json!(3)), ("none", json!("late"))]);
    let (_, out) = export(Format::Parquet, vec![a, b, c], 2, false);
    let (_, back) = parquet_rows(out);
    assert_eq!(back[0]["label"], Field::Str("cat".into()));
    assert_eq!(back[1]["label"], Field::Str("2".into()));
    assert_eq!(back[0]["flag"], Field::Double(1.0));
    assert_eq!(back[1]["flag"], Field::Double(0.0));
    assert_eq!(back[2]["flag"], Field::Double(1.25));
    assert_eq!(back[0]["mixed"], Field::Str("1.5".into()));
    assert_eq!(back[1]["mixed"], Field::Str("x".into()));
    assert_eq!(back[2]["none"], Field::Null);
    assert!(!back[0].contains_key("comment"));
}

#[test]
fn an_empty_export_is_a_valid_file() {
    let (n, out) = export(Format::Parquet, Vec::new(), 10, false);
    assert_eq!(n, 0);
    let (groups, rows) = parquet_rows(out);
    assert_eq!((groups, rows.len()), (0, 0));
    let (_, out) = export(Format::Csv, Vec::new(), 10, false);
    assert_eq!(String::from_utf8(out).unwrap(), "request_id,row,version,time,label,labelled_at\n");
    assert!(export(Format::Jsonl, Vec::new(), 10, false).1.is_empty());
}

#[test]
fn times() {
    assert_eq!(rfc3339_ms(T0 + 5), "2024-05-01T00:00:00.005Z");
    assert_eq!(rfc3339_ms(-5), "1970-01-01T00:00:00.000Z");
    assert_eq!(rfc3339_ms(i64::MAX), "9999-12-31T23:59:59.999Z");
    assert_eq!(parse_time("1714521600000"), Some(T0));
    assert_eq!(parse_time("2024-05-01"), Some(T0));
    assert_eq!(parse_time("2024-05-01T00:00:00Z"), Some(T0));
    assert_eq!(parse_time("2024-05-01t00:00:00.250z"), Some(T0 + 250));
    assert_eq!(parse_time("2024-05-01 00:00:00Z"), Some(T0));
    assert_eq!(parse_time("2024-05-01T02:30:00+02:30"), Some(T0));
    assert_eq!(parse_time("2024-04-30T22:00:00-02:00"), Some(T0));
    for bad in [
        "",
        "yesterday",
        "2024-05-01T00:00:00",
        "2024-05-01T00:00:00+24:00",
        "2024-05-01T00:00:00+0200",
        "2024-13-01T00:00:00Z",
        "2024-05-01T00:00:00éZ",
        "éééééééééééééééééééééé",
        "99999999999999999999999",
        "1969-12-31T23:59:59Z",
    ] {
        assert_eq!(parse_time(bad), None, "{bad}");
    }
}

// ---- the reader, on files the real log wrote ----

fn log_options() -> predlog::Options {
    predlog::Options {
        flush_interval: Duration::from_secs(3600),
        flush_rows: usize::MAX,
        max_age: None,
        max_rows: None,
        ..predlog::Options::default()
    }
}

fn logged(request_id: &str, i: u32, version: &str, time_ms: i64) -> LoggedRow {
    LoggedRow {
        request_id: request_id.into(),
        row: i,
        version: version.into(),
        time: UNIX_EPOCH + Duration::from_millis(time_ms as u64),
        features: vec![Cell::Num(20.0 + i as f64), Cell::Text("Paris".into())],
        predictions: vec![Cell::Num(0.5)],
        segments: vec![],
    }
}

fn columns() -> Arc<Columns> {
    Arc::new(Columns {
        features: vec!["age".into(), "city".into()],
        predictions: vec!["score".into()],
        segments: vec![],
    })
}

/// A log with `n` one-row requests `q{i}` one second apart (two share each second's time from
/// `n/2` on, to test ties), every third labelled, and comments on q1.
fn filled(dir: &Path, n: i64) -> PredictionLog {
    let log = PredictionLog::open(dir, log_options()).unwrap();
    let rows: Vec<LoggedRow> = (0..n)
        .map(|i| {
            let t = if i < n / 2 { T0 + i * 1000 } else { T0 + (n / 2 + (i - n / 2) / 2) * 1000 };
            logged(&format!("q{i}"), 0, if i % 2 == 0 { "v1" } else { "v2" }, t)
        })
        .collect();
    log.append(&columns(), rows);
    let labels =
        (0..n).filter(|i| i % 3 == 0).map(|i| Label { request_id: format!("q{i}"), row: 0, label: json!(i % 2) });
    let joined = log.label(labels.collect()).blocking_recv().unwrap().unwrap();
    assert_eq!(joined.len() as i64, (n + 2) / 3);
    let note = |comment: Option<&str>, score: Option<f64>| Comment {
        request_id: "q1".into(),
        row: 0,
        comment: comment.map(str::to_owned),
        score,
    };
    let stored = log
        .comment(vec![
            note(Some("first"), Some(1.0)),
            note(Some("second"), None),
            note(None, Some(3.0)),
            Comment { request_id: "nope".into(), row: 0, comment: Some("x".into()), score: None },
        ])
        .blocking_recv()
        .unwrap()
        .unwrap();
    assert_eq!(stored, vec![true, true, true, false]);
    log
}

fn read_all(dir: &Path, filter: Filter) -> Vec<ExportRow> {
    let mut reader = Reader::open(&dir.join(predlog::FILE_NAME), filter).unwrap();
    let mut out = Vec::new();
    loop {
        let page = reader.next_page().unwrap();
        if page.is_empty() {
            return out;
        }
        out.extend(page);
    }
}

#[test]
fn reader_pages_through_the_log_in_time_order_with_filters() {
    let dir = tempfile::tempdir().unwrap();
    let n = PAGE_ROWS as i64 * 2 + 101;
    let log = filled(dir.path(), n);
    let all = read_all(dir.path(), Filter::default());
    assert_eq!(all.len() as i64, n);
    // Time order, ties in insertion (id) order, none twice across pages.
    assert!(all.windows(2).all(|w| w[0].time_ms <= w[1].time_ms));
    let ids: HashSet<&str> = all.iter().map(|r| r.request_id.as_str()).collect();
    assert_eq!(ids.len() as i64, n);
    let tie = all.iter().position(|r| r.request_id == format!("q{}", n / 2 + 2)).unwrap();
    assert_eq!(all[tie + 1].request_id, format!("q{}", n / 2 + 3));
    // Stored order of the JSON columns, values, label, latest comment and latest score.
    let q1 = all.iter().find(|r| r.request_id == "q1").unwrap();
    assert_eq!(q1.features, cells(&[("age", json!(20.0)), ("city", json!("Paris"))]));
    assert_eq!((q1.comment.as_deref(), q1.score), (Some("second"), Some(3.0)));
    let q3 = all.iter().find(|r| r.request_id == "q3").unwrap();
    assert_eq!((&q3.label, q3.labelled_ms.is_some(), &q3.comment), (&Some(json!(1)), true, &None));

    let labelled = read_all(dir.path(), Filter { labelled: Some(true), ..Filter::default() });
    assert_eq!(labelled.len() as i64, (n + 2) / 3);
    assert!(labelled.iter().all(|r| r.label.is_some()));
    let unlabelled = read_all(dir.path(), Filter { labelled: Some(false), ..Filter::default() });
    assert_eq!((labelled.len() + unlabelled.len()) as i64, n);

    let window = Filter { since_ms: Some(T0 + 10_000), until_ms: Some(T0 + 20_000), ..Filter::default() };
    let got: Vec<String> = read_all(dir.path(), window).into_iter().map(|r| r.request_id).collect();
    assert_eq!(got, (10..20).map(|i| format!("q{i}")).collect::<Vec<_>>());

    let v2 = read_all(
        dir.path(),
        Filter { version: Some("v2".into()), limit: Some(PAGE_ROWS as u64 + 5), ..Filter::default() },
    );
    assert_eq!(v2.len(), PAGE_ROWS + 5);
    assert!(v2.iter().all(|r| r.version == "v2"));
    assert_eq!(v2[0].request_id, "q1");
    assert!(read_all(dir.path(), Filter { version: Some("v9".into()), ..Filter::default() }).is_empty());
    log.close();
}

#[test]
fn reader_uses_the_time_index() {
    let dir = tempfile::tempdir().unwrap();
    let log = filled(dir.path(), 10);
    let reader = Reader::open(&dir.path().join(predlog::FILE_NAME), Filter::default()).unwrap();
    let plan: Vec<String> = reader
        .conn
        .prepare(&format!("EXPLAIN QUERY PLAN {}", reader.sql))
        .unwrap()
        .query_map(rusqlite::params![0, 0, 0, Value::Null.to_string(), 1], |r| r.get::<_, String>(3))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let main = &plan[0];
    assert!(main.contains("predictions_time"), "{plan:?}");
    assert!(!plan.iter().any(|p| p.contains("TEMP B-TREE")), "sorts instead of using the index: {plan:?}");
    log.close();
}

#[test]
fn a_log_without_comments_has_no_feedback_columns() {
    let dir = tempfile::tempdir().unwrap();
    let log = PredictionLog::open(dir.path(), log_options()).unwrap();
    log.append(&columns(), vec![logged("a", 0, "v1", T0)]);
    log.flush().blocking_recv().unwrap().unwrap();
    let mut reader = Reader::open(&dir.path().join(predlog::FILE_NAME), Filter::default()).unwrap();
    assert!(!reader.feedback());
    let mut out = Vec::new();
    assert_eq!(write(Format::Csv, &mut reader, &mut out).unwrap(), 1);
    let text = String::from_utf8(out).unwrap();
    assert!(text.starts_with("request_id,row,version,time,age,city,prediction.score,label,labelled_at\n"), "{text}");
    log.close();
}

#[test]
fn a_missing_file_is_an_open_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let Err(e) = Reader::open(&dir.path().join("nope.db"), Filter::default()) else { panic!("opened") };
    assert!(e.to_string().contains("nope.db"), "{e}");
}
