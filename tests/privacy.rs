//! Privacy through the real binary: a reference with a string column, V2 traffic carrying e-mail
//! addresses, phone and card numbers (in free text) and a hashed feature, feedback comments with
//! more of them, an export, a reference upload; then every file in the state dir (the SQLite database and its WAL
//! included, while running and after shutdown), vigil's stderr (at debug level), the export and
//! the admin API's drift views are searched for the raw strings: none is found. The hashed
//! feature is found in its hashed form, the same for both requests that carried it.
//!
//! The upstream is the test suite's `/echo` route under the V2 codec: the request body carries
//! `inputs` (the features) and `outputs` (the model's answer), and the echo returns it, so the
//! answer decodes as the predictions.

mod support;

use serde_json::{json, Value};
use std::path::Path;
use support::*;
use vigil::privacy::hmac::HmacSha256;

const SALT: &str = "integration-test-salt-0123456789";

const CONFIG: &str = r#"
[[codec.routes]]
path_prefix = "/echo"
protocol = "v2"

[schema]
predictions = ["probability"]

[drift]
evaluate_every = "100ms"
min_records = 1

[prediction_log]
flush_interval = "50ms"

[[privacy.rules]]
feature = "email"
action = "hash"

[[privacy.rules]]
feature = "age"
action = "generalize"
buckets = [0, 18, 30, 50, 65]
"#;

/// Strings that must appear nowhere vigil writes.
const PII: &[&str] = &[
    "alice.pii@example.com",
    "bob.pii@example.net",
    "carol.pii@example.org",
    "dave.pii@example.org",
    "ref.pii.7@example.org",
    "upload.pii.3@example.org",
    "555-0199",
    "555-123-4567",
    "7946 0958",
    "4111 1111 1111 1111",
    "4111111111111111",
    "5500-0000-0000-0004",
];

fn hash(value: &str) -> String {
    let mac = HmacSha256::new(SALT.as_bytes()).mac(value.as_bytes());
    let hex: String = mac[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("h:{hex}")
}

/// A reference of 200 rows: age, a hashed e-mail column, free text (one note with a phone
/// number), and the model's probability.
fn reference_file(dir: &Path) -> std::path::PathBuf {
    let mut csv = String::from("age,email,note,probability\n");
    for i in 0..200 {
        let note = if i == 3 { "ref note: call 555-123-4567".to_owned() } else { format!("note {}", i % 5) };
        csv.push_str(&format!("{},ref.pii.{i}@example.org,{note},{}\n", 20 + i % 50, (i % 9) as f64 / 10.0 + 0.05));
    }
    let path = dir.join("reference.csv");
    std::fs::write(&path, csv).unwrap();
    path
}

async fn infer(vigil: &Vigil, id: &str, emails: [&str; 2], notes: [&str; 2]) {
    let body = json!({
        "inputs": [
            {"name": "age", "shape": [2], "datatype": "FP64", "data": [34, 71]},
            {"name": "email", "shape": [2], "datatype": "BYTES", "data": emails},
            {"name": "note", "shape": [2], "datatype": "BYTES", "data": notes},
        ],
        "outputs": [{"name": "probability", "shape": [2, 1], "datatype": "FP64", "data": [0.25, 0.75]}],
    });
    let req = request("POST", &vigil.url("/echo/infer"))
        .header("content-type", "application/json")
        .header("x-request-id", id)
        .body(TestBody::full(body.to_string()))
        .unwrap();
    let r = send(&h1_client(), req).await;
    assert_eq!(r.status, 200, "{}", r.text());
}

/// Every file under `dir`, with the PII strings it contains.
fn leaks_in_dir(dir: &Path) -> Vec<(String, &'static str)> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    let mut files = 0;
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            files += 1;
            let bytes = std::fs::read(&path).unwrap_or_default();
            for needle in PII {
                if contains(&bytes, needle.as_bytes()) {
                    found.push((path.display().to_string(), *needle));
                }
            }
        }
    }
    assert!(files >= 3, "expected the state dir to hold files, found {files}");
    found
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn leaks_in_text(what: &str, text: &str) -> Vec<(String, &'static str)> {
    PII.iter().filter(|n| text.contains(**n)).map(|n| (what.to_owned(), *n)).collect()
}

fn files_named(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_personal_data_reaches_the_state_dir_the_logs_or_the_export() {
    let upstream = Upstream::start("model").await;
    let dir = tempfile::tempdir().unwrap();
    let reference = reference_file(dir.path());
    let vigil = Vigil::builder()
        .upstream("v1", &upstream.url())
        .config(CONFIG)
        .args(["--reference".to_string(), reference.display().to_string()])
        .env("VIGIL_PRIVACY_SALT", SALT)
        .env("RUST_LOG", "info,vigil=debug")
        .start()
        .await;

    infer(
        &vigil,
        "p-1",
        ["alice.pii@example.com", "bob.pii@example.net"],
        ["call me at +1 (415) 555-0199 or mail bob.pii@example.net", "card 4111 1111 1111 1111, thanks"],
    )
    .await;
    infer(&vigil, "p-2", ["alice.pii@example.com", "x"], ["fine", "pay with 5500-0000-0000-0004 or 4111111111111111"])
        .await;
    // A body the schema does not take (a card number as an input name) and one that does not
    // decode (a string where a number goes): their messages reach the log at debug level.
    let odd = json!({"inputs": [{"name": "4111111111111111", "shape": [1], "datatype": "FP64", "data": [1]}]});
    let bad = json!({"inputs": [{"name": "age", "shape": [1], "datatype": "FP64", "data": ["dave.pii@example.org"]}]});
    for body in [odd, bad] {
        let req = request("POST", &vigil.url("/echo/infer")).body(TestBody::full(body.to_string())).unwrap();
        assert_eq!(send(&h1_client(), req).await.status, 200);
    }
    poll_for("4 rows in predictions.db", || async {
        match count_rows(&vigil.state_dir, "") {
            4 => Ok(()),
            n => Err(n.to_string()),
        }
    })
    .await;

    let r = vigil
        .admin(
            "POST",
            "/feedback",
            Some(json!([
                {"request_id": "p-1", "row": 0, "label": 1,
                 "comment": "customer says: reach me on 020 7946 0958 or carol.pii@example.org"},
                {"request_id": "p-2", "row": 1, "comment": "refund to card 4111-1111-1111-1111", "score": 2},
            ])),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["comments"]["joined"], 2, "{}", r.text());

    // The export: JSON lines of every row, redacted.
    let export = vigil.admin("GET", "/admin/export?format=jsonl", None).await;
    assert_eq!(export.status, 200, "{}", export.text());
    let text = export.text();
    let rows: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 4, "{text}");
    let row = |id: &str, k: i64| rows.iter().find(|r| r["request_id"] == id && r["row"] == k).unwrap().clone();
    // The hashed feature: the keyed hash, the same in both requests (joins still work).
    let alice = hash("alice.pii@example.com");
    assert_eq!(row("p-1", 0)["email"], alice, "{text}");
    assert_eq!(row("p-2", 0)["email"], alice, "{text}");
    assert_eq!(row("p-1", 1)["email"], hash("bob.pii@example.net"));
    // Generalized numbers, detected substrings replaced in place.
    assert_eq!((row("p-1", 0)["age"].clone(), row("p-1", 1)["age"].clone()), (json!("[30,50)"), json!(">=65")));
    assert_eq!(row("p-1", 0)["note"], "call me at [phone] or mail [email]");
    assert_eq!(row("p-1", 1)["note"], "card [card], thanks");
    assert_eq!(row("p-2", 1)["note"], "pay with [card] or [card]");
    assert_eq!(row("p-1", 0)["comment"], "customer says: reach me on [phone] or [email]");
    assert_eq!(row("p-2", 1)["comment"], "refund to card [card]");
    assert_eq!(row("p-1", 0)["probability"], 0.25);

    // The drift views show categories of the redacted reference: hashes, not addresses; and the
    // live hash of alice's address is one of the window's (unseen) values, counted, not named.
    let email_view = poll_for("the e-mail column's histogram", || async {
        let v = vigil.admin("GET", "/admin/drift/email", None).await.json();
        match v["versions"]["v1"]["histogram"]["bins"].as_array() {
            Some(bins) if !bins.is_empty() => Ok(v.to_string()),
            _ => Err(v.to_string()),
        }
    })
    .await;
    assert!(email_view.contains(&hash("ref.pii.7@example.org")), "{email_view}");
    let mut api = email_view;
    for path in ["/admin/drift", "/admin/drift/note", "/admin/drift/age"] {
        api.push_str(&vigil.admin("GET", path, None).await.text());
    }
    assert!(api.contains("[30,50)"), "age is profiled in its buckets: {api}");

    let m = vigil.metrics().await;
    for (action, source) in
        [("hash", "rule"), ("generalize", "rule"), ("mask", "email"), ("mask", "phone"), ("mask", "card")]
    {
        assert!(
            m.sum("vigil_redactions_total", &[("action", action), ("source", source)]) > 0.0,
            "vigil_redactions_total{{action={action},source={source}}}"
        );
    }

    // A reference uploaded at run time is redacted before it is saved (and audited).
    let mut csv = String::from("age,email,note,probability\n");
    for i in 0..50 {
        csv.push_str(&format!("{},upload.pii.{i}@example.org,note {},0.{}\n", 20 + i, i % 3, i % 9 + 1));
    }
    let r = vigil.admin_req("PUT", "/admin/reference", Some(&csv), &[("content-type", "text/csv")]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let saved = std::fs::read_to_string(vigil.state_dir.join("reference.jsonl")).unwrap();
    assert!(saved.contains(&hash("upload.pii.3@example.org")), "{saved}");

    // While running: the database, its WAL, the saved reference, the audit trail.
    let names = files_named(&vigil.state_dir);
    assert!(names.iter().any(|n| n == "predictions.db-wal"), "{names:?}");
    assert!(names.iter().any(|n| n.starts_with("reference")), "{names:?}");
    let mut leaks = leaks_in_dir(&vigil.state_dir);
    leaks.extend(leaks_in_text("export", &text));
    leaks.extend(leaks_in_text("admin API", &api));
    let state_dir = vigil.state_dir.clone();
    let stderr_before = vigil.stderr();
    assert!(stderr_before.contains("does not fit the schema"), "the odd body was logged: {stderr_before}");
    assert!(stderr_before.contains("not decoded"), "the bad body was logged at debug level: {stderr_before}");

    // After shutdown (the WAL checkpointed into the database): the same, and all of stderr.
    let mut vigil = vigil;
    vigil.sigterm();
    assert!(vigil.wait_exit().await.success());
    leaks.extend(leaks_in_dir(&state_dir));
    leaks.extend(leaks_in_text("stderr", &vigil.stderr()));
    assert!(leaks.is_empty(), "personal data found: {leaks:?}");
    // And the hash is what the database holds.
    let db = std::fs::read(state_dir.join("predictions.db")).unwrap();
    assert!(contains(&db, alice.as_bytes()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hash_rule_without_a_salt_stops_vigil_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("vigil.toml");
    std::fs::write(
        &config,
        "[[versions]]\nname = \"v1\"\nurl = \"http://127.0.0.1:9\"\n\n[[privacy.rules]]\nfeature = \"email\"\naction = \"hash\"\n",
    )
    .unwrap();
    let state = dir.path().join("state");
    let out = run_to_exit(
        &["run", "--config", config.to_str().unwrap(), "--state-dir", state.to_str().unwrap()],
        &[("VIGIL_PRIVACY_SALT", "")],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("privacy.rules[0].action") && stderr.contains("VIGIL_PRIVACY_SALT"), "{stderr}");
}
