//! The admin API over versions: register, change, delete, activate, roll back; its effect on which
//! upstream answers; its error cases; canary weights; the audit trail and the state file.

mod support;

use serde_json::{json, Value};
use support::*;

struct Setup {
    u1: Upstream,
    u2: Upstream,
    u3: Upstream,
    vigil: Vigil,
}

/// v1 (active) on u1, v2 on u2; u3 is free for registering.
async fn setup() -> Setup {
    let (u1, u2, u3) = (Upstream::start("u1").await, Upstream::start("u2").await, Upstream::start("u3").await);
    let vigil = Vigil::builder().upstream("v1", &u1.url()).upstream("v2", &u2.url()).start().await;
    Setup { u1, u2, u3, vigil }
}

/// The upstreams answering `n` sequential requests, deduplicated.
async fn answering(vigil: &Vigil, n: usize) -> Vec<String> {
    let client = h1_client();
    let mut seen = Vec::new();
    for _ in 0..n {
        let u = vigil.which(&client).await;
        if !seen.contains(&u) {
            seen.push(u);
        }
    }
    seen
}

fn version<'a>(view: &'a Value, name: &str) -> &'a Value {
    view["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("no version {name} in {view}"))
}

#[track_caller]
fn assert_api_error(r: &Resp, status: u16, kind: &str) {
    assert_eq!(r.status.as_u16(), status, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v = r.json();
    assert_eq!(v["kind"], kind, "{v}");
    assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "no error message: {v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_are_listed_with_their_routing() {
    let s = setup().await;
    let view = s.vigil.versions().await;
    assert_eq!(view["active"], "v1");
    assert_eq!(view["previous"], Value::Null);
    assert_eq!(view["versions"].as_array().unwrap().len(), 2);
    let v1 = version(&view, "v1");
    assert_eq!(
        *v1,
        json!({"name": "v1", "url": s.u1.url(), "weight": 0, "protocol": "auto", "active": true, "traffic_share": 100})
    );
    let v2 = version(&view, "v2");
    assert_eq!(
        *v2,
        json!({"name": "v2", "url": s.u2.url(), "weight": 0, "protocol": "auto", "active": false, "traffic_share": 0})
    );
    let r = s.vigil.admin("GET", "/admin/versions/v2", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), *v2);
    assert_eq!(answering(&s.vigil, 10).await, ["u1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activate_and_rollback_move_the_traffic() {
    let s = setup().await;
    let vigil = &s.vigil;
    let r = vigil.admin("POST", "/admin/versions/v2/activate", None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let view = r.json();
    assert_eq!(view["active"], "v2");
    assert_eq!(view["previous"], "v1");
    assert_eq!(version(&view, "v2")["traffic_share"], 100);
    assert_eq!(version(&view, "v1")["traffic_share"], 0);
    assert_eq!(answering(vigil, 20).await, ["u2"]);
    let m = vigil.metrics().await;
    assert_eq!(m.sum("vigil_active_version_info", &[("version", "v2")]), 1.0);
    assert_eq!(m.sum("vigil_active_version_info", &[("version", "v1")]), 0.0);

    let r = vigil.admin("POST", "/admin/rollback", None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let view = r.json();
    assert_eq!(view["active"], "v1");
    assert_eq!(view["previous"], Value::Null);
    assert_eq!(answering(vigil, 20).await, ["u1"]);
    let m = vigil.metrics().await;
    assert_eq!(m.sum("vigil_active_version_info", &[("version", "v1")]), 1.0);
    assert_eq!(m.sum("vigil_active_version_info", &[("version", "v2")]), 0.0);

    // Nothing left to roll back to.
    assert_api_error(&vigil.admin("POST", "/admin/rollback", None).await, 409, "conflict");
    assert_eq!(answering(vigil, 5).await, ["u1"]);
    assert!(s.u2.requests_to("/echo").len() == 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activate_resets_weight_and_rollback_zeroes_the_rolled_back_version() {
    let s = setup().await;
    let vigil = &s.vigil;
    let r = vigil.admin("PUT", "/admin/versions/v2", Some(json!({"weight": 30}))).await;
    assert_eq!(r.status, 200);
    let r = vigil.admin("POST", "/admin/versions/v2/activate", None).await;
    let view = r.json();
    assert_eq!(version(&view, "v2")["weight"], 0, "activation is a full promotion: {view}");
    assert_eq!(version(&view, "v2")["traffic_share"], 100);
    assert_eq!(version(&view, "v1")["traffic_share"], 0);

    // The active version takes what the canaries leave: a weight for it is refused.
    let r = vigil.admin("PUT", "/admin/versions/v2", Some(json!({"weight": 40}))).await;
    assert_api_error(&r, 400, "invalid");
    // v1, the previous, is given a canary share; rollback makes it active again (weight 0) and
    // leaves the version rolled back from with no traffic.
    let r = vigil.admin("PUT", "/admin/versions/v1", Some(json!({"weight": 20}))).await;
    assert_eq!(r.status, 200);
    // 100 requests at 20%: the chance that u1 never answers is 0.8^100, about 2e-10.
    let mut seen = answering(vigil, 100).await;
    seen.sort();
    assert_eq!(seen, ["u1", "u2"]);
    let view = vigil.admin("POST", "/admin/rollback", None).await.json();
    assert_eq!(view["active"], "v1");
    assert_eq!(version(&view, "v2")["weight"], 0, "{view}");
    assert_eq!(version(&view, "v2")["traffic_share"], 0);
    assert_eq!(version(&view, "v1")["traffic_share"], 100);
    assert_eq!(answering(vigil, 20).await, ["u1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_change_and_delete_a_version() {
    let s = setup().await;
    let vigil = &s.vigil;
    let r = vigil.admin("PUT", "/admin/versions/v3", Some(json!({"url": s.u3.url()}))).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(
        r.json(),
        json!({"name": "v3", "url": s.u3.url(), "weight": 0, "protocol": "auto", "active": false, "traffic_share": 0})
    );
    assert_eq!(vigil.admin("GET", "/admin/versions/v3", None).await.status, 200);
    assert_eq!(answering(vigil, 10).await, ["u1"]);

    // Weight 100: the canary takes everything.
    let r = vigil.admin("PUT", "/admin/versions/v3", Some(json!({"weight": 100}))).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["traffic_share"], 100);
    assert_eq!(version(&vigil.versions().await, "v1")["traffic_share"], 0);
    assert_eq!(answering(vigil, 20).await, ["u3"]);

    // A new URL takes effect.
    let r = vigil.admin("PUT", "/admin/versions/v3", Some(json!({"url": s.u2.url()}))).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["url"], s.u2.url());
    assert_eq!(answering(vigil, 10).await, ["u2"]);

    // So does a protocol.
    let r = vigil.admin("PUT", "/admin/versions/v3", Some(json!({"protocol": "http2"}))).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["protocol"], "http2");
    let before = s.u2.requests_to("/echo").len();
    assert_eq!(answering(vigil, 3).await, ["u2"]);
    let after = s.u2.requests_to("/echo");
    assert_eq!(after.len(), before + 3);
    assert!(after[before..].iter().all(|r| r.version == http::Version::HTTP_2));

    // Delete: back to the active version.
    let r = vigil.admin("DELETE", "/admin/versions/v3", None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    assert_eq!(body["deleted"], "v3");
    assert!(body["routes"]["versions"].as_array().unwrap().iter().all(|v| v["name"] != "v3"));
    assert_eq!(answering(vigil, 10).await, ["u1"]);
    assert_api_error(&vigil.admin("GET", "/admin/versions/v3", None).await, 404, "unknown_version");
    assert!(s.u3.requests_to("/echo").len() == 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused_with_json_errors_and_change_nothing() {
    let s = setup().await;
    let vigil = &s.vigil;
    let initial = vigil.versions().await;
    let url = s.u3.url();

    // Unknown versions: 404.
    assert_api_error(&vigil.admin("GET", "/admin/versions/nope", None).await, 404, "unknown_version");
    assert_api_error(&vigil.admin("POST", "/admin/versions/nope/activate", None).await, 404, "unknown_version");
    assert_api_error(&vigil.admin("DELETE", "/admin/versions/nope", None).await, 404, "unknown_version");

    // Bad bodies: 400.
    for body in [
        r#"{"weight": 5}"#,                   // new version without url
        "not json",                           // not JSON
        "",                                   // empty
        r#"{"url": 5}"#,                      // wrong type
        r#"{"weight": -1}"#,                  // negative
        r#"{"weight": 150}"#,                 // not a percentage
        r#"{"url": "ftp://example.com"}"#,    // not http
        r#"{"url": "http://x/?q=1"}"#,        // query string
        r#"{"protocol": "h3"}"#,              // unknown protocol
        r#"{"url": "http://x", "bogus": 1}"#, // unknown field
        "[1, 2]",                             // not an object
    ] {
        let r = vigil.admin_req("PUT", "/admin/versions/v9", Some(body), &[]).await;
        assert_api_error_400(&r);
    }
    let r = vigil.admin("PUT", "/admin/versions/v2", Some(json!({"weight": 101}))).await;
    assert_api_error_400(&r);
    let r = vigil.admin("PUT", "/admin/versions/bad$name", Some(json!({"url": url}))).await;
    assert_api_error_400(&r);
    let r = vigil.admin("PUT", "/admin/versions/.hidden", Some(json!({"url": url}))).await;
    assert_api_error_400(&r);
    // Canary weights summing over 100.
    assert_eq!(vigil.admin("PUT", "/admin/versions/v3", Some(json!({"url": url, "weight": 60}))).await.status, 201);
    let r = vigil.admin("PUT", "/admin/versions/v2", Some(json!({"weight": 50}))).await;
    assert_api_error_400(&r);
    assert_eq!(vigil.admin("DELETE", "/admin/versions/v3", None).await.status, 200);

    // Conflicts: 409.
    assert_api_error(&vigil.admin("DELETE", "/admin/versions/v1", None).await, 409, "conflict");
    assert_api_error(&vigil.admin("POST", "/admin/rollback", None).await, 409, "conflict");

    // Wrong method: 405 with Allow.
    for (method, path, allow) in [
        ("GET", "/admin/rollback", "POST"),
        ("GET", "/admin/versions/v1/activate", "POST"),
        ("PATCH", "/admin/versions/v1", "GET, PUT, DELETE"),
        ("POST", "/admin/versions/v1", "GET, PUT, DELETE"),
        ("POST", "/admin/versions", "GET"),
        ("DELETE", "/healthz", "GET"),
        ("POST", "/metrics", "GET"),
        ("PUT", "/admin/latency", "GET"),
    ] {
        let r = vigil.admin(method, path, None).await;
        assert_api_error(&r, 405, "method_not_allowed");
        assert_eq!(r.header("allow"), Some(allow), "{method} {path}");
    }

    // Unknown routes: 404 (`/` is the dashboard, tests/dashboard.rs).
    for path in ["/dashboard", "/nope", "/admin", "/admin/versions/v1/extra", "/admin/versions/v1/activate/now"] {
        assert_api_error(&vigil.admin("GET", path, None).await, 404, "not_found");
    }

    assert_eq!(vigil.versions().await, initial, "refused requests changed the routes");
    let audit = vigil.audit();
    assert_eq!(audit.len(), 2, "only the v3 put and delete are audited: {audit:?}");
}

/// 400 with a JSON error; the kind is `bad_request` (unreadable body) or `invalid` (refused edit).
#[track_caller]
fn assert_api_error_400(r: &Resp) {
    assert_eq!(r.status.as_u16(), 400, "{}", r.text());
    let v = r.json();
    assert!(matches!(v["kind"].as_str(), Some("bad_request" | "invalid")), "{v}");
    assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn canary_split_follows_the_weight_and_matches_metrics() {
    let s = setup().await;
    let vigil = &s.vigil;
    let r = vigil.admin("PUT", "/admin/versions/v2", Some(json!({"weight": 50}))).await;
    assert_eq!(r.status, 200);
    let view = vigil.versions().await;
    assert_eq!(version(&view, "v1")["traffic_share"], 50);
    assert_eq!(version(&view, "v2")["traffic_share"], 50);

    let mut tasks = Vec::new();
    for _ in 0..8 {
        let url = vigil.url("/echo/canary");
        tasks.push(tokio::spawn(async move {
            let client = h1_client();
            let mut counts = (0u32, 0u32);
            for _ in 0..50 {
                let r = send(&client, request("GET", &url).body(TestBody::empty()).unwrap()).await;
                assert_eq!(r.status, 200);
                match r.upstream().as_str() {
                    "u1" => counts.0 += 1,
                    "u2" => counts.1 += 1,
                    other => panic!("answered by {other}"),
                }
            }
            counts
        }));
    }
    let (mut c1, mut c2) = (0, 0);
    for t in tasks {
        let (a, b) = t.await.unwrap();
        c1 += a;
        c2 += b;
    }
    assert_eq!(c1 + c2, 400);
    // Expected 200 each (sd 10): 100 is ten standard deviations away.
    assert!(c1 > 100 && c2 > 100, "weight 50 split 400 requests as v1={c1} v2={c2}");
    assert_eq!(s.u1.requests_to("/echo/canary").len() as u32, c1);
    assert_eq!(s.u2.requests_to("/echo/canary").len() as u32, c2);
    let m = vigil.metrics().await;
    assert_eq!(m.sum("vigil_requests_total", &[("version", "v1"), ("code", "200")]), c1 as f64);
    assert_eq!(m.sum("vigil_requests_total", &[("version", "v2"), ("code", "200")]), c2 as f64);

    // Weight 0: no traffic to the canary.
    assert_eq!(vigil.admin("PUT", "/admin/versions/v2", Some(json!({"weight": 0}))).await.status, 200);
    assert_eq!(answering(vigil, 50).await, ["u1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_trail_has_one_line_per_mutation() {
    let s = setup().await;
    let vigil = &s.vigil;
    let url = s.u3.url();
    let put = |body: Value| vigil.admin("PUT", "/admin/versions/v3", Some(body));

    assert_eq!(put(json!({"url": url})).await.status, 201); // 1
    assert_eq!(put(json!({"url": url})).await.status, 200); // no-op
    let r =
        vigil.admin_req("PUT", "/admin/versions/v3", Some(r#"{"weight": 10}"#), &[("x-vigil-actor", "alice")]).await;
    assert_eq!(r.status, 200); // 2
    assert_eq!(vigil.admin("POST", "/admin/versions/v2/activate", None).await.status, 200); // 3
    assert_eq!(vigil.admin("POST", "/admin/versions/v2/activate", None).await.status, 200); // no-op
    assert_eq!(vigil.admin("POST", "/admin/rollback", None).await.status, 200); // 4
    assert_eq!(vigil.admin("POST", "/admin/rollback", None).await.status, 409); // refused
    assert_eq!(vigil.admin("DELETE", "/admin/versions/v1", None).await.status, 409); // refused
    assert_eq!(vigil.admin("DELETE", "/admin/versions/v3", None).await.status, 200); // 5

    let audit = vigil.audit();
    let actions: Vec<(&str, &Value)> = audit.iter().map(|e| (e["action"].as_str().unwrap(), &e["target"])).collect();
    assert_eq!(
        actions,
        [
            ("version.put", &json!("v3")),
            ("version.put", &json!("v3")),
            ("version.activate", &json!("v2")),
            ("version.rollback", &Value::Null),
            ("version.delete", &json!("v3")),
        ],
        "{audit:#?}"
    );
    for (i, e) in audit.iter().enumerate() {
        let time = e["time"].as_str().unwrap_or_else(|| panic!("no time: {e}"));
        assert!(time.len() >= 20 && time.ends_with('Z') && time.as_bytes()[10] == b'T', "time {time:?}");
        let remote = e["remote"].as_str().unwrap_or_else(|| panic!("no remote: {e}"));
        assert!(remote.starts_with("127.0.0.1:"), "remote {remote:?}");
        let actor = if i == 1 { "alice" } else { "anonymous" };
        assert_eq!(e["actor"], actor);
        assert!(e["before"].is_object() && e["after"].is_object(), "{e}");
        assert_ne!(e["before"], e["after"]);
    }
    let names = |v: &Value| -> Vec<String> {
        v["versions"].as_array().unwrap().iter().map(|v| v["name"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(names(&audit[0]["before"]), ["v1", "v2"]);
    assert_eq!(names(&audit[0]["after"]), ["v1", "v2", "v3"]);
    assert_eq!(version(&audit[1]["before"], "v3")["weight"], 0);
    assert_eq!(version(&audit[1]["after"], "v3")["weight"], 10);
    assert_eq!((&audit[2]["before"]["active"], &audit[2]["after"]["active"]), (&json!("v1"), &json!("v2")));
    assert_eq!(audit[2]["after"]["previous"], "v1");
    assert_eq!((&audit[3]["before"]["active"], &audit[3]["after"]["active"]), (&json!("v2"), &json!("v1")));
    assert_eq!(names(&audit[4]["after"]), ["v1", "v2"]);
    // Each entry's "before" is the previous entry's "after".
    for w in audit.windows(2) {
        assert_eq!(w[0]["after"], w[1]["before"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_decisions_are_saved_in_the_state_file() {
    let s = setup().await;
    let vigil = &s.vigil;
    assert_eq!(
        vigil.admin("PUT", "/admin/versions/v3", Some(json!({"url": s.u3.url(), "weight": 7}))).await.status,
        201
    );
    assert_eq!(vigil.admin("POST", "/admin/versions/v2/activate", None).await.status, 200);
    let state = vigil.state_file().expect("state.json written");
    assert_eq!(state["active"], "v2");
    assert_eq!(state["previous"], "v1");
    assert_eq!(version(&state, "v3")["weight"], 7);
    assert_eq!(version(&state, "v3")["url"], s.u3.url());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_previous_version_leaves_nothing_to_roll_back_to() {
    let s = setup().await;
    let vigil = &s.vigil;
    assert_eq!(vigil.admin("POST", "/admin/versions/v2/activate", None).await.json()["previous"], "v1");
    let r = vigil.admin("DELETE", "/admin/versions/v1", None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["routes"]["previous"], Value::Null);
    assert_api_error(&vigil.admin("POST", "/admin/rollback", None).await, 409, "conflict");
    assert_eq!(answering(vigil, 5).await, ["u2"]);
    assert!(s.u1.requests_to("/echo").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_admin_bodies_are_refused() {
    let s = setup().await;
    let body = format!(r#"{{"url": "{}", "pad": "{}"}}"#, s.u3.url(), "x".repeat(100_000));
    let r = s.vigil.admin_req("PUT", "/admin/versions/v3", Some(&body), &[]).await;
    assert_api_error(&r, 413, "payload_too_large");
    assert_api_error(&s.vigil.admin("GET", "/admin/versions/v3", None).await, 404, "unknown_version");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mutation_that_cannot_be_audited_is_refused() {
    let (u1, u2) = (Upstream::start("u1").await, Upstream::start("u2").await);
    let state = tempfile::tempdir().unwrap();
    // A directory where the audit file should be: appending fails, even as root.
    std::fs::create_dir(state.path().join("audit.jsonl")).unwrap();
    let vigil =
        Vigil::builder().upstream("v1", &u1.url()).upstream("v2", &u2.url()).state_dir(state.path()).start().await;
    let r = vigil.admin("POST", "/admin/versions/v2/activate", None).await;
    assert_api_error(&r, 500, "audit_write_failed");
    assert_eq!(vigil.versions().await["active"], "v1");
    assert_eq!(answering(&vigil, 5).await, ["u1"]);
    // state.json was written before the audit failed, then put back: it still names v1.
    if let Some(saved) = vigil.state_file() {
        assert_eq!(saved["active"], "v1", "state kept a refused change: {saved}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mutation_that_cannot_be_saved_leaves_no_audit_entry() {
    let (u1, u2) = (Upstream::start("u1").await, Upstream::start("u2").await);
    let state = tempfile::tempdir().unwrap();
    // A directory where the state file's temporary copy goes: saving fails, even as root.
    std::fs::create_dir(state.path().join("state.json.tmp")).unwrap();
    let vigil =
        Vigil::builder().upstream("v1", &u1.url()).upstream("v2", &u2.url()).state_dir(state.path()).start().await;
    let r = vigil.admin("POST", "/admin/versions/v2/activate", None).await;
    assert_api_error(&r, 500, "state_write_failed");
    assert_eq!(vigil.versions().await["active"], "v1", "the refused change took effect");
    assert_eq!(answering(&vigil, 5).await, ["u1"]);
    let audit = vigil.audit();
    assert!(audit.is_empty(), "the audit trail records a change that was refused: {audit:?}");
}
