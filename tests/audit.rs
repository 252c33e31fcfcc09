//! The audit trail is a hash chain: mutations through the admin API append chained lines,
//! `GET /admin/audit` reads them back, a restart continues the chain, and `vigil audit verify`
//! (the real binary) passes an untouched trail and names the first edited, garbled or deleted line.

mod support;

use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use support::*;
use vigil::store::audit::{sha256_hex, GENESIS};

/// `vigil audit verify ARGS`: exit code and stdout + stderr.
fn verify(args: &[&str]) -> (i32, String) {
    let out = Command::new(BIN).args(["audit", "verify"]).args(args).env_remove("VIGIL_CONFIG").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().expect("exited"), text)
}

fn verify_dir(dir: &Path) -> (i32, String) {
    verify(&["--state-dir", dir.to_str().unwrap()])
}

fn audit_lines(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("audit.jsonl")).unwrap().lines().map(str::to_owned).collect()
}

#[tokio::test]
async fn mutations_are_chained_read_back_verified_and_tampering_is_named() {
    let (m1, m2) = (DemoModel::start("v1").await, DemoModel::start("v2").await);
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let start = || Vigil::builder().upstream("v1", &m1.url()).upstream("v2", &m2.url()).state_dir(&state).start();

    let vigil = start().await;
    for (method, path, body) in [
        ("PUT", "/admin/versions/v3", Some(json!({"url": m2.url()}))),
        ("POST", "/admin/versions/v2/activate", None),
        ("POST", "/admin/rollback", None),
        ("PUT", "/admin/versions/v3", Some(json!({"weight": 10}))),
        ("POST", "/admin/versions/v2/activate", None),
    ] {
        let r = vigil.admin(method, path, body).await;
        assert!(r.status.is_success(), "{method} {path}: {} {}", r.status, r.text());
    }

    // GET /admin/audit: the entries as stored, chained, newest last.
    let lines = audit_lines(&state);
    assert_eq!(lines.len(), 5);
    let r = vigil.admin("GET", "/admin/audit", None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let got = r.json();
    assert_eq!(got["count"], 5);
    assert_eq!(got["chain"]["ok"], true, "{got}");
    assert_eq!(got["head"], sha256_hex(lines[4].as_bytes()));
    let entries = got["entries"].as_array().unwrap();
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(e["seq"], i as u64 + 1, "{e}");
        let prev = if i == 0 { GENESIS.to_owned() } else { sha256_hex(lines[i - 1].as_bytes()) };
        assert_eq!(e["prev"], prev, "entry {i}");
    }
    let actions: Vec<&str> = entries.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["version.put", "version.activate", "version.rollback", "version.put", "version.activate"]);

    let r = vigil.admin("GET", "/admin/audit?action=version.activate&limit=1", None).await;
    let one = r.json();
    assert_eq!((one["count"].clone(), one["matched"].clone()), (json!(1), json!(2)), "{one}");
    assert_eq!(one["entries"][0]["seq"], 5);
    let r = vigil.admin("GET", "/admin/audit?limit=0", None).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["kind"], "bad_request");
    let r = vigil.admin("POST", "/admin/audit", None).await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET"));

    // The binary agrees with the API.
    let head = got["head"].as_str().unwrap().to_owned();
    let (code, out) = verify_dir(&state);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.trim(), format!("ok: 5 entries, head {head}"));

    // A restart on the same state dir continues the chain.
    let status = vigil.stop().await;
    assert!(status.success(), "{status:?}");
    let vigil = start().await;
    let r = vigil.admin("POST", "/admin/rollback", None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let got = vigil.admin("GET", "/admin/audit?limit=1", None).await.json();
    assert_eq!(got["entries"][0]["seq"], 6);
    assert_eq!(got["entries"][0]["prev"], head);
    let (code, out) = verify_dir(&state);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("ok: 6 entries, head "), "{out}");
    assert!(vigil.stop().await.success());

    // The state dir can come from a config file too.
    let config = tmp.path().join("vigil.toml");
    std::fs::write(&config, format!("[state]\ndir = {:?}\n", state.to_str().unwrap())).unwrap();
    let (code, out) = verify(&["--config", config.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");

    let pristine = audit_lines(&state);
    let write = |lines: &[String]| std::fs::write(state.join("audit.jsonl"), lines.join("\n") + "\n").unwrap();

    // One byte edited in a middle line, the JSON still valid: that line is named.
    let mut edited = pristine.clone();
    assert!(edited[2].contains("\"anonymous\""), "{}", edited[2]);
    edited[2] = edited[2].replacen("\"anonymous\"", "\"anonymoux\"", 1);
    write(&edited);
    let (code, out) = verify_dir(&state);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("line 3 (seq 3): edited: prev mismatch at line 4"), "{out}");

    // One byte that breaks the JSON.
    let mut garbled = pristine.clone();
    garbled[2].remove(0);
    write(&garbled);
    let (code, out) = verify_dir(&state);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("line 3: garbled: not JSON"), "{out}");

    // A line deleted: the gap in seq is named.
    let mut deleted = pristine.clone();
    deleted.remove(3);
    write(&deleted);
    let (code, out) = verify_dir(&state);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("line 4 (seq 5): deleted: seq gap 3→5"), "{out}");

    // Put back, it verifies again.
    write(&pristine);
    assert_eq!(verify_dir(&state).0, 0);

    // No trail: a usage error.
    let (code, out) = verify_dir(&tmp.path().join("nowhere"));
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("audit.jsonl"), "{out}");
}

#[tokio::test]
async fn a_trail_from_before_the_chain_is_continued_after_its_lines() {
    let m1 = DemoModel::start("v1").await;
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let old = json!({"time": "2024-01-01T00:00:00.000Z", "actor": "admin", "remote": null,
        "action": "version.activate", "target": "v1", "before": null, "after": null});
    std::fs::write(state.join("audit.jsonl"), format!("{old}\n{old}\n")).unwrap();

    let vigil = Vigil::builder().upstream("v1", &m1.url()).state_dir(&state).start().await;
    assert!(vigil.stderr().contains("entries from before the hash chain"), "{}", vigil.stderr());
    let r = vigil.admin("PUT", "/admin/versions/v2", Some(json!({"url": m1.url()}))).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let got: Value = vigil.admin("GET", "/admin/audit", None).await.json();
    assert_eq!(got["count"], 3);
    assert_eq!(got["entries"][2]["seq"], 1);
    assert_eq!(got["entries"][2]["prev"], sha256_hex(old.to_string().as_bytes()));
    assert_eq!(got["chain"]["starts_at_line"], 3, "{got}");

    let (code, out) = verify_dir(&state);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("ok: 1 entries") && out.contains("the chain starts at line 3"), "{out}");
}
