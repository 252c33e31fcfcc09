//! Export for retraining through the real binary: traffic through the proxy to the demo model,
//! labels and a comment posted to /feedback, and `GET /admin/export` read back as JSON lines, CSV
//! (the csv crate) and Parquet (the parquet crate's reader): the rows are the ones sent and
//! labelled, with their label values, features and predictions; the time filter, the parameter
//! errors, the admin token and the log-off answer.

mod support;

use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use support::*;

const ROWS: usize = 3;
const TOKEN: &str = "export-s3cret";

fn reference_file(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("reference.csv");
    std::fs::write(&path, vigil::demo::reference_csv(1000, 7)).unwrap();
    path
}

const CONFIG: &str = r#"
[schema]
predictions = ["probability", "label"]
[prediction_log]
flush_interval = "50ms"
"#;

/// One V2 request of `ROWS` rows with id `id`; returns the rows sent and the probabilities answered.
async fn infer(vigil: &Vigil, id: &str, rng: &mut fastrand::Rng) -> (Vec<[f64; 4]>, Vec<f64>) {
    let rows: Vec<[f64; 4]> = (0..ROWS)
        .map(|_| [30.0 + 20.0 * rng.f64(), 40_000.0 + 30_000.0 * rng.f64(), rng.f64(), 12.0 + 48.0 * rng.f64()])
        .collect();
    let data: Vec<f64> = rows.iter().flatten().copied().collect();
    let body = json!({"inputs": [{"name": "x", "shape": [ROWS, 4], "datatype": "FP64", "data": data}]});
    let req = request("POST", &vigil.url("/v2/models/demo/infer"))
        .header("content-type", "application/json")
        .header("x-request-id", id)
        .body(TestBody::full(body.to_string()))
        .unwrap();
    let r = send(&h1_client(), req).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let out = r.json();
    let p = out["outputs"].as_array().unwrap().iter().find(|o| o["name"] == "probability").unwrap()["data"].clone();
    (rows, (0..ROWS).map(|k| p[k].as_f64().unwrap()).collect())
}

async fn export(vigil: &Vigil, query: &str) -> Resp {
    vigil
        .admin_req("GET", &format!("/admin/export?{query}"), None, &[("authorization", &format!("Bearer {TOKEN}"))])
        .await
}

/// One exported row, as the test compares it: (request id, row) → (label, age, probability, time,
/// comment, score), whatever the format.
type Key = (String, i64);
#[derive(Debug, Clone, PartialEq)]
struct Got {
    label: Option<i64>,
    age: f64,
    probability: f64,
    time: String,
    comment: Option<String>,
    score: Option<f64>,
}

fn from_jsonl(body: &[u8]) -> Vec<(Key, Got)> {
    std::str::from_utf8(body)
        .unwrap()
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).unwrap();
            (
                (v["request_id"].as_str().unwrap().to_owned(), v["row"].as_i64().unwrap()),
                Got {
                    label: v["label"].as_i64(),
                    age: v["age"].as_f64().unwrap(),
                    probability: v["probability"].as_f64().unwrap(),
                    time: v["time"].as_str().unwrap().to_owned(),
                    comment: v["comment"].as_str().map(str::to_owned),
                    score: v["score"].as_f64(),
                },
            )
        })
        .collect()
}

fn from_csv(body: &[u8]) -> Vec<(Key, Got)> {
    let mut reader = csv::Reader::from_reader(body);
    let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_owned).collect();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap_or_else(|| panic!("{name} in {header:?}"));
    let (id, row, label, age, p, time) =
        (col("request_id"), col("row"), col("label"), col("age"), col("probability"), col("time"));
    let (comment, score) = (col("comment"), col("score"));
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            let opt = |i: usize| (!r[i].is_empty()).then(|| r[i].to_owned());
            (
                (r[id].to_owned(), r[row].parse().unwrap()),
                Got {
                    label: opt(label).map(|s| s.parse().unwrap()),
                    age: r[age].parse().unwrap(),
                    probability: r[p].parse().unwrap(),
                    time: r[time].to_owned(),
                    comment: opt(comment),
                    score: opt(score).map(|s| s.parse().unwrap()),
                },
            )
        })
        .collect()
}

fn from_parquet(body: &[u8]) -> Vec<(Key, Got)> {
    let reader = SerializedFileReader::new(bytes::Bytes::copy_from_slice(body)).unwrap();
    reader
        .get_row_iter(None)
        .unwrap()
        .map(|r| {
            let m: BTreeMap<String, Field> =
                r.unwrap().get_column_iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            let f = |k: &str| match &m[k] {
                Field::Double(x) => Some(*x),
                Field::Null => None,
                other => panic!("{k}: {other:?}"),
            };
            let s = |k: &str| match &m[k] {
                Field::Str(x) => Some(x.clone()),
                Field::Null => None,
                other => panic!("{k}: {other:?}"),
            };
            let Field::Long(row) = m["row"] else { panic!("row: {:?}", m["row"]) };
            let Field::TimestampMillis(t) = m["time"] else { panic!("time: {:?}", m["time"]) };
            (
                (s("request_id").unwrap(), row),
                Got {
                    label: f("label").map(|x| x as i64),
                    age: f("age").unwrap(),
                    probability: f("probability").unwrap(),
                    time: t.to_string(),
                    comment: s("comment"),
                    score: f("score"),
                },
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labelled_traffic_exports_as_jsonl_csv_and_parquet() {
    let model = DemoModel::start("v1").await;
    let dir = tempfile::tempdir().unwrap();
    let reference = reference_file(dir.path());
    let vigil = Vigil::builder()
        .upstream("v1", &model.url())
        .config(CONFIG)
        .args(["--reference".to_string(), reference.display().to_string()])
        .env("VIGIL_ADMIN_TOKEN", TOKEN)
        .start()
        .await;

    // 20 requests of 3 rows; the first 12 get labels (whole batches), e-3 also a comment and a score.
    let mut rng = fastrand::Rng::with_seed(11);
    let mut sent = Vec::new();
    for i in 0..20 {
        let id = format!("e-{i}");
        let (rows, probabilities) = infer(&vigil, &id, &mut rng).await;
        sent.push((id, rows, probabilities));
    }
    poll_for("60 rows in predictions.db", || async {
        let n = count_rows(&vigil.state_dir, "");
        if n == 60 {
            Ok(())
        } else {
            Err(n.to_string())
        }
    })
    .await;
    let mut expected: BTreeMap<Key, (i64, f64, f64)> = BTreeMap::new();
    for (i, (id, rows, probabilities)) in sent[..12].iter().enumerate() {
        let labels: Vec<i64> = (0..ROWS).map(|r| ((i + r) % 2) as i64).collect();
        let r = vigil.admin("POST", "/feedback", Some(json!({"request_id": id, "labels": labels}))).await;
        assert_eq!(r.json()["joined"], ROWS, "{}", r.text());
        for r in 0..ROWS {
            expected.insert((id.clone(), r as i64), (labels[r], rows[r][0], probabilities[r]));
        }
    }
    // A comment and a score with a label (replacing e-3's row 1 label), and a comment alone.
    let comment = "churned after the call, \"model was right\"\nsee ticket 42";
    let r = vigil
        .admin(
            "POST",
            "/feedback",
            Some(json!([
                {"request_id": "e-3", "row": 1, "label": 1, "comment": comment, "score": 4},
                {"request_id": "e-15", "comment": "unlabelled but noted"},
                {"request_id": "nobody", "comment": "lost"},
            ])),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let a = r.json();
    assert_eq!(a["comments"], json!({"received": 3, "joined": 2, "unknown": 1}), "{a}");
    assert_eq!((a["joined"].as_u64(), a["replaced"].as_u64()), (Some(1), Some(1)), "{a}");
    assert_eq!(a["unknown_ids"], json!(["nobody"]));
    expected.get_mut(&("e-3".to_owned(), 1)).unwrap().0 = 1;

    // The admin token guards it: the export is data.
    let r = vigil.admin_req("GET", "/admin/export?labelled=true", None, &[]).await;
    assert_eq!(r.status, 401, "{}", r.text());

    let mut by_format = Vec::new();
    for (format, ext, content_type) in [
        ("jsonl", "jsonl", "application/x-ndjson"),
        ("csv", "csv", "text/csv; charset=utf-8"),
        ("parquet", "parquet", "application/vnd.apache.parquet"),
    ] {
        let r = export(&vigil, &format!("labelled=true&format={format}")).await;
        assert_eq!(r.status, 200, "{format}: {}", r.text());
        assert_eq!(r.header("content-type"), Some(content_type));
        let disposition = r.header("content-disposition").unwrap();
        assert!(
            disposition.starts_with("attachment; filename=\"vigil-export-")
                && disposition.ends_with(&format!("Z.{ext}\"")),
            "{disposition}"
        );
        let rows = match format {
            "jsonl" => from_jsonl(&r.body),
            "csv" => from_csv(&r.body),
            _ => from_parquet(&r.body),
        };
        // Exactly the labelled rows, with the label posted, the feature sent and the model's answer.
        assert_eq!(rows.len(), expected.len(), "{format}");
        let keys: BTreeSet<&Key> = rows.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, expected.keys().collect(), "{format}");
        for (key, got) in &rows {
            let (label, age, probability) = expected[key];
            assert_eq!(got.label, Some(label), "{format} {key:?}");
            assert_eq!(got.age, age, "{format} {key:?}");
            assert_eq!(got.probability, probability, "{format} {key:?}");
        }
        let noted: Vec<&(Key, Got)> = rows.iter().filter(|(_, g)| g.comment.is_some() || g.score.is_some()).collect();
        assert_eq!(noted.len(), 1, "{format}: {noted:?}");
        assert_eq!(noted[0].0, ("e-3".to_owned(), 1));
        assert_eq!((noted[0].1.comment.as_deref(), noted[0].1.score), (Some(comment), Some(4.0)), "{format}");
        by_format.push(rows);
    }
    // Time order, the same in every format.
    let order = |rows: &Vec<(Key, Got)>| rows.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
    assert_eq!(order(&by_format[0]), order(&by_format[1]));
    assert_eq!(order(&by_format[0]), order(&by_format[2]));

    // Everything (unlabelled too), then a time window of it: since inclusive, until exclusive,
    // given as RFC 3339 and as Unix ms.
    let all = from_jsonl(&export(&vigil, "").await.body);
    assert_eq!(all.len(), 60);
    assert!(all.iter().any(|((id, _), g)| id == "e-15" && g.comment.as_deref() == Some("unlabelled but noted")));
    let times: Vec<&str> = all.iter().map(|(_, g)| g.time.as_str()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    let (since, until) = (times[10], times[45]);
    let want: Vec<&Key> =
        all.iter().filter(|(_, g)| g.time.as_str() >= since && g.time.as_str() < until).map(|(k, _)| k).collect();
    let until_ms = humantime::parse_rfc3339(until).unwrap().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis();
    let window = from_jsonl(&export(&vigil, &format!("since={since}&until={until_ms}")).await.body);
    assert_eq!(window.iter().map(|(k, _)| k).collect::<Vec<_>>(), want);
    assert!(!window.is_empty() && window.len() < 60, "{}", window.len());
    // And with a limit: the earliest rows of the filter.
    let limited = from_jsonl(&export(&vigil, "labelled=false&limit=5").await.body);
    assert_eq!(limited.len(), 5);
    assert!(limited.iter().all(|(_, g)| g.label.is_none()));

    // Bad parameters: 400 naming the parameter.
    for (query, needle) in
        [("format=xml", "format"), ("since=tomorrow", "since"), ("labeled=true", "labeled"), ("limit=none", "limit")]
    {
        let r = export(&vigil, query).await;
        assert_eq!(r.status, 400, "{query}: {}", r.text());
        assert_eq!(r.json()["kind"], "bad_request");
        assert!(r.json()["error"].as_str().unwrap().contains(needle), "{query}: {}", r.text());
    }
    let r = vigil.admin_req("POST", "/admin/export", None, &[("authorization", &format!("Bearer {TOKEN}"))]).await;
    assert_eq!((r.status.as_u16(), r.header("allow")), (405, Some("GET")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_prediction_log_there_is_nothing_to_export() {
    let model = DemoModel::start("v1").await;
    let dir = tempfile::tempdir().unwrap();
    let reference = reference_file(dir.path());
    let vigil = Vigil::builder()
        .upstream("v1", &model.url())
        .config(&format!("{CONFIG}enabled = false\n"))
        .args(["--reference".to_string(), reference.display().to_string()])
        .start()
        .await;
    let r = vigil.admin("GET", "/admin/export?format=csv", None).await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.json()["kind"], "export_disabled");
    let r = vigil.admin("POST", "/feedback", Some(json!({"request_id": "a", "comment": "x"}))).await;
    assert_eq!(r.status, 503, "{}", r.text());
}
