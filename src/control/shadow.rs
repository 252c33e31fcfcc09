//! Shadow traffic's admin surface:
//! - `GET /admin/shadow`: mirror comparisons per candidate, budgets, paused state, request counts;
//! - `PUT /admin/shadow/mirrors/{name}` `{"fraction": 0.5}` / `DELETE` the same: start, change or
//!   stop mirroring to a candidate (audited);
//! - `GET /admin/robustness[?version=V]`: sensitivity, stress, adversarial and explanation
//!   results per version, and clients flagged for probing;
//! - `POST /admin/explain` `{"request": {...}, "path"?, "version"?, "row"?, "method"?, "nsamples"?}`
//!   and `GET /admin/explain/{request_id}[?row=&method=]`: one explanation, computed now by
//!   calling the model.

use super::reply::{json, query_param};
use super::versions::{actor, read_body};
use super::{Admin, AdminResponse, ApiError, Caller};
use crate::config::ExplainMethod;
use crate::shadow::ondemand::{self, Subject};
use crate::shadow::ShadowHandle;
use crate::store::audit::AuditEntry;
use crate::store::predlog::LogHandle;
use http::{Request, StatusCode};
use hyper::body::Incoming;
use serde::Deserialize;
use std::time::Duration;

/// Largest `POST /admin/explain` body.
const MAX_EXPLAIN_BODY: usize = 8 * 1024 * 1024;

fn handle(admin: &Admin) -> Result<&ShadowHandle, ApiError> {
    admin.shadow.as_ref().ok_or_else(|| {
        ApiError::new(StatusCode::NOT_FOUND, "shadow_disabled", "shadow traffic is off (shadow.enabled = false)")
    })
}

/// Runs `f` on the blocking pool: the shadow engine's locks are also taken by threads running
/// under SCHED_IDLE, which may be preempted while holding one; the control plane shares its
/// runtime thread with the data path and must never wait for them there.
async fn off_runtime<T: Send + 'static>(
    h: &ShadowHandle,
    f: impl FnOnce(&ShadowHandle) -> T + Send + 'static,
) -> Result<T, ApiError> {
    let h = h.clone();
    tokio::task::spawn_blocking(move || f(&h))
        .await
        .map_err(|e| ApiError::internal("internal", format!("shadow engine call failed: {e}")))
}

pub async fn get(admin: &Admin) -> Result<AdminResponse, ApiError> {
    let view = off_runtime(handle(admin)?, |h| h.view()).await?;
    Ok(json(StatusCode::OK, &view))
}

pub async fn robustness(admin: &Admin, req: &Request<Incoming>) -> Result<AdminResponse, ApiError> {
    let mut report = off_runtime(handle(admin)?, |h| h.robustness()).await?;
    if let Some(v) = query_param(req, "version") {
        let versions = report.get("versions").and_then(|x| x.as_array());
        match versions.and_then(|all| all.iter().find(|x| x["version"] == v).cloned()) {
            Some(one) => {
                report["versions"] = serde_json::json!([one]);
            }
            None => {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    "unknown_version",
                    format!("no robustness results for version {v:?} yet"),
                ))
            }
        }
    }
    Ok(json(StatusCode::OK, &report))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MirrorBody {
    fraction: f64,
}

/// The `PUT /admin/shadow/mirror/{name}` body (`{"fraction"}`) as a share from 0 to 1, or the
/// 400 message. Pure, so the fuzzer drives it (fuzz/fuzz_targets/admin.rs).
pub fn mirror_fraction(bytes: &[u8]) -> Result<f64, String> {
    let body: MirrorBody = super::versions::parse_json(bytes)?;
    if !(0.0..=1.0).contains(&body.fraction) {
        return Err(format!("fraction {}: expected a share of live requests from 0 to 1", body.fraction));
    }
    Ok(body.fraction)
}

pub async fn put_mirror(
    admin: &Admin,
    name: &str,
    req: Request<Incoming>,
    caller: &Caller,
) -> Result<AdminResponse, ApiError> {
    admin.auth.check(req.headers())?;
    let h = handle(admin)?;
    let actor = actor(&req, admin);
    let fraction = mirror_fraction(&super::versions::read_body(req, super::versions::MAX_BODY).await?)
        .map_err(ApiError::bad_request)?;
    let routes = admin.routes.load();
    if routes.get(name).is_none() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_version",
            format!("no version named {name:?}; register it first (PUT /admin/versions/{name})"),
        ));
    }
    if *routes.active().name == *name {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("{name:?} is the active version: it already answers live traffic; mirror to a candidate"),
        ));
    }
    let before = h.mirrors();
    audit(admin, &actor, caller, "mirror.put", name, &before, Some(fraction)).await?;
    let n = name.to_owned();
    off_runtime(h, move |h| h.set_mirror(&n, Some(fraction))).await?;
    Ok(json(StatusCode::OK, &serde_json::json!({"candidate": name, "fraction": fraction, "mirrors": h.mirrors()})))
}

pub async fn delete_mirror(
    admin: &Admin,
    name: &str,
    req: Request<Incoming>,
    caller: &Caller,
) -> Result<AdminResponse, ApiError> {
    admin.auth.check(req.headers())?;
    let h = handle(admin)?;
    let actor = actor(&req, admin);
    let before = h.mirrors();
    if !before.contains_key(name) {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "not_mirrored", format!("nothing is mirrored to {name:?}")));
    }
    audit(admin, &actor, caller, "mirror.delete", name, &before, None).await?;
    let n = name.to_owned();
    off_runtime(h, move |h| h.set_mirror(&n, None)).await?;
    Ok(json(StatusCode::OK, &serde_json::json!({"deleted": name, "mirrors": h.mirrors()})))
}

async fn audit(
    admin: &Admin,
    actor: &str,
    caller: &Caller,
    action: &str,
    name: &str,
    before: &std::collections::BTreeMap<String, f64>,
    fraction: Option<f64>,
) -> Result<(), ApiError> {
    let mut after = before.clone();
    match fraction {
        Some(f) => after.insert(name.to_owned(), f),
        None => after.remove(name),
    };
    let entry = AuditEntry {
        time: AuditEntry::now(),
        actor: actor.to_owned(),
        remote: Some(caller.remote.to_string()),
        action: action.to_owned(),
        target: Some(name.to_owned()),
        before: serde_json::json!({ "mirrors": before }),
        after: serde_json::json!({ "mirrors": after }),
        detail: None,
    };
    super::audit::append(admin, entry).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExplainBody {
    /// The request body the model would get, as JSON.
    request: serde_json::Value,
    path: Option<String>,
    version: Option<String>,
    #[serde(default)]
    row: usize,
    method: Option<ExplainMethod>,
    nsamples: Option<usize>,
}

pub async fn post_explain(admin: &Admin, req: Request<Incoming>) -> Result<AdminResponse, ApiError> {
    admin.auth.check(req.headers())?;
    let h = handle(admin)?.clone();
    let bytes = read_body(req, MAX_EXPLAIN_BODY).await?;
    let mut de = serde_json::Deserializer::from_slice(&bytes);
    let body: ExplainBody = serde_path_to_error::deserialize(&mut de)
        .map_err(|e| ApiError::bad_request(format!("invalid explain body at `{}`: {}", e.path(), e.inner())))?;
    let subject =
        Subject::Payload { body: bytes::Bytes::from(body.request.to_string()), path: body.path, version: body.version };
    ask(&h, subject, body.row, body.method, body.nsamples).await
}

pub async fn get_explain(admin: &Admin, request_id: &str, req: &Request<Incoming>) -> Result<AdminResponse, ApiError> {
    admin.auth.check(req.headers())?;
    let h = handle(admin)?.clone();
    let log: LogHandle = admin.feedback.as_ref().map(|f| f.log.clone()).ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "prediction_log_disabled",
            "explaining a logged request needs the prediction log (prediction_log.enabled)",
        )
    })?;
    let row: usize = match query_param(req, "row") {
        Some(r) => r.parse().map_err(|_| ApiError::bad_request(format!("row {r:?}: expected a row number")))?,
        None => 0,
    };
    let method = match query_param(req, "method") {
        None => None,
        Some("kernel_shap") => Some(ExplainMethod::KernelShap),
        Some("lime") => Some(ExplainMethod::Lime),
        Some(m) => return Err(ApiError::bad_request(format!("method {m:?}: expected kernel_shap or lime"))),
    };
    let _ = log.flush().await;
    let rows = log
        .rows(request_id)
        .await
        .map_err(|_| ApiError::internal("prediction_log_closed", "the prediction log is closed"))?
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "prediction_log_failed", e.to_string()))?;
    if rows.is_empty() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_request",
            format!("no logged prediction with request id {request_id:?} (too old, never analysed, or dropped)"),
        ));
    }
    let version = rows[0].version.clone();
    let features = rows.iter().map(|r| r.features.clone()).collect();
    let subject = Subject::Logged { request_id: request_id.to_owned(), version, rows: features };
    ask(&h, subject, row, method, None).await
}

async fn ask(
    h: &ShadowHandle,
    subject: Subject,
    row: usize,
    method: Option<ExplainMethod>,
    nsamples: Option<usize>,
) -> Result<AdminResponse, ApiError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let request =
        ondemand::Request { subject, row, method: method.unwrap_or(ExplainMethod::KernelShap), nsamples, reply: tx };
    h.explain.send(request).map_err(|_| {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "shadow_unavailable", "the what-if thread stopped")
    })?;
    let waited = tokio::time::timeout(Duration::from_secs(120), rx)
        .await
        .map_err(|_| ApiError::new(StatusCode::GATEWAY_TIMEOUT, "explain_timeout", "no explanation within 120 s"))?;
    match waited {
        Ok(Ok(reply)) => Ok(json(StatusCode::OK, &reply)),
        Ok(Err(f)) => Err(ApiError::new(
            StatusCode::from_u16(f.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            f.kind,
            f.message,
        )),
        Err(_) => {
            Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "shadow_unavailable", "the what-if thread stopped"))
        }
    }
}
