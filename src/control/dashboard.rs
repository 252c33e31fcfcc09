//! The live dashboard: `GET /` (the page) and `GET /dashboard/{app.js,app.css,favicon.svg}` (its
//! assets).
//!
//! Owns: the three static files in `src/control/dashboard/`, compiled into the binary with
//! `include_str!`, and the headers they are served with. The page itself only calls the admin API
//! from the browser (it polls the open GET routes every 2 s and keeps the last 10 minutes in a
//! ring on the client); nothing here reads vigil's state. May not touch: any other route, the
//! routes table, the auth (the page sends the token the user types, the API checks it).
//!
//! Served with `Content-Security-Policy: default-src 'self'` (no inline script or style, no CDN,
//! no external font: everything comes from this listener), `X-Content-Type-Options: nosniff`,
//! and `Cache-Control: no-cache` with a strong `ETag` (a SHA-256 prefix of the file), so a browser
//! revalidates each load and gets `304 Not Modified` until the binary changes.

use super::{AdminResponse, ApiError};
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::Full;
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

/// One file of the dashboard.
struct Asset {
    /// The name under `/dashboard/`, or `""` for the page at `/`.
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const ASSETS: [Asset; 4] = [
    Asset { name: "", content_type: "text/html; charset=utf-8", body: include_str!("dashboard/index.html") },
    Asset { name: "app.js", content_type: "text/javascript; charset=utf-8", body: include_str!("dashboard/app.js") },
    Asset { name: "app.css", content_type: "text/css; charset=utf-8", body: include_str!("dashboard/app.css") },
    Asset { name: "favicon.svg", content_type: "image/svg+xml", body: include_str!("dashboard/favicon.svg") },
];

/// Everything the page loads comes from this listener; no frame may embed it (clickjacking of
/// the activate / roll back buttons).
pub const CSP: &str = "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// `GET /`: the page.
pub fn index(headers: &HeaderMap) -> AdminResponse {
    serve(&ASSETS[0], headers)
}

/// `GET /dashboard/{name}`: one asset, or 404 naming the ones there are.
pub fn asset(name: &str, headers: &HeaderMap) -> Result<AdminResponse, ApiError> {
    match ASSETS.iter().find(|a| !a.name.is_empty() && a.name == name) {
        Some(a) => Ok(serve(a, headers)),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no dashboard asset {name:?}; there are app.js, app.css and favicon.svg"),
        )),
    }
}

/// The ETag of each asset, by position in [`ASSETS`], computed once.
fn etags() -> &'static [String; 4] {
    static ETAGS: OnceLock<[String; 4]> = OnceLock::new();
    ETAGS.get_or_init(|| {
        ASSETS.each_ref().map(|a| {
            let digest = Sha256::digest(a.body.as_bytes());
            let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
            format!("\"{hex}\"")
        })
    })
}

/// True when `If-None-Match` lists `etag` (or is `*`).
fn matches(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == etag || t == "*")
}

fn serve(asset: &Asset, headers: &HeaderMap) -> AdminResponse {
    let i = ASSETS.iter().position(|a| a.name == asset.name).unwrap_or(0);
    let etag = &etags()[i];
    let fresh = matches(headers, etag);
    let body = if fresh { Bytes::new() } else { Bytes::from_static(asset.body.as_bytes()) };
    let mut res = Response::new(Full::new(body));
    *res.status_mut() = if fresh { StatusCode::NOT_MODIFIED } else { StatusCode::OK };
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body(res: AdminResponse) -> String {
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn the_page_names_only_its_own_assets_and_every_test_id_it_promises() {
        let res = index(&HeaderMap::new());
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()[header::CONTENT_SECURITY_POLICY], CSP);
        assert!(CSP.starts_with("default-src 'self'"));
        let html = body(res).await;
        assert!(html.contains(r#"<script src="/dashboard/app.js""#), "{html}");
        assert!(html.contains(r#"<link rel="stylesheet" href="/dashboard/app.css""#), "{html}");
        // No CDN, no inline script or style (the CSP would block them and the console would say so).
        for banned in ["http://", "https://", "<style", "style=", "onclick=", "<script>"] {
            assert!(!html.contains(banned), "index.html contains {banned:?}");
        }
        // Nothing is loaded from elsewhere (the SVG namespace is a name, not a load).
        for a in &ASSETS {
            let text = a.body.replace("http://www.w3.org/2000/svg", "");
            assert!(!text.contains("https://") && !text.contains("http://"), "{} names another origin", a.name);
            assert!(!text.contains("@import") && !text.contains("url("), "{} loads from a URL", a.name);
        }
        for id in ["versions-table", "token-input", "rollback-button", "chart-latency", "chart-drift", "chart-traffic"]
        {
            assert!(html.contains(&format!(r#"data-testid="{id}""#)), "no data-testid {id}");
        }
    }

    #[tokio::test]
    async fn assets_revalidate_by_etag() {
        let res = asset("app.js", &HeaderMap::new()).unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()[header::CACHE_CONTROL], "no-cache");
        assert!(res.headers()[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/javascript"));
        let etag = res.headers()[header::ETAG].clone();
        assert!(!body(res).await.is_empty());

        let mut h = HeaderMap::new();
        h.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_str(&format!("\"nope\", {}", etag.to_str().unwrap())).unwrap(),
        );
        let res = asset("app.js", &h).unwrap();
        assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(res.headers()[header::ETAG], etag);
        assert!(body(res).await.is_empty());
        // Another file's tag does not match.
        assert_eq!(asset("app.css", &h).unwrap().status(), StatusCode::OK);
    }

    #[test]
    fn unknown_assets_are_404_and_name_the_real_ones() {
        let e = asset("../mod.rs", &HeaderMap::new()).unwrap_err();
        assert_eq!(e.status, StatusCode::NOT_FOUND);
        assert!(e.message.contains("app.js"), "{}", e.message);
        assert_eq!(asset("", &HeaderMap::new()).unwrap_err().status, StatusCode::NOT_FOUND);
    }
}
