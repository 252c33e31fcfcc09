//! `GET /admin/performance[?version=V][&window=W]`: the last performance evaluation, per version
//! and window (realised metrics over labelled records, estimated ones, baseline gaps, segments).

use super::reply::{json, query_param as query};
use super::{Admin, AdminResponse, ApiError};
use http::{Request, StatusCode};
use hyper::body::Incoming;

pub fn get(admin: &Admin, req: &Request<Incoming>) -> Result<AdminResponse, ApiError> {
    let Some(ctl) = admin.drift.as_ref() else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "performance_disabled",
            "performance monitoring is off (capture.enabled = false, or drift and performance both disabled)",
        ));
    };
    let snap = ctl.handle.snapshot.load();
    let perf = &snap.performance;
    let version = query(req, "version");
    let window = query(req, "window");
    if let Some(w) = window {
        if !perf.windows.iter().any(|x| x == w) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "unknown_window",
                format!("no performance window {w:?}; configured: {}", perf.windows.join(", ")),
            ));
        }
    }
    let mut versions = serde_json::Map::new();
    for (v, reports) in &perf.versions {
        if version.is_some_and(|x| x != v) {
            continue;
        }
        let mut by_window = serde_json::Map::new();
        for (w, r) in reports {
            if window.is_some_and(|x| x != w) {
                continue;
            }
            by_window.insert(w.clone(), serde_json::to_value(r).expect("reports serialize"));
        }
        versions.insert(v.clone(), serde_json::Value::Object(by_window));
    }
    if let Some(v) = version {
        if versions.is_empty() {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_version",
                format!("no performance figures for version {v:?} (no analysed traffic from it yet)"),
            ));
        }
    }
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({
            "evaluated_at": snap.evaluated_at,
            "status": perf.status,
            "reason": perf.reason,
            "windows": perf.windows,
            "versions": versions,
        }),
    ))
}
