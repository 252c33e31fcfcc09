//! Admin token: every mutating route needs `Authorization: Bearer <token>` once a token is set
//! (VIGIL_ADMIN_TOKEN or admin.token_file); read-only routes stay open.

mod support;

use serde_json::Value;
use support::*;

const TOKEN: &str = "s3cret-token";

#[track_caller]
fn assert_unauthorized(r: &Resp, what: &str) {
    assert_eq!(r.status, 401, "{what}: {}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"), "{what}");
    let v = r.json();
    assert_eq!(v["kind"], "unauthorized", "{what}: {v}");
    assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{what}: {v}");
    let www = r.header("www-authenticate").unwrap_or_else(|| panic!("{what}: no WWW-Authenticate"));
    assert!(www.starts_with("Bearer"), "{what}: WWW-Authenticate {www:?}");
}

/// The mutating routes, in an order where each succeeds once authorized.
fn mutations(url3: &str) -> Vec<(&'static str, &'static str, Option<String>, u16)> {
    vec![
        ("PUT", "/admin/versions/v3", Some(format!(r#"{{"url": "{url3}"}}"#)), 201),
        ("POST", "/admin/versions/v2/activate", None, 200),
        ("POST", "/admin/rollback", None, 200),
        ("DELETE", "/admin/versions/v3", None, 200),
    ]
}

async fn check_token_enforced(vigil: &Vigil, token: &str, url3: &str) {
    let initial = vigil.versions().await;
    let bad_headers: [&[(&str, &str)]; 6] = [
        &[],
        &[("authorization", "Bearer wrong")],
        &[("authorization", "Bearer ")],
        &[("authorization", "Bearer s3cret")],
        &[("authorization", "Basic czNjcmV0LXRva2Vu")],
        &[("authorization", "s3cret-token")],
    ];
    for (method, path, body, _) in mutations(url3) {
        for headers in bad_headers {
            let r = vigil.admin_req(method, path, body.as_deref(), headers).await;
            assert_unauthorized(&r, &format!("{method} {path} with {headers:?}"));
        }
    }
    assert_eq!(vigil.versions().await, initial, "unauthorized requests changed the routes");
    assert!(vigil.audit().is_empty(), "unauthorized requests were audited");

    let bearer = format!("Bearer {token}");
    for (method, path, body, status) in mutations(url3) {
        let r = vigil.admin_req(method, path, body.as_deref(), &[("authorization", &bearer)]).await;
        assert_eq!(r.status.as_u16(), status, "{method} {path} with the right token: {}", r.text());
    }
    let audit = vigil.audit();
    assert_eq!(audit.len(), 4);
    assert!(audit.iter().all(|e| e["actor"] == "admin"), "{audit:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutations_need_the_env_token() {
    let (u1, u2, u3) = (Upstream::start("u1").await, Upstream::start("u2").await, Upstream::start("u3").await);
    let vigil = Vigil::builder()
        .upstream("v1", &u1.url())
        .upstream("v2", &u2.url())
        .env("VIGIL_ADMIN_TOKEN", TOKEN)
        .start()
        .await;
    check_token_enforced(&vigil, TOKEN, &u3.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_routes_stay_open() {
    let u1 = Upstream::start("u1").await;
    let vigil = Vigil::builder().upstream("v1", &u1.url()).env("VIGIL_ADMIN_TOKEN", TOKEN).start().await;
    for path in ["/healthz", "/readyz", "/metrics", "/admin/versions", "/admin/versions/v1", "/admin/latency"] {
        let r = vigil.admin("GET", path, None).await;
        assert_eq!(r.status, 200, "GET {path}: {}", r.text());
    }
    // The data path never asks for the admin token.
    assert_eq!(get(&vigil.url("/echo")).await.status, 200);
    // Errors other than auth keep their meaning for token holders.
    let r = vigil
        .admin_req("POST", "/admin/versions/nope/activate", None, &[("authorization", &format!("Bearer {TOKEN}"))])
        .await;
    assert_eq!(r.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_file_works() {
    let (u1, u2, u3) = (Upstream::start("u1").await, Upstream::start("u2").await, Upstream::start("u3").await);
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "file-token\n").unwrap();
    let config = format!(
        "[admin]\ntoken_file = \"{}\"\n\n[[versions]]\nname = \"v1\"\nurl = \"{}\"\n\n[[versions]]\nname = \"v2\"\nurl = \"{}\"\n",
        token_file.display(),
        u1.url(),
        u2.url()
    );
    let vigil = Vigil::builder().config(&config).start().await;
    check_token_enforced(&vigil, "file-token", &u3.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn env_token_wins_over_token_file() {
    let u1 = Upstream::start("u1").await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "file-token\n").unwrap();
    let config = format!(
        "[admin]\ntoken_file = \"{}\"\n\n[[versions]]\nname = \"v1\"\nurl = \"{}\"\n",
        token_file.display(),
        u1.url()
    );
    let vigil = Vigil::builder().config(&config).env("VIGIL_ADMIN_TOKEN", "env-token").start().await;
    let body = format!(r#"{{"url": "{}"}}"#, u1.url());
    let put = |token: &str| {
        let auth = format!("Bearer {token}");
        let (vigil, body) = (&vigil, body.clone());
        async move { vigil.admin_req("PUT", "/admin/versions/v9", Some(&body), &[("authorization", &auth)]).await }
    };
    assert_unauthorized(&put("file-token").await, "the file's token while VIGIL_ADMIN_TOKEN is set");
    let r = put("env-token").await;
    assert_eq!(r.status, 201, "{}", r.text());
    let v: Value = r.json();
    assert_eq!(v["name"], "v9");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_the_admin_api_is_open() {
    let (u1, u2) = (Upstream::start("u1").await, Upstream::start("u2").await);
    let vigil = Vigil::builder().upstream("v1", &u1.url()).upstream("v2", &u2.url()).start().await;
    let r = vigil.admin("POST", "/admin/versions/v2/activate", None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(vigil.audit()[0]["actor"], "anonymous");
}

/// RFC 9110 §11.1: the authentication scheme is a case-insensitive token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_scheme_is_case_insensitive() {
    let (u1, u2) = (Upstream::start("u1").await, Upstream::start("u2").await);
    let vigil = Vigil::builder()
        .upstream("v1", &u1.url())
        .upstream("v2", &u2.url())
        .env("VIGIL_ADMIN_TOKEN", TOKEN)
        .start()
        .await;
    let auth = format!("BEARER {TOKEN}");
    let r = vigil.admin_req("POST", "/admin/versions/v2/activate", None, &[("authorization", &auth)]).await;
    assert_eq!(r.status, 200, "{}", r.text());
}
