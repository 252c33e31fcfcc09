//! `vigil backup` and `vigil restore` through the real binary: a backup taken while vigil serves
//! traffic restores into a fresh state dir on which vigil starts with the same routes, audit
//! trail, reference and prediction log; a damaged archive restores nothing.

mod support;

use serde_json::json;
use std::path::Path;
use std::process::Output;
use support::*;

const CONFIG: &str = r#"
[schema]
predictions = ["probability", "label"]
[prediction_log]
flush_interval = "50ms"
"#;

fn vigil_cmd(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_vigil")).args(args).env_remove("VIGIL_CONFIG").output().unwrap()
}

fn text(o: &Output) -> String {
    format!("stdout:\n{}\nstderr:\n{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

async fn infer(vigil: &Vigil, id: &str) {
    let body = json!({"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP64",
        "data": [40.0, 55000.0, 0.5, 36.0, 30.0, 45000.0, 0.3, 12.0]}]});
    let req = request("POST", &vigil.url("/v2/models/demo/infer"))
        .header("content-type", "application/json")
        .header("x-request-id", id)
        .body(TestBody::full(body.to_string()))
        .unwrap();
    let r = send(&h1_client(), req).await;
    assert_eq!(r.status, 200, "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_backup_restores_routes_audit_reference_and_predictions() {
    let (m1, m2) = (DemoModel::start("v1").await, DemoModel::start("v2").await);
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let start = |dir: &Path| {
        Vigil::builder().upstream("v1", &m1.url()).upstream("v2", &m2.url()).config(CONFIG).state_dir(dir).start()
    };
    let vigil = start(&state).await;

    // An admin change and an uploaded reference, both audited and saved in the state dir.
    let r = vigil.admin("POST", "/admin/versions/v2/activate", None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let csv = vigil::demo::reference_csv(300, 9);
    let r = vigil.admin_req("PUT", "/admin/reference", Some(&csv), &[("content-type", "text/csv")]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    // The analysis thread takes the new reference at its next tick; records (and so logged
    // predictions) start once it has.
    eventually("the uploaded reference in use", || async {
        let d = vigil.admin("GET", "/admin/drift", None).await.json();
        d["status"] == "ok" && d["reference"]["rows"] == 300
    })
    .await;
    for i in 0..20 {
        infer(&vigil, &format!("req-{i}")).await;
    }
    eventually("40 rows in predictions.db", || async { count_rows(&state, "") == 40 }).await;

    // The backup, while vigil runs.
    let archive = tmp.path().join("backup.tar");
    let out = vigil_cmd(&["backup", "--out", archive.to_str().unwrap(), "--state-dir", state.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let listing = String::from_utf8_lossy(&out.stdout);
    for name in ["state.json", "audit.jsonl", "reference.json", "reference.jsonl", "predictions.db"] {
        assert!(listing.contains(name), "{name} not saved: {}", text(&out));
    }
    assert_eq!(vigil.stop().await.code(), Some(0));

    // One flipped byte in the prediction log's data (its page 1): nothing restored.
    let mut bad = std::fs::read(&archive).unwrap();
    let db_at = bad.windows(16).position(|w| w == b"SQLite format 3\0").expect("the db in the archive");
    bad[db_at + 200] ^= 0x01;
    let bad_path = tmp.path().join("bad.tar");
    std::fs::write(&bad_path, &bad).unwrap();
    let fresh = tmp.path().join("fresh");
    let out = vigil_cmd(&["restore", bad_path.to_str().unwrap(), "--state-dir", fresh.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing was restored"), "{}", text(&out));
    assert!(!fresh.exists(), "a corrupt archive wrote {}", fresh.display());

    // The good archive into a new state dir.
    let new = tmp.path().join("new");
    let out = vigil_cmd(&["restore", archive.to_str().unwrap(), "--state-dir", new.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("audit: ok: 2 entries"), "{}", text(&out));
    // Restoring over it again is refused and says why.
    let out = vigil_cmd(&["restore", archive.to_str().unwrap(), "--state-dir", new.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--force"), "{}", text(&out));

    let out = vigil_cmd(&["audit", "verify", "--state-dir", new.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(count_rows(&new, ""), 40);

    // vigil on the restored dir: the changed routes and the uploaded reference are back.
    let vigil = start(&new).await;
    let versions = vigil.versions().await;
    assert_eq!(versions["active"], "v2", "{versions}");
    let r = vigil.admin("GET", "/admin/reference", None).await.json();
    assert_eq!(r["reference"]["rows"], 300, "{r}");
    assert_eq!(r["reference"]["source"]["kind"], "upload", "{r}");
    assert_eq!(vigil.stop().await.code(), Some(0));
}

#[test]
fn usage_errors_exit_2_and_a_missing_state_dir_exits_1() {
    let out = vigil_cmd(&["backup"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nope");
    let archive = tmp.path().join("b.tar");
    let out = vigil_cmd(&["backup", "--out", archive.to_str().unwrap(), "--state-dir", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope"), "{}", text(&out));
    assert!(!archive.exists());
    let out = vigil_cmd(&["restore", archive.to_str().unwrap(), "--state-dir", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
}
